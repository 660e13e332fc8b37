//! Binding a parameter set to the credential that the swagger says how to send.
//!
//! Nothing in the files links a parameter to a security definition: the link is a naming
//! convention (`token`, `username`/`password`, `api_key`). The rules follow the format
//! research (§2.4, §4), which the corpus test checks against an independent classification.

use std::collections::BTreeMap;

use portico_model::{
    ApiKey, ApiKeyLocation, ConnectionParameter, Credential, EntraId, GrantType, IdentityProvider, OAuth2,
    OAuthTemplates, ParameterType,
};
use serde_json::Value;

use super::connection::{RawSet, ui_text};
use super::findings::{Findings, Source};
use super::value::{Object, get, get_object, get_str, get_text, normalized, pointer, scalar_text, truthy};

type Definition<'a> = (&'a str, &'a Object);

/// The swagger's `securityDefinitions` and top-level `security`.
pub(super) struct Security<'a> {
    definitions: Vec<Definition<'a>>,
    /// The API-key definitions a connection uses: one, or several that go together.
    api_keys: Vec<Definition<'a>>,
    /// Names listed in `security`, for choosing among several definitions of one kind.
    required: Vec<&'a str>,
}

impl<'a> Security<'a> {
    pub(super) fn read(swagger: &'a Object, findings: &mut Findings) -> Self {
        let mut definitions = Vec::new();
        for (name, value) in get_object(swagger, "securityDefinitions").into_iter().flatten() {
            match value.as_object() {
                Some(definition) => definitions.push((name.as_str(), definition)),
                None => findings.warn(
                    Source::Definition,
                    &pointer("/securityDefinitions", name),
                    format!("security definition '{name}' is not an object; ignored"),
                ),
            }
        }
        let mut requirements: Vec<Vec<&str>> = Vec::new();
        let listed = get(swagger, "security").and_then(Value::as_array).into_iter().flatten();
        for (i, requirement) in listed.enumerate() {
            let Some(requirement) = requirement.as_object() else { continue };
            let mut names = Vec::new();
            for name in requirement.keys() {
                if definitions.iter().any(|(d, _)| d.eq_ignore_ascii_case(name)) {
                    names.push(name.as_str());
                } else {
                    findings.warn(
                        Source::Definition,
                        &format!("/security/{i}"),
                        format!("security names '{name}', which securityDefinitions does not declare; ignored"),
                    );
                }
            }
            requirements.push(names);
        }
        let mut security = Security { definitions, api_keys: Vec::new(), required: Vec::new() };
        security.required = requirements.iter().flatten().copied().collect();
        security.api_keys = security.choose_api_keys(&requirements, findings);
        security
    }

    fn of_kind(&self, kind: &str) -> impl Iterator<Item = Definition<'a>> + '_ {
        let kind = kind.to_owned();
        self.definitions.iter().copied().filter(move |(_, d)| kind_of(d) == kind)
    }

