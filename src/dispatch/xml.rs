//! An answer as XML, in the shape KrakenD's `xml` output encoding gives it (krakend-xml, on
//! mxj): the merged object under a `<doc>` root — or under its key, when it has just one and
//! that is not an array —; each key an element, in key order; an array as the element
//! repeated; `null` and `{}` as empty elements; in an object, `-name` keys with a string,
//! number or boolean as attributes and `#text` as the element's text (how SIRI's `version="2.0"`
//! is written in JSON). Unlike mxj, every document is well-formed: text and attribute values
//! are escaped, characters XML cannot carry become U+FFFD, and a character a name cannot hold
//! becomes `_` (an empty name is `_`).

use std::io::Write as _;

use serde_json::{Map, Value};

/// The answer `data` as an XML document.
pub fn document(data: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    match data.iter().next() {
        Some((key, value)) if data.len() == 1 && !value.is_array() => element(&mut out, key, value),
        _ => object(&mut out, "doc", data),
    }
    out
}

fn element(out: &mut Vec<u8>, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                element(out, name, item);
            }
        }
        Value::Object(map) => object(out, name, map),
        Value::Null => {
            out.push(b'<');
            write_name(out, name);
            out.extend_from_slice(b"/>");
        }
        scalar => {
            out.push(b'<');
            write_name(out, name);
            out.push(b'>');
            text(out, scalar, false);
            out.extend_from_slice(b"</");
            write_name(out, name);
            out.push(b'>');
        }
    }
}

/// A `-name` key whose value can be an attribute (a `null` one is left out).
fn attribute<'a>(key: &'a str, value: &Value) -> Option<&'a str> {
    let name = key.strip_prefix('-').filter(|n| !n.is_empty())?;
    matches!(
        value,
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null
    )
    .then_some(name)
}

fn object(out: &mut Vec<u8>, name: &str, map: &Map<String, Value>) {
    out.push(b'<');
    write_name(out, name);
    let mut children = false;
    for (i, (key, value)) in map.iter().enumerate() {
        let Some(attr) = attribute(key, value) else {
            children = true;
            continue;
        };
        // Two keys that become the same attribute name: the first one counts.
        let taken = map
            .iter()
            .take(i)
            .any(|(k, v)| attribute(k, v).is_some_and(|a| same_name(a, attr)));
        if value.is_null() || taken {
            continue;
        }
        out.push(b' ');
        write_name(out, attr);
        out.extend_from_slice(b"=\"");
        text(out, value, true);
        out.push(b'"');
    }
    if !children {
        out.extend_from_slice(b"/>");
        return;
    }
    out.push(b'>');
    let body = map.get("#text").filter(|v| !v.is_array() && !v.is_object());
    if let Some(t) = body {
        text(out, t, false);
    }
    for (key, value) in map {
        if attribute(key, value).is_none() && !(key == "#text" && body.is_some()) {
            element(out, key, value);
        }
    }
    out.extend_from_slice(b"</");
    write_name(out, name);
    out.push(b'>');
}

/// A scalar as character data (or an attribute value), escaped.
fn text(out: &mut Vec<u8>, value: &Value, in_attribute: bool) {
    match value {
        Value::String(s) => escape(out, s, in_attribute),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        _ => {}
    }
}

fn escape(out: &mut Vec<u8>, s: &str, in_attribute: bool) {
    let mut start = 0;
    for (i, ch) in s.char_indices() {
        let replacement: &str = match ch {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&apos;",
            // A parser would fold these in an attribute, and a CR anywhere.
            '\r' => "&#13;",
            '\n' if in_attribute => "&#10;",
            '\t' if in_attribute => "&#9;",
            '\t' | '\n' => continue,
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => "\u{fffd}",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[start..i]);
        out.extend_from_slice(replacement.as_bytes());
        start = i + ch.len_utf8();
    }
    out.extend_from_slice(&s.as_bytes()[start..]);
}

