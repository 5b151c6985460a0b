//! The pre-trade risk guard: every check, the throttle, and the kill-switch gate.

mod common;

use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use switchyard::Timestamp;
use switchyard::kill_switch::GateState;
use switchyard_trading::model::{Fill, Liquidity, RejectReason, Side};
use switchyard_trading::num::{Price, Quantity};
use switchyard_trading::risk::{
    RiskGuard, RiskLimits, RiskRejection, RiskValue, TokenBucket, within_band,
};

fn guard(limits: RiskLimits) -> RiskGuard {
    let mut g = RiskGuard::new(limits).unwrap();
    g.on_market_data(&trade(1, "100"));
    g
}

fn fill(id: &str, side: Side, qty: &str, price: &str) -> Fill {
    Fill {
        client_order_id: id.into(),
        venue_order_id: 1,
        strategy: "test".into(),
        instrument: btc(),
        side,
        price: p(price),
        quantity: q(qty),
        fee: m("0"),
        liquidity: Liquidity::Taker,
        last: true,
        ts_event: Timestamp::ZERO,
    }
}

fn reason(r: Result<impl std::fmt::Debug, RiskRejection>) -> RejectReason {
    r.unwrap_err().reason
}

#[test]
fn limits_config_is_strict_and_validated() {
    let toml_like = r#"{"max_order_quantity":"1","max_notional":"1000","max_position":"5","max_open_orders":3,
        "orders_per_second":10,"burst":5,"price_band_bps":100,"daily_loss_limit":"50"}"#;
    let l: RiskLimits = serde_json::from_str(toml_like).unwrap();
    l.validate().unwrap();
    let unknown = toml_like.replace("\"burst\"", "\"brust\"");
    let err = serde_json::from_str::<RiskLimits>(&unknown)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `brust`"), "{err}");
    let mut bad = l.clone();
    bad.max_notional = m("0");
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "risk limits: max_notional: must be positive"
    );
    let mut bad = l.clone();
    bad.price_band_bps = 20_000;
    assert_eq!(bad.validate().unwrap_err().field, "price_band_bps");
    let mut bad = l;
    bad.burst = 0;
    assert_eq!(RiskGuard::new(bad).unwrap_err().field, "burst");
}

#[test]
fn each_check_names_its_reason() {
    let now = Instant::now();
    let mut l = loose_limits();
    l.max_order_quantity = q("2");
    l.max_notional = m("300");
    l.max_position = q("4");
    l.max_open_orders = 2;
    l.price_band_bps = 100; // 1%
    let mut g = guard(l);
    // quantity
    let r = g
        .check(market("a", Side::Buy, "3"), GateState::Open, now)
        .unwrap_err();
    assert_eq!(
        (r.reason, &r.limit, &r.actual),
        (
            RejectReason::MaxOrderQuantity,
            &RiskValue::Quantity(q("2")),
            &RiskValue::Quantity(q("3"))
        )
    );
    assert_eq!(
        r.to_string(),
        "order a refused: max_order_quantity (actual 3, limit 2)"
    );
    assert!(!r.trip_kill_switch);
    assert_eq!(
        reason(g.check(market("a", Side::Buy, "0"), GateState::Open, now)),
        RejectReason::InvalidQuantity
    );
    assert_eq!(
        reason(g.check(limit("a", Side::Buy, "1", "-1"), GateState::Open, now)),
        RejectReason::InvalidPrice
    );
    // price band: ref 100, band 1% → 99..=101
    assert!(
        g.check(limit("b1", Side::Buy, "1", "101"), GateState::Open, now)
            .is_ok()
    );
    let r = g
        .check(limit("b2", Side::Buy, "1", "101.01"), GateState::Open, now)
        .unwrap_err();
    assert_eq!(
        (r.reason, r.actual),
        (RejectReason::PriceBand, RiskValue::Bps(101))
    );
    g.on_order_closed(&"b1".into());
    // notional: 2 × 151 > 300 (via a moved reference price)
    g.on_market_data(&quote(2, "150", "152"));
    let r = g
        .check(market("c", Side::Buy, "2"), GateState::Open, now)
        .unwrap_err();
    assert_eq!(
        (r.reason, r.actual),
        (RejectReason::MaxNotional, RiskValue::Money(m("302")))
    );
    g.on_market_data(&trade(3, "100"));
    // position limit counts open orders on the same side
    let a1 = g
        .check(limit("p1", Side::Buy, "2", "100"), GateState::Open, now)
        .unwrap();
    g.on_fill(&fill("p1", Side::Buy, "2", "100")).unwrap();
    assert_eq!(g.open_orders(), 0);
    drop(a1);
    g.check(limit("p2", Side::Buy, "2", "100"), GateState::Open, now)
        .unwrap();
    let r = g
        .check(limit("p3", Side::Buy, "0.5", "100"), GateState::Open, now)
        .unwrap_err();
    assert_eq!(
        (r.reason, r.actual),
        (RejectReason::PositionLimit, RiskValue::Quantity(q("4.5")))
    );
    // selling is allowed down to −4: position 2, sells 2 + 2 → −2 worst case... fine
    // duplicate id of an open order
    assert_eq!(
        reason(g.check(limit("p2", Side::Sell, "1", "100"), GateState::Open, now)),
        RejectReason::DuplicateClientOrderId
    );
    // open orders: p2 open, one more allowed, then refused
    g.check(limit("o1", Side::Sell, "1", "100"), GateState::Open, now)
        .unwrap();
    let r = g
        .check(limit("o2", Side::Sell, "1", "100"), GateState::Open, now)
        .unwrap_err();
    assert_eq!(
        (r.reason, r.actual),
        (RejectReason::MaxOpenOrders, RiskValue::Count(3))
    );
}

