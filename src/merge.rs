//! Per-backend response manipulation and merging, KrakenD's order: decode -> `target` ->
//! `allow`/`deny` (allow wins) -> `mapping` -> `group` (or, with a `flatmap_filter`, decode ->
//! `target` -> the [`flatmap`] operations -> `group`), then a shallow top-level merge of all
//! backends in config order; and values read out of answers as text for URLs and headers.
//! Sans-io: plain functions over bytes and `serde_json` values; it never touches sockets, time
//! or config files.

pub mod flatmap;

use serde_json::{Map, Value};

pub use flatmap::FlatOp;

/// What one backend's answer goes through after decoding. Built once by `config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// `is_collection`: the body is a JSON array, wrapped as `{"collection": [...]}`.
    pub is_collection: bool,
    /// `target`: dot path of the object to extract (`"data.items"`), split on `.`; empty = none.
    pub target: Vec<String>,
    /// `allow`: dot paths to keep, each split on `.`; when non-empty `deny` is ignored.
    pub allow: Vec<Vec<String>>,
    /// `deny`: dot paths to remove, each split on `.`.
    pub deny: Vec<Vec<String>>,
    /// `mapping`: top-level renames `from -> to`, in config order.
    pub mapping: Vec<(String, String)>,
    /// `group`: wrap the whole result under this key.
    pub group: Option<String>,
    /// `extra_config.proxy.flatmap_filter`: run after `target`, instead of `allow`, `deny` and
    /// `mapping` (config refuses them together); empty = none.
    pub flatmap: Vec<FlatOp>,
}

/// Why a backend body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// How a backend's body is decoded (`encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `json`: must be a JSON object (or an array when `is_collection`).
    Json,
    /// `safejson`: any JSON; non-objects are wrapped (see [`decode`]).
    SafeJson,
    /// `string`: the body as a string under `content`.
    String,
    /// `no-op`: not decoded; only valid with an endpoint in `no-op`.
    NoOp,
}

/// Decodes a backend body per `encoding`:
/// - `json`: a JSON object; with `is_collection` a JSON array, as `{"collection": [...]}`.
/// - `safejson`: any JSON: an object as is, an array as `{"collection": [...]}`, anything else
///   as `{"result": value}`.
/// - `string`: the body (invalid UTF-8 replaced by U+FFFD) as `{"content": "..."}`.
/// - `no-op`: never decoded; asking is an error.
pub fn decode(encoding: Encoding, is_collection: bool, body: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    let parse = || serde_json::from_slice::<Value>(body).map_err(|e| DecodeError(format!("invalid JSON: {e}")));
    match encoding {
        Encoding::Json => match (parse()?, is_collection) {
            (Value::Object(map), false) => Ok(map),
            (Value::Array(items), true) => Ok(wrap("collection", Value::Array(items))),
            (Value::Array(_), false) => Err(DecodeError(
                "expected a JSON object, got an array (set is_collection, or use encoding safejson)".into(),
            )),
            (other, true) => Err(DecodeError(format!(
                "is_collection expects a JSON array, got {}",
                kind(&other)
            ))),
            (other, false) => Err(DecodeError(format!(
                "expected a JSON object, got {} (use encoding safejson)",
                kind(&other)
            ))),
        },
        Encoding::SafeJson => Ok(match parse()? {
            Value::Object(map) => map,
            Value::Array(items) => wrap("collection", Value::Array(items)),
            other => wrap("result", other),
        }),
        Encoding::String => Ok(wrap(
            "content",
            Value::String(String::from_utf8_lossy(body).into_owned()),
        )),
        Encoding::NoOp => Err(DecodeError("a no-op body is not decoded".into())),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrap(key: &str, value: Value) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(key.to_string(), value);
    map
}

/// Applies `target`, `allow`/`deny`, `mapping` and `group`, in that order (with a
/// `flatmap_filter`: `target`, the operations, `group`).
///
/// Dot paths walk objects; where a path meets an array, the rest of the path applies to each
/// element (so `allow: ["collection.id"]` keeps the `id` of every item). A `target` that is
/// missing or not an object yields an empty object, as in KrakenD.
pub fn shape(shape: &Shape, mut data: Map<String, Value>) -> Map<String, Value> {
    if !shape.target.is_empty() {
        data = extract(data, &shape.target);
    }
    if !shape.flatmap.is_empty() {
        flatmap::apply(&shape.flatmap, &mut data);
    } else if !shape.allow.is_empty() {
        let mut kept = Map::new();
        for path in &shape.allow {
            allow(&mut data, &mut kept, path);
        }
        data = kept;
    } else {
        for path in &shape.deny {
            deny(&mut data, path);
        }
    }
    for (from, to) in &shape.mapping {
        if let Some(v) = data.remove(from) {
            data.insert(to.clone(), v);
        }
    }
    match &shape.group {
        Some(group) => wrap(group, Value::Object(data)),
        None => data,
    }
}

fn extract(mut data: Map<String, Value>, path: &[String]) -> Map<String, Value> {
    for key in path {
        match data.remove(key) {
            Some(Value::Object(inner)) => data = inner,
            _ => return Map::new(),
        }
    }
    data
}

/// Moves the value at `path` from `from` into `into`, creating the objects on the way.
fn allow(from: &mut Map<String, Value>, into: &mut Map<String, Value>, path: &[String]) {
    let Some((key, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        if let Some(v) = from.remove(key) {
            into.insert(key.clone(), v);
        }
        return;
    }
    match (from.get_mut(key), into.get(key)) {
        (Some(Value::Object(src)), None | Some(Value::Object(_))) => {
            let dst = into.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(dst) = dst {
                allow(src, dst, rest);
            }
        }
        (Some(Value::Array(src)), None | Some(Value::Array(_))) => {
            let dst = into.entry(key.clone()).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(dst) = dst {
                dst.resize_with(src.len(), || Value::Object(Map::new()));
                for (s, d) in src.iter_mut().zip(dst.iter_mut()) {
                    if let (Value::Object(s), Value::Object(d)) = (s, d) {
                        allow(s, d, rest);
                    }
                }
            }
        }
        _ => {}
    }
}

fn deny(data: &mut Map<String, Value>, path: &[String]) {
    let Some((key, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        data.remove(key);
        return;
    }
    match data.get_mut(key) {
        Some(Value::Object(inner)) => deny(inner, rest),
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::Object(inner) = item {
                    deny(inner, rest);
                }
            }
        }
        _ => {}
    }
}

/// The value at a dot path through objects (arrays are not entered), as KrakenD's sequential
/// proxy reads `{resp0_a.b}`.
pub fn lookup<'a>(data: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut map = data;
    for key in parents {
        match map.get(key.as_str())? {
            Value::Object(inner) => map = inner,
            _ => return None,
        }
    }
    map.get(last.as_str())
}

