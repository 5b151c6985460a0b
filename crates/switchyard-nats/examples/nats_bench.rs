//! Bridge throughput and latency against a throwaway nats-server.
//!
//! `cargo run --release -p switchyard-nats --features testing --example nats_bench -- [events]`

use switchyard_nats::bench;
use switchyard_nats::testing::{NatsServer, server_version};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let server = NatsServer::start().expect("start nats-server");
    println!(
        "server: {} at {}",
        server_version().unwrap_or_default(),
        server.url()
    );
    for (jetstream, rate) in [
        (false, None),
        (true, None),
        (false, Some(10_000)),
        (true, Some(10_000)),
    ] {
        let r = bench::run_paced(&server.url(), events, jetstream, rate).await;
        println!(
            "{:9} {:>14} events {:>7} received {:>7} in {:.3}s: {:>9.0} ev/s  latency p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>9.1} µs",
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
