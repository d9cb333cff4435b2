//! The compiled gateway: everything built once from the validated config before the first
//! request (route table, URL templates, forwarding rules, upstream pools, static header
//! values), shared by all connections through one `Rc`. The hot path reads it, never builds it.

use std::cell::Cell;
use std::rc::Rc;

use http::HeaderValue;

use crate::backend::fanout::{Member, Members};
use crate::backend::{self, Backend};
use crate::config::Config;
use crate::limiter::EndpointLimit;
use crate::proxy::Upstreams;
use crate::router::Router;
use crate::sensor::run::{self as sensor_run, Sensor};
use crate::time::{Clock, TimeSync};

/// The validated config plus what was compiled from it.
pub struct Gateway {
    /// The validated config (read-only from here on).
    pub config: Config,
    /// `(method, path)` -> endpoint index.
    pub router: Router,
    /// Per endpoint (same index as `config.endpoints`), its compiled backends.
    pub backends: Vec<Vec<Backend>>,
    /// Whether `/__debug/` is served (config `debug_endpoint` or `run -d`).
    pub debug: bool,
    /// Per endpoint (same index), its `qos/ratelimit/router` limiter.
    pub limits: Vec<Option<EndpointLimit>>,
    /// The limiters' and sensors' clock.
    pub clock: Clock,
    /// Live sensors, same order as `config.sensors`.
    pub sensors: Vec<Rc<Sensor>>,
    /// The fleet, when this is a central gatelet.
    pub fleet: Option<crate::fleet::Fleet>,
    /// The fleet dashboard, rendered once.
    pub dashboard: Option<crate::dashboard::Page>,
    /// Fired when the process is asked to stop: connections finish what they serve and close.
    /// Shared by the gateways of successive reloads.
    pub shutdown: Rc<crate::runtime::Signal>,
    /// The sensors' tasks (same order as `sensors`): cancelled when the last gateway using
    /// them is gone.
    pub sensor_tasks: Vec<Rc<crate::runtime::Task>>,
    /// The bus's outbox (`gatelet/outbox`), kept across reloads while its `dir` is the same.
    pub outbox: Option<Rc<crate::outbox::Outbox>>,
    /// Its group committer and delivery tasks: stopped when the last gateway using it is gone.
    pub outbox_tasks: Rc<Vec<crate::runtime::Task>>,
    /// The central's inbox (`gatelet/inbox`), kept across reloads while its `dir` is the same.
    pub inbox: Option<Rc<crate::outbox::inbox::Inbox>>,
    /// Why the last reload (SIGHUP) was refused, for `/__health`.
    pub reload_error: std::cell::RefCell<Option<Vec<String>>>,
    /// Counters for `/__stats`.
    pub metrics: crate::metrics::Metrics,
    /// systemd-timesyncd's flag (see [`Gateway::timesync_flag`]).
    timesync: TimeSync,
}

impl Gateway {
    /// Whether systemd-timesyncd says the clock is synchronised, for `/__health` and the JWT
    /// clock policy. The file is looked at most every 10 s, not on every token checked.
    pub fn timesync_flag(&self) -> bool {
        self.timesync.flag(self.clock.now())
    }

    /// Every backend circuit breaker (not the per-member ones of fan-outs) and its state at `now`.
    pub fn circuits(&self, now: crate::time::Nanos) -> impl Iterator<Item = (&str, crate::breaker::State)> {
        self.backends.iter().flatten().filter_map(move |b| b.circuit_state(now))
    }

    /// Compiles `config` and starts its sensor tasks on this thread's `LocalSet` (it must be
    /// called inside one); upstream connections will run as tasks there too.
    pub fn new(config: Config, debug: bool) -> Result<Gateway, String> {
        Gateway::replacing(config, debug, None)
    }

