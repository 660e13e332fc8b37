//! `/v1/connectors`: connector authors register, read, replace and delete connectors.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use portico_import::Import;
use portico_model::{Connector, Diagnostic};
use portico_store::{ConnectorRecord, DeleteConnector, Page, SealedBytes};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::connections::recheck_connections;
use crate::error::{ApiError, Problem, ProblemField};
use crate::state::AppState;
use crate::views::{ConnectorView, List};

/// The body of `POST` and `PUT /v1/connectors`: exactly one of `powerPlatform`, `openapi`
/// and `definition`, and optionally the OAuth client.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; the handler reads it as JSON to report every mistake
pub struct ConnectorBody {
    /// Power Platform files as they are: `{"apiProperties": {...}, "apiDefinition": {...}}`.
    #[schema(value_type = Option<Object>)]
    power_platform: Option<Value>,
    /// An OpenAPI 3.0 / 3.1 document.
    #[schema(value_type = Option<Object>)]
    openapi: Option<Value>,
    /// Portico's own connector definition.
    #[schema(value_type = Option<Object>)]
    definition: Option<Value>,
    /// The OAuth 2.0 client registered with the identity provider; the secret is sealed and
    /// never shown again. On `PUT`, absent keeps the current client and `null` removes it.
    #[schema(value_type = Option<Object>)]
    oauth_client: Option<Value>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// At most this many items (1–200, default 50).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

impl Paging {
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(50).clamp(1, 200)
    }

    /// What to ask the store for: one item more than the page, so that `next` is given only
    /// when another page has items (the store's cursor only says "there may be more").
    pub fn fetch_limit(&self) -> u32 {
        self.limit() + 1
    }

    /// A page fetched with [`Paging::fetch_limit`], cut to the page size.
    pub fn cut<T>(&self, mut page: Page<T>, id: impl Fn(&T) -> &String) -> Page<T> {
        let limit = self.limit() as usize;
        page.next = None;
        if page.items.len() > limit {
            page.items.truncate(limit);
            page.next = page.items.last().map(|item| id(item).clone());
        }
        page
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteOptions {
    /// Also delete the connector's connections.
    #[serde(default)]
    pub cascade: bool,
}

struct ParsedBody {
    connector: Connector,
    warnings: Vec<Diagnostic>,
    /// `None`: not given; `Some(None)`: given as null.
    oauth_client: Option<Option<(String, Option<String>)>>,
}

/// Reads the body into a connector, reporting every mistake with its field.
fn parse_body(
    body: Result<Json<Value>, JsonRejection>,
    catalog: &portico_model::IdentityProviderCatalog,
) -> Result<ParsedBody, ApiError> {
    let Json(body) = body?;
    let Value::Object(mut body) = body else {
        // Well-formed JSON of the wrong shape: a validation problem, as on every other route.
        return Err(invalid_field("the body must be a JSON object", "body", "must be an object"));
    };
    let oauth_client = match body.remove("oauthClient") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(value) => Some(Some(parse_oauth_client(value)?)),
    };
    let known = ["powerPlatform", "openapi", "definition"];
    let unknown: Vec<ProblemField> = body
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| ProblemField { field: k.clone(), message: "is not a field of a connector body".to_owned() })
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Invalid { detail: "unknown fields in the body".to_owned(), errors: unknown });
    }
    let is_definition = body.contains_key("definition");
    let import = match (body.remove("powerPlatform"), body.remove("openapi"), body.remove("definition")) {
        (Some(pp), None, None) => import_power_platform(pp)?,
        (None, Some(doc), None) => portico_import::openapi::import_value(&doc, "openapi"),
        (None, None, Some(definition)) => portico_import::definition::import_value(&definition),
        (pp, doc, definition) => {
            let given = [("powerPlatform", pp), ("openapi", doc), ("definition", definition)];
            let mut errors: Vec<ProblemField> = given
                .iter()
                .filter(|(_, value)| value.is_some())
                .map(|(name, _)| ProblemField {
                    field: (*name).to_owned(),
                    message: "only one of them may be given".to_owned(),
                })
                .collect();
            if errors.is_empty() {
                errors.push(ProblemField { field: "body".to_owned(), message: "needs one of them".to_owned() });
            }
            return Err(ApiError::Invalid {
                detail: "give exactly one of powerPlatform, openapi and definition".to_owned(),
                errors,
            });
        }
    };
    accept(import, catalog, is_definition, oauth_client)
}

