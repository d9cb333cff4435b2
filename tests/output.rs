//! What goes in and comes out around the backends, over real sockets: request bodies checked
//! against an endpoint's JSON schema before any backend is called (`validation/json-schema`),
//! answers rendered as JSON or XML as `Accept` asks (`output_encoding: "negotiate"`, `"xml"`),
//! and gzip for clients that accept it (`gatelet/gzip`), measured on a 50-bus fleet answer.

mod common;

use common::*;
use serde_json::json;

const SCHEMA: &str = r#"{"type": "object", "required": ["line", "text"], "additionalProperties": false,
    "properties": {"line": {"type": "integer", "minimum": 1}, "text": {"type": "string", "maxLength": 40},
                   "until": {"type": "string", "format": "date-time"}}}"#;

#[test]
fn json_schema_refuses_bad_bodies_before_any_backend_is_called() {
    let display = Backend::start(|_| Reply::json(r#"{"shown":true}"#));
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"], "endpoints": [
            {{"endpoint": "/display/message", "method": "POST", "output_encoding": "no-op",
              "backend": [{{"url_pattern": "/message"}}],
              "extra_config": {{"validation/json-schema": {SCHEMA}}}}},
            {{"endpoint": "/display/raw", "method": "POST", "backend": [{{"url_pattern": "/message"}}]}}]}}"#,
        display.url()
    ));
    let post = |body: &str| {
        request(
            gw,
            "POST",
            "/display/message",
            &["Content-Type: application/json"],
            body.as_bytes(),
        )
    };

    let ok = post(r#"{"line": 42, "text": "Depot", "until": "2026-11-23T06:00:00Z"}"#);
    assert_eq!((ok.status, ok.json()), (200, json!({"shown": true})));
    assert_eq!(display.seen().len(), 1);
    assert_eq!(
        display.seen()[0].body,
        br#"{"line": 42, "text": "Depot", "until": "2026-11-23T06:00:00Z"}"#
    );

    let deep = format!(
        r#"{{"line": 1, "text": "x", "until": {}1{}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    let refused = [
        (
            r#"{"line": 0, "text": "Depot"}"#,
            400,
            "at '/line': must be >=1, but got 0",
        ),
        (r#"{"line": 42}"#, 400, "at '': missing properties 'text'"),
        (
            r#"{"line": 42, "text": "x", "colour": "red"}"#,
            400,
            "additionalProperties 'colour' not allowed",
        ),
        (
            r#"{"line": 42, "text": "x", "until": "soon"}"#,
            400,
            "'soon' is not valid date-time",
        ),
        (r#"[1, 2]"#, 400, "at '': want object, but got array"),
        (r#"{"line": 42, "text": "#, 400, "could not validate a malformed body"),
        ("", 400, "could not validate an empty body"),
        (&deep, 400, "nests arrays and objects at most 32 deep"),
    ];
    for (body, status, why) in refused {
        let r = post(body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(why), "{body}: {error}");
        assert_eq!(r.header("x-gatelet-completed"), Some("false"));
    }
    // A refused body leaves the connection usable: the next request on it is answered.
    let mut conn = connect(gw);
    let on_one_connection = [r#"{"line": "42"}"#, r#"{"line": 7, "text": "Zoo"}"#].map(|body| {
        format!(
            "POST /display/message HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    let answers = pipeline(&mut conn, on_one_connection.into_iter(), 1);
    assert_eq!(answers.iter().map(|r| r.status).collect::<Vec<_>>(), [400, 200]);
    assert_eq!(display.seen().len(), 2);
    let huge = serde_json::to_vec(&json!({"line": 1, "text": "x", "stops": vec![1; 20_000]})).unwrap();
    let r = request(gw, "POST", "/display/message", &[], &huge);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("at most 16384 values"));
    assert_eq!(display.seen().len(), 2, "no refused body reached the device");

    // An endpoint without a schema passes anything through.
    assert_eq!(request(gw, "POST", "/display/raw", &[], b"[1, 2]").status, 200);
    assert_eq!(display.seen().len(), 3);
}

#[test]
fn json_schema_is_checked_after_authentication_and_on_every_encoding() {
    let backend = Backend::start(|_| Reply::json(r#"{"ok":true}"#));
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"],
            "extra_config": {{"gatelet/api-keys": {{"keys": [{{"name": "office",
                "sha256": "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"}}]}}}},
            "endpoints": [{{"endpoint": "/cmd", "method": "PUT", "backend": [{{"url_pattern": "/cmd"}}],
              "extra_config": {{"gatelet/api-keys": {{}}, "validation/json-schema": {{"type": "object"}}}}}}]}}"#,
        backend.url()
    ));
    // No key: 401 before the body is looked at, so the schema says nothing to strangers.
    assert_eq!(request(gw, "PUT", "/cmd", &[], b"[]").status, 401);
    let key = "Authorization: Bearer secret";
    assert_eq!(request(gw, "PUT", "/cmd", &[key], b"[]").status, 400);
    let r = request(gw, "PUT", "/cmd", &[key], b"{}");
    assert_eq!((r.status, r.json()), (200, json!({"ok": true})));
    assert_eq!(backend.seen().len(), 1);
}

#[test]
fn a_bad_schema_is_a_config_error_pointing_into_it() {
    let text = r#"{"version": 3, "endpoints": [{"endpoint": "/a", "method": "POST",
  "backend": [{"host": ["http://127.0.0.1:1"], "url_pattern": "/a"}],
  "extra_config": {"validation/json-schema": {"properties": {"line": {"type": "integr"}}}}}]}"#;
    let errors = gatelet::config::parse("bus.json", text).unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "bus.json:3:79: endpoints[0].extra_config.validation/json-schema.properties.line.type: \
             invalid JSON schema: value must be one of 'array', 'boolean', 'integer', 'null', 'number', \
             'object', 'string'"
                .to_string()
        ],
        "{shown:?}"
    );
}

