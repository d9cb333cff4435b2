//! The compiled gateway: everything built once from the validated config before the first
//! request (route table, URL templates, forwarding rules, upstream pools, static header
//! values), shared by all connections through one `Rc`. The hot path reads it, never builds it.

use std::cell::Cell;
use std::rc::Rc;

use http::HeaderValue;

use crate::config::path;
use crate::config::{Config, Forward};
use crate::limiter::{EndpointLimit, Shared};
use crate::proxy::Upstreams;
use crate::proxy::pool::Pool;
use crate::router::Router;
use crate::sensor::run::{self as sensor_run, Sensor};
use crate::time::{Clock, TimeSync};

/// One piece of a backend `url_pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Copied as is.
    Literal(String),
    /// The value of the endpoint's `{param}` at this index.
    Param(usize),
}

/// Which client headers a backend receives, parsed once: names are `HeaderName`s, and the
/// ones that are never forwarded (hop-by-hop, framing, `Host`...) are already left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderForward {
    /// Every client header but the never-forwarded ones.
    All,
    /// These.
    Only(Vec<http::HeaderName>),
}

impl HeaderForward {
    /// Compiles a `Forward` list of (already validated, lower-case) header names.
    pub fn compile(forward: &Forward) -> HeaderForward {
        match forward {
            Forward::All => HeaderForward::All,
            Forward::Only(names) => HeaderForward::Only(
                names
                    .iter()
                    .filter_map(|n| http::HeaderName::from_bytes(n.as_bytes()).ok())
                    .filter(|n| !crate::endpoint::never_forwarded(n))
                    .collect(),
            ),
        }
    }
}

/// A backend ready to call.
pub struct CompiledBackend {
    /// `url_pattern` split into literals and parameter slots.
    pub url: Vec<Piece>,
    /// The headers this backend receives: endpoint's list narrowed by the backend's.
    pub headers: HeaderForward,
    /// The query parameters this backend receives, likewise.
    pub query: Forward,
    /// Each host's pool and `Host` header value, in config order (round-robin).
    pub hosts: Vec<(Rc<Pool>, HeaderValue)>,
    /// `qos/ratelimit/proxy`: one bucket for all calls to this backend.
    pub limit: Option<Shared>,
    /// `gatelet/sensor`: the sensor read instead of calling a host.
    pub sensor: Option<(Rc<Sensor>, bool)>,
    /// `qos/circuit-breaker`, with `log_status_change` and a name for logs and health.
    pub breaker: Option<(std::cell::RefCell<crate::breaker::Breaker>, bool, String)>,
    /// The gateway's clock (breaker outcomes are timed when they arrive).
    pub clock: Clock,
    /// `qos/http-cache` (GET backends).
    pub cache: Option<std::cell::RefCell<crate::cache::Cache>>,
    /// For a fleet backend with a circuit breaker: one breaker per member (same order).
    pub member_breakers: Vec<std::cell::RefCell<crate::breaker::Breaker>>,
    next: Cell<usize>,
}

impl CompiledBackend {
    /// The next host in round-robin order.
    pub fn pick(&self) -> &(Rc<Pool>, HeaderValue) {
        let i = self.next.get() % self.hosts.len();
        self.next.set(i.wrapping_add(1));
        &self.hosts[i]
    }
}

#[cfg(test)]
impl CompiledBackend {
    /// A backend without hosts, for unit tests of request building.
    pub fn for_tests(url: Vec<Piece>, headers: Forward, query: Forward) -> CompiledBackend {
        CompiledBackend {
            url,
            headers: HeaderForward::compile(&headers),
            query,
            hosts: Vec::new(),
            limit: None,
            sensor: None,
            breaker: None,
            clock: Clock::start(),
            cache: None,
            member_breakers: Vec::new(),
            next: Cell::new(0),
        }
    }
}

/// The validated config plus what was compiled from it.
pub struct Gateway {
    /// The validated config (read-only from here on).
    pub config: Config,
    /// `(method, path)` -> endpoint index.
    pub router: Router,
    /// Per endpoint (same index as `config.endpoints`), its compiled backends.
    pub backends: Vec<Vec<CompiledBackend>>,
    /// Whether `/__debug/` is served (config `debug_endpoint` or `run -d`).
    pub debug: bool,
    /// Upstream pools, kept for stats.
    pub upstreams: Upstreams,
    /// Per endpoint (same index), its `qos/ratelimit/router` limiter.
    pub limits: Vec<Option<EndpointLimit>>,
    /// The limiters' and sensors' clock.
    pub clock: Clock,
    /// Live sensors, same order as `config.sensors`.
    pub sensors: Vec<Rc<Sensor>>,
    /// The fleet, when this is a central gatelet.
    pub fleet: Option<crate::fleet::CompiledFleet>,
    /// The fleet dashboard, rendered once.
    pub dashboard: Option<crate::dashboard::Page>,
    /// Fired when the process is asked to stop: connections finish what they serve and close.
    /// Shared by the gateways of successive reloads.
    pub shutdown: Rc<crate::runtime::Signal>,
    /// The sensors' tasks (same order as `sensors`): cancelled when the last gateway using
    /// them is gone.
    pub sensor_tasks: Vec<Rc<crate::runtime::Task>>,
    /// Why the last reload (SIGHUP) was refused, for `/__health`.
    pub reload_error: std::cell::RefCell<Option<Vec<String>>>,
    /// Counters for `/__stats`.
    pub metrics: crate::metrics::Metrics,
    /// systemd-timesyncd's flag (see [`Gateway::timesync_flag`]).
    timesync: TimeSync,
}

