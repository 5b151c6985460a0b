//! `switchyard run`: the paper-trading pipeline.
//!
//! feed → bus → trading engine (strategy → risk guard → breaker → paper exchange) → fills
//! back to the strategy and positions; the kill switch and its automatic triggers are live,
//! the operations API serves status, metrics and kill/reset.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use switchyard::breaker::Breaker;
use switchyard::bus::{BusShutdownReport, BusSnapshot, Overflow, Subscription};
use switchyard::control::ControlEvent;
use switchyard::kill_switch::{KillPolicy, KillSwitch, OperatorSecret};
use switchyard::{Bus, Timestamp, Topic};
use switchyard_trading::engine::{EngineCore, EngineHandler, EngineView};
use switchyard_trading::exchange::{ExchangeConfig, PaperExchange};
use switchyard_trading::feed::{
    FeedSource, FeedStats, FeedSummary, FileSpec, ReplayOptions, SimConfig, SimInstrument, run_feed,
};
use switchyard_trading::model::{Instrument, InstrumentId, MarketEvent};
use switchyard_trading::risk::RiskGuard;
use switchyard_trading::strategy::{CrossoverConfig, MovingAverageCrossover};
use switchyard_trading::wire::{self, FeedEnd};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Role};

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The replay or the simulator limit ended.
    EndOfData,
    /// `--duration` elapsed.
    Duration,
    /// SIGINT or SIGTERM.
    Signal,
    /// The feed failed.
    FeedFailed,
}

/// Output settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Output {
    /// No status lines.
    pub quiet: bool,
    /// Summary as JSON.
    pub json: bool,
}

/// Everything the run built, shared with the operations API.
#[derive(Clone)]
pub struct Pipeline {
    /// The bus.
    pub bus: Bus,
    /// The kill switch.
    pub kill_switch: KillSwitch,
    /// Breaker in front of the exchange.
    pub breaker: Breaker,
    /// The engine.
    pub engine: Arc<Mutex<EngineCore>>,
    /// Feed counters.
    pub feed_stats: Arc<FeedStats>,
    /// True while the feed runs and the engine is subscribed.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// The run's journal, if any.
    pub journal: Option<switchyard_journal::Journal>,
    /// The NATS bridge, if any.
    pub bridge: Option<switchyard_nats::Bridge>,
}

impl Pipeline {
    /// Engine counters, positions and P&L.
    pub fn view(&self) -> EngineView {
        self.engine.lock().unwrap_or_else(|e| e.into_inner()).view()
    }
}

/// The summary printed at exit.
#[derive(Serialize)]
pub struct Summary {
    /// Why it stopped.
    pub stop: StopReason,
    /// Wall time.
    pub elapsed_secs: f64,
    /// Feed summary.
    pub feed: FeedSummary,
    /// Engine state at the end.
    pub engine: EngineView,
    /// Kill switch at the end.
    pub kill_switch: switchyard::kill_switch::KillSwitchStatus,
    /// Bus counters at the end.
    pub bus: BusSnapshot,
    /// Bus drain report.
    pub shutdown: BusShutdownReport,
    /// Error, if the feed failed.
    pub error: Option<String>,
    /// The run's journal.
    pub journal: Option<crate::journal::JournalSummary>,
    /// The NATS bridge's counters at the end.
    pub nats: Option<switchyard_nats::BridgeStats>,
}

fn secret(cfg: &Config) -> anyhow::Result<Option<OperatorSecret>> {
    let ks = &cfg.kill_switch;
    if !ks.secret_file.is_empty() {
        return OperatorSecret::from_file(&ks.secret_file)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("kill_switch.secret_file: {e}"));
    }
    match OperatorSecret::from_env(&ks.secret_env) {
        Ok(s) => Ok(Some(s)),
        Err(switchyard::kill_switch::SecretError::MissingEnv { .. }) => {
            tracing::warn!(
                env = %ks.secret_env,
                "no operator secret configured: kill-switch resets are refused"
            );
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("kill_switch.secret_env: {e}")),
    }
}

