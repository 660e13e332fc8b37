//! The hosted connect page: what an end user opens from a connect session's link. No sign-in:
//! the token in the path is the only credential, and every page asks the use cases with it.
//!
//! `/connect/{token}` lists the connectors the session offers (straight to the form when it
//! offers one); `/connect/{token}/{connectorId}` is that connector's connection form, the same
//! as the portal's "New connection" dialog (`crate::forms`), and makes the session's one
//! connection; `/connect/{token}/done` is where it ends (and where an OAuth 2.0 sign-in comes
//! back to): on to the app's `returnUrl`, or a page that says how it went, with "Try again"
//! (`/connect/{token}/retry`) after a sign-in that did not complete.
//!
//! The token is never written into a page's text or a log line; links to the page's own paths
//! hold it, and every answer here says `Referrer-Policy: no-referrer` so that it leaves with no
//! request to the identity provider or the app. No CSRF token: a forged form would have to know
//! the token, which is the credential itself.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use portico_app::connect::{ConnectOffer, SessionState};
use portico_app::connections::NewConnection;
use portico_model::ConnectionForm;
use portico_store::{ConnectSessionRecord, ConnectorRecord};

use crate::error::ApiError;
use crate::forms::{self, Typed};
use crate::portal::layout::{self, FormErrors};
use crate::portal::{describe, spread, when};
use crate::state::AppState;

const CSS: &str = include_str!("connect.css");
const STYLESHEET: &str = "/assets/connect.css";

/// Where a connect session's OAuth 2.0 sign-in comes back to: its page, which says how it went
/// or sends the browser on to the app's `returnUrl`.
pub fn done_url(state: &AppState, token: &str) -> String {
    format!("{}/connect/{token}/done", state.app.public_url.as_str().trim_end_matches('/'))
}

/// The hosted page's routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/connect/{token}", get(offer))
        .route("/connect/{token}/done", get(done))
        .route("/connect/{token}/retry", post(retry))
        .route("/connect/{token}/{connector_id}", get(connection_form).post(connect))
        .layer(axum::middleware::map_response(private))
        .route("/assets/connect.css", get(stylesheet))
}

/// Every answer of these pages, redirects included: the URL holds the credential, so the
/// browser keeps no copy and sends it to no one as a `Referer`.
async fn private(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        CSS,
    )
        .into_response()
}

/// `/connect/{token}`: the connectors offered, or straight to the only one's form.
async fn offer(State(state): State<Arc<AppState>>, Path(token): Path<String>) -> Response {
    let offer = match state.app.connect_offer(&token).await {
        Ok(offer) => offer,
        Err(error) => return refused(&state, &token, error.into()).await,
    };
    match offer.connectors.as_slice() {
        [] => message(
            StatusCode::OK,
            "Nothing to connect",
            html! {
                p { "This link offers no service to connect: they may have been removed since it was made." }
                p { "Ask " (app_name(&offer.session)) " for a new link." }
            },
        ),
        [(record, _)] => Redirect::to(&form_path(&token, record)).into_response(),
        connectors => page(
            StatusCode::OK,
            "Connect an account",
            html! {
                div.panel.narrow.connect {
                    h1 { "Connect an account" }
                    p.lead { "Choose the service to connect." }
                    ul.connectors {
                        @for (record, _) in connectors {
                            @let metadata = &record.connector.metadata;
                            li {
                                a href=(form_path(&token, record)) {
                                    (tile(record))
                                    span.text {
                                        span.name { (metadata.display_name) }
                                        @if let Some(description) = &metadata.description {
                                            span.description { (description) }
                                        }
                                    }
                                    span.go aria-hidden="true" { "→" }
                                }
                            }
                        }
                    }
                    (fine_print(&offer.session))
                }
            },
        ),
    }
}

/// `GET /connect/{token}/{connectorId}`: the connector's connection form.
async fn connection_form(
    State(state): State<Arc<AppState>>,
    Path((token, connector_id)): Path<(String, String)>,
) -> Response {
    let offer = match state.app.connect_offer(&token).await {
        Ok(offer) => offer,
        Err(error) => return refused(&state, &token, error.into()).await,
    };
    match offered(&offer, &connector_id) {
        Some((record, form)) => {
            let page = FormPage { state: &state, token: &token, offer: &offer, record, form };
            page.render(StatusCode::OK, &Typed::default(), &FormErrors::default())
        }
        None => not_offered(&token),
    }
}

