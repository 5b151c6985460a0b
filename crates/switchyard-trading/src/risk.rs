//! The pre-trade risk guard, between strategies and the exchange.
//!
//! # Contract
//!
//! - [`RiskApproved`] can only be made by [`RiskGuard::check`]: its field is private, it
//!   has no public constructor, and it is neither `Clone` nor `Deserialize`. The exchange
//!   takes only `RiskApproved`, so an unchecked order cannot reach it.
//! - [`RiskGuard::check`] is synchronous; the caller passes the kill-switch
//!   [`GateState`] for the order's target and the current [`Instant`] (the throttle refills
//!   from it — no clock is read inside). Checks run in this order, and the first that
//!   fails is reported:
//!
//!   | # | check | reason |
//!   |---|---|---|
//!   | 1 | kill-switch gate: `Halted` refuses everything; `ReduceOnly`/`Flatten` let only orders through that reduce the position without flipping it, counting open orders on the same side | `kill_switch_halted`, `kill_switch_reduce_only` |
//!   | 2 | quantity > 0, limit price > 0 | `invalid_quantity`, `invalid_price` |
//!   | 3 | client order id not already open | `duplicate_client_order_id` |
//!   | 4 | quantity ≤ `max_order_quantity` | `max_order_quantity` |
//!   | 5 | a reference price exists: the last trade price or quote mid seen | `no_reference_price` |
//!   | 6 | limit orders: `|limit − ref| × 10⁴ ≤ price_band_bps × ref` | `price_band` |
//!   | 7 | `quantity × (limit or ref) ≤ max_notional` | `max_notional` |
//!   | 8 | worst-case projected position (position + all open orders on the order's side + this order) within `±max_position` | `position_limit` |
//!   | 9 | open orders + 1 ≤ `max_open_orders` | `max_open_orders` |
//!   | 10 | daily P&L (realised + unrealised − fees since [`RiskGuard::reset_day`]) ≥ `−daily_loss_limit`, unless the order only reduces the position; the rejection has `trip_kill_switch: true` | `daily_loss_limit` |
//!   | 11 | order-rate token bucket (`burst`, refilled at `orders_per_second`); only orders that passed every other check take a token | `rate_limited` |
//!
//! - All arithmetic is exact (i128 cross-multiplication, no division); an overflow
//!   refuses the order (`arithmetic_overflow`).
//! - The guard's view is kept current by the caller: [`RiskGuard::on_fill`],
//!   [`RiskGuard::on_order_closed`] (rejected, cancelled, expired) and
//!   [`RiskGuard::on_market_data`]. An approved order counts as open until it is filled or
//!   closed.

use rustc_hash::FxHashMap;
use std::fmt;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use switchyard::Timestamp;
use switchyard::kill_switch::GateState;

use crate::model::{
    ClientOrderId, Fill, InstrumentId, MarketEvent, OrderRejected, OrderRequest, OrderType,
    RejectReason, Side,
};
use crate::num::{ArithmeticError, Money, Price, Quantity, SCALE};
use crate::portfolio::Portfolio;

/// An order that passed the risk guard. Only [`RiskGuard::check`] makes one.
#[derive(Debug, Serialize)]
pub struct RiskApproved {
    request: OrderRequest,
}

impl RiskApproved {
    /// The approved request.
    pub fn request(&self) -> &OrderRequest {
        &self.request
    }

    /// The approved request, by value.
    pub fn into_request(self) -> OrderRequest {
        self.request
    }
}

/// A value in a [`RiskRejection`]: what the limit is and what the order had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum RiskValue {
    /// A quantity.
    Quantity(Quantity),
    /// An amount of money.
    Money(Money),
    /// A price.
    Price(Price),
    /// A count.
    Count(u64),
    /// Basis points (rounded up for an actual deviation).
    Bps(u64),
    /// A kill-switch gate state.
    Gate(GateState),
    /// Nothing to report.
    None,
}

