//! The Security tab: the authentication of a connector's connections, as a form. Saving builds
//! the model's `ParameterSet` and `Credential` from the form, and the connector goes through the
//! API's own replace (and so the model's validation); the model's findings come back with paths
//! such as `definition.connection.credential.tokenUrl`, which [`field_of`] maps to form fields.

use portico_app::connectors::{ClientSecret, OAuthClientChange};
use portico_model::{
    ApiKey, ApiKeyLocation, ConnectionParameter, ConnectionSpec, Connector, Credential, IdentityProvider,
    IdentityProviderCatalog, OAuth2, ParameterSet, ParameterType, UiText,
};
use portico_secrets::SecretString;
use portico_store::ConnectorRecord;

use super::Fields;

/// The authentication types a connector author chooses from, as Power Automate names them.
pub const AUTH_TYPES: [(&str, &str); 4] =
    [("none", "No authentication"), ("basic", "Basic authentication"), ("apiKey", "API Key"), ("oauth2", "OAuth 2.0")];

const DEFAULT_USERNAME: &str = "username";
const DEFAULT_PASSWORD: &str = "password";
const DEFAULT_API_KEY: &str = "api_key";

/// The Security tab's fields. The client secret is write-only: it is read from a post, never
/// filled in from the record.
#[derive(Clone, Default)]
pub struct SecurityForm {
    pub auth: String,
    pub basic_username_label: String,
    pub basic_password_label: String,
    pub apikey_label: String,
    pub apikey_name: String,
    pub apikey_in: String,
    pub oauth_provider: String,
    pub oauth_client_id: String,
    pub oauth_client_secret: String,
    pub oauth_authorization_url: String,
    pub oauth_token_url: String,
    pub oauth_refresh_url: String,
    pub oauth_scopes: String,
}

