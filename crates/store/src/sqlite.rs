//! The embedded store: one SQLite file in WAL mode. Its queries are [`SqlStore`]'s; what is
//! SQLite's own is here: opening the file, its pragmas and the pool.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::sql::{SQLITE, SqlStore};
use crate::{Result, StoreError, migrations};

/// SQLite allows one writer at a time; a few connections let reads go on beside it.
const MAX_CONNECTIONS: u32 = 4;
/// How long a statement waits for the write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The migrations written for SQLite alone; new ones are shared where they can be
/// (migrations/shared/README.md).
pub(crate) static OWN_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The [`crate::Store`] on a SQLite file.
pub type SqliteStore = SqlStore<SqlitePool>;

impl SqliteStore {
    /// Opens (creating it if missing) the database at `url_or_path`, either a URL
    /// (`sqlite://data/portico.db`, `sqlite:portico.db?mode=rwc`) or a plain file path, and
    /// brings its schema up to date. In-memory databases are not supported: each pooled
    /// connection would see a database of its own.
    pub async fn open(url_or_path: &str) -> Result<SqliteStore> {
        let options = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path)
                .map_err(|error| StoreError::Unavailable(format!("invalid SQLite URL {url_or_path}: {error}")))?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The usual choice with WAL: never corrupt; a power cut may lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot open the SQLite database {url_or_path}: {error}"))
            })?;
        SqliteStore::migrator().run(&pool).await.map_err(|error| {
            StoreError::Unavailable(format!("cannot migrate the SQLite database {url_or_path}: {error}"))
        })?;
        Ok(SqlStore { pool })
    }

    /// The migrations that [`SqliteStore::open`] applies: SQLite's own and the shared ones.
    pub fn migrator() -> Migrator {
        migrations::for_engine(&OWN_MIGRATIONS, &SQLITE)
    }

    /// Closes every connection (checkpointing the WAL); the store is unusable afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
