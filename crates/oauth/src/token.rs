//! Token requests (RFC 6749 §4.1.3, §4.4, §6; revocation RFC 7009) and their responses.

use std::time::Duration;

use base64::Engine as _;
use portico_model::ClientAuth;
use portico_outbound::{AddressPolicy, HttpClient};
use portico_secrets::SecretString;
use serde_json::{Map, Value};

use crate::Flow;
use crate::flow::Fill;

/// The longest `expires_in` taken at its word: ten years.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// The most of a token, discovery or revocation response that is read: real ones are a few
/// kilobytes, and an identity provider may be anyone's server.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Tokens from a token response. `Debug` shows no token.
pub struct Tokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Seconds from now, as the server said; `None` when it did not say, or said 0 or more
    /// than ten years, which give no usable expiry either.
    pub expires_in: Option<u64>,
    pub token_type: Option<String>,
    pub scope: Option<String>,
    /// The provider's instance URL (Salesforce), when the catalog names the field.
    pub instance_url: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The grant (code or refresh token) is no longer valid: the user must sign in again.
    #[error("the authorization server refused the grant: {0}")]
    InvalidGrant(String),
    /// A permanent refusal other than `invalid_grant` (bad client, bad request).
    #[error("the authorization server refused the request ({status}): {error}")]
    Rejected { status: u16, error: String },
    /// 5xx, 429, a timeout or a network failure: worth retrying later.
    #[error("the authorization server is unavailable: {0}")]
    Unavailable(String),
    #[error("the token response is not usable: {0}")]
    Malformed(String),
    /// Refused by the address rule before any connection: the same whether anything listens
    /// there or not.
    #[error(
        "the identity provider is on a loopback, private or otherwise non-public address, which this server does not send requests to"
    )]
    NotAllowed,
    #[error("the identity provider's response is larger than {} bytes", MAX_RESPONSE_BYTES)]
    TooLarge,
    #[error("{0}")]
    Configuration(String),
}

impl TokenError {
    pub fn is_transient(&self) -> bool {
        matches!(self, TokenError::Unavailable(_))
    }
}

/// The settings of a client for identity providers: TLS with the `ring` provider and the web
/// PKI roots, no redirects (credentials must not follow one), a 30-second limit.
pub fn client_builder() -> reqwest::ClientBuilder {
    let roots = rustls::RootCertStore { roots: webpki_roots() };
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10));
    if let Ok(tls) = tls {
        builder = builder.tls_backend_preconfigured(tls);
    }
    builder
}

/// The client of token, discovery and revocation requests: [`client_builder`]'s settings under
/// the address rule `addresses`.
pub fn http_client(addresses: AddressPolicy) -> HttpClient {
    // Building fails only when TLS cannot be set up, and the settings above are ring's own.
    HttpClient::new(client_builder(), addresses)
        .unwrap_or_else(|error| panic!("cannot build the identity providers' HTTP client: {error}"))
}

fn webpki_roots() -> Vec<rustls::pki_types::TrustAnchor<'static>> {
    webpki_roots::TLS_SERVER_ROOTS.to_vec()
}

