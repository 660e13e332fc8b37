//! `paths` → operations: parameters (path-level and operation-level merged), request bodies,
//! schema types.

use std::collections::HashSet;

use portico_model::{Operation, OperationParameter, ParameterLocation, Severity, Visibility};
use serde_json::{Map, Value};

use super::context::{Ctx, child, text};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// How deep `allOf` wrappers are unwrapped to find a schema's type.
const MAX_SCHEMA_DEPTH: usize = 8;

pub(super) struct Read<'a> {
    pub operations: Vec<Operation>,
    /// Each operation's own `security`, for comparison with the document's.
    pub security: Vec<OperationSecurity<'a>>,
}

pub(super) struct OperationSecurity<'a> {
    pub pointer: String,
    pub id: String,
    pub requirements: &'a Value,
}

pub(super) fn read<'a>(ctx: &mut Ctx<'a>) -> Read<'a> {
    let mut read = Read { operations: Vec::new(), security: Vec::new() };
    let paths = match ctx.root.get("paths") {
        Some(Value::Object(paths)) => paths,
        Some(_) => {
            ctx.error("/paths", "paths must be an object of path items");
            return read;
        }
        // OpenAPI 3.1 allows a document of webhooks or components only.
        None => {
            ctx.warn("/paths", "the document declares no operations");
            return read;
        }
    };
    // Synthesized ids are given last, so that they never take an id the document declares.
    let mut unnamed = Vec::new();
    let mut security_of = Vec::new();
    for (path, item) in paths {
        if path.starts_with("x-") {
            continue;
        }
        let item_at = child("/paths", path);
        if !path.starts_with('/') {
            ctx.warn(&item_at, format!("the path '{path}' does not start with '/'; it is skipped"));
            continue;
        }
        let Some((item, item_at)) = ctx.resolve(item, &item_at, Severity::Warning) else { continue };
        let Some(item) = item.as_object() else {
            ctx.warn(&item_at, "a path item must be an object; it is skipped");
            continue;
        };
        let shared = parameter_list(ctx, item.get("parameters"), &child(&item_at, "parameters"));
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let at = child(&item_at, method);
            let Some(op) = op.as_object() else {
                ctx.warn(&at, "an operation must be an object; it is skipped");
                continue;
            };
            let index = read.operations.len();
            let operation = operation(ctx, path, method, op, &at, &shared);
            if operation.id.is_empty() {
                unnamed.push((index, at.clone()));
            }
            if let Some(requirements) = op.get("security") {
                security_of.push(index);
                read.security.push(OperationSecurity { pointer: at, id: String::new(), requirements });
            }
            read.operations.push(operation);
        }
    }
    let mut taken: HashSet<String> = read.operations.iter().map(|op| op.id.clone()).collect();
    for (index, at) in unnamed {
        let op = &mut read.operations[index];
        let base = synthesized_id(&op.method, &op.path);
        let mut id = base.clone();
        let mut n = 2;
        while taken.contains(&id) {
            id = format!("{base}_{n}");
            n += 1;
        }
        ctx.warn(&at, format!("the operation has no operationId; it is called '{id}'"));
        taken.insert(id.clone());
        op.id = id;
    }
    for (security, index) in read.security.iter_mut().zip(security_of) {
        security.id.clone_from(&read.operations[index].id);
    }
    if read.operations.is_empty() {
        ctx.warn("/paths", "the document declares no operations");
    }
    read
}

/// One operation; its id is empty when the document gives none.
fn operation<'a>(
    ctx: &mut Ctx<'a>,
    path: &str,
    method: &str,
    op: &'a Map<String, Value>,
    at: &str,
    shared: &[OperationParameter],
) -> Operation {
    let own = parameter_list(ctx, op.get("parameters"), &child(at, "parameters"));
    let mut parameters = merge(shared.to_vec(), own);
    add_missing_path_parameters(ctx, path, at, &mut parameters);
    if let Some(body) = op.get("requestBody") {
        parameters.extend(request_body(ctx, body, &child(at, "requestBody")));
    }
    if op.contains_key("servers") {
        ctx.warn(&child(at, "servers"), "operation-level servers are ignored; calls go to the backend");
    }
    Operation {
        id: text(op.get("operationId")).unwrap_or_default(),
        method: method.to_ascii_uppercase(),
        path: path.to_owned(),
        summary: text(op.get("summary")),
        description: text(op.get("description")),
        parameters,
        visibility: visibility(op.get("x-ms-visibility")),
        deprecated: op.get("deprecated").and_then(Value::as_bool).unwrap_or(false),
        trigger: op.contains_key("x-ms-trigger"),
    }
}

/// `get` `/items/{itemId}` → `get_items_itemId`.
fn synthesized_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if !id.ends_with('_') {
            id.push('_');
        }
    }
    id.trim_end_matches('_').to_owned()
}

