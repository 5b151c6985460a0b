//! Running a feed: publish a source's events on the bus, paced or at full speed.
//!
//! Topics: `market_data.trade.<symbol>` and `market_data.quote.<symbol>` (dots in a
//! symbol become `_`, so the topic stays a valid NATS subject).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard::bus::Publisher;
use switchyard::{Bus, Timestamp, Topic};
use tokio_util::sync::CancellationToken;

use super::{FileSpec, MarketSimulator, ParseError, ReplayOptions, ReplaySource, SimConfig};
use crate::model::{MarketEvent, Symbol};

/// How fast a replay runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Speed {
    /// As fast as the pipeline takes it (the bus applies backpressure).
    Max,
    /// At the recorded pace, multiplied by the factor (1.0 is real time).
    Times(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "max" => Ok(Speed::Max),
            "realtime" => Ok(Speed::Times(1.0)),
            x => match x.strip_suffix('x').map(str::parse::<f64>) {
                Some(Ok(f)) if f > 0.0 && f.is_finite() => Ok(Speed::Times(f)),
                _ => Err(format!(
                    "invalid speed {s:?}: expected max, realtime or a factor like 10x"
                )),
            },
        }
    }
}

impl std::fmt::Display for Speed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speed::Max => f.write_str("max"),
            Speed::Times(x) if *x == 1.0 => f.write_str("realtime"),
            Speed::Times(x) => write!(f, "{x}x"),
        }
    }
}

/// How a paced feed waits for an event's due time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pacing {
    /// On the runtime's timer, whose granularity is a millisecond: at 100,000 events/s the
    /// feed goes out in bursts of about a hundred events, one burst per tick.
    #[default]
    Timer,
    /// On the timer until the due time is within two milliseconds, then by polling the
    /// clock, yielding to the runtime between polls: events go out evenly spaced, as from
    /// a network feed, and the feed's worker thread is busy while it waits.
    Spin,
}

/// Wait until `due`; false if cancelled first.
async fn wait_until(due: tokio::time::Instant, pacing: Pacing, cancel: &CancellationToken) -> bool {
    use tokio::time::Instant;
    const TIMER_SLACK: Duration = Duration::from_millis(2);
    let timer_until = match pacing {
        Pacing::Timer => due,
        Pacing::Spin => due.checked_sub(TIMER_SLACK).unwrap_or(due),
    };
    if timer_until > Instant::now() {
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep_until(timer_until) => {}
        }
    }
    while Instant::now() < due {
        if cancel.is_cancelled() {
            return false;
        }
        tokio::task::yield_now().await;
    }
    true
}

/// Where market data comes from.
#[derive(Clone, Debug)]
pub enum FeedSource {
    /// The seeded simulator, `rate` events per second (None: as fast as possible), ending
    /// after `limit` events if set.
    Sim {
        /// Simulator settings.
        config: SimConfig,
        /// Events per second.
        rate: Option<u64>,
        /// Stop after this many events.
        limit: Option<u64>,
        /// How the pace is kept.
        pacing: Pacing,
    },
    /// Recorded files, merged in time order, replayed `repeat` times (each pass shifted in
    /// time after the previous one).
    Replay {
        /// The files.
        files: Vec<FileSpec>,
        /// Bad-line policy.
        options: ReplayOptions,
        /// Pace.
        speed: Speed,
        /// Passes over the data (at least 1).
        repeat: u32,
        /// How the pace is kept (at a `speed` other than `Max`).
        pacing: Pacing,
    },
}

impl FeedSource {
    /// Whether the feed waits for each event's time (the simulator at a rate, a replay at
    /// a speed other than `max`); an unpaced feed publishes as fast as it can.
    pub fn is_paced(&self) -> bool {
        match self {
            FeedSource::Sim { rate, .. } => rate.is_some_and(|r| r > 0),
            FeedSource::Replay { speed, .. } => *speed != Speed::Max,
        }
    }
}

/// Live counters of a running feed.
#[derive(Debug, Default)]
pub struct FeedStats {
    /// Events published.
    pub published: AtomicU64,
    /// Bad lines skipped.
    pub skipped: AtomicU64,
}

/// What a finished feed reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FeedSummary {
    /// Events published.
    pub published: u64,
    /// Bad lines skipped (replay with the Skip policy).
    pub skipped: u64,
    /// The first errors of skipped lines, `file:line: why`.
    pub errors: Vec<String>,
    /// True if it stopped because it was cancelled rather than at the end of its data.
    pub cancelled: bool,
}

/// Why a feed failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// A data file could not be read or has a bad line (Fail policy).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Bad simulator settings.
    #[error(transparent)]
    Sim(#[from] super::sim::SimConfigError),
    /// The bus was shut down under the feed.
    #[error("the bus shut down while the feed was publishing")]
    BusClosed,
}

