//! The engine's bus handler: one subscription on market data, with the control lane.

use std::sync::{Arc, Mutex, MutexGuard};

use switchyard::bus::{HandlerError, HandlerResult};
use switchyard::kill_switch::{KillSwitch, Mode, Scope, TriggerRequest};
use switchyard::{ControlEnvelope, Envelope};

use super::EngineCore;
use crate::model::MarketEvent;

/// The engine's handler: one bus subscription on market data (with the control lane).
///
/// Strategy panics are caught inside the engine (see [`StrategyPanic`](super::StrategyPanic)).
/// A panic of the engine itself leaves its state half-updated: the handler then trips the
/// kill switch for everything (once), and refuses every later event with an error
/// instead of trading on untrusted state.
#[derive(Clone)]
pub struct EngineHandler {
    core: Arc<Mutex<EngineCore>>,
    kill_switch: KillSwitch,
}

impl EngineHandler {
    /// A handler around a shared core.
    pub fn new(core: Arc<Mutex<EngineCore>>) -> Self {
        let kill_switch = core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .kill_switch()
            .clone();
        EngineHandler { core, kill_switch }
    }

    fn lock(&self) -> Result<MutexGuard<'_, EngineCore>, HandlerError> {
        self.core.lock().map_err(|_| {
            let req = TriggerRequest::new(
                Scope::All,
                Mode::Halt,
                "the trading engine panicked: its state is not trusted",
                "trading-engine",
            );
            // Repeats of the same trigger are counted, not audited again.
            self.kill_switch.trigger(req);
            HandlerError::msg("trading engine state poisoned by an earlier panic")
        })
    }
}

impl switchyard::bus::Handler<MarketEvent> for EngineHandler {
    fn handle(
        &mut self,
        event: &Envelope<MarketEvent>,
    ) -> impl std::future::Future<Output = HandlerResult> + Send {
        std::future::ready(self.lock().map(|mut c| c.on_market_data(event)))
    }

    fn on_control(
        &mut self,
        event: &ControlEnvelope,
    ) -> impl std::future::Future<Output = HandlerResult> + Send {
        std::future::ready(self.lock().map(|mut c| c.on_control(event)))
    }
}
