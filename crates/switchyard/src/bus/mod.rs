//! The event bus: typed events, topic routing, a bounded queue and a task per subscriber.
//!
//! # Publishing
//! Any `T: Send + Sync + 'static` is an event. [`Bus::publish`] takes a [`Topic`] and a
//! value; a [`Publisher`] bound to one topic skips the route lookup and is the hot path.
//! Each event gets the next bus sequence number and a timestamp from the bus [`Clock`],
//! and travels in an [`Envelope`](crate::Envelope). With one matching subscriber the payload moves into
//! its queue; with several it is put behind one `Arc` and shared, never cloned.
//!
//! # Routing
//! Subscriptions name a [`Pattern`] with NATS semantics (`*` one token, `>` the rest) and
//! an event type; an event reaches the subscriptions whose pattern matches its topic *and*
//! whose type is the event's type. Routes are resolved through a token trie and cached
//! per topic and type until the next subscribe or unsubscribe.
//!
//! # Delivery and ordering
//! Every subscription has its own bounded queue and its own worker task, which runs the
//! [`Handler`] for one event at a time. A subscription sees the events of any one
//! publisher in the order they were published (events from concurrent publishers
//! interleave). A slow subscription delays nobody else, except that under
//! [`Overflow::Block`] the *publisher* waits for room — that is what `Block` is for.
//!
//! # Lagging: overflow policies
//! When a queue is full, its [`Overflow`] policy decides: `Block`, `DropOldest`,
//! `DropNewest`, `Conflate`/`ConflateBy` or `Evict`. Every event lost is counted per
//! subscription, by cause ([`DropCounts`]).
//!
//! **Publishing from a handler never blocks.** A publish made while a handler is being
//! polled is admitted past a full `Block` queue (counted as `overcommitted`) instead of
//! waiting, so two handlers that publish to each other cannot deadlock. Backpressure
//! applies to the sources of events, not to the reactions inside the graph.
//!
//! # Control lane
//! [`Bus::publish_control`] sends a [`ControlEvent`] to every subscription built with
//! `control(true)`, ahead of its queued data: the worker checks the control lane before
//! every data event.
//!
//! # Failures
//! A handler's `Err` or panic is caught, logged with `tracing` (topic, subscription,
//! sequence), counted, and published as a [`DeadLetter`] carrying the original envelope
//! on `switchyard.dead_letter.<topic>`. The worker goes on with the next event.
//!
//! # Unsubscribing
//! After [`Subscription::unsubscribe`] returns, no event published afterwards reaches the
//! handler; events queued before it are still delivered, then the worker ends
//! ([`Subscription::closed`] waits for that).
//!
//! # Closing
//! [`Bus::shutdown`] refuses new events ([`PublishError::Closed`] hands the event back),
//! lets every worker drain its queue until the deadline, then stops them and returns a
//! [`BusShutdownReport`]: per subscription, delivered, dropped and undelivered. Every
//! accepted event is in exactly one of those columns. Workers wake on events; nothing
//! polls.
//!
//! ```
//! use switchyard::bus::{Bus, Overflow, sync_handler};
//! use switchyard::Topic;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let bus = Bus::new();
//! let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
//! let s = seen.clone();
//! bus.subscription::<u64>("prices.*").unwrap()
//!     .name("summer")
//!     .overflow(Overflow::Block)
//!     .subscribe(sync_handler(move |ev: &switchyard::Envelope<u64>| {
//!         s.fetch_add(*ev.payload(), std::sync::atomic::Ordering::Relaxed);
//!         Ok(())
//!     }))
//!     .unwrap();
//! let mut p = bus.publisher::<u64>(Topic::new("prices.BTC").unwrap());
//! for i in 0..10 {
//!     p.publish(i).await.unwrap();
//! }
//! let report = bus.shutdown(std::time::Duration::from_secs(1)).await;
//! assert_eq!(report.subscriptions[0].delivered, 10);
//! assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 45);
//! # }
//! ```

mod chunks;
mod deliver;
mod error;
mod handler;
mod metrics;
mod options;
mod publisher;
mod queue;
mod routes;
mod spin;
mod subscription;
mod worker;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use error::{HandlerError, HandlerResult, PublishError, SubscribeError, TryPublishError};
pub use handler::{FnHandler, Handler, SyncHandler, handler_fn, sync_handler};
pub use metrics::{
    BusShutdownReport, BusSnapshot, DropCounts, LATENCY_BUCKETS_SECONDS, LatencySummary,
    NanoHistogram, SubscriptionReport, SubscriptionStats, TopicStats,
};
pub use options::{DEFAULT_BATCH, DEFAULT_CAPACITY, Overflow};
pub use publisher::Publisher;
pub use subscription::{Subscription, SubscriptionBuilder};
pub use worker::{DeadLetter, Failure};

