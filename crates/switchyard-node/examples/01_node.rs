//! The README's "library in 30 lines": a node from the embedded defaults plus a strategy
//! written in code. `cargo run -p switchyard-node --example 01_node`

use switchyard::lifecycle::signals;
use switchyard_node::{Config, Node};
use switchyard_trading::model::{InstrumentId, MarketEvent, Side};
use switchyard_trading::num::Quantity;
use switchyard_trading::strategy::{Strategy, StrategyContext};

/// Buys 0.001 BTC on the first quote, once.
struct OneShot {
    done: bool,
}

impl Strategy for OneShot {
    fn name(&self) -> &str {
        "one-shot"
    }
    fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
        let btc = InstrumentId::new("binance-futures", "BTCUSDT");
        if self.done || ev.instrument() != &btc || !ctx.can_trade(&btc) {
            return;
        }
        self.done = ctx
            .market_order(&btc, Side::Buy, "0.001".parse::<Quantity>().unwrap())
            .is_ok();
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = Config::load(None)?; // embedded defaults: simulator, ma_crossover, paper venue
    cfg.sim.limit = 20_000; // stop after 20,000 simulated events
    let node = Node::builder(cfg)
        .strategy(OneShot { done: false }) // beside the configured [[strategy]] entries
        .build()?;
    let summary = node.run(signals::wait_for_signal()).await?;
    println!("{summary}"); // per strategy, per component, the bus drain
    std::process::exit(summary.exit_code);
}
