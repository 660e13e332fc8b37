//! How much a whole Power Platform import costs next to plain `serde_json`.
//!
//! Every connector folder of the corpus is read into memory once. Then, round after round,
//! the same bytes go through (a) `serde_json::from_slice::<Value>` of each file, errors
//! ignored, and (b) Portico's import of each connector plus the model's validation. The two
//! alternate which goes first, in one process; medians are reported.
//!
//! `cargo bench -p portico-import --bench corpus`
//!
//! * `PORTICO_CORPUS`: the corpus folder (default `<workspace>/../shared/corpus`);
//! * `BENCH_ROUNDS`: measured rounds (default 5), after one warm-up round.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portico_model::IdentityProviderCatalog;
use serde_json::Value;

/// One connector folder's two files, in memory.
struct Connector {
    properties: Vec<u8>,
    definition: Vec<u8>,
    definition_name: String,
}

fn main() {
    let root = std::env::var_os("PORTICO_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"));
    let Ok(root) = root.canonicalize() else {
        println!("corpus: {} not found (set PORTICO_CORPUS); nothing to measure", root.display());
        return;
    };
    // `cargo test --all-targets` runs this too, without `--bench`: one round as a smoke check.
    let benching = std::env::args().any(|a| a == "--bench");
    let rounds = match benching {
        true => std::env::var("BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).filter(|&r| r > 0).unwrap_or(5),
        false => 1,
    };

    let mut connectors = Vec::new();
    collect(&root, &mut connectors);
    if connectors.is_empty() {
        println!("corpus: no connector folder under {}; nothing to measure", root.display());
        return;
    }
    let bytes: usize = connectors.iter().map(|c| c.properties.len() + c.definition.len()).sum();
    let megabytes = bytes as f64 / 1_000_000.0;
    let catalog = IdentityProviderCatalog::built_in();

    let baseline = || {
        let mut failed = 0;
        for c in &connectors {
            for file in [&c.properties, &c.definition] {
                failed += usize::from(black_box(serde_json::from_slice::<Value>(black_box(file))).is_err());
            }
        }
        failed
    };
    let portico = || {
        let mut failed = 0;
        for c in &connectors {
            let import = portico_import::power_platform::import_bytes(
                black_box(&c.properties),
                "apiProperties.json",
                black_box(&c.definition),
                &c.definition_name,
            )
            .validated(&catalog);
            failed += usize::from(!black_box(import).is_ok());
        }
        failed
    };

    // Warm-up: caches, allocator, page faults; also the counts reported below.
    let baseline_failed = baseline();
    let portico_failed = portico();

    let mut baseline_times = Vec::with_capacity(rounds);
    let mut portico_times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let mut time_baseline = || baseline_times.push(timed(&baseline));
        let mut time_portico = || portico_times.push(timed(&portico));
        if round % 2 == 0 {
            time_baseline();
            time_portico();
        } else {
            time_portico();
            time_baseline();
        }
    }

    println!(
        "corpus: {} connectors, {} files, {megabytes:.1} MB, under {}",
        connectors.len(),
        connectors.len() * 2,
        root.display()
    );
    println!("rounds: {rounds} measured (plus one warm-up), alternating which runs first");
    println!();
    println!("| {:<40} | {:>10} | {:>8} | {:>10} | {:>10} |", "", "median ms", "MB/s", "min ms", "max ms");
    println!("|{:-<42}|{:->12}|{:->10}|{:->12}|{:->12}|", "", "", "", "", "");
    let row = |name: &str, times: &[Duration]| {
        let median = median(times);
        println!(
            "| {name:<40} | {:>10.1} | {:>8.1} | {:>10.1} | {:>10.1} |",
            ms(median),
            megabytes / median.as_secs_f64(),
            ms(*times.iter().min().unwrap_or(&median)),
            ms(*times.iter().max().unwrap_or(&median)),
        );
        median
    };
    let b = row("serde_json::from_slice::<Value>", &baseline_times);
    let p = row("portico import_bytes + validated", &portico_times);
    println!();
    println!("ratio portico / baseline (median time): {:.2}", p.as_secs_f64() / b.as_secs_f64());
    println!(
        "baseline: {baseline_failed} of {} files are not strict JSON; portico: {portico_failed} of {} connectors have errors",
        connectors.len() * 2,
        connectors.len()
    );
}

fn timed(run: &impl Fn() -> usize) -> Duration {
    let start = Instant::now();
    black_box(run());
    start.elapsed()
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Every folder under `dir` (in name order) holding `apiProperties.json` and a swagger file,
/// both found case-insensitively as the importer finds them.
fn collect(dir: &Path, out: &mut Vec<Connector>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let files: Vec<&PathBuf> = paths.iter().filter(|p| p.is_file()).collect();
    let named = |wanted: &str| {
        files.iter().find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case(wanted)))
    };
    if let Some(properties) = named("apiProperties.json") {
        let swaggers: Vec<&&PathBuf> =
            files.iter().filter(|p| p.to_string_lossy().to_ascii_lowercase().ends_with(".swagger.json")).collect();
        let definition = named("apiDefinition.swagger.json").or(match swaggers.as_slice() {
            [only] => Some(*only),
            _ => None,
        });
        if let (Ok(properties), Some(path)) = (std::fs::read(properties), definition)
            && let Ok(definition) = std::fs::read(path)
        {
            let definition_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.push(Connector { properties, definition, definition_name });
        }
        return;
    }
    for path in paths.iter().filter(|p| p.is_dir()) {
        collect(path, out);
    }
}
