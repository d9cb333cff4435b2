//! The journal's cursor file: the consumer's acknowledgement, the loss counters and the next
//! sequence number, kept across restarts. An append-only file of fixed-size CRC'd entries (the
//! last valid one wins); past a few KiB it is replaced by a fresh file holding one entry
//! (written beside it, synced, renamed over it, directory synced), so it is never rewritten in
//! place either.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::{MAX_SEQ, u64_at};

/// Bytes of one entry: six u64 and a CRC-32.
pub const ENTRY: usize = 6 * 8 + 4;
/// The file is replaced once it would grow beyond this.
const ROTATE_AT: u64 = 4096;
const NAME: &str = "cursor";
const TEMP: &str = "cursor.tmp";

/// What the cursor file remembers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    /// Acknowledged up to here.
    pub acked: u64,
    /// Records dropped or refused since the journal was created.
    pub lost: u64,
    /// Dropped or refused records not yet written as a lost record: count, first, last.
    pub pending: u64,
    pub pending_first: u64,
    pub pending_last: u64,
    /// The next sequence number at the time of writing (a floor for the next open).
    pub next_seq: u64,
}

impl State {
    fn encode(&self) -> [u8; ENTRY] {
        let mut b = [0u8; ENTRY];
        let fields = [
            self.acked,
            self.lost,
            self.pending,
            self.pending_first,
            self.pending_last,
            self.next_seq,
        ];
        for (i, f) in fields.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&f.to_le_bytes());
        }
        let crc = crc32fast::hash(&b[..ENTRY - 4]);
        b[ENTRY - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<State> {
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&b[ENTRY - 4..ENTRY]);
        if crc32fast::hash(&b[..ENTRY - 4]) != u32::from_le_bytes(crc) {
            return None;
        }
        let state = State {
            acked: u64_at(b, 0),
            lost: u64_at(b, 8),
            pending: u64_at(b, 16),
            pending_first: u64_at(b, 24),
            pending_last: u64_at(b, 32),
            next_seq: u64_at(b, 40),
        };
        let fields = [state.acked, state.lost, state.pending, state.next_seq];
        fields.iter().all(|&f| f <= MAX_SEQ).then_some(state)
    }
}

/// The open cursor file.
#[derive(Debug)]
pub struct Cursor {
    dir: PathBuf,
    file: File,
    len: u64,
}

impl Cursor {
    /// Opens the cursor in `dir` and returns the last state written (the default when there is
    /// none). A torn or garbled tail is left behind by starting a fresh file.
    pub fn open(dir: &Path) -> io::Result<(Cursor, State, u64)> {
        let _ = fs::remove_file(dir.join(TEMP));
        let path = dir.join(NAME);
        let mut state = State::default();
        let mut good = 0u64;
        let mut total = 0u64;
        match File::open(&path) {
            Ok(f) => {
                total = f.metadata()?.len();
                let mut bytes = Vec::new();
                // Far more than the file ever holds; a huge foreign file is not read whole.
                f.take(1 << 20).read_to_end(&mut bytes)?;
                for chunk in bytes.chunks_exact(ENTRY) {
                    match State::decode(chunk) {
                        Some(s) => {
                            state = s;
                            good += ENTRY as u64;
                        }
                        None => break,
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut cursor = Cursor {
            dir: dir.to_path_buf(),
            file,
            len: total,
        };
        let mut written = 0;
        if good != total || total == 0 {
            written = cursor.replace(&state)?;
        }
        Ok((cursor, state, written))
    }

    /// Appends `state` (synced when `sync`); returns the bytes written.
    pub fn write(&mut self, state: &State, sync: bool) -> io::Result<u64> {
        if self.len + ENTRY as u64 > ROTATE_AT {
            return self.replace(state);
        }
        let entry = state.encode();
        if let Err(e) = self.file.write_all_at(&entry, self.len) {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += ENTRY as u64;
        if sync {
            self.file.sync_data()?;
        }
        Ok(ENTRY as u64)
    }

    /// Forces the entries written so far to disk.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// A fresh file holding only `state`, renamed over the old one.
    fn replace(&mut self, state: &State) -> io::Result<u64> {
        self.file = replace_file(&self.dir, NAME, TEMP, &state.encode())?;
        self.len = ENTRY as u64;
        Ok(ENTRY as u64)
    }
}

/// Replaces `dir/name` with a file holding `bytes`, never rewriting in place: written to
/// `dir/temp`, synced, renamed over `name`, the directory synced. On an error the temporary
/// file is removed and `name` is as it was. The new file, open for reading and writing.
pub fn replace_file(dir: &Path, name: &str, temp: &str, bytes: &[u8]) -> io::Result<File> {
    let temp = dir.join(temp);
    let result = (|| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        file.write_all_at(bytes, 0)?;
        file.sync_data()?;
        fs::rename(&temp, dir.join(name))?;
        sync_dir(dir)?;
        Ok(file)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// fsync of a directory: makes file creations, deletions and renames in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
