//! The short crash loop: `scripts/crash-loop` SIGKILLs a journaled run of the real binary
//! at random moments (10 times, seed printed) and checks each journal it leaves.

use std::process::Command;

#[test]
fn ten_sigkills_leave_verified_journals_holding_every_durable_record_with_replay_parity() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/crash-loop"))
        .args(["--kills", "10", "--json"])
        .args(["--bin", env!("CARGO_BIN_EXE_switchyard")])
        .output()
        .expect("bash runs scripts/crash-loop");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The seed is on stderr's first line: rerun with `--seed` to see the same kills.
    assert!(
        out.status.success(),
        "crash loop failed: {stdout}\n{stderr}"
    );
    let r: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("crash-loop's JSON line: {e}: {stdout}\n{stderr}"));
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert_eq!(n("kills"), 10, "{r}");
    assert_eq!(n("failures"), 0, "{r}\n{stderr}");
    assert_eq!(n("parity_different"), 0, "{r}");
    assert_eq!(n("parity_identical") + n("parity_prefix"), 10, "{r}");
    assert!(n("records") >= n("durable_reported"), "{r}");
    assert!(
        n("durable_reported") > 0,
        "the runs journaled something: {r}"
    );
}
