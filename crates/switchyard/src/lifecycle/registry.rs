//! The registry: components by name, dependency-ordered start, reverse-ordered stop.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::component::{Component, ComponentContext};
use super::error::{RegistryError, StartError};
use super::runtime::ShutdownHandle;
use super::state::{ComponentKind, ComponentStatus, Health, LifecycleState, Slot};
use super::supervisor::{CatchUnwind, Escalator, panic_message};
use crate::bus::Bus;
use crate::kill_switch::KillSwitch;

struct Entry {
    component: Arc<dyn Component>,
    any: Arc<dyn Any + Send + Sync>,
    kind: ComponentKind,
    deps: Vec<String>,
    /// The component's own stop deadline ([`Component::stop_deadline`]).
    stop_deadline: Option<Duration>,
    ctx: ComponentContext,
}

impl Entry {
    fn slot(&self) -> &Arc<Slot> {
        &self.ctx.inner().slot
    }
}

struct Shared {
    entries: RwLock<Vec<Arc<Entry>>>,
    started: AtomicBool,
    escalator: Arc<Escalator>,
}

/// The components of a system, by name. Starts them in dependency order, stops them in
/// reverse, supervises their tasks, and reports their states.
///
/// Cloning is cheap and shares the same registry (e.g. one clone for a status API, one
/// given to the [`Runtime`](super::Runtime)). See the [module docs](super) for the
/// contract.
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("states", &self.states())
            .finish()
    }
}

/// How one component's stop ended (or, in an intake line, its
/// [`Component::stop_intake`]: then `Failed` and `Abandoned` only record the error as the
/// component's last error, without marking it failed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "error", rename_all = "snake_case")]
pub enum StopOutcome {
    /// `stop` returned `Ok` within its deadline.
    Stopped,
    /// `stop` returned an error or panicked, or the component had failed before it was
    /// stopped (escalation).
    Failed(String),
    /// `stop` (or the end of its tasks) missed the stop deadline; the component was given
    /// up on and marked failed.
    Abandoned,
}

impl fmt::Display for StopOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopOutcome::Stopped => f.write_str("stopped"),
            StopOutcome::Failed(e) => write!(f, "failed: {e}"),
            StopOutcome::Abandoned => f.write_str("abandoned"),
        }
    }
}

/// One component's line of a [`StopReport`] (or of the intake phase: then it says how
/// its [`Component::stop_intake`] ended, `Stopped` meaning it returned `Ok`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentStopReport {
    /// Component name.
    pub name: String,
    /// How its stop (or `stop_intake`) ended.
    pub outcome: StopOutcome,
    /// How long its stop (or `stop_intake`) took, in milliseconds.
    pub stop_ms: u64,
}

/// What [`Registry::stop_all`] returns: one line per component stopped, in the order they
/// finished, and one line per [`Component::stop_intake`] call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StopReport {
    /// Per component.
    pub components: Vec<ComponentStopReport>,
    /// Per component whose `stop_intake` was called (every started service and
    /// observer), in the order the calls ended.
    pub intake: Vec<ComponentStopReport>,
}

impl StopReport {
    /// True if every component stopped cleanly and every `stop_intake` returned `Ok`.
    pub fn is_clean(&self) -> bool {
        self.components
            .iter()
            .chain(&self.intake)
            .all(|c| c.outcome == StopOutcome::Stopped)
    }

    /// The line of component `name`.
    pub fn get(&self, name: &str) -> Option<&ComponentStopReport> {
        self.components.iter().find(|c| c.name == name)
    }
}

/// Dependency graph by index.
struct Graph {
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
}

