//! Opening a journal for writing: the lock, the segments, and the tail rule applied to
//! the last segment (a torn tail is cut off and the cut made durable; a damaged tail
//! that valid frames follow is first copied to a side file, see [`cut_aside`]). Every file
//! operation goes through the journal's [`Storage`].

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::audit_chain::{self, GENESIS, Hash};
use crate::codec::{self, HEADER_LEN};
use crate::cut_aside;
use crate::error::JournalError;
use crate::journal::{JournalConfig, LOCK_FILE};
use crate::segment::{self, TornTail, segment_file_name};
use crate::storage::{LockGuard, SegmentFile, Storage};

/// What [`Journal::open`](crate::Journal::open) found and repaired.
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
    /// The tail that was cut off, if any: torn, or damaged with valid frames after it
    /// (then [`TornTail::kept_in`] names the side file holding the cut bytes).
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

/// The state the writer starts from.
pub(crate) struct Recovered {
    pub report: RecoveryReport,
    pub lock: LockGuard,
    pub file: Box<dyn SegmentFile>,
    pub path: PathBuf,
    pub seg_len: u64,
    pub seg_has_frames: bool,
    /// The hash of the last audit record (the audit chain continues from it).
    pub chain_head: Hash,
}

/// Create the segment whose first record is `first_index`: write its header, sync it,
/// and sync the directory, so that the new file and its header survive a power loss
/// before any frame is written after them. (Without the header's own sync, a power loss
/// may keep later frames but not the header: a segment the tail rule cannot read.)
pub(crate) fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    first_index: u64,
) -> Result<(Box<dyn SegmentFile>, PathBuf), JournalError> {
    let path = dir.join(segment_file_name(first_index));
    let mut f = storage
        .create_new(&path)
        .map_err(JournalError::io("creating", &path))?;
    f.write_all(&codec::encode_header(first_index))
        .map_err(JournalError::io("writing", &path))?;
    f.sync_data().map_err(JournalError::io("syncing", &path))?;
    storage
        .sync_dir(dir)
        .map_err(JournalError::io("syncing directory", dir))?;
    Ok((f, path))
}

fn check_header(storage: &dyn Storage, path: &Path, name_index: u64) -> Result<(), JournalError> {
    let (f, _) = storage
        .open_read(path)
        .map_err(JournalError::io("opening", path))?;
    match segment::Scanner::start(f, path.to_path_buf(), Some(name_index), false)? {
        segment::Opened::Ready(_) | segment::Opened::TornHeader(_) => Ok(()),
    }
}

/// Lock the journal in `config.dir` (creating the directory), check the segments and
/// recover the last one.
pub(crate) fn recover(
    storage: &dyn Storage,
    config: &JournalConfig,
) -> Result<Recovered, JournalError> {
    let dir = config.dir.clone();
    storage
        .create_dir_all(&dir)
        .map_err(JournalError::io("creating directory", &dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = storage
        .try_lock(&lock_path)
        .map_err(JournalError::io("locking", &lock_path))?
        .ok_or_else(|| JournalError::Locked {
            path: lock_path.clone(),
        })?;

    let segs = segment::list_segments_in(storage, &dir)?;
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
    let Some(((last_first, last_path), older)) = segs.split_last() else {
        let (file, path) = create_segment(storage, &dir, 1)?;
        report.last_segment = path.clone();
        return Ok(Recovered {
            report,
            lock,
            file,
            path,
            seg_len: HEADER_LEN as u64,
            seg_has_frames: false,
            chain_head: GENESIS,
        });
    };
    let mut prev_end: Option<u64> = None;
    for (first, path) in older {
        if config.verify_on_open {
            let s = segment::scan_stored(storage, path, *first, false, |_, _| {})?;
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
            check_header(storage, path, *first)?;
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
    let mut chain_head = None;
    let mut sum = segment::scan_stored_for_recovery(storage, last_path, *last_first, |r, _| {
        chain_head = audit_chain::head_of(r).or(chain_head);
    })?;
    // Damage that valid frames follow (a hole of a power loss, or real damage): the
    // bytes are copied aside, durably, before the cut.
    if let Some(t) = &mut sum.torn_tail
        && t.next_valid.is_some()
    {
        let side = cut_aside::keep_aside(storage, &dir, last_path, t.offset)?;
        tracing::warn!(
            segment = %t.segment.display(),
            offset = t.offset,
            bytes = t.bytes,
            side_file = %side.display(),
            reason = %t.reason,
            "journal recovery: damaged tail followed by valid frames; cutting it, the cut bytes are kept in the side file"
        );
        t.kept_in = Some(side);
    }
    // The audit chain continues from the last audit record, wherever it is.
    for (first, path) in older.iter().rev() {
        if chain_head.is_some() {
            break;
        }
        segment::scan_stored(storage, path, *first, false, |r, _| {
            chain_head = audit_chain::head_of(r).or(chain_head);
        })?;
    }
    let mut file = storage
        .open_append(last_path)
        .map_err(JournalError::io("opening", last_path))?;
    let mut len = sum.bytes;
    if sum.torn_header {
        file.truncate_to(0)
            .and_then(|()| file.write_all(&codec::encode_header(*last_first)))
            .map_err(JournalError::io("rewriting header of", last_path))?;
        len = HEADER_LEN as u64;
    } else if sum.torn_tail.is_some() {
        file.truncate_to(sum.valid_bytes)
            .map_err(JournalError::io("truncating", last_path))?;
        len = sum.valid_bytes;
    }
    if let Some(t) = sum.torn_tail.as_ref().filter(|t| t.kept_in.is_none()) {
        tracing::warn!(
            segment = %t.segment.display(),
            offset = t.offset,
            bytes = t.bytes,
            reason = %t.reason,
            "journal recovery: cut off a torn tail"
        );
    }
    // The cut (or nothing) made durable before anything is appended after it.
    file.sync_data()
        .map_err(JournalError::io("syncing", last_path))?;
    report.records_in_last_segment = sum.records;
    report.last_index = sum.last_index.unwrap_or(last_first.saturating_sub(1));
    report.next_index = sum.last_index.map_or(*last_first, segment::index_after);
    report.truncated = sum.torn_tail;
    report.last_segment = last_path.clone();
    Ok(Recovered {
        report,
        lock,
        file,
        path: last_path.clone(),
        seg_len: len,
        seg_has_frames: sum.records > 0,
        chain_head: chain_head.unwrap_or(GENESIS),
    })
}
