//! Power Platform connector folders: `apiProperties.json` (what a connection asks for) plus a
//! Swagger 2.0 `apiDefinition.swagger.json` (the API, and how credentials are sent).
//!
//! The mapping follows `shared/research/power-platform-format.md`, measured on 1,034 real
//! connectors: tolerant of every quirk found there, an error only where a connector cannot
//! work as written.

mod connection;
mod credential;
mod findings;
mod operations;
mod policies;
mod value;

use std::path::{Path, PathBuf};

use portico_model::{Backend, ConnectionSpec, Connector, Diagnostic, Metadata, Scheme};
use serde_json::Value;

use crate::{Import, json};
use connection::RawSpec;
use findings::{Findings, Source};
use value::{Object, get, get_object, get_text};

const PROPERTIES_FILE: &str = "apiProperties.json";
const DEFINITION_FILE: &str = "apiDefinition.swagger.json";

/// Reads the connector in `dir`. Both files are found case-insensitively; a swagger file with
/// another name (`apiDefination.swagger.json`) is accepted, with a warning, when it is the only one.
pub fn import_folder(dir: &Path) -> Import {
    let found = match find_files(dir) {
        Ok(found) => found,
        Err(diagnostic) => return Import::failed(diagnostic),
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| Diagnostic::error(path.display().to_string(), format!("cannot read: {e}")))
    };
    let (properties, definition) = match (read(&found.properties), read(&found.definition)) {
        (Ok(p), Ok(d)) => (p, d),
        (Err(e), _) | (_, Err(e)) => return Import::failed(e),
    };
    let folder_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut import = from_bytes(
        &properties,
        &file_name(&found.properties),
        &definition,
        &file_name(&found.definition),
        folder_name.as_deref(),
    );
    let mut diagnostics = found.warnings;
    diagnostics.append(&mut import.diagnostics);
    import.diagnostics = diagnostics;
    import
}

/// The same as [`import_folder`], from the two files' contents; the names are used in findings.
pub fn import_bytes(
    api_properties: &[u8],
    properties_name: &str,
    api_definition: &[u8],
    definition_name: &str,
) -> Import {
    from_bytes(api_properties, properties_name, api_definition, definition_name, None)
}

/// The same from already-parsed JSON, as the server receives it.
pub fn import_values(api_properties: &Value, api_definition: &Value) -> Import {
    let mut findings = Findings::new(PROPERTIES_FILE, DEFINITION_FILE);
    let connector = convert(api_properties, api_definition, None, &mut findings);
    Import { connector, diagnostics: findings.diagnostics }
}

fn from_bytes(
    properties: &[u8],
    properties_name: &str,
    definition: &[u8],
    definition_name: &str,
    fallback_name: Option<&str>,
) -> Import {
    let properties = json::parse(properties, properties_name);
    let definition = json::parse(definition, definition_name);
    let (properties, definition) = match (properties, definition) {
        (Ok(p), Ok(d)) => (p, d),
        (p, d) => {
            // Both files' syntax errors at once, so that one run shows everything to fix.
            let diagnostics = [p.err(), d.err()].into_iter().flatten().collect();
            return Import { connector: None, diagnostics };
        }
    };
    let mut findings = Findings::new(properties_name, definition_name);
    findings.diagnostics.extend(properties.1);
    findings.diagnostics.extend(definition.1);
    let connector = convert(&properties.0, &definition.0, fallback_name, &mut findings);
    Import { connector, diagnostics: findings.diagnostics }
}

fn convert(
    properties_root: &Value,
    definition_root: &Value,
    fallback_name: Option<&str>,
    findings: &mut Findings,
) -> Option<Connector> {
    let Some(properties) = properties_root.as_object().and_then(|r| get_object(r, "properties")) else {
        findings.error(Source::Properties, "", "expected an object {\"properties\": {...}}");
        return None;
    };
    let Some(swagger) = definition_root.as_object() else {
        findings.error(Source::Definition, "", "expected a Swagger 2.0 object");
        return None;
    };
    if swagger.contains_key("openapi") {
        findings.error(
            Source::Definition,
            "/openapi",
            "this is an OpenAPI 3 document; a Power Platform connector's definition is Swagger 2.0",
        );
        return None;
    }
    match get(swagger, "swagger").and_then(value::scalar_text) {
        Some(version) if version.trim() == "2.0" => {}
        Some(version) => {
            findings.warn(Source::Definition, "/swagger", format!("expected Swagger 2.0, found '{version}'"))
        }
        None => findings.warn(Source::Definition, "", "no 'swagger' version; read as Swagger 2.0"),
    }

    let metadata = metadata(properties, swagger, fallback_name, findings);
    let operations = operations::read(definition_root, findings);
    let operation_ids: Vec<&str> = operations.iter().map(|o| o.id.as_str()).collect();
    let policies = policies::read(properties, &operation_ids, findings);
    let backend = backend(swagger, policies.host_template, findings);
    let connection = connection_spec(properties, swagger, findings);
    report_scripts(properties, findings);
    let test_operation = get_object(swagger, "x-ms-capabilities")
        .and_then(|c| get_object(c, "testConnection"))
        .and_then(|t| get_text(t, "operationId"));
    Some(Connector { metadata, backend, operations, connection, policies: policies.policies, test_operation })
}

