//! What a backend sees of gatelet's client and what gatelet makes of its answers, as KrakenD's
//! Go client does it: `Accept-Encoding: gzip` and inflated answers (a gzip bomb bounded),
//! redirects followed within the backend's hosts, the client's `User-Agent` forwarded with
//! `X-Forwarded-Via`, `Content-Length: 0` on empty writes, and `backend/http`'s
//! `return_error_code` / `return_error_details`. Real backends, the real gateway, raw sockets.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use serde_json::json;

const VERSION: &str = concat!("gatelet/", env!("CARGO_PKG_VERSION"));

fn config(endpoints: &str) -> String {
    format!(
        r#"{{"version": 3, "timeout": "2s", "extra_config": {{"router": {{"return_error_msg": true}}}}, "endpoints": [{endpoints}]}}"#
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gzipped(data: &[u8]) -> Reply {
    Reply {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Content-Encoding".into(), "gzip".into()),
        ],
        body: gzip(data),
        delay: std::time::Duration::ZERO,
    }
}

fn text(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: body.as_bytes().to_vec(),
        delay: std::time::Duration::ZERO,
    }
}

fn redirect(status: u16, location: &str) -> Reply {
    text(status, "moved").header("Location", location)
}

#[test]
fn merged_backends_are_asked_for_gzip_and_their_answers_inflated() {
    let b = Backend::start(|seen| match seen.header("accept-encoding") {
        Some("gzip") => gzipped(br#"{"speed":42,"line":"7"}"#),
        _ => Reply::json(r#"{"asked":"not for gzip"}"#),
    });
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/v", "input_headers": ["*"], "backend": [{{"host": ["{u}"], "url_pattern": "/v", "allow": ["speed"]}}]}}"#,
        u = b.url()
    )));
    // The client's own Accept-Encoding never reaches a merged backend: gatelet must be able to
    // read the answer.
    let r = request(gw, "GET", "/v", &["Accept-Encoding: br"], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"speed": 42}));
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(b.seen()[0].header("accept-encoding"), Some("gzip"));
}

#[test]
fn disable_compression_asks_for_no_encoding_and_still_inflates() {
    let b = Backend::start(|seen| match seen.header("accept-encoding") {
        None => gzipped(br#"{"speed":42}"#),
        Some(other) => Reply::json(&format!(r#"{{"asked":"{other}"}}"#)),
    });
    let gw = gateway(&format!(
        r#"{{"version": 3, "timeout": "2s", "disable_compression": true, "endpoints": [{{"endpoint": "/v", "input_headers": ["*"], "backend": [{{"host": ["{u}"], "url_pattern": "/v"}}]}}]}}"#,
        u = b.url()
    ));
    let r = request(gw, "GET", "/v", &["Accept-Encoding: gzip"], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    // A backend that sends gzip anyway (as Go's client would also inflate) is still read.
    assert_eq!(r.json(), json!({"speed": 42}));
    assert_eq!(b.seen()[0].header("accept-encoding"), None);
}

#[test]
fn a_gzip_bomb_is_a_502_not_an_out_of_memory() {
    // 8 MiB of spaces: a few KiB on the wire, 4 times the backend body limit once inflated.
    let bomb = gzip(&vec![b' '; 8 << 20]);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let b = Backend::start(move |seen| match seen.target.as_str() {
        "/bomb" => Reply {
            status: 200,
            headers: vec![("Content-Encoding".into(), "gzip".into())],
            body: bomb.clone(),
            delay: std::time::Duration::ZERO,
        },
        "/corrupt" => Reply::json("not gzip at all").header("Content-Encoding", "gzip"),
        "/br" => Reply::json("{}").header("Content-Encoding", "br"),
        _ => gzipped(b"{\"ok\":true}"),
    });
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/{{what}}", "backend": [{{"host": ["{u}"], "url_pattern": "/{{what}}"}}]}}"#,
        u = b.url()
    )));
    let r = get(gw, "/bomb");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"error": "backend 0 (/{what}): gzip body inflates to over 2097152 bytes"})
    );
    let r = get(gw, "/corrupt");
    assert_eq!(r.status, 502);
    assert!(r.text().contains("bad gzip body"), "{}", r.text());
    let r = get(gw, "/br");
    assert_eq!(r.status, 502);
    assert!(r.text().contains(r#"Content-Encoding \"br\""#), "{}", r.text());
    assert_eq!(get(gw, "/fine").json(), json!({"ok": true}), "the gateway is unharmed");
}

#[test]
fn no_op_passes_the_encoding_through_as_the_client_asked() {
    let body = gzip(b"{\"raw\":1}");
    let sent = body.clone();
    let b = Backend::start(move |seen| match seen.header("accept-encoding") {
        Some(_) => Reply {
            status: 200,
            headers: vec![("Content-Encoding".into(), "gzip".into())],
            body: sent.clone(),
            delay: std::time::Duration::ZERO,
        },
        None => Reply::json(r#"{"raw":1}"#),
    });
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/asks", "output_encoding": "no-op", "input_headers": ["Accept-Encoding"],
             "backend": [{{"host": ["{u}"], "url_pattern": "/r"}}]}},
           {{"endpoint": "/plain", "output_encoding": "no-op", "backend": [{{"host": ["{u}"], "url_pattern": "/r"}}]}}"#,
        u = b.url()
    )));
    let r = request(gw, "GET", "/asks", &["Accept-Encoding: gzip, br"], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.body, body, "the compressed bytes, untouched");
    let r = request(gw, "GET", "/plain", &["Accept-Encoding: gzip"], b"");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.json(), json!({"raw": 1}));
    let seen = b.seen();
    assert_eq!(seen[0].header("accept-encoding"), Some("gzip, br"), "the client's own");
    assert_eq!(seen[1].header("accept-encoding"), None, "not forwarded, not added");
}

