//! RELIABILITY.md's framing vectors, each sent three ways (one write, one byte per write, head
//! then a pause then the rest): one 4xx/5xx answer, a closed connection, never a second
//! response (no smuggling), and the gateway still serving afterwards.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// A request smuggled after each vector: answering it would mean body bytes ran as a request.
const SMUGGLED: &str = "GET /__health HTTP/1.1\r\nHost: x\r\n\r\n";

/// (name, bytes before the smuggled request, allowed statuses)
fn vectors() -> Vec<(&'static str, String, &'static [u16])> {
    let post = |headers: &str, body: &str| format!("POST /sink HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}");
    let bad: &[u16] = &[400];
    let te: &[u16] = &[400, 501];
    vec![
        (
            "CL with TE",
            post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
            bad,
        ),
        (
            "differing duplicate CL",
            post("Content-Length: 3\r\nContent-Length: 5\r\n", "abcde"),
            bad,
        ),
        ("CL +3", post("Content-Length: +3\r\n", "abc"), bad),
        ("CL -1", post("Content-Length: -1\r\n", ""), bad),
        ("CL 0x3", post("Content-Length: 0x3\r\n", "abc"), bad),
        ("CL empty", post("Content-Length: \r\n", ""), bad),
        (
            "CL overflow",
            post("Content-Length: 99999999999999999999999\r\n", ""),
            bad,
        ),
        ("TE xchunked", post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), te),
        (
            "TE chunked, gzip",
            post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"),
            te,
        ),
        (
            "TE gzip, chunked",
            post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
            te,
        ),
        ("TE identity", post("Transfer-Encoding: identity\r\n", ""), te),
        (
            "two TE headers",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            te,
        ),
        (
            "TE in HTTP/1.0",
            "POST /sink HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            te,
        ),
        ("space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n".into(), bad),
        (
            "obs-fold",
            "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n".into(),
            bad,
        ),
        (
            "bare CR in value",
            "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n".into(),
            bad,
        ),
        (
            "NUL in value",
            "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n".into(),
            bad,
        ),
        (
            "first header line starts with whitespace",
            "GET / HTTP/1.1\r\n Host: x\r\n\r\n".into(),
            bad,
        ),
        ("missing Host", "GET / HTTP/1.1\r\n\r\n".into(), bad),
        ("two Hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n".into(), bad),
        (
            "chunk size 0x5",
            post("Transfer-Encoding: chunked\r\n", "0x5\r\nhello\r\n0\r\n\r\n"),
            bad,
        ),
        (
            "chunk size with leading space",
            post("Transfer-Encoding: chunked\r\n", " 5\r\nhello\r\n0\r\n\r\n"),
            bad,
        ),
        (
            "chunk size of 17 hex digits",
            post(
                "Transfer-Encoding: chunked\r\n",
                "10000000000000005\r\nhello\r\n0\r\n\r\n",
            ),
            bad,
        ),
        (
            "over-long chunk extension",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(64 * 1024)),
            ),
            &[400, 413, 431],
        ),
    ]
}

enum Way {
    OneWrite,
    BytePerWrite,
    HeadPauseRest,
}

fn send(addr: SocketAddr, bytes: &[u8], way: &Way) -> (Vec<u8>, bool) {
    let mut s = connect(addr);
    s.set_nodelay(true).unwrap();
    // Write errors are expected: the gateway may close as soon as it has seen enough.
    let _ = match way {
        Way::OneWrite => s.write_all(bytes),
        Way::BytePerWrite => bytes.chunks(1).try_for_each(|b| s.write_all(b)),
        Way::HeadPauseRest => {
            let split = bytes
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(bytes.len(), |i| i + 4);
            s.write_all(&bytes[..split]).and_then(|_| {
                // The pause is the shape of the input under test, not synchronisation.
                std::thread::sleep(Duration::from_millis(50));
                s.write_all(&bytes[split..])
            })
        }
    };
    read_to_close(&mut s)
}

fn responses(mut raw: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some((r, used)) = parse_response(raw) {
        out.push(r);
        raw = &raw[used..];
    }
    out
}

