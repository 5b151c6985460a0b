//! Shared test helpers.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::Timestamp;
use switchyard::bus::sync_handler;
use switchyard::{Bus, Envelope, Subscription};
use switchyard_trading::exchange::ExecEvent;
use switchyard_trading::model::*;
use switchyard_trading::num::{Money, Price, Quantity};

/// Poll `cond` until it holds or `timeout` passes; false on timeout.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    let mut tick = Duration::from_millis(1);
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return cond();
        }
        tokio::time::sleep(tick).await;
        tick = (tick * 2).min(Duration::from_millis(20));
    }
}

/// Collected (topic, payload) pairs.
pub type Seen<T> = Arc<Mutex<Vec<(String, T)>>>;

/// Subscribe on `bus` to `pattern`, collecting what arrives.
pub fn collect<T: Clone + Send + Sync + 'static>(
    bus: &Bus,
    pattern: &str,
) -> (Seen<T>, Subscription) {
    let seen: Seen<T> = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let sub = bus
        .subscription::<T>(pattern)
        .unwrap()
        .capacity(1 << 16)
        .subscribe(sync_handler(move |ev: &Envelope<T>| {
            s.lock()
                .unwrap()
                .push((ev.topic.as_str().to_owned(), ev.payload().clone()));
            Ok(())
        }))
        .unwrap();
    (seen, sub)
}

pub fn len<T>(s: &Seen<T>) -> usize {
    s.lock().unwrap().len()
}

pub fn px(m: i64) -> Price {
    Price::from_scaled(m, 2).unwrap()
}

pub fn qty(m: i64) -> Quantity {
    Quantity::from_scaled(m, 3).unwrap()
}

pub fn inst() -> InstrumentId {
    InstrumentId::new("BINANCE", "BTCUSDT")
}

pub fn trade(n: u64) -> MarketEvent {
    MarketEvent::Trade(Trade {
        instrument: inst(),
        ts_event: Timestamp::from_nanos(1_700_000_000_000_000_000 + n),
        ts_recv: Timestamp::from_nanos(1_700_000_000_000_000_100 + n),
        price: px(6_412_345 + n as i64),
        size: qty(10),
        aggressor: Some(Side::Buy),
        trade_id: format!("t{n}"),
    })
}

pub fn quote(n: u64) -> MarketEvent {
    MarketEvent::Quote(Quote {
        instrument: inst(),
        ts_event: Timestamp::from_nanos(1_700_000_000_000_000_000 + n),
        ts_recv: Timestamp::from_nanos(1_700_000_000_000_000_050 + n),
        bid_price: px(6_412_300),
        bid_size: Some(qty(1_500)),
        ask_price: px(6_412_400),
        ask_size: None,
    })
}

pub fn order_request() -> OrderRequest {
    OrderRequest {
        client_order_id: ClientOrderId::new("c-1"),
        strategy: StrategyId::new("ma-cross"),
        instrument: inst(),
        side: Side::Sell,
        quantity: qty(250),
        order_type: OrderType::Limit {
            price: px(6_500_000),
        },
        time_in_force: TimeInForce::Ioc,
    }
}

pub fn rejected() -> OrderRejected {
    OrderRejected {
        client_order_id: ClientOrderId::new("c-2"),
        strategy: StrategyId::new("ma-cross"),
        instrument: inst(),
        reason: RejectReason::PriceBand,
        message: "limit 10% away from reference \"quoted\" ✓".into(),
        ts_event: Timestamp::from_nanos(1_700_000_000_000_000_777),
    }
}

pub fn exec_events() -> Vec<ExecEvent> {
    vec![
        ExecEvent::Accepted {
            client_order_id: ClientOrderId::new("c-1"),
            venue_order_id: 7,
            ts_event: Timestamp::from_nanos(1),
        },
        ExecEvent::Rejected(rejected()),
        ExecEvent::Filled(Fill {
            client_order_id: ClientOrderId::new("c-1"),
            venue_order_id: 7,
            strategy: StrategyId::new("ma-cross"),
            instrument: inst(),
            side: Side::Sell,
            price: px(6_500_000),
            quantity: qty(250),
            fee: Money::from_scaled(-12, 4).unwrap(),
            liquidity: Liquidity::Maker,
            last: true,
            ts_event: Timestamp::from_nanos(2),
        }),
        ExecEvent::Canceled {
            client_order_id: ClientOrderId::new("c-3"),
            ts_event: Timestamp::from_nanos(3),
        },
        ExecEvent::CancelRejected {
            client_order_id: ClientOrderId::new("c-4"),
            reason: RejectReason::UnknownOrder,
            ts_event: Timestamp::from_nanos(4),
        },
    ]
}
