//! The request's journey through the gateway, one named step each, in order:
//!
//! 1. [`preflight`]: a CORS preflight is answered before anything else;
//! 2. [`read`]: framing checks, then the whole body, bounded in size and time;
//! 3. [`builtins`]: `/__health`, `/__stats`, `/__fleet/health`, the dashboard, debug, echo;
//! 4. [`route`]: `(method, path)` to an endpoint and its parameters, or to KrakenD's (gin's)
//!    redirect for a path that is one slash or letter case away from an endpoint;
//! 5. [`authenticate`]: API keys, then JWT (before any rate limit spends a token);
//! 6. [`limit`]: the client's bucket, then the endpoint's;
//! 7. [`call`]: the body checked against the endpoint's JSON schema, if it has one (`schema`),
//!    then the endpoint's backends (`endpoint`, `backend`);
//! 8. [`render`]: the answer, or the error mapped to its status in [`error`].
//!
//! Every failure is an [`Error`]; [`Error::status`] is the only place it becomes a status.
//! Requests arrive from `http`, which owns the connection.

pub mod builtins;
pub mod client_ip;
pub mod cors;
pub mod error;
pub mod framing;
pub mod render;
mod xml;

use std::cell::{Cell, OnceCell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};

use crate::backend::Inbound;
use crate::backend::request::usable_in_url;
use crate::config::{OutputEncoding, Var};
use crate::endpoint;
use crate::gateway::Gateway;
use crate::http::body::Body;
use crate::limiter::{ClientKeys, Quota};
use crate::merge;
use crate::net::io::Watch;
use crate::net::limits;
use crate::router::Match;
use crate::runtime;
pub use error::Error;

/// The request handler of a connection from `peer` accepted under `gw` (a reload serves new
/// connections with the new gateway; open ones keep theirs).
pub fn handler(gw: Rc<Gateway>, peer: SocketAddr) -> impl crate::http::Handler {
    // The socket peer as `X-Forwarded-For`, written at the connection's first request and
    // shared by the ones after it (a clone is a reference count).
    let forwarded_for = OnceCell::new();
    // `handle`'s future itself, not one wrapped in an `async` block: the wrapper would hold the
    // request a second time, and the request's future is copied whole whenever it moves.
    move |watch: Rc<Watch>, req| {
        let forwarded_for = forwarded_for.get_or_init(|| client_ip::header_value(peer.ip())).clone();
        handle(gw.clone(), watch, (peer, forwarded_for), req)
    }
}

/// Answers one request from `socket`, the peer's address and that address as
/// [`client_ip::header_value`] writes it; never fails (errors become error responses).
pub async fn handle(
    gw: Rc<Gateway>,
    watch: Rc<Watch>,
    socket: (SocketAddr, HeaderValue),
    req: Request<Incoming>,
) -> Response<Body> {
    let gw = &*gw;
    let framing = watch.begin_request();
    let (parts, body) = req.into_parts();
    // From here on "peer" is the client: the socket peer, or what a trusted proxy says.
    let (peer, socket_value) = socket;
    let trusted = &gw.config.router.trusted_proxies;
    let client = client_ip::client_ip(peer.ip(), &parts.headers, trusted);
    let forwarded_for = match client == peer.ip() {
        true => socket_value,
        false => client_ip::header_value(client),
    };
    let peer = SocketAddr::new(client, peer.port());
    if !framing.length_and_chunked
        && let Some(response) = preflight(gw, &parts)
    {
        return response.map(|b| b.watched(watch.clone()));
    }
    let started = Instant::now();
    let matched = Cell::new(None);
    let answer = match framing.length_and_chunked {
        // hyper dropped the Content-Length before we could see it; the socket adapter did not.
        true => Err(Error::ContentLengthWithTransferEncoding),
        false => journey(gw, (peer, forwarded_for), &parts, body, &matched).await,
    };
    let mut response = answer.unwrap_or_else(|e| {
        log::debug!(
            "{peer}: {} {}: {} {}",
            parts.method,
            parts.uri.path(),
            e.status().as_u16(),
            e.message(true)
        );
        render::error(&e, gw.config.router.return_error_msg)
    });
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    gw.metrics
        .request(matched.get(), response.status().as_u16(), elapsed_ms);
    if gw.config.access_log {
        log::info!(target: "access", "{} {} {} {elapsed_ms}ms {}", parts.method, parts.uri.path(), response.status().as_u16(), peer.ip());
    }
    if let Some(gzip) = &gw.config.gzip {
        render::gzip(&mut response, &parts.headers, gzip);
    }
    if let Some(cors) = &gw.config.cors {
        cors::decorate(cors, &parts.headers, response.headers_mut());
    }
    response.map(|b| b.watched(watch))
}

