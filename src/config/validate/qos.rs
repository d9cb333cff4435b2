//! Quality of service: token-bucket rate limits (router and proxy), circuit breakers, the
//! backend cache and retries, with their bounds.

use super::*;

/// Upper bound of a bucket's `capacity`.
pub const MAX_CAPACITY: i64 = 1_000_000_000;

/// Upper bound of `gatelet/ratelimit.max_clients` (48 bytes an entry: 48 MB at most).
pub const MAX_MAX_CLIENTS: i64 = 1_000_000;

/// A positive decimal such as `5` or `0.5`, exactly, as `numerator / denominator` with the
/// denominator a power of ten (at most 10⁹).
pub(super) fn decimal(c: &mut Checker, node: &Node, path: &str) -> Option<(u64, u64)> {
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
pub(super) fn every(c: &mut Checker, obj: &mut Obj) -> Option<u64> {
    obj.optional(c, "every", 1_000_000_000, |c, n, p| {
        let d = c.positive_duration(n, p)?;
        let ns = u64::try_from(d.as_nanos()).ok();
        if ns.is_none() {
            c.error(n.pos, p, "is too long");
        }
        ns
    })
}

/// One bucket from `rate_key` and `capacity_key` (default: the rate's whole part, at least 1).
/// `Some(None)` when `rate_key` is absent; `None` after an error. With `required`, a missing
/// rate is an error.
pub(super) fn bucket(
    c: &mut Checker,
    obj: &mut Obj,
    rate_key: &str,
    capacity_key: &str,
    every: Option<u64>,
    required: bool,
) -> Option<Option<Rate>> {
    let capacity = obj.optional(c, capacity_key, None, |c, n, p| {
        let v = c.integer(n, p, 1, MAX_CAPACITY)?;
        Some(Some((v as u64, n.pos, p.to_string())))
    });
    let rate_node = obj.take(rate_key);
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
pub(super) fn router_rate_limit(c: &mut Checker, extra: &mut Obj, params: &[String]) -> Option<RateLimit> {
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
pub(super) fn strategy(c: &mut Checker, q: &mut Obj, params: &[String]) -> (Option<Strategy>, Option<(Pos, String)>) {
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

/// KrakenD's `qos/circuit-breaker`: `interval`, `timeout` (seconds or durations), `max_errors`,
/// `name`, `log_status_change`.
pub(super) fn circuit_breaker(c: &mut Checker, node: &Node, path: &str) -> Option<CircuitBreaker> {
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
    let name = obj.optional(c, "name", None, |c, n, p| c.string(n, p).map(|s| Some(s.to_string())));
    let log = obj.optional(c, "log_status_change", false, Checker::boolean);
    obj.finish(c);
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    Some(CircuitBreaker {
        settings: crate::breaker::Settings {
            interval: ns(interval?),
            timeout: ns(timeout?),
            max_errors: max_errors? as u32,
        },
        log_status_change: log?,
        name: name?,
    })
}

/// KrakenD's `qos/http-cache`: `shared` (all gatelet caches are shared), `max_items` and
/// `max_size` (bytes), given together or not at all.
pub(super) fn http_cache(c: &mut Checker, node: &Node, path: &str) -> Option<crate::cache::Bounds> {
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
pub(super) fn retry_config(c: &mut Checker, node: &Node, path: &str) -> Option<Retry> {
    let mut obj = c.object(node, path)?;
    let attempts = obj.optional(c, "attempts", 2, |c, n, p| c.integer(n, p, 1, 2).map(|v| v as u32));
    let backoff = obj.optional(c, "backoff", Duration::from_millis(100), Checker::duration);
    obj.finish(c);
    Some(Retry {
        attempts: attempts?,
        backoff: backoff?,
    })
}
