//! Step 3 of the journey: the routes gatelet answers itself, before the endpoint table:
//! `/__health` (KrakenD's shape, plus sensors, open circuits, the clock, a refused reload, the
//! outbox and the inbox),
//! `/__stats` (Prometheus text), `/__fleet/health` (the health of healths), the fleet
//! dashboard, `/__debug/` and `/__echo/`. Each is on only when the config turns it on.

use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{Error, render};
use crate::gateway::Gateway;
use crate::http::body::Body;
use crate::time::rfc3339;

/// The built-in answer for this request, if its path is a built-in's.
pub async fn answer(gw: &Gateway, parts: &Parts, body: &Bytes) -> Option<Result<Response<Body>, Error>> {
    let path = parts.uri.path();
    let router = &gw.config.router;
    if !router.disable_health && path == router.health_path {
        return Some(get_only(parts, || health(gw)));
    }
    if gw.config.metrics && path == "/__stats" {
        return Some(get_only(parts, || {
            let mut r = Response::new(Body::full(stats(gw)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }));
    }
    if let Some(fleet) = &gw.fleet
        && path == "/__fleet/health"
    {
        if let Err(e) = get_only(parts, || ()) {
            return Some(Err(e));
        }
        let doc = Box::pin(crate::fleet::health(fleet, &gw.backends, gw.clock.now())).await;
        return Some(Ok(render::json(
            StatusCode::OK,
            serde_json::to_vec(&doc).unwrap_or_default(),
        )));
    }
    if let Some(page) = &gw.dashboard
        && path == page.path
    {
        return Some(get_only(parts, || page.respond(&parts.headers)));
    }
    if gw.debug && path.starts_with("/__debug/") {
        return Some(Ok(render::json(StatusCode::OK, &br#"{"message":"pong"}"#[..])));
    }
    if gw.config.echo_endpoint && path.starts_with("/__echo/") {
        return Some(Ok(echo(parts, body)));
    }
    None
}

/// A built-in that answers GET and HEAD only (405 with `Allow: GET, HEAD` otherwise).
fn get_only<T>(parts: &Parts, answer: impl FnOnce() -> T) -> Result<T, Error> {
    match parts.method {
        Method::GET | Method::HEAD => Ok(answer()),
        _ => Err(Error::MethodNotAllowed("GET, HEAD".into())),
    }
}

/// The `/__health` answer: sensors, circuits that are not closed, the clock, a refused reload.
fn health(gw: &Gateway) -> Response<Body> {
    let now = gw.clock.now();
    let agents = gw
        .sensors
        .iter()
        .map(|s| (s.config.name.clone(), s.health(now)))
        .collect();
    let mut circuits = serde_json::Map::new();
    for (name, state) in gw.circuits(now) {
        let label = match state {
            crate::breaker::State::Closed { .. } => continue,
            crate::breaker::State::Open { .. } => "open",
            crate::breaker::State::HalfOpen { .. } => "half-open",
        };
        circuits.insert(name.to_string(), serde_json::Value::from(label));
    }
    let wall = SystemTime::now();
    let clock = crate::time::clock_status(wall, gw.timesync_flag());
    let mut stores = Map::new();
    if let Some(o) = &gw.outbox {
        stores.insert("outbox".into(), o.health());
    }
    if let Some(i) = &gw.inbox {
        stores.insert("inbox".into(), i.health());
    }
    health_document(
        wall,
        agents,
        circuits,
        clock,
        gw.reload_error.borrow().as_deref(),
        stores,
    )
}

/// The `/__stats` document (Prometheus text).
fn stats(gw: &Gateway) -> String {
    let endpoints: Vec<String> = gw
        .config
        .endpoints
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    let backends: Vec<Vec<String>> = gw
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
    let now = gw.clock.now();
    let circuits = gw
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
    let sensors = gw.sensors.iter().map(|s| s.counts()).collect();
    let live = crate::metrics::Live {
        endpoints: &endpoints,
        backends: &backends,
        circuits,
        sensors,
        rss_bytes: crate::metrics::rss_bytes(),
        sd_notify_dropped: crate::notify::dropped(),
    };
    crate::metrics::render(&gw.metrics, &live)
}

/// The health document (KrakenD's shape): `{"status":"ok","now":"<RFC 3339>","agents":{...}}`,
/// one agent per sensor, plus `circuits`: every circuit breaker that is not closed. `status` is
/// `degraded` when any agent is not `ok` or any circuit is open or half-open.
fn health_document(
    now: SystemTime,
    agents: Map<String, Value>,
    circuits: Map<String, Value>,
    clock: Value,
    reload_errors: Option<&[String]>,
    stores: Map<String, Value>,
) -> Response<Body> {
    let degraded = agents.values().any(|a| a["status"] != "ok") || !circuits.is_empty() || reload_errors.is_some();
    let mut doc = json!({"status": if degraded { "degraded" } else { "ok" }, "now": rfc3339(now), "agents": agents,
                     "circuits": circuits, "clock": clock});
    if let Some(errors) = reload_errors {
        // The last SIGHUP was refused; the config from before it keeps serving.
        doc["reload"] = json!({"status": "failed", "errors": errors});
    }
    // The outbox (backlog, last delivery, losses) and the inbox: informative, never "degraded"
    // (a bus out of coverage has a backlog by design).
    for (k, v) in stores {
        doc[k] = v;
    }
    render::json(StatusCode::OK, serde_json::to_vec(&doc).unwrap_or_default())
}

/// The echo document (KrakenD's `/__echo/` field names).
fn echo(parts: &http::request::Parts, body: &[u8]) -> Response<Body> {
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let v = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.get_mut(name.as_str()) {
            Some(Value::Array(list)) => list.push(v),
            _ => {
                headers.insert(name.as_str().to_string(), Value::Array(vec![v]));
            }
        }
    }
    let mut query = Map::new();
    for pair in parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let Value::Array(list) = query.entry(k.to_string()).or_insert_with(|| Value::Array(Vec::new())) {
            list.push(Value::String(v.to_string()));
        }
    }
    let doc = json!({
        "req_uri": parts.uri.to_string(),
        "req_method": parts.method.as_str(),
        "req_querystring": query,
        "req_headers": headers,
        "req_body": String::from_utf8_lossy(body),
    });
    render::json(StatusCode::OK, serde_json::to_vec(&doc).unwrap_or_default())
}
