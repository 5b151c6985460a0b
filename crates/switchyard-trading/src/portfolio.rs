//! Positions and P&L per instrument.
//!
//! # Contract
//!
//! - Only fills change positions ([`Portfolio::apply_fill`]); market data only moves
//!   marks ([`Portfolio::on_market_data`]: a trade marks at its price, a quote at its
//!   mid). A rejected or cancelled order therefore never changes a position.
//! - Arithmetic is exact fixed point (see [`Position`] for the cost-basis rules): the
//!   realised P&L of buying `q` at `p1` and selling `q` at `p2` is exactly
//!   `q × (p2 − p1)`, and a sequence of fills that ends flat realises exactly
//!   `Σ sell notionals − Σ buy notionals`.
//! - Overflow is reported, never wrapped; a fill that would overflow leaves the position
//!   unchanged.
//! - `total = realised + unrealised − fees`.

use rustc_hash::FxHashMap;

use crate::model::{Fill, InstrumentId, MarketEvent, Position};
use crate::num::{ArithmeticError, Money, Price, Quantity};

/// Positions in every instrument traded.
#[derive(Clone, Debug, Default)]
pub struct Portfolio {
    /// Per instrument seen: its last mark and its position, if ever traded (one map, so
    /// a mark — on every market event — is one lookup).
    book: FxHashMap<InstrumentId, Entry>,
}

#[derive(Clone, Debug, Default)]
struct Entry {
    mark: Option<Price>,
    position: Option<Position>,
}

impl Portfolio {
    /// An empty portfolio.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a fill; returns the P&L it realised.
    pub fn apply_fill(&mut self, fill: &Fill) -> Result<Money, ArithmeticError> {
        let entry = match self.book.get_mut(&fill.instrument) {
            Some(e) => e,
            None => self.book.entry(fill.instrument.clone()).or_default(),
        };
        let mark = entry.mark;
        let pos = entry.position.get_or_insert_with(|| {
            let mut p = Position::flat(fill.instrument.clone());
            p.mark = mark;
            p
        });
        let realised = pos.apply_fill(fill)?;
        if pos.mark.is_none() {
            pos.mark = Some(fill.price);
        }
        Ok(realised)
    }

    /// Marks `instrument` at `price`.
    pub fn mark(&mut self, instrument: &InstrumentId, price: Price) {
        let entry = match self.book.get_mut(instrument) {
            Some(e) => e,
            None => self.book.entry(instrument.clone()).or_default(),
        };
        entry.mark = Some(price);
        if let Some(pos) = &mut entry.position {
            pos.mark = Some(price);
        }
    }

    /// Marks the event's instrument at its trade price or quote mid.
    pub fn on_market_data(&mut self, event: &MarketEvent) {
        self.mark(event.instrument(), event.mark_price());
    }

    /// The position in `instrument`, if it was ever traded.
    pub fn position(&self, instrument: &InstrumentId) -> Option<&Position> {
        self.book.get(instrument)?.position.as_ref()
    }

    /// The signed quantity held in `instrument` (zero if never traded).
    pub fn quantity(&self, instrument: &InstrumentId) -> Quantity {
        self.position(instrument)
            .map_or(Quantity::ZERO, |p| p.quantity)
    }

    /// The last mark of `instrument`.
    pub fn last_mark(&self, instrument: &InstrumentId) -> Option<Price> {
        self.book.get(instrument)?.mark
    }

    /// Every position ever opened (including flat ones), in no particular order.
    pub fn positions(&self) -> impl Iterator<Item = &Position> {
        self.book.values().filter_map(|e| e.position.as_ref())
    }

    fn sum(
        &self,
        f: impl Fn(&Position) -> Result<Money, ArithmeticError>,
    ) -> Result<Money, ArithmeticError> {
        self.positions()
            .try_fold(Money::ZERO, |acc, p| acc.checked_add(f(p)?))
    }

    /// Realised P&L of all instruments, before fees.
    pub fn realised_pnl(&self) -> Result<Money, ArithmeticError> {
        self.sum(|p| Ok(p.realised_pnl))
    }

    /// Unrealised P&L of all instruments at their marks.
    pub fn unrealised_pnl(&self) -> Result<Money, ArithmeticError> {
        self.sum(Position::unrealised_pnl)
    }

    /// Fees paid.
    pub fn fees(&self) -> Result<Money, ArithmeticError> {
        self.sum(|p| Ok(p.fees))
    }

    /// Realised + unrealised − fees.
    pub fn total_pnl(&self) -> Result<Money, ArithmeticError> {
        self.sum(Position::total_pnl)
    }
}