/// A value as it goes into a URL or a header, as KrakenD writes it: a string as it is, a
/// whole number without a fraction, a boolean, a list as its elements joined with `,`, an
/// object as JSON. `null` is no value.
pub fn text(value: &Value) -> Option<String> {
    let mut out = String::new();
    match value {
        Value::Null => return None,
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_text(&mut out, item);
            }
        }
        other => push_text(&mut out, other),
    }
    Some(out)
}

fn push_text(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // A float with no fraction (`42.0`) is written as the integer, as KrakenD does for claims.
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => out.push_str(&(f as i64).to_string()),
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

/// Shallow top-level merge: keys of `part` overwrite keys of `into`. Called in config order,
/// so the last backend wins a clash, every time (KrakenD's winner depends on arrival order).
pub fn merge(into: &mut Map<String, Value>, part: Map<String, Value>) {
    // The first part (most endpoints have one backend) becomes the answer as it is: the same
    // map `extend` would build, without taking it apart and inserting every key again.
    if into.is_empty() {
        *into = part;
        return;
    }
    into.extend(part);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn paths(list: &[&str]) -> Vec<Vec<String>> {
        list.iter()
            .map(|p| p.split('.').map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn decode_per_encoding() {
        assert_eq!(
            decode(Encoding::Json, false, br#"{"a":1}"#).unwrap(),
            obj(json!({"a": 1}))
        );
        assert_eq!(
            decode(Encoding::Json, true, b"[1,2]").unwrap(),
            obj(json!({"collection": [1, 2]}))
        );
        assert!(
            decode(Encoding::Json, false, b"[1]")
                .unwrap_err()
                .0
                .contains("is_collection")
        );
        assert!(
            decode(Encoding::Json, true, b"{}")
                .unwrap_err()
                .0
                .contains("expects a JSON array")
        );
        assert!(
            decode(Encoding::Json, false, b"3")
                .unwrap_err()
                .0
                .contains("got a number")
        );
        assert!(
            decode(Encoding::Json, false, b"{")
                .unwrap_err()
                .0
                .starts_with("invalid JSON")
        );
        assert_eq!(
            decode(Encoding::SafeJson, false, b"[true]").unwrap(),
            obj(json!({"collection": [true]}))
        );
        assert_eq!(
            decode(Encoding::SafeJson, false, b"42").unwrap(),
            obj(json!({"result": 42}))
        );
        assert_eq!(
            decode(Encoding::SafeJson, false, b"{\"x\":null}").unwrap(),
            obj(json!({"x": null}))
        );
        assert_eq!(
            decode(Encoding::String, false, b"hi \xff").unwrap(),
            obj(json!({"content": "hi \u{fffd}"}))
        );
        assert!(decode(Encoding::NoOp, false, b"").is_err());
    }

    #[test]
    fn decode_survives_hostile_nesting() {
        let deep = "[".repeat(100_000);
        assert!(decode(Encoding::SafeJson, false, deep.as_bytes()).is_err());
    }

    #[test]
    fn target_extracts_and_missing_target_is_empty() {
        let data = obj(json!({"data": {"items": {"a": 1}}, "other": 2}));
        let s = Shape {
            target: vec!["data".into(), "items".into()],
            ..Shape::default()
        };
        assert_eq!(shape(&s, data.clone()), obj(json!({"a": 1})));
        let s = Shape {
            target: vec!["nope".into()],
            ..Shape::default()
        };
        assert_eq!(shape(&s, data.clone()), Map::new());
        let s = Shape {
            target: vec!["other".into()],
            ..Shape::default()
        };
        assert_eq!(shape(&s, data), Map::new(), "a non-object target is empty");
    }

    #[test]
    fn allow_keeps_nested_paths_and_wins_over_deny() {
        let data = obj(json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [{"id": 1, "x": 0}, {"id": 2}, 7]}));
        let s = Shape {
            allow: paths(&["a", "b.c", "e.id", "missing.z"]),
            deny: paths(&["a"]),
            ..Shape::default()
        };
        assert_eq!(
            shape(&s, data),
            obj(json!({"a": 1, "b": {"c": 2}, "e": [{"id": 1}, {"id": 2}, {}]}))
        );
    }

    #[test]
    fn deny_removes_nested_paths() {
        let data = obj(json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [{"id": 1, "x": 0}]}));
        let s = Shape {
            deny: paths(&["a", "b.d", "e.x", "nope.q"]),
            ..Shape::default()
        };
        assert_eq!(shape(&s, data), obj(json!({"b": {"c": 2}, "e": [{"id": 1}]})));
    }

    #[test]
    fn mapping_then_group() {
        let data = obj(json!({"a": 1, "b": 2}));
        let s = Shape {
            mapping: vec![("a".into(), "alpha".into()), ("zz".into(), "never".into())],
            group: Some("g".into()),
            ..Shape::default()
        };
        assert_eq!(shape(&s, data), obj(json!({"g": {"alpha": 1, "b": 2}})));
    }

    #[test]
    fn the_order_is_target_allow_mapping_group() {
        let data = obj(json!({"d": {"x": 1, "y": 2}}));
        let s = Shape {
            target: vec!["d".into()],
            allow: paths(&["x"]),
            mapping: vec![("x".into(), "ex".into())],
            group: Some("g".into()),
            ..Shape::default()
        };
        assert_eq!(shape(&s, data), obj(json!({"g": {"ex": 1}})));
    }

    #[test]
    fn lookup_walks_objects_only_and_text_formats_like_krakend() {
        let data = obj(json!({"a": {"b": 7.0, "l": [1, "x", true, {"k": 1}]}, "arr": [{"id": 1}], "n": null}));
        let path = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(lookup(&data, &path("a.b")).and_then(text).as_deref(), Some("7"));
        assert_eq!(
            lookup(&data, &path("a.l")).and_then(text).as_deref(),
            Some(r#"1,x,true,{"k":1}"#)
        );
        assert_eq!(lookup(&data, &path("arr.0.id")), None, "arrays are not entered");
        assert_eq!(lookup(&data, &path("n")).and_then(text), None, "null is no value");
        assert_eq!(text(&json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(text(&json!(-3)).as_deref(), Some("-3"));
    }

    #[test]
    fn flatmap_replaces_allow_deny_mapping_but_keeps_target_and_group() {
        let data = obj(json!({"d": {"items": [{"id": 1, "secret": 2}], "x": 1}}));
        let s = Shape {
            target: vec!["d".into()],
            flatmap: vec![FlatOp::Del(vec![paths(&["items.*.secret"])[0].clone()])],
            group: Some("g".into()),
            ..Shape::default()
        };
        assert_eq!(shape(&s, data), obj(json!({"g": {"items": [{"id": 1}], "x": 1}})));
    }

    #[test]
    fn merge_is_shallow_and_later_wins() {
        let mut into = obj(json!({"a": {"x": 1}, "b": 1}));
        merge(&mut into, obj(json!({"a": {"y": 2}, "c": 3})));
        assert_eq!(into, obj(json!({"a": {"y": 2}, "b": 1, "c": 3})));
        let mut empty = Map::new();
        merge(&mut empty, obj(json!({"b": [1], "a": null})));
        merge(&mut empty, Map::new());
        assert_eq!(empty, obj(json!({"a": null, "b": [1]})));
        merge(&mut empty, obj(json!({"b": 2})));
        assert_eq!(empty, obj(json!({"a": null, "b": 2})));
    }
}
