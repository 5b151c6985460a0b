//! [`CircuitBreaker`]: the synchronous state machine. Every decision is a plain method
//! taking the current [`Instant`]; no runtime, no clock reads.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::BreakerConfig;
use super::error::{BreakerConfigError, BreakerOpen};
use super::window::Window;

/// The state of a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// Calls pass; outcomes are recorded and may trip the breaker.
    Closed,
    /// Calls fail fast until the open period ends.
    Open,
    /// A bounded number of probe calls pass; all must succeed to close.
    HalfOpen,
    /// Forced open by an operator: calls fail fast until [`CircuitBreaker::reset`].
    ForcedOpen,
    /// Disabled by an operator: every call passes and no outcome can trip the breaker
    /// (counters still count), until [`CircuitBreaker::reset`].
    Disabled,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
            BreakerState::ForcedOpen => "forced-open",
            BreakerState::Disabled => "disabled",
        })
    }
}

/// Why a breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransitionReason {
    /// `count` consecutive calls failed (closed → open).
    ConsecutiveFailures {
        /// The run of failures.
        count: u32,
    },
    /// `failures` of the `calls` in the window failed (closed → open).
    FailureRate {
        /// Failed calls in the window.
        failures: u32,
        /// Calls in the window.
        calls: u32,
    },
    /// `slow` of the `calls` in the window were slow (closed → open).
    SlowCallRate {
        /// Slow calls in the window.
        slow: u32,
        /// Calls in the window.
        calls: u32,
    },
    /// The open period ended and a call asked to pass (open → half-open).
    OpenDurationElapsed,
    /// A half-open probe failed (half-open → open, with backoff).
    ProbeFailed,
    /// A half-open probe succeeded but was slow (half-open → open, with backoff).
    ProbeSlow,
    /// All `probes` half-open probes succeeded (half-open → closed).
    ProbesSucceeded {
        /// The number of probes.
        probes: u32,
    },
    /// An operator forced the breaker open.
    ForcedOpen,
    /// An operator disabled the breaker.
    Disabled,
    /// An operator reset the breaker to closed.
    Reset,
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionReason::ConsecutiveFailures { count } => {
                write!(f, "{count} consecutive failures")
            }
            TransitionReason::FailureRate { failures, calls } => {
                write!(f, "failure rate {failures}/{calls}")
            }
            TransitionReason::SlowCallRate { slow, calls } => {
                write!(f, "slow-call rate {slow}/{calls}")
            }
            TransitionReason::OpenDurationElapsed => f.write_str("open duration elapsed"),
            TransitionReason::ProbeFailed => f.write_str("half-open probe failed"),
            TransitionReason::ProbeSlow => f.write_str("half-open probe was slow"),
            TransitionReason::ProbesSucceeded { probes } => {
                write!(f, "all {probes} half-open probes succeeded")
            }
            TransitionReason::ForcedOpen => f.write_str("forced open by an operator"),
            TransitionReason::Disabled => f.write_str("disabled by an operator"),
            TransitionReason::Reset => f.write_str("reset by an operator"),
        }
    }
}

/// One state change of a breaker. Serializes without `at` (an [`Instant`] has no wire
/// form); `open_for` says how long an open period lasts when `to` is
/// [`BreakerState::Open`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BreakerTransition {
    /// The breaker's name.
    pub name: Arc<str>,
    /// Sequence number of this transition in the breaker (1, 2, …): listeners called
    /// from different threads may see transitions out of order; this restores it.
    pub seq: u64,
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
    /// Why.
    pub reason: TransitionReason,
    /// When (as passed to the method that caused it).
    #[serde(skip)]
    pub at: Instant,
    /// The length of the open period this transition starts, if it opens the breaker.
    #[serde(serialize_with = "serialize_opt_millis", rename = "open_for_ms")]
    pub open_for: Option<Duration>,
}

fn serialize_opt_millis<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_secs_f64() * 1e3)),
        None => s.serialize_none(),
    }
}

/// Monotonic counters of a breaker.
///
/// With no call in flight, `successes + failures + rejected + ignored == calls`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BreakerCounters {
    /// Every [`CircuitBreaker::try_acquire`] (admitted or rejected).
    pub calls: u64,
    /// Admitted calls that succeeded (slow ones included).
    pub successes: u64,
    /// Admitted calls that failed (timeouts included).
    pub failures: u64,
    /// Successful calls that were slow.
    pub slow_calls: u64,
    /// Calls refused without being made (fail-fast).
    pub rejected: u64,
    /// Failures that were timeouts.
    pub timeouts: u64,
    /// Admitted calls released without an outcome (cancelled or ignored).
    pub ignored: u64,
    /// State changes.
    pub transitions: u64,
}

