//! The shared store: one PostgreSQL database for any number of Portico instances.
//!
//! Same schema (migrations/postgres is a mechanical translation of migrations/sqlite), same
//! queries, same errors as [`crate::SqliteStore`]. What makes it safe across processes:
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

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::common::{
    ConnectionRow, ConnectorRow, OAuthStateRow, connection_columns, connector_columns, count_of, encode_json,
    insert_error, page, store_error,
};
use crate::{
    ApiKeyRecord, Change, ConnectionRecord, ConnectionStatus, ConnectorRecord, DeleteConnector, Millis,
    OAuthStateRecord, Page, Result, SealedBytes, Store, StoreError, StoredApiKey, Tenant, new_id, now_millis,
};

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

/// The [`Store`] on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

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
        let mut migrator = sqlx::migrate!("./migrations/postgres");
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
        Ok(PgStore { pool })
    }

    /// The connection pool, for checks beyond the [`Store`] trait.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection; the store is unusable afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for PgStore {
    async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        let tenant = Tenant { id: new_id(), name: name.to_owned(), created_at: now_millis() };
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(&self.pool)
            .await
            .map_err(|error| insert_error(error, || format!("tenant '{name}'"), || format!("tenant '{name}'")))?;
        Ok(tenant)
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let row: Option<(String, String, i64)> =
            sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(row.map(|(id, name, created_at)| Tenant { id, name, created_at }))
    }

    async fn tenant_count(&self) -> Result<u64> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM tenants").fetch_one(&self.pool).await.map_err(store_error)?;
        Ok(count_of(count))
    }

    async fn add_api_key(&self, tenant_id: &str, key_hash: &str) -> Result<ApiKeyRecord> {
        let record = ApiKeyRecord { id: new_id(), tenant_id: tenant_id.to_owned(), created_at: now_millis() };
        sqlx::query("INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&record.id)
            .bind(&record.tenant_id)
            .bind(key_hash)
            .bind(record.created_at)
            .execute(&self.pool)
            .await
            .map_err(|error| {
                insert_error(
                    error,
                    || "an API key with this hash".to_owned(),
                    || format!("the API key cannot be added: tenant {tenant_id} is missing, or a key with this hash"),
                )
            })?;
        Ok(record)
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row: Option<(String, String, i64)> =
            sqlx::query_as("SELECT id, tenant_id, created_at FROM api_keys WHERE key_hash = $1")
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(row.map(|(id, tenant_id, created_at)| ApiKeyRecord { id, tenant_id, created_at }))
    }

    async fn insert_connector(&self, record: &ConnectorRecord) -> Result<()> {
        let definition = encode_json(&record.connector, "connector definition")?;
        let warnings = encode_json(&record.warnings, "connector warnings")?;
        sqlx::query(
            "INSERT INTO connectors (id, tenant_id, definition, warnings, oauth_client_id, oauth_client_secret, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&record.id)
        .bind(&record.tenant_id)
        .bind(definition)
        .bind(warnings)
        .bind(&record.oauth_client_id)
        .bind(record.oauth_client_secret.as_ref().map(|sealed| sealed.0.as_slice()))
        .bind(record.created_at)
        .bind(record.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|error| {
            insert_error(
                error,
                || format!("connector {}", record.id),
                || {
                    format!(
                        "connector {} cannot be added: tenant {} is missing, or a connector with this id",
                        record.id, record.tenant_id
                    )
                },
            )
        })?;
        Ok(())
    }

    async fn connector(&self, tenant_id: &str, id: &str) -> Result<Option<ConnectorRecord>> {
        let row: Option<ConnectorRow> = sqlx::query_as(concat!(
            "SELECT ",
            connector_columns!(),
            " FROM connectors WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(ConnectorRow::into_record).transpose()
    }

    async fn list_connectors(&self, tenant_id: &str, after: Option<&str>, limit: u32) -> Result<Page<ConnectorRecord>> {
        let limit = limit.max(1);
        // No cursor is the empty string: every id sorts after it (ids are COLLATE "C"). One
        // statement either way, and one that the (tenant_id, id) index serves.
        let rows: Vec<ConnectorRow> = sqlx::query_as(concat!(
            "SELECT ",
            connector_columns!(),
            " FROM connectors WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let items = rows.into_iter().map(ConnectorRow::into_record).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |record| &record.id))
    }

    async fn update_connector(&self, record: &ConnectorRecord) -> Result<bool> {
        let definition = encode_json(&record.connector, "connector definition")?;
        let warnings = encode_json(&record.warnings, "connector warnings")?;
        let result = sqlx::query(
            "UPDATE connectors SET definition = $1, warnings = $2, oauth_client_id = $3, oauth_client_secret = $4, \
             updated_at = $5 WHERE tenant_id = $6 AND id = $7",
        )
        .bind(definition)
        .bind(warnings)
        .bind(&record.oauth_client_id)
        .bind(record.oauth_client_secret.as_ref().map(|sealed| sealed.0.as_slice()))
        .bind(record.updated_at)
        .bind(&record.tenant_id)
        .bind(&record.id)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_connector(&self, tenant_id: &str, id: &str, cascade: bool) -> Result<DeleteConnector> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // FOR UPDATE conflicts with the KEY SHARE lock that a new connection's foreign key
        // check takes on its connector: connections being inserted are committed before the
        // count (and counted), and later ones wait for this transaction and then fail.
        let exists: Option<(i32,)> =
            sqlx::query_as("SELECT 1 FROM connectors WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
        if exists.is_none() {
            return Ok(DeleteConnector::NotFound);
        }
        let (connections,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM connections WHERE tenant_id = $1 AND connector_id = $2")
                .bind(tenant_id)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
        let connections = count_of(connections);
        if connections > 0 && !cascade {
            return Ok(DeleteConnector::InUse { connections });
        }
        sqlx::query("DELETE FROM connections WHERE tenant_id = $1 AND connector_id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query("DELETE FROM connectors WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(DeleteConnector::Deleted { connections })
    }

    async fn insert_connection(&self, record: &ConnectionRecord) -> Result<()> {
        let parameters = encode_json(&record.parameters, "connection parameters")?;
        sqlx::query(
            "INSERT INTO connections (id, tenant_id, connector_id, created_by_key, display_name, parameter_set, \
             status, status_reason, parameters, secrets, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&record.id)
        .bind(&record.tenant_id)
        .bind(&record.connector_id)
        .bind(&record.created_by_key)
        .bind(&record.display_name)
        .bind(&record.parameter_set)
        .bind(record.status.as_str())
        .bind(&record.status_reason)
        .bind(parameters)
        .bind(record.secrets.as_ref().map(|sealed| sealed.0.as_slice()))
        .bind(record.created_at)
        .bind(record.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|error| {
            insert_error(
                error,
                || format!("connection {}", record.id),
                // The (tenant, connector) foreign key: the connector is gone (deleted meanwhile),
                // or is another tenant's.
                || {
                    format!(
                        "connection {} cannot be added: connector {} is not in the tenant, or a connection with this id",
                        record.id, record.connector_id
                    )
                },
            )
        })?;
        Ok(())
    }

    async fn connection(&self, tenant_id: &str, id: &str) -> Result<Option<ConnectionRecord>> {
        let row: Option<ConnectionRow> = sqlx::query_as(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(ConnectionRow::into_record).transpose()
    }

    async fn list_connections(
        &self,
        tenant_id: &str,
        connector_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ConnectionRecord>> {
        let limit = limit.max(1);
        // Two statements rather than `$2 IS NULL OR …`, so that each gets its own index.
        let query = match connector_id {
            Some(connector_id) => sqlx::query_as(concat!(
                "SELECT ",
                connection_columns!(),
                " FROM connections WHERE tenant_id = $1 AND connector_id = $2 AND id > $3 ORDER BY id LIMIT $4"
            ))
            .bind(tenant_id)
            .bind(connector_id),
            None => sqlx::query_as(concat!(
                "SELECT ",
                connection_columns!(),
                " FROM connections WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(tenant_id),
        };
        let rows: Vec<ConnectionRow> =
            query.bind(after.unwrap_or("")).bind(i64::from(limit)).fetch_all(&self.pool).await.map_err(store_error)?;
        let items = rows.into_iter().map(ConnectionRow::into_record).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |record| &record.id))
    }

    async fn update_connection(&self, record: &ConnectionRecord) -> Result<bool> {
        let parameters = encode_json(&record.parameters, "connection parameters")?;
        let result = sqlx::query(
            "UPDATE connections SET display_name = $1, parameter_set = $2, status = $3, status_reason = $4, \
             parameters = $5, secrets = $6, updated_at = $7 WHERE tenant_id = $8 AND id = $9",
        )
        .bind(&record.display_name)
        .bind(&record.parameter_set)
        .bind(record.status.as_str())
        .bind(&record.status_reason)
        .bind(parameters)
        .bind(record.secrets.as_ref().map(|sealed| sealed.0.as_slice()))
        .bind(record.updated_at)
        .bind(&record.tenant_id)
        .bind(&record.id)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_connection(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM connections WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn set_connection_tokens(
        &self,
        tenant_id: &str,
        id: &str,
        tokens: Option<&SealedBytes>,
        token_expires_at: Option<Millis>,
        status: ConnectionStatus,
        status_reason: Option<&str>,
    ) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE connections SET tokens = $1, token_expires_at = $2, status = $3, status_reason = $4, \
             updated_at = $5 WHERE tenant_id = $6 AND id = $7",
        )
        .bind(tokens.map(|t| t.0.as_slice()))
        .bind(token_expires_at)
        .bind(status.as_str())
        .bind(status_reason)
        .bind(now_millis())
        .bind(tenant_id)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn insert_oauth_state(&self, record: &OAuthStateRecord) -> Result<()> {
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(now_millis())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, tenant_id, connection_id, verifier, redirect_uri, return_url, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&record.state_hash)
        .bind(&record.tenant_id)
        .bind(&record.connection_id)
        .bind(record.verifier.0.as_slice())
        .bind(&record.redirect_uri)
        .bind(&record.return_url)
        .bind(record.created_at)
        .bind(record.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|error| insert_error(error, || "sign-in state".to_owned(), || "sign-in state".to_owned()))?;
        Ok(())
    }

    async fn take_oauth_state(&self, state_hash: &str, now: Millis) -> Result<Option<OAuthStateRecord>> {
        // One statement: of two instances racing for a state, the second deletes nothing.
        let row: Option<OAuthStateRow> = sqlx::query_as(
            "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING state_hash, tenant_id, connection_id, verifier, \
             redirect_uri, return_url, created_at, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.filter(|r| r.expires_at >= now).map(OAuthStateRow::into_record))
    }

    async fn acquire_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool> {
        // Atomic across processes: a concurrent INSERT of the same name waits for the other's
        // row, then takes the ON CONFLICT path on the row as committed, locked.
        let result = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.expires_at < $4 OR leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)
    }

    async fn init_setting(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        let stored = self.setting(name).await?;
        stored.ok_or_else(|| StoreError::Corrupt(format!("setting {name} vanished after it was written")))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as("SELECT id, name, created_at FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(rows.into_iter().map(|(id, name, created_at)| Tenant { id, name, created_at }).collect())
    }

    async fn list_api_keys(&self, tenant_id: &str) -> Result<Vec<StoredApiKey>> {
        let rows: Vec<(String, String, String, i64)> =
            sqlx::query_as("SELECT id, tenant_id, key_hash, created_at FROM api_keys WHERE tenant_id = $1 ORDER BY id")
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .map(|(id, tenant_id, key_hash, created_at)| StoredApiKey { id, tenant_id, key_hash, created_at })
            .collect())
    }

    async fn list_oauth_states(&self) -> Result<Vec<OAuthStateRecord>> {
        let rows: Vec<OAuthStateRow> = sqlx::query_as(
            "SELECT state_hash, tenant_id, connection_id, verifier, redirect_uri, return_url, created_at, expires_at \
             FROM oauth_states ORDER BY state_hash",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows.into_iter().map(OAuthStateRow::into_record).collect())
    }

    async fn list_settings(&self) -> Result<Vec<(String, Vec<u8>)>> {
        sqlx::query_as("SELECT name, value FROM settings ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)
    }

    async fn import_tenant(&self, tenant: &Tenant) -> Result<()> {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(&self.pool)
            .await
            .map_err(|error| {
                let taken = || format!("tenant {} or a tenant named '{}'", tenant.id, tenant.name);
                insert_error(error, taken, taken)
            })?;
        Ok(())
    }

    async fn import_api_key(&self, key: &StoredApiKey) -> Result<()> {
        sqlx::query("INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&key.id)
            .bind(&key.tenant_id)
            .bind(&key.key_hash)
            .bind(key.created_at)
            .execute(&self.pool)
            .await
            .map_err(|error| {
                insert_error(
                    error,
                    || format!("API key {} or a key with its hash", key.id),
                    || format!("API key {} cannot be added: tenant {} is missing, or the key", key.id, key.tenant_id),
                )
            })?;
        Ok(())
    }

    async fn import_connection(&self, record: &ConnectionRecord) -> Result<()> {
        let parameters = encode_json(&record.parameters, "connection parameters")?;
        sqlx::query(concat!(
            "INSERT INTO connections (",
            connection_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&record.id)
        .bind(&record.tenant_id)
        .bind(&record.connector_id)
        .bind(&record.created_by_key)
        .bind(&record.display_name)
        .bind(&record.parameter_set)
        .bind(record.status.as_str())
        .bind(&record.status_reason)
        .bind(parameters)
        .bind(record.secrets.as_ref().map(|sealed| sealed.0.as_slice()))
        .bind(record.tokens.as_ref().map(|sealed| sealed.0.as_slice()))
        .bind(record.token_expires_at)
        .bind(record.created_at)
        .bind(record.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|error| {
            insert_error(
                error,
                || format!("connection {}", record.id),
                || {
                    format!(
                        "connection {} cannot be added: connector {} is not in the tenant, or a connection with this id",
                        record.id, record.connector_id
                    )
                },
            )
        })?;
        Ok(())
    }

    async fn import_oauth_state(&self, record: &OAuthStateRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, tenant_id, connection_id, verifier, redirect_uri, return_url, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&record.state_hash)
        .bind(&record.tenant_id)
        .bind(&record.connection_id)
        .bind(record.verifier.0.as_slice())
        .bind(&record.redirect_uri)
        .bind(&record.return_url)
        .bind(record.created_at)
        .bind(record.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|error| insert_error(error, || "sign-in state".to_owned(), || "sign-in state".to_owned()))?;
        Ok(())
    }

    async fn publish_change(&self, change: &Change) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(change.to_payload())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn subscribe_changes(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await.map_err(store_error)?;
        listener.listen(CHANGES_CHANNEL).await.map_err(store_error)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let change = match listener.try_recv().await {
                    Ok(Some(notification)) => Change::from_payload(notification.payload()),
                    // The connection dropped (and is re-established by the next call): what was
                    // published meanwhile is lost, so everything prepared is suspect.
                    Ok(None) => Change::Everything,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        Change::Everything
                    }
                };
                if sender.send(change).await.is_err() {
                    return;
                }
            }
        });
        Ok(Some(receiver))
    }
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
