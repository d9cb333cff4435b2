//! Endpoints: path templates, methods, encodings, forwarded headers and query strings, and the
//! endpoint-level namespaces, each backend handed to [`backend()`](super::backend::backend).

use super::*;

pub(super) const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Upper bound of `concurrent_calls`: each one is a real upstream request.
pub const MAX_CONCURRENT_CALLS: i64 = 10;

pub(super) fn output_encoding(c: &mut Checker, node: &Node, path: &str) -> Option<OutputEncoding> {
    let supported = [
        ("json", OutputEncoding::Json),
        ("json-collection", OutputEncoding::JsonCollection),
        ("string", OutputEncoding::String),
        ("no-op", OutputEncoding::NoOp),
        ("xml", OutputEncoding::Xml),
        ("negotiate", OutputEncoding::Negotiate),
    ];
    choice(c, node, path, "output_encoding", &supported, &["fast-json", "yaml"])
}

pub(super) fn encoding(c: &mut Checker, node: &Node, path: &str) -> Option<Encoding> {
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

pub(super) fn method(c: &mut Checker, node: &Node, path: &str) -> Option<Method> {
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

/// Checks an endpoint path; returns its parameter names.
pub(super) fn endpoint_path(c: &mut Checker, node: &Node, path: &str, defaults: &Defaults) -> Option<()> {
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
        if path::is_param(segment) {
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

pub(super) fn forward(c: &mut Checker, node: &Node, path: &str, headers: bool) -> Option<Forward> {
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

pub(super) fn endpoint(
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
    let method = obj.optional(c, "method", Method::GET, method);
    let output = obj.optional(c, "output_encoding", defaults.output_encoding, output_encoding);
    let timeout = obj.optional(c, "timeout", defaults.timeout, Checker::positive_duration);
    let cache = obj.optional(c, "cache_ttl", defaults.cache_ttl, cache_ttl);
    let only_content_type = Forward::Only(vec!["content-type".to_string()]);
    let input_headers = obj.optional(c, "input_headers", only_content_type, |c, n, p| forward(c, n, p, true));
    let input_query = obj.optional(c, "input_query_strings", Forward::Only(Vec::new()), |c, n, p| {
        forward(c, n, p, false)
    });
    let concurrent = obj.optional(c, "concurrent_calls", 1, |c, n, p| {
        c.integer(n, p, 1, MAX_CONCURRENT_CALLS).map(|v| v as u32)
    });
    let mut rate_limit = None;
    let mut api_key_roles = None;
    let mut jwt = None;
    let mut jwt_given = false;
    let mut proxy = EndpointProxy::default();
    #[cfg(feature = "json-schema")]
    let mut body_schema = None;
    // Parameter names, for the `param` strategy (the path may be invalid: then none).
    let route_params: Vec<String> = match route.as_ref().map(|(n, _)| &n.value) {
        Some(Value::String(s)) => path::param_names(s).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    if let Some((n, p)) = obj.take("extra_config")
        && let Some(mut extra) = c.object(n, &p)
    {
        rate_limit = router_rate_limit(c, &mut extra, &route_params);
        if let Some((n, p)) = extra.take("auth/validator") {
            jwt = jwt_validator(c, n, &p, index);
            jwt_given = true;
        }
        if let Some((n, p)) = extra.take("proxy") {
            proxy = endpoint_proxy(c, n, &p);
        }
        if let Some((n, p)) = extra.take("validation/json-schema") {
            #[cfg(feature = "json-schema")]
            {
                body_schema = json_schema(c, n, &p, method.as_ref());
            }
            #[cfg(not(feature = "json-schema"))]
            json_schema(c, n, &p);
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
            .map(|seg| if path::is_param(seg) { "{}" } else { seg })
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
        Some(Value::String(s)) => path::param_names(s).map(str::to_string).collect(),
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
                let mut ctx = BackendContext {
                    params: &params,
                    method: method.clone().unwrap_or(Method::GET),
                    output: output.unwrap_or(OutputEncoding::Json),
                    hosts: defaults.hosts,
                    hosts_given: defaults.hosts_given,
                    sensors: defaults.sensors,
                    sensor_names: defaults.sensor_names,
                    fleet: defaults.fleet,
                    outbox: defaults.outbox,
                    inbox: defaults.inbox,
                    index: 0,
                    sequential: proxy.sequential,
                    jwt: jwt_given,
                };
                for (j, item) in items.iter().enumerate() {
                    ctx.index = j;
                    if let Some(b) = backend(c, item, &format!("{p}[{j}]"), &ctx) {
                        backends.push(b);
                    }
                }
                if items.len() > 1 && backends.iter().any(|b| b.store.is_some()) {
                    c.error(
                        n.pos,
                        &p,
                        "an endpoint with a \"gatelet/outbox\" or \"gatelet/inbox\" backend takes exactly one backend",
                    );
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
    proxy_fits(c, &proxy, output, &backends);
    if let (Some(window), Some(t)) = (defaults.sync_window, timeout)
        && t <= window
        && backends.iter().any(|b| b.store == Some(Store::Outbox))
    {
        c.error(
            node.pos,
            path,
            format!(
                "timeout {t:?} is not longer than the outbox's sync_window {window:?}: every POST would time out waiting for its sync"
            ),
        );
    }
    if (jwt.is_some() || api_key_roles.is_some()) && backends.iter().any(|b| b.cache.is_some()) {
        c.warn(
            node.pos,
            path,
            "qos/http-cache on an endpoint with auth: answers to requests that forward the \
             client's Authorization or Cookie (or JWT claims) are only kept when the backend says \
             public or s-maxage",
        );
    }
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
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    let mut vars: Vec<Var> = Vec::new();
    for b in &backends {
        for name in path::placeholders(&b.url_pattern) {
            if let path::Placeholder::Var(v) = path::placeholder(name, &params)
                && !vars.contains(&v)
            {
                vars.push(v);
            }
        }
    }
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
        sequential: proxy.sequential,
        static_data: proxy.static_data,
        flatmap: proxy.flatmap,
        vars,
        #[cfg(feature = "json-schema")]
        body_schema,
    })
}

/// The endpoint's `proxy` keys against its encoding and backends: none of them applies to a
/// `no-op` pass-through or a sensor write, and a `flatmap_filter` on the endpoint works on a
/// merge of several backends.
fn proxy_fits(c: &mut Checker, proxy: &EndpointProxy, output: Option<OutputEncoding>, backends: &[Backend]) {
    let writes = backends
        .iter()
        .any(|b| b.sensor.is_some_and(|s| s.write) || b.store.is_some());
    for (at, what) in [
        (&proxy.static_at, "static data"),
        (&proxy.flatmap_at, "a flatmap_filter"),
    ] {
        let Some((pos, p)) = at else { continue };
        if output == Some(OutputEncoding::NoOp) {
            c.error(
                *pos,
                p,
                format!("{what} has no effect on a \"no-op\" endpoint: its answer is passed through"),
            );
        } else if writes {
            c.error(*pos, p, format!("{what} has no effect on a sensor write"));
        }
    }
    if let Some((pos, p)) = &proxy.flatmap_at
        && backends.len() == 1
        && output != Some(OutputEncoding::NoOp)
    {
        c.error(
            *pos,
            p,
            "an endpoint's flatmap_filter works on the merge of several backends; with one, put \
             it in the backend's extra_config.proxy",
        );
    }
}
