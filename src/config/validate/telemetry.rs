//! KrakenD's telemetry namespaces: `telemetry/logging` (level, prefix, outputs, format) and
//! `telemetry/metrics` (its keys accepted and mapped to gatelet's `/__stats`).

use super::*;
use crate::logging::{self, Format};

/// `extra_config."telemetry/logging"`.
pub(super) fn logging_config(c: &mut Checker, node: &Node, path: &str) -> logging::Options {
    let mut out = logging::Options::default();
    let Some(mut l) = c.object(node, path) else {
        return out;
    };
    use log::LevelFilter::{Debug, Error, Info, Warn};
    let levels = [
        ("DEBUG", Debug),
        ("INFO", Info),
        ("WARNING", Warn),
        ("ERROR", Error),
        ("CRITICAL", Error),
    ];
    if let Some((n, p)) = l.take("level") {
        out.level = choice(c, n, &p, "level", &levels, &[]);
    }
    if let Some(prefix) = l.optional(c, "prefix", String::new(), |c, n, p| {
        let s = c.string(n, p)?;
        if s.chars().any(char::is_control) {
            c.error(
                n.pos,
                p,
                "must not hold control characters (a newline would forge a log line)",
            );
            return None;
        }
        Some(s.to_string())
    }) {
        out.prefix = prefix;
    }
    out.stdout = l.optional(c, "stdout", false, Checker::boolean).unwrap_or(false);
    let syslog = l.optional(c, "syslog", false, Checker::boolean).unwrap_or(false);
    let facility = l.optional(c, "syslog_facility", logging::DEFAULT_FACILITY, |c, n, p| {
        let s = c.string(n, p)?;
        let f = logging::facility(s);
        if f.is_none() {
            c.error(
                n.pos,
                p,
                format!("unknown syslog facility \"{s}\" (local0 to local7, user, daemon...)"),
            );
        }
        f
    });
    out.syslog = syslog.then_some(facility.unwrap_or(logging::DEFAULT_FACILITY));
    if let Some((n, p)) = l.take("format") {
        let formats = [("default", Format::Default), ("logstash", Format::Logstash)];
        out.format = choice(c, n, &p, "format", &formats, &["custom"]).unwrap_or_default();
    }
    refuse(
        c,
        &mut l,
        "custom_format",
        "gatelet's formats are \"default\" and \"logstash\"",
    );
    l.finish(c);
    out
}

/// A KrakenD key of this namespace that gatelet does not implement: an error with `why`.
fn refuse(c: &mut Checker, obj: &mut Obj, key: &str, why: &str) {
    if let Some((n, p)) = obj.take(key) {
        c.error(
            n.pos,
            &p,
            format!("KrakenD key \"{key}\" is not supported by gatelet; {why}"),
        );
    }
}

/// `extra_config."telemetry/metrics"`: whether `/__stats` is served. `collection_time` and the
/// `*_disabled` layers are accepted (gatelet's counters are live and cost a few integers);
/// `endpoint_disabled: true` means no `/__stats`, as in KrakenD.
pub(super) fn metrics_config(c: &mut Checker, node: &Node, path: &str) -> bool {
    let Some(mut m) = c.object(node, path) else {
        return false;
    };
    m.optional(
        c,
        "collection_time",
        Duration::from_secs(60),
        Checker::positive_duration,
    );
    for layer in ["proxy_disabled", "router_disabled", "backend_disabled"] {
        m.optional(c, layer, false, Checker::boolean);
    }
    let disabled = m.optional(c, "endpoint_disabled", false, Checker::boolean);
    refuse(
        c,
        &mut m,
        "listen_address",
        "gatelet serves /__stats on the service's own port (remove the key)",
    );
    m.finish(c);
    disabled == Some(false)
}
