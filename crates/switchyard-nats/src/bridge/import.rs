//! The importer: NATS messages to the local bus (core subscription or JetStream pull).

use std::any::TypeId;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use switchyard::{Bus, Pattern, Topic};
use tokio::sync::watch;
use tokio::time::Instant;

use super::resequence::{Offered, Released, Resequencer};
use super::stream_setup::covers;
use super::{
    dedup::Dedup,
    export::retry_backoff,
    loop_guard::LoopGuard,
    sink::{Refused, Sink},
    stats::{Counters, inc},
};
use crate::wire;

pub(super) struct ImportEntry {
    pub(super) pattern: Pattern,
    pub(super) kind: &'static str,
    pub(super) sink: Box<dyn Sink>,
}

pub(super) struct Importer {
    pub(super) bus: Bus,
    pub(super) prefix: String,
    pub(super) own_origin: String,
    pub(super) entries: Vec<ImportEntry>,
    pub(super) exports: Vec<(Pattern, TypeId)>,
    pub(super) guard: Arc<LoopGuard>,
    pub(super) dedup: Mutex<Dedup>,
    pub(super) counters: Arc<Counters>,
    pub(super) stop: watch::Receiver<bool>,
}

/// What to do with an incoming message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Disposition {
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
    /// Hand one message to the bus. `late`: it arrived after the resequencer gave its
    /// gap up (counted once it is delivered, not when it is a duplicate).
    pub(super) async fn process(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
        late: bool,
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
        if late {
            inc(&self.counters.late_after_gap);
        }
        inc(&self.counters.received);
        Disposition::Ack
    }
}

pub(super) async fn run_core_importer(imp: Arc<Importer>, mut sub: async_nats::Subscriber) {
    let mut stop = imp.stop.clone();
    loop {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(msg) = msg else { break };
        imp.process(
            msg.subject.as_str(),
            msg.headers.as_ref(),
            &msg.payload,
            false,
        )
        .await;
    }
    let _ = sub.unsubscribe().await;
}

/// What woke the JetStream importer (short-lived: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Step {
    /// The pull request's stream yielded (a message, an error, or its end).
    Pulled(Option<Result<jetstream::Message, async_nats::Error>>),
    /// A lane's gap waited long enough.
    GapWait,
    /// Asked to stop.
    Stop,
}

/// How the JetStream importer resequences: see [`Resequencer`].
pub(super) struct Reorder {
    pub(super) wait: Duration,
    pub(super) max_held: usize,
    /// The consumer's filter subject (empty: the whole stream).
    pub(super) filter: String,
}

