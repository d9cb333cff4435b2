//! JWT validation (KrakenD's `auth/validator`), sans-io: token bytes and the time in, claims or
//! a refusal out. The algorithm is pinned by config and never taken from the token (`alg: none`
//! and HS/RS confusion fail), `exp` is required, `nbf` honoured, `kid` only selects a key from
//! the local set, `jku` / `x5u` / an embedded `jwk` are ignored, the token size is bounded.
//! What RFC 7515, RFC 7519 and RFC 8725 require of a validator is checked too: no `crit`
//! extension (none is understood), no nested token (`cty` JWT), no duplicate names in the
//! header or the claims, NumericDates to the second, `aud` naming this recipient whenever it
//! is present (docs/configuration.md lists each rule with its test).
//! Keys come from a local JWK set file, loaded and checked at start-up.

use http::{HeaderMap, HeaderName};
use ring::signature::{ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Map, Value};

use super::{Denied, curves};

/// Largest token accepted (bytes); KrakenD sets none, a JWT is rarely over 2 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The pinned algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// HMAC with SHA-256 (`kty: oct`).
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (`kty: RSA`).
    RS256,
    /// ECDSA on P-256 with SHA-256 (`kty: EC`, `crv: P-256`).
    ES256,
    /// Ed25519 (`kty: OKP`, `crv: Ed25519`).
    EdDSA,
}

impl Alg {
    /// Parses the config value; `None` for algorithms gatelet does not implement.
    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "HS256" => Some(Alg::HS256),
            "RS256" => Some(Alg::RS256),
            "ES256" => Some(Alg::ES256),
            "EdDSA" => Some(Alg::EdDSA),
            _ => None,
        }
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }
}

/// A verification key from the JWK set, checked when the set was loaded (see
/// [`parse_jwk_set`]); ring verifies with it.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// An HMAC secret.
    Oct(Vec<u8>),
    /// An RSA public key of 2048 to 4096 bits: modulus and exponent, big-endian without
    /// leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// A P-256 public key: the uncompressed point, `04 || x || y`.
    P256(Box<[u8; 65]>),
    /// An Ed25519 public key, not of small order.
    Ed25519([u8; 32]),
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyMaterial::Oct(k) => write!(f, "Oct({} bytes)", k.len()),
            KeyMaterial::Rsa { .. } => f.write_str("Rsa"),
            KeyMaterial::P256(_) => f.write_str("P256"),
            KeyMaterial::Ed25519(_) => f.write_str("Ed25519"),
        }
    }
}

/// One key of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// `kid`, if the set names it.
    pub kid: Option<String>,
    /// The key.
    pub key: KeyMaterial,
}

/// An endpoint's validator, built once from config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// `alg`.
    pub alg: Alg,
    /// Keys usable with `alg`.
    pub keys: Vec<Jwk>,
    /// `audience`: the token's `aud` must contain one of them. With none, a token carrying
    /// `aud` is refused (RFC 7519 §4.1.3: this recipient cannot be among its audience).
    pub audience: Vec<String>,
    /// `issuer`: the token's `iss` must equal it.
    pub issuer: Option<String>,
    /// `roles`: the token must carry one of them under `roles_key`.
    pub roles: Vec<String>,
    /// `roles_key` (default `roles`); a dot path when `roles_key_is_nested`.
    pub roles_key: String,
    /// `roles_key_is_nested`.
    pub roles_key_is_nested: bool,
    /// `scopes`: required under `scopes_key` (a space-separated string or an array).
    pub scopes: Vec<String>,
    /// `scopes_key` (default `scope`).
    pub scopes_key: String,
    /// `scopes_matcher` `all` (default `any`).
    pub scopes_all: bool,
    /// `leeway` in seconds for `exp` / `nbf`.
    pub leeway: u64,
    /// `cookie_key`: read the token from this cookie when there is no header.
    pub cookie_key: Option<String>,
    /// `auth_header_name` (default `Authorization`, value `Bearer <token>`).
    pub header: HeaderName,
    /// `propagate_claims`: `(claim, header)` pairs copied to backend requests.
    pub propagate: Vec<(String, HeaderName)>,
}

fn invalid(why: impl Into<String>) -> Denied {
    Denied::Unauthenticated(why.into())
}

/// base64url without padding (RFC 7515 §2), strict: no padding, no other alphabet.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // A length of 1 mod 4 cannot be a valid encoding; leftover bits must be zero.
    if s.len() % 4 == 1 || acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