#[test]
fn every_framing_vector_gets_one_error_and_a_closed_connection_three_ways() {
    let gw = gateway(r#"{"version": 3, "endpoints": []}"#);
    let mut failures = Vec::new();
    for (name, vector, allowed) in vectors() {
        let bytes = [vector.as_bytes(), SMUGGLED.as_bytes()].concat();
        for (way_name, way) in [
            ("one write", Way::OneWrite),
            ("byte per write", Way::BytePerWrite),
            ("head, pause, rest", Way::HeadPauseRest),
        ] {
            if matches!(way, Way::BytePerWrite) && bytes.len() > 4096 {
                continue; // the 64 KiB extension one byte at a time adds nothing but minutes
            }
            let (raw, closed) = send(gw, &bytes, &way);
            let got = responses(&raw);
            let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
            if statuses.len() != 1 || !allowed.contains(&statuses[0]) || !closed {
                failures.push(format!(
                    "{name} ({way_name}): statuses {statuses:?}, closed {closed}, raw {:?}",
                    String::from_utf8_lossy(&raw).chars().take(200).collect::<String>()
                ));
            }
            assert_eq!(
                get(gw, "/__health").status,
                200,
                "still serving after {name} ({way_name})"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn two_pipelined_requests_in_one_write_are_answered_in_order() {
    let gw = gateway(r#"{"version": 3, "endpoints": [], "extra_config": {"router": {"health_path": "/h"}}}"#);
    let mut s = connect(gw);
    s.write_all(b"GET /h HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (raw, closed) = read_to_close(&mut s);
    let statuses: Vec<u16> = responses(&raw).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 404]);
    assert!(closed);
}

#[test]
fn non_ascii_header_values_are_served_not_panicked_on() {
    let gw = gateway(r#"{"version": 3, "echo_endpoint": true, "endpoints": []}"#);
    let r = request(gw, "GET", "/__echo/", &["X-Name: café", "X-Raw: \u{00ff}\u{00fe}"], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["req_headers"]["x-name"], serde_json::json!(["café"]));
    assert_eq!(get(gw, "/__health").status, 200);
}

#[test]
fn oversized_heads_targets_and_bodies_get_their_status() {
    let gw = gateway(r#"{"version": 3, "endpoints": []}"#);
    let cases: Vec<(String, u16)> = vec![
        (format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(8000)), 414),
        (
            format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(17 * 1024)),
            431,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..70).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
            ),
            431,
        ),
        // The limit is exact: 65 fields are one too many, 64 are served; past hyper's own 100 too.
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..64).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
            ),
            431,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..120).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
            ),
            431,
        ),
        (
            format!(
                "GET /__health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}\r\n",
                (0..62).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
            ),
            200,
        ),
        (
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                2 * 1024 * 1024
            ),
            413,
        ),
    ];
    for (bytes, status) in cases {
        let (raw, closed) = send(gw, bytes.as_bytes(), &Way::OneWrite);
        let statuses: Vec<u16> = responses(&raw).iter().map(|r| r.status).collect();
        assert_eq!(statuses, [status], "for {:?}", &bytes[..40]);
        assert!(closed);
    }
    // A chunked body that grows past the limit is cut off with 413 too.
    let mut s = connect(gw);
    let _ = s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "c".repeat(64 * 1024));
    for _ in 0..17 {
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let (raw, closed) = read_to_close(&mut s);
    assert_eq!(responses(&raw).iter().map(|r| r.status).collect::<Vec<_>>(), [413]);
    assert!(closed);
}

#[test]
fn a_head_trickling_in_is_cut_off_at_the_head_deadline() {
    let gw = gateway(r#"{"version": 3, "endpoints": []}"#);
    let mut s = connect(gw);
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let start = std::time::Instant::now();
    // Keep trickling one header byte at a time; the connection must still close at ~10 s.
    let closed_at = poll_until(Duration::from_secs(14), || {
        if s.write_all(b"X").is_err() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(500)); // the attacker's pace, not synchronisation
        let mut probe = [0u8; 1];
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        match std::io::Read::read(&mut s, &mut probe) {
            Ok(0) => Some(start.elapsed()),
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut => {
                Some(start.elapsed())
            }
            _ => None,
        }
    });
    let closed_at = closed_at.expect("connection still open after 14 s of trickling");
    assert!(closed_at >= Duration::from_secs(9), "closed too early: {closed_at:?}");
}

#[test]
fn a_body_that_stops_arriving_gets_408() {
    let gw = gateway(r#"{"version": 3, "endpoints": []}"#);
    let mut s = connect(gw);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let (raw, closed) = read_to_close(&mut s);
    assert_eq!(responses(&raw).iter().map(|r| r.status).collect::<Vec<_>>(), [408]);
    assert!(closed);
}
