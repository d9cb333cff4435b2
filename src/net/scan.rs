//! Follows the raw request byte stream of one server connection, as hyper reads it, for the one
//! framing fact hyper hides from its caller: a head carrying both `Content-Length` and
//! `Transfer-Encoding`. hyper drops the length, decodes chunked and closes afterwards;
//! docs/reliability.md asks for a 400. Sans-io: fed every byte the connection reads, in order, split
//! anywhere; it walks heads line by line and skips bodies by their framing (a length, or chunk
//! sizes), so a head pipelined behind a request that is still being handled is seen too.
//!
//! It mirrors hyper's framing only as far as valid messages go. Where hyper would reject the
//! bytes (a bad length, a bad chunk line), hyper closes the connection anyway, and the scan
//! stops following ([`At::Lost`]): it never vouches for a head it has not seen whole.

/// Where in the stream the scan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// In a head (see the `Stream` line fields).
    Head,
    /// In a body of known length: this many bytes left.
    Fixed(u64),
    /// In a chunk-size line: the size so far, its digit count, and whether an extension (or
    /// whitespace before one) has started; `cr` once its `\r` is seen.
    Size {
        size: u64,
        digits: u8,
        ext: bool,
        cr: bool,
    },
    /// In chunk data: this many bytes left.
    Data(u64),
    /// The `\r` after chunk data, then its `\n`.
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or the final CRLF), inside one,
    /// after a trailer line's `\r`, after the final `\r`.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    /// Stopped following: hyper rejects what came, or a CL+TE head was seen (hyper closes the
    /// connection after answering it, so nothing later is ever served).
    Lost,
}

const CL: &[u8] = b"content-length:";
const TE: &[u8] = b"transfer-encoding:";

/// A `Content-Length` value being read: `OWS 1*DIGIT OWS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Before,
    Digits(u64),
    After(u64),
    Bad,
}

/// The scan of one connection's request stream. `Copy`, a few dozen bytes, no allocation.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    at: At,
    /// Heads completed so far, and the index of the first with both CL and TE.
    heads: u32,
    first_both: Option<u32>,
    // The current head.
    /// A non-empty line (the request line) has been seen: empty lines before it are skipped,
    /// as httparse does.
    started: bool,
    seen_te: bool,
    /// `Content-Length`: the value, once one was read; `cl_bad` when one could not be.
    cl: Option<u64>,
    cl_bad: bool,
    // The current head line.
    /// Bytes in the current line so far (saturating).
    line: u8,
    /// The line is still a prefix of `content-length:` / `transfer-encoding:`.
    maybe_cl: bool,
    maybe_te: bool,
    /// The line holds nothing but `\r` so far.
    only_cr: bool,
    /// Inside a `Content-Length` value.
    length: Option<Length>,
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            at: At::Head,
            heads: 0,
            first_both: None,
            started: false,
            seen_te: false,
            cl: None,
            cl_bad: false,
            line: 0,
            maybe_cl: true,
            maybe_te: true,
            only_cr: true,
            length: None,
        }
    }
}

impl Stream {
    /// Whether head number `index` (0-based, in arrival order) carried both `Content-Length`
    /// and `Transfer-Encoding`.
    pub fn both(&self, index: u32) -> bool {
        self.first_both == Some(index)
    }