use deliver::{Mode, deliver, try_deliver};
use queue::{Status, SubShared};
use routes::{Routes, SubId};

use crate::clock::{Clock, LiveClock, Timestamp};
use crate::control::{Alert, ControlEnvelope, ControlEvent};
use crate::topic::{Pattern, Topic, TopicError};

/// Topics under this prefix carry [`DeadLetter`]s.
pub const DEAD_LETTER_PREFIX: &str = "switchyard.dead_letter.";

/// What the bus needs to know of a subscription whatever its event type.
trait ErasedSub: Send + Sync {
    fn stats(&self) -> SubscriptionStats;
    fn push_control(&self, c: Arc<ControlEnvelope>) -> bool;
    fn close(&self, status: Status);
    fn stop_now(&self);
    fn is_finished(&self) -> bool;
    fn activity(&self) -> (u64, bool);
    fn done(&self) -> &tokio::sync::Notify;
    fn pattern(&self) -> Option<&Pattern>;
    fn wants_control(&self) -> bool;
}

impl<T: Send + Sync + 'static> ErasedSub for SubShared<T> {
    fn stats(&self) -> SubscriptionStats {
        SubShared::stats(self)
    }
    fn push_control(&self, c: Arc<ControlEnvelope>) -> bool {
        SubShared::push_control(self, c)
    }
    fn close(&self, status: Status) {
        SubShared::close(self, status)
    }
    fn stop_now(&self) {
        SubShared::stop_now(self)
    }
    fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
    fn activity(&self) -> (u64, bool) {
        SubShared::activity(self)
    }
    fn done(&self) -> &tokio::sync::Notify {
        &self.done
    }
    fn pattern(&self) -> Option<&Pattern> {
        self.pattern.as_ref()
    }
    fn wants_control(&self) -> bool {
        self.wants_control
    }
}

struct SubRecord {
    sub: Arc<dyn ErasedSub>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Resolved routes cached per (topic, event type); valid for one route generation.
type RouteCache = (u64, HashMap<(Topic, TypeId), Arc<dyn Any + Send + Sync>>);
type Records = Vec<(Arc<dyn ErasedSub>, Option<tokio::task::JoinHandle<()>>)>;

struct Inner {
    clock: Arc<dyn Clock>,
    seq: AtomicU64,
    closed: AtomicBool,
    generation: AtomicU64,
    next_id: AtomicU64,
    routes: RwLock<Routes>,
    /// (topic, event type) -> Arc<[Arc<SubShared<T>>]>, valid for `cache_generation`.
    cache: Mutex<RouteCache>,
    topic_counts: RwLock<HashMap<Topic, Arc<AtomicU64>>>,
    control_subs: RwLock<Vec<Arc<dyn ErasedSub>>>,
    subs: Mutex<Vec<(SubId, SubRecord)>>,
}

/// A handle to an event bus. Cheap to clone; all clones are the same bus.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("published", &self.inner.seq.load(Ordering::Relaxed))
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

type Routed<T> = Arc<[Arc<SubShared<T>>]>;

impl Bus {
    /// A bus stamping events with a [`LiveClock`].
    pub fn new() -> Self {
        Self::with_clock(Arc::new(LiveClock::new()))
    }

    /// A bus stamping events with `clock` (a manual clock for tests and replays).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Bus {
            inner: Arc::new(Inner {
                clock,
                seq: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                next_id: AtomicU64::new(1),
                routes: RwLock::new(Routes::default()),
                cache: Mutex::new((0, HashMap::new())),
                topic_counts: RwLock::new(HashMap::new()),
                control_subs: RwLock::new(Vec::new()),
                subs: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The bus clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.clock)
    }

    /// The current time on the bus clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// True once [`Bus::shutdown`] has started.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Start building a subscription to events of type `T` on `pattern`.
    pub fn subscription<T: Send + Sync + 'static>(
        &self,
        pattern: &str,
    ) -> Result<SubscriptionBuilder<T>, TopicError> {
        let pattern = Pattern::new(pattern)?;
        Ok(SubscriptionBuilder {
            bus: self.clone(),
            name: pattern.as_str().to_owned(),
            pattern: Some(pattern),
            capacity: DEFAULT_CAPACITY,
            batch: DEFAULT_BATCH,
            overflow: Overflow::Block,
            control: false,
            spin: false,
        })
    }

