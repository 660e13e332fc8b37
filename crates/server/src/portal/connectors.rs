//! Connector pages: the list, a new connector (from scratch or from files), and a connector's
//! tabs — General, Security, Definition, Test.

use std::sync::Arc;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use portico_app::access::Action;
use portico_app::connections::ConnectionFilter;
use portico_app::connectors::{ConnectorSource, OAuthClientChange};
use portico_model::{Backend, ConnectionSpec, Connector, Metadata, Scheme};
use portico_store::ConnectorRecord;
use serde::Deserialize;

use super::layout::{self, Field, FormErrors, Kind, Section, Shell, csrf_input};
use super::security::{self, AUTH_TYPES, SecurityForm};
use super::session::{CSRF_FIELD, Flash, Signed};
use super::{Posted, describe, error_page, field_message, redirect_with, refusal, refused_page, spread, when};
use crate::error::{ApiError, ProblemField};
use crate::state::AppState;

pub fn routes() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/connectors", get(list))
        .route("/connectors/new", get(new_page).post(create))
        .route("/connectors/import", post(import))
        .route("/connectors/{id}", get(general).post(save_general))
        .route("/connectors/{id}/security", get(security_page).post(save_security))
        .route("/connectors/{id}/definition", get(definition))
        .route("/connectors/{id}/test", get(test_page).post(run_test))
        .route("/connectors/{id}/delete", get(delete_page).post(delete))
}

/// Paging of lists: `?after=<id>`.
#[derive(Deserialize, Default)]
pub struct After {
    pub after: Option<String>,
}

/// How many rows a list page shows.
pub const PAGE: u32 = 100;

async fn list(State(state): State<Arc<AppState>>, signed: Signed, Query(after): Query<After>) -> Response {
    let page = match state.app.list_connectors(&signed.principal, after.after.as_deref(), PAGE).await {
        Ok(page) => page,
        Err(error) => return error_page(&signed, &error.into()),
    };
    let more = page.next.is_some();
    let items = &page.items[..];
    let may_write = signed.may(Action::WriteConnectors);
    let shell = Shell::new("Connectors", &signed, Section::Connectors).with_flash(signed.take_flash(&state));
    let content = html! {
        div.page-head {
            div {
                h1 { "Connectors" }
                p.lead { "What your backends offer, and how a connection to each authenticates." }
            }
            @if may_write { a.button.primary href="/connectors/new" { "New connector" } }
        }
        @if items.is_empty() {
            div.empty {
                p { "No connectors yet." }
                @if may_write { p { a href="/connectors/new" { "Create one from scratch or import its files" } "." } }
            }
        } @else {
            table.list {
                caption.visually-hidden { "Connectors" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Authentication" } th scope="col" { "Operations" } th scope="col" { "Updated" } } }
                tbody {
                    @for record in items {
                        tr {
                            td data-label="Name" {
                                a.strong href={ "/connectors/" (record.id) } { (record.connector.metadata.display_name) }
                                br; code.muted { (record.connector.metadata.name) }
                            }
                            td data-label="Authentication" { (security::describe_auth(&record.connector, &state.app.catalog)) }
                            td data-label="Operations" { (record.connector.operations.len()) }
                            td data-label="Updated" { (when(record.updated_at)) }
                        }
                    }
                }
            }
            @if more {
                @if let Some(last) = items.last() {
                    p.more { a href={ "/connectors?after=" (last.id) } { "Next page" } }
                }
            }
        }
    };
    layout::ok(layout::page(shell, content))
}

/// The fields of "from scratch", as typed.
#[derive(Default)]
struct Scratch {
    display_name: String,
    name: String,
    backend_url: String,
    description: String,
}

/// What the import forms show after a failed import.
#[derive(Default)]
struct ImportErrors {
    power_platform: FormErrors,
    openapi: FormErrors,
}

async fn new_page(State(state): State<Arc<AppState>>, signed: Signed) -> Response {
    if let Some(refused) = refused_page(&signed, Action::WriteConnectors) {
        return refused;
    }
    new_connector_page(
        &state,
        &signed,
        StatusCode::OK,
        &Scratch::default(),
        &FormErrors::default(),
        &ImportErrors::default(),
    )
}

fn new_connector_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    scratch: &Scratch,
    errors: &FormErrors,
    import_errors: &ImportErrors,
) -> Response {
    let shell = Shell::new("New connector", signed, Section::Connectors).with_flash(signed.take_flash(state));
    let pp = &import_errors.power_platform;
    let oa = &import_errors.openapi;
    let content = html! {
        nav.breadcrumb aria-label="Breadcrumb" { a href="/connectors" { "Connectors" } " / " }
        h1 { "New connector" }
        div.columns {
            section.panel aria-labelledby="scratch-title" {
                h2 #scratch-title { "From scratch" }
                p.muted { "Name it and say where its backend is; then choose how connections authenticate on the Security tab." }
                form method="post" action="/connectors/new" novalidate {
                    (csrf_input(signed))
                    (errors.summary())
                    (Field::new("display_name", "Display name").value(&scratch.display_name).required(true)
                        .placeholder("Weather").errors(errors.of("display_name")).render())
                    (Field::new("name", "Name").value(&scratch.name)
                        .hint("Lowercase letters, digits and dashes; made from the display name when left blank.")
                        .placeholder("weather").errors(errors.of("name")).render())
                    (Field::new("backend_url", "Backend URL").kind(Kind::Url).value(&scratch.backend_url).required(true)
                        .hint("The base URL of the API calls go to.").placeholder("https://api.weather.example/v1")
                        .errors(errors.of("backend_url")).render())
                    (Field::new("description", "Description").value(&scratch.description).errors(errors.of("description")).render())
                    div.actions { button.button.primary type="submit" { "Create and continue to Security" } }
                }
            }
            div.stack {
                section.panel aria-labelledby="pp-title" {
                    h2 #pp-title { "Import a Power Platform connector" }
                    p.muted { "The two files of a custom connector, as they are." }
                    form method="post" action="/connectors/import" enctype="multipart/form-data" {
                        (csrf_input(signed))
                        input type="hidden" name="kind" value="powerPlatform";
                        (pp.summary())
                        (file_field("api_properties", "apiProperties.json", ".json,application/json", pp.of("api_properties")))
                        (file_field("api_definition", "apiDefinition.swagger.json", ".json,application/json", pp.of("api_definition")))
                        div.actions { button.button type="submit" { "Import" } }
                    }
                }
                section.panel aria-labelledby="openapi-title" {
                    h2 #openapi-title { "Import an OpenAPI document" }
                    p.muted { "OpenAPI 3.0 or 3.1, JSON or YAML; its security scheme becomes the connection's authentication." }
                    form method="post" action="/connectors/import" enctype="multipart/form-data" {
                        (csrf_input(signed))
                        input type="hidden" name="kind" value="openapi";
                        (oa.summary())
                        (file_field("openapi", "OpenAPI document", ".json,.yaml,.yml", oa.of("openapi")))
                        div.actions { button.button type="submit" { "Import" } }
                    }
                }
            }
        }
    };
    layout::respond(status, layout::page(shell, content))
}

