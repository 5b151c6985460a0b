//! The node on the committed market data: several strategies and venues, configuration
//! errors, a shutdown with a backlog, and the loss-limit halt at a high event rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use switchyard::lifecycle::{ShutdownTrigger, Signal, StopOutcome};
use switchyard_node::{Config, Node};
use switchyard_trading::model::{
    InstrumentId, MarketEvent, OrderRequest, OrderType, Side, TimeInForce,
};
use switchyard_trading::num::Quantity;
use switchyard_trading::strategy::{Strategy, StrategyContext};
mod common;
use common::*;

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
    // Each strategy was shown every market event, and sent what filled.
    for v in [&mac, &mom] {
        assert_eq!(
            v["stats"]["market_events"], both.engine.stats.market_events,
            "{v}"
        );
        assert!(
            v["stats"]["orders_sent"].as_u64().unwrap() >= v["stats"]["fills"].as_u64().unwrap(),
            "{v}"
        );
        assert!(v["stats"]["orders_sent"].as_u64().unwrap() > 0, "{v}");
    }
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
fn a_spinning_engine_decides_what_a_parked_one_decides() {
    let parked = run(Node::builder(config(MAC)).build().unwrap());
    let mut cfg = config(MAC);
    cfg.run.engine_spin = true;
    let spinning = run(Node::builder(cfg).build().unwrap());
    for s in [&parked, &spinning] {
        assert_eq!(s.exit_code, 0, "{s}");
        assert_eq!(s.shutdown.undelivered(), 0);
    }
    let mac = strategy(&spinning, "mac");
    assert!(mac["stats"]["fills"].as_u64().unwrap() > 0, "{mac}");
    assert_eq!(mac, strategy(&parked, "mac"));
    assert_eq!(
        spinning.engine.stats.market_events,
        parked.engine.stats.market_events
    );
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

#[test]
fn journal_settings_are_checked_naming_the_key() {
    let cases = [
        ("max_total_gb = 1", "unknown field `max_total_gb`"),
        (
            "max_age = \"a week\"",
            "journal.max_age: \"a week\" is not a duration",
        ),
        ("retry_ms = 0", "journal.retry_ms: must be at least 1"),
        ("check_ms = 0", "journal.check_ms: must be at least 1"),
    ];
    for (line, want) in cases {
        let err = Config::load_str(&format!("[journal]\n{line}\n")).expect_err(want);
        let err = format!("{err:#}");
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
    let c = Config::load_str("[journal]\nmax_total_mb = 512\nmax_age = \"7d\"\n").unwrap();
    assert_eq!(c.journal.max_total_mb, 512);
    assert_eq!(
        c.journal.max_age().unwrap(),
        Some(std::time::Duration::from_secs(7 * 86_400))
    );
    // The defaults: no retention limit, halt on a write failure.
    let d = Config::load_str("").unwrap();
    assert_eq!(
        (d.journal.max_total_mb, d.journal.max_age().unwrap()),
        (0, None)
    );
    assert!(d.journal.halt_on_failure);
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
    let summary = run_with(node, async move {
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
    });
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
    // was published after the last of them.
    let reader = switchyard_journal::JournalReader::open(journal.path().join("run")).unwrap();
    let (mut last_market, mut shutdown, mut market) = (0, 0, 0u64);
    for rec in reader.records(switchyard_journal::ReadFilter::default()) {
        let rec = rec.unwrap();
        // Bus sequence numbers: the journal's own index interleaves its recorders' queues.
        if rec.kind == switchyard_trading::wire::MARKET_EVENT {
            last_market = last_market.max(rec.seq);
            market += 1;
        } else if rec.topic == "switchyard.control.shutdown" {
            shutdown = rec.seq;
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

#[test]
fn the_order_rate_limit_runs_on_event_time() {
    // One order a second of event time, burst 1: the crossover asks more often than that
    // over the files' span, so some orders pass (time moves forward) and some are refused.
    let mut cfg = config(MAC);
    cfg.risk.orders_per_second = 1;
    cfg.risk.burst = 1;
    let s = run(Node::builder(cfg.clone()).build().unwrap());
    let limited = s
        .engine
        .stats
        .rejections
        .get("rate_limited")
        .copied()
        .unwrap_or(0);
    assert!(s.engine.stats.orders_sent > 1, "{s}");
    assert!(limited > 0, "{s}");
    // Event time, not the wall clock: the same data makes the same decisions.
    let again = run(Node::builder(cfg).build().unwrap());
    assert_eq!(
        serde_json::to_value(&again.engine.stats).unwrap(),
        serde_json::to_value(&s.engine.stats).unwrap()
    );
}

#[test]
fn the_loss_limits_trip_without_waiting_for_an_order() {
    use switchyard::kill_switch::Scope;
    // One buy of 1 BTC pays ~3.9 in taker fees: past a loss limit of 0.5 on the next
    // event, with no further order to be refused.
    let mut cfg = config("");
    cfg.risk.daily_loss_limit = "0.5".parse().unwrap();
    let one = OneShot {
        name: "one",
        size: "1",
        done: false,
    };
    let s = run(Node::builder(cfg)
        .strategies_from_config(false)
        .strategy(one)
        .build()
        .unwrap());
    assert_eq!(s.kill_switch.counters.triggers, 1, "{s}");
    assert_eq!(s.kill_switch.active[0].scope, Scope::All);
    assert_eq!(s.engine.stats.orders, 1);
    // The strategy's own limit trips its own scope only; a second strategy trades on.
    let cfg = config(MAC);
    let mut own = cfg.risk.clone();
    own.daily_loss_limit = "0.5".parse().unwrap();
    let one = OneShot {
        name: "one",
        size: "1",
        done: false,
    };
    let alone_mac = run(Node::builder(config(MAC)).build().unwrap());
    let s = run(Node::builder(cfg)
        .strategy_with_limits(one, own)
        .build()
        .unwrap());
    assert_eq!(s.kill_switch.counters.triggers, 1, "{s}");
    assert_eq!(s.kill_switch.active[0].scope, Scope::Strategy("one".into()));
    assert_eq!(strategy(&s, "mac"), strategy(&alone_mac, "mac"));
}

#[test]
fn an_instrument_no_venue_lists_is_refused_before_any_venue() {
    struct Unlisted;
    impl Strategy for Unlisted {
        fn name(&self) -> &str {
            "unlisted"
        }
        fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
            let xrp = InstrumentId::new("binance-futures", "XRPUSDT");
            if ev.instrument().symbol.as_str() == "BTCUSDT" && ctx.open_quantity(&xrp).is_zero() {
                let _ = ctx.market_order(&xrp, Side::Buy, Quantity::ONE);
            }
        }
    }
    let s = run(Node::builder(config(""))
        .strategies_from_config(false)
        .strategy(Unlisted)
        .build()
        .unwrap());
    let st = &s.engine.stats;
    assert!(st.orders > 0);
    assert_eq!(st.orders_sent, 0, "{st:?}");
    assert_eq!(st.rejections.get("unknown_instrument"), Some(&st.orders));
}

/// Buys 1 USDJPY at market on its first quote and sells it back from `on_fill`,
/// recording the event time of each fill.
struct InAndOut {
    fills: Arc<std::sync::Mutex<Vec<(Side, u64)>>>,
    done: bool,
}

impl Strategy for InAndOut {
    fn name(&self) -> &str {
        "in-and-out"
    }
    fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
        if !self.done && ev.instrument() == &usdjpy() {
            self.done = ctx
                .market_order(&usdjpy(), Side::Buy, Quantity::ONE)
                .is_ok();
        }
    }
    fn on_fill(&mut self, fill: &switchyard_trading::model::Fill, ctx: &mut StrategyContext) {
        self.fills
            .lock()
            .unwrap()
            .push((fill.side, fill.ts_event.0));
        if fill.side == Side::Buy {
            let _ = ctx.market_order(&usdjpy(), Side::Sell, Quantity::ONE);
        }
    }
}

#[test]
fn an_order_asked_for_in_on_fill_goes_out_at_once() {
    let fills = Arc::new(std::sync::Mutex::new(Vec::new()));
    let strat = InAndOut {
        fills: Arc::clone(&fills),
        done: false,
    };
    let s = run(Node::builder(config(""))
        .strategies_from_config(false)
        .strategy(strat)
        .build()
        .unwrap());
    let f = fills.lock().unwrap().clone();
    assert_eq!(f.len(), 2, "{f:?} {s}");
    // No latency at truefx: the sell asked for in on_fill fills at the buy's event time,
    // not at the next quote's.
    assert_eq!((f[0].0, f[1].0), (Side::Buy, Side::Sell));
    assert_eq!(f[0].1, f[1].1);
    assert_eq!(s.engine.stats.orders_sent, 2);
}

/// Rests one buy limit far below the market.
struct Rest {
    done: bool,
}

impl Strategy for Rest {
    fn name(&self) -> &str {
        "rest"
    }
    fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
        if !self.done && ev.instrument() == &usdjpy() {
            let price = "80".parse().unwrap();
            self.done = ctx
                .limit_order(&usdjpy(), Side::Buy, Quantity::ONE, price)
                .is_ok();
        }
    }
}

#[test]
fn a_halt_cancels_the_open_orders_it_covers() {
    let mut cfg = config("");
    cfg.risk.price_band_bps = 9_000;
    let node = Node::builder(cfg)
        .strategies_from_config(false)
        .strategy(Rest { done: false })
        .build()
        .unwrap();
    let shared = Arc::clone(node.shared());
    let s = run_with(node, async move {
        // Once the order rests at the venue, halt everything; the data then runs out.
        while shared.view().open_orders == 0 {
            tokio::task::yield_now().await;
        }
        shared
            .kill_switch
            .trigger(switchyard::kill_switch::TriggerRequest::new(
                switchyard::kill_switch::Scope::All,
                switchyard::kill_switch::Mode::Halt,
                "test halt",
                "test",
            ));
        std::future::pending().await
    });
    let st = &s.engine.stats;
    assert_eq!(st.orders_sent, 1, "{st:?}");
    assert_eq!(st.cancels, 1, "{st:?}");
    assert_eq!(s.engine.open_orders, 0);
    assert_eq!(s.kill_switch.counters.triggers, 1);
}

#[test]
fn a_flatten_closes_each_position_and_cancels_open_orders_per_strategy() {
    let mut cfg = config("");
    cfg.risk.price_band_bps = 9_000;
    let node = Node::builder(cfg)
        .strategies_from_config(false)
        .strategy(Rest { done: false })
        .strategy(Hold { done: false })
        .build()
        .unwrap();
    let shared = Arc::clone(node.shared());
    let s = run_with(node, async move {
        loop {
            let v = shared.view();
            if v.strategies[0].open_orders == 1 && !v.strategies[1].positions.is_empty() {
                // Each strategy's own book: rest's order is open, hold's is filled.
                assert_eq!(v.strategies[1].open_orders, 0);
                assert!(v.strategies[0].positions.is_empty());
                break;
            }
            tokio::task::yield_now().await;
        }
        shared
            .kill_switch
            .trigger(switchyard::kill_switch::TriggerRequest::new(
                switchyard::kill_switch::Scope::All,
                switchyard::kill_switch::Mode::Flatten,
                "test flatten",
                "test",
            ));
        std::future::pending().await
    });
    let rest = &s.engine.strategies[0];
    let hold = &s.engine.strategies[1];
    assert_eq!(rest.stats.cancels, 1, "{s}");
    // hold's long was closed by a sell, attributed to hold: flat, two fills.
    assert_eq!(hold.stats.fills, 2, "{s}");
    assert!(hold.positions.iter().all(|p| p.quantity.is_zero()), "{s}");
    assert_eq!(s.engine.open_orders, 0);
}

#[test]
fn a_venue_slower_than_the_breaker_allows_opens_it() {
    // The breaker times each order from submission to the venue's first report, in event
    // time: with 5 ms of latency every order is a slow call over 1 ms.
    let slow = |latency_ms: u64| {
        let mut cfg = config(MAC);
        cfg.venue[0].latency_ms = latency_ms;
        cfg.breaker.slow_call_duration = Some(std::time::Duration::from_millis(1));
        cfg.breaker.slow_call_rate_threshold = Some(0.5);
        cfg.breaker.minimum_calls = 4;
        let s = run(Node::builder(cfg).build().unwrap());
        s.engine
            .stats
            .rejections
            .get("circuit_open")
            .copied()
            .unwrap_or(0)
    };
    assert!(slow(5) > 0, "slow calls opened the breaker");
    assert_eq!(slow(0), 0, "no latency, no slow call");
}

/// Buys 1 USDJPY on its first quote and panics when the fill arrives.
struct Panicky {
    done: bool,
}

impl Strategy for Panicky {
    fn name(&self) -> &str {
        "panicky"
    }
    fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
        if !self.done && ev.instrument() == &usdjpy() {
            self.done = ctx
                .market_order(&usdjpy(), Side::Buy, Quantity::ONE)
                .is_ok();
        }
    }
    fn on_fill(&mut self, _: &switchyard_trading::model::Fill, ctx: &mut StrategyContext) {
        // Half-way through its own reaction: an order asked for, then a bug.
        let _ = ctx.market_order(&usdjpy(), Side::Sell, Quantity::ONE);
        panic!("bug in on_fill");
    }
}

#[test]
fn a_panic_in_a_strategy_callback_halts_it_and_loses_no_fill() {
    let journal = tempfile::tempdir().unwrap();
    let alone_mac = run(Node::builder(config(MAC)).build().unwrap());
    let node = Node::builder(config(MAC))
        .strategy(Panicky { done: false })
        .journal_dir(journal.path().join("run"))
        .build()
        .unwrap();
    let s = run(node);
    let p = s
        .engine
        .strategies
        .iter()
        .find(|x| x.name == "panicky")
        .unwrap();
    assert_eq!(p.panicked.as_deref(), Some("bug in on_fill"), "{s}");
    // The fill was applied everywhere before the callback ran, and the order asked for
    // in the panicking callback was dropped.
    assert_eq!((p.stats.fills, p.stats.orders), (1, 1), "{s}");
    assert_eq!(p.positions[0].quantity, Quantity::ONE);
    let global = s
        .engine
        .positions
        .iter()
        .find(|x| x.instrument == "USDJPY.truefx")
        .unwrap();
    assert_eq!(global.quantity, Quantity::ONE);
    // The fill is on the bus and in the journal.
    let on_bus = s
        .bus
        .topics
        .iter()
        .find(|t| t.topic == "orders.event.panicky")
        .unwrap()
        .published;
    let i = switchyard_journal::inspect(journal.path().join("run")).unwrap();
    assert_eq!(i.by_topic.get("orders.event.panicky"), Some(&on_bus));
    assert!(on_bus >= 2, "accepted and filled");
    // Its own scope is halted, with the panic as the reason; the other strategy trades on.
    let active = &s.kill_switch.active;
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0].scope,
        switchyard::kill_switch::Scope::Strategy("panicky".into())
    );
    assert!(
        active[0].reason.contains("bug in on_fill"),
        "{}",
        active[0].reason
    );
    assert_eq!(strategy(&s, "mac"), strategy(&alone_mac, "mac"));
    assert_eq!(s.exit_code, 0);
}

