//! Breaker errors: a bad configuration, a rejected call, a failed call.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::BreakerState;

/// A [`BreakerConfig`](super::BreakerConfig) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakerConfigError {
    /// A field has a value the breaker cannot work with.
    #[error("invalid breaker config: `{field}` {problem}")]
    Invalid {
        /// The field, e.g. `"window.calls"`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// No rule would ever trip the breaker.
    #[error(
        "invalid breaker config: no trip rule; set `consecutive_failures`, \
         `failure_rate_threshold` or `slow_call_rate_threshold`"
    )]
    NoTripRule,
}

/// A call refused without being made: the breaker is open, forced open, or half-open with
/// every probe slot taken. The [`Display`](fmt::Display) says until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerOpen {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The state that refused the call: [`BreakerState::Open`],
    /// [`BreakerState::ForcedOpen`] or [`BreakerState::HalfOpen`].
    pub state: BreakerState,
    /// When the open period ends (the next call after it becomes a probe). `None` when
    /// forced open (until an operator resets it) or half-open (until the probes finish).
    pub until: Option<Instant>,
    /// `until − now` at the time of the refusal.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.state, self.retry_after) {
            (BreakerState::ForcedOpen, _) => write!(
                f,
                "circuit breaker `{}` is forced open: calls fail fast until an operator resets it",
                self.name
            ),
            (BreakerState::HalfOpen, _) => write!(
                f,
                "circuit breaker `{}` is half-open and every probe call is taken: calls fail \
                 fast until the probes finish",
                self.name
            ),
            (_, Some(remaining)) => write!(
                f,
                "circuit breaker `{}` is open: calls fail fast for another {remaining:?}",
                self.name
            ),
            (_, None) => write!(f, "circuit breaker `{}` is open", self.name),
        }
    }
}

impl Error for BreakerOpen {}

/// Why a call through an async [`Breaker`](super::Breaker) did not return `Ok`.
#[derive(Debug)]
pub enum CallError<E> {
    /// The breaker refused the call; it was never started.
    Open(BreakerOpen),
    /// The call took longer than the configured `call_timeout` and was dropped; counted as
    /// a failure.
    Timeout {
        /// The breaker's name.
        name: Arc<str>,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The call itself returned this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// The call's own error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the breaker refused the call.
    pub fn is_open(&self) -> bool {
        matches!(self, CallError::Open(_))
    }

    /// Whether the call timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, CallError::Timeout { .. })
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Open(open) => open.fmt(f),
            CallError::Timeout { name, after } => write!(
                f,
                "call through circuit breaker `{name}` timed out after {after:?}"
            ),
            CallError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for CallError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            CallError::Open(_) | CallError::Timeout { .. } => None,
            CallError::Inner(e) => e.source(),
        }
    }
}

impl<E> From<BreakerOpen> for CallError<E> {
    fn from(open: BreakerOpen) -> Self {
        CallError::Open(open)
    }
}
