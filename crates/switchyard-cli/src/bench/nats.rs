//! `switchyard bench nats`: bridge publish on bus A → NATS → bridge → delivery on bus B,
//! in core and JetStream mode, next to raw async-nats clients doing the same in the same
//! run (same payloads and headers, no bus, no bridge). Starts a private `nats-server` on a
//! free loopback port unless `--url` names one.

use switchyard_nats::bench::{self, MAX_IN_FLIGHT, PULL_BATCH};
use switchyard_nats::testing::{NatsServer, server_version};

/// Paced load for the latency figures: at max rate the latency is queueing time.
const PACED_RATE: u64 = 10_000;

/// Run it; the server version goes to stderr.
pub async fn run(events: u64, url: Option<String>) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let (url, _server) = match url {
        Some(u) => (u, None),
        None => {
            let s = NatsServer::start()
                .map_err(|e| anyhow::anyhow!("starting a private nats-server: {e}"))?;
            (s.url(), Some(s))
        }
    };
    eprintln!(
        "server: {} at {url}",
        server_version().unwrap_or_else(|| "nats-server (version unknown)".into())
    );
    // The first run in a process is the slowest: warm up server, client and runtime.
    let warm = events.min(20_000);
    let _ = bench::raw_core_eps(&url, warm).await;
    let _ = bench::raw_jetstream_eps(&url, warm, MAX_IN_FLIGHT, PULL_BATCH).await;

    let raw_core = bench::raw_core_eps(&url, events).await;
    let core = bench::run(&url, events, false).await;
    let raw_js = bench::raw_jetstream_eps(&url, events, MAX_IN_FLIGHT, PULL_BATCH).await;
    let js = bench::run(&url, events, true).await;
    let paced = (events / 5).max(PACED_RATE);
    let core_paced = bench::run_paced(&url, paced, false, Some(PACED_RATE)).await;
    let js_paced = bench::run_paced(&url, paced, true, Some(PACED_RATE)).await;
    for (name, r) in [("core", &core), ("jetstream", &js)] {
        anyhow::ensure!(
            r.received == r.sent,
            "{name}: {} of {} events arrived",
            r.received,
            r.sent
        );
    }
    Ok(vec![
        ("core_eps", core.eps),
        ("raw_core_eps", raw_core),
        ("jetstream_eps", js.eps),
        ("raw_jetstream_eps", raw_js),
        ("jetstream_p50_us", js_paced.p50_us),
        ("jetstream_p99_us", js_paced.p99_us),
        ("core_p50_us", core_paced.p50_us),
        ("core_p99_us", core_paced.p99_us),
        ("paced_rate_eps", PACED_RATE as f64),
        ("jetstream_max_rate_p99_us", js.p99_us),
    ])
}
