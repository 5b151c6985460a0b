//! Header names and encoding of the wire format (see the crate docs).

use async_nats::{HeaderMap, HeaderName, HeaderValue};

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
/// The exporting subscription's subject pattern: with the origin and kind, the *lane*
/// whose messages [`LANE_SEQ`] numbers.
pub const LANE: &str = "Switchyard-Lane";
/// The message's number in its lane: 1, 2, 3, … without gaps, in the order the export
/// subscription handed its events to the bridge (the importer resequences by it).
pub const LANE_SEQ: &str = "Switchyard-Lane-Seq";
/// Payload encoding.
pub const CONTENT_TYPE: &str = "Content-Type";
/// The only payload encoding so far.
pub const JSON: &str = "application/json";

// Static names: no allocation or validation per message.
const MSG_ID_NAME: HeaderName = HeaderName::from_static(MSG_ID);
const KIND_NAME: HeaderName = HeaderName::from_static(KIND);
const ORIGIN_NAME: HeaderName = HeaderName::from_static(ORIGIN);
const SEQ_NAME: HeaderName = HeaderName::from_static(SEQ);
const TS_NAME: HeaderName = HeaderName::from_static(TS);
const LANE_NAME: HeaderName = HeaderName::from_static(LANE);
const LANE_SEQ_NAME: HeaderName = HeaderName::from_static(LANE_SEQ);
const CONTENT_TYPE_NAME: HeaderName = HeaderName::from_static(CONTENT_TYPE);

/// The headers of one exported event.
pub fn headers(origin: &str, kind: &str, seq: u64, ts_nanos: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(MSG_ID_NAME, HeaderValue::from(msg_id(origin, seq)));
    h.insert(KIND_NAME, kind);
    h.insert(ORIGIN_NAME, origin);
    h.insert(SEQ_NAME, HeaderValue::from(decimal(seq, String::new())));
    h.insert(TS_NAME, HeaderValue::from(decimal(ts_nanos, String::new())));
    h.insert(CONTENT_TYPE_NAME, JSON);
    h
}

/// The headers of one exported event, number `lane_seq` of the lane of export pattern
/// (subject) `lane`.
pub fn lane_headers(
    origin: &str,
    kind: &str,
    seq: u64,
    ts_nanos: u64,
    lane: &str,
    lane_seq: u64,
) -> HeaderMap {
    let mut h = headers(origin, kind, seq, ts_nanos);
    h.insert(LANE_NAME, lane);
    h.insert(
        LANE_SEQ_NAME,
        HeaderValue::from(decimal(lane_seq, String::new())),
    );
    h
}

/// `<origin>:<seq>`.
pub fn msg_id(origin: &str, seq: u64) -> String {
    let mut s = String::with_capacity(origin.len() + 21);
    s.push_str(origin);
    s.push(':');
    decimal(seq, s)
}

/// Append `n` in decimal to `s` (without the formatting machinery).
fn decimal(mut n: u64, mut s: String) -> String {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        s.push(char::from(d));
    }
    s
}

/// One header's value.
pub fn get<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    h?.get(name).map(|v| v.as_str())
}

/// The headers the importer reads.
#[derive(Default)]
pub(crate) struct Known<'a> {
    pub(crate) msg_id: Option<&'a str>,
    pub(crate) kind: Option<&'a str>,
    pub(crate) origin: Option<&'a str>,
    pub(crate) seq: Option<&'a str>,
    pub(crate) lane: Option<&'a str>,
    pub(crate) lane_seq: Option<&'a str>,
}

/// The importer's headers (first value of each, as [`get`]), in one pass over the map:
/// no hashing, and no copy of the name (a lookup by `&str` makes one).
pub(crate) fn known(h: Option<&HeaderMap>) -> Known<'_> {
    let mut k = Known::default();
    for (name, values) in h.into_iter().flat_map(HeaderMap::iter) {
        let slot = match AsRef::<str>::as_ref(name) {
            MSG_ID => &mut k.msg_id,
            KIND => &mut k.kind,
            ORIGIN => &mut k.origin,
            SEQ => &mut k.seq,
            LANE => &mut k.lane,
            LANE_SEQ => &mut k.lane_seq,
            _ => continue,
        };
        *slot = values.first().map(HeaderValue::as_str);
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_ids_and_numbers() {
        assert_eq!(msg_id("a@1", 0), "a@1:0");
        assert_eq!(msg_id("a@1", 42), "a@1:42");
        assert_eq!(msg_id("a@1", u64::MAX), format!("a@1:{}", u64::MAX));
        let h = headers("feed@00ff", "market_event", 7, 1_718_000_000_123_456_789);
        assert_eq!(get(Some(&h), MSG_ID), Some("feed@00ff:7"));
        assert_eq!(get(Some(&h), KIND), Some("market_event"));
        assert_eq!(get(Some(&h), ORIGIN), Some("feed@00ff"));
        assert_eq!(get(Some(&h), SEQ), Some("7"));
        assert_eq!(get(Some(&h), TS), Some("1718000000123456789"));
        assert_eq!(get(Some(&h), CONTENT_TYPE), Some(JSON));
        assert_eq!(h.len(), 6);
        let k = known(Some(&h));
        assert_eq!(k.msg_id, Some("feed@00ff:7"));
        assert_eq!(k.kind, Some("market_event"));
        assert_eq!(k.origin, Some("feed@00ff"));
        assert!(k.lane.is_none() && k.lane_seq.is_none());
        let h = lane_headers("feed@00ff", "market_event", 7, 1, "sy.market_data.>", 3);
        assert_eq!(h.len(), 8);
        let k = known(Some(&h));
        assert_eq!(k.lane, Some("sy.market_data.>"));
        assert_eq!(k.lane_seq, Some("3"));
        assert_eq!(k.seq, Some("7"));
        let k = known(None);
        assert!(k.msg_id.is_none() && k.kind.is_none() && k.origin.is_none());
    }
}
