//! The trading vocabulary: instruments, market data, orders, fills, rejections.
//!
//! # Contract
//!
//! - Every type here is `Clone + Debug + Serialize + Deserialize` (the journal and the
//!   NATS bridge carry them), except where noted. Numbers are the exact fixed-point types
//!   of [`crate::num`], serialized as decimal strings; timestamps are
//!   [`Timestamp`]s (nanoseconds since the Unix epoch, serialized as integers); enums are
//!   `snake_case`.
//! - Identifiers ([`Symbol`], [`Venue`], [`StrategyId`], [`ClientOrderId`]) are `Arc<str>`
//!   newtypes: cloning one is a reference-count increment, not an allocation. An
//!   [`InstrumentId`] is a venue plus a symbol.
//! - An [`Order`]'s status changes only through its transition methods, which refuse
//!   illegal moves (e.g. a fill on a cancelled order) with an [`OrderTransitionError`] and
//!   leave the order unchanged.
//! - A [`Position`] is changed only by fills ([`Position::apply_fill`]); see
//!   [`crate::portfolio`] for the P&L rules.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard::Timestamp;

use crate::num::{ArithmeticError, Money, Price, Quantity};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $make:path) => {
        $(#[$doc])*
        #[derive(Clone, Eq, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        // By pointer first: interned ids (and clones of one id) never compare bytes.
        // (`Arc`'s own pointer shortcut does not apply to `Arc<str>`.)
        impl PartialEq for $name {
            #[inline]
            fn eq(&self, other: &Self) -> bool {
                self.same(other)
            }
        }

        // The content's hash, as equality is the content's (the pointer is a shortcut).
        impl std::hash::Hash for $name {
            #[inline]
            fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
                self.0.hash(h)
            }
        }

        impl $name {
            /// A new identifier.
            pub fn new(s: impl AsRef<str>) -> Self {
                $name($make(s.as_ref()))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Equal to `other`: by pointer first (clones of one id), else by content.
            #[inline]
            pub fn same(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok($name::new(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name::new(s)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

/// A fresh `Arc<str>` (order ids: one per order, never interned).
fn fresh(s: &str) -> Arc<str> {
    Arc::from(s)
}

/// The one `Arc<str>` for `s` among the symbols, venues and strategy ids ever made in
/// this process: equal ids share their allocation, so the engine's maps compare them by
/// pointer (`Arc`'s equality checks the pointer first) instead of by content on every
/// event. The set grows with the distinct names only (instruments, venues, strategies
/// of a run), never with orders or events.
fn interned(s: &str) -> Arc<str> {
    static NAMES: std::sync::OnceLock<std::sync::Mutex<rustc_hash::FxHashSet<Arc<str>>>> =
        std::sync::OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(a) = names.get(s) {
        return Arc::clone(a);
    }
    let a: Arc<str> = Arc::from(s);
    names.insert(Arc::clone(&a));
    a
}

id_type!(
    /// An instrument's symbol on its venue, e.g. `BTCUSDT` (interned).
    Symbol,
    interned
);
id_type!(
    /// A venue (exchange) name, e.g. `binance-futures` (interned).
    Venue,
    interned
);
id_type!(
    /// A strategy's name (interned).
    StrategyId,
    interned
);
id_type!(
    /// An order id chosen by the sender; unique among the sender's open orders.
    ClientOrderId,
    fresh
);

/// An instrument: a symbol on a venue. Displays as `SYMBOL.venue`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstrumentId {
    /// The venue.
    pub venue: Venue,
    /// The symbol on that venue.
    pub symbol: Symbol,
}

impl InstrumentId {
    /// A new instrument id.
    pub fn new(venue: impl Into<Venue>, symbol: impl Into<Symbol>) -> Self {
        InstrumentId {
            venue: venue.into(),
            symbol: symbol.into(),
        }
    }

    /// The kill-switch target of an order for this instrument by `strategy`.
    pub fn target<'a>(&'a self, strategy: &'a StrategyId) -> switchyard::kill_switch::Target<'a> {
        switchyard::kill_switch::Target {
            venue: self.venue.as_str(),
            strategy: strategy.as_str(),
            instrument: self.symbol.as_str(),
        }
    }
}

impl fmt::Display for InstrumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.symbol, self.venue)
    }
}

impl fmt::Debug for InstrumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// A tradable instrument and its order granularity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instrument {
    /// Venue and symbol.
    pub id: InstrumentId,
    /// Smallest price increment; order prices must be multiples of it.
    pub tick_size: Price,
    /// Smallest quantity increment; order quantities must be multiples of it.
    pub lot_size: Quantity,
    /// Decimal places of prices (for display).
    pub price_precision: u8,
    /// Decimal places of sizes (for display).
    pub size_precision: u8,
}

impl Instrument {
    /// An instrument whose precisions are derived from the tick and lot sizes.
    pub fn new(id: InstrumentId, tick_size: Price, lot_size: Quantity) -> Self {
        fn decimals(raw: i64) -> u8 {
            if raw == 0 {
                return 0;
            }
            let mut d = 9u8;
            let mut r = raw;
            while r % 10 == 0 && d > 0 {
                r /= 10;
                d -= 1;
            }
            d
        }
        Instrument {
            price_precision: decimals(tick_size.raw()),
            size_precision: decimals(lot_size.raw()),
            id,
            tick_size,
            lot_size,
        }
    }
}

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Buy: increases a position.
    Buy,
    /// Sell: decreases a position.
    Sell,
}

