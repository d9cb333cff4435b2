//! The command line, compatible with KrakenD's where they overlap: `run [-c FILE] [-p PORT]
//! [-d]`, `check [-t] [-l] [-d] -c FILE` (bundled as KrakenD's `-tlc FILE` too), `--version`,
//! `--help` on every command. Maps every outcome to an exit code (usage errors: 2); owns no
//! logic of its own beyond choosing the config, printing errors and `check`'s reports.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;

use crate::config::{self, Config, ConfigError};
use crate::listener::{self, Options};

/// The config `run` uses without `-c`: `/__health` and a demo endpoint over gatelet's own
/// built-in routes, so it shows something on any Linux box with nothing else running.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.json");

/// The first thermal zone, in millidegrees Celsius, where the kernel has one.
pub const THERMAL_ZONE: &str = "/sys/class/thermal/thermal_zone0/temp";

/// The embedded default config for this machine: with a `temperature` sensor on
/// [`THERMAL_ZONE`] in `/system` when the machine has one (a Pi does; many VMs do not, and a
/// sensor that can never be read would only make `/__health` say `degraded`).
pub fn default_config(thermal_zone: bool) -> String {
    if !thermal_zone {
        return DEFAULT_CONFIG.to_string();
    }
    let sensor = r#""temperature": {"decode": "number", "scale": 0.001, "max_age": "10s", "file": {"path": "/sys/class/thermal/thermal_zone0/temp", "interval": "2s"}},
      "memory": {"decode": "kv""#;
    let backend = r#"{"extra_config": {"gatelet/sensor": {"name": "temperature"}}, "allow": ["value"], "mapping": {"value": "temperature_c"}},
        {"extra_config": {"gatelet/sensor": {"name": "memory"}}"#;
    DEFAULT_CONFIG
        .replacen(r#""memory": {"decode": "kv""#, sensor, 1)
        .replacen(r#"{"extra_config": {"gatelet/sensor": {"name": "memory"}}"#, backend, 1)
}

#[derive(FromArgs, Debug)]
/// gatelet: a small API gateway that runs KrakenD v3 configs.
#[argh(
    example = "Run the embedded demo config on 127.0.0.1:8080:\n$ {command_name} run",
    example = "Check a config the way `krakend check -tlc` does:\n$ {command_name} check -tlc krakend.json",
    note = "Usage errors exit with 2, a bad config with 1."
)]
pub struct Args {
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    Run(Run),
    Check(Check),
}

#[derive(FromArgs, Debug)]
/// Run the gateway.
#[argh(
    subcommand,
    name = "run",
    example = "$ {command_name} -c /etc/gatelet/krakend.json -p 8080",
    note = "RUST_LOG (e.g. RUST_LOG=debug) overrides the config's telemetry/logging level."
)]
struct Run {
    /// config file (default: the embedded demo config)
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
    /// port to listen on, overriding the config's `port`
    #[argh(option, short = 'p')]
    port: Option<u16>,
    /// serve /__debug/
    #[argh(switch, short = 'd')]
    debug: bool,
}

#[derive(FromArgs, Debug)]
/// Validate a config file and exit: every error with file:line:col and its JSON path.
#[argh(
    subcommand,
    name = "check",
    example = "$ {command_name} -tlc krakend.json",
    note = "Short flags bundle as in KrakenD (-tlc FILE is -t -l -c FILE). Exit 0: valid; 1: not."
)]
struct Check {
    /// config file
    #[argh(option, short = 'c')]
    config: PathBuf,
    /// also route a request for every endpoint's own path through the real router
    #[argh(switch, short = 't')]
    test_gin_routes: bool,
    /// lint: warnings fail the check too (every key is always checked strictly)
    #[argh(switch, short = 'l')]
    lint: bool,
    /// print the parsed config: endpoints, backends, timeouts (may be repeated, as in KrakenD)
    #[argh(switch, short = 'd')]
    debug: u8,
}

