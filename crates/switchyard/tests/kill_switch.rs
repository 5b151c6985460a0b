//! Kill switch behaviour: the gate, triggers, resets, lockout, audit, secrets, policy.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use switchyard::kill_switch::*;
use switchyard::{ManualClock, Timestamp};

const SECRET: &str = "s3cr3t-operator-passphrase";

fn switch_with(config: KillSwitchConfig) -> (KillSwitch, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_nanos(1_000));
    let ks = KillSwitch::new(
        config,
        Some(OperatorSecret::new(SECRET).unwrap()),
        Arc::new(clock.clone()),
    )
    .unwrap();
    (ks, clock)
}

fn switch() -> KillSwitch {
    switch_with(KillSwitchConfig::default()).0
}

fn req(scope: Scope, mode: Mode, reason: &str) -> TriggerRequest {
    TriggerRequest::new(scope, mode, reason, "test")
}

fn venue(s: &str) -> Scope {
    Scope::Venue(s.into())
}
fn strategy(s: &str) -> Scope {
    Scope::Strategy(s.into())
}
fn instrument(s: &str) -> Scope {
    Scope::Instrument(s.into())
}

const T: Target<'static> = Target {
    venue: "binance",
    strategy: "mm",
    instrument: "BTCUSDT",
};

#[test]
fn after_trigger_returns_check_is_closed_on_the_same_thread() {
    let ks = switch();
    assert_eq!(ks.check(&T), GateState::Open);
    assert!(!ks.is_engaged());
    let outcome = ks.trigger(req(Scope::All, Mode::Halt, "manual"));
    assert_eq!(outcome, TriggerOutcome::Engaged);
    assert!(ks.is_engaged());
    assert_eq!(ks.check(&T), GateState::Halted);
}

/// 8 threads hammer `check`; whoever has seen `trigger` return must never see `Open`.
#[test]
fn no_thread_sees_open_after_observing_that_trigger_returned() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 200;
    let violations = AtomicUsize::new(0);
    let closed_seen = AtomicUsize::new(0);
    for round in 0..ROUNDS {
        let ks = switch();
        let returned = AtomicBool::new(false);
        let barrier = Barrier::new(THREADS + 1);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    barrier.wait();
                    loop {
                        // Read the flag first: a check that starts after seeing it true
                        // started after `trigger` returned.
                        let after = returned.load(Ordering::Acquire);
                        let gate = ks.check(&T);
                        if after {
                            if gate == GateState::Open {
                                violations.fetch_add(1, Ordering::Relaxed);
                            }
                            closed_seen.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                });
            }
            barrier.wait();
            if round % 2 == 1 {
                std::thread::yield_now();
            }
            ks.trigger(req(Scope::All, Mode::Halt, "race"));
            returned.store(true, Ordering::Release);
        });
    }
    assert_eq!(violations.load(Ordering::Relaxed), 0);
    assert_eq!(closed_seen.load(Ordering::Relaxed), THREADS * ROUNDS);
}

/// While one thread triggers and resets repeatedly, a thread that saw a trigger return
/// (and no reset start since) never sees `Open`.
#[test]
fn checks_during_repeated_trigger_reset_cycles_are_consistent() {
    let ks = switch();
    // 0 = reset (or resetting), odd = trigger returned, even > 0 = resetting.
    let phase = std::sync::atomic::AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let violations = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                while !stop.load(Ordering::Acquire) {
                    let before = phase.load(Ordering::Acquire);
                    let gate = ks.check(&T);
                    let after = phase.load(Ordering::Acquire);
                    if before % 2 == 1 && before == after && gate == GateState::Open {
                        violations.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let now = Instant::now();
        for i in 0..2_000u64 {
            ks.trigger(req(Scope::All, Mode::Halt, "cycle"));
            phase.store(2 * i + 1, Ordering::Release);
            phase.store(2 * i + 2, Ordering::Release);
            ks.reset(None, SECRET, "op", now).unwrap();
        }
        stop.store(true, Ordering::Release);
    });
    assert_eq!(violations.load(Ordering::Relaxed), 0);
}

