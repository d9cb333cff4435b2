//! One backend, from its compiled form to its answer. A backend has a [`Source`]: upstream
//! hosts called over HTTP, a sensor read or written, or every member of the fleet. This module
//! builds the request ([`request`]), applies the backend's rate limit, circuit breaker, cache
//! and retry ([`qos`]), fans out to the fleet ([`fanout`]), and decodes and shapes the body
//! (`merge`). Endpoints call it; it never decides what a failure means for the client.

pub mod fanout;
pub mod qos;
pub mod request;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::cache::Cache;
use crate::config::{self, Endpoint};
use crate::limiter::Shared;
use crate::merge::{self, Shape};
use crate::outbox::Outbox;
use crate::outbox::inbox::Inbox;
use crate::proxy::pool::Pool;
use crate::proxy::{self, ErrorReply, Follow, RedirectHosts, Streaming, UpstreamError, Upstreams};
use crate::sensor::run::Sensor;
use crate::time::{Clock, Nanos};
use fanout::{FanOut, Members};
use qos::Circuit;
use request::{HeaderForward, Template};

/// What the backends need of the client's request.
pub struct Inbound<'r> {
    /// `{param}` values in endpoint-path order.
    pub params: &'r [&'r str],
    /// The raw query string, if any.
    pub query: Option<&'r str>,
    /// The client's headers.
    pub headers: &'r HeaderMap,
    /// The client's body (empty for none).
    pub body: Bytes,
    /// The client's address as sent in `X-Forwarded-For` (formatted once per request).
    pub forwarded_for: HeaderValue,
    /// The gateway clock when the request arrived.
    pub now: Nanos,
    /// Headers added for every backend (`propagate_claims`).
    pub propagated: Vec<(HeaderName, HeaderValue)>,
    /// Values of the endpoint's per-request placeholders ([`Endpoint::vars`], same index):
    /// claims set once authenticated, earlier answers as a sequence goes on; `None` until known.
    /// Empty on endpoints without them.
    pub vars: RefCell<Vec<Option<String>>>,
    /// The authenticated JWT's `sub` claim (a string), when the endpoint validates tokens.
    pub subject: Option<String>,
}

/// Why a backend call produced no data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The upstream exchange failed (or its deadline passed).
    Upstream(UpstreamError),
    /// The backend body did not decode with the configured encoding.
    Decode(String),
    /// The backend's `qos/ratelimit/proxy` bucket was empty: the call was not made.
    RateLimited,
    /// A sensor backend has no reading to give; seconds until its source is tried again.
    Sensor(String, u64),
    /// The backend's circuit breaker is open: the call was not made.
    CircuitOpen,
    /// The request target built from the client's request is not a URI hyper can send: the
    /// call was not made.
    BadTarget(String),
    /// A fan-out where every member failed (how many).
    AllMembersFailed(usize),
    /// A `url_pattern` placeholder has no value (what is missing): the call was not made.
    MissingValue(String),
    /// The backend answered with an error status, reported as data under `error_<name>`
    /// (`backend/http.return_error_details`): merged into the answer, which is then incomplete.
    Detailed(u16, Map<String, Value>),
}

impl CallError {
    /// The deadline passed first.
    pub const TIMEOUT: CallError = CallError::Upstream(UpstreamError::Timeout);
}

impl From<UpstreamError> for CallError {
    fn from(e: UpstreamError) -> Self {
        CallError::Upstream(e)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Upstream(e) => e.fmt(f),
            CallError::RateLimited => f.write_str("not called: qos/ratelimit/proxy bucket empty"),
            CallError::Sensor(e, _) => f.write_str(e),
            CallError::CircuitOpen => f.write_str("circuit open"),
            CallError::BadTarget(t) => write!(f, "not called: request target {t:?} is not a valid URI"),
            CallError::Decode(e) => write!(f, "bad body: {e}"),
            CallError::AllMembersFailed(n) => write!(f, "request failed: all {n} fleet members failed"),
            CallError::MissingValue(what) => write!(f, "not called: {what}"),
            CallError::Detailed(status, part) => {
                let key = part.keys().next().map_or("", String::as_str);
                write!(f, "status {status} (reported under {key:?})")
            }
        }
    }
}

/// One upstream host: its connection pool and its `Host` header value.
pub struct Upstream {
    /// Connections to its address.
    pub pool: Rc<Pool>,
    /// `Host` sent to it.
    pub authority: HeaderValue,
}

