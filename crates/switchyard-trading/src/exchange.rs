//! A paper exchange: fills risk-approved orders against market data, synchronously.
//!
//! # Contract
//!
//! - **Only approved orders.** [`PaperExchange::submit`] takes a
//!   [`RiskApproved`], which only the risk guard can make.
//! - **Time is explicit.** Nothing sleeps and no clock is read. An order submitted at
//!   `now` reaches the exchange at `now + latency`; it is processed by the first call of
//!   [`PaperExchange::on_time`] or [`PaperExchange::on_market_data`] with a time at or
//!   after that (in arrival order, ties in submission order). With zero latency
//!   `submit` processes it at once. Market data first releases the orders due by its
//!   `ts_event`, then updates the market, then matches resting orders.
//! - **Arrival checks**, each a [`ExecEvent::Rejected`] with a [`RejectReason`]:
//!   unknown instrument, quantity not positive or not a multiple of the lot size, limit
//!   price not positive or not a multiple of the tick size, client order id of an open
//!   order, market order with no price to trade at (`no_market`).
//! - **Market orders** fill completely at the touch: buy at the latest ask, sell at the
//!   latest bid; with no quote yet, at the last trade price. Quote sizes are not used
//!   (a deliberate simplification: the whole order fills at one price, as a taker).
//! - **Limit orders**: marketable on arrival (buy limit ≥ ask, sell limit ≤ bid) fill
//!   completely at the touch as a taker; otherwise they rest (GTC) or are cancelled
//!   (IOC). A resting order fills completely at its limit price, as a maker, when a
//!   later quote crosses it (ask ≤ buy limit, bid ≥ sell limit) or a later trade prints
//!   strictly through it (trade price < buy limit, > sell limit: a trade *at* the limit
//!   says nothing about queue position). Resting orders are matched in the order they
//!   were accepted.
//! - **Fees**: `notional × bps / 10⁴`, rounded, with separate maker and taker rates;
//!   negative rates are rebates.
//! - **Order states** move only through [`Order`]'s validated transitions; every
//!   change is reported as an [`ExecEvent`]. Orders (terminal ones included) stay
//!   queryable through [`PaperExchange::order`] until [`PaperExchange::purge_closed`];
//!   as a venue it purges them itself ([`PaperExchange::poll_purge`]), so a long run's
//!   memory is bounded by its open orders.
//! - **Cancel** is immediate (no latency); cancelling an order still in flight removes it.

use std::collections::{BTreeMap, VecDeque};

use rustc_hash::FxHashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard::Timestamp;

use crate::model::{
    ClientOrderId, Fill, Instrument, InstrumentId, Liquidity, MarketEvent, Order, OrderRejected,
    OrderRequest, OrderType, RejectReason, Side, TimeInForce,
};
use crate::num::{ArithmeticError, Money, Price, Quantity};
use crate::risk::RiskApproved;

/// Paper exchange settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeConfig {
    /// Delay between submission and arrival at the exchange.
    pub latency: Duration,
    /// Fee of taker fills in basis points of notional (negative: rebate).
    pub taker_fee_bps: i64,
    /// Fee of maker fills in basis points of notional (negative: rebate).
    pub maker_fee_bps: i64,
}

/// What the exchange reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecEvent {
    /// The order is working.
    Accepted {
        /// The order.
        client_order_id: ClientOrderId,
        /// The exchange's id for it.
        venue_order_id: u64,
        /// When.
        ts_event: Timestamp,
    },
    /// The order was refused on arrival.
    Rejected(OrderRejected),
    /// (Part of) the order executed.
    Filled(Fill),
    /// The order was cancelled (on request, or IOC remainder).
    Canceled {
        /// The order.
        client_order_id: ClientOrderId,
        /// When.
        ts_event: Timestamp,
    },
    /// A cancel request was refused.
    CancelRejected {
        /// The order named in the request.
        client_order_id: ClientOrderId,
        /// Why.
        reason: RejectReason,
        /// When.
        ts_event: Timestamp,
    },
}

impl ExecEvent {
    /// The order the event is about.
    pub fn client_order_id(&self) -> &ClientOrderId {
        match self {
            ExecEvent::Accepted {
                client_order_id, ..
            }
            | ExecEvent::Canceled {
                client_order_id, ..
            }
            | ExecEvent::CancelRejected {
                client_order_id, ..
            } => client_order_id,
            ExecEvent::Rejected(r) => &r.client_order_id,
            ExecEvent::Filled(f) => &f.client_order_id,
        }
    }