fn build_graph(entries: &[Arc<Entry>]) -> Result<Graph, RegistryError> {
    let index: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.slot().name.as_str(), i))
        .collect();
    let mut deps = vec![Vec::new(); entries.len()];
    let mut dependents = vec![Vec::new(); entries.len()];
    for (i, e) in entries.iter().enumerate() {
        for d in &e.deps {
            let Some(&j) = index.get(d.as_str()) else {
                return Err(RegistryError::UnknownDependency {
                    component: e.slot().name.clone(),
                    dependency: d.clone(),
                });
            };
            if !deps[i].contains(&j) {
                deps[i].push(j);
                dependents[j].push(i);
            }
        }
    }
    // Kahn: whatever is left over sits on or behind a cycle.
    let mut pending: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..entries.len()).filter(|&i| pending[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &k in &dependents[i] {
            pending[k] -= 1;
            if pending[k] == 0 {
                ready.push(k);
            }
        }
    }
    if done < entries.len() {
        // Every left-over node has a left-over dependency: walk them until one repeats.
        let start = (0..entries.len()).find(|&i| pending[i] > 0).unwrap_or(0);
        let mut path = vec![start];
        let mut seen = HashSet::from([start]);
        let mut at = start;
        loop {
            let next = deps[at]
                .iter()
                .copied()
                .find(|&d| pending[d] > 0)
                .unwrap_or(start);
            if !seen.insert(next) {
                let from = path.iter().position(|&p| p == next).unwrap_or(0);
                let mut names: Vec<String> = path[from..]
                    .iter()
                    .map(|&p| entries[p].slot().name.clone())
                    .collect();
                names.push(entries[next].slot().name.clone());
                return Err(RegistryError::Cycle(names));
            }
            path.push(next);
            at = next;
        }
    }
    Ok(Graph { deps, dependents })
}

/// True if `from` (transitively) depends on `to` in `deps`.
fn reaches(deps: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; deps.len()];
    let mut stack = vec![from];
    while let Some(i) = stack.pop() {
        if i == to {
            return true;
        }
        if !std::mem::replace(&mut seen[i], true) {
            stack.extend(deps[i].iter().copied());
        }
    }
    false
}

/// The start graph: the dependency graph (acyclic) plus the implicit data-flow edges
/// "producer `p` waits for non-producer `n`" for every `n` that does not transitively
/// depend on `p`. Edges are added in registration order and one that would close a
/// cycle (through earlier implicit edges) is skipped, so the result stays acyclic.
fn with_data_flow_edges(entries: &[Arc<Entry>], graph: Graph) -> Graph {
    let Graph {
        mut deps,
        mut dependents,
    } = graph;
    let producer = |i: usize| entries[i].kind == ComponentKind::Producer;
    for p in (0..entries.len()).filter(|&p| producer(p)) {
        for n in (0..entries.len()).filter(|&n| !producer(n)) {
            if deps[p].contains(&n) || reaches(&deps, n, p) {
                continue;
            }
            deps[p].push(n);
            dependents[n].push(p);
        }
    }
    Graph { deps, dependents }
}

impl Registry {
    /// An empty registry whose components publish on `bus`.
    pub fn new(bus: Bus) -> Self {
        Registry {
            shared: Arc::new(Shared {
                entries: RwLock::new(Vec::new()),
                started: AtomicBool::new(false),
                escalator: Arc::new(Escalator {
                    bus,
                    shutdown: ShutdownHandle::new(),
                    kill_switch: RwLock::new(None),
                }),
            }),
        }
    }

