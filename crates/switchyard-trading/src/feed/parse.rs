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
//! The reader is streaming: it reads one line at a time into a reused buffer.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard::Timestamp;

use crate::model::{InstrumentId, MarketEvent, Quote, Side, Symbol, Trade, Venue};
use crate::num::{ParseNumError, Price, Quantity};

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

/// The columns the parsers know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Exchange,
    Symbol,
    Timestamp,
    LocalTimestamp,
    Id,
    Side,
    Price,
    Amount,
    AskAmount,
    AskPrice,
    BidPrice,
    BidAmount,
    Bid,
    Ask,
}

const N_COLS: usize = 14;
const ALL_COLS: [Col; N_COLS] = [
    Col::Exchange,
    Col::Symbol,
    Col::Timestamp,
    Col::LocalTimestamp,
    Col::Id,
    Col::Side,
    Col::Price,
    Col::Amount,
    Col::AskAmount,
    Col::AskPrice,
    Col::BidPrice,
    Col::BidAmount,
    Col::Bid,
    Col::Ask,
];

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::Exchange => "exchange",
            Col::Symbol => "symbol",
            Col::Timestamp => "timestamp",
            Col::LocalTimestamp => "local_timestamp",
            Col::Id => "id",
            Col::Side => "side",
            Col::Price => "price",
            Col::Amount => "amount",
            Col::AskAmount => "ask_amount",
            Col::AskPrice => "ask_price",
            Col::BidPrice => "bid_price",
            Col::BidAmount => "bid_amount",
            Col::Bid => "bid",
            Col::Ask => "ask",
        }
    }
}

impl Layout {
    fn required(self) -> &'static [Col] {
        match self {
            Layout::TardisTrades => &[Col::Timestamp, Col::Price, Col::Amount],
            Layout::TardisQuotes => &[Col::Timestamp, Col::AskPrice, Col::BidPrice],
            Layout::TimestampBidAsk => &[Col::Timestamp, Col::Bid, Col::Ask],
        }
    }

    fn uses(self, c: Col) -> bool {
        let extra: &[Col] = match self {
            Layout::TardisTrades => &[
                Col::Exchange,
                Col::Symbol,
                Col::LocalTimestamp,
                Col::Id,
                Col::Side,
            ],
            Layout::TardisQuotes => &[
                Col::Exchange,
                Col::Symbol,
                Col::LocalTimestamp,
                Col::AskAmount,
                Col::BidAmount,
            ],
            Layout::TimestampBidAsk => &[Col::Exchange, Col::Symbol, Col::LocalTimestamp],
        };
        self.required().contains(&c) || extra.contains(&c)
    }
}

