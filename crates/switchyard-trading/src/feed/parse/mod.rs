//! Streaming CSV parsers for recorded market data.
//!
//! # Layouts
//!
//! The layout is detected from the header, and columns are mapped by **name**, not by
//! position (extra columns are ignored, order does not matter):
//!
//! | layout | detected by | required | optional |
//! |---|---|---|---|
//! | [`Layout::TardisTrades`] | `price` and `amount` | `timestamp`, `price`, `amount` | `exchange`, `symbol`, `local_timestamp`, `id`, `side` |
//! | [`Layout::TardisQuotes`] | `ask_price` and `bid_price` | `timestamp`, `ask_price`, `bid_price` | `exchange`, `symbol`, `local_timestamp`, `ask_amount`, `bid_amount` |
//! | [`Layout::TimestampBidAsk`] | `bid` and `ask` | `timestamp`, `bid`, `ask` | `exchange`, `symbol` |
//!
//! - **Timestamps**: an all-digit value is microseconds since the Unix epoch (the Tardis
//!   convention); anything else must be ISO-8601, `YYYY-MM-DD[T ]HH:MM:SS[.fraction]`
//!   with an optional `Z` or `±HH:MM` offset (none means UTC), e.g.
//!   `2013-01-01 22:00:00.295000+00:00`. A missing `local_timestamp` means "received at
//!   the event time".
//! - **Numbers** are exact decimals ([`crate::num`]); prices and sizes must be positive.
//!   An `amount` may be an integer. A trade `id` is kept as text (it may be a UUID).
//! - `side` is `buy`/`sell` (any case); `unknown` or empty means no aggressor.
//! - **Instrument**: from the `exchange`/`symbol` columns if present; otherwise from
//!   [`FileOptions`]; otherwise from the file name `<venue>_<SYMBOL>[_anything].csv`
//!   (`truefx_USDJPY_ticks.csv` → `USDJPY` on `truefx`; a name without `_` gives the
//!   symbol, on venue `unknown`). [`FileOptions`] override the columns too.
//! - Fields are split on `,`; quoted fields are not supported (none of these layouts
//!   needs them). A trailing `\r` is ignored; blank lines are skipped and not counted.
//! - Event timestamps must not go backwards within a file: a line that does is an error
//!   ([`ParseErrorKind::OutOfOrder`]), which keeps a merged replay ordered.
//!
//! # Errors
//!
//! Every error is a [`ParseError`] naming the file, the 1-based line and what is wrong,
//! e.g. `testdata/x.csv:17: column 'price': invalid number "abc"`. The underlying
//! cause (a [`ParseNumError`], an `io::Error`) is kept as `source()`. After an I/O error
//! ([`ParseError::is_fatal`]) the reader yields nothing more; after a bad line it goes
//! on with the next one, and the caller decides (see [`super::replay::BadLinePolicy`]).
//!
//! The reader is streaming: each line is parsed in place in the reader's buffer (a line
//! that spans a refill is gathered in a reused one), as bytes; text is made only for what
//! an event keeps (a trade id, a new instrument) and for errors.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard::Timestamp;

use crate::model::{MarketEvent, Symbol, Venue};
use crate::num::ParseNumError;

mod header;
mod line;
mod timestamp;

use header::Header;
use line::{Line, LineParser};

/// A file layout, detected from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Tardis.dev trades: `exchange,symbol,timestamp,local_timestamp,id,side,price,amount`.
    TardisTrades,
    /// Tardis.dev top of book: `exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount`.
    TardisQuotes,
    /// Quotes without sizes: `timestamp,bid,ask`.
    TimestampBidAsk,
}

/// Per-file settings for files that do not name their instrument.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOptions {
    /// The venue, overriding any `exchange` column.
    pub venue: Option<Venue>,
    /// The symbol, overriding any `symbol` column.
    pub symbol: Option<Symbol>,
}

