//! The `Component` trait and the context a component runs in.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
/// The registry calls `name`, `dependencies`, `kind` and `restart_policy` once, at
/// registration. See the [module docs](super) for what `start` and `stop` may do and
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

    /// Producer or service; producers stop first at shutdown.
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
    fn stop<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>>;

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
