//! Portico's persistent store.
//!
//! One trait, [`Store`], with two engines behind the same behaviour: the embedded SQLite file
//! ([`SqliteStore`], the default) and a PostgreSQL database that several instances share
//! ([`PgStore`]); [`open`] picks one by the URL's scheme. Every query about connectors and
//! connections is scoped by tenant: a row of another tenant is indistinguishable from a missing
//! one.
//!
//! Both engines run one implementation of the trait, [`SqlStore`], in which every query is
//! written once (with `$n` placeholders, which SQLite takes too). What the engines do differently stays apart and
//! small: how a connector's delete keeps connections from being added meanwhile (SQLite's
//! `BEGIN IMMEDIATE`, PostgreSQL's `FOR UPDATE`), LISTEN/NOTIFY on PostgreSQL, and how each opens
//! its pool. A new table or query is therefore written once.
//!
//! The schema comes from migrations run at open: each engine's own (`migrations/sqlite`,
//! `migrations/postgres`, 0001 to 0003, never to be edited: databases recorded their
//! checksums), then the shared ones (`migrations/shared`), written once in SQLite's SQL and
//! rendered for PostgreSQL (`BLOB` becomes `BYTEA`, `COLLATE BINARY` becomes `COLLATE "C"`) with
//! the same version numbers. `migrations/shared/README.md` says how to write one;
//! [`SqliteStore::migrator`] and [`PgStore::migrator`] list what each engine applies.
//!
//! Architecture invariant: the store never sees a plaintext secret. Connection secrets and
//! OAuth client secrets arrive sealed ([`SealedBytes`]) and leave sealed.

mod common;
mod migrations;
pub mod postgres;
mod sql;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use portico_model::{Connector, Diagnostic, Role, SharePermission};
pub use postgres::{PgOptions, PgStore, redact_url};
use serde::{Deserialize, Serialize};
pub use sql::SqlStore;
pub use sqlite::SqliteStore;

/// Opens the store at `url`, choosing the engine by its scheme: `sqlite:` (a file, created
/// when missing, see [`SqliteStore::open`]) or `postgres:` / `postgresql:` (an existing
/// database, with the default [`PgOptions`], see [`PgStore::open`]). Either way the schema is
/// brought up to date. Any other scheme, or none, is refused.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    match url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => Ok(Arc::new(SqliteStore::open(url).await?)),
        Some("postgres" | "postgresql") => Ok(Arc::new(PgStore::open(url).await?)),
        _ => Err(StoreError::Unavailable(
            "the database URL must start with sqlite:, postgres: or postgresql:".to_owned(),
        )),
    }
}

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// What changed, as far as what processes keep in memory is concerned (prepared connections,
/// known API keys, signed-in people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Connection(String),
    Connector(String),
    /// An API key was revoked.
    ApiKey(String),
    /// A member's role changed, or the member was removed.
    Member(String),
    /// The data keys changed (a rotation began or ended): reload them.
    DataKeys,
    /// Changes may have been missed (the listening connection dropped): forget everything.
    Everything,
}

impl Change {
    /// The text sent between processes.
    pub fn to_payload(&self) -> String {
        match self {
            Change::Connection(id) => format!("connection:{id}"),
            Change::Connector(id) => format!("connector:{id}"),
            Change::ApiKey(id) => format!("api_key:{id}"),
            Change::Member(id) => format!("member:{id}"),
            Change::DataKeys => "data_keys".to_owned(),
            Change::Everything => "everything".to_owned(),
        }
    }

    pub fn from_payload(payload: &str) -> Change {
        match payload.split_once(':') {
            Some(("connection", id)) => Change::Connection(id.to_owned()),
            Some(("connector", id)) => Change::Connector(id.to_owned()),
            Some(("api_key", id)) => Change::ApiKey(id.to_owned()),
            Some(("member", id)) => Change::Member(id.to_owned()),
            _ if payload == "data_keys" => Change::DataKeys,
            _ => Change::Everything,
        }
    }
}

