//! The whole pipeline at max speed on the real BTCUSDT files, run by the node (one
//! strategy, then four), against two same-run baselines: the same engine (with the
//! kill-switch policy) wired by hand on a bus, its feed spawned on a worker, without the
//! node's components — what the binary did before the node; and the same chain called
//! synchronously without the bus (the floor the bus adds to).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard::breaker::Breaker;
use switchyard::bus::Overflow;
use switchyard::kill_switch::{KillPolicy, KillSwitch, KillSwitchConfig};
use switchyard::{Bus, Envelope, Payload};
use switchyard_node::{Config, Node};
use switchyard_trading::engine::{EngineCore, EngineHandler};
use switchyard_trading::exchange::{ExchangeConfig, PaperExchange};
use switchyard_trading::feed::{
    FeedStats, FileSpec, Pacing, ReplayOptions, ReplaySource, run_feed,
};
use switchyard_trading::model::{Instrument, MarketEvent};
use switchyard_trading::risk::RiskGuard;
use switchyard_trading::strategy::{CrossoverConfig, MovingAverageCrossover};

/// The committed BTCUSDT files: from the working directory, else from the source tree.
pub fn testdata(name: &str) -> PathBuf {
    let local = PathBuf::from("testdata").join(name);
    if local.exists() {
        return local;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata")).join(name)
}

/// The trades and quotes files.
pub fn btc_files() -> Vec<PathBuf> {
    vec![
        testdata("tardis_binance-futures_BTCUSDT_trades.csv"),
        testdata("tardis_binance-futures_BTCUSDT_quotes.csv"),
    ]
}

/// Rounds of the one-strategy pipeline (feed on its own thread, then on a worker).
const PIPELINE_ROUNDS: usize = 3;

/// Events in one pass over the BTCUSDT files.
const PER_PASS: u64 = 19_998;

fn bench_config(repeat: u32, strategies: usize) -> anyhow::Result<Config> {
    let mut cfg = Config::load(None)?;
    cfg.run.feed = "replay".into();
    cfg.run.files = btc_files();
    cfg.run.speed = "max".into();
    cfg.run.repeat = repeat;
    cfg.run.http = String::new();
    cfg.journal.enabled = false;
    // Let the strategies trade freely so orders flow through the whole chain.
    cfg.risk.orders_per_second = 1_000_000;
    cfg.risk.burst = 1_000_000;
    cfg.risk.max_open_orders = 1_000;
    cfg.risk.max_position = "1".parse()?;
    cfg.risk.daily_loss_limit = "1000000".parse()?;
    let first = cfg.strategy[0].clone();
    cfg.strategy.clear();
    for i in 0..strategies {
        let mut s = first.clone();
        s.name = format!("mac-{}", i + 1);
        s.params
            .insert("fast".into(), toml::Value::Integer(5 + i as i64));
        s.params
            .insert("slow".into(), toml::Value::Integer(20 + 5 * i as i64));
        cfg.strategy.push(s);
    }
    Ok(cfg)
}

fn crossover(cfg: &Config) -> anyhow::Result<MovingAverageCrossover> {
    let s = &cfg.strategy[0];
    let int = |k: &str| {
        s.params
            .get(k)
            .and_then(toml::Value::as_integer)
            .unwrap_or(0) as usize
    };
    Ok(MovingAverageCrossover::new(CrossoverConfig {
        name: s.name.as_str().into(),
        instrument: s.instrument(),
        fast: int("fast"),
        slow: int("slow"),
        max_position: "0.01".parse()?,
        allow_short: true,
    })?)
}

fn paper(cfg: &Config) -> PaperExchange {
    let v = &cfg.venue[0];
    let mut ex = PaperExchange::new(ExchangeConfig {
        latency: Duration::from_millis(v.latency_ms),
        taker_fee_bps: v.taker_fee_bps,
        maker_fee_bps: v.maker_fee_bps,
    });
    ex.add_instrument(Instrument::new(cfg.strategy[0].instrument(), v.tick, v.lot));
    ex
}

/// One pass over the files, parsed, and how long parsing took.
fn load(cfg: &Config) -> anyhow::Result<(Vec<MarketEvent>, Duration)> {
    let start = Instant::now();
    let src = ReplaySource::open(
        cfg.run.files.iter().map(FileSpec::new),
        ReplayOptions::default(),
    )?;
    let events = src.collect::<Result<Vec<_>, _>>()?;
    Ok((events, start.elapsed()))
}

/// The engine as the node builds it (one strategy, the paper venue, the policy).
fn engine(cfg: &Config, bus: &Bus) -> anyhow::Result<EngineCore> {
    let ks = KillSwitch::new(KillSwitchConfig::default(), None, bus.clock())?;
    let guard = RiskGuard::new(cfg.risk.clone()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let breaker = Breaker::new("bench", cfg.breaker.clone())?;
    let policy = KillPolicy::new(cfg.policy.clone(), Instant::now())?;
    Ok(EngineCore::builder(bus.clone(), ks, guard)
        .policy(policy)
        .venue(cfg.venue[0].name.clone(), Box::new(paper(cfg)), breaker)?
        .strategy(Box::new(crossover(cfg)?), None)?
        .build()?)
}

/// The engine's whole chain (strategy → guard → breaker → venue, book-keeping,
/// publishes) called synchronously on events already parsed: no bus hop, no parsing —
/// the floor the pipeline is built on. Each pass is shifted in time, as the feed does.
fn sync_chain(
    cfg: &Config,
    events: &[MarketEvent],
    limit: u64,
) -> anyhow::Result<(u64, Duration, u64)> {
    let bus = Bus::new();
    let mut engine = engine(cfg, &bus)?;
    let topic = events
        .first()
        .map(switchyard_trading::feed::topic_for)
        .ok_or_else(|| anyhow::anyhow!("no events"))?;
    let span = match (events.first(), events.last()) {
        (Some(a), Some(b)) => {
            b.ts_event().saturating_duration_since(a.ts_event()) + Duration::from_millis(1)
        }
        _ => Duration::ZERO,
    };
    let clock = bus.clock();
    let mut n = 0u64;
    let start = Instant::now();
    'passes: for pass in 0..cfg.run.repeat.max(1) {
        let offset = span * pass;
        for ev in events {
            if n == limit {
                break 'passes;
            }
            let mut ev = ev.clone();
            if pass > 0 {
                ev.shift_time(offset);
            }
            let env = Envelope {
                topic,
                seq: n,
                ts: clock.now(),
                payload: Payload::Owned(ev),
            };
            engine.on_market_data(&env);
            n += 1;
        }
    }
    let elapsed = start.elapsed();
    Ok((n, elapsed, engine.view().stats.orders))
}

/// The engine on a bus subscription fed by the replay, wired by hand (no node).
async fn hand_built(cfg: &Config) -> anyhow::Result<(u64, Duration)> {
    let bus = Bus::new();
    let engine = Arc::new(Mutex::new(engine(cfg, &bus)?));
    let _sub = bus
        .subscription::<MarketEvent>("market_data.>")?
        .capacity(8192)
        .overflow(Overflow::Block)
        .control(true)
        .subscribe(EngineHandler::new(engine))?;
    let source = switchyard_node::feed_source(cfg)?;
    let start = Instant::now();
    // On a worker, as the node runs it (and as the binary did before the node).
    let feed = tokio::spawn(run_feed(
        bus.clone(),
        source,
        Default::default(),
        Arc::new(FeedStats::default()),
    ));
    let s = feed.await??;
    bus.shutdown(Duration::from_secs(30)).await;
    Ok((s.published, start.elapsed()))
}

async fn through_node(cfg: Config) -> anyhow::Result<(u64, Duration, switchyard_node::RunSummary)> {
    let node = Node::builder(cfg).build()?;
    let start = Instant::now();
    let s = node.run(std::future::pending()).await?;
    let elapsed = start.elapsed();
    anyhow::ensure!(s.shutdown.undelivered() == 0, "events left undelivered");
    Ok((s.feed.published, elapsed, s))
}

/// Tick-to-order latency (p50, p99 in µs, and the orders behind them) through the node at
/// a paced 100,000 simulated events/s, the engine's subscription parked or spinning, the
/// feed paced on the timer (bursts of about 100 events per 1 ms tick) or spinning (one
/// event every 10 µs).
async fn paced_tick_to_order(
    events: u64,
    spin: bool,
    pacing: Pacing,
) -> anyhow::Result<(f64, f64, u64)> {
    let mut cfg = bench_config(1, 1)?;
    cfg.run.feed = "sim".into();
    cfg.run.files.clear();
    cfg.run.engine_spin = spin;
    cfg.sim.rate = 100_000;
    cfg.run.pacing = pacing;
    cfg.sim.limit = events;
    // Short averages: many crossovers, so the percentiles rest on many orders.
    let s = &mut cfg.strategy[0];
    s.params.insert("fast".into(), toml::Value::Integer(2));
    s.params.insert("slow".into(), toml::Value::Integer(5));
    let (_, _, summary) = through_node(cfg).await?;
    let e = &summary.engine;
    Ok((
        e.tick_to_order_us.0,
        e.tick_to_order_us.1,
        e.tick_to_order_samples,
    ))
}

/// The synchronous chain alone on `events` events (for instruction counts): returns the
/// events done.
pub fn sync_chain_only(events: u64) -> anyhow::Result<u64> {
    let cfg = bench_config(1, 1)?;
    let (all, _) = load(&cfg)?;
    let per_pass = all.len().max(1) as u64;
    let mut cfg = cfg;
    cfg.run.repeat = events.div_ceil(per_pass).max(1) as u32;
    let (n, _, _) = sync_chain(&cfg, &all, events)?;
    Ok(n)
}

/// The node alone, one strategy, on passes over the files repeated to at least `events`:
/// returns the events published.
pub async fn node_only(events: u64) -> anyhow::Result<u64> {
    let repeat = events.div_ceil(PER_PASS).max(1) as u32;
    let (n, _, _) = through_node(bench_config(repeat, 1)?).await?;
    Ok(n)
}

/// Parsing alone on `events` events (passes over the files): returns the events parsed.
pub fn parse_only(events: u64) -> anyhow::Result<u64> {
    let cfg = bench_config(1, 1)?;
    let mut n = 0u64;
    while n < events {
        let src = ReplaySource::open(
            cfg.run.files.iter().map(FileSpec::new),
            ReplayOptions::default(),
        )?;
        for ev in src {
            std::hint::black_box(ev?);
            n += 1;
            if n == events {
                break;
            }
        }
    }
    Ok(n)
}

/// `pipeline_eps` (1 strategy) and `pipeline_4_strategies_eps` through the node,
/// `pipeline_feed_on_worker_eps` (the feed on a runtime worker, not its own thread),
/// `handbuilt_pipeline_eps` and `sync_chain_eps` baselines, tick-to-order latency at max
/// speed and at a paced 100,000 events/s (engine parked, and spinning).
pub async fn run(events: u64) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let repeat = events.div_ceil(PER_PASS).max(1) as u32;
    let one = bench_config(repeat, 1)?;
    // The same node with its feed on a runtime worker instead of a thread of its own.
    let mut on_worker = one.clone();
    on_worker.run.feed_thread = switchyard_node::FeedThread::Worker;
    // Rounds of (own thread, worker), interleaved: each figure is the median over the
    // rounds, the ratio the median of the rounds' ratios (a round's two runs share the
    // machine's state of the moment).
    let eps = |n: u64, t: Duration| n as f64 / t.as_secs_f64();
    let mut rounds = Vec::new();
    let mut s1 = None;
    for _ in 0..PIPELINE_ROUNDS {
        let (n1, t1, s) = through_node(one.clone()).await?;
        let (nw, tw, _) = through_node(on_worker.clone()).await?;
        rounds.push((eps(n1, t1), eps(nw, tw)));
        s1 = Some((n1, s));
    }
    let (n1, s1) = s1.expect("at least one round");
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let pipeline = median(rounds.iter().map(|r| r.0).collect());
    let on_worker_eps = median(rounds.iter().map(|r| r.1).collect());
    let vs_worker = median(rounds.iter().map(|r| r.0 / r.1).collect());
    let (n4, t4, s4) = through_node(bench_config(repeat, 4)?).await?;
    let (nh, th) = hand_built(&one).await?;
    let (events, t_parse) = load(&one)?;
    let (n_sync, t_sync, sync_orders) = sync_chain(&one, &events, u64::MAX)?;
    let paced = 300_000;
    let (tp50, tp99, tn) = paced_tick_to_order(paced, false, Pacing::Timer).await?;
    let (sp50, sp99, sn) = paced_tick_to_order(paced, true, Pacing::Timer).await?;
    let (ep50, ep99, en) = paced_tick_to_order(paced, false, Pacing::Spin).await?;
    let (esp50, esp99, esn) = paced_tick_to_order(paced, true, Pacing::Spin).await?;
    Ok(vec![
        ("events", n1 as f64),
        ("pipeline_eps", pipeline),
        ("pipeline_feed_on_worker_eps", on_worker_eps),
        ("pipeline_vs_feed_on_worker_ratio", vs_worker),
        ("pipeline_4_strategies_eps", eps(n4, t4)),
        ("handbuilt_pipeline_eps", eps(nh, th)),
        ("node_vs_handbuilt_ratio", pipeline / eps(nh, th)),
        ("sync_chain_eps", eps(n_sync, t_sync)),
        (
            "sync_chain_ns_per_event",
            t_sync.as_nanos() as f64 / n_sync as f64,
        ),
        ("sync_chain_orders", sync_orders as f64),
        ("parse_eps", eps(events.len() as u64, t_parse)),
        ("orders", s1.engine.stats.orders as f64),
        ("fills", s1.engine.stats.fills as f64),
        ("orders_4_strategies", s4.engine.stats.orders as f64),
        ("tick_to_order_p50_us", s1.engine.tick_to_order_us.0),
        ("tick_to_order_p99_us", s1.engine.tick_to_order_us.1),
        ("tick_to_order_100k_p50_us", tp50),
        ("tick_to_order_100k_p99_us", tp99),
        ("tick_to_order_100k_orders", tn as f64),
        ("tick_to_order_spin_100k_p50_us", sp50),
        ("tick_to_order_spin_100k_p99_us", sp99),
        ("tick_to_order_spin_100k_orders", sn as f64),
        ("tick_to_order_even_100k_p50_us", ep50),
        ("tick_to_order_even_100k_p99_us", ep99),
        ("tick_to_order_even_100k_orders", en as f64),
        ("tick_to_order_even_spin_100k_p50_us", esp50),
        ("tick_to_order_even_spin_100k_p99_us", esp99),
        ("tick_to_order_even_spin_100k_orders", esn as f64),
    ])
}
