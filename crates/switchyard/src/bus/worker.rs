//! The worker task of one subscription: takes batches, runs the handler in isolation.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use serde::Serialize;

use super::handler::Handler;
use super::queue::{SIG_CONTROL, SIG_STOP, SubShared, Take};
use super::{Bus, DEAD_LETTER_PREFIX};
use crate::control::SharedControl;
use crate::envelope::Envelope;
use crate::topic::Topic;

thread_local! {
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
}

/// True while a bus handler is being polled on this thread.
pub(crate) fn in_handler() -> bool {
    IN_HANDLER.with(|c| c.get())
}

struct HandlerScope(bool);
impl HandlerScope {
    fn enter() -> Self {
        HandlerScope(IN_HANDLER.with(|c| c.replace(true)))
    }
}
impl Drop for HandlerScope {
    fn drop(&mut self) {
        let prev = self.0;
        IN_HANDLER.with(|c| c.set(prev));
    }
}

/// Create the handler's future and poll it to completion, catching a panic in either
/// (a closure handler may panic before it returns its future).
async fn isolated<F: Future>(make: impl FnOnce() -> F) -> Result<F::Output, Box<dyn Any + Send>> {
    let fut = {
        let _scope = HandlerScope::enter();
        catch_unwind(AssertUnwindSafe(make))?
    };
    let mut fut = pin!(fut);
    poll_fn(move |cx| {
        let _scope = HandlerScope::enter();
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Why a handler failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum Failure {
    /// It returned an error (message with its source chain).
    Error(String),
    /// It panicked (the panic message).
    Panic(String),
}

/// A failed delivery, published on `switchyard.dead_letter.<original topic>` with the
/// original envelope. Failures of dead-letter handlers are logged and counted but not
/// dead-lettered again.
#[derive(Debug, Serialize)]
pub struct DeadLetter<T> {
    /// The subscription whose handler failed.
    pub subscription: String,
    /// What went wrong.
    pub failure: Failure,
    /// The event, as it was delivered.
    pub envelope: Envelope<T>,
}

const SAMPLE_FLUSH: usize = 256;

pub(crate) async fn run<T, H>(sub: Arc<SubShared<T>>, mut handler: H, bus: Bus)
where
    T: Send + Sync + 'static,
    H: Handler<T>,
{
    let clock = bus.clock();
    let mut batch: VecDeque<Envelope<T>> = VecDeque::with_capacity(sub.batch.min(sub.capacity));
    let mut control: VecDeque<SharedControl> = VecDeque::new();
    let mut samples: Vec<(u64, u64)> = Vec::with_capacity(SAMPLE_FLUSH);
    let mut delivered = sub.delivered.load(Ordering::Relaxed);
    let mut stopped = false;

    loop {
        let take = poll_fn(|cx| sub.poll_take(cx, &mut batch, &mut control)).await;
        run_control(&sub, &mut handler, &mut control).await;
        if take == Take::Stop {
            stopped = true;
            break;
        }
        if take == Take::Done && batch.is_empty() {
            break;
        }
        let mut now = clock.now();
        while let Some(env) = batch.pop_front() {
            let sig = sub.signal.load(Ordering::Acquire);
            if sig != 0 {
                if sig & SIG_STOP != 0 {
                    batch.push_front(env);
                    stopped = true;
                    break;
                }
                if sig & SIG_CONTROL != 0 {
                    sub.take_control(&mut control);
                    run_control(&sub, &mut handler, &mut control).await;
                    now = clock.now();
                }
            }
            let latency = now.saturating_duration_since(env.ts).as_nanos() as u64;
            let outcome = isolated(|| handler.handle(&env)).await;
            let end = clock.now();
            samples.push((
                latency,
                end.saturating_duration_since(now).as_nanos() as u64,
            ));
            now = end;
            delivered += 1;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    sub.handler_errors.fetch_add(1, Ordering::AcqRel);
                    let msg = e.to_string();
                    tracing::error!(
                        topic = %env.topic, subscription = %sub.name, seq = env.seq,
                        error = %msg, "handler returned an error"
                    );
                    dead_letter(&bus, &sub, env, Failure::Error(msg));
                }
                Err(panic) => {
                    sub.handler_panics.fetch_add(1, Ordering::AcqRel);
                    let msg = panic_message(&*panic);
                    tracing::error!(
                        topic = %env.topic, subscription = %sub.name, seq = env.seq,
                        panic = %msg, "handler panicked"
                    );
                    dead_letter(&bus, &sub, env, Failure::Panic(msg));
                }
            }
            // After the dead letter: an idle subscription has published all it will.
            sub.delivered.store(delivered, Ordering::Release);
            if samples.len() == SAMPLE_FLUSH {
                flush(&sub, &mut samples);
            }
        }
        flush(&sub, &mut samples);
        if stopped {
            break;
        }
    }
    flush(&sub, &mut samples);
    if stopped && sub.status() == super::queue::Status::Evicted {
        sub.count_evicted_in_hand(batch.len() as u64);
    }
    drop(batch);
    sub.finished.store(true, Ordering::Release);
    sub.done.notify_waiters();
}

async fn run_control<T, H: Handler<T>>(
    sub: &SubShared<T>,
    handler: &mut H,
    control: &mut VecDeque<SharedControl>,
) {
    while let Some(c) = control.pop_front() {
        let outcome = isolated(|| handler.on_control(&c)).await;
        sub.control_handled.fetch_add(1, Ordering::AcqRel);
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                sub.handler_errors.fetch_add(1, Ordering::AcqRel);
                tracing::error!(topic = %c.topic, subscription = %sub.name, seq = c.seq,
                    error = %e, "control handler returned an error");
            }
            Err(p) => {
                sub.handler_panics.fetch_add(1, Ordering::AcqRel);
                tracing::error!(topic = %c.topic, subscription = %sub.name, seq = c.seq,
                    panic = %panic_message(&*p), "control handler panicked");
            }
        }
    }
}

fn flush<T>(sub: &SubShared<T>, samples: &mut Vec<(u64, u64)>) {
    if samples.is_empty() {
        return;
    }
    let mut h = sub.hist.lock().unwrap_or_else(|e| e.into_inner());
    for &(lat, dur) in samples.iter() {
        h.latency.record(lat);
        h.duration.record(dur);
    }
    samples.clear();
}

fn dead_letter<T: Send + Sync + 'static>(
    bus: &Bus,
    sub: &SubShared<T>,
    envelope: Envelope<T>,
    failure: Failure,
) {
    let original = envelope.topic.as_str();
    if original.starts_with(DEAD_LETTER_PREFIX) {
        return;
    }
    let topic = Topic::new(&format!("{DEAD_LETTER_PREFIX}{original}"))
        .or_else(|_| Topic::new(DEAD_LETTER_PREFIX.trim_end_matches('.')))
        .expect("valid dead-letter topic");
    let letter = DeadLetter {
        subscription: sub.name.to_string(),
        failure,
        envelope,
    };
    // Never blocks: handlers' publishes are admitted past capacity.
    let _ = bus.publish_nonblocking(topic, letter);
}
