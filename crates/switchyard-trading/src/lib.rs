//! Trading domain for Switchyard: exact numbers, market data and order types, file
//! replay and a seeded simulator, the strategy trait with an example strategy, the
//! pre-trade risk guard, a paper exchange, and positions with P&L.
//!
//! Decisions here are synchronous and deterministic: plain `&mut self` methods that take
//! the time as an argument, so tests (and replays) drive them without a runtime. Two
//! parts touch the bus: the [`engine`]'s handler (one subscription that runs the whole
//! chain per market event) and the [`feed`] runner; the lifecycle components that start
//! them live in `switchyard-node`.
//!
//! | module | what |
//! |---|---|
//! | [`num`] | [`Price`](num::Price), [`Quantity`](num::Quantity), [`Money`](num::Money): exact 9-decimal fixed point |
//! | [`model`] | instruments, trades, quotes, orders and their states, fills, rejections, positions |
//! | [`feed`] | CSV parsers (Tardis trades/quotes, `timestamp,bid,ask`), a merging replay source, a seeded simulator |
//! | [`strategy`] | the [`Strategy`](strategy::Strategy) trait and a moving-average crossover |
//! | [`risk`] | the pre-trade [`RiskGuard`](risk::RiskGuard); only it makes [`RiskApproved`](risk::RiskApproved) orders |
//! | [`venue`] | the [`ExecutionVenue`](venue::ExecutionVenue) trait: where approved orders go and reports come from |
//! | [`exchange`] | a paper exchange (a [`ExecutionVenue`](venue::ExecutionVenue)) that fills risk-approved orders against market data |
//! | [`engine`] | the trading engine: several strategies → risk guards → breakers → venues, on the bus |
//! | [`portfolio`] | positions and P&L per instrument |
//! | [`wire`] | type tags and topics of events that leave the process (journal, NATS) |
#![deny(missing_docs)]

pub mod engine;
pub mod exchange;
pub mod feed;
pub mod model;
pub mod num;
pub mod portfolio;
pub mod risk;
pub mod strategy;
pub mod venue;
pub mod wire;
