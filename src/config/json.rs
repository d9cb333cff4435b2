//! A small JSON reader that remembers where every value and key starts (`line:column`), so
//! config errors can point at the exact spot. It keeps object members in file order and keeps
//! duplicate keys (validation reports them), bounds nesting depth, and never panics on any
//! input. Only `config` uses it; request and backend bodies go through `serde_json`.

/// A 1-based position in the config text. Columns count characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

/// A JSON value with the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value.
    pub value: Value,
}

/// An object member's key, with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// Where the key's opening quote is.
    pub pos: Pos,
    /// The unescaped key.
    pub name: String,
}

/// A JSON value; numbers keep their source text so integers are never rounded through `f64`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written (already checked against the JSON grammar).
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Node>),
    /// An object, members in file order, duplicates kept.
    Object(Vec<(Key, Node)>),
}

impl Value {
    /// The JSON type name, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// A syntax error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// What it expected.
    pub message: String,
}

/// Deepest nesting of arrays and objects accepted; a config never needs more.
pub const MAX_DEPTH: usize = 64;

/// Parses a whole document: one value, surrounded only by whitespace.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
        line: 1,
        line_start: 0,
        mark: std::cell::Cell::new((0, 1)),
    };
    // A UTF-8 byte order mark is tolerated, as editors on other systems write one.
    if text.starts_with('\u{feff}') {
        p.at = 3;
        p.line_start = 3;
        p.mark.set((3, 1));
    }
    p.skip_ws();
    let node = p.value(0)?;
    p.skip_ws();
    if p.at < p.bytes.len() {
        return Err(p.error("unexpected text after the end of the JSON document"));
    }
    Ok(node)
}

struct Parser<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
    line: usize,
    line_start: usize,
    /// `(byte offset, column)` of the last position computed on the current line, so columns
    /// are counted incrementally: linear time even for a config written on one long line.
    mark: std::cell::Cell<(usize, usize)>,
}

