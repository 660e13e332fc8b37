//! `components.securitySchemes` and the `security` requirements → the connection.
//!
//! Each requirement object is one way to connect (OR); the schemes inside one object are
//! all sent together (AND). One way gives a single parameter set, several a choice.

use std::collections::HashMap;

use portico_model::{
    ApiKey, ApiKeyLocation, ConnectionParameter, ConnectionSpec, Credential, GrantType, IdentityProvider, OAuth2,
    ParameterSet, ParameterType, Policy, PolicyKind, Severity, Template, UiText,
};
use serde_json::{Map, Value};
use url::Url;

use super::context::{Ctx, child, first_sentence, text};
use super::operations::OperationSecurity;

const SCHEMES: &str = "/components/securitySchemes";

/// More ways to connect than this from one requirement is a document to fix, not to expand.
const MAX_COMBINATIONS: usize = 16;

/// One requirement object: the schemes it names, each with its scopes.
struct Requirement<'a> {
    pointer: String,
    schemes: Vec<(&'a str, Vec<String>)>,
}

/// What one security scheme (or one of its OAuth flows) contributes to a parameter set.
#[derive(Clone)]
struct Variant {
    /// The OAuth flow, when the scheme has several.
    flow: Option<&'static str>,
    piece: Piece,
    label: String,
    description: Option<String>,
}

#[derive(Clone)]
enum Piece {
    Basic,
    Key(Key),
    OAuth(Box<OAuth2>),
}

#[derive(Clone)]
struct Key {
    name: String,
    location: ApiKeyLocation,
    prefix: Option<String>,
    /// The parameter's name when the key is the whole credential.
    parameter: &'static str,
    label: String,
    /// Used when several keys share a set and the scheme has no description.
    qualified_label: String,
}

pub(super) fn read<'a>(
    ctx: &mut Ctx<'a>,
    operations: &[OperationSecurity<'a>],
    server: Option<&Url>,
) -> (ConnectionSpec, Vec<Policy>) {
    let errors_before = ctx.diagnostics.iter().filter(|d| d.is_error()).count();
    let schemes = match ctx.root.pointer(SCHEMES) {
        Some(Value::Object(schemes)) => Some(schemes),
        Some(_) => {
            ctx.error(SCHEMES, "securitySchemes must be an object of security schemes");
            None
        }
        None => None,
    };
    let requirements = requirements(ctx, operations, schemes);
    let mut cache: HashMap<&str, Option<Vec<Variant>>> = HashMap::new();
    let mut sets = Vec::new();
    let mut policies: Vec<Policy> = Vec::new();
    for requirement in &requirements {
        if requirement.schemes.is_empty() {
            sets.push(ParameterSet {
                name: "none".to_owned(),
                ui: Some(UiText { label: "No authentication".to_owned(), ..UiText::default() }),
                ..ParameterSet::default()
            });
            continue;
        }
        // Each scheme is read once, so its findings are reported once.
        for (name, _) in &requirement.schemes {
            if !cache.contains_key(name) {
                let variants = scheme_variants(ctx, schemes, name, &requirement.pointer, server);
                cache.insert(name, variants);
            }
        }
        let per_scheme: Vec<_> = requirement
            .schemes
            .iter()
            .filter_map(|(name, scopes)| {
                cache.get(name)?.as_deref().map(|variants| (*name, scopes.as_slice(), variants))
            })
            .collect();
        if per_scheme.len() < requirement.schemes.len() {
            continue;
        }
        for parts in combinations(ctx, &per_scheme, &requirement.pointer) {
            if let Some((set, set_policies)) = combine(ctx, &parts, &requirement.pointer) {
                sets.push(set);
                for policy in set_policies {
                    if !policies.contains(&policy) {
                        policies.push(policy);
                    }
                }
            }
        }
    }
    unique_names(&mut sets);
    let errors_now = ctx.diagnostics.iter().filter(|d| d.is_error()).count();
    let spec = match sets.len() {
        0 => {
            if !requirements.is_empty() && errors_now == errors_before {
                ctx.error("/security", "none of the security requirements can be used, so no connection can be made");
            }
            ConnectionSpec::none()
        }
        1 => {
            let mut set = sets.remove(0);
            if set.credential == Credential::None && set.parameters.is_empty() {
                ConnectionSpec::none()
            } else {
                set.name = String::new();
                ConnectionSpec::Single(set)
            }
        }
        _ => ConnectionSpec::Choice {
            ui: Some(UiText { label: "Authentication type".to_owned(), ..UiText::default() }),
            sets,
        },
    };
    (spec, policies)
}