/// Leave to make one call, from [`CircuitBreaker::try_acquire`]. Hand it back through
/// exactly one of [`CircuitBreaker::on_success`], [`CircuitBreaker::on_failure`],
/// [`CircuitBreaker::on_timeout`] or [`CircuitBreaker::release`]: a half-open breaker
/// holds a probe slot for every permit not handed back.
#[must_use = "report the call's outcome with on_success/on_failure/on_timeout/release"]
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    /// The state period the permit was issued in; outcomes of permits from an earlier
    /// period are counted but do not move the state.
    period: u64,
    probe: bool,
}

impl Permit {
    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// A serializable view of a breaker for a status API.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BreakerSnapshot {
    /// The breaker's name.
    pub name: String,
    /// Its state.
    pub state: BreakerState,
    /// Its counters.
    pub counters: BreakerCounters,
    /// When open: milliseconds until the open period ends (0 when it has ended and the
    /// next call will be a probe).
    pub open_remaining_ms: Option<u64>,
    /// Consecutive re-opens from half-open (the backoff exponent).
    pub consecutive_reopens: u32,
    /// When half-open: probes admitted so far and how many succeeded.
    pub probes_admitted: u32,
    /// When half-open: probes that succeeded so far.
    pub probes_succeeded: u32,
}

/// How many transitions the outbox keeps when nobody drains it.
const OUTBOX_LIMIT: usize = 64;

/// The circuit breaker state machine.
///
/// * **Closed**: calls pass; a failure run of `consecutive_failures`, or a failure or
///   slow-call rate at or above its threshold over the window (once it holds
///   `minimum_calls`), opens it.
/// * **Open**: calls are refused with [`BreakerOpen`] until `open_duration` (times the
///   backoff on consecutive re-opens) has passed; the first call after that moves it to
///   half-open.
/// * **HalfOpen**: at most `half_open_probes` probe calls are admitted in total (which
///   bounds the concurrent ones too; a released probe frees its slot); when all of them
///   succeed it closes, and the first failure (or slow success, when a slow-call rule is
///   set) re-opens it with the next backoff step.
/// * **ForcedOpen** / **Disabled**: operator states, left only by [`reset`](Self::reset).
///
/// Transitions are queued in an outbox (the last 64 kept) drained by
/// [`take_transitions`](Self::take_transitions); the async [`Breaker`](super::Breaker)
/// drains it after every operation.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: Arc<str>,
    config: BreakerConfig,
    state: BreakerState,
    /// Increments on every transition; permits carry the period they were issued in.
    period: u64,
    window: Window,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    reopens: u32,
    probes_admitted: u32,
    probes_succeeded: u32,
    counters: BreakerCounters,
    outbox: Vec<BreakerTransition>,
}

impl CircuitBreaker {
    /// A closed breaker. Fails if the configuration does not [validate](BreakerConfig::validate).
    pub fn new(
        name: impl Into<Arc<str>>,
        config: BreakerConfig,
    ) -> Result<Self, BreakerConfigError> {
        config.validate()?;
        Ok(CircuitBreaker {
            name: name.into(),
            window: Window::new(config.window),
            config,
            state: BreakerState::Closed,
            period: 0,
            consecutive_failures: 0,
            open_until: None,
            reopens: 0,
            probes_admitted: 0,
            probes_succeeded: 0,
            counters: BreakerCounters::default(),
            outbox: Vec::new(),
        })
    }

    /// The breaker's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Its configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Its current state (an expired open period still reads `Open` until the next
    /// [`try_acquire`](Self::try_acquire)).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Its counters.
    pub fn counters(&self) -> BreakerCounters {
        self.counters
    }

    /// When the current open period ends, if open.
    pub fn open_until(&self) -> Option<Instant> {
        self.open_until
    }

    /// Ask to make a call at `now`.
    ///
    /// Open and past its open period, the breaker first moves to half-open and this call
    /// becomes a probe. Refusals are counted in `rejected`.
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, BreakerOpen> {
        self.counters.calls += 1;
        match self.state {
            BreakerState::Closed | BreakerState::Disabled => Ok(Permit {
                period: self.period,
                probe: false,
            }),
            BreakerState::Open => {
                let until = self.open_until.unwrap_or(now);
                if now >= until {
                    self.transition(
                        BreakerState::HalfOpen,
                        TransitionReason::OpenDurationElapsed,
                        now,
                    );
                    self.admit_probe(now)
                } else {
                    self.counters.rejected += 1;
                    Err(self.rejection(Some(until), now))
                }
            }
            BreakerState::HalfOpen => self.admit_probe(now),
            BreakerState::ForcedOpen => {
                self.counters.rejected += 1;
                Err(self.rejection(None, now))
            }
        }
    }

