//! The kill policy's rules in a node: each rule the configuration accepts is fed, rules
//! re-arm after a reset, time-based rules run on time, and a rule nothing could feed is
//! refused at start-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use switchyard::Timestamp;
use switchyard::lifecycle::ShutdownTrigger;
use switchyard_node::Node;
use switchyard_trading::exchange::ExecEvent;
use switchyard_trading::model::{
    ClientOrderId, Fill, InstrumentId, Liquidity, MarketEvent, Side, StrategyId,
};
use switchyard_trading::num::{Money, Quantity};
use switchyard_trading::risk::RiskApproved;
use switchyard_trading::strategy::{Strategy, StrategyContext};
use switchyard_trading::venue::ExecutionVenue;

mod common;
use common::*;

#[test]
fn the_policy_rearms_after_an_operator_reset() {
    struct Unlisted;
    impl Strategy for Unlisted {
        fn name(&self) -> &str {
            "unlisted"
        }
        fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
            let xrp = InstrumentId::new("binance-futures", "XRPUSDT");
            if ev.instrument().symbol.as_str() == "BTCUSDT" {
                let _ = ctx.market_order(&xrp, Side::Buy, Quantity::ONE);
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret-for-the-test").unwrap();
    // Six refusals within ten seconds of event time halt everything.
    let rule = "[policy.rejection_rate]\nmax_events = 5\nwindow = \"10s\"\nscope = { kind = \"all\" }\nmode = \"halt\"\n";
    let mut cfg = config(rule);
    cfg.kill_switch.secret_file = secret.display().to_string();
    let node = Node::builder(cfg)
        .strategies_from_config(false)
        .strategy(Unlisted)
        .build()
        .unwrap();
    let shared = Arc::clone(node.shared());
    let s = run_with(node, async move {
        while shared.kill_switch.counters().triggers == 0 {
            tokio::task::yield_now().await;
        }
        shared
            .kill_switch
            .reset(
                None,
                "s3cret-for-the-test",
                "test",
                std::time::Instant::now(),
            )
            .expect("reset with the right secret");
        std::future::pending().await
    });
    let c = &s.kill_switch.counters;
    assert_eq!(c.resets, 1, "{s}");
    // The rule fired again after the reset: it protects again.
    assert_eq!(c.triggers, 2, "{s}");
    assert!(
        s.kill_switch
            .active
            .iter()
            .any(|a| a.reason.contains("rejection")),
        "{:?}",
        s.kill_switch.active
    );
}

#[test]
fn policy_loss_limit_rules_are_fed_the_pnl() {
    // One buy of 1 BTC pays ~3.9 in fees: −390 cents, past a 100-cent rule on strategy one.
    let rule = "[[policy.loss_limits]]\nwatch = { kind = \"strategy\", name = \"one\" }\nmax_loss = 100\nmode = \"halt\"\n";
    let one = OneShot {
        name: "one",
        size: "1",
        done: false,
    };
    let s = run(Node::builder(config(rule))
        .strategies_from_config(false)
        .strategy(one)
        .build()
        .unwrap());
    assert_eq!(s.kill_switch.counters.triggers, 1, "{s}");
    let a = &s.kill_switch.active[0];
    assert_eq!(
        a.scope,
        switchyard::kill_switch::Scope::Strategy("one".into())
    );
    assert!(a.reason.starts_with("loss limit breached"), "{}", a.reason);
}

#[test]
fn policy_breaker_open_rules_see_the_venue_breakers() {
    // The odd lots open the venue's breaker, and it stays open (probes fail): past one
    // second of event time the rule halts everything.
    let rule = "[policy.breaker_open]\nmax_open = \"1s\"\nbreakers = [\"binance-futures\"]\nscope = { kind = \"all\" }\nmode = \"halt\"\n";
    let s = run(Node::builder(config(rule))
        .strategies_from_config(false)
        .strategy(OddLots)
        .build()
        .unwrap());
    assert_eq!(s.kill_switch.counters.triggers, 1, "{s}");
    assert_eq!(
        s.kill_switch.active[0].scope,
        switchyard::kill_switch::Scope::All
    );
    assert!(
        s.kill_switch.active[0].source.contains("breaker"),
        "{:?}",
        s.kill_switch.active
    );
}

/// A component whose one task fails at once and is not restarted; it starts once the
/// engine runs (the engine hears of failures from then on).
struct Fragile;

impl switchyard::lifecycle::Component for Fragile {
    fn name(&self) -> &str {
        "fragile"
    }
    fn dependencies(&self) -> Vec<String> {
        vec!["trading-engine".into()]
    }
    fn restart_policy(&self) -> switchyard::lifecycle::RestartPolicy {
        switchyard::lifecycle::RestartPolicy::never(switchyard::lifecycle::Escalation::MarkFailed)
    }
    fn start<'a>(
        &'a self,
        ctx: &'a switchyard::lifecycle::ComponentContext,
    ) -> switchyard::lifecycle::BoxFuture<'a, Result<(), switchyard::lifecycle::ComponentError>>
    {
        Box::pin(async move {
            ctx.spawn("work", || async {
                Err(switchyard::lifecycle::ComponentError::msg("lost the link"))
            });
            Ok(())
        })
    }
}

#[test]
fn policy_escalation_rules_see_failed_components() {
    let rule = "[policy.escalation]\ncomponents = [\"fragile\"]\nscope = { kind = \"all\" }\nmode = \"halt\"\n";
    let s = run(Node::builder(config(rule))
        .component(Fragile)
        .build()
        .unwrap());
    assert_eq!(s.kill_switch.counters.triggers, 1, "{s}");
    assert!(
        s.kill_switch.active[0].reason.contains("fragile"),
        "{:?}",
        s.kill_switch.active
    );
    assert_eq!(s.exit_code, 70, "a failed component fails the run");
}

#[test]
fn a_policy_rule_the_node_cannot_feed_is_refused_at_start_up() {
    // The feed role runs no trading engine: nothing would feed any rule.
    let rule = "[policy.rejection_rate]\nmax_events = 5\nwindow = \"10s\"\nscope = { kind = \"all\" }\nmode = \"halt\"\n";
    let mut cfg = config(rule);
    cfg.run.role = "feed".into();
    cfg.nats.url = "nats://127.0.0.1:1".into(); // not contacted: refused before
    let err = Node::builder(cfg)
        .build()
        .err()
        .expect("refused")
        .to_string();
    assert!(err.starts_with("policy.rejection_rate: "), "{err}");
    // The same rule where an engine runs is accepted.
    assert!(Node::builder(config(rule)).build().is_ok());
}

const ERROR_RATE: &str = "[policy.error_rate]\nmax_events = 3\nwindow = \"10s\"\nscope = { kind = \"all\" }\nmode = \"halt\"\n";

/// A venue that lists USDJPY, takes no order, and on every quote reports a fill of an
/// order nobody sent (a confused adapter, a replayed message, another account's fill).
struct Confused {
    n: u64,
}

impl ExecutionVenue for Confused {
    fn lists(&self, instrument: &InstrumentId) -> bool {
        instrument == &usdjpy()
    }
    fn submit(&mut self, _: RiskApproved, _: Timestamp, _: &mut Vec<ExecEvent>) {}
    fn cancel(&mut self, _: &ClientOrderId, _: Timestamp, _: &mut Vec<ExecEvent>) {}
    fn on_market_data(&mut self, ev: &MarketEvent, out: &mut Vec<ExecEvent>) {
        self.n += 1;
        out.push(ExecEvent::Filled(Fill {
            client_order_id: ClientOrderId::new(format!("ghost-{}", self.n)),
            venue_order_id: self.n,
            strategy: StrategyId::new("nobody"),
            instrument: usdjpy(),
            side: Side::Buy,
            price: "150.000".parse().unwrap(),
            quantity: Quantity::ONE,
            fee: Money::ZERO,
            liquidity: Liquidity::Taker,
            last: true,
            ts_event: ev.ts_event(),
        }));
    }
}

fn confused(rule: &str) -> switchyard_node::RunSummary {
    run(Node::builder(config(rule))
        .strategies_from_config(false)
        .strategy(Hold { done: false })
        .venue("truefx", Box::new(Confused { n: 0 }))
        .build()
        .unwrap())
}

#[test]
fn policy_error_rate_rules_count_venue_reports_about_unknown_orders() {
    let s = confused(ERROR_RATE);
    let errors = s.engine.stats.errors.get("unknown_order_report").copied();
    assert!(errors.unwrap_or(0) >= 3, "{:?}", s.engine.stats.errors);
    assert_eq!(s.kill_switch.counters.triggers, 1, "{s}");
    let active = &s.kill_switch.active[0];
    assert!(active.source.contains("error-rate"), "{active:?}");
    assert_eq!(active.scope, switchyard::kill_switch::Scope::All);
    // The books did not take the ghost fills: nothing of them is a position.
    assert!(s.engine.positions.is_empty(), "{:?}", s.engine.positions);
    // Without the rule the errors are still counted, and nothing trips.
    let quiet = confused("");
    assert_eq!(quiet.kill_switch.counters.triggers, 0, "{quiet}");
    // One ghost per USDJPY quote, halted or not.
    assert_eq!(
        quiet.engine.stats.errors.get("unknown_order_report"),
        errors.as_ref()
    );
    assert!(quiet.engine.stats.error_count() > 3);
}

/// A component whose task fails each time it runs and is restarted after 1 ms.
struct Flaky {
    failures: Arc<AtomicU64>,
}

impl switchyard::lifecycle::Component for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    fn dependencies(&self) -> Vec<String> {
        vec!["trading-engine".into()]
    }
    fn restart_policy(&self) -> switchyard::lifecycle::RestartPolicy {
        let ms = std::time::Duration::from_millis(1);
        switchyard::lifecycle::RestartPolicy::on_failure(
            ms,
            ms,
            100,
            std::time::Duration::from_secs(60),
            switchyard::lifecycle::Escalation::MarkFailed,
        )
    }
    fn start<'a>(
        &'a self,
        ctx: &'a switchyard::lifecycle::ComponentContext,
    ) -> switchyard::lifecycle::BoxFuture<'a, Result<(), switchyard::lifecycle::ComponentError>>
    {
        let failures = Arc::clone(&self.failures);
        Box::pin(async move {
            ctx.spawn("link", move || {
                let failures = Arc::clone(&failures);
                async move {
                    failures.fetch_add(1, Ordering::Relaxed);
                    Err(switchyard::lifecycle::ComponentError::msg("link dropped"))
                }
            });
            Ok(())
        })
    }
}