/// The document's requirements; without any, the operations' or else every declared scheme.
fn requirements<'a>(
    ctx: &mut Ctx<'a>,
    operations: &[OperationSecurity<'a>],
    schemes: Option<&'a Map<String, Value>>,
) -> Vec<Requirement<'a>> {
    if let Some(top) = ctx.root.get("security") {
        for op in operations.iter().filter(|op| op.requirements != top) {
            ctx.warn(
                &child(&op.pointer, "security"),
                format!(
                    "operation '{}' declares its own security requirements; Portico uses the connector's \
                     connection for every call",
                    op.id
                ),
            );
        }
        return requirement_list(ctx, top, "/security");
    }
    if !operations.is_empty() {
        let mut out: Vec<Requirement<'a>> = Vec::new();
        for op in operations {
            for requirement in requirement_list(ctx, op.requirements, &child(&op.pointer, "security")) {
                if !out.iter().any(|r| r.schemes == requirement.schemes) {
                    out.push(requirement);
                }
            }
        }
        if operations.iter().any(|op| op.requirements != operations[0].requirements) {
            ctx.warn(
                "/security",
                "there are no document-wide security requirements and the operations declare different ones; \
                 the connection offers each of them",
            );
        }
        return out;
    }
    match schemes {
        Some(schemes) if !schemes.is_empty() => {
            ctx.warn(
                "/security",
                "no security requirement is declared; each security scheme is offered as a way to connect",
            );
            schemes
                .keys()
                .map(|name| Requirement { pointer: child(SCHEMES, name), schemes: vec![(name.as_str(), Vec::new())] })
                .collect()
        }
        _ => Vec::new(),
    }
}

fn requirement_list<'a>(ctx: &mut Ctx<'a>, value: &'a Value, at: &str) -> Vec<Requirement<'a>> {
    match value {
        Value::Array(list) => {
            list.iter().enumerate().filter_map(|(i, r)| requirement(ctx, r, child(at, &i.to_string()))).collect()
        }
        // A bare requirement object is a common slip, even in published examples.
        Value::Object(_) => {
            ctx.warn(at, "security must be a list of requirement objects; this object is read as one requirement");
            requirement(ctx, value, at.to_owned()).into_iter().collect()
        }
        _ => {
            ctx.error(at, "security must be a list of security requirement objects");
            Vec::new()
        }
    }
}

fn requirement<'a>(ctx: &mut Ctx<'a>, value: &'a Value, pointer: String) -> Option<Requirement<'a>> {
    let Some(object) = value.as_object() else {
        ctx.error(&pointer, "a security requirement must be an object of scheme names");
        return None;
    };
    let mut schemes = Vec::new();
    for (name, scopes) in object {
        let scopes = match scopes.as_array() {
            Some(scopes) => scopes.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            None => {
                ctx.warn(&child(&pointer, name), "the scopes of a security requirement must be a list");
                Vec::new()
            }
        };
        schemes.push((name.as_str(), scopes));
    }
    Some(Requirement { pointer, schemes })
}

