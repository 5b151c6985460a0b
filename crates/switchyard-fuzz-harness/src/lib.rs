//! The bodies of Switchyard's fuzz targets: one function per parser of input from outside
//! the process, each taking the fuzzer's bytes. `fuzz/` wraps each in a `libfuzzer-sys`
//! target of the same name (see `scripts/fuzz`); `tests/corpus.rs` runs every committed
//! corpus file and crash-regression input through the same functions on stable Rust, so
//! a regression shows in the normal test suite without fuzzing.
//!
//! A function panics only when the code under test breaks a promise: a panic inside a
//! parser, or an answer that contradicts itself (an error without a place, events out of
//! order, a frame longer than its bytes, a 500 from the API). Bad input must give an
//! error, never a panic.

pub mod config;
pub mod csv;
pub mod journal;
pub mod nats;
pub mod ops;

/// A fuzz target: its name (also the name of its corpus directory) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("csv_trades", csv::trades),
    ("csv_quotes", csv::quotes),
    ("csv_bid_ask", csv::bid_ask),
    ("csv_any", csv::any),
    ("journal_frame", journal::frame),
    ("journal_segment", journal::segment),
    ("journal_reader", journal::reader),
    ("config_toml", config::toml),
    ("config_env", config::env),
    ("nats_import", nats::import),
    ("ops_http", ops::http),
];

/// Splits `data` at the first `sep`: (before, after); all of it and nothing without one.
pub(crate) fn split_once(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
