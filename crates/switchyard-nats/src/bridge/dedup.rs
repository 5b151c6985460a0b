//! Duplicate removal by message id, and reorder detection per origin and kind.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

pub(super) struct Dedup {
    pub(super) seen: HashSet<Arc<str>>,
    pub(super) order: VecDeque<Arc<str>>,
    pub(super) cap: usize,
    /// Highest sequence number accepted per origin, per kind.
    pub(super) last_seq: HashMap<Box<str>, Vec<(&'static str, u64)>>,
}

impl Dedup {
    pub(super) fn new(cap: usize) -> Self {
        Dedup {
            seen: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            last_seq: HashMap::new(),
        }
    }

    /// Record `seq` for (`origin`, `kind`); false if a higher one was accepted before.
    pub(super) fn in_order(&mut self, origin: &str, kind: &'static str, seq: u64) -> bool {
        if !self.last_seq.contains_key(origin) {
            if self.last_seq.len() >= 4096 {
                // Many short-lived origins: forget them rather than grow without bound.
                self.last_seq.clear();
            }
            self.last_seq.insert(origin.into(), Vec::new());
        }
        let kinds = self.last_seq.get_mut(origin).expect("inserted above");
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, last)) if *last > seq => false,
            Some((_, last)) => {
                *last = seq;
                true
            }
            None => {
                kinds.push((kind, seq));
                true
            }
        }
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    pub(super) fn insert(&mut self, id: &str) {
        let id: Arc<str> = Arc::from(id);
        if self.seen.insert(Arc::clone(&id)) {
            self.order.push_back(id);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn reordering_is_detected_per_origin_and_kind() {
        let mut d = Dedup::new(16);
        assert!(d.in_order("a@1", "market_event", 5));
        assert!(d.in_order("a@1", "market_event", 9));
        // Another kind of the same origin has its own sequence (another subscription).
        assert!(d.in_order("a@1", "exec_event", 7));
        assert!(d.in_order("b@2", "market_event", 1));
        assert!(!d.in_order("a@1", "market_event", 6), "6 after 9");
        assert!(d.in_order("a@1", "market_event", 10));
    }
    #[test]
    fn dedup_is_bounded() {
        let mut d = Dedup::new(3);
        for i in 0..5 {
            d.insert(&format!("o:{i}"));
        }
        assert!(!d.contains("o:0") && !d.contains("o:1"));
        assert!(d.contains("o:2") && d.contains("o:4"));
    }
}
