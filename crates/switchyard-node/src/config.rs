//! Configuration of a node: embedded defaults, an optional TOML file, then environment
//! overrides (then, in the binary, command-line flags). Unknown keys and bad values are
//! errors that name the key.
//!
//! Environment overrides: `SWITCHYARD__<SECTION>__<KEY>=<value>` sets `<section>.<key>`
//! (names lower-cased; the value is read as TOML — a number, a boolean, an array — and
//! as a string when it is not valid TOML). Example:
//! `SWITCHYARD__RISK__MAX_POSITION='"0.05"'` or `SWITCHYARD__RUN__SPEED=10x`. In the
//! `[[strategy]]` and `[[venue]]` lists an index selects the entry
//! (`SWITCHYARD__STRATEGY__1__FAST=20`); without one the key applies to the only entry
//! (and is an error when there are several).
//!
//! **Earlier layouts.** A single `[strategy]` table (the layout before several
//! strategies) is read as one `[[strategy]]` entry of kind `ma_crossover`, and an
//! `[exchange]` table as one `[[venue]]` of kind `paper` named by its `venue` key; keys
//! given that way are merged into the default entry.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use switchyard::breaker::BreakerConfig;
use switchyard::kill_switch::{KillPolicyConfig, KillSwitchConfig};
use switchyard_trading::feed::{BadLinePolicy, Pacing, Speed};
use switchyard_trading::model::InstrumentId;
use switchyard_trading::num::{Price, Quantity};
use switchyard_trading::risk::RiskLimits;

pub use crate::duration::parse_duration;

/// The embedded defaults, as TOML (printed by `switchyard config`).
pub const DEFAULTS: &str = include_str!("default_config.toml");

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "SWITCHYARD__";

/// Everything `switchyard run` needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The run itself.
    pub run: RunConfig,
    /// Simulator (feed = "sim").
    pub sim: SimSection,
    /// The strategies (`[[strategy]]`).
    pub strategy: Vec<StrategyEntry>,
    /// Pre-trade risk limits over the sum of all strategies.
    pub risk: RiskLimits,
    /// The execution venues (`[[venue]]`).
    pub venue: Vec<VenueEntry>,
    /// Circuit breaker settings, one breaker in front of each venue.
    pub breaker: BreakerConfig,
    /// Kill switch.
    pub kill_switch: KillSwitchSection,
    /// Automatic kill-switch triggers.
    pub policy: KillPolicyConfig,
    /// Durable journal of the run.
    pub journal: JournalSection,
    /// NATS bridge (multi-process runs).
    pub nats: NatsSection,
}

/// `[journal]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// Journal the run.
    pub enabled: bool,
    /// Root directory; each run writes a new subdirectory of it.
    pub dir: PathBuf,
    /// Topic patterns of journaled bus events (the kill-switch audit is always journaled).
    pub topics: Vec<String>,
    /// `always`, `group` or `never`.
    pub sync: String,
    /// Group commit: fsync after this many events...
    pub group_events: u64,
    /// ...or this many milliseconds.
    pub group_ms: u64,
    /// Segment size in MiB.
    pub segment_mb: u64,
    /// Retention: MiB all runs under `dir` may use together (0: no limit). Oldest closed
    /// segments, then whole old runs, are deleted first; never an open segment.
    pub max_total_mb: u64,
    /// Retention: closed segments last written longer ago than this are deleted
    /// (e.g. `"7d"`, `"12h"`; empty: no limit).
    pub max_age: String,
    /// How often retention runs and the root's usage is measured, in milliseconds (also at
    /// start).
    pub check_ms: u64,
    /// After a failed write or fsync, how often the writer retries, in milliseconds.
    pub retry_ms: u64,
    /// A failed write or fsync triggers the kill switch (scope all, halt): no trading
    /// without an audit trail.
    pub halt_on_failure: bool,
}

impl JournalSection {
    /// `max_age` parsed (`None`: no limit).
    pub fn max_age(&self) -> anyhow::Result<Option<Duration>> {
        if self.max_age.trim().is_empty() {
            return Ok(None);
        }
        parse_duration(&self.max_age)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("journal.max_age: {e}"))
    }
}