#[test]
fn no_reference_price_refuses() {
    let mut g = RiskGuard::new(loose_limits()).unwrap();
    assert_eq!(
        reason(g.check(market("a", Side::Buy, "1"), GateState::Open, Instant::now())),
        RejectReason::NoReferencePrice
    );
}

#[test]
fn kill_switch_gate() {
    let now = Instant::now();
    let mut g = guard(loose_limits());
    g.check(market("x", Side::Buy, "3"), GateState::Open, now)
        .unwrap();
    g.on_fill(&fill("x", Side::Buy, "3", "100")).unwrap();
    assert_eq!(g.portfolio().quantity(&btc()), q("3"));
    for gate in [GateState::ReduceOnly, GateState::Flatten] {
        assert_eq!(
            reason(g.check(market("b", Side::Buy, "1"), gate, now)),
            RejectReason::KillSwitchReduceOnly
        );
        // a flip is refused
        assert_eq!(
            reason(g.check(market("f", Side::Sell, "4"), gate, now)),
            RejectReason::KillSwitchReduceOnly
        );
    }
    // reducing passes, and counts against later reducing orders
    g.check(market("r1", Side::Sell, "2"), GateState::ReduceOnly, now)
        .unwrap();
    assert_eq!(
        reason(g.check(market("r2", Side::Sell, "2"), GateState::Flatten, now)),
        RejectReason::KillSwitchReduceOnly
    );
    g.check(market("r3", Side::Sell, "1"), GateState::Flatten, now)
        .unwrap();
    let r = g
        .check(market("h", Side::Sell, "0.1"), GateState::Halted, now)
        .unwrap_err();
    assert_eq!(
        (r.reason, r.limit),
        (
            RejectReason::KillSwitchHalted,
            RiskValue::Gate(GateState::Halted)
        )
    );
    // flat: nothing reduces
    let mut flat = guard(loose_limits());
    assert_eq!(
        reason(flat.check(market("s", Side::Sell, "1"), GateState::ReduceOnly, now)),
        RejectReason::KillSwitchReduceOnly
    );
}

#[test]
fn daily_loss_refuses_adding_risk_and_asks_to_trip() {
    let now = Instant::now();
    let mut l = loose_limits();
    l.daily_loss_limit = m("50");
    let mut g = guard(l);
    g.check(market("a", Side::Buy, "10"), GateState::Open, now)
        .unwrap();
    g.on_fill(&fill("a", Side::Buy, "10", "100")).unwrap();
    g.on_market_data(&trade(2, "95")); // −50: at the limit, not beyond
    assert!(!g.loss_limit_breached());
    g.check(market("b", Side::Buy, "1"), GateState::Open, now)
        .unwrap();
    g.on_order_closed(&"b".into());
    g.on_market_data(&trade(3, "94.99")); // −50.1
    assert!(g.loss_limit_breached());
    let r = g
        .check(market("c", Side::Buy, "1"), GateState::Open, now)
        .unwrap_err();
    assert_eq!(r.reason, RejectReason::DailyLossLimit);
    assert!(r.trip_kill_switch);
    assert_eq!(
        (&r.limit, &r.actual),
        (&RiskValue::Money(m("-50")), &RiskValue::Money(m("-50.1")))
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["reason"], "daily_loss_limit");
    assert_eq!(json["trip_kill_switch"], true);
    // reducing still passes (to flatten)
    g.check(market("d", Side::Sell, "10"), GateState::Open, now)
        .unwrap();
    g.on_fill(&fill("d", Side::Sell, "10", "94.99")).unwrap();
    // a new day starts from the current P&L
    g.reset_day().unwrap();
    assert!(!g.loss_limit_breached());
    g.check(market("e", Side::Buy, "1"), GateState::Open, now)
        .unwrap();
}

