//! The `Component` trait and the context a component runs in.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::ComponentError;
use super::runtime::ShutdownTrigger;
use super::state::{ComponentKind, Health, Slot};
use super::supervisor::{Escalator, RestartPolicy, spawn_supervised};
use crate::bus::Bus;
use crate::clock::Clock;

/// A boxed, `Send` future: what [`Component::start`] and [`Component::stop`] return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A part of the system with a start and a stop: a feed, a strategy, a journal writer.
///
/// The registry calls `name`, `dependencies`, `kind`, `restart_policy` and
/// `stop_deadline` once, at registration. See the [module docs](super) for what `start` and `stop` may do and
/// the deadlines they run under.
///
/// ```
/// use switchyard::lifecycle::{BoxFuture, Component, ComponentContext, ComponentError};
///
/// struct Ticker;
/// impl Component for Ticker {
///     fn name(&self) -> &str { "ticker" }
///     fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
///         Box::pin(async move {
///             ctx.spawn("tick", || async {
///                 loop { tokio::time::sleep(std::time::Duration::from_secs(1)).await; }
///             });
///             Ok(())
///         })
///     }
///     fn stop<'a>(&'a self, _ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
///         Box::pin(async { Ok(()) })
///     }
/// }
/// ```
pub trait Component: Send + Sync + 'static {
    /// Unique name in the registry.
    fn name(&self) -> &str;

    /// Names of the components that must be running before this one starts (and that
    /// stop only after this one stopped).
    fn dependencies(&self) -> Vec<String> {
        Vec::new()
    }

    /// Producer, service or observer: where the component starts and stops relative to
    /// the others (producers start last and stop first, observers stop last).
    fn kind(&self) -> ComponentKind {
        ComponentKind::Service
    }

    /// How its supervised tasks ([`ComponentContext::spawn`]) are restarted.
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::default()
    }

    /// Acquire resources, subscribe, spawn supervised tasks; return once the component
    /// is ready. Must finish within the start deadline.
    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>>;

    /// Release what `start` acquired. Called once, after the component's supervised
    /// tasks have ended, only if `start` succeeded. Must finish within the stop deadline.
    /// By default there is nothing to release.
    fn stop<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        let _ = ctx;
        Box::pin(async { Ok(()) })
    }

    /// Stop taking events in from outside (e.g. a NATS bridge's importers) and finish
    /// hand-offs that must happen before the bus drains (e.g. flush exports then publish
    /// an end-of-stream marker).
    ///
    /// Called once for every started non-producer component (services and observers)
    /// after the producers stopped and before the bus drains, in reverse dependency
    /// order, under the component's stop deadline. The component keeps running (its
    /// tasks are not cancelled) until its `stop`. A failure, panic or timeout is
    /// recorded as the component's last error and in
    /// [`ShutdownReport::intake`](super::ShutdownReport::intake) (exit code 70), but the
    /// component is not marked failed and its `stop` is still called. The default does
    /// nothing.
    fn stop_intake<'a>(
        &'a self,
        ctx: &'a ComponentContext,
    ) -> BoxFuture<'a, Result<(), ComponentError>> {
        let _ = ctx;
        Box::pin(async { Ok(()) })
    }

    /// The deadline of this component's stop (and of its `stop_intake`), replacing the
    /// runtime's [`stop_deadline`](super::RuntimeConfig::stop_deadline) (or the deadline
    /// given to [`Registry::stop_all`](super::Registry::stop_all) and the rollback) when
    /// `Some`: for a component that must flush a lot at the end. Read once, at
    /// registration. The default, `None`, uses the runtime's.
    fn stop_deadline(&self) -> Option<Duration> {
        None
    }

    /// The component's own view of its health, polled by status APIs. Must be cheap and
    /// must not block.
    fn health(&self) -> Health {
        Health::Healthy
    }
}

/// What a component gets to run: the bus, the clock, its cancellation token, and a way to
/// spawn supervised tasks and to ask for a shutdown. Cheap to clone.
#[derive(Clone)]
pub struct ComponentContext {
    inner: Arc<ContextInner>,
}

pub(crate) struct ContextInner {
    pub(crate) slot: Arc<Slot>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) policy: RestartPolicy,
    pub(crate) escalator: Arc<Escalator>,
}

impl fmt::Debug for ComponentContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentContext")
            .field("name", &self.name())
            .field("cancelled", &self.inner.cancel.is_cancelled())
            .field("tasks", &self.inner.tracker.len())
            .finish()
    }
}

