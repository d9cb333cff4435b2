//! See `gatelet::fuzzing::http`: whole client connections to the real gateway serving
//! `gatelet::fuzzing::HTTP_CONFIG` on loopback. The target's body lives in the library so that
//! the inputs it finds are replayed on stable by `tests/fuzz_regressions.rs`.
#![no_main]

use gatelet::fuzzing::Server;

thread_local! {
    static SERVER: Server = {
        // A Rust binary ignores SIGPIPE before `main`; libFuzzer's `main` does not, and the
        // gateway writes to sockets the client may already have reset.
        // SAFETY: sets a signal's disposition; no handler runs our code.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        gatelet::fuzzing::http_server().expect("the fuzz config is valid")
    };
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| SERVER.with(|server| gatelet::fuzzing::http(server, data)));
