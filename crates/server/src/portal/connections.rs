//! Connection pages: the list with each status in words, the "New connection" dialog made
//! from the connector's connection form, a connection's page (test, re-authorize, delete), and
//! the OAuth 2.0 sign-in that leaves from the dialog and comes back to the connection.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use portico_app::connections::{ConnectionFilter, NewConnection};
use portico_model::{ConnectionForm, FormField, FormSet};
use portico_store::{ConnectionRecord, ConnectionStatus, ConnectorRecord};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::connectors::{After, PAGE};
use super::layout::{self, Field, FormErrors, Kind, Section, Shell, csrf_input};
use super::session::{Flash, Signed};
use super::{Posted, describe, error_page, field_message, public, redirect_with, when};
use crate::error::{ApiError, ProblemField};
use crate::state::AppState;

pub fn routes() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/connections", get(list))
        .route("/connections/new", get(new_dialog).post(create))
        .route("/connections/signed-in", get(signed_in))
        .route("/connections/{id}", get(show))
        .route("/connections/{id}/test", axum::routing::post(test))
        .route("/connections/{id}/reauthorize", axum::routing::post(reauthorize))
        .route("/connections/{id}/delete", get(delete_dialog).post(delete))
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
}

async fn list(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(filter): Query<ListQuery>,
    Query(after): Query<After>,
) -> Response {
    let connector = filter.connector.as_deref().filter(|c| !c.is_empty());
    let filter = ConnectionFilter { connector_id: connector.map(str::to_owned) };
    let page = match state.app.list_connections(&signed.principal, &filter, after.after.as_deref(), PAGE).await {
        Ok(page) => page,
        Err(error) => return error_page(&signed, &error.into()),
    };
    let names = match connector_names(&state, &signed).await {
        Ok(names) => names,
        Err(response) => return response,
    };
    let more = page.next.is_some();
    let items: Vec<&ConnectionRecord> = page.items.iter().map(|info| &info.record).collect();
    let new_href = match connector {
        Some(c) => format!("/connections/new?connector={c}"),
        None => "/connections/new".to_owned(),
    };
    let shell = Shell::new("Connections", &signed, Section::Connections).with_flash(signed.take_flash(&state));
    let content = html! {
        div.page-head {
            div {
                h1 { "Connections" }
                p.lead {
                    @match connector.and_then(|c| names.get(c)) {
                        Some(name) => { "Connections to " (name) ". " a href="/connections" { "Show all" } }
                        None => { "Authenticated connections to your connectors' backends." }
                    }
                }
            }
            a.button.primary href=(new_href) { "New connection" }
        }
        @if items.is_empty() {
            div.empty { p { "No connections yet." } p { a href=(new_href) { "Create one" } "." } }
        } @else {
            table.list {
                caption.visually-hidden { "Connections" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Connector" } th scope="col" { "Status" } th scope="col" { "Created" } } }
                tbody {
                    @for record in &items {
                        tr {
                            td data-label="Name" { a.strong href={ "/connections/" (record.id) } { (record.display_name) } }
                            td data-label="Connector" {
                                a href={ "/connectors/" (record.connector_id) } { (names.get(&record.connector_id).map(String::as_str).unwrap_or("(deleted)")) }
                            }
                            td data-label="Status" { (status_badge(record)) }
                            td data-label="Created" { (when(record.created_at)) }
                        }
                    }
                }
            }
            @if more {
                @if let Some(last) = items.last() {
                    p.more { a href={ "/connections?after=" (last.id) @if let Some(c) = connector { "&connector=" (c) } } { "Next page" } }
                }
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

/// What the dialog shows again after a refused create: the typed values (never a secret).
#[derive(Default)]
struct Typed {
    display_name: String,
    set: Option<String>,
    values: HashMap<String, String>,
}

async fn new_dialog(State(state): State<Arc<AppState>>, signed: Signed, Query(query): Query<NewQuery>) -> Response {
    match query.connector.as_deref().filter(|c| !c.is_empty()) {
        None => choose_connector(&state, &signed).await,
        Some(id) => match state.app.connector(&signed.principal, id).await {
            Ok(record) => dialog(&state, &signed, &record, StatusCode::OK, &Typed::default(), &FormErrors::default()),
            Err(error) => error_page(&signed, &error.into()),
        },
    }
}

/// A dialog over a dimmed page; the script makes it modal, and Escape leaves by `cancel`.
fn modal(title_id: &str, cancel: &str, content: Markup) -> Markup {
    html! {
        div.backdrop {
            dialog.modal open aria-labelledby=(title_id) data-modal data-cancel=(cancel) {
                (content)
            }
        }
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
    let content = modal(
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

/// The id and name of the input of field `j` of set `i`: parameter names may hold any
/// character (`token:TenantId`), so inputs are named by position.
fn input_id(set: usize, field: usize) -> String {
    format!("p{set}_{field}")
}

fn visible(set: &FormSet) -> impl Iterator<Item = (usize, &FormField)> {
    set.fields.iter().enumerate().filter(|(_, f)| !f.hidden)
}

fn set_label(set: &FormSet) -> &str {
    set.ui.as_ref().map(|u| u.label.as_str()).filter(|l| !l.is_empty()).unwrap_or(&set.name)
}

fn dialog(
    state: &AppState,
    signed: &Signed,
    record: &ConnectorRecord,
    status: StatusCode,
    typed: &Typed,
    errors: &FormErrors,
) -> Response {
    let form: ConnectionForm = record.connector.connection_form();
    let name = &record.connector.metadata.display_name;
    let chosen = typed.set.clone().or_else(|| form.sets.first().map(|s| s.name.clone())).unwrap_or_default();
    let single_oauth = form.choice.is_none() && form.sets.first().and_then(|s| s.oauth.as_ref()).is_some();
    let submit = match form.sets.first().and_then(|s| s.oauth.as_ref()) {
        Some(oauth) if form.choice.is_none() => oauth.label.clone(),
        _ => "Create connection".to_owned(),
    };
    let cancel = format!("/connectors/{}", record.id);
    let shell = Shell::new("New connection", signed, Section::Connections).with_flash(signed.take_flash(state));
    let content = modal(
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
                @match &form.choice {
                    Some(choice) => {
                        fieldset.choice.has-error[!errors.of("set").is_empty()] #set {
                            legend { (if choice.label.is_empty() { "How to connect" } else { choice.label.as_str() }) }
                            @if let Some(description) = &choice.description { p.hint { (description) } }
                            (layout::errors("set-error", errors.of("set")))
                            @for (i, set) in form.sets.iter().enumerate() {
                                div.set-option {
                                    div.radio {
                                        input type="radio" name="set" id={ "set-" (i) } value=(set.name) checked[set.name == chosen];
                                        label for={ "set-" (i) } { (set_label(set)) }
                                    }
                                    div.set-fields { (set_fields(state, i, set, typed, errors)) }
                                }
                            }
                        }
                    }
                    None => {
                        @for (i, set) in form.sets.iter().enumerate() { (set_fields(state, i, set, typed, errors)) }
                    }
                }
                div.actions {
                    button.button.primary type="submit" { (submit) }
                    a.button href=(cancel) { "Cancel" }
                }
                @if single_oauth { p.hint { "Portico keeps the tokens sealed; you can sign in again at any time." } }
            }
        },
    );
    layout::respond(status, layout::page(shell, content))
}

/// The inputs of one parameter set, and what happens on submit.
fn set_fields(state: &AppState, i: usize, set: &FormSet, typed: &Typed, errors: &FormErrors) -> Markup {
    html! {
        @if let Some(description) = set.ui.as_ref().and_then(|u| u.description.as_ref()) { p.hint { (description) } }
        @for (j, field) in visible(set) { (input(i, j, field, typed, errors)) }
        @if let Some(oauth) = &set.oauth {
            p.sign-in-note {
                @let provider = state.app.catalog.get(&oauth.identity_provider).map_or(oauth.identity_provider.as_str(), |e| e.display_name.as_str());
                "You will sign in at " strong { (provider) } " and come back here."
            }
        } @else if visible(set).next().is_none() {
            p.muted { "Nothing to fill in: this connector needs no credentials." }
        }
    }
}

/// The input of one connection parameter, as its author labelled it.
fn input(set: usize, index: usize, field: &FormField, typed: &Typed, errors: &FormErrors) -> Markup {
    let id = input_id(set, index);
    let field_errors = errors.of(&id);
    let hint = field.description.as_deref().or(field.tooltip.as_deref());
    // Secrets are never written back into a page; other values are, or the default.
    let value = if field.secret {
        String::new()
    } else {
        typed.values.get(&id).cloned().or_else(|| field.default.clone()).unwrap_or_default()
    };
    if !field.allowed_values.is_empty() {
        let mut options: Vec<(String, String)> = Vec::new();
        if !field.required || field.default.is_none() {
            options.push((String::new(), "Choose…".to_owned()));
        }
        options.extend(
            field.allowed_values.iter().map(|a| (a.value.clone(), a.label.clone().unwrap_or_else(|| a.value.clone()))),
        );
        let label = if field.required { format!("{} (required)", field.label) } else { field.label.clone() };
        return layout::select(&id, &label, &options, &value, hint, field_errors);
    }
    if field.kind == "bool" {
        let checked = matches!(value.as_str(), "true" | "True" | "on");
        return html! {
            div.field.checkbox.has-error[!field_errors.is_empty()] {
                (layout::errors(&format!("{id}-error"), field_errors))
                input type="checkbox" id=(id) name=(id) value="true" checked[checked];
                (layout::label(&id, &field.label, false))
                @if let Some(hint) = hint { p.hint { (hint) } }
            }
        };
    }
    let kind = if field.masked {
        Kind::Password
    } else if field.kind == "int" {
        Kind::Number
    } else {
        Kind::Text
    };
    Field::new(&id, &field.label)
        .kind(kind)
        .value(&value)
        .required(field.required)
        .autocomplete(if field.secret { "new-password" } else { "off" })
        .errors(field_errors)
        .render_with_hint(hint)
}

impl Field<'_> {
    fn render_with_hint(self, hint: Option<&str>) -> Markup {
        match hint {
            Some(hint) => self.hint(hint).render(),
            None => self.render(),
        }
    }
}

async fn create(State(state): State<Arc<AppState>>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let connector_id = fields.trimmed("connector").to_owned();
    let record = match state.app.connector(&signed.principal, &connector_id).await {
        Ok(record) => record,
        Err(error) => return error_page(&signed, &error.into()),
    };
    let form = record.connector.connection_form();
    let set_name = fields.get("set").map(str::to_owned);
    let index = match (&form.choice, &set_name) {
        (None, _) => Some(0),
        (Some(_), Some(name)) => form.sets.iter().position(|s| s.name == *name),
        (Some(_), None) => None,
    };
    let mut typed = Typed {
        display_name: fields.trimmed("display_name").to_owned(),
        set: set_name.clone(),
        values: HashMap::new(),
    };
    let mut parameters = Map::new();
    if let Some(i) = index
        && let Some(set) = form.sets.get(i)
    {
        for (j, field) in visible(set) {
            let id = input_id(i, j);
            let text = fields.get(&id).unwrap_or_default();
            if !field.secret {
                typed.values.insert(id.clone(), text.to_owned());
            }
            if let Some(value) = typed_value(field, text) {
                parameters.insert(field.name.clone(), value);
            }
        }
    }
    let oauth = index.and_then(|i| form.sets.get(i)).is_some_and(|s| s.oauth.is_some());
    // The sign-in comes back to a page of this session that knows the connection.
    let reference = oauth.then(|| portico_secrets::random_token().expose().to_owned());
    let new = NewConnection {
        connector_id: record.id.clone(),
        display_name: (!typed.display_name.is_empty()).then(|| typed.display_name.clone()),
        parameter_set: if form.choice.is_some() { set_name } else { None },
        parameters,
        return_url: reference.as_ref().map(|r| public(&state, &format!("/connections/signed-in?ref={r}"))),
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
        Err(error) => {
            let mut errors = FormErrors::default();
            match &error {
                ApiError::Invalid { detail, errors: found } => {
                    for ProblemField { field, message } in found {
                        match field_of(&form, index, field) {
                            Some(id) => errors.add(&id, field_message(message)),
                            None => errors.general(format!("{field}: {message}")),
                        }
                    }
                    if errors.is_empty() {
                        errors.general(detail.clone());
                    }
                }
                other => errors.general(describe(other)),
            }
            dialog(&state, &signed, &record, StatusCode::UNPROCESSABLE_ENTITY, &typed, &errors)
        }
    }
}

/// The input a finding of the API names: `parameters.<name>` or `parameterSet`.
fn field_of(form: &ConnectionForm, set: Option<usize>, at: &str) -> Option<String> {
    if at == "parameterSet" {
        return Some("set".to_owned());
    }
    let name = at.strip_prefix("parameters.")?;
    let i = set?;
    let (j, _) =
        form.sets.get(i)?.fields.iter().enumerate().find(|(_, f)| !f.hidden && f.name.eq_ignore_ascii_case(name))?;
    Some(input_id(i, j))
}

/// A typed value as the API takes it: nothing for a blank (so that defaults and the model's
/// "is required" apply), a number or boolean where the parameter wants one. Text that is not
/// a number stays text, and the model says what is wrong with it.
fn typed_value(field: &FormField, text: &str) -> Option<Value> {
    match field.kind {
        "bool" => Some(Value::Bool(text == "true")),
        _ if text.trim().is_empty() => None,
        "int" => Some(text.trim().parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(text.to_owned()))),
        _ if field.secret => Some(Value::String(text.to_owned())),
        _ => Some(Value::String(text.trim().to_owned())),
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
    let info = match state.app.connection(&signed.principal, &id).await {
        Ok(info) => info,
        Err(error) => return error_page(&signed, &error.into()),
    };
    let record = &info.record;
    let connector = state.app.connector(&signed.principal, &record.connector_id).await.ok();
    let set = connector.as_ref().and_then(|c| c.connector.connection.set(record.parameter_set.as_deref()));
    let label = |name: &str| {
        set.and_then(|s| s.parameter(name))
            .map(|p| p.ui.label.clone())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| name.to_owned())
    };
    let oauth = connector.as_ref().and_then(|c| portico_app::oauth::oauth_set(c, record)).is_some();
    let mut flash = signed.take_flash(&state);
    if flash.is_none() {
        flash = match (query.status.as_deref(), record.status) {
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
    let shell = Shell::new(&record.display_name, &signed, Section::Connections).with_flash(flash);
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
                div.action-list {
                    form method="post" action={ "/connections/" (id) "/test" } {
                        (csrf_input(&signed))
                        button.button type="submit" { "Test connection" }
                        p.hint { "Calls the connector's test operation, or its backend URL." }
                    }
                    @if oauth {
                        form method="post" action={ "/connections/" (id) "/reauthorize" } {
                            (csrf_input(&signed))
                            button.button.primary[record.status != ConnectionStatus::Connected] type="submit" { (sign_in_label) }
                            p.hint { "Signs in at the identity provider again and replaces the tokens." }
                        }
                    }
                    div {
                        a.button.danger href={ "/connections/" (id) "/delete" } { "Delete…" }
                    }
                }
            }
        }
    };
    layout::ok(layout::page(shell, content))
}

async fn test(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let signed = posted.signed;
    let (ok, message) = super::connectors::test_connection(&state, &signed, &id).await;
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
        Err(ApiError::NotFound(what)) => error_page(&signed, &ApiError::NotFound(what)),
        Err(error) => redirect_with(&state, &signed, &format!("/connections/{id}"), Flash::error(describe(&error))),
    }
}

async fn delete_dialog(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<String>) -> Response {
    let record = match state.app.connection(&signed.principal, &id).await {
        Ok(info) => info.record,
        Err(error) => return error_page(&signed, &error.into()),
    };
    let cancel = format!("/connections/{id}");
    let shell = Shell::new("Delete connection", &signed, Section::Connections);
    let content = modal(
        "dialog-title",
        &cancel,
        html! {
            h1 #dialog-title { "Delete “" (record.display_name) "”?" }
            p { "Its secrets and tokens are destroyed with it, and calls through it stop. This cannot be undone." }
            form method="post" action={ "/connections/" (id) "/delete" } {
                (csrf_input(&signed))
                div.actions {
                    button.button.danger type="submit" { "Delete connection" }
                    a.button href=(cancel) { "Cancel" }
                }
            }
        },
    );
    layout::ok(layout::page(shell, content))
}

async fn delete(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let signed = posted.signed;
    match state.app.delete_connection(&signed.principal, &id).await {
        Ok(()) => redirect_with(&state, &signed, "/connections", Flash::success("Connection deleted.")),
        Err(error) => error_page(&signed, &error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: &'static str, secret: bool) -> FormField {
        FormField {
            name: "x".into(),
            label: "X".into(),
            description: None,
            tooltip: None,
            kind,
            secret,
            masked: secret,
            required: false,
            hidden: false,
            allowed_values: vec![],
            default: None,
            sent_to: vec![],
        }
    }

    #[test]
    fn typed_values_follow_the_parameter_type() {
        assert_eq!(typed_value(&field("string", false), "  a "), Some(Value::String("a".into())));
        assert_eq!(typed_value(&field("securestring", true), " s "), Some(Value::String(" s ".into())));
        assert_eq!(typed_value(&field("string", false), "  "), None);
        assert_eq!(typed_value(&field("int", false), "42"), Some(Value::from(42)));
        assert_eq!(typed_value(&field("int", false), "4x"), Some(Value::String("4x".into())));
        assert_eq!(typed_value(&field("bool", false), ""), Some(Value::Bool(false)));
        assert_eq!(typed_value(&field("bool", false), "true"), Some(Value::Bool(true)));
    }
}
