//! KrakenD's `flatmap_filter`: `move`, `del` and `append` over dot paths where `*` matches any
//! key or index and a number names an array element. The operations run in order, in place on
//! the decoded answer: walking to the matches allocates nothing, and only matched values are
//! moved (a path per match, a key string per insertion).

use serde_json::{Map, Value};

/// The wildcard segment.
pub const ANY: &str = "*";

/// One operation, its paths split on `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlatOp {
    /// `move`: every value at `from` goes to `to`. Same length: the last segment is renamed;
    /// a longer `to` embeds the value deeper under the same parent; a shorter `to` promotes it,
    /// a `*` in `to` standing for the key the match had at that position.
    Move { from: Vec<String>, to: Vec<String> },
    /// `del`: every value matching each path is removed.
    Del(Vec<Vec<String>>),
    /// `append`: the list at `from` is appended to the list at `to` (created when missing), and
    /// `from` removed; a single value is appended as one element. No wildcards.
    Append { from: Vec<String>, to: Vec<String> },
}

/// Runs `ops` in order on `data`.
pub fn apply(ops: &[FlatOp], data: &mut Map<String, Value>) {
    let mut root = Value::Object(std::mem::take(data));
    for op in ops {
        match op {
            FlatOp::Del(paths) => {
                for path in paths {
                    del(&mut root, path);
                }
            }
            FlatOp::Move { from, to } => move_all(&mut root, from, to),
            FlatOp::Append { from, to } => append(&mut root, from, to),
        }
    }
    if let Value::Object(map) = root {
        *data = map;
    }
}

/// An array index as KrakenD writes it: digits, no leading zero.
fn index(segment: &str) -> Option<usize> {
    let canonical = segment == "0" || !segment.starts_with('0');
    if !canonical || segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}

/// Calls `f` on each child of `node` that `segment` matches.
fn each_child(node: &mut Value, segment: &str, f: &mut dyn FnMut(&mut Value)) {
    match node {
        Value::Object(map) if segment == ANY => map.values_mut().for_each(f),
        Value::Object(map) => {
            if let Some(v) = map.get_mut(segment) {
                f(v);
            }
        }
        Value::Array(items) if segment == ANY => items.iter_mut().for_each(f),
        Value::Array(items) => {
            if let Some(v) = index(segment).and_then(|i| items.get_mut(i)) {
                f(v);
            }
        }
        _ => {}
    }
}

