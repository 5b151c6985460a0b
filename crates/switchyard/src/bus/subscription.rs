//! Subscribing: the builder of a subscription's options, and the handle it returns.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::queue::SubShared;
use super::routes::{RouteEntry, SubId};
use super::{
    Bus, ErasedSub, Handler, Overflow, SubRecord, SubscribeError, SubscriptionStats, spin,
    wait_finished, worker,
};
use crate::topic::Pattern;

/// Options for a new subscription; see [`Bus::subscription`].
pub struct SubscriptionBuilder<T> {
    pub(super) bus: Bus,
    pub(super) name: String,
    pub(super) pattern: Option<Pattern>,
    pub(super) capacity: usize,
    pub(super) batch: usize,
    pub(super) overflow: Overflow<T>,
    pub(super) control: bool,
    pub(super) spin: bool,
}

impl<T: Send + Sync + 'static> SubscriptionBuilder<T> {
    /// Name used in logs, metrics and reports (default: the pattern).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Queue capacity (default [`DEFAULT_CAPACITY`](super::DEFAULT_CAPACITY)).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Largest batch the worker takes from the queue at once (default
    /// [`DEFAULT_BATCH`](super::DEFAULT_BATCH)). The worker holds at most this many
    /// events beyond `capacity`.
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    /// Overflow policy (default [`Overflow::Block`]).
    pub fn overflow(mut self, overflow: Overflow<T>) -> Self {
        self.overflow = overflow;
        self
    }

    /// Also receive control events, ahead of queued data (default: no).
    pub fn control(mut self, yes: bool) -> Self {
        self.control = yes;
        self
    }

    /// Latency-critical: run the worker on a dedicated OS thread that busy-polls instead
    /// of a tokio task that parks (default: no). The thread spins at 100 % of a core for
    /// as long as the subscription lives, events or not; in exchange an event is handled
    /// as soon as the publisher's write reaches that core, with no OS wake-up in between
    /// (`switchyard bench bus` measures both: `latency_spin_100k_*` against
    /// `latency_100k_*`). Everything else — queue, overflow policy, control lane,
    /// isolation, counters, unsubscribe and shutdown — is the same. The handler runs
    /// inside the runtime's context (it may use tokio timers, channels and spawn), but
    /// what it awaits is polled by this thread. Give it a core of its own: on a machine
    /// with fewer free cores than spinning subscriptions plus runtime workers, spinning
    /// threads take time from everything else.
    pub fn spin(mut self, yes: bool) -> Self {
        self.spin = yes;
        self
    }

    /// Create the subscription and spawn its worker on the current tokio runtime (or, with
    /// [`SubscriptionBuilder::spin`], on its own thread).
    pub fn subscribe<H: Handler<T>>(self, handler: H) -> Result<Subscription, SubscribeError> {
        for (what, v) in [("capacity", self.capacity), ("batch", self.batch)] {
            if v == 0 {
                return Err(SubscribeError::ZeroSize {
                    name: self.name,
                    what,
                });
            }
        }
        let rt = tokio::runtime::Handle::try_current().map_err(|_| SubscribeError::NoRuntime)?;
        let bus = self.bus;
        if bus.is_closed() {
            return Err(SubscribeError::Closed);
        }
        let id = bus.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let name: Arc<str> = Arc::from(self.name);
        let shared = Arc::new(SubShared::new(
            id,
            Arc::clone(&name),
            self.pattern.clone(),
            self.capacity,
            self.batch,
            self.overflow,
            self.control,
        ));
        let erased: Arc<dyn ErasedSub> = shared.clone();
        let work = worker::run(Arc::clone(&shared), handler, bus.clone());
        let task = if self.spin {
            // The bus awaits (or aborts) a task per subscription: this one ends when the
            // thread does. The thread itself ends when its worker does: unsubscribe,
            // shutdown, or the stop signal at the shutdown deadline.
            let (ended, on_end) = tokio::sync::oneshot::channel::<()>();
            let handle = rt.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sy-spin-{id}"))
                .spawn(move || {
                    let _runtime = handle.enter();
                    spin::block_on_spinning(work);
                    let _ = ended.send(());
                });
            if let Err(e) = spawned {
                return Err(SubscribeError::Thread {
                    name: name.to_string(),
                    reason: e.to_string(),
                });
            }
            rt.spawn(async move {
                let _ = on_end.await;
            })
        } else {
            rt.spawn(work)
        };
        bus.inner
            .subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((
                id,
                SubRecord {
                    sub: Arc::clone(&erased),
                    task: Some(task),
                },
            ));
        if self.control {
            bus.inner
                .control_subs
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(Arc::clone(&erased));
        }
        if let Some(p) = &self.pattern {
            bus.inner
                .routes
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    p,
                    id,
                    RouteEntry {
                        type_id: TypeId::of::<SubShared<T>>(),
                        typed: shared,
                    },
                );
            bus.inner.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(Subscription {
            id,
            name,
            bus,
            sub: erased,
        })
    }
}

/// A live subscription. Dropping the handle does **not** unsubscribe; call
/// [`Subscription::unsubscribe`].
pub struct Subscription {
    id: SubId,
    name: Arc<str>,
    bus: Bus,
    sub: Arc<dyn ErasedSub>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish()
    }
}

impl Subscription {
    /// Id within the bus.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stop receiving: nothing published after this returns reaches the handler. Events
    /// already queued are still delivered; [`Subscription::closed`] waits for that.
    pub fn unsubscribe(&self) {
        self.bus.unsubscribe_id(self.id);
    }

    /// Wait until the worker has ended (after unsubscribe, eviction or shutdown).
    pub async fn closed(&self) {
        wait_finished(&*self.sub).await
    }

    /// This subscription's counters.
    pub fn stats(&self) -> SubscriptionStats {
        self.sub.stats()
    }
}