    /// Feeds the next bytes read from the connection.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let used = match self.at {
                At::Lost => return,
                At::Head => self.head(bytes),
                At::Fixed(left) => {
                    let n = left.min(bytes.len() as u64);
                    self.at = if n == left { At::Head } else { At::Fixed(left - n) };
                    n as usize
                }
                At::Data(left) => {
                    let n = left.min(bytes.len() as u64);
                    self.at = if n == left { At::DataCr } else { At::Data(left - n) };
                    n as usize
                }
                _ => {
                    self.chunked(bytes[0]);
                    1
                }
            };
            bytes = &bytes[used..];
        }
    }

    /// One byte of chunked framing outside chunk data (hyper's `ChunkedState`, valid paths).
    fn chunked(&mut self, b: u8) {
        self.at = match (self.at, b) {
            // A size line needs a digit before its end (no digit: not hex below, so Lost).
            (
                At::Size {
                    size,
                    digits,
                    ext,
                    cr: false,
                },
                b'\r',
            ) if digits > 0 => At::Size {
                size,
                digits,
                ext,
                cr: true,
            },
            (At::Size { size, cr: true, .. }, b'\n') => {
                if size == 0 {
                    At::TrailerStart
                } else {
                    At::Data(size)
                }
            }
            (
                At::Size {
                    ext: true, cr: false, ..
                },
                b'\n',
            ) => At::Lost,
            (
                At::Size {
                    ext: true, cr: false, ..
                },
                _,
            ) => self.at,
            (
                At::Size {
                    size,
                    digits,
                    cr: false,
                    ..
                },
                b';' | b' ' | b'\t',
            ) if digits > 0 => At::Size {
                size,
                digits,
                ext: true,
                cr: false,
            },
            (
                At::Size {
                    size,
                    digits,
                    cr: false,
                    ..
                },
                _,
            ) => match (b as char).to_digit(16) {
                Some(d) if digits < 16 => At::Size {
                    size: size << 4 | u64::from(d),
                    digits: digits + 1,
                    ext: false,
                    cr: false,
                },
                _ => At::Lost,
            },
            (At::DataCr, b'\r') => At::DataLf,
            (At::DataLf, b'\n') => Self::size_line(),
            (At::TrailerStart, b'\r') => At::EndLf,
            (At::TrailerStart | At::TrailerLine, b'\n') => At::Lost,
            (At::TrailerLine, b'\r') => At::TrailerLf,
            (At::TrailerStart | At::TrailerLine, _) => At::TrailerLine,
            (At::TrailerLf, b'\n') => At::TrailerStart,
            (At::EndLf, b'\n') => At::Head,
            _ => At::Lost,
        };
    }

    fn size_line() -> At {
        At::Size {
            size: 0,
            digits: 0,
            ext: false,
            cr: false,
        }
    }

    /// Head bytes: returns how many were used (up to and including a line's `\n`, or all).
    /// Only the first [`TE`]`.len()` bytes of a line can start a framing header, so the rest
    /// of any other line is skipped to its `\n` in one search.
    fn head(&mut self, bytes: &[u8]) -> usize {
        let newline = bytes.iter().position(|&b| b == b'\n');
        let line = &bytes[..newline.unwrap_or(bytes.len())];
        for &b in line {
            if self.length.is_none() && !self.maybe_cl && !self.maybe_te && !self.only_cr {
                break; // nothing in the rest of this line matters
            }
            self.byte(b);
        }
        let Some(at) = newline else { return bytes.len() };
        self.end_line();
        at + 1
    }

    /// One byte of a head line, before its `\n`.
    fn byte(&mut self, b: u8) {
        if let Some(length) = self.length {
            let ows = matches!(b, b' ' | b'\t' | b'\r');
            let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'));
            self.length = Some(match (length, digit) {
                (Length::Before, _) if ows => Length::Before,
                (Length::Before, Some(d)) => Length::Digits(d),
                (Length::Digits(v), Some(d)) => v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(d))
                    .map_or(Length::Bad, Length::Digits),
                (Length::Digits(v) | Length::After(v), _) if ows => Length::After(v),
                _ => Length::Bad,
            });
        } else {
            let i = usize::from(self.line);
            let lower = b.to_ascii_lowercase();
            self.maybe_cl &= CL.get(i) == Some(&lower);
            self.maybe_te &= TE.get(i) == Some(&lower);
            if self.maybe_cl && i + 1 == CL.len() {
                self.length = Some(Length::Before);
            }
            self.seen_te |= self.maybe_te && i + 1 == TE.len();
        }
        self.only_cr &= b == b'\r';
        self.line = self.line.saturating_add(1);
    }

    /// A head line's `\n`.
    fn end_line(&mut self) {
        let empty = self.only_cr && self.line <= 1;
        match self.length.take() {
            Some(Length::Digits(v) | Length::After(v)) if self.cl.is_none_or(|cl| cl == v) => self.cl = Some(v),
            Some(_) => self.cl_bad = true,
            None => {}
        }
        (self.line, self.maybe_cl, self.maybe_te, self.only_cr) = (0, true, true, true);
        if !empty {
            self.started = true;
            return;
        }
        if !self.started {
            return; // an empty line before the request line
        }
        // The end of a head: what follows is its body, then the next head.
        let index = self.heads;
        self.heads = self.heads.saturating_add(1);
        self.at = if self.seen_te && (self.cl.is_some() || self.cl_bad) {
            self.first_both.get_or_insert(index);
            At::Lost
        } else if self.seen_te {
            Self::size_line()
        } else if self.cl_bad {
            At::Lost
        } else {
            match self.cl {
                Some(n) if n > 0 => At::Fixed(n),
                _ => At::Head,
            }
        };
        (self.started, self.seen_te, self.cl, self.cl_bad) = (false, false, None, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_in(chunks: &[&[u8]]) -> Stream {
        let mut s = Stream::default();
        for c in chunks {
            s.feed(c);
        }
        s
    }

    /// Every way of splitting `bytes` in two, and one byte at a time, scans alike.
    fn all_splits(bytes: &[u8]) -> Stream {
        let whole = feed_in(&[bytes]);
        for split in 0..=bytes.len() {
            let s = feed_in(&[&bytes[..split], &bytes[split..]]);
            assert_eq!(
                (s.heads, s.first_both, s.at),
                (whole.heads, whole.first_both, whole.at),
                "split at {split}"
            );
        }
        let ones: Vec<&[u8]> = bytes.chunks(1).collect();
        let s = feed_in(&ones);
        assert_eq!(
            (s.heads, s.first_both, s.at),
            (whole.heads, whole.first_both, whole.at),
            "byte by byte"
        );
        whole
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn both_headers_in_one_head_are_seen_across_any_split() {
        let s = all_splits(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTRANSFER-ENCODING: chunked\r\n\r\n");
        assert!(s.both(0));
        let s = all_splits(b"POST / HTTP/1.1\nTransfer-Encoding: chunked\ncontent-length:5\n\n");
        assert!(s.both(0), "LF-only lines, TE first");
        let s = all_splits(b"GET / HTTP/1.1\nX-Content-Length: 1\ncontent-lengthx: 2\ntransfer-encodingx: y\n\n");
        assert!(!s.both(0));
        assert_eq!((s.heads, s.at), (1, At::Head));
    }

    #[test]
    fn a_head_pipelined_behind_bodies_of_either_framing_is_seen() {
        let body_cl = b"POST / HTTP/1.1\r\nContent-Length: 26\r\n\r\nTransfer-Encoding: chunked";
        let body_chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            1a;ext=1\r\nContent-Length: 5\r\n\r\n0\r\n\r\n\r\n\
            5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n";
        let bad = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let stream = [GET, body_cl, body_chunked, GET, bad, GET].concat();
        let s = all_splits(&stream);
        assert_eq!(
            s.heads, 5,
            "the head after the CL+TE one is never served, so not followed"
        );
        assert!(s.both(4) && !s.both(0) && !s.both(1) && !s.both(2) && !s.both(3));
    }

    #[test]
    fn body_bytes_that_look_like_headers_are_not_headers() {
        let s = all_splits(b"POST / HTTP/1.1\r\nContent-Length: 30\r\n\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((s.heads, s.first_both, s.at), (1, None, At::Head));
    }

    #[test]
    fn empty_lines_before_a_request_line_do_not_end_a_head() {
        let s = all_splits(b"\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(s.both(0));
    }

    #[test]
    fn lengths_and_chunk_lines_hyper_rejects_stop_the_scan() {
        for bytes in [
            &b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n",
        ] {
            assert_eq!(all_splits(bytes).at, At::Lost, "{:?}", String::from_utf8_lossy(bytes));
        }
        // A bad length beside TE is still reported as both.
        assert!(all_splits(b"POST / HTTP/1.1\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n").both(0));
    }

    #[test]
    fn valid_lengths_and_chunks_come_back_to_the_next_head() {
        for bytes in [
            &b"POST / HTTP/1.1\r\nContent-Length:  005 \t\r\n\r\nhello"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a=\"b c\"\r\nhello\r\n0;x\r\n\r\n",
        ] {
            let s = all_splits(&[bytes, GET].concat());
            assert_eq!((s.heads, s.at), (2, At::Head), "{:?}", String::from_utf8_lossy(bytes));
        }
    }
}