/// A backend's hosts, at least one (round-robin).
pub struct Hosts {
    first: Upstream,
    rest: Vec<Upstream>,
    next: Cell<usize>,
}

impl Hosts {
    /// The hosts, or `None` when there are none.
    pub fn new(mut list: Vec<Upstream>) -> Option<Hosts> {
        if list.is_empty() {
            return None;
        }
        let first = list.remove(0);
        Some(Hosts {
            first,
            rest: list,
            next: Cell::new(0),
        })
    }

    /// The next host in round-robin order.
    pub fn pick(&self) -> &Upstream {
        let i = self.next.get() % (self.rest.len() + 1);
        self.next.set(i.wrapping_add(1));
        if i == 0 { &self.first } else { &self.rest[i - 1] }
    }
}

impl RedirectHosts for Hosts {
    /// A host of the list by its `Host` value (name or address as configured, port 80 when
    /// absent), or by the address it was resolved to when the redirect names an IP address.
    fn pool_for(&self, host: &str, port: u16) -> Option<&Rc<Pool>> {
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok();
        std::iter::once(&self.first)
            .chain(&self.rest)
            .find(|u| {
                let authority = u.authority.to_str().unwrap_or("");
                let (name, own_port) = match authority.rsplit_once(':') {
                    Some((n, p)) if !p.contains(']') => (n, p.parse().unwrap_or(0)),
                    _ => (authority, 80),
                };
                (own_port == port && name.eq_ignore_ascii_case(host))
                    || ip.is_some_and(|ip| u.pool.addr() == std::net::SocketAddr::new(ip, port))
            })
            .map(|u| &u.pool)
    }
}

/// Where a backend's data comes from.
pub enum Source {
    /// Upstream HTTP hosts.
    Hosts(Hosts),
    /// A sensor's latest reading (or its events since `?since=`).
    Sensor {
        /// The sensor.
        sensor: Rc<Sensor>,
        /// `reject_stale`: a reading older than the sensor's `stale_after` is an error.
        reject_stale: bool,
    },
    /// A sensor written to: the request body goes to the device.
    SensorWrite(Rc<Sensor>),
    /// Every member of the fleet.
    Fleet(FanOut),
    /// The bus's outbox: the request body is one event.
    Outbox(Rc<Outbox>),
    /// The central's inbox: a bus's batch stored (POST) or stored events read (GET).
    Inbox(Rc<Inbox>),
}

/// A backend ready to call.
pub struct Backend {
    /// Its validated config.
    pub spec: config::Backend,
    /// Its URL template and forwarding lists.
    pub template: Template,
    /// Where its data comes from.
    pub source: Source,
    /// `qos/ratelimit/proxy`: one bucket for all calls to this backend.
    pub limit: Option<Shared>,
    /// `qos/circuit-breaker` (for a fan-out, the circuits are per member, in [`FanOut`]).
    pub circuit: Option<Circuit>,
    /// `qos/http-cache` (GET backends).
    pub cache: Option<RefCell<Cache>>,
    /// The gateway's clock (breaker outcomes and cache ages are timed when they arrive).
    pub clock: Clock,
}

/// What backends are compiled against: the gateway's pools, sensors, fleet and clock.
pub struct Context<'a> {
    /// One pool per upstream address.
    pub upstreams: &'a Upstreams,
    /// Live sensors, in config order.
    pub sensors: &'a [Rc<Sensor>],
    /// The fleet, on a central gatelet.
    pub fleet: Option<&'a Rc<Members>>,
    /// The outbox, on a bus.
    pub outbox: Option<&'a Rc<Outbox>>,
    /// The inbox, on a central gatelet.
    pub inbox: Option<&'a Rc<Inbox>>,
    /// The gateway's clock.
    pub clock: Clock,
}

