//! A publisher bound to one topic: its routes resolved once, again only after a
//! subscribe or unsubscribe.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::queue::SubShared;
use super::{Bus, Mode, PublishError, Routed, TryPublishError, deliver, try_deliver};
use crate::topic::Topic;

/// A publisher bound to one topic and event type: resolves its routes once and again
/// only after a subscribe or unsubscribe.
pub struct Publisher<T> {
    pub(super) bus: Bus,
    pub(super) topic: Topic,
    pub(super) count: Arc<AtomicU64>,
    pub(super) generation: u64,
    pub(super) routes: Routed<T>,
}

impl<T> Clone for Publisher<T> {
    fn clone(&self) -> Self {
        Publisher {
            bus: self.bus.clone(),
            topic: self.topic,
            count: Arc::clone(&self.count),
            generation: self.generation,
            routes: Routed::clone(&self.routes),
        }
    }
}

impl<T> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .finish()
    }
}

impl<T: Send + Sync + 'static> Publisher<T> {
    /// The topic.
    pub fn topic(&self) -> Topic {
        self.topic
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    #[inline]
    pub(super) fn refresh(&mut self) {
        let g = self.bus.inner.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.routes = self
                .bus
                .inner
                .routes
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .resolve::<SubShared<T>>(&self.topic)
                .into();
            self.generation = g;
        }
    }

    /// Publish; see [`Bus::publish`].
    #[inline]
    pub async fn publish(&mut self, event: T) -> Result<u64, PublishError<T>> {
        self.refresh();
        deliver(
            &self.bus.inner,
            &self.routes,
            self.topic,
            &self.count,
            event,
            Mode::Wait,
        )
        .await
    }

    /// Publish without waiting; see [`Bus::try_publish`].
    pub fn try_publish(&mut self, event: T) -> Result<u64, TryPublishError<T>> {
        self.refresh();
        try_deliver(
            &self.bus.inner,
            &self.routes,
            self.topic,
            &self.count,
            event,
        )
    }

    /// Number of subscriptions this topic currently reaches.
    pub fn subscriber_count(&mut self) -> usize {
        self.refresh();
        self.routes.len()
    }
}
