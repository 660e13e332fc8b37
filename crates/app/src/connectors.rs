//! Connectors: authors register, read, replace and delete them; everyone in the tenant reads
//! them and their connection forms.

use portico_import::Import;
use portico_model::{ConnectionForm, Connector, Diagnostic, IdentityProviderCatalog};
use portico_secrets::SecretString;
use portico_store::{Change, ConnectorRecord, DeleteConnector, Page};
use serde_json::{Map, Value};

use crate::access::{self, Action};
use crate::audit::Detail;
use crate::error::{Error, Result};
use crate::{App, Principal};

/// Where a connector to register (or to replace one with) comes from.
pub enum ConnectorSource {
    /// The API's JSON body (see [`ConnectorInput::from_json`]).
    Json(Value),
    /// Files read by an importer (the portal's upload), with no OAuth client.
    Import(Import),
    /// A definition a form made, and what happens to the OAuth client.
    Definition { connector: Connector, oauth_client: OAuthClientChange },
}

impl ConnectorSource {
    /// Read and validated: the connector unless it has errors.
    pub fn read(self, catalog: &IdentityProviderCatalog) -> Result<ConnectorInput> {
        match self {
            ConnectorSource::Json(body) => ConnectorInput::from_json(body, catalog),
            ConnectorSource::Import(import) => ConnectorInput::accept(import, catalog, false, OAuthClientChange::Keep),
            ConnectorSource::Definition { connector, oauth_client } => {
                let import = Import { connector: Some(connector), diagnostics: Vec::new() };
                ConnectorInput::accept(import, catalog, true, oauth_client)
            }
        }
    }
}

/// A connector to register or to replace one with: read, validated, without errors.
pub struct ConnectorInput {
    pub connector: Connector,
    /// What the import and the validation found that is not an error.
    pub warnings: Vec<Diagnostic>,
    pub oauth_client: OAuthClientChange,
}

/// What happens to a connector's OAuth client.
#[derive(Debug)]
pub enum OAuthClientChange {
    /// Stays as it is (a new connector has none).
    Keep,
    Remove,
    Set {
        client_id: String,
        secret: ClientSecret,
    },
}

/// The client secret of an [`OAuthClientChange::Set`].
#[derive(Debug)]
pub enum ClientSecret {
    /// A public client: no secret.
    None,
    Given(SecretString),
    /// The secret set before stays (the client id was corrected).
    Unchanged,
}

impl ConnectorInput {
    /// The body of `POST` and `PUT /v1/connectors` as JSON: exactly one of `powerPlatform`
    /// (`{"apiProperties", "apiDefinition"}`), `openapi` and `definition`, and optionally
    /// `oauthClient` (`{"clientId", "clientSecret"?}`; absent keeps, `null` removes). Every
    /// mistake is reported with its field.
    fn from_json(body: Value, catalog: &IdentityProviderCatalog) -> Result<ConnectorInput> {
        let Value::Object(mut body) = body else {
            return Err(Error::invalid_field("the body must be a JSON object", "body", "must be an object"));
        };
        let oauth_client = match body.remove("oauthClient") {
            None => OAuthClientChange::Keep,
            Some(Value::Null) => OAuthClientChange::Remove,
            Some(value) => parse_oauth_client(value)?,
        };
        let known = ["powerPlatform", "openapi", "definition"];
        let unknown: Vec<portico_model::FieldError> = body
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| portico_model::FieldError {
                field: k.clone(),
                message: "is not a field of a connector body".to_owned(),
            })
            .collect();
        if !unknown.is_empty() {
            return Err(Error::invalid_fields("unknown fields in the body", unknown));
        }
        let is_definition = body.contains_key("definition");
        let import = match (body.remove("powerPlatform"), body.remove("openapi"), body.remove("definition")) {
            (Some(pp), None, None) => import_power_platform(pp)?,
            (None, Some(doc), None) => portico_import::openapi::import_value(&doc, "openapi"),
            (None, None, Some(definition)) => portico_import::definition::import_value(&definition),
            (pp, doc, definition) => {
                let given = [("powerPlatform", pp), ("openapi", doc), ("definition", definition)];
                let mut errors: Vec<portico_model::FieldError> = given
                    .iter()
                    .filter(|(_, value)| value.is_some())
                    .map(|(name, _)| portico_model::FieldError {
                        field: (*name).to_owned(),
                        message: "only one of them may be given".to_owned(),
                    })
                    .collect();
                if errors.is_empty() {
                    errors.push(portico_model::FieldError {
                        field: "body".to_owned(),
                        message: "needs one of them".to_owned(),
                    });
                }
                return Err(Error::invalid_fields("give exactly one of powerPlatform, openapi and definition", errors));
            }
        };
        ConnectorInput::accept(import, catalog, is_definition, oauth_client)
    }

    /// An import, validated: the connector unless it has errors.
    fn accept(
        import: Import,
        catalog: &IdentityProviderCatalog,
        is_definition: bool,
        oauth_client: OAuthClientChange,
    ) -> Result<ConnectorInput> {
        let Import { connector, mut diagnostics } = import.validated(catalog);
        if is_definition {
            // The model's paths are relative to the definition; the body holds it under `definition`.
            for diagnostic in &mut diagnostics {
                diagnostic.at = match diagnostic.at.as_str() {
                    "connector" | "" => "definition".to_owned(),
                    at => format!("definition.{at}"),
                };
            }
        }
        match connector {
            Some(connector) if !diagnostics.iter().any(Diagnostic::is_error) => {
                Ok(ConnectorInput { connector, warnings: diagnostics, oauth_client })
            }
            _ => Err(Error::invalid_definition("the connector definition has errors", &diagnostics)),
        }
    }
}

