//! `/v1/connections`: users create connections by giving the values their connector asks for.
//! Secret values are sealed (AES-256-GCM, the connection id as associated data) before they
//! reach the store, and never shown again.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use portico_model::{CheckedValues, ConnectionSpec, Credential, FieldError, ParameterSet};
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
    if let Credential::OAuth2(_) = set.credential {
        return Err(ApiError::NotImplemented(
            "OAuth 2.0 connections are not available yet in this version of Portico".to_owned(),
        ));
    }
    let CheckedValues { public, secret } = set
        .check_values(&body.parameters)
        .map_err(|errors| ApiError::invalid_fields("invalid connection parameters", prefixed(errors)))?;
    let id = portico_store::new_id();
    let now = portico_store::now_millis();
    let record = ConnectionRecord {
        secrets: seal(&state, &id, &secret),
        id,
        tenant_id: caller.tenant_id,
        connector_id: connector.id,
        created_by_key: caller.key_id,
        display_name: body.display_name.unwrap_or_else(|| connector.connector.metadata.display_name.clone()),
        parameter_set: body
            .parameter_set
            .filter(|_| matches!(connector.connector.connection, ConnectionSpec::Choice { .. })),
        status: ConnectionStatus::Connected,
        status_reason: None,
        parameters: public,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_connection(&record).await?;
    tracing::info!(connection = %record.id, connector = %record.connector_id, "connection created");
    Ok((StatusCode::CREATED, Json(ConnectionView::new(&record, secret.into_keys()))))
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
        for (name, value) in changes {
            // Changes may name a parameter in any case; they replace the stored spelling.
            values.retain(|k, _| !k.eq_ignore_ascii_case(&name));
            if !value.is_null() {
                values.insert(name, value);
            }
        }
        let CheckedValues { public, secret } = set
            .check_values(&values)
            .map_err(|errors| ApiError::invalid_fields("invalid connection parameters", prefixed(errors)))?;
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
    state.connections.invalidate(&record.id);
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
    let deleted = state.store.delete_connection(&caller.tenant_id, &id).await?;
    if deleted {
        state.connections.invalidate(&id);
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