impl Flow {
    /// Exchanges an authorization code (with the PKCE verifier when one was sent).
    pub async fn exchange_code(
        &self,
        http: &HttpClient,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&SecretString>,
    ) -> Result<Tokens, TokenError> {
        if let Some(templates) = &self.templates
            && let (Some(url), Some(body)) = (&templates.token_url, &templates.token_body)
        {
            let builtins = self.builtins(&[("Code", code), ("RedirectUrl", redirect_uri)]);
            let url = self.template_url(url, templates.token_query.as_deref(), &builtins);
            let body = self.render(body, &builtins, &self.scopes.join(&self.scope_separator), Fill::AllEncoded);
            return self.send(http, &url, Body::Raw(body), false).await;
        }
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
        ];
        if let Some(verifier) = verifier.filter(|_| self.pkce) {
            form.push(("code_verifier", verifier.expose().to_owned()));
        }
        self.send(http, self.token_url()?, Body::Form(form), true).await
    }

    /// Renews the access token with a refresh token, at the refresh URL.
    pub async fn refresh(&self, http: &HttpClient, refresh_token: &SecretString) -> Result<Tokens, TokenError> {
        if let Some(templates) = &self.templates
            && let (Some(url), Some(body)) = (&templates.refresh_url, &templates.refresh_body)
        {
            let builtins = self.builtins(&[("RefreshToken", refresh_token.expose())]);
            let url = self.template_url(url, templates.refresh_query.as_deref(), &builtins);
            let body = self.render(body, &builtins, &self.scopes.join(&self.scope_separator), Fill::AllEncoded);
            return self.send(http, &url, Body::Raw(body), false).await;
        }
        let url = self.refresh_url.as_deref().map_or_else(|| self.token_url(), Ok)?;
        let form =
            vec![("grant_type", "refresh_token".to_owned()), ("refresh_token", refresh_token.expose().to_owned())];
        self.send(http, url, Body::Form(form), true).await
    }

    /// A token for the application itself (RFC 6749 §4.4).
    pub async fn client_credentials(&self, http: &HttpClient) -> Result<Tokens, TokenError> {
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if !self.scopes.is_empty() {
            form.push(("scope", self.scopes.join(" ")));
        }
        self.send(http, self.token_url()?, Body::Form(form), true).await
    }

    /// Exchanges a short-lived token for a long-lived one (Facebook's `fb_exchange_token`).
    pub async fn exchange_long_lived(
        &self,
        http: &HttpClient,
        access_token: &SecretString,
    ) -> Result<Tokens, TokenError> {
        let form = vec![
            ("grant_type", "fb_exchange_token".to_owned()),
            ("fb_exchange_token", access_token.expose().to_owned()),
        ];
        self.send(http, self.token_url()?, Body::Form(form), true).await
    }

    /// Revokes a token (RFC 7009); `Ok` when the provider has no revocation endpoint.
    pub async fn revoke(&self, http: &HttpClient, token: &SecretString, hint: &str) -> Result<(), TokenError> {
        let Some(url) = &self.revocation_url else { return Ok(()) };
        let form = vec![("token", token.expose().to_owned()), ("token_type_hint", hint.to_owned())];
        let request = self.authenticate(http.post(url).map_err(|_| TokenError::NotAllowed)?, &form_body(&form, &[]));
        let response = request.send().await.map_err(|e| transport_error(&e, ""))?;
        // Only the status counts: the body is never read, so its size costs nothing.
        match response.status().as_u16() {
            200..=299 => Ok(()),
            status @ (429 | 500..=599) => Err(TokenError::Unavailable(format!("revocation answered {status}"))),
            status => Err(TokenError::Rejected { status, error: "revocation refused".to_owned() }),
        }
    }

    fn token_url(&self) -> Result<&str, TokenError> {
        self.token_url.as_deref().ok_or_else(|| TokenError::Configuration("no token URL".to_owned()))
    }

    fn builtins<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut builtins = vec![
            ("ClientId", self.client.id.as_str()),
            ("ClientSecret", self.client.secret.as_ref().map_or("", SecretString::expose)),
        ];
        builtins.extend_from_slice(extra);
        builtins
    }

    fn template_url(&self, url: &str, query: Option<&str>, builtins: &[(&str, &str)]) -> String {
        let scopes = self.scopes.join(&self.scope_separator);
        format!(
            "{}{}",
            self.render(url, builtins, &scopes, Fill::All),
            self.render(query.unwrap_or(""), builtins, &scopes, Fill::AllEncoded)
        )
    }

    /// Adds client authentication: HTTP Basic with the form-urlencoded id and secret
    /// (RFC 6749 §2.3.1), or both in the body; a public client sends its id only.
    fn authenticate(&self, request: reqwest::RequestBuilder, body: &str) -> reqwest::RequestBuilder {
        let request = request
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        let client = &self.client;
        match (&client.secret, self.client_auth) {
            (Some(secret), ClientAuth::ClientSecretBasic) => {
                let pair = format!("{}:{}", form_encode(&client.id), form_encode(secret.expose()));
                let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
                request.header(reqwest::header::AUTHORIZATION, header).body(body.to_owned())
            }
            (Some(secret), ClientAuth::ClientSecretPost) => {
                let extra =
                    form_body(&[("client_id", client.id.clone()), ("client_secret", secret.expose().to_owned())], &[]);
                request.body(join(body, &extra))
            }
            (None, _) => request.body(join(body, &form_body(&[("client_id", client.id.clone())], &[]))),
        }
    }

    async fn send(&self, http: &HttpClient, url: &str, body: Body, authenticate: bool) -> Result<Tokens, TokenError> {
        let body = match body {
            Body::Form(form) => form_body(&form, &self.token_params),
            Body::Raw(raw) => raw,
        };
        let request = http.post(url).map_err(|_| TokenError::NotAllowed)?;
        let request = if authenticate {
            self.authenticate(request, &body)
        } else {
            request
                .header(reqwest::header::ACCEPT, "application/json")
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
        };
        let response = request.send().await.map_err(|e| transport_error(&e, ""))?;
        let status = response.status().as_u16();
        let is_form = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded") || v.starts_with("text/plain"));
        let body = read_limited(response).await?;
        let text = String::from_utf8_lossy(&body);
        let parsed =
            if is_form { Some(form_to_json(&text)) } else { serde_json::from_str::<Map<String, Value>>(&text).ok() };
        if !(200..300).contains(&status) {
            let error = parsed.as_ref().and_then(|m| m.get("error")).and_then(Value::as_str).map(brief);
            let error = error.unwrap_or_default();
            let description =
                parsed.as_ref().and_then(|m| m.get("error_description")).and_then(Value::as_str).map(brief);
            let words = match description {
                Some(d) => format!("{error}: {d}"),
                None if error.is_empty() => format!("status {status}"),
                None => error.clone(),
            };
            return Err(match (status, error.as_str()) {
                (_, "invalid_grant") => TokenError::InvalidGrant(words),
                (429 | 500..=599, _) => TokenError::Unavailable(words),
                _ => TokenError::Rejected { status, error: words },
            });
        }
        let map = parsed.ok_or_else(|| TokenError::Malformed("not JSON".to_owned()))?;
        self.tokens(&map)
    }

    fn tokens(&self, map: &Map<String, Value>) -> Result<Tokens, TokenError> {
        let paths: Vec<&str> = if self.access_token_paths.is_empty() {
            vec!["access_token"]
        } else {
            self.access_token_paths.iter().map(String::as_str).collect()
        };
        let access = paths
            .iter()
            .find_map(|p| lookup(map, p).and_then(Value::as_str))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| TokenError::Malformed("no access_token".to_owned()))?;
        let expires_in = match map.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        // 0 would mean renewing before every call, and an absurd lifetime overflows: both are
        // treated as no expiry, so the token is renewed when the backend rejects it.
        .filter(|s| (1..=MAX_EXPIRES_IN).contains(s));
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
        Ok(Tokens {
            access_token: SecretString::from(access),
            refresh_token: text("refresh_token").filter(|t| !t.is_empty()).map(SecretString::from),
            expires_in,
            token_type: text("token_type"),
            scope: text("scope"),
            instance_url: self.instance_url_field.as_deref().and_then(text),
        })
    }
}