#[test]
fn scope_coverage_matrix() {
    let targets = [
        T,
        Target {
            venue: "coinbase",
            strategy: "mm",
            instrument: "ETHUSD",
        },
        Target {
            venue: "binance",
            strategy: "arb",
            instrument: "ETHUSD",
        },
        Target {
            venue: "coinbase",
            strategy: "arb",
            instrument: "BTCUSDT",
        },
    ];
    // scope → which of the targets it covers
    let matrix = [
        (Scope::All, [true, true, true, true]),
        (venue("binance"), [true, false, true, false]),
        (strategy("mm"), [true, true, false, false]),
        (instrument("BTCUSDT"), [true, false, false, true]),
        (venue("kraken"), [false, false, false, false]),
        // Names are matched by kind: a strategy named like a venue covers nothing here.
        (strategy("binance"), [false, false, false, false]),
    ];
    for (scope, covered) in matrix {
        for (target, want) in targets.iter().zip(covered) {
            assert_eq!(scope.covers(target), want, "{scope:?} vs {target:?}");
            let ks = switch();
            ks.trigger(req(scope.clone(), Mode::Halt, "matrix"));
            let want_gate = if want {
                GateState::Halted
            } else {
                GateState::Open
            };
            assert_eq!(ks.check(target), want_gate, "{scope:?} vs {target:?}");
            assert!(ks.is_engaged());
        }
    }
}

#[test]
fn the_strictest_mode_of_the_covering_triggers_wins() {
    let ks = switch();
    ks.trigger(req(Scope::All, Mode::ReduceOnly, "all reduce"));
    ks.trigger(req(venue("binance"), Mode::Flatten, "venue flatten"));
    ks.trigger(req(instrument("ETHUSD"), Mode::Halt, "eth halt"));
    let t = |venue, instrument| Target {
        venue,
        strategy: "mm",
        instrument,
    };
    assert_eq!(ks.check(&t("coinbase", "BTCUSDT")), GateState::ReduceOnly);
    assert_eq!(ks.check(&t("binance", "BTCUSDT")), GateState::Flatten);
    assert_eq!(ks.check(&t("binance", "ETHUSD")), GateState::Halted);
    assert_eq!(ks.check(&t("coinbase", "ETHUSD")), GateState::Halted);
    assert!(GateState::Halted > GateState::Flatten);
    assert!(GateState::Flatten > GateState::ReduceOnly);
    assert!(GateState::ReduceOnly > GateState::Open);
    assert!(GateState::Flatten.allows_reducing() && !GateState::Flatten.allows_opening());
    assert!(!GateState::Halted.allows_reducing());
}

#[test]
fn a_repeated_trigger_keeps_the_first_reason_and_is_audited() {
    let ks = switch();
    ks.trigger(req(Scope::All, Mode::Flatten, "first"));
    let again = ks.trigger(req(Scope::All, Mode::ReduceOnly, "second"));
    assert_eq!(
        again,
        TriggerOutcome::AlreadyActive {
            mode: Mode::Flatten,
            first_reason: "first".into()
        }
    );
    let stricter = ks.trigger(req(Scope::All, Mode::Halt, "third"));
    assert_eq!(
        stricter,
        TriggerOutcome::Escalated {
            from: Mode::Flatten,
            to: Mode::Halt,
            first_reason: "first".into()
        }
    );
    let active = ks.active();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].reason, "first");
    assert_eq!(active[0].mode, Mode::Halt);
    let actions: Vec<_> = ks
        .audit()
        .iter()
        .map(|r| (r.action, r.reason.clone()))
        .collect();
    assert_eq!(
        actions,
        vec![
            (AuditAction::Triggered, "first".into()),
            (AuditAction::RepeatTrigger, "second".into()),
            (AuditAction::Escalated, "third".into()),
        ]
    );
    let c = ks.counters();
    assert_eq!((c.triggers, c.repeat_triggers), (1, 2));
}

#[test]
fn identical_repeat_triggers_are_counted_not_audited_or_published() {
    let ks = switch();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    ks.set_listener(Arc::new(move |_: &KillSwitchEvent| {
        c.fetch_add(1, Ordering::Relaxed);
    }));
    let request = req(venue("binance"), Mode::Halt, "stale market data");
    assert_eq!(ks.trigger(request.clone()), TriggerOutcome::Engaged);
    for _ in 0..10_000 {
        assert_eq!(
            ks.trigger(request.clone()),
            TriggerOutcome::AlreadyActive {
                mode: Mode::Halt,
                first_reason: "stale market data".into()
            }
        );
    }
    let c = ks.counters();
    assert_eq!((c.triggers, c.repeat_triggers), (1, 10_000));
    let audit = ks.audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, AuditAction::Triggered);
    assert!(!audit.iter().any(|r| r.action == AuditAction::RepeatTrigger));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(ks.check(&T), GateState::Halted);
}

