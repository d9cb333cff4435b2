//! KrakenD's `proxy` namespace and claim placeholders over real sockets: `static` data under
//! each of its five strategies (backends up, down and slow past the timeout), `sequential`
//! chains with `{respN_field}` values percent-encoded into later URLs, `flatmap_filter` on a
//! backend and on an endpoint, and `{JWT.claim}` URLs with headers propagated from claims.

mod common;

use std::time::Duration;

use common::jwt::{b64url, hs256};
use common::*;
use serde_json::json;

#[test]
fn static_data_follows_each_strategy() {
    let up = Backend::start(|_| Reply::json(r#"{"speed": 31, "src": "live"}"#));
    let slow = Backend::start(|_| Reply::json(r#"{"late": true}"#).delay(Duration::from_secs(2)));
    let down = format!("http://{}", refused_addr());
    let strategies = ["always", "success", "complete", "errored", "incomplete"];
    // Which backends each case has: all up; one up and one down; one up and one slow; only
    // down; only slow.
    let (up, slow) = (up.url(), slow.url());
    let cases: [(&str, Vec<&str>); 5] = [
        ("ok", vec![&up]),
        ("down", vec![&up, &down]),
        ("slow", vec![&up, &slow]),
        ("none", vec![&down]),
        ("late", vec![&slow]),
    ];
    let mut endpoints = Vec::new();
    for s in strategies {
        for (case, hosts) in &cases {
            let backends: Vec<_> = hosts
                .iter()
                .enumerate()
                .map(|(i, h)| json!({"host": [h], "url_pattern": format!("/b{i}")}))
                .collect();
            endpoints.push(json!({
                "endpoint": format!("/{s}/{case}"), "timeout": "300ms", "backend": backends,
                "extra_config": {"proxy": {"static": {"strategy": s, "data": {"src": "static", "stale": true}}}}
            }));
        }
    }
    let gw = gateway(&json!({"version": 3, "endpoints": endpoints}).to_string());

    // (strategy, case) -> whether static data is added; a case without any backend answer
    // then answers 200 with the static data alone, else 502 / 504.
    let added = |s: &str, case: &str| {
        let (failed, complete) = (case != "ok", case == "ok");
        match s {
            "always" => true,
            "success" => !failed,
            "complete" => !failed && complete,
            "errored" => failed,
            _ => !complete,
        }
    };
    for s in strategies {
        for (case, _) in &cases {
            let r = get(gw, &format!("/{s}/{case}"));
            let label = format!("{s}/{case}: {} {}", r.status, r.text());
            let static_added = added(s, case);
            let answered = matches!(*case, "ok" | "down" | "slow");
            match (answered, static_added) {
                (false, false) => {
                    let want = if *case == "late" { 504 } else { 502 };
                    assert_eq!(r.status, want, "{label}");
                    continue;
                }
                _ => assert_eq!(r.status, 200, "{label}"),
            }
            let body = r.json();
            let complete = *case == "ok";
            assert_eq!(
                r.header("x-gatelet-completed"),
                Some(if complete { "true" } else { "false" }),
                "{label}"
            );
            if static_added {
                assert_eq!(body["src"], "static", "static data wins a clash: {label}");
                assert_eq!(body["stale"], true, "{label}");
            } else {
                assert_eq!(body["src"], "live", "{label}");
                assert!(body.get("stale").is_none(), "{label}");
            }
            assert_eq!(body.get("speed").is_some(), answered, "{label}");
            assert!(
                body.get("late").is_none(),
                "a backend past the deadline adds nothing: {label}"
            );
        }
    }
}

#[test]
fn sequential_backends_read_earlier_answers_escaped() {
    let hotels = Backend::start(|seen| match seen.target.as_str() {
        "/hotels/25" => Reply::json(r#"{"hotel_id": 25, "destination_id": 1034, "owner": {"hash": "a/b?c&d=e"}}"#),
        "/hotels/26" => Reply::json(r#"{"hotel_id": 26}"#),
        "/hotels/27" => Reply::json(r#"{"hotel_id": 27, "destination_id": "..", "owner": {"hash": "x"}}"#),
        _ => Reply::json("{}").status(500),
    });
    let destinations =
        Backend::start(|seen| Reply::json(&json!({"destinations": ["LAX", "SFO"], "asked": seen.target}).to_string()));
    let third = Backend::start(|_| Reply::json(r#"{"third": true}"#));
    let down = format!("http://{}", refused_addr());
    let gw = gateway(
        &json!({"version": 3, "endpoints": [
            {"endpoint": "/hotel-destinations/{id}",
             "extra_config": {"proxy": {"sequential": true}},
             "backend": [
                {"host": [hotels.url()], "url_pattern": "/hotels/{id}"},
                {"host": [destinations.url()],
                 "url_pattern": "/destinations/{resp0_destination_id}?owner={resp0_owner.hash}"}]},
            {"endpoint": "/stops/{id}",
             "extra_config": {"proxy": {"sequential": true}},
             "backend": [
                {"host": [hotels.url()], "url_pattern": "/hotels/{id}", "group": "h"},
                {"host": [down], "url_pattern": "/never/{resp0_h.hotel_id}"},
                {"host": [third.url()], "url_pattern": "/third"}]}
        ]})
        .to_string(),
    );

    let r = get(gw, "/hotel-destinations/25");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gatelet-completed"), Some("true"));
    let body = r.json();
    assert_eq!(body["hotel_id"], 25);
    assert_eq!(body["destinations"], json!(["LAX", "SFO"]));
    assert_eq!(
        body["asked"], "/destinations/1034?owner=a%2Fb%3Fc%26d%3De",
        "values are percent-encoded: they cannot add a path step or a query parameter"
    );

    // A value the first answer lacks (or a path step such as ".."): the second backend is not
    // called, and the answer is the first one, marked incomplete.
    for id in [26, 27] {
        let before = destinations.seen().len();
        let r = get(gw, &format!("/hotel-destinations/{id}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-gatelet-completed"), Some("false"));
        assert_eq!(r.json()["hotel_id"], id);
        assert_eq!(destinations.seen().len(), before, "backend 1 not called for hotel {id}");
    }

    // The first backend failing fails the endpoint; nothing after it is called.
    let before = destinations.seen().len();
    assert_eq!(get(gw, "/hotel-destinations/99").status, 502);
    assert_eq!(destinations.seen().len(), before);

    // A failure in the middle stops the sequence: what came before is the answer.
    let r = get(gw, "/stops/25");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gatelet-completed"), Some("false"));
    assert_eq!(
        r.json(),
        json!({"h": {"hotel_id": 25, "destination_id": 1034, "owner": {"hash": "a/b?c&d=e"}}})
    );
    assert!(third.seen().is_empty(), "the backend after a failure is never reached");
}

#[test]
fn flatmap_filter_shapes_arrays_on_backends_and_on_the_merge() {
    let schools = Backend::start(|_| {
        Reply::json(
            r#"{"kindergarten": [{"PK_ID": 9, "password": "k"}],
                "schools": [{"students": [{"PK_ID": 1, "password": "p"}, {"PK_ID": 2, "password": "q"}]}],
                "internal": {"n": 1}}"#,
        )
    });
    let buses = Backend::start(|_| Reply::json(r#"{"buses": [{"id": "b1", "vin": "V1"}, {"id": "b2", "vin": "V2"}]}"#));
    let gw = gateway(
        &json!({"version": 3, "endpoints": [
            {"endpoint": "/alumni", "backend": [
                {"host": [schools.url()], "url_pattern": "/s", "extra_config": {"proxy": {"flatmap_filter": [
                    {"type": "append", "args": ["kindergarten", "schools.0.students"]},
                    {"type": "move", "args": ["schools.0.students", "alumni"]},
                    {"type": "del", "args": ["schools", "alumni.*.password"]},
                    {"type": "move", "args": ["alumni.*.PK_ID", "alumni.*.id"]}]}}}]},
            {"endpoint": "/fleet", "extra_config": {"proxy": {"flatmap_filter": [
                    {"type": "del", "args": ["buses.*.vin", "internal"]},
                    {"type": "move", "args": ["buses.0.id", "first"]}]}},
             "backend": [
                {"host": [schools.url()], "url_pattern": "/s", "target": "internal", "group": "internal"},
                {"host": [buses.url()], "url_pattern": "/b"}]}
        ]})
        .to_string(),
    );
    let r = get(gw, "/alumni");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"alumni": [{"id": 1}, {"id": 2}, {"id": 9}], "internal": {"n": 1}})
    );
    let r = get(gw, "/fleet");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"buses": [{}, {"id": "b2"}], "first": "b1"}));
}

#[test]
fn jwt_claims_reach_the_drivers_own_data() {
    let secret = b"0123456789abcdef0123456789abcdef-depot";
    let dir = std::env::temp_dir().join(format!("gatelet-jwt-url-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("keys.json");
    std::fs::write(
        &jwks,
        json!({"keys": [{"kty": "oct", "kid": "k", "alg": "HS256", "k": b64url(secret)}]}).to_string(),
    )
    .unwrap();
    let trips = Backend::start(|_| Reply::json(r#"{"trips": []}"#));
    let gw = gateway(
        &json!({"version": 3, "extra_config": {"gatelet/jwt": {"unsynced_clock": "accept"}},
            "endpoints": [{"endpoint": "/me/trips", "input_headers": ["*"],
                "extra_config": {"auth/validator": {"alg": "HS256", "jwk_local_path": jwks,
                    "propagate_claims": [["sub", "X-Driver"], ["depot.name", "X-Depot"], ["lines", "X-Lines"]]}},
                "backend": [{"host": [trips.url()], "url_pattern": "/drivers/{JWT.sub}/trips?shift={JWT.shift}"}]}]})
        .to_string(),
    );
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let token = |claims: serde_json::Value| hs256(secret, &json!({"alg": "HS256", "kid": "k"}), &claims);
    let call = |t: &str| {
        request(
            gw,
            "GET",
            "/me/trips",
            &[
                &format!("Authorization: Bearer {t}"),
                "X-Driver: someone-else",
                "X-Depot: spoofed",
            ],
            b"",
        )
    };

    let r = call(&token(json!({"sub": "d/42 ä", "shift": 3.0, "exp": exp,
                              "depot": {"name": "north"}, "lines": [7, "N1"]})));
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = trips.seen().pop().unwrap();
    assert_eq!(seen.target, "/drivers/d%2F42%20%C3%A4/trips?shift=3");
    assert_eq!(
        seen.header("x-driver"),
        Some("d/42 ä"),
        "the claim, not the client's header"
    );
    assert_eq!(seen.header("x-depot"), Some("north"), "a nested claim");
    assert_eq!(seen.header("x-lines"), Some("7,N1"), "a list, comma-joined");

    // A claim that is missing: no header from it, and never the client's own.
    let r = call(&token(json!({"sub": "d7", "shift": 1, "exp": exp})));
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = trips.seen().pop().unwrap();
    assert_eq!(seen.target, "/drivers/d7/trips?shift=1");
    assert_eq!(seen.header("x-depot"), None, "the client's X-Depot is not forwarded");

    // A token without a claim the URL needs reaches no backend.
    let before = trips.seen().len();
    for claims in [
        json!({"shift": 1, "exp": exp}),
        json!({"sub": "..", "shift": 1, "exp": exp}),
    ] {
        let r = call(&token(claims));
        assert_eq!(r.status, 403, "{}", r.text());
    }
    assert_eq!(trips.seen().len(), before);
}
