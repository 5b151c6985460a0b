//! [`BreakerConfig`]: when a breaker trips, how long it stays open, how it probes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::BreakerConfigError;

/// The most probe calls a half-open breaker may be configured to admit.
pub const MAX_HALF_OPEN_PROBES: u32 = 1_000;

/// The most calls a count-based sliding window may hold.
pub const MAX_WINDOW_CALLS: u32 = 100_000;

/// The sliding window over which failure and slow-call rates are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SlidingWindow {
    /// The last `calls` calls.
    Count {
        /// How many of the most recent calls the window holds (1 ..= 100 000).
        calls: u32,
    },
    /// The calls of the last `duration`, kept in [`TIME_WINDOW_BUCKETS`] buckets: a call
    /// leaves the window between `duration − duration/BUCKETS` and `duration` after it was
    /// recorded (memory stays constant whatever the call rate).
    Time {
        /// How far back the window reaches, e.g. `"10s"`.
        #[serde(with = "duration_format")]
        duration: Duration,
    },
}

/// The number of buckets a [`SlidingWindow::Time`] is split into.
pub const TIME_WINDOW_BUCKETS: u32 = 20;

/// Exponential backoff of the open duration on consecutive re-opens (a half-open probe
/// that fails re-opens the breaker for `open_duration × multiplier^n`, capped at `max`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Factor applied per consecutive re-open (≥ 1, finite).
    pub multiplier: f64,
    /// Upper bound of the open duration (≥ `open_duration`).
    #[serde(with = "duration_format")]
    pub max: Duration,
}

/// Configuration of a circuit breaker. Deserializable (unknown fields are rejected);
/// call [`BreakerConfig::validate`] (the breaker constructors do) before use.
///
/// Durations deserialize from a string with a unit (`"250ms"`, `"5s"`, `"1m"`, `"1h"`,
/// `"500us"`, `"10ns"`) or from an integer number of milliseconds.
///
/// At least one trip rule must be set: `consecutive_failures`,
/// `failure_rate_threshold`, or the slow-call pair (`slow_call_duration` +
/// `slow_call_rate_threshold`). Rate rules only apply once the window holds at least
/// `minimum_calls` calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Trip after this many consecutive failures (`None`: no such rule). Default 5.
    pub consecutive_failures: Option<u32>,
    /// The window over which rates are computed. Default: the last 100 calls.
    pub window: SlidingWindow,
    /// Trip when the failure rate in the window reaches this fraction (0 < x ≤ 1), e.g.
    /// `0.5`. Default `None`.
    pub failure_rate_threshold: Option<f64>,
    /// A successful call that took at least this long counts as slow. Default `None`.
    #[serde(with = "duration_format::option")]
    pub slow_call_duration: Option<Duration>,
    /// Trip when the slow-call rate in the window reaches this fraction (0 < x ≤ 1).
    /// Needs `slow_call_duration`. Default `None`.
    pub slow_call_rate_threshold: Option<f64>,
    /// Rate rules apply only when the window holds at least this many calls (≥ 1; not more
    /// than a count window's size). Default 10.
    pub minimum_calls: u32,
    /// A call that takes longer is cut off and counts as a failure (a timeout). Only the
    /// async [`Breaker`](super::Breaker) enforces it. Default `None`.
    #[serde(with = "duration_format::option")]
    pub call_timeout: Option<Duration>,
    /// How long the breaker stays open before it lets probe calls through. Default 30 s.
    #[serde(with = "duration_format")]
    pub open_duration: Duration,
    /// Backoff of the open duration on consecutive re-opens. Default `None` (the open
    /// duration never grows).
    pub backoff: Option<Backoff>,
    /// How many probe calls a half-open breaker admits (1 ..= 1000); it closes when all of
    /// them succeed. Default 1.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: Some(5),
            window: SlidingWindow::Count { calls: 100 },
            failure_rate_threshold: None,
            slow_call_duration: None,
            slow_call_rate_threshold: None,
            minimum_calls: 10,
            call_timeout: None,
            open_duration: Duration::from_secs(30),
            backoff: None,
            half_open_probes: 1,
        }
    }
}

fn invalid(field: &'static str, problem: impl Into<String>) -> BreakerConfigError {
    BreakerConfigError::Invalid {
        field,
        problem: problem.into(),
    }
}

fn check_rate(field: &'static str, rate: Option<f64>) -> Result<(), BreakerConfigError> {
    match rate {
        Some(r) if !(r.is_finite() && r > 0.0 && r <= 1.0) => Err(invalid(
            field,
            format!("must be a fraction in (0, 1], got {r}"),
        )),
        _ => Ok(()),
    }
}

