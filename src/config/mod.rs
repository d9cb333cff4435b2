//! Configuration: reads a KrakenD v3 `krakend.json`, validates it completely and builds the typed
//! runtime [`Config`]. Every error carries `file:line:col: json.path: message`; all errors are
//! reported at once; nothing is clamped. This is the only place that looks at config JSON.
//!
//! The flow, a module a step: file → JSON tree → checked → resolved → [`Config`].
//!
//! 1. [`load`] reads the file, bounded ([`read_bounded`]); [`parse`] starts from its text.
//! 2. [`json`] parses the text into a tree that keeps every value's `line:column`.
//! 3. `validate` checks the tree and builds the config: the service, endpoints and backends,
//!    with `sensors`, `fleet` and `dashboard` for gatelet's own namespaces. Checking is pure:
//!    it reads nothing but the tree, and lists the host names, files and environment
//!    variables it meets.
//! 4. `resolve` looks those names up, reads those files (JWK sets, the TLS certificate and
//!    key, the fleet's `members_file`), expands those variables and fills them in. It runs
//!    even when checking failed, on what did check, so that one run reports every error.

mod dashboard;
mod duration;
mod fleet;
mod outbox;
pub use outbox::bus_id_ok;
pub mod json;
mod model;
pub mod path;
mod resolve;
mod sensors;
mod validate;

pub use model::*;
pub use sensors::Checksum;

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given (or `<embedded>`).
    pub file: String,
    /// 1-based line of the offending value (or key).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// JSON path, e.g. `endpoints[3].backend[0].url_pattern`; empty for the root.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.col, self.path, self.message
            )
        }
    }
}

/// Parses, checks and resolves config text. `file` is only used in messages.
pub fn parse(file: &str, text: &str) -> Result<Config, Vec<ConfigError>> {
    let root = json::parse(text).map_err(|e| {
        vec![ConfigError {
            file: file.to_string(),
            line: e.pos.line,
            col: e.pos.col,
            path: String::new(),
            message: format!("invalid JSON: {}", e.message),
        }]
    })?;
    let mut checker = validate::Checker::new(file);
    let checked = validate::config(&mut checker, &root);
    match resolve::resolve(&mut checker, checked) {
        Some(mut config) if checker.errors.is_empty() => {
            checker.warnings.sort_by_key(|e| (e.line, e.col));
            config.warnings = checker.warnings;
            Ok(config)
        }
        _ => {
            // In reading order, whatever order the checks ran in.
            checker.errors.sort_by_key(|e| (e.line, e.col));
            Err(checker.errors)
        }
    }
}

/// Largest config file read; a real one is a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Reads, checks and resolves a config file.
pub fn load(path: &std::path::Path) -> Result<Config, Vec<ConfigError>> {
    let name = path.display().to_string();
    let fail = |message: String| {
        Err(vec![ConfigError {
            file: name.clone(),
            line: 0,
            col: 0,
            path: String::new(),
            message,
        }])
    };
    match read_bounded(path) {
        Ok(text) => parse(&name, &text),
        Err(e) => fail(e),
    }
}

/// Reads a config file (or `/dev/stdin`) whole, refusing more than [`MAX_CONFIG_BYTES`]: a
/// path to `/dev/zero` must be an error, not an exhausted Pi.
pub fn read_bounded(path: impl AsRef<std::path::Path>) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!("larger than {MAX_CONFIG_BYTES} bytes"));
    }
    Ok(text)
}
