//! `parity-capture` and `journal-replay`: the two parts a replay node adds. The replay
//! is a producer that publishes a journal's market data on the replay clock; the capture
//! records what the engine decides, encoded as the journal encodes it, for the parity
//! check against what the journal recorded.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use switchyard::Envelope;
use switchyard::bus::{Overflow, Subscription, sync_handler};
use switchyard::clock::ManualClock;
use switchyard::lifecycle::{
    BoxFuture, Component, ComponentContext, ComponentError, ComponentKind, Escalation,
    RestartPolicy,
};
use switchyard_journal::{Pace, ReadFilter, ReplayStats, Replayer};
use switchyard_trading::exchange::ExecEvent;
use switchyard_trading::model::{MarketEvent, OrderRejected, OrderRequest};
use switchyard_trading::wire;
use tokio::task::JoinHandle;

use crate::parity::Decisions;
use crate::shared::NodeShared;

/// Captures the engine's decisions (see the [module docs](self)).
pub struct CaptureComponent {
    decisions: Arc<Mutex<Decisions>>,
    subs: Mutex<Vec<Subscription>>,
}

impl CaptureComponent {
    /// A capture filling `decisions`.
    pub fn new(decisions: Arc<Mutex<Decisions>>) -> Self {
        CaptureComponent {
            decisions,
            subs: Mutex::new(Vec::new()),
        }
    }
}

fn tap<T: Serialize + Send + Sync + 'static>(
    ctx: &ComponentContext,
    pattern: &str,
    kind: &'static str,
    into: &Arc<Mutex<Decisions>>,
) -> Result<Subscription, ComponentError> {
    let into = Arc::clone(into);
    ctx.bus()
        .subscription::<T>(pattern)
        .map_err(ComponentError::new)?
        .name(format!("replay-capture:{kind}"))
        .capacity(65_536)
        .overflow(Overflow::Block)
        .subscribe(sync_handler(move |ev: &Envelope<T>| {
            let bytes = switchyard_journal::encode_payload(ev.payload())?;
            into.lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(kind)
                .or_default()
                .push((ev.topic.as_str().to_owned(), bytes));
            Ok(())
        }))
        .map_err(ComponentError::new)
}

impl Component for CaptureComponent {
    fn name(&self) -> &str {
        "parity-capture"
    }

    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let d = &self.decisions;
            let subs = vec![
                tap::<OrderRequest>(ctx, wire::ORDER_REQUESTS, wire::ORDER_REQUEST, d)?,
                tap::<OrderRejected>(ctx, wire::ORDER_REJECTIONS, wire::ORDER_REJECTED, d)?,
                tap::<ExecEvent>(ctx, wire::EXEC_EVENTS, wire::EXEC_EVENT, d)?,
            ];
            *self.subs.lock().unwrap_or_else(|e| e.into_inner()) = subs;
            Ok(())
        })
    }

    fn stop<'a>(&'a self, _ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            super::unsubscribe_all(&self.subs);
            Ok(())
        })
    }
}

/// Replays a journal's market data onto the bus, driving the replay clock.
pub struct JournalReplayComponent {
    path: std::path::PathBuf,
    clock: Arc<ManualClock>,
    pace: Pace,
    filter: Mutex<Option<ReadFilter>>,
    task: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<NodeShared>,
    /// What the replay published and skipped.
    pub stats: Arc<Mutex<Option<ReplayStats>>>,
}

impl JournalReplayComponent {
    /// A replay of the journal at `path`.
    pub fn new(
        path: std::path::PathBuf,
        clock: Arc<ManualClock>,
        pace: Pace,
        filter: ReadFilter,
        shared: Arc<NodeShared>,
    ) -> Self {
        JournalReplayComponent {
            path,
            clock,
            pace,
            filter: Mutex::new(Some(filter)),
            task: Mutex::new(None),
            shared,
            stats: Arc::new(Mutex::new(None)),
        }
    }
}

impl Component for JournalReplayComponent {
    fn name(&self) -> &str {
        "journal-replay"
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Producer
    }

    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::never(Escalation::ShutdownSystem)
    }

    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let filter = self
                .filter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or_else(|| ComponentError::msg("the replay starts only once"))?;
            let (bus, clock, pace, path) = (
                ctx.bus().clone(),
                Arc::clone(&self.clock),
                self.pace,
                self.path.clone(),
            );
            let (done, shared, stats, cancel) = (
                ctx.clone(),
                Arc::clone(&self.shared),
                Arc::clone(&self.stats),
                ctx.cancellation().clone(),
            );
            let task = ctx.spawn_cooperative("replay", async move {
                let replayer = Replayer::new(&path).decoder::<MarketEvent>(wire::MARKET_EVENT);
                let replay = replayer.run(&bus, Some(&clock), pace, filter);
                tokio::select! {
                    r = replay => match r {
                        Ok(s) => {
                            *stats.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
                            done.complete("end of journal");
                        }
                        Err(e) => {
                            shared.fail(format!("replaying {}: {e}", path.display()));
                            done.request_shutdown("replay failed");
                        }
                    },
                    () = cancel.cancelled() => {}
                }
            });
            *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
            Ok(())
        })
    }

    fn stop<'a>(&'a self, _ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(t) = task {
                let _ = t.await;
            }
            Ok(())
        })
    }
}
