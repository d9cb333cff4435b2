//! Live sensors: each configured sensor's state (latest reading, counters, last error) and
//! the task that feeds it from its source, on the one thread's `LocalSet`. Sources: a file
//! re-read every `interval` (`read`: sysfs, /proc, a status file) or followed like `tail -F`
//! (`follow`); a TCP or Unix stream of lines, reconnected with jittered exponential backoff;
//! devices that connect and push (`listen`); a serial port. A source that fails marks the
//! sensor down until it reads again; writes go to stream and serial sources.

use std::cell::RefCell;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use tokio::io::unix::AsyncFd;
use tokio::net::{TcpStream, UnixStream};

use super::decode::{Decode, Decoder};
use super::lines::Lines;
use super::store::{Events, Latest};
use crate::config::{self, ListenAddr, SensorSource, StreamTarget};
use crate::runtime;
use crate::time::Clock;
use crate::time::Nanos;

/// Counters and last error of a sensor, for `/__health`.
#[derive(Debug, Default)]
struct Counters {
    frames_ok: u64,
    frames_bad: u64,
    reconnects: u64,
    last_error: Option<String>,
    /// The source is readable now.
    up: bool,
    /// When a stream source is tried next (its current backoff).
    retry: Option<Duration>,
}

/// One live sensor.
pub struct Sensor {
    /// Its configuration.
    pub config: config::Sensor,
    latest: RefCell<Latest>,
    /// For event sensors (`events`), every frame.
    events: Option<RefCell<Events>>,
    decoder: RefCell<Decoder>,
    counters: RefCell<Counters>,
    /// The connected stream, for writes, while connected.
    writer: RefCell<Option<Rc<Conn>>>,
    /// A write is in progress (writes are whole lines, never interleaved).
    writing: std::cell::Cell<bool>,
    /// `events.forward`: where each decoded frame also goes (the outbox).
    forward: RefCell<Option<Box<dyn Forward>>>,
}

/// Where a forwarding sensor's frames go (the outbox).
pub trait Forward {
    /// Takes a frame; its sequence number there, or `None` if it was refused.
    fn forward(&self, frame: &Value) -> Option<u64>;
    /// The highest sequence number on disk there.
    fn durable(&self) -> u64;
}

/// A connected stream: a socket source, a pusher, or a serial device. Read by the sensor's
/// task and written by `write` backends through a shared reference: each waits for its own
/// readiness, so a write never waits behind a read.
pub enum Conn {
    /// A TCP peer.
    Tcp(TcpStream),
    /// A Unix socket peer.
    Unix(UnixStream),
    /// A serial device.
    Serial(AsyncFd<super::serial::Serial>),
}

impl Conn {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
            Conn::Serial(fd) => fd.get_ref().as_fd(),
        }
    }

    /// Runs `op` on the descriptor once the reactor says it is ready for `interest`, and again
    /// after `EAGAIN` (which clears the readiness) or `EINTR`.
    async fn ready<R>(
        &self,
        interest: tokio::io::Interest,
        mut op: impl FnMut(std::os::fd::BorrowedFd<'_>) -> rustix::io::Result<R>,
    ) -> std::io::Result<R> {
        let fd = self.fd();
        loop {
            let mut once = || op(fd).map_err(std::io::Error::from);
            let done = match self {
                Conn::Tcp(s) => s.async_io(interest, &mut once).await,
                Conn::Unix(s) => s.async_io(interest, &mut once).await,
                Conn::Serial(serial) => serial.async_io(interest, |_| once()).await,
            };
            match done {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                done => return done,
            }
        }
    }

    /// Reads what is there (waiting for something); 0 at the end of the stream.
    pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.ready(tokio::io::Interest::READABLE, |fd| rustix::io::read(fd, &mut *buf))
            .await
    }

    /// Writes all of `bytes`, waiting for room as needed.
    pub async fn write_all(&self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            match self
                .ready(tokio::io::Interest::WRITABLE, |fd| rustix::io::write(fd, bytes))
                .await?
            {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                n => bytes = &bytes[n..],
            }
        }
        Ok(())
    }
}

