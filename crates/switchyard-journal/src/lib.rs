//! A durable, append-only journal of Switchyard bus events: checksummed frames in
//! segmented files, group commit, crash recovery, inspection, and deterministic replay
//! onto a bus.
//!
//! | item | what |
//! |---|---|
//! | [`Journal`] | open for writing (with recovery), append, durability, close |
//! | [`JournalReader`], [`ReadFilter`], [`Cursor`] | read-only access, filtered by index, sequence, time, topic |
//! | [`Recorder`] | journal chosen topics (and control events) of a [`Bus`](switchyard::Bus) |
//! | [`Replayer`] | publish a journal back onto a bus, driving a [`ManualClock`](switchyard::ManualClock) |
//! | [`inspect()`], [`verify()`] | summaries, checksum and audit chain verification, for the CLI |
//! | [`outage`] | write failures (full disk, I/O errors): refused appends, retries, the reported [`Gap`] |
//! | [`retention`] | limits on a root of journals (one per run): oldest segments and runs deleted first, never an open segment |
//! | [`audit_chain`] | the hash chain of the audit trail (control records) |
//! | [`codec`] | frame and header encoding |
//! | [`cut_aside`] | the side file a damaged tail is copied to before recovery cuts it |
//! | [`storage`] | the writer's file operations behind a trait ([`FsStorage`] by default), for simulated power loss |
//!
//! # Files
//!
//! A journal is a directory of segment files named by the index of their first record,
//! 20 zero-padded digits: `00000000000000000001.sy-journal`, so that names sort like
//! indexes. The writer holds a lock file `LOCK` (an advisory `flock`), so only one
//! process writes at a time. Records get a *journal index*: gapless, starting at 1,
//! assigned by append, continuing across segments and reopenings.
//!
//! Every integer is little-endian. A segment starts with a 32-byte header:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `SWYDJRNL` |
//! | 8 | 2 | format version, `1` |
//! | 10 | 2 | header length, `32` |
//! | 12 | 4 | flags, `0` |
//! | 16 | 8 | index of the segment's first record (equals the file name) |
//! | 24 | 4 | reserved, `0` |
//! | 28 | 4 | CRC32C of bytes 0..28 |
//!
//! then frames, back to back, each:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | body length `L` (bytes after this 8-byte frame header; 28 ≤ `L`, frame ≤ 16 MiB) |
//! | 4 | 4 | CRC32C (Castagnoli) of bytes 0..4 followed by the body |
//! | 8 | 8 | journal index |
//! | 16 | 8 | envelope sequence number |
//! | 24 | 8 | envelope timestamp, ns since the Unix epoch |
//! | 32 | 2 | topic length `t` |
//! | 34 | 2 | kind length `k` |
//! | 36 | `t` | topic, UTF-8 |
//! | 36+`t` | `k` | kind (type tag), UTF-8 |
//! | 36+`t`+`k` | rest | payload |
//!
//! The payload is the event serialized with serde into
//! [MessagePack](https://msgpack.org) by [rmp-serde](https://docs.rs/rmp-serde), structs
//! as arrays: compact (integers in 1–9 bytes, no field names), specified, readable by a
//! MessagePack library in any language, and *self-describing*, which the trading types
//! need: their enums are internally tagged (`{"type": "trade", ...}` in JSON), and a
//! non-self-describing format such as postcard or bincode cannot decode those. The kind
//! names the type to decode as (see [`Replayer::decoder`]).
//! Control events ([`Recorder::record_control`], kind `control`) are the exception: their
//! payload is JSON, since [`ControlEvent`](switchyard::ControlEvent) only serializes and
//! its audit records should be readable without the Rust types. They are the audit
//! trail, hash-chained: each carries SHA-256 over the previous one's hash and its own
//! content, which [`verify()`] checks ([`audit_chain`]).
//!
//! A new format version gets a new version number; this build refuses other versions
//! ([`codec::HeaderError::UnsupportedVersion`]).
//!
//! # The tail rule (crash recovery)
//!
//! A crash can leave the end of the last segment torn: a partial frame, or (after a
//! power loss) bytes that never reached the disk. Scanning a segment from the start, the
//! first position where no valid frame begins (cut short, impossible length, checksum
//! mismatch, malformed body) is the *bad position*. Then:
//!
//! * In the **last** segment, if no valid frame (right checksum and an index that could
//!   follow) begins anywhere after the bad position up to the end of the file, the bytes
//!   from the bad position on are a **torn tail**. [`Journal::open`] cuts them off
//!   (truncates the file), fsyncs, and reports segment, offset and byte count in its
//!   [`RecoveryReport`]; [`JournalReader`] reports them and stops reading there, without
//!   touching the file. Everything before the bad position is kept.
//! * In the **last** segment, if a valid frame **does** follow the bad position, the
//!   bytes from the bad position on are a **damaged tail**. [`Journal::open`] cuts it at
//!   the bad position like a torn tail, but first copies the cut bytes to a side file
//!   next to the segment, `<segment>.cut-<offset>` ([`cut_aside`]; `.cut-<offset>.1` and
//!   so on if that exists), fsyncs it and syncs the directory, so nothing is destroyed
//!   without a copy. [`RecoveryReport::truncated`] reports it with
//!   [`TornTail::next_valid`] and [`TornTail::kept_in`] (the side file), and a warning is
//!   logged. The read-only tools do not cut: [`JournalReader`] refuses such a journal
//!   ([`JournalError::Corrupt`]) and [`verify()`] lists it as a problem, saying that
//!   opening for writing cuts it and where the bytes will be kept.
//! * Bad data in **any other** segment is an error ([`JournalError::Corrupt`]) naming
//!   the segment and the offset, never a silent skip or a cut. So is a valid frame with
//!   an unexpected index, in any segment.
//! * A last segment shorter than its header (a crash while creating it) is a torn tail
//!   too; the writer rewrites the header.
//!
//! Why the damaged tail is cut: the writer fsyncs a segment before creating the next, and
//! a new segment's header and directory entry before writing frames to it, so only the
//! last segment can be damaged by a crash. Within it, a power loss can persist a later
//! write of never-fsynced data without an earlier one (a hole): damage followed by valid
//! frames, always after every record that was durable. Refusing to open would stop the
//! writer for a case that is a normal outcome of a power loss (about 3% of the simulated
//! cuts of the power-loss test, `tests/power_loss`); cutting at the hole yields exactly
//! a prefix of the records that holds every durable one, as SQLite's WAL does. The
//! trade-off: real damage (a bad sector, a stray write) in the last segment is cut the
//! same way, together with the valid records after it, even durable ones; that is why
//! the bytes are kept in the side file rather than discarded, and why the report and the
//! log name it. Crashes of the process alone (the page cache survives) always leave a
//! clean prefix plus at most one torn frame.
//!
//! # Durability
//!
//! [`Journal::append`] (and [`Journal::append_serialized`], which MessagePack-encodes into
//! the shared buffer without an intermediate `Vec`) encodes the frame into a buffer under
//! a short mutex and returns the record's index. A dedicated writer thread swaps the
//! buffer out, writes it to the segment, rolls over at frame boundaries, and calls
//! `fdatasync` as the [`SyncPolicy`] says:
//!
//! * [`SyncPolicy::Always`]: as soon as anything is written (appends that arrive during an
//!   fsync share the next one).
//! * [`SyncPolicy::Group`]: when `every_events` events are unsynced or `every` has passed
//!   since the oldest unsynced event was appended. Appenders never wait for an fsync; they
//!   wait only when more than `max_buffer_bytes` are not yet written.
//! * [`SyncPolicy::Never`]: no fsync except on [`Journal::sync_now`], segment rollover and
//!   [`Journal::close`].
//!
//! [`Journal::durable`] is the index of the last record known to be on disk: every
//! record with an index up to it is fsynced (the journal index is the order of the
//! file). [`Journal::wait_durable`] blocks, [`Journal::durable_at_least`] awaits, until a
//! given index is durable; [`Journal::sync_now`] forces write and fsync now.
//! [`Journal::written`] is the index handed to the OS (safe from a crash of the process,
//! not of the machine). On reopen, every record that was durable is there, intact.
//!
//! A failed write, fsync or segment creation (a full disk, an I/O error) starts an
//! *outage* ([`outage`]): appends are refused with [`JournalError::Unavailable`] and
//! counted (no index is used up), durability waits fail, the segment is cut back to its
//! last synced length, and the writer retries every [`JournalConfig::retry_every`] (or
//! on [`Journal::retry_now`]) by rewriting, from memory, what it had accepted since the
//! last fsync (at most one segment's worth). Once a retry succeeds it writes again and
//! reports the refused records as a [`Gap`] ([`Journal::gaps`], [`JournalStats`], and
//! an audit record on topic [`GAP_TOPIC`] in the journal). Only closing during an outage
//! whose last retry fails makes the writer fail for good ([`JournalError::WriterFailed`]).
//!
//! # Replay
//!
//! [`Replayer::run`] publishes records in journal order with `Bus::publish`, first
//! setting the replay clock to the record's timestamp, at full speed or paced by the
//! original gaps ([`Pace::Original`]), so the same components see the same events at the
//! same logical times.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod audit_chain;
pub mod bench;
pub mod codec;
mod config;
pub mod cut_aside;
mod error;
mod inspect;
mod journal;
pub mod outage;
mod reader;
mod recorder;
mod recovery;
mod replay;
pub mod retention;
pub mod segment;
pub mod storage;
mod writer;

pub use audit_chain::ChainBreak;
pub use codec::{
    FrameError, OwnedRecord, PayloadError, Record, decode_frame, decode_payload, encode_frame,
    encode_payload,
};
pub use error::{JournalError, ReplayError};
pub use inspect::{
    AuditChainReport, BrokenLink, Inspection, Problem, VerifyReport, inspect, verify,
};
pub use journal::{Journal, JournalConfig, JournalStats, LOCK_FILE, RecoveryReport, SyncPolicy};
pub use outage::{GAP_TOPIC, Gap, Outage};
pub use reader::{Cursor, JournalReader, ReadFilter, ReaderReport, Records};
pub use recorder::{CONTROL_KIND, DEFAULT_RECORDER_CAPACITY, Recorder};
pub use replay::{Pace, ReplaySource, ReplayStats, Replayer};
pub use segment::{SegmentSummary, TornTail};
pub use storage::{FsStorage, SegmentFile, Storage};
