//! [`KillSwitch`]: the order gate, its triggers, resets and audit.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::audit::{
    ActiveTrigger, AuditAction, AuditLog, AuditRecord, KillSwitchCounters, KillSwitchEvent,
    KillSwitchStatus, RefusalReason,
};
use super::secret::OperatorSecret;
use super::{GateState, Mode, Scope, Target};
use crate::breaker::duration_format;
use crate::clock::{Clock, Timestamp};

/// At most one "kill switch triggered again" warning per scope within this much of the
/// kill switch's clock; the others are logged at `debug`.
const REPEAT_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The largest audit ring a configuration may ask for.
pub const MAX_AUDIT_CAPACITY: usize = 1_000_000;

/// Configuration of a [`KillSwitch`]. Durations as in
/// [`BreakerConfig`](crate::breaker::BreakerConfig) (`"1s"`, `"250ms"`, or integer ms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KillSwitchConfig {
    /// How many audit records are kept in memory (1 ..= 1 000 000). Default 1000.
    pub audit_capacity: usize,
    /// Consecutive wrong secrets before resets are locked out (≥ 1). Default 3.
    pub max_reset_failures: u32,
    /// The first lockout; each further one doubles, up to `max_lockout`. Default 1 s.
    #[serde(with = "duration_format")]
    pub lockout: Duration,
    /// The longest lockout (≥ `lockout`). Default 5 min.
    #[serde(with = "duration_format")]
    pub max_lockout: Duration,
}

impl Default for KillSwitchConfig {
    fn default() -> Self {
        KillSwitchConfig {
            audit_capacity: 1000,
            max_reset_failures: 3,
            lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(300),
        }
    }
}

/// A [`KillSwitchConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KillSwitchConfigError {
    /// A field has a value the kill switch cannot work with.
    #[error("invalid kill switch config: `{field}` {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl KillSwitchConfig {
    /// Check the configuration; the error names the offending field.
    pub fn validate(&self) -> Result<(), KillSwitchConfigError> {
        let invalid = |field, problem: &str| {
            Err(KillSwitchConfigError::Invalid {
                field,
                problem: problem.to_owned(),
            })
        };
        if self.audit_capacity == 0 || self.audit_capacity > MAX_AUDIT_CAPACITY {
            return invalid("audit_capacity", "must be in 1..=1000000");
        }
        if self.max_reset_failures == 0 {
            return invalid("max_reset_failures", "must be at least 1");
        }
        if self.lockout.is_zero() {
            return invalid("lockout", "must be greater than zero");
        }
        if self.max_lockout < self.lockout {
            return invalid("max_lockout", "must be at least lockout");
        }
        Ok(())
    }
}

/// A request to close the gate for a scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerRequest {
    /// What to cover.
    pub scope: Scope,
    /// What to do there.
    pub mode: Mode,
    /// Why (kept in the audit and the status).
    pub reason: String,
    /// Who or what asked (an operator, a policy rule, a component).
    pub source: String,
}

impl TriggerRequest {
    /// A request.
    pub fn new(
        scope: Scope,
        mode: Mode,
        reason: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        TriggerRequest {
            scope,
            mode,
            reason: reason.into(),
            source: source.into(),
        }
    }
}

/// What [`KillSwitch::trigger`] did. In every case the gate for the scope is closed
/// when `trigger` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerOutcome {
    /// The scope was not active; now it is.
    Engaged,
    /// The scope was already active with this mode (or a stricter one); nothing changed
    /// but the audit.
    AlreadyActive {
        /// The active mode.
        mode: Mode,
        /// The reason of the trigger that engaged the scope.
        first_reason: String,
    },
    /// The scope was already active with a laxer mode: the mode was raised, the first
    /// reason kept.
    Escalated {
        /// The mode before.
        from: Mode,
        /// The mode now.
        to: Mode,
        /// The reason of the trigger that engaged the scope.
        first_reason: String,
    },
}

/// What a successful [`KillSwitch::reset`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResetOutcome {
    /// The triggers that were cleared (empty if the scope was not active).
    pub cleared: Vec<ActiveTrigger>,
    /// The triggers still active.
    pub still_active: Vec<ActiveTrigger>,
}

