//! `journal`: the run's durable journal as a service, and the journal settings of the
//! configuration.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard::Pattern;
use switchyard::bus::Subscription;
use switchyard::lifecycle::{BoxFuture, Component, ComponentContext, ComponentError};
use switchyard_journal::{Journal, JournalConfig, Recorder, SyncPolicy};

use crate::catalog;
use crate::config::Config;
use crate::shared::{JournalSummary, NodeShared};

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
        ..JournalConfig::default()
    }
}

/// Opens the journal at start and records every trading event its topic patterns reach,
/// plus the kill-switch audit; closes it (final write and fsync, on a blocking thread)
/// at stop, which comes after the bus drained.
pub struct JournalComponent {
    config: JournalConfig,
    patterns: Vec<String>,
    shared: Arc<NodeShared>,
    subs: Mutex<Vec<Subscription>>,
}

impl JournalComponent {
    /// A journal with `config`, recording `patterns`.
    pub fn new(config: JournalConfig, patterns: Vec<String>, shared: Arc<NodeShared>) -> Self {
        JournalComponent {
            config,
            patterns,
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
            let _ = self.shared.journal.set(journal);
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
