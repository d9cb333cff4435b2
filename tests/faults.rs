//! Fault injection over real sockets, a real pseudo-terminal and real files.
//!
//! Upstreams: the backends of a single-backend endpoint, a `group` aggregate (one faulty
//! backend beside a healthy one) and a `no-op` pass-through sit behind a [`FaultProxy`] that is
//! switched through latency, blackhole, reset, 1-byte segments, close mid-head, close mid-body
//! and a stall mid-body. Every request must answer within its endpoint deadline (plus a margin)
//! with the right status and `X-Gatelet-Completed`, the gateway must keep serving, and each
//! endpoint must recover as soon as the fault is removed. "Faults survived out of N" is printed.
//!
//! Sensors: a producer writes sequence-numbered frames (`{"seq":N}` lines) into a TCP sensor,
//! a pty serial sensor and a followed file, each an `events` sensor (every frame kept), and
//! injects the faults of RELIABILITY.md's fault matrix between them. Afterwards every frame
//! written outside a fault window must have been recorded exactly once, in order; frames lost
//! inside windows, bad frames and recovery times (fault end → first new frame visible) are
//! printed.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::fault::{Fault, FaultProxy};
use common::*;
use serde_json::{Value, json};

/// [`poll_until`] with 2 ms between tries, to leave the CPU to the gateway (`f` decides, the
/// pause does not).
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let mut first = true;
    poll_until(limit, || {
        if !std::mem::take(&mut first) {
            std::thread::sleep(Duration::from_millis(2));
        }
        f()
    })
}

// ---------------------------------------------------------------------------------------------
// Upstream faults
// ---------------------------------------------------------------------------------------------

/// The endpoints' `timeout`.
const DEADLINE: Duration = Duration::from_millis(400);
/// What an answer may take beyond its deadline on a loaded 2-core machine (debug build).
const MARGIN: Duration = Duration::from_millis(900);
/// Concurrent requests per endpoint in each phase (3 endpoints share the faulty upstream's
/// pool of 16 connections, so a blackhole also fills the pool and makes callers queue).
const CONCURRENT: usize = 6;

const DATA: &str = r#"{"bus":7,"fuel":71.5,"note":"the passenger counter on the rear door reports every second"}"#;
const SIDE: &str = r#"{"route":"M41"}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Single,
    Group,
    NoOp,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Single => "/single",
            Kind::Group => "/group",
            Kind::NoOp => "/noop",
        }
    }
}

/// What a client must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 200, complete, the whole data.
    Ok,
    /// 200, incomplete, only the healthy backend's part (`group`).
    Partial,
    /// This error status, incomplete.
    Status(u16),
    /// No complete response: the pass-through head went out, the body broke, and gatelet
    /// closed the connection (a client sees a short body, never a "complete" one). Or 504, for
    /// the callers that queued for the upstream pool (16 connections) while stalled answers
    /// held every connection until the deadline.
    Cut,
}

/// One client exchange on its own connection.
struct Exchange {
    raw: Vec<u8>,
    closed: bool,
    took: Duration,
}

