//! A seeded market simulator.
//!
//! # Contract
//!
//! - **Deterministic.** The same [`SimConfig`] (seed included) yields the same events, on
//!   any machine: the generator is a SplitMix64 written here, and all arithmetic is
//!   integer.
//! - **Shape.** Each step picks one instrument (uniformly), moves its mid by a random
//!   walk of `-max_step_ticks..=max_step_ticks` ticks (never below `spread_ticks` ticks),
//!   emits a [`Quote`] around the mid (`spread_ticks` wide, bid and ask on the tick grid),
//!   and with probability `trade_per_mille / 1000` a [`Trade`] at the bid or the ask.
//!   Sizes are 1..=`max_size_lots` lots.
//! - **Time.** The first step is at `start`; each step advances by `interval`. A trade
//!   shares its quote's timestamp and follows it. Timestamps never go backwards.
//! - The simulator is an endless [`Iterator`]; take what you need.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard::Timestamp;

use crate::model::{InstrumentId, MarketEvent, Quote, Side, Trade};
use crate::num::{Price, Quantity};

/// SplitMix64: a tiny, fast, well-distributed 64-bit generator (Steele, Lea, Flood 2014).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias worth mentioning for small `n`
    /// (Lemire's multiply-shift).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// One simulated instrument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimInstrument {
    /// Its id.
    pub id: InstrumentId,
    /// Starting mid price (rounded down to the tick grid).
    pub start_mid: Price,
    /// Tick size (positive).
    pub tick: Price,
    /// Bid-ask spread in ticks (≥ 1).
    pub spread_ticks: u32,
    /// Largest mid move per step, in ticks.
    pub max_step_ticks: u32,
    /// Lot size (positive).
    pub lot: Quantity,
    /// Largest quote/trade size, in lots (≥ 1).
    pub max_size_lots: u32,
}

/// Simulator settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of the generator.
    pub seed: u64,
    /// The instruments (at least one).
    pub instruments: Vec<SimInstrument>,
    /// Time of the first step.
    pub start: Timestamp,
    /// Time between steps.
    pub interval: Duration,
    /// Chance of a trade after each quote, per mille (0..=1000).
    pub trade_per_mille: u32,
}

/// Invalid [`SimConfig`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("simulator config: {field}: {reason}")]
pub struct SimConfigError {
    /// The bad field.
    pub field: &'static str,
    /// Why.
    pub reason: &'static str,
}

#[derive(Clone, Debug)]
struct State {
    spec: SimInstrument,
    /// Mid in ticks.
    mid_ticks: i64,
}

/// The simulator: an endless iterator of [`MarketEvent`]s.
#[derive(Clone, Debug)]
pub struct MarketSimulator {
    rng: SplitMix64,
    states: Vec<State>,
    now: Timestamp,
    interval: Duration,
    trade_per_mille: u32,
    pending_trade: Option<MarketEvent>,
    trade_seq: u64,
}

impl MarketSimulator {
    /// A simulator for a validated config.
    pub fn new(config: SimConfig) -> Result<Self, SimConfigError> {
        let bad = |field, reason| Err(SimConfigError { field, reason });
        if config.instruments.is_empty() {
            return bad("instruments", "at least one is needed");
        }
        if config.trade_per_mille > 1000 {
            return bad("trade_per_mille", "must be at most 1000");
        }
        let mut states = Vec::with_capacity(config.instruments.len());
        for spec in config.instruments {
            if !spec.tick.is_positive() {
                return bad("tick", "must be positive");
            }
            if !spec.lot.is_positive() {
                return bad("lot", "must be positive");
            }
            if spec.spread_ticks == 0 {
                return bad("spread_ticks", "must be at least 1");
            }
            if spec.max_size_lots == 0 {
                return bad("max_size_lots", "must be at least 1");
            }
            if spec.lot.checked_mul_int(spec.max_size_lots as i64).is_err() {
                return bad("max_size_lots", "lot × max_size_lots overflows");
            }
            let mid_ticks = (spec.start_mid.raw() / spec.tick.raw()).max(spec.spread_ticks as i64);
            // The highest ask must stay representable: keep a wide margin.
            if Price::from_raw(spec.tick.raw())
                .checked_mul_int(mid_ticks.saturating_mul(4))
                .is_err()
            {
                return bad("start_mid", "too large");
            }
            states.push(State { spec, mid_ticks });
        }
        Ok(MarketSimulator {
            rng: SplitMix64::new(config.seed),
            states,
            now: config.start,
            interval: config.interval,
            trade_per_mille: config.trade_per_mille,
            pending_trade: None,
            trade_seq: 0,
        })
    }

