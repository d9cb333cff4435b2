//! Request body validation with JSON Schema (KrakenD's endpoint `validation/json-schema`), on
//! the `boon` validator: drafts 4, 6, 7, 2019-09 and 2020-12, the draft named by `$schema`
//! (2020-12 when there is none), `format` asserted as KrakenD does. Sans-io: a schema is
//! compiled once from config JSON (no `$ref` is ever fetched: a schema refers only into
//! itself), then bodies are checked against it. `pattern`s run on the `regex` crate, in time
//! linear in the input.

use std::fmt::Write as _;

use serde_json::Value;

/// Where the schema lives for `$ref` resolution; never fetched.
const LOCATION: &str = "urn:gatelet:body-schema";

/// The most JSON values a checked body may hold. The validator records every failure it meets
/// and runs on the gateway's one thread: a 1 MiB array of half a million numbers failing
/// `"items": {"type": "string"}` took 90 MB and 200 ms (x86-64); at this bound, about 3 MB and
/// 3 ms, or 13 MB and 19 ms when every item fails three `anyOf` branches. Bodies with more
/// values are refused (413) before they are parsed.
pub const MAX_VALUES: usize = 16_384;

/// The deepest nesting of arrays and objects a checked body may have. The validator recurses
/// once per level, several frames deep: about 8 KiB of stack a level in a release build on
/// x86-64 (32 KiB unoptimised), more when the schema nests `anyOf`s; at this bound a check
/// stays well inside the smallest thread stack gatelet runs on. Deeper bodies are refused (400)
/// before they are parsed.
pub const MAX_DEPTH: usize = 32;

/// At most this many failures are listed in an answer (a body of 1 MiB can fail a million
/// times over).
const MAX_LISTED: usize = 8;

/// A compiled body schema.
pub struct BodySchema {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl std::fmt::Debug for BodySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodySchema")
    }
}

/// Why a schema does not compile: the JSON pointer into the schema where the problem is
/// (empty for the whole schema) and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// RFC 6901 pointer, e.g. `/properties/speed/type`.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

/// Why a body is refused (every case is a 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// No body at all.
    Empty,
    /// More than [`MAX_VALUES`] JSON values (413).
    TooManyValues,
    /// Arrays and objects nested more than [`MAX_DEPTH`] deep.
    TooDeep,
    /// Not JSON (serde_json's message).
    Malformed(String),
    /// JSON that the schema rejects: `at '/pointer': what` lines.
    Rejected(String),
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Empty => f.write_str("could not validate an empty body"),
            Invalid::TooManyValues => write!(
                f,
                "a body checked against a JSON schema holds at most {MAX_VALUES} values"
            ),
            Invalid::TooDeep => write!(
                f,
                "a body checked against a JSON schema nests arrays and objects at most {MAX_DEPTH} deep"
            ),
            Invalid::Malformed(m) => write!(f, "could not validate a malformed body: {m}"),
            Invalid::Rejected(m) => write!(f, "the body does not match the endpoint's schema: {m}"),
        }
    }
}

/// Refuses every `$ref` outside the schema itself: checking a config reads no file and no URL.
struct NoLoader;

impl boon::UrlLoader for NoLoader {
    fn load(&self, _url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err("not fetched: gatelet resolves $ref only inside the schema (use $defs)".into())
    }
}

impl BodySchema {
    /// Compiles `schema` (an object or a boolean), checked against its draft's meta-schema.
    pub fn compile(schema: Value) -> Result<BodySchema, CompileError> {
        let mut compiler = boon::Compiler::new();
        compiler.use_loader(Box::new(NoLoader));
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler.enable_format_assertions();
        let mut schemas = boon::Schemas::new();
        if let Err(e) = compiler.add_resource(LOCATION, schema) {
            return Err(compile_error(&e));
        }
        match compiler.compile(LOCATION, &mut schemas) {
            Ok(index) => Ok(BodySchema { schemas, index }),
            Err(e) => Err(compile_error(&e)),
        }
    }

    /// Checks a request body.
    pub fn check(&self, body: &[u8]) -> Result<(), Invalid> {
        if body.is_empty() {
            return Err(Invalid::Empty);
        }
        let (values, depth) = measure(body);
        if values > MAX_VALUES {
            return Err(Invalid::TooManyValues);
        }
        if depth > MAX_DEPTH {
            return Err(Invalid::TooDeep);
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| Invalid::Malformed(e.to_string()))?;
        match self.schemas.validate(&value, self.index) {
            Ok(()) => Ok(()),
            Err(e) => Err(Invalid::Rejected(listing(&e))),
        }
    }
}

