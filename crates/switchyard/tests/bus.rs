//! Integration tests of the event bus, one section per point of its contract.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::bus::{
    DeadLetter, Failure, HandlerError, Overflow, PublishError, SubscribeError, TryPublishError,
    handler_fn, sync_handler,
};
use switchyard::control::{Alert, ControlEvent};
use switchyard::{Bus, Envelope, ManualClock, Timestamp, Topic};
use tokio::sync::{Semaphore, mpsc};

fn t(s: &str) -> Topic {
    Topic::new(s).unwrap()
}

/// A handler that forwards every payload to a channel.
fn collect<T: Clone + Send + Sync + 'static>(
    tx: mpsc::UnboundedSender<T>,
) -> impl switchyard::bus::Handler<T> {
    sync_handler(move |ev: &Envelope<T>| {
        let _ = tx.send(ev.payload().clone());
        Ok(())
    })
}

/// A handler that takes one permit from `gate` per event before recording it: the test
/// decides when each event may be handled.
fn gated(
    gate: Arc<Semaphore>,
    seen: mpsc::UnboundedSender<u64>,
) -> impl switchyard::bus::Handler<u64> {
    handler_fn(move |ev: &Envelope<u64>| {
        let v = *ev.payload();
        let gate = gate.clone();
        let seen = seen.clone();
        async move {
            gate.acquire().await.unwrap().forget();
            let _ = seen.send(v);
            Ok(())
        }
    })
}

/// Yield until `sub` has exactly `n` events queued (the worker took the rest into its
/// hands).
async fn queued_becomes(sub: &switchyard::bus::Subscription, n: u64) {
    while sub.stats().queued != n {
        tokio::task::yield_now().await;
    }
}

async fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>, n: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(rx.recv().await.expect("channel open"));
    }
    out
}

// 1. Typed events and envelopes --------------------------------------------------------

