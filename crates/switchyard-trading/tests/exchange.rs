//! The paper exchange: fills, resting orders, latency, cancels, rejections, fees.

mod common;

use std::time::{Duration, Instant};

use common::*;
use switchyard::Timestamp;
use switchyard::kill_switch::GateState;
use switchyard_trading::exchange::{ExchangeConfig, ExecEvent, PaperExchange};
use switchyard_trading::model::{
    Instrument, InstrumentId, Liquidity, OrderRequest, OrderStatus, RejectReason, Side, TimeInForce,
};
use switchyard_trading::risk::{RiskApproved, RiskGuard};

fn approve(req: OrderRequest) -> RiskApproved {
    let mut g = RiskGuard::new(loose_limits()).unwrap();
    g.on_market_data(&trade(0, "100"));
    g.on_market_data(&MarketEventFor::other());
    g.check(req, GateState::Open, Instant::now()).unwrap()
}

/// Reference prices for the non-listed instrument used in one test.
struct MarketEventFor;
impl MarketEventFor {
    fn other() -> switchyard_trading::model::MarketEvent {
        let mut ev = trade(0, "100");
        if let switchyard_trading::model::MarketEvent::Trade(t) = &mut ev {
            t.instrument = InstrumentId::new("binance-futures", "ETHUSDT");
        }
        ev
    }
}

fn exchange(config: ExchangeConfig) -> PaperExchange {
    let mut x = PaperExchange::new(config);
    x.add_instrument(Instrument::new(btc(), p("0.01"), q("0.001")));
    x
}

fn ts(us: u64) -> Timestamp {
    Timestamp::from_micros(us)
}

