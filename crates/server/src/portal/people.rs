//! People signing in with OpenID Connect, when a provider is configured:
//!
//! ```text
//! GET  /sign-in/oidc?next=…       the use case's authorization URL; the flow kept here
//! GET  /sign-in/oidc/callback     the provider's answer → who it is → their tenants:
//!                                 none: 403; one: a session; several: ↓
//! GET  /sign-in/oidc/tenant       the tenants to choose from
//! POST /sign-in/oidc/tenant       the chosen one → a session
//! ```
//!
//! What a flow needs between its steps (the use case's `Pending`: state, nonce, PKCE verifier)
//! stays in this process's memory, keyed by the SHA-256 of a random value in an HttpOnly,
//! SameSite=Lax cookie for `/sign-in` only: neither the cookie nor a page holds any of it. A
//! flow is taken once, expires with the use case's sign-in, and there are at most
//! [`MAX_FLOWS`] (the oldest go first). The use cases check everything the provider says; this
//! module only carries it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::html;
use portico_app::members::Membership;
use portico_app::people::{CallbackParams, Pending};
use portico_secrets::SecretString;
use serde::Deserialize;

use super::layout::{self, Section, Shell};
use super::session::{self, CSRF_FIELD, Proof};
use super::{SignInQuery, csrf_refused, read_form, sentence, start_session};
use crate::state::AppState;

/// The cookie that names a browser's flow.
pub const FLOW_COOKIE: &str = "portico_oidc";
/// The flow cookie is sent to these pages only.
const FLOW_PATH: &str = "/sign-in";
/// How long a step of a flow is kept: as long as the use case accepts the sign-in.
const FLOW_LIFETIME: Duration = portico_app::people::SIGN_IN_LIFETIME;
/// Flows kept at most; a new one beyond pushes the oldest out.
pub const MAX_FLOWS: usize = 1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/sign-in/oidc", get(start))
        .route("/sign-in/oidc/callback", get(callback))
        .route("/sign-in/oidc/tenant", get(choose_page).post(choose))
}

/// Where a flow stands.
pub enum Step<P> {
    /// The browser is at the provider; `pending` is what the use case needs back.
    AtProvider { pending: P, next: String },
    /// Signed in as a member of several tenants: one is to be chosen.
    Choosing(Choice),
}

/// A person choosing among their tenants.
#[derive(Clone)]
pub struct Choice {
    pub email: String,
    pub memberships: Vec<Membership>,
    pub next: String,
    /// The chooser form's token, paired with the flow cookie.
    pub csrf: String,
}

/// The flows under way, by the SHA-256 of their cookie's value.
pub struct Flows<P> {
    by_digest: Mutex<ByDigest<P>>,
    bound: usize,
}

type ByDigest<P> = HashMap<[u8; 32], Kept<P>>;

/// A flow's step, and when it began.
struct Kept<P> {
    begun: Instant,
    step: Step<P>,
}

impl<P> Default for Flows<P> {
    fn default() -> Self {
        Flows::with_bound(MAX_FLOWS)
    }
}