    /// The definition of `kind` that `security` asks for, else the first declared.
    fn preferred(&self, kind: &str) -> Option<Definition<'a>> {
        let is_required = |name: &str| self.required.iter().any(|r| r.eq_ignore_ascii_case(name));
        self.of_kind(kind).find(|(name, _)| is_required(name)).or_else(|| self.of_kind(kind).next())
    }

    fn named(&self, name: &str) -> Option<Definition<'a>> {
        let found = self.definitions.iter().find(|(d, _)| *d == name);
        found.or_else(|| self.definitions.iter().find(|(d, _)| d.eq_ignore_ascii_case(name))).copied()
    }

    /// Several API-key definitions: one requirement naming several is an AND (all keys are
    /// sent); several requirements are alternatives (OR), of which the first is used.
    fn choose_api_keys(&self, requirements: &[Vec<&'a str>], findings: &mut Findings) -> Vec<Definition<'a>> {
        let all: Vec<Definition<'a>> = self.of_kind("apikey").collect();
        if all.len() <= 1 {
            return all;
        }
        let wanted: Vec<Vec<Definition<'a>>> = requirements
            .iter()
            .map(|names| {
                names.iter().filter_map(|n| self.named(n)).filter(|(_, d)| kind_of(d) == "apikey").collect::<Vec<_>>()
            })
            .filter(|names| !names.is_empty())
            .collect();
        let Some(first) = wanted.first() else {
            findings.warn(
                Source::Definition,
                "/securityDefinitions",
                format!(
                    "{} API-key definitions and no security requirement names one; Portico uses the first, '{}'",
                    all.len(),
                    all[0].0
                ),
            );
            return vec![all[0]];
        };
        if wanted.len() > 1 {
            let names: Vec<&str> = wanted.iter().map(|w| w[0].0).collect();
            findings.warn(
                Source::Definition,
                "/security",
                format!(
                    "security offers alternative API keys ({}); Portico uses the first, '{}'",
                    names.join(", "),
                    first[0].0
                ),
            );
        }
        first.clone()
    }

    /// Definitions that no set's credential uses, for a warning.
    pub(super) fn report_unused(&self, credentials: &[&Credential], findings: &mut Findings) {
        let used = |kind: &str| {
            credentials.iter().any(|c| {
                matches!(
                    (kind, c),
                    ("basic", Credential::Basic { .. })
                        | ("apikey", Credential::ApiKey { .. })
                        | ("oauth2", Credential::OAuth2(_))
                )
            })
        };
        for (name, definition) in &self.definitions {
            let kind = kind_of(definition);
            if matches!(kind.as_str(), "basic" | "apikey" | "oauth2") && !used(&kind) {
                findings.warn(
                    Source::Definition,
                    &pointer("/securityDefinitions", name),
                    format!("security definition '{name}' ({kind}) is not used by any connection parameter"),
                );
            }
        }
    }
}

fn kind_of(definition: &Object) -> String {
    get_str(definition, "type").unwrap_or_default().to_ascii_lowercase()
}

/// Decides the set's credential, adding parameters the definition needs but the file lacks.
pub(super) fn bind(set: &mut RawSet<'_>, security: &Security<'_>, findings: &mut Findings) -> Credential {
    let in_choice = !set.name.is_empty();
    // A set named like a security definition is the only explicit link in the files.
    if in_choice && let Some(definition) = security.named(&set.name) {
        match kind_of(definition.1).as_str() {
            "basic" => return basic(set, findings),
            "apikey" => return api_key(set, &[definition], findings),
            "oauth2" if !set.oauth.is_empty() => return oauth(set, Some(definition.1), findings),
            _ => {}
        }
    }
    if !set.oauth.is_empty() {
        return oauth(set, security.preferred("oauth2").map(|d| d.1), findings);
    }
    // In a choice the parameters speak first: a username/password set is basic even when
    // the swagger only declares another kind.
    if in_choice && set.parameter("username").is_some() && set.parameter("password").is_some() {
        return basic(set, findings);
    }
    if security.preferred("basic").is_some() {
        return basic(set, findings);
    }
    if !security.api_keys.is_empty() {
        return api_key(set, &security.api_keys, findings);
    }
    if let Some((name, _)) = security.preferred("oauth2") {
        findings.warn(
            Source::Definition,
            &pointer("/securityDefinitions", name),
            format!("OAuth 2.0 definition '{name}' has no connection parameter of type oauthSetting; no sign-in"),
        );
    }
    Credential::None
}

fn basic(set: &mut RawSet<'_>, findings: &mut Findings) -> Credential {
    let username = declared_or_added(set, "username", ParameterType::String, "Username", findings);
    let password = declared_or_added(set, "password", ParameterType::SecureString, "Password", findings);
    Credential::Basic { username, password }
}

/// The parameter's name as declared (`userName`), or a new required one when missing.
fn declared_or_added(
    set: &mut RawSet<'_>,
    name: &str,
    kind: ParameterType,
    label: &str,
    findings: &mut Findings,
) -> String {
    if let Some(declared) = set.parameter(name) {
        return declared.name.clone();
    }
    findings.warn(
        Source::Properties,
        &set.pointer,
        format!("basic authentication needs a '{name}' connection parameter; Portico adds one labelled '{label}'"),
    );
    let mut parameter = ConnectionParameter::new(name, kind, label);
    parameter.required = true;
    set.parameters.push(parameter);
    name.to_owned()
}

fn api_key(set: &mut RawSet<'_>, definitions: &[Definition<'_>], findings: &mut Findings) -> Credential {
    let mut keys: Vec<ApiKey> = Vec::new();
    for &(definition_name, definition) in definitions {
        let at = pointer("/securityDefinitions", definition_name);
        let location = match get_str(definition, "in") {
            Some(written) => match ApiKeyLocation::parse(written) {
                Some(location) => location,
                None => {
                    findings.error(
                        Source::Definition,
                        &pointer(&at, "in"),
                        format!("unknown API key location '{written}' in security definition '{definition_name}'"),
                    );
                    continue;
                }
            },
            None => {
                findings.error(
                    Source::Definition,
                    &at,
                    format!("API key definition '{definition_name}' has no location ('in')"),
                );
                continue;
            }
        };
        let name = get_text(definition, "name").unwrap_or_default();
        let used: Vec<&str> = keys.iter().map(|k| k.parameter.as_str()).collect();
        let parameter = match key_parameter(set, &used, definition_name, &name, definitions.len() > 1, findings) {
            Some(parameter) => parameter,
            None => add_key_parameter(set, &used, definition_name, findings),
        };
        keys.push(ApiKey { parameter, name, location, prefix: None });
    }
    Credential::ApiKey { keys }
}

