//! Market data sources: recorded files ([`parse`], [`replay`]) and a seeded simulator
//! ([`sim`]). Every source yields [`MarketEvent`](crate::model::MarketEvent)s in
//! non-decreasing event time.

pub mod parse;
pub mod replay;
pub mod run;
pub mod sim;

pub use parse::{CsvReader, FileOptions, FileSpec, Layout, ParseError, ParseErrorKind};
pub use replay::{BadLinePolicy, FileSummary, ReplayOptions, ReplaySource, ReplaySummary};
pub use run::{FeedError, FeedSource, FeedStats, FeedSummary, Pacing, Speed, run_feed, topic_for};
pub use sim::{MarketSimulator, SimConfig, SimInstrument};
