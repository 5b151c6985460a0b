//! Prometheus text exposition (format 0.0.4) for the operations API.
//!
//! [`MetricsWriter`] writes metric families: one `# HELP` and one `# TYPE` line per
//! family, then its samples. It checks what `promtool check metrics` checks (names, label
//! names, `_total` on counters and only on counters, no empty help, no family written
//! twice, no label set written twice in a family, cumulative histogram buckets) and
//! records every violation in [`MetricsWriter::errors`] instead of writing it, so a bug
//! in one family never makes the whole page unparsable.
//!
//! ```text
//! let mut w = MetricsWriter::new();
//! w.family("switchyard_bus_published_total", "Events published, by topic.", MetricType::Counter)
//!     .sample(&[("topic", "md.trades")], 42u64)
//!     .sample(&[("topic", "md.quotes")], 7u64);
//! let text = w.finish();
//! ```
//!
//! [`write_bus`], [`write_kill_switch`] and [`write_breakers`] render the core's
//! snapshots. Units are base units (seconds); latencies are histograms with the buckets
//! of [`LATENCY_BUCKETS_SECONDS`]. Families, all prefixed `switchyard_`:
//!
//! | part | families (labels) |
//! |---|---|
//! | bus | `bus_events_published_total`, `bus_closed`, `bus_published_total{topic}` |
//! | subscription (`{subscription}`) | `queue_depth`, `queue_capacity`, `accepted_total`, `delivered_total`, `dropped_total{cause=oldest\|newest\|conflated\|evicted}`, `undelivered_total`, `overcommitted_total`, `rejected_at_shutdown_total`, `handler_errors_total`, `handler_panics_total`, `control_received_total`, `control_handled_total`, `state{state}`, histograms `latency_seconds`, `handler_duration_seconds` — each `subscription_…` |
//! | kill switch | `kill_switch_engaged`, `kill_switch_active_triggers`, `kill_switch_triggers_total`, `kill_switch_repeat_triggers_total`, `kill_switch_resets_total`, `kill_switch_refused_resets_total`, `kill_switch_consecutive_reset_failures`, `kill_switch_secret_configured` |
//! | breaker (`{breaker}`) | `state{state}`, `calls_total{outcome=success\|failure\|rejected\|ignored}`, `slow_calls_total`, `timeouts_total`, `transitions_total`, `consecutive_reopens`, `open_remaining_seconds` — each `breaker_…` |

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use switchyard::breaker::{BreakerSnapshot, BreakerState};
use switchyard::bus::{BusSnapshot, LATENCY_BUCKETS_SECONDS, LatencySummary, SubscriptionStats};
use switchyard::kill_switch::KillSwitchStatus;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// A monotonic count; the name must end in `_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative buckets, a sum and a count (write with [`Family::histogram`]).
    Histogram,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// A sample value.
pub trait SampleValue {
    /// Append the value as the text format spells it.
    fn write_to(&self, out: &mut String);
}

macro_rules! integer_sample_value {
    ($($t:ty),*) => {$(
        impl SampleValue for $t {
            fn write_to(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integer_sample_value!(u8, u16, u32, u64, usize, i32, i64);

impl SampleValue for f64 {
    fn write_to(&self, out: &mut String) {
        write_float(out, *self);
    }
}

impl SampleValue for bool {
    fn write_to(&self, out: &mut String) {
        out.push(if *self { '1' } else { '0' });
    }
}

fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        // Rust's `Display` for f64 is exact-shortest and never uses an exponent.
        let _ = write!(out, "{v}");
    }
}

/// Writes the text exposition format; see the [module docs](self).
#[derive(Debug, Default)]
pub struct MetricsWriter {
    out: String,
    families: HashSet<String>,
    errors: Vec<String>,
}

impl MetricsWriter {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a family: writes its `# HELP` and `# TYPE` lines; add samples to the
    /// returned [`Family`]. An invalid or repeated family is recorded as an error and its
    /// samples are discarded.
    pub fn family(&mut self, name: &str, help: &str, kind: MetricType) -> Family<'_> {
        let problem = family_problem(name, help, kind, &self.families);
        let enabled = match problem {
            Some(problem) => {
                self.errors
                    .push(format!("metric family {name:?}: {problem}"));
                false
            }
            None => {
                self.families.insert(name.to_owned());
                let _ = write!(self.out, "# HELP {name} ");
                escape_help(&mut self.out, help);
                let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.as_str());
                true
            }
        };
        Family {
            name: name.to_owned(),
            kind,
            enabled,
            label_sets: HashSet::new(),
            w: self,
        }
    }

    /// A counter family with one unlabelled sample.
    pub fn counter(&mut self, name: &str, help: &str, value: impl SampleValue) {
        self.family(name, help, MetricType::Counter)
            .sample(&[], value);
    }

    /// A gauge family with one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl SampleValue) {
        self.family(name, help, MetricType::Gauge)
            .sample(&[], value);
    }

    /// What was refused so far (invalid names, repeated families or label sets, …).
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

/// One metric family being written; see [`MetricsWriter::family`].
#[derive(Debug)]
pub struct Family<'w> {
    w: &'w mut MetricsWriter,
    name: String,
    kind: MetricType,
    enabled: bool,
    label_sets: HashSet<String>,
}

