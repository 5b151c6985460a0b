//! `switchyard bench journal`: journal append under group commit and under an fsync per
//! event, and replay, next to what the file system itself does with the same bytes in
//! the same run (plain `write` + `fdatasync` every 1,000 frames; one sequential read).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use switchyard_journal::bench as jb;

use super::eps;

/// The payload size the targets are stated for.
const PAYLOAD: usize = 64;

fn fresh(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let d = dir.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// Raw file-system ceiling: `events` frames of `frame` bytes written with `write` in
/// 1,000-frame chunks, `fdatasync` after each chunk.
fn baseline_write(dir: &Path, events: u64, frame: usize) -> anyhow::Result<f64> {
    let path = dir.join("raw.bin");
    let chunk = vec![0xabu8; frame * 1000];
    let mut f = std::fs::File::create(&path)?;
    let start = Instant::now();
    let mut left = events;
    while left > 0 {
        let n = left.min(1000);
        f.write_all(&chunk[..frame * n as usize])?;
        f.sync_data()?;
        left -= n;
    }
    let r = eps(events, start.elapsed());
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(r)
}

/// Raw read ceiling: read every file of `dir` once, as frames of `frame` bytes.
fn baseline_read(dir: &Path, frame: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    for p in files(dir)? {
        let mut f = std::fs::File::open(&p)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n;
        }
    }
    Ok(eps((total / frame.max(1)) as u64, start.elapsed()))
}

/// Journal and raw-write runs, paired, for the medians.
const PAIRS: usize = 5;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Run the journal benchmark in `dir` (default: a temporary directory on the system's
/// temporary file system; fsync figures need a real disk).
pub fn run(
    events: u64,
    fsync_events: u64,
    dir: Option<&Path>,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let root = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            std::env::temp_dir().join(format!("switchyard-bench-journal-{}", std::process::id()))
        }
    };
    let group = fresh(&root, "group")?;
    let first_eps = jb::append_group_commit(&group, events, PAYLOAD);
    let bytes: u64 = files(&group)?
        .iter()
        .filter_map(|p| p.metadata().ok())
        .map(|m| m.len())
        .sum();
    let frame = (bytes / events.max(1)).max(1) as usize;
    // The disk's pace drifts more between runs than the journal differs from the raw
    // writes: pair each journal run with a raw run right after it, and take medians
    // (of each, and of the pairs' ratios) over PAIRS pairs.
    let raw = fresh(&root, "raw")?;
    let mut journal_runs = vec![first_eps];
    let mut raw_runs = vec![baseline_write(&raw, events, frame)?];
    for _ in 1..PAIRS {
        let again = fresh(&root, "group-again")?;
        journal_runs.push(jb::append_group_commit(&again, events, PAYLOAD));
        std::fs::remove_dir_all(&again)?;
        raw_runs.push(baseline_write(&raw, events, frame)?);
    }
    let mut ratios: Vec<f64> = journal_runs
        .iter()
        .zip(&raw_runs)
        .map(|(j, r)| j / r.max(1.0))
        .collect();
    let group_eps = median(&mut journal_runs);
    let raw_write = median(&mut raw_runs);
    let ratio = median(&mut ratios);
    let fsync = fresh(&root, "fsync")?;
    let fsync_eps = jb::append_fsync_each(&fsync, fsync_events);
    let replay = jb::replay_eps(&group);
    let replay_bus = jb::replay_bus_eps(&group);
    let lat = fresh(&root, "latency")?;
    let (p50, p99, p999) = jb::append_latency_group_commit(&lat, events.min(1_000_000), PAYLOAD);
    let raw_read = baseline_read(&group, frame)?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(vec![
        ("append_eps_group_commit", group_eps),
        ("baseline_write_fdatasync_eps", raw_write),
        ("append_vs_baseline_ratio", ratio),
        ("append_p50_us", p50),
        ("append_p99_us", p99),
        ("append_p999_us", p999),
        ("append_eps_fsync_each", fsync_eps),
        ("replay_eps", replay),
        ("replay_bus_eps", replay_bus),
        ("baseline_read_eps", raw_read),
        ("frame_bytes", frame as f64),
    ])
}
