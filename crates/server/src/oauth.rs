//! OAuth 2.0 connections: the sign-in (authorization code with PKCE), the callback, tokens
//! sealed at rest, renewal with one refresh at a time per connection, client credentials and
//! revocation.
//!
//! One refresh at a time: within a process a per-connection async lock; across processes a
//! lease in the store, then a re-read, so that a process that waited uses the token another
//! one fetched and never sends a refresh token that was already used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use portico_model::{Credential, GrantType, OAuth2, ParameterSet};
use portico_oauth::{ClientCredentials, Flow, Substitution, TokenError, Tokens};
use portico_runtime::{PreparedConnection, TokenTimes};
use portico_secrets::SecretString;
use portico_store::{ConnectionRecord, ConnectionStatus, ConnectorRecord, Millis, OAuthStateRecord, SealedBytes};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ProblemField};
use crate::state::AppState;

/// How long a sign-in may take.
pub const STATE_TTL: Millis = 10 * 60 * 1000;
/// How long one process may hold a connection's refresh lease.
const LEASE: Millis = 30_000;

/// What `AppState` keeps for OAuth.
pub struct OAuthSupport {
    pub http: reqwest::Client,
    /// Token requests run here, not on the serving threads.
    pub background: tokio::runtime::Handle,
    /// This process's name as a lease holder.
    pub instance: String,
    /// Origins a `returnUrl` may point to, besides the public URL's.
    pub return_origins: Vec<url::Origin>,
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    backoff: Mutex<HashMap<String, Backoff>>,
}

#[derive(Clone, Copy)]
struct Backoff {
    until: Millis,
    failures: u32,
}

impl OAuthSupport {
    pub fn new(background: tokio::runtime::Handle, return_origins: Vec<url::Origin>) -> Self {
        OAuthSupport {
            http: portico_oauth::http_client(),
            background,
            instance: portico_store::new_id(),
            return_origins,
            locks: Mutex::default(),
            backoff: Mutex::default(),
        }
    }

    /// The lock of one connection's refresh; dropped with its last user.
    fn lock(&self, connection_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lock) = locks.get(connection_id).and_then(Weak::upgrade) {
            return lock;
        }
        locks.retain(|_, weak| weak.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(connection_id.to_owned(), Arc::downgrade(&lock));
        lock
    }

    fn backing_off(&self, connection_id: &str, now: Millis) -> bool {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner()).get(connection_id).is_some_and(|b| now < b.until)
    }

    fn failed(&self, connection_id: &str, now: Millis) {
        let mut map = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let failures = map.get(connection_id).map_or(0, |b| b.failures) + 1;
        // 1 s, 2 s, 4 s … up to a minute.
        let delay = 1000i64 << failures.min(6).saturating_sub(1);
        map.insert(connection_id.to_owned(), Backoff { until: now + delay.min(60_000), failures });
    }

    fn recovered(&self, connection_id: &str) {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner()).remove(connection_id);
    }

    /// Runs a token request on the background runtime.
    async fn run<F>(&self, request: F) -> Result<Tokens, TokenError>
    where
        F: Future<Output = Result<Tokens, TokenError>> + Send + 'static,
    {
        self.background.spawn(request).await.unwrap_or_else(|_| Err(TokenError::Unavailable("cancelled".to_owned())))
    }
}

/// A connection's tokens as sealed at rest.
#[derive(Serialize, Deserialize)]
pub struct StoredTokens {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_url: Option<String>,
    obtained_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lifetime_secs: Option<u64>,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens").field("obtained_at", &self.obtained_at).finish_non_exhaustive()
    }
}

impl StoredTokens {
    fn expires_at(&self) -> Option<Millis> {
        self.lifetime_secs.map(|s| self.obtained_at + i64::try_from(s).unwrap_or(i64::MAX / 2000) * 1000)
    }

    /// Renew before expiry by the smaller of a minute and half the lifetime, so that a token
    /// living two seconds is renewed after one.
    fn refresh_at(&self) -> Option<Millis> {
        let lifetime = i64::try_from(self.lifetime_secs?).ok()? * 1000;
        Some(self.obtained_at + lifetime - (lifetime / 2).min(60_000))
    }

