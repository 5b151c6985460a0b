//! What the node's components share: the handles every part reads (bus, kill switch,
//! engine, feed counters, bridge, journal) and what they report at the end.

use std::sync::{Arc, Mutex, OnceLock};

use switchyard::Bus;
use switchyard::breaker::Breaker;
use switchyard::kill_switch::KillSwitch;
use switchyard::lifecycle::{LifecycleState, Registry};
use switchyard_trading::engine::{EngineCore, EngineView};
use switchyard_trading::feed::{FeedStats, FeedSummary};

use crate::config::Role;

/// The journal's part of the summary.
#[derive(Clone, Debug, serde::Serialize)]
pub struct JournalSummary {
    /// Directory of the run's journal.
    pub dir: std::path::PathBuf,
    /// Records written.
    pub records: u64,
    /// Highest record index known to be on disk.
    pub durable: u64,
}

/// The journal root (`journal.dir`, every run's journal under it) as retention last saw
/// it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct JournalRootStatus {
    /// The root directory.
    pub dir: std::path::PathBuf,
    /// What it holds.
    pub usage: switchyard_journal::retention::RootUsage,
    /// The limits.
    pub limits: switchyard_journal::retention::RetentionLimits,
    /// Segments retention deleted since the node started.
    pub deleted_segments: u64,
    /// Run directories retention deleted since the node started.
    pub deleted_runs: u64,
    /// Still over `max_total_mb` after the last pass (only open segments were left).
    pub over_limit: bool,
    /// The last pass's error, if it failed (e.g. a file it could not delete).
    pub last_error: Option<String>,
}

/// Handles shared by the node's components and its operations API.
pub struct NodeShared {
    /// The bus.
    pub bus: Bus,
    /// The kill switch.
    pub kill_switch: KillSwitch,
    /// The engine (built in every role; subscribed only where strategies run, so in the
    /// feed role its counters stay zero and no `trading-engine` component is listed).
    pub engine: Arc<Mutex<EngineCore>>,
    /// One breaker per venue.
    pub breakers: Vec<Breaker>,
    /// Market events published by the feed (or received from NATS).
    pub feed_stats: Arc<FeedStats>,
    /// The component registry (states and health).
    pub registry: Registry,
    /// Which part of a multi-process pipeline this node runs.
    pub role: Role,
    /// The NATS bridge, once started.
    pub bridge: OnceLock<switchyard_nats::Bridge>,
    /// The journal, once open.
    pub journal: OnceLock<switchyard_journal::Journal>,
    /// The journal root's usage and retention, once the journal is open.
    pub journal_root: Mutex<Option<JournalRootStatus>>,
    /// The journal's final figures, once closed.
    pub journal_summary: Mutex<Option<JournalSummary>>,
    /// What the feed reported when it stopped.
    pub feed_summary: Mutex<Option<FeedSummary>>,
    /// Errors that make the run fail (exit code 1): feed failure, unacknowledged exports.
    pub errors: Mutex<Vec<String>>,
}

impl NodeShared {
    /// Engine counters, positions and P&L, in total and per strategy.
    pub fn view(&self) -> EngineView {
        self.engine.lock().unwrap_or_else(|p| p.into_inner()).view()
    }

    /// Records an error that fails the run.
    pub fn fail(&self, error: impl Into<String>) {
        let e = error.into();
        tracing::error!(error = %e, "node: run failed");
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    /// Whether the node is ready: every component running, no shutdown asked for.
    pub fn is_ready(&self) -> bool {
        !self.registry.shutdown_handle().is_requested()
            && self
                .registry
                .states()
                .iter()
                .all(|(_, s)| matches!(s, LifecycleState::Running | LifecycleState::Degraded))
    }
}