/// `POST /connect/{token}/{connectorId}`: makes the session's connection; on to the identity
/// provider for an OAuth 2.0 sign-in, else to the end.
async fn connect(
    State(state): State<Arc<AppState>>,
    Path((token, connector_id)): Path<(String, String)>,
    submitted: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(fields)) = submitted else {
        return message(
            StatusCode::BAD_REQUEST,
            "The form could not be read",
            html! { p { "Send the form from its page." } },
        );
    };
    let offer = match state.app.connect_offer(&token).await {
        Ok(offer) => offer,
        Err(error) => return refused(&state, &token, error.into()).await,
    };
    let Some((record, form)) = offered(&offer, &connector_id) else { return not_offered(&token) };
    let submitted = forms::read(form, |name| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()));
    let new = NewConnection {
        connector_id: record.id.clone(),
        display_name: None,
        parameter_set: submitted.parameter_set,
        parameters: submitted.parameters,
        return_url: Some(done_url(&state, &token)),
        end_user_id: None,
    };
    match state.app.connect(&token, new).await.map_err(ApiError::from) {
        Ok((_, info)) => match info.authorize_url {
            Some(url) => Redirect::to(&url).into_response(),
            None => Redirect::to(&format!("/connect/{token}/done")).into_response(),
        },
        Err(error @ ApiError::Invalid { .. }) => {
            let errors = spread(&error, |at| forms::field_of(form, submitted.index, at));
            let page = FormPage { state: &state, token: &token, offer: &offer, record, form };
            page.render(StatusCode::UNPROCESSABLE_ENTITY, &submitted.typed, &errors)
        }
        Err(error) => refused(&state, &token, error).await,
    }
}

/// `/connect/{token}/done`: the end of the session, whether or not its sign-in completed (the
/// OAuth callback appends `status`; the session itself says how it went).
async fn done(State(state): State<Arc<AppState>>, Path(token): Path<String>) -> Response {
    let outcome = match state.app.connect_outcome(&token).await {
        Ok(outcome) => outcome,
        Err(error) => return refused(&state, &token, error.into()).await,
    };
    let session = &outcome.session;
    match outcome.state.clone() {
        SessionState::Completed { connection_id } => {
            match session.return_url.as_deref().and_then(|url| back_to_app(url, &connection_id, "connected")) {
                Some(url) => Redirect::to(&url).into_response(),
                None => message(
                    StatusCode::OK,
                    "Account connected",
                    html! {
                        p.outcome.outcome-ok role="status" { "Connected. You can close this window." }
                        p {
                            "Your " @if let Some(name) = &outcome.connector_name { strong { (name) } " " } "account is connected, and "
                            (app_name(session)) " can now use it for you."
                        }
                    },
                ),
            }
        }
        SessionState::Expired => expired(session),
        SessionState::Pending => match &session.connection_id {
            Some(connection_id) => {
                let reason = outcome.connection.as_ref().and_then(|(_, reason)| reason.as_deref());
                not_completed(&token, session, connection_id, reason)
            }
            None => Redirect::to(&format!("/connect/{token}")).into_response(),
        },
    }
}

/// `POST /connect/{token}/retry`: the sign-in of the session's connection, again.
async fn retry(State(state): State<Arc<AppState>>, Path(token): Path<String>) -> Response {
    match state.app.connect_retry(&token, Some(&done_url(&state, &token))).await.map_err(ApiError::from) {
        Ok(info) => match info.authorize_url {
            Some(url) => Redirect::to(&url).into_response(),
            None => Redirect::to(&format!("/connect/{token}/done")).into_response(),
        },
        // No connection yet: nothing to sign in again, the form is still to fill in.
        Err(ApiError::Conflict(_)) => Redirect::to(&format!("/connect/{token}")).into_response(),
        Err(error) => refused(&state, &token, error).await,
    }
}

/// The connector `id` among those the session offers, with its form.
fn offered<'a>(offer: &'a ConnectOffer, id: &str) -> Option<(&'a ConnectorRecord, &'a ConnectionForm)> {
    offer.connectors.iter().find(|(record, _)| record.id == id).map(|(record, form)| (record, form))
}

