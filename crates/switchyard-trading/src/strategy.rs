//! Strategies: the [`Strategy`] trait and an example, [`MovingAverageCrossover`].
//!
//! # Contract
//!
//! - A strategy is synchronous and deterministic: given the same events in the same
//!   order it emits the same orders. It never sees a clock other than event times.
//! - It does not send orders; it *asks* for them by pushing [`OrderRequest`]s into the
//!   [`StrategyContext`], which the runner drains ([`StrategyContext::take_orders`]) and
//!   passes to the risk guard.
//! - The runner keeps the context's view of the world current: it calls
//!   [`StrategyContext::apply_fill`] before [`Strategy::on_fill`], and
//!   [`StrategyContext::order_closed`] when an order is rejected or cancelled (before
//!   [`Strategy::on_rejection`]). The context tracks each instrument's filled position and
//!   the signed leaves quantity of the strategy's open orders, so a strategy can target a
//!   position without double-sending while orders are in flight.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};
use switchyard::Timestamp;
use switchyard::kill_switch::{GateState, KillSwitch, Target};

use crate::model::{
    ClientOrderId, Fill, InstrumentId, MarketEvent, OrderRejected, OrderRequest, OrderType, Side,
    StrategyId, TimeInForce,
};
use crate::num::{ArithmeticError, Quantity};

/// A trading strategy.
pub trait Strategy {
    /// The strategy's name (its [`StrategyId`]).
    fn name(&self) -> &str;

    /// Reacts to market data, possibly asking for orders through `ctx`.
    fn on_market_data(&mut self, event: &MarketEvent, ctx: &mut StrategyContext);

    /// Reacts to a fill of one of its orders (already applied to `ctx`).
    fn on_fill(&mut self, fill: &Fill, ctx: &mut StrategyContext) {
        let _ = (fill, ctx);
    }

    /// Reacts to a rejection of one of its orders (already removed from `ctx`).
    fn on_rejection(&mut self, rejection: &OrderRejected, ctx: &mut StrategyContext) {
        let _ = (rejection, ctx);
    }

    /// The kill switch changed (a trigger, an escalation or a reset somewhere): the gate
    /// of some instrument may be different now; read it with [`StrategyContext::gate`].
    /// Orders asked for here go through the guard at once.
    fn on_gate_change(&mut self, ctx: &mut StrategyContext) {
        let _ = ctx;
    }
}

#[derive(Clone, Debug)]
struct OpenOrder {
    instrument: InstrumentId,
    /// Signed leaves quantity.
    leaves: Quantity,
}

/// What a strategy sees and how it asks for orders.
///
/// The engine owns one context per strategy and keeps it current; the methods marked
/// *runner only* are for the engine (and for tests that drive a strategy by hand).
#[derive(Debug)]
pub struct StrategyContext {
    strategy: StrategyId,
    kill_switch: Option<KillSwitch>,
    positions: FxHashMap<InstrumentId, Quantity>,
    open: FxHashMap<ClientOrderId, OpenOrder>,
    orders: Vec<OrderRequest>,
    next_id: u64,
    now: Timestamp,
}

impl StrategyContext {
    /// A context for `strategy`, flat everywhere.
    pub fn new(strategy: impl Into<StrategyId>) -> Self {
        StrategyContext {
            strategy: strategy.into(),
            kill_switch: None,
            positions: FxHashMap::default(),
            open: FxHashMap::default(),
            orders: Vec::new(),
            next_id: 1,
            now: Timestamp::ZERO,
        }
    }

    /// The strategy this context belongs to.
    pub fn strategy(&self) -> &StrategyId {
        &self.strategy
    }

    /// The time of the event being handled (set by the runner).
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// *Runner only*: the kill switch whose gate [`StrategyContext::gate`] reads.
    pub fn attach_kill_switch(&mut self, kill_switch: KillSwitch) {
        self.kill_switch = Some(kill_switch);
    }

