//! The JetStream importer puts each lane back in order: messages stored behind a gap
//! are held (unacked) until it fills, released after `reorder_wait` if it does not, and
//! given back to the server when the bridge stops.

mod common;

use std::time::Duration;

use async_nats::jetstream;
use common::*;
use switchyard::{Bus, Subscription};
use switchyard_nats::testing::NatsServer;
use switchyard_nats::{Bridge, BridgeConfig, BridgeStats, JetStreamConfig, Mode, wire};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire as kinds;

const T: Duration = Duration::from_secs(20);
const SUBJECT: &str = "sy.market_data.trade.BTCUSDT";

fn config(server: &NatsServer, reorder_wait: Duration) -> BridgeConfig {
    BridgeConfig {
        url: server.url(),
        origin: "b".into(),
        mode: Mode::JetStream(JetStreamConfig {
            stream: "RESEQ".into(),
            durable: "b".into(),
            ack_wait: Duration::from_secs(30),
            reorder_wait,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A stream and a raw publisher standing in for a remote exporter whose lane
/// `sy.market_data.>` numbers its messages like the bridge does.
async fn publisher(server: &NatsServer) -> jetstream::Context {
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    js.get_or_create_stream(jetstream::stream::Config {
        name: "RESEQ".into(),
        subjects: vec!["sy.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    js
}

async fn publish(js: &jetstream::Context, lane: &str, n: u64) {
    let h = wire::lane_headers("ext@1", kinds::MARKET_EVENT, n, n, lane, n);
    let body = serde_json::to_vec(&trade(n)).unwrap();
    js.publish_with_headers(SUBJECT, h, body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// A bridge importing `pattern`, and what reaches its bus (while the subscription lives).
async fn start(
    server: &NatsServer,
    wait: Duration,
    pattern: &str,
) -> (Bridge, Seen<MarketEvent>, Subscription) {
    let bus = Bus::new();
    let (seen, sub) = collect::<MarketEvent>(&bus, "market_data.>");
    let b = Bridge::builder(bus, config(server, wait))
        .import::<MarketEvent>(pattern, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    (b, seen, sub)
}

fn order(seen: &Seen<MarketEvent>) -> Vec<u64> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(_, e)| match e {
            MarketEvent::Trade(t) => t.trade_id[1..].parse().unwrap(),
            MarketEvent::Quote(_) => unreachable!(),
        })
        .collect()
}

/// The stats once `cond` holds and the bus has handed every received event to `seen`.
async fn stats_until(
    b: &Bridge,
    seen: &Seen<MarketEvent>,
    cond: impl Fn(&BridgeStats) -> bool,
) -> BridgeStats {
    let settled = || {
        let s = b.stats();
        cond(&s) && len(seen) as u64 == s.received
    };
    assert!(wait_until(T, settled).await, "{:?}", b.stats());
    b.stats()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_stored_behind_a_gap_reach_the_bus_in_lane_order() {
    let server = NatsServer::start().unwrap();
    let js = publisher(&server).await;
    let (b, seen, _sub) = start(&server, Duration::from_secs(10), kinds::MARKET_DATA).await;
    for n in [1, 3, 4] {
        publish(&js, "sy.market_data.>", n).await;
    }
    let s = stats_until(&b, &seen, |s| s.held == 2).await;
    assert_eq!(order(&seen), vec![1], "3 and 4 wait for 2: {s:?}");
    for n in [2, 5] {
        publish(&js, "sy.market_data.>", n).await;
    }
    let s = stats_until(&b, &seen, |s| s.received == 5).await;
    assert_eq!(order(&seen), vec![1, 2, 3, 4, 5]);
    assert_eq!(
        (s.resequenced, s.out_of_order, s.gaps_skipped, s.held),
        (2, 0, 0, 0)
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_that_never_fills_is_given_up_after_the_wait_and_a_late_message_still_arrives() {
    let server = NatsServer::start().unwrap();
    let js = publisher(&server).await;
    let (b, seen, _sub) = start(&server, Duration::from_millis(300), kinds::MARKET_DATA).await;
    for n in [1, 3, 4] {
        publish(&js, "sy.market_data.>", n).await;
    }
    let s = stats_until(&b, &seen, |s| s.received == 3).await;
    assert_eq!(order(&seen), vec![1, 3, 4]);
    assert_eq!((s.gaps_skipped, s.resequenced, s.held), (1, 2, 0));
    // The missing one after all: delivered (nothing accepted is lost), late, and counted.
    publish(&js, "sy.market_data.>", 2).await;
    let s = stats_until(&b, &seen, |s| s.received == 4).await;
    assert_eq!(order(&seen), vec![1, 3, 4, 2]);
    assert_eq!((s.late_after_gap, s.out_of_order), (1, 1));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_messages_are_given_back_at_shutdown_and_redelivered_at_once() {
    let server = NatsServer::start().unwrap();
    let js = publisher(&server).await;
    let (b, seen, _sub) = start(&server, Duration::from_secs(10), kinds::MARKET_DATA).await;
    for n in [1, 3] {
        publish(&js, "sy.market_data.>", n).await;
    }
    stats_until(&b, &seen, |s| s.held == 1).await;
    b.shutdown().await;
    assert_eq!(order(&seen), vec![1]);
    // The next importer gets it at once, NAKed (not after ack_wait: 30 s, more than the
    // 20 s `stats_until` waits), and starts the lane there; 4 follows in order.
    let (b, seen, _sub) = start(&server, Duration::from_secs(10), kinds::MARKET_DATA).await;
    stats_until(&b, &seen, |s| s.received == 1).await;
    publish(&js, "sy.market_data.>", 4).await;
    let s = stats_until(&b, &seen, |s| s.received == 2).await;
    assert_eq!(order(&seen), vec![3, 4]);
    assert_eq!(s.held, 0);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_wider_than_the_consumer_filter_is_not_held() {
    let server = NatsServer::start().unwrap();
    let js = publisher(&server).await;
    // One import pattern: the consumer filters on `sy.market_data.trade.>`, and sees only
    // part of a lane exported as `sy.market_data.>` (its gaps would never fill).
    let (b, seen, _sub) = start(&server, Duration::from_secs(10), "market_data.trade.>").await;
    for n in [1, 3, 2] {
        publish(&js, "sy.market_data.>", n).await;
    }
    let s = stats_until(&b, &seen, |s| s.received == 3).await;
    assert_eq!(order(&seen), vec![1, 3, 2]);
    assert_eq!((s.held, s.resequenced, s.out_of_order), (0, 0, 1));
    b.shutdown().await;
}
