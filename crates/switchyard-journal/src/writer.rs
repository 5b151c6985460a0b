//! The journal's writer thread: swaps the appenders' buffer out, writes it to the
//! current segment, rolls over to a new segment at frame boundaries, syncs as the
//! [`SyncPolicy`] says and publishes the durable index. Its file operations go through
//! the journal's [`Storage`].

use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use crate::codec::{self, FRAME_HEADER_LEN, HEADER_LEN};
use crate::error::JournalError;
use crate::journal::{Shared, SyncPolicy, panic_message};
use crate::outage;
use crate::recovery::create_segment;
use crate::segment::segment_file_name;
use crate::storage::{SegmentFile, Storage};

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub storage: Arc<dyn Storage>,
    pub dir: PathBuf,
    pub file: Box<dyn SegmentFile>,
    pub path: PathBuf,
    pub seg_len: u64,
    pub seg_has_frames: bool,
    pub spare: Vec<u8>,
    /// Length of the current segment at its last fsync (or creation).
    pub synced_len: u64,
    /// The bytes written to the current segment since then: kept to rewrite them after a
    /// failed write or fsync (at most a segment's worth; see [`crate::outage`]).
    pub unsynced: Vec<u8>,
    /// Accepted bytes a failed write did not get to write, to write after a repair.
    pub redo: Vec<u8>,
    /// A segment whose creation failed, to remove before retrying.
    pub half_created: Option<PathBuf>,
    pub written_index: u64,
    pub synced_index: u64,
    pub unsynced_events: u64,
    pub unsynced_since: Option<Instant>,
}

