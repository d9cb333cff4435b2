//! File sensors end to end over real files and sockets: readings served as backends (merged,
//! shaped, with ages), a missing file showing `down` in `/__health` and 503 with Retry-After,
//! then `ok` again when the file appears, bad frames counted without losing the last reading,
//! `reject_stale`, and /proc read as it is on any Linux box.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("gatelet-sensors-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// Rewrites a file atomically (write + rename), as a status-writing process would.
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn sensors_config(sensors: &str, endpoints: &str) -> String {
    format!(r#"{{"version": 3, "extra_config": {{"gatelet/sensors": {{{sensors}}}}}, "endpoints": [{endpoints}]}}"#)
}

fn wait_for(gw: std::net::SocketAddr, path: &str, what: impl Fn(&Response) -> bool) -> Response {
    let mut last = None;
    let found = poll_until(Duration::from_secs(10), || {
        let r = get(gw, path);
        if what(&r) {
            return Some(r);
        }
        last = Some(r);
        None
    });
    found.unwrap_or_else(|| panic!("{path} never matched; last: {:?}", last.map(|r| (r.status, r.text()))))
}

#[test]
fn a_file_sensor_is_served_as_a_backend_and_follows_rewrites() {
    let dir = Dir::new("temp");
    let temp = dir.file("temp");
    write(&temp, "41900\n");
    let gw = gateway(&sensors_config(
        &format!(
            r#""cabin": {{"decode": "number", "scale": 0.001, "max_age": "10s", "file": {{"path": "{}", "interval": "20ms"}}}}"#,
            temp.display()
        ),
        r#"{"endpoint": "/cabin", "backend": [{"extra_config": {"gatelet/sensor": {"name": "cabin"}}, "group": "temperature"}]}"#,
    ));
    let r = wait_for(gw, "/cabin", |r| r.status == 200);
    assert_eq!(r.header("x-gatelet-completed"), Some("true"));
    let reading = &r.json()["temperature"];
    assert_eq!(reading["value"], 41.9);
    assert_eq!(reading["stale"], false);
    assert!(reading["age_ms"].as_u64().unwrap() < 10_000);
    assert!(reading["ts"].as_str().unwrap().ends_with('Z'));
    let seq = reading["seq"].as_u64().unwrap();
    write(&temp, "43250\n");
    let r = wait_for(gw, "/cabin", |r| r.json()["temperature"]["value"] == 43.25);
    assert!(r.json()["temperature"]["seq"].as_u64().unwrap() > seq);
}

#[test]
fn a_missing_file_is_down_with_503_then_ok_when_it_appears() {
    let dir = Dir::new("fuel");
    let fuel = dir.file("fuel");
    let gw = gateway(&sensors_config(
        &format!(
            r#""fuel": {{"decode": "kv", "file": {{"path": "{}", "interval": "20ms"}}}}"#,
            fuel.display()
        ),
        r#"{"endpoint": "/fuel", "backend": [{"extra_config": {"gatelet/sensor": {"name": "fuel"}}, "allow": ["value.level"]}]}"#,
    ));
    let health = wait_for(gw, "/__health", |r| r.json()["agents"]["fuel"]["status"] == "down");
    assert_eq!(health.json()["status"], "degraded");
    assert!(
        health.json()["agents"]["fuel"]["last_error"]
            .as_str()
            .unwrap()
            .contains("No such file")
    );
    let r = get(gw, "/fuel");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    write(&fuel, "level=71\nunit=%\n");
    let health = wait_for(gw, "/__health", |r| r.json()["agents"]["fuel"]["status"] == "ok");
    assert_eq!(health.json()["status"], "ok");
    let r = get(gw, "/fuel");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"value": {"level": 71}}));
}

#[test]
fn bad_frames_are_counted_and_the_last_good_reading_is_kept() {
    let dir = Dir::new("bad");
    let speed = dir.file("speed");
    write(&speed, "42\n");
    let gw = gateway(&sensors_config(
        &format!(
            r#""speed": {{"decode": "number", "file": {{"path": "{}", "interval": "20ms"}}}}"#,
            speed.display()
        ),
        r#"{"endpoint": "/speed", "backend": [{"extra_config": {"gatelet/sensor": {"name": "speed"}}}]}"#,
    ));
    wait_for(gw, "/speed", |r| r.status == 200);
    write(&speed, "\u{0}\u{ff}garbage\n");
    let health = wait_for(gw, "/__health", |r| {
        r.json()["agents"]["speed"]["frames_bad"].as_u64() > Some(0)
    });
    assert!(
        health.json()["agents"]["speed"]["last_error"]
            .as_str()
            .unwrap()
            .contains("bad frame")
    );
    assert_eq!(
        get(gw, "/speed").json()["value"],
        42,
        "the last good reading is still served"
    );
}