impl Backend {
    /// Compiles backend `spec` of `endpoint`. Fails only when the validated config and the
    /// gateway disagree (a host without a pool, a fan-out without a fleet).
    pub fn compile(endpoint: &Endpoint, spec: &config::Backend, cx: &Context<'_>) -> Result<Backend, String> {
        let name = format!("{} {} -> {}", endpoint.method, endpoint.path, spec.url_pattern);
        let params: Vec<&str> = config::path::param_names(&endpoint.path).collect();
        let template = Template {
            url: request::compile_url(&spec.url_pattern, &params, &endpoint.vars),
            headers: HeaderForward::compile(&request::narrow(&endpoint.input_headers, spec.input_headers.as_ref())),
            query: request::narrow(&endpoint.input_query_strings, spec.input_query_strings.as_ref()),
            claim_headers: endpoint
                .jwt
                .iter()
                .flat_map(|v| v.propagate.iter().map(|(_, h)| h.clone()))
                .collect(),
        };
        let now = cx.clock.now();
        let source = if let Some(store) = spec.store {
            let missing = || format!("{name}: no {store:?} in this gateway");
            match store {
                config::Store::Outbox => Source::Outbox(cx.outbox.ok_or_else(missing)?.clone()),
                config::Store::Inbox => Source::Inbox(cx.inbox.ok_or_else(missing)?.clone()),
            }
        } else if let Some(s) = spec.sensor {
            let sensor = cx
                .sensors
                .get(s.sensor)
                .ok_or_else(|| format!("{name}: no such sensor"))?
                .clone();
            if s.write {
                Source::SensorWrite(sensor)
            } else {
                Source::Sensor {
                    sensor,
                    reject_stale: s.reject_stale,
                }
            }
        } else if spec.fleet {
            let members = cx
                .fleet
                .ok_or_else(|| format!("{name}: a fan-out without a fleet"))?
                .clone();
            let circuits = match &spec.breaker {
                Some(b) => members
                    .list
                    .iter()
                    .map(|m| Circuit::new(b.settings, b.log_status_change, m.id.clone(), now))
                    .collect(),
                None => Vec::new(),
            };
            Source::Fleet(FanOut { members, circuits })
        } else {
            let list = spec
                .hosts
                .iter()
                .map(|h| {
                    Some(Upstream {
                        pool: cx.upstreams.pool(&h.addr)?.clone(),
                        authority: HeaderValue::from_str(&h.authority).ok()?,
                    })
                })
                .collect::<Option<Vec<_>>>()
                .and_then(Hosts::new)
                .ok_or_else(|| format!("{name}: no usable host"))?;
            Source::Hosts(list)
        };
        Ok(Backend {
            template,
            limit: spec.rate_limit.map(|r| Shared::new(r, 0)),
            circuit: match (&source, &spec.breaker) {
                (Source::Fleet(_), _) | (_, None) => None,
                (_, Some(b)) => Some(Circuit::new(
                    b.settings,
                    b.log_status_change,
                    b.name.clone().unwrap_or(name),
                    now,
                )),
            },
            cache: spec
                .cache
                .filter(|_| spec.method == http::Method::GET)
                .map(|bounds| RefCell::new(Cache::new(bounds))),
            source,
            clock: cx.clock,
            spec: spec.clone(),
        })
    }

    /// Calls the backend: its data, decoded and shaped.
    pub async fn call(&self, inbound: &Inbound<'_>, deadline: Instant) -> Result<Map<String, Value>, CallError> {
        match &self.source {
            Source::Fleet(fan) => fanout::fan_out(self, fan, inbound, deadline).await,
            Source::Sensor { sensor, reject_stale } => self.read(sensor, *reject_stale, inbound),
            Source::SensorWrite(sensor) => self.read(sensor, false, inbound),
            Source::Hosts(hosts) => self.fetch(hosts, inbound, deadline).await,
            // Answered by `endpoint` before any merge.
            Source::Outbox(_) | Source::Inbox(_) => Err(CallError::BadTarget("a journal is not merged".into())),
        }
    }

    /// A sensor's reading, or its events since `?since=` for event sensors.
    fn read(
        &self,
        sensor: &Sensor,
        reject_stale: bool,
        inbound: &Inbound<'_>,
    ) -> Result<Map<String, Value>, CallError> {
        qos::admit(self.limit.as_ref(), inbound.now)?;
        let retry = sensor.retry_in().as_secs().max(1);
        let reading = match sensor.events_since(self.since(inbound), inbound.now) {
            Some(events) => events,
            None => sensor.reading(inbound.now, reject_stale),
        };
        let doc = reading.map_err(|e| CallError::Sensor(e, retry))?;
        Ok(merge::shape(&self.spec.shape, doc))
    }