#[test]
fn policy_error_rate_rules_count_component_failures() {
    let mut cfg = config(ERROR_RATE);
    cfg.risk.daily_loss_limit = "1000000".parse().unwrap();
    let failures = Arc::new(AtomicU64::new(0));
    let node = Node::builder(cfg)
        .without_feed()
        .component(Flaky {
            failures: Arc::clone(&failures),
        })
        .build()
        .unwrap();
    let shared = Arc::clone(node.shared());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let s = rt.block_on(async move {
        let watch = async move {
            while shared.kill_switch.counters().triggers == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            ShutdownTrigger::Requested {
                reason: "tripped".into(),
                source: "test".into(),
            }
        };
        let watch = async {
            tokio::time::timeout(std::time::Duration::from_secs(60), watch)
                .await
                .expect("the error-rate rule tripped")
        };
        node.run(watch).await.unwrap()
    });
    assert_eq!(s.kill_switch.counters.triggers, 1, "{s}");
    assert!(
        s.kill_switch.active[0].source.contains("error-rate"),
        "{:?}",
        s.kill_switch.active
    );
    let counted = s.engine.stats.errors["component_failure"];
    assert!(counted >= 3, "{:?}", s.engine.stats.errors);
    assert!(failures.load(Ordering::Relaxed) >= counted);
}

