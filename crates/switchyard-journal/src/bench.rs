//! Throughput measurements, for `examples/journal_bench.rs` and quick checks. Each
//! function works in a directory of the caller's choosing (use a real disk: fsync on
//! tmpfs is free) and returns events per second.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchyard::bus::sync_handler;
use switchyard::{Bus, Envelope, ManualClock, Timestamp};

use crate::journal::{Journal, JournalConfig, SyncPolicy};
use crate::reader::{JournalReader, ReadFilter};
use crate::replay::{Pace, Replayer};

/// Topic of the benchmark events.
pub const BENCH_TOPIC: &str = "market_data.trade.BTCUSDT";
/// Kind of the benchmark events.
pub const BENCH_KIND: &str = "bench";

/// The benchmark event: opaque bytes (MessagePack: a bin header, then the bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchPayload(pub Vec<u8>);

/// A MessagePack-encoded [`BenchPayload`] of about `len` bytes (at least 1).
pub fn bench_payload(len: usize) -> Vec<u8> {
    let len = len.max(1);
    let mut n = len - 1;
    loop {
        let out = crate::codec::encode_payload(&BenchPayload(vec![0xab; n])).unwrap_or_default();
        if out.len() <= len || n == 0 {
            return out;
        }
        n -= 1;
    }
}

fn eps(events: u64, d: Duration) -> f64 {
    events as f64 / d.as_secs_f64().max(1e-9)
}

/// A journal in `dir` under group commit: fsync every 1,000 events or 1 ms.
fn open_group_commit(dir: &Path) -> Journal {
    let cfg = JournalConfig::new(dir).sync(SyncPolicy::Group {
        every_events: 1000,
        every: Duration::from_millis(1),
    });
    Journal::open(cfg).expect("open journal").0
}

/// Append `events` records of `payload_len` payload bytes from one thread under group
/// commit (fsync every 1,000 events or 1 ms), including the final close (write + fsync).
pub fn append_group_commit(dir: &Path, events: u64, payload_len: usize) -> f64 {
    let j = open_group_commit(dir);
    let payload = bench_payload(payload_len);
    let start = Instant::now();
    for i in 0..events {
        j.append(
            i,
            Timestamp(1_000_000_000 + i * 1_000),
            BENCH_TOPIC,
            BENCH_KIND,
            &payload,
        )
        .expect("append");
    }
    j.close().expect("close");
    eps(events, start.elapsed())
}

/// The append call's latency under group commit (as [`append_group_commit`]): each of
/// `events` calls timed on its own, p50 / p99 / p99.9 in µs (the clock reads add a few
/// tens of ns to each; the call hands the frame to the writer and returns).
pub fn append_latency_group_commit(dir: &Path, events: u64, payload_len: usize) -> (f64, f64, f64) {
    let j = open_group_commit(dir);
    let payload = bench_payload(payload_len);
    let mut h = switchyard::bus::NanoHistogram::new();
    for i in 0..events {
        let t = Instant::now();
        j.append(
            i,
            Timestamp(1_000_000_000 + i * 1_000),
            BENCH_TOPIC,
            BENCH_KIND,
            &payload,
        )
        .expect("append");
        h.record(t.elapsed().as_nanos() as u64);
    }
    j.close().expect("close");
    let s = h.summary();
    let us = |ns: u64| ns as f64 / 1_000.0;
    (us(s.p50_ns), us(s.p99_ns), us(s.p999_ns))
}

/// Append `events` records one at a time under [`SyncPolicy::Always`], waiting for each
/// to be durable before the next: the fsync latency bound.
pub fn append_fsync_each(dir: &Path, events: u64) -> f64 {
    let (j, _) = Journal::open(JournalConfig::new(dir).sync(SyncPolicy::Always)).expect("open");
    let payload = bench_payload(64);
    let start = Instant::now();
    for i in 0..events {
        let idx = j
            .append(i, Timestamp(i), BENCH_TOPIC, BENCH_KIND, &payload)
            .expect("append");
        j.wait_durable(idx).expect("durable");
    }
    let r = eps(events, start.elapsed());
    j.close().expect("close");
    r
}

/// Read every record of the journal in `dir` (checksums verified), without publishing.
pub fn replay_eps(dir: &Path) -> f64 {
    let start = Instant::now();
    let reader = JournalReader::open(dir).expect("open reader");
    let mut cursor = reader.cursor(ReadFilter::all());
    let mut n = 0u64;
    let mut bytes = 0usize;
    while let Some(r) = cursor.next() {
        let r = r.expect("valid record");
        n += 1;
        bytes += r.payload.len();
    }
    std::hint::black_box(bytes);
    eps(n, start.elapsed())
}

/// Replay the journal in `dir` (written by [`append_group_commit`]) onto a bus with one
/// subscriber, decoding every payload, at full speed; counts until the subscriber has
/// handled every event.
pub fn replay_bus_eps(dir: &Path) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let clock = ManualClock::new(Timestamp::ZERO);
        let bus = Bus::with_clock(Arc::new(clock.clone()));
        let seen = Arc::new(AtomicU64::new(0));
        let s = Arc::clone(&seen);
        bus.subscription::<BenchPayload>(">")
            .expect("pattern")
            .capacity(65_536)
            .subscribe(sync_handler(move |ev: &Envelope<BenchPayload>| {
                s.fetch_add(ev.payload().0.len() as u64 + 1, Ordering::Relaxed);
                Ok(())
            }))
            .expect("subscribe");
        let start = Instant::now();
        let replayer = Replayer::open(dir)
            .expect("open")
            .decoder::<BenchPayload>(BENCH_KIND);
        let stats = replayer
            .run(&bus, Some(&clock), Pace::Max, ReadFilter::all())
            .await
            .expect("replay");
        let report = bus.shutdown(Duration::from_secs(60)).await;
        let elapsed = start.elapsed();
        assert_eq!(report.subscriptions[0].delivered, stats.published);
        eps(stats.published, elapsed)
    })
}
