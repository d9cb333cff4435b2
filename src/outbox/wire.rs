//! The delivery protocol between a bus's outbox and the central's inbox, without I/O: the
//! outbox's record payload (arrival time + event JSON), the batch a bus POSTs, the checks the
//! inbox makes of it, and the answer. docs/outbox.md "Delivery protocol" describes the same.

use serde_json::{Map, Value};

use crate::journal::{Class, Entry, Kind};

/// Most events one batch may carry (the inbox refuses more).
pub const MAX_BATCH: usize = 1000;
/// About the most event bytes a bus puts in one batch (at least one event goes).
pub const BATCH_BYTES: usize = 256 * 1024;
/// The largest event an outbox takes, as compact JSON: with the inbox's wrapper (bus, id, ts,
/// at most a few hundred bytes) it stays under the journal's 64 KiB payload limit, and a batch
/// of [`MAX_BATCH`] events (about [`BATCH_BYTES`] plus one more) well under the central's
/// request body limit.
pub const MAX_EVENT_BYTES: usize = 60 * 1024;

/// An outbox record's payload: the arrival time (Unix milliseconds, 8 bytes big-endian), then
/// the event's JSON.
pub fn payload(ts_ms: u64, event: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + event.len());
    out.extend_from_slice(&ts_ms.to_be_bytes());
    out.extend_from_slice(event);
    out
}

/// The arrival time and JSON of an outbox record's payload.
pub fn split(payload: &[u8]) -> (u64, &[u8]) {
    match payload.split_first_chunk::<8>() {
        Some((ts, rest)) => (u64::from_be_bytes(*ts), rest),
        None => (0, payload),
    }
}

/// The batch body for `entries` of `bus`, whose outbox is `epoch`:
/// `{"bus": "...", "epoch": "...", "events": [{"id", "ts", "critical", "event"} | {"id", "lost": {...}}]}`.
/// An event's JSON goes in as stored (it was checked when it arrived).
pub fn batch(bus: &str, epoch: &str, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + entries.iter().map(|e| e.payload.len() + 64).sum::<usize>());
    out.extend_from_slice(b"{\"bus\":");
    out.extend_from_slice(Value::from(bus).to_string().as_bytes());
    out.extend_from_slice(b",\"epoch\":");
    out.extend_from_slice(Value::from(epoch).to_string().as_bytes());
    out.extend_from_slice(b",\"events\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(e.seq.to_string().as_bytes());
        match &e.kind {
            Kind::Event(class) => {
                let (ts, event) = split(&e.payload);
                let event = match serde_json::from_slice::<serde::de::IgnoredAny>(event) {
                    Ok(_) => event,
                    // Never sent broken: a record that is not JSON goes as null.
                    Err(_) => b"null",
                };
                out.extend_from_slice(
                    format!(",\"ts\":{ts},\"critical\":{},\"event\":", *class == Class::Critical).as_bytes(),
                );
                out.extend_from_slice(event);
            }
            Kind::Lost { count, first, last } => {
                out.extend_from_slice(
                    format!(",\"lost\":{{\"count\":{count},\"first\":{first},\"last\":{last}}}").as_bytes(),
                );
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// One item of a batch, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The bus's sequence number.
    pub id: u64,
    /// What is stored in the inbox for it (the item as sent).
    pub record: Map<String, Value>,
}

/// A batch, checked: the bus, its outbox's epoch and its items in increasing `id` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub bus: String,
    /// Names one life of the bus's outbox directory: ids start again at 1 under a new one (an
    /// SD card replaced or wiped). Empty when the sender gave none.
    pub epoch: String,
    pub items: Vec<Item>,
}

/// Whether `s` is an epoch as outboxes write them (1 to 32 lowercase hex digits).
fn epoch_ok(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a batch body. Ids must be positive and increasing.
pub fn parse(body: &[u8]) -> Result<Batch, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("the batch is not JSON: {e}"))?;
    let Value::Object(mut doc) = doc else {
        return Err("the batch must be an object {\"bus\", \"events\"}".into());
    };
    let bus = match doc.remove("bus") {
        Some(Value::String(b)) if crate::config::bus_id_ok(&b) => b,
        _ => return Err("\"bus\" must be a bus id (letters, digits, '-', '_', '.')".into()),
    };
    let epoch = match doc.remove("epoch") {
        None => String::new(),
        Some(Value::String(e)) if epoch_ok(&e) => e,
        Some(_) => return Err("\"epoch\" must be 1 to 32 lowercase hex digits".into()),
    };
    let Some(Value::Array(events)) = doc.remove("events") else {
        return Err("\"events\" must be an array".into());
    };
    if events.len() > MAX_BATCH {
        return Err(format!("{} events: at most {MAX_BATCH} a batch", events.len()));
    }
    let mut items = Vec::with_capacity(events.len());
    let mut last = 0;
    for (i, e) in events.into_iter().enumerate() {
        let Value::Object(record) = e else {
            return Err(format!("events[{i}] must be an object"));
        };
        let Some(id) = record.get("id").and_then(Value::as_u64).filter(|id| *id > last) else {
            return Err(format!("events[{i}].id must be a whole number above the one before"));
        };
        let lost = record.get("lost");
        let ok = match lost {
            Some(Value::Object(l)) => ["count", "first", "last"]
                .iter()
                .all(|k| l.get(*k).is_some_and(Value::is_u64)),
            Some(_) => false,
            None => record.contains_key("event"),
        };
        if !ok {
            return Err(format!(
                "events[{i}] needs \"event\" or \"lost\": {{count, first, last}}"
            ));
        }
        last = id;
        items.push(Item { id, record });
    }
    Ok(Batch { bus, epoch, items })
}

