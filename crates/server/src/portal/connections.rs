//! Connection pages: the list with each status in words (and, for those who see all of the
//! tenant's, each owner and a filter by owner), the "New connection" dialog made from the
//! connector's connection form, a connection's page (test, re-authorize, delete, as the
//! principal may; its sharing, to those who may share it), and the OAuth 2.0 sign-in that
//! leaves from the dialog and comes back to the connection.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use portico_app::access::{self, Action, Need};
use portico_app::connections::{ConnectionFilter, NewConnection};
use portico_model::{ConnectionForm, SharePermission};
use portico_store::{ConnectionRecord, ConnectionStatus, ConnectorRecord, ShareRecord};
use serde::Deserialize;
use serde_json::Value;

use super::connectors::{After, PAGE};
use super::layout::{self, Confirm, Field, FormErrors, Section, Shell, csrf_input};
use super::session::{Flash, Signed};
use super::{Posted, describe, error_page, public, redirect_with, refusal, refused_page, spread, when};
use crate::error::ApiError;
use crate::forms;
use crate::state::AppState;

pub fn routes() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/connections", get(list))
        .route("/connections/new", get(new_dialog).post(create))
        .route("/connections/signed-in", get(signed_in))
        .route("/connections/{id}", get(show))
        .route("/connections/{id}/test", post(test))
        .route("/connections/{id}/reauthorize", post(reauthorize))
        .route("/connections/{id}/delete", get(delete_dialog).post(delete))
        .route("/connections/{id}/shares", post(share))
        .route("/connections/{id}/shares/remove", post(unshare))
}

/// A status in words, and the class of its badge.
pub fn status_words(status: ConnectionStatus) -> (&'static str, &'static str) {
    match status {
        ConnectionStatus::Connected => ("Connected", "ok"),
        ConnectionStatus::Pending => ("Waiting for sign-in", "wait"),
        ConnectionStatus::NeedsReauth => ("Needs sign-in again", "warn"),
        ConnectionStatus::Error => ("Error", "bad"),
    }
}

fn status_badge(record: &ConnectionRecord) -> Markup {
    let (words, class) = status_words(record.status);
    html! {
        span.badge.(class) { (words) }
        @if let Some(reason) = &record.status_reason {
            @if matches!(record.status, ConnectionStatus::Error | ConnectionStatus::NeedsReauth) {
                span.reason { (reason) }
            }
        }
    }
}

#[derive(Deserialize, Default)]
struct ListQuery {
    connector: Option<String>,
    /// Only those this end user owns.
    owner: Option<String>,
}

