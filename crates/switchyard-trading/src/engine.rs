//! The trading engine: strategy → risk guard → circuit breaker → paper exchange, driven
//! by market data from the bus, publishing every order, rejection and execution back on
//! the bus.
//!
//! The engine runs the chain synchronously for each market event, in one subscription
//! worker, so that a replay of the same data makes the same decisions whatever the
//! scheduling (backtest/live parity): time inside the chain is the *event* time of the
//! data, not the wall clock. The risk guard, the breaker and the kill switch sit on the
//! only path to the exchange: [`RiskApproved`](crate::risk::RiskApproved) can only be made
//! by the guard.
//!
//! Topics it publishes (each a NATS-compatible subject):
//!
//! | topic | type |
//! |---|---|
//! | `orders.request.<strategy>` | [`OrderRequest`] |
//! | `orders.rejected.<strategy>` | [`OrderRejected`] (risk guard, breaker, kill switch) |
//! | `orders.event.<strategy>` | [`ExecEvent`] (accepted, fills, venue rejections, cancels) |

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use switchyard::breaker::{Breaker, Classification};
use switchyard::bus::{HandlerResult, NanoHistogram};
use switchyard::control::ControlEvent;
use switchyard::kill_switch::{
    AuditAction, GateState, KillPolicy, KillSwitch, Mode, Target, TriggerRequest,
};
use switchyard::{Bus, ControlEnvelope, Envelope, Timestamp, Topic};

use crate::exchange::{ExecEvent, PaperExchange};
use crate::model::{
    ClientOrderId, InstrumentId, MarketEvent, OrderRejected, OrderRequest, RejectReason,
    StrategyId, TimeInForce,
};
use crate::num::{Money, Quantity};
use crate::risk::RiskGuard;
use crate::strategy::{Strategy, StrategyContext};

/// Counters of the engine, readable while it runs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EngineStats {
    /// Market events processed.
    pub market_events: u64,
    /// Order requests from the strategy.
    pub orders: u64,
    /// Orders the risk guard approved and the exchange received.
    pub orders_sent: u64,
    /// Fills.
    pub fills: u64,
    /// Rejections by reason (risk guard, breaker and exchange).
    pub rejections: BTreeMap<String, u64>,
    /// Orders cancelled.
    pub cancels: u64,
    /// Times the engine tripped the kill switch (loss limit, policy).
    pub kill_switch_trips: u64,
}

/// A position for the status API.
#[derive(Clone, Debug, Serialize)]
pub struct PositionView {
    /// Instrument.
    pub instrument: String,
    /// Signed quantity.
    pub quantity: Quantity,
    /// Average entry price, if open.
    pub avg_price: Option<String>,
    /// Realised P&L.
    pub realised_pnl: Money,
    /// Unrealised P&L at the last mark.
    pub unrealised_pnl: Option<Money>,
}

/// What the status API and the summary read.
#[derive(Clone, Debug, Serialize)]
pub struct EngineView {
    /// Counters.
    pub stats: EngineStats,
    /// Positions.
    pub positions: Vec<PositionView>,
    /// Realised + unrealised P&L minus fees.
    pub total_pnl: Option<Money>,
    /// Realised P&L.
    pub realised_pnl: Option<Money>,
    /// Open orders.
    pub open_orders: usize,
    /// Market data published → order request at the exchange, p50/p99/max in µs.
    pub tick_to_order_us: (f64, f64, f64),
    /// Samples behind `tick_to_order_us`.
    pub tick_to_order_samples: u64,
}

struct OpenOrder {
    instrument: InstrumentId,
    strategy: StrategyId,
}

