//! Security at the edge, over real sockets. So far: CORS (KrakenD's `security/cors`) —
//! preflights answered before routing (204 allowed, echoing the method and headers asked for;
//! 403 denied with the reason), actual answers decorated only for allowed origins, `Vary`
//! always.

mod common;

use common::jwt::{b64url, hs256, hs256_raw};
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
    // KrakenD's CORS module (rs/cors) echoes what was asked for, not the configured lists.
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET"));
    assert_eq!(ok.header("access-control-allow-headers"), Some("authorization"));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        ok.header("vary"),
        Some("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
    );
    let post = request(
        gw,
        "OPTIONS",
        "/vehicle",
        &[
            "Origin: https://office.example",
            "Access-Control-Request-Method: POST",
            "Access-Control-Request-Headers: Content-Type,Authorization",
        ],
        b"",
    );
    assert_eq!(post.status, 204, "{}", post.text());
    assert_eq!(post.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        post.header("access-control-allow-headers"),
        Some("Content-Type, Authorization")
    );
    let plain = request(
        gw,
        "OPTIONS",
        "/vehicle",
        &["Origin: https://office.example", "Access-Control-Request-Method: GET"],
        b"",
    );
    assert_eq!(plain.status, 204);
    assert_eq!(
        plain.header("access-control-allow-headers"),
        None,
        "none asked, none listed"
    );

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
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="gatelet", error="invalid_token""#)
        );
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

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn hs256_tokens_are_validated_with_a_pinned_algorithm() {
    use serde_json::json;
    let secret = b"0123456789abcdef0123456789abcdef-office";
    let dir = std::env::temp_dir().join(format!("gatelet-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("keys.json");
    std::fs::write(
        &jwks,
        json!({"keys": [{"kty": "oct", "kid": "office-1", "alg": "HS256", "k": b64url(secret)}]}).to_string(),
    )
    .unwrap();
    let b = Backend::start(|_| Reply::json(r#"{"ok":true}"#));
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"], "extra_config": {{"gatelet/jwt": {{"unsynced_clock": "accept"}}}},
            "endpoints": [{{"endpoint": "/command", "method": "POST", "extra_config": {{"auth/validator": {{
                "alg": "HS256", "jwk_local_path": "{}", "audience": ["bus-42"], "issuer": "https://office.example",
                "roles": ["dispatcher"], "roles_key": "realm_access.roles", "roles_key_is_nested": true,
                "propagate_claims": [["sub", "X-User"]]}}}},
                "backend": [{{"url_pattern": "/"}}]}}]}}"#,
        b.url(),
        jwks.display()
    ));
    let now = unix_now();
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "office-1"});
    let good = json!({"sub": "anna", "iss": "https://office.example", "aud": ["bus-42", "bus-43"],
                      "exp": now + 300, "nbf": now - 10, "realm_access": {"roles": ["dispatcher"]}});
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let call = |token: &str| {
        request(
            gw,
            "POST",
            "/command",
            &[&format!("Authorization: Bearer {token}")],
            b"",
        )
    };

    let ok = call(&hs256(secret, &header, &good));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        b.seen()[0].header("x-user"),
        Some("anna"),
        "claims propagated to the backend"
    );

    let refused: Vec<(&str, String)> = vec![
        ("expired", hs256(secret, &header, &with(&|c| c["exp"] = json!(now - 1)))),
        (
            "no exp",
            hs256(
                secret,
                &header,
                &with(&|c| drop(c.as_object_mut().unwrap().remove("exp"))),
            ),
        ),
        (
            "not yet valid",
            hs256(secret, &header, &with(&|c| c["nbf"] = json!(now + 300))),
        ),
        (
            "wrong iss",
            hs256(secret, &header, &with(&|c| c["iss"] = json!("https://evil.example"))),
        ),
        (
            "wrong aud",
            hs256(secret, &header, &with(&|c| c["aud"] = json!("bus-7"))),
        ),
        (
            "unknown kid",
            hs256(secret, &json!({"alg": "HS256", "kid": "other"}), &good),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"none"}"#),
                b64url(good.to_string().as_bytes())
            ),
        ),
        (
            "other secret",
            hs256(b"another-secret-another-secret-0000", &header, &good),
        ),
        ("tampered", {
            let t = hs256(secret, &header, &good);
            let parts: Vec<&str> = t.split('.').collect();
            let evil = with(&|c| c["sub"] = json!("mallory"));
            format!("{}.{}.{}", parts[0], b64url(evil.to_string().as_bytes()), parts[2])
        }),
        (
            "10 KiB, over the 8 KiB token bound",
            hs256(secret, &header, &with(&|c| c["pad"] = json!("x".repeat(7 * 1024)))),
        ),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (why, token) in &refused {
        let r = call(token);
        assert_eq!(r.status, 401, "{why}: {}", r.text());
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="gatelet", error="invalid_token""#),
            "{why}"
        );
    }
    assert_eq!(request(gw, "POST", "/command", &[], b"").status, 401, "no token");
    // 20 KiB does not even fit the 16 KiB request-head limit: refused before any parsing.
    let huge = hs256(secret, &header, &with(&|c| c["pad"] = json!("x".repeat(15 * 1024))));
    assert_eq!(call(&huge).status, 431);
    let no_role = call(&hs256(
        secret,
        &header,
        &with(&|c| c["realm_access"]["roles"] = json!(["driver"])),
    ));
    assert_eq!(no_role.status, 403, "{}", no_role.text());
    assert_eq!(b.seen().len(), 1, "only the valid token reached the backend");
    std::fs::remove_dir_all(&dir).ok();
}

