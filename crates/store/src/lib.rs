//! Portico's persistent store.
//!
//! One trait, [`Store`], with an embedded SQLite implementation (the default) and room for
//! PostgreSQL. Every query about connectors and connections is scoped by tenant: a row of
//! another tenant is indistinguishable from a missing one.
//!
//! Architecture invariant: the store never sees a plaintext secret. Connection secrets and
//! OAuth client secrets arrive sealed ([`SealedBytes`]) and leave sealed.

mod sqlite;

use std::collections::BTreeMap;

use async_trait::async_trait;
use portico_model::{Connector, Diagnostic};
use serde::{Deserialize, Serialize};
pub use sqlite::SqliteStore;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A new record id: a UUID v7 as text. Ids sort by creation time (strictly, within one
/// process), which is what list pagination relies on.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
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
    pub created_at: Millis,
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
    /// The API key that created the connection.
    pub created_by_key: String,
    pub display_name: String,
    /// The chosen parameter set of a multi-auth connector.
    pub parameter_set: Option<String>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    /// Values of the non-secret parameters.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The secret parameters, sealed with the connection id as associated data.
    pub secrets: Option<SealedBytes>,
    /// OAuth 2.0 tokens, sealed with `<connection id>:tokens` as associated data. Written only
    /// by [`Store::set_connection_tokens`]; `update_connection` leaves them alone.
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
    /// Where the browser goes after the sign-in.
    pub return_url: Option<String>,
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
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Tenants and their API keys.
    async fn create_tenant(&self, name: &str) -> Result<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    async fn tenant_count(&self) -> Result<u64>;
    /// Stores the hash (hex SHA-256) of a new key of the tenant.
    async fn add_api_key(&self, tenant_id: &str, key_hash: &str) -> Result<ApiKeyRecord>;
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;

    // Connectors, always within one tenant.
    async fn insert_connector(&self, record: &ConnectorRecord) -> Result<()>;
    async fn connector(&self, tenant_id: &str, id: &str) -> Result<Option<ConnectorRecord>>;
    async fn list_connectors(&self, tenant_id: &str, after: Option<&str>, limit: u32) -> Result<Page<ConnectorRecord>>;
    /// Replaces the connector's definition, warnings and OAuth client; false when not found.
    async fn update_connector(&self, record: &ConnectorRecord) -> Result<bool>;
    async fn delete_connector(&self, tenant_id: &str, id: &str, cascade: bool) -> Result<DeleteConnector>;

    // Connections, always within one tenant.
    async fn insert_connection(&self, record: &ConnectionRecord) -> Result<()>;
    async fn connection(&self, tenant_id: &str, id: &str) -> Result<Option<ConnectionRecord>>;
    async fn list_connections(
        &self,
        tenant_id: &str,
        connector_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ConnectionRecord>>;
    /// Replaces display name, parameter set, status, reason, parameters and secrets; false
    /// when not found.
    async fn update_connection(&self, record: &ConnectionRecord) -> Result<bool>;
    async fn delete_connection(&self, tenant_id: &str, id: &str) -> Result<bool>;

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
    ) -> Result<bool>;

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

    /// Is the store reachable (for `/readyz`)?
    async fn ping(&self) -> Result<()>;
}
