//! The journal: an append-only, crash-safe log of events on disk, used by the bus's outbox and
//! the central's inbox. Records go into segment files (`<first seq>.seg`) that are only ever
//! appended to, created, deleted, or replaced by a new file renamed over them (never rewritten
//! in place: SD cards wear per erase block); the directory is fsynced after each of those.
//! Each record carries its length, a CRC-32 and a sequence number; at open, recovery keeps the
//! longest valid prefix and cuts a torn tail, so a synced record is never lost and garbage
//! never becomes a record. A small `cursor` file (`cursor.rs`) keeps the consumer's
//! acknowledgement, the loss counters and the next sequence number; a `lock` file keeps a
//! second process out. Disk use is bounded in bytes and records; when full, the oldest
//! undelivered normal records are dropped (critical ones never), and every drop is counted and
//! written as a `Lost` record. Blocking file I/O on the caller's thread: appends are small
//! `write(2)`s into the page cache; `sync` (fdatasync) is the only slow call and the caller
//! decides when to make it. Only an index stays in memory (per segment: extent, counts and a
//! sparse `(seq, offset)` mark every 64 records), never payloads.
//!
//! Sequence numbers start at 1 and grow by one per record (0 means "none"); they are never
//! reused, across restarts included.
//!
//! This file: the API, appending, syncing, reading and acknowledging. `record.rs`: the record
//! format and its reader; `segment.rs`: the in-memory index of segment files; `open.rs`:
//! locking and recovery; `room.rs`: the limits and compaction; `cursor.rs`: the cursor file.

mod cursor;
mod open;
mod record;
mod room;
mod segment;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cursor::{Cursor, State, sync_dir};
use record::{HEADER, KIND_CRITICAL, KIND_LOST, KIND_NORMAL, LOST_BODY, Reader, Step};
use segment::{Pending, Segment, segment_path};

pub use cursor::replace_file;

pub use record::MAX_PAYLOAD;

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
    /// Bytes cut: a torn write at the end of the last segment, or invalid records anywhere
    /// else (logged as a warning).
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

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Full => f.write_str("journal full of records that may not be dropped"),
            Error::TooLarge => f.write_str("record larger than a journal segment"),
            Error::Io(e) => write!(f, "journal: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// The read buffer kept between reads, at most.
const READ_BUFFER_KEPT: usize = 64 * 1024;

/// An open journal directory.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    limits: Limits,
    /// In sequence order; never empty: the last one is appended to.
    segments: Vec<Segment>,
    /// The last segment's file, open for reading and writing.
    active: File,
    /// The last non-active segment read from (name, file).
    reading: Option<(u64, File)>,
    /// Held (flock) while open: one journal per directory.
    _lock: File,
    cursor: Cursor,
    reader: Reader,
    scratch: Vec<u8>,
    next_seq: u64,
    /// Highest sequence number written to a file.
    written: u64,
    durable: u64,
    acked: u64,
    lost: u64,
    pending: Pending,
    records: u64,
    bytes: u64,
    bytes_written: u64,
    syncs: u64,
}

impl Journal {
    /// Appends one event; returns its sequence number. A critical event is synced before this
    /// returns; a normal one is durable after the next `sync`.
    ///
    /// When the limits would be exceeded, the oldest segment holding acknowledged or normal
    /// records is compacted (a new file with only its unacknowledged critical and lost records
    /// replaces it) and the normal records dropped are written as a `Lost` record before this
    /// one. Segments are dropped whole (one rewrite per segment of appends, not one per
    /// append), so up to a segment's worth of normal records goes at once. When nothing can be
    /// dropped the event is refused (`Error::Full`): it is counted as lost, takes a sequence
    /// number (the gap the consumer sees), and is reported in a `Lost` record as soon as there
    /// is room. An I/O error (ENOSPC
    /// included) leaves the log as it was: the partial write is cut off. (Only a critical
    /// event's own sync failing returns an error for a record already written: it is kept, and
    /// durable with the next successful sync.)
    pub fn append(&mut self, class: Class, payload: &[u8]) -> Result<u64, Error> {
        let size = (HEADER + payload.len()) as u64;
        let lost_size = (HEADER + LOST_BODY) as u64;
        if payload.len() > MAX_PAYLOAD
            || size + lost_size > self.limits.segment_bytes
            || size + lost_size > self.limits.max_bytes
            || self.limits.max_records < 2
        {
            return Err(Error::TooLarge);
        }
        // Room for this record, and for a lost record before it when there are losses to
        // report (making room may be what causes them).
        let mut lost = u64::from(self.pending.count > 0);
        let mut room = self.make_room(size + lost * lost_size, 1 + lost)?;
        if room && lost == 0 && self.pending.count > 0 {
            lost = 1;
            room = self.make_room(size + lost_size, 2)?;
        }
        if !room {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.pending.add(1, seq, seq);
            self.lost += 1;
            if let Err(e) = self.save_cursor(false) {
                log::warn!("journal: cursor not written: {e}");
            }
            return Err(Error::Full);
        }
        if lost == 1 {
            self.write_lost()?;
        }
        let kind = match class {
            Class::Normal => KIND_NORMAL,
            Class::Critical => KIND_CRITICAL,
        };
        let seq = self.write(kind, payload)?;
        if class == Class::Critical {
            self.sync()?;
        }
        Ok(seq)
    }

