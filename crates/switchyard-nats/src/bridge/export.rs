//! The exporter: local bus events to NATS (core, or JetStream with acks and retries).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use async_nats::{Client, HeaderMap, Subject};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;
use switchyard::bus::{Handler, HandlerError, HandlerResult};
use switchyard::{Envelope, Topic};
use tokio::sync::mpsc;

use super::{
    loop_guard::LoopGuard,
    stats::{Counters, inc},
};
use crate::wire;

/// One event on its way to NATS.
pub(super) struct Outgoing {
    pub(super) subject: Subject,
    pub(super) payload: Bytes,
    /// Built for the first attempt; a retry builds the same headers again (same
    /// `Nats-Msg-Id`), so the first attempt needs no copy.
    pub(super) headers: Option<HeaderMap>,
    pub(super) kind: &'static str,
    pub(super) seq: u64,
    pub(super) ts: u64,
    /// The export subscription's subject pattern (see [`wire::LANE`]).
    pub(super) lane: Arc<str>,
    /// Its number in the lane (see [`wire::LANE_SEQ`]); 0: not numbered (core mode).
    pub(super) lane_seq: u64,
    /// Its place in the exporter's sending order (set when the exporter takes it): the
    /// order retries go in.
    pub(super) ordinal: u64,
}

impl Outgoing {
    pub(super) fn take_headers(&mut self, origin: &str) -> HeaderMap {
        self.headers.take().unwrap_or_else(|| {
            build_headers(
                origin,
                self.kind,
                self.seq,
                self.ts,
                &self.lane,
                self.lane_seq,
            )
        })
    }
}

/// The headers of an exported event: with its lane number when it has one (JetStream),
/// without (core mode, where nothing resequences and nothing is retried).
fn build_headers(
    origin: &str,
    kind: &str,
    seq: u64,
    ts: u64,
    lane: &str,
    lane_seq: u64,
) -> HeaderMap {
    if lane_seq == 0 {
        wire::headers(origin, kind, seq, ts)
    } else {
        wire::lane_headers(origin, kind, seq, ts, lane, lane_seq)
    }
}

pub(super) struct ExportShared {
    pub(super) prefix: String,
    pub(super) origin: String,
    pub(super) guard: Arc<LoopGuard>,
    pub(super) guard_enabled: bool,
    pub(super) counters: Arc<Counters>,
    /// Number each lane's messages (JetStream: the importer resequences by them).
    pub(super) lanes: bool,
}

/// Payloads are serialized into one growing buffer and split off it, so that many share
/// one allocation (freed once the last of them is sent or acked).
pub(super) const PAYLOAD_BLOCK: usize = 64 * 1024;

pub(super) struct ExportHandler {
    pub(super) kind: &'static str,
    pub(super) tx: mpsc::Sender<Outgoing>,
    pub(super) shared: Arc<ExportShared>,
    pub(super) subjects: HashMap<Topic, Subject>,
    pub(super) buf: BytesMut,
    /// This subscription's lane: its subject pattern, and the last number given out.
    pub(super) lane: Arc<str>,
    pub(super) lane_seq: u64,
}

impl ExportHandler {
    pub(super) fn prepare<T: Serialize>(
        &mut self,
        ev: &Envelope<T>,
    ) -> Result<Option<Outgoing>, HandlerError> {
        let sh = &self.shared;
        if sh.guard_enabled && sh.guard.take(ev.seq) {
            inc(&sh.counters.echo_suppressed);
            return Ok(None);
        }
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(PAYLOAD_BLOCK);
        }
        let written = serde_json::to_writer((&mut self.buf).writer(), ev.payload());
        if let Err(e) = written {
            self.buf.clear();
            return Err(HandlerError::msg(format!(
                "cannot serialize {} event on {} for NATS: {e}",
                self.kind, ev.topic
            )));
        }
        let payload = self.buf.split().freeze();
        let subject = self
            .subjects
            .entry(ev.topic)
            .or_insert_with(|| {
                Subject::from(if sh.prefix.is_empty() {
                    ev.topic.as_str().to_owned()
                } else {
                    format!("{}.{}", sh.prefix, ev.topic)
                })
            })
            .clone();
        let ts = ev.ts.as_nanos();
        let lane_seq = if sh.lanes {
            self.lane_seq += 1;
            self.lane_seq
        } else {
            0
        };
        Ok(Some(Outgoing {
            subject,
            headers: Some(build_headers(
                &sh.origin, self.kind, ev.seq, ts, &self.lane, lane_seq,
            )),
            payload,
            kind: self.kind,
            seq: ev.seq,
            ts,
            lane: Arc::clone(&self.lane),
            lane_seq,
            ordinal: 0,
        }))
    }
}

