//! Connection bounds: `gatelet/server.max_connections` holds new connections in the kernel's
//! backlog while established ones keep being served, and admits them as slots free up.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

const GET: &[u8] = b"GET /__health HTTP/1.1\r\nHost: gw.test\r\n\r\n";

fn one(s: &mut TcpStream) -> Response {
    pipeline(s, std::iter::once(GET.to_vec()), 1).remove(0)
}

#[test]
fn connections_beyond_the_cap_wait_and_established_ones_keep_being_served() {
    let addr = gateway(
        r#"{"version": 3, "port": 0, "listen_ip": "127.0.0.1",
            "extra_config": {"gatelet/server": {"max_connections": 3}}, "endpoints": []}"#,
    );
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    for s in &mut held {
        assert_eq!(one(s).status, 200);
    }
    // The fourth connects (the kernel's backlog) but is not served while three are open.
    let mut extra = connect(addr);
    extra.write_all(GET).unwrap();
    extra.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut byte = [0u8; 1];
    let waited = extra.read(&mut byte);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "a connection beyond the cap was served: {waited:?}"
    );
    // Established connections are not disturbed.
    for s in &mut held {
        assert_eq!(one(s).status, 200);
    }
    // One closes: the waiting one is taken and its request answered.
    drop(held.pop());
    extra.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let answered = loop {
        if let Some((r, _)) = parse_response(&buf) {
            break r;
        }
        let n = extra.read(&mut chunk).unwrap();
        assert!(n > 0, "closed without an answer");
        buf.extend_from_slice(&chunk[..n]);
    };
    assert_eq!(answered.status, 200);
}

#[test]
fn max_connections_is_checked() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatelet"))
        .args(["check", "-c", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(
                br#"{"version": 3, "extra_config": {"gatelet/server": {"max_connections": 0, "spare": 1}}, "endpoints": []}"#,
            )?;
            child.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("extra_config.gatelet/server.max_connections"), "{text}");
    assert!(text.contains("spare"), "{text}");
}