/// A feed of its own: 50 BTCUSDT quotes, then silence until it is stopped.
struct BurstThenSilence;

impl switchyard::lifecycle::Component for BurstThenSilence {
    fn name(&self) -> &str {
        "burst"
    }
    fn kind(&self) -> switchyard::lifecycle::ComponentKind {
        switchyard::lifecycle::ComponentKind::Producer
    }
    fn start<'a>(
        &'a self,
        ctx: &'a switchyard::lifecycle::ComponentContext,
    ) -> switchyard::lifecycle::BoxFuture<'a, Result<(), switchyard::lifecycle::ComponentError>>
    {
        Box::pin(async move {
            let bus = ctx.bus().clone();
            let cancel = ctx.cancellation().clone();
            ctx.spawn_cooperative("quotes", async move {
                let topic = switchyard::Topic::new("market_data.quote.BTCUSDT").unwrap();
                for n in 0..50u64 {
                    let ts = switchyard::Timestamp(1_000_000_000 + n * 1_000_000);
                    let q = switchyard_trading::model::Quote {
                        instrument: InstrumentId::new("binance-futures", "BTCUSDT"),
                        ts_event: ts,
                        ts_recv: ts,
                        bid_price: "9681.9".parse().unwrap(),
                        bid_size: None,
                        ask_price: "9682".parse().unwrap(),
                        ask_size: None,
                    };
                    bus.publish(topic, MarketEvent::Quote(q)).await.unwrap();
                }
                cancel.cancelled().await;
            });
            Ok(())
        })
    }
}

