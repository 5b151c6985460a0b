//! `feed`: a market data feed (simulator or file replay) as a producer.

use std::sync::{Arc, Mutex};

use switchyard::lifecycle::{
    BoxFuture, Component, ComponentContext, ComponentError, ComponentKind, Escalation,
    RestartPolicy,
};
use switchyard_trading::feed::{FeedError, FeedSource, FeedSummary, run_feed};
use tokio::task::JoinHandle;

use crate::shared::NodeShared;

/// Runs a feed until its data ends (then the run completes) or the node stops it. The
/// feed runs on a cooperative task — on a thread of its own or on a runtime worker, as
/// [`FeedThread`](crate::config::FeedThread) chose: at stop it is cancelled, finishes
/// the event in hand and reports its [`FeedSummary`] (skipped lines, errors). It is never
/// restarted: a replay restarted from the start would repeat data and move event time
/// backwards.
pub struct FeedComponent {
    source: Mutex<Option<FeedSource>>,
    dedicated: bool,
    task: Mutex<Option<JoinHandle<Result<FeedSummary, FeedError>>>>,
    shared: Arc<NodeShared>,
}

impl FeedComponent {
    /// A feed of `source`, on a thread of its own if `dedicated`, else a runtime worker.
    pub fn new(source: FeedSource, dedicated: bool, shared: Arc<NodeShared>) -> Self {
        FeedComponent {
            source: Mutex::new(Some(source)),
            dedicated,
            task: Mutex::new(None),
            shared,
        }
    }
}

impl Component for FeedComponent {
    fn name(&self) -> &str {
        "feed"
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Producer
    }

    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::never(Escalation::ShutdownSystem)
    }

    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let source = self
                .source
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or_else(|| ComponentError::msg("the feed starts only once"))?;
            let bus = ctx.bus().clone();
            let cancel = ctx.cancellation().clone();
            let stats = Arc::clone(&self.shared.feed_stats);
            let done = ctx.clone();
            let shared = Arc::clone(&self.shared);
            let feed = async move {
                let r = run_feed(bus, source, cancel, stats).await;
                match &r {
                    Ok(s) if !s.cancelled => done.complete("end of data"),
                    Ok(_) => {}
                    Err(e) => {
                        shared.fail(e.to_string());
                        done.request_shutdown(&format!("feed failed: {e}"));
                    }
                }
                r
            };
            let task = if self.dedicated {
                ctx.spawn_dedicated("feed", feed)
            } else {
                ctx.spawn_cooperative("feed", feed)
            };
            *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
            Ok(())
        })
    }

    fn stop<'a>(&'a self, _ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
            let summary = match task {
                Some(t) => match t.await {
                    Ok(Ok(s)) => s,
                    Ok(Err(_)) => FeedSummary::default(),
                    Err(e) => {
                        self.shared.fail(format!("feed task: {e}"));
                        FeedSummary::default()
                    }
                },
                None => FeedSummary::default(),
            };
            *self
                .shared
                .feed_summary
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(summary);
            Ok(())
        })
    }
}
