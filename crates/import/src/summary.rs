//! A connector's authentication in brief, as `portico connector validate --json` reports it.

use portico_model::{ConnectionSpec, Credential, ParameterSet};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSummary {
    /// `none`, `basic`, `apiKey`, `oauth2`, `multiple` or `other`.
    pub kind: &'static str,
    /// For `apiKey`: where the (first) key goes.
    #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
    pub location: Option<&'static str>,
    /// For `apiKey`: the header or query parameter name of the (first) key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For `oauth2`: the identity provider as written in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<String>,
    /// For `multiple`: each set's name and authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sets: Option<Vec<SetSummary>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetSummary {
    pub name: String,
    pub auth: AuthSummary,
}

impl AuthSummary {
    pub fn of(spec: &ConnectionSpec) -> AuthSummary {
        match spec {
            ConnectionSpec::Single(set) => Self::of_set(set),
            ConnectionSpec::Choice { sets, .. } => AuthSummary {
                kind: "multiple",
                location: None,
                name: None,
                identity_provider: None,
                sets: Some(sets.iter().map(|s| SetSummary { name: s.name.clone(), auth: Self::of_set(s) }).collect()),
            },
        }
    }

    fn of_set(set: &ParameterSet) -> AuthSummary {
        let mut summary =
            AuthSummary { kind: set.auth_kind(), location: None, name: None, identity_provider: None, sets: None };
        match &set.credential {
            Credential::ApiKey { keys } => {
                if let Some(key) = keys.first() {
                    summary.location = Some(key.location.as_str());
                    summary.name = Some(key.name.clone());
                }
            }
            Credential::OAuth2(oauth) => summary.identity_provider = Some(oauth.identity_provider.to_string()),
            Credential::None | Credential::Basic { .. } => {}
        }
        summary
    }

    /// One line for people: `apiKey (header X-Api-Key)`, `oauth2 (aad)`, `multiple: a=basic | b=oauth2 (aad)`.
    pub fn describe(&self) -> String {
        match (self.kind, &self.sets) {
            (_, Some(sets)) => {
                let sets: Vec<String> = sets.iter().map(|s| format!("{}={}", s.name, s.auth.describe())).collect();
                format!("multiple: {}", sets.join(" | "))
            }
            ("apiKey", _) => {
                format!("apiKey ({} {})", self.location.unwrap_or("?"), self.name.as_deref().unwrap_or("?"))
            }
            ("oauth2", _) => format!("oauth2 ({})", self.identity_provider.as_deref().unwrap_or("?")),
            (kind, _) => kind.to_owned(),
        }
    }
}
