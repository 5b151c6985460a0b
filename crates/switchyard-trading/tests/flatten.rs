//! The engine's flatten on its own (no node, no bus hop): synthetic USDJPY quotes every
//! 100 ms of event time, a venue scripted to fill or refuse, and the kill switch's
//! events handed to the engine as its control subscription would. Each test pins one of
//! flatten's bounds: the attempts, the deadline, the gate it needs, and every strategy
//! holding the instrument.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::breaker::{Breaker, BreakerConfig};
use switchyard::control::{ControlEnvelope, ControlEvent};
use switchyard::kill_switch::TriggerRequest;
use switchyard::kill_switch::{KillSwitch, KillSwitchConfig, KillSwitchEvent, Mode, Scope};
use switchyard::{Bus, Envelope, Payload, Timestamp};
use switchyard_trading::engine::{EngineCore, FLATTEN_DEADLINE, FLATTEN_MAX_ATTEMPTS};
use switchyard_trading::exchange::ExecEvent;
use switchyard_trading::model::{
    ClientOrderId, Fill, InstrumentId, Liquidity, MarketEvent, OrderRejected, Quote, RejectReason,
    Side,
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

/// Fills the first `fills` orders at once, whole; refuses every later one.
struct Scripted {
    fills: u32,
    venue_id: u64,
}

impl ExecutionVenue for Scripted {
    fn lists(&self, instrument: &InstrumentId) -> bool {
        instrument == &usdjpy()
    }
    fn submit(&mut self, order: RiskApproved, now: Timestamp, out: &mut Vec<ExecEvent>) {
        let req = order.into_request();
        self.venue_id += 1;
        if self.fills > 0 {
            self.fills -= 1;
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
        } else {
            out.push(ExecEvent::Rejected(OrderRejected {
                client_order_id: req.client_order_id,
                strategy: req.strategy,
                instrument: req.instrument,
                reason: RejectReason::NoMarket,
                message: "scripted refusal".into(),
                ts_event: now,
            }));
        }
    }
    fn cancel(&mut self, _: &ClientOrderId, _: Timestamp, _: &mut Vec<ExecEvent>) {}
    fn on_market_data(&mut self, _: &MarketEvent, _: &mut Vec<ExecEvent>) {}
}

/// Buys 1 USDJPY at market on its first quote and holds it.
struct Hold {
    name: &'static str,
    done: bool,
}

impl Strategy for Hold {
    fn name(&self) -> &str {
        self.name
    }
    fn on_market_data(&mut self, _: &MarketEvent, ctx: &mut StrategyContext) {
        if !self.done {
            self.done = ctx
                .market_order(&usdjpy(), Side::Buy, Quantity::ONE)
                .is_ok();
        }
    }
}

struct Rig {
    engine: EngineCore,
    ks: KillSwitch,
    events: Arc<Mutex<Vec<KillSwitchEvent>>>,
    seq: u64,
    t: Timestamp,
}

const T0: u64 = 1_700_000_000_000_000_000;
const STEP: Duration = Duration::from_millis(100);

impl Rig {
    fn new(strategies: &[&'static str], fills: u32) -> Rig {
        let bus = Bus::new();
        let ks = KillSwitch::new(KillSwitchConfig::default(), None, bus.clock()).unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        ks.set_listener(Arc::new(move |ev: &KillSwitchEvent| {
            sink.lock().unwrap().push(ev.clone());
        }));
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
        let mut b = EngineCore::builder(bus, ks.clone(), guard)
            .venue("truefx", Box::new(Scripted { fills, venue_id: 0 }), breaker)
            .unwrap();
        for name in strategies {
            b = b
                .strategy(Box::new(Hold { name, done: false }), None)
                .unwrap();
        }
        Rig {
            engine: b.build().unwrap(),
            ks,
            events,
            seq: 0,
            t: Timestamp(T0),
        }
    }

    /// One quote at the current time, then the clock moves on a step.
    fn quote(&mut self) {
        self.seq += 1;
        let q = Quote {
            instrument: usdjpy(),
            ts_event: self.t,
            ts_recv: self.t,
            bid_price: "149.999".parse().unwrap(),
            bid_size: None,
            ask_price: "150.001".parse().unwrap(),
            ask_size: None,
        };
        let env = Envelope {
            topic: switchyard_trading::feed::topic_for(&MarketEvent::Quote(q.clone())),
            seq: self.seq,
            ts: self.t,
            payload: Payload::Owned(MarketEvent::Quote(q)),
        };
        self.engine.on_market_data(&env);
        self.t = self.t.saturating_add(STEP);
    }

    /// Trigger, and hand the engine what the kill switch published.
    fn trigger(&mut self, scope: Scope, mode: Mode) {
        self.ks
            .trigger(TriggerRequest::new(scope, mode, "test", "test"));
        let evs: Vec<KillSwitchEvent> = std::mem::take(&mut *self.events.lock().unwrap());
        for ev in evs {
            self.seq += 1;
            let event = ControlEvent::KillSwitch(ev);
            self.engine.on_control(&ControlEnvelope {
                topic: event.topic(),
                seq: self.seq,
                ts: self.t,
                event,
            });
        }
    }

    fn orders(&self) -> u64 {
        self.engine.view().stats.orders
    }

    fn since(&self, t: Timestamp) -> Duration {
        self.t.saturating_duration_since(t)
    }
}

#[test]
fn flatten_sends_exactly_the_max_attempts_then_alerts_before_the_deadline() {
    let mut rig = Rig::new(&["hold"], 1);
    rig.quote(); // the buy fills
    let at = rig.t;
    rig.trigger(Scope::All, Mode::Flatten);
    // A second flatten covering the same position adds no second closing order.
    rig.trigger(Scope::Strategy("hold".into()), Mode::Flatten);
    let mut alerted_after = None;
    while rig.since(at) < Duration::from_secs(8) {
        rig.quote();
        if alerted_after.is_none() && !rig.engine.view().flatten_failed.is_empty() {
            alerted_after = Some(rig.since(at));
        }
    }
    let view = rig.engine.view();
    assert_eq!(view.flatten_failed.len(), 1, "{:?}", view.flatten_failed);
    assert_eq!(view.flatten_failed[0].attempts, FLATTEN_MAX_ATTEMPTS);
    assert_eq!(rig.orders(), 1 + u64::from(FLATTEN_MAX_ATTEMPTS));
    // Ten attempts 250 ms apart are spent after ~2.3 s: the alert comes then, not at
    // the deadline.
    let after = alerted_after.expect("alerted");
    assert!(after < FLATTEN_DEADLINE, "alerted only after {after:?}");
    assert!(
        after >= Duration::from_millis(2_250),
        "alerted after {after:?}"
    );
}

#[test]
fn under_a_stricter_halt_flatten_sends_nothing_and_alerts_at_the_deadline() {
    let mut rig = Rig::new(&["hold"], 1);
    rig.quote();
    let at = rig.t;
    // One trigger per scope: the halt covers the venue, the flatten everything.
    rig.trigger(Scope::Venue("truefx".into()), Mode::Halt);
    rig.trigger(Scope::All, Mode::Flatten);
    let mut alerted_after = None;
    while rig.since(at) < Duration::from_secs(8) {
        rig.quote();
        if alerted_after.is_none() && !rig.engine.view().flatten_failed.is_empty() {
            alerted_after = Some(rig.since(at));
        }
    }
    assert_eq!(rig.orders(), 1, "no closing order passes a halt");
    let after = alerted_after.expect("alerted at the deadline");
    assert!(after >= FLATTEN_DEADLINE, "alerted early, after {after:?}");
    assert!(
        after <= FLATTEN_DEADLINE + 2 * STEP,
        "alerted late, after {after:?}"
    );
}

#[test]
fn a_plain_halt_neither_flattens_nor_alerts() {
    let mut rig = Rig::new(&["hold"], 1);
    rig.quote();
    let at = rig.t;
    rig.trigger(Scope::All, Mode::Halt);
    while rig.since(at) < Duration::from_secs(8) {
        rig.quote();
        assert!(rig.engine.view().flatten_failed.is_empty());
    }
    assert_eq!(rig.orders(), 1);
    let view = rig.engine.view();
    assert_eq!(
        view.positions[0].quantity,
        Quantity::ONE,
        "the long is kept"
    );
}

#[test]
fn flatten_closes_every_strategy_holding_the_instrument() {
    let mut rig = Rig::new(&["a", "b"], 4);
    rig.quote(); // both buy, both fill
    assert_eq!(
        rig.engine.view().positions[0].quantity,
        Quantity::from_int(2).unwrap()
    );
    let at = rig.t;
    rig.trigger(Scope::All, Mode::Flatten);
    // Closed at once; the flatten is then done: no more orders, no alert, ever.
    while rig.since(at) < Duration::from_secs(8) {
        rig.quote();
    }
    let view = rig.engine.view();
    assert!(view.flatten_failed.is_empty(), "{:?}", view.flatten_failed);
    for s in &view.strategies {
        assert!(
            s.positions.iter().all(|p| p.quantity.is_zero()),
            "{} still holds {:?}",
            s.name,
            s.positions
        );
    }
    assert!(view.positions.iter().all(|p| p.quantity.is_zero()));
    assert_eq!(view.stats.orders, 4, "one buy and one close each");
}
