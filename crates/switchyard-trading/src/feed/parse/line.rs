//! One data line, parsed in place from the reader's bytes: one scan finds its end, its
//! commas and whether it is ASCII; the fields are byte ranges, mapped to columns by
//! position (the header did the names once); numbers and timestamps parse from bytes.
//! Text is made only for what an event keeps (a trade id, a new instrument) and for
//! errors.

use std::borrow::Cow;
use std::io::{self, BufRead};

use switchyard::Timestamp;

use super::ParseErrorKind;
use super::header::{Col, Header, N_COLS, col_index};
use super::timestamp::parse_timestamp;
use crate::model::{InstrumentId, MarketEvent, Quote, Side, Trade};
use crate::num::{self, ParseNumError, Price, Quantity};

/// What one line gave.
#[derive(Debug)]
pub(super) enum Line {
    /// Blank (whitespace only): skipped, not a data line.
    Blank,
    /// Not UTF-8: the error reading it as text gives, which ends the file.
    NotUtf8(io::Error),
    /// An event, or what is wrong with the line.
    Parsed(Result<MarketEvent, ParseErrorKind>),
}

/// Turns lines into events for one file: the header, and what carries from line to line.
#[derive(Debug)]
pub(super) struct LineParser {
    pub(super) header: Header,
    /// The last instrument built, reused while lines repeat it.
    cached: Option<InstrumentId>,
    last_ts: Option<Timestamp>,
}

