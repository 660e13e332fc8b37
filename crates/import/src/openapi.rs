//! OpenAPI 3.0 / 3.1 documents (JSON or YAML) → [`Connector`].
//!
//! `info` gives the metadata, `servers[0]` the backend, `paths` the operations, and
//! `components.securitySchemes` with the `security` requirements the connection. Findings
//! are placed as `<file>#<JSON pointer>`, the pointer syntax `$ref`s use too.

mod context;
mod operations;
mod security;

use std::path::Path;

use portico_model::{Backend, Connector, Diagnostic, Metadata, Scheme};
use serde_json::{Map, Value};
use url::Url;

use crate::Import;
use context::{Ctx, child};

/// Reads the OpenAPI document at `path`.
pub fn import_file(path: &Path) -> Import {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => import_bytes(&bytes, &name),
        Err(e) => Import::failed(Diagnostic::error(name, format!("cannot read the file: {e}"))),
    }
}

/// Reads an OpenAPI document given as bytes; `file_name` decides JSON or YAML by its
/// extension (else a leading `{` means JSON) and names the file in findings.
pub fn import_bytes(bytes: &[u8], file_name: &str) -> Import {
    let parsed =
        if is_json(bytes, file_name) { crate::json::parse(bytes, file_name) } else { parse_yaml(bytes, file_name) };
    match parsed {
        Ok((doc, mut diagnostics)) => {
            let mut import = import_value(&doc, file_name);
            diagnostics.append(&mut import.diagnostics);
            import.diagnostics = diagnostics;
            import
        }
        Err(diagnostic) => Import::failed(diagnostic),
    }
}

/// Maps an already parsed OpenAPI document.
pub fn import_value(doc: &Value, file_name: &str) -> Import {
    let mut ctx = Ctx::new(file_name, doc);
    let Some(root) = doc.as_object() else {
        return Import::failed(Diagnostic::error(file_name, "not an OpenAPI document: the top level is not an object"));
    };
    if let Err(diagnostic) = check_version(&mut ctx, root) {
        return Import::failed(diagnostic);
    }
    let metadata = metadata(&mut ctx, root);
    let (backend, server) = backend(&mut ctx, root);
    let read = operations::read(&mut ctx);
    let (connection, policies) = security::read(&mut ctx, &read.security, server.as_ref());
    let connector =
        Connector { metadata, backend, operations: read.operations, connection, policies, test_operation: None };
    Import { connector: Some(connector), diagnostics: ctx.diagnostics }
}

fn is_json(bytes: &[u8], file_name: &str) -> bool {
    let extension = Path::new(file_name).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("json") => true,
        Some("yaml" | "yml") => false,
        _ => {
            let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        }
    }
}

/// YAML into the same JSON value model; errors as `<file>:<line>:<column>`.
fn parse_yaml(bytes: &[u8], file: &str) -> Result<(Value, Vec<Diagnostic>), Diagnostic> {
    let text = decode_text(bytes, file)?;
    match serde_saphyr::from_str::<Value>(&text) {
        Ok(value) => Ok((value, Vec::new())),
        Err(e) => {
            use serde_saphyr::MessageFormatter;
            let message = serde_saphyr::DefaultMessageFormatter.format_message(e.without_snippet()).into_owned();
            let at = match e.location() {
                Some(l) if l.line() > 0 => format!("{file}:{}:{}", l.line(), l.column()),
                _ => file.to_owned(),
            };
            Err(Diagnostic::error(at, format!("invalid YAML: {message}")))
        }
    }
}

/// UTF-8 (BOM optional) or UTF-16 with a BOM, as editors save them.
fn decode_text(bytes: &[u8], file: &str) -> Result<String, Diagnostic> {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes)
        && encoding != encoding_rs::UTF_8
    {
        let (text, had_errors) = encoding.decode_without_bom_handling(&bytes[bom..]);
        if had_errors {
            return Err(Diagnostic::error(file, format!("the file is not valid {}", encoding.name())));
        }
        return Ok(text.into_owned());
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let column = String::from_utf8_lossy(&valid[line_start..]).chars().count() + 1;
            Err(Diagnostic::error(format!("{file}:{line}:{column}"), "the file is not valid UTF-8"))
        }
    }
}

