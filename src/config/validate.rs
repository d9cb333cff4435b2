//! Turns the positioned JSON tree into the typed [`Config`], checking every key and value on the
//! way and collecting every problem (with JSON path and `line:column`) instead of stopping at
//! the first. Unknown keys and namespaces are errors; nothing is clamped or silently dropped.
//! Checking reads nothing but the tree: host names to look up, files to read and environment
//! variables to expand go to [`Checker::unresolved`], and the values they fill stay empty
//! until resolution.
//!
//! This file holds the walk from the root and the service level; the sections live beside it:
//! `check` (the toolkit: [`Checker`], [`Obj`]), `endpoint`, `backend`, `proxy` (KrakenD's
//! `proxy` namespace: sequential, static, flatmap), `qos` (rate limits, breakers, cache,
//! retries), `security` (CORS, API keys, JWT, TLS), `telemetry` (logging, metrics) and
//! `refused` (KrakenD features left out on purpose, with what to use instead).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::Method;

use super::fleet::fleet_config;
use super::json::{Key, Node, Pos, Value};
use super::model::*;
use super::path;
use super::{ConfigError, duration};
use crate::auth::apikey::{self, ApiKeys};

mod backend;
mod backend_http;
mod check;
mod endpoint;
mod output;
mod proxy;
mod qos;
mod refused;
mod security;
mod telemetry;

pub use backend::host;
use backend::*;
use backend_http::*;
#[cfg(feature = "tls")]
pub use check::TlsFiles;
use check::*;
pub use check::{Checker, FleetHeader, JwkFile, Lookup, MembersFile, Obj, Site, Unresolved, choice, join};
use endpoint::*;
use output::*;
use proxy::*;
use qos::*;
use security::*;
use telemetry::*;

/// KrakenD keys gatelet knows but does not implement, with a hint where one helps. They get a
/// more useful message than a typo would.
const KRAKEND_KEYS: &[(&str, &str)] = &[
    (
        "max_header_bytes",
        "gatelet's server limits are fixed; see README \"Limits\"",
    ),
    (
        "max_idle_connections",
        "the upstream pool is bounded by gatelet; see README \"Limits\"",
    ),
    (
        "max_idle_connections_per_host",
        "the upstream pool is bounded by gatelet; see README \"Limits\"",
    ),
    (
        "idle_connection_timeout",
        "the upstream pool is bounded by gatelet; see README \"Limits\"",
    ),
    (
        "dialer_timeout",
        "the upstream connect timeout is fixed; see README \"Limits\"",
    ),
    ("dialer_keep_alive", ""),
    ("dialer_fallback_delay", ""),
    (
        "response_header_timeout",
        "the endpoint timeout bounds the whole answer",
    ),
    ("expect_continue_timeout", ""),
    ("disable_keep_alives", ""),
    ("disable_rest", ""),
    ("tls", "the service's top-level \"tls\" sets TLS for every endpoint"),
    ("client_tls", "gatelet calls backends over plain HTTP on the bus"),
    ("use_h2c", "gatelet speaks HTTP/1.1"),
    ("plugin", refused::PLUGINS),
    ("async_agent", ""),
    ("dns_cache_ttl", "backend hosts are resolved once at start-up"),
    ("sequential_start", ""),
    ("allow_insecure_connections", ""),
    ("headers_to_pass", "use \"input_headers\" (renamed in KrakenD v2)"),
    (
        "querystring_params",
        "use \"input_query_strings\" (renamed in KrakenD v2)",
    ),
    ("whitelist", "use \"allow\" (renamed in KrakenD v2)"),
    ("blacklist", "use \"deny\" (renamed in KrakenD v2)"),
    ("sd_scheme", ""),
    (
        "num_shards",
        "the client table is bounded by \"gatelet/ratelimit\": {\"max_clients\": N}",
    ),
    (
        "cleanup_period",
        "the client table is bounded by \"gatelet/ratelimit\": {\"max_clients\": N}",
    ),
    (
        "cleanup_threads",
        "the client table is bounded by \"gatelet/ratelimit\": {\"max_clients\": N}",
    ),
];