    /// Whether this strategy may trade `instrument` now: [`GateState::Open`],
    /// `ReduceOnly` (only orders that shrink the position pass), `Halt` or `Flatten`
    /// (nothing passes; flatten closes positions itself). One atomic load while no
    /// trigger is active. Open when no kill switch is attached.
    pub fn gate(&self, instrument: &InstrumentId) -> GateState {
        match &self.kill_switch {
            None => GateState::Open,
            Some(k) => k.check(&Target {
                venue: instrument.venue.as_str(),
                strategy: self.strategy.as_str(),
                instrument: instrument.symbol.as_str(),
            }),
        }
    }

    /// `true` when the gate of `instrument` is open for this strategy.
    pub fn can_trade(&self, instrument: &InstrumentId) -> bool {
        self.gate(instrument) == GateState::Open
    }

    /// *Runner only*: sets the current time.
    pub fn set_now(&mut self, now: Timestamp) {
        self.now = now;
    }

    /// The filled, signed position in `instrument`.
    pub fn position(&self, instrument: &InstrumentId) -> Quantity {
        self.positions
            .get(instrument)
            .copied()
            .unwrap_or(Quantity::ZERO)
    }

    /// The signed leaves quantity of open orders (and orders asked for but not yet
    /// drained) in `instrument`.
    pub fn open_quantity(&self, instrument: &InstrumentId) -> Quantity {
        self.open
            .values()
            .filter(|o| &o.instrument == instrument)
            .fold(Quantity::ZERO, |acc, o| {
                acc.checked_add(o.leaves).unwrap_or(acc)
            })
    }

    /// Position plus open orders: where the position goes if everything fills.
    pub fn projected_position(
        &self,
        instrument: &InstrumentId,
    ) -> Result<Quantity, ArithmeticError> {
        self.position(instrument)
            .checked_add(self.open_quantity(instrument))
    }

    /// Asks for an order. Its id must be new; it counts as open from now on.
    pub fn submit(&mut self, request: OrderRequest) -> Result<(), ArithmeticError> {
        let leaves = request.signed_quantity()?;
        self.open.insert(
            request.client_order_id.clone(),
            OpenOrder {
                instrument: request.instrument.clone(),
                leaves,
            },
        );
        self.orders.push(request);
        Ok(())
    }

    /// Asks for a GTC order of the given type, with a fresh id `"<strategy>-<n>"`.
    pub fn order(
        &mut self,
        instrument: &InstrumentId,
        side: Side,
        quantity: Quantity,
        order_type: OrderType,
    ) -> Result<ClientOrderId, ArithmeticError> {
        let id = ClientOrderId::new(format!("{}-{}", self.strategy, self.next_id));
        self.next_id += 1;
        self.submit(OrderRequest {
            client_order_id: id.clone(),
            strategy: self.strategy.clone(),
            instrument: instrument.clone(),
            side,
            quantity,
            order_type,
            time_in_force: TimeInForce::Gtc,
        })?;
        Ok(id)
    }

    /// Asks for a GTC limit order (see [`StrategyContext::order`]).
    pub fn limit_order(
        &mut self,
        instrument: &InstrumentId,
        side: Side,
        quantity: Quantity,
        price: crate::num::Price,
    ) -> Result<ClientOrderId, ArithmeticError> {
        self.order(instrument, side, quantity, OrderType::Limit { price })
    }

    /// Asks for a market order (see [`StrategyContext::order`]).
    pub fn market_order(
        &mut self,
        instrument: &InstrumentId,
        side: Side,
        quantity: Quantity,
    ) -> Result<ClientOrderId, ArithmeticError> {
        self.order(instrument, side, quantity, OrderType::Market)
    }

    /// *Runner only*: removes and returns the orders asked for since the last call.
    pub fn take_orders(&mut self) -> Vec<OrderRequest> {
        std::mem::take(&mut self.orders)
    }

