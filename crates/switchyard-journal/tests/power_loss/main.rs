//! Simulated power loss (anchor: SQLite's crash-test VFS): a real [`Journal`] writes to a
//! [`SimDisk`]; the power is cut after a random number of disk operations (or at the end
//! of the workload), the disk keeps a random subset of the unsynced writes (whole, torn
//! or dropped, in any order), and recovery must give exactly a prefix of the appended
//! records that holds every record the journal reported durable, and accept nothing
//! corrupt; it must always succeed (a damaged tail that valid frames follow is cut and
//! kept in a side file, which must hold exactly the cut bytes). Then a second run on the recovered disk appends more (through the writer's
//! own recovery, whose truncation must be durable too), is cut again, and the same holds.

mod sim_disk;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use switchyard::Timestamp;
use switchyard_journal::{
    Journal, JournalConfig, JournalError, JournalReader, ReadFilter, SyncPolicy, verify,
};

use sim_disk::{CrashStats, Rng, SimDisk};

/// Proptest cases (each: two runs, two power cuts, three recoveries).
const CASES: u32 = 512;
/// Cut points are drawn from `0..MAX_CUT` disk operations; a workload makes about 10 to
/// 150, so some cases run to the end and are cut there, with data still unsynced.
const MAX_CUT: u64 = 80;

fn root() -> PathBuf {
    PathBuf::from("/sim/journal")
}

fn config(dir: &Path, sync: SyncPolicy) -> JournalConfig {
    JournalConfig::new(dir)
        .segment_bytes(1000)
        .max_buffer_bytes(1 << 20)
        .sync(sync)
}

/// One record as the test appended it: journal index, which run appended it, payload.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    index: u64,
    run: u8,
    payload: Vec<u8>,
}

fn payload(run: u8, index: u64) -> Vec<u8> {
    let n = ((index * 7 + u64::from(run) * 13) % 90) as usize;
    (0..n)
        .map(|k| (index as u8).wrapping_mul(31) ^ (k as u8) ^ run)
        .collect()
}

#[derive(Clone, Debug)]
struct Plan {
    sync: SyncPolicy,
    records: [u64; 2],
    sync_every: [u64; 2],
    cut: [u64; 2],
    /// At the end, and at each checkpoint (every `sync_every` records) whose bit is clear
    /// in `sync_mask`: let the writer hand what was appended to the disk (unsynced)
    /// before going on. At checkpoints whose bit is set: `sync_now`.
    settle: [bool; 2],
    sync_mask: [u32; 2],
    seed: [u64; 2],
}

fn plan() -> impl Strategy<Value = Plan> {
    let sync = prop_oneof![
        Just(SyncPolicy::Always),
        (1u64..20).prop_map(|n| SyncPolicy::Group {
            every_events: n,
            // Event-count driven only: no timing in the test.
            every: Duration::from_secs(3600),
        }),
        Just(SyncPolicy::Never),
    ];
    (
        sync,
        [1u64..40, 0u64..25],
        [1u64..30, 1u64..30],
        [0..MAX_CUT, 0..MAX_CUT],
        any::<[bool; 2]>(),
        any::<[u32; 2]>(),
        any::<[u64; 2]>(),
    )
        .prop_map(
            |(sync, records, sync_every, cut, settle, sync_mask, seed)| Plan {
                sync,
                records,
                sync_every,
                cut,
                settle,
                sync_mask,
                seed,
            },
        )
}

#[derive(Debug, Default)]
struct Totals {
    cut_mid_run: u64,
    cut_at_end: u64,
    runs_with_unsynced_data: u64,
    crash: CrashStats,
    /// Recoveries that cut a damaged tail followed by valid frames (kept in a side file).
    cut_aside: u64,
    recovered_records: u64,
    durable_records: u64,
}

impl Totals {
    fn add(&mut self, c: CrashStats) {
        let t = &mut self.crash;
        t.unsynced_writes += c.unsynced_writes;
        t.kept_whole += c.kept_whole;
        t.torn += c.torn;
        t.dropped += c.dropped;
        t.reordered_files += c.reordered_files;
        t.lost_files += c.lost_files;
        self.runs_with_unsynced_data += u64::from(c.unsynced_writes > 0);
    }
}