const VEHICLE: &str = r#"{"vehicle": {"line": "42", "stop": {"name": "Depot & Garage", "eta": "05:42"},
    "-version": "2.0", "doors": ["closed", "open"], "speed_kmh": 33.3, "driver": null}}"#;

#[test]
fn negotiate_renders_json_or_xml_as_accept_asks() {
    let backend = Backend::start(|_| Reply::json(VEHICLE));
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"], "endpoints": [
            {{"endpoint": "/negotiated", "output_encoding": "negotiate", "backend": [{{"url_pattern": "/v"}}]}},
            {{"endpoint": "/always-xml", "output_encoding": "xml", "backend": [{{"url_pattern": "/v"}}]}},
            {{"endpoint": "/two", "output_encoding": "negotiate",
              "backend": [{{"url_pattern": "/v", "group": "a"}}, {{"url_pattern": "/v", "group": "b", "allow": ["vehicle.line"]}}]}}]}}"#,
        backend.url()
    ));
    let xml = "<vehicle version=\"2.0\"><doors>closed</doors><doors>open</doors><driver/><line>42</line>\
               <speed_kmh>33.3</speed_kmh><stop><eta>05:42</eta><name>Depot &amp; Garage</name></stop></vehicle>";
    for accept in [
        "Accept: application/xml",
        "Accept: text/html, application/xml;q=0.9, */*;q=0.8",
    ] {
        let r = request(gw, "GET", "/negotiated", &[accept], b"");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/xml; charset=utf-8"),
            "{accept}"
        );
        assert_eq!(r.text(), xml, "{accept}");
        assert_eq!(r.header("vary"), Some("Accept"));
    }
    let r = request(gw, "GET", "/negotiated", &["Accept: text/xml"], b"");
    assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
    for accept in [
        &[][..],
        &["Accept: application/json"],
        &["Accept: */*"],
        &["Accept: application/xml;q=0.1, application/json"],
    ] {
        let r = request(gw, "GET", "/negotiated", accept, b"");
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8"),
            "{accept:?}"
        );
        assert_eq!(r.json(), serde_json::from_str::<serde_json::Value>(VEHICLE).unwrap());
        assert_eq!(r.header("vary"), Some("Accept"));
    }
    let r = get(gw, "/always-xml");
    assert_eq!(
        (r.header("content-type"), r.text()),
        (Some("application/xml; charset=utf-8"), xml.to_string())
    );
    assert_eq!(r.header("vary"), None);
    // More than one key: KrakenD's <doc> root.
    let r = request(gw, "GET", "/two", &["Accept: application/xml"], b"");
    assert!(
        r.text().starts_with("<doc><a><vehicle version=\"2.0\">"),
        "{}",
        r.text()
    );
    assert!(
        r.text()
            .ends_with("</a><b><vehicle><line>42</line></vehicle></b></doc>"),
        "{}",
        r.text()
    );
}

