//! Credentials in the server URL: they work (raw or percent-encoded, with a '/' in the
//! password), and no DEBUG log line (the client logs the server address on every
//! (re)connect) carries the password, neither on connect nor on reconnect.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use switchyard::{Bus, Topic};
use switchyard_nats::testing::NatsServer;
use switchyard_nats::{Bridge, BridgeConfig, Health};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire as kinds;

const PASS: &str = "pa/ss";

/// Everything logged at DEBUG and above, by every thread, since the first call.
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .init();
        log
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn text(log: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&log.lock().unwrap()).into_owned()
}

async fn round_trip(url: String, server: &mut NatsServer, n: u64) {
    let log = captured();
    let bus = Bus::new();
    let (seen, _sub) = collect::<MarketEvent>(&bus, "market_data.>");
    let cfg = |origin: &str| BridgeConfig {
        url: url.clone(),
        origin: origin.into(),
        max_reconnect_delay: Duration::from_millis(100),
        ..Default::default()
    };
    let b = Bridge::builder(bus.clone(), cfg("b"))
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .expect("URL credentials accepted");
    let a_bus = Bus::new();
    let a = Bridge::builder(a_bus.clone(), cfg("a"))
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .expect("URL credentials accepted");
    let topic = Topic::new("market_data.trade.BTCUSDT").unwrap();
    a_bus.publish(topic, trade(n)).await.unwrap();
    assert!(wait_until(Duration::from_secs(10), || len(&seen) == 1).await);

    // Reconnect: the client logs the server address again.
    tokio::task::block_in_place(|| server.restart()).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || a.stats().reconnects >= 1
            && b.stats().reconnects >= 1
            && a.health() == Health::Healthy
            && b.health() == Health::Healthy)
        .await,
        "a {:?}, b {:?}",
        a.stats(),
        b.stats()
    );
    a_bus.publish(topic, trade(n + 1)).await.unwrap();
    assert!(wait_until(Duration::from_secs(10), || len(&seen) == 2).await);
    a.shutdown().await;
    b.shutdown().await;

    let logged = text(&log);
    // The capture works: the client's own connect lines are there.
    assert!(
        logged.contains("attempting connection") && logged.contains("127.0.0.1"),
        "no client debug lines captured:\n{logged}"
    );
    assert!(logged.contains("NATS connection restored"), "{logged}");
    for secret in [PASS, "pa%2Fss", "pa%2fss"] {
        assert!(!logged.contains(secret), "{secret} logged:\n{logged}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_credentials_work_and_never_reach_the_logs() {
    let _ = captured();
    let mut server = NatsServer::start_with(&["--user", "u", "--pass", PASS]).unwrap();
    let port = server.port();
    // Percent-encoded, as a URL should be written.
    round_trip(format!("nats://u:pa%2Fss@127.0.0.1:{port}"), &mut server, 1).await;
    // Raw: the userinfo runs to the last '@'.
    round_trip(format!("nats://u:{PASS}@127.0.0.1:{port}"), &mut server, 10).await;
    // Several servers (the same one twice), credentials on each.
    round_trip(
        format!("nats://u:{PASS}@127.0.0.1:{port}, nats://u:pa%2Fss@127.0.0.1:{port}"),
        &mut server,
        20,
    )
    .await;
    // Wrong URL password: refused, and the configured auth wins over the URL.
    let bad = BridgeConfig {
        url: format!("nats://u:nope/x@127.0.0.1:{port}"),
        ..Default::default()
    };
    let err = Bridge::builder(Bus::new(), bad.clone())
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("nope/x"), "{err}");
    let overridden = BridgeConfig {
        auth: switchyard_nats::Auth::UserPassword {
            user: "u".into(),
            password: switchyard_nats::Secret::new(PASS),
        },
        ..bad
    };
    let b = Bridge::builder(Bus::new(), overridden)
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .expect("configured auth wins over URL credentials");
    b.shutdown().await;
    let logged = text(&captured());
    assert!(
        !logged.contains(PASS) && !logged.contains("nope/x"),
        "{logged}"
    );
}
