//! The gateway end to end: real backends, the real gateway, raw sockets.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn config(endpoints: &str) -> String {
    format!(r#"{{"version": 3, "timeout": "1s", "endpoints": [{endpoints}]}}"#)
}

#[test]
fn aggregation_applies_target_allow_deny_mapping_group_and_collection_in_config_order() {
    let vehicle =
        Backend::start(|_| Reply::json(r#"{"data":{"vehicle":{"fuel":71,"speed":42,"vin":"X1"},"ignored":1}}"#));
    let tyres =
        Backend::start(|_| Reply::json(r#"{"front":{"left":2.1,"right":2.2,"sensor":"a"},"rear":2.4,"fuel":0}"#));
    let stops = Backend::start(|_| Reply::json(r#"[{"id":1},{"id":2}]"#));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/bus/{{id}}/status", "backend": [
            {{"host": ["{v}"], "url_pattern": "/v/{{id}}", "target": "data.vehicle", "deny": ["vin"], "mapping": {{"speed": "speed_kmh"}}}},
            {{"host": ["{t}"], "url_pattern": "/tyres", "allow": ["front.left", "rear"], "deny": ["rear"], "group": "tyres"}},
            {{"host": ["{s}"], "url_pattern": "/stops", "is_collection": true, "mapping": {{"collection": "stops"}}}}
        ]}}"#,
        v = vehicle.url(),
        t = tyres.url(),
        s = stops.url()
    )));
    let r = get(gw, "/bus/7/status");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gatelet-completed"), Some("true"));
    assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(
        r.json(),
        json!({"fuel": 71, "speed_kmh": 42, "tyres": {"front": {"left": 2.1}, "rear": 2.4}, "stops": [{"id": 1}, {"id": 2}]})
    );
    assert_eq!(vehicle.seen()[0].target, "/v/7");
    assert!(r.header("cache-control").is_none());
}

#[test]
fn later_backends_win_key_conflicts_deterministically() {
    let a = Backend::start(|_| Reply::json(r#"{"k":"a","only_a":1}"#));
    // The first backend is slower, so arrival order is the reverse of config order.
    let b = Backend::start(|_| Reply::json(r#"{"k":"b"}"#));
    let slow_a = Backend::start(|_| Reply::json(r#"{"k":"a","only_a":1}"#).delay(Duration::from_millis(150)));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/x", "backend": [{{"host": ["{}"], "url_pattern": "/"}}, {{"host": ["{}"], "url_pattern": "/"}}]}},
           {{"endpoint": "/y", "backend": [{{"host": ["{}"], "url_pattern": "/"}}, {{"host": ["{}"], "url_pattern": "/"}}]}}"#,
        a.url(),
        b.url(),
        slow_a.url(),
        b.url()
    )));
    assert_eq!(get(gw, "/x").json(), json!({"k": "b", "only_a": 1}));
    assert_eq!(get(gw, "/y").json(), json!({"k": "b", "only_a": 1}));
}

#[test]
fn a_slow_backend_gives_a_partial_answer_within_the_deadline() {
    let fast = Backend::start(|_| Reply::json(r#"{"fast":true}"#));
    let slow = Backend::start(|_| Reply::json(r#"{"slow":true}"#).delay(Duration::from_secs(5)));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/p", "timeout": "300ms", "cache_ttl": "60s",
             "backend": [{{"host": ["{}"], "url_pattern": "/"}}, {{"host": ["{}"], "url_pattern": "/"}}]}},
           {{"endpoint": "/c", "cache_ttl": "60s", "backend": [{{"host": ["{}"], "url_pattern": "/"}}]}}"#,
        fast.url(),
        slow.url(),
        fast.url()
    )));
    let start = Instant::now();
    let r = get(gw, "/p");
    let took = start.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-gatelet-completed"), Some("false"));
    assert_eq!(r.json(), json!({"fast": true}));
    assert!(took < Duration::from_millis(300 + 1200), "answer took {took:?}");
    assert!(r.header("cache-control").is_none(), "partial answers are not cacheable");
    let c = get(gw, "/c");
    assert_eq!(c.header("cache-control"), Some("public, max-age=60"));
}

#[test]
fn no_backend_in_time_is_504_and_all_failed_is_502() {
    let slow = Backend::start(|_| Reply::json("{}").delay(Duration::from_secs(5)));
    let broken = Backend::start(|_| Reply::json(r#"{"e":1}"#).status(500));
    let refused = refused_addr();
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/slow", "timeout": "200ms", "backend": [{{"host": ["{}"], "url_pattern": "/"}}]}},
           {{"endpoint": "/down", "backend": [{{"host": ["http://{refused}"], "url_pattern": "/"}}, {{"host": ["{}"], "url_pattern": "/"}}]}}"#,
        slow.url(),
        broken.url()
    )));
    let start = Instant::now();
    let r = get(gw, "/slow");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(start.elapsed() < Duration::from_millis(200 + 1200));
    assert_eq!(r.json(), json!({"error": "the endpoint timed out"}));
    assert_eq!(r.header("x-gatelet-completed"), Some("false"));
    let r = get(gw, "/down");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"error": "all backends failed"}),
        "no backend details without return_error_msg"
    );
}

