//! Writes the hand-made seed inputs of every fuzz target to `fuzz/seeds/<target>/`
//! (committed; `scripts/fuzz` starts from them and the minimized corpora):
//! `cargo run -p switchyard-fuzz-harness --example seeds`.

use std::path::{Path, PathBuf};

use switchyard::Timestamp;
use switchyard_journal::codec;
use switchyard_trading::feed::{CsvReader, FileOptions};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let mut seeds: Vec<(&str, String, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, name: &str, data: Vec<u8>| {
        seeds.push((target, name.to_owned(), data));
    };

    // CSV: a few real lines of each layout (the harness supplies the header), and whole
    // files for `csv_any`.
    let mut events = Vec::new();
    for (target, file) in [
        ("csv_trades", "tardis_binance-futures_BTCUSDT_trades.csv"),
        ("csv_quotes", "tardis_binance-futures_BTCUSDT_quotes.csv"),
        ("csv_bid_ask", "truefx_USDJPY_ticks.csv"),
    ] {
        let text = std::fs::read_to_string(testdata.join(file))?;
        let head: Vec<&str> = text.lines().take(6).collect();
        let mut lines = head[1..].join("\n").into_bytes();
        lines.push(b'\n');
        let mut seed = vec![0u8];
        seed.extend_from_slice(&lines);
        add(target, "canonical", seed);
        let mut whole = vec![0u8];
        whole.extend_from_slice(head.join("\r\n").as_bytes());
        add("csv_any", target, whole);
        let reader = CsvReader::new(text.as_bytes(), file, &FileOptions::default())
            .map_err(std::io::Error::other)?;
        events.extend(reader.take(2).filter_map(Result::ok));
    }
    add(
        "csv_trades",
        "odd",
        b"\x01100.5,3,SELL,1000,6f1c7d1e,ETHUSD,coinbase,x\r\n\n101,1,unknown,1001,,ETHUSD,coinbase,y\n99,-1,buy,999,1,E,c,z\n"
            .to_vec(),
    );
    add(
        "csv_bid_ask",
        "iso",
        b"\x002013-01-01T22:00:00.295Z,1,2\n2013-01-01 23:00:00.295+01:00,1.5,2\n2020-02-29 00:00:00.000000001-0500,3,4\n"
            .to_vec(),
    );

    // Journal: frames of each kind, segments, directories.
    let mut frames = Vec::new();
    let mut index = 1;
    let mut frame = |topic: &str, kind: &str, payload: Vec<u8>| {
        let mut f = Vec::new();
        codec::encode_frame(
            &mut f,
            index,
            index * 10,
            Timestamp(index),
            topic,
            kind,
            &payload,
        )
        .expect("a frame");
        index += 1;
        f
    };
    for e in &events {
        let topic = match e {
            MarketEvent::Trade(_) => "market_data.trade.BTCUSDT",
            MarketEvent::Quote(_) => "market_data.quote.BTCUSDT",
        };
        let payload = codec::encode_payload(e).expect("a payload");
        frames.push(frame(topic, wire::MARKET_EVENT, payload));
    }
    let end = wire::FeedEnd {
        origin: "feed".into(),
        published: 3,
    };
    frames.push(frame(
        wire::FEED_END_TOPIC,
        wire::FEED_END,
        codec::encode_payload(&end).expect("a payload"),
    ));
    frames.push(frame(
        "control.kill_switch",
        "control",
        br#"{"action":"trigger","scope":{"kind":"all"}}"#.to_vec(),
    ));
    for (i, f) in frames.iter().enumerate() {
        let mut seed = vec![0u8];
        seed.extend_from_slice(f);
        add("journal_frame", &format!("frame{i}"), seed);
    }
    let header = codec::encode_header(1).to_vec();
    add("journal_frame", "header", {
        let mut s = vec![0u8];
        s.extend_from_slice(&header);
        s
    });
    let body: Vec<u8> = frames.concat();
    let mut seg = header.clone();
    seg.extend_from_slice(&body);
    add("journal_segment", "whole", seg.clone());
    let mut torn = seg.clone();
    torn.truncate(seg.len() - 5);
    add("journal_segment", "torn", torn);
    let mut behind = vec![0u8];
    behind.extend_from_slice(&body);
    add("journal_segment", "behind_header", behind);
    // Reader: one segment (flags 0b1100: header + checksums), then two.
    let mut one = vec![0b0000_1100u8];
    one.extend_from_slice(&body);
    add("journal_reader", "one", one);
    let split = frames[0].len() + frames[1].len();
    let mut two = vec![0b0001_1101u8];
    two.extend_from_slice(&(split as u16).to_le_bytes());
    two.extend_from_slice(&body);
    add("journal_reader", "two", two);

    // Configuration.
    add(
        "config_toml",
        "defaults",
        switchyard_node::config::DEFAULTS.as_bytes().to_vec(),
    );
    for (name, text) in [
        (
            "legacy",
            "[strategy]\nfast = 7\n[exchange]\nvenue = \"binance-futures\"\nlatency_ms = 0\n",
        ),
        (
            "run",
            "[run]\nfeed = \"replay\"\nfiles = [\"a.csv\"]\nspeed = \"10x\"\nduration = \"1.5s\"\nhttp = \"[::1]:0\"\n",
        ),
        (
            "strategy_risk",
            "[[strategy]]\nname = \"a\"\nkind = \"ma_crossover\"\nvenue = \"binance-futures\"\nsymbol = \"BTCUSDT\"\n[strategy.risk]\nmax_position = \"0.01\"\n",
        ),
        ("bad", "[risk]\nmax_positon = \"1\"\n[nope]\nx = 1\n"),
    ] {
        add("config_toml", name, text.as_bytes().to_vec());
    }
    add(
        "config_env",
        "overrides",
        b"\0RUN__SPEED=10x\nRISK__MAX_POSITION=\"0.05\"\nSTRATEGY__0__FAST=20\nEXCHANGE__VENUE=x\nRUN__DURATION=30s"
            .to_vec(),
    );
    add(
        "config_env",
        "file_and_env",
        b"[run]\nrepeat = 2\n\0SWITCHYARD__STRATEGY__FAST=9\nSIM__INSTRUMENTS__1__TICK=\"0.5\"\nJOURNAL__TOPICS=[\"a.>\"]".to_vec(),
    );

    // NATS: a trade and a feed end from another program, and the bridge's own.
    let trade = events
        .iter()
        .find(|e| matches!(e, MarketEvent::Trade(_)))
        .expect("a trade");
    let trade_json = serde_json::to_vec(trade).expect("JSON");
    let msg = |flags: u8, subject: &str, headers: &str, payload: &[u8]| {
        let mut m = vec![flags];
        m.extend_from_slice(subject.as_bytes());
        m.push(b'\n');
        m.extend_from_slice(headers.as_bytes());
        m.extend_from_slice(b"\r\n\r\n");
        m.extend_from_slice(payload);
        m
    };
    add(
        "nats_import",
        "trade",
        msg(
            0,
            "market_data.trade.BTCUSDT",
            "Nats-Msg-Id: feed@00ff:7\r\nSwitchyard-Kind: market_event\r\nSwitchyard-Origin: feed@00ff\r\nSwitchyard-Seq: 7\r\nContent-Type: application/json",
            &trade_json,
        ),
    );
    add(
        "nats_import",
        "prefixed_feed_end",
        msg(
            1,
            "sy.feed.end",
            "Switchyard-Kind: feed_end\r\nSwitchyard-Origin:  other\r\n  continued",
            br#"{"origin":"feed","published":3}"#,
        ),
    );
    add(
        "nats_import",
        "own",
        msg(
            0,
            "feed.end",
            "Switchyard-Kind: feed_end\r\nSwitchyard-Origin: me@0001",
            b"{}",
        ),
    );

    // Operations API.
    for (name, flags, body) in [
        ("trigger", 0u8, &br#"{"reason":"fat finger","scope":{"kind":"venue","name":"binance"},"mode":"reduce-only","source":"ops"}"#[..]),
        ("trigger_all", 4, br#"{"reason":"x","scope":{"kind":"all"}}"#),
        ("reset", 2 | 16, br#"{"scope":{"kind":"strategy","name":"mac"},"who":"alice"}"#),
        ("reset_empty", 2 | 32, b"  \n"),
        ("reset_no_secret", 2 | 16 | 64, b""),
        ("status", 3, b"GET /status\n"),
        ("metrics", 3, b"GET /metrics\n"),
        ("wrong_method", 3, b"DELETE /kill-switch\n{}"),
    ] {
        let mut seed = vec![flags];
        seed.extend_from_slice(body);
        add("ops_http", name, seed);
    }

    for (target, name, data) in seeds {
        let dir: PathBuf = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), data)?;
    }
    println!("seeds written to {}", root.display());
    Ok(())
}