#[test]
fn reject_stale_fails_the_backend_and_the_others_still_answer() {
    let dir = Dir::new("stale");
    let door = dir.file("door");
    write(&door, "closed\n");
    let other = Backend::start(|_| Reply::json(r#"{"route":"M41"}"#));
    let gw = gateway(&sensors_config(
        // Read once an hour: the reading goes stale after 2 s and stays stale.
        &format!(
            r#""door": {{"decode": "text", "max_age": "2s", "file": {{"path": "{}", "interval": "1h"}}}}"#,
            door.display()
        ),
        &format!(
            r#"{{"endpoint": "/strict", "backend": [
                {{"extra_config": {{"gatelet/sensor": {{"name": "door", "reject_stale": true}}}}, "group": "door"}},
                {{"host": ["{u}"], "url_pattern": "/"}}]}},
               {{"endpoint": "/lenient", "backend": [{{"extra_config": {{"gatelet/sensor": {{"name": "door"}}}}}}]}}"#,
            u = other.url()
        ),
    ));
    let fresh = wait_for(gw, "/strict", |r| r.header("x-gatelet-completed") == Some("true"));
    assert_eq!(fresh.json()["door"]["value"], "closed", "{}", fresh.text());
    let r = wait_for(gw, "/strict", |r| r.header("x-gatelet-completed") == Some("false"));
    assert_eq!((r.status, r.json()), (200, json!({"route": "M41"})));
    let lenient = get(gw, "/lenient").json();
    assert_eq!(
        (lenient["value"].clone(), lenient["stale"].clone()),
        (json!("closed"), json!(true))
    );
    assert_eq!(get(gw, "/__health").json()["agents"]["door"]["status"], "stale");
}

#[test]
fn proc_meminfo_reads_as_key_values() {
    let gw = gateway(&sensors_config(
        r#""memory": {"decode": "kv", "file": {"path": "/proc/meminfo"}}"#,
        r#"{"endpoint": "/memory", "backend": [{"extra_config": {"gatelet/sensor": {"name": "memory"}}, "target": "value", "allow": ["MemTotal", "MemAvailable"]}]}"#,
    ));
    let r = wait_for(gw, "/memory", |r| r.status == 200);
    let doc: Value = r.json();
    assert!(doc["MemTotal"].as_str().unwrap().ends_with("kB"), "{doc}");
    assert_eq!(doc.as_object().unwrap().len(), 2);
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn follow_mode_reads_appends_and_survives_truncation_and_rotation() {
    let dir = Dir::new("follow");
    let log = dir.file("gpsd.log");
    // Older history than max_frame: only the tail matters on the first open.
    let history: String = (0..200).map(|i| format!("{{\"class\":\"TPV\",\"n\":{i}}}\n")).collect();
    std::fs::write(&log, history).unwrap();
    let gw = gateway(&sensors_config(
        &format!(
            r#""gpsd": {{"decode": "json-lines", "key": "class", "max_frame": 256,
                "file": {{"path": "{}", "mode": "follow", "interval": "20ms"}}}}"#,
            log.display()
        ),
        r#"{"endpoint": "/gps", "backend": [{"extra_config": {"gatelet/sensor": {"name": "gpsd"}}}]}"#,
    ));
    let n = |r: &Response| r.json()["TPV"]["value"]["n"].clone();
    wait_for(gw, "/gps", |r| r.status == 200 && n(r) == 199);

    // Appends, one of them split over two writes, and a second kind of record.
    append(&log, "{\"class\":\"SKY\",\"sats\":9}\n{\"class\":\"TPV\",");
    append(&log, "\"n\":200}\n");
    let r = wait_for(gw, "/gps", |r| n(r) == 200);
    assert_eq!(r.json()["SKY"]["value"]["sats"], 9);

    // Truncated in place, then written again from the start.
    std::fs::write(&log, "{\"class\":\"TPV\",\"n\":1000}\n").unwrap();
    wait_for(gw, "/gps", |r| n(r) == 1000);

    // Rotated: renamed away, a new file under the name.
    std::fs::rename(&log, dir.file("gpsd.log.1")).unwrap();
    std::fs::write(&log, "{\"class\":\"TPV\",\"n\":2000}\n").unwrap();
    wait_for(gw, "/gps", |r| n(r) == 2000);

    // A line longer than max_frame is dropped and counted; the next one is read.
    append(
        &log,
        &format!(
            "{{\"class\":\"TPV\",\"pad\":\"{}\"}}\n{{\"class\":\"TPV\",\"n\":3000}}\n",
            "x".repeat(400)
        ),
    );
    wait_for(gw, "/gps", |r| n(r) == 3000);
    let health = get(gw, "/__health").json();
    assert_eq!(health["agents"]["gpsd"]["frames_bad"], 1, "{health}");
    assert_eq!(health["agents"]["gpsd"]["status"], "ok");
}

