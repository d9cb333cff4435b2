//! Circuit breakers (KrakenD's `qos/circuit-breaker`) over real sockets: open at exactly
//! `max_errors` consecutive failures, refuse without calling the backend while open, show in
//! `/__health`, and close again after one successful probe.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;

#[test]
fn a_failing_backend_opens_its_circuit_and_a_probe_closes_it() {
    let failing = Arc::new(AtomicBool::new(true));
    let f = failing.clone();
    let b = Backend::start(move |_| {
        if f.load(Ordering::SeqCst) {
            Reply::json(r#"{"e":1}"#).status(500)
        } else {
            Reply::json(r#"{"ok":1}"#)
        }
    });
    let gw = gateway(&format!(
        r#"{{"version": 3, "extra_config": {{"router": {{"return_error_msg": true}}}}, "endpoints": [{{"endpoint": "/engine",
            "backend": [{{"host": ["{}"], "url_pattern": "/",
                "extra_config": {{"qos/circuit-breaker": {{"interval": 60, "timeout": "300ms", "max_errors": 3, "log_status_change": true}}}}}}]}}]}}"#,
        b.url()
    ));
    for i in 1..=3 {
        let r = get(gw, "/engine");
        assert_eq!(r.status, 502, "failure {i}");
        assert_eq!(b.seen().len(), i, "failure {i} reached the backend");
    }
    let r = get(gw, "/engine");
    assert_eq!(r.status, 502);
    assert!(r.text().contains("circuit open"), "{}", r.text());
    assert_eq!(
        b.seen().len(),
        3,
        "an open circuit does not call the backend (KrakenD would, once more)"
    );
    let health = get(gw, "/__health").json();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["circuits"]["GET /engine -> /"], "open", "{health}");

    // The backend recovers: after the timeout one probe goes through and closes the circuit.
    failing.store(false, Ordering::SeqCst);
    let ok = poll_until(Duration::from_secs(10), || {
        (get(gw, "/engine").status == 200).then_some(())
    });
    assert!(ok.is_some(), "the circuit never closed");
    let health = get(gw, "/__health").json();
    assert_eq!(health["circuits"], serde_json::json!({}), "{health}");
    assert_eq!(health["status"], "ok");
}

#[test]
fn a_named_circuit_is_reported_under_its_name() {
    let b = Backend::start(|_| Reply::json("{}").status(503));
    let gw = gateway(&format!(
        r#"{{"version": 3, "endpoints": [{{"endpoint": "/v", "backend": [{{"host": ["{}"], "url_pattern": "/v",
            "extra_config": {{"qos/circuit-breaker": {{"interval": 60, "timeout": 60, "max_errors": 1, "name": "vehicle-bus"}}}}}}]}}]}}"#,
        b.url()
    ));
    assert_eq!(get(gw, "/v").status, 502);
    let health = get(gw, "/__health").json();
    assert_eq!(health["circuits"]["vehicle-bus"], "open", "{health}");
}