/// Why a reset was refused. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetError {
    /// No operator secret is configured, so no reset is possible.
    #[error("kill switch reset refused: no operator secret is configured")]
    NoSecretConfigured,
    /// The presented secret is wrong.
    #[error(
        "kill switch reset refused: wrong operator secret ({consecutive_failures} consecutive \
         failures{})",
        lockout_note(.locked_out_for)
    )]
    WrongSecret {
        /// Consecutive wrong secrets, this one included.
        consecutive_failures: u32,
        /// If this failure started a lockout, its length.
        locked_out_for: Option<Duration>,
    },
    /// Too many wrong secrets: every attempt, right or wrong, is refused until the
    /// lockout ends.
    #[error(
        "kill switch reset refused: locked out after repeated wrong secrets; retry after \
         {retry_after:?}"
    )]
    LockedOut {
        /// Time left in the lockout.
        retry_after: Duration,
    },
}

fn lockout_note(locked_out_for: &Option<Duration>) -> String {
    match locked_out_for {
        Some(d) => format!("; resets locked out for {d:?}"),
        None => String::new(),
    }
}

impl ResetError {
    fn refusal_reason(&self) -> RefusalReason {
        match self {
            ResetError::NoSecretConfigured => RefusalReason::NoSecretConfigured,
            ResetError::WrongSecret { .. } => RefusalReason::WrongSecret,
            ResetError::LockedOut { .. } => RefusalReason::LockedOut,
        }
    }
}

/// Counts consecutive wrong secrets and locks resets out after too many.
///
/// After `max_failures` consecutive wrong secrets, resets are locked out for `lockout`;
/// while the count stays at or above `max_failures`, every further wrong secret (once the
/// lockout has ended) locks out again for twice as long, up to `max_lockout`. A correct
/// secret clears everything.
#[derive(Debug)]
pub(crate) struct ResetLimiter {
    max_failures: u32,
    lockout: Duration,
    max_lockout: Duration,
    failures: u32,
    lockouts: u32,
    locked_until: Option<Instant>,
}

impl ResetLimiter {
    pub(crate) fn new(config: &KillSwitchConfig) -> Self {
        ResetLimiter {
            max_failures: config.max_reset_failures,
            lockout: config.lockout,
            max_lockout: config.max_lockout,
            failures: 0,
            lockouts: 0,
            locked_until: None,
        }
    }