/// The ways one scheme can be used: one, or one per OAuth flow. `None` when it cannot be.
fn scheme_variants<'a>(
    ctx: &mut Ctx<'a>,
    schemes: Option<&'a Map<String, Value>>,
    name: &str,
    requirement_at: &str,
    server: Option<&Url>,
) -> Option<Vec<Variant>> {
    let Some(raw) = schemes.and_then(|s| s.get(name)) else {
        ctx.error(
            &child(requirement_at, name),
            format!("the security requirement names '{name}', which components.securitySchemes does not declare"),
        );
        return None;
    };
    let (scheme, at) = ctx.resolve(raw, &child(SCHEMES, name), Severity::Error)?;
    let Some(object) = scheme.as_object() else {
        ctx.error(&at, format!("the security scheme '{name}' must be an object"));
        return None;
    };
    let description = text(object.get("description"));
    let Some(kind) = object.get("type").and_then(Value::as_str) else {
        ctx.error(&child(&at, "type"), format!("the security scheme '{name}' has no type"));
        return None;
    };
    let single = |piece: Piece, label: &str| {
        Some(vec![Variant { flow: None, piece, label: label.to_owned(), description: description.clone() }])
    };
    match kind.to_ascii_lowercase().as_str() {
        "http" => {
            let http = object.get("scheme").and_then(Value::as_str).map(str::trim).unwrap_or_default();
            match http.to_ascii_lowercase().as_str() {
                "basic" => single(Piece::Basic, "Basic authentication"),
                "bearer" => {
                    let label = description.as_deref().and_then(first_sentence);
                    let key = Key {
                        name: "Authorization".to_owned(),
                        location: ApiKeyLocation::Header,
                        prefix: Some("Bearer ".to_owned()),
                        parameter: "bearer_token",
                        label: label.clone().unwrap_or_else(|| "Bearer token".to_owned()),
                        qualified_label: label.unwrap_or_else(|| format!("Bearer token ({name})")),
                    };
                    let format = object.get("bearerFormat").and_then(Value::as_str).filter(|f| !f.trim().is_empty());
                    let description = description.clone().or_else(|| format.map(|f| format!("A {} token", f.trim())));
                    Some(vec![Variant {
                        flow: None,
                        piece: Piece::Key(key),
                        label: "Bearer token".to_owned(),
                        description,
                    }])
                }
                "" => {
                    ctx.error(&child(&at, "scheme"), format!("the HTTP security scheme '{name}' has no scheme"));
                    None
                }
                other => {
                    ctx.error(
                        &child(&at, "scheme"),
                        format!("unsupported HTTP authentication scheme '{other}' in '{name}': Portico sends basic and bearer"),
                    );
                    None
                }
            }
        }
        "apikey" => {
            let Some(key_name) = object.get("name").and_then(Value::as_str).map(str::trim).filter(|n| !n.is_empty())
            else {
                ctx.error(
                    &child(&at, "name"),
                    format!("the API key scheme '{name}' has no name to send the key under"),
                );
                return None;
            };
            let written = object.get("in").and_then(Value::as_str).unwrap_or_default();
            let Some(location) = ApiKeyLocation::parse(written.trim()) else {
                ctx.error(
                    &child(&at, "in"),
                    format!(
                        "unknown API key location '{written}' in '{name}': a key goes in a header, query or cookie"
                    ),
                );
                return None;
            };
            let label = description.as_deref().and_then(first_sentence);
            let key = Key {
                name: key_name.to_owned(),
                location,
                prefix: None,
                parameter: "api_key",
                label: label.clone().unwrap_or_else(|| "API key".to_owned()),
                qualified_label: label.unwrap_or_else(|| format!("API key ({key_name})")),
            };
            single(Piece::Key(key), "API key")
        }
        "oauth2" => oauth_variants(ctx, object, name, &at, description, server),
        "openidconnect" => {
            let Some(url) = object.get("openIdConnectUrl").and_then(Value::as_str).filter(|u| !u.trim().is_empty())
            else {
                ctx.error(
                    &child(&at, "openIdConnectUrl"),
                    format!("the OpenID Connect scheme '{name}' has no openIdConnectUrl"),
                );
                return None;
            };
            let oauth = OAuth2 {
                identity_provider: IdentityProvider::new("openidconnect"),
                discovery_url: Some(absolute(url.trim(), server)),
                scopes: vec!["openid".to_owned()],
                ..oauth_base()
            };
            single(Piece::OAuth(Box::new(oauth)), "OpenID Connect")
        }
        _ => {
            ctx.error(&child(&at, "type"), format!("unsupported security scheme type '{kind}'"));
            None
        }
    }
}

