//! The wire format is readable without async-nats: a raw NATS protocol client over
//! `std::net::TcpStream` subscribes, and parses the `HMSG` by hand.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use switchyard::{Bus, Topic};
use switchyard_nats::testing::NatsServer;
use switchyard_nats::{Bridge, BridgeConfig};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire as kinds;

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).unwrap();
    s.trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_protocol_client_reads_headers_and_json() {
    let server = NatsServer::start().unwrap();
    let port = server.port();
    // Raw client: CONNECT with headers, SUB, PING; PONG means the SUB is in place.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        assert!(line(&mut r).starts_with("INFO "));
        s.write_all(b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB sy.> 1\r\nPING\r\n")
            .unwrap();
        assert_eq!(line(&mut r), "PONG");
        ready_tx.send(()).unwrap();
        loop {
            let l = line(&mut r);
            if l == "PING" {
                s.write_all(b"PONG\r\n").unwrap();
                continue;
            }
            // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(parts[0], "HMSG", "{l}");
            let total: usize = parts[parts.len() - 1].parse().unwrap();
            let hdr_len: usize = parts[parts.len() - 2].parse().unwrap();
            let mut buf = vec![0; total + 2];
            r.read_exact(&mut buf).unwrap();
            let headers = String::from_utf8(buf[..hdr_len].to_vec()).unwrap();
            let payload = buf[hdr_len..total].to_vec();
            return (parts[1].to_owned(), headers, payload);
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(20)).unwrap();

    let bus = Bus::new();
    let a = Bridge::builder(
        bus.clone(),
        BridgeConfig {
            origin: "feed-1".into(),
            ..BridgeConfig::core(server.url())
        },
    )
    .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
    .start()
    .await
    .unwrap();
    let seq = bus
        .publish(Topic::new("market_data.trade.BTCUSDT").unwrap(), trade(7))
        .await
        .unwrap();
    a.flush().await.unwrap();
    let (subject, headers, payload) = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    println!("{subject}\n{headers}{}", String::from_utf8_lossy(&payload));

    assert_eq!(subject, "sy.market_data.trade.BTCUSDT");
    let mut lines = headers.split("\r\n");
    assert_eq!(lines.next(), Some("NATS/1.0"));
    let map: std::collections::HashMap<&str, &str> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim(), v.trim())
        })
        .collect();
    let origin = map["Switchyard-Origin"];
    assert!(
        origin.starts_with("feed-1@") && origin.len() == "feed-1@".len() + 16,
        "{origin}"
    );
    assert_eq!(map["Nats-Msg-Id"], format!("{origin}:{seq}"));
    assert_eq!(map["Switchyard-Kind"], "market_event");
    assert_eq!(map["Switchyard-Seq"], seq.to_string());
    assert!(map["Switchyard-Ts"].parse::<u64>().unwrap() > 1_600_000_000_000_000_000);
    assert_eq!(map["Content-Type"], "application/json");
    let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(json, serde_json::to_value(trade(7)).unwrap());
    assert_eq!(json["type"], "trade");
    assert_eq!(json["instrument"]["symbol"], "BTCUSDT");
    a.shutdown().await;
}