#[test]
fn a_repeat_with_another_reason_or_a_laxer_mode_is_still_audited() {
    let ks = switch();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    ks.set_listener(Arc::new(move |_: &KillSwitchEvent| {
        c.fetch_add(1, Ordering::Relaxed);
    }));
    ks.trigger(req(Scope::All, Mode::Halt, "loss limit"));
    ks.trigger(req(Scope::All, Mode::Halt, "loss limit"));
    ks.trigger(req(Scope::All, Mode::Halt, "operator"));
    ks.trigger(req(Scope::All, Mode::ReduceOnly, "loss limit"));
    let actions: Vec<_> = ks
        .audit()
        .iter()
        .map(|r| (r.action, r.reason.clone(), r.mode))
        .collect();
    assert_eq!(
        actions,
        vec![
            (
                AuditAction::Triggered,
                "loss limit".into(),
                Some(Mode::Halt)
            ),
            (
                AuditAction::RepeatTrigger,
                "operator".into(),
                Some(Mode::Halt)
            ),
            (
                AuditAction::RepeatTrigger,
                "loss limit".into(),
                Some(Mode::ReduceOnly)
            ),
        ]
    );
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    let c = ks.counters();
    assert_eq!((c.triggers, c.repeat_triggers), (1, 3));
}

#[test]
fn reset_clears_one_scope_or_all() {
    let ks = switch();
    let now = Instant::now();
    ks.trigger(req(venue("binance"), Mode::Halt, "a"));
    ks.trigger(req(strategy("mm"), Mode::ReduceOnly, "b"));
    let out = ks
        .reset(Some(venue("binance")), SECRET, "alice", now)
        .unwrap();
    assert_eq!(out.cleared.len(), 1);
    assert_eq!(out.cleared[0].scope, venue("binance"));
    assert_eq!(out.still_active.len(), 1);
    assert_eq!(ks.check(&T), GateState::ReduceOnly);
    assert!(ks.is_engaged());
    // Resetting a scope that is not active clears nothing, and is still audited.
    let out = ks
        .reset(Some(venue("kraken")), SECRET, "alice", now)
        .unwrap();
    assert!(out.cleared.is_empty());
    let out = ks.reset(None, SECRET, "alice", now).unwrap();
    assert_eq!(out.cleared.len(), 1);
    assert!(!ks.is_engaged());
    assert_eq!(ks.check(&T), GateState::Open);
    assert_eq!(ks.counters().resets, 3);
    // After a reset, the same scope can be triggered afresh.
    assert_eq!(
        ks.trigger(req(venue("binance"), Mode::Halt, "again")),
        TriggerOutcome::Engaged
    );
}

#[test]
fn without_a_configured_secret_reset_is_always_refused() {
    let ks = KillSwitch::new(
        KillSwitchConfig::default(),
        None,
        Arc::new(ManualClock::default()),
    )
    .unwrap();
    ks.trigger(req(Scope::All, Mode::Halt, "x"));
    for presented in ["", SECRET, "anything"] {
        let err = ks
            .reset(None, presented, "bob", Instant::now())
            .unwrap_err();
        assert_eq!(err, ResetError::NoSecretConfigured);
        assert!(err.to_string().contains("no operator secret is configured"));
    }
    assert!(ks.is_engaged());
    let last = ks.audit().pop().unwrap();
    assert_eq!(
        last.action,
        AuditAction::ResetRefused {
            reason: RefusalReason::NoSecretConfigured
        }
    );
    assert_eq!(ks.counters().refused_resets, 3);
    assert!(!ks.status().secret_configured);
}

