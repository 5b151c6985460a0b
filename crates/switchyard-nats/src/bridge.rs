//! The bridge: exporter (local bus → NATS) and importer (NATS → local bus).

use std::any::TypeId;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer::pull, message::PublishMessage};
use async_nats::{Client, ConnectOptions, HeaderMap, Subject};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard::bus::{
    DEFAULT_CAPACITY, Handler, HandlerError, HandlerResult, Overflow, TryPublishError,
};
use switchyard::lifecycle::Health;
use switchyard::{Bus, Envelope, Pattern, Subscription, Topic};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{self, Auth, BridgeConfig, JetStreamConfig, Mode, Storage};
use crate::error::BridgeError;
use crate::wire;

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
    /// same origin and kind: a reordering (a publish retried after a fault), counted and
    /// not corrected.
    pub out_of_order: u64,
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
struct Counters {
    published: AtomicU64,
    publish_acked: AtomicU64,
    publish_retries: AtomicU64,
    publish_errors: AtomicU64,
    publish_rejected: AtomicU64,
    /// Failed JetStream publish attempts since the last ack.
    failing_attempts: AtomicU64,
    /// When (see [`now_ms`]) publishes started failing; 0 while they go through.
    failing_since_ms: AtomicU64,
    /// When (see [`now_ms`]) the connection was last (re)established.
    connected_since_ms: AtomicU64,
    last_publish_error: Mutex<Option<String>>,
    server_duplicates: AtomicU64,
    received: AtomicU64,
    duplicates_dropped: AtomicU64,
    redelivered: AtomicU64,
    unknown_kind: AtomicU64,
    decode_errors: AtomicU64,
    own_skipped: AtomicU64,
    echo_suppressed: AtomicU64,
    out_of_order: AtomicU64,
    outstanding: AtomicU64,
    connected: AtomicBool,
    ever_connected: AtomicBool,
    /// Set by shutdown: the connection's end is expected, not a fault.
    closing: AtomicBool,
    reconnects: AtomicU64,
    disconnects: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Milliseconds since a process-wide base instant, plus one (0 means "never").
fn now_ms() -> u64 {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    base.elapsed().as_millis() as u64 + 1
}

/// How long JetStream publishes may keep failing, while connected, before
/// [`Bridge::health`] reports Degraded.
const PUBLISH_FAILING_DEGRADED_AFTER: Duration = Duration::from_secs(5);

impl Counters {
    fn publish_failed(&self, error: &dyn std::fmt::Display) {
        inc(&self.failing_attempts);
        let _ =
            self.failing_since_ms
                .compare_exchange(0, now_ms(), Ordering::SeqCst, Ordering::SeqCst);
        *self
            .last_publish_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }

