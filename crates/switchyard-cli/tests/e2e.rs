//! End-to-end tests of the `switchyard` binary on the real BTCUSDT data.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

#[test]
fn replay_at_max_speed_is_deterministic() {
    let run = || {
        let out = switchyard(&[
            "--quiet",
            "--log-format",
            "json",
            "run",
            "--feed",
            &btc_feed(),
            "--speed",
            "max",
            "--seed",
            "7",
            "--http",
            "off",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = summary_json(&out);
        assert_eq!(s["stop"], "end_of_data");
        assert_eq!(s["feed"]["published"], 19_998);
        assert_eq!(s["shutdown"]["subscriptions"][0]["undelivered"], 0);
        (
            s["engine"]["stats"].clone(),
            s["engine"]["positions"].clone(),
            s["engine"]["total_pnl"].clone(),
        )
    };
    let a = run();
    assert!(a.0["orders"].as_u64().unwrap() > 0, "{:?}", a.0);
    assert!(a.0["fills"].as_u64().unwrap() > 0, "{:?}", a.0);
    let b = run();
    assert_eq!(a, b, "two replays of the same data differ");
}

#[test]
fn status_lines_and_summary_appear() {
    let out = switchyard(&["run", "--duration", "2500ms", "--http", "off"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stderr.matches("status: events").count() >= 2, "{stderr}");
    assert!(stdout.contains("== switchyard run summary =="), "{stdout}");
    assert!(stdout.contains("events by topic:"), "{stdout}");
    assert!(stdout.contains("rejections by reason:"), "{stdout}");
    assert!(stdout.contains("bus drained in"), "{stdout}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `switchyard config | head -1`, with the reader gone before the first write.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = cmd()
        .arg("config")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn bad_config_names_the_key() {
    let dir = std::env::temp_dir().join(format!("sy-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[risk]\nmax_ordr_quantity = \"1\"\n").unwrap();
    let out = switchyard(&["run", "--config", f.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_ordr_quantity"), "{err}");
    let out = switchyard(&["run", "--speed", "warp"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("run.speed"));
    let out = switchyard(&["config"]);
    assert!(out.status.success());
    let cfg = String::from_utf8_lossy(&out.stdout);
    assert!(
        cfg.contains("[risk]") && cfg.contains("secret_env"),
        "{cfg}"
    );
}

#[test]
fn malformed_data_lines_are_reported_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("sy-e2e-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("tardis_binance-futures_BTCUSDT_trades.csv");
    let good =
        std::fs::read_to_string(testdata("tardis_binance-futures_BTCUSDT_trades.csv")).unwrap();
    let mut lines: Vec<&str> = good.lines().take(101).collect();
    lines[50] =
        "binance-futures,BTCUSDT,1582329602111000,1582329602418379,42377944,buy,notaprice,0.132";
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    let path = f.to_str().unwrap();
    // skip (the default): reported and counted, the rest kept
    let out = switchyard(&[
        "--quiet",
        "run",
        "--feed",
        &format!("replay:{path}"),
        "--http",
        "off",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("99 events published, 1 bad lines skipped"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{path}:51")), "{stdout}");
    // fail: a clear error naming file and line
    let out = cmd()
        .args([
            "--quiet",
            "run",
            "--feed",
            &format!("replay:{path}"),
            "--http",
            "off",
        ])
        .env("SWITCHYARD__RUN__BAD_LINES", "fail")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("error: {path}:51")), "{stdout}");
    assert!(stdout.contains("price"), "{stdout}");
}

#[test]
fn kill_switch_over_http_stops_all_further_orders() {
    let mut child = ChildGuard::spawn(
        cmd()
            .args(["run", "--http", "127.0.0.1:0", "--duration", "60s"])
            .env("SWITCHYARD__SIM__RATE", "20000")
            .env("SWITCHYARD__STRATEGY__FAST", "3")
            .env("SWITCHYARD__STRATEGY__SLOW", "8")
            .env("SWITCHYARD__RISK__ORDERS_PER_SECOND", "1000")
            .env("SWITCHYARD__RISK__BURST", "1000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let addr = child.api_address();
    let sent = |addr: &str| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&http_get(addr, "/status")).unwrap();
        v["engine"]["stats"]["orders_sent"].as_u64().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent(&addr) < 3 {
        assert!(Instant::now() < deadline, "no orders flowed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = cmd()
        .args(["kill", "--addr", &addr, "--reason", "e2e test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at_kill = sent(&addr);
    let requested_at_kill = {
        let v: serde_json::Value = serde_json::from_str(&http_get(&addr, "/status")).unwrap();
        v["engine"]["stats"]["orders"].as_u64().unwrap()
    };
    // Keep the run going while the strategy keeps asking: nothing more reaches the venue.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status: serde_json::Value = serde_json::from_str(&http_get(&addr, "/status")).unwrap();
    assert_eq!(
        status["engine"]["stats"]["orders_sent"].as_u64().unwrap(),
        at_kill
    );
    // The strategy sees its gate: while halted it stops asking (no flood of refused
    // requests).
    assert_eq!(
        status["engine"]["stats"]["orders"].as_u64().unwrap(),
        requested_at_kill,
        "{status}"
    );
    // Reset without a secret configured is refused (401/503) and audited.
    let out = cmd()
        .args(["reset", "--addr", &addr])
        .env("SWITCHYARD_OPERATOR_SECRET", "guess")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let _ = Command::new("kill")
        .args(["-TERM", &child.child().id().to_string()])
        .status();
    let out = child.wait_with_output();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stopped: Signal"), "{stdout}");
    assert!(stdout.contains("kill switch: ENGAGED"), "{stdout}");
    // The trigger and the refused reset are in the run's journal, with the orders.
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("journal: "))
        .and_then(|l| l.split(" (").next())
        .unwrap_or_else(|| panic!("journal path in the summary: {stdout}"));
    let out = switchyard(&["journal", "inspect", dir, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspection: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        inspection["by_topic"]["switchyard.control.kill_switch"], 2,
        "{inspection}"
    );
    assert!(inspection["by_kind"]["order_request"].as_u64().unwrap() >= at_kill);
}

#[test]
fn a_kill_scoped_to_one_strategy_halts_it_while_the_other_trades() {
    let dir = std::env::temp_dir().join(format!("sy-e2e-scope-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("two.toml");
    let entry = |name: &str, fast: u32, slow: u32| {
        format!(
            "[[strategy]]\nname = \"{name}\"\nkind = \"ma_crossover\"\nvenue = \"binance-futures\"\nsymbol = \"BTCUSDT\"\nfast = {fast}\nslow = {slow}\nmax_position = \"0.01\"\nallow_short = true\n"
        )
    };
    std::fs::write(
        &f,
        format!("{}{}", entry("fast-x", 3, 8), entry("slow-y", 4, 11)),
    )
    .unwrap();
    let mut child = ChildGuard::spawn(
        cmd()
            .args([
                "run",
                "--config",
                f.to_str().unwrap(),
                "--http",
                "127.0.0.1:0",
                "--duration",
                "60s",
                "--journal",
                "off",
            ])
            .env("SWITCHYARD__SIM__RATE", "20000")
            .env("SWITCHYARD__RISK__ORDERS_PER_SECOND", "1000")
            .env("SWITCHYARD__RISK__BURST", "1000")
            .env("SWITCHYARD__RISK__MAX_POSITION", "\"1\"")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let addr = child.api_address();
    let sent = |addr: &str, name: &str| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&http_get(addr, "/status")).unwrap();
        let s = v["engine"]["strategies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap();
        s["stats"]["orders_sent"].as_u64().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent(&addr, "fast-x") < 2 || sent(&addr, "slow-y") < 2 {
        assert!(Instant::now() < deadline, "no orders flowed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = cmd()
        .args([
            "kill",
            "--addr",
            &addr,
            "--reason",
            "scope test",
            "--scope",
            "strategy:fast-x",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (x0, y0) = (sent(&addr, "fast-x"), sent(&addr, "slow-y"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent(&addr, "slow-y") < y0 + 2 {
        assert!(Instant::now() < deadline, "slow-y stopped trading too");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(sent(&addr, "fast-x"), x0, "fast-x traded after its kill");
    let metrics = http_get(&addr, "/metrics");
    assert!(
        metrics.contains("switchyard_strategy_orders_total{strategy=\"fast-x\"}"),
        "{metrics}"
    );
    // The node's families (per strategy, per component) pass the real Prometheus linter.
    promtool_check(&metrics);
    let _ = Command::new("kill")
        .args(["-TERM", &child.child().id().to_string()])
        .status();
    let out = child.wait_with_output();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("by strategy:"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
