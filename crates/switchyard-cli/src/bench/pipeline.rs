//! The whole pipeline at max speed on the real BTCUSDT files, against the same chain run
//! synchronously without the bus (the floor the bus adds to).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use switchyard::Bus;
use switchyard::kill_switch::GateState;
use switchyard_trading::feed::{FileSpec, ReplayOptions, ReplaySource};
use switchyard_trading::strategy::{Strategy, StrategyContext};

use crate::config::Config;

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

fn bench_config(repeat: u32) -> anyhow::Result<Config> {
    let mut cfg = Config::load(None)?;
    cfg.run.feed = "replay".into();
    cfg.run.files = btc_files();
    cfg.run.speed = "max".into();
    cfg.run.repeat = repeat;
    cfg.run.http = String::new();
    // Let the strategy trade freely so orders flow through the whole chain.
    cfg.risk.orders_per_second = 1_000_000;
    cfg.risk.burst = 1_000_000;
    cfg.risk.daily_loss_limit = "1000000".parse()?;
    cfg.strategy.fast = 5;
    cfg.strategy.slow = 20;
    Ok(cfg)
}

fn sync_chain(cfg: &Config) -> anyhow::Result<(u64, Duration)> {
    let (mut strategy, mut guard, mut ex) = crate::run::trading_parts(cfg)?;
    let mut ctx = StrategyContext::new(cfg.strategy.name.as_str());
    let start = Instant::now();
    let mut n = 0u64;
    let t0 = Instant::now();
    for _ in 0..cfg.run.repeat {
        let src = ReplaySource::open(
            cfg.run.files.iter().map(FileSpec::new),
            ReplayOptions::default(),
        )?;
        for ev in src {
            let ev = ev?;
            n += 1;
            for f in ex.on_market_data(&ev) {
                if let switchyard_trading::exchange::ExecEvent::Filled(f) = &f {
                    let _ = guard.on_fill(f);
                    let _ = ctx.apply_fill(f);
                }
            }
            guard.on_market_data(&ev);
            strategy.on_market_data(&ev, &mut ctx);
            for req in ctx.take_orders() {
                let now = t0 + Duration::from_nanos(n);
                match guard.check(req, GateState::Open, now) {
                    Ok(a) => {
                        let _ = ex.submit(a, ev.ts_event());
                    }
                    Err(r) => ctx.order_closed(&r.request.client_order_id),
                }
            }
        }
    }
    Ok((n, start.elapsed()))
}

/// `pipeline_eps`, `tick_to_order_p99_us`, and the synchronous baseline.
pub async fn run(events: u64) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let per_pass = 19_998u64;
    let repeat = events.div_ceil(per_pass).max(1) as u32;
    let cfg = bench_config(repeat)?;
    let bus = Bus::new();
    let (pipeline, _sub) = crate::run::build(&cfg, bus.clone())?;
    let source = crate::run::feed_source(&cfg)?;
    let start = Instant::now();
    let summary = switchyard_trading::feed::run_feed(
        bus.clone(),
        source,
        tokio_util::sync::CancellationToken::new(),
        pipeline.feed_stats.clone(),
    )
    .await?;
    let report = bus.shutdown(Duration::from_secs(30)).await;
    let elapsed = start.elapsed();
    let view = pipeline.view();
    anyhow::ensure!(report.undelivered() == 0, "events left undelivered");
    let (n_sync, t_sync) = sync_chain(&cfg)?;
    Ok(vec![
        ("events", summary.published as f64),
        (
            "pipeline_eps",
            summary.published as f64 / elapsed.as_secs_f64(),
        ),
        ("sync_chain_eps", n_sync as f64 / t_sync.as_secs_f64()),
        ("orders", view.stats.orders as f64),
        ("fills", view.stats.fills as f64),
        ("tick_to_order_p50_us", view.tick_to_order_us.0),
        ("tick_to_order_p99_us", view.tick_to_order_us.1),
    ])
}
