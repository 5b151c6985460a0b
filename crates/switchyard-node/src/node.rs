//! [`Node`]: the parts composed as lifecycle components and run by the runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use switchyard::breaker::Breaker;
use switchyard::clock::ManualClock;
use switchyard::control::ControlEvent;
use switchyard::kill_switch::{KillPolicy, KillSwitch, OperatorSecret, SecretError};
use switchyard::lifecycle::{ComponentKind, Registry, Runtime, RuntimeConfig, ShutdownTrigger};
use switchyard::{Bus, Timestamp};
use switchyard_journal::{Pace, ReadFilter};
use switchyard_trading::engine::EngineCore;
use switchyard_trading::exchange::{ExchangeConfig, PaperExchange};
use switchyard_trading::feed::{
    FeedSource, FeedStats, FileSpec, ReplayOptions, SimConfig, SimInstrument,
};
use switchyard_trading::model::{Instrument, InstrumentId};
use switchyard_trading::risk::{RiskGuard, RiskLimits};
use switchyard_trading::strategy::Strategy;
use switchyard_trading::venue::ExecutionVenue;

use crate::components::bridge::BridgeComponent;
use crate::components::capture::{CaptureComponent, JournalReplayComponent};
use crate::components::engine::EngineComponent;
use crate::components::feed::FeedComponent;
use crate::components::journal::{JournalComponent, JournalPolicy, journal_config, run_dir};
use crate::components::ops::OpsComponent;
use crate::components::remote_feed::RemoteFeedComponent;
use crate::components::status::StatusLines;
use crate::config::{Config, Role};
use crate::error::NodeError;
use crate::parity::{self, Decisions};
use crate::shared::NodeShared;
use crate::strategies::{StrategyConfig, StrategyRegistry};
use crate::summary::{ReplayOutcome, RunSummary, StopReason};

/// A journal to replay instead of a feed (`switchyard replay`).
#[derive(Clone, Debug)]
pub struct ReplaySpec {
    /// The journal directory.
    pub path: PathBuf,
    /// Pace.
    pub pace: Pace,
    /// Which records.
    pub filter: ReadFilter,
    /// Compare the decisions with the journal's (only meaningful for a whole journal).
    pub compare: bool,
}

/// Composes a [`Node`]. See the [crate docs](crate).
pub struct NodeBuilder {
    config: Config,
    factories: StrategyRegistry,
    from_config: bool,
    strategies: Vec<(Box<dyn Strategy + Send>, Option<RiskLimits>)>,
    venues: Vec<(String, Box<dyn ExecutionVenue>)>,
    replay: Option<ReplaySpec>,
    journal_dir: Option<PathBuf>,
    status_lines: bool,
    on_api_bound: Option<Box<dyn Fn(SocketAddr) + Send + Sync>>,
    components: Vec<RegisterFn>,
    configured_feed: bool,
}

type RegisterFn =
    Box<dyn FnOnce(&mut Registry) -> Result<(), switchyard::lifecycle::RegistryError>>;

impl NodeBuilder {
    /// Runs without the configured feed (`run.feed`): market data comes from a producer
    /// of your own ([`NodeBuilder::component`]).
    pub fn without_feed(mut self) -> Self {
        self.configured_feed = false;
        self
    }

    /// Adds a component of your own (a custom feed as a producer, a monitor as an
    /// observer, …), run with the node's: it may depend on the node's components by name
    /// (`journal`, `trading-engine`, `nats-bridge`, …).
    pub fn component<C: switchyard::lifecycle::Component>(mut self, component: C) -> Self {
        self.components.push(Box::new(move |r: &mut Registry| {
            r.register(Arc::new(component))
        }));
        self
    }