#[test]
fn wrong_secrets_lock_out_with_a_doubling_backoff() {
    let (ks, _) = switch_with(KillSwitchConfig {
        max_reset_failures: 3,
        lockout: Duration::from_secs(1),
        max_lockout: Duration::from_secs(4),
        ..Default::default()
    });
    ks.trigger(req(Scope::All, Mode::Halt, "x"));
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let wrong = |ms| ks.reset(None, "wrong", "mallory", at(ms)).unwrap_err();
    assert_eq!(
        wrong(0),
        ResetError::WrongSecret {
            consecutive_failures: 1,
            locked_out_for: None
        }
    );
    wrong(0);
    assert_eq!(
        wrong(0),
        ResetError::WrongSecret {
            consecutive_failures: 3,
            locked_out_for: Some(Duration::from_secs(1))
        }
    );
    // Locked out: even the right secret is refused, and does not extend the lockout.
    let err = ks.reset(None, SECRET, "alice", at(400)).unwrap_err();
    assert_eq!(
        err,
        ResetError::LockedOut {
            retry_after: Duration::from_millis(600)
        }
    );
    assert!(err.to_string().contains("retry after 600ms"), "{err}");
    assert!(ks.is_engaged());
    // Each wrong secret after a lockout ends locks out twice as long, up to the max.
    let mut t = 1_000;
    for want in [2u64, 4, 4] {
        assert_eq!(
            wrong(t),
            ResetError::WrongSecret {
                consecutive_failures: ks.status().consecutive_reset_failures,
                locked_out_for: Some(Duration::from_secs(want))
            }
        );
        assert!(matches!(
            wrong(t + want * 1000 - 1),
            ResetError::LockedOut { .. }
        ));
        t += want * 1000;
    }
    // The right secret after the lockout resets and clears the count.
    ks.reset(None, SECRET, "alice", at(t)).unwrap();
    assert!(!ks.is_engaged());
    assert_eq!(ks.status().consecutive_reset_failures, 0);
    assert!(matches!(
        wrong(t),
        ResetError::WrongSecret {
            consecutive_failures: 1,
            locked_out_for: None
        }
    ));
    let refusals: Vec<RefusalReason> = ks
        .audit()
        .iter()
        .filter_map(|r| match r.action {
            AuditAction::ResetRefused { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        refusals
            .iter()
            .filter(|r| **r == RefusalReason::LockedOut)
            .count(),
        4
    );
    assert_eq!(
        refusals
            .iter()
            .filter(|r| **r == RefusalReason::WrongSecret)
            .count(),
        7
    );
}

proptest! {
    #[test]
    fn a_wrong_secret_never_resets(presented in ".{0,40}", prefix in any::<bool>()) {
        // Include near misses: the secret's prefixes and extensions.
        let presented = if prefix { format!("{SECRET}{presented}") } else { presented };
        prop_assume!(presented != SECRET);
        let ks = switch();
        ks.trigger(req(Scope::All, Mode::Halt, "x"));
        let err = ks.reset(None, &presented, "fuzz", Instant::now()).unwrap_err();
        let is_wrong_secret = matches!(err, ResetError::WrongSecret { .. });
        prop_assert!(is_wrong_secret);
        prop_assert!(ks.is_engaged());
        prop_assert_eq!(ks.check(&T), GateState::Halted);
    }

    #[test]
    fn secret_prefixes_and_truncations_are_wrong(cut in 0usize..SECRET.len()) {
        let ks = switch();
        ks.trigger(req(Scope::All, Mode::Halt, "x"));
        prop_assert!(ks.reset(None, &SECRET[..cut], "fuzz", Instant::now()).is_err());
        prop_assert!(ks.is_engaged());
    }
}

#[test]
fn audit_records_every_action_with_clock_time_and_is_bounded() {
    let (ks, clock) = switch_with(KillSwitchConfig {
        audit_capacity: 4,
        ..Default::default()
    });
    let now = Instant::now();
    clock.set(Timestamp::from_nanos(10));
    ks.trigger(TriggerRequest::new(
        venue("binance"),
        Mode::Flatten,
        "loss",
        "risk-guard",
    ));
    clock.set(Timestamp::from_nanos(20));
    ks.trigger(TriggerRequest::new(
        venue("binance"),
        Mode::Flatten,
        "again",
        "ops",
    ));
    clock.set(Timestamp::from_nanos(30));
    ks.reset(Some(venue("binance")), "nope", "eve", now)
        .unwrap_err();
    clock.set(Timestamp::from_nanos(40));
    ks.reset(Some(venue("binance")), SECRET, "alice", now)
        .unwrap();
    let audit = ks.audit();
    assert_eq!(audit.len(), 4);
    let first = &audit[0];
    assert_eq!(
        first,
        &AuditRecord {
            seq: 1,
            at: Timestamp::from_nanos(10),
            action: AuditAction::Triggered,
            scope: Some(venue("binance")),
            mode: Some(Mode::Flatten),
            reason: "loss".into(),
            source_or_who: "risk-guard".into(),
        }
    );
    assert_eq!(ks.active().len(), 0);
    assert_eq!(
        (
            audit[1].action,
            audit[1].at,
            audit[1].source_or_who.as_str()
        ),
        (AuditAction::RepeatTrigger, Timestamp::from_nanos(20), "ops")
    );
    assert_eq!(
        audit[2].action,
        AuditAction::ResetRefused {
            reason: RefusalReason::WrongSecret
        }
    );
    assert_eq!(audit[2].source_or_who, "eve");
    assert_eq!((audit[3].action, audit[3].mode), (AuditAction::Reset, None));
    assert!(audit[3].reason.contains("binance"));
    // The ring keeps the last 4, with gapless sequence numbers.
    ks.trigger(req(Scope::All, Mode::Halt, "fifth"));
    let seqs: Vec<u64> = ks.audit().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![2, 3, 4, 5]);
}

#[test]
fn the_listener_gets_every_record_with_the_new_active_set() {
    let ks = switch();
    let events = Arc::new(Mutex::new(Vec::<KillSwitchEvent>::new()));
    let sink = events.clone();
    ks.set_listener(Arc::new(move |e: &KillSwitchEvent| {
        sink.lock().unwrap().push(e.clone())
    }));
    ks.trigger(req(venue("a"), Mode::Halt, "1"));
    ks.trigger(req(venue("b"), Mode::Halt, "2"));
    ks.reset(None, "bad", "x", Instant::now()).unwrap_err();
    ks.reset(Some(venue("a")), SECRET, "x", Instant::now())
        .unwrap();
    let events = events.lock().unwrap();
    let summary: Vec<(u64, usize)> = events
        .iter()
        .map(|e| (e.record.seq, e.active.len()))
        .collect();
    assert_eq!(summary, vec![(1, 1), (2, 2), (3, 2), (4, 1)]);
    assert_eq!(events[3].active[0].scope, venue("b"));
    assert_eq!(
        events.iter().map(|e| e.record.clone()).collect::<Vec<_>>(),
        ks.audit()
    );
}

#[test]
fn status_reports_active_triggers_and_counters() {
    let (ks, clock) = switch_with(KillSwitchConfig::default());
    clock.set(Timestamp::from_nanos(77));
    ks.trigger(TriggerRequest::new(
        strategy("mm"),
        Mode::ReduceOnly,
        "why",
        "who",
    ));
    ks.trigger(TriggerRequest::new(
        strategy("mm"),
        Mode::ReduceOnly,
        "later",
        "other",
    ));
    ks.reset(None, "bad", "x", Instant::now()).unwrap_err();
    let s = ks.status();
    assert!(s.engaged && s.secret_configured);
    assert_eq!(
        s.active,
        vec![ActiveTrigger {
            scope: strategy("mm"),
            mode: Mode::ReduceOnly,
            reason: "why".into(),
            source: "who".into(),
            since: Timestamp::from_nanos(77),
        }]
    );
    assert_eq!(
        s.counters,
        KillSwitchCounters {
            triggers: 1,
            repeat_triggers: 1,
            resets: 0,
            refused_resets: 1
        }
    );
    assert_eq!(s.consecutive_reset_failures, 1);
}

#[test]
fn the_secret_never_appears_in_formatted_output() {
    let secret = OperatorSecret::new(SECRET).unwrap();
    assert_eq!(format!("{secret}"), "[redacted]");
    assert!(!format!("{secret:?}").contains(SECRET));
    let (ks, _) = switch_with(KillSwitchConfig {
        max_reset_failures: 1,
        ..Default::default()
    });
    ks.trigger(req(Scope::All, Mode::Halt, "x"));
    let now = Instant::now();
    let mut texts = vec![format!("{ks:?}")];
    // Near misses, then a lockout, then the right secret during the lockout.
    for presented in [&SECRET[..5], "wrong", SECRET] {
        let err = ks.reset(None, presented, "op", now).unwrap_err();
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    ks.reset(None, SECRET, "op", now + Duration::from_secs(3600))
        .unwrap();
    texts.push(format!("{:?}", ks.audit()));
    texts.push(format!("{:?}", ks.status()));
    for text in &texts {
        assert!(!text.contains(SECRET), "secret leaked into: {text}");
    }
}

fn temp_file(name: &str, content: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("switchyard-ks-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn secrets_load_from_files_and_the_environment() {
    let path = temp_file("ok", format!("{SECRET}\n").as_bytes());
    let s = OperatorSecret::from_file(&path).unwrap();
    assert!(s.matches(SECRET));
    assert!(!format!("{s:?}").contains(SECRET));
    std::fs::remove_file(&path).unwrap();

    let empty = temp_file("empty", b"\r\n");
    let err = OperatorSecret::from_file(&empty).unwrap_err();
    assert!(matches!(err, SecretError::Empty { .. }));
    assert!(err.to_string().contains(&*empty.to_string_lossy()));
    std::fs::remove_file(&empty).unwrap();

    let missing = std::env::temp_dir().join("switchyard-ks-surely-missing-secret");
    let err = OperatorSecret::from_file(&missing).unwrap_err();
    assert!(matches!(err, SecretError::Read { .. }));
    assert!(err.to_string().contains("surely-missing-secret"), "{err}");

    let err = OperatorSecret::from_env("SWITCHYARD_TEST_SURELY_UNSET_SECRET_VAR").unwrap_err();
    assert!(matches!(err, SecretError::MissingEnv { .. }));
    assert!(
        err.to_string()
            .contains("SWITCHYARD_TEST_SURELY_UNSET_SECRET_VAR")
    );
    // Any set variable will do to check that reading works.
    if let Ok(path_var) = std::env::var("PATH")
        && !path_var.trim_end_matches(['\n', '\r']).is_empty()
    {
        let s = OperatorSecret::from_env("PATH").unwrap();
        assert!(s.matches(path_var.trim_end_matches(['\n', '\r'])));
    }
}

#[test]
fn config_rejects_bad_values_and_unknown_fields() {
    use serde::Deserialize;
    use serde::de::value::{Error as ValueError, MapDeserializer};
    let err = KillSwitchConfig {
        max_reset_failures: 0,
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(err.to_string().contains("max_reset_failures"));
    let map = MapDeserializer::<_, ValueError>::new(vec![("secret", ())].into_iter());
    assert!(KillSwitchConfig::deserialize(map).is_err());
    let map = MapDeserializer::<_, ValueError>::new(vec![("lockout", "2s")].into_iter());
    assert_eq!(
        KillSwitchConfig::deserialize(map).unwrap().lockout,
        Duration::from_secs(2)
    );
    let map = MapDeserializer::<_, ValueError>::new(vec![("kill_everything", ())].into_iter());
    assert!(KillPolicyConfig::deserialize(map).is_err());
}

#[test]
fn config_validation_accepts_the_bounds_and_rejects_just_past_them() {
    let with = |f: fn(&mut KillSwitchConfig)| {
        let mut c = KillSwitchConfig::default();
        f(&mut c);
        c.validate()
    };
    let field = |r: Result<(), KillSwitchConfigError>| match r.unwrap_err() {
        KillSwitchConfigError::Invalid { field, .. } => field,
    };
    assert_eq!(with(|c| c.audit_capacity = 1), Ok(()));
    assert_eq!(with(|c| c.audit_capacity = MAX_AUDIT_CAPACITY), Ok(()));
    assert_eq!(
        field(with(|c| c.audit_capacity = MAX_AUDIT_CAPACITY + 1)),
        "audit_capacity"
    );
    assert_eq!(with(|c| c.max_reset_failures = 1), Ok(()));
    assert_eq!(field(with(|c| c.lockout = Duration::ZERO)), "lockout");
    // The longest lockout may equal the first one (no doubling), not be shorter.
    assert_eq!(with(|c| c.max_lockout = c.lockout), Ok(()));
    assert_eq!(
        field(with(|c| c.max_lockout = c.lockout - Duration::from_nanos(1))),
        "max_lockout"
    );
}

#[test]
fn now_and_every_audit_record_read_the_switchs_clock() {
    let (ks, clock) = switch_with(KillSwitchConfig {
        max_reset_failures: 1,
        ..Default::default()
    });
    assert_eq!(ks.now(), Timestamp::from_nanos(1_000));
    clock.set(Timestamp::from_nanos(5_000));
    assert_eq!(ks.now(), Timestamp::from_nanos(5_000));
    ks.trigger(req(Scope::All, Mode::Halt, "x"));
    clock.advance(Duration::from_nanos(1));
    let t0 = Instant::now();
    ks.reset(None, "wrong", "eve", t0).unwrap_err();
    clock.advance(Duration::from_nanos(1));
    ks.reset(None, SECRET, "alice", t0 + Duration::from_secs(3600))
        .unwrap();
    let at: Vec<Timestamp> = ks.audit().iter().map(|r| r.at).collect();
    assert_eq!(
        at,
        vec![
            Timestamp::from_nanos(5_000),
            Timestamp::from_nanos(5_001),
            Timestamp::from_nanos(5_002)
        ]
    );
    assert_eq!(ks.now(), Timestamp::from_nanos(5_002));
}

#[test]
fn a_wrong_secret_error_says_when_it_starts_a_lockout() {
    let plain = ResetError::WrongSecret {
        consecutive_failures: 1,
        locked_out_for: None,
    };
    assert_eq!(
        plain.to_string(),
        "kill switch reset refused: wrong operator secret (1 consecutive failures)"
    );
    let locking = ResetError::WrongSecret {
        consecutive_failures: 3,
        locked_out_for: Some(Duration::from_secs(2)),
    };
    assert_eq!(
        locking.to_string(),
        "kill switch reset refused: wrong operator secret (3 consecutive failures; resets \
         locked out for 2s)"
    );
}

#[test]
fn debug_output_shows_whether_it_is_engaged_and_the_active_triggers() {
    let ks = switch();
    let idle = format!("{ks:?}");
    assert!(idle.starts_with("KillSwitch {"), "{idle}");
    assert!(idle.contains("engaged: false"), "{idle}");
    ks.trigger(req(venue("binance"), Mode::Halt, "maintenance"));
    let engaged = format!("{ks:?}");
    assert!(engaged.contains("engaged: true"), "{engaged}");
    assert!(engaged.contains("maintenance"), "{engaged}");
}

#[test]
fn handles_are_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<KillSwitch>();
    fn send_sync<T: Send + Sync>() {}
    send_sync::<OperatorSecret>();
}

// ---- policy ----

fn rule_scope() -> (Scope, Mode) {
    (Scope::All, Mode::Halt)
}

#[test]
fn loss_limit_fires_once_per_rule_until_rearmed() {
    let t0 = Instant::now();
    let mut p = KillPolicy::new(
        KillPolicyConfig {
            loss_limits: vec![
                LossLimitRule {
                    watch: strategy("mm"),
                    max_loss: 1_000,
                    scope: None,
                    mode: Mode::Flatten,
                },
                LossLimitRule {
                    watch: Scope::All,
                    max_loss: 5_000,
                    scope: Some(Scope::All),
                    mode: Mode::Halt,
                },
            ],
            ..Default::default()
        },
        t0,
    )
    .unwrap();
    assert!(p.observe_pnl(&strategy("mm"), -999).is_empty());
    assert!(p.observe_pnl(&strategy("other"), -1_000_000).is_empty());
    let fired = p.observe_pnl(&strategy("mm"), -1_000);
    assert_eq!(fired.len(), 1);
    assert_eq!(
        (fired[0].scope.clone(), fired[0].mode),
        (strategy("mm"), Mode::Flatten)
    );
    assert!(fired[0].reason.contains("-1000"), "{}", fired[0].reason);
    assert!(
        p.observe_pnl(&strategy("mm"), -2_000).is_empty(),
        "fires once"
    );
    let all = p.observe_pnl(&Scope::All, -5_001);
    assert_eq!(
        (all[0].scope.clone(), all[0].mode),
        (Scope::All, Mode::Halt)
    );
    p.rearm();
    assert_eq!(p.observe_pnl(&strategy("mm"), -2_000).len(), 1);
    assert!(p.observe_pnl(&strategy("mm"), 500).is_empty());
}

#[test]
fn rejection_and_error_rates_use_a_sliding_window() {
    let t0 = Instant::now();
    let (scope, mode) = rule_scope();
    let rule = RateRule {
        max_events: 3,
        window: Duration::from_secs(10),
        scope,
        mode,
    };
    let mut p = KillPolicy::new(
        KillPolicyConfig {
            rejection_rate: Some(rule.clone()),
            error_rate: Some(rule),
            ..Default::default()
        },
        t0,
    )
    .unwrap();
    let s = |secs: u64| t0 + Duration::from_secs(secs);
    // 3 per 10 s is tolerated, spread out forever.
    for i in 0..10 {
        assert!(p.observe_rejection(s(i * 4)).is_none(), "at {}", i * 4);
    }
    // 4 within 10 s fires.
    for i in 0..3 {
        assert!(p.observe_rejection(s(100 + i)).is_none());
    }
    let fired = p.observe_rejection(s(109)).unwrap();
    assert_eq!(fired.source, "kill-policy/rejection-rate");
    assert!(p.observe_rejection(s(109)).is_none(), "fires once");
    // The error rule is independent.
    for _ in 0..3 {
        assert!(p.observe_error(s(0)).is_none());
    }
    assert!(p.observe_error(s(9)).is_some());
    p.rearm();
    assert!(
        p.observe_error(s(9)).is_some(),
        "still above the rate after rearm"
    );
}

#[test]
fn a_breaker_open_too_long_fires() {
    let t0 = Instant::now();
    let s = |secs: u64| t0 + Duration::from_secs(secs);
    let mut p = KillPolicy::new(
        KillPolicyConfig {
            breaker_open: Some(BreakerOpenRule {
                max_open: Duration::from_secs(60),
                breakers: vec!["exchange".into()],
                scope: venue("binance"),
                mode: Mode::Halt,
            }),
            ..Default::default()
        },
        t0,
    )
    .unwrap();
    p.observe_breaker("exchange", Some(s(0)));
    p.observe_breaker("unwatched", Some(s(0)));
    assert!(p.evaluate(s(59)).is_empty());
    // Closed again in time: nothing fires.
    p.observe_breaker("exchange", None);
    assert!(p.evaluate(s(120)).is_empty());
    p.observe_breaker("exchange", Some(s(100)));
    let fired = p.evaluate(s(160));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].scope, venue("binance"));
    assert!(fired[0].reason.contains("exchange"));
    assert!(p.evaluate(s(500)).is_empty(), "fires once");
    p.rearm();
    assert_eq!(p.evaluate(s(500)).len(), 1);
}

#[test]
fn stale_market_data_fires_per_instrument() {
    let t0 = Instant::now();
    let s = |secs: u64| t0 + Duration::from_secs(secs);
    let mut p = KillPolicy::new(
        KillPolicyConfig {
            stale_market_data: Some(StaleDataRule {
                max_silence: Duration::from_secs(5),
                instruments: vec!["BTCUSDT".into(), "ETHUSD".into()],
                scope: None,
                mode: Mode::ReduceOnly,
            }),
            ..Default::default()
        },
        t0,
    )
    .unwrap();
    p.observe_market_data("BTCUSDT", s(3));
    p.observe_market_data("DOGE", s(3)); // unwatched: ignored
    assert!(p.evaluate(s(4)).is_empty());
    // ETHUSD never sent anything: stale 5 s after the start.
    let fired = p.evaluate(s(5));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].scope, instrument("ETHUSD"));
    assert_eq!(fired[0].mode, Mode::ReduceOnly);
    let fired = p.evaluate(s(8));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].scope, instrument("BTCUSDT"));
    assert!(p.evaluate(s(100)).is_empty(), "each fires once");
    p.observe_market_data("BTCUSDT", s(100));
    p.rearm();
    let fired = p.evaluate(s(101));
    assert_eq!(fired.len(), 1, "only ETHUSD is still stale");
    assert_eq!(fired[0].scope, instrument("ETHUSD"));
}