/// The feed source the configuration describes.
pub fn feed_source(cfg: &Config) -> anyhow::Result<FeedSource> {
    Ok(match cfg.run.feed.as_str() {
        "replay" => FeedSource::Replay {
            files: cfg.run.files.iter().map(FileSpec::new).collect(),
            options: ReplayOptions {
                policy: cfg.bad_line_policy()?,
                ..ReplayOptions::default()
            },
            speed: cfg.speed()?,
            repeat: cfg.run.repeat,
        },
        _ => FeedSource::Sim {
            config: SimConfig {
                seed: cfg.sim.seed,
                instruments: cfg
                    .sim
                    .instruments
                    .iter()
                    .map(|i| SimInstrument {
                        id: InstrumentId::new(i.venue.as_str(), i.symbol.as_str()),
                        start_mid: i.start_mid,
                        tick: i.tick,
                        spread_ticks: i.spread_ticks,
                        max_step_ticks: i.max_step_ticks,
                        lot: i.lot,
                        max_size_lots: i.max_size_lots,
                    })
                    .collect(),
                start: Timestamp::ZERO,
                interval: Duration::from_micros(cfg.sim.step_us),
                trade_per_mille: cfg.sim.trade_per_mille,
            },
            rate: Some(cfg.sim.rate).filter(|r| *r > 0),
            limit: Some(cfg.sim.limit).filter(|l| *l > 0),
        },
    })
}