impl<P> Flows<P> {
    pub fn with_bound(bound: usize) -> Self {
        Flows { by_digest: Mutex::new(HashMap::new()), bound: bound.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ByDigest<P>> {
        self.by_digest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `step` as a new flow begun at `now`: the value of the cookie that names it.
    pub fn begin(&self, step: Step<P>, now: Instant) -> SecretString {
        let value = portico_secrets::random_token();
        let mut map = self.lock();
        map.retain(|_, kept| live(kept.begun, now));
        while map.len() >= self.bound {
            let Some(oldest) = map.iter().min_by_key(|(_, kept)| kept.begun).map(|(digest, _)| *digest) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(portico_secrets::api_key_digest(value.expose()), Kept { begun: now, step });
        value
    }

    /// The flow `cookie` names, taken: a second call finds nothing. Nothing either when it
    /// has expired.
    pub fn take(&self, cookie: &str, now: Instant) -> Option<Step<P>> {
        let kept = self.lock().remove(&portico_secrets::api_key_digest(cookie))?;
        live(kept.begun, now).then_some(kept.step)
    }

    /// The choice of tenants `cookie` names, left in place.
    pub fn choice(&self, cookie: &str, now: Instant) -> Option<Choice> {
        match self.lock().get(&portico_secrets::api_key_digest(cookie)) {
            Some(Kept { begun, step: Step::Choosing(choice) }) if live(*begun, now) => Some(choice.clone()),
            _ => None,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

fn live(begun: Instant, now: Instant) -> bool {
    now.saturating_duration_since(begun) < FLOW_LIFETIME
}

/// The flows of people signing in.
pub type PersonFlows = Flows<Pending>;

fn flow_cookie(state: &AppState, value: &str) -> HeaderValue {
    session::set_cookie_at(state, FLOW_COOKIE, value, FLOW_PATH, Some(FLOW_LIFETIME))
}

fn clear_flow_cookie(state: &AppState) -> HeaderValue {
    session::set_cookie_at(state, FLOW_COOKIE, "", FLOW_PATH, Some(Duration::ZERO))
}

/// `response`, with the flow cookie removed.
fn ending_flow(state: &AppState, mut response: Response) -> Response {
    response.headers_mut().append(header::SET_COOKIE, clear_flow_cookie(state));
    response
}

/// A page about a sign-in that did not work, with the way back to the sign-in page.
fn problem(status: StatusCode, title: &str, message: &str, back: &str) -> Response {
    let shell = Shell { title, signed: None, section: Section::None, flash: None };
    let content = html! {
        div.panel.narrow.sign-in {
            h1 { (title) }
            p { (message) }
            div.actions { a.button.primary href="/sign-in" { (back) } }
        }
    };
    layout::respond(status, layout::page(shell, content))
}

/// A flow that is not (or no longer) known here.
fn unknown_flow() -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "This sign-in cannot be finished",
        "It was finished already, took longer than 10 minutes, or began in another browser. Nothing was signed \
         in: start again.",
        "Sign in again",
    )
}

/// A use case's refusal of a sign-in, in words; never a secret or a code (its errors hold none).
fn refused(error: portico_app::Error) -> Response {
    use portico_app::Error;
    match error {
        Error::Forbidden(reason) => {
            problem(StatusCode::FORBIDDEN, "The sign-in was refused", &sentence(&reason), "Sign in again")
        }
        Error::BadRequest(reason) | Error::Invalid { detail: reason, .. } => {
            problem(StatusCode::BAD_REQUEST, "The sign-in did not work", &sentence(&reason), "Sign in again")
        }
        Error::BadGateway(reason) | Error::GatewayTimeout(reason) => problem(
            StatusCode::BAD_GATEWAY,
            "The sign-in provider cannot be used right now",
            &sentence(&reason),
            "Back to sign-in",
        ),
        Error::NotFound(_) => not_configured(),
        Error::Unauthenticated => problem(
            StatusCode::FORBIDDEN,
            "The sign-in was refused",
            "This membership has just been removed; ask an administrator to add you again.",
            "Back to sign-in",
        ),
        Error::Unavailable => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "The store is unavailable",
            "Nothing was signed in; try again in a moment.",
            "Back to sign-in",
        ),
        _ => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Nothing was signed in; it has been logged.",
            "Back to sign-in",
        ),
    }
}

fn not_configured() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Sign-in with OpenID Connect is not configured",
        "This Portico signs people in with API keys only.",
        "Sign in with an API key",
    )
}

/// `GET /sign-in/oidc?next=…`: off to the provider.
async fn start(State(state): State<Arc<AppState>>, query: Result<Query<SignInQuery>, QueryRejection>) -> Response {
    let next = query.ok().and_then(|Query(q)| q.next);
    let next = session::safe_next(next.as_deref());
    if state.app.people_provider().is_none() {
        return not_configured();
    }
    match state.app.start_person_sign_in().await {
        Ok((authorize_url, pending)) => {
            let step = Step::AtProvider { pending, next };
            let value = state.portal.people.begin(step, Instant::now());
            let mut response = Redirect::to(authorize_url.as_str()).into_response();
            response.headers_mut().append(header::SET_COOKIE, flow_cookie(&state, value.expose()));
            response
        }
        Err(error) => refused(error),
    }
}

/// The callback's query, as the provider sent it.
#[derive(Deserialize, Default)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /sign-in/oidc/callback`: the provider's answer.
async fn callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let flow = session::cookie(&headers, FLOW_COOKIE).and_then(|value| state.portal.people.take(value, Instant::now()));
    let Some(Step::AtProvider { pending, next }) = flow else {
        return ending_flow(&state, unknown_flow());
    };
    let Ok(Query(query)) = query else {
        return ending_flow(
            &state,
            problem(
                StatusCode::BAD_REQUEST,
                "The sign-in did not work",
                "The sign-in provider's answer could not be read.",
                "Sign in again",
            ),
        );
    };
    // Read before the members are: a change meanwhile makes the session look them up again.
    let generation = state.app.keys.generation();
    let params = CallbackParams {
        code: query.code.as_deref(),
        state: query.state.as_deref(),
        iss: query.iss.as_deref(),
        error: query.error.as_deref(),
        error_description: query.error_description.as_deref(),
    };
    let person = match state.app.finish_person_sign_in(pending, params).await {
        Ok(person) => person,
        Err(error) => return ending_flow(&state, refused(error)),
    };
    match person.memberships.as_slice() {
        [] => ending_flow(&state, not_a_member(&person.email)),
        [membership] => {
            let principal = portico_app::members::person(&membership.member);
            let proof = proof_of(membership);
            ending_flow(&state, start_session(&state, principal, proof, generation, &next))
        }
        _ => {
            let csrf = portico_secrets::random_token().expose().to_owned();
            let choice = Choice { email: person.email, memberships: person.memberships, next, csrf };
            let value = state.portal.people.begin(Step::Choosing(choice), Instant::now());
            let mut response = Redirect::to("/sign-in/oidc/tenant").into_response();
            response.headers_mut().append(header::SET_COOKIE, flow_cookie(&state, value.expose()));
            response
        }
    }
}