/// `/connections` with these filters (and `after=`, when given).
fn list_href(connector: Option<&str>, owner: Option<&str>, after: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [("connector", connector), ("owner", owner), ("after", after)] {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() { "/connections".to_owned() } else { format!("/connections?{query}") }
}

/// A connection's owner in words: its end user, or the tenant itself.
fn owner_words(record: &ConnectionRecord) -> &str {
    record.end_user_id.as_deref().unwrap_or("Tenant")
}

async fn list(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(filter): Query<ListQuery>,
    Query(after): Query<After>,
) -> Response {
    let connector = filter.connector.as_deref().filter(|c| !c.is_empty());
    let owner = filter.owner.as_deref().map(str::trim).filter(|o| !o.is_empty());
    // Those who see every connection of the tenant see whose each is, and may filter by it.
    let sees_all = access::visible_connections(&signed.principal).end_user.is_none();
    let filter = ConnectionFilter { connector_id: connector.map(str::to_owned), end_user_id: owner.map(str::to_owned) };
    let page = match state.app.list_connections(&signed.principal, &filter, after.after.as_deref(), PAGE).await {
        Ok(page) => page,
        Err(error) => return error_page(&signed, &error.into()),
    };
    let names = match connector_names(&state, &signed).await {
        Ok(names) => names,
        Err(response) => return response,
    };
    let items: Vec<&ConnectionRecord> = page.items.iter().map(|info| &info.record).collect();
    let may_create = signed.may(Action::CreateConnection);
    let new_href = match connector {
        Some(c) => format!("/connections/new?connector={c}"),
        None => "/connections/new".to_owned(),
    };
    let me = signed.principal.end_user.as_deref();
    let shell = Shell::new("Connections", &signed, Section::Connections).with_flash(signed.take_flash(&state));
    let content = html! {
        div.page-head {
            div {
                h1 { "Connections" }
                p.lead {
                    @match (connector.and_then(|c| names.get(c)), owner) {
                        (Some(name), Some(owner)) => { "Connections of " (owner) " to " (name) ". " a href="/connections" { "Show all" } }
                        (Some(name), None) => { "Connections to " (name) ". " a href="/connections" { "Show all" } }
                        (None, Some(owner)) => { "Connections of " (owner) ". " a href="/connections" { "Show all" } }
                        (None, None) => { "Authenticated connections to your connectors' backends." }
                    }
                }
            }
            @if may_create { a.button.primary href=(new_href) { "New connection" } }
        }
        @if sees_all {
            form.filter method="get" action="/connections" {
                @if let Some(c) = connector { input type="hidden" name="connector" value=(c); }
                div.field {
                    label for="owner" { "Owner" }
                    input #owner type="text" name="owner" value=(owner.unwrap_or_default()) placeholder="An end user id or e-mail address" autocomplete="off";
                }
                button.button type="submit" { "Filter" }
            }
        }
        @if items.is_empty() {
            div.empty {
                p { "No connections" @if owner.is_some() { " of this owner" } " yet." }
                @if may_create { p { a href=(new_href) { "Create one" } "." } }
            }
        } @else {
            table.list {
                caption.visually-hidden { "Connections" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Connector" }
                    @if sees_all { th scope="col" { "Owner" } }
                    th scope="col" { "Status" } th scope="col" { "Created" }
                } }
                tbody {
                    @for record in &items {
                        tr {
                            td data-label="Name" {
                                a.strong href={ "/connections/" (record.id) } { (record.display_name) }
                                @if !sees_all && record.end_user_id.as_deref() != me {
                                    span.reason { "Shared by " (owner_words(record)) }
                                }
                            }
                            td data-label="Connector" {
                                a href={ "/connectors/" (record.connector_id) } { (names.get(&record.connector_id).map(String::as_str).unwrap_or("(deleted)")) }
                            }
                            @if sees_all {
                                td data-label="Owner" {
                                    @match &record.end_user_id {
                                        Some(end_user) => a.wrap href=(list_href(connector, Some(end_user), None)) { (end_user) },
                                        None => span.muted { "Tenant" },
                                    }
                                }
                            }
                            td data-label="Status" { (status_badge(record)) }
                            td data-label="Created" { (when(record.created_at)) }
                        }
                    }
                }
            }
            @if let Some(next) = &page.next {
                p.more { a href=(list_href(connector, owner, Some(next))) { "Next page" } }
            }
        }
    };
    layout::ok(layout::page(shell, content))
}

/// Display names of the tenant's connectors by id.
async fn connector_names(state: &AppState, signed: &Signed) -> Result<HashMap<String, String>, Response> {
    let mut names = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = state
            .app
            .list_connectors(&signed.principal, after.as_deref(), 200)
            .await
            .map_err(|error| error_page(signed, &error.into()))?;
        for record in &page.items {
            names.insert(record.id.clone(), record.connector.metadata.display_name.clone());
        }
        match page.next {
            Some(next) if names.len() < 10_000 => after = Some(next),
            _ => return Ok(names),
        }
    }
}

#[derive(Deserialize, Default)]
struct NewQuery {
    connector: Option<String>,
}

async fn new_dialog(State(state): State<Arc<AppState>>, signed: Signed, Query(query): Query<NewQuery>) -> Response {
    if let Some(refused) = refused_page(&signed, Action::CreateConnection) {
        return refused;
    }
    match query.connector.as_deref().filter(|c| !c.is_empty()) {
        None => choose_connector(&state, &signed).await,
        Some(id) => match state.app.connector(&signed.principal, id).await {
            Ok(record) => {
                dialog(&state, &signed, &record, StatusCode::OK, &forms::Typed::default(), &FormErrors::default())
            }
            Err(error) => error_page(&signed, &error.into()),
        },
    }
}