    /// Adds a strategy written in code, with the global limits only.
    pub fn strategy<S: Strategy + Send + 'static>(mut self, strategy: S) -> Self {
        self.strategies.push((Box::new(strategy), None));
        self
    }

    /// Adds a strategy written in code, with limits of its own on top of the global ones.
    pub fn strategy_with_limits<S: Strategy + Send + 'static>(
        mut self,
        strategy: S,
        limits: RiskLimits,
    ) -> Self {
        self.strategies.push((Box::new(strategy), Some(limits)));
        self
    }

    /// The factories that resolve `[[strategy]]` entries (default: the built-ins).
    pub fn factories(mut self, factories: StrategyRegistry) -> Self {
        self.factories = factories;
        self
    }

    /// Whether the configuration's `[[strategy]]` entries are built (default true).
    pub fn strategies_from_config(mut self, yes: bool) -> Self {
        self.from_config = yes;
        self
    }

    /// Adds a venue written in code (instead of, or besides, the configured ones; a name
    /// already configured is replaced).
    pub fn venue(mut self, name: impl Into<String>, venue: Box<dyn ExecutionVenue>) -> Self {
        self.venues.push((name.into(), venue));
        self
    }

    /// Replay a journal's market data instead of running the configured feed.
    pub fn replay(mut self, spec: ReplaySpec) -> Self {
        self.replay = Some(spec);
        self
    }

    /// Journal into exactly this directory (default: a new one under `journal.dir`).
    pub fn journal_dir(mut self, dir: PathBuf) -> Self {
        self.journal_dir = Some(dir);
        self
    }

    /// Print status lines on stderr every `run.status_interval_secs` (default false).
    pub fn status_lines(mut self, yes: bool) -> Self {
        self.status_lines = yes;
        self
    }

    /// Called with the operations API's bound address once it listens.
    pub fn on_api_bound(mut self, f: impl Fn(SocketAddr) + Send + Sync + 'static) -> Self {
        self.on_api_bound = Some(Box::new(f));
        self
    }

    /// Builds every part and registers the components. Configuration errors name the
    /// entry and the key.
    pub fn build(self) -> Result<Node, NodeError> {
        self.build_inner().map_err(NodeError::from)
    }

    fn build_inner(self) -> anyhow::Result<Node> {
        let cfg = self.config;
        let kinds = self.factories.kinds();
        if self.from_config {
            cfg.validate_entries(&kinds)?;
        }
        let role = cfg.role()?;
        if role == Role::Feed
            && let Some(rule) = cfg.policy.configured_rules().first()
        {
            // Accepted and never fed would be a silent hole in the safety net: the policy
            // watches the trading engine, which a feed-role node does not run.
            anyhow::bail!(
                "policy.{rule}: a node in the feed role runs no trading engine to feed the \
                 rule; configure the policy on the strategy-role node"
            );
        }
        let replay_clock = self
            .replay
            .as_ref()
            .map(|_| Arc::new(ManualClock::new(Timestamp::ZERO)));
        let bus = match &replay_clock {
            Some(c) => Bus::with_clock(c.clone()),
            None => Bus::new(),
        };
        let kill_switch =
            KillSwitch::new(cfg.kill_switch.settings.clone(), secret(&cfg)?, bus.clock())
                .context("kill_switch")?;
        {
            let b = bus.clone();
            kill_switch.set_listener(Arc::new(move |ev| {
                b.publish_control(ControlEvent::KillSwitch(ev.clone()));
            }));
        }
        let guard = RiskGuard::new(cfg.risk.clone())
            .map_err(|e| anyhow::anyhow!("risk.{}: {}", e.field, e.reason))?;
        let engine = EngineCore::builder(bus.clone(), kill_switch.clone(), guard)
            .on_strategy_panic(cfg.run.strategy_panic);
        // The policy starts at the engine's epoch: the first event's time, not the clock.
        let policy = KillPolicy::new(cfg.policy.clone(), engine.epoch()).context("policy")?;
        let mut engine = engine.policy(policy);
        // Venues: configured paper venues, listing what the strategies trade on them.
        let mut breakers = Vec::new();
        let mut code_venues = self.venues;
        for v in &cfg.venue {
            let venue: Box<dyn ExecutionVenue> =
                match code_venues.iter().position(|(n, _)| *n == v.name) {
                    Some(i) => code_venues.remove(i).1,
                    None => {
                        let mut ex = PaperExchange::new(ExchangeConfig {
                            latency: Duration::from_millis(v.latency_ms),
                            taker_fee_bps: v.taker_fee_bps,
                            maker_fee_bps: v.maker_fee_bps,
                        });
                        if v.symbols.is_empty() {
                            // Every symbol of this venue, whoever trades it (configured or
                            // code strategies).
                            ex.list_any(v.tick, v.lot);
                        }
                        for sym in &v.symbols {
                            ex.add_instrument(Instrument::new(
                                InstrumentId::new(v.name.as_str(), sym.as_str()),
                                v.tick,
                                v.lot,
                            ));
                        }
                        Box::new(ex)
                    }
                };
            let breaker = venue_breaker(&cfg, &v.name, &bus)?;
            breakers.push(breaker.clone());
            engine = engine.venue(v.name.clone(), venue, breaker)?;
        }
        for (name, venue) in code_venues {
            let breaker = venue_breaker(&cfg, &name, &bus)?;
            breakers.push(breaker.clone());
            engine = engine.venue(name, venue, breaker)?;
        }
        if self.from_config {
            for (i, entry) in cfg.strategy.iter().enumerate() {
                let sc = StrategyConfig::new(i, entry.clone());
                let strategy = self.factories.build(&sc)?;
                engine = engine.strategy(strategy, cfg.strategy_limits(i)?)?;
            }
        }
        for (s, limits) in self.strategies {
            engine = engine.strategy(s, limits)?;
        }
        let engine = Arc::new(Mutex::new(engine.build()?));
        let registry = Registry::new(bus.clone());
        registry.set_kill_switch(kill_switch.clone());
        let shared = Arc::new(NodeShared {
            bus: bus.clone(),
            kill_switch,
            engine: Arc::clone(&engine),
            breakers,
            feed_stats: Arc::new(FeedStats::default()),
            registry: registry.clone(),
            role,
            bridge: OnceLock::new(),
            journal: OnceLock::new(),
            journal_root: Mutex::new(None),
            journal_summary: Mutex::new(None),
            feed_summary: Mutex::new(None),
            errors: Mutex::new(Vec::new()),
        });
        let mut registry = registry;
        let mut consumers: Vec<String> = Vec::new();
        if self.status_lines && cfg.run.status_interval_secs > 0 {
            registry.register(Arc::new(StatusLines::new(
                Duration::from_secs(cfg.run.status_interval_secs),
                Arc::clone(&shared),
            )))?;
        }
        let journal_dir = match (&self.journal_dir, cfg.journal.enabled, &self.replay) {
            (Some(d), _, _) => Some(d.clone()),
            (None, true, None) => Some(run_dir(&cfg.journal.dir)),
            _ => None,
        };
        if let Some(dir) = &journal_dir {
            registry.register(Arc::new(JournalComponent::new(
                journal_config(&cfg, dir.clone()),
                cfg.journal.topics.clone(),
                JournalPolicy::from_config(&cfg, dir)?,
                Arc::clone(&shared),
            )))?;
            consumers.push("journal".into());
        }
        if role != Role::Feed {
            // Live runs judge time-based rules on a timer too; a replay's time is its data.
            let timed = cfg.policy.stale_market_data.is_some() || cfg.policy.breaker_open.is_some();
            let timer = (timed && self.replay.is_none())
                .then(|| Duration::from_millis(cfg.run.policy_tick_ms.max(1)));
            registry.register(Arc::new(EngineComponent::new(
                engine,
                timer,
                cfg.run.engine_spin,
            )))?;
            consumers.push("trading-engine".into());
        }
        let decisions = Arc::new(Mutex::new(Decisions::new()));
        let mut replay = None;
        if let Some(spec) = &self.replay {
            registry.register(Arc::new(CaptureComponent::new(Arc::clone(&decisions))))?;
            let clock = replay_clock.clone().expect("replay clock");
            let c = Arc::new(JournalReplayComponent::new(
                spec.path.clone(),
                clock,
                spec.pace,
                spec.filter.clone(),
                Arc::clone(&shared),
            ));
            replay = Some((spec.clone(), Arc::clone(&c.stats)));
            registry.register(c)?;
        } else if role == Role::Strategy {
            registry.register(Arc::new(RemoteFeedComponent::new(Arc::clone(&shared))))?;
            consumers.push("remote-feed".into());
        } else if self.configured_feed {
            let source = feed_source(&cfg)?;
            let dedicated = cfg.run.feed_thread.dedicated(source.is_paced());
            registry.register(Arc::new(FeedComponent::new(
                source,
                dedicated,
                Arc::clone(&shared),
            )))?;
        }
        if let Some((builder, url)) = crate::bridge_config::bridge_for(&cfg, role, &bus) {
            let timeout = switchyard_nats::BridgeConfig::default().shutdown_timeout;
            registry.register(Arc::new(BridgeComponent::new(
                builder,
                url,
                consumers,
                timeout,
                Arc::clone(&shared),
            )))?;
        }
        for register in self.components {
            register(&mut registry)?;
        }
        if let Some(addr) = cfg.http_addr()? {
            let services: Vec<String> = registry
                .health()
                .into_iter()
                .filter(|c| c.kind == ComponentKind::Service)
                .map(|c| c.name)
                .collect();
            registry.register(Arc::new(OpsComponent::new(
                addr,
                Arc::clone(&shared),
                self.on_api_bound,
                services,
            )))?;
        }
        registry.validate()?;
        Ok(Node {
            runtime: RuntimeConfig {
                drain_deadline: Duration::from_millis(cfg.run.drain_deadline_ms),
                ..RuntimeConfig::default()
            },
            duration: cfg.duration()?,
            shared,
            journal_dir,
            replay,
            decisions,
        })
    }
}

