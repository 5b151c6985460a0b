//! What a node reports when it stops: printed by the binary as text or JSON.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use switchyard::bus::{BusShutdownReport, BusSnapshot};
use switchyard::kill_switch::KillSwitchStatus;
use switchyard::lifecycle::ShutdownReport;
use switchyard_trading::engine::EngineView;
use switchyard_trading::feed::FeedSummary;

use crate::parity::Parity;
use crate::shared::JournalSummary;

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The replay, the journal or the simulator limit ended (or the remote feed's marker
    /// arrived).
    EndOfData,
    /// `run.duration` elapsed.
    Duration,
    /// SIGINT or SIGTERM.
    Signal,
    /// The feed failed.
    FeedFailed,
    /// Code or an operator asked.
    Requested,
    /// A component's supervisor gave up.
    Escalation,
}

/// What a replay adds to the summary.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayOutcome {
    /// The journal replayed.
    pub journal: PathBuf,
    /// Market data events replayed onto the bus.
    pub replayed: u64,
    /// Records skipped (other kinds).
    pub skipped: u64,
    /// Decisions compared with the journal's (not when only a range was replayed).
    pub parity: Option<Parity>,
}

/// The summary of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// Why it stopped.
    pub stop: StopReason,
    /// The shutdown trigger, in words.
    pub reason: String,
    /// Wall time.
    pub elapsed_secs: f64,
    /// Feed summary.
    pub feed: FeedSummary,
    /// Engine state at the end (all zero in the feed role).
    pub engine: EngineView,
    /// Kill switch at the end.
    pub kill_switch: KillSwitchStatus,
    /// Bus counters at the end.
    pub bus: BusSnapshot,
    /// The bus drain: per subscription delivered, dropped, undelivered.
    pub shutdown: BusShutdownReport,
    /// Per component, how its stop ended (the runtime's report).
    pub report: ShutdownReport,
    /// The first error that failed the run.
    pub error: Option<String>,
    /// The run's journal.
    pub journal: Option<JournalSummary>,
    /// The NATS bridge's counters at the end.
    pub nats: Option<switchyard_nats::BridgeStats>,
    /// A replay's figures and parity verdict.
    pub replay: Option<ReplayOutcome>,
    /// 0 clean, 1 the run failed (feed, unacknowledged exports), 70 a component failed,
    /// 130/143 forced by a second signal.
    pub exit_code: i32,
}

fn money(m: Option<switchyard_trading::num::Money>) -> String {
    m.map_or_else(|| "?".into(), |m| m.to_string())
}

