//! The backend cache (KrakenD's backend `qos/http-cache`): successful GET answers kept for the
//! backend's `Cache-Control: max-age`, bounded in entries (`max_items`) and bytes (`max_size`).
//! Sans-io: time is passed in; the soonest-expiring entries go first when space is needed.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

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
    /// Tells entries that expire at the same instant apart in `Cache::order`.
    seq: u64,
}

/// One backend's cache. Lookups are a hash probe; insertion and eviction are O(log n): entries
/// are also kept in expiry order, so the expired and the soonest to expire are found first
/// without a scan (clients choose keys through path and query values).
#[derive(Debug)]
pub struct Cache {
    bounds: Bounds,
    entries: HashMap<Rc<str>, Entry>,
    /// `(expires, seq)` -> key, soonest first.
    order: BTreeMap<(Nanos, u64), Rc<str>>,
    next_seq: u64,
    size: usize,
}

/// What a response's `Cache-Control` and `Vary` say about keeping it in a shared cache
/// (RFC 9111).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Freshness {
    /// Seconds it may be kept (`s-maxage`, which a shared cache prefers, else `max-age`);
    /// `None` when it may not be (`no-store`, `no-cache`, `private`, no age, or an age of 0).
    pub max_age: Option<u64>,
    /// `public` or `s-maxage`: it may be kept even for a request that carried credentials
    /// (RFC 9111 §3.5).
    pub shared_with_credentials: bool,
    /// The answer has a `Vary` header: it depends on request headers this cache does not key
    /// on, so it is not kept.
    pub varies: bool,
}

impl Freshness {
    /// Reads a response's `Cache-Control` and whether it has `Vary`.
    pub fn of(cache_control: Option<&str>, varies: bool) -> Freshness {
        let (mut max_age, mut s_maxage, mut public) = (None, None, false);
        for directive in cache_control.unwrap_or_default().split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            let seconds = |v: &str| v.trim_matches('"').parse::<u64>().ok();
            match lower.as_str() {
                "no-store" | "no-cache" | "private" => {
                    return Freshness {
                        varies,
                        ..Freshness::default()
                    };
                }
                "public" => public = true,
                d => {
                    if let Some(v) = d.strip_prefix("max-age=") {
                        max_age = seconds(v);
                    } else if let Some(v) = d.strip_prefix("s-maxage=") {
                        s_maxage = seconds(v);
                    }
                }
            }
        }
        Freshness {
            max_age: s_maxage.or(max_age).filter(|a| *a > 0),
            shared_with_credentials: public || s_maxage.is_some(),
            varies,
        }
    }

    /// Seconds a shared cache may keep this answer to a request that did (or did not) carry
    /// the client's credentials (`Authorization`, `Cookie`, propagated JWT claims).
    pub fn keep_for(&self, credentials: bool) -> Option<u64> {
        if self.varies || (credentials && !self.shared_with_credentials) {
            return None;
        }
        self.max_age
    }
}

impl Cache {
    /// An empty cache.
    pub fn new(bounds: Bounds) -> Cache {
        Cache {
            bounds,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
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

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.size -= old.body.len();
            self.order.remove(&(old.expires, old.seq));
        }
    }

    /// Keeps `body` for `ttl` nanoseconds; bodies larger than `max_size` are not kept.
    /// Expired entries go first, then the soonest to expire, until the new one fits.
    pub fn put(&mut self, key: String, body: Bytes, ttl: Nanos, now: Nanos) {
        if body.len() > self.bounds.max_size || self.bounds.max_items == 0 {
            return;
        }
        self.remove(&key);
        while let Some((&(expires, _), victim)) = self.order.first_key_value() {
            let full = self.entries.len() >= self.bounds.max_items || self.size + body.len() > self.bounds.max_size;
            if expires > now && !full {
                break;
            }
            let victim = victim.clone();
            self.remove(&victim);
        }
        let key: Rc<str> = Rc::from(key);
        let expires = now.saturating_add(ttl);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.size += body.len();
        self.order.insert((expires, seq), key.clone());
        self.entries.insert(key, Entry { body, expires, seq });
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
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

    fn max_age(cc: &str) -> Option<u64> {
        Freshness::of(Some(cc), false).keep_for(false)
    }

    #[test]
    fn cache_control_is_honoured() {
        assert_eq!(max_age("public, max-age=60"), Some(60));
        assert_eq!(max_age("max-age=0"), None);
        assert_eq!(max_age("no-store, max-age=60"), None);
        assert_eq!(max_age("private, max-age=60"), None);
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
        assert_eq!(
            max_age("max-age=60, s-maxage=5"),
            Some(5),
            "a shared cache prefers s-maxage"
        );
    }

    #[test]
    fn answers_to_credentials_or_with_vary_are_not_shared() {
        let plain = Freshness::of(Some("max-age=60"), false);
        assert_eq!(plain.keep_for(false), Some(60));
        assert_eq!(
            plain.keep_for(true),
            None,
            "RFC 9111 3.5: not without public or s-maxage"
        );
        assert_eq!(
            Freshness::of(Some("public, max-age=60"), false).keep_for(true),
            Some(60)
        );
        assert_eq!(Freshness::of(Some("s-maxage=30"), false).keep_for(true), Some(30));
        assert_eq!(
            Freshness::of(Some("public, max-age=60"), true).keep_for(false),
            None,
            "Vary"
        );
        assert_eq!(Freshness::of(None, false).keep_for(false), None);
    }

    #[test]
    fn eviction_takes_the_soonest_to_expire_at_any_size() {
        let mut c = Cache::new(Bounds {
            max_items: 1000,
            max_size: 1 << 20,
        });
        for i in 0..1000u64 {
            // Expiries in a scrambled order: (7 i mod 1000) + 1 seconds.
            c.put(format!("k{i}"), Bytes::from_static(b"x"), (i * 7 % 1000 + 1) * S, 0);
        }
        assert_eq!(c.len(), 1000);
        c.put("new".into(), Bytes::from_static(b"y"), 5000 * S, 0);
        assert_eq!(c.len(), 1000);
        assert!(c.get("k0", 0).is_none(), "k0 expired soonest (1 s)");
        assert!(c.get("k143", 0).is_some(), "k143 (2 s) stays");
        // Everything due by 500 s has expired: one put clears it all.
        c.put("later".into(), Bytes::from_static(b"z"), 5000 * S, 500 * S);
        assert_eq!(c.len(), 502, "500 expired entries went at once");
        assert_eq!(c.size(), 502);
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
