//! The `gatelet` binary as a user runs it: `--version`, `check` on every shipped config, `run`
//! on exactly one thread, and the embedded default config doing what the README says.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn gatelet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gatelet"))
}

#[test]
fn version_prints_the_package_version() {
    let out = gatelet().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        concat!("gatelet ", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_shipped_config_passes_check() {
    let mut checked = 0;
    for entry in std::fs::read_dir("config").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let out = gatelet().args(["check", "-c"]).arg(&path).output().unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "config OK");
            checked += 1;
        }
    }
    assert!(checked > 0, "no config in config/");
}

#[test]
fn check_prints_every_error_with_position_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("gatelet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.json");
    std::fs::write(
        &file,
        "{\n  \"version\": 2,\n  \"port\": \"80\",\n  \"endpoints\": []\n}\n",
    )
    .unwrap();
    let out = gatelet().args(["check", "-c"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    assert!(err.contains(&format!("{f}:2:14: version:")), "{err}");
    assert!(err.contains(&format!("{f}:3:11: port:")), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_config_path_to_an_endless_device_is_refused_not_read_forever() {
    let out = gatelet().args(["check", "-c", "/dev/zero"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("larger than"), "{err}");
}

/// The process's threads, as the kernel lists them.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count()
}

#[test]
fn run_serves_proxied_sensor_and_fleet_traffic_and_a_reload_on_exactly_one_thread() {
    let backend = Backend::start(|seen| match seen.target.as_str() {
        "/__health" => Reply::json(r#"{"status":"ok","agents":{}}"#),
        _ => Reply::json(r#"{"fuel":50}"#),
    });
    // A device on a TCP socket that sends one reading per connection.
    let device = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let device_addr = device.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut peer in device.incoming().flatten() {
            use std::io::Write;
            let _ = peer.write_all(b"{\"speed\": 42}\n");
            // Held open (the sensor reads a stream); closed when the test process ends.
            std::mem::forget(peer);
        }
    });
    let dir = std::env::temp_dir().join(format!("gatelet-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let level = dir.join("level");
    std::fs::write(&level, "71\n").unwrap();
    let file = dir.join("krakend.json");
    let config = |name: &str| {
        format!(
            r#"{{"version": 3, "listen_ip": "127.0.0.1", "port": 0,
                "extra_config": {{
                  "gatelet/sensors": {{
                    "level": {{"decode": "number", "file": {{"path": "{level}", "interval": "20ms"}}}},
                    "speed": {{"decode": "json-lines", "tcp": {{"address": "{device_addr}"}}}}}},
                  "gatelet/fleet": {{"timeout": "2s", "members": [{{"id": "bus-1", "host": "{backend}"}}]}}}},
                "endpoints": [
                  {{"endpoint": "/fuel", "backend": [{{"host": ["{backend}"], "url_pattern": "/"}}]}},
                  {{"endpoint": "/{name}", "backend": [{{"host": ["{backend}"], "url_pattern": "/"}}]}},
                  {{"endpoint": "/sensors", "backend": [
                    {{"extra_config": {{"gatelet/sensor": {{"name": "level"}}}}, "group": "level"}},
                    {{"extra_config": {{"gatelet/sensor": {{"name": "speed"}}}}, "group": "speed"}}]}},
                  {{"endpoint": "/fleet/fuel", "backend": [{{"url_pattern": "/vehicle", "extra_config": {{"gatelet/fleet": {{}}}}}}]}}]}}"#,
            level = level.display(),
            backend = backend.url(),
        )
    };
    std::fs::write(&file, config("before")).unwrap();
    /// Killed however the test ends.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            self.0.kill().ok();
            self.0.wait().ok();
        }
    }
    let mut child = Child(
        gatelet()
            .args(["run", "-c"])
            .arg(&file)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let addr = lines
        .find_map(|l| {
            l.ok()?
                .split("listening on ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<std::net::SocketAddr>()
                .ok()
        })
        .expect("no 'listening on' line");
    std::thread::spawn(move || lines.for_each(drop));
    let clients: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || get(addr, "/fuel").status))
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    let sensors = poll_until(Duration::from_secs(10), || {
        let r = get(addr, "/sensors");
        (r.header("x-gatelet-completed") == Some("true")).then_some(r)
    })
    .expect("/sensors never complete");
    let doc = sensors.json();
    assert_eq!(doc["level"]["value"], 71, "{doc}");
    assert_eq!(doc["speed"]["value"]["speed"], 42, "{doc}");
    let fleet = get(addr, "/fleet/fuel");
    assert_eq!(fleet.status, 200, "{}", fleet.text());
    assert_eq!(fleet.json()["bus-1"]["fuel"], 50);
    assert_eq!(get(addr, "/__fleet/health").status, 200);
    // A reload, seen once /after answers.
    assert_eq!(get(addr, "/before").status, 200);
    std::fs::write(&file, config("after")).unwrap();
    let pid = rustix::process::Pid::from_raw(child.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    poll_until(Duration::from_secs(10), || {
        (get(addr, "/after").status == 200).then_some(())
    })
    .expect("the reload never took effect");
    assert_eq!(get(addr, "/fuel").status, 200);
    let n = threads(child.0.id());
    drop(child);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(n, 1, "{n} threads: gatelet runs on exactly one");
}

#[test]
fn the_embedded_default_config_serves_its_demo_endpoint() {
    // The demo endpoint calls gatelet itself, so run it on the port its config names.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = gatelet::cli::DEFAULT_CONFIG.replace("8080", &port.to_string());
    let config = gatelet::config::parse("default.json", &text).unwrap();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || gatelet::run(listener, config, gatelet::Options::default(), std::future::pending()));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let r = poll_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect(addr)
            .ok()
            .map(|_| get(addr, "/demo/7?q=x&z=1"))
    })
    .expect("gateway did not come up");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gatelet-completed"), Some("true"));
    let doc = r.json();
    assert_eq!(doc["gateway"]["status"], "ok");
    assert_eq!(doc["asked_for"], "/__echo/bus/7?q=x");
    assert_eq!(doc["req_method"], "GET");
    // Live data from /proc, as file sensors.
    let system = poll_until(Duration::from_secs(5), || {
        let r = get(addr, "/system");
        (r.header("x-gatelet-completed") == Some("true")).then_some(r)
    })
    .expect("/system never complete");
    let doc = system.json();
    assert_eq!(doc["load"]["value"].as_str().unwrap().split(' ').count(), 5, "{doc}");
    assert!(doc["uptime"]["value"].as_str().is_some());
    assert!(doc["memory"]["value"]["MemTotal"].as_str().unwrap().ends_with("kB"));
    let health = get(addr, "/__health").json();
    assert_eq!(health["agents"]["load"]["status"], "ok", "{health}");
}

