//! The `gatelet` binary as a user runs it: `--version`, `check` on every shipped config, `run`
//! on one executor thread, and the embedded default config doing what the README says.

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

fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn run_serves_on_one_executor_thread() {
    let backend = Backend::start(|_| Reply::json(r#"{"fuel":50}"#));
    let dir = std::env::temp_dir().join(format!("gatelet-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("krakend.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"version": 3, "listen_ip": "127.0.0.1", "port": 0,
                "endpoints": [{{"endpoint": "/fuel", "backend": [{{"host": ["{}"], "url_pattern": "/"}}]}}]}}"#,
            backend.url()
        ),
    )
    .unwrap();
    let mut child = gatelet()
        .args(["run", "-c"])
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
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
    let clients: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || get(addr, "/fuel").status))
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    assert_eq!(get(addr, "/__health").status, 200);
    let n = threads(child.id());
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        n <= 2,
        "{n} threads: only the executor and async-io's parked helper are allowed"
    );
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