#[test]
fn throttle_refills_from_explicit_time_and_only_charges_passing_orders() {
    let t0 = Instant::now();
    let mut l = loose_limits();
    l.orders_per_second = 2;
    l.burst = 3;
    l.max_order_quantity = q("5");
    let mut g = guard(l);
    let mut n = 0;
    let mut next = |g: &mut RiskGuard, qty: &str, t: Instant| {
        n += 1;
        let r = g.check(market(&format!("o{n}"), Side::Buy, qty), GateState::Open, t);
        if let Ok(a) = &r {
            g.on_order_closed(&a.request().client_order_id);
        }
        r.map(|_| ()).map_err(|e| e.reason)
    };
    for _ in 0..3 {
        next(&mut g, "1", t0).unwrap();
    }
    assert_eq!(next(&mut g, "1", t0), Err(RejectReason::RateLimited));
    // a refused order does not take a token
    assert_eq!(
        next(&mut g, "6", t0 + Duration::from_millis(500)),
        Err(RejectReason::MaxOrderQuantity)
    );
    next(&mut g, "1", t0 + Duration::from_millis(500)).unwrap();
    assert_eq!(
        next(&mut g, "1", t0 + Duration::from_millis(999)),
        Err(RejectReason::RateLimited)
    );
    next(&mut g, "1", t0 + Duration::from_millis(1000)).unwrap();
    // time going backwards refills nothing
    assert_eq!(next(&mut g, "1", t0), Err(RejectReason::RateLimited));
}

#[test]
fn rejection_converts_to_an_event() {
    let mut g = guard(loose_limits());
    let r = g
        .check(market("z", Side::Buy, "0"), GateState::Open, Instant::now())
        .unwrap_err();
    let ev = r.to_order_rejected(Timestamp::from_nanos(7));
    assert_eq!(ev.reason, RejectReason::InvalidQuantity);
    assert_eq!(ev.client_order_id.as_str(), "z");
    assert_eq!(r.into_request().quantity, Quantity::ZERO);
}

proptest! {
    #[test]
    fn order_quantity_limit(max in 1i64..1_000_000, qty in 1i64..2_000_000) {
        let mut l = loose_limits();
        l.max_order_quantity = Quantity::from_raw(max * 1000);
        let mut g = guard(l);
        let mut r = market("a", Side::Buy, "1");
        r.quantity = Quantity::from_raw(qty * 1000);
        let res = g.check(r, GateState::Open, Instant::now());
        if qty <= max { prop_assert!(res.is_ok()); } else { prop_assert_eq!(reason(res), RejectReason::MaxOrderQuantity); }
    }

    #[test]
    fn notional_limit(price_c in 1i64..10_000_000, qty_m in 1i64..100_000, max_c in 1i64..1_000_000_000) {
        let mut l = loose_limits();
        l.max_notional = m("1").checked_mul_ratio(max_c, 100).unwrap();
        l.max_order_quantity = q("1000");
        let mut g = RiskGuard::new(l).unwrap();
        let price = Price::from_scaled(price_c, 2).unwrap();
        g.on_market_data(&trade(1, &price.to_string()));
        let mut r = market("a", Side::Sell, "1");
        r.quantity = Quantity::from_scaled(qty_m, 3).unwrap();
        let res = g.check(r, GateState::Open, Instant::now());
        // exact reference: cents × milli-units vs max in cents × 1000
        if price_c as i128 * qty_m as i128 <= max_c as i128 * 1000 {
            prop_assert!(res.is_ok());
        } else {
            prop_assert_eq!(reason(res), RejectReason::MaxNotional);
        }
    }

    #[test]
    fn price_band(reference in 1i64..1_000_000_000_000, offset in -1_000_000_000i64..1_000_000_000, band in 1u32..10_000) {
        let r = Price::from_raw(reference);
        let px = Price::from_raw(reference + offset);
        let inside = (offset as i128).abs() * 10_000 <= band as i128 * reference as i128;
        prop_assert_eq!(within_band(px, r, band), inside);
    }

    #[test]
    fn position_limit(max in 1i64..100, fills in proptest::collection::vec(-20i64..20, 0..10), qty in 1i64..50, buy in any::<bool>()) {
        let mut l = loose_limits();
        l.max_position = Quantity::from_int(max).unwrap();
        let mut g = guard(l);
        let mut pos = 0i64;
        for (i, f) in fills.iter().enumerate() {
            if *f == 0 { continue; }
            let side = if *f > 0 { Side::Buy } else { Side::Sell };
            g.on_fill(&fill(&format!("f{i}"), side, &f.abs().to_string(), "100")).unwrap();
            pos += f;
        }
        let side = if buy { Side::Buy } else { Side::Sell };
        let res = g.check(market("a", side, &qty.to_string()), GateState::Open, Instant::now());
        let projected = if buy { pos + qty } else { pos - qty };
        // one-sided: buys may not push above +max, sells not below −max
        if (buy && projected <= max) || (!buy && projected >= -max) {
            prop_assert!(res.is_ok(), "{:?}", res.err());
        } else {
            prop_assert_eq!(reason(res), RejectReason::PositionLimit);
        }
    }

    #[test]
    fn token_bucket_never_exceeds_burst_plus_rate(rate in 1u32..50, burst in 1u32..10,
            gaps in proptest::collection::vec(0u64..200_000_000, 1..200)) {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(rate, burst);
        let mut t = 0u64;
        let mut taken = Vec::new(); // nanos of successful takes
        for g in gaps {
            t += g;
            if b.try_take(t0 + Duration::from_nanos(t)) { taken.push(t); }
        }
        for i in 0..taken.len() {
            for j in i..taken.len() {
                let n = (j - i + 1) as u128;
                let allowed = burst as u128 + (rate as u128 * (taken[j] - taken[i]) as u128) / 1_000_000_000;
                prop_assert!(n <= allowed, "{} takes in {} ns", n, taken[j] - taken[i]);
            }
        }
    }

    #[test]
    fn token_bucket_allows_the_sustained_rate(rate in 1u32..100, burst in 1u32..10) {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(rate, burst);
        for _ in 0..burst { prop_assert!(b.try_take(t0)); }
        prop_assert!(!b.try_take(t0));
        // one token per 1/rate seconds
        let step = 1_000_000_000u64.div_ceil(rate as u64);
        for k in 1..=20u64 {
            prop_assert!(b.try_take(t0 + Duration::from_nanos(step * k)));
        }
    }
}

