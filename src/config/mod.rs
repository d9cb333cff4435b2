//! Configuration: reads a KrakenD v3 `krakend.json`, validates it completely and builds the typed
//! runtime [`Config`]. Every error carries `file:line:col: json.path: message`; all errors are
//! reported at once; nothing is clamped. This is the only place that looks at config JSON.

mod model;

pub use model::*;

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
            write!(f, "{}:{}:{}: {}: {}", self.file, self.line, self.col, self.path, self.message)
        }
    }
}

/// Parses and validates config text. `file` is only used in messages.
pub fn parse(file: &str, text: &str) -> Result<Config, Vec<ConfigError>> {
    let _ = (file, text);
    todo!()
}

/// Reads and validates a config file.
pub fn load(path: &std::path::Path) -> Result<Config, Vec<ConfigError>> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&name, &text),
        Err(e) => Err(vec![ConfigError { file: name, line: 0, col: 0, path: String::new(), message: format!("cannot read: {e}") }]),
    }
}
