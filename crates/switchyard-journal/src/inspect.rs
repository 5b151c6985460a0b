//! [`inspect`] and [`verify`]: what is in a journal, and whether every byte checks out.
//! Both print as human-readable text (`Display`) and serialize (for `--json`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use switchyard::Timestamp;

use crate::audit_chain::{self, ChainBreak, ChainVerifier};
use crate::codec::Corruption;
use crate::cut_aside;
use crate::error::JournalError;
use crate::recorder::CONTROL_KIND;
use crate::segment::{self, SegmentSummary, TornTail};

/// The contents of a journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// The directory.
    pub dir: PathBuf,
    /// Each segment, in order.
    pub segments: Vec<SegmentSummary>,
    /// Valid records in all segments.
    pub records: u64,
    /// Bytes of all segment files.
    pub bytes: u64,
    /// First journal index.
    pub first_index: Option<u64>,
    /// Last journal index.
    pub last_index: Option<u64>,
    /// Earliest timestamp of any record.
    pub min_ts: Option<Timestamp>,
    /// Latest timestamp of any record.
    pub max_ts: Option<Timestamp>,
    /// Records per topic.
    pub by_topic: BTreeMap<String, u64>,
    /// Records per kind.
    pub by_kind: BTreeMap<String, u64>,
    /// The torn tail of the last segment, if any (reading stops there).
    pub torn_tail: Option<TornTail>,
}

fn bump(map: &mut HashMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

/// Read every segment of the journal in `dir` and summarize it. Damage that is not a
/// torn tail is an error naming segment and offset (use [`verify`] to list every
/// problem instead).
pub fn inspect(dir: impl AsRef<Path>) -> Result<Inspection, JournalError> {
    let dir = dir.as_ref();
    let segs = segment::list_segments(dir)?;
    if segs.is_empty() {
        return Err(JournalError::Empty {
            path: dir.to_path_buf(),
        });
    }
    let mut by_topic = HashMap::new();
    let mut by_kind = HashMap::new();
    let mut min_ts: Option<Timestamp> = None;
    let mut max_ts: Option<Timestamp> = None;
    let mut summaries = Vec::with_capacity(segs.len());
    let mut expected: Option<u64> = None;
    for (i, (first, path)) in segs.iter().enumerate() {
        if let Some(e) = expected
            && e != *first
        {
            return Err(JournalError::SegmentGap {
                path: path.clone(),
                expected: e,
                found: *first,
            });
        }
        let s = segment::scan_file(path, *first, i + 1 == segs.len(), |r, _| {
            bump(&mut by_topic, r.topic);
            bump(&mut by_kind, r.kind);
            min_ts = Some(min_ts.map_or(r.ts, |t| t.min(r.ts)));
            max_ts = Some(max_ts.map_or(r.ts, |t| t.max(r.ts)));
        })?;
        expected = Some(s.last_index.map_or(*first, segment::index_after));
        summaries.push(s);
    }
    let records = summaries.iter().map(|s| s.records).sum();
    Ok(Inspection {
        dir: dir.to_path_buf(),
        records,
        bytes: summaries.iter().map(|s| s.bytes).sum(),
        first_index: (records > 0).then(|| segs[0].0),
        last_index: summaries.iter().rev().find_map(|s| s.last_index),
        min_ts,
        max_ts,
        by_topic: by_topic.into_iter().collect(),
        by_kind: by_kind.into_iter().collect(),
        torn_tail: summaries.last().and_then(|s| s.torn_tail.clone()),
        segments: summaries,
    })
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "journal   {}", self.dir.display())?;
        writeln!(
            f,
            "records   {} in {} segment(s), {} bytes",
            self.records,
            self.segments.len(),
            self.bytes
        )?;
        writeln!(
            f,
            "index     {} ..= {}",
            opt(&self.first_index),
            opt(&self.last_index)
        )?;
        match (self.min_ts, self.max_ts) {
            (Some(a), Some(b)) => writeln!(
                f,
                "time      {a} .. {b} ({:.3} s)",
                b.saturating_duration_since(a).as_secs_f64()
            )?,
            _ => writeln!(f, "time      -")?,
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<32} {:>12} {:>12} {:>10} {:>12}  {:<30}  {:<30}",
            "SEGMENT", "FIRST", "LAST", "RECORDS", "BYTES", "FIRST TS", "LAST TS"
        )?;
        for s in &self.segments {
            writeln!(
                f,
                "{:<32} {:>12} {:>12} {:>10} {:>12}  {:<30}  {:<30}",
                file_name(&s.path),
                s.first_index,
                opt(&s.last_index),
                s.records,
                s.bytes,
                opt(&s.first_ts),
                opt(&s.last_ts)
            )?;
        }
        for (title, map) in [("TOPIC", &self.by_topic), ("KIND", &self.by_kind)] {
            writeln!(f)?;
            writeln!(f, "{title:<48} {:>12}", "RECORDS")?;
            for (k, n) in map {
                writeln!(f, "{k:<48} {n:>12}")?;
            }
        }
        if let Some(t) = &self.torn_tail {
            writeln!(f)?;
            writeln!(f, "warning: {t}")?;
        }
        Ok(())
    }
}

