//! Turning a connection (connector + stored values) into what every call needs, once.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use http::header::{AUTHORIZATION, COOKIE, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use portico_model::{ApiKeyLocation, Connector, Credential, Ownership, PolicyKind, Segment, Template};
use portico_secrets::SecretString;
use serde_json::Value;

use crate::metrics::ConnectorMetrics;

/// Characters left as they are in a query component (RFC 3986 unreserved).
pub(crate) const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Where calls go.
#[derive(Debug, Clone)]
pub struct Target {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    pub authority: Authority,
    /// The `Host` header: the authority, built once.
    pub host_header: HeaderValue,
    /// No trailing slash: `""` or `/api/v1`.
    pub base_path: String,
}

/// Headers and query parameters for the operations a policy lists.
#[derive(Clone)]
pub struct OperationExtras {
    pub operations: Vec<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub query: Vec<(String, String)>,
}

/// Everything a call through one connection needs, computed once. Header values holding
/// credentials are marked sensitive; `Debug` shows no value.
pub struct PreparedConnection {
    pub tenant_id: String,
    pub connection_id: String,
    pub connector_id: String,
    pub target: Target,
    /// Added to every call: the credential and policies that apply to all operations.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Appended to every call's query string, already encoded (`k=v&k2=v2`), or empty.
    pub query: String,
    /// Policies limited to some operations (used by operation calls).
    pub operation_extras: Vec<OperationExtras>,
    pub connector: Arc<Connector>,
    pub metrics: Arc<ConnectorMetrics>,
    /// For OAuth 2.0 connections: when the access token is due for renewal.
    pub token: Option<TokenTimes>,
    /// Its owner and shares, so that a call's permission is checked without the store.
    pub ownership: Ownership,
}

/// When an access token expires and when to renew it (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTimes {
    pub expires_at: Option<i64>,
    /// Renew at or after this; `None` when the token does not say when it expires.
    pub refresh_at: Option<i64>,
    /// Backend statuses that mean the token expired.
    pub expired_statuses: Vec<u16>,
}

impl PreparedConnection {
    /// Is the access token due for renewal at `now`?
    pub fn needs_refresh(&self, now: i64) -> bool {
        self.token.as_ref().and_then(|t| t.refresh_at).is_some_and(|at| now >= at)
    }

    /// Is the access token past its expiry at `now`?
    pub fn token_expired(&self, now: i64) -> bool {
        self.token.as_ref().and_then(|t| t.expires_at).is_some_and(|at| now >= at)
    }
}

impl std::fmt::Debug for PreparedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedConnection")
            .field("connection_id", &self.connection_id)
            .field("target", &self.target)
            .field("headers", &self.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrepareError {
    #[error("the connector has no parameter set '{0}'")]
    NoSuchSet(String),
    #[error("the backend URL '{0}' is not a valid http(s) URL")]
    InvalidBackend(String),
    #[error("'{0}' is not a valid header name")]
    InvalidHeaderName(String),
    /// The value itself is never part of the message.
    #[error("the value of '{0}' cannot be sent in a header (it holds control characters)")]
    InvalidHeaderValue(String),
    #[error("the connection has no access token yet: sign in first")]
    NoAccessToken,
    /// The value itself is never part of the message.
    #[error("the value of '{0}' would take calls to another host than the connector's template allows")]
    HostNotAllowed(String),
}

/// The values of a connection, looked up case-insensitively by parameter name.
struct Values<'a> {
    public: &'a BTreeMap<String, Value>,
    secret: &'a BTreeMap<String, SecretString>,
    scalars: Vec<(String, String)>,
}