#[tokio::test]
async fn envelopes_carry_topic_sequence_and_clock_time() {
    let clock = ManualClock::new(Timestamp(1_000));
    let bus = Bus::with_clock(Arc::new(clock.clone()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscribe::<String, _>(
        "a.>",
        sync_handler(move |ev: &Envelope<String>| {
            let _ = tx.send((ev.topic, ev.seq, ev.ts, ev.payload().clone()));
            Ok(())
        }),
    )
    .unwrap();
    let s0 = bus.publish(t("a.x"), "one".to_string()).await.unwrap();
    clock.advance(Duration::from_nanos(500));
    let s1 = bus.publish(t("a.y"), "two".to_string()).await.unwrap();
    assert!(s1 > s0);
    let got = drain(&mut rx, 2).await;
    assert_eq!(got[0], (t("a.x"), s0, Timestamp(1_000), "one".to_string()));
    assert_eq!(got[1], (t("a.y"), s1, Timestamp(1_500), "two".to_string()));
}

#[tokio::test]
async fn events_reach_only_subscriptions_of_their_type() {
    let bus = Bus::new();
    let (tx_u, mut rx_u) = mpsc::unbounded_channel::<u64>();
    let (tx_s, mut rx_s) = mpsc::unbounded_channel::<String>();
    bus.subscribe::<u64, _>("x", collect(tx_u)).unwrap();
    bus.subscribe::<String, _>("x", collect(tx_s)).unwrap();
    bus.publish(t("x"), 7u64).await.unwrap();
    bus.publish(t("x"), "s".to_string()).await.unwrap();
    assert_eq!(rx_u.recv().await, Some(7));
    assert_eq!(rx_s.recv().await.as_deref(), Some("s"));
    bus.shutdown(Duration::from_secs(1)).await;
    assert!(
        rx_u.try_recv().is_err(),
        "u64 subscriber got a String event"
    );
    assert!(
        rx_s.try_recv().is_err(),
        "String subscriber got a u64 event"
    );
}

// 2. Topic routing ----------------------------------------------------------------------

#[tokio::test]
async fn exact_and_wildcard_subscriptions_route_like_nats() {
    let bus = Bus::new();
    let mut rxs = Vec::new();
    for p in ["md.trade.BTC", "md.*.BTC", "md.>", "md.trade.*", "other.>"] {
        let (tx, rx) = mpsc::unbounded_channel::<u64>();
        bus.subscribe::<u64, _>(p, collect(tx)).unwrap();
        rxs.push((p, rx));
    }
    bus.publish(t("md.trade.BTC"), 1u64).await.unwrap();
    bus.publish(t("md.quote.ETH"), 2u64).await.unwrap();
    bus.publish(t("md"), 3u64).await.unwrap();
    bus.shutdown(Duration::from_secs(1)).await;
    let mut got = Vec::new();
    for (p, mut rx) in rxs {
        let mut v = Vec::new();
        while let Ok(x) = rx.try_recv() {
            v.push(x);
        }
        got.push((p, v));
    }
    assert_eq!(
        got,
        vec![
            ("md.trade.BTC", vec![1]),
            ("md.*.BTC", vec![1]),
            ("md.>", vec![1, 2]),
            ("md.trade.*", vec![1]),
            ("other.>", vec![]),
        ]
    );
}

#[tokio::test]
async fn invalid_patterns_are_rejected_with_the_reason() {
    let bus = Bus::new();
    let err = bus
        .subscribe::<u64, _>("a.>.b", sync_handler(|_: &Envelope<u64>| Ok(())))
        .unwrap_err();
    assert!(matches!(err, SubscribeError::Pattern(_)));
    assert!(
        err.to_string().contains("'>' must be the last token"),
        "{err}"
    );
    let err = bus
        .subscribe::<u64, _>("a..b", sync_handler(|_: &Envelope<u64>| Ok(())))
        .unwrap_err();
    assert!(err.to_string().contains("empty token"), "{err}");
    let err = bus
        .subscription::<u64>("ok")
        .unwrap()
        .capacity(0)
        .subscribe(sync_handler(|_: &Envelope<u64>| Ok(())))
        .unwrap_err();
    assert!(
        err.to_string().contains("capacity must be at least 1"),
        "{err}"
    );
}

#[tokio::test]
async fn nothing_published_after_unsubscribe_reaches_the_handler() {
    let bus = Bus::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    let sub = bus.subscribe::<u64, _>("x", collect(tx)).unwrap();
    // A publisher that resolved its routes before the unsubscribe.
    let mut p = bus.publisher::<u64>(t("x"));
    assert_eq!(p.subscriber_count(), 1);
    for i in 0..100 {
        p.publish(i).await.unwrap();
    }
    sub.unsubscribe();
    for i in 100..200 {
        p.publish(i).await.unwrap();
        bus.publish(t("x"), i).await.unwrap();
    }
    sub.closed().await;
    let mut got = Vec::new();
    while let Ok(v) = rx.try_recv() {
        got.push(v);
    }
    assert_eq!(
        got,
        (0..100).collect::<Vec<_>>(),
        "queued events delivered, later ones not"
    );
    assert_eq!(p.subscriber_count(), 0);
}

#[tokio::test]
async fn subscribing_later_takes_effect_for_existing_publishers() {
    let bus = Bus::new();
    let mut p = bus.publisher::<u64>(t("late.topic"));
    p.publish(1).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    bus.subscribe::<u64, _>("late.*", collect(tx)).unwrap();
    p.publish(2).await.unwrap();
    assert_eq!(rx.recv().await, Some(2));
}

// 3. Delivery, policies -----------------------------------------------------------------

#[tokio::test]
async fn a_stuck_subscriber_does_not_delay_the_others() {
    let bus = Bus::new();
    let gate = Arc::new(Semaphore::new(0)); // never opened: the handler is stuck
    let (tx_stuck, _rx_stuck) = mpsc::unbounded_channel();
    let stuck = bus
        .subscription::<u64>("x")
        .unwrap()
        .name("stuck")
        .capacity(8)
        .overflow(Overflow::DropNewest)
        .subscribe(gated(gate, tx_stuck))
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    bus.subscribe::<u64, _>("x", collect(tx)).unwrap();
    for i in 0..10_000u64 {
        bus.publish(t("x"), i).await.unwrap();
    }
    let got = drain(&mut rx, 10_000).await;
    assert_eq!(got, (0..10_000).collect::<Vec<_>>());
    let s = stuck.stats();
    // One in the handler, at most 8 queued (+ one batch in hand), the rest refused.
    assert!(s.dropped.newest >= 10_000 - 8 - 8, "{s:?}");
    assert_eq!(s.accepted + s.dropped.newest, 10_000);
}

#[tokio::test(start_paused = true)]
async fn block_makes_the_publisher_wait_and_loses_nothing() {
    let bus = Bus::new();
    let gate = Arc::new(Semaphore::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub = bus
        .subscription::<u64>("x")
        .unwrap()
        .capacity(4)
        .batch(1)
        .overflow(Overflow::Block)
        .subscribe(gated(gate.clone(), tx))
        .unwrap();
    let published = Arc::new(AtomicU64::new(0));
    let p2 = published.clone();
    let b2 = bus.clone();
    let producer = tokio::spawn(async move {
        for i in 0..100u64 {
            b2.publish(t("x"), i).await.unwrap();
            p2.store(i + 1, Ordering::SeqCst);
        }
    });
    tokio::time::sleep(Duration::from_millis(10)).await; // let everything settle (paused)
    // 1 in the handler + 4 queued; the producer is parked on the 6th.
    assert_eq!(published.load(Ordering::SeqCst), 5);
    gate.add_permits(1000);
    producer.await.unwrap();
    let got = drain(&mut rx, 100).await;
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(sub.stats().dropped.total(), 0);
}

#[tokio::test]
async fn try_publish_hands_the_event_back_when_a_block_queue_is_full() {
    let bus = Bus::new();
    let gate = Arc::new(Semaphore::new(0));
    let (tx, _rx) = mpsc::unbounded_channel();
    let sub = bus
        .subscription::<u64>("x")
        .unwrap()
        .capacity(2)
        .batch(1)
        .subscribe(gated(gate, tx))
        .unwrap();
    // Event 0 goes into the handler's hands (held at the gate), leaving the queue empty.
    bus.try_publish(t("x"), 0u64).unwrap();
    queued_becomes(&sub, 0).await;
    // The queue takes exactly its capacity, and the next event comes back, not admitted.
    bus.try_publish(t("x"), 1u64).unwrap();
    bus.try_publish(t("x"), 2u64).unwrap();
    match bus.try_publish(t("x"), 3u64) {
        Err(TryPublishError::Full {
            event,
            subscription,
        }) => {
            assert_eq!(subscription, "x");
            assert_eq!(event, 3);
        }
        other => panic!("expected Full, got {other:?}"),
    }
    let s = sub.stats();
    assert_eq!((s.queued, s.overcommitted, s.accepted), (2, 0, 3));
}

/// Fill a gated subscription with `policy` while its handler is held, then release it.
async fn run_policy(
    policy: Overflow<u64>,
    topics: &[&str],
    n: u64,
) -> (Vec<u64>, switchyard::bus::SubscriptionStats) {
    run_policy_with(policy, topics, n, false).await
}

async fn run_policy_with(
    policy: Overflow<u64>,
    topics: &[&str],
    n: u64,
    via_try_publish: bool,
) -> (Vec<u64>, switchyard::bus::SubscriptionStats) {
    let bus = Bus::new();
    let gate = Arc::new(Semaphore::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub = bus
        .subscription::<u64>(">")
        .unwrap()
        .capacity(4)
        .batch(1)
        .overflow(policy)
        .subscribe(gated(gate.clone(), tx))
        .unwrap();
    // First event goes into the handler and waits there.
    bus.publish(t(topics[0]), 1000u64).await.unwrap();
    queued_becomes(&sub, 0).await;
    for i in 0..n {
        let topic = t(topics[i as usize % topics.len()]);
        if via_try_publish {
            bus.try_publish(topic, i).unwrap();
        } else {
            bus.publish(topic, i).await.unwrap();
        }
    }
    gate.add_permits(10_000);
    let report = bus.shutdown(Duration::from_secs(5)).await;
    // Dropped events count as done: the drain ends when the queue does, not at the deadline.
    assert!(!report.deadline_hit, "{report:?}");
    assert_eq!(report.undelivered(), 0);
    let mut got = Vec::new();
    while let Ok(v) = rx.try_recv() {
        got.push(v);
    }
    assert_eq!(got[0], 1000, "{got:?}");
    (got[1..].to_vec(), sub.stats())
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_and_counts_the_rest() {
    let (got, s) = run_policy(Overflow::DropOldest, &["a"], 10).await;
    assert_eq!(got, vec![6, 7, 8, 9]);
    assert_eq!(s.dropped.oldest, 6);
    assert_eq!(s.accepted, s.delivered + s.dropped.oldest);
}

#[tokio::test]
async fn drop_newest_keeps_the_oldest_and_counts_the_rest() {
    let (got, s) = run_policy(Overflow::DropNewest, &["a"], 10).await;
    assert_eq!(got, vec![0, 1, 2, 3]);
    assert_eq!(s.dropped.newest, 6);
}

/// `try_publish` never waits, but only `Block` would make it wait: the lossy policies
/// drop for it exactly as for `publish` (nothing is admitted past capacity).
#[tokio::test]
async fn lossy_policies_apply_to_try_publish_too() {
    let (got, s) = run_policy_with(Overflow::DropNewest, &["a"], 10, true).await;
    assert_eq!(got, vec![0, 1, 2, 3]);
    assert_eq!((s.dropped.newest, s.overcommitted), (6, 0));
    let (got, s) = run_policy_with(Overflow::DropOldest, &["a"], 10, true).await;
    assert_eq!(got, vec![6, 7, 8, 9]);
    assert_eq!((s.dropped.oldest, s.overcommitted), (6, 0));
}

#[tokio::test]
async fn conflate_keeps_the_latest_event_per_topic_in_place() {
    let (got, s) = run_policy(Overflow::Conflate, &["q.A", "q.B", "q.C"], 9).await;
    // A: 0,3,6 -> 6; B: 1,4,7 -> 7; C: 2,5,8 -> 8; order of first arrival kept.
    assert_eq!(got, vec![6, 7, 8]);
    assert_eq!(s.dropped.conflated, 6);
}

/// A new key at a full conflating queue drops the oldest event; a later event whose key
/// is still pending replaces that one, found by its place after the drop.
#[tokio::test]
async fn conflate_into_a_full_queue_drops_the_oldest_and_still_replaces_in_place() {
    // Keys 0, 1, 2, 3 fill the queue (capacity 4); key 4 drops event 0; event 5 has key
    // 3 and replaces event 3 where it stands.
    let key = |v: &u64| if *v == 5 { 3 } else { *v };
    let (got, s) = run_policy(Overflow::ConflateBy(Arc::new(key)), &["a"], 6).await;
    assert_eq!(got, vec![1, 2, 5, 4]);
    assert_eq!((s.dropped.oldest, s.dropped.conflated), (1, 1));
    assert_eq!((s.accepted, s.delivered), (7, 5));
}

#[tokio::test]
async fn conflate_by_key_uses_the_key_function() {
    let (got, s) = run_policy(Overflow::ConflateBy(Arc::new(|v: &u64| v % 2)), &["a"], 10).await;
    assert_eq!(got, vec![8, 9]);
    assert_eq!(s.dropped.conflated, 8);
}

#[tokio::test(start_paused = true)]
async fn evict_disconnects_a_subscriber_that_stays_full_and_raises_an_alert() {
    let clock = ManualClock::new(Timestamp(0));
    let bus = Bus::with_clock(Arc::new(clock.clone()));
    let (alert_tx, mut alerts) = mpsc::unbounded_channel();
    bus.subscribe_control("alerts", move |c: &switchyard::ControlEnvelope| {
        if let ControlEvent::Alert(a) = &c.event {
            let _ = alert_tx.send(a.clone());
        }
        async { Ok(()) }
    })
    .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let (tx, _rx) = mpsc::unbounded_channel();
    let sub = bus
        .subscription::<u64>("x")
        .unwrap()
        .name("slow")
        .capacity(4)
        .batch(1)
        .overflow(Overflow::Evict {
            grace: Duration::from_secs(2),
        })
        .subscribe(gated(gate, tx))
        .unwrap();
    bus.publish(t("x"), 0u64).await.unwrap();
    queued_becomes(&sub, 0).await;
    for i in 1..=6u64 {
        bus.publish(t("x"), i).await.unwrap(); // 4 queued, 2 refused (full since t=0)
    }
    assert_eq!(sub.stats().state, "active");
    clock.advance(Duration::from_secs(3));
    bus.publish(t("x"), 7u64).await.unwrap(); // still full after the grace: evicted
    let alert = alerts.recv().await.unwrap();
    assert_eq!(
        alert,
        Alert::SubscriberEvicted {
            subscription: "slow".into(),
            dropped: 4
        }
    );
    let s = sub.stats();
    assert_eq!(s.state, "evicted");
    assert_eq!(s.dropped.evicted, 4);
    assert_eq!(s.dropped.newest, 3);
    // Gone from the routes.
    assert_eq!(bus.publisher::<u64>(t("x")).subscriber_count(), 0);
}

/// Evicted while its worker holds a batch taken from the queue: what it had not handled
/// yet counts as evicted too, so every accepted event is accounted for.
#[tokio::test(start_paused = true)]
async fn evicting_a_worker_mid_batch_counts_the_events_in_its_hands() {
    let clock = ManualClock::new(Timestamp(0));
    let bus = Bus::with_clock(Arc::new(clock.clone()));
    let gate = Arc::new(Semaphore::new(0));
    let (tx, mut seen) = mpsc::unbounded_channel();
    let sub = bus
        .subscription::<u64>("x")
        .unwrap()
        .capacity(4)
        .batch(4)
        .overflow(Overflow::Evict {
            grace: Duration::from_secs(2),
        })
        .subscribe(gated(gate.clone(), tx))
        .unwrap();
    for i in 0..4u64 {
        bus.publish(t("x"), i).await.unwrap();
    }
    queued_becomes(&sub, 0).await; // the worker took 0..=3 and waits in event 0
    for i in 4..=8u64 {
        bus.publish(t("x"), i).await.unwrap(); // 4 queued, 8 refused: full since t=0
    }
    clock.advance(Duration::from_secs(3));
    bus.publish(t("x"), 9u64).await.unwrap(); // still full after the grace: evicted
    assert_eq!(sub.stats().dropped.evicted, 4);
    gate.add_permits(100);
    assert_eq!(seen.recv().await, Some(0));
    while sub.stats().delivered != 1 {
        tokio::task::yield_now().await;
    }
    tokio::task::yield_now().await;
    let s = sub.stats();
    assert_eq!(s.state, "evicted");
    assert_eq!(s.delivered, 1, "the worker stopped after the event in hand");
    assert_eq!(
        s.dropped.evicted,
        4 + 3,
        "the queue's four and the batch's three"
    );
    assert_eq!(s.dropped.newest, 2);
    assert_eq!(s.accepted, s.delivered + s.dropped.evicted);
    assert!(
        seen.try_recv().is_err(),
        "nothing handled after the eviction"
    );
}

/// After a worker took part of a conflating queue, a pending key is still replaced where
/// it stands (the queue's front moved by what was taken).
#[tokio::test]
async fn conflation_after_a_partial_take_replaces_the_pending_event() {
    let bus = Bus::new();
    let gate = Arc::new(Semaphore::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub = bus
        .subscription::<u64>("q.>")
        .unwrap()
        .capacity(8)
        .batch(1)
        .overflow(Overflow::Conflate)
        .subscribe(gated(gate.clone(), tx))
        .unwrap();
    bus.publish(t("q.A"), 100u64).await.unwrap();
    queued_becomes(&sub, 0).await; // 100 is in the handler's hands
    bus.publish(t("q.B"), 1u64).await.unwrap();
    bus.publish(t("q.C"), 2u64).await.unwrap();
    gate.add_permits(1); // 100 done; the worker takes B's 1 alone and waits in it
    queued_becomes(&sub, 1).await;
    bus.publish(t("q.C"), 3u64).await.unwrap(); // replaces the pending 2
    gate.add_permits(10);
    assert_eq!(drain(&mut rx, 3).await, vec![100, 1, 3]);
    let s = sub.stats();
    assert_eq!((s.dropped.conflated, s.delivered), (1, 3));
}

/// Full for exactly the grace period is full for the grace period: evicted.
#[tokio::test(start_paused = true)]
async fn evict_at_exactly_the_grace_period() {
    let clock = ManualClock::new(Timestamp(0));
    let bus = Bus::with_clock(Arc::new(clock.clone()));
    let gate = Arc::new(Semaphore::new(0));
    let (tx, _rx) = mpsc::unbounded_channel();
    let sub = bus
        .subscription::<u64>("x")
        .unwrap()
        .capacity(1)
        .batch(1)
        .overflow(Overflow::Evict {
            grace: Duration::from_secs(2),
        })
        .subscribe(gated(gate, tx))
        .unwrap();
    bus.publish(t("x"), 0u64).await.unwrap();
    queued_becomes(&sub, 0).await;
    bus.publish(t("x"), 1u64).await.unwrap(); // queued: full from now
    bus.publish(t("x"), 2u64).await.unwrap(); // refused, full since t = 0
    clock.advance(Duration::from_millis(1_999));
    bus.publish(t("x"), 3u64).await.unwrap(); // refused: 1.999 s < grace
    assert_eq!(sub.stats().state, "active");
    clock.advance(Duration::from_millis(1));
    bus.publish(t("x"), 4u64).await.unwrap(); // full for 2 s: evicted
    let s = sub.stats();
    assert_eq!(s.state, "evicted");
    assert_eq!((s.dropped.newest, s.dropped.evicted), (3, 1));
}

/// A control event reaches a subscription with no data at all.
#[tokio::test(start_paused = true)]
async fn a_control_event_reaches_an_idle_subscription() {
    let bus = Bus::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub = bus
        .subscribe_control("watch", move |c: &switchyard::ControlEnvelope| {
            let _ = tx.send(c.topic);
            async { Ok(()) }
        })
        .unwrap();
    bus.publish_control(ControlEvent::Shutdown {
        reason: "test".into(),
    });
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the control event was handled");
    assert_eq!(
        got.map(|t| t.as_str().to_owned()),
        Some("switchyard.control.shutdown".into())
    );
    assert_eq!(sub.stats().control_handled, 1);
}

#[tokio::test]
async fn fan_out_shares_one_payload_and_one_subscriber_owns_it() {
    let bus = Bus::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, bool)>();
    for _ in 0..4 {
        let tx = tx.clone();
        bus.subscribe::<Vec<u8>, _>(
            "fan",
            sync_handler(move |ev: &Envelope<Vec<u8>>| {
                let _ = tx.send((ev.payload().as_ptr() as usize, ev.payload.is_shared()));
                Ok(())
            }),
        )
        .unwrap();
    }
    bus.publish(t("fan"), vec![1u8; 1024]).await.unwrap();
    let got = drain(&mut rx, 4).await;
    assert!(
        got.iter().all(|(p, shared)| *p == got[0].0 && *shared),
        "{got:?}"
    );

    let (tx1, mut rx1) = mpsc::unbounded_channel::<bool>();
    bus.subscribe::<String, _>(
        "solo",
        sync_handler(move |ev: &Envelope<String>| {
            let _ = tx1.send(ev.payload.is_shared());
            Ok(())
        }),
    )
    .unwrap();
    bus.publish(t("solo"), "x".to_string()).await.unwrap();
    assert_eq!(rx1.recv().await, Some(false));
}

// 4. Control lane -----------------------------------------------------------------------

#[tokio::test]
async fn control_events_overtake_a_data_backlog() {
    let bus = Bus::new();
    let gate = Arc::new(Semaphore::new(0));
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    struct H {
        gate: Arc<Semaphore>,
        order: Arc<Mutex<Vec<String>>>,
    }
    impl switchyard::bus::Handler<u64> for H {
        async fn handle(&mut self, ev: &Envelope<u64>) -> switchyard::bus::HandlerResult {
            self.gate.acquire().await.unwrap().forget();
            self.order
                .lock()
                .unwrap()
                .push(format!("data {}", ev.payload()));
            Ok(())
        }
        async fn on_control(
            &mut self,
            ev: &switchyard::ControlEnvelope,
        ) -> switchyard::bus::HandlerResult {
            self.order
                .lock()
                .unwrap()
                .push(format!("control {}", ev.topic));
            Ok(())
        }
    }
    let sub = bus
        .subscription::<u64>("md")
        .unwrap()
        .capacity(100_000)
        .control(true)
        .subscribe(H {
            gate: gate.clone(),
            order: order.clone(),
        })
        .unwrap();
    for i in 0..10_000u64 {
        bus.publish(t("md"), i).await.unwrap();
    }
    while sub.stats().queued == 10_000 {
        tokio::task::yield_now().await; // the worker has taken a batch and is in event 0
    }
    bus.publish_control(ControlEvent::Shutdown {
        reason: "test".into(),
    });
    gate.add_permits(20_000);
    bus.shutdown(Duration::from_secs(10)).await;
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 10_001);
    assert_eq!(order[0], "data 0");
    assert_eq!(
        order[1], "control switchyard.control.shutdown",
        "control did not overtake"
    );
    assert_eq!(order[2], "data 1");
    let s = sub.stats();
    assert_eq!(
        (s.control_received, s.control_handled, s.delivered),
        (1, 1, 10_000)
    );
}

// 5. Handler isolation --------------------------------------------------------------------

#[tokio::test]
async fn errors_and_panics_are_isolated_counted_and_dead_lettered() {
    let bus = Bus::new();
    let (dl_tx, mut dead) = mpsc::unbounded_channel();
    bus.subscribe::<DeadLetter<u64>, _>(
        "switchyard.dead_letter.>",
        sync_handler(move |ev: &Envelope<DeadLetter<u64>>| {
            let d = ev.payload();
            let _ = dl_tx.send((
                d.subscription.clone(),
                d.failure.clone(),
                d.envelope.topic,
                *d.envelope.payload(),
                ev.topic,
            ));
            Ok(())
        }),
    )
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let flaky = bus
        .subscription::<u64>("work")
        .unwrap()
        .name("flaky")
        .subscribe(sync_handler(move |ev: &Envelope<u64>| {
            match *ev.payload() {
                3 => return Err(HandlerError::msg("three is bad")),
                5 => panic!("five is worse"),
                _ => {}
            }
            let _ = tx.send(*ev.payload());
            Ok(())
        }))
        .unwrap();
    let (tx_other, mut rx_other) = mpsc::unbounded_channel();
    bus.subscribe::<u64, _>("work", collect(tx_other)).unwrap();
    for i in 0..8u64 {
        bus.publish(t("work"), i).await.unwrap();
    }
    assert_eq!(drain(&mut rx, 6).await, vec![0, 1, 2, 4, 6, 7]);
    assert_eq!(drain(&mut rx_other, 8).await, (0..8).collect::<Vec<_>>());
    let d1 = dead.recv().await.unwrap();
    let d2 = dead.recv().await.unwrap();
    assert_eq!(d1.0, "flaky");
    assert_eq!(d1.1, Failure::Error("three is bad".into()));
    assert_eq!((d1.2, d1.3), (t("work"), 3));
    assert_eq!(d1.4, t("switchyard.dead_letter.work"));
    assert_eq!(d2.1, Failure::Panic("five is worse".into()));
    assert_eq!(d2.3, 5);
    let s = flaky.stats();
    assert_eq!((s.handler_errors, s.handler_panics, s.delivered), (1, 1, 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_publishing_to_each_other_under_block_do_not_deadlock() {
    let bus = Bus::new();
    let done = Arc::new(tokio::sync::Notify::new());
    // ping -> pong -> ping ... each with a queue of 1 under Block.
    for (from, to) in [("ping", "pong"), ("pong", "ping")] {
        let b = bus.clone();
        let done = done.clone();
        bus.subscription::<u64>(from)
            .unwrap()
            .capacity(1)
            .batch(1)
            .overflow(Overflow::Block)
            .subscribe(handler_fn(move |ev: &Envelope<u64>| {
                let v = *ev.payload();
                let b = b.clone();
                let done = done.clone();
                async move {
                    if v >= 2_000 {
                        done.notify_one();
                        return Ok(());
                    }
                    // Two publishes per event: the queues must overflow their capacity.
                    b.publish(t(to), v + 1).await.map_err(HandlerError::msg)?;
                    b.publish(t(to), v + 1_000_000)
                        .await
                        .map_err(HandlerError::msg)?;
                    Ok(())
                }
            }))
            .unwrap();
    }
    bus.publish(t("ping"), 0u64).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), done.notified())
        .await
        .expect("handlers deadlocked");
    let snap = bus.snapshot();
    assert!(snap.subscriptions.iter().any(|s| s.overcommitted > 0));
    assert!(snap.subscriptions.iter().all(|s| s.dropped.total() == 0));
}

// 6. Shutdown -----------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_refuses_late_publishers_and_drains_everything() {
    let bus = Bus::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscribe::<u64, _>("x", collect(tx)).unwrap();
    for i in 0..1_000u64 {
        bus.publish(t("x"), i).await.unwrap();
    }
    let report = bus.shutdown(Duration::from_secs(5)).await;
    assert!(!report.deadline_hit);
    assert_eq!(report.subscriptions[0].delivered, 1_000);
    assert_eq!(report.undelivered(), 0);
    assert_eq!(drain(&mut rx, 1_000).await.len(), 1_000);
    match bus.publish(t("x"), 42u64).await {
        Err(PublishError::Closed(v)) => assert_eq!(v, 42),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(matches!(
        bus.try_publish(t("x"), 43u64),
        Err(TryPublishError::Closed(43))
    ));
    let err = bus.publish(t("x"), 44u64).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the bus is shut down and accepts no new events"
    );
}

/// What handlers publish while the queues drain (an order on the last tick, the fill of
/// that order) is delivered too: shutdown closes the queues only once nothing is queued
/// and no handler runs. A chain a → b → c with a backlog on `a` at shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_what_handlers_publish_while_draining() {
    let bus = Bus::new();
    let gate = Arc::new(Semaphore::new(0));
    for (from, to) in [("a", "b"), ("b", "c")] {
        let b = bus.clone();
        let gate = gate.clone();
        let is_a = from == "a";
        bus.subscription::<u64>(from)
            .unwrap()
            .capacity(4)
            .subscribe(handler_fn(move |ev: &Envelope<u64>| {
                let (b, gate, v) = (b.clone(), gate.clone(), *ev.payload());
                async move {
                    if is_a {
                        // Hold `a` until shutdown has begun, so its backlog drains then.
                        gate.acquire().await.unwrap().forget();
                    }
                    b.try_publish(t(to), v).map(|_| ()).map_err(|e| e.into())
                }
            }))
            .unwrap();
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscribe::<u64, _>("c", collect(tx)).unwrap();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for i in 0..4u64 {
                bus.publish(t("a"), i).await.unwrap();
            }
        })
    };
    publisher.await.unwrap();
    let shutdown = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.shutdown(Duration::from_secs(10)).await })
    };
    while !bus.is_closed() {
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        bus.try_publish(t("a"), 99u64),
        Err(TryPublishError::Closed(99))
    ));
    gate.add_permits(4);
    let report = shutdown.await.unwrap();
    assert!(!report.deadline_hit);
    let mut got = drain(&mut rx, 4).await;
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3]);
    assert_eq!(report.undelivered(), 0);
    let c = report.subscriptions.iter().find(|s| s.name == "c").unwrap();
    assert_eq!((c.accepted, c.delivered, c.rejected_at_shutdown), (4, 4, 0));
}

