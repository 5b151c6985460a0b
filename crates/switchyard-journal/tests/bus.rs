//! Durability, the recorder and replay onto a real bus.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard::bus::{handler_fn, sync_handler};
use switchyard::control::{Alert, ControlEvent, Severity};
use switchyard::{Bus, Clock, Envelope, ManualClock, Timestamp, Topic};
use switchyard_journal::{
    CONTROL_KIND, Journal, JournalConfig, JournalError, JournalReader, Pace, ReadFilter, Recorder,
    Replayer, SyncPolicy,
};
use tokio::sync::mpsc;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Trade {
    px: f64,
    qty: u32,
    venue: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Fill {
    order: u64,
}

fn group(dir: &std::path::Path) -> JournalConfig {
    JournalConfig::new(dir).sync(SyncPolicy::Group {
        every_events: 1_000_000,
        every: Duration::from_secs(3600),
    })
}

#[test]
fn group_commit_reaches_durable_on_sync_now_and_close() {
    let dir = tempfile::tempdir().unwrap();
    // A policy that would never fsync on its own within the test.
    let (j, _) = Journal::open(group(dir.path())).unwrap();
    for i in 1..=100u64 {
        assert_eq!(j.append(i, Timestamp(i), "a.b", "k", b"x").unwrap(), i);
    }
    assert_eq!(j.durable(), 0);
    assert_eq!(j.sync_now().unwrap(), 100);
    assert_eq!(j.durable(), 100);
    assert_eq!(j.wait_durable(50).unwrap(), 100);
    for i in 101..=150u64 {
        j.append(i, Timestamp(i), "a.b", "k", b"x").unwrap();
    }
    let stats = j.close().unwrap();
    assert_eq!(
        (stats.durable, stats.last_index, stats.records),
        (150, 150, 150)
    );
    assert_eq!(j.durable(), 150);
    assert!(j.append(1, Timestamp(1), "a", "k", b"").is_err());
    assert!(j.wait_durable(151).is_err());
}

#[test]
fn group_commit_syncs_by_count_and_wait_durable_blocks_until_then() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(JournalConfig::new(dir.path()).sync(SyncPolicy::Group {
        every_events: 10,
        every: Duration::from_secs(3600),
    }))
    .unwrap();
    // Another thread waits for index 10 before it exists: wait_durable says so.
    assert!(j.wait_durable(10).is_err());
    for i in 1..=10u64 {
        j.append(i, Timestamp(i), "a.b", "k", b"x").unwrap();
    }
    let j2 = j.clone();
    let t = std::thread::spawn(move || j2.wait_durable(10).unwrap());
    assert!(t.join().unwrap() >= 10);
    j.close().unwrap();
}

#[test]
fn group_commit_syncs_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(JournalConfig::new(dir.path()).sync(SyncPolicy::Group {
        every_events: 1_000_000,
        every: Duration::from_millis(2),
    }))
    .unwrap();
    let i = j.append(1, Timestamp(1), "a.b", "k", b"x").unwrap();
    assert_eq!(j.wait_durable(i).unwrap(), 1);
    j.close().unwrap();
}

#[test]
fn never_policy_is_durable_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(JournalConfig::new(dir.path()).sync(SyncPolicy::Never)).unwrap();
    j.append(1, Timestamp(1), "a.b", "k", b"x").unwrap();
    assert_eq!(j.sync_now().unwrap(), 1);
    assert_eq!(j.written(), 1);
    j.close().unwrap();
}

#[test]
fn appenders_from_many_threads_get_gapless_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(
        JournalConfig::new(dir.path())
            .segment_bytes(4096)
            .max_buffer_bytes(512),
    )
    .unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                for i in 0..500u64 {
                    j.append_serialized(t, Timestamp(i), "a.b", "pair", &(t, i))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    j.close().unwrap();
    let r = JournalReader::open(dir.path()).unwrap();
    let mut last = [None::<u64>; 4];
    for (n, rec) in r.records(ReadFilter::all()).enumerate() {
        let rec = rec.unwrap();
        assert_eq!(rec.index, n as u64 + 1);
        let (t, i): (u64, u64) = switchyard_journal::decode_payload(&rec.payload).unwrap();
        assert_eq!(t, rec.seq);
        // Each thread's records are in its order.
        assert!(last[t as usize].is_none_or(|l| l < i));
        last[t as usize] = Some(i);
    }
    assert_eq!(last, [Some(499); 4]);
}

