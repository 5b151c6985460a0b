//! `journal`: the run's durable journal as a service, and the journal settings of the
//! configuration. While it runs it watches the journal: an outage (a failed write or
//! fsync: full disk, I/O error) makes its health Degraded with the reason and, by
//! default (`journal.halt_on_failure`), triggers the kill switch (scope all, halt): no
//! trading without an audit trail. When the journal writes again the gap is logged and
//! shown in `/status`. Retention (`journal.max_total_mb`, `journal.max_age`) runs over the
//! journal root at start and every `journal.check_ms`, which also measures the root's
//! usage for `/status` and `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard::Pattern;
use switchyard::bus::Subscription;
use switchyard::kill_switch::{Mode, Scope, TriggerRequest};
use switchyard::lifecycle::{BoxFuture, Component, ComponentContext, ComponentError, Health};
use switchyard_journal::retention::{self, RetentionLimits};
use switchyard_journal::{Journal, JournalConfig, Recorder, SyncPolicy};

use crate::catalog;
use crate::config::Config;
use crate::shared::{JournalRootStatus, JournalSummary, NodeShared};

/// `root/<UTC date and time>-<pid>`: a new directory per run.
pub fn run_dir(root: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    root.join(format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        std::process::id()
    ))
}

/// The journal settings of the configuration, for `dir`.
pub fn journal_config(cfg: &Config, dir: PathBuf) -> JournalConfig {
    let j = &cfg.journal;
    JournalConfig {
        dir,
        segment_bytes: j.segment_mb * 1024 * 1024,
        sync: match j.sync.as_str() {
            "always" => SyncPolicy::Always,
            "never" => SyncPolicy::Never,
            _ => SyncPolicy::Group {
                every_events: j.group_events.max(1),
                every: Duration::from_millis(j.group_ms),
            },
        },
        retry_every: Duration::from_millis(j.retry_ms.max(1)),
        ..JournalConfig::default()
    }
}

/// What the journal component does besides journaling: retention over the root, and
/// what a write failure does.
#[derive(Clone, Debug)]
pub struct JournalPolicy {
    /// The journal root: the run directory's parent.
    pub root: PathBuf,
    /// Retention limits of the root.
    pub limits: RetentionLimits,
    /// How often retention runs (and usage is measured).
    pub check_every: Duration,
    /// Trigger the kill switch (all, halt) when the journal cannot write.
    pub halt_on_failure: bool,
}

impl JournalPolicy {
    /// The `[journal]` settings, for the run directory `run_dir`.
    pub fn from_config(cfg: &Config, run_dir: &Path) -> anyhow::Result<Self> {
        let j = &cfg.journal;
        Ok(JournalPolicy {
            root: run_dir
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            limits: RetentionLimits {
                max_total_bytes: (j.max_total_mb > 0).then(|| j.max_total_mb * 1024 * 1024),
                max_age: j.max_age()?,
            },
            check_every: Duration::from_millis(j.check_ms.max(1)),
            halt_on_failure: j.halt_on_failure,
        })
    }
}

/// Opens the journal at start and records every trading event its topic patterns reach,
/// plus the kill-switch audit; closes it (final write and fsync, on a blocking thread)
/// at stop, which comes after the bus drained.
pub struct JournalComponent {
    config: JournalConfig,
    patterns: Vec<String>,
    policy: JournalPolicy,
    shared: Arc<NodeShared>,
    subs: Mutex<Vec<Subscription>>,
}

impl JournalComponent {
    /// A journal with `config`, recording `patterns`, watched as `policy` says.
    pub fn new(
        config: JournalConfig,
        patterns: Vec<String>,
        policy: JournalPolicy,
        shared: Arc<NodeShared>,
    ) -> Self {
        JournalComponent {
            config,
            patterns,
            policy,
            shared,
            subs: Mutex::new(Vec::new()),
        }
    }

    /// Where it writes.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }
}

impl Component for JournalComponent {
    fn name(&self) -> &str {
        "journal"
    }

    fn health(&self) -> Health {
        match self.shared.journal.get().and_then(Journal::outage) {
            Some(o) => Health::Degraded(o.to_string()),
            None => Health::Healthy,
        }
    }

