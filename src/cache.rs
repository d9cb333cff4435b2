//! The backend cache (KrakenD's backend `qos/http-cache`): successful GET answers kept for the
//! backend's `Cache-Control: max-age`, bounded in entries (`max_items`) and bytes (`max_size`).
//! Sans-io: time is passed in; the soonest-expiring entries go first when space is needed.

use std::collections::HashMap;

use bytes::Bytes;

use crate::time::Nanos;

/// The cache's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most entries.
    pub max_items: usize,
    /// Most body bytes in all.
    pub max_size: usize,
}

/// Defaults when `qos/http-cache` sets neither bound: small, for a Pi.
pub const DEFAULT_BOUNDS: Bounds = Bounds {
    max_items: 256,
    max_size: 1 << 20,
};

#[derive(Debug)]
struct Entry {
    body: Bytes,
    expires: Nanos,
}

/// One backend's cache.
#[derive(Debug)]
pub struct Cache {
    bounds: Bounds,
    entries: HashMap<String, Entry>,
    size: usize,
}

/// `max-age` of a `Cache-Control` value, in seconds; `None` when the answer may not be kept
/// (`no-store`, `no-cache`, `private`, or no `max-age`).
pub fn max_age(cache_control: &str) -> Option<u64> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if matches!(lower.as_str(), "no-store" | "no-cache" | "private") {
            return None;
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            age = v.trim_matches('"').parse::<u64>().ok();
        }
    }
    age.filter(|a| *a > 0)
}

impl Cache {
    /// An empty cache.
    pub fn new(bounds: Bounds) -> Cache {
        Cache {
            bounds,
            entries: HashMap::new(),
            size: 0,
        }
    }

    /// A fresh body for `key`, if any.
    pub fn get(&self, key: &str, now: Nanos) -> Option<Bytes> {
        self.entries
            .get(key)
            .filter(|e| e.expires > now)
            .map(|e| e.body.clone())
    }

    /// Keeps `body` for `ttl` nanoseconds; bodies larger than `max_size` are not kept.
    pub fn put(&mut self, key: String, body: Bytes, ttl: Nanos, now: Nanos) {
        if body.len() > self.bounds.max_size || self.bounds.max_items == 0 {
            return;
        }
        if let Some(old) = self.entries.remove(&key) {
            self.size -= old.body.len();
        }
        // Expired entries first, then the soonest to expire, until the new one fits.
        self.entries.retain(|_, e| {
            e.expires > now || {
                self.size -= e.body.len();
                false
            }
        });
        while self.entries.len() >= self.bounds.max_items || self.size + body.len() > self.bounds.max_size {
            let Some(victim) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&victim) {
                self.size -= e.body.len();
            }
        }
        self.size += body.len();
        self.entries.insert(
            key,
            Entry {
                body,
                expires: now.saturating_add(ttl),
            },
        );
    }

    /// Entries held (for tests and stats).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Body bytes held.
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn cache_control_is_honoured() {
        assert_eq!(max_age("public, max-age=60"), Some(60));
        assert_eq!(max_age("max-age=0"), None);
        assert_eq!(max_age("no-store, max-age=60"), None);
        assert_eq!(max_age("private, max-age=60"), None);
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }

    #[test]
    fn entries_expire_and_bounds_hold() {
        let mut c = Cache::new(Bounds {
            max_items: 2,
            max_size: 10,
        });
        c.put("a".into(), Bytes::from_static(b"1234"), 10 * S, 0);
        assert_eq!(c.get("a", 9 * S), Some(Bytes::from_static(b"1234")));
        assert_eq!(c.get("a", 10 * S), None, "expired");
        c.put("b".into(), Bytes::from_static(b"5678"), 20 * S, 0);
        c.put("c".into(), Bytes::from_static(b"90"), 30 * S, 0);
        assert_eq!(c.len(), 2, "max_items");
        assert!(c.get("a", 0).is_none(), "the soonest to expire went first");
        c.put("d".into(), Bytes::from_static(b"abcdefgh"), 40 * S, 0);
        assert!(c.size() <= 10, "max_size");
        assert!(c.get("d", 0).is_some());
        c.put("huge".into(), Bytes::from(vec![0u8; 11]), 40 * S, 0);
        assert!(c.get("huge", 0).is_none(), "larger than max_size: not kept");
    }
}