pub(super) async fn run_js_importer(
    imp: Arc<Importer>,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    batch: usize,
    reorder: Option<Reorder>,
) {
    let mut stop = imp.stop.clone();
    let mut failures = 0u32;
    let (wait, max_held, filter) = match reorder {
        Some(r) => (r.wait, r.max_held, Some(r.filter)),
        None => (Duration::ZERO, 1, None),
    };
    let resequencing = filter.is_some();
    let mut reseq = Resequencer::new(wait, max_held, move |lane: &str| match &filter {
        Some(f) => f.is_empty() || covers(f, lane),
        None => false,
    });
    // Messages ready to go to the bus, in order, and the lane key of the one in hand.
    // (message, arrived after its gap was given up)
    let mut ready: VecDeque<(jetstream::Message, bool)> = VecDeque::new();
    let (mut origin, mut kind, mut lane) = (String::new(), String::new(), String::new());
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
            let gap = reseq.deadline();
            let step = tokio::select! {
                m = messages.next() => Step::Pulled(m),
                _ = sleep_until_some(gap), if gap.is_some() => Step::GapWait,
                _ = stop.wait_for(|s| *s) => Step::Stop,
            };
            let mut counts = Released::default();
            match step {
                Step::Stop => {
                    let mut back: Vec<_> = ready.drain(..).map(|(m, _)| m).collect();
                    back.extend(reseq.take_all().into_iter().map(|(m, _)| m));
                    imp.counters.held.store(0, Ordering::Relaxed);
                    nak_pulled(messages, back).await;
                    break 'outer;
                }
                Step::GapWait => reseq.expire(Instant::now(), &mut ready, &mut counts),
                Step::Pulled(None) => continue 'outer,
                Step::Pulled(Some(Err(e))) => {
                    tracing::debug!(error = %e, "JetStream pull error (the stream recovers by itself)");
                    continue;
                }
                Step::Pulled(Some(Ok(msg))) => {
                    failures = 0;
                    if let Ok(info) = msg.info()
                        && info.delivered > 1
                    {
                        inc(&imp.counters.redelivered);
                    }
                    let k = wire::known(msg.headers.as_ref());
                    let numbered = match (k.origin, k.kind, k.lane, k.lane_seq) {
                        (Some(o), Some(kd), Some(l), Some(n))
                            if resequencing && o != imp.own_origin =>
                        {
                            n.parse::<u64>().ok().inspect(|_| {
                                for (buf, v) in [(&mut origin, o), (&mut kind, kd), (&mut lane, l)]
                                {
                                    buf.clear();
                                    buf.push_str(v);
                                }
                            })
                        }
                        _ => None,
                    };
                    match numbered {
                        Some(n) => {
                            let o = reseq.offer(
                                &origin,
                                &kind,
                                &lane,
                                n,
                                (msg, false),
                                Instant::now(),
                                &mut ready,
                                &mut counts,
                            );
                            if o == Offered::Late
                                && let Some(m) = ready.back_mut()
                            {
                                m.1 = true;
                            }
                        }
                        None => ready.push_back((msg, false)),
                    }
                }
            }
            let c = &imp.counters;
            c.resequenced.fetch_add(counts.reordered, Ordering::Relaxed);
            c.gaps_skipped
                .fetch_add(counts.gaps_skipped, Ordering::Relaxed);
            c.held.store(reseq.held() as u64, Ordering::Relaxed);
            if counts.gaps_skipped > 0 {
                tracing::warn!(
                    missing = counts.gaps_skipped,
                    "JetStream lane gap given up: the messages after it go on without it"
                );
            }
            while let Some((msg, late)) = ready.pop_front() {
                let d = imp
                    .process(
                        msg.subject.as_str(),
                        msg.headers.as_ref(),
                        &msg.payload,
                        late,
                    )
                    .await;
                let acked = match d {
                    Disposition::Ack => msg.ack().await,
                    Disposition::Term => msg.ack_with(jetstream::AckKind::Term).await,
                    Disposition::Leave => {
                        // Stopping, or the bus is closed: nothing more can be handed over.
                        // Give this one, the ones held or ready, and the rest of the batch
                        // back (NAK).
                        let stopping = *stop.borrow();
                        let mut back = vec![msg];
                        back.extend(ready.drain(..).map(|(m, _)| m));
                        back.extend(reseq.take_all().into_iter().map(|(m, _)| m));
                        c.held.store(0, Ordering::Relaxed);
                        nak_pulled(messages, back).await;
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
}

/// Sleep until `at`; never returns when there is none.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// How long one pull request waits for messages before the server ends it.
pub(super) const PULL_EXPIRES: Duration = Duration::from_millis(250);

/// Most time spent collecting pulled messages to give back when stopping: the rest of the
/// current pull request, which the server ends by `PULL_EXPIRES`.
pub(super) const NAK_DRAIN: Duration = Duration::from_millis(1000);

/// Give back (NAK) `back` (messages the importer could not hand over or was holding) and the
/// messages of the current pull batches that were received but not processed, so that
/// the server redelivers them at once, in order, to the next consumer instead of after
/// `ack_wait`. The pull subscription is dropped first: NAKed while it is still open,
/// they would come straight back to it.
pub(super) async fn nak_pulled<S, E>(mut messages: S, mut back: Vec<jetstream::Message>)
where
    S: futures_util::Stream<Item = Result<jetstream::Message, E>> + Unpin,
{
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

#[cfg(test)]
mod tests {
    use super::*;
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
}
