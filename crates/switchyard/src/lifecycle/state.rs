//! Lifecycle states, health, and the per-component cell that records them.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::watch;

use crate::bus::Bus;
use crate::control::ControlEvent;

/// Where a component is in its life.
///
/// ```text
/// Registered → Starting → Running ⇄ Degraded
///                  │         │          │
///                  ▼         ▼          ▼
///                Failed ◀── Stopping ──▶ Stopped
/// ```
///
/// `Starting`, `Running` and `Degraded` may also go to `Failed` (start failed, supervisor
/// escalated), and `Stopping` to `Failed` (stop failed or missed its deadline). `Failed`
/// and `Stopped` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    /// Registered, not started.
    Registered,
    /// `start` is running.
    Starting,
    /// Started; every supervised task is running (or finished cleanly).
    Running,
    /// Started, but a supervised task failed and waits for its restart.
    Degraded,
    /// `stop` is running.
    Stopping,
    /// Stopped cleanly.
    Stopped,
    /// Start or stop failed, stop missed its deadline, or the supervisor gave up.
    Failed,
}

impl LifecycleState {
    /// The name used in `Display`, serde and control events, e.g. `"running"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Registered => "registered",
            LifecycleState::Starting => "starting",
            LifecycleState::Running => "running",
            LifecycleState::Degraded => "degraded",
            LifecycleState::Stopping => "stopping",
            LifecycleState::Stopped => "stopped",
            LifecycleState::Failed => "failed",
        }
    }

    /// True for `Stopped` and `Failed`.
    pub fn is_final(self) -> bool {
        matches!(self, LifecycleState::Stopped | LifecycleState::Failed)
    }

    /// True if the state machine allows `self → to`.
    pub fn can_become(self, to: LifecycleState) -> bool {
        use LifecycleState::*;
        matches!(
            (self, to),
            (Registered, Starting)
                | (Starting, Running | Degraded | Failed)
                | (Running, Degraded | Stopping | Failed)
                | (Degraded, Running | Stopping | Failed)
                | (Stopping, Stopped | Failed)
        )
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a component says about itself ([`Component::health`](super::Component::health)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Health {
    /// All good.
    Healthy,
    /// Working, with a problem.
    Degraded(String),
    /// Not working.
    Unhealthy(String),
}

/// The component's role in the data flow, which decides where it starts and stops
/// relative to the others (see the [module docs](super)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// Brings events into the system (a market data feed, a replay). Starts after every
    /// service and observer that does not depend on it (so its consumers are ready
    /// first); stops first at shutdown, before the bus drains.
    Producer,
    /// Everything else that handles events (an engine, a journal); stopped after the bus
    /// drained.
    #[default]
    Service,
    /// Watches the system (an operations HTTP API, status lines). Starts like a service;
    /// stops last at shutdown, after every service stopped, so status stays readable
    /// during the whole shutdown.
    Observer,
}

/// One component's line of [`Registry::health`](super::Registry::health), for a status API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentStatus {
    /// Name.
    pub name: String,
    /// Producer, service or observer.
    pub kind: ComponentKind,
    /// Lifecycle state.
    pub state: LifecycleState,
    /// The component's own [`Health`] while running; derived from the state otherwise.
    pub health: Health,
    /// Restarts of its supervised tasks so far.
    pub restarts: u64,
    /// The last error (start, stop, or a supervised task), if any.
    pub last_error: Option<String>,
}

/// Shared record of one component: its state channel and counters.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) bus: Bus,
    pub(crate) state: watch::Sender<LifecycleState>,
    pub(crate) restarts: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Supervised tasks waiting for their restart.
    pub(crate) backing_off: AtomicUsize,
    /// `start` succeeded: `stop` is owed.
    pub(crate) started: AtomicBool,
    /// A stop was claimed (stop runs once).
    pub(crate) stop_claimed: AtomicBool,
    /// `stop_intake` was claimed (it runs at most once).
    pub(crate) intake_claimed: AtomicBool,
}

impl Slot {
    pub(crate) fn new(name: String, bus: Bus) -> Self {
        Slot {
            name,
            bus,
            state: watch::Sender::new(LifecycleState::Registered),
            restarts: AtomicU64::new(0),
            last_error: Mutex::new(None),
            backing_off: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            stop_claimed: AtomicBool::new(false),
            intake_claimed: AtomicBool::new(false),
        }
    }

    pub(crate) fn state(&self) -> LifecycleState {
        *self.state.borrow()
    }

    pub(crate) fn set_last_error(&self, e: impl Into<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(e.into());
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Move to `to` if the state machine allows it from the current state; publish the
    /// transition on the bus (in transition order) and log it. False if not allowed.
    pub(crate) fn transition(&self, to: LifecycleState, detail: Option<String>) -> bool {
        let mut from = None;
        let changed = self.state.send_if_modified(|s| {
            if !s.can_become(to) {
                return false;
            }
            from = Some(*s);
            *s = to;
            // Published under the channel's lock so events leave in transition order.
            self.bus.publish_control(ControlEvent::Lifecycle {
                component: self.name.clone(),
                from: s_str(from),
                to: to.to_string(),
                detail: detail.clone(),
            });
            true
        });
        if changed {
            let from = s_str(from);
            match to {
                LifecycleState::Failed => tracing::error!(
                    component = %self.name, %from, to = %to, detail = detail.as_deref().unwrap_or(""),
                    "component failed"
                ),
                LifecycleState::Degraded => tracing::warn!(
                    component = %self.name, %from, to = %to, detail = detail.as_deref().unwrap_or(""),
                    "component degraded"
                ),
                _ => tracing::info!(component = %self.name, %from, to = %to, "component state"),
            }
        } else {
            tracing::debug!(component = %self.name, current = %self.state(), to = %to, "transition ignored");
        }
        changed
    }
}

fn s_str(s: Option<LifecycleState>) -> String {
    s.map(|s| s.to_string()).unwrap_or_default()
}