#[tokio::test(start_paused = true)]
async fn a_stuck_handler_cannot_hold_shutdown_past_its_deadline_and_nothing_goes_uncounted() {
    let bus = Bus::new();
    let gate = Arc::new(Semaphore::new(0));
    let (tx, _rx) = mpsc::unbounded_channel();
    let stuck = bus
        .subscription::<u64>("x")
        .unwrap()
        .name("stuck")
        .capacity(100)
        .overflow(Overflow::DropNewest)
        .subscribe(gated(gate.clone(), tx))
        .unwrap();
    let (tx2, _rx2) = mpsc::unbounded_channel();
    bus.subscription::<u64>("x")
        .unwrap()
        .name("fine")
        .subscribe(collect(tx2))
        .unwrap();
    gate.add_permits(10); // ten get through, then it sticks
    for i in 0..150u64 {
        bus.publish(t("x"), i).await.unwrap();
    }
    let before = tokio::time::Instant::now();
    let report = bus.shutdown(Duration::from_millis(250)).await;
    assert!(report.deadline_hit);
    assert_eq!(before.elapsed(), Duration::from_millis(250));
    let s = report
        .subscriptions
        .iter()
        .find(|s| s.name == "stuck")
        .unwrap();
    let f = report
        .subscriptions
        .iter()
        .find(|s| s.name == "fine")
        .unwrap();
    assert_eq!(f.delivered, 150);
    assert_eq!(f.undelivered, 0);
    assert_eq!(s.delivered, 10);
    let st = stuck.stats();
    assert_eq!(st.accepted, st.delivered + s.undelivered);
    assert_eq!(
        st.accepted + st.dropped.newest,
        150,
        "every publish accounted for"
    );
    assert!(s.undelivered > 0);
    assert!(report.to_string().contains("deadline hit"));
}

