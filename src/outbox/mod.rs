//! A bus's durable outbox and the central's inbox. The outbox appends each event (a local
//! POST, or a frame of a forwarding sensor) to a [`Journal`], acknowledges it once it is on
//! disk (at once for critical events, which the journal syncs; after the next group sync,
//! every `sync_window`, for the rest), and one delivery task POSTs what is durable to the
//! central in order, in batches, with jittered exponential backoff, acknowledging in the
//! journal what the central says it holds. Everything runs on the one thread: the journal's
//! file I/O is blocking and short; the only waits are timers and sockets. [`inbox`] is the
//! central side; [`wire`] the protocol between them.

pub mod inbox;
pub mod wire;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::config;
use crate::journal::{self, Class, Entry, Journal, Limits};
use crate::proxy::pool::Pool;
use crate::proxy::{self, UpstreamError};
use crate::runtime;
use crate::time::rfc3339;

/// Why an event was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The body is not a JSON object (400).
    NotAnObject(String),
    /// The event is larger than [`wire::MAX_EVENT_BYTES`] or than the journal takes (413).
    TooLarge,
    /// No room: the journal is full of events that may not be dropped (507). Counted as lost.
    Full,
    /// The disk refused, or the event was not synced by the deadline (503).
    Unavailable(String),
}

/// The journal limits for `max_bytes` / `max_events`: segments of an eighth of the whole,
/// between 4 KiB and 4 MiB, so that dropping the oldest segment frees little at a time.
pub fn limits(max_bytes: u64, max_events: u64) -> Limits {
    Limits {
        max_bytes,
        max_records: max_events,
        segment_bytes: (max_bytes / 8).clamp(4096, 4 << 20),
    }
}

/// Opens a journal, with a message that names the directory.
fn open(dir: &std::path::Path, limits: Limits) -> Result<Journal, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    match Journal::open(dir, limits) {
        Ok((j, recovery)) => {
            if recovery.cut_bytes > 0 {
                log::warn!(
                    "{}: {} bytes of a torn write cut at open",
                    dir.display(),
                    recovery.cut_bytes
                );
            }
            Ok(j)
        }
        Err(e) => Err(format!("{}: {}", dir.display(), describe(&e))),
    }
}

/// A journal error for messages.
pub fn describe(e: &journal::Error) -> String {
    match e {
        journal::Error::Full => "full".into(),
        journal::Error::TooLarge => "too large".into(),
        journal::Error::Io(e) => e.to_string(),
    }
}

/// Unix milliseconds now.
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How delivery is going, for `/__health`.
#[derive(Debug, Default)]
struct Delivery {
    last_success: Option<SystemTime>,
    last_error: Option<String>,
    /// Failed attempts since the last success.
    failures: u32,
    /// Records acknowledged by the central since start.
    delivered: u64,
}

/// One bus's outbox.
pub struct Outbox {
    /// Its configuration.
    pub config: config::Outbox,
    journal: RefCell<Journal>,
    /// Woken after each group sync (successful or not).
    synced: Notify,
    /// An append asks the committer for a group sync.
    commit: Notify,
    /// New durable records for the delivery task.
    work: Notify,
    /// Highest sequence number whose sync failed: its waiters are answered 503.
    failed_through: Cell<u64>,
    /// Events refused because the disk refused them (lost too, but not by the journal).
    io_refused: Cell<u64>,
    delivery: RefCell<Delivery>,
    /// gzip is sent (turned off when the central answers 415).
    gzip: Cell<bool>,
    /// This outbox directory's epoch (see [`epoch`]).
    epoch: String,
}

/// The name of the file holding an outbox directory's epoch.
const EPOCH_FILE: &str = "epoch";

