//! Runs one endpoint: builds each backend's request from the client's (only the configured
//! headers and query parameters), calls all backends concurrently under the endpoint's one
//! deadline, and merges what arrived in config order. A slow backend never delays the answer
//! past the deadline: it is cancelled and the answer is marked incomplete.

use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::Full;
use serde_json::{Map, Value};

use crate::config::{Backend, Endpoint, Forward};
use crate::gateway::{CompiledBackend, Gateway, HeaderForward, Piece};
use crate::merge;
use crate::proxy::{self, ProxyError, Streaming};
use crate::runtime::{self, LocalFuture};
use crate::sensor::run::WriteError;
use crate::time::Nanos;

/// `User-Agent` sent to backends.
/// `User-Agent` sent upstream.
pub const USER_AGENT_STR: &str = concat!("gatelet/", env!("CARGO_PKG_VERSION"));
const USER_AGENT: HeaderValue = HeaderValue::from_static(USER_AGENT_STR);
/// Names built at compile time (a `&str` name is parsed on every insert).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Why an endpoint produced no data at all. Each string names one backend and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    /// Every backend failed before the deadline.
    Failed(Vec<String>),
    /// The deadline passed with no backend successful.
    Timeout(Vec<String>),
    /// Every backend was a sensor without data to give; seconds until the soonest retry.
    Unavailable(Vec<String>, u64),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (EndpointError::Failed(d) | EndpointError::Timeout(d) | EndpointError::Unavailable(d, _)) = self;
        f.write_str(&d.join("; "))
    }
}

/// What the endpoint needs of the client's request.
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
    /// The limiters' clock when the request arrived.
    pub now: Nanos,
    /// Headers added for every backend (`propagate_claims`).
    pub propagated: Vec<(HeaderName, HeaderValue)>,
}

/// A merged answer.
#[derive(Debug)]
pub struct Answer {
    /// The merged data.
    pub data: Map<String, Value>,
    /// Whether every backend succeeded in time.
    pub complete: bool,
}

/// Hop-by-hop and framing headers: never forwarded whatever `input_headers` says, because they
/// describe this connection, not the request (RFC 9110 §7.6.1), or are set by gatelet.
pub(crate) fn never_forwarded(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "x-forwarded-for"
            | "x-forwarded-host"
    )
}

/// The request target for one backend: `url_pattern` with parameters, plus forwarded query.
pub(crate) fn target(backend: &CompiledBackend, inbound: &Inbound<'_>) -> String {
    let mut uri = String::with_capacity(64);
    for piece in &backend.url {
        match piece {
            Piece::Literal(l) => uri.push_str(l),
            Piece::Param(i) => {
                // A client path segment is a valid path, but hyper's URI parser (like RFC 3986)
                // refuses a raw '"' in a query, where `url_pattern` may put a parameter: sent
                // raw there, `request` would fall back to "/". Encoded everywhere, for one rule.
                let value = inbound.params.get(*i).copied().unwrap_or_default();
                if value.contains('"') {
                    uri.push_str(&value.replace('"', "%22"));
                } else {
                    uri.push_str(value);
                }
            }
        }
    }
    let Some(query) = inbound.query.filter(|q| !q.is_empty()) else {
        return uri;
    };
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for pair in query.split('&') {
        let name = pair.split('=').next().unwrap_or_default();
        let wanted = match &backend.query {
            Forward::All => !pair.is_empty(),
            Forward::Only(names) => names.iter().any(|n| n == name),
        };
        if wanted {
            uri.push(sep);
            uri.push_str(pair);
            sep = '&';
        }
    }
    uri
}

