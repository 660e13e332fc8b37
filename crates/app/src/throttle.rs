//! Failed authentications, throttled per source address: a key that is not in memory costs a
//! store query, so a source that keeps presenting unknown keys (guessing, or a flood meant to
//! load the store) is refused without one once it has failed too often. Known keys are never
//! throttled: they are answered from memory before this is asked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A source may fail this many times as many as its rate at once (the bucket's size).
const BURST_SECONDS: f64 = 10.0;
/// Sources remembered at most; past that, those that have earned back all their failures are
/// forgotten (they would start full anyway).
const MOST_SOURCES: usize = 65_536;

/// The failed authentications of each source address.
pub struct AuthFailures {
    /// Failures a source earns back per second; 0: no limit.
    per_second: f64,
    sources: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures::new(DEFAULT_PER_SECOND)
    }
}

/// The default rate: 5 failures a second, 50 at once.
pub const DEFAULT_PER_SECOND: f64 = 5.0;

#[derive(Clone, Copy)]
struct Bucket {
    /// Failures still allowed, as of `at`.
    left: f64,
    at: Instant,
}

/// The part of an address that names a source: an IPv6 client picks any address of its /64.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

impl AuthFailures {
    /// A source may fail `per_second` times a second, and ten times as many at once; 0 turns
    /// the limit off.
    pub fn new(per_second: f64) -> Self {
        AuthFailures { per_second: per_second.max(0.0), sources: Mutex::default() }
    }

    fn burst(&self) -> f64 {
        self.per_second * BURST_SECONDS
    }

    /// `bucket` as of `now`, with what it earned back since.
    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let earned = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second;
        Bucket { left: (bucket.left + earned).min(self.burst()), at: now }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` when `source` has failed too often to try an unknown key now.
    pub fn check(&self, source: IpAddr) -> Result<(), Duration> {
        if self.per_second == 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let Some(bucket) = self.lock().get(&source_of(source)).map(|b| self.refilled(*b, now)) else { return Ok(()) };
        if bucket.left >= 1.0 { Ok(()) } else { Err(Duration::from_secs_f64((1.0 - bucket.left) / self.per_second)) }
    }

    /// Counts a failed authentication of `source`.
    pub fn failed(&self, source: IpAddr) {
        if self.per_second == 0.0 {
            return;
        }
        let now = Instant::now();
        let burst = self.burst();
        let mut sources = self.lock();
        if sources.len() >= MOST_SOURCES {
            sources.retain(|_, bucket| self.refilled(*bucket, now).left < burst);
        }
        let bucket = sources.entry(source_of(source)).or_insert(Bucket { left: burst, at: now });
        *bucket = self.refilled(*bucket, now);
        bucket.left = (bucket.left - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_refused_after_its_burst_and_others_are_not() {
        let failures = AuthFailures::new(2.0);
        let guesser: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..20 {
            assert!(failures.check(guesser).is_ok());
            failures.failed(guesser);
        }
        let wait = failures.check(guesser).expect_err("refused after its burst");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(failures.check("203.0.113.8".parse().unwrap()).is_ok(), "another source is not");
        let off = AuthFailures::new(0.0);
        for _ in 0..1000 {
            off.failed(guesser);
        }
        assert!(off.check(guesser).is_ok(), "0 turns the limit off");
    }

    #[test]
    fn an_ipv6_source_is_its_64() {
        let failures = AuthFailures::new(2.0);
        for i in 0..20u16 {
            failures.failed(IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, i, i, i)));
        }
        assert!(failures.check("2001:db8:1:2:ffff::1".parse().unwrap()).is_err());
        assert!(failures.check("2001:db8:1:3::1".parse().unwrap()).is_ok());
        for _ in 0..20 {
            failures.failed("::ffff:198.51.100.1".parse().unwrap());
        }
        assert!(failures.check("198.51.100.1".parse().unwrap()).is_err(), "a mapped address is its IPv4 one");
    }
}