impl Family<'_> {
    /// Add a counter or gauge sample with these labels.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl SampleValue) -> &mut Self {
        if !self.enabled {
            return self;
        }
        if self.kind == MetricType::Histogram {
            self.error("use `histogram` to write a histogram's samples");
            return self;
        }
        let Some(rendered) = self.labels(labels) else {
            return self;
        };
        let out = &mut self.w.out;
        out.push_str(&self.name);
        out.push_str(&rendered);
        out.push(' ');
        value.write_to(out);
        out.push('\n');
        self
    }

    /// Add a histogram with these labels: `buckets` are `(upper bound, cumulative count)`
    /// with finite, increasing bounds and non-decreasing counts not above `count`; the
    /// `+Inf` bucket (`count`) is added here. `sum` is in the family's unit.
    pub fn histogram(
        &mut self,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) -> &mut Self {
        if !self.enabled {
            return self;
        }
        if self.kind != MetricType::Histogram {
            self.error("`histogram` on a family that is not a histogram");
            return self;
        }
        if labels.iter().any(|(k, _)| *k == "le") {
            self.error("a histogram's labels may not include `le`");
            return self;
        }
        let mut previous: Option<(f64, u64)> = None;
        for &(le, c) in buckets {
            let bad = !le.is_finite()
                || c > count
                || previous.is_some_and(|(ple, pc)| le <= ple || c < pc);
            if bad {
                self.error(&format!(
                    "histogram buckets must have finite increasing bounds and cumulative \
                     counts up to {count}; got le={le} count={c} after {previous:?}"
                ));
                return self;
            }
            previous = Some((le, c));
        }
        let Some(rendered) = self.labels(labels) else {
            return self;
        };
        // `{a="x"}` → `{a="x",le="…"}`; `` → `{le="…"}`.
        let open = if rendered.is_empty() {
            "{".to_owned()
        } else {
            format!("{},", &rendered[..rendered.len() - 1])
        };
        let out = &mut self.w.out;
        let mut le_text = String::new();
        for &(le, c) in buckets
            .iter()
            .chain(std::iter::once(&(f64::INFINITY, count)))
        {
            le_text.clear();
            write_float(&mut le_text, le);
            let _ = writeln!(out, "{}_bucket{open}le=\"{le_text}\"}} {c}", self.name);
        }
        let _ = write!(out, "{}_sum{rendered} ", self.name);
        write_float(out, sum);
        let _ = writeln!(out, "\n{}_count{rendered} {count}", self.name);
        self
    }

    /// `labels` rendered as `{a="x",b="y"}` (empty when there are none), or `None` (and an
    /// error recorded) when a label name is invalid or the label set was already written.
    fn labels(&mut self, labels: &[(&str, &str)]) -> Option<String> {
        let mut rendered = String::new();
        for (i, (name, value)) in labels.iter().enumerate() {
            if !valid_label_name(name) || labels[..i].iter().any(|(n, _)| n == name) {
                self.error(&format!("invalid or repeated label name {name:?}"));
                return None;
            }
            rendered.push(if i == 0 { '{' } else { ',' });
            rendered.push_str(name);
            rendered.push_str("=\"");
            escape_label_value(&mut rendered, value);
            rendered.push('"');
        }
        if !rendered.is_empty() {
            rendered.push('}');
        }
        if !self.label_sets.insert(rendered.clone()) {
            self.error(&format!("label set {rendered} written twice"));
            return None;
        }
        Some(rendered)
    }

    fn error(&mut self, problem: &str) {
        self.w
            .errors
            .push(format!("metric family {:?}: {problem}", self.name));
    }
}