/// Reads market events from one CSV file, line by line.
#[derive(Debug)]
pub struct CsvReader<R> {
    reader: R,
    path: Arc<Path>,
    layout: Layout,
    /// For each field position in a line, the known column it holds.
    by_position: Vec<Option<Col>>,
    /// Header names, for error messages.
    header: Vec<String>,
    /// Whether each known column is present.
    present: [bool; N_COLS],
    /// Instrument fixed by options or file name (when no columns give it).
    fixed_venue: Option<Venue>,
    fixed_symbol: Option<Symbol>,
    /// The last instrument built, reused while lines repeat it.
    cached: Option<InstrumentId>,
    line: u64,
    buf: String,
    last_ts: Option<Timestamp>,
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

fn col_index(c: Col) -> usize {
    c as usize
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
        let err = |line, kind| ParseError {
            path: path.clone(),
            line,
            kind,
        };
        let mut buf = String::new();
        let n = reader
            .read_line(&mut buf)
            .map_err(|e| err(1, ParseErrorKind::Io(e)))?;
        if n == 0 || buf.trim().is_empty() {
            return Err(err(1, ParseErrorKind::EmptyFile));
        }
        let header_line = buf
            .trim_start_matches('\u{feff}')
            .trim_end_matches(['\n', '\r']);
        let header: Vec<String> = header_line
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        let has = |name: &str| header.iter().any(|h| h == name);
        let layout = if has("price") && has("amount") {
            Layout::TardisTrades
        } else if has("ask_price") && has("bid_price") {
            Layout::TardisQuotes
        } else if has("bid") && has("ask") {
            Layout::TimestampBidAsk
        } else {
            return Err(err(
                1,
                ParseErrorKind::UnknownLayout {
                    header: header_line.to_string(),
                },
            ));
        };
        let mut present = [false; N_COLS];
        let by_position: Vec<Option<Col>> = header
            .iter()
            .map(|h| {
                let col = ALL_COLS
                    .iter()
                    .copied()
                    .find(|c| c.name() == h && layout.uses(*c))?;
                if present[col_index(col)] {
                    return None; // a duplicate column: the first one wins
                }
                present[col_index(col)] = true;
                Some(col)
            })
            .collect();
        for &c in layout.required() {
            if !present[col_index(c)] {
                return Err(err(
                    1,
                    ParseErrorKind::MissingHeaderColumn { column: c.name() },
                ));
            }
        }
        // Instrument from options, else from the file name when columns are missing.
        let (name_venue, name_symbol) = instrument_from_file_name(&path);
        let fixed_venue = options
            .venue
            .clone()
            .or_else(|| {
                (!present[col_index(Col::Exchange)])
                    .then(|| name_venue.map(Venue::new))
                    .flatten()
            })
            .or_else(|| (!present[col_index(Col::Exchange)]).then(|| Venue::new("unknown")));
        let fixed_symbol = options.symbol.clone().or_else(|| {
            (!present[col_index(Col::Symbol)])
                .then(|| name_symbol.map(Symbol::new))
                .flatten()
        });
        if fixed_symbol.is_none() && !present[col_index(Col::Symbol)] {
            return Err(err(1, ParseErrorKind::NoInstrument));
        }
        buf.clear();
        Ok(CsvReader {
            reader,
            path,
            layout,
            by_position,
            header,
            present,
            fixed_venue,
            fixed_symbol,
            cached: None,
            line: 1,
            buf,
            last_ts: None,
            done: false,
        })
    }