impl Side {
    /// The other side.
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// `qty` with the sign of this side (buy positive, sell negative), checked.
    pub fn signed(self, qty: Quantity) -> Result<Quantity, ArithmeticError> {
        match self {
            Side::Buy => Ok(qty),
            Side::Sell => qty.checked_neg(),
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        })
    }
}

/// A trade printed by a venue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// The instrument.
    pub instrument: InstrumentId,
    /// When the venue says it happened.
    pub ts_event: Timestamp,
    /// When it was received.
    pub ts_recv: Timestamp,
    /// Trade price.
    pub price: Price,
    /// Trade size (positive).
    pub size: Quantity,
    /// The aggressor's side, if the venue says.
    pub aggressor: Option<Side>,
    /// The venue's trade id (a number on some venues, a UUID on others).
    pub trade_id: String,
}

/// Best bid and offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The instrument.
    pub instrument: InstrumentId,
    /// When the venue says it happened.
    pub ts_event: Timestamp,
    /// When it was received.
    pub ts_recv: Timestamp,
    /// Best bid price.
    pub bid_price: Price,
    /// Size at the best bid, if the source gives it.
    pub bid_size: Option<Quantity>,
    /// Best ask (offer) price.
    pub ask_price: Price,
    /// Size at the best ask, if the source gives it.
    pub ask_size: Option<Quantity>,
}

impl Quote {
    /// The midpoint of bid and ask.
    pub fn mid(&self) -> Price {
        self.bid_price.midpoint(self.ask_price)
    }
}

/// One item of market data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MarketEvent {
    /// A trade.
    Trade(Trade),
    /// A top-of-book quote.
    Quote(Quote),
}

impl MarketEvent {
    /// The venue's event time.
    pub fn ts_event(&self) -> Timestamp {
        match self {
            MarketEvent::Trade(t) => t.ts_event,
            MarketEvent::Quote(q) => q.ts_event,
        }
    }

    /// The instrument.
    pub fn instrument(&self) -> &InstrumentId {
        match self {
            MarketEvent::Trade(t) => &t.instrument,
            MarketEvent::Quote(q) => &q.instrument,
        }
    }

