//! Write failures injected through the journal's `Storage` (a real directory under a
//! wrapper that fails `fdatasync` with EIO, runs out of space part-way through a write
//! like a full disk): appends are refused and counted, the
//! file never holds a partial or corrupt frame, and once the fault is gone the writer
//! rewrites what it had accepted and reports the gap, in its counters and in the journal.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchyard::Timestamp;
use switchyard_journal::storage::{FsStorage, LockGuard, SegmentFile, Storage};
use switchyard_journal::{
    CONTROL_KIND, GAP_TOPIC, Journal, JournalConfig, JournalError, JournalReader, ReadFilter,
    SyncPolicy, verify,
};

/// The real file system, with faults switched on and off by the test.
#[derive(Default)]
struct Faulty {
    /// `fdatasync` fails with EIO.
    fail_sync: AtomicBool,
    /// Bytes writes may still add before ENOSPC (a write that does not fit writes what
    /// fits, then fails, as `write(2)` on a full disk). `u64::MAX`: unlimited.
    space: AtomicU64,
}

impl Faulty {
    fn new() -> Arc<Faulty> {
        let f = Faulty::default();
        f.space.store(u64::MAX, Ordering::SeqCst);
        Arc::new(f)
    }
}

struct FaultyFile {
    inner: Box<dyn SegmentFile>,
    faults: Arc<Faulty>,
}

impl SegmentFile for FaultyFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let space = self.faults.space.load(Ordering::SeqCst);
        if space == u64::MAX {
            return self.inner.write_all(data);
        }
        let fits = usize::try_from(space).unwrap_or(usize::MAX).min(data.len());
        self.inner.write_all(&data[..fits])?;
        self.faults
            .space
            .store(space - fits as u64, Ordering::SeqCst);
        if fits < data.len() {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        self.inner.sync_data()
    }

    fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate_to(len)
    }
}

struct Shared(Arc<Faulty>);

impl Storage for Shared {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsStorage.create_dir_all(dir)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        FsStorage.try_lock(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
        FsStorage.list(dir)
    }
    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn Read + Send>, u64)> {
        FsStorage.open_read(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FaultyFile {
            inner: FsStorage.create_new(path)?,
            faults: Arc::clone(&self.0),
        }))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FaultyFile {
            inner: FsStorage.open_append(path)?,
            faults: Arc::clone(&self.0),
        }))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FsStorage.sync_dir(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove_file(path)
    }
}

fn open(dir: &Path, faults: &Arc<Faulty>, segment_bytes: u64) -> Journal {
    let config = JournalConfig::new(dir)
        .sync(SyncPolicy::Always)
        .segment_bytes(segment_bytes)
        // Retries come from `retry_now` in these tests, never from the timer.
        .retry_every(Duration::from_secs(3600));
    Journal::open_with_storage(config, Arc::new(Shared(Arc::clone(faults))))
        .unwrap()
        .0
}

fn append(j: &Journal, seq: u64) -> Result<u64, JournalError> {
    j.append(seq, Timestamp(seq), "t.x", "bytes", &[seq as u8; 40])
}

/// Wait for a condition the writer thread brings about (not a delay).
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// Every record of the journal in `dir`: (index, seq, topic).
fn records(dir: &Path) -> Vec<(u64, u64, String)> {
    JournalReader::open(dir)
        .unwrap()
        .records(ReadFilter::all())
        .map(|r| {
            let r = r.unwrap();
            (r.index, r.seq, r.topic)
        })
        .collect()
}

fn assert_clean(dir: &Path) {
    let v = verify(dir).unwrap();
    assert!(v.ok() && v.torn_tail.is_none(), "{v}");
}

