//! Audit records, events and status of the kill switch.

use std::collections::VecDeque;

use serde::Serialize;

use super::{Mode, Scope};
use crate::clock::Timestamp;

/// Why a reset was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// No operator secret is configured.
    NoSecretConfigured,
    /// The presented secret was wrong.
    WrongSecret,
    /// Too many wrong secrets: attempts are locked out for a while.
    LockedOut,
}

/// What an [`AuditRecord`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditAction {
    /// A scope was triggered.
    Triggered,
    /// A scope already active was triggered again; the first reason is kept.
    RepeatTrigger,
    /// A scope already active was triggered again with a stricter mode: the mode was
    /// raised, the first reason is kept.
    Escalated,
    /// One scope, or all of them (`scope: None`), was reset.
    Reset,
    /// A reset was refused.
    ResetRefused {
        /// Why.
        reason: RefusalReason,
    },
}

/// One audited kill-switch action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// When, by the kill switch's clock.
    pub at: Timestamp,
    /// What happened.
    pub action: AuditAction,
    /// The scope acted on; `None` for a reset of every scope.
    pub scope: Option<Scope>,
    /// The mode requested by a trigger; `None` for resets.
    pub mode: Option<Mode>,
    /// The trigger's reason, or a description of the reset / refusal.
    pub reason: String,
    /// The trigger's source, or who asked for the reset.
    pub source_or_who: String,
}

/// An active trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActiveTrigger {
    /// What it covers.
    pub scope: Scope,
    /// Its mode (the strictest requested for this scope while active).
    pub mode: Mode,
    /// The first trigger's reason.
    pub reason: String,
    /// The first trigger's source.
    pub source: String,
    /// When the scope was first triggered.
    pub since: Timestamp,
}

/// What the kill switch's listener receives after each audited action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KillSwitchEvent {
    /// The audit record of the action.
    pub record: AuditRecord,
    /// The active triggers right after it.
    pub active: Vec<ActiveTrigger>,
}

/// Counters of the kill switch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KillSwitchCounters {
    /// Triggers that engaged a scope.
    pub triggers: u64,
    /// Triggers of a scope already active (escalations included).
    pub repeat_triggers: u64,
    /// Successful resets.
    pub resets: u64,
    /// Refused resets.
    pub refused_resets: u64,
}

/// A serializable view of the kill switch for a status API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KillSwitchStatus {
    /// Whether any trigger is active.
    pub engaged: bool,
    /// The active triggers, in the order they were first triggered.
    pub active: Vec<ActiveTrigger>,
    /// Counters.
    pub counters: KillSwitchCounters,
    /// Whether an operator secret is configured (without one, resets are refused).
    pub secret_configured: bool,
    /// Consecutive wrong secrets since the last successful reset.
    pub consecutive_reset_failures: u32,
}

/// The last `capacity` records, with gapless sequence numbers.
#[derive(Debug)]
pub(crate) struct AuditLog {
    records: VecDeque<AuditRecord>,
    capacity: usize,
    next_seq: u64,
}

impl AuditLog {
    pub(crate) fn new(capacity: usize) -> Self {
        AuditLog {
            records: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            next_seq: 1,
        }
    }

    /// Append a record (its `seq` is assigned here) and return a copy of it.
    pub(crate) fn push(&mut self, mut record: AuditRecord) -> AuditRecord {
        record.seq = self.next_seq;
        self.next_seq += 1;
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(record.clone());
        record
    }

    pub(crate) fn to_vec(&self) -> Vec<AuditRecord> {
        self.records.iter().cloned().collect()
    }
}
