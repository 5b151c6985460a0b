//! [`App`]: the whole command line — `run`, `replay`, `journal`, `config`, `kill`,
//! `reset`, `bench` — for the strategies registered with it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard::lifecycle::signals;
use switchyard_node::strategies::{StrategyConfig, StrategyConfigError, StrategyRegistry};
use switchyard_node::{Config, Node, ReplaySpec};
use switchyard_ops::client;
use switchyard_trading::strategy::Strategy;

use crate::bench;

/// Switchyard: an event-driven runtime for automated trading systems.
#[derive(Parser, Debug)]
#[command(name = "switchyard", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Only warnings and errors in the log; no status lines.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug, Default)]
struct RunArgs {
    /// TOML configuration file (defaults are embedded; see `switchyard config`).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// `sim` or `replay:PATH[,PATH...]`.
    #[arg(long)]
    feed: Option<String>,
    /// Replay pace: `max`, `realtime` or `Nx`.
    #[arg(long)]
    speed: Option<String>,
    /// Stop after this long, e.g. `30s`.
    #[arg(long)]
    duration: Option<String>,
    /// Simulator seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Operations API address (`off` to disable).
    #[arg(long)]
    http: Option<String>,
    /// Replay passes over the files.
    #[arg(long)]
    repeat: Option<u32>,
    /// `all` (one process), `feed` (market data out to NATS) or `strategy` (market data
    /// in from NATS; strategy, risk guard and paper exchange).
    #[arg(long)]
    role: Option<String>,
    /// NATS server URL, e.g. `nats://127.0.0.1:4222` (sets `nats.url`).
    #[arg(long)]
    nats: Option<String>,
    /// Journal root directory (`off` to disable the journal).
    #[arg(long)]
    journal: Option<String>,
}

