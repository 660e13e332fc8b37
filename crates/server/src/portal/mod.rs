//! The web portal, served at `/` from the same binary: server-rendered HTML for connector
//! authors (connectors, their Security tab), users (connections, OAuth sign-in, sharing) and
//! admins (API keys, members). People sign in with an API key or, when a provider is
//! configured, with OpenID Connect.
//!
//! Pages are thin: every change goes through the use cases, which decide who may do what, so
//! the portal validates and permits nothing itself; the model's findings come back with the
//! paths that the forms map to their fields. What a role may not do is not offered (the use
//! cases' rules say so), and a hand-made form for it is refused by the use case. Forms work
//! without JavaScript; the small script only adds a copy button and a modal dialog. Secrets
//! (API keys, client secrets, connection secrets) are written into forms and never rendered
//! back; a new API key is shown once, on the page that answers its creation.

mod connections;
mod connectors;
mod keys;
pub(crate) mod layout;
mod members;
mod people;
mod security;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;
use layout::{Field, FormErrors, Kind, Section, Shell};
pub use session::Sessions;
use session::{CSRF_FIELD, SESSION_COOKIE, SIGN_IN_COOKIE, Signed};

const CSS: &str = include_str!("assets/portal.css");
const JS: &str = include_str!("assets/portal.js");

/// The portal's routes, merged into the server's router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(home))
        .route("/assets/portal.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/assets/portal.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .merge(people::routes())
        .merge(connectors::routes())
        .merge(connections::routes())
        .merge(keys::routes())
        .merge(members::routes())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
        .into_response()
}

async fn home(_signed: Signed) -> Redirect {
    Redirect::to("/connectors")
}

/// The fields of a submitted form, in order.
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, or empty.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default()
    }

    /// The first value of `name`, trimmed.
    pub fn trimmed(&self, name: &str) -> &str {
        self.text(name).trim()
    }

    /// Every value of `name` (ticked checkboxes), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// A form posted by a signed-in browser, its CSRF token checked: the extractor of every POST
/// but sign-in and the file import (which reads multipart itself).
pub struct Posted {
    pub signed: Signed,
    pub fields: Fields,
}

impl FromRequest<Arc<AppState>> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let fields = read_form(Request::from_parts(parts, body), state).await?;
        if !signed.csrf_matches(fields.get(CSRF_FIELD)) {
            return Err(csrf_refused(Some(&signed)));
        }
        Ok(Posted { signed, fields })
    }
}

async fn read_form(request: Request, state: &Arc<AppState>) -> Result<Fields, Response> {
    match axum::Form::<Vec<(String, String)>>::from_request(request, state).await {
        Ok(axum::Form(pairs)) => Ok(Fields(pairs)),
        Err(rejection) => Err(layout::problem_page(
            rejection.status(),
            None,
            "The form could not be read",
            "Send the form from its page in Portico.",
        )),
    }
}

/// The answer to a POST whose CSRF token is missing or wrong: nothing was changed.
fn csrf_refused(signed: Option<&Signed>) -> Response {
    tracing::info!("portal form refused: missing or wrong CSRF token");
    layout::problem_page(
        StatusCode::FORBIDDEN,
        signed,
        "This form was refused",
        "It was not sent from a Portico page of this session, or the page is too old. Nothing was changed: \
         go back, reload the page and try again.",
    )
}

/// An API error in words for a person. Never holds a secret: API errors do not.
pub fn describe(error: &ApiError) -> String {
    match error {
        ApiError::Unauthorized => "Your API key is no longer accepted: sign in again.".to_owned(),
        ApiError::UnknownToken => "This connect link is not known here; ask for a new one.".to_owned(),
        ApiError::NotFound(what) => format!("There is no such {what}."),
        ApiError::Invalid { detail, errors } if errors.is_empty() => detail.clone(),
        ApiError::Invalid { detail, errors } => {
            let each: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            format!("{detail} ({})", each.join("; "))
        }
        ApiError::Forbidden(d) => format!("You may not do that here: {}", sentence(d)),
        ApiError::BadRequest(d)
        | ApiError::Conflict(d)
        | ApiError::Gone(d)
        | ApiError::UnsupportedMediaType(d)
        | ApiError::NotImplemented(d)
        | ApiError::ConnectionNotReady(d)
        | ApiError::BackendNotAllowed(d)
        | ApiError::BadGateway(d)
        | ApiError::GatewayTimeout(d) => sentence(d),
        ApiError::PayloadTooLarge => "The upload is larger than this server accepts.".to_owned(),
        ApiError::RateLimited(_) => "The rate limit of calls is used up; wait a moment and try again.".to_owned(),
        ApiError::TooManyRequests(_) => {
            "Too many attempts with keys that are not valid came from your address; wait a moment and try again."
                .to_owned()
        }
        ApiError::MethodNotAllowed { .. } => "That action is not available here.".to_owned(),
        ApiError::Unavailable => "The store is unavailable right now; try again.".to_owned(),
        ApiError::Internal => "Something went wrong on the server; it has been logged.".to_owned(),
    }
}

