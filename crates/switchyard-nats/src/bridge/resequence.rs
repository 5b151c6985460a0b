//! Resequencing: incoming JetStream messages put back into their exporter's order.
//!
//! Each export subscription (a *lane*: origin, kind and exported subject pattern) numbers
//! its messages 1, 2, 3, … without gaps (`Switchyard-Lane-Seq`). A publish retried after a
//! fault can land in the stream behind later messages of its lane; the importer then sees
//! a gap. It holds the messages after the gap (unacked, so nothing held is lost if the
//! process dies) until the missing one arrives, and releases them in lane order. A gap
//! that does not fill within the configured wait, or while more messages are held than
//! the configured bound, is given up: the held messages go on, and the gap is counted.
//! A message arriving after its gap was given up is delivered late, and counted.
//!
//! Only lanes the importer sees whole are resequenced: its consumer reads the whole
//! stream, or its filter covers the lane's subject pattern. A filter narrower than the
//! lane would leave gaps that never fill.
//!
//! The first message seen from a lane sets where the lane starts. Duplicates are not
//! decided here: a message id already imported is dropped by the importer's dedup.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// What the resequencer did with one message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Offered {
    /// Pushed to the output, with any held messages it unblocked.
    Released,
    /// Held until the messages before it arrive.
    Held,
    /// Older than the lane's next expected number: pushed to the output as it is (a
    /// duplicate, or a message whose gap was given up).
    Late,
    /// Not resequenced (no lane headers, or a lane the importer does not see whole):
    /// pushed to the output as it is.
    Unordered,
}

/// Counts of what the resequencer did (added to the bridge's counters by the caller).
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub(super) struct Released {
    /// Messages that were held and then released in order.
    pub(super) reordered: u64,
    /// Missing lane numbers given up (the wait passed or too many were held).
    pub(super) gaps_skipped: u64,
}

struct Lane<M> {
    kind: Box<str>,
    pattern: Box<str>,
    /// Resequenced (the importer sees the whole lane).
    ordered: bool,
    /// The lane number expected next.
    next: u64,
    /// Messages after a gap, by lane number.
    held: BTreeMap<u64, M>,
    /// When the lane began waiting for its current gap (`Some` iff `held` is not empty).
    waiting_since: Option<Instant>,
}

/// Per-lane reorder buffers.
pub(super) struct Resequencer<M> {
    /// Lanes by origin; an origin has a few (one per export subscription).
    lanes: HashMap<Box<str>, Vec<Lane<M>>>,
    wait: Duration,
    max_held: usize,
    held: usize,
    /// Does the importer see every message of a lane with this subject pattern?
    sees_whole: Box<dyn Fn(&str) -> bool + Send>,
}

/// Most origins remembered; past it, those holding nothing are forgotten.
const MAX_ORIGINS: usize = 4096;

impl<M> Resequencer<M> {
    /// Hold for at most `wait`, and at most `max_held` messages in all; `sees_whole(p)`
    /// says whether the importer's consumer delivers every subject of pattern `p`.
    pub(super) fn new(
        wait: Duration,
        max_held: usize,
        sees_whole: impl Fn(&str) -> bool + Send + 'static,
    ) -> Self {
        Resequencer {
            lanes: HashMap::new(),
            wait,
            max_held: max_held.max(1),
            held: 0,
            sees_whole: Box::new(sees_whole),
        }
    }