#[test]
fn the_default_config_gains_a_temperature_sensor_where_there_is_a_thermal_zone() {
    let plain = gatelet::config::parse("default.json", &gatelet::cli::default_config(false)).unwrap();
    let warm = gatelet::config::parse("default.json", &gatelet::cli::default_config(true)).unwrap();
    assert_eq!(warm.sensors.len(), plain.sensors.len() + 1);
    let t = warm.sensors.iter().find(|s| s.name == "temperature").unwrap();
    assert_eq!(t.decode, gatelet::config::Decode::Number { scale: Some(0.001) });
    let system = |c: &gatelet::config::Config| c.endpoints.iter().find(|e| e.path == "/system").unwrap().backends.len();
    assert_eq!(system(&warm), system(&plain) + 1);
}

#[test]
fn check_warns_about_a_cache_on_an_authenticated_endpoint_and_still_passes() {
    let dir = std::env::temp_dir().join(format!("gatelet-cli-warn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("warn.json");
    std::fs::write(
        &file,
        r#"{"version": 3, "extra_config": {"gatelet/api-keys": {"keys": [{"name": "office", "sha256": "8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92", "roles": ["office"]}]}},
  "endpoints": [{"endpoint": "/me", "extra_config": {"gatelet/api-keys": {"roles": ["office"]}},
    "backend": [{"host": ["http://127.0.0.1:9"], "url_pattern": "/me", "extra_config": {"qos/http-cache": {}}}]}]}"#,
    )
    .unwrap();
    let out = gatelet().args(["check", "-c"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "warning: {}:2:17: endpoints[0]: qos/http-cache on an endpoint with auth",
            file.display()
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_command_has_help_with_its_flags_and_an_example() {
    for (args, flags) in [
        (&["--help"][..], &["--version", "run", "check", "Examples:"][..]),
        (
            &["run", "--help"],
            &["-c, --config", "-p, --port", "-d, --debug", "Examples:"],
        ),
        (
            &["check", "--help"],
            &[
                "-c, --config",
                "-t, --test-gin-routes",
                "-l, --lint",
                "-d, --debug",
                "-tlc",
            ],
        ),
    ] {
        let out = gatelet().args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        for f in flags {
            assert!(text.contains(f), "{args:?} help lacks {f}:\n{text}");
        }
    }
}

#[test]
fn usage_errors_exit_2_with_the_usage() {
    let out = gatelet().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a command is needed") && err.contains("Usage: gatelet"),
        "{err}"
    );
    for args in [
        &["--bogus"][..],
        &["run", "-x"],
        &["check"],
        &["check", "-tlx", "a.json"],
        &["run", "-p", "port"],
    ] {
        let out = gatelet().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("--help"), "{args:?}");
    }
}

#[test]
fn check_takes_krakends_bundled_flags() {
    let dir = std::env::temp_dir().join(format!("gatelet-cli-tlc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("krakend.json");
    std::fs::write(
        &file,
        r#"{"version": 3, "name": "bus-7", "endpoints": [
            {"endpoint": "/bus/{id}", "backend": [{"host": ["http://127.0.0.1:9"], "url_pattern": "/v/{id}"}]},
            {"endpoint": "/bus/count", "backend": [{"host": ["http://127.0.0.1:9"], "url_pattern": "/n"}]}]}"#,
    )
    .unwrap();
    // -t routes every endpoint's own path through the router; -d prints what was parsed.
    let out = gatelet().args(["check", "-tldc"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("service \"bus-7\""), "{text}");
    assert!(text.contains("GET /bus/{id}: json, timeout 2s, 1 backend(s)"), "{text}");
    assert!(text.contains("  -> GET /v/{id} on 127.0.0.1:9"), "{text}");
    assert!(text.contains("routes OK: 2 endpoint(s)"), "{text}");
    assert!(text.trim_end().ends_with("config OK"), "{text}");
    // The long forms are KrakenD's too.
    let out = gatelet()
        .args(["check", "--test-gin-routes", "--lint", "--debug", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    // -l: a warning fails the check.
    std::fs::write(
        &file,
        r#"{"version": 3, "extra_config": {"gatelet/api-keys": {"keys": [{"name": "office", "sha256": "8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92"}]}},
  "endpoints": [{"endpoint": "/me", "extra_config": {"gatelet/api-keys": {}},
    "backend": [{"host": ["http://127.0.0.1:9"], "url_pattern": "/me", "extra_config": {"qos/http-cache": {}}}]}]}"#,
    )
    .unwrap();
    assert_eq!(
        gatelet()
            .args(["check", "-c"])
            .arg(&file)
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    let out = gatelet().args(["check", "-lc"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-l (lint)"));
    std::fs::remove_dir_all(&dir).ok();
}

/// `gatelet run` with a `telemetry/logging` object, its stdout and stderr read line by line.
struct Logging {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<(&'static str, String)>,
    readers: Vec<std::thread::JoinHandle<()>>,
    dir: std::path::PathBuf,
}

impl Logging {
    /// Runs a config with `logging` as its `telemetry/logging`, with `env` set.
    fn run(logging: &str, env: &[(&str, &str)]) -> Logging {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gatelet-log-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("krakend.json");
        std::fs::write(
            &file,
            format!(
                r#"{{"version": 3, "listen_ip": "127.0.0.1", "port": 0, "endpoints": [],
                    "extra_config": {{"telemetry/logging": {logging}}}}}"#
            ),
        )
        .unwrap();
        let mut cmd = gatelet();
        cmd.args(["run", "-c"])
            .arg(&file)
            .env_remove("JOURNAL_STREAM")
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let streams: [(&'static str, Box<dyn std::io::Read + Send>); 2] = [
            ("stdout", Box::new(child.stdout.take().unwrap())),
            ("stderr", Box::new(child.stderr.take().unwrap())),
        ];
        let readers = streams
            .into_iter()
            .map(|(name, stream)| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        tx.send((name, line)).ok();
                    }
                })
            })
            .collect();
        Logging {
            child,
            lines,
            readers,
            dir,
        }
    }

    /// The first line saying "listening on", as `stream: line`.
    fn listening_line(&self) -> String {
        loop {
            let (name, line) = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .expect("no listening line");
            if line.contains("listening on") {
                return format!("{name}: {line}");
            }
        }
    }

    /// Stops gatelet (a failed test stops it too, see `Drop`); every line not read yet.
    fn stop(mut self) -> Vec<String> {
        self.child.kill().ok();
        self.child.wait().ok();
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        std::fs::remove_dir_all(&self.dir).ok();
        self.lines
            .try_iter()
            .map(|(name, line)| format!("{name}: {line}"))
            .collect()
    }
}

impl Drop for Logging {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[test]
fn logging_takes_krakends_prefix_outputs_and_logstash_format() {
    let run = Logging::run(
        r#"{"level": "INFO", "prefix": "[BUS7]", "stdout": true, "format": "logstash"}"#,
        &[],
    );
    let line = run.listening_line();
    run.stop();
    let json = line
        .strip_prefix("stdout: ")
        .unwrap_or_else(|| panic!("not on stdout: {line}"));
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(doc["level"], "INFO", "{doc}");
    assert_eq!(doc["module"], "BUS7");
    assert_eq!(doc["@version"], 1);
    assert!(doc["message"].as_str().unwrap().starts_with("gatelet "), "{doc}");
    let ts = doc["@timestamp"].as_str().unwrap();
    assert!(ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");

    // Default lines on stderr: the prefix, then a timestamp unless journald stamps them.
    let run = Logging::run(r#"{"level": "INFO", "prefix": "[BUS7]"}"#, &[]);
    let line = run.listening_line();
    run.stop();
    let rest = line
        .strip_prefix("stderr: [BUS7] 20")
        .unwrap_or_else(|| panic!("{line}"));
    assert!(rest.contains("Z INFO gatelet::cli: gatelet "), "{line}");
    let run = Logging::run(r#"{"level": "INFO", "prefix": "[BUS7]"}"#, &[("JOURNAL_STREAM", "8:1")]);
    let line = run.listening_line();
    run.stop();
    assert!(line.starts_with("stderr: <6>[BUS7] gatelet::cli: gatelet "), "{line}");
}

#[test]
fn syslog_lines_go_to_the_syslog_socket_with_their_facility() {
    let dir = std::env::temp_dir().join(format!("gatelet-syslog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let run = Logging::run(
        r#"{"level": "INFO", "syslog": true, "syslog_facility": "local0"}"#,
        &[("GATELET_SYSLOG_PATH", path.to_str().unwrap())],
    );
    let mut buf = [0u8; 2048];
    let datagram = loop {
        let n = socket.recv(&mut buf).expect("no syslog datagram");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.contains("listening on") {
            break text;
        }
    };
    let printed = run.stop();
    // local0 (16) * 8 + info (6).
    assert!(datagram.starts_with("<134>gatelet["), "{datagram}");
    assert!(datagram.contains("]: INFO gatelet::cli: gatelet "), "{datagram}");
    assert!(
        !printed.iter().any(|l| l.contains("listening on")),
        "syslog alone: nothing on stdout or stderr: {printed:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn check_refuses_features_left_out_on_purpose_with_what_to_use_instead() {
    let out = gatelet()
        .args(["check", "-c", "tests/config/invalid/out_on_purpose.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for (namespace, instead) in [
        ("validation/cel", "auth/validator"),
        ("modifier/lua-endpoint", "mapping"),
        ("security/bot-detector", "qos/ratelimit/router"),
        ("plugin/http-server", "backend service"),
        ("backend/amqp/consumer", "gatelet/sensor"),
        ("backend/pubsub/subscriber", "HTTP bridge"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!("\"{namespace}\"")))
            .unwrap_or_else(|| panic!("{err}"));
        assert!(line.contains("on purpose") && line.contains(instead), "{line}");
    }
}
