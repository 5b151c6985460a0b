//! Replay of several recorded files, merged in event-time order.
//!
//! # Contract
//!
//! - **Order.** Events come out by `ts_event`, non-decreasing. Ties are broken by the
//!   order in which the files were given, then by line number, so a replay is
//!   deterministic. Each file must itself be in time order; a line that goes back in
//!   time is a bad line ([`ParseErrorKind::OutOfOrder`](super::parse::ParseErrorKind::OutOfOrder)).
//! - **Memory.** A k-way merge over a [`BinaryHeap`] holding at most one pending event
//!   per file; files are read line by line.
//! - **Bad lines** follow the [`BadLinePolicy`]: `Fail` yields the first error and then
//!   ends; `Skip` drops the line, counts it and keeps the first
//!   [`ReplayOptions::max_errors_kept`] errors per file in the [`ReplaySummary`].
//!   Errors that make a file unreadable (unopenable file, bad header, I/O error) fail
//!   under both policies: [`ReplaySource::open`] returns header errors, and an I/O error
//!   mid-file is yielded and ends the replay.
//! - **Summary.** Per file: data lines read (blank lines are not counted), events yielded,
//!   lines skipped. Under `Skip`, at the end, `lines_read == events + skipped`.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard::Timestamp;

use super::parse::{CsvReader, FileSpec, Layout, ParseError};
use crate::model::MarketEvent;

/// What to do with a line that does not parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadLinePolicy {
    /// Skip it, count it, keep the first errors in the summary.
    Skip,
    /// Stop the replay with its error (the default: fail safe).
    #[default]
    Fail,
}

/// Replay settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayOptions {
    /// What to do with bad lines.
    pub policy: BadLinePolicy,
    /// How many errors to keep per file under `Skip`.
    pub max_errors_kept: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            policy: BadLinePolicy::Fail,
            max_errors_kept: 10,
        }
    }
}

impl ReplayOptions {
    /// Skip bad lines, keeping the first 10 errors per file.
    pub fn skip() -> Self {
        ReplayOptions {
            policy: BadLinePolicy::Skip,
            ..Self::default()
        }
    }
}

/// What happened to one file.
#[derive(Debug)]
pub struct FileSummary {
    /// The file.
    pub path: Arc<Path>,
    /// Its layout.
    pub layout: Layout,
    /// Non-blank data lines read (header excluded).
    pub lines_read: u64,
    /// Events yielded.
    pub events: u64,
    /// Bad lines skipped.
    pub skipped: u64,
    /// The first skipped lines' errors.
    pub errors: Vec<ParseError>,
}

/// What happened to every file of a replay, in the order given.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    /// One entry per file.
    pub files: Vec<FileSummary>,
}

impl ReplaySummary {
    /// Events yielded from all files.
    pub fn events(&self) -> u64 {
        self.files.iter().map(|f| f.events).sum()
    }

    /// Lines skipped in all files.
    pub fn skipped(&self) -> u64 {
        self.files.iter().map(|f| f.skipped).sum()
    }
}

/// The merge key of a file's next event (the event itself waits in its file's slot:
/// the heap moves only keys).
struct Pending {
    ts: Timestamp,
    file: usize,
    line: u64,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.ts, self.file, self.line).cmp(&(other.ts, other.file, other.line))
    }
}

/// Market events from several files, merged in time order. An iterator of
/// `Result<MarketEvent, ParseError>`.
pub struct ReplaySource<R = BufReader<File>> {
    readers: Vec<CsvReader<R>>,
    /// Each file's next event, while its key is in `heap`.
    next: Vec<Option<MarketEvent>>,
    heap: BinaryHeap<Reverse<Pending>>,
    summary: ReplaySummary,
    options: ReplayOptions,
    primed: bool,
    pending_error: Option<ParseError>,
    finished: bool,
}

impl ReplaySource<BufReader<File>> {
    /// Opens every file and reads its header. Fails on the first file that cannot be
    /// opened or whose header is not a known layout.
    pub fn open(
        files: impl IntoIterator<Item = FileSpec>,
        options: ReplayOptions,
    ) -> Result<Self, ParseError> {
        let readers = files
            .into_iter()
            .map(|spec| CsvReader::open(&spec.path, &spec.options))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ReplaySource::from_readers(readers, options))
    }
}

impl<R: BufRead> ReplaySource<R> {
    /// A replay over readers already opened (e.g. in memory).
    pub fn from_readers(readers: Vec<CsvReader<R>>, options: ReplayOptions) -> Self {
        let summary = ReplaySummary {
            files: readers
                .iter()
                .map(|r| FileSummary {
                    path: r.path().clone(),
                    layout: r.layout(),
                    lines_read: 0,
                    events: 0,
                    skipped: 0,
                    errors: Vec::new(),
                })
                .collect(),
        };
        ReplaySource {
            next: readers.iter().map(|_| None).collect(),
            readers,
            heap: BinaryHeap::new(),
            summary,
            options,
            primed: false,
            pending_error: None,
            finished: false,
        }
    }