/// The headers one backend receives.
pub(crate) fn headers(backend: &CompiledBackend, host: &HeaderValue, inbound: &Inbound<'_>) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(8);
    match &backend.headers {
        HeaderForward::All => {
            for (name, value) in inbound.headers {
                if !never_forwarded(name) && name != header::USER_AGENT {
                    out.append(name, value.clone());
                }
            }
        }
        HeaderForward::Only(names) => {
            for name in names {
                for value in inbound.headers.get_all(name) {
                    out.append(name.clone(), value.clone());
                }
            }
        }
    }
    out.insert(header::HOST, host.clone());
    if !out.contains_key(header::USER_AGENT) {
        out.insert(header::USER_AGENT, USER_AGENT);
    }
    out.insert(X_FORWARDED_FOR, inbound.forwarded_for.clone());
    if let Some(h) = inbound.headers.get(header::HOST) {
        out.insert(X_FORWARDED_HOST, h.clone());
    }
    for (name, value) in &inbound.propagated {
        out.insert(name.clone(), value.clone());
    }
    out
}

/// [`target`] as the URI the backend request is sent to, parsed once per call (a retry reuses
/// it). The pattern is validated at start-up and parameters are escaped path segments, so this
/// should always parse; if it does not, the call fails rather than go somewhere else.
pub(crate) fn target_uri(backend: &CompiledBackend, inbound: &Inbound<'_>) -> Result<http::Uri, ProxyError> {
    let uri = target(backend, inbound);
    uri.parse().map_err(|_| ProxyError::BadTarget(uri))
}

/// Builds the request one backend receives; called again for a retry. `headers` is built anew
/// for each call (cheaper than keeping a map to clone for the rare retry).
pub(crate) fn request(backend: &Backend, uri: &http::Uri, headers: HeaderMap, body: &Bytes) -> Request<Full<Bytes>> {
    let body = if matches!(backend.method, Method::GET | Method::HEAD) {
        Bytes::new()
    } else {
        body.clone()
    };
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = backend.method.clone();
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers;
    req
}

/// `?since=N` for event sensors, when the endpoint forwards `since` (default 0: all kept).
fn since(compiled: &CompiledBackend, inbound: &Inbound<'_>) -> u64 {
    let forwarded = match &compiled.query {
        Forward::All => true,
        Forward::Only(names) => names.iter().any(|n| n == "since"),
    };
    let Some(query) = inbound.query.filter(|_| forwarded) else {
        return 0;
    };
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("since="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The backend's `qos/ratelimit/proxy` bucket, if any, has a token for this call.
fn admit(compiled: &CompiledBackend, now: Nanos) -> Result<(), ProxyError> {
    match &compiled.limit {
        Some(limit) if limit.try_acquire(now).is_err() => Err(ProxyError::RateLimited),
        _ => Ok(()),
    }
}

/// Reports a call's outcome to its circuit breaker when dropped: a success only if marked so,
/// so an error, a timeout or a cancelled call (the endpoint deadline) all count as failures.
pub(crate) struct Outcome<'b> {
    breaker: &'b std::cell::RefCell<crate::breaker::Breaker>,
    log: bool,
    name: &'b str,
    clock: crate::time::Clock,
    /// Set by the caller once the call has succeeded.
    pub(crate) success: std::cell::Cell<bool>,
}

impl<'b> Outcome<'b> {
    /// Asks `breaker` for a call now: the guard that reports its outcome, or `CircuitOpen`.
    pub(crate) fn admit(
        breaker: &'b std::cell::RefCell<crate::breaker::Breaker>,
        log: bool,
        name: &'b str,
        clock: crate::time::Clock,
    ) -> Result<Outcome<'b>, ProxyError> {
        breaker
            .borrow_mut()
            .allow(clock.now())
            .map_err(|_| ProxyError::CircuitOpen)?;
        Ok(Outcome {
            breaker,
            log,
            name,
            clock,
            success: std::cell::Cell::new(false),
        })
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        let changed = self.breaker.borrow_mut().record(self.clock.now(), self.success.get());
        if let Some(state) = changed {
            if self.log {
                log::warn!("circuit breaker {}: now {state:?}", self.name);
            } else {
                log::debug!("circuit breaker {}: now {state:?}", self.name);
            }
        }
    }
}