impl<'a> Values<'a> {
    fn new(public: &'a BTreeMap<String, Value>, secret: &'a BTreeMap<String, SecretString>) -> Self {
        let scalars = public
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(_) => None,
                Value::Null => None,
                other => Some((k.clone(), other.to_string())),
            })
            .collect();
        Values { public, secret, scalars }
    }

    fn get(&self, name: &str) -> Option<&str> {
        if let Some((_, v)) = self.secret.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            return Some(v.expose());
        }
        if let Some((_, Value::String(v))) = self.public.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            return Some(v);
        }
        self.scalars.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn render(&self, template: &Template) -> String {
        template.render(|name| self.get(name))
    }
}

/// Prepares a connection of `connector`: `parameter_set` as stored, `public` and `secret`
/// values as checked at creation, `bearer` the current access token of an OAuth connection.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    tenant_id: &str,
    connection_id: &str,
    connector_id: &str,
    connector: Arc<Connector>,
    parameter_set: Option<&str>,
    public: &BTreeMap<String, Value>,
    secret: &BTreeMap<String, SecretString>,
    bearer: Option<&SecretString>,
    metrics: Arc<ConnectorMetrics>,
) -> Result<PreparedConnection, PrepareError> {
    let set = connector
        .connection
        .set(parameter_set)
        .ok_or_else(|| PrepareError::NoSuchSet(parameter_set.unwrap_or_default().to_owned()))?;
    let values = Values::new(public, secret);
    let target = target(&connector, &values)?;
    let mut headers = Vec::new();
    let mut query = Vec::new();
    let mut cookies = Vec::new();
    match &set.credential {
        Credential::None => {}
        Credential::Basic { username, password } => {
            let pair = format!("{}:{}", values.get(username).unwrap_or(""), values.get(password).unwrap_or(""));
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
            headers.push((AUTHORIZATION, sensitive(&format!("Basic {encoded}"), password)?));
        }
        Credential::ApiKey { keys } => {
            for key in keys {
                let value =
                    format!("{}{}", key.prefix.as_deref().unwrap_or(""), values.get(&key.parameter).unwrap_or(""));
                match key.location {
                    ApiKeyLocation::Header => {
                        headers.push((header_name(&key.name)?, sensitive(&value, &key.parameter)?))
                    }
                    ApiKeyLocation::Query => query.push((key.name.clone(), value)),
                    ApiKeyLocation::Cookie if portico_model::is_cookie_value(&value) => {
                        cookies.push(format!("{}={value}", key.name))
                    }
                    ApiKeyLocation::Cookie => return Err(PrepareError::InvalidHeaderValue(key.parameter.clone())),
                }
            }
        }
        Credential::OAuth2(_) => {
            let token = bearer.ok_or(PrepareError::NoAccessToken)?;
            headers.push((AUTHORIZATION, sensitive(&format!("Bearer {}", token.expose()), "access token")?));
        }
    }
    if !cookies.is_empty() {
        headers.push((COOKIE, sensitive(&cookies.join("; "), "cookie")?));
    }
    let mut operation_extras = Vec::new();
    for policy in &connector.policies {
        let (extra_headers, extra_query) = match &policy.kind {
            PolicyKind::SetHeader { name, value } => {
                (vec![(header_name(name)?, sensitive(&values.render(value), name)?)], Vec::new())
            }
            PolicyKind::SetQueryParameter { name, value } => (Vec::new(), vec![(name.clone(), values.render(value))]),
            PolicyKind::Other { .. } => continue,
        };
        if policy.operations.is_empty() {
            // A policy replaces a header the credential set under the same name.
            for (name, value) in extra_headers {
                headers.retain(|(n, _)| *n != name);
                headers.push((name, value));
            }
            query.extend(extra_query);
        } else {
            operation_extras.push(OperationExtras {
                operations: policy.operations.clone(),
                headers: extra_headers,
                query: extra_query,
            });
        }
    }
    Ok(PreparedConnection {
        tenant_id: tenant_id.to_owned(),
        connection_id: connection_id.to_owned(),
        connector_id: connector_id.to_owned(),
        target,
        headers,
        query: encode_query(&query),
        operation_extras,
        connector,
        metrics,
        token: None,
        ownership: Ownership::default(),
    })
}

