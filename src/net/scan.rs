//! Follows the raw request byte stream of one server connection, as hyper reads it, for two
//! framing facts hyper gets wrong or hides from its caller. Sans-io: fed every byte the
//! connection reads, in order, split anywhere; it walks heads line by line and skips bodies by
//! their framing (a length, or chunk sizes), so a head pipelined behind a request that is still
//! being handled is seen too.
//!
//! - A head carrying both `Content-Length` and `Transfer-Encoding`: hyper drops the length,
//!   decodes chunked and closes afterwards; docs/reliability.md asks for a 400 ([`Stream::both`]).
//! - Chunked framing outside RFC 9112 §7.1's grammar. hyper takes some of it and then reads
//!   the stream differently from the client: a bare LF where the body should end starts a
//!   trailer section in hyper, which swallows the next pipelined request as trailer fields
//!   (and, with nothing behind it, waits for more until the body times out); it also ignores
//!   the contents of chunk extensions (`5;`, `5;bad[=x`, `5 `, a NUL). The scan checks every
//!   byte of chunked framing outside chunk data, line ends (CRLF only, never a bare LF or
//!   CR), chunk sizes (1 to 16 hex digits), extensions (`*( BWS ";" BWS token [ BWS "=" BWS
//!   ( token / quoted-string ) ] )`), and refuses the stream at the first byte that breaks it
//!   ([`Stream::feed`]): hyper gets only the bytes before it, its next read fails, so the
//!   request is answered 400 (a malformed body) and the connection closed. Trailer field lines
//!   are left to hyper's parser, which refuses bad ones itself.
//!
//! Heads are mirrored only as far as valid ones go. Where hyper rejects a head (a bad length),
//! hyper closes the connection anyway, and the scan stops following: it never vouches for a
//! head it has not seen whole.

/// Where in the stream the scan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// In a head (see the `Stream` line fields).
    Head,
    /// In a body of known length: this many bytes left.
    Fixed(u64),
    /// In a chunk-size line: the size so far, its digit count, and where in the line.
    Size {
        size: u64,
        digits: u8,
        part: Part,
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
    /// Stopped following: hyper rejects the head that came, or a CL+TE head was seen (hyper
    /// closes the connection after answering it, so nothing later is ever served).
    Lost,
    /// Chunked framing broke RFC 9112: nothing from the offending byte on goes to hyper.
    Refused,
}

/// Where in a chunk-size line: `chunk-size *( BWS ";" BWS name [ BWS "=" BWS value ] ) CRLF`,
/// a name a token, a value a token or a quoted-string (RFC 9112 §7.1.1, RFC 9110 §5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The hex digits of the size.
    Digits,
    /// Whitespace after the size or a value: only more of it, or `;`, may follow.
    Ws,
    /// After `;` (and whitespace): a name must start.
    Semi,
    /// In a name.
    Name,
    /// Whitespace after a name: more of it, `=` or `;`.
    NameWs,
    /// After `=` (and whitespace): a token or a quoted-string must start.
    Eq,
    /// In a token value.
    Token,
    /// In a quoted-string, after its `\`, after its closing quote.
    Quoted,
    Escape,
    Closed,
    /// After the line's `\r`.
    Cr,
}

/// RFC 9110 §5.6.2 `tchar`.
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Part {
    /// The part after byte `b` (not a hex digit of the size), or `None` if `b` may not come
    /// here. `\r` ends the line where an extension may end.
    fn next(self, b: u8) -> Option<Part> {
        let ws = matches!(b, b' ' | b'\t');
        Some(match (self, b) {
            (Part::Digits | Part::Ws | Part::Token | Part::Closed, _) if ws => Part::Ws,
            (Part::Semi | Part::Eq | Part::NameWs, _) if ws => self,
            (Part::Name, _) if ws => Part::NameWs,
            (Part::Digits | Part::Ws | Part::Name | Part::NameWs | Part::Token | Part::Closed, b';') => Part::Semi,
            (Part::Digits | Part::Name | Part::Token | Part::Closed, b'\r') => Part::Cr,
            (Part::Name | Part::NameWs, b'=') => Part::Eq,
            (Part::Semi | Part::Name, _) if tchar(b) => Part::Name,
            (Part::Eq | Part::Token, _) if tchar(b) => Part::Token,
            (Part::Eq, b'"') => Part::Quoted,
            (Part::Quoted, b'"') => Part::Closed,
            (Part::Quoted, b'\\') => Part::Escape,
            // qdtext; after a backslash, also `"` and `\` (VCHAR).
            (Part::Quoted | Part::Escape, b'\t' | b' ' | 0x21..=0x7e | 0x80..) => Part::Quoted,
            _ => return None,
        })
    }
}