/// Accepts one connection within the test deadline (the listener is non-blocking).
fn accept<L, S>(accept: impl Fn(&L) -> std::io::Result<S>, listener: &L) -> S {
    poll_until(Duration::from_secs(10), || accept(listener).ok()).expect("the sensor never connected")
}

#[test]
fn a_tcp_sensor_greets_reads_lines_and_reconnects_after_the_peer_closes() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let gw = gateway(&sensors_config(
        &format!(
            r#""gpsd": {{"decode": "json-lines", "key": "class", "max_age": "2s", "reconnect_min": "20ms", "reconnect_max": "100ms",
                "tcp": {{"address": "{}", "send_on_connect": "?WATCH={{\"enable\":true,\"json\":true}}\n"}}}}"#,
            listener.local_addr().unwrap()
        ),
        r#"{"endpoint": "/gps", "backend": [{"extra_config": {"gatelet/sensor": {"name": "gpsd"}}, "target": "TPV.value"}]}"#,
    ));
    let mut peer = accept(|l: &std::net::TcpListener| l.accept().map(|(s, _)| s), &listener);
    peer.set_nonblocking(false).unwrap();
    peer.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut greeting = [0u8; 35];
    peer.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"?WATCH={\"enable\":true,\"json\":true}\n");
    peer.write_all(b"{\"class\":\"VERSION\",\"release\":\"3.25\"}\n{\"class\":\"TPV\",\"lat\":52.5")
        .unwrap();
    peer.write_all(b"2,\"lon\":13.4}\n").unwrap();
    let r = wait_for(gw, "/gps", |r| r.status == 200);
    assert_eq!(r.json(), json!({"class": "TPV", "lat": 52.52, "lon": 13.4}));

    // The device goes away mid-line (and stops listening): the sensor is down, the half line
    // is not a reading.
    let addr = listener.local_addr().unwrap();
    peer.write_all(b"{\"class\":\"TPV\",\"lat\":1").unwrap();
    drop(peer);
    drop(listener);
    let health = wait_for(gw, "/__health", |r| r.json()["agents"]["gpsd"]["status"] == "down");
    assert!(
        health.json()["agents"]["gpsd"]["last_error"]
            .as_str()
            .unwrap()
            .contains("closed")
    );
    // Down beyond max_age: the old reading is no longer served.
    let r = wait_for(gw, "/gps", |r| r.status == 503);
    assert!(r.header("retry-after").is_some());

    // It comes back on the same port: the sensor reconnects by itself and counts it.
    let listener = std::net::TcpListener::bind(addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut peer = accept(|l: &std::net::TcpListener| l.accept().map(|(s, _)| s), &listener);
    peer.set_nonblocking(false).unwrap();
    peer.write_all(b"{\"class\":\"TPV\",\"lat\":48.1,\"lon\":11.5}\n")
        .unwrap();
    wait_for(gw, "/gps", |r| r.status == 200 && r.json()["lat"] == 48.1);
    let health = get(gw, "/__health").json();
    assert_eq!(health["agents"]["gpsd"]["reconnects"], 1, "{health}");
    assert_eq!(
        health["agents"]["gpsd"]["frames_bad"], 0,
        "the half line was never decoded"
    );
}