fn form_path(token: &str, record: &ConnectorRecord) -> String {
    format!("/connect/{token}/{}", record.id)
}

/// A connector's connection form, as typed so far.
struct FormPage<'a> {
    state: &'a AppState,
    token: &'a str,
    offer: &'a ConnectOffer,
    record: &'a ConnectorRecord,
    form: &'a ConnectionForm,
}

impl FormPage<'_> {
    fn render(&self, status: StatusCode, typed: &Typed, errors: &FormErrors) -> Response {
        let metadata = &self.record.connector.metadata;
        let catalog = &self.state.app.catalog;
        let submit = match forms::single_oauth(self.form) {
            Some(oauth) => format!("Sign in with {}", forms::provider_name(catalog, oauth)),
            None => "Connect".to_owned(),
        };
        let title = format!("Connect {}", metadata.display_name);
        let content = html! {
            div.panel.narrow.connect {
                @if self.offer.connectors.len() > 1 {
                    p.back { a href={ "/connect/" (self.token) } { "← All services" } }
                }
                div.connect-head {
                    (tile(self.record))
                    div {
                        h1 { (title) }
                        @if let Some(description) = &metadata.description { p.lead { (description) } }
                    }
                }
                form.connection-form method="post" action=(form_path(self.token, self.record)) novalidate {
                    (errors.summary())
                    (forms::parameter_sets(catalog, self.form, typed, errors))
                    div.actions { button.button.primary.wide type="submit" { (submit) } }
                }
                (fine_print(&self.offer.session))
            }
        };
        page(status, &title, content)
    }
}

/// What the link is worth, below its forms.
fn fine_print(session: &ConnectSessionRecord) -> Markup {
    html! {
        p.fine-print {
            "This link connects one account, once, until " (when(session.expires_at))
            ". What you type is sent to Portico, which keeps secrets sealed and never shows them again."
        }
    }
}

/// The app that made the session, as far as the page can name it: the host of its `returnUrl`.
/// The app, as its session names it; else by its return address's host.
fn app_name(session: &ConnectSessionRecord) -> String {
    session
        .app_name
        .clone()
        .or_else(|| {
            let url = url::Url::parse(session.return_url.as_deref()?).ok()?;
            url.host_str().map(str::to_owned)
        })
        .unwrap_or_else(|| "the app that sent you the link".to_owned())
}

/// `returnUrl` with `connectionId` and `status` appended.
fn back_to_app(return_url: &str, connection_id: &str, status: &str) -> Option<String> {
    let mut url = url::Url::parse(return_url).ok()?;
    url.query_pairs_mut().append_pair("connectionId", connection_id).append_pair("status", status);
    Some(url.into())
}

/// The answer to a use case's refusal: a page that says what became of the link.
async fn refused(state: &AppState, token: &str, error: ApiError) -> Response {
    match error {
        ApiError::UnknownToken | ApiError::Unauthorized => message(
            StatusCode::UNAUTHORIZED,
            "This link is not valid",
            html! {
                p { "Portico does not know this link. Check that you opened all of it, or ask the app that sent it for a new one." }
            },
        ),
        ApiError::Gone(_) => match state.app.connect_outcome(token).await {
            Ok(outcome) => match &outcome.state {
                SessionState::Expired => expired(&outcome.session),
                SessionState::Pending => match &outcome.session.connection_id {
                    Some(connection_id) => {
                        let reason = outcome.connection.as_ref().and_then(|(_, reason)| reason.as_deref());
                        not_completed(token, &outcome.session, connection_id, reason)
                    }
                    None => used(&outcome.session),
                },
                SessionState::Completed { .. } => used(&outcome.session),
            },
            Err(_) => message(
                StatusCode::GONE,
                "This link can no longer be used",
                html! { p { "Ask the app that sent it for a new one." } },
            ),
        },
        ApiError::NotFound(_) | ApiError::Forbidden(_) => not_offered(token),
        ApiError::Internal | ApiError::Unavailable => message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Something went wrong",
            html! { p { (describe(&error)) } p { "Nothing was connected. Try again in a moment." } },
        ),
        other => message(StatusCode::BAD_REQUEST, "That did not work", html! { p { (describe(&other)) } }),
    }
}

