//! Connect sessions: an app's back end (an admin key) makes a short-lived link for one of its
//! end users, who opens it — no Portico key, no sign-in: the token in the link is the only
//! credential — and connects one account of an offered connector, by typing its values or
//! signing in with OAuth 2.0. The connection is the end user's. The token makes one connection
//! and is spent; it reads nothing else; only its SHA-256 is stored.

use std::time::Duration;

use portico_model::{ConnectionForm, Role};
use portico_secrets::SecretString;
use portico_store::{ConnectSessionRecord, ConnectorRecord, Millis};

use crate::access::{self, Action};
use crate::audit::{By, Detail};
use crate::connections::{ConnectionInfo, NewConnection};
use crate::error::{Error, Result};
use crate::{Actor, App, Principal};

/// How long a session lives unless asked otherwise, and at most.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 60);
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Every connect token starts with this.
pub const TOKEN_PREFIX: &str = "cst_";

/// What an admin asks for.
#[derive(Debug, Default)]
pub struct NewConnectSession {
    pub end_user_id: String,
    /// How the end user's page names the app that sent the link (up to 100 characters).
    pub app_name: Option<String>,
    /// The connectors offered; `None`: all of the tenant's.
    pub connector_ids: Option<Vec<String>>,
    pub return_url: Option<String>,
    /// `None`: [`DEFAULT_LIFETIME`].
    pub expires_in: Option<Duration>,
}

/// A session just made: its token (shown this once) and the link of its hosted page.
pub struct CreatedConnectSession {
    pub record: ConnectSessionRecord,
    pub token: SecretString,
    pub url: String,
}

/// Where a session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// Not used yet, or its connection waits for a sign-in.
    Pending,
    /// Its connection is connected.
    Completed {
        connection_id: String,
    },
    Expired,
}

/// The state of `session` at `now`.
pub fn state_of(session: &ConnectSessionRecord, now: Millis) -> SessionState {
    match (&session.connection_id, session.completed_at) {
        (Some(connection_id), Some(_)) => SessionState::Completed { connection_id: connection_id.clone() },
        _ if now >= session.expires_at => SessionState::Expired,
        _ => SessionState::Pending,
    }
}

/// How a session's connection went, as its holder may see it.
#[derive(Debug)]
pub struct ConnectOutcome {
    pub session: ConnectSessionRecord,
    pub state: SessionState,
    /// The connection's status and why, when the session made one.
    pub connection: Option<(portico_store::ConnectionStatus, Option<String>)>,
    /// The display name of the connector it connected to.
    pub connector_name: Option<String>,
}

/// What a session's holder may see: the session, and the connectors it offers with their forms.
pub struct ConnectOffer {
    pub session: ConnectSessionRecord,
    pub connectors: Vec<(ConnectorRecord, ConnectionForm)>,
}

/// The principal a session's token acts as: its end user, making one connection.
fn principal_of(session: &ConnectSessionRecord) -> Principal {
    Principal {
        tenant_id: session.tenant_id.as_str().into(),
        actor: Actor::ConnectSession(session.id.as_str().into()),
        role: Role::User,
        end_user: Some(session.end_user_id.as_str().into()),
        connections: None,
        expires_at: Some(session.expires_at),
        limits: crate::ratelimit::Limits::default(),
    }
}

