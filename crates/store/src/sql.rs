//! The one implementation of [`Store`], for both engines: every query is written here once, with
//! `$n` placeholders (which SQLite takes too), and runs on whichever pool the store has. What the
//! engines do differently is data ([`Dialect`]) or a hook of the engine's module (LISTEN/NOTIFY
//! on PostgreSQL); opening, pool options and pragmas stay in `sqlite.rs` and `postgres.rs`.

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

use crate::common::{
    ApiKeyRow, ConnectionRow, ConnectorRow, MemberRow, OAuthStateRow, ShareRow, StoredApiKeyRow, api_key_columns,
    connection_columns, connector_columns, count_of, encode_json, insert_error, member_columns, oauth_state_columns,
    page, share_columns, store_error,
};
use crate::common::{
    ConnectSessionRow, DeliveryJobRow, DeliveryRow, StoredConnectSessionRow, WebhookRow, connect_session_columns,
    delivery_columns, event_kinds, webhook_columns,
};
use crate::{
    ApiKeyRecord, Attempt, AttemptNext, AuditQuery, AuditRecord, Change, ConnectSessionRecord, ConnectionQuery,
    ConnectionRecord, ConnectionStatus, ConnectorRecord, DeleteConnector, DeliveryJob, DeliveryQueue, DeliveryRecord,
    Effects, EventRecord, MemberRecord, Millis, OAuthStateRecord, Page, Result, SealedBytes, ShareRecord, Store,
    StoreError, StoredApiKey, StoredConnectSession, Tenant, WebhookRecord, new_id, now_millis,
};
use crate::{DataKeyRecord, DataKeyState, Reseal, Rewrap, SealedColumn, SealedValue};

/// The [`Store`] on a pool of either engine: [`crate::SqliteStore`] on a `SqlitePool`,
/// [`crate::PgStore`] on a `PgPool`.
#[derive(Debug, Clone)]
pub struct SqlStore<P> {
    pub(crate) pool: P,
}

impl<P> SqlStore<P> {
    /// The connection pool, for checks beyond the [`Store`] trait.
    pub fn pool(&self) -> &P {
        &self.pool
    }
}

/// A store's pool, as the engine it is on.
pub(crate) enum Engine<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

/// The pool of an engine that [`SqlStore`] runs on.
pub(crate) trait EnginePool: Send + Sync + 'static {
    fn engine(&self) -> Engine<'_>;
    fn dialect(&self) -> &'static Dialect;
}

impl EnginePool for SqlitePool {
    fn engine(&self) -> Engine<'_> {
        Engine::Sqlite(self)
    }

    fn dialect(&self) -> &'static Dialect {
        &SQLITE
    }
}

impl EnginePool for PgPool {
    fn engine(&self) -> Engine<'_> {
        Engine::Postgres(self)
    }

    fn dialect(&self) -> &'static Dialect {
        &POSTGRES
    }
}

/// What the engines' SQL says differently, where a query written once needs it, and the
/// types that [`crate::migrations`] substitutes in shared migrations.
pub(crate) struct Dialect {
    /// Begins a transaction that reads before it writes.
    pub(crate) begin_write: &'static str,
    /// [`find_connector!`] holding the connector until the transaction ends, so that no
    /// connection is added to it meanwhile.
    pub(crate) lock_connector: &'static str,
    /// Keeps other transactions from adding, changing or deleting data keys until this one
    /// ends (when `begin_write` does not already).
    pub(crate) lock_data_keys: Option<&'static str>,
    /// The type of a byte string.
    pub(crate) bytes_type: &'static str,
    /// The collation that compares text byte by byte (the order of ids and cursors).
    pub(crate) byte_order_collation: &'static str,
}

/// A connector by tenant (`$1`) and id (`$2`), as [`Dialect::lock_connector`] reads it.
macro_rules! find_connector {
    () => {
        "SELECT id FROM connectors WHERE tenant_id = $1 AND id = $2"
    };
}

pub(crate) const SQLITE: Dialect = Dialect {
    // IMMEDIATE takes the write lock first, so the reads and the writes see one state.
    begin_write: "BEGIN IMMEDIATE",
    lock_connector: find_connector!(),
    // BEGIN IMMEDIATE holds the database's one write lock already.
    lock_data_keys: None,
    bytes_type: "BLOB",
    byte_order_collation: "BINARY",
};

pub(crate) const POSTGRES: Dialect = Dialect {
    begin_write: "BEGIN",
    // FOR UPDATE conflicts with the KEY SHARE lock that a new connection's foreign key check
    // takes on its connector: connections being inserted are committed before the count (and
    // counted), and later ones wait for this transaction and then fail.
    lock_connector: concat!(find_connector!(), " FOR UPDATE"),
    // Conflicts with the ROW EXCLUSIVE lock of every INSERT, UPDATE and DELETE on the table.
    lock_data_keys: Some("LOCK TABLE data_keys IN SHARE ROW EXCLUSIVE MODE"),
    bytes_type: "BYTEA",
    byte_order_collation: "\"C\"",
};

/// The queries of one sealed column (`$table.$column`, rows known by `$key`), for a rotation.
struct SealedSql {
    /// `$1` prefix length, `$2` prefix, `$3` after, `$4` limit.
    list: &'static str,
    /// `$1` new bytes, `$2` row key, `$3` old bytes.
    reseal: &'static str,
    /// `$1` prefix length.
    count: &'static str,
}

macro_rules! sealed_sql {
    ($table:literal, $key:literal, $column:literal) => {
        SealedSql {
            list: concat!(
                "SELECT ",
                $key,
                ", ",
                $column,
                " FROM ",
                $table,
                " WHERE ",
                $column,
                " IS NOT NULL AND substr(",
                $column,
                ", 1, $1) <> $2 AND ",
                $key,
                " > $3 ORDER BY ",
                $key,
                " LIMIT $4"
            ),
            reseal: concat!("UPDATE ", $table, " SET ", $column, " = $1 WHERE ", $key, " = $2 AND ", $column, " = $3"),
            count: concat!(
                "SELECT substr(",
                $column,
                ", 1, $1), COUNT(*) FROM ",
                $table,
                " WHERE ",
                $column,
                " IS NOT NULL GROUP BY 1 ORDER BY 1"
            ),
        }
    };
}

fn sealed_sql(column: SealedColumn) -> SealedSql {
    match column {
        SealedColumn::ConnectionSecrets => sealed_sql!("connections", "id", "secrets"),
        SealedColumn::ConnectionTokens => sealed_sql!("connections", "id", "tokens"),
        SealedColumn::ConnectorClientSecret => sealed_sql!("connectors", "id", "oauth_client_secret"),
        SealedColumn::SignInVerifier => sealed_sql!("oauth_states", "state_hash", "verifier"),
        SealedColumn::SignInReturnUrl => sealed_sql!("oauth_states", "state_hash", "sealed_return_url"),
        SealedColumn::WebhookSecrets => sealed_sql!("webhooks", "id", "secrets"),
    }
}

