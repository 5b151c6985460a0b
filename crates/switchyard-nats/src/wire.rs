//! Header names and encoding of the wire format (see the crate docs).

use async_nats::HeaderMap;

/// JetStream de-duplication id: `<origin>:<seq>`.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// Event type tag, e.g. `market_event`.
pub const KIND: &str = "Switchyard-Kind";
/// Publishing bridge: `<node>@<boot id>`.
pub const ORIGIN: &str = "Switchyard-Origin";
/// The event's sequence number on the publishing bus.
pub const SEQ: &str = "Switchyard-Seq";
/// The event's publish time on the publishing bus, ns since the Unix epoch.
pub const TS: &str = "Switchyard-Ts";
/// Payload encoding.
pub const CONTENT_TYPE: &str = "Content-Type";
/// The only payload encoding so far.
pub const JSON: &str = "application/json";

/// The headers of one exported event.
pub fn headers(origin: &str, kind: &str, seq: u64, ts_nanos: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(MSG_ID, msg_id(origin, seq).as_str());
    h.insert(KIND, kind);
    h.insert(ORIGIN, origin);
    h.insert(SEQ, seq.to_string().as_str());
    h.insert(TS, ts_nanos.to_string().as_str());
    h.insert(CONTENT_TYPE, JSON);
    h
}

/// `<origin>:<seq>`.
pub fn msg_id(origin: &str, seq: u64) -> String {
    format!("{origin}:{seq}")
}

/// One header's value.
pub fn get<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    h?.get(name).map(|v| v.as_str())
}
