//! Runs one endpoint: calls all its backends concurrently under the endpoint's one deadline
//! (or, `sequential`, one after another, later URLs filled from earlier answers) and merges
//! what arrived in config order, then applies the endpoint's `flatmap_filter` and static data;
//! or streams a `no-op` backend's answer through, or writes a request body to a sensor. A slow
//! backend never delays the answer past the deadline: it is cancelled and the answer is marked
//! incomplete.

use std::fmt;
use std::time::Instant;

use http::Response;
use serde_json::{Map, Value};

use crate::backend::request::{self, Piece};
use crate::backend::{Backend, CallError, Inbound, Source};
use crate::config::{Endpoint, Var};
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
    /// The outbox or inbox refused the request: the status and why (always told).
    Refused(u16, String),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Failed(d)
            | EndpointError::Timeout(d)
            | EndpointError::Unavailable(d, _)
            | EndpointError::Status(d, _) => f.write_str(&d.join("; ")),
            EndpointError::BadWrite(why) | EndpointError::Refused(_, why) => f.write_str(why),
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

/// An endpoint whose backend is the outbox or the inbox: its status and JSON body, or `None`
/// for any other backend.
///
/// - outbox, POST: the body is one event; 201 `{"seq": N, "id": "<bus>:N"}` once durable;
/// - inbox, POST: a bus's batch (gzip or not); 200 `{"acked": N}` once stored and synced;
/// - inbox, GET: `?since=N&limit=M`, a page of stored events.
pub async fn journal(
    backend: &Backend,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Option<Result<(http::StatusCode, Vec<u8>), EndpointError>> {
    use crate::outbox::{Refused, inbox};
    use http::StatusCode;
    let refused = |status: StatusCode, why: String| EndpointError::Refused(status.as_u16(), why);
    Some(match &backend.source {
        Source::Outbox(outbox) => match outbox.post(&inbound.body, deadline).await {
            Ok(seq) => {
                let id = format!("{}:{seq}", outbox.config.bus);
                let doc = serde_json::json!({"seq": seq, "id": id});
                Ok((StatusCode::CREATED, doc.to_string().into_bytes()))
            }
            Err(Refused::NotAnObject(why)) => Err(refused(StatusCode::BAD_REQUEST, why)),
            Err(Refused::TooLarge) => Err(refused(StatusCode::PAYLOAD_TOO_LARGE, "the event is too large".into())),
            Err(Refused::Full) => Err(refused(
                StatusCode::INSUFFICIENT_STORAGE,
                "the outbox is full (counted as lost)".into(),
            )),
            Err(Refused::Unavailable(why)) => Err(refused(StatusCode::SERVICE_UNAVAILABLE, why)),
        },
        Source::Inbox(inbox) if backend.spec.method == http::Method::GET => {
            let param = |name: &str| {
                inbound
                    .query?
                    .split('&')
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            let limit = param("limit").map_or(inbox::MAX_PAGE, |l| usize::try_from(l).unwrap_or(usize::MAX));
            match inbox.read(param("since").unwrap_or(0), limit) {
                Ok(doc) => Ok((StatusCode::OK, doc.to_string().into_bytes())),
                Err(e) => Err(refused(StatusCode::SERVICE_UNAVAILABLE, format!("{e:?}"))),
            }
        }
        Source::Inbox(inbox) => {
            let gzip = inbound
                .headers
                .get(http::header::CONTENT_ENCODING)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
            let body = match gzip {
                true => match crate::proxy::gzip::inflate(&inbound.body, crate::net::limits::MAX_BODY_BYTES) {
                    Ok(b) => b,
                    Err(e) => return Some(Err(refused(StatusCode::BAD_REQUEST, e.to_string()))),
                },
                false => inbound.body.clone(),
            };
            match inbox.store(&body, inbound.subject.as_deref()) {
                Ok(acked) => Ok((StatusCode::OK, crate::outbox::wire::answer(acked).into_bytes())),
                Err(inbox::Refused::Bad(why)) => Err(refused(StatusCode::BAD_REQUEST, why)),
                Err(inbox::Refused::NotYours(why)) => Err(refused(StatusCode::FORBIDDEN, why)),
                Err(inbox::Refused::Unavailable(why)) => Err(refused(StatusCode::SERVICE_UNAVAILABLE, why)),
                Err(inbox::Refused::Full) => Err(refused(StatusCode::INSUFFICIENT_STORAGE, "the inbox is full".into())),
            }
        }
        _ => return None,
    })
}

/// Calls all backends of endpoint `index` (concurrently, or one after another when it is
/// `sequential`) and merges their answers in config order; then its `flatmap_filter` and its
/// static data.
pub async fn aggregate(
    gw: &Gateway,
    index: usize,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Result<Answer, EndpointError> {
    let endpoint = &gw.config.endpoints[index];
    let mut merged = Merged::default();
    if endpoint.sequential {
        chain(gw, index, inbound, deadline, &mut merged).await;
    } else {
        let calls: Vec<LocalFuture<'_, Result<Map<String, Value>, CallError>>> = gw.backends[index]
            .iter()
            .map(|b| Box::pin(call_raced(endpoint, b, inbound, deadline)) as LocalFuture<'_, _>)
            .collect();
        let results = runtime::join_until(calls, deadline).await;
        for (i, result) in results.into_iter().enumerate() {
            merged.add(gw, index, i, result);
        }
    }
    merged.finish(endpoint)
}

/// `sequential`: each backend called after the previous one answered, its `{respN_field}`
/// placeholders filled from the earlier answers. The chain stops at the first failure (a
/// placeholder without a value is one: that backend is not called) or incomplete answer.
async fn chain(gw: &Gateway, index: usize, inbound: &Inbound<'_>, deadline: Instant, merged: &mut Merged) {
    let endpoint = &gw.config.endpoints[index];
    {
        let mut vars = inbound.vars.borrow_mut();
        if vars.len() < endpoint.vars.len() {
            vars.resize(endpoint.vars.len(), None);
        }
    }
    let backends = &gw.backends[index];
    for (i, backend) in backends.iter().enumerate() {
        let result = match missing_var(endpoint, backend, inbound) {
            Some(what) => Some(Err(CallError::MissingValue(what))),
            None => runtime::until(deadline, call_raced(endpoint, backend, inbound, deadline)).await,
        };
        if let Some(Ok(part)) = &result {
            fill_vars(endpoint, i, part, inbound);
        }
        let went_on = matches!(&result, Some(Ok(part)) if !part.contains_key("_errors"));
        merged.add(gw, index, i, result);
        if !went_on {
            for (j, later) in endpoint.backends.iter().enumerate().skip(i + 1) {
                merged.problems.push(format!(
                    "backend {j} ({}): not called: the sequence stopped",
                    later.url_pattern
                ));
            }
            return;
        }
    }
}

/// The first placeholder of `backend`'s `url_pattern` still without a value, as written.
fn missing_var(endpoint: &Endpoint, backend: &Backend, inbound: &Inbound<'_>) -> Option<String> {
    let vars = inbound.vars.borrow();
    backend.template.url.iter().find_map(|piece| match piece {
        Piece::Var(v) if !matches!(vars.get(*v), Some(Some(_))) => Some(match &endpoint.vars[*v] {
            Var::Resp { backend, path } => format!(
                "{{resp{backend}_{}}} has no value in backend {backend}'s answer",
                path.join(".")
            ),
            Var::Jwt(claim) => format!("the token has no claim \"{claim}\""),
        }),
        _ => None,
    })
}

/// Backend `i`'s answer into the placeholders that read it. A value that is missing, null, empty
/// or a path step of its own (`.`, `..`) stays unset.
fn fill_vars(endpoint: &Endpoint, i: usize, part: &Map<String, Value>, inbound: &Inbound<'_>) {
    let mut vars = inbound.vars.borrow_mut();
    for (slot, var) in endpoint.vars.iter().enumerate() {
        if let Var::Resp { backend, path } = var
            && *backend == i
        {
            vars[slot] = merge::lookup(part, path)
                .and_then(merge::text)
                .filter(|t| request::usable_in_url(t));
        }
    }
}

/// What the backends of one request gave, merged in config order as they are added.
#[derive(Default)]
struct Merged {
    data: Map<String, Value>,
    /// One line per backend that failed, timed out, was not called or answered partly.
    problems: Vec<String>,
    succeeded: usize,
    /// Some backend failed or timed out.
    failed: bool,
    timed_out: bool,
    /// Seconds until the soonest sensor retry, while every failure is a sensor's.
    sensor_retry: Option<u64>,
    other_failure: bool,
    /// The first error status of a `return_error_code` backend, in config order.
    forwarded: Option<Box<ErrorReply>>,
}

impl Merged {
    /// Backend `i`'s outcome (`None`: the deadline passed first).
    fn add(&mut self, gw: &Gateway, index: usize, i: usize, result: Option<Result<Map<String, Value>, CallError>>) {
        let backend = &gw.config.endpoints[index].backends[i];
        match result {
            Some(Err(CallError::Detailed(status, part))) => {
                gw.metrics.backend_failed(index, i, false);
                self.failed = true;
                self.problems
                    .push(format!("backend {i} ({}): status {status}", backend.url_pattern));
                merge::merge(&mut self.data, part);
                self.succeeded += 1;
            }
            Some(Ok(part)) => {
                // A fan-out with failed members is an answer, but not a complete one.
                if let Some(Value::Object(failed)) = part.get("_errors") {
                    self.problems.push(format!(
                        "backend {i} ({}): {} fleet members failed",
                        backend.url_pattern,
                        failed.len()
                    ));
                }
                merge::merge(&mut self.data, part);
                self.succeeded += 1;
            }
            Some(Err(CallError::TIMEOUT)) | None => {
                self.timed_out = true;
                self.failed = true;
                gw.metrics.backend_failed(index, i, true);
                self.problems
                    .push(format!("backend {i} ({}): timed out", backend.url_pattern));
            }
            Some(Err(e)) => {
                match &e {
                    CallError::Sensor(_, retry) => {
                        self.sensor_retry = Some(self.sensor_retry.map_or(*retry, |r| r.min(*retry)));
                    }
                    CallError::Upstream(UpstreamError::Status(reply)) if backend.return_error_code => {
                        self.other_failure = true;
                        self.forwarded.get_or_insert_with(|| reply.clone());
                    }
                    _ => self.other_failure = true,
                }
                self.failed = true;
                gw.metrics.backend_failed(index, i, false);
                self.problems
                    .push(format!("backend {i} ({}): {e}", backend.url_pattern));
            }
        }
    }

    /// The answer: the merged data through the endpoint's `flatmap_filter`, with its static
    /// data when the strategy matches (which also answers when no backend did), or why there is
    /// none.
    fn finish(mut self, endpoint: &Endpoint) -> Result<Answer, EndpointError> {
        let complete = self.problems.is_empty();
        let fixed = endpoint
            .static_data
            .as_ref()
            .filter(|s| s.strategy.matches(self.failed, complete && self.succeeded > 0));
        if self.succeeded > 0 || fixed.is_some() {
            if !complete {
                log::warn!(
                    "{} {}: partial answer{}: {}",
                    endpoint.method,
                    endpoint.path,
                    if self.succeeded == 0 { " (static data only)" } else { "" },
                    self.problems.join("; ")
                );
            }
            if !endpoint.flatmap.is_empty() {
                merge::flatmap::apply(&endpoint.flatmap, &mut self.data);
            }
            if let Some(fixed) = fixed {
                for (k, v) in &fixed.data {
                    self.data.insert(k.clone(), v.clone());
                }
            }
            return Ok(Answer {
                data: self.data,
                complete,
            });
        }
        log::warn!(
            "{} {}: no answer: {}",
            endpoint.method,
            endpoint.path,
            self.problems.join("; ")
        );
        let problems = self.problems;
        Err(if let Some(reply) = self.forwarded {
            EndpointError::Status(problems, reply)
        } else if let (Some(retry), false, false) = (self.sensor_retry, self.other_failure, self.timed_out) {
            EndpointError::Unavailable(problems, retry)
        } else if self.timed_out {
            EndpointError::Timeout(problems)
        } else {
            EndpointError::Failed(problems)
        })
    }
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