#[test]
fn return_error_msg_puts_backend_details_in_the_error() {
    let broken = Backend::start(|_| Reply::json("{}").status(503));
    let gw = gateway(&format!(
        r#"{{"version": 3, "extra_config": {{"router": {{"return_error_msg": true}}}},
            "endpoints": [{{"endpoint": "/e", "backend": [{{"host": ["{}"], "url_pattern": "/up"}}]}}]}}"#,
        broken.url()
    ));
    let r = get(gw, "/e");
    assert_eq!(r.status, 502);
    assert_eq!(r.json(), json!({"error": "backend 0 (/up): status 503"}));
}

#[test]
fn only_configured_headers_and_query_strings_reach_backends() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/f", "input_headers": ["X-Bus-Id", "Content-Type"], "input_query_strings": ["line"],
             "backend": [{{"host": ["{u}"], "url_pattern": "/f?fixed=1"}}]}},
           {{"endpoint": "/d", "backend": [{{"host": ["{u}"], "url_pattern": "/d"}}]}},
           {{"endpoint": "/all", "input_headers": ["*"], "input_query_strings": ["*"], "backend": [{{"host": ["{u}"], "url_pattern": "/all"}}]}}"#,
        u = b.url()
    )));
    let h = [
        "X-Bus-Id: 42",
        "X-Secret: s",
        "Content-Type: text/plain",
        "User-Agent: curl/8",
    ];
    assert_eq!(request(gw, "GET", "/f?line=7&stop=3", &h, b"").status, 200);
    assert_eq!(request(gw, "GET", "/d?line=7", &h, b"").status, 200);
    assert_eq!(request(gw, "GET", "/all?a=1&b=2", &h, b"").status, 200);
    let seen = b.seen();
    let f = &seen[0];
    assert_eq!(f.target, "/f?fixed=1&line=7");
    assert_eq!(f.header("x-bus-id"), Some("42"));
    assert_eq!(f.header("content-type"), Some("text/plain"));
    assert_eq!(f.header("x-secret"), None);
    assert_eq!(f.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(f.header("x-forwarded-host"), Some("gw.test"));
    assert_eq!(
        f.header("user-agent"),
        Some(concat!("gatelet/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(f.header("host"), Some(b.addr.to_string().as_str()));
    let d = &seen[1];
    assert_eq!(d.target, "/d", "no query forwarded by default");
    assert_eq!(
        d.header("content-type"),
        Some("text/plain"),
        "Content-Type forwarded by default"
    );
    assert_eq!(d.header("x-bus-id"), None);
    let all = &seen[2];
    assert_eq!(all.target, "/all?a=1&b=2");
    assert_eq!(all.header("x-secret"), Some("s"));
    assert_eq!(all.header("connection"), None, "hop-by-hop headers never forwarded");
}

#[test]
fn no_op_streams_status_headers_and_body_unchanged() {
    let b = Backend::start(|req| Reply {
        status: 201,
        headers: vec![
            ("X-Upstream".into(), "yes".into()),
            ("Content-Type".into(), "application/octet-stream".into()),
        ],
        body: [b"\x00\xffraw:".as_slice(), &req.body].concat(),
        delay: Duration::ZERO,
    });
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/raw", "method": "POST", "output_encoding": "no-op",
             "backend": [{{"host": ["{}"], "url_pattern": "/sink", "encoding": "no-op"}}]}}"#,
        b.url()
    )));
    let r = request(gw, "POST", "/raw", &["Content-Type: text/plain"], b"driver: hello");
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-upstream"), Some("yes"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.body, b"\x00\xffraw:driver: hello");
    assert_eq!(b.seen()[0].method, "POST");
    assert_eq!(b.seen()[0].body, b"driver: hello");
}

