//! A connector's sign-in, resolved against the catalog once per connection.

use portico_model::{ClientAuth, GrantType, IdentityProviderCatalog, OAuth2, OAuthTemplates};
use portico_secrets::SecretString;

/// The OAuth client registered with the provider.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub id: String,
    /// `None` for a public client.
    pub secret: Option<SecretString>,
}

/// Everything needed to sign in and to get tokens for one connection.
#[derive(Clone)]
pub struct Flow {
    pub provider: String,
    pub grant: GrantType,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    /// Where refresh requests go: the refresh URL when given, else the token URL.
    pub refresh_url: Option<String>,
    pub revocation_url: Option<String>,
    /// OpenID Connect discovery document; fills the endpoints above that are missing.
    pub discovery_url: Option<String>,
    /// The authorization server's issuer, as its discovery document names it (RFC 8414), and
    /// whether it puts it in every authorization response (RFC 9207): what a callback's `iss`
    /// is checked against. Unknown without a discovery document.
    pub issuer: Option<String>,
    pub sends_issuer: bool,
    pub scopes: Vec<String>,
    pub scope_separator: String,
    pub authorize_params: Vec<(String, String)>,
    pub token_params: Vec<(String, String)>,
    pub client_auth: ClientAuth,
    pub pkce: bool,
    pub access_token_paths: Vec<String>,
    pub instance_url_field: Option<String>,
    pub expired_statuses: Vec<u16>,
    pub long_lived_exchange: bool,
    pub client: ClientCredentials,
    pub templates: Option<OAuthTemplates>,
    /// Values for `{Placeholder}`s in templates besides the built-in ones (`token:X` values).
    pub substitutions: Vec<Substitution>,
}

/// A connection's value for a `{Placeholder}`. A secret one fills only the templates of token
/// requests, which go from Portico to the identity provider, never the authorization URL, which
/// is handed to the user's browser (and returned by the API).
#[derive(Clone)]
pub struct Substitution {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

impl Substitution {
    pub fn public(name: impl Into<String>, value: impl Into<String>) -> Substitution {
        Substitution { name: name.into(), value: value.into(), secret: false }
    }

    pub fn secret(name: impl Into<String>, value: impl Into<String>) -> Substitution {
        Substitution { name: name.into(), value: value.into(), secret: true }
    }
}

/// Names the provider and grant only: the substitutions hold the connection's secret values.
impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow").field("provider", &self.provider).field("grant", &self.grant).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("the connector's OAuth 2.0 sign-in has no token URL, and the identity provider '{0}' supplies none")]
    NoTokenUrl(String),
    #[error(
        "the connector's OAuth 2.0 sign-in has no authorization URL, and the identity provider '{0}' supplies none"
    )]
    NoAuthorizationUrl(String),
    #[error("no OAuth 2.0 client is configured for this connector: give its clientId (and clientSecret)")]
    NoClient,
}