/// A GET with `Connection: close`, read until gatelet closes the connection or `limit` passes.
fn exchange(gw: SocketAddr, path: &str, limit: Duration) -> Exchange {
    let start = Instant::now();
    let mut s = connect(gw);
    s.set_read_timeout(Some(limit)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let (raw, closed) = read_to_close(&mut s);
    Exchange {
        raw,
        closed,
        took: start.elapsed(),
    }
}

fn check(kind: Kind, expect: Expect, x: &Exchange) -> Result<(), String> {
    let data: Value = serde_json::from_str(DATA).unwrap();
    let side: Value = serde_json::from_str(SIDE).unwrap();
    if x.took > DEADLINE + MARGIN || !x.closed {
        return Err(format!(
            "answered in {:?}, closed: {} (deadline {DEADLINE:?})",
            x.took, x.closed
        ));
    }
    let parsed = parse_response(&x.raw).map(|(r, _)| r);
    let Some(r) = parsed else {
        return match expect {
            Expect::Cut => Ok(()),
            _ => Err(format!("no complete response: {:?}", String::from_utf8_lossy(&x.raw))),
        };
    };
    let completed = r.header("x-gatelet-completed");
    let ok = match (expect, kind) {
        (Expect::Ok, Kind::Single) => r.status == 200 && completed == Some("true") && r.json() == data,
        (Expect::Ok, Kind::Group) => {
            r.status == 200 && completed == Some("true") && r.json() == json!({"faulty": data, "side": side})
        }
        (Expect::Ok, Kind::NoOp) => r.status == 200 && completed == Some("true") && r.body == DATA.as_bytes(),
        (Expect::Partial, _) => r.status == 200 && completed == Some("false") && r.json() == json!({"side": side}),
        (Expect::Status(s), _) => r.status == s && completed == Some("false"),
        (Expect::Cut, _) => r.status == 504 && completed == Some("false"),
    };
    match ok {
        true => Ok(()),
        false => Err(format!(
            "got {} completed={completed:?} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )),
    }
}

/// The length of the backend's response head, as the harness writes it for `DATA`.
fn head_len() -> usize {
    format!(
        "HTTP/1.1 200 X\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\r\n",
        DATA.len()
    )
    .len()
}

struct Case {
    name: &'static str,
    fault: Fault,
    /// Expected for single, group, no-op.
    expect: [Expect; 3],
}

#[test]
fn upstream_faults_answer_on_time_with_the_right_status_and_recover() {
    let backend = Backend::start(|_| Reply::json(DATA));
    let side = Backend::start(|_| Reply::json(SIDE));
    let proxy = FaultProxy::start(backend.addr);
    let gw = gateway(&format!(
        r#"{{"version": 3, "timeout": "{d}ms", "endpoints": [
            {{"endpoint": "/single", "backend": [{{"host": ["{p}"], "url_pattern": "/data"}}]}},
            {{"endpoint": "/group", "backend": [
                {{"host": ["{p}"], "url_pattern": "/data", "group": "faulty"}},
                {{"host": ["{s}"], "url_pattern": "/side", "group": "side"}}]}},
            {{"endpoint": "/noop", "output_encoding": "no-op",
              "backend": [{{"host": ["{p}"], "url_pattern": "/data", "encoding": "no-op"}}]}},
            {{"endpoint": "/direct", "backend": [{{"host": ["{s}"], "url_pattern": "/side"}}]}}]}}"#,
        d = DEADLINE.as_millis(),
        p = proxy.url(),
        s = side.url()
    ));
    // The proxy's byte counts are checked against the answer's length below, so the mid-head
    // and mid-body cuts land where they claim to.
    let head = head_len();
    let answer = head + DATA.len();

    use Expect::*;
    let cases = [
        Case {
            name: "none",
            fault: Fault::None,
            expect: [Ok, Ok, Ok],
        },
        Case {
            name: "latency 60ms per chunk",
            fault: Fault::Latency(Duration::from_millis(60)),
            expect: [Ok, Ok, Ok],
        },
        Case {
            name: "latency 2s per chunk",
            fault: Fault::Latency(Duration::from_secs(2)),
            expect: [Status(504), Partial, Status(504)],
        },
        Case {
            name: "blackhole",
            fault: Fault::Blackhole,
            expect: [Status(504), Partial, Status(504)],
        },
        Case {
            name: "reset",
            fault: Fault::Reset,
            expect: [Status(502), Partial, Status(502)],
        },
        Case {
            name: "1-byte segments",
            fault: Fault::Slice,
            expect: [Ok, Ok, Ok],
        },
        Case {
            name: "close mid-head",
            fault: Fault::CloseAfter(20),
            expect: [Status(502), Partial, Status(502)],
        },
        Case {
            name: "close mid-body",
            fault: Fault::CloseAfter(head + 10),
            expect: [Status(502), Partial, Cut],
        },
        Case {
            name: "stall mid-body",
            fault: Fault::StallAfter(head + 10),
            expect: [Status(504), Partial, Cut],
        },
    ];
    let kinds = [Kind::Single, Kind::Group, Kind::NoOp];
    let mut survived = 0;
    let mut failures = Vec::new();
    let mut report = Vec::new();
    let started = Instant::now();
    for case in &cases {
        let before = proxy.downstream_bytes();
        proxy.set(case.fault);
        // All three endpoints at once, CONCURRENT requests each.
        let results: Vec<(Kind, Exchange)> = std::thread::scope(|scope| {
            let handles: Vec<_> = kinds
                .iter()
                .flat_map(|&k| std::iter::repeat_n(k, CONCURRENT))
                .map(|k| scope.spawn(move || (k, exchange(gw, k.path(), DEADLINE + MARGIN))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        if case.fault == Fault::None {
            assert_eq!(
                proxy.downstream_bytes() - before,
                (answer * 3 * CONCURRENT) as u64,
                "the proxy carried exactly the answers the harness writes"
            );
        }
        let mut problems: [Vec<String>; 3] = Default::default();
        let mut slowest = [Duration::ZERO; 3];
        for (kind, x) in &results {
            let i = kinds.iter().position(|k| k == kind).unwrap();
            slowest[i] = slowest[i].max(x.took);
            if let Err(e) = check(*kind, case.expect[i], x) {
                problems[i].push(e);
            }
        }
        // The gateway keeps serving what does not depend on the faulty upstream.
        let direct = exchange(gw, "/direct", DEADLINE + MARGIN);
        let direct_ok = direct.took <= DEADLINE + MARGIN
            && parse_response(&direct.raw).is_some_and(|(r, _)| {
                r.status == 200
                    && r.header("x-gatelet-completed") == Some("true")
                    && r.json() == json!({"route": "M41"})
            });
        // The fault goes away: every endpoint answers completely again, at once.
        proxy.set(Fault::None);
        let cleared = Instant::now();
        let recovered: Vec<Option<Duration>> = std::thread::scope(|scope| {
            let handles: Vec<_> = kinds
                .iter()
                .map(|&kind| {
                    scope.spawn(move || {
                        poll(Duration::from_secs(5), || {
                            check(kind, Ok, &exchange(gw, kind.path(), DEADLINE + MARGIN))
                                .is_ok()
                                .then(|| cleared.elapsed())
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, kind) in kinds.iter().enumerate() {
            if !direct_ok {
                problems[i].push("/direct did not answer normally during the fault".into());
            }
            if recovered[i].is_none() {
                problems[i].push("did not recover within 5 s of the fault's end".into());
            }
            report.push(format!(
                "{:<24} {:<7} expect {:<12} slowest {:>4} ms, recovered in {:>3} ms{}",
                case.name,
                kind.path(),
                format!("{:?}", case.expect[i]),
                slowest[i].as_millis(),
                recovered[i].map_or(u128::MAX, |d| d.as_millis()),
                if problems[i].is_empty() { "" } else { "  FAILED" }
            ));
            if problems[i].is_empty() {
                survived += 1;
            } else {
                failures.push(format!("{} {}: {}", case.name, kind.path(), problems[i].join("; ")));
            }
        }
    }
    let total = cases.len() * kinds.len();
    println!(
        "upstream faults ({} ms deadline, {CONCURRENT} concurrent requests per endpoint):",
        DEADLINE.as_millis()
    );
    for line in &report {
        println!("  {line}");
    }
    println!(
        "upstream faults survived: {survived} out of {total} in {:?}; proxy connections: {}",
        started.elapsed(),
        proxy.accepted()
    );
    assert!(
        failures.is_empty(),
        "{survived}/{total} survived:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_pass_through_body_that_stalls_is_cut_at_the_deadline_and_frees_its_upstream_connection() {
    let backend = Backend::start(|_| Reply::json(DATA));
    let proxy = FaultProxy::start(backend.addr);
    let gw = gateway(&format!(
        r#"{{"version": 3, "endpoints": [{{"endpoint": "/noop", "timeout": "{}ms", "output_encoding": "no-op",
            "backend": [{{"host": ["{}"], "url_pattern": "/data", "encoding": "no-op"}}]}}]}}"#,
        DEADLINE.as_millis(),
        proxy.url()
    ));
    // The head and half the body, then a link that says nothing more. One caller more than
    // the pool's 16 connections. Before the fix a stalled stream held its client connection and
    // one upstream connection for as long as the client kept waiting (for ever, for a client
    // without a timeout of its own), and while 16 were held every other caller got 504.
    proxy.set(Fault::StallAfter(head_len() + DATA.len() / 2));
    let cut: Vec<Exchange> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..17)
            .map(|_| scope.spawn(|| exchange(gw, "/noop", DEADLINE + MARGIN)))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for x in &cut {
        check(Kind::NoOp, Expect::Cut, x).unwrap();
    }
    // 16 got the 200 head and half the body, then a closed connection; the 17th waited for a
    // pooled connection: 504 at its deadline, or a cut stream of its own if a stalled one was
    // discarded before that (callers start a few ms apart on a loaded machine).
    let short = cut.iter().filter(|x| x.raw.starts_with(b"HTTP/1.1 200")).count();
    assert!(short >= 16, "200 heads with a short body: {short} of 17");
    // The stalled upstream connections were discarded, not pooled: the proxy carries none.
    assert!(
        poll(Duration::from_secs(5), || (proxy.open() == 0).then_some(())).is_some(),
        "{} still open",
        proxy.open()
    );
    proxy.set(Fault::None);
    check(Kind::NoOp, Expect::Ok, &exchange(gw, "/noop", DEADLINE + MARGIN)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Sensor faults
// ---------------------------------------------------------------------------------------------

/// A scratch directory for one test, removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("gatelet-faults-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reconnect backoff of the stream sources: short, so recoveries are quick to measure.
const BACKOFF: &str = r#""reconnect_min": "20ms", "reconnect_max": "100ms""#;

/// One `events` sensor (`name`, read at `/ev/<name>`) and the endpoint that reads it.
fn event_sensor(name: &str, source: &str) -> String {
    format!(
        r#"{{"version": 3, "extra_config": {{"gatelet/sensors": {{"{name}": {{"decode": "json-lines",
            "events": {{"capacity": 4096}}, {source}}}}}}},
          "endpoints": [{{"endpoint": "/ev/{name}", "input_query_strings": ["since"],
            "backend": [{{"extra_config": {{"gatelet/sensor": {{"name": "{name}"}}}}}}]}}]}}"#
    )
}