#[test]
fn output_encodings_json_collection_and_string() {
    let list = Backend::start(|_| Reply::json(r#"[1,2,3]"#));
    let text = Backend::start(|_| Reply::json("plain words"));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/list", "output_encoding": "json-collection", "backend": [{{"host": ["{}"], "url_pattern": "/", "is_collection": true}}]}},
           {{"endpoint": "/text", "output_encoding": "string", "backend": [{{"host": ["{}"], "url_pattern": "/", "encoding": "string"}}]}},
           {{"endpoint": "/safe", "backend": [{{"host": ["{}"], "url_pattern": "/", "encoding": "safejson"}}]}}"#,
        list.url(),
        text.url(),
        list.url()
    )));
    assert_eq!(get(gw, "/list").body, b"[1,2,3]");
    let t = get(gw, "/text");
    assert_eq!(t.body, b"plain words");
    assert_eq!(t.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(get(gw, "/safe").json(), json!({"collection": [1, 2, 3]}));
}

#[test]
fn hosts_are_used_round_robin_and_concurrent_calls_race() {
    let a = Backend::start(|_| Reply::json(r#"{"from":"a"}"#));
    let b = Backend::start(|_| Reply::json(r#"{"from":"b"}"#));
    // Slow enough that all three racing calls are in flight before the first one wins (the
    // losers are cancelled then, as in KrakenD).
    let slow = Backend::start(|_| Reply::json(r#"{"from":"slow"}"#).delay(Duration::from_millis(300)));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/rr", "backend": [{{"host": ["{a}", "{b}"], "url_pattern": "/"}}]}},
           {{"endpoint": "/race", "concurrent_calls": 3, "backend": [{{"host": ["{s}"], "url_pattern": "/race"}}]}}"#,
        a = a.url(),
        b = b.url(),
        s = slow.url()
    )));
    let froms: Vec<String> = (0..4)
        .map(|_| get(gw, "/rr").json()["from"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(froms, ["a", "b", "a", "b"]);
    assert_eq!(get(gw, "/race").status, 200);
    let raced = poll_until(Duration::from_secs(5), || {
        let n = slow.seen().iter().filter(|s| s.target == "/race").count();
        (n == 3).then_some(n)
    });
    assert_eq!(raced, Some(3), "three identical calls reach the backend");
}

#[test]
fn upstream_connections_are_capped_and_reused() {
    let b = Backend::start(|_| Reply::json(r#"{"ok":1}"#).delay(Duration::from_millis(50)));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/u", "timeout": "10s", "backend": [{{"host": ["{}"], "url_pattern": "/"}}]}}"#,
        b.url()
    )));
    let clients: Vec<_> = (0..40)
        .map(|_| std::thread::spawn(move || get(gw, "/u").status))
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    let max = b.max_open.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        max <= gatelet::net::limits::MAX_UPSTREAM_CONNECTIONS,
        "{max} upstream connections at once"
    );
    let total = b.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(total < 40, "connections are pooled: {total} opened for 40 requests");
}

#[test]
fn no_op_answers_give_their_upstream_connection_back() {
    // hyper's server stops polling a Content-Length body once it is complete, so the lease must
    // be released on `is_end_stream`, not only on the final `None` (was: one connection per answer).
    let b = Backend::start(|_| Reply::json(r#"{"ok":1}"#));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/n", "output_encoding": "no-op",
            "backend": [{{"host": ["{}"], "url_pattern": "/", "encoding": "no-op"}}]}}"#,
        b.url()
    )));
    for _ in 0..20 {
        let r = get(gw, "/n");
        assert_eq!((r.status, r.text()), (200, r#"{"ok":1}"#.to_string()));
    }
    let total = b.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        total, 1,
        "20 sequential pass-through answers opened {total} upstream connections"
    );
}

#[test]
fn health_debug_echo_404_and_405() {
    let gw = gateway_with(
        r#"{"version": 3, "echo_endpoint": true, "endpoints": []}"#,
        gatelet::Options {
            debug: true,
            ..Default::default()
        },
    );
    let h = get(gw, "/__health");
    assert_eq!(h.status, 200);
    let doc = h.json();
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["agents"], json!({}));
    let now = doc["now"].as_str().unwrap();
    assert!(
        now.len() == 20 && now.ends_with('Z') && now.as_bytes()[10] == b'T',
        "{now}"
    );
    let p = request(gw, "POST", "/__health", &[], b"");
    assert_eq!(p.status, 405);
    assert_eq!(p.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(gw, "/__debug/anything").json(), json!({"message": "pong"}));
    let e = request(gw, "PUT", "/__echo/x?a=1", &["X-Bus: 7"], b"hi");
    assert_eq!(e.json()["req_method"], "PUT");
    assert_eq!(e.json()["req_body"], "hi");
    assert_eq!(e.json()["req_headers"]["x-bus"], json!(["7"]));
    assert_eq!(e.json()["req_querystring"]["a"], json!(["1"]));
    let n = get(gw, "/nope");
    assert_eq!(n.status, 404);
    assert_eq!(n.text(), "404 page not found", "KrakenD's (gin's) body");
}

