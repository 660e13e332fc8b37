//! The HTTP API: handlers that only translate between HTTP and the use cases of
//! `portico-app`, and its OpenAPI description, made from the same route list that serves it.

pub mod connect;
pub mod connections;
pub mod connectors;
pub mod keys;
pub mod members;
pub mod shares;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::State;
use serde::Deserialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// At most this many items (1–200, default 50).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

impl Paging {
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(50).clamp(1, 200)
    }
}

/// A role as the API spells it.
pub fn parse_role(text: &str) -> Result<portico_model::Role, ApiError> {
    portico_model::Role::parse(text).ok_or_else(|| {
        ApiError::invalid_fields(
            "invalid role",
            vec![portico_model::FieldError { field: "role".into(), message: "must be admin, author or user".into() }],
        )
    })
}

/// An RFC 3339 time as milliseconds since the epoch.
pub fn parse_time(field: &str, text: &str) -> Result<portico_store::Millis, ApiError> {
    let bad = || {
        ApiError::invalid_fields(
            "invalid time",
            vec![portico_model::FieldError {
                field: field.to_owned(),
                message: "must be an RFC 3339 time, e.g. 2030-01-31T12:00:00Z".to_owned(),
            }],
        )
    };
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| bad())?;
    portico_store::Millis::try_from(parsed.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Portico", description = "Custom connectors and their connections."),
    modifiers(&ApiKeyScheme),
    paths(crate::proxy::described::proxy, crate::proxy::described::operation, crate::proxy::described::test),
    tags((name = "connectors", description = "Connector definitions, for connector authors"),
         (name = "connections", description = "Authenticated connections, for users"),
         (name = "calls", description = "Calls to backends through connections"),
         (name = "access", description = "API keys and members, for admins"),
         (name = "connect", description = "Connect sessions: an app's end users connect their own accounts"),
         (name = "webhooks", description = "Signed, durable events of every change to a connection"),
         (name = "health", description = "Liveness and readiness")),
)]
struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("apiKey", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The routes and their OpenAPI description, from one list so that they cannot drift apart.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(connectors::create, connectors::list))
        .routes(routes!(connectors::get, connectors::replace, connectors::delete))
        .routes(routes!(connectors::connection_form))
        .routes(routes!(connections::create, connections::list))
        .routes(routes!(connections::get, connections::update, connections::delete))
        .routes(routes!(connections::reauthorize))
        .routes(routes!(shares::list))
        .routes(routes!(shares::put, shares::delete))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::get, keys::delete))
        .routes(routes!(members::create, members::list))
        .routes(routes!(members::get, members::update, members::delete))
        .routes(routes!(connect::create))
        .routes(routes!(connect::get))
        .routes(routes!(connect::offer))
        .routes(routes!(connect::connect))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(connections::oauth_callback))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "The process is up")))]
async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "The store answers"), (status = 503, body = Problem)))]
async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state.app.ready().await?;
    Ok("ready")
}
