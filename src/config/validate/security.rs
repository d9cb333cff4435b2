//! Security: CORS, API keys, JWT validators (keys read here) and the TLS server config.

use super::*;

/// KrakenD's `security/cors`, with its defaults.
pub(super) fn cors_config(c: &mut Checker, node: &Node, path: &str) -> Option<Cors> {
    let mut obj = c.object(node, path)?;
    let origins = obj.string_list(c, "allow_origins", &["*"]);
    let methods = match obj.take("allow_methods") {
        Some((n, p)) => c.strings(n, &p).and_then(|items| {
            let mut out = Vec::new();
            for (m, pos, mp) in items {
                match http::Method::from_bytes(m.as_bytes()) {
                    Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => out.push(method),
                    _ => {
                        c.error(pos, &mp, format!("\"{m}\" is not an upper-case HTTP method"));
                        return None;
                    }
                }
            }
            Some(out)
        }),
        None => Some(vec![http::Method::GET, http::Method::HEAD, http::Method::POST]),
    };
    let headers = match obj.take("allow_headers") {
        Some((n, p)) => forward(c, n, &p, true).map(|f| match f {
            Forward::Only(v) => v,
            Forward::All => vec!["*".to_string()],
        }),
        None => Some(vec!["origin".into(), "authorization".into(), "content-type".into()]),
    };
    let expose = obj.string_list(c, "expose_headers", &["Content-Length", "Content-Type"]);
    let max_age = match obj.take("max_age") {
        Some((n, p)) => c.duration(n, &p),
        None => Some(Duration::from_secs(12 * 3600)),
    };
    let credentials = match obj.take("allow_credentials") {
        Some((n, p)) => c.boolean(n, &p),
        None => Some(false),
    };
    obj.finish(c);
    Some(Cors {
        allow_origins: origins?,
        allow_methods: methods?,
        allow_headers: headers?,
        expose_headers: expose?,
        max_age: max_age?,
        allow_credentials: credentials?,
    })
}

/// Our `gatelet/api-keys`: `{"header", "keys": [{"name", "sha256", "roles"}]}`.
pub(super) fn api_keys_config(c: &mut Checker, node: &Node, path: &str) -> Option<ApiKeys> {
    let mut obj = c.object(node, path)?;
    let header = match obj.take("header") {
        Some((n, p)) => c
            .nonempty(n, &p)
            .and_then(|h| match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(h) => Some(h),
                Err(_) => {
                    c.error(n.pos, &p, format!("\"{h}\" is not a valid header name"));
                    None
                }
            }),
        None => Some(http::header::AUTHORIZATION),
    };
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

/// KrakenD's `auth/validator` (local JWK sets only).
pub(super) fn jwt_validator(c: &mut Checker, node: &Node, path: &str) -> Option<crate::auth::jwt::Validator> {
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
    let keys = obj.require(c, "jwk_local_path", "a JWK set file").and_then(|(n, p)| {
        let file = c.nonempty(n, &p)?;
        let text = match super::super::read_named_file(file) {
            Ok(t) => t,
            Err(e) => {
                c.error(n.pos, &p, format!("\"{file}\": {e}"));
                return None;
            }
        };
        match jwt::parse_jwk_set(&text, alg?) {
            Ok(keys) => Some(keys),
            Err(m) => {
                c.error(n.pos, &p, format!("\"{file}\": {m}"));
                None
            }
        }
    });
    let text = |c: &mut Checker, obj: &mut Obj, key: &str, default: &str| -> Option<String> {
        match obj.take(key) {
            Some((n, p)) => c.nonempty(n, &p).map(str::to_string),
            None => Some(default.to_string()),
        }
    };
    let audience = obj.string_list(c, "audience", &[]);
    let issuer = obj.take("issuer").map(|(n, p)| c.nonempty(n, &p).map(str::to_string));
    let roles = obj.string_list(c, "roles", &[]);
    let roles_key = text(c, &mut obj, "roles_key", "roles");
    let nested = obj.take("roles_key_is_nested").map(|(n, p)| c.boolean(n, &p));
    let scopes = obj.string_list(c, "scopes", &[]);
    let scopes_key = text(c, &mut obj, "scopes_key", "scope");
    let matcher = text(c, &mut obj, "scopes_matcher", "any");
    if let Some(m) = matcher.as_deref()
        && m != "any"
        && m != "all"
    {
        c.error(obj.pos, path, format!("scopes_matcher \"{m}\" is not any or all"));
    }
    let leeway = obj.take("leeway").map(|(n, p)| c.duration(n, &p));
    let cookie_key = obj
        .take("cookie_key")
        .map(|(n, p)| c.nonempty(n, &p).map(str::to_string));
    let header = match obj.take("auth_header_name") {
        Some((n, p)) => c.nonempty(n, &p).and_then(|h| {
            http::HeaderName::from_bytes(h.as_bytes()).ok().or_else(|| {
                c.error(n.pos, &p, format!("\"{h}\" is not a valid header name"));
                None
            })
        }),
        None => Some(http::header::AUTHORIZATION),
    };
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
        keys: keys?,
        audience: audience?,
        issuer: issuer.unwrap_or(Some(String::new())).filter(|s| !s.is_empty()),
        roles: roles?,
        roles_key: roles_key?,
        roles_key_is_nested: nested.unwrap_or(Some(false))?,
        scopes: scopes?,
        scopes_key: scopes_key?,
        scopes_all: matcher? == "all",
        leeway: leeway.unwrap_or(Some(Duration::ZERO))?.as_secs(),
        cookie_key: cookie_key.unwrap_or(Some(String::new())).filter(|s| !s.is_empty()),
        header: header?,
        propagate,
    })
}

/// KrakenD's service `tls`: `public_key`, `private_key` (PEM files), `min_version`, `disabled`.
#[cfg(feature = "tls")]
pub(super) fn tls_config(c: &mut Checker, node: &Node, path: &str) -> Option<std::sync::Arc<rustls::ServerConfig>> {
    let mut obj = c.object(node, path)?;
    let disabled = match obj.take("disabled") {
        Some((n, p)) => c.boolean(n, &p),
        None => Some(false),
    };
    let public = obj.require(c, "public_key", "the certificate chain, PEM");
    let private = obj.require(c, "private_key", "the private key, PEM");
    let tls13_only = match obj.take("min_version") {
        Some((n, p)) => match c.string(n, &p) {
            Some("TLS12") => Some(false),
            Some("TLS13") => Some(true),
            Some(v @ ("TLS10" | "TLS11")) => {
                c.error(n.pos, &p, format!("{v} is not supported by gatelet (TLS12, TLS13)"));
                None
            }
            Some(v) => {
                c.error(n.pos, &p, format!("unknown min_version \"{v}\" (TLS12, TLS13)"));
                None
            }
            None => None,
        },
        None => Some(false),
    };
    obj.finish(c);
    if disabled? {
        return None;
    }
    let (public_node, public_path) = public?;
    let public = c.nonempty(public_node, &public_path)?;
    let private = private.and_then(|(n, p)| c.nonempty(n, &p))?;
    match crate::tls::server_config(public, private, tls13_only?) {
        Ok(config) => Some(config),
        Err(m) => {
            c.error(public_node.pos, &public_path, m);
            None
        }
    }
}
