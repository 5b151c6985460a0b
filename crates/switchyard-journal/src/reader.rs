//! Reading a journal: [`JournalReader`], [`ReadFilter`], the lending [`Cursor`] and the
//! owned [`Records`] iterator. Reading never modifies the files.

use std::fmt;
use std::fs::File;
use std::ops::{Bound, RangeBounds, RangeInclusive};
use std::path::{Path, PathBuf};

use serde::Serialize;
use switchyard::{Pattern, Timestamp, TopicError};

use crate::codec::{FrameMeta, OwnedRecord, Record};
use crate::error::JournalError;
use crate::segment::{self, Opened, Scanner, Step, TornTail};

/// Which records to read. The default reads everything. Ranges are inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadFilter {
    /// Journal index range.
    pub index: RangeInclusive<u64>,
    /// Envelope sequence range.
    pub seq: RangeInclusive<u64>,
    /// Timestamp range.
    pub time: RangeInclusive<Timestamp>,
    /// Topic patterns; a record matches if any matches. Empty: every topic.
    pub topics: Vec<Pattern>,
}

impl Default for ReadFilter {
    fn default() -> Self {
        ReadFilter {
            index: 0..=u64::MAX,
            seq: 0..=u64::MAX,
            time: Timestamp(0)..=Timestamp(u64::MAX),
            topics: Vec::new(),
        }
    }
}

fn inclusive(r: &impl RangeBounds<u64>) -> RangeInclusive<u64> {
    let lo = match r.start_bound() {
        Bound::Included(&a) => Some(a),
        Bound::Excluded(&a) => a.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let hi = match r.end_bound() {
        Bound::Included(&b) => Some(b),
        Bound::Excluded(&b) => b.checked_sub(1),
        Bound::Unbounded => Some(u64::MAX),
    };
    match (lo, hi) {
        (Some(lo), Some(hi)) => lo..=hi,
        // An empty range.
        _ => RangeInclusive::new(1, 0),
    }
}

impl ReadFilter {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only journal indexes in `r`.
    pub fn index(mut self, r: impl RangeBounds<u64>) -> Self {
        self.index = inclusive(&r);
        self
    }

    /// Only envelope sequence numbers in `r`.
    pub fn seq(mut self, r: impl RangeBounds<u64>) -> Self {
        self.seq = inclusive(&r);
        self
    }

    /// Only timestamps in `r`.
    pub fn time(mut self, r: impl RangeBounds<Timestamp>) -> Self {
        let map = |b: Bound<&Timestamp>| b.map(|t| t.0);
        let r = inclusive(&(map(r.start_bound()), map(r.end_bound())));
        self.time = Timestamp(*r.start())..=Timestamp(*r.end());
        self
    }

    /// Also match topic `pattern` (NATS wildcards `*` and `>`).
    pub fn topic(mut self, pattern: &str) -> Result<Self, TopicError> {
        self.topics.push(Pattern::new(pattern)?);
        Ok(self)
    }

    /// Does `r` pass?
    pub fn matches(&self, r: &Record<'_>) -> bool {
        self.matches_parts(r.index, r.seq, r.ts.0, r.topic)
    }

    #[inline]
    fn matches_meta(&self, m: &FrameMeta, topic: &str) -> bool {
        self.matches_parts(m.index, m.seq, m.ts, topic)
    }

    #[inline]
    fn matches_parts(&self, index: u64, seq: u64, ts: u64, topic: &str) -> bool {
        self.index.contains(&index)
            && self.seq.contains(&seq)
            && self.time.contains(&Timestamp(ts))
            && (self.topics.is_empty() || self.topics.iter().any(|p| p.matches_str(topic)))
    }
}

/// What [`JournalReader::open`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReaderReport {
    /// The directory.
    pub dir: PathBuf,
    /// Segment files.
    pub segments: usize,
    /// Index of the last valid record (0 if none).
    pub last_index: u64,
    /// The torn tail of the last segment, where reading stops (not modified).
    pub torn_tail: Option<TornTail>,
}

impl fmt::Display for ReaderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "journal {}: {} segment(s), last record #{}",
            self.dir.display(),
            self.segments,
            self.last_index
        )?;
        if let Some(t) = &self.torn_tail {
            write!(f, "; {t}")?;
        }
        Ok(())
    }
}

/// A journal open for reading. Never modifies the files: a torn tail is reported (see
/// [`JournalReader::report`]) and reading stops there.
#[derive(Clone, Debug)]
pub struct JournalReader {
    dir: PathBuf,
    segments: Vec<(u64, PathBuf)>,
    report: ReaderReport,
}

