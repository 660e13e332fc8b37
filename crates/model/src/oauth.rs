use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An OAuth 2.0 credential: where the user signs in, where tokens come from, what is asked for.
///
/// The client secret is never part of a connector definition: it is supplied to the server
/// separately and kept sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2 {
    /// The connection parameter that stands for the sign-in (Power Platform names it `token`).
    #[serde(default = "token_parameter")]
    pub parameter: String,
    /// The label of the sign-in button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub identity_provider: IdentityProvider,
    #[serde(default)]
    pub grant: GrantType,
    /// As written in the definition; often a placeholder that the operator replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Where refresh requests go; the token URL when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_url: Option<String>,
    /// OpenID Connect discovery document (`…/.well-known/openid-configuration`): where the
    /// endpoints come from when the URLs above are absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `Global`, `GlobalPerConnector`, `Direct`: kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_mode: Option<String>,
    /// Microsoft Entra ID settings (`aad`, `aadcertificate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra: Option<EntraId>,
    /// Template-driven flows (`oauth2generic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<OAuthTemplates>,
    /// Every custom parameter as written, including the ones above and unrecognised ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_parameters: BTreeMap<String, String>,
}

fn token_parameter() -> String {
    "token".to_owned()
}

impl OAuth2 {
    /// A sign-in at `provider` with nothing else set yet.
    pub fn new(identity_provider: IdentityProvider) -> Self {
        OAuth2 {
            parameter: token_parameter(),
            label: None,
            identity_provider,
            grant: GrantType::default(),
            client_id: None,
            authorization_url: None,
            token_url: None,
            refresh_url: None,
            discovery_url: None,
            scopes: Vec::new(),
            redirect_mode: None,
            entra: None,
            templates: None,
            custom_parameters: BTreeMap::new(),
        }
    }
}

/// The identity provider as written in the definition (`oauth2`, `aad`, `github`, …).
/// Unknown names are kept as they are, never rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdentityProvider(pub String);

impl IdentityProvider {
    pub fn new(name: impl Into<String>) -> Self {
        IdentityProvider(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdentityProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GrantType {
    /// The user signs in in a browser (RFC 6749 §4.1), with PKCE.
    #[default]
    AuthorizationCode,
    /// The connection authenticates as the application itself (RFC 6749 §4.4).
    ClientCredentials,
    /// Swagger's `implicit` flow; kept for fidelity, signed in as authorization code.
    Implicit,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorizationCode",
            GrantType::ClientCredentials => "clientCredentials",
            GrantType::Implicit => "implicit",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntraId {
    /// `common`, `organizations`, a tenant id or domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_uri: Option<String>,
    /// `https://login.microsoftonline.com` (or the older `https://login.windows.net`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_uri: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_behalf_of: bool,
}

/// URL, query-string and body templates with `{Placeholder}`s, for providers that need a
/// hand-shaped exchange. Placeholders are matched case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthTemplates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_body: Option<String>,
    /// Between scopes in `{Scopes}`; a space when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_delimiter: Option<String>,
}
