//! cargo-fuzz target for `unpack --dir` into a folder seeded with links, FIFOs and files:
//! `cargo +nightly fuzz run unpack_dir` (from `fuzz/`).
#![no_main]

#[allow(dead_code)]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz_unpack_dir(data));
