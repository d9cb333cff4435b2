//! `extra_config."gatelet/outbox"` (a bus's durable store-and-forward of events to the
//! central) and `extra_config."gatelet/inbox"` (the central's store of what the buses
//! deliver), with the backends that feed and read them. Same rules as the rest of the config:
//! every key known, every value checked, every error with its path and position. Secrets in
//! `deliver.api_key` / `deliver.bearer` may be `${ENV}` references, expanded at resolution.

use std::time::Duration;

use super::json::Node;
use super::model::{Deliver, Host, Inbox, Outbox};
use super::validate::{Checker, FleetHeader, Site, host};

/// Default `max_bytes` of an outbox or inbox (64 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// Default `max_events`.
pub const DEFAULT_MAX_EVENTS: u64 = 100_000;
/// Smallest `max_bytes` (one segment must hold a record of the largest body).
pub const MIN_MAX_BYTES: i64 = 4096;
/// Largest `max_bytes` (1 TiB: anything bigger is a typo).
pub const MAX_MAX_BYTES: i64 = 1 << 40;
/// Default `sync_window`: normal events are made durable in groups this often.
pub const DEFAULT_SYNC_WINDOW: Duration = Duration::from_millis(100);
/// Longest `sync_window` (a POST waits for it).
pub const MAX_SYNC_WINDOW: Duration = Duration::from_secs(5);
/// Default and largest `deliver.batch` (events per delivery request).
pub const BATCH: (usize, i64) = (256, 1000);
/// Default `deliver.timeout`.
pub const DEFAULT_DELIVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `deliver.backoff_initial` / `backoff_max`.
pub const DEFAULT_BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(60));
/// Default `max_buses` of an inbox (buses whose high-water mark is kept).
pub const DEFAULT_MAX_BUSES: (usize, i64) = (4096, 1 << 20);
/// Longest bus id.
pub const MAX_BUS_ID: usize = 64;

/// Whether `id` is a usable bus id: 1 to [`MAX_BUS_ID`] letters, digits, `-`, `_`, `.`.
pub fn bus_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_BUS_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `max_bytes` / `max_events` of a journal.
fn limits(c: &mut Checker, obj: &mut super::validate::Obj) -> (Option<u64>, Option<u64>) {
    let bytes = obj.optional(c, "max_bytes", DEFAULT_MAX_BYTES, |c, n, p| {
        c.integer(n, p, MIN_MAX_BYTES, MAX_MAX_BYTES).map(|v| v as u64)
    });
    let events = obj.optional(c, "max_events", DEFAULT_MAX_EVENTS, |c, n, p| {
        c.integer(n, p, 1, 1 << 32).map(|v| v as u64)
    });
    (bytes, events)
}

fn dir(c: &mut Checker, obj: &mut super::validate::Obj) -> Option<std::path::PathBuf> {
    obj.require(c, "dir", "the journal's directory, e.g. \"/var/lib/gatelet/outbox\"")
        .and_then(|(n, p)| c.nonempty(n, &p).map(Into::into))
}

/// The service's `gatelet/outbox`.
pub fn outbox(c: &mut Checker, node: &Node, path: &str) -> Option<Outbox> {
    let mut obj = c.object(node, path)?;
    let errors_before = c.errors.len();
    let dir = dir(c, &mut obj);
    let bus = obj
        .require(c, "bus", "this bus's id, e.g. \"bus-17\"")
        .and_then(|(n, p)| {
            let id = c.string(n, &p)?;
            if !bus_id_ok(id) {
                c.error(
                    n.pos,
                    &p,
                    format!("\"{id}\": a bus id is 1 to {MAX_BUS_ID} letters, digits, '-', '_' or '.'"),
                );
                return None;
            }
            Some(id.to_string())
        });
    let (max_bytes, max_events) = limits(c, &mut obj);
    let sync_window = obj.optional(c, "sync_window", DEFAULT_SYNC_WINDOW, |c, n, p| {
        let d = c.duration(n, p)?;
        if d > MAX_SYNC_WINDOW {
            c.error(
                n.pos,
                p,
                format!("at most {}s: a POST waits for it", MAX_SYNC_WINDOW.as_secs()),
            );
            return None;
        }
        Some(d)
    });
    let critical = obj.string_list(c, "critical", &[]);
    let deliver = obj.optional(c, "deliver", None, |c, n, p| deliver(c, n, p).map(Some));
    obj.finish(c);
    if c.errors.len() > errors_before {
        return None;
    }
    Some(Outbox {
        dir: dir?,
        bus: bus?,
        max_bytes: max_bytes?,
        max_events: max_events?,
        sync_window: sync_window?,
        critical: critical?,
        deliver: deliver?,
    })
}