fn token<'h>(v: &Validator, headers: &'h HeaderMap) -> Result<&'h str, Denied> {
    if let Some(value) = headers.get(&v.header) {
        let value = value.to_str().map_err(|_| invalid("malformed token"))?;
        let t = match value.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("bearer ") => &value[7..],
            _ if v.header != http::header::AUTHORIZATION => value,
            _ => return Err(invalid("expected Bearer token")),
        };
        return Ok(t.trim());
    }
    if let Some(cookie) = &v.cookie_key {
        for header in headers.get_all(http::header::COOKIE) {
            let Ok(header) = header.to_str() else { continue };
            for pair in header.split(';') {
                if let Some((name, value)) = pair.trim().split_once('=')
                    && name == cookie
                {
                    return Ok(value);
                }
            }
        }
    }
    Err(invalid("missing token"))
}

fn verify(alg: Alg, key: &KeyMaterial, signed: &[u8], signature: &[u8]) -> bool {
    match (alg, key) {
        // `hmac::verify` compares in constant time.
        (Alg::HS256, KeyMaterial::Oct(secret)) => {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
            ring::hmac::verify(&key, signed, signature).is_ok()
        }
        (Alg::RS256, KeyMaterial::Rsa { n, e }) => ring::rsa::PublicKeyComponents { n, e }
            .verify(&RSA_PKCS1_2048_8192_SHA256, signed, signature)
            .is_ok(),
        // JWS carries r || s (64 bytes), not DER: the FIXED form.
        (Alg::ES256, KeyMaterial::P256(point)) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point[..])
            .verify(signed, signature)
            .is_ok(),
        // S must be below the group order and R is compared as encoded, so a signature has
        // one form; the key is not of small order (checked at load).
        (Alg::EdDSA, KeyMaterial::Ed25519(key)) => {
            UnparsedPublicKey::new(&ED25519, key).verify(signed, signature).is_ok()
        }
        // A key of another type never verifies: no HS/RS-style confusion.
        _ => false,
    }
}

/// A JSON object whose member names are unique. RFC 7515 §4 and RFC 7519 §4 let a parser
/// either refuse duplicate names or keep the last; gatelet refuses them, so that no parser
/// behind it (a backend reading the forwarded token) can see other claims than it checked.
struct Unique(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Unique;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<Unique, A::Error> {
                let mut out = Map::new();
                while let Some((name, value)) = members.next_entry::<String, Value>()? {
                    if out.contains_key(&name) {
                        return Err(serde::de::Error::custom(format!("duplicate member {name:?}")));
                    }
                    out.insert(name, value);
                }
                Ok(Unique(out))
            }
        }
        d.deserialize_map(Members)
    }
}

/// A base64url JSON object part of a token (RFC 7515 §5.2 steps 2, 3 and 5, RFC 7519 §7.2
/// steps 3, 4, 9 and 10): strict base64url, UTF-8, one complete JSON object, unique names.
fn object(part: &str) -> Option<Map<String, Value>> {
    let bytes = b64url_decode(part)?;
    serde_json::from_slice::<Unique>(&bytes).ok().map(|u| u.0)
}

/// A NumericDate claim (RFC 7519 §2: seconds since the epoch, maybe fractional), if present.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, Denied> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64().filter(|f| *f >= 0.0) {
            Some(v) => Ok(Some(v)),
            None => Err(invalid(format!("{name} is not a time"))),
        },
        Some(_) => Err(invalid(format!("{name} is not a number"))),
    }
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

