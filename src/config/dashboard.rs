//! `extra_config."gatelet/dashboard"` (service): the fleet dashboard's settings. What can be
//! checked alone is checked here; [`check_against`] then checks them against the endpoints
//! (the position endpoint must exist, the page may not shadow one) once those are known.

use std::time::Duration;

use super::json::{Node, Pos};
use super::model::{Dashboard, Endpoint};
use super::validate::Checker;

/// Default `path`.
pub const DEFAULT_PATH: &str = "/__dashboard";
/// Default `refresh`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(2);
/// Shortest `refresh`: every poll asks every bus for its health, so a wall screen polling
/// faster than this would mostly load the buses' uplinks.
pub const MIN_REFRESH: Duration = Duration::from_millis(500);
/// Longest `refresh`: beyond it the page is no longer "live".
pub const MAX_REFRESH: Duration = Duration::from_secs(600);
/// Longest `title`, in characters.
pub const MAX_TITLE: usize = 120;

/// The keys checked later, against the endpoints, with where they were written: kept even when
/// another key of the namespace is wrong, so that every error is reported at once.
pub struct Pending {
    /// The namespace's position and JSON path.
    pub namespace: (Pos, String),
    /// A valid `path`, its position and JSON path.
    pub path: Option<(String, Pos, String)>,
    /// `position_endpoint`, its position and JSON path.
    pub position: Option<(String, Pos, String)>,
    /// `events_endpoint`, its position and JSON path.
    pub events: Option<(String, Pos, String)>,
}

/// Built-in paths the dashboard may not take.
fn built_in(path: &str, health_path: &str) -> bool {
    path == health_path
        || path == "/__stats"
        || path == "/__fleet/health"
        || ["/__fleet/", "/__debug/", "/__echo/"]
            .iter()
            .any(|p| path.starts_with(p))
}