fn data_key_record((id, wrapped, state, created_at): (String, Vec<u8>, String, i64)) -> Result<DataKeyRecord> {
    let state = DataKeyState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("data key {id} has an unknown state {state:?}")))?;
    Ok(DataKeyRecord { id, wrapped: SealedBytes(wrapped), state, created_at })
}

/// `$body` with `$pool` bound to the store's pool: written once, compiled for each engine
/// (`$pool` is a `&SqlitePool` in one arm and a `&PgPool` in the other).
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store.pool.engine() {
            Engine::Sqlite($pool) => $body,
            Engine::Postgres($pool) => $body,
        }
    };
}

/// The columns of an [`AuditRecord`], in its order.
macro_rules! audit_columns {
    () => {
        "tenant_id, id, at, principal, action, connection_id, connector_id, target, operation, method, path, \
         outcome, count, latency_us, instance"
    };
}

/// The INSERT of `$event` into the outbox, bound: one for the effects of a write and for an
/// import.
macro_rules! insert_event {
    ($event:expr) => {{
        let event: &EventRecord = $event;
        sqlx::query(
            "INSERT INTO webhook_events (id, tenant_id, type, payload, ordering_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&event.id)
        .bind(&event.tenant_id)
        .bind(&event.kind)
        .bind(&event.payload)
        .bind(&event.ordering_key)
        .bind(event.created_at)
    }};
}

/// Writes `$effects` (of a write to connection `$connection` of tenant `$tenant`) in the
/// transaction `$tx`: a session's claim or completion and the events with their deliveries.
/// `return`s a conflict from the enclosing function when a session cannot be claimed.
macro_rules! write_effects {
    ($tx:expr, $tenant:expr, $connection:expr, $effects:expr) => {{
        let effects: Effects<'_> = $effects;
        if let Some((session, at)) = effects.claim_session {
            let claimed = sqlx::query(
                "UPDATE connect_sessions SET connection_id = $1 WHERE tenant_id = $2 AND id = $3 \
                 AND connection_id IS NULL AND expires_at > $4",
            )
            .bind($connection)
            .bind($tenant)
            .bind(session)
            .bind(at)
            .execute(&mut *$tx)
            .await
            .map_err(store_error)?
            .rows_affected();
            if claimed != 1 {
                return Err(StoreError::Conflict(format!("connect session {session} made its connection or expired; a connection")));
            }
        }
        if let Some((session, at)) = effects.complete_session {
            sqlx::query(
                "UPDATE connect_sessions SET completed_at = $1 WHERE tenant_id = $2 AND id = $3 AND completed_at IS NULL",
            )
            .bind(at)
            .bind($tenant)
            .bind(session)
            .execute(&mut *$tx)
            .await
            .map_err(store_error)?;
        }
        for event in effects.events {
            insert_event!(event).execute(&mut *$tx).await.map_err(store_error)?;
            // One delivery to each webhook of the tenant that takes this kind, due at once.
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, ordering_key, state, attempts, \
                 next_attempt_at, created_at) \
                 SELECT $1 || ':' || id, tenant_id, id, $1, $2, 'pending', 0, $3, $3 FROM webhooks \
                 WHERE tenant_id = $4 AND enabled = 1 AND (events IS NULL OR events LIKE $5)",
            )
            .bind(&event.id)
            .bind(&event.ordering_key)
            .bind(event.created_at)
            .bind(&event.tenant_id)
            .bind(format!("%,{},%", event.kind))
            .execute(&mut *$tx)
            .await
            .map_err(store_error)?;
        }
    }};
}

