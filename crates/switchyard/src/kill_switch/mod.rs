//! Kill switch: an order gate that closes synchronously, scoped and audited.
//!
//! Generic: it knows scopes ([`Scope`]), modes ([`Mode`]) and gate states
//! ([`GateState`]), nothing about orders or positions. The order path asks
//! [`KillSwitch::check`] about a [`Target`] (venue, strategy, instrument) before each
//! order.
//!
//! # Contract
//!
//! * **`check` is cheap.** With no active trigger it is one atomic load (`Acquire`)
//!   returning [`GateState::Open`]. Otherwise it reads the (small, `RwLock`ed) list of
//!   active triggers and returns the strictest state — `Halted` > `Flatten` >
//!   `ReduceOnly` > `Open` — of the triggers whose scope covers the target
//!   ([`Scope::covers`]).
//! * **`trigger` closes the gate before it returns.** The trigger is in the list and the
//!   "engaged" flag is stored (`SeqCst`, under the write lock) before
//!   [`KillSwitch::trigger`] returns, so any `check` that starts after the return (in
//!   the happens-before sense: same thread, or a thread that learnt of the return
//!   through any synchronisation) is not `Open` for a covered target.
//! * **Repeated triggers keep the first reason.** Triggering an active scope again is
//!   audited ([`AuditAction::RepeatTrigger`]) and changes nothing — unless the mode is
//!   stricter, which raises the scope's mode ([`AuditAction::Escalated`]); the first
//!   reason, source and time stay. Different scopes accumulate. An *identical* repeat
//!   (same mode as the scope's, same reason as its first trigger) is only counted
//!   (`repeat_triggers`): not audited, not passed to the listener, logged at `debug`.
//!   Other repeats' `warn` lines are rate-limited to one per scope per 10 s of the
//!   clock.
//! * **Reset needs the operator secret.** [`KillSwitch::reset`] (one scope, or all)
//!   needs the configured [`OperatorSecret`], compared in constant time. No secret
//!   configured: every reset is refused ([`ResetError::NoSecretConfigured`]). A wrong
//!   secret is refused ([`ResetError::WrongSecret`]) and counted.
//! * **Lockout.** After `max_reset_failures` (default 3) consecutive wrong secrets,
//!   resets are locked out for `lockout` (default 1 s); each further wrong secret after a
//!   lockout ends locks out again for twice as long, up to `max_lockout` (default 5 min).
//!   During a lockout every attempt, even with the right secret, is refused with
//!   [`ResetError::LockedOut`] (`retry_after` says how long). A successful reset clears
//!   the count and the backoff.
//! * **Everything is audited.** Every trigger, non-identical repeated trigger, reset and
//!   refused reset becomes an [`AuditRecord`] (gapless `seq`, time from the injected
//!   [`Clock`](crate::Clock)), kept in a bounded ring ([`KillSwitch::audit`]), passed to
//!   the listener ([`KillSwitch::set_listener`]) with the new active set, and logged with
//!   `tracing::warn!` (repeats rate-limited, see above). The secret is never logged,
//!   audited, or printed: [`OperatorSecret`] formats as `[redacted]` and no error
//!   carries it.
//! * **Automatic triggers** come from a [`KillPolicy`]: synchronous rules that turn
//!   observations (loss, rejection and error rates, breakers open too long, stale market
//!   data, escalated components) into [`TriggerRequest`]s for the caller to pass to
//!   `trigger`.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use switchyard::ManualClock;
//! use switchyard::kill_switch::*;
//!
//! let secret = OperatorSecret::new("correct horse").unwrap();
//! let switch = KillSwitch::new(KillSwitchConfig::default(), Some(secret),
//!                              Arc::new(ManualClock::default())).unwrap();
//! let order = Target { venue: "paper", strategy: "mm", instrument: "BTCUSDT" };
//! assert_eq!(switch.check(&order), GateState::Open);
//!
//! switch.trigger(TriggerRequest::new(Scope::Strategy("mm".into()), Mode::Halt,
//!                                    "loss limit", "risk"));
//! assert_eq!(switch.check(&order), GateState::Halted);
//!
//! let now = Instant::now();
//! assert!(switch.reset(None, "guess", "alice", now).is_err());
//! switch.reset(None, "correct horse", "alice", now).unwrap();
//! assert_eq!(switch.check(&order), GateState::Open);
//! assert_eq!(switch.audit().len(), 3);
//! ```

mod audit;
mod policy;
mod secret;
mod switch;

pub use audit::{
    ActiveTrigger, AuditAction, AuditRecord, KillSwitchCounters, KillSwitchEvent, KillSwitchStatus,
    RefusalReason,
};
pub use policy::{
    BreakerOpenRule, EscalationRule, KillPolicy, KillPolicyConfig, LossLimitRule,
    PolicyConfigError, RateRule, StaleDataRule,
};
pub use secret::{OperatorSecret, SecretError, constant_time_eq};
pub use switch::{
    KillSwitch, KillSwitchConfig, KillSwitchConfigError, KillSwitchListener, MAX_AUDIT_CAPACITY,
    ResetError, ResetOutcome, TriggerOutcome, TriggerRequest,
};

use serde::{Deserialize, Serialize};

/// What a kill-switch trigger covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Scope {
    /// Every venue, strategy and instrument.
    All,
    /// One venue (exchange), by name.
    Venue(String),
    /// One strategy, by name.
    Strategy(String),
    /// One instrument, by symbol.
    Instrument(String),
}

/// What a trigger does to the orders in its scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Cancel open orders and refuse new ones.
    Halt,
    /// Only orders that shrink a position pass.
    ReduceOnly,
    /// Cancel open orders, then close positions with risk-checked orders; new opening
    /// orders are refused.
    Flatten,
}

/// The order an order gate is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// Venue (exchange) name.
    pub venue: &'a str,
    /// Strategy name.
    pub strategy: &'a str,
    /// Instrument symbol.
    pub instrument: &'a str,
}

/// What the gate says for a [`Target`]: the strictest mode of every active trigger whose
/// scope covers it. Ordered by strictness: `Open < ReduceOnly < Flatten < Halted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateState {
    /// No trigger covers the target: orders pass (subject to risk checks).
    Open,
    /// Only position-reducing orders pass.
    ReduceOnly,
    /// Only position-reducing orders pass, and the owner should flatten the position.
    Flatten,
    /// Nothing passes.
    Halted,
}

impl Scope {
    /// Whether this scope covers `target`: `All` covers everything, the others cover a
    /// target with the same venue, strategy or instrument name.
    pub fn covers(&self, target: &Target<'_>) -> bool {
        match self {
            Scope::All => true,
            Scope::Venue(v) => v == target.venue,
            Scope::Strategy(s) => s == target.strategy,
            Scope::Instrument(i) => i == target.instrument,
        }
    }
}

impl From<Mode> for GateState {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Halt => GateState::Halted,
            Mode::Flatten => GateState::Flatten,
            Mode::ReduceOnly => GateState::ReduceOnly,
        }
    }
}

impl GateState {
    /// Whether an order that opens or grows a position may pass.
    pub fn allows_opening(self) -> bool {
        self == GateState::Open
    }

    /// Whether an order that only reduces a position may pass.
    pub fn allows_reducing(self) -> bool {
        self != GateState::Halted
    }
}