/// Resolves `oauth` with the catalog's entry for its provider; `client` is the client to use,
/// `substitutions` the values of the connection's `token:X` parameters.
pub fn resolve(
    oauth: &OAuth2,
    catalog: &IdentityProviderCatalog,
    client: Option<ClientCredentials>,
    substitutions: Vec<Substitution>,
) -> Result<Flow, ResolveError> {
    let provider = oauth.identity_provider.as_str().to_owned();
    let entry = catalog.get(&provider).filter(|e| !e.generic);
    let generic = catalog.get(&provider);
    let tenant = oauth.entra.as_ref().and_then(|e| e.tenant.clone()).filter(|t| !t.trim().is_empty());
    let fill = |url: &str| url.replace("{tenant}", tenant.as_deref().unwrap_or("common"));
    let templates = oauth.templates.clone().filter(|t| t.token_url.is_some() || t.authorization_url.is_some());
    let authorization_url = oauth
        .authorization_url
        .clone()
        .or_else(|| entry.and_then(|e| e.authorization_url.as_deref()).map(fill))
        .or_else(|| templates.as_ref().and_then(|t| t.authorization_url.clone()));
    let token_url = oauth
        .token_url
        .clone()
        .or_else(|| entry.and_then(|e| e.token_url.as_deref()).map(fill))
        .or_else(|| templates.as_ref().and_then(|t| t.token_url.clone()));
    let refresh_url = oauth.refresh_url.clone().or_else(|| token_url.clone());
    let discovery_url = oauth.discovery_url.clone().or_else(|| {
        entry
            .and_then(|e| e.issuer.as_ref())
            .map(|i| format!("{}/.well-known/openid-configuration", i.trim_end_matches('/')))
    });
    if token_url.is_none() && discovery_url.is_none() {
        return Err(ResolveError::NoTokenUrl(provider));
    }
    let needs_browser = oauth.grant != GrantType::ClientCredentials;
    if needs_browser && authorization_url.is_none() && discovery_url.is_none() {
        return Err(ResolveError::NoAuthorizationUrl(provider));
    }
    let client = client.or_else(|| {
        oauth.client_id.clone().filter(|id| !id.trim().is_empty()).map(|id| ClientCredentials { id, secret: None })
    });
    let client = client.ok_or(ResolveError::NoClient)?;
    let mut scopes: Vec<String> = Vec::new();
    let defaults = generic.map(|e| e.default_scopes.clone()).unwrap_or_default();
    for scope in oauth.scopes.iter().flat_map(|s| s.split_whitespace()).map(str::to_owned).chain(defaults) {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let separator = oauth
        .templates
        .as_ref()
        .and_then(|t| t.scope_delimiter.clone())
        .or_else(|| entry.and_then(|e| e.scope_separator.clone()))
        .unwrap_or_else(|| " ".to_owned());
    let client_auth = match custom(oauth, "clientAuthentication").as_deref() {
        Some("client_secret_post") => ClientAuth::ClientSecretPost,
        Some("client_secret_basic") => ClientAuth::ClientSecretBasic,
        _ => entry.and_then(|e| e.client_auth).unwrap_or(ClientAuth::ClientSecretBasic),
    };
    Ok(Flow {
        grant: oauth.grant,
        authorization_url,
        token_url,
        refresh_url,
        revocation_url: custom(oauth, "revocationUrl").or_else(|| entry.and_then(|e| e.revocation_url.clone())),
        discovery_url,
        issuer: None,
        sends_issuer: false,
        scopes,
        scope_separator: separator,
        authorize_params: entry.map(|e| pairs(&e.authorize_params)).unwrap_or_default(),
        token_params: entry.map(|e| pairs(&e.token_params)).unwrap_or_default(),
        client_auth,
        pkce: entry.and_then(|e| e.pkce).unwrap_or(true),
        access_token_paths: entry.map(|e| e.access_token_paths.clone()).unwrap_or_default(),
        instance_url_field: entry.and_then(|e| e.instance_url_field.clone()),
        expired_statuses: expired_statuses(catalog, &provider),
        long_lived_exchange: entry.is_some_and(|e| e.long_lived_exchange),
        client,
        templates,
        substitutions,
        provider,
    })
}

/// The backend statuses that mean "the access token expired" for a provider: its catalog
/// entry's, else 401.
pub fn expired_statuses(catalog: &IdentityProviderCatalog, provider: &str) -> Vec<u16> {
    catalog.get(provider).map(|e| e.expired_statuses.clone()).filter(|s| !s.is_empty()).unwrap_or_else(|| vec![401])
}

fn custom(oauth: &OAuth2, key: &str) -> Option<String> {
    oauth.custom_parameters.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone())
}

fn pairs(map: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl Flow {
    /// The URL the user's browser is sent to (RFC 6749 §4.1.1), with the PKCE challenge when
    /// the provider takes one.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, pkce_challenge: Option<&str>) -> Option<String> {
        if let Some(templates) = &self.templates
            && let Some(base) = &templates.authorization_url
        {
            let query = templates.authorization_query.as_deref().unwrap_or("");
            let builtins = [("ClientId", self.client.id.as_str()), ("RedirectUrl", redirect_uri), ("State", state)];
            let scopes = self.scopes.join(&self.scope_separator);
            // The browser sees this URL: no secret value in it.
            let url = format!(
                "{}{}",
                self.render(base, &builtins, &scopes, Fill::Public),
                self.render(query, &builtins, &scopes, Fill::PublicEncoded)
            );
            return Some(url);
        }
        let mut url = url::Url::parse(self.authorization_url.as_deref()?).ok()?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("response_type", "code");
            query.append_pair("client_id", &self.client.id);
            query.append_pair("redirect_uri", redirect_uri);
            if !self.scopes.is_empty() {
                query.append_pair("scope", &self.scopes.join(&self.scope_separator));
            }
            query.append_pair("state", state);
            if let Some(challenge) = pkce_challenge.filter(|_| self.pkce) {
                query.append_pair("code_challenge", challenge);
                query.append_pair("code_challenge_method", "S256");
            }
            for (name, value) in &self.authorize_params {
                query.append_pair(name, value);
            }
        }
        Some(url.into())
    }

    /// Fills `{Placeholder}`s (case-insensitively): the built-ins given, `{Scopes}`, then the
    /// connection's values (secret ones only where `fill` allows); unknown placeholders become
    /// empty. Values are percent-encoded in query strings and bodies.
    pub(crate) fn render(&self, template: &str, builtins: &[(&str, &str)], scopes: &str, fill: Fill) -> String {
        let encode = matches!(fill, Fill::PublicEncoded | Fill::AllEncoded);
        let secrets = matches!(fill, Fill::All | Fill::AllEncoded);
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else { break };
            out.push_str(&rest[..open]);
            let name = &rest[open + 1..open + close];
            let value = builtins
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
                .or_else(|| name.eq_ignore_ascii_case("Scopes").then_some(scopes))
                .or_else(|| {
                    let mut values = self.substitutions.iter().filter(|s| secrets || !s.secret);
                    values.find(|s| s.name.eq_ignore_ascii_case(name)).map(|s| s.value.as_str())
                })
                .unwrap_or("");
            if encode {
                out.extend(percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC));
            } else {
                out.push_str(value);
            }
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// What a template may be filled with, and whether values are percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// For what the browser sees: built-ins and the connection's public values.
    Public,
    PublicEncoded,
    /// For token requests: the connection's secret values too.
    All,
    AllEncoded,
}

