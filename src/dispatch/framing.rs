//! Request framing rules hyper leaves to us (RFC 9112), checked on the parsed head before
//! anything else runs: the request-target's length and form (no `*` but for OPTIONS, no
//! CONNECT), exactly one `Host` in HTTP/1.1 and a valid one (`uri-host [":" port]`), no
//! `Transfer-Encoding` in HTTP/1.0 or with `Content-Length`, one `Transfer-Encoding` whose
//! value is exactly `chunked`. hyper itself rejects the rest (CL+TE conflicts, bad
//! Content-Length, obs-fold, bare CR...).

use http::request::Parts;
use http::{Method, Version, header};

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
    // A gateway has no tunnel to open, and `*` only means something to OPTIONS.
    if parts.method == Method::CONNECT {
        return Err(Error::NotImplemented(parts.method.to_string()));
    }
    if parts.uri.path() == "*" && parts.method != Method::OPTIONS {
        return Err(Error::AsteriskTarget);
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Err(Error::DuplicateHost),
        (None, None) if parts.version == Version::HTTP_11 => return Err(Error::MissingHost),
        // RFC 9112 §3.2: a server MUST answer 400 to an invalid Host. Only a valid one is
        // ever forwarded (`X-Forwarded-Host`).
        (Some(host), None) if !valid_host(host.as_bytes()) => {
            return Err(Error::BadHost(String::from_utf8_lossy(host.as_bytes()).into_owned()));
        }
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

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP literal in brackets, or a
/// non-empty reg-name (unreserved, pct-encoded, sub-delims), then at most a port of up to five
/// digits. No userinfo, path, spaces or empty value.
pub fn valid_host(value: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..end];
        let ok = std::str::from_utf8(literal).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
        if !ok {
            return false;
        }
        (&b"v"[..], &rest[end + 1..])
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, &b""[..]),
        }
    };
    let reg_name = |h: &[u8]| {
        !h.is_empty()
            && h.iter().enumerate().all(|(i, &b)| {
                b.is_ascii_alphanumeric()
                    || b"-._~!$&'()*+,;=".contains(&b)
                    || (b == b'%'
                        && h.get(i + 1..i + 3)
                            .is_some_and(|hh| hh.iter().all(u8::is_ascii_hexdigit)))
                    || (i >= 1 && h[i - 1] == b'%')
                    || (i >= 2 && h[i - 2] == b'%')
            })
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    reg_name(host) && port_ok
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

    #[test]
    fn host_values_follow_the_uri_host_grammar() {
        for ok in [
            "a",
            "bus7.example",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:80",
            "a-b_c~d",
            "%41bc",
            "h:",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok} is valid");
        }
        for bad in [
            "",
            "127.0.0.1:8080/path",
            "a, b",
            "user@a",
            "a b",
            ":80",
            "a:80:90",
            "a:123456",
            "a:8o",
            "[::1",
            "[zz]",
            "[::1]x",
            "%4",
            "%zz",
            "a/b",
            "a?b",
            "a#b",
            "\u{e9}",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?} is invalid");
        }
    }
}