/// Why a write to a sensor's device did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The device is not connected / the file cannot be opened (503).
    Down(String),
    /// Another write is in progress (503: nothing is queued).
    Busy,
    /// The write failed part-way (502).
    Failed(String),
}

/// How a sensor is doing (`/__health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fresh data.
    Ok,
    /// The source is up but the data is older than `max_age` (or there is none yet).
    Stale,
    /// The source cannot be read.
    Down,
}

impl Sensor {
    /// A sensor with no reading yet.
    pub fn new(config: config::Sensor) -> Sensor {
        Sensor {
            latest: RefCell::new(Latest::new(config.key.clone(), config.max_age)),
            events: config.events.map(|capacity| RefCell::new(Events::new(capacity))),
            decoder: RefCell::new(Decoder::new(config.decode.clone())),
            counters: RefCell::default(),
            writer: RefCell::new(None),
            writing: std::cell::Cell::new(false),
            forward: RefCell::new(None),
            config,
        }
    }

    /// Sets (or clears) where each decoded frame is forwarded.
    pub fn forward_to(&self, hook: Option<Box<dyn Forward>>) {
        *self.forward.borrow_mut() = hook;
    }

    /// Where the data comes from, for messages.
    pub fn source(&self) -> String {
        match &self.config.source {
            SensorSource::FileRead { path, .. } | SensorSource::FileFollow { path, .. } => {
                format!("file {}", path.display())
            }
            SensorSource::Stream {
                target: StreamTarget::Tcp(a),
                ..
            } => format!("tcp {a}"),
            SensorSource::Stream {
                target: StreamTarget::Unix(p),
                ..
            } => format!("unix {}", p.display()),
            SensorSource::Stream {
                target: StreamTarget::Serial(p, _),
                ..
            } => format!("serial {}", p.display()),
            SensorSource::Listen {
                address: ListenAddr::Tcp(a),
                ..
            } => format!("listen {a}"),
            SensorSource::Listen {
                address: ListenAddr::Unix(p),
                ..
            } => format!("listen unix:{}", p.display()),
        }
    }

    /// How long until the source is tried again (for `Retry-After`).
    pub fn retry_in(&self) -> Duration {
        match &self.config.source {
            SensorSource::FileRead { interval, .. } | SensorSource::FileFollow { interval, .. } => *interval,
            SensorSource::Stream { reconnect_min, .. } => self.counters.borrow().retry.unwrap_or(*reconnect_min),
            SensorSource::Listen { .. } => LISTEN_RETRY,
        }
    }

