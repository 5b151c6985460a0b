//! The header line: the layout, which column each field position holds, and the
//! instrument when no column gives it. Read once per file, so the lines are split by
//! position, never looked up by name.

use std::path::Path;

use super::{FileOptions, Layout, ParseErrorKind};
use crate::model::{Symbol, Venue};

/// The columns the parsers know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Col {
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

pub(super) const N_COLS: usize = 14;
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
    pub(super) fn name(self) -> &'static str {
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

/// Where a known column sits in [`Header::present`] and in a line's fields.
#[inline]
pub(super) fn col_index(c: Col) -> usize {
    c as usize
}

/// What the header says, for reading the lines after it.
#[derive(Debug)]
pub(super) struct Header {
    pub(super) layout: Layout,
    /// For each field position in a line, the known column it holds.
    pub(super) by_position: Vec<Option<Col>>,
    /// Header names, for error messages.
    pub(super) names: Vec<String>,
    /// Whether each known column is present.
    pub(super) present: [bool; N_COLS],
    /// Instrument fixed by options or file name (when no columns give it).
    pub(super) fixed_venue: Option<Venue>,
    pub(super) fixed_symbol: Option<Symbol>,
}

impl Header {
    /// The header of the file `path` from its first line `buf` (not blank, line end
    /// included or not).
    pub(super) fn parse(
        buf: &str,
        path: &Path,
        options: &FileOptions,
    ) -> Result<Header, ParseErrorKind> {
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
            return Err(ParseErrorKind::UnknownLayout {
                header: header_line.to_string(),
            });
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
                return Err(ParseErrorKind::MissingHeaderColumn { column: c.name() });
            }
        }
        // Instrument from options, else from the file name when columns are missing.
        let (name_venue, name_symbol) = instrument_from_file_name(path);
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
            return Err(ParseErrorKind::NoInstrument);
        }
        Ok(Header {
            layout,
            by_position,
            names: header,
            present,
            fixed_venue,
            fixed_symbol,
        })
    }
}

/// The venue and symbol named by a file name `<venue>_<SYMBOL>[_anything].csv`.
pub(super) fn instrument_from_file_name(path: &Path) -> (Option<String>, Option<String>) {
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