impl RunArgs {
    fn load(&self, kinds: &[&str]) -> anyhow::Result<Config> {
        let mut cfg = Config::load(self.config.as_deref())?;
        if let Some(f) = &self.feed {
            if f == "sim" {
                cfg.run.feed = "sim".into();
            } else if let Some(paths) = f.strip_prefix("replay:") {
                cfg.run.feed = "replay".into();
                cfg.run.files = paths
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(Into::into)
                    .collect();
            } else {
                anyhow::bail!("--feed: {f:?}: expected sim or replay:PATH[,PATH...]");
            }
        }
        if let Some(s) = &self.speed {
            cfg.run.speed = s.clone();
        }
        if let Some(d) = &self.duration {
            cfg.run.duration = d.clone();
        }
        if let Some(s) = self.seed {
            cfg.sim.seed = s;
        }
        if let Some(h) = &self.http {
            cfg.run.http = if h == "off" { String::new() } else { h.clone() };
        }
        if let Some(r) = self.repeat {
            cfg.run.repeat = r;
        }
        if let Some(r) = &self.role {
            cfg.run.role = r.clone();
        }
        if let Some(u) = &self.nats {
            cfg.nats.url = u.clone();
        }
        match self.journal.as_deref() {
            Some("off") => cfg.journal.enabled = false,
            Some(dir) => {
                cfg.journal.enabled = true;
                cfg.journal.dir = dir.into();
            }
            None => {}
        }
        cfg.validate()?;
        cfg.validate_entries(kinds)?;
        Ok(cfg)
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the paper-trading pipeline (simulator by default; Ctrl-C stops it).
    Run(RunArgs),
    /// Run the trading pipeline again from a journal's market data, and compare its
    /// orders, rejections and executions with those the journal recorded.
    Replay {
        /// The journal directory (a run's `journal/<time>-<pid>`).
        #[arg(value_name = "JOURNAL")]
        path: std::path::PathBuf,
        /// Only records with an envelope sequence number at or after this.
        #[arg(long)]
        from_seq: Option<u64>,
        /// Only records with an envelope sequence number at or before this.
        #[arg(long)]
        to_seq: Option<u64>,
        /// Only records stamped at or after this time (ns since the Unix epoch, as
        /// `journal inspect` shows them).
        #[arg(long)]
        from_time: Option<u64>,
        /// Only records stamped at or before this time (ns since the Unix epoch).
        #[arg(long)]
        to_time: Option<u64>,
        /// Record the replay into this journal directory.
        #[arg(long)]
        record: Option<std::path::PathBuf>,
        /// Exit with status 1 when the replay's decisions differ from the journal's (or
        /// cannot be compared because only a range was replayed).
        #[arg(long)]
        expect_parity: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Configuration of the strategy, risk guard and exchange, as for `run`; `--speed`
        /// paces the replay (`max`, `realtime` for the recorded pace, or `Nx`).
        #[command(flatten)]
        args: RunArgs,
    },
    /// Inspect or verify a journal.
    Journal {
        /// What to do.
        #[command(subcommand)]
        what: JournalWhat,
    },
    /// Print the effective configuration (defaults, file, environment, flags).
    Config(RunArgs),
    /// Trigger the kill switch of a running `switchyard run` over its operations API.
    Kill {
        /// Why (recorded in the audit).
        #[arg(long)]
        reason: String,
        /// Operations API address.
        #[arg(long, default_value = "127.0.0.1:9464")]
        addr: String,
        /// `halt`, `reduce-only` or `flatten` (default halt).
        #[arg(long)]
        mode: Option<String>,
        /// `all`, `venue:NAME`, `strategy:NAME` or `instrument:SYMBOL` (default all).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Reset the kill switch; the operator secret is read from the environment variable
    /// SWITCHYARD_OPERATOR_SECRET or from --secret-file.
    Reset {
        /// Operations API address.
        #[arg(long, default_value = "127.0.0.1:9464")]
        addr: String,
        /// File holding the operator secret.
        #[arg(long)]
        secret_file: Option<std::path::PathBuf>,
        /// Who resets (recorded in the audit).
        #[arg(long, default_value = "cli")]
        who: String,
    },
    /// Run a benchmark and print its figures.
    Bench {
        /// What to measure.
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand, Debug)]
enum JournalWhat {
    /// Segments, record counts by topic and kind, time range.
    Inspect {
        /// The journal directory.
        path: std::path::PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every frame's checksum and sequence; say where the first bad one is.
    Verify {
        /// The journal directory.
        path: std::path::PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
    /// Kill-switch event overtaking a queued backlog of market data.
    KillSwitch {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Queued events ahead of the kill event.
        #[arg(long, default_value_t = 100_000)]
        backlog: u64,
    },
    /// Journal append under group commit and under fsync per event, and replay.
    Journal {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Events per group-commit and replay run.
        #[arg(long, default_value_t = 2_000_000)]
        events: u64,
        /// Events for the fsync-per-event run.
        #[arg(long, default_value_t = 2_000)]
        fsync_events: u64,
        /// Directory for the journal files (on the disk to measure); default: a
        /// temporary directory.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// The NATS bridge, core and JetStream, against raw async-nats clients.
    Nats {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Events per throughput run (1 KB or smaller JSON events).
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// A server to use (default: a private nats-server on a free loopback port).
        #[arg(long)]
        url: Option<String>,
    },
    /// One workload alone (bus 1→1, the engine's chain, journal appends), for counting
    /// instructions per event under callgrind (see `scripts/instructions`).
    Work {
        /// Which workload.
        #[arg(value_enum)]
        workload: bench::work::Workload,
        /// Events to run.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
    },
    /// The whole pipeline on the real BTCUSDT files, repeated to at least `events`.
    Pipeline {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Events to replay (the files are repeated to reach it).
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
    },
}

fn init_logging(format: LogFormat, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet { "warn" } else { "info" };
    let filter =
        EnvFilter::try_from_env("SWITCHYARD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

fn read_secret(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let s = match file {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("reading secret file {}: {e}", p.display()))?,
        None => std::env::var("SWITCHYARD_OPERATOR_SECRET").map_err(|_| {
            anyhow::anyhow!(
                "no operator secret: set SWITCHYARD_OPERATOR_SECRET or pass --secret-file"
            )
        })?,
    };
    Ok(s.trim_end_matches(['\n', '\r']).to_owned())
}

/// The command line as a library: register your strategies' factories, then call
/// [`App::main`]. The `switchyard` binary is `App::new().main()`.
///
/// ```no_run
/// use switchyard_cli::App;
/// # use switchyard_node::strategies::{StrategyConfig, StrategyConfigError};
/// # use switchyard_trading::{model::MarketEvent, strategy::{Strategy, StrategyContext}};
/// # struct MyMm { name: String }
/// # impl Strategy for MyMm {
/// #     fn name(&self) -> &str { &self.name }
/// #     fn on_market_data(&mut self, _: &MarketEvent, _: &mut StrategyContext) {}
/// # }
/// # impl MyMm { fn from_config(c: &StrategyConfig) -> Result<Self, StrategyConfigError> { Ok(MyMm { name: c.name().into() }) } }
/// fn main() -> std::process::ExitCode {
///     App::new().strategy("my_mm", MyMm::from_config).main()
/// }
/// ```
#[derive(Clone, Debug)]
pub struct App {
    factories: StrategyRegistry,
    name: String,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    /// The command line with the built-in strategy kinds (`ma_crossover`).
    pub fn new() -> Self {
        App {
            factories: StrategyRegistry::with_builtins(),
            name: "switchyard".into(),
        }
    }

    /// Registers a strategy factory for `[[strategy]]` entries of `kind`.
    pub fn strategy<S, F>(mut self, kind: &str, factory: F) -> Self
    where
        S: Strategy + Send + 'static,
        F: Fn(&StrategyConfig) -> Result<S, StrategyConfigError> + Send + Sync + 'static,
    {
        self.factories.register(kind, factory);
        self
    }

    /// The program name shown in help and in the summary's hints.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Parses the process's arguments and runs the command; the exit code.
    pub fn main(self) -> ExitCode {
        let cli = match Cli::try_parse() {
            Ok(c) => c,
            Err(e) => e.exit(),
        };
        init_logging(cli.log_format, cli.quiet);
        match self.execute(cli) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => {
                eprintln!("Error: {e:#}");
                ExitCode::from(1)
            }
        }
    }

    fn execute(self, cli: Cli) -> anyhow::Result<i32> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let kinds = self.factories.kinds();
        let json_out = cli.log_format == LogFormat::Json;
        let code = match cli.command {
            Command::Run(args) => {
                let cfg = args.load(&kinds)?;
                let quiet = cli.quiet;
                let node = Node::builder(cfg)
                    .factories(self.factories.clone())
                    .status_lines(!quiet)
                    .on_api_bound(|a| {
                        eprintln!("operations API: http://{a}/status  /metrics  /healthz")
                    })
                    .build()?;
                if let Some(dir) = node.journal_dir()
                    && !quiet
                {
                    eprintln!("journal: {}", dir.display());
                }
                let summary = rt.block_on(node.run(async {
                    let first = signals::wait_for_signal().await;
                    // A second signal during a slow shutdown forces the exit (130/143).
                    signals::spawn_force_exit_on_second_signal();
                    first
                }))?;
                if json_out {
                    out(format_args!("{}\n", serde_json::to_string(&summary)?))?;
                } else {
                    out(format_args!("{summary}"))?;
                }
                summary.exit_code
            }
            Command::Replay {
                path,
                from_seq,
                to_seq,
                from_time,
                to_time,
                record,
                expect_parity,
                json,
                args,
            } => {
                // A replay serves the operations API only when asked (`--http`): the
                // configuration's `run.http` is the live node's address, which a replay
                // run beside it must not try to take.
                let api = args.http.is_some();
                let mut cfg = args.load(&kinds)?;
                if !api {
                    cfg.run.http = String::new();
                }
                // Check every frame first: a damaged journal is not replayed partway.
                let check = switchyard_journal::verify(&path)
                    .map_err(|e| anyhow::anyhow!("journal {}: {e}", path.display()))?;
                if !check.ok() {
                    anyhow::bail!("refusing to replay a damaged journal:\n{check}");
                }
                let pace = match cfg.speed()? {
                    switchyard_trading::feed::Speed::Max => switchyard_journal::Pace::Max,
                    switchyard_trading::feed::Speed::Times(f) => {
                        switchyard_journal::Pace::Original { speed: f }
                    }
                };
                let whole = (from_seq, to_seq, from_time, to_time) == (None, None, None, None);
                let filter = switchyard_journal::ReadFilter {
                    seq: from_seq.unwrap_or(0)..=to_seq.unwrap_or(u64::MAX),
                    time: switchyard::Timestamp(from_time.unwrap_or(0))
                        ..=switchyard::Timestamp(to_time.unwrap_or(u64::MAX)),
                    topics: vec![switchyard::Pattern::new(
                        switchyard_trading::wire::MARKET_DATA,
                    )?],
                    ..switchyard_journal::ReadFilter::default()
                };
                let mut b =
                    Node::builder(cfg)
                        .factories(self.factories.clone())
                        .replay(ReplaySpec {
                            path,
                            pace,
                            filter,
                            compare: whole,
                        });
                if let Some(dir) = record {
                    b = b.journal_dir(dir);
                }
                let node = b.build()?;
                let summary = rt.block_on(node.run(std::future::pending()))?;
                if json {
                    out(format_args!("{}\n", serde_json::to_string(&summary)?))?;
                } else {
                    out(format_args!("{summary}"))?;
                }
                let holds = summary
                    .replay
                    .as_ref()
                    .and_then(|r| r.parity.as_ref())
                    .is_some_and(|p| p.holds());
                if expect_parity && !holds {
                    1
                } else {
                    summary.exit_code
                }
            }
            Command::Journal { what } => match what {
                JournalWhat::Inspect { path, json } => {
                    let i = switchyard_journal::inspect(&path)
                        .map_err(|e| anyhow::anyhow!("journal {}: {e}", path.display()))?;
                    if json {
                        out(format_args!("{}\n", serde_json::to_string(&i)?))?;
                    } else {
                        out(format_args!("{i}"))?;
                    }
                    0
                }
                JournalWhat::Verify { path, json } => {
                    let r = switchyard_journal::verify(&path)
                        .map_err(|e| anyhow::anyhow!("journal {}: {e}", path.display()))?;
                    if json {
                        out(format_args!("{}\n", serde_json::to_string(&r)?))?;
                    } else if r.ok() {
                        out(format_args!("{r}"))?;
                    } else {
                        // Damage goes to stderr, with the segment and offset of each problem.
                        eprint!("{r}");
                    }
                    if r.ok() { 0 } else { 1 }
                }
            },
            Command::Config(args) => {
                out(format_args!("{}", args.load(&kinds)?.to_toml()))?;
                0
            }
            Command::Kill {
                reason,
                addr,
                mode,
                scope,
            } => {
                use switchyard::kill_switch::{Mode, Scope};
                let mode = match mode.as_deref() {
                    None => None,
                    Some("halt") => Some(Mode::Halt),
                    Some("reduce-only") => Some(Mode::ReduceOnly),
                    Some("flatten") => Some(Mode::Flatten),
                    Some(m) => anyhow::bail!("--mode {m:?}: expected halt, reduce-only or flatten"),
                };
                let scope = match scope
                    .as_deref()
                    .map(|s| s.split_once(':').unwrap_or((s, "")))
                {
                    None | Some(("all", "")) => None,
                    Some(("venue", n)) if !n.is_empty() => Some(Scope::Venue(n.into())),
                    Some(("strategy", n)) if !n.is_empty() => Some(Scope::Strategy(n.into())),
                    Some(("instrument", n)) if !n.is_empty() => Some(Scope::Instrument(n.into())),
                    Some(_) => anyhow::bail!(
                        "--scope: expected all, venue:NAME, strategy:NAME or instrument:SYMBOL"
                    ),
                };
                let opts = client::KillOptions {
                    scope,
                    mode,
                    source: Some(format!("{}-cli", self.name)),
                };
                let body = rt.block_on(client::kill(&addr, &reason, &opts))?;
                out(format_args!("{body}\n"))?;
                0
            }
            Command::Reset {
                addr,
                secret_file,
                who,
            } => {
                let secret = read_secret(secret_file.as_deref())?;
                let body = rt.block_on(client::reset(&addr, &secret, &who))?;
                out(format_args!("{body}\n"))?;
                0
            }
            Command::Bench { what } => {
                match what {
                    BenchWhat::Bus { json, events } => {
                        let results = rt.block_on(bench::bus::run(events));
                        bench::print_results(json, &results);
                    }
                    BenchWhat::KillSwitch { json, backlog } => {
                        let results = rt.block_on(bench::kill::run(backlog));
                        bench::print_results(json, &results);
                    }
                    BenchWhat::Work { workload, events } => {
                        out(format_args!("{}\n", bench::work::run(workload, events)?))?;
                    }
                    BenchWhat::Pipeline { json, events } => {
                        let results = rt.block_on(bench::pipeline::run(events))?;
                        bench::print_results(json, &results);
                    }
                    BenchWhat::Nats { json, events, url } => {
                        let results = rt.block_on(bench::nats::run(events, url))?;
                        bench::print_results(json, &results);
                    }
                    BenchWhat::Journal {
                        json,
                        events,
                        fsync_events,
                        dir,
                    } => {
                        let results = bench::journal::run(events, fsync_events, dir.as_deref())?;
                        bench::print_results(json, &results);
                    }
                }
                0
            }
        };
        // Tasks on threads of their own (a feed's) have ended with the node's stop; one
        // blocked for good in a read must not hold the exit after the summary is out.
        rt.shutdown_timeout(std::time::Duration::from_secs(10));
        Ok(code)
    }
}

/// Write to stdout. A reader that went away (`switchyard config | head`) ends the output
/// quietly: the rest is not wanted, and that is not an error (`println!` would panic).
fn out(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    match o.write_fmt(text).and_then(|()| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}