/// Checks the whole document and builds the config; `None` when any error was recorded.
pub fn config(c: &mut Checker, root: &Node) -> Option<Config> {
    let mut obj = c.object(root, "")?;
    if let Some((n, p)) = obj.take("$schema") {
        c.string(n, &p);
    }
    if let Some((n, p)) = obj.require(c, "version", "must be 3")
        && let Some(v) = c.integer(n, &p, i64::MIN, i64::MAX).filter(|v| *v != 3)
    {
        c.error(
            n.pos,
            &p,
            format!("version {v} is not supported: gatelet reads KrakenD v3 configs (3)"),
        );
    }
    let name = obj.optional(c, "name", None, |c, n, p| c.string(n, p).map(|s| Some(s.to_string())));
    let port = obj.optional(c, "port", DEFAULT_PORT, |c, n, p| {
        c.integer(n, p, 0, 65535).map(|v| v as u16)
    });
    let listen_ip = obj.optional(c, "listen_ip", IpAddr::from([0, 0, 0, 0]), |c, n, p| {
        let s = c.string(n, p)?;
        let ip = s.parse::<IpAddr>().ok();
        if ip.is_none() {
            c.error(n.pos, p, format!("\"{s}\" is not an IP address"));
        }
        ip
    });
    let timeout = obj.optional(c, "timeout", DEFAULT_TIMEOUT, Checker::positive_duration);
    let shutdown_grace = obj.optional(c, "max_shutdown_wait_time", Duration::from_secs(5), Checker::duration);
    let mut timeouts = crate::net::limits::Timeouts::default();
    for (key, slot) in [
        ("read_header_timeout", &mut timeouts.head),
        ("idle_timeout", &mut timeouts.idle),
        ("read_timeout", &mut timeouts.body_total),
        ("write_timeout", &mut timeouts.write_stall),
    ] {
        if let Some((n, p)) = obj.take(key)
            && let Some(d) = server_timeout(c, n, &p)
        {
            *slot = d;
        }
    }
    let cache_ttl = obj.optional(c, "cache_ttl", Duration::ZERO, cache_ttl);
    let output_encoding = obj.optional(c, "output_encoding", OutputEncoding::Json, output_encoding);
    let debug_endpoint = obj.optional(c, "debug_endpoint", false, Checker::boolean);
    let disable_compression = obj.optional(c, "disable_compression", false, Checker::boolean);
    let echo_endpoint = obj.optional(c, "echo_endpoint", false, Checker::boolean);
    let host_node = obj.take("host");
    let hosts_given = host_node.is_some();
    let hosts = host_node.and_then(|(n, p)| hosts(c, n, &p));
    #[cfg(feature = "tls")]
    if let Some((n, p)) = obj.take("tls") {
        tls_config(c, n, &p);
    }
    #[cfg(not(feature = "tls"))]
    if let Some((n, p)) = obj.take("tls") {
        c.error(n.pos, &p, "this gatelet was built without TLS (cargo feature \"tls\")");
    }
    let extras = match obj.take("extra_config") {
        Some((n, p)) => service_extra(c, n, &p),
        None => ServiceExtras::default(),
    };
    let defaults = Defaults {
        timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
        cache_ttl: cache_ttl.unwrap_or_default(),
        output_encoding: output_encoding.unwrap_or(OutputEncoding::Json),
        hosts: hosts.as_deref(),
        hosts_given,
        router: &extras.router,
        api_keys: extras.api_keys_given,
        fleet: extras.fleet.is_some(),
        sensors: &extras.sensors,
        sensor_names: &extras.sensor_names,
        outbox: extras.outbox_given,
        inbox: extras.inbox_given,
        sync_window: extras.outbox.as_ref().map(|o| o.sync_window),
    };
    let mut endpoints = Vec::new();
    let mut endpoints_given = 0;
    if let Some((n, p)) = obj.take("endpoints") {
        match &n.value {
            Value::Array(items) => {
                endpoints_given = items.len();
                let mut shapes: HashMap<(Method, String), (usize, Pos)> = HashMap::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(e) = endpoint(c, item, &format!("{p}[{i}]"), &defaults, &mut shapes, i) {
                        endpoints.push(e);
                    }
                }
            }
            _ => c.expected(n, &p, "an array of endpoints"),
        }
    }
    let forwarding = std::mem::take(&mut c.unresolved.forwarding_sensors);
    if extras.outbox.is_none() && !extras.outbox_given {
        for at in forwarding {
            c.error(
                at.pos,
                &at.path,
                "\"forward\" needs the service's extra_config.\"gatelet/outbox\"",
            );
        }
    }
    let dashboard = extras.dashboard.and_then(|(d, pending)| {
        let complete = endpoints.len() == endpoints_given;
        let fleet = extras.fleet.is_some();
        super::dashboard::check_against(c, &pending, &endpoints, fleet, complete).then_some(d)?
    });
    obj.finish(c);
    if !c.errors.is_empty() {
        return None;
    }
    Some(Config {
        warnings: Vec::new(),
        name: name?,
        listen_ip: listen_ip?,
        port: port?,
        timeout: timeout?,
        cache_ttl: cache_ttl?,
        output_encoding: output_encoding?,
        debug_endpoint: debug_endpoint?,
        disable_compression: disable_compression?,
        echo_endpoint: echo_endpoint?,
        router: extras.router,
        endpoints,
        sensors: extras.sensors,
        cors: extras.cors,
        api_keys: extras.api_keys,
        jwt_reject_unsynced_clock: extras.jwt_reject_unsynced_clock,
        shutdown_grace: shutdown_grace?,
        metrics: extras.metrics,
        logging: extras.logging,
        access_log: extras.access_log,
        max_connections: extras.max_connections,
        timeouts: crate::net::limits::Timeouts {
            body_idle: extras.body_idle_timeout.unwrap_or(timeouts.body_idle),
            ..timeouts
        },
        fleet: extras.fleet,
        dashboard,
        gzip: extras.gzip,
        outbox: extras.outbox,
        inbox: extras.inbox,
        #[cfg(feature = "tls")]
        tls: None,
    })
}

