//! `status-lines`: one line on stderr per interval (events, rate, orders, fills,
//! rejections, P&L, kill switch, drops).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use switchyard::lifecycle::{
    BoxFuture, Component, ComponentContext, ComponentError, ComponentKind,
};

use crate::config::Role;
use crate::shared::NodeShared;

/// Prints status lines every `every`.
pub struct StatusLines {
    every: Duration,
    shared: Arc<NodeShared>,
}

impl StatusLines {
    /// Lines every `every`.
    pub fn new(every: Duration, shared: Arc<NodeShared>) -> Self {
        StatusLines { every, shared }
    }
}

/// One status line.
pub fn status_line(shared: &NodeShared, events: u64, rate: f64) -> String {
    let drops: u64 = shared
        .bus
        .snapshot()
        .subscriptions
        .iter()
        .map(|s| s.dropped.total())
        .sum();
    let ks = if shared.kill_switch.is_engaged() {
        "ENGAGED"
    } else {
        "open"
    };
    if shared.role == Role::Feed {
        return format!("status: events {events} ({rate:.0}/s) kill-switch {ks} drops {drops}");
    }
    let v = shared.view();
    format!(
        "status: events {events} ({rate:.0}/s) orders {} fills {} rejections {} pnl {} kill-switch {ks} drops {drops}",
        v.stats.orders,
        v.stats.fills,
        v.stats.rejected(),
        v.total_pnl
            .map(|m| m.to_string())
            .unwrap_or_else(|| "?".into()),
    )
}

impl Component for StatusLines {
    fn name(&self) -> &str {
        "status-lines"
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Observer
    }

    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let shared = Arc::clone(&self.shared);
            let every = self.every;
            ctx.spawn("lines", move || {
                let shared = Arc::clone(&shared);
                async move {
                    let mut tick = tokio::time::interval(every);
                    tick.tick().await;
                    let (mut last, mut last_t) = (0u64, Instant::now());
                    loop {
                        tick.tick().await;
                        let n = shared.feed_stats.published.load(Ordering::Relaxed);
                        let now = Instant::now();
                        let rate = n.saturating_sub(last) as f64
                            / now.duration_since(last_t).as_secs_f64().max(1e-9);
                        (last, last_t) = (n, now);
                        eprintln!("{}", status_line(&shared, n, rate));
                    }
                }
            });
            Ok(())
        })
    }
}