/// XML 1.0's `NameStartChar`.
fn name_start(c: char) -> bool {
    matches!(c, ':' | 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0's `NameChar`.
fn name_char(c: char) -> bool {
    name_start(c) || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// The characters of `name` as written: `_` for each one a name cannot hold there.
fn name_chars(name: &str) -> impl Iterator<Item = char> + '_ {
    let empty = name.is_empty().then_some('_');
    empty.into_iter().chain(name.chars().enumerate().map(|(i, c)| {
        let ok = if i == 0 { name_start(c) } else { name_char(c) };
        if ok { c } else { '_' }
    }))
}

fn write_name(out: &mut Vec<u8>, name: &str) {
    if !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| if i == 0 { name_start(c) } else { name_char(c) })
    {
        out.extend_from_slice(name.as_bytes());
        return;
    }
    let mut buf = [0; 4];
    for c in name_chars(name) {
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

fn same_name(a: &str, b: &str) -> bool {
    name_chars(a).eq(name_chars(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn xml(v: Value) -> String {
        let Value::Object(map) = v else { panic!() };
        String::from_utf8(document(&map)).unwrap()
    }

    #[test]
    fn krakend_xml_shape() {
        // krakend-xml's own test case.
        assert_eq!(
            xml(json!({"a": {"content": "supu & tupu"}, "content": "tupu", "foo": 42})),
            "<doc><a><content>supu &amp; tupu</content></a><content>tupu</content><foo>42</foo></doc>"
        );
        assert_eq!(xml(json!({"key": "value"})), "<key>value</key>");
        assert_eq!(
            xml(json!({"stops": [1, 2]})),
            "<doc><stops>1</stops><stops>2</stops></doc>"
        );
        assert_eq!(xml(json!({})), "<doc/>");
        assert_eq!(
            xml(json!({"a": null, "b": {}, "c": [], "d": [[1], {"e": true}], "f": -1.5})),
            "<doc><a/><b/><d>1</d><d><e>true</e></d><f>-1.5</f></doc>"
        );
    }

    #[test]
    fn attributes_and_text_make_siri() {
        assert_eq!(
            xml(
                json!({"Siri": {"-version": "2.0", "ServiceDelivery": {"ResponseTimestamp": "2026-11-23T05:02:10Z",
                "VehicleMonitoringDelivery": {"-version": "2.0", "VehicleActivity": [
                    {"RecordedAtTime": "2026-11-23T05:02:09Z", "Bearing": {"-unit": "deg", "#text": 90}}]}}}})
            ),
            "<Siri version=\"2.0\"><ServiceDelivery><ResponseTimestamp>2026-11-23T05:02:10Z</ResponseTimestamp>\
             <VehicleMonitoringDelivery version=\"2.0\"><VehicleActivity><Bearing unit=\"deg\">90</Bearing>\
             <RecordedAtTime>2026-11-23T05:02:09Z</RecordedAtTime></VehicleActivity></VehicleMonitoringDelivery>\
             </ServiceDelivery></Siri>"
        );
        assert_eq!(xml(json!({"v": {"-a": 1, "-b": null}})), "<v a=\"1\"/>");
        assert_eq!(xml(json!({"v": {"-a": {"x": 1}}})), "<v><_a><x>1</x></_a></v>");
    }

    #[test]
    fn always_well_formed() {
        assert_eq!(
            xml(json!({"v": "<a href='x'>&\"\u{1}\r\n\t"})),
            "<v>&lt;a href=&apos;x&apos;&gt;&amp;&quot;\u{fffd}&#13;\n\t</v>"
        );
        assert_eq!(xml(json!({"v": {"-a": "1\n2\t"}})), "<v a=\"1&#10;2&#9;\"/>");
        assert_eq!(
            xml(json!({"1st": 1, "a b": 2, "": 3, "ok-1.x": 4, "ünï": 5})),
            "<doc><_>3</_><_st>1</_st><a_b>2</a_b><ok-1.x>4</ok-1.x><ünï>5</ünï></doc>"
        );
        assert_eq!(xml(json!({"v": {"-a b": 1, "-a_b": 2}})), "<v a_b=\"1\"/>");
    }
}
