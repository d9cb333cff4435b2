//! The journal: an append-only, crash-safe log of events on disk, used by the bus's outbox and
//! the central's inbox. Records go into segment files that are only ever appended to, created
//! and deleted (never rewritten in place: SD cards wear per erase block). Each record carries its
//! length, a CRC-32 and a sequence number; at open, recovery keeps the longest valid prefix of
//! the last segment and cuts a torn tail, so an acknowledged (synced) record is never lost and
//! garbage never becomes a record. Disk use is bounded in bytes and records; when full, the
//! oldest undelivered normal records are dropped (critical ones never), and every drop is
//! counted and written as a `Lost` record. Blocking file I/O on the caller's thread: appends
//! are small `write(2)`s into the page cache; `sync` (fdatasync) is the only slow call and the
//! caller decides when to make it.
//!
//! Sequence numbers start at 1 and grow by one per record (0 means "none").

use std::path::Path;

/// How much disk a journal may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of records kept (all segments together, headers included).
    pub max_bytes: u64,
    /// Records kept.
    pub max_records: u64,
    /// A segment is closed and a new one started beyond this size.
    pub segment_bytes: u64,
}

/// An event's durability class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Synced with the next batch (the caller's window).
    Normal,
    /// Synced before `append` returns; never dropped to make room.
    Critical,
}

/// What a record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An event of this class; its bytes are the payload.
    Event(Class),
    /// `count` records between `first` and `last` (sequence numbers, inclusive) were dropped
    /// (or refused) for lack of room. No payload.
    Lost { count: u64, first: u64, last: u64 },
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub kind: Kind,
    pub payload: Vec<u8>,
}

/// Why an operation failed.
#[derive(Debug)]
pub enum Error {
    /// No room: the journal is full of records that may not be dropped. Counted as lost.
    Full,
    /// A payload larger than a segment.
    TooLarge,
    /// The file system refused (ENOSPC included).
    Io(std::io::Error),
}

/// What `open` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    pub records: u64,
    /// Bytes cut from the end of the last segment (a torn write).
    pub cut_bytes: u64,
}

/// Counters for `/__health`, `/__stats` and the benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records kept (delivered or not).
    pub records: u64,
    /// Bytes of kept records.
    pub bytes: u64,
    /// The next sequence number `append` will hand out.
    pub next_seq: u64,
    /// Highest sequence number known to be on disk (synced).
    pub durable: u64,
    /// Highest sequence number acknowledged by the consumer (`ack`).
    pub acked: u64,
    /// Records dropped or refused for lack of room, since the journal was created.
    pub lost: u64,
    /// Bytes handed to `write(2)` since open (records, cursor, compaction copies).
    pub bytes_written: u64,
    /// fdatasync calls since open.
    pub syncs: u64,
}

/// An open journal directory.
#[derive(Debug)]
pub struct Journal {
    _private: (),
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, recovering from an unclean stop.
    pub fn open(dir: &Path, limits: Limits) -> Result<(Journal, Recovery), Error> {
        let _ = (dir, limits);
        Err(Error::Io(std::io::Error::other("journal: not implemented")))
    }

    /// Appends one event; returns its sequence number. A critical event is synced before this
    /// returns; a normal one is durable after the next `sync`.
    pub fn append(&mut self, class: Class, payload: &[u8]) -> Result<u64, Error> {
        let _ = (class, payload);
        Err(Error::Full)
    }

    /// Makes every appended record durable; returns the highest durable sequence number.
    pub fn sync(&mut self) -> Result<u64, Error> {
        Ok(0)
    }

    /// Records appended but not yet synced exist.
    pub fn dirty(&self) -> bool {
        false
    }

    /// Up to `max_records` records (and about `max_bytes` of payload, at least one record) with
    /// sequence numbers above `after`, in order, appended to `out`. Only durable records.
    pub fn read(
        &mut self,
        after: u64,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Entry>,
    ) -> Result<(), Error> {
        let _ = (after, max_records, max_bytes, out);
        Ok(())
    }

    /// The consumer has everything up to `upto`: the cursor is persisted (survives a restart)
    /// and fully acknowledged segments are deleted.
    pub fn ack(&mut self, upto: u64) -> Result<(), Error> {
        let _ = upto;
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats::default()
    }
}