fn file_field(id: &str, label_text: &str, accept: &str, field_errors: &[String]) -> Markup {
    let error_id = format!("{id}-error");
    html! {
        div.field.has-error[!field_errors.is_empty()] {
            (layout::label(id, label_text, true))
            (layout::errors(&error_id, field_errors))
            input type="file" id=(id) name=(id) accept=(accept)
                aria-invalid=[(!field_errors.is_empty()).then_some("true")]
                aria-describedby=[(!field_errors.is_empty()).then_some(&error_id)];
        }
    }
}

/// The backend of a URL as typed. Empty stays empty, so that the model reports the missing
/// host as it does for the API.
fn backend_from_url(text: &str) -> Result<Backend, String> {
    if text.is_empty() {
        return Ok(Backend {
            scheme: Scheme::Https,
            host: String::new(),
            base_path: "/".to_owned(),
            host_template: None,
        });
    }
    let url = url::Url::parse(text)
        .map_err(|_| "is not an absolute URL: write it as https://api.example.com/v1".to_owned())?;
    let scheme = match url.scheme() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        _ => return Err("must start with https:// or http://".to_owned()),
    };
    let Some(host) = url.host_str() else { return Err("has no host".to_owned()) };
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment".to_owned());
    }
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    Ok(Backend { scheme, host, base_path: url.path().to_owned(), host_template: None })
}

/// Which field of the General and "from scratch" forms an API finding belongs to.
fn general_field(at: &str) -> Option<&'static str> {
    let at = at.strip_prefix("definition.").unwrap_or(at);
    match at {
        "metadata.displayName" => Some("display_name"),
        "metadata.name" => Some("name"),
        "metadata.description" => Some("description"),
        _ if at.starts_with("backend") => Some("backend_url"),
        _ => None,
    }
}

async fn create(State(state): State<Arc<AppState>>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let scratch = Scratch {
        display_name: fields.trimmed("display_name").to_owned(),
        name: fields.trimmed("name").to_owned(),
        backend_url: fields.trimmed("backend_url").to_owned(),
        description: fields.trimmed("description").to_owned(),
    };
    let invalid = |errors: FormErrors| {
        new_connector_page(
            &state,
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            &scratch,
            &errors,
            &ImportErrors::default(),
        )
    };
    let backend = match backend_from_url(&scratch.backend_url) {
        Ok(backend) => backend,
        Err(message) => {
            let mut errors = FormErrors::default();
            errors.add("backend_url", format!("The backend URL {message}."));
            return invalid(errors);
        }
    };
    let name = if scratch.name.is_empty() { &scratch.display_name } else { &scratch.name };
    let connector = Connector {
        metadata: Metadata {
            name: Metadata::slug(name),
            display_name: scratch.display_name.clone(),
            description: (!scratch.description.is_empty()).then(|| scratch.description.clone()),
            ..Metadata::default()
        },
        backend,
        operations: Vec::new(),
        connection: ConnectionSpec::none(),
        policies: Vec::new(),
        test_operation: None,
    };
    let source = ConnectorSource::Definition { connector, oauth_client: OAuthClientChange::Keep };
    match state.app.create_connector(&signed.principal, source).await {
        Ok(record) => redirect_with(
            &state,
            &signed,
            &format!("/connectors/{}/security", record.id),
            Flash::success(format!(
                "Connector “{}” created. Now choose how its connections authenticate.",
                record.connector.metadata.display_name
            )),
        ),
        Err(error) => match ApiError::from(error) {
            error if refusal(&error) => error_page(&signed, &error),
            error => invalid(spread(&error, general_field)),
        },
    }
}

