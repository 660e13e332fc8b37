//! Members, for admins: the people of the tenant by e-mail address and role — added, their
//! role changed, removed (with a confirmation) — and how they sign in.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use portico_model::Role;
use portico_store::{MemberRecord, Page};

use super::connectors::{After, PAGE};
use super::layout::{self, Confirm, Field, FormErrors, Kind, Section, Shell, csrf_input};
use super::session::{Flash, Signed};
use super::{Makers, Posted, error_page, public, redirect_with, refusal, role_options, spread, when};
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/members", get(list).post(add))
        .route("/members/{id}/role", post(change_role))
        .route("/members/{id}/remove", get(remove_dialog).post(remove))
}

/// The "Add a member" form as typed.
struct Typed {
    email: String,
    role: String,
}

impl Default for Typed {
    fn default() -> Self {
        Typed { email: String::new(), role: Role::User.as_str().to_owned() }
    }
}

async fn list(State(state): State<Arc<AppState>>, signed: Signed, Query(after): Query<After>) -> Response {
    members_page(&state, &signed, after.after.as_deref(), StatusCode::OK, &Typed::default(), &FormErrors::default())
        .await
}

async fn members_page(
    state: &AppState,
    signed: &Signed,
    after: Option<&str>,
    status: StatusCode,
    typed: &Typed,
    errors: &FormErrors,
) -> Response {
    let page: Page<MemberRecord> = match state.app.list_members(&signed.principal, after, PAGE).await {
        Ok(page) => page,
        Err(error) => return error_page(signed, &error.into()),
    };
    let makers = Makers::of_tenant(state, signed).await;
    let me = match &signed.principal.actor {
        portico_app::Actor::Person { member_id, .. } => Some(&**member_id),
        _ => None,
    };
    let shell = Shell::new("Members", signed, Section::Members).with_flash(signed.take_flash(state));
    let content = html! {
        div.page-head {
            div {
                h1 { "Members" }
                p.lead { "The people of this tenant. Each acts as the end user named by their e-mail address: the connections they make are owned by it." }
            }
        }
        div.columns {
            section.panel aria-labelledby="add-title" {
                h2 #add-title { "Add a member" }
                form method="post" action="/members" novalidate {
                    (csrf_input(signed))
                    (errors.summary())
                    (Field::new("email", "E-mail address").kind(Kind::Email).value(&typed.email).required(true)
                        .autocomplete("off").hint("The address their identity provider confirms.")
                        .errors(errors.of("email")).render())
                    (layout::select("role", "Role", &role_options(), &typed.role, None, errors.of("role")))
                    div.actions { button.button.primary type="submit" { "Add member" } }
                }
            }
            (how_members_sign_in(state))
        }
        @if page.items.is_empty() {
            div.empty { p { "No members yet: people sign in with API keys only." } }
        } @else {
            table.list {
                caption.visually-hidden { "Members" }
                thead { tr {
                    th scope="col" { "E-mail" } th scope="col" { "Role" } th scope="col" { "Added" }
                    th scope="col" { "Added by" } th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for member in &page.items {
                        tr {
                            td data-label="E-mail" {
                                span.strong.wrap { (member.email) }
                                @if me == Some(member.id.as_str()) { " " span.tag { "you" } }
                            }
                            td data-label="Role" { (role_form(signed, member)) }
                            td data-label="Added" { (when(member.created_at)) }
                            td data-label="Added by" { (makers.name(member.created_by.as_deref())) }
                            td data-label="Actions" {
                                a.button.danger.small href={ "/members/" (member.id) "/remove" } { "Remove…" }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &page.next {
                p.more { a href={ "/members?after=" (next) } { "Next page" } }
            }
        }
    };
    layout::respond(status, layout::page(shell, content))
}

/// A member's role, changed in place.
fn role_form(signed: &Signed, member: &MemberRecord) -> Markup {
    let id = format!("role-{}", member.id);
    html! {
        form.inline-form method="post" action={ "/members/" (member.id) "/role" } {
            (csrf_input(signed))
            label.visually-hidden for=(id) { "Role of " (member.email) }
            select id=(id) name="role" {
                @for role in Role::ALL {
                    option value=(role.as_str()) selected[role == member.role] { (role) }
                }
            }
            button.button.small type="submit" { "Change role" }
        }
    }
}

/// How members sign in here: with the configured provider, or not yet.
fn how_members_sign_in(state: &AppState) -> Markup {
    html! {
        section.panel aria-labelledby="how-title" {
            h2 #how-title { "How members sign in" }
            @match state.app.people_provider() {
                Some(name) => {
                    p { "With " strong { (name) } ": the sign-in page offers “Sign in with " (name) "”. Portico lets in whoever the provider confirms with a member's address, in that member's role." }
                    @if let Some(callback) = state.app.people_redirect_uri() {
                        p.muted { "The provider sends them back to " code.wrap { (callback.as_str()) } "." }
                    }
                }
                None => {
                    p { "Sign-in with OpenID Connect is " strong { "not configured" } ": members cannot sign in yet, only API keys can." }
                    p.muted {
                        "Start Portico with " code { "--oidc-issuer URL --oidc-client-id ID --oidc-client-secret SECRET" }
                        " (and " code { "--oidc-name NAME" } " for the button), and register "
                        code.wrap { (public(state, "/sign-in/oidc/callback")) } " at the provider."
                    }
                }
            }
        }
    }
}

async fn add(State(state): State<Arc<AppState>>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let typed = Typed { email: fields.trimmed("email").to_owned(), role: fields.trimmed("role").to_owned() };
    let mut errors = FormErrors::default();
    let Some(role) = Role::parse(&typed.role) else {
        errors.add("role", "Choose admin, author or user.");
        return members_page(&state, &signed, None, StatusCode::UNPROCESSABLE_ENTITY, &typed, &errors).await;
    };
    match state.app.add_member(&signed.principal, &typed.email, role).await.map_err(ApiError::from) {
        Ok(member) => redirect_with(
            &state,
            &signed,
            "/members",
            Flash::success(format!("{} is a member, as {}.", member.email, member.role)),
        ),
        Err(error) if refusal(&error) => error_page(&signed, &error),
        Err(error) => {
            let errors = match &error {
                ApiError::Conflict(message) => {
                    let mut errors = FormErrors::default();
                    errors.add("email", super::sentence(message));
                    errors
                }
                other => spread(other, |at| ["email", "role"].into_iter().find(|field| *field == at)),
            };
            members_page(&state, &signed, None, StatusCode::UNPROCESSABLE_ENTITY, &typed, &errors).await
        }
    }
}

async fn change_role(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let Some(role) = Role::parse(fields.trimmed("role")) else {
        return redirect_with(&state, &signed, "/members", Flash::error("Choose admin, author or user."));
    };
    match state.app.change_member_role(&signed.principal, &id, role).await {
        Ok(member) => redirect_with(
            &state,
            &signed,
            "/members",
            Flash::success(format!("{} is now {} {}.", member.email, article(role), role)),
        ),
        Err(error) => error_page(&signed, &error.into()),
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Admin | Role::Author => "an",
        Role::User => "a",
    }
}

async fn remove_dialog(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<String>) -> Response {
    let member = match state.app.member(&signed.principal, &id).await {
        Ok(member) => member,
        Err(error) => return error_page(&signed, &error.into()),
    };
    layout::confirm_page(
        &signed,
        Confirm {
            title: "Remove member",
            section: Section::Members,
            question: &format!("Remove {}?", member.email),
            body: html! { p { "They can no longer sign in here, and a session they have open ends at their next page. The connections owned by their address stay." } },
            action: &format!("/members/{}/remove", member.id),
            button: "Remove member",
            cancel: "/members",
        },
    )
}

async fn remove(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let signed = posted.signed;
    let email = state.app.member(&signed.principal, &id).await.map(|member| member.email).unwrap_or_default();
    match state.app.remove_member(&signed.principal, &id).await {
        Ok(()) => redirect_with(&state, &signed, "/members", Flash::success(format!("{email} is no longer a member."))),
        Err(error) => error_page(&signed, &error.into()),
    }
}
