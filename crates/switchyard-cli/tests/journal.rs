//! The journal through the binary: a live run journals what it saw and did, a replay of
//! that journal decides the same, `journal inspect|verify` read it, and a damaged
//! journal is reported with where it is damaged.

use std::path::{Path, PathBuf};

mod common;
use common::*;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sy-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A live run of the BTCUSDT files with a journal under `root`; its summary.
fn live_run(root: &Path) -> serde_json::Value {
    let out = switchyard(&[
        "--quiet",
        "--log-format",
        "json",
        "run",
        "--feed",
        &btc_feed(),
        "--speed",
        "max",
        "--http",
        "off",
        "--journal",
        root.to_str().unwrap(),
    ]);
    ok(&out);
    summary_json(&out)
}

fn replay(journal: &str, env: &[(&str, &str)], extra: &[&str]) -> std::process::Output {
    let mut c = cmd();
    c.args(["--quiet", "replay", journal, "--json", "--http", "off"])
        .args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn engine_outcome(s: &serde_json::Value) -> serde_json::Value {
    let e = &s["engine"];
    serde_json::json!({
        "orders": e["stats"]["orders"],
        "orders_sent": e["stats"]["orders_sent"],
        "fills": e["stats"]["fills"],
        "rejections": e["stats"]["rejections"],
        "positions": e["positions"],
        "total_pnl": e["total_pnl"],
        "realised_pnl": e["realised_pnl"],
    })
}

#[test]
fn a_replay_leaves_the_live_nodes_api_address_alone_unless_given_http() {
    let root = temp_dir("replay-api");
    let live = live_run(&root);
    let dir = live["journal"]["dir"].as_str().expect("journal in summary");
    // A live node holds the configured API address.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let mut c = cmd();
    c.args(["--quiet", "replay", dir, "--json"])
        .env("SWITCHYARD__RUN__HTTP", format!("{addr:?}"));
    let out = c.output().unwrap();
    ok(&out);
    assert_eq!(summary_json(&out)["replay"]["replayed"], 19_998);
    // Asked for explicitly, the address is used, and a taken one is a clear error.
    let out = cmd()
        .args(["--quiet", "replay", dir, "--json", "--http", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_replay_of_a_live_run_makes_the_same_orders_fills_and_pnl() {
    let root = temp_dir("parity");
    let live = live_run(&root);
    let dir = live["journal"]["dir"].as_str().expect("journal in summary");
    assert!(dir.starts_with(root.to_str().unwrap()), "{dir}");
    assert!(live["journal"]["durable"].as_u64().unwrap() >= 19_998);
    assert!(live["engine"]["stats"]["fills"].as_u64().unwrap() > 0);

    let out = replay(dir, &[], &["--expect-parity"]);
    ok(&out);
    let rep = summary_json(&out);
    assert_eq!(rep["replay"]["replayed"], 19_998, "{rep}");
    assert_eq!(
        rep["replay"]["parity"]["identical"], true,
        "{}",
        rep["replay"]["parity"]
    );
    let orders = &rep["replay"]["parity"]["kinds"]["order_request"];
    assert!(orders["recorded"].as_u64().unwrap() > 0, "{orders}");
    assert_eq!(orders["recorded"], orders["replayed"]);
    assert_eq!(engine_outcome(&live), engine_outcome(&rep));

    // A different strategy on the same journal decides differently, and parity says so.
    let out = replay(
        dir,
        &[("SWITCHYARD__STRATEGY__FAST", "20")],
        &["--expect-parity"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rep = summary_json(&out);
    assert_eq!(rep["replay"]["parity"]["identical"], false);
    assert_ne!(engine_outcome(&live), engine_outcome(&rep));
}

#[test]
fn inspect_and_verify_read_the_journal_and_find_damage() {
    let root = temp_dir("inspect");
    let live = live_run(&root);
    let dir = live["journal"]["dir"].as_str().unwrap().to_owned();

    let out = switchyard(&["journal", "inspect", &dir, "--json"]);
    ok(&out);
    let i: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let topics = i["by_topic"].as_object().expect("counts by topic");
    let market: u64 = topics
        .iter()
        .filter(|(t, _)| t.starts_with("market_data."))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert_eq!(market, 19_998);
    let orders = topics
        .get("orders.request.mac")
        .and_then(|n| n.as_u64())
        .unwrap_or(0);
    assert_eq!(orders, live["engine"]["stats"]["orders"].as_u64().unwrap());
    let text = switchyard(&["journal", "inspect", &dir]);
    ok(&text);
    assert!(String::from_utf8_lossy(&text.stdout).contains("market_data.trade.BTCUSDT"));

    ok(&switchyard(&["journal", "verify", &dir]));

    // A time range of the journal replays only the records stamped inside it.
    let (lo, hi) = (i["min_ts"].as_u64().unwrap(), i["max_ts"].as_u64().unwrap());
    assert!(lo < hi, "{i}");
    let mid = (lo + (hi - lo) / 2).to_string();
    let first = replay(&dir, &[], &["--to-time", &mid]);
    ok(&first);
    let second = replay(&dir, &[], &["--from-time", &mid]);
    ok(&second);
    let (a, b) = (
        summary_json(&first)["replay"]["replayed"].as_u64().unwrap(),
        summary_json(&second)["replay"]["replayed"]
            .as_u64()
            .unwrap(),
    );
    assert!(a > 0 && b > 0, "{a} {b}");
    // Half a journal's decisions cannot be compared with the whole journal's.
    assert!(summary_json(&first)["replay"]["parity"].is_null());
    // Records stamped exactly at `mid` are in both halves.
    assert!(a + b >= 19_998 && a + b < 19_998 + 100, "{a} + {b}");

    // Flip one byte in the middle of the first segment: verify names the file and
    // fails; the journal is not silently read past the damage.
    let seg = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e != "lock"))
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&seg, &bytes).unwrap();
    let out = switchyard(&["journal", "verify", &dir]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let name = seg.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "{err}");
    assert!(err.contains("offset"), "{err}");
    let out = replay(&dir, &[], &[]);
    assert!(!out.status.success(), "a damaged journal was replayed");
}

#[test]
fn verify_names_the_audit_record_whose_edit_only_the_chain_can_see() {
    use switchyard_journal::codec::HEADER_LEN;
    use switchyard_journal::{CONTROL_KIND, decode_frame, encode_frame};

    let root = temp_dir("audit-chain");
    let live = live_run(&root);
    let dir = live["journal"]["dir"].as_str().unwrap().to_owned();
    let out = switchyard(&["journal", "verify", &dir]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("audit chain: ") && text.contains("records hold, head #"),
        "{text}"
    );

    // The first control record of the run (audit trail: lifecycle, kill switch, ...):
    // one letter of its event changed, its frame checksum computed anew.
    let seg = switchyard_journal::segment::list_segments(Path::new(&dir))
        .unwrap()
        .remove(0)
        .1;
    let mut bytes = std::fs::read(&seg).unwrap();
    let mut pos = HEADER_LEN;
    let (offset, index, seq, new) = loop {
        let (r, len) = decode_frame(&bytes[pos..]).unwrap();
        if r.kind == CONTROL_KIND {
            let mut payload = r.payload.to_vec();
            let at = payload
                .windows(8)
                .position(|w| w == b"\"type\":\"")
                .expect("a tagged event")
                + 8;
            payload[at] = if payload[at] == b'x' { b'y' } else { b'x' };
            let mut new = Vec::new();
            encode_frame(&mut new, r.index, r.seq, r.ts, r.topic, r.kind, &payload).unwrap();
            assert_eq!(new.len(), len);
            break (pos, r.index, r.seq, new);
        }
        pos += len;
    };
    bytes[offset..offset + new.len()].copy_from_slice(&new);
    std::fs::write(&seg, &bytes).unwrap();

    let out = switchyard(&["journal", "verify", &dir]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let name = seg.file_name().unwrap().to_str().unwrap();
    assert!(err.contains("audit chain: BROKEN"), "{err}");
    assert!(
        err.contains(&format!(
            "{name} at byte offset {offset}: audit record #{index} (seq {seq}) breaks the audit chain"
        )),
        "{err}"
    );
    let out = switchyard(&["journal", "verify", &dir, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["audit"]["broken"]["index"], index);
    assert_eq!(v["audit"]["broken"]["offset"], offset as u64);
    assert_eq!(v["audit"]["broken"]["reason"]["kind"], "wrong_hash");
    // Only the chain: every frame still checks out.
    assert_eq!(v["problems"].as_array().unwrap().len(), 1, "{v}");
    // And a journal whose audit trail was tampered with is not replayed.
    let out = replay(&dir, &[], &[]);
    assert!(!out.status.success(), "a tampered journal was replayed");
}