/// `gatelet/retry`: a failed idempotent GET is tried once more after a full-jitter pause, if
/// the pause still leaves time before `deadline`. Answers that are not transport failures or
/// 5xx (a 404, a body too large) are not retried.
async fn with_retry<F>(
    backend: &Backend,
    compiled: &CompiledBackend,
    deadline: Instant,
    fetch: impl Fn() -> F,
) -> Result<proxy::Reply, ProxyError>
where
    F: std::future::Future<Output = Result<proxy::Reply, ProxyError>>,
{
    let Some((attempts, backoff)) = backend.retry else {
        return fetch().await;
    };
    let mut attempt = 1;
    loop {
        let result = fetch().await;
        let retryable = matches!(
            &result,
            Err(ProxyError::Connect(_) | ProxyError::Refused | ProxyError::Http(_))
        ) || matches!(&result, Err(ProxyError::Status(s)) if *s >= 500);
        if !retryable || attempt >= attempts {
            return result;
        }
        // Full jitter: uniform in [0, backoff], from a cheap per-call mix of the clock.
        let mut x = compiled.clock.now() | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let pause = std::time::Duration::from_nanos(x % (backoff.as_nanos() as u64 + 1));
        if Instant::now() + pause >= deadline {
            return result;
        }
        crate::runtime::sleep(pause).await;
        attempt += 1;
    }
}

/// A body from the backend's cache when fresh there, else fetched (and kept for its max-age).
pub(crate) async fn cached_fetch<F>(
    compiled: &CompiledBackend,
    key: impl FnOnce() -> String,
    fetch: impl FnOnce() -> F,
) -> Result<Bytes, ProxyError>
where
    F: std::future::Future<Output = Result<proxy::Reply, ProxyError>>,
{
    let Some(cache) = &compiled.cache else {
        return fetch().await.map(|r| r.body);
    };
    // The key is only built for cached backends: no allocation on the plain path.
    let key = key();
    if let Some(body) = cache.borrow().get(&key, compiled.clock.now()) {
        return Ok(body);
    }
    let reply = fetch().await?;
    if let Some(age) = reply.max_age {
        let ttl = age.saturating_mul(1_000_000_000);
        cache
            .borrow_mut()
            .put(key.to_string(), reply.body.clone(), ttl, compiled.clock.now());
    }
    Ok(reply.body)
}