impl JournalReader {
    /// Open the journal in `dir`. Checks the last segment (to report a torn tail) but not
    /// the others: damage there shows up as an error while reading.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, JournalError> {
        let dir = dir.as_ref().to_path_buf();
        let segments = segment::list_segments(&dir)?;
        let Some((first, path)) = segments.last() else {
            return Err(JournalError::Empty { path: dir });
        };
        let sum = segment::scan_file(path, *first, true, |_, _| {})?;
        let report = ReaderReport {
            dir: dir.clone(),
            segments: segments.len(),
            last_index: sum.last_index.unwrap_or(first.saturating_sub(1)),
            torn_tail: sum.torn_tail,
        };
        Ok(JournalReader {
            dir,
            segments,
            report,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What open found.
    pub fn report(&self) -> &ReaderReport {
        &self.report
    }

    /// The segment files with their first indexes, in order.
    pub fn segments(&self) -> &[(u64, PathBuf)] {
        &self.segments
    }

    /// A lending cursor over the records that pass `filter`, in journal order.
    pub fn cursor(&self, filter: ReadFilter) -> Cursor<'_> {
        Cursor {
            reader: self,
            filter,
            next_seg: 0,
            scanner: None,
            expected_first: None,
            tail: None,
        }
    }

    /// An iterator of owned records that pass `filter`. Ends after the first error.
    pub fn records(&self, filter: ReadFilter) -> Records<'_> {
        Records {
            cursor: self.cursor(filter),
        }
    }
}

/// Reads records in place from large buffers: [`Cursor::next`] lends each record until
/// the next call. No allocation per record.
pub struct Cursor<'r> {
    reader: &'r JournalReader,
    filter: ReadFilter,
    next_seg: usize,
    scanner: Option<Scanner<File>>,
    expected_first: Option<u64>,
    tail: Option<TornTail>,
}

impl fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cursor")
            .field("dir", &self.reader.dir)
            .field("segment", &self.next_seg)
            .finish()
    }
}

impl Cursor<'_> {
    /// The torn tail where reading stopped, once reached.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.tail.as_ref()
    }

    fn stop(&mut self) {
        self.scanner = None;
        self.next_seg = self.reader.segments.len();
    }

    /// Open the next segment that may hold wanted records. `Ok(false)` at the end.
    fn open_next(&mut self) -> Result<bool, JournalError> {
        let segs = &self.reader.segments;
        while self.next_seg < segs.len() {
            let i = self.next_seg;
            self.next_seg += 1;
            let (first, path) = &segs[i];
            let last = i + 1 == segs.len();
            let end = if last {
                u64::MAX
            } else {
                segs[i + 1].0.saturating_sub(1)
            };
            if end < *self.filter.index.start() || *first > *self.filter.index.end() {
                self.expected_first = None;
                continue;
            }
            if let Some(expected) = self.expected_first
                && expected != *first
            {
                return Err(JournalError::SegmentGap {
                    path: path.clone(),
                    expected,
                    found: *first,
                });
            }
            match Scanner::open(path, *first, last)? {
                Opened::Ready(s) => {
                    self.scanner = Some(s);
                    return Ok(true);
                }
                Opened::TornHeader(t) => {
                    self.tail = Some(t);
                    return Ok(false);
                }
            }
        }
        Ok(false)
    }

    /// The next record that passes the filter, `None` at the end (or at a torn tail),
    /// or an error naming segment and offset (after which the cursor ends).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Record<'_>, JournalError>> {
        loop {
            if self.scanner.is_none() {
                match self.open_next() {
                    Ok(true) => {}
                    Ok(false) => {
                        self.stop();
                        return None;
                    }
                    Err(e) => {
                        self.stop();
                        return Some(Err(e));
                    }
                }
            }
            let sc = self.scanner.as_mut()?;
            match sc.next() {
                Err(e) => {
                    self.stop();
                    return Some(Err(e));
                }
                Ok(Step::End) => {
                    self.expected_first = Some(sc.next_index());
                    self.scanner = None;
                }
                Ok(Step::Tail(t)) => {
                    self.tail = Some(t);
                    self.stop();
                    return None;
                }
                Ok(Step::Frame { meta, pos, .. }) => {
                    if meta.index > *self.filter.index.end() {
                        self.stop();
                        return None;
                    }
                    if self.filter.matches_meta(&meta, sc.topic(&meta, pos)) {
                        let sc = self.scanner.as_ref()?;
                        return Some(Ok(sc.record(&meta, pos)));
                    }
                }
            }
        }
    }
}

/// Owned records; see [`JournalReader::records`].
#[derive(Debug)]
pub struct Records<'r> {
    cursor: Cursor<'r>,
}

impl Records<'_> {
    /// The torn tail where reading stopped, once reached.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.cursor.torn_tail()
    }
}

impl Iterator for Records<'_> {
    type Item = Result<OwnedRecord, JournalError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.cursor
            .next()
            .map(|r| r.map(|rec| rec.to_owned_record()))
    }
}
