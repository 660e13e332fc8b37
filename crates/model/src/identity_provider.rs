use serde::{Deserialize, Serialize};

/// The compiled-in catalog: endpoints of well-known identity providers, as data.
const BUILT_IN: &str = include_str!("../identity-providers.json");

/// One identity provider: its names and endpoints. A generic entry has none of its own: every
/// URL comes from the connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderEntry {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub generic: bool,
    /// May hold `{tenant}`, filled from the connector's settings.
    #[serde(default)]
    pub authorization_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub revocation_url: Option<String>,
    /// OpenID Connect issuer: endpoints come from its discovery document.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Between scopes in the authorization request; a space when absent.
    #[serde(default)]
    pub scope_separator: Option<String>,
    /// Scopes always asked for (Entra ID's `offline_access`, so that a refresh token is issued).
    #[serde(default)]
    pub default_scopes: Vec<String>,
    /// Extra query parameters of the authorization request (Google's `access_type=offline`).
    #[serde(default)]
    pub authorize_params: std::collections::BTreeMap<String, String>,
    /// Extra form parameters of token requests (code exchange and refresh).
    #[serde(default)]
    pub token_params: std::collections::BTreeMap<String, String>,
    /// How the client authenticates at the token endpoint; `client_secret_basic` when absent.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// PKCE (S256) in the authorization-code flow; on when absent.
    #[serde(default)]
    pub pkce: Option<bool>,
    /// Where the access token sits in the token response, tried in order (dotted paths);
    /// `access_token` when empty.
    #[serde(default)]
    pub access_token_paths: Vec<String>,
    /// A token-response field that becomes the connection's backend URL (Salesforce's
    /// `instance_url`).
    #[serde(default)]
    pub instance_url_field: Option<String>,
    /// Backend statuses that mean "the access token expired"; 401 when empty.
    #[serde(default)]
    pub expired_statuses: Vec<u16>,
    /// Tokens are renewed by exchanging the current one for a long-lived one (Facebook) rather
    /// than with a refresh token.
    #[serde(default)]
    pub long_lived_exchange: bool,
}

/// Client authentication at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded client id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the request body.
    ClientSecretPost,
}

impl ProviderEntry {
    fn answers_to(&self, name: &str) -> bool {
        self.id.eq_ignore_ascii_case(name) || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// Identity providers by name. Looked up case-insensitively by id or alias; a name not in the
/// catalog is not an error, it only means the connector must carry its own URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProviderCatalog {
    entries: Vec<ProviderEntry>,
}

impl IdentityProviderCatalog {
    pub fn built_in() -> Self {
        let entries = serde_json::from_str(BUILT_IN).expect("the built-in catalog is valid JSON");
        IdentityProviderCatalog { entries }
    }

    /// Adds entries, replacing any built-in entry of the same id.
    pub fn extend(&mut self, entries: impl IntoIterator<Item = ProviderEntry>) {
        for entry in entries {
            self.entries.retain(|e| !e.id.eq_ignore_ascii_case(&entry.id));
            self.entries.push(entry);
        }
    }

    pub fn get(&self, name: &str) -> Option<&ProviderEntry> {
        self.entries.iter().find(|e| e.answers_to(name))
    }

    pub fn entries(&self) -> &[ProviderEntry] {
        &self.entries
    }
}

impl Default for IdentityProviderCatalog {
    fn default() -> Self {
        Self::built_in()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_catalog_knows_the_common_providers() {
        let catalog = IdentityProviderCatalog::built_in();
        for name in ["oauth2", "oauth2generic", "aad", "AADCertificate", "GitHub", "google", "facebook", "DocuSign"] {
            assert!(catalog.get(name).is_some(), "{name} missing");
        }
        assert!(catalog.get("oauth2generic").unwrap().generic);
        let github = catalog.get("github").unwrap();
        assert!(!github.generic);
        assert!(github.token_url.as_deref().unwrap().starts_with("https://github.com/"));
        assert!(catalog.get("no-such-provider").is_none());
    }

    #[test]
    fn extend_overrides_by_id() {
        let mut catalog = IdentityProviderCatalog::built_in();
        let mut github = catalog.get("github").unwrap().clone();
        github.token_url = Some("https://ghe.example.com/token".into());
        catalog.extend([github]);
        assert_eq!(catalog.get("github").unwrap().token_url.as_deref(), Some("https://ghe.example.com/token"));
        assert_eq!(catalog.entries().iter().filter(|e| e.id == "github").count(), 1);
    }
}
