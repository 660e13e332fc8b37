//! The rules a connector must satisfy before it is published.

use std::collections::HashSet;

use crate::{
    ApiKeyLocation, ConnectionSpec, Connector, Credential, Diagnostic, IdentityProviderCatalog, OAuth2, ParameterSet,
    PolicyKind, Template,
};

impl Connector {
    /// Checks the connector against the model's rules. Errors make it unusable; warnings point
    /// at oddities that still work.
    pub fn validate(&self, catalog: &IdentityProviderCatalog) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if self.metadata.display_name.trim().is_empty() {
            out.push(Diagnostic::error("metadata.displayName", "the connector has no display name"));
        }
        for (i, policy) in self.policies.iter().enumerate() {
            if let PolicyKind::SetHeader { name, .. } = &policy.kind
                && let Some(problem) = crate::header_name_problem(name)
            {
                out.push(Diagnostic::error(format!("policies.{i}.name"), problem));
            }
        }
        if self.backend.host.trim().is_empty() && self.backend.host_template.is_none() {
            out.push(Diagnostic::error("backend.host", "the backend has no host"));
        }
        if !self.backend.base_path.starts_with('/') {
            out.push(Diagnostic::error("backend.basePath", "the base path must start with '/'"));
        }
        self.validate_operations(&mut out);
        let multiple = matches!(self.connection, ConnectionSpec::Choice { .. });
        if let ConnectionSpec::Choice { sets, .. } = &self.connection {
            if sets.is_empty() {
                out.push(Diagnostic::error("connection.sets", "a choice of parameter sets needs at least one set"));
            }
            let mut seen = HashSet::new();
            for set in sets {
                if set.name.trim().is_empty() {
                    out.push(Diagnostic::error("connection.sets", "a parameter set has no name"));
                } else if !seen.insert(set.name.to_ascii_lowercase()) {
                    out.push(Diagnostic::error(
                        format!("connection.sets.{}", set.name),
                        format!("duplicate parameter set name '{}'", set.name),
                    ));
                }
            }
        }
        for set in self.connection.sets() {
            let at = if multiple { format!("connection.sets.{}", set.name) } else { "connection".to_owned() };
            validate_set(set, &at, catalog, &mut out);
            self.validate_references(set, &at, &mut out);
        }
        out
    }

    fn validate_operations(&self, out: &mut Vec<Diagnostic>) {
        let mut seen = HashSet::new();
        for op in &self.operations {
            if !seen.insert(op.id.as_str()) {
                out.push(Diagnostic::warning(
                    format!("operations.{}", op.id),
                    format!("operation id '{}' is used more than once; calls use the first", op.id),
                ));
            }
        }
        if let Some(test) = &self.test_operation
            && self.operation(test).is_none()
        {
            out.push(Diagnostic::warning(
                "testOperation",
                format!("the test operation '{test}' is not an operation of this connector"),
            ));
        }
    }

    /// Policies and the host template may only name parameters the set declares.
    fn validate_references(&self, set: &ParameterSet, at: &str, out: &mut Vec<Diagnostic>) {
        let mut templates: Vec<(&str, &Template)> = Vec::new();
        if let Some(t) = &self.backend.host_template {
            templates.push(("backend.hostTemplate", t));
        }
        for policy in &self.policies {
            match &policy.kind {
                PolicyKind::SetHeader { value, .. } | PolicyKind::SetQueryParameter { value, .. } => {
                    templates.push(("policies", value));
                }
                PolicyKind::Other { .. } => {}
            }
        }
        for (where_, template) in templates {
            for reference in template.references() {
                if reference.default.is_none() && set.parameter(reference.name).is_none() {
                    out.push(Diagnostic::warning(
                        where_,
                        format!(
                            "'{}' refers to connection parameter '{}', which {} does not declare",
                            template,
                            reference.name,
                            if at == "connection" { "the connector".to_owned() } else { format!("set '{}'", set.name) }
                        ),
                    ));
                }
            }
        }
    }
}