impl Validator {
    /// Validates the request's token at `now` (Unix seconds): its claims, or why not.
    pub fn validate(&self, headers: &HeaderMap, now: u64) -> Result<Map<String, Value>, Denied> {
        let token = token(self, headers)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("token too large"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("malformed token"));
        };
        let header = object(h).ok_or_else(|| invalid("malformed token header"))?;
        // Pinned: whatever the token says must be exactly the configured algorithm.
        if header.get("alg").and_then(Value::as_str) != Some(self.alg.name()) {
            return Err(invalid("unexpected algorithm"));
        }
        // RFC 7515 §4.1.11: the extensions named there must be understood, and gatelet
        // understands none (an empty list is invalid too).
        if header.contains_key("crit") {
            return Err(invalid("critical header extension not understood"));
        }
        // RFC 7519 §7.2 step 8: `cty` JWT (media type, so also `application/jwt`, any case)
        // means the payload is another token, not claims.
        if let Some(cty) = header.get("cty").and_then(Value::as_str) {
            let cty = cty.to_ascii_lowercase();
            if cty.strip_prefix("application/").unwrap_or(&cty) == "jwt" {
                return Err(invalid("nested tokens are not supported"));
            }
        }
        let signature = b64url_decode(s).ok_or_else(|| invalid("malformed signature"))?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        let candidates: Vec<&Jwk> = match header.get("kid") {
            Some(Value::String(kid)) => self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect(),
            Some(_) => return Err(invalid("malformed kid")),
            None => self.keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(invalid("unknown key"));
        }
        if !candidates.iter().any(|k| verify(self.alg, &k.key, signed, &signature)) {
            return Err(invalid("invalid signature"));
        }
        let claims = object(p).ok_or_else(|| invalid("malformed claims"))?;
        // `now` is whole seconds and the real time up to a second later: the current time
        // must be before `exp` (RFC 7519 §4.1.4) and at or after `nbf` (§4.1.5), so a
        // fractional `exp` counts from its whole second and a fractional `nbf` from the next.
        let exp = numeric_date(&claims, "exp")?.ok_or_else(|| invalid("exp is required"))?;
        if now >= (exp.floor() as u64).saturating_add(self.leeway) {
            return Err(invalid("token expired"));
        }
        if let Some(nbf) = numeric_date(&claims, "nbf")?
            && now.saturating_add(self.leeway) < nbf.ceil() as u64
        {
            return Err(invalid("token not valid yet"));
        }
        numeric_date(&claims, "iat")?;
        // RFC 7519 §7.3: compared code point by code point, JSON escapes undone, no
        // normalisation (serde_json and `==` on `str`).
        if let Some(iss) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(iss.as_str())
        {
            return Err(invalid("wrong issuer"));
        }
        // RFC 7519 §4.1.3: one string or an array of strings; when present, the recipient
        // must find itself in it, so without a configured audience it never can.
        if let Some(aud) = claims.get("aud") {
            let aud: Option<Vec<&str>> = match aud {
                Value::String(one) => Some(vec![one.as_str()]),
                Value::Array(items) => items.iter().map(Value::as_str).collect(),
                _ => None,
            };
            let aud = aud.ok_or_else(|| invalid("aud is not a string or an array of strings"))?;
            if !self.audience.iter().any(|a| aud.contains(&a.as_str())) {
                return Err(invalid("wrong audience"));
            }
        } else if !self.audience.is_empty() {
            return Err(invalid("wrong audience"));
        }
        if !self.roles.is_empty() {
            let value = if self.roles_key_is_nested {
                self.roles_key
                    .split('.')
                    .try_fold(&Value::Object(claims.clone()), |v, k| v.get(k))
                    .cloned()
            } else {
                claims.get(&self.roles_key).cloned()
            };
            let have = strings(value.as_ref());
            if !self.roles.iter().any(|r| have.contains(&r.as_str())) {
                return Err(Denied::Forbidden("missing a required role".into()));
            }
        }
        if !self.scopes.is_empty() {
            let have = strings(claims.get(&self.scopes_key));
            let ok = if self.scopes_all {
                self.scopes.iter().all(|s| have.contains(&s.as_str()))
            } else {
                self.scopes.iter().any(|s| have.contains(&s.as_str()))
            };
            if !ok {
                return Err(Denied::Forbidden("missing a required scope".into()));
            }
        }
        Ok(claims)
    }
}

