//! What the API answers: records turned into JSON objects. Secrets never appear here; a secret
//! parameter shows only that it is set.

use std::collections::BTreeMap;

use portico_app::connect::{ConnectOffer, CreatedConnectSession, SessionState};
use portico_app::connections::ConnectionInfo;
use portico_app::webhooks::WebhookWithSecret;
use portico_import::summary::AuthSummary;
use portico_model::Diagnostic;
use portico_store::{
    ApiKeyRecord, AuditRecord, ConnectSessionRecord, ConnectorRecord, DeliveryRecord, DeliveryState, MemberRecord,
    Millis, ShareRecord, WebhookRecord,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorView {
    pub id: String,
    pub name: String,
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    pub capabilities: Vec<String>,
    /// Authentication in brief: kind, and where an API key goes or which identity provider.
    #[schema(value_type = Object)]
    pub auth: AuthSummary,
    #[schema(value_type = Object)]
    pub backend: Value,
    /// The connection parameters and credential, as in Portico's own definition format.
    #[schema(value_type = Object)]
    pub connection: Value,
    #[schema(value_type = Vec<Object>)]
    pub policies: Value,
    pub operation_count: usize,
    /// The operations; omitted in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub operations: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_operation: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub warnings: Vec<Diagnostic>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_client: Option<OAuthClientView>,
    /// Who registered it: `key:<API key id>`, `member:<member id>` or `operator`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who last replaced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthClientView {
    pub client_id: String,
    pub client_secret_set: bool,
}

impl ConnectorView {
    pub fn new(record: &ConnectorRecord, with_operations: bool) -> Self {
        let c = &record.connector;
        let m = &c.metadata;
        ConnectorView {
            id: record.id.clone(),
            name: m.name.clone(),
            display_name: m.display_name.clone(),
            description: m.description.clone(),
            version: m.version.clone(),
            brand_color: m.brand_color.clone(),
            publisher: m.publisher.clone(),
            capabilities: m.capabilities.clone(),
            auth: AuthSummary::of(&c.connection),
            backend: to_value(&c.backend),
            connection: to_value(&c.connection),
            policies: to_value(&c.policies),
            operation_count: c.operations.len(),
            operations: with_operations.then(|| to_value(&c.operations)),
            test_operation: c.test_operation.clone(),
            warnings: record.warnings.clone(),
            oauth_client: record.oauth_client_id.as_ref().map(|id| OAuthClientView {
                client_id: id.clone(),
                client_secret_set: record.oauth_client_secret.is_some(),
            }),
            created_by: record.created_by.clone(),
            updated_by: record.updated_by.clone(),
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub id: String,
    pub connector_id: String,
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter_set: Option<String>,
    /// `pending`, `connected`, `needs_reauth` or `error`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Values of the parameters that are not secret.
    #[schema(value_type = Object)]
    pub parameters: BTreeMap<String, Value>,
    /// Secret parameters: only whether each is set.
    pub secrets: BTreeMap<String, SecretState>,
    /// For OAuth 2.0 connections: when the access token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub token_expires_at: Option<String>,
    /// Where to send the user's browser to sign in (answers that start a sign-in only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// The end user who owns it; `null` for a connection of the tenant itself.
    pub end_user_id: Option<String>,
    /// Who created it: `key:<API key id>`, `member:<member id>` or `operator`.
    pub created_by: String,
    /// Who last changed its parameters or name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct SecretState {
    pub set: bool,
}

impl ConnectionView {
    pub fn new(info: ConnectionInfo) -> Self {
        let ConnectionInfo { record, secret_names, authorize_url } = info;
        ConnectionView {
            id: record.id.clone(),
            connector_id: record.connector_id.clone(),
            display_name: record.display_name.clone(),
            parameter_set: record.parameter_set.clone(),
            status: record.status.as_str(),
            status_reason: record.status_reason.clone(),
            parameters: record.parameters.clone(),
            secrets: secret_names.into_iter().map(|n| (n, SecretState { set: true })).collect(),
            token_expires_at: record.token_expires_at.map(rfc3339),
            authorize_url,
            end_user_id: record.end_user_id.clone(),
            created_by: principal_reference(&record.created_by),
            updated_by: record.updated_by.clone(),
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
        }
    }
}

/// Connections made before principals had kinds name the API key's bare id.
fn principal_reference(stored: &str) -> String {
    if stored.contains(':') || stored == "operator" { stored.to_owned() } else { format!("key:{stored}") }
}

/// An API key, without the key.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// `admin`, `author` or `user`.
    #[schema(value_type = crate::api::RoleName)]
    pub role: &'static str,
    /// The end user a `user` key acts as.
    pub end_user_id: Option<String>,
    /// The connections a narrowed key may call through; `null`: all its role allows.
    pub connection_ids: Option<Vec<String>>,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Its own limit of calls through connections a second; `null`: the server's default.
    pub rate_limit: Option<u32>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Only in lists that include revoked keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

impl ApiKeyView {
    pub fn new(record: &ApiKeyRecord) -> Self {
        ApiKeyView {
            id: record.id.clone(),
            name: record.name.clone(),
            role: record.role.as_str(),
            end_user_id: record.end_user_id.clone(),
            connection_ids: record.connection_ids.clone(),
            expires_at: record.expires_at.map(rfc3339),
            rate_limit: record.rate_limit,
            created_at: rfc3339(record.created_at),
            created_by: record.created_by.clone(),
            revoked_at: record.revoked_at.map(rfc3339),
        }
    }
}

/// A new API key: the key itself appears in this answer only.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKeyView {
    #[serde(flatten)]
    pub api_key: ApiKeyView,
    /// The key: send it as `Authorization: Bearer <key>`. It is not shown again.
    pub key: String,
}

/// A connection shared with an end user.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareView {
    pub connection_id: String,
    pub end_user_id: String,
    /// `use` (call through it, see its metadata) or `edit` (also change and re-authorize it).
    #[schema(value_type = crate::api::shares::PermissionName)]
    pub permission: &'static str,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl ShareView {
    pub fn new(record: &ShareRecord) -> Self {
        ShareView {
            connection_id: record.connection_id.clone(),
            end_user_id: record.end_user_id.clone(),
            permission: record.permission.as_str(),
            created_at: rfc3339(record.created_at),
            created_by: record.created_by.clone(),
            updated_at: rfc3339(record.updated_at),
        }
    }
}

/// A person of the tenant.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub id: String,
    /// Signing in with this address (OpenID Connect) makes the person this member; they act as
    /// the end user of this id.
    pub email: String,
    #[schema(value_type = crate::api::RoleName)]
    pub role: &'static str,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl MemberView {
    pub fn new(record: &MemberRecord) -> Self {
        MemberView {
            id: record.id.clone(),
            email: record.email.clone(),
            role: record.role.as_str(),
            created_at: rfc3339(record.created_at),
            created_by: record.created_by.clone(),
            updated_at: rfc3339(record.updated_at),
        }
    }
}

