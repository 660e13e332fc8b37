use serde::{Deserialize, Serialize};

use crate::{ConnectionSpec, Operation, Policy, Template};

/// A published connector: what it is, where its backend lives, what it can do, and how a
/// connection to it authenticates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    pub metadata: Metadata,
    pub backend: Backend,
    #[serde(default)]
    pub operations: Vec<Operation>,
    pub connection: ConnectionSpec,
    /// Request policies beside the host template: headers and query parameters filled from
    /// connection parameters, and any policy Portico keeps but does not interpret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
    /// The operation that checks a connection works (`x-ms-capabilities.testConnection`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_operation: Option<String>,
}

impl Connector {
    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.id == id)
    }

    /// The operation that a call of `method` to `path` (relative to the base path, no query)
    /// is: of those with the method whose path template matches segment by segment (`{name}`
    /// standing for a non-empty part of one segment), the one with the most literal segments.
    pub fn operation_at(&self, method: &str, path: &str) -> Option<&Operation> {
        operation_at(&self.operations, method, path)
    }
}

fn operation_at<'a>(operations: &'a [Operation], method: &str, path: &str) -> Option<&'a Operation> {
    operations
        .iter()
        .filter(|op| op.method.eq_ignore_ascii_case(method))
        .filter_map(|op| template_matches(&op.path, path).map(|literal| (literal, op)))
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, op)| op)
}

/// How many literal segments `template` has if `path` matches it.
fn template_matches(template: &str, path: &str) -> Option<usize> {
    let mut templates = template.trim_matches('/').split('/');
    let mut segments = path.trim_matches('/').split('/');
    let mut literal = 0;
    loop {
        match (templates.next(), segments.next()) {
            (None, None) => return Some(literal),
            (Some(template), Some(segment)) => match (template.find('{'), template.rfind('}')) {
                (Some(open), Some(close)) if open < close => {
                    let (prefix, suffix) = (&template[..open], &template[close + 1..]);
                    let fits = segment.len() > prefix.len() + suffix.len()
                        && segment.starts_with(prefix)
                        && segment.ends_with(suffix);
                    if !fits {
                        return None;
                    }
                }
                _ if template == segment => literal += 1,
                _ => return None,
            },
            _ => return None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// A machine name: lowercase letters, digits and dashes.
    pub name: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_owner: Option<String>,
    /// Free-form, lowercased (`actions`, `triggers`, `gateway`, …); unknown values are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

impl Metadata {
    /// Turns a display name into a machine name: `"Azure AD (Preview)"` → `azure-ad-preview`.
    pub fn slug(display_name: &str) -> String {
        let mut slug = String::with_capacity(display_name.len());
        for c in display_name.chars().flat_map(char::to_lowercase) {
            if c.is_alphanumeric() {
                slug.push(c);
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        while slug.ends_with('-') {
            slug.pop();
        }
        if slug.is_empty() { "connector".to_owned() } else { slug }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    #[default]
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Where calls go: `scheme://host/base_path`, unless a connection parameter fills in the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    #[serde(default)]
    pub scheme: Scheme,
    /// `host[:port]` as declared; may be a placeholder when `host_template` decides it.
    pub host: String,
    /// Starts with `/`; `/` when the definition has none.
    #[serde(default = "root_path")]
    pub base_path: String,
    /// A URL template filled from connection parameters (Power Platform's `dynamichosturl`
    /// policy), e.g. `https://@connectionParameters('subdomain').example.com/api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_template: Option<Template>,
}

fn root_path() -> String {
    "/".to_owned()
}

impl Backend {
    /// The base URL when no template applies: `https://api.example.com/v1`.
    pub fn base_url(&self) -> String {
        let path = self.base_path.trim_end_matches('/');
        format!("{}://{}{}", self.scheme.as_str(), self.host, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_keeps_letters_and_digits_only() {
        assert_eq!(Metadata::slug("Azure AD (Preview)"), "azure-ad-preview");
        assert_eq!(Metadata::slug("  Brønnøysund -- 2 "), "brønnøysund-2");
        assert_eq!(Metadata::slug("!!!"), "connector");
    }

    #[test]
    fn base_url_joins_scheme_host_and_path() {
        let backend = Backend {
            scheme: Scheme::Https,
            host: "api.example.com".into(),
            base_path: "/v1/".into(),
            host_template: None,
        };
        assert_eq!(backend.base_url(), "https://api.example.com/v1");
    }

    #[test]
    fn a_call_is_matched_to_the_most_literal_operation_template() {
        let operation = |id: &str, method: &str, path: &str| -> Operation {
            serde_json::from_value(serde_json::json!({"id": id, "method": method, "path": path})).unwrap()
        };
        let operations = [
            operation("GetItem", "GET", "/items/{itemId}"),
            operation("Search", "GET", "/items/search"),
            operation("GetFile", "GET", "/files/{name}.json"),
            operation("DeleteItem", "DELETE", "/items/{itemId}"),
        ];
        let at = |method: &str, path: &str| operation_at(&operations, method, path).map(|op| op.id.as_str());
        assert_eq!(at("GET", "/items/42"), Some("GetItem"));
        assert_eq!(at("get", "items/42/"), Some("GetItem"));
        assert_eq!(at("GET", "/items/search"), Some("Search"));
        assert_eq!(at("DELETE", "/items/42"), Some("DeleteItem"));
        assert_eq!(at("GET", "/files/report.json"), Some("GetFile"));
        assert_eq!(at("GET", "/files/.json"), None, "a parameter is never empty");
        assert_eq!(at("GET", "/items/42/parts"), None);
        assert_eq!(at("POST", "/items/42"), None);
        assert_eq!(at("GET", "/items"), None);
    }
}
