//! Rate limits for background work (scrub, repair): a pacer that spaces
//! work so bytes go by at no more than a given rate, with no bursts after
//! idle time (an idle stretch earns no credit).

use std::time::{Duration, Instant};

/// 1 MB, the unit of the rate flags (decimal, like disk vendors and `dd`).
pub const MB: f64 = 1_000_000.0;
/// The smallest rate a flag may set, in MB/s (0 aside, which means
/// unlimited or automatic): anything slower is a typo, not a limit.
pub const MIN_RATE_MB: f64 = 0.01;

/// Parses a rate flag in MB/s: 0, or a finite number >= [`MIN_RATE_MB`].
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        // abs: "-0" is 0.
        Ok(r) if r == 0.0 || (r.is_finite() && r >= MIN_RATE_MB) => Ok(r.abs()),
        _ => Err(format!(
            "{s:?} is not a rate in MB/s (0, or a number >= {MIN_RATE_MB})"
        )),
    }
}

/// Paces byte counts to `bytes_per_sec`; a rate of 0 (or less) is unlimited.
#[derive(Debug)]
pub struct Pacer {
    bytes_per_sec: f64,
    /// When the bytes accounted so far may be done, as time since `origin`.
    due: Duration,
    origin: Instant,
}

impl Pacer {
    pub fn new(bytes_per_sec: f64) -> Self {
        Self {
            bytes_per_sec,
            due: Duration::ZERO,
            origin: Instant::now(),
        }
    }

    /// How long to wait after `bytes` more bytes, `now` being the time
    /// since the pacer's origin. Pure, so the maths is testable.
    pub fn delay_at(&mut self, now: Duration, bytes: u64) -> Duration {
        if !limited(self.bytes_per_sec) {
            return Duration::ZERO;
        }
        // Time behind schedule is forgiven, not banked as a burst.
        let start = self.due.max(now);
        // Saturates rather than panics on a rate too small for a Duration.
        let cost =
            Duration::try_from_secs_f64(bytes as f64 / self.bytes_per_sec).unwrap_or(Duration::MAX);
        self.due = start.saturating_add(cost);
        self.due.saturating_sub(now)
    }

    /// Accounts `bytes` and sleeps as long as the rate requires.
    pub async fn pace(&mut self, bytes: u64) {
        let wait = self.delay_at(self.origin.elapsed(), bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

fn limited(rate: f64) -> bool {
    rate.is_finite() && rate > 0.0
}

/// The scrub rate in bytes/s: `flag_mb` MB/s when set (> 0), else enough
/// to cover `capacity` bytes once a week, never below 1 MB/s.
pub fn scrub_rate(flag_mb: f64, capacity: u64) -> f64 {
    if limited(flag_mb) {
        return flag_mb * MB;
    }
    const WEEK_SECS: f64 = 7.0 * 24.0 * 3600.0;
    (capacity as f64 / WEEK_SECS).max(MB)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(f64) -> Duration = Duration::from_secs_f64;

    #[test]
    fn pacing_spaces_bytes_at_the_rate() {
        let mut p = Pacer::new(10.0 * MB);
        // 10 MB at 10 MB/s, all at t=0: the first waits 1 s, then 2 s.
        assert_eq!(p.delay_at(S(0.0), 10_000_000), S(1.0));
        assert_eq!(p.delay_at(S(0.0), 10_000_000), S(2.0));
        // Having slept until due, the next MB costs 0.1 s.
        assert_eq!(p.delay_at(S(2.0), 1_000_000), S(0.1));
    }

    #[test]
    fn idle_time_earns_no_burst() {
        let mut p = Pacer::new(1.0 * MB);
        assert_eq!(p.delay_at(S(0.0), 1_000_000), S(1.0));
        // An hour idle: the next MB still waits its full second.
        assert_eq!(p.delay_at(S(3600.0), 1_000_000), S(1.0));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut p = Pacer::new(rate);
            assert_eq!(p.delay_at(S(0.0), u64::MAX), Duration::ZERO);
        }
    }

    #[test]
    fn a_tiny_rate_waits_long_and_never_panics() {
        let mut p = Pacer::new(1e-300);
        assert_eq!(p.delay_at(S(0.0), 1), Duration::MAX);
        // Already at the end of time: still no overflow.
        assert_eq!(p.delay_at(S(1.0), u64::MAX), Duration::MAX - S(1.0));
    }

    #[test]
    fn rate_flags_are_zero_or_at_least_the_minimum() {
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert_eq!(parse_rate("-0"), Ok(0.0));
        assert_eq!(parse_rate("0.01"), Ok(0.01));
        assert_eq!(parse_rate("64"), Ok(64.0));
        for bad in ["1e-300", "0.009", "-1", "NaN", "inf", "", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn auto_scrub_rate_covers_the_disk_weekly_with_a_floor() {
        // A flag wins.
        assert_eq!(scrub_rate(200.0, 0), 200.0 * MB);
        // 10 TB a week: 16.5 MB/s.
        let r = scrub_rate(0.0, 10_000_000_000_000);
        assert!((r - 10e12 / 604_800.0).abs() < 1.0, "{r}");
        assert!(r > 16.5 * MB && r < 16.6 * MB, "{r}");
        // A small disk: never below 1 MB/s.
        assert_eq!(scrub_rate(0.0, 1_000_000_000), MB);
        assert_eq!(scrub_rate(0.0, 0), MB);
    }
}
