//! Wires the pipeline into the operations API (`http.rs`) and the metrics exporter.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use switchyard::lifecycle::Health;

use crate::http::{OpsProvider, OpsState};
use crate::prometheus::{MetricType, MetricsWriter};
use crate::run::Pipeline;

struct Provider(Pipeline);

impl OpsProvider for Provider {
    fn degraded(&self) -> Vec<String> {
        match self.0.bridge.as_ref().map(|b| b.health()) {
            Some(Health::Degraded(why) | Health::Unhealthy(why)) => vec![why],
            _ => Vec::new(),
        }
    }

    fn status(&self) -> serde_json::Value {
        let v = self.0.view();
        let mut components = vec![
            serde_json::json!({"name": "feed", "state": if self.0.ready.load(Ordering::Acquire) { "running" } else { "stopped" },
             "published": self.0.feed_stats.published.load(Ordering::Relaxed),
             "skipped": self.0.feed_stats.skipped.load(Ordering::Relaxed)}),
            serde_json::json!({"name": "trading-engine", "state": if self.0.bus.is_closed() { "stopped" } else { "running" }}),
        ];
        if let Some(j) = &self.0.journal {
            components.push(serde_json::json!({
                "name": "journal",
                "dir": j.config().dir,
                "stats": j.stats(),
            }));
        }
        if let Some(b) = &self.0.bridge {
            let (health, detail) = match b.health() {
                Health::Healthy => ("healthy", None),
                Health::Degraded(d) => ("degraded", Some(d)),
                Health::Unhealthy(d) => ("unhealthy", Some(d)),
            };
            components.push(serde_json::json!({
                "name": "nats-bridge",
                "health": health,
                "detail": detail,
                "stats": b.stats(),
            }));
        }
        serde_json::json!({
            "components": components,
            "engine": v,
        })
    }

    fn ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    fn write_metrics(&self, w: &mut MetricsWriter) {
        let v = self.0.view();
        w.counter(
            "switchyard_feed_events_total",
            "Market data events published by the feed.",
            self.0.feed_stats.published.load(Ordering::Relaxed),
        );
        w.counter(
            "switchyard_feed_skipped_lines_total",
            "Bad data lines skipped by the replay feed.",
            self.0.feed_stats.skipped.load(Ordering::Relaxed),
        );
        w.counter(
            "switchyard_orders_total",
            "Order requests from strategies.",
            v.stats.orders,
        );
        w.counter(
            "switchyard_orders_sent_total",
            "Orders approved by the risk guard and sent to the exchange.",
            v.stats.orders_sent,
        );
        w.counter("switchyard_fills_total", "Fills.", v.stats.fills);
        if let Some(b) = &self.0.bridge {
            let n = b.stats();
            w.gauge(
                "switchyard_nats_connected",
                "1 while the NATS bridge is connected.",
                n.connected,
            );
            w.counter(
                "switchyard_nats_published_total",
                "Events the bridge exported to NATS.",
                n.published,
            );
            w.counter(
                "switchyard_nats_received_total",
                "Events the bridge imported from NATS into the bus.",
                n.received,
            );
            w.counter(
                "switchyard_nats_duplicates_dropped_total",
                "Incoming NATS messages dropped as duplicates.",
                n.duplicates_dropped,
            );
            w.counter(
                "switchyard_nats_reconnects_total",
                "Times the NATS connection came back after a loss.",
                n.reconnects,
            );
            w.gauge(
                "switchyard_nats_buffered",
                "Exported events not yet sent or acknowledged.",
                n.buffered,
            );
        }
        if let Some(j) = &self.0.journal {
            w.gauge(
                "switchyard_journal_durable_index",
                "Highest journal record index known to be on disk.",
                j.durable(),
            );
        }
        {
            let mut f = w.family(
                "switchyard_order_rejections_total",
                "Rejected orders, by reason.",
                MetricType::Counter,
            );
            for (reason, n) in &v.stats.rejections {
                f.sample(&[("reason", reason.as_str())], *n);
            }
        }
        w.gauge(
            "switchyard_open_orders",
            "Orders open at the exchange.",
            v.open_orders as u64,
        );
        if let Some(p) = v.total_pnl {
            w.gauge(
                "switchyard_pnl",
                "Total P&L (realised + unrealised - fees), in quote currency.",
                p.to_f64(),
            );
        }
        let mut f = w.family(
            "switchyard_position",
            "Signed position per instrument.",
            MetricType::Gauge,
        );
        for p in &v.positions {
            f.sample(
                &[("instrument", p.instrument.as_str())],
                p.quantity.to_f64(),
            );
        }
    }
}

/// A running operations API.
pub struct Ops {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Ops {
    /// Stop serving.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Serve the operations API for `p` on `addr`.
pub async fn start(addr: SocketAddr, p: &Pipeline) -> anyhow::Result<Ops> {
    let state = OpsState {
        bus: p.bus.clone(),
        kill_switch: p.kill_switch.clone(),
        breakers: vec![p.breaker.clone()],
        provider: Arc::new(Provider(p.clone())),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    let (bound, task) = crate::http::serve(addr, state, async move { s.cancelled().await })
        .await
        .map_err(|e| anyhow::anyhow!("operations API on {addr}: {e}"))?;
    tracing::info!(addr = %bound, "operations API listening");
    eprintln!("operations API: http://{bound}/status  /metrics  /healthz");
    Ok(Ops { stop, task })
}
