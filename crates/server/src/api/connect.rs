//! Connect sessions: `/v1/connect-sessions` for an app's back end (admin), and `/v1/connect/{token}`
//! for what the end user's page (the hosted one, or the app's own) does with the token alone.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use portico_app::connect::NewConnectSession;
use portico_app::connections::NewConnection;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::extract::{Json, Path};
use super::problems::{Forbidden, JsonBody, KeyRequired, Malformed, NotFound, TokenRequired};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{ConnectOfferView, ConnectSessionView, ConnectionView, CreatedConnectSessionView};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateConnectSession {
    /// The end user who will own the connection.
    #[schema(value_type = super::EndUserId)]
    pub end_user_id: String,
    /// How the end user's page names your app (up to 100 characters).
    pub app_name: Option<String>,
    /// The connectors offered; all of the tenant's when absent.
    #[schema(min_items = 1)]
    pub connector_ids: Option<Vec<String>>,
    /// Where the end user's browser goes at the end, with `connectionId` and `status` (the
    /// public URL's origin or one allowed with `--allowed-return-origin`).
    pub return_url: Option<String>,
    /// Seconds the link lives: 1 to 86400, default 1800.
    #[schema(minimum = 1, maximum = 86400)]
    pub expires_in: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectWithToken {
    pub connector_id: String,
    pub display_name: Option<String>,
    /// For connectors with several parameter sets: the chosen one.
    pub parameter_set: Option<String>,
    /// Parameter name → value, as the connection form describes.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

#[utoipa::path(post, path = "/v1/connect-sessions", tag = "connect", request_body = CreateConnectSession,
    responses((status = 201, body = CreatedConnectSessionView, description = "The token appears in this answer only"),
        KeyRequired, Forbidden, JsonBody),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Json(body): Json<CreateConnectSession>,
) -> Result<(StatusCode, Json<CreatedConnectSessionView>), ApiError> {
    let new = NewConnectSession {
        end_user_id: body.end_user_id,
        app_name: body.app_name,
        connector_ids: body.connector_ids,
        return_url: body.return_url,
        expires_in: body.expires_in.map(Duration::from_secs),
    };
    let created = state.app.create_connect_session(&principal, new).await?;
    Ok((StatusCode::CREATED, Json(CreatedConnectSessionView::new(&created))))
}

#[utoipa::path(get, path = "/v1/connect-sessions/{id}", tag = "connect", params(("id" = String, Path)),
    responses((status = 200, body = ConnectSessionView), KeyRequired, Forbidden, Malformed, NotFound),
    security(("apiKey" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<ConnectSessionView>, ApiError> {
    let (session, session_state) = state.app.connect_session(&principal, &id).await?;
    Ok(Json(ConnectSessionView::new(&session, &session_state)))
}

/// What a connect token offers: its connectors and their connection forms. No API key: the
/// token in the path is the credential.
#[utoipa::path(get, path = "/v1/connect/{token}", tag = "connect", params(("token" = String, Path)),
    responses((status = 200, body = ConnectOfferView), TokenRequired, Malformed))]
pub async fn offer(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
) -> Result<Json<ConnectOfferView>, ApiError> {
    let offer = state.app.connect_offer(&token).await.map_err(token_error)?;
    Ok(Json(ConnectOfferView::new(&offer, state.app.redirect_uri())))
}

/// Makes the token's one connection, owned by its session's end user: its metadata (never its
/// secrets), or for OAuth 2.0 connectors `authorizeUrl` to send the browser to.
#[utoipa::path(post, path = "/v1/connect/{token}/connections", tag = "connect", params(("token" = String, Path)),
    request_body = ConnectWithToken,
    responses((status = 201, body = ConnectionView), TokenRequired, JsonBody))]
pub async fn connect(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    Json(body): Json<ConnectWithToken>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    let new = NewConnection {
        connector_id: body.connector_id,
        display_name: body.display_name,
        parameter_set: body.parameter_set,
        parameters: body.parameters,
        // A sign-in comes back to the session's page, which says how it went (or sends the
        // browser on to the app's returnUrl).
        return_url: Some(crate::connect::done_url(&state, &token)),
        end_user_id: None,
    };
    let (_, info) = state.app.connect(&token, new).await.map_err(token_error)?;
    Ok((StatusCode::CREATED, Json(ConnectionView::new(info))))
}

/// An unknown token is named as such, not as a missing API key.
fn token_error(error: portico_app::Error) -> ApiError {
    match error {
        portico_app::Error::Unauthenticated => ApiError::UnknownToken,
        other => other.into(),
    }
}
