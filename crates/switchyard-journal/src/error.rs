//! Errors of the journal. Each names the segment file and, for damage, the byte offset.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::codec::{Corruption, EncodeError, HeaderError};

/// An error opening, writing or reading a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// An I/O operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `"reading"`.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A frame in a segment is damaged and is not a torn tail (see the crate docs).
    #[error("{}: corrupt frame at byte offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Offset of the bad frame in the segment file.
        offset: u64,
        /// What is wrong.
        #[source]
        reason: Corruption,
    },
    /// A segment header is not valid.
    #[error("{}: bad segment header: {reason}", path.display())]
    BadHeader {
        /// The segment file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        reason: HeaderError,
    },
    /// Consecutive segments do not continue each other's indexes.
    #[error("{}: segment starts at index {found}, but the previous segment ends at {}", path.display(), expected - 1)]
    SegmentGap {
        /// The later segment.
        path: PathBuf,
        /// The index it should start at.
        expected: u64,
        /// The index it starts at.
        found: u64,
    },
    /// The directory holds no journal.
    #[error("{}: no journal segments found", path.display())]
    Empty {
        /// The directory.
        path: PathBuf,
    },
    /// Another process (or another `Journal` in this one) has the journal open for
    /// writing.
    #[error("{}: journal is locked by another writer", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A record could not be encoded.
    #[error("cannot journal event on {topic:?}: {source}")]
    Encode {
        /// Topic of the event.
        topic: String,
        /// Why.
        #[source]
        source: EncodeError,
    },
    /// The writer thread failed (write or fsync); nothing more is accepted. After a
    /// failed fsync the state of the file is unknown: reopen the journal to recover.
    #[error("journal writer failed on {}: {source}", path.display())]
    WriterFailed {
        /// The segment being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The journal is in an outage (a write or fsync failed; see
    /// [`outage`](crate::outage)): the append was refused and is counted as lost, or the
    /// record waited for is not durable now.
    #[error("journal {} is not writing: {reason}", dir.display())]
    Unavailable {
        /// The journal directory.
        dir: PathBuf,
        /// The failure.
        reason: String,
    },
    /// The journal is closed.
    #[error("the journal is closed")]
    Closed,
    /// The journal has used up its index space: index `u64::MAX` is never assigned (only
    /// reachable with a crafted segment whose first index is near `u64::MAX`).
    #[error("the journal's index space is exhausted (index {next} cannot be assigned)")]
    IndexExhausted {
        /// The index the append would have had (`u64::MAX`).
        next: u64,
    },
    /// `wait_durable` for an index that was never appended.
    #[error("index {index} was never appended (next index is {next})")]
    NotAppended {
        /// The index asked for.
        index: u64,
        /// The next index to be assigned.
        next: u64,
    },
    /// The configuration is not usable.
    #[error("invalid journal configuration: {0}")]
    Config(&'static str),
}

impl JournalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| JournalError::Io { op, path, source }
    }
}

/// An error replaying a journal onto a bus.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Reading the journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A payload did not decode as the type registered for its kind.
    #[error("record #{index} (kind {kind:?}) does not decode: {source}")]
    Decode {
        /// The record's index.
        index: u64,
        /// Its kind.
        kind: String,
        /// The decoding error.
        #[source]
        source: crate::codec::PayloadError,
    },
    /// A record's topic is not a valid topic.
    #[error("record #{index} has an invalid topic: {source}")]
    Topic {
        /// The record's index.
        index: u64,
        /// Why the topic is invalid.
        #[source]
        source: switchyard::TopicError,
    },
    /// The bus was shut down during the replay.
    #[error("the bus shut down during replay (at record #{index})")]
    BusClosed {
        /// The record that could not be published.
        index: u64,
    },
}