/// A connect session just made: its token and link appear in this answer only.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedConnectSessionView {
    pub id: String,
    /// The only credential of the end user's page; send it only to that end user.
    pub token: String,
    /// The hosted page that connects the account.
    pub url: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub end_user_id: String,
    pub app_name: Option<String>,
    pub connector_ids: Option<Vec<String>>,
    pub return_url: Option<String>,
}

impl CreatedConnectSessionView {
    pub fn new(created: &CreatedConnectSession) -> Self {
        let record = &created.record;
        CreatedConnectSessionView {
            id: record.id.clone(),
            token: created.token.expose().to_owned(),
            url: created.url.clone(),
            expires_at: rfc3339(record.expires_at),
            end_user_id: record.end_user_id.clone(),
            app_name: record.app_name.clone(),
            connector_ids: record.connector_ids.clone(),
            return_url: record.return_url.clone(),
        }
    }
}

/// A connect session and where it stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectSessionView {
    pub id: String,
    /// `pending`, `completed` or `expired`.
    pub state: &'static str,
    /// The connection it made (also while its sign-in is under way).
    pub connection_id: Option<String>,
    pub end_user_id: String,
    pub app_name: Option<String>,
    pub connector_ids: Option<Vec<String>>,
    pub return_url: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
}

impl ConnectSessionView {
    pub fn new(record: &ConnectSessionRecord, state: &SessionState) -> Self {
        ConnectSessionView {
            id: record.id.clone(),
            state: match state {
                SessionState::Pending => "pending",
                SessionState::Completed { .. } => "completed",
                SessionState::Expired => "expired",
            },
            connection_id: record.connection_id.clone(),
            end_user_id: record.end_user_id.clone(),
            app_name: record.app_name.clone(),
            connector_ids: record.connector_ids.clone(),
            return_url: record.return_url.clone(),
            created_at: rfc3339(record.created_at),
            created_by: record.created_by.clone(),
            expires_at: rfc3339(record.expires_at),
            completed_at: record.completed_at.map(rfc3339),
        }
    }
}

/// What a connect token offers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectOfferView {
    pub end_user_id: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub connectors: Vec<OfferedConnectorView>,
}

