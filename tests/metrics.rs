//! `/__stats` over real sockets: valid Prometheus text (every sample line parses, every family
//! has HELP and TYPE), and the counters move with the requests made.

mod common;

use std::collections::HashMap;

use common::*;

/// Parses the text format strictly enough: `name{labels} value`, values are numbers.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(typed.contains(family) || typed.contains(name), "no TYPE for {name}");
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "labels of {line:?}"
            );
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

#[test]
fn stats_are_prometheus_text_and_move_with_requests() {
    let ok = Backend::start(|_| Reply::json(r#"{"fuel":71}"#));
    let gw = gateway(&format!(
        r#"{{"version": 3, "extra_config": {{"gatelet/metrics": {{}}}}, "endpoints": [
            {{"endpoint": "/fuel", "extra_config": {{"qos/ratelimit/router": {{"max_rate": 2, "every": "1h"}}}},
              "backend": [{{"host": ["{}"], "url_pattern": "/"}}]}},
            {{"endpoint": "/down", "backend": [{{"host": ["http://{}"], "url_pattern": "/"}}]}}]}}"#,
        ok.url(),
        refused_addr()
    ));
    let before = parse(&get(gw, "/__stats").text());
    let fuel_2xx = r#"gatelet_requests_total{endpoint="GET /fuel",class="2xx"}"#;
    assert_eq!(before[fuel_2xx], 0.0);
    for _ in 0..3 {
        get(gw, "/fuel");
    }
    get(gw, "/down");
    let r = get(gw, "/__stats");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let after = parse(&r.text());
    assert_eq!(after[fuel_2xx], 2.0);
    assert_eq!(
        after[r#"gatelet_requests_total{endpoint="GET /fuel",class="5xx"}"#], 1.0,
        "the 503"
    );
    assert_eq!(after[r#"gatelet_rate_limited_total{endpoint="GET /fuel"}"#], 1.0);
    assert_eq!(
        after[r#"gatelet_backend_failures_total{backend="GET /down -> /",reason="error"}"#],
        1.0
    );
    assert_eq!(after[r#"gatelet_request_duration_ms_count{endpoint="GET /fuel"}"#], 3.0);
    assert_eq!(
        after[r#"gatelet_request_duration_ms_bucket{endpoint="GET /fuel",le="+Inf"}"#],
        3.0
    );
    assert!(after["gatelet_open_connections"] >= 1.0, "this very request");
    assert!(after["process_resident_memory_bytes"] > 1e6);
    assert!(
        after[r#"gatelet_requests_total{endpoint="gatelet builtin",class="2xx"}"#] >= 1.0,
        "the first /__stats"
    );
}

#[test]
fn stats_are_off_unless_configured() {
    let gw = gateway(r#"{"version": 3, "endpoints": []}"#);
    assert_eq!(get(gw, "/__stats").status, 404);
}

#[test]
fn krakends_telemetry_metrics_keys_map_to_stats() {
    let on = gateway(
        r#"{"version": 3, "extra_config": {"telemetry/metrics": {"collection_time": "60s",
            "proxy_disabled": true, "router_disabled": false, "backend_disabled": true}}, "endpoints": []}"#,
    );
    let r = get(on, "/__stats");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("gatelet_requests_total"));
    // endpoint_disabled: KrakenD keeps counting but publishes no /__stats.
    let off = gateway(
        r#"{"version": 3, "extra_config": {"telemetry/metrics": {"endpoint_disabled": true}}, "endpoints": []}"#,
    );
    assert_eq!(get(off, "/__stats").status, 404);
}