/// An import, validated: the connector unless it has errors.
fn accept(
    import: Import,
    catalog: &portico_model::IdentityProviderCatalog,
    is_definition: bool,
    oauth_client: Option<Option<(String, Option<String>)>>,
) -> Result<ParsedBody, ApiError> {
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
            Ok(ParsedBody { connector, warnings: diagnostics, oauth_client })
        }
        _ => Err(ApiError::invalid_definition("the connector definition has errors", &diagnostics)),
    }
}

fn import_power_platform(value: Value) -> Result<Import, ApiError> {
    let field = |map: &Map<String, Value>, name: &str| {
        map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).ok_or_else(|| {
            invalid_field("powerPlatform needs both files", &format!("powerPlatform.{name}"), "is required")
        })
    };
    let Value::Object(map) = value else {
        return Err(invalid_field("powerPlatform needs both files", "powerPlatform", "must be an object"));
    };
    let properties = field(&map, "apiProperties")?;
    let definition = field(&map, "apiDefinition")?;
    Ok(portico_import::power_platform::import_values(&properties, &definition))
}

fn parse_oauth_client(value: Value) -> Result<(String, Option<String>), ApiError> {
    let bad = |field: &str, message: &str| invalid_field("invalid oauthClient", field, message);
    let Value::Object(map) = value else { return Err(bad("oauthClient", "must be an object")) };
    let client_id = match map.get("clientId") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        None | Some(Value::Null) => return Err(bad("oauthClient.clientId", "is required")),
        Some(_) => return Err(bad("oauthClient.clientId", "must be a non-empty string")),
    };
    let secret = match map.get("clientSecret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("oauthClient.clientSecret", "must be a string")),
    };
    if let Some(other) = map.keys().find(|k| *k != "clientId" && *k != "clientSecret") {
        return Err(bad(&format!("oauthClient.{other}"), "is not a field of oauthClient"));
    }
    Ok((client_id, secret))
}

/// A validation problem with one named field.
fn invalid_field(detail: &str, field: &str, message: &str) -> ApiError {
    ApiError::Invalid {
        detail: detail.to_owned(),
        errors: vec![ProblemField { field: field.to_owned(), message: message.to_owned() }],
    }
}

fn seal_client_secret(state: &AppState, connector_id: &str, secret: Option<String>) -> Option<SealedBytes> {
    secret.map(|s| SealedBytes(state.master_key.seal(s.as_bytes(), connector_id.as_bytes())))
}

#[utoipa::path(post, path = "/v1/connectors", tag = "connectors", request_body = ConnectorBody,
    responses((status = 201, body = ConnectorView), (status = 422, body = Problem), (status = 401, body = Problem)),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<ConnectorView>), ApiError> {
    let parsed = parse_body(body, &state.catalog)?;
    Ok((StatusCode::CREATED, Json(insert(&state, &caller, parsed).await?)))
}

/// Registers a connector read from uploaded files (the portal's import), as `create` does.
pub(crate) async fn create_from_import(
    state: &AppState,
    caller: &Caller,
    import: Import,
) -> Result<ConnectorView, ApiError> {
    let parsed = accept(import, &state.catalog, false, None)?;
    insert(state, caller, parsed).await
}