    /// Messages held now.
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// Offer message `m`, number `seq` of lane (`origin`, `kind`, `pattern`), arrived at
    /// `now`. What can go on is pushed to `out`, in order.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn offer(
        &mut self,
        origin: &str,
        kind: &str,
        pattern: &str,
        seq: u64,
        m: M,
        now: Instant,
        out: &mut VecDeque<M>,
        counts: &mut Released,
    ) -> Offered {
        if !self.lanes.contains_key(origin) {
            if self.lanes.len() >= MAX_ORIGINS {
                self.lanes
                    .retain(|_, lanes| lanes.iter().any(|l| !l.held.is_empty()));
            }
            self.lanes.insert(origin.into(), Vec::new());
        }
        let lanes = self.lanes.get_mut(origin).expect("inserted above");
        let i = match lanes
            .iter()
            .position(|l| &*l.kind == kind && &*l.pattern == pattern)
        {
            Some(i) => i,
            None => {
                lanes.push(Lane {
                    kind: kind.into(),
                    pattern: pattern.into(),
                    ordered: (self.sees_whole)(pattern),
                    next: seq,
                    held: BTreeMap::new(),
                    waiting_since: None,
                });
                lanes.len() - 1
            }
        };
        let lane = &mut lanes[i];
        if !lane.ordered {
            out.push_back(m);
            return Offered::Unordered;
        }
        if seq < lane.next {
            out.push_back(m);
            return Offered::Late;
        }
        if seq > lane.next {
            // A copy of a message already held (a redelivery) replaces it: the newer
            // delivery is the one to ack.
            if lane.held.insert(seq, m).is_none() {
                self.held += 1;
            }
            lane.waiting_since.get_or_insert(now);
            if self.held > self.max_held {
                // Too many held: give up this lane's gap rather than stall everything.
                let freed = skip_gap(lane, now, out, counts);
                self.held -= freed;
            }
            return Offered::Held;
        }
        out.push_back(m);
        lane.next = seq + 1;
        let freed = drain(lane, now, out, counts);
        self.held -= freed;
        Offered::Released
    }

    /// When the oldest gap's wait ends, if any lane is waiting.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.lanes
            .values()
            .flatten()
            .filter_map(|l| l.waiting_since)
            .min()
            .map(|t| t + self.wait)
    }

    /// Give up every gap whose wait has ended by `now`; what that releases goes to `out`.
    pub(super) fn expire(&mut self, now: Instant, out: &mut VecDeque<M>, counts: &mut Released) {
        let wait = self.wait;
        for lane in self.lanes.values_mut().flatten() {
            while lane.waiting_since.is_some_and(|t| t + wait <= now) {
                let freed = skip_gap(lane, now, out, counts);
                self.held -= freed;
            }
        }
    }

    /// Everything held, for giving back (shutdown); the lanes forget their gaps.
    pub(super) fn take_all(&mut self) -> Vec<M> {
        let mut all = Vec::with_capacity(self.held);
        for lane in self.lanes.values_mut().flatten() {
            all.extend(std::mem::take(&mut lane.held).into_values());
            lane.waiting_since = None;
        }
        self.held = 0;
        all
    }
}

/// Skip the lane's first gap (it must have one): continue at its first held message.
fn skip_gap<M>(lane: &mut Lane<M>, now: Instant, out: &mut VecDeque<M>, c: &mut Released) -> usize {
    let Some((&first, _)) = lane.held.first_key_value() else {
        lane.waiting_since = None;
        return 0;
    };
    c.gaps_skipped += first - lane.next;
    lane.next = first;
    drain(lane, now, out, c)
}