#[test]
fn a_full_outage_trips_the_stale_data_rule_on_schedule() {
    // Every feed silent after 50 quotes: no event comes to judge the silence, the
    // engine's timer does (paused time: the two seconds pass at once, exactly).
    let rule = "[policy.stale_market_data]\nmax_silence = \"2s\"\ninstruments = [\"BTCUSDT\"]\nscope = { kind = \"all\" }\nmode = \"halt\"\n";
    let mut cfg = config(rule);
    cfg.run.feed = "sim".into(); // unused: the configured feed is replaced below
    let node = Node::builder(cfg)
        .strategies_from_config(false)
        .without_feed()
        .component(BurstThenSilence)
        .strategy(Pinger { buy: true })
        .build()
        .unwrap();
    let shared = Arc::clone(node.shared());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let (s, silent_for) = rt.block_on(async move {
        let probe = Arc::clone(&shared);
        let watch = async move {
            while probe.view().stats.market_events < 50 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            let quiet_since = tokio::time::Instant::now();
            while probe.kill_switch.counters().triggers == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            (
                quiet_since.elapsed(),
                ShutdownTrigger::Requested {
                    reason: "seen".into(),
                    source: "test".into(),
                },
            )
        };
        let mut silent = std::time::Duration::ZERO;
        let watch = async {
            let (d, t) = tokio::time::timeout(std::time::Duration::from_secs(60), watch)
                .await
                .expect("the stale-data rule tripped within a minute of silence");
            silent = d;
            t
        };
        let s = node.run(watch).await.unwrap();
        (s, silent)
    });
    assert_eq!(s.kill_switch.counters.triggers, 1, "{s}");
    assert!(
        s.kill_switch.active[0].source.contains("stale"),
        "{:?}",
        s.kill_switch.active
    );
    assert!(
        silent_for >= std::time::Duration::from_secs(2),
        "{silent_for:?}"
    );
    assert!(
        silent_for < std::time::Duration::from_millis(2300),
        "{silent_for:?}"
    );
}