fn check_version(ctx: &mut Ctx<'_>, root: &Map<String, Value>) -> Result<(), Diagnostic> {
    if let Some(swagger) = root.get("swagger") {
        let version = scalar_text(swagger).map(|v| format!(" {v}")).unwrap_or_default();
        return Err(Diagnostic::error(
            ctx.file,
            format!(
                "this is a Swagger{version} document, not OpenAPI 3: import it as a Power Platform connector \
                 (a folder with apiDefinition.swagger.json and apiProperties.json)"
            ),
        ));
    }
    let at = ctx.at("/openapi");
    match root.get("openapi") {
        Some(Value::String(v)) if v.trim().starts_with("3.") => Ok(()),
        // `openapi: 3.0` in YAML is a number, a common slip.
        Some(Value::Number(n)) if n.as_f64().is_some_and(|v| (3.0..4.0).contains(&v)) => {
            ctx.warn("/openapi", format!("the version should be a string such as \"{n}.0\""));
            Ok(())
        }
        Some(other) => Err(Diagnostic::error(
            at,
            format!(
                "unsupported OpenAPI version '{}': Portico reads OpenAPI 3.0 and 3.1",
                scalar_text(other).unwrap_or_else(|| other.to_string())
            ),
        )),
        None => Err(Diagnostic::error(ctx.file, "not an OpenAPI 3 document: there is no 'openapi: 3.x' field")),
    }
}

fn metadata(ctx: &mut Ctx<'_>, root: &Map<String, Value>) -> Metadata {
    let info = root.get("info").and_then(Value::as_object);
    if info.is_none() {
        ctx.warn("/info", "the document has no info object");
    }
    let text =
        |key: &str| info.and_then(|i| i.get(key)).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let display_name = match text("title") {
        Some(title) => title.to_owned(),
        None => {
            let stem = Path::new(ctx.file).file_stem().and_then(|s| s.to_str()).unwrap_or("connector").to_owned();
            ctx.warn("/info/title", format!("the document has no title; the connector is called '{stem}'"));
            stem
        }
    };
    let version = info.and_then(|i| i.get("version")).and_then(scalar_text).filter(|v| !v.is_empty());
    Metadata {
        name: Metadata::slug(&display_name),
        display_name,
        description: text("description").or_else(|| text("summary")).map(str::to_owned),
        version,
        ..Metadata::default()
    }
}

/// The backend from `servers[0]`, and its URL for resolving relative OAuth URLs.
fn backend(ctx: &mut Ctx<'_>, root: &Map<String, Value>) -> (Backend, Option<Url>) {
    let broken = Backend { scheme: Scheme::Https, host: String::new(), base_path: "/".to_owned(), host_template: None };
    let servers = match root.get("servers") {
        Some(Value::Array(list)) => list.as_slice(),
        Some(_) => {
            ctx.error("/servers", "servers must be a list of server objects");
            return (broken, None);
        }
        None => &[],
    };
    let Some(server) = servers.first() else {
        ctx.error(
            "/servers",
            "no absolute server URL: the document declares no servers, so Portico cannot tell where to send calls",
        );
        return (broken, None);
    };
    let url = server.get("url").and_then(Value::as_str).unwrap_or_default();
    let Some(url) = substitute_variables(ctx, url, server.get("variables")) else { return (broken, None) };
    if servers.len() > 1 {
        ctx.warn("/servers", format!("{} servers are declared; Portico calls the first, '{url}'", servers.len()));
    }
    let parsed = match Url::parse(&url) {
        Ok(parsed) => parsed,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            ctx.error(
                "/servers/0/url",
                format!("no absolute server URL: '{url}' is relative; give the backend's full URL (https://host/path)"),
            );
            return (broken, None);
        }
        Err(e) => {
            ctx.error("/servers/0/url", format!("the server URL '{url}' is not valid: {e}"));
            return (broken, None);
        }
    };
    let scheme = match parsed.scheme() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => {
            ctx.error(
                "/servers/0/url",
                format!("the server URL '{url}' uses '{other}'; Portico calls http(s) backends"),
            );
            return (broken, None);
        }
    };
    let Some(host) = parsed.host_str() else {
        ctx.error("/servers/0/url", format!("no absolute server URL: '{url}' has no host"));
        return (broken, None);
    };
    let host = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    if parsed.query().is_some() || parsed.fragment().is_some() {
        ctx.warn("/servers/0/url", "the query and fragment of the server URL are ignored");
    }
    let path = parsed.path().trim_end_matches('/');
    let base_path = if path.is_empty() { "/".to_owned() } else { path.to_owned() };
    (Backend { scheme, host, base_path, host_template: None }, Some(parsed))
}

/// Fills `{name}` with each server variable's default.
fn substitute_variables(ctx: &mut Ctx<'_>, url: &str, variables: Option<&Value>) -> Option<String> {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    let mut ok = true;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(len) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let name = &rest[open + 1..open + len];
        let at = child(&child("/servers/0/variables", name), "default");
        match variables.and_then(|v| v.get(name)).and_then(|v| v.get("default")).and_then(scalar_text) {
            Some(default) => out.push_str(&default),
            None => {
                ctx.error(&at, format!("the server URL uses the variable '{name}', which has no default value"));
                ok = false;
            }
        }
        rest = &rest[open + len + 1..];
    }
    out.push_str(rest);
    ok.then_some(out)
}

/// A string, number or boolean as text; `None` for anything else.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