/// An upper bound of the JSON values in `body`, and the deepest nesting of its arrays and
/// objects, from one pass over its bytes without parsing. Values: one per `[`, `{` and `,`
/// outside strings, and one more (exact for valid JSON, but for one too many per empty array
/// or object).
fn measure(body: &[u8]) -> (usize, usize) {
    let (mut values, mut depth, mut deepest) = (1, 0usize, 0);
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                values += 1;
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' => values += 1,
            _ => {}
        }
    }
    (values, deepest)
}

/// The leaf failures of `e` (the ones that say what is wrong), `at '/ptr': what`, `; `-joined.
fn listing(e: &boon::ValidationError) -> String {
    let mut leaves = Vec::new();
    collect_leaves(e, &mut leaves);
    let mut out = String::new();
    for leaf in leaves.iter().take(MAX_LISTED) {
        if !out.is_empty() {
            out.push_str("; ");
        }
        let _ = write!(out, "at '{}': {}", leaf.instance_location, leaf.kind);
    }
    if leaves.len() > MAX_LISTED {
        let _ = write!(out, "; and {} more", leaves.len() - MAX_LISTED);
    }
    out
}

fn collect_leaves<'a, 's, 'v>(e: &'a boon::ValidationError<'s, 'v>, out: &mut Vec<&'a boon::ValidationError<'s, 'v>>) {
    if e.causes.is_empty() {
        out.push(e);
    }
    for cause in &e.causes {
        collect_leaves(cause, out);
    }
}

