//! The shared store: one PostgreSQL database for any number of Portico instances.
//!
//! Same schema (migrations/postgres is a mechanical translation of migrations/sqlite, and the
//! shared migrations are rendered for it), the same queries (written once for both engines),
//! the same errors as [`crate::SqliteStore`]. What is PostgreSQL's own is here: the pool and its options, the
//! migration connection, and LISTEN/NOTIFY. What makes it safe across processes:
//! - `delete_connector` locks the connector row (`FOR UPDATE`) before counting its
//!   connections, so a connection inserted meanwhile either lands before the count (and is
//!   counted and deleted) or waits and then fails its foreign key (a conflict);
//! - `take_oauth_state` is one `DELETE … RETURNING`: two instances racing for one state get it
//!   once between them;
//! - `acquire_lease` is one `INSERT … ON CONFLICT … DO UPDATE … WHERE`, which PostgreSQL runs
//!   atomically on the row: one holder at a time;
//! - `init_setting` is `INSERT … ON CONFLICT DO NOTHING` and then a read: the first value wins.
//!
//! A lost server is [`StoreError::Unavailable`], never a hang: a call waits at most
//! [`PgOptions::acquire_timeout`] for a connection (sqlx reconnects by itself, testing idle
//! connections before use), and at most [`PgOptions::statement_timeout`] for its statement.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::common::store_error;
use crate::sql::{POSTGRES, SqlStore};
use crate::{Change, Result, StoreError, migrations};

/// The `application_name` that Portico's connections show in `pg_stat_activity`.
const APPLICATION_NAME: &str = "portico";

/// How the pool to PostgreSQL is sized and how long calls may wait.
///
/// Sizing: each instance holds at most `max_connections`; all instances together must stay
/// below the server's `max_connections` (100 by default) less what other clients and
/// superuser slots (3) need. The steady state (proxying with cached connections) does not
/// touch the database, so a small pool is enough: requests that write wait their turn for a
/// connection for up to `acquire_timeout` before failing with 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Most connections the pool opens. Default 10.
    pub max_connections: u32,
    /// Connections kept open even when idle. Default 0: opened on demand.
    pub min_connections: u32,
    /// How long a call waits for a connection, (re)connecting included, before it fails with
    /// [`StoreError::Unavailable`]. Default 5 s: while PostgreSQL restarts, calls wait up to
    /// this long and either get through or fail cleanly.
    pub acquire_timeout: Duration,
    /// The server-side `statement_timeout` of every pooled connection: a statement stuck on
    /// a lock fails instead of hanging a request. Default 30 s; `None` keeps the server's.
    /// Migrations run on a connection of their own without it.
    pub statement_timeout: Option<Duration>,
    /// An idle connection is closed after this long. Default 10 minutes.
    pub idle_timeout: Option<Duration>,
    /// A connection is replaced after this long (lets a fail-over or a changed setting reach
    /// every connection). Default 30 minutes.
    pub max_lifetime: Option<Duration>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
        }
    }
}
/// The migrations written for PostgreSQL alone; new ones are shared where they can be
/// (migrations/shared/README.md).
pub(crate) static OWN_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The [`crate::Store`] on a PostgreSQL database.
pub type PgStore = SqlStore<PgPool>;

impl PgStore {
    /// Opens the database at `url` (`postgres://user:password@host:5432/portico`, or
    /// `postgresql://…`; the usual libpq parameters such as `?sslmode=` and the `PG*`
    /// environment variables apply) with the default [`PgOptions`], and brings its schema up
    /// to date. The database must exist.
    ///
    /// TLS is rustls: `sslmode=require` (or a stricter mode, with `sslrootcert=` for a private
    /// CA) encrypts the connection; `prefer`, the default, uses TLS when the server offers it.
    pub async fn open(url: &str) -> Result<PgStore> {
        PgStore::open_with(url, PgOptions::default()).await
    }

    /// [`PgStore::open`] with a pool of one's choosing.
    ///
    /// Migrations run on one connection of their own, under PostgreSQL's advisory lock
    /// (instances starting together apply them once). Migrations that this build does not
    /// know (applied by a newer Portico during a rolling upgrade) are ignored rather than
    /// refused, so that an older instance can still restart meanwhile.
    pub async fn open_with(url: &str, options: PgOptions) -> Result<PgStore> {
        let shown = redact_url(url);
        let connect = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::Unavailable(format!("invalid PostgreSQL URL {shown}: {error}")))?
            .application_name(APPLICATION_NAME);