/// Which declared parameter holds the key: by name first, then by elimination.
fn key_parameter(
    set: &RawSet<'_>,
    used: &[&str],
    definition_name: &str,
    sent_as: &str,
    several: bool,
    findings: &mut Findings,
) -> Option<String> {
    let free: Vec<&ConnectionParameter> =
        set.parameters.iter().filter(|p| !used.iter().any(|u| u.eq_ignore_ascii_case(&p.name))).collect();
    let named_like_definition = || free.iter().find(|p| normalized(&p.name) == normalized(definition_name));
    let only = |found: Vec<&&ConnectionParameter>| if found.len() == 1 { Some(found[0].name.clone()) } else { None };
    // With several keys, each definition's name is the only clue (Annature, Fleetio).
    if several && let Some(p) = named_like_definition() {
        return Some(p.name.clone());
    }
    if let Some(p) = free.iter().find(|p| p.name.eq_ignore_ascii_case("api_key")) {
        return Some(p.name.clone());
    }
    if let Some(name) = only(free.iter().filter(|p| normalized(&p.name).contains("apikey")).collect()) {
        return Some(name);
    }
    if let Some(name) = only(free.iter().filter(|p| p.kind == ParameterType::SecureString).collect()) {
        return Some(name);
    }
    if let Some(p) = named_like_definition() {
        return Some(p.name.clone());
    }
    // Weaker clues, worth a warning: the header names the parameter (`X-Secret-Key` and
    // `secretKey`), or one secret's label speaks of a key.
    let header = normalized(sent_as);
    let guess = free
        .iter()
        .find(|p| {
            let n = normalized(&p.name);
            n.len() >= 3 && header.ends_with(&n)
        })
        .map(|p| p.name.clone())
        .or_else(|| {
            only(
                free.iter()
                    .filter(|p| {
                        let ui = &p.ui;
                        let words = [Some(&ui.label), ui.description.as_ref(), ui.tooltip.as_ref()];
                        (p.kind == ParameterType::SecureString)
                            && words.into_iter().flatten().any(|w| w.to_ascii_lowercase().contains("key"))
                    })
                    .collect(),
            )
        })?;
    findings.warn(
        Source::Properties,
        &set.pointer,
        format!("no parameter is named for API key '{definition_name}'; Portico takes the key from '{guess}'"),
    );
    Some(guess)
}

