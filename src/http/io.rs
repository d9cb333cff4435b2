//! The socket adapter between async-io and hyper, and the per-connection deadlines.
//!
//! Owns: reading straight into hyper's uninitialised buffer (smol-hyper zero-fills 8 KiB on
//! every read; measured at 69% of a proxied request's instructions), vectored writes, and the
//! server-side clock of one connection ([`Watch`]): idle keep-alive, "whole head within N s of
//! its first byte" (slowloris), and response write stalls. The deadline timers are polled
//! inside `poll_read`/`poll_write`, so they cost nothing unless hyper is waiting on the socket.
//! Never blocks, never allocates per read or write.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use hyper::rt::{Read, ReadBufCursor, Write};

use super::{limits, scan};

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

    /// The handler has the request: the head deadline no longer applies. Returns whether its
    /// head carried both `Content-Length` and `Transfer-Encoding` (see [`scan::Stream`]).
    pub fn busy(&self) -> bool {
        self.phase.set(Phase::Busy);
        self.read_deadline.set(None);
        let index = self.served.get();
        self.served.set(index.saturating_add(1));
        self.scan.get().both(index)
    }

    /// The response has been handed to hyper: the keep-alive idle timer starts.
    pub fn idle(&self, now: Instant) {
        self.phase.set(Phase::Idle);
        let deadline = now + self.timeouts.idle;
        self.read_deadline.set(Some(deadline));
        // hyper may already be waiting on a read whose timer is armed for a later deadline
        // (the head's, when idle_timeout is the shorter): move it; it keeps the reader's waker.
        let mut timers = self.timers.borrow_mut();
        if timers.read_at.is_some_and(|at| at > deadline) {
            timers.read.set_at(deadline);
            timers.read_at = Some(deadline);
        }
    }

    /// Bytes a connection adapter (plain [`Io`] or TLS) just read: all of them are scanned,
    /// and the first byte after an idle spell starts the whole-head deadline.
    pub fn received(&self, bytes: &[u8], now: Instant) {
        let mut scan = self.scan.get();
        scan.feed(bytes);
        self.scan.set(scan);
        if self.phase.get() == Phase::Idle && !bytes.is_empty() {
            // Not extended by later bytes: a client sending one byte a second still has to
            // finish its head in time.
            self.phase.set(Phase::Head);
            self.read_deadline.set(Some(now + self.timeouts.head));
        }
    }
}

/// A socket type the adapter can drive.
pub trait Socket: AsFd {
    /// Half-closes the write side (hyper's `poll_shutdown`).
    fn shutdown_write(&self) -> io::Result<()>;
}

impl Socket for std::net::TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Socket for std::os::unix::net::UnixStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// The timers behind a connection's deadlines: armed only when a read or write has to wait,
/// so they cost nothing otherwise.
struct Timers {
    read: Timer,
    /// When `read` is armed for, if it is.
    read_at: Option<Instant>,
    write: Timer,
    /// Set when a write first finds the socket full; cleared by any progress.
    write_stalled_until: Option<Instant>,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            read: Timer::never(),
            read_at: None,
            write: Timer::never(),
            write_stalled_until: None,
        }
    }
}

impl Watch {
    /// Polls the read deadline, if any: `true` when it has passed.
    ///
    /// The deadline moves with every request (head, then idle), and re-arming the timer each
    /// time costs a reactor registration per request. So the timer is left armed when it would
    /// fire no later than the new deadline; firing early, it is re-armed for the real one.
    pub fn read_expired(&self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.read_deadline.get() else {
            return false;
        };
        let mut t = self.timers.borrow_mut();
        if t.read_at.is_none_or(|at| at > deadline) {
            t.read.set_at(deadline);
            t.read_at = Some(deadline);
        }
        loop {
            if Pin::new(&mut t.read).poll(cx).is_pending() {
                return false;
            }
            // A fired timer stays fired: the next call arms it afresh.
            t.read_at = None;
            if Instant::now() >= deadline {
                return true;
            }
            t.read.set_at(deadline);
            t.read_at = Some(deadline);
        }
    }

    /// Polls the write-stall deadline: `true` when a write has waited too long.
    pub fn write_expired(&self, cx: &mut Context<'_>) -> bool {
        let mut t = self.timers.borrow_mut();
        if t.write_stalled_until.is_none() {
            let until = Instant::now() + self.timeouts.write_stall;
            t.write_stalled_until = Some(until);
            t.write.set_at(until);
        }
        Pin::new(&mut t.write).poll(cx).is_ready()
    }

    /// A write made progress: the stall clock stops.
    pub fn wrote(&self) {
        self.timers.borrow_mut().write_stalled_until = None;
    }
}

/// An async socket as hyper IO, optionally watched by a server connection's [`Watch`].
pub struct Io<S: Socket> {
    inner: Async<S>,
    watch: Option<std::rc::Rc<Watch>>,
}

impl<S: Socket> Io<S> {
    /// Wraps a socket; `watch` is `Some` for server connections.
    pub fn new(inner: Async<S>, watch: Option<std::rc::Rc<Watch>>) -> Io<S> {
        Io { inner, watch }
    }

    /// Deadlines are only kept on server connections.
    fn read_expired(&self, cx: &mut Context<'_>) -> bool {
        self.watch.as_ref().is_some_and(|w| w.read_expired(cx))
    }

    fn write_expired(&self, cx: &mut Context<'_>) -> bool {
        self.watch.as_ref().is_some_and(|w| w.write_expired(cx))
    }

    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&Async<S>) -> rustix::io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match op(&self.inner) {
                Ok(n) => {
                    if let Some(w) = &self.watch {
                        w.wrote();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
            if self.write_expired(cx) {
                return Poll::Ready(Err(timed_out("response write stalled")));
            }
            match self.inner.poll_writable(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

impl<S: Socket> Read for Io<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, mut buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // SAFETY: `read(2)` only writes into the slice, never de-initialises it, and we
            // advance the cursor by exactly the number of bytes the kernel reported written.
            let dst: &mut [MaybeUninit<u8>] = unsafe { buf.as_mut() };
            match rustix::io::read(this.inner.as_fd(), dst) {
                Ok((filled, _)) => {
                    let n = filled.len();
                    if let Some(w) = &this.watch {
                        w.received(filled, Instant::now());
                    }
                    // SAFETY: the first `n` bytes were initialised by the read above.
                    unsafe { buf.advance(n) };
                    return Poll::Ready(Ok(()));
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
            if this.read_expired(cx) {
                return Poll::Ready(Err(timed_out("client read deadline passed")));
            }
            match this.inner.poll_readable(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: Socket> Write for Io<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |s| rustix::io::write(s.as_fd(), buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |s| rustix::io::writev(s.as_fd(), bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket; there is nothing buffered here to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.inner.get_ref().shutdown_write() {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
            _ => Ok(()),
        })
    }
}

/// Time left until `deadline`, zero if it has passed.
pub fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