    /// The detected layout.
    pub fn layout(&self) -> Layout {
        self.layout
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
            self.buf.clear();
            match self.reader.read_line(&mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    self.line += 1;
                    return Some(Err(self.error(ParseErrorKind::Io(e))));
                }
            }
            self.line += 1;
            if self.buf.trim().is_empty() {
                continue;
            }
            let buf = std::mem::take(&mut self.buf);
            let result = self.parse_line(buf.trim_end_matches(['\n', '\r']));
            self.buf = buf;
            return Some(result.map_err(|kind| self.error(kind)));
        }
    }

    fn parse_line(&mut self, line: &str) -> Result<MarketEvent, ParseErrorKind> {
        let mut vals: [&str; N_COLS] = [""; N_COLS];
        let mut found = 0usize;
        // Fields split at the commas `commas` finds eight bytes at a time; trimmed only
        // when an edge is whitespace.
        let mut start = 0usize;
        let mut take = |end: usize| {
            if let Some(Some(col)) = self.by_position.get(found) {
                // `start..end` lies between ASCII commas (or the ends): char boundaries.
                vals[col_index(*col)] = trim_field(&line[start..end]);
            }
            found += 1;
            start = end + 1;
        };
        commas(line.as_bytes(), &mut take);
        take(line.len());
        let expected = self.by_position.len();
        if found < expected {
            return Err(ParseErrorKind::MissingField {
                column: self.header[found].clone(),
                expected,
                found,
            });
        }
        if found > expected {
            return Err(ParseErrorKind::TooManyFields { expected, found });
        }
        let get = |c: Col| vals[col_index(c)];
        let present = self.present;
        let opt = |c: Col| {
            let v = vals[col_index(c)];
            (present[col_index(c)] && !v.is_empty()).then_some(v)
        };

        let ts_event = parse_timestamp(Col::Timestamp.name(), get(Col::Timestamp))?;
        let ts_recv = match opt(Col::LocalTimestamp) {
            Some(v) => parse_timestamp(Col::LocalTimestamp.name(), v)?,
            None => ts_event,
        };
        let event = match self.layout {
            Layout::TardisTrades => {
                let price: Price = parse_positive(Col::Price, get(Col::Price))?;
                let size: Quantity = parse_positive(Col::Amount, get(Col::Amount))?;
                let aggressor = match opt(Col::Side) {
                    None => None,
                    Some(v) if v.eq_ignore_ascii_case("buy") => Some(Side::Buy),
                    Some(v) if v.eq_ignore_ascii_case("sell") => Some(Side::Sell),
                    Some(v) if v.eq_ignore_ascii_case("unknown") => None,
                    Some(v) => {
                        return Err(ParseErrorKind::InvalidSide {
                            column: Col::Side.name(),
                            value: v.to_string(),
                        });
                    }
                };
                MarketEvent::Trade(Trade {
                    instrument: self.instrument(get(Col::Exchange), get(Col::Symbol))?,
                    ts_event,
                    ts_recv,
                    price,
                    size,
                    aggressor,
                    trade_id: opt(Col::Id).unwrap_or_default().to_string(),
                })
            }
            Layout::TardisQuotes | Layout::TimestampBidAsk => {
                let (bid_col, ask_col) = if self.layout == Layout::TardisQuotes {
                    (Col::BidPrice, Col::AskPrice)
                } else {
                    (Col::Bid, Col::Ask)
                };
                let bid_price: Price = parse_positive(bid_col, get(bid_col))?;
                let ask_price: Price = parse_positive(ask_col, get(ask_col))?;
                let size = |c: Col| -> Result<Option<Quantity>, ParseErrorKind> {
                    opt(c).map(|v| parse_number(c, v)).transpose()
                };
                let bid_size = size(Col::BidAmount)?;
                let ask_size = size(Col::AskAmount)?;
                MarketEvent::Quote(Quote {
                    instrument: self.instrument(get(Col::Exchange), get(Col::Symbol))?,
                    ts_event,
                    ts_recv,
                    bid_price,
                    bid_size,
                    ask_price,
                    ask_size,
                })
            }
        };
        if let Some(previous) = self.last_ts
            && ts_event < previous
        {
            return Err(ParseErrorKind::OutOfOrder {
                previous,
                found: ts_event,
            });
        }
        self.last_ts = Some(ts_event);
        Ok(event)
    }

    fn instrument(&mut self, venue: &str, symbol: &str) -> Result<InstrumentId, ParseErrorKind> {
        let venue = self.fixed_venue.as_ref().map_or(venue, |v| v.as_str());
        let symbol = self.fixed_symbol.as_ref().map_or(symbol, |s| s.as_str());
        if let Some(id) = &self.cached
            && id.venue.as_str() == venue
            && id.symbol.as_str() == symbol
        {
            return Ok(id.clone());
        }
        if venue.is_empty() {
            return Err(ParseErrorKind::EmptyField {
                column: Col::Exchange.name(),
            });
        }
        if symbol.is_empty() {
            return Err(ParseErrorKind::EmptyField {
                column: Col::Symbol.name(),
            });
        }
        let id = InstrumentId::new(venue, symbol);
        self.cached = Some(id.clone());
        Ok(id)
    }
}

impl<R: BufRead> Iterator for CsvReader<R> {
    type Item = Result<MarketEvent, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event()
    }
}

fn instrument_from_file_name(path: &Path) -> (Option<String>, Option<String>) {
    let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
        return (None, None);
    };
    let stem = stem.strip_suffix(".csv").unwrap_or(stem);
    let parts: Vec<&str> = stem.split('_').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [] => (None, None),
        [symbol] => (None, Some(symbol.to_string())),
        [venue, symbol, ..] => (Some(venue.to_string()), Some(symbol.to_string())),
    }
}

