//! One strategy inside the engine: its context, limits, book, counters and topics, and
//! the panic isolation around each of its callbacks.

use std::panic::AssertUnwindSafe;

use switchyard::Topic;

use super::EngineStats;
use crate::model::StrategyId;
use crate::portfolio::Portfolio;
use crate::risk::RiskGuard;
use crate::strategy::{Strategy, StrategyContext};

pub(super) struct Topics {
    pub(super) request: Topic,
    pub(super) rejected: Topic,
    pub(super) event: Topic,
}

pub(super) struct StrategySlot {
    pub(super) id: StrategyId,
    pub(super) strategy: Box<dyn Strategy + Send>,
    pub(super) ctx: StrategyContext,
    /// Its own limits, on top of the global guard.
    pub(super) limits: Option<RiskGuard>,
    /// Its own positions and P&L.
    pub(super) book: Portfolio,
    pub(super) stats: EngineStats,
    pub(super) topics: Topics,
    pub(super) loss_tripped: bool,
    /// Set when a callback panicked: the strategy is called no more.
    pub(super) panicked: Option<String>,
}

impl StrategySlot {
    /// Runs one callback of the strategy, isolating a panic: the engine's own book-keeping
    /// for the event is already done and goes on; the strategy is called no more, and
    /// what it asked for during the callback that panicked is dropped (half-made). True
    /// when it panicked in this call.
    pub(super) fn call(
        &mut self,
        f: impl FnOnce(&mut (dyn Strategy + Send), &mut StrategyContext),
    ) -> bool {
        if self.panicked.is_some() {
            return false;
        }
        let (strategy, ctx) = (&mut self.strategy, &mut self.ctx);
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| f(strategy.as_mut(), ctx)));
        let Err(panic) = caught else { return false };
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        tracing::error!(strategy = %self.id, panic = %msg, "strategy panicked: it is called no more");
        for r in self.ctx.take_orders() {
            self.ctx.order_closed(&r.client_order_id);
        }
        self.panicked = Some(msg);
        true
    }
}

/// What the engine does when a strategy's callback panics (the strategy itself is never
/// called again either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyPanic {
    /// Halt the strategy's kill-switch scope (`strategy:<id>`): its open orders are
    /// cancelled, the others trade on.
    #[default]
    HaltStrategy,
    /// Halt everything.
    HaltAll,
}
