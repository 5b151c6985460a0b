//! The pipeline split across processes over NATS JetStream: a feed process and a
//! strategy process decide exactly what one process decides on the same data.

use std::process::Stdio;

use switchyard_nats::testing::NatsServer;

mod common;
use common::*;

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
    let strategy = ChildGuard::spawn(
        cmd()
            .args(run_args(&feed, &["--role", "strategy", "--nats", &url]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
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

    let out = strategy.wait_with_output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let two = summary_json(&out);
    assert_eq!(two["feed"]["published"], 19_998, "{}", two["feed"]);
    assert_eq!(two["nats"]["duplicates_dropped"], 0, "{}", two["nats"]);
    assert_eq!(two["nats"]["out_of_order"], 0, "{}", two["nats"]);
    assert_eq!(outcome(&one), outcome(&two));
}

#[test]
fn a_role_without_a_server_is_refused_with_a_clear_error() {
    let out = switchyard(&["run", "--role", "strategy", "--http", "off"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run.role") && err.contains("nats"), "{err}");
}

/// Poll `cond` on `/healthz` for up to 20 s (the server's restart and the client's
/// reconnect take their time; the condition, not the clock, ends the wait).
fn wait_health(addr: &str, want: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let v: serde_json::Value = serde_json::from_str(&http_get(addr, "/healthz")).unwrap();
        if v["status"] == want {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "health never became {want}: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn health_is_degraded_while_the_nats_server_is_down() {
    let mut server = NatsServer::start().expect("nats-server");
    let url = server.url();
    let mut child = ChildGuard::spawn(
        cmd()
            .args([
                "run",
                "--role",
                "strategy",
                "--nats",
                &url,
                "--http",
                "127.0.0.1:0",
                "--journal",
                "off",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let addr = child.api_address();

    wait_health(&addr, "ok");
    server.kill();
    let degraded = wait_health(&addr, "degraded");
    assert!(
        degraded["reasons"][0]
            .as_str()
            .unwrap()
            .contains("disconnected"),
        "{degraded}"
    );
    let status: serde_json::Value = serde_json::from_str(&http_get(&addr, "/status")).unwrap();
    let bridge = status["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "nats-bridge")
        .cloned()
        .expect("bridge in /status");
    assert_eq!(bridge["health"], "degraded", "{bridge}");
    assert_eq!(status["health"]["status"], "degraded");

    server.restart().expect("restart nats-server");
    wait_health(&addr, "ok");
    // The bridge's families, resequencing included, pass the real Prometheus linter.
    let metrics = http_get(&addr, "/metrics");
    for family in [
        "switchyard_nats_connected 1",
        "switchyard_nats_reconnects_total 1",
        "switchyard_nats_resequenced_total 0",
        "switchyard_nats_gaps_skipped_total 0",
        "switchyard_nats_held 0",
    ] {
        assert!(metrics.contains(family), "{family} in {metrics}");
    }
    promtool_check(&metrics);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.child().id().to_string()])
        .status();
    let out = child.wait_with_output();
    assert_eq!(out.status.code(), Some(0));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("reconnects 1"), "{summary}");
}

/// A strategy stopped partway resumes where its durable consumer left off: across the two
/// runs every market event of the feed arrives exactly once, and the second run ends by
/// itself at the end-of-feed marker.
#[test]
fn a_restarted_strategy_resumes_and_stops_at_the_end_of_the_feed() {
    let feed = btc_feed();
    let server = NatsServer::start().expect("nats-server");
    let url = server.url();
    // The feed first: everything is in the stream before any strategy runs.
    let fed = switchyard(&run_args(&feed, &["--role", "feed", "--nats", &url]));
    assert!(
        fed.status.success(),
        "{}",
        String::from_utf8_lossy(&fed.stderr)
    );
    assert_eq!(summary_json(&fed)["feed"]["published"], 19_998);

    let first = switchyard(&run_args(
        &feed,
        &["--role", "strategy", "--nats", &url, "--duration", "150ms"],
    ));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first = summary_json(&first);
    let second = switchyard(&run_args(&feed, &["--role", "strategy", "--nats", &url]));
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let second = summary_json(&second);
    assert_eq!(second["stop"], "end_of_data", "{}", second["stop"]);
    let (a, b) = (
        first["feed"]["published"].as_u64().unwrap(),
        second["feed"]["published"].as_u64().unwrap(),
    );
    assert_eq!(a + b, 19_998, "first run {a}, second run {b}");
}
