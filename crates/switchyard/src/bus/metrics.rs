//! Bus observability: counters and latency histograms, read as a snapshot.

use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Events a subscription lost to its overflow policy, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DropCounts {
    /// Removed from the front of a full queue (`DropOldest`, or `Conflate` with no room).
    pub oldest: u64,
    /// Refused at a full queue (`DropNewest`, `Evict` before and at eviction).
    pub newest: u64,
    /// Replaced by a newer event with the same key (`Conflate`).
    pub conflated: u64,
    /// Queued when the subscription was evicted.
    pub evicted: u64,
}

impl DropCounts {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.oldest + self.newest + self.conflated + self.evicted
    }
}

/// Upper bounds (seconds) of the cumulative buckets exported for each histogram.
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0,
];

/// A latency distribution, in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Sum of all samples (ns).
    pub sum_ns: u64,
    /// Median (ns).
    pub p50_ns: u64,
    /// 99th percentile (ns).
    pub p99_ns: u64,
    /// 99.9th percentile (ns).
    pub p999_ns: u64,
    /// Largest sample (ns).
    pub max_ns: u64,
    /// Cumulative counts at [`LATENCY_BUCKETS_SECONDS`] (same order).
    pub buckets: Vec<u64>,
}

/// A histogram of nanoseconds, 1 ns to 1 hour, 3 significant digits.
#[derive(Clone)]
pub struct NanoHistogram {
    h: Histogram<u64>,
    sum: u64,
}

const MAX_NS: u64 = 3_600_000_000_000;

impl Default for NanoHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl NanoHistogram {
    /// Empty.
    pub fn new() -> Self {
        NanoHistogram {
            h: Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid histogram bounds"),
            sum: 0,
        }
    }

    /// Record one sample; values beyond an hour count as an hour.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let v = ns.clamp(1, MAX_NS);
        self.h.saturating_record(v);
        self.sum = self.sum.saturating_add(ns);
    }

    /// Percentiles, count, sum and buckets.
    pub fn summary(&self) -> LatencySummary {
        if self.h.is_empty() {
            return LatencySummary {
                buckets: vec![0; LATENCY_BUCKETS_SECONDS.len()],
                ..Default::default()
            };
        }
        LatencySummary {
            count: self.h.len(),
            sum_ns: self.sum,
            p50_ns: self.h.value_at_quantile(0.5),
            p99_ns: self.h.value_at_quantile(0.99),
            p999_ns: self.h.value_at_quantile(0.999),
            max_ns: self.h.max(),
            buckets: LATENCY_BUCKETS_SECONDS
                .iter()
                .map(|s| self.h.count_between(0, (s * 1e9) as u64))
                .collect(),
        }
    }

    /// The underlying histogram.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.h
    }
}

pub(crate) struct Histograms {
    pub latency: NanoHistogram,
    pub duration: NanoHistogram,
}

impl Histograms {
    pub fn new() -> Self {
        Histograms {
            latency: NanoHistogram::new(),
            duration: NanoHistogram::new(),
        }
    }
}

/// One subscription's counters.
///
/// Every event accepted into the queue is accounted for:
/// `accepted == delivered + dropped.oldest + dropped.conflated + dropped.evicted + depth + undelivered`
/// (`dropped.newest` counts events refused at the door, which were never accepted).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubscriptionStats {
    /// Id, unique within the bus.
    pub id: u64,
    /// Name (defaults to the pattern).
    pub name: String,
    /// Pattern; `None` for a control-only subscription.
    pub pattern: Option<String>,
    /// Overflow policy.
    pub overflow: &'static str,
    /// Queue capacity.
    pub capacity: u64,
    /// `active`, `unsubscribing`, `draining`, `evicted` or `finished`.
    pub state: &'static str,
    /// Accepted and not yet delivered (queued plus the worker's current batch).
    pub depth: u64,
    /// Waiting in the queue (not yet taken by the worker).
    pub queued: u64,
    /// Accepted into the queue.
    pub accepted: u64,
    /// Handed to the handler (whatever it returned).
    pub delivered: u64,
    /// Lost to the overflow policy.
    pub dropped: DropCounts,
    /// Accepted but never delivered: left at the shutdown deadline.
    pub undelivered: u64,
    /// Admitted past capacity (publishes from handlers under `Block`; `try_publish` races).
    pub overcommitted: u64,
    /// Publishes that raced shutdown and were refused here after other subscriptions took
    /// them.
    pub rejected_at_shutdown: u64,
    /// Handler returned an error.
    pub handler_errors: u64,
    /// Handler panicked.
    pub handler_panics: u64,
    /// Control events queued for this subscription.
    pub control_received: u64,
    /// Control events handled.
    pub control_handled: u64,
    /// Publish-to-handle latency.
    pub latency: LatencySummary,
    /// Handler run time.
    pub handler_duration: LatencySummary,
}

/// Publishes per topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicStats {
    /// Topic.
    pub topic: String,
    /// Events published on it (data and control).
    pub published: u64,
}

/// A point-in-time view of the whole bus.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BusSnapshot {
    /// Events published (sequence numbers handed out).
    pub published: u64,
    /// True once shutdown started.
    pub closed: bool,
    /// Per topic, sorted by topic.
    pub topics: Vec<TopicStats>,
    /// Per subscription, in subscription order (finished ones included).
    pub subscriptions: Vec<SubscriptionStats>,
}

/// One subscription's line of a shutdown report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubscriptionReport {
    /// Name.
    pub name: String,
    /// Accepted into its queue.
    pub accepted: u64,
    /// Delivered to the handler.
    pub delivered: u64,
    /// Dropped by the overflow policy (all causes, including refused at the door).
    pub dropped: u64,
    /// Accepted but not delivered by the deadline.
    pub undelivered: u64,
    /// Refused because shutdown had started (after others took the event).
    pub rejected_at_shutdown: u64,
    /// Handler errors and panics.
    pub failed: u64,
}

/// What `Bus::shutdown` returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BusShutdownReport {
    /// True if the drain deadline passed before every queue was empty.
    pub deadline_hit: bool,
    /// Time the drain took.
    pub elapsed_ms: u64,
    /// Per subscription.
    pub subscriptions: Vec<SubscriptionReport>,
}

impl BusShutdownReport {
    /// Sum of `undelivered` over subscriptions.
    pub fn undelivered(&self) -> u64 {
        self.subscriptions.iter().map(|s| s.undelivered).sum()
    }
}

impl fmt::Display for BusShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bus drained in {} ms{}",
            self.elapsed_ms,
            if self.deadline_hit {
                " (deadline hit)"
            } else {
                ""
            }
        )?;
        let w = self
            .subscriptions
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(28);
        writeln!(
            f,
            "  {:<w$} {:>12} {:>12} {:>10} {:>12} {:>8}",
            "subscription", "accepted", "delivered", "dropped", "undelivered", "failed"
        )?;
        for s in &self.subscriptions {
            writeln!(
                f,
                "  {:<w$} {:>12} {:>12} {:>10} {:>12} {:>8}",
                s.name, s.accepted, s.delivered, s.dropped, s.undelivered, s.failed
            )?;
        }
        Ok(())
    }
}

impl From<&SubscriptionStats> for SubscriptionReport {
    fn from(s: &SubscriptionStats) -> Self {
        SubscriptionReport {
            name: s.name.clone(),
            accepted: s.accepted,
            delivered: s.delivered,
            dropped: s.dropped.total(),
            undelivered: s.undelivered + s.depth,
            rejected_at_shutdown: s.rejected_at_shutdown,
            failed: s.handler_errors + s.handler_panics,
        }
    }
}