/// What failed: the operation, the file, the error.
type WriteFailure = (&'static str, PathBuf, io::Error);

impl Writer {
    pub fn run(mut self) {
        let sh = Arc::clone(&self.shared);
        // A panic in the writer (a bug) must not leave appenders, `wait_durable` callers
        // and `close` waiting for a thread that is gone: it becomes a writer failure.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_inner()))
            .unwrap_or_else(|panic| {
                let msg = panic_message(panic.as_ref());
                Err((
                    "writing",
                    self.path.clone(),
                    io::Error::other(format!("journal writer thread panicked: {msg}")),
                ))
            });
        match result {
            Ok(()) => {
                sh.publish_durable(self.synced_index);
                sh.stop();
            }
            Err((op, path, e)) => {
                tracing::error!(op, path = %path.display(), error = %e, "journal writer failed");
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
                if let Err(f) = self.write_data() {
                    self.outage(f)?;
                }
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
                if let Err(f) = self.fsync() {
                    self.outage(f)?;
                }
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
        self.file
            .sync_data()
            .map_err(|e| ("syncing", self.path.clone(), e))?;
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.synced_len = self.seg_len;
        self.unsynced.clear();
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), WriteFailure> {
        if data.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(data)
            .map_err(|e| ("writing", self.path.clone(), e))?;
        self.unsynced.extend_from_slice(data);
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
            // `rest` is what is not written yet: on failure, kept in `redo`.
            while !rest.is_empty() {
                if self.seg_len + rest.len() as u64 <= limit {
                    self.write(rest)?;
                    rest = &[];
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
        if result.is_err() {
            self.redo.extend_from_slice(rest);
        }
        self.spare = data;
        result
    }

    /// Start a new segment whose first record is `first_index`.
    fn roll(&mut self, first_index: u64) -> Result<(), WriteFailure> {
        self.fsync()?;
        self.synced_index = first_index - 1;
        self.shared.publish_durable(self.synced_index);
        let (file, path) = create_segment(&*self.storage, &self.dir, first_index).map_err(|e| {
            // Created, but its header or directory entry could not be made durable: ours
            // to remove before retrying. (If creating it failed, it is not ours: a file
            // of that name that was there before is left alone.)
            if !matches!(e, JournalError::Io { op: "creating", .. }) {
                self.half_created = Some(self.dir.join(segment_file_name(first_index)));
            }
            match e {
                JournalError::Io { op, path, source } => (op, path, source),
                other => (
                    "creating a segment in",
                    self.dir.clone(),
                    io::Error::other(other.to_string()),
                ),
            }
        })?;
        tracing::debug!(segment = %path.display(), "journal: new segment");
        self.file = file;
        self.path = path;
        self.seg_len = HEADER_LEN as u64;
        self.synced_len = self.seg_len;
        self.unsynced.clear();
        self.seg_has_frames = false;
        self.shared
            .bytes_written
            .fetch_add(HEADER_LEN as u64, Ordering::Relaxed);
        self.shared.segments_created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A write, fsync or segment creation failed: refuse appends, keep what was accepted,
    /// and retry until a repair succeeds (then resume, reporting the gap) or the journal
    /// closes and a last repair fails (then the writer fails, as before outages).
    fn outage(&mut self, (op, path, e): WriteFailure) -> Result<(), WriteFailure> {
        let sh = Arc::clone(&self.shared);
        let reason = format!("{op} {}: {e}", path.display());
        tracing::error!(%reason, "journal: write failed; appends are refused until a retry succeeds");
        // Leave only synced frames in the file while the outage lasts, before it is
        // announced (best effort: the repair cuts again before rewriting).
        let _ = self.file.truncate_to(self.synced_len);
        if let Some(p) = &self.half_created
            && self.storage.remove_file(p).is_ok()
        {
            self.half_created = None;
            let _ = self.storage.sync_dir(&self.dir);
        }
        {
            let mut st = sh.lock();
            let after = st.next_index - 1;
            st.write_failures += 1;
            st.outage = Some(outage::Outage::new(reason, after));
        }
        sh.in_outage.store(true, Ordering::Release);
        sh.otx.send_replace(true);
        // Wake appenders waiting for buffer space and durability waiters: all are refused.
        sh.space.notify_all();
        sh.publish_durable(self.synced_index);
        loop {
            let closing = {
                let mut st = sh.lock();
                loop {
                    if st.closing || std::mem::take(&mut st.retry_requested) {
                        break;
                    }
                    let every = sh.config.retry_every;
                    let (g, timeout) = sh
                        .wake
                        .wait_timeout(st, every)
                        .unwrap_or_else(PoisonError::into_inner);
                    st = g;
                    if timeout.timed_out() {
                        break;
                    }
                }
                st.closing
            };
            match self.repair() {
                Ok(()) => break,
                Err(f) => {
                    let reason = format!("{} {}: {}", f.0, f.1.display(), f.2);
                    tracing::warn!(%reason, "journal: retry failed");
                    {
                        let mut st = sh.lock();
                        st.write_failures += 1;
                        if let Some(o) = st.outage.as_mut() {
                            o.failures += 1;
                            o.reason = reason;
                        }
                    }
                    if closing {
                        return Err(f);
                    }
                }
            }
        }
        let gap = {
            let mut st = sh.lock();
            let o = st.outage.take().expect("the outage in progress");
            let gap = outage::end(&mut st, o, outage::wall_clock());
            st.gaps.push(gap.clone());
            // Under the same lock as the outage's end: whoever sees no outage (and then
            // appends and waits for durability) must not find the flag still up and be
            // refused with "an outage was in progress".
            sh.in_outage.store(false, Ordering::Release);
            gap
        };
        sh.otx.send_replace(false);
        tracing::warn!(%gap, "journal: writing again");
        Ok(())
    }

    /// Cut the segment back to its last synced length, rewrite what was accepted since,
    /// and fsync.
    fn repair(&mut self) -> Result<(), WriteFailure> {
        if let Some(p) = self.half_created.take() {
            match self.storage.remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.half_created = Some(p.clone());
                    return Err(("removing the half-created segment", p, e));
                }
            }
        }
        self.file
            .truncate_to(self.synced_len)
            .map_err(|e| ("truncating", self.path.clone(), e))?;
        self.seg_len = self.synced_len;
        self.seg_has_frames = self.synced_len > HEADER_LEN as u64;
        let mut data = std::mem::take(&mut self.unsynced);
        data.append(&mut self.redo);
        let batch = std::mem::replace(&mut self.spare, data);
        let written = self.write_data().and_then(|()| self.fsync());
        self.spare = batch;
        written
    }
}
