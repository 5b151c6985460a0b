//! Integration tests of components, the registry and graceful shutdown, one section per
//! point of the lifecycle contract. Everything that involves time runs on paused time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::bus::handler_fn;
use switchyard::control::ControlEvent;
use switchyard::kill_switch::{KillSwitch, KillSwitchConfig, Mode, Scope};
use switchyard::lifecycle::*;
use switchyard::{Bus, Envelope, ManualClock, Topic};
use tokio::sync::{Barrier, Notify, mpsc};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Shared, ordered record of what the components did.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[derive(Clone)]
enum Behave {
    Ok,
    Fail(&'static str),
    Panic,
    Hang,
    Sleep(Duration),
    Barrier(Arc<Barrier>),
}

impl Behave {
    async fn run(&self) -> Result<(), ComponentError> {
        match self {
            Behave::Ok => Ok(()),
            Behave::Fail(m) => Err(ComponentError::msg(m)),
            Behave::Panic => panic!("boom in component"),
            Behave::Hang => std::future::pending().await,
            Behave::Sleep(d) => {
                tokio::time::sleep(*d).await;
                Ok(())
            }
            Behave::Barrier(b) => {
                b.wait().await;
                Ok(())
            }
        }
    }
}

type Hook = Arc<dyn Fn(&ComponentContext) + Send + Sync>;

/// A configurable component.
struct Comp {
    name: String,
    deps: Vec<String>,
    kind: ComponentKind,
    policy: RestartPolicy,
    log: Log,
    on_start: Behave,
    on_stop: Behave,
    start_hook: Option<Hook>,
    stop_hook: Option<Hook>,
    /// `Some`: `stop_intake` is overridden (logs `intake:<name>`, runs the hook, behaves).
    on_intake: Option<Behave>,
    intake_hook: Option<Hook>,
    stop_deadline: Option<Duration>,
    health: Arc<Mutex<Health>>,
}

impl Comp {
    fn new(name: &str, log: &Log) -> Self {
        Comp {
            name: name.into(),
            deps: Vec::new(),
            kind: ComponentKind::Service,
            policy: RestartPolicy::default(),
            log: log.clone(),
            on_start: Behave::Ok,
            on_stop: Behave::Ok,
            start_hook: None,
            stop_hook: None,
            on_intake: None,
            intake_hook: None,
            stop_deadline: None,
            health: Arc::new(Mutex::new(Health::Healthy)),
        }
    }
    fn observer(mut self) -> Self {
        self.kind = ComponentKind::Observer;
        self
    }
    fn intake(mut self, b: Behave) -> Self {
        self.on_intake = Some(b);
        self
    }
    fn on_intake(mut self, f: impl Fn(&ComponentContext) + Send + Sync + 'static) -> Self {
        self.on_intake.get_or_insert(Behave::Ok);
        self.intake_hook = Some(Arc::new(f));
        self
    }
    fn own_stop_deadline(mut self, d: Duration) -> Self {
        self.stop_deadline = Some(d);
        self
    }
    fn health_cell(mut self, h: &Arc<Mutex<Health>>) -> Self {
        self.health = h.clone();
        self
    }
    fn deps(mut self, deps: &[&str]) -> Self {
        self.deps = deps.iter().map(|d| d.to_string()).collect();
        self
    }
    fn producer(mut self) -> Self {
        self.kind = ComponentKind::Producer;
        self
    }
    fn policy(mut self, p: RestartPolicy) -> Self {
        self.policy = p;
        self
    }
    fn starting(mut self, b: Behave) -> Self {
        self.on_start = b;
        self
    }
    fn stopping(mut self, b: Behave) -> Self {
        self.on_stop = b;
        self
    }
    fn on_start(mut self, f: impl Fn(&ComponentContext) + Send + Sync + 'static) -> Self {
        self.start_hook = Some(Arc::new(f));
        self
    }
    fn on_stop(mut self, f: impl Fn(&ComponentContext) + Send + Sync + 'static) -> Self {
        self.stop_hook = Some(Arc::new(f));
        self
    }
}

impl Component for Comp {
    fn name(&self) -> &str {
        &self.name
    }
    fn dependencies(&self) -> Vec<String> {
        self.deps.clone()
    }
    fn kind(&self) -> ComponentKind {
        self.kind
    }
    fn restart_policy(&self) -> RestartPolicy {
        self.policy.clone()
    }
    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            self.log.push(format!("start:{}", self.name));
            if let Some(h) = &self.start_hook {
                h(ctx);
            }
            self.on_start.run().await
        })
    }
    fn stop<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            self.log.push(format!("stop:{}", self.name));
            if let Some(h) = &self.stop_hook {
                h(ctx);
            }
            self.on_stop.run().await
        })
    }
    fn stop_intake<'a>(
        &'a self,
        ctx: &'a ComponentContext,
    ) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let Some(b) = &self.on_intake else {
                return Ok(());
            };
            self.log.push(format!("intake:{}", self.name));
            if let Some(h) = &self.intake_hook {
                h(ctx);
            }
            b.run().await
        })
    }
    fn stop_deadline(&self) -> Option<Duration> {
        self.stop_deadline
    }
    fn health(&self) -> Health {
        self.health.lock().unwrap().clone()
    }
}

fn registry_with(comps: Vec<Comp>) -> (Registry, Bus) {
    let bus = Bus::with_clock(Arc::new(ManualClock::default()));
    let mut r = Registry::new(bus.clone());
    for c in comps {
        r.register(Arc::new(c)).unwrap();
    }
    (r, bus)
}

async fn wait_state(r: &Registry, name: &str, state: LifecycleState) {
    let mut w = r.watch(name).expect("registered");
    w.wait_for(|s| *s == state).await.unwrap();
}

// 1. Order -----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn starts_in_dependency_order_and_stops_in_reverse() {
    let log = Log::default();
    // Registered in the wrong order on purpose: c needs b, b needs a.
    let (r, _bus) = registry_with(vec![
        Comp::new("c", &log).deps(&["b"]),
        Comp::new("b", &log).deps(&["a"]),
        Comp::new("a", &log),
    ]);
    r.start_all(ms(100)).await.unwrap();
    assert_eq!(log.take(), ["start:a", "start:b", "start:c"]);
    assert!(
        r.states()
            .iter()
            .all(|(_, s)| *s == LifecycleState::Running)
    );

    let report = r.stop_all(ms(100)).await;
    assert_eq!(log.take(), ["stop:c", "stop:b", "stop:a"]);
    assert!(report.is_clean(), "{report:?}");
    let names: Vec<_> = report.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["c", "b", "a"]);
    assert!(
        r.states()
            .iter()
            .all(|(_, s)| *s == LifecycleState::Stopped)
    );
    // Stopping again stops nothing.
    assert!(r.stop_all(ms(100)).await.components.is_empty());
}