/// Calls `at(i)` for the index `i` of every `,` in `b`, in order. Eight bytes at a time:
/// each byte of a word XORed with `,` is zero where a comma is, and the exact zero-byte
/// test (no borrow between bytes, so no false positives) marks those bytes' top bits.
#[inline]
fn commas(b: &[u8], mut at: impl FnMut(usize)) {
    const COMMAS: u64 = u64::from_ne_bytes([b','; 8]);
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut i = 0usize;
    while i + 8 <= b.len() {
        let word = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let x = word ^ COMMAS;
        let mut zero = !(((x & LOW7) + LOW7) | x | LOW7);
        while zero != 0 {
            at(i + (zero.trailing_zeros() / 8) as usize);
            zero &= zero - 1;
        }
        i += 8;
    }
    for (j, &c) in b[i..].iter().enumerate() {
        if c == b',' {
            at(i + j);
        }
    }
}

/// The value of eight ASCII digits (the first the most significant), or `None` if one
/// is not a digit: the digits checked and combined in pairs, fours and eights inside one
/// word (three multiplications instead of eight).
#[inline]
fn eight_digits(b: [u8; 8]) -> Option<u64> {
    let w = u64::from_le_bytes(b);
    // Each byte in 0x30..=0x39: its high nibble is 3, and adding 6 does not carry into it.
    let all_digits = (w & 0xf0f0_f0f0_f0f0_f0f0) == 0x3030_3030_3030_3030
        && ((w.wrapping_add(0x0606_0606_0606_0606)) & 0xf0f0_f0f0_f0f0_f0f0)
            == 0x3030_3030_3030_3030;
    if !all_digits {
        return None;
    }
    let v = w - 0x3030_3030_3030_3030;
    // Pairs: byte k holds digit k (little-endian), so 10 * d[2j] + d[2j+1].
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    // Fours, then eight.
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    let v = (v.wrapping_mul(10_000) + (v >> 32)) & 0x0000_0000_ffff_ffff;
    Some(v)
}

/// `v` without surrounding whitespace; the common case (none) costs two byte checks.
#[inline]
fn trim_field(v: &str) -> &str {
    let b = v.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) if f.is_ascii_whitespace() || l.is_ascii_whitespace() => v.trim(),
        // A non-ASCII edge may be Unicode whitespace, which `trim` also removes.
        (Some(f), Some(l)) if !f.is_ascii() || !l.is_ascii() => v.trim(),
        _ => v,
    }
}

fn parse_number<T: std::str::FromStr<Err = ParseNumError>>(
    col: Col,
    v: &str,
) -> Result<T, ParseErrorKind> {
    if v.is_empty() {
        return Err(ParseErrorKind::EmptyField { column: col.name() });
    }
    v.parse().map_err(|source| ParseErrorKind::InvalidNumber {
        column: col.name(),
        value: v.to_string(),
        source,
    })
}

trait Positive {
    fn positive(&self) -> bool;
}
impl Positive for Price {
    fn positive(&self) -> bool {
        self.is_positive()
    }
}
impl Positive for Quantity {
    fn positive(&self) -> bool {
        self.is_positive()
    }
}

fn parse_positive<T: std::str::FromStr<Err = ParseNumError> + Positive>(
    col: Col,
    v: &str,
) -> Result<T, ParseErrorKind> {
    let n: T = parse_number(col, v)?;
    if !n.positive() {
        return Err(ParseErrorKind::NotPositive {
            column: col.name(),
            value: v.to_string(),
        });
    }
    Ok(n)
}

