//! [`Breaker`]: the async layer over [`CircuitBreaker`].

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use tokio::time::Instant;

use super::config::BreakerConfig;
use super::error::{BreakerConfigError, BreakerOpen, CallError};
use super::state::{
    BreakerCounters, BreakerSnapshot, BreakerState, BreakerTransition, CircuitBreaker, Permit,
};

/// A function called with every transition of a [`Breaker`].
pub type TransitionListener = Arc<dyn Fn(&BreakerTransition) + Send + Sync>;

/// How the outcome of a call counts, decided by a classifier passed to
/// [`Breaker::call_classified`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classification {
    /// The protected service did its job.
    Success,
    /// The protected service failed.
    Failure,
    /// The outcome says nothing about the service (e.g. a request it rightly refused):
    /// the call is released without an outcome (counted in `ignored`).
    Ignore,
}

struct Inner {
    machine: Mutex<CircuitBreaker>,
    listeners: RwLock<Vec<TransitionListener>>,
}

/// A circuit breaker for async calls. Cloning shares the same breaker.
///
/// [`call`](Self::call) asks the [`CircuitBreaker`] for a permit, runs the future under
/// the configured `call_timeout` (`tokio::time`, so paused test time drives it) and
/// reports the outcome. The machine sits behind a `std::sync::Mutex` that is never held
/// across an `.await`. Transitions are logged with `tracing` and passed to the listeners
/// after the lock is released; listeners may be called from several threads at once and
/// can order transitions by [`BreakerTransition::seq`].
#[derive(Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("machine", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl Breaker {
    /// A closed breaker named `name`. Fails if the configuration does not validate.
    pub fn new(
        name: impl Into<Arc<str>>,
        config: BreakerConfig,
    ) -> Result<Self, BreakerConfigError> {
        Ok(Breaker::from_machine(CircuitBreaker::new(name, config)?))
    }

    /// Wrap an existing state machine.
    pub fn from_machine(machine: CircuitBreaker) -> Self {
        Breaker {
            inner: Arc::new(Inner {
                machine: Mutex::new(machine),
                listeners: RwLock::new(Vec::new()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CircuitBreaker> {
        // The machine's methods do not panic midway; a poisoned lock still holds a
        // consistent machine.
        self.inner
            .machine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `f` on the machine, then publish the transitions it caused (lock released).
    fn with_machine<R>(&self, f: impl FnOnce(&mut CircuitBreaker) -> R) -> R {
        let (result, transitions) = {
            let mut machine = self.lock();
            let result = f(&mut machine);
            (result, machine.take_transitions())
        };
        if !transitions.is_empty() {
            self.publish(&transitions);
        }
        result
    }

    fn publish(&self, transitions: &[BreakerTransition]) {
        let listeners = self
            .inner
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for t in transitions {
            match t.to {
                BreakerState::Open | BreakerState::ForcedOpen => tracing::warn!(
                    breaker = %t.name,
                    from = %t.from,
                    to = %t.to,
                    reason = %t.reason,
                    open_for = ?t.open_for,
                    "circuit breaker opened"
                ),
                _ => tracing::info!(
                    breaker = %t.name,
                    from = %t.from,
                    to = %t.to,
                    reason = %t.reason,
                    "circuit breaker changed state"
                ),
            }
            for listener in &listeners {
                listener(t);
            }
        }
    }

    /// Add a listener called with every later transition.
    pub fn on_transition(&self, listener: TransitionListener) {
        self.inner
            .listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// The breaker's name.
    pub fn name(&self) -> Arc<str> {
        self.lock().name().clone()
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.lock().state()
    }

    /// The counters.
    pub fn counters(&self) -> BreakerCounters {
        self.lock().counters()
    }

    /// A serializable view for a status API.
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.lock().snapshot(Instant::now().into_std())
    }

    /// Operator control: open the breaker until [`reset`](Self::reset).
    pub fn force_open(&self) {
        let now = Instant::now().into_std();
        self.with_machine(|m| m.force_open(now));
    }

    /// Operator control: admit every call and never trip until [`reset`](Self::reset).
    pub fn disable(&self) {
        let now = Instant::now().into_std();
        self.with_machine(|m| m.disable(now));
    }

    /// Operator control: back to closed, window emptied, backoff forgotten.
    pub fn reset(&self) {
        let now = Instant::now().into_std();
        self.with_machine(|m| m.reset(now));
    }

    /// Ask for a permit without running anything (for callers that drive the
    /// [`CircuitBreaker`] protocol themselves: report through [`Self::report`]).
    pub fn try_acquire(&self) -> Result<Permit, BreakerOpen> {
        let now = Instant::now().into_std();
        self.with_machine(|m| m.try_acquire(now))
    }

    /// Report the outcome of a permit from [`Self::try_acquire`] that ran for `elapsed`.
    pub fn report(&self, permit: Permit, outcome: Classification, elapsed: std::time::Duration) {
        let now = Instant::now().into_std();
        self.with_machine(|m| match outcome {
            Classification::Success => m.on_success(permit, elapsed, now),
            Classification::Failure => m.on_failure(permit, now),
            Classification::Ignore => m.release(permit, now),
        });
    }

    /// Run `fut` through the breaker: `Err` from the future is a failure.
    ///
    /// Refused calls fail fast with [`CallError::Open`] (the future is dropped unpolled);
    /// a call over `call_timeout` is dropped and fails with [`CallError::Timeout`]; if
    /// the returned future is itself dropped mid-call, the permit is released without an
    /// outcome.
    pub async fn call<F, T, E>(&self, fut: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.call_classified(fut, |r: &Result<T, E>| {
            if r.is_ok() {
                Classification::Success
            } else {
                Classification::Failure
            }
        })
        .await
    }

    /// Like [`call`](Self::call), with `classify` deciding how the result counts.
    pub async fn call_classified<F, T, E, C>(&self, fut: F, classify: C) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
        C: FnOnce(&Result<T, E>) -> Classification,
    {
        let start = Instant::now();
        let (permit, timeout) = self.with_machine(|m| {
            m.try_acquire(start.into_std())
                .map(|p| (p, m.config().call_timeout))
        })?;
        let mut guard = PermitGuard {
            breaker: self,
            permit: Some(permit),
        };
        let result = match timeout {
            Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
            None => Some(fut.await),
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(start);
        let permit = guard.permit.take().expect("permit is taken once");
        let now = now.into_std();
        match result {
            None => {
                self.with_machine(|m| m.on_timeout(permit, now));
                Err(CallError::Timeout {
                    name: self.name(),
                    after: timeout.unwrap_or_default(),
                })
            }
            Some(result) => {
                let class = classify(&result);
                self.with_machine(|m| match class {
                    Classification::Success => m.on_success(permit, elapsed, now),
                    Classification::Failure => m.on_failure(permit, now),
                    Classification::Ignore => m.release(permit, now),
                });
                result.map_err(CallError::Inner)
            }
        }
    }
}

/// Releases a permit whose call was cancelled (the `call` future dropped mid-way).
struct PermitGuard<'a> {
    breaker: &'a Breaker,
    permit: Option<Permit>,
}

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            let now = Instant::now().into_std();
            self.breaker.with_machine(|m| m.release(permit, now));
        }
    }
}
