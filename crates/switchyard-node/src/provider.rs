//! What the node adds to the operations API: component health from the registry, the
//! engine's counters per strategy, the journal and the bridge.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use switchyard::lifecycle::{Health, LifecycleState};
use switchyard_ops::OpsProvider;
use switchyard_ops::prometheus::{MetricType, MetricsWriter};

use crate::shared::NodeShared;

/// The node's [`OpsProvider`].
pub struct NodeProvider(pub Arc<NodeShared>);

fn health_str(h: &Health) -> (&'static str, Option<&str>) {
    match h {
        Health::Healthy => ("healthy", None),
        Health::Degraded(d) => ("degraded", Some(d)),
        Health::Unhealthy(d) => ("unhealthy", Some(d)),
    }
}

impl OpsProvider for NodeProvider {
    fn degraded(&self) -> Vec<String> {
        self.0
            .registry
            .health()
            .into_iter()
            .filter(|c| {
                matches!(
                    c.state,
                    LifecycleState::Running | LifecycleState::Degraded | LifecycleState::Failed
                )
            })
            .filter_map(|c| match c.health {
                Health::Healthy => None,
                Health::Degraded(why) | Health::Unhealthy(why) => {
                    Some(format!("{}: {why}", c.name))
                }
            })
            .collect()
    }

    fn status(&self) -> Value {
        let s = &self.0;
        let components: Vec<Value> = s
            .registry
            .health()
            .into_iter()
            .map(|c| {
                let (health, detail) = health_str(&c.health);
                let mut v = json!({
                    "name": c.name, "kind": c.kind, "state": c.state,
                    "health": health, "detail": detail,
                    "restarts": c.restarts, "last_error": c.last_error,
                });
                match c.name.as_str() {
                    "feed" | "remote-feed" => {
                        v["published"] = s.feed_stats.published.load(Ordering::Relaxed).into();
                        v["skipped"] = s.feed_stats.skipped.load(Ordering::Relaxed).into();
                    }
                    "journal" => {
                        if let Some(j) = s.journal.get() {
                            v["dir"] = json!(j.config().dir);
                            v["stats"] = json!(j.stats());
                            v["outage"] = json!(j.outage());
                            v["gaps"] = json!(j.gaps());
                        }
                        let root = s.journal_root.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(r) = root.as_ref() {
                            v["root"] = json!(r);
                        }
                    }
                    "nats-bridge" => {
                        if let Some(b) = s.bridge.get() {
                            v["stats"] = json!(b.stats());
                        }
                    }
                    _ => {}
                }
                v
            })
            .collect();
        json!({
            "role": s.role,
            "components": components,
            // The feed role runs no strategies: no engine figures to show.
            "engine": (s.role != crate::config::Role::Feed).then(|| s.view()),
        })
    }

    fn ready(&self) -> bool {
        self.0.is_ready()
    }