/// What endpoints inherit from the service.
struct Defaults<'a> {
    timeout: Duration,
    cache_ttl: Duration,
    output_encoding: OutputEncoding,
    hosts: Option<&'a [Host]>,
    /// The service sets `host` (perhaps invalid, already reported).
    hosts_given: bool,
    router: &'a RouterOptions,
    /// The service defines `gatelet/api-keys`.
    api_keys: bool,
    /// The service defines a valid `gatelet/fleet`.
    fleet: bool,
    sensors: &'a [Sensor],
    sensor_names: &'a [String],
    /// The service has `gatelet/outbox` / `gatelet/inbox` (perhaps invalid, already reported).
    outbox: bool,
    inbox: bool,
    /// The outbox's `sync_window`: an outbox endpoint's `timeout` must be longer.
    sync_window: Option<Duration>,
}

fn cache_ttl(c: &mut Checker, node: &Node, path: &str) -> Option<Duration> {
    let d = c.duration(node, path)?;
    if d.subsec_nanos() != 0 {
        c.error(
            node.pos,
            path,
            "must be whole seconds: it becomes Cache-Control max-age",
        );
        return None;
    }
    Some(d)
}

/// A client connection time limit: more than zero (KrakenD's `0` means "no limit", which an
/// Internet-facing Pi cannot afford) and at most [`crate::net::limits::MAX_TIMEOUT`].
fn server_timeout(c: &mut Checker, node: &Node, path: &str) -> Option<Duration> {
    let d = c.duration(node, path)?;
    let max = crate::net::limits::MAX_TIMEOUT;
    if d.is_zero() {
        c.error(
            node.pos,
            path,
            "gatelet always bounds this; give a duration such as \"10s\" (KrakenD's 0 means no limit)",
        );
        None
    } else if d > max {
        c.error(
            node.pos,
            path,
            format!(
                "at most {}s: a connection slot is too scarce to hold longer",
                max.as_secs()
            ),
        );
        None
    } else {
        Some(d)
    }
}

