//! Positions and P&L: exact invariants.

mod common;

use std::time::Instant;

use common::*;
use proptest::prelude::*;
use switchyard::Timestamp;
use switchyard::kill_switch::GateState;
use switchyard_trading::exchange::{ExchangeConfig, ExecEvent, PaperExchange};
use switchyard_trading::model::{Fill, Instrument, Liquidity, Side};
use switchyard_trading::num::{Money, Price, Quantity};
use switchyard_trading::portfolio::Portfolio;
use switchyard_trading::risk::{RiskGuard, RiskLimits};

fn fill(side: Side, qty: Quantity, price: Price, fee: Money) -> Fill {
    Fill {
        client_order_id: "x".into(),
        venue_order_id: 1,
        strategy: "s".into(),
        instrument: btc(),
        side,
        price,
        quantity: qty,
        fee,
        liquidity: Liquidity::Taker,
        last: true,
        ts_event: Timestamp::ZERO,
    }
}

#[test]
fn marks_and_totals() {
    let mut pf = Portfolio::new();
    assert_eq!(pf.last_mark(&btc()), None, "nothing seen yet");
    pf.on_market_data(&quote(1, "99", "101"));
    assert_eq!(
        pf.last_mark(&btc()),
        Some(p("100")),
        "a quote marks at its mid"
    );
    pf.apply_fill(&fill(Side::Sell, q("2"), p("100"), m("0.1")))
        .unwrap();
    assert_eq!(pf.position(&btc()).unwrap().mark, Some(p("100")));
    pf.on_market_data(&trade(2, "97.5"));
    assert_eq!(pf.last_mark(&btc()), Some(p("97.5")));
    assert_eq!(pf.unrealised_pnl().unwrap(), m("5"));
    assert_eq!(pf.total_pnl().unwrap(), m("4.9"));
    let r = pf
        .apply_fill(&fill(Side::Buy, q("3"), p("98"), m("0")))
        .unwrap();
    assert_eq!(r, m("4"));
    let pos = pf.position(&btc()).unwrap();
    assert_eq!(
        (pos.quantity, pos.avg_entry_price()),
        (q("1"), Some(p("98")))
    );
    assert_eq!(pf.unrealised_pnl().unwrap(), m("-0.5"));
    assert_eq!(pf.fees().unwrap(), m("0.1"));
}

fn price() -> impl Strategy<Value = Price> {
    (1i64..10_000_000).prop_map(|c| Price::from_scaled(c, 2).unwrap())
}
fn qty() -> impl Strategy<Value = Quantity> {
    (1i64..1_000_000).prop_map(|m| Quantity::from_scaled(m, 3).unwrap())
}

