//! Throughput and latency of the bridge (feature `testing`): bus A exports, bus B
//! imports, both in this process, through the server at `url`.
//!
//! Each event is a ~200-byte JSON object carrying the time it was published on A (ns
//! since a process-wide `Instant`); latency is measured when B's subscriber handles it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchyard::bus::sync_handler;
use switchyard::{Bus, Envelope, Topic};

use crate::{Bridge, BridgeConfig, JetStreamConfig, Mode, Storage};

/// The benchmark event (≈200 bytes as JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchEvent {
    /// Counter.
    pub n: u64,
    /// ns since the process's benchmark epoch when published on bus A.
    pub sent_ns: u64,
    /// A symbol.
    pub symbol: String,
    /// A price.
    pub price: String,
    /// Padding to ~200 bytes.
    pub pad: String,
}

/// One benchmark run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Events published on bus A.
    pub sent: u64,
    /// Events delivered on bus B.
    pub received: u64,
    /// Seconds from the first publish to the last delivery.
    pub seconds: f64,
    /// Delivered events per second.
    pub eps: f64,
    /// Median publish-to-delivery latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Largest latency, µs.
    pub max_us: f64,
}

/// JetStream publishes awaiting their ack at once in the benchmark (bridge and raw).
pub const MAX_IN_FLIGHT: usize = 1024;
/// Messages per pull request in the benchmark (bridge and raw).
pub const PULL_BATCH: usize = 512;

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

/// Core NATS: delivered events per second.
pub async fn core_eps(url: &str, events: u64) -> f64 {
    run(url, events, false).await.eps
}

/// JetStream: (delivered events per second, p99 latency in µs).
pub async fn jetstream_eps(url: &str, events: u64) -> (f64, f64) {
    let r = run(url, events, true).await;
    (r.eps, r.p99_us)
}

/// One run as fast as the bridge takes events (saturation: the latency figures then
/// include queueing in the bridge buffer). Panics if the bridge cannot start.
pub async fn run(url: &str, events: u64, jetstream: bool) -> BenchResult {
    run_paced(url, events, jetstream, None).await
}

