//! What a sensor remembers: its latest reading (per `key`, for streams that carry several
//! kinds of record), or, for event sensors, a bounded ring of every frame with a monotonically
//! increasing `seq`. Memory is bounded and independent of traffic. Sans-io: the caller passes
//! the monotonic time (for ages, right even when the wall clock jumps) and the wall time (for
//! `ts`).

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use crate::time::Nanos;
use crate::time::rfc3339;

/// Distinct `key` values remembered; records with new keys beyond it are dropped.
pub const MAX_KEYS: usize = 32;

/// One decoded frame with its times.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    value: Value,
    seq: u64,
    at: Nanos,
    wall: SystemTime,
}

/// Why a reading was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// `key` is set and the record has no string (or number) at that field.
    NoKey,
    /// A new key beyond [`MAX_KEYS`].
    TooManyKeys,
}

/// The latest readings of one sensor.
#[derive(Debug)]
pub struct Latest {
    key: Option<String>,
    max_age: Option<Duration>,
    readings: Vec<(String, Reading)>,
    seq: u64,
}

impl Latest {
    /// A store keeping one reading, or one per value of field `key`.
    pub fn new(key: Option<String>, max_age: Option<Duration>) -> Latest {
        Latest {
            key,
            max_age,
            readings: Vec::new(),
            seq: 0,
        }
    }

    /// Stores a reading taken at `at` (monotonic) / `wall`.
    pub fn put(&mut self, value: Value, at: Nanos, wall: SystemTime) -> Result<(), Rejected> {
        let slot = match &self.key {
            None => String::new(),
            Some(field) => match value.get(field) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(Rejected::NoKey),
            },
        };
        let reading = Reading {
            value,
            seq: self.seq + 1,
            at,
            wall,
        };
        match self.readings.iter().position(|(k, _)| *k == slot) {
            Some(i) => self.readings[i].1 = reading,
            None if self.readings.len() >= MAX_KEYS => return Err(Rejected::TooManyKeys),
            None => self.readings.push((slot, reading)),
        }
        self.seq += 1;
        Ok(())
    }

    /// When the newest reading was taken (monotonic), if any.
    pub fn newest(&self) -> Option<Nanos> {
        self.readings.iter().map(|(_, r)| r.at).max()
    }

    /// Whether the newest reading is older than `max_age` at `now` (or there is none).
    pub fn stale(&self, now: Nanos) -> bool {
        match (self.newest(), self.max_age) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(at), Some(max)) => now.saturating_sub(at) > max.as_nanos() as u64,
        }
    }

    fn render(&self, r: &Reading, now: Nanos) -> Value {
        let age = now.saturating_sub(r.at);
        let stale = self.max_age.is_some_and(|m| age > m.as_nanos() as u64);
        json!({"value": r.value, "ts": rfc3339(r.wall), "age_ms": age / 1_000_000, "stale": stale, "seq": r.seq})
    }

    /// The reading document: `{"value", "ts", "age_ms", "stale", "seq"}`, or with `key` an
    /// object of those by key value; `None` before the first reading.
    pub fn to_json(&self, now: Nanos) -> Option<Value> {
        match (&self.key, self.readings.first()) {
            (_, None) => None,
            (None, Some((_, r))) => Some(self.render(r, now)),
            (Some(_), Some(_)) => {
                let map: Map<String, Value> = self
                    .readings
                    .iter()
                    .map(|(k, r)| (k.clone(), self.render(r, now)))
                    .collect();
                Some(Value::Object(map))
            }
        }
    }
}

/// An event sensor's ring: every frame, the oldest overwritten when full. A frame also kept
/// in the outbox carries its outbox sequence number, and is shown (and given out as `seq`) only
/// once the outbox has it on disk: a client that saw `seq` N knows frames up to N are durable.
#[derive(Debug)]
pub struct Events {
    /// Each reading with the outbox sequence number it waits for (0: none).
    ring: VecDeque<(Reading, u64)>,
    capacity: usize,
    /// The `seq` the next event gets (the first is 1).
    next: u64,
}