/// A new record id: a UUID v7 as text. Ids sort by creation time (strictly, within one
/// process), which is what list pagination relies on.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new UUIDv7 of the time `at` whose 12 bits after the time hold `sequence` (at most 4095):
/// ids sort as their times do, and ids of one millisecond as their sequences do.
pub fn new_id_at(at: Millis, sequence: u16) -> String {
    let mut bytes = [0u8; 10];
    // The random part of a fresh UUIDv7 (its version and variant bits are set again below).
    bytes.copy_from_slice(&uuid::Uuid::now_v7().as_bytes()[6..]);
    let sequence = sequence.min(0x0fff);
    bytes[0] = (sequence >> 8) as u8;
    bytes[1] = (sequence & 0xff) as u8;
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(at).unwrap_or(0), &bytes).into_uuid().to_string()
}

/// The current time in [`Millis`].
pub fn now_millis() -> Millis {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Millis::try_from(since_epoch.as_millis()).unwrap_or(Millis::MAX)
}

/// Opaque sealed bytes (AES-256-GCM with key id and associated data, made elsewhere).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBytes(pub Vec<u8>);

impl std::fmt::Debug for SealedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedBytes({} bytes)", self.0.len())
    }
}

/// A data key as the store keeps it: wrapped (sealed) by the master key, opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    /// The key id, as sealed values name it.
    pub id: String,
    pub wrapped: SealedBytes,
    pub state: DataKeyState,
    pub created_at: Millis,
}

/// Whether a data key seals new values (one key at a time) or only opens old ones until a
/// rotation has re-sealed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKeyState {
    Current,
    Retiring,
}

impl DataKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            DataKeyState::Current => "current",
            DataKeyState::Retiring => "retiring",
        }
    }

    pub fn parse(text: &str) -> Option<DataKeyState> {
        match text {
            "current" => Some(DataKeyState::Current),
            "retiring" => Some(DataKeyState::Retiring),
            _ => None,
        }
    }
}

/// Every column that holds sealed values, each known by its table's key. The store reads and
/// replaces their bytes for a rotation; what binds each value to its row is the sealer's
/// business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SealedColumn {
    /// `connections.secrets`, by connection id.
    ConnectionSecrets,
    /// `connections.tokens`, by connection id.
    ConnectionTokens,
    /// `connectors.oauth_client_secret`, by connector id.
    ConnectorClientSecret,
    /// `oauth_states.verifier`, by state hash.
    SignInVerifier,
    /// `oauth_states.sealed_return_url`, by state hash.
    SignInReturnUrl,
    /// `webhooks.secrets`, by webhook id.
    WebhookSecrets,
}

impl SealedColumn {
    pub const ALL: [SealedColumn; 6] = [
        SealedColumn::ConnectionSecrets,
        SealedColumn::ConnectionTokens,
        SealedColumn::ConnectorClientSecret,
        SealedColumn::SignInVerifier,
        SealedColumn::SignInReturnUrl,
        SealedColumn::WebhookSecrets,
    ];

    /// `table.column`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            SealedColumn::ConnectionSecrets => "connections.secrets",
            SealedColumn::ConnectionTokens => "connections.tokens",
            SealedColumn::ConnectorClientSecret => "connectors.oauth_client_secret",
            SealedColumn::SignInVerifier => "oauth_states.verifier",
            SealedColumn::SignInReturnUrl => "oauth_states.sealed_return_url",
            SealedColumn::WebhookSecrets => "webhooks.secrets",
        }
    }
}

/// One sealed value of a [`SealedColumn`] and the key of its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub row: String,
    pub sealed: SealedBytes,
}

/// A value re-sealed: written only if the row still holds `old` (compare-and-set), so that a
/// value another process wrote meanwhile is never replaced by a stale one.
#[derive(Debug, Clone)]
pub struct Reseal {
    pub row: String,
    pub old: SealedBytes,
    pub new: SealedBytes,
}

/// A data key wrapped by a new master key: written only with every other key's, and only if
/// the store still holds `old` (see [`Store::rewrap_data_keys`]).
#[derive(Debug, Clone)]
pub struct Rewrap {
    pub id: String,
    pub old: SealedBytes,
    pub new: SealedBytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
}

