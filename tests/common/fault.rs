//! A fault-injecting TCP proxy for tests: listens on 127.0.0.1:0, forwards every connection to
//! a target address, and applies a [`Fault`] that can be switched while it runs (the next chunk
//! read in either direction sees the new one). Plain std threads: one acceptor and two pumps
//! per connection, at most [`MAX_CONNECTIONS`] connections at once, every blocking read bounded
//! by [`TICK`] (and every write by [`WRITE_TIMEOUT`]) so each thread notices the end of the
//! test; dropping the proxy joins them all.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bytes pass unchanged.
    None,
    /// Every chunk, in either direction, is held this long before it is forwarded.
    Latency(Duration),
    /// Connections are accepted and read; nothing is forwarded or answered.
    Blackhole,
    /// New connections, and existing ones at their next chunk, are reset (RST both ways).
    Reset,
    /// Every byte is forwarded as its own write (TCP_NODELAY: its own segment).
    Slice,
    /// The answer direction forwards this many bytes, then closes both sides (FIN). Counted
    /// per connection from when the fault was set (or the connection opened, if later).
    CloseAfter(usize),
    /// The answer direction forwards this many bytes, then nothing more; the connection stays
    /// open (a 4G link that stalls mid-answer). Counted like `CloseAfter`.
    StallAfter(usize),
}

/// Connections carried at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a pump blocks in one read before it looks at the stop flag again.
pub const TICK: Duration = Duration::from_millis(50);
/// How long a pump may block in one write before it gives the connection up.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

struct State {
    fault: Fault,
    /// Bumped on every change, so per-connection byte counts restart and held chunks wake.
    generation: u64,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Connections carried now, and ever.
    open: AtomicUsize,
    accepted: AtomicUsize,
    /// Bytes forwarded (handed to the client socket) from the target back to clients, over
    /// all connections.
    downstream: AtomicU64,
}

impl Shared {
    fn current(&self) -> (Fault, u64, bool) {
        let s = self.state.lock().unwrap();
        (s.fault, s.generation, s.stop)
    }

    fn stopped(&self) -> bool {
        self.state.lock().unwrap().stop
    }

    /// Holds a chunk for `d`, cut short when the fault changes or the proxy stops.
    fn hold(&self, d: Duration, generation: u64) {
        let guard = self.state.lock().unwrap();
        let _unused = self
            .changed
            .wait_timeout_while(guard, d, |s| s.generation == generation && !s.stop)
            .unwrap();
    }
}

/// The proxy. Dropping it stops every thread it started and closes every socket.
pub struct FaultProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    pumps: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client to target: the request.
    Up,
    /// Target to client: the answer.
    Down,
}

impl FaultProxy {
    /// A proxy to `target`, passing bytes unchanged until [`FaultProxy::set`] says otherwise.
    pub fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                fault: Fault::None,
                generation: 0,
                stop: false,
            }),
            changed: Condvar::new(),
            open: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            downstream: AtomicU64::new(0),
        });
        let pumps: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let (shared, pumps) = (shared.clone(), pumps.clone());
            std::thread::spawn(move || accept_loop(listener, target, &shared, &pumps))
        };
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
            pumps,
        }
    }

    /// `http://127.0.0.1:port`, for a backend `host`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the fault; connections already open see it at their next chunk.
    pub fn set(&self, fault: Fault) {
        let mut s = self.shared.state.lock().unwrap();
        s.fault = fault;
        s.generation += 1;
        self.shared.changed.notify_all();
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections carried right now.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the target to clients so far.
    pub fn downstream_bytes(&self) -> u64 {
        self.shared.downstream.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        {
            let mut s = self.shared.state.lock().unwrap();
            s.stop = true;
            self.shared.changed.notify_all();
        }
        // Wakes the blocking accept; it then sees the stop flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let pumps: Vec<JoinHandle<()>> = std::mem::take(&mut *self.pumps.lock().unwrap());
        for p in pumps {
            let _ = p.join();
        }
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: &Arc<Shared>, pumps: &Mutex<Vec<JoinHandle<()>>>) {
    for client in listener.incoming() {
        if shared.stopped() {
            return;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue;
        }
        let (fault, _, _) = shared.current();
        if fault == Fault::Reset {
            // Dropped with linger 0: the close sends RST.
            let _ = rustix::net::sockopt::set_socket_linger(&client, Some(Duration::ZERO));
            continue;
        }
        let upstream = match fault {
            // A blackhole never reaches the target: only the client side is read.
            Fault::Blackhole => None,
            _ => match TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                Ok(u) => Some(u),
                Err(_) => continue,
            },
        };
        for s in std::iter::once(&client).chain(upstream.as_ref()) {
            let _ = s.set_nodelay(true);
            // A peer that stops reading cannot pin a pump in a write past the end of the test.
            let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
        }
        shared.open.fetch_add(1, Ordering::SeqCst);
        let conn = Arc::new(Connection {
            client,
            upstream,
            closing: AtomicBool::new(false),
            pumps_left: AtomicUsize::new(2),
        });
        let mut list = pumps.lock().unwrap();
        list.retain(|h| !h.is_finished());
        for direction in [Direction::Up, Direction::Down] {
            let (conn, shared) = (conn.clone(), shared.clone());
            list.push(std::thread::spawn(move || {
                pump(&conn, direction, &shared);
                if conn.pumps_left.fetch_sub(1, Ordering::SeqCst) == 1 {
                    shared.open.fetch_sub(1, Ordering::SeqCst);
                }
            }));
        }
    }
}