fn used(session: &ConnectSessionRecord) -> Response {
    message(
        StatusCode::GONE,
        "This link was already used",
        html! {
            p { "This link was already used to connect an account. Each link connects one account only." }
            p { "To connect another account, ask " (app_name(session)) " for a new link." }
        },
    )
}

fn expired(session: &ConnectSessionRecord) -> Response {
    message(
        StatusCode::GONE,
        "This link has expired",
        html! { p { "This link has expired; ask " (app_name(session)) " for a new one." } },
    )
}

/// A sign-in that did not complete (refused, cancelled, or left): "Try again" while the link
/// lasts, or back to the app, which is told.
fn not_completed(token: &str, session: &ConnectSessionRecord, connection_id: &str, reason: Option<&str>) -> Response {
    let back = session.return_url.as_deref().and_then(|url| back_to_app(url, connection_id, "error"));
    message(
        StatusCode::OK,
        "The sign-in did not complete",
        html! {
            p.outcome.outcome-bad role="alert" { "The sign-in did not complete, so no account is connected yet." }
            @match reason {
                Some(reason) => p { "What happened: " (reason) }
                None => p { "You may have cancelled it, or the sign-in service refused it." }
            }
            p { "You can try again until " (when(session.expires_at)) "." }
            form method="post" action={ "/connect/" (token) "/retry" } {
                div.actions {
                    button.button.primary type="submit" { "Try again" }
                    @if let Some(back) = back { a.button href=(back) { "Back to " (app_name(session)) } }
                }
            }
        },
    )
}

fn not_offered(token: &str) -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Not found",
        html! {
            p { "This link does not offer that service." }
            p { a href={ "/connect/" (token) } { "See what it offers" } }
        },
    )
}

/// A page with a heading and a few words.
fn message(status: StatusCode, title: &str, body: Markup) -> Response {
    page(status, title, html! { div.panel.narrow.connect { h1 { (title) } (body) } })
}

fn page(status: StatusCode, title: &str, content: Markup) -> Response {
    layout::respond(status, layout::standalone_page(title, Some(STYLESHEET), content))
}

/// A connector's tile: its brand colour (a neutral grey without one) and its initial, as an
/// image (the page's policy allows no inline style).
fn tile(record: &ConnectorRecord) -> Markup {
    let metadata = &record.connector.metadata;
    let color = metadata.brand_color.as_deref().filter(|c| is_hex_color(c)).unwrap_or("#57606a");
    let initial: String = metadata
        .display_name
        .chars()
        .find(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .collect();
    let ink = if light(color) { "#1b1f24" } else { "#ffffff" };
    let svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='48' height='48' viewBox='0 0 48 48'>\
         <rect width='48' height='48' rx='10' fill='{color}'/>\
         <text x='24' y='32' text-anchor='middle' font-family='system-ui,sans-serif' font-size='22' \
         font-weight='700' fill='{ink}'>{initial}</text></svg>"
    );
    let src = format!(
        "data:image/svg+xml,{}",
        percent_encoding::utf8_percent_encode(&svg, percent_encoding::NON_ALPHANUMERIC)
    );
    html! { img.tile src=(src) alt="" width="48" height="48"; }
}

/// `#rrggbb`.
fn is_hex_color(text: &str) -> bool {
    text.len() == 7 && text.starts_with('#') && text[1..].chars().all(|c| c.is_ascii_hexdigit())
}

/// Whether dark ink reads better than white on `#rrggbb` (its relative luminance, roughly).
fn light(color: &str) -> bool {
    let channel = |i: usize| u8::from_str_radix(&color[i..i + 2], 16).map_or(0.0, |v| f64::from(v) / 255.0);
    0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5) > 0.6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_is_told_the_connection_and_how_it_went() {
        assert_eq!(
            back_to_app("https://app.example/done?x=1", "c1", "connected").as_deref(),
            Some("https://app.example/done?x=1&connectionId=c1&status=connected")
        );
        assert_eq!(back_to_app("not a url", "c1", "error"), None);
    }

    #[test]
    fn only_well_formed_colours_reach_the_tile() {
        assert!(is_hex_color("#007ee5"));
        for bad in ["007ee5", "#007ee", "#00'ee5", "red", "#007ee5'/>"] {
            assert!(!is_hex_color(bad), "{bad}");
        }
        assert!(light("#ffffff") && !light("#007ee5") && !light("#000000"));
    }
}
