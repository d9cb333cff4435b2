//! Backends: hosts (names left for resolution), `url_pattern` with its parameters and
//! placeholders (`{JWT.claim}`, `{respN_field}`), the data manipulation keys (`target`,
//! `allow`/`deny`, `mapping`, `group`, `proxy.flatmap_filter`) and the backend-level
//! namespaces (sensor, fleet, rate limit, breaker, cache, retry).

use super::*;

pub(super) fn hosts(c: &mut Checker, node: &Node, path: &str) -> Option<Vec<Host>> {
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
        match host(c, s, pos, &p) {
            Some(h) => out.push(h),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// Checks one `host` entry (`http://name:port`; a missing scheme means `http`) written at
/// `pos`, `path`. An IP address is the host's address; a name is left for resolution to look
/// up, with an unspecified address until then.
pub fn host(c: &mut Checker, s: &str, pos: Pos, path: &str) -> Option<Host> {
    match parse_host(s) {
        Ok((host, None)) => Some(host),
        Ok((host, Some(name))) => {
            c.unresolved.lookups.push(Lookup {
                entry: s.to_string(),
                name,
                port: host.addr.port(),
                authority: host.authority.clone(),
                at: Site::new(pos, path),
            });
            Some(host)
        }
        Err(m) => {
            c.error(pos, path, m);
            None
        }
    }
}

/// The host of an entry, and the name to look up unless it is an IP address.
fn parse_host(s: &str) -> Result<(Host, Option<String>), String> {
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
    let ip = bare.parse::<IpAddr>().ok();
    let authority = if port == 80 {
        name.to_string()
    } else {
        format!("{name}:{port}")
    };
    let addr = SocketAddr::new(ip.unwrap_or(IpAddr::from([0, 0, 0, 0])), port);
    let lookup = ip.is_none().then(|| bare.to_string());
    Ok((Host { authority, addr }, lookup))
}

/// What a backend needs from its endpoint.
pub(super) struct BackendContext<'a> {
    pub(super) params: &'a [String],
    pub(super) method: Method,
    pub(super) output: OutputEncoding,
    pub(super) hosts: Option<&'a [Host]>,
    pub(super) hosts_given: bool,
    pub(super) sensors: &'a [Sensor],
    pub(super) sensor_names: &'a [String],
    pub(super) fleet: bool,
    /// The service has `gatelet/outbox` / `gatelet/inbox`.
    pub(super) outbox: bool,
    pub(super) inbox: bool,
    /// This backend's index in the endpoint's list.
    pub(super) index: usize,
    /// `proxy.sequential`: `{respN_field}` may read earlier backends.
    pub(super) sequential: bool,
    /// The endpoint has `auth/validator`: `{JWT.claim}` may be used.
    pub(super) jwt: bool,
}

pub(super) fn url_pattern(c: &mut Checker, node: &Node, path: &str, ctx: &BackendContext) -> Option<String> {
    let params = ctx.params;
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
        let names: Vec<&str> = params.iter().map(String::as_str).collect();
        if let Some(m) = placeholder_problem(path::placeholder(name, &names), ctx) {
            c.error(node.pos, path, format!("\"{s}\": {{{name}}}: {m}"));
            return None;
        }
        if matches!(path::placeholder(name, &names), path::Placeholder::Unknown) {
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

/// Why a `{JWT.claim}` or `{respN_field}` cannot be used where it is written.
fn placeholder_problem(placeholder: path::Placeholder, ctx: &BackendContext) -> Option<String> {
    match placeholder {
        path::Placeholder::Var(Var::Jwt(_)) if !ctx.jwt => {
            Some("claims are only known on an endpoint with extra_config.\"auth/validator\"".into())
        }
        path::Placeholder::Var(Var::Resp { backend, .. }) | path::Placeholder::WholeResp(backend) if !ctx.sequential => {
            Some(format!(
                "backend {backend}'s answer is only known with extra_config.proxy.sequential: true"
            ))
        }
        path::Placeholder::Var(Var::Resp { backend, .. }) | path::Placeholder::WholeResp(backend)
            if backend >= ctx.index =>
        {
            Some(format!(
                "backend {backend} is not called before this one (backend {})",
                ctx.index
            ))
        }
        path::Placeholder::WholeResp(_) => Some(
            "a whole answer cannot go into a URL; name a field, e.g. {resp0_id} (gatelet has no no-op backends in a merge)"
                .into(),
        ),
        _ => None,
    }
}

pub(super) fn dot_path(c: &mut Checker, s: &str, pos: Pos, path: &str) -> Option<Vec<String>> {
    if s.is_empty() || s.split('.').any(str::is_empty) {
        c.error(pos, path, format!("\"{s}\" is not a dot path such as \"data.items\""));
        return None;
    }
    Some(s.split('.').map(str::to_string).collect())
}

pub(super) fn dot_paths(c: &mut Checker, node: &Node, path: &str) -> Option<Vec<Vec<String>>> {
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

pub(super) fn backend(c: &mut Checker, node: &Node, path: &str, ctx: &BackendContext) -> Option<Backend> {
    let mut obj = c.object(node, path)?;
    let errors_before = c.errors.len();
    // `extra_config` first: a sensor backend has no host and no url_pattern.
    let mut rate_limit = None;
    let mut breaker = None;
    let mut cache = None;
    let mut retry = None;
    let mut sensor = None;
    let mut fleet = false;
    let mut store = None;
    let mut flatmap = None;
    let (mut return_error_code, mut return_error_details) = (false, None);
    let mut redirects = Redirects::default();
    // Where `backend/http` or `backend/http/client` is written: neither applies to a sensor
    // or a fleet fan-out.
    let mut http_at: Vec<(Pos, String)> = Vec::new();
    if let Some((n, p)) = obj.take("extra_config")
        && let Some(mut extra) = c.object(n, &p)
    {
        if let Some((n, p)) = extra.take("proxy") {
            flatmap = backend_proxy(c, n, &p);
        }
        if let Some((n, p)) = extra.take("qos/ratelimit/proxy")
            && let Some(mut q) = c.object(n, &p)
        {
            let every = every(c, &mut q);
            rate_limit = bucket(c, &mut q, "max_rate", "capacity", every, true).flatten();
            q.finish(c);
        }
        if let Some((n, p)) = extra.take("qos/circuit-breaker") {
            if ctx.output == OutputEncoding::NoOp {
                c.error(
                    n.pos,
                    &p,
                    "gatelet does not apply circuit breakers to a \"no-op\" pass-through",
                );
            }
            breaker = circuit_breaker(c, n, &p);
        }
        if let Some((n, p)) = extra.take("qos/http-cache") {
            if ctx.output == OutputEncoding::NoOp {
                c.error(n.pos, &p, "a \"no-op\" pass-through is streamed, never cached");
            } else if ctx.method != Method::GET {
                c.error(n.pos, &p, "the cache keeps GET answers only");
            }
            cache = http_cache(c, n, &p);
        }
        if let Some((n, p)) = extra.take("gatelet/retry") {
            if ctx.output == OutputEncoding::NoOp {
                c.error(
                    n.pos,
                    &p,
                    "a \"no-op\" pass-through is streamed as it arrives: it is not retried",
                );
            } else if ctx.method != Method::GET {
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
            sensor = Some(super::super::sensors::backend(
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
        for (key, kind, defined, methods) in [
            ("gatelet/outbox", Store::Outbox, ctx.outbox, &[Method::POST][..]),
            (
                "gatelet/inbox",
                Store::Inbox,
                ctx.inbox,
                &[Method::POST, Method::GET][..],
            ),
        ] {
            if let Some((n, p)) = extra.take(key) {
                super::super::outbox::store_backend(c, n, &p, key, defined, methods, &ctx.method);
                if ctx.output == OutputEncoding::NoOp {
                    c.error(n.pos, &p, format!("a \"{key}\" backend answers JSON: not \"no-op\""));
                }
                if store.is_some() || sensor.is_some() || fleet {
                    c.error(
                        n.pos,
                        &p,
                        "a backend has one source: hosts, a sensor, the fleet, the outbox or the inbox",
                    );
                }
                store = Some(kind);
            }
        }
        if let Some((n, p)) = extra.take("backend/http") {
            (return_error_code, return_error_details) = backend_http(c, n, &p, ctx.output);
            http_at.push((n.pos, p));
        }
        if let Some((n, p)) = extra.take("backend/http/client") {
            redirects = http_client(c, n, &p);
            http_at.push((n.pos, p));
        }
        unsupported_namespaces(c, &mut extra);
    }
    if let Some(store) = store {
        let what = match store {
            Store::Outbox => "gatelet/outbox",
            Store::Inbox => "gatelet/inbox",
        };
        for (pos, p) in &http_at {
            c.error(*pos, p, format!("has no effect on a \"{what}\" backend"));
        }
        for key in ["host", "url_pattern", "encoding", "sd", "method"] {
            if let Some((n, p)) = obj.take(key) {
                c.error(n.pos, &p, format!("has no effect on a \"{what}\" backend"));
            }
        }
        let shape = shape(c, &mut obj, Encoding::Json);
        if shape != Shape::default() {
            c.error(
                obj.pos,
                path,
                format!("target, allow, deny, mapping and group have no effect on a \"{what}\" backend"),
            );
        }
        for (what_else, given) in [
            ("qos/http-cache", cache.is_some()),
            ("qos/circuit-breaker", breaker.is_some()),
            ("gatelet/retry", retry.is_some()),
            ("proxy", flatmap.is_some()),
        ] {
            if given {
                c.error(
                    obj.pos,
                    path,
                    format!("\"{what_else}\" has no effect on a \"{what}\" backend"),
                );
            }
        }
        obj.finish(c);
        if c.errors.len() > errors_before {
            return None;
        }
        return Some(Backend {
            rate_limit,
            store: Some(store),
            redirects,
            ..served_here(what.to_string(), ctx, shape)
        });
    }
    if sensor.is_some() || fleet {
        let what = if fleet { "gatelet/fleet" } else { "gatelet/sensor" };
        for (pos, p) in &http_at {
            c.error(*pos, p, format!("has no effect on a \"{what}\" backend"));
        }
    }
    if let Some(sensor) = sensor {
        for key in ["host", "url_pattern", "encoding", "sd", "method"] {
            if let Some((n, p)) = obj.take(key) {
                c.error(n.pos, &p, "has no effect on a \"gatelet/sensor\" backend");
            }
        }
        let mut shape = shape(c, &mut obj, Encoding::Json);
        with_flatmap(c, &mut shape, flatmap, Encoding::Json);
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
            rate_limit,
            breaker,
            cache,
            retry,
            sensor: Some(sensor),
            return_error_code,
            return_error_details,
            redirects,
            ..served_here(format!("sensor {}", ctx.sensors[sensor.sensor].name), ctx, shape)
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
        .and_then(|(n, p)| url_pattern(c, n, &p, ctx));
    let method = obj.optional(c, "method", ctx.method.clone(), method);
    let default_encoding = if ctx.output == OutputEncoding::NoOp {
        Encoding::NoOp
    } else {
        Encoding::Json
    };
    let encoding = obj.optional(c, "encoding", default_encoding, |c, n, p| {
        let e = encoding(c, n, p);
        match e {
            Some(Encoding::NoOp) if ctx.output != OutputEncoding::NoOp => c.error(
                n.pos,
                p,
                "encoding \"no-op\" needs output_encoding \"no-op\" on the endpoint (the body is not decoded)",
            ),
            Some(e) if e != Encoding::NoOp && ctx.output == OutputEncoding::NoOp => c.error(
                n.pos,
                p,
                "an endpoint with output_encoding \"no-op\" passes the body through: use encoding \"no-op\"",
            ),
            _ => {}
        }
        e
    });
    let mut shape = shape(c, &mut obj, encoding.unwrap_or(Encoding::Json));
    with_flatmap(c, &mut shape, flatmap, encoding.unwrap_or(Encoding::Json));
    let input_headers = obj.optional(c, "input_headers", None, |c, n, p| forward(c, n, p, true).map(Some));
    let input_query = obj.optional(c, "input_query_strings", None, |c, n, p| {
        forward(c, n, p, false).map(Some)
    });
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
        store: None,
        return_error_code,
        return_error_details,
        redirects,
        hosts: hosts?,
        url_pattern: url?,
        method: method?,
        encoding: encoding?,
        shape,
        input_headers: input_headers?,
        input_query_strings: input_query?,
    })
}

/// A backend's `proxy.flatmap_filter` into its shape. KrakenD ignores `allow`, `deny` and
/// `mapping` next to it; here that is an error, as is a flatmap on a body that is not decoded.
/// A backend gatelet serves itself (a sensor, the outbox, the inbox): no hosts, JSON, nothing
/// forwarded, no qos; the caller sets what applies.
fn served_here(url_pattern: String, ctx: &BackendContext, shape: Shape) -> Backend {
    Backend {
        hosts: Vec::new(),
        url_pattern,
        method: ctx.method.clone(),
        encoding: Encoding::Json,
        shape,
        input_headers: None,
        input_query_strings: None,
        rate_limit: None,
        breaker: None,
        cache: None,
        retry: None,
        sensor: None,
        fleet: false,
        store: None,
        return_error_code: false,
        return_error_details: None,
        redirects: Redirects::default(),
    }
}

fn with_flatmap(c: &mut Checker, shape: &mut Shape, flatmap: Option<(Vec<FlatOp>, Pos, String)>, encoding: Encoding) {
    let Some((ops, pos, p)) = flatmap else { return };
    if encoding == Encoding::NoOp {
        c.error(
            pos,
            &p,
            "has no effect with \"no-op\" encoding (the body is passed through undecoded)",
        );
    }
    if !shape.allow.is_empty() || !shape.deny.is_empty() || !shape.mapping.is_empty() {
        c.error(
            pos,
            &p,
            "allow, deny and mapping do not apply next to a flatmap_filter (KrakenD ignores them): \
             do it with flatmap operations (del, move)",
        );
    }
    shape.flatmap = ops;
}

/// `is_collection`, `target`, `allow`, `deny`, `mapping`, `group` of a backend; all of them are
/// errors with `no-op` encoding, where the body is never decoded.
pub(super) fn shape(c: &mut Checker, obj: &mut Obj, encoding: Encoding) -> Shape {
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
