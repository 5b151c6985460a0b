//! Components, the registry that runs them, and graceful shutdown.
//!
//! A [`Component`] is a part of the system with a `start` and a `stop` (a feed, a
//! strategy, a journal writer). A [`Registry`] holds components by name, starts them in
//! dependency order, supervises their tasks, and stops them in reverse. A [`Runtime`]
//! runs a registry from start to a reported shutdown.
//!
//! # Registration
//! [`Registry::register`] rejects an empty or duplicate name at once. Dependencies may be
//! registered in any order, so unknown dependencies and cycles are reported by
//! [`Registry::validate`] and by [`Registry::start_all`] before anything starts; each
//! [`RegistryError`] names the components (a cycle as `a -> b -> a`, read "a depends on
//! b"). Components are found again by name *and type* with [`Registry::get`].
//!
//! # States
//! Every component has a [`LifecycleState`]: `registered → starting → running ⇄ degraded
//! → stopping → stopped`, or `failed`. Every transition is visible on a
//! [`watch`](tokio::sync::watch) channel ([`Registry::watch`]) and published on the bus
//! as [`ControlEvent::Lifecycle`](crate::ControlEvent::Lifecycle) (in transition order,
//! with a detail such as the error). [`Registry::health`] gives a serializable status
//! line per component; [`Registry::overall_health`] rolls them up for the whole system
//! (`Unhealthy` if any component is failed or, running, reports itself unhealthy; else
//! `Degraded` if any is degraded; the reason names each such component as
//! `"name: reason; ..."`).
//!
//! # Kinds
//! Every component has a [`ComponentKind`] that places it in the data flow: a
//! **producer** brings events in from outside (a feed, a replay), a **service** handles
//! them (an engine, a journal), an **observer** watches the system (an operations HTTP
//! API, status lines). Producers start last and stop first; observers stop last.
//!
//! # Start
//! A component starts once every one of its dependencies is running; independent
//! components start concurrently. Services and observers start before producers, by
//! data flow: a producer starts only once all its own dependencies are running **and**
//! every service and observer that does not (transitively) depend on it is running, so
//! a feed need not declare its consumers as dependencies to find them ready; a service
//! that depends on a producer still starts after it. These implicit waits are added in
//! registration order and one that would close a cycle (two producers each feeding a
//! consumer the other would wait for) is skipped; declared dependencies always hold.
//! `start` should acquire resources, subscribe, spawn its supervised tasks
//! ([`ComponentContext::spawn`]) or cooperative tasks
//! ([`ComponentContext::spawn_cooperative`]: not supervised, not dropped at
//! cancellation, they end by themselves and hand a result to `stop`) and return when the
//! component is ready; it must not run the component's main loop itself. Each `start`
//! has a deadline; missing it, returning `Err` or panicking fails the start: no further
//! component starts, those already started are stopped (rollback), and [`StartError`]
//! names the component and the cause. The rollback stops in the same
//! phases as [`Registry::stop_all`] (producers first, intake hooks, services,
//! observers), each stop with the start deadline unless the component has its own. `stop` is not called on a component
//! whose own start failed; its cancellation token is cancelled and its tasks end.
//!
//! # Stop
//! Stopping a component: its state becomes `stopping`, its
//! [cancellation token](ComponentContext::cancellation) is cancelled, its supervised tasks
//! are dropped at their next `.await` and its
//! [cooperative tasks](ComponentContext::spawn_cooperative) finish by themselves (they
//! watch the token); all are awaited, then `stop` is called (which may collect the
//! cooperative tasks' results from their handles). `stop` is
//! called once, only if `start` succeeded (also for a component that failed later, to
//! release its resources; it then stays `failed`). A component stops once every
//! component depending on it has stopped; independent ones stop concurrently. Each
//! component's stop — the end of its tasks and `stop` — has its own deadline: one that
//! misses it is **abandoned** (its stop future dropped), marked `failed`, named in the
//! report as [`StopOutcome::Abandoned`], and the other components still stop. The
//! deadline is the runtime's [`RuntimeConfig::stop_deadline`] unless the component
//! returns its own from [`Component::stop_deadline`] (read at registration), which then
//! applies to its stop and its `stop_intake`.
//!
//! Before the services and observers stop (and before the bus drains), their
//! **intake hook** [`Component::stop_intake`] is called — once, for every started
//! service and observer, in reverse dependency order, under the component's stop
//! deadline — to stop taking events in from outside and finish hand-offs (flush exports,
//! publish an end-of-stream marker). The component keeps running (nothing is cancelled)
//! until its `stop`. Every call gets a line in [`ShutdownReport::intake`] (and
//! [`StopReport::intake`]): `Stopped` for `Ok`, `Failed` for an error or panic,
//! `Abandoned` for a missed deadline. A failed or abandoned intake hook is recorded as
//! the component's last error and makes the exit code 70, but does not mark the
//! component failed: its `stop` is still called and reported on its own.
//!
//! # Supervision
//! A supervised task ending with `Err` or a panic is restarted (by calling its `make`
//! closure again) under the component's [`RestartPolicy`]: exponential backoff from
//! `initial_backoff`, doubling, capped at `max_backoff`, at most `max_restarts` restarts
//! within a sliding `window` — per task. While a task waits for its restart the component
//! is `degraded`. A task ending with `Ok` is done and not restarted; a
//! [fatal](ComponentError::fatal) error is not restarted. When the budget is spent the
//! component becomes `failed`, a critical alert is published, and its [`Escalation`]
//! applies: `MarkFailed` (nothing more), `ShutdownSystem` (the runtime shuts down,
//! reason [`ShutdownTrigger::Escalation`]) or `TripKillSwitch` (the kill switch set with
//! [`Registry::set_kill_switch`] is triggered: scope all, mode halt, source the
//! component's name; without one, the system shuts down). The default policy restarts 5
//! times a minute and then shuts down: fail safe.
//!
//! # Shutdown
//! [`Runtime::run`] starts everything, then waits for the first of: the shutdown signal
//! future it was given (a binary passes [`signals::wait_for_signal`]), a
//! [`ShutdownHandle::request`] (from code, an operator API, or the kill switch policy —
//! its rules reach the runtime through the handle), a component's
//! [`ComponentContext::request_shutdown`] or [`ComponentContext::complete`] (its work is
//! done: [`ShutdownTrigger::Completed`]), a configured run duration
//! ([`ShutdownTrigger::Elapsed`], triggered by whoever enforces it), or an escalation.
//! Then it stops the **producers** ([`ComponentKind::Producer`]) first, calls the intake
//! hooks of the services and observers, publishes
//! [`ControlEvent::Shutdown`](crate::ControlEvent::Shutdown) (after the producers'
//! trailing events and the hooks' end-of-stream markers, immediately before the drain),
//! drains the bus within `drain_deadline`, stops the **services** in reverse dependency
//! order, then the **observers** ([`ComponentKind::Observer`], so status stays readable
//! during the whole shutdown), and returns a [`ShutdownReport`]. Every event the bus
//! accepted is accounted for in the report (delivered, dropped, or undelivered).
//! Producers stop before every service, even a service that depends on a producer: the
//! sources stop, the queues drain, then the consumers stop. Observers stop after every
//! service, even an observer that depends on a service.
//!
//! # Exit codes
//! [`ShutdownReport::exit_code`]: **0** clean, whatever the trigger but an escalation
//! (also [`ShutdownTrigger::Completed`] and [`ShutdownTrigger::Elapsed`]); **70**
//! (`EX_SOFTWARE`) when a component failed (stop or intake hook failed or abandoned,
//! escalated, or was failed before the shutdown);
//! **130** / **143** when a second SIGINT / SIGTERM forced the exit
//! ([`signals::spawn_force_exit_on_second_signal`] exits with it directly;
//! [`ShutdownHandle::force`] records it in the report). [`RunError::exit_code`] is 70.
//!
//! # Signals
//! Only binaries handle OS signals: the [`signals`] helpers are here for them to call;
//! the library never calls them.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use switchyard::Bus;
//! use switchyard::lifecycle::*;
//!
//! struct Feed;
//! impl Component for Feed {
//!     fn name(&self) -> &str { "feed" }
//!     fn kind(&self) -> ComponentKind { ComponentKind::Producer }
//!     fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
//!         Box::pin(async move {
//!             ctx.spawn("poll", || async { std::future::pending::<()>().await; Ok(()) });
//!             Ok(())
//!         })
//!     }
//!     fn stop<'a>(&'a self, _: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
//!         Box::pin(async { Ok(()) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let bus = Bus::new();
//! let mut registry = Registry::new(bus.clone());
//! registry.register(Arc::new(Feed)).unwrap();
//! let runtime = Runtime::new(registry.clone(), bus, RuntimeConfig::default());
//! let handle = runtime.shutdown_handle();
//! handle.request("demo over");
//! let report = runtime.run(std::future::pending()).await.unwrap();
//! assert_eq!(report.exit_code(), 0);
//! assert_eq!(registry.state("feed"), Some(LifecycleState::Stopped));
//! # }
//! ```

mod component;
mod error;
mod registry;
mod runtime;
pub mod signals;
mod state;
mod supervisor;

pub use component::{BoxFuture, Component, ComponentContext};
pub use error::{ComponentError, RegistryError, RunError, StartError};
pub use registry::{ComponentStopReport, Registry, StopOutcome, StopReport};
pub use runtime::{
    Runtime, RuntimeConfig, ShutdownHandle, ShutdownReport, ShutdownTrigger, Signal,
};
pub use state::{ComponentKind, ComponentStatus, Health, LifecycleState};
pub use supervisor::{Escalation, RestartBudget, RestartDecision, RestartMode, RestartPolicy};

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<Registry>();
        send_sync::<ComponentContext>();
        send_sync::<ShutdownHandle>();
        send_sync::<Runtime>();
        send_sync::<ComponentError>();
        send_sync::<StartError>();
    }
}
