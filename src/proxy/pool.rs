//! Keep-alive connections to one backend host: a cap on open connections (excess callers wait,
//! within their deadline), an idle timeout, connect timeout, and leases that put a
//! connection back only once its response body has been read to the end.
//!
//! Each connection is a hyper http1 client whose connection future runs as a task on the one
//! thread's `LocalSet`. Never blocks; never holds more than `MAX_UPSTREAM_CONNECTIONS` sockets.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::UpstreamError;
use crate::net::io::Io;
use crate::net::limits;

type Sender = SendRequest<Full<Bytes>>;

/// The connections to one `host:port`.
pub struct Pool {
    addr: SocketAddr,
    /// Requests ask for gzip (`Accept-Encoding: gzip`); the service's `disable_compression`
    /// turns it off.
    pub(super) gzip: bool,
    /// Connections ready for a request, newest last, with the instant they became idle.
    idle: RefCell<Vec<(Sender, Instant)>>,
    /// Sockets open (idle, leased or connecting).
    open: Cell<usize>,
    /// Callers waiting for `open` to drop below the cap or for an idle connection. A waiter
    /// is registered once per wait and removed when its caller is served or gives up (a queue
    /// of wakers pushed on every poll grew stale duplicates under `group`, and each release
    /// then woke a stale one: p99 of 550 ms-1 s in the benchmark right after a group run).
    waiters: Notify,
    /// How many callers are waiting (served or not yet): a release wakes one only if there is
    /// one (tokio's `notify_one` would otherwise store a permit for the next caller).
    waiting: Cell<usize>,
}

/// A connection lent to one request. Dropping it without [`Lease::release`] discards the
/// connection (its response was not read to the end, so it cannot carry another).
pub struct Lease {
    sender: Option<Sender>,
    pool: Rc<Pool>,
    /// Whether this connection came from the idle list (a stale one may fail at first use).
    pub reused: bool,
}

impl Lease {
    /// The connection's request sender.
    pub fn sender(&mut self) -> &mut Sender {
        // Invariant: `sender` is `Some` until `release` or drop consumes the lease.
        self.sender.as_mut().expect("lease holds a sender until released")
    }

    /// The response was read to the end: the connection may carry another request.
    pub fn release(mut self) {
        if let Some(sender) = self.sender.take() {
            // Kept whatever the number idle: it is bounded by the open cap, and closing one here
            // made the next burst reopen it (a connect and a close per ~10 requests at 10 client
            // connections). Idle ones are closed after UPSTREAM_IDLE_TIMEOUT.
            if !sender.is_closed() {
                self.pool.idle.borrow_mut().push((sender, Instant::now()));
            }
        }
        self.pool.wake_one();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A sender dropped here ends its connection task, which decrements `open`.
        if self.sender.take().is_some() {
            self.pool.wake_one();
        }
    }
}

impl Pool {
    /// An empty pool for `addr`, whose requests ask for gzip when `gzip`.
    pub fn new(addr: SocketAddr, gzip: bool) -> Rc<Pool> {
        Rc::new(Pool {
            addr,
            gzip,
            idle: RefCell::new(Vec::new()),
            open: Cell::new(0),
            waiters: Notify::new(),
            waiting: Cell::new(0),
        })
    }

    /// The address it connects to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One more connection or slot is free: wake one more waiter (not one already woken).
    fn wake_one(&self) {
        // With nobody waiting, `notify_one` would store a permit for the next waiter: harmless
        // (it checks again), but a wasted turn.
        if self.waiting.get() > 0 {
            self.waiters.notify_one();
        }
    }

    /// Lends a connection: a live idle one, else a new one if under the cap, else waits for
    /// one to come back. Fails at `deadline`.
    pub async fn acquire(self: &Rc<Self>, deadline: Instant) -> Result<Lease, UpstreamError> {
        crate::runtime::until(deadline, self.acquire_inner())
            .await
            .unwrap_or(Err(UpstreamError::Timeout))
    }

    async fn acquire_inner(self: &Rc<Self>) -> Result<Lease, UpstreamError> {
        // Check, listen, check again, wait: a release between the first check and `listen`
        // is seen by the second check, one after it wakes the listener.
        let idle = match self.free() {
            Some(found) => found,
            None => {
                struct Waiting<'p>(&'p Pool);
                impl Drop for Waiting<'_> {
                    fn drop(&mut self) {
                        self.0.waiting.set(self.0.waiting.get() - 1);
                    }
                }
                self.waiting.set(self.waiting.get() + 1);
                let _waiting = Waiting(self);
                loop {
                    let notified = self.waiters.notified();
                    let mut notified = std::pin::pin!(notified);
                    notified.as_mut().enable();
                    if let Some(found) = self.free() {
                        break found;
                    }
                    notified.await;
                }
            }
        };
        if let Some(sender) = idle {
            return Ok(Lease {
                sender: Some(sender),
                pool: self.clone(),
                reused: true,
            });
        }
        let slot = Slot::take(self);
        // Boxed: the connect-and-handshake state is ~9 KiB and only this rare path needs it;
        // inline it would sit in every in-flight request's future.
        let sender = Box::pin(self.connect()).await?;
        // The connection task now owns the slot and frees it when the connection ends.
        slot.hand_over();
        Ok(Lease {
            sender: Some(sender),
            pool: self.clone(),
            reused: false,
        })
    }

    /// `Some(Some(sender))`: a live idle connection; `Some(None)`: room to open one; `None`:
    /// neither, wait.
    fn free(&self) -> Option<Option<Sender>> {
        let now = Instant::now();
        let mut idle = self.idle.borrow_mut();
        while let Some((sender, since)) = idle.pop() {
            // Dropping a stale sender here ends its connection task, which frees its slot.
            // One released a moment ago may not be ready yet (its connection task has not
            // run since the body ended): the caller awaits `ready()` rather than reconnect.
            if !sender.is_closed() && now.duration_since(since) < limits::UPSTREAM_IDLE_TIMEOUT {
                return Some(Some(sender));
            }
        }
        (self.open.get() < limits::MAX_UPSTREAM_CONNECTIONS).then_some(None)
    }

    async fn connect(self: &Rc<Self>) -> Result<Sender, UpstreamError> {
        let addr = self.addr;
        let stream = crate::runtime::within(limits::CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .ok_or_else(|| UpstreamError::Connect("connect timed out".into()))?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => UpstreamError::Refused,
                _ => UpstreamError::Connect(e.to_string()),
            })?;
        // Small request/response exchanges: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(limits::MAX_UPSTREAM_READ_BUF)
            .handshake(Io::new(stream, None))
            .await
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        let pool = self.clone();
        crate::runtime::spawn(async move {
            if let Err(e) = conn.await {
                log::debug!("upstream {}: connection ended: {e}", pool.addr);
            }
            pool.open.set(pool.open.get() - 1);
            pool.wake_one();
        });
        Ok(sender)
    }
}

/// One reserved place under the open-connection cap, given back if connecting fails or is
/// cancelled by the caller's deadline.
struct Slot<'p> {
    pool: &'p Pool,
    armed: bool,
}

impl<'p> Slot<'p> {
    fn take(pool: &'p Pool) -> Slot<'p> {
        pool.open.set(pool.open.get() + 1);
        Slot { pool, armed: true }
    }

    fn hand_over(mut self) {
        self.armed = false;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pool.open.set(self.pool.open.get() - 1);
            self.pool.wake_one();
        }
    }
}
