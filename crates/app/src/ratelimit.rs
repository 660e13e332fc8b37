//! Rate limits of calls, per API key and per tenant: token buckets whose burst is one second's
//! worth of requests. Off unless the operator or an admin sets one. A principal carries the
//! buckets that apply to it (shared by every principal of the same key or tenant), so a call
//! checks them without a lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One bucket: `per_second` requests a second, as many at once.
#[derive(Debug)]
pub struct RateLimit {
    /// What the `RateLimit-Policy` header calls it: `key` or `tenant`.
    pub name: &'static str,
    pub per_second: f64,
    state: Mutex<(f64, Instant)>,
}

/// The limits a principal's calls count against.
#[derive(Clone, Default, Debug)]
pub struct Limits {
    pub key: Option<Arc<RateLimit>>,
    pub tenant: Option<Arc<RateLimit>>,
}

/// Two principals' limits are the same when they are the same buckets.
impl PartialEq for Limits {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Option<Arc<RateLimit>>, b: &Option<Arc<RateLimit>>| match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same(&self.key, &other.key) && same(&self.tenant, &other.tenant)
    }
}

impl Eq for Limits {}

impl Limits {
    /// Counts one call against the key's limit, then the tenant's. A call the tenant's limit
    /// refuses has still used the key's token.
    pub fn take(&self) -> Result<(), Limited> {
        if let Some(key) = &self.key {
            key.take()?;
        }
        if let Some(tenant) = &self.tenant {
            tenant.take()?;
        }
        Ok(())
    }
}

/// The server's limits: the default rate of keys, the rate of each tenant, and their buckets.
pub struct ServerLimits {
    pub key_default: Option<f64>,
    pub tenant: Option<f64>,
    pub keys: Buckets,
    pub tenants: Buckets,
}

impl ServerLimits {
    pub fn new(key_default: Option<f64>, tenant: Option<f64>) -> Self {
        ServerLimits { key_default, tenant, keys: Buckets::new("key"), tenants: Buckets::new("tenant") }
    }
}

/// A call refused by a limit: which one, and how long until one more is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    pub name: &'static str,
    /// Requests per second (and at once) the limit allows.
    pub quota: f64,
    pub retry_after: Duration,
}

impl RateLimit {
    pub fn new(name: &'static str, per_second: f64) -> Self {
        RateLimit { name, per_second, state: Mutex::new((per_second, Instant::now())) }
    }

    /// Takes one request's token, or says how long until there is one.
    pub fn take(&self) -> Result<(), Limited> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (left, at) = *state;
        let left = (left + now.saturating_duration_since(at).as_secs_f64() * self.per_second).min(self.per_second);
        if left >= 1.0 {
            *state = (left - 1.0, now);
            Ok(())
        } else {
            *state = (left, now);
            Err(Limited {
                name: self.name,
                quota: self.per_second,
                retry_after: Duration::from_secs_f64((1.0 - left) / self.per_second),
            })
        }
    }
}

/// The buckets of keys or tenants, by id: every principal of one key (or tenant) gets the
/// same bucket, whenever and however often it is looked up.
pub struct Buckets {
    name: &'static str,
    buckets: Mutex<HashMap<Arc<str>, Arc<RateLimit>>>,
}

impl Buckets {
    pub fn new(name: &'static str) -> Self {
        Buckets { name, buckets: Mutex::default() }
    }

    /// The bucket of `id` for `per_second` (a new one when the rate changed); none without a
    /// rate.
    pub fn of(&self, id: &str, per_second: Option<f64>) -> Option<Arc<RateLimit>> {
        let per_second = per_second.filter(|rate| *rate > 0.0)?;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.get(id) {
            Some(bucket) if bucket.per_second == per_second => Some(bucket.clone()),
            _ => {
                let bucket = Arc::new(RateLimit::new(self.name, per_second));
                buckets.insert(id.into(), bucket.clone());
                Some(bucket)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_seconds_worth_then_the_rate() {
        let limit = RateLimit::new("key", 5.0);
        for _ in 0..5 {
            limit.take().expect("within the burst");
        }
        let refused = limit.take().expect_err("past the burst");
        assert_eq!((refused.name, refused.quota), ("key", 5.0));
        assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_millis(200));
        std::thread::sleep(Duration::from_millis(210));
        limit.take().expect("one more after a fifth of a second");
    }

    #[test]
    fn every_lookup_of_an_id_shares_one_bucket() {
        let buckets = Buckets::new("key");
        let first = buckets.of("k1", Some(1.0)).unwrap();
        let again = buckets.of("k1", Some(1.0)).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        first.take().unwrap();
        assert!(again.take().is_err(), "the same bucket");
        assert!(buckets.of("k2", Some(1.0)).unwrap().take().is_ok(), "another key has its own");
        assert!(buckets.of("k1", None).is_none() && buckets.of("k1", Some(0.0)).is_none());
        assert!(buckets.of("k1", Some(2.0)).unwrap().take().is_ok(), "a new rate, a new bucket");
    }
}
