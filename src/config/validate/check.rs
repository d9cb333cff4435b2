//! The checker toolkit every config section uses: [`Checker`] reads typed values and collects
//! errors with JSON path and `line:column`, and what is left for resolution ([`Unresolved`]);
//! [`Obj`] takes an object's keys one by one (required, or optional with a default) and
//! reports the unknown ones; [`choice`] and [`seconds_or_duration`] are the small readers
//! built on them.

use super::*;

/// Collects errors, and what only resolution can finish, while the tree is walked.
pub struct Checker<'f> {
    file: &'f str,
    /// Everything found so far.
    pub errors: Vec<ConfigError>,
    /// What is valid but probably not meant (`gatelet check` prints them, `run` logs them).
    pub warnings: Vec<ConfigError>,
    /// Names, files and variables for resolution, as checking meets them.
    pub unresolved: Unresolved,
}

impl<'f> Checker<'f> {
    /// A checker for `file` (used in messages only).
    pub fn new(file: &'f str) -> Self {
        Checker {
            file,
            errors: Vec::new(),
            warnings: Vec::new(),
            unresolved: Unresolved::default(),
        }
    }

    /// Records one error.
    pub fn warn(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.warnings.push(ConfigError {
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn expected(&mut self, node: &Node, path: &str, what: &str) {
        self.error(node.pos, path, format!("expected {what}, found {}", node.value.kind()));
    }

    /// The node as an object whose keys will be checked; reports duplicates.
    pub fn object<'n>(&mut self, node: &'n Node, path: &str) -> Option<Obj<'n>> {
        let Value::Object(members) = &node.value else {
            self.expected(node, path, "an object");
            return None;
        };
        let mut used = vec![false; members.len()];
        for (i, (key, _)) in members.iter().enumerate() {
            if let Some(first) = members[..i].iter().find(|(k, _)| k.name == key.name) {
                self.error(
                    key.pos,
                    &join(path, &key.name),
                    format!(
                        "duplicate key \"{}\" (first at {}:{})",
                        key.name, first.0.pos.line, first.0.pos.col
                    ),
                );
                used[i] = true;
            }
        }
        Some(Obj {
            pos: node.pos,
            path: path.to_string(),
            members,
            used,
        })
    }

    /// A string value.
    pub fn string<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n str> {
        match &node.value {
            Value::String(s) => Some(s),
            _ => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    /// A string that must not be empty.
    pub fn nonempty<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n str> {
        let s = self.string(node, path)?;
        if s.is_empty() {
            self.error(node.pos, path, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// A boolean value.
    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.expected(node, path, "true or false");
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub fn integer(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        let Value::Number(text) = &node.value else {
            self.expected(node, path, "an integer");
            return None;
        };
        let Ok(n) = text.parse::<i64>() else {
            let whole = text.bytes().all(|b| b.is_ascii_digit() || b == b'-');
            let why = if whole {
                "is out of range"
            } else {
                "must be a whole number"
            };
            self.error(node.pos, path, format!("{text} {why} (between {min} and {max})"));
            return None;
        };
        if n < min || n > max {
            self.error(node.pos, path, format!("{n} is out of range (between {min} and {max})"));
            return None;
        }
        Some(n)
    }

    /// A Go duration string.
    pub fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let Value::String(text) = &node.value else {
            self.expected(node, path, "a duration string such as \"2s\"");
            return None;
        };
        match duration::parse(text) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(node.pos, path, message);
                None
            }
        }
    }

    /// A duration that must be more than zero.
    pub fn positive_duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let d = self.duration(node, path)?;
        if d.is_zero() {
            self.error(node.pos, path, "must be more than 0");
            return None;
        }
        Some(d)
    }

    /// An array of strings, each with its position and path.
    pub fn strings<'n>(&mut self, node: &'n Node, path: &str) -> Option<Vec<(&'n str, Pos, String)>> {
        let Value::Array(items) = &node.value else {
            self.expected(node, path, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            match self.string(item, &p) {
                Some(s) => out.push((s, item.pos, p)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// Where a value is written: its position and JSON path, for errors found after checking.
#[derive(Debug, Clone)]
pub struct Site {
    /// Where the value starts.
    pub pos: Pos,
    /// Its JSON path.
    pub path: String,
}

impl Site {
    /// The value at `pos`, `path`.
    pub fn new(pos: Pos, path: &str) -> Self {
        Site {
            pos,
            path: path.to_string(),
        }
    }
}

/// What checking leaves for resolution: every host name to look up, file to read and
/// environment variable to expand, with where the config names it. Checking itself reads
/// nothing but the config text; the values these fill in stay empty (an address with an
/// unspecified IP, no JWKs, no TLS) until then.
#[derive(Debug, Default)]
pub struct Unresolved {
    /// Host names, in the order met (an IP address needs no lookup).
    pub lookups: Vec<Lookup>,
    /// TCP sensors: (sensor name, the authority of its `address`), for the address a name
    /// resolves to.
    pub sensor_addresses: Vec<(String, String)>,
    /// `auth/validator.jwk_local_path` files.
    pub jwk_sets: Vec<JwkFile>,
    /// The service `tls` files, unless it is disabled.
    #[cfg(feature = "tls")]
    pub tls: Option<TlsFiles>,
    /// `gatelet/fleet.members_file`.
    pub members_file: Option<MembersFile>,
    /// `gatelet/fleet.headers`, whose `${ENV}` references are expanded then.
    pub fleet_headers: Vec<FleetHeader>,
    /// `gatelet/outbox.deliver` credentials, expanded the same way.
    pub outbox_headers: Vec<FleetHeader>,
    /// Sensors with `events.forward` (checked against `gatelet/outbox` once both are read).
    pub forwarding_sensors: Vec<Site>,
}

/// A host name to look up.
#[derive(Debug)]
pub struct Lookup {
    /// The entry as written, for messages.
    pub entry: String,
    /// The name, without brackets.
    pub name: String,
    /// The port.
    pub port: u16,
    /// [`Host::authority`](crate::config::Host::authority) of the hosts it resolves.
    pub authority: String,
    /// Where it is written.
    pub at: Site,
}

/// A JWK set file of an endpoint's validator.
#[derive(Debug)]
pub struct JwkFile {
    /// Index of the endpoint in `endpoints`.
    pub endpoint: usize,
    /// The file name.
    pub file: String,
    /// The validator's `alg`; `None` when invalid (already reported): the file is still read.
    pub alg: Option<crate::auth::jwt::Alg>,
    /// Where `jwk_local_path` is written.
    pub at: Site,
}

/// The service `tls` files.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub struct TlsFiles {
    /// `public_key`: the certificate chain.
    pub chain: String,
    /// `private_key`.
    pub key: String,
    /// `min_version` is `TLS13`.
    pub tls13_only: bool,
    /// Where `public_key` is written; every TLS error points there.
    pub at: Site,
}

/// The fleet's `members_file`.
#[derive(Debug)]
pub struct MembersFile {
    /// The file name.
    pub file: String,
    /// Where `members_file` is written.
    pub at: Site,
    /// The `gatelet/fleet` object, for the member count.
    pub fleet: Site,
    /// The valid inline `members`: ids in the file may not repeat theirs.
    pub inline: Vec<Member>,
}

/// One of the fleet's `headers`.
#[derive(Debug)]
pub struct FleetHeader {
    /// The header name.
    pub name: http::HeaderName,
    /// The value as written, `${ENV}` references and all.
    pub template: String,
    /// Where the value is written.
    pub at: Site,
}

/// An object being checked: every key must be taken by [`Obj::take`] before [`Obj::finish`],
/// or it is reported as not supported.
pub struct Obj<'n> {
    /// Where the object starts.
    pub pos: Pos,
    /// Its JSON path.
    pub path: String,
    members: &'n [(Key, Node)],
    used: Vec<bool>,
}

impl<'n> Obj<'n> {
    /// The value of `key` (first occurrence) and its path; marks the key as known.
    pub fn take(&mut self, key: &str) -> Option<(&'n Node, String)> {
        let i = self.members.iter().position(|(k, _)| k.name == key)?;
        self.used[i] = true;
        Some((&self.members[i].1, join(&self.path, key)))
    }

    /// Like [`Obj::take`], but a missing key is an error.
    pub fn require(&mut self, c: &mut Checker, key: &str, what: &str) -> Option<(&'n Node, String)> {
        let found = self.take(key);
        if found.is_none() {
            c.error(self.pos, &self.path, format!("missing required key \"{key}\" ({what})"));
        }
        found
    }

    /// The value of an optional `key` as `read` makes it, or `default` when the key is absent;
    /// `None` after an error. `read` is often one of [`Checker`]'s readers as it is
    /// (`obj.optional(c, "disabled", false, Checker::boolean)`).
    pub fn optional<'f, T>(
        &mut self,
        c: &mut Checker<'f>,
        key: &str,
        default: T,
        read: impl FnOnce(&mut Checker<'f>, &'n Node, &str) -> Option<T>,
    ) -> Option<T> {
        match self.take(key) {
            Some((n, p)) => read(c, n, &p),
            None => Some(default),
        }
    }

    /// An optional array of strings under `key`; `default` when absent, `None` after an error.
    pub fn string_list(&mut self, c: &mut Checker, key: &str, default: &[&str]) -> Option<Vec<String>> {
        let default = default.iter().map(|s| s.to_string()).collect();
        self.optional(c, key, default, |c, n, p| {
            Some(c.strings(n, p)?.into_iter().map(|(s, _, _)| s.to_string()).collect())
        })
    }

    /// The keys not taken yet, with their values, marking them as known.
    pub fn rest(&mut self) -> Vec<(&'n Key, &'n Node)> {
        let mut out = Vec::new();
        for (i, (k, v)) in self.members.iter().enumerate() {
            if !self.used[i] {
                self.used[i] = true;
                out.push((k, v));
            }
        }
        out
    }

    /// Reports every key that was not taken.
    pub fn finish(self, c: &mut Checker) {
        for (i, (key, _)) in self.members.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let path = join(&self.path, &key.name);
            let message = match KRAKEND_KEYS.iter().find(|(k, _)| *k == key.name) {
                Some((_, "")) => format!("KrakenD key \"{}\" is not supported by gatelet", key.name),
                Some((_, hint)) => format!("KrakenD key \"{}\" is not supported by gatelet; {hint}", key.name),
                None => format!("unknown key \"{}\": not supported by gatelet", key.name),
            };
            c.error(key.pos, &path, message);
        }
    }
}

/// `path.key`, or `key` at the root.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// One of a fixed set of names (`supported`); `krakend_only` are KrakenD's other values, which
/// get "not supported by gatelet" rather than "unknown".
pub fn choice<T: Copy>(
    c: &mut Checker,
    node: &Node,
    path: &str,
    what: &str,
    supported: &[(&str, T)],
    krakend_only: &[&str],
) -> Option<T> {
    let s = c.string(node, path)?;
    if let Some((_, v)) = supported.iter().find(|(name, _)| *name == s) {
        return Some(*v);
    }
    let names = supported.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let m = if krakend_only.contains(&s) {
        format!("{what} \"{s}\" is not supported by gatelet ({names})")
    } else {
        format!("unknown {what} \"{s}\" ({names})")
    };
    c.error(node.pos, path, m);
    None
}

/// A duration given as KrakenD's integer seconds or as a Go duration string; more than zero.
pub(super) fn seconds_or_duration(c: &mut Checker, node: &Node, path: &str) -> Option<Duration> {
    match &node.value {
        Value::Number(_) => c
            .integer(node, path, 1, 86_400 * 365)
            .map(|s| Duration::from_secs(s as u64)),
        _ => c.positive_duration(node, path),
    }
}
