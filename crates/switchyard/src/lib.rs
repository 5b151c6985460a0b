//! Switchyard core: a typed event bus, component lifecycle, kill switch and circuit
//! breaker for automated trading systems. It knows nothing about trading; see
//! `switchyard-trading` for that.
//!
//! | module | what |
//! |---|---|
//! | [`bus`] | typed publish/subscribe with topic routing, bounded per-subscriber queues, overflow policies, control lane, handler isolation, drain on shutdown |
//! | [`topic`] | topics and patterns (NATS subject semantics) |
//! | [`clock`] | injectable time |
//! | [`control`] | framework control events |
//! | [`kill_switch`] | scoped, audited order gate |
//! | [`breaker`] | circuit breaker |
//! | [`lifecycle`] | components, registry, supervision, graceful shutdown |
#![deny(missing_docs)]

pub mod breaker;
pub mod bus;
pub mod clock;
pub mod control;
pub mod envelope;
pub mod kill_switch;
pub mod lifecycle;
pub mod topic;

pub use bus::{Bus, Publisher, Subscription};
pub use clock::{Clock, LiveClock, ManualClock, Timestamp};
pub use control::{ControlEnvelope, ControlEvent};
pub use envelope::{Envelope, Payload};
pub use topic::{Pattern, Topic, TopicError};
