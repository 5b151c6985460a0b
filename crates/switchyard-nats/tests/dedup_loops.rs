//! Duplicate suppression, redelivery, and loop prevention.

mod common;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::pull;
use common::*;
use switchyard::{Bus, Topic};
use switchyard_nats::testing::NatsServer;
use switchyard_nats::{Bridge, BridgeConfig, JetStreamConfig, Mode, wire};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire as kinds;

const T: Duration = Duration::from_secs(20);

fn headers(id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(wire::MSG_ID, id);
    h.insert(wire::KIND, kinds::MARKET_EVENT);
    h.insert(wire::ORIGIN, "ext@1");
    h.insert(wire::CONTENT_TYPE, wire::JSON);
    h
}

fn body(n: u64) -> bytes::Bytes {
    serde_json::to_vec(&trade(n)).unwrap().into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_duplicate_message_id_is_dropped() {
    let server = NatsServer::start().unwrap();
    let bus = Bus::new();
    let (seen, _s) = collect::<MarketEvent>(&bus, "market_data.>");
    let b = Bridge::builder(bus.clone(), BridgeConfig::core(server.url()))
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    let raw = async_nats::connect(server.url()).await.unwrap();
    for _ in 0..2 {
        raw.publish_with_headers("sy.market_data.trade.BTCUSDT", headers("ext@1:1"), body(1))
            .await
            .unwrap();
    }
    raw.publish_with_headers("sy.market_data.trade.BTCUSDT", headers("ext@1:2"), body(2))
        .await
        .unwrap();
    // A message of a kind nobody imports is counted and skipped.
    let mut h = headers("ext@1:3");
    h.insert(wire::KIND, "something_else");
    raw.publish_with_headers("sy.market_data.trade.BTCUSDT", h, body(3))
        .await
        .unwrap();
    raw.flush().await.unwrap();
    assert!(
        wait_until(T, || {
            let s = b.stats();
            s.received + s.duplicates_dropped + s.unknown_kind == 4
        })
        .await
    );
    let s = b.stats();
    assert_eq!(
        (s.received, s.duplicates_dropped, s.unknown_kind),
        (2, 1, 1)
    );
    assert!(wait_until(T, || len(&seen) == 2).await);
    let got: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, e)| e.clone())
        .collect();
    assert_eq!(got, vec![trade(1), trade(2)]);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_duplicates_and_redelivery_reach_the_bus_once() {
    let server = NatsServer::start().unwrap();
    let cfg = BridgeConfig {
        url: server.url(),
        origin: "b".into(),
        mode: Mode::JetStream(JetStreamConfig {
            stream: "DUP".into(),
            durable: "b".into(),
            ack_wait: Duration::from_secs(1),
            reorder_wait: Duration::from_millis(500),
            // Short, so that a repeated id can get past the server into the stream and
            // the importer's own de-duplication is what drops it.
            duplicate_window: Duration::from_millis(300),
            pull_batch: 16,
            ..Default::default()
        }),
        ..Default::default()
    };
    // The bridge creates the stream and the durable consumer; stop it before anything
    // is published, so that another client takes the first message from the consumer.
    let probe = Bridge::builder(Bus::new(), cfg.clone())
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    probe.shutdown().await;

    let raw = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(raw);
    let subject = "sy.market_data.trade.BTCUSDT";
    // The same message id twice within the window: the server keeps one.
    let first = js
        .publish_with_headers(subject, headers("ext@1:1"), body(1))
        .await
        .unwrap()
        .await
        .unwrap();
    let second = js
        .publish_with_headers(subject, headers("ext@1:1"), body(1))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate, "server-side duplicate window");
    for n in 2..=4 {
        js.publish_with_headers(subject, headers(&format!("ext@1:{n}")), body(n))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Another client of the durable consumer takes event 1 and never acks it: the
    // server redelivers it (to the bridge) after ack_wait.
    let stream = js.get_stream("DUP").await.unwrap();
    let consumer = stream.get_consumer::<pull::Config>("b").await.unwrap();
    let mut taken = consumer.fetch().max_messages(1).messages().await.unwrap();
    use futures_util::StreamExt;
    let m = taken.next().await.unwrap().unwrap();
    assert_eq!(wire::get(m.headers.as_ref(), wire::MSG_ID), Some("ext@1:1"));

    let bus = Bus::new();
    let (seen, _sub) = collect::<MarketEvent>(&bus, "market_data.>");
    let b = Bridge::builder(bus.clone(), cfg)
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    assert!(
        wait_until(T, || {
            let s = b.stats();
            s.received == 4 && s.redelivered >= 1
        })
        .await,
        "{:?}",
        b.stats()
    );
    // Once the window has passed, the same id gets into the stream again (the server
    // says it is not a duplicate): the importer drops it.
    let end = tokio::time::Instant::now() + T;
    loop {
        let ack = js
            .publish_with_headers(subject, headers("ext@1:1"), body(1))
            .await
            .unwrap()
            .await
            .unwrap();
        if !ack.duplicate {
            break;
        }
        assert!(tokio::time::Instant::now() < end, "the window never passed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        wait_until(T, || b.stats().duplicates_dropped >= 1).await,
        "{:?}",
        b.stats()
    );
    // Everything acked: nothing more can arrive.
    let end = tokio::time::Instant::now() + T;
    loop {
        let mut c = stream.get_consumer::<pull::Config>("b").await.unwrap();
        let i = c.info().await.unwrap();
        if i.num_pending == 0 && i.num_ack_pending == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "consumer never drained: {i:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut got: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, e)| e.clone())
        .collect();
    // Event 1 came back after ack_wait, behind 2..4.
    got.sort_by_key(|e| match e {
        MarketEvent::Trade(t) => t.trade_id.clone(),
        MarketEvent::Quote(_) => unreachable!(),
    });
    assert_eq!(got, vec![trade(1), trade(2), trade(3), trade(4)]);
    eprintln!("{:?}", b.stats());
    b.shutdown().await;
}

async fn no_echo(mode: impl Fn(&str) -> Mode) {
    let server = NatsServer::start().unwrap();
    let cfg = |origin: &str| BridgeConfig {
        url: server.url(),
        origin: origin.into(),
        mode: mode(origin),
        ..Default::default()
    };
    // Observer of everything on the wire.
    let raw = async_nats::connect(server.url()).await.unwrap();
    let mut wire_sub = raw.subscribe("sy.>").await.unwrap();
    raw.flush().await.unwrap();

    // A exports and imports the same pattern; C exports it too.
    let bus_a = Bus::new();
    let (seen_a, _s) = collect::<MarketEvent>(&bus_a, "market_data.>");
    let a = Bridge::builder(bus_a.clone(), cfg("a"))
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    let bus_c = Bus::new();
    let c = Bridge::builder(bus_c.clone(), cfg("c"))
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();

    let topic = Topic::new("market_data.trade.BTCUSDT").unwrap();
    bus_c.publish(topic, trade(1)).await.unwrap();
    c.flush().await.unwrap();
    // A imports C's event, and its exporter sees it and declines to send it back.
    assert!(
        wait_until(T, || a.stats().received == 1
            && a.stats().echo_suppressed == 1)
        .await,
        "{:?}",
        a.stats()
    );
    // A's own event goes out once and does not come back into A.
    bus_a.publish(topic, trade(2)).await.unwrap();
    a.flush().await.unwrap();
    raw.flush().await.unwrap();

    let mut on_wire = Vec::new();
    while on_wire.len() < 2 {
        let m = tokio::time::timeout(T, futures_util::StreamExt::next(&mut wire_sub))
            .await
            .unwrap()
            .unwrap();
        on_wire.push(
            wire::get(m.headers.as_ref(), wire::ORIGIN)
                .unwrap()
                .to_owned(),
        );
    }
    // A marker published after everything: anything echoed would arrive before it.
    raw.publish("sy.zz.marker", "".into()).await.unwrap();
    raw.flush().await.unwrap();
    let m = tokio::time::timeout(T, futures_util::StreamExt::next(&mut wire_sub))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        m.subject.as_str(),
        "sy.zz.marker",
        "unexpected message on the wire: {:?}",
        m.headers
    );
    assert!(on_wire[0].starts_with("c@"), "{on_wire:?}");
    assert!(on_wire[1].starts_with("a@"), "{on_wire:?}");
    let s = a.stats();
    assert_eq!(s.published, 1, "A exported only its own event: {s:?}");
    assert_eq!(s.echo_suppressed, 1);
    let got: Vec<_> = seen_a
        .lock()
        .unwrap()
        .iter()
        .map(|(_, e)| e.clone())
        .collect();
    assert_eq!(
        got,
        vec![trade(1), trade(2)],
        "A's bus: C's event once, its own once"
    );
    if let Mode::JetStream(_) = mode("x") {
        // A's own event came back through the stream and was skipped by origin.
        assert!(
            wait_until(T, || a.stats().own_skipped == 1).await,
            "{:?}",
            a.stats()
        );
        let js = async_nats::jetstream::new(raw.clone());
        let mut st = js.get_stream("LOOP").await.unwrap();
        // C's event, A's event, and the marker; no echo.
        assert_eq!(st.info().await.unwrap().state.messages, 3);
    }
    assert_eq!(len(&seen_a), 2);
    a.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_loops_core() {
    no_echo(|_| Mode::Core).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_loops_jetstream() {
    no_echo(|origin| {
        Mode::JetStream(JetStreamConfig {
            stream: "LOOP".into(),
            durable: origin.into(),
            ..Default::default()
        })
    })
    .await;
}