impl ComponentContext {
    pub(crate) fn new(slot: Arc<Slot>, policy: RestartPolicy, escalator: Arc<Escalator>) -> Self {
        ComponentContext {
            inner: Arc::new(ContextInner {
                slot,
                cancel: CancellationToken::new(),
                tracker: TaskTracker::new(),
                policy,
                escalator,
            }),
        }
    }

    pub(crate) fn inner(&self) -> &Arc<ContextInner> {
        &self.inner
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.inner.slot.bus
    }

    /// The bus clock (event timestamps).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.slot.bus.clock()
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.inner.slot.name
    }

    /// Cancelled when the component starts stopping (or its start failed). Supervised
    /// tasks are dropped at cancellation anyway; use the token for work of your own.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// Spawn a supervised task named `task_name`. `make` builds the task's future; it is
    /// called again for each restart. A task ending with `Err` or a panic is restarted
    /// under the component's [`RestartPolicy`]; a task ending with `Ok` is done. At stop
    /// (cancellation) the task's future is dropped at its next `.await`. Spawning after
    /// the component started stopping does nothing.
    pub fn spawn<F, Fut>(&self, task_name: &str, make: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ComponentError>> + Send + 'static,
    {
        if self.inner.cancel.is_cancelled() {
            tracing::debug!(component = %self.name(), task = task_name, "spawn after stop ignored");
            return;
        }
        spawn_supervised(Arc::clone(&self.inner), task_name.to_owned(), make);
    }

    /// Spawn a cooperative task named `task_name` and get its result back: for a loop
    /// whose outcome the component wants at stop (a count, a final position, a file to
    /// close). Unlike [`spawn`](Self::spawn), the task is **not supervised** (a failure or
    /// panic is not restarted; it shows in the handle's result) and **not dropped at
    /// cancellation**: `fut` must watch [`cancellation`](Self::cancellation) and finish by
    /// itself. It runs on the component's task tracker, so the stop waits for it (under
    /// the stop deadline: a task that does not finish makes the stop miss it and be
    /// abandoned) before calling [`Component::stop`], where the component awaits the
    /// handle to collect the result (the task has finished by then). Spawning after the
    /// component started stopping still runs `fut`, but the stop does not wait for it.
    pub fn spawn_cooperative<T, F>(&self, task_name: &str, fut: F) -> tokio::task::JoinHandle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        if self.inner.cancel.is_cancelled() {
            tracing::debug!(component = %self.name(), task = task_name, "cooperative task spawned after stop began");
        } else {
            tracing::debug!(component = %self.name(), task = task_name, "cooperative task spawned");
        }
        self.inner.tracker.spawn(fut)
    }

    /// [`spawn_cooperative`](Self::spawn_cooperative) on a thread of its own (from the
    /// runtime's blocking pool, running `fut` with [`Handle::block_on`]): for a producer
    /// that keeps a core busy — a replay parsing files as fast as it can, a feed spinning
    /// on the clock — or that blocks on synchronous I/O. On a runtime worker such a task
    /// holds the worker, and a subscriber it wakes is queued on that worker's slot behind
    /// it (tokio runs the task a worker wakes on the same worker, next): producer and
    /// consumer then take turns on one core. Woken from a thread of its own, the
    /// subscriber runs on an idle worker, in parallel. `fut` still has the runtime's
    /// timers and I/O; the same contract as `spawn_cooperative` holds (watch the
    /// cancellation, finish by yourself; the stop waits for it).
    ///
    /// [`Handle::block_on`]: tokio::runtime::Handle::block_on
    pub fn spawn_dedicated<T, F>(&self, task_name: &str, fut: F) -> tokio::task::JoinHandle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        tracing::debug!(component = %self.name(), task = task_name, "task spawned on a thread of its own");
        let handle = tokio::runtime::Handle::current();
        self.inner
            .tracker
            .spawn_blocking(move || handle.block_on(fut))
    }

    /// Report that this component's work is done (e.g. the end of a replay file): shuts
    /// the system down with [`ShutdownTrigger::Completed`] (source: the component's
    /// name), unless a shutdown was already requested. Exit code 0.
    pub fn complete(&self, detail: &str) {
        self.inner
            .escalator
            .shutdown
            .trigger(ShutdownTrigger::Completed {
                source: self.name().to_owned(),
                detail: detail.to_owned(),
            });
    }

    /// Ask the whole system to shut down (first request wins). The reason appears in the
    /// shutdown report.
    pub fn request_shutdown(&self, reason: &str) {
        self.inner
            .escalator
            .shutdown
            .trigger(ShutdownTrigger::Requested {
                reason: reason.to_owned(),
                source: self.name().to_owned(),
            });
    }
}
