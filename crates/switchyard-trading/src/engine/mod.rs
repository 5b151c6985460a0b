//! The trading engine: for each market event, every strategy → its own risk limits (if
//! any) → the global risk guard → the venue's circuit breaker → the venue; every order,
//! rejection and execution published back on the bus.
//!
//! # Contract
//!
//! - **One actor.** The engine runs the whole chain synchronously for each market event,
//!   in one bus subscription, so a replay of the same data makes the same decisions in
//!   the same order whatever the scheduling (backtest/live parity). Time inside the chain
//!   is the *event* time of the data, never the wall clock. Strategies are shown each
//!   event in registration order.
//! - **Several strategies**, each with its own [`StrategyId`], context, order ids,
//!   counters, positions and P&L. The engine stamps nothing for a strategy: a request
//!   whose `strategy` is not the asking strategy's id is refused
//!   ([`RejectReason::ForeignStrategy`]) and counted, so no strategy can act as another
//!   or step around a kill switch scoped to it. A client order id already open is
//!   refused too.
//! - **Limits.** A strategy may have its own [`RiskLimits`] (applied to its own orders
//!   and positions) on top of the global guard's (applied to the sum of all strategies):
//!   an order passes both. The global daily loss limit trips the kill switch for every
//!   scope; a strategy's own loss limit trips `strategy:<id>` only. Each trips once, and
//!   re-arms when the kill switch is reset.
//! - **Venues.** Each order goes to the venue its instrument names (an order for an
//!   instrument no venue lists is refused as `unknown_instrument`); each market event to
//!   the venue of its instrument. Each venue has its own [`Breaker`], judged on the
//!   venue's *first* report about an order — acceptance or fill is a success, rejection a
//!   failure — whenever it arrives, with the event time between submission and report as
//!   the call's duration.
//! - **Kill switch.** Each order is checked against the gate of its target (venue,
//!   strategy, instrument). When a trigger closes a gate, the engine cancels the open
//!   orders it covers (in order id order), sends closing IOC orders for positions whose
//!   gate says flatten, then tells every strategy ([`Strategy::on_gate_change`]).
//! - Orders a strategy asks for in `on_fill`, `on_rejection` or `on_gate_change` go
//!   through the chain at once, not at the next market event.
//!
//! Topics it publishes (each a NATS-compatible subject):
//!
//! | topic | type |
//! |---|---|
//! | `orders.request.<strategy>` | [`OrderRequest`] |
//! | `orders.rejected.<strategy>` | [`OrderRejected`] (risk guard, breaker, kill switch) |
//! | `orders.event.<strategy>` | [`ExecEvent`] (accepted, fills, venue rejections, cancels) |

mod builder;
mod flatten;
mod handler;
mod slot;
mod view;

use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::Instant;

use switchyard::breaker::{Breaker, Classification, Permit};
use switchyard::bus::NanoHistogram;
use switchyard::control::ControlEvent;
use switchyard::kill_switch::{
    AuditAction, GateState, KillPolicy, KillSwitch, Mode, Scope, Target, TriggerRequest,
};
use switchyard::{Bus, ControlEnvelope, Envelope, Timestamp, Topic};

pub use builder::{EngineBuilder, EngineError};
pub use flatten::{
    DEADLINE as FLATTEN_DEADLINE, FlattenFailure, MAX_ATTEMPTS as FLATTEN_MAX_ATTEMPTS,
};
pub use handler::EngineHandler;
pub use slot::StrategyPanic;
use slot::StrategySlot;
pub use view::{EngineStats, EngineView, PositionView, StrategyView};

use crate::exchange::ExecEvent;
use crate::model::{
    ClientOrderId, InstrumentId, MarketEvent, OrderRejected, OrderRequest, RejectReason,
};
use crate::risk::{RiskGuard, RiskRejection};
use crate::venue::ExecutionVenue;