/// One proxied connection: the client side and (unless blackholed from the start) the target.
struct Connection {
    client: TcpStream,
    upstream: Option<TcpStream>,
    /// Set by the pump that ends the connection, so the other one stops too.
    closing: AtomicBool,
    pumps_left: AtomicUsize,
}

impl Connection {
    fn sockets(&self) -> impl Iterator<Item = &TcpStream> {
        std::iter::once(&self.client).chain(self.upstream.as_ref())
    }

    /// FIN both ways; the other pump's read returns at once.
    fn close(&self) {
        // After a reset, a FIN must not go out first.
        if self.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        for s in self.sockets() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// RST both ways: linger 0, then the last descriptor closed (when both pumps have ended).
    fn reset(&self) {
        if self.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        for s in self.sockets() {
            let _ = rustix::net::sockopt::set_socket_linger(s, Some(Duration::ZERO));
            // Wakes the other pump without sending anything; the close then sends the RST.
            let _ = s.shutdown(Shutdown::Read);
        }
    }
}

fn pump(conn: &Connection, direction: Direction, shared: &Shared) {
    let (from, to) = match direction {
        Direction::Up => (&conn.client, conn.upstream.as_ref()),
        Direction::Down => match &conn.upstream {
            Some(u) => (u, Some(&conn.client)),
            // Blackholed from the start: nothing ever comes back.
            None => return,
        },
    };
    let _ = from.set_read_timeout(Some(TICK));
    let mut buf = [0u8; 16 * 1024];
    // Bytes of the answer forwarded since the fault last changed.
    let (mut generation, mut counted) = (u64::MAX, 0usize);
    loop {
        if conn.closing.load(Ordering::SeqCst) {
            return;
        }
        let n = match (&*from).read(&mut buf) {
            Ok(0) => return conn.close(),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if shared.stopped() {
                    return conn.close();
                }
                continue;
            }
            Err(_) => return conn.close(),
        };
        let (fault, g, stop) = shared.current();
        if stop {
            return conn.close();
        }
        if g != generation {
            (generation, counted) = (g, 0);
        }
        let Some(to) = to else {
            continue;
        };
        let chunk = &buf[..n];
        let forward = |mut to: &TcpStream, bytes: &[u8]| -> bool {
            // Counted before the write: once the bytes are out, the gateway may answer and the
            // test read the count before this thread runs again.
            if direction == Direction::Down {
                shared.downstream.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            }
            to.write_all(bytes).is_ok()
        };
        let ok = match fault {
            Fault::None => forward(to, chunk),
            Fault::Latency(d) => {
                shared.hold(d, g);
                forward(to, chunk)
            }
            Fault::Blackhole => true,
            Fault::Reset => return conn.reset(),
            Fault::Slice => chunk.iter().all(|b| forward(to, std::slice::from_ref(b))),
            Fault::CloseAfter(limit) | Fault::StallAfter(limit) if direction == Direction::Down => {
                let take = limit.saturating_sub(counted).min(n);
                counted += take;
                let ok = forward(to, &chunk[..take]);
                if counted >= limit && matches!(fault, Fault::CloseAfter(_)) {
                    return conn.close();
                }
                ok
            }
            Fault::CloseAfter(_) | Fault::StallAfter(_) => forward(to, chunk),
        };
        if !ok {
            return conn.close();
        }
    }
}