impl BreakerConfig {
    /// Check the configuration; the error names the offending field.
    pub fn validate(&self) -> Result<(), BreakerConfigError> {
        if self.consecutive_failures == Some(0) {
            return Err(invalid("consecutive_failures", "must be at least 1"));
        }
        match self.window {
            SlidingWindow::Count { calls } if calls == 0 || calls > MAX_WINDOW_CALLS => {
                return Err(invalid(
                    "window.calls",
                    format!("must be in 1..={MAX_WINDOW_CALLS}, got {calls}"),
                ));
            }
            SlidingWindow::Count { calls } if self.minimum_calls > calls => {
                return Err(invalid(
                    "minimum_calls",
                    format!(
                        "{} exceeds the window's {calls} calls: the rate rules could never apply",
                        self.minimum_calls
                    ),
                ));
            }
            SlidingWindow::Time { duration }
                if duration.as_nanos() < u128::from(TIME_WINDOW_BUCKETS) =>
            {
                return Err(invalid(
                    "window.duration",
                    format!("must be at least {TIME_WINDOW_BUCKETS}ns"),
                ));
            }
            _ => {}
        }
        check_rate("failure_rate_threshold", self.failure_rate_threshold)?;
        check_rate("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        match (self.slow_call_duration, self.slow_call_rate_threshold) {
            (Some(d), _) if d.is_zero() => {
                return Err(invalid("slow_call_duration", "must be greater than zero"));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "slow_call_duration",
                    "must be set when slow_call_rate_threshold is",
                ));
            }
            (Some(_), None) => {
                return Err(invalid(
                    "slow_call_rate_threshold",
                    "must be set when slow_call_duration is",
                ));
            }
            _ => {}
        }
        if self.minimum_calls == 0 {
            return Err(invalid("minimum_calls", "must be at least 1"));
        }
        if self.call_timeout.is_some_and(|d| d.is_zero()) {
            return Err(invalid("call_timeout", "must be greater than zero"));
        }
        if self.open_duration.is_zero() {
            return Err(invalid("open_duration", "must be greater than zero"));
        }
        if let Some(b) = self.backoff {
            if !(b.multiplier.is_finite() && b.multiplier >= 1.0) {
                return Err(invalid(
                    "backoff.multiplier",
                    format!("must be finite and at least 1, got {}", b.multiplier),
                ));
            }
            if b.max < self.open_duration {
                return Err(invalid("backoff.max", "must be at least open_duration"));
            }
        }
        if self.half_open_probes == 0 || self.half_open_probes > MAX_HALF_OPEN_PROBES {
            return Err(invalid(
                "half_open_probes",
                format!(
                    "must be in 1..={MAX_HALF_OPEN_PROBES}, got {}",
                    self.half_open_probes
                ),
            ));
        }
        if self.consecutive_failures.is_none()
            && self.failure_rate_threshold.is_none()
            && self.slow_call_rate_threshold.is_none()
        {
            return Err(BreakerConfigError::NoTripRule);
        }
        Ok(())
    }

    /// The open duration after `reopens` consecutive re-opens (0 for a trip from closed):
    /// `open_duration × multiplier^reopens`, capped at `backoff.max`.
    pub fn open_duration_after(&self, reopens: u32) -> Duration {
        match self.backoff {
            None => self.open_duration,
            Some(b) => {
                let factor = b
                    .multiplier
                    .powi(i32::try_from(reopens).unwrap_or(i32::MAX));
                let secs = self.open_duration.as_secs_f64() * factor;
                if !secs.is_finite() || secs >= b.max.as_secs_f64() {
                    b.max
                } else {
                    Duration::from_secs_f64(secs).min(b.max)
                }
            }
        }
    }
}

