//! The `switchyard` command line as a library.
//!
//! A trading bot is a binary that registers its strategies and hands over to [`App`]:
//! it gets `run` (with the operations API, the journal, the kill switch and the risk
//! guard), `replay --expect-parity`, `journal inspect|verify`, `config`, `kill`, `reset`
//! and `bench` for its own strategies. The `switchyard` binary itself is
//! `App::new().main()`.

mod app;
pub mod bench;

pub use app::App;