#[test]
fn public_state_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RiskGuard>();
    assert_send_sync::<switchyard_trading::exchange::PaperExchange>();
    assert_send_sync::<switchyard_trading::portfolio::Portfolio>();
    assert_send_sync::<switchyard_trading::feed::ReplaySource>();
    assert_send_sync::<switchyard_trading::feed::MarketSimulator>();
    assert_send_sync::<switchyard_trading::strategy::MovingAverageCrossover>();
    assert_send_sync::<switchyard_trading::strategy::StrategyContext>();
}

#[test]
fn the_bucket_reports_whole_tokens_available() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(4, 3);
    assert_eq!(b.available(t0), 3);
    assert!(b.try_take(t0) && b.try_take(t0));
    assert_eq!(b.available(t0), 1);
    assert!(b.try_take(t0));
    assert_eq!(b.available(t0), 0);
    // 4 per second: one whole token after 250 ms, not before; capped at the burst.
    assert_eq!(b.available(t0 + Duration::from_millis(249)), 0);
    assert_eq!(b.available(t0 + Duration::from_millis(250)), 1);
    assert_eq!(b.available(t0 + Duration::from_millis(600)), 2);
    assert_eq!(b.available(t0 + Duration::from_secs(60)), 3);
}

#[test]
fn the_open_order_count_follows_approvals_fills_and_closes() {
    let now = Instant::now();
    let mut l = loose_limits();
    l.max_open_orders = 2;
    let mut g = guard(l);
    assert_eq!(g.open_orders(), 0);
    g.check(market("a", Side::Buy, "2"), GateState::Open, now)
        .unwrap();
    g.check(market("b", Side::Buy, "1"), GateState::Open, now)
        .unwrap();
    assert_eq!(g.open_orders(), 2);
    assert_eq!(
        reason(g.check(market("c", Side::Buy, "1"), GateState::Open, now)),
        RejectReason::MaxOpenOrders
    );
    // A partial fill keeps the order open; its last fill closes it.
    let mut part = fill("a", Side::Buy, "1", "100");
    part.last = false;
    g.on_fill(&part).unwrap();
    assert_eq!(g.open_orders(), 2, "a partial fill leaves the order open");
    g.on_fill(&part).unwrap();
    assert_eq!(g.open_orders(), 1, "the leaves reached zero");
    // A fill flagged last closes the order even with leaves left.
    let mut last = fill("b", Side::Buy, "0.5", "100");
    last.last = true;
    g.on_fill(&last).unwrap();
    assert_eq!(g.open_orders(), 0);
    g.check(market("d", Side::Buy, "1"), GateState::Open, now)
        .unwrap();
    g.on_order_closed(&"d".into());
    assert_eq!(g.open_orders(), 0);
}