    /// `Err(retry_after)` while locked out.
    pub(crate) fn check(&self, now: Instant) -> Result<(), Duration> {
        match self.locked_until {
            Some(until) if now < until => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Record a wrong secret; returns the lockout it starts, if any.
    pub(crate) fn failure(&mut self, now: Instant) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if self.failures < self.max_failures {
            return None;
        }
        let factor = 1u32.checked_shl(self.lockouts).unwrap_or(u32::MAX);
        let d = self
            .lockout
            .checked_mul(factor)
            .unwrap_or(self.max_lockout)
            .min(self.max_lockout);
        self.lockouts = self.lockouts.saturating_add(1);
        self.locked_until = Some(now + d);
        Some(d)
    }

    /// Record a correct secret.
    pub(crate) fn success(&mut self) {
        self.failures = 0;
        self.lockouts = 0;
        self.locked_until = None;
    }

    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

/// A function called after every audited action of a [`KillSwitch`].
pub type KillSwitchListener = Arc<dyn Fn(&KillSwitchEvent) + Send + Sync>;

struct Inner {
    /// `true` while any trigger is active: the fast path of `check`.
    engaged: AtomicBool,
    /// Active triggers, one per scope. Writers set `engaged` while holding the lock.
    active: RwLock<Vec<ActiveTrigger>>,
    audit: Mutex<AuditLog>,
    limiter: Mutex<ResetLimiter>,
    secret: Option<OperatorSecret>,
    clock: Arc<dyn Clock>,
    listener: RwLock<Option<KillSwitchListener>>,
    /// When the last "triggered again" warning was logged, per scope.
    repeat_warned: Mutex<Vec<(Scope, Timestamp)>>,
    triggers: AtomicU64,
    repeat_triggers: AtomicU64,
    resets: AtomicU64,
    refused_resets: AtomicU64,
}

/// The kill switch: a scoped order gate. Cloning shares the same switch.
///
/// See the [module docs](super) for the contract.
#[derive(Clone)]
pub struct KillSwitch {
    inner: Arc<Inner>,
}

impl fmt::Debug for KillSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KillSwitch")
            .field("engaged", &self.is_engaged())
            .field("active", &*self.read_active())
            .field("secret", &self.inner.secret)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; a poisoned one is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KillSwitch {
    /// A kill switch with no active trigger. Without a `secret`, every reset is refused
    /// with [`ResetError::NoSecretConfigured`]. `clock` stamps audit records.
    pub fn new(
        config: KillSwitchConfig,
        secret: Option<OperatorSecret>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KillSwitchConfigError> {
        config.validate()?;
        Ok(KillSwitch {
            inner: Arc::new(Inner {
                engaged: AtomicBool::new(false),
                active: RwLock::new(Vec::new()),
                audit: Mutex::new(AuditLog::new(config.audit_capacity)),
                limiter: Mutex::new(ResetLimiter::new(&config)),
                secret,
                clock,
                listener: RwLock::new(None),
                repeat_warned: Mutex::new(Vec::new()),
                triggers: AtomicU64::new(0),
                repeat_triggers: AtomicU64::new(0),
                resets: AtomicU64::new(0),
                refused_resets: AtomicU64::new(0),
            }),
        })
    }

    fn read_active(&self) -> RwLockReadGuard<'_, Vec<ActiveTrigger>> {
        self.inner
            .active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_active(&self) -> RwLockWriteGuard<'_, Vec<ActiveTrigger>> {
        self.inner
            .active
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What the gate says for `target`: [`GateState::Open`] after one atomic load when no
    /// trigger is active; otherwise the strictest state of the active triggers whose
    /// scope covers `target`.
    #[inline]
    pub fn check(&self, target: &Target<'_>) -> GateState {
        if !self.inner.engaged.load(Ordering::Acquire) {
            return GateState::Open;
        }
        self.check_slow(target)
    }

    #[cold]
    fn check_slow(&self, target: &Target<'_>) -> GateState {
        self.read_active()
            .iter()
            .filter(|a| a.scope.covers(target))
            .map(|a| GateState::from(a.mode))
            .max()
            .unwrap_or(GateState::Open)
    }

    /// Whether any trigger is active.
    pub fn is_engaged(&self) -> bool {
        self.inner.engaged.load(Ordering::Acquire)
    }

    /// The active triggers, in the order they were first triggered.
    pub fn active(&self) -> Vec<ActiveTrigger> {
        self.read_active().clone()
    }

    /// Set (or replace) the listener called after every audited action, synchronously,
    /// on the thread that acted, with no lock held.
    pub fn set_listener(&self, listener: KillSwitchListener) {
        *self
            .inner
            .listener
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(listener);
    }

    /// Close the gate for `request.scope`. When this returns, every [`check`](Self::check)
    /// that starts afterwards reflects it.
    ///
    /// Triggering a scope that is already active keeps its first reason and source; a
    /// stricter mode raises the scope's mode ([`TriggerOutcome::Escalated`]), a laxer or
    /// equal one changes nothing ([`TriggerOutcome::AlreadyActive`]). Different scopes
    /// accumulate.
    ///
    /// Every repeat (escalations included) is counted in
    /// [`KillSwitchCounters::repeat_triggers`]. An escalation is audited, passed to the
    /// listener and logged at `warn`. A repeat that is **identical** — same mode as the
    /// scope's current mode and same reason as its first trigger (a policy rule firing
    /// on every observation) — is only counted: no audit record, no listener call, a
    /// `debug` log line. Any other repeat (another reason, or a laxer mode) is audited
    /// ([`AuditAction::RepeatTrigger`]) and passed to the listener as before, but its
    /// `warn` log line is rate-limited: at most one "kill switch triggered again"
    /// warning per scope per 10 s of the kill switch's clock, the others at `debug`.
    pub fn trigger(&self, request: TriggerRequest) -> TriggerOutcome {
        let TriggerRequest {
            scope,
            mode,
            reason,
            source,
        } = request;
        let (outcome, event) = {
            let mut active = self.write_active();
            let at = self.inner.clock.now();
            if let Some(existing) = active
                .iter()
                .find(|a| a.scope == scope && a.mode == mode && a.reason == reason)
            {
                let outcome = TriggerOutcome::AlreadyActive {
                    mode: existing.mode,
                    first_reason: existing.reason.clone(),
                };
                drop(active);
                self.inner.repeat_triggers.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    scope = ?scope, mode = ?mode, reason = %reason, source = %source,
                    "kill switch triggered again, identically (counted, not audited)"
                );
                return outcome;
            }
            let (outcome, action) = match active.iter_mut().find(|a| a.scope == scope) {
                None => {
                    active.push(ActiveTrigger {
                        scope: scope.clone(),
                        mode,
                        reason: reason.clone(),
                        source: source.clone(),
                        since: at,
                    });
                    // Set while holding the write lock: a `check` that sees the flag
                    // then waits for the lock and sees the trigger.
                    self.inner.engaged.store(true, Ordering::SeqCst);
                    (TriggerOutcome::Engaged, AuditAction::Triggered)
                }
                Some(existing) if GateState::from(mode) > GateState::from(existing.mode) => {
                    let from = existing.mode;
                    existing.mode = mode;
                    (
                        TriggerOutcome::Escalated {
                            from,
                            to: mode,
                            first_reason: existing.reason.clone(),
                        },
                        AuditAction::Escalated,
                    )
                }
                Some(existing) => (
                    TriggerOutcome::AlreadyActive {
                        mode: existing.mode,
                        first_reason: existing.reason.clone(),
                    },
                    AuditAction::RepeatTrigger,
                ),
            };
            let record = lock(&self.inner.audit).push(AuditRecord {
                seq: 0,
                at,
                action,
                scope: Some(scope),
                mode: Some(mode),
                reason,
                source_or_who: source,
            });
            (
                outcome,
                KillSwitchEvent {
                    record,
                    active: active.clone(),
                },
            )
        };
        let r = &event.record;
        match &outcome {
            TriggerOutcome::Engaged => {
                self.inner.triggers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    scope = ?r.scope, mode = ?r.mode, reason = %r.reason,
                    source = %r.source_or_who, "kill switch triggered"
                );
            }
            TriggerOutcome::Escalated { from, to, .. } => {
                self.inner.repeat_triggers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    scope = ?r.scope, from = ?from, to = ?to, reason = %r.reason,
                    source = %r.source_or_who, "kill switch escalated"
                );
            }
            TriggerOutcome::AlreadyActive { .. } => {
                self.inner.repeat_triggers.fetch_add(1, Ordering::Relaxed);
                let scope = r.scope.as_ref().unwrap_or(&Scope::All);
                if self.repeat_warn_due(scope, r.at) {
                    tracing::warn!(
                        scope = ?r.scope, mode = ?r.mode, reason = %r.reason,
                        source = %r.source_or_who, "kill switch triggered again (already active)"
                    );
                } else {
                    tracing::debug!(
                        scope = ?r.scope, mode = ?r.mode, reason = %r.reason,
                        source = %r.source_or_who, "kill switch triggered again (already active)"
                    );
                }
            }
        }
        self.notify(&event);
        outcome
    }

