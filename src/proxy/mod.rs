//! The upstream HTTP client: one [`pool::Pool`] per backend address, requests under a
//! deadline, bounded buffered bodies for merging (asked for in gzip and inflated, [`gzip`]) and
//! streamed bodies for `no-op`, redirects followed within a backend's hosts ([`redirect`]).
//!
//! Owns everything between "this request to that address" and "these bytes came back". It
//! never decides what a failure means for the client (that is `backend`'s, `endpoint`'s and `dispatch`'s job)
//! and never waits past the deadline it is given.

pub mod gzip;
pub mod pool;
pub mod redirect;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response};

use crate::net::limits;
use pool::{Lease, Pool};
pub use redirect::{Follow, RedirectHosts};

/// Why an upstream exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The deadline passed first.
    Timeout,
    /// Could not connect (refused, unreachable, connect timeout).
    Connect(String),
    /// Nothing listens at the backend's address (connection refused).
    Refused,
    /// The exchange broke (connection reset, malformed response).
    Http(String),
    /// The backend answered with a non-2xx status (the answer, read to the end).
    Status(Box<ErrorReply>),
    /// The backend body was over [`limits::MAX_BACKEND_BODY_BYTES`].
    BodyTooLarge,
    /// The gzip body inflated to more than [`limits::MAX_BACKEND_BODY_BYTES`].
    InflatedTooLarge,
    /// The body's `Content-Encoding` is not one gatelet asked for, or the gzip is corrupt.
    Encoding(String),
    /// A redirect that is not followed: why.
    Redirect(String),
}

/// A backend answer with a status other than 2xx, body and all (`backend/http` reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The status.
    pub status: u16,
    /// The body, inflated, at most [`limits::MAX_BACKEND_BODY_BYTES`].
    pub body: Bytes,
    /// Its `Content-Type`.
    pub content_type: Option<http::HeaderValue>,
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Timeout => f.write_str("timed out"),
            UpstreamError::Connect(e) => write!(f, "connect failed: {e}"),
            UpstreamError::Refused => f.write_str("connection refused"),
            UpstreamError::Http(e) => write!(f, "request failed: {e}"),
            UpstreamError::Status(s) => write!(f, "status {}", s.status),
            UpstreamError::BodyTooLarge => write!(f, "body over {} bytes", limits::MAX_BACKEND_BODY_BYTES),
            UpstreamError::InflatedTooLarge => {
                write!(f, "gzip body inflates to over {} bytes", limits::MAX_BACKEND_BODY_BYTES)
            }
            UpstreamError::Encoding(e) => f.write_str(e),
            UpstreamError::Redirect(e) => write!(f, "redirect {e}"),
        }
    }
}

/// The pools of every backend address in the config, created at start-up.
pub struct Upstreams {
    pools: HashMap<SocketAddr, Rc<Pool>>,
}

impl Upstreams {
    /// One pool per distinct address; requests ask for gzip unless `disable_compression`.
    pub fn new(addrs: impl IntoIterator<Item = SocketAddr>, disable_compression: bool) -> Upstreams {
        let pools = addrs
            .into_iter()
            .map(|a| (a, Pool::new(a, !disable_compression)))
            .collect();
        Upstreams { pools }
    }

    /// The pool of `addr` (every configured address has one).
    pub fn pool(&self, addr: &SocketAddr) -> Option<&Rc<Pool>> {
        self.pools.get(addr)
    }
}

/// A backend answer read to the end.
#[derive(Debug)]
pub struct Reply {
    /// The whole body.
    pub body: Bytes,
    /// What `Cache-Control` and `Vary` say about keeping it.
    pub freshness: crate::cache::Freshness,
}

/// `work` raced against `deadline`, a timeout as an error. Awaited where it is made: an
/// `async fn` taking `work` would hold it twice (its argument, and the copy inside the awaited
/// timeout), which doubled the size of every future above it up to the request's own, copied
/// whole each time it moves.
fn timed<T>(outcome: Option<Result<T, UpstreamError>>) -> Result<T, UpstreamError> {
    outcome.unwrap_or(Err(UpstreamError::Timeout))
}

/// Sends the request `build` makes and returns the response head with its lease. A GET that
/// fails on a reused connection (the backend closed it while idle) is retried once on another.
async fn exchange(
    pool: &Rc<Pool>,
    build: &dyn Fn() -> Request<Full<Bytes>>,
    deadline: Instant,
) -> Result<(Response<Incoming>, Lease), UpstreamError> {
    let mut retried = false;
    loop {
        let mut lease = pool.acquire(deadline).await?;
        let req = build();
        let idempotent = req.method() == Method::GET;
        let sent = async {
            lease.sender().ready().await?;
            lease.sender().send_request(req).await
        };
        match sent.await {
            Ok(resp) => return Ok((resp, lease)),
            Err(e)
                if lease.reused
                    && idempotent
                    && !retried
                    && (e.is_canceled() || e.is_incomplete_message() || e.is_closed()) =>
            {
                retried = true;
                log::debug!("retrying a GET after a stale pooled connection: {e}");
            }
            Err(e) => return Err(UpstreamError::Http(e.to_string())),
        }
    }
}

