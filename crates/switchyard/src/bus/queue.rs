//! A subscription's bounded queue: the data lane, the control lane, and the counters.
//!
//! One mutex guards both lanes. The publisher pushes one event per lock; the worker takes
//! a whole batch per lock (moving one chunk of [`Chunks`], so taking a batch from a long
//! queue moves no events and steady state allocates nothing) and is
//! woken only when it is parked, so a busy subscription costs the publisher no wake-ups.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;

use super::chunks::Chunks;
use super::metrics::{DropCounts, Histograms, SubscriptionStats};
use super::options::Overflow;
use super::routes::SubId;
use crate::clock::Timestamp;
use crate::control::SharedControl;
use crate::envelope::Envelope;
use crate::topic::Pattern;

/// Signal bits the worker checks (one relaxed load) between events.
pub(crate) const SIG_CONTROL: u8 = 1;
pub(crate) const SIG_STOP: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Open,
    /// Unsubscribed: no new events; the worker delivers what was queued, then ends.
    Unsubscribed,
    /// Bus shutdown: no new events; the worker drains until the deadline.
    Draining,
    /// Disconnected by the Evict policy.
    Evicted,
}

#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct Counts {
    pub accepted: u64,
    pub dropped: DropCounts,
    pub overcommitted: u64,
    pub rejected_at_shutdown: u64,
    pub control_received: u64,
}

struct State<T> {
    items: Chunks<Envelope<T>>,
    control: VecDeque<SharedControl>,
    waker: Option<Waker>,
    status: Status,
    /// Publishers waiting for room (Block policy).
    blocked: bool,
    /// Conflation: key -> absolute index of the pending event with that key.
    conflate: HashMap<u64, u64>,
    /// Absolute index of `items[0]`.
    head: u64,
    full_since: Option<Timestamp>,
    counts: Counts,
}

/// What a push did.
pub(crate) enum Push<T> {
    Accepted,
    /// Refused by the overflow policy (counted).
    Dropped,
    /// Full under `Block`: wait for room and retry.
    Full(Envelope<T>),
    /// The subscription no longer accepts events.
    Closed(Envelope<T>, Status),
    /// The push evicted the subscription (Evict policy); this many queued events dropped.
    Evicted(u64),
}

pub(crate) struct SubShared<T> {
    pub id: SubId,
    pub name: Arc<str>,
    pub pattern: Option<Pattern>,
    pub capacity: usize,
    pub batch: usize,
    pub overflow: Overflow<T>,
    pub wants_control: bool,
    state: Mutex<State<T>>,
    pub signal: AtomicU8,
    /// Room freed (Block publishers wait here); also notified on close.
    pub space: Notify,
    /// Written by the worker only.
    pub delivered: AtomicU64,
    pub handler_errors: AtomicU64,
    pub handler_panics: AtomicU64,
    pub control_handled: AtomicU64,
    pub hist: Mutex<Histograms>,
    pub finished: std::sync::atomic::AtomicBool,
    pub done: Notify,
}