    fn admit_probe(&mut self, now: Instant) -> Result<Permit, BreakerOpen> {
        if self.probes_admitted < self.config.half_open_probes {
            self.probes_admitted += 1;
            Ok(Permit {
                period: self.period,
                probe: true,
            })
        } else {
            self.counters.rejected += 1;
            Err(self.rejection(None, now))
        }
    }

    fn rejection(&self, until: Option<Instant>, now: Instant) -> BreakerOpen {
        BreakerOpen {
            name: self.name.clone(),
            state: self.state,
            until,
            retry_after: until.map(|u| u.saturating_duration_since(now)),
        }
    }

    /// The call behind `permit` succeeded after `elapsed`.
    pub fn on_success(&mut self, permit: Permit, elapsed: Duration, now: Instant) {
        self.counters.successes += 1;
        let slow = self
            .config
            .slow_call_duration
            .is_some_and(|limit| elapsed >= limit);
        if slow {
            self.counters.slow_calls += 1;
        }
        self.record(permit, false, slow, now);
    }

    /// The call behind `permit` failed.
    pub fn on_failure(&mut self, permit: Permit, now: Instant) {
        self.counters.failures += 1;
        self.record(permit, true, false, now);
    }

    /// The call behind `permit` timed out: a failure, also counted in `timeouts`.
    pub fn on_timeout(&mut self, permit: Permit, now: Instant) {
        self.counters.timeouts += 1;
        self.on_failure(permit, now);
    }

    /// Hand a permit back without an outcome (the call was cancelled, or its result says
    /// nothing about the protected service). A half-open probe slot is freed.
    pub fn release(&mut self, permit: Permit, _now: Instant) {
        self.counters.ignored += 1;
        if permit.probe && permit.period == self.period && self.state == BreakerState::HalfOpen {
            self.probes_admitted -= 1;
        }
    }

    fn record(&mut self, permit: Permit, failure: bool, slow: bool, now: Instant) {
        if permit.period != self.period {
            // Issued before the last transition: counted, but it says nothing about the
            // current period.
            return;
        }
        match self.state {
            BreakerState::Closed => self.record_closed(failure, slow, now),
            BreakerState::HalfOpen => {
                if failure {
                    self.reopen(TransitionReason::ProbeFailed, now);
                } else if slow && self.config.slow_call_rate_threshold.is_some() {
                    self.reopen(TransitionReason::ProbeSlow, now);
                } else {
                    self.probes_succeeded += 1;
                    if self.probes_succeeded >= self.config.half_open_probes {
                        let probes = self.probes_succeeded;
                        self.reopens = 0;
                        self.transition(
                            BreakerState::Closed,
                            TransitionReason::ProbesSucceeded { probes },
                            now,
                        );
                    }
                }
            }
            BreakerState::Open | BreakerState::ForcedOpen | BreakerState::Disabled => {}
        }
    }

    fn record_closed(&mut self, failure: bool, slow: bool, now: Instant) {
        self.window.record(failure, slow, now);
        if failure {
            self.consecutive_failures += 1;
        } else {
            self.consecutive_failures = 0;
        }
        if let Some(limit) = self.config.consecutive_failures
            && self.consecutive_failures >= limit
        {
            let count = self.consecutive_failures;
            self.open(TransitionReason::ConsecutiveFailures { count }, now);
            return;
        }
        let totals = self.window.totals(now);
        if totals.calls < self.config.minimum_calls || totals.calls == 0 {
            return;
        }
        let calls = f64::from(totals.calls);
        if let Some(threshold) = self.config.failure_rate_threshold
            && f64::from(totals.failures) / calls >= threshold
        {
            self.open(
                TransitionReason::FailureRate {
                    failures: totals.failures,
                    calls: totals.calls,
                },
                now,
            );
            return;
        }
        if let Some(threshold) = self.config.slow_call_rate_threshold
            && f64::from(totals.slow) / calls >= threshold
        {
            self.open(
                TransitionReason::SlowCallRate {
                    slow: totals.slow,
                    calls: totals.calls,
                },
                now,
            );
        }
    }