fn family_problem(
    name: &str,
    help: &str,
    kind: MetricType,
    written: &HashSet<String>,
) -> Option<&'static str> {
    if !valid_metric_name(name) {
        return Some("invalid metric name");
    }
    if written.contains(name) {
        return Some("family written twice");
    }
    if help.trim().is_empty() {
        return Some("empty help text");
    }
    let total = name.ends_with("_total");
    match kind {
        MetricType::Counter if !total => Some("a counter's name must end in `_total`"),
        MetricType::Gauge | MetricType::Histogram if total => {
            Some("only counters may end in `_total`")
        }
        MetricType::Histogram
            if ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.ends_with(s)) =>
        {
            Some("a histogram's name may not end in `_bucket`, `_sum` or `_count`")
        }
        _ => None,
    }
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Label values for named things whose names may repeat (subscriptions default to their
/// pattern, so two subscriptions can share a name): the name when it is unique, else
/// `name#id` for every holder of that name.
fn unique_names<'a>(items: impl Iterator<Item = (&'a str, u64)> + Clone) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (name, _) in items.clone() {
        *counts.entry(name).or_default() += 1;
    }
    items
        .map(|(name, id)| {
            if counts[name] > 1 {
                format!("{name}#{id}")
            } else {
                name.to_owned()
            }
        })
        .collect()
}

const NANOS_PER_SECOND: f64 = 1e9;

/// Cumulative `(le seconds, count)` buckets of a [`LatencySummary`], forced monotonic and
/// capped at `count` (a summary without buckets gives none: only `+Inf` is written).
fn latency_buckets(s: &LatencySummary) -> Vec<(f64, u64)> {
    let mut previous = 0;
    LATENCY_BUCKETS_SECONDS
        .iter()
        .zip(&s.buckets)
        .map(|(&le, &c)| {
            previous = c.clamp(previous, s.count);
            (le, previous)
        })
        .collect()
}

