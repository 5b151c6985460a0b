//! Framework control events: shutdown, lifecycle, alerts, kill switch, breakers.
//!
//! Control events travel on a separate lane of every subscription that asked for them
//! ([`crate::bus::SubscriptionBuilder::control`]): a subscription's worker checks that lane
//! before each data event, so a control event is handled ahead of any data backlog —
//! after at most the one data event whose handler is running when it arrives.

use std::sync::Arc;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::topic::Topic;

/// Severity of an [`Alert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Warning,
    /// Something is broken.
    Critical,
}

/// An operational alert raised by the framework.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Alert {
    /// A subscription under [`crate::bus::Overflow::Evict`] stayed full and was
    /// disconnected.
    SubscriberEvicted {
        /// The subscription's name.
        subscription: String,
        /// Events that were queued and are now dropped (counted as evicted).
        dropped: u64,
    },
    /// Anything else, from a component.
    Other {
        /// Severity.
        severity: Severity,
        /// Who raised it.
        source: String,
        /// What happened.
        message: String,
    },
}

/// A framework control event.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlEvent {
    /// The system is shutting down.
    Shutdown {
        /// Why.
        reason: String,
    },
    /// A component changed lifecycle state.
    Lifecycle {
        /// Component name.
        component: String,
        /// Previous state.
        from: String,
        /// New state.
        to: String,
        /// Why, if known (e.g. the error that failed it).
        detail: Option<String>,
    },
    /// An operational alert.
    Alert(Alert),
    /// The kill switch was triggered, reset, or a reset was refused.
    KillSwitch(crate::kill_switch::KillSwitchEvent),
    /// A circuit breaker changed state.
    Breaker(crate::breaker::BreakerTransition),
}

impl ControlEvent {
    /// The topic the event is published under, e.g. `switchyard.control.kill_switch`.
    pub fn topic(&self) -> Topic {
        use std::sync::OnceLock;
        static TOPICS: OnceLock<[Topic; 5]> = OnceLock::new();
        let t = TOPICS.get_or_init(|| {
            [
                "switchyard.control.shutdown",
                "switchyard.control.lifecycle",
                "switchyard.control.alert",
                "switchyard.control.kill_switch",
                "switchyard.control.breaker",
            ]
            .map(|s| Topic::new(s).expect("valid control topic"))
        });
        match self {
            ControlEvent::Shutdown { .. } => t[0],
            ControlEvent::Lifecycle { .. } => t[1],
            ControlEvent::Alert(_) => t[2],
            ControlEvent::KillSwitch(_) => t[3],
            ControlEvent::Breaker(_) => t[4],
        }
    }
}

/// A control event with its sequence number and time, shared by every receiver.
#[derive(Debug, Serialize)]
pub struct ControlEnvelope {
    /// Topic, from [`ControlEvent::topic`].
    pub topic: Topic,
    /// Bus sequence number (shared with data events).
    pub seq: u64,
    /// Publish time.
    pub ts: Timestamp,
    /// The event.
    pub event: ControlEvent,
}

/// What control subscribers receive.
pub type SharedControl = Arc<ControlEnvelope>;