/// `the connection is pending` → `The connection is pending.`
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A finding as a sentence beside its field: `tokenUrl 'x' is not …` → `'x' is not ….` (the
/// field's API name is what the label already says).
pub fn field_message(text: &str) -> String {
    let text = match text.split_once(' ') {
        Some((word, rest))
            if rest.starts_with('\'')
                && word.chars().all(|c| c.is_ascii_alphanumeric())
                && word.chars().skip(1).any(|c| c.is_ascii_uppercase()) =>
        {
            rest
        }
        _ => text,
    };
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.is_empty() && !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// Whether an error refuses the principal rather than its form: for the 403 page (or the
/// sign-in page), not beside a field.
pub fn refusal(error: &ApiError) -> bool {
    matches!(error, ApiError::Forbidden(_) | ApiError::Unauthorized)
}

/// Spreads an API error over a form: each finding beside the input `field_of` names for it,
/// the rest above the form.
pub fn spread<S: AsRef<str>>(error: &ApiError, field_of: impl Fn(&str) -> Option<S>) -> FormErrors {
    let mut errors = FormErrors::default();
    match error {
        ApiError::Invalid { detail, errors: found } => {
            for crate::error::ProblemField { field, message } in found {
                match field_of(field) {
                    Some(id) => errors.add(id.as_ref(), field_message(message)),
                    None => errors.general(format!("{field}: {message}")),
                }
            }
            if errors.is_empty() {
                errors.general(detail.clone());
            }
        }
        other => errors.general(describe(other)),
    }
    errors
}

/// A page for an API error that is not about a form's fields.
pub fn error_page(signed: &Signed, error: &ApiError) -> Response {
    match error {
        ApiError::NotFound(what) => layout::problem_page(
            StatusCode::NOT_FOUND,
            Some(signed),
            "Not found",
            &format!("There is no such {what}, or it belongs to another tenant."),
        ),
        ApiError::Unauthorized => Redirect::to("/sign-in").into_response(),
        ApiError::Forbidden(_) => {
            layout::problem_page(StatusCode::FORBIDDEN, Some(signed), "Not allowed", &describe(error))
        }
        ApiError::Internal | ApiError::Unavailable => layout::problem_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(signed),
            "Something went wrong",
            &describe(error),
        ),
        _ => layout::problem_page(StatusCode::BAD_REQUEST, Some(signed), "That did not work", &describe(error)),
    }
}

/// The page that refuses what the principal may not do, as the use case would refuse its form,
/// if it may not: pages that only lead to such a form ask first.
pub fn refused_page(signed: &Signed, action: portico_app::access::Action) -> Option<Response> {
    portico_app::access::require(&signed.principal, action).err().map(|error| error_page(signed, &error.into()))
}

/// A redirect after a form, with a message for the next page.
pub fn redirect_with(state: &AppState, signed: &Signed, to: &str, flash: session::Flash) -> Response {
    signed.set_flash(state, flash);
    Redirect::to(to).into_response()
}

/// `<public url><path>`.
pub fn public(state: &AppState, path: &str) -> String {
    format!("{}{path}", state.app.public_url.as_str().trim_end_matches('/'))
}

/// `?next=` of the sign-in page.
#[derive(Deserialize)]
struct SignInQuery {
    next: Option<String>,
}

async fn sign_in_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Response {
    let next = session::safe_next(query.next.as_deref());
    if let Some(id) = session::cookie(&headers, SESSION_COOKIE)
        && Signed::from_cookie(&state, id).await.is_some()
    {
        return Redirect::to(&next).into_response();
    }
    sign_in_form(&state, StatusCode::OK, &next, &FormErrors::default())
}

/// The sign-in form with a fresh CSRF token (cookie and hidden field), below the button that
/// signs people in with OpenID Connect when a provider is configured.
fn sign_in_form(state: &AppState, status: StatusCode, next: &str, errors: &FormErrors) -> Response {
    let token = portico_secrets::random_token();
    let provider = state.app.people_provider();
    let provider_href =
        format!("/sign-in/oidc?next={}", url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
    let shell = Shell { title: "Sign in", signed: None, section: Section::None, flash: None };
    let content = html! {
        div.panel.narrow.sign-in {
            h1 { "Sign in to Portico" }
            @if let Some(name) = provider {
                p.lead { "Members of a tenant sign in with their account at " (name) "." }
                div.actions.provider { a.button.primary.wide href=(provider_href) { "Sign in with " (name) } }
                p.divider { span { "or with an API key" } }
            }
            p.lead { "Use an API key of your tenant. The key of tenant " code { "default" } " is in "
                code { "portico-data/admin-api-key" } "; " code { "portico tenant key NAME" } " makes another." }
            form method="post" action="/sign-in" novalidate {
                input type="hidden" name=(CSRF_FIELD) value=(token.expose());
                input type="hidden" name="next" value=(next);
                (errors.summary())
                (Field::new("api_key", "API key").kind(Kind::Password).required(true).autocomplete("off")
                    .hint("It is checked once; the browser then keeps only a session cookie.")
                    .errors(errors.of("api_key")).render())
                div.actions { button.button.primary[provider.is_none()] type="submit" { "Sign in" } }
            }
        }
    };
    let mut response = layout::respond(status, layout::page(shell, content));
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(state, SIGN_IN_COOKIE, token.expose(), Some(std::time::Duration::from_secs(3600))),
    );
    response
}

/// A new session for `principal` (looked up in the key cache's `generation`), and on to `next`.
fn start_session(
    state: &AppState,
    principal: portico_app::Principal,
    proof: session::Proof,
    generation: u64,
    next: &str,
) -> Response {
    tracing::info!(tenant = %principal.tenant_id, principal = %principal.reference(), "portal sign-in");
    let id = state.portal.create(principal, proof, generation);
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(state, SESSION_COOKIE, id.expose(), Some(session::session_max_age())),
    );
    response
}

