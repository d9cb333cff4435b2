//! The central office's view of the fleet: fan-out backends (one call per member, each answer
//! shaped on its own and grouped under the member's id, failures under `_errors`) and the
//! "health of healths" (`GET /__fleet/health`). Members are asked at most `max_in_flight` at a
//! time; a round never outlasts the fleet `timeout` (or the endpoint deadline), however many
//! members hang: those not answered by then are reported, not waited for.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::config::{Backend, Fleet};
use crate::endpoint::{self, Inbound, Outcome};
use crate::gateway::{CompiledBackend, Gateway};
use crate::merge::{self, Shape};
use crate::proxy::pool::Pool;
use crate::proxy::{self, ProxyError};
use crate::runtime::{self, LocalFuture};

/// One member, ready to call.
pub struct CompiledMember {
    /// Its id.
    pub id: String,
    /// Its connection pool.
    pub pool: Rc<Pool>,
    /// Its `Host` header value.
    pub authority: HeaderValue,
    /// When it last answered a health check (any status): what the dashboard shows as "last
    /// seen". Since this gateway was built (a reload starts over).
    pub last_seen: Cell<Option<SystemTime>>,
}

/// The fleet, compiled once.
pub struct CompiledFleet {
    /// The settings.
    pub config: Fleet,
    /// The members, in config order.
    pub members: Vec<CompiledMember>,
    /// The health round in progress, if any: every dashboard on the wall polls
    /// `/__fleet/health`, and viewers that ask meanwhile share its answer instead of asking
    /// every bus once more each.
    pub round: RefCell<Option<Rc<Round>>>,
}

/// One health round, shared by the requests that arrive while it runs.
#[derive(Default)]
pub struct Round {
    /// Fired when the round ends, answered or abandoned.
    done: runtime::Signal,
    /// Its document, once it has one.
    answer: RefCell<Option<Value>>,
}

/// Ends the round it guards when dropped, also when the request running it goes away first.
struct Running<'f> {
    slot: &'f RefCell<Option<Rc<Round>>>,
    round: Rc<Round>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.slot.borrow_mut().take();
        self.round.done.fire();
    }
}

/// What a member's failure looks like in answers: the error's own text ("connection refused",
/// "status 503", "circuit open"), with the fleet timeout spelled out for timeouts.
fn describe(e: &ProxyError, timeout: Duration) -> String {
    match e {
        ProxyError::Timeout => format!("timeout after {}ms", timeout.as_millis()),
        other => other.to_string(),
    }
}

fn member_headers(fleet: &CompiledFleet, mut headers: HeaderMap) -> HeaderMap {
    for (name, value) in &fleet.config.headers {
        headers.insert::<HeaderName>(name.clone(), value.clone());
    }
    headers
}

