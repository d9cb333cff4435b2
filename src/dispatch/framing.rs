//! Request framing rules hyper leaves to us (RFC 9112), checked on the parsed head before
//! anything else runs: exactly one `Host` in HTTP/1.1, no `Transfer-Encoding` in HTTP/1.0 or with `Content-Length`,
//! one `Transfer-Encoding` whose value is exactly `chunked`, and the request-target length.
//! hyper itself rejects the rest (CL+TE conflicts, bad Content-Length, obs-fold, bare CR...).

use http::request::Parts;
use http::{Version, header};

use super::error::Error;
use crate::net::limits;

/// Checks a parsed request head.
pub fn check(parts: &Parts) -> Result<(), Error> {
    let target = parts.uri.scheme_str().map_or(0, |s| s.len() + 3)
        + parts.uri.authority().map_or(0, |a| a.as_str().len())
        + parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits::MAX_TARGET_BYTES {
        return Err(Error::TargetTooLong(target));
    }
    // Counted here rather than by hyper's `max_headers`: with a cap set, hyper builds two
    // header arrays per request element by element (~1 600 instructions); without one it
    // parses into uninitialised inline arrays and refuses over 100 fields itself.
    if parts.headers.len() > limits::MAX_HEADERS {
        return Err(Error::TooManyHeaders(parts.headers.len()));
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Err(Error::DuplicateHost),
        (None, None) if parts.version == Version::HTTP_11 => return Err(Error::MissingHost),
        _ => {}
    }
    let mut te = parts.headers.get_all(header::TRANSFER_ENCODING).iter();
    match (te.next(), te.next()) {
        (None, _) => Ok(()),
        // RFC 9112 §6.1: a server MAY reject it; it is the classic smuggling shape, so we do.
        (Some(_), _) if parts.headers.contains_key(header::CONTENT_LENGTH) => {
            Err(Error::ContentLengthWithTransferEncoding)
        }
        (Some(_), _) if parts.version == Version::HTTP_10 => Err(Error::TransferEncodingInHttp10),
        (Some(_), Some(_)) => Err(Error::DuplicateTransferEncoding),
        (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"chunked") => Ok(()),
        (Some(v), None) => Err(Error::UnsupportedTransferCoding(
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(version: Version, target: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().version(version).uri(target);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn host_rules() {
        assert_eq!(check(&parts(Version::HTTP_11, "/", &[])), Err(Error::MissingHost));
        assert_eq!(
            check(&parts(Version::HTTP_11, "/", &[("host", "a"), ("host", "b")])),
            Err(Error::DuplicateHost)
        );
        assert_eq!(check(&parts(Version::HTTP_10, "/", &[])), Ok(()));
        assert_eq!(check(&parts(Version::HTTP_11, "/", &[("host", "a")])), Ok(()));
    }

    #[test]
    fn transfer_encoding_rules() {
        let h = |te: &[&str], v| {
            let mut hs = vec![("host", "a")];
            hs.extend(te.iter().map(|t| ("transfer-encoding", *t)));
            check(&parts(v, "/", &hs))
        };
        assert_eq!(h(&["chunked"], Version::HTTP_11), Ok(()));
        assert_eq!(h(&["Chunked"], Version::HTTP_11), Ok(()));
        assert_eq!(
            h(&["gzip, chunked"], Version::HTTP_11),
            Err(Error::UnsupportedTransferCoding("gzip, chunked".into()))
        );
        assert_eq!(
            h(&["chunked", "chunked"], Version::HTTP_11),
            Err(Error::DuplicateTransferEncoding)
        );
        assert_eq!(h(&["chunked"], Version::HTTP_10), Err(Error::TransferEncodingInHttp10));
        let both = parts(
            Version::HTTP_11,
            "/",
            &[("host", "a"), ("transfer-encoding", "chunked"), ("content-length", "3")],
        );
        assert_eq!(check(&both), Err(Error::ContentLengthWithTransferEncoding));
    }

    #[test]
    fn target_length_limit_is_inclusive() {
        let ok = format!("/{}", "a".repeat(limits::MAX_TARGET_BYTES - 1));
        assert_eq!(check(&parts(Version::HTTP_11, &ok, &[("host", "a")])), Ok(()));
        let long = format!("/{}", "a".repeat(limits::MAX_TARGET_BYTES));
        assert_eq!(
            check(&parts(Version::HTTP_11, &long, &[("host", "a")])),
            Err(Error::TargetTooLong(limits::MAX_TARGET_BYTES + 1))
        );
    }
}
