//! Strategies chosen by configuration: a registry of named factories, and what a factory
//! is given — one `[[strategy]]` entry.
//!
//! ```
//! use switchyard_node::strategies::{StrategyConfig, StrategyConfigError, StrategyRegistry};
//! use switchyard_trading::model::MarketEvent;
//! use switchyard_trading::strategy::{Strategy, StrategyContext};
//!
//! struct Quiet { name: String }
//! impl Strategy for Quiet {
//!     fn name(&self) -> &str { &self.name }
//!     fn on_market_data(&mut self, _: &MarketEvent, _: &mut StrategyContext) {}
//! }
//!
//! let mut registry = StrategyRegistry::with_builtins();
//! registry.register("quiet", |cfg: &StrategyConfig| -> Result<Quiet, StrategyConfigError> {
//!     Ok(Quiet { name: cfg.name().to_owned() })
//! });
//! assert!(registry.kinds().contains(&"quiet"));
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use switchyard_trading::model::InstrumentId;
use switchyard_trading::num::Quantity;
use switchyard_trading::strategy::{CrossoverConfig, MovingAverageCrossover, Strategy};

use crate::config::StrategyEntry;

/// A bad `[[strategy]]` entry: names the entry (index and name) and, when it is about
/// one, the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("strategy[{index}] ({name}){}: {message}", key.as_ref().map(|k| format!(".{k}")).unwrap_or_default())]
pub struct StrategyConfigError {
    /// Position in the `[[strategy]]` list.
    pub index: usize,
    /// The entry's name.
    pub name: String,
    /// The key, when the error is about one.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// One `[[strategy]]` entry, as a factory sees it.
#[derive(Clone, Debug)]
pub struct StrategyConfig {
    index: usize,
    entry: StrategyEntry,
}

impl StrategyConfig {
    /// Entry `index` of the list.
    pub fn new(index: usize, entry: StrategyEntry) -> Self {
        StrategyConfig { index, entry }
    }

    /// The strategy's id (its name in the configuration).
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// The factory's kind.
    pub fn kind(&self) -> &str {
        &self.entry.kind
    }

    /// The instrument it trades (`venue` and `symbol`).
    pub fn instrument(&self) -> InstrumentId {
        self.entry.instrument()
    }

    /// The kind's own keys, as `T` (give `T` `#[serde(deny_unknown_fields)]` so that a
    /// misspelt key is an error that names it).
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, StrategyConfigError> {
        toml::Value::Table(self.entry.params.clone())
            .try_into()
            .map_err(|e: toml::de::Error| self.error(None, e.message()))
    }

    /// One key of the kind's own, required.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, StrategyConfigError> {
        let v = self
            .entry
            .params
            .get(key)
            .ok_or_else(|| self.error(Some(key), "missing"))?;
        v.clone()
            .try_into()
            .map_err(|e: toml::de::Error| self.error(Some(key), e.message()))
    }

    /// One key of the kind's own, `default` when absent.
    pub fn get_or<T: DeserializeOwned>(
        &self,
        key: &str,
        default: T,
    ) -> Result<T, StrategyConfigError> {
        match self.entry.params.contains_key(key) {
            true => self.get(key),
            false => Ok(default),
        }
    }

    /// An error about this entry (and `key`).
    pub fn error(&self, key: Option<&str>, message: impl Into<String>) -> StrategyConfigError {
        StrategyConfigError {
            index: self.index,
            name: self.entry.name.clone(),
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// Builds a strategy from its entry.
pub type StrategyFactory = Arc<
    dyn Fn(&StrategyConfig) -> Result<Box<dyn Strategy + Send>, StrategyConfigError> + Send + Sync,
>;

/// Strategy factories by kind.
#[derive(Clone, Default)]
pub struct StrategyRegistry {
    factories: BTreeMap<String, StrategyFactory>,
}

impl std::fmt::Debug for StrategyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

impl StrategyRegistry {
    /// No factories.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in kinds: `ma_crossover` ([`MovingAverageCrossover`]).
    pub fn with_builtins() -> Self {
        let mut r = Self::new();
        r.register("ma_crossover", ma_crossover);
        r
    }

    /// Registers (or replaces) the factory of `kind`.
    pub fn register<S, F>(&mut self, kind: &str, factory: F) -> &mut Self
    where
        S: Strategy + Send + 'static,
        F: Fn(&StrategyConfig) -> Result<S, StrategyConfigError> + Send + Sync + 'static,
    {
        self.factories.insert(
            kind.to_owned(),
            Arc::new(move |cfg| factory(cfg).map(|s| Box::new(s) as Box<dyn Strategy + Send>)),
        );
        self
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    /// Builds the strategy of `cfg`, checking that it took the entry's name.
    pub fn build(
        &self,
        cfg: &StrategyConfig,
    ) -> Result<Box<dyn Strategy + Send>, StrategyConfigError> {
        let factory = self.factories.get(cfg.kind()).ok_or_else(|| {
            cfg.error(
                Some("kind"),
                format!(
                    "{:?} is not a registered strategy kind (registered: {})",
                    cfg.kind(),
                    self.kinds().join(", ")
                ),
            )
        })?;
        let s = factory(cfg)?;
        if s.name() != cfg.name() {
            return Err(cfg.error(
                Some("name"),
                format!(
                    "the {:?} factory built a strategy named {:?}",
                    cfg.kind(),
                    s.name()
                ),
            ));
        }
        Ok(s)
    }
}

/// The keys of `kind = "ma_crossover"`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CrossoverParams {
    fast: usize,
    slow: usize,
    max_position: Quantity,
    #[serde(default)]
    allow_short: bool,
}

fn ma_crossover(cfg: &StrategyConfig) -> Result<MovingAverageCrossover, StrategyConfigError> {
    let p: CrossoverParams = cfg.params()?;
    MovingAverageCrossover::new(CrossoverConfig {
        name: cfg.name().into(),
        instrument: cfg.instrument(),
        fast: p.fast,
        slow: p.slow,
        max_position: p.max_position,
        allow_short: p.allow_short,
    })
    .map_err(|e| cfg.error(Some(e.field), e.reason))
}