/// Steps 2 to 8 for a request that is not a preflight, from the client `peer` whose
/// `X-Forwarded-For` value is `forwarded_for`.
async fn journey(
    gw: &Gateway,
    (peer, forwarded_for): (SocketAddr, HeaderValue),
    parts: &Parts,
    body: Incoming,
    matched: &Cell<Option<usize>>,
) -> Result<Response<Body>, Error> {
    let body = read(parts, body, &gw.config.timeouts).await?;
    if let Some(answer) = builtins::answer(gw, parts, &body).await {
        return answer;
    }
    let path = match gw.config.router.remove_extra_slash {
        true => crate::router::clean_path(parts.uri.path()),
        false => std::borrow::Cow::Borrowed(parts.uri.path()),
    };
    let (index, params) = route(gw, parts, &path)?;
    matched.set(Some(index));
    let encoded = |p: &str| gw.config.router.reject_encoded_params && encoded_twice(p);
    if let Some(p) = params.iter().find(|p| dot_segment(p) || encoded(p)) {
        return Err(Error::BadPathParam((*p).to_string()));
    }
    let (propagated, vars, subject) = authenticate(gw, index, peer, parts)?;
    let quota = limit(gw, index, peer, parts, &params)?;
    #[cfg(feature = "json-schema")]
    if let Some(schema) = &gw.config.endpoints[index].body_schema {
        schema.check(&body).map_err(Error::InvalidBody)?;
    }
    let inbound = Inbound {
        params: &params,
        query: parts.uri.query(),
        headers: &parts.headers,
        body,
        forwarded_for,
        now: gw.clock.now(),
        propagated,
        vars: RefCell::new(vars),
        subject,
    };
    let mut response = call(gw, index, &inbound).await?;
    if let Some(quota) = quota {
        render::rate_limit_headers(response.headers_mut(), &quota);
    }
    Ok(response)
}

/// Step 1: a CORS preflight, answered before routing, limits and backends.
fn preflight(gw: &Gateway, parts: &Parts) -> Option<Response<Body>> {
    let cors = gw.config.cors.as_ref()?;
    Some(match cors::preflight(cors, &parts.method, &parts.headers)? {
        cors::Preflight::Allowed(headers) => {
            let mut r = Response::new(Body::full(Bytes::new()));
            *r.status_mut() = cors::PREFLIGHT_OK;
            *r.headers_mut() = headers;
            r
        }
        cors::Preflight::Denied(why) => render::error(&Error::CorsDenied(why), false),
    })
}

