//! Crash test: a child process appends under group commit and reports its durable index;
//! the parent kills it with SIGKILL at a random moment, reopens the journal and checks that
//! everything reported durable is there, intact and in order, and that appending goes on.
//!
//! The child is this test binary itself, running only `crash_child` with an environment
//! variable set; without it `crash_child` returns at once.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use switchyard::Timestamp;
use switchyard_journal::{Journal, JournalConfig, JournalReader, ReadFilter, SyncPolicy, verify};

const CHILD_ENV: &str = "SWITCHYARD_JOURNAL_CRASH_DIR";
const SEED_ENV: &str = "SWITCHYARD_JOURNAL_CRASH_SEED";
const ROUNDS: usize = 5;

fn config(dir: &Path) -> JournalConfig {
    JournalConfig::new(dir)
        .segment_bytes(64 * 1024)
        .sync(SyncPolicy::Group {
            every_events: 64,
            every: Duration::from_millis(3),
        })
}

fn payload_for(index: u64) -> Vec<u8> {
    let n = (index % 37) as usize + 4;
    (0..n)
        .map(|k| (index.wrapping_mul(31).wrapping_add(k as u64 * 7)) as u8)
        .collect()
}

fn append_expected(j: &Journal, n: u64) -> u64 {
    let mut last = 0;
    for _ in 0..n {
        let next = j.next_index();
        last = j
            .append(
                next,
                Timestamp(next),
                "crash.test",
                "bytes",
                &payload_for(next),
            )
            .unwrap();
        assert_eq!(last, next);
    }
    last
}

/// The child: append forever, alternating batches that wait for durability (and report
/// it) with batches that leave data in flight.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (j, _) = Journal::open(config(Path::new(&dir))).unwrap();
    let mut out = std::io::stdout().lock();
    let mut reported = 0;
    for batch in 0..100_000u64 {
        // Small batches that wait, large ones that leave data in flight.
        let last = append_expected(&j, if batch % 2 == 0 { 40 } else { 400 });
        let d = if batch % 2 == 0 {
            j.wait_durable(last).unwrap()
        } else {
            j.durable()
        };
        let mut msg = String::new();
        if d > reported {
            reported = d;
            msg = format!("durable {d}\n");
        }
        if batch % 2 == 1 {
            // A kill point with data in flight.
            msg.push_str(&format!("appended {last}\n"));
        }
        if out
            .write_all(msg.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return; // the parent is gone
        }
    }
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Every record 1..=last present, intact and in order; returns the last index.
fn check_journal(dir: &Path) -> u64 {
    let r = JournalReader::open(dir).unwrap();
    assert!(r.report().torn_tail.is_none(), "{}", r.report());
    let mut n = 0;
    for rec in r.records(ReadFilter::all()) {
        let rec = rec.unwrap();
        n += 1;
        assert_eq!(rec.index, n);
        assert_eq!(rec.seq, n);
        assert_eq!(rec.ts, Timestamp(n));
        assert_eq!(rec.payload, payload_for(n), "record {n}");
    }
    assert!(verify(dir).unwrap().ok());
    n
}

#[test]
fn sigkill_loses_nothing_that_was_reported_durable() {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test seed {seed} (set {SEED_ENV} to repeat)");
    let mut rng = XorShift(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut truncations = 0;
    for round in 0..ROUNDS {
        let kill_after = 1 + rng.next() % 40;
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // Kill after a random number of reports (durable or appended lines).
        let mut reports = 0;
        let mut durable = 0u64;
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("durable ") {
                let n: u64 = n.trim().parse().unwrap();
                assert!(n >= durable);
                durable = n;
            } else if !line.starts_with("appended ") {
                continue;
            }
            reports += 1;
            if reports == kill_after {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_eq!(
            reports, kill_after,
            "round {round}: the child stopped early"
        );

        let (j, rep) = Journal::open(config(dir.path())).unwrap();
        println!("round {round}: killed after {reports} reports, durable {durable}; {rep}");
        truncations += u32::from(rep.truncated.is_some());
        assert!(
            rep.last_index >= durable,
            "round {round}: lost durable records: {rep}"
        );
        // The journal continues after recovery.
        let last = append_expected(&j, 10);
        assert_eq!(last, rep.last_index + 10);
        assert_eq!(j.sync_now().unwrap(), last);
        j.close().unwrap();
        drop(j);
        assert_eq!(check_journal(dir.path()), last);
    }
    println!("{truncations} of {ROUNDS} rounds cut off a torn tail");
}
