//! Fan-out backends (`gatelet/fleet` on a backend): one call per fleet member, at most
//! `max_in_flight` at a time, each answer shaped on its own and grouped under the member's id,
//! failures under `_errors`. The round never outlasts the fleet `timeout` (or the endpoint
//! deadline), however many members hang: those not answered by then are reported, not waited
//! for.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use super::qos::{self, Circuit};
use super::{Backend, CallError, Inbound, request};
use crate::config::Fleet;
use crate::merge::Shape;
use crate::proxy::pool::Pool;
use crate::proxy::{self, UpstreamError};
use crate::runtime::{self, LocalFuture};

/// One member, ready to call.
pub struct Member {
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

/// The fleet's members and settings, shared by its fan-out backends and its health rounds.
pub struct Members {
    /// The settings.
    pub settings: Fleet,
    /// The members, in config order.
    pub list: Vec<Member>,
}

impl Members {
    /// `headers` plus the fleet's own (`headers` of `gatelet/fleet`: an API key for the buses).
    pub fn headers(&self, mut headers: HeaderMap) -> HeaderMap {
        for (name, value) in &self.settings.headers {
            headers.insert::<HeaderName>(name.clone(), value.clone());
        }
        headers
    }
}

/// A fan-out backend's members and, with `qos/circuit-breaker`, one circuit per member (same
/// order).
pub struct FanOut {
    /// The fleet.
    pub members: Rc<Members>,
    /// Per member, when the backend has a circuit breaker.
    pub circuits: Vec<Circuit>,
}

/// What a member's failure looks like in answers: the error's own text ("connection refused",
/// "status 503", "circuit open"), with the fleet timeout spelled out for timeouts.
pub fn describe(e: &CallError, timeout: Duration) -> String {
    match e {
        CallError::Upstream(UpstreamError::Timeout) => format!("timeout after {}ms", timeout.as_millis()),
        other => other.to_string(),
    }
}

/// Calls a fan-out backend on every member: `{"bus-17": {...}, ..., "_errors": {"bus-18":
/// {"error": "..."}}}` (`_errors` only when some failed). Fails only when every member failed.
pub async fn fan_out(
    backend: &Backend,
    fan: &FanOut,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Result<Map<String, Value>, CallError> {
    let fleet = &fan.members;
    let timeout = fleet.settings.timeout;
    let deadline = deadline.min(Instant::now() + timeout);
    let uri = backend.template.uri(inbound)?;
    // Per member: the shape without `group`, which applies to the whole answer.
    let member_shape = Shape {
        group: None,
        ..backend.spec.shape.clone()
    };
    let calls: Vec<LocalFuture<'_, Result<Map<String, Value>, CallError>>> = fleet
        .list
        .iter()
        .enumerate()
        .map(|(i, member)| {
            let (uri, shape) = (&uri, &member_shape);
            Box::pin(async move {
                let probe = match fan.circuits.get(i) {
                    Some(circuit) => Some(circuit.probe(backend.clock)?),
                    None => None,
                };
                let build = || {
                    let headers = fleet.headers(backend.template.headers(&member.authority, inbound));
                    request::request(&backend.spec.method, uri, headers, &inbound.body)
                };
                let key = || format!("{}{uri}", member.authority.to_str().unwrap_or(""));
                let credentials = || backend.template.sends_credentials(inbound);
                let body = qos::cached(backend.cache.as_ref(), credentials, backend.clock, key, || {
                    proxy::fetch(&member.pool, &build, None, deadline)
                })
                .await?;
                if let Some(p) = &probe {
                    p.succeeded();
                }
                backend.decode(&body, shape)
            }) as LocalFuture<'_, _>
        })
        .collect();
    let results = runtime::join_bounded(calls, fleet.settings.max_in_flight, deadline).await;
    let (mut data, mut errors) = (Map::new(), Map::new());
    for (member, result) in fleet.list.iter().zip(results) {
        match result {
            Some(Ok(part)) => {
                data.insert(member.id.clone(), Value::Object(part));
            }
            Some(Err(e)) => {
                errors.insert(member.id.clone(), json!({"error": describe(&e, timeout)}));
            }
            None => {
                let e = CallError::Upstream(UpstreamError::Timeout);
                errors.insert(member.id.clone(), json!({"error": describe(&e, timeout)}));
            }
        }
    }
    if data.is_empty() && !errors.is_empty() {
        return Err(CallError::AllMembersFailed(errors.len()));
    }
    if !errors.is_empty() {
        data.insert("_errors".into(), Value::Object(errors));
    }
    Ok(match &backend.spec.shape.group {
        Some(g) => Map::from_iter([(g.clone(), Value::Object(data))]),
        None => data,
    })
}
