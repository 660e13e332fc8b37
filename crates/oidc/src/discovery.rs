//! The provider's discovery document (OpenID Connect Discovery 1.0 §3, §4) and its JWKS.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde_json::{Map, Value};
use url::{Host, Url};

use crate::OidcError;

/// The most of a provider's response read: discovery documents and key sets are a few KiB.
const MAX_BODY: usize = 1024 * 1024;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// `client_secret_basic`: the id and secret, each form-urlencoded, in HTTP Basic.
    Basic,
    /// `client_secret_post`: both in the form.
    Post,
    /// `none`: a public client sends its id only.
    None,
}

/// What discovery tells about the provider.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    /// Exactly as the document spells it: the `iss` of ID tokens and callbacks must match it.
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub userinfo_endpoint: Option<Url>,
    pub jwks_uri: Url,
    /// The asymmetric algorithms the provider announces for ID tokens and Portico accepts.
    pub algorithms: Vec<Algorithm>,
    pub client_auth: ClientAuth,
    /// RFC 9207 `authorization_response_iss_parameter_supported`: a callback without `iss` is
    /// then refused.
    pub names_issuer_in_responses: bool,
}

/// `<issuer>/.well-known/openid-configuration` (Discovery §4.1: a trailing `/` of the issuer
/// is dropped first).
pub(crate) fn discovery_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = format!("{}/.well-known/openid-configuration", issuer.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// The issuer as text, without the `/` that [`Url`] adds to an empty path: providers spell
/// their issuer `https://host`, and the comparison with the document is exact otherwise.
pub(crate) fn issuer_text(issuer: &Url) -> &str {
    let text = issuer.as_str();
    if issuer.path() == "/" && issuer.query().is_none() && issuer.fragment().is_none() {
        text.strip_suffix('/').unwrap_or(text)
    } else {
        text
    }
}

/// Whether credentials and tokens may travel to `url`: `https`, or `http` to this machine.
pub(crate) fn is_secure(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(address)) => address.is_loopback(),
            Some(Host::Ipv6(address)) => address.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// Reads and checks the discovery document of `issuer`.
pub(crate) async fn discover(
    http: &reqwest::Client,
    issuer: &Url,
    has_secret: bool,
) -> Result<(Provider, JwkSet), OidcError> {
    let url = discovery_url(issuer);
    let failed = |reason: String| OidcError::Discovery { url: url.to_string(), reason };
    if !is_secure(issuer) {
        return Err(failed("the issuer must use https (http only on this machine)".to_owned()));
    }
    let document = get_json(http, &url).await.map_err(failed)?;
    let expected = issuer_text(issuer);
    let issuer = text(&document, "issuer").ok_or_else(|| failed("it names no issuer".to_owned()))?;
    if issuer.trim_end_matches('/') != expected.trim_end_matches('/') {
        return Err(OidcError::IssuerMismatch {
            expected: expected.to_owned(),
            found: Some(portico_oauth::brief(issuer)),
        });
    }
    let endpoint = |name: &str| -> Result<Option<Url>, OidcError> {
        let Some(value) = text(&document, name) else { return Ok(None) };
        let url = Url::parse(value).map_err(|_| failed(format!("{name} is not a URL")))?;
        if !is_secure(&url) {
            return Err(failed(format!("{name} must use https (http only on this machine)")));
        }
        Ok(Some(url))
    };
    let required = |name: &str| endpoint(name)?.ok_or_else(|| failed(format!("it names no {name}")));
    let authorization_endpoint = required("authorization_endpoint")?;
    let token_endpoint = required("token_endpoint")?;
    let jwks_uri = required("jwks_uri")?;
    let userinfo_endpoint = endpoint("userinfo_endpoint")?;

    if let Some(methods) = list(&document, "code_challenge_methods_supported")
        && !methods.contains(&"S256")
    {
        return Err(failed("it does not support PKCE with S256".to_owned()));
    }
    // Discovery §3: RS256 when the document does not say.
    let announced = list(&document, "id_token_signing_alg_values_supported").unwrap_or_else(|| vec!["RS256"]);
    let algorithms: Vec<Algorithm> = announced
        .iter()
        .filter_map(|name| name.parse::<Algorithm>().ok())
        .filter(|algorithm| algorithm.family() != AlgorithmFamily::Hmac)
        .collect();
    if algorithms.is_empty() {
        return Err(failed(format!(
            "it signs ID tokens only with {}; Portico accepts RS*, PS*, ES256, ES384 and EdDSA",
            portico_oauth::brief(&announced.join(", "))
        )));
    }
    let client_auth =
        client_auth(has_secret, list(&document, "token_endpoint_auth_methods_supported")).map_err(failed)?;
    let names_issuer_in_responses =
        document.get("authorization_response_iss_parameter_supported").and_then(Value::as_bool).unwrap_or(false);

    let keys = fetch_keys(http, &jwks_uri).await.map_err(|reason| OidcError::Discovery {
        url: jwks_uri.to_string(),
        reason: format!("the signing keys: {reason}"),
    })?;
    let provider = Provider {
        issuer: issuer.to_owned(),
        authorization_endpoint,
        token_endpoint,
        userinfo_endpoint,
        jwks_uri,
        algorithms,
        client_auth,
        names_issuer_in_responses,
    };
    Ok((provider, keys))
}

/// `client_secret_basic` unless the provider announces only `client_secret_post` (Discovery
/// §3: basic when it does not say); `none` without a secret.
fn client_auth(has_secret: bool, supported: Option<Vec<&str>>) -> Result<ClientAuth, String> {
    if !has_secret {
        return Ok(ClientAuth::None);
    }
    let Some(supported) = supported else { return Ok(ClientAuth::Basic) };
    if supported.contains(&"client_secret_basic") {
        Ok(ClientAuth::Basic)
    } else if supported.contains(&"client_secret_post") {
        Ok(ClientAuth::Post)
    } else {
        Err(format!(
            "its token endpoint takes neither client_secret_basic nor client_secret_post, only {}",
            portico_oauth::brief(&supported.join(", "))
        ))
    }
}

/// The keys of the JWKS at `url`; a key of a kind `jsonwebtoken` does not read is left out,
/// not a failure of the whole set.
pub(crate) async fn fetch_keys(http: &reqwest::Client, url: &Url) -> Result<JwkSet, String> {
    let document = get_json(http, url).await?;
    let keys = document.get("keys").and_then(Value::as_array).ok_or_else(|| "no \"keys\" array".to_owned())?;
    let keys = keys.iter().filter_map(|key| serde_json::from_value::<Jwk>(key.clone()).ok()).collect();
    Ok(JwkSet { keys })
}

/// `GET url` as JSON: a 2xx response with a JSON object of at most [`MAX_BODY`] bytes.
async fn get_json(http: &reqwest::Client, url: &Url) -> Result<Map<String, Value>, String> {
    let response = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| failure(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("it answered {}", status.as_u16()));
    }
    let body = read_body(response).await?;
    serde_json::from_slice(&body).map_err(|_| "the answer is not a JSON object".to_owned())
}

