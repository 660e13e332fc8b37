//! `/v1/connections`: users create connections by giving the values their connector asks for,
//! and read, change, re-authorize and delete them; `/oauth/callback` finishes a sign-in.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use portico_app::connections::{ConnectionChanges, ConnectionFilter, NewConnection};
use portico_app::oauth::{Callback, CallbackOutcome};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::Paging;
use super::extract::{Json, Path, Query};
use super::problems::{Forbidden, JsonBody, KeyRequired, Malformed, NotFound, PROBLEM};
use crate::auth::Caller;
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
    /// OAuth 2.0: where the browser goes after signing in (the public URL's origin or an
    /// allowed one); a Portico page when absent.
    pub return_url: Option<String>,
    /// The end user who owns the connection. An admin key may create one for any end user
    /// (or, without it, for the tenant itself); a user key creates for its own end user.
    #[schema(value_type = Option<super::EndUserId>)]
    pub end_user_id: Option<String>,
}

impl From<CreateConnection> for NewConnection {
    fn from(body: CreateConnection) -> Self {
        NewConnection {
            connector_id: body.connector_id,
            display_name: body.display_name,
            parameter_set: body.parameter_set,
            parameters: body.parameters,
            return_url: body.return_url,
            end_user_id: body.end_user_id,
        }
    }
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
pub struct ListFilter {
    /// Only connections of this connector.
    pub connector_id: Option<String>,
    /// Only connections this end user owns.
    pub end_user_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/connections", tag = "connections", request_body = CreateConnection,
    responses((status = 201, body = ConnectionView), KeyRequired, Forbidden, JsonBody),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Json(body): Json<CreateConnection>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    let info = state.app.create_connection(&principal, body.into()).await?;
    Ok((StatusCode::CREATED, Json(ConnectionView::new(info))))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reauthorize {
    /// Where the browser goes after signing in (the public URL's origin or an allowed one).
    pub return_url: Option<String>,
}

#[utoipa::path(post, path = "/v1/connections/{id}/reauthorize", tag = "connections", params(("id" = String, Path)),
    request_body(content = Option<Reauthorize>,
        description = "Optional: without a body (or with `null`), the sign-in ends on a Portico page"),
    responses((status = 200, body = ConnectionView, description = "With authorizeUrl to send the browser to"),
        KeyRequired, Forbidden, NotFound, JsonBody,
        (status = 409, body = Problem, content_type = PROBLEM, description = "Not an OAuth 2.0 connection")),
    security(("apiKey" = [])))]
pub async fn reauthorize(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    body: Option<Json<Option<Reauthorize>>>,
) -> Result<Json<ConnectionView>, ApiError> {
    // No body, or `null`: no options.
    let return_url = body.and_then(|Json(b)| b?.return_url);
    let info = state.app.reauthorize(&principal, &id, return_url.as_deref()).await?;
    Ok(Json(ConnectionView::new(info)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// The authorization server's issuer (RFC 9207), checked when its metadata is known.
    pub iss: Option<String>,
}

/// The redirect URI registered with identity providers. It needs no Portico session: the
/// state alone names the sign-in, which may finish in another browser.
#[utoipa::path(get, path = "/oauth/callback", tag = "connections", params(CallbackQuery),
    responses(
        (status = 200, body = String, content_type = "text/html",
            description = "An HTML page: the connection is signed in, or the provider refused the sign-in"),
        (status = 303, description = "To the sign-in's returnUrl, with `status` `connected` or `error`"),
        (status = 400, body = String, content_type = "text/html",
            description = "An HTML page: the sign-in is unknown, was used or has expired, or the link is malformed"),
        (status = 502, body = Problem, content_type = PROBLEM,
            description = "The identity provider's token endpoint failed"),
        (status = 503, body = Problem, content_type = PROBLEM, description = "The store is unavailable; try again")))]
pub async fn oauth_callback(
    State(state): State<Arc<AppState>>,
    query: Result<axum::extract::Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(query)) = query else {
        return (StatusCode::BAD_REQUEST, Html(page("Sign-in failed", "The sign-in link is malformed.")))
            .into_response();
    };
    let outcome = state
        .app
        .oauth_callback(Callback {
            state: query.state.as_deref(),
            code: query.code.as_deref(),
            error: query.error.as_deref(),
            error_description: query.error_description.as_deref(),
            iss: query.iss.as_deref(),
        })
        .await;
    match outcome {
        Ok(CallbackOutcome::Connected { return_url: Some(url) }) => {
            Redirect::to(&with_param(&url, "status", "connected")).into_response()
        }
        Ok(CallbackOutcome::Connected { return_url: None }) => {
            Html(page("Connected", "The connection is signed in. You can close this window.")).into_response()
        }
        Ok(CallbackOutcome::Failed { return_url: Some(url), .. }) => {
            Redirect::to(&with_param(&url, "status", "error")).into_response()
        }
        Ok(CallbackOutcome::Failed { reason, return_url: None }) => {
            (StatusCode::OK, Html(page("Sign-in failed", &reason))).into_response()
        }
        Ok(CallbackOutcome::Refused) => (
            StatusCode::BAD_REQUEST,
            Html(page(
                "Sign-in link not valid",
                "This sign-in link is unknown, was already used, or has expired. Start the sign-in again.",
            )),
        )
            .into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.query_pairs_mut().append_pair(name, value);
            parsed.into()
        }
        Err(_) => url.to_owned(),
    }
}

/// A minimal page for the browser at the end of a sign-in.
fn page(title: &str, message: &str) -> String {
    let escape =
        |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>{t} — Portico</title></head><body style=\"font-family:system-ui,sans-serif;\
         max-width:36rem;margin:4rem auto;padding:0 1rem\"><h1>{t}</h1><p>{m}</p></body></html>",
        t = escape(title),
        m = escape(message)
    )
}

#[utoipa::path(get, path = "/v1/connections", tag = "connections", params(ListFilter, Paging),
    responses((status = 200, body = List<ConnectionView>), KeyRequired, Malformed,
        (status = 403, body = Problem, content_type = PROBLEM,
            description = "endUserId names another end user than a user key's")),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Query(filter): Query<ListFilter>,
    Query(paging): Query<Paging>,
) -> Result<Json<List<ConnectionView>>, ApiError> {
    let filter = ConnectionFilter { connector_id: filter.connector_id, end_user_id: filter.end_user_id };
    let page = state.app.list_connections(&principal, &filter, paging.after.as_deref(), paging.limit.get()).await?;
    Ok(Json(List { items: page.items.into_iter().map(ConnectionView::new).collect(), next: page.next }))
}

#[utoipa::path(get, path = "/v1/connections/{id}", tag = "connections", params(("id" = String, Path)),
    responses((status = 200, body = ConnectionView), KeyRequired, Malformed, NotFound), security(("apiKey" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(ConnectionView::new(state.app.connection(&principal, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/connections/{id}", tag = "connections", params(("id" = String, Path)),
    request_body = UpdateConnection,
    responses((status = 200, body = ConnectionView), KeyRequired, Forbidden, NotFound, JsonBody),
    security(("apiKey" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<UpdateConnection>,
) -> Result<Json<ConnectionView>, ApiError> {
    let changes = ConnectionChanges { display_name: body.display_name, parameters: body.parameters };
    Ok(Json(ConnectionView::new(state.app.update_connection(&principal, &id, changes).await?)))
}

#[utoipa::path(delete, path = "/v1/connections/{id}", tag = "connections", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), KeyRequired, Forbidden, Malformed, NotFound),
    security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.delete_connection(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
