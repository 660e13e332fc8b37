use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use portico_oauth::{Pkce, brief};
use portico_secrets::{SecretString, Zeroizing, constant_time_eq, random_token};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Map, Value};
use url::Url;

use crate::discovery::{self, ClientAuth, Provider, failure, read_body};
use crate::id_token::{self, Claims, Expected};
use crate::{CallbackParams, IdTokenProblem, OidcError, Pending, Person, Settings};

/// A client of one OpenID provider, for signing people in. Made once by [`RelyingParty::discover`]
/// and shared (it is `Send + Sync`); the provider's keys are read again when a token names an
/// unknown one.
pub struct RelyingParty {
    settings: Settings,
    provider: Provider,
    keys: RwLock<Arc<JwkSet>>,
    http: reqwest::Client,
}

/// The parts of a token response that are used.
struct Tokens {
    id_token: SecretString,
    access_token: Option<SecretString>,
}

impl RelyingParty {
    /// Reads the provider's discovery document and its JWKS. Fails with
    /// [`OidcError::IssuerMismatch`] when the document names another issuer than
    /// `settings.issuer`, and with [`OidcError::Discovery`] when it cannot be read or does
    /// not allow this flow (no S256 PKCE, only symmetric ID token signatures, endpoints not on
    /// `https`).
    ///
    /// `http` should not follow redirects (a token request carries the client secret) and
    /// should have a timeout.
    pub async fn discover(settings: Settings, http: reqwest::Client) -> Result<RelyingParty, OidcError> {
        let (provider, keys) = discovery::discover(&http, &settings.issuer, settings.client_secret.is_some()).await?;
        Ok(RelyingParty { settings, provider, keys: RwLock::new(Arc::new(keys)), http })
    }

    /// The issuer, exactly as the provider spells it (the [`Person::issuer`] of its people).
    pub fn issuer(&self) -> &str {
        &self.provider.issuer
    }

    /// A new sign-in: the URL to send the browser to, and what must be kept (server side)
    /// until the callback.
    pub fn start(&self) -> (Url, Pending) {
        let pkce = Pkce::new();
        let pending =
            Pending { state: random_token(), nonce: random_token(), verifier: pkce.verifier, started: Instant::now() };
        let mut url = self.provider.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", self.settings.redirect_uri.as_str())
            .append_pair("scope", &self.scope())
            .append_pair("state", pending.state.expose())
            .append_pair("nonce", pending.nonce.expose())
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        (url, pending)
    }

    /// The callback: checks `state` (in constant time) and the RFC 9207 `iss` parameter before
    /// anything else, repeats a provider's refusal, exchanges the code with the PKCE verifier,
    /// verifies the ID token (signature over the provider's keys, `iss`, `aud` and `azp`,
    /// `exp`, `iat`, `nonce`), and asks userinfo for the email when the ID token has none.
    pub async fn finish(&self, pending: Pending, callback: CallbackParams<'_>) -> Result<Person, OidcError> {
        if pending.is_expired() {
            return Err(OidcError::Expired);
        }
        let state_matches =
            callback.state.is_some_and(|state| constant_time_eq(state.as_bytes(), pending.state.expose().as_bytes()));
        if !state_matches {
            return Err(OidcError::StateMismatch);
        }
        match callback.iss {
            Some(iss) if iss == self.provider.issuer => {}
            Some(other) => {
                return Err(OidcError::IssuerMismatch {
                    expected: self.provider.issuer.clone(),
                    found: Some(brief(other)),
                });
            }
            None if self.provider.names_issuer_in_responses => {
                return Err(OidcError::IssuerMismatch { expected: self.provider.issuer.clone(), found: None });
            }
            None => {}
        }
        if let Some(error) = callback.error {
            return Err(OidcError::ProviderRefused {
                error: brief(error),
                description: callback.error_description.map(brief).filter(|d| !d.is_empty()),
            });
        }
        let code = callback.code.filter(|code| !code.is_empty()).ok_or(OidcError::MissingCode)?;

        let tokens = self.exchange(code, &pending.verifier).await?;
        let claims = self.verify(tokens.id_token.expose(), pending.nonce.expose()).await?;
        let mut person = Person {
            issuer: self.provider.issuer.clone(),
            subject: claims.subject,
            email: claims.email,
            email_verified: claims.email_verified,
            name: claims.name,
        };
        if person.email.is_none()
            && let (Some(endpoint), Some(access_token)) = (&self.provider.userinfo_endpoint, &tokens.access_token)
        {
            let info = self.userinfo(endpoint, access_token, &person.subject).await?;
            let text = |name: &str| info.get(name).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
            // The email and whether it is verified come from the same source.
            person.email = text("email");
            person.email_verified = id_token::flag(info.get("email_verified"));
            person.name = person.name.or_else(|| text("name"));
        }
        Ok(person)
    }