/// What the service's `extra_config` holds, once checked.
struct ServiceExtras {
    router: RouterOptions,
    /// Valid sensors, and every sensor name defined (valid or not).
    sensors: Vec<Sensor>,
    sensor_names: Vec<String>,
    cors: Option<Cors>,
    api_keys: Option<ApiKeys>,
    /// `gatelet/api-keys` is there (even if invalid, already reported).
    api_keys_given: bool,
    fleet: Option<Fleet>,
    dashboard: Option<(Option<Dashboard>, super::dashboard::Pending)>,
    jwt_reject_unsynced_clock: bool,
    metrics: bool,
    logging: crate::logging::Options,
    access_log: bool,
    max_connections: usize,
    body_idle_timeout: Option<Duration>,
    gzip: Option<Gzip>,
    outbox: Option<Outbox>,
    outbox_given: bool,
    inbox: Option<Inbox>,
    inbox_given: bool,
}

impl Default for ServiceExtras {
    fn default() -> Self {
        ServiceExtras {
            router: RouterOptions::default(),
            sensors: Vec::new(),
            sensor_names: Vec::new(),
            cors: None,
            api_keys: None,
            api_keys_given: false,
            fleet: None,
            dashboard: None,
            jwt_reject_unsynced_clock: true,
            metrics: false,
            logging: crate::logging::Options::default(),
            access_log: false,
            max_connections: crate::net::limits::DEFAULT_MAX_CONNECTIONS,
            body_idle_timeout: None,
            gzip: default_gzip(),
            outbox: None,
            outbox_given: false,
            inbox: None,
            inbox_given: false,
        }
    }
}

