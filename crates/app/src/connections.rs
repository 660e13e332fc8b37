//! Connections: a user creates one by giving the values its connector asks for (or by signing
//! in with OAuth 2.0), and reads, changes, re-authorizes and deletes it. Secret values are
//! sealed before they reach the store and never shown again.

use std::collections::BTreeMap;

use portico_model::{CheckedValues, ConnectionSpec, Credential, FieldError, GrantType, Ownership, ParameterSet, Share};
use portico_store::{
    Change, ConnectSessionRecord, ConnectionQuery, ConnectionRecord, ConnectionStatus, ConnectorRecord, Effects, Page,
};
use serde_json::{Map, Value};

use crate::access::{self, Action, Need};
use crate::audit::{By, Detail};
use crate::connectors::cut;
use crate::error::{Error, Result};
use crate::events::{self, EventKind};
use crate::sealing::Secrets;
use crate::{App, Principal};

/// What a user gives to create a connection.
#[derive(Debug, Default)]
pub struct NewConnection {
    pub connector_id: String,
    /// Defaults to the connector's display name.
    pub display_name: Option<String>,
    /// For connectors with several parameter sets: the chosen one.
    pub parameter_set: Option<String>,
    /// Parameter name → value, as the connection form describes.
    pub parameters: Map<String, Value>,
    /// OAuth 2.0: where the browser goes after signing in.
    pub return_url: Option<String>,
    /// The end user who will own it: an admin's choice; a user's own end user by default.
    pub end_user_id: Option<String>,
}

/// Changes to a connection: what is `None` stays.
#[derive(Debug, Default)]
pub struct ConnectionChanges {
    pub display_name: Option<String>,
    /// Values to change; `null` removes an optional value. Others stay as they are.
    pub parameters: Option<Map<String, Value>>,
}

/// Which connections to list, within what the principal may see.
#[derive(Debug, Default)]
pub struct ConnectionFilter {
    pub connector_id: Option<String>,
    /// Only those this end user owns.
    pub end_user_id: Option<String>,
}

/// A connection as a front door may show it: its record, the names of its secret values (never
/// the values) and, when a sign-in was just started, where to send the browser.
#[derive(Debug)]
pub struct ConnectionInfo {
    pub record: ConnectionRecord,
    pub secret_names: Vec<String>,
    pub authorize_url: Option<String>,
}

fn choose_set<'a>(spec: &'a ConnectionSpec, name: Option<&str>) -> Result<&'a ParameterSet> {
    spec.set(name).ok_or_else(|| {
        let names: Vec<_> = spec.sets().iter().map(|s| s.name.as_str()).collect();
        let message = match (spec, name) {
            (ConnectionSpec::Single(_), Some(_)) => {
                "this connector has a single parameter set: leave it out".to_owned()
            }
            (_, Some(n)) => format!("no parameter set '{n}': choose one of {}", names.join(", ")),
            (_, None) => format!("is required: choose one of {}", names.join(", ")),
        };
        Error::invalid_field("invalid parameter set", "parameterSet", message)
    })
}

fn prefixed(errors: Vec<FieldError>) -> Vec<FieldError> {
    errors.into_iter().map(|e| FieldError { field: format!("parameters.{}", e.field), ..e }).collect()
}

/// All values of a connection, secret ones included, as the form's input.
fn current_values(record: &ConnectionRecord, secrets: &Secrets) -> Map<String, Value> {
    let mut values: Map<String, Value> = record.parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (name, secret) in secrets {
        values.insert(name.clone(), Value::String(secret.expose().to_owned()));
    }
    values
}