/// Starts slowly (real time): what a NATS connect or a large journal recovery does.
struct SlowStart;

impl switchyard::lifecycle::Component for SlowStart {
    fn name(&self) -> &str {
        "slow-start"
    }
    fn start<'a>(
        &'a self,
        _: &'a switchyard::lifecycle::ComponentContext,
    ) -> switchyard::lifecycle::BoxFuture<'a, Result<(), switchyard::lifecycle::ComponentError>>
    {
        Box::pin(async {
            tokio::time::sleep(std::time::Duration::from_millis(600)).await;
            Ok(())
        })
    }
}

#[test]
fn replay_parity_holds_after_a_slow_start() {
    // A stale-data rule on an instrument that never trades halts everything 20 s (of event
    // time) after the first event; the live run starts 600 ms late, its replay at once.
    let policy = "[policy.stale_market_data]\nmax_silence = \"20s\"\ninstruments = [\"NEVER\"]\nscope = { kind = \"all\" }\nmode = \"halt\"\n";
    let cfg = || {
        let mut c = config(policy);
        c.run.files.truncate(2); // BTCUSDT only
        c
    };
    let journal = tempfile::tempdir().unwrap();
    let dir = journal.path().join("live");
    let live = run(Node::builder(cfg())
        .strategies_from_config(false)
        .strategy(Pinger { buy: true })
        .component(SlowStart)
        .journal_dir(dir.clone())
        .build()
        .unwrap());
    assert_eq!(live.kill_switch.counters.triggers, 1, "{live}");
    let sent = live.engine.stats.orders_sent;
    assert!(sent > 10, "orders before the stale-data halt: {live}");
    let replay = run(Node::builder(cfg())
        .strategies_from_config(false)
        .strategy(Pinger { buy: true })
        .replay(switchyard_node::ReplaySpec {
            path: dir,
            pace: switchyard_journal::Pace::Max,
            filter: switchyard_journal::ReadFilter {
                topics: vec![switchyard::Pattern::new("market_data.>").unwrap()],
                ..Default::default()
            },
            compare: true,
        })
        .build()
        .unwrap());
    let parity = replay.replay.as_ref().unwrap().parity.as_ref().unwrap();
    assert!(parity.identical, "{replay}");
    assert_eq!(replay.engine.stats.orders_sent, sent);
}

