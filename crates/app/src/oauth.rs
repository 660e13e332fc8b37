//! OAuth 2.0 connections: the sign-in (authorization code with PKCE), the callback, tokens
//! sealed at rest, renewal with one refresh at a time per connection, client credentials and
//! revocation.
//!
//! One refresh at a time: within a process a per-connection async lock; across processes a
//! lease in the store, then a re-read, so that a process that waited uses the token another
//! one fetched and never sends a refresh token that was already used.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use portico_model::{Credential, GrantType, OAuth2, ParameterSet};
use portico_oauth::{ClientCredentials, Flow, Substitution, TokenError, Tokens};
use portico_outbound::{AddressPolicy, HttpClient};
use portico_runtime::{PreparedConnection, TokenTimes};
use portico_secrets::SecretString;
use portico_store::{
    Change, ConnectionRecord, ConnectionStatus, ConnectorRecord, Effects, Millis, OAuthStateRecord, SealedBytes,
    SealedColumn,
};
use serde_json::Value;

use crate::audit::{By, Detail};
use crate::error::{Error, Result};
use crate::events::{self, EventKind};
use crate::sealing::{Secrets, StoredTokens};
use crate::{App, Principal};

/// How long a sign-in may take.
pub const STATE_TTL: Millis = 10 * 60 * 1000;
/// How long a connection's refresh lease lasts unless its holder extends it. The holder extends
/// it every third of this while its refresh runs (a token request may take 30 s), so that the
/// lease of a process that died mid-refresh runs out within seconds, not after the longest
/// token request: until then, no other process may renew the connection's token.
const LEASE: Millis = 6_000;
/// How long a call waits for another process's refresh before it gives up on it: longer than
/// a token request may take.
const LEASE_WAIT: Millis = 35_000;

/// What the use cases keep for OAuth.
pub(crate) struct OAuthSupport {
    /// Under the address rule: connectors and connections name these identity providers.
    pub(crate) http: HttpClient,
    /// Token requests run here, not on the serving threads.
    pub(crate) background: tokio::runtime::Handle,
    /// This process's name as a lease holder.
    pub(crate) instance: String,
    /// Origins a `returnUrl` may point to, besides the public URL's.
    return_origins: Vec<url::Origin>,
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    backoff: Mutex<HashMap<String, Backoff>>,
}

#[derive(Clone, Copy)]
struct Backoff {
    until: Millis,
    failures: u32,
}

