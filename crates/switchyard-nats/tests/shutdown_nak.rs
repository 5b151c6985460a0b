//! A JetStream importer shut down mid-batch gives back (NAKs) what it pulled but did not
//! hand to its bus: the next importer on the same durable gets those at once and in
//! order, not after `ack_wait`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use common::*;
use switchyard::Bus;
use switchyard::Envelope;
use switchyard::bus::{Overflow, handler_fn};
use switchyard_nats::testing::NatsServer;
use switchyard_nats::{Bridge, BridgeConfig, JetStreamConfig, Mode, wire};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire as kinds;

const N: u64 = 300;

fn headers(n: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(wire::MSG_ID, format!("ext@1:{n}").as_str());
    h.insert(wire::KIND, kinds::MARKET_EVENT);
    h.insert(wire::ORIGIN, "ext@1");
    h.insert(wire::CONTENT_TYPE, wire::JSON);
    h
}

fn n_of(e: &MarketEvent) -> u64 {
    match e {
        MarketEvent::Trade(t) => t.trade_id[1..].parse().unwrap(),
        other => panic!("not a trade: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessed_batch_is_redelivered_at_once_to_the_next_importer() {
    let server = NatsServer::start().unwrap();
    let cfg = |origin: &str| BridgeConfig {
        url: server.url(),
        origin: origin.into(),
        mode: Mode::JetStream(JetStreamConfig {
            stream: "NAK".into(),
            durable: "imp".into(),
            ack_wait: Duration::from_secs(30),
            pull_batch: 64,
            storage: switchyard_nats::Storage::Memory,
            ..Default::default()
        }),
        shutdown_timeout: Duration::from_secs(2),
        ..Default::default()
    };

    // First importer: a gated subscriber (capacity 1, Block) holds the importer mid-batch;
    // an unbounded one records what the bus accepted.
    let bus1 = Bus::new();
    let (accepted, _all) = collect::<MarketEvent>(&bus1, "market_data.>");
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let _gated = {
        let gate = gate.clone();
        bus1.subscription::<MarketEvent>("market_data.>")
            .unwrap()
            .capacity(1)
            .overflow(Overflow::Block)
            .subscribe(handler_fn(move |_: &Envelope<MarketEvent>| {
                let gate = gate.clone();
                async move {
                    gate.acquire().await.unwrap().forget();
                    Ok(())
                }
            }))
            .unwrap()
    };
    let b1 = Bridge::builder(bus1.clone(), cfg("b1"))
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();

    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    for n in 0..N {
        js.publish_with_headers(
            "sy.market_data.trade.BTCUSDT",
            headers(n),
            serde_json::to_vec(&trade(n)).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    gate.add_permits(10);
    assert!(wait_until(Duration::from_secs(10), || len(&accepted) >= 10).await);
    // The importer is blocked on the full subscriber with a pulled batch in hand (it
    // cannot hand over the next event). Shut down; the importer finishes the event in
    // hand once the subscriber makes room, and gives the rest of the batch back.
    assert!(
        wait_until(Duration::from_secs(10), || {
            len(&accepted) as u64 > b1.stats().received
        })
        .await,
        "the importer is mid-publish"
    );
    let shutdown = tokio::spawn({
        let b1 = b1.clone();
        async move { b1.shutdown().await }
    });
    gate.add_permits(1_000);
    shutdown.await.unwrap();
    let first: Vec<u64> = accepted
        .lock()
        .unwrap()
        .iter()
        .map(|(_, e)| n_of(e))
        .collect();
    assert_eq!(first, (0..first.len() as u64).collect::<Vec<_>>());
    assert!(first.len() < 64, "stopped mid-batch: {}", first.len());

    // Second importer on the same durable: the rest, promptly, in order.
    let started = std::time::Instant::now();
    let bus2 = Bus::new();
    let (seen, _s2) = collect::<MarketEvent>(&bus2, "market_data.>");
    let b2 = Bridge::builder(bus2.clone(), cfg("b2"))
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    let rest = N as usize - first.len();
    assert!(
        wait_until(Duration::from_secs(10), || len(&seen) >= rest).await,
        "second importer got {} of {rest} within 10 s (ack_wait is 30 s): {:?}",
        len(&seen),
        b2.stats()
    );
    eprintln!("rest of the batch after {:?}", started.elapsed());
    let second: Vec<u64> = seen.lock().unwrap().iter().map(|(_, e)| n_of(e)).collect();
    assert_eq!(
        second,
        (first.len() as u64..N).collect::<Vec<_>>(),
        "everything after the first importer's share, in order"
    );
    b2.shutdown().await;
}