    /// *Runner only*: records a fill: moves the position and reduces the order's leaves (removing it
    /// when fully filled).
    pub fn apply_fill(&mut self, fill: &Fill) -> Result<(), ArithmeticError> {
        let signed = fill.signed_quantity()?;
        let pos = self.position(&fill.instrument).checked_add(signed)?;
        self.positions.insert(fill.instrument.clone(), pos);
        if let Some(o) = self.open.get_mut(&fill.client_order_id) {
            o.leaves = o.leaves.checked_sub(signed)?;
            if o.leaves.is_zero() || o.leaves.signum() != signed.signum() || fill.last {
                self.open.remove(&fill.client_order_id);
            }
        }
        Ok(())
    }

    /// *Runner only*: records that an order will not fill further (rejected, cancelled, expired).
    pub fn order_closed(&mut self, id: &ClientOrderId) {
        self.open.remove(id);
    }

    /// *Runner only*: records a rejection (same as [`StrategyContext::order_closed`]).
    pub fn apply_rejection(&mut self, rejection: &OrderRejected) {
        self.order_closed(&rejection.client_order_id);
    }
}

/// Settings of [`MovingAverageCrossover`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossoverConfig {
    /// Strategy name.
    pub name: StrategyId,
    /// The instrument it trades (trades of other instruments are ignored).
    pub instrument: InstrumentId,
    /// Fast window, in trades (≥ 1).
    pub fast: usize,
    /// Slow window, in trades (> `fast`).
    pub slow: usize,
    /// Target position size when long or short (positive).
    pub max_position: Quantity,
    /// Whether to go short when fast < slow (otherwise flat).
    pub allow_short: bool,
}

/// Invalid [`CrossoverConfig`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("crossover config: {field}: {reason}")]
pub struct ConfigError {
    /// The bad field.
    pub field: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// Moving-average crossover on trade prices.
///
/// Keeps running sums of the last `fast` and `slow` trade prices (exact, in `i128` raw
/// units; O(1) per trade). Once `slow` trades are seen: fast average above slow → target
/// `+max_position`; below → `-max_position` (or flat if shorting is off); equal → keep
/// the current target. Averages are compared exactly by cross-multiplying
/// (`sum_fast × slow` vs `sum_slow × fast`), no division. When the target differs from
/// the projected position (position + open orders) it asks for one market order for the
/// difference.
#[derive(Debug)]
pub struct MovingAverageCrossover {
    config: CrossoverConfig,
    window: VecDeque<i64>,
    sum_fast: i128,
    sum_slow: i128,
    target: Quantity,
}

impl MovingAverageCrossover {
    /// A strategy with a validated config.
    pub fn new(config: CrossoverConfig) -> Result<Self, ConfigError> {
        if config.fast == 0 {
            return Err(ConfigError {
                field: "fast",
                reason: "must be at least 1",
            });
        }
        if config.slow <= config.fast {
            return Err(ConfigError {
                field: "slow",
                reason: "must be greater than fast",
            });
        }
        if !config.max_position.is_positive() {
            return Err(ConfigError {
                field: "max_position",
                reason: "must be positive",
            });
        }
        Ok(MovingAverageCrossover {
            window: VecDeque::with_capacity(config.slow + 1),
            config,
            sum_fast: 0,
            sum_slow: 0,
            target: Quantity::ZERO,
        })
    }

    /// The current target position.
    pub fn target(&self) -> Quantity {
        self.target
    }

