//! The run's journal: what `switchyard run` records, and `switchyard replay`, which runs
//! the trading pipeline again from a journal and compares what it decides with what the
//! journal recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;
use switchyard::bus::{BusShutdownReport, Overflow, Subscription, sync_handler};
use switchyard::clock::ManualClock;
use switchyard::control::ControlEvent;
use switchyard::{Bus, Envelope, Pattern, Timestamp};
use switchyard_journal::{
    Journal, JournalConfig, JournalReader, Pace, ReadFilter, Recorder, Replayer, SyncPolicy,
};
use switchyard_trading::engine::EngineView;
use switchyard_trading::exchange::ExecEvent;
use switchyard_trading::feed::Speed;
use switchyard_trading::model::{MarketEvent, OrderRejected, OrderRequest};
use switchyard_trading::wire::{self, FeedEnd};

use crate::config::Config;

/// A journal being written by a run.
pub struct RunJournal {
    /// The journal.
    pub journal: Journal,
    /// Where.
    pub dir: PathBuf,
    _subs: Vec<Subscription>,
}

/// What the summary says about the journal.
#[derive(Clone, Debug, Serialize)]
pub struct JournalSummary {
    /// Directory of the run's journal.
    pub dir: PathBuf,
    /// Records written.
    pub records: u64,
    /// Highest record index known to be on disk.
    pub durable: u64,
}

/// `journal/<UTC date and time>-<pid>`: a new directory per run.
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

/// Record every trading event type whose topics `patterns` can reach, and the kill-switch
/// audit.
fn record(recorder: &Recorder, patterns: &[String]) -> anyhow::Result<Vec<Subscription>> {
    let mut subs = Vec::new();
    for p in patterns {
        let pat = Pattern::new(p).with_context(|| format!("journal.topics: {p:?}"))?;
        let reaches = |space: &str| pat.overlaps(&Pattern::new(space).expect("valid pattern"));
        if reaches(wire::MARKET_DATA) {
            subs.push(recorder.record::<MarketEvent>(p, wire::MARKET_EVENT)?);
        }
        if reaches(wire::ORDER_REQUESTS) {
            subs.push(recorder.record::<OrderRequest>(p, wire::ORDER_REQUEST)?);
        }
        if reaches(wire::ORDER_REJECTIONS) {
            subs.push(recorder.record::<OrderRejected>(p, wire::ORDER_REJECTED)?);
        }
        if reaches(wire::EXEC_EVENTS) {
            subs.push(recorder.record::<ExecEvent>(p, wire::EXEC_EVENT)?);
        }
        if reaches(wire::FEED_END_TOPIC) {
            subs.push(recorder.record::<FeedEnd>(p, wire::FEED_END)?);
        }
    }
    subs.push(recorder.record_control()?);
    Ok(subs)
}

/// Open a new journal for this run under `root` (or exactly at `dir` when `exact`) and
/// start recording. None when the journal is disabled.
pub fn start(cfg: &Config, bus: &Bus, dir: PathBuf) -> anyhow::Result<RunJournal> {
    let (journal, recovery) = Journal::open(journal_config(cfg, dir.clone()))
        .with_context(|| format!("opening the journal in {}", dir.display()))?;
    if let Some(t) = &recovery.truncated {
        tracing::warn!(%t, "journal: torn tail truncated");
    }
    let recorder = Recorder::new(journal.clone(), bus.clone());
    let subs = record(&recorder, &cfg.journal.topics)?;
    tracing::info!(dir = %dir.display(), "journal: recording");
    Ok(RunJournal {
        journal,
        dir,
        _subs: subs,
    })
}

impl RunJournal {
    /// After the bus has drained: write and fsync what is left, close.
    pub fn close(self) -> anyhow::Result<JournalSummary> {
        let stats = self
            .journal
            .close()
            .with_context(|| format!("closing the journal in {}", self.dir.display()))?;
        Ok(JournalSummary {
            dir: self.dir,
            records: stats.records,
            durable: stats.durable,
        })
    }
}

/// Orders, rejections and executions as their journal bytes, per kind, in order.
type Decisions = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

