//! Every trading event type through core NATS and JetStream: bus A exports, bus B imports.

mod common;

use std::time::Duration;

use common::*;
use switchyard::{Bus, Topic};
use switchyard_nats::testing::NatsServer;
use switchyard_nats::{Bridge, BridgeConfig, JetStreamConfig, Mode};
use switchyard_trading::exchange::ExecEvent;
use switchyard_trading::model::{MarketEvent, OrderRejected, OrderRequest};
use switchyard_trading::wire as kinds;

const T: Duration = Duration::from_secs(20);

async fn round_trip(mode: Mode) {
    let server = NatsServer::start().unwrap();
    let cfg = |origin: &str, durable: &str| BridgeConfig {
        url: server.url(),
        origin: origin.into(),
        mode: match &mode {
            Mode::Core => Mode::Core,
            Mode::JetStream(j) => Mode::JetStream(JetStreamConfig {
                durable: durable.into(),
                ..j.clone()
            }),
        },
        ..Default::default()
    };
    let bus_a = Bus::new();
    let bus_b = Bus::new();
    let (md, _s1) = collect::<MarketEvent>(&bus_b, "market_data.>");
    let (req, _s2) = collect::<OrderRequest>(&bus_b, "orders.request.>");
    let (ex, _s3) = collect::<ExecEvent>(&bus_b, "orders.event.>");
    let (rej, _s4) = collect::<OrderRejected>(&bus_b, "orders.rejected.>");

    let b = Bridge::builder(bus_b.clone(), cfg("node-b", "b"))
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .import::<OrderRequest>(kinds::ORDER_REQUESTS, kinds::ORDER_REQUEST)
        .import::<ExecEvent>(kinds::EXEC_EVENTS, kinds::EXEC_EVENT)
        .import::<OrderRejected>(kinds::ORDER_REJECTIONS, kinds::ORDER_REJECTED)
        .start()
        .await
        .unwrap();
    let a = Bridge::builder(bus_a.clone(), cfg("node-a", "a"))
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .export::<OrderRequest>(kinds::ORDER_REQUESTS, kinds::ORDER_REQUEST)
        .export::<ExecEvent>(kinds::EXEC_EVENTS, kinds::EXEC_EVENT)
        .export::<OrderRejected>(kinds::ORDER_REJECTIONS, kinds::ORDER_REJECTED)
        .start()
        .await
        .unwrap();

    let t = |s: &str| Topic::new(s).unwrap();
    bus_a
        .publish(t("market_data.trade.BTCUSDT"), trade(1))
        .await
        .unwrap();
    bus_a
        .publish(t("market_data.quote.BTCUSDT"), quote(2))
        .await
        .unwrap();
    bus_a
        .publish(t("orders.request.ma-cross"), order_request())
        .await
        .unwrap();
    for e in exec_events() {
        bus_a.publish(t("orders.event.ma-cross"), e).await.unwrap();
    }
    bus_a
        .publish(t("orders.rejected.ma-cross"), rejected())
        .await
        .unwrap();
    tokio::time::timeout(T, a.flush()).await.unwrap().unwrap();

    assert!(
        wait_until(T, || len(&md) == 2
            && len(&req) == 1
            && len(&ex) == 5
            && len(&rej) == 1)
        .await,
        "b stats: {:?}",
        b.stats()
    );
    assert_eq!(
        *md.lock().unwrap(),
        vec![
            ("market_data.trade.BTCUSDT".to_string(), trade(1)),
            ("market_data.quote.BTCUSDT".to_string(), quote(2)),
        ]
    );
    assert_eq!(
        *req.lock().unwrap(),
        vec![("orders.request.ma-cross".to_string(), order_request())]
    );
    let want: Vec<_> = exec_events()
        .into_iter()
        .map(|e| ("orders.event.ma-cross".to_string(), e))
        .collect();
    assert_eq!(*ex.lock().unwrap(), want);
    assert_eq!(
        *rej.lock().unwrap(),
        vec![("orders.rejected.ma-cross".to_string(), rejected())]
    );
    let sa = a.stats();
    let sb = b.stats();
    assert_eq!(sa.published, 9);
    if matches!(mode, Mode::JetStream(_)) {
        assert_eq!(sa.publish_acked, 9);
    }
    assert_eq!(sb.received, 9);
    assert_eq!(sb.duplicates_dropped, 0);
    assert_eq!(sb.unknown_kind, 0);
    assert!(matches!(a.health(), switchyard_nats::Health::Healthy));
    let ra = a.shutdown().await;
    assert_eq!(ra.unflushed, 0);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_core() {
    round_trip(Mode::Core).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_jetstream() {
    round_trip(Mode::JetStream(JetStreamConfig {
        stream: "RT".into(),
        ..Default::default()
    }))
    .await;
}