    /// Moves the event (its venue and receive times) `by` later, e.g. for a replay's
    /// next pass over the same files.
    pub fn shift_time(&mut self, by: std::time::Duration) {
        match self {
            MarketEvent::Trade(t) => {
                t.ts_event = t.ts_event.saturating_add(by);
                t.ts_recv = t.ts_recv.saturating_add(by);
            }
            MarketEvent::Quote(q) => {
                q.ts_event = q.ts_event.saturating_add(by);
                q.ts_recv = q.ts_recv.saturating_add(by);
            }
        }
    }

    /// The price to mark positions at: the trade price, or the quote's mid.
    pub fn mark_price(&self) -> Price {
        match self {
            MarketEvent::Trade(t) => t.price,
            MarketEvent::Quote(q) => q.mid(),
        }
    }
}

/// How an order is priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderType {
    /// Execute now at the best available price.
    Market,
    /// Execute at `price` or better.
    Limit {
        /// The limit price.
        price: Price,
    },
}

/// How long an order stays working.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Good till cancelled.
    #[default]
    Gtc,
    /// Immediate or cancel: whatever does not execute on arrival is cancelled.
    Ioc,
}

/// A strategy's request for an order, before risk checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// The sender's id for the order.
    pub client_order_id: ClientOrderId,
    /// The strategy that sends it.
    pub strategy: StrategyId,
    /// What to trade.
    pub instrument: InstrumentId,
    /// Buy or sell.
    pub side: Side,
    /// How much (must be positive).
    pub quantity: Quantity,
    /// Market or limit.
    pub order_type: OrderType,
    /// How long it works.
    pub time_in_force: TimeInForce,
}

impl OrderRequest {
    /// The quantity signed by side (buy positive), checked.
    pub fn signed_quantity(&self) -> Result<Quantity, ArithmeticError> {
        self.side.signed(self.quantity)
    }

    /// The limit price, if a limit order.
    pub fn limit_price(&self) -> Option<Price> {
        match self.order_type {
            OrderType::Market => None,
            OrderType::Limit { price } => Some(price),
        }
    }
}

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created, not yet acknowledged by the venue.
    New,
    /// Working at the venue, nothing filled.
    Accepted,
    /// Working, partly filled.
    PartiallyFilled,
    /// Completely filled (terminal).
    Filled,
    /// Cancelled, possibly after partial fills (terminal).
    Canceled,
    /// Refused (terminal).
    Rejected,
}

impl OrderStatus {
    /// `true` for Filled, Canceled and Rejected.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled | OrderStatus::Canceled | OrderStatus::Rejected
        )
    }
}

/// An illegal order transition; the order is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("order {client_order_id}: cannot {action} in status {from:?}")]
pub struct OrderTransitionError {
    /// The order.
    pub client_order_id: ClientOrderId,
    /// Its status.
    pub from: OrderStatus,
    /// What was attempted: `accept`, `fill`, `cancel`, `reject`, or `overfill`.
    pub action: &'static str,
}

/// An order and its execution state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// What was asked for.
    pub request: OrderRequest,
    /// The venue's id, once accepted.
    pub venue_order_id: Option<u64>,
    /// Current status; change it only through the transition methods.
    status: OrderStatus,
    /// Quantity filled so far.
    filled: Quantity,
    /// Sum of fill notionals (for the average fill price).
    filled_notional: Money,
    /// Time of the last transition.
    pub ts_last: Timestamp,
}

impl Order {
    /// A new order in status [`OrderStatus::New`].
    pub fn new(request: OrderRequest, ts: Timestamp) -> Self {
        Order {
            request,
            venue_order_id: None,
            status: OrderStatus::New,
            filled: Quantity::ZERO,
            filled_notional: Money::ZERO,
            ts_last: ts,
        }
    }

    /// Current status.
    pub fn status(&self) -> OrderStatus {
        self.status
    }

    /// Quantity filled so far.
    pub fn filled_quantity(&self) -> Quantity {
        self.filled
    }

    /// Quantity still to fill (zero once terminal).
    pub fn leaves_quantity(&self) -> Quantity {
        if self.status.is_terminal() {
            Quantity::ZERO
        } else {
            // filled ≤ quantity is an invariant of apply_fill
            Quantity::from_raw(self.request.quantity.raw() - self.filled.raw())
        }
    }