fn service_extra(c: &mut Checker, node: &Node, path: &str) -> ServiceExtras {
    let mut x = ServiceExtras::default();
    let Some(mut obj) = c.object(node, path) else {
        return x;
    };
    if let Some((n, p)) = obj.take("security/cors") {
        x.cors = cors_config(c, n, &p);
    }
    if let Some((n, p)) = obj.take("gatelet/api-keys") {
        x.api_keys_given = true;
        x.api_keys = api_keys_config(c, n, &p);
    }
    if let Some((n, p)) = obj.take("gatelet/fleet") {
        x.fleet = fleet_config(c, n, &p);
    }
    if let Some((n, p)) = obj.take("telemetry/logging") {
        x.logging = logging_config(c, n, &p);
    }
    if let Some((n, p)) = obj.take("gatelet/access-log")
        && let Some(a) = c.object(n, &p)
    {
        a.finish(c);
        x.access_log = true;
    }
    if let Some((n, p)) = obj.take("gatelet/metrics")
        && let Some(m) = c.object(n, &p)
    {
        // No options: /__stats on the service's own port, always the same series.
        m.finish(c);
        x.metrics = true;
    }
    if let Some((n, p)) = obj.take("telemetry/metrics") {
        x.metrics |= metrics_config(c, n, &p);
    }
    if let Some((n, p)) = obj.take("gatelet/jwt")
        && let Some(mut j) = c.object(n, &p)
    {
        if let Some((n, p)) = j.take("unsynced_clock")
            && let Some(reject) = choice(c, n, &p, "unsynced_clock", &[("reject", true), ("accept", false)], &[])
        {
            x.jwt_reject_unsynced_clock = reject;
        }
        j.finish(c);
    }
    if let Some((n, p)) = obj.take("gatelet/server")
        && let Some(mut srv) = c.object(n, &p)
    {
        if let Some((n, p)) = srv.take("max_connections")
            && let Some(max) = c.integer(n, &p, 1, crate::net::limits::MAX_MAX_CONNECTIONS as i64)
        {
            x.max_connections = max as usize;
        }
        if let Some((n, p)) = srv.take("body_idle_timeout") {
            x.body_idle_timeout = server_timeout(c, n, &p);
        }
        srv.finish(c);
    }
    if let Some((n, p)) = obj.take("gatelet/gzip") {
        x.gzip = gzip_config(c, n, &p);
    }
    if let Some((n, p)) = obj.take("gatelet/outbox") {
        x.outbox_given = true;
        x.outbox = super::outbox::outbox(c, n, &p);
    }
    if let Some((n, p)) = obj.take("gatelet/inbox") {
        x.inbox_given = true;
        x.inbox = super::outbox::inbox(c, n, &p);
    }
    if let Some((n, p)) = obj.take("gatelet/sensors") {
        (x.sensors, x.sensor_names) = super::sensors::sensors(c, n, &p);
    }
    if let Some((n, p)) = obj.take("router")
        && let Some(mut r) = c.object(n, &p)
    {
        if let Some((n, p)) = r.take("health_path")
            && let Some(s) = c.string(n, &p)
        {
            if !s.starts_with('/') || s.contains(['?', '#', ' ']) || s.len() < 2 {
                c.error(n.pos, &p, format!("\"{s}\" must be a path such as \"/__health\""));
            } else {
                x.router.health_path = s.to_string();
            }
        }
        if let Some((n, p)) = r.take("disable_health")
            && let Some(b) = c.boolean(n, &p)
        {
            x.router.disable_health = b;
        }
        if let Some((n, p)) = r.take("trusted_proxies")
            && let Some(list) = c.strings(n, &p)
        {
            for (entry, pos, ep) in list {
                match crate::net::Cidr::parse(entry) {
                    Some(cidr) => x.router.trusted_proxies.push(cidr),
                    None => c.error(
                        pos,
                        &ep,
                        format!("\"{entry}\" is not an address or block such as \"10.0.0.0/8\""),
                    ),
                }
            }
        }
        if let Some((n, p)) = r.take("return_error_msg")
            && let Some(b) = c.boolean(n, &p)
        {
            x.router.return_error_msg = b;
        }
        router_path_keys(c, &mut r, &mut x.router);
        r.finish(c);
    }
    // After `router`: the page may not take the health path.
    if let Some((n, p)) = obj.take("gatelet/dashboard") {
        x.dashboard = Some(super::dashboard::dashboard_config(c, n, &p, &x.router.health_path));
    }
    unsupported_namespaces(c, &mut obj);
    x
}

/// The router's path keys (gin's): `disable_redirect_trailing_slash`,
/// `disable_redirect_fixed_path`, `disable_path_decoding`, `remove_extra_slash`.
fn router_path_keys(c: &mut Checker, r: &mut Obj, router: &mut RouterOptions) {
    for (key, slot, inverted) in [
        (
            "disable_redirect_trailing_slash",
            &mut router.redirect_trailing_slash,
            true,
        ),
        ("disable_redirect_fixed_path", &mut router.redirect_fixed_path, true),
        ("disable_path_decoding", &mut router.reject_encoded_params, true),
        ("remove_extra_slash", &mut router.remove_extra_slash, false),
    ] {
        if let Some((n, p)) = r.take(key)
            && let Some(b) = c.boolean(n, &p)
        {
            *slot = b != inverted;
        }
    }
}

/// Reports every namespace left in an `extra_config` object.
fn unsupported_namespaces(c: &mut Checker, obj: &mut Obj) {
    for (key, _) in obj.rest() {
        let p = join(&obj.path, &key.name);
        let message = match refused::out_on_purpose(&key.name) {
            Some(why) => format!("namespace \"{}\" is left out of gatelet on purpose: {why}", key.name),
            None => format!("namespace \"{}\" is not supported by gatelet", key.name),
        };
        c.error(key.pos, &p, message);
    }
}
