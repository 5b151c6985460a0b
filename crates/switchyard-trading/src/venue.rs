//! The execution-venue boundary: where risk-approved orders go, and where the engine
//! hears back about them.
//!
//! # Contract
//!
//! - **Only approved orders.** [`ExecutionVenue::submit`] takes a
//!   [`RiskApproved`], which only the risk guard makes: nothing reaches a venue around the
//!   guard, the kill switch and the breaker.
//! - **Reports are events.** A venue answers with [`ExecEvent`]s — accepted, rejected,
//!   filled, cancelled, cancel refused — pushed into the `out` buffer of the call that
//!   produced them. An order's *first* report is its acceptance or rejection (or, for an
//!   immediately executable order, its fill); the engine judges the venue's breaker on
//!   it, whenever it comes. A venue may answer later than the call: the paper exchange
//!   with a latency answers on a later [`ExecutionVenue::on_market_data`] or [`ExecutionVenue::poll`].
//! - **Time is explicit.** Every call carries the event time; a simulated venue reads no
//!   clock, so a replay makes the same reports (backtest/live parity).
//! - **Asynchronous venues.** A live adapter (acks over a network, fills arriving
//!   later, disconnects) keeps its network I/O on its own task and hands what arrived to
//!   the engine from [`ExecutionVenue::poll`], which the engine calls before every market event
//!   and on its timer. The engine does not change for it: reports are reports, whenever
//!   they arrive. A disconnected venue answers `submit` with a rejection.
//!
//! The engine routes each order to the venue named by its instrument's
//! [`venue`](crate::model::InstrumentId::venue), and each market event to the venue that
//! trades its instrument.

use switchyard::Timestamp;

use crate::exchange::{ExecEvent, PaperExchange};
use crate::model::{ClientOrderId, InstrumentId, MarketEvent};
use crate::risk::RiskApproved;

/// An execution venue: a simulator, a paper exchange, or an adapter to a real one. See
/// the [module docs](self).
pub trait ExecutionVenue: Send {
    /// Whether the venue trades `instrument` (orders for other instruments are refused
    /// before they reach it).
    fn lists(&self, instrument: &InstrumentId) -> bool;

    /// Takes an approved order at event time `now`; pushes what happened by `now`.
    fn submit(&mut self, order: RiskApproved, now: Timestamp, out: &mut Vec<ExecEvent>);

    /// Asks to cancel an open or in-flight order; pushes the outcome once known.
    fn cancel(&mut self, id: &ClientOrderId, now: Timestamp, out: &mut Vec<ExecEvent>);

    /// Market data of an instrument this venue lists, in event order.
    fn on_market_data(&mut self, event: &MarketEvent, out: &mut Vec<ExecEvent>);

    /// Reports that became due or arrived by `now` (orders reaching a simulated venue
    /// after its latency, acks and fills a live adapter received).
    fn poll(&mut self, now: Timestamp, out: &mut Vec<ExecEvent>) {
        let _ = (now, out);
    }
}

impl ExecutionVenue for PaperExchange {
    fn lists(&self, instrument: &InstrumentId) -> bool {
        self.is_listed(instrument)
    }

    fn submit(&mut self, order: RiskApproved, now: Timestamp, out: &mut Vec<ExecEvent>) {
        out.extend(PaperExchange::submit(self, order, now));
    }

    fn cancel(&mut self, id: &ClientOrderId, now: Timestamp, out: &mut Vec<ExecEvent>) {
        out.extend(PaperExchange::cancel(self, id, now));
    }

    fn on_market_data(&mut self, event: &MarketEvent, out: &mut Vec<ExecEvent>) {
        let events = PaperExchange::on_market_data(self, event);
        if !events.is_empty() {
            out.extend(events);
        }
    }

    fn poll(&mut self, now: Timestamp, out: &mut Vec<ExecEvent>) {
        let events = self.on_time(now);
        if !events.is_empty() {
            out.extend(events);
        }
        self.poll_purge();
    }
}