    /// Writes one line (already newline-terminated) to the device: the connected stream, or an
    /// append to the file. Nothing is queued: a device that is down or busy is an error.
    pub async fn write(&self, line: &[u8]) -> Result<usize, WriteError> {
        match &self.config.source {
            SensorSource::FileRead { path, .. } | SensorSource::FileFollow { path, .. } => {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                    .open(path)
                    .map_err(|e| WriteError::Down(format!("{}: {e}", self.source())))?;
                f.write_all(line).map_err(|e| WriteError::Failed(e.to_string()))?;
                Ok(line.len())
            }
            SensorSource::Listen { .. } => Err(WriteError::Down(format!(
                "{}: pushers connect to gatelet; there is no one device to write to",
                self.source()
            ))),
            SensorSource::Stream { .. } => {
                let writer = self.writer.borrow().clone();
                let Some(writer) = writer else {
                    let why = self
                        .counters
                        .borrow()
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "not connected".into());
                    return Err(WriteError::Down(format!("{}: {why}", self.source())));
                };
                if self.writing.replace(true) {
                    return Err(WriteError::Busy);
                }
                // Cleared however the write ends, also when the caller's deadline drops it.
                struct Writing<'s>(&'s std::cell::Cell<bool>);
                impl Drop for Writing<'_> {
                    fn drop(&mut self) {
                        self.0.set(false);
                    }
                }
                let _writing = Writing(&self.writing);
                writer
                    .write_all(line)
                    .await
                    .map(|()| line.len())
                    .map_err(|e| WriteError::Failed(e.to_string()))
            }
        }
    }

    /// Decodes and stores one frame; bad frames are counted and dropped.
    pub fn ingest(&self, frame: &[u8], now: Nanos, wall: SystemTime) {
        let decoded = self.decoder.borrow_mut().frame(frame);
        let mut counters = self.counters.borrow_mut();
        match decoded {
            Ok(Some(value)) if self.events.is_some() => {
                let held = match &*self.forward.borrow() {
                    Some(forward) => forward.forward(&value).unwrap_or(0),
                    None => 0,
                };
                if let Some(events) = &self.events {
                    // The latest reading too, for ages and health.
                    let _ = self.latest.borrow_mut().put(value.clone(), now, wall);
                    events.borrow_mut().push_held(value, now, wall, held);
                }
                counters.frames_ok += 1;
            }
            Ok(Some(value)) => match self.latest.borrow_mut().put(value, now, wall) {
                Ok(()) => counters.frames_ok += 1,
                Err(e) => {
                    counters.frames_bad += 1;
                    counters.last_error = Some(format!("frame dropped: {e:?}"));
                }
            },
            Ok(None) => {}
            Err(e) => {
                counters.frames_bad += 1;
                counters.last_error = Some(format!("bad frame: {}", e.0));
            }
        }
    }

    /// Splits `bytes` into lines with `lines` and ingests each; over-long lines are counted.
    fn feed(&self, lines: &mut Lines, bytes: &[u8], clock: Clock) {
        let (now, wall) = (clock.now(), SystemTime::now());
        lines.push(bytes, |frame| match frame {
            Ok(frame) => self.ingest(frame, now, wall),
            Err(_) => self.frame_too_long(),
        });
    }

    fn frame_too_long(&self) {
        let mut c = self.counters.borrow_mut();
        c.frames_bad += 1;
        c.last_error = Some(format!(
            "frame longer than max_frame ({} bytes) dropped",
            self.config.max_frame
        ));
    }

    fn source_up(&self) {
        let mut c = self.counters.borrow_mut();
        if !c.up {
            c.up = true;
            c.reconnects += 1;
        }
    }

    fn source_down(&self, error: String) {
        let mut c = self.counters.borrow_mut();
        c.up = false;
        c.last_error = Some(error);
    }

    /// The sensor's status at `now`.
    pub fn status(&self, now: Nanos) -> Status {
        if !self.counters.borrow().up {
            Status::Down
        } else if self.events.is_none() && self.latest.borrow().stale(now) {
            Status::Stale
        } else {
            Status::Ok
        }
    }

    /// `(name, frames_ok, frames_bad, reconnects)` for `/__stats`.
    pub fn counts(&self) -> (String, u64, u64, u64) {
        let c = self.counters.borrow();
        (
            self.config.name.clone(),
            c.frames_ok,
            c.frames_bad,
            c.reconnects.saturating_sub(1),
        )
    }

    /// The `/__health` entry.
    pub fn health(&self, now: Nanos) -> Value {
        let status = match self.status(now) {
            Status::Ok => "ok",
            Status::Stale => "stale",
            Status::Down => "down",
        };
        let c = self.counters.borrow();
        let age = self
            .latest
            .borrow()
            .newest()
            .map(|at| now.saturating_sub(at) / 1_000_000);
        json!({"status": status, "age_ms": age, "frames_ok": c.frames_ok, "frames_bad": c.frames_bad,
               "reconnects": c.reconnects.saturating_sub(1), "last_error": c.last_error})
    }

    /// For an event sensor: `{"events": [...], "next": N, "lost": N}` from `since` on. Quiet is
    /// normal for events, so only a down source fails it (and never before it was first up).
    pub fn events_since(&self, since: u64, now: Nanos) -> Option<Result<Map<String, Value>, String>> {
        let events = self.events.as_ref()?;
        if !self.counters.borrow().up {
            let c = self.counters.borrow();
            let why = c.last_error.clone().unwrap_or_else(|| "not connected yet".into());
            return Some(Err(format!("{}: {why}", self.source())));
        }
        let durable = self.forward.borrow().as_ref().map_or(u64::MAX, |f| f.durable());
        match events.borrow().since(since, now, durable) {
            Value::Object(doc) => Some(Ok(doc)),
            _ => None,
        }
    }

    /// The reading a backend returns, or why there is none to give.
    pub fn reading(&self, now: Nanos, reject_stale: bool) -> Result<Map<String, Value>, String> {
        let retry = format!("retrying in {}s", self.retry_in().as_secs_f64().ceil());
        let down = || {
            let c = self.counters.borrow();
            let why = c.last_error.clone().unwrap_or_else(|| "not read yet".into());
            format!("{}: {why}; {retry}", self.source())
        };
        let latest = self.latest.borrow();
        let Some(Value::Object(doc)) = latest.to_json(now) else {
            return Err(if self.counters.borrow().up {
                format!("{}: no data yet", self.source())
            } else {
                down()
            });
        };
        if latest.stale(now) && (reject_stale || !self.counters.borrow().up) {
            return Err(match self.counters.borrow().up {
                true => format!("{}: stale data rejected", self.source()),
                false => down(),
            });
        }
        Ok(doc)
    }
}

