//! PostgreSQL for the end-to-end tests. The databases (and when a test skips for want of a
//! server) are `portico_testkit`'s, as for the store's tests; what is here is the suite's own.
//!
//! With `PORTICO_TEST_DATABASE=postgres`, every [`super::Portico`] runs on a [`TestDatabase`] of
//! its own with [`TEST_MASTER_KEY`], dropped with the last Portico on it; a Portico started again
//! on the same data directory meanwhile finds the same database, as it would find its SQLite
//! file. Without the variable the suite runs on SQLite, as always. The tests of several
//! instances (tests/instances.rs) use PostgreSQL whatever the variable says.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

pub use portico_testkit::pg::TestDatabase;
use portico_testkit::pg::admin_url;

/// The master key of every Portico the suite runs on PostgreSQL (base64 of 32 bytes): with
/// PostgreSQL the key comes from `PORTICO_MASTER_KEY`.
pub const TEST_MASTER_KEY: &str = "cG9ydGljby1lMmUtcG9zdGdyZXMtbWFzdGVyLWtleSE=";

/// Whether this run puts every Portico on PostgreSQL (`PORTICO_TEST_DATABASE=postgres`).
pub fn enabled() -> bool {
    match std::env::var("PORTICO_TEST_DATABASE").as_deref() {
        Ok("postgres" | "postgresql") => true,
        Ok("" | "sqlite") | Err(_) => false,
        Ok(other) => panic!("PORTICO_TEST_DATABASE is sqlite or postgres, not {other:?}"),
    }
}

/// The databases of the Porticos running now, by data directory.
static DATABASES: Mutex<Vec<(PathBuf, Weak<TestDatabase>)>> = Mutex::new(Vec::new());

/// The database of a Portico on `data_dir`: the one another Portico on that data directory
/// still uses, else a new one.
pub fn database_for(data_dir: &Path) -> Arc<TestDatabase> {
    let mut databases = DATABASES.lock().unwrap_or_else(|e| e.into_inner());
    databases.retain(|(_, database)| database.strong_count() > 0);
    if let Some(database) = databases.iter().find(|(dir, _)| dir == data_dir).and_then(|(_, d)| d.upgrade()) {
        return database;
    }
    let database =
        TestDatabase::create_on(&admin_url()).unwrap_or_else(|why| panic!("PORTICO_TEST_DATABASE=postgres: {why}"));
    let database = Arc::new(database);
    databases.push((data_dir.to_owned(), Arc::downgrade(&database)));
    database
}