    /// Feeds one price; returns the signal (+1, −1, 0 = no opinion).
    fn update(&mut self, price: i64) -> i32 {
        let (fast, slow) = (self.config.fast, self.config.slow);
        self.window.push_back(price);
        self.sum_fast += price as i128;
        self.sum_slow += price as i128;
        let n = self.window.len();
        if n > fast {
            self.sum_fast -= self.window[n - 1 - fast] as i128;
        }
        if n > slow {
            if let Some(old) = self.window.pop_front() {
                self.sum_slow -= old as i128;
            }
        }
        if self.window.len() < slow {
            return 0;
        }
        let lhs = self.sum_fast * slow as i128;
        let rhs = self.sum_slow * fast as i128;
        match lhs.cmp(&rhs) {
            std::cmp::Ordering::Greater => 1,
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
        }
    }
}

impl Strategy for MovingAverageCrossover {
    fn name(&self) -> &str {
        self.config.name.as_str()
    }

    fn on_market_data(&mut self, event: &MarketEvent, ctx: &mut StrategyContext) {
        let MarketEvent::Trade(trade) = event else {
            return;
        };
        if trade.instrument != self.config.instrument {
            return;
        }
        match self.update(trade.price.raw()) {
            1 => self.target = self.config.max_position,
            -1 if self.config.allow_short => {
                self.target = Quantity::from_raw(-self.config.max_position.raw())
            }
            -1 => self.target = Quantity::ZERO,
            _ => {}
        }
        let Ok(projected) = ctx.projected_position(&self.config.instrument) else {
            tracing::warn!(strategy = %self.config.name, "projected position overflows; not trading");
            return;
        };
        // |target| and |projected| are bounded by max_position in normal operation;
        // checked anyway.
        let Ok(delta) = self.target.checked_sub(projected) else {
            return;
        };
        if delta.is_zero() {
            return;
        }
        // While the gate is closed, ask for nothing it would refuse: under reduce-only
        // only an order that moves the position towards flat without crossing it.
        match ctx.gate(&self.config.instrument) {
            GateState::Open => {}
            GateState::ReduceOnly => {
                let reduces = delta.signum() == -projected.signum()
                    && delta.checked_abs().ok() <= projected.checked_abs().ok();
                if !reduces {
                    return;
                }
            }
            GateState::Flatten | GateState::Halted => return,
        }
        let side = if delta.is_positive() {
            Side::Buy
        } else {
            Side::Sell
        };
        let Ok(qty) = delta.checked_abs() else { return };
        let instrument = self.config.instrument.clone();
        if let Err(e) = ctx.market_order(&instrument, side, qty) {
            tracing::warn!(strategy = %self.config.name, error = %e, "cannot build order");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated() {
        let mut c = CrossoverConfig {
            name: "x".into(),
            instrument: InstrumentId::new("v", "s"),
            fast: 3,
            slow: 3,
            max_position: Quantity::ONE,
            allow_short: true,
        };
        assert_eq!(
            MovingAverageCrossover::new(c.clone()).unwrap_err().field,
            "slow"
        );
        c.fast = 0;
        assert_eq!(
            MovingAverageCrossover::new(c.clone()).unwrap_err().field,
            "fast"
        );
        c.fast = 1;
        c.max_position = Quantity::ZERO;
        assert_eq!(
            MovingAverageCrossover::new(c).unwrap_err().to_string(),
            "crossover config: max_position: must be positive"
        );
    }

    #[test]
    fn running_sums_match_naive_averages() {
        let c = CrossoverConfig {
            name: "x".into(),
            instrument: InstrumentId::new("v", "s"),
            fast: 3,
            slow: 7,
            max_position: Quantity::ONE,
            allow_short: true,
        };
        let mut s = MovingAverageCrossover::new(c).unwrap();
        let mut seed = 17u64;
        let mut prices = Vec::new();
        for _ in 0..500 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let p = 1_000_000 + (seed % 1000) as i64;
            prices.push(p);
            let got = s.update(p);
            let n = prices.len();
            let want = if n < 7 {
                0
            } else {
                let f: i128 = prices[n - 3..].iter().map(|&x| x as i128).sum();
                let sl: i128 = prices[n - 7..].iter().map(|&x| x as i128).sum();
                (f * 7).cmp(&(sl * 3)) as i32
            };
            assert_eq!(got, want);
        }
    }
}