fn import_power_platform(value: Value) -> Result<Import> {
    let field = |map: &Map<String, Value>, name: &str| {
        map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).ok_or_else(|| {
            Error::invalid_field("powerPlatform needs both files", format!("powerPlatform.{name}"), "is required")
        })
    };
    let Value::Object(map) = value else {
        return Err(Error::invalid_field("powerPlatform needs both files", "powerPlatform", "must be an object"));
    };
    let properties = field(&map, "apiProperties")?;
    let definition = field(&map, "apiDefinition")?;
    Ok(portico_import::power_platform::import_values(&properties, &definition))
}

fn parse_oauth_client(value: Value) -> Result<OAuthClientChange> {
    let bad = |field: &str, message: &str| Error::invalid_field("invalid oauthClient", field, message);
    let Value::Object(map) = value else { return Err(bad("oauthClient", "must be an object")) };
    let client_id = match map.get("clientId") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        None | Some(Value::Null) => return Err(bad("oauthClient.clientId", "is required")),
        Some(_) => return Err(bad("oauthClient.clientId", "must be a non-empty string")),
    };
    let secret = match map.get("clientSecret") {
        None | Some(Value::Null) => ClientSecret::None,
        Some(Value::String(s)) => ClientSecret::Given(SecretString::from(s.as_str())),
        Some(_) => return Err(bad("oauthClient.clientSecret", "must be a string")),
    };
    if let Some(other) = map.keys().find(|k| *k != "clientId" && *k != "clientSecret") {
        return Err(bad(&format!("oauthClient.{other}"), "is not a field of oauthClient"));
    }
    Ok(OAuthClientChange::Set { client_id, secret })
}

/// The first `limit` items of a page fetched with one more, and a cursor only when another
/// page has items (the store's own cursor only says "there may be more").
pub(crate) fn cut<T>(mut page: Page<T>, limit: u32, id: impl Fn(&T) -> &String) -> Page<T> {
    let limit = limit as usize;
    page.next = None;
    if page.items.len() > limit {
        page.items.truncate(limit);
        page.next = page.items.last().map(|item| id(item).clone());
    }
    page
}

impl App {
    pub async fn create_connector(&self, principal: &Principal, source: ConnectorSource) -> Result<ConnectorRecord> {
        access::require(principal, Action::WriteConnectors)?;
        let input = source.read(&self.catalog)?;
        let id = portico_store::new_id();
        let now = portico_store::now_millis();
        let mut record = ConnectorRecord {
            id,
            tenant_id: principal.tenant_id.to_string(),
            connector: input.connector,
            warnings: input.warnings,
            oauth_client_id: None,
            oauth_client_secret: None,
            created_by: Some(principal.reference()),
            updated_by: None,
            created_at: now,
            updated_at: now,
        };
        self.apply_client_change(&mut record, input.oauth_client);
        self.store.insert_connector(&record).await?;
        tracing::info!(connector = %record.id, name = %record.connector.metadata.name,
            principal = %principal.reference(), "connector created");
        let change = Detail { connector_id: Some(&record.id), ..Detail::default() };
        self.audit_change(&record.tenant_id, principal, "connector.created", change).await;
        Ok(record)
    }

