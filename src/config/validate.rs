//! Turns the positioned JSON tree into the typed [`Config`], checking every key and value on the
//! way and collecting every problem (with JSON path and `line:column`) instead of stopping at
//! the first. Unknown keys and namespaces are errors; nothing is clamped or silently dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use http::Method;

use super::fleet::fleet_config;
use super::json::{Key, Node, Pos, Value};
use super::model::*;
use super::{ConfigError, duration};
use crate::auth::apikey::{self, ApiKeys};
use crate::router;

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
    ("disable_compression", ""),
    ("disable_rest", ""),
    ("tls", "gatelet speaks plain HTTP; terminate TLS in front of it"),
    ("client_tls", "gatelet calls backends over plain HTTP on the bus"),
    ("use_h2c", "gatelet speaks HTTP/1.1"),
    ("plugin", ""),
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

/// Upper bound of a bucket's `capacity`.
pub const MAX_CAPACITY: i64 = 1_000_000_000;

/// Upper bound of `gatelet/ratelimit.max_clients` (48 bytes an entry: 48 MB at most).
pub const MAX_MAX_CLIENTS: i64 = 1_000_000;

const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Upper bound of `concurrent_calls`: each one is a real upstream request.
pub const MAX_CONCURRENT_CALLS: i64 = 10;

/// Collects errors while the tree is walked.
pub struct Checker<'f> {
    file: &'f str,
    /// Everything found so far.
    pub errors: Vec<ConfigError>,
}

impl<'f> Checker<'f> {
    /// A checker for `file` (used in messages only).
    pub fn new(file: &'f str) -> Self {
        Checker {
            file,
            errors: Vec::new(),
        }
    }

    /// Records one error.
    pub fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn expected(&mut self, node: &Node, path: &str, what: &str) {
        self.error(node.pos, path, format!("expected {what}, found {}", node.value.kind()));
    }