#[tokio::test(start_paused = true)]
async fn independent_components_start_concurrently() {
    let log = Log::default();
    // a and b wait for each other: sequential starts would miss the deadline.
    let barrier = Arc::new(Barrier::new(2));
    let (r, _bus) = registry_with(vec![
        Comp::new("a", &log).starting(Behave::Barrier(barrier.clone())),
        Comp::new("b", &log).starting(Behave::Barrier(barrier)),
        Comp::new("x", &log).starting(Behave::Sleep(ms(100))),
        Comp::new("y", &log).starting(Behave::Sleep(ms(100))),
        Comp::new("z", &log)
            .deps(&["x", "y", "a"])
            .starting(Behave::Sleep(ms(100))),
    ]);
    let t0 = Instant::now();
    r.start_all(Duration::from_secs(1)).await.unwrap();
    // x and y together (100 ms), then z (100 ms).
    assert_eq!(t0.elapsed(), ms(200));
    assert_eq!(log.take().last().unwrap(), "start:z");
}

// 2. Registration errors -----------------------------------------------------------------

#[tokio::test]
async fn registration_errors_name_the_components() {
    let log = Log::default();
    let (mut r, _bus) = registry_with(vec![Comp::new("feed", &log)]);
    let dup = r.register(Arc::new(Comp::new("feed", &log))).unwrap_err();
    assert_eq!(dup, RegistryError::Duplicate("feed".into()));
    assert!(dup.to_string().contains("`feed`"), "{dup}");

    let own = r
        .register(Arc::new(Comp::new("selfish", &log).deps(&["selfish"])))
        .unwrap_err();
    assert!(matches!(own, RegistryError::Cycle(_)), "{own}");

    r.register(Arc::new(Comp::new("strategy", &log).deps(&["ghost"])))
        .unwrap();
    let unknown = r.validate().unwrap_err();
    let msg = unknown.to_string();
    assert!(msg.contains("strategy") && msg.contains("ghost"), "{msg}");
    // start_all refuses before starting anything.
    let err = r.start_all(ms(100)).await.unwrap_err();
    assert!(matches!(
        err,
        StartError::Invalid(RegistryError::UnknownDependency { .. })
    ));
    assert!(log.take().is_empty());
    assert_eq!(r.state("feed"), Some(LifecycleState::Registered));

    let (r, _bus) = registry_with(vec![
        Comp::new("x", &log).deps(&["y"]),
        Comp::new("y", &log).deps(&["z"]),
        Comp::new("z", &log).deps(&["x"]),
        Comp::new("ok", &log),
    ]);
    let cycle = r.validate().unwrap_err();
    let RegistryError::Cycle(path) = &cycle else {
        panic!("{cycle}")
    };
    assert_eq!(path.len(), 4);
    assert_eq!(path.first(), path.last());
    let msg = cycle.to_string();
    for n in ["x", "y", "z"] {
        assert!(msg.contains(n), "{msg}");
    }
    assert!(
        msg.contains("x -> y -> z -> x")
            || msg.contains("y -> z -> x -> y")
            || msg.contains("z -> x -> y -> z"),
        "{msg}"
    );
    assert!(!msg.contains("ok"), "{msg}");
}

// 3. Start failures and rollback ---------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn start_deadline_fails_the_start_and_rolls_back() {
    let log = Log::default();
    let (r, _bus) = registry_with(vec![
        Comp::new("db", &log),
        Comp::new("slow", &log).deps(&["db"]).starting(Behave::Hang),
        Comp::new("after", &log).deps(&["slow"]),
    ]);
    let t0 = Instant::now();
    let err = r.start_all(Duration::from_secs(2)).await.unwrap_err();
    assert_eq!(t0.elapsed(), Duration::from_secs(2));
    assert!(
        matches!(&err, StartError::Timeout { component, .. } if component == "slow"),
        "{err}"
    );
    assert!(err.to_string().contains("slow"), "{err}");
    assert_eq!(log.take(), ["start:db", "start:slow", "stop:db"]);
    assert_eq!(r.state("slow"), Some(LifecycleState::Failed));
    assert_eq!(r.state("db"), Some(LifecycleState::Stopped));
    assert_eq!(r.state("after"), Some(LifecycleState::Registered));
}