/// Operation-level parameters replace path-level ones of the same name and location.
fn merge(mut shared: Vec<OperationParameter>, own: Vec<OperationParameter>) -> Vec<OperationParameter> {
    for parameter in own {
        match shared.iter_mut().find(|p| p.name == parameter.name && p.location == parameter.location) {
            Some(slot) => *slot = parameter,
            None => shared.push(parameter),
        }
    }
    shared
}

/// A `{name}` in the path with no declared parameter still has to be filled in to call it.
fn add_missing_path_parameters(ctx: &mut Ctx<'_>, path: &str, at: &str, parameters: &mut Vec<OperationParameter>) {
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else { break };
        let name = &rest[open + 1..open + len];
        rest = &rest[open + len + 1..];
        if name.is_empty() || parameters.iter().any(|p| p.location == ParameterLocation::Path && p.name == name) {
            continue;
        }
        ctx.warn(at, format!("the path parameter '{name}' is not declared; it is taken as a required string"));
        parameters.push(OperationParameter {
            name: name.to_owned(),
            location: ParameterLocation::Path,
            required: true,
            schema_type: Some("string".to_owned()),
            default: None,
            enum_values: Vec::new(),
            visibility: Visibility::Default,
            summary: None,
            description: None,
        });
    }
}

fn parameter_list<'a>(ctx: &mut Ctx<'a>, list: Option<&'a Value>, at: &str) -> Vec<OperationParameter> {
    let Some(list) = list else { return Vec::new() };
    let Some(list) = list.as_array() else {
        ctx.warn(at, "parameters must be a list; they are skipped");
        return Vec::new();
    };
    let mut out: Vec<OperationParameter> = Vec::new();
    for (i, value) in list.iter().enumerate() {
        if let Some(parameter) = parameter(ctx, value, &child(at, &i.to_string())) {
            out = merge(out, vec![parameter]);
        }
    }
    out
}

fn parameter<'a>(ctx: &mut Ctx<'a>, value: &'a Value, at: &str) -> Option<OperationParameter> {
    let (value, at) = ctx.resolve(value, at, Severity::Warning)?;
    let Some(object) = value.as_object() else {
        ctx.warn(&at, "a parameter must be an object; it is skipped");
        return None;
    };
    let Some(name) = object.get("name").and_then(Value::as_str).filter(|n| !n.trim().is_empty()) else {
        ctx.warn(&at, "the parameter has no name; it is skipped");
        return None;
    };
    let location = match object.get("in").and_then(Value::as_str) {
        Some("path") => ParameterLocation::Path,
        Some("query") => ParameterLocation::Query,
        Some("header") => ParameterLocation::Header,
        Some("cookie") => ParameterLocation::Cookie,
        other => {
            let what = other.map_or_else(|| "no location".to_owned(), |o| format!("the unknown location '{o}'"));
            ctx.warn(&child(&at, "in"), format!("the parameter '{name}' has {what}; it is skipped"));
            return None;
        }
    };
    // OpenAPI: these header parameters "SHALL be ignored"; the request body and the
    // credential decide them.
    if location == ParameterLocation::Header
        && ["accept", "content-type", "authorization"].contains(&name.to_ascii_lowercase().as_str())
    {
        return None;
    }
    let schema_at = child(&at, "schema");
    let schema = match object.get("schema") {
        Some(schema) => Some((schema, schema_at)),
        None => first_media_schema(object.get("content"), &child(&at, "content")),
    };
    let schema = match schema {
        Some((schema, schema_at)) => schema_info(ctx, schema, &schema_at, 0),
        None => SchemaInfo::default(),
    };
    Some(OperationParameter {
        name: name.to_owned(),
        location,
        required: location == ParameterLocation::Path
            || object.get("required").and_then(Value::as_bool).unwrap_or(false),
        schema_type: schema.schema_type,
        default: schema.default,
        enum_values: schema.enum_values,
        visibility: visibility(object.get("x-ms-visibility")),
        summary: text(object.get("x-ms-summary")),
        description: text(object.get("description")).or(schema.description),
    })
}

fn first_media_schema<'a>(content: Option<&'a Value>, at: &str) -> Option<(&'a Value, String)> {
    let (media, value) = content?.as_object()?.iter().next()?;
    Some((value.get("schema")?, child(&child(at, media), "schema")))
}

