//! The central's inbox: batches from the buses, checked ([`super::wire`]), stored in a
//! [`Journal`] and synced before the answer, which names the highest id stored for the bus.
//! Duplicates are dropped by a per-bus high-water mark (a bus's ids only grow), rebuilt from
//! the journal at start. Clients page through what is stored with `?since=`.

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

/// Most events one `?since=` page holds.
pub const MAX_PAGE: usize = 1000;
/// About the most bytes of events one page holds.
const PAGE_BYTES: usize = 512 * 1024;

/// The central's inbox.
pub struct Inbox {
    /// Its configuration.
    pub config: config::Inbox,
    journal: RefCell<Journal>,
    /// Per bus, the highest id stored.
    high: RefCell<HashMap<String, u64>>,
}

impl Inbox {
    /// Opens the journal and rebuilds the high-water marks from it.
    pub fn open(config: config::Inbox) -> Result<Inbox, String> {
        let mut journal = open(&config.dir, limits(config.max_bytes, config.max_events))?;
        let mut high: HashMap<String, u64> = HashMap::new();
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
                if let Some((bus, id)) = bus_and_id(e) {
                    let h = high.entry(bus).or_default();
                    *h = (*h).max(id);
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
        let before = high.get(&batch.bus).copied().unwrap_or(0);
        let mut mark = before;
        let mut journal = self.journal.borrow_mut();
        let mut refused = None;
        for item in batch.items.into_iter().filter(|i| i.id > before) {
            let mut record = item.record;
            record.insert("bus".into(), Value::from(batch.bus.as_str()));
            let bytes = serde_json::to_vec(&record).unwrap_or_default();
            let mut appended = journal.append(Class::Normal, &bytes);
            if let Err(journal::Error::TooLarge) = appended {
                // Never stuck on one event: it is kept as a marker of its size instead.
                record.remove("event");
                record.insert("too_large".into(), Value::from(bytes.len()));
                appended = journal.append(Class::Normal, &serde_json::to_vec(&record).unwrap_or_default());
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
            high.insert(batch.bus.clone(), mark);
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

/// The bus and id of a stored record.
fn bus_and_id(e: &Entry) -> Option<(String, u64)> {
    if !matches!(e.kind, Kind::Event(_)) {
        return None;
    }
    let doc: Map<String, Value> = serde_json::from_slice(&e.payload).ok()?;
    Some((doc.get("bus")?.as_str()?.to_string(), doc.get("id")?.as_u64()?))
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