#[tokio::test(start_paused = true)]
async fn failed_start_rolls_back_the_started_ones_in_reverse() {
    let log = Log::default();
    let (r, _bus) = registry_with(vec![
        Comp::new("a", &log),
        Comp::new("b", &log).deps(&["a"]),
        Comp::new("c", &log).deps(&["b"]),
        Comp::new("d", &log)
            .deps(&["c"])
            .starting(Behave::Fail("no route to exchange")),
    ]);
    let err = r.start_all(ms(500)).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`d`") && msg.contains("no route to exchange"),
        "{msg}"
    );
    assert_eq!(err.component(), Some("d"));
    let source = std::error::Error::source(&err).expect("cause kept");
    assert_eq!(source.to_string(), "no route to exchange");
    assert_eq!(
        log.take(),
        [
            "start:a", "start:b", "start:c", "start:d", "stop:c", "stop:b", "stop:a"
        ]
    );
    assert_eq!(r.state("d"), Some(LifecycleState::Failed));
    for n in ["a", "b", "c"] {
        assert_eq!(r.state(n), Some(LifecycleState::Stopped), "{n}");
    }
    // A registry starts once.
    assert!(matches!(
        r.start_all(ms(500)).await,
        Err(StartError::AlreadyStarted)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_start_is_a_failed_start() {
    let log = Log::default();
    let (r, _bus) = registry_with(vec![
        Comp::new("ok", &log),
        Comp::new("bad", &log).starting(Behave::Panic),
    ]);
    let err = r.start_all(ms(500)).await.unwrap_err();
    assert!(
        matches!(&err, StartError::Panicked { component, message } if component == "bad" && message.contains("boom")),
        "{err}"
    );
    assert_eq!(r.state("ok"), Some(LifecycleState::Stopped));
}

// 4. Stop deadline ------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_hanging_stop_is_abandoned_and_the_rest_still_stop() {
    let log = Log::default();
    let (r, _bus) = registry_with(vec![
        Comp::new("base", &log),
        Comp::new("hang", &log)
            .deps(&["base"])
            .stopping(Behave::Hang),
        Comp::new("other", &log),
    ]);
    r.start_all(ms(100)).await.unwrap();
    log.take();
    let t0 = Instant::now();
    let report = r.stop_all(Duration::from_secs(3)).await;
    // The whole stop ends at the deadline of the hanging component.
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    let hang = report.get("hang").unwrap();
    assert_eq!(hang.outcome, StopOutcome::Abandoned);
    assert_eq!(hang.stop_ms, 3000);
    assert_eq!(report.get("base").unwrap().outcome, StopOutcome::Stopped);
    assert_eq!(report.get("other").unwrap().outcome, StopOutcome::Stopped);
    assert!(!report.is_clean());
    assert_eq!(r.state("hang"), Some(LifecycleState::Failed));
    assert_eq!(r.state("base"), Some(LifecycleState::Stopped));
    // base waited for its dependent to be given up on.
    let order = log.take();
    let pos = |s: &str| order.iter().position(|x| x == s).unwrap();
    assert!(pos("stop:hang") < pos("stop:base"), "{order:?}");
    let status = r.health().into_iter().find(|s| s.name == "hang").unwrap();
    assert!(status.last_error.unwrap().contains("abandoned"));
}

// 5. Supervision ------------------------------------------------------------------------------

fn flaky_task(ctx: &ComponentContext, runs: Arc<Mutex<Vec<Instant>>>) {
    ctx.spawn("flaky", move || {
        let runs = runs.clone();
        async move {
            runs.lock().unwrap().push(Instant::now());
            Err(ComponentError::msg("feed disconnected"))
        }
    });
}

#[tokio::test(start_paused = true)]
async fn restarts_back_off_exponentially_then_the_component_fails() {
    let log = Log::default();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r2 = runs.clone();
    let policy = RestartPolicy::on_failure(
        ms(100),
        Duration::from_secs(10),
        3,
        Duration::from_secs(60),
        Escalation::MarkFailed,
    );
    let (r, _bus) = registry_with(vec![
        Comp::new("feed", &log)
            .policy(policy)
            .on_start(move |ctx| flaky_task(ctx, r2.clone())),
    ]);
    r.start_all(ms(100)).await.unwrap();
    let t0 = Instant::now();
    wait_state(&r, "feed", LifecycleState::Failed).await;
    let runs = runs.lock().unwrap().clone();
    let gaps: Vec<Duration> = runs.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [ms(100), ms(200), ms(400)]);
    assert_eq!(t0.elapsed(), ms(700));
    let status = &r.health()[0];
    assert_eq!(status.restarts, 3);
    assert_eq!(status.state, LifecycleState::Failed);
    assert!(matches!(&status.health, Health::Unhealthy(m) if m.contains("feed disconnected")));
    assert!(
        !r.shutdown_handle().is_requested(),
        "MarkFailed does not shut down"
    );

    // A failed component is still stopped (to release its resources) and stays failed.
    let report = r.stop_all(ms(100)).await;
    assert!(
        matches!(&report.get("feed").unwrap().outcome, StopOutcome::Failed(m) if m.contains("giving up"))
    );
    assert_eq!(log.take(), ["start:feed", "stop:feed"]);
    assert_eq!(r.state("feed"), Some(LifecycleState::Failed));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_task_is_restarted_and_a_finished_task_is_not() {
    let log = Log::default();
    let runs = Arc::new(AtomicU64::new(0));
    let r2 = runs.clone();
    let (r, _bus) = registry_with(vec![Comp::new("c", &log).on_start(move |ctx| {
        let runs = r2.clone();
        ctx.spawn("once-panics", move || {
            let runs = runs.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run panics");
                }
                Ok(())
            }
        });
    })]);
    r.start_all(ms(100)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "restarted once, then done");
    let status = &r.health()[0];
    assert_eq!(status.restarts, 1);
    assert_eq!(status.state, LifecycleState::Running);
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("first run panics")
    );
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_is_not_restarted() {
    let log = Log::default();
    let runs = Arc::new(AtomicU64::new(0));
    let r2 = runs.clone();
    let (r, _bus) = registry_with(vec![
        Comp::new("c", &log)
            .policy(RestartPolicy {
                escalation: Escalation::MarkFailed,
                ..RestartPolicy::default()
            })
            .on_start(move |ctx| {
                let runs = r2.clone();
                ctx.spawn("fatal", move || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    async { Err(ComponentError::fatal("bad credentials")) }
                });
            }),
    ]);
    r.start_all(ms(100)).await.unwrap();
    wait_state(&r, "c", LifecycleState::Failed).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn escalation_shutdown_system_stops_the_runtime() {
    let log = Log::default();
    let (r, bus) = registry_with(vec![
        Comp::new("ok", &log),
        Comp::new("feed", &log)
            .policy(RestartPolicy::never(Escalation::ShutdownSystem))
            .on_start(|ctx| {
                ctx.spawn("dies", || async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Err(ComponentError::msg("socket closed"))
                })
            }),
    ]);
    let rt = Runtime::new(r.clone(), bus, RuntimeConfig::default());
    let report = rt.run(std::future::pending()).await.unwrap();
    assert!(
        matches!(&report.reason, ShutdownTrigger::Escalation { component, reason } if component == "feed" && reason.contains("socket closed")),
        "{report}"
    );
    assert_eq!(report.exit_code(), 70);
    assert_eq!(r.state("ok"), Some(LifecycleState::Stopped));
    assert_eq!(r.state("feed"), Some(LifecycleState::Failed));
}

#[tokio::test(start_paused = true)]
async fn escalation_trips_the_kill_switch() {
    let log = Log::default();
    let (r, bus) = registry_with(vec![
        Comp::new("risk", &log)
            .policy(RestartPolicy::never(Escalation::TripKillSwitch))
            .on_start(|ctx| {
                ctx.spawn("dies", || async { Err(ComponentError::msg("limits lost")) })
            }),
    ]);
    let ks = KillSwitch::new(KillSwitchConfig::default(), None, bus.clock()).unwrap();
    r.set_kill_switch(ks.clone());
    r.start_all(ms(100)).await.unwrap();
    wait_state(&r, "risk", LifecycleState::Failed).await;
    assert!(ks.is_engaged());
    let active = ks.active();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].scope, Scope::All);
    assert_eq!(active[0].mode, Mode::Halt);
    assert_eq!(active[0].source, "risk");
    assert!(active[0].reason.contains("limits lost"));
    assert!(!r.shutdown_handle().is_requested());
}

#[tokio::test(start_paused = true)]
async fn trip_kill_switch_without_a_kill_switch_shuts_down() {
    let log = Log::default();
    let (r, _bus) = registry_with(vec![
        Comp::new("risk", &log)
            .policy(RestartPolicy::never(Escalation::TripKillSwitch))
            .on_start(|ctx| ctx.spawn("dies", || async { Err(ComponentError::msg("x")) })),
    ]);
    r.start_all(ms(100)).await.unwrap();
    let why = r.shutdown_handle().requested().await;
    assert!(matches!(why, ShutdownTrigger::Escalation { component, .. } if component == "risk"));
}

