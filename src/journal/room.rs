//! Keeping within the limits: whether a record fits, and making room by compacting the
//! oldest segment that holds droppable records (a new file with only what must be kept,
//! renamed over the old one; the drops counted as lost).

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::cursor::sync_dir;
use super::record;
use super::segment::{Pending, Segment, segment_path};
use super::{Error, Journal, READ_BUFFER_KEPT, next_known};

impl Journal {
    pub(super) fn fits(&self, bytes: u64, records: u64) -> bool {
        self.bytes + bytes <= self.limits.max_bytes && self.records + records <= self.limits.max_records
    }

    /// Drops what may be dropped, oldest first, until `bytes` and `records` more fit; false
    /// when they cannot.
    pub(super) fn make_room(&mut self, bytes: u64, records: u64) -> Result<bool, Error> {
        while !self.fits(bytes, records) {
            let acked = self.acked;
            let Some(i) = self
                .segments
                .iter()
                .position(|s| s.records > s.kept || (s.records > 0 && s.first <= acked))
            else {
                return Ok(false);
            };
            if i + 1 == self.segments.len() {
                self.rotate()?;
            }
            self.compact(i)?;
        }
        Ok(true)
    }

    /// Replaces segment `i` (not the active one) by a file holding only its unacknowledged
    /// kept records, or deletes it when there are none; counts the normal records dropped.
    pub(super) fn compact(&mut self, i: usize) -> Result<(), Error> {
        let name = self.segments[i].name;
        let path = segment_path(&self.dir, name);
        let temp = path.with_extension("seg.tmp");
        self.reading = None;
        let copied = self.copy_kept(i, &temp);
        let (seg, dropped) = match copied {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(&temp);
                return Err(e);
            }
        };
        // The loss is on disk before the records are gone: a stop in between over-reports
        // (records counted lost yet delivered), never loses a record silently.
        let lost = self.lost;
        let pending = self.pending;
        if dropped.count > 0 {
            self.lost += dropped.count;
            self.pending.add(dropped.count, dropped.first, dropped.last);
            if let Err(e) = self.save_cursor(true) {
                self.lost = lost;
                self.pending = pending;
                let _ = fs::remove_file(&temp);
                return Err(e);
            }
        }
        let replaced = if seg.records == 0 {
            let _ = fs::remove_file(&temp);
            fs::remove_file(&path)
        } else {
            fs::rename(&temp, &path)
        };
        if let Err(e) = replaced.and_then(|()| sync_dir(&self.dir)) {
            let _ = fs::remove_file(&temp);
            return Err(Error::Io(e));
        }
        if seg.records == 0 {
            self.segments.remove(i);
        } else {
            self.segments[i] = seg;
        }
        self.records = self.segments.iter().map(|s| s.records).sum();
        self.bytes = self.segments.iter().map(|s| s.len).sum();
        self.reader.trim(READ_BUFFER_KEPT);
        Ok(())
    }

    /// Copies the unacknowledged kept records of segment `i` into `temp` (synced), a chunk at
    /// a time; returns the new segment's index and the normal records left behind.
    pub(super) fn copy_kept(&mut self, i: usize, temp: &Path) -> Result<(Segment, Pending), Error> {
        const FLUSH: usize = 64 * 1024;
        let (name, len) = (self.segments[i].name, self.segments[i].len);
        let old = File::open(segment_path(&self.dir, name))?;
        let new = File::create(temp)?;
        let mut seg = Segment::new(name);
        let mut dropped = Pending::default();
        let mut out = Vec::new();
        let mut flushed = 0u64;
        self.reader.reset(0, len, record::CHUNK);
        while let Some(h) = next_known(&mut self.reader, &old, name)? {
            if h.seq <= self.acked {
                continue;
            }
            if !h.kept() {
                dropped.add(1, h.seq, h.seq);
                continue;
            }
            seg.push(&h, flushed + out.len() as u64);
            out.extend_from_slice(self.reader.record(&h));
            if out.len() >= FLUSH {
                new.write_all_at(&out, flushed)?;
                flushed += out.len() as u64;
                out.clear();
            }
        }
        if seg.records > 0 {
            new.write_all_at(&out, flushed)?;
            new.sync_data()?;
            self.bytes_written += seg.len;
            self.syncs += 1;
        }
        Ok((seg, dropped))
    }
}
