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

#[test]
fn one_clients_answer_never_reaches_another() {
    // The backend answers per user and says max-age but not public: a shared cache must not
    // keep it for requests that carried credentials (RFC 9111 3.5).
    let per_user = Backend::start(|s| {
        let who = s.header("authorization").unwrap_or("nobody").to_string();
        Reply::json(&format!(r#"{{"user":"{who}"}}"#)).header("Cache-Control", "max-age=60")
    });
    let public = Backend::start(|_| Reply::json(r#"{"map":1}"#).header("Cache-Control", "public, max-age=60"));
    let varies = Backend::start(|_| {
        Reply::json(r#"{"v":1}"#)
            .header("Cache-Control", "max-age=60")
            .header("Vary", "Accept-Language")
    });
    let gw = gateway(&format!(
        r#"{{"version": 3, "endpoints": [
              {{"endpoint": "/me", "input_headers": ["Authorization"], "backend": [{{"host": ["{u}"], "url_pattern": "/me",
                 "extra_config": {{"qos/http-cache": {{}}}}}}]}},
              {{"endpoint": "/map", "input_headers": ["Authorization"], "backend": [{{"host": ["{p}"], "url_pattern": "/map",
                 "extra_config": {{"qos/http-cache": {{}}}}}}]}},
              {{"endpoint": "/v", "backend": [{{"host": ["{v}"], "url_pattern": "/v", "extra_config": {{"qos/http-cache": {{}}}}}}]}}]}}"#,
        u = per_user.url(),
        p = public.url(),
        v = varies.url()
    ));
    let alice = request(gw, "GET", "/me", &["Authorization: Bearer alice"], b"");
    let bob = request(gw, "GET", "/me", &["Authorization: Bearer bob"], b"");
    assert_eq!(alice.json()["user"], "Bearer alice");
    assert_eq!(bob.json()["user"], "Bearer bob", "bob must not get alice's answer");
    assert_eq!(per_user.seen().len(), 2);
    for who in ["alice", "bob"] {
        let r = request(gw, "GET", "/map", &[&format!("Authorization: Bearer {who}")], b"");
        assert_eq!(r.json()["map"], 1);
    }
    assert_eq!(public.seen().len(), 1, "public: kept even with credentials");
    for _ in 0..2 {
        assert_eq!(get(gw, "/v").json()["v"], 1);
    }
    assert_eq!(varies.seen().len(), 2, "an answer with Vary is not kept");
}