/// hold's one buy of 1 USDJPY pays a fee of 100% (86 JPY): past a 100-cent loss rule on
/// the same event, deterministically.
fn costly_truefx(rules: &str) -> Config {
    let mut cfg = config(rules);
    cfg.venue[1].taker_fee_bps = 10_000;
    cfg
}

const HOLD_FLATTEN: &str = "[[policy.loss_limits]]\nwatch = { kind = \"strategy\", name = \"hold\" }\nmax_loss = 100\nmode = \"flatten\"\n";

#[test]
fn flatten_retries_closing_orders_the_rate_limit_refused() {
    // One order a second of event time: the buy takes the only token, so the closing
    // order sent at once (same event time) is refused; a later one closes the position.
    let mut cfg = costly_truefx(HOLD_FLATTEN);
    cfg.risk.orders_per_second = 1;
    cfg.risk.burst = 1;
    let s = run(Node::builder(cfg)
        .strategies_from_config(false)
        .strategy(Hold { done: false })
        .build()
        .unwrap());
    let st = &s.engine.strategies[0];
    assert_eq!(st.stats.rejections.get("rate_limited"), Some(&1), "{s}");
    assert_eq!(st.stats.fills, 2, "{s}");
    assert!(st.positions.iter().all(|p| p.quantity.is_zero()), "{s}");
    assert!(s.engine.flatten_failed.is_empty(), "{s}");
}

