//! Replay parity: the decisions a replay makes compared with those its journal recorded.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use switchyard_journal::{JournalReader, ReadFilter};

use crate::catalog::DECISIONS;

/// Orders, rejections and executions as their journal bytes, per kind, in order.
pub type Decisions = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

/// What a journal recorded: its decisions, and whether its run shut down (a crashed run
/// leaves no shutdown record).
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// The decisions, per kind, in order.
    pub decisions: Decisions,
    /// Whether the journal holds the run's shutdown control event.
    pub shut_down: bool,
}

/// The control topic of the shutdown event, as the journal records it.
const SHUTDOWN_TOPIC: &str = "switchyard.control.shutdown";

/// The decisions recorded in a journal, and whether the run shut down.
pub fn recorded(path: &Path) -> Result<Recorded, switchyard_journal::JournalError> {
    let mut r = Recorded::default();
    let reader = JournalReader::open(path)?;
    for rec in reader.records(ReadFilter::default()) {
        let rec = rec?;
        if rec.topic == SHUTDOWN_TOPIC {
            r.shut_down = true;
            continue;
        }
        let Some(&(_, kind)) = DECISIONS.iter().find(|(_, k)| *k == rec.kind) else {
            continue;
        };
        r.decisions
            .entry(kind)
            .or_default()
            .push((rec.topic, rec.payload));
    }
    Ok(r)
}

/// How a replay's decisions compare with the journal's.
#[derive(Clone, Debug, Serialize)]
pub struct Parity {
    /// True if every kind has the same events in the same order.
    pub identical: bool,
    /// Whether the journal's run shut down (else it crashed or was killed).
    pub shut_down: bool,
    /// Not identical, but the run did not shut down and, for every kind, one list is
    /// exactly the start of the other. When the process died, the journal's market data
    /// and its decisions (separate subscriptions) could each be a moment ahead: decisions
    /// made but not yet journaled (`in_flight`: the replay has more), or decisions
    /// journaled whose market data was not (`unverified`: the journal has more, and
    /// nothing can replay them). Every decision both have is the same, in order. A run
    /// that shut down drains everything into its journal, so there only `identical`
    /// passes.
    pub prefix: bool,
    /// Per kind: recorded count, replayed count, first differing position.
    pub kinds: BTreeMap<&'static str, KindParity>,
}

/// One kind's comparison.
#[derive(Clone, Debug, Serialize)]
pub struct KindParity {
    /// In the journal.
    pub recorded: usize,
    /// From the replay.
    pub replayed: usize,
    /// Index of the first event that differs (or where one list ends early).
    pub first_difference: Option<usize>,
    /// Replayed beyond the recorded ones, when those are a prefix (see [`Parity::prefix`]).
    pub in_flight: usize,
    /// Recorded beyond the replayed ones, when those are a prefix (see [`Parity::prefix`]).
    pub unverified: usize,
}

/// Compares kind by kind, event by event (topic and bytes).
pub fn compare(recorded: &Recorded, replayed: &Decisions) -> Parity {
    let mut kinds = BTreeMap::new();
    let mut prefix = !recorded.shut_down;
    for (_, kind) in DECISIONS {
        let a = recorded.decisions.get(kind).map_or(&[][..], Vec::as_slice);
        let b = replayed.get(kind).map_or(&[][..], Vec::as_slice);
        let first_difference = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i));
        // One a prefix of the other: they agree wherever both have an event.
        let is_prefix = first_difference.is_none_or(|i| i >= a.len().min(b.len()));
        prefix &= is_prefix;
        let (in_flight, unverified) = if is_prefix {
            (
                b.len().saturating_sub(a.len()),
                a.len().saturating_sub(b.len()),
            )
        } else {
            (0, 0)
        };
        kinds.insert(
            kind,
            KindParity {
                recorded: a.len(),
                replayed: b.len(),
                first_difference,
                in_flight,
                unverified,
            },
        );
    }
    let identical = kinds.values().all(|k| k.first_difference.is_none());
    Parity {
        identical,
        shut_down: recorded.shut_down,
        prefix: prefix && !identical,
        kinds,
    }
}

impl Parity {
    /// Identical, or a crashed run's decisions and the replay's agreeing on all they share.
    pub fn holds(&self) -> bool {
        self.identical || self.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decisions(orders: &[&str]) -> Decisions {
        let mut d = Decisions::new();
        d.insert(
            "order_request",
            orders
                .iter()
                .map(|o| ("orders.request.s".to_string(), o.as_bytes().to_vec()))
                .collect(),
        );
        d
    }

    #[test]
    fn a_crashed_runs_decisions_may_trail_the_replay_but_never_differ() {
        let crashed = |orders: &[&str]| Recorded {
            decisions: decisions(orders),
            shut_down: false,
        };
        let replayed = decisions(&["a", "b", "c"]);
        let p = compare(&crashed(&["a", "b"]), &replayed);
        assert!(!p.identical && p.prefix && p.holds(), "{p:?}");
        assert_eq!(p.kinds["order_request"].in_flight, 1);
        // A recorded decision the replay does not make, or makes otherwise: never holds.
        let p = compare(&crashed(&["a", "x"]), &replayed);
        assert!(!p.prefix && !p.holds(), "{p:?}");
        // More recorded than replayed (their market data did not reach the journal):
        // holds, and says how many could not be checked.
        let p = compare(&crashed(&["a", "b", "c", "d"]), &replayed);
        assert!(p.prefix && p.holds(), "{p:?}");
        assert_eq!(p.kinds["order_request"].unverified, 1);
        assert_eq!(p.kinds["order_request"].in_flight, 0);
        let p = compare(&crashed(&["a", "x", "c", "d"]), &replayed);
        assert!(!p.prefix && !p.holds(), "{p:?}");
        let p = compare(&crashed(&["a", "b", "c"]), &replayed);
        assert!(p.identical && !p.prefix && p.holds());
    }

    #[test]
    fn a_run_that_shut_down_must_match_exactly() {
        let done = Recorded {
            decisions: decisions(&["a", "b"]),
            shut_down: true,
        };
        let p = compare(&done, &decisions(&["a", "b", "c"]));
        assert!(!p.prefix && !p.holds(), "{p:?}");
        assert!(p.shut_down);
    }
}
