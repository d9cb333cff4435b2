//! Gzip for answers to clients (RFC 1952 through `flate2` on `miniz_oxide`, the same pure-Rust
//! deflate that inflates backend answers): whether a
//! request's `Accept-Encoding` takes gzip, and the compressed bytes. Sans-io; the dispatch step
//! decides which answers are worth it (`gatelet/gzip`).

use std::io::Write;

/// Whether `Accept-Encoding` values (one per header line) accept gzip (RFC 9110 §12.5.3):
/// `gzip` or `x-gzip` with a `q` above 0, or `*` above 0 when gzip is not named.
pub fn accepts_gzip<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut star = None;
    for value in values {
        for item in value.split(|&b| b == b',') {
            let mut params = item.split(|&b| b == b';');
            let coding = trim(params.next().unwrap_or_default());
            let q_zero = params.any(|p| {
                let p = trim(p);
                p.len() > 2 && p[..2].eq_ignore_ascii_case(b"q=") && q_is_zero(trim(&p[2..]))
            });
            if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
                return !q_zero;
            }
            if coding == b"*" {
                star = Some(!q_zero);
            }
        }
    }
    star.unwrap_or(false)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `0`, `0.`, `0.0`, `0.00`, `0.000` (RFC 9110's `qvalue` of zero).
fn q_is_zero(q: &[u8]) -> bool {
    match q {
        [b'0'] => true,
        [b'0', b'.', rest @ ..] => rest.len() <= 3 && rest.iter().all(|&b| b == b'0'),
        _ => false,
    }
}

/// `data` as a gzip member, compressed at `level` (1 fastest to 9 smallest).
pub fn gzip(data: &[u8], level: u8) -> Vec<u8> {
    let level = flate2::Compression::new(level.clamp(1, 9).into());
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), level);
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(values: &[&str]) -> bool {
        accepts_gzip(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn accept_encoding_follows_rfc_9110() {
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["gzip, deflate, br"]));
        assert!(accepts(&["br", "GZIP;q=0.5"]));
        assert!(accepts(&["x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["deflate, *;q=0.1"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&[""]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["deflate, br"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip ; q=0.000"]));
        assert!(accepts(&["gzip;q=0.001"]));
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["gzip;q=0, *"]));
        assert!(!accepts(&["gzipx"]));
    }

    #[test]
    fn gzip_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("{{\"bus\":{},\"ok\":true}}", i % 97).into_bytes())
            .collect();
        for level in [1, 6, 9] {
            let gz = gzip(&data, level);
            assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
            assert!(gz.len() < data.len() / 10, "level {level}: {}", gz.len());
            let mut back = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut back).unwrap();
            assert_eq!(back, data);
            assert_eq!(gz[gz.len() - 4..], (data.len() as u32).to_le_bytes());
        }
        assert_eq!(gzip(b"", 6).len(), 20);
    }
}
