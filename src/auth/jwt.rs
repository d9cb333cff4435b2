//! JWT validation (KrakenD's `auth/validator`), sans-io: token bytes and the time in, claims or
//! a refusal out. The algorithm is pinned by config and never taken from the token (`alg: none`
//! and HS/RS confusion fail), `exp` is required, `nbf` honoured, `kid` only selects a key from
//! the local set, `jku` / `x5u` / an embedded `jwk` are ignored, the token size is bounded.
//! Keys come from a local JWK set file, loaded and checked at start-up.

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::Denied;

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

/// A verification key from the JWK set.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// An HMAC secret.
    Oct(Vec<u8>),
    /// An RSA public key (2048 bits or more).
    Rsa(Box<rsa::RsaPublicKey>),
    /// A P-256 public key.
    P256(p256::ecdsa::VerifyingKey),
    /// An Ed25519 public key.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyMaterial::Oct(k) => write!(f, "Oct({} bytes)", k.len()),
            KeyMaterial::Rsa(_) => f.write_str("Rsa"),
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
    /// `audience`: the token's `aud` must contain one of them (none = not checked).
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
    use p256::ecdsa::signature::Verifier;
    match (alg, key) {
        (Alg::HS256, KeyMaterial::Oct(secret)) => {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
                return false;
            };
            mac.update(signed);
            // `verify_slice` compares in constant time.
            mac.verify_slice(signature).is_ok()
        }
        (Alg::RS256, KeyMaterial::Rsa(key)) => {
            let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else {
                return false;
            };
            rsa::pkcs1v15::VerifyingKey::<Sha256>::new((**key).clone())
                .verify(signed, &sig)
                .is_ok()
        }
        (Alg::ES256, KeyMaterial::P256(key)) => {
            // JWS carries r || s (64 bytes), not DER.
            let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
                return false;
            };
            key.verify(signed, &sig).is_ok()
        }
        (Alg::EdDSA, KeyMaterial::Ed25519(key)) => {
            let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
                return false;
            };
            key.verify_strict(signed, &sig).is_ok()
        }
        // A key of another type never verifies: no HS/RS-style confusion.
        _ => false,
    }
}

fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Denied> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        {
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
        let header: Map<String, Value> = b64url_decode(h)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("malformed token header"))?;
        // Pinned: whatever the token says must be exactly the configured algorithm.
        if header.get("alg").and_then(Value::as_str) != Some(self.alg.name()) {
            return Err(invalid("unexpected algorithm"));
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
        let claims: Map<String, Value> = b64url_decode(p)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("malformed claims"))?;
        let exp = number(&claims, "exp")?.ok_or_else(|| invalid("exp is required"))?;
        if now > exp.saturating_add(self.leeway) {
            return Err(invalid("token expired"));
        }
        if let Some(nbf) = number(&claims, "nbf")?
            && now.saturating_add(self.leeway) < nbf
        {
            return Err(invalid("token not valid yet"));
        }
        if let Some(iss) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(iss.as_str())
        {
            return Err(invalid("wrong issuer"));
        }
        if !self.audience.is_empty() {
            let aud = strings(claims.get("aud"));
            if !self.audience.iter().any(|a| aud.contains(&a.as_str())) {
                return Err(invalid("wrong audience"));
            }
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
                    field(name)
                        .and_then(b64url_decode)
                        .map(|b| rsa::BigUint::from_bytes_be(&b))
                        .ok_or(format!("keys[{i}]: \"{name}\" is not base64url"))
                };
                let key = rsa::RsaPublicKey::new(part("n")?, part("e")?)
                    .map_err(|e| format!("keys[{i}]: not an RSA public key: {e}"))?;
                if rsa::traits::PublicKeyParts::size(&key) < 256 {
                    return Err(format!("keys[{i}]: an RSA key needs at least 2048 bits"));
                }
                KeyMaterial::Rsa(Box::new(key))
            }
            (Alg::ES256, Some("EC")) => {
                if field("crv") != Some("P-256") {
                    continue;
                }
                let coord = |name: &str| {
                    field(name)
                        .and_then(b64url_decode)
                        .filter(|b| b.len() == 32)
                        .ok_or(format!("keys[{i}]: \"{name}\" is not a 32-byte base64url coordinate"))
                };
                let mut sec1 = vec![4u8];
                sec1.extend(coord("x")?);
                sec1.extend(coord("y")?);
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map_err(|_| format!("keys[{i}]: not a point on P-256"))?;
                KeyMaterial::P256(key)
            }
            (Alg::EdDSA, Some("OKP")) => {
                if field("crv") != Some("Ed25519") {
                    continue;
                }
                let x: [u8; 32] = field("x")
                    .and_then(b64url_decode)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(format!("keys[{i}]: \"x\" is not a 32-byte base64url key"))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| format!("keys[{i}]: not an Ed25519 public key"))?;
                KeyMaterial::Ed25519(key)
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