fn proof_of(membership: &Membership) -> Proof {
    Proof::Person { tenant_id: membership.member.tenant_id.clone(), member_id: membership.member.id.clone() }
}

/// The page of someone the provider knows and no tenant has let in.
fn not_a_member(email: &str) -> Response {
    tracing::info!("a person signed in with OpenID Connect is a member of no tenant");
    problem(
        StatusCode::FORBIDDEN,
        "Not a member",
        &format!("{email} is not a member of any tenant here; ask an administrator to add you."),
        "Sign in with an API key",
    )
}

/// `GET /sign-in/oidc/tenant`: which tenant to sign in to.
async fn choose_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let choice =
        session::cookie(&headers, FLOW_COOKIE).and_then(|value| state.portal.people.choice(value, Instant::now()));
    let Some(choice) = choice else { return ending_flow(&state, unknown_flow()) };
    let shell = Shell { title: "Choose a tenant", signed: None, section: Section::None, flash: None };
    let content = html! {
        div.panel.narrow.sign-in {
            h1 { "Choose a tenant" }
            p.lead { "You are signed in as " strong { (choice.email) } ", a member of several tenants. Which one do you want to work in?" }
            form.tenant-choice method="post" action="/sign-in/oidc/tenant" {
                input type="hidden" name=(CSRF_FIELD) value=(choice.csrf);
                ul.choices {
                    @for membership in &choice.memberships {
                        li {
                            button.button.choice type="submit" name="tenant" value=(membership.tenant.id) {
                                span.strong { (membership.tenant.name) }
                                " "
                                span.muted { "as " (membership.member.role) }
                            }
                        }
                    }
                }
            }
            p { a href="/sign-in" { "Cancel" } }
        }
    };
    layout::ok(layout::page(shell, content))
}