/// Parses `gatelet/dashboard`; `health_path` is the service's own. The settings are `None`
/// after an error; what [`check_against`] needs is returned either way.
pub fn dashboard_config(c: &mut Checker, node: &Node, path: &str, health_path: &str) -> (Option<Dashboard>, Pending) {
    let mut pending = Pending {
        namespace: (node.pos, path.to_string()),
        path: None,
        position: None,
        events: None,
    };
    let Some(mut obj) = c.object(node, path) else {
        return (None, pending);
    };
    let before = c.errors.len();
    let page = obj.optional(c, "path", DEFAULT_PATH.to_string(), |c, n, p| {
        let s = c.string(n, p)?;
        let why = if !s.starts_with('/') || s.len() < 2 {
            Some(" must be a path such as \"/__dashboard\"".to_string())
        } else if let Some(bad) = s
            .chars()
            .find(|ch| ch.is_whitespace() || ch.is_control() || matches!(ch, '?' | '#' | '{' | '}' | '%' | '*'))
        {
            Some(format!(
                ": '{}' is not allowed in the dashboard path",
                bad.escape_default()
            ))
        } else if s.ends_with('/') {
            Some(" must not end with '/'".to_string())
        } else if built_in(s, health_path) {
            Some(" is one of gatelet's built-in paths".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            c.error(n.pos, p, format!("\"{s}\"{why}"));
            return None;
        }
        pending.path = Some((s.to_string(), n.pos, p.to_string()));
        Some(s.to_string())
    });
    let title = obj.optional(c, "title", None, |c, n, p| {
        let s = c.nonempty(n, p)?;
        if s.chars().count() > MAX_TITLE {
            c.error(n.pos, p, format!("at most {MAX_TITLE} characters"));
            return None;
        }
        Some(Some(s.to_string()))
    });
    let refresh = obj.optional(c, "refresh", DEFAULT_REFRESH, |c, n, p| {
        let d = c.duration(n, p)?;
        if d < MIN_REFRESH || d > MAX_REFRESH {
            c.error(
                n.pos,
                p,
                format!(
                    "must be between {}ms and {}s: every refresh asks every bus",
                    MIN_REFRESH.as_millis(),
                    MAX_REFRESH.as_secs()
                ),
            );
            return None;
        }
        Some(d)
    });
    let position_endpoint = obj.optional(c, "position_endpoint", None, |c, n, p| {
        let s = c.nonempty(n, p)?;
        pending.position = Some((s.to_string(), n.pos, p.to_string()));
        Some(Some(s.to_string()))
    });
    let events_endpoint = obj.optional(c, "events_endpoint", None, |c, n, p| {
        let s = c.nonempty(n, p)?;
        pending.events = Some((s.to_string(), n.pos, p.to_string()));
        Some(Some(s.to_string()))
    });
    obj.finish(c);
    if c.errors.len() > before {
        return (None, pending);
    }
    let dashboard = (|| {
        Some(Dashboard {
            path: page?,
            title: title?,
            refresh: refresh?,
            position_endpoint: position_endpoint?,
            events_endpoint: events_endpoint?,
        })
    })();
    (dashboard, pending)
}

/// Whether `endpoint` (with `{param}` segments) would answer `path`.
fn shadows(endpoint: &str, path: &str) -> bool {
    let (mut e, mut p) = (endpoint.split('/'), path.split('/'));
    loop {
        match (e.next(), p.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b || super::path::is_param(a) => {}
            _ => return false,
        }
    }
}

/// Checks the dashboard against the endpoints; `fleet` says whether a fleet is configured,
/// `complete` whether every endpoint was valid (else a missing one was reported already).
pub fn check_against(c: &mut Checker, pending: &Pending, endpoints: &[Endpoint], fleet: bool, complete: bool) -> bool {
    let before = c.errors.len();
    if !fleet {
        let (pos, p) = &pending.namespace;
        c.error(
            *pos,
            p,
            "needs the service's extra_config.\"gatelet/fleet\": the page shows its members",
        );
    }
    let page = pending.path.as_ref().map_or(DEFAULT_PATH, |(s, _, _)| s.as_str());
    if let Some(e) = endpoints.iter().find(|e| shadows(&e.path, page)) {
        let (pos, p) = match &pending.path {
            Some((_, pos, p)) => (*pos, p),
            None => (pending.namespace.0, &pending.namespace.1),
        };
        c.error(
            pos,
            p,
            format!("\"{page}\" is also answered by endpoint \"{}\"", e.path),
        );
    }
    for (which, named) in [("position", &pending.position), ("events", &pending.events)] {
        let Some((want, pos, p)) = named else { continue };
        match endpoints
            .iter()
            .find(|e| &e.path == want && (which == "position" || e.method == http::Method::GET))
        {
            None if !complete => {}
            None if which == "events" && endpoints.iter().any(|e| &e.path == want) => {
                c.error(
                    *pos,
                    p,
                    format!("endpoint \"{want}\" has no GET: the page can only GET"),
                );
            }
            None => {
                let known: Vec<&str> = endpoints.iter().map(|e| e.path.as_str()).collect();
                let hint = match known.is_empty() {
                    true => "this config has no endpoints".to_string(),
                    false => format!("endpoints: {}", known.join(", ")),
                };
                c.error(
                    *pos,
                    p,
                    format!("\"{want}\" is not an endpoint of this config ({hint})"),
                );
            }
            Some(e) if e.method != http::Method::GET => {
                c.error(
                    *pos,
                    p,
                    format!("endpoint \"{want}\" answers {}: the page can only GET", e.method),
                );
            }
            Some(e) if e.path.split('/').any(super::path::is_param) => {
                c.error(
                    *pos,
                    p,
                    format!("endpoint \"{want}\" takes parameters: the page asks for all buses at once"),
                );
            }
            Some(e) if which == "events" && !e.backends.iter().any(|b| b.store == Some(super::model::Store::Inbox)) => {
                c.error(
                    *pos,
                    p,
                    format!("endpoint \"{want}\" does not read the \"gatelet/inbox\""),
                );
            }
            Some(_) => {}
        }
    }
    c.errors.len() == before
}