/// One call to one backend: fetch, decode, shape.
async fn call(
    backend: &Backend,
    compiled: &CompiledBackend,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Result<Map<String, Value>, ProxyError> {
    admit(compiled, inbound.now)?;
    if let Some((sensor, reject_stale)) = &compiled.sensor {
        let retry = sensor.retry_in().as_secs().max(1);
        let reading = match sensor.events_since(since(compiled, inbound), inbound.now) {
            Some(events) => events,
            None => sensor.reading(inbound.now, *reject_stale),
        };
        let doc = reading.map_err(|e| ProxyError::Sensor(e, retry))?;
        return Ok(merge::shape(&backend.shape, doc));
    }
    let _probe = match &compiled.breaker {
        Some((breaker, log, name)) => Some(Outcome::admit(breaker, *log, name, compiled.clock)?),
        None => None,
    };
    let (pool, host) = compiled.pick();
    let uri = target_uri(compiled, inbound)?;
    let build = || request(backend, &uri, headers(compiled, host, inbound), &inbound.body);
    let key = || format!("{}{uri}", host.to_str().unwrap_or(""));
    let body = cached_fetch(compiled, key, || {
        with_retry(backend, compiled, deadline, || proxy::fetch(pool, &build, deadline))
    })
    .await?;
    if let Some(probe) = &_probe {
        probe.success.set(true);
    }
    let data =
        merge::decode(backend.encoding, backend.shape.is_collection, &body).map_err(|e| ProxyError::Decode(e.0))?;
    Ok(merge::shape(&backend.shape, data))
}

/// One backend with `concurrent_calls` identical calls raced; the first success wins.
async fn call_raced(
    endpoint: &Endpoint,
    backend: &Backend,
    compiled: &CompiledBackend,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Result<Map<String, Value>, ProxyError> {
    if endpoint.concurrent_calls <= 1 {
        return call(backend, compiled, inbound, deadline).await;
    }
    let calls = (0..endpoint.concurrent_calls)
        .map(|_| Box::pin(call(backend, compiled, inbound, deadline)) as LocalFuture<'_, _>)
        .collect();
    runtime::first_ok(calls).await
}

/// Why a sensor write was refused before reaching the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadWrite(pub String);

/// A `write` sensor backend: the request body, one line, newline-terminated, written to the
/// device; the number of bytes written. The body must be one line of at most `max_frame` bytes.
pub async fn write_sensor(
    gw: &Gateway,
    index: usize,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Result<Result<usize, EndpointError>, BadWrite> {
    let Some((sensor, _)) = &gw.backends[index][0].sensor else {
        return Ok(Err(EndpointError::Failed(vec!["not a sensor backend".into()])));
    };
    let body = &inbound.body[..];
    let line = body.strip_suffix(b"\n").unwrap_or(body);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(BadWrite("the body is empty: nothing to write".into()));
    }
    if line.contains(&b'\n') || line.contains(&b'\r') {
        return Err(BadWrite("the body must be one line".into()));
    }
    if line.len() + 1 > sensor.config.max_frame {
        return Err(BadWrite(format!(
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
    Ok(match written {
        Some(Ok(n)) => Ok(n),
        Some(Err(WriteError::Down(e))) => Err(EndpointError::Unavailable(vec![format!("{what}: {e}")], retry)),
        Some(Err(WriteError::Busy)) => Err(EndpointError::Unavailable(
            vec![format!("{what}: another write is in progress")],
            1,
        )),
        Some(Err(WriteError::Failed(e))) => Err(EndpointError::Failed(vec![format!("{what}: write failed: {e}")])),
        None => Err(EndpointError::Timeout(vec![format!("{what}: write timed out")])),
    })
}

/// Calls all backends of endpoint `index` and merges their answers in config order.
pub async fn aggregate(
    gw: &Gateway,
    index: usize,
    inbound: &Inbound<'_>,
    deadline: Instant,
) -> Result<Answer, EndpointError> {
    let endpoint = &gw.config.endpoints[index];
    let calls: Vec<LocalFuture<'_, Result<Map<String, Value>, ProxyError>>> = endpoint
        .backends
        .iter()
        .zip(&gw.backends[index])
        .map(|(b, c)| {
            if b.fleet {
                Box::pin(crate::fleet::fan_out(gw, b, c, inbound, deadline)) as LocalFuture<'_, _>
            } else {
                Box::pin(call_raced(endpoint, b, c, inbound, deadline)) as LocalFuture<'_, _>
            }
        })
        .collect();
    let results = runtime::join_until(calls, deadline).await;

    let mut data = Map::new();
    let mut problems = Vec::new();
    let (mut succeeded, mut timed_out) = (0, false);
    // Seconds until the soonest sensor retry, while every failure is a sensor's.
    let mut sensor_retry: Option<u64> = None;
    let mut other_failure = false;
    for (i, (result, backend)) in results.into_iter().zip(&endpoint.backends).enumerate() {
        match result {
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
            Some(Err(ProxyError::Timeout)) | None => {
                timed_out = true;
                gw.metrics.backend_failed(index, i, true);
                problems.push(format!("backend {i} ({}): timed out", backend.url_pattern));
            }
            Some(Err(e)) => {
                match &e {
                    ProxyError::Sensor(_, retry) => {
                        sensor_retry = Some(sensor_retry.map_or(*retry, |r| r.min(*retry)));
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
    Err(
        if let (Some(retry), false, false) = (sensor_retry, other_failure, timed_out) {
            EndpointError::Unavailable(problems, retry)
        } else if timed_out {
            EndpointError::Timeout(problems)
        } else {
            EndpointError::Failed(problems)
        },
    )
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
    let (backend, compiled) = (&endpoint.backends[0], &gw.backends[index][0]);
    let (pool, host) = compiled.pick();
    let opened = match admit(compiled, inbound.now).and_then(|()| target_uri(compiled, inbound)) {
        Ok(uri) => {
            let build = || request(backend, &uri, headers(compiled, host, inbound), &inbound.body);
            proxy::open(pool, &build, deadline).await
        }
        Err(e) => Err(e),
    };
    let mut resp = opened.map_err(|e| {
        let detail = vec![format!("backend 0 ({}): {e}", backend.url_pattern)];
        log::warn!("{} {}: no answer: {}", endpoint.method, endpoint.path, detail[0]);
        if e == ProxyError::Timeout {
            EndpointError::Timeout(detail)
        } else {
            EndpointError::Failed(detail)
        }
    })?;
    let names: Vec<HeaderName> = resp.headers().keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    for name in names {
        resp.headers_mut().remove(name);
    }
    Ok(resp)
}

/// Response headers that describe the backend connection, not the answer.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(url: Vec<Piece>, query: Forward, headers: Forward) -> CompiledBackend {
        CompiledBackend::for_tests(url, headers, query)
    }

    fn inbound<'r>(params: &'r [&'r str], query: Option<&'r str>, headers: &'r HeaderMap) -> Inbound<'r> {
        Inbound {
            params,
            query,
            headers,
            body: Bytes::new(),
            forwarded_for: HeaderValue::from_static("192.0.2.7"),
            now: 0,
            propagated: Vec::new(),
        }
    }

    #[test]
    fn target_fills_params_and_keeps_only_listed_query_names() {
        let h = HeaderMap::new();
        let b = compiled(
            vec![
                Piece::Literal("/v/".into()),
                Piece::Param(0),
                Piece::Literal("?x=1".into()),
            ],
            Forward::Only(vec!["a".into(), "c".into()]),
            Forward::All,
        );
        assert_eq!(
            target(&b, &inbound(&["7"], Some("a=1&b=2&c&ab=3"), &h)),
            "/v/7?x=1&a=1&c"
        );
        let all = compiled(vec![Piece::Literal("/p".into())], Forward::All, Forward::All);
        assert_eq!(target(&all, &inbound(&[], Some("b=2&&z"), &h)), "/p?b=2&z");
        assert_eq!(target(&all, &inbound(&[], None, &h)), "/p");
    }

    #[test]
    fn headers_forward_only_listed_names_and_never_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-secret", HeaderValue::from_static("s"));
        h.insert("connection", HeaderValue::from_static("close"));
        h.insert("host", HeaderValue::from_static("bus7.example"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.9.9.9"));
        let b = compiled(
            vec![],
            Forward::All,
            Forward::Only(vec!["content-type".into(), "connection".into()]),
        );
        let out = headers(&b, &HeaderValue::from_static("127.0.0.1:9"), &inbound(&[], None, &h));
        assert_eq!(out.get("content-type").unwrap(), "application/json");
        assert!(out.get("x-secret").is_none());
        assert!(out.get("connection").is_none());
        assert_eq!(out.get("host").unwrap(), "127.0.0.1:9");
        assert_eq!(out.get("x-forwarded-for").unwrap(), "192.0.2.7");
        assert_eq!(out.get("x-forwarded-host").unwrap(), "bus7.example");
        assert_eq!(out.get("user-agent").unwrap(), USER_AGENT);
        let all = compiled(vec![], Forward::All, Forward::All);
        let out = headers(&all, &HeaderValue::from_static("b:1"), &inbound(&[], None, &h));
        assert_eq!(out.get("x-secret").unwrap(), "s");
        assert!(out.get("connection").is_none());
    }
}