#[tokio::test(start_paused = true)]
async fn stopping_cancels_the_tasks_before_stop_is_called() {
    let log = Log::default();
    struct Guard(Log);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.push("task dropped");
        }
    }
    let l2 = log.clone();
    let (r, _bus) = registry_with(vec![
        Comp::new("c", &log)
            .on_start(move |ctx| {
                let l = l2.clone();
                let token = ctx.cancellation().clone();
                ctx.spawn("forever", move || {
                    let g = Guard(l.clone());
                    async move {
                        let _g = g;
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                });
                assert!(!token.is_cancelled());
            })
            .on_stop(|ctx| assert!(ctx.cancellation().is_cancelled())),
    ]);
    r.start_all(ms(100)).await.unwrap();
    let report = r.stop_all(ms(100)).await;
    assert!(report.is_clean());
    assert_eq!(log.take(), ["start:c", "task dropped", "stop:c"]);
}

// 6. Lookup and observation ---------------------------------------------------------------

struct Other;
impl Component for Other {
    fn name(&self) -> &str {
        "other"
    }
    fn start<'a>(&'a self, _: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async { Ok(()) })
    }
    fn stop<'a>(&'a self, _: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async { Ok(()) })
    }
}

#[test]
fn components_are_found_by_name_with_their_type() {
    let log = Log::default();
    let (mut r, _bus) = registry_with(vec![Comp::new("feed", &log).deps(&["other"])]);
    r.register(Arc::new(Other)).unwrap();
    let feed: Arc<Comp> = r.get("feed").unwrap();
    assert_eq!(feed.deps, ["other"]);
    assert!(r.get::<Other>("other").is_some());
    assert!(r.get::<Other>("feed").is_none(), "wrong type");
    assert!(r.get::<Comp>("nope").is_none(), "unknown name");
    assert_eq!(r.names(), ["feed", "other"]);
}

#[tokio::test(start_paused = true)]
async fn every_transition_is_published_on_the_bus_and_watchable() {
    let log = Log::default();
    let first = Arc::new(AtomicBool::new(true));
    let (r, bus) = registry_with(vec![Comp::new("feed", &log).on_start(move |ctx| {
        let first = first.clone();
        ctx.spawn("t", move || {
            let fail = first.swap(false, Ordering::SeqCst);
            async move {
                if fail {
                    return Err(ComponentError::msg("hiccup"));
                }
                std::future::pending().await
            }
        })
    })]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = bus
        .subscribe_control("watcher", move |c| {
            if let ControlEvent::Lifecycle {
                component,
                from,
                to,
                detail,
            } = &c.event
            {
                let _ = tx.send((component.clone(), format!("{from}->{to}"), detail.clone()));
            }
            async { Ok(()) }
        })
        .unwrap();
    let mut watch = r.watch("feed").unwrap();
    r.start_all(ms(100)).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(rx.recv().await.unwrap());
    }
    r.stop_all(ms(100)).await;
    for _ in 0..2 {
        seen.push(rx.recv().await.unwrap());
    }
    let steps: Vec<&str> = seen.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(
        steps,
        [
            "registered->starting",
            "starting->running",
            "running->degraded",
            "degraded->running",
            "running->stopping",
            "stopping->stopped"
        ]
    );
    assert!(seen.iter().all(|(c, _, _)| c == "feed"));
    assert!(seen[2].2.as_deref().unwrap().contains("hiccup"));
    assert!(watch.has_changed().unwrap());
    assert_eq!(*watch.borrow_and_update(), LifecycleState::Stopped);
    // States serialize and print in snake case.
    assert_eq!(LifecycleState::Degraded.to_string(), "degraded");
}

