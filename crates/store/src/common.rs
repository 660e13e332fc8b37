//! What both engines share: the row types, their decoding into records, pagination, JSON
//! encoding and the mapping of database errors onto [`StoreError`]. One copy, so that the
//! engines cannot drift apart in wording or in what counts as corrupt.

use portico_model::{Connector, Diagnostic, Role, SharePermission};
use sqlx::error::ErrorKind;

use crate::{
    ApiKeyRecord, ConnectSessionRecord, ConnectionRecord, ConnectionStatus, ConnectorRecord, DeliveryJob,
    DeliveryRecord, DeliveryState, MemberRecord, OAuthStateRecord, Page, Result, SealedBytes, ShareRecord, StoreError,
    WebhookRecord,
};

/// The columns of [`ConnectorRow`]: a macro so that queries stay `&'static str` (`concat!`).
macro_rules! connector_columns {
    () => {
        "id, tenant_id, definition, warnings, oauth_client_id, oauth_client_secret, created_at, updated_at, \
         created_by, updated_by"
    };
}
pub(crate) use connector_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectorRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) definition: String,
    pub(crate) warnings: String,
    pub(crate) oauth_client_id: Option<String>,
    pub(crate) oauth_client_secret: Option<Vec<u8>>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) created_by: Option<String>,
    pub(crate) updated_by: Option<String>,
}

