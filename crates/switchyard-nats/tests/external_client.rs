//! The wire format as another language sees it: `tests/external_client.py` (Python,
//! `nats-py`) reads what a bridge publishes, and the headers and JSON payloads it decoded
//! must be the documented ones.
//!
//! Needs `python3` with the `nats-py` package; if `import nats` fails the test tries
//! `python3 -m pip install --quiet nats-py` once, and if that fails too it prints why and
//! passes without checking anything (a machine without PyPI).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde::Serialize;
use serde_json::Value;
use switchyard::{Bus, Topic};
use switchyard_nats::testing::NatsServer;
use switchyard_nats::{Bridge, BridgeConfig, JetStreamConfig, Mode};
use switchyard_trading::exchange::ExecEvent;
use switchyard_trading::model::{MarketEvent, OrderRejected, OrderRequest};
use switchyard_trading::wire::{self as kinds, FeedEnd};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const T: Duration = Duration::from_secs(60);

fn script() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/external_client.py"
    ))
}

/// `python3` can `import nats`, after installing `nats-py` once if needed. `Err` says why
/// not.
async fn python_nats() -> Result<(), String> {
    let import = || async {
        Command::new("python3")
            .args(["-c", "import nats"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
    };
    match import().await {
        Ok(s) if s.success() => return Ok(()),
        Ok(_) => {}
        Err(e) => return Err(format!("cannot run python3: {e}")),
    }
    let install = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "nats-py",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| format!("cannot run python3 -m pip: {e}"))?;
    if !install.status.success() {
        return Err(format!(
            "`python3 -m pip install nats-py` failed ({}): {}",
            install.status,
            String::from_utf8_lossy(&install.stderr).trim()
        ));
    }
    match import().await {
        Ok(s) if s.success() => Ok(()),
        _ => Err("nats-py installed but `import nats` still fails".into()),
    }
}

/// Skip (pass) with a reason when Python or nats-py is not available.
macro_rules! require_python_nats {
    () => {
        if let Err(reason) = python_nats().await {
            eprintln!("SKIPPED: the external Python client cannot run: {reason}");
            return;
        }
    };
}

struct Reader {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Reader {
    /// Start the script and wait for its `ready` line.
    async fn start(url: &str, count: usize, stream: Option<&str>) -> Reader {
        let mut cmd = Command::new("python3");
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg(script())
            .arg(url)
            .arg(count.to_string());
        if let Some(s) = stream {
            cmd.args(["--stream", s]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn python3");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(T, lines.next_line())
            .await
            .expect("no `ready` from the Python client in time")
            .expect("read the Python client's output");
        assert_eq!(first.as_deref(), Some("ready"), "Python client: {first:?}");
        Reader { child, lines }
    }

    /// The `count` messages it printed, after it exited successfully.
    async fn messages(mut self, count: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let line = tokio::time::timeout(T, self.lines.next_line())
                .await
                .expect("Python client output in time")
                .expect("read the Python client's output");
            let Some(line) = line else {
                panic!(
                    "Python client ended after {} of {count} messages: {:?}",
                    out.len(),
                    self.child.wait().await
                );
            };
            out.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
        let status = tokio::time::timeout(T, self.child.wait())
            .await
            .expect("Python client exits")
            .unwrap();
        assert!(status.success(), "Python client: {status}");
        out
    }
}

/// What was published: topic, kind, bus sequence number and the event as JSON.
struct Sent {
    topic: String,
    kind: &'static str,
    seq: u64,
    json: Value,
}

/// Publish one event of every kind (and every variant of the enums) on `bus`.
async fn publish_all(bus: &Bus) -> Vec<Sent> {
    async fn one<T: Serialize + Send + Sync + 'static>(
        bus: &Bus,
        sent: &mut Vec<Sent>,
        topic: &str,
        kind: &'static str,
        ev: T,
    ) {
        let json = serde_json::to_value(&ev).unwrap();
        let Ok(seq) = bus.publish(Topic::new(topic).unwrap(), ev).await else {
            panic!("publish on {topic} failed");
        };
        sent.push(Sent {
            topic: topic.to_owned(),
            kind,
            seq,
            json,
        });
    }
    let mut sent = Vec::new();
    let s = &mut sent;
    one(
        bus,
        s,
        "market_data.trade.BTCUSDT",
        kinds::MARKET_EVENT,
        trade(7),
    )
    .await;
    one(
        bus,
        s,
        "market_data.quote.BTCUSDT",
        kinds::MARKET_EVENT,
        quote(8),
    )
    .await;
    one(
        bus,
        s,
        "orders.request.ma-cross",
        kinds::ORDER_REQUEST,
        order_request(),
    )
    .await;
    one(
        bus,
        s,
        "orders.rejected.ma-cross",
        kinds::ORDER_REJECTED,
        rejected(),
    )
    .await;
    for ev in exec_events() {
        one(bus, s, "orders.event.ma-cross", kinds::EXEC_EVENT, ev).await;
    }
    let end = FeedEnd {
        origin: "feed-1".into(),
        published: 2,
    };
    one(bus, s, kinds::FEED_END_TOPIC, kinds::FEED_END, end).await;
    sent
}

fn exporting_bridge(bus: &Bus, cfg: BridgeConfig) -> switchyard_nats::BridgeBuilder {
    Bridge::builder(bus.clone(), cfg)
        .export::<MarketEvent>(kinds::MARKET_DATA, kinds::MARKET_EVENT)
        .export::<OrderRequest>(kinds::ORDER_REQUESTS, kinds::ORDER_REQUEST)
        .export::<OrderRejected>(kinds::ORDER_REJECTIONS, kinds::ORDER_REJECTED)
        .export::<ExecEvent>(kinds::EXEC_EVENTS, kinds::EXEC_EVENT)
        .export::<FeedEnd>(kinds::FEED_END_TOPIC, kinds::FEED_END)
}

/// Every message the Python client decoded is one that was sent, with the documented
/// headers and the serde JSON of the event; each was received once.
fn check(sent: &[Sent], got: &[Value], origin: &str) {
    assert_eq!(got.len(), sent.len());
    let by_seq: HashMap<u64, &Sent> = sent.iter().map(|s| (s.seq, s)).collect();
    let mut seen = std::collections::HashSet::new();
    for m in got {
        let h = m["headers"].as_object().expect("headers object");
        let header = |name: &str| {
            h.get(name)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("header {name} missing in {m}"))
        };
        let seq: u64 = header("Switchyard-Seq").parse().unwrap();
        let s = by_seq
            .get(&seq)
            .unwrap_or_else(|| panic!("unknown seq {seq}: {m}"));
        assert!(seen.insert(seq), "seq {seq} received twice");
        assert_eq!(m["subject"], format!("sy.{}", s.topic));
        assert_eq!(header("Nats-Msg-Id"), format!("{origin}:{seq}"));
        assert_eq!(header("Switchyard-Kind"), s.kind);
        assert_eq!(header("Switchyard-Origin"), origin);
        let ts: u64 = header("Switchyard-Ts").parse().unwrap();
        assert!(ts > 1_600_000_000_000_000_000, "Switchyard-Ts {ts}");
        assert_eq!(header("Content-Type"), "application/json");
        assert_eq!(m["payload"], s.json, "payload of {} (seq {seq})", s.kind);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_reads_core_messages() {
    require_python_nats!();
    let server = NatsServer::start().unwrap();
    const COUNT: usize = 10;
    let reader = Reader::start(&server.url(), COUNT, None).await;

    let bus = Bus::new();
    let a = exporting_bridge(
        &bus,
        BridgeConfig {
            origin: "feed-1".into(),
            ..BridgeConfig::core(server.url())
        },
    )
    .start()
    .await
    .unwrap();
    let sent = publish_all(&bus).await;
    assert_eq!(sent.len(), COUNT);
    a.flush().await.unwrap();
    let got = reader.messages(COUNT).await;
    for m in &got {
        println!("{m}");
    }
    check(&sent, &got, a.origin());
    assert!(a.origin().starts_with("feed-1@") && a.origin().len() == "feed-1@".len() + 16);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_reads_jetstream_stream() {
    require_python_nats!();
    let server = NatsServer::start().unwrap();
    const COUNT: usize = 10;
    let bus = Bus::new();
    let a = exporting_bridge(
        &bus,
        BridgeConfig {
            origin: "feed-1".into(),
            mode: Mode::JetStream(JetStreamConfig {
                stream: "PYREAD".into(),
                ..Default::default()
            }),
            ..BridgeConfig::core(server.url())
        },
    )
    .start()
    .await
    .unwrap();
    // Stored and acked before the reader starts: it reads the stream from the beginning.
    let sent = publish_all(&bus).await;
    assert_eq!(sent.len(), COUNT);
    tokio::time::timeout(T, a.flush()).await.unwrap().unwrap();
    assert_eq!(a.stats().publish_acked, COUNT as u64);

    let reader = Reader::start(&server.url(), COUNT, Some("PYREAD")).await;
    let got = reader.messages(COUNT).await;
    check(&sent, &got, a.origin());
    a.shutdown().await;
}