    fn write_metrics(&self, w: &mut MetricsWriter) {
        let s = &self.0;
        w.counter(
            "switchyard_feed_events_total",
            "Market data events published by the feed (or received from NATS).",
            s.feed_stats.published.load(Ordering::Relaxed),
        );
        w.counter(
            "switchyard_feed_skipped_lines_total",
            "Bad data lines skipped by the replay feed.",
            s.feed_stats.skipped.load(Ordering::Relaxed),
        );
        {
            let mut f = w.family(
                "switchyard_component_up",
                "1 while a component is running (or degraded), by component.",
                MetricType::Gauge,
            );
            for c in s.registry.health() {
                let up = matches!(c.state, LifecycleState::Running | LifecycleState::Degraded);
                f.sample(&[("component", c.name.as_str())], u64::from(up));
            }
        }
        {
            let v = s.view();
            w.counter(
                "switchyard_orders_total",
                "Order requests from strategies.",
                v.stats.orders,
            );
            w.counter(
                "switchyard_orders_sent_total",
                "Orders approved by the risk guard and sent to a venue.",
                v.stats.orders_sent,
            );
            w.counter("switchyard_fills_total", "Fills.", v.stats.fills);
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
            {
                let mut f = w.family(
                    "switchyard_engine_errors_total",
                    "Errors the engine counted (and fed to policy.error_rate), by kind.",
                    MetricType::Counter,
                );
                for (kind, n) in &v.stats.errors {
                    f.sample(&[("kind", kind.as_str())], *n);
                }
            }
            w.gauge(
                "switchyard_open_orders",
                "Orders open at the venues.",
                v.open_orders as u64,
            );
            w.gauge(
                "switchyard_flatten_open_positions",
                "Positions a flatten gave up on (still open past its bounds).",
                v.flatten_failed.len() as u64,
            );
            if let Some(p) = v.total_pnl {
                w.gauge(
                    "switchyard_pnl",
                    "Total P&L (realised + unrealised - fees), in quote currency.",
                    p.to_f64(),
                );
            }
            {
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
            let per =
                |w: &mut MetricsWriter,
                 name: &str,
                 help: &str,
                 kind: MetricType,
                 get: &dyn Fn(&switchyard_trading::engine::StrategyView) -> f64| {
                    let mut f = w.family(name, help, kind);
                    for st in &v.strategies {
                        f.sample(&[("strategy", st.name.as_str())], get(st));
                    }
                };
            per(
                w,
                "switchyard_strategy_orders_total",
                "Order requests, by strategy.",
                MetricType::Counter,
                &|s| s.stats.orders as f64,
            );
            per(
                w,
                "switchyard_strategy_fills_total",
                "Fills, by strategy.",
                MetricType::Counter,
                &|s| s.stats.fills as f64,
            );
            per(
                w,
                "switchyard_strategy_rejections_total",
                "Rejected orders, by strategy.",
                MetricType::Counter,
                &|s| s.stats.rejected() as f64,
            );
            per(
                w,
                "switchyard_strategy_open_orders",
                "Open orders, by strategy.",
                MetricType::Gauge,
                &|s| s.open_orders as f64,
            );
            per(
                w,
                "switchyard_strategy_pnl",
                "P&L (realised + unrealised - fees) in quote currency, by strategy.",
                MetricType::Gauge,
                &|s| s.total_pnl.map_or(f64::NAN, |m| m.to_f64()),
            );
            let mut f = w.family(
                "switchyard_strategy_position",
                "Signed position, by strategy and instrument.",
                MetricType::Gauge,
            );
            for st in &v.strategies {
                for p in &st.positions {
                    f.sample(
                        &[
                            ("strategy", st.name.as_str()),
                            ("instrument", p.instrument.as_str()),
                        ],
                        p.quantity.to_f64(),
                    );
                }
            }
        }
        if let Some(b) = s.bridge.get() {
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
                "switchyard_nats_resequenced_total",
                "Incoming JetStream messages held behind a gap in their lane and released in order.",
                n.resequenced,
            );
            w.counter(
                "switchyard_nats_gaps_skipped_total",
                "Lane numbers the importer stopped waiting for (reorder wait passed or too many held).",
                n.gaps_skipped,
            );
            w.counter(
                "switchyard_nats_out_of_order_total",
                "Imported events older than one already imported from the same origin and kind.",
                n.out_of_order,
            );
            w.gauge(
                "switchyard_nats_held",
                "Incoming messages the resequencer holds now (unacknowledged).",
                n.held,
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
        if let Some(j) = s.journal.get() {
            w.gauge(
                "switchyard_journal_durable_index",
                "Highest journal record index known to be on disk.",
                j.durable(),
            );
            let st = j.stats();
            w.gauge(
                "switchyard_journal_writing",
                "1 while the journal writes; 0 during an outage (a failed write or fsync).",
                u64::from(j.outage().is_none()),
            );
            w.counter(
                "switchyard_journal_records_lost_total",
                "Records refused during journal outages (see the gaps in /status).",
                st.records_lost,
            );
            w.counter(
                "switchyard_journal_gaps_total",
                "Journal outages that ended (each a gap in the journal).",
                st.gaps,
            );
            w.counter(
                "switchyard_journal_write_failures_total",
                "Failed journal writes, fsyncs and segment creations (retries included).",
                st.write_failures,
            );
        }
        let root = s.journal_root.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = root.as_ref() {
            w.gauge(
                "switchyard_journal_root_bytes",
                "Bytes of every run's journal under the journal root.",
                r.usage.bytes,
            );
            w.gauge(
                "switchyard_journal_root_segments",
                "Segment files under the journal root.",
                r.usage.segments,
            );
            w.gauge(
                "switchyard_journal_root_runs",
                "Run journals under the journal root.",
                r.usage.runs,
            );
            if let Some(max) = r.limits.max_total_bytes {
                w.gauge(
                    "switchyard_journal_root_max_bytes",
                    "Retention limit of the journal root (journal.max_total_mb).",
                    max,
                );
            }
            w.counter(
                "switchyard_journal_retention_deleted_segments_total",
                "Segments retention deleted from the journal root.",
                r.deleted_segments,
            );
            w.counter(
                "switchyard_journal_retention_deleted_runs_total",
                "Run journals retention deleted from the journal root.",
                r.deleted_runs,
            );
        }
    }
}
