//! The bridge: exporter (local bus → NATS) and importer (NATS → local bus).

mod builder;
mod connect;
mod dedup;
mod export;
mod import;
mod loop_guard;
mod resequence;
mod sink;
mod stats;
mod stream_setup;

pub use builder::BridgeBuilder;
pub(crate) use import::{Skip, decode_payload, route};
pub use stats::BridgeStats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::Client;
use serde::Serialize;
use switchyard::lifecycle::Health;
use switchyard::{Bus, Subscription};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::{
    import::NAK_DRAIN,
    stats::{Counters, PUBLISH_FAILING_DEGRADED_AFTER},
};
use crate::config::{BridgeConfig, Mode};
use crate::error::BridgeError;

struct Inner {
    config: BridgeConfig,
    url: String,
    origin: String,
    client: Client,
    counters: Arc<Counters>,
    export_subs: Vec<Subscription>,
    exporter: Mutex<Option<JoinHandle<()>>>,
    importers: Mutex<Vec<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
    closed: AtomicBool,
}

/// A running bridge. Cheap to clone; all clones are the same bridge.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("url", &self.inner.url)
            .field("origin", &self.inner.origin)
            .field("stats", &self.stats())
            .finish()
    }
}

/// What [`Bridge::shutdown`] left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShutdownReport {
    /// The deadline passed before every exported event was sent or acked.
    pub deadline_hit: bool,
    /// Exported events neither sent (core) nor acked (JetStream) at the end.
    pub unflushed: u64,
    /// The final counters.
    pub stats: BridgeStats,
}

impl Bridge {
    /// Start building a bridge for `bus`.
    pub fn builder(bus: Bus, config: BridgeConfig) -> BridgeBuilder {
        BridgeBuilder {
            bus,
            config,
            exports: Vec::new(),
            imports: Vec::new(),
            kinds: HashMap::new(),
            error: None,
        }
    }

