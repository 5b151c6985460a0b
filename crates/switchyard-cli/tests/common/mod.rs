//! What the end-to-end tests share: the binary, the data, the summary.
#![allow(dead_code)] // each test file uses a different part

use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

pub fn testdata(name: &str) -> String {
    format!("{}/../../testdata/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn btc_feed() -> String {
    format!(
        "replay:{},{}",
        testdata("tardis_binance-futures_BTCUSDT_trades.csv"),
        testdata("tardis_binance-futures_BTCUSDT_quotes.csv")
    )
}

/// The binary, with its journals under the system's temporary directory rather than
/// the crate's.
pub fn cmd() -> Command {
    let mut c = Command::new(BIN);
    c.env(
        "SWITCHYARD__JOURNAL__DIR",
        std::env::temp_dir().join("switchyard-e2e-journals"),
    );
    c
}

pub fn switchyard(args: &[&str]) -> std::process::Output {
    cmd()
        .args(args)
        .env_remove("SWITCHYARD_OPERATOR_SECRET")
        .output()
        .expect("run switchyard")
}

pub fn summary_json(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("summary JSON: {e}\n{stdout}"))
}
