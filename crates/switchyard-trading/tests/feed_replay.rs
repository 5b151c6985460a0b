//! File parsers and the merging replay, on the committed real data and on broken copies.

use std::path::PathBuf;

use switchyard::Timestamp;
use switchyard_trading::feed::{
    BadLinePolicy, CsvReader, FileOptions, FileSpec, Layout, ParseErrorKind, ReplayOptions,
    ReplaySource,
};
use switchyard_trading::model::{InstrumentId, MarketEvent, Side};
use switchyard_trading::num::{Price, Quantity};

const TRADES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/tardis_binance-futures_BTCUSDT_trades.csv"
);
const QUOTES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/tardis_binance-futures_BTCUSDT_quotes.csv"
);
const FX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/truefx_USDJPY_ticks.csv"
);

fn p(s: &str) -> Price {
    s.parse().unwrap()
}
fn q(s: &str) -> Quantity {
    s.parse().unwrap()
}

fn read_all(path: &str) -> (Layout, Vec<MarketEvent>) {
    let r = CsvReader::open(path, &FileOptions::default()).unwrap();
    let layout = r.layout();
    (layout, r.map(|e| e.unwrap()).collect())
}

/// A temporary file holding `content`, removed on drop.
struct TempFile(PathBuf);
impl TempFile {
    fn new(name: &str, content: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("switchyard-trading-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        TempFile(path)
    }
    fn spec(&self) -> FileSpec {
        FileSpec::new(&self.0)
    }
    fn display(&self) -> String {
        self.0.display().to_string()
    }
}
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn tardis_trades_file() {
    let (layout, events) = read_all(TRADES);
    assert_eq!(layout, Layout::TardisTrades);
    assert_eq!(events.len(), 9_999);
    let MarketEvent::Trade(first) = &events[0] else {
        panic!("not a trade")
    };
    assert_eq!(
        first.instrument,
        InstrumentId::new("binance-futures", "BTCUSDT")
    );
    assert_eq!(
        first.ts_event,
        Timestamp::from_micros(1_582_329_602_111_000)
    );
    assert_eq!(first.ts_recv, Timestamp::from_micros(1_582_329_602_418_379));
    assert_eq!(first.ts_event.to_string(), "2020-02-22T00:00:02.111000000Z");
    assert_eq!(first.trade_id, "42377944");
    assert_eq!(
        (first.aggressor, first.price, first.size),
        (Some(Side::Buy), p("9682"), q("0.132"))
    );
    let MarketEvent::Trade(last) = &events[9_998] else {
        panic!("not a trade")
    };
    assert_eq!(last.ts_event, Timestamp::from_micros(1_582_337_147_728_000));
    assert_eq!(last.trade_id, "42387942");
    assert_eq!(
        (last.aggressor, last.price, last.size),
        (Some(Side::Sell), p("9666.84"), q("0.07"))
    );
}

#[test]
fn tardis_quotes_file() {
    let (layout, events) = read_all(QUOTES);
    assert_eq!(layout, Layout::TardisQuotes);
    assert_eq!(events.len(), 9_999);
    let MarketEvent::Quote(first) = &events[0] else {
        panic!("not a quote")
    };
    assert_eq!(
        first.ts_event,
        Timestamp::from_micros(1_582_329_601_096_000)
    );
    assert_eq!(
        (first.bid_price, first.bid_size),
        (p("9681.92"), Some(q("0.67")))
    );
    assert_eq!(
        (first.ask_price, first.ask_size),
        (p("9682"), Some(q("0.84")))
    );
    assert_eq!(first.mid(), p("9681.96"));
    let MarketEvent::Quote(last) = &events[9_998] else {
        panic!("not a quote")
    };
    assert_eq!(last.ts_event, Timestamp::from_micros(1_582_329_827_061_000));
    assert_eq!(
        (last.bid_price, last.bid_size),
        (p("9671.19"), Some(q("0.012")))
    );
    assert_eq!(
        (last.ask_price, last.ask_size),
        (p("9672.09"), Some(q("0.031")))
    );
}

#[test]
fn truefx_file_takes_symbol_from_file_name_or_options() {
    let (layout, events) = read_all(FX);
    assert_eq!(layout, Layout::TimestampBidAsk);
    assert_eq!(events.len(), 1_000);
    let MarketEvent::Quote(first) = &events[0] else {
        panic!("not a quote")
    };
    assert_eq!(first.instrument, InstrumentId::new("truefx", "USDJPY"));
    assert_eq!(first.ts_event.to_string(), "2013-01-01T22:00:00.295000000Z");
    assert_eq!(
        (first.bid_price, first.ask_price, first.bid_size),
        (p("86.655"), p("86.728"), None)
    );
    let MarketEvent::Quote(last) = &events[999] else {
        panic!("not a quote")
    };
    assert_eq!(last.ts_event.to_string(), "2013-01-01T22:35:13.494000000Z");
    assert_eq!((last.bid_price, last.ask_price), (p("86.836"), p("86.854")));

    let opts = FileOptions {
        venue: Some("fxall".into()),
        symbol: Some("USD/JPY".into()),
    };
    let first = CsvReader::open(FX, &opts).unwrap().next().unwrap().unwrap();
    assert_eq!(first.instrument(), &InstrumentId::new("fxall", "USD/JPY"));
}

#[test]
fn merged_replay_is_ordered_and_complete() {
    let files = [TRADES, QUOTES, FX].map(FileSpec::new);
    let mut src = ReplaySource::open(files, ReplayOptions::default()).unwrap();
    let mut prev = Timestamp::ZERO;
    let mut n = 0;
    for ev in src.by_ref() {
        let ev = ev.unwrap();
        assert!(ev.ts_event() >= prev, "went back at event {n}");
        prev = ev.ts_event();
        n += 1;
    }
    assert_eq!(n, 9_999 * 2 + 1_000);
    let summary = src.into_summary();
    let counts: Vec<_> = summary
        .files
        .iter()
        .map(|f| (f.lines_read, f.events, f.skipped))
        .collect();
    assert_eq!(
        counts,
        vec![(9_999, 9_999, 0), (9_999, 9_999, 0), (1_000, 1_000, 0)]
    );
    assert_eq!(summary.events(), 20_998);
}

#[test]
fn merged_replay_is_deterministic_and_breaks_ties_by_file_order() {
    let run = |files: [&str; 2]| -> Vec<MarketEvent> {
        ReplaySource::open(files.map(FileSpec::new), ReplayOptions::default())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let a = run([TRADES, QUOTES]);
    assert_eq!(a, run([TRADES, QUOTES]));
    // Where a trade and a quote share a timestamp, the first-listed file comes first.
    let b = run([QUOTES, TRADES]);
    assert_eq!(a.len(), b.len());
    let first_tie = a.windows(2).position(|w| {
        w[0].ts_event() == w[1].ts_event()
            && matches!(
                (&w[0], &w[1]),
                (MarketEvent::Trade(_), MarketEvent::Quote(_))
            )
    });
    if let Some(i) = first_tie {
        let ts = a[i].ts_event();
        let pos_b = b.iter().position(|e| e.ts_event() == ts).unwrap();
        assert!(matches!(b[pos_b], MarketEvent::Quote(_)));
    }
}

const GOOD_HEADER: &str = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n";
const GOOD_1: &str = "binance-futures,BTCUSDT,1582329602111000,1582329602418379,1,buy,9682,0.132\n";
const GOOD_2: &str = "binance-futures,BTCUSDT,1582329602112000,1582329602418379,2,sell,9681.5,1\n";

fn broken_file(name: &str, bad_line: &str) -> TempFile {
    TempFile::new(name, &format!("{GOOD_HEADER}{GOOD_1}{bad_line}{GOOD_2}"))
}

fn first_error(file: &TempFile) -> String {
    let mut src = ReplaySource::open([file.spec()], ReplayOptions::default()).unwrap();
    assert!(src.next().unwrap().is_ok(), "line 2 is good");
    let err = src.next().unwrap().unwrap_err();
    assert!(src.next().is_none(), "Fail stops after the error");
    err.to_string()
}

#[test]
fn bad_price_names_file_line_and_column() {
    let f = broken_file(
        "bad_price.csv",
        "binance-futures,BTCUSDT,1582329602111500,1582329602418379,9,buy,abc,0.1\n",
    );
    assert_eq!(
        first_error(&f),
        format!("{}:3: column 'price': invalid number \"abc\"", f.display())
    );
}

#[test]
fn missing_column_names_it() {
    let f = broken_file(
        "missing.csv",
        "binance-futures,BTCUSDT,1582329602111500,1582329602418379,9,buy,9682\n",
    );
    assert_eq!(
        first_error(&f),
        format!("{}:3: column 'amount' missing: 7 of 8 fields", f.display())
    );
}

#[test]
fn bad_timestamp_names_it() {
    let f = broken_file(
        "bad_ts.csv",
        "binance-futures,BTCUSDT,2020-02-30 00:00:00,1582329602418379,9,buy,9682,1\n",
    );
    assert_eq!(
        first_error(&f),
        format!(
            "{}:3: column 'timestamp': invalid timestamp \"2020-02-30 00:00:00\" (invalid date)",
            f.display()
        )
    );
}

#[test]
fn other_bad_lines() {
    let cases = [
        (
            "side.csv",
            "binance-futures,BTCUSDT,1582329602111500,1,9,hold,9682,1\n",
            "column 'side': invalid side \"hold\"",
        ),
        (
            "neg.csv",
            "binance-futures,BTCUSDT,1582329602111500,1,9,buy,-1,1\n",
            "column 'price': \"-1\" is not positive",
        ),
        (
            "zero.csv",
            "binance-futures,BTCUSDT,1582329602111500,1,9,buy,1,0\n",
            "column 'amount': \"0\" is not positive",
        ),
        (
            "extra.csv",
            "binance-futures,BTCUSDT,1582329602111500,1,9,buy,1,1,1\n",
            "9 fields, header has 8",
        ),
        (
            "empty.csv",
            "binance-futures,BTCUSDT,1582329602111500,1,9,buy,,1\n",
            "column 'price': empty",
        ),
        (
            "back.csv",
            "binance-futures,BTCUSDT,1582329602000000,1,9,buy,1,1\n",
            "timestamp 2020-02-22T00:00:02.000000000Z is before the previous event's 2020-02-22T00:00:02.111000000Z",
        ),
    ];
    for (name, line, want) in cases {
        let f = broken_file(name, line);
        assert_eq!(
            first_error(&f),
            format!("{}:3: {want}", f.display()),
            "{name}"
        );
    }
}

#[test]
fn bad_number_keeps_its_cause() {
    use std::error::Error;
    let f = broken_file(
        "cause.csv",
        "binance-futures,BTCUSDT,1582329602111500,1,9,buy,1.0000000001,1\n",
    );
    let mut src = ReplaySource::open([f.spec()], ReplayOptions::default()).unwrap();
    src.next();
    let err = src.next().unwrap().unwrap_err();
    assert_eq!(err.line, 3);
    assert!(matches!(
        err.kind,
        ParseErrorKind::InvalidNumber {
            column: "price",
            ..
        }
    ));
    let cause = err.source().and_then(|k| k.source()).map(|c| c.to_string());
    assert_eq!(cause.as_deref(), Some("more than 9 decimal places"));
}

#[test]
fn bad_headers_fail_at_open_under_any_policy() {
    let unknown = TempFile::new("hdr_unknown.csv", "time,value\n1,2\n");
    let missing = TempFile::new(
        "hdr_missing.csv",
        "exchange,symbol,local_timestamp,id,side,price,amount\n",
    );
    let empty = TempFile::new("hdr_empty.csv", "");
    let nosym = TempFile::new("nosymbol.csv", "timestamp,bid,ask\n");
    for opts in [ReplayOptions::default(), ReplayOptions::skip()] {
        let err = |f: &TempFile| {
            ReplaySource::open([f.spec()], opts)
                .err()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            err(&unknown),
            format!(
                "{}:1: unknown layout, header \"time,value\"",
                unknown.display()
            )
        );
        assert_eq!(
            err(&missing),
            format!(
                "{}:1: header: missing column 'timestamp'",
                missing.display()
            )
        );
        assert_eq!(
            err(&empty),
            format!("{}:1: empty file, expected a header", empty.display())
        );
        // "nosymbol" has no '_': the whole stem is the symbol.
        assert!(ReplaySource::open([nosym.spec()], opts).is_ok());
    }
    let err = ReplaySource::open(
        [FileSpec::new("/nonexistent/x.csv")],
        ReplayOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err.kind, ParseErrorKind::Io(_)));
    assert_eq!(err.to_string(), "/nonexistent/x.csv:0: read error");
}

#[test]
fn skip_keeps_every_good_line_and_reports_the_first_errors() {
    // The real trades file with five bad lines spliced in.
    let real = std::fs::read_to_string(TRADES).unwrap();
    let mut lines: Vec<String> = real.lines().map(str::to_string).collect();
    let bad = [
        "binance-futures,BTCUSDT,x,1,9,buy,1,1",
        "binance-futures,BTCUSDT,1582329602111000,1,9,buy,abc,1",
        "binance-futures,BTCUSDT,1582329602111000,1,9,buy,1",
        "binance-futures,BTCUSDT,1582329602111000,1,9,up,1,1",
        "binance-futures,BTCUSDT,1,1,9,buy,1,1",
    ];
    // Insert after data lines 100, 200, ... (file lines shift as we go).
    for (k, b) in bad.iter().enumerate() {
        lines.insert(1 + 100 * (k + 1) + k, b.to_string());
    }
    let f = TempFile::new("spliced_trades.csv", &(lines.join("\n") + "\n"));
    let opts = ReplayOptions {
        policy: BadLinePolicy::Skip,
        max_errors_kept: 3,
    };
    let mut src = ReplaySource::open([f.spec(), FileSpec::new(QUOTES)], opts).unwrap();
    let events: Vec<MarketEvent> = src.by_ref().map(Result::unwrap).collect();
    assert_eq!(events.len(), 9_999 * 2);
    let good: Vec<MarketEvent> = CsvReader::open(TRADES, &FileOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let got: Vec<&MarketEvent> = events
        .iter()
        .filter(|e| matches!(e, MarketEvent::Trade(_)))
        .collect();
    assert!(got.iter().zip(&good).all(|(a, b)| *a == b));
    let s = src.summary();
    let f0 = &s.files[0];
    assert_eq!((f0.lines_read, f0.events, f0.skipped), (10_004, 9_999, 5));
    let lines: Vec<u64> = f0.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![102, 203, 304]);
    assert!(
        f0.errors[1]
            .to_string()
            .ends_with(":203: column 'price': invalid number \"abc\"")
    );
    assert_eq!(s.skipped(), 5);
}
