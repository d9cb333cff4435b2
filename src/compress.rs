//! Gzip for answers to clients (RFC 1952 over `miniz_oxide`'s deflate, pure Rust): whether a
//! request's `Accept-Encoding` takes gzip, and the compressed bytes. Sans-io; the dispatch step
//! decides which answers are worth it (`gatelet/gzip`).

use miniz_oxide::DataFormat;
use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output, create_comp_flags_from_zip_params,
};

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
    let level = level.clamp(1, 9);
    // Header: magic, deflate, no flags, no time, extra flags for the extremes, OS unknown.
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    let mut out = Vec::with_capacity(data.len() / 4 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
    let flags = create_comp_flags_from_zip_params(level.into(), DataFormat::Raw.to_window_bits(), 0);
    let mut compressor = CompressorOxide::new(flags);
    let (status, _) = compress_to_output(&mut compressor, data, TDEFLFlush::Finish, |chunk| {
        out.extend_from_slice(chunk);
        true
    });
    // The output callback never refuses, so finishing in one call always completes.
    debug_assert_eq!(status, TDEFLStatus::Done);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// The CRC-32 (IEEE, reflected, as gzip and zlib use it) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

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
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
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
            let body = &gz[10..gz.len() - 8];
            assert_eq!(miniz_oxide::inflate::decompress_to_vec(body).unwrap(), data);
            let trailer = &gz[gz.len() - 8..];
            assert_eq!(trailer[..4], crc32(&data).to_le_bytes());
            assert_eq!(trailer[4..], (data.len() as u32).to_le_bytes());
        }
        assert_eq!(gzip(b"", 6).len(), 20);
    }
}
