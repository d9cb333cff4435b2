//! Inputs found by the fuzz targets in `fuzz/` (cargo-fuzz, nightly), replayed through the same
//! public functions on stable so they stay fixed. Each test is named after what it guards.

use std::time::Duration;

use gatelet::fuzzing;

/// The whole-connection target's server answers plain requests (a smoke test of the harness
/// itself: if this fails, the fuzz target is testing nothing).
#[test]
fn fuzz_http_harness_serves_every_endpoint() {
    let server = fuzzing::http_server().unwrap_or_else(|e| panic!("{e:?}"));
    for (request, status) in [
        (&b"GET /__health HTTP/1.1\r\nHost: x\r\n\r\n"[..], "200"),
        (b"GET /agg/7?q=1 HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n", "200"),
        (b"GET /all/1/2?z HTTP/1.1\r\nHost: x\r\n\r\n", "200"),
        (b"GET /text HTTP/1.1\r\nHost: x\r\n\r\n", "200"),
        (
            b"POST /post/3 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
            "200",
        ),
        (
            b"GET /key HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzz-key\r\n\r\n",
            "200",
        ),
        (b"GET /jwt HTTP/1.1\r\nHost: x\r\n\r\n", "401"),
        (b"GET /limited/a HTTP/1.1\r\nHost: x\r\n\r\n", "200"),
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", "404"),
        (b"\x00\xff", "400"),
    ] {
        let got = server.exchange(request, Duration::from_secs(5));
        let text = String::from_utf8_lossy(&got.response);
        assert!(got.closed, "{text}");
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{}: {text}",
            String::from_utf8_lossy(request)
        );
    }
}

/// `merge` found it: a `url_pattern` with a backtick (also `<`, `>`) passed validation, but the
/// backend target built from it is no URI, so every call went to "/" instead. Such a pattern
/// is now a config error.
#[test]
fn url_pattern_that_is_no_request_target_is_refused() {
    fuzzing::merge(include_bytes!("fuzz/merge-url-pattern-backtick"));
    for pattern in ["/a`b", "/a<b", "/{id}>"] {
        let text = format!(
            r#"{{"version": 3, "endpoints": [{{"endpoint": "/x/{{id}}",
                "backend": [{{"host": ["http://127.0.0.1:9"], "url_pattern": "{pattern}"}}]}}]}}"#
        );
        let errors = gatelet::config::parse("t.json", &text).expect_err(pattern);
        assert!(
            errors[0].to_string().contains("is not a valid request target"),
            "{pattern}: {errors:?}"
        );
    }
}

/// Every committed seed (`fuzz/seeds/<target>/`) and every input a target once failed on
/// (`tests/fuzz/<target>-<what>`) still passes its target.
#[test]
fn fuzz_seeds_and_past_crashes_pass_their_targets() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let server = fuzzing::http_server().unwrap_or_else(|e| panic!("{e:?}"));
    let mut inputs: Vec<(String, std::path::PathBuf)> = Vec::new();
    for target in ["config", "sensor", "merge", "jwt", "http"] {
        if let Ok(dir) = std::fs::read_dir(root.join("fuzz/seeds").join(target)) {
            inputs.extend(dir.map(|e| (target.to_string(), e.unwrap().path())));
        }
    }
    for entry in std::fs::read_dir(root.join("tests/fuzz")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        inputs.push((name.split('-').next().unwrap().to_string(), path));
    }
    assert!(inputs.len() > 20, "seeds missing: {inputs:?}");
    for (target, path) in inputs {
        let data = std::fs::read(&path).unwrap();
        let run = std::panic::AssertUnwindSafe(|| match target.as_str() {
            "config" => fuzzing::config(&data),
            "sensor" => fuzzing::sensor(&data),
            "merge" => fuzzing::merge(&data),
            "jwt" => fuzzing::jwt(&data),
            "http" => fuzzing::http(&server, &data),
            other => panic!("no fuzz target {other}"),
        });
        if std::panic::catch_unwind(run).is_err() {
            panic!("{} fails target {target}", path.display());
        }
    }
}

/// `merge` found it: a client path segment may hold a raw '"' (hyper accepts it in a path), but
/// a `url_pattern` that puts the parameter in its query made a target hyper's URI parser
/// refuses, so the backend was called at "/" instead. Parameters now go out with '"' as %22.
#[test]
fn quote_in_a_parameter_placed_in_the_query_is_encoded() {
    fuzzing::merge(include_bytes!("fuzz/merge-quote-param-in-query"));
    fuzzing::merge(b"\"url_pattern\": \"/{a}?id={b}\"\0{}\0/e/a\"b/c\"d");
}
