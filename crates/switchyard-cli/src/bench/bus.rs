//! Bus throughput and latency against raw tokio mpsc channels doing the same work.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchyard::bus::{Overflow, sync_handler};
use switchyard::{Bus, Clock, Envelope, LiveClock, Topic};
use tokio::sync::{Notify, mpsc};

use super::eps;

/// A market-data-sized event (40 bytes).
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    /// Sequence within the run.
    pub n: u64,
    /// Price, fixed point.
    pub price: i64,
    /// Size, fixed point.
    pub size: i64,
    /// Exchange time.
    pub ts: u64,
    /// Instrument index.
    pub instrument: u32,
}

fn tick(n: u64) -> Tick {
    Tick {
        n,
        price: 9_682_000_000_000 + (n as i64 & 1023),
        size: 132_000_000,
        ts: n,
        instrument: 7,
    }
}

/// Shared "work" every consumer does: count and fold a checksum, then signal at the end.
struct Sink {
    seen: AtomicU64,
    sum: AtomicU64,
    done: Notify,
    expect: u64,
}

impl Sink {
    fn new(expect: u64) -> Arc<Self> {
        Arc::new(Sink {
            seen: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            done: Notify::new(),
            expect,
        })
    }
}

/// A consumer-local accumulator that publishes to the shared sink at the end.
struct Acc {
    sink: Arc<Sink>,
    seen: u64,
    sum: u64,
}

impl Acc {
    #[inline]
    fn on(&mut self, t: &Tick) {
        self.seen += 1;
        self.sum = self
            .sum
            .wrapping_add(t.n ^ t.price as u64 ^ t.size as u64 ^ t.ts ^ u64::from(t.instrument));
        if self.seen == self.sink.expect {
            self.sink.seen.fetch_add(self.seen, Ordering::AcqRel);
            self.sink.sum.fetch_add(self.sum, Ordering::AcqRel);
            self.sink.done.notify_one();
        }
    }
}

/// Bus: one publisher → `subs` subscribers (`pattern`: subscribe with `bench.*` rather than
/// the exact topic). Returns events/s (events published per second, each delivered to
/// every subscriber).
pub async fn bus_fanout(n: u64, subs: usize, pattern: bool) -> f64 {
    let bus = Bus::new();
    let mut sinks = Vec::new();
    for i in 0..subs {
        let sink = Sink::new(n);
        let mut acc = Acc {
            sink: sink.clone(),
            seen: 0,
            sum: 0,
        };
        bus.subscription::<Tick>(if pattern { "bench.*" } else { "bench.tick" })
            .expect("valid pattern")
            .name(format!("bench-{i}"))
            .overflow(Overflow::Block)
            .subscribe(sync_handler(move |ev: &Envelope<Tick>| {
                acc.on(ev.payload());
                Ok(())
            }))
            .expect("subscribe");
        sinks.push(sink);
    }
    let mut p = bus.publisher::<Tick>(Topic::new("bench.tick").expect("valid topic"));
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        for i in 0..n {
            p.publish(tick(i)).await.expect("bus open");
        }
    });
    for s in &sinks {
        s.done.notified().await;
    }
    let elapsed = start.elapsed();
    producer.await.expect("producer");
    bus.shutdown(Duration::from_secs(5)).await;
    eps(n, elapsed)
}

/// Raw tokio mpsc: one bounded channel per subscriber, the producer sends a copy to each,
/// each consumer `recv`s and does the same work as the bus handler.
pub async fn mpsc_fanout(n: u64, subs: usize) -> f64 {
    let mut txs = Vec::new();
    let mut sinks = Vec::new();
    for _ in 0..subs {
        let (tx, mut rx) = mpsc::channel::<Tick>(switchyard::bus::DEFAULT_CAPACITY);
        let sink = Sink::new(n);
        let mut acc = Acc {
            sink: sink.clone(),
            seen: 0,
            sum: 0,
        };
        tokio::spawn(async move {
            while let Some(t) = rx.recv().await {
                acc.on(&t);
            }
        });
        txs.push(tx);
        sinks.push(sink);
    }
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        for i in 0..n {
            let t = tick(i);
            for tx in &txs {
                tx.send(t).await.expect("receiver alive");
            }
        }
    });
    for s in &sinks {
        s.done.notified().await;
    }
    let elapsed = start.elapsed();
    producer.await.expect("producer");
    eps(n, elapsed)
}

