//! The store on SQLite, against real files in temporary directories: every engine-generic
//! behaviour (tests/behaviour) and what only SQLite has (WAL mode, file paths).

mod behaviour;
mod support;

use portico_store::{PgStore, SqliteStore, Store, StoreError};
use sqlx::migrate::Migrator;

behaviour_tests!(support::Ctx::sqlite_test());

#[tokio::test]
async fn open_creates_the_file_in_wal_mode_with_foreign_keys_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    assert!(path.exists());
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(store.pool()).await.unwrap();
    assert_eq!(mode, "wal");
    let (foreign_keys,): (i64,) = sqlx::query_as("PRAGMA foreign_keys").fetch_one(store.pool()).await.unwrap();
    assert_eq!(foreign_keys, 1);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn open_accepts_a_sqlite_url() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("by-url.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.create_tenant("acme").await.unwrap();
    assert!(path.exists());
    assert_eq!(store.tenant_count().await.unwrap(), 1);
}

#[tokio::test]
async fn open_reports_an_unusable_location_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("portico.db");
    let error = SqliteStore::open(path.to_str().unwrap()).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn open_picks_the_engine_by_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chosen.db");
    let store = portico_store::open(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
    store.create_tenant("acme").await.unwrap();
    assert!(path.exists());
    for url in ["mysql://localhost/portico", "portico.db", "", "http://example.test/"] {
        let error = portico_store::open(url).await.err().expect(url);
        assert!(matches!(error, StoreError::Unavailable(_)), "{url}: {error:?}");
    }
}

/// Each engine's own migrations and the shared ones make the same list on both, versions
/// rising, each once (0007 is reserved for a change on another branch).
#[test]
fn both_engines_have_the_same_migrations() {
    let list = |migrator: Migrator| -> Vec<(i64, String)> {
        migrator.iter().map(|migration| (migration.version, migration.description.to_string())).collect()
    };
    let sqlite = list(SqliteStore::migrator());
    assert_eq!(sqlite, list(PgStore::migrator()));
    let versions: Vec<i64> = sqlite.iter().map(|(version, _)| *version).collect();
    assert!(versions.windows(2).all(|pair| pair[0] < pair[1]), "{versions:?}");
    assert_eq!(versions[0], 1);
    assert_eq!(sqlite[..3], [(1, "initial".to_owned()), (2, "settings".to_owned()), (3, "oauth".to_owned())]);
}