fn metadata(properties: &Object, swagger: &Object, fallback_name: Option<&str>, findings: &mut Findings) -> Metadata {
    let info = get_object(swagger, "info");
    let title = info.and_then(|i| get_text(i, "title"));
    let display_name = match (title, fallback_name) {
        (Some(title), _) => title,
        (None, Some(folder)) => {
            findings.warn(
                Source::Definition,
                "/info/title",
                format!("no info.title; the folder name '{folder}' is used"),
            );
            folder.to_owned()
        }
        (None, None) => {
            findings.warn(Source::Definition, "/info/title", "no info.title: the connector has no name");
            String::new()
        }
    };
    let capabilities = get(properties, "capabilities")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter().filter_map(Value::as_str).map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect()
        })
        .unwrap_or_default();
    Metadata {
        name: Metadata::slug(&display_name),
        display_name,
        description: info.and_then(|i| get_text(i, "description")),
        version: info.and_then(|i| get_text(i, "version")),
        brand_color: get_text(properties, "iconBrandColor"),
        publisher: get_text(properties, "publisher"),
        // `get` also finds the one file's `stackowner`.
        stack_owner: get_text(properties, "stackOwner"),
        capabilities,
    }
}

fn backend(swagger: &Object, host_template: Option<portico_model::Template>, findings: &mut Findings) -> Backend {
    let schemes: Vec<String> = get(swagger, "schemes")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
        .unwrap_or_default();
    let scheme = if schemes.is_empty() || schemes.iter().any(|s| s == "https") {
        Scheme::Https
    } else if schemes.iter().any(|s| s == "http") {
        Scheme::Http
    } else {
        findings.warn(Source::Definition, "/schemes", format!("no http(s) scheme in {schemes:?}; https is used"));
        Scheme::Https
    };
    let mut base_path = get_text(swagger, "basePath").unwrap_or_else(|| "/".to_owned());
    if !base_path.starts_with('/') {
        findings.warn(Source::Definition, "/basePath", format!("basePath '{base_path}' does not start with '/'"));
        base_path.insert(0, '/');
    }
    if swagger.contains_key("x-ms-parameterized-host") {
        findings.warn(
            Source::Definition,
            "/x-ms-parameterized-host",
            "x-ms-parameterized-host is not supported; calls go to 'host'",
        );
    }
    Backend { scheme, host: get_text(swagger, "host").unwrap_or_default(), base_path, host_template }
}

fn connection_spec(properties: &Object, swagger: &Object, findings: &mut Findings) -> ConnectionSpec {
    let security = credential::Security::read(swagger, findings);
    let spec = match connection::read(properties, findings) {
        RawSpec::Single(mut set) => {
            let credential = credential::bind(&mut set, &security, findings);
            ConnectionSpec::Single(set.finish(credential))
        }
        RawSpec::Choice { ui, sets } => {
            let sets = sets
                .into_iter()
                .map(|mut set| {
                    let credential = credential::bind(&mut set, &security, findings);
                    set.finish(credential)
                })
                .collect();
            ConnectionSpec::Choice { ui, sets }
        }
    };
    let credentials: Vec<_> = spec.sets().iter().map(|s| &s.credential).collect();
    security.report_unused(&credentials, findings);
    spec
}

/// Operations handled by custom C# code cannot run as Portico calls them directly.
fn report_scripts(properties: &Object, findings: &mut Findings) {
    fn listed(value: &Value) -> Option<Vec<&str>> {
        value.as_array().map(|a| a.iter().filter_map(Value::as_str).collect())
    }
    let mut ids: Vec<&str> = get(properties, "scriptOperations").and_then(listed).unwrap_or_default();
    if let Some(script) = get_object(properties, "script") {
        ids.extend(get(script, "operationIds").and_then(listed).unwrap_or_default());
    }
    if !ids.is_empty() {
        findings.warn(
            Source::Properties,
            "/properties/scriptOperations",
            format!("operations handled by a custom script, which Portico does not run: {}", ids.join(", ")),
        );
    }
}

struct Found {
    properties: PathBuf,
    definition: PathBuf,
    warnings: Vec<Diagnostic>,
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn find_files(dir: &Path) -> Result<Found, Diagnostic> {
    let at = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| Diagnostic::error(&at, format!("cannot read the folder: {e}")))?;
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    let named = |name: &str| files.iter().find(|p| file_name(p).eq_ignore_ascii_case(name)).cloned();
    let properties =
        named(PROPERTIES_FILE).ok_or_else(|| Diagnostic::error(&at, format!("no {PROPERTIES_FILE} in this folder")))?;
    let mut warnings = Vec::new();
    let definition = match named(DEFINITION_FILE) {
        Some(definition) => definition,
        None => {
            let others: Vec<&PathBuf> =
                files.iter().filter(|p| file_name(p).to_ascii_lowercase().ends_with(".swagger.json")).collect();
            match others.as_slice() {
                [only] => {
                    warnings.push(Diagnostic::warning(
                        file_name(only),
                        format!("the definition should be named {DEFINITION_FILE}; this file is used instead"),
                    ));
                    (*only).clone()
                }
                [] => return Err(Diagnostic::error(&at, format!("no {DEFINITION_FILE} in this folder"))),
                several => {
                    let names: Vec<String> = several.iter().map(|p| file_name(p)).collect();
                    return Err(Diagnostic::error(
                        &at,
                        format!("no {DEFINITION_FILE}, and several other swagger files: {}", names.join(", ")),
                    ));
                }
            }
        }
    };
    Ok(Found { properties, definition, warnings })
}