#[test]
fn the_position_limit_counts_open_orders_of_the_same_instrument_and_side_only() {
    let now = Instant::now();
    let mut l = loose_limits();
    l.max_position = q("3");
    let mut g = guard(l);
    let mut eth = market("e", Side::Buy, "3");
    eth.instrument = switchyard_trading::model::InstrumentId::new("binance-futures", "ETHUSDT");
    g.on_market_data(&switchyard_trading::model::MarketEvent::Trade(
        switchyard_trading::model::Trade {
            instrument: eth.instrument.clone(),
            ..match trade(1, "100") {
                switchyard_trading::model::MarketEvent::Trade(t) => t,
                _ => unreachable!(),
            }
        },
    ));
    g.check(eth, GateState::Open, now).unwrap(); // another instrument: does not count
    g.check(market("s", Side::Sell, "3"), GateState::Open, now)
        .unwrap(); // other side
    g.check(market("b", Side::Buy, "3"), GateState::Open, now)
        .unwrap(); // 3 ≤ 3
    assert_eq!(
        reason(g.check(market("b2", Side::Buy, "0.001"), GateState::Open, now)),
        RejectReason::PositionLimit
    );
}

#[test]
fn an_order_of_exactly_the_largest_quantity_passes() {
    let now = Instant::now();
    let mut l = loose_limits();
    l.max_order_quantity = q("5");
    let mut g = guard(l);
    g.check(market("a", Side::Buy, "5"), GateState::Open, now)
        .unwrap();
    assert_eq!(
        reason(g.check(market("b", Side::Buy, "5.001"), GateState::Open, now)),
        RejectReason::MaxOrderQuantity
    );
}

#[test]
fn past_the_loss_limit_only_orders_that_shrink_the_position_pass() {
    let now = Instant::now();
    let mut l = loose_limits();
    l.daily_loss_limit = m("1");
    let mut g = guard(l);
    g.check(market("a", Side::Buy, "2"), GateState::Open, now)
        .unwrap();
    g.on_fill(&fill("a", Side::Buy, "2", "100")).unwrap();
    g.on_market_data(&trade(2, "99")); // −2: breached
    assert!(g.loss_limit_breached());
    // Selling more than the long position would open a short: refused.
    assert_eq!(
        reason(g.check(market("s3", Side::Sell, "3"), GateState::Open, now)),
        RejectReason::DailyLossLimit
    );
    // Buying adds risk: refused.
    assert_eq!(
        reason(g.check(market("b", Side::Buy, "1"), GateState::Open, now)),
        RejectReason::DailyLossLimit
    );
    // Selling within the position shrinks it: passes, and counts against what is left.
    g.check(market("s1", Side::Sell, "1"), GateState::Open, now)
        .unwrap();
    g.check(market("s2", Side::Sell, "1"), GateState::Open, now)
        .unwrap();
    assert_eq!(
        reason(g.check(market("s4", Side::Sell, "0.5"), GateState::Open, now)),
        RejectReason::DailyLossLimit,
        "with 2 already being sold, 0.5 more would open a short"
    );
}

#[test]
fn past_the_loss_limit_a_short_may_only_be_bought_back() {
    let now = Instant::now();
    let mut l = loose_limits();
    l.daily_loss_limit = m("1");
    let mut g = guard(l);
    g.check(market("a", Side::Sell, "2"), GateState::Open, now)
        .unwrap();
    g.on_fill(&fill("a", Side::Sell, "2", "100")).unwrap();
    g.on_market_data(&trade(2, "101")); // −2: breached
    assert!(g.loss_limit_breached());
    assert_eq!(
        reason(g.check(market("b3", Side::Buy, "3"), GateState::Open, now)),
        RejectReason::DailyLossLimit,
        "buying 3 against a short of 2 would open a long"
    );
    g.check(market("b2", Side::Buy, "2"), GateState::Open, now)
        .unwrap();
}

#[test]
fn an_order_of_exactly_the_largest_notional_passes() {
    let now = Instant::now();
    let mut l = loose_limits();
    l.max_notional = m("500");
    let mut g = guard(l); // reference price 100
    g.check(market("a", Side::Buy, "5"), GateState::Open, now)
        .unwrap();
    assert_eq!(
        reason(g.check(market("b", Side::Buy, "5.001"), GateState::Open, now)),
        RejectReason::MaxNotional
    );
}