/// The strategy, risk guard and paper exchange the configuration describes.
pub fn trading_parts(
    cfg: &Config,
) -> anyhow::Result<(MovingAverageCrossover, RiskGuard, PaperExchange)> {
    let strategy = MovingAverageCrossover::new(CrossoverConfig {
        name: cfg.strategy.name.as_str().into(),
        instrument: cfg.instrument(),
        fast: cfg.strategy.fast,
        slow: cfg.strategy.slow,
        max_position: cfg.strategy.max_position,
        allow_short: cfg.strategy.allow_short,
    })
    .map_err(|e| anyhow::anyhow!("strategy: {e}"))?;
    let guard = RiskGuard::new(cfg.risk.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut exchange = PaperExchange::new(ExchangeConfig {
        latency: Duration::from_millis(cfg.exchange.latency_ms),
        taker_fee_bps: cfg.exchange.taker_fee_bps,
        maker_fee_bps: cfg.exchange.maker_fee_bps,
    });
    exchange.add_instrument(Instrument::new(
        cfg.instrument(),
        cfg.exchange.tick,
        cfg.exchange.lot,
    ));
    Ok((strategy, guard, exchange))
}

/// Build the pipeline: bus, kill switch, breaker, engine subscription.
pub fn build(cfg: &Config, bus: Bus) -> anyhow::Result<(Pipeline, Subscription)> {
    let kill_switch = KillSwitch::new(cfg.kill_switch.settings.clone(), secret(cfg)?, bus.clock())
        .map_err(|e| anyhow::anyhow!("kill_switch: {e}"))?;
    {
        let b = bus.clone();
        kill_switch.set_listener(Arc::new(move |ev| {
            b.publish_control(ControlEvent::KillSwitch(ev.clone()));
        }));
    }
    let breaker = Breaker::new("exchange", cfg.breaker.clone())
        .map_err(|e| anyhow::anyhow!("breaker: {e}"))?;
    {
        let b = bus.clone();
        breaker.on_transition(Arc::new(move |t| {
            b.publish_control(ControlEvent::Breaker(t.clone()));
        }));
    }
    let policy = KillPolicy::new(cfg.policy.clone(), Instant::now())
        .map_err(|e| anyhow::anyhow!("policy: {e}"))?;
    let (strategy, guard, exchange) = trading_parts(cfg)?;
    let engine = Arc::new(Mutex::new(EngineCore::new(
        bus.clone(),
        Box::new(strategy),
        guard,
        exchange,
        kill_switch.clone(),
        breaker.clone(),
        Some(policy),
        cfg.exchange.venue.clone(),
    )));
    let sub = bus
        .subscription::<MarketEvent>("market_data.>")?
        .name("trading-engine")
        .capacity(8192)
        .overflow(Overflow::Block)
        .control(true)
        .subscribe(EngineHandler::new(Arc::clone(&engine)))
        .context("subscribing the trading engine")?;
    Ok((
        Pipeline {
            bus,
            kill_switch,
            breaker,
            engine,
            feed_stats: Arc::new(FeedStats::default()),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            journal: None,
            bridge: None,
        },
        sub,
    ))
}

/// Wait for SIGINT or SIGTERM.
pub async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// Run until the data ends, the duration passes, or a signal arrives.
pub async fn run(cfg: Config, out: Output) -> anyhow::Result<(Summary, i32)> {
    let started = Instant::now();
    let role = cfg.role()?;
    let bus = Bus::new();
    let (mut pipeline, engine_sub) = build(&cfg, bus.clone())?;
    if role == Role::Feed {
        // Market data goes out over NATS; the strategy runs elsewhere.
        engine_sub.unsubscribe();
    }
    let remote = match role {
        Role::Strategy => Some(crate::scale::RemoteFeed::new(
            &bus,
            Arc::clone(&pipeline.feed_stats),
        )?),
        _ => None,
    };
    let journal = if cfg.journal.enabled {
        let dir = crate::journal::run_dir(&cfg.journal.dir);
        if !out.quiet {
            eprintln!("journal: {}", dir.display());
        }
        Some(crate::journal::start(&cfg, &bus, dir)?)
    } else {
        None
    };
    pipeline.journal = journal.as_ref().map(|j| j.journal.clone());
    let bridge = crate::scale::start(&cfg, role, &bus).await?;
    pipeline.bridge = bridge.clone();
    let http = match cfg.http_addr()? {
        Some(addr) => Some(crate::ops::start(addr, &pipeline).await?),
        None => None,
    };
    let cancel = CancellationToken::new();
    let feed = match remote {
        Some(mut remote) => {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    end = remote.finished() => {
                        tracing::info!(
                            origin = %end.origin,
                            published = end.published,
                            "end of feed"
                        );
                        Ok(FeedSummary::default())
                    }
                    _ = cancel.cancelled() => Ok(FeedSummary {
                        published: remote.received(),
                        cancelled: true,
                        ..FeedSummary::default()
                    }),
                }
            })
        }
        None => tokio::spawn(run_feed(
            bus.clone(),
            feed_source(&cfg)?,
            cancel.clone(),
            Arc::clone(&pipeline.feed_stats),
        )),
    };
    pipeline.ready.store(true, Ordering::Release);
    let status = (!out.quiet && cfg.run.status_interval_secs > 0).then(|| {
        tokio::spawn(status_lines(
            pipeline.clone(),
            Duration::from_secs(cfg.run.status_interval_secs),
        ))
    });
    let duration = cfg.duration()?;
    let sleep = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let mut feed = feed;
    let (stop, feed_result) = tokio::select! {
        r = &mut feed => (StopReason::EndOfData, Some(r)),
        _ = sleep => (StopReason::Duration, None),
        s = signal() => {
            tracing::info!(signal = s, "shutting down");
            // A second signal during shutdown forces the exit.
            tokio::spawn(async {
                let s = signal().await;
                eprintln!("second {s}: forced exit");
                std::process::exit(if s == "SIGTERM" { 143 } else { 130 });
            });
            (StopReason::Signal, None)
        }
    };
    // Producers first: no new events enter.
    cancel.cancel();
    let feed_result = match feed_result {
        Some(r) => r,
        None => feed.await,
    };
    let (feed_summary, error, stop) = match feed_result {
        Ok(Ok(s)) => (s, None, stop),
        Ok(Err(e)) => (
            FeedSummary::default(),
            Some(e.to_string()),
            StopReason::FeedFailed,
        ),
        Err(e) => (
            FeedSummary::default(),
            Some(format!("feed task: {e}")),
            StopReason::FeedFailed,
        ),
    };
    pipeline.ready.store(false, Ordering::Release);
    if let Some(b) = &bridge {
        // Importers are producers too: stop them before the bus drains, so that what
        // they already acked is in the bus and what they pulled but did not hand over
        // goes back to the server for the next run.
        b.stop_importing().await;
    }
    let mut error = error;
    if let (Role::Feed, Some(b)) = (role, &bridge) {
        // Every market event reaches NATS (JetStream: stored and acknowledged) before the
        // end-of-feed marker is published, so the marker follows them in the stream.
        let flushed = tokio::select! {
            r = b.flush() => r.map_err(|e| e.to_string()),
            s = signal() => Err(format!("{s} while waiting for NATS to acknowledge the feed")),
        };
        match flushed {
            Ok(()) => {
                let end = FeedEnd {
                    origin: b.origin().to_owned(),
                    published: pipeline.feed_stats.published.load(Ordering::Relaxed),
                };
                let topic = Topic::new(wire::FEED_END_TOPIC).expect("valid topic");
                if bus.publish(topic, end).await.is_err() {
                    error.get_or_insert_with(|| "could not publish the end-of-feed marker".into());
                }
            }
            Err(e) => {
                error.get_or_insert(format!("NATS: {e}"));
            }
        }
    }
    bus.publish_control(ControlEvent::Shutdown {
        reason: format!("{stop:?}"),
    });
    let shutdown = bus
        .shutdown(Duration::from_millis(cfg.run.drain_deadline_ms))
        .await;
    if let Some(s) = status {
        s.abort();
    }
    // The bus has drained into the bridge's exporters: wait for their acks, then stop.
    let nats = match bridge {
        Some(b) => {
            let report = b.shutdown().await;
            if report.unflushed > 0 {
                error.get_or_insert(format!(
                    "NATS bridge stopped with {} exported events not acknowledged",
                    report.unflushed
                ));
            }
            Some(report.stats)
        }
        None => None,
    };
    // Everything the bus delivered is in the journal's buffer: write and fsync it.
    let journal = journal.map(crate::journal::RunJournal::close).transpose()?;
    if let Some(h) = http {
        h.stop().await;
    }
    let mut feed_summary = feed_summary;
    if role == Role::Strategy {
        // Market events this process received, now that the bus has drained.
        feed_summary.published = pipeline.feed_stats.published.load(Ordering::Relaxed);
    }
    let summary = Summary {
        stop,
        elapsed_secs: started.elapsed().as_secs_f64(),
        feed: feed_summary,
        engine: pipeline.view(),
        kill_switch: pipeline.kill_switch.status(),
        bus: bus.snapshot(),
        shutdown,
        error,
        journal,
        nats,
    };
    let code = if summary.error.is_some() { 1 } else { 0 };
    Ok((summary, code))
}