fn venue_breaker(cfg: &Config, name: &str, bus: &Bus) -> anyhow::Result<Breaker> {
    let breaker =
        Breaker::new(name, cfg.breaker.clone()).map_err(|e| anyhow::anyhow!("breaker: {e}"))?;
    let b = bus.clone();
    breaker.on_transition(Arc::new(move |t| {
        b.publish_control(ControlEvent::Breaker(t.clone()));
    }));
    Ok(breaker)
}

/// Where the operator secret comes from: `kill_switch.secret_file`, else the environment
/// variable `kill_switch.secret_env`; none configured means resets are refused.
fn secret(cfg: &Config) -> anyhow::Result<Option<OperatorSecret>> {
    let ks = &cfg.kill_switch;
    if !ks.secret_file.is_empty() {
        return OperatorSecret::from_file(&ks.secret_file)
            .map(Some)
            .context("kill_switch.secret_file");
    }
    match OperatorSecret::from_env(&ks.secret_env) {
        Ok(s) => Ok(Some(s)),
        Err(SecretError::MissingEnv { .. }) => {
            tracing::warn!(env = %ks.secret_env, "no operator secret configured: kill-switch resets are refused");
            Ok(None)
        }
        Err(e) => Err(anyhow::Error::new(e).context("kill_switch.secret_env")),
    }
}