proptest! {
    #[test]
    fn round_trip_realises_exactly_q_times_price_change(q in qty(), p1 in price(), p2 in price(), long in any::<bool>()) {
        let (open, close) = if long { (Side::Buy, Side::Sell) } else { (Side::Sell, Side::Buy) };
        let mut pf = Portfolio::new();
        pf.apply_fill(&fill(open, q, p1, Money::ZERO)).unwrap();
        pf.apply_fill(&fill(close, q, p2, Money::ZERO)).unwrap();
        let diff = p2.checked_sub(p1).unwrap();
        let expect = diff.checked_mul_qty(q).unwrap();
        let expect = if long { expect } else { expect.checked_neg().unwrap() };
        prop_assert_eq!(pf.realised_pnl().unwrap(), expect);
        let pos = pf.position(&btc()).unwrap();
        prop_assert_eq!((pos.quantity, pos.cost), (Quantity::ZERO, Money::ZERO));
        prop_assert_eq!(pf.unrealised_pnl().unwrap(), Money::ZERO);
    }

    #[test]
    fn flips_split_into_close_and_open(q1 in qty(), q2 in qty(), p1 in price(), p2 in price()) {
        // long q1 at p1, sell q1+q2 at p2: realise q1×(p2−p1), be short q2 at p2
        let mut pf = Portfolio::new();
        pf.apply_fill(&fill(Side::Buy, q1, p1, Money::ZERO)).unwrap();
        let total = q1.checked_add(q2).unwrap();
        let r = pf.apply_fill(&fill(Side::Sell, total, p2, Money::ZERO)).unwrap();
        prop_assert_eq!(r, p2.checked_sub(p1).unwrap().checked_mul_qty(q1).unwrap());
        let pos = pf.position(&btc()).unwrap();
        prop_assert_eq!(pos.quantity, q2.checked_neg().unwrap());
        prop_assert_eq!(pos.avg_entry_price(), Some(p2));
    }

    #[test]
    fn flat_sequences_realise_sells_minus_buys(fills in proptest::collection::vec((any::<bool>(), qty(), price()), 1..30), close in price()) {
        let mut pf = Portfolio::new();
        let mut cash = Money::ZERO; // Σ sells − Σ buys
        let mut pos = Quantity::ZERO;
        for (buy, q, p) in &fills {
            let side = if *buy { Side::Buy } else { Side::Sell };
            pf.apply_fill(&fill(side, *q, *p, Money::ZERO)).unwrap();
            let n = p.checked_mul_qty(*q).unwrap();
            cash = if *buy { cash.checked_sub(n) } else { cash.checked_add(n) }.unwrap();
            pos = side.signed(*q).unwrap().checked_add(pos).unwrap();
            prop_assert_eq!(pf.quantity(&btc()), pos);
        }
        // close out at `close`
        if !pos.is_zero() {
            let side = if pos.is_positive() { Side::Sell } else { Side::Buy };
            let q = pos.checked_abs().unwrap();
            pf.apply_fill(&fill(side, q, close, Money::ZERO)).unwrap();
            let n = close.checked_mul_qty(q).unwrap();
            cash = if side == Side::Buy { cash.checked_sub(n) } else { cash.checked_add(n) }.unwrap();
        }
        prop_assert_eq!(pf.quantity(&btc()), Quantity::ZERO);
        prop_assert_eq!(pf.realised_pnl().unwrap(), cash);
    }

    #[test]
    fn rejected_orders_never_move_the_position(orders in proptest::collection::vec((any::<bool>(), 1i64..40, any::<bool>()), 1..40)) {
        // Through the real guard and exchange; tight limits make many orders fail.
        let limits = RiskLimits { max_order_quantity: q("2"), max_position: q("3"), max_open_orders: 2, ..loose_limits() };
        let mut guard = RiskGuard::new(limits).unwrap();
        let mut x = PaperExchange::new(ExchangeConfig::default());
        x.add_instrument(Instrument::new(btc(), p("0.01"), q("0.1")));
        let mut pf = Portfolio::new();
        let md = quote(1, "100", "100.5");
        guard.on_market_data(&md);
        x.on_market_data(&md);
        pf.on_market_data(&md);
        let now = Instant::now();
        for (i, (buy, tenths, is_limit)) in orders.into_iter().enumerate() {
            let side = if buy { Side::Buy } else { Side::Sell };
            let qty = Quantity::from_scaled(tenths, 1).unwrap().to_string();
            // odd-tenths quantities below the lot size are rejected by the exchange
            let req = if is_limit { limit(&format!("o{i}"), side, &qty, "99") } else { market(&format!("o{i}"), side, &qty) };
            let before = pf.quantity(&btc());
            let Ok(approved) = guard.check(req, GateState::Open, now) else {
                prop_assert_eq!(pf.quantity(&btc()), before);
                continue;
            };
            for ev in x.submit(approved, Timestamp::from_micros(2)) {
                match &ev {
                    ExecEvent::Filled(f) => {
                        pf.apply_fill(f).unwrap();
                        guard.on_fill(f).unwrap();
                    }
                    ExecEvent::Rejected(_) | ExecEvent::Canceled { .. } => {
                        guard.on_order_closed(ev.client_order_id());
                        prop_assert_eq!(pf.quantity(&btc()), before);
                    }
                    _ => {}
                }
            }
            prop_assert!(pf.quantity(&btc()).checked_abs().unwrap() <= q("3"));
            prop_assert_eq!(pf.quantity(&btc()), guard.portfolio().quantity(&btc()));
        }
    }
}
