//! Static API keys: stored in config only as SHA-256 digests (hex), presented in a header
//! (default `Authorization: Bearer <key>`), compared in constant time (`subtle`) against every
//! key (no early exit, so timing says nothing about which key or how much of it matched). Each
//! key has a name (logged, never the key) and roles; an endpoint may require some of them.

use http::{HeaderMap, HeaderName};
use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;

use super::Denied;

/// One configured key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Its name, for logs.
    pub name: String,
    /// SHA-256 of the key.
    pub digest: [u8; 32],
    /// Its roles.
    pub roles: Vec<String>,
}

/// The service's keys and where they are presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeys {
    /// The header carrying the key.
    pub header: HeaderName,
    /// Whether the value is `Bearer <key>` (the default with `Authorization`).
    pub bearer: bool,
    /// The keys.
    pub keys: Vec<Key>,
}

/// Longest key accepted (a longer header value is refused before hashing).
pub const MAX_KEY_BYTES: usize = 512;

/// Parses a 64-hex-digit SHA-256 digest.
pub fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl ApiKeys {
    /// The key presented in `headers`, if it is one of ours.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&Key, Denied> {
        let missing = || Denied::Unauthenticated(format!("an API key is required in {}", self.header));
        let value = headers.get(&self.header).ok_or_else(missing)?.as_bytes();
        let presented = if self.bearer {
            match value.get(..7) {
                Some(p) if p.eq_ignore_ascii_case(b"bearer ") => &value[7..],
                _ => return Err(missing()),
            }
        } else {
            value
        };
        if presented.is_empty() || presented.len() > MAX_KEY_BYTES {
            return Err(Denied::Unauthenticated("invalid API key".into()));
        }
        let digest = digest(&SHA256, presented);
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.digest[..].ct_eq(digest.as_ref())) && found.is_none() {
                found = Some(key);
            }
        }
        found.ok_or_else(|| Denied::Unauthenticated("invalid API key".into()))
    }

    /// Authenticates, then checks that the key has one of `roles` (any key when empty).
    pub fn check(&self, headers: &HeaderMap, roles: &[String]) -> Result<&Key, Denied> {
        let key = self.authenticate(headers)?;
        if roles.is_empty() || key.roles.iter().any(|r| roles.contains(r)) {
            Ok(key)
        } else {
            Err(Denied::Forbidden(format!(
                "key \"{}\" lacks a role this endpoint requires",
                key.name
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(bytes: &[u8]) -> [u8; 32] {
        digest(&SHA256, bytes).as_ref().try_into().unwrap()
    }

    fn keys() -> ApiKeys {
        ApiKeys {
            header: http::header::AUTHORIZATION,
            bearer: true,
            keys: vec![
                Key {
                    name: "office".into(),
                    digest: sha256(b"s3cret-office"),
                    roles: vec!["read".into(), "command".into()],
                },
                Key {
                    name: "depot".into(),
                    digest: sha256(b"s3cret-depot"),
                    roles: vec!["read".into()],
                },
            ],
        }
    }

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn keys_and_roles() {
        let k = keys();
        assert_eq!(
            k.check(&auth("Bearer s3cret-office"), &["command".into()])
                .unwrap()
                .name,
            "office"
        );
        assert_eq!(k.check(&auth("bearer s3cret-depot"), &[]).unwrap().name, "depot");
        assert!(matches!(
            k.check(&auth("Bearer s3cret-depot"), &["command".into()]),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            k.check(&auth("Bearer wrong"), &[]),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(
            matches!(k.check(&auth("s3cret-office"), &[]), Err(Denied::Unauthenticated(_))),
            "no Bearer"
        );
        assert!(matches!(
            k.check(&HeaderMap::new(), &[]),
            Err(Denied::Unauthenticated(_))
        ));
        let long = format!("Bearer {}", "x".repeat(MAX_KEY_BYTES + 1));
        assert!(matches!(k.check(&auth(&long), &[]), Err(Denied::Unauthenticated(_))));
    }

    #[test]
    fn digests_parse_from_hex_only() {
        let hex = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
        assert_eq!(parse_digest(hex), Some(sha256(b"secret")));
        assert_eq!(parse_digest(&hex[1..]), None);
        assert_eq!(parse_digest(&hex.replace('2', "g")), None);
    }
}