#[tokio::test]
async fn durable_at_least_awaits_the_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(group(dir.path())).unwrap();
    let i = j.append(1, Timestamp(1), "a.b", "k", b"x").unwrap();
    let j2 = j.clone();
    let waiter = tokio::spawn(async move { j2.durable_at_least(i).await });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    let d = tokio::task::spawn_blocking(move || j.sync_now())
        .await
        .unwrap();
    assert_eq!(d.unwrap(), 1);
    assert_eq!(waiter.await.unwrap().unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_always_the_recorder_returns_only_after_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(JournalConfig::new(dir.path()).sync(SyncPolicy::Always)).unwrap();
    let bus = Bus::new();
    let sub = Recorder::new(j.clone(), bus.clone())
        .record::<Trade>("md.>", "trade")
        .unwrap();
    assert_eq!(sub.name(), "journal:trade:md.>");
    for n in 1..=20u64 {
        let trade = Trade {
            px: n as f64,
            qty: n as u32,
            venue: "X".into(),
        };
        bus.publish(Topic::new("md.trade.BTC").unwrap(), trade)
            .await
            .unwrap();
        // The handler's completion is counted after it returns: by then it is durable.
        while sub.stats().delivered < n {
            tokio::task::yield_now().await;
        }
        assert!(
            j.durable() >= n,
            "delivered {n} but durable {}",
            j.durable()
        );
    }
    bus.shutdown(Duration::from_secs(5)).await;
    j.close().unwrap();
}

#[tokio::test]
async fn recorder_journals_chosen_topics_and_control_events() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(JournalConfig::new(dir.path())).unwrap();
    let clock = ManualClock::new(Timestamp(5_000));
    let bus = Bus::with_clock(Arc::new(clock.clone()));
    let rec = Recorder::new(j.clone(), bus.clone());
    rec.record::<Trade>("md.trade.*", "trade").unwrap();
    rec.record::<Fill>("orders.>", "fill").unwrap();
    rec.record_control_matching(&["switchyard.control.alert"])
        .unwrap();
    let t1 = bus
        .publish(
            Topic::new("md.trade.BTC").unwrap(),
            Trade {
                px: 1.5,
                qty: 2,
                venue: "A".into(),
            },
        )
        .await
        .unwrap();
    clock.set(Timestamp(6_000));
    // Not recorded: wrong type for the topic, and a topic no pattern matches.
    bus.publish(Topic::new("md.trade.BTC").unwrap(), 7u64)
        .await
        .unwrap();
    bus.publish(
        Topic::new("md.quote.BTC").unwrap(),
        Trade {
            px: 0.0,
            qty: 0,
            venue: String::new(),
        },
    )
    .await
    .unwrap();
    bus.publish(Topic::new("orders.fill.1").unwrap(), Fill { order: 9 })
        .await
        .unwrap();
    bus.publish_control(ControlEvent::Alert(Alert::Other {
        severity: Severity::Critical,
        source: "test".into(),
        message: "boom".into(),
    }));
    bus.publish_control(ControlEvent::Shutdown {
        reason: "not recorded".into(),
    });
    bus.shutdown(Duration::from_secs(5)).await;
    j.close().unwrap();

    let recs: Vec<_> = JournalReader::open(dir.path())
        .unwrap()
        .records(ReadFilter::all())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(recs.len(), 3, "{recs:?}");
    let trade = recs.iter().find(|r| r.kind == "trade").unwrap();
    assert_eq!(
        (trade.topic.as_str(), trade.seq, trade.ts),
        ("md.trade.BTC", t1, Timestamp(5_000))
    );
    let back: Trade = switchyard_journal::decode_payload(&trade.payload).unwrap();
    assert_eq!(back.venue, "A");
    let ctl = recs.iter().find(|r| r.kind == CONTROL_KIND).unwrap();
    assert_eq!(ctl.topic, "switchyard.control.alert");
    let v: serde_json::Value = serde_json::from_slice(&ctl.payload).unwrap();
    assert_eq!(v["message"], "boom");
    assert!(recs.iter().any(|r| r.kind == "fill"));
}

async fn record_sample(dir: &std::path::Path) -> Vec<(String, Trade, Timestamp)> {
    let (j, _) = Journal::open(JournalConfig::new(dir).segment_bytes(256)).unwrap();
    let clock = ManualClock::new(Timestamp(1_000_000_000));
    let bus = Bus::with_clock(Arc::new(clock.clone()));
    Recorder::new(j.clone(), bus.clone())
        .record::<Trade>(">", "trade")
        .unwrap();
    Recorder::new(j.clone(), bus.clone())
        .record::<Fill>(">", "fill")
        .unwrap();
    let mut sent = Vec::new();
    let gaps_ms = [0u64, 10, 250, 0, 40, 1000, 5];
    for (n, gap) in gaps_ms.iter().enumerate() {
        clock.advance(Duration::from_millis(*gap));
        let topic = if n % 2 == 0 {
            "md.trade.BTC"
        } else {
            "md.trade.ETH"
        };
        let t = Trade {
            px: n as f64 * 1.25,
            qty: n as u32,
            venue: format!("v{n}"),
        };
        bus.publish(Topic::new(topic).unwrap(), t.clone())
            .await
            .unwrap();
        // Serialize so the journal order is the publish order (two subscriptions).
        let mut p = bus.publisher::<Fill>(Topic::new("orders.fill").unwrap());
        p.publish(Fill { order: n as u64 }).await.unwrap();
        sent.push((topic.to_owned(), t, clock.now()));
    }
    bus.shutdown(Duration::from_secs(5)).await;
    j.close().unwrap();
    sent
}

