//! Flatten: closing the positions a kill-switch trigger says to flatten, with bounded
//! retries, and an alert naming what stays open.
//!
//! When a trigger (or escalation) sets a gate to `Flatten`, every strategy's non-zero
//! position it covers becomes a *pending flatten*. On that control event and then on
//! every market event (and every silence tick), the engine sends an IOC market order
//! for the whole position through the usual chain (the guard lets reducing orders pass
//! under flatten). A closing order refused — by the rate limit, the breaker, a venue — or
//! only partly filled is sent again, at most every [`RETRY_EVERY`] of event time, up to
//! [`MAX_ATTEMPTS`] orders. A position flatten cannot close is an **alert**, once — as
//! soon as the attempts are spent, or, while a stricter trigger halts it (no closing
//! order may pass), [`DEADLINE`] of event time after the trigger: logged at error,
//! published as a critical
//! [`Alert`](switchyard::control::Alert), and listed in the engine's view
//! (`flatten_failed`: strategy, instrument, quantity left; shown by `/status` and as
//! `switchyard_flatten_open_positions`). A pending flatten that no active trigger asks
//! for any more (a reset) is dropped; under a stricter gate (`Halted`) it waits, and is
//! alerted on at its deadline like any other.

use std::time::Duration;

use switchyard::Timestamp;
use switchyard::control::{Alert, ControlEvent, Severity};
use switchyard::kill_switch::{GateState, Mode, Target};

use super::EngineCore;
use crate::model::{ClientOrderId, InstrumentId, OrderRequest, OrderType, Side, TimeInForce};
use crate::num::Quantity;

/// Closing orders sent for one position before giving up.
pub const MAX_ATTEMPTS: u32 = 10;

/// Event time after the trigger by which a position must be flat.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Event time between two closing orders for one position (a refusal by the rate limit
/// or an open breaker needs time to pass, not more events).
pub const RETRY_EVERY: Duration = Duration::from_millis(250);

/// One position being closed.
#[derive(Clone, Debug)]
pub(super) struct PendingFlatten {
    strategy: usize,
    instrument: InstrumentId,
    since: Timestamp,
    seq: u64,
    attempts: u32,
    last_attempt: Option<Timestamp>,
    order: Option<ClientOrderId>,
    alerted: bool,
}

/// A position a flatten did not close, for the view.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FlattenFailure {
    /// The strategy.
    pub strategy: String,
    /// The instrument.
    pub instrument: String,
    /// The signed quantity still open.
    pub quantity: Quantity,
    /// Closing orders sent.
    pub attempts: u32,
}

impl EngineCore {
    /// Registers every position the gate now says to flatten, then works on them.
    pub(super) fn start_flattens(&mut self, seq: u64) {
        let ts = self.last_ts;
        for i in 0..self.strategies.len() {
            let open: Vec<InstrumentId> = self.strategies[i]
                .book
                .positions()
                .filter(|p| p.quantity != Quantity::ZERO)
                .map(|p| p.instrument.clone())
                .collect();
            for instrument in open {
                if !self.flatten_asked(i, &instrument) {
                    continue;
                }
                let known = self
                    .flattens
                    .iter()
                    .any(|f| f.strategy == i && f.instrument == instrument);
                if !known {
                    self.flattens.push(PendingFlatten {
                        strategy: i,
                        instrument,
                        since: ts,
                        seq,
                        attempts: 0,
                        last_attempt: None,
                        order: None,
                        alerted: false,
                    });
                }
            }
        }
        self.work_flattens();
    }

    /// Sends the next closing order of each pending flatten that needs one; drops those
    /// done or no longer asked for; alerts on those past their bounds.
    pub(super) fn work_flattens(&mut self) {
        if self.flattens.is_empty() {
            return;
        }
        let ts = self.last_ts;
        let mut pending = std::mem::take(&mut self.flattens);
        pending.retain_mut(|f| {
            let qty = self.strategies[f.strategy].book.quantity(&f.instrument);
            let Some(v) = self.venue_of(&f.instrument) else { return false };
            let gate = self.gate(v, f.strategy, &f.instrument);
            if qty == Quantity::ZERO || !self.flatten_asked(f.strategy, &f.instrument) {
                return false;
            }
            let working = f.order.as_ref().is_some_and(|id| self.open.contains_key(id));
            if working {
                return true;
            }
            let late = ts.saturating_duration_since(f.since) >= DEADLINE;
            let due = f
                .last_attempt
                .is_none_or(|t| ts.saturating_duration_since(t) >= RETRY_EVERY);
            if gate == GateState::Flatten && f.attempts < MAX_ATTEMPTS {
                if due {
                    f.attempts += 1;
                    f.last_attempt = Some(ts);
                    let id = ClientOrderId::new(format!(
                        "flatten-{}-{}-{}-{}",
                        self.strategies[f.strategy].id,
                        f.instrument.symbol.as_str(),
                        f.seq,
                        f.attempts
                    ));
                    let req = OrderRequest {
                        client_order_id: id.clone(),
                        strategy: self.strategies[f.strategy].id.clone(),
                        instrument: f.instrument.clone(),
                        side: if qty > Quantity::ZERO { Side::Sell } else { Side::Buy },
                        quantity: qty.checked_abs().unwrap_or(Quantity::ZERO),
                        order_type: OrderType::Market,
                        time_in_force: TimeInForce::Ioc,
                    };
                    f.order = Some(id);
                    let now = self.instant(ts);
                    self.submit(f.strategy, req, ts, now, None);
                }
            } else if (late || f.attempts >= MAX_ATTEMPTS) && !f.alerted {
                f.alerted = true;
                let message = format!(
                    "flatten left {} {qty} open for strategy {} after {} closing orders",
                    f.instrument, self.strategies[f.strategy].id, f.attempts
                );
                tracing::error!(instrument = %f.instrument, strategy = %self.strategies[f.strategy].id, %qty, attempts = f.attempts, "flatten did not close the position");
                self.bus.publish_control(ControlEvent::Alert(Alert::Other {
                    severity: Severity::Critical,
                    source: "trading-engine".into(),
                    message,
                }));
            }
            true
        });
        // Orders sent above may have added (none do) or settled flattens; keep both.
        pending.append(&mut self.flattens);
        self.flattens = pending;
    }

    /// Whether an active trigger asks to flatten strategy `i`'s position in
    /// `instrument` (whatever stricter trigger may also cover it).
    fn flatten_asked(&self, i: usize, instrument: &InstrumentId) -> bool {
        let target = Target {
            venue: instrument.venue.as_str(),
            strategy: self.strategies[i].id.as_str(),
            instrument: instrument.symbol.as_str(),
        };
        self.kill_switch
            .active()
            .iter()
            .any(|a| a.mode == Mode::Flatten && a.scope.covers(&target))
    }

    /// The positions flatten gave up on.
    pub(super) fn flatten_failures(&self) -> Vec<FlattenFailure> {
        self.flattens
            .iter()
            .filter(|f| f.alerted)
            .map(|f| FlattenFailure {
                strategy: self.strategies[f.strategy].id.to_string(),
                instrument: f.instrument.to_string(),
                quantity: self.strategies[f.strategy].book.quantity(&f.instrument),
                attempts: f.attempts,
            })
            .collect()
    }
}
