//! The `switchyard` binary.

mod bench;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Switchyard: an event-driven runtime for automated trading systems.
#[derive(Parser, Debug)]
#[command(name = "switchyard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a benchmark and print its figures.
    Bench {
        /// What to measure.
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// Event bus throughput and latency against raw tokio mpsc.
    Bus {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Events per throughput run.
        #[arg(long, default_value_t = 2_000_000)]
        events: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Bench { what } => match what {
            BenchWhat::Bus { json, events } => {
                let results = rt.block_on(bench::bus::run(events));
                bench::print_results(json, &results);
            }
        },
    }
    Ok(())
}