/// The effective list when a backend narrows its endpoint's list.
fn narrow(endpoint: &Forward, backend: Option<&Forward>) -> Forward {
    match (endpoint, backend) {
        (e, None) | (e, Some(Forward::All)) => e.clone(),
        (Forward::All, Some(b)) => b.clone(),
        (Forward::Only(e), Some(Forward::Only(b))) => {
            Forward::Only(e.iter().filter(|n| b.contains(n)).cloned().collect())
        }
    }
}

/// Splits a `url_pattern` on `{param}` references to the endpoint's parameters. Validation
/// guarantees every reference names one of `params`.
fn compile_url(pattern: &str, params: &[&str]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else { break };
        let name = &rest[open + 1..open + len];
        let Some(index) = params.iter().position(|p| *p == name) else {
            break;
        };
        if open > 0 {
            pieces.push(Piece::Literal(rest[..open].to_string()));
        }
        pieces.push(Piece::Param(index));
        rest = &rest[open + len + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_string()));
    }
    pieces
}

impl Gateway {
    /// Whether systemd-timesyncd says the clock is synchronised, for `/__health` and the JWT
    /// clock policy. The file is looked at most every 10 s, not on every token checked.
    pub fn timesync_flag(&self) -> bool {
        self.timesync.flag(self.clock.now())
    }

    /// Every backend circuit breaker (not the per-member ones of fan-outs) and its state at `now`.
    pub fn circuits(&self, now: crate::time::Nanos) -> impl Iterator<Item = (&str, crate::breaker::State)> {
        self.backends
            .iter()
            .flatten()
            .filter_map(|b| b.breaker.as_ref())
            .map(move |(breaker, _, name)| (name.as_str(), breaker.borrow_mut().state(now)))
    }

    /// The `/__health` answer: sensors, circuits that are not closed, the clock, a refused
    /// reload.
    pub fn health(&self) -> http::Response<crate::http::body::Body> {
        use crate::http::encode;
        let now = self.clock.now();
        let agents = self
            .sensors
            .iter()
            .map(|s| (s.config.name.clone(), s.health(now)))
            .collect();
        let mut circuits = serde_json::Map::new();
        for (name, state) in self.circuits(now) {
            let label = match state {
                crate::breaker::State::Closed { .. } => continue,
                crate::breaker::State::Open { .. } => "open",
                crate::breaker::State::HalfOpen { .. } => "half-open",
            };
            circuits.insert(name.to_string(), serde_json::Value::from(label));
        }
        let wall = std::time::SystemTime::now();
        let clock = crate::time::clock_status(wall, self.timesync_flag());
        encode::health(wall, agents, circuits, clock, self.reload_error.borrow().as_deref())
    }

    /// The `/__stats` document (Prometheus text).
    pub fn stats(&self) -> String {
        let endpoints: Vec<String> = self
            .config
            .endpoints
            .iter()
            .map(|e| format!("{} {}", e.method, e.path))
            .collect();
        let backends: Vec<Vec<String>> = self
            .config
            .endpoints
            .iter()
            .map(|e| {
                e.backends
                    .iter()
                    .map(|b| format!("{} {} -> {}", e.method, e.path, b.url_pattern))
                    .collect()
            })
            .collect();
        let now = self.clock.now();
        let circuits = self
            .circuits(now)
            .map(|(name, state)| {
                let code = match state {
                    crate::breaker::State::Closed { .. } => 0,
                    crate::breaker::State::HalfOpen { .. } => 1,
                    crate::breaker::State::Open { .. } => 2,
                };
                (name.to_string(), code)
            })
            .collect();
        let sensors = self.sensors.iter().map(|s| s.counts()).collect();
        let live = crate::metrics::Live {
            endpoints: &endpoints,
            backends: &backends,
            circuits,
            sensors,
            rss_bytes: crate::metrics::rss_bytes(),
            sd_notify_dropped: crate::notify::dropped(),
        };
        crate::metrics::render(&self.metrics, &live)
    }

