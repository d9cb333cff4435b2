//! `extra_config."gatelet/fleet"` (service): the members a central gatelet queries, from the
//! config or a separate `members_file` (read, and its members checked, by resolution), with
//! `headers` whose `${ENV}` references resolution expands (secrets stay out of the file; an
//! unset variable is an error, never "").

use std::time::Duration;

use super::json::{Node, Value};
use super::model::{Fleet, Member};
use super::validate::{Checker, FleetHeader, MembersFile, Site, host};

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

/// Checks an array of `{id, host}` members into `out`, whose ids they may not repeat: the
/// inline `members`, and the `members_file` when resolution reads it.
pub fn members(c: &mut Checker, node: &Node, path: &str, out: &mut Vec<Member>) {
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
                host(c, s, n.pos, &p)
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
    if list.len() > MAX_MEMBERS {
        c.error(obj.pos, path, format!("{} members: at most {MAX_MEMBERS}", list.len()));
    }
    if let Some((n, p)) = obj.take("members_file")
        && let Some(file) = c.nonempty(n, &p)
    {
        c.unresolved.members_file = Some(MembersFile {
            file: file.to_string(),
            at: Site::new(n.pos, &p),
            fleet: Site::new(obj.pos, path),
            inline: list.clone(),
        });
    } else if inline.is_none() {
        c.error(obj.pos, path, "needs \"members\" or \"members_file\"");
    }
    if let Some((n, p)) = obj.take("headers")
        && let Some(mut h) = c.object(n, &p)
    {
        for (key, value) in h.rest() {
            let hp = format!("{p}.{}", key.name);
            let Some(raw) = c.string(value, &hp) else { continue };
            let Ok(name) = http::HeaderName::from_bytes(key.name.as_bytes()) else {
                c.error(key.pos, &hp, format!("\"{}\" is not a valid header name", key.name));
                continue;
            };
            // The references' syntax now, their values when resolved.
            match expand_env(raw, |_| Some(String::new())) {
                Ok(_) => c.unresolved.fleet_headers.push(FleetHeader {
                    name,
                    template: raw.to_string(),
                    at: Site::new(value.pos, &hp),
                }),
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
        headers: Vec::new(),
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