#[test]
fn a_failed_fsync_refuses_appends_keeps_what_was_accepted_and_resumes_with_the_gap_reported() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faulty::new();
    let j = open(dir.path(), &faults, 1 << 20);
    for seq in 1..=5 {
        append(&j, seq).unwrap();
    }
    j.sync_now().unwrap();
    faults.fail_sync.store(true, Ordering::SeqCst);
    assert_eq!(append(&j, 6).unwrap(), 6);
    until("the outage", || j.outage().is_some());
    let o = j.outage().unwrap();
    assert_eq!(o.after_index, 6);
    assert!(
        o.reason.contains("syncing") && o.reason.contains("00000000000000000001.sy-journal"),
        "{o}"
    );
    // Refused, naming the journal and the failure; no index used up.
    for seq in 7..=9 {
        let e = append(&j, seq).unwrap_err();
        assert!(matches!(e, JournalError::Unavailable { .. }), "{e}");
        assert!(e.to_string().contains("Input/output error"), "{e}");
    }
    assert!(matches!(
        j.wait_durable(6),
        Err(JournalError::Unavailable { .. })
    ));
    assert!(j.sync_now().is_err());
    assert_eq!(j.next_index(), 7);
    assert_eq!(j.stats().records_lost, 3);
    assert_eq!(j.durable(), 5);
    // Nothing corrupt on disk meanwhile: the unsynced frame was cut back.
    assert_clean(dir.path());
    assert_eq!(records(dir.path()).len(), 5);

    // A retry that fails again keeps the outage and counts the failure.
    j.retry_now();
    until("the failed retry", || j.outage().unwrap().failures == 2);
    faults.fail_sync.store(false, Ordering::SeqCst);
    j.retry_now();
    until("the end of the outage", || j.outage().is_none());
    let gaps = j.gaps();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let g = &gaps[0];
    assert_eq!((g.after_index, g.resumed_at, g.lost), (6, 7, 3));
    assert_eq!(g.seq, Some((7, 9)));
    assert!(
        g.to_string().contains("3 record(s) lost between #6 and #7"),
        "{g}"
    );
    assert_eq!(append(&j, 10).unwrap(), 8);
    assert_eq!(j.wait_durable(8).unwrap(), 8);
    let stats = j.close().unwrap();
    assert_eq!(
        (stats.records_lost, stats.gaps, stats.write_failures),
        (3, 1, 2)
    );

    // Record 6, accepted before the failure, was rewritten; the gap record follows it,
    // chained into the audit trail.
    let got = records(dir.path());
    let want: Vec<(u64, u64, String)> = (1..=6)
        .map(|i| (i, i, "t.x".to_owned()))
        .chain([(7, 0, GAP_TOPIC.to_owned()), (8, 10, "t.x".to_owned())])
        .collect();
    assert_eq!(got, want);
    let gap = JournalReader::open(dir.path())
        .unwrap()
        .records(ReadFilter::all())
        .map(Result::unwrap)
        .find(|r| r.index == 7)
        .unwrap();
    assert_eq!(gap.kind, CONTROL_KIND);
    let v: serde_json::Value = serde_json::from_slice(&gap.payload).unwrap();
    assert_eq!(v["lost"], 3);
    assert_eq!(v["after_index"], 6);
    let report = verify(dir.path()).unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.audit.records, 1);
}

#[test]
fn a_full_disk_mid_write_leaves_no_partial_frame_and_rewrites_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faulty::new();
    let j = open(dir.path(), &faults, 1 << 20);
    append(&j, 1).unwrap();
    j.sync_now().unwrap();
    // Room for part of the next frame only: the write lands half a frame, then ENOSPC.
    faults.space.store(30, Ordering::SeqCst);
    append(&j, 2).unwrap();
    until("the outage", || j.outage().is_some());
    assert!(
        j.outage()
            .unwrap()
            .reason
            .contains("No space left on device"),
        "{:?}",
        j.outage()
    );
    assert!(append(&j, 3).is_err());
    assert_clean(dir.path());
    assert_eq!(records(dir.path()).len(), 1);
    faults.space.store(u64::MAX, Ordering::SeqCst);
    j.retry_now();
    until("the end of the outage", || j.outage().is_none());
    append(&j, 4).unwrap();
    j.close().unwrap();
    let seqs: Vec<u64> = records(dir.path()).iter().map(|r| r.1).collect();
    assert_eq!(seqs, [1, 2, 0, 4]);
    assert_clean(dir.path());
}

#[test]
fn a_segment_whose_header_does_not_fit_is_removed_and_created_again_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faulty::new();
    // Small segments: the third 88-byte frame needs a new one.
    let j = open(dir.path(), &faults, 220);
    append(&j, 1).unwrap();
    append(&j, 2).unwrap();
    j.sync_now().unwrap();
    // The disk is full: the new segment is created, but its header does not fit.
    faults.space.store(0, Ordering::SeqCst);
    append(&j, 3).unwrap();
    until("the outage", || j.outage().is_some());
    let seg2 = dir.path().join("00000000000000000003.sy-journal");
    let o = j.outage().unwrap();
    assert!(
        o.reason.contains(&format!("writing {}", seg2.display())),
        "{o}"
    );
    faults.space.store(u64::MAX, Ordering::SeqCst);
    j.retry_now();
    until("the end of the outage", || j.outage().is_none());
    j.close().unwrap();
    let seqs: Vec<u64> = records(dir.path()).iter().map(|r| r.1).collect();
    assert_eq!(seqs, [1, 2, 3, 0]);
    assert_clean(dir.path());
}

#[test]
fn closing_during_an_outage_fails_but_leaves_every_durable_record_and_nothing_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faulty::new();
    let j = open(dir.path(), &faults, 1 << 20);
    for seq in 1..=3 {
        append(&j, seq).unwrap();
    }
    j.sync_now().unwrap();
    faults.fail_sync.store(true, Ordering::SeqCst);
    append(&j, 4).unwrap();
    until("the outage", || j.outage().is_some());
    let e = j.close().unwrap_err();
    assert!(matches!(e, JournalError::WriterFailed { .. }), "{e}");
    assert!(e.to_string().contains("Input/output error"), "{e}");
    drop(j);
    assert_clean(dir.path());
    // The durable records, and perhaps record 4 (rewritten by the last repair attempt,
    // whose fsync failed: in the page cache, not known durable).
    let (j, rep) = Journal::open(JournalConfig::new(dir.path())).unwrap();
    j.close().unwrap();
    let seqs: Vec<u64> = records(dir.path()).iter().map(|r| r.1).collect();
    assert!(seqs == [1, 2, 3] || seqs == [1, 2, 3, 4], "{seqs:?}");
    assert_eq!(rep.last_index, seqs.len() as u64);
}
