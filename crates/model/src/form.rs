//! The connection form: what a user sees when creating a connection, and where each value goes.

use serde::Serialize;

use crate::{
    AllowedValue, ApiKeyLocation, ConnectionSpec, Connector, Credential, GrantType, ParameterSet, PolicyKind, UiText,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionForm {
    /// Present when the user first chooses one of several sets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choice: Option<UiText>,
    pub sets: Vec<FormSet>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FormSet {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui: Option<UiText>,
    /// `none`, `basic`, `apiKey`, `oauth2` or `other`.
    pub auth: &'static str,
    pub fields: Vec<FormField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSignIn>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FormField {
    pub name: String,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tooltip: Option<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Sealed at rest, never shown again.
    pub secret: bool,
    /// Typed into a masked input.
    pub masked: bool,
    pub required: bool,
    pub hidden: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_values: Vec<AllowedValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Where the value is sent; empty when it is only stored.
    pub sent_to: Vec<Destination>,
}

/// Where a connection parameter's value ends up on a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Destination {
    /// The user name of `Authorization: Basic`.
    BasicUsername,
    /// The password of `Authorization: Basic`.
    BasicPassword,
    Header {
        name: String,
    },
    Query {
        name: String,
    },
    Cookie {
        name: String,
    },
    /// Part of the backend's URL (a host template).
    Host,
    /// An input of the OAuth 2.0 sign-in.
    OAuthSignIn,
    /// Used by a policy Portico keeps as written.
    Policy {
        template_id: String,
    },
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::BasicUsername => f.write_str("Authorization: Basic (user name)"),
            Destination::BasicPassword => f.write_str("Authorization: Basic (password)"),
            Destination::Header { name } => write!(f, "header {name}"),
            Destination::Query { name } => write!(f, "query parameter {name}"),
            Destination::Cookie { name } => write!(f, "cookie {name}"),
            Destination::Host => f.write_str("the backend URL"),
            Destination::OAuthSignIn => f.write_str("the OAuth 2.0 sign-in"),
            Destination::Policy { template_id } => write!(f, "policy {template_id}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthSignIn {
    pub label: String,
    pub identity_provider: String,
    pub grant: GrantType,
    pub scopes: Vec<String>,
}

impl Connector {
    /// The form a user fills in to create a connection.
    pub fn connection_form(&self) -> ConnectionForm {
        let choice = match &self.connection {
            ConnectionSpec::Single(_) => None,
            ConnectionSpec::Choice { ui, .. } => Some(ui.clone().unwrap_or_default()),
        };
        let sets = self.connection.sets().iter().map(|set| self.form_set(set)).collect();
        ConnectionForm { choice, sets }
    }

    fn form_set(&self, set: &ParameterSet) -> FormSet {
        let fields = set
            .parameters
            .iter()
            .map(|p| FormField {
                name: p.name.clone(),
                label: if p.ui.label.is_empty() { p.name.clone() } else { p.ui.label.clone() },
                description: p.ui.description.clone(),
                tooltip: p.ui.tooltip.clone(),
                kind: p.kind.as_str(),
                secret: set.is_secret(p),
                masked: set.is_secret(p) && !p.clear_text,
                required: p.required,
                hidden: p.hidden,
                allowed_values: p.allowed_values.clone(),
                default: p.default.clone(),
                sent_to: self.destinations(set, &p.name),
            })
            .collect();
        let oauth = match &set.credential {
            Credential::OAuth2(o) => Some(OAuthSignIn {
                label: o.label.clone().unwrap_or_else(|| "Sign in".to_owned()),
                identity_provider: o.identity_provider.to_string(),
                grant: o.grant,
                scopes: o.scopes.clone(),
            }),
            _ => None,
        };
        FormSet { name: set.name.clone(), ui: set.ui.clone(), auth: set.auth_kind(), fields, oauth }
    }

    /// Every place the named parameter's value is sent.
    pub fn destinations(&self, set: &ParameterSet, name: &str) -> Vec<Destination> {
        let is = |other: &str| other.eq_ignore_ascii_case(name);
        let mut out = Vec::new();
        match &set.credential {
            Credential::Basic { username, .. } if is(username) => out.push(Destination::BasicUsername),
            Credential::Basic { password, .. } if is(password) => out.push(Destination::BasicPassword),
            Credential::ApiKey { keys } => {
                for key in keys.iter().filter(|k| is(&k.parameter)) {
                    let name = key.name.clone();
                    out.push(match key.location {
                        ApiKeyLocation::Header => Destination::Header { name },
                        ApiKeyLocation::Query => Destination::Query { name },
                        ApiKeyLocation::Cookie => Destination::Cookie { name },
                    });
                }
            }
            Credential::OAuth2(_) if name.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("token:")) => {
                out.push(Destination::OAuthSignIn)
            }
            _ => {}
        }
        let refers = |t: &crate::Template| t.references().iter().any(|r| is(r.name));
        if self.backend.host_template.as_ref().is_some_and(refers) {
            out.push(Destination::Host);
        }
        for policy in &self.policies {
            let destination = match &policy.kind {
                PolicyKind::SetHeader { name, value } if refers(value) => Destination::Header { name: name.clone() },
                PolicyKind::SetQueryParameter { name, value } if refers(value) => {
                    Destination::Query { name: name.clone() }
                }
                PolicyKind::Other { template_id, parameters }
                    if parameters.values().any(|v| v.as_str().is_some_and(|s| refers(&crate::Template::new(s)))) =>
                {
                    Destination::Policy { template_id: template_id.clone() }
                }
                _ => continue,
            };
            if !out.contains(&destination) {
                out.push(destination);
            }
        }
        out
    }
}