/// What a producer wrote into one event sensor and what gatelet recorded of it.
struct Ledger {
    gw: SocketAddr,
    name: &'static str,
    /// The next frame's sequence number.
    next: u64,
    written: Vec<u64>,
    /// Frames written inside a fault window: the fault itself may destroy them.
    window: BTreeSet<u64>,
    /// `seq` of every frame gatelet served, in the order of its event ring.
    recorded: Vec<u64>,
    /// gatelet's `next` event cursor.
    cursor: u64,
    /// Bad frames injected (each must be counted in `frames_bad`).
    bad: u64,
    /// Fault name, frames in its window, recovery (fault end → first new frame visible).
    faults: Vec<(&'static str, usize, Duration)>,
}

impl Ledger {
    fn new(gw: SocketAddr, name: &'static str) -> Ledger {
        Ledger {
            gw,
            name,
            next: 1,
            written: Vec::new(),
            window: BTreeSet::new(),
            recorded: Vec::new(),
            cursor: 1,
            bad: 0,
            faults: Vec::new(),
        }
    }

    /// The next frame, one line.
    fn frame(&mut self) -> Vec<u8> {
        let seq = self.next;
        self.next += 1;
        self.written.push(seq);
        format!("{{\"seq\":{seq}}}\n").into_bytes()
    }