impl App {
    pub async fn create_connect_session(
        &self,
        principal: &Principal,
        new: NewConnectSession,
    ) -> Result<CreatedConnectSession> {
        access::require(principal, Action::ManageConnectSessions)?;
        let end_user_id = portico_model::end_user_id(&new.end_user_id)
            .map_err(|message| Error::invalid_field("invalid connect session", "endUserId", message))?;
        let lifetime = new.expires_in.unwrap_or(DEFAULT_LIFETIME);
        if lifetime < Duration::from_secs(1) || lifetime > MAX_LIFETIME {
            return Err(Error::invalid_field(
                "invalid connect session",
                "expiresIn",
                "must be from 1 second to 24 hours (86400)",
            ));
        }
        if let Some(ids) = &new.connector_ids {
            if ids.is_empty() {
                return Err(Error::invalid_field(
                    "invalid connect session",
                    "connectorIds",
                    "must name at least one connector, or be left out",
                ));
            }
            for (i, id) in ids.iter().enumerate() {
                if self.store.connector(&principal.tenant_id, id).await?.is_none() {
                    return Err(Error::invalid_field(
                        "invalid connect session",
                        format!("connectorIds[{i}]"),
                        "no such connector",
                    ));
                }
            }
        }
        let return_url = self.check_return_url(new.return_url.as_deref())?;
        let app_name = new.app_name.map(|name| name.trim().to_owned()).filter(|name| !name.is_empty());
        if app_name.as_ref().is_some_and(|name| name.chars().count() > 100 || name.chars().any(char::is_control)) {
            return Err(Error::invalid_field(
                "invalid connect session",
                "appName",
                "must be at most 100 characters, without control characters",
            ));
        }
        let token = SecretString::new(format!("{TOKEN_PREFIX}{}", portico_secrets::random_token().expose()));
        let now = portico_store::now_millis();
        let record = ConnectSessionRecord {
            id: format!("cs_{}", portico_store::new_id()),
            tenant_id: principal.tenant_id.to_string(),
            end_user_id,
            app_name,
            connector_ids: new.connector_ids,
            return_url,
            created_by: principal.reference(),
            created_at: now,
            expires_at: now + Millis::try_from(lifetime.as_millis()).unwrap_or(Millis::MAX),
            connection_id: None,
            completed_at: None,
        };
        self.store.insert_connect_session(&record, &portico_secrets::api_key_hash(token.expose())).await?;
        tracing::info!(session = %record.id, principal = %principal.reference(), "connect session created");
        let change = Detail { target: Some(&record.id), ..Detail::default() };
        self.audit_change(&record.tenant_id, principal, "connect_session.created", change).await;
        let url = format!("{}/connect/{}", self.public_url.as_str().trim_end_matches('/'), token.expose());
        Ok(CreatedConnectSession { record, token, url })
    }

