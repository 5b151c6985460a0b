//! Shared by the node's test files: a configuration on the committed market data, a
//! runner, and strategies more than one file uses.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use switchyard::lifecycle::ShutdownTrigger;
use switchyard_node::{Config, Node, RunSummary};
use switchyard_trading::model::{InstrumentId, MarketEvent, Side};
use switchyard_trading::num::Quantity;
use switchyard_trading::strategy::{Strategy, StrategyContext};

pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata")).join(name)
}

pub fn usdjpy() -> InstrumentId {
    InstrumentId::new("truefx", "USDJPY")
}

/// A configuration on the BTCUSDT files and the USDJPY ticks, with two venues, limits
/// that do not bind, no journal, no API; `extra` TOML is merged over it.
pub fn config(extra: &str) -> Config {
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
symbols = ["BTCUSDT", "ETHUSDT"]
[[venue]]
name = "truefx"
kind = "paper"
latency_ms = 0
taker_fee_bps = 1
maker_fee_bps = 0
tick = "0.001"
lot = "1"
symbols = ["USDJPY"]
{extra}
"#
    );
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e:#}"))
}

pub const MAC: &str = r#"
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
pub struct Momentum {
    name: String,
    last: Option<i64>,
    run: i32,
    size: Quantity,
}

impl Momentum {
    pub fn new(name: &str) -> Self {
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

/// Runs `node` until its data ends or `shutdown` resolves (a test's own trigger).
pub fn run_with(
    node: Node,
    shutdown: impl std::future::Future<Output = ShutdownTrigger>,
) -> RunSummary {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(node.run(shutdown)).unwrap()
}

pub fn run(node: Node) -> RunSummary {
    run_with(node, std::future::pending())
}

pub fn strategy(s: &RunSummary, name: &str) -> Value {
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

/// Asks for a BTCUSDT market order of an odd size (not a multiple of the venue's lot)
/// on every quote while nothing of its own is open: the venue refuses each on arrival.
pub struct OddLots;

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

/// Buys 1 USDJPY at market on its first quote and holds it.
pub struct Hold {
    pub done: bool,
}

impl Strategy for Hold {
    fn name(&self) -> &str {
        "hold"
    }
    fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
        if !self.done && ev.instrument() == &usdjpy() {
            self.done = ctx
                .market_order(&usdjpy(), Side::Buy, Quantity::ONE)
                .is_ok();
        }
    }
}

/// Trades on every BTCUSDT quote, alternating sides: its order count depends on exactly
/// when a trigger stops it.
pub struct Pinger {
    pub buy: bool,
}

impl Strategy for Pinger {
    fn name(&self) -> &str {
        "pinger"
    }
    fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
        let btc = InstrumentId::new("binance-futures", "BTCUSDT");
        if !matches!(ev, MarketEvent::Quote(_)) || ev.instrument() != &btc || !ctx.can_trade(&btc) {
            return;
        }
        if ctx.open_quantity(&btc).is_zero() {
            let side = if self.buy { Side::Buy } else { Side::Sell };
            self.buy = !self.buy;
            let _ = ctx.market_order(&btc, side, "0.001".parse().unwrap());
        }
    }
}

/// Buys `size` BTC at market once, on the first BTC event.
pub struct OneShot {
    pub name: &'static str,
    pub size: &'static str,
    pub done: bool,
}

impl Strategy for OneShot {
    fn name(&self) -> &str {
        self.name
    }
    fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
        let btc = InstrumentId::new("binance-futures", "BTCUSDT");
        if self.done || ev.instrument() != &btc {
            return;
        }
        self.done = ctx
            .market_order(&btc, Side::Buy, self.size.parse().unwrap())
            .is_ok();
    }
}
