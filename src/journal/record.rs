//! The journal's on-disk record: framing (length, CRC-32, sequence number, kind), encoding, and
//! a chunked reader that walks a segment file with positioned reads and stops at the first
//! byte that is not a whole, valid record.
//!
//! Layout (little endian): `len: u32` (body bytes), `crc: u32` (CRC-32 of `len`, `seq`, `kind`
//! and the body), `seq: u64` (never 0), `kind: u8` (0 normal event, 1 critical event, 2 lost),
//! then the body: the payload for an event, `count, first, last` (3 × u64) for a lost record.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Header bytes before the body.
pub const HEADER: usize = 17;
/// The largest payload an event may carry.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// The body of a lost record.
pub const LOST_BODY: usize = 24;
/// The highest sequence number (far beyond any journal's life; values read from disk above it
/// are refused, so no arithmetic on them can overflow).
pub const MAX_SEQ: u64 = 1 << 62;

pub const KIND_NORMAL: u8 = 0;
pub const KIND_CRITICAL: u8 = 1;
pub const KIND_LOST: u8 = 2;

/// The fixed part of a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: usize,
    pub seq: u64,
    pub kind: u8,
}

impl Header {
    /// Header and body bytes.
    pub fn size(&self) -> u64 {
        (HEADER + self.len) as u64
    }

    /// Records that are never dropped to make room: critical events and lost records.
    pub fn kept(&self) -> bool {
        self.kind != KIND_NORMAL
    }
}

/// What the bytes at the start of a buffer are.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// Too few bytes to decide.
    Need,
    /// Not a valid record.
    Bad,
    /// A valid record of `header.size()` bytes.
    Ok(Header),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decides what `buf` starts with.
pub fn parse(buf: &[u8]) -> Parse {
    if buf.len() < HEADER {
        return Parse::Need;
    }
    let len = u32_at(buf, 0) as usize;
    let kind = buf[16];
    let fits = match kind {
        KIND_NORMAL | KIND_CRITICAL => len <= MAX_PAYLOAD,
        KIND_LOST => len == LOST_BODY,
        _ => false,
    };
    if !fits {
        return Parse::Bad;
    }
    if buf.len() < HEADER + len {
        return Parse::Need;
    }
    let seq = u64_at(buf, 8);
    if seq == 0 || seq > MAX_SEQ || checksum(&buf[..HEADER + len]) != u32_at(buf, 4) {
        return Parse::Bad;
    }
    Parse::Ok(Header { len, seq, kind })
}

/// The CRC of a framed record (everything but the CRC field itself).
fn checksum(record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&record[..4]);
    h.update(&record[8..]);
    h.finalize()
}

/// Appends one framed record to `out`.
pub fn encode(out: &mut Vec<u8>, seq: u64, kind: u8, body: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    let crc = checksum(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The body of a lost record.
pub fn lost_body(count: u64, first: u64, last: u64) -> [u8; LOST_BODY] {
    let mut b = [0u8; LOST_BODY];
    b[..8].copy_from_slice(&count.to_le_bytes());
    b[8..16].copy_from_slice(&first.to_le_bytes());
    b[16..].copy_from_slice(&last.to_le_bytes());
    b
}

/// Bytes read per positioned read when reading a segment through (recovery, compaction).
pub const CHUNK: usize = 256 * 1024;

/// One step of a walk through a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A valid record at this file offset; its bytes are `Reader::record`.
    Record(Header, u64),
    /// The file's valid records end here and nothing follows.
    End(u64),
    /// The bytes from this offset on are no record (garbage, or a torn write).
    Invalid(u64),
}

/// Walks the records of a file from an offset up to a limit, in chunks.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
    /// Parse position in `buf`.
    pos: usize,
    /// Where the last record returned starts in `buf`.
    last: usize,
    limit: u64,
    /// Bytes asked for per read.
    chunk: usize,
}

impl Reader {
    /// Restarts at `offset`, reading no further than `limit`, `chunk` bytes at a time (more
    /// when a record is larger).
    pub fn reset(&mut self, offset: u64, limit: u64, chunk: usize) {
        self.chunk = chunk.max(HEADER);
        self.buf.clear();
        self.start = offset;
        self.pos = 0;
        self.last = 0;
        self.limit = limit;
    }

    /// Frees the buffer when it grew past `keep` bytes (a large read or a segment pass).
    pub fn trim(&mut self, keep: usize) {
        if self.buf.capacity() > keep {
            self.buf = Vec::new();
            self.pos = 0;
            self.last = 0;
        }
    }

