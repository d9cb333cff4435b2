//! The central's inbox: batches from the buses, checked ([`super::wire`]), stored in a
//! [`Journal`] and synced before the answer, which names the highest id stored for the bus.
//! Duplicates are dropped by a per-bus high-water mark (a bus's ids only grow within one epoch
//! of its outbox; a new epoch starts the mark again), rebuilt from the journal at start.
//! Critical events are stored as critical: when the inbox is full, the oldest normal ones go
//! first. Clients page through what is stored with `?since=`.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{describe, limits, open, wire};
use crate::config;
use crate::journal::{self, Class, Entry, Journal, Kind};

/// Why a batch or a read was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The batch is malformed (400).
    Bad(String),
    /// The authenticated identity is not the batch's bus (403).
    NotYours(String),
    /// Too many buses, or the disk refused (503).
    Unavailable(String),
    /// The inbox is full of events it may not drop (507).
    Full,
}

/// A bus's high-water mark: its outbox's epoch and the highest id stored under it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Mark {
    epoch: String,
    id: u64,
}

impl Mark {
    /// Takes a record of `epoch` and `id`, in the order stored: a new epoch starts again.
    fn saw(&mut self, epoch: &str, id: u64) {
        if self.epoch == epoch {
            self.id = self.id.max(id);
        } else {
            self.epoch = epoch.to_string();
            self.id = id;
        }
    }
}

/// Most events one `?since=` page holds.
pub const MAX_PAGE: usize = 1000;
/// About the most bytes of events one page holds.
const PAGE_BYTES: usize = 512 * 1024;

/// The central's inbox.
pub struct Inbox {
    /// Its configuration.
    pub config: config::Inbox,
    journal: RefCell<Journal>,
    /// Per bus, its outbox's epoch and the highest id stored under it.
    high: RefCell<HashMap<String, Mark>>,
}