impl SecurityForm {
    /// The form as the connector is now; `None` for a connector with a choice of parameter
    /// sets, which this tab does not edit.
    pub fn of(record: &ConnectorRecord) -> Option<SecurityForm> {
        let ConnectionSpec::Single(set) = &record.connector.connection else { return None };
        let label = |name: &str, fallback: &str| {
            set.parameter(name)
                .map(|p| p.ui.label.clone())
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| fallback.to_owned())
        };
        let mut form = SecurityForm {
            auth: "none".to_owned(),
            basic_username_label: "User name".to_owned(),
            basic_password_label: "Password".to_owned(),
            apikey_label: "API key".to_owned(),
            apikey_name: "X-Api-Key".to_owned(),
            apikey_in: "header".to_owned(),
            oauth_provider: "oauth2".to_owned(),
            oauth_client_id: record.oauth_client_id.clone().unwrap_or_default(),
            ..SecurityForm::default()
        };
        match &set.credential {
            Credential::None => {}
            Credential::Basic { username, password } => {
                form.auth = "basic".to_owned();
                form.basic_username_label = label(username, "User name");
                form.basic_password_label = label(password, "Password");
            }
            Credential::ApiKey { keys } => {
                form.auth = "apiKey".to_owned();
                if let Some(key) = keys.first() {
                    form.apikey_label = label(&key.parameter, "API key");
                    form.apikey_name = key.name.clone();
                    form.apikey_in = key.location.as_str().to_owned();
                }
            }
            Credential::OAuth2(oauth) => {
                form.auth = "oauth2".to_owned();
                form.oauth_provider = oauth.identity_provider.to_string();
                form.oauth_authorization_url = oauth.authorization_url.clone().unwrap_or_default();
                form.oauth_token_url = oauth.token_url.clone().unwrap_or_default();
                form.oauth_refresh_url = oauth.refresh_url.clone().unwrap_or_default();
                form.oauth_scopes = oauth.scopes.join(" ");
            }
        }
        Some(form)
    }

    pub fn from_fields(fields: &Fields) -> SecurityForm {
        let get = |name: &str| fields.trimmed(name).to_owned();
        SecurityForm {
            auth: get("auth"),
            basic_username_label: get("basic_username_label"),
            basic_password_label: get("basic_password_label"),
            apikey_label: get("apikey_label"),
            apikey_name: get("apikey_name"),
            apikey_in: get("apikey_in"),
            oauth_provider: get("oauth_provider"),
            oauth_client_id: get("oauth_client_id"),
            // A secret is taken as typed: spaces may be part of it.
            oauth_client_secret: fields.text("oauth_client_secret").to_owned(),
            oauth_authorization_url: get("oauth_authorization_url"),
            oauth_token_url: get("oauth_token_url"),
            oauth_refresh_url: get("oauth_refresh_url"),
            oauth_scopes: get("oauth_scopes"),
        }
    }

    /// The connector with this form's authentication: a single parameter set whose credential
    /// parameters are the form's, and whose other parameters (a host, a region) are kept.
    pub fn apply(&self, current: &Connector) -> Result<Connector, (&'static str, String)> {
        let ConnectionSpec::Single(old) = &current.connection else {
            return Err(("auth", "this connector has a choice of parameter sets; edit its definition".to_owned()));
        };
        let owned = credential_parameter_names(old);
        // Inputs of an OAuth sign-in (`token:TenantId`) go with it.
        let signs_in = self.auth == "oauth2";
        let mut parameters: Vec<ConnectionParameter> = old
            .parameters
            .iter()
            .filter(|p| !owned.iter().any(|o| o.eq_ignore_ascii_case(&p.name)))
            .filter(|p| signs_in || p.oauth_sub_parameter().is_none())
            .cloned()
            .collect();
        let credential = match self.auth.as_str() {
            "none" => Credential::None,
            "basic" => {
                let (username, password) = match &old.credential {
                    Credential::Basic { username, password } => (username.clone(), password.clone()),
                    _ => (DEFAULT_USERNAME.to_owned(), DEFAULT_PASSWORD.to_owned()),
                };
                upsert(&mut parameters, old, &username, ParameterType::String, &self.basic_username_label);
                upsert(&mut parameters, old, &password, ParameterType::SecureString, &self.basic_password_label);
                Credential::Basic { username, password }
            }
            "apiKey" => {
                let location = ApiKeyLocation::parse(&self.apikey_in)
                    .filter(|l| *l != ApiKeyLocation::Cookie)
                    .ok_or(("apikey_in", "choose Header or Query".to_owned()))?;
                let (parameter, prefix, rest) = match &old.credential {
                    Credential::ApiKey { keys } if !keys.is_empty() => {
                        (keys[0].parameter.clone(), keys[0].prefix.clone(), keys[1..].to_vec())
                    }
                    _ => (DEFAULT_API_KEY.to_owned(), None, Vec::new()),
                };
                upsert(&mut parameters, old, &parameter, ParameterType::SecureString, &self.apikey_label);
                // Further keys of an imported connector stay as they were, with their parameters.
                for key in &rest {
                    if let Some(p) = old.parameter(&key.parameter) {
                        parameters.push(p.clone());
                    }
                }
                let mut keys = vec![ApiKey { parameter, name: self.apikey_name.clone(), location, prefix }];
                keys.extend(rest);
                Credential::ApiKey { keys }
            }
            "oauth2" => {
                let mut oauth = match &old.credential {
                    Credential::OAuth2(oauth) => (**oauth).clone(),
                    _ => OAuth2::new(IdentityProvider::new(&self.oauth_provider)),
                };
                if !oauth.identity_provider.as_str().eq_ignore_ascii_case(&self.oauth_provider) {
                    // Another provider: what was specific to the previous one does not carry over.
                    oauth = OAuth2 {
                        parameter: oauth.parameter,
                        label: oauth.label,
                        ..OAuth2::new(IdentityProvider::new(&self.oauth_provider))
                    };
                }
                let optional = |text: &str| (!text.is_empty()).then(|| text.to_owned());
                oauth.authorization_url = optional(&self.oauth_authorization_url);
                oauth.token_url = optional(&self.oauth_token_url);
                oauth.refresh_url = optional(&self.oauth_refresh_url);
                oauth.scopes = split_scopes(&self.oauth_scopes);
                Credential::OAuth2(Box::new(oauth))
            }
            _ => return Err(("auth", "choose an authentication type".to_owned())),
        };
        let mut connector = current.clone();
        connector.connection =
            ConnectionSpec::Single(ParameterSet { name: old.name.clone(), ui: old.ui.clone(), parameters, credential });
        Ok(connector)
    }

    /// What happens to the connector's OAuth client: a blank secret field keeps the stored
    /// secret, also when the client id is corrected.
    pub fn oauth_client(&self, record: &ConnectorRecord) -> OAuthClientChange {
        let had_client = record.oauth_client_id.is_some();
        if self.auth != "oauth2" || self.oauth_client_id.is_empty() {
            return if had_client { OAuthClientChange::Remove } else { OAuthClientChange::Keep };
        }
        let client_id = self.oauth_client_id.clone();
        if !self.oauth_client_secret.is_empty() {
            let secret = ClientSecret::Given(SecretString::from(self.oauth_client_secret.as_str()));
            return OAuthClientChange::Set { client_id, secret };
        }
        if record.oauth_client_id.as_deref() == Some(self.oauth_client_id.as_str()) {
            return OAuthClientChange::Keep;
        }
        let secret = if record.oauth_client_secret.is_some() { ClientSecret::Unchanged } else { ClientSecret::None };
        OAuthClientChange::Set { client_id, secret }
    }

    /// Which form field an API finding belongs to; `None` for the list above the form.
    pub fn field_of(&self, at: &str, connector: &Connector) -> Option<&'static str> {
        let at = at.strip_prefix("definition.").unwrap_or(at);
        match at {
            "oauthClient" | "oauthClient.clientId" => return Some("oauth_client_id"),
            "oauthClient.clientSecret" => return Some("oauth_client_secret"),
            _ => {}
        }
        let rest = at.strip_prefix("connection.")?;
        if let Some(field) = rest.strip_prefix("credential") {
            return match (self.auth.as_str(), field) {
                (_, ".authorizationUrl") => Some("oauth_authorization_url"),
                (_, ".tokenUrl") => Some("oauth_token_url"),
                (_, ".refreshUrl") => Some("oauth_refresh_url"),
                (_, ".identityProvider") | ("oauth2", "") => Some("oauth_provider"),
                ("apiKey", "") => Some("apikey_name"),
                _ => None,
            };
        }
        let parameter = rest.strip_prefix("parameters.")?;
        let parameter = parameter.strip_suffix(".label").unwrap_or(parameter);
        let ConnectionSpec::Single(set) = &connector.connection else { return None };
        let is = |name: &str| name.eq_ignore_ascii_case(parameter);
        match &set.credential {
            Credential::Basic { username, .. } if is(username) => Some("basic_username_label"),
            Credential::Basic { password, .. } if is(password) => Some("basic_password_label"),
            Credential::ApiKey { keys } if keys.first().is_some_and(|k| is(&k.parameter)) => Some("apikey_label"),
            _ => None,
        }
    }
}