    /// Average fill price, if anything filled.
    pub fn avg_fill_price(&self) -> Option<Price> {
        if self.filled.is_zero() {
            None
        } else {
            self.filled_notional.checked_div_qty(self.filled).ok()
        }
    }

    /// `true` while the order can still fill.
    pub fn is_open(&self) -> bool {
        !self.status.is_terminal()
    }

    fn refuse(&self, action: &'static str) -> OrderTransitionError {
        OrderTransitionError {
            client_order_id: self.request.client_order_id.clone(),
            from: self.status,
            action,
        }
    }

    /// New → Accepted.
    pub fn accept(
        &mut self,
        venue_order_id: u64,
        ts: Timestamp,
    ) -> Result<(), OrderTransitionError> {
        if self.status != OrderStatus::New {
            return Err(self.refuse("accept"));
        }
        self.status = OrderStatus::Accepted;
        self.venue_order_id = Some(venue_order_id);
        self.ts_last = ts;
        Ok(())
    }

    /// New → Rejected.
    pub fn reject(&mut self, ts: Timestamp) -> Result<(), OrderTransitionError> {
        if self.status != OrderStatus::New {
            return Err(self.refuse("reject"));
        }
        self.status = OrderStatus::Rejected;
        self.ts_last = ts;
        Ok(())
    }

    /// Accepted | PartiallyFilled → PartiallyFilled | Filled. Refuses a fill larger than
    /// the leaves quantity (`overfill`) or not positive.
    pub fn apply_fill(
        &mut self,
        qty: Quantity,
        price: Price,
        ts: Timestamp,
    ) -> Result<(), OrderTransitionError> {
        if !matches!(
            self.status,
            OrderStatus::Accepted | OrderStatus::PartiallyFilled
        ) {
            return Err(self.refuse("fill"));
        }
        if !qty.is_positive() || qty > self.leaves_quantity() {
            return Err(self.refuse("overfill"));
        }
        let notional = price
            .checked_mul_qty(qty)
            .and_then(|n| self.filled_notional.checked_add(n))
            .map_err(|_| self.refuse("overfill"))?;
        self.filled = Quantity::from_raw(self.filled.raw() + qty.raw());
        self.filled_notional = notional;
        self.status = if self.filled == self.request.quantity {
            OrderStatus::Filled
        } else {
            OrderStatus::PartiallyFilled
        };
        self.ts_last = ts;
        Ok(())
    }

    /// New | Accepted | PartiallyFilled → Canceled.
    pub fn cancel(&mut self, ts: Timestamp) -> Result<(), OrderTransitionError> {
        if self.status.is_terminal() {
            return Err(self.refuse("cancel"));
        }
        self.status = OrderStatus::Canceled;
        self.ts_last = ts;
        Ok(())
    }
}

/// Whether a fill added or took liquidity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liquidity {
    /// Rested on the book and was hit.
    Maker,
    /// Crossed the spread.
    Taker,
}

/// An execution of (part of) an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// The order's client id.
    pub client_order_id: ClientOrderId,
    /// The venue's order id.
    pub venue_order_id: u64,
    /// The strategy that sent the order.
    pub strategy: StrategyId,
    /// The instrument.
    pub instrument: InstrumentId,
    /// The order's side.
    pub side: Side,
    /// Execution price.
    pub price: Price,
    /// Executed quantity (positive).
    pub quantity: Quantity,
    /// Fee charged (positive = paid, negative = rebate).
    pub fee: Money,
    /// Maker or taker.
    pub liquidity: Liquidity,
    /// `true` if this fill completed the order.
    pub last: bool,
    /// Execution time.
    pub ts_event: Timestamp,
}

impl Fill {
    /// The quantity signed by side (buy positive), checked.
    pub fn signed_quantity(&self) -> Result<Quantity, ArithmeticError> {
        self.side.signed(self.quantity)
    }
}

