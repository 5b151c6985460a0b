//! [`Recorder`]: journal the events of a bus.

use std::sync::Arc;

use serde::Serialize;
use switchyard::bus::{Overflow, SubscribeError, handler_fn, sync_handler};
use switchyard::{Bus, ControlEnvelope, Envelope, Pattern, Subscription};

use crate::error::JournalError;
use crate::journal::{Journal, SyncPolicy};

/// Kind under which [`Recorder::record_control`] journals control events. Their payload
/// is JSON (UTF-8), not MessagePack: [`switchyard::ControlEvent`] only serializes, and the
/// audit records it carries (kill switch) should be readable by any tool. It ends with
/// the audit chain's member (see [`audit_chain`](crate::audit_chain)).
pub const CONTROL_KIND: &str = "control";

/// Default queue capacity of recording subscriptions.
pub const DEFAULT_RECORDER_CAPACITY: usize = 65_536;

/// Subscribes to a bus and appends what it receives to a [`Journal`].
///
/// Each recorded (pattern, type) is one subscription named `journal:<kind>:<pattern>`,
/// with a large queue and [`Overflow::Block`], so nothing is lost: a journal that falls
/// behind slows the publishers down. Records keep the envelope's topic, sequence number
/// and timestamp. Under [`SyncPolicy::Always`] the handler returns only once the event is
/// durable; under the other policies it returns once the event is in the journal's buffer.
#[derive(Clone, Debug)]
pub struct Recorder {
    journal: Journal,
    bus: Bus,
    capacity: usize,
}

impl Recorder {
    /// A recorder of `bus` into `journal`.
    pub fn new(journal: Journal, bus: Bus) -> Self {
        Recorder {
            journal,
            bus,
            capacity: DEFAULT_RECORDER_CAPACITY,
        }
    }

    /// Queue capacity of the subscriptions made from now on.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Journal every event of type `T` on topics matching `pattern`, under `kind`
    /// (the type tag a [`Replayer`](crate::Replayer) decodes by), payload in MessagePack.
    pub fn record<T>(&self, pattern: &str, kind: &str) -> Result<Subscription, SubscribeError>
    where
        T: Serialize + Send + Sync + 'static,
    {
        let builder = self
            .bus
            .subscription::<T>(pattern)?
            .name(format!("journal:{kind}:{pattern}"))
            .capacity(self.capacity)
            .overflow(Overflow::Block);
        let journal = self.journal.clone();
        let kind: Arc<str> = Arc::from(kind);
        if journal.config().sync == SyncPolicy::Always {
            builder.subscribe(handler_fn(move |ev: &Envelope<T>| {
                let appended = journal.append_serialized(
                    ev.seq,
                    ev.ts,
                    ev.topic.as_str(),
                    &kind,
                    ev.payload(),
                );
                let journal = journal.clone();
                async move {
                    if let Some(index) = outage_is_ok(appended)? {
                        outage_is_ok(journal.durable_at_least(index).await)?;
                    }
                    Ok(())
                }
            }))
        } else {
            builder.subscribe(sync_handler(move |ev: &Envelope<T>| {
                outage_is_ok(journal.append_serialized(
                    ev.seq,
                    ev.ts,
                    ev.topic.as_str(),
                    &kind,
                    ev.payload(),
                ))?;
                Ok(())
            }))
        }
    }

    /// Journal every control event (topics `switchyard.control.>`: kill switch audit
    /// records, lifecycle changes, alerts, breaker transitions, shutdown) under kind
    /// [`CONTROL_KIND`] with a JSON payload, as links of the audit chain
    /// ([`Journal::append_audit`]).
    pub fn record_control(&self) -> Result<Subscription, SubscribeError> {
        self.record_control_matching(&["switchyard.control.>"])
    }

    /// Journal the control events whose topic matches one of `patterns` (e.g.
    /// `["switchyard.control.kill_switch"]` for the kill switch audit records only),
    /// under kind [`CONTROL_KIND`] with a JSON payload, chained
    /// ([`Journal::append_audit`]).
    pub fn record_control_matching(
        &self,
        patterns: &[&str],
    ) -> Result<Subscription, SubscribeError> {
        let pats = patterns
            .iter()
            .map(|p| Pattern::new(p))
            .collect::<Result<Vec<_>, _>>()?;
        let journal = self.journal.clone();
        let always = journal.config().sync == SyncPolicy::Always;
        self.bus.subscribe_control(
            &format!("journal:{CONTROL_KIND}:{}", patterns.join(",")),
            move |env: &ControlEnvelope| {
                let appended = pats
                    .iter()
                    .any(|p| p.matches(&env.topic))
                    .then(|| journal.append_audit(env.seq, env.ts, env.topic.as_str(), &env.event));
                let journal = journal.clone();
                async move {
                    if let Some(appended) = appended
                        && let Some(index) = outage_is_ok(appended)?
                        && always
                    {
                        outage_is_ok(journal.durable_at_least(index).await)?;
                    }
                    Ok(())
                }
            },
        )
    }
}

/// During a journal outage ([`JournalError::Unavailable`]) a refused append or a failed
/// durability wait is not a handler error: the journal counts the record as lost and
/// reports the gap, and the node's journal component reports the outage. (As handler
/// errors they would log and dead-letter every event while the disk is full.)
fn outage_is_ok(r: Result<u64, JournalError>) -> Result<Option<u64>, JournalError> {
    match r {
        Ok(index) => Ok(Some(index)),
        Err(JournalError::Unavailable { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