/// One bus's status, as a bus gatelet would answer it; `n` varies the values.
fn bus_status(n: usize) -> String {
    format!(
        r#"{{"vehicle":"bus-{n:02}","line":"{line}","trip":"{line}-{trip:04}","driver_logged_in":true,
"gps":{{"lat":52.{lat:05},"lon":13.{lon:05},"speed_kmh":{speed}.{tenth},"heading":{heading},"satellites":{sats},"utc":"2026-11-23T05:40:{sec:02}Z","stale":false}},
"fuel_pct":{fuel}.{tenth}{n},"odometer_km":18{n:02}33.{tenth},"cabin_temp_c":2{tenth}.{n},"on_board":{board},
"doors":{{"front":"closed","middle":"closed","rear":"{rear}"}},"tyres_psi":{{"fl":32.{tenth},"fr":31.9,"rl":34.{n},"rr":33.8}},
"next_stop":{{"id":"de:11000:9001000{n:02}","name":"Stop {n} / Platform {tenth}","eta":"2026-11-23T05:4{tenth}:30Z"}},
"alarms":[],"software":"gatelet/0.1.0"}}"#,
        line = 100 + n % 7,
        trip = 800 + n * 13,
        lat = 10_000 + n * 271,
        lon = 30_000 + n * 397,
        speed = n * 7 % 60,
        tenth = n % 10,
        heading = n * 37 % 360,
        sats = 6 + n % 6,
        sec = n % 60,
        fuel = 20 + n * 3 % 80,
        board = n * 5 % 70,
        rear = if n.is_multiple_of(4) { "open" } else { "closed" },
    )
}

/// Gunzips a gzip member with an inflater and a CRC check that are not gatelet's.
fn gunzip(gz: &[u8]) -> Vec<u8> {
    assert!(
        gz.len() >= 18 && gz[..4] == [0x1f, 0x8b, 8, 0],
        "not a plain gzip member"
    );
    let data = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
    let crc = !data.iter().fold(!0u32, |mut crc, &b| {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
        crc
    });
    assert_eq!(gz[gz.len() - 8..gz.len() - 4], crc.to_le_bytes(), "CRC-32");
    assert_eq!(gz[gz.len() - 4..], (data.len() as u32).to_le_bytes(), "ISIZE");
    data
}