/// Publish-to-handle latency percentiles in µs (p50, p99, p99.9), publishing at `rate`
/// events/s (paced by spinning on the clock), or as fast as possible when `rate` is None;
/// `spin`: the subscription busy-polls on its own thread.
pub async fn bus_latency(n: u64, rate: Option<u64>, spin: bool) -> (f64, f64, f64) {
    let clock = Arc::new(LiveClock::new());
    let bus = Bus::with_clock(clock.clone());
    let sink = Sink::new(n);
    let mut acc = Acc {
        sink: sink.clone(),
        seen: 0,
        sum: 0,
    };
    let sub = bus
        .subscription::<Tick>("lat.tick")
        .expect("valid pattern")
        .name("latency")
        .spin(spin)
        .subscribe(sync_handler(move |ev: &Envelope<Tick>| {
            acc.on(ev.payload());
            Ok(())
        }))
        .expect("subscribe");
    let mut p = bus.publisher::<Tick>(Topic::new("lat.tick").expect("valid topic"));
    // The producer is an OS thread, as a feed's network thread would be: a task that
    // spins between events would keep the woken subscriber off its worker thread.
    let handle = tokio::runtime::Handle::current();
    let producer = paced_producer(clock, n, rate, move |i, _| {
        handle.block_on(p.publish(tick(i))).expect("bus open");
    });
    sink.done.notified().await;
    producer.join().expect("producer");
    let s = sub.stats();
    bus.shutdown(Duration::from_secs(5)).await;
    let us = |ns: u64| ns as f64 / 1_000.0;
    (
        us(s.latency.p50_ns),
        us(s.latency.p99_ns),
        us(s.latency.p999_ns),
    )
}

/// The same measurement on a raw tokio `mpsc` channel (the bus's default capacity),
/// with the same producer — an OS thread spinning on the clock between events and
/// `block_on` per send — and the same stamp-at-send, measure-at-receive: the baseline
/// for [`bus_latency`]. Percentiles in µs (p50, p99, p99.9).
pub async fn mpsc_latency(n: u64, rate: Option<u64>) -> (f64, f64, f64) {
    let clock = Arc::new(LiveClock::new());
    let (tx, mut rx) = mpsc::channel::<(u64, Tick)>(switchyard::bus::DEFAULT_CAPACITY);
    let recv_clock = clock.clone();
    let consumer = tokio::spawn(async move {
        let mut h = switchyard::bus::NanoHistogram::new();
        let mut seen = 0u64;
        let mut sum = 0u64;
        while let Some((sent, t)) = rx.recv().await {
            h.record(recv_clock.now().as_nanos().saturating_sub(sent));
            seen += 1;
            sum = sum.wrapping_add(t.n ^ t.price as u64);
            if seen == n {
                break;
            }
        }
        std::hint::black_box(sum);
        h.summary()
    });
    let handle = tokio::runtime::Handle::current();
    let producer = paced_producer(clock, n, rate, move |i, sent| {
        handle
            .block_on(tx.send((sent, tick(i))))
            .expect("receiver open");
    });
    let s = consumer.await.expect("consumer");
    producer.join().expect("producer");
    let us = |ns: u64| ns as f64 / 1_000.0;
    (us(s.p50_ns), us(s.p99_ns), us(s.p999_ns))
}

/// The floor under [`bus_latency`] with `spin`: the same producer handing each event
/// through a lock-free single-producer ring (`rtrb`) to an OS thread that busy-polls it —
/// no bus, no runtime, no lock, nothing between the two cores but the ring's two
/// indices. What this measures is the machine: a store reaching the other core, and
/// whatever stalls either thread (the hypervisor, the kernel). Same stamp-at-send,
/// measure-at-receive. Percentiles in µs (p50, p99, p99.9).
pub fn spsc_spin_latency(n: u64, rate: Option<u64>) -> (f64, f64, f64) {
    let clock = Arc::new(LiveClock::new());
    let (mut tx, mut rx) = rtrb::RingBuffer::<(u64, Tick)>::new(switchyard::bus::DEFAULT_CAPACITY);
    let recv_clock = clock.clone();
    let consumer = std::thread::spawn(move || {
        let mut h = switchyard::bus::NanoHistogram::new();
        let mut seen = 0u64;
        let mut sum = 0u64;
        while seen < n {
            match rx.pop() {
                Ok((sent, t)) => {
                    h.record(recv_clock.now().as_nanos().saturating_sub(sent));
                    seen += 1;
                    sum = sum.wrapping_add(t.n ^ t.price as u64);
                }
                Err(_) => std::hint::spin_loop(),
            }
        }
        std::hint::black_box(sum);
        h.summary()
    });
    let producer = paced_producer(clock, n, rate, move |i, sent| {
        let mut item = (sent, tick(i));
        while let Err(rtrb::PushError::Full(back)) = tx.push(item) {
            item = back;
            std::hint::spin_loop();
        }
    });
    producer.join().expect("producer");
    let s = consumer.join().expect("consumer");
    let us = |ns: u64| ns as f64 / 1_000.0;
    (us(s.p50_ns), us(s.p99_ns), us(s.p999_ns))
}

