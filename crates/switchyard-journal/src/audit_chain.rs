//! The audit trail's hash chain: every control record (kind [`CONTROL_KIND`]: kill-switch
//! triggers, resets and refused resets, lifecycle changes, alerts, breaker transitions,
//! shutdown) carries SHA-256 over the previous control record's hash and its own
//! content, so that editing, removing or reordering one is caught by
//! [`verify`](crate::verify) even when the frame checksums are fixed up.
//!
//! # Where it lives, and why
//!
//! In the journal's recording of control events ([`Journal::append_audit`]), not in the
//! kill switch's in-memory audit log: what needs to be tamper-evident is the trail on
//! disk, and the journal hashes the exact bytes it stores (no canonical form to agree
//! on), under the same lock that assigns the record's index, so the chain's order is the
//! file's order. It covers every control event the journal records, whatever raised it,
//! and the kill switch (in the `switchyard` crate) needs neither a hash dependency nor
//! any knowledge of persistence.
//!
//! # Format
//!
//! The payload of a control record is the event's JSON object with one more member at
//! its end, `"chain":{"prev":"<64 hex>","hash":"<64 hex>"}` (so any JSON reader still
//! reads the event). `prev` is the previous control record's `hash` (64 zeros for the
//! journal's first); `hash` is SHA-256 of, in order:
//!
//! | bytes | what |
//! |---|---|
//! | 24 | the domain tag `switchyard audit chain 1` |
//! | 32 | `prev` |
//! | 8 + 8 + 8 | journal index, envelope sequence number, timestamp (ns), little-endian |
//! | 2 + `t` | topic length (LE) and topic |
//! | 2 + `k` | kind length (LE) and kind |
//! | rest | the event's JSON, as stored, without the `chain` member |
//!
//! The index is in the hash, so a record moved elsewhere breaks the chain as well.
//!
//! # Restarts
//!
//! The chain spans the journal, across reopenings: [`Journal::open`] finds the last
//! control record (in the last segment, or the newest older segment holding one) and the
//! next control record links to its `hash`. (Reading back over segments without a
//! control record is the one cost; a node journals lifecycle events at every start, so
//! the last segment normally has one.) A node run writes a journal directory of its own,
//! so each run starts a chain at 64 zeros.
//!
//! What the chain does not do: the newest record can be changed (nothing after it
//! links to it) and the journal can be cut short; keep the head `verify` prints
//! somewhere else (a ticket, a log shipped off the machine) to pin it.
//!
//! [`Journal::append_audit`]: crate::Journal::append_audit
//! [`Journal::open`]: crate::Journal::open

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::codec::Record;
use crate::recorder::CONTROL_KIND;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The `prev` of the journal's first control record.
pub const GENESIS: Hash = [0; 32];

const DOMAIN: &[u8; 24] = b"switchyard audit chain 1";
const OPEN: &[u8] = br#","chain":{"prev":""#;
const MID: &[u8] = br#"","hash":""#;
const CLOSE: &[u8] = br#""}}"#;
/// Bytes the chain member adds to the event's JSON.
pub const SUFFIX_LEN: usize = OPEN.len() + 64 + MID.len() + 64 + CLOSE.len() - 1;

/// The hash of one control record.
#[allow(clippy::too_many_arguments)] // the record's fields, in the order they are hashed
pub fn seal(
    prev: &Hash,
    index: u64,
    seq: u64,
    ts: u64,
    topic: &str,
    kind: &str,
    event_json: &[u8],
) -> Hash {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update(index.to_le_bytes());
    h.update(seq.to_le_bytes());
    h.update(ts.to_le_bytes());
    h.update((topic.len() as u16).to_le_bytes());
    h.update(topic.as_bytes());
    h.update((kind.len() as u16).to_le_bytes());
    h.update(kind.as_bytes());
    h.update(event_json);
    h.finalize().into()
}

