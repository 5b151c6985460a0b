//! The bus in a few lines: typed events, a wildcard subscription with conflation, the
//! control lane, and a drain report at shutdown.
//!
//! `cargo run -p switchyard --example 01_bus`

use std::time::Duration;

use switchyard::bus::{Overflow, sync_handler};
use switchyard::control::ControlEvent;
use switchyard::{Bus, ControlEnvelope, Envelope, Topic};

#[derive(Debug)]
struct Quote {
    bid: i64,
    ask: i64,
}

struct Strategy;

impl switchyard::bus::Handler<Quote> for Strategy {
    async fn handle(&mut self, ev: &Envelope<Quote>) -> switchyard::bus::HandlerResult {
        println!("{} #{} {:?}", ev.topic, ev.seq, ev.payload());
        Ok(())
    }

    async fn on_control(&mut self, ev: &ControlEnvelope) -> switchyard::bus::HandlerResult {
        println!("control ahead of data: {:?}", ev.event);
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    let bus = Bus::new();
    let sub = bus
        .subscription::<Quote>("market_data.quote.*")
        .expect("valid pattern")
        .name("strategy")
        .capacity(1024)
        .overflow(Overflow::Conflate)
        .control(true)
        .subscribe(Strategy)
        .expect("subscribed");
    // A second, plain subscriber to the same events: the payload is shared, not cloned.
    bus.subscribe::<Quote, _>(
        "market_data.>",
        sync_handler(|ev: &Envelope<Quote>| {
            assert!(ev.payload().bid < ev.payload().ask);
            Ok(())
        }),
    )
    .expect("subscribed");
    for (sym, bid) in [("BTCUSDT", 968_192), ("ETHUSDT", 25_850)] {
        let mut p =
            bus.publisher::<Quote>(Topic::new(&format!("market_data.quote.{sym}")).unwrap());
        p.publish(Quote { bid, ask: bid + 8 })
            .await
            .expect("bus open");
    }
    bus.publish_control(ControlEvent::Shutdown {
        reason: "example done".into(),
    });
    let report = bus.shutdown(Duration::from_secs(1)).await;
    print!("{report}");
    println!("strategy delivered {}", sub.stats().delivered);
}