    /// The next frame, which the fault about to happen may destroy.
    fn doomed_frame(&mut self) -> Vec<u8> {
        let f = self.frame();
        self.window.insert(self.next - 1);
        f
    }

    /// Reads the events gatelet recorded since the last look (none while the source is down:
    /// an event sensor then answers 503).
    fn refresh(&mut self) {
        let r = get(self.gw, &format!("/ev/{}?since={}", self.name, self.cursor));
        if r.status != 200 {
            return;
        }
        let doc = r.json();
        assert_eq!(doc["lost"], 0, "the ring is large enough to keep everything: {doc}");
        for e in doc["events"].as_array().unwrap() {
            let seq = e["value"]["seq"].as_u64();
            self.recorded
                .push(seq.unwrap_or_else(|| panic!("an event that is not a frame of ours: {e}")));
        }
        self.cursor = doc["next"].as_u64().unwrap();
    }

    fn highest(&self) -> u64 {
        self.recorded.iter().copied().max().unwrap_or(0)
    }

    /// Waits until the frame `seq` (or a later one) is visible; how long since `since`.
    fn wait_for(&mut self, seq: u64, since: Instant) -> Duration {
        poll(Duration::from_secs(10), || {
            self.refresh();
            (self.highest() >= seq).then(|| since.elapsed())
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: frame {seq} never became visible; recorded {:?}",
                self.name, self.recorded
            )
        })
    }