/// The epoch of the outbox in `dir`: 16 random hex digits written once, when the directory
/// is first used. Sequence numbers restart at 1 when a directory is wiped or an SD card
/// replaced; the new epoch tells the inbox to start the bus's high-water mark again instead
/// of dropping the new events as repeats. A missing or unreadable file gets a new epoch:
/// at worst events the central already holds are stored again, never dropped.
fn epoch(dir: &std::path::Path) -> Result<String, String> {
    let path = dir.join(EPOCH_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim();
        if text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Ok(text.to_string());
        }
        log::warn!("{}: not an epoch; starting a new one", path.display());
    }
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| "no random bytes for the outbox's epoch".to_string())?;
    let epoch = format!("{:016x}", u64::from_be_bytes(bytes));
    journal::replace_file(dir, EPOCH_FILE, "epoch.tmp", format!("{epoch}\n").as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(epoch)
}

impl Outbox {
    /// Opens the outbox's journal (creating its directory).
    pub fn open(config: config::Outbox) -> Result<Rc<Outbox>, String> {
        let journal = open(&config.dir, limits(config.max_bytes, config.max_events))?;
        let epoch = epoch(&config.dir)?;
        Ok(Rc::new(Outbox {
            epoch,
            gzip: Cell::new(config.deliver.as_ref().is_some_and(|d| d.gzip)),
            config,
            journal: RefCell::new(journal),
            synced: Notify::new(),
            commit: Notify::new(),
            work: Notify::new(),
            failed_through: Cell::new(0),
            io_refused: Cell::new(0),
            delivery: RefCell::default(),
        }))
    }

    /// The tasks that keep it going: the group committer and, with `deliver`, the delivery.
    /// Dropping them stops them.
    pub fn tasks(self: &Rc<Outbox>) -> Vec<runtime::Task> {
        let mut tasks = vec![runtime::Task::spawn(committer(self.clone()))];
        if let Some(d) = &self.config.deliver {
            let pool = Pool::new(d.host.addr, true);
            tasks.push(runtime::Task::spawn(deliver(self.clone(), pool)));
        }
        tasks
    }

