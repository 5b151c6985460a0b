//! Messages from other programs over NATS, as the bridge's importer reads them
//! ([`read_message`]): subject to topic under the prefix, the `Switchyard-*` headers, the
//! import by kind and pattern, and the JSON payload decoded as the node's imports do
//! (`market_event` on `market_data.>`, `feed_end` on `feed.end`).
//!
//! Input: a flag byte (prefix or none), the subject up to the first `\n`, a header block
//! up to the first empty line (`Name: value` lines, continuation lines, as the NATS client
//! parses an `HMSG`), then the payload. Checks: an accepted message has a valid topic its
//! import's pattern matches, and its event goes back to the same JSON-decoded value.

use std::str::FromStr;
use std::sync::OnceLock;

use async_nats::{HeaderMap, HeaderName, HeaderValue};
use switchyard::{Pattern, Topic};
use switchyard_nats::fuzzing::{Incoming, read_message};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire::{self, FeedEnd};

fn imports() -> &'static [(Pattern, &'static str)] {
    static IMPORTS: OnceLock<Vec<(Pattern, &'static str)>> = OnceLock::new();
    IMPORTS.get_or_init(|| {
        let p = |s| Pattern::new(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        vec![
            (p(wire::MARKET_DATA), wire::MARKET_EVENT),
            (p(wire::FEED_END_TOPIC), wire::FEED_END),
        ]
    })
}

/// The header block as the NATS client reads it; `None` where the client refuses it.
fn parse_headers(block: &str) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    let mut lines = block.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':')?;
        let name = HeaderName::from_str(name).ok()?;
        let mut value = value.trim_start().to_owned();
        while let Some(v) = lines.next_if(|s| s.starts_with(char::is_whitespace)) {
            value.push_str(v);
        }
        value.truncate(value.trim_end().len());
        headers.append(name, HeaderValue::from_str(&value).ok()?);
    }
    Some(headers)
}

/// One incoming message.
pub fn import(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let prefix = if flags & 1 == 0 { "" } else { "sy" };
    let (subject, rest) = crate::split_once(rest, b'\n');
    let Ok(subject) = std::str::from_utf8(subject) else {
        return;
    };
    let (block, payload) = match rest.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&rest[..i], &rest[i + 4..]),
        None => (&rest[..0], rest),
    };
    let headers = match std::str::from_utf8(block) {
        Ok("") => None,
        Ok(b) => match parse_headers(b) {
            Some(h) => Some(h),
            None => return,
        },
        Err(_) => return,
    };
    let imports = imports();
    // Both import types, as the node registers them; the kind header picks one.
    check::<MarketEvent>(prefix, imports, subject, headers.as_ref(), payload);
    check::<FeedEnd>(prefix, imports, subject, headers.as_ref(), payload);
}

fn check<T>(
    prefix: &str,
    imports: &[(Pattern, &str)],
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    match read_message::<T>(prefix, "me@0001", imports, subject, headers, payload) {
        Incoming::Skipped(why) => assert!(!why.is_empty()),
        Incoming::Undecodable(message) => assert!(!message.is_empty()),
        Incoming::Accepted {
            import,
            topic,
            event,
            ..
        } => {
            Topic::check(&topic).unwrap_or_else(|e| panic!("accepted topic {topic:?}: {e}"));
            assert!(imports[import].0.matches_str(&topic));
            let json = serde_json::to_vec(&event).expect("an imported event re-encodes");
            let back: T = serde_json::from_slice(&json)
                .unwrap_or_else(|e| panic!("{event:?} re-encoded as {json:?}: {e}"));
            assert_eq!(back, event, "JSON round trip");
        }
    }
}
