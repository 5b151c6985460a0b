//! The runtime: start everything, wait for a reason to stop, shut down in order.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::RunError;
use super::registry::{ComponentStopReport, Registry, StopOutcome};
use super::state::ComponentKind;
use crate::bus::{Bus, BusShutdownReport};
use crate::control::ControlEvent;

/// An OS signal that stops the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    #[serde(rename = "SIGINT")]
    Interrupt,
    /// SIGTERM.
    #[serde(rename = "SIGTERM")]
    Terminate,
}

impl Signal {
    /// `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The conventional exit code of a process ended by this signal: 128 + its number
    /// (130 for SIGINT, 143 for SIGTERM).
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the system shuts down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ShutdownTrigger {
    /// An OS signal (see [`signals`](super::signals)).
    Signal {
        /// Which.
        signal: Signal,
    },
    /// Code asked: a [`ShutdownHandle::request`] (an operator API, the kill switch
    /// policy) or [`ComponentContext::request_shutdown`](super::ComponentContext::request_shutdown).
    Requested {
        /// Why.
        reason: String,
        /// Who asked (a component's name, `"handle"` for a [`ShutdownHandle`]).
        source: String,
    },
    /// A component's supervisor gave up ([`Escalation::ShutdownSystem`](super::Escalation)).
    Escalation {
        /// The component.
        component: String,
        /// What failed.
        reason: String,
    },
    /// A component's work is done, e.g. the end of a replay file
    /// ([`ComponentContext::complete`](super::ComponentContext::complete)). Exit code 0.
    Completed {
        /// The component.
        source: String,
        /// What was completed.
        detail: String,
    },
    /// A configured run duration passed (triggered by whoever enforces it: a timer
    /// calling [`ShutdownHandle::trigger`], or the shutdown signal future given to
    /// [`Runtime::run`]). Exit code 0.
    Elapsed {
        /// The run duration, in milliseconds.
        after_ms: u64,
    },
}

impl fmt::Display for ShutdownTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownTrigger::Signal { signal } => write!(f, "signal {signal}"),
            ShutdownTrigger::Requested { reason, source } => {
                write!(f, "requested by {source}: {reason}")
            }
            ShutdownTrigger::Escalation { component, reason } => {
                write!(f, "component `{component}` escalated: {reason}")
            }
            ShutdownTrigger::Completed { source, detail } => {
                write!(f, "completed by {source}: {detail}")
            }
            ShutdownTrigger::Elapsed { after_ms } => write!(f, "ran for {after_ms} ms"),
        }
    }
}

struct HandleInner {
    requested: watch::Sender<Option<ShutdownTrigger>>,
    forced: watch::Sender<Option<Signal>>,
}

/// Asks a [`Runtime`] to shut down. Cheap to clone; the first request wins, later ones
/// are ignored (and logged).
///
/// The kill switch policy stops the system through this handle too: when a rule should
/// stop the process rather than (or as well as) close the order gate, call
/// `handle.request(..)` from where the policy's triggers are applied, or from a
/// [`KillSwitch::set_listener`](crate::kill_switch::KillSwitch::set_listener) callback.
#[derive(Clone)]
pub struct ShutdownHandle {
    inner: Arc<HandleInner>,
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &*self.inner.requested.borrow())
            .finish()
    }
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownHandle {
    /// A handle nobody has requested through yet.
    pub fn new() -> Self {
        ShutdownHandle {
            inner: Arc::new(HandleInner {
                requested: watch::Sender::new(None),
                forced: watch::Sender::new(None),
            }),
        }
    }

    /// Request a shutdown for `reason` (source `"handle"`).
    pub fn request(&self, reason: impl Into<String>) {
        self.trigger(ShutdownTrigger::Requested {
            reason: reason.into(),
            source: "handle".into(),
        });
    }

    /// Request a shutdown with any trigger. True if this was the first request.
    pub fn trigger(&self, trigger: ShutdownTrigger) -> bool {
        let first = self.inner.requested.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            *r = Some(trigger.clone());
            true
        });
        if first {
            tracing::warn!(reason = %trigger, "shutdown requested");
        } else {
            tracing::info!(reason = %trigger, "shutdown already requested");
        }
        first
    }

    /// True once a shutdown was requested.
    pub fn is_requested(&self) -> bool {
        self.inner.requested.borrow().is_some()
    }

    /// The first request, if any.
    pub fn reason(&self) -> Option<ShutdownTrigger> {
        self.inner.requested.borrow().clone()
    }

    /// Resolves with the first request (at once if there was one already).
    pub fn requested(&self) -> impl Future<Output = ShutdownTrigger> + Send + 'static {
        let mut rx = self.inner.requested.subscribe();
        async move {
            let got = rx.wait_for(Option::is_some).await.map(|r| r.clone());
            match got {
                Ok(Some(t)) => t,
                // The sender lives in the handles, which the receiver does not keep
                // alive: once every handle is gone nobody can request any more.
                _ => std::future::pending().await,
            }
        }
    }

    /// Cut a running shutdown short: the components still stopping are abandoned, the bus
    /// drain ends now, and the report says `forced` (exit code of `signal`). A binary
    /// that prefers to exit at once uses
    /// [`signals::spawn_force_exit_on_second_signal`](super::signals::spawn_force_exit_on_second_signal).
    pub fn force(&self, signal: Signal) {
        self.inner.forced.send_if_modified(|f| {
            if f.is_some() {
                return false;
            }
            *f = Some(signal);
            true
        });
    }

    fn forced(&self) -> impl Future<Output = Signal> + Send + 'static {
        let mut rx = self.inner.forced.subscribe();
        async move {
            let got = rx.wait_for(Option::is_some).await.map(|s| *s);
            match got {
                Ok(Some(s)) => s,
                _ => std::future::pending().await,
            }
        }
    }
}

