//! The client-facing HTTP/1.1 server: hyper's http1 connection over our socket adapter, with
//! the limits of `limits`, the framing checks of `framing`, bounded request bodies, the
//! built-in routes (health, fleet health, dashboard, debug, echo) and the dispatch of everything else to `endpoint`.
//!
//! Bad network input becomes an error response (and a closed connection when the framing is
//! in doubt), never a panic; every failure maps to its status in `error`.

pub mod body;
pub mod client_ip;
pub mod cors;
pub mod encode;
pub mod error;
pub mod framing;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::net::TcpStream;

use crate::config::OutputEncoding;
use crate::endpoint::{self, Inbound};
use crate::gateway::Gateway;
use crate::limiter::ClientKeys;
use crate::net::io::{Io, Watch};
use crate::net::limits;
use crate::router::Match;
use crate::runtime;
use body::Body;
use error::Error;

/// Serves one client connection until it closes, errs or times out.
pub async fn serve(gw: Rc<Gateway>, stream: TcpStream, peer: SocketAddr) {
    let linger = linger_handle(&stream);
    let watch = Rc::new(Watch::new(Instant::now(), gw.config.timeouts));
    let io = Io::new(stream, Some(watch.clone()));
    serve_io(gw, io, watch, peer, linger).await;
}

/// Serves one TLS client connection: the handshake (bounded), then HTTP over it.
#[cfg(feature = "tls")]
pub async fn serve_tls(
    gw: Rc<Gateway>,
    config: std::sync::Arc<rustls::ServerConfig>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let linger = linger_handle(&stream);
    let watch = Rc::new(Watch::new(Instant::now(), gw.config.timeouts));
    match crate::tls::accept(&config, stream, gw.config.timeouts.head).await {
        Ok(tls) => {
            let io = Io::new(tls, Some(watch.clone()));
            serve_io(gw, io, watch, peer, linger).await;
        }
        Err(e) => {
            log::debug!("{peer}: TLS handshake failed: {e}");
            if let Some(socket) = linger {
                Box::pin(linger_close(socket)).await;
            }
        }
    }
}

/// A second descriptor of the same socket, which outlives hyper's for the lingering close.
fn linger_handle(stream: &TcpStream) -> Option<std::net::TcpStream> {
    use std::os::fd::AsFd;
    let fd = stream.as_fd().try_clone_to_owned().ok()?;
    Some(std::net::TcpStream::from(fd))
}

/// HTTP/1 over any connection IO, under its [`Watch`].
async fn serve_io<I>(gw: Rc<Gateway>, io: I, watch: Rc<Watch>, peer: SocketAddr, linger: Option<std::net::TcpStream>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    let shutdown_gw = gw.clone();
    let shutdown = &shutdown_gw.shutdown;
    struct Open<'g>(&'g std::cell::Cell<u64>);
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get().saturating_sub(1));
        }
    }
    let counted = gw.clone();
    counted.metrics.connections.set(counted.metrics.connections.get() + 1);
    let _open = Open(&counted.metrics.connections);
    // The request's future is boxed: hyper keeps its service future inside the connection, and
    // inline it made every connection's task ~21 KiB even while idle between requests.
    let service = service_fn(move |req| {
        let (gw, watch) = (gw.clone(), watch.clone());
        Box::pin(async move { Ok::<_, Infallible>(handle(&gw, &watch, peer, req).await) })
    });
    // half_close: hyper does not probe the socket for EOF while a request is in flight. That
    // probe reserves a second 8 KiB read buffer per request in flight (the first is still
    // pinned by the request head's bytes) and costs a read. A client that half-closes after
    // its request still gets the answer (RFC 9112 §9.6 allows it); one that vanishes is
    // noticed when its answer is written, so the backend call runs to its end or deadline.
    let conn = http1::Builder::new()
        .max_buf_size(limits::MAX_READ_BUF)
        .max_header_size(limits::MAX_HEAD_BYTES)
        .half_close(true)
        .serve_connection(io, service);
    // On shutdown hyper finishes the request in flight (answering with Connection: close) and
    // closes an idle keep-alive connection at once.
    let mut conn = std::pin::pin!(conn);
    let ended = runtime::first(async { Some(conn.as_mut().await) }, async {
        shutdown.wait().await;
        None
    })
    .await;
    let ended = match ended {
        Some(result) => result,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        log::debug!("{peer}: connection ended: {e}");
    }
    if let Some(socket) = linger {
        Box::pin(linger_close(socket)).await;
    }
}

