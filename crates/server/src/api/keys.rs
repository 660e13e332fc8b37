//! `/v1/api-keys`: an admin makes keys with a role (a `user` key acts as one end user and may
//! be narrowed to some connections), lists them without their secret, and revokes them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use portico_app::keys::{KeyFilter, NewKey};
use portico_model::Role;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{Json, Path, Query};
use super::problems::{Forbidden, JsonBody, KeyRequired, Malformed, NotFound};
use super::{Paging, parse_role, parse_time};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{ApiKeyView, CreatedApiKeyView, List};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// `admin`, `author` or `user`.
    #[schema(value_type = super::RoleName)]
    pub role: String,
    /// Required for a `user` key: the end user it acts as (any id an app uses for its users,
    /// up to 255 characters).
    #[schema(value_type = Option<super::EndUserId>)]
    pub end_user_id: Option<String>,
    /// A `user` key narrowed to calling through these connections only.
    pub connection_ids: Option<Vec<String>>,
    /// When the key stops working (RFC 3339); never when absent.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Its own limit of calls through connections, in requests per second (and as many at
    /// once); the server's `--key-rate-limit` when absent.
    #[schema(minimum = 1)]
    pub rate_limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct KeyListOptions {
    /// Also list revoked keys (with `revokedAt`).
    #[serde(default)]
    pub include_revoked: bool,
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "access", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKeyView, description = "The key appears in this answer only"),
        KeyRequired, Forbidden, JsonBody),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Json(body): Json<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKeyView>), ApiError> {
    let role: Role = parse_role(&body.role)?;
    let expires_at = body.expires_at.as_deref().map(|text| parse_time("expiresAt", text)).transpose()?;
    let new = NewKey {
        name: body.name,
        role,
        end_user_id: body.end_user_id,
        connection_ids: body.connection_ids,
        expires_at,
        rate_limit: body.rate_limit,
    };
    let created = state.app.create_key(&principal, new).await?;
    let view = CreatedApiKeyView { api_key: ApiKeyView::new(&created.record), key: created.key.expose().to_owned() };
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "access", params(KeyListOptions, Paging),
    responses((status = 200, body = List<ApiKeyView>), KeyRequired, Forbidden, Malformed),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Query(options): Query<KeyListOptions>,
    Query(paging): Query<Paging>,
) -> Result<Json<List<ApiKeyView>>, ApiError> {
    let filter = KeyFilter { include_revoked: options.include_revoked };
    let page = state.app.list_keys(&principal, filter, paging.after.as_deref(), paging.limit.get()).await?;
    Ok(Json(List { items: page.items.iter().map(ApiKeyView::new).collect(), next: page.next }))
}

#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "access", params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyView), KeyRequired, Forbidden, Malformed, NotFound),
    security(("apiKey" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyView>, ApiError> {
    Ok(Json(ApiKeyView::new(&state.app.key(&principal, &id).await?)))
}

/// Revokes the key: it answers 401 at once on this instance, and within a second on every
/// other instance.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "access", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked"), KeyRequired, Forbidden, Malformed, NotFound),
    security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.revoke_key(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
