//! The engine's own book-keeping (no node, no bus hop): what its view reports after a few
//! market events on a bus whose clock the test sets.

use std::sync::Arc;
use std::time::Duration;

use switchyard::breaker::{Breaker, BreakerConfig};
use switchyard::kill_switch::{
    KillPolicy, KillPolicyConfig, KillSwitch, KillSwitchConfig, LossLimitRule, Mode, Scope,
};
use switchyard::{Bus, Envelope, ManualClock, Payload, Timestamp};
use switchyard_trading::engine::EngineCore;
use switchyard_trading::exchange::ExecEvent;
use switchyard_trading::model::{
    ClientOrderId, Fill, InstrumentId, Liquidity, MarketEvent, Quote, Side,
};
use switchyard_trading::num::{Money, Price, Quantity};
use switchyard_trading::risk::{RiskApproved, RiskGuard, RiskLimits};
use switchyard_trading::strategy::{Strategy, StrategyContext};
use switchyard_trading::venue::ExecutionVenue;

fn usdjpy() -> InstrumentId {
    InstrumentId::new("truefx", "USDJPY")
}

fn px() -> Price {
    "150.000".parse().unwrap()
}

/// Fills every order at once, whole.
struct FillAll {
    venue_id: u64,
}

impl ExecutionVenue for FillAll {
    fn lists(&self, instrument: &InstrumentId) -> bool {
        instrument == &usdjpy()
    }
    fn submit(&mut self, order: RiskApproved, now: Timestamp, out: &mut Vec<ExecEvent>) {
        let req = order.into_request();
        self.venue_id += 1;
        out.push(ExecEvent::Filled(Fill {
            client_order_id: req.client_order_id,
            venue_order_id: self.venue_id,
            strategy: req.strategy,
            instrument: req.instrument,
            side: req.side,
            price: px(),
            quantity: req.quantity,
            fee: Money::ZERO,
            liquidity: Liquidity::Taker,
            last: true,
            ts_event: now,
        }));
    }
    fn cancel(&mut self, _: &ClientOrderId, _: Timestamp, _: &mut Vec<ExecEvent>) {}
    fn on_market_data(&mut self, _: &MarketEvent, _: &mut Vec<ExecEvent>) {}
}

/// Buys 1 USDJPY at market on every quote.
struct BuyEach;

impl Strategy for BuyEach {
    fn name(&self) -> &str {
        "buyer"
    }
    fn on_market_data(&mut self, _: &MarketEvent, ctx: &mut StrategyContext) {
        ctx.market_order(&usdjpy(), Side::Buy, Quantity::ONE)
            .unwrap();
    }
}

const T0: u64 = 1_700_000_000_000_000_000;

/// Buys 1 USDJPY at market on its first quote and holds it.
struct BuyOnce(bool);

impl Strategy for BuyOnce {
    fn name(&self) -> &str {
        "holder"
    }
    fn on_market_data(&mut self, _: &MarketEvent, ctx: &mut StrategyContext) {
        if !self.0 {
            self.0 = ctx
                .market_order(&usdjpy(), Side::Buy, Quantity::ONE)
                .is_ok();
        }
    }
}

fn engine(clock: &ManualClock) -> EngineCore {
    engine_with(clock, Box::new(BuyEach), None)
}

fn engine_with(
    clock: &ManualClock,
    strategy: Box<dyn Strategy + Send>,
    policy: Option<KillPolicy>,
) -> EngineCore {
    let bus = Bus::with_clock(Arc::new(clock.clone()));
    let ks = KillSwitch::new(KillSwitchConfig::default(), None, bus.clock()).unwrap();
    let guard = RiskGuard::new(RiskLimits {
        max_order_quantity: "100".parse().unwrap(),
        max_notional: "100000".parse().unwrap(),
        max_position: "100".parse().unwrap(),
        max_open_orders: 100,
        orders_per_second: 100_000,
        burst: 100_000,
        price_band_bps: 500,
        daily_loss_limit: "1000000".parse().unwrap(),
    })
    .unwrap();
    let breaker = Breaker::new("truefx", BreakerConfig::default()).unwrap();
    let mut b = EngineCore::builder(bus, ks, guard)
        .venue("truefx", Box::new(FillAll { venue_id: 0 }), breaker)
        .unwrap()
        .strategy(strategy, None)
        .unwrap();
    if let Some(p) = policy {
        b = b.policy(p);
    }
    b.build().unwrap()
}

