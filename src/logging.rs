//! Logging set-up: `RUST_LOG` when set, else the config's level (KrakenD's
//! `extra_config."telemetry/logging".level`), else `info`. Under systemd (`JOURNAL_STREAM` set)
//! lines carry no timestamp (journald adds its own) and start with a syslog `<N>` priority so
//! `journalctl -p` filters by level.

use std::io::Write;

/// The syslog priority of a level.
pub fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Installs the logger (once; later calls only change the maximum level).
pub fn init(config_level: Option<log::LevelFilter>) {
    let default = config_level
        .unwrap_or(log::LevelFilter::Info)
        .as_str()
        .to_ascii_lowercase();
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.format(|buf, record| {
            writeln!(
                buf,
                "<{}>{}: {}",
                priority(record.level()),
                record.target(),
                record.args()
            )
        });
    }
    if builder.try_init().is_err()
        && let Some(level) = config_level
        && std::env::var_os("RUST_LOG").is_none()
    {
        log::set_max_level(level);
    }
}