/// An uploaded file: its name (without any directory) and contents.
struct Upload {
    name: String,
    bytes: bytes::Bytes,
}

async fn import(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let refused = |message: &str| {
        layout::problem_page(StatusCode::BAD_REQUEST, Some(&signed), "The upload could not be read", message)
    };
    let mut multipart = match multipart {
        Ok(multipart) => multipart,
        Err(rejection) => return refused(&rejection.body_text()),
    };
    let (mut csrf, mut kind) = (None, None);
    let mut files: Vec<(String, Upload)> = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return refused(&describe(&ApiError::PayloadTooLarge));
            }
            Err(error) => return refused(&error.body_text()),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(base_name);
        let bytes = match field.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return refused(&error.body_text()),
        };
        match (name.as_str(), file_name) {
            (CSRF_FIELD, None) => csrf = Some(String::from_utf8_lossy(&bytes).into_owned()),
            ("kind", None) => kind = Some(String::from_utf8_lossy(&bytes).into_owned()),
            (_, Some(file_name)) => files.push((name, Upload { name: file_name, bytes })),
            _ => {}
        }
    }
    if !signed.csrf_matches(csrf.as_deref()) {
        return super::csrf_refused(Some(&signed));
    }
    let mut file = |field: &str| files.iter().position(|(n, _)| n == field).map(|i| files.remove(i).1);
    let mut errors = ImportErrors::default();
    let import = match kind.as_deref() {
        Some("powerPlatform") => {
            let (properties, definition) = (file("api_properties"), file("api_definition"));
            let form = &mut errors.power_platform;
            let properties = chosen(properties, "api_properties", "apiProperties.json", form);
            let definition = chosen(definition, "api_definition", "apiDefinition.swagger.json", form);
            let (Some(mut properties), Some(mut definition)) = (properties, definition) else {
                return import_failed(&state, &signed, errors);
            };
            if properties.name == definition.name {
                properties.name = "apiProperties.json".to_owned();
                definition.name = "apiDefinition.swagger.json".to_owned();
            }
            let import = portico_import::power_platform::import_bytes(
                &properties.bytes,
                &properties.name,
                &definition.bytes,
                &definition.name,
            );
            (import, vec![(properties.name, "api_properties"), (definition.name, "api_definition")])
        }
        Some("openapi") => {
            let Some(document) = chosen(file("openapi"), "openapi", "the OpenAPI document", &mut errors.openapi) else {
                return import_failed(&state, &signed, errors);
            };
            let import = portico_import::openapi::import_bytes(&document.bytes, &document.name);
            (import, vec![(document.name, "openapi")])
        }
        _ => return refused("Choose what to import on the New connector page."),
    };
    let (import, file_fields) = import;
    let is_power_platform = kind.as_deref() == Some("powerPlatform");
    match state.app.create_connector(&signed.principal, ConnectorSource::Import(import)).await.map_err(ApiError::from) {
        Ok(record) => {
            let view = crate::views::ConnectorView::new(&record, false);
            let warnings = view.warnings.len();
            let message = match warnings {
                0 => format!("Imported “{}”.", view.display_name),
                1 => format!("Imported “{}” with 1 warning, listed below.", view.display_name),
                n => format!("Imported “{}” with {n} warnings, listed below.", view.display_name),
            };
            redirect_with(&state, &signed, &format!("/connectors/{}", view.id), Flash::success(message))
        }
        Err(error) if refusal(&error) => error_page(&signed, &error),
        Err(error) => {
            // A finding at `<file>:<line>:<column>` (or about a whole file) goes beside that file.
            let field_of = |at: &str| {
                file_fields
                    .iter()
                    .find(|(name, _)| at == name || at.strip_prefix(name.as_str()).is_some_and(|r| r.starts_with(':')))
                    .map(|(_, field)| *field)
            };
            let mut form = FormErrors::default();
            match &error {
                ApiError::Invalid { detail, errors: found } => {
                    for ProblemField { field, message } in found {
                        match field_of(field) {
                            Some(id) => form.add(id, format!("{field}: {message}")),
                            None => form.general(format!("{field}: {message}")),
                        }
                    }
                    if form.is_empty() {
                        form.general(detail.clone());
                    }
                }
                other => form.general(describe(other)),
            }
            if is_power_platform {
                errors.power_platform = form;
            } else {
                errors.openapi = form;
            }
            import_failed(&state, &signed, errors)
        }
    }
}

/// The uploaded file of `field`, or an error beside it when none was chosen.
fn chosen(upload: Option<Upload>, field: &str, what: &str, errors: &mut FormErrors) -> Option<Upload> {
    match upload {
        Some(upload) if !upload.name.is_empty() || !upload.bytes.is_empty() => Some(Upload {
            name: if upload.name.is_empty() { what.to_owned() } else { upload.name },
            bytes: upload.bytes,
        }),
        _ => {
            errors.add(field, format!("Choose {what}."));
            None
        }
    }
}

