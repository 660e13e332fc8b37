//! What Portico's test suites share (a dev-dependency only).
//!
//! A test that needs a service this machine lacks (PostgreSQL, Node.js, Chromium, the corpus)
//! calls [`skip_or_fail`]: under `CI=true` that is a failure, elsewhere a `SKIPPED: …` line on
//! the real standard error, so that no skip is silent. [`pg`] makes PostgreSQL databases and
//! clusters for tests; [`database`] a database of one test on either engine.

use std::io::Write as _;
use std::path::{Path, PathBuf};

pub mod database;
pub mod pg;

/// Whether this run is CI's (`CI=true` or `CI=1`), where nothing may be skipped.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// The corpus folder: `PORTICO_CORPUS`, else `shared/corpus` beside the workspace.
pub fn corpus_root() -> PathBuf {
    match std::env::var_os("PORTICO_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    }
}

/// The Power Platform connectors of the corpus; `None` after [`skip_or_fail`] when they are
/// not there.
pub fn power_platform_corpus() -> Option<PathBuf> {
    let root = corpus_root().join("power-platform");
    if root.join("classification.tsv").is_file() {
        return Some(root);
    }
    skip_or_fail(&format!("corpus not found at {}; CI needs the corpus (set PORTICO_CORPUS)", root.display()));
    None
}

/// A loopback port nobody listened on a moment ago.
pub fn spare_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().expect("its address").port()
}

/// Says why the calling test cannot run here: a panic under CI, a loud skip elsewhere (the
/// test then returns early).
pub fn skip_or_fail(why: &str) {
    if under_ci() {
        panic!("{why} (under CI=true this is a failure, not a skip)");
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    // Past the test harness's capture: a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}