fn add_key_parameter(set: &mut RawSet<'_>, used: &[&str], definition_name: &str, findings: &mut Findings) -> String {
    let mut name = "api_key".to_owned();
    let mut n = 2;
    while set.parameter(&name).is_some() || used.iter().any(|u| u.eq_ignore_ascii_case(&name)) {
        name = format!("api_key_{n}");
        n += 1;
    }
    let label = if definition_name.trim().is_empty() { "API Key" } else { definition_name };
    findings.warn(
        Source::Properties,
        &set.pointer,
        format!(
            "no connection parameter holds API key '{definition_name}'; Portico adds a secure parameter '{name}' \
             labelled '{label}'"
        ),
    );
    let mut parameter = ConnectionParameter::new(&name, ParameterType::SecureString, label);
    parameter.required = true;
    set.parameters.push(parameter);
    name
}

fn oauth(set: &mut RawSet<'_>, swagger: Option<&Object>, findings: &mut Findings) -> Credential {
    let mut sign_ins = std::mem::take(&mut set.oauth).into_iter();
    let Some(sign_in) = sign_ins.next() else { return Credential::None };
    for extra in sign_ins {
        findings.warn(
            Source::Properties,
            &extra.pointer,
            format!("only one OAuth sign-in per set is supported; '{}' is ignored", extra.name),
        );
    }
    let empty = Object::new();
    let settings = match get_object(sign_in.definition, "oAuthSettings") {
        Some(settings) => settings,
        None => {
            findings.warn(
                Source::Properties,
                &sign_in.pointer,
                format!("OAuth parameter '{}' has no oAuthSettings", sign_in.name),
            );
            &empty
        }
    };
    let custom = custom_parameters(settings);
    let find = |key: &str| {
        custom.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    };
    let provider = get_text(settings, "identityProvider").unwrap_or_default();
    let mut oauth = OAuth2 {
        parameter: sign_in.name.clone(),
        label: get_object(sign_in.definition, "uiDefinition").map(ui_text).map(|u| u.label).filter(|l| !l.is_empty()),
        client_id: get_text(settings, "clientId"),
        authorization_url: find("authorizationUrl").map(str::to_owned),
        token_url: find("tokenUrl").map(str::to_owned),
        refresh_url: find("refreshUrl").map(str::to_owned),
        scopes: scopes(get(settings, "scopes"), swagger),
        redirect_mode: get_text(settings, "redirectMode"),
        ..OAuth2::new(IdentityProvider::new(&provider))
    };
    let provider = provider.to_ascii_lowercase();
    if provider == "aad" || provider == "aadcertificate" {
        let properties = get_object(settings, "properties");
        let on_behalf_of = match find("enableOnbehalfOfLogin") {
            Some(flag) => flag.eq_ignore_ascii_case("true"),
            None => properties.and_then(|p| get(p, "IsOnbehalfofLoginSupported")).is_some_and(truthy),
        };
        oauth.entra = Some(EntraId {
            tenant: find("tenantId").map(str::to_owned),
            resource_uri: find("resourceUri")
                .map(str::to_owned)
                .or_else(|| properties.and_then(|p| get_text(p, "AzureActiveDirectoryResourceId"))),
            login_uri: find("loginUri").or_else(|| find("loginUriAAD")).map(str::to_owned),
            on_behalf_of,
        });
    }
    let templates = OAuthTemplates {
        authorization_url: find("authorizationUrlTemplate").map(str::to_owned),
        authorization_query: find("authorizationUrlQueryStringTemplate").map(str::to_owned),
        token_url: find("tokenUrlTemplate").map(str::to_owned),
        token_query: find("tokenUrlQueryStringTemplate").map(str::to_owned),
        token_body: find("tokenBodyTemplate").map(str::to_owned),
        refresh_url: find("refreshUrlTemplate").map(str::to_owned),
        refresh_query: find("refreshUrlQueryStringTemplate").map(str::to_owned),
        refresh_body: find("refreshBodyTemplate").map(str::to_owned),
        // A delimiter may well be a single space, so it is not trimmed away.
        scope_delimiter: custom
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("scopeListDelimiter"))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty()),
    };
    if templates != OAuthTemplates::default() {
        oauth.templates = Some(templates);
    }
    // Entra ID builds its URLs from the tenant, and templates carry their own; any other
    // provider falls back to the swagger definition's URLs.
    if oauth.entra.is_none() && oauth.templates.is_none() {
        let at = pointer(&sign_in.pointer, "oAuthSettings");
        for (key, field) in [("authorizationUrl", &mut oauth.authorization_url), ("tokenUrl", &mut oauth.token_url)] {
            let from_swagger = swagger.and_then(|s| get_text(s, key));
            if let Some(message) = reconcile_url(key, field, from_swagger) {
                findings.warn(Source::Properties, &at, message);
            }
        }
        if let Some(refresh) = oauth.refresh_url.take_if(|url| !usable_url(url)) {
            findings.warn(
                Source::Properties,
                &at,
                format!("refreshUrl '{refresh}' is not an absolute URL; refreshes go to the token URL"),
            );
        }
    }
    oauth.grant = grant(find("grantType"), set, swagger);
    oauth.custom_parameters = custom;
    Credential::OAuth2(Box::new(oauth))
}

