//! Kill switch: an order gate that closes synchronously, scoped and audited.
//!
//! (Contract types first; the implementation lives beside them.)

use serde::{Deserialize, Serialize};

/// What a kill-switch trigger covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Scope {
    /// Every venue, strategy and instrument.
    All,
    /// One venue (exchange), by name.
    Venue(String),
    /// One strategy, by name.
    Strategy(String),
    /// One instrument, by symbol.
    Instrument(String),
}

/// What a trigger does to the orders in its scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Cancel open orders and refuse new ones.
    Halt,
    /// Only orders that shrink a position pass.
    ReduceOnly,
    /// Cancel open orders, then close positions with risk-checked orders; new opening
    /// orders are refused.
    Flatten,
}

/// The order an order gate is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// Venue (exchange) name.
    pub venue: &'a str,
    /// Strategy name.
    pub strategy: &'a str,
    /// Instrument symbol.
    pub instrument: &'a str,
}

/// What the gate says for a [`Target`]: the strictest mode of every active trigger whose
/// scope covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateState {
    /// No trigger covers the target: orders pass (subject to risk checks).
    Open,
    /// Only position-reducing orders pass.
    ReduceOnly,
    /// Only position-reducing orders pass, and the owner should flatten the position.
    Flatten,
    /// Nothing passes.
    Halted,
}
