//! Journal throughput on this machine. Run in release:
//!
//! ```text
//! cargo run --release -p switchyard-journal --example journal_bench -- [EVENTS] [DIR]
//! ```
//!
//! `DIR` (default: the system temp dir) must be on a real disk: fsync on tmpfs is free.

use std::path::PathBuf;

use switchyard_journal::bench;

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .map(|s| s.parse().expect("EVENTS is a number"))
        .unwrap_or(5_000_000);
    let base: PathBuf = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let journal = dir.path().join("group");

    let eps = bench::append_group_commit(&journal, events, 64);
    println!("append, group commit (1000 events / 1 ms), 64 B payload: {eps:>12.0} events/s");
    let eps = bench::replay_eps(&journal);
    println!("replay, read + checksum + decode frames:                 {eps:>12.0} events/s");
    let eps = bench::replay_bus_eps(&journal);
    println!("replay onto a bus, MessagePack decode, one subscriber:      {eps:>12.0} events/s");
    let eps = bench::append_fsync_each(&dir.path().join("each"), 2_000);
    println!("append + wait_durable per event (fsync each):            {eps:>12.0} events/s");
}