#[test]
fn a_unix_socket_sensor_reads_kv_lines() {
    use std::io::Write;
    let dir = Dir::new("unix");
    let path = dir.file("engine.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let gw = gateway(&sensors_config(
        &format!(
            r#""engine": {{"decode": "kv", "unix": {{"path": "{}"}}}}"#,
            path.display()
        ),
        r#"{"endpoint": "/engine", "backend": [{"extra_config": {"gatelet/sensor": {"name": "engine"}}, "target": "value"}]}"#,
    ));
    let mut peer = accept(
        |l: &std::os::unix::net::UnixListener| l.accept().map(|(s, _)| s),
        &listener,
    );
    peer.set_nonblocking(false).unwrap();
    peer.write_all(b"rpm=1450\nrpm=1500\n").unwrap();
    wait_for(gw, "/engine", |r| r.status == 200 && r.json()["rpm"] == 1500);
}

/// A pseudo-terminal pair: the master (the "device" end the test drives) and the slave path.
fn openpty() -> (std::os::fd::OwnedFd, PathBuf) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    (master, PathBuf::from(name.to_str().unwrap()))
}

fn send(master: &std::os::fd::OwnedFd, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = rustix::io::write(master, rest).unwrap();
        rest = &rest[n..];
    }
}

#[test]
fn a_serial_gps_on_a_pty_survives_garbage_and_a_hang_up() {
    let dir = Dir::new("serial");
    // The configured device is a symlink, as udev makes /dev/gps0: replugging re-points it.
    let device = dir.file("gps0");
    let (master, slave) = openpty();
    std::os::unix::fs::symlink(&slave, &device).unwrap();
    let gw = gateway(&sensors_config(
        &format!(
            r#""gps": {{"decode": "nmea", "reconnect_min": "20ms", "reconnect_max": "100ms",
                "serial": {{"device": "{}", "baud": 4800, "data_bits": 8, "parity": "none", "stop_bits": 1}}}}"#,
            device.display()
        ),
        r#"{"endpoint": "/gps", "backend": [{"extra_config": {"gatelet/sensor": {"name": "gps"}}, "target": "value"}]}"#,
    ));
    wait_for(gw, "/__health", |r| r.json()["agents"]["gps"]["status"] == "stale");

    // One byte per write, then a bad checksum, then line noise, then RMC.
    for b in b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n" {
        send(&master, &[*b]);
    }
    send(
        &master,
        b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48\r\n",
    );
    send(&master, b"\x00\xff\x13NOISE\r\n");
    send(
        &master,
        b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n",
    );
    let r = wait_for(gw, "/gps", |r| {
        r.status == 200 && r.json()["utc"] == "1994-03-23T12:35:19Z"
    });
    let fix = r.json();
    assert_eq!(
        (fix["lat"].clone(), fix["satellites"].clone()),
        (json!(48.1173), json!(8))
    );
    assert_eq!(fix["speed_kmh"], 41.485);
    assert_eq!(get(gw, "/__health").json()["agents"]["gps"]["frames_bad"], 2);

    // Unplugged: the pty master goes away, the slave hangs up.
    drop(master);
    wait_for(gw, "/__health", |r| r.json()["agents"]["gps"]["status"] == "down");

    // Plugged back in (a new tty behind the same name): reopened without a restart.
    let (master, slave) = openpty();
    std::fs::remove_file(&device).unwrap();
    std::os::unix::fs::symlink(&slave, &device).unwrap();
    wait_for(gw, "/__health", |r| r.json()["agents"]["gps"]["status"] != "down");
    send(
        &master,
        b"$GNGGA,001043.00,4404.14036,N,12118.85961,W,1,12,0.98,1113.0,M,-21.3,M,,*47\r\n",
    );
    wait_for(gw, "/gps", |r| r.json()["lat"] == 44.069006);
    let health = get(gw, "/__health").json();
    assert_eq!(health["agents"]["gps"]["reconnects"], 1, "{health}");
    assert_eq!(health["agents"]["gps"]["status"], "ok");
}