    /// `?since=N` for event sensors, when the endpoint forwards `since` (default 0: all kept).
    fn since(&self, inbound: &Inbound<'_>) -> u64 {
        let Some(query) = inbound.query.filter(|_| self.template.forwards_query("since")) else {
            return 0;
        };
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("since="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// One HTTP call: rate limit, circuit, cache, retry, decode, shape.
    async fn fetch(
        &self,
        hosts: &Hosts,
        inbound: &Inbound<'_>,
        deadline: Instant,
    ) -> Result<Map<String, Value>, CallError> {
        qos::admit(self.limit.as_ref(), inbound.now)?;
        let probe = match &self.circuit {
            Some(circuit) => Some(circuit.probe(self.clock)?),
            None => None,
        };
        let host = hosts.pick();
        let uri = self.template.uri(inbound)?;
        let build = || self.request(&host.authority, &uri, inbound);
        let key = || format!("{}{uri}", host.authority.to_str().unwrap_or(""));
        let credentials = || self.template.sends_credentials(inbound);
        let follow = self.follow(hosts);
        let body = qos::cached(self.cache.as_ref(), credentials, self.clock, key, || {
            qos::with_retry(self.spec.retry, self.clock, deadline, || {
                proxy::fetch(&host.pool, &build, follow, deadline)
            })
        })
        .await
        .map_err(|e| self.detailed(e))?;
        if let Some(p) = &probe {
            p.succeeded();
        }
        self.decode(&body, &self.spec.shape)
    }

    /// How this backend's redirects are followed (`backend/http/client`).
    fn follow<'h>(&self, hosts: &'h Hosts) -> Option<Follow<'h>> {
        let redirects = self.spec.redirects;
        redirects.follow.then_some(Follow {
            hosts,
            resend_body: redirects.resend_body,
        })
    }

    /// `backend/http.return_error_details`: an error status becomes the backend's data, under
    /// `error_<name>` as KrakenD writes it (status, body, its `Content-Type`), never shaped.
    fn detailed(&self, e: CallError) -> CallError {
        let (Some(name), CallError::Upstream(UpstreamError::Status(reply))) = (&self.spec.return_error_details, &e)
        else {
            return e;
        };
        let ErrorReply {
            status,
            body,
            content_type,
        } = &**reply;
        let mut detail = Map::new();
        detail.insert("http_status_code".into(), Value::from(*status));
        if !body.is_empty() {
            detail.insert("http_body".into(), Value::from(String::from_utf8_lossy(body)));
        }
        if let Some(ct) = content_type
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
        {
            detail.insert("http_body_encoding".into(), Value::from(ct));
        }
        let part = Map::from_iter([(format!("error_{name}"), Value::Object(detail))]);
        CallError::Detailed(*status, part)
    }

    /// A body decoded with the backend's `encoding` and cut to `shape`.
    pub fn decode(&self, body: &[u8], shape: &Shape) -> Result<Map<String, Value>, CallError> {
        let data = merge::decode(self.spec.encoding, self.spec.shape.is_collection, body)
            .map_err(|e| CallError::Decode(e.0))?;
        Ok(merge::shape(shape, data))
    }

    /// `no-op`: the response with its body still streaming, hop-by-hop headers removed. The
    /// head must arrive by `deadline`, and the body too or the stream is cut there.
    pub async fn open(&self, inbound: &Inbound<'_>, deadline: Instant) -> Result<Response<Streaming>, CallError> {
        let Source::Hosts(hosts) = &self.source else {
            return Err(CallError::BadTarget("a no-op backend calls hosts".into()));
        };
        let host = hosts.pick();
        qos::admit(self.limit.as_ref(), inbound.now)?;
        let uri = self.template.uri(inbound)?;
        let build = || self.request(&host.authority, &uri, inbound);
        let mut resp = proxy::open(&host.pool, &build, self.follow(hosts), deadline).await?;
        request::remove_hop_by_hop(resp.headers_mut());
        Ok(resp)
    }

    /// The request to the host whose `Host` is `authority`; built again for a retry or a
    /// redirect (cheaper than keeping a header map to clone for the rare second request).
    fn request(
        &self,
        authority: &HeaderValue,
        uri: &http::Uri,
        inbound: &Inbound<'_>,
    ) -> http::Request<http_body_util::Full<Bytes>> {
        let headers = self.template.headers(authority, inbound);
        request::request(&self.spec.method, uri, headers, &inbound.body)
    }

    /// Its circuit's name and state at `now`, when it has one.
    pub fn circuit_state(&self, now: Nanos) -> Option<(&str, crate::breaker::State)> {
        self.circuit.as_ref().map(|c| (c.name.as_str(), c.state(now)))
    }
}