#[test]
fn gzip_shrinks_a_fleet_answer_for_clients_that_ask() {
    let count = std::sync::atomic::AtomicUsize::new(0);
    let bus = Backend::start(move |seen| {
        let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match seen.target.as_str() {
            "/__health" => Reply::json(&format!(
                r#"{{"agents":{{"gps":{{"age_ms":{},"frames_bad":0,"frames_ok":{},"last_error":null,"reconnects":0,"status":"ok"}},
                "engine":{{"age_ms":{},"frames_bad":{},"frames_ok":{},"last_error":"checksum mismatch","reconnects":1,"status":"ok"}}}},
                "clock":{{"synchronized":true,"why":"systemd-timesyncd says synchronized"}},"now":"2026-11-23T05:02:{:02}Z","status":"ok"}}"#,
                n * 37 % 1000,
                4000 + n * 131,
                n * 13 % 200,
                n % 3,
                90_000 + n * 977,
                n % 60
            )),
            "/big" => Reply::json(&format!("[{},{}]", bus_status(n), bus_status(n + 1))),
            _ => Reply::json(&bus_status(n)),
        }
    });
    let members: Vec<String> = (1..=50)
        .map(|i| format!(r#"{{"id": "bus-{i:02}", "host": "{}"}}"#, bus.url()))
        .collect();
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"], "extra_config": {{"gatelet/fleet": {{"members": [{}]}}}},
            "endpoints": [
              {{"endpoint": "/fleet/status", "backend": [{{"url_pattern": "/status", "extra_config": {{"gatelet/fleet": {{}}}}}}]}},
              {{"endpoint": "/small", "backend": [{{"url_pattern": "/__health", "allow": ["status"]}}]}},
              {{"endpoint": "/passed", "output_encoding": "no-op", "backend": [{{"url_pattern": "/big"}}]}}]}}"#,
        bus.url(),
        members.join(", ")
    ));
    let gzip = "Accept-Encoding: gzip, deflate, br";
    for path in ["/fleet/status", "/__fleet/health"] {
        let plain = get(gw, path);
        assert_eq!(plain.status, 200, "{}", plain.text());
        assert_eq!(plain.header("content-encoding"), None);
        assert_eq!(
            plain.header("vary"),
            Some("Accept-Encoding"),
            "{path}: either answer says it varies"
        );
        let packed = request(gw, "GET", path, &[gzip], b"");
        assert_eq!(packed.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(packed.header("vary"), Some("Accept-Encoding"));
        let unpacked: serde_json::Value = serde_json::from_slice(&gunzip(&packed.body)).unwrap();
        let plain = plain.json();
        // The health of healths lists the buses under "members"; the fan-out at the top.
        let buses = |v: &serde_json::Value| {
            let v = if path == "/__fleet/health" { &v["members"] } else { v };
            v.as_object().unwrap().keys().filter(|k| k.starts_with("bus-")).count()
        };
        assert_eq!((buses(&plain), buses(&unpacked)), (50, 50), "{path}");
        let (raw, gz) = (serde_json::to_vec(&plain).unwrap().len(), packed.body.len());
        println!(
            "{path}, 50 buses: {raw} bytes, gzip {gz} bytes ({:.1}% of it)",
            100.0 * gz as f64 / raw as f64
        );
        assert!(gz * 4 < raw, "{path}: {raw} -> {gz}");
    }
    // Small answers go as they are, and say nothing about Accept-Encoding.
    let small = request(gw, "GET", "/small", &[gzip], b"");
    assert_eq!((small.header("content-encoding"), small.header("vary")), (None, None));
    assert_eq!(small.json(), json!({"status": "ok"}));
    // A client that refuses gzip, or does not name it, gets identity.
    for refuses in ["Accept-Encoding: gzip;q=0, *", "Accept-Encoding: br"] {
        let r = request(gw, "GET", "/fleet/status", &[refuses], b"");
        assert_eq!(r.header("content-encoding"), None, "{refuses}");
        assert_eq!(r.json().as_object().unwrap().len(), 50);
    }
    // no-op streams the backend's answer untouched, whatever its size.
    let passed = request(gw, "GET", "/passed", &[gzip], b"");
    assert_eq!((passed.header("content-encoding"), passed.header("vary")), (None, None));
    assert!(
        passed.body.len() > 1024 && passed.text().starts_with("[{\"vehicle\":\"bus-"),
        "{passed:?}"
    );
}

#[test]
fn gzip_is_configured_under_gatelet_gzip() {
    let big = format!("{{\"stops\": [{}]}}", vec!["\"Alexanderplatz\""; 100].join(","));
    let backend = Backend::start(move |_| Reply::json(&big));
    let config = |gzip: &str| {
        format!(
            r#"{{"version": 3, "host": ["{}"], "extra_config": {{"gatelet/gzip": {gzip}}},
                "endpoints": [{{"endpoint": "/stops", "backend": [{{"url_pattern": "/s"}}]}}]}}"#,
            backend.url()
        )
    };
    let ask = |gw| request(gw, "GET", "/stops", &["Accept-Encoding: gzip"], b"");
    let off = gateway(&config(r#"{"disabled": true}"#));
    assert_eq!(
        (ask(off).header("content-encoding"), ask(off).header("vary")),
        (None, None)
    );
    let high = gateway(&config(r#"{"min_size": 5000}"#));
    assert_eq!(ask(high).header("content-encoding"), None, "1.7 KB is under min_size");
    let low = gateway(&config(r#"{"min_size": 100, "level": 1}"#));
    let r = ask(low);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body)[..11], *b"{\"stops\":[\"");
}