/// The bus: publishes per topic, and per subscription queue depth, deliveries, drops by
/// cause, failures and latency histograms. Subscriptions are labelled by name (`name#id`
/// when names repeat).
pub fn write_bus(w: &mut MetricsWriter, snapshot: &BusSnapshot) {
    w.counter(
        "switchyard_bus_events_published_total",
        "Events published on the bus (sequence numbers handed out).",
        snapshot.published,
    );
    w.gauge(
        "switchyard_bus_closed",
        "1 once the bus started shutting down.",
        snapshot.closed,
    );
    let mut f = w.family(
        "switchyard_bus_published_total",
        "Events published on the bus, by topic (data and control).",
        MetricType::Counter,
    );
    for t in &snapshot.topics {
        f.sample(&[("topic", &t.topic)], t.published);
    }

    let subs = &snapshot.subscriptions;
    let names = unique_names(subs.iter().map(|s| (s.name.as_str(), s.id)));
    let per_sub = |w: &mut MetricsWriter,
                   name: &str,
                   help: &str,
                   kind: MetricType,
                   value: &dyn Fn(&SubscriptionStats) -> u64| {
        let mut f = w.family(name, help, kind);
        for (s, label) in subs.iter().zip(&names) {
            f.sample(&[("subscription", label)], value(s));
        }
    };
    use MetricType::{Counter, Gauge};
    per_sub(
        w,
        "switchyard_subscription_queue_depth",
        "Events accepted by the subscription and not yet delivered.",
        Gauge,
        &|s| s.depth,
    );
    per_sub(
        w,
        "switchyard_subscription_queue_capacity",
        "Capacity of the subscription's queue.",
        Gauge,
        &|s| s.capacity,
    );
    per_sub(
        w,
        "switchyard_subscription_accepted_total",
        "Events accepted into the subscription's queue.",
        Counter,
        &|s| s.accepted,
    );
    per_sub(
        w,
        "switchyard_subscription_delivered_total",
        "Events handed to the subscription's handler.",
        Counter,
        &|s| s.delivered,
    );
    let mut f = w.family(
        "switchyard_subscription_dropped_total",
        "Events the subscription lost to its overflow policy, by cause.",
        Counter,
    );
    for (s, label) in subs.iter().zip(&names) {
        let d = &s.dropped;
        for (cause, n) in [
            ("oldest", d.oldest),
            ("newest", d.newest),
            ("conflated", d.conflated),
            ("evicted", d.evicted),
        ] {
            f.sample(&[("subscription", label), ("cause", cause)], n);
        }
    }
    per_sub(
        w,
        "switchyard_subscription_undelivered_total",
        "Events accepted but left undelivered at the shutdown deadline.",
        Counter,
        &|s| s.undelivered,
    );
    per_sub(
        w,
        "switchyard_subscription_overcommitted_total",
        "Events admitted past the queue's capacity.",
        Counter,
        &|s| s.overcommitted,
    );
    per_sub(
        w,
        "switchyard_subscription_rejected_at_shutdown_total",
        "Publishes refused by the subscription because shutdown had started.",
        Counter,
        &|s| s.rejected_at_shutdown,
    );
    per_sub(
        w,
        "switchyard_subscription_handler_errors_total",
        "Handler calls that returned an error.",
        Counter,
        &|s| s.handler_errors,
    );
    per_sub(
        w,
        "switchyard_subscription_handler_panics_total",
        "Handler calls that panicked.",
        Counter,
        &|s| s.handler_panics,
    );
    per_sub(
        w,
        "switchyard_subscription_control_received_total",
        "Control events queued for the subscription.",
        Counter,
        &|s| s.control_received,
    );
    per_sub(
        w,
        "switchyard_subscription_control_handled_total",
        "Control events the subscription handled.",
        Counter,
        &|s| s.control_handled,
    );
    let mut f = w.family(
        "switchyard_subscription_state",
        "1 for the subscription's current state (active, unsubscribing, draining, evicted, \
         finished).",
        Gauge,
    );
    for (s, label) in subs.iter().zip(&names) {
        for state in ["active", "unsubscribing", "draining", "evicted", "finished"] {
            f.sample(
                &[("subscription", label), ("state", state)],
                s.state == state,
            );
        }
    }
    fn latency(s: &SubscriptionStats) -> &LatencySummary {
        &s.latency
    }
    fn handler_duration(s: &SubscriptionStats) -> &LatencySummary {
        &s.handler_duration
    }
    type PickSummary = fn(&SubscriptionStats) -> &LatencySummary;
    let histograms: [(&str, &str, PickSummary); 2] = [
        (
            "switchyard_subscription_latency_seconds",
            "Time from publish to the start of the handler.",
            latency,
        ),
        (
            "switchyard_subscription_handler_duration_seconds",
            "Time the handler took per event.",
            handler_duration,
        ),
    ];
    for (name, help, pick) in histograms {
        let mut f = w.family(name, help, MetricType::Histogram);
        for (s, label) in subs.iter().zip(&names) {
            let h = pick(s);
            f.histogram(
                &[("subscription", label)],
                &latency_buckets(h),
                h.sum_ns as f64 / NANOS_PER_SECOND,
                h.count,
            );
        }
    }
}

/// The kill switch: engaged, active triggers, and its counters.
pub fn write_kill_switch(w: &mut MetricsWriter, status: &KillSwitchStatus) {
    w.gauge(
        "switchyard_kill_switch_engaged",
        "1 while any kill-switch trigger is active.",
        status.engaged,
    );
    w.gauge(
        "switchyard_kill_switch_active_triggers",
        "Active kill-switch triggers (scopes).",
        status.active.len(),
    );
    let c = &status.counters;
    w.counter(
        "switchyard_kill_switch_triggers_total",
        "Kill-switch triggers that engaged a scope.",
        c.triggers,
    );
    w.counter(
        "switchyard_kill_switch_repeat_triggers_total",
        "Kill-switch triggers of a scope already active (escalations included).",
        c.repeat_triggers,
    );
    w.counter(
        "switchyard_kill_switch_resets_total",
        "Successful kill-switch resets.",
        c.resets,
    );
    w.counter(
        "switchyard_kill_switch_refused_resets_total",
        "Refused kill-switch resets (no secret configured, wrong secret, locked out).",
        c.refused_resets,
    );
    w.gauge(
        "switchyard_kill_switch_consecutive_reset_failures",
        "Consecutive wrong operator secrets since the last successful reset.",
        status.consecutive_reset_failures,
    );
    w.gauge(
        "switchyard_kill_switch_secret_configured",
        "1 if an operator secret is configured (without one, resets are refused).",
        status.secret_configured,
    );
}