async fn insert(state: &AppState, caller: &Caller, parsed: ParsedBody) -> Result<ConnectorView, ApiError> {
    let id = portico_store::new_id();
    let (client_id, client_secret) = parsed.oauth_client.flatten().unzip();
    let now = portico_store::now_millis();
    let record = ConnectorRecord {
        oauth_client_secret: seal_client_secret(state, &id, client_secret.flatten()),
        id,
        tenant_id: caller.tenant_id.to_string(),
        connector: parsed.connector,
        warnings: parsed.warnings,
        oauth_client_id: client_id,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_connector(&record).await?;
    tracing::info!(connector = %record.id, name = %record.connector.metadata.name, "connector created");
    Ok(ConnectorView::new(&record, true))
}

#[utoipa::path(get, path = "/v1/connectors", tag = "connectors", params(Paging),
    responses((status = 200, body = List<ConnectorView>), (status = 401, body = Problem)), security(("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    paging: Result<Query<Paging>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<List<ConnectorView>>, ApiError> {
    let Query(paging) = paging?;
    let page = state.store.list_connectors(&caller.tenant_id, paging.after.as_deref(), paging.fetch_limit()).await?;
    let page = paging.cut(page, |record| &record.id);
    Ok(Json(List { items: page.items.iter().map(|r| ConnectorView::new(r, false)).collect(), next: page.next }))
}

pub async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<ConnectorRecord, ApiError> {
    state.store.connector(&caller.tenant_id, id).await?.ok_or(ApiError::NotFound("connector"))
}

#[utoipa::path(get, path = "/v1/connectors/{id}", tag = "connectors", params(("id" = String, Path)),
    responses((status = 200, body = ConnectorView), (status = 404, body = Problem)), security(("apiKey" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConnectorView>, ApiError> {
    Ok(Json(ConnectorView::new(&find(&state, &caller, &id).await?, true)))
}

#[utoipa::path(put, path = "/v1/connectors/{id}", tag = "connectors", params(("id" = String, Path)),
    request_body = ConnectorBody,
    responses((status = 200, body = ConnectorView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("apiKey" = [])))]
pub async fn replace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<ConnectorView>, ApiError> {
    let mut record = find(&state, &caller, &id).await?;
    let parsed = parse_body(body, &state.catalog)?;
    match parsed.oauth_client {
        None => {}
        Some(None) => {
            record.oauth_client_id = None;
            record.oauth_client_secret = None;
        }
        Some(Some((client_id, secret))) => {
            record.oauth_client_id = Some(client_id);
            record.oauth_client_secret = seal_client_secret(&state, &id, secret);
        }
    }
    let parameters_changed = record.connector.connection != parsed.connector.connection;
    record.connector = parsed.connector;
    record.warnings = parsed.warnings;
    record.updated_at = portico_store::now_millis();
    if !state.store.update_connector(&record).await? {
        return Err(ApiError::NotFound("connector"));
    }
    if parameters_changed {
        recheck_connections(&state, &caller, &record).await?;
    }
    // After every write: a load that began earlier cannot put back what it read.
    state.changed_connector(&record.id);
    Ok(Json(ConnectorView::new(&record, true)))
}

#[utoipa::path(delete, path = "/v1/connectors/{id}", tag = "connectors", params(("id" = String, Path), DeleteOptions),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)), security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    options: Result<Query<DeleteOptions>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(options) = options?;
    match state.store.delete_connector(&caller.tenant_id, &id, options.cascade).await? {
        DeleteConnector::Deleted { connections } => {
            state.changed_connector(&id);
            tracing::info!(connector = %id, connections, "connector deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        DeleteConnector::NotFound => Err(ApiError::NotFound("connector")),
        DeleteConnector::InUse { connections } => Err(ApiError::Conflict(format!(
            "{connections} connection{} this connector: delete {} first, or delete with ?cascade=true",
            if connections == 1 { " still uses" } else { "s still use" },
            if connections == 1 { "it" } else { "them" }
        ))),
    }
}

#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionFormView {
    pub connector_id: String,
    #[schema(value_type = Object)]
    #[serde(flatten)]
    pub form: portico_model::ConnectionForm,
    /// The redirect URI to register with the identity provider, for OAuth 2.0 connectors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}

#[utoipa::path(get, path = "/v1/connectors/{id}/connection-form", tag = "connectors", params(("id" = String, Path)),
    responses((status = 200, body = ConnectionFormView), (status = 404, body = Problem)), security(("apiKey" = [])))]
pub async fn connection_form(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConnectionFormView>, ApiError> {
    let record = find(&state, &caller, &id).await?;
    let form = record.connector.connection_form();
    let redirect_uri = form.sets.iter().any(|s| s.oauth.is_some()).then(|| state.redirect_uri());
    Ok(Json(ConnectionFormView { connector_id: record.id, form, redirect_uri }))
}
