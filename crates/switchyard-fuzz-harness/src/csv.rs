//! The CSV market-data parsers ([`CsvReader`]), one target per layout and one that reads
//! the header from the input too.
//!
//! Per layout, the first input byte picks one of a few headers of that layout (canonical
//! column order, shuffled, with extra or duplicate columns, without the optional ones),
//! a file name and [`FileOptions`]; the rest is the data lines. Checks: the reader
//! detects the layout; every error names the file and a line after the header (the
//! header's own errors, line 1); events come in non-decreasing event time with positive
//! prices; after a fatal error nothing more is read.

use switchyard_trading::feed::{CsvReader, FileOptions, Layout};
use switchyard_trading::model::{MarketEvent, Symbol, Venue};

const TRADES: &[&str] = &[
    "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n",
    "price,amount,side,timestamp,id,symbol,exchange,extra\n",
    "timestamp,price,amount\n",
    "\u{feff}Timestamp, Price ,AMOUNT,side,price\r\n",
];
const QUOTES: &[&str] = &[
    "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n",
    "bid_price,ask_price,timestamp,symbol\n",
    "timestamp,ask_price,bid_price,bid,ask,x\n",
    "local_timestamp,timestamp,bid_amount,bid_price,ask_price,ask_amount,exchange,symbol\r\n",
];
const BID_ASK: &[&str] = &[
    "timestamp,bid,ask\n",
    "exchange,symbol,timestamp,bid,ask\n",
    "ask,bid,timestamp,local_timestamp,extra\n",
    "\u{feff}TIMESTAMP,BID,ASK\r\n",
];
const NAMES: &[&str] = &[
    "binance_BTCUSDT_trades.csv",
    "EURUSD.csv",
    "dir/_.csv",
    "plain",
];

/// Tardis trades: `price`/`amount` layout.
pub fn trades(data: &[u8]) {
    with_header(Layout::TardisTrades, TRADES, data);
}

/// Tardis quotes: `ask_price`/`bid_price` layout.
pub fn quotes(data: &[u8]) {
    with_header(Layout::TardisQuotes, QUOTES, data);
}

/// `timestamp,bid,ask` layout.
pub fn bid_ask(data: &[u8]) {
    with_header(Layout::TimestampBidAsk, BID_ASK, data);
}

/// Header and lines from the input (the first byte picks file name and options).
pub fn any(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    read(None, rest, sel);
}

fn with_header(layout: Layout, headers: &[&str], data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut text = headers[usize::from(sel) % headers.len()]
        .as_bytes()
        .to_vec();
    text.extend_from_slice(rest);
    read(Some(layout), &text, sel / 4);
}

fn read(layout: Option<Layout>, text: &[u8], sel: u8) {
    let name = NAMES[usize::from(sel) % NAMES.len()];
    let options = match (sel / 4) % 3 {
        0 => FileOptions::default(),
        1 => FileOptions {
            venue: Some(Venue::new("fuzz")),
            symbol: None,
        },
        _ => FileOptions {
            venue: Some(Venue::new("fuzz")),
            symbol: Some(Symbol::new("FZ")),
        },
    };
    let reader = match CsvReader::new(text, name, &options) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.line, 1, "{e}");
            assert!(e.is_fatal(), "a header error is fatal: {e}");
            assert!(e.to_string().starts_with(&format!("{name}:1: ")), "{e}");
            return;
        }
    };
    if let Some(layout) = layout {
        assert_eq!(reader.layout(), layout);
    }
    let mut last_line = 1;
    let mut last_ts = None;
    let mut fatal = false;
    for item in reader {
        assert!(!fatal, "an item after a fatal error");
        match item {
            Ok(event) => {
                let ts = match &event {
                    MarketEvent::Trade(t) => {
                        assert!(t.price.is_positive() && t.size.is_positive());
                        t.ts_event
                    }
                    MarketEvent::Quote(q) => {
                        assert!(q.bid_price.is_positive() && q.ask_price.is_positive());
                        q.ts_event
                    }
                };
                assert!(last_ts.is_none_or(|l| l <= ts), "events out of order");
                last_ts = Some(ts);
            }
            Err(e) => {
                assert!(e.line > last_line, "line numbers go forward: {e}");
                last_line = e.line;
                let prefix = format!("{name}:{}: ", e.line);
                assert!(e.to_string().starts_with(&prefix), "{e}");
                fatal = e.is_fatal();
            }
        }
    }
}
