//! See `gatelet::fuzzing::jwt`: the target's body lives in the library so that the inputs it
//! finds are replayed on stable by `tests/fuzz_regressions.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatelet::fuzzing::jwt(data));