// 7. Runtime and graceful shutdown --------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn producers_stop_before_the_bus_drains_and_before_services() {
    let log = Log::default();
    let bus = Bus::with_clock(Arc::new(ManualClock::default()));
    let b1 = bus.clone();
    let b2 = bus.clone();
    let b3 = bus.clone();
    let l1 = log.clone();
    let l2 = log.clone();
    let l3 = log.clone();
    let mut r = Registry::new(bus.clone());
    for c in [
        Comp::new("feed", &log)
            .producer()
            .on_stop(move |_| l1.push(format!("feed stops, bus closed: {}", b1.is_closed()))),
        // The strategy consumes the feed: it still stops after it.
        Comp::new("strategy", &log)
            .deps(&["feed"])
            .on_stop(move |_| l2.push(format!("strategy stops, bus closed: {}", b2.is_closed()))),
        Comp::new("journal", &log)
            .on_stop(move |_| l3.push(format!("journal stops, bus closed: {}", b3.is_closed()))),
    ] {
        r.register(Arc::new(c)).unwrap();
    }
    // A subscriber that never finishes its first event: the rest stays queued.
    let stuck = Arc::new(Notify::new());
    let s2 = stuck.clone();
    bus.subscription::<u64>("ticks")
        .unwrap()
        .name("stuck")
        .subscribe(handler_fn(move |_: &Envelope<u64>| {
            let s = s2.clone();
            async move {
                s.notified().await;
                Ok(())
            }
        }))
        .unwrap();
    let config = RuntimeConfig {
        drain_deadline: Duration::from_secs(2),
        ..RuntimeConfig::default()
    };
    let rt = Runtime::new(r.clone(), bus.clone(), config);
    let handle = rt.shutdown_handle();
    let (tx, mut shutdown_seen) = mpsc::unbounded_channel();
    let _ctl = bus
        .subscribe_control("ctl", move |c| {
            if let ControlEvent::Shutdown { reason } = &c.event {
                let _ = tx.send(reason.clone());
            }
            async { Ok(()) }
        })
        .unwrap();
    let publisher_bus = bus.clone();
    tokio::spawn(async move {
        let topic = Topic::new("ticks").unwrap();
        for i in 0..5u64 {
            publisher_bus.publish(topic, i).await.unwrap();
        }
        handle.request("end of test");
    });
    let t0 = Instant::now();
    let report = rt.run(std::future::pending()).await.unwrap();
    let lines = log.take();
    let stops: Vec<_> = lines.iter().filter(|l| l.contains("stops")).collect();
    assert_eq!(stops[0], "feed stops, bus closed: false");
    assert!(
        stops[1..].iter().all(|l| l.ends_with("bus closed: true")),
        "{stops:?}"
    );
    assert_eq!(report.components[0].name, "feed");
    assert!(
        matches!(&report.reason, ShutdownTrigger::Requested { reason, .. } if reason == "end of test")
    );
    assert_eq!(
        shutdown_seen.recv().await.unwrap(),
        report.reason.to_string()
    );
    // Nothing accepted is lost without being counted.
    let sub = report
        .bus
        .subscriptions
        .iter()
        .find(|s| s.name == "stuck")
        .unwrap();
    assert_eq!(sub.accepted, 5);
    assert_eq!(sub.delivered + sub.dropped + sub.undelivered, sub.accepted);
    assert!(sub.undelivered >= 4, "{sub:?}");
    assert!(report.bus.deadline_hit);
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(2),
        "the drain deadline bounds it"
    );
    assert_eq!(report.exit_code(), 0, "{report}");
    let text = report.to_string();
    assert!(
        text.contains("feed") && text.contains("stuck") && text.contains("exit code 0"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_stop_gives_exit_code_70() {
    let log = Log::default();
    let (r, bus) = registry_with(vec![
        Comp::new("a", &log).stopping(Behave::Fail("flush failed")),
        Comp::new("b", &log),
    ]);
    let rt = Runtime::new(r, bus, RuntimeConfig::default());
    let report = rt
        .run(async {
            ShutdownTrigger::Signal {
                signal: Signal::Terminate,
            }
        })
        .await
        .unwrap();
    assert_eq!(report.exit_code(), 70);
    assert!(
        matches!(&report.components.iter().find(|c| c.name == "a").unwrap().outcome, StopOutcome::Failed(m) if m.contains("flush failed"))
    );
    assert_eq!(
        report
            .components
            .iter()
            .find(|c| c.name == "b")
            .unwrap()
            .outcome,
        StopOutcome::Stopped
    );
}

#[tokio::test(start_paused = true)]
async fn forcing_the_shutdown_abandons_what_is_still_stopping() {
    let log = Log::default();
    let (r, bus) = registry_with(vec![
        Comp::new("slow", &log).stopping(Behave::Hang),
        Comp::new("fast", &log).producer(),
    ]);
    let config = RuntimeConfig {
        stop_deadline: Duration::from_secs(600),
        ..RuntimeConfig::default()
    };
    let rt = Runtime::new(r, bus, config);
    let handle = rt.shutdown_handle();
    tokio::spawn(async move {
        handle.request("first");
        tokio::time::sleep(Duration::from_secs(1)).await;
        handle.force(Signal::Interrupt);
    });
    let t0 = Instant::now();
    let report = rt.run(std::future::pending()).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    assert!(report.forced);
    assert_eq!(report.forced_by, Some(Signal::Interrupt));
    assert_eq!(report.exit_code(), 130);
    assert_eq!(report.components[0].name, "fast");
    assert_eq!(report.components[1].outcome, StopOutcome::Abandoned);
}

#[tokio::test(start_paused = true)]
async fn a_failed_start_ends_the_run_with_an_error() {
    let log = Log::default();
    let (r, bus) = registry_with(vec![Comp::new("bad", &log).starting(Behave::Fail("nope"))]);
    let rt = Runtime::new(r, bus.clone(), RuntimeConfig::default());
    let err = rt.run(std::future::pending()).await.unwrap_err();
    assert!(err.to_string().contains("bad"));
    assert_eq!(err.exit_code(), 70);
    assert!(bus.is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_start_lets_the_start_finish_then_shuts_down() {
    let log = Log::default();
    let (r, bus) = registry_with(vec![Comp::new("a", &log).starting(Behave::Sleep(ms(500)))]);
    let rt = Runtime::new(r, bus, RuntimeConfig::default());
    let report = rt
        .run(async {
            tokio::time::sleep(ms(100)).await;
            ShutdownTrigger::Signal {
                signal: Signal::Interrupt,
            }
        })
        .await
        .unwrap();
    assert_eq!(log.take(), ["start:a", "stop:a"]);
    assert_eq!(report.exit_code(), 0);
    assert!(matches!(
        report.reason,
        ShutdownTrigger::Signal {
            signal: Signal::Interrupt
        }
    ));
}

// 7b. Data flow order, intake hooks, own deadlines, end-of-run triggers ----------------------

#[tokio::test(start_paused = true)]
async fn services_start_before_producers_that_they_do_not_consume() {
    let log = Log::default();
    let bus = Bus::with_clock(Arc::new(ManualClock::default()));
    let mut r = Registry::new(bus);
    // The engine takes a while to start; the feed declares no dependency on it.
    r.register(Arc::new(
        Comp::new("engine", &log).starting(Behave::Sleep(ms(50))),
    ))
    .unwrap();
    let engine = r.watch("engine").unwrap();
    let l = log.clone();
    r.register(Arc::new(Comp::new("feed", &log).producer().on_start(
        move |_| l.push(format!("feed starts, engine {}", *engine.borrow())),
    )))
    .unwrap();
    // A service that consumes the feed still starts after it.
    r.register(Arc::new(Comp::new("strategy", &log).deps(&["feed"])))
        .unwrap();
    r.start_all(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        log.take(),
        [
            "start:engine",
            "start:feed",
            "feed starts, engine running",
            "start:strategy"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn implicit_start_waits_never_close_a_cycle() {
    let log = Log::default();
    // a consumes p2, b consumes p1: "p1 waits for a" and "p2 waits for b" together would
    // deadlock (p1 → a → p2 → b → p1), so one of them is skipped.
    let (r, _bus) = registry_with(vec![
        Comp::new("p1", &log).producer(),
        Comp::new("p2", &log).producer(),
        Comp::new("a", &log).deps(&["p2"]),
        Comp::new("b", &log).deps(&["p1"]),
    ]);
    r.start_all(ms(100)).await.unwrap();
    assert!(
        r.states()
            .iter()
            .all(|(_, s)| *s == LifecycleState::Running),
        "{:?}",
        r.states()
    );
    let order = log.take();
    let pos = |s: &str| order.iter().position(|x| x == s).unwrap();
    assert!(pos("start:p2") < pos("start:a"), "{order:?}");
    assert!(pos("start:p1") < pos("start:b"), "{order:?}");
    assert!(pos("start:a") < pos("start:p1"), "{order:?}");
}

#[tokio::test(start_paused = true)]
async fn rollback_stops_the_producers_first() {
    let log = Log::default();
    let (r, _bus) = registry_with(vec![
        Comp::new("engine", &log),
        Comp::new("feed", &log).producer(),
        Comp::new("recorder", &log)
            .deps(&["feed"])
            .starting(Behave::Fail("disk full")),
    ]);
    let err = r.start_all(ms(100)).await.unwrap_err();
    assert_eq!(err.component(), Some("recorder"));
    assert_eq!(
        log.take(),
        [
            "start:engine",
            "start:feed",
            "start:recorder",
            "stop:feed",
            "stop:engine"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn observers_start_by_their_dependencies_and_stop_after_every_service() {
    let log = Log::default();
    let (r, bus) = registry_with(vec![
        Comp::new("feed", &log).producer(),
        Comp::new("engine", &log),
        // Depends on the engine, yet stops after it: status stays readable to the end.
        Comp::new("ops", &log).observer().deps(&["engine"]),
        Comp::new("journal", &log).deps(&["feed"]),
    ]);
    let rt = Runtime::new(r.clone(), bus, RuntimeConfig::default());
    rt.shutdown_handle().request("done");
    let report = rt.run(std::future::pending()).await.unwrap();
    let lines = log.take();
    assert_eq!(
        lines[..4],
        ["start:engine", "start:ops", "start:feed", "start:journal"]
    );
    // The producer first, the observer last; the two services (independent) between.
    let mut middle = lines[5..7].to_vec();
    middle.sort();
    assert_eq!(
        (lines[4].as_str(), middle, lines[7].as_str(), lines.len()),
        (
            "stop:feed",
            vec!["stop:engine".to_string(), "stop:journal".into()],
            "stop:ops",
            8
        )
    );
    let names: Vec<_> = report.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!((names[0], names[3]), ("feed", "ops"));
    assert_eq!(report.exit_code(), 0, "{report}");
    let ops = r.health().into_iter().find(|s| s.name == "ops").unwrap();
    assert_eq!(ops.kind, ComponentKind::Observer);
}

#[tokio::test(start_paused = true)]
async fn intake_hooks_run_after_the_producers_before_the_drain_while_components_run() {
    let log = Log::default();
    let bus = Bus::with_clock(Arc::new(ManualClock::default()));
    let mut r = Registry::new(bus.clone());
    let hook = |log: &Log, bus: &Bus| {
        let (log, bus) = (log.clone(), bus.clone());
        move |ctx: &ComponentContext| {
            log.push(format!(
                "{} intake: bus closed {}, cancelled {}",
                ctx.name(),
                bus.is_closed(),
                ctx.cancellation().is_cancelled()
            ))
        }
    };
    for c in [
        // A producer's intake hook is not called: it stops outright.
        Comp::new("feed", &log)
            .producer()
            .on_intake(hook(&log, &bus)),
        Comp::new("engine", &log).on_intake(hook(&log, &bus)),
        Comp::new("bridge", &log)
            .deps(&["engine"])
            .on_intake(hook(&log, &bus)),
        Comp::new("ops", &log)
            .observer()
            .on_intake(hook(&log, &bus)),
    ] {
        r.register(Arc::new(c)).unwrap();
    }
    let states = r.clone();
    let rt = Runtime::new(r.clone(), bus, RuntimeConfig::default());
    rt.shutdown_handle().request("done");
    let report = rt.run(std::future::pending()).await.unwrap();
    let lines: Vec<_> = log
        .take()
        .into_iter()
        .filter(|l| !l.starts_with("start:"))
        .collect();
    let pos = |s: &str| lines.iter().position(|x| x == s).unwrap();
    assert_eq!(lines[0], "stop:feed", "{lines:?}");
    for n in ["engine", "bridge", "ops"] {
        assert!(
            lines.contains(&format!("{n} intake: bus closed false, cancelled false")),
            "{lines:?}"
        );
        assert!(pos(&format!("intake:{n}")) < pos(&format!("stop:{n}")));
        assert!(pos(&format!("intake:{n}")) < pos("stop:engine"));
    }
    // Reverse dependency order: the bridge (depends on the engine) first.
    assert!(pos("intake:bridge") < pos("intake:engine"), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("feed intake")),
        "{lines:?}"
    );
    let mut called: Vec<_> = report.intake.iter().map(|c| c.name.as_str()).collect();
    called.sort();
    assert_eq!(called, ["bridge", "engine", "ops"]);
    assert!(
        report
            .intake
            .iter()
            .all(|c| c.outcome == StopOutcome::Stopped)
    );
    assert_eq!(report.exit_code(), 0);
    assert_eq!(states.state("engine"), Some(LifecycleState::Stopped));
}

#[tokio::test(start_paused = true)]
async fn a_failed_or_late_intake_hook_is_reported_and_gives_exit_code_70() {
    let log = Log::default();
    let (r, bus) = registry_with(vec![
        Comp::new("bridge", &log).intake(Behave::Fail("flush failed")),
        Comp::new("slow", &log).intake(Behave::Hang),
        Comp::new("fine", &log).intake(Behave::Ok),
    ]);
    let rt = Runtime::new(r.clone(), bus, RuntimeConfig::default());
    rt.shutdown_handle().request("done");
    let t0 = Instant::now();
    let report = rt.run(std::future::pending()).await.unwrap();
    // The hanging hook is given up on at the stop deadline (5 s by default).
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    let intake = |n: &str| {
        report
            .intake
            .iter()
            .find(|c| c.name == n)
            .unwrap()
            .outcome
            .clone()
    };
    assert!(
        matches!(intake("bridge"), StopOutcome::Failed(m) if m.contains("flush failed")),
        "{report:?}"
    );
    assert_eq!(intake("slow"), StopOutcome::Abandoned);
    assert_eq!(intake("fine"), StopOutcome::Stopped);
    // Their stops still ran, cleanly.
    assert!(
        report
            .components
            .iter()
            .all(|c| c.outcome == StopOutcome::Stopped),
        "{report:?}"
    );
    assert_eq!(r.state("bridge"), Some(LifecycleState::Stopped));
    let bridge = r.health().into_iter().find(|s| s.name == "bridge").unwrap();
    assert!(bridge.last_error.unwrap().contains("flush failed"));
    assert_eq!(report.exit_code(), 70, "{report}");
    let text = report.to_string();
    assert!(
        text.contains("bridge (intake)") && text.contains("slow (intake)"),
        "{text}"
    );
    assert!(!text.contains("fine (intake)"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn the_shutdown_event_follows_trailing_data_and_end_of_stream_markers() {
    let log = Log::default();
    let tick_seq = Arc::new(AtomicU64::new(0));
    let eos_seq = Arc::new(AtomicU64::new(0));
    let (t, e) = (tick_seq.clone(), eos_seq.clone());
    let (r, bus) = registry_with(vec![
        Comp::new("feed", &log).producer().on_stop(move |ctx| {
            let seq = ctx
                .bus()
                .try_publish(Topic::new("ticks").unwrap(), 99u64)
                .unwrap();
            t.store(seq, Ordering::SeqCst);
        }),
        Comp::new("bridge", &log).on_intake(move |ctx| {
            let seq = ctx
                .bus()
                .try_publish(Topic::new("eos").unwrap(), "end of stream".to_string())
                .unwrap();
            e.store(seq, Ordering::SeqCst);
        }),
    ]);
    let (tx, mut shutdown_seq) = mpsc::unbounded_channel();
    let _ctl = bus
        .subscribe_control("ctl", move |c| {
            if let ControlEvent::Shutdown { .. } = &c.event {
                let _ = tx.send(c.seq);
            }
            async { Ok(()) }
        })
        .unwrap();
    let rt = Runtime::new(r, bus, RuntimeConfig::default());
    rt.shutdown_handle().request("done");
    rt.run(std::future::pending()).await.unwrap();
    let shutdown = shutdown_seq.recv().await.unwrap();
    let (tick, eos) = (
        tick_seq.load(Ordering::SeqCst),
        eos_seq.load(Ordering::SeqCst),
    );
    assert!(tick > 0 && eos > tick, "tick {tick}, eos {eos}");
    assert!(shutdown > eos, "shutdown {shutdown}, eos {eos}");
}

#[tokio::test(start_paused = true)]
async fn a_component_stop_deadline_overrides_the_runtime_default() {
    let log = Log::default();
    let (r, bus) = registry_with(vec![
        Comp::new("journal", &log)
            .stopping(Behave::Sleep(Duration::from_secs(10)))
            .own_stop_deadline(Duration::from_secs(30)),
        Comp::new("plain", &log).stopping(Behave::Sleep(Duration::from_secs(10))),
    ]);
    let config = RuntimeConfig::default();
    assert_eq!(config.stop_deadline, Duration::from_secs(5));
    let rt = Runtime::new(r.clone(), bus, config);
    rt.shutdown_handle().request("done");
    let t0 = Instant::now();
    let report = rt.run(std::future::pending()).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    let line = |n: &str| report.components.iter().find(|c| c.name == n).unwrap();
    assert_eq!(line("journal").outcome, StopOutcome::Stopped);
    assert_eq!(line("journal").stop_ms, 10_000);
    assert_eq!(line("plain").outcome, StopOutcome::Abandoned);
    assert_eq!(line("plain").stop_ms, 5_000);
    assert_eq!(r.state("journal"), Some(LifecycleState::Stopped));
    assert_eq!(r.state("plain"), Some(LifecycleState::Failed));
}

#[tokio::test(start_paused = true)]
async fn a_component_completing_its_work_shuts_down_with_exit_code_0() {
    let log = Log::default();
    let (r, bus) = registry_with(vec![Comp::new("replay", &log).producer().on_start(|ctx| {
        let ctx2 = ctx.clone();
        ctx.spawn("read", move || {
            let ctx = ctx2.clone();
            async move {
                tokio::time::sleep(ms(20)).await;
                ctx.complete("end of replay file");
                Ok(())
            }
        });
    })]);
    let rt = Runtime::new(r, bus, RuntimeConfig::default());
    let report = rt.run(std::future::pending()).await.unwrap();
    assert_eq!(
        report.reason,
        ShutdownTrigger::Completed {
            source: "replay".into(),
            detail: "end of replay file".into()
        }
    );
    assert_eq!(
        report.reason.to_string(),
        "completed by replay: end of replay file"
    );
    assert_eq!(report.exit_code(), 0, "{report}");
}

#[tokio::test(start_paused = true)]
async fn an_elapsed_run_duration_shuts_down_with_exit_code_0() {
    let log = Log::default();
    let (r, bus) = registry_with(vec![Comp::new("a", &log)]);
    let rt = Runtime::new(r, bus, RuntimeConfig::default());
    let t0 = Instant::now();
    let report = rt
        .run(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            ShutdownTrigger::Elapsed { after_ms: 30_000 }
        })
        .await
        .unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    assert_eq!(report.reason, ShutdownTrigger::Elapsed { after_ms: 30_000 });
    assert_eq!(report.reason.to_string(), "ran for 30000 ms");
    assert_eq!(report.exit_code(), 0, "{report}");
    assert!(report.to_string().contains("ran for 30000 ms"));
}

/// A producer that counts in a cooperative task and collects the count at stop.
struct Counter {
    handle: Mutex<Option<tokio::task::JoinHandle<u64>>>,
    counted: Arc<AtomicU64>,
    seen_at_stop: Arc<Mutex<Option<(bool, u64)>>>,
    progress: tokio::sync::watch::Sender<u64>,
}

impl Component for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn kind(&self) -> ComponentKind {
        ComponentKind::Producer
    }
    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let token = ctx.cancellation().clone();
            let counted = self.counted.clone();
            let progress = self.progress.clone();
            let handle = ctx.spawn_cooperative("count", async move {
                let mut n = 0u64;
                loop {
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(ms(1)) => {
                            n += 1;
                            counted.store(n, Ordering::SeqCst);
                            progress.send_replace(n);
                        }
                    }
                }
                n
            });
            *self.handle.lock().unwrap() = Some(handle);
            Ok(())
        })
    }
    fn stop<'a>(&'a self, _: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let handle = self.handle.lock().unwrap().take().expect("started");
            let finished = handle.is_finished();
            let n = handle.await.map_err(ComponentError::new)?;
            *self.seen_at_stop.lock().unwrap() = Some((finished, n));
            Ok(())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_cooperative_task_finishes_by_itself_and_stop_collects_its_result() {
    let bus = Bus::with_clock(Arc::new(ManualClock::default()));
    let mut r = Registry::new(bus);
    let counted = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(None));
    let (progress, mut watch) = tokio::sync::watch::channel(0);
    r.register(Arc::new(Counter {
        handle: Mutex::new(None),
        counted: counted.clone(),
        seen_at_stop: seen.clone(),
        progress,
    }))
    .unwrap();
    r.start_all(ms(100)).await.unwrap();
    watch.wait_for(|n| *n >= 5).await.unwrap();
    let report = r.stop_all(ms(100)).await;
    assert!(report.is_clean(), "{report:?}");
    let (finished, n) = seen.lock().unwrap().expect("stop collected the result");
    assert!(
        finished,
        "the registry waited for the task before calling stop"
    );
    assert!(n >= 5);
    assert_eq!(n, counted.load(Ordering::SeqCst));
}

/// A producer whose task blocks its thread in a synchronous loop until the runtime's own
/// thread answers (bounded: it gives up after 10 s), then waits for its cancellation.
struct Blocker {
    handle: Mutex<Option<tokio::task::JoinHandle<(bool, std::thread::ThreadId)>>>,
    go: Arc<AtomicBool>,
    result: Arc<Mutex<Option<(bool, std::thread::ThreadId)>>>,
}

impl Component for Blocker {
    fn name(&self) -> &str {
        "blocker"
    }
    fn kind(&self) -> ComponentKind {
        ComponentKind::Producer
    }
    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let (go, token) = (self.go.clone(), ctx.cancellation().clone());
            let handle = ctx.spawn_dedicated("block", async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while !go.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                    std::thread::yield_now();
                }
                let saw = go.load(Ordering::SeqCst);
                // The runtime's timers still serve it.
                tokio::time::sleep(ms(1)).await;
                token.cancelled().await;
                (saw, std::thread::current().id())
            });
            *self.handle.lock().unwrap() = Some(handle);
            Ok(())
        })
    }
    fn stop<'a>(&'a self, _: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let handle = self.handle.lock().unwrap().take().expect("started");
            *self.result.lock().unwrap() = Some(handle.await.map_err(ComponentError::new)?);
            Ok(())
        })
    }
}