    /// Writes `n` frames through `write`.
    fn write(&mut self, n: usize, mut write: impl FnMut(&[u8])) {
        for _ in 0..n {
            let f = self.frame();
            write(&f);
        }
    }

    /// Writes `n` frames through `write` and waits until the last is visible.
    fn burst(&mut self, n: usize, write: impl FnMut(&[u8])) {
        self.write(n, write);
        self.wait_for(self.next - 1, Instant::now());
    }

    /// Every frame written but not yet visible joins the fault window: for faults that destroy
    /// what the source has buffered and gatelet has not read yet (a tty hang-up flushes its
    /// input, a truncation discards the unread tail, a reset its receive queue).
    fn unread_joins_the_window(&mut self) {
        self.refresh();
        let seen = self.highest();
        self.window.extend(self.written.iter().filter(|&&s| s > seen));
    }

    /// After a fault ending at `ended`: `n` frames, the recovery time to the first of them.
    fn recover(
        &mut self,
        fault: &'static str,
        window_before: usize,
        ended: Instant,
        n: usize,
        write: impl FnMut(&[u8]),
    ) {
        let first = self.next;
        self.write(n, write);
        let took = self.wait_for(first, ended);
        self.wait_for(self.next - 1, Instant::now());
        self.faults.push((fault, self.window.len() - window_before, took));
    }

    fn health(&self) -> Value {
        get(self.gw, "/__health").json()["agents"][self.name].clone()
    }

