//! Spinning subscriptions (`SubscriptionBuilder::spin`): the same contract as a parked
//! one — order, backpressure, control lane, isolation, unsubscribe, shutdown — with the
//! worker on its own busy-polling thread, which ends with the subscription.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::bus::{DeadLetter, HandlerResult, Overflow, handler_fn, sync_handler};
use switchyard::control::ControlEvent;
use switchyard::{Bus, ControlEnvelope, Envelope, Topic};
use tokio::sync::{Semaphore, mpsc};

fn t(s: &str) -> Topic {
    Topic::new(s).unwrap()
}

/// The tests count this process's spinning threads, so under `cargo test` (one process,
/// tests in parallel; cargo-mutants runs them so) they take turns. Under nextest each
/// test is a process of its own and the lock is never contended.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Threads of this process whose name starts with `sy-spin-`.
fn spinning_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("sy-spin-"))
        .count()
}

/// Wait (bounded) until `n` spinning threads run: a thread names itself once started,
/// and exits right after its worker has finished.
async fn spinning_threads_become(n: usize) {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while spinning_threads() != n && std::time::Instant::now() < end {
        tokio::task::yield_now().await;
    }
    assert_eq!(spinning_threads(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_subscription_gets_every_event_in_order_under_block_backpressure() {
    let _serial = SERIAL.lock().await;
    let bus = Bus::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub = bus
        .subscription::<u64>("md.>")
        .unwrap()
        .capacity(16)
        .spin(true)
        .subscribe(sync_handler(move |ev: &Envelope<u64>| {
            let _ = tx.send(*ev.payload());
            Ok(())
        }))
        .unwrap();
    spinning_threads_become(1).await;
    let mut p = bus.publisher::<u64>(t("md.a"));
    for i in 0..50_000u64 {
        p.publish(i).await.unwrap();
    }
    let report = bus.shutdown(Duration::from_secs(10)).await;
    assert!(!report.deadline_hit);
    let mut got = Vec::new();
    while let Ok(v) = rx.try_recv() {
        got.push(v);
    }
    assert_eq!(got, (0..50_000).collect::<Vec<_>>());
    let s = sub.stats();
    assert_eq!((s.delivered, s.dropped.total()), (50_000, 0));
    assert_eq!(s.state, "finished");
    // The thread ends with the subscription, right after its worker finished.
    spinning_threads_become(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_overtakes_the_backlog_of_a_spinning_subscription_whose_handler_awaits() {
    let _serial = SERIAL.lock().await;
    let bus = Bus::new();
    let gate = Arc::new(Semaphore::new(0));
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    struct H {
        gate: Arc<Semaphore>,
        order: Arc<Mutex<Vec<String>>>,
    }
    impl switchyard::bus::Handler<u64> for H {
        async fn handle(&mut self, ev: &Envelope<u64>) -> HandlerResult {
            // Woken from another thread: the spinning executor polls it again.
            self.gate.acquire().await.unwrap().forget();
            self.order
                .lock()
                .unwrap()
                .push(format!("data {}", ev.payload()));
            Ok(())
        }
        async fn on_control(&mut self, ev: &ControlEnvelope) -> HandlerResult {
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
        .capacity(10_000)
        .control(true)
        .spin(true)
        .subscribe(H {
            gate: gate.clone(),
            order: order.clone(),
        })
        .unwrap();
    for i in 0..1_000u64 {
        bus.publish(t("md"), i).await.unwrap();
    }
    while sub.stats().queued == 1_000 {
        tokio::task::yield_now().await; // the worker has taken a batch and is in event 0
    }
    bus.publish_control(ControlEvent::Shutdown {
        reason: "test".into(),
    });
    gate.add_permits(2_000);
    bus.shutdown(Duration::from_secs(10)).await;
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 1_001);
    assert_eq!(order[0], "data 0");
    assert_eq!(order[1], "control switchyard.control.shutdown");
    assert_eq!(order[2], "data 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_spinning_handler_is_isolated_and_dead_lettered() {
    let _serial = SERIAL.lock().await;
    let bus = Bus::new();
    let (dl_tx, mut dead) = mpsc::unbounded_channel();
    bus.subscribe::<DeadLetter<u64>, _>(
        "switchyard.dead_letter.>",
        sync_handler(move |ev: &Envelope<DeadLetter<u64>>| {
            let _ = dl_tx.send(*ev.payload().envelope.payload());
            Ok(())
        }),
    )
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub = bus
        .subscription::<u64>("work")
        .unwrap()
        .spin(true)
        .subscribe(sync_handler(move |ev: &Envelope<u64>| {
            let v = *ev.payload();
            assert!(v != 3, "three is unlucky");
            let _ = tx.send(v);
            Ok(())
        }))
        .unwrap();
    for i in 0..6u64 {
        bus.publish(t("work"), i).await.unwrap();
    }
    assert_eq!(dead.recv().await, Some(3));
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(rx.recv().await.unwrap());
    }
    assert_eq!(got, vec![0, 1, 2, 4, 5]);
    assert_eq!(sub.stats().handler_panics, 1);
    bus.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_delivers_what_was_queued_and_ends_the_thread() {
    let _serial = SERIAL.lock().await;
    let bus = Bus::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub = bus
        .subscription::<u64>("md")
        .unwrap()
        .overflow(Overflow::DropNewest)
        .spin(true)
        .subscribe(sync_handler(move |ev: &Envelope<u64>| {
            let _ = tx.send(*ev.payload());
            Ok(())
        }))
        .unwrap();
    for i in 0..100u64 {
        bus.publish(t("md"), i).await.unwrap();
    }
    sub.unsubscribe();
    bus.publish(t("md"), 100).await.unwrap();
    sub.closed().await;
    let mut got = Vec::new();
    while let Ok(v) = rx.try_recv() {
        got.push(v);
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    spinning_threads_become(0).await;
    bus.shutdown(Duration::from_secs(5)).await;
}

/// At the shutdown deadline a spinning worker held in a handler is told to stop (it has
/// no task to abort): it finishes the event in hand and handles nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_worker_stops_after_the_event_in_hand_at_the_shutdown_deadline() {
    let _serial = SERIAL.lock().await;
    let bus = Bus::new();
    let gate = Arc::new(Semaphore::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let g = gate.clone();
    let sub = bus
        .subscription::<u64>("x")
        .unwrap()
        .spin(true)
        .subscribe(handler_fn(move |ev: &Envelope<u64>| {
            let (v, gate, tx) = (*ev.payload(), g.clone(), tx.clone());
            let _ = started_tx.send(v);
            async move {
                gate.acquire().await.unwrap().forget();
                let _ = tx.send(v);
                Ok(())
            }
        }))
        .unwrap();
    spinning_threads_become(1).await;
    for i in 0..10u64 {
        bus.publish(t("x"), i).await.unwrap();
    }
    // The worker holds event 0 (and whatever else it took); the rest is queued.
    assert_eq!(started.recv().await, Some(0));
    // A deadline the held handler cannot meet: it waits for the gate, opened only after.
    let report = bus.shutdown(Duration::from_millis(50)).await;
    assert!(report.deadline_hit);
    gate.add_permits(100);
    spinning_threads_become(0).await;
    let mut got = Vec::new();
    while let Ok(v) = rx.try_recv() {
        got.push(v);
    }
    assert_eq!(got, vec![0]);
    assert_eq!(sub.stats().delivered, 1);
}
