//! Config fixtures: every file in `tests/config/invalid/` fails with exactly the messages in its
//! `.expected` file (path, `line:column`, JSON path, text; all errors at once), and every file in
//! `tests/config/valid/` loads. `GATELET_BLESS=1 cargo test --test config_fixtures` rewrites the
//! `.expected` files after a deliberate change; review the diff.

use std::path::Path;

fn fixtures(dir: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(Path::new("tests/config").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in tests/config/{dir}");
    files
}

#[test]
fn invalid_configs_fail_with_the_expected_messages() {
    let mut mismatches = Vec::new();
    for path in fixtures("invalid") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let errors = match gatelet::config::parse(&name, &text) {
            Ok(_) => {
                mismatches.push(format!("{name}: accepted"));
                continue;
            }
            Err(errors) => errors,
        };
        let got: String = errors.iter().map(|e| format!("{e}\n")).collect();
        let expected_path = path.with_extension("expected");
        if std::env::var_os("GATELET_BLESS").is_some() {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            mismatches.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn valid_configs_load() {
    for path in fixtures("valid") {
        if let Err(errors) = gatelet::config::load(&path) {
            panic!(
                "{}: {}",
                path.display(),
                errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
            );
        }
    }
}

#[test]
fn the_fleet_fixture_is_read_as_a_krakend_user_means_it() {
    use gatelet::config::{Encoding, Forward, OutputEncoding};
    let c = gatelet::config::load(Path::new("tests/config/valid/fleet_bus.json")).unwrap();
    assert_eq!(c.timeout, std::time::Duration::from_secs(3));
    assert_eq!(c.router.health_path, "/health");
    assert!(c.router.return_error_msg);
    let vehicle = &c.endpoints[0];
    assert_eq!(vehicle.timeout, std::time::Duration::from_millis(800));
    assert_eq!(vehicle.cache_ttl, std::time::Duration::from_secs(5));
    assert_eq!(
        vehicle.input_headers,
        Forward::Only(vec!["authorization".into(), "x-request-id".into()])
    );
    assert_eq!(
        vehicle.backends[0].hosts[0].authority, "127.0.0.1:9001",
        "the service host is the default"
    );
    assert_eq!(vehicle.backends[0].shape.target, ["data"]);
    assert_eq!(vehicle.backends[1].hosts.len(), 2);
    assert_eq!(
        vehicle.backends[1].hosts[1].authority, "127.0.0.1:9003",
        "a host without scheme is http"
    );
    assert_eq!(vehicle.backends[1].shape.deny[1], ["debug", "trace"]);
    assert_eq!(
        vehicle.backends[1].shape.mapping,
        [("psi".to_string(), "pressure".to_string())]
    );
    assert_eq!(vehicle.backends[4].method, http::Method::POST);
    assert_eq!(vehicle.backends[3].encoding, Encoding::String);
    let camera = &c.endpoints[1];
    assert_eq!(camera.output_encoding, OutputEncoding::NoOp);
    assert_eq!(
        camera.backends[0].encoding,
        Encoding::NoOp,
        "no-op endpoints default their backend to no-op"
    );
    assert_eq!(camera.input_query_strings, Forward::All);
    assert_eq!(c.endpoints[2].concurrent_calls, 2);
    assert_eq!(
        c.endpoints[2].input_headers,
        Forward::Only(vec!["content-type".into()]),
        "KrakenD's default"
    );
    assert_eq!(c.endpoints[3].input_query_strings, Forward::Only(vec![]));
}

#[test]
fn rate_limits_are_read_exactly() {
    use gatelet::config::{Rate, Strategy};
    let c = gatelet::config::load(Path::new("tests/config/valid/ratelimit.json")).unwrap();
    let s = 1_000_000_000;
    let status = c.endpoints[0].rate_limit.as_ref().unwrap();
    assert_eq!(status.endpoint, Some(Rate::new(50, 100, s).unwrap()));
    // 0.5 per second is exactly 5 per 10 s.
    assert_eq!(
        status.client,
        Some((Rate::new(5, 2, 10 * s).unwrap(), Strategy::Param(0)))
    );
    assert_eq!(status.max_clients, 500);
    assert_eq!(
        c.endpoints[0].backends[0].rate_limit,
        Some(Rate::new(10, 10, 60 * s).unwrap())
    );
    let events = c.endpoints[1].rate_limit.as_ref().unwrap();
    assert_eq!(events.endpoint, None);
    assert_eq!(
        events.client,
        Some((
            Rate::new(5, 5, s).unwrap(),
            Strategy::Ip(Some(http::HeaderName::from_static("x-forwarded-for")))
        )),
        "client_capacity defaults to client_max_rate, not KrakenD's 1"
    );
    assert_eq!(events.max_clients, gatelet::config::DEFAULT_MAX_CLIENTS);
    assert_eq!(
        c.endpoints[2].rate_limit.as_ref().unwrap().endpoint,
        Some(Rate::new(1, 1, s).unwrap())
    );
}

#[test]
fn host_names_and_the_members_file_are_resolved_after_checking() {
    use gatelet::config::{SensorSource, StreamTarget};
    let text = r#"{
      "version": 3,
      "host": ["localhost:9001"],
      "extra_config": {
        "gatelet/fleet": {
          "members": [{"id": "bus-1", "host": "http://localhost:9003"}],
          "members_file": "tests/config/files/members.json"
        },
        "gatelet/sensors": {"engine": {"decode": "json-lines", "tcp": {"address": "localhost:7000"}}}
      },
      "endpoints": [
        {"endpoint": "/a", "backend": [{"url_pattern": "/"}, {"host": ["http://localhost:9002"], "url_pattern": "/"}]}
      ]
    }"#;
    let c = gatelet::config::parse("t.json", text).unwrap();
    let looked_up = |addr: std::net::SocketAddr, port| {
        assert!(addr.ip().is_loopback() && addr.port() == port, "{addr}");
    };
    let backends = &c.endpoints[0].backends;
    looked_up(backends[0].hosts[0].addr, 9001);
    assert_eq!(backends[0].hosts[0].authority, "localhost:9001", "the service's host");
    looked_up(backends[1].hosts[0].addr, 9002);
    let members = &c.fleet.as_ref().unwrap().members;
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        ["bus-1", "bus-2", "bus-3"],
        "inline members first, then the file's"
    );
    looked_up(members[0].host.addr, 9003);
    looked_up(members[1].host.addr, 9004);
    assert_eq!(members[2].host.addr, "10.8.0.3:8000".parse().unwrap());
    let SensorSource::Stream {
        target: StreamTarget::Tcp(engine),
        ..
    } = c.sensors[0].source
    else {
        panic!("{:?}", c.sensors[0].source)
    };
    looked_up(engine, 7000);
}
