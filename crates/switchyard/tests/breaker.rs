//! Circuit breaker behaviour, on paused tokio time (async `Breaker`) or explicit instants
//! (sync `CircuitBreaker`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use switchyard::breaker::{
    Backoff, Breaker, BreakerConfig, BreakerState, BreakerTransition, CallError, CircuitBreaker,
    Classification, Permit, SlidingWindow, TransitionReason,
};
use tokio::sync::oneshot;

#[derive(Debug, PartialEq)]
struct Boom;

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}

fn recorder(b: &Breaker) -> Arc<Mutex<Vec<BreakerTransition>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    b.on_transition(Arc::new(move |t: &BreakerTransition| {
        sink.lock().unwrap().push(t.clone())
    }));
    seen
}

fn states(seen: &Mutex<Vec<BreakerTransition>>) -> Vec<(BreakerState, BreakerState)> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|t| (t.from, t.to))
        .collect()
}

async fn fail(b: &Breaker) -> CallError<Boom> {
    b.call(async { Err::<(), _>(Boom) }).await.unwrap_err()
}

async fn succeed(b: &Breaker) {
    b.call(async { Ok::<_, Boom>(()) }).await.unwrap();
}

const OPEN: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_the_breaker_and_calls_fail_fast_saying_until_when() {
    let b = Breaker::new(
        "exchange",
        BreakerConfig {
            consecutive_failures: Some(3),
            open_duration: OPEN,
            ..Default::default()
        },
    )
    .unwrap();
    let seen = recorder(&b);
    fail(&b).await;
    fail(&b).await;
    succeed(&b).await; // breaks the run
    fail(&b).await;
    fail(&b).await;
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(matches!(fail(&b).await, CallError::Inner(Boom)));
    assert_eq!(b.state(), BreakerState::Open);
    let t = seen.lock().unwrap()[0].clone();
    assert_eq!(t.reason, TransitionReason::ConsecutiveFailures { count: 3 });
    assert_eq!(t.open_for, Some(OPEN));
    assert_eq!(&*t.name, "exchange");

    tokio::time::advance(Duration::from_secs(10)).await;
    let mut called = false;
    let err = b
        .call(async {
            called = true;
            Ok::<_, Boom>(())
        })
        .await
        .unwrap_err();
    assert!(!called, "an open breaker must not run the call");
    let CallError::Open(open) = &err else {
        panic!("expected Open, got {err:?}")
    };
    assert_eq!(open.retry_after, Some(Duration::from_secs(20)));
    assert!(open.until.is_some());
    assert!(
        err.to_string().contains("for another 20s"),
        "display must say until when: {err}"
    );
    let c = b.counters();
    assert_eq!((c.calls, c.failures, c.successes, c.rejected), (7, 5, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn failure_rate_trips_only_once_minimum_calls_are_reached() {
    let b = Breaker::new(
        "rate",
        BreakerConfig {
            consecutive_failures: None,
            failure_rate_threshold: Some(0.5),
            window: SlidingWindow::Count { calls: 10 },
            minimum_calls: 5,
            ..Default::default()
        },
    )
    .unwrap();
    let seen = recorder(&b);
    for _ in 0..4 {
        fail(&b).await;
    }
    assert_eq!(b.state(), BreakerState::Closed, "4 calls < minimum_calls");
    succeed(&b).await; // 4/5 = 80% ≥ 50%
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        seen.lock().unwrap()[0].reason,
        TransitionReason::FailureRate {
            failures: 4,
            calls: 5
        }
    );
}

#[tokio::test(start_paused = true)]
async fn failure_rate_below_threshold_keeps_it_closed_and_count_window_slides() {
    let b = Breaker::new(
        "rate",
        BreakerConfig {
            consecutive_failures: None,
            failure_rate_threshold: Some(0.5),
            window: SlidingWindow::Count { calls: 4 },
            minimum_calls: 4,
            ..Default::default()
        },
    )
    .unwrap();
    // F S S S: 25%; then F: window S S S F still 25%; then F: S S F F = 50% → open.
    fail(&b).await;
    for _ in 0..3 {
        succeed(&b).await;
    }
    fail(&b).await;
    assert_eq!(b.state(), BreakerState::Closed);
    fail(&b).await;
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn time_window_forgets_failures_older_than_its_duration() {
    let mut b = CircuitBreaker::new(
        "time",
        BreakerConfig {
            consecutive_failures: None,
            failure_rate_threshold: Some(0.5),
            window: SlidingWindow::Time {
                duration: Duration::from_secs(10),
            },
            minimum_calls: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let t0 = Instant::now();
    let at = |b: &mut CircuitBreaker, secs: u64, ok: bool| {
        let now = t0 + Duration::from_secs(secs);
        let p = b.try_acquire(now).unwrap();
        if ok {
            b.on_success(p, Duration::ZERO, now);
        } else {
            b.on_failure(p, now);
        }
    };
    at(&mut b, 0, false);
    at(&mut b, 1, false);
    // 11 s later the two failures have left the window: 0 of 1 call failed.
    at(&mut b, 12, true);
    at(&mut b, 12, true);
    at(&mut b, 13, false);
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "1 of 3 in the window failed"
    );
    at(&mut b, 13, false);
    assert_eq!(b.state(), BreakerState::Open, "2 of 4 in the window failed");
}

#[tokio::test(start_paused = true)]
async fn slow_call_rate_trips_the_breaker() {
    let b = Breaker::new(
        "slow",
        BreakerConfig {
            consecutive_failures: None,
            slow_call_duration: Some(Duration::from_millis(100)),
            slow_call_rate_threshold: Some(0.5),
            window: SlidingWindow::Count { calls: 10 },
            minimum_calls: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let seen = recorder(&b);
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        Ok::<_, Boom>(())
    };
    succeed(&b).await;
    b.call(slow()).await.unwrap();
    assert_eq!(b.state(), BreakerState::Closed, "below minimum calls");
    b.call(slow()).await.unwrap();
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        seen.lock().unwrap()[0].reason,
        TransitionReason::SlowCallRate { slow: 2, calls: 3 }
    );
    let c = b.counters();
    assert_eq!((c.successes, c.slow_calls, c.failures), (3, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_call_over_the_timeout_is_a_failure() {
    let b = Breaker::new(
        "timeout",
        BreakerConfig {
            consecutive_failures: Some(2),
            call_timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        },
    )
    .unwrap();
    let started = tokio::time::Instant::now();
    let err = b
        .call(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Boom>(())
        })
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert!(err.is_timeout(), "{err:?}");
    assert!(err.to_string().contains("timed out after 1s"), "{err}");
    // A call just under the timeout succeeds.
    b.call(async {
        tokio::time::sleep(Duration::from_millis(999)).await;
        Ok::<_, Boom>(())
    })
    .await
    .unwrap();
    let c = b.counters();
    assert_eq!((c.timeouts, c.failures, c.successes), (1, 1, 1));
    // Two timeouts in a row trip it.
    for _ in 0..2 {
        let e = b
            .call(std::future::pending::<Result<(), Boom>>())
            .await
            .unwrap_err();
        assert!(e.is_timeout());
    }
    assert_eq!(b.state(), BreakerState::Open);
}

fn tripping(probes: u32, backoff: Option<Backoff>) -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: Some(1),
        open_duration: Duration::from_secs(1),
        half_open_probes: probes,
        backoff,
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn open_moves_to_half_open_after_the_open_duration() {
    let b = Breaker::new("h", tripping(1, None)).unwrap();
    let seen = recorder(&b);
    fail(&b).await;
    tokio::time::advance(Duration::from_millis(999)).await;
    assert!(fail(&b).await.is_open());
    assert_eq!(b.snapshot().open_remaining_ms, Some(1));
    tokio::time::advance(Duration::from_millis(1)).await;
    // Lazy: still reads open, with nothing left, until a call asks to pass.
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.snapshot().open_remaining_ms, Some(0));
    succeed(&b).await;
    assert_eq!(
        states(&seen),
        vec![
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
        ]
    );
    let seqs: Vec<u64> = seen.lock().unwrap().iter().map(|t| t.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(b.counters().transitions, 3);
}

type PendingCall = (
    oneshot::Sender<Result<(), Boom>>,
    tokio::task::JoinHandle<Result<(), CallError<Boom>>>,
);

/// Start a call whose result is decided later through the returned sender.
fn pending_call(b: &Breaker) -> PendingCall {
    let (tx, rx) = oneshot::channel();
    let b = b.clone();
    let handle = tokio::spawn(async move { b.call(async move { rx.await.unwrap() }).await });
    (tx, handle)
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_only_the_permitted_probes_and_closes_when_all_succeed() {
    let b = Breaker::new("probes", tripping(3, None)).unwrap();
    fail(&b).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let mut probes = Vec::new();
    for _ in 0..3 {
        probes.push(pending_call(&b));
    }
    tokio::task::yield_now().await;
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.snapshot().probes_admitted, 3);
    // The 4th concurrent call is refused.
    let err = fail(&b).await;
    let CallError::Open(open) = &err else {
        panic!("expected a refusal, got {err:?}")
    };
    assert_eq!(open.state, BreakerState::HalfOpen);
    assert!(err.to_string().contains("half-open"), "{err}");
    // Two probes succeed: still half-open.
    for (tx, h) in probes.drain(..2) {
        tx.send(Ok(())).unwrap();
        h.await.unwrap().unwrap();
    }
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(
        fail(&b).await.is_open(),
        "the probe budget is spent, not refilled"
    );
    // The last one succeeds: closed.
    let (tx, h) = probes.pop().unwrap();
    tx.send(Ok(())).unwrap();
    h.await.unwrap().unwrap();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_with_exponential_backoff_up_to_the_max() {
    let b = Breaker::new(
        "backoff",
        tripping(
            1,
            Some(Backoff {
                multiplier: 2.0,
                max: Duration::from_secs(5),
            }),
        ),
    )
    .unwrap();
    let seen = recorder(&b);
    fail(&b).await; // closed → open for 1 s
    let mut expected = vec![1u64];
    for want in [2u64, 4, 5, 5] {
        let open_for = seen.lock().unwrap().last().unwrap().open_for.unwrap();
        // Still open one tick before the end of the period…
        tokio::time::advance(open_for - Duration::from_millis(1)).await;
        assert!(fail(&b).await.is_open());
        tokio::time::advance(Duration::from_millis(1)).await;
        // …then a probe, which fails: re-opened for longer.
        assert!(matches!(fail(&b).await, CallError::Inner(Boom)));
        let last = seen.lock().unwrap().last().unwrap().clone();
        assert_eq!(
            (last.from, last.to),
            (BreakerState::HalfOpen, BreakerState::Open)
        );
        assert_eq!(last.reason, TransitionReason::ProbeFailed);
        expected.push(want);
    }
    let opens: Vec<u64> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|t| t.open_for.map(|d| d.as_secs()))
        .collect();
    assert_eq!(opens, expected);
    assert_eq!(b.snapshot().consecutive_reopens, 4);
    // A successful probe closes and forgets the backoff.
    tokio::time::advance(Duration::from_secs(5)).await;
    succeed(&b).await;
    assert_eq!(b.state(), BreakerState::Closed);
    fail(&b).await;
    assert_eq!(
        seen.lock().unwrap().last().unwrap().open_for,
        Some(Duration::from_secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn forced_open_refuses_until_reset_and_disabled_admits_everything() {
    let b = Breaker::new("ops", tripping(1, None)).unwrap();
    let seen = recorder(&b);
    b.force_open();
    tokio::time::advance(Duration::from_secs(3600)).await;
    let err = fail(&b).await;
    let CallError::Open(open) = &err else {
        panic!("{err:?}")
    };
    assert_eq!((open.state, open.until), (BreakerState::ForcedOpen, None));
    assert!(
        err.to_string().contains("until an operator resets it"),
        "{err}"
    );
    b.reset();
    assert_eq!(b.state(), BreakerState::Closed);
    succeed(&b).await;

    b.disable();
    for _ in 0..20 {
        assert!(matches!(fail(&b).await, CallError::Inner(Boom)));
    }
    assert_eq!(b.state(), BreakerState::Disabled);
    b.reset();
    assert_eq!(
        states(&seen),
        vec![
            (BreakerState::Closed, BreakerState::ForcedOpen),
            (BreakerState::ForcedOpen, BreakerState::Closed),
            (BreakerState::Closed, BreakerState::Disabled),
            (BreakerState::Disabled, BreakerState::Closed),
        ]
    );
    let reasons: Vec<_> = seen.lock().unwrap().iter().map(|t| t.reason).collect();
    assert_eq!(
        reasons,
        vec![
            TransitionReason::ForcedOpen,
            TransitionReason::Reset,
            TransitionReason::Disabled,
            TransitionReason::Reset
        ]
    );
    let c = b.counters();
    assert_eq!(
        (c.calls, c.rejected, c.failures, c.successes),
        (22, 1, 20, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_frees_its_slot() {
    let b = Breaker::new("cancel", tripping(1, None)).unwrap();
    fail(&b).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let (tx, h) = pending_call(&b);
    tokio::task::yield_now().await;
    assert!(fail(&b).await.is_open(), "the only probe slot is taken");
    h.abort();
    assert!(h.await.unwrap_err().is_cancelled());
    drop(tx);
    succeed(&b).await;
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.counters().ignored, 1);
}

#[tokio::test(start_paused = true)]
async fn a_classifier_decides_what_counts() {
    let b = Breaker::new("classify", tripping(1, None)).unwrap();
    // A rejected request is not the service's fault: ignored.
    let r = b
        .call_classified(async { Err::<(), _>(Boom) }, |_| Classification::Ignore)
        .await;
    assert!(matches!(r, Err(CallError::Inner(Boom))));
    assert_eq!(b.state(), BreakerState::Closed);
    // An Ok that the classifier calls a failure trips it.
    b.call_classified(async { Ok::<_, Boom>(()) }, |_| Classification::Failure)
        .await
        .unwrap();
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn snapshot_reports_state_counters_and_open_time() {
    let mut b = CircuitBreaker::new("snap", tripping(1, None)).unwrap();
    let t0 = Instant::now();
    let p = b.try_acquire(t0).unwrap();
    b.on_failure(p, t0);
    let s = b.snapshot(t0 + Duration::from_millis(400));
    assert_eq!(s.name, "snap");
    assert_eq!(s.state, BreakerState::Open);
    assert_eq!(s.open_remaining_ms, Some(600));
    assert_eq!(s.counters.failures, 1);
}

#[test]
fn handles_are_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Breaker>();
}

#[derive(Clone, Debug)]
enum Op {
    Acquire,
    Succeed(usize, u64),
    Fail(usize),
    Timeout(usize),
    Release(usize),
    Advance(u64),
    ForceOpen,
    Disable,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Acquire),
        4 => (any::<usize>(), 0u64..200).prop_map(|(i, ms)| Op::Succeed(i, ms)),
        4 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Timeout),
        1 => any::<usize>().prop_map(Op::Release),
        3 => (0u64..1500).prop_map(Op::Advance),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::Reset),
    ]
}

proptest! {
    #[test]
    fn counters_stay_consistent(ops in proptest::collection::vec(op(), 1..300), rate in any::<bool>()) {
        let config = BreakerConfig {
            consecutive_failures: Some(3),
            failure_rate_threshold: rate.then_some(0.5),
            slow_call_duration: Some(Duration::from_millis(100)),
            slow_call_rate_threshold: Some(0.8),
            window: SlidingWindow::Count { calls: 8 },
            minimum_calls: 4,
            open_duration: Duration::from_millis(500),
            backoff: Some(Backoff { multiplier: 2.0, max: Duration::from_secs(4) }),
            half_open_probes: 2,
            ..Default::default()
        };
        let mut b = CircuitBreaker::new("prop", config).unwrap();
        let mut now = Instant::now();
        let mut pending: Vec<Permit> = Vec::new();
        let mut outcomes = 0u64;
        for op in ops {
            match op {
                Op::Acquire => match b.try_acquire(now) {
                    Ok(p) => pending.push(p),
                    Err(open) => prop_assert_ne!(open.state, BreakerState::Closed),
                },
                Op::Succeed(i, ms) if !pending.is_empty() => {
                    let p = pending.swap_remove(i % pending.len());
                    b.on_success(p, Duration::from_millis(ms), now);
                    outcomes += 1;
                }
                Op::Fail(i) if !pending.is_empty() => {
                    let p = pending.swap_remove(i % pending.len());
                    b.on_failure(p, now);
                    outcomes += 1;
                }
                Op::Timeout(i) if !pending.is_empty() => {
                    let p = pending.swap_remove(i % pending.len());
                    b.on_timeout(p, now);
                    outcomes += 1;
                }
                Op::Release(i) if !pending.is_empty() => {
                    let p = pending.swap_remove(i % pending.len());
                    b.release(p, now);
                }
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::ForceOpen => b.force_open(now),
                Op::Disable => b.disable(now),
                Op::Reset => b.reset(now),
                _ => {}
            }
            let c = b.counters();
            let in_flight = pending.len() as u64;
            prop_assert_eq!(c.successes + c.failures + c.rejected + c.ignored + in_flight, c.calls);
            prop_assert_eq!(c.successes + c.failures, outcomes);
            prop_assert!(c.timeouts <= c.failures);
            prop_assert!(c.slow_calls <= c.successes);
            let s = b.snapshot(now);
            prop_assert!(s.probes_admitted <= 2);
            prop_assert_eq!(s.open_remaining_ms.is_some(), b.state() == BreakerState::Open);
            let transitions = b.take_transitions();
            for pair in transitions.windows(2) {
                prop_assert_eq!(pair[0].to, pair[1].from);
                prop_assert_eq!(pair[0].seq + 1, pair[1].seq);
            }
        }
        for p in pending.drain(..) {
            b.on_success(p, Duration::ZERO, now);
        }
        let c = b.counters();
        prop_assert_eq!(c.successes + c.failures + c.rejected + c.ignored, c.calls);
    }
}

#[test]
fn permits_say_whether_they_are_probes_and_open_until_is_set_only_while_open() {
    let mut b = CircuitBreaker::new("until", tripping(1, None)).unwrap();
    let t0 = Instant::now();
    let p = b.try_acquire(t0).unwrap();
    assert!(!p.is_probe(), "a closed breaker's permit is no probe");
    assert_eq!(b.open_until(), None);
    let t1 = t0 + Duration::from_millis(250);
    b.on_failure(p, t1);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.open_until(), Some(t1 + Duration::from_secs(1)));
    let probe = b.try_acquire(t1 + Duration::from_secs(1)).unwrap();
    assert!(probe.is_probe());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.open_until(), None);
    b.on_success(probe, Duration::ZERO, t1 + Duration::from_secs(1));
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.open_until(), None);
}

#[test]
fn a_probe_from_an_earlier_half_open_period_frees_no_slot_when_released() {
    let mut b = CircuitBreaker::new("stale-probe", tripping(2, None)).unwrap();
    let t0 = Instant::now();
    let p = b.try_acquire(t0).unwrap();
    b.on_failure(p, t0);
    let t1 = t0 + Duration::from_secs(1);
    let failing = b.try_acquire(t1).unwrap();
    let stale = b.try_acquire(t1).unwrap();
    assert!(failing.is_probe() && stale.is_probe());
    b.on_failure(failing, t1); // re-opened: `stale` belongs to the last period
    assert_eq!(b.state(), BreakerState::Open);
    let t2 = t1 + Duration::from_secs(1);
    let _current = b.try_acquire(t2).unwrap();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.release(stale, t2);
    assert_eq!(b.counters().ignored, 1);
    assert_eq!(b.snapshot(t2).probes_admitted, 1);
    let _second = b.try_acquire(t2).unwrap();
    assert!(
        b.try_acquire(t2).is_err(),
        "only two probes per half-open period, whatever older permits do"
    );
}

#[test]
fn a_closed_period_permit_released_while_half_open_frees_no_slot() {
    let mut b = CircuitBreaker::new("stale-closed", tripping(1, None)).unwrap();
    let t0 = Instant::now();
    let early = b.try_acquire(t0).unwrap();
    let p = b.try_acquire(t0).unwrap();
    b.on_failure(p, t0);
    let t1 = t0 + Duration::from_secs(1);
    let _probe = b.try_acquire(t1).unwrap();
    b.release(early, t1);
    assert_eq!(b.snapshot(t1).probes_admitted, 1);
    assert!(
        b.try_acquire(t1).is_err(),
        "the only probe slot is still taken"
    );
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

fn slow_rule(probes: u32) -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: Some(1),
        slow_call_duration: Some(Duration::from_millis(100)),
        slow_call_rate_threshold: Some(0.5),
        window: SlidingWindow::Count { calls: 4 },
        minimum_calls: 4,
        open_duration: Duration::from_secs(1),
        half_open_probes: probes,
        ..Default::default()
    }
}

#[test]
fn a_fast_probe_closes_and_a_slow_one_reopens_when_a_slow_call_rule_is_set() {
    let mut b = CircuitBreaker::new("slow-probe", slow_rule(1)).unwrap();
    let t0 = Instant::now();
    let p = b.try_acquire(t0).unwrap();
    b.on_failure(p, t0);
    let t1 = t0 + Duration::from_secs(1);
    let probe = b.try_acquire(t1).unwrap();
    b.on_success(probe, Duration::from_millis(99), t1);
    assert_eq!(b.state(), BreakerState::Closed, "a fast probe closes it");

    let p = b.try_acquire(t1).unwrap();
    b.on_failure(p, t1);
    let t2 = t1 + Duration::from_secs(1);
    let probe = b.try_acquire(t2).unwrap();
    b.on_success(probe, Duration::from_millis(100), t2);
    assert_eq!(b.state(), BreakerState::Open, "a slow probe re-opens it");
    let last = b.take_transitions().pop().unwrap();
    assert_eq!(
        (last.from, last.to, last.reason),
        (
            BreakerState::HalfOpen,
            BreakerState::Open,
            TransitionReason::ProbeSlow
        )
    );
    assert_eq!(b.snapshot(t2).consecutive_reopens, 1);
}

#[test]
fn slow_call_rate_below_the_threshold_keeps_it_closed_and_at_it_trips() {
    let mut b = CircuitBreaker::new("slow-rate", slow_rule(1)).unwrap();
    let t0 = Instant::now();
    let mut call = |ms: u64| {
        let p = b.try_acquire(t0).unwrap();
        b.on_success(p, Duration::from_millis(ms), t0);
        b.state()
    };
    // slow fast fast fast: 1/4 = 25% < 50%.
    assert_eq!(call(100), BreakerState::Closed);
    for _ in 0..3 {
        assert_eq!(call(0), BreakerState::Closed);
    }
    // The window slides to fast fast fast slow: still 25%.
    assert_eq!(call(150), BreakerState::Closed);
    // fast fast slow slow: 50% → open.
    assert_eq!(call(150), BreakerState::Open);
    let t = b.take_transitions().pop().unwrap();
    assert_eq!(
        t.reason,
        TransitionReason::SlowCallRate { slow: 2, calls: 4 }
    );
}

#[test]
fn a_failure_rate_under_the_threshold_with_failures_in_the_window_keeps_it_closed() {
    let mut b = CircuitBreaker::new(
        "rate-sync",
        BreakerConfig {
            consecutive_failures: None,
            failure_rate_threshold: Some(0.5),
            window: SlidingWindow::Count { calls: 3 },
            minimum_calls: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let t0 = Instant::now();
    let mut call = |fail: bool| {
        let p = b.try_acquire(t0).unwrap();
        if fail {
            b.on_failure(p, t0);
        } else {
            b.on_success(p, Duration::ZERO, t0);
        }
        b.state()
    };
    // S S F: 1/3 < 50%.
    assert_eq!(call(false), BreakerState::Closed);
    assert_eq!(call(false), BreakerState::Closed);
    assert_eq!(call(true), BreakerState::Closed);
    // S F F: 2/3 ≥ 50%.
    assert_eq!(call(true), BreakerState::Open);
}

#[test]
fn states_and_reasons_display_for_humans() {
    let states: Vec<String> = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
        BreakerState::ForcedOpen,
        BreakerState::Disabled,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        states,
        ["closed", "open", "half-open", "forced-open", "disabled"]
    );
    let reasons: Vec<String> = [
        TransitionReason::ConsecutiveFailures { count: 3 },
        TransitionReason::FailureRate {
            failures: 4,
            calls: 5,
        },
        TransitionReason::SlowCallRate { slow: 2, calls: 3 },
        TransitionReason::OpenDurationElapsed,
        TransitionReason::ProbeFailed,
        TransitionReason::ProbeSlow,
        TransitionReason::ProbesSucceeded { probes: 2 },
        TransitionReason::ForcedOpen,
        TransitionReason::Disabled,
        TransitionReason::Reset,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        reasons,
        [
            "3 consecutive failures",
            "failure rate 4/5",
            "slow-call rate 2/3",
            "open duration elapsed",
            "half-open probe failed",
            "half-open probe was slow",
            "all 2 half-open probes succeeded",
            "forced open by an operator",
            "disabled by an operator",
            "reset by an operator",
        ]
    );
}

#[test]
fn a_transition_serializes_its_open_period_in_milliseconds() {
    let mut b = CircuitBreaker::new(
        "json",
        BreakerConfig {
            open_duration: Duration::from_millis(1500),
            ..tripping(1, None)
        },
    )
    .unwrap();
    let t0 = Instant::now();
    let p = b.try_acquire(t0).unwrap();
    b.on_failure(p, t0);
    let probe = b.try_acquire(t0 + Duration::from_millis(1500)).unwrap();
    b.on_failure(probe, t0 + Duration::from_millis(1500));
    let json: Vec<serde_json::Value> = b
        .take_transitions()
        .iter()
        .map(|t| serde_json::to_value(t).unwrap())
        .collect();
    assert_eq!(
        json[0],
        serde_json::json!({
            "name": "json",
            "seq": 1,
            "from": "closed",
            "to": "open",
            "reason": {"kind": "consecutive_failures", "count": 1},
            "open_for_ms": 1500.0,
        })
    );
    assert_eq!(json[1]["to"], "half-open");
    assert_eq!(json[1]["open_for_ms"], serde_json::Value::Null);
    assert_eq!(json[2]["open_for_ms"], 1500.0);
}