/// One problem found by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The segment file.
    pub segment: PathBuf,
    /// Byte offset in the segment, where known.
    pub offset: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) => write!(
                f,
                "{} at byte offset {o}: {}",
                self.segment.display(),
                self.reason
            ),
            None => write!(f, "{}: {}", self.segment.display(), self.reason),
        }
    }
}

/// The first audit record that breaks the audit chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// The segment file.
    pub segment: PathBuf,
    /// Byte offset of the record's frame in the segment.
    pub offset: u64,
    /// The record's journal index.
    pub index: u64,
    /// The record's envelope sequence number.
    pub seq: u64,
    /// What is wrong.
    pub reason: ChainBreak,
}

impl fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "audit record #{} (seq {}) breaks the audit chain: {}",
            self.index, self.seq, self.reason
        )
    }
}

/// The audit chain, as [`verify`] found it (see [`audit_chain`](crate::audit_chain)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditChainReport {
    /// Audit (control) records whose link was checked and holds.
    pub records: u64,
    /// Journal index of the last of them.
    pub head_index: Option<u64>,
    /// Its hash (hex): what the chain's next record links to. Keep it elsewhere to pin
    /// the trail.
    pub head: Option<String>,
    /// The first record that breaks the chain (also listed in the problems).
    pub broken: Option<BrokenLink>,
    /// The chain was not checked past frame damage (listed in the problems).
    pub stopped_at_damage: bool,
    /// The journal's first record has this index, not 1 (its oldest segments were
    /// deleted by retention): the chain is checked from the first remaining audit record,
    /// whose link to a deleted one is taken as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<u64>,
}

/// The result of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The directory.
    pub dir: PathBuf,
    /// Segments checked.
    pub segments: usize,
    /// Valid records checked (every checksum verified).
    pub records: u64,
    /// Bytes in all segment files.
    pub bytes: u64,
    /// Damage: at most one per segment (the first), plus index gaps between segments.
    pub problems: Vec<Problem>,
    /// A torn tail of the last segment: not damage (a writer reopening the journal cuts
    /// it off), but reported.
    pub torn_tail: Option<TornTail>,
    /// The audit chain.
    pub audit: AuditChainReport,
}

impl VerifyReport {
    /// True when no problem was found (a torn tail is not a problem).
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} ({} records in {} segment(s), {} bytes)",
            self.dir.display(),
            if self.ok() { "OK" } else { "CORRUPT" },
            self.records,
            self.segments,
            self.bytes
        )?;
        let a = &self.audit;
        match (&a.broken, a.head_index, &a.head) {
            (Some(_), _, _) => writeln!(
                f,
                "audit chain: BROKEN ({} records hold before it)",
                a.records
            )?,
            (None, _, _) if a.stopped_at_damage => writeln!(
                f,
                "audit chain: not checked past the damage ({} records hold before it)",
                a.records
            )?,
            (None, Some(i), Some(h)) => writeln!(
                f,
                "audit chain: {} records hold, head #{i} sha256 {h}",
                a.records
            )?,
            _ => writeln!(f, "audit chain: no audit records")?,
        }
        if let Some(i) = a.starts_at {
            writeln!(
                f,
                "audit chain: checked from record #{i} (older segments were deleted by retention)"
            )?;
        }
        for p in &self.problems {
            writeln!(f, "error: {p}")?;
        }
        if let Some(t) = &self.torn_tail {
            writeln!(
                f,
                "warning: {t} (cut off when the journal is next opened for writing)"
            )?;
        }
        Ok(())
    }
}