impl OAuthSupport {
    pub(crate) fn new(
        background: tokio::runtime::Handle,
        return_origins: Vec<url::Origin>,
        addresses: AddressPolicy,
    ) -> Self {
        OAuthSupport {
            http: portico_oauth::http_client(addresses),
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

    fn access_token(&self) -> SecretString {
        SecretString::from(self.access_token.as_str())
    }

    /// A token response as stored, keeping the previous refresh token when the provider did
    /// not rotate it.
    fn from_response(tokens: Tokens, previous: Option<&StoredTokens>) -> StoredTokens {
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
}

fn token_failure(error: TokenError) -> Error {
    match error {
        TokenError::NotAllowed => not_allowed(),
        error => Error::BadGateway(format!("the identity provider's token endpoint: {error}")),
    }
}

/// An identity provider the address rule refused: worded alike for every endpoint and every
/// state of the port, so that it tells nothing of what listens there.
fn not_allowed() -> Error {
    Error::BackendNotAllowed(format!("{} (see --allow-private-backends)", TokenError::NotAllowed))
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

/// What the callback learned, for the page or redirect the browser gets.
#[derive(Debug)]
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

/// The query of the redirect URI, as the identity provider sent it.
#[derive(Debug, Default)]
pub struct Callback<'a> {
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    pub error: Option<&'a str>,
    pub error_description: Option<&'a str>,
    /// The issuer the authorization server names (RFC 9207).
    pub iss: Option<&'a str>,
}

impl App {
    /// The OAuth client: the connection's own (`token:clientId` / `token:clientSecret`), else
    /// the connector's, else the definition's client id alone.
    async fn oauth_client(
        &self,
        connector: &ConnectorRecord,
        public: &BTreeMap<String, Value>,
        secret: &Secrets,
    ) -> Result<Option<ClientCredentials>> {
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
        Ok(Some(ClientCredentials { id: id.clone(), secret: self.open_client_secret(connector).await? }))
    }

    /// The sign-in of a connection's parameter set, resolved.
    pub(crate) async fn flow(
        &self,
        connector: &ConnectorRecord,
        oauth: &OAuth2,
        public: &BTreeMap<String, Value>,
        secret: &Secrets,
    ) -> Result<Flow> {
        let client = self.oauth_client(connector, public, secret).await?;
        let name = |k: &str| k.strip_prefix("token:").unwrap_or(k).to_owned();
        let mut substitutions: Vec<Substitution> =
            public.iter().filter_map(|(k, v)| Some(Substitution::public(name(k), v.as_str()?))).collect();
        substitutions.extend(secret.iter().map(|(k, v)| Substitution::secret(name(k), v.expose())));
        portico_oauth::resolve(oauth, &self.catalog, client, substitutions).map_err(|e| {
            Error::invalid_field("the connector's OAuth 2.0 sign-in cannot be used", "connectorId", e.to_string())
        })
    }

    /// Fills the flow's endpoints from its discovery document (on the background runtime).
    pub(crate) async fn discovered(&self, flow: Flow) -> Result<Flow> {
        self.discovery(flow, false).await
    }

    /// Reads the flow's discovery document (when it has one): for the endpoints it lacks, and
    /// with `issuer` also for the issuer a callback is checked against.
    async fn discovery(&self, mut flow: Flow, issuer: bool) -> Result<Flow> {
        if flow.discovery_url.is_none() {
            return Ok(flow);
        }
        let http = self.oauth.http.clone();
        self.oauth
            .background
            .spawn(async move {
                let read = if issuer { flow.discover_issuer(&http).await } else { flow.discover(&http).await };
                read.map(|()| flow)
            })
            .await
            .map_err(|_| Error::Internal)?
            .map_err(token_failure)
    }

    /// Checks a `returnUrl`: only the public URL's origin or an allowed one (no open redirect).
    pub fn check_return_url(&self, url: Option<&str>) -> Result<Option<String>> {
        let Some(text) = url else { return Ok(None) };
        let bad = |message: &str| Error::invalid_field("invalid returnUrl", "returnUrl", message);
        let parsed = url::Url::parse(text).map_err(|_| bad("must be an absolute URL"))?;
        let origin = parsed.origin();
        if origin == self.public_url.origin() || self.oauth.return_origins.contains(&origin) {
            Ok(Some(parsed.into()))
        } else {
            Err(bad("must be on Portico's public URL or an origin allowed with --allowed-return-origin"))
        }
    }

    /// Starts a sign-in for a connection: a single-use state bound to the tenant and
    /// connection, and the authorization URL.
    pub(crate) async fn start_sign_in(
        &self,
        principal: &Principal,
        connection_id: &str,
        flow: &Flow,
        return_url: Option<String>,
    ) -> Result<String> {
        let secret_state = portico_secrets::random_token();
        let state_hash = portico_secrets::api_key_hash(secret_state.expose());
        let pkce = portico_oauth::Pkce::new();
        let redirect_uri = self.redirect_uri();
        let url = flow
            .authorize_url(&redirect_uri, secret_state.expose(), Some(&pkce.challenge))
            .ok_or_else(|| Error::Conflict("the connector's authorization URL is not a valid URL".to_owned()))?;
        let now = portico_store::now_millis();
        let sealed_return_url =
            return_url.map(|url| self.seal_value(SealedColumn::SignInReturnUrl, &state_hash, url.as_bytes()));
        self.store
            .insert_oauth_state(&OAuthStateRecord {
                verifier: self.seal_verifier(&state_hash, &pkce.verifier),
                state_hash,
                tenant_id: principal.tenant_id.to_string(),
                connection_id: connection_id.to_owned(),
                started_by: Some(principal.reference()),
                redirect_uri,
                sealed_return_url,
                return_url: None,
                created_at: now,
                expires_at: now + STATE_TTL,
            })
            .await?;
        Ok(url)
    }

    /// Fetches a client-credentials token for connection `connection_id`: sealed, and when it
    /// expires.
    pub(crate) async fn fetch_client_credentials(
        &self,
        connection_id: &str,
        flow: Flow,
    ) -> Result<(SealedBytes, Option<Millis>)> {
        let flow = self.discovered(flow).await?;
        let http = self.oauth.http.clone();
        let tokens =
            self.oauth.run(async move { flow.client_credentials(&http).await }).await.map_err(token_failure)?;
        let stored = StoredTokens::from_response(tokens, None);
        Ok((self.seal_tokens(connection_id, &stored), stored.expires_at()))
    }

    /// Fetches a new client-credentials token for connection `record` and stores it.
    pub(crate) async fn client_credentials(&self, record: &ConnectionRecord, flow: Flow) -> Result<()> {
        let (sealed, expires_at) = self.fetch_client_credentials(&record.id, flow).await?;
        let now = portico_store::now_millis();
        let connected = ConnectionRecord { status: ConnectionStatus::Connected, status_reason: None, ..record.clone() };
        let events = [events::of_connection(EventKind::ConnectionReauthorized, &connected, now)];
        self.store
            .set_connection_tokens_with(
                &record.tenant_id,
                &record.id,
                Some(&sealed),
                expires_at,
                ConnectionStatus::Connected,
                None,
                Effects { events: &events, ..Effects::NONE },
            )
            .await?;
        Ok(())
    }

    /// The redirect URI's work: check the state, exchange the code, store the tokens. It needs
    /// no principal: the single-use state alone names the sign-in, which may finish in another
    /// browser than the one that started it.
    pub async fn oauth_callback(&self, query: Callback<'_>) -> Result<CallbackOutcome> {
        let Some(state_param) = query.state.filter(|s| !s.is_empty() && s.len() <= 512) else {
            return Ok(CallbackOutcome::Refused);
        };
        let hash = portico_secrets::api_key_hash(state_param);
        let Some(sign_in) = self.store.take_oauth_state(&hash, portico_store::now_millis()).await? else {
            return Ok(CallbackOutcome::Refused);
        };
        let tenant = sign_in.tenant_id.as_str();
        let Some(record) = self.store.connection(tenant, &sign_in.connection_id).await? else {
            return Ok(CallbackOutcome::Refused);
        };
        let return_url = match &sign_in.sealed_return_url {
            Some(sealed) => Some(
                String::from_utf8_lossy(&self.open_value(SealedColumn::SignInReturnUrl, &hash, sealed).await?)
                    .into_owned(),
            ),
            None => sign_in.return_url.clone(),
        };
        let fail = |reason: String| async {
            let failed = ConnectionRecord {
                status: ConnectionStatus::Error,
                status_reason: Some(reason.clone()),
                ..record.clone()
            };
            let events = [events::of_connection(EventKind::ConnectionUpdated, &failed, portico_store::now_millis())];
            self.store
                .set_connection_tokens_with(
                    tenant,
                    &record.id,
                    record.tokens.as_ref(),
                    record.token_expires_at,
                    ConnectionStatus::Error,
                    Some(&reason),
                    Effects { events: &events, ..Effects::NONE },
                )
                .await?;
            self.changed(Change::Connection(record.id.clone()));
            Ok::<_, Error>(CallbackOutcome::Failed { reason, return_url: return_url.clone() })
        };
        if let Some(error) = query.error {
            // The identity provider's words, as its redirect carried them: repeated, but made brief.
            let reason = match query.error_description {
                Some(d) => format!("{}: {}", portico_oauth::brief(error), portico_oauth::brief(d)),
                None => portico_oauth::brief(error),
            };
            return fail(format!("the sign-in was not completed: {reason}")).await;
        }
        let Some(code) = query.code.filter(|c| !c.is_empty()) else {
            return fail("the identity provider sent no authorization code".to_owned()).await;
        };
        let connector =
            self.store.connector(tenant, &record.connector_id).await?.ok_or(Error::NotFound("connector"))?;
        let Some((_, oauth)) = oauth_set(&connector, &record) else {
            return fail("the connector no longer signs in with OAuth 2.0".to_owned()).await;
        };
        let secrets = self.open_secrets(&record).await?;
        let flow = match self.flow(&connector, oauth, &record.parameters, &secrets).await {
            Ok(flow) => flow,
            Err(_) => return fail("the connector's OAuth 2.0 settings cannot be used".to_owned()).await,
        };
        let flow = match self.discovery(flow, true).await {
            Ok(flow) => flow,
            Err(_) => return fail("the identity provider's discovery document could not be read".to_owned()).await,
        };
        if let Err(reason) = flow.check_issuer(query.iss) {
            tracing::warn!(connection = %record.id, "an authorization response failed the issuer check");
            return fail(reason).await;
        }
        let verifier = self.open_verifier(&hash, &sign_in.verifier).await?;
        let (http, code, redirect_uri) = (self.oauth.http.clone(), code.to_owned(), sign_in.redirect_uri.clone());
        let exchanged = self
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
        let stored = StoredTokens::from_response(tokens, None);
        let sealed = self.seal_tokens(&record.id, &stored);
        let now = portico_store::now_millis();
        let connected = ConnectionRecord { status: ConnectionStatus::Connected, status_reason: None, ..record.clone() };
        // The first sign-in of a connection makes it connected; any later one re-authorizes it.
        let kind = if record.status == ConnectionStatus::Pending {
            EventKind::ConnectionUpdated
        } else {
            EventKind::ConnectionReauthorized
        };
        let mut events = vec![events::of_connection(kind, &connected, now)];
        // The connection of a connect session completes it.
        let session =
            self.store.connect_session_of(tenant, &record.id).await?.filter(|session| session.completed_at.is_none());
        if let Some(session) = &session {
            events.push(events::session_completed(&session.id, &connected, now));
        }
        let effects = Effects {
            events: &events,
            complete_session: session.as_ref().map(|session| (session.id.as_str(), now)),
            ..Effects::NONE
        };
        self.store
            .set_connection_tokens_with(
                tenant,
                &record.id,
                Some(&sealed),
                stored.expires_at(),
                ConnectionStatus::Connected,
                None,
                effects,
            )
            .await?;
        self.changed(Change::Connection(record.id.clone()));
        self.oauth.recovered(&record.id);
        tracing::info!(connection = %record.id, principal = sign_in.started_by.as_deref().unwrap_or("unknown"),
            "OAuth 2.0 sign-in completed");
        let by = sign_in.started_by.clone().map_or(By::System, By::Named);
        let change =
            Detail { connection_id: Some(&record.id), connector_id: Some(&record.connector_id), ..Detail::default() };
        self.audit(tenant, by, "connection.authorized", change, None).await;
        Ok(CallbackOutcome::Connected { return_url })
    }

    /// The bearer token and its times for preparing a connection; `None` when it has none yet.
    pub(crate) async fn bearer(
        &self,
        connector: &ConnectorRecord,
        record: &ConnectionRecord,
    ) -> Result<Option<(SecretString, TokenTimes, Option<String>)>> {
        let Some((_, oauth)) = oauth_set(connector, record) else { return Ok(None) };
        let Some(tokens) = self.open_tokens(record).await? else { return Ok(None) };
        let expired_statuses = portico_oauth::expired_statuses(&self.catalog, oauth.identity_provider.as_str());
        let times = TokenTimes { expires_at: tokens.expires_at(), refresh_at: tokens.refresh_at(), expired_statuses };
        Ok(Some((tokens.access_token(), times, tokens.instance_url.clone())))
    }

    /// Renews a connection's access token — one refresh at a time — and returns the connection
    /// prepared with the new token. `stale` is what the caller had.
    pub async fn refresh(&self, stale: &Arc<PreparedConnection>) -> Result<Arc<PreparedConnection>> {
        let id = stale.connection_id.as_str();
        let tenant = stale.tenant_id.as_str();
        let lock = self.oauth.lock(id);
        let _guard = lock.lock().await;
        let now = portico_store::now_millis();
        // Another call renewed it while this one waited.
        if let Some(current) = self.connections.get(id)
            && !Arc::ptr_eq(&current, stale)
            && !current.needs_refresh(now)
        {
            return Ok(current);
        }
        if self.oauth.backing_off(id, now) {
            return keep_or_fail(stale, now, "the identity provider's token endpoint failed recently; retrying soon");
        }
        let lease = format!("refresh:{id}");
        let deadline = now + LEASE_WAIT;
        while !self
            .store
            .acquire_lease(
                &lease,
                &self.oauth.instance,
                portico_store::now_millis(),
                portico_store::now_millis() + LEASE,
            )
            .await?
        {
            if portico_store::now_millis() > deadline {
                return keep_or_fail(stale, now, "another Portico instance is renewing this connection's token");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Extended while the refresh runs; the refresh is never cancelled, only paused for the
        // few milliseconds an extension takes.
        let refresh = self.refresh_holding_lease(tenant, id, stale);
        tokio::pin!(refresh);
        let extend_every = Duration::from_millis(LEASE as u64 / 3);
        let result = loop {
            tokio::select! {
                result = &mut refresh => break result,
                () = tokio::time::sleep(extend_every) => {
                    let now = portico_store::now_millis();
                    let held = self.store.acquire_lease(&lease, &self.oauth.instance, now, now + LEASE).await;
                    if !matches!(held, Ok(true)) {
                        tracing::warn!(connection = %id, "could not extend the refresh lease");
                    }
                }
            }
        };
        let _ = self.store.release_lease(&lease, &self.oauth.instance).await;
        result
    }

    async fn refresh_holding_lease(
        &self,
        tenant: &str,
        id: &str,
        stale: &Arc<PreparedConnection>,
    ) -> Result<Arc<PreparedConnection>> {
        let now = portico_store::now_millis();
        // Re-read: another instance may have renewed it (and rotated the refresh token).
        let record = self.store.connection(tenant, id).await?.ok_or(Error::NotFound("connection"))?;
        let connector =
            self.store.connector(tenant, &record.connector_id).await?.ok_or(Error::NotFound("connection"))?;
        let current = self.open_tokens(&record).await?;
        if record.status == ConnectionStatus::Connected
            && let Some(tokens) = &current
            && tokens.refresh_at().is_none_or(|at| now < at)
            && record.token_expires_at != stale.token.as_ref().and_then(|t| t.expires_at)
        {
            self.changed(Change::Connection(id.to_owned()));
            return self.load(tenant, id).await;
        }
        if record.status != ConnectionStatus::Connected {
            self.changed(Change::Connection(id.to_owned()));
            return Err(crate::calls::not_ready(&record));
        }
        let Some((_, oauth)) = oauth_set(&connector, &record) else { return Err(Error::NotFound("connection")) };
        let secrets = self.open_secrets(&record).await?;
        let flow = self.discovered(self.flow(&connector, oauth, &record.parameters, &secrets).await?).await?;
        let http = self.oauth.http.clone();
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
        let renewal = std::time::Instant::now();
        let outcome = self.oauth.run(request).await;
        let elapsed = renewal.elapsed();
        fn renewed<'a>(id: &'a str, connector_id: &'a str, failure: Option<&'a str>) -> Detail<'a> {
            Detail { connection_id: Some(id), connector_id: Some(connector_id), failure, ..Detail::default() }
        }
        // A failure is recorded now; a success once its tokens are stored (nothing may come
        // between a rotated refresh token and the store).
        if let Err(error) = &outcome {
            let failure = error.to_string();
            let change = renewed(id, &record.connector_id, Some(&failure));
            self.audit(tenant, By::System, "token.refresh", change, Some(elapsed)).await;
        }
        match outcome {
            Ok(tokens) => {
                let stored = StoredTokens::from_response(tokens, previous.as_ref());
                let sealed = self.seal_tokens(id, &stored);
                // Stored before use: a rotated refresh token must not be lost.
                self.store
                    .set_connection_tokens(
                        tenant,
                        id,
                        Some(&sealed),
                        stored.expires_at(),
                        ConnectionStatus::Connected,
                        None,
                    )
                    .await?;
                self.oauth.recovered(id);
                self.changed(Change::Connection(id.to_owned()));
                tracing::info!(connection = %id, "access token renewed");
                let change = renewed(id, &record.connector_id, None);
                self.audit(tenant, By::System, "token.refresh", change, Some(elapsed)).await;
                self.load(tenant, id).await
            }
            Err(TokenError::InvalidGrant(reason)) | Err(TokenError::Rejected { error: reason, .. }) => {
                let reason = format!("sign in again: {reason}");
                let now = portico_store::now_millis();
                let lost = ConnectionRecord {
                    status: ConnectionStatus::NeedsReauth,
                    status_reason: Some(reason.clone()),
                    ..record.clone()
                };
                let events = [events::of_connection(EventKind::ConnectionNeedsReauth, &lost, now)];
                self.store
                    .set_connection_tokens_with(
                        tenant,
                        id,
                        None,
                        None,
                        ConnectionStatus::NeedsReauth,
                        Some(&reason),
                        Effects { events: &events, ..Effects::NONE },
                    )
                    .await?;
                self.changed(Change::Connection(id.to_owned()));
                tracing::warn!(connection = %id, "refresh refused; the connection needs a new sign-in");
                let change = Detail {
                    connection_id: Some(id),
                    connector_id: Some(&record.connector_id),
                    failure: Some(&reason),
                    ..Detail::default()
                };
                self.audit(tenant, By::System, "connection.needs_reauth", change, None).await;
                Err(Error::ConnectionNotReady(format!("the connection is needs_reauth: {reason}")))
            }
            Err(TokenError::NotAllowed) => {
                let now = portico_store::now_millis();
                self.oauth.failed(id, now);
                tracing::warn!(connection = %id, "token renewal refused: the identity provider's address is not allowed");
                if stale.token_expired(now) { Err(not_allowed()) } else { Ok(stale.clone()) }
            }
            Err(error) => {
                // From the failure, not from the start of the attempt: a slow failure (a timeout)
                // would otherwise have used up its back-off, and every waiting call would try again.
                let now = portico_store::now_millis();
                self.oauth.failed(id, now);
                tracing::warn!(connection = %id, %error, "token renewal failed; will retry");
                keep_or_fail(stale, now, &error.to_string())
            }
        }
    }

    /// Best-effort revocation of a deleted connection's tokens, in the background.
    pub(crate) async fn revoke_in_background(&self, connector: &ConnectorRecord, record: &ConnectionRecord) {
        let Some((_, oauth)) = oauth_set(connector, record) else { return };
        let Ok(Some(tokens)) = self.open_tokens(record).await else { return };
        let Ok(secrets) = self.open_secrets(record).await else { return };
        let Ok(mut flow) = self.flow(connector, oauth, &record.parameters, &secrets).await else { return };
        // An OpenID Connect provider may name its revocation endpoint in its discovery document.
        if flow.revocation_url.is_none() && flow.discovery_url.is_none() {
            return;
        }
        let http = self.oauth.http.clone();
        let (token, hint) = match &tokens.refresh_token {
            Some(refresh) => (SecretString::from(refresh.as_str()), "refresh_token"),
            None => (tokens.access_token(), "access_token"),
        };
        let id = record.id.clone();
        self.oauth.background.spawn(async move {
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
}

/// After a failed renewal: the old token while it is still valid, else an error.
fn keep_or_fail(stale: &Arc<PreparedConnection>, now: Millis, reason: &str) -> Result<Arc<PreparedConnection>> {
    if stale.token_expired(now) {
        Err(Error::BadGateway(format!("the access token expired and could not be renewed: {reason}")))
    } else {
        Ok(stale.clone())
    }
}