    /// Checks and prints the outcome; panics if a frame was lost outside the fault windows,
    /// recorded twice or out of order, or if a bad frame went uncounted.
    fn finish(mut self) {
        self.refresh();
        let all = get(self.gw, &format!("/ev/{}?since=1", self.name)).json();
        assert_eq!(all["events"].as_array().unwrap().len(), self.recorded.len(), "{all}");
        assert!(
            self.recorded.windows(2).all(|w| w[0] < w[1]),
            "{}: frames recorded twice or out of order: {:?}",
            self.name,
            self.recorded
        );
        let recorded: BTreeSet<u64> = self.recorded.iter().copied().collect();
        let lost_outside: Vec<u64> = self
            .written
            .iter()
            .copied()
            .filter(|s| !recorded.contains(s) && !self.window.contains(s))
            .collect();
        let lost_inside = self.window.iter().filter(|s| !recorded.contains(s)).count();
        let health = self.health();
        println!(
            "sensor {}: {} frames written, {} recorded, {} lost outside fault windows, {lost_inside} of {} lost inside them, \
             frames_bad {} (injected {}), reconnects {}",
            self.name,
            self.written.len(),
            recorded.len(),
            lost_outside.len(),
            self.window.len(),
            health["frames_bad"],
            self.bad,
            health["reconnects"]
        );
        for (fault, window, took) in &self.faults {
            println!(
                "  {:<34} window {window:>2} frames, recovery {:>4} ms",
                fault,
                took.as_millis()
            );
        }
        assert!(
            lost_outside.is_empty(),
            "{}: frames lost outside the fault windows: {lost_outside:?}",
            self.name
        );
        assert_eq!(
            health["frames_bad"], self.bad,
            "{}: every bad frame counted: {health}",
            self.name
        );
    }
}

/// Waits until `/__health` says what `what` wants of this sensor.
fn wait_health(ledger: &Ledger, what: impl Fn(&Value) -> bool) -> Value {
    poll(Duration::from_secs(10), || {
        let h = ledger.health();
        what(&h).then_some(h)
    })
    .unwrap_or_else(|| panic!("{}: health never matched; last {}", ledger.name, ledger.health()))
}

/// A frame cut in two: the head goes out before a fault, the frame is in its window.
fn half(frame: &[u8]) -> &[u8] {
    &frame[..frame.len() / 2]
}

/// Accepts the sensor's connection within the test deadline.
fn accept(listener: &TcpListener) -> TcpStream {
    let s =
        poll(Duration::from_secs(10), || listener.accept().ok().map(|(s, _)| s)).expect("the sensor never connected");
    s.set_nonblocking(false).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

#[test]
fn a_tcp_sensor_loses_no_frame_outside_its_faults() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    // max_age 400ms: a peer silent for 800ms is taken for gone and reconnected.
    let gw = gateway(&event_sensor(
        "tcp",
        &format!(
            r#"{BACKOFF}, "max_age": "400ms", "tcp": {{"address": "{}"}}"#,
            listener.local_addr().unwrap()
        ),
    ));
    let mut ledger = Ledger::new(gw, "tcp");
    let mut peer = accept(&listener);
    let send = |peer: &mut TcpStream, bytes: &[u8]| peer.write_all(bytes).unwrap();
    ledger.burst(20, |f| send(&mut peer, f));

    // One byte per segment.
    ledger.burst(10, |f| f.iter().for_each(|b| send(&mut peer, &[*b])));

    // Line noise on a line of its own: counted, nothing lost.
    let w = ledger.window.len();
    send(&mut peer, b"\x00\xff\x13NOISE{\n");
    ledger.bad += 1;
    ledger.recover("garbage line", w, Instant::now(), 5, |f| send(&mut peer, f));

    // Noise glued to a frame: that frame is the window.
    let w = ledger.window.len();
    let doomed = ledger.doomed_frame();
    send(&mut peer, &[b"\x13\x00junk".as_slice(), &doomed].concat());
    ledger.bad += 1;
    ledger.recover("garbage glued to a frame", w, Instant::now(), 5, |f| send(&mut peer, f));

    // 1 MiB without a newline: dropped as one over-long frame with bounded memory.
    let w = ledger.window.len();
    send(&mut peer, &vec![b'x'; 1 << 20]);
    send(&mut peer, b"\n");
    ledger.bad += 1;
    ledger.recover("1 MiB without a newline", w, Instant::now(), 5, |f| send(&mut peer, f));

    // The peer closes mid-line (FIN): the half line is not a frame, everything before it is.
    let w = ledger.window.len();
    ledger.write(5, |f| send(&mut peer, f));
    let doomed = ledger.doomed_frame();
    send(&mut peer, half(&doomed));
    drop(peer);
    let ended = Instant::now();
    let mut peer = accept(&listener);
    ledger.recover("peer closes mid-line", w, ended, 5, |f| send(&mut peer, f));

    // The peer resets (RST): what gatelet had not read yet may go with it.
    let w = ledger.window.len();
    ledger.write(5, |f| send(&mut peer, f));
    ledger.unread_joins_the_window();
    rustix::net::sockopt::set_socket_linger(&peer, Some(Duration::ZERO)).unwrap();
    drop(peer);
    let ended = Instant::now();
    let mut peer = accept(&listener);
    ledger.recover("peer resets", w, ended, 5, |f| send(&mut peer, f));

    // A silent peer (half-open): gatelet gives up on it after 2 × max_age and reconnects.
    let w = ledger.window.len();
    let silent = Instant::now();
    let mut fresh = accept(&listener);
    let detected = silent.elapsed();
    drop(peer);
    ledger.recover("silent peer, after reconnecting", w, Instant::now(), 5, |f| {
        send(&mut fresh, f)
    });
    println!(
        "tcp: a silent peer was replaced after {} ms (2 × max_age = 800 ms)",
        detected.as_millis()
    );
    // 2 × max_age from gatelet's last read, which came a few ms before `silent`.
    assert!(
        (Duration::from_millis(700)..Duration::from_secs(3)).contains(&detected),
        "reconnected after {detected:?}"
    );

    ledger.burst(20, |f| send(&mut fresh, f));
    let reconnects = ledger.health()["reconnects"].clone();
    assert_eq!(reconnects, 3, "closed, reset, silent");
    ledger.finish();
}