/// Why an order was refused, machine-readable. Shared by the risk guard and the
/// exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The kill switch halts this target.
    KillSwitchHalted,
    /// The kill switch allows only reducing orders, and this one is not.
    KillSwitchReduceOnly,
    /// Quantity is zero or negative, or not a multiple of the lot size.
    InvalidQuantity,
    /// Limit price is zero or negative, or not a multiple of the tick size.
    InvalidPrice,
    /// Quantity above the per-order maximum.
    MaxOrderQuantity,
    /// Notional above the per-order maximum.
    MaxNotional,
    /// The projected position would exceed the per-instrument limit.
    PositionLimit,
    /// Too many open orders.
    MaxOpenOrders,
    /// Order-rate throttle.
    RateLimited,
    /// Limit price too far from the reference price (fat finger).
    PriceBand,
    /// No reference price yet for the instrument.
    NoReferencePrice,
    /// The daily loss limit is breached.
    DailyLossLimit,
    /// The client order id is already used by an open order.
    DuplicateClientOrderId,
    /// The venue does not list the instrument.
    UnknownInstrument,
    /// No price to execute a market order against.
    NoMarket,
    /// No such open order (cancel).
    UnknownOrder,
    /// A computation overflowed the fixed-point range.
    ArithmeticOverflow,
    /// The circuit breaker in front of the venue is open.
    CircuitOpen,
    /// The request names another strategy than the one that asked for it.
    ForeignStrategy,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde name, so logs and wire agree.
        let s = match self {
            RejectReason::KillSwitchHalted => "kill_switch_halted",
            RejectReason::KillSwitchReduceOnly => "kill_switch_reduce_only",
            RejectReason::InvalidQuantity => "invalid_quantity",
            RejectReason::InvalidPrice => "invalid_price",
            RejectReason::MaxOrderQuantity => "max_order_quantity",
            RejectReason::MaxNotional => "max_notional",
            RejectReason::PositionLimit => "position_limit",
            RejectReason::MaxOpenOrders => "max_open_orders",
            RejectReason::RateLimited => "rate_limited",
            RejectReason::PriceBand => "price_band",
            RejectReason::NoReferencePrice => "no_reference_price",
            RejectReason::DailyLossLimit => "daily_loss_limit",
            RejectReason::DuplicateClientOrderId => "duplicate_client_order_id",
            RejectReason::UnknownInstrument => "unknown_instrument",
            RejectReason::NoMarket => "no_market",
            RejectReason::UnknownOrder => "unknown_order",
            RejectReason::ArithmeticOverflow => "arithmetic_overflow",
            RejectReason::CircuitOpen => "circuit_open",
            RejectReason::ForeignStrategy => "foreign_strategy",
        };
        f.pad(s)
    }
}

/// An order refused by the venue (or the paper exchange).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRejected {
    /// The order's client id.
    pub client_order_id: ClientOrderId,
    /// The strategy that sent it.
    pub strategy: StrategyId,
    /// The instrument.
    pub instrument: InstrumentId,
    /// Why.
    pub reason: RejectReason,
    /// Human-readable detail.
    pub message: String,
    /// When.
    pub ts_event: Timestamp,
}

/// A position in one instrument, with its P&L.
///
/// `quantity` is signed (long > 0). `cost` is the signed cost basis of the open quantity
/// (Σ signed qty × price of the fills that opened it, less what reductions released), so
/// the average entry price is `cost / quantity` and unrealised P&L is
/// `quantity × mark − cost`. Reductions release cost pro rata (rounded to 10⁻⁹); the
/// last reduction to flat releases exactly what remains, so the realised P&L of a
/// round trip is exactly `Σ sells − Σ buys` (of the rounded fill notionals). Fees are
/// tracked apart from realised P&L.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Signed quantity (long > 0, short < 0).
    pub quantity: Quantity,
    /// Signed cost basis of `quantity`.
    pub cost: Money,
    /// Realised P&L so far, before fees.
    pub realised_pnl: Money,
    /// Fees paid so far.
    pub fees: Money,
    /// Last mark price (trade price or quote mid).
    pub mark: Option<Price>,
}