/// `deliver`: where and how batches go to the central.
fn deliver(c: &mut Checker, node: &Node, path: &str) -> Option<Deliver> {
    let mut obj = c.object(node, path)?;
    let errors_before = c.errors.len();
    let url = obj
        .require(c, "url", "the central's inbox, e.g. \"http://central:8080/inbox\"")
        .and_then(|(n, p)| {
            let url = c.nonempty(n, &p)?;
            let after_scheme = url.find("://").map_or(0, |i| i + 3);
            let split = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
            let (base, target) = url.split_at(split);
            let target = if target.is_empty() { "/" } else { target };
            if target.parse::<http::uri::PathAndQuery>().is_err() || target.contains('#') {
                c.error(n.pos, &p, format!("\"{url}\": \"{target}\" is not a request target"));
                return None;
            }
            let h: Host = host(c, base, n.pos, &p)?;
            Some((h, target.to_string()))
        });
    let mut credentials = 0;
    let mut header = None;
    if let Some((n, p)) = obj.take("api_key") {
        credentials += 1;
        let name = obj.optional(c, "api_key_header", http::header::AUTHORIZATION, |c, n, p| {
            let s = c.nonempty(n, p)?;
            let h = http::HeaderName::from_bytes(s.as_bytes()).ok();
            if h.is_none() {
                c.error(n.pos, p, format!("\"{s}\" is not a valid header name"));
            }
            h
        });
        if let (Some(v), Some(name)) = (c.nonempty(n, &p), name) {
            let template = match name == http::header::AUTHORIZATION {
                true => format!("Bearer {v}"),
                false => v.to_string(),
            };
            header = Some(FleetHeader {
                name,
                template,
                at: Site::new(n.pos, &p),
            });
        }
    } else if let Some((n, p)) = obj.take("api_key_header") {
        c.error(n.pos, &p, "has no effect without \"api_key\"");
    }
    if let Some((n, p)) = obj.take("bearer") {
        credentials += 1;
        if let Some(v) = c.nonempty(n, &p) {
            header = Some(FleetHeader {
                name: http::header::AUTHORIZATION,
                template: format!("Bearer {v}"),
                at: Site::new(n.pos, &p),
            });
        }
    }
    if credentials > 1 {
        c.error(obj.pos, path, "give \"api_key\" or \"bearer\", not both");
    }
    let batch = obj.optional(c, "batch", BATCH.0, |c, n, p| {
        c.integer(n, p, 1, BATCH.1).map(|v| v as usize)
    });
    let timeout = obj.optional(c, "timeout", DEFAULT_DELIVER_TIMEOUT, Checker::positive_duration);
    let initial = obj.optional(c, "backoff_initial", DEFAULT_BACKOFF.0, Checker::positive_duration);
    let max = obj.optional(c, "backoff_max", DEFAULT_BACKOFF.1, |c, n, p| {
        let d = c.positive_duration(n, p)?;
        if initial.is_some_and(|i| d < i) {
            c.error(n.pos, p, "must not be less than backoff_initial");
            return None;
        }
        Some(d)
    });
    let gzip = obj.optional(c, "gzip", true, Checker::boolean);
    obj.finish(c);
    if c.errors.len() > errors_before {
        return None;
    }
    if let Some(h) = header {
        c.unresolved.outbox_headers.push(h);
    }
    let (host, target) = url?;
    Some(Deliver {
        host,
        target,
        headers: Vec::new(),
        batch: batch?,
        timeout: timeout?,
        backoff_initial: initial?,
        backoff_max: max?,
        gzip: gzip?,
    })
}

/// The service's `gatelet/inbox`.
pub fn inbox(c: &mut Checker, node: &Node, path: &str) -> Option<Inbox> {
    let mut obj = c.object(node, path)?;
    let errors_before = c.errors.len();
    let dir = dir(c, &mut obj);
    let (max_bytes, max_events) = limits(c, &mut obj);
    let max_buses = obj.optional(c, "max_buses", DEFAULT_MAX_BUSES.0, |c, n, p| {
        c.integer(n, p, 1, DEFAULT_MAX_BUSES.1).map(|v| v as usize)
    });
    obj.finish(c);
    if c.errors.len() > errors_before {
        return None;
    }
    Some(Inbox {
        dir: dir?,
        max_bytes: max_bytes?,
        max_events: max_events?,
        max_buses: max_buses?,
    })
}

/// A backend's `"gatelet/outbox": {}` or `"gatelet/inbox": {}` (no keys): checked against
/// the service's namespace (`defined`) and the endpoint's method.
pub fn store_backend(
    c: &mut Checker,
    node: &Node,
    path: &str,
    what: &str,
    defined: bool,
    methods: &[http::Method],
    method: &http::Method,
) {
    if let Some(o) = c.object(node, path) {
        o.finish(c);
    }
    if !defined {
        c.error(node.pos, path, format!("needs the service's extra_config.\"{what}\""));
    }
    if !methods.contains(method) {
        let list: Vec<&str> = methods.iter().map(http::Method::as_str).collect();
        c.error(
            node.pos,
            path,
            format!(
                "a \"{what}\" backend serves {} endpoints, not {method}",
                list.join(" or ")
            ),
        );
    }
}
