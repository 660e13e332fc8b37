//! The page shell and the form pieces every page uses. Markup is escaped by maud; nothing here
//! takes raw HTML.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use portico_app::access::Action;

use super::session::{CSRF_FIELD, Flash, FlashKind, Signed};

/// The part of the portal a page belongs to, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Connectors,
    Connections,
    Keys,
    Members,
    None,
}

/// What surrounds a page's content.
pub struct Shell<'a> {
    pub title: &'a str,
    pub signed: Option<&'a Signed>,
    pub section: Section,
    pub flash: Option<Flash>,
}

impl<'a> Shell<'a> {
    pub fn new(title: &'a str, signed: &'a Signed, section: Section) -> Self {
        Shell { title, signed: Some(signed), section, flash: None }
    }

    pub fn with_flash(mut self, flash: Option<Flash>) -> Self {
        self.flash = flash;
        self
    }
}

/// A whole page.
pub fn page(shell: Shell<'_>, content: Markup) -> Markup {
    let nav_link = |href: &str, label: &str, section: Section| {
        html! {
            a href=(href) aria-current=[(shell.section == section).then_some("page")] { (label) }
        }
    };
    let top = html! {
        a.brand href="/" { span.brand-mark aria-hidden="true" { "P" } "Portico" }
        @if let Some(signed) = shell.signed {
            nav.main-nav aria-label="Main" {
                (nav_link("/connectors", "Connectors", Section::Connectors))
                (nav_link("/connections", "Connections", Section::Connections))
                @if signed.may(Action::ManageKeys) {
                    (nav_link("/keys", "API keys", Section::Keys))
                }
                @if signed.may(Action::ManageMembers) {
                    (nav_link("/members", "Members", Section::Members))
                }
            }
            p.who {
                span.visually-hidden { "Signed in as " }
                span.who-name { (breakable(signed.who())) }
                " "
                span.role-badge title="Your role in this tenant" { (signed.principal.role) }
            }
            form.sign-out method="post" action="/sign-out" {
                (csrf_input(signed))
                button.button.quiet type="submit" { "Sign out" }
            }
        }
    };
    let content = html! {
        @if let Some(flash) = &shell.flash {
            div.flash.(flash_class(flash.kind)) role=(flash_role(flash.kind)) { (flash.message) }
        }
        (content)
    };
    document(shell.title, None, top, content)
}

/// A whole page for someone who is not signed in to the portal and is not led into it (the
/// hosted connect page): no navigation, the brand not a link; `stylesheet` after the portal's.
pub fn standalone_page(title: &str, stylesheet: Option<&str>, content: Markup) -> Markup {
    let top = html! { span.brand { span.brand-mark aria-hidden="true" { "P" } "Portico" } };
    document(title, stylesheet, top, content)
}

fn document(title: &str, stylesheet: Option<&str>, top: Markup, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Portico" }
                link rel="stylesheet" href="/assets/portal.css";
                @if let Some(href) = stylesheet { link rel="stylesheet" href=(href); }
                script src="/assets/portal.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top { div.top-inner { (top) } }
                main #main tabindex="-1" { (content) }
            }
        }
    }
}

/// An e-mail address that may break after its `@` on a narrow screen.
fn breakable(text: &str) -> Markup {
    match text.split_once('@') {
        Some((local, domain)) => html! { (local) "@" wbr; (domain) },
        None => html! { (text) },
    }
}

fn flash_class(kind: FlashKind) -> &'static str {
    match kind {
        FlashKind::Success => "flash-success",
        FlashKind::Error => "flash-error",
    }
}

fn flash_role(kind: FlashKind) -> &'static str {
    match kind {
        FlashKind::Success => "status",
        FlashKind::Error => "alert",
    }
}

/// The page as a response: HTML that is never cached (it shows a tenant's data), never framed,
/// and runs only this site's script.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

pub fn ok(markup: Markup) -> Response {
    respond(StatusCode::OK, markup)
}

/// The hidden CSRF field of a form.
pub fn csrf_input(signed: &Signed) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(signed.csrf); }
}

/// Field errors of a form by field id, and the errors that belong to no field.
#[derive(Debug, Default)]
pub struct FormErrors {
    pub fields: BTreeMap<String, Vec<String>>,
    pub general: Vec<String>,
}

impl FormErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields.entry(field.to_owned()).or_default().push(message.into());
    }

    pub fn general(&mut self, message: impl Into<String>) {
        self.general.push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }

    pub fn of(&self, field: &str) -> &[String] {
        self.fields.get(field).map(Vec::as_slice).unwrap_or_default()
    }

    /// The summary at the top of a form: every error, each field's linked to its input.
    pub fn summary(&self) -> Markup {
        html! {
            @if !self.is_empty() {
                div.error-summary role="alert" tabindex="-1" {
                    h2 { "Please fix the following" }
                    ul {
                        @for message in &self.general { li { (message) } }
                        @for (field, messages) in &self.fields {
                            @for message in messages { li { a href={ "#" (field) } { (message) } } }
                        }
                    }
                }
            }
        }
    }
}

/// How a field is typed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Url,
    Password,
    Number,
    Email,
    Date,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Url => "url",
            Kind::Password => "password",
            Kind::Number => "number",
            Kind::Email => "email",
            Kind::Date => "date",
        }
    }
}

/// One labelled input with its hint and errors.
pub struct Field<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub kind: Kind,
    pub value: &'a str,
    pub required: bool,
    pub hint: Option<&'a str>,
    pub placeholder: Option<&'a str>,
    pub autocomplete: Option<&'a str>,
    pub errors: &'a [String],
}

