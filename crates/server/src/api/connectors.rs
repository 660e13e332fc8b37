//! `/v1/connectors`: connector authors register, read, replace and delete connectors.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use portico_app::connectors::ConnectorSource;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::Paging;
use super::extract::{Json, Path, Query};
use super::problems::{Forbidden, JsonBody, KeyRequired, Malformed, NotFound, PROBLEM};
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::views::{ConnectorView, List};

/// The body of `POST` and `PUT /v1/connectors`: exactly one of `powerPlatform`, `openapi`
/// and `definition`, and optionally the OAuth client.
// The handler reads the body as JSON to report every mistake at once: `Deserialize` is
// derived only for the description, whose field names and closed list of fields its
// attributes give.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
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
pub struct DeleteOptions {
    /// Also delete the connector's connections.
    #[serde(default)]
    pub cascade: bool,
}

#[utoipa::path(post, path = "/v1/connectors", tag = "connectors", request_body = ConnectorBody,
    responses((status = 201, body = ConnectorView), KeyRequired, Forbidden, JsonBody),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<ConnectorView>), ApiError> {
    let record = state.app.create_connector(&principal, ConnectorSource::Json(body)).await?;
    Ok((StatusCode::CREATED, Json(ConnectorView::new(&record, true))))
}

#[utoipa::path(get, path = "/v1/connectors", tag = "connectors", params(Paging),
    responses((status = 200, body = List<ConnectorView>), KeyRequired, Malformed), security(("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Query(paging): Query<Paging>,
) -> Result<Json<List<ConnectorView>>, ApiError> {
    let page = state.app.list_connectors(&principal, paging.after.as_deref(), paging.limit.get()).await?;
    Ok(Json(List { items: page.items.iter().map(|r| ConnectorView::new(r, false)).collect(), next: page.next }))
}

#[utoipa::path(get, path = "/v1/connectors/{id}", tag = "connectors", params(("id" = String, Path)),
    responses((status = 200, body = ConnectorView), KeyRequired, Malformed, NotFound), security(("apiKey" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<ConnectorView>, ApiError> {
    Ok(Json(ConnectorView::new(&state.app.connector(&principal, &id).await?, true)))
}

#[utoipa::path(put, path = "/v1/connectors/{id}", tag = "connectors", params(("id" = String, Path)),
    request_body = ConnectorBody,
    responses((status = 200, body = ConnectorView), KeyRequired, Forbidden, NotFound, JsonBody),
    security(("apiKey" = [])))]
pub async fn replace(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<ConnectorView>, ApiError> {
    let record = state.app.replace_connector(&principal, &id, ConnectorSource::Json(body)).await?;
    Ok(Json(ConnectorView::new(&record, true)))
}

#[utoipa::path(delete, path = "/v1/connectors/{id}", tag = "connectors", params(("id" = String, Path), DeleteOptions),
    responses((status = 204, description = "Deleted"), KeyRequired, Forbidden, Malformed, NotFound,
        (status = 409, body = Problem, content_type = PROBLEM,
            description = "It has connections; delete them too with `cascade=true`")),
    security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Query(options): Query<DeleteOptions>,
) -> Result<StatusCode, ApiError> {
    state.app.delete_connector(&principal, &id, options.cascade).await?;
    Ok(StatusCode::NO_CONTENT)
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
    responses((status = 200, body = ConnectionFormView), KeyRequired, Malformed, NotFound), security(("apiKey" = [])))]
pub async fn connection_form(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<ConnectionFormView>, ApiError> {
    let (record, form, redirect_uri) = state.app.connection_form(&principal, &id).await?;
    Ok(Json(ConnectionFormView { connector_id: record.id, form, redirect_uri }))
}