impl fmt::Display for RiskValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RiskValue::Quantity(v) => write!(f, "{v}"),
            RiskValue::Money(v) => write!(f, "{v}"),
            RiskValue::Price(v) => write!(f, "{v}"),
            RiskValue::Count(v) => write!(f, "{v}"),
            RiskValue::Bps(v) => write!(f, "{v} bps"),
            RiskValue::Gate(g) => write!(f, "{g:?}"),
            RiskValue::None => f.write_str("-"),
        }
    }
}

/// An order refused by the risk guard, handing the request back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("order {} refused: {reason} (actual {actual}, limit {limit})", request.client_order_id)]
pub struct RiskRejection {
    /// Why, machine-readable.
    pub reason: RejectReason,
    /// The limit that applied.
    pub limit: RiskValue,
    /// What the order had.
    pub actual: RiskValue,
    /// `true` if the owner must trip the kill switch (daily loss limit breached).
    pub trip_kill_switch: bool,
    /// The refused request.
    pub request: OrderRequest,
}

impl RiskRejection {
    /// The refused request.
    pub fn into_request(self) -> OrderRequest {
        self.request
    }

    /// As an [`OrderRejected`] event at `ts`.
    pub fn to_order_rejected(&self, ts: Timestamp) -> OrderRejected {
        OrderRejected {
            client_order_id: self.request.client_order_id.clone(),
            strategy: self.request.strategy.clone(),
            instrument: self.request.instrument.clone(),
            reason: self.reason,
            message: format!("actual {}, limit {}", self.actual, self.limit),
            ts_event: ts,
        }
    }
}

/// Risk limits. Deserializes with unknown fields refused; check with
/// [`RiskLimits::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskLimits {
    /// Largest quantity of one order.
    pub max_order_quantity: Quantity,
    /// Largest notional of one order.
    pub max_notional: Money,
    /// Largest absolute position per instrument, open orders included (worst case).
    pub max_position: Quantity,
    /// Most open orders at once, over all instruments.
    pub max_open_orders: u32,
    /// Sustained order rate.
    pub orders_per_second: u32,
    /// Orders allowed in a burst (the token bucket's size).
    pub burst: u32,
    /// Largest distance of a limit price from the reference price, in basis points.
    pub price_band_bps: u32,
    /// Largest daily loss (positive amount) before orders that add risk are refused and
    /// the kill switch is to be tripped.
    pub daily_loss_limit: Money,
}

/// A [`RiskLimits`] field with a bad value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("risk limits: {field}: {reason}")]
pub struct InvalidLimit {
    /// The field.
    pub field: &'static str,
    /// Why.
    pub reason: &'static str,
}

impl RiskLimits {
    /// Checks that every limit is meaningful.
    pub fn validate(&self) -> Result<(), InvalidLimit> {
        let bad = |field, reason| Err(InvalidLimit { field, reason });
        if !self.max_order_quantity.is_positive() {
            return bad("max_order_quantity", "must be positive");
        }
        if !self.max_notional.is_positive() {
            return bad("max_notional", "must be positive");
        }
        if !self.max_position.is_positive() {
            return bad("max_position", "must be positive");
        }
        if self.max_open_orders == 0 {
            return bad("max_open_orders", "must be at least 1");
        }
        if self.orders_per_second == 0 {
            return bad("orders_per_second", "must be at least 1");
        }
        if self.burst == 0 {
            return bad("burst", "must be at least 1");
        }
        if self.price_band_bps == 0 || self.price_band_bps > 10_000 {
            return bad("price_band_bps", "must be between 1 and 10000");
        }
        if !self.daily_loss_limit.is_positive() {
            return bad("daily_loss_limit", "must be positive");
        }
        Ok(())
    }
}

/// A token bucket on explicit time: `burst` tokens, refilled at `rate` per second.
///
/// Exact: tokens are counted in billionths, and `t` nanoseconds add `rate × t` of them,
/// so in any window of length `t` at most `burst + ⌊rate × t / 1 s⌋` takes succeed.
/// Time that goes backwards refills nothing.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: u128,
    capacity: u128,
    units: u128,
    last: Option<Instant>,
}

