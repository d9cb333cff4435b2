//! KrakenD's `proxy` namespace: on an endpoint `sequential`, `static` and `flatmap_filter`; on
//! a backend `flatmap_filter`. The keys KrakenD has there that gatelet does not are refused
//! with a hint.

use super::*;

/// An endpoint's `proxy` namespace, checked.
#[derive(Default)]
pub(super) struct EndpointProxy {
    pub(super) sequential: bool,
    pub(super) static_data: Option<StaticData>,
    pub(super) flatmap: Vec<FlatOp>,
    /// Where `static` and `flatmap_filter` are written, for checks against the backends.
    pub(super) static_at: Option<(Pos, String)>,
    pub(super) flatmap_at: Option<(Pos, String)>,
}

pub(super) fn endpoint_proxy(c: &mut Checker, node: &Node, path: &str) -> EndpointProxy {
    let mut out = EndpointProxy::default();
    let Some(mut obj) = c.object(node, path) else {
        return out;
    };
    out.sequential = obj.optional(c, "sequential", false, Checker::boolean).unwrap_or(false);
    if let Some((n, p)) = obj.take("static") {
        out.static_data = static_data(c, n, &p);
        out.static_at = Some((n.pos, p));
    }
    if let Some((n, p)) = obj.take("flatmap_filter") {
        out.flatmap = flatmap_filter(c, n, &p).unwrap_or_default();
        out.flatmap_at = Some((n.pos, p));
    }
    if let Some((n, p)) = obj.take("sequential_propagated_params") {
        c.error(
            n.pos,
            &p,
            "not supported by gatelet: the propagated values are only readable from Lua, which \
             gatelet does not run; use {respN_field} in a later url_pattern",
        );
    }
    if let Some((n, p)) = obj.take("combiner") {
        c.error(
            n.pos,
            &p,
            "custom combiners are Go plugins, which gatelet does not load; answers are merged key by key",
        );
    }
    obj.finish(c);
    out
}

/// A backend's `proxy` namespace: its `flatmap_filter`, and where it is written.
pub(super) fn backend_proxy(c: &mut Checker, node: &Node, path: &str) -> Option<(Vec<FlatOp>, Pos, String)> {
    let mut obj = c.object(node, path)?;
    let mut out = None;
    if let Some((n, p)) = obj.take("flatmap_filter") {
        out = flatmap_filter(c, n, &p).map(|ops| (ops, n.pos, p));
    }
    if let Some((n, p)) = obj.take("shadow") {
        c.error(n.pos, &p, "shadow backends are not supported by gatelet");
    }
    obj.finish(c);
    out
}

/// `static`: `{"strategy": ..., "data": {...}}`.
fn static_data(c: &mut Checker, node: &Node, path: &str) -> Option<StaticData> {
    let mut obj = c.object(node, path)?;
    let strategies = [
        ("always", StaticStrategy::Always),
        ("success", StaticStrategy::Success),
        ("complete", StaticStrategy::Complete),
        ("errored", StaticStrategy::Errored),
        ("incomplete", StaticStrategy::Incomplete),
    ];
    let strategy = obj.optional(c, "strategy", StaticStrategy::Always, |c, n, p| {
        choice(c, n, p, "strategy", &strategies, &[])
    });
    let data = obj
        .require(c, "data", "the object added to the answer")
        .and_then(|(n, p)| match to_serde(c, n, &p)? {
            serde_json::Value::Object(map) => Some(map),
            _ => {
                c.expected(n, &p, "an object");
                None
            }
        });
    obj.finish(c);
    Some(StaticData {
        strategy: strategy?,
        data: data?,
    })
}