/// A value that was sealed stays sealed, even where the connector now declares its parameter
/// plain (an author changed `securestring` to `string`): carried over unchanged, it moves from
/// `public` back to `secret`. Only a value `given` anew is stored as the connector now says.
fn keep_sealed(
    public: &mut BTreeMap<String, Value>,
    secret: &mut BTreeMap<String, String>,
    sealed: &Secrets,
    given: &[String],
) {
    let carried: Vec<String> = public
        .iter()
        .filter(|(name, value)| {
            value.is_string()
                && sealed.keys().any(|s| s.eq_ignore_ascii_case(name))
                && !given.iter().any(|g| g.eq_ignore_ascii_case(name))
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in carried {
        if let Some(Value::String(text)) = public.remove(&name) {
            secret.insert(name, text);
        }
    }
}

impl App {
    /// Who owns connection `record` and who it is shared with.
    pub(crate) async fn ownership(&self, record: &ConnectionRecord) -> Result<Ownership> {
        let shares = self.store.list_shares(&record.tenant_id, &record.id).await?;
        Ok(Ownership {
            owner: record.end_user_id.clone(),
            shares: shares
                .into_iter()
                .map(|share| Share { end_user_id: share.end_user_id, permission: share.permission })
                .collect(),
        })
    }

    /// The connection `id` if `principal` may do what `need` says with it.
    pub(crate) async fn find_connection(
        &self,
        principal: &Principal,
        id: &str,
        need: Need,
    ) -> Result<ConnectionRecord> {
        let record = self.store.connection(&principal.tenant_id, id).await?.ok_or(Error::NotFound("connection"))?;
        access::connection(principal, id, &self.ownership(&record).await?, need)?;
        Ok(record)
    }

    async fn info(&self, record: ConnectionRecord) -> Result<ConnectionInfo> {
        let secret_names = self.secret_names(&record).await?;
        Ok(ConnectionInfo { record, secret_names, authorize_url: None })
    }

    pub async fn create_connection(&self, principal: &Principal, new: NewConnection) -> Result<ConnectionInfo> {
        let requested = new
            .end_user_id
            .as_deref()
            .map(portico_model::end_user_id)
            .transpose()
            .map_err(|message| Error::invalid_field("invalid end user", "endUserId", message))?;
        let owner = access::owner_of_new_connection(principal, requested.as_deref())?;
        self.make_connection(principal, owner, new, None).await
    }

    /// Makes a connection owned by `owner`, once the principal's permission is settled; a
    /// connect session's one connection when `session` is given (a conflict if it has made it).
    pub(crate) async fn make_connection(
        &self,
        principal: &Principal,
        owner: Option<String>,
        new: NewConnection,
        session: Option<&ConnectSessionRecord>,
    ) -> Result<ConnectionInfo> {
        let connector = self
            .store
            .connector(&principal.tenant_id, &new.connector_id)
            .await?
            .ok_or_else(|| Error::invalid_field("unknown connector", "connectorId", "no such connector"))?;
        let set = choose_set(&connector.connector.connection, new.parameter_set.as_deref())?;
        let CheckedValues { public, secret } = set
            .check_values(&new.parameters)
            .map_err(|errors| Error::invalid_fields("invalid connection parameters", prefixed(errors)))?;
        let id = portico_store::new_id();
        // An OAuth 2.0 connection waits for its sign-in (or fetches a client-credentials token).
        let flow = match &set.credential {
            Credential::OAuth2(oauth) => {
                let opened: Secrets =
                    secret.iter().map(|(k, v)| (k.clone(), portico_secrets::SecretString::from(v.as_str()))).collect();
                let flow = self.flow(&connector, oauth, &public, &opened).await?;
                // Before anything is stored: a provider that cannot be discovered leaves nothing behind.
                Some(self.discovered(flow).await?)
            }
            _ => None,
        };
        // A connect session's sign-in comes back to its own page; without a sign-in it has none.
        let return_url = match new.return_url.as_deref() {
            Some(_) if flow.is_none() && session.is_some() => None,
            url => self.check_return_url(url)?,
        };
        if flow.is_none() && return_url.is_some() {
            return Err(Error::invalid_field("invalid returnUrl", "returnUrl", "only OAuth 2.0 connections sign in"));
        }
        // A client-credentials token is fetched before anything is stored: a refusal leaves
        // nothing half-made behind.
        let (tokens, token_expires_at, sign_in) = match flow {
            Some(flow) if flow.grant == GrantType::ClientCredentials => {
                let (sealed, expires_at) = self.fetch_client_credentials(&id, flow).await?;
                (Some(sealed), expires_at, None)
            }
            other => (None, None, other),
        };
        let now = portico_store::now_millis();
        let record = ConnectionRecord {
            secrets: self.seal_secrets(&id, &secret),
            tokens,
            token_expires_at,
            id,
            tenant_id: principal.tenant_id.to_string(),
            connector_id: connector.id.clone(),
            end_user_id: owner,
            created_by: principal.reference(),
            updated_by: None,
            display_name: new.display_name.unwrap_or_else(|| connector.connector.metadata.display_name.clone()),
            parameter_set: new
                .parameter_set
                .filter(|_| matches!(connector.connector.connection, ConnectionSpec::Choice { .. })),
            status: if sign_in.is_some() { ConnectionStatus::Pending } else { ConnectionStatus::Connected },
            status_reason: None,
            parameters: public,
            created_at: now,
            updated_at: now,
        };
        let mut events = vec![events::of_connection(EventKind::ConnectionCreated, &record, now)];
        // A session's connection that needs no sign-in completes it at once.
        let completes = session.filter(|_| record.status == ConnectionStatus::Connected);
        if let Some(session) = completes {
            events.push(events::session_completed(&session.id, &record, now));
        }
        let effects = Effects {
            events: &events,
            claim_session: session.map(|session| (session.id.as_str(), now)),
            complete_session: completes.map(|session| (session.id.as_str(), now)),
        };
        self.store.insert_connection_with(&record, effects).await?;
        // Nothing was prepared from it yet, but its events wait for the senders.
        self.changed(Change::Connection(record.id.clone()));
        tracing::info!(connection = %record.id, connector = %record.connector_id,
            principal = %principal.reference(), "connection created");
        let change =
            Detail { connection_id: Some(&record.id), connector_id: Some(&record.connector_id), ..Detail::default() };
        self.audit_change(&record.tenant_id, principal, "connection.created", change).await;
        let authorize_url = match sign_in {
            Some(flow) => Some(self.start_sign_in(principal, &record.id, &flow, return_url).await?),
            None => None,
        };
        Ok(ConnectionInfo { record, secret_names: secret.into_keys().collect(), authorize_url })
    }

    /// A page of the connections `principal` may see, by id.
    pub async fn list_connections(
        &self,
        principal: &Principal,
        filter: &ConnectionFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ConnectionInfo>> {
        access::require(principal, Action::ListConnections)?;
        let owner =
            filter.end_user_id.as_deref().map(|id| portico_model::end_user_id(id).unwrap_or_else(|_| id.to_owned()));
        if let Some(owner) = &owner {
            access::filter_by_owner(principal, owner)?;
        }
        let visible = access::visible_connections(principal);
        let query = ConnectionQuery {
            connector_id: filter.connector_id.as_deref(),
            owner: owner.as_deref(),
            visible_to: visible.end_user.as_deref(),
            ids: visible.ids.as_deref(),
        };
        let page = self.store.list_connections(&principal.tenant_id, &query, after, limit + 1).await?;
        let page = cut(page, limit, |record| &record.id);
        let mut items = Vec::with_capacity(page.items.len());
        for record in page.items {
            items.push(self.info(record).await?);
        }
        Ok(Page { items, next: page.next })
    }

    /// The most `principal` may do with connection `id` (what a front door offers it).
    pub async fn connection_access(&self, principal: &Principal, id: &str) -> Result<Need> {
        let record = self.store.connection(&principal.tenant_id, id).await?.ok_or(Error::NotFound("connection"))?;
        access::grant(principal, id, &self.ownership(&record).await?).ok_or(Error::NotFound("connection"))
    }

    pub async fn connection(&self, principal: &Principal, id: &str) -> Result<ConnectionInfo> {
        let record = self.find_connection(principal, id, Need::Read).await?;
        self.info(record).await
    }

    pub async fn update_connection(
        &self,
        principal: &Principal,
        id: &str,
        changes: ConnectionChanges,
    ) -> Result<ConnectionInfo> {
        let mut record = self.find_connection(principal, id, Need::Edit).await?;
        if let Some(name) = changes.display_name {
            record.display_name = name;
        }
        let secrets = self.open_secrets(&record).await?;
        let mut secret_names: Vec<String> = secrets.keys().cloned().collect();
        if let Some(changes) = changes.parameters {
            let connector = self
                .store
                .connector(&principal.tenant_id, &record.connector_id)
                .await?
                .ok_or(Error::NotFound("connector"))?;
            let set = choose_set(&connector.connector.connection, record.parameter_set.as_deref())?;
            let mut values = current_values(&record, &secrets);
            let given: Vec<String> = changes.keys().cloned().collect();
            for (name, value) in changes {
                // Changes may name a parameter in any case; they replace the stored spelling.
                values.retain(|k, _| !k.eq_ignore_ascii_case(&name));
                if !value.is_null() {
                    values.insert(name, value);
                }
            }
            let CheckedValues { mut public, mut secret } = set
                .check_values(&values)
                .map_err(|errors| Error::invalid_fields("invalid connection parameters", prefixed(errors)))?;
            keep_sealed(&mut public, &mut secret, &secrets, &given);
            record.parameters = public;
            record.secrets = self.seal_secrets(&record.id, &secret);
            secret_names = secret.into_keys().collect();
            if record.status == ConnectionStatus::NeedsReauth && !matches!(set.credential, Credential::OAuth2(_)) {
                record.status = ConnectionStatus::Connected;
                record.status_reason = None;
            }
        }
        record.updated_at = portico_store::now_millis();
        record.updated_by = Some(principal.reference());
        let events = [events::of_connection(EventKind::ConnectionUpdated, &record, record.updated_at)];
        if !self.store.update_connection_with(&record, Effects { events: &events, ..Effects::NONE }).await? {
            return Err(Error::NotFound("connection"));
        }
        self.changed(Change::Connection(record.id.clone()));
        tracing::info!(connection = %record.id, principal = %principal.reference(), "connection changed");
        let change =
            Detail { connection_id: Some(&record.id), connector_id: Some(&record.connector_id), ..Detail::default() };
        self.audit_change(&record.tenant_id, principal, "connection.updated", change).await;
        Ok(ConnectionInfo { record, secret_names, authorize_url: None })
    }

    /// Deletes a connection: its sealed secrets go with the row; its OAuth tokens are revoked
    /// at the identity provider in the background.
    pub async fn delete_connection(&self, principal: &Principal, id: &str) -> Result<()> {
        let record = self.find_connection(principal, id, Need::Manage).await?;
        let connector = self.store.connector(&principal.tenant_id, &record.connector_id).await?;
        let events = [events::of_connection(EventKind::ConnectionDeleted, &record, portico_store::now_millis())];
        let effects = Effects { events: &events, ..Effects::NONE };
        if !self.store.delete_connection_with(&principal.tenant_id, id, effects).await? {
            return Err(Error::NotFound("connection"));
        }
        if let Some(connector) = &connector {
            self.revoke_in_background(connector, &record).await;
        }
        self.changed(Change::Connection(id.to_owned()));
        tracing::info!(connection = %id, principal = %principal.reference(), "connection deleted");
        let change = Detail { connection_id: Some(id), connector_id: Some(&record.connector_id), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "connection.deleted", change).await;
        Ok(())
    }

    /// Starts a new sign-in for an OAuth 2.0 connection (or fetches a new client-credentials
    /// token): the answer carries the URL to send the browser to.
    pub async fn reauthorize(
        &self,
        principal: &Principal,
        id: &str,
        return_url: Option<&str>,
    ) -> Result<ConnectionInfo> {
        let record = self.find_connection(principal, id, Need::Edit).await?;
        let connector = self
            .store
            .connector(&principal.tenant_id, &record.connector_id)
            .await?
            .ok_or(Error::NotFound("connector"))?;
        let Some((_, oauth)) = crate::oauth::oauth_set(&connector, &record) else {
            return Err(Error::Conflict("only OAuth 2.0 connections sign in again".to_owned()));
        };
        let secrets = self.open_secrets(&record).await?;
        let flow = self.flow(&connector, oauth, &record.parameters, &secrets).await?;
        let return_url = self.check_return_url(return_url)?;
        let authorize_url = if flow.grant == GrantType::ClientCredentials {
            self.client_credentials(&record, flow).await?;
            self.changed(Change::Connection(record.id.clone()));
            None
        } else {
            let flow = self.discovered(flow).await?;
            Some(self.start_sign_in(principal, &record.id, &flow, return_url).await?)
        };
        tracing::info!(connection = %id, principal = %principal.reference(), "connection re-authorization started");
        let change = Detail { connection_id: Some(id), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "connection.reauthorization_started", change).await;
        let record = self.store.connection(&principal.tenant_id, id).await?.ok_or(Error::NotFound("connection"))?;
        Ok(ConnectionInfo { record, secret_names: secrets.into_keys().collect(), authorize_url })
    }

    /// After a connector's parameters changed: connections whose values no longer fit need
    /// their user to reconnect.
    pub(crate) async fn recheck_connections(&self, connector: &ConnectorRecord) -> Result<()> {
        let mut after = None;
        loop {
            let query = ConnectionQuery { connector_id: Some(&connector.id), ..ConnectionQuery::default() };
            let page = self.store.list_connections(&connector.tenant_id, &query, after.as_deref(), 200).await?;
            for mut record in page.items {
                let reason = match connector.connector.connection.set(record.parameter_set.as_deref()) {
                    None => Some("the connector no longer has this connection's parameter set".to_owned()),
                    Some(set) => {
                        let values = current_values(&record, &self.open_secrets(&record).await?);
                        set.check_values(&values).err().map(|errors| {
                            let errors: Vec<_> = errors.iter().map(|e| format!("{} {}", e.field, e.message)).collect();
                            format!("the connector's parameters changed: {}", errors.join("; "))
                        })
                    }
                };
                if let Some(reason) = reason {
                    record.status = ConnectionStatus::NeedsReauth;
                    record.status_reason = Some(reason);
                    record.updated_at = portico_store::now_millis();
                    let events = [events::of_connection(EventKind::ConnectionNeedsReauth, &record, record.updated_at)];
                    self.store.update_connection_with(&record, Effects { events: &events, ..Effects::NONE }).await?;
                    self.changed(Change::Connection(record.id.clone()));
                    tracing::info!(connection = %record.id, "connection needs re-authentication");
                    let change = Detail {
                        connection_id: Some(&record.id),
                        connector_id: Some(&record.connector_id),
                        failure: record.status_reason.as_deref(),
                        ..Detail::default()
                    };
                    self.audit(&record.tenant_id, By::System, "connection.needs_reauth", change, None).await;
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }
}