/// The parameters a credential owns: replaced when the authentication type changes.
fn credential_parameter_names(set: &ParameterSet) -> Vec<String> {
    match &set.credential {
        Credential::Basic { username, password } => vec![username.clone(), password.clone()],
        Credential::ApiKey { keys } => keys.iter().map(|k| k.parameter.clone()).collect(),
        Credential::None | Credential::OAuth2(_) => Vec::new(),
    }
}

/// Puts the credential parameter `name` with `label` in `parameters`, keeping what the
/// previous set said of it beyond type and label (description, tooltip).
fn upsert(parameters: &mut Vec<ConnectionParameter>, old: &ParameterSet, name: &str, kind: ParameterType, label: &str) {
    parameters.retain(|p| !p.name.eq_ignore_ascii_case(name));
    let mut parameter = old.parameter(name).cloned().unwrap_or_else(|| ConnectionParameter::new(name, kind, ""));
    parameter.kind = kind;
    parameter.ui = UiText { label: label.to_owned(), ..parameter.ui };
    parameter.required = true;
    parameter.hidden = false;
    parameters.push(parameter);
}

/// Scopes as typed: separated by spaces or commas.
fn split_scopes(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The identity providers to offer: Generic OAuth 2 first, then the catalog's others by name.
pub fn providers(catalog: &IdentityProviderCatalog, current: &str) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> =
        catalog.entries().iter().map(|e| (e.id.clone(), e.display_name.clone())).collect();
    entries.sort_by(|a, b| {
        let rank = |id: &str| match id {
            "oauth2" => 0,
            "aad" => 1,
            "github" => 2,
            "google" => 3,
            "facebook" => 4,
            _ => 5,
        };
        rank(&a.0).cmp(&rank(&b.0)).then_with(|| a.1.to_lowercase().cmp(&b.1.to_lowercase()))
    });
    // A provider written in an imported file under an alias or unknown name stays selectable.
    let known = catalog.get(current).map(|e| e.id.clone());
    match known {
        Some(id) if !id.eq(current) => {
            if let Some(entry) = entries.iter_mut().find(|(i, _)| *i == id) {
                entry.0 = current.to_owned();
            }
        }
        None if !current.is_empty() => entries.push((current.to_owned(), format!("{current} (not in the catalog)"))),
        _ => {}
    }
    entries
}