#[test]
fn health_path_can_move_or_go_and_debug_is_off_by_default() {
    let gw = gateway(r#"{"version": 3, "extra_config": {"router": {"health_path": "/ping"}}, "endpoints": []}"#);
    assert_eq!(get(gw, "/ping").status, 200);
    assert_eq!(get(gw, "/__health").status, 404);
    assert_eq!(get(gw, "/__debug/").status, 404);
    let off = gateway(r#"{"version": 3, "extra_config": {"router": {"disable_health": true}}, "endpoints": []}"#);
    assert_eq!(get(off, "/__health").status, 404);
}

#[test]
fn wrong_method_on_an_endpoint_is_405_and_dot_segments_are_refused() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/b/{{id}}", "backend": [{{"host": ["{}"], "url_pattern": "/b/{{id}}"}}]}}"#,
        b.url()
    )));
    let r = request(gw, "DELETE", "/b/1", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(gw, "/b/..").status, 400);
    assert!(b.seen().is_empty());
}

#[test]
fn the_shipped_bus_example_behaves_as_the_readme_says() {
    // config/bus.json as shipped, with its backend hosts pointed at backends of this test.
    let engine = Backend::start(|s| match s.target.as_str() {
        "/gps" => Reply::json(r#"{"lat":52.5,"lon":13.4}"#),
        _ => Reply::json(r#"{"data":{"fuel":71,"speed":42,"vin":"X"},"meta":1}"#),
    });
    let tyres = Backend::start(|_| Reply::json(r#"{"psi":32,"raw":"..."}"#));
    let stops = Backend::start(|_| Reply::json(r#"[{"id":"S1"},{"id":"S2"}]"#));
    let display = Backend::start(|s| Reply {
        status: 202,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: [b"shown: ".as_slice(), &s.body].concat(),
        delay: Duration::ZERO,
    });
    let counter = Backend::start(|_| Reply::json(r#"{"on_board":17}"#).delay(Duration::from_secs(5)));
    // Its sensors point at a directory of this test (the fake bus is not running: they are
    // down, which the HTTP endpoints here do not use).
    let dir = std::env::temp_dir().join(format!("gatelet-bus-example-{}", std::process::id()));
    let text = std::fs::read_to_string("config/bus.json")
        .unwrap()
        .replace("/tmp/gatelet-bus", dir.to_str().unwrap())
        .replace("http://127.0.0.1:9101", &engine.url())
        .replace("http://127.0.0.1:9102", &tyres.url())
        .replace("http://127.0.0.1:9103", &stops.url())
        .replace("http://127.0.0.1:9104", &display.url())
        .replace("http://127.0.0.1:9105", &counter.url());
    let gw = gateway(&text);

    let r = get(gw, "/vehicle/7/status?units=metric&drop=1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gatelet-completed"), Some("true"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=5"));
    assert_eq!(
        r.json(),
        json!({"engine": {"fuel": 71, "speed": 42}, "tyre_pressure_psi": 32, "stops": {"collection": [{"id": "S1"}, {"id": "S2"}]}})
    );
    assert_eq!(engine.seen()[0].target, "/engine/7?units=metric");

    let r = request(
        gw,
        "POST",
        "/display/message",
        &["Content-Type: text/plain"],
        b"next stop: Alexanderplatz",
    );
    assert_eq!(r.status, 202);
    assert_eq!(r.body, b"shown: next stop: Alexanderplatz");

    let start = Instant::now();
    let r = get(gw, "/service/now");
    assert!(
        start.elapsed() < Duration::from_millis(500 + 1200),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!((r.status, r.header("x-gatelet-completed")), (200, Some("false")));
    assert_eq!(r.json(), json!({"gps": {"lat": 52.5, "lon": 13.4}}));
}

/// Sends `raw` on a fresh connection and returns everything the gateway wrote before closing.
fn exchange(gw: std::net::SocketAddr, raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut s = connect(gw);
    s.write_all(raw).unwrap();
    let (out, closed) = read_to_close(&mut s);
    assert!(closed, "the gateway did not close: {:?}", String::from_utf8_lossy(&out));
    out
}

#[test]
fn head_is_answered_like_get_without_a_body() {
    let b = Backend::start(|_| Reply::json(r#"{"fuel":71}"#));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/v", "backend": [{{"host": ["{}"], "url_pattern": "/v"}}]}}"#,
        b.url()
    )));
    let full = get(gw, "/v");
    assert_eq!(full.status, 200);
    // HEAD, then a GET on the same connection: the HEAD answer has the GET's length and no
    // body, so the GET's answer follows right after its head.
    let raw = exchange(
        gw,
        b"HEAD /v HTTP/1.1\r\nHost: gw.test\r\n\r\nGET /v HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw);
    let head_end = text.find("\r\n\r\n").expect("a head") + 4;
    let head = text[..head_end].to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{text}");
    assert!(
        head.contains(&format!("content-length: {}\r\n", full.body.len())),
        "HEAD carries the GET's length: {text}"
    );
    let (second, _) = parse_response(&raw[head_end..]).expect("the GET's answer right after the HEAD's head");
    assert_eq!(second.status, 200);
    assert_eq!(second.body, full.body);
    assert_eq!(
        b.seen().iter().filter(|s| s.method == "GET").count(),
        3,
        "HEAD calls the backend with GET"
    );
    // Built-ins too.
    let raw = exchange(
        gw,
        b"HEAD /__health HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body: {text}");
}

#[test]
fn invalid_host_values_are_400_and_never_forwarded() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/v", "backend": [{{"host": ["{}"], "url_pattern": "/v"}}]}}"#,
        b.url()
    )));
    for host in ["127.0.0.1:8080/path", "a, b", "user@a", "", "a b", "a:80:80"] {
        let raw = exchange(gw, format!("GET /v HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 400"), "Host {host:?}: {text}");
    }
    assert!(b.seen().is_empty(), "nothing reached the backend");
    let ok = request(gw, "GET", "/v", &[], b"");
    assert_eq!(ok.status, 200);
    assert_eq!(b.seen()[0].header("x-forwarded-host"), Some("gw.test"));
}

#[test]
fn asterisk_and_connect_targets_are_not_routed() {
    let gw = gateway(&config(""));
    let raw = exchange(gw, b"GET * HTTP/1.1\r\nHost: gw.test\r\n\r\n");
    assert!(
        String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    let raw = exchange(gw, b"CONNECT gw.test:443 HTTP/1.1\r\nHost: gw.test:443\r\n\r\n");
    assert!(
        String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 501"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
}

#[test]
fn header_names_with_underscores_never_reach_a_backend() {
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = gateway(&config(&format!(
        r#"{{"endpoint": "/v", "input_headers": ["*"], "backend": [{{"host": ["{}"], "url_pattern": "/v"}}]}}"#,
        b.url()
    )));
    let r = request(
        gw,
        "GET",
        "/v",
        &["Content_Length: 5", "Transfer_Encoding: chunked", "X-Bus: 7"],
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = &b.seen()[0];
    assert_eq!(seen.header("x-bus"), Some("7"), "other headers pass");
    assert!(
        seen.header("content_length").is_none() && seen.header("transfer_encoding").is_none(),
        "{:?}",
        seen.headers
    );
}
