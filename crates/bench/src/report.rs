//! Medians, per-round ratios and the printed table.
//!
//! The machine's speed drifts between rounds (±15–20% on the 2-core machine this was written
//! on), so a ratio is taken between two targets measured within the same round, and the
//! median of those per-round ratios is reported, never the ratio of two medians.

use std::fmt::Write as _;

use serde::Serialize;

pub const DIRECT: &str = "direct";
pub const NGINX: &str = "nginx";

/// One measurement of one target at one concurrency. Latencies in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// Responses that were not 2xx/3xx.
    pub non_success: u64,
    /// Socket errors, timeouts, failed requests.
    pub errors: u64,
}

/// Every round's sample of one target at one concurrency (`None`: that run failed).
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub target: String,
    pub connections: usize,
    pub rounds: Vec<Option<Sample>>,
}

/// A line of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub target: String,
    pub connections: usize,
    /// Rounds with a sample.
    pub runs: usize,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Median over rounds of this target's req/s ÷ nginx's in the same round (Portico targets).
    pub vs_nginx: Option<f64>,
    /// The middle half of those per-round ratios (first and third quartile): how far a round
    /// can stray from the median on this machine.
    pub vs_nginx_middle: Option<(f64, f64)>,
    /// Median over rounds of req/s ÷ direct's in the same round (every target but direct).
    pub vs_direct: Option<f64>,
    /// Median over rounds of p50 − direct's p50 in the same round, in ms.
    pub added_p50_ms: Option<f64>,
    /// Median over rounds of p99 − direct's p99 in the same round, in ms.
    pub added_p99_ms: Option<f64>,
    pub non_success: u64,
    pub errors: u64,
}

/// The median; the mean of the two middle values for an even count; `None` when empty.
/// NaNs are ignored.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 })
}

/// The first and third quartile (nearest rank); `None` when empty. NaNs are ignored.
pub fn quartiles(values: &[f64]) -> Option<(f64, f64)> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len() - 1;
    Some((sorted[last / 4], sorted[(3 * last).div_ceil(4)]))
}

/// `f(this, reference)` in every round where both have a sample.
fn per_round_values(this: &Series, reference: &Series, f: impl Fn(&Sample, &Sample) -> f64) -> Vec<f64> {
    this.rounds.iter().zip(&reference.rounds).filter_map(|(a, b)| Some(f(a.as_ref()?, b.as_ref()?))).collect()
}

/// Median over the rounds where both have a sample of `f(this, reference)`.
fn per_round(this: &Series, reference: &Series, f: impl Fn(&Sample, &Sample) -> f64) -> Option<f64> {
    median(&per_round_values(this, reference, f))
}

/// One row per series, in the order given; series with no sample at all are left out.
pub fn summarize(series: &[Series]) -> Vec<Row> {
    let find = |target: &str, connections: usize| {
        series
            .iter()
            .find(|s| s.target == target && s.connections == connections && s.rounds.iter().any(Option::is_some))
    };
    let mut rows = Vec::new();
    for s in series {
        let samples: Vec<&Sample> = s.rounds.iter().flatten().collect();
        if samples.is_empty() {
            continue;
        }
        let of = |f: fn(&Sample) -> f64| median(&samples.iter().map(|x| f(x)).collect::<Vec<_>>()).unwrap_or(f64::NAN);
        let direct = find(DIRECT, s.connections).filter(|_| s.target != DIRECT);
        let nginx = find(NGINX, s.connections).filter(|_| s.target != DIRECT && s.target != NGINX);
        rows.push(Row {
            target: s.target.clone(),
            connections: s.connections,
            runs: samples.len(),
            requests_per_sec: of(|x| x.requests_per_sec),
            p50_ms: of(|x| x.p50_ms),
            p99_ms: of(|x| x.p99_ms),
            vs_nginx: nginx.and_then(|n| per_round(s, n, |a, b| a.requests_per_sec / b.requests_per_sec)),
            vs_nginx_middle: nginx
                .and_then(|n| quartiles(&per_round_values(s, n, |a, b| a.requests_per_sec / b.requests_per_sec))),
            vs_direct: direct.and_then(|d| per_round(s, d, |a, b| a.requests_per_sec / b.requests_per_sec)),
            added_p50_ms: direct.and_then(|d| per_round(s, d, |a, b| a.p50_ms - b.p50_ms)),
            added_p99_ms: direct.and_then(|d| per_round(s, d, |a, b| a.p99_ms - b.p99_ms)),
            non_success: samples.iter().map(|x| x.non_success).sum(),
            errors: samples.iter().map(|x| x.errors).sum(),
        });
    }
    rows
}

