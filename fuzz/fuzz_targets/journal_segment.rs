//! `journal_segment`: see `switchyard_fuzz_harness::journal::segment` for the input format and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz_harness::journal::segment(data));
