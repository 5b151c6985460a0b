//! The node on the committed market data: several strategies and venues, configuration
//! errors, a shutdown with a backlog, and the loss-limit halt at a high event rate.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use switchyard::lifecycle::{ShutdownTrigger, Signal, StopOutcome};
use switchyard_node::{Config, Node, RunSummary};
use switchyard_trading::model::{
    InstrumentId, MarketEvent, OrderRequest, OrderType, Side, TimeInForce,
};
use switchyard_trading::num::Quantity;
use switchyard_trading::strategy::{Strategy, StrategyContext};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata")).join(name)
}

fn usdjpy() -> InstrumentId {
    InstrumentId::new("truefx", "USDJPY")
}

/// A configuration on the BTCUSDT files and the USDJPY ticks, with two venues, limits
/// that do not bind, no journal, no API; `extra` TOML is merged over it.
fn config(extra: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    let files = [
        testdata("tardis_binance-futures_BTCUSDT_trades.csv"),
        testdata("tardis_binance-futures_BTCUSDT_quotes.csv"),
        testdata("truefx_USDJPY_ticks.csv"),
    ]
    .map(|p| format!("{:?}", p.display().to_string()))
    .join(", ");
    let text = format!(
        r#"
[run]
feed = "replay"
files = [{files}]
http = ""
[journal]
enabled = false
[risk]
max_order_quantity = "100"
max_notional = "100000"
max_position = "100"
max_open_orders = 100
orders_per_second = 100000
burst = 100000
price_band_bps = 500
daily_loss_limit = "1000000"
[[venue]]
name = "binance-futures"
kind = "paper"
latency_ms = 5
taker_fee_bps = 4
maker_fee_bps = 2
tick = "0.01"
lot = "0.001"
[[venue]]
name = "truefx"
kind = "paper"
latency_ms = 0
taker_fee_bps = 1
maker_fee_bps = 0
tick = "0.001"
lot = "1"
{extra}
"#
    );
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e:#}"))
}

const MAC: &str = r#"
[[strategy]]
name = "mac"
kind = "ma_crossover"
venue = "binance-futures"
symbol = "BTCUSDT"
fast = 5
slow = 20
max_position = "0.01"
allow_short = true
"#;

/// A user-defined strategy: on USDJPY quotes, after three rising mids go long `size`,
/// after three falling mids go short.
struct Momentum {
    name: String,
    last: Option<i64>,
    run: i32,
    size: Quantity,
}

impl Momentum {
    fn new(name: &str) -> Self {
        Momentum {
            name: name.into(),
            last: None,
            run: 0,
            size: Quantity::from_int(10).unwrap(),
        }
    }
}

impl Strategy for Momentum {
    fn name(&self) -> &str {
        &self.name
    }

    fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
        let MarketEvent::Quote(q) = ev else { return };
        if q.instrument != usdjpy() {
            return;
        }
        let mid = q.mid().raw();
        self.run = match self.last {
            Some(l) if mid > l => self.run.max(0) + 1,
            Some(l) if mid < l => self.run.min(0) - 1,
            _ => self.run,
        };
        self.last = Some(mid);
        let target = match self.run {
            3.. => self.size,
            ..=-3 => Quantity::from_raw(-self.size.raw()),
            _ => return,
        };
        let Ok(projected) = ctx.projected_position(&usdjpy()) else {
            return;
        };
        let Ok(delta) = target.checked_sub(projected) else {
            return;
        };
        if delta.is_zero() || !ctx.can_trade(&usdjpy()) {
            return;
        }
        let side = if delta.is_positive() {
            Side::Buy
        } else {
            Side::Sell
        };
        let _ = ctx.market_order(&usdjpy(), side, delta.checked_abs().unwrap());
    }
}

fn run(node: Node) -> RunSummary {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(node.run(std::future::pending())).unwrap()
}

