//! `nats-bridge`: the NATS bridge of a multi-process run, in two phases.
//!
//! - `feed` role: exports `market_data.>` and the end-of-feed marker.
//! - `strategy` role: imports `market_data.>` and the marker; exports the engine's
//!   decisions (`orders.>`) so that a risk or monitoring process elsewhere can follow.
//!
//! At shutdown, after the producers stopped and before the bus drains (the intake
//! phase): the importers stop (what was acked is in the bus, what was pulled but not
//! handed over goes back to the server), and in the feed role the exports are flushed
//! (JetStream: stored and acknowledged) and only then the end-of-feed marker published,
//! so that it follows every market event in the stream. After the drain, `stop` waits
//! for the remaining exports' acks under the bridge's own shutdown timeout; events left
//! unacknowledged fail the run.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::Topic;
use switchyard::lifecycle::{BoxFuture, Component, ComponentContext, ComponentError, Health};
use switchyard_nats::BridgeBuilder;
use switchyard_trading::wire::{self, FeedEnd};

use crate::config::Role;
use crate::shared::NodeShared;

/// The bridge as a component (see the [module docs](self)).
pub struct BridgeComponent {
    builder: Mutex<Option<BridgeBuilder>>,
    url: String,
    deps: Vec<String>,
    shutdown_timeout: Duration,
    shared: Arc<NodeShared>,
}

impl BridgeComponent {
    /// A bridge built by `builder` (to `url`, shown redacted), started once `deps` run.
    pub fn new(
        builder: BridgeBuilder,
        url: String,
        deps: Vec<String>,
        shutdown_timeout: Duration,
        shared: Arc<NodeShared>,
    ) -> Self {
        BridgeComponent {
            builder: Mutex::new(Some(builder)),
            url,
            deps,
            shutdown_timeout,
            shared,
        }
    }
}

impl Component for BridgeComponent {
    fn name(&self) -> &str {
        "nats-bridge"
    }

    fn dependencies(&self) -> Vec<String> {
        self.deps.clone()
    }

    fn stop_deadline(&self) -> Option<Duration> {
        Some(self.shutdown_timeout + Duration::from_secs(5))
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
                .ok_or_else(|| ComponentError::msg("the NATS bridge starts only once"))?;
            let bridge = builder
                .start()
                .await
                .map_err(|e| ComponentError::msg(format!("NATS bridge to {}: {e}", self.url)))?;
            tracing::info!(url = %self.url, role = ?self.shared.role, "NATS bridge started");
            let _ = self.shared.bridge.set(bridge);
            Ok(())
        })
    }

    fn stop_intake<'a>(
        &'a self,
        ctx: &'a ComponentContext,
    ) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let Some(b) = self.shared.bridge.get() else {
                return Ok(());
            };
            b.stop_importing().await;
            if self.shared.role != Role::Feed {
                return Ok(());
            }
            if let Err(e) = b.flush().await {
                let msg = format!("NATS: {e}");
                self.shared.fail(msg.clone());
                return Err(ComponentError::msg(msg));
            }
            let end = FeedEnd {
                origin: b.origin().to_owned(),
                published: self.shared.feed_stats.published.load(Ordering::Relaxed),
            };
            let topic = Topic::new(wire::FEED_END_TOPIC).expect("valid topic");
            if ctx.bus().publish(topic, end).await.is_err() {
                let msg = "could not publish the end-of-feed marker";
                self.shared.fail(msg);
                return Err(ComponentError::msg(msg));
            }
            Ok(())
        })
    }

    fn stop<'a>(&'a self, _ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let Some(b) = self.shared.bridge.get() else {
                return Ok(());
            };
            let report = b.shutdown().await;
            if report.unflushed > 0 {
                self.shared.fail(format!(
                    "NATS bridge stopped with {} exported events not acknowledged",
                    report.unflushed
                ));
            }
            Ok(())
        })
    }

    fn health(&self) -> Health {
        match self.shared.bridge.get() {
            Some(b) => b.health(),
            None => Health::Degraded("NATS bridge not started".into()),
        }
    }
}
