//! The connection form, shared by the portal's "New connection" dialog and the hosted connect
//! page: the inputs of a connector's connection parameters as its author labelled them (a
//! choice of parameter sets, text, masked secrets, allowed values, booleans), and the values a
//! submitted form gives the `connect`/`create_connection` use cases. Nothing here knows who is
//! asking: the pages around it do.
//!
//! Parameter names may hold any character (`token:TenantId`), so inputs are named by position:
//! `p<set>_<field>`. Secrets are never written back into a page.

use std::collections::HashMap;

use maud::{Markup, html};
use portico_model::{ConnectionForm, FormField, FormSet, IdentityProviderCatalog, OAuthSignIn};
use serde_json::{Map, Value};

use crate::portal::layout::{self, Field, FormErrors, Kind};

/// What a form shows again after a refused submit: the typed values (never a secret).
#[derive(Default)]
pub struct Typed {
    pub display_name: String,
    pub set: Option<String>,
    /// By input id.
    pub values: HashMap<String, String>,
}

/// A submitted connection form, read against the connector's form.
pub struct Submitted {
    /// What to show again if the use case refuses it.
    pub typed: Typed,
    /// The chosen parameter set's index; `None` when a choice was due and none was made.
    pub index: Option<usize>,
    /// The set's name for the use case: only when the connector offers a choice.
    pub parameter_set: Option<String>,
    /// Parameter name → value, as the API takes them.
    pub parameters: Map<String, Value>,
    /// Whether the chosen set signs in with OAuth 2.0.
    pub oauth: bool,
}

/// Reads a submitted form (`get` gives the first value of a field) against `form`.
pub fn read<'a>(form: &ConnectionForm, get: impl Fn(&str) -> Option<&'a str>) -> Submitted {
    let set_name = get("set").map(str::to_owned);
    let index = match (&form.choice, &set_name) {
        (None, _) => Some(0),
        (Some(_), Some(name)) => form.sets.iter().position(|s| s.name == *name),
        (Some(_), None) => None,
    };
    let mut typed = Typed {
        display_name: get("display_name").unwrap_or_default().trim().to_owned(),
        set: set_name.clone(),
        values: HashMap::new(),
    };
    let mut parameters = Map::new();
    if let Some(i) = index
        && let Some(set) = form.sets.get(i)
    {
        for (j, field) in visible(set) {
            let id = input_id(i, j);
            let text = get(&id).unwrap_or_default();
            if !field.secret {
                typed.values.insert(id.clone(), text.to_owned());
            }
            if let Some(value) = typed_value(field, text) {
                parameters.insert(field.name.clone(), value);
            }
        }
    }
    let oauth = index.and_then(|i| form.sets.get(i)).is_some_and(|s| s.oauth.is_some());
    let parameter_set = if form.choice.is_some() { set_name } else { None };
    Submitted { typed, index, parameter_set, parameters, oauth }
}

/// The id and name of the input of field `j` of set `i`.
pub fn input_id(set: usize, field: usize) -> String {
    format!("p{set}_{field}")
}

/// The fields of a set a person fills in, with their positions.
pub fn visible(set: &FormSet) -> impl Iterator<Item = (usize, &FormField)> {
    set.fields.iter().enumerate().filter(|(_, f)| !f.hidden)
}

pub fn set_label(set: &FormSet) -> &str {
    set.ui.as_ref().map(|u| u.label.as_str()).filter(|l| !l.is_empty()).unwrap_or(&set.name)
}

/// The single parameter set's OAuth 2.0 sign-in, when the connector offers no choice.
pub fn single_oauth(form: &ConnectionForm) -> Option<&OAuthSignIn> {
    if form.choice.is_some() {
        return None;
    }
    form.sets.first().and_then(|s| s.oauth.as_ref())
}

/// The identity provider of a sign-in as the catalog names it (its id when the catalog does
/// not know it).
pub fn provider_name<'a>(catalog: &'a IdentityProviderCatalog, oauth: &'a OAuthSignIn) -> &'a str {
    catalog.get(&oauth.identity_provider).map_or(oauth.identity_provider.as_str(), |e| e.display_name.as_str())
}

/// The inputs of every parameter set: with a choice, a fieldset of radio buttons, each with
/// its set's fields below it (the stylesheet shows only the chosen set's).
pub fn parameter_sets(
    catalog: &IdentityProviderCatalog,
    form: &ConnectionForm,
    typed: &Typed,
    errors: &FormErrors,
) -> Markup {
    let chosen = typed.set.clone().or_else(|| form.sets.first().map(|s| s.name.clone())).unwrap_or_default();
    html! {
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
                            div.set-fields { (set_fields(catalog, i, set, typed, errors)) }
                        }
                    }
                }
            }
            None => {
                @for (i, set) in form.sets.iter().enumerate() { (set_fields(catalog, i, set, typed, errors)) }
            }
        }
    }
}

/// The inputs of one parameter set, and what happens on submit.
fn set_fields(
    catalog: &IdentityProviderCatalog,
    i: usize,
    set: &FormSet,
    typed: &Typed,
    errors: &FormErrors,
) -> Markup {
    html! {
        @if let Some(description) = set.ui.as_ref().and_then(|u| u.description.as_ref()) { p.hint { (description) } }
        @for (j, field) in visible(set) { (input(i, j, field, typed, errors)) }
        @if let Some(oauth) = &set.oauth {
            p.sign-in-note {
                "You will sign in at " strong { (provider_name(catalog, oauth)) } " and come back here."
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
    let input = Field::new(&id, &field.label)
        .kind(kind)
        .value(&value)
        .required(field.required)
        .autocomplete(if field.secret { "new-password" } else { "off" })
        .errors(field_errors);
    match hint {
        Some(hint) => input.hint(hint).render(),
        None => input.render(),
    }
}

/// The input a finding of the API names: `parameters.<name>` or `parameterSet`.
pub fn field_of(form: &ConnectionForm, set: Option<usize>, at: &str) -> Option<String> {
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
pub fn typed_value(field: &FormField, text: &str) -> Option<Value> {
    match field.kind {
        "bool" => Some(Value::Bool(text == "true")),
        _ if text.trim().is_empty() => None,
        "int" => Some(text.trim().parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(text.to_owned()))),
        _ if field.secret => Some(Value::String(text.to_owned())),
        _ => Some(Value::String(text.trim().to_owned())),
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

    #[test]
    fn a_secret_is_sent_but_never_kept_to_show_again() {
        let mut secret = field("securestring", true);
        secret.name = "api_key".into();
        let mut plain = field("string", false);
        plain.name = "region".into();
        let form = ConnectionForm {
            choice: None,
            sets: vec![FormSet {
                name: "default".into(),
                ui: None,
                auth: "apiKey",
                fields: vec![secret, plain],
                oauth: None,
            }],
        };
        let submitted = read(&form, |name| match name {
            "p0_0" => Some("s3cret"),
            "p0_1" => Some(" eu "),
            _ => None,
        });
        assert_eq!(submitted.parameters["api_key"], "s3cret");
        assert_eq!(submitted.parameters["region"], "eu");
        assert_eq!(submitted.typed.values.get("p0_0"), None, "a secret is not kept to show again");
        assert_eq!(submitted.typed.values.get("p0_1").map(String::as_str), Some(" eu "));
        assert_eq!((submitted.index, submitted.parameter_set, submitted.oauth), (Some(0), None, false));
        assert_eq!(field_of(&form, Some(0), "parameters.API_KEY").as_deref(), Some("p0_0"));
    }
}
