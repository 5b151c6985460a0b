//! The bridge as a lifecycle [`Component`].

use std::sync::{Mutex, OnceLock};

use switchyard::lifecycle::{BoxFuture, Component, ComponentContext, ComponentError, Health};

use crate::bridge::{Bridge, BridgeBuilder};

/// A [`Component`] that starts a [`Bridge`] in `start` and shuts it down in `stop`.
/// Made by [`BridgeBuilder::into_component`]. It starts once: a second `start` fails.
pub struct BridgeComponent {
    name: String,
    builder: Mutex<Option<BridgeBuilder>>,
    bridge: OnceLock<Bridge>,
}

impl std::fmt::Debug for BridgeComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeComponent")
            .field("name", &self.name)
            .field("bridge", &self.bridge.get())
            .finish()
    }
}

impl BridgeComponent {
    pub(crate) fn new(name: String, builder: BridgeBuilder) -> Self {
        BridgeComponent {
            name,
            builder: Mutex::new(Some(builder)),
            bridge: OnceLock::new(),
        }
    }

    /// The running bridge, once started.
    pub fn bridge(&self) -> Option<&Bridge> {
        self.bridge.get()
    }
}

impl Component for BridgeComponent {
    fn name(&self) -> &str {
        &self.name
    }

    fn start<'a>(
        &'a self,
        _ctx: &'a ComponentContext,
    ) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let builder = self
                .builder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or_else(|| ComponentError::msg("the NATS bridge component starts only once"))?;
            let bridge = builder.start().await.map_err(ComponentError::new)?;
            let _ = self.bridge.set(bridge);
            Ok(())
        })
    }

    fn stop<'a>(&'a self, _ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            if let Some(b) = self.bridge.get() {
                let report = b.shutdown().await;
                if report.unflushed > 0 {
                    return Err(ComponentError::msg(format!(
                        "NATS bridge stopped with {} exported events not acknowledged",
                        report.unflushed
                    )));
                }
            }
            Ok(())
        })
    }

    fn health(&self) -> Health {
        match self.bridge.get() {
            Some(b) => b.health(),
            None => Health::Degraded("NATS bridge not started".into()),
        }
    }
}