    /// The bytes of the last record returned (header included).
    pub fn record(&self, header: &Header) -> &[u8] {
        &self.buf[self.last..self.last + HEADER + header.len]
    }

    /// The body of the last record returned.
    pub fn body(&self, header: &Header) -> &[u8] {
        &self.record(header)[HEADER..]
    }

    /// The next record, or where the valid records end.
    pub fn next(&mut self, file: &File) -> io::Result<Step> {
        loop {
            let at = self.start + self.pos as u64;
            match parse(&self.buf[self.pos..]) {
                Parse::Ok(h) => {
                    self.last = self.pos;
                    self.pos += HEADER + h.len;
                    return Ok(Step::Record(h, at));
                }
                Parse::Bad => return Ok(Step::Invalid(at)),
                Parse::Need => {
                    if !self.fill(file)? {
                        return Ok(if self.pos == self.buf.len() {
                            Step::End(at)
                        } else {
                            Step::Invalid(at)
                        });
                    }
                }
            }
        }
    }

    /// Reads more bytes; false at the limit or the end of the file.
    fn fill(&mut self, file: &File) -> io::Result<bool> {
        self.buf.drain(..self.pos);
        self.start += self.pos as u64;
        self.pos = 0;
        self.last = 0;
        let end = self.start + self.buf.len() as u64;
        if end >= self.limit {
            return Ok(false);
        }
        // At least the rest of a record begun.
        let rest = match parse(&self.buf) {
            Parse::Need if self.buf.len() >= HEADER => HEADER + u32_at(&self.buf, 0) as usize,
            _ => 0,
        };
        let want = (self.limit - end).min(self.chunk.max(rest.saturating_sub(self.buf.len())) as u64) as usize;
        let have = self.buf.len();
        self.buf.resize(have + want, 0);
        let mut got = 0;
        while got < want {
            match file.read_at(&mut self.buf[have + got..], end + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(have);
                    return Err(e);
                }
            }
        }
        self.buf.truncate(have + got);
        if got < want {
            // The file is shorter than the limit: nothing more will come.
            self.limit = self.start + self.buf.len() as u64;
        }
        Ok(got > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_parses_back_and_any_flipped_bit_is_refused() {
        let mut out = Vec::new();
        encode(&mut out, 7, KIND_CRITICAL, b"hello");
        assert_eq!(
            parse(&out),
            Parse::Ok(Header {
                len: 5,
                seq: 7,
                kind: KIND_CRITICAL
            })
        );
        assert_eq!(parse(&out[..out.len() - 1]), Parse::Need);
        for i in 0..out.len() * 8 {
            let mut bad = out.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                !matches!(parse(&bad), Parse::Ok(h) if h.seq == 7 && h.len == 5),
                "bit {i}"
            );
        }
        assert_eq!(parse(&[0u8; 64]), Parse::Bad);
    }

    #[test]
    fn the_reader_finds_records_across_chunk_boundaries_and_stops_at_a_torn_one() {
        let path = std::env::temp_dir().join(format!("gatelet-journal-reader-{}", std::process::id()));
        let mut bytes = Vec::new();
        let sizes: Vec<usize> = (0..40).map(|i| (i * 37) % 300).collect();
        for (i, &n) in sizes.iter().enumerate() {
            encode(&mut bytes, i as u64 + 1, KIND_NORMAL, &vec![i as u8; n]);
        }
        let whole = bytes.len() as u64;
        encode(&mut bytes, 41, KIND_NORMAL, b"torn");
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        for chunk in [1, HEADER, 100, CHUNK] {
            let mut r = Reader::default();
            r.reset(0, bytes.len() as u64, chunk);
            for (i, &n) in sizes.iter().enumerate() {
                let Step::Record(h, _) = r.next(&file).unwrap() else {
                    panic!("chunk {chunk} record {i}")
                };
                assert_eq!(h.seq, i as u64 + 1);
                assert_eq!(r.body(&h), &vec![i as u8; n][..]);
            }
            assert_eq!(r.next(&file).unwrap(), Step::Invalid(whole), "chunk {chunk}");
            // Up to the whole records only: a clean end.
            r.reset(0, whole, chunk);
            for _ in 0..sizes.len() {
                assert!(matches!(r.next(&file).unwrap(), Step::Record(..)));
            }
            assert_eq!(r.next(&file).unwrap(), Step::End(whole));
        }
        std::fs::remove_file(&path).unwrap();
    }
}