/// On a current-thread runtime a task that blocks its thread would starve every other
/// task if it ran on that thread; a dedicated task runs beside it.
#[tokio::test]
async fn a_dedicated_task_runs_on_a_thread_of_its_own_beside_the_runtime() {
    let bus = Bus::with_clock(Arc::new(ManualClock::default()));
    let mut r = Registry::new(bus);
    let go = Arc::new(AtomicBool::new(false));
    let result = Arc::new(Mutex::new(None));
    r.register(Arc::new(Blocker {
        handle: Mutex::new(None),
        go: go.clone(),
        result: result.clone(),
    }))
    .unwrap();
    r.start_all(ms(1_000)).await.unwrap();
    // Give the runtime's thread to anything queued on it (a cooperative task would now
    // take it, and keep it until its 10 s deadline).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    go.store(true, Ordering::SeqCst);
    let report = r.stop_all(ms(5_000)).await;
    assert!(report.is_clean(), "{report:?}");
    let (saw, thread) = result.lock().unwrap().expect("stop collected the result");
    assert!(
        saw,
        "the blocking task saw the runtime's store while it ran"
    );
    assert_ne!(thread, std::thread::current().id());
}

#[tokio::test(start_paused = true)]
async fn overall_health_rolls_up_the_components() {
    let log = Log::default();
    let lag = Arc::new(Mutex::new(Health::Healthy));
    let fail_now = Arc::new(Notify::new());
    let f = fail_now.clone();
    let (r, _bus) = registry_with(vec![
        Comp::new("feed", &log).producer(),
        Comp::new("engine", &log).health_cell(&lag),
        Comp::new("risk", &log)
            .policy(RestartPolicy::never(Escalation::MarkFailed))
            .on_start(move |ctx| {
                let f = f.clone();
                ctx.spawn("limits", move || {
                    let f = f.clone();
                    async move {
                        f.notified().await;
                        Err(ComponentError::msg("limits lost"))
                    }
                })
            }),
    ]);
    r.start_all(ms(100)).await.unwrap();
    assert_eq!(r.overall_health(), Health::Healthy);
    *lag.lock().unwrap() = Health::Degraded("lagging 2s".into());
    assert_eq!(
        r.overall_health(),
        Health::Degraded("engine: lagging 2s".into())
    );
    fail_now.notify_one();
    wait_state(&r, "risk", LifecycleState::Failed).await;
    let Health::Unhealthy(reason) = r.overall_health() else {
        panic!("{:?}", r.overall_health())
    };
    assert!(
        reason.starts_with("risk: failed:") && reason.contains("limits lost"),
        "{reason}"
    );
    assert!(!reason.contains("engine"), "{reason}");
}