/// The table, one line per row, a blank line between concurrencies.
pub fn render_table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5}  {:<22} {:>4} {:>10} {:>8} {:>8} {:>9} {:>9} {:>11} {:>8}",
        "conns", "target", "runs", "req/s", "p50 ms", "p99 ms", "÷ nginx", "÷ direct", "+p99 ms", "errors"
    );
    let ratio = |r: Option<f64>| r.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "–".to_owned());
    let mut last = None;
    for row in rows {
        if last.is_some_and(|c| c != row.connections) {
            out.push('\n');
        }
        last = Some(row.connections);
        let errors = row.non_success + row.errors;
        let _ = writeln!(
            out,
            "{:>5}  {:<22} {:>4} {:>10.0} {:>8.3} {:>8.3} {:>9} {:>9} {:>11} {:>8}",
            row.connections,
            row.target,
            row.runs,
            row.requests_per_sec,
            row.p50_ms,
            row.p99_ms,
            ratio(row.vs_nginx),
            ratio(row.vs_direct),
            row.added_p99_ms.map(|v| format!("{v:+.3}")).unwrap_or_else(|| "–".to_owned()),
            errors
        );
    }
    out
}

/// The fixed-rate table: latencies and what each target adds to direct's.
pub fn render_fixed_rate_table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>4} {:>10} {:>8} {:>8} {:>11} {:>11} {:>8}",
        "target", "runs", "req/s", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "errors"
    );
    let added = |v: Option<f64>| v.map(|v| format!("{v:+.3}")).unwrap_or_else(|| "–".to_owned());
    for row in rows {
        let _ = writeln!(
            out,
            "{:<22} {:>4} {:>10.0} {:>8.3} {:>8.3} {:>11} {:>11} {:>8}",
            row.target,
            row.runs,
            row.requests_per_sec,
            row.p50_ms,
            row.p99_ms,
            added(row.added_p50_ms),
            added(row.added_p99_ms),
            row.non_success + row.errors
        );
    }
    out
}

/// The two targets, checked on the API-key header case: throughput ≥ 1.0× nginx (at
/// every concurrency measured) and added p99 over direct < 1 ms at 64 connections, both at
/// saturation and, where it was measured, at the fixed rate (`(rate, rows)`).
pub fn render_goals(rows: &[Row], fixed: Option<(f64, &[Row])>, target: &str) -> String {
    let mut out = String::new();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut any = false;
    for row in rows.iter().filter(|r| r.target == target) {
        if let Some(ratio) = row.vs_nginx {
            any = true;
            let middle = row
                .vs_nginx_middle
                .map(|(low, high)| format!(", middle half of the rounds {low:.2}–{high:.2}×"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {target} at {} conns: throughput {ratio:.2}× nginx{middle} (goal ≥ 1.00×): {}",
                row.connections,
                verdict(ratio >= 1.0)
            );
        }
        if row.connections == 64
            && let Some(added) = row.added_p99_ms
        {
            any = true;
            let _ = writeln!(
                out,
                "  {target} at 64 conns, saturated: p99 {added:+.3} ms over direct (goal < 1 ms): {}",
                verdict(added < 1.0)
            );
        }
    }
    let fixed_rows = fixed.into_iter().flat_map(|(rate, rows)| rows.iter().map(move |row| (rate, row)));
    for (rate, row) in fixed_rows.filter(|(_, r)| r.target == target && r.connections == 64) {
        if let Some(added) = row.added_p99_ms {
            any = true;
            let _ = writeln!(
                out,
                "  {target} at 64 conns, {rate:.0} req/s: p99 {added:+.3} ms over direct (goal < 1 ms): {}",
                verdict(added < 1.0)
            );
        }
    }
    if !any {
        let _ = writeln!(out, "  {target}: not measured");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_by_nearest_rank() {
        assert_eq!(quartiles(&[]), None);
        assert_eq!(quartiles(&[2.0]), Some((2.0, 2.0)));
        assert_eq!(quartiles(&[5.0, 1.0, 4.0, 2.0, 3.0]), Some((2.0, 4.0)));
        assert_eq!(quartiles(&[9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0]), Some((3.0, 7.0)));
        assert_eq!(quartiles(&[f64::NAN, 1.0, 3.0]), Some((1.0, 3.0)));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 2.0]), Some(2.0));
    }
}