    /// A session and where it stands (admins).
    pub async fn connect_session(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<(ConnectSessionRecord, SessionState)> {
        access::require(principal, Action::ManageConnectSessions)?;
        let session =
            self.store.connect_session(&principal.tenant_id, id).await?.ok_or(Error::NotFound("connect session"))?;
        let state = state_of(&session, portico_store::now_millis());
        Ok((session, state))
    }

    /// The session a token names, if it may still make its connection: unknown → unauthenticated;
    /// expired or spent → gone.
    async fn usable_session(&self, token: &str) -> Result<ConnectSessionRecord> {
        let session = self.session_of_token(token).await?;
        let now = portico_store::now_millis();
        match state_of(&session, now) {
            SessionState::Expired => Err(Error::Gone("this connect link has expired; ask for a new one".to_owned())),
            SessionState::Completed { .. } => {
                Err(Error::Gone("this connect link was used: it connects one account".to_owned()))
            }
            SessionState::Pending if session.connection_id.is_some() => {
                Err(Error::Gone("this connect link was used: it connects one account".to_owned()))
            }
            SessionState::Pending => Ok(session),
        }
    }

    /// The session a token names, whatever its state; an unknown token is unauthenticated.
    pub async fn session_of_token(&self, token: &str) -> Result<ConnectSessionRecord> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(Error::Unauthenticated);
        }
        self.store.connect_session_by_token(&portico_secrets::api_key_hash(token)).await?.ok_or(Error::Unauthenticated)
    }

    /// Where the session of a token stands, and how its connection went: what its page says at
    /// the end. The token made the connection, so it may read this of it — no more.
    pub async fn connect_outcome(&self, token: &str) -> Result<ConnectOutcome> {
        let session = self.session_of_token(token).await?;
        let state = state_of(&session, portico_store::now_millis());
        let (connection, connector_name) = match &session.connection_id {
            Some(id) => match self.store.connection(&session.tenant_id, id).await? {
                Some(record) => {
                    let connector = self.store.connector(&session.tenant_id, &record.connector_id).await?;
                    (Some((record.status, record.status_reason)), connector.map(|c| c.connector.metadata.display_name))
                }
                None => (None, None),
            },
            None => (None, None),
        };
        Ok(ConnectOutcome { session, state, connection, connector_name })
    }

    /// What a usable session offers: its connectors and their connection forms.
    pub async fn connect_offer(&self, token: &str) -> Result<ConnectOffer> {
        let session = self.usable_session(token).await?;
        let mut connectors = Vec::new();
        match &session.connector_ids {
            Some(ids) => {
                for id in ids {
                    // A connector deleted since is simply not offered.
                    if let Some(record) = self.store.connector(&session.tenant_id, id).await? {
                        connectors.push(record);
                    }
                }
            }
            None => {
                let mut after: Option<String> = None;
                loop {
                    let page = self.store.list_connectors(&session.tenant_id, after.as_deref(), 200).await?;
                    connectors.extend(page.items);
                    match page.next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
            }
        }
        let connectors = connectors
            .into_iter()
            .map(|record| {
                let form = record.connector.connection_form();
                (record, form)
            })
            .collect();
        Ok(ConnectOffer { session, connectors })
    }

    /// Makes the session's one connection, owned by its end user. `new.return_url` is where
    /// an OAuth 2.0 sign-in comes back to (the hosted page's own); `new.end_user_id` is ignored.
    pub async fn connect(&self, token: &str, new: NewConnection) -> Result<(ConnectSessionRecord, ConnectionInfo)> {
        let session = self.usable_session(token).await?;
        access::connect_session_offers(&session, &new.connector_id)?;
        let principal = principal_of(&session);
        let owner = Some(session.end_user_id.clone());
        let info = self
            .make_connection(&principal, owner, NewConnection { end_user_id: None, ..new }, Some(&session))
            .await
            .map_err(|error| match error {
                // Another request with the same token made the connection meanwhile.
                Error::Conflict(message) if message.starts_with("connect session") => {
                    Error::Gone("this connect link was used: it connects one account".to_owned())
                }
                other => other,
            })?;
        tracing::info!(session = %session.id, connection = %info.record.id, "connect session made its connection");
        let change = Detail {
            connection_id: Some(&info.record.id),
            connector_id: Some(&info.record.connector_id),
            target: Some(&session.id),
            ..Detail::default()
        };
        self.audit(
            &session.tenant_id,
            By::Named(format!("connect_session:{}", session.id)),
            "connect_session.completed",
            change,
            None,
        )
        .await;
        Ok((session, info))
    }

    /// Starts the sign-in of a session's connection again, after one that did not complete
    /// (the person cancelled, or the identity provider refused), while the session lasts.
    pub async fn connect_retry(&self, token: &str, return_url: Option<&str>) -> Result<ConnectionInfo> {
        let session = self.session_of_token(token).await?;
        let now = portico_store::now_millis();
        let connection_id = match (state_of(&session, now), &session.connection_id) {
            (SessionState::Pending, Some(id)) => id.clone(),
            (SessionState::Pending, None) => return Err(Error::Conflict("nothing to sign in again yet".to_owned())),
            (SessionState::Expired, _) => {
                return Err(Error::Gone("this connect link has expired; ask for a new one".to_owned()));
            }
            (SessionState::Completed { .. }, _) => {
                return Err(Error::Gone("this connect link was used: it connects one account".to_owned()));
            }
        };
        self.reauthorize(&principal_of(&session), &connection_id, return_url).await
    }
}