/// Settles one endpoint between apiProperties (preferred, as the platform uses it) and the
/// swagger definition; returns a warning when they disagree.
fn reconcile_url(key: &str, own: &mut Option<String>, from_swagger: Option<String>) -> Option<String> {
    let from_swagger = from_swagger?;
    match own.as_deref() {
        None => {
            *own = Some(from_swagger);
            None
        }
        Some(written) if written == from_swagger => None,
        // A placeholder or relative path in apiProperties (`https://<replace me>`, `/oauth/token`)
        // cannot be the one used; the swagger's absolute URL can.
        Some(written) if !usable_url(written) && usable_url(&from_swagger) => {
            let message =
                format!("{key} '{written}' is not an absolute URL; the swagger definition's '{from_swagger}' is used");
            *own = Some(from_swagger);
            Some(message)
        }
        Some(written) => Some(format!(
            "{key} '{written}' differs from the swagger definition's '{from_swagger}'; the apiProperties value is used"
        )),
    }
}

/// An absolute http(s) URL, or a template that becomes one once its placeholders are filled.
fn usable_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    if text.contains('{') || lower.contains("@connectionparameters(") {
        return true;
    }
    url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Every custom parameter as written: `{"value": x}` gives `x`, anything empty gives "".
fn custom_parameters(settings: &Object) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in get_object(settings, "customParameters").into_iter().flatten() {
        let text = match value {
            Value::Object(o) => get(o, "value").and_then(scalar_text),
            other => scalar_text(other),
        };
        out.insert(key.clone(), text.unwrap_or_default());
    }
    out
}

/// `oAuthSettings.scopes`, where one entry may hold several space-separated scopes and `null`
/// means none; the swagger definition's scopes when the key is absent.
fn scopes(written: Option<&Value>, swagger: Option<&Object>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |text: &str| {
        for scope in text.split_whitespace() {
            if !out.iter().any(|s| s == scope) {
                out.push(scope.to_owned());
            }
        }
    };
    match written {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(&mut add),
        Some(Value::String(text)) => add(text),
        Some(_) => {}
        None => swagger.and_then(|s| get_object(s, "scopes")).into_iter().flatten().for_each(|(k, _)| add(k)),
    }
    out
}

/// Client credentials when the file says so (custom parameter, or a `token:grantType` that
/// can only be that); the swagger flow otherwise.
fn grant(custom: Option<&str>, set: &RawSet<'_>, swagger: Option<&Object>) -> GrantType {
    let client_credentials = |v: &str| v.trim().eq_ignore_ascii_case("client_credentials");
    let from_parameter = set.parameter("token:grantType").is_some_and(|p| {
        p.default.as_deref().is_some_and(client_credentials)
            || (p.allowed_values.len() == 1 && client_credentials(&p.allowed_values[0].value))
    });
    if custom.is_some_and(client_credentials) || from_parameter {
        return GrantType::ClientCredentials;
    }
    match swagger.and_then(|s| get_str(s, "flow")).map(str::to_ascii_lowercase).as_deref() {
        Some("implicit") => GrantType::Implicit,
        Some("application") => GrantType::ClientCredentials,
        _ => GrantType::AuthorizationCode,
    }
}
