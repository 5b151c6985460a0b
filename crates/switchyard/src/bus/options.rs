//! Subscription options: overflow policy, capacity, batch size, control lane.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What a subscription does when its queue is full.
pub enum Overflow<T> {
    /// The publisher waits for room: lossless backpressure. A publish made from inside a
    /// handler never waits (it is admitted past capacity and counted as overcommitted), so
    /// handlers that publish to each other cannot deadlock.
    Block,
    /// Make room by dropping the oldest queued event.
    DropOldest,
    /// Refuse the new event.
    DropNewest,
    /// Keep only the latest pending event per topic (e.g. one quote per symbol): a new
    /// event replaces the pending one with the same topic, in its place. With no room for a
    /// new topic, the oldest event is dropped.
    Conflate,
    /// As [`Overflow::Conflate`], keyed by a function of the event.
    ConflateBy(Arc<dyn Fn(&T) -> u64 + Send + Sync>),
    /// Refuse new events while full; a subscription that stays full for `grace` is
    /// disconnected, its queue dropped (counted), and an [`crate::control::Alert`] is
    /// published on the control lane.
    Evict {
        /// How long the queue may stay full.
        grace: Duration,
    },
}

impl<T> Overflow<T> {
    /// Evict after the default grace of one second.
    pub fn evict() -> Self {
        Overflow::Evict {
            grace: super::queue::DEFAULT_EVICT_GRACE,
        }
    }

    /// A short name for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Overflow::Block => "block",
            Overflow::DropOldest => "drop_oldest",
            Overflow::DropNewest => "drop_newest",
            Overflow::Conflate => "conflate",
            Overflow::ConflateBy(_) => "conflate_by",
            Overflow::Evict { .. } => "evict",
        }
    }
}

impl<T> Clone for Overflow<T> {
    fn clone(&self) -> Self {
        match self {
            Overflow::Block => Overflow::Block,
            Overflow::DropOldest => Overflow::DropOldest,
            Overflow::DropNewest => Overflow::DropNewest,
            Overflow::Conflate => Overflow::Conflate,
            Overflow::ConflateBy(f) => Overflow::ConflateBy(Arc::clone(f)),
            Overflow::Evict { grace } => Overflow::Evict { grace: *grace },
        }
    }
}

impl<T> fmt::Debug for Overflow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Overflow::Evict { grace } => write!(f, "Evict {{ grace: {grace:?} }}"),
            o => f.write_str(o.name()),
        }
    }
}

/// Default queue capacity.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Default largest batch a worker takes per lock.
pub const DEFAULT_BATCH: usize = 512;