#[test]
fn writes_reach_a_socket_a_pty_and_a_file_and_a_down_device_is_503() {
    use std::io::{BufRead, BufReader};
    let dir = Dir::new("writes");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let (master, slave) = openpty();
    let status = dir.file("display.status");
    std::fs::write(&status, "").unwrap();
    let endpoint = |path: &str, name: &str| {
        format!(
            r#"{{"endpoint": "{path}", "method": "POST", "backend": [{{"extra_config": {{"gatelet/sensor": {{"name": "{name}", "write": true}}}}}}]}}"#
        )
    };
    let gw = gateway(&sensors_config(
        &format!(
            r#""display": {{"decode": "text", "reconnect_min": "20ms", "reconnect_max": "50ms", "tcp": {{"address": "{}"}}}},
               "sign": {{"decode": "text", "serial": {{"device": "{}", "baud": 9600}}}},
               "status": {{"decode": "text", "max_frame": 64, "file": {{"path": "{}"}}}}"#,
            listener.local_addr().unwrap(),
            slave.display(),
            status.display()
        ),
        &[
            endpoint("/display", "display"),
            endpoint("/sign", "sign"),
            endpoint("/status", "status"),
        ]
        .join(","),
    ));
    let peer = accept(|l: &std::net::TcpListener| l.accept().map(|(s, _)| s), &listener);
    peer.set_nonblocking(false).unwrap();
    peer.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    wait_for(gw, "/__health", |r| r.json()["agents"]["display"]["status"] != "down");

    let r = request(
        gw,
        "POST",
        "/display",
        &["Content-Type: text/plain"],
        b"next stop: Alexanderplatz\n",
    );
    assert_eq!((r.status, r.json()), (202, json!({"written": 26})), "{}", r.text());
    let mut line = String::new();
    BufReader::new(&peer).read_line(&mut line).unwrap();
    assert_eq!(line, "next stop: Alexanderplatz\n");

    assert_eq!(request(gw, "POST", "/display", &[], b"two\nlines").status, 400);
    assert_eq!(request(gw, "POST", "/display", &[], b"").status, 400);

    // The pty: what the sign receives is exactly the line.
    wait_for(gw, "/__health", |r| r.json()["agents"]["sign"]["status"] != "down");
    assert_eq!(request(gw, "POST", "/sign", &[], b"OUT OF SERVICE").status, 202);
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"\n") {
        let n = rustix::io::read(&master, &mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"OUT OF SERVICE\n");

    // The file: appended; a line over max_frame is refused before it is written.
    assert_eq!(request(gw, "POST", "/status", &[], b"doors: closed").status, 202);
    assert_eq!(std::fs::read_to_string(&status).unwrap(), "doors: closed\n");
    assert_eq!(request(gw, "POST", "/status", &[], &[b'x'; 100]).status, 400);

    // The display goes away: 503 with Retry-After, nothing queued.
    drop(peer);
    drop(listener);
    wait_for(gw, "/__health", |r| r.json()["agents"]["display"]["status"] == "down");
    let r = request(gw, "POST", "/display", &[], b"hello?");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    std::fs::remove_file(&status).unwrap();
    assert_eq!(
        request(gw, "POST", "/status", &[], b"gone").status,
        503,
        "a missing file is a down device"
    );
}

#[test]
fn an_event_sensor_keeps_every_frame_and_clients_read_since_what_they_saw() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let gw = gateway(&sensors_config(
        &format!(
            r#""alarms": {{"decode": "json-lines", "events": {{"capacity": 3}}, "tcp": {{"address": "{}"}}}}"#,
            listener.local_addr().unwrap()
        ),
        r#"{"endpoint": "/events", "input_query_strings": ["since"],
            "backend": [{"extra_config": {"gatelet/sensor": {"name": "alarms"}}}]}"#,
    ));
    let mut peer = accept(|l: &std::net::TcpListener| l.accept().map(|(s, _)| s), &listener);
    peer.set_nonblocking(false).unwrap();
    wait_for(gw, "/__health", |r| r.json()["agents"]["alarms"]["status"] == "ok");
    assert_eq!(
        get(gw, "/events").json(),
        json!({"events": [], "next": 1, "lost": 0}),
        "quiet is normal"
    );
    for kind in ["door", "crash", "breakdown", "driver_alarm", "door"] {
        peer.write_all(format!("{{\"event\":\"{kind}\"}}\n").as_bytes())
            .unwrap();
    }
    let r = wait_for(gw, "/events?since=1", |r| r.json()["next"] == 6);
    let doc = r.json();
    let seqs: Vec<u64> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(
        doc["lost"], 2,
        "the ring of 3 overwrote seq 1 and 2 before this client read them"
    );
    assert_eq!(doc["events"][0]["value"], json!({"event": "breakdown"}));
    assert_eq!(
        get(gw, "/events?since=6").json(),
        json!({"events": [], "next": 6, "lost": 0})
    );
    peer.write_all(b"{\"event\":\"crash\"}\n").unwrap();
    let r = wait_for(gw, "/events?since=6", |r| r.json()["next"] == 7);
    assert_eq!(r.json()["events"][0]["value"], json!({"event": "crash"}));
    assert_eq!(r.json()["lost"], 0);
}