async fn sign_in(State(state): State<Arc<AppState>>, headers: HeaderMap, request: Request) -> Response {
    let source = request.extensions().get::<crate::state::ClientAddr>().map(|addr| addr.0);
    let fields = match read_form(request, &state).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let next = session::safe_next(fields.get("next"));
    let paired = match (session::cookie(&headers, SIGN_IN_COOKIE), fields.get(CSRF_FIELD)) {
        (Some(cookie), Some(field)) => portico_secrets::constant_time_eq(cookie.as_bytes(), field.as_bytes()),
        _ => false,
    };
    if !paired {
        return csrf_refused(None);
    }
    let mut errors = FormErrors::default();
    let key = fields.trimmed("api_key");
    if key.is_empty() {
        errors.add("api_key", "Enter an API key.");
        return sign_in_form(&state, StatusCode::UNPROCESSABLE_ENTITY, &next, &errors);
    }
    let generation = state.app.keys.generation();
    let principal = match state.app.authenticate(key, source).await {
        Ok(principal) => principal,
        Err(portico_app::Error::Unauthenticated) => {
            errors.add("api_key", "This API key is not valid.");
            return sign_in_form(&state, StatusCode::UNPROCESSABLE_ENTITY, &next, &errors);
        }
        Err(error @ portico_app::Error::TooManyRequests(_)) => {
            errors.add("api_key", describe(&error.into()));
            return sign_in_form(&state, StatusCode::TOO_MANY_REQUESTS, &next, &errors);
        }
        Err(error) => {
            errors.general(describe(&error.into()));
            return sign_in_form(&state, StatusCode::SERVICE_UNAVAILABLE, &next, &errors);
        }
    };
    let proof = session::Proof::Key(portico_secrets::api_key_digest(key));
    let mut response = start_session(&state, principal, proof, generation, &next);
    response.headers_mut().append(header::SET_COOKIE, session::clear_cookie(&state, SIGN_IN_COOKIE));
    response
}

async fn sign_out(State(state): State<Arc<AppState>>, posted: Posted) -> Response {
    posted.signed.sign_out(&state);
    let mut response = Redirect::to("/sign-in").into_response();
    response.headers_mut().append(header::SET_COOKIE, session::clear_cookie(&state, SESSION_COOKIE));
    response
}

/// `2026-11-28 03:06 UTC`.
pub fn when(millis: portico_store::Millis) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000) {
        Ok(t) => {
            format!("{}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
        }
        Err(_) => String::new(),
    }
}

/// The roles to choose from, each with what it may do.
pub fn role_options() -> Vec<(String, String)> {
    portico_model::Role::ALL
        .into_iter()
        .map(|role| {
            let words = match role {
                portico_model::Role::Admin => "Admin — everything in the tenant, API keys and members included",
                portico_model::Role::Author => "Author — connectors; sees connections, never uses them",
                portico_model::Role::User => "User — its own connections and those shared with it",
            };
            (role.as_str().to_owned(), words.to_owned())
        })
        .collect()
}

/// Who made a key or added a member, in words: the references records keep (`key:<id>`,
/// `member:<id>`, `operator`) named by the tenant's keys and members.
pub struct Makers(std::collections::HashMap<String, String>);

impl Makers {
    /// The tenant's keys (revoked ones too) and members, as far as an admin may list them; a
    /// maker not among them is named only by its kind ("a former member", "an API key").
    pub async fn of_tenant(state: &AppState, signed: &Signed) -> Makers {
        let mut names = std::collections::HashMap::new();
        let filter = portico_app::keys::KeyFilter { include_revoked: true };
        if let Ok(page) = state.app.list_keys(&signed.principal, filter, None, 500).await {
            for key in page.items {
                names.insert(format!("key:{}", key.id), format!("API key “{}”", key.name));
            }
        }
        if let Ok(page) = state.app.list_members(&signed.principal, None, 500).await {
            for member in page.items {
                names.insert(format!("member:{}", member.id), member.email);
            }
        }
        Makers(names)
    }

    pub fn name(&self, reference: Option<&str>) -> String {
        match reference {
            None => "—".to_owned(),
            Some("operator") => "the command line".to_owned(),
            Some(reference) => self.0.get(reference).cloned().unwrap_or_else(|| match reference.split_once(':') {
                Some(("member", _)) => "a former member".to_owned(),
                Some(("key", _)) => "an API key".to_owned(),
                _ => reference.to_owned(),
            }),
        }
    }
}