struct VenueSlot {
    name: String,
    venue: Box<dyn ExecutionVenue>,
    breaker: Breaker,
}

struct OpenOrder {
    strategy: usize,
    venue: usize,
    instrument: InstrumentId,
    /// Handed back on the venue's first report.
    permit: Option<Permit>,
    submitted: Timestamp,
}

/// The engine's state: strategies, guards, venues and book-keeping. Locked per event.
pub struct EngineCore {
    strategies: Vec<StrategySlot>,
    venues: Vec<VenueSlot>,
    guard: RiskGuard,
    kill_switch: KillSwitch,
    policy: Option<KillPolicy>,
    open: FxHashMap<ClientOrderId, OpenOrder>,
    market_events: u64,
    kill_switch_trips: u64,
    /// Errors no strategy owns (unknown-order reports, component failures), by kind.
    errors: std::collections::BTreeMap<String, u64>,
    loss_tripped: bool,
    tick_to_order: NanoHistogram,
    /// Event time of the first event, and the Instant that stands for it.
    epoch: Option<(Timestamp, Instant)>,
    last_ts: Timestamp,
    bus: Bus,
    on_panic: StrategyPanic,
    epoch_instant: Instant,
    flattens: Vec<flatten::PendingFlatten>,
}

impl EngineCore {
    /// An engine publishing on `bus`, gated by `kill_switch`, with `guard` over the sum
    /// of its strategies. Add strategies and venues to the builder.
    pub fn builder(bus: Bus, kill_switch: KillSwitch, guard: RiskGuard) -> EngineBuilder {
        EngineBuilder {
            bus,
            kill_switch,
            guard,
            policy: None,
            strategies: Vec::new(),
            venues: Vec::new(),
            on_panic: StrategyPanic::default(),
            epoch: Instant::now(),
        }
    }

    /// The kill switch the engine checks and trips.
    pub fn kill_switch(&self) -> &KillSwitch {
        &self.kill_switch
    }

    /// An error of `kind` (strategy `i`'s, or nobody's) at event time `now`: counted, logged
    /// at the 1st, 2nd, 4th, 8th… of its kind (bounded logs under a flood), and fed to the
    /// policy's `error_rate` rule.
    fn error(&mut self, kind: &str, strategy: Option<usize>, now: Instant, detail: &str) {
        let map = match strategy {
            Some(i) => &mut self.strategies[i].stats.errors,
            None => &mut self.errors,
        };
        let n = map.entry(kind.to_owned()).or_default();
        *n += 1;
        let n = *n;
        if n.is_power_of_two() {
            let strategy = strategy.map(|i| self.strategies[i].id.to_string());
            tracing::warn!(kind, ?strategy, count = n, detail, "engine error");
        }
        if let Some(p) = &mut self.policy
            && let Some(t) = p.observe_error(now)
        {
            self.trip_request(t);
        }
    }

    /// A strategy's callback panicked: halt what the policy says.
    fn strategy_panicked(&mut self, i: usize) {
        let now = self.instant(self.last_ts);
        self.error("strategy_panic", Some(i), now, "a callback panicked");
        let s = &self.strategies[i];
        let reason = format!(
            "strategy {} panicked: {}",
            s.id,
            s.panicked.as_deref().unwrap_or_default()
        );
        let scope = match self.on_panic {
            StrategyPanic::HaltStrategy => Scope::Strategy(s.id.as_str().into()),
            StrategyPanic::HaltAll => Scope::All,
        };
        self.trip(scope, &reason);
    }

    /// Event time as an `Instant` (for the throttle, the policy): deterministic in replays.
    fn instant(&mut self, ts: Timestamp) -> Instant {
        let (t0, i0) = *self.epoch.get_or_insert((ts, self.epoch_instant));
        i0 + ts.saturating_duration_since(t0)
    }