/// One run publishing `rate` events per second (in 1 ms ticks), or flat out with `None`:
/// the latency at a given load.
pub async fn run_paced(url: &str, events: u64, jetstream: bool, rate: Option<u64>) -> BenchResult {
    let _ = epoch();
    let id = unique_id();
    let prefix = format!("bench{id}");
    let mode = |durable: &str| {
        if jetstream {
            Mode::JetStream(JetStreamConfig {
                stream: format!("BENCH{id}"),
                durable: durable.to_owned(),
                max_in_flight: MAX_IN_FLIGHT,
                pull_batch: PULL_BATCH,
                storage: Storage::File,
                ..Default::default()
            })
        } else {
            Mode::Core
        }
    };
    let cfg = |origin: &str| BridgeConfig {
        url: url.to_owned(),
        subject_prefix: prefix.clone(),
        origin: origin.to_owned(),
        mode: mode("bench_b"),
        buffer: 8192,
        ..Default::default()
    };

    let bus_a = Bus::new();
    let bus_b = Bus::new();
    let count = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Vec::<u64>::with_capacity(events as usize)));
    let done = Arc::new(tokio::sync::Notify::new());
    {
        let (count, lat, done) = (count.clone(), lat.clone(), done.clone());
        let mut local = Vec::with_capacity(events as usize);
        bus_b
            .subscription::<BenchEvent>("bench.>")
            .expect("pattern")
            .name("bench-sink")
            .subscribe(sync_handler(move |ev: &Envelope<BenchEvent>| {
                let now = epoch().elapsed().as_nanos() as u64;
                local.push(now.saturating_sub(ev.payload().sent_ns));
                let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                if n == events || local.len() >= 4096 {
                    lat.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .append(&mut local);
                }
                if n == events {
                    done.notify_one();
                }
                Ok(())
            }))
            .expect("subscribe");
    }
    let b = Bridge::builder(bus_b.clone(), cfg("bench-b"))
        .import::<BenchEvent>("bench.>", "bench_event")
        .start()
        .await
        .expect("start bridge B");
    let a = Bridge::builder(bus_a.clone(), cfg("bench-a"))
        .export::<BenchEvent>("bench.>", "bench_event")
        .start()
        .await
        .expect("start bridge A");

    let mut publisher = bus_a.publisher::<BenchEvent>(Topic::new("bench.BTCUSDT").expect("topic"));
    let pad = "x".repeat(110);
    let per_tick = rate.map(|r| (r / 1000).max(1));
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let t0 = Instant::now();
    for n in 0..events {
        if let Some(k) = per_tick
            && n % k == 0
        {
            tick.tick().await;
        }
        let ev = BenchEvent {
            n,
            sent_ns: epoch().elapsed().as_nanos() as u64,
            symbol: "BTCUSDT".into(),
            price: "64123.450000000".into(),
            pad: pad.clone(),
        };
        if publisher.publish(ev).await.is_err() {
            break;
        }
    }
    // Wait for everything, or until deliveries stall (core mode may lose events).
    let mut last = count.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    while count.load(Ordering::Relaxed) < events {
        let _ = tokio::time::timeout(Duration::from_millis(50), done.notified()).await;
        let c = count.load(Ordering::Relaxed);
        if c != last {
            last = c;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let received = count.load(Ordering::Relaxed);
    let seconds = if received == events {
        t0.elapsed().as_secs_f64()
    } else {
        (last_progress - t0).as_secs_f64()
    };
    a.shutdown().await;
    b.shutdown().await;
    bus_a.shutdown(Duration::from_secs(1)).await;
    bus_b.shutdown(Duration::from_secs(1)).await;
    if jetstream && let Ok(client) = async_nats::connect(url).await {
        let js = async_nats::jetstream::new(client);
        let _ = js.delete_stream(format!("BENCH{id}")).await;
    }
    let mut l = std::mem::take(&mut *lat.lock().unwrap_or_else(|e| e.into_inner()));
    l.sort_unstable();
    let pct = |p: f64| {
        if l.is_empty() {
            0.0
        } else {
            l[((l.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
        }
    };
    BenchResult {
        sent: events,
        received,
        seconds,
        eps: received as f64 / seconds.max(1e-9),
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        max_us: pct(1.0),
    }
}

/// The payload and headers the bridge would send for benchmark event `n` (same sizes;
/// `lane`: with the lane headers, as in JetStream mode).
fn raw_message(n: u64, pad: &str, lane: bool) -> (async_nats::HeaderMap, bytes::Bytes) {
    let ev = BenchEvent {
        n,
        sent_ns: epoch().elapsed().as_nanos() as u64,
        symbol: "BTCUSDT".into(),
        price: "64123.450000000".into(),
        pad: pad.to_owned(),
    };
    let payload = serde_json::to_vec(&ev).expect("serialize");
    let (origin, kind) = ("raw@0000000000000000", "bench_event");
    let headers = if lane {
        crate::wire::lane_headers(origin, kind, n, ev.sent_ns, "bench.>", n + 1)
    } else {
        crate::wire::headers(origin, kind, n, ev.sent_ns)
    };
    (headers, bytes::Bytes::from(payload))
}

fn unique_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        % 1_000_000_000
}

/// Baseline without the bus or the bridge: one async-nats client publishes `events`
/// messages with the bridge's headers and a benchmark payload, another subscribes and
/// counts them (core NATS). Delivered messages per second, from the first publish to the
/// last delivery (or to the last progress if the subscriber lost some).
pub async fn raw_core_eps(url: &str, events: u64) -> f64 {
    let id = unique_id();
    let subject = format!("rawbench{id}.BTCUSDT");
    let sub_client = async_nats::connect(url).await.expect("connect subscriber");
    let pub_client = async_nats::connect(url).await.expect("connect publisher");
    let mut sub = sub_client
        .subscribe(subject.clone())
        .await
        .expect("subscribe");
    sub_client.flush().await.expect("flush");
    let count = Arc::new(AtomicU64::new(0));
    let reader = {
        let count = count.clone();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(_m) = sub.next().await {
                if count.fetch_add(1, Ordering::Relaxed) + 1 == events {
                    break;
                }
            }
        })
    };
    let pad = "x".repeat(110);
    let subject = async_nats::Subject::from(subject);
    let t0 = Instant::now();
    for n in 0..events {
        let (h, p) = raw_message(n, &pad, false);
        if pub_client
            .publish_with_headers(subject.clone(), h, p)
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = pub_client.flush().await;
    let (received, seconds) = wait_count(&count, events, t0).await;
    reader.abort();
    received as f64 / seconds.max(1e-9)
}

/// Baseline without the bus or the bridge: one async-nats client publishes `events`
/// messages to a JetStream stream (file storage), at most `max_in_flight` awaiting their
/// publish ack; a durable pull consumer on another connection reads them in batches of
/// `pull_batch` and acks each (explicit ack). Delivered messages per second.
pub async fn raw_jetstream_eps(
    url: &str,
    events: u64,
    max_in_flight: usize,
    pull_batch: usize,
) -> f64 {
    use futures_util::StreamExt;
    use futures_util::stream::FuturesUnordered;
    let id = unique_id();
    let stream_name = format!("RAWBENCH{id}");
    let subject_prefix = format!("rawbench{id}");
    let pub_client = async_nats::connect(url).await.expect("connect publisher");
    let sub_client = async_nats::connect(url).await.expect("connect consumer");
    let js = async_nats::jetstream::ContextBuilder::new()
        .max_ack_inflight(max_in_flight + 16)
        .backpressure_on_inflight(true)
        .build(pub_client.clone());
    let stream = js
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("{subject_prefix}.>")],
            storage: async_nats::jetstream::stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .expect("create stream");
    let consumer = stream
        .get_or_create_consumer::<async_nats::jetstream::consumer::pull::Config>(
            "raw",
            async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("raw".into()),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                max_ack_pending: (pull_batch * 4).max(1000) as i64,
                ..Default::default()
            },
        )
        .await
        .expect("create consumer");
    drop(sub_client);
    let count = Arc::new(AtomicU64::new(0));
    let reader = {
        let count = count.clone();
        tokio::spawn(async move {
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(pull_batch.max(1))
                .messages()
                .await
                .expect("pull");
            while let Some(m) = messages.next().await {
                let Ok(m) = m else { continue };
                let _ = m.ack().await;
                if count.fetch_add(1, Ordering::Relaxed) + 1 == events {
                    break;
                }
            }
        })
    };
    let pad = "x".repeat(110);
    let subject = async_nats::Subject::from(format!("{subject_prefix}.BTCUSDT"));
    let t0 = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for n in 0..events {
        while inflight.len() >= max_in_flight.max(1) {
            let _ = inflight.next().await;
        }
        let (h, p) = raw_message(n, &pad, true);
        let msg = async_nats::jetstream::message::PublishMessage::build()
            .payload(p)
            .headers(h);
        match js.send_publish(subject.clone(), msg).await {
            Ok(f) => inflight.push(f.into_future()),
            Err(_) => break,
        }
    }
    while inflight.next().await.is_some() {}
    let (received, seconds) = wait_count(&count, events, t0).await;
    reader.abort();
    let _ = js.delete_stream(&stream_name).await;
    received as f64 / seconds.max(1e-9)
}

/// Wait until `count` reaches `events` or stops moving for 3 s: (count, seconds since
/// `t0` to completion or to the last progress).
async fn wait_count(count: &AtomicU64, events: u64, t0: Instant) -> (u64, f64) {
    let mut last = count.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    loop {
        let c = count.load(Ordering::Relaxed);
        if c >= events {
            return (c, t0.elapsed().as_secs_f64());
        }
        if c != last {
            last = c;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(3) {
            return (c, (last_progress - t0).as_secs_f64());
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}