/// The inbox's answer: the highest id it holds for the bus.
pub fn answer(acked: u64) -> String {
    format!("{{\"acked\":{acked}}}")
}

/// The `acked` of an inbox's answer.
pub fn acked(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body).ok()?.get("acked")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_as_sent() {
        let entries = vec![
            Entry {
                seq: 3,
                kind: Kind::Event(Class::Critical),
                payload: payload(1_700_000_000_000, br#"{"type":"door","n":1}"#),
            },
            Entry {
                seq: 4,
                kind: Kind::Lost {
                    count: 2,
                    first: 1,
                    last: 2,
                },
                payload: Vec::new(),
            },
            Entry {
                seq: 5,
                kind: Kind::Event(Class::Normal),
                payload: payload(1, b"not json"),
            },
        ];
        let body = batch("bus-1", "0f3a", &entries);
        let b = parse(&body).unwrap();
        assert_eq!(b.bus, "bus-1");
        assert_eq!(b.epoch, "0f3a");
        let ids: Vec<u64> = b.items.iter().map(|i| i.id).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert_eq!(b.items[0].record["event"]["type"], "door");
        assert_eq!(b.items[0].record["critical"], true);
        assert_eq!(b.items[0].record["ts"], 1_700_000_000_000u64);
        assert_eq!(b.items[1].record["lost"]["count"], 2);
        assert_eq!(b.items[2].record["event"], Value::Null);
    }

    #[test]
    fn bad_batches_are_refused() {
        for bad in [
            &b"[]"[..],
            br#"{"bus":"a b","events":[]}"#,
            br#"{"bus":"b","events":[{"id":2,"event":1},{"id":2,"event":1}]}"#,
            br#"{"bus":"b","events":[{"id":0,"event":1}]}"#,
            br#"{"bus":"b","events":[{"id":1}]}"#,
            br#"{"bus":"b","events":[{"id":1,"lost":{"count":1}}]}"#,
            br#"{"bus":"b"}"#,
            br#"{"bus":"b","epoch":"XYZ","events":[]}"#,
            br#"{"bus":"b","epoch":"","events":[]}"#,
            br#"{"bus":"b","epoch":7,"events":[]}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(br#"{"bus":"b","events":[]}"#).unwrap().epoch, "");
        assert_eq!(acked(answer(7).as_bytes()), Some(7));
        assert_eq!(split(&payload(9, b"{}")), (9, &b"{}"[..]));
    }
}
