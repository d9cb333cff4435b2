//! Runs one endpoint: calls all its backends concurrently under the endpoint's one deadline
//! and merges what arrived in config order, streams a `no-op` backend's answer through, or
//! writes a request body to a sensor. A slow backend never delays the answer past the
//! deadline: it is cancelled and the answer is marked incomplete. A backend's error status
//! may reach the client (`backend/http`): reported in the answer (`return_error_details`) or
//! as the endpoint's status when nothing else answered (`return_error_code`).

use std::fmt;
use std::time::Instant;

use http::Response;
use serde_json::{Map, Value};

use crate::backend::{Backend, CallError, Inbound, Source};
use crate::config::Endpoint;
use crate::gateway::Gateway;
use crate::merge;
use crate::proxy::{ErrorReply, Streaming, UpstreamError};
use crate::runtime::{self, LocalFuture};
use crate::sensor::run::WriteError;

/// Why an endpoint produced no data at all. Each string names one backend and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    /// Every backend failed before the deadline.
    Failed(Vec<String>),
    /// The deadline passed with no backend successful.
    Timeout(Vec<String>),
    /// Every backend was a sensor without data to give; seconds until the soonest retry.
    Unavailable(Vec<String>, u64),
    /// The request body cannot be written to a sensor (empty, not one line, too long).
    BadWrite(String),
    /// No backend answered, and one with `backend/http.return_error_code` failed with this
    /// error status: the client gets it.
    Status(Vec<String>, Box<ErrorReply>),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Failed(d)
            | EndpointError::Timeout(d)
            | EndpointError::Unavailable(d, _)
            | EndpointError::Status(d, _) => f.write_str(&d.join("; ")),
            EndpointError::BadWrite(why) => f.write_str(why),
        }
    }
}

/// A merged answer.
#[derive(Debug)]
pub struct Answer {
    /// The merged data.
    pub data: Map<String, Value>,
    /// Whether every backend succeeded in time.
    pub complete: bool,
}

