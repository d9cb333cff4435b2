//! Configuration: reads a KrakenD v3 `krakend.json`, validates it completely and builds the typed
//! runtime [`Config`]. Every error carries `file:line:col: json.path: message`; all errors are
//! reported at once; nothing is clamped. This is the only place that looks at config JSON.

mod dashboard;
mod duration;
mod fleet;
pub mod json;
mod model;
pub mod path;
mod sensors;
mod validate;

pub use model::*;
pub use sensors::Checksum;
pub use validate::host;

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

/// Parses and validates config text. `file` is only used in messages.
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
    match validate::config(&mut checker, &root) {
        Some(config) if checker.errors.is_empty() => Ok(config),
        _ => {
            // In reading order, whatever order the checks ran in.
            checker.errors.sort_by_key(|e| (e.line, e.col));
            Err(checker.errors)
        }
    }
}

/// Largest config file read; a real one is a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Reads and validates a config file.
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

/// A file a config names (JWK set, fleet members): a regular file (a FIFO would block start-up
/// or a reload on the one thread), read within [`MAX_CONFIG_BYTES`].
pub fn read_named_file(path: &str) -> Result<String, String> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err("not a regular file".to_string()),
        Ok(_) => read_bounded(path),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}
