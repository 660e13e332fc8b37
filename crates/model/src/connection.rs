use serde::{Deserialize, Serialize};

use crate::OAuth2;

/// How a connection to the connector is made: one set of parameters, or a choice of sets
/// (Power Platform's `connectionParameterSets`) of which the user picks one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum ConnectionSpec {
    Single(ParameterSet),
    Choice {
        /// The label and description of the choice itself ("Authentication type").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ui: Option<UiText>,
        sets: Vec<ParameterSet>,
    },
}

impl ConnectionSpec {
    /// A connector with no parameters and no credential.
    pub fn none() -> Self {
        ConnectionSpec::Single(ParameterSet::default())
    }

    pub fn sets(&self) -> &[ParameterSet] {
        match self {
            ConnectionSpec::Single(set) => std::slice::from_ref(set),
            ConnectionSpec::Choice { sets, .. } => sets,
        }
    }

    pub fn sets_mut(&mut self) -> &mut [ParameterSet] {
        match self {
            ConnectionSpec::Single(set) => std::slice::from_mut(set),
            ConnectionSpec::Choice { sets, .. } => sets,
        }
    }

    /// The set a new connection uses: the named one, or the only one.
    pub fn set(&self, name: Option<&str>) -> Option<&ParameterSet> {
        match (self, name) {
            (ConnectionSpec::Single(set), None) => Some(set),
            (ConnectionSpec::Single(set), Some(n)) => set.name.eq_ignore_ascii_case(n).then_some(set),
            (ConnectionSpec::Choice { sets, .. }, Some(n)) => sets.iter().find(|s| s.name.eq_ignore_ascii_case(n)),
            (ConnectionSpec::Choice { .. }, None) => None,
        }
    }
}

/// Label, description and tooltip: the words a user sees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UiText {
    #[serde(default)]
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tooltip: Option<String>,
}

/// The parameters a user fills in, and how the credential made from them is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSet {
    /// Empty for a single set; the set's identifier in a choice.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<UiText>,
    /// Everything the user (or the platform) supplies: credential fields, `token:X`
    /// sub-parameters of an OAuth sign-in, and extra parameters such as a host or region.
    #[serde(default)]
    pub parameters: Vec<ConnectionParameter>,
    #[serde(default)]
    pub credential: Credential,
}

impl ParameterSet {
    /// Finds a parameter by name; names are matched case-insensitively, as the real files need.
    pub fn parameter(&self, name: &str) -> Option<&ConnectionParameter> {
        self.parameters.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The parameters that carry the credential itself: the API keys and the basic-auth
    /// password. They are sealed whatever type they were declared with.
    pub fn credential_parameters(&self) -> Vec<&str> {
        match &self.credential {
            Credential::Basic { password, .. } => vec![password.as_str()],
            Credential::ApiKey { keys } => keys.iter().map(|k| k.parameter.as_str()).collect(),
            Credential::None | Credential::OAuth2(_) => Vec::new(),
        }
    }

    /// Is the value of this parameter sealed at rest and never shown again?
    pub fn is_secret(&self, parameter: &ConnectionParameter) -> bool {
        parameter.kind == ParameterType::SecureString
            || self.credential_parameters().iter().any(|n| n.eq_ignore_ascii_case(&parameter.name))
    }

    /// The kind of authentication, as reported to authors: a set whose parameters are applied
    /// by policies or scripts rather than by a declared credential is `other`.
    pub fn auth_kind(&self) -> &'static str {
        match &self.credential {
            Credential::None if self.parameters.is_empty() => "none",
            Credential::None => "other",
            Credential::Basic { .. } => "basic",
            Credential::ApiKey { .. } => "apiKey",
            Credential::OAuth2(_) => "oauth2",
        }
    }
}

impl ConnectionSpec {
    /// `multiple` for a choice of sets, else the single set's kind.
    pub fn auth_kind(&self) -> &'static str {
        match self {
            ConnectionSpec::Single(set) => set.auth_kind(),
            ConnectionSpec::Choice { .. } => "multiple",
        }
    }
}

