//! The fleet dashboard from the outside: the page is served with its headers (type, a CSP that
//! allows nothing from elsewhere, revalidation), stays within its size budget, references
//! nothing outside this gatelet, only where configured; `/__fleet/health` carries what the page
//! shows (`now`, `last_seen`), and viewers polling at once share one round of it; and bad
//! `gatelet/dashboard` settings are config errors with their JSON path and line:column. The
//! page's behaviour in a browser: scripts/browser-test.sh.

mod common;

use common::*;
use gatelet::dashboard::MAX_PAGE_BYTES;

fn bus() -> Backend {
    Backend::start(|seen| match seen.target.as_str() {
        "/__health" => Reply::json(r#"{"status":"ok","agents":{},"circuits":{}}"#),
        _ => Reply::json(r#"{"lat":52.37,"lon":4.89}"#),
    })
}

fn central(bus: &Backend, dashboard: &str) -> String {
    format!(
        r#"{{"version": 3, "name": "central",
            "extra_config": {{"gatelet/fleet": {{"timeout": "500ms", "members": [
                {{"id": "bus-1", "host": "{}"}}, {{"id": "bus-gone", "host": "http://{}"}}]}},
              "gatelet/dashboard": {dashboard}}},
            "endpoints": [{{"endpoint": "/fleet/positions",
                "backend": [{{"url_pattern": "/position", "extra_config": {{"gatelet/fleet": {{}}}}}}]}}]}}"#,
        bus.url(),
        refused_addr()
    )
}