async fn status_lines(p: Pipeline, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut last = 0u64;
    let mut last_t = Instant::now();
    loop {
        tick.tick().await;
        let n = p.feed_stats.published.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate = (n - last) as f64 / now.duration_since(last_t).as_secs_f64();
        last = n;
        last_t = now;
        eprintln!("{}", status_line(&p, n, rate));
    }
}

/// One status line.
pub fn status_line(p: &Pipeline, events: u64, rate: f64) -> String {
    let v = p.view();
    let drops: u64 = p
        .bus
        .snapshot()
        .subscriptions
        .iter()
        .map(|s| s.dropped.total())
        .sum();
    let rejects: u64 = v.stats.rejections.values().sum();
    format!(
        "status: events {events} ({rate:.0}/s) orders {} fills {} rejections {rejects} pnl {} kill-switch {} drops {drops}",
        v.stats.orders,
        v.stats.fills,
        v.total_pnl
            .map(|m| m.to_string())
            .unwrap_or_else(|| "?".into()),
        if p.kill_switch.is_engaged() {
            "ENGAGED"
        } else {
            "open"
        },
    )
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.engine;
        writeln!(f, "== switchyard run summary ==")?;
        writeln!(
            f,
            "stopped: {:?} after {:.1}s",
            self.stop, self.elapsed_secs
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
                p.unrealised_pnl
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "?".into())
            )?;
        }
        writeln!(
            f,
            "pnl: total {} (realised {})",
            e.total_pnl
                .map(|m| m.to_string())
                .unwrap_or_else(|| "?".into()),
            e.realised_pnl
                .map(|m| m.to_string())
                .unwrap_or_else(|| "?".into())
        )?;
        writeln!(
            f,
            "tick-to-order: p50 {:.1} µs  p99 {:.1} µs  ({} orders)",
            e.tick_to_order_us.0, e.tick_to_order_us.1, e.tick_to_order_samples
        )?;
        writeln!(
            f,
            "kill switch: {} (triggers {}, resets {}, refused resets {})",
            if self.kill_switch.active.is_empty() {
                "open"
            } else {
                "ENGAGED"
            },
            self.kill_switch.counters.triggers,
            self.kill_switch.counters.resets,
            self.kill_switch.counters.refused_resets
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
                "nats: published {} (acked {}, retried {})  received {}  duplicates dropped {}  redelivered {}  out of order {}  reconnects {}",
                n.published,
                n.publish_acked,
                n.publish_retries,
                n.received,
                n.duplicates_dropped,
                n.redelivered,
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
        write!(f, "{}", self.shutdown)
    }
}
