//! Security at the edge, over real sockets. So far: CORS (KrakenD's `security/cors`) —
//! preflights answered before routing (204 allowed, 403 denied with the reason), actual answers
//! decorated only for allowed origins, `Vary: Origin` always.

mod common;

use common::*;

fn cors_gateway(backend: &Backend) -> std::net::SocketAddr {
    gateway(&format!(
        r#"{{"version": 3, "host": ["{}"],
            "extra_config": {{"security/cors": {{"allow_origins": ["https://office.example"],
                "allow_methods": ["GET", "POST"], "allow_headers": ["Authorization", "Content-Type"],
                "expose_headers": ["X-Gatelet-Completed"], "max_age": "10m", "allow_credentials": true}}}},
            "endpoints": [{{"endpoint": "/vehicle", "backend": [{{"url_pattern": "/"}}]}}]}}"#,
        backend.url()
    ))
}

#[test]
fn cors_preflights_are_answered_before_routing() {
    let b = Backend::start(|_| Reply::json(r#"{"fuel":71}"#));
    let gw = cors_gateway(&b);
    let ok = request(
        gw,
        "OPTIONS",
        "/vehicle",
        &[
            "Origin: https://office.example",
            "Access-Control-Request-Method: GET",
            "Access-Control-Request-Headers: authorization",
        ],
        b"",
    );
    assert_eq!(ok.status, 204, "{}", ok.text());
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://office.example"));
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("vary"), Some("Origin"));

    let denied = request(
        gw,
        "OPTIONS",
        "/vehicle",
        &["Origin: https://evil.example", "Access-Control-Request-Method: GET"],
        b"",
    );
    assert_eq!(denied.status, 403);
    assert!(denied.header("access-control-allow-origin").is_none());
    assert!(denied.json()["error"].as_str().unwrap().contains("origin not allowed"));
    let bad_method = request(
        gw,
        "OPTIONS",
        "/vehicle",
        &[
            "Origin: https://office.example",
            "Access-Control-Request-Method: DELETE",
        ],
        b"",
    );
    assert_eq!(bad_method.status, 403);
    assert!(b.seen().is_empty(), "preflights never reach a backend");
}

#[test]
fn cors_decorates_answers_for_allowed_origins_only() {
    let b = Backend::start(|_| Reply::json(r#"{"fuel":71}"#));
    let gw = cors_gateway(&b);
    let r = request(gw, "GET", "/vehicle", &["Origin: https://office.example"], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://office.example"));
    assert_eq!(r.header("access-control-expose-headers"), Some("X-Gatelet-Completed"));
    assert_eq!(r.header("vary"), Some("Origin"));
    let other = request(gw, "GET", "/vehicle", &["Origin: https://evil.example"], b"");
    assert_eq!(
        other.status, 200,
        "CORS is the browser's rule; the answer itself is not refused"
    );
    assert!(other.header("access-control-allow-origin").is_none());
    let missing = request(gw, "GET", "/nope", &["Origin: https://office.example"], b"");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("access-control-allow-origin"),
        Some("https://office.example"),
        "errors too"
    );
}

#[test]
fn without_cors_an_options_request_is_an_ordinary_405() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = gateway(&format!(
        r#"{{"version": 3, "endpoints": [{{"endpoint": "/v", "backend": [{{"host": ["{}"], "url_pattern": "/"}}]}}]}}"#,
        b.url()
    ));
    let r = request(
        gw,
        "OPTIONS",
        "/v",
        &["Origin: https://office.example", "Access-Control-Request-Method: GET"],
        b"",
    );
    assert_eq!(r.status, 405);
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let b = Backend::start(|_| Reply::json("{}"));
    let config = |trusted: &str| {
        format!(
            r#"{{"version": 3, "extra_config": {{"router": {{"trusted_proxies": [{trusted}]}}}},
                "endpoints": [{{"endpoint": "/v", "extra_config": {{"qos/ratelimit/router": {{"client_max_rate": 1, "every": "1h", "strategy": "ip"}}}},
                "backend": [{{"host": ["{}"], "url_pattern": "/"}}]}}]}}"#,
            b.url()
        )
    };
    // This test's proxy is 127.0.0.1: trusted, so each forwarded client has its own bucket.
    let gw = gateway(&config(r#""127.0.0.0/8""#));
    let from = |xff: &str| request(gw, "GET", "/v", &[&format!("X-Forwarded-For: {xff}")], b"").status;
    assert_eq!(from("203.0.113.7"), 200);
    assert_eq!(from("203.0.113.7"), 429);
    assert_eq!(from("198.51.100.1"), 200, "another client behind the same proxy");
    assert_eq!(
        from("203.0.113.7, 198.51.100.2"),
        200,
        "the right-most untrusted entry is the client"
    );
    let seen = b.seen();
    assert_eq!(seen.last().unwrap().header("x-forwarded-for"), Some("198.51.100.2"));

    // Not trusted: the header is the client's own claim and changes nothing.
    let gw = gateway(&config(""));
    let from = |xff: &str| request(gw, "GET", "/v", &[&format!("X-Forwarded-For: {xff}")], b"").status;
    assert_eq!(from("203.0.113.7"), 200);
    assert_eq!(from("198.51.100.1"), 429, "same socket peer, same bucket");
}

/// The hex SHA-256 of `key`, as an operator makes it: `printf %s KEY | sha256sum`.
fn sha256_hex(key: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(key.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn api_keys_are_checked_before_rate_limits_with_401_and_403() {
    let b = Backend::start(|_| Reply::json(r#"{"ok":true}"#));
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"],
            "extra_config": {{"gatelet/api-keys": {{"keys": [
                {{"name": "central-office", "sha256": "{}", "roles": ["read", "command"]}},
                {{"name": "depot", "sha256": "{}", "roles": ["read"]}}]}}}},
            "endpoints": [
                {{"endpoint": "/status", "extra_config": {{"gatelet/api-keys": {{"roles": ["read"]}},
                    "qos/ratelimit/router": {{"max_rate": 1, "every": "1h"}}}}, "backend": [{{"url_pattern": "/"}}]}},
                {{"endpoint": "/command", "method": "POST", "extra_config": {{"gatelet/api-keys": {{"roles": ["command"]}}}},
                    "backend": [{{"url_pattern": "/"}}]}},
                {{"endpoint": "/public", "backend": [{{"url_pattern": "/"}}]}}]}}"#,
        b.url(),
        sha256_hex("office-key"),
        sha256_hex("depot-key")
    ));
    for wrong in [
        &[][..],
        &["Authorization: Bearer nope"][..],
        &["Authorization: office-key"][..],
    ] {
        let r = request(gw, "GET", "/status", wrong, b"");
        assert_eq!(r.status, 401, "{wrong:?}: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some(r#"Bearer realm="gatelet""#));
    }
    let r = request(gw, "GET", "/status", &["Authorization: Bearer depot-key"], b"");
    assert_eq!(
        r.status,
        200,
        "401s spent none of the endpoint's single token: {}",
        r.text()
    );
    assert_eq!(
        request(gw, "POST", "/command", &["Authorization: Bearer depot-key"], b"").status,
        403
    );
    assert_eq!(
        request(gw, "POST", "/command", &["Authorization: Bearer office-key"], b"").status,
        200
    );
    assert_eq!(
        get(gw, "/public").status,
        200,
        "endpoints without the namespace need no key"
    );
    assert_eq!(b.seen().len(), 3, "refused requests never reach a backend");
}