fn parse_timestamp(column: &'static str, v: &str) -> Result<Timestamp, ParseErrorKind> {
    let bad = |reason| ParseErrorKind::InvalidTimestamp {
        column,
        value: v.to_string(),
        reason,
    };
    if v.is_empty() {
        return Err(ParseErrorKind::EmptyField { column });
    }
    // Microseconds: eight digits at a time while eight are left, then one at a time; at
    // most 19 digits stay below 10^19, within u64 (no overflow check per digit).
    let b = v.as_bytes();
    let mut micros = 0u64;
    let mut digits = true;
    let head = b.len().min(19);
    let mut i = 0usize;
    while i + 8 <= head {
        match eight_digits(b[i..i + 8].try_into().expect("8 bytes")) {
            Some(n) => micros = micros * 100_000_000 + n,
            None => {
                digits = false;
                break;
            }
        }
        i += 8;
    }
    while digits && i < head {
        let d = b[i].wrapping_sub(b'0');
        if d > 9 {
            digits = false;
            break;
        }
        micros = micros * 10 + u64::from(d);
        i += 1;
    }
    if digits && b.len() > 19 {
        digits = b.iter().all(u8::is_ascii_digit);
        micros = if digits {
            v.parse().map_err(|_| bad("out of range"))?
        } else {
            0
        };
    }
    if digits {
        let nanos = micros
            .checked_mul(1_000)
            .ok_or_else(|| bad("out of range"))?;
        return Ok(Timestamp::from_nanos(nanos));
    }
    parse_iso8601(v).map_err(bad)
}

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|±HH:MM|±HHMM]` to a timestamp.
pub(crate) fn parse_iso8601(v: &str) -> Result<Timestamp, &'static str> {
    let b = v.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Result<i64, &'static str> {
        let s = b.get(range).ok_or("too short")?;
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return Err("expected digits");
        }
        Ok(s.iter().fold(0i64, |acc, d| acc * 10 + (d - b'0') as i64))
    };
    if b.len() < 19 {
        return Err("expected YYYY-MM-DD HH:MM:SS");
    }
    if b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err("expected YYYY-MM-DD HH:MM:SS");
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err("invalid date");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("invalid time of day");
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return Err("fraction must have 1 to 9 digits");
        }
        nanos = num(start..i)? * 10i64.pow(9 - digits as u32);
    }
    let offset_secs = match b.get(i) {
        None => 0,
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &v[i + 1..];
            let (h, m) = match rest.len() {
                5 if rest.as_bytes()[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                2 => (num(i + 1..i + 3)?, 0),
                _ => return Err("invalid UTC offset"),
            };
            if h > 23 || m > 59 {
                return Err("invalid UTC offset");
            }
            let s = h * 3600 + m * 60;
            if sign == b'+' { s } else { -s }
        }
        _ => return Err("unexpected text after the time"),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    if secs < 0 {
        return Err("before 1970");
    }
    let total = (secs as u64)
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos as u64))
        .ok_or("out of range")?;
    Ok(Timestamp::from_nanos(total))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn commas_are_found_where_a_byte_scan_finds_them(
            b in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(b','),
                proptest::strategy::Just(b'-'),
                proptest::strategy::Just(0u8),
                proptest::strategy::Just(0x2du8 ^ 0x80),
                proptest::num::u8::ANY,
            ], 0..64)
        ) {
            let mut got = Vec::new();
            commas(&b, |i| got.push(i));
            let want: Vec<usize> = (0..b.len()).filter(|&i| b[i] == b',').collect();
            proptest::prop_assert_eq!(got, want);
        }

        #[test]
        fn eight_digits_agree_with_the_standard_parser(b in proptest::array::uniform8(
            proptest::prop_oneof![b'0'..=b'9', proptest::num::u8::ANY]
        )) {
            let want = std::str::from_utf8(&b)
                .ok()
                .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
                .map(|s| s.parse::<u64>().unwrap());
            proptest::prop_assert_eq!(eight_digits(b), want);
        }

        #[test]
        fn digit_timestamps_are_microseconds(micros in 0u64..u64::MAX / 1_000, pad in 0usize..4) {
            let v = format!("{}{micros}", "0".repeat(pad));
            let t = parse_timestamp("timestamp", &v).unwrap();
            proptest::prop_assert_eq!(t, Timestamp::from_nanos(micros * 1_000));
        }
    }

    #[test]
    fn long_and_overflowing_digit_timestamps() {
        let t = parse_timestamp("timestamp", "00000000000000000001599868800062000").unwrap();
        assert_eq!(t, Timestamp::from_nanos(1_599_868_800_062_000_000));
        for bad in ["99999999999999999999", "18446744073709552"] {
            let e = parse_timestamp("timestamp", bad).unwrap_err().to_string();
            assert!(e.contains("out of range"), "{bad}: {e}");
        }
        assert!(parse_timestamp("timestamp", "1599868800062000x").is_err());
        assert!(parse_timestamp("timestamp", "1234567890123456789x").is_err());
    }

    #[test]
    fn iso8601() {
        let t = parse_iso8601("2013-01-01 22:00:00.295000+00:00").unwrap();
        assert_eq!(t.to_string(), "2013-01-01T22:00:00.295000000Z");
        assert_eq!(parse_iso8601("2013-01-01T23:00:00.295+01:00").unwrap(), t);
        assert_eq!(parse_iso8601("2013-01-01T22:00:00.295Z").unwrap(), t);
        assert_eq!(parse_iso8601("2013-01-01 22:00:00.295").unwrap(), t);
        assert_eq!(parse_iso8601("2013-01-01 17:00:00.295-0500").unwrap(), t);
        assert_eq!(
            parse_iso8601("1970-01-01 00:00:00").unwrap(),
            Timestamp::ZERO
        );
        assert_eq!(
            parse_iso8601("2020-02-29 00:00:00.000000001")
                .unwrap()
                .to_string(),
            "2020-02-29T00:00:00.000000001Z"
        );
        assert_eq!(parse_iso8601("2019-02-29 00:00:00"), Err("invalid date"));
        assert_eq!(
            parse_iso8601("2013-01-01 24:00:00"),
            Err("invalid time of day")
        );
        assert_eq!(
            parse_iso8601("2013-01-01 22:00:00."),
            Err("fraction must have 1 to 9 digits")
        );
        assert_eq!(
            parse_iso8601("2013-01-01 22:00:00+1"),
            Err("invalid UTC offset")
        );
        assert_eq!(
            parse_iso8601("2013/01/01 22:00:00"),
            Err("expected YYYY-MM-DD HH:MM:SS")
        );
        assert_eq!(parse_iso8601("1969-12-31 23:59:59"), Err("before 1970"));
        assert_eq!(
            parse_iso8601("2013-01-01 22:00:00 UTC"),
            Err("unexpected text after the time")
        );
    }

    #[test]
    fn file_name_instrument() {
        let (v, s) = instrument_from_file_name(Path::new("a/truefx_USDJPY_ticks.csv"));
        assert_eq!(
            (v.as_deref(), s.as_deref()),
            (Some("truefx"), Some("USDJPY"))
        );
        let (v, s) = instrument_from_file_name(Path::new("EURUSD.csv"));
        assert_eq!((v.as_deref(), s.as_deref()), (None, Some("EURUSD")));
    }

    #[test]
    fn columns_by_name_uuid_ids_and_integer_amounts() {
        let data = "price,amount,side,timestamp,id,symbol,exchange,extra\n\
                    100.5,3,SELL,1000,6f1c7d1e-4b7a-4b1e-9d2c-2f7b9a0c1d2e,ETHUSD,coinbase,x\r\n\
                    \n\
                    101,1,unknown,1001,,ETHUSD,coinbase,y\n";
        let mut r = CsvReader::new(data.as_bytes(), "mem.csv", &FileOptions::default()).unwrap();
        assert_eq!(r.layout(), Layout::TardisTrades);
        let MarketEvent::Trade(t) = r.next().unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(t.instrument, InstrumentId::new("coinbase", "ETHUSD"));
        assert_eq!(t.size, Quantity::from_int(3).unwrap());
        assert_eq!(t.aggressor, Some(Side::Sell));
        assert_eq!(t.trade_id, "6f1c7d1e-4b7a-4b1e-9d2c-2f7b9a0c1d2e");
        assert_eq!(t.ts_event, Timestamp::from_micros(1000));
        assert_eq!(t.ts_recv, t.ts_event);
        let MarketEvent::Trade(t) = r.next().unwrap().unwrap() else {
            panic!()
        };
        assert_eq!((t.aggressor, t.trade_id.as_str()), (None, ""));
        assert_eq!(r.line(), 4);
        assert!(r.next().is_none());
        assert!(r.next().is_none());
    }
}