/// Lower-case hex of a hash.
pub fn hex(h: &Hash) -> String {
    let mut s = String::with_capacity(64);
    for b in h {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

fn unhex(s: &[u8]) -> Option<Hash> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Turn the event's JSON object at `buf[start..]` into the chained payload: seal it
/// (with the record's index, sequence number, time, topic and kind) after `prev`, and
/// insert the chain member before its closing brace. Returns the record's hash, or
/// `None` (buffer unchanged) if the JSON is not a non-empty object.
#[allow(clippy::too_many_arguments)] // the record's fields, in the order they are hashed
pub(crate) fn chain_in_place(
    buf: &mut Vec<u8>,
    start: usize,
    prev: &Hash,
    index: u64,
    seq: u64,
    ts: u64,
    topic: &str,
    kind: &str,
) -> Option<Hash> {
    let json = &buf[start..];
    // `{}` would need no comma before the member: not an event, refused.
    if json.len() < 3 || json.first() != Some(&b'{') || json.last() != Some(&b'}') {
        return None;
    }
    let hash = seal(prev, index, seq, ts, topic, kind, json);
    buf.pop();
    buf.extend_from_slice(OPEN);
    buf.extend_from_slice(hex(prev).as_bytes());
    buf.extend_from_slice(MID);
    buf.extend_from_slice(hex(&hash).as_bytes());
    buf.extend_from_slice(CLOSE);
    Some(hash)
}

/// The chain member of a stored control payload: `(prev, hash, event JSON without the
/// member)`, or `None` if the payload does not end with one.
fn split(payload: &[u8]) -> Option<(Hash, Hash, Vec<u8>)> {
    let body_len = payload.len().checked_sub(SUFFIX_LEN + 1)?;
    let (body, tail) = payload.split_at(body_len);
    let tail = tail.strip_prefix(OPEN)?;
    let (prev, tail) = tail.split_at_checked(64)?;
    let tail = tail.strip_prefix(MID)?;
    let (hash, tail) = tail.split_at_checked(64)?;
    if tail != CLOSE {
        return None;
    }
    let mut json = body.to_vec();
    json.push(b'}');
    Some((unhex(prev)?, unhex(hash)?, json))
}

/// The stored hash of a control record, if it has a well-formed chain member (for the
/// writer, to continue the chain after a reopen).
pub(crate) fn stored_hash(payload: &[u8]) -> Option<Hash> {
    split(payload).map(|(_, h, _)| h)
}

/// The stored hash of `r` if it is a control record with a well-formed chain member.
pub(crate) fn head_of(r: &Record<'_>) -> Option<Hash> {
    (r.kind == CONTROL_KIND)
        .then(|| stored_hash(r.payload))
        .flatten()
}

/// Why a control record breaks the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainBreak {
    /// No well-formed `chain` member at the end of the payload.
    Unchained,
    /// `prev` is not the previous control record's hash: a record before it was
    /// removed, or this one was moved or inserted.
    WrongPrev {
        /// The previous control record's hash (64 zeros if there is none).
        expected: String,
        /// The `prev` stored.
        found: String,
        /// The previous control record's journal index, if any.
        previous: Option<u64>,
    },
    /// The record's content (event, index, sequence number, time, topic) does not hash
    /// to its stored `hash`: it was changed after it was written.
    WrongHash {
        /// The hash of the content as it is.
        computed: String,
        /// The `hash` stored.
        stored: String,
    },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainBreak::Unchained => write!(f, "no chain member (prev, hash) in its payload"),
            ChainBreak::WrongPrev {
                expected,
                found,
                previous,
            } => {
                write!(f, "its prev {found} is not the hash ")?;
                match previous {
                    Some(i) => write!(f, "{expected} of the previous audit record #{i}")?,
                    None => write!(
                        f,
                        "{expected} that starts a chain (no audit record before it)"
                    )?,
                }
                write!(f, " (a record was removed, inserted or moved)")
            }
            ChainBreak::WrongHash { computed, stored } => write!(
                f,
                "its content hashes to {computed}, not to its stored hash {stored} (changed after it was written)"
            ),
        }
    }
}

