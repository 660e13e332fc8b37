//! Requests, errors and latency per connector and outcome, in Prometheus' text format.
//!
//! Each connector's counters are atomics reached through the prepared connection, so counting
//! a call takes no lock and no map lookup.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The backend answered with this status.
    Status(u16),
    /// The backend could not be reached (connection refused, DNS, TLS).
    Unreachable,
    /// The backend did not answer in time.
    Timeout,
    /// Portico refused to send the call (host not allowed, bad request, …).
    Refused,
}

const OUTCOMES: [&str; 8] = ["1xx", "2xx", "3xx", "4xx", "5xx", "unreachable", "timeout", "refused"];
/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

impl Outcome {
    fn index(self) -> usize {
        match self {
            Outcome::Status(s) => usize::from((s / 100).clamp(1, 5)) - 1,
            Outcome::Unreachable => 5,
            Outcome::Timeout => 6,
            Outcome::Refused => 7,
        }
    }
}

/// One thread's counters, on cache lines of their own so that worker threads on different
/// cores never write to the same line.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    requests: [AtomicU64; OUTCOMES.len()],
    /// Each slot counts the calls whose latency fell in it (cumulative only when rendered).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_micros: AtomicU64,
}

const SHARDS: usize = 8;

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        (NEXT.fetch_add(1, Relaxed) % SHARDS as u64) as usize
    };
}

#[derive(Default)]
pub struct ConnectorMetrics {
    name: String,
    shards: [Shard; SHARDS],
}

impl ConnectorMetrics {
    pub fn record(&self, outcome: Outcome, latency: Duration) {
        let shard = &self.shards[SHARD.with(|s| *s)];
        shard.requests[outcome.index()].fetch_add(1, Relaxed);
        let seconds = latency.as_secs_f64();
        let slot = BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS.len());
        shard.buckets[slot].fetch_add(1, Relaxed);
        shard.latency_micros.fetch_add(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn requests(&self, outcome: Outcome) -> u64 {
        self.sum(|s| &s.requests[outcome.index()])
    }

    fn sum(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| counter(s).load(Relaxed)).sum()
    }
}

/// Every connector's metrics.
#[derive(Default)]
pub struct Metrics {
    by_connector: RwLock<HashMap<String, Arc<ConnectorMetrics>>>,
}

impl Metrics {
    /// The counters of a connector, created on first use.
    pub fn connector(&self, id: &str, name: &str) -> Arc<ConnectorMetrics> {
        if let Some(m) = self.by_connector.read().unwrap_or_else(|e| e.into_inner()).get(id) {
            return m.clone();
        }
        let mut map = self.by_connector.write().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_owned())
            .or_insert_with(|| Arc::new(ConnectorMetrics { name: name.to_owned(), ..ConnectorMetrics::default() }))
            .clone()
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let map = self.by_connector.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<&String> = map.keys().collect();
        ids.sort();
        let mut out = String::new();
        out.push_str("# HELP portico_requests_total Calls through connections, by connector and outcome.\n");
        out.push_str("# TYPE portico_requests_total counter\n");
        for id in &ids {
            let m = &map[*id];
            for (i, outcome) in OUTCOMES.iter().enumerate() {
                let n = m.sum(|s| &s.requests[i]);
                if n > 0 {
                    let _ =
                        writeln!(out, "portico_requests_total{{{},outcome=\"{outcome}\"}} {n}", labels(id, &m.name));
                }
            }
        }
        out.push_str("# HELP portico_request_errors_total Calls that got no answer from the backend.\n");
        out.push_str("# TYPE portico_request_errors_total counter\n");
        for id in &ids {
            let m = &map[*id];
            let errors: u64 = (5..OUTCOMES.len()).map(|i| m.sum(|s| &s.requests[i])).sum();
            let _ = writeln!(out, "portico_request_errors_total{{{}}} {errors}", labels(id, &m.name));
        }
        out.push_str("# HELP portico_request_duration_seconds Time from receiving a call to the backend's answer.\n");
        out.push_str("# TYPE portico_request_duration_seconds histogram\n");
        for id in &ids {
            let m = &map[*id];
            let labels = labels(id, &m.name);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += m.sum(|s| &s.buckets[i]);
                let _ =
                    writeln!(out, "portico_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            cumulative += m.sum(|s| &s.buckets[BUCKETS.len()]);
            let _ = writeln!(out, "portico_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
            let sum = m.sum(|s| &s.latency_micros) as f64 / 1e6;
            let _ = writeln!(out, "portico_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "portico_request_duration_seconds_count{{{labels}}} {cumulative}");
        }
        out
    }
}

fn labels(id: &str, name: &str) -> String {
    format!("connector=\"{}\",connector_name=\"{}\"", escape(id), escape(name))
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_outcome_and_renders_prometheus_text() {
        let metrics = Metrics::default();
        let m = metrics.connector("c1", "Weather \"API\"");
        m.record(Outcome::Status(200), Duration::from_micros(300));
        m.record(Outcome::Status(204), Duration::from_millis(3));
        m.record(Outcome::Status(503), Duration::from_millis(30));
        m.record(Outcome::Timeout, Duration::from_secs(10));
        assert!(Arc::ptr_eq(&m, &metrics.connector("c1", "ignored")));
        let text = metrics.render();
        let labels = "connector=\"c1\",connector_name=\"Weather \\\"API\\\"\"";
        assert!(text.contains(&format!("portico_requests_total{{{labels},outcome=\"2xx\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("portico_requests_total{{{labels},outcome=\"5xx\"}} 1\n")));
        assert!(text.contains(&format!("portico_requests_total{{{labels},outcome=\"timeout\"}} 1\n")));
        assert!(text.contains(&format!("portico_request_errors_total{{{labels}}} 1\n")));
        assert!(text.contains(&format!("portico_request_duration_seconds_bucket{{{labels},le=\"0.0005\"}} 1\n")));
        assert!(text.contains(&format!("portico_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 2\n")));
        assert!(text.contains(&format!("portico_request_duration_seconds_bucket{{{labels},le=\"5\"}} 3\n")));
        assert!(text.contains(&format!("portico_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 4\n")));
        assert!(text.contains(&format!("portico_request_duration_seconds_count{{{labels}}} 4\n")));
    }
}
