//! Supervision of a component's tasks: restart policy, backoff, restart budget,
//! escalation.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::component::ContextInner;
use super::error::ComponentError;
use super::runtime::{ShutdownHandle, ShutdownTrigger};
use super::state::LifecycleState;
use crate::bus::Bus;
use crate::control::{Alert, ControlEvent, Severity};
use crate::kill_switch::{KillSwitch, Mode, Scope, TriggerRequest};

/// How a component's supervised tasks are restarted, and what happens when they may not
/// be restarted any more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestartPolicy {
    /// Whether and how often to restart.
    pub mode: RestartMode,
    /// What to do when a task fails and may not be restarted.
    pub escalation: Escalation,
}

impl Default for RestartPolicy {
    /// Restart on failure (100 ms doubling up to 10 s, at most 5 restarts a minute), then
    /// shut the system down: fail safe.
    fn default() -> Self {
        RestartPolicy {
            mode: RestartMode::default(),
            escalation: Escalation::ShutdownSystem,
        }
    }
}

impl RestartPolicy {
    /// Never restart; escalate at the first failure.
    pub fn never(escalation: Escalation) -> Self {
        RestartPolicy {
            mode: RestartMode::Never,
            escalation,
        }
    }

    /// Restart with exponential backoff from `initial_backoff` (doubling, capped at
    /// `max_backoff`), at most `max_restarts` within any `window`, then escalate.
    pub fn on_failure(
        initial_backoff: Duration,
        max_backoff: Duration,
        max_restarts: u32,
        window: Duration,
        escalation: Escalation,
    ) -> Self {
        RestartPolicy {
            mode: RestartMode::OnFailure {
                initial_backoff,
                max_backoff,
                max_restarts,
                window,
            },
            escalation,
        }
    }
}

/// Whether failed tasks are restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RestartMode {
    /// A failed task is not restarted: escalate at once.
    Never,
    /// Restart after a backoff: `initial_backoff × 2^k` capped at `max_backoff`, where
    /// `k` is the number of the task's restarts within the last `window`. Once the task
    /// has been restarted `max_restarts` times within `window`, the next failure
    /// escalates.
    OnFailure {
        /// Backoff before the first restart.
        initial_backoff: Duration,
        /// Largest backoff.
        max_backoff: Duration,
        /// Restarts allowed within `window`.
        max_restarts: u32,
        /// The sliding window restarts are counted in.
        window: Duration,
    },
}

impl Default for RestartMode {
    fn default() -> Self {
        RestartMode::OnFailure {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_restarts: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// What happens when a supervised task fails and may not be restarted. In every case the
/// component becomes [`LifecycleState::Failed`] and a critical alert is published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Escalation {
    /// Only mark the component failed; the rest of the system keeps running.
    MarkFailed,
    /// Request a shutdown of the whole system ([`ShutdownTrigger::Escalation`]).
    #[default]
    ShutdownSystem,
    /// Trigger the kill switch set with
    /// [`Registry::set_kill_switch`](super::Registry::set_kill_switch): scope all,
    /// mode halt, source the component's name. Without a kill switch, shut down instead.
    TripKillSwitch,
}

/// What the supervisor does after a failure ([`RestartBudget::on_failure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart after this backoff; `attempt` counts restarts within the window (1-based).
    Restart {
        /// Wait this long first.
        after: Duration,
        /// Restarts within the window, this one included.
        attempt: u32,
    },
    /// The budget is spent (or the mode is `Never`): escalate.
    GiveUp {
        /// Restarts within the window when it gave up.
        restarts: u32,
    },
}

/// The restart bookkeeping of one supervised task: synchronous, so it can be tested
/// without a runtime.
#[derive(Clone, Debug)]
pub struct RestartBudget {
    mode: RestartMode,
    restarts: VecDeque<Instant>,
}

impl RestartBudget {
    /// A fresh budget.
    pub fn new(mode: RestartMode) -> Self {
        RestartBudget {
            mode,
            restarts: VecDeque::new(),
        }
    }

