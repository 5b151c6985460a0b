//! `journal_frame`: see `switchyard_fuzz_harness::journal::frame` for the input format and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz_harness::journal::frame(data));
