//! The central office's "health of healths" (`GET /__fleet/health`): every member's own
//! `/__health`, asked at most `max_in_flight` at a time; a round never outlasts the fleet
//! `timeout`, however many members hang: those not answered by then are reported, not waited
//! for. Requests that arrive while a round runs share its answer. The fan-out backends that
//! call every member live in `backend::fanout`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value, json};

use crate::backend::fanout::{Members, describe};
use crate::backend::request::USER_AGENT_STR;
use crate::backend::{Backend, CallError, Source};
use crate::proxy::{self, UpstreamError};
use crate::runtime::{self, LocalFuture};
use crate::time::Nanos;

/// The fleet, on a central gatelet.
pub struct Fleet {
    /// Its members and settings (shared with its fan-out backends).
    pub members: Rc<Members>,
    /// The health round in progress, if any: every dashboard on the wall polls
    /// `/__fleet/health`, and viewers that ask meanwhile share its answer instead of asking
    /// every bus once more each.
    round: RefCell<Option<Rc<Round>>>,
}

impl Fleet {
    /// The fleet of `members`, no round running.
    pub fn new(members: Rc<Members>) -> Fleet {
        Fleet {
            members,
            round: RefCell::new(None),
        }
    }
}

/// One health round, shared by the requests that arrive while it runs.
#[derive(Default)]
struct Round {
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

/// `GET /__fleet/health`: every member's own health, asked at once (bounded), within the fleet
/// timeout. A request that arrives while a round runs gets that round's answer.
/// `backends` are the gateway's (their fan-out circuits are reported per member), `now` its
/// clock.
pub async fn health(fleet: &Fleet, backends: &[Vec<Backend>], now: Nanos) -> Value {
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
    let answer = ask_all(&fleet.members, backends, now).await;
    *running.round.answer.borrow_mut() = Some(answer.clone());
    answer
}

/// One health round: every member asked, within the fleet timeout.
async fn ask_all(fleet: &Members, backends: &[Vec<Backend>], now: Nanos) -> Value {
    let timeout = fleet.settings.timeout;
    let deadline = Instant::now() + timeout;
    let path = &fleet.settings.health_path;
    let calls: Vec<LocalFuture<'_, (u64, Result<Value, UpstreamError>)>> = fleet
        .list
        .iter()
        .map(|member| {
            Box::pin(async move {
                let start = Instant::now();
                let mut headers = fleet.headers(HeaderMap::new());
                headers.insert(http::header::HOST, member.authority.clone());
                headers.insert(http::header::USER_AGENT, HeaderValue::from_static(USER_AGENT_STR));
                let build = || {
                    let mut req = http::Request::new(http_body_util::Full::new(bytes::Bytes::new()));
                    *req.uri_mut() = path.parse().unwrap_or_else(|_| http::Uri::from_static("/__health"));
                    *req.headers_mut() = headers.clone();
                    req
                };
                let result = proxy::fetch(&member.pool, &build, None, deadline)
                    .await
                    .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null));
                (start.elapsed().as_millis() as u64, result)
            }) as LocalFuture<'_, _>
        })
        .collect();
    let results = runtime::join_bounded(calls, fleet.settings.max_in_flight, deadline).await;
    let wall = SystemTime::now();
    let mut members = Map::new();
    let (mut ok, mut degraded, mut unreachable) = (0u64, 0u64, 0u64);
    for (i, (member, result)) in fleet.list.iter().zip(results).enumerate() {
        // It answered, whatever it said.
        if matches!(result, Some((_, Ok(_) | Err(UpstreamError::Status(_))))) {
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
            Some((latency, Err(UpstreamError::Status(s)))) => {
                degraded += 1;
                json!({"status": "degraded", "latency_ms": latency, "error": format!("status {}", s.status)})
            }
            Some((_, Err(e))) => {
                unreachable += 1;
                json!({"status": "unreachable", "error": describe(&CallError::Upstream(e), timeout)})
            }
            None => {
                unreachable += 1;
                json!({"status": "unreachable", "error": describe(&CallError::TIMEOUT, timeout)})
            }
        };
        if let Some(seen) = member.last_seen.get() {
            entry["last_seen"] = Value::from(crate::time::rfc3339(seen));
        }
        // A member whose circuit (on any fan-out backend) is not closed says so.
        let open = backends
            .iter()
            .flatten()
            .filter_map(|b| match &b.source {
                Source::Fleet(fan) => fan.circuits.get(i),
                _ => None,
            })
            .any(|c| !matches!(c.state(now), crate::breaker::State::Closed { .. }));
        if open {
            entry["circuit"] = Value::from("open");
        }
        members.insert(member.id.clone(), entry);
    }
    let status = if degraded + unreachable == 0 { "ok" } else { "degraded" };
    json!({"status": status, "now": crate::time::rfc3339(wall),
           "counts": {"ok": ok, "degraded": degraded, "unreachable": unreachable}, "members": members})
}