#[test]
fn the_page_is_served_self_contained_within_its_budget() {
    let b = bus();
    let gw = gateway(&central(
        &b,
        r#"{"title": "Depot <North>", "refresh": "1500ms", "position_endpoint": "/fleet/positions"}"#,
    ));
    let r = get(gw, "/__dashboard");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let csp = r.header("content-security-policy").unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(
        r.body.len() <= MAX_PAGE_BYTES,
        "the page is {} bytes, over its {MAX_PAGE_BYTES}-byte budget",
        r.body.len()
    );
    let page = r.text().to_ascii_lowercase();
    for outside in ["http:", "https:", "//cdn", "@import", "url(", " src=", "@font-face"] {
        assert!(!page.contains(outside), "the page references {outside:?}");
    }
    assert!(page.contains("<title>depot &lt;north&gt;</title>"), "title escaped");
    assert!(page.contains(r#"data-refresh-ms="1500""#));
    assert!(page.contains(r#"data-positions="/fleet/positions""#));
    assert!(page.contains("<th scope=\"col\""), "real table headers");

    let etag = r.header("etag").unwrap().to_string();
    let again = request(gw, "GET", "/__dashboard", &[&format!("If-None-Match: {etag}")], b"");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(request(gw, "POST", "/__dashboard", &[], b"").status, 405);
    assert_eq!(get(gw, "/__dashboard/").status, 404);
}

#[test]
fn the_page_is_only_where_configured_with_defaults() {
    let b = bus();
    let gw = gateway(&central(&b, r#"{"path": "/wall"}"#));
    assert_eq!(get(gw, "/__dashboard").status, 404);
    let r = get(gw, "/wall");
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(
        page.contains("<title>central</title>"),
        "the service name is the default title"
    );
    assert!(page.contains(r#"data-refresh-ms="2000""#));
    assert!(page.contains(r#"data-positions="""#));

    let plain = gateway(r#"{"version": 3, "endpoints": []}"#);
    assert_eq!(get(plain, "/__dashboard").status, 404, "off unless configured");
}

#[test]
fn fleet_health_says_when_each_member_was_last_seen() {
    let b = bus();
    let gw = gateway(&central(&b, "{}"));
    let doc = get(gw, "/__fleet/health").json();
    let now = doc["now"].as_str().unwrap();
    assert!(now.ends_with('Z') && now.len() == 20, "{now}");
    assert_eq!(doc["members"]["bus-1"]["last_seen"], doc["now"]);
    assert!(
        doc["members"]["bus-gone"].get("last_seen").is_none(),
        "never seen: {doc}"
    );
}

/// Every wall screen polls `/__fleet/health`: requests that arrive while a round runs share it
/// instead of asking every bus again each; the next request after it starts a new one.
#[test]
fn viewers_polling_at_once_share_one_health_round() {
    let b = Backend::start(|seen| match seen.target.as_str() {
        "/__health" => Reply::json(r#"{"status":"ok"}"#).delay(std::time::Duration::from_millis(300)),
        _ => Reply::json("{}"),
    });
    let gw = gateway(&central(&b, "{}"));
    let viewers: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(gw, "/__fleet/health").json()))
        .collect();
    let docs: Vec<_> = viewers.into_iter().map(|v| v.join().unwrap()).collect();
    let asked = || b.seen().iter().filter(|s| s.target == "/__health").count();
    assert_eq!(asked(), 1, "one round for four viewers: {docs:?}");
    assert!(
        docs.iter()
            .all(|d| d["members"]["bus-1"]["status"] == "ok" && d["now"] == docs[0]["now"])
    );
    assert_eq!(get(gw, "/__fleet/health").status, 200);
    assert_eq!(asked(), 2, "a round is not reused once it has ended");
}

fn errors(dashboard: &str, endpoints: &str, fleet: bool) -> Vec<String> {
    let fleet = match fleet {
        true => r#""gatelet/fleet": {"members": [{"id": "bus-1", "host": "http://127.0.0.1:9"}]},"#,
        false => "",
    };
    let text = format!(
        "{{\"version\": 3,\n \"extra_config\": {{{fleet}\n  \"gatelet/dashboard\": {dashboard}}},\n \"endpoints\": {endpoints}}}"
    );
    match gatelet::config::parse("central.json", &text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn bad_dashboard_settings_are_config_errors_with_path_and_position() {
    let ns = "extra_config.gatelet/dashboard";
    let position = r#"[{"endpoint": "/pos", "backend": [{"url_pattern": "/p", "extra_config": {"gatelet/fleet": {}}}]},
                       {"endpoint": "/bus/{id}", "backend": [{"url_pattern": "/p", "extra_config": {"gatelet/fleet": {}}}]},
                       {"endpoint": "/cmd", "method": "POST", "backend": [{"url_pattern": "/c", "extra_config": {"gatelet/fleet": {}}}]}]"#;
    assert_eq!(errors("{}", position, true), Vec::<String>::new());
    assert_eq!(
        errors("{}", "[]", false),
        [format!(
            "central.json:3:24: {ns}: needs the service's extra_config.\"gatelet/fleet\": the page shows its members"
        )]
    );
    let cases = [
        (
            r#"{"colour": "red"}"#,
            "colour: unknown key \"colour\": not supported by gatelet",
        ),
        (
            r#"{"path": "wall"}"#,
            "path: \"wall\" must be a path such as \"/__dashboard\"",
        ),
        (
            r#"{"path": "/__fleet/health"}"#,
            "path: \"/__fleet/health\" is one of gatelet's built-in paths",
        ),
        (
            r#"{"path": "/__health"}"#,
            "path: \"/__health\" is one of gatelet's built-in paths",
        ),
        (
            r#"{"path": "/a?b"}"#,
            "path: \"/a?b\": '?' is not allowed in the dashboard path",
        ),
        (
            r#"{"path": "/bus/17"}"#,
            "path: \"/bus/17\" is also answered by endpoint \"/bus/{id}\"",
        ),
        (
            r#"{"refresh": "100ms"}"#,
            "refresh: must be between 500ms and 600s: every refresh asks every bus",
        ),
        (
            r#"{"refresh": 2}"#,
            "refresh: expected a duration string such as \"2s\", found a number",
        ),
        (r#"{"title": ""}"#, "title: must not be empty"),
        (
            r#"{"position_endpoint": "/where"}"#,
            "position_endpoint: \"/where\" is not an endpoint of this config (endpoints: /pos, /bus/{id}, /cmd)",
        ),
        (
            r#"{"position_endpoint": "/bus/{id}"}"#,
            "position_endpoint: endpoint \"/bus/{id}\" takes parameters: the page asks for all buses at once",
        ),
        (
            r#"{"position_endpoint": "/cmd"}"#,
            "position_endpoint: endpoint \"/cmd\" answers POST: the page can only GET",
        ),
    ];
    for (dashboard, want) in cases {
        let got = errors(dashboard, position, true);
        assert_eq!(got.len(), 1, "{dashboard}: {got:?}");
        assert!(
            got[0].starts_with("central.json:3:") && got[0].ends_with(&format!("{ns}.{want}")),
            "{dashboard}:\n  got  {}\n  want ...{ns}.{want}",
            got[0]
        );
    }
}
