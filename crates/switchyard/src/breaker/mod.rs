//! Circuit breaker: fail fast while a dependency is failing, probe it carefully before
//! trusting it again.
//!
//! Two layers, as everywhere in Switchyard:
//!
//! * [`CircuitBreaker`] — the synchronous state machine. Every method takes the current
//!   [`std::time::Instant`], so tests drive it with explicit instants and no runtime:
//!   [`try_acquire`](CircuitBreaker::try_acquire) returns a [`Permit`] or a
//!   [`BreakerOpen`]; the permit goes back through
//!   [`on_success`](CircuitBreaker::on_success) (with the call's duration, to spot slow
//!   calls), [`on_failure`](CircuitBreaker::on_failure),
//!   [`on_timeout`](CircuitBreaker::on_timeout) or [`release`](CircuitBreaker::release).
//! * [`Breaker`] — the cloneable async wrapper: [`Breaker::call`] runs a future under the
//!   breaker and the call timeout, on `tokio::time` (so `start_paused` tests are
//!   deterministic), logs every transition with `tracing` and hands it to the listeners
//!   registered with [`Breaker::on_transition`].
//!
//! # Contract
//!
//! * **Closed → Open** when `consecutive_failures` calls fail in a row, or when the
//!   failure rate or slow-call rate over the [`SlidingWindow`] reaches its threshold, once
//!   the window holds at least `minimum_calls` calls. A call over `call_timeout` is a
//!   failure (and a timeout).
//! * **Open**: calls fail fast with [`BreakerOpen`], whose `Display` says how much longer
//!   the breaker stays open. The open period is `open_duration` after a trip from closed,
//!   and `open_duration × multiplier^n` (capped at `backoff.max`) after the `n`-th
//!   consecutive re-open from half-open.
//! * **Open → HalfOpen** at the first call attempt after the open period ends (lazily: a
//!   breaker nobody calls reads `Open` with zero time remaining).
//! * **HalfOpen** admits at most `half_open_probes` probe calls — in total, so also
//!   concurrently; the next one is refused. **→ Closed** when all of them succeed;
//!   **→ Open** (next backoff step) at the first probe failure. Outcomes of calls admitted
//!   before a transition are counted but never move the new state.
//! * **ForcedOpen** and **Disabled** are operator states, left only by `reset`.
//! * Every transition is a [`BreakerTransition`] (name, seq, from, to, reason, at).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use switchyard::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
//!
//! let config = BreakerConfig { consecutive_failures: Some(2), ..Default::default() };
//! let mut breaker = CircuitBreaker::new("exchange-api", config).unwrap();
//! let t0 = Instant::now();
//! for _ in 0..2 {
//!     let permit = breaker.try_acquire(t0).unwrap();
//!     breaker.on_failure(permit, t0);
//! }
//! assert_eq!(breaker.state(), BreakerState::Open);
//! let refused = breaker.try_acquire(t0 + Duration::from_secs(10)).unwrap_err();
//! assert!(refused.to_string().contains("for another 20s"));
//! ```

mod call;
mod config;
mod error;
mod state;
mod window;

pub(crate) use config::duration_format;

pub use call::{Breaker, Classification, TransitionListener};
pub use config::{
    Backoff, BreakerConfig, MAX_HALF_OPEN_PROBES, MAX_WINDOW_CALLS, SlidingWindow,
    TIME_WINDOW_BUCKETS,
};
pub use error::{BreakerConfigError, BreakerOpen, CallError};
pub use state::{
    BreakerCounters, BreakerSnapshot, BreakerState, BreakerTransition, CircuitBreaker, Permit,
    TransitionReason,
};