impl<T: Serialize + Send + Sync + 'static> Handler<T> for ExportHandler {
    fn handle(&mut self, ev: &Envelope<T>) -> impl Future<Output = HandlerResult> + Send {
        let prepared = self.prepare(ev);
        let tx = &self.tx;
        let counters = &self.shared.counters;
        async move {
            if let Some(out) = prepared? {
                counters.outstanding.fetch_add(1, Ordering::SeqCst);
                if tx.send(out).await.is_err() {
                    counters.outstanding.fetch_sub(1, Ordering::SeqCst);
                    return Err(HandlerError::msg("NATS bridge exporter stopped"));
                }
            }
            Ok(())
        }
    }
}

/// Most events the exporter takes from its buffer per wake-up.
pub(super) const EXPORT_BATCH: usize = 256;

pub(super) async fn run_core_exporter(
    client: Client,
    mut rx: mpsc::Receiver<Outgoing>,
    counters: Arc<Counters>,
    origin: Arc<str>,
) {
    let mut batch = Vec::with_capacity(EXPORT_BATCH);
    while rx.recv_many(&mut batch, EXPORT_BATCH).await > 0 {
        for mut o in batch.drain(..) {
            let headers = o.take_headers(&origin);
            match client
                .publish_with_headers(o.subject.clone(), headers, o.payload)
                .await
            {
                Ok(()) => inc(&counters.published),
                Err(e) => {
                    inc(&counters.publish_errors);
                    tracing::warn!(subject = %o.subject, error = %e, "NATS publish failed; event lost (core mode)");
                }
            }
            counters.outstanding.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

pub(super) type AckResult =
    Result<jetstream::publish::PublishAck, jetstream::context::PublishError>;

/// A publish awaiting its ack, with the message (to send again if the ack fails).
pub(super) struct Pending {
    pub(super) out: Option<Outgoing>,
    pub(super) ack: BoxFuture<'static, AckResult>,
    /// The connection's epoch when it was sent (see `Link`).
    pub(super) epoch: u64,
}

impl Future for Pending {
    type Output = (Outgoing, AckResult);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let r = std::task::ready!(self.ack.as_mut().poll(cx));
        let out = self.out.take().expect("Pending polled after completion");
        std::task::Poll::Ready((out, r))
    }
}

pub(super) fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_millis((20u64 << attempt.min(6)).min(1000))
}

/// Can this publish error never turn into success by retrying?
pub(super) fn is_permanent(e: &jetstream::context::PublishError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::PublishErrorKind::MaxPayloadExceeded
    )
}

/// Drop a message the server will never take (at-least-once does not apply to it).
pub(super) fn reject(counters: &Counters, o: &Outgoing, e: &jetstream::context::PublishError) {
    inc(&counters.publish_rejected);
    counters.outstanding.fetch_sub(1, Ordering::SeqCst);
    tracing::error!(
        subject = %o.subject,
        seq = o.seq,
        kind = o.kind,
        bytes = o.payload.len(),
        error = %e,
        "JetStream publish can never succeed; event dropped"
    );
}

/// Messages waiting to be published again, in the exporter's sending order, after a
/// failed send or ack.
pub(super) struct Retries {
    pub(super) queue: VecDeque<Outgoing>,
    /// When the next attempt may go.
    pub(super) at: tokio::time::Instant,
    /// Consecutive failures: the backoff grows with them.
    pub(super) attempt: u32,
}

impl Retries {
    /// Queue `o` in its place by sending order (acks fail in any order).
    pub(super) fn put(&mut self, o: Outgoing) {
        let at = self.queue.partition_point(|q| q.ordinal < o.ordinal);
        self.queue.insert(at, o);
    }

