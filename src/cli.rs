//! The command line, compatible with KrakenD's where they overlap: `run [-c FILE] [-p PORT]
//! [-d]`, `check -c FILE`, `--version`. Maps every outcome to an exit code; owns no logic of
//! its own beyond choosing the config and printing errors.

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
#[argh(subcommand, name = "run")]
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
/// Validate a config file and exit.
#[argh(subcommand, name = "check")]
struct Check {
    /// config file
    #[argh(option, short = 'c')]
    config: PathBuf,
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
            eprintln!("gatelet: a command is needed: run, check (see --help)");
            ExitCode::from(2)
        }
        Some(Command::Check(c)) => match config::load(&c.config) {
            Ok(config) => {
                for w in &config.warnings {
                    eprintln!("warning: {w}");
                }
                println!("config OK");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                print_errors(&errors);
                ExitCode::FAILURE
            }
        },
        Some(Command::Run(r)) => {
            let mut config = match load(r.config.as_ref()) {
                Ok(c) => c,
                Err(errors) => {
                    print_errors(&errors);
                    return ExitCode::FAILURE;
                }
            };
            crate::logging::init(config.log_level);
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