async fn choose_connector(state: &AppState, signed: &Signed) -> Response {
    let names = match connector_names(state, signed).await {
        Ok(names) => names,
        Err(response) => return response,
    };
    let mut options: Vec<(String, String)> = names.into_iter().collect();
    options.sort_by_key(|(_, name)| name.to_lowercase());
    let shell = Shell::new("New connection", signed, Section::Connections);
    let content = layout::modal(
        "dialog-title",
        "/connections",
        html! {
            h1 #dialog-title { "New connection" }
            @if options.is_empty() {
                p { "There is no connector to connect to yet. " a href="/connectors/new" { "Create a connector" } " first." }
                div.actions { a.button href="/connections" { "Close" } }
            } @else {
                form method="get" action="/connections/new" {
                    (layout::select("connector", "Connector", &options, "", None, &[]))
                    div.actions {
                        button.button.primary type="submit" { "Continue" }
                        a.button href="/connections" { "Cancel" }
                    }
                }
            }
        },
    );
    layout::ok(layout::page(shell, content))
}

fn dialog(
    state: &AppState,
    signed: &Signed,
    record: &ConnectorRecord,
    status: StatusCode,
    typed: &forms::Typed,
    errors: &FormErrors,
) -> Response {
    let form: ConnectionForm = record.connector.connection_form();
    let name = &record.connector.metadata.display_name;
    let single_oauth = forms::single_oauth(&form);
    let submit = single_oauth.map_or("Create connection", |oauth| oauth.label.as_str());
    let cancel = format!("/connectors/{}", record.id);
    let shell = Shell::new("New connection", signed, Section::Connections).with_flash(signed.take_flash(state));
    let content = layout::modal(
        "dialog-title",
        &cancel,
        html! {
            h1 #dialog-title { "New connection" }
            p.muted { "to " strong { (name) } }
            form.connection-form method="post" action="/connections/new" novalidate {
                (csrf_input(signed))
                input type="hidden" name="connector" value=(record.id);
                (errors.summary())
                (Field::new("display_name", "Connection name").value(&typed.display_name)
                    .placeholder(name).hint("Leave blank to use the connector's name.").errors(errors.of("display_name")).render())
                (forms::parameter_sets(&state.app.catalog, &form, typed, errors))
                div.actions {
                    button.button.primary type="submit" { (submit) }
                    a.button href=(cancel) { "Cancel" }
                }
                @if single_oauth.is_some() { p.hint { "Portico keeps the tokens sealed; you can sign in again at any time." } }
            }
        },
    );
    layout::respond(status, layout::page(shell, content))
}

async fn create(State(state): State<Arc<AppState>>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let connector_id = fields.trimmed("connector").to_owned();
    let record = match state.app.connector(&signed.principal, &connector_id).await {
        Ok(record) => record,
        Err(error) => return error_page(&signed, &error.into()),
    };
    let form = record.connector.connection_form();
    let forms::Submitted { typed, index, parameter_set, parameters, oauth } =
        forms::read(&form, |name| fields.get(name));
    // The sign-in comes back to a page of this session that knows the connection.
    let reference = oauth.then(|| portico_secrets::random_token().expose().to_owned());
    let new = NewConnection {
        connector_id: record.id.clone(),
        display_name: (!typed.display_name.is_empty()).then(|| typed.display_name.clone()),
        parameter_set,
        parameters,
        return_url: reference.as_ref().map(|r| public(&state, &format!("/connections/signed-in?ref={r}"))),
        end_user_id: None,
    };
    match state.app.create_connection(&signed.principal, new).await.map_err(ApiError::from) {
        Ok(info) => match (info.authorize_url, reference) {
            (Some(url), Some(reference)) => {
                signed.remember_sign_in(&state, reference, info.record.id);
                Redirect::to(&url).into_response()
            }
            _ => redirect_with(
                &state,
                &signed,
                &format!("/connections/{}", info.record.id),
                Flash::success("Connection created."),
            ),
        },
        Err(error) if refusal(&error) => error_page(&signed, &error),
        Err(error) => {
            let errors = spread(&error, |at| forms::field_of(&form, index, at));
            dialog(&state, &signed, &record, StatusCode::UNPROCESSABLE_ENTITY, &typed, &errors)
        }
    }
}