    fn publish<T: Send + Sync + 'static>(&self, topic: Topic, ev: T) {
        // From inside a handler: never waits (see the bus docs).
        let _ = self.bus.try_publish(topic, ev);
    }

    fn venue_of(&self, instrument: &InstrumentId) -> Option<usize> {
        self.venues
            .iter()
            .position(|v| v.name == instrument.venue.as_str())
    }

    /// Handle one market event end to end.
    pub fn on_market_data(&mut self, env: &Envelope<MarketEvent>) {
        let ev = env.payload();
        let ts = ev.ts_event();
        let now = self.instant(ts);
        self.market_events += 1;
        self.last_ts = ts;
        // Time-based rules first, at this event's time: a gap in the data is judged
        // before the event that ends it — as the live timer judged it during the gap.
        self.evaluate_policy(now);
        let mut out = Vec::new();
        for v in &mut self.venues {
            v.venue.poll(ts, &mut out);
        }
        if let Some(v) = self.venue_of(ev.instrument()) {
            self.venues[v].venue.on_market_data(ev, &mut out);
        }
        if !out.is_empty() {
            self.on_exec(out);
        }
        self.guard.on_market_data(ev);
        if let Some(p) = &mut self.policy {
            p.observe_market_data(ev.instrument().symbol.as_str(), now);
        }
        self.work_flattens();
        for i in 0..self.strategies.len() {
            let s = &mut self.strategies[i];
            s.book.on_market_data(ev);
            if let Some(g) = &mut s.limits {
                g.on_market_data(ev);
            }
            s.stats.market_events += 1;
            s.ctx.set_now(ts);
            if s.call(|st, ctx| st.on_market_data(ev, ctx)) {
                self.strategy_panicked(i);
            }
            self.drain_orders(i, ts, now, Some(env.ts));
        }
        self.check_loss_limits();
        self.observe_pnl();
    }

    fn evaluate_policy(&mut self, now: Instant) {
        if let Some(p) = &mut self.policy {
            let fire = p.evaluate(now);
            for t in fire {
                self.trip_request(t);
            }
        }
    }

    /// Market events handled so far.
    pub fn market_events(&self) -> u64 {
        self.market_events
    }

    /// No market event for `silence` (measured by the caller's timer, live runs only):
    /// the time-based policy rules (stale data, a breaker open too long) are judged at
    /// the last event's time plus the silence — so a full outage of every feed trips the
    /// stale-data rule on schedule, not at the next event.
    pub fn on_silence(&mut self, silence: std::time::Duration) {
        let base = match self.epoch {
            Some(_) => self.instant(self.last_ts),
            None => self.epoch_instant,
        };
        self.evaluate_policy(base + silence);
        self.work_flattens();
    }

    /// Sends what strategy `i` asked for through the chain.
    fn drain_orders(&mut self, i: usize, ts: Timestamp, now: Instant, tick: Option<Timestamp>) {
        let orders = self.strategies[i].ctx.take_orders();
        for req in orders {
            self.submit(i, req, ts, now, tick);
        }
    }

    /// The policy's loss-limit rules watch the P&L of everything (`scope all`) and of
    /// each strategy (`strategy:<id>`), in cents of the quote currency.
    fn observe_pnl(&mut self) {
        let Some(p) = &mut self.policy else { return };
        if p.config().loss_limits.is_empty() {
            return;
        }
        let cents = |m: crate::num::Money| m.raw() / 10_000_000;
        let mut fire = Vec::new();
        if let Ok(total) = self.guard.portfolio().total_pnl() {
            fire.extend(p.observe_pnl(&Scope::All, cents(total)));
        }
        for s in &self.strategies {
            if let Ok(pnl) = s.book.total_pnl() {
                fire.extend(p.observe_pnl(&Scope::Strategy(s.id.as_str().into()), cents(pnl)));
            }
        }
        for t in fire {
            self.trip_request(t);
        }
    }

    fn check_loss_limits(&mut self) {
        if !self.loss_tripped && self.guard.loss_limit_breached() {
            self.loss_tripped = true;
            self.trip(Scope::All, "daily loss limit breached");
        }
        for i in 0..self.strategies.len() {
            let s = &self.strategies[i];
            if !s.loss_tripped
                && s.limits
                    .as_ref()
                    .is_some_and(RiskGuard::loss_limit_breached)
            {
                self.strategies[i].loss_tripped = true;
                let scope = Scope::Strategy(self.strategies[i].id.as_str().into());
                self.trip(scope, "strategy daily loss limit breached");
            }
        }
    }

    /// Send one order request of strategy `i` through its limits, the guard, the
    /// breaker and the venue.
    fn submit(
        &mut self,
        i: usize,
        req: OrderRequest,
        ts: Timestamp,
        now: Instant,
        tick_ts: Option<Timestamp>,
    ) {
        let slot = &mut self.strategies[i];
        slot.stats.orders += 1;
        let request_topic = slot.topics.request;
        self.publish(request_topic, req.clone());
        if req.strategy != self.strategies[i].id {
            let msg = format!(
                "asked for by strategy {:?}, names strategy {:?}",
                self.strategies[i].id.as_str(),
                req.strategy.as_str()
            );
            tracing::warn!(strategy = %self.strategies[i].id, claimed = %req.strategy, "order refused: names another strategy");
            let r = refused(&req, RejectReason::ForeignStrategy, msg, ts);
            self.reject(i, r);
            return;
        }
        if self.open.contains_key(&req.client_order_id) {
            let r = refused(
                &req,
                RejectReason::DuplicateClientOrderId,
                "an open order has this id".into(),
                ts,
            );
            self.reject(i, r);
            return;
        }
        let venue = match self.venue_of(&req.instrument) {
            Some(v) if self.venues[v].venue.lists(&req.instrument) => v,
            _ => {
                let msg = format!("no venue of this engine trades {}", req.instrument);
                let r = refused(&req, RejectReason::UnknownInstrument, msg, ts);
                self.reject(i, r);
                return;
            }
        };
        let gate = self.kill_switch.check(&Target {
            venue: req.instrument.venue.as_str(),
            strategy: req.strategy.as_str(),
            instrument: req.instrument.symbol.as_str(),
        });
        let id = req.client_order_id.clone();
        let req = match &mut self.strategies[i].limits {
            None => req,
            Some(own) => match own.check(req, gate, now) {
                Ok(a) => a.into_request(),
                Err(rej) => {
                    self.risk_rejected(i, rej, ts);
                    return;
                }
            },
        };
        let approved = match self.guard.check(req, gate, now) {
            Ok(a) => a,
            Err(rej) => {
                if let Some(own) = &mut self.strategies[i].limits {
                    own.on_order_closed(&id);
                }
                self.risk_rejected(i, rej, ts);
                return;
            }
        };
        let permit = match self.venues[venue].breaker.try_acquire() {
            Ok(p) => p,
            Err(open) => {
                self.guard.on_order_closed(&id);
                if let Some(own) = &mut self.strategies[i].limits {
                    own.on_order_closed(&id);
                }
                let r = refused(
                    approved.request(),
                    RejectReason::CircuitOpen,
                    open.to_string(),
                    ts,
                );
                self.reject(i, r);
                return;
            }
        };
        if let Some(tick) = tick_ts {
            let lat = self.bus.now().saturating_duration_since(tick);
            self.tick_to_order.record(lat.as_nanos() as u64);
        }
        self.strategies[i].stats.orders_sent += 1;
        self.open.insert(
            id,
            OpenOrder {
                strategy: i,
                venue,
                instrument: approved.request().instrument.clone(),
                permit: Some(permit),
                submitted: ts,
            },
        );
        let mut out = Vec::new();
        self.venues[venue].venue.submit(approved, ts, &mut out);
        if !out.is_empty() {
            self.on_exec(out);
        }
    }

    fn risk_rejected(&mut self, i: usize, rej: RiskRejection, ts: Timestamp) {
        let trip = rej.trip_kill_switch;
        let r = rej.to_order_rejected(ts);
        self.reject(i, r);
        if trip {
            // The guard refused for the loss limit it also reports as breached: trip
            // now (the global scope or the strategy's), once.
            self.check_loss_limits();
        }
    }

    /// A rejection made before the venue: counted, fed to the policy's rejection-rate
    /// rule, told to the strategy, published.
    fn reject(&mut self, i: usize, r: OrderRejected) {
        let now = self.instant(r.ts_event);
        if let Some(p) = &mut self.policy
            && let Some(t) = p.observe_rejection(now)
        {
            self.trip_request(t);
        }
        let s = &mut self.strategies[i];
        *s.stats.rejections.entry(r.reason.to_string()).or_default() += 1;
        s.ctx.order_closed(&r.client_order_id);
        let panicked = s.call(|st, ctx| st.on_rejection(&r, ctx));
        let t = s.topics.rejected;
        self.publish(t, r);
        if panicked {
            self.strategy_panicked(i);
        }
        self.drain_after_callback(i);
    }

    /// Orders asked for from a callback other than market data go through at once.
    fn drain_after_callback(&mut self, i: usize) {
        let ts = self.last_ts;
        let now = self.instant(ts);
        self.drain_orders(i, ts, now, None);
    }

    /// Apply the venues' reports: book-keeping, the breaker's verdict on an order's first
    /// report, the strategy's callback, the publish.
    fn on_exec(&mut self, events: Vec<ExecEvent>) {
        let mut callbacks: Vec<usize> = Vec::new();
        let mut panicked: Vec<usize> = Vec::new();
        let mut venue_rejections: Vec<Timestamp> = Vec::new();
        let mut errors: Vec<(&'static str, Option<usize>, Timestamp, String)> = Vec::new();
        for ev in events {
            let id = ev.client_order_id().clone();
            let Some(o) = self.open.get_mut(&id) else {
                errors.push((
                    "unknown_order_report",
                    None,
                    ev_ts(&ev),
                    format!("report about order {id}, which the engine did not send or closed"),
                ));
                continue;
            };
            let (i, v) = (o.strategy, o.venue);
            let verdict = match &ev {
                ExecEvent::Accepted { .. } | ExecEvent::Filled(_) => Some(Classification::Success),
                ExecEvent::Rejected(_) => Some(Classification::Failure),
                ExecEvent::Canceled { .. } => Some(Classification::Ignore),
                ExecEvent::CancelRejected { .. } => None,
            };
            if let Some(c) = verdict
                && let Some(permit) = o.permit.take()
            {
                let elapsed = ev_ts(&ev).saturating_duration_since(o.submitted);
                self.venues[v].breaker.report(permit, c, elapsed);
            }
            let s = &mut self.strategies[i];
            match &ev {
                ExecEvent::Filled(f) => {
                    s.stats.fills += 1;
                    let mut failed = self.guard.on_fill(f).err();
                    if let Some(g) = &mut s.limits {
                        failed = failed.or(g.on_fill(f).err());
                    }
                    failed = failed.or(s.book.apply_fill(f).err());
                    failed = failed.or(s.ctx.apply_fill(f).err());
                    if let Some(e) = failed {
                        errors.push(("fill_bookkeeping", Some(i), f.ts_event, e.to_string()));
                    }
                    if s.call(|st, ctx| st.on_fill(f, ctx)) {
                        panicked.push(i);
                    }
                    callbacks.push(i);
                }
                ExecEvent::Rejected(r) => {
                    *s.stats.rejections.entry(r.reason.to_string()).or_default() += 1;
                    venue_rejections.push(r.ts_event);
                    self.guard.on_order_closed(&r.client_order_id);
                    if let Some(g) = &mut s.limits {
                        g.on_order_closed(&r.client_order_id);
                    }
                    s.ctx.apply_rejection(r);
                    if s.call(|st, ctx| st.on_rejection(r, ctx)) {
                        panicked.push(i);
                    }
                    callbacks.push(i);
                }
                ExecEvent::Canceled {
                    client_order_id, ..
                } => {
                    s.stats.cancels += 1;
                    self.guard.on_order_closed(client_order_id);
                    if let Some(g) = &mut s.limits {
                        g.on_order_closed(client_order_id);
                    }
                    s.ctx.order_closed(client_order_id);
                }
                ExecEvent::Accepted { .. } | ExecEvent::CancelRejected { .. } => {}
            }
            if ev.closes_order() {
                self.open.remove(&id);
            }
            let t = self.strategies[i].topics.event;
            self.publish(t, ev);
        }
        for ts in venue_rejections {
            let now = self.instant(ts);
            if let Some(p) = &mut self.policy
                && let Some(t) = p.observe_rejection(now)
            {
                self.trip_request(t);
            }
        }
        for (kind, strategy, ts, detail) in errors {
            let now = self.instant(ts);
            self.error(kind, strategy, now, &detail);
        }
        // After the publishes: the fill or rejection is on the bus (and in the journal)
        // whatever the strategy did with it.
        for i in panicked {
            self.strategy_panicked(i);
        }
        callbacks.dedup();
        for i in callbacks {
            self.drain_after_callback(i);
        }
    }

    fn trip(&mut self, scope: Scope, reason: &str) {
        self.trip_request(TriggerRequest::new(
            scope,
            Mode::Halt,
            reason,
            "trading-engine",
        ));
    }

    fn trip_request(&mut self, req: TriggerRequest) {
        let before = self.kill_switch.status().counters.triggers;
        self.kill_switch.trigger(req);
        if self.kill_switch.status().counters.triggers != before {
            self.kill_switch_trips += 1;
        }
    }

    fn gate(&self, venue: usize, strategy: usize, instrument: &InstrumentId) -> GateState {
        self.kill_switch.check(&Target {
            venue: self.venues[venue].name.as_str(),
            strategy: self.strategies[strategy].id.as_str(),
            instrument: instrument.symbol.as_str(),
        })
    }

    /// React to the kill switch: on a trigger, cancel open orders in the scope (halt,
    /// flatten) and for flatten send closing orders through the guard; on a reset, re-arm
    /// the loss-limit trips. Then tell every strategy.
    pub fn on_control(&mut self, c: &ControlEnvelope) {
        let k = match &c.event {
            ControlEvent::KillSwitch(k) => k,
            ControlEvent::Breaker(t) => {
                // The policy's breaker-open rule: open since now (event time), or closed.
                // Open from the first opening until it closes again: half-open probes
                // and re-openings in between keep the first time.
                use switchyard::breaker::BreakerState as B;
                let shut = |b: B| matches!(b, B::Closed | B::Disabled);
                let now = self.instant(self.last_ts);
                if let Some(p) = &mut self.policy {
                    if shut(t.to) {
                        p.observe_breaker(&t.name, None);
                    } else if shut(t.from) {
                        p.observe_breaker(&t.name, Some(now));
                    }
                }
                return;
            }
            ControlEvent::Lifecycle {
                component,
                to,
                detail,
                ..
            } if to == "failed" || to == "degraded" => {
                // A task failed (restarting: degraded; for good: failed): an error, at
                // the last event's time.
                let now = self.instant(self.last_ts);
                let detail = format!("{component}: {}", detail.as_deref().unwrap_or(to));
                self.error("component_failure", None, now, &detail);
                // The policy's escalation rule: a component gave up.
                let fire = if to == "failed" {
                    self.policy
                        .as_mut()
                        .and_then(|p| p.on_escalation(component))
                } else {
                    None
                };
                if let Some(t) = fire {
                    self.trip_request(t);
                }
                return;
            }
            _ => return,
        };
        match k.record.action {
            AuditAction::Triggered | AuditAction::Escalated => self.close_gated(c.seq),
            AuditAction::Reset => {
                // Every automatic trigger protects again after an operator reset.
                if let Some(p) = &mut self.policy {
                    p.rearm();
                }
                self.loss_tripped = false;
                for s in &mut self.strategies {
                    s.loss_tripped = false;
                }
            }
            AuditAction::RepeatTrigger | AuditAction::ResetRefused { .. } => return,
        }
        for i in 0..self.strategies.len() {
            let s = &mut self.strategies[i];
            if s.call(|st, ctx| st.on_gate_change(ctx)) {
                self.strategy_panicked(i);
            }
            self.drain_after_callback(i);
        }
    }

    fn close_gated(&mut self, seq: u64) {
        let ts = self.last_ts;
        let mut ids: Vec<(ClientOrderId, usize)> = self
            .open
            .iter()
            .filter(|(_, o)| self.gate(o.venue, o.strategy, &o.instrument) != GateState::Open)
            .map(|(id, o)| (id.clone(), o.venue))
            .collect();
        // The map's order is arbitrary: cancel in id order, the same in every replay.
        ids.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for (id, v) in ids {
            let mut out = Vec::new();
            self.venues[v].venue.cancel(&id, ts, &mut out);
            self.on_exec(out);
        }
        self.start_flattens(seq);
    }

    /// Counters, positions and P&L, in total and per strategy.
    pub fn view(&self) -> EngineView {
        let mut stats = EngineStats::default();
        let strategies: Vec<StrategyView> = self
            .strategies
            .iter()
            .enumerate()
            .map(|(i, s)| {
                stats.add(&s.stats);
                StrategyView {
                    name: s.id.to_string(),
                    stats: s.stats.clone(),
                    positions: view::positions(&s.book),
                    total_pnl: s.book.total_pnl().ok(),
                    realised_pnl: s.book.realised_pnl().ok(),
                    open_orders: self.open.values().filter(|o| o.strategy == i).count(),
                    own_limits: s.limits.is_some(),
                    panicked: s.panicked.clone(),
                }
            })
            .collect();
        stats.market_events = self.market_events;
        stats.kill_switch_trips = self.kill_switch_trips;
        for (e, n) in &self.errors {
            *stats.errors.entry(e.clone()).or_default() += n;
        }
        let pf = self.guard.portfolio();
        let t = self.tick_to_order.summary();
        let us = |ns: u64| ns as f64 / 1_000.0;
        EngineView {
            stats,
            positions: view::positions(pf),
            total_pnl: pf.total_pnl().ok(),
            realised_pnl: pf.realised_pnl().ok(),
            open_orders: self.open.len(),
            tick_to_order_us: (us(t.p50_ns), us(t.p99_ns), us(t.max_ns)),
            tick_to_order_samples: t.count,
            strategies,
            flatten_failed: self.flatten_failures(),
        }
    }
}

fn refused(
    req: &OrderRequest,
    reason: RejectReason,
    message: String,
    ts: Timestamp,
) -> OrderRejected {
    OrderRejected {
        client_order_id: req.client_order_id.clone(),
        strategy: req.strategy.clone(),
        instrument: req.instrument.clone(),
        reason,
        message,
        ts_event: ts,
    }
}

fn ev_ts(ev: &ExecEvent) -> Timestamp {
    match ev {
        ExecEvent::Accepted { ts_event, .. }
        | ExecEvent::Canceled { ts_event, .. }
        | ExecEvent::CancelRejected { ts_event, .. } => *ts_event,
        ExecEvent::Rejected(r) => r.ts_event,
        ExecEvent::Filled(f) => f.ts_event,
    }
}

/// The engine shared between its bus handler and whoever reads its view.
pub type SharedEngine = Arc<std::sync::Mutex<EngineCore>>;
