//! The importer's reading of a message from the wire, without a server or a bus: for
//! fuzzing (`fuzz/`) and its corpus regression test. Not a stable API.

use async_nats::HeaderMap;
use serde::de::DeserializeOwned;
use switchyard::Pattern;

use crate::bridge::{self, Skip};

/// What the importer makes of one incoming message, up to the bus.
#[derive(Debug)]
pub enum Incoming<T> {
    /// Skipped (acknowledged): not under the prefix, the bridge's own, or no import.
    Skipped(&'static str),
    /// The payload does not decode (terminated): the decoder's message.
    Undecodable(String),
    /// Would be published on the bus.
    Accepted {
        /// Position of the import in `imports`.
        import: usize,
        /// The topic.
        topic: String,
        /// `Nats-Msg-Id`, for de-duplication.
        msg_id: Option<String>,
        /// `Switchyard-Origin` and `Switchyard-Seq` (when a decimal), for the ordering check.
        origin_seq: Option<(String, u64)>,
        /// The decoded event.
        event: T,
    },
}

/// The importer's steps for one message: route by prefix, origin, kind and pattern
/// (`imports` are (pattern, kind) pairs), then decode the payload as `T`.
pub fn read_message<T: DeserializeOwned>(
    prefix: &str,
    own_origin: &str,
    imports: &[(Pattern, &str)],
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Incoming<T> {
    let imports_iter = imports.iter().map(|(p, k)| (p, *k));
    let routed = match bridge::route(prefix, own_origin, imports_iter, subject, headers) {
        Ok(r) => r,
        Err(Skip::NotUnderPrefix) => return Incoming::Skipped("not under the prefix"),
        Err(Skip::OwnOrigin) => return Incoming::Skipped("own origin"),
        Err(Skip::NoImport) => return Incoming::Skipped("no import"),
    };
    let event = match bridge::decode_payload::<T>(payload) {
        Ok(e) => e,
        Err(e) => return Incoming::Undecodable(e.to_string()),
    };
    let k = routed.known;
    let seq = k.seq.and_then(|s| s.parse::<u64>().ok());
    Incoming::Accepted {
        import: routed.import,
        topic: routed.topic.to_owned(),
        msg_id: k.msg_id.map(str::to_owned),
        origin_seq: k.origin.zip(seq).map(|(o, s)| (o.to_owned(), s)),
        event,
    }
}
