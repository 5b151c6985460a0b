//! What the engine shows: counters, positions and P&L, per strategy and in total.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::num::{Money, Quantity};
use crate::portfolio::Portfolio;

/// Counters of the engine (or of one strategy), readable while it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Market events processed.
    pub market_events: u64,
    /// Order requests from the strategy (or strategies).
    pub orders: u64,
    /// Orders the risk guard approved and a venue received.
    pub orders_sent: u64,
    /// Fills.
    pub fills: u64,
    /// Rejections by reason (risk guard, breaker, kill switch and venue).
    pub rejections: BTreeMap<String, u64>,
    /// Orders cancelled.
    pub cancels: u64,
    /// Times the engine tripped the kill switch (loss limit, policy).
    pub kill_switch_trips: u64,
    /// Errors by kind, each fed to the policy's `error_rate` rule: `strategy_panic` and
    /// `fill_bookkeeping` (a fill the books could not apply) per strategy; in the total
    /// also `unknown_order_report` (a venue report about no order the engine sent) and
    /// `component_failure` (a component's task failed, restarted or not).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
}

impl EngineStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &EngineStats) {
        self.market_events += other.market_events;
        self.orders += other.orders;
        self.orders_sent += other.orders_sent;
        self.fills += other.fills;
        self.cancels += other.cancels;
        self.kill_switch_trips += other.kill_switch_trips;
        for (r, n) in &other.rejections {
            *self.rejections.entry(r.clone()).or_default() += n;
        }
        for (e, n) in &other.errors {
            *self.errors.entry(e.clone()).or_default() += n;
        }
    }

    /// Every error, whatever the kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Every rejection, whatever the reason.
    pub fn rejected(&self) -> u64 {
        self.rejections.values().sum()
    }
}

/// A position for the status API.
#[derive(Clone, Debug, Serialize)]
pub struct PositionView {
    /// Instrument.
    pub instrument: String,
    /// Signed quantity.
    pub quantity: Quantity,
    /// Average entry price, if open.
    pub avg_price: Option<String>,
    /// Realised P&L.
    pub realised_pnl: Money,
    /// Unrealised P&L at the last mark.
    pub unrealised_pnl: Option<Money>,
}

/// Positions of a portfolio, for a view.
pub(crate) fn positions(pf: &Portfolio) -> Vec<PositionView> {
    pf.positions()
        .map(|p| PositionView {
            instrument: p.instrument.to_string(),
            quantity: p.quantity,
            avg_price: p.avg_entry_price().map(|x| x.to_string()),
            realised_pnl: p.realised_pnl,
            unrealised_pnl: p.unrealised_pnl().ok(),
        })
        .collect()
}

/// One strategy's part of the [`EngineView`].
#[derive(Clone, Debug, Serialize)]
pub struct StrategyView {
    /// Its id.
    pub name: String,
    /// Its counters (`market_events`: events it was shown).
    pub stats: EngineStats,
    /// Its own positions (its fills only).
    pub positions: Vec<PositionView>,
    /// Its P&L: realised + unrealised minus fees.
    pub total_pnl: Option<Money>,
    /// Its realised P&L.
    pub realised_pnl: Option<Money>,
    /// Its open orders.
    pub open_orders: usize,
    /// Whether it has its own risk limits on top of the global ones.
    pub own_limits: bool,
    /// The panic that stopped it, if one did.
    pub panicked: Option<String>,
}

/// What the status API and the summary read.
#[derive(Clone, Debug, Serialize)]
pub struct EngineView {
    /// Counters over every strategy.
    pub stats: EngineStats,
    /// Positions over every strategy (the global risk guard's book).
    pub positions: Vec<PositionView>,
    /// Realised + unrealised P&L minus fees, over every strategy.
    pub total_pnl: Option<Money>,
    /// Realised P&L over every strategy.
    pub realised_pnl: Option<Money>,
    /// Open orders.
    pub open_orders: usize,
    /// Market data published → order request at the venue, p50/p99/max in µs.
    pub tick_to_order_us: (f64, f64, f64),
    /// Samples behind `tick_to_order_us`.
    pub tick_to_order_samples: u64,
    /// Per strategy, in registration order.
    pub strategies: Vec<StrategyView>,
    /// Positions a flatten gave up on (see the engine's flatten docs).
    pub flatten_failed: Vec<super::FlattenFailure>,
}