#[derive(Deserialize)]
struct SignedInQuery {
    #[serde(rename = "ref")]
    reference: Option<String>,
    status: Option<String>,
}

/// Where an OAuth sign-in started from the portal comes back: on to its connection.
async fn signed_in(State(state): State<Arc<AppState>>, signed: Signed, Query(query): Query<SignedInQuery>) -> Response {
    let connection = query.reference.as_deref().and_then(|r| signed.take_sign_in(&state, r));
    let status = match query.status.as_deref() {
        Some("connected") => "connected",
        _ => "error",
    };
    match connection {
        Some(id) => Redirect::to(&format!("/connections/{id}?status={status}")).into_response(),
        None => redirect_with(
            &state,
            &signed,
            "/connections",
            Flash::error("The sign-in came back to a session that did not start it; the list shows where it stands."),
        ),
    }
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    status: Option<String>,
}

async fn show(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Response {
    let form = ShareForm::default();
    connection_page(&state, &signed, &id, query.status.as_deref(), StatusCode::OK, &form, &FormErrors::default()).await
}

/// The "Share" form as typed.
struct ShareForm {
    end_user: String,
    permission: String,
}

impl Default for ShareForm {
    fn default() -> Self {
        ShareForm { end_user: String::new(), permission: SharePermission::Use.as_str().to_owned() }
    }
}

fn permission_words(permission: SharePermission) -> &'static str {
    match permission {
        SharePermission::Use => "Can use",
        SharePermission::Edit => "Can edit",
    }
}

fn permission_options() -> Vec<(String, String)> {
    [SharePermission::Use, SharePermission::Edit]
        .into_iter()
        .map(|p| (p.as_str().to_owned(), permission_words(p).to_owned()))
        .collect()
}

async fn connection_page(
    state: &AppState,
    signed: &Signed,
    id: &str,
    status_query: Option<&str>,
    status: StatusCode,
    share_form: &ShareForm,
    errors: &FormErrors,
) -> Response {
    let info = match state.app.connection(&signed.principal, id).await {
        Ok(info) => info,
        Err(error) => return error_page(signed, &error.into()),
    };
    let record = &info.record;
    let grant = state.app.connection_access(&signed.principal, id).await.ok();
    // Only those who may share it (its owner, an admin) are shown its shares.
    let shares = match grant {
        Some(Need::Manage) => state.app.connection_shares(&signed.principal, id).await.ok(),
        _ => None,
    };
    let connector = state.app.connector(&signed.principal, &record.connector_id).await.ok();
    let set = connector.as_ref().and_then(|c| c.connector.connection.set(record.parameter_set.as_deref()));
    let label = |name: &str| {
        set.and_then(|s| s.parameter(name))
            .map(|p| p.ui.label.clone())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| name.to_owned())
    };
    let oauth = connector.as_ref().and_then(|c| portico_app::oauth::oauth_set(c, record)).is_some();
    let mut flash = signed.take_flash(state);
    if flash.is_none() {
        flash = match (status_query, record.status) {
            (Some("connected"), ConnectionStatus::Connected) => {
                Some(Flash::success("Signed in: the connection is connected."))
            }
            (Some(_), _) => Some(Flash::error(format!(
                "The sign-in did not complete{}",
                record.status_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_else(|| ".".to_owned())
            ))),
            (None, _) => None,
        };
    }
    let sign_in_label = match record.status {
        ConnectionStatus::Pending => "Sign in",
        ConnectionStatus::NeedsReauth | ConnectionStatus::Error => "Sign in again",
        ConnectionStatus::Connected => "Re-authorize",
    };
    let may = |need: Need| grant.is_some_and(|granted| granted >= need);
    let shell = Shell::new(&record.display_name, signed, Section::Connections).with_flash(flash);
    let content = html! {
        nav.breadcrumb aria-label="Breadcrumb" { a href="/connections" { "Connections" } " / " }
        div.page-head {
            div {
                h1 { (record.display_name) }
                p.status-line { (status_badge(record)) }
            }
        }
        div.columns {
            section.panel aria-labelledby="details-title" {
                h2 #details-title { "Details" }
                dl.facts {
                    dt { "Connector" }
                    dd { @match &connector { Some(c) => a href={ "/connectors/" (c.id) } { (c.connector.metadata.display_name) }, None => "(deleted)" } }
                    dt { "Owner" }
                    dd { @match &record.end_user_id { Some(owner) => (owner), None => "Tenant (no end user)" } }
                    @if let Some(set) = &record.parameter_set { dt { "Parameter set" } dd { (set) } }
                    @for (name, value) in &record.parameters {
                        dt { (label(name)) }
                        dd { @match value { Value::String(s) => (s), other => (other.to_string()) } }
                    }
                    @for name in &info.secret_names {
                        dt { (label(name)) } dd { span.secret-set { "set" } }
                    }
                    @if let Some(expires) = &record.token_expires_at { dt { "Access token expires" } dd { (when(*expires)) } }
                    dt { "Created" } dd { (when(record.created_at)) }
                    dt { "Updated" } dd { (when(record.updated_at)) }
                }
            }
            section.panel aria-labelledby="actions-title" {
                h2 #actions-title { "Actions" }
                @if may(Need::Call) {
                    div.action-list {
                        form method="post" action={ "/connections/" (id) "/test" } {
                            (csrf_input(signed))
                            button.button type="submit" { "Test connection" }
                            p.hint { "Calls the connector's test operation, or its backend URL." }
                        }
                        @if oauth && may(Need::Edit) {
                            form method="post" action={ "/connections/" (id) "/reauthorize" } {
                                (csrf_input(signed))
                                button.button.primary[record.status != ConnectionStatus::Connected] type="submit" { (sign_in_label) }
                                p.hint { "Signs in at the identity provider again and replaces the tokens." }
                            }
                        }
                        @if may(Need::Manage) {
                            div {
                                a.button.danger href={ "/connections/" (id) "/delete" } { "Delete…" }
                            }
                        }
                    }
                } @else {
                    p.muted { "Your role (" (signed.principal.role) ") sees this connection but does not use or change it." }
                }
            }
        }
        @if let Some(shares) = &shares {
            (sharing_panel(signed, id, shares, share_form, errors))
        }
    };
    layout::respond(status, layout::page(shell, content))
}