/// The text of bytes that are UTF-8 (a field of a line checked to be): borrowed, no copy.
#[inline]
pub(super) fn text(v: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(v)
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Scans `b` up to its first `\n`, eight bytes at a time: calls `at(i)` for the index
/// of every `,` before it, in order, and returns the index of the `\n` (`None`: there
/// is none, all of `b` was scanned) and whether every byte before it is ASCII.
///
/// One test a word marks its bytes below `-` (0x2d), exactly (each byte's low seven
/// bits plus 0x53 carry into its top bit, never into the next byte): in a line of
/// numbers and names those are the commas and the line end, looked at one by one.
#[inline]
pub(super) fn scan(b: &[u8], mut at: impl FnMut(usize)) -> (Option<usize>, bool) {
    const BELOW_DASH: u64 = u64::from_ne_bytes([0x80 - b'-'; 8]);
    let mut high = 0u64;
    let mut i = 0usize;
    while i + 8 <= b.len() {
        let word = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let mut low = !(((word & LOW7) + BELOW_DASH) | word) & HIGH;
        while low != 0 {
            let k = (low.trailing_zeros() / 8) as usize;
            match (word >> (8 * k)) as u8 {
                b',' => at(i + k),
                b'\n' => {
                    // Only the bytes before the line end count.
                    let before = (1u64 << (8 * k)) - 1;
                    return (Some(i + k), (high | (word & before)) & HIGH == 0);
                }
                _ => {}
            }
            low &= low - 1;
        }
        high |= word;
        i += 8;
    }
    for (j, &c) in b.iter().enumerate().skip(i) {
        if c == b'\n' {
            return (Some(j), high & HIGH == 0);
        }
        high |= u64::from(c & 0x80);
        if c == b',' {
            at(j);
        }
    }
    (None, high & HIGH == 0)
}

/// Whitespace as `str::trim` has it, for ASCII bytes.
#[inline]
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The field `s..e` of a UTF-8 line without surrounding whitespace, as `str::trim` would
/// have it; the common case (ASCII edges that are not whitespace) costs two byte checks.
#[inline(always)]
fn trim_span(line: &[u8], s: usize, e: usize) -> (usize, usize) {
    match (line[s..e].first(), line[s..e].last()) {
        // A non-ASCII edge may be Unicode whitespace, which `trim` also removes.
        (Some(&f), Some(&l)) if f <= b' ' || l <= b' ' || !f.is_ascii() || !l.is_ascii() => {
            trim_span_str(line, s, e)
        }
        _ => (s, e),
    }
}

/// [`trim_span`] when an edge may be whitespace.
#[cold]
#[inline(never)]
fn trim_span_str(line: &[u8], s: usize, e: usize) -> (usize, usize) {
    let v = &line[s..e];
    let ascii_space = |c: &u8| c.is_ascii_whitespace();
    let (f, l) = (v.first(), v.last());
    // As before: ASCII edges are trimmed only if one is ASCII whitespace (not, e.g., a
    // vertical tab alone), a non-ASCII edge always goes to `str::trim`.
    let trim = f.is_some_and(ascii_space)
        || l.is_some_and(ascii_space)
        || f.is_some_and(|c| !c.is_ascii())
        || l.is_some_and(|c| !c.is_ascii());
    match std::str::from_utf8(v) {
        Ok(t) if trim => {
            let start = t.trim_start();
            let s = s + (t.len() - start.len());
            (s, s + start.trim_end().len())
        }
        _ => (s, e),
    }
}

/// `a == b`, for the short names of a line without a call to `memcmp`: lengths, then
/// (up to 16 bytes) two overlapping words.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    let word = |x: &[u8], at: usize| u64::from_le_bytes(x[at..at + 8].try_into().expect("8 bytes"));
    let half = |x: &[u8], at: usize| u32::from_le_bytes(x[at..at + 4].try_into().expect("4 bytes"));
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

/// A number type of a field.
trait FieldNumber: Sized {
    fn from_raw(raw: i64) -> Self;
    fn from_field(v: &[u8]) -> Result<Self, ParseNumError>;
    fn positive(&self) -> bool;
}
impl FieldNumber for Price {
    #[inline]
    fn from_raw(raw: i64) -> Self {
        Price::from_plain_raw(raw)
    }
    #[inline]
    fn from_field(v: &[u8]) -> Result<Self, ParseNumError> {
        Price::from_ascii(v)
    }
    fn positive(&self) -> bool {
        self.is_positive()
    }
}
impl FieldNumber for Quantity {
    #[inline]
    fn from_raw(raw: i64) -> Self {
        Quantity::from_plain_raw(raw)
    }
    #[inline]
    fn from_field(v: &[u8]) -> Result<Self, ParseNumError> {
        Quantity::from_ascii(v)
    }
    fn positive(&self) -> bool {
        self.is_positive()
    }
}

/// The number in the field `s..e` (trimmed) of `line`.
#[inline(always)]
fn parse_number<T: FieldNumber>(
    col: Col,
    line: &[u8],
    (s, e): (usize, usize),
) -> Result<T, ParseErrorKind> {
    let v = &line[s..e];
    if v.is_empty() {
        return Err(ParseErrorKind::EmptyField { column: col.name() });
    }
    // Up to eight bytes, and eight in the line up to the field's end: one word.
    if e - s <= 8
        && e >= 8
        && let Some(raw) = num::plain_in_word(
            u64::from_le_bytes(line[e - 8..e].try_into().expect("8 bytes")),
            e - s,
        )
    {
        return Ok(T::from_raw(raw));
    }
    T::from_field(v).map_err(|source| ParseErrorKind::InvalidNumber {
        column: col.name(),
        value: text(v).into_owned(),
        source,
    })
}

#[inline(always)]
fn parse_positive<T: FieldNumber>(
    col: Col,
    line: &[u8],
    span: (usize, usize),
) -> Result<T, ParseErrorKind> {
    let n: T = parse_number(col, line, span)?;
    if !n.positive() {
        return Err(ParseErrorKind::NotPositive {
            column: col.name(),
            value: text(&line[span.0..span.1]).into_owned(),
        });
    }
    Ok(n)
}

impl LineParser {
    pub(super) fn new(header: Header) -> Self {
        LineParser {
            header,
            cached: None,
            last_ts: None,
        }
    }

    /// The first line of `b`: what it gave and how many bytes it took (its `\n`
    /// included). `None` if `b` does not hold its end and more may come (`!at_end`);
    /// at the end, all of `b` is the line.
    #[inline]
    pub(super) fn next(&mut self, b: &[u8], at_end: bool) -> Option<(Line, usize)> {
        let mut spans = [(0usize, 0usize); N_COLS];
        let mut found = 0usize;
        let mut start = 0usize;
        let by_position = &self.header.by_position;
        let mut take = |end: usize| {
            if let Some(Some(col)) = by_position.get(found) {
                spans[col_index(*col)] = (start, end);
            }
            found += 1;
            start = end + 1;
        };
        let (newline, ascii) = scan(b, &mut take);
        let (end, used) = match newline {
            Some(i) => (i, i + 1),
            None if at_end => (b.len(), b.len()),
            None => return None,
        };
        if !ascii && std::str::from_utf8(&b[..used]).is_err() {
            // The very error reading the line as text gives.
            let e = (&b[..used])
                .read_line(&mut String::new())
                .err()
                .unwrap_or_else(|| io::Error::from(io::ErrorKind::InvalidData));
            return Some((Line::NotUtf8(e), used));
        }
        let mut len = end;
        while len > 0 && b[len - 1] == b'\r' {
            len -= 1;
        }
        let line = &b[..len];
        let blank = if ascii {
            line.iter().all(|&c| is_space(c))
        } else {
            std::str::from_utf8(line).is_ok_and(|s| s.trim().is_empty())
        };
        if blank {
            return Some((Line::Blank, used));
        }
        take(len);
        let result = self.event(line, &spans, found);
        Some((Line::Parsed(result), used))
    }

    /// The event of a non-blank UTF-8 `line` (line end removed) whose known columns sit
    /// at `spans`, with `found` fields in all.
    #[inline]
    fn event(
        &mut self,
        line: &[u8],
        spans: &[(usize, usize); N_COLS],
        found: usize,
    ) -> Result<MarketEvent, ParseErrorKind> {
        let expected = self.header.by_position.len();
        if found < expected {
            return Err(ParseErrorKind::MissingField {
                column: self.header.names[found].clone(),
                expected,
                found,
            });
        }
        if found > expected {
            return Err(ParseErrorKind::TooManyFields { expected, found });
        }
        let span = |c: Col| {
            let (s, e) = spans[col_index(c)];
            trim_span(line, s, e)
        };
        let get = |c: Col| {
            let (s, e) = span(c);
            &line[s..e]
        };
        let present = self.header.present;
        let opt_span = |c: Col| {
            let (s, e) = span(c);
            (present[col_index(c)] && s < e).then_some((s, e))
        };
        let opt = |c: Col| opt_span(c).map(|(s, e)| &line[s..e]);

        let ts_event = parse_timestamp(Col::Timestamp.name(), get(Col::Timestamp))?;
        let ts_recv = match opt(Col::LocalTimestamp) {
            Some(v) => parse_timestamp(Col::LocalTimestamp.name(), v)?,
            None => ts_event,
        };
        let layout = self.header.layout;
        let event = match layout {
            super::Layout::TardisTrades => {
                let price: Price = parse_positive(Col::Price, line, span(Col::Price))?;
                let size: Quantity = parse_positive(Col::Amount, line, span(Col::Amount))?;
                let aggressor = match opt(Col::Side) {
                    None => None,
                    Some(v) if v.eq_ignore_ascii_case(b"buy") => Some(Side::Buy),
                    Some(v) if v.eq_ignore_ascii_case(b"sell") => Some(Side::Sell),
                    Some(v) if v.eq_ignore_ascii_case(b"unknown") => None,
                    Some(v) => {
                        return Err(ParseErrorKind::InvalidSide {
                            column: Col::Side.name(),
                            value: text(v).into_owned(),
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
                    trade_id: match opt(Col::Id) {
                        // A field of a UTF-8 line: `from_utf8` cannot fail.
                        Some(v) => std::str::from_utf8(v)
                            .map_or_else(|_| text(v).into_owned(), str::to_owned),
                        None => String::new(),
                    },
                })
            }
            super::Layout::TardisQuotes | super::Layout::TimestampBidAsk => {
                let (bid_col, ask_col) = if layout == super::Layout::TardisQuotes {
                    (Col::BidPrice, Col::AskPrice)
                } else {
                    (Col::Bid, Col::Ask)
                };
                let bid_price: Price = parse_positive(bid_col, line, span(bid_col))?;
                let ask_price: Price = parse_positive(ask_col, line, span(ask_col))?;
                let size = |c: Col| -> Result<Option<Quantity>, ParseErrorKind> {
                    opt_span(c).map(|sp| parse_number(c, line, sp)).transpose()
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

    /// The instrument of a line: its columns, or what the header fixed; the last one
    /// made is reused (compared by bytes) while lines repeat it.
    #[inline]
    fn instrument(&mut self, venue: &[u8], symbol: &[u8]) -> Result<InstrumentId, ParseErrorKind> {
        let h = &self.header;
        let venue = h
            .fixed_venue
            .as_ref()
            .map_or(venue, |v| v.as_str().as_bytes());
        let symbol = h
            .fixed_symbol
            .as_ref()
            .map_or(symbol, |s| s.as_str().as_bytes());
        if let Some(id) = &self.cached
            && same_bytes(id.venue.as_str().as_bytes(), venue)
            && same_bytes(id.symbol.as_str().as_bytes(), symbol)
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
        let id = InstrumentId::new(&*text(venue), &*text(symbol));
        self.cached = Some(id.clone());
        Ok(id)
    }
}
