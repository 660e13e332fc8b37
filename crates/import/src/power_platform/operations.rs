//! Swagger 2.0 `paths`: one operation per path and method.

use std::collections::BTreeMap;

use portico_model::{Operation, OperationParameter, ParameterLocation, Visibility};
use serde_json::Value;

use super::findings::{Findings, Source};
use super::value::{Object, get, get_object, get_str, get_text, pointer, truthy};

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

/// How far `$ref` chains are followed before giving up on a loop.
const MAX_REFERENCE_DEPTH: usize = 8;

pub(super) fn read(root: &Value, findings: &mut Findings) -> Vec<Operation> {
    let mut reader = Reader { root, misspelled: BTreeMap::new() };
    let mut operations = Vec::new();
    let paths = root.as_object().and_then(|r| get_object(r, "paths"));
    for (path, item) in paths.into_iter().flatten() {
        let at = pointer("/paths", path);
        let Some(item) = item.as_object() else { continue };
        if item.contains_key("$ref") {
            findings.warn(Source::Definition, &at, "path items given by $ref are not supported; skipped");
            continue;
        }
        let shared = reader.parameters(item.get("parameters"), &at, findings);
        for (method, operation) in item {
            let method = method.to_ascii_lowercase();
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let Some(operation) = operation.as_object() else { continue };
            let at = pointer(&at, &method);
            operations.push(reader.operation(path, &method, operation, &shared, &at, findings));
        }
    }
    for (key, count) in reader.misspelled {
        let meant = if key.to_ascii_lowercase().starts_with("x-ms-vis") { "x-ms-visibility" } else { "x-ms-summary" };
        let times = if count == 1 { "once".to_owned() } else { format!("{count} times") };
        findings.warn(Source::Definition, "", format!("'{key}' ({times}) is read as '{meant}'"));
    }
    operations
}

struct Reader<'a> {
    root: &'a Value,
    /// Misspelled extension keys seen, and how often, for one warning each.
    misspelled: BTreeMap<String, usize>,
}

impl<'a> Reader<'a> {
    fn operation(
        &mut self,
        path: &str,
        method: &str,
        operation: &'a Object,
        shared: &[OperationParameter],
        at: &str,
        findings: &mut Findings,
    ) -> Operation {
        let id = match get_text(operation, "operationId") {
            Some(id) => id,
            None => {
                let id = synthesized_id(method, path);
                findings.warn(Source::Definition, at, format!("operation has no operationId; it is called '{id}'"));
                id
            }
        };
        let mut parameters = shared.to_vec();
        for own in self.parameters(operation.get("parameters"), at, findings) {
            // An operation's parameter replaces the path item's of the same name and location.
            match parameters.iter_mut().find(|p| p.location == own.location && p.name == own.name) {
                Some(existing) => *existing = own,
                None => parameters.push(own),
            }
        }
        Operation {
            id,
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            summary: get_text(operation, "summary"),
            description: get_text(operation, "description"),
            parameters,
            visibility: self.visibility(operation),
            deprecated: get(operation, "deprecated").is_some_and(truthy),
            trigger: get(operation, "x-ms-trigger").is_some_and(|v| !v.is_null()),
        }
    }

    fn parameters(&mut self, list: Option<&'a Value>, at: &str, findings: &mut Findings) -> Vec<OperationParameter> {
        let mut out = Vec::new();
        let Some(list) = list else { return out };
        let Some(list) = list.as_array() else {
            findings.warn(Source::Definition, &pointer(at, "parameters"), "parameters is not an array; ignored");
            return out;
        };
        for (i, parameter) in list.iter().enumerate() {
            let at = pointer(&pointer(at, "parameters"), &i.to_string());
            let parameter = match self.resolve(parameter) {
                Ok(parameter) => parameter,
                Err(problem) => {
                    findings.warn(Source::Definition, &at, format!("parameter skipped: {problem}"));
                    continue;
                }
            };
            if let Some(parameter) = self.parameter(parameter, &at, findings) {
                out.push(parameter);
            }
        }
        out
    }

    fn parameter(&mut self, parameter: &Object, at: &str, findings: &mut Findings) -> Option<OperationParameter> {
        let Some(name) = get_str(parameter, "name") else {
            findings.warn(Source::Definition, at, "parameter has no name; skipped");
            return None;
        };
        let written = get_str(parameter, "in").unwrap_or_default();
        let Some(location) = location(written) else {
            findings.warn(
                Source::Definition,
                at,
                format!("parameter '{name}' has unknown location '{written}'; skipped"),
            );
            return None;
        };
        let schema_type =
            get_text(parameter, "type").or_else(|| get_object(parameter, "schema").and_then(|s| get_text(s, "type")));
        Some(OperationParameter {
            name: name.to_owned(),
            location,
            required: get(parameter, "required").is_some_and(truthy),
            schema_type,
            default: parameter.get("default").cloned(),
            enum_values: get(parameter, "enum").and_then(Value::as_array).cloned().unwrap_or_default(),
            visibility: self.visibility(parameter),
            summary: self.extension(parameter, "x-ms-summary").and_then(Value::as_str).map(str::to_owned),
            description: get_text(parameter, "description"),
        })
    }

    fn visibility(&mut self, object: &Object) -> Visibility {
        self.extension(object, "x-ms-visibility").and_then(Value::as_str).map(Visibility::parse).unwrap_or_default()
    }

    /// `x-ms-visibility` / `x-ms-summary` in any case, or misspelled (`x-ms-visibilty`,
    /// `x-ms-summmary`): the files have both, and the meaning is plain.
    fn extension<'o>(&mut self, object: &'o Object, key: &str) -> Option<&'o Value> {
        if let Some(value) = get(object, key) {
            return Some(value);
        }
        let stem = key.get(..8)?; // `x-ms-vis`, `x-ms-sum`
        let (found, value) = object.iter().find(|(k, _)| k.get(..8).is_some_and(|s| s.eq_ignore_ascii_case(stem)))?;
        *self.misspelled.entry(found.clone()).or_default() += 1;
        Some(value)
    }

    /// Follows local `$ref`s (`#/parameters/top`) to the object they name.
    fn resolve(&self, value: &'a Value) -> Result<&'a Object, String> {
        let mut current = value;
        for _ in 0..MAX_REFERENCE_DEPTH {
            let Some(object) = current.as_object() else { return Err("not an object".to_owned()) };
            let Some(reference) = object.get("$ref") else { return Ok(object) };
            let Some(reference) = reference.as_str() else { return Err("$ref is not a string".to_owned()) };
            let Some(target) = reference.strip_prefix('#') else {
                return Err(format!("'{reference}' is not a reference inside this file"));
            };
            current = self.root.pointer(target).ok_or_else(|| format!("'{reference}' points to nothing"))?;
        }
        Err("$ref chain too long (a loop?)".to_owned())
    }
}

fn location(written: &str) -> Option<ParameterLocation> {
    Some(match written.to_ascii_lowercase().as_str() {
        "path" => ParameterLocation::Path,
        "query" => ParameterLocation::Query,
        "header" => ParameterLocation::Header,
        "body" => ParameterLocation::Body,
        "formdata" => ParameterLocation::FormData,
        "cookie" => ParameterLocation::Cookie,
        _ => return None,
    })
}

/// `get` and `/items/{id}` give `get_items_id`.
fn synthesized_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for c in path.chars() {
        if c.is_alphanumeric() {
            id.push(c);
        } else if !id.ends_with('_') {
            id.push('_');
        }
    }
    id.trim_end_matches('_').to_owned()
}
