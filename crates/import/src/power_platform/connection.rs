//! `connectionParameters` and `connectionParameterSets`: what a user fills in to connect.

use portico_model::{AllowedValue, ConnectionParameter, ParameterSet, ParameterType, UiText};
use serde_json::Value;

use super::findings::{Findings, Source};
use super::value::{Object, get, get_object, get_text, pointer, scalar_text, truthy};

/// A parameter of type `oauthSetting`: the OAuth sign-in itself, not a value the user types.
pub(super) struct OAuthParameter<'a> {
    pub(super) name: String,
    pub(super) definition: &'a Object,
    pub(super) pointer: String,
}

/// A parameter set as read, before its credential is bound.
pub(super) struct RawSet<'a> {
    /// Empty for the single set of `connectionParameters`.
    pub(super) name: String,
    pub(super) ui: Option<UiText>,
    pub(super) parameters: Vec<ConnectionParameter>,
    pub(super) oauth: Vec<OAuthParameter<'a>>,
    /// Where the set's parameters are, for findings.
    pub(super) pointer: String,
}

impl RawSet<'_> {
    pub(super) fn parameter(&self, name: &str) -> Option<&ConnectionParameter> {
        self.parameters.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    pub(super) fn finish(self, credential: portico_model::Credential) -> ParameterSet {
        ParameterSet { name: self.name, ui: self.ui, parameters: self.parameters, credential }
    }
}

pub(super) enum RawSpec<'a> {
    Single(RawSet<'a>),
    Choice { ui: Option<UiText>, sets: Vec<RawSet<'a>> },
}

const PARAMETERS: &str = "/properties/connectionParameters";
const SETS: &str = "/properties/connectionParameterSets";

/// Reads the sets when `connectionParameterSets` has values, else `connectionParameters`.
pub(super) fn read<'a>(properties: &'a Object, findings: &mut Findings) -> RawSpec<'a> {
    let top_level = get(properties, "connectionParameters");
    let sets = get_object(properties, "connectionParameterSets");
    let values = sets.and_then(|s| get(s, "values")).and_then(Value::as_array).filter(|v| !v.is_empty());
    if let (Some(sets), Some(values)) = (sets, values) {
        if top_level.and_then(Value::as_object).is_some_and(|o| !o.is_empty()) {
            findings.warn(
                Source::Properties,
                PARAMETERS,
                "connectionParameters is ignored: connectionParameterSets takes its place",
            );
        }
        let ui = get_object(sets, "uiDefinition").map(ui_text);
        let sets = values
            .iter()
            .enumerate()
            .filter_map(|(i, value)| read_set(value, &pointer(&format!("{SETS}/values"), &i.to_string()), findings))
            .collect();
        return RawSpec::Choice { ui, sets };
    }
    let parameters = match top_level {
        Some(Value::Object(o)) => Some(o),
        None | Some(Value::Null) => None,
        Some(_) => {
            findings.warn(Source::Properties, PARAMETERS, "connectionParameters is not an object; ignored");
            None
        }
    };
    for key in properties.keys().filter(|k| k.starts_with("token:")) {
        findings.warn(
            Source::Properties,
            &pointer("/properties", key),
            format!("'{key}' sits directly under properties instead of in connectionParameters; ignored"),
        );
    }
    let mut set = RawSet {
        name: String::new(),
        ui: None,
        parameters: Vec::new(),
        oauth: Vec::new(),
        pointer: PARAMETERS.to_owned(),
    };
    if let Some(parameters) = parameters {
        read_parameters(parameters, &mut set, findings);
    }
    RawSpec::Single(set)
}

fn read_set<'a>(value: &'a Value, at: &str, findings: &mut Findings) -> Option<RawSet<'a>> {
    let Some(object) = value.as_object() else {
        findings.warn(Source::Properties, at, "a connection parameter set is not an object; ignored");
        return None;
    };
    let name = get_text(object, "name").unwrap_or_default();
    let ui = get_object(object, "uiDefinition").map(ui_text);
    let mut set = RawSet { name, ui, parameters: Vec::new(), oauth: Vec::new(), pointer: pointer(at, "parameters") };
    match get(object, "parameters") {
        Some(Value::Object(parameters)) => read_parameters(parameters, &mut set, findings),
        _ => findings.warn(Source::Properties, at, format!("parameter set '{}' has no parameters", set.name)),
    }
    Some(set)
}