/// A connector a connect token offers, with its connection form.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferedConnectorView {
    pub id: String,
    pub name: String,
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand_color: Option<String>,
    /// The parameter sets and their fields, as `GET /v1/connectors/{id}/connection-form` says.
    #[schema(value_type = Object)]
    pub form: portico_model::ConnectionForm,
}

impl ConnectOfferView {
    pub fn new(offer: &ConnectOffer, _redirect_uri: String) -> Self {
        ConnectOfferView {
            end_user_id: offer.session.end_user_id.clone(),
            expires_at: rfc3339(offer.session.expires_at),
            connectors: offer
                .connectors
                .iter()
                .map(|(record, form)| {
                    let metadata = &record.connector.metadata;
                    OfferedConnectorView {
                        id: record.id.clone(),
                        name: metadata.name.clone(),
                        display_name: metadata.display_name.clone(),
                        description: metadata.description.clone(),
                        brand_color: metadata.brand_color.clone(),
                        form: form.clone(),
                    }
                })
                .collect(),
        }
    }
}

/// A webhook (never its secret).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    /// The event kinds it receives; `null`: all.
    #[schema(value_type = Option<Vec<crate::api::webhooks::EventName>>)]
    pub events: Option<Vec<String>>,
    pub enabled: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl WebhookView {
    pub fn new(record: &WebhookRecord) -> Self {
        WebhookView {
            id: record.id.clone(),
            url: record.url.clone(),
            events: record.events.clone(),
            enabled: record.enabled,
            created_at: rfc3339(record.created_at),
            created_by: record.created_by.clone(),
            updated_at: rfc3339(record.updated_at),
        }
    }
}

/// A webhook with its signing secret, in the answer that made the secret only.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookWithSecretView {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_…`: verify deliveries with any Standard Webhooks library. Not shown again.
    pub secret: String,
}

impl WebhookWithSecretView {
    pub fn new(created: &WebhookWithSecret) -> Self {
        WebhookWithSecretView { webhook: WebhookView::new(&created.record), secret: created.secret.expose().to_owned() }
    }
}

/// One event's delivery to a webhook.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    /// The `webhook-id` the receiver got.
    pub event_id: String,
    pub event: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub state: &'static str,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub last_attempt_at: Option<String>,
    /// When it is attempted next, while pending.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl DeliveryView {
    pub fn new(record: &DeliveryRecord) -> Self {
        DeliveryView {
            id: record.id.clone(),
            event_id: record.event_id.clone(),
            event: record.event_kind.clone(),
            state: record.state.as_str(),
            attempts: record.attempts,
            last_status: record.last_status,
            last_error: record.last_error.clone(),
            last_attempt_at: record.last_attempt_at.map(rfc3339),
            next_attempt_at: (record.state == DeliveryState::Pending).then(|| rfc3339(record.next_attempt_at)),
            created_at: rfc3339(record.created_at),
        }
    }
}

/// One event of the audit trail: a use of a credential or a change. Never a secret, a query
/// value, a header or a body.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventView {
    /// Time-ordered.
    pub id: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// `key:<id>`, `member:<id>`, `operator`, `connect_session:<id>` or `system`.
    pub principal: String,
    /// E.g. `call.proxy`, `call.operation`, `connection.test`, `token.refresh`,
    /// `connection.created`, `key.revoked`.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<String>,
    /// What else it concerned: a key, member, webhook, share's end user or connect session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The operation called (or that a proxied call matched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The operation's path template; never the path called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The backend's status (`200`), `ok`, `refused`, `timeout`, `unreachable`, or
    /// `error: <reason>`.
    pub outcome: String,
    /// How many calls it stands for: calls alike (same principal, connection, operation or
    /// method and template, outcome) within a quarter of a second are one event; 1 otherwise.
    pub count: i64,
    /// Milliseconds (the mean, for several calls), where measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// The instance that did it.
    pub instance: String,
}

impl AuditEventView {
    pub fn new(record: &AuditRecord) -> Self {
        AuditEventView {
            id: record.id.clone(),
            at: rfc3339(record.at),
            principal: record.principal.clone(),
            action: record.action.clone(),
            connection_id: record.connection_id.clone(),
            connector_id: record.connector_id.clone(),
            target: record.target.clone(),
            operation: record.operation.clone(),
            method: record.method.clone(),
            path: record.path.clone(),
            outcome: record.outcome.clone(),
            count: record.count,
            latency_ms: record.latency_us.map(|us| us as f64 / 1000.0),
            instance: record.instance.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Milliseconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339(millis: Millis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn formats_timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }
}
