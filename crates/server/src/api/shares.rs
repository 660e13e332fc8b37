//! `/v1/connections/{id}/shares`: the owner of a connection (or an admin) shares it with other
//! end users, who may then use it (`use`) or also change it (`edit`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use portico_model::SharePermission;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Json, Path};
use super::problems::{Forbidden, JsonBody, KeyRequired, Malformed, NotFound};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{List, ShareView};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutShare {
    /// `use`: call through the connection and see its metadata; `edit`: also change its
    /// parameters and sign in again.
    #[schema(value_type = PermissionName)]
    pub permission: String,
}

/// A share's permission as the API spells it.
#[derive(ToSchema)]
#[schema(as = SharePermission, rename_all = "lowercase")]
#[allow(dead_code)] // describes the text, which the handler reads to say which field is wrong
pub enum PermissionName {
    Use,
    Edit,
}

#[utoipa::path(put, path = "/v1/connections/{id}/shares/{endUserId}", tag = "connections",
    params(("id" = String, Path), ("endUserId" = super::EndUserId, Path)), request_body = PutShare,
    responses((status = 200, body = ShareView), KeyRequired, Forbidden, NotFound, JsonBody),
    security(("apiKey" = [])))]
pub async fn put(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path((id, end_user)): Path<(String, String)>,
    Json(body): Json<PutShare>,
) -> Result<Json<ShareView>, ApiError> {
    let permission = SharePermission::parse(&body.permission).ok_or_else(|| {
        ApiError::invalid_fields(
            "invalid share",
            vec![portico_model::FieldError { field: "permission".into(), message: "must be use or edit".into() }],
        )
    })?;
    let (share, _) = state.app.share_connection(&principal, &id, &end_user, permission).await?;
    Ok(Json(ShareView::new(&share)))
}

#[utoipa::path(delete, path = "/v1/connections/{id}/shares/{endUserId}", tag = "connections",
    params(("id" = String, Path), ("endUserId" = super::EndUserId, Path)),
    responses((status = 204, description = "No longer shared"), KeyRequired, Forbidden, Malformed, NotFound),
    security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path((id, end_user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.app.unshare_connection(&principal, &id, &end_user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/connections/{id}/shares", tag = "connections", params(("id" = String, Path)),
    responses((status = 200, body = List<ShareView>), KeyRequired, Forbidden, Malformed, NotFound),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<List<ShareView>>, ApiError> {
    let shares = state.app.connection_shares(&principal, &id).await?;
    Ok(Json(List { items: shares.iter().map(ShareView::new).collect(), next: None }))
}
