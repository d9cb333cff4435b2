//! What the journal knows of its segment files without reading them: each one's extent,
//! record counts and a sparse index of offsets (`Segment`), the files' names, and the losses not
//! yet written as a `Lost` record (`Pending`).

use std::path::{Path, PathBuf};

use super::record;

/// A sparse-index mark every this many records of a segment.
pub(super) const MARK_EVERY: u64 = 64;

/// What is known of one segment file without reading it: its extent and a sparse index.
#[derive(Debug)]
pub(super) struct Segment {
    /// The file's name: the first sequence number it was created for (a lower bound).
    pub(super) name: u64,
    /// Bytes of valid records (the file's length).
    pub(super) len: u64,
    pub(super) records: u64,
    /// Records never dropped for room (critical events and lost records).
    pub(super) kept: u64,
    /// First and last sequence numbers (0 when empty).
    pub(super) first: u64,
    pub(super) last: u64,
    /// (sequence number, offset) of every `MARK_EVERY`th record.
    pub(super) marks: Vec<(u64, u64)>,
}

impl Segment {
    pub(super) fn new(name: u64) -> Segment {
        Segment {
            name,
            len: 0,
            records: 0,
            kept: 0,
            first: 0,
            last: 0,
            marks: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, h: &record::Header, offset: u64) {
        if self.records.is_multiple_of(MARK_EVERY) {
            self.marks.push((h.seq, offset));
        }
        if self.records == 0 {
            self.first = h.seq;
        }
        self.last = h.seq;
        self.records += 1;
        self.kept += u64::from(h.kept());
        self.len = offset + h.size();
    }

    /// Where to start reading for the first record above `after`.
    pub(super) fn offset_after(&self, after: u64) -> u64 {
        let i = self.marks.partition_point(|&(seq, _)| seq <= after);
        if i == 0 { 0 } else { self.marks[i - 1].1 }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.marks.capacity() * std::mem::size_of::<(u64, u64)>()
    }
}

pub(super) fn segment_path(dir: &Path, name: u64) -> PathBuf {
    dir.join(format!("{name:020}.seg"))
}

/// The sequence number in a segment file's name.
pub(super) fn segment_name(file: &str) -> Option<u64> {
    let digits = file.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n <= record::MAX_SEQ)
}

/// Records dropped or refused and not yet written as a lost record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pending {
    pub(super) count: u64,
    pub(super) first: u64,
    pub(super) last: u64,
}

impl Pending {
    pub(super) fn add(&mut self, count: u64, first: u64, last: u64) {
        if count == 0 {
            return;
        }
        if self.count == 0 {
            self.first = first;
            self.last = last;
        } else {
            self.first = self.first.min(first);
            self.last = self.last.max(last);
        }
        self.count += count;
    }
}
