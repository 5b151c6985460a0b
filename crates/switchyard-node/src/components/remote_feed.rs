//! `remote-feed`: in the strategy role, counts the market events arriving from NATS and
//! completes the run when the feed's end-of-feed marker arrives.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use switchyard::Envelope;
use switchyard::bus::{Overflow, Subscription, sync_handler};
use switchyard::lifecycle::{BoxFuture, Component, ComponentContext, ComponentError};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire::{self, FeedEnd};

use crate::shared::NodeShared;

/// Subscribes before the bridge starts importing (the bridge depends on it). The feed
/// publishes its marker only once NATS stored every market event before it, and the
/// bridge imports in stream order, so when it arrives every market event of that feed
/// run is in the local bus (or was, in an earlier run of this process that acknowledged
/// it: a restarted strategy resumes where its durable consumer left off).
pub struct RemoteFeedComponent {
    shared: Arc<NodeShared>,
    subs: Mutex<Vec<Subscription>>,
}

impl RemoteFeedComponent {
    /// The component.
    pub fn new(shared: Arc<NodeShared>) -> Self {
        RemoteFeedComponent {
            shared,
            subs: Mutex::new(Vec::new()),
        }
    }
}

impl Component for RemoteFeedComponent {
    fn name(&self) -> &str {
        "remote-feed"
    }

    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let stats = Arc::clone(&self.shared.feed_stats);
            let count = ctx
                .bus()
                .subscription::<MarketEvent>(wire::MARKET_DATA)
                .map_err(ComponentError::new)?
                .name("remote-feed-counter")
                .capacity(65_536)
                .overflow(Overflow::Block)
                .subscribe(sync_handler(move |_: &Envelope<MarketEvent>| {
                    stats.published.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }))
                .map_err(ComponentError::new)?;
            let done = ctx.clone();
            let ended = ctx
                .bus()
                .subscription::<FeedEnd>(wire::FEED_END_TOPIC)
                .map_err(ComponentError::new)?
                .name("remote-feed-end")
                .subscribe(sync_handler(move |ev: &Envelope<FeedEnd>| {
                    let end = ev.payload();
                    tracing::info!(origin = %end.origin, published = end.published, "end of feed");
                    done.complete("end of feed");
                    Ok(())
                }))
                .map_err(ComponentError::new)?;
            self.subs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend([count, ended]);
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