impl ConnectorRow {
    pub(crate) fn into_record(self) -> Result<ConnectorRecord> {
        let connector: Connector = decode_json(&self.definition, || format!("connector {}: definition", self.id))?;
        let warnings: Vec<Diagnostic> = decode_json(&self.warnings, || format!("connector {}: warnings", self.id))?;
        Ok(ConnectorRecord {
            id: self.id,
            tenant_id: self.tenant_id,
            connector,
            warnings,
            oauth_client_id: self.oauth_client_id,
            oauth_client_secret: self.oauth_client_secret.map(SealedBytes),
            created_by: self.created_by,
            updated_by: self.updated_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The columns of [`ConnectionRow`].
macro_rules! connection_columns {
    () => {
        "id, tenant_id, connector_id, created_by_key, display_name, parameter_set, status, status_reason, \
         parameters, secrets, tokens, token_expires_at, created_at, updated_at, end_user_id, updated_by"
    };
}
pub(crate) use connection_columns;

/// The columns of [`OAuthStateRow`].
macro_rules! oauth_state_columns {
    () => {
        "state_hash, tenant_id, connection_id, verifier, redirect_uri, return_url, created_at, expires_at, started_by, \
         sealed_return_url"
    };
}
pub(crate) use oauth_state_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct OAuthStateRow {
    pub(crate) state_hash: String,
    pub(crate) tenant_id: String,
    pub(crate) connection_id: String,
    pub(crate) verifier: Vec<u8>,
    pub(crate) redirect_uri: String,
    pub(crate) return_url: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) started_by: Option<String>,
    pub(crate) sealed_return_url: Option<Vec<u8>>,
}

impl OAuthStateRow {
    pub(crate) fn into_record(self) -> OAuthStateRecord {
        OAuthStateRecord {
            state_hash: self.state_hash,
            tenant_id: self.tenant_id,
            connection_id: self.connection_id,
            verifier: SealedBytes(self.verifier),
            redirect_uri: self.redirect_uri,
            return_url: self.return_url,
            sealed_return_url: self.sealed_return_url.map(SealedBytes),
            started_by: self.started_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectionRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) connector_id: String,
    pub(crate) created_by_key: String,
    pub(crate) display_name: String,
    pub(crate) parameter_set: Option<String>,
    pub(crate) status: String,
    pub(crate) status_reason: Option<String>,
    pub(crate) parameters: String,
    pub(crate) secrets: Option<Vec<u8>>,
    pub(crate) tokens: Option<Vec<u8>>,
    pub(crate) token_expires_at: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) end_user_id: Option<String>,
    pub(crate) updated_by: Option<String>,
}

impl ConnectionRow {
    pub(crate) fn into_record(self) -> Result<ConnectionRecord> {
        let status = ConnectionStatus::parse(&self.status)
            .ok_or_else(|| StoreError::Corrupt(format!("connection {}: unknown status", self.id)))?;
        let parameters = decode_json(&self.parameters, || format!("connection {}: parameters", self.id))?;
        Ok(ConnectionRecord {
            id: self.id,
            tenant_id: self.tenant_id,
            connector_id: self.connector_id,
            end_user_id: self.end_user_id,
            created_by: self.created_by_key,
            updated_by: self.updated_by,
            display_name: self.display_name,
            parameter_set: self.parameter_set,
            status,
            status_reason: self.status_reason,
            parameters,
            secrets: self.secrets.map(SealedBytes),
            tokens: self.tokens.map(SealedBytes),
            token_expires_at: self.token_expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The columns of [`ApiKeyRow`].
macro_rules! api_key_columns {
    () => {
        "id, tenant_id, name, role, end_user_id, connection_ids, expires_at, created_by, created_at, revoked_at, \
         rate_limit"
    };
}
pub(crate) use api_key_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) end_user_id: Option<String>,
    /// A JSON array of ids.
    pub(crate) connection_ids: Option<String>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) created_by: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) rate_limit: Option<i64>,
}

impl ApiKeyRow {
    pub(crate) fn into_record(self) -> Result<ApiKeyRecord> {
        let role = role(&self.role, || format!("API key {}", self.id))?;
        let connection_ids = match &self.connection_ids {
            Some(text) => Some(decode_json(text, || format!("API key {}: connection ids", self.id))?),
            None => None,
        };
        Ok(ApiKeyRecord {
            id: self.id,
            tenant_id: self.tenant_id,
            name: self.name,
            role,
            end_user_id: self.end_user_id,
            connection_ids,
            expires_at: self.expires_at,
            created_by: self.created_by,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
            rate_limit: self.rate_limit.and_then(|rate| u32::try_from(rate).ok()),
        })
    }
}

/// An [`ApiKeyRow`] with its hash, as a store moves to another.
#[derive(sqlx::FromRow)]
pub(crate) struct StoredApiKeyRow {
    pub(crate) key_hash: String,
    #[sqlx(flatten)]
    pub(crate) key: ApiKeyRow,
}

/// The columns of [`ShareRow`].
macro_rules! share_columns {
    () => {
        "tenant_id, connection_id, end_user_id, permission, created_by, created_at, updated_at"
    };
}
pub(crate) use share_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct ShareRow {
    pub(crate) tenant_id: String,
    pub(crate) connection_id: String,
    pub(crate) end_user_id: String,
    pub(crate) permission: String,
    pub(crate) created_by: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl ShareRow {
    pub(crate) fn into_record(self) -> Result<ShareRecord> {
        let permission = SharePermission::parse(&self.permission).ok_or_else(|| {
            StoreError::Corrupt(format!("share of connection {}: unknown permission", self.connection_id))
        })?;
        Ok(ShareRecord {
            tenant_id: self.tenant_id,
            connection_id: self.connection_id,
            end_user_id: self.end_user_id,
            permission,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The columns of [`MemberRow`].
macro_rules! member_columns {
    () => {
        "id, tenant_id, email, role, created_by, created_at, updated_at"
    };
}
pub(crate) use member_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) email: String,
    pub(crate) role: String,
    pub(crate) created_by: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl MemberRow {
    pub(crate) fn into_record(self) -> Result<MemberRecord> {
        let role = role(&self.role, || format!("member {}", self.id))?;
        Ok(MemberRecord {
            id: self.id,
            tenant_id: self.tenant_id,
            email: self.email,
            role,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn role(text: &str, what: impl FnOnce() -> String) -> Result<Role> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("{}: unknown role", what())))
}

/// The columns of [`ConnectSessionRow`].
macro_rules! connect_session_columns {
    () => {
        "id, tenant_id, end_user_id, connector_ids, return_url, created_by, created_at, expires_at, connection_id, \
         completed_at, app_name"
    };
}
pub(crate) use connect_session_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectSessionRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) end_user_id: String,
    pub(crate) connector_ids: Option<String>,
    pub(crate) return_url: Option<String>,
    pub(crate) created_by: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) connection_id: Option<String>,
    pub(crate) completed_at: Option<i64>,
    pub(crate) app_name: Option<String>,
}

impl ConnectSessionRow {
    pub(crate) fn into_record(self) -> Result<ConnectSessionRecord> {
        let connector_ids = match &self.connector_ids {
            Some(text) => Some(decode_json(text, || format!("connect session {}: connector ids", self.id))?),
            None => None,
        };
        Ok(ConnectSessionRecord {
            id: self.id,
            tenant_id: self.tenant_id,
            end_user_id: self.end_user_id,
            app_name: self.app_name,
            connector_ids,
            return_url: self.return_url,
            created_by: self.created_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
            connection_id: self.connection_id,
            completed_at: self.completed_at,
        })
    }
}

/// A [`ConnectSessionRow`] with its token hash, as a store moves to another.
#[derive(sqlx::FromRow)]
pub(crate) struct StoredConnectSessionRow {
    pub(crate) token_hash: String,
    #[sqlx(flatten)]
    pub(crate) session: ConnectSessionRow,
}

/// The columns of [`WebhookRow`].
macro_rules! webhook_columns {
    () => {
        "id, tenant_id, url, events, enabled, secrets, created_by, created_at, updated_at"
    };
}
pub(crate) use webhook_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct WebhookRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) url: String,
    pub(crate) events: Option<String>,
    pub(crate) enabled: i64,
    pub(crate) secrets: Vec<u8>,
    pub(crate) created_by: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl WebhookRow {
    pub(crate) fn into_record(self) -> WebhookRecord {
        WebhookRecord {
            id: self.id,
            tenant_id: self.tenant_id,
            url: self.url,
            events: self.events.map(|text| text.split(',').filter(|k| !k.is_empty()).map(str::to_owned).collect()),
            enabled: self.enabled != 0,
            secrets: SealedBytes(self.secrets),
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A webhook's event kinds as stored: `,a,b,`, so that `LIKE '%,a,%'` finds one exactly.
pub(crate) fn event_kinds(events: Option<&[String]>) -> Option<String> {
    events.map(|kinds| format!(",{},", kinds.join(",")))
}

/// The columns of [`DeliveryRow`], of a delivery `d` joined with its event `e`.
macro_rules! delivery_columns {
    () => {
        "d.id, d.tenant_id, d.webhook_id, d.event_id, e.type AS event_kind, d.state, d.attempts, d.next_attempt_at, \
         d.last_status, d.last_error, d.last_attempt_at, d.created_at"
    };
}
pub(crate) use delivery_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) webhook_id: String,
    pub(crate) event_id: String,
    pub(crate) event_kind: String,
    pub(crate) state: String,
    pub(crate) attempts: i64,
    pub(crate) next_attempt_at: i64,
    pub(crate) last_status: Option<i64>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_attempt_at: Option<i64>,
    pub(crate) created_at: i64,
}

impl DeliveryRow {
    pub(crate) fn into_record(self) -> Result<DeliveryRecord> {
        let state = DeliveryState::parse(&self.state)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery {}: unknown state", self.id)))?;
        Ok(DeliveryRecord {
            id: self.id,
            tenant_id: self.tenant_id,
            webhook_id: self.webhook_id,
            event_id: self.event_id,
            event_kind: self.event_kind,
            state,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            next_attempt_at: self.next_attempt_at,
            last_status: self.last_status.and_then(|status| u16::try_from(status).ok()),
            last_error: self.last_error,
            last_attempt_at: self.last_attempt_at,
            created_at: self.created_at,
        })
    }
}

/// A [`DeliveryRow`] with what an attempt needs.
#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryJobRow {
    #[sqlx(flatten)]
    pub(crate) delivery: DeliveryRow,
    pub(crate) url: String,
    pub(crate) secrets: Vec<u8>,
    pub(crate) payload: String,
    pub(crate) event_created_at: i64,
}

impl DeliveryJobRow {
    pub(crate) fn into_job(self) -> Result<DeliveryJob> {
        Ok(DeliveryJob {
            delivery: self.delivery.into_record()?,
            url: self.url,
            secrets: SealedBytes(self.secrets),
            payload: self.payload,
            event_created_at: self.event_created_at,
        })
    }
}

/// `next` is the last id when the page is full: there may be more.
pub(crate) fn page<T>(items: Vec<T>, limit: u32, id: impl Fn(&T) -> &String) -> Page<T> {
    let full = items.len() >= limit as usize;
    let next = if full { items.last().map(|item| id(item).clone()) } else { None };
    Page { items, next }
}

pub(crate) fn count_of(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

pub(crate) fn encode_json<T: serde::Serialize + ?Sized>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|_| StoreError::Corrupt(format!("cannot encode the {what} as JSON")))
}

/// The message names the record and the position only: serde's own text may quote the value.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(text: &str, what: impl FnOnce() -> String) -> Result<T> {
    serde_json::from_str(text).map_err(|error| {
        StoreError::Corrupt(format!(
            "{} is not valid ({:?} error at line {}, column {})",
            what(),
            error.classify(),
            error.line(),
            error.column()
        ))
    })
}

/// An INSERT's error: a unique violation is a conflict on `duplicate`; a foreign key
/// violation means the parent row is missing, described by `missing_parent`. Both become
/// [`StoreError::Conflict`], whose message ends in "already exists": the texts are worded for it.
pub(crate) fn insert_error(
    error: sqlx::Error,
    duplicate: impl FnOnce() -> String,
    missing_parent: impl FnOnce() -> String,
) -> StoreError {
    if let sqlx::Error::Database(database) = &error {
        match database.kind() {
            ErrorKind::UniqueViolation => return StoreError::Conflict(duplicate()),
            ErrorKind::ForeignKeyViolation => return StoreError::Conflict(missing_parent()),
            _ => {}
        }
    }
    store_error(error)
}

/// Never includes row contents: SQLite's messages name tables and columns, not values, and so
/// does PostgreSQL's primary message (the values are in its `detail`, which is left out).
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Database(database) => match database.kind() {
            ErrorKind::UniqueViolation => StoreError::Conflict("a record with the same key".to_owned()),
            // PostgreSQL's "character not in repertoire" and "untranslatable character": a NUL
            // in text. The value is at fault, not the database.
            _ if matches!(database.code().as_deref(), Some("22021" | "22P05")) => {
                StoreError::Unstorable(database.message().to_owned())
            }
            _ => StoreError::Unavailable(format!("database error: {}", database.message())),
        },
        sqlx::Error::ColumnDecode { index, .. } => StoreError::Corrupt(format!("column {index} cannot be decoded")),
        sqlx::Error::Decode(_) => StoreError::Corrupt("a value cannot be decoded".to_owned()),
        sqlx::Error::ColumnNotFound(column) => StoreError::Corrupt(format!("column {column} is missing")),
        sqlx::Error::ColumnIndexOutOfBounds { index, len } => {
            StoreError::Corrupt(format!("column {index} is missing (the row has {len})"))
        }
        sqlx::Error::TypeNotFound { type_name } => StoreError::Corrupt(format!("type {type_name} is unknown")),
        other => StoreError::Unavailable(other.to_string()),
    }
}