const TOKEN: u128 = SCALE as u128;

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_second: u32, burst: u32) -> Self {
        let capacity = burst as u128 * TOKEN;
        TokenBucket {
            rate: rate_per_second as u128,
            capacity,
            units: capacity,
            last: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_nanos();
            self.units = self
                .units
                .saturating_add(dt.saturating_mul(self.rate))
                .min(self.capacity);
            if now > last {
                self.last = Some(now);
            }
        } else {
            self.last = Some(now);
        }
    }

    /// Takes a token if one is available at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.units >= TOKEN {
            self.units -= TOKEN;
            true
        } else {
            false
        }
    }

    /// Whole tokens available at `now` (refills first).
    pub fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        (self.units / TOKEN) as u64
    }
}

#[derive(Clone, Debug)]
struct OpenOrder {
    instrument: InstrumentId,
    side: Side,
    leaves: Quantity,
}

/// The pre-trade risk guard. See the [module docs](self) for the checks.
#[derive(Debug)]
pub struct RiskGuard {
    limits: RiskLimits,
    portfolio: Portfolio,
    open: FxHashMap<ClientOrderId, OpenOrder>,
    reference: FxHashMap<InstrumentId, Price>,
    bucket: TokenBucket,
    day_start_pnl: Money,
}

type Check<T> = Result<T, (RejectReason, RiskValue, RiskValue)>;

fn overflow(_: ArithmeticError) -> (RejectReason, RiskValue, RiskValue) {
    (
        RejectReason::ArithmeticOverflow,
        RiskValue::None,
        RiskValue::None,
    )
}

impl RiskGuard {
    /// A guard with validated limits, flat, with no open orders.
    pub fn new(limits: RiskLimits) -> Result<Self, InvalidLimit> {
        limits.validate()?;
        Ok(RiskGuard {
            bucket: TokenBucket::new(limits.orders_per_second, limits.burst),
            limits,
            portfolio: Portfolio::new(),
            open: FxHashMap::default(),
            reference: FxHashMap::default(),
            day_start_pnl: Money::ZERO,
        })
    }

    /// The limits.
    pub fn limits(&self) -> &RiskLimits {
        &self.limits
    }