    /// `true` if the order can no longer fill after this event (rejected, cancelled, or
    /// its last fill).
    pub fn closes_order(&self) -> bool {
        match self {
            ExecEvent::Rejected(_) | ExecEvent::Canceled { .. } => true,
            ExecEvent::Filled(f) => f.last,
            ExecEvent::Accepted { .. } | ExecEvent::CancelRejected { .. } => false,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Market {
    bid: Option<Price>,
    ask: Option<Price>,
    last_trade: Option<Price>,
}

/// The paper exchange. See the [module docs](self).
#[derive(Debug)]
pub struct PaperExchange {
    config: ExchangeConfig,
    instruments: FxHashMap<InstrumentId, Instrument>,
    markets: FxHashMap<InstrumentId, Market>,
    orders: FxHashMap<ClientOrderId, Order>,
    /// Resting orders by venue order id (= acceptance order).
    resting: BTreeMap<u64, ClientOrderId>,
    /// Orders in flight, sorted by (arrival time, submission sequence).
    in_flight: VecDeque<(Timestamp, u64, OrderRequest)>,
    next_seq: u64,
    next_venue_id: u64,
    /// List every instrument on first sight, with this tick and lot size.
    list_any: Option<(Price, Quantity)>,
    /// Orders kept after the last purge (see [`PaperExchange::poll_purge`]).
    kept_at_purge: usize,
}

impl PaperExchange {
    /// An exchange listing no instruments yet.
    pub fn new(config: ExchangeConfig) -> Self {
        PaperExchange {
            config,
            instruments: FxHashMap::default(),
            markets: FxHashMap::default(),
            orders: FxHashMap::default(),
            resting: BTreeMap::new(),
            in_flight: VecDeque::new(),
            next_seq: 0,
            next_venue_id: 1,
            list_any: None,
            kept_at_purge: 0,
        }
    }

    /// Lists an instrument (replacing any listing with the same id).
    pub fn add_instrument(&mut self, instrument: Instrument) {
        self.instruments.insert(instrument.id.clone(), instrument);
    }

    /// Lists every instrument it is asked about (an order or market data), with one
    /// tick and lot size, besides those listed explicitly.
    pub fn list_any(&mut self, tick_size: Price, lot_size: Quantity) {
        self.list_any = Some((tick_size, lot_size));
    }

    /// Whether `instrument` is listed (or would be, under [`PaperExchange::list_any`]).
    pub fn is_listed(&self, instrument: &InstrumentId) -> bool {
        self.list_any.is_some() || self.instruments.contains_key(instrument)
    }

    fn listing(&mut self, id: &InstrumentId) -> Option<&Instrument> {
        if let Some((tick, lot)) = self.list_any
            && !self.instruments.contains_key(id)
        {
            self.instruments
                .insert(id.clone(), Instrument::new(id.clone(), tick, lot));
        }
        self.instruments.get(id)
    }

    /// The order with this client id (open or closed, until purged).
    pub fn order(&self, id: &ClientOrderId) -> Option<&Order> {
        self.orders.get(id)
    }

    /// Number of orders resting on the book.
    pub fn resting_orders(&self) -> usize {
        self.resting.len()
    }

    /// Number of orders submitted but not yet arrived.
    pub fn in_flight_orders(&self) -> usize {
        self.in_flight.len()
    }

    /// Forgets terminal orders.
    pub fn purge_closed(&mut self) {
        self.orders.retain(|_, o| o.is_open());
        self.kept_at_purge = self.orders.len();
    }

    /// Orders it remembers (open ones, and terminal ones not yet purged).
    pub fn tracked_orders(&self) -> usize {
        self.orders.len()
    }

    /// Purges terminal orders once the map holds more than twice what the last purge
    /// kept, plus 1,024: memory stays bounded by the open orders (× 2, + 1,024) at an
    /// amortised constant cost per order. The venue boundary calls it on every poll.
    pub fn poll_purge(&mut self) {
        if self.orders.len() > 2 * self.kept_at_purge + 1024 {
            self.purge_closed();
        }
    }

    /// Submits an approved order at `now`. Returns what happened by `now` (with zero
    /// latency: the order's acceptance or rejection and any fill).
    pub fn submit(&mut self, approved: RiskApproved, now: Timestamp) -> Vec<ExecEvent> {
        let request = approved.into_request();
        let at = now.saturating_add(self.config.latency);
        let seq = self.next_seq;
        self.next_seq += 1;
        let pos = self
            .in_flight
            .partition_point(|(t, s, _)| (*t, *s) <= (at, seq));
        self.in_flight.insert(pos, (at, seq, request));
        self.on_time(now)
    }

    /// Processes the orders whose arrival time is at or before `now`.
    pub fn on_time(&mut self, now: Timestamp) -> Vec<ExecEvent> {
        let mut out = Vec::new();
        while self.in_flight.front().is_some_and(|(t, _, _)| *t <= now) {
            if let Some((at, _, request)) = self.in_flight.pop_front() {
                self.arrive(request, at, &mut out);
            }
        }
        out
    }

    /// Releases due orders, updates the market, and fills resting orders it crosses.
    pub fn on_market_data(&mut self, event: &MarketEvent) -> Vec<ExecEvent> {
        let ts = event.ts_event();
        let mut out = self.on_time(ts);
        let market = self.markets.entry(event.instrument().clone()).or_default();
        match event {
            MarketEvent::Quote(q) => {
                market.bid = Some(q.bid_price);
                market.ask = Some(q.ask_price);
            }
            MarketEvent::Trade(t) => market.last_trade = Some(t.price),
        }
        if self.resting.is_empty() {
            return out;
        }
        let crossed: Vec<u64> = self
            .resting
            .iter()
            .filter_map(|(vid, id)| {
                let order = self.orders.get(id)?;
                if &order.request.instrument != event.instrument() {
                    return None;
                }
                let limit = order.request.limit_price()?;
                let hit = match (event, order.request.side) {
                    (MarketEvent::Quote(q), Side::Buy) => q.ask_price <= limit,
                    (MarketEvent::Quote(q), Side::Sell) => q.bid_price >= limit,
                    (MarketEvent::Trade(t), Side::Buy) => t.price < limit,
                    (MarketEvent::Trade(t), Side::Sell) => t.price > limit,
                };
                hit.then_some(*vid)
            })
            .collect();
        for vid in crossed {
            if let Some(id) = self.resting.remove(&vid) {
                let limit = self.orders.get(&id).and_then(|o| o.request.limit_price());
                if let Some(limit) = limit {
                    self.fill(&id, limit, Liquidity::Maker, ts, &mut out);
                }
            }
        }
        out
    }

    /// Cancels an open or in-flight order.
    pub fn cancel(&mut self, id: &ClientOrderId, now: Timestamp) -> Vec<ExecEvent> {
        if let Some(pos) = self
            .in_flight
            .iter()
            .position(|(_, _, r)| &r.client_order_id == id)
        {
            self.in_flight.remove(pos);
            return vec![ExecEvent::Canceled {
                client_order_id: id.clone(),
                ts_event: now,
            }];
        }
        match self.orders.get_mut(id) {
            Some(order) if order.is_open() => {
                if let Some(vid) = order.venue_order_id {
                    self.resting.remove(&vid);
                }
                // is_open() ⇒ the transition is legal
                let _ = order.cancel(now);
                vec![ExecEvent::Canceled {
                    client_order_id: id.clone(),
                    ts_event: now,
                }]
            }
            _ => vec![ExecEvent::CancelRejected {
                client_order_id: id.clone(),
                reason: RejectReason::UnknownOrder,
                ts_event: now,
            }],
        }
    }

    fn arrive(&mut self, request: OrderRequest, ts: Timestamp, out: &mut Vec<ExecEvent>) {
        let reject = |request: &OrderRequest, reason: RejectReason, message: String| {
            ExecEvent::Rejected(OrderRejected {
                client_order_id: request.client_order_id.clone(),
                strategy: request.strategy.clone(),
                instrument: request.instrument.clone(),
                reason,
                message,
                ts_event: ts,
            })
        };
        let Some(instrument) = self.listing(&request.instrument).cloned() else {
            out.push(reject(
                &request,
                RejectReason::UnknownInstrument,
                format!("{} is not listed", request.instrument),
            ));
            return;
        };
        if !request.quantity.is_positive() || !request.quantity.is_multiple_of(instrument.lot_size)
        {
            out.push(reject(
                &request,
                RejectReason::InvalidQuantity,
                format!(
                    "quantity {} (lot size {})",
                    request.quantity, instrument.lot_size
                ),
            ));
            return;
        }
        if let Some(price) = request.limit_price()
            && (!price.is_positive() || !price.is_multiple_of(instrument.tick_size))
        {
            out.push(reject(
                &request,
                RejectReason::InvalidPrice,
                format!("price {price} (tick size {})", instrument.tick_size),
            ));
            return;
        }
        if self
            .orders
            .get(&request.client_order_id)
            .is_some_and(Order::is_open)
        {
            out.push(reject(
                &request,
                RejectReason::DuplicateClientOrderId,
                "already open".into(),
            ));
            return;
        }
        let market = self
            .markets
            .get(&request.instrument)
            .copied()
            .unwrap_or_default();
        let touch = match request.side {
            Side::Buy => market.ask,
            Side::Sell => market.bid,
        };
        let taker_price = match request.order_type {
            OrderType::Market => match touch.or(market.last_trade) {
                Some(p) => Some(p),
                None => {
                    out.push(reject(
                        &request,
                        RejectReason::NoMarket,
                        "no quote or trade yet".into(),
                    ));
                    return;
                }
            },
            OrderType::Limit { price } => touch.filter(|t| match request.side {
                Side::Buy => *t <= price,
                Side::Sell => *t >= price,
            }),
        };
        let vid = self.next_venue_id;
        self.next_venue_id += 1;
        let id = request.client_order_id.clone();
        let tif = request.time_in_force;
        let mut order = Order::new(request, ts);
        // A new order can always be accepted.
        let _ = order.accept(vid, ts);
        self.orders.insert(id.clone(), order);
        out.push(ExecEvent::Accepted {
            client_order_id: id.clone(),
            venue_order_id: vid,
            ts_event: ts,
        });
        match (taker_price, tif) {
            (Some(price), _) => self.fill(&id, price, Liquidity::Taker, ts, out),
            (None, TimeInForce::Ioc) => {
                if let Some(o) = self.orders.get_mut(&id) {
                    let _ = o.cancel(ts);
                }
                out.push(ExecEvent::Canceled {
                    client_order_id: id,
                    ts_event: ts,
                });
            }
            (None, TimeInForce::Gtc) => {
                self.resting.insert(vid, id);
            }
        }
    }

    /// Fills the whole leaves quantity of order `id` at `price`.
    fn fill(
        &mut self,
        id: &ClientOrderId,
        price: Price,
        liquidity: Liquidity,
        ts: Timestamp,
        out: &mut Vec<ExecEvent>,
    ) {
        let bps = match liquidity {
            Liquidity::Maker => self.config.maker_fee_bps,
            Liquidity::Taker => self.config.taker_fee_bps,
        };
        let Some(order) = self.orders.get_mut(id) else {
            return;
        };
        let qty = order.leaves_quantity();
        let fee = fee(price, qty, bps);
        let applied = fee.map_err(|_| ()).and_then(|fee| {
            order
                .apply_fill(qty, price, ts)
                .map(|_| fee)
                .map_err(|_| ())
        });
        match applied {
            Ok(fee) => out.push(ExecEvent::Filled(Fill {
                client_order_id: id.clone(),
                venue_order_id: order.venue_order_id.unwrap_or_default(),
                strategy: order.request.strategy.clone(),
                instrument: order.request.instrument.clone(),
                side: order.request.side,
                price,
                quantity: qty,
                fee,
                liquidity,
                last: true,
                ts_event: ts,
            })),
            Err(()) => {
                tracing::warn!(order = %id, %price, %qty, "paper exchange: fill overflows; cancelling");
                let _ = order.cancel(ts);
                out.push(ExecEvent::Canceled {
                    client_order_id: id.clone(),
                    ts_event: ts,
                });
            }
        }
    }
}

fn fee(price: Price, qty: Quantity, bps: i64) -> Result<Money, ArithmeticError> {
    price.checked_mul_qty(qty)?.checked_mul_ratio(bps, 10_000)
}
