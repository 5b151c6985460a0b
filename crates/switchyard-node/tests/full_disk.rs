//! A node whose journal root is on a small real file system (a 2 MiB tmpfs the test
//! mounts, unmounted after): the journal fills it; nothing corrupt is on disk, the
//! journal component's health is Degraded with the reason, the kill switch halts all
//! trading; once space is freed the journal writes again and reports the gap. Needs root
//! (to mount); otherwise the test says that it is skipped, and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::kill_switch::{Mode, Scope};
use switchyard::lifecycle::{Health, ShutdownTrigger};
use switchyard_journal::{CONTROL_KIND, GAP_TOPIC, JournalReader, ReadFilter, verify};
use switchyard_node::{Node, NodeShared};
use switchyard_ops::OpsProvider;

use common::config;

/// A tmpfs of `size` mounted at a new temporary directory; unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` if this process cannot mount (not root): the caller skips.
    fn mount(size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return None;
        }
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("running mount");
        assert!(
            st.success(),
            "mount -t tmpfs -o size={size} tmpfs {}: {st}",
            dir.display()
        );
        Some(Tmpfs {
            dir,
            _parent: parent,
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let st = Command::new("umount").arg(&self.dir).status();
        if !matches!(st, Ok(s) if s.success()) {
            // Still busy (a test failed with the journal open): detach it anyway.
            let lazy = Command::new("umount").arg("-l").arg(&self.dir).status();
            eprintln!(
                "umount {} failed ({st:?}); umount -l: {lazy:?}",
                self.dir.display()
            );
        }
    }
}

/// Wait (async) for a condition the node brings about, not for a time.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Await `fut` (a signal), failing the test if it hangs.
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn metrics(provider: &switchyard_node::provider::NodeProvider) -> String {
    let mut w = switchyard_ops::prometheus::MetricsWriter::new();
    provider.write_metrics(&mut w);
    assert!(w.errors().is_empty(), "{:?}", w.errors());
    w.finish()
}

/// The families pass the real Prometheus linter (when promtool is installed, as
/// scripts/test does).
fn promtool_check(metrics: &str) {
    use std::io::Write as _;
    let Ok(mut check) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed: /metrics not linted (scripts/test installs it)");
        return;
    };
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn journal_health(shared: &NodeShared) -> Health {
    shared
        .registry
        .health()
        .into_iter()
        .find(|c| c.name == "journal")
        .expect("a journal component")
        .health
}