#[test]
fn the_cache_keeps_inflated_bodies_of_answers_that_vary_only_by_encoding() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let b = Backend::start(move |_| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        gzipped(format!(r#"{{"n":{n}}}"#).as_bytes())
            .header("Cache-Control", "max-age=60")
            .header("Vary", "Accept-Encoding")
    });
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/c", "backend": [{{"host": ["{u}"], "url_pattern": "/c", "extra_config": {{"qos/http-cache": {{}}}}}}]}}"#,
        u = b.url()
    )));
    assert_eq!(get(gw, "/c").json(), json!({"n": 0}));
    assert_eq!(get(gw, "/c").json(), json!({"n": 0}), "from the cache, inflated");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A backend whose `/old/{code}` redirects to `/new` with that status, and `/new` echoes
/// what it received.
fn redirecting() -> Backend {
    Backend::start(|seen| {
        if let Some(code) = seen.target.strip_prefix("/old/") {
            return redirect(code.parse().unwrap(), "/new?from=old");
        }
        let body = json!({
            "method": seen.method,
            "target": seen.target,
            "body": String::from_utf8_lossy(&seen.body),
            "content_type": seen.header("content-type"),
            "referer": seen.header("referer"),
        });
        Reply::json(&body.to_string())
    })
}

#[test]
fn redirects_are_followed_as_gos_client_follows_them() {
    let b = redirecting();
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/w/{{code}}", "method": "POST", "backend": [{{"host": ["{u}"], "url_pattern": "/old/{{code}}"}}]}}"#,
        u = b.url()
    )));
    let referer = format!("http://{}/old/", b.addr);
    // 301, 302 and 303 become a GET without a body; 307 and 308 keep the method and the body.
    let get = json!({"method": "GET", "body": "", "content_type": null});
    let post = json!({"method": "POST", "body": "hello", "content_type": "text/plain"});
    for (code, expected) in [(301, &get), (302, &get), (303, &get), (307, &post), (308, &post)] {
        let target = format!("/w/{code}");
        let r = request(gw, "POST", &target, &["Content-Type: text/plain"], b"hello");
        assert_eq!(r.status, 200, "{code}: {}", r.text());
        let mut expected = expected.clone();
        expected["target"] = json!("/new?from=old");
        expected["referer"] = json!(format!("{referer}{code}"));
        assert_eq!(r.json(), expected, "{code}");
    }
}