/// The feed source the configuration describes.
pub fn feed_source(cfg: &Config) -> anyhow::Result<FeedSource> {
    Ok(match cfg.run.feed.as_str() {
        "replay" => FeedSource::Replay {
            files: cfg.run.files.iter().map(FileSpec::new).collect(),
            options: ReplayOptions {
                policy: cfg.bad_line_policy()?,
                ..ReplayOptions::default()
            },
            speed: cfg.speed()?,
            repeat: cfg.run.repeat,
            pacing: cfg.run.pacing,
        },
        _ => FeedSource::Sim {
            config: SimConfig {
                seed: cfg.sim.seed,
                instruments: cfg
                    .sim
                    .instruments
                    .iter()
                    .map(|i| SimInstrument {
                        id: InstrumentId::new(i.venue.as_str(), i.symbol.as_str()),
                        start_mid: i.start_mid,
                        tick: i.tick,
                        spread_ticks: i.spread_ticks,
                        max_step_ticks: i.max_step_ticks,
                        lot: i.lot,
                        max_size_lots: i.max_size_lots,
                    })
                    .collect(),
                start: Timestamp::ZERO,
                interval: Duration::from_micros(cfg.sim.step_us),
                trade_per_mille: cfg.sim.trade_per_mille,
            },
            rate: Some(cfg.sim.rate).filter(|r| *r > 0),
            limit: Some(cfg.sim.limit).filter(|l| *l > 0),
            pacing: cfg.run.pacing,
        },
    })
}

/// A trading node: a [`Registry`] of components run by the lifecycle [`Runtime`]. Build
/// it with [`Node::builder`], run it with [`Node::run`].
pub struct Node {
    runtime: RuntimeConfig,
    duration: Option<Duration>,
    shared: Arc<NodeShared>,
    journal_dir: Option<PathBuf>,
    replay: Option<(
        ReplaySpec,
        Arc<Mutex<Option<switchyard_journal::ReplayStats>>>,
    )>,
    decisions: Arc<Mutex<Decisions>>,
}