/// A request body is one `body` parameter, or form fields when the form is flat.
fn request_body<'a>(ctx: &mut Ctx<'a>, value: &'a Value, at: &str) -> Vec<OperationParameter> {
    let Some((value, at)) = ctx.resolve(value, at, Severity::Warning) else { return Vec::new() };
    let Some(object) = value.as_object() else {
        ctx.warn(&at, "a request body must be an object; it is skipped");
        return Vec::new();
    };
    let required = object.get("required").and_then(Value::as_bool).unwrap_or(false);
    let description = text(object.get("description"));
    let content = object.get("content").and_then(Value::as_object);
    let chosen =
        content.and_then(|c| c.iter().find(|(media, _)| essence(media).contains("json")).or_else(|| c.iter().next()));
    let mut schema = SchemaInfo::default();
    if let Some((media, media_value)) = chosen {
        let media_at = child(&child(&at, "content"), media);
        if let Some(raw) = media_value.get("schema") {
            let schema_at = child(&media_at, "schema");
            if matches!(essence(media).as_str(), "application/x-www-form-urlencoded" | "multipart/form-data")
                && let Some(fields) = form_fields(ctx, raw, &schema_at)
            {
                return fields;
            }
            schema = schema_info(ctx, raw, &schema_at, 0);
        }
    }
    vec![OperationParameter {
        name: "body".to_owned(),
        location: ParameterLocation::Body,
        required,
        schema_type: schema.schema_type,
        default: schema.default,
        enum_values: schema.enum_values,
        visibility: visibility(object.get("x-ms-visibility")),
        summary: text(object.get("x-ms-summary")),
        description: description.or(schema.description),
    }]
}

/// `multipart/form-data; boundary=x` → `multipart/form-data`.
fn essence(media: &str) -> String {
    media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// The properties of a flat object schema as form fields; `None` when a property is itself
/// an object, which only a body can carry.
fn form_fields<'a>(ctx: &mut Ctx<'a>, schema: &'a Value, at: &str) -> Option<Vec<OperationParameter>> {
    let (schema, at) = ctx.resolve(schema, at, Severity::Warning)?;
    let properties = schema.get("properties")?.as_object()?;
    if properties.is_empty() {
        return None;
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut fields = Vec::new();
    for (name, property) in properties {
        let info = schema_info(ctx, property, &child(&child(&at, "properties"), name), 0);
        if info.schema_type.as_deref() == Some("object") {
            return None;
        }
        fields.push(OperationParameter {
            name: name.clone(),
            location: ParameterLocation::FormData,
            required: required.contains(&name.as_str()),
            schema_type: info.schema_type,
            default: info.default,
            enum_values: info.enum_values,
            visibility: visibility(property.get("x-ms-visibility")),
            summary: text(property.get("x-ms-summary")),
            description: info.description,
        });
    }
    Some(fields)
}

#[derive(Default)]
struct SchemaInfo {
    schema_type: Option<String>,
    default: Option<Value>,
    enum_values: Vec<Value>,
    description: Option<String>,
}

fn schema_info<'a>(ctx: &mut Ctx<'a>, schema: &'a Value, at: &str, depth: usize) -> SchemaInfo {
    let Some((schema, at)) = ctx.resolve(schema, at, Severity::Warning) else { return SchemaInfo::default() };
    let Some(object) = schema.as_object() else { return SchemaInfo::default() };
    let declared = match object.get("type") {
        Some(Value::String(t)) => Some(t.clone()),
        // 3.1: `type: [string, "null"]`.
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).find(|t| *t != "null").map(str::to_owned),
        _ => None,
    };
    let format = object.get("format").and_then(Value::as_str);
    let schema_type = match declared {
        Some(t) if t == "string" && matches!(format, Some("binary")) => Some("file".to_owned()),
        Some(t) => Some(t),
        None if object.contains_key("properties") => Some("object".to_owned()),
        None if object.contains_key("items") => Some("array".to_owned()),
        None => None,
    };
    let mut info = SchemaInfo {
        schema_type,
        default: object.get("default").cloned(),
        enum_values: object.get("enum").and_then(Value::as_array).cloned().unwrap_or_default(),
        description: text(object.get("description")),
    };
    // `allOf: [{$ref: ...}]` is the usual way to add a description to a referenced schema.
    if info.schema_type.is_none()
        && depth < MAX_SCHEMA_DEPTH
        && let Some([only]) = object.get("allOf").and_then(Value::as_array).map(Vec::as_slice)
    {
        let inner = schema_info(ctx, only, &child(&child(&at, "allOf"), "0"), depth + 1);
        info.schema_type = inner.schema_type;
        info.default = info.default.or(inner.default);
        if info.enum_values.is_empty() {
            info.enum_values = inner.enum_values;
        }
        info.description = info.description.or(inner.description);
    }
    info
}

fn visibility(value: Option<&Value>) -> Visibility {
    value.and_then(Value::as_str).map_or(Visibility::Default, Visibility::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthesized_ids_join_method_and_path() {
        assert_eq!(synthesized_id("GET", "/items/{itemId}"), "get_items_itemId");
        assert_eq!(synthesized_id("post", "/"), "post");
        assert_eq!(synthesized_id("delete", "/a--b/c.d/"), "delete_a_b_c_d");
    }

    #[test]
    fn media_type_parameters_do_not_matter() {
        assert_eq!(essence("Multipart/Form-Data; boundary=x"), "multipart/form-data");
    }
}
