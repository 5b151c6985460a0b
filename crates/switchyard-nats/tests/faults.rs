//! JetStream under a server crash: SIGKILL mid-stream, restart on the same port and store.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use switchyard::{Bus, Topic};
use switchyard_nats::testing::NatsServer;
use switchyard_nats::{Bridge, BridgeConfig, Health, JetStreamConfig, Mode};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire as kinds;

const N: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_stream_nothing_lost_nothing_duplicated() {
    let mut server = NatsServer::start().unwrap();
    let cfg = |origin: &str| BridgeConfig {
        url: server.url(),
        origin: origin.into(),
        mode: Mode::JetStream(JetStreamConfig {
            stream: "CRASH".into(),
            durable: "b".into(),
            publish_timeout: Duration::from_secs(1),
            ack_wait: Duration::from_secs(5),
            max_in_flight: 256,
            ..Default::default()
        }),
        buffer: 1024,
        max_reconnect_delay: Duration::from_millis(100),
        ..Default::default()
    };
    let bus_a = Bus::new();
    let bus_b = Bus::new();
    let (seen, _sub) = collect::<MarketEvent>(&bus_b, "market_data.>");
    let b = Bridge::builder(bus_b.clone(), cfg("b"))
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    let a = Bridge::builder(bus_a.clone(), cfg("a"))
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    assert_eq!(a.health(), Health::Healthy);

    let publisher = tokio::spawn({
        let bus_a = bus_a.clone();
        async move {
            let mut p =
                bus_a.publisher::<MarketEvent>(Topic::new("market_data.trade.BTCUSDT").unwrap());
            for n in 0..N {
                p.publish(trade(n)).await.unwrap();
                if n % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
    });

    // Kill the server once B has seen a good part of the stream, while A is still sending.
    assert!(wait_until(Duration::from_secs(30), || len(&seen) >= 2_000).await);
    tokio::task::block_in_place(|| server.kill());
    assert!(
        wait_until(Duration::from_secs(10), || matches!(
            a.health(),
            Health::Degraded(_)
        ) && matches!(
            b.health(),
            Health::Degraded(_)
        ))
        .await,
        "health while the server is down: a {:?}, b {:?}",
        a.health(),
        b.health()
    );
    assert!(!a.stats().connected);
    tokio::task::block_in_place(|| server.restart()).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || a.health() == Health::Healthy
            && b.health() == Health::Healthy)
        .await,
        "health after restart: a {:?}, b {:?}",
        a.health(),
        b.health()
    );

    tokio::time::timeout(Duration::from_secs(60), publisher)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), a.flush())
        .await
        .unwrap()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || len(&seen) as u64 >= N).await,
        "received {} of {N}; a {:?}; b {:?}",
        len(&seen),
        a.stats(),
        b.stats()
    );
    // Let anything late (a redelivery) arrive: the consumer has nothing pending any more.
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("CRASH").await.unwrap();
    assert!(
        wait_until_async(Duration::from_secs(30), || {
            let stream = stream.clone();
            async move {
                let mut c = stream
                    .get_consumer::<async_nats::jetstream::consumer::pull::Config>("b")
                    .await
                    .unwrap();
                let i = c.info().await.unwrap();
                i.num_pending == 0 && i.num_ack_pending == 0
            }
        })
        .await
    );

    let got = seen.lock().unwrap().clone();
    let ids: HashSet<String> = got
        .iter()
        .map(|(_, e)| match e {
            MarketEvent::Trade(t) => t.trade_id.clone(),
            MarketEvent::Quote(_) => unreachable!(),
        })
        .collect();
    let sa = a.stats();
    let sb = b.stats();
    eprintln!("a: {sa:?}\nb: {sb:?}");
    assert_eq!(ids.len() as u64, N, "distinct events");
    assert_eq!(
        got.len() as u64,
        N,
        "events on B's bus (duplicates would make more)"
    );
    assert_eq!(sa.published, N);
    assert!(sa.publish_acked >= N);
    assert!(
        sa.reconnects >= 1 && sb.reconnects >= 1,
        "reconnects a {sa:?} b {sb:?}"
    );
    assert!(sa.disconnects >= 1);
    assert_eq!(sb.received, N);
    assert_eq!(sa.buffered, 0);
    // A retry after the crash may land in the stream behind later events; the importer
    // puts them back in order (the exporter sends what the old connection lost again as
    // soon as the new one is up, so the gap fills long before `reorder_wait`).
    let reordered = got
        .windows(2)
        .filter(|w| trade_no(&w[1].1) < trade_no(&w[0].1))
        .count() as u64;
    assert_eq!(reordered, 0, "{sb:?}");
    assert_eq!((sb.out_of_order, sb.gaps_skipped), (0, 0), "{sb:?}");
    a.shutdown().await;
    b.shutdown().await;
}

