//! Backend answers in gzip: merged calls ask for it (`Accept-Encoding: gzip`, as KrakenD's Go
//! client does) and inflate what comes back before decoding, with the pure-Rust inflater of
//! `flate2`. The inflated size is bounded like any backend body: past the bound the call fails
//! (a gzip bomb costs at most the bound in memory and the time to inflate it). Sans-io.

use std::io::Read;

use bytes::Bytes;
use http::HeaderValue;

use super::UpstreamError;

/// `Accept-Encoding` of merged calls: the one coding gatelet inflates.
pub const ACCEPT: HeaderValue = HeaderValue::from_static("gzip");

/// What a `Content-Encoding` says about a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// As sent (no `Content-Encoding`, or `identity`).
    Identity,
    /// `gzip` (or its old alias `x-gzip`).
    Gzip,
}

/// The coding of a body from its `Content-Encoding`; any other coding (gatelet asked for gzip
/// only) is an error rather than undecodable bytes handed to the JSON decoder.
pub fn coding(value: Option<&HeaderValue>) -> Result<Coding, UpstreamError> {
    let Some(value) = value else {
        return Ok(Coding::Identity);
    };
    let text = value.to_str().unwrap_or("?").trim();
    if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
        Ok(Coding::Gzip)
    } else if text.is_empty() || text.eq_ignore_ascii_case("identity") {
        Ok(Coding::Identity)
    } else {
        Err(UpstreamError::Encoding(format!(
            "Content-Encoding {text:?} (gatelet asks for gzip only)"
        )))
    }
}

/// The gzip `body` (one member or several, as Go's reader takes them) inflated, at most `limit`
/// bytes of it.
pub fn inflate(body: &[u8], limit: usize) -> Result<Bytes, UpstreamError> {
    // ISIZE, the last 4 bytes, is the inflated size modulo 2^32 as the sender claims it: a
    // hint for the first allocation only, never more than the limit allows.
    let claimed = match body.len().checked_sub(4).and_then(|at| body.get(at..)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => 0,
    };
    let mut out = Vec::with_capacity(claimed.min(limit + 1));
    let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::bufread::MultiGzDecoder::new(body)
        .take(bound)
        .read_to_end(&mut out)
        .map_err(|e| UpstreamError::Encoding(format!("bad gzip body: {e}")))?;
    if out.len() > limit {
        return Err(UpstreamError::InflatedTooLarge);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn codings_are_read_case_insensitively_and_others_refused() {
        assert_eq!(coding(None), Ok(Coding::Identity));
        assert_eq!(coding(Some(&HeaderValue::from_static("GZip"))), Ok(Coding::Gzip));
        assert_eq!(coding(Some(&HeaderValue::from_static("x-gzip"))), Ok(Coding::Gzip));
        assert_eq!(
            coding(Some(&HeaderValue::from_static("identity"))),
            Ok(Coding::Identity)
        );
        assert!(matches!(
            coding(Some(&HeaderValue::from_static("br"))),
            Err(UpstreamError::Encoding(_))
        ));
    }

    #[test]
    fn inflates_members_up_to_the_limit_and_not_beyond() {
        let mut two = gzip(b"{\"a\":");
        two.extend(gzip(b"1}"));
        assert_eq!(&inflate(&two, 100).unwrap()[..], b"{\"a\":1}");
        let zeros = gzip(&vec![0u8; 10_000]);
        assert_eq!(inflate(&zeros, 10_000).unwrap().len(), 10_000);
        assert_eq!(inflate(&zeros, 9_999), Err(UpstreamError::InflatedTooLarge));
        assert!(matches!(inflate(b"not gzip", 100), Err(UpstreamError::Encoding(_))));
        let cut = &zeros[..zeros.len() / 2];
        assert!(matches!(inflate(cut, 100_000), Err(UpstreamError::Encoding(_))));
    }
}