#[cfg(test)]
mod tests {
    use portico_model::{EntraId, IdentityProvider};

    use super::*;

    fn client() -> Option<ClientCredentials> {
        Some(ClientCredentials { id: "my app".into(), secret: Some("s".into()) })
    }

    #[test]
    fn generic_uses_the_connector_urls() {
        let mut oauth = OAuth2::new(IdentityProvider::new("oauth2"));
        oauth.authorization_url = Some("https://id.example/authorize?tenant=x".into());
        oauth.token_url = Some("https://id.example/token".into());
        oauth.scopes = vec!["read write".into(), "read".into()];
        let flow = resolve(&oauth, &IdentityProviderCatalog::built_in(), client(), vec![]).unwrap();
        assert_eq!(flow.refresh_url.as_deref(), Some("https://id.example/token"));
        assert_eq!(flow.scopes, vec!["read", "write"]);
        let url = flow.authorize_url("https://portico.example/oauth/callback", "st&te", Some("chal")).unwrap();
        assert_eq!(
            url,
            "https://id.example/authorize?tenant=x&response_type=code&client_id=my+app&redirect_uri=https%3A%2F%2Fportico.example%2Foauth%2Fcallback&scope=read+write&state=st%26te&code_challenge=chal&code_challenge_method=S256"
        );
    }

    #[test]
    fn catalog_supplies_urls_and_quirks() {
        let catalog = IdentityProviderCatalog::built_in();
        let google = resolve(&OAuth2::new(IdentityProvider::new("google")), &catalog, client(), vec![]).unwrap();
        let url = google.authorize_url("https://p/cb", "s", Some("c")).unwrap();
        assert!(url.starts_with("https://accounts.google.com/o/oauth2/v2/auth?"), "{url}");
        assert!(url.contains("access_type=offline") && url.contains("prompt=consent"), "{url}");
        assert_eq!(google.client_auth, ClientAuth::ClientSecretPost);

        let mut aad = OAuth2::new(IdentityProvider::new("aad"));
        aad.entra = Some(EntraId { tenant: Some("contoso.onmicrosoft.com".into()), ..EntraId::default() });
        let aad = resolve(&aad, &catalog, client(), vec![]).unwrap();
        assert_eq!(
            aad.token_url.as_deref(),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
        );
        assert!(aad.scopes.contains(&"offline_access".to_owned()));

        let mut slack = OAuth2::new(IdentityProvider::new("slack"));
        slack.scopes = vec!["chat:write".into(), "channels:read".into()];
        let slack = resolve(&slack, &catalog, client(), vec![]).unwrap();
        assert!(
            slack
                .authorize_url("https://p/cb", "s", Some("c"))
                .unwrap()
                .contains("scope=chat%3Awrite%2Cchannels%3Aread")
        );
        assert!(!slack.pkce);
    }

    #[test]
    fn missing_pieces_are_named() {
        let catalog = IdentityProviderCatalog::built_in();
        let bare = OAuth2::new(IdentityProvider::new("oauth2"));
        assert_eq!(resolve(&bare, &catalog, client(), vec![]).unwrap_err(), ResolveError::NoTokenUrl("oauth2".into()));
        let github = OAuth2::new(IdentityProvider::new("github"));
        assert_eq!(resolve(&github, &catalog, None, vec![]).unwrap_err(), ResolveError::NoClient);
    }

    #[test]
    fn templates_are_filled_case_insensitively() {
        let mut oauth = OAuth2::new(IdentityProvider::new("oauth2generic"));
        oauth.templates = Some(OAuthTemplates {
            authorization_url: Some("https://{CustomHost}/authorize".into()),
            authorization_query: Some(
                "?client_id={clientId}&redirect_uri={RedirectUrl}&scope={Scopes}&state={State}&sig={signingKey}".into(),
            ),
            token_url: Some("https://{customhost}/token".into()),
            ..OAuthTemplates::default()
        });
        oauth.scopes = vec!["a".into(), "b".into()];
        let flow = resolve(
            &oauth,
            &IdentityProviderCatalog::built_in(),
            client(),
            vec![Substitution::public("customHost", "id.example"), Substitution::secret("signingKey", "k-secret")],
        )
        .unwrap();
        assert_eq!(
            flow.authorize_url("https://p/cb", "xyz", None).unwrap(),
            "https://id.example/authorize?client_id=my%20app&redirect_uri=https%3A%2F%2Fp%2Fcb&scope=a%20b&state=xyz&sig=",
            "a secret value never reaches the browser"
        );
        // Token requests, from Portico to the identity provider, may carry it.
        assert_eq!(flow.render("k={SigningKey}", &[], "", Fill::AllEncoded), "k=k%2Dsecret");
        assert_eq!(flow.render("k={SigningKey}", &[], "", Fill::PublicEncoded), "k=");
    }
}
