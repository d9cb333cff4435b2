//! Rate limits over real sockets: the endpoint bucket (503), per-client buckets keyed by source
//! address, header or path parameter (429), the order client → endpoint, `Retry-After` and
//! `RateLimit-*` headers, and backend buckets (`qos/ratelimit/proxy`) failing their backend.

mod common;

use std::net::Ipv4Addr;

use common::*;

fn limited(backend: &Backend, endpoint_extra: &str) -> std::net::SocketAddr {
    gateway(&format!(
        r#"{{"version": 3, "host": ["{}"], "endpoints": [
            {{"endpoint": "/bus/{{id}}", "extra_config": {endpoint_extra}, "backend": [{{"url_pattern": "/"}}]}}]}}"#,
        backend.url()
    ))
}

fn get_with(addr: std::net::SocketAddr, target: &str, headers: &[&str]) -> Response {
    request(addr, "GET", target, headers, b"")
}

#[test]
fn a_burst_gets_exactly_max_rate_answers_then_503_with_retry_after() {
    let b = Backend::start(|_| Reply::json(r#"{"ok":true}"#));
    // 5 per minute: no token comes back while the test runs, however slow the machine.
    let gw = limited(&b, r#"{"qos/ratelimit/router": {"max_rate": 5, "every": "1m"}}"#);
    for left in (0..5).rev() {
        let r = get(gw, "/bus/1");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("ratelimit-limit"), Some("5"));
        assert_eq!(r.header("ratelimit-remaining"), Some(left.to_string().as_str()));
    }
    let r = get(gw, "/bus/1");
    assert_eq!(r.status, 503, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "one token per 12 s: Retry-After {retry}");
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-gatelet-completed"), Some("false"));
    assert!(r.json()["error"].as_str().unwrap().contains("rate limit"));
    assert_eq!(b.seen().len(), 5, "refused requests never reach the backend");
}

#[test]
fn two_source_addresses_are_limited_independently() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = limited(
        &b,
        r#"{"qos/ratelimit/router": {"client_max_rate": 2, "every": "1h", "strategy": "ip"}}"#,
    );
    let from = |ip: Ipv4Addr| {
        let mut s = connect_from(ip, gw);
        let req = b"GET /bus/1 HTTP/1.1\r\nHost: gw.test\r\n\r\n".to_vec();
        pipeline(&mut s, std::iter::repeat_n(req, 3), 1)
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>()
    };
    assert_eq!(from(Ipv4Addr::new(127, 0, 0, 2)), [200, 200, 429]);
    assert_eq!(from(Ipv4Addr::new(127, 0, 0, 3)), [200, 200, 429]);
    let again = from(Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(again, [429, 429, 429], "a new connection is the same client");
}

#[test]
fn a_refused_client_spends_none_of_the_endpoint_tokens() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = limited(
        &b,
        r#"{"qos/ratelimit/router": {"max_rate": 3, "client_max_rate": 1, "every": "1h",
            "strategy": "header", "key": "X-Bus"}}"#,
    );
    assert_eq!(get_with(gw, "/bus/1", &["X-Bus: a"]).status, 200);
    for _ in 0..4 {
        let r = get_with(gw, "/bus/1", &["X-Bus: a"]);
        assert_eq!(r.status, 429);
        assert!(r.header("retry-after").is_some());
        assert_eq!(
            r.header("ratelimit-limit"),
            Some("1"),
            "the client's bucket is advertised"
        );
    }
    assert_eq!(get_with(gw, "/bus/1", &["X-Bus: b"]).status, 200);
    assert_eq!(get_with(gw, "/bus/1", &["X-Bus: c"]).status, 200);
    assert_eq!(
        get_with(gw, "/bus/1", &["X-Bus: d"]).status,
        503,
        "the endpoint's 3 tokens are spent"
    );
    let missing = get_with(gw, "/bus/1", &[]);
    assert_eq!(missing.status, 429, "no key, no service: {}", missing.text());
}

#[test]
fn the_param_strategy_limits_each_path_value() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = limited(
        &b,
        r#"{"qos/ratelimit/router": {"client_max_rate": 0.5, "client_capacity": 1, "strategy": "param", "key": "id"}}"#,
    );
    assert_eq!(get(gw, "/bus/7").status, 200);
    let r = get(gw, "/bus/7");
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=2).contains(&retry),
        "0.5/s: a token every 2 s, Retry-After {retry}"
    );
    assert_eq!(get(gw, "/bus/8").status, 200);
}

#[test]
fn an_empty_backend_bucket_fails_that_backend_only() {
    let limited_backend = Backend::start(|_| Reply::json(r#"{"a":1}"#));
    let free = Backend::start(|_| Reply::json(r#"{"b":2}"#));
    let gw = gateway(&format!(
        r#"{{"version": 3, "endpoints": [
            {{"endpoint": "/both", "backend": [
                {{"host": ["{l}"], "url_pattern": "/", "extra_config": {{"qos/ratelimit/proxy": {{"max_rate": 1, "every": "1h"}}}}}},
                {{"host": ["{f}"], "url_pattern": "/"}}]}},
            {{"endpoint": "/only", "backend": [
                {{"host": ["{l}"], "url_pattern": "/", "extra_config": {{"qos/ratelimit/proxy": {{"max_rate": 1, "every": "1h"}}}}}}]}}]}}"#,
        l = limited_backend.url(),
        f = free.url()
    ));
    let first = get(gw, "/both");
    assert_eq!((first.status, first.header("x-gatelet-completed")), (200, Some("true")));
    let second = get(gw, "/both");
    assert_eq!(
        (second.status, second.header("x-gatelet-completed")),
        (200, Some("false"))
    );
    assert_eq!(second.json(), serde_json::json!({"b": 2}));
    assert_eq!(get(gw, "/only").status, 200, "each backend entry has its own bucket");
    assert_eq!(get(gw, "/only").status, 502);
    assert_eq!(limited_backend.seen().len(), 2);
}

#[test]
fn limits_do_not_leak_into_other_endpoints_or_builtins() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"], "endpoints": [
            {{"endpoint": "/limited", "extra_config": {{"qos/ratelimit/router": {{"max_rate": 1, "every": "1h"}}}}, "backend": [{{"url_pattern": "/"}}]}},
            {{"endpoint": "/free", "backend": [{{"url_pattern": "/"}}]}}]}}"#,
        b.url()
    ));
    assert_eq!(get(gw, "/limited").status, 200);
    assert_eq!(get(gw, "/limited").status, 503);
    let free = get(gw, "/free");
    assert_eq!(free.status, 200);
    assert_eq!(free.header("ratelimit-limit"), None, "no limiter, no RateLimit headers");
    assert_eq!(get(gw, "/__health").status, 200);
    // Pipelined on one connection: the second request is served after the 503.
    let mut s = connect(gw);
    let two = [
        &b"GET /limited HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /free HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    let statuses: Vec<u16> = pipeline(&mut s, two.iter().map(|r| r.to_vec()), 2)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [503, 200], "a 503 keeps the connection");
}
