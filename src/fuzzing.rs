//! The fuzz targets' bodies, one `pub fn` per target of `fuzz/` (cargo-fuzz, nightly), here so
//! that the regression tests in `tests/fuzz_regressions.rs` replay a found input through exactly
//! the same code on stable. Not part of gatelet's API: hidden from the docs, and nothing in the
//! gateway calls it. Each target panics when an input breaks one of the properties it states.
//!
//! Also owns: a gateway served on a loopback listener of its own (the real accept path, the real
//! [`http::serve`], the real upstream client talking to the same listener), to which one raw
//! client connection at a time is sent, half-closed, and read until the server closes it, all
//! under a deadline so an input can never hang the fuzzer. Never opens anything but loopback.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::task::LocalSet;

use ::http::header::{AUTHORIZATION, COOKIE};
use ::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::auth::jwt::{self, Alg, Jwk, KeyMaterial, Validator};
use crate::backend::Inbound;
use crate::config::{self, ConfigError};
use crate::gateway::Gateway;
use crate::merge;
use crate::router::Match;
use crate::sensor::decode::{Decode, Decoder};
use crate::sensor::lines::{Lines, TooLong};
use crate::sensor::nmea::Checksum;
use crate::sensor::run::Sensor;
use crate::{http, runtime};

/// The most of a response [`Server::exchange`] keeps (the rest is read and dropped), so a
/// response that never ends cannot exhaust the fuzzer's memory.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// What one connection got back.
#[derive(Debug)]
pub struct Exchange {
    /// The bytes the server sent, at most [`MAX_RESPONSE_BYTES`].
    pub response: Vec<u8>,
    /// The server closed the connection before the deadline.
    pub closed: bool,
}

/// A gateway served on `127.0.0.1:<ephemeral>` on a runtime owned by this value. It runs
/// only inside [`Server::exchange`]; between calls its tasks (connections, upstream pools,
/// sensors) simply wait.
pub struct Server {
    /// Kept for inspection by targets (counters, config).
    pub gateway: Rc<Gateway>,
    addr: SocketAddr,
    // Dropped in this order: the tasks (with the LocalSet), then the runtime they ran on.
    local: LocalSet,
    runtime: Runtime,
}

