//! Slow clients (RELIABILITY.md's slowloris rows), with the server limits shortened through
//! their KrakenD keys so the tests take seconds: hundreds of heads trickling in one byte a
//! second are cut off at the head deadline while probes keep being served quickly; a body that
//! trickles or stops gets 408; a client that stops reading a big answer is dropped at the write
//! stall limit while others are served.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// `true` once the peer has closed `s` (EOF or reset); never blocks.
fn closed(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1024];
    let gone = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue, // a 408 or similar before the close
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    gone
}

#[test]
fn hundreds_of_trickling_heads_are_cut_at_the_deadline_and_probes_stay_fast() {
    const SLOW: usize = 300;
    let head = Duration::from_secs(2);
    let gw = gateway(r#"{"version": 3, "read_header_timeout": "2s", "endpoints": []}"#);
    let mut slow: Vec<(TcpStream, Instant, Option<Duration>)> = (0..SLOW)
        .map(|_| {
            let mut s = connect(gw);
            s.write_all(b"GET /__health HTTP/1.1\r\n").unwrap();
            (s, Instant::now(), None)
        })
        .collect();
    // Probes on fresh connections while the slow ones trickle, from another thread.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                assert_eq!(get(gw, "/__health").status, 200, "a probe failed");
                latencies.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(20)); // the probe's pace
            }
            latencies
        })
    };
    let start = Instant::now();
    let mut byte = 0usize;
    while slow.iter().any(|(_, _, c)| c.is_none()) && start.elapsed() < head * 3 {
        for (s, opened, closed_after) in slow.iter_mut().filter(|(_, _, c)| c.is_none()) {
            // One more header byte; a failed write or a closed socket means the gateway gave up.
            if s.write_all(&[b"X-Slow: abcdefgh\r\n"[byte % 18]]).is_err() || closed(s) {
                *closed_after = Some(opened.elapsed());
            }
        }
        byte += 1;
        std::thread::sleep(Duration::from_secs(1)); // the attacker's pace, not synchronisation
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut latencies = probe.join().expect("probe thread");
    let still_open = slow.iter().filter(|(_, _, c)| c.is_none()).count();
    assert_eq!(
        still_open,
        0,
        "{still_open} of {SLOW} trickling heads still open after {:?}",
        head * 3
    );
    let earliest = slow.iter().filter_map(|(_, _, c)| *c).min().unwrap();
    assert!(
        earliest >= head - Duration::from_millis(100),
        "a slow head was cut after {earliest:?}, before the deadline"
    );
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let worst = *latencies.last().unwrap();
    let latest = slow.iter().filter_map(|(_, _, c)| *c).max().unwrap();
    println!(
        "{SLOW} trickling heads cut after {earliest:?}..{latest:?}; {} probes meanwhile, median {median:?}, worst {worst:?}",
        latencies.len()
    );
    assert!(latencies.len() >= 20, "only {} probes ran", latencies.len());
    assert!(
        median < Duration::from_millis(50),
        "probe median {median:?} with {SLOW} slow heads"
    );
    assert!(
        worst < Duration::from_millis(500),
        "worst probe {worst:?} with {SLOW} slow heads"
    );
}

#[test]
fn a_body_that_trickles_past_read_timeout_or_stops_gets_408_and_a_close() {
    let gw = gateway(
        r#"{"version": 3, "echo_endpoint": true, "read_timeout": "1500ms",
            "extra_config": {"gatelet/server": {"body_idle_timeout": "500ms"}}, "endpoints": []}"#,
    );
    // Stops: three bytes of ten, then silence; cut at the inactivity limit.
    let mut s = connect(gw);
    let t = Instant::now();
    s.write_all(b"POST /__echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let (raw, was_closed) = read_to_close(&mut s);
    let stopped_after = t.elapsed();
    assert_eq!((statuses(&raw).0, was_closed), (vec![408], true));
    assert!(
        stopped_after >= Duration::from_millis(450) && stopped_after < Duration::from_millis(1400),
        "a stopped body was cut after {stopped_after:?}, not at the 500 ms inactivity limit"
    );
    // Trickles: a byte every 200 ms keeps it active, but the whole body must be in by 1.5 s.
    let mut s = connect(gw);
    let t = Instant::now();
    s.write_all(b"POST /__echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .unwrap();
    let mut cut = None;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(200)); // the attacker's pace
        if s.write_all(b"a").is_err() || closed(&mut s) {
            cut = Some(t.elapsed());
            break;
        }
    }
    let cut = cut.expect("a trickling body was never cut off");
    assert!(
        cut >= Duration::from_millis(1400) && cut < Duration::from_millis(3000),
        "a trickling body was cut after {cut:?}, not at the 1.5 s read_timeout"
    );
    // Either way the gateway still serves.
    assert_eq!(get(gw, "/__health").status, 200);
}

#[test]
fn a_client_that_stops_reading_is_dropped_at_the_write_stall_limit() {
    const SIZE: usize = 32 * 1024 * 1024;
    let big = vec![b'x'; SIZE];
    let b = Backend::start(move |_| Reply {
        status: 200,
        headers: vec![("Content-Type".into(), "application/octet-stream".into())],
        body: big.clone(),
        delay: Duration::ZERO,
    });
    let gw = gateway(&format!(
        r#"{{"version": 3, "write_timeout": "1s", "timeout": "30s", "endpoints": [
            {{"endpoint": "/big", "output_encoding": "no-op",
              "backend": [{{"host": ["{}"], "url_pattern": "/", "encoding": "no-op"}}]}}]}}"#,
        b.url()
    ));
    let mut s = connect(gw);
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // Read a little so the answer has started, then stop reading, like a slow-read attacker.
    let mut first = [0u8; 1024];
    s.read_exact(&mut first).unwrap();
    assert!(
        first.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&first[..64])
    );
    // While it stalls, others are served.
    let t = Instant::now();
    assert_eq!(get(gw, "/__health").status, 200);
    assert!(t.elapsed() < Duration::from_millis(500));
    // The attacker reads nothing for three write-stall limits: the shape of the attack, not
    // synchronisation. Had the gateway not given up, reading now would fetch the whole answer.
    std::thread::sleep(Duration::from_secs(3));
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let outcome = s.read_to_end(&mut rest);
    let received = first.len() + rest.len();
    assert!(
        received < SIZE,
        "the whole {SIZE}-byte answer arrived ({received} bytes, {outcome:?}): the stalled write was never cut"
    );
    assert!(
        outcome.is_ok() || outcome.as_ref().is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
        "the connection was not closed: {outcome:?}"
    );
    assert_eq!(get(gw, "/__health").status, 200);
}

#[test]
fn an_idle_keep_alive_connection_closes_at_idle_timeout() {
    let gw = gateway(r#"{"version": 3, "idle_timeout": "500ms", "endpoints": []}"#);
    let mut s = connect(gw);
    s.write_all(b"GET /__health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let t = Instant::now();
    // The answer, then nothing until the gateway closes the idle connection.
    let (raw, was_closed) = read_to_close(&mut s);
    let after = t.elapsed();
    assert_eq!((statuses(&raw).0, was_closed), (vec![200], true));
    assert!(
        after >= Duration::from_millis(450) && after < Duration::from_secs(3),
        "closed after {after:?}, not at the 500 ms idle_timeout"
    );
}