    /// The summary so far (complete once the iterator has ended).
    pub fn summary(&self) -> &ReplaySummary {
        &self.summary
    }

    /// The summary, consuming the source.
    pub fn into_summary(self) -> ReplaySummary {
        self.summary
    }

    /// Reads file `i` up to its next good event, puts it in the file's slot and returns
    /// its key, for the caller to queue; `None` at the file's end.
    fn refill(&mut self, i: usize) -> Result<Option<Pending>, ParseError> {
        loop {
            match self.readers[i].next_event() {
                None => return Ok(None),
                Some(Ok(event)) => {
                    self.summary.files[i].lines_read += 1;
                    let key = Pending {
                        ts: event.ts_event(),
                        file: i,
                        line: self.readers[i].line(),
                    };
                    self.next[i] = Some(event);
                    return Ok(Some(key));
                }
                Some(Err(e)) => {
                    if e.is_fatal() || self.options.policy == BadLinePolicy::Fail {
                        if !e.is_fatal() {
                            self.summary.files[i].lines_read += 1;
                        }
                        return Err(e);
                    }
                    let file = &mut self.summary.files[i];
                    file.lines_read += 1;
                    file.skipped += 1;
                    tracing::debug!(error = %e, "replay: skipped a bad line");
                    if file.errors.len() < self.options.max_errors_kept {
                        file.errors.push(e);
                    }
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for ReplaySource<R> {
    type Item = Result<MarketEvent, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if let Some(e) = self.pending_error.take() {
            self.finished = true;
            return Some(Err(e));
        }
        if !self.primed {
            self.primed = true;
            for i in 0..self.readers.len() {
                match self.refill(i) {
                    Ok(Some(key)) => self.heap.push(Reverse(key)),
                    Ok(None) => {}
                    Err(e) => {
                        self.finished = true;
                        return Some(Err(e));
                    }
                }
            }
        }
        let Some(Reverse(next)) = self.heap.peek() else {
            self.finished = true;
            return None;
        };
        let file = next.file;
        let event = self.next[file].take().expect("a queued key has its event");
        self.summary.files[file].events += 1;
        match self.refill(file) {
            // The file's next key takes the place of the one just served: one sift
            // instead of a pop and a push.
            Ok(Some(key)) => {
                if let Some(mut top) = self.heap.peek_mut() {
                    *top = Reverse(key);
                }
            }
            Ok(None) => {
                self.heap.pop();
            }
            Err(e) => {
                self.heap.pop();
                // Yield the good event first; the error comes next and ends the replay.
                self.pending_error = Some(e);
            }
        }
        Some(Ok(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::parse::FileOptions;

    fn reader(name: &str, data: &'static str) -> CsvReader<&'static [u8]> {
        CsvReader::new(data.as_bytes(), name, &FileOptions::default()).unwrap()
    }

    #[test]
    fn merges_with_stable_tie_break() {
        let a = reader("a_X.csv", "timestamp,bid,ask\n1,1,2\n3,1,2\n3,1,3\n");
        let b = reader("b_Y.csv", "timestamp,bid,ask\n0,5,6\n3,5,6\n4,5,6\n");
        let out: Vec<_> = ReplaySource::from_readers(vec![a, b], ReplayOptions::default())
            .map(|e| {
                let e = e.unwrap();
                (
                    e.ts_event().as_nanos() / 1000,
                    e.instrument().symbol.to_string(),
                    e.mark_price().to_string(),
                )
            })
            .collect();
        let got: Vec<(u64, &str, &str)> = out
            .iter()
            .map(|(t, s, p)| (*t, s.as_str(), p.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "Y", "5.5"),
                (1, "X", "1.5"),
                (3, "X", "1.5"),
                (3, "X", "2"),
                (3, "Y", "5.5"),
                (4, "Y", "5.5")
            ]
        );
    }

    #[test]
    fn fail_yields_good_events_then_the_error() {
        let a = reader("a_X.csv", "timestamp,bid,ask\n1,1,2\n2,x,2\n3,1,2\n");
        let mut src = ReplaySource::from_readers(vec![a], ReplayOptions::default());
        assert!(src.next().unwrap().is_ok());
        let e = src.next().unwrap().unwrap_err();
        assert_eq!(
            e.to_string(),
            "a_X.csv:3: column 'bid': invalid number \"x\""
        );
        assert!(src.next().is_none());
    }
}
