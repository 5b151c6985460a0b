//! JetStream publishes that keep failing make the bridge Degraded (and go through once the
//! cause is fixed); publishes that can never succeed are dropped and counted instead of
//! blocking the exports behind them.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream;
use common::*;
use switchyard::{Bus, Topic};
use switchyard_nats::testing::NatsServer;
use switchyard_nats::{Bridge, BridgeConfig, Health, JetStreamConfig, Mode};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire as kinds;

fn cfg(url: String, origin: &str, stream: &str, durable: &str) -> BridgeConfig {
    BridgeConfig {
        url,
        origin: origin.into(),
        mode: Mode::JetStream(JetStreamConfig {
            stream: stream.into(),
            durable: durable.into(),
            publish_timeout: Duration::from_secs(1),
            storage: switchyard_nats::Storage::Memory,
            ..Default::default()
        }),
        max_reconnect_delay: Duration::from_millis(100),
        ..Default::default()
    }
}

fn trade_id(e: &MarketEvent) -> String {
    match e {
        MarketEvent::Trade(t) => t.trade_id.clone(),
        other => panic!("not a trade: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_deleted_while_exporting_degrades_then_recovers() {
    let server = NatsServer::start().unwrap();
    let bus = Bus::new();
    let a = Bridge::builder(bus.clone(), cfg(server.url(), "a", "GONE", "a"))
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    let topic = Topic::new("market_data.trade.BTCUSDT").unwrap();
    for n in 0..5 {
        bus.publish(topic, trade(n)).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), a.flush())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.health(), Health::Healthy);

    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let config = js
        .get_stream("GONE")
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    js.delete_stream("GONE").await.unwrap();
    for n in 100..120 {
        bus.publish(topic, trade(n)).await.unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(15), || matches!(
            a.health(),
            Health::Degraded(ref m) if m.contains("JetStream publishes failing")
        ))
        .await,
        "health {:?}, stats {:?}",
        a.health(),
        a.stats()
    );
    let s = a.stats();
    eprintln!("degraded: {:?}; {s:?}", a.health());
    assert!(s.connected && s.publish_failing_attempts > 0, "{s:?}");
    assert!(s.last_publish_error.is_some(), "{s:?}");
    assert_eq!(s.buffered, 20, "{s:?}");

    // Fix the cause: the queued events go through, nothing lost.
    js.create_stream(config).await.unwrap();
    tokio::time::timeout(Duration::from_secs(15), a.flush())
        .await
        .expect("queued events acked once the stream is back")
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || a.health() == Health::Healthy).await,
        "{:?}",
        a.health()
    );
    let s = a.stats();
    assert_eq!(s.publish_failing_attempts, 0, "{s:?}");
    assert_eq!(s.last_publish_error, None);
    assert_eq!(s.publish_rejected, 0);

    // A fresh importer reads exactly the 20 queued events from the recreated stream.
    let bus_c = Bus::new();
    let (seen, _sub) = collect::<MarketEvent>(&bus_c, "market_data.>");
    let c = Bridge::builder(bus_c.clone(), cfg(server.url(), "c", "GONE", "c"))
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || len(&seen) >= 20).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got: HashSet<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, e)| trade_id(e))
        .collect();
    let want: HashSet<String> = (100..120).map(|n| format!("t{n}")).collect();
    assert_eq!(len(&seen), 20);
    assert_eq!(got, want);
    a.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_max_payload_is_dropped_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("small.conf");
    std::fs::write(&conf, "max_payload: 4096\n").unwrap();
    let server = NatsServer::start_with(&["-c", conf.to_str().unwrap()]).unwrap();
    let bus = Bus::new();
    let a = Bridge::builder(bus.clone(), cfg(server.url(), "a", "BIG", "a"))
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    let bus_b = Bus::new();
    let (seen, _sub) = collect::<MarketEvent>(&bus_b, "market_data.>");
    let b = Bridge::builder(bus_b.clone(), cfg(server.url(), "b", "BIG", "b"))
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    let topic = Topic::new("market_data.trade.BTCUSDT").unwrap();
    let mut huge = trade(1);
    if let MarketEvent::Trade(t) = &mut huge {
        t.trade_id = "x".repeat(10_000);
    }
    bus.publish(topic, trade(0)).await.unwrap();
    bus.publish(topic, huge).await.unwrap();
    bus.publish(topic, trade(2)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), a.flush())
        .await
        .expect("the oversized event does not block the queue")
        .unwrap();
    let s = a.stats();
    assert_eq!(s.publish_rejected, 1, "{s:?}");
    assert_eq!(s.publish_acked, 2, "{s:?}");
    assert_eq!(a.health(), Health::Healthy);
    assert!(wait_until(Duration::from_secs(10), || len(&seen) == 2).await);
    let got: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, e)| trade_id(e))
        .collect();
    assert_eq!(got, ["t0", "t2"]);
    a.shutdown().await;
    b.shutdown().await;
}
