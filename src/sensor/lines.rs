//! Splits a byte stream into frames (lines) with a bounded buffer: at most `max_frame` bytes
//! are held; a longer line is dropped whole (reported once) and reading resumes at the next
//! newline. `\r\n` and `\n` both end a line. Sans-io: bytes in, frames out through a callback.

/// A line longer than `max_frame` was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// The line splitter of one source connection or file.
#[derive(Debug)]
pub struct Lines {
    buf: Vec<u8>,
    max_frame: usize,
    /// Dropping the rest of an over-long line.
    discarding: bool,
}

impl Lines {
    /// A splitter holding at most `max_frame` bytes of an unfinished line.
    pub fn new(max_frame: usize) -> Lines {
        Lines {
            buf: Vec::new(),
            max_frame: max_frame.max(1),
            discarding: false,
        }
    }

    /// Feeds bytes; calls `on_frame` for every complete line (without its line ending), or with
    /// `Err(TooLong)` once per dropped over-long line.
    pub fn push(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(Result<&[u8], TooLong>)) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|&b| b == b'\n');
            let (part, rest) = match newline {
                Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
                None => (bytes, None),
            };
            if !self.discarding {
                if self.buf.len() + part.len() > self.max_frame {
                    self.buf.clear();
                    self.discarding = true;
                    on_frame(Err(TooLong));
                } else {
                    self.buf.extend_from_slice(part);
                }
            }
            match rest {
                Some(rest) => {
                    if !self.discarding {
                        let line = self.buf.strip_suffix(b"\r").unwrap_or(&self.buf);
                        on_frame(Ok(line));
                    }
                    self.buf.clear();
                    self.discarding = false;
                    bytes = rest;
                }
                None => bytes = &[],
            }
        }
    }

    /// Forgets an unfinished line (the source reconnected or the file was truncated).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }

    /// Drops everything up to the next newline (reading started mid-line).
    pub fn skip_line(&mut self) {
        self.buf.clear();
        self.discarding = true;
    }

    /// Bytes of the unfinished line held (for tests).
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Result<String, TooLong>> {
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        for c in chunks {
            lines.push(c, |f| out.push(f.map(|l| String::from_utf8_lossy(l).into_owned())));
        }
        out
    }

    #[test]
    fn lines_across_any_split() {
        let whole: &[u8] = b"$GPGGA,1*00\r\nfuel=71\n\nlast";
        let expected = vec![Ok("$GPGGA,1*00".to_string()), Ok("fuel=71".into()), Ok(String::new())];
        assert_eq!(split(64, &[whole]), expected);
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(split(64, &bytes), expected, "one byte at a time");
    }

    #[test]
    fn an_overlong_line_is_dropped_once_and_reading_resumes() {
        let out = split(8, &[b"short\n0123456789", b"abcdef\nok\n"]);
        assert_eq!(out, vec![Ok("short".to_string()), Err(TooLong), Ok("ok".into())]);
        let mut lines = Lines::new(8);
        lines.push(&[b'x'; 100_000], |_| {});
        assert_eq!(lines.pending(), 0, "memory stays bounded by max_frame");
        lines.push(b"12345678", |_| {});
        assert_eq!(lines.pending(), 0, "still discarding until the newline");
    }

    #[test]
    fn exactly_max_frame_fits() {
        assert_eq!(
            split(4, &[b"abcd\nabcde\n"]),
            vec![Ok("abcd".to_string()), Err(TooLong)]
        );
    }
}
