//! The logger, as KrakenD's `extra_config."telemetry/logging"` sets it up: the level
//! (`RUST_LOG` wins when set, else the config's, else `info`), a `prefix`, the outputs (`stdout`,
//! `syslog`; stderr when neither is chosen) and the `format`: `default` lines, or `logstash` JSON
//! lines. Default lines carry an RFC 3339 timestamp, except under systemd (`JOURNAL_STREAM`
//! set), where journald stamps them: there every line starts with a syslog `<N>` priority
//! instead, so `journalctl -p` filters by level. Syslog datagrams go to `/dev/log` (or
//! `GATELET_SYSLOG_PATH`) without blocking: a line the socket cannot take at once is dropped,
//! never waited for on the one thread.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::time::SystemTime;

/// Where syslog datagrams go unless `GATELET_SYSLOG_PATH` says otherwise.
pub const SYSLOG_PATH: &str = "/dev/log";

/// KrakenD's default `syslog_facility`, `local3`.
pub const DEFAULT_FACILITY: u8 = 19;

/// The line layout (`format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `[prefix] timestamp LEVEL target: message`; under journald `<N>[prefix] target: message`.
    #[default]
    Default,
    /// One JSON object a line: `@timestamp`, `@version`, `level`, `message`, `module`, `target`.
    Logstash,
}

/// `extra_config."telemetry/logging"`, checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// `level`; `None` is `info` (`RUST_LOG` wins when set).
    pub level: Option<log::LevelFilter>,
    /// `prefix`, at the start of every default line; the `module` of a logstash line.
    pub prefix: String,
    /// `stdout: true`: lines go to stdout (else to stderr, unless syslog alone is chosen).
    pub stdout: bool,
    /// `syslog: true`: the facility (`syslog_facility`, default local3) datagrams are sent with.
    pub syslog: Option<u8>,
    /// `format`.
    pub format: Format,
}

/// The syslog facility code of a name (`local0`..`local7`, `user`, `daemon`...).
pub fn facility(name: &str) -> Option<u8> {
    const NAMES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u8)
}

/// The syslog priority of a level.
pub fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// KrakenD's name of a level.
fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug | log::Level::Trace => "DEBUG",
    }
}

struct Logger {
    /// `RUST_LOG` or the config's level, parsed by env_logger (its output is not used).
    filter: env_logger::Logger,
    options: Options,
    /// `prefix` without KrakenD's brackets (`[KRAKEND]` -> `KRAKEND`), else `gatelet`.
    module: String,
    /// `JOURNAL_STREAM` is set: no timestamp, a `<N>` priority first.
    journal: bool,
    stderr: bool,
    syslog: Option<UnixDatagram>,
}

impl Logger {
    /// One line as `format` lays it out: with a `<N>` priority first for journald, with a
    /// timestamp (always in a logstash line).
    fn line(&self, record: &log::Record<'_>, journal: bool, stamp: bool) -> String {
        let mut line = String::with_capacity(96);
        if journal {
            line.push('<');
            line.push(char::from(b'0' + priority(record.level())));
            line.push('>');
        }
        let now = || crate::time::rfc3339_millis(SystemTime::now());
        match self.options.format {
            Format::Default => {
                if !self.options.prefix.is_empty() {
                    line.push_str(&self.options.prefix);
                    line.push(' ');
                }
                if stamp {
                    line.push_str(&now());
                    line.push(' ');
                }
                // Under journald the priority says the level.
                if !journal {
                    line.push_str(level_name(record.level()));
                    line.push(' ');
                }
                let _ = std::fmt::Write::write_fmt(&mut line, format_args!("{}: {}", record.target(), record.args()));
            }
            Format::Logstash => {
                let doc = serde_json::json!({
                    "@timestamp": now(),
                    "@version": 1,
                    "level": level_name(record.level()),
                    "message": record.args().to_string(),
                    "module": self.module,
                    "target": record.target(),
                });
                line.push_str(&doc.to_string());
            }
        }
        line
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        if self.options.stdout || self.stderr {
            let mut line = self.line(record, self.journal, !self.journal);
            line.push('\n');
            let _ = match self.options.stdout {
                true => std::io::stdout().lock().write_all(line.as_bytes()),
                false => std::io::stderr().lock().write_all(line.as_bytes()),
            };
        }
        if let (Some(socket), Some(facility)) = (&self.syslog, self.options.syslog) {
            // RFC 3164 without a timestamp: the syslog daemon stamps what it receives.
            let pri = u16::from(facility) * 8 + u16::from(priority(record.level()));
            let mut datagram = format!("<{pri}>gatelet[{}]: ", std::process::id());
            datagram.push_str(&self.line(record, false, false));
            // Non-blocking: a full socket drops the line rather than stall every request.
            let _ = socket.send(datagram.as_bytes());
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

/// The socket syslog lines go to: `GATELET_SYSLOG_PATH`, else [`SYSLOG_PATH`]; non-blocking.
fn syslog_socket() -> std::io::Result<UnixDatagram> {
    let path = std::env::var_os("GATELET_SYSLOG_PATH").unwrap_or_else(|| SYSLOG_PATH.into());
    let socket = UnixDatagram::unbound()?;
    socket.connect(&path)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Installs the logger (once; later calls only change the maximum level). A syslog socket that
/// cannot be opened is reported on stderr, and lines go to stderr instead.
pub fn init(options: &Options) {
    let default = options
        .level
        .unwrap_or(log::LevelFilter::Info)
        .as_str()
        .to_ascii_lowercase();
    let filter = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default)).build();
    let max = filter.filter();
    let syslog = options.syslog.and_then(|_| {
        syslog_socket()
            .inspect_err(|e| eprintln!("gatelet: cannot log to syslog: {e}; logging to stderr"))
            .ok()
    });
    let module = options.prefix.trim_start_matches('[').trim_end_matches(']');
    let logger = Logger {
        filter,
        module: if module.is_empty() { "gatelet" } else { module }.to_string(),
        journal: std::env::var_os("JOURNAL_STREAM").is_some(),
        stderr: !options.stdout && syslog.is_none(),
        syslog,
        options: options.clone(),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    } else if let Some(level) = options.level
        && std::env::var_os("RUST_LOG").is_none()
    {
        log::set_max_level(level);
    }
}
