//! Retention over a journal *root*: a directory whose subdirectories are journals, one
//! per run (a node writes `root/<UTC time>-<pid>`, so names sort by age). [`enforce`]
//! deletes the oldest data first until the root is within its [`RetentionLimits`]:
//!
//! * Candidates, oldest first: runs in name order, and in each run its segments in index
//!   order. Only a run's *oldest* segments go (its remaining segments stay contiguous, a
//!   journal that reads and verifies; verification then starts the audit chain at the
//!   first remaining record). A deleted segment's side files (`<segment>.cut-*`) go
//!   with it.
//! * The open segment is never deleted: the last segment of the run being written
//!   (`open_run`) and of any run whose `LOCK` another writer holds.
//! * When every segment of a run that is not being written is deleted, the run's
//!   directory goes too (whole old runs), unless it holds files that are not the
//!   journal's.
//! * `max_age`: every candidate whose file was last modified longer ago than `max_age`
//!   (per run, stopping at the first younger segment). `max_total_bytes`: then further
//!   candidates, oldest first, while the root's files total more than the limit.
//!
//! [`usage`] is what the root holds (every file of every run, side files and lock files
//! included).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::JournalError;
use crate::journal::LOCK_FILE;
use crate::segment;

/// Limits of a journal root; `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetentionLimits {
    /// Bytes all runs may use together.
    pub max_total_bytes: Option<u64>,
    /// Age (since last modification) past which closed segments are deleted.
    pub max_age: Option<Duration>,
}

/// What a journal root holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RootUsage {
    /// Bytes of every file of every run.
    pub bytes: u64,
    /// Runs (subdirectories).
    pub runs: u64,
    /// Segment files.
    pub segments: u64,
}

/// What [`enforce`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// The root before.
    pub before: RootUsage,
    /// The root after.
    pub after: RootUsage,
    /// Segments deleted, oldest first.
    pub deleted_segments: Vec<PathBuf>,
    /// Run directories deleted (all their segments were).
    pub deleted_runs: Vec<PathBuf>,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// True if `max_total_bytes` is still exceeded (only open segments are left to
    /// delete).
    pub over_limit: bool,
}

struct Seg {
    path: PathBuf,
    /// The segment and its side files.
    bytes: u64,
    side_files: Vec<PathBuf>,
    modified: SystemTime,
}