    fn stop_deadline(&self) -> Option<Duration> {
        // The final fsync of a large buffer on a slow disk.
        Some(Duration::from_secs(60))
    }

    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let config = self.config.clone();
            let (journal, recovery) = tokio::task::spawn_blocking(move || Journal::open(config))
                .await
                .map_err(ComponentError::new)?
                .map_err(ComponentError::new)?;
            if let Some(t) = &recovery.truncated {
                tracing::warn!(%t, "journal: torn tail truncated");
            }
            let recorder = Recorder::new(journal.clone(), ctx.bus().clone());
            let mut subs = Vec::new();
            for p in &self.patterns {
                let pattern = Pattern::new(p).map_err(ComponentError::new)?;
                subs.extend(catalog::record(&recorder, p, &pattern).map_err(ComponentError::new)?);
            }
            subs.push(recorder.record_control().map_err(ComponentError::new)?);
            *self.subs.lock().unwrap_or_else(|e| e.into_inner()) = subs;
            let _ = self.shared.journal.set(journal.clone());
            let shared = Arc::clone(&self.shared);
            let policy = self.policy.clone();
            let run = self.config.dir.clone();
            enforce_retention(&shared, &policy, &run).await;
            {
                let (shared, policy, journal) = (Arc::clone(&shared), policy.clone(), journal);
                ctx.spawn("watch", move || {
                    let (shared, policy, journal, run) = (
                        Arc::clone(&shared),
                        policy.clone(),
                        journal.clone(),
                        run.clone(),
                    );
                    async move {
                        watch(&shared, &policy, &journal, &run).await;
                        Ok(())
                    }
                });
            }
            tracing::info!(dir = %self.config.dir.display(), "journal: recording");
            Ok(())
        })
    }

    fn stop<'a>(&'a self, _ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            super::unsubscribe_all(&self.subs);
            let Some(journal) = self.shared.journal.get().cloned() else {
                return Ok(());
            };
            let stats = tokio::task::spawn_blocking(move || journal.close())
                .await
                .map_err(ComponentError::new)?
                .map_err(ComponentError::new)?;
            *self
                .shared
                .journal_summary
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(JournalSummary {
                dir: self.config.dir.clone(),
                records: stats.records,
                durable: stats.durable,
            });
            Ok(())
        })
    }
}

/// Act on outages at once (health is read from the journal itself) and run retention every
/// `check_every`.
async fn watch(shared: &Arc<NodeShared>, policy: &JournalPolicy, journal: &Journal, run: &Path) {
    let mut outage = journal.watch_outage();
    let mut tick = tokio::time::interval(policy.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is now: retention ran at start
    let mut gaps_seen = journal.gaps().len();
    loop {
        tokio::select! {
            changed = outage.changed() => {
                if changed.is_err() {
                    return;
                }
                let down = *outage.borrow_and_update();
                if down {
                    on_outage(shared, policy, journal);
                } else {
                    let gaps = journal.gaps();
                    for g in gaps.iter().skip(gaps_seen) {
                        tracing::warn!(gap = %g, "journal: writing again");
                    }
                    gaps_seen = gaps.len();
                }
            }
            _ = tick.tick() => enforce_retention(shared, policy, run).await,
        }
    }
}

fn on_outage(shared: &NodeShared, policy: &JournalPolicy, journal: &Journal) {
    let reason = journal
        .outage()
        .map_or_else(|| "journal write failed".to_owned(), |o| o.reason);
    tracing::error!(%reason, halt = policy.halt_on_failure, "journal: cannot write");
    if policy.halt_on_failure {
        shared.kill_switch.trigger(TriggerRequest::new(
            Scope::All,
            Mode::Halt,
            format!("journal cannot write (no trading without an audit trail): {reason}"),
            "journal",
        ));
    }
}

/// One retention pass over the root (on a blocking thread); updates the root's status.
pub async fn enforce_retention(shared: &Arc<NodeShared>, policy: &JournalPolicy, run: &Path) {
    let (root, limits, run) = (policy.root.clone(), policy.limits, run.to_path_buf());
    let result = tokio::task::spawn_blocking(move || {
        retention::enforce(&root, Some(&run), &limits, SystemTime::now())
    })
    .await;
    let mut status = shared
        .journal_root
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let st = status.get_or_insert_with(|| JournalRootStatus {
        dir: policy.root.clone(),
        limits: policy.limits,
        ..JournalRootStatus::default()
    });
    match result {
        Ok(Ok(r)) => {
            st.usage = r.after;
            st.deleted_segments += r.deleted_segments.len() as u64;
            st.deleted_runs += r.deleted_runs.len() as u64;
            st.over_limit = r.over_limit;
            st.last_error = None;
            if r.over_limit {
                tracing::warn!(
                    root = %policy.root.display(),
                    bytes = r.after.bytes,
                    "journal retention: over max_total_mb with only open segments left"
                );
            }
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "journal retention failed");
            st.last_error = Some(e.to_string());
        }
        Err(e) => st.last_error = Some(format!("retention task: {e}")),
    }
}