#[tokio::test]
async fn blocked_publishers_are_released_by_shutdown_with_their_event() {
    let bus = Bus::new();
    let gate = Arc::new(Semaphore::new(0));
    let (tx, _rx) = mpsc::unbounded_channel();
    bus.subscription::<u64>("x")
        .unwrap()
        .capacity(1)
        .batch(1)
        .subscribe(gated(gate, tx))
        .unwrap();
    bus.publish(t("x"), 0u64).await.unwrap();
    bus.publish(t("x"), 1u64).await.unwrap();
    let b = bus.clone();
    let blocked = tokio::spawn(async move {
        // Wait until the queue is full, then block.
        b.publish(t("x"), 2u64).await
    });
    tokio::task::yield_now().await;
    let report = bus.shutdown(Duration::from_millis(50)).await;
    let res = blocked.await.unwrap();
    assert!(
        matches!(res, Err(PublishError::Closed(2)) | Ok(_)),
        "{res:?}"
    );
    if res.is_ok() {
        // It got in before shutdown: then it must be counted as undelivered.
        assert!(report.undelivered() >= 2);
    }
}

// 7. Observability --------------------------------------------------------------------------

#[tokio::test]
async fn snapshot_counts_topics_and_subscriptions() {
    let bus = Bus::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscription::<u64>("m.*")
        .unwrap()
        .name("all-m")
        .subscribe(collect(tx))
        .unwrap();
    for i in 0..30u64 {
        bus.publish(t(if i % 3 == 0 { "m.a" } else { "m.b" }), i)
            .await
            .unwrap();
    }
    drain(&mut rx, 30).await;
    let snap = bus.snapshot();
    let count = |name: &str| {
        snap.topics
            .iter()
            .find(|x| x.topic == name)
            .map(|x| x.published)
    };
    assert_eq!(count("m.a"), Some(10));
    assert_eq!(count("m.b"), Some(20));
    let s = &snap.subscriptions[0];
    assert_eq!(s.name, "all-m");
    assert_eq!(s.delivered, 30);
    assert_eq!(s.latency.count, 30);
    assert_eq!(s.handler_duration.count, 30);
    assert!(s.latency.p99_ns >= s.latency.p50_ns);
    assert_eq!(
        s.latency.buckets.len(),
        switchyard::bus::LATENCY_BUCKETS_SECONDS.len()
    );
    assert_eq!(*s.latency.buckets.last().unwrap(), 30);
}