    /// Closed → open, with the base open duration.
    fn open(&mut self, reason: TransitionReason, now: Instant) {
        self.reopens = 0;
        self.transition(BreakerState::Open, reason, now);
    }

    /// Half-open → open, with the next backoff step.
    fn reopen(&mut self, reason: TransitionReason, now: Instant) {
        self.reopens = self.reopens.saturating_add(1);
        self.transition(BreakerState::Open, reason, now);
    }

    /// Open the breaker regardless of its state, until [`reset`](Self::reset).
    pub fn force_open(&mut self, now: Instant) {
        if self.state != BreakerState::ForcedOpen {
            self.transition(BreakerState::ForcedOpen, TransitionReason::ForcedOpen, now);
        }
    }

    /// Admit every call and never trip, until [`reset`](Self::reset).
    pub fn disable(&mut self, now: Instant) {
        if self.state != BreakerState::Disabled {
            self.transition(BreakerState::Disabled, TransitionReason::Disabled, now);
        }
    }

    /// Back to closed with an empty window and no backoff, from any state.
    pub fn reset(&mut self, now: Instant) {
        self.reopens = 0;
        if self.state == BreakerState::Closed {
            self.window.clear();
            self.consecutive_failures = 0;
        } else {
            self.transition(BreakerState::Closed, TransitionReason::Reset, now);
        }
    }

    fn transition(&mut self, to: BreakerState, reason: TransitionReason, now: Instant) {
        let from = self.state;
        self.state = to;
        self.period += 1;
        self.window.clear();
        self.consecutive_failures = 0;
        self.probes_admitted = 0;
        self.probes_succeeded = 0;
        let open_for = if to == BreakerState::Open {
            let d = self.config.open_duration_after(self.reopens);
            self.open_until = Some(now + d);
            Some(d)
        } else {
            self.open_until = None;
            None
        };
        self.counters.transitions += 1;
        if self.outbox.len() >= OUTBOX_LIMIT {
            self.outbox.remove(0);
        }
        self.outbox.push(BreakerTransition {
            name: self.name.clone(),
            seq: self.counters.transitions,
            from,
            to,
            reason,
            at: now,
            open_for,
        });
    }

    /// The transitions since the last call, oldest first.
    pub fn take_transitions(&mut self) -> Vec<BreakerTransition> {
        std::mem::take(&mut self.outbox)
    }

    /// A serializable view as of `now`.
    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        BreakerSnapshot {
            name: self.name.to_string(),
            state: self.state,
            counters: self.counters,
            open_remaining_ms: self.open_until.map(|u| {
                u64::try_from(u.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX)
            }),
            consecutive_reopens: self.reopens,
            probes_admitted: self.probes_admitted,
            probes_succeeded: self.probes_succeeded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker::new("test", config).unwrap()
    }

    #[test]
    fn stale_permits_do_not_move_the_state() {
        let mut b = breaker(BreakerConfig {
            consecutive_failures: Some(1),
            half_open_probes: 1,
            ..Default::default()
        });
        let t0 = Instant::now();
        let early = b.try_acquire(t0).unwrap();
        let p = b.try_acquire(t0).unwrap();
        b.on_failure(p, t0);
        assert_eq!(b.state(), BreakerState::Open);
        let later = t0 + b.config().open_duration;
        let probe = b.try_acquire(later).unwrap();
        assert!(probe.is_probe());
        // The closed-period call finishing now is no probe result.
        b.on_success(early, Duration::ZERO, later);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.on_success(probe, Duration::ZERO, later);
        assert_eq!(b.state(), BreakerState::Closed);
        let kinds: Vec<_> = b
            .take_transitions()
            .iter()
            .map(|t| (t.from, t.to))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (BreakerState::Closed, BreakerState::Open),
                (BreakerState::Open, BreakerState::HalfOpen),
                (BreakerState::HalfOpen, BreakerState::Closed)
            ]
        );
        assert!(b.take_transitions().is_empty());
    }

    #[test]
    fn released_probe_frees_its_slot() {
        let mut b = breaker(BreakerConfig {
            consecutive_failures: Some(1),
            ..Default::default()
        });
        let t0 = Instant::now();
        let p = b.try_acquire(t0).unwrap();
        b.on_failure(p, t0);
        let t1 = t0 + b.config().open_duration;
        let probe = b.try_acquire(t1).unwrap();
        assert!(b.try_acquire(t1).is_err());
        b.release(probe, t1);
        assert!(b.try_acquire(t1).is_ok());
    }
}
