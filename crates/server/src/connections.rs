//! `/v1/connections`: users create connections by giving the values their connector asks for.
//! Secret values are sealed (AES-256-GCM, the connection id as associated data) before they
//! reach the store, and never shown again.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use portico_model::{CheckedValues, ConnectionSpec, Credential, FieldError, GrantType, ParameterSet};
use portico_secrets::SecretString;
use portico_store::{ConnectionRecord, ConnectionStatus, ConnectorRecord, SealedBytes};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::connectors::{self, Paging};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::views::{ConnectionView, List};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateConnection {
    pub connector_id: String,
    /// Defaults to the connector's display name.
    pub display_name: Option<String>,
    /// For connectors with several parameter sets: the chosen one.
    pub parameter_set: Option<String>,
    /// Parameter name → value, as the connection form describes.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// OAuth 2.0: where the browser goes after signing in (the public URL's origin or an
    /// allowed one); a Portico page when absent.
    pub return_url: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateConnection {
    pub display_name: Option<String>,
    /// Values to change; `null` removes an optional value. Others stay as they are.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionFilter {
    /// Only connections of this connector.
    pub connector_id: Option<String>,
}

/// A connection's secret values, decrypted. Debug shows names only.
type Secrets = BTreeMap<String, SecretString>;

fn seal(state: &AppState, connection_id: &str, secrets: &BTreeMap<String, String>) -> Option<SealedBytes> {
    if secrets.is_empty() {
        return None;
    }
    let mut plaintext = serde_json::to_vec(secrets).unwrap_or_default();
    let sealed = state.master_key.seal(&plaintext, connection_id.as_bytes());
    plaintext.fill(0);
    Some(SealedBytes(sealed))
}

pub(crate) fn open(state: &AppState, record: &ConnectionRecord) -> Result<Secrets, ApiError> {
    let Some(sealed) = &record.secrets else { return Ok(Secrets::new()) };
    let plaintext = state.master_key.open(&sealed.0, record.id.as_bytes()).map_err(|e| {
        tracing::error!(connection = %record.id, error = %e, "cannot open a connection's secrets");
        ApiError::Internal
    })?;
    serde_json::from_slice(&plaintext).map_err(|_| {
        tracing::error!(connection = %record.id, "a connection's secrets are not a JSON object");
        ApiError::Internal
    })
}

fn view(state: &AppState, record: &ConnectionRecord) -> Result<ConnectionView, ApiError> {
    Ok(ConnectionView::new(record, open(state, record)?.into_keys()))
}

fn choose_set<'a>(spec: &'a ConnectionSpec, name: Option<&str>) -> Result<&'a ParameterSet, ApiError> {
    spec.set(name).ok_or_else(|| {
        let names: Vec<_> = spec.sets().iter().map(|s| s.name.as_str()).collect();
        let message = match (spec, name) {
            (ConnectionSpec::Single(_), Some(_)) => {
                "this connector has a single parameter set: leave it out".to_owned()
            }
            (_, Some(n)) => format!("no parameter set '{n}': choose one of {}", names.join(", ")),
            (_, None) => format!("is required: choose one of {}", names.join(", ")),
        };
        ApiError::invalid_fields("invalid parameter set", vec![FieldError { field: "parameterSet".into(), message }])
    })
}

fn prefixed(errors: Vec<FieldError>) -> Vec<FieldError> {
    errors.into_iter().map(|e| FieldError { field: format!("parameters.{}", e.field), ..e }).collect()
}