#[async_trait]
impl<P: EnginePool> Store for SqlStore<P> {
    async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        let tenant = Tenant { id: new_id(), name: name.to_owned(), created_at: now_millis() };
        insert_tenant(self, &tenant)
            .await
            .map_err(|error| insert_error(error, || format!("tenant '{name}'"), || format!("tenant '{name}'")))?;
        Ok(tenant)
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let row: Option<(String, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })
        .map_err(store_error)?;
        Ok(row.map(|(id, name, created_at)| Tenant { id, name, created_at }))
    }

    async fn tenant_count(&self) -> Result<u64> {
        let (count,): (i64,) =
            on_pool!(self, |pool| sqlx::query_as("SELECT COUNT(*) FROM tenants").fetch_one(pool).await)
                .map_err(store_error)?;
        Ok(count_of(count))
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let row: Option<(String, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE id = $1").bind(id).fetch_optional(pool).await
        })
        .map_err(store_error)?;
        Ok(row.map(|(id, name, created_at)| Tenant { id, name, created_at }))
    }

    async fn insert_api_key(&self, record: &ApiKeyRecord, key_hash: &str) -> Result<()> {
        insert_api_key(self, record, key_hash).await.map_err(|error| {
            insert_error(
                error,
                || format!("API key {} or a key with its hash", record.id),
                || format!("API key {} cannot be added: tenant {} is missing, or the key", record.id, record.tenant_id),
            )
        })
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row: Option<ApiKeyRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE key_hash = $1"))
                .bind(key_hash)
                .fetch_optional(pool)
                .await
        })
        .map_err(store_error)?;
        row.map(ApiKeyRow::into_record).transpose()
    }

    async fn api_key(&self, tenant_id: &str, id: &str) -> Result<Option<ApiKeyRecord>> {
        let row: Option<ApiKeyRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE tenant_id = $1 AND id = $2"))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(store_error)?;
        row.map(ApiKeyRow::into_record).transpose()
    }

    async fn list_api_keys(
        &self,
        tenant_id: &str,
        include_revoked: bool,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ApiKeyRecord>> {
        let limit = limit.max(1);
        let rows: Vec<ApiKeyRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                api_key_columns!(),
                " FROM api_keys WHERE tenant_id = $1 AND ($2 OR revoked_at IS NULL) AND id > $3 ORDER BY id LIMIT $4"
            ))
            .bind(tenant_id)
            .bind(include_revoked)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        let items = rows.into_iter().map(ApiKeyRow::into_record).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |record| &record.id))
    }

    async fn revoke_api_key(&self, tenant_id: &str, id: &str, at: Millis) -> Result<bool> {
        let revoked = on_pool!(self, |pool| {
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL")
                .bind(at)
                .bind(tenant_id)
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(store_error)?;
        Ok(revoked == 1)
    }

    async fn insert_connector(&self, record: &ConnectorRecord) -> Result<()> {
        let definition = encode_json(&record.connector, "connector definition")?;
        let warnings = encode_json(&record.warnings, "connector warnings")?;
        on_pool!(self, |pool| {
            sqlx::query(concat!(
                "INSERT INTO connectors (",
                connector_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(&record.id)
            .bind(&record.tenant_id)
            .bind(&definition)
            .bind(&warnings)
            .bind(&record.oauth_client_id)
            .bind(record.oauth_client_secret.as_ref().map(|sealed| sealed.0.as_slice()))
            .bind(record.created_at)
            .bind(record.updated_at)
            .bind(&record.created_by)
            .bind(&record.updated_by)
            .execute(pool)
            .await
            .map(drop)
        })
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
        let row: Option<ConnectorRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                connector_columns!(),
                " FROM connectors WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(store_error)?;
        row.map(ConnectorRow::into_record).transpose()
    }

    async fn list_connectors(&self, tenant_id: &str, after: Option<&str>, limit: u32) -> Result<Page<ConnectorRecord>> {
        let limit = limit.max(1);
        // No cursor is the empty string: every id sorts after it (ids are compared byte by
        // byte). One statement either way, and one that the (tenant_id, id) index serves.
        let rows: Vec<ConnectorRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                connector_columns!(),
                " FROM connectors WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(tenant_id)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        let items = rows.into_iter().map(ConnectorRow::into_record).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |record| &record.id))
    }

    async fn update_connector(&self, record: &ConnectorRecord) -> Result<bool> {
        let definition = encode_json(&record.connector, "connector definition")?;
        let warnings = encode_json(&record.warnings, "connector warnings")?;
        let changed = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE connectors SET definition = $1, warnings = $2, oauth_client_id = $3, oauth_client_secret = $4, \
                 updated_at = $5, updated_by = $8 WHERE tenant_id = $6 AND id = $7",
            )
            .bind(&definition)
            .bind(&warnings)
            .bind(&record.oauth_client_id)
            .bind(record.oauth_client_secret.as_ref().map(|sealed| sealed.0.as_slice()))
            .bind(record.updated_at)
            .bind(&record.tenant_id)
            .bind(&record.id)
            .bind(&record.updated_by)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(store_error)?;
        Ok(changed > 0)
    }

    async fn delete_connector_with(
        &self,
        tenant_id: &str,
        id: &str,
        cascade: bool,
        deleted: &(dyn for<'r> Fn(&'r ConnectionRecord) -> Option<EventRecord> + Send + Sync),
    ) -> Result<DeleteConnector> {
        on_pool!(self, |pool| {
            // The count and the deletes see one state: no connection is added to the
            // connector until this commits.
            let dialect = pool.dialect();
            let mut tx = pool.begin_with(dialect.begin_write).await.map_err(store_error)?;
            let found: Option<String> = sqlx::query_scalar(dialect.lock_connector)
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
            if found.is_none() {
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
            // The connections that go, for their events.
            let going: Vec<ConnectionRow> = sqlx::query_as(concat!(
                "SELECT ",
                connection_columns!(),
                " FROM connections WHERE tenant_id = $1 AND connector_id = $2 ORDER BY id"
            ))
            .bind(tenant_id)
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
            for row in going {
                let record = row.into_record()?;
                if let Some(event) = deleted(&record) {
                    let events = [event];
                    write_effects!(tx, tenant_id, record.id.as_str(), Effects { events: &events, ..Effects::NONE });
                }
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
        })
    }

    async fn insert_connection_with(&self, record: &ConnectionRecord, effects: Effects<'_>) -> Result<()> {
        insert_connection_with_tokens(self, record, record.tokens.as_ref(), record.token_expires_at, effects).await
    }

    async fn connection(&self, tenant_id: &str, id: &str) -> Result<Option<ConnectionRecord>> {
        let row: Option<ConnectionRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                connection_columns!(),
                " FROM connections WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(store_error)?;
        row.map(ConnectionRow::into_record).transpose()
    }

    async fn list_connections(
        &self,
        tenant_id: &str,
        query: &ConnectionQuery<'_>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ConnectionRecord>> {
        let limit = limit.max(1);
        // Built with only the filters that are set, so that each combination is a plain
        // conjunction its index serves; no cursor is the empty string, as in `list_connectors`.
        let rows: Vec<ConnectionRow> = on_pool!(self, |pool| {
            let mut sql = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                connection_columns!(),
                " FROM connections WHERE tenant_id = "
            ));
            sql.push_bind(tenant_id);
            if let Some(connector_id) = query.connector_id {
                sql.push(" AND connector_id = ").push_bind(connector_id);
            }
            if let Some(owner) = query.owner {
                sql.push(" AND end_user_id = ").push_bind(owner);
            }
            if let Some(end_user) = query.visible_to {
                sql.push(" AND (end_user_id = ").push_bind(end_user);
                sql.push(" OR id IN (SELECT connection_id FROM connection_shares WHERE tenant_id = ")
                    .push_bind(tenant_id);
                sql.push(" AND end_user_id = ").push_bind(end_user).push("))");
            }
            if let Some(ids) = query.ids {
                sql.push(" AND id IN (");
                let mut each = sql.separated(", ");
                for id in ids {
                    each.push_bind(id.as_str());
                }
                // `IN ()` is not SQL: no id matches the empty string.
                if ids.is_empty() {
                    each.push_bind("");
                }
                sql.push(")");
            }
            sql.push(" AND id > ").push_bind(after.unwrap_or(""));
            sql.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
            sql.build_query_as().fetch_all(pool).await
        })
        .map_err(store_error)?;
        let items = rows.into_iter().map(ConnectionRow::into_record).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |record| &record.id))
    }

    async fn update_connection_with(&self, record: &ConnectionRecord, effects: Effects<'_>) -> Result<bool> {
        let parameters = encode_json(&record.parameters, "connection parameters")?;
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(pool.dialect().begin_write).await.map_err(store_error)?;
            let changed = sqlx::query(
                "UPDATE connections SET display_name = $1, parameter_set = $2, status = $3, status_reason = $4, \
                 parameters = $5, secrets = $6, updated_at = $7, updated_by = $10 WHERE tenant_id = $8 AND id = $9",
            )
            .bind(&record.display_name)
            .bind(&record.parameter_set)
            .bind(record.status.as_str())
            .bind(&record.status_reason)
            .bind(&parameters)
            .bind(record.secrets.as_ref().map(|sealed| sealed.0.as_slice()))
            .bind(record.updated_at)
            .bind(&record.tenant_id)
            .bind(&record.id)
            .bind(&record.updated_by)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
            if changed == 0 {
                return Ok(false);
            }
            write_effects!(tx, record.tenant_id.as_str(), record.id.as_str(), effects);
            tx.commit().await.map_err(store_error)?;
            Ok(true)
        })
    }

    async fn delete_connection_with(&self, tenant_id: &str, id: &str, effects: Effects<'_>) -> Result<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(pool.dialect().begin_write).await.map_err(store_error)?;
            let deleted = sqlx::query("DELETE FROM connections WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?
                .rows_affected();
            if deleted == 0 {
                return Ok(false);
            }
            write_effects!(tx, tenant_id, id, effects);
            tx.commit().await.map_err(store_error)?;
            Ok(true)
        })
    }

    async fn set_connection_tokens_with(
        &self,
        tenant_id: &str,
        id: &str,
        tokens: Option<&SealedBytes>,
        token_expires_at: Option<Millis>,
        status: ConnectionStatus,
        status_reason: Option<&str>,
        effects: Effects<'_>,
    ) -> Result<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(pool.dialect().begin_write).await.map_err(store_error)?;
            let changed = sqlx::query(
                "UPDATE connections SET tokens = $1, token_expires_at = $2, status = $3, status_reason = $4, \
                 updated_at = $5 WHERE tenant_id = $6 AND id = $7",
            )
            .bind(tokens.map(|sealed| sealed.0.as_slice()))
            .bind(token_expires_at)
            .bind(status.as_str())
            .bind(status_reason)
            .bind(now_millis())
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
            if changed != 1 {
                return Ok(false);
            }
            write_effects!(tx, tenant_id, id, effects);
            tx.commit().await.map_err(store_error)?;
            Ok(true)
        })
    }

    async fn put_share(&self, record: &ShareRecord) -> Result<()> {
        write_share(self, record, true).await
    }

    async fn delete_share(&self, tenant_id: &str, connection_id: &str, end_user_id: &str) -> Result<bool> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query(
                "DELETE FROM connection_shares WHERE tenant_id = $1 AND connection_id = $2 AND end_user_id = $3",
            )
            .bind(tenant_id)
            .bind(connection_id)
            .bind(end_user_id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(store_error)?;
        Ok(deleted > 0)
    }

    async fn list_shares(&self, tenant_id: &str, connection_id: &str) -> Result<Vec<ShareRecord>> {
        let rows: Vec<ShareRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                share_columns!(),
                " FROM connection_shares WHERE tenant_id = $1 AND connection_id = $2 ORDER BY end_user_id"
            ))
            .bind(tenant_id)
            .bind(connection_id)
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        rows.into_iter().map(ShareRow::into_record).collect()
    }

    async fn insert_member(&self, record: &MemberRecord) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(concat!("INSERT INTO members (", member_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7)"))
                .bind(&record.id)
                .bind(&record.tenant_id)
                .bind(&record.email)
                .bind(record.role.as_str())
                .bind(&record.created_by)
                .bind(record.created_at)
                .bind(record.updated_at)
                .execute(pool)
                .await
                .map(drop)
        })
        .map_err(|error| {
            insert_error(
                error,
                || format!("member {} or a member with the address {}", record.id, record.email),
                || {
                    format!(
                        "member {} cannot be added: tenant {} is missing, or the member",
                        record.id, record.tenant_id
                    )
                },
            )
        })
    }

    async fn member(&self, tenant_id: &str, id: &str) -> Result<Option<MemberRecord>> {
        let row: Option<MemberRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!("SELECT ", member_columns!(), " FROM members WHERE tenant_id = $1 AND id = $2"))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(store_error)?;
        row.map(MemberRow::into_record).transpose()
    }

    async fn members_by_email(&self, email: &str) -> Result<Vec<MemberRecord>> {
        let rows: Vec<MemberRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!("SELECT ", member_columns!(), " FROM members WHERE email = $1 ORDER BY id"))
                .bind(email)
                .fetch_all(pool)
                .await
        })
        .map_err(store_error)?;
        rows.into_iter().map(MemberRow::into_record).collect()
    }

    async fn list_members(&self, tenant_id: &str, after: Option<&str>, limit: u32) -> Result<Page<MemberRecord>> {
        let limit = limit.max(1);
        let rows: Vec<MemberRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                member_columns!(),
                " FROM members WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(tenant_id)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        let items = rows.into_iter().map(MemberRow::into_record).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |record| &record.id))
    }

    async fn update_member(&self, record: &MemberRecord) -> Result<bool> {
        let changed = on_pool!(self, |pool| {
            sqlx::query("UPDATE members SET role = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4")
                .bind(record.role.as_str())
                .bind(record.updated_at)
                .bind(&record.tenant_id)
                .bind(&record.id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(store_error)?;
        Ok(changed > 0)
    }

    async fn delete_member(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM members WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(store_error)?;
        Ok(deleted > 0)
    }

    async fn insert_connect_session(&self, record: &ConnectSessionRecord, token_hash: &str) -> Result<()> {
        let connector_ids =
            record.connector_ids.as_ref().map(|ids| encode_json(ids, "connect session connector ids")).transpose()?;
        on_pool!(self, |pool| {
            sqlx::query(concat!(
                "INSERT INTO connect_sessions (token_hash, ",
                connect_session_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .bind(token_hash)
            .bind(&record.id)
            .bind(&record.tenant_id)
            .bind(&record.end_user_id)
            .bind(&connector_ids)
            .bind(&record.return_url)
            .bind(&record.created_by)
            .bind(record.created_at)
            .bind(record.expires_at)
            .bind(&record.connection_id)
            .bind(record.completed_at)
            .bind(&record.app_name)
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(|error| {
            insert_error(
                error,
                || format!("connect session {} or one with its token", record.id),
                || {
                    format!(
                        "connect session {} cannot be added: tenant {} is missing, or the session",
                        record.id, record.tenant_id
                    )
                },
            )
        })
    }

    async fn connect_session(&self, tenant_id: &str, id: &str) -> Result<Option<ConnectSessionRecord>> {
        let row: Option<ConnectSessionRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                connect_session_columns!(),
                " FROM connect_sessions WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(store_error)?;
        row.map(ConnectSessionRow::into_record).transpose()
    }

    async fn connect_session_by_token(&self, token_hash: &str) -> Result<Option<ConnectSessionRecord>> {
        let row: Option<ConnectSessionRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                connect_session_columns!(),
                " FROM connect_sessions WHERE token_hash = $1"
            ))
            .bind(token_hash)
            .fetch_optional(pool)
            .await
        })
        .map_err(store_error)?;
        row.map(ConnectSessionRow::into_record).transpose()
    }

    async fn connect_session_of(&self, tenant_id: &str, connection_id: &str) -> Result<Option<ConnectSessionRecord>> {
        let row: Option<ConnectSessionRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                connect_session_columns!(),
                " FROM connect_sessions WHERE tenant_id = $1 AND connection_id = $2"
            ))
            .bind(tenant_id)
            .bind(connection_id)
            .fetch_optional(pool)
            .await
        })
        .map_err(store_error)?;
        row.map(ConnectSessionRow::into_record).transpose()
    }

    async fn insert_webhook(&self, record: &WebhookRecord) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(concat!(
                "INSERT INTO webhooks (",
                webhook_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ))
            .bind(&record.id)
            .bind(&record.tenant_id)
            .bind(&record.url)
            .bind(event_kinds(record.events.as_deref()))
            .bind(i64::from(record.enabled))
            .bind(record.secrets.0.as_slice())
            .bind(&record.created_by)
            .bind(record.created_at)
            .bind(record.updated_at)
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(|error| {
            insert_error(
                error,
                || format!("webhook {}", record.id),
                || {
                    format!(
                        "webhook {} cannot be added: tenant {} is missing, or the webhook",
                        record.id, record.tenant_id
                    )
                },
            )
        })
    }

    async fn webhook(&self, tenant_id: &str, id: &str) -> Result<Option<WebhookRecord>> {
        let row: Option<WebhookRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE tenant_id = $1 AND id = $2"))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(store_error)?;
        Ok(row.map(WebhookRow::into_record))
    }

    async fn list_webhooks(&self, tenant_id: &str, after: Option<&str>, limit: u32) -> Result<Page<WebhookRecord>> {
        let limit = limit.max(1);
        let rows: Vec<WebhookRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                webhook_columns!(),
                " FROM webhooks WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(tenant_id)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        Ok(page(rows.into_iter().map(WebhookRow::into_record).collect(), limit, |record| &record.id))
    }

    async fn update_webhook(&self, record: &WebhookRecord) -> Result<bool> {
        let changed = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE webhooks SET url = $1, events = $2, enabled = $3, secrets = $4, updated_at = $5 \
                 WHERE tenant_id = $6 AND id = $7",
            )
            .bind(&record.url)
            .bind(event_kinds(record.events.as_deref()))
            .bind(i64::from(record.enabled))
            .bind(record.secrets.0.as_slice())
            .bind(record.updated_at)
            .bind(&record.tenant_id)
            .bind(&record.id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(store_error)?;
        Ok(changed > 0)
    }

    async fn delete_webhook(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(store_error)?;
        Ok(deleted > 0)
    }

    async fn list_deliveries(
        &self,
        tenant_id: &str,
        webhook_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Page<DeliveryRecord>> {
        let limit = limit.max(1);
        // No cursor: every id sorts before the highest character.
        let rows: Vec<DeliveryRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
                 WHERE d.tenant_id = $1 AND d.webhook_id = $2 AND d.id < $3 ORDER BY d.id DESC LIMIT $4"
            ))
            .bind(tenant_id)
            .bind(webhook_id)
            .bind(before.unwrap_or("\u{10FFFF}"))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        let items = rows.into_iter().map(DeliveryRow::into_record).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |record| &record.id))
    }

    async fn claim_deliveries(&self, holder: &str, now: Millis, until: Millis, limit: u32) -> Result<Vec<DeliveryJob>> {
        // The claim's conditions stand in the outer WHERE too: PostgreSQL checks them again on
        // the row as another instance left it, so that of two instances racing for a delivery
        // one claims it.
        let claimed: Vec<String> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "UPDATE webhook_deliveries SET claimed_by = $1, claimed_until = $3 \
                 WHERE state = 'pending' AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2) \
                 AND id IN (SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                   WHERE d.state = 'pending' AND d.next_attempt_at <= $2 AND w.enabled = 1 \
                   AND (d.claimed_until IS NULL OR d.claimed_until < $2) \
                   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries earlier WHERE earlier.webhook_id = d.webhook_id \
                     AND earlier.ordering_key = d.ordering_key AND earlier.state = 'pending' \
                     AND earlier.event_id < d.event_id) \
                   ORDER BY d.next_attempt_at, d.id LIMIT $4) \
                 RETURNING id",
            )
            .bind(holder)
            .bind(now)
            .bind(until)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<DeliveryJobRow> = on_pool!(self, |pool| {
            let mut sql = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                delivery_columns!(),
                ", w.url, w.secrets, e.payload, e.created_at AS event_created_at \
                 FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
                 JOIN webhooks w ON w.id = d.webhook_id WHERE d.claimed_by = "
            ));
            sql.push_bind(holder).push(" AND d.id IN (");
            let mut each = sql.separated(", ");
            for id in &claimed {
                each.push_bind(id.as_str());
            }
            sql.push(") ORDER BY d.event_id");
            sql.build_query_as().fetch_all(pool).await
        })
        .map_err(store_error)?;
        rows.into_iter().map(DeliveryJobRow::into_job).collect()
    }

    async fn record_attempt(&self, delivery_id: &str, holder: &str, attempt: &Attempt) -> Result<bool> {
        let (state, next) = match attempt.next {
            AttemptNext::Delivered => ("delivered", attempt.at),
            AttemptNext::RetryAt(at) => ("pending", at),
            AttemptNext::GiveUp => ("failed", attempt.at),
        };
        let recorded = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2, \
                 last_status = $3, last_error = $4, last_attempt_at = $5, claimed_by = NULL, claimed_until = NULL \
                 WHERE id = $6 AND claimed_by = $7",
            )
            .bind(state)
            .bind(next)
            .bind(attempt.status.map(i64::from))
            .bind(&attempt.error)
            .bind(attempt.at)
            .bind(delivery_id)
            .bind(holder)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(store_error)?;
        Ok(recorded == 1)
    }

    async fn delivery_queue(&self) -> Result<DeliveryQueue> {
        let (pending, oldest, next_due): (i64, Option<i64>, Option<i64>) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), MIN(e.created_at), MIN(d.next_attempt_at) FROM webhook_deliveries d \
                 JOIN webhook_events e ON e.id = d.event_id JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.state = 'pending' AND w.enabled = 1",
            )
            .fetch_one(pool)
            .await
        })
        .map_err(store_error)?;
        Ok(DeliveryQueue { pending: count_of(pending), oldest_pending: oldest, next_due })
    }

    async fn insert_oauth_state(&self, record: &OAuthStateRecord) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
                .bind(now_millis())
                .execute(pool)
                .await
                .map(drop)
        })
        .map_err(store_error)?;
        self.import_oauth_state(record).await
    }

    async fn take_oauth_state(&self, state_hash: &str, now: Millis) -> Result<Option<OAuthStateRecord>> {
        // One statement: of two instances racing for a state, the second deletes nothing.
        let row: Option<OAuthStateRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!("DELETE FROM oauth_states WHERE state_hash = $1 RETURNING ", oauth_state_columns!()))
                .bind(state_hash)
                .fetch_optional(pool)
                .await
        })
        .map_err(store_error)?;
        Ok(row.filter(|r| r.expires_at >= now).map(OAuthStateRow::into_record))
    }

    async fn acquire_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool> {
        // Atomic across processes: a concurrent INSERT of the same name waits for the other's
        // row, then takes the ON CONFLICT path on the row as committed, locked.
        let taken = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE leases.expires_at < $4 OR leases.holder = excluded.holder",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(store_error)?;
        Ok(taken == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await
                .map(drop)
        })
        .map_err(store_error)?;
        Ok(())
    }

    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>> {
        on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1").bind(name).fetch_optional(pool).await
        })
        .map_err(store_error)
    }

    async fn init_setting(&self, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        on_pool!(self, |pool| {
            sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(value)
                .execute(pool)
                .await
                .map(drop)
        })
        .map_err(store_error)?;
        let stored = self.setting(name).await?;
        stored.ok_or_else(|| StoreError::Corrupt(format!("setting {name} vanished after it was written")))
    }

    async fn data_keys(&self) -> Result<Vec<DataKeyRecord>> {
        let rows: Vec<(String, Vec<u8>, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, wrapped, state, created_at FROM data_keys \
                 ORDER BY CASE state WHEN 'current' THEN 0 ELSE 1 END, created_at, id",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        rows.into_iter().map(data_key_record).collect()
    }

    async fn insert_first_data_key(&self, record: &DataKeyRecord) -> Result<bool> {
        // Two processes starting at once: the NOT EXISTS of one may not see the other's row,
        // but the one-current index refuses the second, and DO NOTHING makes that a `false`.
        let inserted = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO data_keys (id, wrapped, state, created_at) \
                 SELECT $1, $2, 'current', $3 WHERE NOT EXISTS (SELECT 1 FROM data_keys) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&record.id)
            .bind(&record.wrapped.0)
            .bind(record.created_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(store_error)?;
        Ok(inserted == 1)
    }

    async fn start_key_rotation(&self, record: &DataKeyRecord) -> Result<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(pool.dialect().begin_write).await.map_err(store_error)?;
            let (retiring,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM data_keys WHERE state = 'retiring'")
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
            if retiring > 0 {
                return Ok(false);
            }
            sqlx::query("UPDATE data_keys SET state = 'retiring' WHERE state = 'current'")
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            sqlx::query("INSERT INTO data_keys (id, wrapped, state, created_at) VALUES ($1, $2, 'current', $3)")
                .bind(&record.id)
                .bind(&record.wrapped.0)
                .bind(record.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|error| insert_error(error, || format!("data key {}", record.id), String::new))?;
            tx.commit().await.map_err(store_error)?;
            Ok(true)
        })
    }

    async fn delete_retiring_data_keys(&self) -> Result<u64> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM data_keys WHERE state = 'retiring'")
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(store_error)
    }

    async fn rewrap_data_keys(
        &self,
        rewrapped: &[Rewrap],
        check: &str,
        check_old: &[u8],
        check_new: &[u8],
    ) -> Result<bool> {
        on_pool!(self, |pool| {
            let dialect = pool.dialect();
            let mut tx = pool.begin_with(dialect.begin_write).await.map_err(store_error)?;
            if let Some(lock) = dialect.lock_data_keys {
                sqlx::query(lock).execute(&mut *tx).await.map_err(store_error)?;
            }
            // A key made meanwhile (wrapped by the old master key) would be lost.
            let (held,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM data_keys").fetch_one(&mut *tx).await.map_err(store_error)?;
            if usize::try_from(held).ok() != Some(rewrapped.len()) {
                return Ok(false);
            }
            for key in rewrapped {
                let written = sqlx::query("UPDATE data_keys SET wrapped = $1 WHERE id = $2 AND wrapped = $3")
                    .bind(&key.new.0)
                    .bind(&key.id)
                    .bind(&key.old.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?
                    .rows_affected();
                if written != 1 {
                    return Ok(false);
                }
            }
            let written = sqlx::query("UPDATE settings SET value = $1 WHERE name = $2 AND value = $3")
                .bind(check_new)
                .bind(check)
                .bind(check_old)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?
                .rows_affected();
            if written != 1 {
                return Ok(false);
            }
            tx.commit().await.map_err(store_error)?;
            Ok(true)
        })
    }

    async fn list_sealed(
        &self,
        column: SealedColumn,
        prefix: &[u8],
        after: &str,
        limit: u32,
    ) -> Result<Vec<SealedValue>> {
        let sql = sealed_sql(column);
        let length = i32::try_from(prefix.len()).unwrap_or(i32::MAX);
        let rows: Vec<(String, Vec<u8>)> = on_pool!(self, |pool| {
            sqlx::query_as(sql.list).bind(length).bind(prefix).bind(after).bind(i64::from(limit)).fetch_all(pool).await
        })
        .map_err(store_error)?;
        Ok(rows.into_iter().map(|(row, sealed)| SealedValue { row, sealed: SealedBytes(sealed) }).collect())
    }

    async fn reseal(&self, column: SealedColumn, values: &[Reseal]) -> Result<u64> {
        let sql = sealed_sql(column);
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(store_error)?;
            let mut written = 0;
            for value in values {
                written += sqlx::query(sql.reseal)
                    .bind(&value.new.0)
                    .bind(&value.row)
                    .bind(&value.old.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?
                    .rows_affected();
            }
            tx.commit().await.map_err(store_error)?;
            Ok(written)
        })
    }

    async fn count_sealed(&self, column: SealedColumn, prefix_len: usize) -> Result<Vec<(Vec<u8>, u64)>> {
        let sql = sealed_sql(column);
        let length = i32::try_from(prefix_len).unwrap_or(i32::MAX);
        let rows: Vec<(Vec<u8>, i64)> =
            on_pool!(self, |pool| sqlx::query_as(sql.count).bind(length).fetch_all(pool).await).map_err(store_error)?;
        Ok(rows.into_iter().map(|(prefix, count)| (prefix, count_of(count))).collect())
    }

    async fn ping(&self) -> Result<()> {
        on_pool!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.map(drop)).map_err(store_error)?;
        Ok(())
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows: Vec<(String, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, name, created_at FROM tenants ORDER BY id").fetch_all(pool).await
        })
        .map_err(store_error)?;
        Ok(rows.into_iter().map(|(id, name, created_at)| Tenant { id, name, created_at }).collect())
    }

    async fn export_api_keys(&self, tenant_id: &str) -> Result<Vec<StoredApiKey>> {
        let rows: Vec<StoredApiKeyRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT key_hash, ",
                api_key_columns!(),
                " FROM api_keys WHERE tenant_id = $1 ORDER BY id"
            ))
            .bind(tenant_id)
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        rows.into_iter()
            .map(|row| Ok(StoredApiKey { record: row.key.into_record()?, key_hash: row.key_hash }))
            .collect()
    }

    async fn export_shares(&self, tenant_id: &str) -> Result<Vec<ShareRecord>> {
        let rows: Vec<ShareRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                share_columns!(),
                " FROM connection_shares WHERE tenant_id = $1 ORDER BY connection_id, end_user_id"
            ))
            .bind(tenant_id)
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        rows.into_iter().map(ShareRow::into_record).collect()
    }

    async fn export_connect_sessions(&self, tenant_id: &str) -> Result<Vec<StoredConnectSession>> {
        let rows: Vec<StoredConnectSessionRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT token_hash, ",
                connect_session_columns!(),
                " FROM connect_sessions WHERE tenant_id = $1 ORDER BY id"
            ))
            .bind(tenant_id)
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        rows.into_iter()
            .map(|row| Ok(StoredConnectSession { record: row.session.into_record()?, token_hash: row.token_hash }))
            .collect()
    }

    async fn export_events(&self, tenant_id: &str) -> Result<Vec<EventRecord>> {
        let rows: Vec<(String, String, String, String, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, tenant_id, type, payload, ordering_key, created_at FROM webhook_events \
                 WHERE tenant_id = $1 ORDER BY id",
            )
            .bind(tenant_id)
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .map(|(id, tenant_id, kind, payload, ordering_key, created_at)| EventRecord {
                id,
                tenant_id,
                kind,
                payload,
                ordering_key,
                created_at,
            })
            .collect())
    }

    async fn export_deliveries(&self, tenant_id: &str) -> Result<Vec<DeliveryRecord>> {
        let rows: Vec<DeliveryRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
                 WHERE d.tenant_id = $1 ORDER BY d.id"
            ))
            .bind(tenant_id)
            .fetch_all(pool)
            .await
        })
        .map_err(store_error)?;
        rows.into_iter().map(DeliveryRow::into_record).collect()
    }

    async fn list_oauth_states(&self) -> Result<Vec<OAuthStateRecord>> {
        let rows: Vec<OAuthStateRow> = on_pool!(self, |pool| {
            sqlx::query_as(concat!("SELECT ", oauth_state_columns!(), " FROM oauth_states ORDER BY state_hash"))
                .fetch_all(pool)
                .await
        })
        .map_err(store_error)?;
        Ok(rows.into_iter().map(OAuthStateRow::into_record).collect())
    }

    async fn list_settings(&self) -> Result<Vec<(String, Vec<u8>)>> {
        on_pool!(self, |pool| sqlx::query_as("SELECT name, value FROM settings ORDER BY name").fetch_all(pool).await)
            .map_err(store_error)
    }

    async fn import_data_key(&self, record: &DataKeyRecord) -> Result<bool> {
        let inserted = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO data_keys (id, wrapped, state, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&record.id)
            .bind(&record.wrapped.0)
            .bind(record.state.as_str())
            .bind(record.created_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(store_error)?;
        Ok(inserted == 1)
    }

    async fn import_tenant(&self, tenant: &Tenant) -> Result<()> {
        insert_tenant(self, tenant).await.map_err(|error| {
            let taken = || format!("tenant {} or a tenant named '{}'", tenant.id, tenant.name);
            insert_error(error, taken, taken)
        })
    }

    async fn import_api_key(&self, key: &StoredApiKey) -> Result<()> {
        self.insert_api_key(&key.record, &key.key_hash).await
    }

    async fn import_share(&self, record: &ShareRecord) -> Result<()> {
        write_share(self, record, false).await
    }

    async fn import_connection(&self, record: &ConnectionRecord) -> Result<()> {
        insert_connection_with_tokens(self, record, record.tokens.as_ref(), record.token_expires_at, Effects::NONE)
            .await
    }

    async fn import_oauth_state(&self, record: &OAuthStateRecord) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(concat!(
                "INSERT INTO oauth_states (",
                oauth_state_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(&record.state_hash)
            .bind(&record.tenant_id)
            .bind(&record.connection_id)
            .bind(record.verifier.0.as_slice())
            .bind(&record.redirect_uri)
            .bind(&record.return_url)
            .bind(record.created_at)
            .bind(record.expires_at)
            .bind(&record.started_by)
            .bind(record.sealed_return_url.as_ref().map(|sealed| sealed.0.as_slice()))
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(|error| insert_error(error, || "sign-in state".to_owned(), || "sign-in state".to_owned()))?;
        Ok(())
    }

    async fn import_connect_session(&self, session: &StoredConnectSession) -> Result<()> {
        self.insert_connect_session(&session.record, &session.token_hash).await
    }

    async fn import_event(&self, event: &EventRecord) -> Result<()> {
        on_pool!(self, |pool| insert_event!(event).execute(pool).await.map(drop)).map_err(|error| {
            insert_error(
                error,
                || format!("event {}", event.id),
                || format!("event {} cannot be added: tenant {} is missing, or the event", event.id, event.tenant_id),
            )
        })
    }

    async fn import_delivery(&self, record: &DeliveryRecord) -> Result<()> {
        // Its ordering key is its event's; the SELECT finds nothing when the event is not the
        // tenant's, and the webhook's is checked likewise.
        let refused = || {
            format!(
                "delivery {} cannot be added: webhook {} or event {} is not in tenant {}, or the delivery",
                record.id, record.webhook_id, record.event_id, record.tenant_id
            )
        };
        let written = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, ordering_key, state, attempts, \
                 next_attempt_at, last_status, last_error, last_attempt_at, created_at) \
                 SELECT $1, e.tenant_id, $3, e.id, e.ordering_key, $5, $6, $7, $8, $9, $10, $11 FROM webhook_events e \
                 WHERE e.tenant_id = $2 AND e.id = $4 \
                 AND EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant_id = $2 AND w.id = $3)",
            )
            .bind(&record.id)
            .bind(&record.tenant_id)
            .bind(&record.webhook_id)
            .bind(&record.event_id)
            .bind(record.state.as_str())
            .bind(i64::from(record.attempts))
            .bind(record.next_attempt_at)
            .bind(record.last_status.map(i64::from))
            .bind(&record.last_error)
            .bind(record.last_attempt_at)
            .bind(record.created_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(|error| insert_error(error, || format!("delivery {}", record.id), refused))?;
        if written == 1 { Ok(()) } else { Err(StoreError::Conflict(refused())) }
    }

    async fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // 15 values a row: a statement stays far under SQLite's 32,766 bound values.
        const ROWS_PER_STATEMENT: usize = 200;
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(store_error)?;
            for chunk in records.chunks(ROWS_PER_STATEMENT) {
                let mut sql = sqlx::QueryBuilder::new(
                    "INSERT INTO audit_events (tenant_id, id, at, principal, action, connection_id, connector_id, \
                     target, operation, method, path, outcome, count, latency_us, instance) ",
                );
                sql.push_values(chunk, |mut row, record| {
                    row.push_bind(&record.tenant_id)
                        .push_bind(&record.id)
                        .push_bind(record.at)
                        .push_bind(&record.principal)
                        .push_bind(&record.action)
                        .push_bind(&record.connection_id)
                        .push_bind(&record.connector_id)
                        .push_bind(&record.target)
                        .push_bind(&record.operation)
                        .push_bind(&record.method)
                        .push_bind(&record.path)
                        .push_bind(&record.outcome)
                        .push_bind(record.count)
                        .push_bind(record.latency_us)
                        .push_bind(&record.instance);
                });
                // An event written twice (a retried batch that had been committed) is one event.
                sql.push(" ON CONFLICT DO NOTHING");
                sql.build().execute(&mut *tx).await.map_err(store_error)?;
            }
            tx.commit().await.map_err(store_error)
        })
    }

    async fn list_audit(
        &self,
        tenant_id: &str,
        query: &AuditQuery<'_>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AuditRecord>> {
        let limit = limit.max(1);
        // Time filters are id bounds: the primary key serves them (see `audit_id_bound`).
        let rows: Vec<AuditRecord> = on_pool!(self, |pool| {
            let mut sql =
                sqlx::QueryBuilder::new(concat!("SELECT ", audit_columns!(), " FROM audit_events WHERE tenant_id = "));
            sql.push_bind(tenant_id);
            if let Some(connection_id) = query.connection_id {
                sql.push(" AND connection_id = ").push_bind(connection_id);
            }
            if let Some(principal) = query.principal {
                sql.push(" AND principal = ").push_bind(principal);
            }
            if let Some(action) = query.action {
                sql.push(" AND action = ").push_bind(action);
            }
            if let Some(since) = query.since {
                sql.push(" AND id >= ").push_bind(crate::audit_id_bound(since));
            }
            if let Some(until) = query.until {
                sql.push(" AND id < ").push_bind(crate::audit_id_bound(until));
            }
            if let Some(cursor) = cursor {
                sql.push(if query.oldest_first { " AND id > " } else { " AND id < " }).push_bind(cursor);
            }
            sql.push(if query.oldest_first { " ORDER BY id" } else { " ORDER BY id DESC" });
            sql.push(" LIMIT ").push_bind(i64::from(limit));
            sql.build_query_as().fetch_all(pool).await
        })
        .map_err(store_error)?;
        Ok(page(rows, limit, |record| &record.id))
    }

    async fn delete_audit_before(&self, tenant_id: &str, before: Millis, limit: u32) -> Result<u64> {
        on_pool!(self, |pool| {
            sqlx::query(
                "DELETE FROM audit_events WHERE tenant_id = $1 AND id IN \
                 (SELECT id FROM audit_events WHERE tenant_id = $1 AND id < $2 ORDER BY id LIMIT $3)",
            )
            .bind(tenant_id)
            .bind(crate::audit_id_bound(before))
            .bind(i64::from(limit.max(1)))
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(store_error)
    }

    async fn publish_change(&self, change: &Change) -> Result<()> {
        match self.pool.engine() {
            // One process on a SQLite file: nobody else to tell.
            Engine::Sqlite(_) => Ok(()),
            Engine::Postgres(pool) => crate::postgres::publish_change(pool, change).await,
        }
    }

    async fn subscribe_changes(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>> {
        match self.pool.engine() {
            Engine::Sqlite(_) => Ok(None),
            Engine::Postgres(pool) => crate::postgres::subscribe_changes(pool).await.map(Some),
        }
    }
}

// The INSERTs that a method and its `import_*` twin share.

/// Refusals are worded by the caller.
async fn insert_tenant<P: EnginePool>(store: &SqlStore<P>, tenant: &Tenant) -> Result<(), sqlx::Error> {
    on_pool!(store, |pool| {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(pool)
            .await
            .map(drop)
    })
}

/// Refusals are worded by the caller.
async fn insert_api_key<P: EnginePool>(
    store: &SqlStore<P>,
    record: &ApiKeyRecord,
    key_hash: &str,
) -> Result<(), sqlx::Error> {
    let connection_ids = match &record.connection_ids {
        Some(ids) => Some(serde_json::to_string(ids).map_err(|error| sqlx::Error::Encode(Box::new(error)))?),
        None => None,
    };
    on_pool!(store, |pool| {
        sqlx::query(concat!(
            "INSERT INTO api_keys (key_hash, ",
            api_key_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(key_hash)
        .bind(&record.id)
        .bind(&record.tenant_id)
        .bind(&record.name)
        .bind(record.role.as_str())
        .bind(&record.end_user_id)
        .bind(&connection_ids)
        .bind(record.expires_at)
        .bind(&record.created_by)
        .bind(record.created_at)
        .bind(record.revoked_at)
        .bind(record.rate_limit.map(i64::from))
        .execute(pool)
        .await
        .map(drop)
    })
}

/// Writes a share of a connection of its own tenant (else a conflict); an existing share of the
/// same end user has its permission replaced (`replace`) or is a conflict.
async fn write_share<P: EnginePool>(store: &SqlStore<P>, record: &ShareRecord, replace: bool) -> Result<()> {
    const INSERT: &str = concat!(
        "INSERT INTO connection_shares (",
        share_columns!(),
        ") SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM connections WHERE tenant_id = $1 AND id = $2)"
    );
    const UPSERT: &str = concat!(
        "INSERT INTO connection_shares (",
        share_columns!(),
        ") SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM connections WHERE tenant_id = $1 AND id = $2) \
         ON CONFLICT (connection_id, end_user_id) DO UPDATE SET permission = excluded.permission, \
         updated_at = excluded.updated_at"
    );
    let written = on_pool!(store, |pool| {
        sqlx::query(if replace { UPSERT } else { INSERT })
            .bind(&record.tenant_id)
            .bind(&record.connection_id)
            .bind(&record.end_user_id)
            .bind(record.permission.as_str())
            .bind(&record.created_by)
            .bind(record.created_at)
            .bind(record.updated_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
    })
    .map_err(|error| insert_error(error, || share_conflict(record), || share_conflict(record)))?;
    if written == 1 { Ok(()) } else { Err(StoreError::Conflict(share_conflict(record))) }
}

/// The words for a share that cannot be written: its connection is missing (or another
/// tenant's), or, on import, it is there already.
fn share_conflict(record: &ShareRecord) -> String {
    format!(
        "the share of connection {} with {} cannot be written: the connection is missing, or a share",
        record.connection_id, record.end_user_id
    )
}

/// A connection as it is, but with these tokens, and what else the insert does.
async fn insert_connection_with_tokens<P: EnginePool>(
    store: &SqlStore<P>,
    record: &ConnectionRecord,
    tokens: Option<&SealedBytes>,
    token_expires_at: Option<Millis>,
    effects: Effects<'_>,
) -> Result<()> {
    let parameters = encode_json(&record.parameters, "connection parameters")?;
    let refused = |error| {
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
    };
    on_pool!(store, |pool| {
        let mut tx = pool.begin_with(pool.dialect().begin_write).await.map_err(store_error)?;
        sqlx::query(concat!(
            "INSERT INTO connections (",
            connection_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(&record.id)
        .bind(&record.tenant_id)
        .bind(&record.connector_id)
        .bind(&record.created_by)
        .bind(&record.display_name)
        .bind(&record.parameter_set)
        .bind(record.status.as_str())
        .bind(&record.status_reason)
        .bind(&parameters)
        .bind(record.secrets.as_ref().map(|sealed| sealed.0.as_slice()))
        .bind(tokens.map(|sealed| sealed.0.as_slice()))
        .bind(token_expires_at)
        .bind(record.created_at)
        .bind(record.updated_at)
        .bind(&record.end_user_id)
        .bind(&record.updated_by)
        .execute(&mut *tx)
        .await
        .map_err(refused)?;
        write_effects!(tx, record.tenant_id.as_str(), record.id.as_str(), effects);
        tx.commit().await.map_err(store_error)
    })
}
