//! The pipeline split across processes over NATS JetStream: a feed process and a
//! strategy process decide exactly what one process decides on the same data.

use std::process::Stdio;

use switchyard_nats::testing::NatsServer;

mod common;
use common::*;

fn outcome(s: &serde_json::Value) -> serde_json::Value {
    let e = &s["engine"];
    serde_json::json!({
        "orders": e["stats"]["orders"],
        "fills": e["stats"]["fills"],
        "rejections": e["stats"]["rejections"],
        "positions": e["positions"],
        "total_pnl": e["total_pnl"],
    })
}

fn run_args<'a>(feed: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--quiet",
        "--log-format",
        "json",
        "run",
        "--feed",
        feed,
        "--speed",
        "max",
        "--http",
        "off",
        "--journal",
        "off",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn feed_and_strategy_processes_over_jetstream_match_one_process() {
    let feed = btc_feed();
    let one = switchyard(&run_args(&feed, &[]));
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let one = summary_json(&one);
    assert!(one["engine"]["stats"]["orders"].as_u64().unwrap() > 0);

    let server = NatsServer::start().expect("nats-server (scripts/test installs it)");
    let url = server.url();
    // The strategy starts first and waits for market data.
    let strategy = cmd()
        .args(run_args(&feed, &["--role", "strategy", "--nats", &url]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let feeder = switchyard(&run_args(&feed, &["--role", "feed", "--nats", &url]));
    assert!(
        feeder.status.success(),
        "{}",
        String::from_utf8_lossy(&feeder.stderr)
    );
    let fed = summary_json(&feeder);
    assert_eq!(fed["feed"]["published"], 19_998);
    // Every market event and the end-of-feed marker, acknowledged by JetStream.
    assert_eq!(
        fed["nats"]["publish_acked"], fed["nats"]["published"],
        "{}",
        fed["nats"]
    );
    assert_eq!(
        fed["engine"]["stats"]["orders"], 0,
        "the feed process trades nothing"
    );

    let out = strategy.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let two = summary_json(&out);
    assert_eq!(two["feed"]["published"], 19_998, "{}", two["feed"]);
    assert_eq!(two["nats"]["duplicates_dropped"], 0, "{}", two["nats"]);
    assert_eq!(outcome(&one), outcome(&two));
}

#[test]
fn a_role_without_a_server_is_refused_with_a_clear_error() {
    let out = switchyard(&["run", "--role", "strategy", "--http", "off"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run.role") && err.contains("nats"), "{err}");
}
