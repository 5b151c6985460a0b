//! Delivery: how one publish reaches the queues of the subscriptions its topic routes
//! to — the closed-bus check, sequence and timestamp, one push per subscription (the
//! payload moved to a single subscriber, shared behind an `Arc` by several), waiting for
//! room under `Block` only when a queue is full.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::options::Overflow;
use super::queue::{Push, Status, SubShared};
use super::{Bus, Inner, PublishError, TryPublishError, worker};
use crate::clock::{Clock, Timestamp};
use crate::envelope::{Envelope, Payload};
use crate::topic::Topic;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Wait for room under `Block` (unless inside a handler).
    Wait,
    /// Never wait: admit past capacity.
    Overcommit,
}

pub(super) async fn deliver<T: Send + Sync + 'static>(
    inner: &Arc<Inner>,
    routes: &[Arc<SubShared<T>>],
    topic: Topic,
    count: &AtomicU64,
    event: T,
    mode: Mode,
) -> Result<u64, PublishError<T>> {
    // Once closed, only handlers (and the framework's own non-waiting publishes) add
    // events: the consequences of events being drained.
    if inner.closed.load(Ordering::Acquire) && mode != Mode::Overcommit && !worker::in_handler() {
        return Err(PublishError::Closed(event));
    }
    let seq = inner.seq.fetch_add(1, Ordering::Relaxed);
    let ts = inner.clock.now();
    count.fetch_add(1, Ordering::Relaxed);
    let overcommit = mode == Mode::Overcommit || worker::in_handler();
    match routes {
        [] => Ok(seq),
        [only] => {
            let env = Envelope {
                topic,
                seq,
                ts,
                payload: Payload::Owned(event),
            };
            match push_or_wait(inner, only, env, overcommit).await {
                Some(env) => match env.payload {
                    Payload::Owned(t) => Err(PublishError::Closed(t)),
                    Payload::Shared(_) => unreachable!("sent owned"),
                },
                _ => Ok(seq),
            }
        }
        many => {
            let shared = Arc::new(event);
            let mut accepted_any = false;
            let mut refused_at_shutdown = Vec::new();
            for sub in many {
                let env = Envelope {
                    topic,
                    seq,
                    ts,
                    payload: Payload::Shared(Arc::clone(&shared)),
                };
                match push_one(inner, sub, env, overcommit) {
                    Pushed::Done => accepted_any = true,
                    Pushed::Refused(_) => refused_at_shutdown.push(sub),
                    Pushed::Full(e) => match push_wait(inner, sub, e, overcommit).await {
                        None => accepted_any = true,
                        Some(_) => refused_at_shutdown.push(sub),
                    },
                }
            }
            if !refused_at_shutdown.is_empty() {
                if !accepted_any && let Ok(t) = Arc::try_unwrap(shared) {
                    return Err(PublishError::Closed(t));
                }
                for s in refused_at_shutdown {
                    s.count_rejected_at_shutdown();
                }
            }
            Ok(seq)
        }
    }
}

/// Push to one subscription, waiting for room under `Block`. Returns the envelope back
/// with `true` if the bus is shutting down and the queue refused it; `None` otherwise
/// (accepted, dropped by policy, or the subscription is gone).
///
/// The first attempt is a plain call, not an `.await`: only a full `Block` queue builds
/// the waiting future ([`push_wait`]), so a fan-out of N pays N pushes, not N futures.
#[inline]
fn push_one<T: Send + Sync + 'static>(
    inner: &Arc<Inner>,
    sub: &Arc<SubShared<T>>,
    env: Envelope<T>,
    overcommit: bool,
) -> Pushed<T> {
    match sub.push(env, overcommit, inner.clock.now_if_needed(&sub.overflow)) {
        Push::Closed(e, Status::Draining) => Pushed::Refused(e),
        Push::Accepted | Push::Dropped | Push::Closed(_, _) => Pushed::Done,
        Push::Evicted(n) => {
            Bus {
                inner: Arc::clone(inner),
            }
            .evicted(sub.id, &sub.name, n);
            Pushed::Done
        }
        Push::Full(e) => Pushed::Full(e),
    }
}

/// What [`push_one`] did.
enum Pushed<T> {
    /// Accepted, dropped by policy, or the subscription is gone.
    Done,
    /// Refused: the bus is shutting down.
    Refused(Envelope<T>),
    /// Full under `Block`: wait with [`push_wait`].
    Full(Envelope<T>),
}

/// Wait for room in a full `Block` queue, then push; as [`push_one`].
async fn push_wait<T: Send + Sync + 'static>(
    inner: &Arc<Inner>,
    sub: &Arc<SubShared<T>>,
    mut env: Envelope<T>,
    overcommit: bool,
) -> Option<Envelope<T>> {
    loop {
        let notified = sub.space.notified();
        let mut notified = pin!(notified);
        notified.as_mut().enable();
        // Retry with the waiter registered, so a wake-up between the failed push and
        // `enable` is not lost.
        match push_one(inner, sub, env, overcommit) {
            Pushed::Full(e) => {
                env = e;
                notified.await;
            }
            Pushed::Done => return None,
            Pushed::Refused(e) => return Some(e),
        }
    }
}

/// Push, waiting for room if needed; `Some(env)` if the bus is shutting down and the
/// queue refused it.
#[inline]
async fn push_or_wait<T: Send + Sync + 'static>(
    inner: &Arc<Inner>,
    sub: &Arc<SubShared<T>>,
    env: Envelope<T>,
    overcommit: bool,
) -> Option<Envelope<T>> {
    match push_one(inner, sub, env, overcommit) {
        Pushed::Done => None,
        Pushed::Refused(e) => Some(e),
        Pushed::Full(e) => push_wait(inner, sub, e, overcommit).await,
    }
}

pub(super) fn try_deliver<T: Send + Sync + 'static>(
    inner: &Arc<Inner>,
    routes: &[Arc<SubShared<T>>],
    topic: Topic,
    count: &AtomicU64,
    event: T,
) -> Result<u64, TryPublishError<T>> {
    if inner.closed.load(Ordering::Acquire) && !worker::in_handler() {
        return Err(TryPublishError::Closed(event));
    }
    if !worker::in_handler() {
        for s in routes {
            if matches!(s.overflow, Overflow::Block) && !s.has_room() {
                return Err(TryPublishError::Full {
                    event,
                    subscription: s.name.to_string(),
                });
            }
        }
    }
    let fut = pin!(deliver(
        inner,
        routes,
        topic,
        count,
        event,
        Mode::Overcommit
    ));
    match fut.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(Ok(seq)) => Ok(seq),
        std::task::Poll::Ready(Err(PublishError::Closed(t))) => Err(TryPublishError::Closed(t)),
        std::task::Poll::Pending => unreachable!("overcommit delivery never waits"),
    }
}

trait ClockExt {
    fn now_if_needed<T>(&self, overflow: &Overflow<T>) -> Timestamp;
}
impl ClockExt for Arc<dyn Clock> {
    #[inline]
    fn now_if_needed<T>(&self, overflow: &Overflow<T>) -> Timestamp {
        match overflow {
            Overflow::Evict { .. } => self.now(),
            _ => Timestamp::ZERO,
        }
    }
}