/// Closes like nginx's `lingering_close`: send FIN, then read and discard what the client
/// still sends, for a bounded time and amount. Closing with unread bytes queued makes the
/// kernel send RST, which can destroy the error response the client has not read yet.
/// Callers box it: inline, its scratch buffer made every connection's task 18 KiB.
async fn linger_close(socket: std::net::TcpStream) {
    let _ = socket.shutdown(std::net::Shutdown::Write);
    let Ok(socket) = TcpStream::from_std(socket) else {
        return;
    };
    let drain = async {
        let mut scratch = [0u8; 4096];
        let mut left = limits::LINGER_MAX_BYTES;
        while left > 0 {
            if socket.readable().await.is_err() {
                break;
            }
            match socket.try_read(&mut scratch) {
                Ok(0) => break,
                Ok(n) => left = left.saturating_sub(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    };
    runtime::within(limits::LINGER_TIMEOUT, drain).await;
}

/// Answers one request; never fails (errors become error responses).
async fn handle(gw: &Gateway, watch: &Rc<Watch>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let length_and_chunked = watch.busy();
    let (parts, body) = req.into_parts();
    // From here on "peer" is the client: the socket peer, or what a trusted proxy says.
    let trusted = &gw.config.router.trusted_proxies;
    let peer = SocketAddr::new(client_ip::client_ip(peer.ip(), &parts.headers, trusted), peer.port());
    // CORS preflights are answered before routing, limits and backends.
    if !length_and_chunked
        && let Some(cors) = &gw.config.cors
        && let Some(pre) = cors::preflight(cors, &parts.method, &parts.headers)
    {
        let response = match pre {
            cors::Preflight::Allowed(headers) => {
                let mut r = Response::new(Body::full(Bytes::new()));
                *r.status_mut() = cors::PREFLIGHT_OK;
                *r.headers_mut() = headers;
                r
            }
            cors::Preflight::Denied(why) => encode::error(&Error::CorsDenied(why), false),
        };
        return response.map(|b| b.watched(watch.clone()));
    }
    let started = Instant::now();
    let matched = std::cell::Cell::new(None);
    let answer = match length_and_chunked {
        // hyper dropped the Content-Length before we could see it; the socket adapter did not.
        true => Err(Error::ContentLengthWithTransferEncoding),
        false => respond(gw, peer, &parts, body, &matched).await,
    };
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            log::debug!(
                "{peer}: {} {}: {} {}",
                parts.method,
                parts.uri.path(),
                e.status().as_u16(),
                e.message(true)
            );
            encode::error(&e, gw.config.router.return_error_msg)
        }
    };
    let mut response = response;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    gw.metrics
        .request(matched.get(), response.status().as_u16(), elapsed_ms);
    if gw.config.access_log {
        log::info!(target: "access", "{} {} {} {elapsed_ms}ms {}", parts.method, parts.uri.path(), response.status().as_u16(), peer.ip());
    }
    if let Some(cors) = &gw.config.cors {
        cors::decorate(cors, &parts.headers, response.headers_mut());
    }
    response.map(|b| b.watched(watch.clone()))
}

async fn respond(
    gw: &Gateway,
    peer: SocketAddr,
    parts: &Parts,
    body: Incoming,
    matched: &std::cell::Cell<Option<usize>>,
) -> Result<Response<Body>, Error> {
    framing::check(parts)?;
    // Bodies are read (bounded) before anything else so that a broken body is answered and
    // the connection closed, never left for hyper to misread as the next request.
    let body = read_body(body, &gw.config.timeouts).await?;
    let path = parts.uri.path();
    let router = &gw.config.router;
    if !router.disable_health && path == router.health_path {
        return get_only(parts, || gw.health());
    }
    if gw.config.metrics && path == "/__stats" {
        return get_only(parts, || {
            let mut r = Response::new(Body::full(gw.stats()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        });
    }
    if gw.fleet.is_some() && path == "/__fleet/health" {
        get_only(parts, || ())?;
        let doc = Box::pin(crate::fleet::health(gw)).await;
        return Ok(encode::json(
            StatusCode::OK,
            serde_json::to_vec(&doc).unwrap_or_default(),
        ));
    }
    if let Some(page) = &gw.dashboard
        && path == page.path
    {
        return get_only(parts, || page.respond(&parts.headers));
    }
    if gw.debug && path.starts_with("/__debug/") {
        return Ok(encode::json(StatusCode::OK, &br#"{"message":"pong"}"#[..]));
    }
    if gw.config.echo_endpoint && path.starts_with("/__echo/") {
        return Ok(encode::echo(parts, &body));
    }
    let (index, params) = match gw.router.route(&parts.method, path) {
        Match::Found { endpoint, params } => (endpoint, params),
        Match::MethodNotAllowed(allow) => return Err(Error::MethodNotAllowed(allow)),
        Match::NotFound => return Err(Error::NotFound),
    };
    matched.set(Some(index));
    if let Some(p) = params.iter().find(|p| **p == "." || **p == "..") {
        return Err(Error::BadPathParam((*p).to_string()));
    }
    // Who may call it, before any rate limit spends a token on an unknown caller.
    if let (Some(roles), Some(keys)) = (&gw.config.endpoints[index].api_key_roles, &gw.config.api_keys) {
        let key = keys.check(&parts.headers, roles)?;
        log::debug!("{peer}: API key \"{}\"", key.name);
    }
    let propagated = match &gw.config.endpoints[index].jwt {
        Some(validator) => {
            let wall = SystemTime::now();
            let synced = gw.timesync_flag();
            if gw.config.jwt_reject_unsynced_clock && crate::time::clock_status(wall, synced)["synchronized"] == false {
                return Err(Error::ClockUnsynced);
            }
            let now = wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let claims = validator.validate(&parts.headers, now)?;
            propagate(&validator.propagate, &claims)
        }
        None => Vec::new(),
    };
    // Client bucket, then the endpoint's (a refused client spends none of the endpoint's).
    let quota = match &gw.limits[index] {
        Some(limit) => {
            let keys = ClientKeys {
                peer: peer.ip(),
                headers: &parts.headers,
                params: &params,
            };
            limit
                .check(&keys, gw.clock.now())
                .inspect_err(|_| gw.metrics.rate_limited(index))?
        }
        None => None,
    };
    let mut response = call_endpoint(gw, index, parts, &params, body, peer, propagated).await?;
    if let Some(quota) = quota {
        encode::rate_limit_headers(response.headers_mut(), &quota);
    }
    Ok(response)
}

/// Calls endpoint `index`'s backends and renders the answer.
async fn call_endpoint(
    gw: &Gateway,
    index: usize,
    parts: &Parts,
    params: &[&str],
    body: Bytes,
    peer: SocketAddr,
    propagated: Vec<(http::HeaderName, http::HeaderValue)>,
) -> Result<Response<Body>, Error> {
    let endpoint = &gw.config.endpoints[index];
    let deadline = Instant::now() + endpoint.timeout;
    let inbound = Inbound {
        params,
        query: parts.uri.query(),
        headers: &parts.headers,
        body,
        forwarded_for: client_ip::header_value(peer.ip()),
        now: gw.clock.now(),
        propagated,
    };
    if let [backend] = &endpoint.backends[..]
        && backend.sensor.is_some_and(|s| s.write)
    {
        let written = Box::pin(endpoint::write_sensor(gw, index, &inbound, deadline))
            .await
            .map_err(|e| Error::BadSensorWrite(e.0))??;
        let body = format!(r#"{{"written":{written}}}"#);
        let mut resp = encode::json(StatusCode::ACCEPTED, body);
        resp.headers_mut().insert(encode::COMPLETED, encode::completed(true));
        return Ok(resp);
    }
    if endpoint.output_encoding == OutputEncoding::NoOp {
        let mut resp = endpoint::pass_through(gw, index, &inbound, deadline).await?;
        let ok = resp.status().is_success();
        resp.headers_mut().insert(encode::COMPLETED, encode::completed(ok));
        return Ok(resp.map(Body::stream));
    }
    // Boxed, like the fleet and sensor-write branches: a request's future is as large as its
    // largest branch, and every request in flight holds one (1000 held pass-through requests
    // would each carry the aggregation's state).
    let answer = Box::pin(endpoint::aggregate(gw, index, &inbound, deadline)).await?;
    Ok(encode::answer(endpoint, &answer))
}

/// A built-in that answers GET only (405 with `Allow: GET` otherwise).
fn get_only<T>(parts: &Parts, answer: impl FnOnce() -> T) -> Result<T, Error> {
    match parts.method {
        Method::GET => Ok(answer()),
        _ => Err(Error::MethodNotAllowed("GET".into())),
    }
}

/// `propagate_claims`: claim values (strings, numbers, booleans) as backend request headers.
fn propagate(
    pairs: &[(String, http::HeaderName)],
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    pairs
        .iter()
        .filter_map(|(claim, header)| {
            let text = match claims.get(claim)? {
                serde_json::Value::String(s) => s.clone(),
                v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => v.to_string(),
                _ => return None,
            };
            Some((header.clone(), http::HeaderValue::from_str(&text).ok()?))
        })
        .collect()
}

/// Reads a request body whole, within [`limits::MAX_BODY_BYTES`], making progress at least
/// every `body_idle` and finishing within `body_total` of the connection's [`limits::Timeouts`].
async fn read_body(mut body: Incoming, timeouts: &limits::Timeouts) -> Result<Bytes, Error> {
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
