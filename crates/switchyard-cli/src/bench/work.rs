//! `switchyard bench work <workload> --events N`: one workload and nothing
//! else, for counting instructions per event under callgrind (`scripts/instructions`
//! runs each at two sizes and divides the difference by the extra events, so the
//! set-up cancels out). Prints the events done.

use std::time::Duration;

use super::pipeline;

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Bus 1 → 1: one publisher, one subscriber, `Block` overflow, on a current-thread
    /// runtime (one thread: the count does not depend on how two threads interleave).
    Bus,
    /// Bus 1 → 16: one publisher, sixteen subscribers, `Block` overflow, on a
    /// current-thread runtime.
    Fanout,
    /// The engine's synchronous chain on the BTCUSDT files, already parsed.
    Engine,
    /// Journal appends under group commit (1,000 events or 1 ms), 100-byte payloads.
    Journal,
    /// The replay feed's parsing: the BTCUSDT trades and quotes files read, parsed and
    /// merged in time order, passes repeated to `events`.
    Parse,
    /// The whole pipeline through the node (replay of the BTCUSDT files → bus → engine →
    /// paper venue, one strategy), passes repeated to about `events`, on a current-thread
    /// runtime: the instructions of every stage together.
    Pipeline,
    /// The same on the multi-thread runtime, as `bench pipeline` runs it (for `perf`: the
    /// stages on two cores, with their hand-offs and wake-ups).
    PipelineThreaded,
}

/// Runs `workload` for `events` events; returns the events done.
pub fn run(workload: Workload, events: u64) -> anyhow::Result<u64> {
    match workload {
        Workload::Bus => bus_on_one_thread(events, 1),
        Workload::Fanout => bus_on_one_thread(events, 16),
        Workload::Engine => pipeline::sync_chain_only(events),
        Workload::Parse => pipeline::parse_only(events),
        Workload::Pipeline => runtime(false)?.block_on(pipeline::node_only(events)),
        Workload::PipelineThreaded => runtime(true)?.block_on(pipeline::node_only(events)),
        Workload::Journal => {
            let dir = std::env::temp_dir()
                .join(format!("switchyard-work-journal-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            switchyard_journal::bench::append_group_commit(&dir, events, 100);
            std::fs::remove_dir_all(&dir)?;
            Ok(events)
        }
    }
}

/// The bus, one publisher to `subs` subscribers, on a current-thread runtime (one
/// thread: the count does not depend on how two threads interleave).
fn bus_on_one_thread(events: u64, subs: usize) -> anyhow::Result<u64> {
    let rt = runtime(false)?;
    rt.block_on(super::bus::bus_fanout(events, subs, false));
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(events)
}

/// A current-thread runtime, or the multi-thread one when `threaded`.
fn runtime(threaded: bool) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = if threaded {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build()
}