/// A pseudo-terminal: the master is the device end the test drives.
struct Pty {
    master: std::os::fd::OwnedFd,
    slave: std::path::PathBuf,
}

impl Pty {
    fn open() -> Pty {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let slave = ptsname(&master, Vec::new()).unwrap();
        Pty {
            master,
            slave: slave.to_str().unwrap().into(),
        }
    }

    fn send(&self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = rustix::io::write(&self.master, bytes).unwrap();
            bytes = &bytes[n..];
        }
    }
}

#[test]
fn a_serial_sensor_loses_no_frame_outside_its_faults() {
    let dir = Scratch::new("serial");
    // A udev-style symlink: replugging re-points it.
    let device = dir.0.join("ttyUSB-gps");
    let pty = Pty::open();
    std::os::unix::fs::symlink(&pty.slave, &device).unwrap();
    let gw = gateway(&event_sensor(
        "serial",
        &format!(
            r#"{BACKOFF}, "serial": {{"device": "{}", "baud": 115200}}"#,
            device.display()
        ),
    ));
    let mut ledger = Ledger::new(gw, "serial");
    wait_health(&ledger, |h| h["status"] == "ok");
    ledger.burst(20, |f| pty.send(f));
    ledger.burst(10, |f| f.iter().for_each(|b| pty.send(&[*b])));

    let w = ledger.window.len();
    pty.send(b"\x00\xff\x13NOISE\r\n");
    ledger.bad += 1;
    ledger.recover("garbage line", w, Instant::now(), 5, |f| pty.send(f));

    let w = ledger.window.len();
    let doomed = ledger.doomed_frame();
    pty.send(&[b"\xfe\x13".as_slice(), &doomed].concat());
    ledger.bad += 1;
    ledger.recover("garbage glued to a frame", w, Instant::now(), 5, |f| pty.send(f));

    // Unplugged mid-line: the symlink goes, the tty hangs up (and flushes what gatelet had not
    // read), reopening fails for a while, then a new tty appears behind the same name.
    let w = ledger.window.len();
    ledger.write(5, |f| pty.send(f));
    let doomed = ledger.doomed_frame();
    pty.send(half(&doomed));
    ledger.unread_joins_the_window();
    std::fs::remove_file(&device).unwrap();
    drop(pty);
    wait_health(&ledger, |h| h["status"] == "down");
    wait_health(&ledger, |h| {
        h["last_error"].as_str().is_some_and(|e| e.contains("No such file"))
    });
    let pty = Pty::open();
    std::os::unix::fs::symlink(&pty.slave, &device).unwrap();
    let ended = Instant::now();
    wait_health(&ledger, |h| h["status"] == "ok");
    ledger.recover("hang-up mid-line, gone, back", w, ended, 5, |f| pty.send(f));

    ledger.burst(20, |f| pty.send(f));
    assert_eq!(ledger.health()["reconnects"], 1);
    ledger.finish();
}