#[test]
fn at_most_ten_requests_in_a_chain() {
    // /hop/N redirects to /hop/N-1; /hop/0 answers.
    let b = Backend::start(
        |seen| match seen.target.strip_prefix("/hop/").and_then(|n| n.parse::<u32>().ok()) {
            Some(0) | None => Reply::json(r#"{"arrived":true}"#),
            Some(n) => redirect(302, &format!("/hop/{}", n - 1)),
        },
    );
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/hop/{{n}}", "backend": [{{"host": ["{u}"], "url_pattern": "/hop/{{n}}"}}]}}"#,
        u = b.url()
    )));
    let r = get(gw, "/hop/9");
    assert_eq!(r.status, 200, "9 redirects, 10 requests: {}", r.text());
    assert_eq!(r.json(), json!({"arrived": true}));
    let before = b.seen().len();
    let r = get(gw, "/hop/10");
    assert_eq!(r.status, 502);
    assert_eq!(
        r.json(),
        json!({"error": "backend 0 (/hop/{n}): redirect stopped after 10 redirects"})
    );
    assert_eq!(b.seen().len() - before, 10, "ten requests, then it stops");
}

#[test]
fn redirects_stay_within_the_backends_hosts() {
    let elsewhere = Backend::start(|_| Reply::json(r#"{"leaked":true}"#));
    let away = format!("http://{}/steal", elsewhere.addr);
    let second = Backend::start(|_| Reply::json(r#"{"second":true}"#));
    let to_second = format!("http://{}/end", second.addr);
    let b = Backend::start(move |seen| match seen.target.as_str() {
        "/away" => redirect(302, &away),
        "/https" => redirect(302, "https://127.0.0.1:1/x"),
        "/malformed" => redirect(302, "http://[::1/x"),
        "/nolocation" => text(302, "where?"),
        _ => redirect(307, &to_second),
    });
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/r/{{what}}", "backend": [{{"host": ["{u}"], "url_pattern": "/{{what}}"}}]}},
           {{"endpoint": "/two", "backend": [{{"host": ["{u}", "{s}"], "url_pattern": "/start"}}]}}"#,
        u = b.url(),
        s = second.url()
    )));
    let r = get(gw, "/r/away");
    assert_eq!(r.status, 502);
    assert_eq!(
        r.json(),
        json!({"error": format!("backend 0 (/{{what}}): redirect to {} refused: not one of the backend's hosts", elsewhere.addr)})
    );
    assert!(elsewhere.seen().is_empty(), "never called");
    let r = get(gw, "/r/https");
    assert_eq!(r.status, 502);
    assert!(
        r.text().contains("https: gatelet calls backends over plain HTTP"),
        "{}",
        r.text()
    );
    let r = get(gw, "/r/malformed");
    assert_eq!(r.status, 502);
    assert!(
        r.text().contains(r#"Location \"http://[::1/x\" refused"#),
        "{}",
        r.text()
    );
    let r = get(gw, "/r/nolocation");
    assert_eq!(r.status, 502, "a 3xx without Location is an answer, and not a 2xx");
    assert!(r.text().contains("status 302"), "{}", r.text());
    // The second host of the list: followed (round-robin may pick either first).
    for _ in 0..2 {
        let r = get(gw, "/two");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json(), json!({"second": true}));
    }
    assert!(second.seen().iter().any(|s| s.target == "/end"));
}

#[test]
fn no_redirect_turns_following_off_and_no_op_follows_too() {
    let b = redirecting();
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/merged", "backend": [{{"host": ["{u}"], "url_pattern": "/old/301",
              "extra_config": {{"backend/http/client": {{"no_redirect": true}}}}}}]}},
           {{"endpoint": "/noop", "output_encoding": "no-op", "backend": [{{"host": ["{u}"], "url_pattern": "/old/301",
              "extra_config": {{"backend/http/client": {{"no_redirect": true}}}}}}]}},
           {{"endpoint": "/noop-follows", "output_encoding": "no-op", "backend": [{{"host": ["{u}"], "url_pattern": "/old/302"}}]}},
           {{"endpoint": "/no-body-resent", "method": "PUT", "backend": [{{"host": ["{u}"], "url_pattern": "/old/307",
              "extra_config": {{"backend/http/client": {{"send_body_on_redirect": false}}}}}}]}}"#,
        u = b.url()
    )));
    let r = get(gw, "/merged");
    assert_eq!(r.status, 502);
    assert!(r.text().contains("status 301"), "{}", r.text());
    let r = get(gw, "/noop");
    assert_eq!(r.status, 301, "passed through");
    assert_eq!(r.header("location"), Some("/new?from=old"));
    let r = get(gw, "/noop-follows");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["target"], "/new?from=old");
    let r = request(gw, "PUT", "/no-body-resent", &[], b"data");
    assert_eq!(r.status, 502, "the 307 is the answer: {}", r.text());
    assert!(r.text().contains("status 307"), "{}", r.text());
    let r = request(gw, "PUT", "/no-body-resent", &[], b"");
    assert_eq!(
        r.status,
        200,
        "without a body there is nothing to re-send: {}",
        r.text()
    );
}

