//! [`KillPolicy`]: automatic trigger rules, decided synchronously.
//!
//! The policy only decides: its methods take observations (with explicit [`Instant`]s)
//! and return the [`TriggerRequest`]s to pass to [`KillSwitch::trigger`]. Each rule fires
//! once, then stays quiet until [`KillPolicy::rearm`] (typically after an operator reset),
//! so a persisting condition does not flood the audit. The stale-market-data rule without
//! a fixed scope fires once per instrument.
//!
//! [`KillSwitch::trigger`]: super::KillSwitch::trigger

use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::switch::TriggerRequest;
use super::{Mode, Scope};
use crate::breaker::duration_format;

/// Trigger when the PnL observed for `watch` falls to `−max_loss` or below.
///
/// PnL is an integer in minor units (e.g. cents, or the instrument's price-tick units):
/// exact, no floating-point comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossLimitRule {
    /// The scope whose PnL is watched (matched against [`KillPolicy::observe_pnl`]'s
    /// scope).
    pub watch: Scope,
    /// The largest tolerated loss, in minor units (> 0).
    pub max_loss: i64,
    /// What to trigger; default: the watched scope.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// The mode to trigger with.
    pub mode: Mode,
}

/// Trigger when more than `max_events` events happen within `window`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    /// Events tolerated within the window (≥ 1); one more fires the rule.
    pub max_events: u32,
    /// The sliding window.
    #[serde(with = "duration_format")]
    pub window: Duration,
    /// What to trigger.
    pub scope: Scope,
    /// The mode to trigger with.
    pub mode: Mode,
}

/// Trigger when a circuit breaker has stayed open for `max_open` or longer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerOpenRule {
    /// How long a breaker may stay open.
    #[serde(with = "duration_format")]
    pub max_open: Duration,
    /// The breakers watched, by name; empty: all.
    #[serde(default)]
    pub breakers: Vec<String>,
    /// What to trigger.
    pub scope: Scope,
    /// The mode to trigger with.
    pub mode: Mode,
}

/// Trigger when a watched instrument has had no market data for `max_silence`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaleDataRule {
    /// The longest tolerated silence.
    #[serde(with = "duration_format")]
    pub max_silence: Duration,
    /// The instruments watched (at least one).
    pub instruments: Vec<String>,
    /// What to trigger; default: the stale instrument (and then the rule fires once per
    /// instrument).
    #[serde(default)]
    pub scope: Option<Scope>,
    /// The mode to trigger with.
    pub mode: Mode,
}

/// Trigger when a component escalates (e.g. its supervisor gave up restarting it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationRule {
    /// The components watched, by name; empty: all.
    #[serde(default)]
    pub components: Vec<String>,
    /// What to trigger.
    pub scope: Scope,
    /// The mode to trigger with.
    pub mode: Mode,
}

/// The rules of a [`KillPolicy`]; every rule is optional. Unknown fields are rejected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KillPolicyConfig {
    /// Loss limits, each watching one scope.
    pub loss_limits: Vec<LossLimitRule>,
    /// Order rejections above a rate.
    pub rejection_rate: Option<RateRule>,
    /// Errors above a rate.
    pub error_rate: Option<RateRule>,
    /// A breaker open too long.
    pub breaker_open: Option<BreakerOpenRule>,
    /// Stale market data.
    pub stale_market_data: Option<StaleDataRule>,
    /// A component escalated.
    pub escalation: Option<EscalationRule>,
}

