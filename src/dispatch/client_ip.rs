//! Which address a request comes from: the socket peer, unless the peer is a trusted proxy
//! (`extra_config.router.trusted_proxies`, KrakenD's key), in which case the right-most
//! `X-Forwarded-For` entry that is not itself a trusted proxy. Left-most entries are whatever
//! the client wrote and are never believed. Used by logs, rate limits and `X-Forwarded-For`.

use std::net::IpAddr;

use bytes::Bytes;
use http::HeaderMap;

use crate::net::Cidr;

/// The client address of a request from `peer` with `headers`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    // All X-Forwarded-For fields, as one list, read from the right.
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => client = ip,
            Ok(ip) => return ip,
            // Garbage in the chain: stop believing it.
            Err(_) => return client,
        }
    }
    client
}

/// `ip` as a header value (`X-Forwarded-For`). IPv4 is written by hand: `Display` through
/// the formatter cost ~1 300 instructions per request. The bytes are reference-counted from
/// the start, so a connection writes its peer's value once and every request's clone of it is
/// a count, not a copy (a `Vec`-backed value would allocate again on its first clone).
pub fn header_value(ip: IpAddr) -> http::HeaderValue {
    let unknown = http::HeaderValue::from_static("unknown");
    let IpAddr::V4(v4) = ip else {
        return http::HeaderValue::from_maybe_shared(Bytes::from_owner(ip.to_string())).unwrap_or(unknown);
    };
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            buf[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            buf[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + octet % 10;
        n += 1;
    }
    http::HeaderValue::from_maybe_shared(Bytes::from_owner(Octets { buf, len: n })).unwrap_or(unknown)
}

/// A dotted-quad IPv4 address written into a fixed buffer.
struct Octets {
    buf: [u8; 15],
    len: usize,
}

impl AsRef<[u8]> for Octets {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(xff: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in xff {
            m.append("x-forwarded-for", v.parse().unwrap());
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.200.1.1")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.9")));
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("bus"), None);
    }

    #[test]
    fn only_trusted_peers_are_believed_and_only_from_the_right() {
        let proxies = [Cidr::parse("10.0.0.0/8").unwrap()];
        let spoof = h(&["1.2.3.4"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &spoof, &proxies),
            ip("203.0.113.9"),
            "untrusted peer"
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &h(&["198.51.100.7"]), &proxies),
            ip("198.51.100.7")
        );
        // The client wrote 1.2.3.4 itself; the proxy appended the real address.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &h(&["1.2.3.4, 198.51.100.7, 10.0.0.9"]), &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &h(&["1.2.3.4", "198.51.100.7"]), &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(ip("10.0.0.2"), &h(&[]), &proxies), ip("10.0.0.2"));
        assert_eq!(
            client_ip(ip("10.0.0.2"), &h(&["nonsense, 10.0.0.5"]), &proxies),
            ip("10.0.0.5")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &spoof, &[]),
            ip("10.0.0.2"),
            "no proxies configured"
        );
    }

    #[test]
    fn header_values_read_like_display() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "192.168.1.20",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let value = header_value(ip);
            assert_eq!(value.to_str().unwrap(), ip.to_string());
            assert_eq!(value.clone(), value);
        }
    }
}