    fn publish_succeeded(&self) {
        if self.failing_attempts.swap(0, Ordering::SeqCst) > 0 {
            self.failing_since_ms.store(0, Ordering::SeqCst);
            *self
                .last_publish_error
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// How long publishes have been failing while connected, with the last error.
    fn publish_failing(&self) -> Option<(Duration, String)> {
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

// ---------------------------------------------------------------------------------------
// Loop prevention: bus sequence numbers of events the importer put on the bus.

/// Seqs of imported events that some export subscription will see, with how many will.
/// Bounded: the oldest entries go first (an export subscription that dropped the event to
/// its overflow policy never asks for it).
struct LoopGuard {
    inner: Mutex<SeqSet>,
}

struct SeqSet {
    remaining: HashMap<u64, u32>,
    order: VecDeque<u64>,
    cap: usize,
}

impl LoopGuard {
    fn new(cap: usize) -> Self {
        LoopGuard {
            inner: Mutex::new(SeqSet {
                remaining: HashMap::new(),
                order: VecDeque::new(),
                cap,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeqSet> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True (once per expected exporter) if `seq` was imported.
    fn take(&self, seq: u64) -> bool {
        let mut s = self.lock();
        match s.remaining.get_mut(&seq) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                s.remaining.remove(&seq);
                true
            }
            None => false,
        }
    }
}

impl SeqSet {
    fn insert(&mut self, seq: u64, count: u32) {
        self.remaining.insert(seq, count);
        self.order.push_back(seq);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.remaining.remove(&old);
            }
        }
        if self.order.len() > 2 * self.remaining.len() + 64 {
            let live = &self.remaining;
            self.order.retain(|s| live.contains_key(s));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Duplicate removal by message id.

struct Dedup {
    seen: HashSet<Arc<str>>,
    order: VecDeque<Arc<str>>,
    cap: usize,
    /// Highest sequence number accepted per origin, per kind.
    last_seq: HashMap<Box<str>, Vec<(&'static str, u64)>>,
}

impl Dedup {
    fn new(cap: usize) -> Self {
        Dedup {
            seen: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            last_seq: HashMap::new(),
        }
    }

    /// Record `seq` for (`origin`, `kind`); false if a higher one was accepted before.
    fn in_order(&mut self, origin: &str, kind: &'static str, seq: u64) -> bool {
        if !self.last_seq.contains_key(origin) {
            if self.last_seq.len() >= 4096 {
                // Many short-lived origins: forget them rather than grow without bound.
                self.last_seq.clear();
            }
            self.last_seq.insert(origin.into(), Vec::new());
        }
        let kinds = self.last_seq.get_mut(origin).expect("inserted above");
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, last)) if *last > seq => false,
            Some((_, last)) => {
                *last = seq;
                true
            }
            None => {
                kinds.push((kind, seq));
                true
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    fn insert(&mut self, id: &str) {
        let id: Arc<str> = Arc::from(id);
        if self.seen.insert(Arc::clone(&id)) {
            self.order.push_back(id);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Type erasure for imports.

enum Refused {
    Full,
    Closed,
}

trait Decoded: Send {
    fn try_publish(&mut self, bus: &Bus, topic: Topic) -> Result<u64, Refused>;
    fn publish(self: Box<Self>, bus: Bus, topic: Topic) -> BoxFuture<'static, Result<u64, ()>>;
}

struct Typed<T>(Option<T>);

impl<T: Send + Sync + 'static> Decoded for Typed<T> {
    fn try_publish(&mut self, bus: &Bus, topic: Topic) -> Result<u64, Refused> {
        let Some(ev) = self.0.take() else {
            return Err(Refused::Closed);
        };
        match bus.try_publish(topic, ev) {
            Ok(seq) => Ok(seq),
            Err(TryPublishError::Full { event, .. }) => {
                self.0 = Some(event);
                Err(Refused::Full)
            }
            Err(TryPublishError::Closed(event)) => {
                self.0 = Some(event);
                Err(Refused::Closed)
            }
        }
    }

    fn publish(self: Box<Self>, bus: Bus, topic: Topic) -> BoxFuture<'static, Result<u64, ()>> {
        Box::pin(async move {
            match self.0 {
                Some(ev) => bus.publish(topic, ev).await.map_err(|_| ()),
                None => Err(()),
            }
        })
    }
}

trait Sink: Send + Sync {
    fn decode(&self, payload: &[u8]) -> Result<Box<dyn Decoded>, serde_json::Error>;
    fn type_id(&self) -> TypeId;
}

struct JsonSink<T>(PhantomData<fn() -> T>);

impl<T: DeserializeOwned + Send + Sync + 'static> Sink for JsonSink<T> {
    fn decode(&self, payload: &[u8]) -> Result<Box<dyn Decoded>, serde_json::Error> {
        Ok(Box::new(Typed(Some(decode_payload::<T>(payload)?))))
    }
    fn type_id(&self) -> TypeId {
        TypeId::of::<T>()
    }
}

// ---------------------------------------------------------------------------------------
// Exporter.

/// One event on its way to NATS.
struct Outgoing {
    subject: Subject,
    payload: Bytes,
    /// Built for the first attempt; a retry builds the same headers again (same
    /// `Nats-Msg-Id`), so the first attempt needs no copy.
    headers: Option<HeaderMap>,
    kind: &'static str,
    seq: u64,
    ts: u64,
}

impl Outgoing {
    fn take_headers(&mut self, origin: &str) -> HeaderMap {
        self.headers
            .take()
            .unwrap_or_else(|| wire::headers(origin, self.kind, self.seq, self.ts))
    }
}

struct ExportShared {
    prefix: String,
    origin: String,
    guard: Arc<LoopGuard>,
    guard_enabled: bool,
    counters: Arc<Counters>,
}

/// Payloads are serialized into one growing buffer and split off it, so that many share
/// one allocation (freed once the last of them is sent or acked).
const PAYLOAD_BLOCK: usize = 64 * 1024;

struct ExportHandler {
    kind: &'static str,
    tx: mpsc::Sender<Outgoing>,
    shared: Arc<ExportShared>,
    subjects: HashMap<Topic, Subject>,
    buf: BytesMut,
}

impl ExportHandler {
    fn prepare<T: Serialize>(
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
        Ok(Some(Outgoing {
            subject,
            headers: Some(wire::headers(&sh.origin, self.kind, ev.seq, ts)),
            payload,
            kind: self.kind,
            seq: ev.seq,
            ts,
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
const EXPORT_BATCH: usize = 256;

async fn run_core_exporter(
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

type AckResult = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>;

/// A publish awaiting its ack, with the message (to send again if the ack fails).
struct Pending {
    out: Option<Outgoing>,
    ack: BoxFuture<'static, AckResult>,
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

fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_millis((20u64 << attempt.min(6)).min(1000))
}

/// Can this publish error never turn into success by retrying?
fn is_permanent(e: &jetstream::context::PublishError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::PublishErrorKind::MaxPayloadExceeded
    )
}

/// Drop a message the server will never take (at-least-once does not apply to it).
fn reject(counters: &Counters, o: &Outgoing, e: &jetstream::context::PublishError) {
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

/// Messages waiting to be published again, in order, after a failed send or ack.
struct Retries {
    queue: VecDeque<Outgoing>,
    /// When the next attempt may go.
    at: tokio::time::Instant,
    /// Consecutive failures: the backoff grows with them.
    attempt: u32,
}

impl Retries {
    /// `o` failed with `e` (`what` happened): count it and schedule it again, at the
    /// front of the queue when it was the queue's head, else behind it.
    fn failed(
        &mut self,
        counters: &Counters,
        o: Outgoing,
        e: &jetstream::context::PublishError,
        front: bool,
        what: &'static str,
    ) {
        inc(&counters.publish_retries);
        counters.publish_failed(e);
        tracing::debug!(subject = %o.subject, error = %e, "JetStream publish {what}; will retry");
        if front {
            self.queue.push_front(o);
        } else {
            self.queue.push_back(o);
        }
        self.at = tokio::time::Instant::now() + retry_backoff(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
    }
}

async fn run_js_exporter(
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

    // Sends one message (same headers, hence same Nats-Msg-Id, on every attempt).
    async fn send(
        js: &jetstream::Context,
        origin: &str,
        mut o: Outgoing,
    ) -> Result<Pending, (Outgoing, jetstream::context::PublishError)> {
        let publish = PublishMessage::build()
            .payload(o.payload.clone())
            .headers(o.take_headers(origin));
        match js.send_publish(o.subject.clone(), publish).await {
            Ok(fut) => Ok(Pending {
                out: Some(o),
                ack: fut.into_future(),
            }),
            Err(e) => Err((o, e)),
        }
    }

    loop {
        if closed && inflight.is_empty() && retry.queue.is_empty() {
            break;
        }
        let room = max_in_flight.saturating_sub(inflight.len());
        tokio::select! {
            biased;
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
                Err(e) => retry.failed(&counters, o, &e, false, "not acked"),
            },
            _ = tokio::time::sleep_until(retry.at), if room > 0 && !retry.queue.is_empty() => {
                if let Some(o) = retry.queue.pop_front() {
                    match send(&js, &origin, o).await {
                        Ok(f) => inflight.push(f),
                        Err((o, e)) if is_permanent(&e) => reject(&counters, &o, &e),
                        Err((o, e)) => retry.failed(&counters, o, &e, true, "failed"),
                    }
                }
            },
            n = rx.recv_many(&mut batch, room.min(EXPORT_BATCH)), if room > 0 && retry.queue.is_empty() && !closed => {
                if n == 0 {
                    closed = true;
                }
                for o in batch.drain(..) {
                    inc(&counters.published);
                    if !retry.queue.is_empty() {
                        // An earlier one of this batch failed: keep the order.
                        retry.queue.push_back(o);
                        continue;
                    }
                    match send(&js, &origin, o).await {
                        Ok(f) => inflight.push(f),
                        Err((o, e)) if is_permanent(&e) => reject(&counters, &o, &e),
                        Err((o, e)) => retry.failed(&counters, o, &e, false, "failed"),
                    }
                }
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Importer.

struct ImportEntry {
    pattern: Pattern,
    kind: &'static str,
    sink: Box<dyn Sink>,
}

struct Importer {
    bus: Bus,
    prefix: String,
    own_origin: String,
    entries: Vec<ImportEntry>,
    exports: Vec<(Pattern, TypeId)>,
    guard: Arc<LoopGuard>,
    dedup: Mutex<Dedup>,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
}

/// What to do with an incoming message.
#[derive(Debug, PartialEq, Eq)]
enum Disposition {
    /// Accepted by the bus, or deliberately skipped: ack.
    Ack,
    /// Will never decode: terminate (no redelivery).
    Term,
    /// Not accepted (bus closed or bridge stopping): leave unacked for redelivery.
    Leave,
}

/// An incoming payload as `T` (JSON, the only encoding so far).
pub(crate) fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(payload)
}

/// Why the importer skips a message without reading its payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    /// The subject is not under the bridge's prefix.
    NotUnderPrefix,
    /// The bridge's own message (loop prevention).
    OwnOrigin,
    /// No import for this kind and subject (or the subject is not a valid topic).
    NoImport,
}

/// An incoming message's subject and headers, as the importer reads them.
pub(crate) struct Routed<'a> {
    /// Position of the import that takes it.
    pub(crate) import: usize,
    /// The topic string (the subject without the prefix), a valid topic.
    pub(crate) topic: &'a str,
    /// The headers the importer reads.
    pub(crate) known: wire::Known<'a>,
}

/// The importer's first step: from the subject and headers of an incoming message, the
/// import (pattern, kind) that takes it, or why none does. Nothing is interned: only a
/// subject an import accepts may become a [`Topic`].
pub(crate) fn route<'a, 'i>(
    prefix: &str,
    own_origin: &str,
    imports: impl IntoIterator<Item = (&'i Pattern, &'i str)>,
    subject: &'a str,
    headers: Option<&'a HeaderMap>,
) -> Result<Routed<'a>, Skip> {
    let topic = if prefix.is_empty() {
        Some(subject)
    } else {
        subject
            .strip_prefix(prefix)
            .and_then(|s| s.strip_prefix('.'))
    };
    let topic = topic.ok_or(Skip::NotUnderPrefix)?;
    let known = wire::known(headers);
    if known.origin == Some(own_origin) {
        return Err(Skip::OwnOrigin);
    }
    let kind = known.kind.unwrap_or("");
    let import = imports
        .into_iter()
        .position(|(pattern, k)| k == kind && pattern.matches_str(topic))
        .ok_or(Skip::NoImport)?;
    Topic::check(topic).map_err(|_| Skip::NoImport)?;
    Ok(Routed {
        import,
        topic,
        known,
    })
}

impl Importer {
    async fn process(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> Disposition {
        let imports = self.entries.iter().map(|e| (&e.pattern, e.kind));
        let routed = match route(&self.prefix, &self.own_origin, imports, subject, headers) {
            Ok(r) => r,
            Err(Skip::NotUnderPrefix) => {
                inc(&self.counters.unknown_kind);
                return Disposition::Ack;
            }
            Err(Skip::OwnOrigin) => {
                inc(&self.counters.own_skipped);
                return Disposition::Ack;
            }
            Err(Skip::NoImport) => {
                inc(&self.counters.unknown_kind);
                tracing::debug!(
                    subject,
                    kind = wire::known(headers).kind.unwrap_or(""),
                    "no import registered for this kind and subject; skipped"
                );
                return Disposition::Ack;
            }
        };
        let known = routed.known;
        let kind = known.kind.unwrap_or("");
        let entry = &self.entries[routed.import];
        // Checked by `route`; this interns the string.
        let Ok(topic) = Topic::new(routed.topic) else {
            inc(&self.counters.unknown_kind);
            return Disposition::Ack;
        };
        let msg_id = known.msg_id;
        if let Some(id) = msg_id
            && self
                .dedup
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(id)
        {
            inc(&self.counters.duplicates_dropped);
            return Disposition::Ack;
        }
        let mut decoded = match entry.sink.decode(payload) {
            Ok(d) => d,
            Err(e) => {
                inc(&self.counters.decode_errors);
                tracing::warn!(subject, kind, error = %e, "cannot decode incoming event; dropped");
                return Disposition::Term;
            }
        };
        let type_id = entry.sink.type_id();
        let echo = self
            .exports
            .iter()
            .filter(|(p, t)| *t == type_id && p.matches(&topic))
            .count() as u32;
        if echo == 0 {
            if *self.stop.borrow() {
                return Disposition::Leave;
            }
            // Without waiting first (no allocation); once a `Block` queue is full, wait.
            match decoded.try_publish(&self.bus, topic) {
                Ok(_) => {}
                Err(Refused::Closed) => return Disposition::Leave,
                Err(Refused::Full) => {
                    // Once delivery has begun, some subscriptions may already hold the
                    // event: finish it even when asked to stop (abandoned, it would be
                    // redelivered and reach those twice). The bus releases the wait with
                    // an error if it shuts down; a subscriber stuck for good is cut off
                    // by the shutdown deadline, and the message is redelivered.
                    if decoded.publish(self.bus.clone(), topic).await.is_err() {
                        return Disposition::Leave;
                    }
                }
            }
        } else {
            // The exporter must recognise this event: publish and record its seq under
            // the guard's lock, which the exporter takes before deciding.
            let mut backoff = Duration::from_micros(200);
            loop {
                let r = {
                    let mut g = self.guard.lock();
                    let r = decoded.try_publish(&self.bus, topic);
                    if let Ok(seq) = r {
                        g.insert(seq, echo);
                    }
                    r
                };
                match r {
                    Ok(_) => break,
                    Err(Refused::Closed) => return Disposition::Leave,
                    Err(Refused::Full) => {
                        if *self.stop.borrow() {
                            return Disposition::Leave;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(20));
                    }
                }
            }
        }
        {
            let mut d = self.dedup.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(id) = msg_id {
                d.insert(id);
            }
            // One export subscription sends in sequence order: an older sequence number
            // after a newer one (same origin and kind) is a reordering, e.g. a publish
            // retried after a fault. Counted, not corrected.
            if let (Some(origin), Some(seq)) =
                (known.origin, known.seq.and_then(|s| s.parse::<u64>().ok()))
                && !d.in_order(origin, entry.kind, seq)
            {
                inc(&self.counters.out_of_order);
            }
        }
        inc(&self.counters.received);
        Disposition::Ack
    }
}

async fn run_core_importer(imp: Arc<Importer>, mut sub: async_nats::Subscriber) {
    let mut stop = imp.stop.clone();
    loop {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(msg) = msg else { break };
        imp.process(msg.subject.as_str(), msg.headers.as_ref(), &msg.payload)
            .await;
    }
    let _ = sub.unsubscribe().await;
}

async fn run_js_importer(
    imp: Arc<Importer>,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    batch: usize,
) {
    let mut stop = imp.stop.clone();
    let mut failures = 0u32;
    'outer: loop {
        if *stop.borrow() {
            break;
        }
        // One bounded pull request at a time (it ends when full or at its expiry), not a
        // stream that keeps requests outstanding: when stopping, every message the
        // server sent for the request can be received and given back, none is left in
        // flight to a closed inbox (where it would wait `ack_wait` before redelivery).
        let messages = consumer
            .batch()
            .max_messages(batch.max(1))
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start pulling from JetStream consumer; retrying");
                failures += 1;
                tokio::select! {
                    _ = tokio::time::sleep(retry_backoff(failures)) => continue,
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        };
        loop {
            let next = tokio::select! {
                m = messages.next() => Some(m),
                _ = stop.wait_for(|s| *s) => None,
            };
            let Some(next) = next else {
                nak_pulled(messages, None).await;
                break 'outer;
            };
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "JetStream pull error (the stream recovers by itself)");
                    continue;
                }
                None => continue 'outer,
            };
            failures = 0;
            if let Ok(info) = msg.info()
                && info.delivered > 1
            {
                inc(&imp.counters.redelivered);
            }
            let d = imp
                .process(msg.subject.as_str(), msg.headers.as_ref(), &msg.payload)
                .await;
            let acked = match d {
                Disposition::Ack => msg.ack().await,
                Disposition::Term => msg.ack_with(jetstream::AckKind::Term).await,
                Disposition::Leave => {
                    // Stopping, or the bus is closed: nothing more can be handed over.
                    // Give this one and the rest of the batch back (NAK).
                    let stopping = *stop.borrow();
                    nak_pulled(messages, Some(msg)).await;
                    if !stopping {
                        tracing::warn!("local bus closed; NATS bridge importer stopped");
                    }
                    break 'outer;
                }
            };
            if let Err(e) = acked {
                tracing::debug!(error = %e, "JetStream ack not sent; the message will be redelivered and de-duplicated");
            }
        }
    }
}

/// How long one pull request waits for messages before the server ends it.
const PULL_EXPIRES: Duration = Duration::from_millis(250);

/// Most time spent collecting pulled messages to give back when stopping: the rest of the
/// current pull request, which the server ends by `PULL_EXPIRES`.
const NAK_DRAIN: Duration = Duration::from_millis(1000);

/// Give back (NAK) `first` (the message the importer could not hand over, if any) and the
/// messages of the current pull batches that were received but not processed, so that
/// the server redelivers them at once, in order, to the next consumer instead of after
/// `ack_wait`. The pull subscription is dropped first: NAKed while it is still open,
/// they would come straight back to it.
async fn nak_pulled<S, E>(mut messages: S, first: Option<jetstream::Message>)
where
    S: futures_util::Stream<Item = Result<jetstream::Message, E>> + Unpin,
{
    let mut back: Vec<jetstream::Message> = first.into_iter().collect();
    let end = tokio::time::Instant::now() + NAK_DRAIN;
    // To the end of the pull request: full, or ended by the server at its expiry.
    loop {
        match tokio::time::timeout_at(end, messages.next()).await {
            Ok(Some(Ok(m))) => back.push(m),
            Ok(Some(Err(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    drop(messages);
    let n = back.len();
    for m in back {
        if let Err(e) = m.ack_with(jetstream::AckKind::Nak(None)).await {
            tracing::debug!(error = %e, "JetStream NAK not sent; redelivered after ack_wait");
        }
    }
    if n > 0 {
        tracing::debug!(messages = n, "pulled JetStream messages given back (NAK)");
    }
}

// ---------------------------------------------------------------------------------------
// Builder and bridge.

type SubscribeFn = Box<
    dyn FnOnce(&Bus, mpsc::Sender<Outgoing>, Arc<ExportShared>) -> Result<Subscription, BridgeError>
        + Send
        + Sync,
>;

struct ExportSpec {
    pattern: Pattern,
    type_id: TypeId,
    subscribe: SubscribeFn,
}

/// Builds a [`Bridge`]: choose what to export and import, then [`BridgeBuilder::start`].
pub struct BridgeBuilder {
    bus: Bus,
    config: BridgeConfig,
    exports: Vec<ExportSpec>,
    imports: Vec<ImportEntry>,
    kinds: HashMap<&'static str, TypeId>,
    error: Option<BridgeError>,
}

impl std::fmt::Debug for BridgeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeBuilder")
            .field("config", &self.config)
            .field(
                "exports",
                &self
                    .exports
                    .iter()
                    .map(|e| e.pattern.as_str())
                    .collect::<Vec<_>>(),
            )
            .field(
                "imports",
                &self
                    .imports
                    .iter()
                    .map(|e| (e.pattern.as_str(), e.kind))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl BridgeBuilder {
    fn pattern(&mut self, pattern: &str) -> Option<Pattern> {
        match Pattern::new(pattern) {
            Ok(p) => Some(p),
            Err(source) => {
                self.error.get_or_insert(BridgeError::Pattern {
                    pattern: pattern.to_owned(),
                    source,
                });
                None
            }
        }
    }

    fn kind<T: 'static>(&mut self, kind: &'static str) {
        let id = TypeId::of::<T>();
        if *self.kinds.entry(kind).or_insert(id) != id {
            self.error.get_or_insert(BridgeError::KindConflict { kind });
        }
    }

    /// Export local events of type `T` whose topic matches `local_pattern`, tagged
    /// `kind` (the `Switchyard-Kind` header). The export subscription has the default
    /// capacity and [`Overflow::Block`] (lossless: local publishers wait when the bridge
    /// buffer and the queue are full).
    pub fn export<T: Serialize + Send + Sync + 'static>(
        self,
        local_pattern: &str,
        kind: &'static str,
    ) -> Self {
        self.export_with::<T>(local_pattern, kind, DEFAULT_CAPACITY, Overflow::Block)
    }

    /// As [`BridgeBuilder::export`], with the export subscription's queue capacity and
    /// overflow policy: what happens once the bridge buffer (`BridgeConfig::buffer`) is
    /// full, e.g. while the server is away. Drops are counted in
    /// [`BridgeStats::dropped_overflow`].
    pub fn export_with<T: Serialize + Send + Sync + 'static>(
        mut self,
        local_pattern: &str,
        kind: &'static str,
        capacity: usize,
        overflow: Overflow<T>,
    ) -> Self {
        let Some(pattern) = self.pattern(local_pattern) else {
            return self;
        };
        self.kind::<T>(kind);
        let name = format!("nats-export:{local_pattern}:{kind}");
        let pat = local_pattern.to_owned();
        self.exports.push(ExportSpec {
            pattern,
            type_id: TypeId::of::<T>(),
            subscribe: Box::new(move |bus, tx, shared| {
                bus.subscription::<T>(&pat)
                    .map_err(|source| BridgeError::Pattern {
                        pattern: pat.clone(),
                        source,
                    })?
                    .name(name)
                    .capacity(capacity)
                    .overflow(overflow)
                    .subscribe(ExportHandler {
                        kind,
                        tx,
                        shared,
                        subjects: HashMap::new(),
                        buf: BytesMut::new(),
                    })
                    .map_err(|source| BridgeError::Bus {
                        pattern: pat.clone(),
                        source,
                    })
            }),
        });
        self
    }

    /// Import messages on subject `<prefix>.<local_pattern>` whose `Switchyard-Kind` is
    /// `kind`, decoded as `T`, into the local bus on topic = subject without the prefix.
    /// Messages of other kinds are counted ([`BridgeStats::unknown_kind`]) and skipped
    /// (acked in JetStream mode).
    pub fn import<T: DeserializeOwned + Send + Sync + 'static>(
        mut self,
        local_pattern: &str,
        kind: &'static str,
    ) -> Self {
        let Some(pattern) = self.pattern(local_pattern) else {
            return self;
        };
        self.kind::<T>(kind);
        self.imports.push(ImportEntry {
            pattern,
            kind,
            sink: Box::new(JsonSink::<T>(PhantomData)),
        });
        self
    }

    /// Wrap the builder in a [`switchyard::lifecycle::Component`] named `name` that
    /// starts the bridge in `start` and shuts it down in `stop`.
    pub fn into_component(self, name: impl Into<String>) -> crate::BridgeComponent {
        crate::component::BridgeComponent::new(name.into(), self)
    }

    /// Connect, create or verify the JetStream stream and consumer, subscribe, and start
    /// the exporter and importer tasks.
    pub async fn start(mut self) -> Result<Bridge, BridgeError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let cfg = self.config.clone();
        validate(&cfg)?;
        let url = cfg.redacted_url();
        let counters = Arc::new(Counters::default());
        let origin = format!("{}@{}", cfg.origin, boot_id());

        let client = connect(&cfg, &self.exports.is_empty(), Arc::clone(&counters)).await?;
        counters.connected.store(true, Ordering::SeqCst);
        counters.ever_connected.store(true, Ordering::SeqCst);
        counters
            .connected_since_ms
            .store(now_ms(), Ordering::SeqCst);

        let js = match &cfg.mode {
            Mode::Core => None,
            Mode::JetStream(jsc) => Some(
                jetstream::ContextBuilder::new()
                    .timeout(jsc.publish_timeout)
                    .max_ack_inflight(jsc.max_in_flight.max(1) + 16)
                    .backpressure_on_inflight(true)
                    .build(client.clone()),
            ),
        };

        // JetStream: stream and consumer before anything moves.
        let mut consumer = None;
        if let (Some(js), Mode::JetStream(jsc)) = (&js, &cfg.mode) {
            let stream_subjects = ensure_stream(js, &cfg, jsc, &self.exports).await?;
            if !self.imports.is_empty() {
                consumer =
                    Some(ensure_consumer(js, &cfg, jsc, &self.imports, &stream_subjects).await?);
            }
        }

        let guard = Arc::new(LoopGuard::new(1 << 16));
        let import_types: HashSet<TypeId> = self.imports.iter().map(|e| e.sink.type_id()).collect();
        let export_shared = Arc::new(ExportShared {
            prefix: cfg.subject_prefix.clone(),
            origin: origin.clone(),
            guard: Arc::clone(&guard),
            guard_enabled: self
                .exports
                .iter()
                .any(|e| import_types.contains(&e.type_id)),
            counters: Arc::clone(&counters),
        });
        let (stop_tx, stop_rx) = watch::channel(false);

        // Importer first, so the bridge never misses what arrives once start returns.
        let mut import_tasks = Vec::new();
        if !self.imports.is_empty() {
            let subjects: Vec<String> = self
                .imports
                .iter()
                .map(|e| cfg.subject_for(e.pattern.as_str()))
                .collect();
            let importer = Arc::new(Importer {
                bus: self.bus.clone(),
                prefix: cfg.subject_prefix.clone(),
                own_origin: origin.clone(),
                entries: std::mem::take(&mut self.imports),
                exports: self
                    .exports
                    .iter()
                    .map(|e| (e.pattern.clone(), e.type_id))
                    .collect(),
                guard: Arc::clone(&guard),
                dedup: Mutex::new(Dedup::new(cfg.dedup_capacity)),
                counters: Arc::clone(&counters),
                stop: stop_rx.clone(),
            });
            match (consumer, &cfg.mode) {
                (Some(c), Mode::JetStream(jsc)) => {
                    import_tasks.push(tokio::spawn(run_js_importer(importer, c, jsc.pull_batch)));
                }
                _ => {
                    let mut unique: Vec<String> = Vec::new();
                    for s in subjects {
                        if !unique.contains(&s) {
                            unique.push(s);
                        }
                    }
                    for subject in unique {
                        let sub = client.subscribe(subject.clone()).await.map_err(|e| {
                            BridgeError::Subscribe {
                                subject: subject.clone(),
                                reason: e.to_string(),
                            }
                        })?;
                        import_tasks
                            .push(tokio::spawn(run_core_importer(Arc::clone(&importer), sub)));
                    }
                    // The server has the subscriptions once it answered a ping.
                    client.flush().await.map_err(|e| BridgeError::Server {
                        url: url.clone(),
                        reason: format!("flush after subscribing: {e}"),
                    })?;
                }
            }
        }

        let (tx, rx) = mpsc::channel::<Outgoing>(cfg.buffer.max(1));
        let exporter = match (&js, &cfg.mode) {
            (Some(js), Mode::JetStream(jsc)) => tokio::spawn(run_js_exporter(
                js.clone(),
                rx,
                Arc::clone(&counters),
                jsc.max_in_flight,
                Arc::from(origin.as_str()),
            )),
            _ => tokio::spawn(run_core_exporter(
                client.clone(),
                rx,
                Arc::clone(&counters),
                Arc::from(origin.as_str()),
            )),
        };
        let mut export_subs = Vec::new();
        for spec in self.exports {
            match (spec.subscribe)(&self.bus, tx.clone(), Arc::clone(&export_shared)) {
                Ok(s) => export_subs.push(s),
                Err(e) => {
                    for s in &export_subs {
                        s.unsubscribe();
                    }
                    let _ = stop_tx.send(true);
                    return Err(e);
                }
            }
        }
        drop(tx);
        tracing::info!(
            url = %url,
            origin = %origin,
            mode = match cfg.mode { Mode::Core => "core", Mode::JetStream(_) => "jetstream" },
            auth = cfg.auth.method(),
            exports = export_subs.len(),
            "NATS bridge started"
        );

        Ok(Bridge {
            inner: Arc::new(Inner {
                config: cfg,
                url,
                origin,
                client,
                counters,
                export_subs,
                exporter: Mutex::new(Some(exporter)),
                importers: Mutex::new(import_tasks),
                stop: stop_tx,
                closed: AtomicBool::new(false),
            }),
        })
    }
}

fn validate(cfg: &BridgeConfig) -> Result<(), BridgeError> {
    let bad = |field, reason: &str| {
        Err(BridgeError::InvalidConfig {
            field,
            reason: reason.to_owned(),
        })
    };
    if cfg.url.trim().is_empty() {
        return bad("url", "empty");
    }
    if cfg.origin.is_empty() || cfg.origin.contains(|c: char| c.is_whitespace() || c == ':') {
        return bad("origin", "must be non-empty, without whitespace or ':'");
    }
    if !cfg.subject_prefix.is_empty()
        && Pattern::new(&cfg.subject_prefix)
            .map(|p| !p.is_exact())
            .unwrap_or(true)
    {
        return bad(
            "subject_prefix",
            "must be a valid subject without wildcards",
        );
    }
    if let Mode::JetStream(j) = &cfg.mode {
        if j.stream.is_empty() || j.stream.contains(['.', '*', '>', ' ']) {
            return bad(
                "mode.jetstream.stream",
                "must be a non-empty name without '.', '*', '>' or spaces",
            );
        }
        if j.durable.is_empty() || j.durable.contains(['.', '*', '>', ' ']) {
            return bad(
                "mode.jetstream.durable",
                "must be a non-empty name without '.', '*', '>' or spaces",
            );
        }
        if cfg.subject_prefix.is_empty() && j.subjects.is_empty() {
            return bad(
                "mode.jetstream.subjects",
                "needed when subject_prefix is empty",
            );
        }
    }
    Ok(())
}

fn boot_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser: spread the bits.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("{x:016x}")
}

async fn connect(
    cfg: &BridgeConfig,
    no_exports: &bool,
    counters: Arc<Counters>,
) -> Result<Client, BridgeError> {
    let _ = no_exports;
    let url = cfg.redacted_url();
    let max_delay = cfg.max_reconnect_delay;
    let ev_counters = Arc::clone(&counters);
    let ev_url = url.clone();
    let mut opts = ConnectOptions::new()
        .name(
            cfg.connection_name
                .clone()
                .unwrap_or_else(|| format!("switchyard-{}", cfg.origin)),
        )
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(move |attempts| {
            let ms = 10u64.saturating_mul(1 << attempts.min(16));
            Duration::from_millis(ms).min(max_delay)
        })
        .event_callback(move |event| {
            let c = Arc::clone(&ev_counters);
            let url = ev_url.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        c.connected_since_ms.store(now_ms(), Ordering::SeqCst);
                        if !c.connected.swap(true, Ordering::SeqCst)
                            && c.ever_connected.swap(true, Ordering::SeqCst)
                        {
                            inc(&c.reconnects);
                            tracing::info!(url = %url, "NATS connection restored");
                        }
                    }
                    async_nats::Event::Disconnected | async_nats::Event::Closed
                        if c.closing.load(Ordering::SeqCst) =>
                    {
                        c.connected.store(false, Ordering::SeqCst);
                        tracing::debug!(url = %url, "NATS connection closed by shutdown");
                    }
                    async_nats::Event::Disconnected | async_nats::Event::Closed => {
                        if c.connected.swap(false, Ordering::SeqCst) {
                            inc(&c.disconnects);
                            tracing::warn!(url = %url, "NATS connection lost; reconnecting");
                        }
                    }
                    other => tracing::warn!(url = %url, event = %other, "NATS client event"),
                }
            }
        });
    if matches!(cfg.mode, Mode::Core) {
        // The server does not send our own publishes back to our own subscriptions.
        opts = opts.no_echo();
    }
    // Credentials never travel inside the server addresses: the client logs those
    // (`server = ?addr` at debug level on every (re)connect) with their userinfo.
    let (servers, url_creds) = config::split_url_credentials(&cfg.url);
    if servers.is_empty() {
        return Err(BridgeError::InvalidConfig {
            field: "url",
            reason: "no server".into(),
        });
    }
    if url_creds.windows(2).any(|w| w[0] != w[1]) {
        return Err(BridgeError::InvalidConfig {
            field: "url",
            reason: "the servers carry different credentials; put them in `auth`".into(),
        });
    }
    let url_creds = url_creds.into_iter().next();
    if url_creds.is_some() && !matches!(cfg.auth, Auth::None) {
        tracing::warn!(
            url = %url,
            auth = cfg.auth.method(),
            "credentials in the NATS URL ignored: the configured auth wins"
        );
    }
    opts = match &cfg.auth {
        Auth::None => match url_creds {
            None => opts,
            Some(config::UrlCredentials::Token(t)) => opts.token(t),
            Some(config::UrlCredentials::UserPassword(u, p)) => opts.user_and_password(u, p),
        },
        Auth::Token(t) => opts.token(t.expose().to_owned()),
        Auth::UserPassword { user, password } => {
            opts.user_and_password(user.clone(), password.expose().to_owned())
        }
        Auth::NKey(seed) => opts.nkey(seed.expose().to_owned()),
        Auth::CredsFile(path) => {
            opts.credentials_file(path)
                .await
                .map_err(|e| BridgeError::Credentials {
                    path: path.display().to_string(),
                    reason: format!("{:?}", e.kind()),
                })?
        }
    };
    let tls = &cfg.tls;
    if tls.require_tls {
        opts = opts.require_tls(true);
    }
    if tls.tls_first {
        opts = opts.tls_first();
    }
    if let Some(ca) = &tls.root_ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(c), Some(k)) => opts = opts.add_client_certificate(c.clone(), k.clone()),
        (None, None) => {}
        _ => {
            return Err(BridgeError::InvalidConfig {
                field: "tls",
                reason: "client_cert and client_key go together".into(),
            });
        }
    }
    opts.connect(servers).await.map_err(|e| {
        let auth_failed = matches!(
            e.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation
        );
        let mut reason = e.to_string();
        // Whatever the client put in its message, never echo a credential.
        let mut all = secrets(&cfg.auth);
        all.extend(config::url_secrets(&cfg.url));
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in all {
            if !secret.is_empty() {
                reason = reason.replace(&secret, "[redacted]");
            }
        }
        BridgeError::Connect {
            url,
            reason,
            auth_failed,
        }
    })
}

fn secrets(auth: &Auth) -> Vec<String> {
    match auth {
        Auth::Token(t) | Auth::NKey(t) => vec![t.expose().to_owned()],
        Auth::UserPassword { password, .. } => vec![password.expose().to_owned()],
        _ => Vec::new(),
    }
}

/// Does stream subject `filter` (which may have wildcards) cover every subject of `subject`?
pub(crate) fn covers(filter: &str, subject: &str) -> bool {
    let f: Vec<&str> = filter.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    for (i, ft) in f.iter().enumerate() {
        match (*ft, s.get(i)) {
            (">", Some(_)) => return true,
            (_, None) => return false,
            ("*", Some(st)) if *st != ">" => {}
            (ft, Some(st)) if ft == *st => {}
            _ => return false,
        }
    }
    f.len() == s.len()
}

async fn ensure_stream(
    js: &jetstream::Context,
    cfg: &BridgeConfig,
    jsc: &JetStreamConfig,
    exports: &[ExportSpec],
) -> Result<Vec<String>, BridgeError> {
    let subjects = if jsc.subjects.is_empty() {
        vec![format!("{}.>", cfg.subject_prefix)]
    } else {
        jsc.subjects.clone()
    };
    let want = jetstream::stream::Config {
        name: jsc.stream.clone(),
        subjects: subjects.clone(),
        storage: match jsc.storage {
            Storage::File => jetstream::stream::StorageType::File,
            Storage::Memory => jetstream::stream::StorageType::Memory,
        },
        duplicate_window: jsc.duplicate_window,
        ..Default::default()
    };
    let stream_err = |reason: String| BridgeError::Stream {
        stream: jsc.stream.clone(),
        reason,
    };
    let stream = js
        .get_or_create_stream(want)
        .await
        .map_err(|e| stream_err(format!("create or look up: {e}")))?;
    let have = &stream.cached_info().config;
    let incompatible = |reason: String| BridgeError::IncompatibleStream {
        stream: jsc.stream.clone(),
        reason,
    };
    for e in exports {
        let subject = cfg.subject_for(e.pattern.as_str());
        if !have.subjects.iter().any(|s| covers(s, &subject)) {
            return Err(incompatible(format!(
                "its subjects {:?} do not cover exported subject {subject:?}",
                have.subjects
            )));
        }
    }
    if have.no_ack {
        return Err(incompatible(
            "no_ack is set: publishes would never be acknowledged".into(),
        ));
    }
    if have.sealed {
        return Err(incompatible("the stream is sealed".into()));
    }
    if have.duplicate_window < jsc.duplicate_window {
        return Err(incompatible(format!(
            "duplicate_window is {:?}, the bridge needs at least {:?}",
            have.duplicate_window, jsc.duplicate_window
        )));
    }
    if have.retention == jetstream::stream::RetentionPolicy::WorkQueue {
        tracing::warn!(stream = %jsc.stream, "work-queue retention: only one durable consumer per subject");
    }
    Ok(have.subjects.clone())
}

async fn ensure_consumer(
    js: &jetstream::Context,
    cfg: &BridgeConfig,
    jsc: &JetStreamConfig,
    imports: &[ImportEntry],
    stream_subjects: &[String],
) -> Result<jetstream::consumer::Consumer<pull::Config>, BridgeError> {
    let err = |reason: String| BridgeError::Consumer {
        stream: jsc.stream.clone(),
        consumer: jsc.durable.clone(),
        reason,
    };
    let incompatible = |reason: String| BridgeError::IncompatibleConsumer {
        stream: jsc.stream.clone(),
        consumer: jsc.durable.clone(),
        reason,
    };
    // nats-server 2.9 allows one filter subject per consumer: with one import pattern the
    // consumer filters on it; with several it reads the whole stream and the importer
    // filters locally.
    let mut filters: Vec<String> = imports
        .iter()
        .map(|e| cfg.subject_for(e.pattern.as_str()))
        .collect();
    filters.dedup();
    for f in &filters {
        if !stream_subjects.iter().any(|s| covers(s, f)) {
            return Err(err(format!(
                "imported subject {f:?} is not captured by the stream's subjects {stream_subjects:?}"
            )));
        }
    }
    let filter = if filters.len() == 1 {
        filters[0].clone()
    } else {
        String::new()
    };
    let want = pull::Config {
        durable_name: Some(jsc.durable.clone()),
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: jsc.ack_wait,
        max_deliver: jsc.max_deliver,
        filter_subject: filter.clone(),
        max_ack_pending: (jsc.pull_batch.max(1) * 4).max(1000) as i64,
        ..Default::default()
    };
    let stream = js
        .get_stream(&jsc.stream)
        .await
        .map_err(|e| err(format!("look up stream: {e}")))?;
    let consumer = stream
        .get_or_create_consumer::<pull::Config>(&jsc.durable, want)
        .await
        .map_err(|e| {
            if matches!(
                e.kind(),
                jetstream::stream::ConsumerErrorKind::InvalidConsumerType
            ) {
                incompatible("it is a push consumer; the bridge needs a pull consumer".into())
            } else {
                err(format!("create or look up: {e}"))
            }
        })?;
    let have = &consumer.cached_info().config;
    if have.filter_subject != filter {
        return Err(incompatible(format!(
            "filter subject is {:?}, the bridge needs {:?}",
            have.filter_subject, filter
        )));
    }
    if have.ack_policy != jetstream::consumer::AckPolicy::Explicit {
        return Err(incompatible(format!(
            "ack policy is {:?}, the bridge needs explicit acks",
            have.ack_policy
        )));
    }
    Ok(consumer)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordering_is_detected_per_origin_and_kind() {
        let mut d = Dedup::new(16);
        assert!(d.in_order("a@1", "market_event", 5));
        assert!(d.in_order("a@1", "market_event", 9));
        // Another kind of the same origin has its own sequence (another subscription).
        assert!(d.in_order("a@1", "exec_event", 7));
        assert!(d.in_order("b@2", "market_event", 1));
        assert!(!d.in_order("a@1", "market_event", 6), "6 after 9");
        assert!(d.in_order("a@1", "market_event", 10));
    }

    #[test]
    fn incoming_messages_are_routed_by_prefix_origin_kind_and_pattern() {
        let md = Pattern::new("market_data.>").unwrap();
        let imports = [(&md, "market_event")];
        let h = |kind: &str, origin: &str| wire::headers(origin, kind, 1, 2);
        let mine = h("market_event", "me@1");
        let theirs = h("market_event", "feed@2");
        let other_kind = h("fill", "feed@2");
        let r = |prefix, subject, headers| route(prefix, "me@1", imports, subject, headers);
        let ok = r("sy", "sy.market_data.trade.X", Some(&theirs)).unwrap();
        assert_eq!((ok.import, ok.topic), (0, "market_data.trade.X"));
        assert_eq!(ok.known.origin, Some("feed@2"));
        let skip = |prefix, subject, headers| r(prefix, subject, headers).err();
        assert_eq!(
            skip("sy", "market_data.trade.X", Some(&theirs)),
            Some(Skip::NotUnderPrefix)
        );
        assert_eq!(
            skip("sy", "sy.market_data.trade.X", Some(&mine)),
            Some(Skip::OwnOrigin)
        );
        assert_eq!(
            skip("", "market_data.trade.X", Some(&other_kind)),
            Some(Skip::NoImport)
        );
        assert_eq!(skip("", "market_data.trade.X", None), Some(Skip::NoImport));
        assert_eq!(skip("", "orders.x", Some(&theirs)), Some(Skip::NoImport));
        // Matched by the pattern, but not a topic: skipped, and never interned.
        assert_eq!(
            skip("", "market_data.a b", Some(&theirs)),
            Some(Skip::NoImport)
        );
        assert_eq!(
            skip("", "market_data.*", Some(&theirs)),
            Some(Skip::NoImport)
        );
    }

    #[test]
    fn subject_cover() {
        assert!(covers("sy.>", "sy.a.b"));
        assert!(covers("sy.>", "sy.a.>"));
        assert!(covers("sy.*.b", "sy.x.b"));
        assert!(covers("sy.*.b", "sy.*.b"));
        assert!(!covers("sy.*.b", "sy.>"));
        assert!(!covers("sy.a", "sy.a.b"));
        assert!(!covers("sy.a.b", "sy.a"));
        assert!(!covers("sy.x.>", "sy.>"));
    }

    #[test]
    fn dedup_is_bounded() {
        let mut d = Dedup::new(3);
        for i in 0..5 {
            d.insert(&format!("o:{i}"));
        }
        assert!(!d.contains("o:0") && !d.contains("o:1"));
        assert!(d.contains("o:2") && d.contains("o:4"));
    }

    #[test]
    fn retry_sends_the_same_headers() {
        let mut o = Outgoing {
            subject: Subject::from("sy.a"),
            payload: Bytes::from_static(b"{}"),
            headers: Some(wire::headers("n@0123456789abcdef", "k", 42, 7)),
            kind: "k",
            seq: 42,
            ts: 7,
        };
        let first = o.take_headers("n@0123456789abcdef");
        let again = o.take_headers("n@0123456789abcdef");
        assert_eq!(first, again);
        assert_eq!(
            wire::get(Some(&again), wire::MSG_ID),
            Some("n@0123456789abcdef:42")
        );
    }

    #[test]
    fn secrets_out_of_urls() {
        let s = config::url_secrets("nats://u:pw@h:1,nats://tok@h:2,nats://x:pa/ss@h:3");
        for want in ["pw", "tok", "pa/ss"] {
            assert!(s.iter().any(|x| x == want), "{want} in {s:?}");
        }
        assert!(config::url_secrets("nats://h:1").is_empty());
    }
}
