//! wrk's output, as captured from wrk 4.1.0 (Debian) on loopback, parsed.

use portico_bench::wrk::parse;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/wrk/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn sixty_four_connections_with_latency_distribution() {
    let r = parse(&fixture("c64-latency.txt")).unwrap();
    assert_eq!(r.requests, 70337);
    assert_eq!(r.seconds, 2.0);
    assert_eq!(r.requests_per_sec, 35137.28);
    assert_eq!(r.mean_ms, 1.82);
    assert_eq!(r.max_ms, 5.87);
    assert_eq!(r.p50_ms, Some(1.75));
    assert_eq!(r.p75_ms, Some(1.84));
    assert_eq!(r.p90_ms, Some(2.05));
    assert_eq!(r.p99_ms, Some(2.94));
    assert_eq!((r.non_success, r.socket_errors), (0, 0));
}

#[test]
fn one_connection_in_microseconds() {
    let r = parse(&fixture("c1-latency.txt")).unwrap();
    assert_eq!(r.requests, 20135);
    assert!((r.seconds - 2.1).abs() < 1e-9);
    assert_eq!(r.requests_per_sec, 9588.07);
    assert!((r.p50_ms.unwrap() - 0.117).abs() < 1e-9);
    assert!((r.p99_ms.unwrap() - 0.186).abs() < 1e-9);
    assert!((r.mean_ms - 0.10992).abs() < 1e-9);
}

#[test]
fn without_latency_flag_there_are_no_percentiles() {
    let r = parse(&fixture("no-latency.txt")).unwrap();
    assert_eq!(r.requests_per_sec, 36255.29);
    assert_eq!(r.requests, 39855);
    assert_eq!((r.p50_ms, r.p99_ms), (None, None));
    assert!((r.mean_ms - 0.44657).abs() < 1e-9);
}

#[test]
fn non_2xx_responses_are_counted() {
    let r = parse(&fixture("non-2xx.txt")).unwrap();
    assert_eq!(r.non_success, 82236);
    assert_eq!(r.requests, 82236);
    assert_eq!(r.socket_errors, 0);
    assert_eq!(r.p99_ms, Some(3.26));
}

#[test]
fn socket_errors_are_summed() {
    let r = parse(&fixture("socket-errors.txt")).unwrap();
    assert_eq!(r.socket_errors, 19421);
    assert_eq!(r.non_success, 19420);
    assert_eq!(r.requests_per_sec, 9247.51);
}

#[test]
fn a_run_that_could_not_connect_is_an_error() {
    assert!(parse(&fixture("connect-errors.txt")).is_err());
    assert!(parse("").is_err());
}
