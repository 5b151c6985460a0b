//! [`EngineBuilder`]: strategies, venues, policy and the panic policy of an engine.

use rustc_hash::FxHashMap;
use std::time::Instant;

use switchyard::breaker::Breaker;
use switchyard::bus::NanoHistogram;
use switchyard::kill_switch::{KillPolicy, KillSwitch};
use switchyard::{Bus, Timestamp, Topic};

use super::slot::{StrategyPanic, StrategySlot, Topics};
use super::{EngineCore, EngineStats, VenueSlot};
use crate::model::StrategyId;
use crate::portfolio::Portfolio;
use crate::risk::{InvalidLimit, RiskGuard, RiskLimits};
use crate::strategy::{Strategy, StrategyContext};
use crate::venue::ExecutionVenue;

/// Why an engine cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Two strategies with one id.
    #[error("strategy {0:?} is added twice (strategy names must be unique)")]
    DuplicateStrategy(String),
    /// Two venues with one name.
    #[error("venue {0:?} is added twice")]
    DuplicateVenue(String),
    /// A strategy id that cannot be part of a topic.
    #[error("strategy {name:?}: not a valid name ({source})")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        source: switchyard::TopicError,
    },
    /// Bad per-strategy limits.
    #[error("strategy {strategy:?}: risk.{}: {}", .source.field, .source.reason)]
    Limits {
        /// The strategy.
        strategy: String,
        /// The bad limit.
        source: InvalidLimit,
    },
    /// An engine needs at least one strategy and one venue.
    #[error("the engine has no {0}")]
    Missing(&'static str),
}

/// Builds an [`EngineCore`].
pub struct EngineBuilder {
    pub(super) bus: Bus,
    pub(super) kill_switch: KillSwitch,
    pub(super) guard: RiskGuard,
    pub(super) policy: Option<KillPolicy>,
    pub(super) strategies: Vec<StrategySlot>,
    pub(super) venues: Vec<VenueSlot>,
    pub(super) on_panic: StrategyPanic,
    pub(super) epoch: Instant,
}

impl EngineBuilder {
    /// The `Instant` that the first event's time maps to: event time `t` is
    /// `epoch + (t − first event's time)` for the order-rate throttle and the policy.
    /// Give the policy the same instant as its start ([`KillPolicy::new`]) so that
    /// "no data since the start" is measured from the first event, not from when the
    /// process happened to start — a run and its replay then decide alike however long
    /// either took to start.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// What a strategy's panic halts (default: its own scope).
    pub fn on_strategy_panic(mut self, on_panic: StrategyPanic) -> Self {
        self.on_panic = on_panic;
        self
    }

    /// The kill-switch policy (automatic triggers) the engine feeds.
    pub fn policy(mut self, policy: KillPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Adds a venue named `name` (the [`InstrumentId::venue`] of what it trades), with the
    /// breaker in front of it.
    pub fn venue(
        mut self,
        name: impl Into<String>,
        venue: Box<dyn ExecutionVenue>,
        breaker: Breaker,
    ) -> Result<Self, EngineError> {
        let name = name.into();
        if self.venues.iter().any(|v| v.name == name) {
            return Err(EngineError::DuplicateVenue(name));
        }
        self.venues.push(VenueSlot {
            name,
            venue,
            breaker,
        });
        Ok(self)
    }

    /// Adds a strategy, with optional limits of its own on top of the global ones.
    pub fn strategy(
        mut self,
        strategy: Box<dyn Strategy + Send>,
        limits: Option<RiskLimits>,
    ) -> Result<Self, EngineError> {
        let name = strategy.name().to_owned();
        if self.strategies.iter().any(|s| s.id.as_str() == name) {
            return Err(EngineError::DuplicateStrategy(name));
        }
        let topic = |prefix: &str| {
            Topic::new(&format!("{prefix}.{name}")).map_err(|source| EngineError::InvalidName {
                name: name.clone(),
                source,
            })
        };
        let topics = Topics {
            request: topic("orders.request")?,
            rejected: topic("orders.rejected")?,
            event: topic("orders.event")?,
        };
        let limits =
            limits
                .map(RiskGuard::new)
                .transpose()
                .map_err(|source| EngineError::Limits {
                    strategy: name.clone(),
                    source,
                })?;
        let id = StrategyId::new(&name);
        let mut ctx = StrategyContext::new(id.clone());
        ctx.attach_kill_switch(self.kill_switch.clone());
        self.strategies.push(StrategySlot {
            id,
            strategy,
            ctx,
            limits,
            book: Portfolio::new(),
            stats: EngineStats::default(),
            topics,
            loss_tripped: false,
            panicked: None,
        });
        Ok(self)
    }

    /// The engine.
    pub fn build(self) -> Result<EngineCore, EngineError> {
        if self.strategies.is_empty() {
            return Err(EngineError::Missing("strategy"));
        }
        if self.venues.is_empty() {
            return Err(EngineError::Missing("venue"));
        }
        Ok(EngineCore {
            strategies: self.strategies,
            venues: self.venues,
            guard: self.guard,
            kill_switch: self.kill_switch,
            policy: self.policy,
            open: FxHashMap::default(),
            market_events: 0,
            kill_switch_trips: 0,
            errors: std::collections::BTreeMap::new(),
            loss_tripped: false,
            tick_to_order: NanoHistogram::new(),
            epoch: None,
            last_ts: Timestamp::ZERO,
            bus: self.bus,
            on_panic: self.on_panic,
            epoch_instant: self.epoch,
            flattens: Vec::new(),
        })
    }
}
