//! Replay parity: the decisions a replay makes compared with those its journal recorded.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use switchyard_journal::{JournalReader, ReadFilter};

use crate::catalog::DECISIONS;

/// Orders, rejections and executions as their journal bytes, per kind, in order.
pub type Decisions = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

/// The decisions recorded in a journal.
pub fn recorded(path: &Path) -> Result<Decisions, switchyard_journal::JournalError> {
    let mut d = Decisions::new();
    let reader = JournalReader::open(path)?;
    for rec in reader.records(ReadFilter::default()) {
        let rec = rec?;
        let Some(&(_, kind)) = DECISIONS.iter().find(|(_, k)| *k == rec.kind) else {
            continue;
        };
        d.entry(kind).or_default().push((rec.topic, rec.payload));
    }
    Ok(d)
}

/// How a replay's decisions compare with the journal's.
#[derive(Clone, Debug, Serialize)]
pub struct Parity {
    /// True if every kind has the same events in the same order.
    pub identical: bool,
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
}

/// Compares kind by kind, event by event (topic and bytes).
pub fn compare(recorded: &Decisions, replayed: &Decisions) -> Parity {
    let mut kinds = BTreeMap::new();
    for (_, kind) in DECISIONS {
        let a = recorded.get(kind).map_or(&[][..], Vec::as_slice);
        let b = replayed.get(kind).map_or(&[][..], Vec::as_slice);
        let first_difference = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i));
        kinds.insert(
            kind,
            KindParity {
                recorded: a.len(),
                replayed: b.len(),
                first_difference,
            },
        );
    }
    Parity {
        identical: kinds.values().all(|k| k.first_difference.is_none()),
        kinds,
    }
}
