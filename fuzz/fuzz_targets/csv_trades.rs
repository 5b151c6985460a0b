//! `csv_trades`: see `switchyard_fuzz_harness::csv::trades` for the input format and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz_harness::csv::trades(data));