/// The engine's state: strategy, guard, exchange and book-keeping. Locked per event.
pub struct EngineCore {
    strategy: Box<dyn Strategy + Send>,
    ctx: StrategyContext,
    guard: RiskGuard,
    exchange: PaperExchange,
    kill_switch: KillSwitch,
    breaker: Breaker,
    policy: Option<KillPolicy>,
    venue: String,
    open: HashMap<ClientOrderId, OpenOrder>,
    stats: EngineStats,
    tick_to_order: NanoHistogram,
    /// Event time of the first event, and the Instant that stands for it.
    epoch: Option<(Timestamp, Instant)>,
    bus: Bus,
    publishers: HashMap<(u8, StrategyId), Topic>,
}

impl EngineCore {
    /// An engine around a strategy, a guard and an exchange.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bus: Bus,
        strategy: Box<dyn Strategy + Send>,
        guard: RiskGuard,
        exchange: PaperExchange,
        kill_switch: KillSwitch,
        breaker: Breaker,
        policy: Option<KillPolicy>,
        venue: impl Into<String>,
    ) -> Self {
        let ctx = StrategyContext::new(StrategyId::new(strategy.name()));
        EngineCore {
            strategy,
            ctx,
            guard,
            exchange,
            kill_switch,
            breaker,
            policy,
            venue: venue.into(),
            open: HashMap::new(),
            stats: EngineStats::default(),
            tick_to_order: NanoHistogram::new(),
            epoch: None,
            bus,
            publishers: HashMap::new(),
        }
    }

    /// Event time as an `Instant` (for the throttle, the policy): deterministic in replays.
    fn instant(&mut self, ts: Timestamp) -> Instant {
        let (t0, i0) = *self.epoch.get_or_insert((ts, Instant::now()));
        i0 + ts.saturating_duration_since(t0)
    }

    fn topic(&mut self, kind: u8, strategy: &StrategyId) -> Topic {
        *self
            .publishers
            .entry((kind, strategy.clone()))
            .or_insert_with(|| {
                let prefix = match kind {
                    0 => "orders.request",
                    1 => "orders.rejected",
                    _ => "orders.event",
                };
                Topic::new(&format!("{prefix}.{}", strategy.as_str()))
                    .unwrap_or_else(|_| Topic::new(prefix).expect("valid topic"))
            })
    }

    fn publish<T: Send + Sync + 'static>(&self, topic: Topic, ev: T) {
        // From inside a handler: never waits (see the bus docs).
        let _ = self.bus.try_publish(topic, ev);
    }

    /// Handle one market event end to end.
    pub fn on_market_data(&mut self, env: &Envelope<MarketEvent>) {
        let ev = env.payload();
        let ts = ev.ts_event();
        let now = self.instant(ts);
        self.stats.market_events += 1;
        self.ctx.set_now(ts);
        let out = self.exchange.on_market_data(ev);
        self.on_exec(out);
        self.guard.on_market_data(ev);
        if let Some(p) = &mut self.policy {
            p.observe_market_data(ev.instrument().symbol.as_str(), now);
        }
        self.strategy.on_market_data(ev, &mut self.ctx);
        let orders = self.ctx.take_orders();
        for req in orders {
            self.submit(req, ts, now, Some(env.ts));
        }
        if self.guard.loss_limit_breached() {
            self.trip(Mode::Halt, "daily loss limit breached");
        }
        if let Some(p) = &mut self.policy {
            let fire = p.evaluate(now);
            for t in fire {
                self.trip_request(t);
            }
        }
    }

    /// Send one order request through the guard, the breaker and the exchange.
    fn submit(
        &mut self,
        req: OrderRequest,
        ts: Timestamp,
        now: Instant,
        tick_ts: Option<Timestamp>,
    ) {
        self.stats.orders += 1;
        let strategy = req.strategy.clone();
        let t = self.topic(0, &strategy);
        self.publish(t, req.clone());
        let gate = self.kill_switch.check(&Target {
            venue: &self.venue,
            strategy: strategy.as_str(),
            instrument: req.instrument.symbol.as_str(),
        });
        match self.guard.check(req, gate, now) {
            Err(rej) => {
                let trip = rej.trip_kill_switch;
                let r = rej.to_order_rejected(ts);
                self.ctx.order_closed(&r.client_order_id);
                self.reject(r);
                if trip {
                    self.trip(Mode::Halt, "daily loss limit breached");
                }
                if let Some(p) = &mut self.policy
                    && let Some(t) = p.observe_rejection(now)
                {
                    self.trip_request(t);
                }
            }
            Ok(approved) => {
                let permit = match self.breaker.try_acquire() {
                    Ok(p) => p,
                    Err(open) => {
                        let r = approved.request();
                        let rej = OrderRejected {
                            client_order_id: r.client_order_id.clone(),
                            strategy: r.strategy.clone(),
                            instrument: r.instrument.clone(),
                            reason: RejectReason::CircuitOpen,
                            message: open.to_string(),
                            ts_event: ts,
                        };
                        self.guard.on_order_closed(&rej.client_order_id);
                        self.ctx.order_closed(&rej.client_order_id);
                        self.reject(rej);
                        return;
                    }
                };
                if let Some(tick) = tick_ts {
                    let lat = self.bus.now().saturating_duration_since(tick);
                    self.tick_to_order.record(lat.as_nanos() as u64);
                }
                let id = approved.request().client_order_id.clone();
                let instrument = approved.request().instrument.clone();
                self.stats.orders_sent += 1;
                let out = self.exchange.submit(approved, ts);
                let refused = out.iter().any(|e| matches!(e, ExecEvent::Rejected(_)));
                self.breaker.report(
                    permit,
                    if refused {
                        Classification::Failure
                    } else {
                        Classification::Success
                    },
                    Duration::ZERO,
                );
                if !refused {
                    self.open.insert(
                        id,
                        OpenOrder {
                            instrument,
                            strategy,
                        },
                    );
                }
                self.on_exec(out);
            }
        }
    }

    fn reject(&mut self, r: OrderRejected) {
        *self
            .stats
            .rejections
            .entry(r.reason.to_string())
            .or_default() += 1;
        let t = self.topic(1, &r.strategy.clone());
        self.strategy.on_rejection(&r, &mut self.ctx);
        self.publish(t, r);
    }

    fn on_exec(&mut self, events: Vec<ExecEvent>) {
        for ev in events {
            match &ev {
                ExecEvent::Filled(f) => {
                    self.stats.fills += 1;
                    let _ = self.guard.on_fill(f);
                    let _ = self.ctx.apply_fill(f);
                    self.strategy.on_fill(f, &mut self.ctx);
                }
                ExecEvent::Rejected(r) => {
                    *self
                        .stats
                        .rejections
                        .entry(r.reason.to_string())
                        .or_default() += 1;
                    self.guard.on_order_closed(&r.client_order_id);
                    self.ctx.apply_rejection(r);
                    self.strategy.on_rejection(r, &mut self.ctx);
                }
                ExecEvent::Canceled {
                    client_order_id, ..
                } => {
                    self.stats.cancels += 1;
                    self.guard.on_order_closed(client_order_id);
                    self.ctx.order_closed(client_order_id);
                }
                ExecEvent::Accepted { .. } | ExecEvent::CancelRejected { .. } => {}
            }
            let strategy = self
                .open
                .get(ev.client_order_id())
                .map(|o| o.strategy.clone())
                .unwrap_or_else(|| self.ctx.strategy().clone());
            if ev.closes_order() {
                self.open.remove(ev.client_order_id());
            }
            let t = self.topic(2, &strategy);
            self.publish(t, ev);
        }
    }

    fn trip(&mut self, mode: Mode, reason: &str) {
        self.trip_request(TriggerRequest::new(
            switchyard::kill_switch::Scope::All,
            mode,
            reason,
            "trading-engine",
        ));
    }

    fn trip_request(&mut self, req: TriggerRequest) {
        let before = self.kill_switch.status().counters.triggers;
        self.kill_switch.trigger(req);
        if self.kill_switch.status().counters.triggers != before {
            self.stats.kill_switch_trips += 1;
        }
    }

    /// React to the kill switch: cancel open orders in the scope (halt, flatten), then for
    /// flatten send closing orders through the guard.
    pub fn on_control(&mut self, c: &ControlEnvelope) {
        let ControlEvent::KillSwitch(k) = &c.event else {
            return;
        };
        if !matches!(
            k.record.action,
            AuditAction::Triggered | AuditAction::Escalated
        ) {
            return;
        }
        let ts = self.ctx.now();
        let ids: Vec<ClientOrderId> = self
            .open
            .iter()
            .filter(|(_, o)| {
                let g = self.kill_switch.check(&Target {
                    venue: &self.venue,
                    strategy: o.strategy.as_str(),
                    instrument: o.instrument.symbol.as_str(),
                });
                g != GateState::Open
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let out = self.exchange.cancel(&id, ts);
            self.on_exec(out);
        }
        // Flatten: close each position the gate says to flatten.
        let positions: Vec<(InstrumentId, Quantity)> = self
            .guard
            .portfolio()
            .positions()
            .map(|p| (p.instrument.clone(), p.quantity))
            .filter(|(_, q)| *q != Quantity::ZERO)
            .collect();
        let strategy = self.ctx.strategy().clone();
        for (instrument, qty) in positions {
            let g = self.kill_switch.check(&Target {
                venue: &self.venue,
                strategy: strategy.as_str(),
                instrument: instrument.symbol.as_str(),
            });
            if g != GateState::Flatten {
                continue;
            }
            let side = if qty > Quantity::ZERO {
                crate::model::Side::Sell
            } else {
                crate::model::Side::Buy
            };
            let Ok(abs) = qty.checked_abs() else { continue };
            let req = OrderRequest {
                client_order_id: ClientOrderId::new(format!(
                    "flatten-{}-{}",
                    instrument.symbol.as_str(),
                    c.seq
                )),
                strategy: strategy.clone(),
                instrument,
                side,
                quantity: abs,
                order_type: crate::model::OrderType::Market,
                time_in_force: TimeInForce::Ioc,
            };
            let now = self.instant(ts);
            self.submit(req, ts, now, None);
        }
    }

    /// Counters, positions and P&L.
    pub fn view(&self) -> EngineView {
        let pf = self.guard.portfolio();
        let positions = pf
            .positions()
            .map(|p| PositionView {
                instrument: p.instrument.to_string(),
                quantity: p.quantity,
                avg_price: p.avg_entry_price().map(|x| x.to_string()),
                realised_pnl: p.realised_pnl,
                unrealised_pnl: p.unrealised_pnl().ok(),
            })
            .collect();
        let s = self.tick_to_order.summary();
        let us = |ns: u64| ns as f64 / 1_000.0;
        EngineView {
            stats: self.stats.clone(),
            positions,
            total_pnl: pf.total_pnl().ok(),
            realised_pnl: pf.realised_pnl().ok(),
            open_orders: self.open.len(),
            tick_to_order_us: (us(s.p50_ns), us(s.p99_ns), us(s.max_ns)),
            tick_to_order_samples: s.count,
        }
    }
}

/// The engine's handler: one bus subscription on market data (with the control lane).
#[derive(Clone)]
pub struct EngineHandler {
    core: Arc<Mutex<EngineCore>>,
}

impl EngineHandler {
    /// A handler around a shared core.
    pub fn new(core: Arc<Mutex<EngineCore>>) -> Self {
        EngineHandler { core }
    }
}

impl switchyard::bus::Handler<MarketEvent> for EngineHandler {
    fn handle(
        &mut self,
        event: &Envelope<MarketEvent>,
    ) -> impl std::future::Future<Output = HandlerResult> + Send {
        self.core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_market_data(event);
        std::future::ready(Ok(()))
    }

    fn on_control(
        &mut self,
        event: &ControlEnvelope,
    ) -> impl std::future::Future<Output = HandlerResult> + Send {
        self.core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_control(event);
        std::future::ready(Ok(()))
    }
}