    fn step(&mut self) -> MarketEvent {
        let i = self.rng.below(self.states.len() as u64) as usize;
        let ts = self.now;
        self.now = self.now.saturating_add(self.interval);
        let max_step = self.states[i].spec.max_step_ticks as u64;
        let delta = self.rng.below(2 * max_step + 1) as i64 - max_step as i64;
        let bid_lots = 1 + self.rng.below(self.states[i].spec.max_size_lots as u64) as i64;
        let ask_lots = 1 + self.rng.below(self.states[i].spec.max_size_lots as u64) as i64;
        let trade_roll = self.rng.below(1000);
        let trade_side_buy = self.rng.below(2) == 0;
        let trade_lots = 1 + self.rng.below(self.states[i].spec.max_size_lots as u64) as i64;

        let st = &mut self.states[i];
        let spec = &st.spec;
        let spread = spec.spread_ticks as i64;
        // Reflect at the floor, and stay well inside the representable range.
        let ceiling = i64::MAX / spec.tick.raw() / 4;
        st.mid_ticks = (st.mid_ticks + delta).clamp(spread, ceiling.max(spread));
        let bid_ticks = st.mid_ticks - spread / 2;
        let ask_ticks = bid_ticks + spread;
        let tick = spec.tick.raw();
        let lot = spec.lot.raw();
        // In range by the clamp and the checks in `new`.
        let bid = Price::from_raw(bid_ticks * tick);
        let ask = Price::from_raw(ask_ticks * tick);
        let quote = Quote {
            instrument: spec.id.clone(),
            ts_event: ts,
            ts_recv: ts,
            bid_price: bid,
            bid_size: Some(Quantity::from_raw(bid_lots * lot)),
            ask_price: ask,
            ask_size: Some(Quantity::from_raw(ask_lots * lot)),
        };
        if trade_roll < self.trade_per_mille as u64 {
            self.trade_seq += 1;
            let (side, price) = if trade_side_buy {
                (Side::Buy, ask)
            } else {
                (Side::Sell, bid)
            };
            self.pending_trade = Some(MarketEvent::Trade(Trade {
                instrument: spec.id.clone(),
                ts_event: ts,
                ts_recv: ts,
                price,
                size: Quantity::from_raw(trade_lots * lot),
                aggressor: Some(side),
                trade_id: self.trade_seq.to_string(),
            }));
        }
        MarketEvent::Quote(quote)
    }
}

impl Iterator for MarketSimulator {
    type Item = MarketEvent;

    fn next(&mut self) -> Option<MarketEvent> {
        if let Some(t) = self.pending_trade.take() {
            return Some(t);
        }
        Some(self.step())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> SimConfig {
        let inst = |sym: &str, mid: &str, tick: &str| SimInstrument {
            id: InstrumentId::new("sim", sym),
            start_mid: mid.parse().unwrap(),
            tick: tick.parse().unwrap(),
            spread_ticks: 2,
            max_step_ticks: 3,
            lot: "0.001".parse().unwrap(),
            max_size_lots: 500,
        };
        SimConfig {
            seed,
            instruments: vec![
                inst("BTCUSDT", "9682", "0.01"),
                inst("ETHUSDT", "260.5", "0.01"),
                inst("USDJPY", "86.7", "0.001"),
            ],
            start: Timestamp::from_micros(1_582_329_600_000_000),
            interval: Duration::from_millis(10),
            trade_per_mille: 300,
        }
    }

    #[test]
    fn same_seed_same_events_different_seed_different_events() {
        let a: Vec<_> = MarketSimulator::new(config(42))
            .unwrap()
            .take(5_000)
            .collect();
        let b: Vec<_> = MarketSimulator::new(config(42))
            .unwrap()
            .take(5_000)
            .collect();
        let c: Vec<_> = MarketSimulator::new(config(43))
            .unwrap()
            .take(5_000)
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn events_are_well_formed() {
        let events: Vec<_> = MarketSimulator::new(config(7))
            .unwrap()
            .take(20_000)
            .collect();
        let mut prev = Timestamp::ZERO;
        let (mut quotes, mut trades) = (0, 0);
        let mut symbols = std::collections::HashSet::new();
        let mut last_quote: Option<Quote> = None;
        for ev in &events {
            assert!(ev.ts_event() >= prev);
            prev = ev.ts_event();
            symbols.insert(ev.instrument().symbol.clone());
            match ev {
                MarketEvent::Quote(q) => {
                    quotes += 1;
                    assert!(q.bid_price.is_positive() && q.bid_price < q.ask_price);
                    assert!(q.bid_price.is_multiple_of("0.001".parse().unwrap()));
                    last_quote = Some(q.clone());
                }
                MarketEvent::Trade(t) => {
                    trades += 1;
                    let q = last_quote.as_ref().unwrap();
                    assert_eq!((&t.instrument, t.ts_event), (&q.instrument, q.ts_event));
                    assert!(t.price == q.bid_price || t.price == q.ask_price);
                    assert!(t.size.is_positive());
                }
            }
        }
        assert_eq!(symbols.len(), 3);
        // 30% trades per quote, with slack
        assert!(
            trades * 10 > quotes * 2 && trades * 10 < quotes * 4,
            "{trades} / {quotes}"
        );
        // timestamps advance by the interval per quote
        let span = prev.as_nanos() - events[0].ts_event().as_nanos();
        assert_eq!(span, (quotes as u64 - 1) * 10_000_000);
    }

    #[test]
    fn config_is_validated() {
        let mut c = config(1);
        c.instruments[1].tick = Price::ZERO;
        assert_eq!(MarketSimulator::new(c).unwrap_err().field, "tick");
        let mut c = config(1);
        c.instruments.clear();
        assert_eq!(
            MarketSimulator::new(c).unwrap_err().to_string(),
            "simulator config: instruments: at least one is needed"
        );
    }

    #[test]
    fn splitmix_reference_values() {
        // First outputs for seed 0 (reference implementation by Vigna).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut r = SplitMix64::new(1);
        assert!((0..10_000).all(|_| r.below(7) < 7));
    }
}
