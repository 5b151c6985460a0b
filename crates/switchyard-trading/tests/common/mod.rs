//! Shared test helpers.
#![allow(dead_code)]

use switchyard::Timestamp;
use switchyard_trading::model::{
    InstrumentId, MarketEvent, OrderRequest, OrderType, Quote, Side, TimeInForce, Trade,
};
use switchyard_trading::num::{Money, Price, Quantity};
use switchyard_trading::risk::RiskLimits;

pub const TRADES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/tardis_binance-futures_BTCUSDT_trades.csv"
);
pub const QUOTES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/tardis_binance-futures_BTCUSDT_quotes.csv"
);

pub fn p(s: &str) -> Price {
    s.parse().unwrap()
}
pub fn q(s: &str) -> Quantity {
    s.parse().unwrap()
}
pub fn m(s: &str) -> Money {
    s.parse().unwrap()
}

pub fn btc() -> InstrumentId {
    InstrumentId::new("binance-futures", "BTCUSDT")
}

/// Limits that nothing in a normal test reaches.
pub fn loose_limits() -> RiskLimits {
    RiskLimits {
        max_order_quantity: q("1000"),
        max_notional: m("1000000000"),
        max_position: q("10000"),
        max_open_orders: 1000,
        orders_per_second: 1_000_000,
        burst: 1_000_000,
        price_band_bps: 10_000,
        daily_loss_limit: m("1000000000"),
    }
}

pub fn req(id: &str, side: Side, qty: &str, order_type: OrderType) -> OrderRequest {
    OrderRequest {
        client_order_id: id.into(),
        strategy: "test".into(),
        instrument: btc(),
        side,
        quantity: q(qty),
        order_type,
        time_in_force: TimeInForce::Gtc,
    }
}

pub fn market(id: &str, side: Side, qty: &str) -> OrderRequest {
    req(id, side, qty, OrderType::Market)
}

pub fn limit(id: &str, side: Side, qty: &str, price: &str) -> OrderRequest {
    req(id, side, qty, OrderType::Limit { price: p(price) })
}

pub fn trade(ts_us: u64, price: &str) -> MarketEvent {
    MarketEvent::Trade(Trade {
        instrument: btc(),
        ts_event: Timestamp::from_micros(ts_us),
        ts_recv: Timestamp::from_micros(ts_us),
        price: p(price),
        size: q("1"),
        aggressor: None,
        trade_id: ts_us.to_string(),
    })
}

pub fn quote(ts_us: u64, bid: &str, ask: &str) -> MarketEvent {
    MarketEvent::Quote(Quote {
        instrument: btc(),
        ts_event: Timestamp::from_micros(ts_us),
        ts_recv: Timestamp::from_micros(ts_us),
        bid_price: p(bid),
        bid_size: Some(q("1")),
        ask_price: p(ask),
        ask_size: Some(q("1")),
    })
}