    /// The node as an object whose keys will be checked; reports duplicates.
    pub fn object<'n>(&mut self, node: &'n Node, path: &str) -> Option<Obj<'n>> {
        let Value::Object(members) = &node.value else {
            self.expected(node, path, "an object");
            return None;
        };
        let mut used = vec![false; members.len()];
        for (i, (key, _)) in members.iter().enumerate() {
            if let Some(first) = members[..i].iter().find(|(k, _)| k.name == key.name) {
                self.error(
                    key.pos,
                    &join(path, &key.name),
                    format!(
                        "duplicate key \"{}\" (first at {}:{})",
                        key.name, first.0.pos.line, first.0.pos.col
                    ),
                );
                used[i] = true;
            }
        }
        Some(Obj {
            pos: node.pos,
            path: path.to_string(),
            members,
            used,
        })
    }

    /// A string value.
    pub fn string<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n str> {
        match &node.value {
            Value::String(s) => Some(s),
            _ => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    /// A string that must not be empty.
    pub fn nonempty<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n str> {
        let s = self.string(node, path)?;
        if s.is_empty() {
            self.error(node.pos, path, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// A boolean value.
    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.expected(node, path, "true or false");
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub fn integer(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        let Value::Number(text) = &node.value else {
            self.expected(node, path, "an integer");
            return None;
        };
        let Ok(n) = text.parse::<i64>() else {
            let whole = text.bytes().all(|b| b.is_ascii_digit() || b == b'-');
            let why = if whole {
                "is out of range"
            } else {
                "must be a whole number"
            };
            self.error(node.pos, path, format!("{text} {why} (between {min} and {max})"));
            return None;
        };
        if n < min || n > max {
            self.error(node.pos, path, format!("{n} is out of range (between {min} and {max})"));
            return None;
        }
        Some(n)
    }

    /// A Go duration string.
    pub fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let Value::String(text) = &node.value else {
            self.expected(node, path, "a duration string such as \"2s\"");
            return None;
        };
        match duration::parse(text) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(node.pos, path, message);
                None
            }
        }
    }

    /// A duration that must be more than zero.
    pub fn positive_duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let d = self.duration(node, path)?;
        if d.is_zero() {
            self.error(node.pos, path, "must be more than 0");
            return None;
        }
        Some(d)
    }

    /// An array of strings, each with its position and path.
    pub fn strings<'n>(&mut self, node: &'n Node, path: &str) -> Option<Vec<(&'n str, Pos, String)>> {
        let Value::Array(items) = &node.value else {
            self.expected(node, path, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            match self.string(item, &p) {
                Some(s) => out.push((s, item.pos, p)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// An object being checked: every key must be taken by [`Obj::take`] before [`Obj::finish`],
/// or it is reported as not supported.
pub struct Obj<'n> {
    /// Where the object starts.
    pub pos: Pos,
    /// Its JSON path.
    pub path: String,
    members: &'n [(Key, Node)],
    used: Vec<bool>,
}

impl<'n> Obj<'n> {
    /// The value of `key` (first occurrence) and its path; marks the key as known.
    pub fn take(&mut self, key: &str) -> Option<(&'n Node, String)> {
        let i = self.members.iter().position(|(k, _)| k.name == key)?;
        self.used[i] = true;
        Some((&self.members[i].1, join(&self.path, key)))
    }

    /// Like [`Obj::take`], but a missing key is an error.
    pub fn require(&mut self, c: &mut Checker, key: &str, what: &str) -> Option<(&'n Node, String)> {
        let found = self.take(key);
        if found.is_none() {
            c.error(self.pos, &self.path, format!("missing required key \"{key}\" ({what})"));
        }
        found
    }

    /// An optional array of strings under `key`; `default` when absent, `None` after an error.
    pub fn string_list(&mut self, c: &mut Checker, key: &str, default: &[&str]) -> Option<Vec<String>> {
        match self.take(key) {
            Some((n, p)) => Some(c.strings(n, &p)?.into_iter().map(|(s, _, _)| s.to_string()).collect()),
            None => Some(default.iter().map(|s| s.to_string()).collect()),
        }
    }

    /// The keys not taken yet, with their values, marking them as known.
    pub fn rest(&mut self) -> Vec<(&'n Key, &'n Node)> {
        let mut out = Vec::new();
        for (i, (k, v)) in self.members.iter().enumerate() {
            if !self.used[i] {
                self.used[i] = true;
                out.push((k, v));
            }
        }
        out
    }

    /// Reports every key that was not taken.
    pub fn finish(self, c: &mut Checker) {
        for (i, (key, _)) in self.members.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let path = join(&self.path, &key.name);
            let message = match KRAKEND_KEYS.iter().find(|(k, _)| *k == key.name) {
                Some((_, "")) => format!("KrakenD key \"{}\" is not supported by gatelet", key.name),
                Some((_, hint)) => format!("KrakenD key \"{}\" is not supported by gatelet; {hint}", key.name),
                None => format!("unknown key \"{}\": not supported by gatelet", key.name),
            };
            c.error(key.pos, &path, message);
        }
    }
}

/// `path.key`, or `key` at the root.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

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
    let name = obj.take("name").and_then(|(n, p)| c.string(n, &p)).map(str::to_string);
    let port = match obj.take("port") {
        Some((n, p)) => c.integer(n, &p, 0, 65535).map(|v| v as u16),
        None => Some(DEFAULT_PORT),
    };
    let listen_ip = match obj.take("listen_ip") {
        Some((n, p)) => c.string(n, &p).and_then(|s| match s.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                c.error(n.pos, &p, format!("\"{s}\" is not an IP address"));
                None
            }
        }),
        None => Some(IpAddr::from([0, 0, 0, 0])),
    };
    let timeout = match obj.take("timeout") {
        Some((n, p)) => c.positive_duration(n, &p),
        None => Some(DEFAULT_TIMEOUT),
    };
    let shutdown_grace = match obj.take("max_shutdown_wait_time") {
        Some((n, p)) => c.duration(n, &p),
        None => Some(Duration::from_secs(5)),
    };
    let mut timeouts = crate::http::limits::Timeouts::default();
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
    let cache_ttl = match obj.take("cache_ttl") {
        Some((n, p)) => cache_ttl(c, n, &p),
        None => Some(Duration::ZERO),
    };
    let output_encoding = match obj.take("output_encoding") {
        Some((n, p)) => output_encoding(c, n, &p),
        None => Some(OutputEncoding::Json),
    };
    let debug_endpoint = obj
        .take("debug_endpoint")
        .and_then(|(n, p)| c.boolean(n, &p))
        .unwrap_or(false);
    let echo_endpoint = obj
        .take("echo_endpoint")
        .and_then(|(n, p)| c.boolean(n, &p))
        .unwrap_or(false);
    let host_node = obj.take("host");
    let hosts_given = host_node.is_some();
    let hosts = host_node.and_then(|(n, p)| hosts(c, n, &p));
    #[cfg(feature = "tls")]
    let tls = obj.take("tls").and_then(|(n, p)| tls_config(c, n, &p));
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
        name,
        listen_ip: listen_ip?,
        port: port?,
        timeout: timeout?,
        cache_ttl: cache_ttl?,
        output_encoding: output_encoding?,
        debug_endpoint,
        echo_endpoint,
        router: extras.router,
        endpoints,
        sensors: extras.sensors,
        cors: extras.cors,
        api_keys: extras.api_keys,
        jwt_reject_unsynced_clock: extras.jwt_reject_unsynced_clock,
        shutdown_grace: shutdown_grace?,
        metrics: extras.metrics,
        log_level: extras.log_level,
        access_log: extras.access_log,
        max_connections: extras.max_connections,
        timeouts: crate::http::limits::Timeouts {
            body_idle: extras.body_idle_timeout.unwrap_or(timeouts.body_idle),
            ..timeouts
        },
        fleet: extras.fleet,
        dashboard,
        #[cfg(feature = "tls")]
        tls,
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

/// One of a fixed set of names (`supported`); `krakend_only` are KrakenD's other values, which
/// get "not supported by gatelet" rather than "unknown".
fn choice<T: Copy>(
    c: &mut Checker,
    node: &Node,
    path: &str,
    what: &str,
    supported: &[(&str, T)],
    krakend_only: &[&str],
) -> Option<T> {
    let s = c.string(node, path)?;
    if let Some((_, v)) = supported.iter().find(|(name, _)| *name == s) {
        return Some(*v);
    }
    let names = supported.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let m = if krakend_only.contains(&s) {
        format!("{what} \"{s}\" is not supported by gatelet ({names})")
    } else {
        format!("unknown {what} \"{s}\" ({names})")
    };
    c.error(node.pos, path, m);
    None
}

fn output_encoding(c: &mut Checker, node: &Node, path: &str) -> Option<OutputEncoding> {
    let supported = [
        ("json", OutputEncoding::Json),
        ("json-collection", OutputEncoding::JsonCollection),
        ("string", OutputEncoding::String),
        ("no-op", OutputEncoding::NoOp),
    ];
    choice(
        c,
        node,
        path,
        "output_encoding",
        &supported,
        &["negotiate", "fast-json", "xml", "yaml"],
    )
}

fn encoding(c: &mut Checker, node: &Node, path: &str) -> Option<Encoding> {
    let supported = [
        ("json", Encoding::Json),
        ("safejson", Encoding::SafeJson),
        ("string", Encoding::String),
        ("no-op", Encoding::NoOp),
    ];
    choice(
        c,
        node,
        path,
        "encoding",
        &supported,
        &["xml", "rss", "yaml", "fast-json"],
    )
}

fn method(c: &mut Checker, node: &Node, path: &str) -> Option<Method> {
    let s = c.string(node, path)?;
    match METHODS.iter().find(|m| m.as_str() == s) {
        Some(m) => Some(m.clone()),
        None => {
            let m = if METHODS.iter().any(|m| m.as_str().eq_ignore_ascii_case(s)) {
                format!("method \"{s}\" must be upper-case")
            } else {
                format!("method \"{s}\" is not supported (GET, POST, PUT, PATCH, DELETE)")
            };
            c.error(node.pos, path, m);
            None
        }
    }
}

fn hosts(c: &mut Checker, node: &Node, path: &str) -> Option<Vec<Host>> {
    let list = c.strings(node, path)?;
    if list.is_empty() {
        c.error(
            node.pos,
            path,
            "needs at least one host, e.g. [\"http://127.0.0.1:8000\"]",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (s, pos, p) in list {
        match host(s) {
            Ok(h) => out.push(h),
            Err(m) => {
                c.error(pos, &p, m);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Parses and resolves one `host` entry (`http://name:port`; a missing scheme means `http`).
pub fn host(s: &str) -> Result<Host, String> {
    let rest = if let Some(r) = s.strip_prefix("http://") {
        r
    } else if s.starts_with("https://") {
        return Err(format!(
            "\"{s}\": https backends are not supported by gatelet (plain HTTP on the bus; terminate TLS in front)"
        ));
    } else if let Some((scheme, _)) = s.split_once("://") {
        return Err(format!("\"{s}\": scheme \"{scheme}\" is not supported (http)"));
    } else {
        s
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if !tail.is_empty() && tail != "/" {
        return Err(format!(
            "\"{s}\": a path in host is not supported; put it in url_pattern"
        ));
    }
    if authority.is_empty() || authority.contains('@') || authority.contains(['?', '#']) {
        return Err(format!("\"{s}\" is not a host such as \"http://127.0.0.1:8000\""));
    }
    let parsed: http::uri::Authority = authority
        .parse()
        .map_err(|_| format!("\"{s}\" is not a host such as \"http://127.0.0.1:8000\""))?;
    let name = parsed.host();
    let port = match parsed.port() {
        Some(p) => p.as_u16(),
        None if authority.ends_with(':') => return Err(format!("\"{s}\": the port is missing after ':'")),
        None => 80,
    };
    if port == 0 {
        return Err(format!("\"{s}\": port 0 cannot be connected to"));
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let addr: SocketAddr = match bare.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (bare, port)
            .to_socket_addrs()
            .map_err(|e| format!("\"{s}\": cannot resolve \"{bare}\": {e}"))?
            .next()
            .ok_or_else(|| format!("\"{s}\": \"{bare}\" resolves to no address"))?,
    };
    let authority = if port == 80 {
        name.to_string()
    } else {
        format!("{name}:{port}")
    };
    Ok(Host { authority, addr })
}

/// A client connection time limit: more than zero (KrakenD's `0` means "no limit", which an
/// Internet-facing Pi cannot afford) and at most [`crate::http::limits::MAX_TIMEOUT`].
fn server_timeout(c: &mut Checker, node: &Node, path: &str) -> Option<Duration> {
    let d = c.duration(node, path)?;
    let max = crate::http::limits::MAX_TIMEOUT;
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
    log_level: Option<log::LevelFilter>,
    access_log: bool,
    max_connections: usize,
    body_idle_timeout: Option<Duration>,
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
            log_level: None,
            access_log: false,
            max_connections: crate::http::limits::DEFAULT_MAX_CONNECTIONS,
            body_idle_timeout: None,
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
    if let Some((n, p)) = obj.take("telemetry/logging")
        && let Some(mut l) = c.object(n, &p)
    {
        if let Some((n, p)) = l.take("level")
            && let Some(level) = c.string(n, &p)
        {
            x.log_level = match level {
                "DEBUG" => Some(log::LevelFilter::Debug),
                "INFO" => Some(log::LevelFilter::Info),
                "WARNING" => Some(log::LevelFilter::Warn),
                "ERROR" | "CRITICAL" => Some(log::LevelFilter::Error),
                other => {
                    c.error(
                        n.pos,
                        &p,
                        format!("unknown level \"{other}\" (DEBUG, INFO, WARNING, ERROR, CRITICAL)"),
                    );
                    None
                }
            };
        }
        l.finish(c);
    }
    if let Some((n, p)) = obj.take("gatelet/access-log")
        && let Some(a) = c.object(n, &p)
    {
        a.finish(c);
        x.access_log = true;
    }
    for namespace in ["gatelet/metrics", "telemetry/metrics"] {
        if let Some((n, p)) = obj.take(namespace)
            && let Some(m) = c.object(n, &p)
        {
            // No options: /__stats on the service's own port, always the same series.
            m.finish(c);
            x.metrics = true;
        }
    }
    if let Some((n, p)) = obj.take("gatelet/jwt")
        && let Some(mut j) = c.object(n, &p)
    {
        if let Some((n, p)) = j.take("unsynced_clock") {
            match c.string(n, &p) {
                Some("reject") => x.jwt_reject_unsynced_clock = true,
                Some("accept") => x.jwt_reject_unsynced_clock = false,
                Some(other) => c.error(
                    n.pos,
                    &p,
                    format!("unknown unsynced_clock \"{other}\" (reject, accept)"),
                ),
                None => {}
            }
        }
        j.finish(c);
    }
    if let Some((n, p)) = obj.take("gatelet/server")
        && let Some(mut srv) = c.object(n, &p)
    {
        if let Some((n, p)) = srv.take("max_connections")
            && let Some(max) = c.integer(n, &p, 1, crate::http::limits::MAX_MAX_CONNECTIONS as i64)
        {
            x.max_connections = max as usize;
        }
        if let Some((n, p)) = srv.take("body_idle_timeout") {
            x.body_idle_timeout = server_timeout(c, n, &p);
        }
        srv.finish(c);
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
                match crate::http::client_ip::Cidr::parse(entry) {
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
        r.finish(c);
    }
    // After `router`: the page may not take the health path.
    if let Some((n, p)) = obj.take("gatelet/dashboard") {
        x.dashboard = Some(super::dashboard::dashboard_config(c, n, &p, &x.router.health_path));
    }
    unsupported_namespaces(c, &mut obj);
    x
}

/// Reports every namespace left in an `extra_config` object.
fn unsupported_namespaces(c: &mut Checker, obj: &mut Obj) {
    for (key, _) in obj.rest() {
        let p = join(&obj.path, &key.name);
        c.error(
            key.pos,
            &p,
            format!("namespace \"{}\" is not supported by gatelet", key.name),
        );
    }
}

/// Checks an endpoint path; returns its parameter names.
fn endpoint_path(c: &mut Checker, node: &Node, path: &str, defaults: &Defaults) -> Option<()> {
    let s = c.string(node, path)?;
    let mut ok = true;
    let mut err = |c: &mut Checker, m: String| {
        c.error(node.pos, path, m);
        ok = false;
    };
    if !s.starts_with('/') {
        err(c, format!("\"{s}\" must start with '/'"));
        return None;
    }
    if let Some(bad) = s
        .chars()
        .find(|ch| ch.is_whitespace() || ch.is_control() || matches!(ch, '?' | '#' | '*'))
    {
        err(
            c,
            format!("\"{s}\": '{}' is not allowed in an endpoint path", bad.escape_default()),
        );
        return None;
    }
    let mut names: Vec<&str> = Vec::new();
    for segment in s.split('/').skip(1) {
        if router::is_param(segment) {
            let name = &segment[1..segment.len() - 1];
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                err(
                    c,
                    format!("\"{s}\": parameter {segment} must be letters, digits or '_'"),
                );
            } else if names.contains(&name) {
                err(c, format!("\"{s}\": parameter {segment} appears twice"));
            }
            names.push(name);
        } else if segment.contains(['{', '}']) {
            err(c, format!("\"{s}\": a parameter must be a whole segment, like /{{id}}"));
        }
    }
    if s.starts_with("/__") {
        err(
            c,
            format!("\"{s}\": paths starting with /__ are reserved for gatelet's built-in endpoints"),
        );
    } else if !defaults.router.disable_health && s == defaults.router.health_path {
        err(
            c,
            format!("\"{s}\" is the health path (extra_config.router.health_path)"),
        );
    }
    ok.then_some(())
}

fn forward(c: &mut Checker, node: &Node, path: &str, headers: bool) -> Option<Forward> {
    let list = c.strings(node, path)?;
    if list.iter().any(|(s, _, _)| *s == "*") {
        if list.len() > 1 {
            c.error(node.pos, path, "\"*\" (everything) must be the only entry");
            return None;
        }
        return Some(Forward::All);
    }
    let mut out = Vec::with_capacity(list.len());
    let mut ok = true;
    for (s, pos, p) in list {
        if headers {
            match http::HeaderName::from_bytes(s.as_bytes()) {
                Ok(h) => out.push(h.as_str().to_string()),
                Err(_) => {
                    c.error(pos, &p, format!("\"{s}\" is not a valid header name"));
                    ok = false;
                }
            }
        } else if s.is_empty() {
            c.error(pos, &p, "must not be empty");
            ok = false;
        } else {
            out.push(s.to_string());
        }
    }
    ok.then_some(Forward::Only(out))
}

fn endpoint(
    c: &mut Checker,
    node: &Node,
    path: &str,
    defaults: &Defaults,
    shapes: &mut HashMap<(Method, String), (usize, Pos)>,
    index: usize,
) -> Option<Endpoint> {
    let mut obj = c.object(node, path)?;
    let errors_before = c.errors.len();
    let route = obj.require(c, "endpoint", "the path, e.g. \"/bus/{id}\"");
    let path_ok = route
        .as_ref()
        .and_then(|(n, p)| endpoint_path(c, n, p, defaults).map(|_| *n));
    let method = match obj.take("method") {
        Some((n, p)) => method(c, n, &p),
        None => Some(Method::GET),
    };
    let output = match obj.take("output_encoding") {
        Some((n, p)) => output_encoding(c, n, &p),
        None => Some(defaults.output_encoding),
    };
    let timeout = match obj.take("timeout") {
        Some((n, p)) => c.positive_duration(n, &p),
        None => Some(defaults.timeout),
    };
    let cache = match obj.take("cache_ttl") {
        Some((n, p)) => cache_ttl(c, n, &p),
        None => Some(defaults.cache_ttl),
    };
    let input_headers = match obj.take("input_headers") {
        Some((n, p)) => forward(c, n, &p, true),
        None => Some(Forward::Only(vec!["content-type".to_string()])),
    };
    let input_query = match obj.take("input_query_strings") {
        Some((n, p)) => forward(c, n, &p, false),
        None => Some(Forward::Only(Vec::new())),
    };
    let concurrent = match obj.take("concurrent_calls") {
        Some((n, p)) => c.integer(n, &p, 1, MAX_CONCURRENT_CALLS).map(|v| v as u32),
        None => Some(1),
    };
    let mut rate_limit = None;
    let mut api_key_roles = None;
    let mut jwt = None;
    // Parameter names, for the `param` strategy (the path may be invalid: then none).
    let route_params: Vec<String> = match route.as_ref().map(|(n, _)| &n.value) {
        Some(Value::String(s)) => router::param_names(s).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    if let Some((n, p)) = obj.take("extra_config")
        && let Some(mut extra) = c.object(n, &p)
    {
        rate_limit = router_rate_limit(c, &mut extra, &route_params);
        if let Some((n, p)) = extra.take("auth/validator") {
            jwt = jwt_validator(c, n, &p);
        }
        if let Some((n, p)) = extra.take("gatelet/api-keys")
            && let Some(mut k) = c.object(n, &p)
        {
            let roles = k.string_list(c, "roles", &[]);
            k.finish(c);
            if !defaults.api_keys {
                c.error(
                    n.pos,
                    &p,
                    "needs keys: the service's extra_config.\"gatelet/api-keys\" defines none",
                );
            }
            api_key_roles = roles;
        }
        unsupported_namespaces(c, &mut extra);
    }
    // Duplicate shapes: same method and same path once parameter names are ignored.
    if let (Some(n), Some(m)) = (path_ok, &method)
        && let Value::String(s) = &n.value
    {
        let shape: String = s
            .split('/')
            .map(|seg| if router::is_param(seg) { "{}" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        match shapes.get(&(m.clone(), shape.clone())) {
            Some((first, pos)) => c.error(
                n.pos,
                &join(path, "endpoint"),
                format!(
                    "{m} \"{s}\" is already served by endpoints[{first}] (line {}): same method and path shape",
                    pos.line
                ),
            ),
            None => {
                shapes.insert((m.clone(), shape), (index, n.pos));
            }
        }
    }
    let params: Vec<String> = match path_ok.map(|n| &n.value) {
        Some(Value::String(s)) => router::param_names(s).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    let mut backends = Vec::new();
    if let Some((n, p)) = obj.require(c, "backend", "at least one backend") {
        match &n.value {
            Value::Array(items) if items.is_empty() => c.error(n.pos, &p, "needs at least one backend"),
            Value::Array(items) => {
                if output == Some(OutputEncoding::NoOp) && items.len() > 1 {
                    c.error(
                        n.pos,
                        &p,
                        "an endpoint with output_encoding \"no-op\" takes exactly one backend",
                    );
                }
                let ctx = BackendContext {
                    params: &params,
                    method: method.clone().unwrap_or(Method::GET),
                    output: output.unwrap_or(OutputEncoding::Json),
                    hosts: defaults.hosts,
                    hosts_given: defaults.hosts_given,
                    sensors: defaults.sensors,
                    sensor_names: defaults.sensor_names,
                    fleet: defaults.fleet,
                };
                for (j, item) in items.iter().enumerate() {
                    if let Some(b) = backend(c, item, &format!("{p}[{j}]"), &ctx) {
                        backends.push(b);
                    }
                }
                if items.len() > 1 && backends.iter().any(|b| b.sensor.is_some_and(|s| s.write)) {
                    c.error(
                        n.pos,
                        &p,
                        "an endpoint that writes to a sensor takes exactly one backend",
                    );
                }
            }
            _ => c.expected(n, &p, "an array of backends"),
        }
    }
    obj.finish(c);
    if c.errors.len() > errors_before {
        return None;
    }
    let Some((
        Node {
            value: Value::String(route),
            ..
        },
        _,
    )) = route
    else {
        return None;
    };
    Some(Endpoint {
        path: route.clone(),
        method: method?,
        backends,
        output_encoding: output?,
        timeout: timeout?,
        cache_ttl: cache?,
        input_headers: input_headers?,
        input_query_strings: input_query?,
        concurrent_calls: concurrent?,
        rate_limit,
        api_key_roles,
        jwt,
    })
}

/// What a backend needs from its endpoint.
struct BackendContext<'a> {
    params: &'a [String],
    method: Method,
    output: OutputEncoding,
    hosts: Option<&'a [Host]>,
    hosts_given: bool,
    sensors: &'a [Sensor],
    sensor_names: &'a [String],
    fleet: bool,
}

fn url_pattern(c: &mut Checker, node: &Node, path: &str, params: &[String]) -> Option<String> {
    let s = c.string(node, path)?;
    if !s.starts_with('/') {
        c.error(node.pos, path, format!("\"{s}\" must start with '/'"));
        return None;
    }
    if let Some(bad) = s.chars().find(|ch| ch.is_whitespace() || ch.is_control() || *ch == '#') {
        c.error(
            node.pos,
            path,
            format!("\"{s}\": '{}' is not allowed in url_pattern", bad.escape_default()),
        );
        return None;
    }
    // Sent as the backend request's target with parameters filled in (client path segments,
    // themselves valid there): one the URI parser refuses (`<`, `>`, `` ` ``) would silently
    // become "/" in `endpoint::request`.
    if s.parse::<http::uri::PathAndQuery>().is_err() {
        c.error(
            node.pos,
            path,
            format!("\"{s}\" is not a valid request target (percent-encode what it needs)"),
        );
        return None;
    }
    let mut rest = s;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            c.error(node.pos, path, format!("\"{s}\": '}}' without '{{'"));
            return None;
        }
        let Some(len) = rest[open..].find('}') else {
            c.error(node.pos, path, format!("\"{s}\": '{{' without '}}'"));
            return None;
        };
        let name = &rest[open + 1..open + len];
        if !params.iter().any(|p| p == name) {
            let known = if params.is_empty() {
                "the endpoint has no parameters".to_string()
            } else {
                format!(
                    "the endpoint has {}",
                    params.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ")
                )
            };
            c.error(
                node.pos,
                path,
                format!("\"{s}\": {{{name}}} is not a parameter of the endpoint ({known})"),
            );
            return None;
        }
        rest = &rest[open + len + 1..];
    }
    Some(s.to_string())
}

fn dot_path(c: &mut Checker, s: &str, pos: Pos, path: &str) -> Option<Vec<String>> {
    if s.is_empty() || s.split('.').any(str::is_empty) {
        c.error(pos, path, format!("\"{s}\" is not a dot path such as \"data.items\""));
        return None;
    }
    Some(s.split('.').map(str::to_string).collect())
}

fn dot_paths(c: &mut Checker, node: &Node, path: &str) -> Option<Vec<Vec<String>>> {
    let list = c.strings(node, path)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (s, pos, p) in list {
        match dot_path(c, s, pos, &p) {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn backend(c: &mut Checker, node: &Node, path: &str, ctx: &BackendContext) -> Option<Backend> {
    let mut obj = c.object(node, path)?;
    let errors_before = c.errors.len();
    // `extra_config` first: a sensor backend has no host and no url_pattern.
    let mut rate_limit = None;
    let mut breaker = None;
    let mut cache = None;
    let mut retry = None;
    let mut sensor = None;
    let mut fleet = false;
    if let Some((n, p)) = obj.take("extra_config")
        && let Some(mut extra) = c.object(n, &p)
    {
        if let Some((n, p)) = extra.take("qos/ratelimit/proxy")
            && let Some(mut q) = c.object(n, &p)
        {
            let every = every(c, &mut q);
            rate_limit = bucket(c, &mut q, "max_rate", "capacity", every, true).flatten();
            q.finish(c);
        }
        if let Some((n, p)) = extra.take("qos/circuit-breaker") {
            breaker = circuit_breaker(c, n, &p);
        }
        if let Some((n, p)) = extra.take("qos/http-cache") {
            if ctx.method != Method::GET {
                c.error(n.pos, &p, "the cache keeps GET answers only");
            }
            cache = http_cache(c, n, &p);
        }
        if let Some((n, p)) = extra.take("gatelet/retry") {
            if ctx.method != Method::GET {
                c.error(n.pos, &p, "retries are for idempotent GETs only");
            }
            retry = retry_config(c, n, &p);
        }
        if let Some((n, p)) = extra.take("gatelet/fleet") {
            if let Some(f) = c.object(n, &p) {
                f.finish(c);
            }
            if !ctx.fleet {
                c.error(n.pos, &p, "needs the service's extra_config.\"gatelet/fleet\" members");
            }
            if ctx.output == OutputEncoding::NoOp {
                c.error(
                    n.pos,
                    &p,
                    "a fleet answer is merged JSON: it cannot be passed through \"no-op\"",
                );
            }
            fleet = true;
        }
        if let Some((n, p)) = extra.take("gatelet/sensor") {
            sensor = Some(super::sensors::backend(
                c,
                n,
                &p,
                ctx.sensors,
                ctx.sensor_names,
                &ctx.method,
            ));
            if ctx.output == OutputEncoding::NoOp {
                c.error(
                    n.pos,
                    &p,
                    "a sensor reading is JSON: it cannot be passed through \"no-op\"",
                );
            }
        }
        unsupported_namespaces(c, &mut extra);
    }
    if let Some(sensor) = sensor {
        for key in ["host", "url_pattern", "encoding", "sd", "method"] {
            if let Some((n, p)) = obj.take(key) {
                c.error(n.pos, &p, "has no effect on a \"gatelet/sensor\" backend");
            }
        }
        let shape = shape(c, &mut obj, Encoding::Json);
        if sensor.is_some_and(|s| s.write) && shape != Shape::default() {
            c.error(
                obj.pos,
                path,
                "target, allow, deny, mapping and group have no effect on a sensor write",
            );
        }
        obj.finish(c);
        if c.errors.len() > errors_before {
            return None;
        }
        let sensor = sensor?;
        return Some(Backend {
            hosts: Vec::new(),
            url_pattern: format!("sensor {}", ctx.sensors[sensor.sensor].name),
            method: ctx.method.clone(),
            encoding: Encoding::Json,
            shape,
            input_headers: None,
            input_query_strings: None,
            rate_limit,
            breaker,
            cache,
            retry,
            sensor: Some(sensor),
            fleet: false,
        });
    }
    let mut hosts = match obj.take("host") {
        Some((n, _)) if fleet => {
            c.error(
                n.pos,
                &join(path, "host"),
                "has no effect: a fleet backend calls every member",
            );
            None
        }
        None if fleet => Some(Vec::new()),
        Some((n, p)) => hosts(c, n, &p),
        None => match ctx.hosts {
            Some(h) => Some(h.to_vec()),
            None if ctx.hosts_given => None,
            None => {
                c.error(
                    obj.pos,
                    path,
                    "missing required key \"host\" (and the service sets no default \"host\")",
                );
                None
            }
        },
    };
    if let Some((n, p)) = obj.take("sd")
        && let Some(s) = c.string(n, &p)
        && s != "static"
    {
        c.error(
            n.pos,
            &p,
            format!("service discovery \"{s}\" is not supported by gatelet (static)"),
        );
        hosts = None;
    }
    if let Some((n, p)) = obj.take("disable_host_sanitize") {
        // Hosts are always parsed strictly; the flag only matters to KrakenD's rewriting.
        c.boolean(n, &p);
    }
    let url = obj
        .require(c, "url_pattern", "the backend path, e.g. \"/status\"")
        .and_then(|(n, p)| url_pattern(c, n, &p, ctx.params));
    let method = match obj.take("method") {
        Some((n, p)) => method(c, n, &p),
        None => Some(ctx.method.clone()),
    };
    let default_encoding = if ctx.output == OutputEncoding::NoOp {
        Encoding::NoOp
    } else {
        Encoding::Json
    };
    let encoding = match obj.take("encoding") {
        Some((n, p)) => {
            let e = encoding(c, n, &p);
            match e {
                Some(Encoding::NoOp) if ctx.output != OutputEncoding::NoOp => c.error(
                    n.pos,
                    &p,
                    "encoding \"no-op\" needs output_encoding \"no-op\" on the endpoint (the body is not decoded)",
                ),
                Some(e) if e != Encoding::NoOp && ctx.output == OutputEncoding::NoOp => c.error(
                    n.pos,
                    &p,
                    "an endpoint with output_encoding \"no-op\" passes the body through: use encoding \"no-op\"",
                ),
                _ => {}
            }
            e
        }
        None => Some(default_encoding),
    };
    let shape = shape(c, &mut obj, encoding.unwrap_or(Encoding::Json));
    let input_headers = match obj.take("input_headers") {
        Some((n, p)) => forward(c, n, &p, true).map(Some),
        None => Some(None),
    };
    let input_query = match obj.take("input_query_strings") {
        Some((n, p)) => forward(c, n, &p, false).map(Some),
        None => Some(None),
    };
    obj.finish(c);
    if c.errors.len() > errors_before {
        return None;
    }
    Some(Backend {
        rate_limit,
        breaker,
        cache,
        retry,
        sensor: None,
        fleet,
        hosts: hosts?,
        url_pattern: url?,
        method: method?,
        encoding: encoding?,
        shape,
        input_headers: input_headers?,
        input_query_strings: input_query?,
    })
}

/// A positive decimal such as `5` or `0.5`, exactly, as `numerator / denominator` with the
/// denominator a power of ten (at most 10⁹).
fn decimal(c: &mut Checker, node: &Node, path: &str) -> Option<(u64, u64)> {
    let Value::Number(text) = &node.value else {
        c.expected(node, path, "a number");
        return None;
    };
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let plain = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if !plain(int) || !plain(frac) || frac.len() > 9 {
        c.error(
            node.pos,
            path,
            format!("{text} must be a plain positive number such as 5 or 0.5"),
        );
        return None;
    }
    let den = 10u64.pow(frac.len() as u32);
    let num = int
        .parse::<u64>()
        .ok()
        .and_then(|i| i.checked_mul(den))
        .and_then(|i| i.checked_add(if frac.is_empty() { 0 } else { frac.parse().ok()? }));
    match num {
        Some(0) => {
            c.error(node.pos, path, "must be more than 0");
            None
        }
        Some(n) => Some((n, den)),
        None => {
            c.error(node.pos, path, format!("{text} is too large"));
            None
        }
    }
}

/// `every` (default 1s, more than 0), in nanoseconds.
fn every(c: &mut Checker, obj: &mut Obj) -> Option<u64> {
    match obj.take("every") {
        Some((n, p)) => {
            let d = c.positive_duration(n, &p)?;
            match u64::try_from(d.as_nanos()) {
                Ok(ns) => Some(ns),
                Err(_) => {
                    c.error(n.pos, &p, "is too long");
                    None
                }
            }
        }
        None => Some(1_000_000_000),
    }
}

/// One bucket from `rate_key` and `capacity_key` (default: the rate's whole part, at least 1).
/// `Some(None)` when `rate_key` is absent; `None` after an error. With `required`, a missing
/// rate is an error.
fn bucket(
    c: &mut Checker,
    obj: &mut Obj,
    rate_key: &str,
    capacity_key: &str,
    every: Option<u64>,
    required: bool,
) -> Option<Option<Rate>> {
    let capacity_node = obj.take(capacity_key);
    let rate_node = obj.take(rate_key);
    let capacity = match capacity_node {
        Some((n, p)) => c.integer(n, &p, 1, MAX_CAPACITY).map(|v| Some((v as u64, n.pos, p))),
        None => Some(None),
    };
    let Some((n, p)) = rate_node else {
        if required {
            c.error(obj.pos, &obj.path, format!("missing required key \"{rate_key}\""));
            return None;
        }
        if let Some(Some((_, pos, p))) = capacity {
            c.error(pos, &p, format!("has no effect without \"{rate_key}\""));
            return None;
        }
        return capacity.map(|_| None);
    };
    let (num, den) = decimal(c, n, &p)?;
    let (capacity, every) = (capacity?, every?);
    let capacity = capacity.map_or((num / den).max(1), |(cap, _, _)| cap);
    let Some(period) = every.checked_mul(den) else {
        c.error(n.pos, &p, "rate and every are too fine-grained together");
        return None;
    };
    match Rate::new(num, capacity, period) {
        Ok(rate) => Some(Some(rate)),
        Err(_) => {
            c.error(
                n.pos,
                &p,
                "capacity × every is too large for the bucket (at most 584 years of tokens)",
            );
            None
        }
    }
}

/// An endpoint's `qos/ratelimit/router` and `gatelet/ratelimit` namespaces, taken from `extra`.
fn router_rate_limit(c: &mut Checker, extra: &mut Obj, params: &[String]) -> Option<RateLimit> {
    let errors_before = c.errors.len();
    let mut limit = None;
    if let Some((n, p)) = extra.take("qos/ratelimit/router")
        && let Some(mut q) = c.object(n, &p)
    {
        let every = every(c, &mut q);
        let endpoint = bucket(c, &mut q, "max_rate", "capacity", every, false);
        let client = bucket(c, &mut q, "client_max_rate", "client_capacity", every, false);
        let strategy = strategy(c, &mut q, params);
        if let (Some(None), Some(None)) = (&endpoint, &client) {
            c.error(
                q.pos,
                &p,
                "sets neither \"max_rate\" nor \"client_max_rate\": it limits nothing",
            );
        }
        if let (Some(None), Some((pos, p))) = (&client, &strategy.1) {
            c.error(*pos, p, "has no effect without \"client_max_rate\"");
        }
        q.finish(c);
        if let (Some(endpoint), Some(client), Some(strategy)) = (endpoint, client, strategy.0) {
            limit = Some(RateLimit {
                endpoint,
                client: client.map(|rate| (rate, strategy)),
                max_clients: DEFAULT_MAX_CLIENTS,
            });
        }
    }
    if let Some((n, p)) = extra.take("gatelet/ratelimit")
        && let Some(mut g) = c.object(n, &p)
    {
        if let Some((n, p)) = g.take("max_clients")
            && let Some(max) = c.integer(n, &p, 1, MAX_MAX_CLIENTS)
        {
            match &mut limit {
                Some(l) if l.client.is_some() => l.max_clients = max as usize,
                _ if c.errors.len() > errors_before => {}
                _ => c.error(
                    n.pos,
                    &p,
                    "has no effect without \"qos/ratelimit/router\" client_max_rate",
                ),
            }
        }
        g.finish(c);
    }
    limit
}

/// `strategy` and `key`; the second part is where they were set, for "no effect" errors.
fn strategy(c: &mut Checker, q: &mut Obj, params: &[String]) -> (Option<Strategy>, Option<(Pos, String)>) {
    let name = q.take("strategy");
    let key = q.take("key");
    let at = name.as_ref().or(key.as_ref()).map(|(n, p)| (n.pos, p.clone()));
    let kind = match &name {
        Some((n, p)) => match c.string(n, p) {
            Some(s @ ("ip" | "header" | "param")) => s,
            Some(s) => {
                c.error(n.pos, p, format!("unknown strategy \"{s}\" (ip, header, param)"));
                return (None, at);
            }
            None => return (None, at),
        },
        None => "ip",
    };
    let key = match &key {
        Some((n, p)) => match c.nonempty(n, p) {
            Some(k) => Some((k, n.pos, p.as_str())),
            None => return (None, at),
        },
        None => None,
    };
    let header = |c: &mut Checker, (k, pos, p): (&str, Pos, &str)| match http::HeaderName::from_bytes(k.as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            c.error(pos, p, format!("\"{k}\" is not a valid header name"));
            None
        }
    };
    let strategy = match (kind, key) {
        ("ip", None) => Some(Strategy::Ip(None)),
        ("ip", Some(k)) => header(c, k).map(|h| Strategy::Ip(Some(h))),
        ("header", Some(k)) => header(c, k).map(Strategy::Header),
        (_, Some((k, pos, p))) => match params.iter().position(|name| name == k) {
            Some(i) => Some(Strategy::Param(i)),
            None => {
                c.error(pos, p, format!("\"{k}\" is not a parameter of the endpoint path"));
                None
            }
        },
        (kind, None) => {
            let (pos, p) = at.clone().unwrap_or_default();
            c.error(pos, &p, format!("strategy \"{kind}\" needs \"key\" (the {kind} name)"));
            None
        }
    };
    (strategy, at)
}

/// `is_collection`, `target`, `allow`, `deny`, `mapping`, `group` of a backend; all of them are
/// errors with `no-op` encoding, where the body is never decoded.
fn shape(c: &mut Checker, obj: &mut Obj, encoding: Encoding) -> Shape {
    let mut shape = Shape::default();
    let mut shaping: Vec<(Pos, String)> = Vec::new();
    if let Some((n, p)) = obj.take("is_collection") {
        shape.is_collection = c.boolean(n, &p).unwrap_or(false);
        if shape.is_collection {
            shaping.push((n.pos, p));
        }
    }
    if let Some((n, p)) = obj.take("target") {
        if let Some(s) = c.string(n, &p) {
            shape.target = dot_path(c, s, n.pos, &p).unwrap_or_default();
        }
        shaping.push((n.pos, p));
    }
    if let Some((n, p)) = obj.take("allow") {
        shape.allow = dot_paths(c, n, &p).unwrap_or_default();
        shaping.push((n.pos, p));
    }
    if let Some((n, p)) = obj.take("deny") {
        shape.deny = dot_paths(c, n, &p).unwrap_or_default();
        shaping.push((n.pos, p));
    }
    if let Some((n, p)) = obj.take("mapping")
        && let Some(mut m) = c.object(n, &p)
    {
        for (key, value) in m.rest() {
            let kp = join(&p, &key.name);
            if key.name.is_empty() {
                c.error(key.pos, &kp, "must not be empty");
            } else if let Some(to) = c.nonempty(value, &kp) {
                shape.mapping.push((key.name.clone(), to.to_string()));
            }
        }
        m.finish(c);
        shaping.push((n.pos, p));
    }
    if let Some((n, p)) = obj.take("group") {
        shape.group = c.nonempty(n, &p).map(str::to_string);
        shaping.push((n.pos, p));
    }
    if encoding == Encoding::NoOp {
        for (pos, p) in shaping {
            c.error(
                pos,
                &p,
                "has no effect with \"no-op\" encoding (the body is passed through undecoded)",
            );
        }
    }
    shape
}

/// KrakenD's `security/cors`, with its defaults.
fn cors_config(c: &mut Checker, node: &Node, path: &str) -> Option<Cors> {
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
fn api_keys_config(c: &mut Checker, node: &Node, path: &str) -> Option<ApiKeys> {
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
fn jwt_validator(c: &mut Checker, node: &Node, path: &str) -> Option<crate::auth::jwt::Validator> {
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
        let text = match super::read_named_file(file) {
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
fn tls_config(c: &mut Checker, node: &Node, path: &str) -> Option<std::sync::Arc<rustls::ServerConfig>> {
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

/// A duration given as KrakenD's integer seconds or as a Go duration string; more than zero.
fn seconds_or_duration(c: &mut Checker, node: &Node, path: &str) -> Option<Duration> {
    match &node.value {
        Value::Number(_) => c
            .integer(node, path, 1, 86_400 * 365)
            .map(|s| Duration::from_secs(s as u64)),
        _ => c.positive_duration(node, path),
    }
}

/// KrakenD's `qos/circuit-breaker`: `interval`, `timeout` (seconds or durations), `max_errors`,
/// `name`, `log_status_change`.
fn circuit_breaker(c: &mut Checker, node: &Node, path: &str) -> Option<(crate::breaker::Settings, bool)> {
    let mut obj = c.object(node, path)?;
    let interval = obj
        .require(c, "interval", "seconds over which errors are counted")
        .and_then(|(n, p)| seconds_or_duration(c, n, &p));
    let timeout = obj
        .require(c, "timeout", "seconds the circuit stays open")
        .and_then(|(n, p)| seconds_or_duration(c, n, &p));
    let max_errors = obj
        .require(c, "max_errors", "consecutive errors that open it")
        .and_then(|(n, p)| c.integer(n, &p, 1, 1_000_000));
    if let Some((n, p)) = obj.take("name") {
        c.string(n, &p);
    }
    let log = match obj.take("log_status_change") {
        Some((n, p)) => c.boolean(n, &p),
        None => Some(false),
    };
    obj.finish(c);
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    Some((
        crate::breaker::Settings {
            interval: ns(interval?),
            timeout: ns(timeout?),
            max_errors: max_errors? as u32,
        },
        log?,
    ))
}

/// KrakenD's `qos/http-cache`: `shared` (all gatelet caches are shared), `max_items` and
/// `max_size` (bytes), given together or not at all.
fn http_cache(c: &mut Checker, node: &Node, path: &str) -> Option<crate::cache::Bounds> {
    let mut obj = c.object(node, path)?;
    if let Some((n, p)) = obj.take("shared") {
        c.boolean(n, &p);
    }
    let items = obj
        .take("max_items")
        .map(|(n, p)| (c.integer(n, &p, 1, 100_000), n.pos, p));
    let size = obj
        .take("max_size")
        .map(|(n, p)| (c.integer(n, &p, 1024, 256 << 20), n.pos, p));
    obj.finish(c);
    match (items, size) {
        (None, None) => Some(crate::cache::DEFAULT_BOUNDS),
        (Some((items, _, _)), Some((size, _, _))) => Some(crate::cache::Bounds {
            max_items: items? as usize,
            max_size: size? as usize,
        }),
        (Some((_, pos, p)), None) | (None, Some((_, pos, p))) => {
            c.error(pos, &p, "max_items and max_size go together");
            None
        }
    }
}

/// Our `gatelet/retry`: `attempts` (1 or 2, default 2), `backoff` (full jitter up to it,
/// default 100ms).
fn retry_config(c: &mut Checker, node: &Node, path: &str) -> Option<(u32, Duration)> {
    let mut obj = c.object(node, path)?;
    let attempts = match obj.take("attempts") {
        Some((n, p)) => c.integer(n, &p, 1, 2).map(|v| v as u32),
        None => Some(2),
    };
    let backoff = match obj.take("backoff") {
        Some((n, p)) => c.duration(n, &p),
        None => Some(Duration::from_millis(100)),
    };
    obj.finish(c);
    Some((attempts?, backoff?))
}
