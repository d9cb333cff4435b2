//! The client-facing HTTP/1.1 connection: hyper's http1 server over the socket adapter of
//! `net::io` (plain or TLS), with the transport limits of `net::limits`, a graceful end on
//! shutdown and a lingering close. What a request means is the handler's business (the
//! listener passes `dispatch::handle`); this module is hyper glue only.

pub mod body;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::net::TcpStream;

use crate::net::io::{Io, Watch};
use crate::net::limits::{self, Timeouts};
use crate::runtime::{self, Signal};
use body::Body;

/// Answers one request of a connection, under the connection's [`Watch`].
pub trait Handler: Fn(Rc<Watch>, Request<Incoming>) -> Self::Answer + 'static {
    /// The answer's future.
    type Answer: Future<Output = Response<Body>> + 'static;
}

impl<F, A> Handler for F
where
    F: Fn(Rc<Watch>, Request<Incoming>) -> A + 'static,
    A: Future<Output = Response<Body>> + 'static,
{
    type Answer = A;
}

/// Serves one client connection until it closes, errs or times out, or `shutdown` fires.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    timeouts: Timeouts,
    shutdown: Rc<Signal>,
    handler: impl Handler,
) {
    let linger = linger_handle(&stream);
    let watch = Rc::new(Watch::new(Instant::now(), timeouts));
    let io = Io::new(stream, Some(watch.clone()));
    serve_io(io, watch, peer, shutdown, handler, linger).await;
}

/// Serves one TLS client connection: the handshake (bounded), then HTTP over it.
#[cfg(feature = "tls")]
pub async fn serve_tls(
    config: std::sync::Arc<rustls::ServerConfig>,
    stream: TcpStream,
    peer: SocketAddr,
    timeouts: Timeouts,
    shutdown: Rc<Signal>,
    handler: impl Handler,
) {
    let linger = linger_handle(&stream);
    let watch = Rc::new(Watch::new(Instant::now(), timeouts));
    match crate::tls::accept(&config, stream, timeouts.head).await {
        Ok(tls) => {
            let io = Io::new(tls, Some(watch.clone()));
            serve_io(io, watch, peer, shutdown, handler, linger).await;
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
async fn serve_io<I>(
    io: I,
    watch: Rc<Watch>,
    peer: SocketAddr,
    shutdown: Rc<Signal>,
    handler: impl Handler,
    linger: Option<std::net::TcpStream>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    // The request's future is boxed: hyper keeps its service future inside the connection, and
    // inline it made every connection's task ~21 KiB even while idle between requests.
    let service = service_fn(move |req| {
        let answer = handler(watch.clone(), req);
        Box::pin(async move { Ok::<_, Infallible>(answer.await) })
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
