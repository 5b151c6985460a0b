//! What the end-to-end tests share: the binary, the data, the summary.
#![allow(dead_code)] // each test file uses a different part

use std::process::{Command, Stdio};

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

/// What a run decided, from its summary: orders, fills, rejections, positions and P&L
/// (the figures two runs on the same data must agree on).
pub fn outcome(s: &serde_json::Value) -> serde_json::Value {
    let e = &s["engine"];
    serde_json::json!({
        "orders": e["stats"]["orders"],
        "fills": e["stats"]["fills"],
        "rejections": e["stats"]["rejections"],
        "positions": e["positions"],
        "total_pnl": e["total_pnl"],
    })
}

/// A child process killed (SIGKILL) if the test fails before it is waited for, so a
/// failing test leaves no process behind.
pub struct ChildGuard(Option<std::process::Child>);

impl ChildGuard {
    /// Spawn `cmd`.
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        ChildGuard(Some(cmd.spawn().expect("spawn switchyard")))
    }

    /// The child.
    pub fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("not yet waited for")
    }

    /// Wait for it to exit and collect its output.
    pub fn wait_with_output(mut self) -> std::process::Output {
        self.0
            .take()
            .expect("not yet waited for")
            .wait_with_output()
            .expect("wait for switchyard")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl ChildGuard {
    /// Read the child's stderr until it prints the operations API address; keep draining
    /// stderr in the background so the child never blocks on it. The address.
    pub fn api_address(&mut self) -> String {
        use std::io::BufRead;
        let mut stderr = std::io::BufReader::new(self.child().stderr.take().expect("piped"));
        let mut line = String::new();
        let mut addr = None;
        while addr.is_none() && stderr.read_line(&mut line).unwrap() > 0 {
            if let Some(rest) = line.split("operations API: http://").nth(1) {
                addr = rest.split('/').next().map(str::to_owned);
            }
            line.clear();
        }
        std::thread::spawn(move || for _ in stderr.lines() {});
        addr.expect("API address printed")
    }
}

/// `GET path` on the operations API; the response body.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

/// `metrics` (a `/metrics` page) passes the real Prometheus linter, `promtool check
/// metrics`.
pub fn promtool_check(metrics: &str) {
    use std::io::Write as _;
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/test installs Debian's prometheus package)");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