    pub fn access_token(&self) -> SecretString {
        SecretString::from(self.access_token.as_str())
    }
}

fn tokens_aad(connection_id: &str) -> Vec<u8> {
    format!("{connection_id}:tokens").into_bytes()
}

pub fn open_tokens(state: &AppState, record: &ConnectionRecord) -> Result<Option<StoredTokens>, ApiError> {
    let Some(sealed) = &record.tokens else { return Ok(None) };
    let plaintext = state.master_key.open(&sealed.0, &tokens_aad(&record.id)).map_err(|e| {
        tracing::error!(connection = %record.id, error = %e, "cannot open a connection's tokens");
        ApiError::Internal
    })?;
    serde_json::from_slice(&plaintext).map(Some).map_err(|_| ApiError::Internal)
}

fn seal_tokens(state: &AppState, connection_id: &str, tokens: &StoredTokens) -> SealedBytes {
    let mut plaintext = serde_json::to_vec(tokens).unwrap_or_default();
    let sealed = state.master_key.seal(&plaintext, &tokens_aad(connection_id));
    plaintext.fill(0);
    SealedBytes(sealed)
}

/// Turns a token response into what is stored, keeping the previous refresh token when the
/// provider did not rotate it.
fn stored(tokens: Tokens, previous: Option<&StoredTokens>) -> StoredTokens {
    StoredTokens {
        access_token: tokens.access_token.expose().to_owned(),
        refresh_token: tokens
            .refresh_token
            .map(|t| t.expose().to_owned())
            .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        scope: tokens.scope.or_else(|| previous.and_then(|p| p.scope.clone())),
        instance_url: tokens.instance_url.or_else(|| previous.and_then(|p| p.instance_url.clone())),
        obtained_at: portico_store::now_millis(),
        lifetime_secs: tokens.expires_in,
    }
}

/// The OAuth client: the connection's own (`token:clientId` / `token:clientSecret`), else the
/// connector's, else the definition's client id alone.
fn client(
    state: &AppState,
    connector: &ConnectorRecord,
    public: &std::collections::BTreeMap<String, Value>,
    secret: &std::collections::BTreeMap<String, SecretString>,
) -> Result<Option<ClientCredentials>, ApiError> {
    let value = |name: &str| {
        secret
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.expose().to_owned())
            .or_else(|| {
                public
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str().map(str::to_owned))
            })
            .filter(|v| !v.is_empty())
    };
    if let Some(id) = value("token:clientId") {
        return Ok(Some(ClientCredentials { id, secret: value("token:clientSecret").map(SecretString::from) }));
    }
    let Some(id) = &connector.oauth_client_id else { return Ok(None) };
    let secret = match &connector.oauth_client_secret {
        None => None,
        Some(sealed) => {
            let plaintext =
                state.master_key.open(&sealed.0, connector.id.as_bytes()).map_err(|_| ApiError::Internal)?;
            Some(SecretString::from(String::from_utf8_lossy(&plaintext).into_owned()))
        }
    };
    Ok(Some(ClientCredentials { id: id.clone(), secret }))
}

/// The sign-in of a connection's parameter set, resolved.
pub fn flow(
    state: &AppState,
    connector: &ConnectorRecord,
    oauth: &OAuth2,
    public: &std::collections::BTreeMap<String, Value>,
    secret: &std::collections::BTreeMap<String, SecretString>,
) -> Result<Flow, ApiError> {
    let client = client(state, connector, public, secret)?;
    let name = |k: &str| k.strip_prefix("token:").unwrap_or(k).to_owned();
    let mut substitutions: Vec<Substitution> =
        public.iter().filter_map(|(k, v)| Some(Substitution::public(name(k), v.as_str()?))).collect();
    substitutions.extend(secret.iter().map(|(k, v)| Substitution::secret(name(k), v.expose())));
    portico_oauth::resolve(oauth, &state.catalog, client, substitutions).map_err(|e| ApiError::Invalid {
        detail: "the connector's OAuth 2.0 sign-in cannot be used".to_owned(),
        errors: vec![ProblemField { field: "connectorId".to_owned(), message: e.to_string() }],
    })
}