/// A quote stamped `ts`, handed to the engine.
fn quote(engine: &mut EngineCore, seq: u64, ts: Timestamp) {
    quote_at(engine, seq, ts, "149.999", "150.001");
}

fn quote_at(engine: &mut EngineCore, seq: u64, ts: Timestamp, bid: &str, ask: &str) {
    let q = MarketEvent::Quote(Quote {
        instrument: usdjpy(),
        ts_event: ts,
        ts_recv: ts,
        bid_price: bid.parse().unwrap(),
        bid_size: None,
        ask_price: ask.parse().unwrap(),
        ask_size: None,
    });
    let env = Envelope {
        topic: switchyard_trading::feed::topic_for(&q),
        seq,
        ts,
        payload: Payload::Owned(q),
    };
    engine.on_market_data(&env);
}

#[test]
fn tick_to_order_latency_is_the_bus_clock_since_the_ticks_stamp_in_microseconds() {
    let clock = ManualClock::new(Timestamp(T0));
    let mut e = engine(&clock);
    // The order for each tick leaves 1 µs, then 2 µs, after the tick's envelope stamp.
    for (seq, late_ns) in [(1, 1_000), (2, 2_000)] {
        let ts = Timestamp(T0).saturating_add(Duration::from_millis(100 * seq));
        clock.set(ts.saturating_add(Duration::from_nanos(late_ns)));
        quote(&mut e, seq, ts);
    }
    let view = e.view();
    assert_eq!(view.tick_to_order_samples, 2);
    assert_eq!(view.tick_to_order_us, (1.0, 2.0, 2.0));
    assert_eq!(view.stats.market_events, 2);
    assert_eq!(e.market_events(), 2);
    assert_eq!((view.stats.orders, view.stats.orders_sent), (2, 2));
    assert_eq!(view.stats.fills, 2);
    assert_eq!(view.open_orders, 0);
    assert_eq!(view.strategies[0].stats.market_events, 2);
}

#[test]
fn the_policys_loss_limit_sees_the_pnl_in_cents() {
    let clock = ManualClock::new(Timestamp(T0));
    let policy = KillPolicy::new(
        KillPolicyConfig {
            loss_limits: vec![LossLimitRule {
                watch: Scope::All,
                max_loss: 100, // 1.00 in cents of the quote currency
                scope: None,
                mode: Mode::Halt,
            }],
            ..Default::default()
        },
        std::time::Instant::now(),
    )
    .unwrap();
    let mut e = engine_with(&clock, Box::new(BuyOnce(false)), Some(policy));
    let at = |n: u64| Timestamp(T0).saturating_add(Duration::from_millis(100 * n));
    quote_at(&mut e, 1, at(1), "149.999", "150.001"); // bought 1 at 150.000
    assert_eq!(e.view().positions[0].quantity, Quantity::ONE);
    // Marked at 149.005: down 0.995, i.e. 99 cents: within the limit.
    quote_at(&mut e, 2, at(2), "149.004", "149.006");
    assert!(
        !e.kill_switch().is_engaged(),
        "a 99-cent loss trips nothing"
    );
    // Marked at 148.995: down 1.005, i.e. 100 cents: the limit.
    quote_at(&mut e, 3, at(3), "148.994", "148.996");
    assert!(e.kill_switch().is_engaged(), "a 1.00 loss trips the limit");
    assert_eq!(e.view().stats.kill_switch_trips, 1);
}
