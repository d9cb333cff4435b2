//! Security: CORS, API keys, JWT validators and the service's TLS; the JWK sets and the TLS
//! certificate and key are files, which resolution reads.

use super::*;

/// KrakenD's `security/cors`, with its defaults.
pub(super) fn cors_config(c: &mut Checker, node: &Node, path: &str) -> Option<Cors> {
    let mut obj = c.object(node, path)?;
    let origins = obj.string_list(c, "allow_origins", &["*"]);
    let simple = vec![http::Method::GET, http::Method::HEAD, http::Method::POST];
    let methods = obj.optional(c, "allow_methods", simple, |c, n, p| {
        let mut out = Vec::new();
        for (m, pos, mp) in c.strings(n, p)? {
            match http::Method::from_bytes(m.as_bytes()) {
                Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => out.push(method),
                _ => {
                    c.error(pos, &mp, format!("\"{m}\" is not an upper-case HTTP method"));
                    return None;
                }
            }
        }
        Some(out)
    });
    let safe = vec!["origin".into(), "authorization".into(), "content-type".into()];
    let headers = obj.optional(c, "allow_headers", safe, |c, n, p| {
        forward(c, n, p, true).map(|f| match f {
            Forward::Only(v) => v,
            Forward::All => vec!["*".to_string()],
        })
    });
    let expose = obj.string_list(c, "expose_headers", &["Content-Length", "Content-Type"]);
    let max_age = obj.optional(c, "max_age", Duration::from_secs(12 * 3600), Checker::duration);
    let credentials = obj.optional(c, "allow_credentials", false, Checker::boolean);
    obj.finish(c);
    if credentials == Some(true) && origins.as_ref().is_some_and(|o| o.iter().any(|o| o == "*")) {
        // The browser would refuse `*` with credentials; echoing every origin instead would let
        // any web page read answers with the user's cookies.
        c.error(
            node.pos,
            &format!("{path}.allow_credentials"),
            "allow_credentials with allow_origins [\"*\"] would let any site read answers with the \
             user's credentials: list the origins",
        );
    }
    Some(Cors {
        allow_origins: origins?,
        allow_methods: methods?,
        allow_headers: headers?,
        expose_headers: expose?,
        max_age: max_age?,
        allow_credentials: credentials?,
    })
}

/// A header name, such as `X-Api-Key`.
fn header_name(c: &mut Checker, node: &Node, path: &str) -> Option<http::HeaderName> {
    let h = c.nonempty(node, path)?;
    let name = http::HeaderName::from_bytes(h.as_bytes()).ok();
    if name.is_none() {
        c.error(node.pos, path, format!("\"{h}\" is not a valid header name"));
    }
    name
}

/// Our `gatelet/api-keys`: `{"header", "keys": [{"name", "sha256", "roles"}]}`.
pub(super) fn api_keys_config(c: &mut Checker, node: &Node, path: &str) -> Option<ApiKeys> {
    let mut obj = c.object(node, path)?;
    let header = obj.optional(c, "header", http::header::AUTHORIZATION, header_name);
    let mut keys = Vec::new();
    if let Some((n, p)) = obj.require(c, "keys", "at least one {\"name\", \"sha256\", \"roles\"}") {
        match &n.value {
            Value::Array(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    let kp = format!("{p}[{i}]");
                    let Some(mut k) = c.object(item, &kp) else { continue };
                    let name = k
                        .require(c, "name", "logged, never the key")
                        .and_then(|(n, p)| c.nonempty(n, &p));
                    let digest = k.require(c, "sha256", "hex SHA-256 of the key").and_then(|(n, p)| {
                        let hex = c.string(n, &p)?;
                        let d = apikey::parse_digest(&hex.to_ascii_lowercase());
                        if d.is_none() {
                            c.error(
                                n.pos,
                                &p,
                                "must be 64 hex digits: the SHA-256 of the key (never the key itself)",
                            );
                        }
                        d
                    });
                    let roles = k.string_list(c, "roles", &[]);
                    k.finish(c);
                    if let (Some(name), Some(digest), Some(roles)) = (name, digest, roles) {
                        if keys.iter().any(|k: &apikey::Key| k.digest == digest) {
                            c.error(item.pos, &kp, "the same key digest appears twice");
                        }
                        keys.push(apikey::Key {
                            name: name.to_string(),
                            digest,
                            roles,
                        });
                    }
                }
            }
            _ => c.expected(n, &p, "a non-empty array of keys"),
        }
    }
    obj.finish(c);
    let header = header?;
    Some(ApiKeys {
        bearer: header == http::header::AUTHORIZATION,
        header,
        keys,
    })
}