fn strategy(s: &RunSummary, name: &str) -> Value {
    let v = serde_json::to_value(&s.engine).unwrap();
    let found = v["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .cloned();
    let mut found = found.unwrap_or_else(|| panic!("strategy {name} in {v}"));
    // Shown every market event in both runs; the rest is what it did.
    found.as_object_mut().unwrap().remove("own_limits");
    found
}

#[test]
fn two_strategies_make_what_each_makes_alone() {
    let alone_mac = run(Node::builder(config(MAC)).build().unwrap());
    let alone_mom = run(Node::builder(config(""))
        .strategies_from_config(false)
        .strategy(Momentum::new("mom"))
        .build()
        .unwrap());
    let both = run(Node::builder(config(MAC))
        .strategy(Momentum::new("mom"))
        .build()
        .unwrap());
    for s in [&alone_mac, &alone_mom, &both] {
        assert_eq!(s.exit_code, 0, "{s}");
        assert_eq!(s.shutdown.undelivered(), 0);
    }
    let (mac, mom) = (strategy(&both, "mac"), strategy(&both, "mom"));
    assert!(mac["stats"]["fills"].as_u64().unwrap() > 0, "{mac}");
    assert!(mom["stats"]["fills"].as_u64().unwrap() > 0, "{mom}");
    assert_eq!(mac, strategy(&alone_mac, "mac"));
    assert_eq!(mom, strategy(&alone_mom, "mom"));
    // Each has its own positions: mac only BTCUSDT, mom only USDJPY.
    assert!(
        mac["positions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["instrument"] == "BTCUSDT.binance-futures")
    );
    assert!(
        mom["positions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["instrument"] == "USDJPY.truefx")
    );
    // The totals are the sums.
    assert_eq!(
        both.engine.stats.fills,
        alone_mac.engine.stats.fills + alone_mom.engine.stats.fills
    );
    // Two venues, two breakers, each judged only on its own orders.
    let breakers: Vec<String> = both
        .engine
        .strategies
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(breakers, ["mac", "mom"]);
}

#[test]
fn own_limits_refuse_only_that_strategys_orders_and_a_shared_limit_binds_the_sum() {
    // mac's own order-size limit is below its order size: all its orders are refused;
    // mom trades as alone.
    let own = format!("{MAC}[strategy.risk]\nmax_order_quantity = \"0.001\"\n");
    let alone_mom = run(Node::builder(config(""))
        .strategies_from_config(false)
        .strategy(Momentum::new("mom"))
        .build()
        .unwrap());
    let s = run(Node::builder(config(&own))
        .strategy(Momentum::new("mom"))
        .build()
        .unwrap());
    let mac = strategy(&s, "mac");
    assert_eq!(mac["stats"]["orders_sent"], 0, "{mac}");
    assert_eq!(
        mac["stats"]["rejections"]["max_order_quantity"], mac["stats"]["orders"],
        "{mac}"
    );
    assert_eq!(strategy(&s, "mom"), strategy(&alone_mom, "mom"));
    assert!(s.engine.strategies[0].own_limits && !s.engine.strategies[1].own_limits);
    // The global limit applies to the sum of the strategies: with one open order allowed
    // over both, orders of one are refused while the other's are open.
    let shared = format!("{MAC}\n");
    let mut cfg = config(&shared);
    cfg.risk.max_open_orders = 1;
    let s = run(Node::builder(cfg)
        .strategy(Momentum::new("mom"))
        .build()
        .unwrap());
    let refused: u64 = s
        .engine
        .strategies
        .iter()
        .map(|x| {
            x.stats
                .rejections
                .get("max_open_orders")
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert!(refused > 0, "{s}");
}

/// Asks for its orders under another strategy's name.
struct Impostor;

impl Strategy for Impostor {
    fn name(&self) -> &str {
        "impostor"
    }
    fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
        if ev.instrument() != &usdjpy() || ctx.open_quantity(&usdjpy()) != Quantity::ZERO {
            return;
        }
        let n = ctx.now().0;
        let _ = ctx.submit(OrderRequest {
            client_order_id: format!("x-{n}").as_str().into(),
            strategy: "mac".into(),
            instrument: usdjpy(),
            side: Side::Buy,
            quantity: Quantity::ONE,
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Ioc,
        });
    }
}

#[test]
fn a_strategy_cannot_act_as_another() {
    let s = run(Node::builder(config(MAC))
        .strategy(Impostor)
        .build()
        .unwrap());
    let imp = strategy(&s, "impostor");
    assert!(imp["stats"]["orders"].as_u64().unwrap() > 0);
    assert_eq!(imp["stats"]["orders_sent"], 0, "{imp}");
    assert_eq!(
        imp["stats"]["rejections"]["foreign_strategy"],
        imp["stats"]["orders"]
    );
    // Nothing was attributed to the strategy it named.
    assert!(
        strategy(&s, "mac")["positions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["instrument"] != "USDJPY.truefx")
    );
}

#[test]
fn configuration_errors_name_the_entry_and_the_key() {
    let cases = [
        (
            "[[strategy]]\nname = \"a\"\nkind = \"nope\"\nvenue = \"truefx\"\nsymbol = \"USDJPY\"\n",
            "strategy[0] (a).kind: \"nope\" is not a registered strategy kind",
        ),
        (
            &format!("{MAC}fsat = 3\n"),
            "strategy[0] (mac): unknown field `fsat`",
        ),
        (
            "[[strategy]]\nname = \"a\"\nkind = \"ma_crossover\"\nvenue = \"truefx\"\nsymbol = \"USDJPY\"\nfast = 1\nmax_position = \"1\"\n",
            "strategy[0] (a): missing field `slow`",
        ),
        (
            &format!("{MAC}{MAC}"),
            "strategy[1] (mac).name: another strategy has this name",
        ),
        (
            "[[strategy]]\nname = \"a\"\nkind = \"ma_crossover\"\nvenue = \"kraken\"\nsymbol = \"XBTUSD\"\nfast = 1\nslow = 2\nmax_position = \"1\"\n",
            "strategy[0] (a).venue: no [[venue]] named \"kraken\"",
        ),
        (
            &format!("{MAC}[strategy.risk]\nmax_postion = \"1\"\n"),
            "strategy[0] (mac).risk.max_postion: not a risk limit",
        ),
        (
            &format!("{MAC}slow = 2\n"),
            "strategy[0] (mac).slow: must be greater than fast",
        ),
    ];
    for (extra, want) in cases {
        // Duplicate keys in one table are a TOML error; write the later value's case
        // without the earlier key.
        let extra = if want.contains(".slow:") {
            extra.replace("slow = 20\n", "")
        } else {
            extra.to_owned()
        };
        let err = Config::load_str(&base_without_strategy(&extra)).and_then(|c| {
            Node::builder(c)
                .build()
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e}"))
        });
        let err = format!("{:#}", err.expect_err(want));
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
}

fn base_without_strategy(extra: &str) -> String {
    format!(
        "[journal]\nenabled = false\n[run]\nhttp = \"\"\n[[venue]]\nname = \"truefx\"\nkind = \"paper\"\nlatency_ms = 0\ntaker_fee_bps = 0\nmaker_fee_bps = 0\ntick = \"0.001\"\nlot = \"1\"\n[[venue]]\nname = \"binance-futures\"\nkind = \"paper\"\nlatency_ms = 0\ntaker_fee_bps = 0\nmaker_fee_bps = 0\ntick = \"0.01\"\nlot = \"0.001\"\n{extra}"
    )
}

#[test]
fn a_signal_with_a_backlog_stops_every_component_and_accounts_for_every_event() {
    let mut cfg = config(MAC);
    cfg.run.repeat = 50; // ~1 M events: more than the run will get through
    let node = Node::builder(cfg).build().unwrap();
    let published = Arc::clone(&node.shared().feed_stats);
    let seen = Arc::new(AtomicU64::new(0));
    let s = Arc::clone(&seen);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let summary = rt
        .block_on(node.run(async move {
            // SIGTERM once the feed is well under way.
            while published.published.load(Ordering::Relaxed) < 50_000 {
                tokio::task::yield_now().await;
            }
            s.store(
                published.published.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            ShutdownTrigger::Signal {
                signal: Signal::Terminate,
            }
        }))
        .unwrap();
    assert_eq!(summary.exit_code, 0, "{summary}");
    assert!(seen.load(Ordering::Relaxed) >= 50_000);
    let names: Vec<&str> = summary
        .report
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["feed", "trading-engine"],
        "producers first, then the services"
    );
    assert!(
        summary
            .report
            .components
            .iter()
            .all(|c| c.outcome == StopOutcome::Stopped)
    );
    // The feed stopped cooperatively and reported what it published.
    assert!(summary.feed.cancelled);
    assert!(summary.feed.published < 50 * 19_998 + 1000);
    // Every accepted event was delivered, dropped by policy, or counted undelivered.
    for sub in &summary.shutdown.subscriptions {
        assert_eq!(
            sub.accepted,
            sub.delivered + sub.dropped + sub.undelivered,
            "{sub:?}"
        );
    }
    let engine = summary
        .shutdown
        .subscriptions
        .iter()
        .find(|s| s.name == "trading-engine")
        .unwrap();
    assert_eq!(engine.accepted, summary.feed.published);
}

#[test]
fn a_loss_limit_halt_at_a_high_rate_triggers_once_and_stays_quiet() {
    let journal = tempfile::tempdir().unwrap();
    // The simulator as fast as it goes, a strategy that trades on every cross with a
    // taker fee that loses money, and a loss limit it soon breaches.
    let mut cfg = config(MAC);
    cfg.run.feed = "sim".into();
    cfg.sim.rate = 0;
    cfg.sim.limit = 200_000;
    cfg.risk.daily_loss_limit = "0.5".parse().unwrap();
    cfg.venue[0].taker_fee_bps = 50;
    cfg.venue[0].latency_ms = 0;
    let node = Node::builder(cfg)
        .journal_dir(journal.path().join("run"))
        .build()
        .unwrap();
    let s = run(node);
    let ks = &s.kill_switch;
    assert_eq!(ks.counters.triggers, 1, "{s}");
    assert!(
        ks.counters.repeat_triggers <= 1,
        "identical repeats are not even asked for: {s}"
    );
    assert_eq!(s.engine.stats.kill_switch_trips, 1);
    // The strategy stopped asking once halted: the refusals are a handful, not one a tick.
    let halted = s
        .engine
        .stats
        .rejections
        .get("kill_switch_halted")
        .copied()
        .unwrap_or(0);
    assert!(halted <= 5, "{halted} requests while halted");
    assert!(s.engine.stats.market_events > 150_000);
    // One trigger in the journal's audit: control records are bounded.
    let i = switchyard_journal::inspect(journal.path().join("run")).unwrap();
    let audit = i
        .by_topic
        .get("switchyard.control.kill_switch")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        audit, 1,
        "kill-switch records in the journal: {:?}",
        i.by_topic
    );
    let control = i
        .by_kind
        .get(switchyard_journal::CONTROL_KIND)
        .copied()
        .unwrap_or(0);
    assert!(control < 40, "{control} control records: {:?}", i.by_topic);
    let triggered = s.kill_switch.active.len();
    assert_eq!(triggered, 1);
}

/// Asks for a BTCUSDT market order of an odd size (not a multiple of the venue's lot)
/// on every quote while nothing of its own is open: the venue refuses each on arrival.
struct OddLots;

impl Strategy for OddLots {
    fn name(&self) -> &str {
        "odd-lots"
    }
    fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
        let btc = InstrumentId::new("binance-futures", "BTCUSDT");
        if ev.instrument() != &btc || !ctx.open_quantity(&btc).is_zero() {
            return;
        }
        let _ = ctx.market_order(&btc, Side::Buy, "0.0015".parse().unwrap());
    }
}

#[test]
fn the_breaker_sees_venue_rejections_that_arrive_after_the_latency() {
    // The default latency (5 ms): every refusal arrives on a later market event.
    let cfg = config("");
    assert_eq!(cfg.venue[0].latency_ms, 5);
    let s = run(Node::builder(cfg)
        .strategies_from_config(false)
        .strategy(OddLots)
        .build()
        .unwrap());
    let r = &s.engine.stats.rejections;
    // consecutive_failures = 5: five venue refusals open the breaker, and it refuses the
    // rest itself (and lets a probe through after each open period).
    assert_eq!(s.report.components.len(), 2);
    let venue_refused = r.get("invalid_quantity").copied().unwrap_or(0);
    let breaker_refused = r.get("circuit_open").copied().unwrap_or(0);
    assert!(venue_refused >= 5, "{r:?}");
    assert!(breaker_refused > venue_refused, "{r:?}");
    assert!(
        s.engine.stats.orders_sent < s.engine.stats.orders / 2,
        "{:?}",
        s.engine.stats
    );
}

#[test]
fn a_kill_scoped_to_a_venue_halts_only_the_strategies_trading_there() {
    let alone_mac = run(Node::builder(config(MAC)).build().unwrap());
    let node = Node::builder(config(MAC))
        .strategy(Momentum::new("mom"))
        .build()
        .unwrap();
    node.shared()
        .kill_switch
        .trigger(switchyard::kill_switch::TriggerRequest::new(
            switchyard::kill_switch::Scope::Venue("truefx".into()),
            switchyard::kill_switch::Mode::Halt,
            "venue test",
            "test",
        ));
    let s = run(node);
    let mom = strategy(&s, "mom");
    assert_eq!(mom["stats"]["orders_sent"], 0, "{mom}");
    // It saw its gate and did not ask.
    assert_eq!(mom["stats"]["orders"], 0, "{mom}");
    assert_eq!(strategy(&s, "mac"), strategy(&alone_mac, "mac"));
}

#[test]
fn the_operations_api_stops_last_and_shutdown_follows_the_trailing_data_in_the_journal() {
    let journal = tempfile::tempdir().unwrap();
    let mut cfg = config(MAC);
    cfg.run.http = "127.0.0.1:0".into();
    let node = Node::builder(cfg)
        .journal_dir(journal.path().join("run"))
        .build()
        .unwrap();
    let s = run(node);
    let order: Vec<&str> = s
        .report
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(order.first(), Some(&"feed"), "{order:?}");
    assert_eq!(order.last(), Some(&"ops-api"), "{order:?}");
    assert!(
        s.report
            .components
            .iter()
            .all(|c| c.outcome == StopOutcome::Stopped),
        "{s}"
    );
    // The journal closed after the drain: every market event is in it, and the shutdown
    // record comes after the last of them.
    let reader = switchyard_journal::JournalReader::open(journal.path().join("run")).unwrap();
    let (mut last_market, mut shutdown, mut market) = (0, 0, 0u64);
    for rec in reader.records(switchyard_journal::ReadFilter::default()) {
        let rec = rec.unwrap();
        if rec.kind == switchyard_trading::wire::MARKET_EVENT {
            last_market = rec.index;
            market += 1;
        } else if rec.topic == "switchyard.control.shutdown" {
            shutdown = rec.index;
        }
    }
    assert_eq!(market, s.feed.published);
    assert!(
        shutdown > last_market,
        "shutdown #{shutdown}, last market data #{last_market}"
    );
}

#[test]
fn status_in_the_feed_role_shows_no_trading_engine() {
    let mut cfg = config(MAC);
    cfg.run.role = "feed".into();
    cfg.nats.url = "nats://127.0.0.1:1".into(); // not contacted: nothing starts here
    cfg.validate().unwrap();
    let node = Node::builder(cfg).build().unwrap();
    let names = node.shared().registry.names();
    assert!(!names.iter().any(|n| n == "trading-engine"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "feed") && names.iter().any(|n| n == "nats-bridge"),
        "{names:?}"
    );
    let status = switchyard_ops::OpsProvider::status(&switchyard_node::provider::NodeProvider(
        Arc::clone(node.shared()),
    ));
    let shown: Vec<&str> = status["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(shown, names.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(status["role"], "feed");
    assert!(status["engine"].is_null(), "{status}");
}