/// `[nats]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSection {
    /// Server URL(s), comma-separated; empty: no bridge.
    pub url: String,
    /// `jetstream` or `core`.
    pub mode: String,
    /// Subject prefix.
    pub prefix: String,
    /// Node name used in message ids; empty: the host name.
    pub origin: String,
    /// JetStream stream name.
    pub stream: String,
    /// Durable consumer name; empty: `switchyard-<role>`.
    pub durable: String,
    /// Unacknowledged JetStream publishes in flight.
    pub max_in_flight: usize,
    /// Milliseconds the importer holds messages behind a gap in their lane (a retried
    /// publish stored late) before giving the gap up; 0: no resequencing.
    pub reorder_ms: u64,
    /// User name (the password comes from `SWITCHYARD_NATS_PASSWORD`).
    pub user: String,
    /// A `.creds` file.
    pub creds_file: String,
    /// Require TLS.
    pub tls_required: bool,
    /// Root CA file.
    pub tls_ca_file: String,
    /// Client certificate file.
    pub tls_cert_file: String,
    /// Client key file.
    pub tls_key_file: String,
}

impl std::fmt::Debug for NatsSection {
    // Only names of where secrets come from are in the section; the URL may carry
    // `user:password@`, so it is shown without it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSection")
            .field("url", &redact_url(&self.url))
            .field("mode", &self.mode)
            .field("prefix", &self.prefix)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

use switchyard_nats::config::redact_url;

/// Which part of the pipeline this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Feed, strategy, risk guard and exchange in one process.
    All,
    /// The feed only: market data goes out over NATS.
    Feed,
    /// Strategy, risk guard and paper exchange on market data from NATS.
    Strategy,
}

/// `[run]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// `sim` or `replay`.
    pub feed: String,
    /// Files for `replay`.
    pub files: Vec<PathBuf>,
    /// `max`, `realtime` or `Nx`.
    pub speed: String,
    /// Passes over the replay files.
    pub repeat: u32,
    /// Stop after this long (e.g. `30s`); empty: until the data ends or Ctrl-C.
    pub duration: String,
    /// Bad data lines: `skip` or `fail`.
    pub bad_lines: String,
    /// HTTP operations API address; empty to disable.
    pub http: String,
    /// Seconds between status lines (0: none).
    pub status_interval_secs: u64,
    /// How long queues may drain at shutdown.
    pub drain_deadline_ms: u64,
    /// `all`, `feed` or `strategy`.
    pub role: String,
    /// What a strategy's panic halts: `halt_strategy` (its own scope) or `halt_all`.
    pub strategy_panic: switchyard_trading::engine::StrategyPanic,
    /// How often (ms) a live run checks time-based policy rules while no data arrives.
    pub policy_tick_ms: u64,
    /// The engine's subscription busy-polls on a thread of its own (a core at 100 %, the
    /// lowest tick-to-order latency).
    pub engine_spin: bool,
    /// How a paced feed (the simulator at `sim.rate`, a replay at a `speed` other than
    /// `max`) waits for each event's time: `timer` (bursts, one per millisecond tick) or
    /// `spin` (evenly spaced; the feed's worker thread busy while it waits).
    #[serde(default)]
    pub pacing: Pacing,
    /// Where the feed runs: `auto` (a thread of its own for a feed that never waits, a
    /// runtime worker for a paced one), `dedicated` or `worker`. See [`FeedThread`].
    #[serde(default)]
    pub feed_thread: FeedThread,
}

/// Where the market data feed runs (`[run] feed_thread`).
///
/// A feed that never waits (a replay at `speed = "max"`, the simulator at `rate = 0`) is a
/// CPU-bound loop. On a runtime worker it holds that worker, and the engine's task, woken
/// by each publish, is queued on the same worker behind it: the two take turns on one
/// core (measured: 1.03 cores busy through a whole replay). On a thread of its own the
/// feed and the engine run in parallel. A paced feed is the other way round: it sleeps
/// between events, and on a worker the engine runs on the same thread right after each
/// publish, without waking a parked thread through the OS — the lower tick-to-order
/// latency (the README's pipeline figures give both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedThread {
    /// `dedicated` for a feed that never waits, `worker` for a paced one.
    #[default]
    Auto,
    /// A thread of its own (from the runtime's blocking pool), whatever the pace.
    Dedicated,
    /// A task on the runtime's worker threads, whatever the pace.
    Worker,
}

impl FeedThread {
    /// Whether a feed, `paced` or not, gets a thread of its own.
    pub fn dedicated(self, paced: bool) -> bool {
        match self {
            FeedThread::Auto => !paced,
            FeedThread::Dedicated => true,
            FeedThread::Worker => false,
        }
    }
}