/// The latency benchmarks' producer: an OS thread (as a feed's network thread would be)
/// that spins on the clock until each event is due at `rate` (or never waits when
/// `None`), then calls `send(i, now_ns)`.
fn paced_producer(
    clock: Arc<LiveClock>,
    n: u64,
    rate: Option<u64>,
    mut send: impl FnMut(u64, u64) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = clock.now().as_nanos();
        let gap = rate.map(|r| 1_000_000_000 / r.max(1)).unwrap_or(0);
        for i in 0..n {
            if gap > 0 {
                let due = start + i * gap;
                while clock.now().as_nanos() < due {
                    std::hint::spin_loop();
                }
            }
            send(i, clock.now().as_nanos());
        }
    })
}

/// Rounds of the paced latency runs (bus, mpsc, spinning bus, spinning SPSC ring), for
/// the medians.
const LATENCY_ROUNDS: usize = 3;

/// All bus figures, in the order the README lists them.
pub async fn run(events: u64) -> Vec<(&'static str, f64)> {
    // Warm up allocator and threads.
    let _ = bus_fanout(events / 10, 1, false).await;
    let _ = mpsc_fanout(events / 10, 1).await;
    let mut out = Vec::new();
    out.push(("bus_1to1_eps", bus_fanout(events, 1, false).await));
    out.push(("mpsc_1to1_eps", mpsc_fanout(events, 1).await));
    out.push(("bus_1to4_eps", bus_fanout(events / 2, 4, false).await));
    out.push(("mpsc_1to4_eps", mpsc_fanout(events / 2, 4).await));
    out.push(("bus_1to16_eps", bus_fanout(events / 4, 16, false).await));
    out.push(("bus_1to1_pattern_eps", bus_fanout(events, 1, true).await));
    out.push((
        "bus_1to4_pattern_eps",
        bus_fanout(events / 2, 4, true).await,
    ));
    // Paced latency: bus, raw mpsc and spinning bus runs interleaved, LATENCY_ROUNDS
    // rounds; each figure is the median over the rounds, and the ratio the median of the
    // rounds' ratios (a round's two runs share the machine's state of the moment).
    let mut rounds: Vec<[(f64, f64, f64); 4]> = Vec::new();
    for _ in 0..LATENCY_ROUNDS {
        let bus = bus_latency(200_000, Some(100_000), false).await;
        let raw = mpsc_latency(200_000, Some(100_000)).await;
        let spin = bus_latency(200_000, Some(100_000), true).await;
        let floor = spsc_spin_latency(200_000, Some(100_000));
        rounds.push([bus, raw, spin, floor]);
    }
    // Median over the rounds of run `k`'s percentile `q` (0: p50, 1: p99, 2: p99.9).
    let med = |k: usize, q: usize| {
        let mut v: Vec<f64> = rounds.iter().map(|r| [r[k].0, r[k].1, r[k].2][q]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    out.push(("latency_100k_p50_us", med(0, 0)));
    out.push(("latency_100k_p99_us", med(0, 1)));
    out.push(("latency_100k_p999_us", med(0, 2)));
    out.push(("mpsc_latency_100k_p50_us", med(1, 0)));
    out.push(("mpsc_latency_100k_p99_us", med(1, 1)));
    out.push(("mpsc_latency_100k_p999_us", med(1, 2)));
    let mut ratios: Vec<f64> = rounds.iter().map(|r| r[0].1 / r[1].1.max(1e-3)).collect();
    ratios.sort_by(f64::total_cmp);
    out.push(("latency_100k_p99_vs_mpsc", ratios[ratios.len() / 2]));
    out.push(("latency_spin_100k_p50_us", med(2, 0)));
    out.push(("latency_spin_100k_p99_us", med(2, 1)));
    out.push(("latency_spin_100k_p999_us", med(2, 2)));
    out.push(("spsc_spin_latency_100k_p50_us", med(3, 0)));
    out.push(("spsc_spin_latency_100k_p99_us", med(3, 1)));
    out.push(("spsc_spin_latency_100k_p999_us", med(3, 2)));
    let (p50, p99, p999) = bus_latency(events, None, false).await;
    out.push(("latency_max_p50_us", p50));
    out.push(("latency_max_p99_us", p99));
    out.push(("latency_max_p999_us", p999));
    out
}