    /// Compiles `config` to replace `previous` (a reload): sensors whose configuration did not
    /// change keep running (same task, same readings), the clock and the shutdown signal carry
    /// over; everything else is built afresh. Fails only when the validated config and what is
    /// built from it disagree (see [`Backend::compile`]).
    pub fn replacing(config: Config, debug: bool, previous: Option<&Gateway>) -> Result<Gateway, String> {
        let addrs = config
            .endpoints
            .iter()
            .flat_map(|e| &e.backends)
            .flat_map(|b| &b.hosts)
            .map(|h| h.addr);
        let member_addrs = config.fleet.iter().flat_map(|f| &f.members).map(|m| m.host.addr);
        let upstreams = Upstreams::new(addrs.chain(member_addrs), config.disable_compression);
        let clock = previous.map_or_else(Clock::start, |p| p.clock);
        let mut sensors: Vec<Rc<Sensor>> = Vec::new();
        let mut sensor_tasks = Vec::new();
        for cfg in &config.sensors {
            let kept = previous.and_then(|p| {
                let i = p.sensors.iter().position(|s| s.config == *cfg)?;
                Some((p.sensors[i].clone(), p.sensor_tasks[i].clone()))
            });
            let (sensor, task) = kept.unwrap_or_else(|| {
                let sensor = Rc::new(Sensor::new(cfg.clone()));
                let task = crate::runtime::Task::spawn(sensor_run::run(sensor.clone(), clock));
                (sensor, Rc::new(task))
            });
            sensors.push(sensor);
            sensor_tasks.push(task);
        }
        let kept_outbox = previous
            .and_then(|p| Some((p.outbox.clone()?, p.outbox_tasks.clone())))
            .filter(|(o, _)| config.outbox.as_ref().is_some_and(|c| c.dir == o.config.dir));
        let (outbox, outbox_tasks) = match (kept_outbox, &config.outbox) {
            (Some((o, tasks)), Some(c)) => {
                if o.config != *c {
                    log::warn!("gatelet/outbox: changes other than \"dir\" take effect at the next start");
                }
                (Some(o), tasks)
            }
            (_, Some(c)) => {
                let o = crate::outbox::Outbox::open(c.clone()).map_err(|e| format!("gatelet/outbox: {e}"))?;
                let tasks = Rc::new(o.tasks());
                (Some(o), tasks)
            }
            (_, None) => (None, Rc::default()),
        };
        let inbox = match (previous.and_then(|p| p.inbox.clone()), &config.inbox) {
            (Some(i), Some(c)) if i.config.dir == c.dir => Some(i),
            (_, Some(c)) => Some(Rc::new(
                crate::outbox::inbox::Inbox::open(c.clone()).map_err(|e| format!("gatelet/inbox: {e}"))?,
            )),
            (_, None) => None,
        };
        for sensor in &sensors {
            let hook = match (&outbox, sensor.config.forward) {
                (Some(o), Some(critical)) => Some(Box::new(ToOutbox {
                    outbox: o.clone(),
                    critical,
                }) as Box<dyn crate::sensor::run::Forward>),
                _ => None,
            };
            sensor.forward_to(hook);
        }
        let members = config.fleet.as_ref().map(|f| {
            Rc::new(Members {
                settings: f.clone(),
                list: f
                    .members
                    .iter()
                    .filter_map(|m| {
                        Some(Member {
                            id: m.id.clone(),
                            pool: upstreams.pool(&m.host.addr)?.clone(),
                            authority: HeaderValue::from_str(&m.host.authority).ok()?,
                            last_seen: Cell::new(None),
                        })
                    })
                    .collect(),
            })
        });
        let cx = backend::Context {
            upstreams: &upstreams,
            sensors: &sensors,
            fleet: members.as_ref(),
            outbox: outbox.as_ref(),
            inbox: inbox.as_ref(),
            clock,
        };
        let backends = config
            .endpoints
            .iter()
            .map(|e| e.backends.iter().map(|b| Backend::compile(e, b, &cx)).collect())
            .collect::<Result<Vec<Vec<Backend>>, String>>()?;
        let limits = config
            .endpoints
            .iter()
            .map(|e| {
                let l = e.rate_limit.as_ref()?;
                Some(EndpointLimit::new(l.endpoint, l.client.clone(), l.max_clients, 0))
            })
            .collect();
        Ok(Gateway {
            limits,
            clock,
            shutdown: previous.map_or_else(Default::default, |p| p.shutdown.clone()),
            sensor_tasks,
            outbox,
            outbox_tasks,
            inbox,
            reload_error: std::cell::RefCell::new(None),
            timesync: TimeSync::default(),
            metrics: {
                let mut metrics = crate::metrics::Metrics::new(config.endpoints.iter().map(|e| e.backends.len()));
                // Connections accepted under the old config are still open after a reload.
                if let Some(p) = previous {
                    metrics.connections = p.metrics.connections.clone();
                }
                metrics
            },
            sensors,
            fleet: members.map(crate::fleet::Fleet::new),
            dashboard: config
                .dashboard
                .as_ref()
                .map(|d| crate::dashboard::Page::render(d, config.name.as_deref())),
            router: Router::new(&config.endpoints),
            debug: debug || config.debug_endpoint,
            config,
            backends,
        })
    }
}

/// A forwarding sensor's frames into the outbox (`critical`: every frame, whatever its type).
struct ToOutbox {
    outbox: Rc<crate::outbox::Outbox>,
    critical: bool,
}

impl crate::sensor::run::Forward for ToOutbox {
    fn forward(&self, frame: &serde_json::Value) -> Option<u64> {
        self.outbox.forward(frame, self.critical)
    }

    fn durable(&self) -> u64 {
        self.outbox.durable()
    }
}
