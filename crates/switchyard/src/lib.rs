//! Switchyard core: typed event bus, lifecycle, kill switch and circuit breaker.
#![deny(missing_docs)]

pub mod clock;

pub use clock::{Clock, LiveClock, ManualClock, Timestamp};
pub mod breaker;
pub mod kill_switch;