    /// Makes every appended record durable; returns the highest durable sequence number.
    pub fn sync(&mut self) -> Result<u64, Error> {
        if self.written > self.durable {
            self.active.sync_data()?;
            self.syncs += 1;
            self.durable = self.written;
        }
        Ok(self.durable)
    }

    /// Records appended but not yet synced exist.
    pub fn dirty(&self) -> bool {
        self.written > self.durable
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
        let result = self.read_into(after, max_records, max_bytes, out);
        // Between reads the journal keeps a small buffer at most.
        self.reader.trim(READ_BUFFER_KEPT);
        result
    }

    fn read_into(
        &mut self,
        after: u64,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Entry>,
    ) -> Result<(), Error> {
        let mut count = 0usize;
        let mut bytes = 0usize;
        // About what is asked for (a small read reads little), but not more than a segment pass.
        let chunk = max_bytes
            .saturating_add(max_records.saturating_mul(HEADER))
            .clamp(4096, record::CHUNK);
        // Only the active segment may be empty, and it is last.
        let start = self.segments.partition_point(|s| s.records > 0 && s.last <= after);
        for i in start..self.segments.len() {
            let (name, len, from) = {
                let s = &self.segments[i];
                (s.name, s.len, s.offset_after(after))
            };
            self.open_for_reading(i)?;
            let file = match &self.reading {
                Some((n, f)) if i + 1 < self.segments.len() && *n == name => f,
                _ => &self.active,
            };
            self.reader.reset(from, len, chunk);
            while let Some(h) = next_known(&mut self.reader, file, name)? {
                if h.seq <= after {
                    continue;
                }
                if h.seq > self.durable || count >= max_records || (count > 0 && bytes + h.len > max_bytes) {
                    return Ok(());
                }
                let body = self.reader.body(&h);
                out.push(entry(&h, body));
                count += 1;
                bytes += if h.kind == KIND_LOST { 0 } else { h.len };
            }
        }
        Ok(())
    }