    fn entries(&self) -> Vec<Arc<Entry>> {
        self.shared
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        self.shared
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|e| e.slot().name == name)
            .cloned()
    }

    /// Add a component. Rejects an empty or duplicate name at once; unknown dependencies
    /// and cycles are reported by [`Registry::validate`] and [`Registry::start_all`]
    /// (dependencies may be registered in any order). `name`, `dependencies`, `kind`,
    /// `restart_policy` and `stop_deadline` are read here, once.
    pub fn register<C: Component>(&mut self, component: Arc<C>) -> Result<(), RegistryError> {
        let name = component.name().to_owned();
        if self.shared.started.load(Ordering::Acquire) {
            return Err(RegistryError::AlreadyStarted(name));
        }
        if name.is_empty() {
            return Err(RegistryError::EmptyName);
        }
        let deps = component.dependencies();
        if deps.contains(&name) {
            return Err(RegistryError::Cycle(vec![name.clone(), name]));
        }
        let mut entries = self
            .shared
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if entries.iter().any(|e| e.slot().name == name) {
            return Err(RegistryError::Duplicate(name));
        }
        let escalator = Arc::clone(&self.shared.escalator);
        let slot = Arc::new(Slot::new(name, escalator.bus.clone()));
        let ctx = ComponentContext::new(slot, component.restart_policy(), escalator);
        entries.push(Arc::new(Entry {
            kind: component.kind(),
            deps,
            stop_deadline: component.stop_deadline(),
            any: component.clone() as Arc<dyn Any + Send + Sync>,
            component,
            ctx,
        }));
        Ok(())
    }

    /// Check that every dependency is registered and that there is no cycle.
    pub fn validate(&self) -> Result<(), RegistryError> {
        build_graph(&self.entries()).map(|_| ())
    }

    /// The component `name`, as its own type. `None` if there is no such component or it
    /// is of another type.
    pub fn get<C: Component>(&self, name: &str) -> Option<Arc<C>> {
        self.entry(name)?.any.clone().downcast::<C>().ok()
    }

    /// Names, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.entries()
            .iter()
            .map(|e| e.slot().name.clone())
            .collect()
    }

    /// The state of component `name`.
    pub fn state(&self, name: &str) -> Option<LifecycleState> {
        Some(self.entry(name)?.slot().state())
    }

    /// A receiver that sees every state change of component `name`.
    pub fn watch(&self, name: &str) -> Option<watch::Receiver<LifecycleState>> {
        Some(self.entry(name)?.slot().state.subscribe())
    }

    /// Every component's state, in registration order.
    pub fn states(&self) -> Vec<(String, LifecycleState)> {
        self.entries()
            .iter()
            .map(|e| (e.slot().name.clone(), e.slot().state()))
            .collect()
    }

    /// Every component's status, in registration order. A running or degraded
    /// component's health is its own [`Component::health`] (a `Healthy` component in
    /// `Degraded` state reports `Degraded`); in any other state it is `Unhealthy` with
    /// the state (and last error) as reason.
    pub fn health(&self) -> Vec<ComponentStatus> {
        self.entries()
            .iter()
            .map(|e| {
                let slot = e.slot();
                let state = slot.state();
                let last_error = slot.last_error();
                let health = match state {
                    LifecycleState::Running => e.component.health(),
                    LifecycleState::Degraded => match e.component.health() {
                        Health::Healthy => Health::Degraded(
                            last_error.clone().unwrap_or_else(|| "restarting".into()),
                        ),
                        h => h,
                    },
                    LifecycleState::Failed => Health::Unhealthy(match &last_error {
                        Some(err) => format!("failed: {err}"),
                        None => "failed".into(),
                    }),
                    s => Health::Unhealthy(s.to_string()),
                };
                ComponentStatus {
                    name: slot.name.clone(),
                    kind: e.kind,
                    state,
                    health,
                    restarts: slot.restarts.load(Ordering::Relaxed),
                    last_error,
                }
            })
            .collect()
    }

    /// The health of the whole system, from [`Registry::health`]: `Unhealthy` if any
    /// component is failed (or, running, reports itself unhealthy), the reason naming
    /// each such component (`"name: reason; ..."`); else `Degraded` if any component is
    /// degraded or reports itself degraded (reasons joined the same way); else `Healthy`.
    /// Components not yet started or already stopped do not count.
    pub fn overall_health(&self) -> Health {
        let mut unhealthy = Vec::new();
        let mut degraded = Vec::new();
        for s in self.health() {
            let live = matches!(s.state, LifecycleState::Running | LifecycleState::Degraded);
            match s.health {
                Health::Unhealthy(r) if live || s.state == LifecycleState::Failed => {
                    unhealthy.push(format!("{}: {r}", s.name));
                }
                Health::Degraded(r) if live => degraded.push(format!("{}: {r}", s.name)),
                _ => {}
            }
        }
        if !unhealthy.is_empty() {
            Health::Unhealthy(unhealthy.join("; "))
        } else if !degraded.is_empty() {
            Health::Degraded(degraded.join("; "))
        } else {
            Health::Healthy
        }
    }

    /// The kill switch that [`Escalation::TripKillSwitch`](super::Escalation) triggers.
    pub fn set_kill_switch(&self, kill_switch: KillSwitch) {
        *self
            .shared
            .escalator
            .kill_switch
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(kill_switch);
    }

    /// The handle through which components ([`ComponentContext::request_shutdown`],
    /// [`Escalation::ShutdownSystem`](super::Escalation)) request a shutdown; the
    /// [`Runtime`](super::Runtime) running this registry waits on it.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shared.escalator.shutdown.clone()
    }

    /// Start every component, each once all its dependencies are running (independent
    /// components concurrently). A producer also waits for every service and observer
    /// that does not (transitively) depend on it, so consumers are ready before the data
    /// flows (an implicit wait that would close a cycle is skipped). Each `start` has
    /// `start_deadline`.
    ///
    /// If a start fails (error, panic, deadline), no further component is started, the
    /// starts in flight are awaited, then every component that started is stopped as
    /// [`Registry::stop_all`] does (producers first, intake hooks, services, observers;
    /// each with `start_deadline` as its deadline unless it has its own), and the error
    /// naming the component is returned. A registry starts once.
    pub async fn start_all(&self, start_deadline: Duration) -> Result<(), StartError> {
        if self.shared.started.load(Ordering::Acquire) {
            return Err(StartError::AlreadyStarted);
        }
        let entries = self.entries();
        let graph = with_data_flow_edges(&entries, build_graph(&entries)?);
        if self.shared.started.swap(true, Ordering::AcqRel) {
            return Err(StartError::AlreadyStarted);
        }
        let mut pending: Vec<usize> = graph.deps.iter().map(Vec::len).collect();
        let mut set = JoinSet::new();
        let mut ids = HashMap::new();
        let spawn = |set: &mut JoinSet<_>, ids: &mut HashMap<_, _>, i: usize| {
            let entry = Arc::clone(&entries[i]);
            let h = set.spawn(start_one(entry, start_deadline));
            ids.insert(h.id(), i);
        };
        let roots: Vec<usize> = (0..entries.len()).filter(|&i| pending[i] == 0).collect();
        for i in roots {
            spawn(&mut set, &mut ids, i);
        }
        let mut failure: Option<StartError> = None;
        while let Some(joined) = set.join_next_with_id().await {
            let (i, result) = match joined {
                Ok((id, r)) => (ids[&id], r),
                Err(e) => {
                    let i = ids[&e.id()];
                    let component = entries[i].slot().name.clone();
                    (
                        i,
                        Err(StartError::Panicked {
                            component,
                            message: e.to_string(),
                        }),
                    )
                }
            };
            match result {
                Ok(()) if failure.is_none() => {
                    for &k in &graph.dependents[i] {
                        pending[k] -= 1;
                        if pending[k] == 0 {
                            spawn(&mut set, &mut ids, k);
                        }
                    }
                }
                Ok(()) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            None => Ok(()),
            Some(err) => {
                tracing::error!(error = %err, "start failed; rolling back");
                let report = self.stop_all(start_deadline).await;
                tracing::info!(rolled_back = report.components.len(), "rollback done");
                Err(err)
            }
        }
    }

    /// Stop every started component: the producers first; then the intake hooks
    /// ([`Component::stop_intake`]) of the services and observers; then the services;
    /// the observers last. Within each phase, each once the components of the phase that
    /// depend on it are done (independent ones concurrently). Each stop (and intake
    /// hook) has `stop_deadline`, or the component's own
    /// ([`Component::stop_deadline`]); one that misses it is abandoned and marked failed,
    /// and the others still stop. Components already stopped are not stopped again.
    pub async fn stop_all(&self, stop_deadline: Duration) -> StopReport {
        let sink = Mutex::new(Vec::new());
        let intake = Mutex::new(Vec::new());
        self.stop_where(|k| k == ComponentKind::Producer, stop_deadline, &sink)
            .await;
        self.intake_where(|k| k != ComponentKind::Producer, stop_deadline, &intake)
            .await;
        self.stop_where(|k| k != ComponentKind::Observer, stop_deadline, &sink)
            .await;
        self.stop_where(|_| true, stop_deadline, &sink).await;
        StopReport {
            components: sink.into_inner().unwrap_or_else(PoisonError::into_inner),
            intake: intake.into_inner().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Stop the started, not yet stopped components whose kind passes `filter`, in
    /// reverse dependency order among them. Each line is also pushed to `sink` as soon as
    /// it is known.
    pub(crate) async fn stop_where(
        &self,
        filter: impl Fn(ComponentKind) -> bool,
        deadline: Duration,
        sink: &Mutex<Vec<ComponentStopReport>>,
    ) -> StopReport {
        self.walk_reverse(
            |e| {
                filter(e.kind)
                    && e.slot().started.load(Ordering::Acquire)
                    && !e.slot().stop_claimed.swap(true, Ordering::AcqRel)
            },
            |e| stop_one(e, deadline),
            sink,
        )
        .await
    }

    /// Call `stop_intake` of the started, not yet stopping components whose kind passes
    /// `filter` (each at most once), in reverse dependency order among them. Each line is
    /// also pushed to `sink` as soon as it is known.
    pub(crate) async fn intake_where(
        &self,
        filter: impl Fn(ComponentKind) -> bool,
        deadline: Duration,
        sink: &Mutex<Vec<ComponentStopReport>>,
    ) -> StopReport {
        self.walk_reverse(
            |e| {
                filter(e.kind)
                    && e.slot().started.load(Ordering::Acquire)
                    && !e.slot().stop_claimed.load(Ordering::Acquire)
                    && !e.slot().intake_claimed.swap(true, Ordering::AcqRel)
            },
            |e| intake_one(e, deadline),
            sink,
        )
        .await
    }

    /// Run `op` on the entries `choose` picks, each once every chosen entry depending on
    /// it is done (reverse dependency order), independent ones concurrently.
    async fn walk_reverse<Fut>(
        &self,
        choose: impl Fn(&Entry) -> bool,
        op: impl Fn(Arc<Entry>) -> Fut,
        sink: &Mutex<Vec<ComponentStopReport>>,
    ) -> StopReport
    where
        Fut: std::future::Future<Output = ComponentStopReport> + Send + 'static,
    {
        let entries = self.entries();
        let Ok(graph) = build_graph(&entries) else {
            return StopReport::default();
        };
        let chosen: Vec<bool> = entries.iter().map(|e| choose(e)).collect();
        let mut pending: Vec<usize> = (0..entries.len())
            .map(|i| graph.dependents[i].iter().filter(|&&k| chosen[k]).count())
            .collect();
        let mut set = JoinSet::new();
        let mut ids = HashMap::new();
        let spawn = |set: &mut JoinSet<_>, ids: &mut HashMap<_, _>, i: usize| {
            let h = set.spawn(op(Arc::clone(&entries[i])));
            ids.insert(h.id(), i);
        };
        for i in 0..entries.len() {
            if chosen[i] && pending[i] == 0 {
                spawn(&mut set, &mut ids, i);
            }
        }
        let mut report = StopReport::default();
        while let Some(joined) = set.join_next_with_id().await {
            let (i, line) = match joined {
                Ok((id, line)) => (ids[&id], line),
                Err(e) => {
                    let i = ids[&e.id()];
                    let line = ComponentStopReport {
                        name: entries[i].slot().name.clone(),
                        outcome: StopOutcome::Failed(e.to_string()),
                        stop_ms: 0,
                    };
                    (i, line)
                }
            };
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line.clone());
            report.components.push(line);
            for &d in &graph.deps[i] {
                if chosen[d] {
                    pending[d] -= 1;
                    if pending[d] == 0 {
                        spawn(&mut set, &mut ids, d);
                    }
                }
            }
        }
        report
    }

    /// Names of the components that started and whose stop has not been reported in
    /// `done`.
    pub(crate) fn not_stopped(&self, done: &[ComponentStopReport]) -> Vec<String> {
        self.entries()
            .iter()
            .map(|e| e.slot())
            .filter(|s| s.started.load(Ordering::Acquire))
            .filter(|s| !done.iter().any(|d| d.name == s.name))
            .map(|s| s.name.clone())
            .collect()
    }

    /// True if any component is in state `Failed`.
    pub fn any_failed(&self) -> bool {
        self.entries()
            .iter()
            .any(|e| e.slot().state() == LifecycleState::Failed)
    }
}

async fn start_one(entry: Arc<Entry>, deadline: Duration) -> Result<(), StartError> {
    let slot = entry.slot();
    let name = slot.name.clone();
    slot.transition(LifecycleState::Starting, None);
    let started = Instant::now();
    let result = tokio::time::timeout(
        deadline,
        CatchUnwind::new(entry.component.start(&entry.ctx)),
    )
    .await;
    let error = match result {
        Ok(Ok(Ok(()))) => {
            slot.started.store(true, Ordering::Release);
            let to = if slot.backing_off.load(Ordering::Acquire) > 0 {
                LifecycleState::Degraded
            } else {
                LifecycleState::Running
            };
            slot.transition(to, None);
            tracing::debug!(component = %name, ms = started.elapsed().as_millis() as u64, "started");
            return Ok(());
        }
        Ok(Ok(Err(source))) => StartError::Failed {
            component: name,
            source,
        },
        Ok(Err(panic)) => StartError::Panicked {
            component: name,
            message: panic_message(&*panic),
        },
        Err(_) => StartError::Timeout {
            component: name,
            deadline,
        },
    };
    let inner = entry.ctx.inner();
    inner.cancel.cancel();
    inner.tracker.close();
    slot.set_last_error(error.to_string());
    slot.transition(LifecycleState::Failed, Some(error.to_string()));
    Err(error)
}

async fn intake_one(entry: Arc<Entry>, deadline: Duration) -> ComponentStopReport {
    let slot = entry.slot();
    let deadline = entry.stop_deadline.unwrap_or(deadline);
    let began = Instant::now();
    let result = tokio::time::timeout(
        deadline,
        CatchUnwind::new(entry.component.stop_intake(&entry.ctx)),
    )
    .await;
    let failed = |msg: String| {
        tracing::error!(component = %slot.name, error = %msg, "stop_intake failed");
        slot.set_last_error(msg.clone());
        StopOutcome::Failed(msg)
    };
    let outcome = match result {
        Ok(Ok(Ok(()))) => StopOutcome::Stopped,
        Ok(Ok(Err(e))) => failed(format!("stop_intake failed: {e}")),
        Ok(Err(panic)) => failed(format!("stop_intake panicked: {}", panic_message(&*panic))),
        Err(_) => {
            let msg = format!("stop_intake did not finish within {deadline:?}: abandoned");
            tracing::error!(component = %slot.name, error = %msg, "stop_intake abandoned");
            slot.set_last_error(msg);
            StopOutcome::Abandoned
        }
    };
    ComponentStopReport {
        name: slot.name.clone(),
        outcome,
        stop_ms: began.elapsed().as_millis() as u64,
    }
}

async fn stop_one(entry: Arc<Entry>, deadline: Duration) -> ComponentStopReport {
    let slot = entry.slot();
    let deadline = entry.stop_deadline.unwrap_or(deadline);
    let began = Instant::now();
    let failed_before = if slot.state() == LifecycleState::Failed {
        Some(slot.last_error().unwrap_or_else(|| "failed".into()))
    } else {
        slot.transition(LifecycleState::Stopping, None);
        None
    };
    let inner = entry.ctx.inner();
    inner.cancel.cancel();
    inner.tracker.close();
    let work = async {
        inner.tracker.wait().await;
        CatchUnwind::new(entry.component.stop(&entry.ctx)).await
    };
    let outcome = match tokio::time::timeout(deadline, work).await {
        Ok(Ok(Ok(()))) => match failed_before {
            None => {
                slot.transition(LifecycleState::Stopped, None);
                StopOutcome::Stopped
            }
            Some(e) => StopOutcome::Failed(format!("failed before stop: {e}")),
        },
        Ok(Ok(Err(e))) => fail(slot, format!("stop failed: {e}")),
        Ok(Err(panic)) => fail(slot, format!("stop panicked: {}", panic_message(&*panic))),
        Err(_) => {
            let msg = format!("did not stop within {deadline:?}: abandoned");
            slot.set_last_error(msg.clone());
            slot.transition(LifecycleState::Failed, Some(msg));
            StopOutcome::Abandoned
        }
    };
    ComponentStopReport {
        name: slot.name.clone(),
        outcome,
        stop_ms: began.elapsed().as_millis() as u64,
    }
}

fn fail(slot: &Slot, msg: String) -> StopOutcome {
    slot.set_last_error(msg.clone());
    slot.transition(LifecycleState::Failed, Some(msg.clone()));
    StopOutcome::Failed(msg)
}