/// Deadlines of a [`Runtime`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RuntimeConfig {
    /// For each component's start.
    pub start_deadline: Duration,
    /// For each component's stop (and its `stop_intake`), unless the component has its
    /// own ([`Component::stop_deadline`](super::Component::stop_deadline)).
    pub stop_deadline: Duration,
    /// For the bus to drain its queues once the producers stopped.
    pub drain_deadline: Duration,
}

impl Default for RuntimeConfig {
    /// 10 s per start, 5 s per stop, 5 s to drain.
    fn default() -> Self {
        RuntimeConfig {
            start_deadline: Duration::from_secs(10),
            stop_deadline: Duration::from_secs(5),
            drain_deadline: Duration::from_secs(5),
        }
    }
}

/// What happened at shutdown: why, how each component stopped, what the bus delivered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShutdownReport {
    /// Why the system shut down.
    pub reason: ShutdownTrigger,
    /// Per component, in the order their stops ended (producers first, observers last).
    pub components: Vec<ComponentStopReport>,
    /// Per component whose [`stop_intake`](super::Component::stop_intake) was called
    /// (every started service and observer), in the order the calls ended: `Stopped`
    /// when it returned `Ok`, `Failed` when it returned an error or panicked,
    /// `Abandoned` when it missed its deadline. A line other than `Stopped` makes the
    /// exit code 70.
    pub intake: Vec<ComponentStopReport>,
    /// The bus drain: per subscription delivered, dropped, undelivered.
    pub bus: BusShutdownReport,
    /// The shutdown was cut short ([`ShutdownHandle::force`]).
    pub forced: bool,
    /// The signal it was forced with, when forced.
    pub forced_by: Option<Signal>,
    /// A component was in state `Failed` at the end (start, stop, or escalation).
    pub component_failed: bool,
    /// The whole shutdown, in milliseconds.
    pub elapsed_ms: u64,
}

impl ShutdownReport {
    /// The process exit code: 130 or 143 when forced by a second SIGINT or SIGTERM; 70
    /// (`EX_SOFTWARE`) when a component failed (its stop or its `stop_intake` failed or
    /// was abandoned, it escalated, or it was failed before the shutdown) or the
    /// shutdown was caused by an escalation; 0 otherwise (also for
    /// [`ShutdownTrigger::Completed`] and [`ShutdownTrigger::Elapsed`]). Events lost in the bus drain do not change the code;
    /// they are counted in [`ShutdownReport::bus`].
    pub fn exit_code(&self) -> i32 {
        if let Some(s) = self.forced_by {
            return s.exit_code();
        }
        let failed = self.component_failed
            || matches!(self.reason, ShutdownTrigger::Escalation { .. })
            || self
                .components
                .iter()
                .chain(&self.intake)
                .any(|c| c.outcome != StopOutcome::Stopped);
        if failed { 70 } else { 0 }
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "shutdown ({}) in {} ms: exit code {}{}",
            self.reason,
            self.elapsed_ms,
            self.exit_code(),
            match self.forced_by {
                Some(s) => format!(", forced by {s}"),
                None => String::new(),
            }
        )?;
        writeln!(f, "  {:<28} {:>8}  outcome", "component", "stop ms")?;
        for c in &self.components {
            writeln!(f, "  {:<28} {:>8}  {}", c.name, c.stop_ms, c.outcome)?;
        }
        // Intake hooks are listed only when they did not end cleanly.
        for c in self
            .intake
            .iter()
            .filter(|c| c.outcome != StopOutcome::Stopped)
        {
            let name = format!("{} (intake)", c.name);
            writeln!(f, "  {:<28} {:>8}  {}", name, c.stop_ms, c.outcome)?;
        }
        write!(f, "{}", self.bus)
    }
}