/// The topic of an event.
pub fn topic_for(ev: &MarketEvent) -> Topic {
    let (kind, inst) = match ev {
        MarketEvent::Trade(t) => ("trade", &t.instrument),
        MarketEvent::Quote(q) => ("quote", &q.instrument),
    };
    let sym: String = inst
        .symbol
        .as_str()
        .chars()
        .map(|c| {
            if c == '.' || c.is_whitespace() || c == '*' || c == '>' {
                '_'
            } else {
                c
            }
        })
        .collect();
    Topic::new(&format!("market_data.{kind}.{sym}"))
        .unwrap_or_else(|_| Topic::new("market_data.unknown").expect("valid topic"))
}

struct Out {
    bus: Bus,
    /// One publisher per (kind, symbol), found by a scan: a feed has a handful, and the
    /// symbol's `Arc` usually matches by pointer (the parser reuses it), so no event
    /// hashes or allocates a key.
    publishers: Vec<(u8, Symbol, Publisher<MarketEvent>)>,
    stats: Arc<FeedStats>,
    since_yield: u32,
}

impl Out {
    async fn publish(&mut self, ev: MarketEvent) -> Result<(), FeedError> {
        let (kind, symbol) = match &ev {
            MarketEvent::Trade(t) => (0u8, &t.instrument.symbol),
            MarketEvent::Quote(q) => (1u8, &q.instrument.symbol),
        };
        let i = match self
            .publishers
            .iter()
            .position(|(k, s, _)| *k == kind && s.same(symbol))
        {
            Some(i) => i,
            None => {
                let p = self.bus.publisher::<MarketEvent>(topic_for(&ev));
                self.publishers.push((kind, symbol.clone(), p));
                self.publishers.len() - 1
            }
        };
        let p = &mut self.publishers[i].2;
        p.publish(ev).await.map_err(|_| FeedError::BusClosed)?;
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        // A source that never waits would keep the subscribers it wakes off this worker
        // thread: give them a turn now and then.
        self.since_yield += 1;
        if self.since_yield == 256 {
            self.since_yield = 0;
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

/// Publish `source` on `bus` until it ends or `cancel` fires.
pub async fn run_feed(
    bus: Bus,
    source: FeedSource,
    cancel: CancellationToken,
    stats: Arc<FeedStats>,
) -> Result<FeedSummary, FeedError> {
    let mut out = Out {
        bus: bus.clone(),
        publishers: Vec::new(),
        stats: Arc::clone(&stats),
        since_yield: 0,
    };
    let mut summary = FeedSummary::default();
    match source {
        FeedSource::Sim {
            mut config,
            rate,
            limit,
            pacing,
        } => {
            if config.start == Timestamp::ZERO {
                config.start = bus.now();
            }
            let sim = MarketSimulator::new(config)?;
            let started = tokio::time::Instant::now();
            for (i, ev) in sim.enumerate() {
                let i = i as u64;
                if limit.is_some_and(|l| i >= l) {
                    break;
                }
                if let Some(r) = rate.filter(|r| *r > 0) {
                    let due = started + Duration::from_nanos(i.saturating_mul(1_000_000_000) / r);
                    if due > tokio::time::Instant::now() && !wait_until(due, pacing, &cancel).await
                    {
                        summary.cancelled = true;
                        break;
                    }
                }
                if cancel.is_cancelled() {
                    summary.cancelled = true;
                    break;
                }
                out.publish(ev).await?;
            }
        }
        FeedSource::Replay {
            files,
            options,
            speed,
            repeat,
            pacing,
        } => {
            let mut offset = Duration::ZERO;
            'passes: for _ in 0..repeat.max(1) {
                let mut src = ReplaySource::open(files.clone(), options)?;
                let mut first: Option<Timestamp> = None;
                let mut last = Timestamp::ZERO;
                let wall = tokio::time::Instant::now();
                for ev in src.by_ref() {
                    let mut ev = ev?;
                    let ts = ev.ts_event();
                    let t0 = *first.get_or_insert(ts);
                    last = ts;
                    if let Speed::Times(f) = speed {
                        let due = wall + ts.saturating_duration_since(t0).div_f64(f);
                        if due > tokio::time::Instant::now()
                            && !wait_until(due, pacing, &cancel).await
                        {
                            summary.cancelled = true;
                            break 'passes;
                        }
                    }
                    if cancel.is_cancelled() {
                        summary.cancelled = true;
                        break 'passes;
                    }
                    if !offset.is_zero() {
                        ev.shift_time(offset);
                    }
                    out.publish(ev).await?;
                }
                let s = src.into_summary();
                summary.skipped += s.skipped();
                stats.skipped.fetch_add(s.skipped(), Ordering::Relaxed);
                for f in &s.files {
                    for e in &f.errors {
                        if summary.errors.len() < 20 {
                            summary.errors.push(e.to_string());
                        }
                    }
                }
                if let Some(t0) = first {
                    offset += last.saturating_duration_since(t0) + Duration::from_millis(1);
                }
            }
        }
    }
    summary.published = stats.published.load(Ordering::Relaxed);
    Ok(summary)
}
