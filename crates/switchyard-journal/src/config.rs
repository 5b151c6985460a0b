//! [`JournalConfig`], the configuration of a [`Journal`](crate::Journal), and its
//! durability policy [`SyncPolicy`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// When the writer calls `fdatasync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum SyncPolicy {
    /// As soon as anything is written: every event is on disk before it counts as
    /// durable. Events appended while an fsync runs share the next one (natural group
    /// commit), so throughput is bounded by fsync latency × batch size, not per event.
    Always,
    /// Group commit: fsync once `every_events` events are unsynced, or `every` has passed
    /// since the oldest unsynced event was appended, whichever comes first. Appenders never
    /// wait for an fsync.
    Group {
        /// Events per fsync, at most.
        every_events: u64,
        /// Longest time an event stays unsynced (plus one fsync).
        every: Duration,
    },
    /// Write without fsync. Events survive a crash of the process (they are in the OS
    /// page cache) but not of the machine. [`Journal::durable`](crate::Journal::durable) advances only on
    /// [`Journal::sync_now`](crate::Journal::sync_now), segment rollover and [`Journal::close`](crate::Journal::close).
    Never,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy::Group {
            every_events: 1000,
            every: Duration::from_millis(1),
        }
    }
}

/// Configuration of a [`Journal`](crate::Journal).
#[derive(Clone, Debug, Serialize)]
pub struct JournalConfig {
    /// Directory of the segment files (created if missing).
    pub dir: PathBuf,
    /// Roll over to a new segment before one would exceed this many bytes (a single frame
    /// larger than this gets a segment of its own). Default 64 MiB.
    pub segment_bytes: u64,
    /// When to fsync. Default: group commit every 1,000 events or 1 ms.
    pub sync: SyncPolicy,
    /// Bound on appended but not yet written bytes: appenders wait while the buffer holds
    /// more than this. Default 32 MiB.
    pub max_buffer_bytes: usize,
    /// Verify every frame of every segment on open, not only the last segment. Default
    /// false (older segments were fsynced before rollover; only their headers are checked).
    pub verify_on_open: bool,
    /// After a failed write or fsync, how often the writer retries (see
    /// [`outage`](crate::outage)). Default 1 s.
    pub retry_every: Duration,
}

impl Default for JournalConfig {
    /// Defaults, in the directory `journal` (relative to the working directory).
    fn default() -> Self {
        JournalConfig::new("journal")
    }
}

impl JournalConfig {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            segment_bytes: 64 * 1024 * 1024,
            sync: SyncPolicy::default(),
            max_buffer_bytes: 32 * 1024 * 1024,
            verify_on_open: false,
            retry_every: Duration::from_secs(1),
        }
    }

    /// Set [`JournalConfig::retry_every`].
    pub fn retry_every(mut self, every: Duration) -> Self {
        self.retry_every = every;
        self
    }

    /// Set [`JournalConfig::sync`].
    pub fn sync(mut self, sync: SyncPolicy) -> Self {
        self.sync = sync;
        self
    }

    /// Set [`JournalConfig::segment_bytes`].
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Set [`JournalConfig::max_buffer_bytes`].
    pub fn max_buffer_bytes(mut self, bytes: usize) -> Self {
        self.max_buffer_bytes = bytes;
        self
    }

    /// Set [`JournalConfig::verify_on_open`].
    pub fn verify_on_open(mut self, yes: bool) -> Self {
        self.verify_on_open = yes;
        self
    }
}
