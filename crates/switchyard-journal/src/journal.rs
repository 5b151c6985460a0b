//! The writer: [`Journal`], its configuration and durability policy.
//!
//! Appenders encode frames into one shared buffer under a short mutex; a dedicated writer
//! OS thread swaps the buffer out, writes it to the current segment, rolls over to a new
//! segment at frame boundaries, calls `fdatasync` as the [`SyncPolicy`] says, and then
//! publishes the durable index. See the [crate docs](crate) for the durability contract.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Serialize;
use switchyard::Timestamp;
use tokio::sync::watch;

use crate::audit_chain::{self, Hash};
use crate::codec::{self, HEADER_LEN};
pub use crate::config::{JournalConfig, SyncPolicy};
use crate::error::JournalError;
use crate::outage::{Gap, Outage};
use crate::recorder::CONTROL_KIND;
pub use crate::recovery::RecoveryReport;
use crate::recovery::{self, Recovered};
use crate::storage::{FsStorage, LockGuard, Storage};
use crate::writer::Writer;

/// Counters of a journal, from [`Journal::stats`] and [`Journal::close`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JournalStats {
    /// Records appended since open.
    pub records: u64,
    /// Bytes written to segment files since open (headers included).
    pub bytes_written: u64,
    /// `write` batches.
    pub writes: u64,
    /// `fdatasync` calls.
    pub fsyncs: u64,
    /// Segments created since open.
    pub segments_created: u64,
    /// Index of the last record appended (0 if none).
    pub last_index: u64,
    /// Index of the last record known to be on disk.
    pub durable: u64,
    /// Appends refused during outages (see [`outage`](crate::outage)).
    pub records_lost: u64,
    /// Outages that ended (each a [`Gap`](crate::Gap)).
    pub gaps: u64,
    /// Failed writes, fsyncs and segment creations (retries included).
    pub write_failures: u64,
}

impl fmt::Display for JournalStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records appended, last #{}, durable #{}, {} bytes in {} writes, {} fsyncs, {} new segments, {} lost in {} gap(s), {} write failures",
            self.records,
            self.last_index,
            self.durable,
            self.bytes_written,
            self.writes,
            self.fsyncs,
            self.segments_created,
            self.records_lost,
            self.gaps,
            self.write_failures
        )
    }
}

pub(crate) struct State {
    pub(crate) buf: Vec<u8>,
    pub(crate) frames: u64,
    pub(crate) buf_since: Option<Instant>,
    pub(crate) next_index: u64,
    pub(crate) appended: u64,
    pub(crate) writer_idle: bool,
    pub(crate) space_waiters: u32,
    pub(crate) sync_requested: bool,
    pub(crate) closing: bool,
    pub(crate) failed: Option<(PathBuf, Arc<io::Error>)>,
    /// The audit chain's head: the hash of the last audit record.
    pub(crate) chain: Hash,
    /// The outage in progress: appends are refused.
    pub(crate) outage: Option<Outage>,
    /// Outages that ended.
    pub(crate) gaps: Vec<Gap>,
    /// [`Journal::retry_now`] asked for a retry.
    pub(crate) retry_requested: bool,
    /// Appends refused during outages, in total.
    pub(crate) lost: u64,
    /// Failed writes, fsyncs and segment creations.
    pub(crate) write_failures: u64,
}