/// Words for a connector's authentication: `API key (header X-Api-Key)`, `OAuth 2.0 (GitHub)`.
pub fn describe_auth(connector: &Connector, catalog: &IdentityProviderCatalog) -> String {
    match &connector.connection {
        ConnectionSpec::Choice { sets, .. } => format!("A choice of {} ways to connect", sets.len()),
        ConnectionSpec::Single(set) => describe_set(set, catalog),
    }
}

pub fn describe_set(set: &ParameterSet, catalog: &IdentityProviderCatalog) -> String {
    match &set.credential {
        Credential::None if set.parameters.is_empty() => "No authentication".to_owned(),
        Credential::None => "Parameters applied by policies".to_owned(),
        Credential::Basic { .. } => "Basic authentication".to_owned(),
        Credential::ApiKey { keys } => match keys.first() {
            Some(key) => format!("API key ({} {})", key.location.as_str(), key.name),
            None => "API key".to_owned(),
        },
        Credential::OAuth2(oauth) => {
            let provider = oauth.identity_provider.as_str();
            let name = catalog.get(provider).map(|e| e.display_name.clone()).unwrap_or_else(|| provider.to_owned());
            format!("OAuth 2.0 ({name})")
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn connector(credential: Credential, parameters: Vec<ConnectionParameter>) -> Connector {
        serde_json::from_value(json!({
            "metadata": {"name": "x", "displayName": "X"},
            "backend": {"host": "api.example.com"},
            "connection": {"mode": "single", "parameters": parameters, "credential": credential},
        }))
        .unwrap()
    }

    fn form(auth: &str) -> SecurityForm {
        SecurityForm {
            auth: auth.to_owned(),
            basic_username_label: "Login".into(),
            basic_password_label: "Secret word".into(),
            apikey_label: "Key".into(),
            apikey_name: "X-Key".into(),
            apikey_in: "query".into(),
            oauth_provider: "github".into(),
            oauth_scopes: "repo, read:user  gist".into(),
            ..SecurityForm::default()
        }
    }

    fn single(connector: &Connector) -> &ParameterSet {
        match &connector.connection {
            ConnectionSpec::Single(set) => set,
            ConnectionSpec::Choice { .. } => panic!("a single set"),
        }
    }

    #[test]
    fn basic_makes_two_labelled_parameters() {
        let built = form("basic").apply(&connector(Credential::None, vec![])).unwrap();
        let set = single(&built);
        assert_eq!(set.credential, Credential::Basic { username: "username".into(), password: "password".into() });
        assert_eq!(set.parameter("username").unwrap().ui.label, "Login");
        assert_eq!(set.parameter("password").unwrap().kind, ParameterType::SecureString);
        assert!(set.parameters.iter().all(|p| p.required));
    }

    #[test]
    fn switching_type_replaces_the_credential_parameters_and_keeps_the_others() {
        let host = ConnectionParameter::new("host", ParameterType::String, "Host");
        let basic = form("basic").apply(&connector(Credential::None, vec![host])).unwrap();
        let api_key = form("apiKey").apply(&basic).unwrap();
        let set = single(&api_key);
        let names: Vec<&str> = set.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["host", "api_key"]);
        let Credential::ApiKey { keys } = &set.credential else { panic!("an API key") };
        assert_eq!((keys[0].name.as_str(), keys[0].location), ("X-Key", ApiKeyLocation::Query));
    }

    #[test]
    fn oauth_takes_the_provider_urls_and_scopes() {
        let mut f = form("oauth2");
        f.oauth_token_url = "https://login.example/token".into();
        let built = f.apply(&connector(Credential::None, vec![])).unwrap();
        let Credential::OAuth2(oauth) = &single(&built).credential else { panic!("OAuth") };
        assert_eq!(oauth.identity_provider.as_str(), "github");
        assert_eq!(oauth.token_url.as_deref(), Some("https://login.example/token"));
        assert_eq!(oauth.authorization_url, None);
        assert_eq!(oauth.scopes, ["repo", "read:user", "gist"]);
    }

    #[test]
    fn findings_land_on_their_fields() {
        let f = form("apiKey");
        let built = f.apply(&connector(Credential::None, vec![])).unwrap();
        assert_eq!(f.field_of("definition.connection.parameters.api_key.label", &built), Some("apikey_label"));
        assert_eq!(f.field_of("definition.connection.credential", &built), Some("apikey_name"));
        assert_eq!(f.field_of("definition.connection.credential.tokenUrl", &built), Some("oauth_token_url"));
        assert_eq!(f.field_of("oauthClient.clientId", &built), Some("oauth_client_id"));
        assert_eq!(f.field_of("definition.backend.host", &built), None);
    }

    #[test]
    fn a_blank_secret_keeps_the_stored_one() {
        let record = |id: Option<&str>, secret: bool| ConnectorRecord {
            id: "c".into(),
            tenant_id: "t".into(),
            connector: connector(Credential::None, vec![]),
            warnings: vec![],
            oauth_client_id: id.map(str::to_owned),
            oauth_client_secret: secret.then(|| portico_store::SealedBytes(vec![1])),
            created_by: None,
            updated_by: None,
            created_at: 0,
            updated_at: 0,
        };
        let mut f = form("oauth2");
        f.oauth_client_id = "app".into();
        assert!(matches!(f.oauth_client(&record(Some("app"), true)), OAuthClientChange::Keep));
        assert!(matches!(
            f.oauth_client(&record(Some("old"), true)),
            OAuthClientChange::Set { client_id, secret: ClientSecret::Unchanged } if client_id == "app"
        ));
        assert!(matches!(
            f.oauth_client(&record(Some("old"), false)),
            OAuthClientChange::Set { secret: ClientSecret::None, .. }
        ));
        f.oauth_client_secret = "new".into();
        assert!(matches!(
            f.oauth_client(&record(Some("app"), true)),
            OAuthClientChange::Set { secret: ClientSecret::Given(s), .. } if s.expose() == "new"
        ));
        assert!(matches!(form("none").oauth_client(&record(Some("app"), true)), OAuthClientChange::Remove));
        assert!(matches!(form("none").oauth_client(&record(None, false)), OAuthClientChange::Keep));
    }
}
