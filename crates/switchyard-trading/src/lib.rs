//! Trading domain for Switchyard: exact numbers, market data and order types, file
//! replay and a seeded simulator, the strategy trait with an example strategy, the
//! pre-trade risk guard, a paper exchange, and positions with P&L.
//!
//! Everything here is synchronous and deterministic: decisions are plain `&mut self`
//! methods that take the time as an argument, so tests (and replays) drive them without
//! a runtime. The async components that put them on the bus live elsewhere.
//!
//! | module | what |
//! |---|---|
//! | [`num`] | [`Price`](num::Price), [`Quantity`](num::Quantity), [`Money`](num::Money): exact 9-decimal fixed point |
//! | [`model`] | instruments, trades, quotes, orders and their states, fills, rejections, positions |
//! | [`feed`] | CSV parsers (Tardis trades/quotes, `timestamp,bid,ask`), a merging replay source, a seeded simulator |
//! | [`strategy`] | the [`Strategy`](strategy::Strategy) trait and a moving-average crossover |
//! | [`risk`] | the pre-trade [`RiskGuard`](risk::RiskGuard); only it makes [`RiskApproved`](risk::RiskApproved) orders |
//! | [`exchange`] | a paper exchange that fills risk-approved orders against market data |
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
pub mod wire;
