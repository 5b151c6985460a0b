//! TLS options reach the client: a server that requires TLS, with a certificate signed by
//! a test CA made here with `openssl`, accepts a bridge that trusts that CA, and refuses
//! one that does not, with an error that says so.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use switchyard::{Bus, Topic};
use switchyard_nats::testing::NatsServer;
use switchyard_nats::{Bridge, BridgeConfig, TlsConfig};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire as kinds;

/// A CA, and a server certificate for 127.0.0.1 / localhost signed by it.
fn make_certs(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=switchyard test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_options_are_passed_through() {
    let dir = tempfile::tempdir().unwrap();
    if !make_certs(dir.path()) {
        eprintln!("SKIPPED: openssl is not available to make test certificates");
        return;
    }
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server.key");
    let server = NatsServer::start_with(&[
        "--tls",
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
    ])
    .unwrap();
    let cfg = |tls: TlsConfig| BridgeConfig {
        url: server.url(),
        tls,
        ..Default::default()
    };

    // Not trusting the test CA: refused, and the error says it is about the certificate.
    let untrusted = TlsConfig {
        require_tls: true,
        ..TlsConfig::default()
    };
    let err = Bridge::builder(Bus::new(), cfg(untrusted))
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .expect_err("a certificate from an unknown CA is refused");
    eprintln!("refused as expected: {err:#}");
    let msg = format!("{err:#}").to_lowercase();
    assert!(
        msg.contains("certificate") || msg.contains("tls") || msg.contains("issuer"),
        "{msg}"
    );

    // Trusting it: connected, and events cross.
    let trusted = TlsConfig {
        require_tls: true,
        root_ca: Some(dir.path().join("ca.pem")),
        ..TlsConfig::default()
    };
    let bus_a = Bus::new();
    let bus_b = Bus::new();
    let (seen, _sub) = collect::<MarketEvent>(&bus_b, "market_data.>");
    let b = Bridge::builder(bus_b.clone(), cfg(trusted.clone()))
        .import::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    let a = Bridge::builder(bus_a.clone(), cfg(trusted))
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .start()
        .await
        .unwrap();
    let topic = Topic::new("market_data.trade.BTCUSDT").unwrap();
    bus_a.publish(topic, trade(7)).await.unwrap();
    a.flush().await.unwrap();
    assert!(wait_until(Duration::from_secs(10), || len(&seen) == 1).await);
    assert_eq!(seen.lock().unwrap()[0].1, trade(7));
    a.shutdown().await;
    b.shutdown().await;
}
