//! The central office over real sockets: a fleet of simulated buses (healthy, degraded,
//! refusing, hanging), fan-out answers grouped per member with `_errors`, the health of healths,
//! both on time however many members hang, and fleet headers with `${ENV}` expanded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn bus(fuel: u32, health: &'static str) -> Backend {
    Backend::start(move |seen| match seen.target.as_str() {
        "/__health" => Reply::json(&format!(r#"{{"status":"{health}","agents":{{}}}}"#)),
        _ => Reply::json(&format!(r#"{{"fuel":{fuel},"vin":"secret"}}"#)),
    })
}

#[test]
fn fan_out_and_health_of_healths_are_on_time_and_name_the_missing_buses() {
    let (b1, b2, b3) = (bus(71, "ok"), bus(42, "ok"), bus(13, "ok"));
    let sick = bus(55, "degraded");
    let hanging = Backend::start(|_| Reply::json("{}").delay(Duration::from_secs(10)));
    let refused = refused_addr();
    let gw = gateway(&format!(
        r#"{{"version": 3, "extra_config": {{"gatelet/fleet": {{
              "timeout": "500ms", "max_in_flight": 4,
              "headers": {{"X-Fleet": "${{CARGO_PKG_NAME}}-central"}},
              "members": [
                {{"id": "bus-1", "host": "{}"}}, {{"id": "bus-2", "host": "{}"}}, {{"id": "bus-3", "host": "{}"}},
                {{"id": "bus-sick", "host": "{}"}}, {{"id": "bus-hang", "host": "{}"}}, {{"id": "bus-gone", "host": "http://{refused}"}}]}}}},
            "endpoints": [{{"endpoint": "/fleet/fuel", "timeout": "3s",
                "backend": [{{"url_pattern": "/vehicle", "allow": ["fuel"], "extra_config": {{"gatelet/fleet": {{}}}}}}]}}]}}"#,
        b1.url(),
        b2.url(),
        b3.url(),
        sick.url(),
        hanging.url()
    ));
    let start = Instant::now();
    let r = get(gw, "/fleet/fuel");
    let took = start.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gatelet-completed"), Some("false"));
    assert!(took < Duration::from_millis(500 + 1200), "fan-out took {took:?}");
    assert_eq!(
        r.json(),
        json!({"bus-1": {"fuel": 71}, "bus-2": {"fuel": 42}, "bus-3": {"fuel": 13}, "bus-sick": {"fuel": 55},
               "_errors": {"bus-hang": {"error": "timeout after 500ms"}, "bus-gone": {"error": "connection refused"}}})
    );
    assert_eq!(
        b1.seen()[0].header("x-fleet"),
        Some("gatelet-central"),
        "${{ENV}} expanded at start-up"
    );

    let start = Instant::now();
    let h = get(gw, "/__fleet/health");
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(500 + 1200),
        "health of healths took {took:?}"
    );
    let doc = h.json();
    assert_eq!(doc["status"], "degraded");
    assert_eq!(doc["counts"], json!({"ok": 3, "degraded": 1, "unreachable": 2}));
    assert_eq!(doc["members"]["bus-1"]["status"], "ok");
    assert!(doc["members"]["bus-1"]["latency_ms"].as_u64().unwrap() < 500);
    assert_eq!(doc["members"]["bus-sick"]["health"]["status"], "degraded");
    assert_eq!(
        doc["members"]["bus-hang"],
        json!({"status": "unreachable", "error": "timeout after 500ms"})
    );
    assert_eq!(doc["members"]["bus-gone"]["error"], "connection refused");
}

#[test]
fn a_member_circuit_opens_on_its_own() {
    let good = bus(1, "ok");
    let bad = Backend::start(|_| Reply::json("{}").status(500));
    let gw = gateway(&format!(
        r#"{{"version": 3, "extra_config": {{"gatelet/fleet": {{"members": [{{"id": "good", "host": "{}"}}, {{"id": "bad", "host": "{}"}}]}}}},
            "endpoints": [{{"endpoint": "/f", "backend": [{{"url_pattern": "/v",
                "extra_config": {{"gatelet/fleet": {{}}, "qos/circuit-breaker": {{"interval": 60, "timeout": 60, "max_errors": 2}}}}}}]}}]}}"#,
        good.url(),
        bad.url()
    ));
    for _ in 0..2 {
        assert_eq!(get(gw, "/f").json()["_errors"]["bad"]["error"], "status 500");
    }
    let r = get(gw, "/f").json();
    assert_eq!(r["_errors"]["bad"]["error"], "circuit open");
    assert_eq!(r["good"]["fuel"], 1, "the other member's circuit is its own");
    assert_eq!(bad.seen().len(), 2);
    assert_eq!(good.seen().len(), 3);
    let health = get(gw, "/__fleet/health").json();
    assert_eq!(health["members"]["bad"]["circuit"], "open", "{health}");
    assert!(health["members"]["good"].get("circuit").is_none());
}