/// How often a `listen` source retries binding its address.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Feeds `sensor` from its source forever (until its task is dropped). A `listen` source's
/// pushers each get a task of their own.
pub async fn run(sensor: Rc<Sensor>, clock: Clock) {
    match sensor.config.source.clone() {
        SensorSource::Listen { address, max_pushers } => loop {
            let bound = match &address {
                ListenAddr::Tcp(a) => bind_tcp(*a).map(Listener::Tcp),
                ListenAddr::Unix(p) => bind_unix(p).map(Listener::Unix),
            };
            match bound {
                Ok(listener) => {
                    sensor.source_up();
                    accept_pushers(&sensor, listener, max_pushers, clock).await;
                }
                Err(e) => sensor.source_down(format!("bind: {e}")),
            }
            runtime::sleep(LISTEN_RETRY).await;
        },
        SensorSource::FileRead { path, interval } => loop {
            read_file(&sensor, &path, clock);
            runtime::sleep(interval).await;
        },
        SensorSource::Stream {
            target,
            send_on_connect,
            reconnect_min,
            reconnect_max,
        } => {
            let mut backoff = Backoff::new(reconnect_min, reconnect_max, clock.now() ^ (Rc::as_ptr(&sensor) as u64));
            loop {
                let opened = match &target {
                    StreamTarget::Tcp(addr) => with_timeout(TcpStream::connect(*addr))
                        .await
                        .map(Conn::Tcp)
                        .map_err(|e| format!("connect: {e}")),
                    StreamTarget::Unix(path) => with_timeout(UnixStream::connect(path))
                        .await
                        .map(Conn::Unix)
                        .map_err(|e| format!("connect: {e}")),
                    StreamTarget::Serial(path, settings) => super::serial::open(path, settings)
                        .map(Conn::Serial)
                        .map_err(|e| format!("open: {e}")),
                };
                let connected = match opened {
                    Ok(conn) => stream_lines(&sensor, conn, send_on_connect.as_deref(), clock, &mut backoff).await,
                    Err(e) => Err(e),
                };
                let wait = backoff.next();
                if let Err(e) = connected {
                    sensor.source_down(e);
                }
                sensor.counters.borrow_mut().retry = Some(wait);
                runtime::sleep(wait).await;
            }
        }
        SensorSource::FileFollow { path, interval } => {
            let mut follow = Follow::new(sensor.config.max_frame);
            loop {
                follow.tick(&sensor, &path, clock);
                runtime::sleep(interval).await;
            }
        }
    }
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// Binds a TCP address (never a name: addresses are resolved when the config is loaded).
fn bind_tcp(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}

/// Binds a Unix socket path, replacing a stale socket left by an earlier run (never a file that
/// is not a socket).
fn bind_unix(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::other("exists and is not a socket"));
        }
        // Stale only if nobody answers on it: never steal a live socket from another process.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process is listening on it",
            ));
        }
        std::fs::remove_file(path)?;
    }
    tokio::net::UnixListener::bind(path)
}

