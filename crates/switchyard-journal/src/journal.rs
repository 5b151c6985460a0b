//! The writer: [`Journal`], its configuration and durability policy.
//!
//! Appenders encode frames into one shared buffer under a short mutex; a dedicated writer
//! OS thread swaps the buffer out, writes it to the current segment, rolls over to a new
//! segment at frame boundaries, calls `fdatasync` as the [`SyncPolicy`] says, and then
//! publishes the durable index. See the [crate docs](crate) for the durability contract.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use switchyard::Timestamp;
use tokio::sync::watch;

use crate::codec::{self, FRAME_HEADER_LEN, HEADER_LEN};
use crate::error::JournalError;
use crate::segment::{self, TornTail, segment_file_name};

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
    /// page cache) but not of the machine. [`Journal::durable`] advances only on
    /// [`Journal::sync_now`], segment rollover and [`Journal::close`].
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

/// Configuration of a [`Journal`].
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
        }
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

/// What [`Journal::open`] found and repaired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// The journal directory.
    pub dir: PathBuf,
    /// True if the directory held no segment and a new journal was started.
    pub created: bool,
    /// Segment files.
    pub segments: usize,
    /// The segment appends go to.
    pub last_segment: PathBuf,
    /// Valid records found in the last segment.
    pub records_in_last_segment: u64,
    /// Index of the last record kept (0 if the journal is empty).
    pub last_index: u64,
    /// Index the next append gets.
    pub next_index: u64,
    /// The torn tail that was cut off, if any.
    pub truncated: Option<TornTail>,
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.created {
            write!(f, "new journal in {}", self.dir.display())?;
        } else {
            write!(
                f,
                "journal {}: {} segment(s), last record #{}, next #{}",
                self.dir.display(),
                self.segments,
                self.last_index,
                self.next_index
            )?;
        }
        if let Some(t) = &self.truncated {
            write!(f, "; truncated {t}")?;
        }
        Ok(())
    }
}

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
}

impl fmt::Display for JournalStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records appended, last #{}, durable #{}, {} bytes in {} writes, {} fsyncs, {} new segments",
            self.records,
            self.last_index,
            self.durable,
            self.bytes_written,
            self.writes,
            self.fsyncs,
            self.segments_created
        )
    }
}

struct State {
    buf: Vec<u8>,
    frames: u64,
    buf_since: Option<Instant>,
    next_index: u64,
    appended: u64,
    writer_idle: bool,
    space_waiters: u32,
    sync_requested: bool,
    closing: bool,
    failed: Option<(PathBuf, Arc<io::Error>)>,
}

struct Shared {
    config: JournalConfig,
    state: Mutex<State>,
    wake: Condvar,
    space: Condvar,
    durable: AtomicU64,
    written: AtomicU64,
    stopped: AtomicBool,
    dlock: Mutex<()>,
    dcv: Condvar,
    dtx: watch::Sender<u64>,
    bytes_written: AtomicU64,
    writes: AtomicU64,
    fsyncs: AtomicU64,
    segments_created: AtomicU64,
    /// Fault injection for tests: the writer panics when it next wakes up with work.
    #[cfg(test)]
    inject_panic: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish_durable(&self, index: u64) {
        self.durable.fetch_max(index, Ordering::AcqRel);
        drop(self.dlock.lock().unwrap_or_else(PoisonError::into_inner));
        self.dcv.notify_all();
        self.dtx.send_replace(self.durable.load(Ordering::Acquire));
    }

    /// Record a writer failure (the first one wins), mark the writer stopped and wake
    /// everyone who waits on it: appenders waiting for space, `wait_durable` and
    /// `durable_at_least` waiters. They all return an error from then on.
    fn fail(&self, path: PathBuf, e: io::Error) {
        {
            let mut st = self.lock();
            if st.failed.is_none() {
                st.failed = Some((path, Arc::new(e)));
            }
        }
        self.stop();
    }

