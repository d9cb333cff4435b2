//! `gatelet` binary: arguments (help and usage errors answered there), then [`gatelet::cli::main`] (which sets up logging once the
//! config, and so its log level, is known). Nothing else.

fn main() -> std::process::ExitCode {
    match gatelet::cli::args_from_env() {
        Ok(args) => gatelet::cli::main(args),
        Err(code) => code,
    }
}