impl Node {
    /// A builder on `config`: the configured strategies, venues and feed, plus what code
    /// adds.
    pub fn builder(config: Config) -> NodeBuilder {
        NodeBuilder {
            config,
            factories: StrategyRegistry::with_builtins(),
            from_config: true,
            strategies: Vec::new(),
            venues: Vec::new(),
            replay: None,
            journal_dir: None,
            status_lines: false,
            on_api_bound: None,
            components: Vec::new(),
            configured_feed: true,
        }
    }

    /// The handles the components share (bus, kill switch, engine, registry, …).
    pub fn shared(&self) -> &Arc<NodeShared> {
        &self.shared
    }

    /// The journal directory this run writes, if any.
    pub fn journal_dir(&self) -> Option<&std::path::Path> {
        self.journal_dir.as_deref()
    }

    /// Runs until the data ends, `run.duration` passes, `shutdown` resolves (a binary
    /// passes [`signals::wait_for_signal`](switchyard::lifecycle::signals::wait_for_signal))
    /// or a component asks; then shuts down in order and returns the summary.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ShutdownTrigger>,
    ) -> Result<RunSummary, NodeError> {
        let started = Instant::now();
        let shared = Arc::clone(&self.shared);
        let runtime = Runtime::new(shared.registry.clone(), shared.bus.clone(), self.runtime);
        let duration = self.duration;
        let signal = async move {
            match duration {
                Some(d) => tokio::select! {
                    t = shutdown => t,
                    _ = tokio::time::sleep(d) => ShutdownTrigger::Elapsed { after_ms: d.as_millis() as u64 },
                },
                None => shutdown.await,
            }
        };
        let report = runtime
            .run(signal)
            .await
            .map_err(|e| NodeError::from(anyhow::Error::new(e)))?;
        let errors = std::mem::take(&mut *shared.errors.lock().unwrap_or_else(|e| e.into_inner()));
        let stop = match (&report.reason, errors.is_empty()) {
            (_, false)
                if shared
                    .feed_summary
                    .lock()
                    .map(|f| f.is_none())
                    .unwrap_or(false) =>
            {
                StopReason::FeedFailed
            }
            (ShutdownTrigger::Completed { .. }, _) => StopReason::EndOfData,
            (ShutdownTrigger::Elapsed { .. }, _) => StopReason::Duration,
            (ShutdownTrigger::Signal { .. }, _) => StopReason::Signal,
            (ShutdownTrigger::Requested { reason, .. }, _)
                if reason.starts_with("feed failed") || reason.starts_with("replay failed") =>
            {
                StopReason::FeedFailed
            }
            (ShutdownTrigger::Requested { .. }, _) => StopReason::Requested,
            (ShutdownTrigger::Escalation { .. }, _) => StopReason::Escalation,
        };
        let mut feed = shared
            .feed_summary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        if shared.role == Role::Strategy || self.replay.is_some() {
            feed.published = shared.feed_stats.published.load(Ordering::Relaxed);
        }
        let replay = match &self.replay {
            Some((spec, stats)) => {
                let stats = stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or_default();
                let replayed =
                    std::mem::take(&mut *self.decisions.lock().unwrap_or_else(|e| e.into_inner()));
                let parity = if spec.compare {
                    Some(parity::compare(
                        &parity::recorded(&spec.path)
                            .map_err(|e| NodeError::from(anyhow::Error::new(e)))?,
                        &replayed,
                    ))
                } else {
                    None
                };
                Some(ReplayOutcome {
                    journal: spec.path.clone(),
                    replayed: stats.published,
                    skipped: stats.skipped,
                    parity,
                })
            }
            None => None,
        };
        let mut code = report.exit_code();
        let error = errors.first().cloned();
        if code == 0 && error.is_some() {
            code = 1;
        }
        Ok(RunSummary {
            stop,
            reason: report.reason.to_string(),
            elapsed_secs: started.elapsed().as_secs_f64(),
            feed,
            engine: shared.view(),
            kill_switch: shared.kill_switch.status(),
            bus: shared.bus.snapshot(),
            error,
            journal: shared
                .journal_summary
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            nats: shared.bridge.get().map(|b| b.stats()),
            replay,
            exit_code: code,
            shutdown: report.bus.clone(),
            report,
        })
    }
}
