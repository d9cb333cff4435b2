//! `extra_config."gatelet/fleet"` (service): the members a central gatelet queries, from the
//! config or a separate `members_file`, with `headers` whose `${ENV}` references are expanded
//! at start-up (secrets stay out of the file; an unset variable is an error, never "").

use std::time::Duration;

use super::json::{self, Node, Value};
use super::model::{Fleet, Member};
use super::validate::{Checker, host};

/// Default `max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Most members a fleet may have.
pub const MAX_MEMBERS: usize = 10_000;

/// Expands `${NAME}` from the environment; the message names what is missing.
pub fn expand_env(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            return Err("\"${\" without \"}\"".into());
        };
        let name = &rest[start + 2..start + len];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("\"${{{name}}}\" is not an environment variable name"));
        }
        out.push_str(&env(name).ok_or_else(|| format!("environment variable {name} is not set"))?);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn members(c: &mut Checker, node: &Node, path: &str, out: &mut Vec<Member>) {
    let Value::Array(items) = &node.value else {
        c.error(
            node.pos,
            path,
            format!("expected an array of members, found {}", node.value.kind()),
        );
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(mut m) = c.object(item, &p) else { continue };
        let id = m
            .require(c, "id", "e.g. \"bus-17\"")
            .and_then(|(n, p)| c.nonempty(n, &p).map(|s| (s, n.pos, p)));
        let address = m
            .require(c, "host", "e.g. \"http://10.8.0.17:8000\"")
            .and_then(|(n, p)| {
                let s = c.string(n, &p)?;
                match host(s) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        c.error(n.pos, &p, e);
                        None
                    }
                }
            });
        m.finish(c);
        if let (Some((id, pos, idp)), Some(host)) = (id, address) {
            if id.starts_with('_') {
                c.error(pos, &idp, "member ids starting with '_' are reserved (\"_errors\")");
            } else if out.iter().any(|m| m.id == id) {
                c.error(pos, &idp, format!("member id \"{id}\" appears twice"));
            } else {
                out.push(Member {
                    id: id.to_string(),
                    host,
                });
            }
        }
    }
}

/// Parses `gatelet/fleet`.
pub fn fleet_config(c: &mut Checker, node: &Node, path: &str) -> Option<Fleet> {
    let mut obj = c.object(node, path)?;
    let errors_before = c.errors.len();
    let mut list = Vec::new();
    let inline = obj.take("members");
    if let Some((n, p)) = &inline {
        members(c, n, p, &mut list);
    }
    if let Some((n, p)) = obj.take("members_file")
        && let Some(file) = c.nonempty(n, &p)
    {
        match super::read_named_file(file) {
            Err(e) => c.error(n.pos, &p, format!("\"{file}\": {e}")),
            Ok(text) => match json::parse(&text) {
                // Errors inside the file point into the file.
                Ok(doc) => {
                    let mut inner = Checker::new(file);
                    members(&mut inner, &doc, "", &mut list);
                    c.errors.extend(inner.errors);
                }
                Err(e) => c.error(
                    n.pos,
                    &p,
                    format!("\"{file}\":{}:{}: {}", e.pos.line, e.pos.col, e.message),
                ),
            },
        }
    } else if inline.is_none() {
        c.error(obj.pos, path, "needs \"members\" or \"members_file\"");
    }
    if list.len() > MAX_MEMBERS {
        c.error(obj.pos, path, format!("{} members: at most {MAX_MEMBERS}", list.len()));
    }
    let mut headers = Vec::new();
    if let Some((n, p)) = obj.take("headers")
        && let Some(mut h) = c.object(n, &p)
    {
        for (key, value) in h.rest() {
            let hp = format!("{p}.{}", key.name);
            let Some(raw) = c.string(value, &hp) else { continue };
            let name = match http::HeaderName::from_bytes(key.name.as_bytes()) {
                Ok(n) => n,
                Err(_) => {
                    c.error(key.pos, &hp, format!("\"{}\" is not a valid header name", key.name));
                    continue;
                }
            };
            match expand_env(raw, |v| std::env::var(v).ok()).map(|v| http::HeaderValue::from_str(&v)) {
                Ok(Ok(v)) => headers.push((name, v)),
                Ok(Err(_)) => c.error(value.pos, &hp, "not a valid header value once expanded"),
                Err(e) => c.error(value.pos, &hp, e),
            }
        }
        h.finish(c);
    }
    let timeout = obj.optional(c, "timeout", Duration::from_secs(3), Checker::positive_duration);
    let max_in_flight = obj.optional(c, "max_in_flight", DEFAULT_MAX_IN_FLIGHT, |c, n, p| {
        c.integer(n, p, 1, 4096).map(|v| v as usize)
    });
    let health_path = obj.optional(c, "health_path", "/__health".to_string(), |c, n, p| {
        let s = c.string(n, p)?;
        if !s.starts_with('/') {
            c.error(n.pos, p, format!("\"{s}\" must start with '/'"));
            return None;
        }
        Some(s.to_string())
    });
    obj.finish(c);
    if c.errors.len() > errors_before {
        return None;
    }
    Some(Fleet {
        members: list,
        headers,
        timeout: timeout?,
        max_in_flight: max_in_flight?,
        health_path: health_path?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_expand_or_fail_loudly() {
        let env = |n: &str| (n == "FLEET_TOKEN").then(|| "s3cret".to_string());
        assert_eq!(expand_env("Bearer ${FLEET_TOKEN}", env), Ok("Bearer s3cret".into()));
        assert_eq!(expand_env("plain", env), Ok("plain".into()));
        assert!(
            expand_env("${MISSING}", env)
                .unwrap_err()
                .contains("MISSING is not set")
        );
        assert!(expand_env("${bad-name}", env).is_err());
        assert!(expand_env("${OPEN", env).is_err());
    }
}