// 8. Real signals -----------------------------------------------------------------------------

mod real_signals {
    use std::io::{BufRead, BufReader};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    /// The `signal_child` example binary, built if needed.
    fn child_binary() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/lifecycle-<hash> → target/<profile>/examples/signal_child
        let dir = exe.parent().unwrap().parent().unwrap().join("examples");
        let bin = dir.join(format!("signal_child{}", std::env::consts::EXE_SUFFIX));
        if !bin.exists() {
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "-q",
                    "-p",
                    "switchyard",
                    "--example",
                    "signal_child",
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo");
            assert!(status.success(), "building signal_child failed");
        }
        assert!(bin.exists(), "{} not found", bin.display());
        bin
    }

    struct Running {
        child: Child,
        lines: mpsc::Receiver<String>,
        out: Vec<String>,
    }

    impl Running {
        fn start(args: &[&str]) -> Self {
            let mut child = Command::new(child_binary())
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn signal_child");
            let (tx, lines) = mpsc::channel();
            for stream in [
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                Box::new(child.stderr.take().unwrap()),
            ] {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let _ = tx.send(line);
                    }
                });
            }
            Running {
                child,
                lines,
                out: Vec::new(),
            }
        }

        fn wait_for_line(&mut self, want: &str) {
            loop {
                match self.lines.recv_timeout(Duration::from_secs(30)) {
                    Ok(l) => {
                        let hit = l.contains(want);
                        self.out.push(l);
                        if hit {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = self.child.kill();
                        panic!("no line {want:?} ({e}); got {:?}", self.out);
                    }
                }
            }
        }

        fn signal(&self, sig: &str) {
            let status = Command::new("kill")
                .args([&format!("-{sig}"), &self.child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success());
        }

        fn finish(mut self) -> (i32, String) {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let status = loop {
                if let Some(s) = self.child.try_wait().unwrap() {
                    break s;
                }
                if std::time::Instant::now() > deadline {
                    let _ = self.child.kill();
                    panic!("child did not exit; output {:?}", self.out);
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            // The reader threads end at EOF.
            while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
                self.out.push(l);
            }
            (
                status.code().expect("exited, not killed"),
                self.out.join("\n"),
            )
        }
    }

    #[test]
    #[cfg(unix)]
    fn sigterm_shuts_the_child_down_cleanly() {
        let mut child = Running::start(&[]);
        child.wait_for_line("ready");
        child.signal("TERM");
        let (code, out) = child.finish();
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("shutdown (signal SIGTERM)"), "{out}");
        assert!(out.contains("exit code 0"), "{out}");
        for line in ["feed", "sink", "ticks"] {
            assert!(out.contains(line), "{out}");
        }
    }

    #[test]
    #[cfg(unix)]
    fn a_second_sigint_during_a_slow_shutdown_forces_exit_130() {
        let mut child = Running::start(&["slow-stop"]);
        child.wait_for_line("ready");
        child.signal("INT");
        child.wait_for_line("stopping slowly");
        child.signal("INT");
        let (code, out) = child.finish();
        assert_eq!(code, 130, "{out}");
        assert!(out.contains("second signal (SIGINT)"), "{out}");
    }
}