pub(crate) fn encode_query(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(utf8_percent_encode(name, QUERY));
        out.push('=');
        out.extend(utf8_percent_encode(value, QUERY));
    }
    out
}

/// A header a credential or a policy sets: refused, as when the connector was written, when it
/// is not a valid name or is one Portico sets itself (a stored connector may predate the rule).
fn header_name(name: &str) -> Result<HeaderName, PrepareError> {
    if portico_model::header_name_problem(name).is_some() {
        return Err(PrepareError::InvalidHeaderName(name.to_owned()));
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| PrepareError::InvalidHeaderName(name.to_owned()))
}

/// A header value marked sensitive (kept out of HPACK tables and debug output).
fn sensitive(value: &str, parameter: &str) -> Result<HeaderValue, PrepareError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| PrepareError::InvalidHeaderValue(parameter.to_owned()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Renders a host template into the backend's URL, refusing a value that would end or move the
/// authority (host and port) the template fixes: in
/// `https://@connectionParameters('sub').example.com/api`, `sub` may not hold `/`, `?`, `#`,
/// `@` or `\`, which would make `evil.test/x?.example.com` or `user@evil.test` the host. A
/// template writes its scheme when a `://` comes before any `/`, `?` or `#`, and a value there
/// may hold only a scheme's characters; else the URL has `scheme`, the backend's. Only a template
/// that is one parameter before its path (`@connectionParameters('instanceUrl')/api`) lets that
/// parameter hold a whole URL, and so choose the scheme and the host.
fn render_host(template: &Template, values: &Values<'_>, scheme: &str) -> Result<String, PrepareError> {
    #[derive(PartialEq)]
    enum Part {
        Scheme,
        Authority,
        Rest,
    }
    let segments = template.segments();
    let fixes_scheme = writes_scheme(&segments);
    let mut part = if fixes_scheme { Part::Scheme } else { Part::Authority };
    let mut whole_url = false;
    let mut out = String::with_capacity(template.as_str().len());
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Literal(text) => {
                let mut rest = *text;
                if part == Part::Scheme
                    && let Some(at) = rest.find("://")
                {
                    part = Part::Authority;
                    rest = &rest[at + 3..];
                }
                if part == Part::Authority && rest.contains(['/', '?', '#']) {
                    part = Part::Rest;
                }
                out.push_str(text);
            }
            Segment::Param(reference) => {
                let given = values.get(reference.name);
                let text = given.or(reference.default).unwrap_or("");
                let alone = match segments.get(i + 1) {
                    None => true,
                    Some(Segment::Literal(next)) => next.starts_with(['/', '?', '#']),
                    Some(Segment::Param(_)) => false,
                };
                if i == 0 && !fixes_scheme && alone && text.contains("://") {
                    whole_url = true;
                    part = Part::Rest;
                }
                let allowed = match part {
                    _ if given.is_none() => true,
                    Part::Scheme => text.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)),
                    Part::Authority => !text.contains(['/', '?', '#', '@', '\\']),
                    Part::Rest => true,
                };
                if !allowed {
                    return Err(PrepareError::HostNotAllowed(reference.name.to_owned()));
                }
                out.push_str(text);
            }
        }
    }
    // The backend's scheme, unless the template writes its own or a value is the whole URL (a
    // `://` further on, in a value or not, does not count).
    if !fixes_scheme && !whole_url {
        out.insert_str(0, "://");
        out.insert_str(0, scheme);
    }
    Ok(out)
}

