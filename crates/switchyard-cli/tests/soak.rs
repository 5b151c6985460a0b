//! The short soak: `scripts/soak` runs the real binary on the simulator with a kill and
//! an operator reset over HTTP every 2 s; the run's log stays bounded and its RSS flat.

use std::process::Command;

#[test]
fn a_short_soak_keeps_logs_bounded_and_memory_flat() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let seconds = 20u64;
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/soak"))
        .args(["--seconds", &seconds.to_string()])
        .args(["--rate", "20000", "--kill-every", "2", "--json"])
        .args(["--bin", env!("CARGO_BIN_EXE_switchyard")])
        .output()
        .expect("bash runs scripts/soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "soak failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("soak's JSON line: {e}: {stdout}"));
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert_eq!(n("exit_code"), 0, "{r}");
    // It ran: events flowed and the operator loop killed and reset.
    assert!(n("events") > 20_000 * seconds / 4, "{r}");
    assert!(n("kills") >= 5, "{r}");
    assert_eq!(n("resets"), n("kills"), "every kill was reset: {r}");
    assert!(n("kill_switch_triggers") >= n("kills"), "{r}");
    // Nothing dropped or failed on the way.
    assert_eq!(n("drops"), 0, "{r}");
    assert_eq!(n("handler_errors"), 0, "{r}");
    assert_eq!(n("engine_errors"), 0, "{r}");
    // Logs: a status line a second plus a few lines per kill and reset, never per event.
    let bound = 2 * seconds + 6 * n("kills") + 30;
    assert!(
        n("log_lines") <= bound,
        "{} log lines > {bound}: {r}",
        n("log_lines")
    );
    // Memory: after the warm-up, the highest RSS is within 25% of the first.
    let (warm, max) = (n("rss_kib_after_warmup"), n("rss_kib_max"));
    assert!(warm > 0, "{r}");
    assert!(
        max * 4 <= warm * 5,
        "RSS grew from {warm} KiB to {max} KiB: {r}"
    );
}