/// KrakenD's `auth/validator` (local JWK sets only) of `endpoints[endpoint]`; resolution reads
/// the keys.
pub(super) fn jwt_validator(
    c: &mut Checker,
    node: &Node,
    path: &str,
    endpoint: usize,
) -> Option<crate::auth::jwt::Validator> {
    use crate::auth::jwt::{self, Alg};
    let mut obj = c.object(node, path)?;
    let errors_before = c.errors.len();
    let alg = obj
        .require(c, "alg", "HS256, RS256, ES256 or EdDSA")
        .and_then(|(n, p)| {
            let s = c.string(n, &p)?;
            match Alg::parse(s) {
                Some(a) => Some(a),
                None if s == "RS256" => {
                    c.error(
                        n.pos,
                        &p,
                        "alg \"RS256\" is not implemented in gatelet yet (HS256, ES256, EdDSA)",
                    );
                    None
                }
                None => {
                    let m = format!("alg \"{s}\" is not supported by gatelet (HS256, RS256, ES256, EdDSA)");
                    c.error(n.pos, &p, m);
                    None
                }
            }
        });
    if let Some((n, p)) = obj.take("jwk_url") {
        c.error(
            n.pos,
            &p,
            "remote JWK sets are out of scope for now: use jwk_local_path",
        );
    }
    if let Some((n, p)) = obj.require(c, "jwk_local_path", "a JWK set file")
        && let Some(file) = c.nonempty(n, &p)
    {
        c.unresolved.jwk_sets.push(JwkFile {
            endpoint,
            file: file.to_string(),
            alg,
            at: Site::new(n.pos, &p),
        });
    }
    let text = |c: &mut Checker, n: &Node, p: &str| c.nonempty(n, p).map(str::to_string);
    let audience = obj.string_list(c, "audience", &[]);
    if audience.as_ref().is_some_and(Vec::is_empty) {
        c.warn(
            node.pos,
            path,
            "no audience: tokens that carry an aud claim will be refused (RFC 7519 4.1.3; KrakenD \
             accepts them); set audience to this service's name in the tokens",
        );
    }
    let issuer = obj.optional(c, "issuer", None, |c, n, p| text(c, n, p).map(Some));
    let roles = obj.string_list(c, "roles", &[]);
    let roles_key = obj.optional(c, "roles_key", "roles".to_string(), text);
    let nested = obj.optional(c, "roles_key_is_nested", false, Checker::boolean);
    let scopes = obj.string_list(c, "scopes", &[]);
    let scopes_key = obj.optional(c, "scopes_key", "scope".to_string(), text);
    let matcher = obj.optional(c, "scopes_matcher", "any".to_string(), text);
    if let Some(m) = matcher.as_deref()
        && m != "any"
        && m != "all"
    {
        c.error(obj.pos, path, format!("scopes_matcher \"{m}\" is not any or all"));
    }
    let leeway = obj.optional(c, "leeway", Duration::ZERO, Checker::duration);
    let cookie_key = obj.optional(c, "cookie_key", None, |c, n, p| text(c, n, p).map(Some));
    let header = obj.optional(c, "auth_header_name", http::header::AUTHORIZATION, header_name);
    let mut propagate = Vec::new();
    if let Some((n, p)) = obj.take("propagate_claims") {
        match &n.value {
            Value::Array(pairs) => {
                for (i, pair) in pairs.iter().enumerate() {
                    let pp = format!("{p}[{i}]");
                    match c.strings(pair, &pp).as_deref() {
                        Some([(claim, _, _), (header, hpos, hp)]) => {
                            match http::HeaderName::from_bytes(header.as_bytes()) {
                                Ok(h) => propagate.push((claim.to_string(), h)),
                                Err(_) => c.error(*hpos, hp, format!("\"{header}\" is not a valid header name")),
                            }
                        }
                        Some(_) => c.error(pair.pos, &pp, "expected [\"claim\", \"Header-Name\"]"),
                        None => {}
                    }
                }
            }
            _ => c.expected(n, &p, "an array of [claim, header] pairs"),
        }
    }
    obj.finish(c);
    if c.errors.len() > errors_before {
        return None;
    }
    Some(jwt::Validator {
        alg: alg?,
        keys: Vec::new(),
        audience: audience?,
        issuer: issuer?,
        roles: roles?,
        roles_key: roles_key?,
        roles_key_is_nested: nested?,
        scopes: scopes?,
        scopes_key: scopes_key?,
        scopes_all: matcher? == "all",
        leeway: leeway?.as_secs(),
        cookie_key: cookie_key?,
        header: header?,
        propagate,
    })
}

/// KrakenD's service `tls`: `public_key`, `private_key` (PEM files, read by resolution),
/// `min_version`, `disabled`.
#[cfg(feature = "tls")]
pub(super) fn tls_config(c: &mut Checker, node: &Node, path: &str) {
    let Some(mut obj) = c.object(node, path) else { return };
    let disabled = obj.optional(c, "disabled", false, Checker::boolean);
    let public = obj.require(c, "public_key", "the certificate chain, PEM");
    let private = obj.require(c, "private_key", "the private key, PEM");
    let tls13_only = obj.optional(c, "min_version", false, |c, n, p| match c.string(n, p)? {
        "TLS12" => Some(false),
        "TLS13" => Some(true),
        v @ ("TLS10" | "TLS11") => {
            c.error(n.pos, p, format!("{v} is not supported by gatelet (TLS12, TLS13)"));
            None
        }
        v => {
            c.error(n.pos, p, format!("unknown min_version \"{v}\" (TLS12, TLS13)"));
            None
        }
    });
    obj.finish(c);
    if disabled != Some(false) {
        return;
    }
    let Some((public_node, public_path)) = public else {
        return;
    };
    let Some(chain) = c.nonempty(public_node, &public_path) else {
        return;
    };
    let Some(key) = private.and_then(|(n, p)| c.nonempty(n, &p)) else {
        return;
    };
    let Some(tls13_only) = tls13_only else { return };
    c.unresolved.tls = Some(TlsFiles {
        chain: chain.to_string(),
        key: key.to_string(),
        tls13_only,
        at: Site::new(public_node.pos, &public_path),
    });
}