impl Server {
    /// Binds a loopback listener, then validates `config(listener address)` (so backends can
    /// point at the gateway's own built-in routes) and serves it.
    pub fn start(config: impl FnOnce(SocketAddr) -> String) -> Result<Server, Vec<ConfigError>> {
        let fail = |e: io::Error| setup_failed("<fuzz>".into(), format!("loopback listener: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let config = config::parse("<fuzz>", &config(addr))?;
        let (runtime, local) = runtime::new().map_err(fail)?;
        let gateway = {
            let _in_runtime = runtime.enter();
            let _in_local = local.enter();
            let listener = tokio::net::TcpListener::from_std(listener).map_err(fail)?;
            let gateway = Gateway::new(config, true).map_err(|e| setup_failed("<fuzz>".into(), e))?;
            let gateway = Rc::new(gateway);
            runtime::spawn(accept(listener, gateway.clone()));
            gateway
        };
        Ok(Server {
            gateway,
            addr,
            local,
            runtime,
        })
    }

    /// Where the gateway listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens one connection, writes `request` then [`SENTINEL`] (as far as the server reads
    /// them), and reads until the server closes or `limit` passes, half-closing after
    /// [`QUIET`] without a byte from the server.
    pub fn exchange(&self, request: &[u8], limit: Duration) -> Exchange {
        let mut response = Vec::new();
        let closed = self.local.block_on(&self.runtime, async {
            runtime::within(limit, talk(self.addr, request, &mut response))
                .await
                .is_some()
        });
        Exchange { response, closed }
    }
}

/// A harness that could not be set up (a socket, a file), told as a config error about `file`.
fn setup_failed(file: String, message: String) -> Vec<ConfigError> {
    vec![ConfigError {
        file,
        line: 0,
        col: 0,
        path: String::new(),
        message,
    }]
}

async fn accept(listener: tokio::net::TcpListener, gateway: Rc<Gateway>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // Out of descriptors: let the current exchange end and free some.
            runtime::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (timeouts, shutdown) = (gateway.config.timeouts, gateway.shutdown.clone());
        let handler = crate::dispatch::handler(gateway.clone(), peer);
        runtime::spawn(http::serve(stream, peer, timeouts, shutdown, handler));
    }
}

/// Sent after every input: a complete request that closes the connection once answered, so
/// an exchange whose input left the server ready for the next request ends at once.
pub const SENTINEL: &[u8] = b"GET /__health HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";

/// How long the server may send nothing before the client half-closes. hyper (without
/// `half_close`) ends the connection on the client's EOF, so an input that leaves the server
/// waiting for more (a short body, an unfinished head) costs this, not the whole deadline.
pub const QUIET: Duration = Duration::from_millis(20);

async fn talk(addr: SocketAddr, request: &[u8], response: &mut Vec<u8>) {
    let Ok(mut client) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    // The server may answer and close before reading everything (431, 413): not an error here.
    let _ = client.write_all(request).await;
    let _ = client.write_all(SENTINEL).await;
    let mut half_closed = false;
    let mut buf = [0u8; 8192];
    loop {
        let read = if half_closed {
            Some(client.read(&mut buf).await)
        } else {
            runtime::within(QUIET, client.read(&mut buf)).await
        };
        match read {
            None => {
                let _ = client.shutdown().await;
                half_closed = true;
            }
            Some(Ok(0) | Err(_)) => return,
            Some(Ok(n)) => {
                let room = MAX_RESPONSE_BYTES - response.len();
                response.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// base64url without padding (RFC 7515), the inverse of `auth::jwt::b64url_decode`.
pub fn b64url(bytes: &[u8]) -> String {
    crate::dashboard::base64::encode_with(bytes, crate::dashboard::base64::URL_SAFE, false)
}

/// Compiles `config` without serving it (no listener; its tasks never run) and hands the
/// gateway to `f`. The sensor tasks it spawned are dropped, never polled, with the `LocalSet`.
/// The outbox's and inbox's journals go under the temporary directory, whatever `dir` the
/// input names: fuzzing writes nowhere else.
fn with_compiled<T>(mut config: config::Config, f: impl FnOnce(&Gateway) -> T) -> T {
    let scratch = std::env::temp_dir().join(format!("gatelet-fuzz-journal-{}", std::process::id()));
    if let Some(o) = &mut config.outbox {
        o.dir = scratch.join("outbox");
    }
    if let Some(i) = &mut config.inbox {
        i.dir = scratch.join("inbox");
    }
    let Ok((runtime, local)) = runtime::new() else {
        panic!("no runtime for the fuzzer: out of descriptors?");
    };
    let _in_runtime = runtime.enter();
    let _in_local = local.enter();
    match Gateway::new(config, false) {
        Ok(gateway) => f(&gateway),
        Err(e) => panic!("a valid config did not compile: {e}"),
    }
}

/// Target `config`: arbitrary text through [`config::parse`] and, when valid, compiled into a
/// gateway as `run` does (routes, backends, limiters, sensors). An invalid config must say
/// why, with a position inside the text.
pub fn config(data: &[u8]) {
    // Config files are read with read_to_string: invalid UTF-8 never reaches the parser, but
    // its lossy repair keeps mutated inputs useful.
    let text = String::from_utf8_lossy(data);
    match config::parse("<fuzz>", &text) {
        Ok(config) => with_compiled(config, |_| ()),
        Err(errors) => {
            assert!(!errors.is_empty(), "an invalid config with no error");
            let lines = text.split('\n').count();
            for e in &errors {
                // Line 0 is for errors that are not about the text (an unreadable file it names).
                assert!(e.line <= lines, "error past the last line: {e} ({lines} lines)");
                assert!(
                    !e.message.is_empty(),
                    "an error with no message at {}:{}",
                    e.line,
                    e.col
                );
                let _ = e.to_string();
            }
        }
    }
}

/// The decoders the `sensor` target picks from (input byte 0).
const DECODERS: [Decode; 8] = [
    Decode::Text,
    Decode::Number { scale: None },
    Decode::Number { scale: Some(0.001) },
    Decode::Json,
    Decode::JsonLines,
    Decode::Kv,
    Decode::Nmea(Checksum::Require),
    Decode::Nmea(Checksum::AllowMissing),
];

fn frames(max_frame: usize, cuts: &[&[u8]]) -> Vec<Result<Vec<u8>, TooLong>> {
    let mut lines = Lines::new(max_frame);
    let mut out = Vec::new();
    for cut in cuts {
        lines.push(cut, |f| out.push(f.map(<[u8]>::to_vec)));
    }
    out
}

fn check_fix(fix: &Value) {
    for (key, min, max) in [
        ("lat", -90.0, 90.0),
        ("lon", -180.0, 180.0),
        ("course_deg", 0.0, 360.0),
        ("speed_kmh", 0.0, 2_000.0),
    ] {
        if let Some(v) = fix.get(key).and_then(Value::as_f64) {
            assert!((min..=max).contains(&v), "{key} {v} out of range in {fix}");
        }
    }
}

/// Target `sensor`: the line splitter feeding a frame decoder (text, number, json, json-lines,
/// kv, nmea with both checksum modes) and the reading store behind it (latest, keyed or event
/// ring). Input: byte 0 picks decoder and store, byte 1 the `max_frame`, byte 2 where the
/// stream is cut into two reads; the rest is the device's bytes. Splitting the stream
/// anywhere must give the same frames; a GPS fix stays in range; readings serialise.
pub fn sensor(data: &[u8]) {
    let [pick, frame, cut, stream @ ..] = data else { return };
    let decode = DECODERS[usize::from(*pick) % DECODERS.len()].clone();
    let max_frame = 1 + usize::from(*frame) * 4;
    let at = usize::from(*cut).min(stream.len());
    let whole = frames(max_frame, &[stream]);
    let split = frames(max_frame, &[&stream[..at], &stream[at..]]);
    assert_eq!(whole, split, "frames depend on where the stream was cut ({at})");

    let mut decoder = Decoder::new(decode.clone());
    for frame in whole.iter().flatten() {
        if let Ok(Some(v)) = decoder.frame(frame) {
            assert!(serde_json::to_string(&v).is_ok(), "a reading that does not serialise");
            if matches!(decode, Decode::Nmea(_)) {
                check_fix(&v);
            }
        }
    }

    let store = usize::from(*pick / 8) % 3;
    let sensor = Sensor::new(config::Sensor {
        name: "s".into(),
        decode,
        max_age: Some(Duration::from_secs(5)),
        key: (store == 1).then(|| "id".into()),
        max_frame,
        events: (store == 2).then_some(4),
        forward: None,
        source: config::SensorSource::FileRead {
            path: "/nonexistent/fuzz".into(),
            interval: Duration::from_secs(1),
        },
    });
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut now = 0;
    for frame in whole.iter().flatten() {
        now += 1_000_000;
        sensor.ingest(frame, now, wall);
    }
    let _ = sensor.reading(now, false);
    let _ = sensor.reading(now + 10_000_000_000, true);
    let _ = sensor.events_since(1, now);
    let _ = serde_json::to_string(&sensor.health(now));
}

/// Target `merge`: a fuzzer-written backend config fragment (`url_pattern`, `encoding`,
/// `is_collection`, `target`, `allow`, `deny`, `mapping`, `group`, ...) checked by the real
/// config loader; a backend body through `merge::decode` -> `merge::shape` -> `merge::merge`;
/// and a client request target, routed by the compiled router and turned into the backend's
/// request target (`backend::request::Template::target`). Input: `backend keys \0 body \0 request target
/// [\0 endpoint keys]`. `group` must leave one key, `allow` only allowed top-level keys, a
/// one-segment `deny` key must be gone, and the backend target must parse as a URI (else
/// the call fails with `CallError::BadTarget` rather than go to `/`).
pub fn merge(data: &[u8]) {
    let mut parts = data.splitn(4, |&b| b == 0);
    let (Some(fragment), Some(body), Some(target)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let endpoint_keys = parts.next().unwrap_or_default();
    let (Ok(fragment), Ok(endpoint_keys)) = (std::str::from_utf8(fragment), std::str::from_utf8(endpoint_keys)) else {
        return;
    };
    let comma = |s: &str| {
        if s.trim().is_empty() {
            String::new()
        } else {
            format!(",{s}")
        }
    };
    let text = format!(
        r#"{{"version": 3, "endpoints": [{{"endpoint": "/e/{{a}}/{{b}}"{},
            "backend": [{{"host": ["http://127.0.0.1:9"]{}}}]}}]}}"#,
        comma(endpoint_keys),
        comma(fragment)
    );
    let Ok(config) = config::parse("<fuzz>", &text) else {
        return;
    };
    with_compiled(config, |gw| merge_with(gw, body, target));
}

fn merge_with(gw: &Gateway, body: &[u8], target: &[u8]) {
    let (Some(endpoint), Some(compiled)) = (gw.config.endpoints.first(), gw.backends.first()) else {
        return;
    };
    let Some(compiled) = compiled.first() else {
        return;
    };
    let backend = &compiled.spec;
    if backend.encoding != config::Encoding::NoOp
        && let Ok(decoded) = merge::decode(backend.encoding, backend.shape.is_collection, body)
    {
        let shape = &backend.shape;
        let shaped = merge::shape(shape, decoded);
        if let Some(group) = &shape.group {
            assert!(shaped.len() == 1 && shaped.contains_key(group), "group left {shaped:?}");
        } else if shape.mapping.is_empty() && !shape.allow.is_empty() {
            for key in shaped.keys() {
                assert!(shape.allow.iter().any(|p| p[0] == *key), "{key:?} kept, not allowed");
            }
        } else if shape.mapping.is_empty() {
            for path in shape.deny.iter().filter(|p| p.len() == 1) {
                assert!(!shaped.contains_key(&path[0]), "{:?} denied but kept", path[0]);
            }
        }
        let mut all = Map::new();
        merge::merge(&mut all, shaped.clone());
        assert_eq!(all, shaped);
        assert!(serde_json::to_string(&all).is_ok(), "merged data does not serialise");
    }

    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    let Ok(uri) = target.parse::<::http::Uri>() else { return };
    let Match::Found { endpoint: 0, params } = gw.router.route(&endpoint.method, uri.path()) else {
        return;
    };
    let headers = HeaderMap::new();
    let inbound = Inbound {
        params: &params,
        query: uri.query(),
        headers: &headers,
        body: Bytes::new(),
        forwarded_for: HeaderValue::from_static("127.0.0.1"),
        now: 0,
        propagated: Vec::new(),
        vars: Default::default(),
        subject: None,
    };
    let sent = compiled.template.target(&inbound);
    assert!(
        sent.starts_with('/') && sent.parse::<::http::Uri>().is_ok(),
        "backend target {sent:?} (from {target:?}) is not a valid origin-form target"
    );
}

/// The `jwt` target's HS256 secret.
const JWT_SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
/// The `jwt` target's clock (Unix seconds).
const JWT_NOW: u64 = 1_800_000_000;

fn validator(flags: u8) -> Validator {
    let on = |bit: u8| flags & (1 << bit) != 0;
    Validator {
        alg: Alg::HS256,
        keys: vec![Jwk {
            kid: on(0).then(|| "k1".into()),
            key: KeyMaterial::Oct(JWT_SECRET.to_vec()),
        }],
        audience: if on(1) { vec!["bus-42".into()] } else { Vec::new() },
        issuer: on(2).then(|| "office".into()),
        roles: if on(3) { vec!["driver".into()] } else { Vec::new() },
        roles_key: if on(4) { "realm.roles".into() } else { "roles".into() },
        roles_key_is_nested: on(4),
        scopes: if on(5) {
            vec!["read".into(), "write".into()]
        } else {
            Vec::new()
        },
        scopes_key: "scope".into(),
        scopes_all: on(6),
        leeway: if on(7) { 30 } else { 0 },
        cookie_key: on(6).then(|| "jwt".into()),
        header: if on(7) {
            HeaderName::from_static("x-token")
        } else {
            AUTHORIZATION
        },
        propagate: Vec::new(),
    }
}

fn signed(header: &[u8], claims: &[u8]) -> String {
    let signed = format!("{}.{}", b64url(header), b64url(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, JWT_SECRET);
    format!(
        "{signed}.{}",
        b64url(ring::hmac::sign(&key, signed.as_bytes()).as_ref())
    )
}

fn carrying(v: &Validator, token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = if v.header == AUTHORIZATION {
        format!("Bearer {token}")
    } else {
        token.to_string()
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(v.header.clone(), value);
    }
    headers
}

/// Target `jwt`: byte 0 picks a mode, byte 1 the validator's options. Modes: a raw header
/// value (and the same as a cookie); a token whose header and claims (split at the first
/// `\n`) the fuzzer writes, signed with the validator's key so every claim check is reached;
/// a JWK set document for every algorithm; base64url text. A signed token is accepted only
/// with `alg` HS256, a numeric `exp` not in the past, and exactly its own claims, and never
/// with one signature character changed; base64url decoding is canonical.
pub fn jwt(data: &[u8]) {
    let [mode, flags, rest @ ..] = data else { return };
    let v = validator(*flags);
    match mode % 4 {
        0 => {
            let Ok(value) = HeaderValue::from_bytes(rest) else {
                return;
            };
            let mut headers = HeaderMap::new();
            headers.insert(v.header.clone(), value.clone());
            let _ = v.validate(&headers, JWT_NOW);
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, value);
            let _ = v.validate(&headers, JWT_NOW);
        }
        1 => {
            let (header, claims) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (&br#"{"alg":"HS256"}"#[..], rest),
            };
            let token = signed(header, claims);
            let Ok(got) = v.validate(&carrying(&v, &token), JWT_NOW) else {
                return;
            };
            let h: Option<Map<String, Value>> = serde_json::from_slice(header).ok();
            let alg = h.as_ref().and_then(|h| h.get("alg")).and_then(Value::as_str);
            assert_eq!(alg, Some("HS256"), "accepted a token whose alg is not HS256");
            let c: Option<Map<String, Value>> = serde_json::from_slice(claims).ok();
            assert_eq!(Some(&got), c.as_ref(), "claims differ from the token's");
            let exp = got.get("exp").and_then(Value::as_f64);
            assert!(
                exp.is_some_and(|e| e + v.leeway as f64 >= JWT_NOW as f64),
                "accepted a token without a current exp ({exp:?})"
            );
            let mut forged = token.into_bytes();
            let last = forged.len() - 1;
            forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(forged).expect("base64url is ASCII");
            assert!(
                v.validate(&carrying(&v, &forged), JWT_NOW).is_err(),
                "forged signature accepted"
            );
        }
        2 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            for alg in [Alg::HS256, Alg::RS256, Alg::ES256, Alg::EdDSA] {
                if let Ok(keys) = jwt::parse_jwk_set(text, alg) {
                    assert!(!keys.is_empty(), "an empty key set accepted for {}", alg.name());
                }
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            if let Some(bytes) = jwt::b64url_decode(text) {
                assert_eq!(b64url(&bytes), text, "non-canonical base64url accepted");
            }
        }
    }
}

/// Target `http`: `data` as one client connection to `server` (see [`Server::exchange`]).
/// The connection must close within 5 s, and what comes back must start as an HTTP/1.x
/// response (hyper answers an HTTP/1.0 request in kind). Any panic in the server is a crash.
pub fn http(server: &Server, data: &[u8]) {
    let got = server.exchange(data, Duration::from_secs(5));
    let head = String::from_utf8_lossy(&got.response[..got.response.len().min(300)]);
    assert!(got.closed, "connection still open after 5 s: {head:?}");
    assert!(
        got.response.is_empty() || got.response.starts_with(b"HTTP/1."),
        "not an HTTP/1.x response: {head:?}"
    );
}

/// The config of [`http_server`]; `{port}`, `{jwks}` and `{sensor}` are filled in at start.
/// Backends call the gateway's own built-in routes, so every endpoint really runs.
pub const HTTP_CONFIG: &str = r#"{
  "version": 3, "name": "fuzz", "timeout": "1s", "echo_endpoint": true, "debug_endpoint": true,
  "host": ["http://127.0.0.1:{port}"],
  "extra_config": {
    "router": {"return_error_msg": true, "trusted_proxies": ["127.0.0.0/8"]},
    "security/cors": {"allow_origins": ["https://a.example"], "allow_methods": ["GET", "POST"],
                      "allow_headers": ["X-A"], "max_age": "1h"},
    "gatelet/api-keys": {"keys": [{"name": "fuzz", "sha256": "{key}", "roles": ["read"]}]},
    "gatelet/jwt": {"unsynced_clock": "accept"},
    "gatelet/sensors": {"kv": {"decode": "kv", "max_age": "5s", "file": {"path": "{sensor}", "interval": "1s"}}}
  },
  "endpoints": [
    {"endpoint": "/agg/{id}", "input_query_strings": ["q"], "input_headers": ["X-A"],
     "backend": [
       {"url_pattern": "/__echo/a/{id}", "allow": ["req_uri", "req_method", "req_headers.X-A"],
        "mapping": {"req_uri": "uri"}},
       {"url_pattern": "/__health", "target": "agents", "group": "health"},
       {"url_pattern": "/__echo/c?x=1", "deny": ["req_headers"], "group": "c"}]},
    {"endpoint": "/all/{a}/{b}", "input_query_strings": ["*"], "input_headers": ["*"],
     "output_encoding": "json-collection",
     "backend": [{"url_pattern": "/__echo/{b}/{a}", "encoding": "safejson", "target": "req_headers"}]},
    {"endpoint": "/text", "output_encoding": "string",
     "backend": [{"url_pattern": "/__echo/t", "encoding": "string", "group": "g"}]},
    {"endpoint": "/post/{id}", "method": "POST", "output_encoding": "no-op", "input_headers": ["*"],
     "backend": [{"url_pattern": "/__echo/p/{id}", "encoding": "no-op", "method": "POST"}]},
    {"endpoint": "/key", "extra_config": {"gatelet/api-keys": {"roles": ["read"]}},
     "backend": [{"url_pattern": "/__echo/k"}]},
    {"endpoint": "/jwt", "extra_config": {"auth/validator": {"alg": "HS256", "jwk_local_path": "{jwks}",
       "roles": ["driver"], "propagate_claims": [["sub", "X-User"]]}},
     "backend": [{"url_pattern": "/__echo/j"}]},
    {"endpoint": "/sensor", "backend": [{"extra_config": {"gatelet/sensor": {"name": "kv"}}, "allow": ["value"]}]},
    {"endpoint": "/limited/{who}", "cache_ttl": "1s", "concurrent_calls": 2,
     "extra_config": {"qos/ratelimit/router": {"max_rate": 1000000, "client_max_rate": 1000000,
                                               "strategy": "param", "key": "who"}},
     "backend": [{"url_pattern": "/__echo/l/{who}"}]}
  ]
}"#;

