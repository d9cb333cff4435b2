//! The backend cache (KrakenD's `qos/http-cache`) over real sockets: answers with `max-age`
//! are served again without touching the backend (fleet members included); answers without it
//! are not kept.

mod common;

use common::*;

#[test]
fn repeat_requests_are_served_from_the_cache_only_when_the_backend_allows() {
    let cached = Backend::start(|_| Reply::json(r#"{"fuel":71}"#).header("Cache-Control", "public, max-age=60"));
    let uncached = Backend::start(|_| Reply::json(r#"{"speed":42}"#));
    let gw = gateway(&format!(
        r#"{{"version": 3, "extra_config": {{"gatelet/fleet": {{"members": [{{"id": "bus-1", "host": "{c}"}}]}}}},
            "endpoints": [
              {{"endpoint": "/fuel", "backend": [{{"host": ["{c}"], "url_pattern": "/fuel",
                 "extra_config": {{"qos/http-cache": {{"shared": true, "max_items": 10, "max_size": 65536}}}}}}]}},
              {{"endpoint": "/speed", "backend": [{{"host": ["{u}"], "url_pattern": "/speed", "extra_config": {{"qos/http-cache": {{}}}}}}]}},
              {{"endpoint": "/fleet/fuel", "backend": [{{"url_pattern": "/member-fuel", "extra_config": {{"gatelet/fleet": {{}}, "qos/http-cache": {{}}}}}}]}}]}}"#,
        c = cached.url(),
        u = uncached.url()
    ));
    for _ in 0..3 {
        assert_eq!(get(gw, "/fuel").json()["fuel"], 71);
        assert_eq!(get(gw, "/speed").json()["speed"], 42);
        assert_eq!(get(gw, "/fleet/fuel").json()["bus-1"]["fuel"], 71);
    }
    let seen = cached.seen();
    assert_eq!(
        seen.iter().filter(|s| s.target == "/fuel").count(),
        1,
        "max-age=60: asked once"
    );
    assert_eq!(
        seen.iter().filter(|s| s.target == "/member-fuel").count(),
        1,
        "per member too"
    );
    assert_eq!(uncached.seen().len(), 3, "no max-age: never kept");
}

#[test]
fn a_get_is_retried_once_after_a_5xx_and_never_more() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    // Fails the first time of every pair.
    let flaky = Backend::start(move |_| {
        if c.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            Reply::json("{}").status(503)
        } else {
            Reply::json(r#"{"ok":1}"#)
        }
    });
    let down = Backend::start(|_| Reply::json("{}").status(500));
    let gw = gateway(&format!(
        r#"{{"version": 3, "endpoints": [
            {{"endpoint": "/flaky", "backend": [{{"host": ["{}"], "url_pattern": "/", "extra_config": {{"gatelet/retry": {{"attempts": 2, "backoff": "20ms"}}}}}}]}},
            {{"endpoint": "/down", "backend": [{{"host": ["{}"], "url_pattern": "/", "extra_config": {{"gatelet/retry": {{}}}}}}]}}]}}"#,
        flaky.url(),
        down.url()
    ));
    assert_eq!(get(gw, "/flaky").status, 200, "the retry succeeded");
    assert_eq!(flaky.seen().len(), 2);
    assert_eq!(get(gw, "/down").status, 502);
    assert_eq!(down.seen().len(), 2, "at most 2 attempts");
}