/// A JWK set holding one HS256 `secret`, in a fresh directory named after `test`.
fn oct_jwk_set(secret: &[u8], test: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("gatelet-jwt-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("keys.json");
    let set = serde_json::json!({"keys": [{"kty": "oct", "k": b64url(secret)}]});
    std::fs::write(&jwks, set.to_string()).unwrap();
    (dir, jwks)
}

/// What RFC 7515 (JWS), RFC 7519 (JWT) and RFC 8725 (JWT best practices) require of a
/// validator, one case each (docs/configuration.md lists them with this test).
#[test]
fn tokens_outside_rfc_7515_7519_8725_are_refused() {
    let secret = b"0123456789abcdef0123456789abcdef-rfc";
    let (dir, jwks) = oct_jwk_set(secret, "rfc");
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"], "extra_config": {{"gatelet/jwt": {{"unsynced_clock": "accept"}}}},
            "endpoints": [
              {{"endpoint": "/bus", "extra_config": {{"auth/validator": {{"alg": "HS256", "jwk_local_path": "{k}",
                  "audience": ["bus-42"], "issuer": "https://büro.example"}}}}, "backend": [{{"url_pattern": "/"}}]}},
              {{"endpoint": "/any", "extra_config": {{"auth/validator": {{"alg": "HS256", "jwk_local_path": "{k}"}}}},
                  "backend": [{{"url_pattern": "/"}}]}}]}}"#,
        b.url(),
        k = jwks.display()
    ));
    let exp = unix_now() + 300;
    let h = r#"{"alg":"HS256","typ":"JWT"}"#;
    let good = format!(r#"{{"iss":"https://büro.example","aud":["bus-42"],"exp":{exp}}}"#);
    let call = |path: &str, header: &str, claims: &str| {
        let token = hs256_raw(secret, header, claims);
        request(gw, "GET", path, &[&format!("Authorization: Bearer {token}")], b"").status
    };
    assert_eq!(call("/bus", h, &good), 200);
    assert_eq!(call("/any", h, &format!(r#"{{"exp":{exp}}}"#)), 200);
    // JSON escapes are undone before comparing (RFC 7519 §7.3): `\/` is `/`, `\u00fc` is `ü`.
    let escaped = format!(r#"{{"iss":"https:\/\/b\u00fcro.example","aud":"bus-42","exp":{exp}}}"#);
    assert_eq!(call("/bus", h, &escaped), 200);
    let refused: Vec<(&str, &str, String)> = vec![
        // RFC 7515 §4.1.11: gatelet understands no extension, so any "crit" is refused.
        ("crit", r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, good.clone()),
        ("crit, empty list", r#"{"alg":"HS256","crit":[]}"#, good.clone()),
        (
            "crit, RFC 7797 unencoded payload",
            r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
            good.clone(),
        ),
        // RFC 7515 §4, RFC 7519 §4: duplicate names are refused, not resolved.
        ("duplicate header name", r#"{"alg":"none","alg":"HS256"}"#, good.clone()),
        (
            "duplicate claim name",
            h,
            format!(r#"{{"iss":"https://büro.example","aud":["bus-7"],"aud":["bus-42"],"exp":{exp}}}"#),
        ),
        // RFC 7519 §7.2 step 8, RFC 7515 §4.1.10: a nested token carries a token, not claims.
        ("cty JWT", r#"{"alg":"HS256","cty":"JWT"}"#, good.clone()),
        (
            "cty application/jwt",
            r#"{"alg":"HS256","cty":"application/JWT"}"#,
            good.clone(),
        ),
        // RFC 7515 §4.1.1: "alg" is case-sensitive.
        ("alg hs256", r#"{"alg":"hs256"}"#, good.clone()),
        // RFC 7519 §4.1.3: an aud that does not name this recipient.
        (
            "aud as one string with a space",
            h,
            format!(r#"{{"iss":"https://büro.example","aud":"bus-7 bus-42","exp":{exp}}}"#),
        ),
        (
            "aud not strings",
            h,
            format!(r#"{{"iss":"https://büro.example","aud":["bus-42",42],"exp":{exp}}}"#),
        ),
        // RFC 7519 §7.3: code points compared as they are, no Unicode normalisation.
        (
            "iss normalised differently",
            h,
            format!(r#"{{"iss":"https://bu\u0308ro.example","aud":["bus-42"],"exp":{exp}}}"#),
        ),
        // RFC 7519 §4.1.6: iat is a NumericDate.
        (
            "iat not a number",
            h,
            format!(r#"{{"iss":"https://büro.example","aud":["bus-42"],"exp":{exp},"iat":"now"}}"#),
        ),
        // RFC 7515 §5.2 / RFC 7519 §7.2: header and claims are JSON objects.
        ("claims not an object", h, format!("[{exp}]")),
    ];
    let mut accepted: Vec<&str> = refused
        .iter()
        .filter(|(_, header, claims)| call("/bus", header, claims) != 401)
        .map(|(why, ..)| *why)
        .collect();
    // RFC 7519 §4.1.3: a recipient with no audience configured cannot find itself in an aud.
    if call("/any", h, &format!(r#"{{"aud":"bus-42","exp":{exp}}}"#)) != 401 {
        accepted.push("aud, no audience configured");
    }
    assert!(accepted.is_empty(), "not refused: {accepted:?}");
    assert_eq!(b.seen().len(), 3, "only the valid tokens reached the backend");
    std::fs::remove_dir_all(&dir).ok();
}

fn signed(alg: &str, kid: &str, claims: &serde_json::Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    format!("{input}.{}", b64url(&sign(input.as_bytes())))
}

/// The DER inside a PEM file.
fn pem_der(pem: &str) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut der, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    let text = pem.lines().filter(|l| !l.starts_with("-----")).flat_map(str::bytes);
    for c in text.take_while(|&c| c != b'=') {
        acc = acc << 6 | A.iter().position(|&a| a == c).expect("base64") as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            der.push((acc >> bits) as u8);
        }
    }
    der
}

/// A fresh P-256 key pair (ring makes them only from random bytes).
fn p256_pair(rng: &ring::rand::SystemRandom) -> ring::signature::EcdsaKeyPair {
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, rng).unwrap();
    ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), rng).unwrap()
}

#[test]
fn es256_and_eddsa_tokens_verify_and_algorithms_never_cross() {
    use ring::signature::KeyPair;
    use serde_json::json;
    let rng = ring::rand::SystemRandom::new();
    let ec = p256_pair(&rng);
    let point = ec.public_key().as_ref().to_vec();
    let ed = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[9u8; 32]).unwrap();
    let dir = std::env::temp_dir().join(format!("gatelet-jwt-asym-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("keys.json");
    std::fs::write(
        &jwks,
        json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": b64url(&point[1..33]), "y": b64url(&point[33..])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": b64url(ed.public_key().as_ref())}]})
        .to_string(),
    )
    .unwrap();
    let b = Backend::start(|_| Reply::json(r#"{"ok":true}"#));
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"], "extra_config": {{"gatelet/jwt": {{"unsynced_clock": "accept"}}}},
            "endpoints": [
              {{"endpoint": "/es", "extra_config": {{"auth/validator": {{"alg": "ES256", "jwk_local_path": "{k}"}}}}, "backend": [{{"url_pattern": "/"}}]}},
              {{"endpoint": "/ed", "extra_config": {{"auth/validator": {{"alg": "EdDSA", "jwk_local_path": "{k}"}}}}, "backend": [{{"url_pattern": "/"}}]}}]}}"#,
        b.url(),
        k = jwks.display()
    ));
    let claims = json!({"sub": "office", "exp": unix_now() + 300});
    let es = signed("ES256", "ec-1", &claims, |m| {
        ec.sign(&rng, m).unwrap().as_ref().to_vec()
    });
    let eddsa = signed("EdDSA", "ed-1", &claims, |m| ed.sign(m).as_ref().to_vec());
    let call =
        |path: &str, token: &str| request(gw, "GET", path, &[&format!("Authorization: Bearer {token}")], b"").status;
    assert_eq!(call("/es", &es), 200);
    assert_eq!(call("/ed", &eddsa), 200);
    // Each endpoint takes only its own algorithm.
    assert_eq!(call("/es", &eddsa), 401);
    assert_eq!(call("/ed", &es), 401);
    // The classic confusion: the public key used as an HMAC secret, alg switched to HS256.
    let confused = hs256(&point, &json!({"alg": "HS256", "kid": "ec-1"}), &claims);
    assert_eq!(call("/es", &confused), 401);
    // A signature from another key, with the right kid.
    let stranger = p256_pair(&rng);
    let forged = signed("ES256", "ec-1", &claims, |m| {
        stranger.sign(&rng, m).unwrap().as_ref().to_vec()
    });
    assert_eq!(call("/es", &forged), 401);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn rs256_tokens_verify_and_the_hs_rs_confusion_fails() {
    use serde_json::json;
    // A throwaway 2048-bit key made for this test with `openssl genrsa` (never used elsewhere).
    let private = ring::signature::RsaKeyPair::from_pkcs8(&pem_der(include_str!("rsa_test_key.pem"))).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let sign = |m: &[u8]| {
        let mut signature = vec![0; private.public().modulus_len()];
        private
            .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, m, &mut signature)
            .unwrap();
        signature
    };
    let public: ring::rsa::PublicKeyComponents<Vec<u8>> = private.public().into();
    let dir = std::env::temp_dir().join(format!("gatelet-jwt-rsa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("keys.json");
    let (n, e) = (public.n, public.e);
    std::fs::write(
        &jwks,
        json!({"keys": [{"kty": "RSA", "kid": "rsa-1", "n": b64url(&n), "e": b64url(&e)}]}).to_string(),
    )
    .unwrap();
    let b = Backend::start(|_| Reply::json(r#"{"ok":true}"#));
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"], "extra_config": {{"gatelet/jwt": {{"unsynced_clock": "accept"}}}},
            "endpoints": [{{"endpoint": "/rs", "extra_config": {{"auth/validator": {{"alg": "RS256", "jwk_local_path": "{}"}}}},
                "backend": [{{"url_pattern": "/"}}]}}]}}"#,
        b.url(),
        jwks.display()
    ));
    let claims = json!({"sub": "office", "exp": unix_now() + 300});
    let good = signed("RS256", "rsa-1", &claims, sign);
    let call = |token: &str| request(gw, "GET", "/rs", &[&format!("Authorization: Bearer {token}")], b"").status;
    assert_eq!(call(&good), 200);
    // HS256 "signed" with the RS256 public key (the JWK's n, or the JWK set's text): the alg
    // is pinned.
    assert_eq!(call(&hs256(&n, &json!({"alg": "HS256", "kid": "rsa-1"}), &claims)), 401);
    let set = std::fs::read(&jwks).unwrap();
    assert_eq!(
        call(&hs256(&set, &json!({"alg": "HS256", "kid": "rsa-1"}), &claims)),
        401
    );
    let expired = signed(
        "RS256",
        "rsa-1",
        &json!({"sub": "office", "exp": unix_now() - 60}),
        sign,
    );
    assert_eq!(call(&expired), 401);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tokens_can_come_from_a_cookie_or_another_header() {
    use serde_json::json;
    let secret = b"0123456789abcdef0123456789abcdef-cookie";
    let (dir, jwks) = oct_jwk_set(secret, "cookie");
    let b = Backend::start(|_| Reply::json("{}"));
    let gw = gateway(&format!(
        r#"{{"version": 3, "host": ["{}"], "extra_config": {{"gatelet/jwt": {{"unsynced_clock": "accept"}}}},
            "endpoints": [
              {{"endpoint": "/cookie", "extra_config": {{"auth/validator": {{"alg": "HS256", "jwk_local_path": "{k}", "cookie_key": "session"}}}}, "backend": [{{"url_pattern": "/"}}]}},
              {{"endpoint": "/header", "extra_config": {{"auth/validator": {{"alg": "HS256", "jwk_local_path": "{k}", "auth_header_name": "X-Token"}}}}, "backend": [{{"url_pattern": "/"}}]}}]}}"#,
        b.url(),
        k = jwks.display()
    ));
    let token = hs256(secret, &json!({"alg": "HS256"}), &json!({"exp": unix_now() + 60}));
    let get_with = |path: &str, h: String| request(gw, "GET", path, &[&h], b"").status;
    assert_eq!(get_with("/cookie", format!("Cookie: theme=dark; session={token}")), 200);
    assert_eq!(get_with("/cookie", "Cookie: theme=dark".into()), 401);
    assert_eq!(get_with("/header", format!("X-Token: {token}")), 200);
    assert_eq!(
        get_with("/header", format!("Authorization: Bearer {token}")),
        401,
        "only the configured header"
    );
    std::fs::remove_dir_all(&dir).ok();
}
