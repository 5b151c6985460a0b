//! `trading-engine`: the engine's bus subscription as a service.

use std::sync::{Arc, Mutex};

use switchyard::bus::{Overflow, Subscription};
use switchyard::lifecycle::{BoxFuture, Component, ComponentContext, ComponentError};
use switchyard_trading::engine::{EngineCore, EngineHandler};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire;

/// Subscribes the engine to market data (with the control lane, so kill-switch events
/// overtake queued data) and unsubscribes it at stop. Capacity 8192, `Block`: market data
/// is never dropped before the engine.
pub struct EngineComponent {
    engine: Arc<Mutex<EngineCore>>,
    sub: Mutex<Option<Subscription>>,
}

impl EngineComponent {
    /// The component of `engine`.
    pub fn new(engine: Arc<Mutex<EngineCore>>) -> Self {
        EngineComponent {
            engine,
            sub: Mutex::new(None),
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
                .subscribe(EngineHandler::new(Arc::clone(&self.engine)))
                .map_err(ComponentError::new)?;
            *self.sub.lock().unwrap_or_else(|e| e.into_inner()) = Some(sub);
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
