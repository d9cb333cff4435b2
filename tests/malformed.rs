//! Oversized requests (head, target, header count, body) get their status and a close,
//! non-ASCII header values reach the handler intact, and a chunked body ended by a bare LF is
//! refused at once, alone or with a request behind it. The framing vectors are the corpus in
//! `tests/vectors/` (tests/vectors.rs); slow clients are tests/slow.rs.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

/// Sends `bytes` in one write and reads until the gateway closes.
fn send(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut s = connect(addr);
    // Write errors are expected: the gateway may close as soon as it has seen enough.
    let _ = s.write_all(bytes);
    read_to_close(&mut s)
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
        let (raw, closed) = send(gw, bytes.as_bytes());
        let (statuses, _) = statuses(&raw);
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
    assert_eq!(statuses(&raw).0, [413]);
    assert!(closed);
}

/// hyper alone reads a bare LF after the last chunk as the start of a trailer section: it then
/// waits for trailer lines (a lone request is never answered before the body times out) or
/// swallows the request pipelined behind as trailer fields (it is never answered).
#[test]
fn a_bare_lf_after_the_last_chunk_is_400_and_close_at_once() {
    let gw = gateway(r#"{"version": 3, "echo_endpoint": true, "endpoints": []}"#);
    let post = b"POST /__echo/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\n";
    // Alone, the client waiting with its connection open.
    let mut s = connect(gw);
    s.write_all(post).unwrap();
    let started = Instant::now();
    let (raw, closed) = read_to_close(&mut s);
    assert_eq!(statuses(&raw).0, [400], "{:?}", String::from_utf8_lossy(&raw));
    assert!(closed);
    // The body idle limit is 10 s: the answer does not wait for it.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    // With a request pipelined behind: one answer, then the connection closes.
    let next = b"GET /__echo/y HTTP/1.1\r\nHost: a\r\n\r\n";
    let (raw, closed) = send(gw, &[&post[..], next].concat());
    assert_eq!(statuses(&raw).0, [400], "{:?}", String::from_utf8_lossy(&raw));
    assert!(closed);
    assert_eq!(get(gw, "/__health").status, 200);
}
