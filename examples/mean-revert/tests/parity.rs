//! The example bot runs on the committed data with the whole command line, and its
//! journal replays with parity.

use std::process::Command;

fn bot(args: &[&str], journals: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mean-revert-bot"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("SWITCHYARD__JOURNAL__DIR", journals)
        .env_remove("SWITCHYARD_OPERATOR_SECRET")
        .args(args)
        .output()
        .expect("run the bot")
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("summary JSON")
}

#[test]
fn the_bot_trades_both_strategies_and_replays_with_parity() {
    let journals = std::env::temp_dir().join(format!("mean-revert-bot-{}", std::process::id()));
    let cfg = "examples/mean-revert/bot.toml";
    let run = json(&bot(
        &["-q", "--log-format", "json", "run", "--config", cfg],
        &journals,
    ));
    assert_eq!(run["stop"], "end_of_data");
    let strategies = run["engine"]["strategies"]
        .as_array()
        .expect("per strategy");
    let names: Vec<&str> = strategies
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mr-btc", "mac-btc"]);
    for s in strategies {
        assert!(s["stats"]["fills"].as_u64().unwrap() > 0, "{s}");
    }
    let dir = run["journal"]["dir"]
        .as_str()
        .expect("journal dir")
        .to_owned();
    let replay = bot(
        &[
            "-q",
            "replay",
            &dir,
            "--json",
            "--config",
            cfg,
            "--expect-parity",
        ],
        &journals,
    );
    let rep = json(&replay);
    assert_eq!(
        rep["replay"]["parity"]["identical"], true,
        "{}",
        rep["replay"]["parity"]
    );
    assert_eq!(rep["engine"]["strategies"], run["engine"]["strategies"]);
    let _ = std::fs::remove_dir_all(&journals);
}

#[test]
fn a_bad_key_of_the_strategy_is_named() {
    let dir = std::env::temp_dir().join(format!("mean-revert-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(
        &f,
        "[[strategy]]\nname = \"mr\"\nkind = \"mean_revert\"\nvenue = \"binance-futures\"\nsymbol = \"BTCUSDT\"\nwindow = 1\nsize = \"0.001\"\n",
    )
    .unwrap();
    let out = bot(&["run", "--config", f.to_str().unwrap()], &dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("strategy[0] (mr).window: must be at least 2"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