#[test]
fn an_escalated_component_fires() {
    let mut p = KillPolicy::new(
        KillPolicyConfig {
            escalation: Some(EscalationRule {
                components: vec!["execution".into()],
                scope: Scope::All,
                mode: Mode::Halt,
            }),
            ..Default::default()
        },
        Instant::now(),
    )
    .unwrap();
    assert!(p.on_escalation("feed").is_none());
    let fired = p.on_escalation("execution").unwrap();
    assert!(fired.reason.contains("execution"));
    assert!(p.on_escalation("execution").is_none());
}

#[test]
fn policy_config_validation_names_the_field() {
    let bad = KillPolicyConfig {
        loss_limits: vec![LossLimitRule {
            watch: Scope::All,
            max_loss: 0,
            scope: None,
            mode: Mode::Halt,
        }],
        ..Default::default()
    };
    let err = KillPolicy::new(bad, Instant::now()).unwrap_err();
    assert!(err.to_string().contains("loss_limits[0].max_loss"), "{err}");
    let bad = KillPolicyConfig {
        stale_market_data: Some(StaleDataRule {
            max_silence: Duration::from_secs(1),
            instruments: vec![],
            scope: None,
            mode: Mode::Halt,
        }),
        ..Default::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("stale_market_data.instruments")
    );
}