/// The short flags of each command, for [`expand_bundles`]: switches, then options (which take
/// the next argument as their value).
const SHORT_FLAGS: &[(&str, &str, &str)] = &[("check", "tld", "c"), ("run", "d", "cp")];

/// KrakenD's bundled short flags, which argh does not read: `check -tlc FILE` becomes
/// `check -t -l -c FILE`. A bundle is expanded only when every letter is a flag of its command
/// and only its last letter takes a value; anything else is left for argh to report. Option
/// values and everything after `--` are never touched.
pub fn expand_bundles(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 4);
    let mut flags: Option<(&str, &str)> = None;
    let mut value_next = false;
    let mut rest = false;
    for arg in args {
        if rest || value_next {
            value_next = false;
            out.push(arg.clone());
            continue;
        }
        if arg == "--" {
            rest = true;
            out.push(arg.clone());
            continue;
        }
        if flags.is_none() && !arg.starts_with('-') {
            flags = SHORT_FLAGS
                .iter()
                .find(|(name, _, _)| name == arg)
                .map(|(_, switches, options)| (*switches, *options));
            out.push(arg.clone());
            continue;
        }
        let Some((switches, options)) = flags else {
            out.push(arg.clone());
            continue;
        };
        let letters = arg.strip_prefix('-').filter(|l| !l.starts_with('-')).unwrap_or("");
        let n = letters.chars().count();
        let bundle = n > 1
            && letters
                .chars()
                .enumerate()
                .all(|(i, ch)| switches.contains(ch) || (i + 1 == n && options.contains(ch)));
        if bundle {
            out.extend(letters.chars().map(|ch| format!("-{ch}")));
        } else {
            out.push(arg.clone());
        }
        let last = letters.chars().last();
        value_next = (n == 1 || bundle) && last.is_some_and(|ch| options.contains(ch))
            || matches!(arg.as_str(), "--config" | "--port");
    }
    out
}

/// The arguments of this process, parsed (bundles expanded). `--help` prints its text to
/// stdout and gives `Err(0)`; a usage error prints it to stderr and gives `Err(2)`, and so does
/// no command at all (with the usage).
pub fn args_from_env() -> Result<Args, ExitCode> {
    let mut raw = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => raw.push(s),
            Err(bad) => {
                eprintln!("gatelet: argument {bad:?} is not UTF-8");
                return Err(ExitCode::from(2));
            }
        }
    }
    parse_args(&raw)
}

/// [`args_from_env`] over the given arguments (without the program name).
pub fn parse_args(raw: &[String]) -> Result<Args, ExitCode> {
    let expanded = expand_bundles(raw);
    let strs: Vec<&str> = expanded.iter().map(String::as_str).collect();
    match Args::from_args(&["gatelet"], &strs) {
        Ok(args) if args.command.is_none() && !args.version => {
            eprintln!("gatelet: a command is needed: run or check\n");
            if let Err(help) = Args::from_args(&["gatelet"], &["--help"]) {
                eprintln!("{}", help.output);
            }
            Err(ExitCode::from(2))
        }
        Ok(args) => Ok(args),
        Err(exit) if exit.status.is_ok() => {
            println!("{}", exit.output);
            Err(ExitCode::SUCCESS)
        }
        Err(exit) => {
            eprintln!("{}\nRun gatelet --help for more information.", exit.output);
            Err(ExitCode::from(2))
        }
    }
}