pub(crate) struct Shared {
    pub(crate) config: JournalConfig,
    pub(crate) state: Mutex<State>,
    pub(crate) wake: Condvar,
    pub(crate) space: Condvar,
    pub(crate) durable: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) stopped: AtomicBool,
    /// Set while [`State::outage`] is: durability waiters return an error.
    pub(crate) in_outage: AtomicBool,
    pub(crate) dlock: Mutex<()>,
    pub(crate) dcv: Condvar,
    pub(crate) dtx: watch::Sender<u64>,
    /// True while an outage lasts.
    pub(crate) otx: watch::Sender<bool>,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) segments_created: AtomicU64,
    /// Fault injection for tests: the writer panics when it next wakes up with work.
    #[cfg(test)]
    pub(crate) inject_panic: AtomicBool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn publish_durable(&self, index: u64) {
        self.durable.fetch_max(index, Ordering::AcqRel);
        drop(self.dlock.lock().unwrap_or_else(PoisonError::into_inner));
        self.dcv.notify_all();
        self.dtx.send_replace(self.durable.load(Ordering::Acquire));
    }

    /// Record a writer failure (the first one wins), mark the writer stopped and wake
    /// everyone who waits on it: appenders waiting for space, `wait_durable` and
    /// `durable_at_least` waiters. They all return an error from then on.
    pub(crate) fn fail(&self, path: PathBuf, e: io::Error) {
        {
            let mut st = self.lock();
            if st.failed.is_none() {
                st.failed = Some((path, Arc::new(e)));
            }
        }
        self.stop();
    }

    /// Mark the writer stopped and wake every waiter.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        // Take the state lock so that an appender between its check and its wait cannot
        // miss the notification.
        drop(self.lock());
        self.space.notify_all();
        self.publish_durable(self.durable.load(Ordering::Acquire));
    }

    /// The error for an append or a durability wait during an outage, if there is one.
    pub(crate) fn outage_error(&self, st: &State) -> Option<JournalError> {
        st.outage.as_ref().map(|o| JournalError::Unavailable {
            dir: self.config.dir.clone(),
            reason: o.reason.clone(),
        })
    }

    pub(crate) fn stop_error(&self) -> JournalError {
        match &self.lock().failed {
            Some((path, e)) => JournalError::WriterFailed {
                path: path.clone(),
                source: Arc::clone(e),
            },
            None => JournalError::Closed,
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    _lock: LockGuard,
}

impl Inner {
    /// Stop the writer and wait for it to finish (final write and fsync). Idempotent: a
    /// concurrent or later caller waits until the first caller's join is done, so no
    /// caller returns before the final fsync. A writer thread that died of a panic is
    /// recorded as a writer failure.
    fn shutdown(&self) {
        {
            let mut st = self.shared.lock();
            st.closing = true;
        }
        self.shared.wake.notify_all();
        self.shared.space.notify_all();
        // Held across the join: concurrent callers block here until the writer is gone.
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = thread.take()
            && let Err(panic) = h.join()
        {
            // `Writer::run` catches panics, so this is not expected; be safe anyway.
            let msg = panic_message(panic.as_ref());
            tracing::error!(panic = %msg, "journal writer thread panicked");
            self.shared.fail(
                self.shared.config.dir.clone(),
                io::Error::other(format!("journal writer thread panicked: {msg}")),
            );
        }
    }
}

/// The message of a panic payload, if it is a string.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An append-only journal open for writing. Cheap to clone; all clones append to the
/// same journal, concurrently. Dropping the last clone closes it (as [`Journal::close`]).
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.inner.shared.config.dir)
            .field("durable", &self.durable())
            .finish()
    }
}

/// Name of the lock file held by the writer.
pub const LOCK_FILE: &str = "LOCK";

impl Journal {
    /// Open the journal in `config.dir` for writing, creating it if there is none, and
    /// recover: a torn tail of the last segment is cut off and reported, and so is a
    /// damaged tail that valid frames follow, after its bytes were copied to a side file
    /// (see the crate docs, "The tail rule"); damage anywhere else is an error that names
    /// the segment and offset. Appends continue after the
    /// last record kept. Only one writer may have a journal open (a lock file enforces it).
    pub fn open(config: JournalConfig) -> Result<(Journal, RecoveryReport), JournalError> {
        Journal::open_with_storage(config, Arc::new(FsStorage))
    }