/// `[sim]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSection {
    /// Seed (same seed, same events).
    pub seed: u64,
    /// Events per second (0: as fast as possible).
    pub rate: u64,
    /// Stop after this many events (0: never).
    pub limit: u64,
    /// Simulated time between steps, in microseconds.
    pub step_us: u64,
    /// Chance of a trade after each quote, per mille.
    pub trade_per_mille: u32,
    /// Instruments.
    pub instruments: Vec<SimInstrumentSection>,
}

/// One simulated instrument.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimInstrumentSection {
    /// Venue.
    pub venue: String,
    /// Symbol.
    pub symbol: String,
    /// Starting mid.
    pub start_mid: Price,
    /// Tick size.
    pub tick: Price,
    /// Spread in ticks.
    pub spread_ticks: u32,
    /// Largest step in ticks.
    pub max_step_ticks: u32,
    /// Lot size.
    pub lot: Quantity,
    /// Largest size in lots.
    pub max_size_lots: u32,
}

/// One `[[strategy]]` entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StrategyEntry {
    /// The strategy's id: orders, topics, kill-switch scope.
    pub name: String,
    /// The registered factory that builds it.
    pub kind: String,
    /// Venue of the traded instrument.
    pub venue: String,
    /// Symbol of the traded instrument.
    pub symbol: String,
    /// Limits of its own (keys of `[risk]`), on top of the global ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<toml::Table>,
    /// The kind's own keys.
    #[serde(flatten)]
    pub params: toml::Table,
}

impl StrategyEntry {
    /// The traded instrument.
    pub fn instrument(&self) -> InstrumentId {
        InstrumentId::new(self.venue.as_str(), self.symbol.as_str())
    }
}

/// One `[[venue]]` entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VenueEntry {
    /// Venue name: the `venue` of the instruments it trades.
    pub name: String,
    /// `paper` (the touch-fill paper exchange) or a kind registered in code.
    pub kind: String,
    /// Order latency in milliseconds (event time).
    pub latency_ms: u64,
    /// Taker fee, basis points.
    pub taker_fee_bps: i64,
    /// Maker fee, basis points.
    pub maker_fee_bps: i64,
    /// Tick size of listed instruments.
    pub tick: Price,
    /// Lot size of listed instruments.
    pub lot: Quantity,
    /// Symbols it lists; empty: every symbol a strategy trades on it.
    #[serde(default)]
    pub symbols: Vec<String>,
}

/// `[kill_switch]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSwitchSection {
    /// Environment variable holding the operator secret (reset needs it).
    pub secret_env: String,
    /// Or a file holding it (used when set; takes precedence).
    pub secret_file: String,
    /// Audit and lockout settings.
    #[serde(flatten)]
    pub settings: KillSwitchConfig,
}