/// Accepts pushers, at most `max` at a time (more are closed at once and counted), each read
/// as a stream of lines by its own task.
async fn accept_pushers(sensor: &Rc<Sensor>, listener: Listener, max: usize, clock: Clock) {
    let active = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let accepted = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| Conn::Tcp(s)),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
        };
        let pusher = match accepted {
            Ok(p) => p,
            Err(e) => {
                sensor.source_down(format!("accept: {e}"));
                return;
            }
        };
        if active.get() >= max {
            let mut c = sensor.counters.borrow_mut();
            c.last_error = Some(format!("pusher refused: {max} already connected (max_pushers)"));
            continue;
        }
        active.set(active.get() + 1);
        let (sensor, active) = (sensor.clone(), active.clone());
        runtime::spawn(async move {
            let _ = read_lines(&sensor, &pusher, clock, None, || {}).await;
            active.set(active.get() - 1);
        });
    }
}

/// Reads lines from a stream until the peer closes it (`Ok`), it fails, or — with `silence` —
/// nothing arrives for that long (`Err`). `on_data` runs whenever bytes arrive.
async fn read_lines(
    sensor: &Sensor,
    stream: &Conn,
    clock: Clock,
    silence: Option<Duration>,
    mut on_data: impl FnMut(),
) -> Result<(), String> {
    let mut lines = Lines::new(sensor.config.max_frame);
    let mut buf = [0u8; 4096];
    loop {
        let read = stream.read(&mut buf);
        let n = match silence {
            Some(limit) => runtime::within(limit, read).await,
            None => Some(read.await),
        };
        match n {
            None => return Err("silent for twice max_age: reconnecting".into()),
            Some(Ok(0)) => return Ok(()),
            Some(Ok(n)) => {
                on_data();
                sensor.feed(&mut lines, &buf[..n], clock);
            }
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
}

/// Connect timeout of stream sources.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

async fn with_timeout<T>(f: impl std::future::Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    crate::runtime::within(CONNECT_TIMEOUT, f)
        .await
        .unwrap_or_else(|| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")))
}

/// Jittered exponential backoff: each wait is uniformly drawn from [d/2, d], where d doubles
/// from `min` up to `max` and goes back to `min` after a connection that delivered data.
struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    /// Jitter only needs to spread a fleet's reconnects, not be unpredictable.
    rng: fastrand::Rng,
}

impl Backoff {
    fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max,
            current: min,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    fn reset(&mut self) {
        self.current = self.min;
    }

    fn next(&mut self) -> Duration {
        let d = self.current.as_nanos() as u64;
        let wait = d / 2 + self.rng.u64(..=d / 2);
        self.current = (self.current * 2).min(self.max);
        Duration::from_nanos(wait)
    }
}

/// Reads lines from a connected stream until it ends; `Err` says why it ended.
async fn stream_lines(
    sensor: &Sensor,
    stream: Conn,
    send: Option<&str>,
    clock: Clock,
    backoff: &mut Backoff,
) -> Result<(), String> {
    if let Some(greeting) = send {
        with_timeout(stream.write_all(greeting.as_bytes()))
            .await
            .map_err(|e| format!("send_on_connect: {e}"))?;
    }
    sensor.source_up();
    // Shared with `write` backends while this connection lasts.
    let stream = Rc::new(stream);
    *sensor.writer.borrow_mut() = Some(stream.clone());
    struct Unset<'s>(&'s Sensor);
    impl Drop for Unset<'_> {
        fn drop(&mut self) {
            self.0.writer.borrow_mut().take();
        }
    }
    let _unset = Unset(sensor);
    // A peer that has gone silent for twice max_age (a half-open connection looks like this)
    // is dropped and reconnected.
    let silence = sensor.config.max_age.map(|a| a * 2);
    read_lines(sensor, &stream, clock, silence, || backoff.reset()).await?;
    Err("connection closed by the peer".into())
}

/// Bytes read from a followed file per tick, so a huge append never monopolises the loop; the
/// rest is read on the next ticks.
const FOLLOW_BUDGET: u64 = 256 * 1024;

/// `tail -F` over a path: the open file, its identity, how far it has been read.
struct Follow {
    file: Option<(std::fs::File, (u64, u64))>,
    offset: u64,
    lines: Lines,
}

