//! The outbox and the inbox end to end, with real processes, files and sockets: a bus process
//! SIGKILLed at random moments while it takes events (every event answered 201 reaches the
//! central exactly once, in order); delivery through a 4G-like link (resets, blackhole, 1-byte
//! slices, stalls, the central down for seconds); a full disk (losses counted exactly and
//! delivered as lost records); config errors with path and line:column.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::fault::{Fault, FaultProxy};
use common::*;
use serde_json::{Value, json};

/// A scratch directory, removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("gatelet-outbox-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// A gatelet process; killed (SIGKILL) when dropped.
struct Proc {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Proc {
    /// Starts `gatelet run` on `config` (written to `file`) and waits for its listening line.
    fn start(file: &Path, config: &str) -> Proc {
        std::fs::write(file, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatelet"))
            .args(["run", "-c"])
            .arg(file)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = lines.find_map(|l| l.ok()?.split("listening on ").nth(1)?.split(' ').next()?.parse().ok());
        let Some(addr) = addr else {
            child.kill().ok();
            child.wait().ok();
            panic!("gatelet did not start");
        };
        std::thread::spawn(move || lines.for_each(drop));
        Proc { child, addr }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// One POST on a fresh connection; `None` when the exchange breaks (the process was killed).
fn try_post(addr: SocketAddr, target: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: bus\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let (r, _) = parse_response(&raw)?;
    Some((r.status, r.body))
}

fn central_config(dir: &Path, port: u16, max_bytes: u64) -> String {
    json!({
        "version": 3, "listen_ip": "127.0.0.1", "port": port,
        "extra_config": {"gatelet/inbox": {"dir": dir.join("inbox"), "max_bytes": max_bytes}},
        "endpoints": [
            {"endpoint": "/inbox", "method": "POST", "backend": [{"extra_config": {"gatelet/inbox": {}}}]},
            {"endpoint": "/inbox", "method": "GET", "backend": [{"extra_config": {"gatelet/inbox": {}}}]}
        ]
    })
    .to_string()
}

/// A bus config: its outbox in `dir`, delivering to `central` (if any).
fn bus_config(dir: &Path, central: Option<String>, outbox: Value) -> String {
    let mut o = json!({"dir": dir.join("outbox"), "bus": "bus-7", "critical": ["alarm"]});
    for (k, v) in outbox.as_object().unwrap() {
        o[k] = v.clone();
    }
    if let Some(url) = central {
        o["deliver"] = json!({"url": format!("{url}/inbox"), "timeout": "1s", "backoff_initial": "20ms",
                              "backoff_max": "300ms", "batch": 50});
    }
    json!({
        "version": 3, "listen_ip": "127.0.0.1", "port": 0,
        "extra_config": {"gatelet/outbox": o},
        "endpoints": [{"endpoint": "/events", "method": "POST", "backend": [{"extra_config": {"gatelet/outbox": {}}}]}]
    })
    .to_string()
}

/// Everything the central holds, paging with `?since=` (small pages, to page for real).
fn consume(central: SocketAddr) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    let mut since = 0;
    loop {
        let mut s = TcpStream::connect(central).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let req = format!("GET /inbox?since={since}&limit=97 HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let (r, _) = parse_response(&raw)?;
        if r.status != 200 {
            return None;
        }
        let doc = r.json();
        let page = doc["events"].as_array()?.clone();
        if page.is_empty() {
            return Some(out);
        }
        since = doc["next"].as_u64()?;
        out.extend(page);
    }
}

/// The (poster, n) of each event the central holds, in order, checking that bus ids grow.
fn received(events: &[Value]) -> Vec<(u64, u64)> {
    let mut last_id = 0;
    let mut out = Vec::new();
    for e in events {
        if e.get("dropped").is_some() {
            continue;
        }
        assert_eq!(e["bus"], "bus-7");
        let id = e["id"].as_u64().unwrap();
        assert!(id > last_id, "bus ids out of order: {id} after {last_id}");
        last_id = id;
        if let Some(ev) = e.get("event") {
            out.push((ev["p"].as_u64().unwrap(), ev["n"].as_u64().unwrap()));
        }
    }
    out
}

/// Every acknowledged event is there exactly once; nothing is there twice; per poster, the
/// order is the order of posting.
fn check_exactly_once(got: &[(u64, u64)], acked: &HashSet<(u64, u64)>) {
    let mut seen = HashSet::new();
    let mut last: HashMap<u64, u64> = HashMap::new();
    for &(p, n) in got {
        assert!(seen.insert((p, n)), "event {p}/{n} delivered twice");
        let before = last.insert(p, n);
        assert!(before.is_none_or(|b| b < n), "poster {p}: {n} after {before:?}");
    }
    let missing: Vec<_> = acked.iter().filter(|k| !seen.contains(k)).take(10).collect();
    assert!(missing.is_empty(), "acknowledged but not delivered: {missing:?}");
}

/// Polls the central until every acknowledged event is there (or the deadline).
fn wait_all(central: SocketAddr, acked: &HashSet<(u64, u64)>, limit: Duration) -> Vec<(u64, u64)> {
    let mut last = Vec::new();
    let done = poll_until(limit, || {
        let events = consume(central)?;
        last = received(&events);
        let have: HashSet<_> = last.iter().copied().collect();
        if acked.iter().all(|k| have.contains(k)) {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(50));
        None
    });
    if done.is_none() {
        let have: HashSet<_> = last.iter().copied().collect();
        let missing = acked.iter().filter(|k| !have.contains(k)).count();
        panic!(
            "{missing} of {} acknowledged events not at the central in time",
            acked.len()
        );
    }
    last
}

/// Prints what it says when the test fails (dropped while panicking).
struct Show(Box<dyn Fn() -> String>);

impl Drop for Show {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", (self.0)());
        }
    }
}

fn event(p: u64, n: u64) -> Vec<u8> {
    let kind = if n.is_multiple_of(7) { "alarm" } else { "tick" };
    json!({"type": kind, "p": p, "n": n, "pad": "x".repeat(40)})
        .to_string()
        .into_bytes()
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_event_and_duplicates_none() {
    let scratch = Scratch::new("crash");
    let central = gateway(&central_config(&scratch.0, 0, 64 << 20));
    let config = bus_config(
        &scratch.0,
        Some(format!("http://{central}")),
        json!({"sync_window": "3ms"}),
    );
    let file = scratch.0.join("bus.json");
    let from_env = std::env::var("GATELET_CRASH_CYCLES").ok().and_then(|v| v.parse().ok());
    let (cycles, budget) = match from_env {
        Some(n) => (n, Duration::MAX),
        None => (1000, Duration::from_secs(20)),
    };
    let started = Instant::now();
    let mut acked: HashSet<(u64, u64)> = HashSet::new();
    let mut next = [0u64; 3];
    let mut rng = fastrand::Rng::with_seed(0x5eed ^ u64::from(std::process::id()));
    let mut done = 0;
    while done < cycles && started.elapsed() < budget {
        let bus = Proc::start(&file, &config);
        let stop = Arc::new(AtomicBool::new(false));
        let posters: Vec<_> = (0..3u64)
            .map(|p| {
                let (stop, addr, mut n) = (stop.clone(), bus.addr, next[p as usize]);
                std::thread::spawn(move || {
                    let mut ok = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        match try_post(addr, "/events", &event(p, n)) {
                            Some((201, _)) => ok.push(n),
                            Some((status, body)) => panic!("{status}: {}", String::from_utf8_lossy(&body)),
                            None => break,
                        }
                    }
                    (ok, n)
                })
            })
            .collect();
        // The fault's timing, not a synchronisation: the process dies wherever it is.
        std::thread::sleep(Duration::from_micros(rng.u64(0..25_000)));
        let mut bus = bus;
        bus.child.kill().unwrap();
        bus.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for (p, t) in posters.into_iter().enumerate() {
            let (ok, n) = t.join().unwrap();
            acked.extend(ok.into_iter().map(|n| (p as u64, n)));
            next[p] = n;
        }
        done += 1;
    }
    eprintln!("{done} crash cycles, {} events acknowledged", acked.len());
    assert!(done >= 20, "only {done} cycles ran");
    assert!(acked.len() > done, "only {} events were acknowledged", acked.len());
    // Up once more, for as long as delivery takes.
    let bus = Proc::start(&file, &config);
    let b = bus.addr;
    let _show = Show(Box::new(move || format!("bus health: {}", get(b, "/__health").text())));
    let got = wait_all(central, &acked, Duration::from_secs(60));
    check_exactly_once(&got, &acked);
    let health = poll_until(Duration::from_secs(10), || {
        let h = get(bus.addr, "/__health").json();
        (h["outbox"]["backlog"] == 0).then_some(h)
    })
    .expect("the backlog does not drain");
    assert_eq!(health["outbox"]["lost"], 0, "{health}");
    assert!(health["outbox"]["last_success"].is_string(), "{health}");
}

#[test]
fn a_4g_link_resets_blackholes_slices_stalls_and_a_central_down_lose_and_repeat_nothing() {
    let scratch = Scratch::new("4g");
    let port = refused_addr().port();
    let central_file = scratch.0.join("central.json");
    let central_cfg = central_config(&scratch.0, port, 64 << 20);
    let mut central = Some(Proc::start(&central_file, &central_cfg));
    let central_addr = central.as_ref().unwrap().addr;
    let proxy = FaultProxy::start(central_addr);
    let bus = gateway(&bus_config(
        &scratch.0,
        Some(proxy.url()),
        json!({"sync_window": "20ms"}),
    ));
    let mut acked = HashSet::new();
    let mut n = 0;
    let mut post_for = |count: u64, gap: Duration, acked: &mut HashSet<(u64, u64)>| {
        for _ in 0..count {
            n += 1;
            let (status, body) = try_post(bus, "/events", &event(0, n)).expect("the bus answers");
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
            acked.insert((0, n));
            std::thread::sleep(gap);
        }
    };
    let ms = Duration::from_millis;
    post_for(30, ms(5), &mut acked);
    for fault in [
        Fault::Reset,
        Fault::Blackhole,
        Fault::Slice,
        Fault::StallAfter(20),
        Fault::CloseAfter(3),
        Fault::Latency(ms(30)),
    ] {
        proxy.set(fault);
        post_for(40, ms(30), &mut acked);
        proxy.set(Fault::None);
        post_for(5, ms(5), &mut acked);
    }
    // The central down for a while (2.4 s here; GATELET_CENTRAL_DOWN_SECS for minutes, as
    // scripts/outbox-soak.sh does): the bus keeps taking events.
    let down = std::env::var("GATELET_CENTRAL_DOWN_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(60, |secs| secs * 25);
    drop(central.take());
    post_for(down, ms(40), &mut acked);
    central = Some(Proc::start(&central_file, &central_cfg));
    post_for(20, ms(5), &mut acked);
    let got = wait_all(central_addr, &acked, Duration::from_secs(60));
    check_exactly_once(&got, &acked);
    assert_eq!(
        got.len(),
        acked.len(),
        "every event was acknowledged, so every one is there"
    );
    let h = get(bus, "/__health").json();
    assert_eq!(h["outbox"]["lost"], 0, "{h}");
    assert!(
        h["outbox"]["last_error"].is_string(),
        "the faults made deliveries fail: {h}"
    );
    assert!(proxy.accepted() > 3, "delivery went through the proxy");
    drop(central);
}

#[test]
fn a_full_outbox_counts_every_loss_and_delivers_it_as_lost_records() {
    let scratch = Scratch::new("full");
    let port = refused_addr().port();
    let central_url = format!("http://127.0.0.1:{port}");
    let bus = gateway(&bus_config(
        &scratch.0,
        Some(central_url),
        json!({"max_bytes": 16384, "max_events": 1000, "sync_window": "1ms"}),
    ));
    // The central is not up: everything stays in the outbox, which overflows.
    let (mut created, mut refused) = (0u64, 0u64);
    let mut critical_ok = HashSet::new();
    for n in 1..=400 {
        match try_post(bus, "/events", &event(0, n)).expect("the bus answers") {
            (201, _) => {
                created += 1;
                if n.is_multiple_of(7) {
                    critical_ok.insert((0, n));
                }
            }
            (507, _) => refused += 1,
            (s, b) => panic!("{s}: {}", String::from_utf8_lossy(&b)),
        }
    }
    let health = get(bus, "/__health").json();
    let lost = health["outbox"]["lost"].as_u64().unwrap();
    assert!(lost > 0, "16 KiB cannot hold 400 events: {health}");
    // Now the central comes up and everything kept is delivered.
    let scratch_c = Scratch::new("full-central");
    let central = Proc::start(
        &scratch_c.0.join("c.json"),
        &central_config(&scratch_c.0, port, 64 << 20),
    );
    let mut h = Value::Null;
    poll_until(Duration::from_secs(30), || {
        h = get(bus, "/__health").json();
        (h["outbox"]["backlog"] == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("the backlog does not drain: {h}"));
    let events = consume(central.addr).expect("the central answers");
    let mut lost_counted = 0;
    let mut delivered = 0;
    let mut covered: Vec<(u64, u64)> = Vec::new();
    for e in &events {
        if let Some(l) = e.get("lost") {
            lost_counted += l["count"].as_u64().unwrap();
            covered.push((l["first"].as_u64().unwrap(), l["last"].as_u64().unwrap()));
        } else if e.get("event").is_some() {
            delivered += 1;
        }
    }
    let health = get(bus, "/__health").json();
    assert_eq!(health["outbox"]["lost"].as_u64().unwrap(), lost_counted, "{health}");
    assert_eq!(
        delivered + lost_counted,
        created + refused,
        "every POST is delivered or counted lost ({created} created, {refused} refused, {delivered} delivered, {lost_counted} lost)"
    );
    // Critical events are never dropped for room.
    let got: HashSet<_> = received(&events).into_iter().collect();
    for k in &critical_ok {
        assert!(got.contains(k), "critical event {k:?} was dropped");
    }
    for (first, last) in covered {
        assert!(first <= last);
    }
}

#[test]
fn bad_outbox_and_inbox_keys_are_errors_with_path_and_position() {
    let text = r#"{
  "version": 3,
  "extra_config": {
    "gatelet/outbox": {"dir": "/tmp/x", "bus": "b", "sync_window": "fast"},
    "gatelet/inbox": {"dir": "/tmp/y", "high_water": 1}
  }
}"#;
    let errors = gatelet::config::parse("t.json", text).unwrap_err();
    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("t.json:4:68: extra_config.gatelet/outbox.sync_window:")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("t.json:5:40: extra_config.gatelet/inbox.high_water: unknown key")),
        "{lines:?}"
    );
}

#[test]
fn the_inbox_binds_a_tokens_sub_to_the_batch_bus_and_drops_repeats() {
    use common::jwt::{b64url, hs256};
    let scratch = Scratch::new("jwt");
    let secret = b"inbox-secret-0123456789abcdef-0123456789";
    let jwks = scratch.0.join("keys.json");
    std::fs::write(
        &jwks,
        json!({"keys": [{"kty": "oct", "kid": "k", "alg": "HS256", "k": b64url(secret)}]}).to_string(),
    )
    .unwrap();
    let auth = json!({"auth/validator": {"alg": "HS256", "jwk_local_path": jwks}});
    let central = gateway(
        &json!({"version": 3, "extra_config": {"gatelet/jwt": {"unsynced_clock": "accept"},
                "gatelet/inbox": {"dir": scratch.0.join("inbox")}},
            "endpoints": [
                {"endpoint": "/inbox", "method": "POST", "extra_config": auth,
                 "backend": [{"extra_config": {"gatelet/inbox": {}}}]},
                {"endpoint": "/inbox", "method": "GET", "backend": [{"extra_config": {"gatelet/inbox": {}}}]}]})
        .to_string(),
    );
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = |sub: &str| {
        hs256(
            secret,
            &json!({"alg": "HS256", "kid": "k"}),
            &json!({"sub": sub, "exp": exp}),
        )
    };
    let batch = |bus: &str, ids: &[u64]| {
        let events: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "ts": 1, "critical": false, "event": {"n": id}}))
            .collect();
        json!({"bus": bus, "events": events}).to_string()
    };
    let post = |t: &str, body: &str| {
        request(
            central,
            "POST",
            "/inbox",
            &[&format!("Authorization: Bearer {t}")],
            body.as_bytes(),
        )
    };
    let forged = post(&token("bus-7"), &batch("bus-8", &[1]));
    assert_eq!(forged.status, 403, "{}", forged.text());
    assert_eq!(post("nonsense", &batch("bus-7", &[1])).status, 401);
    let r = post(&token("bus-7"), &batch("bus-7", &[1, 2, 3]));
    assert_eq!((r.status, r.json()["acked"].clone()), (200, json!(3)), "{}", r.text());
    // A retry that overlaps what is stored: only the new ids are kept.
    let r = post(&token("bus-7"), &batch("bus-7", &[2, 3, 4]));
    assert_eq!(r.json()["acked"], 4);
    let bad = post(&token("bus-7"), r#"{"bus": "bus-7", "events": [{"id": 9}]}"#);
    assert_eq!(bad.status, 400, "{}", bad.text());
    let events = consume(central).unwrap();
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    // An event too large for the journal is kept as a marker, not retried for ever.
    let huge = json!({"bus": "bus-7", "events": [{"id": 5, "event": {"blob": "x".repeat(70_000)}}]}).to_string();
    let r = post(&token("bus-7"), &huge);
    assert_eq!((r.status, r.json()["acked"].clone()), (200, json!(5)), "{}", r.text());
    let events = consume(central).unwrap();
    assert_eq!(
        events[4]["too_large"].as_u64().map(|n| n > 70_000),
        Some(true),
        "{}",
        events[4]
    );
    // A real bus delivering with its token, gzip on (the default).
    let bus_cfg = json!({"version": 3, "extra_config": {"gatelet/outbox": {
            "dir": scratch.0.join("outbox"), "bus": "bus-9", "sync_window": "1ms",
            "deliver": {"url": format!("http://{central}/inbox"), "bearer": token("bus-9"), "backoff_initial": "20ms", "backoff_max": "200ms"}}},
        "endpoints": [{"endpoint": "/events", "method": "POST", "backend": [{"extra_config": {"gatelet/outbox": {}}}]}]});
    let bus = gateway(&bus_cfg.to_string());
    let big = json!({"blob": "x".repeat(61 * 1024)}).to_string();
    assert_eq!(request(bus, "POST", "/events", &[], big.as_bytes()).status, 413);
    for n in 0..5 {
        let r = request(
            bus,
            "POST",
            "/events",
            &[],
            json!({"type": "door", "n": n}).to_string().as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["id"], format!("bus-9:{}", r.json()["seq"]));
    }
    let got = poll_until(Duration::from_secs(10), || {
        let e = consume(central)?;
        (e.len() == 10).then_some(e)
    })
    .expect("the bus's events arrive");
    let bus9: Vec<u64> = got
        .iter()
        .filter(|e| e["bus"] == "bus-9")
        .map(|e| e["event"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(bus9, [0, 1, 2, 3, 4]);
}

#[test]
fn an_event_sensor_with_forward_sends_its_frames_to_the_central() {
    let scratch = Scratch::new("sensor");
    let central = gateway(&central_config(&scratch.0, 0, 64 << 20));
    let push = refused_addr();
    let cfg = json!({"version": 3, "extra_config": {
            "gatelet/outbox": {"dir": scratch.0.join("outbox"), "bus": "bus-7", "sync_window": "5ms",
                "deliver": {"url": format!("http://{central}/inbox"), "backoff_initial": "20ms", "backoff_max": "200ms"}},
            "gatelet/sensors": {"doors": {"decode": "json-lines", "events": {"capacity": 16, "forward": true, "critical": true},
                "listen": {"address": push.to_string()}}}},
        "endpoints": [{"endpoint": "/doors", "input_query_strings": ["since"],
            "backend": [{"extra_config": {"gatelet/sensor": {"name": "doors"}}}]}]});
    let bus = gateway(&cfg.to_string());
    let mut device = poll_until(Duration::from_secs(10), || TcpStream::connect(push).ok()).expect("the sensor listens");
    for n in 0..20 {
        device
            .write_all(format!("{{\"p\": 1, \"n\": {n}}}\n").as_bytes())
            .unwrap();
    }
    let got = poll_until(Duration::from_secs(10), || {
        let events = consume(central)?;
        (events.len() == 20).then_some(events)
    })
    .expect("the frames arrive at the central");
    let ns: Vec<u64> = got.iter().map(|e| e["event"]["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, (0..20).collect::<Vec<_>>());
    assert!(
        got.iter().all(|e| e["critical"] == true),
        "the sensor is marked critical"
    );
    // The sensor's own ring is unchanged.
    assert_eq!(
        get(bus, "/doors?since=0").json()["events"].as_array().unwrap().len(),
        16
    );
}

#[test]
fn a_forwarded_frame_gets_its_seq_only_once_the_outbox_has_it_on_disk() {
    let scratch = Scratch::new("held");
    let push = refused_addr();
    // A long window, so that the frame is seen before its group sync.
    let cfg = json!({"version": 3, "extra_config": {
            "gatelet/outbox": {"dir": scratch.0.join("outbox"), "bus": "bus-7", "sync_window": "5s"},
            "gatelet/sensors": {"doors": {"decode": "json-lines", "events": {"capacity": 16, "forward": true},
                "listen": {"address": push.to_string()}}}},
        "endpoints": [{"endpoint": "/doors", "input_query_strings": ["since"], "timeout": "6s",
            "backend": [{"extra_config": {"gatelet/sensor": {"name": "doors"}}}]}]});
    let bus = gateway(&cfg.to_string());
    let mut device = poll_until(Duration::from_secs(10), || TcpStream::connect(push).ok()).expect("the sensor listens");
    device.write_all(b"{\"type\": \"door\", \"n\": 1}\n").unwrap();
    poll_until(Duration::from_secs(5), || {
        (get(bus, "/__health").json()["agents"]["doors"]["frames_ok"] == 1).then_some(())
    })
    .expect("the frame is read");
    // Read, appended, not yet synced: no seq handed out, and `next` stays at it.
    let doc = get(bus, "/doors?since=0").json();
    assert_eq!(doc["events"], json!([]), "{doc}");
    assert_eq!(doc["next"], 1, "{doc}");
    let doc = poll_until(Duration::from_secs(15), || {
        let doc = get(bus, "/doors?since=0").json();
        (doc["events"].as_array()?.len() == 1).then_some(doc)
    })
    .expect("shown after the group sync");
    assert_eq!(doc["events"][0]["seq"], 1);
    assert_eq!(doc["events"][0]["value"]["n"], 1);
    assert_eq!(doc["next"], 2);
}