/// The body of `response`, refused beyond [`MAX_BODY`] bytes.
pub(crate) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let too_large = || format!("the answer is larger than {} KiB", MAX_BODY / 1024);
    if response.content_length().is_some_and(|length| length > MAX_BODY as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failure(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A failed request in words, without reqwest's text: that carries the URL, and a userinfo or
/// token URL is no place for a person to read internals.
pub(crate) fn failure(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the request timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else if error.is_redirect() {
        "it answered with a redirect".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

fn text<'a>(document: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    document.get(name).and_then(Value::as_str).filter(|value| !value.is_empty())
}

fn list<'a>(document: &'a Map<String, Value>, name: &str) -> Option<Vec<&'a str>> {
    let values = document.get(name)?.as_array()?;
    Some(values.iter().filter_map(Value::as_str).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_discovery_url_follows_the_issuer_path() {
        let at = |issuer: &str| discovery_url(&Url::parse(issuer).unwrap()).to_string();
        assert_eq!(at("https://id.example"), "https://id.example/.well-known/openid-configuration");
        assert_eq!(at("https://id.example/"), "https://id.example/.well-known/openid-configuration");
        assert_eq!(at("https://id.example/realms/x/"), "https://id.example/realms/x/.well-known/openid-configuration");
        assert_eq!(at("https://id.example/tenant"), "https://id.example/tenant/.well-known/openid-configuration");
    }

    #[test]
    fn the_issuer_is_spelled_without_the_slash_url_adds() {
        assert_eq!(issuer_text(&Url::parse("https://id.example").unwrap()), "https://id.example");
        assert_eq!(issuer_text(&Url::parse("https://id.example/t/").unwrap()), "https://id.example/t/");
        assert_eq!(issuer_text(&Url::parse("http://127.0.0.1:4000").unwrap()), "http://127.0.0.1:4000");
    }

    #[test]
    fn only_https_or_loopback_http_is_secure() {
        for secure in ["https://id.example/x", "http://127.0.0.1:4000", "http://localhost:1", "http://[::1]:5"] {
            assert!(is_secure(&Url::parse(secure).unwrap()), "{secure}");
        }
        for insecure in ["http://id.example", "http://10.0.0.1", "ftp://id.example", "http://127.0.0.1.example"] {
            assert!(!is_secure(&Url::parse(insecure).unwrap()), "{insecure}");
        }
    }

    #[test]
    fn client_authentication_follows_what_the_provider_announces() {
        assert_eq!(client_auth(true, None), Ok(ClientAuth::Basic));
        assert_eq!(client_auth(true, Some(vec!["client_secret_post", "client_secret_basic"])), Ok(ClientAuth::Basic));
        assert_eq!(client_auth(true, Some(vec!["private_key_jwt", "client_secret_post"])), Ok(ClientAuth::Post));
        assert_eq!(client_auth(false, Some(vec!["client_secret_basic"])), Ok(ClientAuth::None));
        let refused = client_auth(true, Some(vec!["private_key_jwt"])).unwrap_err();
        assert!(refused.contains("private_key_jwt"), "{refused}");
    }
}
