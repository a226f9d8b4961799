//! cargo-fuzz target for the archive reader: `cargo +nightly fuzz run read_archive` (from `fuzz/`).
#![no_main]

// `valid_tar` is only for the stable smoke test.
#[allow(dead_code)]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz_one(data));