fn oauth_variants(
    ctx: &mut Ctx<'_>,
    scheme: &Map<String, Value>,
    name: &str,
    at: &str,
    description: Option<String>,
    server: Option<&Url>,
) -> Option<Vec<Variant>> {
    let flows_at = child(at, "flows");
    let Some(flows) = scheme.get("flows").and_then(Value::as_object) else {
        ctx.error(&flows_at, format!("the OAuth 2.0 scheme '{name}' has no flows"));
        return None;
    };
    let mut variants = Vec::new();
    for (flow_name, flow) in flows {
        let flow_at = child(&flows_at, flow_name);
        let (flow_id, grant, label) = match flow_name.as_str() {
            "authorizationCode" => ("authorizationCode", GrantType::AuthorizationCode, "OAuth 2.0"),
            "clientCredentials" => {
                ("clientCredentials", GrantType::ClientCredentials, "OAuth 2.0 (client credentials)")
            }
            "implicit" | "password" => {
                ctx.warn(&flow_at, format!("the OAuth 2.0 {flow_name} flow is not supported; it is skipped"));
                continue;
            }
            extension if extension.starts_with("x-") => continue,
            other => {
                ctx.warn(&flow_at, format!("the OAuth 2.0 flow '{other}' is not supported; it is skipped"));
                continue;
            }
        };
        let url = |key: &str| {
            flow.get(key).and_then(Value::as_str).map(str::trim).filter(|u| !u.is_empty()).map(|u| absolute(u, server))
        };
        let token_url = url("tokenUrl");
        let authorization_url = url("authorizationUrl");
        if token_url.is_none() {
            ctx.error(&child(&flow_at, "tokenUrl"), format!("the {flow_name} flow of '{name}' has no tokenUrl"));
            continue;
        }
        if grant == GrantType::AuthorizationCode && authorization_url.is_none() {
            ctx.error(
                &child(&flow_at, "authorizationUrl"),
                format!("the {flow_name} flow of '{name}' has no authorizationUrl"),
            );
            continue;
        }
        let scopes = flow.get("scopes").and_then(Value::as_object).map(|s| s.keys().cloned().collect());
        let oauth = OAuth2 {
            grant,
            authorization_url: if grant == GrantType::AuthorizationCode { authorization_url } else { None },
            token_url,
            refresh_url: url("refreshUrl"),
            scopes: scopes.unwrap_or_default(),
            ..oauth_base()
        };
        variants.push(Variant {
            flow: Some(flow_id),
            piece: Piece::OAuth(Box::new(oauth)),
            label: label.to_owned(),
            description: description.clone(),
        });
    }
    match variants.len() {
        0 => {
            ctx.warn(
                &flows_at,
                format!(
                    "the OAuth 2.0 scheme '{name}' has no flow Portico supports (authorizationCode, \
                     clientCredentials); it is skipped"
                ),
            );
            None
        }
        1 => {
            variants[0].flow = None;
            Some(variants)
        }
        _ => Some(variants),
    }
}

fn oauth_base() -> OAuth2 {
    OAuth2::new(IdentityProvider::new("oauth2"))
}

/// OpenAPI lets URLs be relative to the server.
fn absolute(url: &str, server: Option<&Url>) -> String {
    match (Url::parse(url), server) {
        (Err(url::ParseError::RelativeUrlWithoutBase), Some(server)) => {
            server.join(url).map_or_else(|_| url.to_owned(), String::from)
        }
        _ => url.to_owned(),
    }
}

type Part<'v> = (&'v str, &'v [String], &'v Variant);

/// One choice of variant per scheme, for every way of choosing.
fn combinations<'v>(
    ctx: &mut Ctx<'_>,
    per_scheme: &[(&'v str, &'v [String], &'v [Variant])],
    at: &str,
) -> Vec<Vec<Part<'v>>> {
    let mut out: Vec<Vec<Part<'v>>> = vec![Vec::new()];
    for (name, scopes, variants) in per_scheme {
        if out.len() * variants.len() > MAX_COMBINATIONS {
            ctx.error(at, format!("this security requirement makes more than {MAX_COMBINATIONS} ways to connect"));
            return Vec::new();
        }
        out = out
            .into_iter()
            .flat_map(|prefix| {
                variants.iter().map(move |variant| {
                    let mut parts = prefix.clone();
                    parts.push((*name, *scopes, variant));
                    parts
                })
            })
            .collect();
    }
    out
}