/// A parse failure: where, and what.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {kind}", path.display())]
pub struct ParseError {
    /// The file, as it was given.
    pub path: Arc<Path>,
    /// 1-based line number (the header is line 1).
    pub line: u64,
    /// What is wrong.
    #[source]
    pub kind: ParseErrorKind,
}

impl ParseError {
    /// `true` if reading cannot go on (I/O error); `false` for one bad line.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.kind,
            ParseErrorKind::Io(_)
                | ParseErrorKind::EmptyFile
                | ParseErrorKind::UnknownLayout { .. }
                | ParseErrorKind::MissingHeaderColumn { .. }
                | ParseErrorKind::NoInstrument
        )
    }
}

/// What is wrong with a file or a line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Reading failed.
    #[error("read error")]
    Io(#[source] io::Error),
    /// The file has no header line.
    #[error("empty file, expected a header")]
    EmptyFile,
    /// The header matches no known layout.
    #[error("unknown layout, header {header:?}")]
    UnknownLayout {
        /// The header line.
        header: String,
    },
    /// The header lacks a column the layout needs.
    #[error("header: missing column '{column}'")]
    MissingHeaderColumn {
        /// The column.
        column: &'static str,
    },
    /// The layout has no symbol column and none was configured or found in the file name.
    #[error("no instrument: no symbol column, no configured symbol, no symbol in the file name")]
    NoInstrument,
    /// The line has fewer fields than the header.
    #[error("column '{column}' missing: {found} of {expected} fields")]
    MissingField {
        /// The first missing column.
        column: String,
        /// Fields in the header.
        expected: usize,
        /// Fields in the line.
        found: usize,
    },
    /// The line has more fields than the header.
    #[error("{found} fields, header has {expected}")]
    TooManyFields {
        /// Fields in the header.
        expected: usize,
        /// Fields in the line.
        found: usize,
    },
    /// A number does not parse.
    #[error("column '{column}': invalid number {value:?}")]
    InvalidNumber {
        /// The column.
        column: &'static str,
        /// The text.
        value: String,
        /// Why.
        #[source]
        source: ParseNumError,
    },
    /// A price or size is zero or negative.
    #[error("column '{column}': {value:?} is not positive")]
    NotPositive {
        /// The column.
        column: &'static str,
        /// The text.
        value: String,
    },
    /// A timestamp does not parse.
    #[error("column '{column}': invalid timestamp {value:?} ({reason})")]
    InvalidTimestamp {
        /// The column.
        column: &'static str,
        /// The text.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A side is not `buy`, `sell`, `unknown` or empty.
    #[error("column '{column}': invalid side {value:?}")]
    InvalidSide {
        /// The column.
        column: &'static str,
        /// The text.
        value: String,
    },
    /// A required field is empty.
    #[error("column '{column}': empty")]
    EmptyField {
        /// The column.
        column: &'static str,
    },
    /// The event time is earlier than the previous line's.
    #[error("timestamp {found} is before the previous event's {previous}")]
    OutOfOrder {
        /// The previous event time.
        previous: Timestamp,
        /// This line's event time.
        found: Timestamp,
    },
}

/// `$reader.fill_buf()?`, retried while interrupted (as `read_line` does).
macro_rules! fill_buf {
    ($reader:expr) => {
        loop {
            match $reader.fill_buf() {
                Ok(available) => break available,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    };
}
/// Reads market events from one CSV file, line by line.
#[derive(Debug)]
pub struct CsvReader<R> {
    reader: R,
    path: Arc<Path>,
    parser: LineParser,
    line: u64,
    /// A line that spans refills of the reader's buffer, gathered here (most lines are
    /// parsed in the reader's buffer, where they are).
    carry: Vec<u8>,
    done: bool,
}

impl CsvReader<BufReader<File>> {
    /// Opens `path` and reads its header.
    pub fn open(path: impl AsRef<Path>, options: &FileOptions) -> Result<Self, ParseError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| ParseError {
            path: Arc::from(path),
            line: 0,
            kind: ParseErrorKind::Io(e),
        })?;
        CsvReader::new(BufReader::with_capacity(64 * 1024, file), path, options)
    }
}

impl<R: BufRead> CsvReader<R> {
    /// Reads the header from `reader`; `path` names the source in errors and is used for
    /// the file-name instrument rule.
    pub fn new(
        mut reader: R,
        path: impl AsRef<Path>,
        options: &FileOptions,
    ) -> Result<Self, ParseError> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        let err = |kind| ParseError {
            path: path.clone(),
            line: 1,
            kind,
        };
        let mut buf = String::new();
        let n = reader
            .read_line(&mut buf)
            .map_err(|e| err(ParseErrorKind::Io(e)))?;
        if n == 0 || buf.trim().is_empty() {
            return Err(err(ParseErrorKind::EmptyFile));
        }
        let header = Header::parse(&buf, &path, options).map_err(err)?;
        Ok(CsvReader {
            reader,
            path,
            parser: LineParser::new(header),
            line: 1,
            carry: Vec::new(),
            done: false,
        })
    }

    /// The detected layout.
    pub fn layout(&self) -> Layout {
        self.parser.header.layout
    }

    /// The file's path, as given.
    pub fn path(&self) -> &Arc<Path> {
        &self.path
    }

    /// The number of the last line read (1 after the header).
    pub fn line(&self) -> u64 {
        self.line
    }

    fn error(&self, kind: ParseErrorKind) -> ParseError {
        ParseError {
            path: self.path.clone(),
            line: self.line,
            kind,
        }
    }

    /// The next event, or the error of the next bad line; `None` at the end (and after
    /// a fatal error).
    pub fn next_event(&mut self) -> Option<Result<MarketEvent, ParseError>> {
        loop {
            if self.done {
                return None;
            }
            let line = match self.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    self.line += 1;
                    return Some(Err(self.error(ParseErrorKind::Io(e))));
                }
            };
            self.line += 1;
            match line {
                Line::Blank => continue,
                Line::NotUtf8(e) => {
                    self.done = true;
                    return Some(Err(self.error(ParseErrorKind::Io(e))));
                }
                Line::Parsed(result) => return Some(result.map_err(|kind| self.error(kind))),
            }
        }
    }

    /// Reads and parses the next line: in the reader's buffer when all of it is there,
    /// else gathered in `carry` first. `None` at the end of the input.
    #[inline]
    fn next_line(&mut self) -> io::Result<Option<Line>> {
        let available = fill_buf!(self.reader);
        if available.is_empty() {
            return Ok(None);
        }
        if let Some((line, used)) = self.parser.next(available, false) {
            self.reader.consume(used);
            return Ok(Some(line));
        }
        self.next_line_across_refills()
    }

    /// The rare case of [`Self::next_line`]: the line goes on past the reader's buffer.
    #[cold]
    fn next_line_across_refills(&mut self) -> io::Result<Option<Line>> {
        self.carry.clear();
        loop {
            let available = fill_buf!(self.reader);
            if available.is_empty() {
                let (line, _) = self.parser.next(&self.carry, true).expect("at the end");
                return Ok(Some(line));
            }
            match available.iter().position(|&c| c == b'\n') {
                Some(i) => {
                    self.carry.extend_from_slice(&available[..=i]);
                    self.reader.consume(i + 1);
                    let (line, _) = self.parser.next(&self.carry, true).expect("a whole line");
                    return Ok(Some(line));
                }
                None => {
                    let n = available.len();
                    self.carry.extend_from_slice(available);
                    self.reader.consume(n);
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for CsvReader<R> {
    type Item = Result<MarketEvent, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event()
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Layout::TardisTrades => "tardis-trades",
            Layout::TardisQuotes => "tardis-quotes",
            Layout::TimestampBidAsk => "timestamp-bid-ask",
        })
    }
}

/// A file to read, with its options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// The file.
    pub path: PathBuf,
    /// Instrument overrides.
    #[serde(default)]
    pub options: FileOptions,
}

impl FileSpec {
    /// A file with default options.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSpec {
            path: path.into(),
            options: FileOptions::default(),
        }
    }
}

#[cfg(test)]
mod tests;
