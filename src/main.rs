//! `gatelet` binary: logging, arguments, then [`gatelet::cli::main`]. Nothing else.

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    gatelet::cli::main(argh::from_env())
}
