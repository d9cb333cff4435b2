//! Signing test tokens: base64url written out, and HS256 with `ring`'s HMAC, so the tests share
//! no token code with the validator they check.

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A compact HS256 JWS of `claims` under `header`.
pub fn hs256(secret: &[u8], header: &serde_json::Value, claims: &serde_json::Value) -> String {
    hs256_raw(secret, &header.to_string(), &claims.to_string())
}

/// An HS256 token over raw header and claims text (for JSON a `Value` cannot hold: duplicate
/// names).
pub fn hs256_raw(secret: &[u8], header: &str, claims: &str) -> String {
    let signed = format!("{}.{}", b64url(header.as_bytes()), b64url(claims.as_bytes()));
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        signed.as_bytes(),
    );
    format!("{signed}.{}", b64url(tag.as_ref()))
}
