//! The engine's bus handler: one subscription on market data, with the control lane.

use std::sync::{Arc, Mutex};

use switchyard::bus::HandlerResult;
use switchyard::{ControlEnvelope, Envelope};

use super::EngineCore;
use crate::model::MarketEvent;

/// The engine's handler: one bus subscription on market data (with the control lane).
#[derive(Clone)]
pub struct EngineHandler {
    core: Arc<Mutex<EngineCore>>,
}

impl EngineHandler {
    /// A handler around a shared core.
    pub fn new(core: Arc<Mutex<EngineCore>>) -> Self {
        EngineHandler { core }
    }
}

impl switchyard::bus::Handler<MarketEvent> for EngineHandler {
    fn handle(
        &mut self,
        event: &Envelope<MarketEvent>,
    ) -> impl std::future::Future<Output = HandlerResult> + Send {
        self.core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_market_data(event);
        std::future::ready(Ok(()))
    }

    fn on_control(
        &mut self,
        event: &ControlEnvelope,
    ) -> impl std::future::Future<Output = HandlerResult> + Send {
        self.core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_control(event);
        std::future::ready(Ok(()))
    }
}