// Ordering under concurrent publishers (property) ----------------------------------------

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
    /// Whatever the interleaving, each subscription sees every publisher's events in the
    /// order that publisher sent them, and loses none under Block.
    #[test]
    fn per_publisher_order_holds_under_concurrent_publishers(
        publishers in 1usize..5,
        per in 1u64..400,
        capacity in 1usize..64,
        subscribers in 1usize..4,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let bus = Bus::new();
            let mut rxs = Vec::new();
            for _ in 0..subscribers {
                let (tx, rx) = mpsc::unbounded_channel::<(usize, u64)>();
                bus.subscription::<(usize, u64)>("ord.*").unwrap().capacity(capacity).subscribe(collect(tx)).unwrap();
                rxs.push(rx);
            }
            let mut tasks = Vec::new();
            for p in 0..publishers {
                let bus = bus.clone();
                tasks.push(tokio::spawn(async move {
                    let mut pubr = bus.publisher::<(usize, u64)>(t(&format!("ord.p{p}")));
                    for i in 0..per {
                        pubr.publish((p, i)).await.unwrap();
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            let report = bus.shutdown(Duration::from_secs(30)).await;
            assert_eq!(report.undelivered(), 0);
            for mut rx in rxs {
                let mut next = vec![0u64; publishers];
                let mut n = 0;
                while let Ok((p, i)) = rx.try_recv() {
                    assert_eq!(i, next[p], "publisher {p} out of order");
                    next[p] += 1;
                    n += 1;
                }
                assert_eq!(n, publishers as u64 * per);
            }
        });
    }
}