use super::limits::MAX_METHOD_BYTES;

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
    /// Bytes of the request line's method so far, until its space (`method_done`).
    method: usize,
    method_done: bool,
    /// Refused for a method longer than [`MAX_METHOD_BYTES`] (see [`Stream::bad_method`]).
    bad_method: bool,
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
            method: 0,
            method_done: false,
            bad_method: false,
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

    /// Whether the refusal is for a request line whose method is longer than
    /// [`MAX_METHOD_BYTES`]: hyper is then shown the bytes before the excess followed by one
    /// byte no method may hold, so that its parser answers 400 (it would otherwise wait for
    /// the line to fill its buffer and answer 431, a head too large).
    pub fn bad_method(&self) -> bool {
        self.bad_method
    }

    /// Whether the stream broke chunked framing (see [`Stream::feed`]).
    pub fn refused(&self) -> bool {
        self.at == At::Refused
    }

    /// Feeds the next bytes read from the connection. Returns how many of them hyper may be
    /// given: all of them, unless one breaks chunked framing; then those before it, and 0 for
    /// every later call (see [`Stream::refused`]).
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut rest = bytes;
        while !rest.is_empty() {
            let used = match self.at {
                At::Lost => break,
                At::Refused => return bytes.len() - rest.len(),
                At::Head => self.head(rest),
                At::Fixed(left) => {
                    let n = left.min(rest.len() as u64);
                    self.at = if n == left { At::Head } else { At::Fixed(left - n) };
                    n as usize
                }
                At::Data(left) => {
                    let n = left.min(rest.len() as u64);
                    self.at = if n == left { At::DataCr } else { At::Data(left - n) };
                    n as usize
                }
                _ => {
                    self.chunked(rest[0]);
                    usize::from(self.at != At::Refused)
                }
            };
            rest = &rest[used..];
        }
        bytes.len()
    }

    /// One byte of chunked framing outside chunk data.
    fn chunked(&mut self, b: u8) {
        self.at = match (self.at, b) {
            (
                At::Size {
                    size,
                    digits,
                    part: Part::Digits,
                },
                _,
            ) if b.is_ascii_hexdigit() => {
                let d = u64::from((b as char).to_digit(16).unwrap_or(0));
                match digits {
                    16.. => At::Refused,
                    _ => At::Size {
                        size: size << 4 | d,
                        digits: digits + 1,
                        part: Part::Digits,
                    },
                }
            }
            (At::Size { digits: 0, .. }, _) => At::Refused,
            (
                At::Size {
                    size, part: Part::Cr, ..
                },
                b'\n',
            ) => match size {
                0 => At::TrailerStart,
                _ => At::Data(size),
            },
            (At::Size { size, digits, part }, _) => match part.next(b) {
                Some(part) => At::Size { size, digits, part },
                None => At::Refused,
            },
            (At::DataCr, b'\r') => At::DataLf,
            (At::DataLf, b'\n') => Self::size_line(),
            (At::TrailerStart, b'\r') => At::EndLf,
            (At::TrailerLine, b'\r') => At::TrailerLf,
            (At::TrailerStart | At::TrailerLine, b'\n') => At::Refused,
            (At::TrailerStart | At::TrailerLine, _) => At::TrailerLine,
            (At::TrailerLf, b'\n') => At::TrailerStart,
            (At::EndLf, b'\n') => At::Head,
            _ => At::Refused,
        };
    }

    fn size_line() -> At {
        At::Size {
            size: 0,
            digits: 0,
            part: Part::Digits,
        }
    }

    /// Head bytes: returns how many were used (up to and including a line's `\n`, or all).
    /// Only the first [`TE`]`.len()` bytes of a line can start a framing header, so the rest
    /// of any other line is skipped to its `\n` in one search.
    fn head(&mut self, bytes: &[u8]) -> usize {
        let newline = bytes.iter().position(|&b| b == b'\n');
        let line = &bytes[..newline.unwrap_or(bytes.len())];
        if !self.started && !self.method_done {
            // The request line's method, across reads: longer than any method is a bad request
            // line, refused here before hyper calls it a head too large.
            let space = line.iter().position(|&b| b == b' ');
            let before = self.method;
            self.method = self.method.saturating_add(space.unwrap_or(line.len()));
            if self.method > MAX_METHOD_BYTES {
                self.at = At::Refused;
                self.bad_method = true;
                return MAX_METHOD_BYTES.saturating_sub(before);
            }
            self.method_done = space.is_some();
        }
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
        (self.method, self.method_done) = (0, false);
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
    fn lengths_hyper_rejects_stop_the_scan() {
        for bytes in [
            &b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
        ] {
            assert_eq!(all_splits(bytes).at, At::Lost, "{:?}", String::from_utf8_lossy(bytes));
        }
        // A bad length beside TE is still reported as both.
        assert!(all_splits(b"POST / HTTP/1.1\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n").both(0));
    }

    const CHUNKED: &[u8] = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";

    /// `body` after a chunked head is refused at its byte `at` (0-based), however it is split:
    /// every byte before it passes, none from it on.
    fn refused_at(body: &[u8], at: usize) {
        let bytes = [CHUNKED, body, GET].concat();
        let cut = CHUNKED.len() + at;
        let s = all_splits(&bytes);
        assert!(s.refused(), "{:?} not refused", String::from_utf8_lossy(body));
        for split in 0..=bytes.len() {
            let mut s = Stream::default();
            let first = s.feed(&bytes[..split]);
            let second = s.feed(&bytes[split..]);
            assert_eq!(
                (first, second),
                (split.min(cut), cut.saturating_sub(split)),
                "{:?} split at {split}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(s.feed(GET), 0, "nothing passes after a refusal");
        }
    }

    #[test]
    fn a_bare_lf_or_cr_anywhere_in_chunked_framing_is_refused_at_that_byte() {
        for (body, at) in [
            // The end of the body: hyper would start a trailer section and read the GET
            // behind as trailer fields.
            (&b"5\r\nhello\r\n0\r\n\n"[..], 13),
            (b"0\r\nX-Trailer: t\r\n\n", 17),
            (b"0\r\nX-Trailer: t\n\r\n", 15),
            (b"0\r\n\rX", 4),
            (b"0\r\nX-Trailer: t\rX", 16),
            (b"0\n\r\n", 1),
            (b"0;a=b\n\r\n", 5),
            (b"5\nhello\r\n", 1),
            (b"5\rhello\r\n", 2),
            (b"5\r\nhello\n0\r\n\r\n", 8),
            (b"5\r\nhello\r0\r\n\r\n", 9),
            (b"5\r\nhelloX", 8),
        ] {
            refused_at(body, at);
        }
    }

    #[test]
    fn chunk_sizes_and_extensions_outside_the_grammar_are_refused_at_that_byte() {
        for (body, at) in [
            (&b"0x5\r\n"[..], 1),
            (b"\r\nhello\r\n", 0),
            (b" 5\r\n", 0),
            (b"10000000000000005\r\n", 16),
            (b"5;\r\n", 2),
            (b"5;=b\r\n", 2),
            (b"5;a=\r\n", 4),
            (b"5;bad[=x\r\n", 5),
            (b"5 \r\n", 2),
            (b"5\t\r\n", 2),
            (b"5 5\r\n", 2),
            (b"5;a \r\n", 4),
            (b"5;a=b \r\n", 6),
            (b"5;a=b c\r\n", 6),
            (b"5;;a\r\n", 2),
            (b"5;a=b=c\r\n", 5),
            (b"5;a=\"b\"c\r\n", 7),
            (b"5;a=b\"c\"\r\n", 5),
            (b"5;a=\"b\r\n", 6),
            (b"5;a\x00\r\n", 3),
            (b"5;a=\"\x00\"\r\n", 5),
            (b"5;a=\"\\\x7f\"\r\n", 6),
            (b"5;a\x80\r\n", 3),
        ] {
            refused_at(body, at);
        }
    }

    #[test]
    fn extensions_in_the_grammar_pass() {
        for ext in [
            &b";a"[..],
            b";a=b",
            b" ;a",
            b"\t; \ta \t= \tb",
            b";a=\"b c\"",
            b";a=\"\"",
            b";a=\"q\\\"\\\\\x80\\\x80\"",
            b";a;b=c;d=\"e\" ;f",
            b";!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~09AZaz",
        ] {
            let bytes = [CHUNKED, b"5", ext, b"\r\nhello\r\n0", ext, b"\r\n\r\n", GET].concat();
            let s = all_splits(&bytes);
            assert_eq!((s.heads, s.at), (2, At::Head), "{:?}", String::from_utf8_lossy(ext));
            assert_eq!(Stream::default().feed(&bytes), bytes.len());
        }
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