/// A tenant's API key, known by the SHA-256 of the key (hex); the key itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    /// What the key is for.
    pub name: String,
    pub role: Role,
    /// The end user a `user` key acts as.
    pub end_user_id: Option<String>,
    /// A key narrowed to calling through these connections only.
    pub connection_ids: Option<Vec<String>>,
    pub expires_at: Option<Millis>,
    /// Who made it (`key:<id>`, `member:<id>`, `operator`); `None` for keys made before keys
    /// had makers.
    pub created_by: Option<String>,
    pub created_at: Millis,
    /// When it was revoked: it names nobody any more.
    pub revoked_at: Option<Millis>,
    /// Its own limit of calls through connections, in requests per second.
    pub rate_limit: Option<u32>,
}

/// An API key as stored, its hash included: what moving a store to another carries
/// ([`Store::export_api_keys`], [`Store::import_api_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApiKey {
    pub record: ApiKeyRecord,
    /// The SHA-256 of the key, hex.
    pub key_hash: String,
}

/// A connection shared with another end user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    pub tenant_id: String,
    pub connection_id: String,
    pub end_user_id: String,
    pub permission: SharePermission,
    pub created_by: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A person of a tenant, known by their e-mail address (lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: Role,
    pub created_by: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// An event for webhooks, written to the outbox with the change that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: String,
    pub tenant_id: String,
    /// `connection.created`, `connect_session.completed`, …
    pub kind: String,
    /// The JSON sent, as it is sent: never a secret.
    pub payload: String,
    /// Deliveries of one key (a connection's id) go out in the order of their events' ids.
    pub ordering_key: String,
    pub created_at: Millis,
}

/// What a write does besides itself, in the same transaction: it happens with the write or not
/// at all.
#[derive(Debug, Default, Clone, Copy)]
pub struct Effects<'a> {
    /// Events to write to the outbox (one delivery each to every webhook that takes its kind).
    pub events: &'a [EventRecord],
    /// The connect session (id) whose one connection this write makes, at a time: a conflict
    /// when it has made one already or has expired by then.
    pub claim_session: Option<(&'a str, Millis)>,
    /// The connect session (id) this write completes, at a time.
    pub complete_session: Option<(&'a str, Millis)>,
}

impl Effects<'_> {
    pub const NONE: Effects<'static> = Effects { events: &[], claim_session: None, complete_session: None };
}

/// A short-lived link with which an end user connects an account without a Portico key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSessionRecord {
    pub id: String,
    pub tenant_id: String,
    /// Who will own the connection.
    pub end_user_id: String,
    /// How the end user's page names the app that sent the link.
    pub app_name: Option<String>,
    /// The connectors offered; `None`: all of the tenant's.
    pub connector_ids: Option<Vec<String>>,
    /// Where the browser goes at the end, with `connectionId`.
    pub return_url: Option<String>,
    pub created_by: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// The one connection it made.
    pub connection_id: Option<String>,
    /// When that connection was connected.
    pub completed_at: Option<Millis>,
}

/// A connect session as stored, its token hash included: what moving a store to another
/// carries ([`Store::export_connect_sessions`], [`Store::import_connect_session`]), so that a
/// link handed out before the move still works after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConnectSession {
    pub record: ConnectSessionRecord,
    /// The SHA-256 of the session's token, hex.
    pub token_hash: String,
}

/// Where the app is told of changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    /// The event kinds it receives; `None`: all.
    pub events: Option<Vec<String>>,
    pub enabled: bool,
    /// Its signing secrets, sealed with the webhook id as associated data.
    pub secrets: SealedBytes,
    pub created_by: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Given up after the retry period.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        match text {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// One event's delivery to one webhook, as its log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: String,
    pub tenant_id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_kind: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Millis,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<Millis>,
    pub created_at: Millis,
}

/// A delivery claimed for an attempt, with what the attempt needs.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub delivery: DeliveryRecord,
    pub url: String,
    pub secrets: SealedBytes,
    pub payload: String,
    /// When the event happened (the retry period counts from it).
    pub event_created_at: Millis,
}

/// How an attempt went, and what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: Millis,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub next: AttemptNext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptNext {
    Delivered,
    RetryAt(Millis),
    GiveUp,
}

