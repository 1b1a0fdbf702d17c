//! A token bucket per source address for the join port: it answers
//! anyone who can finish a TLS handshake, so a flood must not turn into
//! an unbounded stream of quorum reads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Calls a source may make per second, sustained.
pub const RATE_PER_SEC: f64 = 10.0;
/// Calls a source may make at once (a few joiners behind one address).
pub const BURST: f64 = 20.0;
/// Sources tracked at most; past this, idle ones are forgotten and, if
/// all are busy, a new source is refused (memory stays bounded).
pub const MAX_SOURCES: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Limiter {
    rate: f64,
    burst: f64,
    max_sources: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new(RATE_PER_SEC, BURST, MAX_SOURCES)
    }
}

impl Limiter {
    pub fn new(rate: f64, burst: f64, max_sources: usize) -> Self {
        Self {
            rate,
            burst,
            max_sources,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call from `source`'s bucket; false when it is empty.
    pub fn allow(&self, source: IpAddr, now: Instant) -> bool {
        let key = source_key(source);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= self.max_sources {
            // Full buckets carry no state worth keeping.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| refill(b, now, rate, burst) < burst);
            if buckets.len() >= self.max_sources {
                return false;
            }
        }
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        if refill(b, now, self.rate, self.burst) < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }
}

fn refill(b: &mut Bucket, now: Instant, rate: f64, burst: f64) -> f64 {
    let secs = now.saturating_duration_since(b.at).as_secs_f64();
    b.tokens = (b.tokens + secs * rate).min(burst);
    b.at = now;
    b.tokens
}

/// An IPv6 source is its /64: one host commonly holds a whole /64, so
/// per-address buckets would not limit it.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let l = Limiter::new(10.0, 20.0, 100);
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        assert_eq!((0..30).filter(|_| l.allow(a, t0)).count(), 20);
        // Another source is not affected.
        assert!(l.allow(ip("10.0.0.2"), t0));
        // 10/s: one more call after 100 ms, not two.
        let t1 = t0 + Duration::from_millis(100);
        assert!(l.allow(a, t1));
        assert!(!l.allow(a, t1));
        // Refill stops at the burst.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..30).filter(|_| l.allow(a, t2)).count(), 20);
    }

    #[test]
    fn an_ipv6_host_is_limited_by_its_prefix() {
        let l = Limiter::new(10.0, 2.0, 100);
        let t0 = Instant::now();
        assert!(l.allow(ip("2001:db8::1"), t0));
        assert!(l.allow(ip("2001:db8::2"), t0));
        assert!(!l.allow(ip("2001:db8::3"), t0));
        assert!(l.allow(ip("2001:db8:0:1::1"), t0));
        assert!(l.allow(ip("::ffff:10.0.0.1"), t0));
        assert!(l.allow(ip("10.0.0.1"), t0));
        assert!(!l.allow(ip("10.0.0.1"), t0));
    }

    #[test]
    fn memory_stays_bounded_and_idle_sources_are_forgotten() {
        let l = Limiter::new(10.0, 2.0, 3);
        let t0 = Instant::now();
        for i in 1..=3 {
            assert!(l.allow(ip(&format!("10.0.0.{i}")), t0));
        }
        // All three are busy: a fourth source is refused.
        assert!(!l.allow(ip("10.0.0.4"), t0));
        // Once they are idle (full again), they make room.
        let later = t0 + Duration::from_secs(1);
        assert!(l.allow(ip("10.0.0.4"), later));
        assert!(l.buckets.lock().expect("lock").len() <= 3);
    }
}