#[test]
fn a_position_flatten_cannot_close_is_an_alert_naming_the_instrument() {
    // The same loss also halts the venue outright: nothing can close the long.
    let halt = "[[policy.loss_limits]]\nwatch = { kind = \"strategy\", name = \"hold\" }\nmax_loss = 100\nscope = { kind = \"venue\", name = \"truefx\" }\nmode = \"halt\"\n";
    let cfg = costly_truefx(&format!("{HOLD_FLATTEN}{halt}"));
    let s = run(Node::builder(cfg)
        .strategies_from_config(false)
        .strategy(Hold { done: false })
        .build()
        .unwrap());
    assert_eq!(s.kill_switch.counters.triggers, 2, "{s}");
    let failed = &s.engine.flatten_failed;
    assert_eq!(failed.len(), 1, "{s}");
    assert_eq!(
        (failed[0].strategy.as_str(), failed[0].instrument.as_str()),
        ("hold", "USDJPY.truefx")
    );
    assert_eq!(failed[0].quantity, Quantity::ONE);
    let alerts = s
        .bus
        .topics
        .iter()
        .find(|t| t.topic == "switchyard.control.alert")
        .map(|t| t.published);
    assert_eq!(alerts, Some(1), "one alert, not one per event: {s}");
}

#[test]
fn retention_at_start_deletes_runs_older_than_max_age_and_keeps_this_one() {
    let root = tempfile::tempdir().unwrap();
    // An old run: a closed journal whose segments were last written two days ago.
    let old = root.path().join("20260101T000000Z-1");
    let (j, _) =
        switchyard_journal::Journal::open(switchyard_journal::JournalConfig::new(&old)).unwrap();
    j.append(1, switchyard::Timestamp(1), "a.b", "k", b"x")
        .unwrap();
    j.close().unwrap();
    drop(j); // releases its lock: a run whose lock is held is never deleted whole
    for (_, p) in switchyard_journal::segment::list_segments(&old).unwrap() {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400))
            .unwrap();
    }
    let mut cfg = config(MAC);
    cfg.journal.max_age = "1d".into();
    let run = root.path().join("20990101T000000Z-2");
    let node = Node::builder(cfg).journal_dir(run.clone()).build().unwrap();
    let shared = Arc::clone(node.shared());
    let s = common::run(node);
    assert!(!old.exists(), "the old run was not deleted");
    assert!(switchyard_journal::verify(&run).unwrap().ok(), "{s}");
    let st = shared.journal_root.lock().unwrap().clone().unwrap();
    assert_eq!(
        (st.deleted_runs, st.deleted_segments, st.usage.runs),
        (1, 1, 1),
        "{st:?}"
    );
    assert_eq!(st.dir, root.path());
}