/// Calls a backend and reads its whole body (bounded), asking for gzip and inflating it;
/// non-2xx is an error that carries the answer. Redirects are followed as `follow` says.
pub async fn fetch(
    pool: &Rc<Pool>,
    build: &dyn Fn() -> Request<Full<Bytes>>,
    follow: Option<Follow<'_>>,
    deadline: Instant,
) -> Result<Reply, UpstreamError> {
    let work = async {
        let build = || {
            let mut req = build();
            // Never the client's own list (under `input_headers: ["*"]`): gatelet must be able
            // to read the answer. With `disable_compression`, none at all.
            if pool.gzip {
                req.headers_mut().insert(http::header::ACCEPT_ENCODING, gzip::ACCEPT);
            } else {
                req.headers_mut().remove(http::header::ACCEPT_ENCODING);
            }
            req
        };
        let (resp, lease) = redirect::exchange_following(pool, &build, follow, deadline).await?;
        let status = resp.status();
        let headers = resp.headers();
        let cache_control = headers.get(http::header::CACHE_CONTROL).and_then(|v| v.to_str().ok());
        let freshness = crate::cache::Freshness::of(cache_control, varies(headers));
        let coding = gzip::coding(headers.get(http::header::CONTENT_ENCODING))?;
        let content_type = match status.is_success() {
            true => None,
            false => headers.get(http::header::CONTENT_TYPE).cloned(),
        };
        let body = Limited::new(resp.into_body(), limits::MAX_BACKEND_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    UpstreamError::BodyTooLarge
                } else {
                    UpstreamError::Http(e.to_string())
                }
            })?
            .to_bytes();
        lease.release();
        let body = match coding {
            gzip::Coding::Gzip if !body.is_empty() => gzip::inflate(&body, limits::MAX_BACKEND_BODY_BYTES)?,
            _ => body,
        };
        if !status.is_success() {
            return Err(UpstreamError::Status(Box::new(ErrorReply {
                status: status.as_u16(),
                body,
                content_type,
            })));
        }
        Ok(Reply { body, freshness })
    };
    timed(crate::runtime::until(deadline, work).await)
}

/// Whether the answer varies with more than `Accept-Encoding`: every merged call sends the
/// same `Accept-Encoding: gzip` and keeps the inflated body, so `Vary: Accept-Encoding` alone
/// does not make the cached body wrong for another client.
fn varies(headers: &http::HeaderMap) -> bool {
    headers.get_all(http::header::VARY).iter().any(|v| {
        v.to_str().map_or(true, |v| {
            v.split(',')
                .map(str::trim)
                .any(|name| !name.is_empty() && !name.eq_ignore_ascii_case("accept-encoding"))
        })
    })
}

/// Calls a backend and returns its response with the body still streaming (`no-op`), its
/// `Content-Encoding` untouched; redirects are followed as `follow` says. The head must arrive
/// by `deadline`; so must the rest of the body, or the stream ends with an error.
pub async fn open(
    pool: &Rc<Pool>,
    build: &dyn Fn() -> Request<Full<Bytes>>,
    follow: Option<Follow<'_>>,
    deadline: Instant,
) -> Result<Response<Streaming>, UpstreamError> {
    let work = redirect::exchange_following(pool, build, follow, deadline);
    let (resp, lease) = timed(crate::runtime::until(deadline, work).await)?;
    Ok(resp.map(|body| Streaming {
        body,
        lease: Some(lease),
        deadline,
        timer: None,
    }))
}

/// The error type of streamed bodies (what hyper's server accepts from a body).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A backend body passed through as it arrives, until the endpoint deadline: a backend that
/// stalls mid-body (a 4G link gone quiet after the head) would otherwise hold the client
/// connection and one of the host's upstream connections for ever. Past the deadline the
/// stream fails, hyper closes the client connection (the client sees a short body, never a
/// complete-looking one) and the upstream connection is discarded. The connection returns to
/// its pool when the body has been read to the end.
pub struct Streaming {
    body: Incoming,
    lease: Option<Lease>,
    deadline: Instant,
    /// Created the first time the body is not ready: most answers arrive with their head.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Streaming {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        // Past the deadline the stream is cut whether the backend is stalled (the timer) or
        // still sending (the clock, read only when a frame is there to pass on).
        let late = match &polled {
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(crate::runtime::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                true
            }
            Poll::Ready(Some(Ok(_))) => Instant::now() >= this.deadline,
            _ => false,
        };
        if late {
            // Dropped unreleased: the connection, mid-body, is closed rather than reused.
            this.lease = None;
            let late = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the backend body did not finish by the endpoint deadline",
            );
            return Poll::Ready(Some(Err(late.into())));
        }
        // hyper's server stops polling a body once `is_end_stream` says it is complete (a
        // Content-Length body never yields the final `None`): release on either signal, or the
        // connection is dropped with the body and every answer costs a new upstream connection.
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.body.is_end_stream(),
            _ => false,
        };
        if ended && let Some(lease) = this.lease.take() {
            lease.release();
        }
        polled.map(|frame| frame.map(|r| r.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
