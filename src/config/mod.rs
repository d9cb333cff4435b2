//! Configuration: reads a KrakenD v3 `krakend.json`, validates it completely and builds the typed
//! runtime [`Config`]. Every error carries `file:line:col: json.path: message`; all errors are
//! reported at once; nothing is clamped. This is the only place that looks at config JSON.

mod dashboard;
mod duration;
mod fleet;
pub mod json;
mod model;
mod sensors;
mod validate;

pub use model::*;
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
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_CONFIG_BYTES => return fail(format!("larger than {MAX_CONFIG_BYTES} bytes")),
        _ => {}
    }
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&name, &text),
        Err(e) => fail(format!("cannot read: {e}")),
    }
}