#[tokio::test]
async fn replay_onto_a_bus_reproduces_topics_payloads_and_clock_times() {
    let dir = tempfile::tempdir().unwrap();
    let sent = record_sample(dir.path()).await;

    let clock = ManualClock::new(Timestamp::ZERO);
    let bus = Bus::with_clock(Arc::new(clock.clone()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let c2 = clock.clone();
    bus.subscribe::<Trade, _>(
        "md.>",
        sync_handler(move |ev: &Envelope<Trade>| {
            tx.send((
                ev.topic.as_str().to_owned(),
                ev.payload().clone(),
                ev.ts,
                c2.now(),
            ))
            .unwrap();
            Ok(())
        }),
    )
    .unwrap();
    // Only trades are decoded; fills are skipped and counted.
    let stats = Replayer::open(dir.path())
        .unwrap()
        .decoder::<Trade>("trade")
        .run(&bus, Some(&clock), Pace::Max, ReadFilter::all())
        .await
        .unwrap();
    assert_eq!(stats.published, sent.len() as u64);
    assert_eq!(stats.skipped, sent.len() as u64);
    assert_eq!(stats.skipped_kinds["fill"], sent.len() as u64);
    bus.shutdown(Duration::from_secs(5)).await;
    let mut got = Vec::new();
    while let Ok(x) = rx.try_recv() {
        got.push(x);
    }
    assert_eq!(got.len(), sent.len());
    for ((topic, trade, ts), (gt, gtrade, gts, _)) in sent.iter().zip(&got) {
        assert_eq!((topic, trade, ts), (gt, gtrade, gts));
    }

    // With a filter, and a handler that checks the clock while it runs.
    let clock = ManualClock::new(Timestamp::ZERO);
    let bus = Bus::with_clock(Arc::new(clock.clone()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let c2 = clock.clone();
    bus.subscribe::<Trade, _>(
        ">",
        handler_fn(move |ev: &Envelope<Trade>| {
            let _ = tx.send((ev.ts, c2.now()));
            async { Ok(()) }
        }),
    )
    .unwrap();
    let mut replay = Replayer::open(dir.path())
        .unwrap()
        .decoder::<Trade>("trade");
    replay = replay.decoder::<Fill>("fill");
    let stats = replay
        .run(
            &bus,
            Some(&clock),
            Pace::Max,
            ReadFilter::all().topic("md.trade.ETH").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(stats.published, 3);
    bus.shutdown(Duration::from_secs(5)).await;
    let mut n = 0;
    while let Ok((ts, _)) = rx.try_recv() {
        assert_eq!(ts, sent[2 * n + 1].2);
        n += 1;
    }
    assert_eq!(n, 3);
}

#[tokio::test(start_paused = true)]
async fn paced_replay_keeps_the_original_gaps_divided_by_speed() {
    let dir = tempfile::tempdir().unwrap();
    let sent = record_sample(dir.path()).await;
    let clock = ManualClock::new(Timestamp::ZERO);
    let bus = Bus::with_clock(Arc::new(clock.clone()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscribe::<Trade, _>(
        ">",
        sync_handler(move |ev: &Envelope<Trade>| {
            tx.send((ev.ts, tokio::time::Instant::now())).unwrap();
            Ok(())
        }),
    )
    .unwrap();
    let start = tokio::time::Instant::now();
    let stats = Replayer::open(dir.path())
        .unwrap()
        .decoder::<Trade>("trade")
        .run(
            &bus,
            Some(&clock),
            Pace::Original { speed: 2.0 },
            ReadFilter::all(),
        )
        .await
        .unwrap();
    assert_eq!(stats.published, sent.len() as u64);
    bus.shutdown(Duration::from_secs(5)).await;
    let first_ts = sent[0].2;
    let mut n = 0;
    while let Ok((ts, at)) = rx.try_recv() {
        let want = ts.saturating_duration_since(first_ts) / 2;
        let elapsed = at - start;
        assert!(
            elapsed >= want && elapsed < want + Duration::from_millis(1),
            "event {n}: elapsed {elapsed:?}, want {want:?}"
        );
        n += 1;
    }
    assert_eq!(n, sent.len());
    // 1305 ms of recorded time at speed 2.
    assert_eq!(
        sent.last().unwrap().2.saturating_duration_since(first_ts),
        Duration::from_millis(1305)
    );
}

#[test]
fn handles_are_send_and_sync_and_replay_futures_are_send() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Journal>();
    send_sync::<JournalReader>();
    send_sync::<Recorder>();
    send_sync::<Replayer>();
    let bus = Bus::new();
    let dir = std::path::PathBuf::from("does-not-exist");
    let replayer = Replayer::new(&dir).decoder::<Trade>("trade");
    let fut = replayer.run(&bus, None, Pace::Max, ReadFilter::default());
    send(&fut);
    let j = async { Ok::<_, ()>(()) };
    send(&j);
}

#[tokio::test]
async fn a_replayer_of_a_missing_directory_fails_in_run() {
    let bus = Bus::new();
    let r = Replayer::new("/nonexistent/journal").decoder::<Trade>("trade");
    assert!(
        r.run(&bus, None, Pace::Max, ReadFilter::default())
            .await
            .is_err()
    );
}

/// Run `f` on a thread; panic if it does not finish within `secs` (a hang detector).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("hang: no result in time")
}

#[test]
fn group_commit_with_an_unbounded_interval_syncs_by_count_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(JournalConfig::new(dir.path()).sync(SyncPolicy::Group {
        every_events: 1000,
        every: Duration::MAX,
    }))
    .unwrap();
    for i in 1..=10u64 {
        j.append(i, Timestamp(i), "a.b", "k", b"x").unwrap();
    }
    // Let the writer write them and go idle with unsynced events (where the deadline
    // `oldest + every` used to overflow).
    while j.written() < 10 {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(30));
    for i in 11..=20u64 {
        j.append(i, Timestamp(i), "a.b", "k", b"x").unwrap();
    }
    let j2 = j.clone();
    assert_eq!(within(20, move || j2.sync_now()).unwrap(), 20);
    j.append(21, Timestamp(21), "a.b", "k", b"x").unwrap();
    let j2 = j.clone();
    let stats = within(20, move || j2.close()).unwrap();
    assert_eq!((stats.durable, stats.last_index), (21, 21));
    let n = JournalReader::open(dir.path())
        .unwrap()
        .records(ReadFilter::all())
        .count();
    assert_eq!(n, 21);
}

#[test]
fn a_writer_io_failure_fails_waiters_and_close() {
    let dir = tempfile::tempdir().unwrap();
    // Room for exactly one record per segment: the second append rolls over to a new
    // segment, whose file name we take first, so the writer fails to create it.
    let frame = 36 + "a.b".len() + "k".len() + 1;
    let config = JournalConfig::new(dir.path())
        .sync(SyncPolicy::Never)
        .segment_bytes((32 + frame) as u64);
    let (j, _) = Journal::open(config.clone()).unwrap();
    j.append(1, Timestamp(1), "a.b", "k", b"x").unwrap();
    let squatter = dir
        .path()
        .join(switchyard_journal::segment::segment_file_name(2));
    std::fs::write(&squatter, b"not a segment").unwrap();
    j.append(2, Timestamp(2), "a.b", "k", b"x").unwrap();
    let j2 = j.clone();
    // An outage (see `outage`): the durability wait and further appends are refused...
    let waited = within(20, move || j2.wait_durable(2));
    assert!(
        matches!(&waited, Err(JournalError::Unavailable { reason, .. }) if reason.contains("File exists")),
        "{waited:?}"
    );
    assert!(matches!(
        j.append(3, Timestamp(3), "a.b", "k", b"x"),
        Err(JournalError::Unavailable { .. })
    ));
    // ...and the squatter, which the writer did not create, is left alone; closing makes
    // a last attempt, which fails the same way.
    let j2 = j.clone();
    let closed = within(20, move || j2.close());
    assert!(
        matches!(closed, Err(JournalError::WriterFailed { .. })),
        "{closed:?}"
    );
    // Record 1 was fsynced before the rollover and survives.
    drop(j);
    assert_eq!(std::fs::read(&squatter).unwrap(), b"not a segment");
    std::fs::remove_file(&squatter).unwrap();
    let (j, rep) = Journal::open(config).unwrap();
    assert_eq!(rep.last_index, 1);
    j.close().unwrap();
}

#[test]
fn concurrent_closes_all_return_after_the_final_fsync() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(group(dir.path())).unwrap();
        for i in 1..=200u64 {
            j.append(i, Timestamp(i), "a.b", "k", &[0u8; 512]).unwrap();
        }
        let closers: Vec<_> = (0..4)
            .map(|_| {
                let j = j.clone();
                std::thread::spawn(move || j.close())
            })
            .collect();
        for c in closers {
            let stats = c.join().unwrap().unwrap();
            assert_eq!((stats.durable, stats.last_index), (200, 200));
        }
    }
}
