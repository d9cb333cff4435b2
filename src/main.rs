//! `gatelet` binary: arguments, then [`gatelet::cli::main`] (which sets up logging once the
//! config, and so its log level, is known). Nothing else.

fn main() -> std::process::ExitCode {
    gatelet::cli::main(argh::from_env())
}