/// The schemes of one requirement as one parameter set. Keys beside a basic or OAuth
/// credential become policies, since a set carries one credential.
fn combine(ctx: &mut Ctx<'_>, parts: &[Part<'_>], at: &str) -> Option<(ParameterSet, Vec<Policy>)> {
    let primaries: Vec<&str> =
        parts.iter().filter(|(_, _, v)| !matches!(v.piece, Piece::Key(_))).map(|(name, _, _)| *name).collect();
    if let [first, second, ..] = primaries.as_slice() {
        ctx.error(
            at,
            format!(
                "'{first}' and '{second}' cannot be combined: a connection sends one basic or OAuth 2.0 credential"
            ),
        );
        return None;
    }
    let mut parameters: Vec<ConnectionParameter> = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    let mut primary = None;
    for (_, scopes, variant) in parts {
        match &variant.piece {
            Piece::Basic => {
                let mut username = ConnectionParameter::new("username", ParameterType::String, "Username");
                username.required = true;
                let mut password = ConnectionParameter::new("password", ParameterType::SecureString, "Password");
                password.required = true;
                parameters.extend([username, password]);
                taken.extend(["username".to_owned(), "password".to_owned()]);
                primary = Some((
                    "basic",
                    Credential::Basic { username: "username".to_owned(), password: "password".to_owned() },
                ));
            }
            Piece::OAuth(oauth) => {
                let mut oauth = oauth.clone();
                if !scopes.is_empty() {
                    oauth.scopes = scopes.to_vec();
                }
                taken.push(oauth.parameter.clone());
                primary = Some(("OAuth 2.0", Credential::OAuth2(oauth)));
            }
            Piece::Key(_) => {}
        }
    }
    let alone = parts.len() == 1;
    let mut keys = Vec::new();
    for (name, _, variant) in parts {
        let Piece::Key(key) = &variant.piece else { continue };
        let wanted = if alone { key.parameter.to_owned() } else { parameter_name(name) };
        let parameter = unique(&wanted, &taken);
        taken.push(parameter.clone());
        let label = if alone { key.label.clone() } else { key.qualified_label.clone() };
        let mut field = ConnectionParameter::new(&parameter, ParameterType::SecureString, label);
        field.required = true;
        field.ui.description.clone_from(&variant.description);
        parameters.push(field);
        keys.push(ApiKey { parameter, name: key.name.clone(), location: key.location, prefix: key.prefix.clone() });
    }
    let mut policies = Vec::new();
    let credential = match primary {
        None => Credential::ApiKey { keys },
        Some((kind, credential)) => {
            for key in keys {
                let value = Template::new(format!(
                    "{}@connectionParameters('{}')",
                    key.prefix.as_deref().unwrap_or_default(),
                    key.parameter
                ));
                let policy = match key.location {
                    ApiKeyLocation::Header if key.name.eq_ignore_ascii_case("authorization") => {
                        ctx.error(
                            at,
                            format!(
                                "the {kind} credential and '{}' would both be sent as the Authorization header",
                                key.parameter
                            ),
                        );
                        return None;
                    }
                    ApiKeyLocation::Header => PolicyKind::SetHeader { name: key.name.clone(), value },
                    ApiKeyLocation::Query => PolicyKind::SetQueryParameter { name: key.name.clone(), value },
                    ApiKeyLocation::Cookie => {
                        ctx.error(
                            at,
                            format!("the cookie key '{}' cannot be sent beside a {kind} credential", key.name),
                        );
                        return None;
                    }
                };
                ctx.warn(
                    at,
                    format!("the key '{}' is sent by a policy on every call, beside the {kind} credential", key.name),
                );
                policies.push(Policy { kind: policy, operations: Vec::new() });
            }
            credential
        }
    };
    let name = parts
        .iter()
        .map(|(name, _, v)| match v.flow {
            Some(flow) => format!("{name}_{flow}"),
            None => (*name).to_owned(),
        })
        .collect::<Vec<_>>()
        .join("_");
    let label = parts.iter().map(|(_, _, v)| v.label.as_str()).collect::<Vec<_>>().join(" + ");
    let description = if alone { parts.first().and_then(|(_, _, v)| v.description.clone()) } else { None };
    let ui = UiText { label, description, tooltip: None };
    Some((ParameterSet { name, ui: Some(ui), parameters, credential }, policies))
}

/// A scheme name as a parameter name: letters, digits and `_`.
fn parameter_name(scheme: &str) -> String {
    let name: String = scheme.chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).collect();
    if name.trim_matches('_').is_empty() { "key".to_owned() } else { name }
}

fn unique(wanted: &str, taken: &[String]) -> String {
    let clash = |name: &str| taken.iter().any(|t| t.eq_ignore_ascii_case(name));
    let mut name = wanted.to_owned();
    let mut n = 2;
    while clash(&name) {
        name = format!("{wanted}_{n}");
        n += 1;
    }
    name
}

/// The same scheme under different scopes gives sets of the same name.
fn unique_names(sets: &mut [ParameterSet]) {
    let mut taken: Vec<String> = Vec::new();
    for set in sets {
        set.name = unique(&set.name, &taken);
        taken.push(set.name.clone());
    }
}