/// Checks control records in journal order.
#[derive(Debug)]
pub(crate) struct ChainVerifier {
    head: Hash,
    head_index: Option<u64>,
    records: u64,
    /// The journal's oldest segments were deleted (retention): the first record's `prev`
    /// cannot be checked, and is taken as the chain's anchor.
    anchored: bool,
}

impl ChainVerifier {
    pub(crate) fn new() -> Self {
        ChainVerifier {
            head: GENESIS,
            head_index: None,
            records: 0,
            anchored: false,
        }
    }

    /// A verifier for a journal whose oldest segments were deleted: the first record
    /// links to one that is gone, so its `prev` is taken as given; every later link and
    /// every hash is checked.
    pub(crate) fn anchored() -> Self {
        ChainVerifier {
            anchored: true,
            ..ChainVerifier::new()
        }
    }

    /// Check the next control record.
    pub(crate) fn check(&mut self, r: &Record<'_>) -> Result<(), ChainBreak> {
        let (prev, stored, json) = split(r.payload).ok_or(ChainBreak::Unchained)?;
        if self.anchored && self.head_index.is_none() {
            self.head = prev;
        }
        if prev != self.head {
            return Err(ChainBreak::WrongPrev {
                expected: hex(&self.head),
                found: hex(&prev),
                previous: self.head_index,
            });
        }
        let computed = seal(
            &prev,
            r.index,
            r.seq,
            r.ts.as_nanos(),
            r.topic,
            r.kind,
            &json,
        );
        if computed != stored {
            return Err(ChainBreak::WrongHash {
                computed: hex(&computed),
                stored: hex(&stored),
            });
        }
        self.head = stored;
        self.head_index = Some(r.index);
        self.records += 1;
        Ok(())
    }

    /// Control records checked so far, and the chain's head (hash and index of the last).
    pub(crate) fn summary(&self) -> (u64, Option<(u64, Hash)>) {
        (self.records, self.head_index.map(|i| (i, self.head)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_member_is_as_long_as_documented_and_splits_back() {
        let mut buf = b"xx{\"type\":\"shutdown\",\"reason\":\"r\"}".to_vec();
        let h = chain_in_place(&mut buf, 2, &GENESIS, 7, 8, 9, "a.b", "control").unwrap();
        let payload = &buf[2..];
        assert_eq!(SUFFIX_LEN, 158);
        assert_eq!(payload.len(), 32 + SUFFIX_LEN);
        let (prev, hash, json) = split(payload).unwrap();
        assert_eq!((prev, hash), (GENESIS, h));
        assert_eq!(json, b"{\"type\":\"shutdown\",\"reason\":\"r\"}");
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(v["chain"]["hash"], hex(&h));
        assert_eq!(v["reason"], "r");
        // Every input is in the hash.
        let base = seal(&GENESIS, 7, 8, 9, "a.b", "control", &json);
        assert_eq!(base, h);
        for other in [
            seal(&[1; 32], 7, 8, 9, "a.b", "control", &json),
            seal(&GENESIS, 6, 8, 9, "a.b", "control", &json),
            seal(&GENESIS, 7, 9, 9, "a.b", "control", &json),
            seal(&GENESIS, 7, 8, 8, "a.b", "control", &json),
            seal(&GENESIS, 7, 8, 9, "a.c", "control", &json),
            seal(&GENESIS, 7, 8, 9, "a.b", "contro1", &json),
            seal(&GENESIS, 7, 8, 9, "a.b", "control", b"{}"),
        ] {
            assert_ne!(other, base);
        }
    }

    #[test]
    fn hex_round_trips_and_refuses_other_digits() {
        let h: Hash = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex(hex(&h).as_bytes()), Some(h));
        assert_eq!(unhex(hex(&h).to_uppercase().as_bytes()), None);
        assert_eq!(unhex(b"00"), None);
    }

    #[test]
    fn only_a_non_empty_object_is_chained() {
        for json in [&b"[1]"[..], b"{}", b"\"{}\""] {
            let mut buf = json.to_vec();
            assert_eq!(
                chain_in_place(&mut buf, 0, &GENESIS, 1, 1, 1, "t", "k"),
                None
            );
            assert_eq!(buf, json);
        }
    }
}