/// Parses a JWK set document, keeping the keys usable with `alg`. The message says what is
/// wrong, for the config error.
pub fn parse_jwk_set(text: &str, alg: Alg) -> Result<Vec<Jwk>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not a JWK set: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWK set: no \"keys\" array")?;
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let field = |name: &str| k.get(name).and_then(Value::as_str);
        if field("alg").is_some_and(|a| a != alg.name()) {
            continue;
        }
        let kid = field("kid").map(str::to_string);
        let material = match (alg, field("kty")) {
            (Alg::HS256, Some("oct")) => {
                let secret = field("k")
                    .and_then(b64url_decode)
                    .ok_or(format!("keys[{i}]: \"k\" is not base64url"))?;
                if secret.len() < 32 {
                    return Err(format!("keys[{i}]: an HS256 secret needs at least 32 bytes"));
                }
                KeyMaterial::Oct(secret)
            }
            (Alg::RS256, Some("RSA")) => {
                let part = |name: &str| {
                    let bytes = field(name)
                        .and_then(b64url_decode)
                        .ok_or(format!("keys[{i}]: \"{name}\" is not base64url"))?;
                    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
                    Ok::<_, String>(bytes[start..].to_vec())
                };
                let (n, e) = (part("n")?, part("e")?);
                // ring's rules for a verification key, so that one that loads can verify:
                // an odd modulus (here at most 4096 bits), an odd exponent from 3 to 2^33 - 1.
                if n.len() < 256 {
                    return Err(format!("keys[{i}]: an RSA key needs at least 2048 bits"));
                }
                if n.len() > 512 {
                    return Err(format!("keys[{i}]: an RSA key has at most 4096 bits"));
                }
                let exponent = (e.len() <= 5).then(|| e.iter().fold(0u64, |v, &b| v << 8 | u64::from(b)));
                let odd = |bytes: &[u8]| bytes.last().is_some_and(|b| b & 1 == 1);
                if !odd(&n) || !odd(&e) || !exponent.is_some_and(|e| (3..1 << 33).contains(&e)) {
                    return Err(format!(
                        "keys[{i}]: not an RSA public key (an odd modulus, an odd exponent from 3 to 2^33-1)"
                    ));
                }
                KeyMaterial::Rsa { n, e }
            }
            (Alg::ES256, Some("EC")) => {
                if field("crv") != Some("P-256") {
                    continue;
                }
                let coord = |name: &str| {
                    field(name)
                        .and_then(b64url_decode)
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .ok_or(format!("keys[{i}]: \"{name}\" is not a 32-byte base64url coordinate"))
                };
                let (x, y) = (coord("x")?, coord("y")?);
                if !curves::on_p256(&x, &y) {
                    return Err(format!("keys[{i}]: not a point on P-256"));
                }
                let mut point = Box::new([4u8; 65]);
                point[1..33].copy_from_slice(&x);
                point[33..].copy_from_slice(&y);
                KeyMaterial::P256(point)
            }
            (Alg::EdDSA, Some("OKP")) => {
                if field("crv") != Some("Ed25519") {
                    continue;
                }
                let x: [u8; 32] = field("x")
                    .and_then(b64url_decode)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(format!("keys[{i}]: \"x\" is not a 32-byte base64url key"))?;
                if !curves::ed25519_key(&x) {
                    return Err(format!(
                        "keys[{i}]: not an Ed25519 public key (a canonical point, not of small order)"
                    ));
                }
                KeyMaterial::Ed25519(x)
            }
            _ => continue,
        };
        out.push(Jwk { kid, key: material });
    }
    if out.is_empty() {
        return Err(format!("no key in the set can verify {}", alg.name()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64url(bytes: &[u8]) -> String {
        use crate::dashboard::base64;
        base64::encode_with(bytes, base64::URL_SAFE, false)
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn hs256_validator(leeway: u64) -> Validator {
        Validator {
            alg: Alg::HS256,
            keys: vec![Jwk {
                kid: None,
                key: KeyMaterial::Oct(SECRET.to_vec()),
            }],
            audience: Vec::new(),
            issuer: None,
            roles: Vec::new(),
            roles_key: "roles".into(),
            roles_key_is_nested: false,
            scopes: Vec::new(),
            scopes_key: "scope".into(),
            scopes_all: false,
            leeway,
            cookie_key: None,
            header: http::header::AUTHORIZATION,
            propagate: Vec::new(),
        }
    }

    /// Validates an HS256 token with `claims` at `now`.
    fn at(v: &Validator, claims: &str, now: u64) -> Result<Map<String, Value>, Denied> {
        let signed = format!("{}.{}", b64url(br#"{"alg":"HS256"}"#), b64url(claims.as_bytes()));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET);
        let token = format!(
            "{signed}.{}",
            b64url(ring::hmac::sign(&key, signed.as_bytes()).as_ref())
        );
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        v.validate(&headers, now)
    }

    /// RFC 7519 §4.1.4: the current time must be before `exp`; §4.1.5: at or after `nbf`;
    /// NumericDates may be fractional. `now` is whole seconds, the real time up to a second
    /// later, so a fractional `exp` counts from its whole second and `nbf` from the next.
    #[test]
    fn numeric_dates_hold_to_the_second() {
        let v = hs256_validator(0);
        assert!(at(&v, r#"{"exp":1001}"#, 1000).is_ok());
        assert!(at(&v, r#"{"exp":1000}"#, 1000).is_err(), "expires at exp");
        assert!(at(&v, r#"{"exp":1000.5}"#, 1000).is_err(), "now may be 1000.9");
        assert!(at(&v, r#"{"exp":1001.5}"#, 1000).is_ok());
        assert!(at(&v, r#"{"exp":2000,"nbf":1000}"#, 1000).is_ok(), "valid from nbf on");
        assert!(at(&v, r#"{"exp":2000,"nbf":1001}"#, 1000).is_err());
        assert!(at(&v, r#"{"exp":2000,"nbf":999.5}"#, 1000).is_ok());
        assert!(
            at(&v, r#"{"exp":2000,"nbf":1000.5}"#, 1000).is_err(),
            "now may be 1000.0"
        );
        assert!(at(&v, r#"{"exp":2000,"iat":1000.5}"#, 1000).is_ok());
        for bad in [
            r#"{"exp":-1}"#,
            r#"{"exp":"2000"}"#,
            r#"{"exp":2000,"nbf":null}"#,
            r#"{"exp":2000,"iat":[]}"#,
        ] {
            assert!(at(&v, bad, 1000).is_err(), "{bad}");
        }
        let v = hs256_validator(30);
        assert!(at(&v, r#"{"exp":1000}"#, 1029).is_ok(), "leeway");
        assert!(at(&v, r#"{"exp":1000}"#, 1030).is_err());
        assert!(at(&v, r#"{"exp":2000,"nbf":1030}"#, 1000).is_ok());
        assert!(at(&v, r#"{"exp":2000,"nbf":1031}"#, 1000).is_err());
    }

    fn jwk_set(keys: Value) -> String {
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// The DER inside a PEM file (`+/` base64 is base64url with two other characters).
    fn pem_der(pem: &str) -> Vec<u8> {
        let text: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        b64url_decode(text.replace('+', "-").replace('/', "_").trim_end_matches('=')).unwrap()
    }

    #[test]
    fn jwk_sets_are_checked_when_loaded() {
        use serde_json::json;
        let rng = ring::rand::SystemRandom::new();
        let oct = |len: usize| json!([{"kty": "oct", "k": b64url(&vec![7u8; len])}]);
        assert!(parse_jwk_set(&jwk_set(oct(32)), Alg::HS256).is_ok());
        assert!(parse_jwk_set(&jwk_set(oct(31)), Alg::HS256).is_err(), "RFC 7518 §3.2");
        // RSA: the test key's modulus (2048 bits), and moduli too short or too long.
        let der = pem_der(include_str!("../../tests/rsa_test_key.pem"));
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
        let rsa = |n: &[u8], e: &[u8]| json!([{"kty": "RSA", "n": b64url(n), "e": b64url(e)}]);
        assert_eq!(public.n.len(), 256);
        assert!(parse_jwk_set(&jwk_set(rsa(&public.n, &public.e)), Alg::RS256).is_ok());
        assert!(
            parse_jwk_set(&jwk_set(rsa(&public.n[1..], &public.e)), Alg::RS256).is_err(),
            "2040 bits"
        );
        let long = [&public.n[..], &public.n[..], &[1]].concat();
        assert!(
            parse_jwk_set(&jwk_set(rsa(&long, &public.e)), Alg::RS256).is_err(),
            "4104 bits"
        );
        let e_too_large = [2u8, 0, 0, 0, 1];
        assert!(parse_jwk_set(&jwk_set(rsa(&public.n, &e_too_large)), Alg::RS256).is_err());
        // What ring cannot verify with is refused when loaded: an even modulus or exponent,
        // an exponent under 3. Leading zero bytes are tolerated.
        let mut even = public.n.clone();
        even[255] &= 0xfe;
        for (n, e) in [(&even[..], &public.e[..]), (&public.n, &[1]), (&public.n, &[1, 0, 0])] {
            assert!(
                parse_jwk_set(&jwk_set(rsa(n, e)), Alg::RS256).is_err(),
                "n {n:?}, e {e:?}"
            );
        }
        let padded = [&[0, 0][..], &public.n].concat();
        assert!(parse_jwk_set(&jwk_set(rsa(&padded, &[0, 1, 0, 1])), Alg::RS256).is_ok());
        // P-256: a point of a fresh key, and that point moved off the curve.
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        use ring::signature::KeyPair;
        let point = pair.public_key().as_ref();
        let ec = |x: &[u8], y: &[u8]| json!([{"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y)}]);
        assert!(parse_jwk_set(&jwk_set(ec(&point[1..33], &point[33..])), Alg::ES256).is_ok());
        let mut y = point[33..].to_vec();
        y[31] ^= 1;
        assert!(
            parse_jwk_set(&jwk_set(ec(&point[1..33], &y)), Alg::ES256).is_err(),
            "off the curve"
        );
        let p = b64url_decode("_____wAAAAEAAAAAAAAAAAAAAAD_______________8").unwrap();
        assert!(
            parse_jwk_set(&jwk_set(ec(&p, &point[33..])), Alg::ES256).is_err(),
            "x = p"
        );
        // Ed25519: RFC 8032's first test key, and a y that is not on the curve.
        let okp = |x: &[u8]| json!([{"kty": "OKP", "crv": "Ed25519", "x": b64url(x)}]);
        let rfc8032 = b64url_decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        assert!(parse_jwk_set(&jwk_set(okp(&rfc8032)), Alg::EdDSA).is_ok());
        let mut off = [0u8; 32];
        off[0] = 2;
        assert!(
            parse_jwk_set(&jwk_set(okp(&off)), Alg::EdDSA).is_err(),
            "y = 2 is not on the curve"
        );
        // Keys of small order (ring would take any message for them, given R and S to match)
        // and a non-canonical encoding (y = p + 3).
        let mut neutral = [0u8; 32];
        neutral[0] = 1;
        let mut above = [0xffu8; 32];
        (above[0], above[31]) = (0xf0, 0x7f);
        for key in [neutral, [0; 32], above] {
            assert!(parse_jwk_set(&jwk_set(okp(&key)), Alg::EdDSA).is_err(), "{key:?}");
        }
    }

    /// Today's EdDSA strictness (RFC 8032's checks plus those of `verify_strict`): no second
    /// form of a signature, no key of small order.
    #[test]
    fn eddsa_verification_is_strict() {
        let seed = b64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        use ring::signature::KeyPair;
        let okp = |x: &[u8]| jwk_set(serde_json::json!([{"kty": "OKP", "crv": "Ed25519", "x": b64url(x)}]));
        let mut v = hs256_validator(0);
        v.alg = Alg::EdDSA;
        v.keys = parse_jwk_set(&okp(pair.public_key().as_ref()), Alg::EdDSA).unwrap();
        let input = format!("{}.{}", b64url(br#"{"alg":"EdDSA"}"#), b64url(br#"{"exp":2000}"#));
        let check = |v: &Validator, signature: &[u8]| {
            let mut headers = HeaderMap::new();
            let value = format!("Bearer {input}.{}", b64url(signature));
            headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            v.validate(&headers, 1000).is_ok()
        };
        let signature = pair.sign(input.as_bytes());
        assert!(check(&v, signature.as_ref()));
        // S + L (the group order): the same signature to a lax verifier.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut malleable = signature.as_ref().to_vec();
        let mut carry = 0u16;
        for (s, l) in malleable[32..].iter_mut().zip(L) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            (*s, carry) = (sum as u8, sum >> 8);
        }
        assert!(!check(&v, &malleable), "S + L");
        let mut flipped = signature.as_ref().to_vec();
        flipped[0] ^= 1;
        assert!(!check(&v, &flipped), "another R");
        // The neutral point as the key: R = neutral, S = 0 satisfies [S]B = R + [k]A for every
        // message, so such a key must be refused when loaded or every token refused.
        let neutral = {
            let mut n = [0u8; 32];
            n[0] = 1;
            n
        };
        let forged = [&neutral[..], &[0u8; 32]].concat();
        if let Ok(keys) = parse_jwk_set(&okp(&neutral), Alg::EdDSA) {
            v.keys = keys;
            assert!(!check(&v, &forged), "a key of small order");
        }
    }

    #[test]
    fn base64url_is_strict() {
        assert_eq!(b64url_decode("aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(b64url_decode("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(b64url_decode("aGVsbG8="), None, "no padding");
        assert_eq!(b64url_decode("a+b/"), None, "not the url alphabet");
        assert_eq!(b64url_decode("a"), None);
        assert_eq!(b64url_decode("aGVsbG9"), None, "non-zero leftover bits");
    }
}