#[test]
fn the_clients_user_agent_is_forwarded_with_x_forwarded_via() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/all", "input_headers": ["*"], "backend": [{{"host": ["{u}"], "url_pattern": "/all"}}]}},
           {{"endpoint": "/listed", "input_headers": ["User-Agent"], "backend": [{{"host": ["{u}"], "url_pattern": "/listed"}}]}},
           {{"endpoint": "/default", "backend": [{{"host": ["{u}"], "url_pattern": "/default"}}]}}"#,
        u = b.url()
    )));
    let client = ["User-Agent: busapp/3.1"];
    for (path, headers) in [
        ("/all", &client[..]),
        ("/all", &[]),
        ("/listed", &client),
        ("/default", &client),
    ] {
        assert_eq!(request(gw, "GET", path, headers, b"").status, 200, "{path}");
    }
    let seen = b.seen();
    let ua = |i: usize| (seen[i].header("user-agent"), seen[i].header("x-forwarded-via"));
    assert_eq!(ua(0), (Some("busapp/3.1"), Some(VERSION)));
    assert_eq!(ua(1), (Some(VERSION), None), "no client User-Agent: gatelet's");
    assert_eq!(ua(2), (Some("busapp/3.1"), Some(VERSION)));
    assert_eq!(ua(3), (Some(VERSION), None), "not forwarded: gatelet's");
}

#[test]
fn empty_writes_reach_the_backend_with_content_length_zero() {
    let b = Backend::start(|_| Reply::json("{}"));
    let mut endpoints = Vec::new();
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        endpoints.push(format!(
            r#"{{"endpoint": "/noop", "method": "{method}", "output_encoding": "no-op", "backend": [{{"host": ["{u}"], "url_pattern": "/noop"}}]}},
               {{"endpoint": "/merged", "method": "{method}", "backend": [{{"host": ["{u}"], "url_pattern": "/merged"}}]}}"#,
            u = b.url()
        ));
    }
    let gw = gateway(&config(&endpoints.join(",")));
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        for path in ["/noop", "/merged"] {
            assert_eq!(request(gw, method, path, &[], b"").status, 200, "{method} {path}");
        }
    }
    assert_eq!(request(gw, "POST", "/noop", &[], b"abc").status, 200);
    let seen = b.seen();
    for s in &seen[..6] {
        assert_eq!(s.header("content-length"), Some("0"), "{} {}", s.method, s.target);
    }
    for s in &seen[6..8] {
        assert_eq!(
            s.header("content-length"),
            None,
            "{} {}: as Go, no length",
            s.method,
            s.target
        );
    }
    assert_eq!(seen[8].header("content-length"), Some("3"));
    assert_eq!(seen[8].body, b"abc");
}

#[test]
fn return_error_details_reports_a_backends_error_under_its_name() {
    let ok = Backend::start(|_| Reply::json(r#"{"foo":42}"#));
    let broken = Backend::start(|_| text(404, "404 page not found\n"));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/detail", "backend": [
            {{"host": ["{a}"], "url_pattern": "/foo"}},
            {{"host": ["{b}"], "url_pattern": "/bar", "group": "never", "extra_config": {{"backend/http": {{"return_error_details": "backend_b"}}}}}}]}},
           {{"endpoint": "/alone", "backend": [
            {{"host": ["{b}"], "url_pattern": "/bar", "extra_config": {{"backend/http": {{"return_error_details": "b"}}}}}}]}},
           {{"endpoint": "/fine", "backend": [
            {{"host": ["{a}"], "url_pattern": "/foo", "extra_config": {{"backend/http": {{"return_error_details": "a"}}}}}}]}}"#,
        a = ok.url(),
        b = broken.url()
    )));
    let r = get(gw, "/detail");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gatelet-completed"), Some("false"));
    assert_eq!(
        r.json(),
        json!({"foo": 42, "error_backend_b": {"http_status_code": 404, "http_body": "404 page not found\n",
               "http_body_encoding": "text/plain; charset=utf-8"}})
    );
    let r = get(gw, "/alone");
    assert_eq!(r.status, 200, "reported, not failed: {}", r.text());
    assert_eq!(r.header("x-gatelet-completed"), Some("false"));
    assert_eq!(r.json()["error_b"]["http_status_code"], 404);
    let r = get(gw, "/fine");
    assert_eq!(r.json(), json!({"foo": 42}), "no key when there is no error");
    assert_eq!(r.header("x-gatelet-completed"), Some("true"));
}

