//! The table's numbers on fixed inputs: medians per target, ratios per round then the median.

use portico_bench::report::{Sample, Series, median, render_fixed_rate_table, render_goals, render_table, summarize};

fn sample(rps: f64, p99: f64) -> Option<Sample> {
    Some(Sample { requests_per_sec: rps, p50_ms: p99 / 2.0, p99_ms: p99, requests: 1000, non_success: 0, errors: 0 })
}

fn series(target: &str, connections: usize, rounds: Vec<Option<Sample>>) -> Series {
    Series { target: target.to_owned(), connections, rounds }
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn ratios_are_medians_of_per_round_ratios_not_ratios_of_medians() {
    let input = vec![
        series("direct", 64, vec![sample(100.0, 1.0), sample(200.0, 2.0), sample(150.0, 1.5)]),
        series("nginx", 64, vec![sample(50.0, 2.0), sample(100.0, 2.5), sample(60.0, 2.0)]),
        series("portico-apikey-header", 64, vec![sample(60.0, 1.5), sample(90.0, 2.2), sample(90.0, 3.5)]),
    ];
    let rows = summarize(&input);
    assert_eq!(rows.len(), 3);

    let direct = &rows[0];
    assert_eq!((direct.target.as_str(), direct.runs), ("direct", 3));
    assert_eq!(direct.requests_per_sec, 150.0);
    assert_eq!(direct.p99_ms, 1.5);
    assert_eq!((direct.vs_nginx, direct.vs_direct, direct.added_p99_ms), (None, None, None));

    let nginx = &rows[1];
    assert_eq!(nginx.vs_nginx, None);
    // 0.5, 0.5, 0.4
    assert!(close(nginx.vs_direct, 0.5));
    // 1.0, 0.5, 0.5
    assert!(close(nginx.added_p99_ms, 0.5));

    let portico = &rows[2];
    assert_eq!(portico.requests_per_sec, 90.0);
    assert_eq!(portico.p99_ms, 2.2);
    // Per round 1.2, 0.9, 1.5 → 1.2; the ratio of the medians would be 90 / 60 = 1.5.
    assert!(close(portico.vs_nginx, 1.2));
    let (low, high) = portico.vs_nginx_middle.expect("quartiles of the per-round ratios");
    assert!(close(Some(low), 0.9) && close(Some(high), 1.5), "{low} {high}");
    // 0.6, 0.45, 0.6
    assert!(close(portico.vs_direct, 0.6));
    // 0.5, 0.2, 2.0
    assert!(close(portico.added_p99_ms, 0.5));
}

#[test]
fn a_failed_round_drops_out_of_that_rounds_ratio_only() {
    let input = vec![
        series("direct", 1, vec![sample(100.0, 1.0), sample(100.0, 1.0), sample(100.0, 1.0)]),
        series("nginx", 1, vec![sample(50.0, 1.0), None, sample(60.0, 1.0)]),
        series("portico-basic", 1, vec![sample(60.0, 1.1), sample(70.0, 1.2), sample(90.0, 1.3)]),
        series("portico-bearer", 1, vec![None, None, None]),
    ];
    let rows = summarize(&input);
    // A target without a single sample has no row.
    assert_eq!(rows.iter().map(|r| r.target.as_str()).collect::<Vec<_>>(), ["direct", "nginx", "portico-basic"]);
    assert_eq!(rows[1].runs, 2);
    assert_eq!(rows[1].requests_per_sec, 55.0);
    // Rounds 1 and 3 only: 1.2 and 1.5.
    assert!(close(rows[2].vs_nginx, 1.35));
    assert!(close(rows[2].vs_direct, 0.7));
    assert!(close(rows[2].added_p99_ms, 0.2));
}

#[test]
fn concurrencies_are_compared_only_with_their_own() {
    let input = vec![
        series("direct", 1, vec![sample(10.0, 0.1)]),
        series("nginx", 1, vec![sample(5.0, 0.2)]),
        series("direct", 64, vec![sample(100.0, 1.0)]),
        series("nginx", 64, vec![sample(40.0, 3.0)]),
        series("portico-apikey-header", 64, vec![sample(44.0, 1.5)]),
    ];
    let rows = summarize(&input);
    let portico = rows.iter().find(|r| r.target == "portico-apikey-header").unwrap();
    assert!(close(portico.vs_nginx, 1.1));
    assert!(close(portico.vs_direct, 0.44));
    assert!(close(portico.added_p99_ms, 0.5));
    let nginx1 = rows.iter().find(|r| r.target == "nginx" && r.connections == 1).unwrap();
    assert!(close(nginx1.vs_direct, 0.5));

    let table = render_table(&rows);
    assert!(table.contains("1.10×"), "{table}");
    assert!(table.contains("+0.500"), "{table}");
    let goals = render_goals(&rows, None, "portico-apikey-header");
    assert!(
        goals.contains("throughput 1.10× nginx, middle half of the rounds 1.10–1.10× (goal ≥ 1.00×): met"),
        "{goals}"
    );
    assert!(goals.contains("64 conns, saturated: p99 +0.500 ms over direct (goal < 1 ms): met"), "{goals}");
}

#[test]
fn the_fixed_rate_is_judged_on_its_own_rows() {
    // Saturated, Portico adds 1.5 ms at p99; at the fixed rate 0.3 ms (two rounds: 0.2 and 0.4).
    let saturated = summarize(&[
        series("direct", 64, vec![sample(100.0, 1.0)]),
        series("nginx", 64, vec![sample(40.0, 3.0)]),
        series("portico-apikey-header", 64, vec![sample(42.0, 2.5)]),
    ]);
    let fixed = summarize(&[
        series("direct", 64, vec![sample(12.0, 0.6), sample(12.0, 0.8)]),
        series("nginx", 64, vec![sample(12.0, 0.9), sample(12.0, 1.0)]),
        series("portico-apikey-header", 64, vec![sample(12.0, 0.8), sample(12.0, 1.2)]),
    ]);
    let goals = render_goals(&saturated, Some((12_000.0, &fixed)), "portico-apikey-header");
    assert!(goals.contains("64 conns, saturated: p99 +1.500 ms over direct (goal < 1 ms): MISSED"), "{goals}");
    assert!(goals.contains("64 conns, 12000 req/s: p99 +0.300 ms over direct (goal < 1 ms): met"), "{goals}");
    let table = render_fixed_rate_table(&fixed);
    let portico = table.lines().find(|l| l.starts_with("portico-apikey-header")).unwrap();
    assert!(portico.contains("+0.300"), "{table}");
    assert!(table.lines().find(|l| l.starts_with("direct")).unwrap().contains('–'), "{table}");
}

#[test]
fn missed_goals_say_so() {
    let input = vec![
        series("direct", 64, vec![sample(100.0, 1.0)]),
        series("nginx", 64, vec![sample(40.0, 3.0)]),
        series("portico-apikey-header", 64, vec![sample(30.0, 2.5)]),
    ];
    let goals = render_goals(&summarize(&input), None, "portico-apikey-header");
    assert!(goals.contains("0.75× nginx, middle half of the rounds 0.75–0.75× (goal ≥ 1.00×): MISSED"), "{goals}");
    assert!(goals.contains("+1.500 ms over direct (goal < 1 ms): MISSED"), "{goals}");
    assert!(render_goals(&[], None, "portico-apikey-header").contains("not measured"));
}

#[test]
fn median_of_even_and_odd_counts() {
    assert_eq!(median(&[1.0, 9.0, 5.0]), Some(5.0));
    assert_eq!(median(&[1.0, 9.0, 5.0, 7.0]), Some(6.0));
    assert_eq!(median(&[]), None);
}