    /// Mark the writer stopped and wake every waiter.
    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        // Take the state lock so that an appender between its check and its wait cannot
        // miss the notification.
        drop(self.lock());
        self.space.notify_all();
        self.publish_durable(self.durable.load(Ordering::Acquire));
    }

    fn stop_error(&self) -> JournalError {
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
    _lock: File,
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
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
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

fn create_segment(dir: &Path, first_index: u64) -> Result<(File, PathBuf), JournalError> {
    let path = dir.join(segment_file_name(first_index));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(JournalError::io("creating", &path))?;
    f.write_all(&codec::encode_header(first_index))
        .map_err(JournalError::io("writing", &path))?;
    sync_dir(dir)?;
    Ok((f, path))
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(JournalError::io("syncing directory", dir))
}

fn check_header(path: &Path, name_index: u64) -> Result<(), JournalError> {
    let f = File::open(path).map_err(JournalError::io("opening", path))?;
    match segment::Scanner::start(f, path.to_path_buf(), Some(name_index), false)? {
        segment::Opened::Ready(_) | segment::Opened::TornHeader(_) => Ok(()),
    }
}

impl Journal {
    /// Open the journal in `config.dir` for writing, creating it if there is none, and
    /// recover: a torn tail of the last segment is cut off and reported; damage anywhere
    /// else is an error that names the segment and offset. Appends continue after the
    /// last record kept. Only one writer may have a journal open (a lock file enforces it).
    pub fn open(config: JournalConfig) -> Result<(Journal, RecoveryReport), JournalError> {
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
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(JournalError::io("creating directory", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(JournalError::io("opening", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Locked { path: lock_path });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(JournalError::io("locking", &lock_path)(e));
            }
        }

        let segs = segment::list_segments(&dir)?;
        let mut report = RecoveryReport {
            dir: dir.clone(),
            created: segs.is_empty(),
            segments: segs.len().max(1),
            last_segment: PathBuf::new(),
            records_in_last_segment: 0,
            last_index: 0,
            next_index: 1,
            truncated: None,
        };
        let (file, path, seg_len, seg_has_frames) =
            if let Some(((last_first, last_path), older)) = segs.split_last() {
                let mut prev_end: Option<u64> = None;
                for (first, path) in older {
                    if config.verify_on_open {
                        let s = segment::scan_file(path, *first, false, |_| {})?;
                        if let Some(expected) = prev_end
                            && expected != *first
                        {
                            return Err(JournalError::SegmentGap {
                                path: path.clone(),
                                expected,
                                found: *first,
                            });
                        }
                        prev_end = Some(s.last_index.map_or(*first, segment::index_after));
                    } else {
                        check_header(path, *first)?;
                    }
                }
                if let Some(expected) = prev_end
                    && expected != *last_first
                {
                    return Err(JournalError::SegmentGap {
                        path: last_path.clone(),
                        expected,
                        found: *last_first,
                    });
                }
                let sum = segment::scan_file(last_path, *last_first, true, |_| {})?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(last_path)
                    .map_err(JournalError::io("opening", last_path))?;
                let mut len = sum.bytes;
                if sum.torn_header {
                    file.set_len(0)
                        .and_then(|()| file.write_all(&codec::encode_header(*last_first)))
                        .map_err(JournalError::io("rewriting header of", last_path))?;
                    len = HEADER_LEN as u64;
                } else if sum.torn_tail.is_some() {
                    file.set_len(sum.valid_bytes)
                        .map_err(JournalError::io("truncating", last_path))?;
                    len = sum.valid_bytes;
                }
                if let Some(t) = &sum.torn_tail {
                    tracing::warn!(
                        segment = %t.segment.display(),
                        offset = t.offset,
                        bytes = t.bytes,
                        reason = %t.reason,
                        "journal recovery: cut off a torn tail"
                    );
                }
                file.seek(SeekFrom::Start(len))
                    .map_err(JournalError::io("seeking in", last_path))?;
                file.sync_data()
                    .map_err(JournalError::io("syncing", last_path))?;
                report.records_in_last_segment = sum.records;
                report.last_index = sum.last_index.unwrap_or(last_first.saturating_sub(1));
                report.next_index = sum.last_index.map_or(*last_first, segment::index_after);
                report.truncated = sum.torn_tail;
                (file, last_path.clone(), len, sum.records > 0)
            } else {
                let (f, path) = create_segment(&dir, 1)?;
                (f, path, HEADER_LEN as u64, false)
            };
        report.last_segment = path.clone();

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
            }),
            wake: Condvar::new(),
            space: Condvar::new(),
            durable: AtomicU64::new(last),
            written: AtomicU64::new(last),
            stopped: AtomicBool::new(false),
            dlock: Mutex::new(()),
            dcv: Condvar::new(),
            dtx,
            bytes_written: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            segments_created: AtomicU64::new(u64::from(report.created)),
            #[cfg(test)]
            inject_panic: AtomicBool::new(false),
        });
        let writer = Writer {
            shared: Arc::clone(&shared),
            dir,
            file,
            path,
            seg_len,
            seg_has_frames,
            spare: Vec::with_capacity(1 << 16),
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
        let sh = &self.inner.shared;
        let mut st = sh.lock();
        loop {
            if st.closing || st.failed.is_some() {
                drop(st);
                return Err(sh.stop_error());
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
        // `encode_frame_with` truncates the buffer back to where the frame started if
        // `write_payload` panics; catch the panic here too, so that the lock is released
        // normally (not poisoned) before the panic goes on to the caller.
        let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            codec::encode_frame_with(&mut st.buf, index, seq, ts, topic, kind, write_payload)
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
            .wait_for(|&d| d >= index || sh.stopped.load(Ordering::Acquire))
            .await;
        let d = self.durable();
        if d >= index {
            Ok(d)
        } else {
            Err(sh.stop_error())
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
            st.sync_requested = true;
            st.next_index - 1
        };
        sh.wake.notify_one();
        self.wait_durable(target)
    }

    /// Counters.
    pub fn stats(&self) -> JournalStats {
        let sh = &self.inner.shared;
        let (appended, next) = {
            let st = sh.lock();
            (st.appended, st.next_index)
        };
        JournalStats {
            records: appended,
            bytes_written: sh.bytes_written.load(Ordering::Relaxed),
            writes: sh.writes.load(Ordering::Relaxed),
            fsyncs: sh.fsyncs.load(Ordering::Relaxed),
            segments_created: sh.segments_created.load(Ordering::Relaxed),
            last_index: next - 1,
            durable: self.durable(),
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

struct Writer {
    shared: Arc<Shared>,
    dir: PathBuf,
    file: File,
    path: PathBuf,
    seg_len: u64,
    seg_has_frames: bool,
    spare: Vec<u8>,
    written_index: u64,
    synced_index: u64,
    unsynced_events: u64,
    unsynced_since: Option<Instant>,
}

type WriteFailure = (PathBuf, io::Error);

impl Writer {
    fn run(mut self) {
        let sh = Arc::clone(&self.shared);
        // A panic in the writer (a bug) must not leave appenders, `wait_durable` callers
        // and `close` waiting for a thread that is gone: it becomes a writer failure.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_inner()))
            .unwrap_or_else(|panic| {
                let msg = panic_message(panic.as_ref());
                Err((
                    self.path.clone(),
                    io::Error::other(format!("journal writer thread panicked: {msg}")),
                ))
            });
        match result {
            Ok(()) => {
                sh.publish_durable(self.synced_index);
                sh.stop();
            }
            Err((path, e)) => {
                tracing::error!(path = %path.display(), error = %e, "journal writer failed");
                sh.fail(path, e);
            }
        }
    }

    fn run_inner(&mut self) -> Result<(), WriteFailure> {
        let sh = Arc::clone(&self.shared);
        let policy = sh.config.sync;
        loop {
            let (frames, since, last_index, sync_req, closing) = {
                let mut st = sh.lock();
                loop {
                    if st.closing || st.sync_requested || !st.buf.is_empty() {
                        break;
                    }
                    let deadline = match (policy, self.unsynced_since) {
                        // No deadline if it is too far out for an `Instant` (`Duration::MAX`).
                        (SyncPolicy::Group { every, .. }, Some(t)) if self.unsynced_events > 0 => {
                            t.checked_add(every)
                        }
                        _ => None,
                    };
                    st.writer_idle = true;
                    match deadline {
                        Some(d) => {
                            let now = Instant::now();
                            if now >= d {
                                st.writer_idle = false;
                                break;
                            }
                            st = sh
                                .wake
                                .wait_timeout(st, d - now)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0;
                        }
                        None => st = sh.wake.wait(st).unwrap_or_else(PoisonError::into_inner),
                    }
                    st.writer_idle = false;
                }
                #[cfg(test)]
                if sh.inject_panic.load(Ordering::Acquire) {
                    panic!("injected writer panic");
                }
                std::mem::swap(&mut st.buf, &mut self.spare);
                let frames = std::mem::take(&mut st.frames);
                let since = st.buf_since.take();
                let sync_req = std::mem::take(&mut st.sync_requested);
                if st.space_waiters > 0 {
                    sh.space.notify_all();
                }
                (frames, since, st.next_index - 1, sync_req, st.closing)
            };
            if !self.spare.is_empty() {
                self.write_data()?;
                self.written_index = last_index;
                sh.written.store(last_index, Ordering::Release);
                self.unsynced_events += frames;
                self.unsynced_since = match (self.unsynced_since, since) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                self.spare.clear();
            }
            let need_sync = self.written_index > self.synced_index
                && match policy {
                    SyncPolicy::Always => true,
                    SyncPolicy::Group {
                        every_events,
                        every,
                    } => {
                        sync_req
                            || closing
                            || self.unsynced_events >= every_events
                            || self.unsynced_since.is_some_and(|t| t.elapsed() >= every)
                    }
                    SyncPolicy::Never => sync_req || closing,
                };
            if need_sync {
                self.fsync()?;
                self.synced_index = self.written_index;
                self.unsynced_events = 0;
                self.unsynced_since = None;
                sh.publish_durable(self.synced_index);
            } else if sync_req {
                sh.publish_durable(self.synced_index);
            }
            if policy == SyncPolicy::Never && self.written_index == self.synced_index {
                self.unsynced_events = 0;
                self.unsynced_since = None;
            }
            if closing {
                return Ok(());
            }
        }
    }

    fn fsync(&mut self) -> Result<(), WriteFailure> {
        self.file.sync_data().map_err(|e| (self.path.clone(), e))?;
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), WriteFailure> {
        if data.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(data)
            .map_err(|e| (self.path.clone(), e))?;
        self.seg_len += data.len() as u64;
        self.seg_has_frames = true;
        self.shared
            .bytes_written
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.shared.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Write `self.spare` (whole frames), rolling over at frame boundaries.
    fn write_data(&mut self) -> Result<(), WriteFailure> {
        let data = std::mem::take(&mut self.spare);
        let limit = self.shared.config.segment_bytes;
        let mut rest: &[u8] = &data;
        let result = (|| {
            while !rest.is_empty() {
                if self.seg_len + rest.len() as u64 <= limit {
                    self.write(rest)?;
                    return Ok(());
                }
                let mut cut = 0usize;
                while cut < rest.len() {
                    let body = u32::from_le_bytes([
                        rest[cut],
                        rest[cut + 1],
                        rest[cut + 2],
                        rest[cut + 3],
                    ]) as usize;
                    let flen = FRAME_HEADER_LEN + body;
                    if self.seg_len + (cut + flen) as u64 > limit
                        && (self.seg_has_frames || cut > 0)
                    {
                        break;
                    }
                    cut += flen;
                }
                self.write(&rest[..cut])?;
                rest = &rest[cut..];
                if !rest.is_empty() {
                    self.roll(codec::index_of(rest))?;
                }
            }
            Ok(())
        })();
        self.spare = data;
        result
    }

    /// Start a new segment whose first record is `first_index`.
    fn roll(&mut self, first_index: u64) -> Result<(), WriteFailure> {
        self.fsync()?;
        self.synced_index = first_index - 1;
        self.shared.publish_durable(self.synced_index);
        let (file, path) = create_segment(&self.dir, first_index).map_err(|e| match e {
            JournalError::Io { path, source, .. } => (path, source),
            other => (self.dir.clone(), io::Error::other(other.to_string())),
        })?;
        tracing::debug!(segment = %path.display(), "journal: new segment");
        self.file = file;
        self.path = path;
        self.seg_len = HEADER_LEN as u64;
        self.seg_has_frames = false;
        self.shared
            .bytes_written
            .fetch_add(HEADER_LEN as u64, Ordering::Relaxed);
        self.shared.segments_created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;

    use super::*;

    /// Generous bound: anything slower than this is a hang.
    const HANG: Duration = Duration::from_secs(20);

    fn append_one(j: &Journal, i: u64) -> Result<u64, JournalError> {
        j.append(i, Timestamp(i), "a.b", "k", b"payload")
    }

    fn is_writer_panic(e: &JournalError) -> bool {
        matches!(e, JournalError::WriterFailed { .. }) && e.to_string().contains("panicked")
    }

    #[test]
    fn a_writer_panic_fails_waiters_appenders_and_close_instead_of_hanging() {
        let dir = tempfile::tempdir().unwrap();
        // `Never`: nothing becomes durable on its own, so the waiters below really wait.
        let config = JournalConfig::new(dir.path())
            .sync(SyncPolicy::Never)
            .max_buffer_bytes(1);
        let (j, _) = Journal::open(config).unwrap();
        assert_eq!(append_one(&j, 1).unwrap(), 1);

        let (tx, rx) = mpsc::channel::<(&str, Result<u64, JournalError>)>();
        {
            let (j, tx) = (j.clone(), tx.clone());
            thread::spawn(move || tx.send(("wait_durable", j.wait_durable(1))));
        }
        {
            let (j, tx) = (j.clone(), tx.clone());
            thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                tx.send(("durable_at_least", rt.block_on(j.durable_at_least(1))))
            });
        }
        // Give the waiters time to block (if they come late they fail at once: also fine).
        thread::sleep(Duration::from_millis(50));

        j.inner.shared.inject_panic.store(true, Ordering::Release);
        // Appenders against a one-byte buffer: without the writer they would wait for
        // space forever; each must end with an error.
        for t in 0..4u64 {
            let (j, tx) = (j.clone(), tx.clone());
            thread::spawn(move || {
                let mut last = Ok(0);
                for i in 0..200 {
                    last = append_one(&j, 1000 * t + i);
                    if last.is_err() {
                        break;
                    }
                }
                tx.send(("append", last))
            });
        }
        drop(tx);
        let mut seen = Vec::new();
        for _ in 0..6 {
            let (who, res) = rx
                .recv_timeout(HANG)
                .unwrap_or_else(|_| panic!("hang; finished so far: {seen:?}"));
            let e = res.expect_err(who);
            assert!(is_writer_panic(&e), "{who}: {e}");
            seen.push(who);
        }

        assert!(j.inner.shared.stopped.load(Ordering::Acquire));
        assert!(is_writer_panic(&append_one(&j, 9).unwrap_err()));
        assert!(is_writer_panic(&j.sync_now().unwrap_err()));
        let e = j.close().unwrap_err();
        assert!(is_writer_panic(&e), "{e}");
        // Again: same outcome.
        assert!(is_writer_panic(&j.close().unwrap_err()));
    }

    #[test]
    fn a_panicking_payload_writer_leaves_no_partial_frame_and_keeps_the_lock_usable() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(JournalConfig::new(dir.path())).unwrap();
        assert_eq!(append_one(&j, 1).unwrap(), 1);
        let before = j.inner.shared.lock().buf.len();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            j.append_with(2, Timestamp(2), "a.b", "k", |b| {
                b.extend_from_slice(b"half a payl");
                if b.len() > 1 {
                    panic!("serializer bug");
                }
                Ok::<(), std::io::Error>(())
            })
        }));
        assert!(r.is_err());
        assert!(!j.inner.shared.state.is_poisoned());
        // The buffer may have been drained by the writer meanwhile, never grown.
        assert!(j.inner.shared.lock().buf.len() <= before);
        assert_eq!(j.next_index(), 2);
        assert_eq!(append_one(&j, 3).unwrap(), 2);
        assert_eq!(j.close().unwrap().durable, 2);
    }
}