    /// Whether an event JSON is critical: its `type` is in `critical`.
    fn class_of(&self, event: &Value) -> Class {
        let critical = event
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| self.config.critical.iter().any(|c| c == t));
        if critical { Class::Critical } else { Class::Normal }
    }

    /// Appends one event; its sequence number.
    fn append(&self, class: Class, event: &[u8]) -> Result<u64, Refused> {
        if event.len() > wire::MAX_EVENT_BYTES {
            return Err(Refused::TooLarge);
        }
        let payload = wire::payload(unix_ms(SystemTime::now()), event);
        let appended = self.journal.borrow_mut().append(class, &payload);
        match appended {
            Ok(seq) => {
                if class == Class::Critical {
                    // Its sync covered every record before it: their waiters may go too.
                    self.work.notify_one();
                    self.synced.notify_waiters();
                } else if self.config.sync_window.is_zero() {
                    self.sync();
                } else {
                    self.commit.notify_one();
                }
                Ok(seq)
            }
            Err(journal::Error::Full) => {
                // The journal may have written a lost record: it goes with the next group.
                self.commit.notify_one();
                Err(Refused::Full)
            }
            Err(journal::Error::TooLarge) => Err(Refused::TooLarge),
            Err(journal::Error::Io(e)) => {
                self.io_refused.set(self.io_refused.get() + 1);
                log::warn!("outbox: append failed: {e}");
                Err(Refused::Unavailable(format!("the outbox cannot write: {e}")))
            }
        }
    }

    /// A local POST: `body` is one event (a JSON object). Answers once it is durable (its
    /// sequence number), or fails by `deadline`.
    pub async fn post(&self, body: &[u8], deadline: Instant) -> Result<u64, Refused> {
        let event: Value = serde_json::from_slice(body).map_err(|e| Refused::NotAnObject(e.to_string()))?;
        if !event.is_object() {
            return Err(Refused::NotAnObject("the event must be a JSON object".into()));
        }
        let class = self.class_of(&event);
        // Stored compact, as serde_json writes it: the inbox writes it back the same size.
        let compact = serde_json::to_vec(&event).unwrap_or_default();
        let seq = self.append(class, &compact)?;
        if class == Class::Critical {
            return Ok(seq);
        }
        let durable = runtime::until(deadline, async {
            loop {
                if self.journal.borrow().stats().durable >= seq {
                    return Ok(seq);
                }
                if self.failed_through.get() >= seq {
                    return Err(Refused::Unavailable("the outbox could not sync".into()));
                }
                self.synced.notified().await;
            }
        });
        durable
            .await
            .unwrap_or_else(|| Err(Refused::Unavailable("not synced in time".into())))
    }

    /// A frame of a forwarding sensor: appended (synced with the next group); its sequence
    /// number, or `None` when refused (logged, and counted as lost by the journal when it is
    /// for room).
    pub fn forward(&self, value: &Value, critical: bool) -> Option<u64> {
        let class = match critical {
            true => Class::Critical,
            false => self.class_of(value),
        };
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.append(class, &bytes)
            .map_err(|e| log::debug!("outbox: sensor frame refused: {e:?}"))
            .ok()
    }

    /// The highest sequence number on disk.
    pub fn durable(&self) -> u64 {
        self.journal.borrow().stats().durable
    }

    /// Syncs what was appended and wakes the waiters and the delivery.
    fn sync(&self) {
        let mut journal = self.journal.borrow_mut();
        if journal.dirty() {
            match journal.sync() {
                Ok(_) => self.work.notify_one(),
                Err(e) => {
                    let appended = journal.stats().next_seq.saturating_sub(1);
                    self.failed_through.set(appended);
                    log::warn!("outbox: sync failed: {}", describe(&e));
                }
            }
        }
        drop(journal);
        self.synced.notify_waiters();
    }

    /// Moves the cursor to the durable end when nothing durable is left above it: what lies
    /// between was dropped for room (and is covered by a lost record).
    fn skip_dropped(&self) {
        let mut journal = self.journal.borrow_mut();
        let s = journal.stats();
        if s.durable > s.acked
            && let Err(e) = journal.ack(s.durable)
        {
            log::warn!("outbox: ack failed: {}", describe(&e));
        }
    }

    /// The `/__health` part: backlog (count, oldest age), last success, losses.
    pub fn health(&self) -> Value {
        let mut journal = self.journal.borrow_mut();
        let s = journal.stats();
        // Refused for room and not yet in a lost record (written as soon as there is room).
        let journal_pending = journal.lost_pending();
        let mut first = Vec::new();
        let oldest = match journal.read(s.acked, 1, 1, &mut first) {
            Ok(()) => first.first().map(|e| wire::split(&e.payload).0),
            Err(_) => None,
        };
        drop(journal);
        let now = unix_ms(SystemTime::now());
        let d = self.delivery.borrow();
        let backlog = s.next_seq.saturating_sub(1).saturating_sub(s.acked);
        json!({
            "bus": self.config.bus,
            "backlog": backlog,
            "oldest_age_ms": oldest.filter(|t| *t > 0).map(|t| now.saturating_sub(t)),
            "last_success": d.last_success.map(rfc3339),
            "last_error": d.last_error,
            "failures": d.failures,
            "delivered": d.delivered,
            "lost": s.lost + self.io_refused.get(),
            "lost_unreported": journal_pending,
            "records": s.records,
            "bytes": s.bytes,
            "durable": s.durable,
            "acked": s.acked,
        })
    }
}

/// The group committer: after an append asks, waits `sync_window` (more appends join the
/// group), then syncs them all at once.
async fn committer(outbox: Rc<Outbox>) {
    loop {
        outbox.commit.notified().await;
        runtime::sleep(outbox.config.sync_window).await;
        outbox.sync();
    }
}

