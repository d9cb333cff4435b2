//! The adapter between tokio streams (plain TCP, TLS) and hyper, and the per-connection
//! deadlines.
//!
//! Owns: the server-side clock of one connection ([`Watch`]): idle keep-alive, "whole head
//! within N s of its first byte" (slowloris), response write stalls; and feeding every byte
//! read to the request stream scan, which may hold back the bytes from a chunked-framing error
//! on (hyper's next read then fails). Reads go straight into hyper's uninitialised buffer, and
//! tokio's reactor skips the read system call after a short read (the socket is drained). The
//! deadline timers are polled only when a read or write has to wait, so they cost nothing
//! while the socket keeps up. Never blocks, never allocates per read or write.
//!
//! hyper-util's `TokioIo` does the plain forwarding part of this (and as cheaply: tokio's
//! `ReadBuf` over hyper's cursor); it is not used because the deadlines and the scan have to sit
//! exactly here, between the socket and hyper, for plain and TLS connections alike.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

use super::{limits, scan};
use crate::runtime;

/// Where a server connection is in its request cycle; decides which read deadline applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests: waiting for the first byte of the next head.
    Idle,
    /// The first byte of a head has arrived; the rest must follow before the deadline.
    Head,
    /// A request is being handled; its own timeouts apply (endpoint, body).
    Busy,
}

/// What the request-stream scan saw of one request head (see [`scan::Stream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadFraming {
    /// The head carried both `Content-Length` and `Transfer-Encoding` (hyper drops the length
    /// before its caller sees the head).
    pub length_and_chunked: bool,
}

/// The clock of one server connection, shared by its socket adapter and its request handler.
pub struct Watch {
    phase: Cell<Phase>,
    /// When reading must have made the progress the phase asks for; `None` = no deadline.
    read_deadline: Cell<Option<Instant>>,
    /// The request stream as read so far (see [`scan::Stream`]), and how many requests have
    /// been handed to the handler.
    scan: Cell<scan::Stream>,
    served: Cell<u32>,
    /// This connection's limits (from the config it was accepted under).
    pub timeouts: limits::Timeouts,
    /// The timers behind the deadlines, shared by whichever adapter (plain or TLS) serves it.
    timers: RefCell<Timers>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("phase", &self.phase.get())
            .field("read_deadline", &self.read_deadline.get())
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// A fresh connection: the first head must start within the head timeout.
    pub fn new(now: Instant, timeouts: limits::Timeouts) -> Watch {
        Watch {
            phase: Cell::new(Phase::Idle),
            read_deadline: Cell::new(Some(now + timeouts.head)),
            scan: Cell::new(scan::Stream::default()),
            served: Cell::new(0),
            timeouts,
            timers: RefCell::new(Timers::default()),
        }
    }

    /// The handler has the request: the head deadline no longer applies. Returns what the scan
    /// saw of its head that hyper does not say.
    pub fn begin_request(&self) -> HeadFraming {
        self.phase.set(Phase::Busy);
        self.read_deadline.set(None);
        let index = self.served.get();
        self.served.set(index.saturating_add(1));
        HeadFraming {
            length_and_chunked: self.scan.get().both(index),
        }
    }

    /// The response has been handed to hyper: the keep-alive idle timer starts.
    pub fn idle(&self, now: Instant) {
        self.phase.set(Phase::Idle);
        let deadline = now + self.timeouts.idle;
        self.read_deadline.set(Some(deadline));
        // hyper may already be waiting on a read whose timer is armed for a later deadline
        // (the head's, when idle_timeout is the shorter): move it; it keeps the reader's waker.
        let mut timers = self.timers.borrow_mut();
        let timers = &mut *timers;
        if timers.read_at.is_some_and(|at| at > deadline) {
            arm(&mut timers.read, deadline);
            timers.read_at = Some(deadline);
        }
    }

    /// Bytes a connection adapter (plain [`Io`] or TLS) just read: all of them are scanned,
    /// and the first byte after an idle spell starts the whole-head deadline. Returns how many
    /// of them hyper may have (see [`scan::Stream::feed`]).
    pub fn received(&self, bytes: &[u8], now: Instant) -> usize {
        let mut scan = self.scan.get();
        let passed = scan.feed(bytes);
        self.scan.set(scan);
        if self.phase.get() == Phase::Idle && !bytes.is_empty() {
            // Not extended by later bytes: a client sending one byte a second still has to
            // finish its head in time.
            self.phase.set(Phase::Head);
            self.read_deadline.set(Some(now + self.timeouts.head));
        }
        passed
    }

    /// Whether the scan refused a request line's method as too long (see
    /// [`scan::Stream::bad_method`]).
    pub fn bad_method(&self) -> bool {
        self.scan.get().bad_method()
    }

    /// Whether the request stream broke chunked framing: every read from now on fails.
    pub fn refused(&self) -> bool {
        self.scan.get().refused()
    }
}

