//! Opening a journal: the directory's lock, the cursor, and recovery, which reads every
//! segment through, keeps the longest valid prefix and cuts a torn tail.

use std::fs::{self, File, OpenOptions};

use super::cursor::{Cursor, sync_dir};
use super::record::{self, KIND_LOST, Reader, Step};
use super::segment::{Pending, Segment, segment_name, segment_path};
use super::{Error, Journal, Limits, Recovery};
use std::path::Path;

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, recovering from an unclean stop.
    ///
    /// Every segment is read through: each record must be whole, carry a matching CRC and a
    /// sequence number above the one before it. At the first record that does not, the file is
    /// cut (a torn write at the end of the last segment; anywhere else it is logged as a
    /// warning). `Recovery::cut_bytes` counts every byte cut.
    pub fn open(dir: &Path, limits: Limits) -> Result<(Journal, Recovery), Error> {
        fs::create_dir_all(dir)?;
        let lock = lock(dir)?;
        let (cursor, state, cursor_bytes) = Cursor::open(dir)?;
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            if let Some(name) = segment_name(file) {
                names.push(name);
            } else if file.ends_with(".seg.tmp") {
                // A compaction that did not finish: the original is still in place.
                fs::remove_file(entry.path())?;
            }
        }
        names.sort_unstable();
        let mut recovery = Recovery::default();
        let mut reader = Reader::default();
        let mut segments = Vec::new();
        let mut prev = 0u64;
        let mut last_lost = 0u64;
        let mut syncs = 0;
        for (i, &name) in names.iter().enumerate() {
            let path = segment_path(dir, name);
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let len = file.metadata()?.len();
            let mut seg = Segment::new(name);
            reader.reset(0, len, record::CHUNK);
            let end = loop {
                match reader.next(&file)? {
                    Step::Record(h, at) if h.seq > prev && h.seq >= name => {
                        seg.push(&h, at);
                        prev = h.seq;
                        if h.kind == KIND_LOST {
                            last_lost = h.seq;
                        }
                    }
                    Step::Record(_, at) | Step::Invalid(at) | Step::End(at) => break at,
                }
            };
            if end < len {
                if i + 1 < names.len() {
                    log::warn!(
                        "journal: {} has {} bytes of invalid records from offset {end}; cut",
                        path.display(),
                        len - end
                    );
                }
                recovery.cut_bytes += len - end;
                file.set_len(end)?;
                file.sync_data()?;
                syncs += 1;
            }
            recovery.records += seg.records;
            segments.push(seg);
        }
        let mut next_seq = (prev + 1).max(state.next_seq).max(state.acked + 1);
        if let Some(last) = segments.last() {
            next_seq = next_seq.max(last.name);
        }
        // Empty segments other than the last hold nothing; a missing last one is created.
        let mut removed = false;
        let count = segments.len();
        let mut kept = Vec::with_capacity(count);
        for (i, seg) in segments.into_iter().enumerate() {
            if seg.records == 0 && i + 1 < count {
                fs::remove_file(segment_path(dir, seg.name))?;
                removed = true;
            } else {
                kept.push(seg);
            }
        }
        let mut segments = kept;
        if segments.is_empty() {
            File::create(segment_path(dir, next_seq))?;
            segments.push(Segment::new(next_seq));
            removed = true;
        }
        if removed {
            sync_dir(dir)?;
        }
        recovery.segments = segments.len();
        let active = OpenOptions::new()
            .read(true)
            .write(true)
            .open(segment_path(dir, segments[segments.len() - 1].name))?;
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            limits,
            records: segments.iter().map(|s| s.records).sum(),
            bytes: segments.iter().map(|s| s.len).sum(),
            segments,
            active,
            reading: None,
            _lock: lock,
            cursor,
            // The recovery's large buffer is not kept.
            reader: Reader::default(),
            scratch: Vec::new(),
            next_seq,
            written: prev,
            durable: prev,
            acked: state.acked,
            lost: state.lost,
            // The cursor is not rewritten when the pending losses are: a lost record written
            // after the cursor's last entry reported them.
            pending: if last_lost >= state.next_seq {
                Pending::default()
            } else {
                Pending {
                    count: state.pending,
                    first: state.pending_first,
                    last: state.pending_last,
                }
            },
            bytes_written: cursor_bytes,
            syncs,
        };
        // A stop between the cursor's write and the deletions it allowed.
        journal.delete_acked()?;
        Ok((journal, recovery))
    }
}

/// An exclusive lock on `dir`'s lock file, so that two processes (an old one still stopping
/// and its successor) never append to the same journal.
fn lock(dir: &Path) -> Result<File, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("lock"))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            format!("journal: {} is open elsewhere", dir.display()),
        ))),
        Err(e) => Err(Error::Io(e.into())),
    }
}