/// The delivery task: batches of what is durable and not acknowledged, in order, one request
/// at a time; after a failure, a pause of full jitter below an exponential backoff.
async fn deliver(outbox: Rc<Outbox>, pool: Rc<Pool>) {
    let Some(d) = outbox.config.deliver.clone() else {
        return;
    };
    let mut batch: Vec<Entry> = Vec::new();
    // Seeded by the time and the process: buses restarted together do not retry in step.
    let mut rng = fastrand::Rng::with_seed(unix_ms(SystemTime::now()) ^ u64::from(std::process::id()).rotate_left(32));
    loop {
        batch.clear();
        let read = {
            let mut journal = outbox.journal.borrow_mut();
            let acked = journal.stats().acked;
            journal.read(acked, d.batch, wire::BATCH_BYTES, &mut batch)
        };
        if let Err(e) = read {
            log::warn!("outbox: read failed: {}", describe(&e));
            runtime::sleep(d.backoff_max).await;
            continue;
        }
        let (Some(first), Some(last)) = (batch.first().map(|e| e.seq), batch.last().map(|e| e.seq)) else {
            // Nothing durable left above the cursor: what lies between it and the durable end
            // was dropped (and is covered by a lost record): move the cursor past it.
            outbox.skip_dropped();
            // Wait for the next sync (or look again in a while).
            let _ = runtime::within(Duration::from_secs(1), outbox.work.notified()).await;
            continue;
        };
        let sent = send(&outbox, &d, &pool, &batch).await;
        let outcome = match sent {
            Ok(acked) if acked >= first => {
                let upto = acked.min(last);
                match outbox.journal.borrow_mut().ack(upto) {
                    Ok(()) => Ok(upto + 1 - first),
                    Err(e) => Err(format!("ack failed: {}", describe(&e))),
                }
            }
            Ok(acked) => Err(format!("the central holds up to {acked}, not {first}..={last}")),
            Err(e) => Err(e),
        };
        let pause = {
            let mut state = outbox.delivery.borrow_mut();
            match outcome {
                Ok(n) => {
                    state.last_success = Some(SystemTime::now());
                    state.failures = 0;
                    state.delivered += n;
                    None
                }
                Err(e) => {
                    log::debug!("outbox: delivery failed: {e}");
                    state.last_error = Some(e);
                    state.failures = state.failures.saturating_add(1);
                    let exp = d
                        .backoff_initial
                        .saturating_mul(1 << state.failures.min(20).saturating_sub(1));
                    let cap = exp.min(d.backoff_max);
                    // Full jitter, never below a tenth of the cap.
                    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
                    Some(Duration::from_nanos(rng.u64(nanos / 10..=nanos)))
                }
            }
        };
        if let Some(p) = pause {
            runtime::sleep(p).await;
        }
    }
}

/// One batch POSTed; the central's `acked`.
async fn send(outbox: &Outbox, d: &config::Deliver, pool: &Rc<Pool>, batch: &[Entry]) -> Result<u64, String> {
    let json = wire::batch(&outbox.config.bus, &outbox.epoch, batch);
    let gzip = outbox.gzip.get();
    let body = Bytes::from(if gzip { crate::compress::gzip(&json, 1) } else { json });
    let build = || {
        let mut req = http::Request::new(Full::new(body.clone()));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = d.target.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
        let h = req.headers_mut();
        if let Ok(v) = http::HeaderValue::from_str(&d.host.authority) {
            h.insert(http::header::HOST, v);
        }
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if gzip {
            h.insert(http::header::CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
        }
        for (name, value) in &d.headers {
            h.insert(name.clone(), value.clone());
        }
        req
    };
    let deadline = Instant::now() + d.timeout;
    match proxy::fetch(pool, &build, None, deadline).await {
        Ok(reply) => wire::acked(&reply.body).ok_or_else(|| "the central's answer has no \"acked\"".into()),
        Err(UpstreamError::Status(r)) if r.status == 415 && gzip => {
            log::info!("outbox: the central does not take gzip; sending plain JSON");
            outbox.gzip.set(false);
            Err("415: gzip not accepted".into())
        }
        Err(e) => Err(e.to_string()),
    }
}