impl Parser<'_> {
    fn pos(&self) -> Pos {
        self.pos_at(self.at)
    }

    fn pos_at(&self, at: usize) -> Pos {
        let (mut from, mut col) = self.mark.get();
        if from < self.line_start || from > at {
            (from, col) = (self.line_start, 1);
        }
        col += self.bytes[from..at].iter().filter(|b| (**b & 0xc0) != 0x80).count();
        self.mark.set((at, col));
        Pos { line: self.line, col }
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos: self.pos(),
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' => self.at += 1,
                b'\n' => {
                    self.at += 1;
                    self.line += 1;
                    self.line_start = self.at;
                }
                _ => break,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let pos = self.pos();
        let value = match self.peek() {
            None => return Err(self.error("unexpected end of file: expected a value")),
            Some(b'{') => self.object(depth)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Value::String(self.string()?),
            Some(b't') => self.word("true", Value::Bool(true))?,
            Some(b'f') => self.word("false", Value::Bool(false))?,
            Some(b'n') => self.word("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => return Err(self.error(format!("expected a value, found {}", self.found()))),
        };
        Ok(Node { pos, value })
    }

    fn found(&self) -> String {
        match self.text[self.at..].chars().next() {
            None => "the end of the file".to_string(),
            Some(c) if c.is_control() => format!("{:?}", c),
            Some(c) => format!("'{c}'"),
        }
    }

    fn word(&mut self, word: &str, value: Value) -> Result<Value, SyntaxError> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error(format!("expected a value, found {}", self.found())))
        }
    }

    fn enter(&self, depth: usize) -> Result<usize, SyntaxError> {
        if depth >= MAX_DEPTH {
            Err(self.error(format!("nesting deeper than {MAX_DEPTH} levels")))
        } else {
            Ok(depth + 1)
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let depth = self.enter(depth)?;
        self.at += 1;
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error(format!("expected a key in double quotes, found {}", self.found())));
            }
            let pos = self.pos();
            let name = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error(format!("expected ':' after the key, found {}", self.found())));
            }
            self.at += 1;
            self.skip_ws();
            let node = self.value(depth)?;
            members.push((Key { pos, name }, node));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.error(format!("expected ',' or '}}', found {}", self.found()))),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let depth = self.enter(depth)?;
        self.at += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error(format!("expected ',' or ']', found {}", self.found()))),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        match digits.and_then(|d| u32::from_str_radix(d, 16).ok()) {
            Some(v) => {
                self.at += 4;
                Ok(v)
            }
            None => Err(self.error("expected 4 hex digits after \\u")),
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let start = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.push_str(&self.text[start..self.at]);
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.at += 1;
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                if !self.bytes[self.at..].starts_with(b"\\u") {
                                    return Err(self.error("unpaired UTF-16 surrogate in \\u escape"));
                                }
                                self.at += 2;
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(self.error("unpaired UTF-16 surrogate in \\u escape"));
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            match char::from_u32(code) {
                                Some(c) => {
                                    out.push(c);
                                    continue;
                                }
                                None => return Err(self.error("unpaired UTF-16 surrogate in \\u escape")),
                            }
                        }
                        _ => return Err(self.error(format!("invalid escape \\{}", self.found()))),
                    };
                    self.at += 1;
                    out.push(c);
                }
                Some(_) => return Err(self.error("control character in string: escape it")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let s = p.at;
            while p.peek().is_some_and(|b| b.is_ascii_digit()) {
                p.at += 1;
            }
            p.at - s
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let int_start = self.at;
        let n = digits(self);
        if n == 0 {
            return Err(self.error("expected a digit"));
        }
        if n > 1 && self.bytes[int_start] == b'0' {
            return Err(SyntaxError {
                pos: self.pos_at(int_start),
                message: "numbers cannot have leading zeros".to_string(),
            });
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return Err(self.error("expected a digit after '.'"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        Ok(Value::Number(self.text[start..self.at].to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, usize, String) {
        let e = parse(text).unwrap_err();
        (e.pos.line, e.pos.col, e.message)
    }

    #[test]
    fn positions_are_line_and_character_column() {
        let doc = parse("{\n  \"a\": [1, \"é\", {\"b\": null}],\n  \"c\": true\n}").unwrap();
        let Value::Object(m) = doc.value else { panic!() };
        assert_eq!((m[0].0.pos.line, m[0].0.pos.col), (2, 3));
        assert_eq!((m[0].1.pos.line, m[0].1.pos.col), (2, 8));
        let Value::Array(items) = &m[0].1.value else { panic!() };
        assert_eq!(items[2].pos.col, 17, "columns count characters, not bytes");
        assert_eq!((m[1].1.pos.line, m[1].1.pos.col), (3, 8));
    }

    #[test]
    fn values_round_trip() {
        let doc = parse(r#"[-1.5e3, 0, "a\n\u00e9\ud83d\ude00\"", false, {}]"#).unwrap();
        let Value::Array(v) = doc.value else { panic!() };
        assert_eq!(v[0].value, Value::Number("-1.5e3".into()));
        assert_eq!(v[1].value, Value::Number("0".into()));
        assert_eq!(v[2].value, Value::String("a\né😀\"".into()));
        assert_eq!(v[3].value, Value::Bool(false));
        assert_eq!(v[4].value, Value::Object(vec![]));
    }

    #[test]
    fn duplicate_keys_are_kept_for_validation_to_report() {
        let doc = parse(r#"{"a": 1, "a": 2}"#).unwrap();
        let Value::Object(m) = doc.value else { panic!() };
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        assert_eq!(err("{\n  \"a\": 1,\n}").0, 3);
        assert_eq!(err("{\"a\" 1}"), (1, 6, "expected ':' after the key, found '1'".into()));
        assert_eq!(err("[1 2]"), (1, 4, "expected ',' or ']', found '2'".into()));
        assert_eq!(err("{\"a\": tru}").1, 7);
        assert_eq!(err("01").2, "numbers cannot have leading zeros");
        assert_eq!(err("\"abc").2, "unterminated string");
        assert_eq!(err("\"a\tb\"").2, "control character in string: escape it");
        assert_eq!(err("\"\\ud800\"").2, "unpaired UTF-16 surrogate in \\u escape");
        assert_eq!(err("{} x").2, "unexpected text after the end of the JSON document");
        assert_eq!(err("").2, "unexpected end of file: expected a value");
        assert_eq!(err("1.").2, "expected a digit after '.'");
        assert_eq!(err("[\"\\x\"]").2, "invalid escape \\'x'");
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(err(&deep).2.starts_with("nesting deeper"));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
    }

    /// Where the character after the last one of `text` would be: the furthest a syntax error
    /// may point.
    fn end_of(text: &str) -> (usize, usize) {
        let last_line = text.rsplit('\n').next().unwrap_or_default();
        (text.matches('\n').count() + 1, last_line.chars().count() + 1)
    }

    const DOC: &str = "{\"a\": [1, -2.5e-3, \"x\\u00e9\\ud83d\\ude00\", {\"b\": null, \"c\": true}],\n  \"d\": \"é\"}";

    #[test]
    fn every_truncation_of_a_document_is_an_error_within_it() {
        assert!(parse(DOC).is_ok());
        let prefixes = (0..DOC.len()).filter_map(|end| DOC.get(..end));
        for prefix in prefixes {
            let e = parse(prefix).expect_err(prefix);
            let at = (e.pos.line, e.pos.col);
            assert!(at >= (1, 1) && at <= end_of(prefix), "{prefix:?}: {e:?}");
        }
    }

    #[test]
    fn a_document_missing_one_character_is_read_as_serde_json_reads_it() {
        for (i, _) in DOC.char_indices() {
            let mut text = DOC.to_string();
            text.remove(i);
            let strict = serde_json::from_str::<serde_json::Value>(&text);
            match parse(&text) {
                Ok(_) => assert!(strict.is_ok(), "{text:?} accepted, serde_json: {strict:?}"),
                Err(e) => {
                    assert!(strict.is_err(), "{text:?} refused: {e:?}");
                    let at = (e.pos.line, e.pos.col);
                    assert!(at >= (1, 1) && at <= end_of(&text), "{text:?}: {e:?}");
                }
            }
        }
    }
}