/// Capture what the pipeline decides on `bus`, encoded as the journal encodes it.
fn capture(bus: &Bus) -> anyhow::Result<(Arc<Mutex<Decisions>>, Vec<Subscription>)> {
    fn tap<T: Serialize + Send + Sync + 'static>(
        bus: &Bus,
        pattern: &str,
        kind: &'static str,
        into: &Arc<Mutex<Decisions>>,
    ) -> anyhow::Result<Subscription> {
        let into = Arc::clone(into);
        Ok(bus
            .subscription::<T>(pattern)?
            .name(format!("replay-capture:{kind}"))
            .capacity(65_536)
            .overflow(Overflow::Block)
            .subscribe(sync_handler(move |ev: &Envelope<T>| {
                let bytes = switchyard_journal::encode_payload(ev.payload())?;
                into.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(kind)
                    .or_default()
                    .push((ev.topic.as_str().to_owned(), bytes));
                Ok(())
            }))?)
    }
    let d = Arc::new(Mutex::new(Decisions::new()));
    let subs = vec![
        tap::<OrderRequest>(bus, wire::ORDER_REQUESTS, wire::ORDER_REQUEST, &d)?,
        tap::<OrderRejected>(bus, wire::ORDER_REJECTIONS, wire::ORDER_REJECTED, &d)?,
        tap::<ExecEvent>(bus, wire::EXEC_EVENTS, wire::EXEC_EVENT, &d)?,
    ];
    Ok((d, subs))
}

/// The decisions recorded in a journal.
fn recorded(path: &Path) -> anyhow::Result<Decisions> {
    let mut d = Decisions::new();
    let reader = JournalReader::open(path)?;
    for rec in reader.records(ReadFilter::default()) {
        let rec = rec?;
        let kind = match rec.kind.as_str() {
            wire::ORDER_REQUEST => wire::ORDER_REQUEST,
            wire::ORDER_REJECTED => wire::ORDER_REJECTED,
            wire::EXEC_EVENT => wire::EXEC_EVENT,
            _ => continue,
        };
        d.entry(kind).or_default().push((rec.topic, rec.payload));
    }
    Ok(d)
}

/// How a replay's decisions compare with the journal's.
#[derive(Clone, Debug, Serialize)]
pub struct Parity {
    /// True if every kind has the same events in the same order.
    pub identical: bool,
    /// Per kind: recorded count, replayed count, first differing position.
    pub kinds: BTreeMap<&'static str, KindParity>,
}

/// One kind's comparison.
#[derive(Clone, Debug, Serialize)]
pub struct KindParity {
    /// In the journal.
    pub recorded: usize,
    /// From the replay.
    pub replayed: usize,
    /// Index of the first event that differs (or where one list ends early).
    pub first_difference: Option<usize>,
}

fn compare(recorded: &Decisions, replayed: &Decisions) -> Parity {
    let mut kinds = BTreeMap::new();
    for kind in [wire::ORDER_REQUEST, wire::ORDER_REJECTED, wire::EXEC_EVENT] {
        let a = recorded.get(kind).map_or(&[][..], Vec::as_slice);
        let b = replayed.get(kind).map_or(&[][..], Vec::as_slice);
        let first_difference = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i));
        kinds.insert(
            kind,
            KindParity {
                recorded: a.len(),
                replayed: b.len(),
                first_difference,
            },
        );
    }
    Parity {
        identical: kinds.values().all(|k| k.first_difference.is_none()),
        kinds,
    }
}

/// `switchyard replay` options.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// The journal to replay.
    pub path: PathBuf,
    /// Pace.
    pub speed: Speed,
    /// Only records in this envelope sequence range.
    pub seq: (Option<u64>, Option<u64>),
    /// Only records in this time range (ns since the Unix epoch).
    pub time: (Option<u64>, Option<u64>),
    /// Record the replay into this journal directory.
    pub journal: Option<PathBuf>,
}

/// The summary of a replay.
#[derive(Serialize)]
pub struct ReplaySummary {
    /// The journal replayed.
    pub journal: PathBuf,
    /// Market data events replayed onto the bus.
    pub replayed: u64,
    /// Records skipped (other kinds, or outside the range).
    pub skipped: u64,
    /// Wall time.
    pub elapsed_secs: f64,
    /// Engine state at the end.
    pub engine: EngineView,
    /// Decisions compared with the journal's (not when only a range was replayed).
    pub parity: Option<Parity>,
    /// The replay's own journal, if recorded.
    pub recorded: Option<JournalSummary>,
    /// Bus drain report.
    pub shutdown: BusShutdownReport,
}

