//! Reading wrk's output (`wrk --latency`, version 4.x).

use anyhow::{Context, bail};
use serde::Serialize;

/// What one wrk run reported. Latencies in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    /// Average latency over the threads (wrk's "Thread Stats" line).
    pub mean_ms: f64,
    pub max_ms: f64,
    /// From `--latency`'s distribution; `None` when run without it.
    pub p50_ms: Option<f64>,
    pub p75_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// "Non-2xx or 3xx responses".
    pub non_success: u64,
    /// connect + read + write + timeout socket errors.
    pub socket_errors: u64,
}

/// `694.51us`, `1.72ms`, `2.00s`, `1.02m`, `1.00h` → milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3600e3,
        _ => return None,
    };
    Some(value * factor)
}

/// `463302 requests in 5.00s, 65.83MB read`: the count and the seconds.
fn parse_total(line: &str) -> Option<(u64, f64)> {
    let (count, rest) = line.trim().split_once(" requests in ")?;
    let duration = rest.split(',').next()?;
    Some((count.trim().parse().ok()?, parse_duration_ms(duration)? / 1e3))
}

pub fn parse(output: &str) -> anyhow::Result<WrkResult> {
    let mut requests_per_sec = None;
    let mut total = None;
    let mut mean_ms = None;
    let mut max_ms = None;
    let mut percentiles: [Option<f64>; 4] = [None; 4];
    let mut in_distribution = false;
    let mut non_success = 0;
    let mut socket_errors = 0;
    for line in output.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Requests/sec:") {
            requests_per_sec = Some(rest.trim().parse::<f64>().with_context(|| format!("bad line {trimmed:?}"))?);
        } else if trimmed.starts_with("Latency Distribution") {
            in_distribution = true;
            continue;
        } else if let Some(rest) = trimmed.strip_prefix("Latency") {
            // Thread Stats: Latency  avg  stdev  max  +/-stdev
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() >= 3 {
                mean_ms = parse_duration_ms(fields[0]);
                max_ms = parse_duration_ms(fields[2]);
            }
        } else if let Some(rest) = trimmed.strip_prefix("Non-2xx or 3xx responses:") {
            non_success = rest.trim().parse().with_context(|| format!("bad line {trimmed:?}"))?;
        } else if let Some(rest) = trimmed.strip_prefix("Socket errors:") {
            // connect 0, read 0, write 0, timeout 0
            for part in rest.split(',') {
                if let Some(n) = part.split_whitespace().nth(1) {
                    socket_errors += n.parse::<u64>().with_context(|| format!("bad line {trimmed:?}"))?;
                }
            }
        } else if trimmed.contains(" requests in ") {
            total = parse_total(trimmed);
        }
        if in_distribution {
            match trimmed.split_once('%') {
                Some((p, value)) if p.trim().parse::<u32>().is_ok() => {
                    let slot = match p.trim() {
                        "50" => 0,
                        "75" => 1,
                        "90" => 2,
                        "99" => 3,
                        _ => continue,
                    };
                    percentiles[slot] = parse_duration_ms(value);
                }
                _ => in_distribution = false,
            }
        }
    }
    let Some(requests_per_sec) = requests_per_sec else {
        bail!("wrk printed no Requests/sec line:\n{output}");
    };
    let (requests, seconds) = total.context("wrk printed no 'N requests in' line")?;
    Ok(WrkResult {
        requests,
        seconds,
        requests_per_sec,
        mean_ms: mean_ms.unwrap_or(0.0),
        max_ms: max_ms.unwrap_or(0.0),
        p50_ms: percentiles[0],
        p75_ms: percentiles[1],
        p90_ms: percentiles[2],
        p99_ms: percentiles[3],
        non_success,
        socket_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("694.51us"), Some(0.69451));
        assert_eq!(parse_duration_ms("1.72ms"), Some(1.72));
        assert_eq!(parse_duration_ms("2.00s"), Some(2000.0));
        assert_eq!(parse_duration_ms("1.50m"), Some(90_000.0));
        assert_eq!(parse_duration_ms("12"), None);
        assert_eq!(parse_duration_ms("3.0xs"), None);
    }
}