fn import_failed(state: &AppState, signed: &Signed, errors: ImportErrors) -> Response {
    new_connector_page(
        state,
        signed,
        StatusCode::UNPROCESSABLE_ENTITY,
        &Scratch::default(),
        &FormErrors::default(),
        &errors,
    )
}

/// `C:\files\apiProperties.json` → `apiProperties.json`: a browser may send a path.
fn base_name(name: &str) -> String {
    name.rsplit(['/', '\\']).next().unwrap_or_default().chars().filter(|c| !c.is_control()).take(200).collect()
}

/// The tabs of a connector page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    General,
    Security,
    Definition,
    Test,
}

async fn find(state: &AppState, signed: &Signed, id: &str) -> Result<ConnectorRecord, Response> {
    state.app.connector(&signed.principal, id).await.map_err(|error| error_page(signed, &error.into()))
}

fn connector_page(
    state: &AppState,
    signed: &Signed,
    record: &ConnectorRecord,
    tab: Tab,
    status: StatusCode,
    body: Markup,
) -> Response {
    let m = &record.connector.metadata;
    let base = format!("/connectors/{}", record.id);
    let tabs = [
        (Tab::General, "General", base.clone()),
        (Tab::Security, "Security", format!("{base}/security")),
        (Tab::Definition, "Definition", format!("{base}/definition")),
        (Tab::Test, "Test", format!("{base}/test")),
    ];
    let title = format!("{} · {}", m.display_name, tabs.iter().find(|t| t.0 == tab).map_or("", |t| t.1));
    let shell = Shell::new(&title, signed, Section::Connectors).with_flash(signed.take_flash(state));
    let content = html! {
        nav.breadcrumb aria-label="Breadcrumb" { a href="/connectors" { "Connectors" } " / " }
        div.page-head {
            div {
                h1 { (m.display_name) }
                p.muted { code { (m.name) } " · " (security::describe_auth(&record.connector, &state.app.catalog)) }
            }
            @if signed.may(Action::CreateConnection) {
                a.button.primary href={ "/connections/new?connector=" (record.id) } { "New connection" }
            }
        }
        nav.tabs aria-label="Connector" {
            @for (t, label, href) in &tabs {
                a href=(href) aria-current=[(*t == tab).then_some("page")] { (label) }
            }
        }
        div.tab-panel { (body) }
    };
    layout::respond(status, layout::page(shell, content))
}

