//! What an endpoint takes in and gives out beyond its backends: the request body schema
//! (KrakenD's endpoint `validation/json-schema`, compiled here, once) and gzip for answers
//! (our service `gatelet/gzip`).

use super::*;

/// Default `gatelet/gzip.min_size`: smaller answers gain little and cost a gzip header.
pub const DEFAULT_GZIP_MIN_SIZE: usize = 1024;
/// Default `gatelet/gzip.level` (1 fastest to 9 smallest).
pub const DEFAULT_GZIP_LEVEL: u8 = 4;

/// The default when `gatelet/gzip` is absent: on.
pub(super) fn default_gzip() -> Option<Gzip> {
    Some(Gzip {
        min_size: DEFAULT_GZIP_MIN_SIZE,
        level: DEFAULT_GZIP_LEVEL,
    })
}

/// Service `extra_config."gatelet/gzip"`: `disabled`, `min_size`, `level`.
pub(super) fn gzip_config(c: &mut Checker, node: &Node, path: &str) -> Option<Gzip> {
    let mut obj = c.object(node, path)?;
    let disabled = obj.optional(c, "disabled", false, Checker::boolean);
    let min_size = obj.optional(c, "min_size", DEFAULT_GZIP_MIN_SIZE, |c, n, p| {
        c.integer(n, p, 0, 1 << 30).map(|v| v as usize)
    });
    let level = obj.optional(c, "level", DEFAULT_GZIP_LEVEL, |c, n, p| {
        c.integer(n, p, 1, 9).map(|v| v as u8)
    });
    obj.finish(c);
    if disabled? {
        return None;
    }
    Some(Gzip {
        min_size: min_size?,
        level: level?,
    })
}

/// Endpoint `extra_config."validation/json-schema"`: the schema, compiled now. A schema that
/// does not compile is an error at the spot in the schema that breaks it.
#[cfg(feature = "json-schema")]
pub(super) fn json_schema(
    c: &mut Checker,
    node: &Node,
    path: &str,
    method: Option<&Method>,
) -> Option<std::sync::Arc<crate::schema::BodySchema>> {
    if !matches!(node.value, Value::Object(_) | Value::Bool(_)) {
        c.expected(node, path, "a JSON schema (an object or a boolean)");
        return None;
    }
    let value = to_serde(c, node, path)?;
    if method == Some(&Method::GET) {
        c.warn(
            node.pos,
            path,
            "a GET request has no body: every request to this endpoint will be refused (400)",
        );
    }
    match crate::schema::BodySchema::compile(value) {
        Ok(schema) => Some(std::sync::Arc::new(schema)),
        Err(e) => {
            let (pos, at) = pointer_site(node, path, &e.pointer);
            c.error(pos, &at, format!("invalid JSON schema: {}", e.message));
            None
        }
    }
}

/// Without the feature, the namespace is refused with what to do.
#[cfg(not(feature = "json-schema"))]
pub(super) fn json_schema(c: &mut Checker, node: &Node, path: &str) {
    c.error(
        node.pos,
        path,
        "this gatelet was built without JSON Schema validation (cargo feature \"json-schema\", \
         about 2 MB of binary): build it with --features json-schema",
    );
}

/// The config tree as a `serde_json` value; duplicate keys are errors (which one would count?).
#[cfg(feature = "json-schema")]
fn to_serde(c: &mut Checker, node: &Node, path: &str) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match &node.value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(text) => match text.parse::<serde_json::Number>() {
            Ok(n) => J::Number(n),
            Err(_) => {
                c.error(node.pos, path, format!("{text} is out of range"));
                return None;
            }
        },
        Value::String(s) => J::String(s.clone()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(to_serde(c, item, &format!("{path}[{i}]")));
            }
            J::Array(out.into_iter().collect::<Option<_>>()?)
        }
        Value::Object(_) => {
            let errors = c.errors.len();
            let mut obj = c.object(node, path)?;
            let mut out = serde_json::Map::new();
            let mut ok = true;
            for (key, value) in obj.rest() {
                match to_serde(c, value, &join(path, &key.name)) {
                    Some(v) => {
                        out.entry(key.name.clone()).or_insert(v);
                    }
                    None => ok = false,
                }
            }
            // `c.object` reported duplicate keys.
            (ok && c.errors.len() == errors).then_some(J::Object(out))?
        }
    })
}

/// Where an RFC 6901 `pointer` into the schema at `node` is written: the deepest value it
/// reaches, and its JSON path.
#[cfg(feature = "json-schema")]
fn pointer_site(node: &Node, path: &str, pointer: &str) -> (Pos, String) {
    let mut at = node;
    let mut p = path.to_string();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        let next = match &at.value {
            Value::Object(members) => members.iter().find(|(k, _)| k.name == token).map(|(_, v)| {
                p = join(&p, &token);
                v
            }),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)).inspect(|_| {
                p = format!("{p}[{token}]");
            }),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => break,
        }
    }
    (at.pos, p)
}