/// `POST /sign-in/oidc/tenant`: the chosen tenant's session.
async fn choose(State(state): State<Arc<AppState>>, headers: HeaderMap, request: Request) -> Response {
    let fields = match read_form(request, &state).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let flow = session::cookie(&headers, FLOW_COOKIE).and_then(|value| state.portal.people.take(value, Instant::now()));
    let Some(Step::Choosing(choice)) = flow else { return ending_flow(&state, unknown_flow()) };
    let paired = fields
        .get(CSRF_FIELD)
        .is_some_and(|given| portico_secrets::constant_time_eq(given.as_bytes(), choice.csrf.as_bytes()));
    if !paired {
        return ending_flow(&state, csrf_refused(None));
    }
    let chosen = fields.get("tenant").and_then(|id| choice.memberships.iter().find(|m| m.tenant.id == id));
    let Some(membership) = chosen else {
        return ending_flow(
            &state,
            problem(
                StatusCode::BAD_REQUEST,
                "No such tenant",
                "Choose one of the tenants the page offers. Nothing was signed in: start again.",
                "Sign in again",
            ),
        );
    };
    let generation = state.app.keys.generation();
    // The member as it is now: removed or changed while the page was open.
    let member = &membership.member;
    match state.app.authenticate_member(&member.tenant_id, &member.id).await {
        Ok(principal) => {
            ending_flow(&state, start_session(&state, principal, proof_of(membership), generation, &choice.next))
        }
        Err(error) => ending_flow(&state, refused(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_provider(n: u32) -> Step<u32> {
        Step::AtProvider { pending: n, next: "/".to_owned() }
    }

    fn pending_of(step: Option<Step<u32>>) -> Option<u32> {
        match step? {
            Step::AtProvider { pending, .. } => Some(pending),
            Step::Choosing(_) => None,
        }
    }

    #[test]
    fn a_flow_is_taken_once_and_by_its_cookie_only() {
        let flows = Flows::default();
        let now = Instant::now();
        let cookie = flows.begin(at_provider(7), now);
        assert_eq!(pending_of(flows.take("not-the-cookie", now)), None);
        assert_eq!(pending_of(flows.take(cookie.expose(), now)), Some(7));
        assert_eq!(pending_of(flows.take(cookie.expose(), now)), None, "single use");
        // Kept by a digest: the cookie's value is not in the map.
        let second = flows.begin(at_provider(8), now);
        assert!(!flows.lock().contains_key(second.expose().as_bytes()));
    }

    #[test]
    fn a_flow_expires_with_the_sign_in() {
        let flows = Flows::default();
        let now = Instant::now();
        let cookie = flows.begin(at_provider(1), now);
        assert_eq!(pending_of(flows.take(cookie.expose(), now + FLOW_LIFETIME)), None);
        let cookie = flows.begin(at_provider(2), now);
        assert_eq!(pending_of(flows.take(cookie.expose(), now + FLOW_LIFETIME - Duration::from_secs(1))), Some(2));
        // Expired flows are dropped when a new one begins.
        flows.begin(at_provider(3), now);
        flows.begin(at_provider(4), now + FLOW_LIFETIME + Duration::from_secs(1));
        assert_eq!(flows.len(), 1);
    }

    #[test]
    fn flows_are_bounded_and_the_oldest_go_first() {
        let flows = Flows::with_bound(3);
        let now = Instant::now();
        let cookies: Vec<SecretString> =
            (0..5).map(|n| flows.begin(at_provider(n), now + Duration::from_secs(u64::from(n)))).collect();
        assert_eq!(flows.len(), 3);
        assert_eq!(pending_of(flows.take(cookies[0].expose(), now)), None);
        assert_eq!(pending_of(flows.take(cookies[1].expose(), now)), None);
        assert_eq!(pending_of(flows.take(cookies[4].expose(), now)), Some(4));
    }

    #[test]
    fn a_choice_is_seen_until_it_is_taken() {
        let flows: Flows<u32> = Flows::default();
        let now = Instant::now();
        let choice = Choice { email: "ann@x.org".into(), memberships: vec![], next: "/".into(), csrf: "t".into() };
        let cookie = flows.begin(Step::Choosing(choice), now);
        assert_eq!(flows.choice(cookie.expose(), now).map(|c| c.email).as_deref(), Some("ann@x.org"));
        assert!(flows.choice(cookie.expose(), now).is_some(), "looking leaves it");
        assert!(flows.choice(cookie.expose(), now + FLOW_LIFETIME).is_none());
        assert!(matches!(flows.take(cookie.expose(), now), Some(Step::Choosing(_))));
        assert!(flows.choice(cookie.expose(), now).is_none());
        // A flow at the provider is no choice.
        let cookie = flows.begin(at_provider(1), now);
        assert!(flows.choice(cookie.expose(), now).is_none());
    }
}