async fn general(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<String>) -> Response {
    let record = match find(&state, &signed, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let c = &record.connector;
    let values = Scratch {
        display_name: c.metadata.display_name.clone(),
        description: c.metadata.description.clone().unwrap_or_default(),
        backend_url: c.backend.base_url(),
        name: c.metadata.name.clone(),
    };
    general_page(&state, &signed, &record, StatusCode::OK, &values, &FormErrors::default())
}

fn general_page(
    state: &AppState,
    signed: &Signed,
    record: &ConnectorRecord,
    status: StatusCode,
    values: &Scratch,
    errors: &FormErrors,
) -> Response {
    let c = &record.connector;
    let m = &c.metadata;
    let may_write = signed.may(Action::WriteConnectors);
    let body = html! {
        div.columns {
            section.panel aria-labelledby="details-title" {
                h2 #details-title { "Details" }
                dl.facts {
                    dt { "Name" } dd { code { (m.name) } }
                    @if let Some(description) = &m.description { dt { "Description" } dd { (description) } }
                    dt { "Backend" } dd { code.wrap { @match &c.backend.host_template { Some(t) => (t.to_string()), None => (c.backend.base_url()) } } }
                    dt { "Authentication" } dd { (security::describe_auth(c, &state.app.catalog)) }
                    dt { "Operations" } dd { (c.operations.len()) }
                    @if let Some(test) = &c.test_operation { dt { "Test operation" } dd { code { (test) } } }
                    @if let Some(version) = &m.version { dt { "Version" } dd { (version) } }
                    @if let Some(publisher) = &m.publisher { dt { "Publisher" } dd { (publisher) } }
                    dt { "Created" } dd { (when(record.created_at)) }
                    dt { "Updated" } dd { (when(record.updated_at)) }
                }
            }
            @if may_write {
                section.panel aria-labelledby="edit-title" {
                    h2 #edit-title { "Edit details" }
                    form method="post" action={ "/connectors/" (record.id) } novalidate {
                        (csrf_input(signed))
                        (errors.summary())
                        (Field::new("display_name", "Display name").value(&values.display_name).required(true)
                            .errors(errors.of("display_name")).render())
                        (Field::new("description", "Description").value(&values.description).errors(errors.of("description")).render())
                        @if c.backend.host_template.is_none() {
                            (Field::new("backend_url", "Backend URL").kind(Kind::Url).value(&values.backend_url).required(true)
                                .errors(errors.of("backend_url")).render())
                        }
                        div.actions { button.button.primary type="submit" { "Save" } }
                    }
                }
            }
        }
        @if !record.warnings.is_empty() {
            section.panel aria-labelledby="warnings-title" {
                h2 #warnings-title { "Import warnings (" (record.warnings.len()) ")" }
                ul.findings {
                    @for finding in &record.warnings {
                        li { @if !finding.at.is_empty() { code { (finding.at) } ": " } (finding.message) }
                    }
                }
            }
        }
        @if may_write {
            section.panel.danger-zone aria-labelledby="delete-title" {
                h2 #delete-title { "Delete this connector" }
                p.muted { "Its connections must be deleted first, or with it." }
                a.button.danger href={ "/connectors/" (record.id) "/delete" } { "Delete connector…" }
            }
        }
    };
    connector_page(state, signed, record, Tab::General, status, body)
}

/// Sends a changed connector through the use case that replaces it: the model's validation,
/// the re-check of existing connections, the cache invalidation.
async fn replace(
    state: &AppState,
    signed: &Signed,
    id: &str,
    connector: Connector,
    oauth_client: OAuthClientChange,
) -> Result<(), ApiError> {
    let source = ConnectorSource::Definition { connector, oauth_client };
    state.app.replace_connector(&signed.principal, id, source).await.map(|_| ()).map_err(ApiError::from)
}

async fn save_general(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let record = match find(&state, &signed, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let values = Scratch {
        display_name: fields.trimmed("display_name").to_owned(),
        description: fields.trimmed("description").to_owned(),
        backend_url: fields.trimmed("backend_url").to_owned(),
        name: record.connector.metadata.name.clone(),
    };
    let mut connector = record.connector.clone();
    connector.metadata.display_name = values.display_name.clone();
    connector.metadata.description = (!values.description.is_empty()).then(|| values.description.clone());
    if connector.backend.host_template.is_none() {
        match backend_from_url(&values.backend_url) {
            Ok(backend) => connector.backend = backend,
            Err(message) => {
                let mut errors = FormErrors::default();
                errors.add("backend_url", format!("The backend URL {message}."));
                return general_page(&state, &signed, &record, StatusCode::UNPROCESSABLE_ENTITY, &values, &errors);
            }
        }
    }
    match replace(&state, &signed, &id, connector, OAuthClientChange::Keep).await {
        Ok(()) => redirect_with(&state, &signed, &format!("/connectors/{id}"), Flash::success("Saved.")),
        Err(error) if refusal(&error) => error_page(&signed, &error),
        Err(error) => {
            let errors = spread(&error, general_field);
            general_page(&state, &signed, &record, StatusCode::UNPROCESSABLE_ENTITY, &values, &errors)
        }
    }
}

async fn security_page(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<String>) -> Response {
    let record = match find(&state, &signed, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let form = SecurityForm::of(&record);
    security_tab(&state, &signed, &record, StatusCode::OK, form.as_ref(), &FormErrors::default())
}

fn security_tab(
    state: &AppState,
    signed: &Signed,
    record: &ConnectorRecord,
    status: StatusCode,
    form: Option<&SecurityForm>,
    errors: &FormErrors,
) -> Response {
    let may_write = signed.may(Action::WriteConnectors);
    // Several ways to connect (from imported files) are not edited here; nor is anything by
    // those who may not change connectors.
    let (Some(form), true) = (form, may_write) else {
        let sets = record.connector.connection.sets();
        let label = |set: &portico_model::ParameterSet| {
            set.ui.as_ref().map(|u| u.label.clone()).filter(|l| !l.is_empty()).unwrap_or_else(|| set.name.clone())
        };
        let body = html! {
            section.panel {
                h2 { "Security" }
                @if sets.len() > 1 {
                    p { "This connector offers a choice of ways to connect (from its imported files):" }
                } @else {
                    p { "How a connection to this connector authenticates:" }
                }
                ul {
                    @for set in sets {
                        li { @if sets.len() > 1 { strong { (label(set)) } " — " } (security::describe_set(set, &state.app.catalog)) }
                    }
                }
                @if !may_write {
                    p.muted { "Connector authors and admins change it." }
                } @else {
                    p.muted { "Each is shown to users as a choice when they create a connection. Change them in the connector's files and import it again." }
                }
            }
        };
        return connector_page(state, signed, record, Tab::Security, status, body);
    };
    let auth_options: Vec<(String, String)> =
        AUTH_TYPES.iter().map(|(v, t)| ((*v).to_owned(), (*t).to_owned())).collect();
    let providers = security::providers(&state.app.catalog, &form.oauth_provider);
    let locations = [("header".to_owned(), "Header".to_owned()), ("query".to_owned(), "Query".to_owned())];
    let secret_set = record.oauth_client_secret.is_some();
    let redirect_url = state.app.redirect_uri();
    // The chosen provider's own endpoints, shown where the URLs would be typed.
    let own = provider_urls(state, &form.oauth_provider);
    let body = html! {
        form.panel.security-form method="post" action={ "/connectors/" (record.id) "/security" } novalidate {
            (csrf_input(signed))
            h2 { "Security" }
            p.muted { "How a connection to this connector authenticates to its backend. Users see the labels below when they create a connection." }
            (errors.summary())
            (layout::select("auth", "Authentication type", &auth_options, &form.auth, None, errors.of("auth")))

            section.auth-section.auth-none aria-labelledby="none-title" {
                h3 #none-title { "No authentication" }
                p.muted { "Connections need nothing to sign in; calls reach the backend as they are." }
            }
            section.auth-section.auth-basic aria-labelledby="basic-title" {
                h3 #basic-title { "Basic authentication" }
                p.muted { "Users give a user name and a password; calls carry " code { "Authorization: Basic" } "." }
                (Field::new("basic_username_label", "User name label").value(&form.basic_username_label).required(true)
                    .hint("The label of the user-name field users see.").errors(errors.of("basic_username_label")).render())
                (Field::new("basic_password_label", "Password label").value(&form.basic_password_label).required(true)
                    .hint("The label of the password field users see.").errors(errors.of("basic_password_label")).render())
            }
            section.auth-section.auth-apiKey aria-labelledby="apikey-title" {
                h3 #apikey-title { "API Key" }
                p.muted { "Users give a key; every call carries it in a header or query parameter." }
                (Field::new("apikey_label", "Parameter label").value(&form.apikey_label).required(true)
                    .hint("What users see, e.g. “API key”.").errors(errors.of("apikey_label")).render())
                (Field::new("apikey_name", "Parameter name").value(&form.apikey_name).required(true)
                    .hint("The header or query parameter the backend reads, e.g. X-Api-Key.").errors(errors.of("apikey_name")).render())
                (layout::select("apikey_in", "Parameter location", &locations, &form.apikey_in, None, errors.of("apikey_in")))
            }
            section.auth-section.auth-oauth2 aria-labelledby="oauth-title" {
                h3 #oauth-title { "OAuth 2.0" }
                p.muted { "Users sign in at the identity provider; calls carry the access token." }
                (provider_select(state, &providers, &form.oauth_provider, errors.of("oauth_provider")))
                (Field::new("oauth_client_id", "Client ID").value(&form.oauth_client_id).autocomplete("off")
                    .hint("The client registered at the identity provider.").errors(errors.of("oauth_client_id")).render())
                (Field::new("oauth_client_secret", "Client secret").kind(Kind::Password).autocomplete("new-password")
                    .placeholder(if secret_set { "•••••••• (set)" } else { "" })
                    .hint(if secret_set { "Set. It is never shown again; leave blank to keep it." } else { "Not set. It is sealed when saved and never shown again." })
                    .errors(errors.of("oauth_client_secret")).render())
                (Field::new("oauth_authorization_url", "Authorization URL").kind(Kind::Url).value(&form.oauth_authorization_url)
                    .placeholder(own.0.as_deref().unwrap_or(EXAMPLE_AUTHORIZATION_URL)).errors(errors.of("oauth_authorization_url")).render())
                (Field::new("oauth_token_url", "Token URL").kind(Kind::Url).value(&form.oauth_token_url)
                    .placeholder(own.1.as_deref().unwrap_or(EXAMPLE_TOKEN_URL)).errors(errors.of("oauth_token_url")).render())
                (Field::new("oauth_refresh_url", "Refresh URL").kind(Kind::Url).value(&form.oauth_refresh_url)
                    .hint("Where tokens are renewed; the token URL when blank.").errors(errors.of("oauth_refresh_url")).render())
                (Field::new("oauth_scopes", "Scopes").value(&form.oauth_scopes)
                    .hint("Separated by spaces or commas.").placeholder("openid offline_access").errors(errors.of("oauth_scopes")).render())
                div.field.redirect-url {
                    label for="redirect_url" { "Redirect URL" }
                    p.hint #redirect_url-hint { "Register this URL at the identity provider." }
                    div.copy-row {
                        input #redirect_url type="text" readonly value=(redirect_url) aria-describedby="redirect_url-hint";
                        button.button.copy type="button" data-copy="redirect_url" hidden { "Copy" }
                    }
                }
            }
            div.actions { button.button.primary type="submit" { "Save" } }
        }
    };
    connector_page(state, signed, record, Tab::Security, status, body)
}

const EXAMPLE_AUTHORIZATION_URL: &str = "https://login.example.com/oauth2/authorize";
const EXAMPLE_TOKEN_URL: &str = "https://login.example.com/oauth2/token";

/// The authorization and token URLs of a catalog provider that has its own (not a generic one).
fn provider_urls(state: &AppState, provider: &str) -> (Option<String>, Option<String>) {
    match state.app.catalog.get(provider) {
        Some(entry) if !entry.generic => (entry.authorization_url.clone(), entry.token_url.clone()),
        _ => (None, None),
    }
}

/// The identity provider choice; each option carries its own endpoints, which the script
/// shows as the URL fields' placeholders.
fn provider_select(state: &AppState, providers: &[(String, String)], chosen: &str, field_errors: &[String]) -> Markup {
    let id = "oauth_provider";
    let hint = "Generic OAuth 2 needs the authorization and token URLs; for the others, leave them blank to use the provider's own.";
    let described = if field_errors.is_empty() { format!("{id}-hint") } else { format!("{id}-hint {id}-error") };
    html! {
        div.field.has-error[!field_errors.is_empty()] {
            (layout::label(id, "Identity provider", false))
            p.hint id={ (id) "-hint" } { (hint) }
            (layout::errors(&format!("{id}-error"), field_errors))
            select id=(id) name=(id) aria-invalid=[(!field_errors.is_empty()).then_some("true")] aria-describedby=(described) {
                @for (value, text) in providers {
                    @let (authorization, token) = provider_urls(state, value);
                    option value=(value) selected[value == chosen] data-authorization-url=[authorization] data-token-url=[token] { (text) }
                }
            }
        }
    }
}

async fn save_security(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let record = match find(&state, &signed, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let mut form = SecurityForm::from_fields(&fields);
    let invalid = |form: &SecurityForm, errors: &FormErrors| {
        // The secret is not written back into the page.
        let shown = SecurityForm { oauth_client_secret: String::new(), ..form.clone() };
        security_tab(&state, &signed, &record, StatusCode::UNPROCESSABLE_ENTITY, Some(&shown), errors)
    };
    let connector = match form.apply(&record.connector) {
        Ok(connector) => connector,
        Err((field, message)) => {
            let mut errors = FormErrors::default();
            errors.add(field, field_message(&message));
            return invalid(&form, &errors);
        }
    };
    let oauth_client = form.oauth_client(&record);
    let result = replace(&state, &signed, &id, connector.clone(), oauth_client).await;
    form.oauth_client_secret.clear();
    match result {
        Ok(()) => redirect_with(
            &state,
            &signed,
            &format!("/connectors/{id}/security"),
            Flash::success(
                "Security saved. New connections use it; existing ones that no longer fit need signing in again.",
            ),
        ),
        Err(error) if refusal(&error) => error_page(&signed, &error),
        Err(error) => {
            let errors = spread(&error, |at| form.field_of(at, &connector));
            invalid(&form, &errors)
        }
    }
}

async fn definition(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<String>) -> Response {
    let record = match find(&state, &signed, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let c = &record.connector;
    let json = serde_json::to_string_pretty(c).unwrap_or_default();
    let body = html! {
        section.panel aria-labelledby="ops-title" {
            h2 #ops-title { "Operations (" (c.operations.len()) ")" }
            @if c.operations.is_empty() {
                p.muted { "None declared: calls go through the proxy, to any path under the backend URL." }
            } @else {
                table.list {
                    thead { tr { th scope="col" { "Operation" } th scope="col" { "Method" } th scope="col" { "Path" } th scope="col" { "Summary" } } }
                    tbody {
                        @for op in &c.operations {
                            tr {
                                td data-label="Operation" { code { (op.id) } }
                                td data-label="Method" { span.method { (op.method) } }
                                td data-label="Path" { code.wrap { (op.path) } }
                                td data-label="Summary" { (op.summary.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
        section.panel aria-labelledby="json-title" {
            h2 #json-title { "Definition" }
            p.muted { "Portico's own format; " code { "POST /v1/connectors" } " takes it as " code { "{\"definition\": …}" } "." }
            pre.code tabindex="0" aria-label="The connector definition as JSON" { code { (json) } }
        }
    };
    connector_page(&state, &signed, &record, Tab::Definition, StatusCode::OK, body)
}

async fn test_page(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<String>) -> Response {
    test_tab(&state, &signed, &id, None, None).await
}

async fn test_tab(
    state: &AppState,
    signed: &Signed,
    id: &str,
    chosen: Option<&str>,
    outcome: Option<(bool, String)>,
) -> Response {
    let record = match find(state, signed, id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let filter = ConnectionFilter { connector_id: Some(id.to_owned()), ..ConnectionFilter::default() };
    let connections = match state.app.list_connections(&signed.principal, &filter, None, 200).await {
        Ok(page) => page.items,
        Err(error) => return error_page(signed, &error.into()),
    };
    // Only the connections the principal may call through.
    let options: Vec<(String, String)> = connections
        .iter()
        .map(|c| &c.record)
        .filter(|_| portico_app::access::calls_what_it_sees(&signed.principal))
        .map(|c| (c.id.clone(), format!("{} — {}", c.display_name, super::connections::status_words(c.status).0)))
        .collect();
    let what = match &record.connector.test_operation {
        Some(op) => html! { "the operation " code { (op) } },
        None => html! { "a " code { "GET" } " of the backend URL" },
    };
    let body = html! {
        section.panel aria-labelledby="test-title" {
            h2 #test-title { "Test a connection" }
            p.muted { "Calls " (what) " through the chosen connection, with its credential." }
            @if let Some((ok, message)) = &outcome {
                div.outcome.(if *ok { "outcome-ok" } else { "outcome-bad" }) role="status" { (message) }
            }
            @if options.is_empty() && !connections.is_empty() {
                p { "Your role (" (signed.principal.role) ") does not call through connections." }
            } @else if options.is_empty() {
                p {
                    "No connection uses this connector yet. "
                    @if signed.may(Action::CreateConnection) { a href={ "/connections/new?connector=" (record.id) } { "Create one" } "." }
                }
            } @else {
                form method="post" action={ "/connectors/" (record.id) "/test" } {
                    (csrf_input(signed))
                    (layout::select("connection", "Connection", &options, chosen.unwrap_or(""), None, &[]))
                    div.actions { button.button.primary type="submit" { "Run test" } }
                }
            }
        }
    };
    connector_page(state, signed, &record, Tab::Test, StatusCode::OK, body)
}

async fn run_test(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let connection = fields.trimmed("connection").to_owned();
    // Only this connector's connections are offered; another one is refused like a missing one.
    let outcome = match state.app.connection(&signed.principal, &connection).await {
        Ok(info) if info.record.connector_id == id => match test_connection(&state, &signed, &connection).await {
            Ok(outcome) => Some(outcome),
            Err(refused) => return error_page(&signed, &refused),
        },
        Ok(_) | Err(portico_app::Error::NotFound(_)) => {
            Some((false, "There is no such connection of this connector.".to_owned()))
        }
        Err(error) => Some((false, describe(&error.into()))),
    };
    test_tab(&state, &signed, &id, Some(&connection), outcome).await
}

/// Runs the API's connection test: whether it passed, in words. A test the principal may
/// not run (or of a connection it may not see) is an error for the 403 or 404 page.
pub async fn test_connection(state: &AppState, signed: &Signed, connection: &str) -> Result<(bool, String), ApiError> {
    let upstream = portico_runtime::UpstreamSlot::default();
    let outcome = match state.app.test_connection(&signed.principal, &upstream, connection).await {
        Ok(report) => {
            let (ok, latency) = (report.ok, report.latency_ms);
            let message = match (ok, report.status, report.error.as_deref()) {
                (true, Some(status), _) => {
                    format!("The test passed: the backend answered HTTP {status} in {latency} ms.")
                }
                (false, Some(status), _) => {
                    format!("The test failed: the backend answered HTTP {status} in {latency} ms.")
                }
                (_, None, Some(error)) => format!("The test failed: {}", super::sentence(error)),
                _ => "The test failed.".to_owned(),
            };
            (ok, message)
        }
        Err(error) => match ApiError::from(error) {
            refused @ (ApiError::Forbidden(_) | ApiError::NotFound(_) | ApiError::Unauthorized) => return Err(refused),
            error => (false, format!("The test could not run: {}", describe(&error))),
        },
    };
    Ok(outcome)
}

async fn delete_page(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<String>) -> Response {
    if let Some(refused) = refused_page(&signed, Action::WriteConnectors) {
        return refused;
    }
    let record = match find(&state, &signed, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let filter = ConnectionFilter { connector_id: Some(id.clone()), ..ConnectionFilter::default() };
    let connections = match state.app.list_connections(&signed.principal, &filter, None, 200).await {
        Ok(page) => page.items.len() + usize::from(page.next.is_some()),
        Err(error) => return error_page(&signed, &error.into()),
    };
    let name = &record.connector.metadata.display_name;
    let shell = Shell::new("Delete connector", &signed, Section::Connectors);
    let content = html! {
        div.panel.narrow {
            h1 { "Delete “" (name) "”?" }
            form method="post" action={ "/connectors/" (record.id) "/delete" } {
                (csrf_input(&signed))
                @if connections > 0 {
                    p { (connections) @if connections > 200 { "+" } " connection" @if connections != 1 { "s" } " use" @if connections == 1 { "s" } " it." }
                    div.field.checkbox {
                        input #cascade type="checkbox" name="cascade" value="true";
                        label for="cascade" { "Also delete its connections and their secrets" }
                    }
                } @else {
                    p { "No connection uses it. This cannot be undone." }
                }
                div.actions {
                    button.button.danger type="submit" { "Delete connector" }
                    a.button href={ "/connectors/" (record.id) } { "Cancel" }
                }
            }
        }
    };
    layout::ok(layout::page(shell, content))
}

async fn delete(State(state): State<Arc<AppState>>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { signed, fields } = posted;
    let cascade = fields.get("cascade") == Some("true");
    match state.app.delete_connector(&signed.principal, &id, cascade).await.map_err(ApiError::from) {
        Ok(_) => redirect_with(&state, &signed, "/connectors", Flash::success("Connector deleted.")),
        Err(ApiError::Conflict(message)) => redirect_with(
            &state,
            &signed,
            &format!("/connectors/{id}/delete"),
            Flash::error(format!(
                "{} Tick the box to delete them too.",
                super::sentence(message.split(':').next().unwrap_or(&message))
            )),
        ),
        Err(error) => error_page(&signed, &error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_urls_become_scheme_host_and_path() {
        let b = backend_from_url("https://api.example.com:8443/v1/").unwrap();
        assert_eq!((b.scheme, b.host.as_str(), b.base_path.as_str()), (Scheme::Https, "api.example.com:8443", "/v1/"));
        let b = backend_from_url("http://127.0.0.1:9000").unwrap();
        assert_eq!((b.scheme, b.host.as_str(), b.base_path.as_str()), (Scheme::Http, "127.0.0.1:9000", "/"));
        assert!(backend_from_url("").unwrap().host.is_empty());
        assert!(backend_from_url("api.example.com").is_err());
        assert!(backend_from_url("ftp://api.example.com").is_err());
        assert!(backend_from_url("https://api.example.com/?x=1").is_err());
    }

    #[test]
    fn uploaded_names_lose_their_directories() {
        assert_eq!(base_name("C:\\files\\apiProperties.json"), "apiProperties.json");
        assert_eq!(base_name("a/b/openapi.yaml"), "openapi.yaml");
    }

    #[test]
    fn general_findings_land_on_their_fields() {
        assert_eq!(general_field("definition.metadata.displayName"), Some("display_name"));
        assert_eq!(general_field("definition.backend.host"), Some("backend_url"));
        assert_eq!(general_field("definition.connection"), None);
    }
}
