//! The process as systemd runs it: `READY=1` once the port accepts, `WATCHDOG=1` from the event
//! loop at half of `WATCHDOG_USEC`, and SIGTERM letting a slow in-flight request finish before
//! a clean exit with `STOPPING=1`; a notify socket nobody reads stalls neither. Real process,
//! real notify socket, real signals.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Run {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    notify: UnixDatagram,
    dir: std::path::PathBuf,
}

/// Kills the gateway and removes its directory however the test ends (a wedged gateway would
/// otherwise outlive a failed test, holding the test runner's output open).
impl Drop for Run {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn start(name: &str, config: &str, watchdog_usec: Option<u64>) -> Run {
    let dir = std::env::temp_dir().join(format!("gatelet-life-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&socket).unwrap();
    notify.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    std::fs::write(dir.join("krakend.json"), config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatelet"));
    cmd.args(["run", "-c"])
        .arg(dir.join("krakend.json"))
        .env("NOTIFY_SOCKET", &socket)
        .env("RUST_LOG", "info");
    if let Some(usec) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", usec.to_string());
    }
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines
        .find_map(|l| l.ok()?.split("listening on ").nth(1)?.split(' ').next()?.parse().ok())
        .expect("no 'listening on' line");
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Run {
        child,
        addr,
        notify,
        dir,
    }
}

fn message(notify: &UnixDatagram) -> (String, Instant) {
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("no notification in time");
    (String::from_utf8_lossy(&buf[..n]).into_owned(), Instant::now())
}

fn config(extra: &str) -> String {
    format!(r#"{{"version": 3, "listen_ip": "127.0.0.1", "port": 0 {extra}}}"#)
}

#[test]
fn ready_then_watchdog_pings_at_half_the_interval() {
    let run = start("watchdog", &config(r#", "endpoints": []"#), Some(200_000));
    let (first, _) = message(&run.notify);
    assert_eq!(first, "READY=1");
    assert_eq!(get(run.addr, "/__health").status, 200, "READY means the port accepts");
    let mut times = Vec::new();
    while times.len() < 6 {
        let (m, at) = message(&run.notify);
        assert_eq!(m, "WATCHDOG=1");
        times.push(at);
    }
    let mut gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        median >= Duration::from_millis(60) && median <= Duration::from_millis(250),
        "WATCHDOG_USEC 200ms: pings every ~100ms, median gap {median:?}"
    );
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_cleanly() {
    let slow = Backend::start(|_| Reply::json(r#"{"late":true}"#).delay(Duration::from_millis(800)));
    let mut run = start(
        "sigterm",
        &config(&format!(
            r#", "max_shutdown_wait_time": "5s", "timeout": "3s",
               "endpoints": [{{"endpoint": "/slow", "backend": [{{"host": ["{}"], "url_pattern": "/"}}]}}]"#,
            slow.url()
        )),
        None,
    );
    assert_eq!(message(&run.notify).0, "READY=1");
    let addr = run.addr;
    let client = std::thread::spawn(move || get(addr, "/slow"));
    poll_until(Duration::from_secs(5), || (!slow.seen().is_empty()).then_some(()))
        .expect("request never reached the backend");
    let pid = rustix::process::Pid::from_raw(run.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert_eq!(message(&run.notify).0, "STOPPING=1");
    let r = client.join().unwrap();
    assert_eq!(r.status, 200, "the in-flight request was answered: {}", r.text());
    assert_eq!(r.json()["late"], true);
    let status = poll_until(Duration::from_secs(10), || run.child.try_wait().ok().flatten()).expect("did not exit");
    assert!(status.success(), "exit status {status:?}");
    assert!(std::net::TcpStream::connect(addr).is_err(), "no longer accepting");
}

#[test]
fn under_journald_lines_carry_priorities_and_the_access_log_is_opt_in() {
    let dir = std::env::temp_dir().join(format!("gatelet-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("krakend.json");
    std::fs::write(
        &file,
        config(
            r#", "extra_config": {"telemetry/logging": {"level": "INFO"}, "gatelet/access-log": {}}, "endpoints": []"#,
        ),
    )
    .unwrap();
    // Killed when dropped, also when an assertion fails: a child left running would hold the
    // test's output pipe open.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            self.0.kill().ok();
            self.0.wait().ok();
        }
    }
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_gatelet"))
            .args(["run", "-c"])
            .arg(&file)
            .env("JOURNAL_STREAM", "8:12345")
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let listening = lines.next().unwrap().unwrap();
    assert!(listening.starts_with("<6>gatelet::cli: gatelet "), "{listening}");
    let addr: std::net::SocketAddr = listening
        .split("listening on ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(get(addr, "/__health").status, 200);
    let access = lines.next().unwrap().unwrap();
    assert!(access.starts_with("<6>access: GET /__health 200 "), "{access}");
    assert!(access.ends_with(" 127.0.0.1"), "{access}");
    drop(child);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sighup_swaps_in_a_valid_config_and_keeps_the_old_one_on_errors() {
    let backend = Backend::start(|seen| Reply::json(&format!(r#"{{"path":"{}"}}"#, seen.target)));
    let endpoint = |path: &str| {
        config(&format!(
            r#", "extra_config": {{"gatelet/metrics": {{}}}},
                "endpoints": [{{"endpoint": "{path}", "backend": [{{"host": ["{}"], "url_pattern": "{path}"}}]}}]"#,
            backend.url()
        ))
    };
    let run = start("reload", &endpoint("/a"), None);
    assert_eq!(message(&run.notify).0, "READY=1");
    // A keep-alive connection opened before the reload.
    let mut old = connect(run.addr);
    let ask = |s: &mut std::net::TcpStream, path: &str| {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
        pipeline(s, std::iter::once(req), 1).remove(0).status
    };
    assert_eq!(ask(&mut old, "/a"), 200);

    std::fs::write(run.dir.join("krakend.json"), endpoint("/b")).unwrap();
    let pid = rustix::process::Pid::from_raw(run.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    assert_eq!(message(&run.notify).0, "RELOADING=1");
    assert_eq!(message(&run.notify).0, "READY=1");
    assert_eq!(get(run.addr, "/b").status, 200, "new connections get the new config");
    assert_eq!(get(run.addr, "/a").status, 404);
    assert_eq!(ask(&mut old, "/a"), 200, "the old keep-alive connection keeps working");
    // The open-connections gauge counts it too: the old one plus the one asking.
    let gauge = || {
        get(run.addr, "/__stats")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("gatelet_open_connections ")?.parse::<u64>().ok())
    };
    let seen = poll_until(Duration::from_secs(5), || gauge().filter(|&n| n == 2));
    assert_eq!(seen, Some(2), "gauge after the reload: last read {:?}", gauge());

    // A broken config: refused, the running one stays, /__health says so.
    std::fs::write(run.dir.join("krakend.json"), r#"{"version": 2}"#).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    assert_eq!(message(&run.notify).0, "RELOADING=1");
    assert_eq!(message(&run.notify).0, "READY=1");
    assert_eq!(get(run.addr, "/b").status, 200, "still serving the last good config");
    let health = get(run.addr, "/__health").json();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["reload"]["status"], "failed");
    assert!(
        health["reload"]["errors"][0].as_str().unwrap().contains("version"),
        "{health}"
    );
}

/// `GET target` on a fresh connection, or `None` if no full answer came within `limit`.
fn get_within(addr: std::net::SocketAddr, target: &str, limit: Duration) -> Option<Response> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.set_write_timeout(Some(limit)).ok()?;
    write!(s, "GET {target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n").ok()?;
    let (raw, closed) = read_to_close(&mut s);
    closed.then(|| parse_response(&raw)).flatten().map(|(r, _)| r)
}

#[test]
fn a_notify_socket_nobody_reads_stalls_neither_serving_nor_sigterm() {
    // The reader never reads: its queue (net.unix.max_dgram_qlen datagrams) fills with READY=1
    // and a WATCHDOG=1 every 0.5 s, and every datagram after that finds it full.
    let qlen: u32 = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(10);
    let run = start(
        "unread",
        &config(r#", "extra_config": {"gatelet/metrics": {}}, "endpoints": []"#),
        Some(1_000_000),
    );
    let started = Instant::now();
    let mut run = run;
    let addr = run.addr;
    let mut asked = 0;
    let mut ask = |target: &str| {
        asked += 1;
        let sent = started.elapsed();
        let r = get_within(addr, target, Duration::from_secs(2)).unwrap_or_else(|| {
            panic!("request #{asked} (GET {target}, sent {sent:?} after start) not answered within 2 s")
        });
        assert_eq!(r.status, 200, "GET {target}: {}", r.text());
        r
    };
    // Queue full after about qlen/2 s; serve until five pings later have been dropped.
    let limit = Duration::from_millis(500) * (qlen + 10) + Duration::from_secs(5);
    let dropped = poll_until(limit, || {
        ask("/__health");
        let stats = ask("/__stats").text();
        let dropped: u64 = stats
            .lines()
            .find_map(|l| l.strip_prefix("gatelet_sd_notify_dropped_total "))
            .map_or(0, |v| v.parse().unwrap());
        (dropped >= 5).then_some(dropped)
    })
    .unwrap_or_else(|| panic!("fewer than 5 notifications dropped in {limit:?}"));
    eprintln!(
        "{asked} requests answered in {:?}; {dropped} notifications dropped",
        started.elapsed()
    );

    let pid = rustix::process::Pid::from_raw(run.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = poll_until(Duration::from_secs(5), || run.child.try_wait().ok().flatten())
        .expect("no exit within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}