impl Follow {
    fn new(max_frame: usize) -> Follow {
        Follow {
            file: None,
            offset: 0,
            lines: Lines::new(max_frame),
        }
    }

    fn tick(&mut self, sensor: &Sensor, path: &std::path::Path, clock: Clock) {
        use std::os::unix::fs::MetadataExt;
        let meta = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            gone => {
                // The name is gone (deleted, or renamed away with no new file yet): finish what
                // the open file still holds now, not when a new file appears (that may be never,
                // and an event sensor's last alarm would wait for it).
                self.drain(sensor, clock);
                return sensor.source_down(gone.map_or_else(|e| e.to_string(), |_| "not a regular file".into()));
            }
        };
        let id = (meta.dev(), meta.ino());
        if self.file.as_ref().map(|(_, old)| *old) != Some(id) {
            // First open, or the name now points at a new file (rotation): finish the old one,
            // then read the new one from its start.
            let first = self.file.is_none();
            if !first {
                self.drain(sensor, clock);
            }
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(path);
            match opened {
                Ok(f) => self.file = Some((f, id)),
                Err(e) => return sensor.source_down(e.to_string()),
            }
            self.lines.reset();
            // On the first open only the last `max_frame` bytes matter: the latest reading.
            self.offset = if first {
                meta.len().saturating_sub(sensor.config.max_frame as u64)
            } else {
                0
            };
            if self.offset > 0 {
                self.lines.skip_line();
            }
        } else if meta.len() < self.offset {
            // Truncated in place (`> file`, copytruncate): start over.
            self.offset = 0;
            self.lines.reset();
        }
        sensor.source_up();
        self.drain(sensor, clock);
    }

    /// Reads what has been appended since `offset`, within the budget.
    fn drain(&mut self, sensor: &Sensor, clock: Clock) {
        use std::os::unix::fs::FileExt;
        let Some((file, _)) = &self.file else { return };
        let mut buf = [0u8; 16 * 1024];
        let mut budget = FOLLOW_BUDGET;
        while budget > 0 {
            match file.read_at(&mut buf, self.offset) {
                Ok(0) => break,
                Ok(n) => {
                    self.offset += n as u64;
                    budget = budget.saturating_sub(n as u64);
                    sensor.feed(&mut self.lines, &buf[..n], clock);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return sensor.source_down(e.to_string()),
            }
        }
    }
}

/// Reads the whole (small) file as one frame; line decoders get it line by line.
fn read_file(sensor: &Sensor, path: &std::path::Path, clock: Clock) {
    let max = sensor.config.max_frame;
    let mut bytes = Vec::new();
    // Non-blocking open: a FIFO at that path must not stall the one thread.
    let read = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .and_then(|f| {
            if f.metadata()?.is_file() {
                f.take(max as u64 + 1).read_to_end(&mut bytes)
            } else {
                Err(std::io::Error::other("not a regular file"))
            }
        });
    if let Err(e) = read {
        sensor.source_down(e.to_string());
        return;
    }
    sensor.source_up();
    let (now, wall) = (clock.now(), SystemTime::now());
    if bytes.len() > max {
        sensor.frame_too_long();
        return;
    }
    match sensor.config.decode {
        Decode::JsonLines | Decode::Nmea(_) => {
            let mut lines = Lines::new(max);
            bytes.push(b'\n');
            lines.push(&bytes, |frame| {
                if let Ok(frame) = frame {
                    sensor.ingest(frame, now, wall);
                }
            });
        }
        _ => sensor.ingest(&bytes, now, wall),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_waits_are_jittered_within_half_to_whole_and_double_to_the_max() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1600));
        let mut b = Backoff::new(min, max, 7);
        for round in 0..3 {
            let mut d = min;
            let mut waits = Vec::new();
            for _ in 0..8 {
                let w = b.next();
                assert!(d / 2 <= w && w <= d, "{w:?} outside [{:?}, {d:?}]", d / 2);
                waits.push(w);
                d = (d * 2).min(max);
            }
            let at_max = &waits[4..];
            assert!(
                at_max.iter().any(|w| *w != at_max[0]),
                "jittered, round {round}: {waits:?}"
            );
            b.reset();
        }
    }
}