enum Body {
    Form(Vec<(&'static str, String)>),
    Raw(String),
}

/// The most of an identity provider's own words (an `error` or `error_description`) that
/// Portico repeats, in a status reason or a log line.
const BRIEF_CHARS: usize = 300;

/// An identity provider's words made fit to repeat: control characters and white space of
/// every kind (line breaks, Unicode's line and paragraph separators included, would forge log
/// lines) become spaces, runs of spaces one, none at either end, and the text is cut to
/// [`BRIEF_CHARS`] characters with an ellipsis.
pub fn brief(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(BRIEF_CHARS + 3));
    let mut chars = 0;
    for c in text.chars().map(|c| if c.is_control() || c.is_whitespace() { ' ' } else { c }) {
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if chars == BRIEF_CHARS {
            out.push('…');
            break;
        }
        out.push(c);
        chars += 1;
    }
    out.trim_end().to_owned()
}

fn lookup<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = map.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn form_body(pairs: &[(&str, String)], extra: &[(String, String)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        serializer.append_pair(k, v);
    }
    for (k, v) in extra {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}&{b}"),
    }
}

fn form_to_json(text: &str) -> Map<String, Value> {
    url::form_urlencoded::parse(text.trim().as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

/// A response's body, read up to [`MAX_RESPONSE_BYTES`]: a larger one is an error as soon as
/// it is known to be larger (its `Content-Length`, or the first chunk past the limit).
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, TokenError> {
    if response.content_length().is_some_and(|length| length > MAX_RESPONSE_BYTES as u64) {
        return Err(TokenError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e, ""))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(TokenError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A failed request: refused by the address rule, or unavailable (in words, after `context`).
fn transport_error(error: &reqwest::Error, context: &str) -> TokenError {
    if portico_outbound::is_refused(error) {
        TokenError::NotAllowed
    } else {
        TokenError::Unavailable(format!("{context}{}", without_url(error)))
    }
}

/// A transport error in words, without the URL (which may carry a templated secret).
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    kind.to_owned()
}

impl Flow {
    /// Fills missing endpoints from the OpenID Connect discovery document, when there is one.
    pub async fn discover(&mut self, http: &HttpClient) -> Result<(), TokenError> {
        if self.token_url.is_some()
            && (self.authorization_url.is_some() || self.grant == portico_model::GrantType::ClientCredentials)
        {
            return Ok(());
        }
        self.read_discovery(http).await
    }

    /// [`Flow::discover`], and the issuer even when the endpoints are known: what an
    /// authorization response's `iss` is checked against ([`Flow::check_issuer`]).
    pub async fn discover_issuer(&mut self, http: &HttpClient) -> Result<(), TokenError> {
        self.read_discovery(http).await
    }

    /// RFC 9207, the mix-up defence: an authorization response's `iss` must be the issuer of
    /// this flow's provider, and must be there when the provider says it always sends it.
    /// Without a discovery document the issuer is unknown and nothing is checked.
    pub fn check_issuer(&self, iss: Option<&str>) -> Result<(), String> {
        match (&self.issuer, iss) {
            (Some(expected), Some(iss)) if iss != expected => {
                Err(format!("the authorization response came from another issuer ({})", brief(iss)))
            }
            (Some(_), None) if self.sends_issuer => {
                Err("the authorization response names no issuer, which this provider always sends".to_owned())
            }
            _ => Ok(()),
        }
    }

    async fn read_discovery(&mut self, http: &HttpClient) -> Result<(), TokenError> {
        let Some(url) = self.discovery_url.clone() else { return Ok(()) };
        let response = http
            .get(&url)
            .map_err(|_| TokenError::NotAllowed)?
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(&e, "discovery: "))?;
        if !response.status().is_success() {
            return Err(TokenError::Unavailable(format!("discovery answered {}", response.status().as_u16())));
        }
        let document: Map<String, Value> = serde_json::from_slice(&read_limited(response).await?)
            .map_err(|_| TokenError::Malformed("the discovery document is not JSON".to_owned()))?;
        let endpoint = |key: &str| document.get(key).and_then(Value::as_str).map(str::to_owned);
        self.authorization_url = self.authorization_url.take().or_else(|| endpoint("authorization_endpoint"));
        self.token_url = self.token_url.take().or_else(|| endpoint("token_endpoint"));
        self.refresh_url = self.refresh_url.take().or_else(|| self.token_url.clone());
        self.revocation_url = self.revocation_url.take().or_else(|| endpoint("revocation_endpoint"));
        self.issuer = endpoint("issuer");
        self.sends_issuer =
            document.get("authorization_response_iss_parameter_supported").and_then(Value::as_bool) == Some(true);
        if self.token_url.is_none() {
            return Err(TokenError::Malformed("the discovery document names no token endpoint".to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authorization_responses_issuer_is_checked_when_the_provider_is_known() {
        let mut oauth = portico_model::OAuth2::new(portico_model::IdentityProvider::new("oauth2"));
        oauth.token_url = Some("https://idp.example/token".to_owned());
        oauth.authorization_url = Some("https://idp.example/auth".to_owned());
        let client = crate::ClientCredentials { id: "c".to_owned(), secret: None };
        let catalog = portico_model::IdentityProviderCatalog::built_in();
        let mut flow = crate::resolve(&oauth, &catalog, Some(client), vec![]).expect("a flow");
        assert_eq!(flow.check_issuer(Some("https://anyone.example")), Ok(()), "an unknown issuer is not checked");
        assert_eq!(flow.check_issuer(None), Ok(()));
        flow.issuer = Some("https://idp.example".to_owned());
        assert_eq!(flow.check_issuer(Some("https://idp.example")), Ok(()));
        assert!(flow.check_issuer(Some("https://evil.example\r\nforged")).unwrap_err().contains("another issuer"));
        assert_eq!(flow.check_issuer(None), Ok(()), "not required unless the provider says it sends it");
        flow.sends_issuer = true;
        assert!(flow.check_issuer(None).unwrap_err().contains("names no issuer"));
    }

    #[test]
    fn unicode_line_and_paragraph_separators_do_not_break_a_brief() {
        // Found by fuzzing the callback's query (`error_description=%E2%80%A8line%E2%80%A9para%C2%85nel`).
        assert_eq!(brief("\u{2028}line\u{2029}para\u{85}nel"), "line para nel");
        assert_eq!(brief("one\u{2028}\u{2029} two"), "one two");
    }

    #[test]
    fn a_brief_starts_with_no_space() {
        // Found by fuzzing: a control character at the start became a leading space.
        assert_eq!(brief("\u{0}state=Q2h\u{0}gcm"), "state=Q2h gcm");
        assert_eq!(brief("\u{7} \r\n x"), "x");
        // And a white space other than a space, after one that was not trimmed.
        assert_eq!(brief("\u{0}\u{3000}\u{a8}nel\u{a0}\u{a0}x\u{3000}"), "\u{a8}nel x");
    }

    #[test]
    fn an_identity_providers_words_are_made_brief() {
        assert_eq!(brief("  invalid_grant "), "invalid_grant");
        assert_eq!(brief("line one\r\nINFO forged line\tand\u{7}more"), "line one INFO forged line and more");
        let long = "x".repeat(BRIEF_CHARS + 50);
        let cut = brief(&long);
        assert_eq!(cut.chars().count(), BRIEF_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(brief(&"é".repeat(BRIEF_CHARS)), "é".repeat(BRIEF_CHARS), "exactly the limit is not cut");
    }
}