/// Fills the flow's endpoints from its discovery document (on the background runtime).
pub async fn discovered(state: &AppState, mut flow: Flow) -> Result<Flow, ApiError> {
    if flow.discovery_url.is_none() {
        return Ok(flow);
    }
    let http = state.oauth.http.clone();
    state
        .oauth
        .background
        .spawn(async move { flow.discover(&http).await.map(|()| flow) })
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(token_failure)
}

/// Checks a `returnUrl`: only the public URL's origin or an allowed one (no open redirect).
pub fn check_return_url(state: &AppState, url: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(text) = url else { return Ok(None) };
    let bad = |message: &str| ApiError::Invalid {
        detail: "invalid returnUrl".to_owned(),
        errors: vec![ProblemField { field: "returnUrl".to_owned(), message: message.to_owned() }],
    };
    let parsed = url::Url::parse(text).map_err(|_| bad("must be an absolute URL"))?;
    let origin = parsed.origin();
    if origin == state.public_url.origin() || state.oauth.return_origins.contains(&origin) {
        Ok(Some(parsed.into()))
    } else {
        Err(bad("must be on Portico's public URL or an origin allowed with --allowed-return-origin"))
    }
}

/// Starts a sign-in for a connection: a single-use state bound to the tenant and connection,
/// and the authorization URL.
pub async fn start_sign_in(
    state: &AppState,
    tenant_id: &str,
    connection_id: &str,
    flow: &Flow,
    return_url: Option<String>,
) -> Result<String, ApiError> {
    let secret_state = portico_secrets::random_token();
    let state_hash = portico_secrets::api_key_hash(secret_state.expose());
    let pkce = portico_oauth::Pkce::new();
    let redirect_uri = state.redirect_uri();
    let url = flow
        .authorize_url(&redirect_uri, secret_state.expose(), Some(&pkce.challenge))
        .ok_or_else(|| ApiError::Conflict("the connector's authorization URL is not a valid URL".to_owned()))?;
    let now = portico_store::now_millis();
    state
        .store
        .insert_oauth_state(&OAuthStateRecord {
            verifier: SealedBytes(state.master_key.seal(pkce.verifier.expose().as_bytes(), state_hash.as_bytes())),
            state_hash,
            tenant_id: tenant_id.to_owned(),
            connection_id: connection_id.to_owned(),
            redirect_uri,
            return_url,
            created_at: now,
            expires_at: now + STATE_TTL,
        })
        .await?;
    Ok(url)
}

/// Fetches a client-credentials token and stores it on the connection.
pub async fn client_credentials(
    state: &AppState,
    tenant_id: &str,
    connection_id: &str,
    flow: Flow,
) -> Result<(), ApiError> {
    let flow = discovered(state, flow).await?;
    let http = state.oauth.http.clone();
    let tokens = state.oauth.run(async move { flow.client_credentials(&http).await }).await.map_err(token_failure)?;
    let stored = stored(tokens, None);
    let sealed = seal_tokens(state, connection_id, &stored);
    state
        .store
        .set_connection_tokens(
            tenant_id,
            connection_id,
            Some(&sealed),
            stored.expires_at(),
            ConnectionStatus::Connected,
            None,
        )
        .await?;
    Ok(())
}

fn token_failure(error: TokenError) -> ApiError {
    ApiError::BadGateway(format!("the identity provider's token endpoint: {error}"))
}

/// What the callback learned, for the page or redirect the browser gets.
pub enum CallbackOutcome {
    Connected {
        return_url: Option<String>,
    },
    Failed {
        reason: String,
        return_url: Option<String>,
    },
    /// Forged, replayed or expired: nothing was changed.
    Refused,
}