/// Serde format for durations in configuration: a string with a unit (`"250ms"`, `"5s"`,
/// `"1.5s"`, `"2m"`, `"1h"`, `"500us"`, `"10ns"`) or an integer number of milliseconds.
/// Serializes to the shortest exact string form.
pub(crate) mod duration_format {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Parse `"250ms"`-style strings.
    pub(crate) fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration `{s}` has no unit (ns, us, ms, s, m, h)"))?;
        let (num, unit) = s.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("duration `{s}` does not start with a number"))?;
        let nanos_per_unit: f64 = match unit.trim() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" | "min" => 60e9,
            "h" => 3600e9,
            other => return Err(format!("duration `{s}` has an unknown unit `{other}`")),
        };
        let nanos = value * nanos_per_unit;
        if !nanos.is_finite() || nanos < 0.0 || nanos > u64::MAX as f64 {
            return Err(format!("duration `{s}` is out of range"));
        }
        Ok(Duration::from_nanos(nanos.round() as u64))
    }

    /// The shortest exact string for `d`.
    pub(crate) fn format(d: Duration) -> String {
        let n = d.as_nanos();
        if n == 0 {
            "0s".to_owned()
        } else if n % 1_000_000_000 == 0 {
            format!("{}s", n / 1_000_000_000)
        } else if n % 1_000_000 == 0 {
            format!("{}ms", n / 1_000_000)
        } else if n % 1_000 == 0 {
            format!("{}us", n / 1_000)
        } else {
            format!("{n}ns")
        }
    }

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"250ms\" or \"5s\", or an integer of milliseconds")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_millis(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_millis)
                .map_err(|_| E::custom("a duration cannot be negative"))
        }
    }

    /// The same format for `Option<Duration>` (`None` when absent or null).
    pub(crate) mod option {
        use std::fmt;
        use std::time::Duration;

        use serde::de::{self, Visitor};
        use serde::{Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&super::format(*d)),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            d.deserialize_option(OptionVisitor)
        }

        struct OptionVisitor;

        impl<'de> Visitor<'de> for OptionVisitor {
            type Value = Option<Duration>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an optional duration")
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                super::deserialize(d).map(Some)
            }

            // Self-describing formats that forward `deserialize_option` to
            // `deserialize_any` hand the bare value over.
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                super::DurationVisitor.visit_str(v).map(Some)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                super::DurationVisitor.visit_u64(v).map(Some)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                super::DurationVisitor.visit_i64(v).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as ValueError, MapDeserializer};

    #[test]
    fn default_is_valid() {
        BreakerConfig::default().validate().unwrap();
    }

    #[test]
    fn validate_names_the_field() {
        let cases: Vec<(BreakerConfig, &str)> = vec![
            (
                BreakerConfig {
                    consecutive_failures: Some(0),
                    ..Default::default()
                },
                "consecutive_failures",
            ),
            (
                BreakerConfig {
                    failure_rate_threshold: Some(1.5),
                    ..Default::default()
                },
                "failure_rate_threshold",
            ),
            (
                BreakerConfig {
                    slow_call_rate_threshold: Some(0.5),
                    ..Default::default()
                },
                "slow_call_duration",
            ),
            (
                BreakerConfig {
                    window: SlidingWindow::Count { calls: 5 },
                    ..Default::default()
                },
                "minimum_calls",
            ),
            (
                BreakerConfig {
                    half_open_probes: 0,
                    ..Default::default()
                },
                "half_open_probes",
            ),
            (
                BreakerConfig {
                    backoff: Some(Backoff {
                        multiplier: 0.5,
                        max: Duration::from_secs(60),
                    }),
                    ..Default::default()
                },
                "backoff.multiplier",
            ),
            (
                BreakerConfig {
                    backoff: Some(Backoff {
                        multiplier: 2.0,
                        max: Duration::from_secs(1),
                    }),
                    ..Default::default()
                },
                "backoff.max",
            ),
            (
                BreakerConfig {
                    open_duration: Duration::ZERO,
                    ..Default::default()
                },
                "open_duration",
            ),
        ];
        for (config, field) in cases {
            let err = config.validate().unwrap_err();
            assert!(
                matches!(&err, BreakerConfigError::Invalid { field: f, .. } if *f == field),
                "expected field {field}, got {err}"
            );
            assert!(err.to_string().contains(field), "{err}");
        }
        let none = BreakerConfig {
            consecutive_failures: None,
            ..Default::default()
        };
        assert!(matches!(
            none.validate(),
            Err(BreakerConfigError::NoTripRule)
        ));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let map = MapDeserializer::<_, ValueError>::new(vec![("bogus_field", ())].into_iter());
        let err = BreakerConfig::deserialize(map).unwrap_err();
        assert!(err.to_string().contains("bogus_field"), "{err}");
    }

    #[test]
    fn durations_parse_from_strings_and_millis() {
        let map = MapDeserializer::<_, ValueError>::new(
            vec![("open_duration", "1.5s"), ("call_timeout", "250ms")].into_iter(),
        );
        let c = BreakerConfig::deserialize(map).unwrap();
        assert_eq!(c.open_duration, Duration::from_millis(1500));
        assert_eq!(c.call_timeout, Some(Duration::from_millis(250)));
        let d: Duration =
            duration_format::deserialize(IntoDeserializer::<ValueError>::into_deserializer(42u64))
                .unwrap();
        assert_eq!(d, Duration::from_millis(42));
        assert!(duration_format::parse("5").is_err());
        assert!(duration_format::parse("5 parsecs").is_err());
        for s in ["1s", "250ms", "3us", "7ns", "2m", "1h"] {
            let d = duration_format::parse(s).unwrap();
            assert_eq!(
                duration_format::parse(&duration_format::format(d)).unwrap(),
                d
            );
        }
    }

    #[test]
    fn backoff_sequence_doubles_up_to_the_max() {
        let c = BreakerConfig {
            open_duration: Duration::from_secs(1),
            backoff: Some(Backoff {
                multiplier: 2.0,
                max: Duration::from_secs(10),
            }),
            ..Default::default()
        };
        let seq: Vec<u64> = (0..7).map(|n| c.open_duration_after(n).as_secs()).collect();
        assert_eq!(seq, vec![1, 2, 4, 8, 10, 10, 10]);
        assert_eq!(c.open_duration_after(u32::MAX), Duration::from_secs(10));
    }
}