#[utoipa::path(post, path = "/v1/connections", tag = "connections", request_body = CreateConnection,
    responses((status = 201, body = ConnectionView), (status = 422, body = Problem), (status = 401, body = Problem)),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Result<Json<CreateConnection>, JsonRejection>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    let Json(body) = body?;
    let connector = state.store.connector(&caller.tenant_id, &body.connector_id).await?.ok_or_else(|| {
        ApiError::invalid_fields(
            "unknown connector",
            vec![FieldError { field: "connectorId".into(), message: "no such connector".into() }],
        )
    })?;
    let set = choose_set(&connector.connector.connection, body.parameter_set.as_deref())?;
    let CheckedValues { public, secret } = set
        .check_values(&body.parameters)
        .map_err(|errors| ApiError::invalid_fields("invalid connection parameters", prefixed(errors)))?;
    let id = portico_store::new_id();
    let now = portico_store::now_millis();
    // An OAuth 2.0 connection waits for its sign-in (or fetches a client-credentials token).
    let flow = match &set.credential {
        Credential::OAuth2(oauth) => {
            let sealed_view: Secrets =
                secret.iter().map(|(k, v)| (k.clone(), SecretString::from(v.as_str()))).collect();
            let flow = crate::oauth::flow(&state, &connector, oauth, &public, &sealed_view)?;
            // Before anything is stored: a provider that cannot be discovered leaves nothing behind.
            Some(crate::oauth::discovered(&state, flow).await?)
        }
        _ => None,
    };
    let return_url = crate::oauth::check_return_url(&state, body.return_url.as_deref())?;
    if flow.is_none() && return_url.is_some() {
        return Err(ApiError::invalid_fields(
            "invalid returnUrl",
            vec![FieldError { field: "returnUrl".into(), message: "only OAuth 2.0 connections sign in".into() }],
        ));
    }
    let record = ConnectionRecord {
        secrets: seal(&state, &id, &secret),
        tokens: None,
        token_expires_at: None,
        id,
        tenant_id: caller.tenant_id.to_string(),
        connector_id: connector.id,
        created_by_key: caller.key_id.to_string(),
        display_name: body.display_name.unwrap_or_else(|| connector.connector.metadata.display_name.clone()),
        parameter_set: body
            .parameter_set
            .filter(|_| matches!(connector.connector.connection, ConnectionSpec::Choice { .. })),
        status: if flow.is_some() { ConnectionStatus::Pending } else { ConnectionStatus::Connected },
        status_reason: None,
        parameters: public,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_connection(&record).await?;
    tracing::info!(connection = %record.id, connector = %record.connector_id, "connection created");
    let authorize_url = match flow {
        None => None,
        Some(flow) if flow.grant == GrantType::ClientCredentials => {
            if let Err(error) = crate::oauth::client_credentials(&state, &record.tenant_id, &record.id, flow).await {
                // Nothing half-made stays behind.
                state.store.delete_connection(&record.tenant_id, &record.id).await?;
                return Err(error);
            }
            None
        }
        Some(flow) => {
            Some(crate::oauth::start_sign_in(&state, &record.tenant_id, &record.id, &flow, return_url).await?)
        }
    };
    let record =
        state.store.connection(&record.tenant_id, &record.id).await?.ok_or(ApiError::NotFound("connection"))?;
    let mut view = ConnectionView::new(&record, secret.into_keys());
    view.authorize_url = authorize_url;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reauthorize {
    /// Where the browser goes after signing in (the public URL's origin or an allowed one).
    pub return_url: Option<String>,
}

#[utoipa::path(post, path = "/v1/connections/{id}/reauthorize", tag = "connections", params(("id" = String, Path)),
    request_body = Reauthorize,
    responses((status = 200, body = ConnectionView, description = "With authorizeUrl to send the browser to"),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("apiKey" = [])))]
pub async fn reauthorize(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<Reauthorize>>,
) -> Result<Json<ConnectionView>, ApiError> {
    let record = find(&state, &caller, &id).await?;
    let connector = connectors::find(&state, &caller, &record.connector_id).await?;
    let Some((_, oauth)) = crate::oauth::oauth_set(&connector, &record) else {
        return Err(ApiError::Conflict("only OAuth 2.0 connections sign in again".to_owned()));
    };
    let secrets = open(&state, &record)?;
    let flow = crate::oauth::flow(&state, &connector, oauth, &record.parameters, &secrets)?;
    let return_url = crate::oauth::check_return_url(&state, body.and_then(|Json(b)| b.return_url).as_deref())?;
    let authorize_url = if flow.grant == GrantType::ClientCredentials {
        crate::oauth::client_credentials(&state, &record.tenant_id, &record.id, flow).await?;
        state.changed_connection(&record.id);
        None
    } else {
        let flow = crate::oauth::discovered(&state, flow).await?;
        Some(crate::oauth::start_sign_in(&state, &record.tenant_id, &record.id, &flow, return_url).await?)
    };
    let record = find(&state, &caller, &id).await?;
    let mut view = ConnectionView::new(&record, secrets.into_keys());
    view.authorize_url = authorize_url;
    Ok(Json(view))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The redirect URI registered with identity providers. It needs no Portico session: the
/// state alone names the sign-in, which may finish in another browser.
#[utoipa::path(get, path = "/oauth/callback", tag = "connections", params(CallbackQuery),
    responses((status = 200, description = "Signed in (an HTML page)"), (status = 303, description = "To the returnUrl"),
        (status = 400, description = "Unknown, used or expired sign-in (an HTML page)")))]
pub async fn oauth_callback(
    State(state): State<Arc<AppState>>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> axum::response::Response {
    use axum::response::{Html, IntoResponse, Redirect};
    let Ok(Query(query)) = query else {
        return (StatusCode::BAD_REQUEST, Html(page("Sign-in failed", "The sign-in link is malformed.")))
            .into_response();
    };
    let outcome = crate::oauth::callback(
        &state,
        query.state.as_deref(),
        query.code.as_deref(),
        query.error.as_deref(),
        query.error_description.as_deref(),
    )
    .await;
    match outcome {
        Ok(crate::oauth::CallbackOutcome::Connected { return_url: Some(url) }) => {
            Redirect::to(&with_param(&url, "status", "connected")).into_response()
        }
        Ok(crate::oauth::CallbackOutcome::Connected { return_url: None }) => {
            Html(page("Connected", "The connection is signed in. You can close this window.")).into_response()
        }
        Ok(crate::oauth::CallbackOutcome::Failed { return_url: Some(url), .. }) => {
            Redirect::to(&with_param(&url, "status", "error")).into_response()
        }
        Ok(crate::oauth::CallbackOutcome::Failed { reason, return_url: None }) => {
            (StatusCode::OK, Html(page("Sign-in failed", &reason))).into_response()
        }
        Ok(crate::oauth::CallbackOutcome::Refused) => (
            StatusCode::BAD_REQUEST,
            Html(page(
                "Sign-in link not valid",
                "This sign-in link is unknown, was already used, or has expired. Start the sign-in again.",
            )),
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.query_pairs_mut().append_pair(name, value);
            parsed.into()
        }
        Err(_) => url.to_owned(),
    }
}

/// A minimal page for the browser at the end of a sign-in.
fn page(title: &str, message: &str) -> String {
    let escape =
        |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>{t} — Portico</title></head><body style=\"font-family:system-ui,sans-serif;\
         max-width:36rem;margin:4rem auto;padding:0 1rem\"><h1>{t}</h1><p>{m}</p></body></html>",
        t = escape(title),
        m = escape(message)
    )
}