impl<T> SubShared<T> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: SubId,
        name: Arc<str>,
        pattern: Option<Pattern>,
        capacity: usize,
        batch: usize,
        overflow: Overflow<T>,
        wants_control: bool,
    ) -> Self {
        SubShared {
            id,
            name,
            pattern,
            capacity,
            batch,
            overflow,
            wants_control,
            state: Mutex::new(State {
                items: Chunks::new(batch.min(capacity).max(1)),
                control: VecDeque::new(),
                waker: None,
                status: Status::Open,
                blocked: false,
                conflate: HashMap::new(),
                head: 0,
                full_since: None,
                counts: Counts::default(),
            }),
            signal: AtomicU8::new(0),
            space: Notify::new(),
            delivered: AtomicU64::new(0),
            handler_errors: AtomicU64::new(0),
            handler_panics: AtomicU64::new(0),
            control_handled: AtomicU64::new(0),
            hist: Mutex::new(Histograms::new()),
            finished: std::sync::atomic::AtomicBool::new(false),
            done: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No code panics while holding this lock; recover the data if it ever did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offer one event. `overcommit` admits it past a full `Block` queue instead of
    /// reporting `Full` (publishes from inside a handler, and `try_publish` after its room
    /// check); the other policies drop as they always do.
    #[inline]
    pub fn push(&self, env: Envelope<T>, overcommit: bool, now: Timestamp) -> Push<T> {
        let mut st = self.lock();
        if st.status != Status::Open {
            let status = st.status;
            return Push::Closed(env, status);
        }
        let full = st.items.len() >= self.capacity;
        match &self.overflow {
            Overflow::Conflate | Overflow::ConflateBy(_) => {
                let key = match &self.overflow {
                    Overflow::ConflateBy(f) => f(&env.payload),
                    _ => env.topic.as_str().as_ptr() as u64,
                };
                if let Some(&abs) = st.conflate.get(&key)
                    && abs >= st.head
                {
                    let idx = (abs - st.head) as usize;
                    *st.items
                        .get_mut(idx)
                        .expect("conflation index within the queue") = env;
                    st.counts.conflated_inc();
                    st.counts.accepted += 1;
                    return Push::Accepted;
                }
                if full {
                    st.items.pop_front();
                    st.head += 1;
                    st.counts.dropped.oldest += 1;
                }
                let abs = st.head + st.items.len() as u64;
                st.conflate.insert(key, abs);
            }
            _ if !full => {}
            // Only `Block` would wait; the lossy policies apply to every publisher.
            Overflow::Block if overcommit => st.counts.overcommitted += 1,
            Overflow::Block => {
                st.blocked = true;
                return Push::Full(env);
            }
            Overflow::DropOldest => {
                st.items.pop_front();
                st.head += 1;
                st.counts.dropped.oldest += 1;
            }
            Overflow::DropNewest => {
                st.counts.dropped.newest += 1;
                return Push::Dropped;
            }
            Overflow::Evict { grace } => {
                let since = *st.full_since.get_or_insert(now);
                if now.saturating_duration_since(since) < *grace {
                    st.counts.dropped.newest += 1;
                    return Push::Dropped;
                }
                let n = st.items.len() as u64;
                st.items.clear();
                st.counts.dropped.evicted += n;
                st.counts.dropped.newest += 1;
                st.status = Status::Evicted;
                self.signal.fetch_or(SIG_STOP, Ordering::Release);
                let w = st.waker.take();
                drop(st);
                self.space.notify_waiters();
                if let Some(w) = w {
                    w.wake();
                }
                return Push::Evicted(n);
            }
        }
        st.items.push_back(env);
        st.counts.accepted += 1;
        let w = st.waker.take();
        drop(st);
        if let Some(w) = w {
            w.wake();
        }
        Push::Accepted
    }

    /// Events accepted (data and control) so far, and whether the subscription is idle:
    /// nothing queued, every accepted event handled or removed, no handler running (the
    /// worker counts an event delivered after its handler returns). A finished worker is
    /// idle.
    pub fn activity(&self) -> (u64, bool) {
        let st = self.lock();
        let c = st.counts;
        let queued = !st.items.is_empty() || !st.control.is_empty();
        drop(st);
        if self.finished.load(Ordering::Acquire) {
            return (c.accepted + c.control_received, true);
        }
        let removed = c.dropped.oldest + c.dropped.conflated + c.dropped.evicted;
        let delivered = self.delivered.load(Ordering::Acquire);
        let handled = self.control_handled.load(Ordering::Acquire);
        let idle = !queued && delivered + removed >= c.accepted && handled >= c.control_received;
        (c.accepted + c.control_received, idle)
    }

    /// Would a `Block` push succeed now? (`try_publish` checks before delivering.)
    pub fn has_room(&self) -> bool {
        let st = self.lock();
        st.status != Status::Open || st.items.len() < self.capacity
    }

    /// Count a publish that raced shutdown and was refused after others accepted it.
    pub fn count_rejected_at_shutdown(&self) {
        self.lock().counts.rejected_at_shutdown += 1;
    }

    /// Queue a control event. False if the subscription is gone.
    pub fn push_control(&self, c: SharedControl) -> bool {
        let mut st = self.lock();
        if matches!(st.status, Status::Evicted | Status::Unsubscribed) {
            return false;
        }
        st.control.push_back(c);
        st.counts.control_received += 1;
        self.signal.fetch_or(SIG_CONTROL, Ordering::Release);
        let w = st.waker.take();
        drop(st);
        if let Some(w) = w {
            w.wake();
        }
        true
    }

    /// Take pending control events (the worker, between data events).
    pub fn take_control(&self, into: &mut VecDeque<SharedControl>) {
        let mut st = self.lock();
        self.signal.fetch_and(!SIG_CONTROL, Ordering::AcqRel);
        std::mem::swap(&mut st.control, into);
    }

    /// The worker's wait: a batch of data and/or control events, or the end.
    pub fn poll_take(
        &self,
        cx: &mut Context<'_>,
        batch: &mut VecDeque<Envelope<T>>,
        control: &mut VecDeque<SharedControl>,
    ) -> Poll<Take> {
        let mut st = self.lock();
        if !st.control.is_empty() {
            self.signal.fetch_and(!SIG_CONTROL, Ordering::AcqRel);
            std::mem::swap(&mut st.control, control);
        }
        if st.status == Status::Evicted || self.signal.load(Ordering::Acquire) & SIG_STOP != 0 {
            return Poll::Ready(Take::Stop);
        }
        if !st.items.is_empty() {
            let n = st.items.take_front(batch);
            st.head += n as u64;
            st.full_since = None;
            if st.items.is_empty() {
                st.conflate.clear();
            }
            let notify = std::mem::take(&mut st.blocked);
            drop(st);
            if notify {
                self.space.notify_waiters();
            }
            return Poll::Ready(Take::Events);
        }
        if !control.is_empty() {
            return Poll::Ready(Take::Events);
        }
        if st.status != Status::Open {
            return Poll::Ready(Take::Done);
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Stop intake (unsubscribe or shutdown) and wake everyone concerned.
    pub fn close(&self, status: Status) {
        let mut st = self.lock();
        if st.status == Status::Open {
            st.status = status;
        }
        let w = st.waker.take();
        drop(st);
        self.space.notify_waiters();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Ask the worker to stop before its next event (shutdown deadline).
    pub fn stop_now(&self) {
        self.signal.fetch_or(SIG_STOP, Ordering::Release);
        let w = self.lock().waker.take();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// The worker counts what it held when evicted.
    pub fn count_evicted_in_hand(&self, n: u64) {
        self.lock().counts.dropped.evicted += n;
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    pub fn stats(&self) -> SubscriptionStats {
        let (counts, queued, status) = {
            let st = self.lock();
            (st.counts, st.items.len() as u64, st.status)
        };
        let delivered = self.delivered.load(Ordering::Acquire);
        let finished = self.finished.load(Ordering::Acquire);
        let removed = counts.dropped.oldest + counts.dropped.conflated + counts.dropped.evicted;
        // Accepted events are delivered, removed by policy, or still here. Once the worker
        // has finished, whatever is neither delivered nor removed was never delivered.
        let outstanding = counts.accepted.saturating_sub(delivered + removed);
        let (latency, handler_duration) = {
            let h = self.hist.lock().unwrap_or_else(|e| e.into_inner());
            (h.latency.summary(), h.duration.summary())
        };
        SubscriptionStats {
            id: self.id,
            name: self.name.to_string(),
            pattern: self.pattern.as_ref().map(|p| p.as_str().to_owned()),
            overflow: self.overflow.name(),
            capacity: self.capacity as u64,
            state: match (status, finished) {
                (Status::Evicted, _) => "evicted",
                (_, true) => "finished",
                (Status::Open, false) => "active",
                (Status::Unsubscribed, false) => "unsubscribing",
                (Status::Draining, false) => "draining",
            },
            depth: if finished { 0 } else { outstanding },
            queued,
            accepted: counts.accepted,
            delivered,
            dropped: counts.dropped,
            undelivered: if finished { outstanding } else { 0 },
            overcommitted: counts.overcommitted,
            rejected_at_shutdown: counts.rejected_at_shutdown,
            handler_errors: self.handler_errors.load(Ordering::Acquire),
            handler_panics: self.handler_panics.load(Ordering::Acquire),
            control_received: counts.control_received,
            control_handled: self.control_handled.load(Ordering::Acquire),
            latency,
            handler_duration,
        }
    }
}

impl Counts {
    fn conflated_inc(&mut self) {
        self.dropped.conflated += 1;
    }
}

/// What the worker got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take {
    Events,
    Done,
    Stop,
}

/// Default evict grace.
pub(crate) const DEFAULT_EVICT_GRACE: Duration = Duration::from_secs(1);