    /// The guard's positions and P&L.
    pub fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }

    /// Number of open orders.
    pub fn open_orders(&self) -> usize {
        self.open.len()
    }

    /// The reference price of `instrument` (last trade price or quote mid).
    pub fn reference_price(&self, instrument: &InstrumentId) -> Option<Price> {
        self.reference.get(instrument).copied()
    }

    /// P&L since the last [`RiskGuard::reset_day`] (realised + unrealised − fees).
    pub fn daily_pnl(&self) -> Result<Money, ArithmeticError> {
        self.portfolio.total_pnl()?.checked_sub(self.day_start_pnl)
    }

    /// `true` if the daily loss exceeds the limit (or cannot be computed). The owner
    /// may poll this after market data to trip the kill switch without waiting for an
    /// order.
    pub fn loss_limit_breached(&self) -> bool {
        match self.daily_pnl() {
            Ok(pnl) => pnl
                .checked_neg()
                .map_or(true, |loss| loss > self.limits.daily_loss_limit),
            Err(_) => true,
        }
    }

    /// Starts a new trading day: the daily P&L counts from now.
    pub fn reset_day(&mut self) -> Result<(), ArithmeticError> {
        self.day_start_pnl = self.portfolio.total_pnl()?;
        Ok(())
    }

    /// Updates the reference price and the marks.
    pub fn on_market_data(&mut self, event: &MarketEvent) {
        let price = event.mark_price();
        match self.reference.get_mut(event.instrument()) {
            Some(p) => *p = price,
            None => {
                self.reference.insert(event.instrument().clone(), price);
            }
        }
        self.portfolio.on_market_data(event);
    }

    /// Records a fill: moves the position, reduces the order's leaves quantity.
    pub fn on_fill(&mut self, fill: &Fill) -> Result<(), ArithmeticError> {
        self.portfolio.apply_fill(fill)?;
        if let Some(o) = self.open.get_mut(&fill.client_order_id) {
            o.leaves = o.leaves.checked_sub(fill.quantity)?;
            if !o.leaves.is_positive() || fill.last {
                self.open.remove(&fill.client_order_id);
            }
        }
        Ok(())
    }

    /// Records that an order will not fill further (rejected, cancelled, expired).
    pub fn on_order_closed(&mut self, id: &ClientOrderId) {
        self.open.remove(id);
    }

    /// Sum of leaves of open orders in `instrument` on `side`.
    fn open_on_side(
        &self,
        instrument: &InstrumentId,
        side: Side,
    ) -> Result<Quantity, ArithmeticError> {
        self.open
            .values()
            .filter(|o| &o.instrument == instrument && o.side == side)
            .try_fold(Quantity::ZERO, |acc, o| acc.checked_add(o.leaves))
    }

    /// Whether `req` (with the open orders on its side) only reduces the position.
    fn reduces_only(&self, req: &OrderRequest) -> Result<bool, ArithmeticError> {
        let pos = self.portfolio.quantity(&req.instrument);
        let same_side = self
            .open_on_side(&req.instrument, req.side)?
            .checked_add(req.quantity)?;
        Ok(match req.side {
            Side::Sell => pos.is_positive() && same_side <= pos,
            Side::Buy => pos.is_negative() && same_side <= pos.checked_neg()?,
        })
    }

    /// Checks `request` against every limit; see the [module docs](self).
    // Both variants carry the `OrderRequest` (the rejection hands it back), so boxing
    // the error would not make the `Result` smaller.
    #[allow(clippy::result_large_err)]
    pub fn check(
        &mut self,
        request: OrderRequest,
        gate: GateState,
        now: Instant,
    ) -> Result<RiskApproved, RiskRejection> {
        match self.evaluate(&request, gate, now) {
            Ok(()) => {
                self.open.insert(
                    request.client_order_id.clone(),
                    OpenOrder {
                        instrument: request.instrument.clone(),
                        side: request.side,
                        leaves: request.quantity,
                    },
                );
                Ok(RiskApproved { request })
            }
            Err((reason, limit, actual)) => {
                let trip_kill_switch = reason == RejectReason::DailyLossLimit;
                tracing::debug!(order = %request.client_order_id, %reason, %limit, %actual, "risk: refused");
                Err(RiskRejection {
                    reason,
                    limit,
                    actual,
                    trip_kill_switch,
                    request,
                })
            }
        }
    }

    fn evaluate(&mut self, req: &OrderRequest, gate: GateState, now: Instant) -> Check<()> {
        let l = &self.limits;
        // 1. kill switch
        match gate {
            GateState::Open => {}
            GateState::Halted => {
                return Err((
                    RejectReason::KillSwitchHalted,
                    RiskValue::Gate(gate),
                    RiskValue::None,
                ));
            }
            GateState::ReduceOnly | GateState::Flatten => {
                if !self.reduces_only(req).map_err(overflow)? {
                    let pos = self.portfolio.quantity(&req.instrument);
                    return Err((
                        RejectReason::KillSwitchReduceOnly,
                        RiskValue::Gate(gate),
                        RiskValue::Quantity(pos),
                    ));
                }
            }
        }
        // 2. validity
        if !req.quantity.is_positive() {
            return Err((
                RejectReason::InvalidQuantity,
                RiskValue::None,
                RiskValue::Quantity(req.quantity),
            ));
        }
        if let Some(price) = req.limit_price()
            && !price.is_positive()
        {
            return Err((
                RejectReason::InvalidPrice,
                RiskValue::None,
                RiskValue::Price(price),
            ));
        }
        // 3. duplicate id
        if self.open.contains_key(&req.client_order_id) {
            return Err((
                RejectReason::DuplicateClientOrderId,
                RiskValue::None,
                RiskValue::None,
            ));
        }
        // 4. order size
        if req.quantity > l.max_order_quantity {
            return Err((
                RejectReason::MaxOrderQuantity,
                RiskValue::Quantity(l.max_order_quantity),
                RiskValue::Quantity(req.quantity),
            ));
        }
        // 5. reference price
        let Some(reference) = self.reference_price(&req.instrument) else {
            return Err((
                RejectReason::NoReferencePrice,
                RiskValue::None,
                RiskValue::None,
            ));
        };
        // 6. price band
        let exec_price = match req.order_type {
            OrderType::Market => reference,
            OrderType::Limit { price } => {
                if !within_band(price, reference, l.price_band_bps) {
                    return Err((
                        RejectReason::PriceBand,
                        RiskValue::Bps(l.price_band_bps as u64),
                        RiskValue::Bps(deviation_bps(price, reference)),
                    ));
                }
                price
            }
        };
        // 7. notional
        let notional = exec_price.checked_mul_qty(req.quantity).map_err(overflow)?;
        if notional > l.max_notional {
            return Err((
                RejectReason::MaxNotional,
                RiskValue::Money(l.max_notional),
                RiskValue::Money(notional),
            ));
        }
        // 8. position limit, worst case on this order's side
        let pos = self.portfolio.quantity(&req.instrument);
        let same_side = self
            .open_on_side(&req.instrument, req.side)
            .and_then(|q| q.checked_add(req.quantity))
            .map_err(overflow)?;
        let projected = match req.side {
            Side::Buy => pos.checked_add(same_side),
            Side::Sell => pos.checked_sub(same_side),
        }
        .map_err(overflow)?;
        let too_big = match req.side {
            Side::Buy => projected > l.max_position,
            Side::Sell => projected.checked_neg().map_err(overflow)? > l.max_position,
        };
        if too_big {
            return Err((
                RejectReason::PositionLimit,
                RiskValue::Quantity(l.max_position),
                RiskValue::Quantity(projected),
            ));
        }
        // 9. open orders
        if self.open.len() as u64 + 1 > l.max_open_orders as u64 {
            return Err((
                RejectReason::MaxOpenOrders,
                RiskValue::Count(l.max_open_orders as u64),
                RiskValue::Count(self.open.len() as u64 + 1),
            ));
        }
        // 10. daily loss
        let daily = self.daily_pnl().map_err(overflow)?;
        let loss_limit = l.daily_loss_limit.checked_neg().map_err(overflow)?;
        if daily < loss_limit && !self.reduces_only(req).map_err(overflow)? {
            return Err((
                RejectReason::DailyLossLimit,
                RiskValue::Money(loss_limit),
                RiskValue::Money(daily),
            ));
        }
        // 11. rate
        if !self.bucket.try_take(now) {
            return Err((
                RejectReason::RateLimited,
                RiskValue::Count(self.limits.orders_per_second as u64),
                RiskValue::None,
            ));
        }
        Ok(())
    }
}

/// `|price − reference| × 10⁴ ≤ band_bps × reference`, exactly.
pub fn within_band(price: Price, reference: Price, band_bps: u32) -> bool {
    let diff = (price.raw() as i128 - reference.raw() as i128).abs();
    diff * 10_000 <= band_bps as i128 * (reference.raw() as i128).abs()
}

/// `|price − reference| / reference` in basis points, rounded up (for reports).
fn deviation_bps(price: Price, reference: Price) -> u64 {
    let diff = (price.raw() as i128 - reference.raw() as i128).unsigned_abs();
    let r = reference.raw().unsigned_abs() as u128;
    if r == 0 {
        return u64::MAX;
    }
    u64::try_from((diff * 10_000).div_ceil(r)).unwrap_or(u64::MAX)
}