impl<'a> Field<'a> {
    pub fn new(id: &'a str, label: &'a str) -> Self {
        Field {
            id,
            label,
            kind: Kind::Text,
            value: "",
            required: false,
            hint: None,
            placeholder: None,
            autocomplete: None,
            errors: &[],
        }
    }

    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    pub fn value(mut self, value: &'a str) -> Self {
        self.value = value;
        self
    }

    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    pub fn hint(mut self, hint: &'a str) -> Self {
        self.hint = Some(hint);
        self
    }

    pub fn placeholder(mut self, placeholder: &'a str) -> Self {
        self.placeholder = Some(placeholder);
        self
    }

    pub fn autocomplete(mut self, autocomplete: &'a str) -> Self {
        self.autocomplete = Some(autocomplete);
        self
    }

    pub fn errors(mut self, errors: &'a [String]) -> Self {
        self.errors = errors;
        self
    }

    pub fn render(&self) -> Markup {
        let hint_id = format!("{}-hint", self.id);
        let error_id = format!("{}-error", self.id);
        let described =
            describedby(self.hint.is_some().then_some(&hint_id), (!self.errors.is_empty()).then_some(&error_id));
        html! {
            div.field.has-error[!self.errors.is_empty()] {
                (label(self.id, self.label, self.required))
                @if let Some(hint) = self.hint { p.hint id=(hint_id) { (hint) } }
                (errors(&error_id, self.errors))
                input id=(self.id) name=(self.id) type=(self.kind.as_str()) value=(self.value)
                    required[self.required]
                    placeholder=[self.placeholder]
                    autocomplete=[self.autocomplete]
                    spellcheck=[(self.kind != Kind::Text).then_some("false")]
                    aria-invalid=[(!self.errors.is_empty()).then_some("true")]
                    aria-describedby=[described];
            }
        }
    }
}

/// A `<select>` with its label, hint and errors; options are (value, text).
pub fn select(
    id: &str,
    label_text: &str,
    options: &[(String, String)],
    selected: &str,
    hint: Option<&str>,
    field_errors: &[String],
) -> Markup {
    let hint_id = format!("{id}-hint");
    let error_id = format!("{id}-error");
    let described = describedby(hint.is_some().then_some(&hint_id), (!field_errors.is_empty()).then_some(&error_id));
    html! {
        div.field.has-error[!field_errors.is_empty()] {
            (label(id, label_text, false))
            @if let Some(hint) = hint { p.hint id=(hint_id) { (hint) } }
            (errors(&error_id, field_errors))
            select id=(id) name=(id) aria-invalid=[(!field_errors.is_empty()).then_some("true")]
                aria-describedby=[described] {
                @for (value, text) in options {
                    option value=(value) selected[value == selected] { (text) }
                }
            }
        }
    }
}

pub fn label(id: &str, text: &str, required: bool) -> Markup {
    html! {
        label for=(id) {
            (text)
            @if required { " " span.required { "(required)" } }
        }
    }
}

/// The errors of one field, announced with it (`aria-describedby`).
pub fn errors(id: &str, messages: &[String]) -> Markup {
    html! {
        @if !messages.is_empty() {
            p.field-error id=(id) {
                @for (i, message) in messages.iter().enumerate() {
                    @if i > 0 { br; }
                    (message)
                }
            }
        }
    }
}

fn describedby(hint: Option<&String>, error: Option<&String>) -> Option<String> {
    let ids: Vec<&str> = [hint, error].into_iter().flatten().map(String::as_str).collect();
    (!ids.is_empty()).then(|| ids.join(" "))
}

/// A dialog over a dimmed page; the script makes it modal, and Escape leaves by `cancel`.
/// Without the script it is a card on a page of its own.
pub fn modal(title_id: &str, cancel: &str, content: Markup) -> Markup {
    html! {
        div.backdrop {
            dialog.modal open aria-labelledby=(title_id) data-modal data-cancel=(cancel) {
                (content)
            }
        }
    }
}

/// What a confirmation dialog asks.
pub struct Confirm<'a> {
    /// The page's title.
    pub title: &'a str,
    pub section: Section,
    /// The question, the dialog's heading.
    pub question: &'a str,
    /// What follows from it.
    pub body: Markup,
    /// Where the form posts when confirmed.
    pub action: &'a str,
    /// The button that confirms.
    pub button: &'a str,
    /// Where Cancel (and Escape) go.
    pub cancel: &'a str,
}

/// A page whose dialog asks before a destructive form is sent.
pub fn confirm_page(signed: &Signed, confirm: Confirm<'_>) -> Response {
    let shell = Shell::new(confirm.title, signed, confirm.section);
    let content = modal(
        "dialog-title",
        confirm.cancel,
        html! {
            h1 #dialog-title { (confirm.question) }
            (confirm.body)
            form method="post" action=(confirm.action) {
                (csrf_input(signed))
                div.actions {
                    button.button.danger type="submit" { (confirm.button) }
                    a.button href=(confirm.cancel) { "Cancel" }
                }
            }
        },
    );
    ok(page(shell, content))
}

/// A page of its own for what went wrong (not found, refused form).
pub fn problem_page(status: StatusCode, signed: Option<&Signed>, title: &str, message: &str) -> Response {
    let shell = Shell { title, signed, section: Section::None, flash: None };
    respond(
        status,
        page(
            shell,
            html! {
                div.panel.narrow {
                    h1 { (title) }
                    p { (message) }
                    p { a.button href="/" { "Go to the start page" } }
                }
            },
        ),
    )
}