    /// `openid` first, then the configured scopes, each once.
    fn scope(&self) -> String {
        let mut scopes = vec!["openid"];
        for scope in self.settings.scopes.iter().flat_map(|s| s.split_whitespace()) {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        scopes.join(" ")
    }

    /// The code exchange (RFC 6749 §4.1.3, RFC 7636 §4.5).
    async fn exchange(&self, code: &str, verifier: &SecretString) -> Result<Tokens, OidcError> {
        let mut request = self
            .http
            .post(self.provider.token_endpoint.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        let client_id = self.settings.client_id.as_str();
        // Built in a block of its own: the serializer is not `Send`, and must not live across
        // an await (the portal awaits this on its serving runtimes).
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", self.settings.redirect_uri.as_str())
                .append_pair("code_verifier", verifier.expose());
            match (self.provider.client_auth, &self.settings.client_secret) {
                (ClientAuth::Basic, Some(secret)) => {
                    request = request.header(AUTHORIZATION, basic_authorization(client_id, secret));
                }
                (ClientAuth::Post, Some(secret)) => {
                    form.append_pair("client_id", client_id).append_pair("client_secret", secret.expose());
                }
                _ => {
                    form.append_pair("client_id", client_id);
                }
            }
            form.finish()
        };
        let response = request.body(body).send().await.map_err(|e| OidcError::TokenExchange(failure(&e)))?;
        let status = response.status();
        let body = read_body(response).await.map_err(OidcError::TokenExchange)?;
        let answer: Option<Map<String, Value>> = serde_json::from_slice(&body).ok();
        let field = |name: &str| answer.as_ref().and_then(|a| a.get(name)).and_then(Value::as_str);
        if !status.is_success() {
            let words = match (field("error").map(brief), field("error_description").map(brief)) {
                (Some(error), Some(description)) if !description.is_empty() => format!("{error}: {description}"),
                (Some(error), _) => error,
                (None, _) => format!("the token endpoint answered {}", status.as_u16()),
            };
            return Err(OidcError::TokenExchange(words));
        }
        if answer.is_none() {
            return Err(OidcError::TokenExchange("the token response is not a JSON object".to_owned()));
        }
        let id_token = field("id_token")
            .filter(|token| !token.is_empty())
            .map(SecretString::from)
            .ok_or_else(|| OidcError::TokenExchange("the token response has no ID token".to_owned()))?;
        let access_token = field("access_token").filter(|token| !token.is_empty()).map(SecretString::from);
        Ok(Tokens { id_token, access_token })
    }

    /// Verifies the ID token; on an unknown key, reads the provider's keys again (it may have
    /// rotated them) and tries once more.
    async fn verify(&self, token: &str, nonce: &str) -> Result<Claims, OidcError> {
        let expected = Expected {
            issuer: &self.provider.issuer,
            client_id: &self.settings.client_id,
            nonce,
            algorithms: &self.provider.algorithms,
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner).clone();
        match id_token::verify(token, &keys, &expected, now) {
            Err(IdTokenProblem::UnknownKey { .. }) => {
                tracing::info!(
                    issuer = %self.provider.issuer,
                    "an ID token names a signing key not seen before; reading the provider's keys again"
                );
                let fresh = Arc::new(
                    discovery::fetch_keys(&self.http, &self.provider.jwks_uri).await.map_err(OidcError::Keys)?,
                );
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
                id_token::verify(token, &fresh, &expected, now).map_err(OidcError::InvalidIdToken)
            }
            verified => verified.map_err(OidcError::InvalidIdToken),
        }
    }

    /// The userinfo claims (Core §5.3), refused unless they are about `subject` (§5.3.2).
    async fn userinfo(
        &self,
        endpoint: &Url,
        access_token: &SecretString,
        subject: &str,
    ) -> Result<Map<String, Value>, OidcError> {
        let response = self
            .http
            .get(endpoint.clone())
            .bearer_auth(access_token.expose())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Userinfo(failure(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(OidcError::Userinfo(format!("it answered {}", status.as_u16())));
        }
        let is_jwt = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/jwt"));
        if is_jwt {
            return Err(OidcError::Userinfo(
                "it answers with a signed or encrypted JWT, which Portico does not read".into(),
            ));
        }
        let body = read_body(response).await.map_err(OidcError::Userinfo)?;
        let info: Map<String, Value> =
            serde_json::from_slice(&body).map_err(|_| OidcError::Userinfo("the answer is not a JSON object".into()))?;
        if info.get("sub").and_then(Value::as_str) != Some(subject) {
            return Err(OidcError::Userinfo("it describes another person than the ID token (sub)".into()));
        }
        Ok(info)
    }
}

impl fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelyingParty")
            .field("issuer", &self.provider.issuer)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

/// `Authorization: Basic` with the id and secret each form-urlencoded (RFC 6749 §2.3.1),
/// marked sensitive so that no HTTP log shows it.
fn basic_authorization(client_id: &str, secret: &SecretString) -> HeaderValue {
    let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let pair = Zeroizing::new(format!("{}:{}", encode(client_id), encode(secret.expose())));
    let mut header = Zeroizing::new(String::from("Basic "));
    base64::engine::general_purpose::STANDARD.encode_string(pair.as_bytes(), &mut header);
    let mut value = HeaderValue::from_str(&header).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests;