/// The HS256 secret of [`HTTP_CONFIG`]'s `/jwt` endpoint.
pub const HTTP_JWT_SECRET: &[u8; 32] = b"fuzz-fuzz-fuzz-fuzz-fuzz-fuzz-32";
/// The API key [`HTTP_CONFIG`]'s `/key` endpoint accepts.
pub const HTTP_API_KEY: &str = "fuzz-key";

/// [`HTTP_CONFIG`] served, with its JWK set and sensor file written to a fresh directory under
/// the system's temporary directory.
pub fn http_server() -> Result<Server, Vec<ConfigError>> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("gatelet-fuzz-{}-{n}", std::process::id()));
    let fail = |e: io::Error| setup_failed(dir.display().to_string(), e.to_string());
    std::fs::create_dir_all(&dir).map_err(fail)?;
    let jwks = dir.join("jwks.json");
    let sensor = dir.join("sensor.kv");
    let k = b64url(HTTP_JWT_SECRET);
    std::fs::write(&jwks, format!(r#"{{"keys": [{{"kty": "oct", "k": "{k}"}}]}}"#)).map_err(fail)?;
    std::fs::write(&sensor, "speed=42\nfuel: 73 %\n").map_err(fail)?;
    let key: String = ring::digest::digest(&ring::digest::SHA256, HTTP_API_KEY.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Server::start(|addr| {
        HTTP_CONFIG
            .replace("{port}", &addr.port().to_string())
            .replace("{jwks}", &jwks.display().to_string())
            .replace("{sensor}", &sensor.display().to_string())
            .replace("{key}", &key)
    })
}
