//! Loop prevention: the bus sequence numbers of events the importer put on the bus.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Seqs of imported events that some export subscription will see, with how many will.
/// Bounded: the oldest entries go first (an export subscription that dropped the event to
/// its overflow policy never asks for it).
pub(super) struct LoopGuard {
    pub(super) inner: Mutex<SeqSet>,
}

pub(super) struct SeqSet {
    pub(super) remaining: HashMap<u64, u32>,
    pub(super) order: VecDeque<u64>,
    pub(super) cap: usize,
}

impl LoopGuard {
    pub(super) fn new(cap: usize) -> Self {
        LoopGuard {
            inner: Mutex::new(SeqSet {
                remaining: HashMap::new(),
                order: VecDeque::new(),
                cap,
            }),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, SeqSet> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True (once per expected exporter) if `seq` was imported.
    pub(super) fn take(&self, seq: u64) -> bool {
        let mut s = self.lock();
        match s.remaining.get_mut(&seq) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                s.remaining.remove(&seq);
                true
            }
            None => false,
        }
    }
}

impl SeqSet {
    pub(super) fn insert(&mut self, seq: u64, count: u32) {
        self.remaining.insert(seq, count);
        self.order.push_back(seq);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.remaining.remove(&old);
            }
        }
        if self.order.len() > 2 * self.remaining.len() + 64 {
            let live = &self.remaining;
            self.order.retain(|s| live.contains_key(s));
        }
    }
}