    /// True if a "triggered again" warning for `scope` is due at `now` (none within the
    /// last [`REPEAT_WARN_INTERVAL`]); if so, records `now` as the last one.
    fn repeat_warn_due(&self, scope: &Scope, now: Timestamp) -> bool {
        let mut warned = lock(&self.inner.repeat_warned);
        match warned.iter_mut().find(|(s, _)| s == scope) {
            Some((_, last)) if now.saturating_duration_since(*last) < REPEAT_WARN_INTERVAL => false,
            Some((_, last)) => {
                *last = now;
                true
            }
            None => {
                warned.push((scope.clone(), now));
                true
            }
        }
    }

    /// Open the gate again: for `scope`, or for every scope when `None`.
    ///
    /// Needs the configured operator secret (compared in constant time). Refused, and
    /// audited, when no secret is configured, when the secret is wrong (counted; after
    /// `max_reset_failures` consecutive wrong secrets resets are locked out for a doubling
    /// time), and during a lockout (even with the right secret). `now` drives the
    /// lockout. A successful reset clears the failure count.
    pub fn reset(
        &self,
        scope: Option<Scope>,
        presented_secret: &str,
        who: &str,
        now: Instant,
    ) -> Result<ResetOutcome, ResetError> {
        // Held throughout: resets are serialised.
        let mut limiter = lock(&self.inner.limiter);
        let verdict = match &self.inner.secret {
            None => Err(ResetError::NoSecretConfigured),
            Some(secret) => match limiter.check(now) {
                Err(retry_after) => Err(ResetError::LockedOut { retry_after }),
                Ok(()) if secret.matches(presented_secret) => {
                    limiter.success();
                    Ok(())
                }
                Ok(()) => {
                    let locked_out_for = limiter.failure(now);
                    Err(ResetError::WrongSecret {
                        consecutive_failures: limiter.failures(),
                        locked_out_for,
                    })
                }
            },
        };
        drop(limiter);
        match verdict {
            Err(error) => {
                self.refuse(scope, who, &error);
                Err(error)
            }
            Ok(()) => Ok(self.clear(scope, who)),
        }
    }

