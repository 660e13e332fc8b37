use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One callable operation of the backend's API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub id: String,
    /// Uppercase: `GET`, `POST`, …
    pub method: String,
    /// The path template relative to the base path: `/items/{itemId}`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<OperationParameter>,
    #[serde(default, skip_serializing_if = "Visibility::is_default")]
    pub visibility: Visibility,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    /// `x-ms-trigger`: the operation starts a flow rather than acting.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trigger: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ParameterLocation {
    Path,
    Query,
    Header,
    Body,
    FormData,
    Cookie,
}

impl ParameterLocation {
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterLocation::Path => "path",
            ParameterLocation::Query => "query",
            ParameterLocation::Header => "header",
            ParameterLocation::Body => "body",
            ParameterLocation::FormData => "formData",
            ParameterLocation::Cookie => "cookie",
        }
    }
}

/// `x-ms-visibility`: how prominently a designer shows a parameter or operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Visibility {
    #[default]
    Default,
    Important,
    Advanced,
    Internal,
}

impl Visibility {
    fn is_default(&self) -> bool {
        *self == Visibility::Default
    }

    /// Reads `x-ms-visibility` case-insensitively; unknown or empty values are `Default`.
    pub fn parse(value: &str) -> Visibility {
        match value.trim().to_ascii_lowercase().as_str() {
            "important" => Visibility::Important,
            "advanced" => Visibility::Advanced,
            "internal" => Visibility::Internal,
            _ => Visibility::Default,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationParameter {
    pub name: String,
    #[serde(rename = "in")]
    pub location: ParameterLocation,
    #[serde(default)]
    pub required: bool,
    /// The JSON-schema type (`string`, `integer`, `boolean`, `array`, `object`, `file`, …).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, rename = "enum", skip_serializing_if = "Vec::is_empty")]
    pub enum_values: Vec<Value>,
    #[serde(default, skip_serializing_if = "Visibility::is_default")]
    pub visibility: Visibility,
    /// `x-ms-summary`: the label a designer shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