/// One backend with `concurrent_calls` identical calls raced; the first success wins.
async fn call_raced(
    endpoint: &Endpoint,
    backend: &Backend,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Result<Map<String, Value>, CallError> {
    if endpoint.concurrent_calls <= 1 || matches!(backend.source, Source::Fleet(_)) {
        return backend.call(inbound, deadline).await;
    }
    let calls = (0..endpoint.concurrent_calls)
        .map(|_| Box::pin(backend.call(inbound, deadline)) as LocalFuture<'_, _>)
        .collect();
    runtime::first_ok(calls).await
}

/// A `write` sensor backend: the request body, one line, newline-terminated, written to the
/// device; the number of bytes written. The body must be one line of at most `max_frame` bytes.
pub async fn write_sensor(
    gw: &Gateway,
    index: usize,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Result<usize, EndpointError> {
    let Source::SensorWrite(sensor) = &gw.backends[index][0].source else {
        return Err(EndpointError::Failed(vec!["not a sensor backend".into()]));
    };
    let body = &inbound.body[..];
    let line = body.strip_suffix(b"\n").unwrap_or(body);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(EndpointError::BadWrite("the body is empty: nothing to write".into()));
    }
    if line.contains(&b'\n') || line.contains(&b'\r') {
        return Err(EndpointError::BadWrite("the body must be one line".into()));
    }
    if line.len() + 1 > sensor.config.max_frame {
        return Err(EndpointError::BadWrite(format!(
            "the line is longer than max_frame ({} bytes)",
            sensor.config.max_frame
        )));
    }
    let mut framed = Vec::with_capacity(line.len() + 1);
    framed.extend_from_slice(line);
    framed.push(b'\n');
    let retry = sensor.retry_in().as_secs().max(1);
    let what = format!("sensor {}", sensor.config.name);
    let written = runtime::until(deadline, sensor.write(&framed)).await;
    match written {
        Some(Ok(n)) => Ok(n),
        Some(Err(WriteError::Down(e))) => Err(EndpointError::Unavailable(vec![format!("{what}: {e}")], retry)),
        Some(Err(WriteError::Busy)) => Err(EndpointError::Unavailable(
            vec![format!("{what}: another write is in progress")],
            1,
        )),
        Some(Err(WriteError::Failed(e))) => Err(EndpointError::Failed(vec![format!("{what}: write failed: {e}")])),
        None => Err(EndpointError::Timeout(vec![format!("{what}: write timed out")])),
    }
}

/// Calls all backends of endpoint `index` and merges their answers in config order.
pub async fn aggregate(
    gw: &Gateway,
    index: usize,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Result<Answer, EndpointError> {
    let endpoint = &gw.config.endpoints[index];
    let calls: Vec<LocalFuture<'_, Result<Map<String, Value>, CallError>>> = gw.backends[index]
        .iter()
        .map(|b| Box::pin(call_raced(endpoint, b, inbound, deadline)) as LocalFuture<'_, _>)
        .collect();
    let results = runtime::join_until(calls, deadline).await;

    let mut data = Map::new();
    let mut problems = Vec::new();
    let (mut succeeded, mut timed_out) = (0, false);
    // Seconds until the soonest sensor retry, while every failure is a sensor's.
    let mut sensor_retry: Option<u64> = None;
    let mut other_failure = false;
    // The first error status of a `return_error_code` backend, in config order.
    let mut forwarded: Option<Box<ErrorReply>> = None;
    for (i, (result, backend)) in results.into_iter().zip(&endpoint.backends).enumerate() {
        match result {
            Some(Err(CallError::Detailed(status, part))) => {
                gw.metrics.backend_failed(index, i, false);
                problems.push(format!("backend {i} ({}): status {status}", backend.url_pattern));
                merge::merge(&mut data, part);
                succeeded += 1;
            }
            Some(Ok(part)) => {
                // A fan-out with failed members is an answer, but not a complete one.
                if let Some(Value::Object(failed)) = part.get("_errors") {
                    problems.push(format!(
                        "backend {i} ({}): {} fleet members failed",
                        backend.url_pattern,
                        failed.len()
                    ));
                }
                merge::merge(&mut data, part);
                succeeded += 1;
            }
            Some(Err(CallError::TIMEOUT)) | None => {
                timed_out = true;
                gw.metrics.backend_failed(index, i, true);
                problems.push(format!("backend {i} ({}): timed out", backend.url_pattern));
            }
            Some(Err(e)) => {
                match &e {
                    CallError::Sensor(_, retry) => {
                        sensor_retry = Some(sensor_retry.map_or(*retry, |r| r.min(*retry)));
                    }
                    CallError::Upstream(UpstreamError::Status(reply)) if backend.return_error_code => {
                        other_failure = true;
                        forwarded.get_or_insert_with(|| reply.clone());
                    }
                    _ => other_failure = true,
                }
                gw.metrics.backend_failed(index, i, false);
                problems.push(format!("backend {i} ({}): {e}", backend.url_pattern));
            }
        }
    }
    if succeeded > 0 {
        if !problems.is_empty() {
            log::warn!(
                "{} {}: partial answer: {}",
                endpoint.method,
                endpoint.path,
                problems.join("; ")
            );
        }
        return Ok(Answer {
            data,
            complete: problems.is_empty(),
        });
    }
    log::warn!(
        "{} {}: no answer: {}",
        endpoint.method,
        endpoint.path,
        problems.join("; ")
    );
    Err(if let Some(reply) = forwarded {
        EndpointError::Status(problems, reply)
    } else if let (Some(retry), false, false) = (sensor_retry, other_failure, timed_out) {
        EndpointError::Unavailable(problems, retry)
    } else if timed_out {
        EndpointError::Timeout(problems)
    } else {
        EndpointError::Failed(problems)
    })
}

/// `no-op`: the single backend's response, streamed through unchanged (hop-by-hop headers
/// aside). The head must arrive by the deadline, and the body too or the stream is cut there.
pub async fn pass_through(
    gw: &Gateway,
    index: usize,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Result<Response<Streaming>, EndpointError> {
    let endpoint = &gw.config.endpoints[index];
    let backend = &gw.backends[index][0];
    backend.open(inbound, deadline).await.map_err(|e| {
        let detail = vec![format!("backend 0 ({}): {e}", backend.spec.url_pattern)];
        log::warn!("{} {}: no answer: {}", endpoint.method, endpoint.path, detail[0]);
        if e == CallError::TIMEOUT {
            EndpointError::Timeout(detail)
        } else {
            EndpointError::Failed(detail)
        }
    })
}
