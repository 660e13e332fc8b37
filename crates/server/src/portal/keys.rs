//! API keys, for admins: the list (never a key), "New key" (a dialog; the key is shown once, on
//! the page that answers the form), and revoking with a confirmation.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use portico_app::access::Action;
use portico_app::connections::ConnectionFilter;
use portico_app::keys::{KeyFilter, NewKey};
use portico_model::Role;
use portico_store::{ApiKeyRecord, ConnectionRecord, Millis};
use serde::Deserialize;

use super::connectors::PAGE;
use super::layout::{self, Confirm, Field, FormErrors, Kind, Section, Shell, csrf_input};
use super::session::{Flash, Signed};
use super::{Makers, Posted, error_page, redirect_with, refusal, refused_page, role_options, spread, when};
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/keys", get(list))
        .route("/keys/new", get(new_dialog).post(create))
        .route("/keys/{id}/revoke", get(revoke_dialog).post(revoke))
}

/// How many connections the "narrowed to" choice offers.
const CONNECTIONS_OFFERED: u32 = 200;

#[derive(Deserialize, Default)]
struct ListQuery {
    after: Option<String>,
    /// `1`: revoked keys too.
    revoked: Option<String>,
}

async fn list(State(state): State<Arc<AppState>>, signed: Signed, Query(query): Query<ListQuery>) -> Response {
    let include_revoked = query.revoked.as_deref() == Some("1");
    let filter = KeyFilter { include_revoked };
    let page = match state.app.list_keys(&signed.principal, filter, query.after.as_deref(), PAGE).await {
        Ok(page) => page,
        Err(error) => return error_page(&signed, &error.into()),
    };
    let makers = Makers::of_tenant(&state, &signed).await;
    let now = portico_store::now_millis();
    let revoked_param = if include_revoked { "&revoked=1" } else { "" };
    let shell = Shell::new("API keys", &signed, Section::Keys).with_flash(signed.take_flash(&state));
    let content = html! {
        div.page-head {
            div {
                h1 { "API keys" }
                p.lead { "Apps and scripts call the API with a key; a user key acts as one end user. A key is shown once, when it is made." }
            }
            a.button.primary href="/keys/new" { "New key" }
        }
        p.muted {
            @if include_revoked { "Revoked keys are listed too. " a href="/keys" { "Hide them" } }
            @else { a href="/keys?revoked=1" { "Show revoked keys too" } }
        }
        @if page.items.is_empty() {
            div.empty { p { "No API keys." } p { a href="/keys/new" { "Make one" } "." } }
        } @else {
            table.list {
                caption.visually-hidden { "API keys" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "End user" }
                    th scope="col" { "Connections" } th scope="col" { "Created" } th scope="col" { "Created by" }
                    th scope="col" { "Expires" } th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for key in &page.items {
                        tr {
                            td data-label="Name" {
                                span.strong { (key.name) }
                                @if signed.principal.key_id() == Some(key.id.as_str()) { " " span.tag { "this session" } }
                            }
                            td data-label="Role" { (key.role) }
                            td data-label="End user" { (key.end_user_id.as_deref().unwrap_or("—")) }
                            td data-label="Connections" { (scope(key)) }
                            td data-label="Created" { (when(key.created_at)) }
                            td data-label="Created by" { (makers.name(key.created_by.as_deref())) }
                            td data-label="Expires" { (expiry(key.expires_at, now)) }
                            td data-label="Actions" {
                                @match key.revoked_at {
                                    Some(at) => { span.badge.bad { "Revoked" } " " span.muted { (when(at)) } }
                                    None => { a.button.danger.small href={ "/keys/" (key.id) "/revoke" } { "Revoke…" } }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &page.next {
                p.more { a href={ "/keys?after=" (next) (revoked_param) } { "Next page" } }
            }
        }
    };
    layout::ok(layout::page(shell, content))
}

/// Which connections a key reaches, in words.
fn scope(key: &ApiKeyRecord) -> String {
    match (&key.connection_ids, key.role) {
        (Some(ids), _) if ids.len() == 1 => "Narrowed to 1 connection".to_owned(),
        (Some(ids), _) => format!("Narrowed to {} connections", ids.len()),
        (None, Role::User) => "Its end user's".to_owned(),
        (None, _) => "All, as its role allows".to_owned(),
    }
}

fn expiry(expires_at: Option<Millis>, now: Millis) -> Markup {
    match expires_at {
        None => html! { "Never" },
        Some(at) if at <= now => html! { span.badge.warn { "Expired" } " " (when(at)) },
        Some(at) => html! { (when(at)) },
    }
}

/// The "New key" form as typed.
#[derive(Default)]
struct Typed {
    name: String,
    role: String,
    end_user: String,
    expires: String,
    connections: Vec<String>,
}

async fn new_dialog(State(state): State<Arc<AppState>>, signed: Signed) -> Response {
    let typed = Typed { role: Role::User.as_str().to_owned(), ..Typed::default() };
    dialog(&state, &signed, StatusCode::OK, &typed, &FormErrors::default()).await
}

async fn dialog(state: &AppState, signed: &Signed, status: StatusCode, typed: &Typed, errors: &FormErrors) -> Response {
    if let Some(refused) = refused_page(signed, Action::ManageKeys) {
        return refused;
    }
    let filter = ConnectionFilter::default();
    let connections = match state.app.list_connections(&signed.principal, &filter, None, CONNECTIONS_OFFERED).await {
        Ok(page) => (page.items.into_iter().map(|info| info.record).collect::<Vec<_>>(), page.next.is_some()),
        Err(error) => return error_page(signed, &error.into()),
    };
    let shell = Shell::new("New API key", signed, Section::Keys);
    let content = layout::modal(
        "dialog-title",
        "/keys",
        html! {
            h1 #dialog-title { "New API key" }
            form method="post" action="/keys/new" novalidate {
                (csrf_input(signed))
                (errors.summary())
                (Field::new("name", "Name").value(&typed.name).required(true).autocomplete("off")
                    .hint("What it is for, e.g. “Billing service”.").errors(errors.of("name")).render())
                (layout::select("role", "Role", &role_options(), &typed.role, None, errors.of("role")))
                (Field::new("end_user", "End user").value(&typed.end_user).autocomplete("off")
                    .hint("Required for a user key: the end user it acts as — the id your app uses for them, or a person's e-mail address. Leave blank for admin and author keys.")
                    .errors(errors.of("end_user")).render())
                (Field::new("expires", "Expires after").kind(Kind::Date).value(&typed.expires)
                    .hint("Optional: the last day it works (it stops at midnight UTC). Blank: it never expires.")
                    .errors(errors.of("expires")).render())
                (connection_choice(&connections.0, connections.1, &typed.connections, errors.of("connections")))
                div.actions {
                    button.button.primary type="submit" { "Create key" }
                    a.button href="/keys" { "Cancel" }
                }
            }
        },
    );
    layout::respond(status, layout::page(shell, content))
}

/// The connections a user key may be narrowed to, as checkboxes.
fn connection_choice(connections: &[ConnectionRecord], more: bool, ticked: &[String], errors: &[String]) -> Markup {
    html! {
        fieldset.choice.has-error[!errors.is_empty()] #connections {
            legend { "Narrowed to connections" }
            p.hint #connections-hint { "Only for a user key, and optional: it then calls through the ticked connections only (those its end user may use). None ticked: all its end user's connections." }
            (layout::errors("connections-error", errors))
            @if connections.is_empty() {
                p.muted { "The tenant has no connections yet." }
            } @else {
                div.checks {
                    @for (i, connection) in connections.iter().enumerate() {
                        div.field.checkbox {
                            input type="checkbox" id={ "connection-" (i) } name="connections" value=(connection.id)
                                checked[ticked.contains(&connection.id)];
                            label for={ "connection-" (i) } {
                                (connection.display_name)
                                span.muted { " — " (connection.end_user_id.as_deref().unwrap_or("Tenant")) }
                            }
                        }
                    }
                }
                @if more { p.hint { "The first " (CONNECTIONS_OFFERED) " connections are listed." } }
            }
        }
    }
}

/// `2026-12-31` → the end of that day, UTC, in milliseconds.
fn end_of_day(text: &str) -> Option<Millis> {
    let mut parts = text.split('-');
    let year = parts.next()?.parse::<i32>().ok()?;
    let month = time::Month::try_from(parts.next()?.parse::<u8>().ok()?).ok()?;
    let day = parts.next()?.parse::<u8>().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let next = time::Date::from_calendar_date(year, month, day).ok()?.next_day()?;
    Some(next.midnight().assume_utc().unix_timestamp() * 1000)
}

/// The input an API finding about a key names.
fn key_field(at: &str) -> Option<&'static str> {
    match at {
        "name" => Some("name"),
        "role" => Some("role"),
        "endUserId" => Some("end_user"),
        "expiresAt" => Some("expires"),
        _ if at.starts_with("connectionIds") => Some("connections"),
        _ => None,
    }
}

async fn create(State(state): State<Arc<AppState>>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let typed = Typed {
        name: fields.trimmed("name").to_owned(),
        role: fields.trimmed("role").to_owned(),
        end_user: fields.trimmed("end_user").to_owned(),
        expires: fields.trimmed("expires").to_owned(),
        connections: fields.all("connections").into_iter().map(str::to_owned).collect(),
    };
    let mut errors = FormErrors::default();
    let role = Role::parse(&typed.role);
    if role.is_none() {
        errors.add("role", "Choose admin, author or user.");
    }
    let expires_at = match typed.expires.as_str() {
        "" => None,
        text => {
            let at = end_of_day(text);
            if at.is_none() {
                errors.add("expires", "Enter a date as YYYY-MM-DD.");
            }
            at
        }
    };
    let (Some(role), true) = (role, errors.is_empty()) else {
        return dialog(&state, &signed, StatusCode::UNPROCESSABLE_ENTITY, &typed, &errors).await;
    };
    let new = NewKey {
        name: typed.name.clone(),
        role,
        end_user_id: (!typed.end_user.is_empty()).then(|| typed.end_user.clone()),
        connection_ids: (!typed.connections.is_empty()).then(|| typed.connections.clone()),
        expires_at,
        rate_limit: None,
    };
    match state.app.create_key(&signed.principal, new).await.map_err(ApiError::from) {
        Ok(created) => created_page(&signed, &created.record, created.key.expose()),
        Err(error) if refusal(&error) => error_page(&signed, &error),
        Err(error) => {
            let errors = spread(&error, key_field);
            dialog(&state, &signed, StatusCode::UNPROCESSABLE_ENTITY, &typed, &errors).await
        }
    }
}

/// The answer to "New key": the key itself, this once. Not a redirect: the key is in no URL,
/// no session and no later page (the page is not cached).
fn created_page(signed: &Signed, key: &ApiKeyRecord, secret: &str) -> Response {
    let shell = Shell::new("API key created", signed, Section::Keys);
    let content = html! {
        div.panel.narrow {
            h1 { "API key created" }
            p {
                "“" (key.name) "”, role " strong { (key.role) }
                @if let Some(end_user) = &key.end_user_id { ", acting as end user " strong { (end_user) } }
                @if let Some(ids) = &key.connection_ids { ", narrowed to " (ids.len()) " connection" @if ids.len() != 1 { "s" } }
                @if let Some(at) = key.expires_at { ", until " (when(at)) }
                "."
            }
            div.notice-warn role="alert" {
                strong { "Copy the key now: it will not be shown again." }
                " Portico keeps only its SHA-256; a lost key cannot be recovered, only revoked and replaced."
            }
            div.field {
                label for="new_key" { "The key" }
                div.copy-row {
                    input #new_key type="text" readonly value=(secret) autocomplete="off" spellcheck="false";
                    button.button.copy type="button" data-copy="new_key" hidden { "Copy" }
                }
            }
            div.actions { a.button.primary href="/keys" { "Done" } }
        }
    };
    layout::ok(layout::page(shell, content))
}

async fn revoke_dialog(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<String>) -> Response {
    let key = match state.app.key(&signed.principal, &id).await {
        Ok(key) if key.revoked_at.is_none() => key,
        Ok(_) => return error_page(&signed, &ApiError::NotFound("API key")),
        Err(error) => return error_page(&signed, &error.into()),
    };
    let body = html! {
        p { "Everything that calls with it is refused from now on (401), on every instance within a second. This cannot be undone." }
        @if signed.principal.key_id() == Some(key.id.as_str()) {
            p.notice-warn { "You signed in with this key: revoking it signs you out." }
        }
    };
    layout::confirm_page(
        &signed,
        Confirm {
            title: "Revoke API key",
            section: Section::Keys,
            question: &format!("Revoke “{}”?", key.name),
            body,
            action: &format!("/keys/{}/revoke", key.id),
            button: "Revoke key",
            cancel: "/keys",
        },
    )
}

async fn revoke(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let signed = posted.signed;
    let name = state.app.key(&signed.principal, &id).await.map(|key| key.name).unwrap_or_default();
    match state.app.revoke_key(&signed.principal, &id).await {
        Ok(()) => redirect_with(&state, &signed, "/keys", Flash::success(format!("The key “{name}” is revoked."))),
        Err(error) => error_page(&signed, &error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_date_ends_with_its_day() {
        // 2030-01-01 00:00 UTC.
        assert_eq!(end_of_day("2029-12-31"), Some(1_893_456_000_000));
        assert_eq!(end_of_day("2024-02-29"), Some(1_709_251_200_000));
        for bad in ["2023-02-29", "2029-13-01", "31.12.2029", "2029-12-31-1", "", "tomorrow"] {
            assert_eq!(end_of_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn key_findings_land_on_their_inputs() {
        assert_eq!(key_field("endUserId"), Some("end_user"));
        assert_eq!(key_field("connectionIds[1]"), Some("connections"));
        assert_eq!(key_field("expiresAt"), Some("expires"));
        assert_eq!(key_field("other"), None);
    }
}