fn print_errors(errors: &[ConfigError]) {
    for e in errors {
        eprintln!("{e}");
    }
    eprintln!(
        "{} error{} in the config",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
}

fn load(path: Option<&PathBuf>) -> Result<Config, Vec<ConfigError>> {
    match path {
        Some(p) => config::load(p),
        None => config::parse(
            "<embedded default config>",
            &default_config(std::path::Path::new(THERMAL_ZONE).exists()),
        ),
    }
}

/// Runs the command line; returns the process exit code.
pub fn main(args: Args) -> ExitCode {
    if args.version {
        println!("gatelet {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    match args.command {
        None => {
            eprintln!("gatelet: a command is needed: run or check (see gatelet --help)");
            ExitCode::from(2)
        }
        Some(Command::Check(c)) => check(&c),
        Some(Command::Run(r)) => {
            let mut config = match load(r.config.as_ref()) {
                Ok(c) => c,
                Err(errors) => {
                    print_errors(&errors);
                    return ExitCode::FAILURE;
                }
            };
            crate::logging::init(&config.logging);
            for w in &config.warnings {
                log::warn!("{w}");
            }
            if let Some(port) = r.port {
                config.port = port;
            }
            let addr = SocketAddr::new(config.listen_ip, config.port);
            let listener = match TcpListener::bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    log::error!("cannot listen on {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let bound = listener.local_addr().unwrap_or(addr);
            raise_fd_limit(config.max_connections);
            log::info!(
                "gatelet {} listening on {bound} with {} endpoint(s){}",
                env!("CARGO_PKG_VERSION"),
                config.endpoints.len(),
                config.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
            );
            // Registered at the runtime's first poll of `stop` (tokio signals need the reactor),
            // before the first connection is accepted.
            let no_signals = std::rc::Rc::new(std::cell::Cell::new(false));
            let failed = no_signals.clone();
            let stop = async move {
                use tokio::signal::unix::{SignalKind, signal};
                match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                    (Ok(mut term), Ok(mut int)) => {
                        let name = crate::runtime::first(
                            async {
                                term.recv().await;
                                "SIGTERM"
                            },
                            async {
                                int.recv().await;
                                "SIGINT"
                            },
                        )
                        .await;
                        log::info!("{name}: stopping");
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        log::error!("cannot handle SIGTERM/SIGINT: {e}");
                        failed.set(true);
                    }
                }
            };
            match listener::run(
                listener,
                config,
                Options {
                    debug: r.debug,
                    config_path: r.config.clone(),
                },
                stop,
            ) {
                Ok(()) if no_signals.get() => ExitCode::FAILURE,
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `check`: the config, then what `-d`, `-t` and `-l` add.
fn check(c: &Check) -> ExitCode {
    let config = match config::load(&c.config) {
        Ok(config) => config,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    if c.debug > 0 {
        // Not print!: a closed stdout (`| head`) must not abort the check.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), describe(&config).as_bytes());
    }
    if c.test_gin_routes {
        let unreached = unreached_endpoints(&config);
        for e in &unreached {
            eprintln!("{e}");
        }
        if !unreached.is_empty() {
            return ExitCode::FAILURE;
        }
        println!(
            "routes OK: {} endpoint(s) reached through the router",
            config.endpoints.len()
        );
    }
    if c.lint && !config.warnings.is_empty() {
        eprintln!("{} warning(s), which -l (lint) counts as errors", config.warnings.len());
        return ExitCode::FAILURE;
    }
    println!("config OK");
    ExitCode::SUCCESS
}

/// `check -t`: a request for every endpoint's own path (each `{param}` filled in) routed
/// through the router `run` builds; every endpoint another one shadows, as a message.
fn unreached_endpoints(config: &Config) -> Vec<String> {
    const SAMPLE: &str = "gatelet-route-test";
    let router = crate::router::Router::new(&config.endpoints);
    let mut out = Vec::new();
    for (i, e) in config.endpoints.iter().enumerate() {
        let path: Vec<&str> = e
            .path
            .split('/')
            .map(|s| if config::path::is_param(s) { SAMPLE } else { s })
            .collect();
        let path = path.join("/");
        match router.route(&e.method, &path) {
            crate::router::Match::Found { endpoint, .. } if endpoint == i => {}
            crate::router::Match::Found { endpoint, .. } => out.push(format!(
                "endpoints[{i}]: {} {} is shadowed: {path} routes to endpoints[{endpoint}] {}",
                e.method, e.path, config.endpoints[endpoint].path
            )),
            other => out.push(format!(
                "endpoints[{i}]: {} {} is not reached: {path} gives {other:?}",
                e.method, e.path
            )),
        }
    }
    out
}

/// `check -d`: the parsed config as gatelet will run it.
fn describe(config: &Config) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "service {:?}: {} port {}, timeout {:?}, {} endpoint(s), {} sensor(s)",
        config.name.as_deref().unwrap_or(""),
        config.listen_ip,
        config.port,
        config.timeout,
        config.endpoints.len(),
        config.sensors.len()
    );
    for e in &config.endpoints {
        let encoding = match e.output_encoding {
            config::OutputEncoding::Json => "json",
            config::OutputEncoding::JsonCollection => "json-collection",
            config::OutputEncoding::String => "string",
            config::OutputEncoding::NoOp => "no-op",
            config::OutputEncoding::Xml => "xml",
            config::OutputEncoding::Negotiate => "negotiate",
        };
        let _ = writeln!(
            out,
            "{} {}: {encoding}, timeout {:?}, {} backend(s)",
            e.method,
            e.path,
            e.timeout,
            e.backends.len()
        );
        for b in &e.backends {
            let _ = match (&b.sensor, b.fleet) {
                (Some(s), _) => writeln!(
                    out,
                    "  -> sensor {}{}",
                    config.sensors.get(s.sensor).map_or("?", |s| s.name.as_str()),
                    if s.write { " (write)" } else { "" }
                ),
                (None, true) => writeln!(out, "  -> {} {} on every fleet member", b.method, b.url_pattern),
                (None, false) => {
                    let hosts: Vec<&str> = b.hosts.iter().map(|h| h.authority.as_str()).collect();
                    writeln!(out, "  -> {} {} on {}", b.method, b.url_pattern, hosts.join(" "))
                }
            };
        }
    }
    out
}

/// Raises the soft descriptor limit to the hard one (as Go's runtime and nginx's
/// `worker_rlimit_nofile` do): each client connection holds two descriptors, and the usual soft
/// limit of 1024 would refuse accepts long before `max_connections`. Warns when even the hard
/// limit is too low.
fn raise_fd_limit(max_connections: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            log::debug!("cannot raise the descriptor limit: {e}");
        }
    }
    let have = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    // Two per client connection, plus upstream connections, sensors and the listener.
    let need = 2 * max_connections as u64 + 256;
    if have < need {
        log::warn!("descriptor limit {have} is below the {need} that max_connections {max_connections} needs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: &[&str]) -> Vec<String> {
        expand_bundles(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn bundles_expand_only_where_krakend_would_read_them() {
        assert_eq!(
            expand(&["check", "-tlc", "k.json"]),
            ["check", "-t", "-l", "-c", "k.json"]
        );
        assert_eq!(
            expand(&["check", "-dd", "-c", "k.json"]),
            ["check", "-d", "-d", "-c", "k.json"]
        );
        assert_eq!(expand(&["run", "-dp", "80"]), ["run", "-d", "-p", "80"]);
        // An option's value is never a bundle, nor is anything unknown or after `--`.
        assert_eq!(expand(&["check", "-c", "-tl"]), ["check", "-c", "-tl"]);
        assert_eq!(expand(&["check", "--config", "-tl"]), ["check", "--config", "-tl"]);
        assert_eq!(expand(&["check", "-tcl", "k"]), ["check", "-tcl", "k"]);
        assert_eq!(expand(&["check", "-tx"]), ["check", "-tx"]);
        assert_eq!(expand(&["run", "-tl"]), ["run", "-tl"]);
        assert_eq!(expand(&["check", "--", "-tl"]), ["check", "--", "-tl"]);
        assert_eq!(expand(&["-tl"]), ["-tl"]);
    }
}