#[test]
fn a_listen_sensor_takes_lines_from_a_bounded_number_of_pushers() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let dir = Dir::new("listen");
    let path = dir.file("in.sock");
    // A stale socket from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let gw = gateway(&sensors_config(
        &format!(
            r#""counter": {{"decode": "json-lines", "key": "door", "listen": {{"address": "unix:{}", "max_pushers": 2}}}}"#,
            path.display()
        ),
        r#"{"endpoint": "/passengers", "backend": [{"extra_config": {"gatelet/sensor": {"name": "counter"}}}]}"#,
    ));
    wait_for(gw, "/__health", |r| r.json()["agents"]["counter"]["status"] != "down");
    let mut front = UnixStream::connect(&path).unwrap();
    let mut rear = UnixStream::connect(&path).unwrap();
    front.write_all(b"{\"door\":\"front\",\"on\":3}\n").unwrap();
    rear.write_all(b"{\"door\":\"rear\",\"on\":").unwrap();
    rear.write_all(b"5}\n").unwrap();
    let r = wait_for(gw, "/passengers", |r| {
        r.status == 200 && r.json()["rear"]["value"]["on"] == 5
    });
    assert_eq!(r.json()["front"]["value"]["on"], 3);

    // A third pusher is one too many: closed at once, and said so in /__health.
    let mut third = UnixStream::connect(&path).unwrap();
    third.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(third.read(&mut [0u8; 8]).unwrap(), 0, "closed by gatelet");
    let health = get(gw, "/__health").json();
    assert!(
        health["agents"]["counter"]["last_error"]
            .as_str()
            .unwrap()
            .contains("max_pushers"),
        "{health}"
    );

    // When one leaves, another may come.
    drop(front);
    let accepted = poll_until(Duration::from_secs(10), || {
        let mut s = UnixStream::connect(&path).ok()?;
        s.write_all(b"{\"door\":\"middle\",\"on\":1}\n").ok()?;
        let r = get(gw, "/passengers");
        (r.json()["middle"]["value"]["on"] == 1).then_some(())
    });
    assert!(accepted.is_some(), "a freed slot takes a new pusher");
}

#[test]
fn the_bus_example_with_the_fake_bus_serves_live_data_and_survives_a_replug() {
    let dir = Dir::new("fakebus");
    let mut bus = std::process::Command::new("python3")
        .arg("scripts/fake-bus.py")
        .args([
            "--dir",
            dir.0.to_str().unwrap(),
            "--engine-port",
            "0",
            "--seconds",
            "60",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs scripts/fake-bus.py");
    let port = poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(dir.file("engine.port")).ok()
    })
    .expect("the fake bus never started");
    let text = std::fs::read_to_string("config/bus.json")
        .unwrap()
        .replace("/tmp/gatelet-bus", dir.0.to_str().unwrap())
        .replace("127.0.0.1:7101", &format!("127.0.0.1:{port}"));
    let gw = gateway(&text);
    let r = wait_for(gw, "/vehicle/status", |r| {
        r.header("x-gatelet-completed") == Some("true") && r.json()["on_board"].is_number()
    });
    let doc = r.json();
    assert!((52.51..52.53).contains(&doc["gps"]["lat"].as_f64().unwrap()), "{doc}");
    assert_eq!(doc["gps"]["satellites"], 9);
    assert!(doc["fuel_pct"].as_f64().unwrap() > 60.0);
    assert_eq!(doc["tyres_psi"]["fl"], 32.1);
    assert!((20.0..23.0).contains(&doc["cabin_temp_c"].as_f64().unwrap()));

    // Unplug and replug the GPS: down, then ok, without a restart.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(bus.id() as i32).unwrap(),
        rustix::process::Signal::USR1,
    )
    .unwrap();
    wait_for(gw, "/__health", |r| r.json()["agents"]["gps"]["status"] == "down");
    let health = wait_for(gw, "/__health", |r| r.json()["agents"]["gps"]["status"] == "ok");
    assert!(health.json()["agents"]["gps"]["reconnects"].as_u64() >= Some(1));
    bus.kill().ok();
    bus.wait().ok();
}