#[test]
fn policy_triggers_feed_the_kill_switch() {
    let ks = switch();
    let mut p = KillPolicy::new(
        KillPolicyConfig {
            loss_limits: vec![LossLimitRule {
                watch: strategy("mm"),
                max_loss: 100,
                scope: None,
                mode: Mode::Flatten,
            }],
            ..Default::default()
        },
        Instant::now(),
    )
    .unwrap();
    for request in p.observe_pnl(&strategy("mm"), -150) {
        ks.trigger(request);
    }
    assert_eq!(ks.check(&T), GateState::Flatten);
    assert_eq!(ks.audit()[0].source_or_who, "kill-policy/loss-limit");
}

#[test]
fn configured_rules_names_each_rule_set_once_in_field_order() {
    assert!(KillPolicyConfig::default().configured_rules().is_empty());
    let rule = LossLimitRule {
        watch: Scope::All,
        max_loss: 1,
        scope: None,
        mode: Mode::Halt,
    };
    let cfg = KillPolicyConfig {
        loss_limits: vec![rule.clone(), rule],
        escalation: Some(EscalationRule {
            components: vec![],
            scope: Scope::All,
            mode: Mode::Halt,
        }),
        ..Default::default()
    };
    assert_eq!(cfg.configured_rules(), vec!["loss_limits", "escalation"]);
}