impl Inbox {
    /// Opens the journal and rebuilds the high-water marks from it.
    pub fn open(config: config::Inbox) -> Result<Inbox, String> {
        let mut journal = open(&config.dir, limits(config.max_bytes, config.max_events))?;
        let mut high: HashMap<String, Mark> = HashMap::new();
        let mut page = Vec::new();
        let mut after = 0;
        loop {
            page.clear();
            journal
                .read(after, MAX_PAGE, PAGE_BYTES, &mut page)
                .map_err(|e| format!("{}: {}", config.dir.display(), describe(&e)))?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                if let Some((bus, epoch, id)) = bus_and_id(e) {
                    high.entry(bus).or_default().saw(&epoch, id);
                }
            }
        }
        Ok(Inbox {
            config,
            journal: RefCell::new(journal),
            high: RefCell::new(high),
        })
    }

    /// Stores a batch (JSON, already inflated) sent by `identity` (a JWT's `sub`, when the
    /// endpoint authenticates with one): the events above the bus's high-water mark, synced.
    /// The answer's `acked`: the highest id now stored for the bus.
    pub fn store(&self, body: &[u8], identity: Option<&str>) -> Result<u64, Refused> {
        let batch = wire::parse(body).map_err(Refused::Bad)?;
        if let Some(who) = identity
            && who != batch.bus
        {
            return Err(Refused::NotYours(format!(
                "authenticated as \"{who}\", not bus \"{}\"",
                batch.bus
            )));
        }
        let mut high = self.high.borrow_mut();
        let known = high.contains_key(&batch.bus);
        if !known && high.len() >= self.config.max_buses {
            return Err(Refused::Unavailable(format!(
                "{} buses already: at most {} (max_buses)",
                high.len(),
                self.config.max_buses
            )));
        }
        let before = match high.get(&batch.bus) {
            Some(m) if m.epoch == batch.epoch => m.id,
            Some(m) => {
                log::warn!(
                    "bus {}: a new outbox epoch ({:?} after {:?}): its ids start again",
                    batch.bus,
                    batch.epoch,
                    m.epoch
                );
                0
            }
            None => 0,
        };
        let mut mark = before;
        let mut journal = self.journal.borrow_mut();
        let mut refused = None;
        for item in batch.items.into_iter().filter(|i| i.id > before) {
            let mut record = item.record;
            record.insert("bus".into(), Value::from(batch.bus.as_str()));
            if !batch.epoch.is_empty() {
                record.insert("epoch".into(), Value::from(batch.epoch.as_str()));
            }
            let class = match record.get("critical") {
                Some(Value::Bool(true)) => Class::Critical,
                _ => Class::Normal,
            };
            let bytes = serde_json::to_vec(&record).unwrap_or_default();
            let mut appended = journal.append(class, &bytes);
            if let Err(journal::Error::TooLarge) = appended {
                // Never stuck on one event: it is kept as a marker of its size instead.
                record.remove("event");
                record.insert("too_large".into(), Value::from(bytes.len()));
                appended = journal.append(class, &serde_json::to_vec(&record).unwrap_or_default());
            }
            match appended {
                Ok(_) => mark = item.id,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        if mark > before {
            if let Err(e) = journal.sync() {
                // Not known to be on disk: not acknowledged (a retry may store it twice).
                return Err(Refused::Unavailable(format!("the inbox cannot sync: {}", describe(&e))));
            }
            high.insert(
                batch.bus.clone(),
                Mark {
                    epoch: batch.epoch,
                    id: mark,
                },
            );
        }
        match refused {
            // Part of the batch stored: acknowledged as far as it goes; the rest is retried.
            Some(_) if mark > before => Ok(mark),
            Some(journal::Error::Full) => Err(Refused::Full),
            Some(e) => Err(Refused::Unavailable(format!(
                "the inbox cannot write: {}",
                describe(&e)
            ))),
            None => Ok(mark),
        }
    }

    /// `{"events": [...], "next": N}`: up to `limit` stored events from inbox sequence number
    /// `since` on (0 or 1: from the oldest kept), in the order stored; ask for `next` next.
    pub fn read(&self, since: u64, limit: usize) -> Result<Value, Refused> {
        let mut page = Vec::new();
        let read =
            self.journal
                .borrow_mut()
                .read(since.saturating_sub(1), limit.clamp(1, MAX_PAGE), PAGE_BYTES, &mut page);
        read.map_err(|e| Refused::Unavailable(describe(&e)))?;
        let next = page.last().map_or(since.max(1), |e| e.seq + 1);
        let events: Vec<Value> = page.iter().map(render).collect();
        Ok(json!({"events": events, "next": next}))
    }

    /// The `/__health` part: buses, records, losses of the inbox itself.
    pub fn health(&self) -> Value {
        let s = self.journal.borrow().stats();
        json!({"buses": self.high.borrow().len(), "records": s.records, "bytes": s.bytes,
               "lost": s.lost, "durable": s.durable})
    }
}

/// The bus, epoch (empty if none) and id of a stored record.
fn bus_and_id(e: &Entry) -> Option<(String, String, u64)> {
    if !matches!(e.kind, Kind::Event(_)) {
        return None;
    }
    let doc: Map<String, Value> = serde_json::from_slice(&e.payload).ok()?;
    let epoch = doc.get("epoch").and_then(Value::as_str).unwrap_or_default();
    Some((
        doc.get("bus")?.as_str()?.to_string(),
        epoch.to_string(),
        doc.get("id")?.as_u64()?,
    ))
}

/// A stored record as a client gets it: the record with its inbox `seq`; the inbox's own
/// losses (oldest events dropped for room) as `{"seq", "dropped": {count, first, last}}`.
fn render(e: &Entry) -> Value {
    match &e.kind {
        Kind::Event(_) => {
            let mut doc: Map<String, Value> = serde_json::from_slice(&e.payload).unwrap_or_default();
            doc.insert("seq".into(), Value::from(e.seq));
            Value::Object(doc)
        }
        Kind::Lost { count, first, last } => {
            json!({"seq": e.seq, "dropped": {"count": count, "first": first, "last": last}})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    fn inbox(name: &str, max_bytes: u64) -> (Dir, Inbox) {
        let dir = std::env::temp_dir().join(format!("gatelet-inbox-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        let config = config::Inbox {
            dir: dir.clone(),
            max_bytes,
            max_events: 100_000,
            max_buses: 16,
        };
        (Dir(dir), Inbox::open(config).unwrap())
    }

    fn batch(epoch: &str, ids: std::ops::RangeInclusive<u64>, critical: impl Fn(u64) -> bool) -> Vec<u8> {
        let events: Vec<Value> = ids
            .map(|id| json!({"id": id, "ts": 1, "critical": critical(id), "event": {"n": id, "pad": "x".repeat(200)}}))
            .collect();
        json!({"bus": "bus-1", "epoch": epoch, "events": events})
            .to_string()
            .into_bytes()
    }

    fn stored(inbox: &Inbox) -> Vec<(String, u64)> {
        let page = inbox.read(0, MAX_PAGE).unwrap();
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e.get("id").is_some())
            .map(|e| (e["epoch"].as_str().unwrap_or("").to_string(), e["id"].as_u64().unwrap()))
            .collect()
    }

    #[test]
    fn a_new_epoch_starts_the_mark_again_and_survives_a_restart() {
        let (dir, first) = inbox("epoch", 1 << 20);
        assert_eq!(first.store(&batch("aa", 1..=3, |_| false), None), Ok(3));
        // The same epoch again: repeats dropped.
        assert_eq!(first.store(&batch("aa", 2..=4, |_| false), None), Ok(4));
        // A wiped bus: ids start at 1 under a new epoch, and are kept.
        assert_eq!(first.store(&batch("bb", 1..=2, |_| false), None), Ok(2));
        let want: Vec<(String, u64)> = [("aa", 1), ("aa", 2), ("aa", 3), ("aa", 4), ("bb", 1), ("bb", 2)]
            .iter()
            .map(|(e, i)| (e.to_string(), *i))
            .collect();
        assert_eq!(stored(&first), want);
        let config = first.config.clone();
        drop(first);
        // Rebuilt from the journal: the mark is the newest epoch's.
        let again = Inbox::open(config).unwrap();
        assert_eq!(again.store(&batch("bb", 1..=3, |_| false), None), Ok(3));
        assert_eq!(stored(&again).len(), 7);
        drop(dir);
    }

    #[test]
    fn a_full_inbox_drops_normal_events_and_keeps_critical_ones() {
        let (_dir, inbox) = inbox("critical", 64 * 1024);
        let critical = |id: u64| id.is_multiple_of(10);
        for start in (1..=2000u64).step_by(50) {
            let r = inbox.store(&batch("aa", start..=start + 49, critical), None);
            assert!(r.is_ok(), "batch at {start}: {r:?}");
        }
        let ids: Vec<u64> = stored(&inbox).into_iter().map(|(_, id)| id).collect();
        let kept_critical = ids.iter().filter(|id| critical(**id)).count();
        assert_eq!(kept_critical, 200, "every critical event kept");
        assert!(
            ids.len() < 1000,
            "normal events were dropped for room: {} kept",
            ids.len()
        );
    }
}