    /// A task failed at `now`: restart (after how long) or give up. A restart is counted
    /// at `now`.
    pub fn on_failure(&mut self, now: Instant) -> RestartDecision {
        let RestartMode::OnFailure {
            initial_backoff,
            max_backoff,
            max_restarts,
            window,
        } = self.mode
        else {
            return RestartDecision::GiveUp { restarts: 0 };
        };
        while let Some(&t) = self.restarts.front() {
            if now.saturating_duration_since(t) >= window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        let recent = self.restarts.len() as u32;
        if recent >= max_restarts {
            return RestartDecision::GiveUp { restarts: recent };
        }
        let factor = 1u32.checked_shl(recent).unwrap_or(u32::MAX);
        let after = initial_backoff
            .checked_mul(factor)
            .unwrap_or(max_backoff)
            .min(max_backoff);
        self.restarts.push_back(now);
        RestartDecision::Restart {
            after,
            attempt: recent + 1,
        }
    }
}

/// Where escalations go: shared by the registry and every component context.
pub(crate) struct Escalator {
    pub(crate) bus: Bus,
    pub(crate) shutdown: ShutdownHandle,
    pub(crate) kill_switch: RwLock<Option<KillSwitch>>,
}

impl Escalator {
    pub(crate) fn escalate(&self, component: &str, escalation: Escalation, reason: &str) {
        self.bus.publish_control(ControlEvent::Alert(Alert::Other {
            severity: Severity::Critical,
            source: component.to_owned(),
            message: reason.to_owned(),
        }));
        let shutdown = || {
            self.shutdown.trigger(ShutdownTrigger::Escalation {
                component: component.to_owned(),
                reason: reason.to_owned(),
            });
        };
        match escalation {
            Escalation::MarkFailed => {}
            Escalation::ShutdownSystem => shutdown(),
            Escalation::TripKillSwitch => {
                let ks = self
                    .kill_switch
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                match ks {
                    Some(ks) => {
                        ks.trigger(TriggerRequest::new(
                            Scope::All,
                            Mode::Halt,
                            reason,
                            component,
                        ));
                    }
                    None => {
                        tracing::error!(
                            component,
                            "escalation wants the kill switch, none is set: shutting down"
                        );
                        shutdown();
                    }
                }
            }
        }
    }
}

pub(crate) fn spawn_supervised<F, Fut>(ctx: Arc<ContextInner>, task: String, make: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ComponentError>> + Send + 'static,
{
    let tracker = ctx.tracker.clone();
    tracker.spawn(async move {
        let slot = &ctx.slot;
        let mut budget = RestartBudget::new(ctx.policy.mode);
        loop {
            let outcome = tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => return,
                r = CatchUnwind::new(make()) => r,
            };
            let (error, fatal) = match outcome {
                Ok(Ok(())) => {
                    tracing::debug!(component = %slot.name, task, "supervised task finished");
                    return;
                }
                Ok(Err(e)) => (e.to_string(), e.is_fatal()),
                Err(panic) => (format!("panicked: {}", panic_message(&*panic)), false),
            };
            if ctx.cancel.is_cancelled() {
                return;
            }
            slot.set_last_error(format!("task `{task}`: {error}"));
            let decision = if fatal {
                RestartDecision::GiveUp { restarts: 0 }
            } else {
                budget.on_failure(Instant::now())
            };
            match decision {
                RestartDecision::Restart { after, attempt } => {
                    tracing::warn!(component = %slot.name, task, %error, attempt, backoff_ms = after.as_millis() as u64, "supervised task failed; restarting");
                    slot.backing_off.fetch_add(1, Ordering::AcqRel);
                    slot.transition(
                        LifecycleState::Degraded,
                        Some(format!(
                            "task `{task}` failed: {error}; restart {attempt} in {after:?}"
                        )),
                    );
                    let cancelled = tokio::select! {
                        biased;
                        _ = ctx.cancel.cancelled() => true,
                        _ = tokio::time::sleep(after) => false,
                    };
                    let left = slot.backing_off.fetch_sub(1, Ordering::AcqRel) - 1;
                    if cancelled {
                        return;
                    }
                    slot.restarts.fetch_add(1, Ordering::Relaxed);
                    if left == 0 {
                        slot.transition(
                            LifecycleState::Running,
                            Some(format!("task `{task}` restarted")),
                        );
                    }
                }
                RestartDecision::GiveUp { restarts } => {
                    let reason = format!(
                        "supervised task `{task}` failed after {restarts} restart(s), giving up: {error}"
                    );
                    slot.set_last_error(reason.clone());
                    slot.transition(LifecycleState::Failed, Some(reason.clone()));
                    ctx.escalator
                        .escalate(&slot.name, ctx.policy.escalation, &reason);
                    return;
                }
            }
        }
    });
}

/// A future that turns a panic while polling into an `Err` with the payload.
pub(crate) struct CatchUnwind<F> {
    fut: Pin<Box<F>>,
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(fut: F) -> Self {
        CatchUnwind { fut: Box::pin(fut) }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.get_mut().fut.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_caps_and_budget_runs_out() {
        let mut b = RestartBudget::new(RestartMode::OnFailure {
            initial_backoff: ms(100),
            max_backoff: ms(300),
            max_restarts: 3,
            window: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        let r: Vec<_> = (0..4).map(|i| b.on_failure(t0 + ms(i))).collect();
        assert_eq!(
            r,
            vec![
                RestartDecision::Restart {
                    after: ms(100),
                    attempt: 1
                },
                RestartDecision::Restart {
                    after: ms(200),
                    attempt: 2
                },
                RestartDecision::Restart {
                    after: ms(300),
                    attempt: 3
                },
                RestartDecision::GiveUp { restarts: 3 },
            ]
        );
        // Once the window has passed, the budget is fresh again and so is the backoff.
        assert_eq!(
            b.on_failure(t0 + Duration::from_secs(11)),
            RestartDecision::Restart {
                after: ms(100),
                attempt: 1
            }
        );
    }

    #[test]
    fn never_gives_up_at_once() {
        let mut b = RestartBudget::new(RestartMode::Never);
        assert_eq!(
            b.on_failure(Instant::now()),
            RestartDecision::GiveUp { restarts: 0 }
        );
    }
}