    /// Compiles `config` and starts its sensor tasks on this thread's `LocalSet` (it must be
    /// called inside one); upstream connections will run as tasks there too.
    pub fn new(config: Config, debug: bool) -> Gateway {
        Gateway::replacing(config, debug, None)
    }

    /// Compiles `config` to replace `previous` (a reload): sensors whose configuration did not
    /// change keep running (same task, same readings), the clock and the shutdown signal carry
    /// over; everything else is built afresh.
    pub fn replacing(config: Config, debug: bool, previous: Option<&Gateway>) -> Gateway {
        let addrs = config
            .endpoints
            .iter()
            .flat_map(|e| &e.backends)
            .flat_map(|b| &b.hosts)
            .map(|h| h.addr);
        let member_addrs = config.fleet.iter().flat_map(|f| &f.members).map(|m| m.host.addr);
        let upstreams = Upstreams::new(addrs.chain(member_addrs));
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
        let backends = config
            .endpoints
            .iter()
            .map(|e| {
                let params: Vec<&str> = path::param_names(&e.path).collect();
                e.backends
                    .iter()
                    .map(|b| CompiledBackend {
                        url: compile_url(&b.url_pattern, &params),
                        headers: HeaderForward::compile(&narrow(&e.input_headers, b.input_headers.as_ref())),
                        query: narrow(&e.input_query_strings, b.input_query_strings.as_ref()),
                        hosts: b
                            .hosts
                            .iter()
                            .filter_map(|h| {
                                let pool = upstreams.pool(&h.addr)?.clone();
                                Some((pool, HeaderValue::from_str(&h.authority).ok()?))
                            })
                            .collect(),
                        limit: b.rate_limit.map(|r| Shared::new(r, 0)),
                        sensor: b.sensor.map(|s| (sensors[s.sensor].clone(), s.reject_stale)),
                        cache: b
                            .cache
                            .filter(|_| b.method == http::Method::GET)
                            .map(|bounds| std::cell::RefCell::new(crate::cache::Cache::new(bounds))),
                        member_breakers: match (&b.breaker, &config.fleet) {
                            (Some((settings, _)), Some(fleet)) if b.fleet => fleet
                                .members
                                .iter()
                                .map(|_| std::cell::RefCell::new(crate::breaker::Breaker::new(*settings, clock.now())))
                                .collect(),
                            _ => Vec::new(),
                        },
                        breaker: b.breaker.map(|(settings, log)| {
                            let name = format!("{} {} -> {}", e.method, e.path, b.url_pattern);
                            (
                                std::cell::RefCell::new(crate::breaker::Breaker::new(settings, clock.now())),
                                log,
                                name,
                            )
                        }),
                        clock,
                        next: Cell::new(0),
                    })
                    .collect()
            })
            .collect();
        let limits = config
            .endpoints
            .iter()
            .map(|e| {
                let l = e.rate_limit.as_ref()?;
                Some(EndpointLimit::new(l.endpoint, l.client.clone(), l.max_clients, 0))
            })
            .collect();
        Gateway {
            limits,
            clock,
            shutdown: previous.map_or_else(Default::default, |p| p.shutdown.clone()),
            sensor_tasks,
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
            fleet: config.fleet.as_ref().map(|f| crate::fleet::CompiledFleet {
                config: f.clone(),
                members: f
                    .members
                    .iter()
                    .filter_map(|m| {
                        Some(crate::fleet::CompiledMember {
                            id: m.id.clone(),
                            pool: upstreams.pool(&m.host.addr)?.clone(),
                            authority: HeaderValue::from_str(&m.host.authority).ok()?,
                            last_seen: Cell::new(None),
                        })
                    })
                    .collect(),
                round: std::cell::RefCell::new(None),
            }),
            dashboard: config
                .dashboard
                .as_ref()
                .map(|d| crate::dashboard::Page::render(d, config.name.as_deref())),
            router: Router::new(&config.endpoints),
            debug: debug || config.debug_endpoint,
            config,
            backends,
            upstreams,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_patterns_split_on_known_params_only() {
        assert_eq!(
            compile_url("/v1/{b}/x?id={a}", &["a", "b"]),
            vec![
                Piece::Literal("/v1/".into()),
                Piece::Param(1),
                Piece::Literal("/x?id=".into()),
                Piece::Param(0)
            ]
        );
        assert_eq!(compile_url("/plain", &[]), vec![Piece::Literal("/plain".into())]);
    }

    #[test]
    fn backend_lists_narrow_the_endpoint_list() {
        let only = |v: &[&str]| Forward::Only(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(narrow(&Forward::All, None), Forward::All);
        assert_eq!(narrow(&Forward::All, Some(&only(&["a"]))), only(&["a"]));
        assert_eq!(narrow(&only(&["a", "b"]), Some(&only(&["b", "c"]))), only(&["b"]));
        assert_eq!(narrow(&only(&["a"]), Some(&Forward::All)), only(&["a"]));
    }
}
