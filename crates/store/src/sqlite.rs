//! The embedded store: one SQLite file in WAL mode.

use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::common::{
    ConnectionRow, ConnectorRow, OAuthStateRow, connection_columns, connector_columns, count_of, encode_json,
    insert_error, page, store_error,
};
use crate::{
    ApiKeyRecord, ConnectionRecord, ConnectionStatus, ConnectorRecord, DeleteConnector, Millis, OAuthStateRecord, Page,
    Result, SealedBytes, Store, StoreError, StoredApiKey, Tenant, new_id, now_millis,
};

/// SQLite allows one writer at a time; a few connections let reads go on beside it.
const MAX_CONNECTIONS: u32 = 4;
/// How long a statement waits for the write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The [`Store`] on a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

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
        MIGRATOR.run(&pool).await.map_err(|error| {
            StoreError::Unavailable(format!("cannot migrate the SQLite database {url_or_path}: {error}"))
        })?;
        Ok(SqliteStore { pool })
    }

    /// The connection pool, for checks beyond the [`Store`] trait.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection (checkpointing the WAL); the store is unusable afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        let tenant = Tenant { id: new_id(), name: name.to_owned(), created_at: now_millis() };
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
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
            sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE name = ?")
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
        sqlx::query("INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES (?, ?, ?, ?)")
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
            sqlx::query_as("SELECT id, tenant_id, created_at FROM api_keys WHERE key_hash = ?")
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
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
        let row: Option<ConnectorRow> =
            sqlx::query_as(concat!("SELECT ", connector_columns!(), " FROM connectors WHERE tenant_id = ? AND id = ?"))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        row.map(ConnectorRow::into_record).transpose()
    }

    async fn list_connectors(&self, tenant_id: &str, after: Option<&str>, limit: u32) -> Result<Page<ConnectorRecord>> {
        let limit = limit.max(1);
        let rows: Vec<ConnectorRow> = sqlx::query_as(concat!(
            "SELECT ",
            connector_columns!(),
            " FROM connectors WHERE tenant_id = ? AND (? IS NULL OR id > ?) ORDER BY id LIMIT ?"
        ))
        .bind(tenant_id)
        .bind(after)
        .bind(after)
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
            "UPDATE connectors SET definition = ?, warnings = ?, oauth_client_id = ?, oauth_client_secret = ?, \
             updated_at = ? WHERE tenant_id = ? AND id = ?",
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
        // IMMEDIATE takes the write lock first, so the count and the deletes see one state.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)?;
        let exists: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM connectors WHERE tenant_id = ? AND id = ?")
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        if exists.is_none() {
            return Ok(DeleteConnector::NotFound);
        }
        let (connections,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM connections WHERE tenant_id = ? AND connector_id = ?")
                .bind(tenant_id)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
        let connections = count_of(connections);
        if connections > 0 && !cascade {
            return Ok(DeleteConnector::InUse { connections });
        }
        sqlx::query("DELETE FROM connections WHERE tenant_id = ? AND connector_id = ?")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query("DELETE FROM connectors WHERE tenant_id = ? AND id = ?")
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            " FROM connections WHERE tenant_id = ? AND id = ?"
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
        let rows: Vec<ConnectionRow> = sqlx::query_as(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE tenant_id = ? AND (? IS NULL OR connector_id = ?) AND (? IS NULL OR id > ?) \
             ORDER BY id LIMIT ?"
        ))
        .bind(tenant_id)
        .bind(connector_id)
        .bind(connector_id)
        .bind(after)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let items = rows.into_iter().map(ConnectionRow::into_record).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |record| &record.id))
    }

    async fn update_connection(&self, record: &ConnectionRecord) -> Result<bool> {
        let parameters = encode_json(&record.parameters, "connection parameters")?;
        let result = sqlx::query(
            "UPDATE connections SET display_name = ?, parameter_set = ?, status = ?, status_reason = ?, \
             parameters = ?, secrets = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
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
        let result = sqlx::query("DELETE FROM connections WHERE tenant_id = ? AND id = ?")
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
            "UPDATE connections SET tokens = ?, token_expires_at = ?, status = ?, status_reason = ?, updated_at = ? \
             WHERE tenant_id = ? AND id = ?",
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
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < ?")
            .bind(now_millis())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, tenant_id, connection_id, verifier, redirect_uri, return_url, \
             created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
        let row: Option<OAuthStateRow> = sqlx::query_as(
            "DELETE FROM oauth_states WHERE state_hash = ? RETURNING state_hash, tenant_id, connection_id, verifier, \
             redirect_uri, return_url, created_at, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.filter(|r| r.expires_at >= now).map(OAuthStateRow::into_record))
    }

    async fn acquire_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool> {
        let result = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.expires_at < ? OR leases.holder = excluded.holder",
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
        sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)
    }

    async fn init_setting(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
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
            sqlx::query_as("SELECT id, tenant_id, key_hash, created_at FROM api_keys WHERE tenant_id = ? ORDER BY id")
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
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
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
        sqlx::query("INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES (?, ?, ?, ?)")
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
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
             created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
}