/// Release the held messages that follow on from `lane.next`; how many.
fn drain<M>(lane: &mut Lane<M>, now: Instant, out: &mut VecDeque<M>, c: &mut Released) -> usize {
    let mut n = 0;
    while let Some(entry) = lane.held.first_entry() {
        if *entry.key() != lane.next {
            break;
        }
        out.push_back(entry.remove());
        lane.next += 1;
        n += 1;
    }
    c.reordered += n as u64;
    lane.waiting_since = if lane.held.is_empty() {
        None
    } else if n > 0 {
        // A new gap: its wait starts now.
        Some(now)
    } else {
        lane.waiting_since
    };
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(2);

    struct Run {
        r: Resequencer<u64>,
        out: VecDeque<u64>,
        c: Released,
        now: Instant,
    }

    impl Run {
        fn new(max_held: usize) -> Self {
            Run {
                r: Resequencer::new(WAIT, max_held, |p| p.starts_with("sy.")),
                out: VecDeque::new(),
                c: Released::default(),
                now: Instant::now(),
            }
        }

        /// Offer lane number `seq` of origin `o`'s market lane, carrying `seq` itself.
        fn offer(&mut self, o: &str, seq: u64) -> Offered {
            let now = self.now;
            self.r.offer(
                o,
                "market_event",
                "sy.market_data.>",
                seq,
                seq,
                now,
                &mut self.out,
                &mut self.c,
            )
        }

        fn out(&mut self) -> Vec<u64> {
            self.out.drain(..).collect()
        }
    }

    #[test]
    fn in_order_messages_pass_straight_through() {
        let mut t = Run::new(16);
        for s in 7..12 {
            assert_eq!(t.offer("a@1", s), Offered::Released);
        }
        assert_eq!(t.out(), vec![7, 8, 9, 10, 11]);
        assert_eq!(t.c, Released::default());
        assert_eq!(t.r.deadline(), None);
    }

    #[test]
    fn a_gap_holds_what_follows_until_it_fills_then_releases_in_order() {
        let mut t = Run::new(16);
        t.offer("a@1", 1);
        assert_eq!(t.offer("a@1", 3), Offered::Held);
        assert_eq!(t.offer("a@1", 4), Offered::Held);
        assert_eq!(t.out(), vec![1]);
        assert_eq!(t.r.held(), 2);
        assert_eq!(t.r.deadline(), Some(t.now + WAIT));
        assert_eq!(t.offer("a@1", 2), Offered::Released);
        assert_eq!(t.out(), vec![2, 3, 4]);
        assert_eq!(t.c.reordered, 2);
        assert_eq!(t.c.gaps_skipped, 0);
        assert_eq!((t.r.held(), t.r.deadline()), (0, None));
        assert_eq!(t.offer("a@1", 5), Offered::Released);
    }

    #[test]
    fn lanes_of_other_origins_and_kinds_are_not_held_by_a_gap() {
        let mut t = Run::new(16);
        t.offer("a@1", 1);
        t.offer("a@1", 3);
        assert_eq!(t.offer("b@2", 40), Offered::Released);
        let now = t.now;
        let other = t.r.offer(
            "a@1",
            "feed_end",
            "sy.market_data.>",
            9,
            99,
            now,
            &mut t.out,
            &mut t.c,
        );
        assert_eq!(other, Offered::Released);
        assert_eq!(t.out(), vec![1, 40, 99]);
    }

    #[test]
    fn a_gap_that_does_not_fill_is_given_up_after_the_wait() {
        let mut t = Run::new(16);
        t.offer("a@1", 1);
        t.offer("a@1", 4);
        t.now += Duration::from_millis(500);
        t.offer("a@1", 5);
        t.out();
        // Not before the wait has passed since the gap was first seen.
        let first = t.now - Duration::from_millis(500);
        t.r.expire(
            first + WAIT - Duration::from_millis(1),
            &mut t.out,
            &mut t.c,
        );
        assert!(t.out().is_empty());
        t.r.expire(first + WAIT, &mut t.out, &mut t.c);
        assert_eq!(t.out(), vec![4, 5]);
        assert_eq!(t.c.gaps_skipped, 2, "2 and 3");
        assert_eq!(t.c.reordered, 2);
        assert_eq!(t.r.deadline(), None);
        // A given-up message that turns up after all is delivered, late.
        assert_eq!(t.offer("a@1", 2), Offered::Late);
        assert_eq!(t.out(), vec![2]);
        assert_eq!(t.offer("a@1", 6), Offered::Released);
    }

    #[test]
    fn after_a_partial_fill_the_next_gap_waits_from_when_it_became_the_first() {
        let mut t = Run::new(16);
        t.offer("a@1", 1);
        t.offer("a@1", 3);
        t.offer("a@1", 5);
        t.now += Duration::from_secs(1);
        t.offer("a@1", 2);
        assert_eq!(t.out(), vec![1, 2, 3]);
        assert_eq!(t.r.deadline(), Some(t.now + WAIT));
        t.r.expire(t.now + WAIT, &mut t.out, &mut t.c);
        assert_eq!(t.out(), vec![5]);
        assert_eq!(t.c.gaps_skipped, 1);
    }

    #[test]
    fn holding_more_than_the_bound_gives_the_gap_up_at_once() {
        let mut t = Run::new(3);
        t.offer("a@1", 1);
        for s in 3..=5 {
            assert_eq!(t.offer("a@1", s), Offered::Held);
        }
        assert_eq!(t.out(), vec![1]);
        assert_eq!(t.offer("a@1", 6), Offered::Held);
        assert_eq!(t.out(), vec![3, 4, 5, 6]);
        assert_eq!((t.r.held(), t.c.gaps_skipped), (0, 1));
    }

    #[test]
    fn a_redelivered_copy_of_a_held_message_replaces_it() {
        let mut t = Run::new(16);
        t.offer("a@1", 1);
        t.offer("a@1", 3);
        t.offer("a@1", 3);
        assert_eq!(t.r.held(), 1);
        t.offer("a@1", 2);
        assert_eq!(t.out(), vec![1, 2, 3]);
        assert_eq!(t.r.held(), 0);
    }

    #[test]
    fn lanes_the_importer_does_not_see_whole_are_not_resequenced() {
        let mut t = Run::new(16);
        let now = t.now;
        for s in [5, 3, 9] {
            let o =
                t.r.offer("a@1", "k", "other.>", s, s, now, &mut t.out, &mut t.c);
            assert_eq!(o, Offered::Unordered);
        }
        assert_eq!(t.out(), vec![5, 3, 9]);
        assert_eq!(t.r.held(), 0);
    }

    #[test]
    fn take_all_gives_back_what_is_held_and_forgets_the_gaps() {
        let mut t = Run::new(16);
        t.offer("a@1", 1);
        t.offer("a@1", 3);
        t.offer("b@1", 1);
        t.offer("b@1", 7);
        let mut all = t.r.take_all();
        all.sort();
        assert_eq!(all, vec![3, 7]);
        assert_eq!((t.r.held(), t.r.deadline()), (0, None));
    }
}