/// The redirect URI's work: check the state, exchange the code, store the tokens.
pub async fn callback(
    state: &AppState,
    state_param: Option<&str>,
    code: Option<&str>,
    error: Option<&str>,
    error_description: Option<&str>,
) -> Result<CallbackOutcome, ApiError> {
    let Some(state_param) = state_param.filter(|s| !s.is_empty() && s.len() <= 512) else {
        return Ok(CallbackOutcome::Refused);
    };
    let hash = portico_secrets::api_key_hash(state_param);
    let Some(sign_in) = state.store.take_oauth_state(&hash, portico_store::now_millis()).await? else {
        return Ok(CallbackOutcome::Refused);
    };
    let tenant = sign_in.tenant_id.as_str();
    let Some(record) = state.store.connection(tenant, &sign_in.connection_id).await? else {
        return Ok(CallbackOutcome::Refused);
    };
    let return_url = sign_in.return_url.clone();
    let fail = |reason: String| async {
        state
            .store
            .set_connection_tokens(
                tenant,
                &record.id,
                record.tokens.as_ref(),
                record.token_expires_at,
                ConnectionStatus::Error,
                Some(&reason),
            )
            .await?;
        state.changed_connection(&record.id);
        Ok::<_, ApiError>(CallbackOutcome::Failed { reason, return_url: return_url.clone() })
    };
    if let Some(error) = error {
        // The identity provider's words, as its redirect carried them: repeated, but made brief.
        let reason = match error_description {
            Some(d) => format!("{}: {}", portico_oauth::brief(error), portico_oauth::brief(d)),
            None => portico_oauth::brief(error),
        };
        return fail(format!("the sign-in was not completed: {reason}")).await;
    }
    let Some(code) = code.filter(|c| !c.is_empty()) else {
        return fail("the identity provider sent no authorization code".to_owned()).await;
    };
    let connector =
        state.store.connector(tenant, &record.connector_id).await?.ok_or(ApiError::NotFound("connector"))?;
    let Some((_, oauth)) = oauth_set(&connector, &record) else {
        return fail("the connector no longer signs in with OAuth 2.0".to_owned()).await;
    };
    let secrets = crate::connections::open(state, &record)?;
    let flow = match flow(state, &connector, oauth, &record.parameters, &secrets) {
        Ok(flow) => flow,
        Err(_) => return fail("the connector's OAuth 2.0 settings cannot be used".to_owned()).await,
    };
    let flow = match discovered(state, flow).await {
        Ok(flow) => flow,
        Err(_) => return fail("the identity provider's discovery document could not be read".to_owned()).await,
    };
    let verifier = state.master_key.open(&sign_in.verifier.0, hash.as_bytes()).map_err(|_| ApiError::Internal)?;
    let verifier = SecretString::from(String::from_utf8_lossy(&verifier).into_owned());
    let (http, code, redirect_uri) = (state.oauth.http.clone(), code.to_owned(), sign_in.redirect_uri.clone());
    let exchanged = state
        .oauth
        .run(async move {
            let tokens = flow.exchange_code(&http, &code, &redirect_uri, Some(&verifier)).await?;
            if flow.long_lived_exchange {
                // Facebook: trade the short-lived token for a long-lived one at once.
                return flow.exchange_long_lived(&http, &tokens.access_token).await;
            }
            Ok(tokens)
        })
        .await;
    let tokens = match exchanged {
        Ok(tokens) => tokens,
        Err(error) => return fail(format!("the code could not be exchanged for tokens: {error}")).await,
    };
    let stored = stored(tokens, None);
    let sealed = seal_tokens(state, &record.id, &stored);
    state
        .store
        .set_connection_tokens(
            tenant,
            &record.id,
            Some(&sealed),
            stored.expires_at(),
            ConnectionStatus::Connected,
            None,
        )
        .await?;
    state.changed_connection(&record.id);
    state.oauth.recovered(&record.id);
    tracing::info!(connection = %record.id, "OAuth 2.0 sign-in completed");
    Ok(CallbackOutcome::Connected { return_url: sign_in.return_url })
}