fn read_parameters<'a>(parameters: &'a Object, set: &mut RawSet<'a>, findings: &mut Findings) {
    for (name, value) in parameters {
        let at = pointer(&set.pointer, name);
        let Some(object) = value.as_object() else {
            findings.error(Source::Properties, &at, format!("connection parameter '{name}' is not an object"));
            continue;
        };
        let Some(kind) = get(object, "type").and_then(Value::as_str) else {
            findings.error(Source::Properties, &at, format!("connection parameter '{name}' has no type"));
            continue;
        };
        if kind.eq_ignore_ascii_case("oauthSetting") {
            set.oauth.push(OAuthParameter { name: name.clone(), definition: object, pointer: at });
            continue;
        }
        let Some(kind) = ParameterType::parse(kind) else {
            findings.error(
                Source::Properties,
                &pointer(&at, "type"),
                format!("connection parameter '{name}' has unknown type '{kind}'"),
            );
            continue;
        };
        set.parameters.push(read_parameter(name, kind, object, &at, findings));
    }
}

fn read_parameter(
    name: &str,
    kind: ParameterType,
    object: &Object,
    at: &str,
    findings: &mut Findings,
) -> ConnectionParameter {
    let ui_definition = get_object(object, "uiDefinition");
    let constraints = ui_definition.and_then(|u| get_object(u, "constraints"));
    let constraint = |key: &str| constraints.and_then(|c| get(c, key));
    let mut parameter = ConnectionParameter::new(name, kind, "");
    if let Some(ui) = ui_definition {
        parameter.ui = ui_text(ui);
    }
    parameter.required = constraint("required").is_some_and(truthy);
    parameter.hidden = constraint("hidden").is_some_and(truthy);
    parameter.clear_text = constraint("clearText").is_some_and(truthy);
    // `tabIndex` belongs in constraints; one file has it directly in uiDefinition.
    parameter.tab_index =
        constraint("tabIndex").or_else(|| ui_definition.and_then(|u| get(u, "tabIndex"))).and_then(integer);
    parameter.default = get(object, "defaultValue").and_then(scalar_text);
    parameter.source = get_object(object, "metadata").and_then(|m| get_text(m, "sourceType"));
    parameter.allowed_values = allowed_values(get(object, "allowedValues"), constraint("allowedValues"));
    if !parameter.hidden && parameter.ui.label.trim().is_empty() {
        findings.warn(
            Source::Properties,
            at,
            format!("connection parameter '{name}' is shown to users but has no displayName; its name is the label"),
        );
        parameter.ui.label = name.to_owned();
    }
    parameter
}

/// The label, description and tooltip of a `uiDefinition` (`displayName` in any case).
pub(super) fn ui_text(ui: &Object) -> UiText {
    UiText {
        label: get_text(ui, "displayName").unwrap_or_default(),
        description: get_text(ui, "description"),
        tooltip: get_text(ui, "tooltip"),
    }
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Merges the parameter-level list (`{"value"}`, maybe with a `uiDefinition`) with the
/// dropdown in `constraints` (`{"text", "value"}`), which carries the labels.
fn allowed_values(parameter_level: Option<&Value>, constraints: Option<&Value>) -> Vec<AllowedValue> {
    let mut out: Vec<AllowedValue> = Vec::new();
    let lists = [parameter_level, constraints];
    for item in lists.into_iter().flatten().filter_map(Value::as_array).flatten() {
        let (value, label) = match item {
            Value::Object(o) => (
                get(o, "value").and_then(scalar_text),
                get_text(o, "text").or_else(|| get_object(o, "uiDefinition").and_then(|u| get_text(u, "displayName"))),
            ),
            other => (scalar_text(other), None),
        };
        let Some(value) = value else { continue };
        match out.iter_mut().find(|v| v.value == value) {
            Some(existing) => {
                if existing.label.is_none() {
                    existing.label = label;
                }
            }
            None => out.push(AllowedValue { value, label }),
        }
    }
    out
}