impl Config {
    /// Defaults, then `file`, then the environment.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Config> {
        match file {
            None => Self::load_layers(None),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                Self::load_layers(Some((&text, &path.display().to_string())))
            }
        }
    }

    /// Defaults, then the TOML `text`, then the environment.
    pub fn load_str(text: &str) -> anyhow::Result<Config> {
        Self::load_layers(Some((text, "text")))
    }

    /// Defaults, then the TOML `text`, then `env` as if it were the process environment
    /// (only `SWITCHYARD__` names are read). For fuzzing and tests: the process
    /// environment is not read.
    #[doc(hidden)]
    pub fn load_str_with_env(
        text: &str,
        env: &[(std::ffi::OsString, std::ffi::OsString)],
    ) -> anyhow::Result<Config> {
        Self::load_layers_with(Some((text, "text")), env.to_vec())
    }

    fn load_layers(file: Option<(&str, &str)>) -> anyhow::Result<Config> {
        // `vars_os`: `std::env::vars` panics on any variable that is not UTF-8, ours or not.
        Self::load_layers_with(file, std::env::vars_os().collect())
    }

    fn load_layers_with(
        file: Option<(&str, &str)>,
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    ) -> anyhow::Result<Config> {
        let mut value: toml::Table = DEFAULTS.parse().context("embedded defaults")?;
        if let Some((text, name)) = file {
            let user: toml::Table = text
                .parse()
                .map_err(|e| anyhow::anyhow!("config file {name}: {e}"))?;
            merge(&mut value, user, "").with_context(|| format!("config file {name}"))?;
        }
        upgrade_legacy(&mut value)?;
        let mut env = env_overrides(env)?;
        env.sort();
        for (k, v) in env {
            let mut path: Vec<String> = k[ENV_PREFIX.len()..]
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            // The earlier `[exchange]` section is the `[[venue]]` list now.
            if path.first().is_some_and(|p| p == "exchange") {
                path[0] = "venue".into();
                if path.get(1).is_some_and(|p| p == "venue") {
                    path[1] = "name".into();
                }
            }
            // One TOML value, or else the text as it is: a value whose later lines read
            // as more `key = value` pairs (`"1\nfoo = 2"`) is a string, not 1.
            let parsed: toml::Value = format!("x = {v}")
                .parse::<toml::Table>()
                .ok()
                .filter(|t| t.len() == 1)
                .and_then(|mut t| t.remove("x"))
                .unwrap_or(toml::Value::String(v.clone()));
            set_path(&mut value, &path, parsed).with_context(|| format!("environment {k}"))?;
        }
        // Through text, so that an error shows the offending `key = value` line.
        let text = toml::to_string(&value).context("rendering the merged configuration")?;
        let cfg: Config = toml::from_str(&text).map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|sp| {
                    let start = text[..sp.start].rfind('\n').map_or(0, |i| i + 1);
                    let end = text[sp.start..]
                        .find('\n')
                        .map_or(text.len(), |i| sp.start + i);
                    let here = text[start..end].trim();
                    if here.starts_with('[') {
                        // The error is about the table itself (e.g. a missing key).
                        return format!(" (in {here})");
                    }
                    let section = text[..start]
                        .lines()
                        .rev()
                        .find(|l| l.starts_with('['))
                        .unwrap_or("");
                    format!(" (in {section} at `{here}`)")
                })
                .unwrap_or_default();
            anyhow::anyhow!("configuration: {}{line}", e.message())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check values the types cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        match self.run.feed.as_str() {
            "sim" | "replay" => {}
            f => bail!("run.feed: {f:?} is not one of sim, replay"),
        }
        if self.run.feed == "replay" && self.run.files.is_empty() {
            bail!("run.files: replay needs at least one file");
        }
        self.speed()?;
        self.duration()?;
        self.bad_line_policy()?;
        self.http_addr()?;
        if self.run.repeat == 0 {
            bail!("run.repeat: must be at least 1");
        }
        self.risk
            .validate()
            .map_err(|e| anyhow::anyhow!("risk.{}: {}", e.field, e.reason))?;
        self.breaker
            .validate()
            .map_err(|e| anyhow::anyhow!("breaker: {e}"))?;
        self.policy
            .validate()
            .map_err(|e| anyhow::anyhow!("policy: {e}"))?;
        self.kill_switch
            .settings
            .validate()
            .map_err(|e| anyhow::anyhow!("kill_switch: {e}"))?;
        if self.sim.instruments.is_empty() {
            bail!("sim.instruments: at least one instrument");
        }
        let role = self.role()?;
        if role != Role::All && self.nats.url.is_empty() {
            bail!(
                "run.role: {:?} needs a NATS server (nats.url or --nats)",
                self.run.role
            );
        }
        match self.nats.mode.as_str() {
            "jetstream" | "core" => {}
            m => bail!("nats.mode: {m:?} is not one of jetstream, core"),
        }
        let ack_wait = switchyard_nats::JetStreamConfig::default().ack_wait;
        if Duration::from_millis(self.nats.reorder_ms) >= ack_wait {
            bail!(
                "nats.reorder_ms: {} must be below the consumer's ack wait ({} ms): held messages are unacked",
                self.nats.reorder_ms,
                ack_wait.as_millis()
            );
        }
        match self.journal.sync.as_str() {
            "always" | "group" | "never" => {}
            s => bail!("journal.sync: {s:?} is not one of always, group, never"),
        }
        if self.journal.segment_mb == 0 {
            bail!("journal.segment_mb: must be at least 1");
        }
        self.journal.max_age()?;
        if self.journal.check_ms == 0 {
            bail!("journal.check_ms: must be at least 1");
        }
        if self.journal.retry_ms == 0 {
            bail!("journal.retry_ms: must be at least 1");
        }
        for t in &self.journal.topics {
            switchyard::Pattern::new(t)
                .map_err(|e| anyhow::anyhow!("journal.topics: {t:?}: {e}"))?;
        }
        Ok(())
    }

    /// `run.role` parsed.
    pub fn role(&self) -> anyhow::Result<Role> {
        match self.run.role.as_str() {
            "all" => Ok(Role::All),
            "feed" => Ok(Role::Feed),
            "strategy" => Ok(Role::Strategy),
            r => bail!("run.role: {r:?} is not one of all, feed, strategy"),
        }
    }

    /// `run.speed` parsed.
    pub fn speed(&self) -> anyhow::Result<Speed> {
        self.run
            .speed
            .parse()
            .map_err(|e: String| anyhow::anyhow!("run.speed: {e}"))
    }

    /// `run.duration` parsed.
    pub fn duration(&self) -> anyhow::Result<Option<Duration>> {
        if self.run.duration.is_empty() {
            return Ok(None);
        }
        parse_duration(&self.run.duration)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("run.duration: {e}"))
    }

    /// `run.bad_lines` parsed.
    pub fn bad_line_policy(&self) -> anyhow::Result<BadLinePolicy> {
        match self.run.bad_lines.as_str() {
            "skip" => Ok(BadLinePolicy::Skip),
            "fail" => Ok(BadLinePolicy::Fail),
            x => bail!("run.bad_lines: {x:?} is not one of skip, fail"),
        }
    }

    /// `run.http` parsed; None when empty.
    pub fn http_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        if self.run.http.is_empty() {
            return Ok(None);
        }
        self.run
            .http
            .parse()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("run.http: {:?}: {e}", self.run.http))
    }

    /// Check the strategy and venue lists: unique names, known venues and kinds.
    /// `kinds` are the registered strategy factories.
    pub fn validate_entries(&self, kinds: &[&str]) -> anyhow::Result<()> {
        let mut names = std::collections::HashSet::new();
        for (i, v) in self.venue.iter().enumerate() {
            if v.name.is_empty() {
                bail!("venue[{i}].name: must not be empty");
            }
            if !names.insert(v.name.as_str()) {
                bail!(
                    "venue[{i}] ({}).name: a venue with this name is already configured",
                    v.name
                );
            }
            if v.kind != "paper" {
                bail!(
                    "venue[{i}] ({}).kind: {:?} is not a venue kind of this node (paper)",
                    v.name,
                    v.kind
                );
            }
            if !v.tick.is_positive() {
                bail!("venue[{i}] ({}).tick: must be positive", v.name);
            }
            if !v.lot.is_positive() {
                bail!("venue[{i}] ({}).lot: must be positive", v.name);
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.strategy.iter().enumerate() {
            let at = format!("strategy[{i}] ({})", s.name);
            if s.name.is_empty() {
                bail!("strategy[{i}].name: must not be empty");
            }
            switchyard::Topic::new(&format!("orders.request.{}", s.name)).map_err(|e| {
                anyhow::anyhow!("{at}.name: {:?} cannot be part of a topic: {e}", s.name)
            })?;
            if !names.insert(s.name.as_str()) {
                bail!("{at}.name: another strategy has this name (names must be unique)");
            }
            if !kinds.contains(&s.kind.as_str()) {
                bail!(
                    "{at}.kind: {:?} is not a registered strategy kind (registered: {})",
                    s.kind,
                    kinds.join(", ")
                );
            }
            let Some(v) = self.venue.iter().find(|v| v.name == s.venue) else {
                bail!("{at}.venue: no [[venue]] named {:?} is configured", s.venue);
            };
            if !v.symbols.is_empty() && !v.symbols.contains(&s.symbol) {
                bail!(
                    "{at}.symbol: venue {:?} does not list {:?} (its symbols: {})",
                    v.name,
                    s.symbol,
                    v.symbols.join(", ")
                );
            }
            self.strategy_limits(i)?;
        }
        Ok(())
    }

    /// The limits of strategy `i` of its own: the global `[risk]` with the keys of its
    /// `[strategy.risk]` replaced; `None` when it has none.
    pub fn strategy_limits(&self, i: usize) -> anyhow::Result<Option<RiskLimits>> {
        let s = &self.strategy[i];
        let Some(own) = &s.risk else { return Ok(None) };
        let mut t = toml::Table::try_from(&self.risk).context("rendering [risk]")?;
        for (k, v) in own {
            if !t.contains_key(k) {
                bail!(
                    "strategy[{i}] ({}).risk.{k}: not a risk limit (known: {})",
                    s.name,
                    t.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            t.insert(k.clone(), v.clone());
        }
        let limits: RiskLimits = t.try_into().map_err(|e: toml::de::Error| {
            anyhow::anyhow!("strategy[{i}] ({}).risk: {}", s.name, e.message())
        })?;
        limits.validate().map_err(|e| {
            anyhow::anyhow!("strategy[{i}] ({}).risk.{}: {}", s.name, e.field, e.reason)
        })?;
        Ok(Some(limits))
    }

    /// The effective configuration as TOML, secrets redacted (only names of where secrets
    /// come from are in it, never a secret).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.nats.url = redact_url(&shown.nats.url);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

/// The `SWITCHYARD__` variables of `env`; one that is not UTF-8 is an error naming it
/// (others are not looked at).
fn env_overrides(
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, v) in env {
        if !k.as_encoded_bytes().starts_with(ENV_PREFIX.as_bytes()) {
            continue;
        }
        let k = k
            .into_string()
            .map_err(|k| anyhow::anyhow!("environment {k:?}: the name is not valid UTF-8"))?;
        let v = v
            .into_string()
            .map_err(|_| anyhow::anyhow!("environment {k}: the value is not valid UTF-8"))?;
        out.push((k, v));
    }
    Ok(out)
}

fn merge(base: &mut toml::Table, over: toml::Table, prefix: &str) -> anyhow::Result<()> {
    for (k, v) in over {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o, &key)?,
            (Some(_), v) => {
                base.insert(k, v);
            }
            // `[exchange]`: the earlier layout of `[[venue]]` (see `upgrade_legacy`).
            (None, v) if prefix.is_empty() && key == "exchange" => {
                base.insert(k, v);
            }
            (None, _) if prefix.is_empty() => bail!("unknown section [{key}]"),
            // Optional keys absent from the defaults: the typed parse validates them.
            (None, v) => {
                base.insert(k, v);
            }
        }
    }
    Ok(())
}

fn set_path(t: &mut toml::Table, path: &[String], v: toml::Value) -> anyhow::Result<()> {
    match path {
        [] => bail!("empty key"),
        [last] => {
            t.insert(last.clone(), v);
            Ok(())
        }
        [first, rest @ ..] => match t.get_mut(first) {
            Some(toml::Value::Table(inner)) => set_path(inner, rest, v),
            Some(toml::Value::Array(list)) => {
                let (index, rest) = match rest[0].parse::<usize>() {
                    Ok(i) => (i, &rest[1..]),
                    Err(_) if list.len() == 1 => (0, rest),
                    Err(_) => bail!(
                        "[[{first}]] has {} entries: say which, e.g. {}__0__{}",
                        list.len(),
                        first.to_ascii_uppercase(),
                        rest[0].to_ascii_uppercase()
                    ),
                };
                let n = list.len();
                match list.get_mut(index) {
                    Some(toml::Value::Table(inner)) if !rest.is_empty() => set_path(inner, rest, v),
                    Some(_) if rest.is_empty() => bail!("{first}.{index}: name a key of the entry"),
                    _ => bail!("{first}.{index}: there are {n} entries"),
                }
            }
            Some(_) => bail!("{first} is not a section"),
            None => bail!("unknown section [{first}]"),
        },
    }
}

/// Earlier layouts: a `[strategy]` table is one `[[strategy]]` of kind `ma_crossover`, an
/// `[exchange]` table one `[[venue]]` of kind `paper`; when the defaults hold exactly one
/// entry, the table's keys are merged into it.
fn upgrade_legacy(value: &mut toml::Table) -> anyhow::Result<()> {
    if let Some(toml::Value::Table(mut old)) = value.remove("exchange") {
        if let Some(name) = old.remove("venue") {
            old.insert("name".into(), name);
        }
        old.entry("kind").or_insert_with(|| "paper".into());
        merge_into_only_entry(value, "venue", old)?;
    }
    if let Some(toml::Value::Table(mut old)) =
        value.get("strategy").cloned().filter(|v| v.is_table())
    {
        value.remove("strategy");
        old.entry("kind").or_insert_with(|| "ma_crossover".into());
        merge_into_only_entry(value, "strategy", old)?;
    }
    Ok(())
}

fn merge_into_only_entry(
    value: &mut toml::Table,
    key: &str,
    table: toml::Table,
) -> anyhow::Result<()> {
    let defaults: toml::Table = DEFAULTS.parse().context("embedded defaults")?;
    let mut base = match defaults.get(key) {
        Some(toml::Value::Array(list)) if list.len() == 1 => {
            list[0].as_table().cloned().unwrap_or_default()
        }
        _ => toml::Table::new(),
    };
    for (k, v) in table {
        base.insert(k, v);
    }
    value.insert(
        key.into(),
        toml::Value::Array(vec![toml::Value::Table(base)]),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.run.feed, "sim");
        assert!(c.http_addr().unwrap().unwrap().ip().is_loopback());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let dir = std::env::temp_dir().join(format!("sy-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.toml");
        std::fs::write(&f, "[risk]\nmax_positon = \"1\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(e.contains("max_positon"), "{e}");
        std::fs::write(&f, "[run]\nspeed = \"fast\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(e.contains("run.speed"), "{e}");
        std::fs::write(&f, "[nope]\nx = 1\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(e.contains("unknown section [nope]"), "{e}");
        std::fs::write(&f, "[risk]\nmax_position = \"abc\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(e.contains("max_position"), "{e}");
        std::fs::write(&f, "[run]\npacing = \"fast\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(
            e.contains("[run]") && e.contains("pacing") && e.contains("`spin`"),
            "{e}"
        );
        std::fs::write(&f, "[run]\npacing = \"spin\"\n").unwrap();
        assert_eq!(Config::load(Some(&f)).unwrap().run.pacing, Pacing::Spin);
        assert_eq!(Config::load(None).unwrap().run.pacing, Pacing::Timer);
    }

    #[test]
    fn feed_thread_is_chosen_by_pace_unless_set() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        assert_eq!(
            Config::load(None).unwrap().run.feed_thread,
            FeedThread::Auto
        );
        assert!(FeedThread::Auto.dedicated(false));
        assert!(!FeedThread::Auto.dedicated(true));
        for paced in [false, true] {
            assert!(FeedThread::Dedicated.dedicated(paced));
            assert!(!FeedThread::Worker.dedicated(paced));
        }
        // The pace the choice rests on, from the configuration.
        let mut c = Config::load(None).unwrap();
        let paced = |c: &Config| crate::feed_source(c).unwrap().is_paced();
        assert!(paced(&c), "the default simulator runs at sim.rate");
        c.sim.rate = 0;
        assert!(!paced(&c), "sim.rate = 0: as fast as it can");
        c.run.feed = "replay".into();
        c.run.speed = "max".into();
        assert!(!paced(&c));
        c.run.speed = "10x".into();
        assert!(paced(&c));
        std::fs::write(&f, "[run]\nfeed_thread = \"worker\"\n").unwrap();
        assert_eq!(
            Config::load(Some(&f)).unwrap().run.feed_thread,
            FeedThread::Worker
        );
        std::fs::write(&f, "[run]\nfeed_thread = \"own\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(
            e.contains("[run]") && e.contains("feed_thread") && e.contains("`dedicated`"),
            "{e}"
        );
    }

    #[test]
    fn roles_need_nats_and_urls_are_redacted() {
        let mut c = Config::load(None).unwrap();
        assert_eq!(c.role().unwrap(), Role::All);
        c.run.role = "feed".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("run.role") && e.contains("nats"), "{e}");
        c.nats.url = "nats://trader:hunter2@127.0.0.1:4222,tls://[::1]:4223".into();
        c.validate().unwrap();
        let shown = format!("{} {:?}", c.to_toml(), c);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("nats://[redacted]@127.0.0.1:4222,tls://[::1]:4223"),
            "{shown}"
        );
        c.run.role = "risk".into();
        assert!(c.validate().unwrap_err().to_string().contains("run.role"));
    }

    #[test]
    fn the_reorder_wait_must_stay_below_the_ack_wait() {
        let mut c = Config::load_str("[nats]\nreorder_ms = 29999\n").unwrap();
        c.validate().unwrap();
        match crate::bridge_config::bridge_config(&c, Role::Strategy).mode {
            switchyard_nats::Mode::JetStream(j) => {
                assert_eq!(j.reorder_wait, Duration::from_millis(29_999))
            }
            switchyard_nats::Mode::Core => panic!("jetstream is the default"),
        }
        c.nats.reorder_ms = 30_000;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("nats.reorder_ms") && e.contains("30000"), "{e}");
    }

    #[test]
    fn the_earlier_single_strategy_and_exchange_tables_still_load() {
        let c = Config::load_str(
            "[strategy]\nfast = 7\n[exchange]\nvenue = \"binance-futures\"\nlatency_ms = 0\n",
        )
        .unwrap();
        assert_eq!(c.strategy.len(), 1);
        let s = &c.strategy[0];
        assert_eq!((s.name.as_str(), s.kind.as_str()), ("mac", "ma_crossover"));
        assert_eq!(s.params["fast"].as_integer(), Some(7));
        // The other keys come from the defaults' entry.
        assert_eq!(s.params["slow"].as_integer(), Some(200));
        assert_eq!(c.venue.len(), 1);
        assert_eq!(
            (c.venue[0].name.as_str(), c.venue[0].latency_ms),
            ("binance-futures", 0)
        );
        assert_eq!(c.venue[0].kind, "paper");
        c.validate_entries(&["ma_crossover"]).unwrap();
    }

    #[test]
    fn overrides_reach_list_entries_by_index_or_the_only_one() {
        let mut t: toml::Table = DEFAULTS.parse().unwrap();
        let path = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        set_path(&mut t, &path("strategy.fast"), toml::Value::Integer(9)).unwrap();
        assert_eq!(t["strategy"][0]["fast"].as_integer(), Some(9));
        set_path(&mut t, &path("strategy.0.slow"), toml::Value::Integer(99)).unwrap();
        assert_eq!(t["strategy"][0]["slow"].as_integer(), Some(99));
        let mut two = t["strategy"][0].clone();
        two.as_table_mut()
            .unwrap()
            .insert("name".into(), "b".into());
        t["strategy"].as_array_mut().unwrap().push(two);
        let e = set_path(&mut t, &path("strategy.fast"), toml::Value::Integer(1)).unwrap_err();
        assert!(e.to_string().contains("STRATEGY__0__FAST"), "{e}");
        let e = set_path(&mut t, &path("strategy.5.fast"), toml::Value::Integer(1)).unwrap_err();
        assert!(e.to_string().contains("there are 2 entries"), "{e}");
        set_path(&mut t, &path("strategy.1.fast"), toml::Value::Integer(4)).unwrap();
        assert_eq!(t["strategy"][1]["fast"].as_integer(), Some(4));
    }

    /// Found reading the code for the `config_toml` fuzz target: a finite duration past
    /// `Duration::MAX` panicked in `Duration::from_secs_f64`.
    #[test]
    fn a_duration_too_long_for_duration_is_an_error_not_a_panic() {
        let e = parse_duration("99999999999999999999999s").unwrap_err();
        assert!(e.contains("too long"), "{e}");
        assert!(parse_duration("1e300").is_err());
        let e = format!(
            "{:#}",
            Config::load_str("[run]\nduration = \"99999999999999999999999h\"\n").unwrap_err()
        );
        assert!(e.contains("run.duration") && e.contains("too long"), "{e}");
    }

    /// Found reading the code for the `config_env` fuzz target: `std::env::vars` panics on
    /// any variable whose name or value is not UTF-8, even one that is not ours.
    #[test]
    fn a_non_utf8_environment_variable_is_an_error_not_a_panic() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let bytes = |b: &[u8]| OsString::from_vec(b.to_vec());
        // Not ours: ignored.
        let env = [(bytes(b"LANG\xff"), bytes(b"C\xff"))];
        Config::load_str_with_env("", &env).unwrap();
        // Ours: an error naming it.
        let env = [(bytes(b"SWITCHYARD__RUN__SPEED"), bytes(b"10x\xff"))];
        let e = format!("{:#}", Config::load_str_with_env("", &env).unwrap_err());
        assert!(
            e.contains("SWITCHYARD__RUN__SPEED") && e.contains("UTF-8"),
            "{e}"
        );
        let env = [(bytes(b"SWITCHYARD__RUN\xff"), bytes(b"1"))];
        let e = format!("{:#}", Config::load_str_with_env("", &env).unwrap_err());
        assert!(e.contains("SWITCHYARD__RUN") && e.contains("UTF-8"), "{e}");
        // The same environment as the process would give, through the override logic.
        let env = [(bytes(b"SWITCHYARD__RUN__SPEED"), bytes(b"10x"))];
        assert_eq!(
            Config::load_str_with_env("", &env).unwrap().run.speed,
            "10x"
        );
    }

    #[test]
    fn a_multi_line_environment_value_is_kept_whole() {
        use std::ffi::OsString;
        let env = |k: &str, v: &str| [(OsString::from(k), OsString::from(v))];
        // A number on the first line and more after: not the number, the whole text (a
        // string, which this key refuses, naming it) — never the first line alone.
        let e = format!(
            "{:#}",
            Config::load_str_with_env("", &env("SWITCHYARD__SIM__RATE", "7\nlimit = 3"))
                .unwrap_err()
        );
        assert!(e.contains("rate"), "{e}");
        let c = Config::load_str_with_env("", &env("SWITCHYARD__NATS__USER", "a\nb = 1")).unwrap();
        assert_eq!(c.nats.user, "a\nb = 1");
        assert_eq!(c.sim.limit, 0, "no key set from a value's later line");
        // One value still reads as TOML.
        let c = Config::load_str_with_env("", &env("SWITCHYARD__SIM__RATE", "7")).unwrap();
        assert_eq!(c.sim.rate, 7);
    }
}