    /// Subscribe `handler` to events of type `T` on `pattern`, with default options
    /// (capacity [`DEFAULT_CAPACITY`], [`Overflow::Block`], no control lane).
    pub fn subscribe<T, H>(&self, pattern: &str, handler: H) -> Result<Subscription, SubscribeError>
    where
        T: Send + Sync + 'static,
        H: Handler<T>,
    {
        self.subscription::<T>(pattern)?.subscribe(handler)
    }

    /// Subscribe a closure to control events only.
    pub fn subscribe_control<F, Fut>(
        &self,
        name: &str,
        f: F,
    ) -> Result<Subscription, SubscribeError>
    where
        F: FnMut(&ControlEnvelope) -> Fut + Send + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        SubscriptionBuilder::<()> {
            bus: self.clone(),
            name: name.to_owned(),
            pattern: None,
            capacity: 1,
            batch: 1,
            overflow: Overflow::DropNewest,
            control: true,
            spin: false,
        }
        .subscribe(handler::ControlFn(f))
    }

    /// A publisher bound to `topic`: the fast path (no route lookup per event).
    pub fn publisher<T: Send + Sync + 'static>(&self, topic: Topic) -> Publisher<T> {
        let mut p = Publisher {
            bus: self.clone(),
            topic,
            count: self.topic_counter(topic),
            generation: u64::MAX,
            routes: Arc::from(Vec::new()),
        };
        p.refresh();
        p
    }

    /// Publish `event` on `topic`. Waits only if a matching `Block` subscription is full
    /// (and never when called from inside a handler). Returns the sequence number.
    pub async fn publish<T: Send + Sync + 'static>(
        &self,
        topic: Topic,
        event: T,
    ) -> Result<u64, PublishError<T>> {
        let routes = self.routes_for::<T>(topic);
        let count = self.topic_counter(topic);
        deliver(&self.inner, &routes, topic, &count, event, Mode::Wait).await
    }

    /// Publish without waiting. If a matching `Block` subscription is full, nobody gets
    /// the event and it is handed back in [`TryPublishError::Full`].
    pub fn try_publish<T: Send + Sync + 'static>(
        &self,
        topic: Topic,
        event: T,
    ) -> Result<u64, TryPublishError<T>> {
        let routes = self.routes_for::<T>(topic);
        let count = self.topic_counter(topic);
        try_deliver(&self.inner, &routes, topic, &count, event)
    }

    /// Publish, admitting past a full `Block` queue rather than waiting (as publishes from
    /// handlers do). For framework events that must not wait.
    pub(crate) fn publish_nonblocking<T: Send + Sync + 'static>(
        &self,
        topic: Topic,
        event: T,
    ) -> Result<u64, PublishError<T>> {
        let routes = self.routes_for::<T>(topic);
        let count = self.topic_counter(topic);
        let fut = pin!(deliver(
            &self.inner,
            &routes,
            topic,
            &count,
            event,
            Mode::Overcommit
        ));
        // Overcommit mode never awaits anything: one poll completes it.
        let waker = std::task::Waker::noop();
        match fut.poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => unreachable!("overcommit delivery never waits"),
        }
    }

    /// Publish a framework control event to every control subscriber, ahead of their
    /// queued data. Accepted until the bus has finished shutting down.
    pub fn publish_control(&self, event: ControlEvent) -> u64 {
        let topic = event.topic();
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let env = Arc::new(ControlEnvelope {
            topic,
            seq,
            ts: self.inner.clock.now(),
            event,
        });
        self.topic_counter(topic).fetch_add(1, Ordering::Relaxed);
        let subs = self
            .inner
            .control_subs
            .read()
            .unwrap_or_else(|e| e.into_inner());
        for s in subs.iter() {
            s.push_control(Arc::clone(&env));
        }
        seq
    }

    /// Counters and histograms of the whole bus.
    pub fn snapshot(&self) -> BusSnapshot {
        let mut topics: Vec<TopicStats> = self
            .inner
            .topic_counts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(t, c)| TopicStats {
                topic: t.as_str().to_owned(),
                published: c.load(Ordering::Relaxed),
            })
            .collect();
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        let subs: Vec<Arc<dyn ErasedSub>> = self
            .inner
            .subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, r)| Arc::clone(&r.sub))
            .collect();
        BusSnapshot {
            published: self.inner.seq.load(Ordering::Relaxed),
            closed: self.is_closed(),
            topics,
            subscriptions: subs.iter().map(|s| s.stats()).collect(),
        }
    }

    /// Stop accepting events from outside, drain every queue until `deadline` has
    /// passed, stop the workers, and report per subscription what was delivered, dropped
    /// and left undelivered. Calling it again returns a fresh report.
    ///
    /// Events that handlers publish while the queues drain (the orders a strategy sends
    /// on the last market data, the fills of those orders) are still accepted and
    /// delivered: the bus drains until no queue holds an event and no handler is
    /// running, then closes every queue at once.
    pub async fn shutdown(&self, deadline: Duration) -> BusShutdownReport {
        let started = tokio::time::Instant::now();
        self.inner.closed.store(true, Ordering::SeqCst);
        let records: Records = {
            let mut subs = self.inner.subs.lock().unwrap_or_else(|e| e.into_inner());
            subs.iter_mut()
                .map(|(_, r)| (Arc::clone(&r.sub), r.task.take()))
                .collect()
        };
        let all_done = async {
            quiesce(&records).await;
            for (s, _) in &records {
                s.close(Status::Draining);
            }
            for (s, _) in &records {
                wait_finished(&**s).await;
            }
        };
        let deadline_hit = tokio::time::timeout(deadline, all_done).await.is_err();
        for (s, task) in records.iter() {
            s.close(Status::Draining);
            if !s.is_finished() {
                s.stop_now();
                if let Some(t) = task {
                    t.abort();
                }
            }
        }
        for (_, task) in records {
            if let Some(t) = task {
                let _ = t.await;
            }
        }
        let subscriptions = self
            .snapshot()
            .subscriptions
            .iter()
            .map(SubscriptionReport::from)
            .collect();
        let report = BusShutdownReport {
            deadline_hit,
            elapsed_ms: started.elapsed().as_millis() as u64,
            subscriptions,
        };
        tracing::info!(
            deadline_hit,
            undelivered = report.undelivered(),
            "bus shut down"
        );
        report
    }

    fn topic_counter(&self, topic: Topic) -> Arc<AtomicU64> {
        if let Some(c) = self
            .inner
            .topic_counts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&topic)
        {
            return Arc::clone(c);
        }
        Arc::clone(
            self.inner
                .topic_counts
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(topic)
                .or_default(),
        )
    }

    fn routes_for<T: Send + Sync + 'static>(&self, topic: Topic) -> Routed<T> {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let key = (topic, TypeId::of::<T>());
        {
            let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.0 != generation {
                cache.0 = generation;
                cache.1.clear();
            } else if let Some(r) = cache.1.get(&key)
                && let Ok(r) = Arc::clone(r).downcast::<Routed<T>>()
            {
                return Routed::clone(&r);
            }
        }
        let routed: Routed<T> = self
            .inner
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .resolve::<SubShared<T>>(&topic)
            .into();
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0 == generation {
            cache.1.insert(key, Arc::new(Routed::clone(&routed)));
        }
        routed
    }

    fn remove_routes(&self, id: SubId, pattern: Option<&Pattern>) {
        if let Some(p) = pattern {
            self.inner
                .routes
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(p, id);
        }
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn unsubscribe_id(&self, id: SubId) {
        let sub = self
            .inner
            .subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, r)| Arc::clone(&r.sub));
        let Some(sub) = sub else { return };
        // Close first: a publisher still holding stale routes then finds it closed.
        sub.close(Status::Unsubscribed);
        self.remove_routes(id, sub.pattern());
        if sub.wants_control() {
            self.inner
                .control_subs
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|s| !Arc::ptr_eq(s, &sub));
        }
    }

    fn evicted(&self, id: SubId, name: &str, dropped: u64) {
        self.unsubscribe_id(id);
        tracing::warn!(
            subscription = name,
            dropped,
            "subscription evicted: its queue stayed full"
        );
        self.publish_control(ControlEvent::Alert(Alert::SubscriberEvicted {
            subscription: name.to_owned(),
            dropped,
        }));
    }
}

/// Wait until every queue is empty, no handler is running, and nothing was accepted
/// while checking: only handlers can publish once the bus is closed, so nothing more
/// will come.
async fn quiesce(records: &Records) {
    let total = |records: &Records| -> (u64, bool) {
        records.iter().fold((0, true), |(n, idle), (s, _)| {
            let (a, i) = s.activity();
            (n + a, idle && i)
        })
    };
    let mut spins = 0u32;
    loop {
        let (before, idle) = total(records);
        if idle && total(records) == (before, true) {
            return;
        }
        spins += 1;
        if spins < 64 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
}

async fn wait_finished(s: &dyn ErasedSub) {
    loop {
        let notified = s.done().notified();
        let mut notified = pin!(notified);
        notified.as_mut().enable();
        if s.is_finished() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_handles_are_send_and_sync() {
        assert_send_sync::<Bus>();
        assert_send_sync::<Publisher<u64>>();
        assert_send_sync::<Subscription>();
        assert_send_sync::<BusSnapshot>();
        assert_send_sync::<Envelope<String>>();
    }
}