/// The outbox as a whole: what waits to be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryQueue {
    pub pending: u64,
    /// When the oldest pending delivery's event happened.
    pub oldest_pending: Option<Millis>,
    /// When the next pending delivery is due.
    pub next_due: Option<Millis>,
}

/// One event of the audit trail: a use of a credential or a change, by whom, with what
/// outcome. Never holds a secret, a query value, a header or a body.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRecord {
    /// A UUIDv7: ids sort in time order (see [`audit_id_bound`]).
    pub id: String,
    pub tenant_id: String,
    pub at: Millis,
    /// `key:<id>`, `member:<id>`, `operator`, `connect_session:<id>` or `system`.
    pub principal: String,
    /// What happened, e.g. `call.proxy`, `token.refresh`, `connection.created`.
    pub action: String,
    pub connection_id: Option<String>,
    pub connector_id: Option<String>,
    /// What else it concerned: a key, member, webhook, share's end user or connect session.
    pub target: Option<String>,
    /// The operation id of an operation call (or of the operation a proxied path matched).
    pub operation: Option<String>,
    pub method: Option<String>,
    /// The path *template* the call matched, never the path itself.
    pub path: Option<String>,
    /// The backend's status (`200`), `ok`, or an error kind (`timeout`, `unreachable`,
    /// `refused`, `error`).
    pub outcome: String,
    /// How many calls alike it stands for (1 for anything but calls; see the migration).
    pub count: i64,
    /// How long it took (the mean, for several calls), in microseconds, where measured.
    pub latency_us: Option<i64>,
    /// The instance that did it.
    pub instance: String,
}

/// Which audit events a listing returns: every filter that is set applies.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditQuery<'a> {
    pub connection_id: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub action: Option<&'a str>,
    /// At or after.
    pub since: Option<Millis>,
    /// Before.
    pub until: Option<Millis>,
    /// Oldest first (an export), rather than newest first (a listing).
    pub oldest_first: bool,
}

/// The least id of an audit event at or after `at`: ids are UUIDv7, whose text starts with
/// the time in milliseconds as 12 hex digits (`tttttttt-tttt-7…`), so ids compare as times do.
pub fn audit_id_bound(at: Millis) -> String {
    let at = u64::try_from(at).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("{:08x}-{:04x}", at >> 16, at & 0xffff)
}