/// How the credential reaches the backend on every call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Credential {
    /// No credential of Portico's own; parameters, if any, are placed by policies.
    #[default]
    None,
    /// `Authorization: Basic base64(username:password)`, from the two named parameters.
    Basic { username: String, password: String },
    /// Each key's parameter value, verbatim, in a header or query parameter; all are sent.
    ApiKey { keys: Vec<ApiKey> },
    /// `Authorization: Bearer <access token>` obtained by an OAuth 2.0 sign-in.
    #[serde(rename = "oauth2")]
    OAuth2(Box<OAuth2>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// The connection parameter holding the key.
    pub parameter: String,
    /// The header or query parameter name sent to the backend.
    pub name: String,
    #[serde(rename = "in")]
    pub location: ApiKeyLocation,
    /// Put before the value (`"Bearer "` for an HTTP bearer scheme); Power Platform keys have
    /// none: their value is sent verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ApiKeyLocation {
    Header,
    Query,
    Cookie,
}

impl ApiKeyLocation {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyLocation::Header => "header",
            ApiKeyLocation::Query => "query",
            ApiKeyLocation::Cookie => "cookie",
        }
    }

    /// Case-insensitive; `None` for anything else, which importers report as an error.
    pub fn parse(value: &str) -> Option<ApiKeyLocation> {
        match value.to_ascii_lowercase().as_str() {
            "header" => Some(ApiKeyLocation::Header),
            "query" => Some(ApiKeyLocation::Query),
            "cookie" => Some(ApiKeyLocation::Cookie),
            _ => None,
        }
    }
}

/// A value a user (or the platform) supplies when creating a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionParameter {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ParameterType,
    #[serde(flatten)]
    pub ui: UiText,
    #[serde(default)]
    pub required: bool,
    /// Not shown to the user: filled by the platform or from the default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    /// A secure string shown in clear while typed (typical of basic-auth usernames).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear_text: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_values: Vec<AllowedValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tab_index: Option<i64>,
    /// Where the platform takes the value from (`AzureActiveDirectoryTenant`), if not the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl ConnectionParameter {
    /// A plain, visible, optional string parameter with the given label.
    pub fn new(name: impl Into<String>, kind: ParameterType, label: impl Into<String>) -> Self {
        ConnectionParameter {
            name: name.into(),
            kind,
            ui: UiText { label: label.into(), ..UiText::default() },
            required: false,
            hidden: false,
            clear_text: false,
            allowed_values: Vec::new(),
            default: None,
            tab_index: None,
            source: None,
        }
    }

    /// `token:TenantId` → `TenantId`: a sub-parameter of the OAuth sign-in.
    pub fn oauth_sub_parameter(&self) -> Option<&str> {
        let prefix = self.name.get(..6)?;
        prefix.eq_ignore_ascii_case("token:").then(|| &self.name[6..])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ParameterType {
    String,
    #[serde(rename = "securestring")]
    SecureString,
    Bool,
    Int,
    /// An on-premises data gateway choice.
    GatewaySetting,
}

impl ParameterType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "string",
            ParameterType::SecureString => "securestring",
            ParameterType::Bool => "bool",
            ParameterType::Int => "int",
            ParameterType::GatewaySetting => "gatewaySetting",
        }
    }

    /// Case-insensitive; `None` for a type Portico does not know.
    pub fn parse(value: &str) -> Option<ParameterType> {
        match value.to_ascii_lowercase().as_str() {
            "string" => Some(ParameterType::String),
            "securestring" => Some(ParameterType::SecureString),
            "bool" | "boolean" => Some(ParameterType::Bool),
            "int" | "integer" => Some(ParameterType::Int),
            "gatewaysetting" => Some(ParameterType::GatewaySetting),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedValue {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}