impl RunSummary {
    fn write_engine(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.engine;
        writeln!(
            f,
            "orders {}  sent {}  fills {}  cancels {}  open {}",
            e.stats.orders, e.stats.orders_sent, e.stats.fills, e.stats.cancels, e.open_orders
        )?;
        writeln!(f, "rejections by reason:")?;
        if e.stats.rejections.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for (r, n) in &e.stats.rejections {
            writeln!(f, "  {r:<30} {n:>8}")?;
        }
        writeln!(f, "positions:")?;
        for p in &e.positions {
            writeln!(
                f,
                "  {:<32} qty {:>10}  avg {:>12}  realised {:>12}  unrealised {:>12}",
                p.instrument,
                p.quantity.to_string(),
                p.avg_price.clone().unwrap_or_else(|| "-".into()),
                p.realised_pnl.to_string(),
                money(p.unrealised_pnl)
            )?;
        }
        writeln!(
            f,
            "pnl: total {} (realised {})",
            money(e.total_pnl),
            money(e.realised_pnl)
        )?;
        if e.strategies.len() > 1 {
            writeln!(f, "by strategy:")?;
            writeln!(
                f,
                "  {:<20} {:>8} {:>8} {:>8} {:>10} {:>6} {:>14}",
                "strategy", "orders", "sent", "fills", "rejected", "open", "pnl"
            )?;
            for s in &e.strategies {
                writeln!(
                    f,
                    "  {:<20} {:>8} {:>8} {:>8} {:>10} {:>6} {:>14}",
                    s.name,
                    s.stats.orders,
                    s.stats.orders_sent,
                    s.stats.fills,
                    s.stats.rejected(),
                    s.open_orders,
                    money(s.total_pnl)
                )?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = &self.replay {
            writeln!(f, "== switchyard replay summary ==")?;
            writeln!(
                f,
                "journal {}: {} market events replayed, {} records skipped, {:.1}s",
                r.journal.display(),
                r.replayed,
                r.skipped,
                self.elapsed_secs
            )?;
            if let Some(err) = &self.error {
                writeln!(f, "error: {err}")?;
            }
            self.write_engine(f)?;
            match &r.parity {
                None => writeln!(
                    f,
                    "parity with the journal: not compared (only a range was replayed)"
                )?,
                Some(p) => {
                    writeln!(
                        f,
                        "parity with the journal: {}",
                        if p.identical {
                            "identical"
                        } else if p.prefix {
                            "holds on every decision both have (the run did not shut down: \
                             see in flight / unverified)"
                        } else {
                            "DIFFERENT"
                        }
                    )?;
                    for (kind, k) in &p.kinds {
                        write!(
                            f,
                            "  {kind:<16} recorded {:>8}  replayed {:>8}",
                            k.recorded, k.replayed
                        )?;
                        match k.first_difference {
                            Some(_) if p.prefix => writeln!(
                                f,
                                "  in flight {}  unverified {}",
                                k.in_flight, k.unverified
                            )?,
                            Some(i) => writeln!(f, "  first difference at #{i}")?,
                            None => writeln!(f)?,
                        }
                    }
                }
            }
            if let Some(j) = &self.journal {
                writeln!(
                    f,
                    "replay journal: {} ({} records)",
                    j.dir.display(),
                    j.records
                )?;
            }
            return write!(f, "{}", self.report);
        }
        writeln!(f, "== switchyard run summary ==")?;
        writeln!(
            f,
            "stopped: {:?} after {:.1}s ({})",
            self.stop, self.elapsed_secs, self.reason
        )?;
        if let Some(err) = &self.error {
            writeln!(f, "error: {err}")?;
        }
        writeln!(
            f,
            "feed: {} events published, {} bad lines skipped",
            self.feed.published, self.feed.skipped
        )?;
        for err in &self.feed.errors {
            writeln!(f, "  skipped {err}")?;
        }
        writeln!(f, "events by topic:")?;
        for t in &self.bus.topics {
            writeln!(f, "  {:<44} {:>12}", t.topic, t.published)?;
        }
        self.write_engine(f)?;
        let e = &self.engine;
        writeln!(
            f,
            "tick-to-order: p50 {:.1} µs  p99 {:.1} µs  ({} orders)",
            e.tick_to_order_us.0, e.tick_to_order_us.1, e.tick_to_order_samples
        )?;
        let ks = &self.kill_switch;
        writeln!(
            f,
            "kill switch: {} (triggers {}, repeats {}, resets {}, refused resets {})",
            if ks.active.is_empty() {
                "open"
            } else {
                "ENGAGED"
            },
            ks.counters.triggers,
            ks.counters.repeat_triggers,
            ks.counters.resets,
            ks.counters.refused_resets
        )?;
        let drops: u64 = self
            .bus
            .subscriptions
            .iter()
            .map(|s| s.dropped.total())
            .sum();
        writeln!(f, "drops: {drops}")?;
        if let Some(n) = &self.nats {
            writeln!(
                f,
                "nats: published {} (acked {}, retried {})  received {}  duplicates dropped {}  redelivered {}  resequenced {}  gaps skipped {}  out of order {}  reconnects {}",
                n.published,
                n.publish_acked,
                n.publish_retries,
                n.received,
                n.duplicates_dropped,
                n.redelivered,
                n.resequenced,
                n.gaps_skipped,
                n.out_of_order,
                n.reconnects
            )?;
        }
        if let Some(j) = &self.journal {
            writeln!(
                f,
                "journal: {} ({} records, durable through #{}); replay it with `switchyard replay {}`",
                j.dir.display(),
                j.records,
                j.durable,
                j.dir.display()
            )?;
        }
        write!(f, "{}", self.report)
    }
}