impl Events {
    /// A ring of `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Events {
        Events {
            ring: VecDeque::with_capacity(capacity.max(1)),
            capacity: capacity.max(1),
            next: 1,
        }
    }

    /// Appends an event that is shown only once outbox sequence number `held` is durable
    /// (0: at once). Outbox numbers only grow, so the frames shown are always a prefix.
    pub fn push_held(&mut self, value: Value, at: Nanos, wall: SystemTime, held: u64) {
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        let reading = Reading {
            value,
            seq: self.next,
            at,
            wall,
        };
        self.ring.push_back((reading, held));
        self.next += 1;
    }

    /// Events with `seq >= since` whose outbox number is at most `durable`:
    /// `{"events": [...], "next": <seq to ask for next>, "lost": N}`, where `lost` counts events
    /// after `since` that the ring has already overwritten.
    pub fn since(&self, since: u64, now: Nanos, durable: u64) -> Value {
        let shown = self.ring.iter().take_while(|(_, held)| *held <= durable);
        let next = self
            .ring
            .iter()
            .find(|(_, held)| *held > durable)
            .map_or(self.next, |(r, _)| r.seq);
        let oldest = self.ring.front().map_or(self.next, |(r, _)| r.seq);
        let lost = oldest
            .saturating_sub(since.max(1))
            .min(next.saturating_sub(since.max(1)));
        let events: Vec<Value> = shown
            .filter(|(r, _)| r.seq >= since)
            .map(|(r, _)| {
                json!({"value": r.value, "ts": rfc3339(r.wall), "age_ms": now.saturating_sub(r.at) / 1_000_000, "seq": r.seq})
            })
            .collect();
        json!({"events": events, "next": next, "lost": lost})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn wall(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn latest_reading_with_age_and_staleness() {
        let mut s = Latest::new(None, Some(Duration::from_secs(2)));
        assert_eq!(s.to_json(0), None);
        assert!(s.stale(0), "nothing yet counts as stale");
        s.put(json!(71), 1000 * MS, wall(1_795_000_000)).unwrap();
        s.put(json!(70), 2000 * MS, wall(1_795_000_001)).unwrap();
        let doc = s.to_json(3500 * MS).unwrap();
        assert_eq!(
            doc,
            json!({"value": 70, "ts": "2026-11-18T11:06:41Z", "age_ms": 1500, "stale": false, "seq": 2})
        );
        assert_eq!(s.to_json(4001 * MS).unwrap()["stale"], true);
        assert!(s.stale(4001 * MS));
    }

    #[test]
    fn age_comes_from_the_monotonic_clock_not_the_wall_clock() {
        let mut s = Latest::new(None, None);
        // A Pi that booted in 1970: the wall clock is useless, the age is still right.
        s.put(json!(1), 5_000 * MS, wall(0)).unwrap();
        let doc = s.to_json(5_250 * MS).unwrap();
        assert_eq!(
            (doc["age_ms"].clone(), doc["ts"].clone()),
            (json!(250), json!("1970-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn keyed_streams_keep_the_latest_per_key_and_stay_bounded() {
        let mut s = Latest::new(Some("class".into()), None);
        s.put(json!({"class": "TPV", "lat": 1}), MS, wall(0)).unwrap();
        s.put(json!({"class": "SKY", "n": 9}), 2 * MS, wall(0)).unwrap();
        s.put(json!({"class": "TPV", "lat": 2}), 3 * MS, wall(0)).unwrap();
        assert_eq!(s.put(json!({"lat": 3}), 4 * MS, wall(0)), Err(Rejected::NoKey));
        let doc = s.to_json(3 * MS).unwrap();
        assert_eq!(doc["TPV"]["value"]["lat"], 2);
        assert_eq!(doc["TPV"]["seq"], 3);
        assert_eq!(doc["SKY"]["value"]["n"], 9);
        for i in 0..100 {
            let _ = s.put(json!({"class": format!("K{i}")}), 5 * MS, wall(0));
        }
        assert_eq!(s.to_json(5 * MS).unwrap().as_object().unwrap().len(), MAX_KEYS);
    }

    #[test]
    fn events_since_and_lost() {
        let mut e = Events::new(3);
        assert_eq!(e.since(1, 0, 0), json!({"events": [], "next": 1, "lost": 0}));
        for i in 1..=5 {
            e.push_held(json!(format!("crash {i}")), i * MS, wall(0), 0);
        }
        // Ring holds seq 3..=5; a client that saw up to 1 asks since=2 and lost seq 2.
        let doc = e.since(2, 5 * MS, 0);
        assert_eq!(doc["next"], 6);
        assert_eq!(doc["lost"], 1);
        let seqs: Vec<u64> = doc["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [3, 4, 5]);
        assert_eq!(e.since(5, 5 * MS, 0)["events"].as_array().unwrap().len(), 1);
        assert_eq!(e.since(6, 5 * MS, 0), json!({"events": [], "next": 6, "lost": 0}));
        assert_eq!(
            e.since(0, 5 * MS, 0)["lost"],
            2,
            "since=0 means from the start: seq 1 and 2 are gone"
        );
    }

    #[test]
    fn held_events_are_shown_once_the_outbox_has_them_on_disk() {
        let mut e = Events::new(8);
        e.push_held(json!("a"), MS, wall(0), 10);
        e.push_held(json!("b"), MS, wall(0), 11);
        e.push_held(json!("refused by the outbox"), MS, wall(0), 0);
        // Nothing durable yet: nothing shown, and `next` does not pass the first held frame.
        assert_eq!(e.since(0, MS, 9), json!({"events": [], "next": 1, "lost": 0}));
        let doc = e.since(0, MS, 10);
        assert_eq!(doc["events"].as_array().unwrap().len(), 1);
        assert_eq!(doc["next"], 2);
        // Once 11 is durable, the frame behind it (never held) shows too.
        let doc = e.since(doc["next"].as_u64().unwrap(), MS, 11);
        let values: Vec<&Value> = doc["events"].as_array().unwrap().iter().map(|v| &v["value"]).collect();
        assert_eq!(values, [&json!("b"), &json!("refused by the outbox")]);
        assert_eq!(doc["next"], 4);
    }
}