struct Run {
    dir: PathBuf,
    /// Bytes of files that are not segments or side files (`LOCK`, others).
    other_bytes: u64,
    segs: Vec<Seg>,
    /// Its last segment may be open: never deleted, and the run stays.
    open: bool,
    /// It holds files that are not the journal's (not segments, side files or `LOCK`):
    /// its directory stays when its segments go.
    foreign: bool,
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> JournalError {
    JournalError::io(op, path)
}

/// Whether another writer holds the run's lock (a missing lock file: nobody).
fn locked(dir: &Path) -> bool {
    match File::open(dir.join(LOCK_FILE)) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

fn scan_run(dir: &Path, open_run: Option<&Path>) -> Result<Run, JournalError> {
    let segs = segment::list_segments(dir)?;
    let mut run = Run {
        dir: dir.to_path_buf(),
        other_bytes: 0,
        segs: Vec::with_capacity(segs.len()),
        open: open_run == Some(dir) || locked(dir),
        foreign: false,
    };
    let mut sizes: Vec<(String, u64)> = Vec::new();
    for e in fs::read_dir(dir).map_err(io("listing", dir))? {
        let e = e.map_err(io("listing", dir))?;
        let meta = e.metadata().map_err(io("reading metadata of", &e.path()))?;
        if meta.is_file() {
            sizes.push((e.file_name().to_string_lossy().into_owned(), meta.len()));
        }
    }
    let mut claimed = vec![false; sizes.len()];
    for (_, path) in segs {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let side_prefix = format!("{name}.cut-");
        let mut seg = Seg {
            modified: fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(io("reading metadata of", &path))?,
            path,
            bytes: 0,
            side_files: Vec::new(),
        };
        for (k, (n, len)) in sizes.iter().enumerate() {
            if *n == name {
                seg.bytes += len;
                claimed[k] = true;
            } else if n.starts_with(&side_prefix) {
                seg.bytes += len;
                seg.side_files.push(dir.join(n));
                claimed[k] = true;
            }
        }
        run.segs.push(seg);
    }
    run.foreign = sizes
        .iter()
        .zip(&claimed)
        .any(|((n, _), c)| !*c && n != LOCK_FILE);
    run.other_bytes = sizes
        .iter()
        .zip(&claimed)
        .filter(|(_, c)| !**c)
        .map(|((_, len), _)| len)
        .sum();
    Ok(run)
}

fn scan_root(root: &Path, open_run: Option<&Path>) -> Result<Vec<Run>, JournalError> {
    let mut dirs = Vec::new();
    for e in fs::read_dir(root).map_err(io("listing", root))? {
        let e = e.map_err(io("listing", root))?;
        if e.file_type().map_err(io("listing", root))?.is_dir() {
            dirs.push(e.path());
        }
    }
    dirs.sort();
    dirs.iter().map(|d| scan_run(d, open_run)).collect()
}

fn usage_of(runs: &[Run]) -> RootUsage {
    RootUsage {
        bytes: runs
            .iter()
            .map(|r| r.other_bytes + r.segs.iter().map(|s| s.bytes).sum::<u64>())
            .sum(),
        runs: runs.len() as u64,
        segments: runs.iter().map(|r| r.segs.len() as u64).sum(),
    }
}

/// What the journal root `root` holds.
pub fn usage(root: &Path) -> Result<RootUsage, JournalError> {
    Ok(usage_of(&scan_root(root, None)?))
}

/// Delete the oldest data of the journal root `root` until it is within `limits` (see
/// the module docs). `open_run` is the run being written by this process, if any; `now`
/// is the time ages are measured from. Each deletion is made durable (the directory
/// synced) before the report is returned. Errors name the file and the operation.
pub fn enforce(
    root: &Path,
    open_run: Option<&Path>,
    limits: &RetentionLimits,
    now: SystemTime,
) -> Result<RetentionReport, JournalError> {
    let mut runs = scan_root(root, open_run)?;
    let before = usage_of(&runs);
    let mut report = RetentionReport {
        before,
        ..RetentionReport::default()
    };
    let mut total = before.bytes;
    // How many of each run's oldest segments go.
    let mut cut: Vec<usize> = vec![0; runs.len()];
    let closed = |r: &Run| r.segs.len() - usize::from(r.open && !r.segs.is_empty());
    if let Some(age) = limits.max_age {
        for (k, r) in runs.iter().enumerate() {
            let old = r.segs[..closed(r)]
                .iter()
                .take_while(|s| now.duration_since(s.modified).is_ok_and(|d| d > age))
                .count();
            cut[k] = old;
            total -= r.segs[..old].iter().map(|s| s.bytes).sum::<u64>();
        }
    }
    if let Some(max) = limits.max_total_bytes {
        for (k, r) in runs.iter().enumerate() {
            while total > max && cut[k] < closed(r) {
                total -= r.segs[cut[k]].bytes;
                cut[k] += 1;
            }
        }
        report.over_limit = total > max;
    }
    for (k, r) in runs.iter_mut().enumerate() {
        if cut[k] == 0 {
            continue;
        }
        let whole = cut[k] == r.segs.len() && !r.open && !r.foreign;
        for s in r.segs.drain(..cut[k]) {
            for f in s.side_files.iter().chain([&s.path]) {
                fs::remove_file(f).map_err(io("deleting", f))?;
            }
            report.freed_bytes += s.bytes;
            tracing::info!(segment = %s.path.display(), bytes = s.bytes, "journal retention: deleted segment");
            report.deleted_segments.push(s.path);
        }
        if whole {
            fs::remove_dir_all(&r.dir).map_err(io("deleting run", &r.dir))?;
            report.freed_bytes += r.other_bytes;
            r.other_bytes = 0;
            tracing::info!(run = %r.dir.display(), "journal retention: deleted run");
            report.deleted_runs.push(r.dir.clone());
        } else {
            File::open(&r.dir)
                .and_then(|d| d.sync_all())
                .map_err(io("syncing directory", &r.dir))?;
        }
    }
    runs.retain(|r| !report.deleted_runs.contains(&r.dir));
    if !report.deleted_runs.is_empty() {
        File::open(root)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing directory", root))?;
    }
    report.after = usage_of(&runs);
    Ok(report)
}