async fn wait_until_async<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// While the server is down, exported events wait within the bound (`buffer`, the
/// export queue); past it the export subscription's overflow policy applies — here
/// `DropNewest` — and every drop is counted. What was kept arrives once, after the
/// restart; kept + dropped = published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_buffer_the_overflow_policy_applies_and_is_counted() {
    const SENT: u64 = 3_000;
    let mut server = NatsServer::start().unwrap();
    let cfg = |origin: &str| BridgeConfig {
        url: server.url(),
        origin: origin.into(),
        mode: Mode::JetStream(JetStreamConfig {
            stream: "OVERFLOW".into(),
            durable: "b".into(),
            publish_timeout: Duration::from_millis(500),
            max_in_flight: 64,
            ..Default::default()
        }),
        buffer: 128,
        max_reconnect_delay: Duration::from_millis(100),
        ..Default::default()
    };
    let bus_a = Bus::new();
    let bus_b = Bus::new();
    let (seen, _sub) = collect::<MarketEvent>(&bus_b, "market_data.>");
    let b = Bridge::builder(bus_b.clone(), cfg("b"))
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    let a = Bridge::builder(bus_a.clone(), cfg("a"))
        .export_with::<MarketEvent>(
            kinds::MARKET_DATA,
            kinds::MARKET_EVENT,
            256,
            switchyard::bus::Overflow::DropNewest,
        )
        .start()
        .await
        .unwrap();
    tokio::task::block_in_place(|| server.kill());
    assert!(wait_until(Duration::from_secs(10), || !a.stats().connected).await);
    let topic = Topic::new("market_data.trade.BTCUSDT").unwrap();
    for n in 0..SENT {
        // DropNewest never makes the publisher wait.
        bus_a.try_publish(topic, trade(n)).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(10), || a.stats().dropped_overflow > 0).await,
        "{:?}",
        a.stats()
    );
    let dropped = a.stats().dropped_overflow;
    // Bounded: export queue (256) + bridge buffer (128) + publishes in flight (64) + one
    // batch the exporter holds (256) + the event in the export handler.
    assert!(
        a.stats().buffered <= 256 + 128 + 64 + 256 + 1,
        "{:?}",
        a.stats()
    );
    tokio::task::block_in_place(|| server.restart()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), a.flush())
        .await
        .unwrap()
        .unwrap();
    let kept = SENT - dropped;
    assert!(
        wait_until(Duration::from_secs(60), || len(&seen) as u64 >= kept).await,
        "received {} of {kept}; a {:?}",
        len(&seen),
        a.stats()
    );
    let sa = a.stats();
    assert_eq!(sa.dropped_overflow, dropped, "no drops after the restart");
    assert_eq!(sa.published, kept, "{sa:?}");
    let ids: HashSet<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, e)| match e {
            MarketEvent::Trade(t) => t.trade_id.clone(),
            MarketEvent::Quote(_) => unreachable!(),
        })
        .collect();
    assert_eq!(ids.len() as u64, kept);
    assert_eq!(len(&seen) as u64, kept, "no duplicates");
    a.shutdown().await;
    b.shutdown().await;
}

fn trade_no(e: &MarketEvent) -> u64 {
    match e {
        MarketEvent::Trade(t) => t.trade_id.trim_start_matches('t').parse().unwrap(),
        MarketEvent::Quote(_) => unreachable!(),
    }
}
