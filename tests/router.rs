//! KrakenD's router at the edge, over real sockets: gin's path fixes (a trailing slash, `//`,
//! `..` or other letter case redirected to the endpoint, 301 for GET and 307 otherwise, never to
//! another host), the four router keys that turn them off or on, and the plain-text 404 and
//! 405 answers.

mod common;

use common::*;

/// A gateway with `/static`, `/bus/{id}` (GET) and `/upload` (POST) on `b`, and `router` as the
/// service's `extra_config.router`.
fn router_gateway(b: &Backend, router: &str) -> std::net::SocketAddr {
    gateway(&format!(
        r#"{{"version": 3, "host": ["{}"], "extra_config": {{"router": {router}}},
            "endpoints": [
              {{"endpoint": "/static", "backend": [{{"url_pattern": "/s"}}]}},
              {{"endpoint": "/bus/{{id}}", "backend": [{{"url_pattern": "/b/{{id}}"}}]}},
              {{"endpoint": "/upload", "method": "POST", "output_encoding": "no-op",
                "backend": [{{"url_pattern": "/u", "encoding": "no-op"}}]}}]}}"#,
        b.url()
    ))
}

#[test]
fn a_slash_or_letter_case_away_is_redirected_as_krakend_does() {
    let b = Backend::start(|_| Reply::json(r#"{"ok":true}"#));
    let gw = router_gateway(&b, "{}");
    let r = get(gw, "/static/?q=1");
    assert_eq!(r.status, 301, "{}", r.text());
    assert_eq!(r.header("location"), Some("/static?q=1"), "the query string is kept");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.text(), "<a href=\"/static?q=1\">Moved Permanently</a>.\n\n");
    let r = get(gw, "/StAtic");
    assert_eq!((r.status, r.header("location")), (301, Some("/static")));
    let r = get(gw, "/a/..//STATIC/");
    assert_eq!((r.status, r.header("location")), (301, Some("/static")));
    let r = get(gw, "/BUS/Seven/");
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("/bus/Seven")),
        "parameter values are kept as sent"
    );
    // Anything but GET keeps its method and body: 307.
    let r = request(gw, "POST", "/Upload/", &[], b"{}");
    assert_eq!((r.status, r.header("location")), (307, Some("/upload")));
    assert!(r.text().is_empty());
    let r = request(gw, "HEAD", "/static/", &[], b"");
    assert_eq!((r.status, r.header("location")), (307, Some("/static")));
    // Only routes of the request's method count: a POST to /static/ is not redirected.
    assert_eq!(request(gw, "POST", "/static/", &[], b"").status, 404);
    assert!(b.seen().is_empty(), "redirects never reach a backend");
    // The redirect is followed to the endpoint.
    assert_eq!(get(gw, "/static").status, 200);
}

#[test]
fn a_redirect_never_points_at_another_host() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"],
            "endpoints": [{{"endpoint": "//evil.example", "backend": [{{"url_pattern": "/"}}]}},
                          {{"endpoint": "/{{who}}", "backend": [{{"url_pattern": "/"}}]}}]}}"#,
        b.url()
    ));
    // `//evil.example` toggled is an endpoint, but as a Location it names another host.
    let r = get(gw, "//evil.example/");
    assert_eq!(r.status, 404, "{:?}", r.header("location"));
    let r = get(gw, "//evil.example");
    assert_eq!(r.status, 200, "the endpoint itself is served");
    let r = get(gw, "/\\evil.example/");
    assert_ne!(r.status, 301, "{:?}", r.header("location"));
    let r = get(gw, "/%5Cevil.example/");
    assert_eq!(
        r.header("location"),
        Some("/%5Cevil.example"),
        "encoded, it stays a path"
    );
}

#[test]
fn the_router_keys_turn_each_fix_off_or_on() {
    let b = Backend::start(|seen| Reply::json(&format!(r#"{{"path":"{}"}}"#, seen.target)));
    let off = router_gateway(
        &b,
        r#"{"disable_redirect_trailing_slash": true, "disable_redirect_fixed_path": true}"#,
    );
    assert_eq!(get(off, "/static/").status, 404);
    assert_eq!(get(off, "/StAtic").status, 404);
    let slash_only = router_gateway(&b, r#"{"disable_redirect_fixed_path": true}"#);
    assert_eq!(get(slash_only, "/static/").status, 301);
    assert_eq!(get(slash_only, "/StAtic").status, 404);
    let case_only = router_gateway(&b, r#"{"disable_redirect_trailing_slash": true}"#);
    assert_eq!(get(case_only, "/StAtic").status, 301);
    // remove_extra_slash: served at once from the cleaned path, parameters included.
    let clean = router_gateway(&b, r#"{"remove_extra_slash": true}"#);
    let r = get(clean, "//bus///7");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/b/7");
    assert_eq!(get(clean, "/x/../static").status, 200);
    let plain = router_gateway(&b, "{}");
    assert_eq!(get(plain, "//bus///7").header("location"), Some("/bus/7"));
}

#[test]
fn doubly_encoded_and_dot_parameters_are_refused_unless_path_decoding_is_off() {
    let b = Backend::start(|seen| Reply::json(&format!(r#"{{"path":"{}"}}"#, seen.target)));
    let gw = router_gateway(&b, "{}");
    for bad in ["/bus/..%252Fetc", "/bus/%25", "/bus/%zz", "/bus/%2e%2E", "/bus/.%2e"] {
        let r = get(gw, bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    assert_eq!(get(gw, "/bus/a%20b").json()["path"], "/b/a%20b", "once-encoded is fine");
    let lax = router_gateway(&b, r#"{"disable_path_decoding": true}"#);
    assert_eq!(get(lax, "/bus/..%252Fetc").json()["path"], "/b/..%252Fetc");
    assert_eq!(get(lax, "/bus/%2e%2e").status, 400, "a dot segment is never sent on");
    assert_eq!(b.seen().len(), 2);
}

#[test]
fn unknown_paths_and_wrong_methods_get_krakends_plain_answers() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = router_gateway(&b, "{}");
    let r = get(gw, "/nowhere");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "404 page not found");
    assert_eq!(r.header("x-gatelet-completed"), Some("false"));
    let r = request(gw, "DELETE", "/static", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.text(), "405 method not allowed");
    assert_eq!(
        r.header("allow"),
        Some("GET, HEAD"),
        "gatelet adds Allow, as RFC 9110 asks"
    );
}