#[utoipa::path(get, path = "/v1/connections", tag = "connections", params(ConnectionFilter, Paging),
    responses((status = 200, body = List<ConnectionView>), (status = 401, body = Problem)), security(("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    filter: Result<Query<ConnectionFilter>, QueryRejection>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<List<ConnectionView>>, ApiError> {
    let (Query(filter), Query(paging)) = (filter?, paging?);
    let page = state
        .store
        .list_connections(
            &caller.tenant_id,
            filter.connector_id.as_deref(),
            paging.after.as_deref(),
            paging.fetch_limit(),
        )
        .await?;
    let page = paging.cut(page, |record| &record.id);
    let items = page.items.iter().map(|r| view(&state, r)).collect::<Result<_, _>>()?;
    Ok(Json(List { items, next: page.next }))
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<ConnectionRecord, ApiError> {
    state.store.connection(&caller.tenant_id, id).await?.ok_or(ApiError::NotFound("connection"))
}

#[utoipa::path(get, path = "/v1/connections/{id}", tag = "connections", params(("id" = String, Path)),
    responses((status = 200, body = ConnectionView), (status = 404, body = Problem)), security(("apiKey" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(view(&state, &find(&state, &caller, &id).await?)?))
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

#[utoipa::path(patch, path = "/v1/connections/{id}", tag = "connections", params(("id" = String, Path)),
    request_body = UpdateConnection,
    responses((status = 200, body = ConnectionView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("apiKey" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<UpdateConnection>, JsonRejection>,
) -> Result<Json<ConnectionView>, ApiError> {
    let mut record = find(&state, &caller, &id).await?;
    let Json(body) = body?;
    if let Some(name) = body.display_name {
        record.display_name = name;
    }
    let secrets = open(&state, &record)?;
    let mut secret_names: Vec<String> = secrets.keys().cloned().collect();
    if let Some(changes) = body.parameters {
        let connector = connectors::find(&state, &caller, &record.connector_id).await?;
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
            .map_err(|errors| ApiError::invalid_fields("invalid connection parameters", prefixed(errors)))?;
        keep_sealed(&mut public, &mut secret, &secrets, &given);
        record.parameters = public;
        record.secrets = seal(&state, &record.id, &secret);
        secret_names = secret.into_keys().collect();
        if record.status == ConnectionStatus::NeedsReauth && !matches!(set.credential, Credential::OAuth2(_)) {
            record.status = ConnectionStatus::Connected;
            record.status_reason = None;
        }
    }
    record.updated_at = portico_store::now_millis();
    if !state.store.update_connection(&record).await? {
        return Err(ApiError::NotFound("connection"));
    }
    state.changed_connection(&record.id);
    Ok(Json(ConnectionView::new(&record, secret_names)))
}

#[utoipa::path(delete, path = "/v1/connections/{id}", tag = "connections", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Deleting the row destroys the sealed secret with it.
    let record = state.store.connection(&caller.tenant_id, &id).await?;
    let connector = match &record {
        Some(r) => state.store.connector(&caller.tenant_id, &r.connector_id).await?,
        None => None,
    };
    let deleted = state.store.delete_connection(&caller.tenant_id, &id).await?;
    if deleted && let (Some(record), Some(connector)) = (&record, &connector) {
        crate::oauth::revoke_in_background(&state, connector, record);
    }
    if deleted {
        state.changed_connection(&id);
    }
    if deleted {
        tracing::info!(connection = %id, "connection deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("connection"))
    }
}

/// After a connector's parameters changed: connections whose values no longer fit need the
/// user to reconnect.
pub async fn recheck_connections(
    state: &AppState,
    caller: &Caller,
    connector: &ConnectorRecord,
) -> Result<(), ApiError> {
    let mut after = None;
    loop {
        let page = state.store.list_connections(&caller.tenant_id, Some(&connector.id), after.as_deref(), 200).await?;
        for mut record in page.items {
            let reason = match connector.connector.connection.set(record.parameter_set.as_deref()) {
                None => Some("the connector no longer has this connection's parameter set".to_owned()),
                Some(set) => {
                    let values = current_values(&record, &open(state, &record)?);
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
                state.store.update_connection(&record).await?;
                tracing::info!(connection = %record.id, "connection needs re-authentication");
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}
