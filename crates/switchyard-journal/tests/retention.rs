//! Retention over a root of run journals: oldest segments first, then whole old runs,
//! never an open segment; by size and by age. Real journals in a temporary root.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use switchyard::Timestamp;
use switchyard_journal::retention::{RetentionLimits, enforce, usage};
use switchyard_journal::segment::list_segments;
use switchyard_journal::{Journal, JournalConfig, JournalReader, ReadFilter, SyncPolicy, verify};

/// Segments of 4 records of 100-byte payloads (144-byte frames), or of an audit record
/// and 2 of those.
const SEGMENT_BYTES: u64 = 32 + 4 * 150;

fn config(dir: &Path) -> JournalConfig {
    JournalConfig::new(dir)
        .segment_bytes(SEGMENT_BYTES)
        .sync(SyncPolicy::Never)
}

fn fill(j: &Journal, n: u64) {
    for i in 0..n {
        j.append(i, Timestamp(i), "t.x", "bytes", &[7u8; 100])
            .unwrap();
    }
    j.sync_now().unwrap();
}

/// A closed run journal of `segments` full segments, with an audit record in each.
fn old_run(root: &Path, name: &str, segments: u64) -> PathBuf {
    let dir = root.join(name);
    let (j, _) = Journal::open(config(&dir)).unwrap();
    for _ in 0..segments {
        j.append_audit(
            0,
            Timestamp(0),
            "switchyard.control.x",
            &serde_json::json!({"a": 1}),
        )
        .unwrap();
        fill(&j, 2);
    }
    j.close().unwrap();
    assert_eq!(list_segments(&dir).unwrap().len() as u64, segments);
    dir
}

fn set_age(path: &Path, age: Duration) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

fn names(dir: &Path) -> Vec<u64> {
    list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|s| s.0)
        .collect()
}

#[test]
fn a_size_limit_deletes_oldest_segments_then_whole_runs_never_the_open_segment() {
    let root = tempfile::tempdir().unwrap();
    let a = old_run(root.path(), "20260101T000000Z-1", 3);
    let b = old_run(root.path(), "20260102T000000Z-2", 3);
    let c = root.path().join("20260103T000000Z-3");
    let (j, _) = Journal::open(config(&c)).unwrap();
    fill(&j, 10); // three segments, the last one open
    assert_eq!(names(&c), [1, 5, 9]);
    let before = usage(root.path()).unwrap();
    assert_eq!((before.runs, before.segments), (3, 9));
    let seg_bytes = std::fs::metadata(&list_segments(&a).unwrap()[0].1)
        .unwrap()
        .len();

    // Room for everything but run a and the first segment of run b.
    let limit = before.bytes - 3 * seg_bytes - seg_bytes / 2;
    let limits = RetentionLimits {
        max_total_bytes: Some(limit),
        max_age: None,
    };
    let r = enforce(root.path(), Some(&c), &limits, SystemTime::now()).unwrap();
    assert_eq!(r.deleted_runs, std::slice::from_ref(&a));
    assert_eq!(r.deleted_segments.len(), 4, "{r:?}");
    assert!(!a.exists());
    assert_eq!(names(&b), [4, 7]);
    assert!(r.after.bytes <= limit && !r.over_limit, "{r:?}");
    assert_eq!(r.after, usage(root.path()).unwrap());
    assert_eq!(r.before.bytes - r.after.bytes, r.freed_bytes);
    // What is left of run b still reads and verifies; the audit chain is checked from
    // its first remaining record.
    let v = verify(&b).unwrap();
    assert!(v.ok(), "{v}");
    assert_eq!((v.audit.starts_at, v.audit.records), (Some(4), 2));
    assert_eq!(
        JournalReader::open(&b)
            .unwrap()
            .records(ReadFilter::all())
            .count(),
        6
    );

    // A limit of nothing: every closed segment goes, run b as a whole, and the open run
    // keeps its open segment (still written to).
    let limits = RetentionLimits {
        max_total_bytes: Some(0),
        max_age: None,
    };
    let r = enforce(root.path(), Some(&c), &limits, SystemTime::now()).unwrap();
    assert_eq!(r.deleted_runs, std::slice::from_ref(&b));
    assert!(r.over_limit);
    assert_eq!(names(&c), [9]);
    fill(&j, 1);
    j.close().unwrap();
    assert_eq!(
        JournalReader::open(&c)
            .unwrap()
            .records(ReadFilter::all())
            .count(),
        3
    );
    assert!(verify(&c).unwrap().ok());
}

#[test]
fn an_age_limit_deletes_closed_segments_older_than_max_age_and_spares_locked_runs() {
    let root = tempfile::tempdir().unwrap();
    let a = old_run(root.path(), "20260101T000000Z-1", 3);
    let b = old_run(root.path(), "20260102T000000Z-2", 3);
    let day = Duration::from_secs(86_400);
    for (_, p) in list_segments(&a).unwrap() {
        set_age(&p, 3 * day);
    }
    // Run b: its first two segments are old, the last one is recent.
    let segs_b = list_segments(&b).unwrap();
    set_age(&segs_b[0].1, 3 * day);
    set_age(&segs_b[1].1, 2 * day);
    // Run c is written by another journal (its lock is held) that retention is not told
    // about: its segments are all old, but its last one may be open and stays.
    let c = root.path().join("20260103T000000Z-3");
    let (j, _) = Journal::open(config(&c)).unwrap();
    fill(&j, 10);
    for (_, p) in list_segments(&c).unwrap() {
        set_age(&p, 3 * day);
    }
    let limits = RetentionLimits {
        max_total_bytes: None,
        max_age: Some(day),
    };
    let r = enforce(root.path(), None, &limits, SystemTime::now()).unwrap();
    assert_eq!(r.deleted_runs, std::slice::from_ref(&a));
    assert_eq!(names(&b), [7]);
    assert_eq!(names(&c), [9]);
    assert_eq!(r.deleted_segments.len(), 3 + 2 + 2);
    assert!(c.exists());
    fill(&j, 1);
    j.close().unwrap();
    assert!(verify(&c).unwrap().ok());
    // Nothing younger than the limit is touched.
    let again = enforce(root.path(), None, &limits, SystemTime::now()).unwrap();
    assert!(again.deleted_segments.is_empty() && again.deleted_runs.is_empty());
}
