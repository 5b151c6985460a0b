//! `config_toml`: see `switchyard_fuzz_harness::config::toml` for the input format and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz_harness::config::toml(data));