/// Which of a tenant's connections a listing returns: every filter that is set applies.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionQuery<'a> {
    pub connector_id: Option<&'a str>,
    /// Owned by this end user.
    pub owner: Option<&'a str>,
    /// Owned by, or shared with, this end user.
    pub visible_to: Option<&'a str>,
    /// Only these.
    pub ids: Option<&'a [String]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorRecord {
    pub id: String,
    pub tenant_id: String,
    pub connector: Connector,
    /// Findings of the import, kept to show them again.
    pub warnings: Vec<Diagnostic>,
    pub oauth_client_id: Option<String>,
    /// Sealed with the connector id as associated data.
    pub oauth_client_secret: Option<SealedBytes>,
    /// Who registered it, and who last replaced it (`key:<id>`, `member:<id>`, `operator`).
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Pending,
    Connected,
    NeedsReauth,
    Error,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Pending => "pending",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::NeedsReauth => "needs_reauth",
            ConnectionStatus::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<ConnectionStatus> {
        match text {
            "pending" => Some(ConnectionStatus::Pending),
            "connected" => Some(ConnectionStatus::Connected),
            "needs_reauth" => Some(ConnectionStatus::NeedsReauth),
            "error" => Some(ConnectionStatus::Error),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRecord {
    pub id: String,
    pub tenant_id: String,
    pub connector_id: String,
    /// The end user who owns it; `None` for a connection of the tenant itself.
    pub end_user_id: Option<String>,
    /// Who created it: `key:<id>`, `member:<id>` or `operator` (connections made before these
    /// kinds existed hold the bare id of the API key).
    pub created_by: String,
    /// Who last changed its name or parameters.
    pub updated_by: Option<String>,
    pub display_name: String,
    /// The chosen parameter set of a multi-auth connector.
    pub parameter_set: Option<String>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    /// Values of the non-secret parameters.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The secret parameters, sealed with the connection id as associated data.
    pub secrets: Option<SealedBytes>,
    /// OAuth 2.0 tokens, sealed with `<connection id>:tokens` as associated data. Written by the
    /// insert, and afterwards only by [`Store::set_connection_tokens`]; `update_connection`
    /// leaves them alone.
    pub tokens: Option<SealedBytes>,
    /// When the access token expires.
    pub token_expires_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A page of a list, ordered by id; `next` is the cursor for the following page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// An OAuth 2.0 sign-in in progress, known by the SHA-256 (hex) of its `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthStateRecord {
    pub state_hash: String,
    pub tenant_id: String,
    pub connection_id: String,
    /// The PKCE verifier, sealed with the state hash as associated data.
    pub verifier: SealedBytes,
    pub redirect_uri: String,
    /// Where the browser goes after the sign-in, as stored by sign-ins started before it was
    /// sealed; see `sealed_return_url`.
    pub return_url: Option<String>,
    /// Where the browser goes after the sign-in, sealed with `<state hash>:return` as associated
    /// data: it may be a connect page's address, which holds the session's token.
    pub sealed_return_url: Option<SealedBytes>,
    /// Who started it (`key:<id>`, `member:<id>`).
    pub started_by: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteConnector {
    Deleted {
        connections: u64,
    },
    NotFound,
    /// Refused: connections still use it and cascade was not asked for.
    InUse {
        connections: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A value this engine cannot keep: PostgreSQL's text holds no NUL character.
    #[error("the store cannot keep this value: {0}")]
    Unstorable(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Tenants and their API keys.
    async fn create_tenant(&self, name: &str) -> Result<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    async fn tenant_count(&self) -> Result<u64>;
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>>;

    // API keys, by the SHA-256 (hex) of the key.
    /// Stores a new key; a conflict when its id or hash is taken or the tenant is missing.
    async fn insert_api_key(&self, record: &ApiKeyRecord, key_hash: &str) -> Result<()>;
    /// The key with this hash, revoked or not.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;
    async fn api_key(&self, tenant_id: &str, id: &str) -> Result<Option<ApiKeyRecord>>;
    async fn list_api_keys(
        &self,
        tenant_id: &str,
        include_revoked: bool,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ApiKeyRecord>>;
    /// Marks a key revoked at `at`; false when there is no such key, or it was revoked already.
    async fn revoke_api_key(&self, tenant_id: &str, id: &str, at: Millis) -> Result<bool>;

    // Connectors, always within one tenant.
    async fn insert_connector(&self, record: &ConnectorRecord) -> Result<()>;
    async fn connector(&self, tenant_id: &str, id: &str) -> Result<Option<ConnectorRecord>>;
    async fn list_connectors(&self, tenant_id: &str, after: Option<&str>, limit: u32) -> Result<Page<ConnectorRecord>>;
    /// Replaces the connector's definition, warnings and OAuth client; false when not found.
    async fn update_connector(&self, record: &ConnectorRecord) -> Result<bool>;
    async fn delete_connector(&self, tenant_id: &str, id: &str, cascade: bool) -> Result<DeleteConnector> {
        self.delete_connector_with(tenant_id, id, cascade, &|_| None).await
    }
    /// [`Store::delete_connector`], writing `deleted`'s event (if any) for each connection the
    /// cascade deletes, in the same transaction.
    async fn delete_connector_with(
        &self,
        tenant_id: &str,
        id: &str,
        cascade: bool,
        deleted: &(dyn for<'r> Fn(&'r ConnectionRecord) -> Option<EventRecord> + Send + Sync),
    ) -> Result<DeleteConnector>;

    // Connections, always within one tenant.
    async fn insert_connection(&self, record: &ConnectionRecord) -> Result<()> {
        self.insert_connection_with(record, Effects::NONE).await
    }
    /// A conflict when an effect cannot happen (the session's connection is made already).
    async fn insert_connection_with(&self, record: &ConnectionRecord, effects: Effects<'_>) -> Result<()>;
    async fn connection(&self, tenant_id: &str, id: &str) -> Result<Option<ConnectionRecord>>;
    async fn list_connections(
        &self,
        tenant_id: &str,
        query: &ConnectionQuery<'_>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ConnectionRecord>>;
    /// Replaces display name, parameter set, status, reason, parameters and secrets; false
    /// when not found.
    async fn update_connection(&self, record: &ConnectionRecord) -> Result<bool> {
        self.update_connection_with(record, Effects::NONE).await
    }
    /// Nothing of `effects` happens when the connection is not found.
    async fn update_connection_with(&self, record: &ConnectionRecord, effects: Effects<'_>) -> Result<bool>;
    async fn delete_connection(&self, tenant_id: &str, id: &str) -> Result<bool> {
        self.delete_connection_with(tenant_id, id, Effects::NONE).await
    }
    async fn delete_connection_with(&self, tenant_id: &str, id: &str, effects: Effects<'_>) -> Result<bool>;

    /// Replaces a connection's OAuth tokens, and its status and reason with them; false when
    /// not found.
    async fn set_connection_tokens(
        &self,
        tenant_id: &str,
        id: &str,
        tokens: Option<&SealedBytes>,
        token_expires_at: Option<Millis>,
        status: ConnectionStatus,
        status_reason: Option<&str>,
    ) -> Result<bool> {
        self.set_connection_tokens_with(tenant_id, id, tokens, token_expires_at, status, status_reason, Effects::NONE)
            .await
    }
    #[allow(clippy::too_many_arguments, reason = "the columns it writes, and the effects")]
    async fn set_connection_tokens_with(
        &self,
        tenant_id: &str,
        id: &str,
        tokens: Option<&SealedBytes>,
        token_expires_at: Option<Millis>,
        status: ConnectionStatus,
        status_reason: Option<&str>,
        effects: Effects<'_>,
    ) -> Result<bool>;

    // Connect sessions, known by the SHA-256 (hex) of their token.
    async fn insert_connect_session(&self, record: &ConnectSessionRecord, token_hash: &str) -> Result<()>;
    async fn connect_session(&self, tenant_id: &str, id: &str) -> Result<Option<ConnectSessionRecord>>;
    async fn connect_session_by_token(&self, token_hash: &str) -> Result<Option<ConnectSessionRecord>>;
    /// The session that made this connection, if one did.
    async fn connect_session_of(&self, tenant_id: &str, connection_id: &str) -> Result<Option<ConnectSessionRecord>>;

    // Webhooks and their deliveries.
    async fn insert_webhook(&self, record: &WebhookRecord) -> Result<()>;
    async fn webhook(&self, tenant_id: &str, id: &str) -> Result<Option<WebhookRecord>>;
    async fn list_webhooks(&self, tenant_id: &str, after: Option<&str>, limit: u32) -> Result<Page<WebhookRecord>>;
    /// Replaces url, events, enabled, secrets and the update time; false when not found.
    async fn update_webhook(&self, record: &WebhookRecord) -> Result<bool>;
    /// Deletes it with its deliveries; false when not found.
    async fn delete_webhook(&self, tenant_id: &str, id: &str) -> Result<bool>;
    /// A webhook's deliveries, newest first (by id, descending; `before` is the cursor).
    async fn list_deliveries(
        &self,
        tenant_id: &str,
        webhook_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Page<DeliveryRecord>>;
    /// Claims for `holder` until `until` up to `limit` pending deliveries due at `now`, each the
    /// earliest pending one of its webhook and ordering key, and none claimed by another
    /// holder whose claim still runs: across every process, one attempt at a time.
    /// A disabled webhook's deliveries wait (they are not claimed) until it is enabled again.
    async fn claim_deliveries(&self, holder: &str, now: Millis, until: Millis, limit: u32) -> Result<Vec<DeliveryJob>>;
    /// Records an attempt of a delivery `holder` claimed, and releases the claim; false when
    /// the claim was lost (it ran out and another holder took it).
    async fn record_attempt(&self, delivery_id: &str, holder: &str, attempt: &Attempt) -> Result<bool>;
    /// What waits for enabled webhooks.
    async fn delivery_queue(&self) -> Result<DeliveryQueue>;

    // The audit trail.
    /// Appends events (of any tenants) in one transaction.
    async fn append_audit(&self, records: &[AuditRecord]) -> Result<()>;
    /// A tenant's events that match `query`, newest first (or oldest first); `cursor` is the
    /// `next` of the previous page.
    async fn list_audit(
        &self,
        tenant_id: &str,
        query: &AuditQuery<'_>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AuditRecord>>;
    /// Deletes up to `limit` of a tenant's events from before `before`; how many.
    async fn delete_audit_before(&self, tenant_id: &str, before: Millis, limit: u32) -> Result<u64>;

    // Shares of a connection with other end users.
    /// Shares a connection, or changes an existing share's permission (keeping its creation);
    /// a conflict when the connection is missing. Deleting the connection deletes its shares.
    async fn put_share(&self, record: &ShareRecord) -> Result<()>;
    async fn delete_share(&self, tenant_id: &str, connection_id: &str, end_user_id: &str) -> Result<bool>;
    /// A connection's shares, by end user.
    async fn list_shares(&self, tenant_id: &str, connection_id: &str) -> Result<Vec<ShareRecord>>;

    // The people of a tenant.
    /// A conflict when the tenant has a member with this address already.
    async fn insert_member(&self, record: &MemberRecord) -> Result<()>;
    async fn member(&self, tenant_id: &str, id: &str) -> Result<Option<MemberRecord>>;
    /// Every tenant's member with this (lower-cased) address.
    async fn members_by_email(&self, email: &str) -> Result<Vec<MemberRecord>>;
    async fn list_members(&self, tenant_id: &str, after: Option<&str>, limit: u32) -> Result<Page<MemberRecord>>;
    /// Replaces the member's role and update time; false when not found.
    async fn update_member(&self, record: &MemberRecord) -> Result<bool>;
    async fn delete_member(&self, tenant_id: &str, id: &str) -> Result<bool>;

    /// Records a sign-in in progress (and forgets expired ones).
    async fn insert_oauth_state(&self, record: &OAuthStateRecord) -> Result<()>;
    /// Returns the sign-in with this state hash once: it is gone afterwards. An expired one
    /// (at `now`) is removed and not returned.
    async fn take_oauth_state(&self, state_hash: &str, now: Millis) -> Result<Option<OAuthStateRecord>>;

    /// Takes the lease `name` for `holder` until `until`, if it is free, expired, or already
    /// the holder's. One holder at a time, across every process on the store.
    async fn acquire_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool>;
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// A store-wide setting.
    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Sets `name` unless it is set already; returns the value now stored.
    async fn init_setting(&self, name: &str, value: &[u8]) -> Result<Vec<u8>>;

    /// The data keys, current first.
    async fn data_keys(&self) -> Result<Vec<DataKeyRecord>>;
    /// Inserts `record` as the current data key if the store has no data key at all; `false`
    /// when it has one (another process made it first: read them again).
    async fn insert_first_data_key(&self, record: &DataKeyRecord) -> Result<bool>;
    /// In one transaction: the current data key becomes retiring and `record` current. Does
    /// nothing and answers `false` when a key is retiring already (a rotation is under way).
    async fn start_key_rotation(&self, record: &DataKeyRecord) -> Result<bool>;
    /// Deletes the retiring data keys; how many.
    async fn delete_retiring_data_keys(&self) -> Result<u64>;
    /// A new master key, in one transaction: every data key re-wrapped and the setting `check`
    /// (the master-key check) replaced. Written only if `rewrapped` names every data key the
    /// store holds, each with the bytes it holds (`old`), and `check` holds `check_old`; when
    /// anything changed meanwhile (a key made, deleted or re-wrapped, another check), nothing
    /// is written and the answer is `false`.
    async fn rewrap_data_keys(
        &self,
        rewrapped: &[Rewrap],
        check: &str,
        check_old: &[u8],
        check_new: &[u8],
    ) -> Result<bool>;
    /// Up to `limit` values of `column` whose bytes do not start with `prefix`, by row key after
    /// `after` ("" for the first page).
    async fn list_sealed(
        &self,
        column: SealedColumn,
        prefix: &[u8],
        after: &str,
        limit: u32,
    ) -> Result<Vec<SealedValue>>;
    /// Writes each re-sealed value in one transaction, each only where its row still holds
    /// the old bytes; how many were written.
    async fn reseal(&self, column: SealedColumn, values: &[Reseal]) -> Result<u64>;
    /// How many values of `column` start with each distinct first `prefix_len` bytes.
    async fn count_sealed(&self, column: SealedColumn, prefix_len: usize) -> Result<Vec<(Vec<u8>, u64)>>;

    /// Is the store reachable (for `/readyz`)?
    async fn ping(&self) -> Result<()>;

    // Moving a whole store to another (`portico migrate`): everything listed, and inserted
    // again as it is, ids and times included (sealed values are bound to their row's id, so
    // they open unchanged). Connectors move with `list_connectors` and `insert_connector`, members
    // with `list_members` and `insert_member`, webhooks with `list_webhooks` and `insert_webhook`.

    /// Every tenant, by id.
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    /// The tenant's API keys with their hashes, revoked ones included, by id.
    async fn export_api_keys(&self, tenant_id: &str) -> Result<Vec<StoredApiKey>>;
    /// The shares of the tenant's connections, by connection and end user.
    async fn export_shares(&self, tenant_id: &str) -> Result<Vec<ShareRecord>>;
    /// The tenant's connect sessions with their token hashes, used and expired ones included, by id.
    async fn export_connect_sessions(&self, tenant_id: &str) -> Result<Vec<StoredConnectSession>>;
    /// The tenant's events in the outbox, by id.
    async fn export_events(&self, tenant_id: &str) -> Result<Vec<EventRecord>>;
    /// The deliveries of the tenant's webhooks, of every state, by id.
    async fn export_deliveries(&self, tenant_id: &str) -> Result<Vec<DeliveryRecord>>;
    /// Every sign-in in progress, expired ones included, by state hash.
    async fn list_oauth_states(&self) -> Result<Vec<OAuthStateRecord>>;
    /// Every store-wide setting, by name.
    async fn list_settings(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// Inserts a data key as it is (wrapped, with its state); `false` when one of its id is
    /// there already.
    async fn import_data_key(&self, record: &DataKeyRecord) -> Result<bool>;
    /// Inserts a tenant with its id and time; a conflict when the id or the name is taken.
    async fn import_tenant(&self, tenant: &Tenant) -> Result<()>;
    /// Inserts an API key with its id, hash and time; a conflict when the id or the hash is
    /// taken or the tenant is missing.
    async fn import_api_key(&self, key: &StoredApiKey) -> Result<()>;
    /// Inserts a share as it is (unlike [`Store::put_share`], replaces nothing).
    async fn import_share(&self, record: &ShareRecord) -> Result<()>;
    /// Inserts a connection as it is: tokens, their expiry and both times included.
    async fn import_connection(&self, record: &ConnectionRecord) -> Result<()>;
    /// Inserts a sign-in as it is (unlike [`Store::insert_oauth_state`], forgets nothing).
    async fn import_oauth_state(&self, record: &OAuthStateRecord) -> Result<()>;
    /// Inserts a connect session with its token hash, the connection it made and its completion;
    /// a conflict when its id or hash is taken or the tenant is missing.
    async fn import_connect_session(&self, session: &StoredConnectSession) -> Result<()>;
    /// Inserts an event as it is, and nothing else: its deliveries are imported one by one.
    /// A conflict when its id is taken or the tenant is missing.
    async fn import_event(&self, event: &EventRecord) -> Result<()>;
    /// Inserts a delivery with its state, attempts and times, unclaimed (its ordering key is its
    /// event's, its `event_kind` is not read); a conflict when it is there already, or its
    /// webhook or event is not in its tenant.
    async fn import_delivery(&self, record: &DeliveryRecord) -> Result<()>;

    /// Tells every process on this store that something changed, so that none keeps using
    /// what it prepared from the old state. A store used by one process needs nothing.
    async fn publish_change(&self, _change: &Change) -> Result<()> {
        Ok(())
    }

    /// The changes other processes publish; `None` for a store used by one process.
    async fn subscribe_changes(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>> {
        Ok(None)
    }
}