/// The timers behind a connection's deadlines: created and armed only when a read or write
/// has to wait, so they cost nothing otherwise.
#[derive(Default)]
struct Timers {
    read: Option<Pin<Box<Sleep>>>,
    /// When `read` is armed for, if it is.
    read_at: Option<Instant>,
    write: Option<Pin<Box<Sleep>>>,
    /// Set when a write first finds the socket full; cleared by any progress.
    write_stalled_until: Option<Instant>,
}

/// Arms `slot`'s timer for `at` (creating it the first time).
fn arm(slot: &mut Option<Pin<Box<Sleep>>>, at: Instant) {
    match slot {
        Some(timer) => runtime::reset(timer.as_mut(), at),
        None => *slot = Some(Box::pin(runtime::sleep_until(at))),
    }
}

impl Watch {
    /// Polls the read deadline, if any: `true` when it has passed.
    ///
    /// The deadline moves with every request (head, then idle). The timer is left armed when
    /// it would fire no later than the new deadline; firing early, it is re-armed for the real
    /// one. So a busy keep-alive connection touches the timer wheel about once per idle period,
    /// not once per request.
    pub fn read_expired(&self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.read_deadline.get() else {
            return false;
        };
        let mut t = self.timers.borrow_mut();
        let t = &mut *t;
        if t.read_at.is_none_or(|at| at > deadline) {
            arm(&mut t.read, deadline);
            t.read_at = Some(deadline);
        }
        loop {
            let Some(timer) = t.read.as_mut() else { return false };
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            // A fired timer stays fired: the next call arms it afresh.
            t.read_at = None;
            if Instant::now() >= deadline {
                return true;
            }
            arm(&mut t.read, deadline);
            t.read_at = Some(deadline);
        }
    }

    /// Polls the write-stall deadline: `true` when a write has waited too long.
    pub fn write_expired(&self, cx: &mut Context<'_>) -> bool {
        let mut t = self.timers.borrow_mut();
        let t = &mut *t;
        if t.write_stalled_until.is_none() {
            let until = Instant::now() + self.timeouts.write_stall;
            t.write_stalled_until = Some(until);
            arm(&mut t.write, until);
        }
        t.write.as_mut().is_some_and(|w| w.as_mut().poll(cx).is_ready())
    }

    /// A write made progress: the stall clock stops.
    pub fn wrote(&self) {
        self.timers.borrow_mut().write_stalled_until = None;
    }
}

/// A tokio stream (TCP, or TLS over TCP) as hyper IO, optionally watched by a server
/// connection's [`Watch`].
pub struct Io<S> {
    inner: S,
    watch: Option<Rc<Watch>>,
}

impl<S> Io<S> {
    /// Wraps a stream; `watch` is `Some` for server connections.
    pub fn new(inner: S, watch: Option<Rc<Watch>>) -> Io<S> {
        Io { inner, watch }
    }
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

fn refused() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "chunked framing outside RFC 9112")
}

impl<S: AsyncRead + Unpin> Read for Io<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, mut buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.watch.as_ref().is_some_and(|w| w.refused()) {
            return Poll::Ready(Err(refused()));
        }
        // SAFETY: the `ReadBuf` only ever initialises bytes of the slice (never de-initialises
        // them), and the cursor is advanced by at most the number of bytes it reports filled.
        let n = unsafe {
            let mut tbuf = tokio::io::ReadBuf::uninit(buf.as_mut());
            match Pin::new(&mut this.inner).poll_read(cx, &mut tbuf) {
                Poll::Ready(Ok(())) => {
                    let filled = tbuf.filled_mut();
                    match &this.watch {
                        Some(w) => match w.received(filled, Instant::now()) {
                            // A method longer than any: hyper sees a byte no method holds
                            // where the excess starts, and answers 400.
                            passed if w.bad_method() && passed < filled.len() => {
                                filled[passed] = 0;
                                passed + 1
                            }
                            // Bytes from a chunked-framing error on never reach hyper.
                            0 if !filled.is_empty() => return Poll::Ready(Err(refused())),
                            passed => passed,
                        },
                        None => filled.len(),
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    if this.watch.as_ref().is_some_and(|w| w.read_expired(cx)) {
                        return Poll::Ready(Err(timed_out("client read deadline passed")));
                    }
                    return Poll::Pending;
                }
            }
        };
        // SAFETY: the first `n` bytes were initialised by the read above.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> Io<S> {
    fn written(&self, polled: Poll<io::Result<usize>>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(r) => {
                if let Some(w) = &self.watch {
                    w.wrote();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.watch.as_ref().is_some_and(|w| w.write_expired(cx)) => {
                Poll::Ready(Err(timed_out("response write stalled")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> Write for Io<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.written(polled, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.written(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.get_mut().inner).poll_shutdown(cx) {
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => other,
        }
    }
}
