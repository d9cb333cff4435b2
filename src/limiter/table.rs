//! The per-client bucket table: one [`Bucket`] per client key, at most `cap` clients, the least
//! recently seen evicted first, so a flood of distinct keys (a million source addresses, random
//! header values) keeps memory flat. Sans-io; a hit on an existing client allocates nothing
//! (hash lookup by borrowed key, then a few index writes to move it to the front).
//!
//! Memory per client, 64-bit (checked by the test `entry_sizes`): for IP keys the entry (key,
//! bucket, two links) is 48 bytes and its hash-map slot (key + index) 24 bytes plus one control
//! byte: ~73 bytes, ~85 with the map's 7/8 load factor, so 10 000 clients are ~0.85 MB. For
//! header/param keys: 48 + 32 + 1 bytes plus two heap copies of the key.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use super::bucket::{Bucket, Rate, Remaining, RetryAfter};
use crate::time::Nanos;

/// "No entry" in the intrusive list.
const NIL: u32 = u32::MAX;

struct Entry<K> {
    key: K,
    bucket: Bucket,
    /// Towards the most recently seen.
    newer: u32,
    /// Towards the least recently seen.
    older: u32,
}

/// Buckets by client key, bounded, least recently seen evicted.
pub struct Table<K> {
    index: HashMap<K, u32>,
    entries: Vec<Entry<K>>,
    newest: u32,
    oldest: u32,
    cap: usize,
}

impl<K> std::fmt::Debug for Table<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} of {} clients)", self.entries.len(), self.cap)
    }
}

impl<K: Hash + Eq + Clone> Table<K> {
    /// An empty table holding at most `cap` clients (`cap` ≥ 1 and < 2³², checked by config).
    pub fn new(cap: usize) -> Table<K> {
        let cap = cap.clamp(1, NIL as usize - 1);
        Table {
            index: HashMap::new(),
            entries: Vec::new(),
            newest: NIL,
            oldest: NIL,
            cap,
        }
    }

    /// Clients currently tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes a token from `key`'s bucket (a new client starts with a full one).
    pub fn try_acquire<Q>(&mut self, key: &Q, rate: &Rate, now: Nanos) -> Result<Remaining, RetryAfter>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let i = match self.index.get(key) {
            Some(&i) => {
                self.unlink(i);
                i
            }
            None => self.insert(key.to_owned(), rate, now),
        };
        self.push_newest(i);
        self.entries[i as usize].bucket.try_acquire(rate, now)
    }

    /// Adds a client, reusing the least recently seen one's slot when full; returns its slot,
    /// unlinked.
    fn insert(&mut self, key: K, rate: &Rate, now: Nanos) -> u32 {
        let bucket = Bucket::full(rate, now);
        if self.entries.len() < self.cap {
            self.entries.push(Entry {
                key: key.clone(),
                bucket,
                newer: NIL,
                older: NIL,
            });
            let i = (self.entries.len() - 1) as u32;
            self.index.insert(key, i);
            return i;
        }
        let i = self.oldest;
        self.unlink(i);
        let entry = &mut self.entries[i as usize];
        self.index.remove(&entry.key);
        entry.key = key.clone();
        entry.bucket = bucket;
        self.index.insert(key, i);
        i
    }

    fn unlink(&mut self, i: u32) {
        let (newer, older) = {
            let e = &self.entries[i as usize];
            (e.newer, e.older)
        };
        match newer {
            NIL => self.newest = older,
            n => self.entries[n as usize].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.entries[o as usize].newer = newer,
        }
    }

    fn push_newest(&mut self, i: u32) {
        let old_newest = self.newest;
        {
            let e = &mut self.entries[i as usize];
            e.newer = NIL;
            e.older = old_newest;
        }
        match old_newest {
            NIL => self.oldest = i,
            n => self.entries[n as usize].newer = i,
        }
        self.newest = i;
    }

    /// Keys from most to least recently seen (for tests).
    #[cfg(test)]
    pub fn keys_by_recency(&self) -> impl Iterator<Item = &K> {
        let mut at = self.newest;
        std::iter::from_fn(move || {
            let e = self.entries.get(at as usize)?;
            at = e.older;
            Some(&e.key)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    const S: u64 = 1_000_000_000;

    #[test]
    fn clients_are_limited_independently() {
        let rate = Rate::new(1, 2, S).unwrap();
        let mut t: Table<IpAddr> = Table::new(10);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        assert!(t.try_acquire(&a, &rate, 0).is_ok());
        assert!(t.try_acquire(&a, &rate, 0).is_ok());
        assert!(t.try_acquire(&a, &rate, 0).is_err());
        assert!(t.try_acquire(&b, &rate, 0).is_ok());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn the_least_recently_seen_client_is_evicted_at_the_cap() {
        let rate = Rate::new(1, 1, S).unwrap();
        let mut t: Table<String> = Table::new(3);
        for k in ["a", "b", "c"] {
            let _ = t.try_acquire(k, &rate, 0);
        }
        let _ = t.try_acquire("a", &rate, 0); // a is now the newest; b the oldest
        let _ = t.try_acquire("d", &rate, 0);
        assert_eq!(t.len(), 3);
        let order: Vec<&str> = t.keys_by_recency().map(|k| &**k).collect();
        assert_eq!(order, ["d", "a", "c"]);
        // b was forgotten: it comes back with a full bucket.
        assert!(t.try_acquire("b", &rate, 0).is_ok());
        assert_eq!(t.keys_by_recency().map(|k| &**k).collect::<Vec<_>>(), ["b", "d", "a"]);
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_at_the_cap() {
        let rate = Rate::new(5, 5, S).unwrap();
        let mut t: Table<String> = Table::new(1000);
        for i in 0..100_000u32 {
            let _ = t.try_acquire(i.to_string().as_str(), &rate, u64::from(i));
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.index.len(), 1000);
        assert_eq!(t.keys_by_recency().count(), 1000);
        assert_eq!(&**t.keys_by_recency().next().unwrap(), "99999");
    }

    #[test]
    fn entry_sizes() {
        // The numbers the module doc quotes; a change of layout should update the doc.
        assert_eq!(std::mem::size_of::<Entry<IpAddr>>(), 48);
        assert_eq!(std::mem::size_of::<(IpAddr, u32)>(), 24);
        assert_eq!(std::mem::size_of::<Entry<String>>(), 48);
        assert_eq!(std::mem::size_of::<(String, u32)>(), 32);
    }
}
