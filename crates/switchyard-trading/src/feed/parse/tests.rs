//! Tests of the CSV readers' parts and of whole files in memory.

use std::path::Path;

use switchyard::Timestamp;

use super::header::instrument_from_file_name;
use super::line::scan;
use super::timestamp::{parse_iso8601, parse_timestamp};
use super::*;
use crate::model::{InstrumentId, Side};
use crate::num::{Quantity, eight_digits};

proptest::proptest! {
    #[test]
    fn the_scan_finds_the_line_end_commas_and_non_ascii_as_a_byte_scan_does(
        b in proptest::collection::vec(proptest::prop_oneof![
            proptest::strategy::Just(b','),
            proptest::strategy::Just(b'\n'),
            proptest::strategy::Just(b'-'),
            proptest::strategy::Just(0u8),
            proptest::strategy::Just(0x2du8 ^ 0x80),
            proptest::strategy::Just(b'\n' ^ 0x80),
            proptest::num::u8::ANY,
        ], 0..64)
    ) {
        let mut got = Vec::new();
        let (end, ascii) = scan(&b, |i| got.push(i));
        let want_end = b.iter().position(|&c| c == b'\n');
        let line = &b[..want_end.unwrap_or(b.len())];
        let want: Vec<usize> = (0..line.len()).filter(|&i| line[i] == b',').collect();
        proptest::prop_assert_eq!(got, want);
        proptest::prop_assert_eq!(end, want_end);
        proptest::prop_assert_eq!(ascii, line.is_ascii());
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

/// Every item of a reader over `data` (with a reader buffer of `capacity` bytes, so
/// lines span refills when it is small), as text: events by `Debug`, errors by
/// `Display` and fatality, and the line after each.
fn items(data: &[u8], capacity: usize) -> Vec<String> {
    let reader = std::io::BufReader::with_capacity(capacity, data);
    match CsvReader::new(reader, "binance_BTCUSDT.csv", &FileOptions::default()) {
        Err(e) => vec![format!("header: {e}")],
        Ok(mut r) => {
            let mut out = Vec::new();
            while let Some(item) = r.next_event() {
                out.push(match item {
                    Ok(ev) => format!("{}: {ev:?}", r.line()),
                    Err(e) => format!("{}: {e} (fatal {})", r.line(), e.is_fatal()),
                });
            }
            out
        }
    }
}

proptest::proptest! {
    /// Lines parse alike whether they sit whole in the reader's buffer or span refills.
    #[test]
    fn lines_across_buffer_refills_parse_as_whole_lines(
        lines in proptest::collection::vec(proptest::prop_oneof![
            proptest::strategy::Just("binance,BTCUSDT,1000,1001,7,buy,9682,0.132".to_string()),
            proptest::strategy::Just("binance,BTCUSDT,1002,,8,SELL,9681.5,1".to_string()),
            proptest::strategy::Just(" \t\r".to_string()),
            proptest::strategy::Just("".to_string()),
            proptest::strategy::Just("binance,ETHUSD,1003,1004,x,,1e2, 2 \r".to_string()),
            proptest::strategy::Just("binance,BTCUSDT,999,1,1,buy,1,1".to_string()),
            "[0-9a-z,. \r\u{a0}é]{0,40}",
        ], 0..12),
        capacity in 1usize..24,
        newline_at_end in proptest::bool::ANY,
    ) {
        let mut data = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n".to_string();
        data.push_str(&lines.join("\n"));
        if newline_at_end {
            data.push('\n');
        }
        proptest::prop_assert_eq!(items(data.as_bytes(), capacity), items(data.as_bytes(), 1 << 16));
    }
}

#[test]
fn a_line_that_is_not_utf8_fails_the_file_as_reading_text_does() {
    let data = b"timestamp,bid,ask\n1,1,2\n2,\xff1,2\n3,1,2\n";
    for capacity in [3, 1 << 16] {
        let got = items(data, capacity);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("2: Quote"), "{got:?}");
        assert_eq!(
            got[1], "3: binance_BTCUSDT.csv:3: read error (fatal true)",
            "{got:?}"
        );
    }
    let mut r = CsvReader::new(&data[..], "x_Y.csv", &FileOptions::default()).unwrap();
    r.next().unwrap().unwrap();
    let e = r.next().unwrap().unwrap_err();
    let ParseErrorKind::Io(io) = &e.kind else {
        panic!("{e:?}")
    };
    let want = std::io::BufRead::read_line(&mut &b"\xff\n"[..], &mut String::new()).unwrap_err();
    assert_eq!((io.kind(), io.to_string()), (want.kind(), want.to_string()));
    assert!(r.next().is_none());
}

#[test]
fn unicode_whitespace_is_trimmed_and_blank_lines_are_skipped_as_str_trim_has_them() {
    // U+00A0 and U+3000 around fields, a vertical tab and U+2028 alone on lines; a
    // vertical tab at a field's edge is not trimmed (it is not ASCII whitespace).
    let data = "timestamp,bid,ask\n\u{a0}1\u{3000},1,2\n\x0b\n\u{2028}\r\n2,\x0b1,2\n3,é,2\r\r\n";
    let mut r = CsvReader::new(data.as_bytes(), "x_Y.csv", &FileOptions::default()).unwrap();
    let MarketEvent::Quote(q) = r.next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(q.ts_event, Timestamp::from_micros(1));
    assert_eq!(r.line(), 2);
    let e = r.next().unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "x_Y.csv:5: column 'bid': invalid number \"\\u{b}1\""
    );
    let e = r.next().unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "x_Y.csv:6: column 'bid': invalid number \"é\""
    );
    assert!(r.next().is_none());
}