fn is_power_cut(e: &JournalError) -> bool {
    format!("{e:?}").contains("simulated power cut")
}

/// Run `run` (0 or 1) of the plan on `disk`: append its records, syncing or settling at
/// checkpoints, with the power cut after its number of disk operations. Returns the
/// recovery report's last index (if the journal opened), the records appended and the
/// durable index the journal reported, read after the power is cut (every sync that
/// completed happened before it).
fn run(disk: &SimDisk, p: &Plan, run: usize, totals: &mut Totals) -> (Option<u64>, Vec<Rec>, u64) {
    let (n, sync_every, cut) = (p.records[run], p.sync_every[run], p.cut[run]);
    let (settle, sync_mask, sync) = (p.settle[run], p.sync_mask[run], p.sync);
    let run = run as u8;
    disk.cut_after(cut);
    let (j, rep) = match Journal::open_with_storage(config(&root(), sync), Arc::new(disk.clone())) {
        Ok(x) => x,
        Err(e) => {
            assert!(is_power_cut(&e), "run {run}: open failed: {e}");
            totals.cut_mid_run += 1;
            return (None, Vec::new(), 0);
        }
    };
    let mut appended = Vec::new();
    let mut failed = false;
    for k in 1..=n {
        let index = j.next_index();
        let p = payload(run, index);
        match j.append(index, Timestamp(index), "power.loss", "bytes", &p) {
            Ok(i) => {
                assert_eq!(i, index);
                appended.push(Rec {
                    index,
                    run,
                    payload: p,
                });
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
        if k % sync_every == 0 {
            if sync_mask & (1 << ((k / sync_every) % 32)) != 0 {
                if j.sync_now().is_err() {
                    failed = true;
                    break;
                }
            } else {
                settle_writes(&j, disk, index);
            }
        }
    }
    if settle && !failed {
        settle_writes(&j, disk, appended.last().map_or(0, |r| r.index));
    }
    // The power goes (if it has not already): nothing reaches the disk from now on.
    if failed || disk.is_cut() {
        totals.cut_mid_run += 1;
    } else {
        totals.cut_at_end += 1;
    }
    disk.cut_after(0);
    let durable = j.durable();
    drop(j);
    (Some(rep.last_index), appended, durable)
}

/// Wait until the writer has handed record `index` to the disk (not necessarily synced),
/// or the power is cut under it. A condition, not a delay.
fn settle_writes(j: &Journal, disk: &SimDisk, index: u64) {
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    while j.written() < index && !disk.is_cut() {
        assert!(std::time::Instant::now() < give_up, "the writer hangs");
        std::thread::yield_now();
    }
}

/// Recover the disk with the real file system and the journal's read-only tools, and
/// check it against `expected` (every record appended, in index order) and `durable`.
/// Recovery must always succeed. Returns the records recovered and whether recovery cut
/// a damaged tail that valid frames followed (unsynced frames that reached the disk
/// after a hole), which it must have copied to a side file first.
fn check(disk: &SimDisk, expected: &[Rec], durable: u64, what: &str) -> (u64, bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    std::fs::create_dir_all(&dir).unwrap();
    // The writer's recovery, on a copy of the crashed disk; then the recovered disk is
    // read back with the read-only tools from real files.
    let recovered = disk.fork();
    let (j, rep) = Journal::open_with_storage(
        config(&root(), SyncPolicy::Never),
        Arc::new(recovered.clone()),
    )
    .unwrap_or_else(|e| panic!("{what}: recovery failed: {e}"));
    j.close().unwrap();
    drop(j);
    let mut kept_aside = false;
    if let Some(t) = &rep.truncated
        && let Some(side) = &t.kept_in
    {
        kept_aside = true;
        assert!(t.next_valid.is_some(), "{what}: {t}");
        let before = disk.read(&t.segment).expect("the cut segment");
        assert_eq!(
            recovered.read(side).as_deref(),
            Some(&before[t.offset as usize..]),
            "{what}: the side file {} does not hold the cut bytes",
            side.display()
        );
    }
    recovered.materialize(&root(), &dir);
    let r = JournalReader::open(&dir).unwrap();
    assert!(
        r.report().torn_tail.is_none(),
        "{what}: recovery left a torn tail: {}",
        r.report()
    );
    let v = verify(&dir).unwrap();
    assert!(v.ok(), "{what}: verify after recovery: {v}");
    let records: Vec<Rec> = r
        .records(ReadFilter::all())
        .map(|r| {
            let r = r.unwrap();
            Rec {
                index: r.index,
                run: if r.kind == "bytes" {
                    r.payload_run()
                } else {
                    255
                },
                payload: r.payload,
            }
        })
        .collect();
    assert_eq!(rep.last_index, records.len() as u64, "{what}: {rep}");
    check_prefix(&records, expected, durable, what);
    (records.len() as u64, kept_aside)
}

fn check_prefix(records: &[Rec], expected: &[Rec], durable: u64, what: &str) {
    assert!(
        records.len() <= expected.len(),
        "{what}: {} records recovered, {} appended",
        records.len(),
        expected.len()
    );
    for (got, want) in records.iter().zip(expected) {
        assert_eq!(got, want, "{what}: record #{} differs", want.index);
    }
    assert!(
        records.len() as u64 >= durable,
        "{what}: durable #{durable} reported, only {} recovered",
        records.len()
    );
}

/// Which run wrote a record: the test's seq is the index, its timestamp the index; the
/// run is recovered from the payload it must equal.
trait PayloadRun {
    fn payload_run(&self) -> u8;
}

impl PayloadRun for switchyard_journal::OwnedRecord {
    fn payload_run(&self) -> u8 {
        (0..2)
            .find(|&r| payload(r, self.index) == self.payload)
            .unwrap_or(254)
    }
}

fn run_plan(p: &Plan, totals: &mut Totals) {
    let disk = SimDisk::default();
    // Run 0, power cut, recovery check.
    let (_, appended, durable) = run(&disk, p, 0, totals);
    let (disk, c) = disk.crash(&mut Rng(p.seed[0]));
    totals.add(c);
    totals.durable_records += durable;
    let (kept, aside) = check(&disk, &appended, durable, "after the first cut");
    totals.cut_aside += u64::from(aside);
    totals.recovered_records += kept;

    // Run 1 on the crashed disk: its own recovery (through the simulated disk) must find
    // exactly what was checked, and append after it.
    let (opened, more, durable2) = run(&disk, p, 1, totals);
    if let Some(last) = opened {
        assert_eq!(last, kept, "the writer's recovery disagrees with the check");
    }
    let mut expected: Vec<Rec> = appended.into_iter().take(kept as usize).collect();
    expected.extend(more);
    let (disk, c) = disk.crash(&mut Rng(p.seed[1]));
    totals.add(c);
    let durable = durable2.max(if opened.is_some() { kept } else { durable });
    totals.durable_records += durable;
    let (n, aside) = check(&disk, &expected, durable, "after the second cut");
    totals.cut_aside += u64::from(aside);
    totals.recovered_records += n;
}

#[test]
fn power_loss_recovers_a_prefix_holding_every_durable_record() {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        // The writer thread batches as it goes, so a failing plan need not replay
        // exactly: the failure message carries the plan, nothing is persisted.
        failure_persistence: None,
        ..Config::default()
    });
    let totals = std::cell::RefCell::new(Totals::default());
    let result = runner.run(&plan(), |p| {
        run_plan(&p, &mut totals.borrow_mut());
        Ok(())
    });
    let totals = totals.into_inner();
    println!("{CASES} cases: {totals:#?}");
    result.unwrap();
    // The simulation exercised what it is for.
    assert!(
        totals.cut_mid_run > 0 && totals.cut_at_end > 0,
        "{totals:?}"
    );
    assert!(
        totals.crash.torn > 0 && totals.crash.dropped > 0,
        "{totals:?}"
    );
    assert!(totals.crash.reordered_files > 0, "{totals:?}");
    // Holes do happen (about 4% of cuts), and recovery cut them aside.
    assert!(totals.cut_aside > 0, "{totals:?}");
}
