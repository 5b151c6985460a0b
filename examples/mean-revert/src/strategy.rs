//! Mean reversion on quotes: buy at the bid when the mid is `z` standard deviations below
//! its rolling mean, sell at the ask when it is `z` above; one order at a time.

use std::collections::VecDeque;

use switchyard_node::{StrategyConfig, StrategyConfigError};
use switchyard_trading::model::{InstrumentId, MarketEvent, Side};
use switchyard_trading::num::Quantity;
use switchyard_trading::strategy::{Strategy, StrategyContext};

pub struct MeanRevert {
    name: String,
    instrument: InstrumentId,
    mids: VecDeque<f64>,
    window: usize,
    z: f64,
    size: Quantity,
}

impl MeanRevert {
    /// From a `[[strategy]]` entry: `window` (quotes, default 100), `z` (default 2),
    /// `size` (required).
    pub fn from_config(cfg: &StrategyConfig) -> Result<Self, StrategyConfigError> {
        let window: usize = cfg.get_or("window", 100)?;
        if window < 2 {
            return Err(cfg.error(Some("window"), "must be at least 2"));
        }
        let (z, size) = (cfg.get_or("z", 2.0)?, cfg.get("size")?);
        let (name, instrument) = (cfg.name().to_owned(), cfg.instrument());
        Ok(MeanRevert {
            name,
            instrument,
            mids: VecDeque::new(),
            window,
            z,
            size,
        })
    }
}

impl Strategy for MeanRevert {
    fn name(&self) -> &str {
        &self.name
    }

    fn on_market_data(&mut self, ev: &MarketEvent, ctx: &mut StrategyContext) {
        let MarketEvent::Quote(q) = ev else { return };
        if q.instrument != self.instrument {
            return;
        }
        let mid = q.mid().to_f64();
        self.mids.push_back(mid);
        if self.mids.len() > self.window {
            self.mids.pop_front();
        }
        let busy = !ctx.open_quantity(&self.instrument).is_zero();
        if self.mids.len() < self.window || busy || !ctx.can_trade(&self.instrument) {
            return;
        }
        let n = self.window as f64;
        let mean = self.mids.iter().sum::<f64>() / n;
        let sd = (self.mids.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / n).sqrt();
        let pos = ctx.position(&self.instrument);
        let (side, price) = match (mid - mean) / sd {
            z if z < -self.z && pos <= Quantity::ZERO => (Side::Buy, q.bid_price),
            z if z > self.z && pos >= Quantity::ZERO => (Side::Sell, q.ask_price),
            _ => return,
        };
        let _ = ctx.limit_order(&self.instrument, side, self.size, price);
    }
}
