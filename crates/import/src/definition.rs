//! Portico's own connector definition: a [`Connector`] written as JSON, in the model's serde
//! shape.
//!
//! Errors name the field that is wrong (`connection.parameters[0].type: unknown variant
//! `foo`, …`) and, when read from a file, its line and column. `serde_path_to_error` follows
//! plain structs, but loses the path inside the model's internally tagged enums
//! (`connection.mode`, `credential.kind`, `policy`) and flattened fields, because serde buffers
//! those before reading them. When the path stops at one of those, the value under it is read
//! again piece by piece, with the same model types, to find the field at fault.

use std::collections::BTreeMap;

use portico_model::{ApiKey, Connector, Diagnostic, OAuth2, ParameterSet, Template, UiText};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Import;
use crate::json::{self, Step};

/// Reads a connector from an already parsed JSON value.
pub fn import_value(value: &Value) -> Import {
    match read(value) {
        Ok(connector) => Import { connector: Some(connector), diagnostics: Vec::new() },
        Err(e) => {
            let at = if e.path.is_empty() { "connector".to_owned() } else { path_text(&e.path) };
            Import::failed(Diagnostic::error(at, e.message))
        }
    }
}

/// Reads a connector from the contents of the file named `file`, tolerating what
/// [`json::parse`] tolerates.
pub fn import_bytes(bytes: &[u8], file: &str) -> Import {
    let (value, mut diagnostics) = match json::parse(bytes, file) {
        Ok(parsed) => parsed,
        Err(error) => return Import::failed(error),
    };
    match read(&value) {
        Ok(connector) => Import { connector: Some(connector), diagnostics },
        Err(e) => {
            let at = match json::locate(bytes, &e.path) {
                Some(position) => format!("{file}:{position}"),
                None => file.to_owned(),
            };
            let message = if e.path.is_empty() { e.message } else { format!("{}: {}", path_text(&e.path), e.message) };
            diagnostics.push(Diagnostic::error(at, message));
            Import { connector: None, diagnostics }
        }
    }
}

/// A value that does not have the model's shape, and where.
#[derive(Debug)]
struct ShapeError {
    path: Vec<Step>,
    message: String,
}

fn read(value: &Value) -> Result<Connector, ShapeError> {
    let error = match deserialize::<Connector>(value, &[]) {
        Ok(connector) => return Ok(connector),
        Err(error) => error,
    };
    let refined = match error.path.as_slice() {
        [Step::Key(k)] if k == "connection" => value.get("connection").and_then(|v| connection(v, &error)),
        [Step::Key(k), Step::Index(i)] if k == "policies" => {
            value.get("policies").and_then(|v| v.get(*i)).and_then(|v| policy(v, &error))
        }
        _ => None,
    };
    Err(refined.unwrap_or(error))
}

/// `ConnectionSpec`, tagged by `mode`.
fn connection(value: &Value, error: &ShapeError) -> Option<ShapeError> {
    let at = error.path.as_slice();
    match value.get("mode")?.as_str()? {
        "single" => parameter_set(value, at),
        "choice" => field::<Option<UiText>>(value, "ui", at).or_else(|| {
            let sets = value.get("sets")?.as_array()?;
            let at = child(at, Step::Key("sets".into()));
            sets.iter().enumerate().find_map(|(i, set)| parameter_set(set, &child(&at, Step::Index(i))))
        }),
        _ => unknown_tag(error, "mode"),
    }
}

fn parameter_set(value: &Value, at: &[Step]) -> Option<ShapeError> {
    let error = deserialize::<ParameterSet>(value, at).err()?;
    let refined = match &error.path[at.len()..] {
        [Step::Key(k)] if k == "credential" => value.get("credential").and_then(|v| credential(v, &error)),
        // A parameter's label, description and tooltip are flattened into it.
        [Step::Key(k), Step::Index(i)] if k == "parameters" => {
            value.get("parameters").and_then(|v| v.get(*i)).and_then(|v| deserialize::<UiText>(v, &error.path).err())
        }
        _ => None,
    };
    Some(refined.unwrap_or(error))
}

/// `Credential`, tagged by `kind`.
fn credential(value: &Value, error: &ShapeError) -> Option<ShapeError> {
    let at = error.path.as_slice();
    match value.get("kind")?.as_str()? {
        "basic" => field::<String>(value, "username", at).or_else(|| field::<String>(value, "password", at)),
        "apiKey" => field::<Vec<ApiKey>>(value, "keys", at),
        "oauth2" => deserialize::<OAuth2>(value, at).err(),
        _ => unknown_tag(error, "kind"),
    }
}

/// `Policy`: its `PolicyKind`, tagged by `policy`, is flattened into it.
fn policy(value: &Value, error: &ShapeError) -> Option<ShapeError> {
    let at = error.path.as_slice();
    let kind = match value.get("policy")?.as_str()? {
        "setHeader" | "setQueryParameter" => {
            field::<String>(value, "name", at).or_else(|| field::<Template>(value, "value", at))
        }
        "other" => field::<String>(value, "templateId", at)
            .or_else(|| field::<BTreeMap<String, Value>>(value, "parameters", at)),
        _ => return unknown_tag(error, "policy"),
    };
    kind.or_else(|| field::<Vec<String>>(value, "operations", at))
}

/// An unknown variant of an internally tagged enum is the tag's fault: point at the tag.
fn unknown_tag(error: &ShapeError, tag: &str) -> Option<ShapeError> {
    error
        .message
        .starts_with("unknown variant")
        .then(|| ShapeError { path: child(&error.path, Step::Key(tag.into())), message: error.message.clone() })
}

/// The error in `value[name]` read as a `T`, if it is present and is not one.
fn field<T: DeserializeOwned>(value: &Value, name: &str, at: &[Step]) -> Option<ShapeError> {
    deserialize::<T>(value.get(name)?, &child(at, Step::Key(name.into()))).err()
}

fn deserialize<T: DeserializeOwned>(value: &Value, at: &[Step]) -> Result<T, ShapeError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = at.to_vec();
        for segment in e.path() {
            path.push(match segment {
                serde_path_to_error::Segment::Seq { index } => Step::Index(*index),
                serde_path_to_error::Segment::Map { key } => Step::Key(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => Step::Key(variant.clone()),
                serde_path_to_error::Segment::Unknown => break,
            });
        }
        ShapeError { path, message: e.into_inner().to_string() }
    })
}

fn child(at: &[Step], step: Step) -> Vec<Step> {
    let mut path = at.to_vec();
    path.push(step);
    path
}

/// `connection.parameters[0].type`.
fn path_text(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}