/// boon's error as a pointer into the schema and a message without gatelet's made-up URL.
fn compile_error(e: &boon::CompileError) -> CompileError {
    use boon::CompileError as E;
    let (at, message) = match e {
        // The schema breaks its meta-schema: point at the deepest failure (of an `anyOf` of
        // forms, the one that got furthest), in the schema.
        E::ValidationError { src, .. } => {
            let mut leaves = Vec::new();
            collect_leaves(src, &mut leaves);
            let deepest = leaves
                .iter()
                .map(|l| l.instance_location.tokens.len())
                .max()
                .unwrap_or(0);
            match leaves.iter().find(|l| l.instance_location.tokens.len() == deepest) {
                Some(leaf) => (leaf.instance_location.to_string(), leaf.kind.to_string()),
                None => (String::new(), src.kind.to_string()),
            }
        }
        E::InvalidRegex { url, regex, src } => (fragment(url), format!("invalid regex {regex:?}: {src}")),
        E::ParseIdError { loc } | E::ParseAnchorError { loc } => (fragment(loc), strip(&e.to_string())),
        E::DuplicateId { ptr2, .. } | E::DuplicateAnchor { ptr2, .. } => (ptr2.clone(), strip(&e.to_string())),
        _ => (String::new(), strip(&format!("{e:#}"))),
    };
    CompileError {
        pointer: at,
        message: message.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// The JSON pointer after `#` in a location (percent-decoded), or empty.
fn fragment(loc: &str) -> String {
    let Some((_, frag)) = loc.split_once('#') else {
        return String::new();
    };
    let bytes = frag.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A message without the schema's internal location.
fn strip(message: &str) -> String {
    message
        .replace(&format!("{LOCATION}#"), "#")
        .replace(LOCATION, "the schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(v: Value) -> BodySchema {
        BodySchema::compile(v).unwrap()
    }

    #[test]
    fn accepts_valid_and_lists_what_is_wrong() {
        let s = compile(json!({
            "type": "object", "required": ["line", "text"],
            "properties": {"line": {"type": "integer", "minimum": 1}, "text": {"type": "string", "maxLength": 8}}
        }));
        assert_eq!(s.check(br#"{"line": 3, "text": "Depot"}"#), Ok(()));
        assert_eq!(s.check(b""), Err(Invalid::Empty));
        assert!(matches!(s.check(b"{\"line\":"), Err(Invalid::Malformed(_))));
        let Err(Invalid::Rejected(m)) = s.check(br#"{"line": 0, "text": "far too long"}"#) else {
            panic!()
        };
        assert!(m.contains("at '/line': must be >=1, but got 0"), "{m}");
        assert!(m.contains("at '/text': length must be <=8, but got 12"), "{m}");
        let Err(Invalid::Rejected(m)) = s.check(b"[]") else {
            panic!()
        };
        assert_eq!(m, "at '': want object, but got array");
    }

    #[test]
    fn draft_2020_12_by_default_and_others_by_schema_keyword() {
        // prefixItems is 2020-12's tuple form.
        let s = compile(json!({"prefixItems": [{"type": "integer"}], "items": false}));
        assert_eq!(s.check(b"[1]"), Ok(()));
        assert!(s.check(br#"["a"]"#).is_err());
        assert!(s.check(b"[1, 2]").is_err());
        // Draft 7's array form of items.
        let s = compile(json!({"$schema": "http://json-schema.org/draft-07/schema#",
            "items": [{"type": "integer"}], "additionalItems": false}));
        assert_eq!(s.check(b"[1]"), Ok(()));
        assert!(s.check(b"[1, 2]").is_err());
    }

    #[test]
    fn formats_are_asserted_and_refs_stay_inside() {
        let s = compile(json!({"$defs": {"t": {"type": "string", "format": "date-time"}}, "$ref": "#/$defs/t"}));
        assert_eq!(s.check(br#""2026-11-23T05:02:10Z""#), Ok(()));
        assert!(s.check(br#""yesterday""#).is_err());
        let e = BodySchema::compile(json!({"$ref": "http://example.com/s.json"})).unwrap_err();
        assert!(e.message.contains("not fetched"), "{e:?}");
        assert!(BodySchema::compile(json!({"$ref": "/etc/passwd"})).is_err());
        assert!(BodySchema::compile(json!({"$ref": "file:///etc/passwd"})).is_err());
    }

    #[test]
    fn compile_errors_point_into_the_schema() {
        let e = BodySchema::compile(json!({"properties": {"a": {"type": "strin"}}})).unwrap_err();
        assert_eq!(e.pointer, "/properties/a/type", "{e:?}");
        let e = BodySchema::compile(json!({"properties": {"a b": {"pattern": "("}}})).unwrap_err();
        assert_eq!(e.pointer, "/properties/a b/pattern", "{e:?}");
        assert!(
            e.message
                .starts_with("'(' is not valid regex: regex parse error: ( ^ error: unclosed group"),
            "{e:?}"
        );
        let e = BodySchema::compile(json!(3)).unwrap_err();
        assert_eq!(e.pointer, "", "{e:?}");
    }

    #[test]
    fn many_failures_are_listed_briefly() {
        let s = compile(json!({"items": {"type": "string"}}));
        let body = serde_json::to_vec(&vec![1; 10_000]).unwrap();
        let Err(Invalid::Rejected(m)) = s.check(&body) else {
            panic!()
        };
        assert!(m.ends_with("; and 9992 more"), "{m}");
        assert!(m.len() < 512, "{m}");
    }

    #[test]
    fn deep_bodies_are_checked_or_refused_on_a_small_stack() {
        let s = compile(json!({"type": ["array", "integer"], "items": {"anyOf": [{"$ref": "#"}]}}));
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
        // A test thread's 2 MiB stack, unoptimised: the deepest body allowed is checked.
        let checked = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || (s.check(&nested(MAX_DEPTH)), s.check(&nested(MAX_DEPTH + 1))))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(checked, (Ok(()), Err(Invalid::TooDeep)));
        assert_eq!(measure(br#"[{"a":"[[[["},[]]"#), (5, 2));
        let cycle = compile(json!({"$ref": "#"}));
        assert!(cycle.check(b"1").is_err());
    }

    #[test]
    fn values_are_counted_before_parsing() {
        assert_eq!(measure(b"1").0, 1);
        assert_eq!(measure(br#"{"a":[1,2,{"b":null}],"c":"x,[{"}"#).0, 7);
        assert_eq!(measure(br#"["\"", ",", "\\", 1]"#).0, 5);
        let s = compile(json!({"items": {"type": "integer"}}));
        let at_limit = serde_json::to_vec(&vec![1; MAX_VALUES - 1]).unwrap();
        assert_eq!(s.check(&at_limit), Ok(()));
        let over = serde_json::to_vec(&vec![1; MAX_VALUES]).unwrap();
        assert_eq!(s.check(&over), Err(Invalid::TooManyValues));
    }
}
