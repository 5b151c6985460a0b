//! A Switchyard trading node: the parts — feeds, strategies, the risk guard, execution
//! venues, the kill switch and its policy, breakers, the journal, the NATS bridge and the
//! operations API — composed as lifecycle [`Component`](switchyard::lifecycle::Component)s
//! in a [`Registry`](switchyard::lifecycle::Registry) and run by
//! [`Runtime`](switchyard::lifecycle::Runtime).
//!
//! ```no_run
//! use switchyard_node::{Config, Node};
//! use switchyard_trading::model::MarketEvent;
//! use switchyard_trading::strategy::{Strategy, StrategyContext};
//!
//! struct Watcher;
//! impl Strategy for Watcher {
//!     fn name(&self) -> &str { "watcher" }
//!     fn on_market_data(&mut self, _ev: &MarketEvent, _ctx: &mut StrategyContext) {}
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::builder(Config::load(None)?)   // the configured [[strategy]] entries…
//!     .strategy(Watcher)                           // …and one written in code
//!     .build()?;
//! let summary = node.run(switchyard::lifecycle::signals::wait_for_signal()).await?;
//! println!("{summary}");
//! # Ok(()) }
//! ```
//!
//! # Order of start and stop
//!
//! The [`components`] table lists the parts. The runtime starts observers and services
//! before producers, so every consumer (engine, journal, NATS exports, counters) is
//! subscribed before the first event; the NATS bridge starts after the consumers it
//! feeds. At shutdown: the producers stop (the feed returns its summary); the intake
//! phase stops the bridge's importers and, in the feed role, flushes the exports and
//! publishes the end-of-feed marker; then `Shutdown` is published and the bus drains
//! within `run.drain_deadline_ms`; then the services stop in reverse dependency order
//! (the bridge waits for its acks, the journal makes its final fsync); the operations
//! API stops last. The summary carries the runtime's report: every component with its
//! stop outcome, and what the bus delivered, dropped or could not deliver.
//!
//! # Exit codes
//!
//! [`RunSummary::exit_code`]: 0 clean; 1 when the run failed (the feed failed, NATS
//! left exports unacknowledged); 70 when a component failed; 130/143 when a second
//! signal forced the exit.

pub mod bridge_config;
pub mod catalog;
pub mod components;
pub mod config;
mod duration;
mod error;
mod node;
pub mod parity;
pub mod provider;
mod shared;
pub mod strategies;
mod summary;

pub use config::{Config, FeedThread, Role, StrategyEntry, VenueEntry};
pub use error::NodeError;
pub use node::{Node, NodeBuilder, ReplaySpec, feed_source};
pub use shared::{JournalSummary, NodeShared};
pub use strategies::{StrategyConfig, StrategyConfigError, StrategyRegistry};
pub use summary::{ReplayOutcome, RunSummary, StopReason};
