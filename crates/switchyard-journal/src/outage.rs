//! Write failures: when a write, fsync or segment creation fails (a full disk, an I/O
//! error), the writer does not stop for good. It enters an *outage*: appends are refused
//! (no index is used up, so the file stays gapless) and counted as lost; the writer keeps
//! what it had accepted (the unsynced bytes of the current segment and the batch it was
//! writing) in memory, cuts the segment back to its last synced length, and retries
//! ([`JournalConfig::retry_every`](crate::JournalConfig::retry_every), or
//! [`Journal::retry_now`](crate::Journal::retry_now)). A retry rewrites the kept bytes
//! and fsyncs; once that succeeds, writing resumes, and the records refused meanwhile are
//! reported as a [`Gap`]: by [`Journal::gaps`](crate::Journal::gaps), in the counters, and
//! in the journal itself as an audit record (topic [`GAP_TOPIC`], chained like every
//! control record), the first record after the gap.

use std::fmt;

use serde::Serialize;
use switchyard::Timestamp;

use crate::audit_chain;
use crate::codec;
use crate::journal::State;
use crate::recorder::CONTROL_KIND;

/// Topic of the audit record a journal writes when it resumes after an outage.
pub const GAP_TOPIC: &str = "switchyard.control.journal_gap";

/// An outage in progress, as [`Journal::outage`](crate::Journal::outage) reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outage {
    /// What failed last: the operation, the file, the OS error.
    pub reason: String,
    /// Index of the last record accepted before the outage (written once it ends).
    pub after_index: u64,
    /// Appends refused so far.
    pub lost: u64,
    /// Failed attempts (the first failure and every failed retry).
    pub failures: u64,
    /// Sequence numbers of the first and last refused events.
    pub seq: Option<(u64, u64)>,
    /// Timestamps of the first and last refused events.
    pub ts: Option<(Timestamp, Timestamp)>,
}

impl Outage {
    pub(crate) fn new(reason: String, after_index: u64) -> Self {
        Outage {
            reason,
            after_index,
            lost: 0,
            failures: 1,
            seq: None,
            ts: None,
        }
    }

    /// Count a refused append.
    pub(crate) fn lose(&mut self, seq: u64, ts: Timestamp) {
        self.lost += 1;
        self.seq = Some(self.seq.map_or((seq, seq), |(a, _)| (a, seq)));
        self.ts = Some(self.ts.map_or((ts, ts), |(a, _)| (a, ts)));
    }
}

impl fmt::Display for Outage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "journal not writing since record #{}: {} ({} record(s) refused so far, {} failed attempt(s))",
            self.after_index, self.reason, self.lost, self.failures
        )
    }
}

/// Records lost to an outage that ended: they were refused between record
/// `after_index` and record `resumed_at` (the gap's own audit record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Index of the last record written before the gap.
    pub after_index: u64,
    /// Index of the gap's audit record, the first record after the gap.
    pub resumed_at: u64,
    /// Appends refused during the outage (events not in the journal).
    pub lost: u64,
    /// Sequence numbers of the first and last lost events.
    pub seq: Option<(u64, u64)>,
    /// Timestamps of the first and last lost events.
    pub ts: Option<(Timestamp, Timestamp)>,
    /// The first failure's reason.
    pub reason: String,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} record(s) lost between #{} and #{}",
            self.lost, self.after_index, self.resumed_at
        )?;
        if let Some((a, b)) = self.seq {
            write!(f, " (seq {a}..={b})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// End the outage `o`: append the gap's audit record to the buffer (under the state
/// lock, like any append) and return the gap. The record's payload is JSON:
/// `{"type":"journal_gap","after_index":…,"lost":…,"seq":[a,b]|null,"ts":[a,b]|null,
/// "reason":…,"chain":{…}}`.
pub(crate) fn end(st: &mut State, o: Outage, now: Timestamp) -> Gap {
    let index = st.next_index;
    let gap = Gap {
        after_index: o.after_index,
        resumed_at: index,
        lost: o.lost,
        seq: o.seq,
        ts: o.ts,
        reason: o.reason,
    };
    let value = serde_json::json!({
        "type": "journal_gap",
        "after_index": gap.after_index,
        "lost": gap.lost,
        "seq": gap.seq,
        "ts": gap.ts.map(|(a, b)| (a.as_nanos(), b.as_nanos())),
        "reason": gap.reason,
    });
    let prev = st.chain;
    let buf_start = st.buf.len();
    let mut sealed = None;
    let encoded =
        codec::encode_frame_with(&mut st.buf, index, 0, now, GAP_TOPIC, CONTROL_KIND, |b| {
            let start = b.len();
            serde_json::to_writer(&mut *b, &value)?;
            sealed = audit_chain::chain_in_place(
                b,
                start,
                &prev,
                index,
                0,
                now.as_nanos(),
                GAP_TOPIC,
                CONTROL_KIND,
            );
            Ok::<(), serde_json::Error>(())
        });
    match (encoded, sealed) {
        (Ok(()), Some(h)) => {
            st.chain = h;
            st.next_index = index + 1;
            st.frames += 1;
            st.appended += 1;
            if st.buf_since.is_none() {
                st.buf_since = Some(std::time::Instant::now());
            }
        }
        // A JSON object of a few fields always encodes and chains; should it not, the
        // gap is still reported, only not journaled.
        _ => {
            st.buf.truncate(buf_start);
            tracing::error!(%gap, "journal: could not encode the gap's audit record");
        }
    }
    gap
}

/// Now, by the wall clock: the gap record's timestamp.
pub(crate) fn wall_clock() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}