/// Who the connection is shared with, and the forms that change it.
fn sharing_panel(signed: &Signed, id: &str, shares: &[ShareRecord], form: &ShareForm, errors: &FormErrors) -> Markup {
    html! {
        section.panel #sharing aria-labelledby="sharing-title" {
            h2 #sharing-title { "Sharing" }
            p.muted { "Other end users who may use this connection. “Can use”: call through it and see it. “Can edit”: also change it and sign in again. Only its owner and admins share it." }
            @if shares.is_empty() {
                p { "Not shared with anyone." }
            } @else {
                table.list.shares {
                    caption.visually-hidden { "Shared with" }
                    thead { tr {
                        th scope="col" { "End user" } th scope="col" { "Permission" } th scope="col" { "Since" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for (i, share) in shares.iter().enumerate() {
                            tr {
                                td data-label="End user" { span.strong.wrap { (share.end_user_id) } }
                                td data-label="Permission" {
                                    form.inline-form method="post" action={ "/connections/" (id) "/shares" } {
                                        (csrf_input(signed))
                                        input type="hidden" name="end_user" value=(share.end_user_id);
                                        label.visually-hidden for={ "share-permission-" (i) } { "Permission of " (share.end_user_id) }
                                        select id={ "share-permission-" (i) } name="permission" {
                                            @for (value, text) in permission_options() {
                                                option value=(value) selected[value == share.permission.as_str()] { (text) }
                                            }
                                        }
                                        button.button.small type="submit" { "Change" }
                                    }
                                }
                                td data-label="Since" { (when(share.created_at)) }
                                td data-label="Actions" {
                                    form method="post" action={ "/connections/" (id) "/shares/remove" } {
                                        (csrf_input(signed))
                                        input type="hidden" name="end_user" value=(share.end_user_id);
                                        button.button.danger.small type="submit" { "Remove" span.visually-hidden { " the share with " (share.end_user_id) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Share with an end user" }
            form.share-form method="post" action={ "/connections/" (id) "/shares" } novalidate {
                (csrf_input(signed))
                (errors.summary())
                (Field::new("end_user", "End user").value(&form.end_user).required(true).autocomplete("off")
                    .hint("The id your app uses for them, or a person's e-mail address. Sharing again with someone changes their permission.")
                    .errors(errors.of("end_user")).render())
                (layout::select("permission", "Permission", &permission_options(), &form.permission, None, errors.of("permission")))
                div.actions { button.button.primary type="submit" { "Share" } }
            }
        }
    }
}

async fn share(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let form = ShareForm {
        end_user: fields.trimmed("end_user").to_owned(),
        permission: fields.trimmed("permission").to_owned(),
    };
    let refused = StatusCode::UNPROCESSABLE_ENTITY;
    let Some(permission) = SharePermission::parse(&form.permission) else {
        let mut errors = FormErrors::default();
        errors.add("permission", "Choose “Can use” or “Can edit”.");
        return connection_page(&state, &signed, &id, None, refused, &form, &errors).await;
    };
    match state.app.share_connection(&signed.principal, &id, &form.end_user, permission).await.map_err(ApiError::from) {
        Ok((share, new)) => {
            let words = permission_words(share.permission).to_lowercase();
            let message = if new {
                format!("Shared with {}: they {words}.", share.end_user_id)
            } else {
                format!("{} now {words}.", share.end_user_id)
            };
            redirect_with(&state, &signed, &format!("/connections/{id}#sharing"), Flash::success(message))
        }
        Err(error @ ApiError::Invalid { .. }) => {
            let errors = spread(&error, |at| (at == "endUserId").then_some("end_user"));
            connection_page(&state, &signed, &id, None, refused, &form, &errors).await
        }
        Err(error) => error_page(&signed, &error),
    }
}

async fn unshare(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let end_user = fields.trimmed("end_user");
    match state.app.unshare_connection(&signed.principal, &id, end_user).await {
        Ok(()) => redirect_with(
            &state,
            &signed,
            &format!("/connections/{id}#sharing"),
            Flash::success(format!("No longer shared with {end_user}.")),
        ),
        Err(error) => error_page(&signed, &error.into()),
    }
}

async fn test(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let signed = posted.signed;
    let (ok, message) = match super::connectors::test_connection(&state, &signed, &id).await {
        Ok(outcome) => outcome,
        Err(refused) => return error_page(&signed, &refused),
    };
    let flash = if ok { Flash::success(message) } else { Flash::error(message) };
    redirect_with(&state, &signed, &format!("/connections/{id}"), flash)
}

async fn reauthorize(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let signed = posted.signed;
    let return_url = public(&state, &format!("/connections/{id}"));
    match state.app.reauthorize(&signed.principal, &id, Some(&return_url)).await.map_err(ApiError::from) {
        Ok(info) => match info.authorize_url {
            Some(url) => Redirect::to(&url).into_response(),
            None => redirect_with(
                &state,
                &signed,
                &format!("/connections/{id}"),
                Flash::success("A new token was fetched."),
            ),
        },
        Err(error @ ApiError::NotFound(_)) => error_page(&signed, &error),
        Err(error) if refusal(&error) => error_page(&signed, &error),
        Err(error) => redirect_with(&state, &signed, &format!("/connections/{id}"), Flash::error(describe(&error))),
    }
}

async fn delete_dialog(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<String>) -> Response {
    let record = match state.app.connection(&signed.principal, &id).await {
        Ok(info) => info.record,
        Err(error) => return error_page(&signed, &error.into()),
    };
    layout::confirm_page(
        &signed,
        Confirm {
            title: "Delete connection",
            section: Section::Connections,
            question: &format!("Delete “{}”?", record.display_name),
            body: html! { p { "Its secrets and tokens are destroyed with it, and calls through it stop. This cannot be undone." } },
            action: &format!("/connections/{id}/delete"),
            button: "Delete connection",
            cancel: &format!("/connections/{id}"),
        },
    )
}

async fn delete(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let signed = posted.signed;
    match state.app.delete_connection(&signed.principal, &id).await {
        Ok(()) => redirect_with(&state, &signed, "/connections", Flash::success("Connection deleted.")),
        Err(error) => error_page(&signed, &error.into()),
    }
}