#[test]
fn a_full_disk_degrades_the_journal_halts_trading_and_writing_resumes_with_the_gap_reported() {
    let Some(fs) = Tmpfs::mount("2m") else {
        eprintln!(
            "SKIPPED a_full_disk_degrades_the_journal_halts_trading_and_writing_resumes_with_the_gap_reported: \
             not root, cannot mount a tmpfs"
        );
        return;
    };
    // Ballast: half the file system, freed later to make room again.
    let ballast = fs.dir.join("ballast");
    std::fs::write(&ballast, vec![1u8; 1 << 20]).unwrap();
    let root = fs.dir.join("journal");
    let run_dir = root.join("run");
    let mut cfg = config(common::MAC);
    cfg.run.feed = "sim".into();
    cfg.sim.rate = 20_000;
    cfg.sim.limit = 0;
    cfg.journal.enabled = true;
    cfg.journal.dir = root.clone();
    cfg.journal.segment_mb = 1;
    cfg.journal.check_ms = 20;
    // Retries only when the test asks (after freeing space): no timing in the test.
    cfg.journal.retry_ms = 3_600_000;
    let node = Node::builder(cfg)
        .journal_dir(run_dir.clone())
        .build()
        .unwrap();
    let shared = Arc::clone(node.shared());
    let (ballast2, run2) = (ballast.clone(), run_dir.clone());
    let summary = common::run_with(node, async move {
        until("the journal to open", || shared.journal.get().is_some()).await;
        let j = shared.journal.get().unwrap().clone();
        let mut outage = j.watch_outage();
        within("the disk to fill", outage.wait_for(|down| *down))
            .await
            .expect("the journal is open");

        // Degraded, with the reason.
        let o = j.outage().unwrap();
        assert!(o.reason.contains("No space left on device"), "{o}");
        match journal_health(&shared) {
            Health::Degraded(why) => assert!(why.contains("No space left on device"), "{why}"),
            other => panic!("journal health {other:?}"),
        }
        // The kill switch halts everything.
        until("the kill switch", || shared.kill_switch.is_engaged()).await;
        let active = shared.kill_switch.active();
        assert!(
            active.iter().any(|a| a.scope == Scope::All
                && a.mode == Mode::Halt
                && a.reason.contains("journal cannot write")),
            "{active:?}"
        );
        // Nothing corrupt on disk: only whole, synced frames.
        let v = verify(&run2).unwrap();
        assert!(v.ok() && v.torn_tail.is_none(), "{v}");
        // The status shows it.
        let provider = switchyard_node::provider::NodeProvider(Arc::clone(&shared));
        let status = provider.status();
        let jc = status["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "journal")
            .unwrap()
            .clone();
        assert_eq!(jc["health"], "degraded", "{jc}");
        assert!(
            jc["outage"]["reason"]
                .as_str()
                .unwrap()
                .contains("No space"),
            "{jc}"
        );
        assert!(jc["root"]["usage"]["bytes"].as_u64().unwrap() > 0, "{jc}");
        until("refused appends", || j.stats().records_lost > 0).await;
        // Refused appends are the journal's to count (the gap), not handler errors that
        // would log and dead-letter every event while the disk is full.
        for sub in shared.bus.snapshot().subscriptions {
            if sub.name.starts_with("journal:") {
                assert_eq!(sub.handler_errors, 0, "{}", sub.name);
            }
        }
        let metrics = metrics(&provider);
        for line in [
            "switchyard_journal_writing 0",
            "switchyard_journal_root_runs 1",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
        }
        assert!(
            metrics.contains("switchyard_journal_records_lost_total ")
                && metrics.contains("switchyard_journal_root_bytes "),
            "{metrics}"
        );
        promtool_check(&metrics);

        // Space returns: the journal writes again and reports the gap.
        std::fs::remove_file(&ballast2).unwrap();
        j.retry_now();
        within("the end of the outage", outage.wait_for(|down| !*down))
            .await
            .expect("the journal is open");
        assert!(j.outage().is_none());
        assert_eq!(journal_health(&shared), Health::Healthy);
        let gaps = j.gaps();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        let g = gaps[0].clone();
        assert!(g.lost > 0 && g.resumed_at == g.after_index + 1, "{g}");
        let lost_now = j.stats().records_lost;
        assert!(lost_now >= g.lost);
        until("records after the gap to be durable", || {
            j.durable() > g.resumed_at + 100
        })
        .await;
        println!(
            "outage: {o}; gap: {g}; {} records refused in all, {} failed attempts; root {} bytes",
            j.stats().records_lost,
            j.stats().write_failures,
            jc["root"]["usage"]["bytes"]
        );
        ShutdownTrigger::Requested {
            reason: format!("{g}"),
            source: "test".into(),
        }
    });
    assert!(summary.kill_switch.counters.triggers >= 1, "{summary}");

    // After the run: the journal verifies, and the gap record sits where it says.
    let v = verify(&run_dir).unwrap();
    assert!(v.ok() && v.torn_tail.is_none(), "{v}");
    let gap = JournalReader::open(&run_dir)
        .unwrap()
        .records(ReadFilter::all())
        .map(Result::unwrap)
        .find(|r| r.topic == GAP_TOPIC)
        .expect("the gap record");
    assert_eq!(gap.kind, CONTROL_KIND);
    let p: serde_json::Value = serde_json::from_slice(&gap.payload).unwrap();
    assert!(p["lost"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(p["after_index"].as_u64().unwrap() + 1, gap.index);
    assert!(Path::new(&root).exists());
    drop(fs);
}