/// A config value as a `serde_json` value; duplicate keys are errors.
fn to_serde(c: &mut Checker, node: &Node, path: &str) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match &node.value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(text) => match serde_json::from_str(text) {
            Ok(n) => J::Number(n),
            Err(_) => {
                c.error(node.pos, path, format!("{text} is not a number gatelet can keep"));
                return None;
            }
        },
        Value::String(s) => J::String(s.clone()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(to_serde(c, item, &format!("{path}[{i}]"))?);
            }
            J::Array(out)
        }
        Value::Object(members) => {
            let before = c.errors.len();
            c.object(node, path)?;
            let mut out = serde_json::Map::new();
            for (key, value) in members {
                out.insert(key.name.clone(), to_serde(c, value, &join(path, &key.name))?);
            }
            if c.errors.len() > before {
                return None;
            }
            J::Object(out)
        }
    })
}

/// `flatmap_filter`: a list of `{"type": "move" | "del" | "append", "args": [...]}`.
fn flatmap_filter(c: &mut Checker, node: &Node, path: &str) -> Option<Vec<FlatOp>> {
    let Value::Array(items) = &node.value else {
        c.expected(node, path, "an array of operations");
        return None;
    };
    if items.is_empty() {
        c.error(node.pos, path, "needs at least one operation");
        return None;
    }
    let before = c.errors.len();
    let mut ops = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(op) = flatmap_op(c, item, &format!("{path}[{i}]")) {
            ops.push(op);
        }
    }
    (c.errors.len() == before).then_some(ops)
}

fn flatmap_op(c: &mut Checker, node: &Node, path: &str) -> Option<FlatOp> {
    let mut obj = c.object(node, path)?;
    let kind = obj
        .require(c, "type", "move, del or append")
        .and_then(|(n, p)| choice(c, n, &p, "type", &[("move", 0), ("del", 1), ("append", 2)], &[]));
    let args = obj.require(c, "args", "the paths it works on");
    obj.finish(c);
    let (args_node, args_path) = args?;
    let list = c.strings(args_node, &args_path)?;
    let mut paths = Vec::with_capacity(list.len());
    for (s, pos, p) in &list {
        if s.is_empty() || s.split('.').any(str::is_empty) {
            c.error(*pos, p, format!("\"{s}\" is not a path such as \"items.*.id\""));
            return None;
        }
        paths.push(s.split('.').map(str::to_string).collect::<Vec<_>>());
    }
    let at = |c: &mut Checker, m: String| c.error(args_node.pos, &args_path, m);
    match kind? {
        1 if paths.is_empty() => {
            at(c, "del needs at least one path".into());
            None
        }
        1 => Some(FlatOp::Del(paths)),
        k if paths.len() != 2 => {
            let name = if k == 0 { "move" } else { "append" };
            at(c, format!("{name} needs two paths: from and to"));
            None
        }
        0 => {
            let to = paths.pop()?;
            let from = paths.pop()?;
            move_op(c, args_node.pos, &args_path, from, to)
        }
        _ => {
            if list.iter().any(|(s, _, _)| s.split('.').any(|seg| seg == "*")) {
                at(c, "append takes paths without '*' in gatelet".into());
                return None;
            }
            let to = paths.pop()?;
            let from = paths.pop()?;
            Some(FlatOp::Append { from, to })
        }
    }
}

/// A `move`, refused where KrakenD's documentation calls the pair incorrect (it would move
/// nothing, or not where it says).
fn move_op(c: &mut Checker, pos: Pos, path: &str, from: Vec<String>, to: Vec<String>) -> Option<FlatOp> {
    let any = crate::merge::flatmap::ANY;
    let (flast, tlast) = (from.last()?, to.last()?);
    let why = if flast == any || tlast == any {
        Some("the last segment of a move names one key, it cannot be '*'".to_string())
    } else if to.len() >= from.len() && from[..from.len() - 1] != to[..from.len() - 1] {
        Some(format!(
            "\"{}\" and \"{}\": a move to a path as long or longer keeps the source's path up to its last segment",
            from.join("."),
            to.join(".")
        ))
    } else {
        None
    };
    match why {
        Some(m) => {
            c.error(pos, path, m);
            None
        }
        None => Some(FlatOp::Move { from, to }),
    }
}