/// The connection's parameter set and its OAuth credential, if it signs in with OAuth.
pub fn oauth_set<'a>(
    connector: &'a ConnectorRecord,
    record: &ConnectionRecord,
) -> Option<(&'a ParameterSet, &'a OAuth2)> {
    let set = connector.connector.connection.set(record.parameter_set.as_deref())?;
    match &set.credential {
        Credential::OAuth2(oauth) => Some((set, oauth)),
        _ => None,
    }
}

/// The bearer token and its times for preparing a connection; `None` when it has none yet.
pub fn bearer(
    state: &AppState,
    connector: &ConnectorRecord,
    record: &ConnectionRecord,
) -> Result<Option<(SecretString, TokenTimes, Option<String>)>, ApiError> {
    let Some((_, oauth)) = oauth_set(connector, record) else { return Ok(None) };
    let Some(tokens) = open_tokens(state, record)? else { return Ok(None) };
    let expired_statuses = portico_oauth::expired_statuses(&state.catalog, oauth.identity_provider.as_str());
    let times = TokenTimes { expires_at: tokens.expires_at(), refresh_at: tokens.refresh_at(), expired_statuses };
    Ok(Some((tokens.access_token(), times, tokens.instance_url.clone())))
}

/// Renews a connection's access token — one refresh at a time — and returns the connection
/// prepared with the new token. `stale` is what the caller had.
pub async fn refresh(state: &AppState, stale: &Arc<PreparedConnection>) -> Result<Arc<PreparedConnection>, ApiError> {
    let id = stale.connection_id.as_str();
    let tenant = stale.tenant_id.as_str();
    let lock = state.oauth.lock(id);
    let _guard = lock.lock().await;
    let now = portico_store::now_millis();
    // Another call renewed it while this one waited.
    if let Some(current) = state.connections.get(id)
        && !Arc::ptr_eq(&current, stale)
        && !current.needs_refresh(now)
    {
        return Ok(current);
    }
    if state.oauth.backing_off(id, now) {
        return keep_or_fail(stale, now, "the identity provider's token endpoint failed recently; retrying soon");
    }
    let lease = format!("refresh:{id}");
    let deadline = now + LEASE;
    while !state
        .store
        .acquire_lease(&lease, &state.oauth.instance, portico_store::now_millis(), portico_store::now_millis() + LEASE)
        .await?
    {
        if portico_store::now_millis() > deadline {
            return keep_or_fail(stale, now, "another Portico instance is renewing this connection's token");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let result = refresh_holding_lease(state, tenant, id, stale).await;
    let _ = state.store.release_lease(&lease, &state.oauth.instance).await;
    result
}

async fn refresh_holding_lease(
    state: &AppState,
    tenant: &str,
    id: &str,
    stale: &Arc<PreparedConnection>,
) -> Result<Arc<PreparedConnection>, ApiError> {
    let now = portico_store::now_millis();
    // Re-read: another instance may have renewed it (and rotated the refresh token).
    let record = state.store.connection(tenant, id).await?.ok_or(ApiError::NotFound("connection"))?;
    let connector =
        state.store.connector(tenant, &record.connector_id).await?.ok_or(ApiError::NotFound("connection"))?;
    let current = open_tokens(state, &record)?;
    if record.status == ConnectionStatus::Connected
        && let Some(tokens) = &current
        && tokens.refresh_at().is_none_or(|at| now < at)
        && record.token_expires_at != stale.token.as_ref().and_then(|t| t.expires_at)
    {
        state.changed_connection(id);
        return crate::proxy::load(state, tenant, id).await;
    }
    if record.status != ConnectionStatus::Connected {
        state.changed_connection(id);
        return Err(crate::proxy::not_ready(&record));
    }
    let Some((_, oauth)) = oauth_set(&connector, &record) else { return Err(ApiError::NotFound("connection")) };
    let secrets = crate::connections::open(state, &record)?;
    let flow = discovered(state, flow(state, &connector, oauth, &record.parameters, &secrets)?).await?;
    let http = state.oauth.http.clone();
    let previous = current;
    let refresh_token = previous.as_ref().and_then(|t| t.refresh_token.clone()).map(SecretString::from);
    let access = previous.as_ref().map(StoredTokens::access_token);
    let request = async move {
        match (flow.grant, refresh_token, access) {
            (GrantType::ClientCredentials, _, _) => flow.client_credentials(&http).await,
            (_, Some(refresh), _) => flow.refresh(&http, &refresh).await,
            (_, None, Some(access)) if flow.long_lived_exchange => flow.exchange_long_lived(&http, &access).await,
            _ => Err(TokenError::InvalidGrant("no refresh token was issued; sign in again".to_owned())),
        }
    };
    match state.oauth.run(request).await {
        Ok(tokens) => {
            let stored = stored(tokens, previous.as_ref());
            let sealed = seal_tokens(state, id, &stored);
            // Stored before use: a rotated refresh token must not be lost.
            state
                .store
                .set_connection_tokens(
                    tenant,
                    id,
                    Some(&sealed),
                    stored.expires_at(),
                    ConnectionStatus::Connected,
                    None,
                )
                .await?;
            state.oauth.recovered(id);
            state.changed_connection(id);
            tracing::info!(connection = %id, "access token renewed");
            crate::proxy::load(state, tenant, id).await
        }
        Err(TokenError::InvalidGrant(reason)) | Err(TokenError::Rejected { error: reason, .. }) => {
            let reason = format!("sign in again: {reason}");
            state
                .store
                .set_connection_tokens(tenant, id, None, None, ConnectionStatus::NeedsReauth, Some(&reason))
                .await?;
            state.changed_connection(id);
            tracing::warn!(connection = %id, "refresh refused; the connection needs a new sign-in");
            Err(ApiError::ConnectionNotReady(format!("the connection is needs_reauth: {reason}")))
        }
        Err(error) => {
            // From the failure, not from the start of the attempt: a slow failure (a timeout)
            // would otherwise have used up its back-off, and every waiting call would try again.
            let now = portico_store::now_millis();
            state.oauth.failed(id, now);
            tracing::warn!(connection = %id, %error, "token renewal failed; will retry");
            keep_or_fail(stale, now, &error.to_string())
        }
    }
}

/// After a failed renewal: the old token while it is still valid, else an error.
fn keep_or_fail(
    stale: &Arc<PreparedConnection>,
    now: Millis,
    reason: &str,
) -> Result<Arc<PreparedConnection>, ApiError> {
    if stale.token_expired(now) {
        Err(ApiError::BadGateway(format!("the access token expired and could not be renewed: {reason}")))
    } else {
        Ok(stale.clone())
    }
}

/// Best-effort revocation of a deleted connection's tokens, in the background.
pub fn revoke_in_background(state: &Arc<AppState>, connector: &ConnectorRecord, record: &ConnectionRecord) {
    let Some((_, oauth)) = oauth_set(connector, record) else { return };
    let Ok(Some(tokens)) = open_tokens(state, record) else { return };
    let Ok(secrets) = crate::connections::open(state, record) else { return };
    let Ok(mut flow) = flow(state, connector, oauth, &record.parameters, &secrets) else { return };
    // An OpenID Connect provider may name its revocation endpoint in its discovery document.
    if flow.revocation_url.is_none() && flow.discovery_url.is_none() {
        return;
    }
    let http = state.oauth.http.clone();
    let (token, hint) = match &tokens.refresh_token {
        Some(refresh) => (SecretString::from(refresh.as_str()), "refresh_token"),
        None => (tokens.access_token(), "access_token"),
    };
    let id = record.id.clone();
    state.oauth.background.spawn(async move {
        if flow.revocation_url.is_none()
            && let Err(error) = flow.discover(&http).await
        {
            tracing::warn!(connection = %id, %error, "token revocation failed");
            return;
        }
        if let Err(error) = flow.revoke(&http, &token, hint).await {
            tracing::warn!(connection = %id, %error, "token revocation failed");
        }
    });
}