impl Position {
    /// A flat position.
    pub fn flat(instrument: InstrumentId) -> Self {
        Position {
            instrument,
            quantity: Quantity::ZERO,
            cost: Money::ZERO,
            realised_pnl: Money::ZERO,
            fees: Money::ZERO,
            mark: None,
        }
    }

    /// Average entry price of the open quantity, `None` when flat.
    pub fn avg_entry_price(&self) -> Option<Price> {
        if self.quantity.is_zero() {
            None
        } else {
            self.cost.checked_div_qty(self.quantity).ok()
        }
    }

    /// `quantity × mark − cost`; zero when flat or never marked.
    pub fn unrealised_pnl(&self) -> Result<Money, ArithmeticError> {
        match self.mark {
            Some(mark) if !self.quantity.is_zero() => {
                mark.checked_mul_qty(self.quantity)?.checked_sub(self.cost)
            }
            _ => Ok(Money::ZERO),
        }
    }

    /// Realised + unrealised − fees.
    pub fn total_pnl(&self) -> Result<Money, ArithmeticError> {
        self.realised_pnl
            .checked_add(self.unrealised_pnl()?)?
            .checked_sub(self.fees)
    }

    /// Applies a fill of signed quantity `qty` at `price` with `fee`. All-or-nothing: on
    /// overflow the position is unchanged. Returns the P&L realised by this fill.
    pub fn apply(
        &mut self,
        qty: Quantity,
        price: Price,
        fee: Money,
    ) -> Result<Money, ArithmeticError> {
        let mut next = self.clone();
        let realised = next.apply_inner(qty, price)?;
        next.realised_pnl = next.realised_pnl.checked_add(realised)?;
        next.fees = next.fees.checked_add(fee)?;
        *self = next;
        Ok(realised)
    }

    /// Applies a [`Fill`] (see [`Position::apply`]).
    pub fn apply_fill(&mut self, fill: &Fill) -> Result<Money, ArithmeticError> {
        self.apply(fill.signed_quantity()?, fill.price, fill.fee)
    }

