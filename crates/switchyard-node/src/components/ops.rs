//! `ops-api`: the operations HTTP API as an observer: up before the producers start,
//! down after everything else stopped, so `/status` and `/metrics` stay readable during
//! the whole shutdown while `/readyz` already answers 503.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::lifecycle::{
    BoxFuture, Component, ComponentContext, ComponentError, ComponentKind,
};
use switchyard_ops::OpsState;
use tokio_util::sync::CancellationToken;

use crate::provider::NodeProvider;
use crate::shared::NodeShared;

/// Serves the operations API on `addr` (port 0 picks a free port).
pub struct OpsComponent {
    addr: SocketAddr,
    shared: Arc<NodeShared>,
    bound: Mutex<Option<SocketAddr>>,
    stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    on_bound: Option<Box<dyn Fn(SocketAddr) + Send + Sync>>,
    deps: Vec<String>,
}

impl OpsComponent {
    /// The API on `addr`, started once `deps` run (the node passes its services, so the
    /// API answers once the node is connected and subscribed, before the feed starts);
    /// `on_bound` is told the bound address (the binary prints it).
    pub fn new(
        addr: SocketAddr,
        shared: Arc<NodeShared>,
        on_bound: Option<Box<dyn Fn(SocketAddr) + Send + Sync>>,
        deps: Vec<String>,
    ) -> Self {
        OpsComponent {
            addr,
            shared,
            bound: Mutex::new(None),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
            on_bound,
            deps,
        }
    }

    /// The bound address, once started.
    pub fn bound(&self) -> Option<SocketAddr> {
        *self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Component for OpsComponent {
    fn name(&self) -> &str {
        "ops-api"
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Observer
    }

    fn dependencies(&self) -> Vec<String> {
        self.deps.clone()
    }

    fn start<'a>(
        &'a self,
        _ctx: &'a ComponentContext,
    ) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let state = OpsState {
                bus: self.shared.bus.clone(),
                kill_switch: self.shared.kill_switch.clone(),
                breakers: self.shared.breakers.clone(),
                provider: Arc::new(NodeProvider(Arc::clone(&self.shared))),
            };
            let stop = self.stop.clone();
            let (bound, task) =
                switchyard_ops::serve(self.addr, state, async move { stop.cancelled().await })
                    .await
                    .map_err(|e| {
                        ComponentError::msg(format!("operations API on {}: {e}", self.addr))
                    })?;
            tracing::info!(addr = %bound, "operations API listening");
            *self.bound.lock().unwrap_or_else(|e| e.into_inner()) = Some(bound);
            *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
            if let Some(f) = &self.on_bound {
                f(bound);
            }
            Ok(())
        })
    }

    fn stop<'a>(&'a self, _ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            self.stop.cancel();
            let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(mut t) = task {
                // Requests in flight may finish; a stalled client does not hold the exit.
                if tokio::time::timeout(Duration::from_secs(2), &mut t)
                    .await
                    .is_err()
                {
                    t.abort();
                }
            }
            Ok(())
        })
    }
}
