//! `/v1/members`: an admin adds the tenant's people by e-mail address with a role; they sign in
//! to the portal with OpenID Connect.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Json, Path, Query};
use super::problems::{Forbidden, JsonBody, KeyRequired, Malformed, NotFound, PROBLEM};
use super::{Paging, parse_role};
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::views::{List, MemberView};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMember {
    #[schema(format = Email, max_length = 255)]
    pub email: String,
    /// `admin`, `author` or `user`.
    #[schema(value_type = super::RoleName)]
    pub role: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeMember {
    /// `admin`, `author` or `user`.
    #[schema(value_type = super::RoleName)]
    pub role: String,
}

#[utoipa::path(post, path = "/v1/members", tag = "access", request_body = AddMember,
    responses((status = 201, body = MemberView), KeyRequired, Forbidden, JsonBody,
        (status = 409, body = Problem, content_type = PROBLEM, description = "A member has this address already")),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Json(body): Json<AddMember>,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    let member = state.app.add_member(&principal, &body.email, parse_role(&body.role)?).await?;
    Ok((StatusCode::CREATED, Json(MemberView::new(&member))))
}

#[utoipa::path(get, path = "/v1/members", tag = "access", params(Paging),
    responses((status = 200, body = List<MemberView>), KeyRequired, Forbidden, Malformed), security(("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Query(paging): Query<Paging>,
) -> Result<Json<List<MemberView>>, ApiError> {
    let page = state.app.list_members(&principal, paging.after.as_deref(), paging.limit.get()).await?;
    Ok(Json(List { items: page.items.iter().map(MemberView::new).collect(), next: page.next }))
}

#[utoipa::path(get, path = "/v1/members/{id}", tag = "access", params(("id" = String, Path)),
    responses((status = 200, body = MemberView), KeyRequired, Forbidden, Malformed, NotFound),
    security(("apiKey" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<MemberView>, ApiError> {
    Ok(Json(MemberView::new(&state.app.member(&principal, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/members/{id}", tag = "access", params(("id" = String, Path)),
    request_body = ChangeMember,
    responses((status = 200, body = MemberView), KeyRequired, Forbidden, NotFound, JsonBody),
    security(("apiKey" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<ChangeMember>,
) -> Result<Json<MemberView>, ApiError> {
    let member = state.app.change_member_role(&principal, &id, parse_role(&body.role)?).await?;
    Ok(Json(MemberView::new(&member)))
}

#[utoipa::path(delete, path = "/v1/members/{id}", tag = "access", params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), KeyRequired, Forbidden, Malformed, NotFound),
    security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.remove_member(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