fn validate_set(set: &ParameterSet, at: &str, catalog: &IdentityProviderCatalog, out: &mut Vec<Diagnostic>) {
    let mut names = HashSet::new();
    for p in &set.parameters {
        let p_at = format!("{at}.parameters.{}", p.name);
        if p.name.trim().is_empty() {
            out.push(Diagnostic::error(format!("{at}.parameters"), "a connection parameter has no name"));
        }
        if !names.insert(p.name.to_ascii_lowercase()) {
            out.push(Diagnostic::error(&p_at, format!("duplicate connection parameter name '{}'", p.name)));
        }
        if !p.hidden && p.ui.label.trim().is_empty() {
            out.push(Diagnostic::error(
                format!("{p_at}.label"),
                format!("connection parameter '{}' is shown to users but has no label", p.name),
            ));
        }
        if let Some(default) = &p.default
            && matches!(p.kind, crate::ParameterType::Bool | crate::ParameterType::Int)
            && crate::values::typed(p.kind, default).is_none()
        {
            out.push(Diagnostic::warning(
                format!("{p_at}.default"),
                format!("default '{default}' is not a valid {} value; it is ignored", p.kind.as_str()),
            ));
        }
        if let Some(default) = &p.default
            && !p.allowed_values.is_empty()
            && !p.allowed_values.iter().any(|v| &v.value == default)
        {
            out.push(Diagnostic::warning(
                format!("{p_at}.default"),
                format!("default '{default}' is not one of the allowed values"),
            ));
        }
    }
    let require = |name: &str, role: &str, out: &mut Vec<Diagnostic>| {
        if set.parameter(name).is_none() {
            out.push(Diagnostic::error(
                format!("{at}.credential"),
                format!("the {role} parameter '{name}' is not declared"),
            ));
        }
    };
    for name in set.credential_parameters() {
        if let Some(p) = set.parameter(name)
            && p.kind != crate::ParameterType::SecureString
        {
            out.push(Diagnostic::warning(
                format!("{at}.parameters.{}", p.name),
                format!(
                    "'{}' carries a credential but is declared '{}'; Portico seals it as a secret",
                    p.name,
                    p.kind.as_str()
                ),
            ));
        }
    }
    match &set.credential {
        Credential::None => {}
        Credential::Basic { username, password } => {
            require(username, "basic-auth username", out);
            require(password, "basic-auth password", out);
        }
        Credential::ApiKey { keys } => {
            if keys.is_empty() {
                out.push(Diagnostic::error(format!("{at}.credential"), "an API-key credential needs at least one key"));
            }
            for key in keys {
                if key.name.trim().is_empty() {
                    out.push(Diagnostic::error(
                        format!("{at}.credential"),
                        format!("the API key '{}' has no name to send it under", key.parameter),
                    ));
                }
                require(&key.parameter, "API-key", out);
                let problem = match key.location {
                    ApiKeyLocation::Header => crate::header_name_problem(&key.name),
                    ApiKeyLocation::Cookie => crate::cookie_name_problem(&key.name),
                    ApiKeyLocation::Query => None,
                };
                if let Some(problem) = problem.filter(|_| !key.name.trim().is_empty()) {
                    out.push(Diagnostic::error(format!("{at}.credential"), problem));
                }
            }
        }
        Credential::OAuth2(oauth) => validate_oauth(oauth, &format!("{at}.credential"), catalog, out),
    }
}

fn validate_oauth(oauth: &OAuth2, at: &str, catalog: &IdentityProviderCatalog, out: &mut Vec<Diagnostic>) {
    let provider = oauth.identity_provider.as_str();
    if provider.trim().is_empty() {
        out.push(Diagnostic::error(
            format!("{at}.identityProvider"),
            "the OAuth 2.0 credential has no identity provider",
        ));
        return;
    }
    let templates = oauth.templates.as_ref();
    let discovered = oauth.discovery_url.is_some();
    let has_token_url = discovered || oauth.token_url.is_some() || templates.is_some_and(|t| t.token_url.is_some());
    let has_auth_url =
        discovered || oauth.authorization_url.is_some() || templates.is_some_and(|t| t.authorization_url.is_some());
    let needs_auth_url = oauth.grant != crate::GrantType::ClientCredentials;
    match catalog.get(provider) {
        Some(entry) if !entry.generic => {}
        known => {
            let what = match known {
                Some(entry) => format!("a {}", entry.display_name),
                None => format!("an identity provider '{provider}' (not in the catalog)"),
            };
            let mut missing = Vec::new();
            if !has_token_url {
                missing.push("a token URL");
            }
            if needs_auth_url && !has_auth_url {
                missing.push("an authorization URL");
            }
            if !missing.is_empty() {
                let message = format!("{what} connector needs {}", missing.join(" and "));
                out.push(if known.is_some() {
                    Diagnostic::error(at, message)
                } else {
                    Diagnostic::warning(at, message)
                });
            }
        }
    }
    for (field, url) in [
        ("authorizationUrl", &oauth.authorization_url),
        ("tokenUrl", &oauth.token_url),
        ("refreshUrl", &oauth.refresh_url),
        ("discoveryUrl", &oauth.discovery_url),
    ] {
        let Some(url) = url else { continue };
        if let Some(problem) = url_problem(url) {
            let templated = url.contains('{') || url.to_ascii_lowercase().contains("@connectionparameters(");
            let message = format!("{field} '{url}' {problem}");
            out.push(if templated {
                Diagnostic::warning(format!("{at}.{field}"), message)
            } else {
                Diagnostic::error(format!("{at}.{field}"), message)
            });
        }
    }
}

/// Why a URL cannot be used for OAuth endpoints, if it cannot.
fn url_problem(text: &str) -> Option<&'static str> {
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => None,
        Ok(_) => Some("is not an http(s) URL"),
        Err(_) => Some("is not a valid absolute URL"),
    }
}