fn del(node: &mut Value, path: &[String]) {
    let Some((head, rest)) = path.split_first() else { return };
    if !rest.is_empty() {
        each_child(node, head, &mut |child| del(child, rest));
        return;
    }
    match node {
        Value::Object(map) if head == ANY => map.clear(),
        Value::Object(map) => {
            map.remove(head.as_str());
        }
        Value::Array(items) if head == ANY => items.clear(),
        Value::Array(items) => {
            if let Some(i) = index(head).filter(|i| *i < items.len()) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// The concrete paths (keys and indices) of the values matching `pattern` under `node`.
fn matches(node: &Value, pattern: &[String], at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some((head, rest)) = pattern.split_first() else {
        out.push(at.clone());
        return;
    };
    let mut visit = |key: String, child: &Value| {
        at.push(key);
        matches(child, rest, at, out);
        at.pop();
    };
    match node {
        Value::Object(map) if head == ANY => map.iter().for_each(|(k, v)| visit(k.clone(), v)),
        Value::Object(map) => {
            if let Some(v) = map.get(head.as_str()) {
                visit(head.clone(), v);
            }
        }
        Value::Array(items) if head == ANY => items.iter().enumerate().for_each(|(i, v)| visit(i.to_string(), v)),
        Value::Array(items) => {
            if let Some(v) = index(head).and_then(|i| items.get(i)) {
                visit(head.clone(), v);
            }
        }
        _ => {}
    }
}

/// Removes and returns the value at the concrete `path`.
fn take(node: &mut Value, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut parent = node;
    for key in parents {
        parent = match parent {
            Value::Object(map) => map.get_mut(key.as_str())?,
            Value::Array(items) => items.get_mut(index(key)?)?,
            _ => return None,
        };
    }
    match parent {
        Value::Object(map) => map.remove(last.as_str()),
        Value::Array(items) => index(last).filter(|i| *i < items.len()).map(|i| items.remove(i)),
        _ => None,
    }
}

/// Puts `value` at the concrete `path`, creating objects on the way (a scalar in the way
/// becomes an object); into an array, at an index up to its length. The value back when the
/// path cannot hold it.
fn put(node: &mut Value, path: &[String], value: Value) -> Result<(), Value> {
    let Some((head, rest)) = path.split_first() else {
        return Err(value);
    };
    let child = match node {
        Value::Object(map) => {
            if rest.is_empty() {
                map.insert(head.clone(), value);
                return Ok(());
            }
            if !map.contains_key(head.as_str()) {
                map.insert(head.clone(), Value::Object(Map::new()));
            }
            map.get_mut(head.as_str())
        }
        Value::Array(items) => match index(head) {
            Some(i) if rest.is_empty() && i <= items.len() => {
                items.insert(i, value);
                return Ok(());
            }
            Some(i) => items.get_mut(i),
            None => None,
        },
        _ => None,
    };
    let Some(child) = child else { return Err(value) };
    if !child.is_object() && !child.is_array() {
        *child = Value::Object(Map::new());
    }
    put(child, rest, value)
}

fn move_all(root: &mut Value, from: &[String], to: &[String]) {
    let mut found = Vec::new();
    matches(root, from, &mut Vec::with_capacity(from.len()), &mut found);
    let parent_len = from.len() - 1;
    for source in found {
        let destination: Vec<String> = if to.len() >= from.len() {
            // A rename or an embedding: under the same parent.
            source[..parent_len].iter().chain(&to[parent_len..]).cloned().collect()
        } else {
            // A promotion: `*` stands for the key the match had there.
            to.iter()
                .enumerate()
                .map(|(i, seg)| if seg == ANY { source[i].clone() } else { seg.clone() })
                .collect()
        };
        if destination == source {
            continue;
        }
        let Some(value) = take(root, &source) else { continue };
        if let Err(value) = put(root, &destination, value) {
            let _ = put(root, &source, value);
        }
    }
}

fn append(root: &mut Value, from: &[String], to: &[String]) {
    let Some(value) = take(root, from) else { return };
    let mut target = Some(&mut *root);
    for key in to {
        target = match target {
            Some(Value::Object(map)) => map.get_mut(key.as_str()),
            Some(Value::Array(items)) => index(key).and_then(|i| items.get_mut(i)),
            _ => None,
        };
    }
    let back = match (target, value) {
        (Some(Value::Array(list)), Value::Array(items)) => {
            list.extend(items);
            return;
        }
        (Some(Value::Array(list)), one) => {
            list.push(one);
            return;
        }
        // Something that is not a list is in the way: nothing happens.
        (Some(_), value) => value,
        (None, list @ Value::Array(_)) => match put(root, to, list) {
            Ok(()) => return,
            Err(v) => v,
        },
        (None, one) => match put(root, to, Value::Array(vec![one])) {
            Ok(()) => return,
            Err(Value::Array(mut v)) if v.len() == 1 => v.remove(0),
            Err(v) => v,
        },
    };
    let _ = put(root, from, back);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    fn run(ops: &[FlatOp], v: Value) -> Value {
        let Value::Object(mut map) = v else {
            panic!("not an object")
        };
        apply(ops, &mut map);
        Value::Object(map)
    }

    fn mv(from: &str, to: &str) -> FlatOp {
        FlatOp::Move {
            from: p(from),
            to: p(to),
        }
    }

    fn sample() -> Value {
        json!({"a": [{"b1": [{"c": 1, "d": "foo"}, {"c": 2, "d": "bar"}], "b2": true},
                     {"b1": [{"c": 3, "d": "vaz"}]}]})
    }

    #[test]
    fn del_with_wildcards_and_indices() {
        let out = run(&[FlatOp::Del(vec![p("a.*.b1.*.d"), p("a.0.b2")])], sample());
        assert_eq!(out, json!({"a": [{"b1": [{"c": 1}, {"c": 2}]}, {"b1": [{"c": 3}]}]}));
        let out = run(&[FlatOp::Del(vec![p("a.1"), p("nope.x"), p("a.0.b1.*")])], sample());
        assert_eq!(out, json!({"a": [{"b1": [], "b2": true}]}));
    }

    #[test]
    fn move_renames_embeds_and_promotes() {
        let out = run(&[mv("a.*.b1.*.c", "a.*.b1.*.id")], sample());
        assert_eq!(out["a"][0]["b1"][1], json!({"id": 2, "d": "bar"}));
        assert_eq!(out["a"][1]["b1"][0], json!({"id": 3, "d": "vaz"}));
        let out = run(&[mv("a.0.b1.0.c", "c")], sample());
        assert_eq!(out["c"], json!(1));
        assert_eq!(out["a"][0]["b1"][0], json!({"d": "foo"}));
        let out = run(&[mv("a.*.b2", "a.*.flags.b2")], sample());
        assert_eq!(out["a"][0]["flags"], json!({"b2": true}));
        assert!(out["a"][1].get("flags").is_none(), "no match, nothing made");
        let out = run(
            &[mv("x.*.y.z", "x.*.z")],
            json!({"x": {"k1": {"y": {"z": 1}}, "k2": {"y": {"z": 2}}}}),
        );
        assert_eq!(out, json!({"x": {"k1": {"y": {}, "z": 1}, "k2": {"y": {}, "z": 2}}}));
    }

    #[test]
    fn append_then_move_then_del_like_krakends_example() {
        let data = json!({
            "kindergarten": [{"name": "k"}],
            "schools": [{"students": [{"PK_ID": 7, "password": "s"}]}, {"students": []}]
        });
        let ops = [
            FlatOp::Append {
                from: p("kindergarten"),
                to: p("schools"),
            },
            mv("schools.0.students", "alumni"),
            FlatOp::Del(vec![p("schools")]),
            FlatOp::Del(vec![p("alumni.*.password")]),
            mv("alumni.*.PK_ID", "alumni.*.id"),
        ];
        assert_eq!(run(&ops, data), json!({"alumni": [{"id": 7}]}));
    }

    #[test]
    fn append_creates_the_list_and_leaves_non_lists_alone() {
        let ops = [FlatOp::Append {
            from: p("a"),
            to: p("b"),
        }];
        assert_eq!(run(&ops, json!({"a": [1], "b": [0]})), json!({"b": [0, 1]}));
        assert_eq!(run(&ops, json!({"a": 1})), json!({"b": [1]}));
        assert_eq!(run(&ops, json!({"a": [1], "b": 5})), json!({"a": [1], "b": 5}));
    }

    #[test]
    fn paths_that_do_not_fit_change_nothing() {
        let v = json!({"a": [1, 2], "s": "x"});
        assert_eq!(run(&[mv("a.7", "b")], v.clone()), v);
        assert_eq!(run(&[mv("s.t", "b")], v.clone()), v);
        assert_eq!(run(&[mv("a.0", "a.x")], v.clone()), v, "an array holds no key");
        assert_eq!(run(&[FlatOp::Del(vec![p("a.01"), p("a.x")])], v.clone()), v);
    }
}
