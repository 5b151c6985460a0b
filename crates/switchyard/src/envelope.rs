//! The envelope every event travels in.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::clock::Timestamp;
use crate::topic::Topic;

/// An event's payload: owned when the event has one subscriber, shared (one allocation,
/// reference counted) when it fans out to several, so the payload is never cloned per
/// subscriber.
pub enum Payload<T> {
    /// The only copy.
    Owned(T),
    /// Shared with the other subscribers of the same event.
    Shared(Arc<T>),
}

impl<T> Deref for Payload<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match self {
            Payload::Owned(t) => t,
            Payload::Shared(t) => t,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Payload<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T> Payload<T> {
    /// True if this payload is shared with other subscribers.
    pub fn is_shared(&self) -> bool {
        matches!(self, Payload::Shared(_))
    }
}

/// An event on the bus: its topic, the bus-wide sequence number, the publish time, and the
/// payload.
pub struct Envelope<T> {
    /// Where it was published.
    pub topic: Topic,
    /// Per-bus sequence number, assigned at publish, strictly increasing in assignment
    /// order (see the bus docs for ordering across concurrent publishers).
    pub seq: u64,
    /// Publish time, from the bus clock.
    pub ts: Timestamp,
    /// The event.
    pub payload: Payload<T>,
}

impl<T> Envelope<T> {
    /// The event.
    #[inline]
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// The same envelope with its payload behind an `Arc`, so that copies share it.
    pub fn into_shared(self) -> Envelope<T> {
        let payload = match self.payload {
            Payload::Owned(t) => Payload::Shared(Arc::new(t)),
            shared => shared,
        };
        Envelope { payload, ..self }
    }

    /// A copy sharing the payload, if it is already shared (see [`Envelope::into_shared`]).
    pub fn clone_shared(&self) -> Option<Envelope<T>> {
        match &self.payload {
            Payload::Shared(arc) => Some(Envelope {
                topic: self.topic,
                seq: self.seq,
                ts: self.ts,
                payload: Payload::Shared(Arc::clone(arc)),
            }),
            Payload::Owned(_) => None,
        }
    }
}

impl<T: Clone> Clone for Envelope<T> {
    fn clone(&self) -> Self {
        let payload = match &self.payload {
            Payload::Owned(t) => Payload::Owned(t.clone()),
            Payload::Shared(a) => Payload::Shared(Arc::clone(a)),
        };
        Envelope {
            topic: self.topic,
            seq: self.seq,
            ts: self.ts,
            payload,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Envelope<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("topic", &self.topic)
            .field("seq", &self.seq)
            .field("ts", &self.ts)
            .field("payload", &self.payload)
            .finish()
    }
}

impl<T: Serialize> Serialize for Envelope<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Envelope", 4)?;
        st.serialize_field("topic", &self.topic)?;
        st.serialize_field("seq", &self.seq)?;
        st.serialize_field("ts", &self.ts)?;
        st.serialize_field("payload", &*self.payload)?;
        st.end()
    }
}
