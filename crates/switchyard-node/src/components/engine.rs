//! `trading-engine`: the engine's bus subscription as a service.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::bus::{Overflow, Subscription};
use switchyard::lifecycle::{BoxFuture, Component, ComponentContext, ComponentError};
use switchyard_trading::engine::{EngineCore, EngineHandler};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire;

/// Subscribes the engine to market data (with the control lane, so kill-switch events
/// overtake queued data) and unsubscribes it at stop. Capacity 8192, `Block`: market data
/// is never dropped before the engine.
///
/// With a `timer` (live runs), a supervised task counts the engine's market events every
/// `timer` and, while none arrive, tells the engine how long the silence has lasted
/// ([`EngineCore::on_silence`]): time-based policy rules run on time, not only on data.
/// Replays have no timer: there, time is the data's.
///
/// With `spin`, the subscription busy-polls on its own thread
/// ([`switchyard::bus::SubscriptionBuilder::spin`]): the lowest tick-to-order latency, at
/// the cost of a core.
pub struct EngineComponent {
    engine: Arc<Mutex<EngineCore>>,
    sub: Mutex<Option<Subscription>>,
    timer: Option<Duration>,
    spin: bool,
}

impl EngineComponent {
    /// The component of `engine`, with the silence timer's period (none: no timer) and
    /// whether its subscription spins.
    pub fn new(engine: Arc<Mutex<EngineCore>>, timer: Option<Duration>, spin: bool) -> Self {
        EngineComponent {
            engine,
            sub: Mutex::new(None),
            timer,
            spin,
        }
    }
}

async fn silence_timer(engine: Arc<Mutex<EngineCore>>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    let lock = || engine.lock().unwrap_or_else(|e| e.into_inner());
    let (mut seen, mut silent) = (lock().market_events(), Duration::ZERO);
    loop {
        tick.tick().await;
        let mut e = lock();
        let n = e.market_events();
        if n != seen {
            (seen, silent) = (n, Duration::ZERO);
        } else {
            silent += every;
            e.on_silence(silent);
        }
    }
}

impl Component for EngineComponent {
    fn name(&self) -> &str {
        "trading-engine"
    }

    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let sub = ctx
                .bus()
                .subscription::<MarketEvent>(wire::MARKET_DATA)
                .map_err(ComponentError::new)?
                .name("trading-engine")
                .capacity(8192)
                .overflow(Overflow::Block)
                .control(true)
                .spin(self.spin)
                .subscribe(EngineHandler::new(Arc::clone(&self.engine)))
                .map_err(ComponentError::new)?;
            *self.sub.lock().unwrap_or_else(|e| e.into_inner()) = Some(sub);
            if let Some(every) = self.timer {
                let engine = Arc::clone(&self.engine);
                ctx.spawn("silence-timer", move || {
                    let engine = Arc::clone(&engine);
                    async move {
                        silence_timer(engine, every).await;
                        Ok(())
                    }
                });
            }
            Ok(())
        })
    }

    fn stop<'a>(&'a self, _ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            if let Some(s) = self.sub.lock().unwrap_or_else(|e| e.into_inner()).take() {
                s.unsubscribe();
            }
            Ok(())
        })
    }
}