    /// [`Journal::open`] on `storage` instead of the real file system (a simulated disk
    /// in tests: see [`Storage`]).
    pub fn open_with_storage(
        config: JournalConfig,
        storage: Arc<dyn Storage>,
    ) -> Result<(Journal, RecoveryReport), JournalError> {
        if config.segment_bytes < (HEADER_LEN + codec::MIN_FRAME_LEN) as u64 {
            return Err(JournalError::Config("segment_bytes is too small"));
        }
        if config.max_buffer_bytes == 0 {
            return Err(JournalError::Config("max_buffer_bytes must be at least 1"));
        }
        if let SyncPolicy::Group {
            every_events: 0, ..
        } = config.sync
        {
            return Err(JournalError::Config("every_events must be at least 1"));
        }
        let Recovered {
            report,
            lock,
            file,
            path,
            seg_len,
            seg_has_frames,
            chain_head,
        } = recovery::recover(&*storage, &config)?;
        let last = report.next_index - 1;
        let (dtx, _) = watch::channel(last);
        let shared = Arc::new(Shared {
            config: config.clone(),
            state: Mutex::new(State {
                buf: Vec::with_capacity(1 << 16),
                frames: 0,
                buf_since: None,
                next_index: report.next_index,
                appended: 0,
                writer_idle: false,
                space_waiters: 0,
                sync_requested: false,
                closing: false,
                failed: None,
                chain: chain_head,
                outage: None,
                gaps: Vec::new(),
                retry_requested: false,
                lost: 0,
                write_failures: 0,
            }),
            wake: Condvar::new(),
            space: Condvar::new(),
            durable: AtomicU64::new(last),
            written: AtomicU64::new(last),
            stopped: AtomicBool::new(false),
            in_outage: AtomicBool::new(false),
            dlock: Mutex::new(()),
            dcv: Condvar::new(),
            dtx,
            otx: watch::channel(false).0,
            bytes_written: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            segments_created: AtomicU64::new(u64::from(report.created)),
            #[cfg(test)]
            inject_panic: AtomicBool::new(false),
        });
        let writer = Writer {
            shared: Arc::clone(&shared),
            storage,
            dir: config.dir.clone(),
            file,
            path,
            seg_len,
            seg_has_frames,
            spare: Vec::with_capacity(1 << 16),
            synced_len: seg_len,
            unsynced: Vec::new(),
            redo: Vec::new(),
            half_created: None,
            written_index: last,
            synced_index: last,
            unsynced_events: 0,
            unsynced_since: None,
        };
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run())
            .map_err(JournalError::io(
                "spawning the writer thread for",
                &config.dir,
            ))?;
        Ok((
            Journal {
                inner: Arc::new(Inner {
                    shared,
                    thread: Mutex::new(Some(thread)),
                    _lock: lock,
                }),
            },
            report,
        ))
    }

    /// The configuration.
    pub fn config(&self) -> &JournalConfig {
        &self.inner.shared.config
    }

    /// Append a record whose payload is written into the shared buffer by
    /// `write_payload`. Returns the record's index. Waits only while more than
    /// `max_buffer_bytes` are waiting to be written.
    ///
    /// `write_payload` runs under the journal's buffer lock, so it should be quick. If it
    /// returns an error, nothing is appended. If it panics, nothing is appended either:
    /// the partial frame is removed from the buffer, the lock is released, no index is
    /// used up, and the panic is resumed in the caller. The journal stays usable.
    pub fn append_with<E>(
        &self,
        seq: u64,
        ts: Timestamp,
        topic: &str,
        kind: &str,
        write_payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<u64, JournalError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.append_frame(seq, ts, topic, kind, |b, _, _| {
            write_payload(b).map(|()| None)
        })
    }

    /// Append a frame whose payload `write_payload` writes, given the record's index and
    /// the audit chain's head; if it returns a hash, that becomes the chain's head (only
    /// once the frame is in the buffer).
    fn append_frame<E>(
        &self,
        seq: u64,
        ts: Timestamp,
        topic: &str,
        kind: &str,
        write_payload: impl FnOnce(&mut Vec<u8>, u64, &Hash) -> Result<Option<Hash>, E>,
    ) -> Result<u64, JournalError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let sh = &self.inner.shared;
        let mut st = sh.lock();
        loop {
            if st.closing || st.failed.is_some() {
                drop(st);
                return Err(sh.stop_error());
            }
            if let Some(o) = st.outage.as_mut() {
                o.lose(seq, ts);
                st.lost += 1;
                let e = sh.outage_error(&st);
                drop(st);
                return Err(e.unwrap_or(JournalError::Closed));
            }
            if st.buf.len() < sh.config.max_buffer_bytes {
                break;
            }
            st.space_waiters += 1;
            st = sh.space.wait(st).unwrap_or_else(PoisonError::into_inner);
            st.space_waiters -= 1;
        }
        let index = st.next_index;
        // Index u64::MAX is never assigned (the scanner treats it as damage).
        let Some(next) = index.checked_add(1) else {
            return Err(JournalError::IndexExhausted { next: index });
        };
        let was_empty = st.buf.is_empty();
        let prev = st.chain;
        let mut sealed = None;
        // `encode_frame_with` truncates the buffer back to where the frame started if
        // `write_payload` panics; catch the panic here too, so that the lock is released
        // normally (not poisoned) before the panic goes on to the caller.
        let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            codec::encode_frame_with(&mut st.buf, index, seq, ts, topic, kind, |b| {
                sealed = write_payload(b, index, &prev)?;
                Ok::<(), E>(())
            })
        }));
        let encoded = match encoded {
            Ok(r) => r,
            Err(panic) => {
                drop(st);
                std::panic::resume_unwind(panic);
            }
        };
        encoded.map_err(|source| JournalError::Encode {
            topic: topic.to_owned(),
            source,
        })?;
        if let Some(h) = sealed {
            st.chain = h;
        }
        st.next_index = next;
        st.frames += 1;
        st.appended += 1;
        if was_empty {
            st.buf_since = Some(Instant::now());
        }
        let wake = std::mem::take(&mut st.writer_idle);
        drop(st);
        if wake {
            sh.wake.notify_one();
        }
        Ok(index)
    }

    /// Append a record with `payload` (already serialized). Returns its index.
    pub fn append(
        &self,
        seq: u64,
        ts: Timestamp,
        topic: &str,
        kind: &str,
        payload: &[u8],
    ) -> Result<u64, JournalError> {
        self.append_with(seq, ts, topic, kind, |b| {
            b.extend_from_slice(payload);
            Ok::<(), std::convert::Infallible>(())
        })
    }

    /// Append `value` serialized as MessagePack straight into the shared buffer (no
    /// intermediate allocation). Returns the record's index.
    pub fn append_serialized<T: Serialize + ?Sized>(
        &self,
        seq: u64,
        ts: Timestamp,
        topic: &str,
        kind: &str,
        value: &T,
    ) -> Result<u64, JournalError> {
        self.append_with(seq, ts, topic, kind, |b| codec::write_payload(b, value))
    }

    /// Append `value` as JSON (used for control events, whose types only serialize).
    pub fn append_json<T: Serialize + ?Sized>(
        &self,
        seq: u64,
        ts: Timestamp,
        topic: &str,
        kind: &str,
        value: &T,
    ) -> Result<u64, JournalError> {
        self.append_with(seq, ts, topic, kind, |b| serde_json::to_writer(b, value))
    }

    /// Append a control event as an audit record: kind [`CONTROL_KIND`], `value` as a
    /// JSON object with the audit chain's member (`prev`, `hash`) added at its end, linked
    /// to the previous audit record (see [`audit_chain`](crate::audit_chain)). Returns
    /// its index. `value` must serialize as a JSON object.
    pub fn append_audit<T: Serialize + ?Sized>(
        &self,
        seq: u64,
        ts: Timestamp,
        topic: &str,
        value: &T,
    ) -> Result<u64, JournalError> {
        self.append_frame(seq, ts, topic, CONTROL_KIND, |b, index, prev| {
            let start = b.len();
            serde_json::to_writer(&mut *b, value)?;
            audit_chain::chain_in_place(
                b,
                start,
                prev,
                index,
                seq,
                ts.as_nanos(),
                topic,
                CONTROL_KIND,
            )
            .map(Some)
            .ok_or_else(|| {
                <serde_json::Error as serde::ser::Error>::custom(
                    "an audit record must serialize as a JSON object",
                )
            })
        })
    }

    /// Hash of the last audit record appended or found on open ([`audit_chain::GENESIS`]
    /// if there is none): what the next audit record links to.
    pub fn audit_head(&self) -> Hash {
        self.inner.shared.lock().chain
    }

    /// Index of the last record known to be on disk (fsynced). 0 if none.
    pub fn durable(&self) -> u64 {
        self.inner.shared.durable.load(Ordering::Acquire)
    }

    /// Index of the last record handed to the operating system (survives a crash of this
    /// process, not necessarily of the machine).
    pub fn written(&self) -> u64 {
        self.inner.shared.written.load(Ordering::Acquire)
    }

    /// The index the next append will get.
    pub fn next_index(&self) -> u64 {
        self.inner.shared.lock().next_index
    }

    fn check_appended(&self, index: u64) -> Result<(), JournalError> {
        let next = self.next_index();
        if index >= next {
            return Err(JournalError::NotAppended { index, next });
        }
        Ok(())
    }

    /// Block until record `index` is durable; returns the durable index. Under
    /// [`SyncPolicy::Never`] that takes a [`Journal::sync_now`] (or rollover, or close).
    pub fn wait_durable(&self, index: u64) -> Result<u64, JournalError> {
        let sh = &self.inner.shared;
        let d = self.durable();
        if d >= index {
            return Ok(d);
        }
        self.check_appended(index)?;
        let mut g = sh.dlock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let d = self.durable();
            if d >= index {
                return Ok(d);
            }
            if sh.stopped.load(Ordering::Acquire) {
                drop(g);
                return Err(sh.stop_error());
            }
            if sh.in_outage.load(Ordering::Acquire) {
                drop(g);
                return Err(self.unavailable());
            }
            g = sh.dcv.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Wait (async) until record `index` is durable; returns the durable index.
    pub async fn durable_at_least(&self, index: u64) -> Result<u64, JournalError> {
        let sh = &self.inner.shared;
        let d = self.durable();
        if d >= index {
            return Ok(d);
        }
        self.check_appended(index)?;
        let mut rx = sh.dtx.subscribe();
        let _ = rx
            .wait_for(|&d| {
                d >= index
                    || sh.stopped.load(Ordering::Acquire)
                    || sh.in_outage.load(Ordering::Acquire)
            })
            .await;
        let d = self.durable();
        if d >= index {
            Ok(d)
        } else if sh.stopped.load(Ordering::Acquire) {
            Err(sh.stop_error())
        } else {
            Err(self.unavailable())
        }
    }

    /// Write and fsync everything appended so far, whatever the policy; returns the
    /// durable index.
    pub fn sync_now(&self) -> Result<u64, JournalError> {
        let sh = &self.inner.shared;
        let target = {
            let mut st = sh.lock();
            if st.failed.is_some() {
                drop(st);
                return Err(sh.stop_error());
            }
            if let Some(e) = sh.outage_error(&st) {
                return Err(e);
            }
            st.sync_requested = true;
            st.next_index - 1
        };
        sh.wake.notify_one();
        self.wait_durable(target)
    }

    fn unavailable(&self) -> JournalError {
        let sh = &self.inner.shared;
        let st = sh.lock();
        sh.outage_error(&st)
            .unwrap_or_else(|| JournalError::Unavailable {
                dir: sh.config.dir.clone(),
                reason: "an outage was in progress".to_owned(),
            })
    }

    /// The outage in progress, if a write or fsync failed and the writer has not yet
    /// written again (see [`outage`](crate::outage)). Appends are refused meanwhile.
    pub fn outage(&self) -> Option<Outage> {
        self.inner.shared.lock().outage.clone()
    }

    /// A receiver that sees `true` when an outage starts and `false` when it ends (to act
    /// on it at once, e.g. halt trading; see [`outage`](crate::outage)).
    pub fn watch_outage(&self) -> watch::Receiver<bool> {
        self.inner.shared.otx.subscribe()
    }

    /// The outages that ended, oldest first: the records lost to each.
    pub fn gaps(&self) -> Vec<Gap> {
        self.inner.shared.lock().gaps.clone()
    }

    /// During an outage, make the writer retry now instead of at its next
    /// [`JournalConfig::retry_every`] (e.g. once space was freed). No effect otherwise.
    pub fn retry_now(&self) {
        let sh = &self.inner.shared;
        let mut st = sh.lock();
        if st.outage.is_some() {
            st.retry_requested = true;
            drop(st);
            sh.wake.notify_all();
        }
    }

    /// Counters.
    pub fn stats(&self) -> JournalStats {
        let sh = &self.inner.shared;
        let (appended, next, lost, gaps, write_failures) = {
            let st = sh.lock();
            (
                st.appended,
                st.next_index,
                st.lost,
                st.gaps.len() as u64,
                st.write_failures,
            )
        };
        JournalStats {
            records: appended,
            bytes_written: sh.bytes_written.load(Ordering::Relaxed),
            writes: sh.writes.load(Ordering::Relaxed),
            fsyncs: sh.fsyncs.load(Ordering::Relaxed),
            segments_created: sh.segments_created.load(Ordering::Relaxed),
            last_index: next - 1,
            durable: self.durable(),
            records_lost: lost,
            gaps,
            write_failures,
        }
    }

    /// Stop accepting appends, write and fsync what is buffered, join the writer thread
    /// and return the counters. Affects every clone. Calling it again returns the counters
    /// again. Blocks the calling thread for the final fsync.
    ///
    /// Returns an error if the writer failed (a write or fsync error, or a panic in the
    /// writer thread): then what was appended may not be durable. Concurrent callers
    /// all wait for the final fsync and get the same outcome.
    pub fn close(&self) -> Result<JournalStats, JournalError> {
        self.inner.shutdown();
        if let Some((path, e)) = &self.inner.shared.lock().failed {
            return Err(JournalError::WriterFailed {
                path: path.clone(),
                source: Arc::clone(e),
            });
        }
        Ok(self.stats())
    }
}

#[cfg(test)]
mod tests;