#[test]
fn return_error_code_gives_the_client_the_backends_status() {
    let ok = Backend::start(|_| Reply::json(r#"{"foo":42}"#));
    let teapot = Backend::start(|_| text(418, "short and stout"));
    let down = Backend::start(|_| text(503, "down"));
    let code = r#""extra_config": {"backend/http": {"return_error_code": true}}"#;
    let endpoints = format!(
        r#"{{"endpoint": "/one", "backend": [{{"host": ["{t}"], "url_pattern": "/t", {code}}}]}},
           {{"endpoint": "/partial", "backend": [{{"host": ["{a}"], "url_pattern": "/a"}}, {{"host": ["{t}"], "url_pattern": "/t", {code}}}]}},
           {{"endpoint": "/none", "backend": [{{"host": ["{d}"], "url_pattern": "/d"}}, {{"host": ["{t}"], "url_pattern": "/t", {code}}}]}},
           {{"endpoint": "/unflagged", "backend": [{{"host": ["{t}"], "url_pattern": "/t"}}]}}"#,
        a = ok.url(),
        t = teapot.url(),
        d = down.url()
    );
    let quiet = gateway(&format!(
        r#"{{"version": 3, "timeout": "2s", "endpoints": [{endpoints}]}}"#
    ));
    let r = get(quiet, "/one");
    assert_eq!(r.status, 418);
    assert!(r.body.is_empty(), "obfuscated: {}", r.text());
    assert_eq!(r.header("x-gatelet-completed"), Some("false"));
    let r = get(quiet, "/partial");
    assert_eq!((r.status, r.header("x-gatelet-completed")), (200, Some("false")));
    assert_eq!(r.json(), json!({"foo": 42}));
    let r = get(quiet, "/none");
    assert_eq!(r.status, 418, "nothing answered: the flagged backend's status");
    assert_eq!(get(quiet, "/unflagged").status, 502);
    // With the router's return_error_msg the backend's body and Content-Type come along.
    let open = gateway(&config(&endpoints));
    let r = get(open, "/one");
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), "short and stout");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[test]
fn backend_http_keys_are_checked() {
    let errors = |extra: &str, output: &str| {
        let text = format!(
            r#"{{"version": 3, "endpoints": [{{"endpoint": "/x", "output_encoding": "{output}",
                "backend": [{{"host": ["http://127.0.0.1:1"], "url_pattern": "/x", "extra_config": {extra}}}]}}]}}"#
        );
        match gatelet::config::parse("t.json", &text) {
            Ok(c) => c
                .warnings
                .iter()
                .map(|w| format!("warning {}", w.message))
                .collect::<Vec<_>>(),
            Err(e) => e.iter().map(|e| e.message.clone()).collect(),
        }
    };
    assert_eq!(
        errors(r#"{"backend/http": {"return_error_code": true}}"#, "json"),
        Vec::<String>::new()
    );
    assert_eq!(
        errors(
            r#"{"backend/http": {"return_error_code": "yes", "return_error_details": ""}}"#,
            "json"
        ),
        ["expected true or false, found a string", "must not be empty"]
    );
    assert_eq!(
        errors(r#"{"backend/http": {"return_error_details": "b"}}"#, "no-op"),
        ["has no effect on a \"no-op\" pass-through: the backend's status and body reach the client as they are"]
    );
    assert_eq!(
        errors(
            r#"{"backend/http": {"return_error_code": true, "return_error_details": "b"}}"#,
            "json"
        ),
        [
            "warning ignored: with return_error_details the backend's errors are reported under \"error_<name>\" (as KrakenD does)"
        ]
    );
    assert_eq!(
        errors(
            r#"{"backend/http/client": {"no_redirect": 1, "proxy_address": "http://p", "client_tls": {}, "x": 1}}"#,
            "json"
        ),
        [
            "expected true or false, found a number",
            "KrakenD key \"proxy_address\" is not supported by gatelet: backends are called directly",
            "KrakenD key \"client_tls\" is not supported by gatelet; gatelet calls backends over plain HTTP on the bus",
            "unknown key \"x\": not supported by gatelet",
        ]
    );
}