const BREAKER_STATES: [BreakerState; 5] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
    BreakerState::ForcedOpen,
    BreakerState::Disabled,
];

/// Circuit breakers: state, calls by outcome, slow calls, timeouts, transitions. Labelled
/// by name (`name#index` when names repeat). Writes nothing without breakers.
pub fn write_breakers(w: &mut MetricsWriter, breakers: &[BreakerSnapshot]) {
    if breakers.is_empty() {
        return;
    }
    let names = unique_names(
        breakers
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name.as_str(), i as u64)),
    );
    let mut f = w.family(
        "switchyard_breaker_state",
        "1 for the circuit breaker's current state (closed, open, half-open, forced-open, \
         disabled).",
        MetricType::Gauge,
    );
    for (b, name) in breakers.iter().zip(&names) {
        for state in BREAKER_STATES {
            f.sample(
                &[("breaker", name), ("state", &state.to_string())],
                b.state == state,
            );
        }
    }
    let mut f = w.family(
        "switchyard_breaker_calls_total",
        "Calls through the circuit breaker, by outcome (success, failure, rejected: refused \
         without being made, ignored: released without an outcome).",
        MetricType::Counter,
    );
    for (b, name) in breakers.iter().zip(&names) {
        let c = &b.counters;
        for (outcome, n) in [
            ("success", c.successes),
            ("failure", c.failures),
            ("rejected", c.rejected),
            ("ignored", c.ignored),
        ] {
            f.sample(&[("breaker", name), ("outcome", outcome)], n);
        }
    }
    type Pick = fn(&BreakerSnapshot) -> f64;
    let rest: [(&str, &str, MetricType, Pick); 5] = [
        (
            "switchyard_breaker_slow_calls_total",
            "Successful calls that were slow.",
            MetricType::Counter,
            |b| b.counters.slow_calls as f64,
        ),
        (
            "switchyard_breaker_timeouts_total",
            "Calls that failed by timing out.",
            MetricType::Counter,
            |b| b.counters.timeouts as f64,
        ),
        (
            "switchyard_breaker_transitions_total",
            "State changes of the circuit breaker.",
            MetricType::Counter,
            |b| b.counters.transitions as f64,
        ),
        (
            "switchyard_breaker_consecutive_reopens",
            "Consecutive re-opens from half-open (the backoff exponent).",
            MetricType::Gauge,
            |b| f64::from(b.consecutive_reopens),
        ),
        (
            "switchyard_breaker_open_remaining_seconds",
            "Time until the open period ends (0 when not open).",
            MetricType::Gauge,
            |b| b.open_remaining_ms.unwrap_or(0) as f64 / 1e3,
        ),
    ];
    for (metric, help, kind, pick) in rest {
        let mut f = w.family(metric, help, kind);
        for (b, name) in breakers.iter().zip(&names) {
            f.sample(&[("breaker", name)], pick(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_help_and_type_once_then_samples() {
        let mut w = MetricsWriter::new();
        w.family("a_total", "A things.", MetricType::Counter)
            .sample(&[("k", "x")], 1u64)
            .sample(&[("k", "y")], 2u64);
        w.gauge("b", "B level.", 0.5);
        assert!(w.errors().is_empty(), "{:?}", w.errors());
        assert_eq!(
            w.finish(),
            "# HELP a_total A things.\n# TYPE a_total counter\na_total{k=\"x\"} 1\n\
             a_total{k=\"y\"} 2\n# HELP b B level.\n# TYPE b gauge\nb 0.5\n"
        );
    }

    #[test]
    fn escapes_label_values_and_help() {
        let mut w = MetricsWriter::new();
        w.family("g", "line one\nback\\slash", MetricType::Gauge)
            .sample(&[("v", "a\"b\\c\nd")], 1u64);
        assert_eq!(
            w.finish(),
            "# HELP g line one\\nback\\\\slash\n# TYPE g gauge\ng{v=\"a\\\"b\\\\c\\nd\"} 1\n"
        );
    }

    #[test]
    fn formats_special_floats() {
        let mut w = MetricsWriter::new();
        let mut f = w.family("g", "G.", MetricType::Gauge);
        f.sample(&[("i", "1")], f64::NAN)
            .sample(&[("i", "2")], f64::INFINITY)
            .sample(&[("i", "3")], f64::NEG_INFINITY)
            .sample(&[("i", "4")], 1e-7);
        let text = w.finish();
        for want in [
            "g{i=\"1\"} NaN\n",
            "g{i=\"2\"} +Inf\n",
            "g{i=\"3\"} -Inf\n",
            "g{i=\"4\"} 0.0000001\n",
        ] {
            assert!(text.contains(want), "{want:?} not in {text}");
        }
    }

    #[test]
    fn refuses_what_promtool_would_refuse() {
        let mut w = MetricsWriter::new();
        w.counter("no_suffix", "Counter without _total.", 1u64);
        w.gauge("gauge_total", "Gauge with _total.", 1u64);
        w.gauge("bad-name", "Dash.", 1u64);
        w.gauge("nohelp", " ", 1u64);
        w.gauge("twice", "Once.", 1u64);
        w.gauge("twice", "Twice.", 2u64);
        w.family("labels", "Labels.", MetricType::Gauge)
            .sample(&[("__reserved", "x")], 1u64)
            .sample(&[("a", "1"), ("a", "2")], 1u64)
            .sample(&[("a", "1")], 1u64)
            .sample(&[("a", "1")], 2u64);
        w.family("h_seconds", "H.", MetricType::Histogram)
            .sample(&[], 1u64)
            .histogram(&[("le", "1")], &[], 0.0, 0)
            .histogram(&[("k", "down")], &[(1.0, 5), (2.0, 4)], 1.0, 5)
            .histogram(&[("k", "over")], &[(1.0, 6)], 1.0, 5)
            .histogram(&[("k", "order")], &[(2.0, 1), (1.0, 1)], 1.0, 5);
        assert_eq!(w.errors().len(), 13, "{:#?}", w.errors());
        let text = w.finish();
        assert_eq!(
            text,
            "# HELP twice Once.\n# TYPE twice gauge\ntwice 1\n\
             # HELP labels Labels.\n# TYPE labels gauge\nlabels{a=\"1\"} 1\n\
             # HELP h_seconds H.\n# TYPE h_seconds histogram\n"
        );
    }

    #[test]
    fn histogram_adds_inf_sum_and_count() {
        let mut w = MetricsWriter::new();
        w.family("h_seconds", "H.", MetricType::Histogram)
            .histogram(&[("s", "x")], &[(0.5, 1), (1.0, 3)], 2.25, 4)
            .histogram(&[], &[], 0.0, 0);
        assert!(w.errors().is_empty(), "{:?}", w.errors());
        assert_eq!(
            w.finish(),
            "# HELP h_seconds H.\n# TYPE h_seconds histogram\n\
             h_seconds_bucket{s=\"x\",le=\"0.5\"} 1\nh_seconds_bucket{s=\"x\",le=\"1\"} 3\n\
             h_seconds_bucket{s=\"x\",le=\"+Inf\"} 4\nh_seconds_sum{s=\"x\"} 2.25\n\
             h_seconds_count{s=\"x\"} 4\n\
             h_seconds_bucket{le=\"+Inf\"} 0\nh_seconds_sum 0\nh_seconds_count 0\n"
        );
    }

    #[test]
    fn latency_buckets_are_cumulative_and_capped() {
        let s = LatencySummary {
            count: 5,
            buckets: vec![1, 0, 3, 9],
            ..Default::default()
        };
        let b = latency_buckets(&s);
        assert_eq!(
            b.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
            vec![1, 1, 3, 5]
        );
        assert_eq!(b[0].0, LATENCY_BUCKETS_SECONDS[0]);
        assert!(latency_buckets(&LatencySummary::default()).is_empty());
    }

    #[test]
    fn repeated_names_get_ids() {
        let names = unique_names([("a", 1), ("b", 2), ("a", 3)].into_iter());
        assert_eq!(names, vec!["a#1", "b", "a#3"]);
    }
}