    /// `o` failed with `e` (`what` happened): count it and schedule it again.
    pub(super) fn failed(
        &mut self,
        counters: &Counters,
        o: Outgoing,
        e: &jetstream::context::PublishError,
        what: &'static str,
    ) {
        inc(&counters.publish_retries);
        counters.publish_failed(e);
        tracing::debug!(subject = %o.subject, error = %e, "JetStream publish {what}; will retry");
        self.put(o);
        self.at = tokio::time::Instant::now() + retry_backoff(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
    }

    /// The connection came back (epoch `epoch`): what was sent before it may have been
    /// lost with the old connection and would only fail at its ack timeout. Send it
    /// again now, in order (the server drops what it already had, by message id).
    pub(super) fn reconnected(
        &mut self,
        counters: &Counters,
        inflight: &mut FuturesUnordered<Pending>,
        epoch: u64,
    ) {
        let mut again = 0u64;
        for mut p in std::mem::take(inflight) {
            match p.out.take() {
                Some(o) if p.epoch < epoch => {
                    again += 1;
                    self.put(o);
                }
                out => {
                    p.out = out;
                    inflight.push(p);
                }
            }
        }
        counters.publish_retries.fetch_add(again, Ordering::Relaxed);
        self.at = tokio::time::Instant::now();
        self.attempt = 0;
        if again > 0 {
            tracing::debug!(
                messages = again,
                "NATS connection restored; publishes not acked before it are sent again"
            );
        }
    }
}

pub(super) async fn run_js_exporter(
    js: jetstream::Context,
    mut rx: mpsc::Receiver<Outgoing>,
    counters: Arc<Counters>,
    max_in_flight: usize,
    origin: Arc<str>,
) {
    let max_in_flight = max_in_flight.max(1);
    let mut inflight: FuturesUnordered<Pending> = FuturesUnordered::new();
    let mut retry = Retries {
        queue: VecDeque::new(),
        at: tokio::time::Instant::now(),
        attempt: 0,
    };
    let mut closed = false;
    let mut batch: Vec<Outgoing> = Vec::with_capacity(EXPORT_BATCH);
    let mut link_rx = counters.link.0.subscribe();
    let mut link = *link_rx.borrow_and_update();
    let mut ordinal = 0u64;

    // Sends one message (same headers, hence same Nats-Msg-Id, on every attempt).
    async fn send(
        js: &jetstream::Context,
        origin: &str,
        mut o: Outgoing,
        epoch: u64,
    ) -> Result<Pending, (Outgoing, jetstream::context::PublishError)> {
        let publish = PublishMessage::build()
            .payload(o.payload.clone())
            .headers(o.take_headers(origin));
        match js.send_publish(o.subject.clone(), publish).await {
            Ok(fut) => Ok(Pending {
                out: Some(o),
                ack: fut.into_future(),
                epoch,
            }),
            Err(e) => Err((o, e)),
        }
    }

    loop {
        if closed && inflight.is_empty() && retry.queue.is_empty() {
            break;
        }
        let room = max_in_flight.saturating_sub(inflight.len());
        // While the connection is down nothing is sent: the client would buffer it and
        // send it on the new connection ahead of the publishes lost with the old one.
        let up = link.up;
        tokio::select! {
            biased;
            Ok(()) = link_rx.changed() => {
                let now = *link_rx.borrow_and_update();
                if now.epoch != link.epoch {
                    retry.reconnected(&counters, &mut inflight, now.epoch);
                }
                link = now;
            },
            Some((o, res)) = inflight.next(), if !inflight.is_empty() => match res {
                Ok(ack) => {
                    inc(&counters.publish_acked);
                    if ack.duplicate {
                        inc(&counters.server_duplicates);
                    }
                    retry.attempt = 0;
                    counters.publish_succeeded();
                    counters.outstanding.fetch_sub(1, Ordering::SeqCst);
                }
                Err(e) => retry.failed(&counters, o, &e, "not acked"),
            },
            _ = tokio::time::sleep_until(retry.at), if up && room > 0 && !retry.queue.is_empty() => {
                if let Some(o) = retry.queue.pop_front() {
                    match send(&js, &origin, o, link.epoch).await {
                        Ok(f) => inflight.push(f),
                        Err((o, e)) if is_permanent(&e) => reject(&counters, &o, &e),
                        Err((o, e)) => retry.failed(&counters, o, &e, "failed"),
                    }
                }
            },
            n = rx.recv_many(&mut batch, room.min(EXPORT_BATCH)), if up && room > 0 && retry.queue.is_empty() && !closed => {
                if n == 0 {
                    closed = true;
                }
                for mut o in batch.drain(..) {
                    inc(&counters.published);
                    ordinal += 1;
                    o.ordinal = ordinal;
                    if !retry.queue.is_empty() {
                        // An earlier one of this batch failed: keep the order.
                        retry.put(o);
                        continue;
                    }
                    match send(&js, &origin, o, link.epoch).await {
                        Ok(f) => inflight.push(f),
                        Err((o, e)) if is_permanent(&e) => reject(&counters, &o, &e),
                        Err((o, e)) => retry.failed(&counters, o, &e, "failed"),
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn retry_sends_the_same_headers() {
        let mut o = Outgoing {
            subject: Subject::from("sy.a"),
            payload: Bytes::from_static(b"{}"),
            headers: Some(wire::lane_headers(
                "n@0123456789abcdef",
                "k",
                42,
                7,
                "sy.>",
                3,
            )),
            kind: "k",
            seq: 42,
            ts: 7,
            lane: Arc::from("sy.>"),
            lane_seq: 3,
            ordinal: 1,
        };
        let first = o.take_headers("n@0123456789abcdef");
        let again = o.take_headers("n@0123456789abcdef");
        assert_eq!(first, again);
        assert_eq!(
            wire::get(Some(&again), wire::MSG_ID),
            Some("n@0123456789abcdef:42")
        );
        assert_eq!(wire::get(Some(&again), wire::LANE_SEQ), Some("3"));
    }
}