    fn refuse(&self, scope: Option<Scope>, who: &str, error: &ResetError) {
        self.inner.refused_resets.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(scope = ?scope, who = %who, error = %error, "kill switch reset refused");
        let event = {
            let active = self.read_active();
            let record = lock(&self.inner.audit).push(AuditRecord {
                seq: 0,
                at: self.inner.clock.now(),
                action: AuditAction::ResetRefused {
                    reason: error.refusal_reason(),
                },
                scope,
                mode: None,
                reason: error.to_string(),
                source_or_who: who.to_owned(),
            });
            KillSwitchEvent {
                record,
                active: active.clone(),
            }
        };
        self.notify(&event);
    }

    fn clear(&self, scope: Option<Scope>, who: &str) -> ResetOutcome {
        let (outcome, event) = {
            let mut active = self.write_active();
            let (cleared, kept): (Vec<_>, Vec<_>) = active
                .drain(..)
                .partition(|a| scope.as_ref().is_none_or(|s| *s == a.scope));
            *active = kept;
            lock(&self.inner.repeat_warned).retain(|(s, _)| active.iter().any(|a| a.scope == *s));
            if active.is_empty() {
                self.inner.engaged.store(false, Ordering::SeqCst);
            }
            let reason = if cleared.is_empty() {
                "reset: nothing to clear".to_owned()
            } else {
                let scopes: Vec<String> =
                    cleared.iter().map(|a| format!("{:?}", a.scope)).collect();
                format!("reset: cleared {}", scopes.join(", "))
            };
            let record = lock(&self.inner.audit).push(AuditRecord {
                seq: 0,
                at: self.inner.clock.now(),
                action: AuditAction::Reset,
                scope,
                mode: None,
                reason,
                source_or_who: who.to_owned(),
            });
            (
                ResetOutcome {
                    cleared,
                    still_active: active.clone(),
                },
                KillSwitchEvent {
                    record,
                    active: active.clone(),
                },
            )
        };
        self.inner.resets.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            scope = ?event.record.scope, who = %who, reason = %event.record.reason,
            still_active = outcome.still_active.len(), "kill switch reset"
        );
        self.notify(&event);
        outcome
    }

    fn notify(&self, event: &KillSwitchEvent) {
        let listener = self
            .inner
            .listener
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(listener) = listener {
            listener(event);
        }
    }

    /// The audit records kept (the last `audit_capacity`), oldest first.
    pub fn audit(&self) -> Vec<AuditRecord> {
        lock(&self.inner.audit).to_vec()
    }

    /// The counters.
    pub fn counters(&self) -> KillSwitchCounters {
        KillSwitchCounters {
            triggers: self.inner.triggers.load(Ordering::Relaxed),
            repeat_triggers: self.inner.repeat_triggers.load(Ordering::Relaxed),
            resets: self.inner.resets.load(Ordering::Relaxed),
            refused_resets: self.inner.refused_resets.load(Ordering::Relaxed),
        }
    }

    /// A serializable view for a status API.
    pub fn status(&self) -> KillSwitchStatus {
        let consecutive_reset_failures = lock(&self.inner.limiter).failures();
        let active = self.active();
        KillSwitchStatus {
            engaged: !active.is_empty(),
            active,
            counters: self.counters(),
            secret_configured: self.inner.secret.is_some(),
            consecutive_reset_failures,
        }
    }

    /// The clock's current time (the one audit records use).
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeat_warnings_are_rate_limited_per_scope_by_the_clock() {
        let clock = crate::clock::ManualClock::new(Timestamp::from_nanos(0));
        let ks = KillSwitch::new(KillSwitchConfig::default(), None, Arc::new(clock)).unwrap();
        let venue = Scope::Venue("a".into());
        let at = |secs: u64| Timestamp::from_nanos(secs * 1_000_000_000);
        assert!(ks.repeat_warn_due(&venue, at(1)));
        assert!(!ks.repeat_warn_due(&venue, at(2)));
        assert!(!ks.repeat_warn_due(&venue, at(10)));
        // Another scope has its own budget.
        assert!(ks.repeat_warn_due(&Scope::All, at(2)));
        assert!(ks.repeat_warn_due(&venue, at(11)));
        assert!(!ks.repeat_warn_due(&venue, at(20)));
        assert!(ks.repeat_warn_due(&venue, at(21)));
    }

    #[test]
    fn a_reset_scope_warns_again_at_its_next_repeat() {
        let clock = crate::clock::ManualClock::new(Timestamp::from_nanos(0));
        let ks = KillSwitch::new(KillSwitchConfig::default(), None, Arc::new(clock)).unwrap();
        let venue = Scope::Venue("a".into());
        let at = |secs: u64| Timestamp::from_nanos(secs * 1_000_000_000);
        let trigger = || TriggerRequest::new(venue.clone(), Mode::Halt, "r", "t");
        ks.trigger(trigger());
        ks.trigger(TriggerRequest::new(Scope::All, Mode::Halt, "r", "t"));
        assert!(ks.repeat_warn_due(&venue, at(1)));
        assert!(ks.repeat_warn_due(&Scope::All, at(1)));
        // The venue's scope is reset (all stays active): its record goes, all's stays.
        ks.clear(Some(venue.clone()), "op");
        assert!(ks.repeat_warn_due(&venue, at(2)));
        assert!(!ks.repeat_warn_due(&Scope::All, at(2)));
    }

    #[test]
    fn limiter_doubles_up_to_the_max_and_clears_on_success() {
        let config = KillSwitchConfig {
            max_reset_failures: 2,
            lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(5),
            ..Default::default()
        };
        let mut l = ResetLimiter::new(&config);
        let mut now = Instant::now();
        assert_eq!(l.failure(now), None);
        let mut seen = Vec::new();
        for _ in 0..5 {
            let d = l.failure(now).unwrap();
            assert_eq!(l.check(now), Err(d));
            seen.push(d.as_secs());
            now += d;
            assert_eq!(l.check(now), Ok(()));
        }
        assert_eq!(seen, vec![1, 2, 4, 5, 5]);
        l.success();
        assert_eq!(l.failure(now), None);
        assert_eq!(l.failure(now), Some(Duration::from_secs(1)));
    }

    #[test]
    fn config_validation_names_the_field() {
        let bad = KillSwitchConfig {
            max_lockout: Duration::from_millis(1),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("max_lockout")
        );
        let bad = KillSwitchConfig {
            audit_capacity: 0,
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("audit_capacity")
        );
    }
}