/// Run the pipeline from a journal's market data, paced as asked, on a replay clock.
pub async fn replay(cfg: Config, opts: ReplayOptions) -> anyhow::Result<(ReplaySummary, i32)> {
    let started = Instant::now();
    // Check every frame first: a damaged journal is not replayed partway.
    let check = switchyard_journal::verify(&opts.path)
        .with_context(|| format!("journal {}", opts.path.display()))?;
    if !check.ok() {
        anyhow::bail!("refusing to replay a damaged journal:\n{check}");
    }
    let clock = Arc::new(ManualClock::new(Timestamp::ZERO));
    let bus = Bus::with_clock(clock.clone());
    let (pipeline, _engine) = crate::run::build(&cfg, bus.clone())?;
    let (decisions, _taps) = capture(&bus)?;
    let own = match &opts.journal {
        Some(dir) => Some(start(&cfg, &bus, dir.clone())?),
        None => None,
    };
    let pace = match opts.speed {
        Speed::Max => Pace::Max,
        Speed::Times(f) => Pace::Original { speed: f },
    };
    let filter = ReadFilter {
        seq: opts.seq.0.unwrap_or(0)..=opts.seq.1.unwrap_or(u64::MAX),
        time: Timestamp(opts.time.0.unwrap_or(0))..=Timestamp(opts.time.1.unwrap_or(u64::MAX)),
        topics: vec![Pattern::new(wire::MARKET_DATA)?],
        ..ReadFilter::default()
    };
    let stats = Replayer::new(&opts.path)
        .decoder::<MarketEvent>(wire::MARKET_EVENT)
        .run(&bus, Some(&clock), pace, filter)
        .await
        .with_context(|| format!("replaying {}", opts.path.display()))?;
    bus.publish_control(ControlEvent::Shutdown {
        reason: "end of journal".into(),
    });
    let shutdown = bus
        .shutdown(Duration::from_millis(cfg.run.drain_deadline_ms))
        .await;
    let recorded_own = own.map(RunJournal::close).transpose()?;
    let replayed = std::mem::take(&mut *decisions.lock().unwrap_or_else(|e| e.into_inner()));
    let whole = opts.seq == (None, None) && opts.time == (None, None);
    let parity = if whole {
        Some(compare(&recorded(&opts.path)?, &replayed))
    } else {
        None
    };
    let summary = ReplaySummary {
        journal: opts.path,
        replayed: stats.published,
        skipped: stats.skipped,
        elapsed_secs: started.elapsed().as_secs_f64(),
        engine: pipeline.view(),
        parity,
        recorded: recorded_own,
        shutdown,
    };
    Ok((summary, 0))
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.engine;
        writeln!(f, "== switchyard replay summary ==")?;
        writeln!(
            f,
            "journal {}: {} market events replayed, {} records skipped, {:.1}s",
            self.journal.display(),
            self.replayed,
            self.skipped,
            self.elapsed_secs
        )?;
        writeln!(
            f,
            "orders {}  sent {}  fills {}  cancels {}  open {}",
            e.stats.orders, e.stats.orders_sent, e.stats.fills, e.stats.cancels, e.open_orders
        )?;
        writeln!(
            f,
            "pnl: total {} (realised {})",
            e.total_pnl.map_or_else(|| "?".into(), |m| m.to_string()),
            e.realised_pnl.map_or_else(|| "?".into(), |m| m.to_string())
        )?;
        match &self.parity {
            None => writeln!(
                f,
                "parity with the journal: not compared (only a range was replayed)"
            )?,
            Some(parity) => {
                writeln!(
                    f,
                    "parity with the journal: {}",
                    if parity.identical {
                        "identical"
                    } else {
                        "DIFFERENT"
                    }
                )?;
                for (kind, k) in &parity.kinds {
                    write!(
                        f,
                        "  {kind:<16} recorded {:>8}  replayed {:>8}",
                        k.recorded, k.replayed
                    )?;
                    match k.first_difference {
                        Some(i) => writeln!(f, "  first difference at #{i}")?,
                        None => writeln!(f)?,
                    }
                }
            }
        }
        if let Some(j) = &self.recorded {
            writeln!(
                f,
                "replay journal: {} ({} records)",
                j.dir.display(),
                j.records
            )?;
        }
        write!(f, "{}", self.shutdown)
    }
}