fn problem(e: JournalError, path: &Path) -> Problem {
    match e {
        JournalError::Corrupt {
            path,
            offset,
            reason,
        } => Problem {
            segment: path,
            offset: Some(offset),
            reason: reason.to_string(),
        },
        JournalError::BadHeader { path, reason } => Problem {
            segment: path,
            offset: Some(0),
            reason: format!("bad header: {reason}"),
        },
        other => Problem {
            segment: path.to_path_buf(),
            offset: None,
            reason: other.to_string(),
        },
    }
}

/// Verify every checksum of every segment in `dir`, the headers, that indexes run on
/// without gaps, and the audit chain (up to its first broken record, which it names;
/// not past frame damage). Reports each problem with segment, offset and reason; fails only if
/// the directory cannot be listed or holds no segment.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport, JournalError> {
    let dir = dir.as_ref();
    let segs = segment::list_segments(dir)?;
    if segs.is_empty() {
        return Err(JournalError::Empty {
            path: dir.to_path_buf(),
        });
    }
    let mut report = VerifyReport {
        dir: dir.to_path_buf(),
        segments: segs.len(),
        records: 0,
        bytes: 0,
        problems: Vec::new(),
        torn_tail: None,
        audit: AuditChainReport::default(),
    };
    let trimmed = segs[0].0 > 1;
    let mut chain = if trimmed {
        report.audit.starts_at = Some(segs[0].0);
        ChainVerifier::anchored()
    } else {
        ChainVerifier::new()
    };
    let mut expected: Option<u64> = None;
    for (i, (first, path)) in segs.iter().enumerate() {
        if let Some(e) = expected
            && e != *first
        {
            report.problems.push(problem(
                JournalError::SegmentGap {
                    path: path.clone(),
                    expected: e,
                    found: *first,
                },
                path,
            ));
        }
        if let Ok(m) = std::fs::metadata(path) {
            report.bytes += m.len();
        }
        let mut n = 0u64;
        let checking = report.problems.is_empty();
        let mut broken = None;
        let scanned = segment::scan_file(path, *first, i + 1 == segs.len(), |r, offset| {
            n += 1;
            if checking
                && broken.is_none()
                && r.kind == CONTROL_KIND
                && let Err(reason) = chain.check(r)
            {
                broken = Some(BrokenLink {
                    segment: path.clone(),
                    offset,
                    index: r.index,
                    seq: r.seq,
                    reason,
                });
            }
        });
        if let Some(b) = broken {
            report.problems.push(Problem {
                segment: b.segment.clone(),
                offset: Some(b.offset),
                reason: b.to_string(),
            });
            report.audit.broken = Some(b);
        }
        match scanned {
            Ok(s) => {
                expected = Some(s.last_index.map_or(*first, segment::index_after));
                if s.torn_tail.is_some() {
                    report.torn_tail = s.torn_tail;
                }
            }
            Err(e) => {
                expected = None;
                let cut_on_open = match &e {
                    JournalError::Corrupt {
                        offset,
                        reason: Corruption::FollowedByValid { .. },
                        ..
                    } if i + 1 == segs.len() => Some(*offset),
                    _ => None,
                };
                let mut p = problem(e, path);
                if let Some(offset) = cut_on_open {
                    p.reason.push_str(&format!(
                        "; opening the journal for writing cuts the segment at byte {offset} and keeps the cut bytes in {}",
                        cut_aside::side_file_name(path, offset, 0).display()
                    ));
                }
                report.problems.push(p);
            }
        }
        report.records += n;
    }
    let (records, head) = chain.summary();
    report.audit.records = records;
    report.audit.head_index = head.map(|(i, _)| i);
    report.audit.head = head.map(|(_, h)| audit_chain::hex(&h));
    report.audit.stopped_at_damage = report.audit.broken.is_none() && !report.problems.is_empty();
    Ok(report)
}