/// Whether a template writes its URL's scheme: a `://` in its text before any `/`, `?` or `#`.
/// (A `://` further on, as in `…/login?next=https://…`, is no scheme's.)
fn writes_scheme(segments: &[Segment<'_>]) -> bool {
    for segment in segments {
        if let Segment::Literal(text) = segment
            && let Some(end) = text.find(['/', '?', '#'])
        {
            return text[..end].ends_with(':') && text[end..].starts_with("//");
        }
    }
    false
}

fn target(connector: &Connector, values: &Values<'_>) -> Result<Target, PrepareError> {
    let backend = &connector.backend;
    // Errors show the template as written, never as filled in: its values may be secret.
    let (url, shown) = match &backend.host_template {
        Some(template) => (render_host(template, values, backend.scheme.as_str())?, template.as_str().to_owned()),
        None => (backend.base_url(), backend.base_url()),
    };
    let invalid = || PrepareError::InvalidBackend(shown.clone());
    let parsed = url::Url::parse(&url).map_err(|_| invalid())?;
    let scheme = match parsed.scheme() {
        "http" => Scheme::HTTP,
        "https" => Scheme::HTTPS,
        _ => return Err(invalid()),
    };
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(invalid()),
    };
    let port = parsed.port_or_known_default().ok_or_else(invalid)?;
    let authority_text = match (parsed.port(), host.contains(':')) {
        (Some(p), true) => format!("[{host}]:{p}"),
        (Some(p), false) => format!("{host}:{p}"),
        (None, true) => format!("[{host}]"),
        (None, false) => host.clone(),
    };
    let authority: Authority = authority_text.parse().map_err(|_| invalid())?;
    let host_header = HeaderValue::from_str(authority.as_str()).map_err(|_| invalid())?;
    let base_path = parsed.path().trim_end_matches('/').to_owned();
    Ok(Target { scheme, host, port, authority, host_header, base_path })
}

#[cfg(test)]
mod tests {
    use portico_model::{
        ApiKey, Backend, ConnectionParameter, ConnectionSpec, Metadata, ParameterSet, ParameterType, Policy,
    };
    use serde_json::json;

    use super::*;

    fn connector(credential: Credential, parameters: Vec<ConnectionParameter>) -> Connector {
        Connector {
            metadata: Metadata { name: "c".into(), display_name: "C".into(), ..Metadata::default() },
            backend: Backend {
                scheme: portico_model::Scheme::Https,
                host: "api.example.com:8443".into(),
                base_path: "/v1/".into(),
                host_template: None,
            },
            operations: Vec::new(),
            connection: ConnectionSpec::Single(ParameterSet { parameters, credential, ..ParameterSet::default() }),
            policies: Vec::new(),
            test_operation: None,
        }
    }

    fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretString> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), SecretString::from(*v))).collect()
    }

    fn run(c: Connector, public: Value, secret: &[(&str, &str)]) -> Result<PreparedConnection, PrepareError> {
        let public: BTreeMap<String, Value> = serde_json::from_value(public).unwrap();
        prepare("t", "conn", "ctor", Arc::new(c), None, &public, &secrets(secret), None, Arc::default())
    }

    #[test]
    fn basic_makes_an_authorization_header() {
        let c = connector(Credential::Basic { username: "username".into(), password: "password".into() }, vec![]);
        let p = run(c, json!({"username": "alice"}), &[("password", "p:ss wörd")]).unwrap();
        assert_eq!(p.headers.len(), 1);
        assert_eq!(p.headers[0].0, AUTHORIZATION);
        let expected = base64::engine::general_purpose::STANDARD.encode("alice:p:ss wörd");
        assert_eq!(p.headers[0].1.to_str().unwrap(), format!("Basic {expected}"));
        assert!(p.headers[0].1.is_sensitive());
        assert_eq!(p.target.authority.as_str(), "api.example.com:8443");
        assert_eq!(p.target.base_path, "/v1");
        assert!(!format!("{p:?}").contains(&expected));
    }

    #[test]
    fn api_keys_go_to_header_query_and_cookie_verbatim() {
        let key = |parameter: &str, name: &str, location, prefix: Option<&str>| ApiKey {
            parameter: parameter.into(),
            name: name.into(),
            location,
            prefix: prefix.map(Into::into),
        };
        let c = connector(
            Credential::ApiKey {
                keys: vec![
                    key("h", "X-Api-Key", ApiKeyLocation::Header, None),
                    key("q", "api key", ApiKeyLocation::Query, None),
                    key("c", "session", ApiKeyLocation::Cookie, None),
                    key("b", "Authorization", ApiKeyLocation::Header, Some("Bearer ")),
                ],
            },
            vec![],
        );
        let p = run(c, json!({}), &[("h", "Bearer abc"), ("q", "a&b=c/d é"), ("c", "s1"), ("b", "tok")]).unwrap();
        let header = |name: &str| p.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_str().unwrap());
        assert_eq!(header("x-api-key"), Some("Bearer abc"));
        assert_eq!(header("authorization"), Some("Bearer tok"));
        assert_eq!(header("cookie"), Some("session=s1"));
        assert_eq!(p.query, "api%20key=a%26b%3Dc%2Fd%20%C3%A9");
    }

    #[test]
    fn a_header_value_with_a_newline_is_refused_without_echoing_it() {
        let c = connector(
            Credential::ApiKey {
                keys: vec![ApiKey {
                    parameter: "k".into(),
                    name: "X-Key".into(),
                    location: ApiKeyLocation::Header,
                    prefix: None,
                }],
            },
            vec![],
        );
        let error = run(c, json!({}), &[("k", "abc\r\nInjected: 1")]).unwrap_err();
        assert_eq!(error, PrepareError::InvalidHeaderValue("k".into()));
        assert!(!error.to_string().contains("Injected"));
    }

    #[test]
    fn host_template_and_policies_are_rendered_once() {
        let mut c = connector(Credential::None, vec![ConnectionParameter::new("sub", ParameterType::String, "Sub")]);
        c.backend.host_template = Some(Template::new("https://@connectionParameters('sub').example.com/api/"));
        c.policies = vec![
            Policy {
                kind: PolicyKind::SetHeader {
                    name: "X-Tenant".into(),
                    value: Template::new("t-@connectionParameters('sub')"),
                },
                operations: vec![],
            },
            Policy {
                kind: PolicyKind::SetQueryParameter { name: "region".into(), value: Template::new("eu") },
                operations: vec!["OnlyThis".into()],
            },
        ];
        let p = run(c, json!({"sub": "acme"}), &[]).unwrap();
        assert_eq!(p.target.host, "acme.example.com");
        assert_eq!(p.target.authority.as_str(), "acme.example.com");
        assert_eq!(p.target.port, 443);
        assert_eq!(p.target.base_path, "/api");
        assert_eq!(p.headers[0].1.to_str().unwrap(), "t-acme");
        assert_eq!(p.query, "");
        assert_eq!(p.operation_extras.len(), 1);
        assert_eq!(p.operation_extras[0].query, vec![("region".to_owned(), "eu".to_owned())]);
    }

    #[test]
    fn a_host_template_value_cannot_move_the_host() {
        let mut c = connector(Credential::None, vec![]);
        c.backend.host_template = Some(Template::new("https://@connectionParameters('sub').example.com:8443/api"));
        for bad in ["evil.test/x?", "evil.test?", "evil.test#", "user@evil.test", "evil.test\\x"] {
            let error = run(c.clone(), json!({"sub": bad}), &[]).unwrap_err();
            assert_eq!(error, PrepareError::HostNotAllowed("sub".into()), "{bad}");
        }
        let p = run(c.clone(), json!({"sub": "acme"}), &[]).unwrap();
        assert_eq!((p.target.authority.as_str(), p.target.base_path.as_str()), ("acme.example.com:8443", "/api"));

        // Without a scheme the template starts with the authority.
        c.backend.host_template = Some(Template::new("@connectionParameters('sub').example.com"));
        assert_eq!(
            run(c.clone(), json!({"sub": "evil.test/x?"}), &[]).unwrap_err(),
            PrepareError::HostNotAllowed("sub".into())
        );
        // After the authority, a value may hold a slash.
        c.backend.host_template = Some(Template::new("https://api.example.com/@connectionParameters('sub')"));
        assert_eq!(run(c.clone(), json!({"sub": "a/b"}), &[]).unwrap().target.base_path, "/a/b");
        // A template that is a whole URL from a parameter lets it choose the host.
        c.backend.host_template = Some(Template::new("@connectionParameters('url')/api"));
        let p = run(c, json!({"url": "https://tenant.example.org"}), &[]).unwrap();
        assert_eq!((p.target.authority.as_str(), p.target.base_path.as_str()), ("tenant.example.org", "/api"));
    }

    #[test]
    fn only_a_template_that_is_one_parameter_lets_it_choose_the_scheme_and_host() {
        let mut c = connector(Credential::None, vec![]);
        // Found by fuzzing: the value was taken for a whole URL, and chose http and the host.
        c.backend.host_template = Some(Template::new("@connectionParameters('a')i"));
        assert_eq!(run(c.clone(), json!({"a": "http://"}), &[]).unwrap_err(), PrepareError::HostNotAllowed("a".into()));
        c.backend.host_template = Some(Template::new("@connectionParameters('sub').example.com"));
        assert_eq!(
            run(c.clone(), json!({"sub": "https://evil.test#"}), &[]).unwrap_err(),
            PrepareError::HostNotAllowed("sub".into())
        );
        let p = run(c.clone(), json!({"sub": "acme"}), &[]).unwrap();
        assert_eq!((p.target.scheme.as_str(), p.target.authority.as_str()), ("https", "acme.example.com"));
        // A parameter before the path may be a whole URL, with `://` in the query after it.
        c.backend.host_template = Some(Template::new("@connectionParameters('url')/login?next=https://x.example"));
        let p = run(c, json!({"url": "https://tenant.example.org"}), &[]).unwrap();
        assert_eq!(p.target.authority.as_str(), "tenant.example.org");
    }

    #[test]
    fn a_value_in_the_scheme_is_only_a_scheme() {
        let mut c = connector(Credential::None, vec![]);
        c.backend.host_template = Some(Template::new("@connectionParameters('scheme')://api.example.com/v1"));
        assert_eq!(
            run(c.clone(), json!({"scheme": "https://evil.test#"}), &[]).unwrap_err(),
            PrepareError::HostNotAllowed("scheme".into())
        );
        let p = run(c.clone(), json!({"scheme": "http"}), &[]).unwrap();
        assert_eq!((p.target.scheme.as_str(), p.target.authority.as_str()), ("http", "api.example.com"));
        // A `://` after the authority's end is no scheme: the value before it is the host's.
        c.backend.host_template = Some(Template::new("@connectionParameters('sub').example.com/x?u=https://y"));
        assert_eq!(
            run(c, json!({"sub": "https://evil.test#"}), &[]).unwrap_err(),
            PrepareError::HostNotAllowed("sub".into())
        );
    }

    #[test]
    fn an_invalid_backend_is_named_by_its_template_not_its_values() {
        let mut c = connector(Credential::None, vec![]);
        c.backend.host_template = Some(Template::new("@connectionParameters('url')/api"));
        let error = run(c, json!({}), &[("url", "ftp://s3cret-token.example.org")]).unwrap_err();
        assert_eq!(error, PrepareError::InvalidBackend("@connectionParameters('url')/api".into()));
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn oauth_needs_a_token() {
        let c = connector(
            Credential::OAuth2(Box::new(portico_model::OAuth2::new(portico_model::IdentityProvider::new("github")))),
            vec![],
        );
        assert_eq!(run(c, json!({}), &[]).unwrap_err(), PrepareError::NoAccessToken);
    }
}
