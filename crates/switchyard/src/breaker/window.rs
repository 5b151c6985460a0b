//! Sliding windows of call outcomes: the last N calls, or the calls of the last D.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::{SlidingWindow, TIME_WINDOW_BUCKETS};

/// Aggregated outcomes in a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
}

impl Totals {
    fn add(&mut self, failure: bool, slow: bool) {
        self.calls += 1;
        self.failures += u32::from(failure);
        self.slow += u32::from(slow);
    }

    fn sub(&mut self, other: Totals) {
        self.calls -= other.calls;
        self.failures -= other.failures;
        self.slow -= other.slow;
    }
}

/// Outcome of one call, packed.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    failure: bool,
    slow: bool,
}

#[derive(Debug)]
enum Kind {
    Count {
        size: usize,
        ring: VecDeque<Outcome>,
    },
    Time {
        bucket_width: Duration,
        /// Buckets, oldest first, each with its index (nanos since origin / width).
        buckets: VecDeque<(u64, Totals)>,
        origin: Option<Instant>,
    },
}

/// A sliding window with running totals; memory is bounded by its configuration.
#[derive(Debug)]
pub(crate) struct Window {
    kind: Kind,
    totals: Totals,
}

impl Window {
    pub(crate) fn new(config: SlidingWindow) -> Self {
        let kind = match config {
            SlidingWindow::Count { calls } => Kind::Count {
                size: calls as usize,
                ring: VecDeque::with_capacity((calls as usize).min(1024)),
            },
            SlidingWindow::Time { duration } => Kind::Time {
                bucket_width: duration / TIME_WINDOW_BUCKETS,
                buckets: VecDeque::with_capacity(TIME_WINDOW_BUCKETS as usize),
                origin: None,
            },
        };
        Window {
            kind,
            totals: Totals::default(),
        }
    }

    /// Forget everything.
    pub(crate) fn clear(&mut self) {
        match &mut self.kind {
            Kind::Count { ring, .. } => ring.clear(),
            Kind::Time {
                buckets, origin, ..
            } => {
                buckets.clear();
                *origin = None;
            }
        }
        self.totals = Totals::default();
    }

    /// Record one outcome at `now`.
    pub(crate) fn record(&mut self, failure: bool, slow: bool, now: Instant) {
        match &mut self.kind {
            Kind::Count { size, ring } => {
                if ring.len() == *size
                    && let Some(old) = ring.pop_front()
                {
                    let mut gone = Totals::default();
                    gone.add(old.failure, old.slow);
                    self.totals.sub(gone);
                }
                ring.push_back(Outcome { failure, slow });
                self.totals.add(failure, slow);
            }
            Kind::Time { .. } => {
                let index = self.expire(now);
                let Kind::Time { buckets, .. } = &mut self.kind else {
                    unreachable!("checked above")
                };
                match buckets.back_mut() {
                    Some((i, t)) if *i == index => t.add(failure, slow),
                    _ => {
                        let mut t = Totals::default();
                        t.add(failure, slow);
                        buckets.push_back((index, t));
                    }
                }
                self.totals.add(failure, slow);
            }
        }
    }

    /// The totals of the window as of `now` (drops expired buckets first).
    pub(crate) fn totals(&mut self, now: Instant) -> Totals {
        if matches!(self.kind, Kind::Time { .. }) {
            self.expire(now);
        }
        self.totals
    }

    /// Drop buckets that left the window by `now`; returns the current bucket index.
    fn expire(&mut self, now: Instant) -> u64 {
        let Kind::Time {
            bucket_width,
            buckets,
            origin,
        } = &mut self.kind
        else {
            return 0;
        };
        let origin = *origin.get_or_insert(now);
        let since = now.saturating_duration_since(origin).as_nanos();
        let index = u64::try_from(since / bucket_width.as_nanos().max(1)).unwrap_or(u64::MAX);
        let oldest_kept = index.saturating_sub(u64::from(TIME_WINDOW_BUCKETS) - 1);
        while let Some((i, t)) = buckets.front().copied() {
            if i >= oldest_kept {
                break;
            }
            buckets.pop_front();
            self.totals.sub(t);
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_keeps_the_last_n() {
        let mut w = Window::new(SlidingWindow::Count { calls: 3 });
        let now = Instant::now();
        w.record(true, false, now);
        w.record(false, true, now);
        w.record(false, false, now);
        assert_eq!(
            w.totals(now),
            Totals {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.record(false, false, now);
        assert_eq!(
            w.totals(now),
            Totals {
                calls: 3,
                failures: 0,
                slow: 1
            }
        );
    }

    #[test]
    fn time_window_forgets_old_calls() {
        let mut w = Window::new(SlidingWindow::Time {
            duration: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        w.record(true, false, t0);
        w.record(true, false, t0 + Duration::from_secs(5));
        assert_eq!(w.totals(t0 + Duration::from_secs(9)).failures, 2);
        // The first call's bucket ([0, 0.5s)) leaves the window at 10 s.
        assert_eq!(w.totals(t0 + Duration::from_secs(10)).failures, 1);
        assert_eq!(w.totals(t0 + Duration::from_secs(15)).calls, 0);
        w.record(false, false, t0 + Duration::from_secs(100));
        assert_eq!(w.totals(t0 + Duration::from_secs(100)).calls, 1);
    }
}