    fn apply_inner(&mut self, qty: Quantity, price: Price) -> Result<Money, ArithmeticError> {
        if qty.is_zero() {
            return Ok(Money::ZERO);
        }
        if self.quantity.is_zero() || self.quantity.signum() == qty.signum() {
            self.quantity = self.quantity.checked_add(qty)?;
            self.cost = self.cost.checked_add(price.checked_mul_qty(qty)?)?;
            return Ok(Money::ZERO);
        }
        // Reducing, possibly flipping. `closing` has the sign of `qty`.
        let closing = if qty.checked_abs()? <= self.quantity.checked_abs()? {
            qty
        } else {
            self.quantity.checked_neg()?
        };
        let released = if closing.checked_neg()? == self.quantity {
            self.cost
        } else {
            // cost × |closing| / |quantity|
            self.cost.checked_mul_ratio(
                closing.checked_abs()?.raw(),
                self.quantity.checked_abs()?.raw(),
            )?
        };
        // Proceeds of the closing part: −closing × price.
        let proceeds = price.checked_mul_qty(closing)?.checked_neg()?;
        let realised = proceeds.checked_sub(released)?;
        self.quantity = self.quantity.checked_add(closing)?;
        self.cost = self.cost.checked_sub(released)?;
        let rest = qty.checked_sub(closing)?;
        if !rest.is_zero() {
            self.quantity = rest;
            self.cost = price.checked_mul_qty(rest)?;
        }
        Ok(realised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(qty: &str) -> OrderRequest {
        OrderRequest {
            client_order_id: "c1".into(),
            strategy: "s".into(),
            instrument: InstrumentId::new("binance-futures", "BTCUSDT"),
            side: Side::Buy,
            quantity: qty.parse().unwrap(),
            order_type: OrderType::Limit {
                price: "100".parse().unwrap(),
            },
            time_in_force: TimeInForce::Gtc,
        }
    }

    #[test]
    fn order_transitions_are_validated() {
        let ts = Timestamp::from_nanos(1);
        let mut o = Order::new(req("2"), ts);
        assert!(o.apply_fill(Quantity::ONE, Price::ONE, ts).is_err());
        o.accept(7, ts).unwrap();
        assert!(o.accept(8, ts).is_err());
        assert!(o.reject(ts).is_err());
        o.apply_fill(Quantity::ONE, "100".parse().unwrap(), ts)
            .unwrap();
        assert_eq!(o.status(), OrderStatus::PartiallyFilled);
        let err = o
            .apply_fill(Quantity::from_int(2).unwrap(), Price::ONE, ts)
            .unwrap_err();
        assert_eq!(err.action, "overfill");
        assert_eq!(o.filled_quantity(), Quantity::ONE);
        o.apply_fill(Quantity::ONE, "102".parse().unwrap(), ts)
            .unwrap();
        assert_eq!(o.status(), OrderStatus::Filled);
        assert_eq!(o.avg_fill_price(), Some("101".parse().unwrap()));
        assert_eq!(o.leaves_quantity(), Quantity::ZERO);
        let err = o.cancel(ts).unwrap_err();
        assert_eq!(err.to_string(), "order c1: cannot cancel in status Filled");
    }

    #[test]
    fn serde_round_trips() {
        let o = Order::new(req("0.5"), Timestamp::from_nanos(5));
        let json = serde_json::to_string(&o).unwrap();
        assert!(json.contains("\"quantity\":\"0.5\""), "{json}");
        assert!(json.contains("\"type\":\"limit\""), "{json}");
        let back: Order = serde_json::from_str(&json).unwrap();
        assert_eq!(back, o);
        assert_eq!(
            serde_json::to_string(&RejectReason::MaxNotional).unwrap(),
            "\"max_notional\""
        );
        assert_eq!(RejectReason::MaxNotional.to_string(), "max_notional");
    }

    #[test]
    fn instrument_precision_and_display() {
        let i = Instrument::new(
            InstrumentId::new("binance-futures", "BTCUSDT"),
            "0.01".parse().unwrap(),
            "0.001".parse().unwrap(),
        );
        assert_eq!((i.price_precision, i.size_precision), (2, 3));
        assert_eq!(i.id.to_string(), "BTCUSDT.binance-futures");
    }

    #[test]
    fn position_flip_and_close() {
        let mut pos = Position::flat(InstrumentId::new("v", "X"));
        let p = |s: &str| s.parse::<Price>().unwrap();
        let q = |s: &str| s.parse::<Quantity>().unwrap();
        pos.apply(q("2"), p("100"), Money::ZERO).unwrap();
        pos.apply(q("1"), p("103"), Money::ZERO).unwrap();
        assert_eq!(pos.avg_entry_price(), Some(p("101")));
        // sell 4 at 110: close 3 (realise 3×110 − 303 = 27), open short 1 at 110
        let r = pos.apply(q("-4"), p("110"), Money::ZERO).unwrap();
        assert_eq!(r, "27".parse().unwrap());
        assert_eq!(pos.quantity, q("-1"));
        assert_eq!(pos.avg_entry_price(), Some(p("110")));
        pos.mark = Some(p("105"));
        assert_eq!(pos.unrealised_pnl().unwrap(), "5".parse().unwrap());
        let r = pos.apply(q("1"), p("100"), "0.5".parse().unwrap()).unwrap();
        assert_eq!(r, "10".parse().unwrap());
        assert_eq!(pos.quantity, Quantity::ZERO);
        assert_eq!(pos.cost, Money::ZERO);
        assert_eq!(pos.total_pnl().unwrap(), "36.5".parse().unwrap());
    }
}
