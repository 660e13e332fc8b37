//! `/v1/webhooks`: an admin registers URLs that learn of every change to the tenant's
//! connections, signed as Standard Webhooks says; the secret is shown once, at creation and at
//! each rotation.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use portico_app::events::EventKind;
use portico_app::webhooks::WebhookChanges;
use serde::{Deserialize, Deserializer};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Json, Path, Query};
use super::problems::{Forbidden, JsonBody, KeyRequired, Malformed, NotFound};
use super::{PageSize, Paging};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{DeliveryView, List, WebhookView, WebhookWithSecretView};

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed (http or https; not a private address unless the server
    /// allows private backends).
    pub url: String,
    /// The event kinds it receives; all when absent.
    #[schema(value_type = Option<Vec<EventName>>, min_items = 1)]
    pub events: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhook {
    pub url: Option<String>,
    /// `null`: every kind.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<EventName>>, min_items = 1)]
    pub events: Option<Option<Vec<String>>>,
    /// A disabled webhook gets no new deliveries.
    pub enabled: Option<bool>,
}

/// An event kind as the API spells it, e.g. `connection.created`: the domain's list of kinds.
pub struct EventName;

impl utoipa::PartialSchema for EventName {
    fn schema() -> RefOr<Schema> {
        let kinds = EventKind::ALL.iter().map(|kind| kind.as_str());
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(kinds)).into()
    }
}

impl ToSchema for EventName {
    fn name() -> Cow<'static, str> {
        "EventKind".into()
    }
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryPaging {
    /// At most this many items: 1 to 200 (others are refused with 400), 50 when absent.
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50)]
    pub limit: PageSize,
    /// The `next` cursor of the previous page (deliveries come newest first).
    pub before: Option<String>,
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = WebhookWithSecretView, description = "The secret appears in this answer only"),
        KeyRequired, Forbidden, JsonBody),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Json(body): Json<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookWithSecretView>), ApiError> {
    let created = state.app.create_webhook(&principal, &body.url, body.events).await?;
    Ok((StatusCode::CREATED, Json(WebhookWithSecretView::new(&created))))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(Paging),
    responses((status = 200, body = List<WebhookView>), KeyRequired, Forbidden, Malformed),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Query(paging): Query<Paging>,
) -> Result<Json<List<WebhookView>>, ApiError> {
    let page = state.app.list_webhooks(&principal, paging.after.as_deref(), paging.limit.get()).await?;
    Ok(Json(List { items: page.items.iter().map(WebhookView::new).collect(), next: page.next }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), KeyRequired, Forbidden, Malformed, NotFound),
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
    responses((status = 200, body = WebhookView), KeyRequired, Forbidden, NotFound, JsonBody),
    security(("apiKey" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<UpdateWebhook>,
) -> Result<Json<WebhookView>, ApiError> {
    let changes = WebhookChanges { url: body.url, events: body.events, enabled: body.enabled };
    Ok(Json(WebhookView::new(&state.app.update_webhook(&principal, &id, changes).await?)))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), KeyRequired, Forbidden, Malformed, NotFound),
    security(("apiKey" = [])))]
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
        KeyRequired, Forbidden, Malformed, NotFound),
    security(("apiKey" = [])))]
pub async fn rotate_secret(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookWithSecretView>, ApiError> {
    Ok(Json(WebhookWithSecretView::new(&state.app.rotate_webhook_secret(&principal, &id).await?)))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), DeliveryPaging),
    responses((status = 200, body = List<DeliveryView>), KeyRequired, Forbidden, Malformed, NotFound),
    security(("apiKey" = [])))]
pub async fn deliveries(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Query(paging): Query<DeliveryPaging>,
) -> Result<Json<List<DeliveryView>>, ApiError> {
    let page = state.app.list_deliveries(&principal, &id, paging.before.as_deref(), paging.limit.get()).await?;
    Ok(Json(List { items: page.items.iter().map(DeliveryView::new).collect(), next: page.next }))
}
