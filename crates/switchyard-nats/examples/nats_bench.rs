//! Bridge throughput and latency against a throwaway nats-server, next to raw async-nats
//! baselines (same payloads and headers, no bus, no bridge).
//!
//! `cargo run --release -p switchyard-nats --features testing --example nats_bench -- [events] [flat]`
//!
//! With `flat`, only the flat-out runs (no paced latency runs); with `core` or `jetstream`,
//! only that bridge run (for profiling).

use switchyard_nats::bench;
use switchyard_nats::testing::{NatsServer, server_version};

use bench::{MAX_IN_FLIGHT, PULL_BATCH};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    // `flat`: flat-out runs only; `core` / `jetstream`: that bridge run only (profiling).
    let only = args.next().unwrap_or_default();
    let server = NatsServer::start().expect("start nats-server");
    println!(
        "server: {} at {}",
        server_version().unwrap_or_default(),
        server.url()
    );
    let url = server.url();
    if let Some(jetstream) = match only.as_str() {
        "core" => Some(false),
        "jetstream" => Some(true),
        _ => None,
    } {
        let r = bench::run(&url, events, jetstream).await;
        println!(
            "{} {:.0} ev/s",
            if jetstream { "jetstream" } else { "core" },
            r.eps
        );
        return;
    }
    // Warm up the server and the runtime (the first run in a process is the slowest).
    let _ = bench::raw_core_eps(&url, events.min(20_000)).await;
    let _ = bench::raw_jetstream_eps(&url, events.min(20_000), MAX_IN_FLIGHT, PULL_BATCH).await;

    let raw_core = bench::raw_core_eps(&url, events).await;
    println!("raw core      flat out: {raw_core:>9.0} ev/s  (async-nats publish → subscriber)");
    let raw_js = bench::raw_jetstream_eps(&url, events, MAX_IN_FLIGHT, PULL_BATCH).await;
    println!(
        "raw jetstream flat out: {raw_js:>9.0} ev/s  (publish with acks, {MAX_IN_FLIGHT} in flight → pull consumer, batch {PULL_BATCH}, acks)"
    );

    let mut runs = vec![(false, None), (true, None)];
    if only != "flat" {
        runs.extend([(false, Some(10_000)), (true, Some(10_000))]);
    }
    for (jetstream, rate) in runs {
        let r = bench::run_paced(&url, events, jetstream, rate).await;
        let vs = match (rate, jetstream) {
            (None, false) => format!("  ({:.0}% of raw)", 100.0 * r.eps / raw_core),
            (None, true) => format!("  ({:.0}% of raw)", 100.0 * r.eps / raw_js),
            _ => String::new(),
        };
        println!(
            "{:9} {:>14} events {:>7} received {:>7} in {:.3}s: {:>9.0} ev/s  latency p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>9.1} µs{vs}",
            if jetstream { "jetstream" } else { "core" },
            rate.map_or("flat out".to_string(), |r| format!("at {r}/s")),
            r.sent,
            r.received,
            r.seconds,
            r.eps,
            r.p50_us,
            r.p99_us,
            r.max_us
        );
    }
}