/// A [`KillPolicyConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyConfigError {
    /// A field has a value the policy cannot work with.
    #[error("invalid kill policy config: `{field}` {problem}")]
    Invalid {
        /// The field, e.g. `"loss_limits[0].max_loss"`.
        field: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

fn invalid(field: impl Into<String>, problem: &'static str) -> Result<(), PolicyConfigError> {
    Err(PolicyConfigError::Invalid {
        field: field.into(),
        problem,
    })
}

impl KillPolicyConfig {
    /// The names of the rules configured (`loss_limits` once however many), in field order.
    pub fn configured_rules(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.loss_limits.is_empty() {
            out.push("loss_limits");
        }
        for (name, set) in [
            ("rejection_rate", self.rejection_rate.is_some()),
            ("error_rate", self.error_rate.is_some()),
            ("breaker_open", self.breaker_open.is_some()),
            ("stale_market_data", self.stale_market_data.is_some()),
            ("escalation", self.escalation.is_some()),
        ] {
            if set {
                out.push(name);
            }
        }
        out
    }

    /// Check the configuration; the error names the offending field.
    pub fn validate(&self) -> Result<(), PolicyConfigError> {
        for (i, rule) in self.loss_limits.iter().enumerate() {
            if rule.max_loss <= 0 {
                return invalid(
                    format!("loss_limits[{i}].max_loss"),
                    "must be greater than zero",
                );
            }
        }
        for (name, rule) in [
            ("rejection_rate", &self.rejection_rate),
            ("error_rate", &self.error_rate),
        ] {
            if let Some(rule) = rule {
                if rule.max_events == 0 {
                    return invalid(format!("{name}.max_events"), "must be at least 1");
                }
                if rule.window.is_zero() {
                    return invalid(format!("{name}.window"), "must be greater than zero");
                }
            }
        }
        if let Some(rule) = &self.breaker_open
            && rule.max_open.is_zero()
        {
            return invalid("breaker_open.max_open", "must be greater than zero");
        }
        if let Some(rule) = &self.stale_market_data {
            if rule.max_silence.is_zero() {
                return invalid("stale_market_data.max_silence", "must be greater than zero");
            }
            if rule.instruments.is_empty() {
                return invalid(
                    "stale_market_data.instruments",
                    "must name at least one instrument",
                );
            }
        }
        Ok(())
    }
}

/// Events within a sliding time window; keeps at most `max_events + 1` instants.
#[derive(Debug)]
struct RateTracker {
    max_events: usize,
    window: Duration,
    events: VecDeque<Instant>,
}

impl RateTracker {
    fn new(rule: &RateRule) -> Self {
        RateTracker {
            max_events: rule.max_events as usize,
            window: rule.window,
            events: VecDeque::with_capacity(rule.max_events as usize + 1),
        }
    }

    /// Record an event; returns how many fell in the window if that is over the limit.
    fn observe(&mut self, now: Instant) -> Option<usize> {
        while let Some(&first) = self.events.front() {
            if now.saturating_duration_since(first) >= self.window {
                self.events.pop_front();
            } else {
                break;
            }
        }
        if self.events.len() > self.max_events {
            self.events.pop_front();
        }
        self.events.push_back(now);
        (self.events.len() > self.max_events).then_some(self.events.len())
    }
}

const SOURCE: &str = "kill-policy";

/// Automatic kill-switch triggers, decided synchronously.
///
/// The policy only decides: its methods take observations (with explicit [`Instant`]s)
/// and return the [`TriggerRequest`]s to pass to
/// [`KillSwitch::trigger`](super::KillSwitch::trigger). Each rule fires once, then stays
/// quiet until [`rearm`](Self::rearm) (typically after an operator reset), so a
/// persisting condition does not flood the audit. The stale-market-data rule without a
/// fixed scope fires once per instrument.
#[derive(Debug)]
pub struct KillPolicy {
    config: KillPolicyConfig,
    loss_fired: Vec<bool>,
    rejections: Option<RateTracker>,
    rejection_fired: bool,
    errors: Option<RateTracker>,
    error_fired: bool,
    open_breakers: FxHashMap<String, Instant>,
    breaker_fired: bool,
    last_data: FxHashMap<String, Instant>,
    stale_fired: FxHashSet<String>,
    escalation_fired: bool,
}

impl KillPolicy {
    /// A policy with every rule armed. `now` is when watching starts: a watched
    /// instrument that never sends data is stale `max_silence` after it.
    pub fn new(config: KillPolicyConfig, now: Instant) -> Result<Self, PolicyConfigError> {
        config.validate()?;
        let last_data = config
            .stale_market_data
            .iter()
            .flat_map(|r| r.instruments.iter().map(|i| (i.clone(), now)))
            .collect();
        Ok(KillPolicy {
            loss_fired: vec![false; config.loss_limits.len()],
            rejections: config.rejection_rate.as_ref().map(RateTracker::new),
            rejection_fired: false,
            errors: config.error_rate.as_ref().map(RateTracker::new),
            error_fired: false,
            open_breakers: FxHashMap::default(),
            breaker_fired: false,
            last_data,
            stale_fired: FxHashSet::default(),
            escalation_fired: false,
            config,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &KillPolicyConfig {
        &self.config
    }

    /// Arm every rule again (observations so far are kept: a condition that still holds
    /// fires at the next observation or evaluation).
    pub fn rearm(&mut self) {
        self.loss_fired.iter_mut().for_each(|f| *f = false);
        self.rejection_fired = false;
        self.error_fired = false;
        self.breaker_fired = false;
        self.stale_fired.clear();
        self.escalation_fired = false;
    }

    /// The PnL of `scope` is now `pnl` (minor units). Returns a trigger for every armed
    /// loss limit watching `scope` that is breached (`pnl ≤ −max_loss`).
    pub fn observe_pnl(&mut self, scope: &Scope, pnl: i64) -> Vec<TriggerRequest> {
        let mut out = Vec::new();
        for (rule, fired) in self.config.loss_limits.iter().zip(&mut self.loss_fired) {
            if *fired || rule.watch != *scope || pnl > -rule.max_loss {
                continue;
            }
            *fired = true;
            out.push(TriggerRequest {
                scope: rule.scope.clone().unwrap_or_else(|| rule.watch.clone()),
                mode: rule.mode,
                reason: format!(
                    "loss limit breached: pnl {pnl} <= -{} (minor units) for {:?}",
                    rule.max_loss, rule.watch
                ),
                source: format!("{SOURCE}/loss-limit"),
            });
        }
        out
    }

    /// An order was rejected at `now`.
    pub fn observe_rejection(&mut self, now: Instant) -> Option<TriggerRequest> {
        let rule = self.config.rejection_rate.as_ref()?;
        let count = self.rejections.as_mut()?.observe(now)?;
        if std::mem::replace(&mut self.rejection_fired, true) {
            return None;
        }
        Some(TriggerRequest {
            scope: rule.scope.clone(),
            mode: rule.mode,
            reason: format!(
                "order rejections above rate: {count} within {:?} (max {})",
                rule.window, rule.max_events
            ),
            source: format!("{SOURCE}/rejection-rate"),
        })
    }

    /// An error happened at `now`.
    pub fn observe_error(&mut self, now: Instant) -> Option<TriggerRequest> {
        let rule = self.config.error_rate.as_ref()?;
        let count = self.errors.as_mut()?.observe(now)?;
        if std::mem::replace(&mut self.error_fired, true) {
            return None;
        }
        Some(TriggerRequest {
            scope: rule.scope.clone(),
            mode: rule.mode,
            reason: format!(
                "errors above rate: {count} within {:?} (max {})",
                rule.window, rule.max_events
            ),
            source: format!("{SOURCE}/error-rate"),
        })
    }

    /// Breaker `name` is open since `open_since`, or not open (`None`). Checked by
    /// [`evaluate`](Self::evaluate).
    pub fn observe_breaker(&mut self, name: &str, open_since: Option<Instant>) {
        let Some(rule) = &self.config.breaker_open else {
            return;
        };
        if !rule.breakers.is_empty() && !rule.breakers.iter().any(|b| b == name) {
            return;
        }
        match open_since {
            Some(since) => {
                self.open_breakers.insert(name.to_owned(), since);
            }
            None => {
                self.open_breakers.remove(name);
            }
        }
    }

    /// Market data for `instrument` arrived at `now` (unwatched instruments are ignored).
    pub fn observe_market_data(&mut self, instrument: &str, now: Instant) {
        if let Some(last) = self.last_data.get_mut(instrument) {
            *last = (*last).max(now);
        }
    }

    /// Check the time-based rules (breaker open too long, stale market data) at `now`.
    pub fn evaluate(&mut self, now: Instant) -> Vec<TriggerRequest> {
        let mut out = Vec::new();
        if let Some(rule) = &self.config.breaker_open
            && !self.breaker_fired
        {
            let mut over: Vec<(&String, Duration)> = self
                .open_breakers
                .iter()
                .map(|(name, since)| (name, now.saturating_duration_since(*since)))
                .filter(|(_, open)| *open >= rule.max_open)
                .collect();
            if !over.is_empty() {
                over.sort();
                self.breaker_fired = true;
                let names: Vec<String> = over
                    .iter()
                    .map(|(n, d)| format!("`{n}` open for {d:?}"))
                    .collect();
                out.push(TriggerRequest {
                    scope: rule.scope.clone(),
                    mode: rule.mode,
                    reason: format!(
                        "circuit breaker open too long (max {:?}): {}",
                        rule.max_open,
                        names.join(", ")
                    ),
                    source: format!("{SOURCE}/breaker-open"),
                });
            }
        }
        if let Some(rule) = &self.config.stale_market_data {
            for instrument in &rule.instruments {
                let Some(last) = self.last_data.get(instrument) else {
                    continue;
                };
                let silence = now.saturating_duration_since(*last);
                if silence < rule.max_silence {
                    continue;
                }
                let key = if rule.scope.is_some() {
                    ""
                } else {
                    instrument.as_str()
                };
                if !self.stale_fired.insert(key.to_owned()) {
                    continue;
                }
                out.push(TriggerRequest {
                    scope: rule
                        .scope
                        .clone()
                        .unwrap_or_else(|| Scope::Instrument(instrument.clone())),
                    mode: rule.mode,
                    reason: format!(
                        "stale market data: no data for `{instrument}` for {silence:?} (max {:?})",
                        rule.max_silence
                    ),
                    source: format!("{SOURCE}/stale-market-data"),
                });
            }
        }
        out
    }

    /// Component `component` escalated (gave up, failed for good).
    pub fn on_escalation(&mut self, component: &str) -> Option<TriggerRequest> {
        let rule = self.config.escalation.as_ref()?;
        if !rule.components.is_empty() && !rule.components.iter().any(|c| c == component) {
            return None;
        }
        if std::mem::replace(&mut self.escalation_fired, true) {
            return None;
        }
        Some(TriggerRequest {
            scope: rule.scope.clone(),
            mode: rule.mode,
            reason: format!("component `{component}` escalated"),
            source: format!("{SOURCE}/escalation"),
        })
    }
}