/// Step 2: the framing checks, then the body read whole, within [`limits::MAX_BODY_BYTES`],
/// making progress at least every `body_idle` and finishing within `body_total`. Bodies are
/// read before anything else so that a broken body is answered and the connection closed,
/// never left for hyper to misread as the next request.
async fn read(parts: &Parts, mut body: Incoming, timeouts: &limits::Timeouts) -> Result<Bytes, Error> {
    framing::check(parts)?;
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    if body.size_hint().lower() > limits::MAX_BODY_BYTES as u64 {
        return Err(Error::BodyTooLarge);
    }
    let total = Instant::now() + timeouts.body_total;
    let mut buf = BytesMut::new();
    loop {
        let until = total.min(Instant::now() + timeouts.body_idle);
        let frame = runtime::until(until, body.frame()).await;
        match frame {
            None => return Err(Error::BodyTimeout),
            Some(None) => return Ok(buf.freeze()),
            Some(Some(Err(e))) => return Err(Error::BadBody(e.to_string())),
            Some(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limits::MAX_BODY_BYTES {
                        return Err(Error::BodyTooLarge);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

/// Step 4: the endpoint and its `{param}` values for `path` (the request's, cleaned under
/// `remove_extra_slash`). A path no endpoint takes but one slash or letter case away from one
/// is redirected there, as KrakenD's router does, before any 405 or 404. (A parameter that
/// would change the backend path, `.` or `..` even percent-encoded, or one encoded twice, is
/// refused right after, once the request counts as the endpoint's.)
fn route<'p>(gw: &Gateway, parts: &Parts, path: &'p str) -> Result<(usize, Vec<&'p str>), Error> {
    let miss = match gw.router.route(&parts.method, path) {
        Match::Found { endpoint, params } => return Ok((endpoint, params)),
        Match::MethodNotAllowed(allow) => Error::MethodNotAllowed(allow),
        Match::NotFound => Error::NotFound,
    };
    let options = &gw.config.router;
    let fixed = gw.router.fixed_path(
        &parts.method,
        path,
        options.redirect_trailing_slash,
        options.redirect_fixed_path,
    );
    let location = fixed.and_then(|p| {
        let target = match parts.uri.query() {
            Some(q) => [p.as_str(), "?", q].concat(),
            None => p,
        };
        HeaderValue::try_from(target).ok()
    });
    Err(match location {
        Some(location) => Error::Redirect {
            location,
            get: parts.method == http::Method::GET,
        },
        None => miss,
    })
}

/// A parameter that is `.` or `..`, literally or percent-encoded (`%2e%2E`): sent to a backend
/// it would change the path.
fn dot_segment(param: &str) -> bool {
    match param {
        "." | ".." => true,
        p if p.len() <= 6 && p.contains('%') => {
            let lower = p.to_ascii_lowercase().replace("%2e", ".");
            lower == "." || lower == ".."
        }
        _ => false,
    }
}

/// A parameter KrakenD's router refuses unless `disable_path_decoding`: once decoded it still
/// holds a percent sign (`%252F` decodes to `%2F`), or it is not valid percent-encoding.
fn encoded_twice(param: &str) -> bool {
    let b = param.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !matches!(
                (b.get(i + 1), b.get(i + 2)),
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() && !(*h == b'2' && *l == b'5')
            )
    })
}

/// Headers from claims, the values of the endpoint's per-request placeholders, and the
/// token's `sub` (a string).
type FromClaims = (Vec<(HeaderName, HeaderValue)>, Vec<Option<String>>, Option<String>);

/// Step 5: who may call endpoint `index`; the JWT claims it propagates to its backends as
/// headers and as `{JWT.claim}` values in their URLs. A token without a claim a URL needs is
/// refused (403): the backend would otherwise be asked for something else.
fn authenticate(gw: &Gateway, index: usize, peer: SocketAddr, parts: &Parts) -> Result<FromClaims, Error> {
    let endpoint = &gw.config.endpoints[index];
    if let (Some(roles), Some(keys)) = (&endpoint.api_key_roles, &gw.config.api_keys) {
        let key = keys.check(&parts.headers, roles)?;
        log::debug!("{peer}: API key \"{}\"", key.name);
    }
    let Some(validator) = &endpoint.jwt else {
        return Ok((Vec::new(), Vec::new(), None));
    };
    let wall = SystemTime::now();
    let synced = gw.timesync_flag();
    if gw.config.jwt_reject_unsynced_clock && crate::time::clock_status(wall, synced)["synchronized"] == false {
        return Err(Error::ClockUnsynced);
    }
    let now = wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = validator.validate(&parts.headers, now)?;
    let mut vars = Vec::new();
    for var in &endpoint.vars {
        vars.push(match var {
            Var::Jwt(claim) => {
                let value = claims.get(claim).and_then(merge::text).filter(|t| usable_in_url(t));
                if value.is_none() {
                    return Err(Error::Forbidden(format!(
                        "the token has no claim \"{claim}\" usable in this endpoint's backend URL"
                    )));
                }
                value
            }
            Var::Resp { .. } => None,
        });
    }
    let subject = claims
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    Ok((propagate(&validator.propagate, &claims), vars, subject))
}

/// `propagate_claims`: claim values as backend request headers, as KrakenD writes them
/// ([`merge::text`]); a claim with a `.` not starting with `http` is a path into nested
/// claims. A missing claim sends no header (and the client's own copy is never forwarded).
fn propagate(
    pairs: &[(String, HeaderName)],
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Vec<(HeaderName, HeaderValue)> {
    pairs
        .iter()
        .filter_map(|(claim, header)| {
            let value = if claim.contains('.') && !claim.starts_with("http") {
                let path: Vec<String> = claim.split('.').map(str::to_string).collect();
                merge::lookup(claims, &path)
            } else {
                claims.get(claim)
            };
            let text = merge::text(value?)?;
            Some((header.clone(), HeaderValue::from_str(&text).ok()?))
        })
        .collect()
}

/// Step 6: the client's bucket, then the endpoint's (a refused client spends none of the
/// endpoint's). The quota left, for the `RateLimit-*` headers.
fn limit(gw: &Gateway, index: usize, peer: SocketAddr, parts: &Parts, params: &[&str]) -> Result<Option<Quota>, Error> {
    let Some(limit) = &gw.limits[index] else {
        return Ok(None);
    };
    let keys = ClientKeys {
        peer: peer.ip(),
        headers: &parts.headers,
        params,
    };
    Ok(limit
        .check(&keys, gw.clock.now())
        .inspect_err(|_| gw.metrics.rate_limited(index))?)
}

/// Steps 7 and 8: endpoint `index` called under its deadline, and its answer rendered.
async fn call(gw: &Gateway, index: usize, inbound: &Inbound<'_>) -> Result<Response<Body>, Error> {
    let endpoint = &gw.config.endpoints[index];
    let deadline = Instant::now() + endpoint.timeout;
    if let [backend] = &endpoint.backends[..]
        && backend.sensor.is_some_and(|s| s.write)
    {
        let written = Box::pin(endpoint::write_sensor(gw, index, inbound, deadline)).await?;
        return Ok(render::written(written));
    }
    if let [backend] = &gw.backends[index][..]
        && let Some(answer) = endpoint::journal(backend, inbound, deadline).await
    {
        let (status, body) = answer?;
        return Ok(render::json(status, body));
    }
    if endpoint.output_encoding == OutputEncoding::NoOp {
        let resp = endpoint::pass_through(gw, index, inbound, deadline).await?;
        return Ok(render::passed_through(resp));
    }
    // Boxed, like the fleet and sensor-write branches: a request's future is as large as its
    // largest branch, and every request in flight holds one (1000 held pass-through requests
    // would each carry the aggregation's state).
    let answer = Box::pin(endpoint::aggregate(gw, index, inbound, deadline)).await?;
    Ok(render::answer(endpoint, &answer, inbound.headers))
}