        // Migrations run on a connection of their own, without the statement timeout: a long
        // migration, or waiting for another instance's, must not be cut short. A pool of one
        // retries a refused connection until `acquire_timeout` (a server still starting).
        let mut migrator = PgStore::migrator();
        migrator.set_ignore_missing(true);
        let migration_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot connect to the PostgreSQL database {shown}: {error}"))
            })?;
        let migrated = migrator.run(&migration_pool).await;
        migration_pool.close().await;
        migrated.map_err(|error| {
            StoreError::Unavailable(format!("cannot migrate the PostgreSQL database {shown}: {error}"))
        })?;

        let pooled = match options.statement_timeout {
            Some(timeout) => connect.options([("statement_timeout", format!("{}", timeout.as_millis()))]),
            None => connect,
        };
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections.min(options.max_connections.max(1)))
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(options.idle_timeout)
            .max_lifetime(options.max_lifetime)
            // The default, stated: an idle connection that the server dropped (a restart) is
            // found out and replaced before a call gets it.
            .test_before_acquire(true)
            .connect_lazy_with(pooled);
        Ok(SqlStore { pool })
    }

    /// The migrations that [`PgStore::open`] applies: PostgreSQL's own and the shared ones,
    /// rendered for it.
    pub fn migrator() -> Migrator {
        migrations::for_engine(&OWN_MIGRATIONS, &POSTGRES)
    }

    /// Closes every connection; the store is unusable afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Tells every instance on the database about `change` (NOTIFY).
pub(crate) async fn publish_change(pool: &PgPool, change: &Change) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(change.to_payload())
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// The changes that instances on the database publish (LISTEN).
pub(crate) async fn subscribe_changes(pool: &PgPool) -> Result<tokio::sync::mpsc::Receiver<Change>> {
    let mut listener = listen(pool).await?;
    let pool = pool.clone();
    let (sender, receiver) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            if let Ok(Some(notification)) = listener.try_recv().await {
                if sender.send(Change::from_payload(notification.payload())).await.is_err() {
                    return;
                }
                continue;
            }
            // The connection dropped: what was published meanwhile is lost, so everything
            // prepared is suspect, now and once more when listening again. Only a LISTEN in
            // place before everything is dropped guarantees that no later change is missed.
            if sender.send(Change::Everything).await.is_err() {
                return;
            }
            listener = loop {
                match listen(&pool).await {
                    Ok(listener) => break listener,
                    Err(_) if sender.is_closed() => return,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            };
            if sender.send(Change::Everything).await.is_err() {
                return;
            }
        }
    });
    Ok(receiver)
}

async fn listen(pool: &PgPool) -> Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await.map_err(store_error)?;
    listener.listen(CHANGES_CHANNEL).await.map_err(store_error)?;
    Ok(listener)
}

/// The LISTEN/NOTIFY channel for [`Change`]s.
const CHANGES_CHANNEL: &str = "portico_changes";

/// A database URL without its password (in the user info or a `password=` parameter), for
/// messages; any other URL as it is.
pub fn redact_url(url: &str) -> String {
    let mut shown = url.to_owned();
    if let Some(scheme_end) = shown.find("://") {
        let rest = &shown[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            let (start, end) = (scheme_end + 3 + colon + 1, scheme_end + 3 + at);
            shown.replace_range(start..end, "redacted");
        }
    }
    if let Some(query_start) = shown.find('?') {
        let (base, query) = shown.split_at(query_start + 1);
        let query = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=redacted"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        shown = format!("{base}{query}");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://u:p%40ss@db:5432/x?sslmode=require"),
            "postgres://u:redacted@db:5432/x?sslmode=require"
        );
        assert_eq!(redact_url("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(redact_url("postgres://u:p@ss@db/x"), "postgres://u:redacted@db/x");
        assert_eq!(
            redact_url("postgresql://db/x?user=u&password=y@z&sslmode=disable"),
            "postgresql://db/x?user=u&password=redacted&sslmode=disable"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
