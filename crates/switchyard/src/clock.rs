//! Time behind a trait, so that tests and replays can drive it.
//!
//! Event timestamps are [`Timestamp`]s: nanoseconds since the Unix epoch. The bus stamps
//! every envelope with the time of its [`Clock`]. [`LiveClock`] reads a TSC-based clock
//! (`quanta`) anchored to the system's wall clock once, so a timestamp costs a few
//! nanoseconds rather than a system call; [`ManualClock`] is set and advanced by hand
//! (tests, replays driven by recorded timestamps).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time: nanoseconds since the Unix epoch (UTC).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The Unix epoch.
    pub const ZERO: Timestamp = Timestamp(0);

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// From microseconds since the epoch (saturating).
    pub const fn from_micros(micros: u64) -> Self {
        Timestamp(micros.saturating_mul(1_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with nanoseconds, e.g. `2020-02-22T00:00:01.096000000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000_000;
        let nanos = self.0 % 1_000_000_000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A source of timestamps. Implementations must be cheap: the bus calls [`Clock::now`]
/// once per published event.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The wall clock, read through the CPU's time-stamp counter.
///
/// Anchored to [`SystemTime`] when created; afterwards it advances monotonically (it does
/// not follow later adjustments of the system clock, which is what event ordering needs).
#[derive(Clone)]
pub struct LiveClock {
    clock: quanta::Clock,
    anchor_raw: u64,
    anchor_nanos: u64,
}

impl LiveClock {
    /// A live clock anchored to the system time now.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let anchor_raw = clock.raw();
        let anchor_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        LiveClock {
            clock,
            anchor_raw,
            anchor_nanos,
        }
    }
}

impl Default for LiveClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LiveClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveClock")
            .field("now", &self.now())
            .finish()
    }
}

impl Clock for LiveClock {
    #[inline]
    fn now(&self) -> Timestamp {
        let raw = self.clock.raw();
        Timestamp(self.anchor_nanos + self.clock.delta_as_nanos(self.anchor_raw, raw))
    }
}

/// A clock that moves only when told to: for tests and for replays that drive time from
/// recorded timestamps. Cloning shares the same time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            nanos: Arc::new(AtomicU64::new(start.0)),
        }
    }

    /// Set the time. Going backwards is allowed (a test may want it); replays only move on.
    pub fn set(&self, t: Timestamp) {
        self.nanos.store(t.0, Ordering::Release);
    }

    /// Move the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.nanos.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::AcqRel,
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.nanos.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_rfc3339_utc() {
        // 1582329601096000 µs is the first quote of the BTCUSDT test file.
        let t = Timestamp::from_micros(1_582_329_601_096_000);
        assert_eq!(t.to_string(), "2020-02-22T00:00:01.096000000Z");
        assert_eq!(
            Timestamp::ZERO.to_string(),
            "1970-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn live_clock_is_monotonic_and_near_system_time() {
        let c = LiveClock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(
            sys.abs_diff(b.0) < 5_000_000_000,
            "live clock drifted: {b:?} vs {sys}"
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(10));
        assert_eq!(c.now(), Timestamp(10));
        c.advance(Duration::from_nanos(5));
        assert_eq!(c.clone().now(), Timestamp(15));
        c.set(Timestamp(3));
        assert_eq!(c.now(), Timestamp(3));
    }
}