    fn apply_client_change(&self, record: &mut ConnectorRecord, change: OAuthClientChange) {
        match change {
            OAuthClientChange::Keep => {}
            OAuthClientChange::Remove => {
                record.oauth_client_id = None;
                record.oauth_client_secret = None;
            }
            OAuthClientChange::Set { client_id, secret } => {
                record.oauth_client_id = Some(client_id);
                match secret {
                    ClientSecret::None => record.oauth_client_secret = None,
                    ClientSecret::Given(secret) => {
                        record.oauth_client_secret = Some(self.seal_client_secret(&record.id, secret.expose()));
                    }
                    ClientSecret::Unchanged => {}
                }
            }
        }
    }

    /// A page of the tenant's connectors, by id: at most `limit`, after the cursor `after`.
    pub async fn list_connectors(
        &self,
        principal: &Principal,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ConnectorRecord>> {
        access::require(principal, Action::ReadConnectors)?;
        let page = self.store.list_connectors(&principal.tenant_id, after, limit + 1).await?;
        Ok(cut(page, limit, |record| &record.id))
    }

    pub async fn connector(&self, principal: &Principal, id: &str) -> Result<ConnectorRecord> {
        access::require(principal, Action::ReadConnectors)?;
        self.store.connector(&principal.tenant_id, id).await?.ok_or(Error::NotFound("connector"))
    }

    /// What a user fills in to connect, and the redirect URI to register for OAuth 2.0.
    pub async fn connection_form(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<(ConnectorRecord, ConnectionForm, Option<String>)> {
        let record = self.connector(principal, id).await?;
        let form = record.connector.connection_form();
        let redirect_uri = form.sets.iter().any(|s| s.oauth.is_some()).then(|| self.redirect_uri());
        Ok((record, form, redirect_uri))
    }

    /// Replaces a connector's definition (and OAuth client, as `input` says); connections
    /// whose values no longer fit its parameters need their user to reconnect.
    pub async fn replace_connector(
        &self,
        principal: &Principal,
        id: &str,
        source: ConnectorSource,
    ) -> Result<ConnectorRecord> {
        access::require(principal, Action::WriteConnectors)?;
        let mut record = self.store.connector(&principal.tenant_id, id).await?.ok_or(Error::NotFound("connector"))?;
        let input = source.read(&self.catalog)?;
        self.apply_client_change(&mut record, input.oauth_client);
        let parameters_changed = record.connector.connection != input.connector.connection;
        record.connector = input.connector;
        record.warnings = input.warnings;
        record.updated_at = portico_store::now_millis();
        record.updated_by = Some(principal.reference());
        if !self.store.update_connector(&record).await? {
            return Err(Error::NotFound("connector"));
        }
        if parameters_changed {
            self.recheck_connections(&record).await?;
        }
        // After every write: a load that began earlier cannot put back what it read.
        self.changed(Change::Connector(record.id.clone()));
        tracing::info!(connector = %record.id, principal = %principal.reference(), "connector replaced");
        let change = Detail { connector_id: Some(&record.id), ..Detail::default() };
        self.audit_change(&record.tenant_id, principal, "connector.updated", change).await;
        Ok(record)
    }

    /// Deletes a connector; with `cascade` its connections too, else it must have none.
    /// Returns how many connections went with it.
    pub async fn delete_connector(&self, principal: &Principal, id: &str, cascade: bool) -> Result<u64> {
        access::require(principal, Action::WriteConnectors)?;
        let now = portico_store::now_millis();
        let deleted = |record: &portico_store::ConnectionRecord| {
            Some(crate::events::of_connection(crate::events::EventKind::ConnectionDeleted, record, now))
        };
        match self.store.delete_connector_with(&principal.tenant_id, id, cascade, &deleted).await? {
            DeleteConnector::Deleted { connections } => {
                self.changed(Change::Connector(id.to_owned()));
                tracing::info!(connector = %id, connections, principal = %principal.reference(), "connector deleted");
                let change = Detail { connector_id: Some(id), ..Detail::default() };
                self.audit_change(&principal.tenant_id, principal, "connector.deleted", change).await;
                Ok(connections)
            }
            DeleteConnector::NotFound => Err(Error::NotFound("connector")),
            DeleteConnector::InUse { connections } => Err(Error::Conflict(format!(
                "{connections} connection{} this connector: delete {} first, or delete with ?cascade=true",
                if connections == 1 { " still uses" } else { "s still use" },
                if connections == 1 { "it" } else { "them" }
            ))),
        }
    }
}
