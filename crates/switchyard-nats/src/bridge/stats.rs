//! Counters of a running bridge.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Counters of a running bridge; see [`Bridge::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BridgeStats {
    /// Events handed to NATS by the exporter (first attempt; core: written to the client).
    pub published: u64,
    /// JetStream publishes acknowledged by the server (including server-side duplicates).
    pub publish_acked: u64,
    /// JetStream publishes sent again (same message id) after a failed or timed-out ack.
    pub publish_retries: u64,
    /// Core publishes that failed (the event is lost: at-most-once).
    pub publish_errors: u64,
    /// JetStream publishes that can never succeed (the message is larger than the
    /// server's `max_payload`): dropped with an error log naming subject and bus seq.
    pub publish_rejected: u64,
    /// JetStream publish attempts that failed since the last acknowledged one (0 while
    /// publishes go through).
    pub publish_failing_attempts: u64,
    /// The error of the latest failed JetStream publish attempt while
    /// `publish_failing_attempts > 0`.
    pub last_publish_error: Option<String>,
    /// Acks in which the server said "duplicate" (a retry of a message it already had).
    pub server_duplicates: u64,
    /// Events imported into the local bus.
    pub received: u64,
    /// Incoming messages dropped because their message id was already imported.
    pub duplicates_dropped: u64,
    /// Incoming JetStream messages delivered more than once by the server.
    pub redelivered: u64,
    /// Incoming messages skipped: no import registered for their kind (and subject).
    pub unknown_kind: u64,
    /// Incoming messages whose payload did not decode (terminated, not redelivered).
    pub decode_errors: u64,
    /// Incoming messages skipped because this bridge published them.
    pub own_skipped: u64,
    /// Imported events not exported again (loop prevention).
    pub echo_suppressed: u64,
    /// Imported events whose sequence number was lower than one already imported from the
    /// same origin and kind: a reordering that reached the bus (the importer does not
    /// resequence the lane, or delivered a message late after giving its gap up).
    pub out_of_order: u64,
    /// Incoming JetStream messages held behind a gap in their lane and then put on the
    /// bus in lane order (the resequencer at work: a publish retried after a fault landed
    /// in the stream behind later ones).
    pub resequenced: u64,
    /// Lane numbers the importer stopped waiting for (`reorder_wait` passed, or more than
    /// `reorder_max_held` messages were held): what followed them went on without them.
    pub gaps_skipped: u64,
    /// Messages that arrived after their gap was given up, delivered late (out of order).
    pub late_after_gap: u64,
    /// Incoming messages held by the resequencer now (unacked).
    pub held: u64,
    /// Events the export subscriptions' overflow policies dropped.
    pub dropped_overflow: u64,
    /// Exported events not yet sent (core) or not yet acked (JetStream), including the
    /// export subscriptions' queues.
    pub buffered: u64,
    /// Connected to the server now.
    pub connected: bool,
    /// Times the connection came back after a loss.
    pub reconnects: u64,
    /// Times the connection was lost.
    pub disconnects: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) published: AtomicU64,
    pub(super) publish_acked: AtomicU64,
    pub(super) publish_retries: AtomicU64,
    pub(super) publish_errors: AtomicU64,
    pub(super) publish_rejected: AtomicU64,
    /// Failed JetStream publish attempts since the last ack.
    pub(super) failing_attempts: AtomicU64,
    /// When (see [`now_ms`]) publishes started failing; 0 while they go through.
    pub(super) failing_since_ms: AtomicU64,
    /// When (see [`now_ms`]) the connection was last (re)established.
    pub(super) connected_since_ms: AtomicU64,
    pub(super) last_publish_error: Mutex<Option<String>>,
    pub(super) server_duplicates: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) duplicates_dropped: AtomicU64,
    pub(super) redelivered: AtomicU64,
    pub(super) unknown_kind: AtomicU64,
    pub(super) decode_errors: AtomicU64,
    pub(super) own_skipped: AtomicU64,
    pub(super) echo_suppressed: AtomicU64,
    pub(super) out_of_order: AtomicU64,
    pub(super) resequenced: AtomicU64,
    pub(super) gaps_skipped: AtomicU64,
    pub(super) late_after_gap: AtomicU64,
    pub(super) held: AtomicU64,
    /// The connection as the exporter sees it: up or down, and how many times it came
    /// back.
    pub(super) link: LinkWatch,
    pub(super) outstanding: AtomicU64,
    pub(super) connected: AtomicBool,
    pub(super) ever_connected: AtomicBool,
    /// Set by shutdown: the connection's end is expected, not a fault.
    pub(super) closing: AtomicBool,
    pub(super) reconnects: AtomicU64,
    pub(super) disconnects: AtomicU64,
}

/// The connection's state, published to the exporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Link {
    pub(super) up: bool,
    /// Times the connection came back after a loss.
    pub(super) epoch: u64,
}

pub(super) struct LinkWatch(pub(super) tokio::sync::watch::Sender<Link>);

impl Default for LinkWatch {
    fn default() -> Self {
        LinkWatch(tokio::sync::watch::Sender::new(Link { up: true, epoch: 0 }))
    }
}

impl LinkWatch {
    pub(super) fn down(&self) {
        self.0
            .send_if_modified(|l| std::mem::replace(&mut l.up, false));
    }

    pub(super) fn restored(&self) {
        self.0.send_modify(|l| {
            l.up = true;
            l.epoch += 1;
        });
    }
}

pub(super) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Milliseconds since a process-wide base instant, plus one (0 means "never").
pub(super) fn now_ms() -> u64 {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    base.elapsed().as_millis() as u64 + 1
}

/// How long JetStream publishes may keep failing, while connected, before
/// [`Bridge::health`] reports Degraded.
pub(super) const PUBLISH_FAILING_DEGRADED_AFTER: Duration = Duration::from_secs(5);

impl Counters {
    pub(super) fn publish_failed(&self, error: &dyn std::fmt::Display) {
        inc(&self.failing_attempts);
        let _ =
            self.failing_since_ms
                .compare_exchange(0, now_ms(), Ordering::SeqCst, Ordering::SeqCst);
        *self
            .last_publish_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }

    pub(super) fn publish_succeeded(&self) {
        if self.failing_attempts.swap(0, Ordering::SeqCst) > 0 {
            self.failing_since_ms.store(0, Ordering::SeqCst);
            *self
                .last_publish_error
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// How long publishes have been failing while connected, with the last error.
    pub(super) fn publish_failing(&self) -> Option<(Duration, String)> {
        let since = self.failing_since_ms.load(Ordering::SeqCst);
        if since == 0 {
            return None;
        }
        let since = since.max(self.connected_since_ms.load(Ordering::SeqCst));
        let err = self
            .last_publish_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        Some((Duration::from_millis(now_ms().saturating_sub(since)), err))
    }
}