/// Calls a fan-out backend on every member: `{"bus-17": {...}, ..., "_errors": {"bus-18":
/// {"error": "..."}}}` (`_errors` only when some failed). Fails only when every member failed.
pub async fn fan_out(
    gw: &Gateway,
    backend: &Backend,
    compiled: &CompiledBackend,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Result<Map<String, Value>, ProxyError> {
    let Some(fleet) = &gw.fleet else {
        return Err(ProxyError::Http("no fleet configured".into()));
    };
    let timeout = fleet.config.timeout;
    let deadline = deadline.min(Instant::now() + timeout);
    let uri = endpoint::target_uri(compiled, inbound)?;
    // Per member: the shape without `group`, which applies to the whole answer.
    let member_shape = Shape {
        group: None,
        ..backend.shape.clone()
    };
    let calls: Vec<LocalFuture<'_, Result<Map<String, Value>, ProxyError>>> = fleet
        .members
        .iter()
        .enumerate()
        .map(|(i, member)| {
            let (uri, shape) = (&uri, &member_shape);
            Box::pin(async move {
                let log = compiled.breaker.as_ref().is_some_and(|b| b.1);
                let outcome = match compiled.member_breakers.get(i) {
                    Some(breaker) => Some(Outcome::admit(breaker, log, &member.id, compiled.clock)?),
                    None => None,
                };
                let build = || {
                    let headers = member_headers(fleet, endpoint::headers(compiled, &member.authority, inbound));
                    endpoint::request(backend, uri, headers, &inbound.body)
                };
                let key = || format!("{}{uri}", member.authority.to_str().unwrap_or(""));
                let body =
                    endpoint::cached_fetch(compiled, key, || proxy::fetch(&member.pool, &build, deadline)).await?;
                if let Some(o) = &outcome {
                    o.success.set(true);
                }
                let data = merge::decode(backend.encoding, backend.shape.is_collection, &body)
                    .map_err(|e| ProxyError::Decode(e.0))?;
                Ok(merge::shape(shape, data))
            }) as LocalFuture<'_, _>
        })
        .collect();
    let results = runtime::join_bounded(calls, fleet.config.max_in_flight, deadline).await;
    let (mut data, mut errors) = (Map::new(), Map::new());
    for (member, result) in fleet.members.iter().zip(results) {
        match result {
            Some(Ok(part)) => {
                data.insert(member.id.clone(), Value::Object(part));
            }
            Some(Err(e)) => {
                errors.insert(member.id.clone(), json!({"error": describe(&e, timeout)}));
            }
            None => {
                errors.insert(
                    member.id.clone(),
                    json!({"error": describe(&ProxyError::Timeout, timeout)}),
                );
            }
        }
    }
    if data.is_empty() && !errors.is_empty() {
        return Err(ProxyError::Http(format!("all {} fleet members failed", errors.len())));
    }
    if !errors.is_empty() {
        data.insert("_errors".into(), Value::Object(errors));
    }
    Ok(match &backend.shape.group {
        Some(g) => Map::from_iter([(g.clone(), Value::Object(data))]),
        None => data,
    })
}

/// `GET /__fleet/health`: every member's own health, asked at once (bounded), within the fleet
/// timeout. A request that arrives while a round runs gets that round's answer.
pub async fn health(gw: &Gateway) -> Value {
    let Some(fleet) = &gw.fleet else {
        return Value::Null;
    };
    loop {
        let current = fleet.round.borrow().clone();
        let Some(round) = current else { break };
        round.done.wait().await;
        if let Some(answer) = &*round.answer.borrow() {
            return answer.clone();
        }
        // Its request went away before the end: the first to get here runs the next one.
    }
    let round = Rc::new(Round::default());
    *fleet.round.borrow_mut() = Some(round.clone());
    let running = Running {
        slot: &fleet.round,
        round,
    };
    let answer = ask_all(gw, fleet).await;
    *running.round.answer.borrow_mut() = Some(answer.clone());
    answer
}

/// One health round: every member asked, within the fleet timeout.
async fn ask_all(gw: &Gateway, fleet: &CompiledFleet) -> Value {
    let timeout = fleet.config.timeout;
    let deadline = Instant::now() + timeout;
    let path = &fleet.config.health_path;
    let calls: Vec<LocalFuture<'_, (u64, Result<Value, ProxyError>)>> = fleet
        .members
        .iter()
        .map(|member| {
            Box::pin(async move {
                let start = Instant::now();
                let mut headers = member_headers(fleet, HeaderMap::new());
                headers.insert(http::header::HOST, member.authority.clone());
                headers.insert(
                    http::header::USER_AGENT,
                    HeaderValue::from_static(endpoint::USER_AGENT_STR),
                );
                let build = || {
                    let mut req = http::Request::new(http_body_util::Full::new(bytes::Bytes::new()));
                    *req.uri_mut() = path.parse().unwrap_or_else(|_| http::Uri::from_static("/__health"));
                    *req.headers_mut() = headers.clone();
                    req
                };
                let result = proxy::fetch(&member.pool, &build, deadline)
                    .await
                    .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null));
                (start.elapsed().as_millis() as u64, result)
            }) as LocalFuture<'_, _>
        })
        .collect();
    let results = runtime::join_bounded(calls, fleet.config.max_in_flight, deadline).await;
    let wall = SystemTime::now();
    let mut members = Map::new();
    let (mut ok, mut degraded, mut unreachable) = (0u64, 0u64, 0u64);
    let now = gw.clock.now();
    for (i, (member, result)) in fleet.members.iter().zip(results).enumerate() {
        // It answered, whatever it said.
        if matches!(result, Some((_, Ok(_) | Err(ProxyError::Status(_))))) {
            member.last_seen.set(Some(wall));
        }
        let mut entry = match result {
            Some((latency, Ok(health))) => {
                let status = if health.get("status").and_then(Value::as_str) == Some("ok") {
                    "ok"
                } else {
                    "degraded"
                };
                if status == "ok" {
                    ok += 1
                } else {
                    degraded += 1
                }
                json!({"status": status, "latency_ms": latency, "health": health})
            }
            Some((latency, Err(ProxyError::Status(s)))) => {
                degraded += 1;
                json!({"status": "degraded", "latency_ms": latency, "error": format!("status {s}")})
            }
            Some((_, Err(e))) => {
                unreachable += 1;
                json!({"status": "unreachable", "error": describe(&e, timeout)})
            }
            None => {
                unreachable += 1;
                json!({"status": "unreachable", "error": describe(&ProxyError::Timeout, timeout)})
            }
        };
        if let Some(seen) = member.last_seen.get() {
            entry["last_seen"] = Value::from(crate::time::rfc3339(seen));
        }
        // A member whose circuit (on any fan-out backend) is not closed says so.
        let open = gw
            .backends
            .iter()
            .flatten()
            .filter_map(|b| b.member_breakers.get(i))
            .any(|b| !matches!(b.borrow_mut().state(now), crate::breaker::State::Closed { .. }));
        if open {
            entry["circuit"] = Value::from("open");
        }
        members.insert(member.id.clone(), entry);
    }
    let status = if degraded + unreachable == 0 { "ok" } else { "degraded" };
    json!({"status": status, "now": crate::time::rfc3339(wall),
           "counts": {"ok": ok, "degraded": degraded, "unreachable": unreachable}, "members": members})
}
