//! `/v1/webhooks`: an admin registers URLs that learn of every change to the tenant's
//! connections, signed as Standard Webhooks says; the secret is shown once, at creation and at
//! each rotation.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use portico_app::webhooks::WebhookChanges;
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};

use super::Paging;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::views::{DeliveryView, List, WebhookView, WebhookWithSecretView};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed (http or https; not a private address unless the server
    /// allows private backends).
    pub url: String,
    /// The event kinds it receives; all when absent: `connection.created`,
    /// `connection.updated`, `connection.deleted`, `connection.reauthorized`,
    /// `connection.needs_reauth`, `connect_session.completed`.
    pub events: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhook {
    pub url: Option<String>,
    /// `null`: every kind.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Option<Vec<String>>>,
    /// A disabled webhook gets no new deliveries.
    pub enabled: Option<bool>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryPaging {
    /// At most this many items (1–200, default 50).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page (deliveries come newest first).
    pub before: Option<String>,
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = WebhookWithSecretView, description = "The secret appears in this answer only"),
        (status = 422, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    body: Result<Json<CreateWebhook>, JsonRejection>,
) -> Result<(StatusCode, Json<WebhookWithSecretView>), ApiError> {
    let Json(body) = body?;
    let created = state.app.create_webhook(&principal, &body.url, body.events).await?;
    Ok((StatusCode::CREATED, Json(WebhookWithSecretView::new(&created))))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(Paging),
    responses((status = 200, body = List<WebhookView>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<List<WebhookView>>, ApiError> {
    let Query(paging) = paging?;
    let page = state.app.list_webhooks(&principal, paging.after.as_deref(), paging.limit()).await?;
    Ok(Json(List { items: page.items.iter().map(WebhookView::new).collect(), next: page.next }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = Problem), (status = 403, body = Problem)),
    security(("apiKey" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(WebhookView::new(&state.app.webhook(&principal, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = UpdateWebhook,
    responses((status = 200, body = WebhookView), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 403, body = Problem)),
    security(("apiKey" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    body: Result<Json<UpdateWebhook>, JsonRejection>,
) -> Result<Json<WebhookView>, ApiError> {
    let Json(body) = body?;
    let changes = WebhookChanges { url: body.url, events: body.events, enabled: body.enabled };
    Ok(Json(WebhookView::new(&state.app.update_webhook(&principal, &id, changes).await?)))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 403, body = Problem)), security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.delete_webhook(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret; the previous one still signs for 24 hours (both signatures are sent).
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookWithSecretView, description = "The new secret appears in this answer only"),
        (status = 404, body = Problem), (status = 403, body = Problem)),
    security(("apiKey" = [])))]
pub async fn rotate_secret(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookWithSecretView>, ApiError> {
    Ok(Json(WebhookWithSecretView::new(&state.app.rotate_webhook_secret(&principal, &id).await?)))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path), DeliveryPaging),
    responses((status = 200, body = List<DeliveryView>), (status = 404, body = Problem), (status = 403, body = Problem)),
    security(("apiKey" = [])))]
pub async fn deliveries(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    paging: Result<Query<DeliveryPaging>, QueryRejection>,
) -> Result<Json<List<DeliveryView>>, ApiError> {
    let Query(paging) = paging?;
    let limit = paging.limit.unwrap_or(50).clamp(1, 200);
    let page = state.app.list_deliveries(&principal, &id, paging.before.as_deref(), limit).await?;
    Ok(Json(List { items: page.items.iter().map(DeliveryView::new).collect(), next: page.next }))
}