    /// The wire origin of this bridge instance: `<origin>@<boot id>`.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &BridgeConfig {
        &self.inner.config
    }

    /// The NATS client (shared; do not close it: [`Bridge::shutdown`] does).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Healthy; Degraded while disconnected from the server, or while JetStream
    /// publishes have been failing (and being retried) for more than 5 s while connected
    /// (e.g. the stream was deleted or its limits refuse messages); Unhealthy once shut
    /// down or if the exporter task or an importer task ended (e.g. the local bus was
    /// closed under the importer).
    pub fn health(&self) -> Health {
        if self.inner.closed.load(Ordering::Acquire) {
            return Health::Unhealthy("NATS bridge shut down".into());
        }
        let exporter_dead = !self.inner.export_subs.is_empty()
            && self
                .inner
                .exporter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_some_and(|h| h.is_finished());
        if exporter_dead {
            return Health::Unhealthy("NATS bridge exporter task ended".into());
        }
        let importer_dead = self
            .inner
            .importers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|h| h.is_finished());
        if importer_dead {
            return Health::Unhealthy("NATS bridge importer task ended".into());
        }
        if !self.is_connected() {
            return Health::Degraded(format!(
                "disconnected from NATS server {}; reconnecting ({} exported events buffered)",
                self.inner.url,
                self.buffered()
            ));
        }
        if let Some((failing, error)) = self.inner.counters.publish_failing()
            && failing >= PUBLISH_FAILING_DEGRADED_AFTER
        {
            return Health::Degraded(format!(
                "JetStream publishes failing for {}s: {error} ({} attempts; {} exported events buffered)",
                failing.as_secs(),
                self.inner.counters.failing_attempts.load(Ordering::Relaxed),
                self.buffered()
            ));
        }
        Health::Healthy
    }

    fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
            && self.inner.counters.connected.load(Ordering::SeqCst)
    }

    fn buffered(&self) -> u64 {
        let queued: u64 = self.inner.export_subs.iter().map(|s| s.stats().depth).sum();
        queued + self.inner.counters.outstanding.load(Ordering::SeqCst)
    }

    /// The counters.
    pub fn stats(&self) -> BridgeStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BridgeStats {
            published: get(&c.published),
            publish_acked: get(&c.publish_acked),
            publish_retries: get(&c.publish_retries),
            publish_errors: get(&c.publish_errors),
            publish_rejected: get(&c.publish_rejected),
            publish_failing_attempts: get(&c.failing_attempts),
            last_publish_error: c
                .last_publish_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            server_duplicates: get(&c.server_duplicates),
            received: get(&c.received),
            duplicates_dropped: get(&c.duplicates_dropped),
            redelivered: get(&c.redelivered),
            unknown_kind: get(&c.unknown_kind),
            decode_errors: get(&c.decode_errors),
            own_skipped: get(&c.own_skipped),
            echo_suppressed: get(&c.echo_suppressed),
            out_of_order: get(&c.out_of_order),
            resequenced: get(&c.resequenced),
            gaps_skipped: get(&c.gaps_skipped),
            late_after_gap: get(&c.late_after_gap),
            held: get(&c.held),
            dropped_overflow: self
                .inner
                .export_subs
                .iter()
                .map(|s| s.stats().dropped.total())
                .sum(),
            buffered: self.buffered(),
            connected: self.is_connected(),
            reconnects: get(&c.reconnects),
            disconnects: get(&c.disconnects),
        }
    }

    /// Wait until every event exported so far has been sent (core: written and flushed to
    /// the server) or acknowledged (JetStream). Waits across disconnections; bound it with
    /// `tokio::time::timeout`.
    pub async fn flush(&self) -> Result<(), BridgeError> {
        let mut tick = Duration::from_micros(200);
        while self.buffered() > 0 {
            if self.exporter_gone() {
                return Err(BridgeError::Closed);
            }
            tokio::time::sleep(tick).await;
            tick = (tick * 2).min(Duration::from_millis(5));
        }
        if matches!(self.inner.config.mode, Mode::Core) {
            self.inner
                .client
                .flush()
                .await
                .map_err(|e| BridgeError::Server {
                    url: self.inner.url.clone(),
                    reason: format!("flush: {e}"),
                })?;
        }
        Ok(())
    }

    fn exporter_gone(&self) -> bool {
        self.inner
            .exporter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|h| h.is_finished())
    }

    /// Shut down within the configured `shutdown_timeout`; see [`Bridge::shutdown_within`].
    pub async fn shutdown(&self) -> ShutdownReport {
        self.shutdown_within(self.inner.config.shutdown_timeout)
            .await
    }

    /// Stop bringing events in, keep exporting: the importers finish the message in hand
    /// (acked once the bus accepted it), hand back (NAK) what they pulled but did not
    /// process, and end. Call it before the local bus shuts down — importers are
    /// producers — then [`Bridge::shutdown`] once the bus has drained into the exporters.
    pub async fn stop_importing(&self) {
        self.stop_importers(tokio::time::Instant::now()).await;
    }

    async fn stop_importers(&self, end: tokio::time::Instant) {
        let _ = self.inner.stop.send(true);
        let importers: Vec<JoinHandle<()>> = std::mem::take(
            &mut *self
                .inner
                .importers
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for mut h in importers {
            // Room for the importer to NAK what it pulled (see `nak_pulled`).
            let grace =
                end.max(tokio::time::Instant::now() + NAK_DRAIN + Duration::from_millis(200));
            if tokio::time::timeout_at(grace, &mut h).await.is_err() {
                h.abort();
            }
        }
    }

    /// Stop exporting (events already queued for export are still sent), wait for the
    /// in-flight publishes and acks until `deadline`, stop the importer once the event it
    /// is handing to the bus was accepted and acked (messages it pulled but did not hand
    /// over are NAKed, so the server redelivers them at once), flush the acks and close
    /// the connection (drain: [`Bridge::client`] is unusable afterwards). Calling it
    /// again returns a fresh report.
    pub async fn shutdown_within(&self, deadline: Duration) -> ShutdownReport {
        let started = tokio::time::Instant::now();
        let end = started + deadline;
        self.inner.closed.store(true, Ordering::Release);
        self.inner.counters.closing.store(true, Ordering::SeqCst);
        for s in &self.inner.export_subs {
            s.unsubscribe();
        }
        let exporter = self
            .inner
            .exporter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut deadline_hit = false;
        let subs_closed = async {
            for s in &self.inner.export_subs {
                s.closed().await;
            }
        };
        if tokio::time::timeout_at(end, subs_closed).await.is_err() {
            deadline_hit = true;
        }
        if let Some(mut h) = exporter {
            if tokio::time::timeout_at(end, &mut h).await.is_err() {
                deadline_hit = true;
                h.abort();
            }
        }
        self.stop_importers(end).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), self.inner.client.flush()).await;
        // Close the connection: drain (unsubscribe, flush what is pending) and close.
        if let Err(e) = self.inner.client.drain().await {
            tracing::debug!(error = %e, "NATS connection already closed");
        }
        let stats = self.stats();
        let unflushed = self.inner.counters.outstanding.load(Ordering::SeqCst);
        tracing::info!(
            deadline_hit,
            unflushed,
            published = stats.published,
            received = stats.received,
            "NATS bridge shut down"
        );
        ShutdownReport {
            deadline_hit,
            unflushed,
            stats,
        }
    }
}
