//! Handlers: what a subscription runs for each event.

use std::future::Future;

use super::error::HandlerResult;
use crate::control::ControlEnvelope;
use crate::envelope::Envelope;

/// Handles the events of one subscription, one at a time, in publish order.
///
/// A handler is owned by its subscription's worker task, so it may keep state in `self`
/// without locks. `handle` is async; its future is polled in place (never boxed). An
/// `Err` or a panic is caught, logged, counted and published as a
/// [`DeadLetter`](super::DeadLetter); the handler then receives the next event.
///
/// ```
/// use switchyard::bus::{Handler, HandlerResult};
/// use switchyard::Envelope;
///
/// struct Sum(u64);
/// impl Handler<u64> for Sum {
///     async fn handle(&mut self, ev: &Envelope<u64>) -> HandlerResult {
///         self.0 += *ev.payload();
///         Ok(())
///     }
/// }
/// ```
pub trait Handler<T>: Send + 'static {
    /// Handle one data event.
    fn handle(&mut self, event: &Envelope<T>) -> impl Future<Output = HandlerResult> + Send;

    /// Handle a control event (only for subscriptions made with
    /// [`control(true)`](super::SubscriptionBuilder::control)). Runs ahead of any queued
    /// data events. The default ignores it.
    fn on_control(
        &mut self,
        event: &ControlEnvelope,
    ) -> impl Future<Output = HandlerResult> + Send {
        let _ = event;
        std::future::ready(Ok(()))
    }
}

/// A handler from a closure that returns a future. The closure gets the envelope by
/// reference: take what you need from it, then return a `'static` future.
///
/// ```
/// # use switchyard::bus::handler_fn;
/// # use switchyard::{Bus, Envelope};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let bus = Bus::new();
/// bus.subscribe::<u64, _>("ticks", handler_fn(|ev: &Envelope<u64>| {
///     let v = *ev.payload();
///     async move {
///         assert!(v < 10);
///         Ok(())
///     }
/// }))
/// .unwrap();
/// # }
/// ```
pub fn handler_fn<F>(f: F) -> FnHandler<F> {
    FnHandler(f)
}

/// A handler from a synchronous closure (no `.await` inside): the cheapest kind.
///
/// ```
/// # use switchyard::bus::sync_handler;
/// # use switchyard::{Bus, Envelope};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let bus = Bus::new();
/// let mut seen = 0;
/// bus.subscribe::<u64, _>("ticks", sync_handler(move |ev: &Envelope<u64>| {
///     seen += *ev.payload();
///     Ok(())
/// }))
/// .unwrap();
/// # }
/// ```
pub fn sync_handler<F>(f: F) -> SyncHandler<F> {
    SyncHandler(f)
}

/// See [`handler_fn`].
#[derive(Clone, Debug)]
pub struct FnHandler<F>(F);

/// See [`sync_handler`].
#[derive(Clone, Debug)]
pub struct SyncHandler<F>(F);

impl<T, F, Fut> Handler<T> for FnHandler<F>
where
    F: FnMut(&Envelope<T>) -> Fut + Send + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn handle(&mut self, event: &Envelope<T>) -> impl Future<Output = HandlerResult> + Send {
        (self.0)(event)
    }
}

impl<T, F> Handler<T> for SyncHandler<F>
where
    F: FnMut(&Envelope<T>) -> HandlerResult + Send + 'static,
{
    fn handle(&mut self, event: &Envelope<T>) -> impl Future<Output = HandlerResult> + Send {
        std::future::ready((self.0)(event))
    }
}

/// A control-only handler from a closure; see [`crate::Bus::subscribe_control`].
pub(crate) struct ControlFn<F>(pub F);

impl<F, Fut> Handler<()> for ControlFn<F>
where
    F: FnMut(&ControlEnvelope) -> Fut + Send + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn handle(&mut self, _event: &Envelope<()>) -> impl Future<Output = HandlerResult> + Send {
        std::future::ready(Ok(()))
    }

    fn on_control(
        &mut self,
        event: &ControlEnvelope,
    ) -> impl Future<Output = HandlerResult> + Send {
        (self.0)(event)
    }
}