fn fills(events: &[ExecEvent]) -> Vec<(String, Side, String, String, Liquidity)> {
    events
        .iter()
        .filter_map(|e| match e {
            ExecEvent::Filled(f) => Some((
                f.client_order_id.to_string(),
                f.side,
                f.quantity.to_string(),
                f.price.to_string(),
                f.liquidity,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn market_orders_fill_at_the_touch_or_last_trade() {
    let mut x = exchange(ExchangeConfig::default());
    // no market at all
    let ev = x.submit(approve(market("m0", Side::Buy, "1")), ts(1));
    assert!(matches!(&ev[..], [ExecEvent::Rejected(r)] if r.reason == RejectReason::NoMarket));
    // last trade only
    x.on_market_data(&trade(2, "100.5"));
    let ev = x.submit(approve(market("m1", Side::Buy, "1")), ts(3));
    assert!(matches!(
        ev[0],
        ExecEvent::Accepted {
            venue_order_id: 1,
            ..
        }
    ));
    assert_eq!(
        fills(&ev),
        vec![(
            "m1".into(),
            Side::Buy,
            "1".into(),
            "100.5".into(),
            Liquidity::Taker
        )]
    );
    // quote: buy at ask, sell at bid
    x.on_market_data(&quote(4, "100", "100.1"));
    let ev = x.submit(approve(market("m2", Side::Buy, "0.5")), ts(5));
    assert_eq!(fills(&ev)[0].3, "100.1");
    let ev = x.submit(approve(market("m3", Side::Sell, "2")), ts(5));
    assert_eq!(fills(&ev)[0].3, "100");
    let o = x.order(&"m3".into()).unwrap();
    assert_eq!(
        (o.status(), o.filled_quantity()),
        (OrderStatus::Filled, q("2"))
    );
    match ev.last() {
        Some(ExecEvent::Filled(f)) => assert!(f.last),
        other => panic!("{other:?}"),
    }
}

#[test]
fn limit_orders_take_when_marketable_rest_otherwise() {
    let mut x = exchange(ExchangeConfig::default());
    x.on_market_data(&quote(1, "100", "101"));
    // marketable: fills at the ask, not the limit
    let ev = x.submit(approve(limit("l1", Side::Buy, "1", "102")), ts(2));
    assert_eq!(
        fills(&ev),
        vec![(
            "l1".into(),
            Side::Buy,
            "1".into(),
            "101".into(),
            Liquidity::Taker
        )]
    );
    // resting buy at 100.5 and sell at 102
    let ev = x.submit(approve(limit("b", Side::Buy, "1", "100.5")), ts(3));
    assert_eq!(ev.len(), 1);
    x.submit(approve(limit("s", Side::Sell, "2", "102")), ts(3));
    assert_eq!(x.resting_orders(), 2);
    // a trade at the limit does not fill; through it does, at the limit price
    assert!(x.on_market_data(&trade(4, "100.5")).is_empty());
    let ev = x.on_market_data(&trade(5, "100.4"));
    assert_eq!(
        fills(&ev),
        vec![(
            "b".into(),
            Side::Buy,
            "1".into(),
            "100.5".into(),
            Liquidity::Maker
        )]
    );
    // a quote whose bid reaches the sell limit fills it
    assert!(x.on_market_data(&quote(6, "101.99", "102.5")).is_empty());
    let ev = x.on_market_data(&quote(7, "102", "102.5"));
    assert_eq!(
        fills(&ev),
        vec![(
            "s".into(),
            Side::Sell,
            "2".into(),
            "102".into(),
            Liquidity::Maker
        )]
    );
    assert_eq!(x.resting_orders(), 0);
}

#[test]
fn ioc_limit_cancels_when_not_marketable() {
    let mut x = exchange(ExchangeConfig::default());
    x.on_market_data(&quote(1, "100", "101"));
    let mut r = limit("i", Side::Buy, "1", "100.5");
    r.time_in_force = TimeInForce::Ioc;
    let ev = x.submit(approve(r), ts(2));
    assert!(matches!(
        &ev[..],
        [ExecEvent::Accepted { .. }, ExecEvent::Canceled { .. }]
    ));
    assert_eq!(
        x.order(&"i".into()).unwrap().status(),
        OrderStatus::Canceled
    );
}

#[test]
fn arrival_checks_reject() {
    let mut x = exchange(ExchangeConfig::default());
    x.on_market_data(&quote(1, "100", "101"));
    let reject = |x: &mut PaperExchange, r: OrderRequest| match &x.submit(approve(r), ts(2))[..] {
        [ExecEvent::Rejected(r)] => r.reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        reject(&mut x, limit("a", Side::Buy, "1", "100.005")),
        RejectReason::InvalidPrice
    );
    assert_eq!(
        reject(&mut x, limit("b", Side::Buy, "0.0005", "100")),
        RejectReason::InvalidQuantity
    );
    let mut other = market("c", Side::Buy, "1");
    other.instrument = InstrumentId::new("binance-futures", "ETHUSDT");
    assert_eq!(reject(&mut x, other), RejectReason::UnknownInstrument);
    x.submit(approve(limit("d", Side::Buy, "1", "99")), ts(2));
    assert_eq!(
        reject(&mut x, limit("d", Side::Buy, "1", "98")),
        RejectReason::DuplicateClientOrderId
    );
    assert_eq!(
        x.order(&"d".into()).unwrap().request.limit_price(),
        Some(p("99"))
    );
}

#[test]
fn latency_delays_arrival_until_time_passes() {
    let mut x = exchange(ExchangeConfig {
        latency: Duration::from_millis(5),
        ..Default::default()
    });
    x.on_market_data(&quote(1_000, "100", "101"));
    assert!(
        x.submit(approve(market("a", Side::Buy, "1")), ts(1_000))
            .is_empty()
    );
    assert!(
        x.submit(approve(market("b", Side::Sell, "1")), ts(2_000))
            .is_empty()
    );
    assert_eq!(x.in_flight_orders(), 2);
    assert!(x.on_time(ts(5_999)).is_empty());
    // the market moved before "a" arrived: it fills at the new ask
    assert!(x.on_market_data(&quote(5_500, "102", "103")).is_empty());
    let ev = x.on_time(ts(6_000));
    assert_eq!(
        fills(&ev),
        vec![(
            "a".into(),
            Side::Buy,
            "1".into(),
            "103".into(),
            Liquidity::Taker
        )]
    );
    match &ev[1] {
        ExecEvent::Filled(f) => assert_eq!(f.ts_event, ts(6_000)),
        other => panic!("{other:?}"),
    }
    // an order due at a market event's time arrives before that event
    let ev = x.on_market_data(&quote(7_000, "90", "91"));
    assert_eq!(
        fills(&ev),
        vec![(
            "b".into(),
            Side::Sell,
            "1".into(),
            "102".into(),
            Liquidity::Taker
        )]
    );
    assert_eq!(x.in_flight_orders(), 0);
}

#[test]
fn cancel_resting_in_flight_and_unknown() {
    let mut x = exchange(ExchangeConfig {
        latency: Duration::from_millis(1),
        ..Default::default()
    });
    x.on_market_data(&quote(0, "100", "101"));
    x.submit(approve(limit("r", Side::Buy, "1", "99")), ts(0));
    x.submit(approve(limit("f", Side::Buy, "1", "99")), ts(500));
    x.on_time(ts(1_000));
    assert_eq!((x.resting_orders(), x.in_flight_orders()), (1, 1));
    assert!(matches!(
        &x.cancel(&"r".into(), ts(1_100))[..],
        [ExecEvent::Canceled { .. }]
    ));
    assert!(matches!(
        &x.cancel(&"f".into(), ts(1_100))[..],
        [ExecEvent::Canceled { .. }]
    ));
    assert_eq!((x.resting_orders(), x.in_flight_orders()), (0, 0));
    assert!(x.on_market_data(&quote(2_000, "90", "91")).is_empty());
    for id in ["r", "nope"] {
        match &x.cancel(&id.into(), ts(3_000))[..] {
            [ExecEvent::CancelRejected { reason, .. }] => {
                assert_eq!(*reason, RejectReason::UnknownOrder)
            }
            other => panic!("{other:?}"),
        }
    }
    x.purge_closed();
    assert!(x.order(&"r".into()).is_none());
}

#[test]
fn fees_by_liquidity() {
    let mut x = exchange(ExchangeConfig {
        taker_fee_bps: 4,
        maker_fee_bps: -1,
        ..Default::default()
    });
    x.on_market_data(&quote(0, "100", "100.5"));
    let ev = x.submit(approve(market("t", Side::Buy, "2")), ts(1));
    match &ev[1] {
        ExecEvent::Filled(f) => assert_eq!(f.fee, m("0.0804")), // 201 × 4 bps
        other => panic!("{other:?}"),
    }
    x.submit(approve(limit("mk", Side::Buy, "1", "99")), ts(1));
    let ev = x.on_market_data(&trade(2, "98"));
    match &ev[0] {
        ExecEvent::Filled(f) => assert_eq!(f.fee, m("-0.0099")),
        other => panic!("{other:?}"),
    }
    let json = serde_json::to_value(&ev[0]).unwrap();
    assert_eq!(json["type"], "filled");
    assert_eq!(json["fee"], "-0.0099");
}

#[test]
fn closed_orders_are_purged_so_memory_stays_bounded() {
    use switchyard_trading::venue::ExecutionVenue;
    let mut x = exchange(ExchangeConfig::default());
    let mut out = Vec::new();
    ExecutionVenue::on_market_data(&mut x, &trade(1, "100"), &mut out);
    // One order resting for good, then 20,000 market orders that fill at once.
    let resting = approve(limit("rest", Side::Buy, "1", "50"));
    ExecutionVenue::submit(&mut x, resting, ts(2), &mut out);
    let mut peak = 0;
    for n in 0..20_000u64 {
        let order = approve(market(&format!("m{n}"), Side::Buy, "0.001"));
        ExecutionVenue::submit(&mut x, order, ts(3 + n), &mut out);
        ExecutionVenue::poll(&mut x, ts(3 + n), &mut out);
        peak = peak.max(x.tracked_orders());
        out.clear();
    }
    // Twice what the last purge kept (the resting order), plus 1,024, plus the order
    // that crossed the line: never the 20,001 orders seen.
    let kept = 1;
    assert!(peak <= 2 * kept + 1024 + 1, "peak {peak}");
    // The open order survives every purge.
    assert!(x.order(&"rest".into()).is_some_and(|o| o.is_open()));
    assert_eq!(x.resting_orders(), 1);
}