/// Runs a [`Registry`] on a [`Bus`] from start to a reported shutdown. See the
/// [module docs](super).
#[derive(Debug)]
pub struct Runtime {
    registry: Registry,
    bus: Bus,
    config: RuntimeConfig,
}

impl Runtime {
    /// A runtime for `registry`, draining `bus` at shutdown.
    pub fn new(registry: Registry, bus: Bus, config: RuntimeConfig) -> Self {
        Runtime {
            registry,
            bus,
            config,
        }
    }

    /// The registry (clone it to query states while the runtime runs).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A handle to request (or force) the shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.registry.shutdown_handle()
    }

    /// Start every component, wait for the first of `shutdown_signal`, a
    /// [`ShutdownHandle`] request, a component's request or escalation, then shut down:
    ///
    /// 1. stop the producers (reverse dependency order among them);
    /// 2. call [`stop_intake`](super::Component::stop_intake) of every started service
    ///    and observer (reverse dependency order; they keep running);
    /// 3. publish [`ControlEvent::Shutdown`] (so it follows the producers' trailing
    ///    events and the intake hooks' end-of-stream markers);
    /// 4. drain the bus ([`Bus::shutdown`] with `drain_deadline`);
    /// 5. stop the services in reverse dependency order;
    /// 6. stop the observers (reverse dependency order among them);
    /// 7. return the [`ShutdownReport`].
    ///
    /// `shutdown_signal` is polled from the start (so a signal handler it installs on its
    /// first poll is in place before any component starts). A request that arrives while
    /// components start lets the start finish, then shuts down. If starting fails, the
    /// started components are rolled back, the bus is shut down, and the error returned.
    pub async fn run(
        self,
        shutdown_signal: impl Future<Output = ShutdownTrigger>,
    ) -> Result<ShutdownReport, RunError> {
        let handle = self.shutdown_handle();
        let mut signal = std::pin::pin!(shutdown_signal);
        let mut signal_done = false;
        {
            let start = self.registry.start_all(self.config.start_deadline);
            let mut start = std::pin::pin!(start);
            let started = loop {
                tokio::select! {
                    biased;
                    t = &mut signal, if !signal_done => {
                        signal_done = true;
                        handle.trigger(t);
                    }
                    r = &mut start => break r,
                }
            };
            if let Err(e) = started {
                self.bus.shutdown(self.config.drain_deadline).await;
                return Err(e.into());
            }
        }
        tracing::info!(components = self.registry.names().len(), "system running");
        let requested = handle.requested();
        let reason = if signal_done {
            requested.await
        } else {
            tokio::select! {
                t = &mut signal => { handle.trigger(t); handle.requested().await }
                t = requested => t,
            }
        };
        Ok(self.shutdown(reason, &handle).await)
    }

    async fn shutdown(self, reason: ShutdownTrigger, handle: &ShutdownHandle) -> ShutdownReport {
        let began = Instant::now();
        tracing::warn!(reason = %reason, "shutting down");
        let sink = Mutex::new(Vec::new());
        let intake = Mutex::new(Vec::new());
        let bus_report: Mutex<Option<BusShutdownReport>> = Mutex::new(None);
        let cfg = self.config;
        let sequence = async {
            self.registry
                .stop_where(|k| k == ComponentKind::Producer, cfg.stop_deadline, &sink)
                .await;
            self.registry
                .intake_where(|k| k != ComponentKind::Producer, cfg.stop_deadline, &intake)
                .await;
            self.bus.publish_control(ControlEvent::Shutdown {
                reason: reason.to_string(),
            });
            let r = self.bus.shutdown(cfg.drain_deadline).await;
            *bus_report.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
            self.registry
                .stop_where(|k| k != ComponentKind::Observer, cfg.stop_deadline, &sink)
                .await;
            self.registry
                .stop_where(|_| true, cfg.stop_deadline, &sink)
                .await;
        };
        let forced = tokio::select! {
            biased;
            s = handle.forced() => Some(s),
            () = sequence => None,
        };
        let mut components = sink.into_inner().unwrap_or_else(PoisonError::into_inner);
        let intake = intake.into_inner().unwrap_or_else(PoisonError::into_inner);
        if forced.is_some() {
            for name in self.registry.not_stopped(&components) {
                components.push(ComponentStopReport {
                    name,
                    outcome: StopOutcome::Abandoned,
                    stop_ms: began.elapsed().as_millis() as u64,
                });
            }
        }
        let bus = match bus_report
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some(r) => r,
            None => self.bus.shutdown(Duration::ZERO).await,
        };
        let report = ShutdownReport {
            reason,
            components,
            intake,
            bus,
            forced: forced.is_some(),
            forced_by: forced,
            component_failed: self.registry.any_failed(),
            elapsed_ms: began.elapsed().as_millis() as u64,
        };
        tracing::info!(exit_code = report.exit_code(), "shutdown complete");
        report
    }
}