/// A new file at `path`, opened for appending (a writer after a rotation).
fn create(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .unwrap()
}

#[test]
fn a_followed_file_loses_no_frame_outside_its_faults() {
    let dir = Scratch::new("file");
    let path = dir.0.join("feed.log");
    std::fs::write(&path, "").unwrap();
    let gw = gateway(&event_sensor(
        "file",
        &format!(
            r#""file": {{"path": "{}", "mode": "follow", "interval": "20ms"}}"#,
            path.display()
        ),
    ));
    let mut out = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    let mut ledger = Ledger::new(gw, "file");
    wait_health(&ledger, |h| h["status"] == "ok");
    ledger.burst(20, |f| out.write_all(f).unwrap());

    // A writer that pauses mid-line across several reads: the partial line is held.
    let w = ledger.window.len();
    let f = ledger.frame();
    out.write_all(half(&f)).unwrap();
    std::thread::sleep(Duration::from_millis(60)); // the fault: three intervals mid-line
    out.write_all(&f[f.len() / 2..]).unwrap();
    ledger.recover("partial last line", w, Instant::now(), 5, |f| out.write_all(f).unwrap());

    let w = ledger.window.len();
    out.write_all(b"\x00\xff\x13NOISE{\n").unwrap();
    ledger.bad += 1;
    ledger.recover("garbage line", w, Instant::now(), 5, |f| out.write_all(f).unwrap());

    // Rotation (rename + create): the old file is finished, the new one read from its start.
    let w = ledger.window.len();
    ledger.write(5, |f| out.write_all(f).unwrap());
    std::fs::rename(&path, dir.0.join("feed.log.1")).unwrap();
    let mut out = create(&path);
    let ended = Instant::now();
    ledger.recover("rotation (rename + create)", w, ended, 5, |f| out.write_all(f).unwrap());

    // copytruncate: the tail gatelet had not read when the file was emptied goes with it.
    // (The file keeps more bytes than the frame written after the truncation: a truncation
    // refilled past the old size between two reads cannot be seen, as with `tail -F`.)
    let w = ledger.window.len();
    ledger.write(5, |f| out.write_all(f).unwrap());
    std::fs::copy(&path, dir.0.join("feed.log.2")).unwrap();
    ledger.unread_joins_the_window();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let ended = Instant::now();
    ledger.recover("copytruncate", w, ended, 1, |f| out.write_all(f).unwrap());
    ledger.burst(10, |f| out.write_all(f).unwrap());

    // Deleted right after a write, missing for a while (down), then created again: what the
    // deleted file still held is read while the name is missing, not when a new file appears.
    let w = ledger.window.len();
    let frames_ok = ledger.health()["frames_ok"].as_u64().unwrap();
    ledger.write(5, |f| out.write_all(f).unwrap());
    std::fs::remove_file(&path).unwrap();
    wait_health(&ledger, |h| h["status"] == "down");
    wait_health(&ledger, |h| h["frames_ok"] == frames_ok + 5);
    let mut out = create(&path);
    let ended = Instant::now();
    ledger.recover("deleted, missing, created again", w, ended, 5, |f| {
        out.write_all(f).unwrap()
    });

    ledger.burst(20, |f| out.write_all(f).unwrap());
    ledger.finish();
}
