//! `/v1/connections/{id}/shares`: the owner of a connection (or an admin) shares it with other
//! end users, who may then use it (`use`) or also change it (`edit`).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portico_model::SharePermission;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::views::{List, ShareView};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutShare {
    /// `use`: call through the connection and see its metadata; `edit`: also change its
    /// parameters and sign in again.
    pub permission: String,
}

#[utoipa::path(put, path = "/v1/connections/{id}/shares/{endUserId}", tag = "connections",
    params(("id" = String, Path), ("endUserId" = String, Path)), request_body = PutShare,
    responses((status = 200, body = ShareView), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 403, body = Problem)),
    security(("apiKey" = [])))]
pub async fn put(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path((id, end_user)): Path<(String, String)>,
    body: Result<Json<PutShare>, JsonRejection>,
) -> Result<Json<ShareView>, ApiError> {
    let Json(body) = body?;
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
    params(("id" = String, Path), ("endUserId" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 403, body = Problem)), security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path((id, end_user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.app.unshare_connection(&principal, &id, &end_user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/connections/{id}/shares", tag = "connections", params(("id" = String, Path)),
    responses((status = 200, body = List<ShareView>), (status = 404, body = Problem), (status = 403, body = Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<List<ShareView>>, ApiError> {
    let shares = state.app.connection_shares(&principal, &id).await?;
    Ok(Json(List { items: shares.iter().map(ShareView::new).collect(), next: None }))
}