    /// The consumer has everything up to `upto`: the cursor is persisted (survives a restart)
    /// and fully acknowledged segments are deleted.
    ///
    /// The cursor entry is written but not synced (a power loss may forget the last few
    /// acknowledgements, which only means redelivery, and the consumer deduplicates by
    /// sequence number); it is synced before any segment is deleted, so a deleted record is
    /// never asked for again and sequence numbers are never reused.
    pub fn ack(&mut self, upto: u64) -> Result<(), Error> {
        let upto = upto.min(self.durable);
        if upto <= self.acked {
            return Ok(());
        }
        self.acked = upto;
        self.save_cursor(false)?;
        self.delete_acked()?;
        if self.pending.count > 0 && self.fits((HEADER + LOST_BODY) as u64, 1) {
            self.write_lost()?;
        }
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            records: self.records,
            bytes: self.bytes,
            next_seq: self.next_seq,
            durable: self.durable,
            acked: self.acked,
            lost: self.lost,
            bytes_written: self.bytes_written,
            syncs: self.syncs,
        }
    }

    /// Records dropped or refused that are not yet reported in a `Lost` record.
    pub fn lost_pending(&self) -> u64 {
        self.pending.count
    }

    /// The sequence number of the oldest record kept and not yet acknowledged (0 when there is
    /// none). Reads a little of the segment the acknowledgement falls in.
    pub fn oldest(&self) -> u64 {
        let acked = self.acked;
        let Some(i) = self.segments.iter().position(|s| s.records > 0 && s.last > acked) else {
            return 0;
        };
        let seg = &self.segments[i];
        if seg.first > acked {
            return seg.first;
        }
        let found = (|| -> Result<u64, Error> {
            let opened;
            let file = if i + 1 == self.segments.len() {
                &self.active
            } else {
                opened = File::open(segment_path(&self.dir, seg.name))?;
                &opened
            };
            let mut reader = Reader::default();
            reader.reset(seg.offset_after(acked), seg.len, 4096);
            while let Some(h) = next_known(&mut reader, file, seg.name)? {
                if h.seq > acked {
                    return Ok(h.seq);
                }
            }
            Ok(acked + 1)
        })();
        // The index says there is one: an unreadable file still has it somewhere above.
        found.unwrap_or(acked + 1)
    }

    /// The journal's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Segment files.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// Bytes of memory the index holds (segment entries and their sparse marks).
    pub fn index_bytes(&self) -> usize {
        self.segments.capacity() * std::mem::size_of::<Segment>()
            + self.segments.iter().map(Segment::heap_bytes).sum::<usize>()
    }

    /// Closes the active segment (synced) and starts a new one named after the next sequence
    /// number.
    fn rotate(&mut self) -> Result<(), Error> {
        self.sync()?;
        let name = self.next_seq;
        let path = segment_path(&self.dir, name);
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        if let Err(e) = sync_dir(&self.dir) {
            let _ = fs::remove_file(&path);
            return Err(Error::Io(e));
        }
        self.active = file;
        self.segments.push(Segment::new(name));
        Ok(())
    }

    /// Writes one record at the end of the active segment (rotating first when it is full).
    fn write(&mut self, kind: u8, body: &[u8]) -> Result<u64, Error> {
        let size = (HEADER + body.len()) as u64;
        let active = self.segments.len() - 1;
        if self.segments[active].records > 0 && self.segments[active].len + size > self.limits.segment_bytes {
            self.rotate()?;
        }
        let seq = self.next_seq;
        if seq > record::MAX_SEQ {
            return Err(Error::Io(std::io::Error::other("journal: sequence numbers exhausted")));
        }
        self.scratch.clear();
        record::encode(&mut self.scratch, seq, kind, body);
        let seg = self.segments.last_mut().expect("never empty");
        if let Err(e) = self.active.write_all_at(&self.scratch, seg.len) {
            // Whatever part of the record reached the file is cut off again.
            let _ = self.active.set_len(seg.len);
            return Err(Error::Io(e));
        }
        let h = record::Header {
            len: body.len(),
            seq,
            kind,
        };
        let offset = seg.len;
        seg.push(&h, offset);
        self.next_seq += 1;
        self.written = seq;
        self.records += 1;
        self.bytes += size;
        self.bytes_written += size;
        Ok(seq)
    }

    /// Writes the pending losses as one lost record.
    fn write_lost(&mut self) -> Result<(), Error> {
        let p = self.pending;
        self.write(KIND_LOST, &record::lost_body(p.count, p.first, p.last))?;
        self.pending = Pending::default();
        Ok(())
    }

    fn save_cursor(&mut self, sync: bool) -> Result<(), Error> {
        let state = State {
            acked: self.acked,
            lost: self.lost,
            pending: self.pending.count,
            pending_first: self.pending.first,
            pending_last: self.pending.last,
            next_seq: self.next_seq,
        };
        self.bytes_written += self.cursor.write(&state, sync)?;
        self.syncs += u64::from(sync);
        Ok(())
    }

    /// Deletes the segments (but the active one) whose records are all acknowledged.
    fn delete_acked(&mut self) -> Result<(), Error> {
        let n = self.segments.len() - 1;
        let doomed = self.segments[..n]
            .iter()
            .take_while(|s| s.records == 0 || s.last <= self.acked)
            .count();
        if doomed == 0 {
            return Ok(());
        }
        // The acknowledgement is on disk before the records it releases are gone.
        self.cursor.sync()?;
        self.syncs += 1;
        self.reading = None;
        for seg in self.segments.drain(..doomed) {
            fs::remove_file(segment_path(&self.dir, seg.name))?;
            self.records -= seg.records;
            self.bytes -= seg.len;
        }
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// Opens segment `i` for reading (the active one is open already).
    fn open_for_reading(&mut self, i: usize) -> Result<(), Error> {
        let name = self.segments[i].name;
        if i + 1 < self.segments.len() && self.reading.as_ref().map(|r| r.0) != Some(name) {
            self.reading = Some((name, File::open(segment_path(&self.dir, name))?));
        }
        Ok(())
    }
}

/// The next record of segment `name`, read through at open already: one that is no longer
/// valid means the file was changed under the journal.
fn next_known(reader: &mut Reader, file: &File, name: u64) -> Result<Option<record::Header>, Error> {
    match reader.next(file)? {
        Step::Record(h, _) => Ok(Some(h)),
        Step::End(_) => Ok(None),
        Step::Invalid(at) => Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("journal: segment {name} changed under us at offset {at}"),
        ))),
    }
}

/// A record as the consumer sees it.
fn entry(h: &record::Header, body: &[u8]) -> Entry {
    match h.kind {
        KIND_LOST => Entry {
            seq: h.seq,
            kind: Kind::Lost {
                count: record::u64_at(body, 0),
                first: record::u64_at(body, 8),
                last: record::u64_at(body, 16),
            },
            payload: Vec::new(),
        },
        kind => Entry {
            seq: h.seq,
            kind: Kind::Event(if kind == KIND_CRITICAL {
                Class::Critical
            } else {
                Class::Normal
            }),
            payload: body.to_vec(),
        },
    }
}
