//! Building the request that goes to the backend.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{Either, Full};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use portico_model::ParameterLocation;
use serde_json::{Map, Value};

use crate::PreparedConnection;
use crate::prepare::encode_query;
use crate::upstream::OutBody;

/// Characters escaped in a path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%')
    .add(b'^')
    .add(b'|')
    .add(b'\\')
    .add(b'[')
    .add(b']');

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("'..' is not allowed in a proxied path")]
    PathTraversal,
    #[error("the path or query is not valid")]
    InvalidUri,
    #[error("no operation '{0}' in this connector")]
    UnknownOperation(String),
    /// Each entry: the parameter and what is wrong with it.
    #[error("invalid operation parameters")]
    Parameters(Vec<(String, String)>),
}

/// The backend request for `/proxy/{rest}`: the caller's method, path, query, headers and
/// body, minus the caller's `Authorization` and hop-by-hop headers, plus the connection's
/// credential.
pub fn proxy_request(
    prepared: &PreparedConnection,
    method: Method,
    rest: &str,
    query: Option<&str>,
    mut headers: HeaderMap,
    body: OutBody,
) -> Result<Request<OutBody>, RequestError> {
    if climbs(rest) {
        return Err(RequestError::PathTraversal);
    }
    let target = &prepared.target;
    let mut path_and_query = String::with_capacity(target.base_path.len() + rest.len() + 2 + prepared.query.len());
    path_and_query.push_str(&target.base_path);
    path_and_query.push('/');
    path_and_query.push_str(rest.trim_start_matches('/'));
    let path_len = path_and_query.len();
    let callers = without_parameters(query.unwrap_or(""), &prepared.query);
    for (i, part) in [&*callers, &prepared.query].into_iter().filter(|q| !q.is_empty()).enumerate() {
        path_and_query.push(if i == 0 { '?' } else { '&' });
        path_and_query.push_str(part);
    }
    let lengths = (path_len, path_and_query.len());
    let uri = Uri::try_from(path_and_query).map_err(|_| RequestError::InvalidUri)?;
    // `rest` is a path and `query` a query, as the server's parser split them: a `?` in the one
    // or a `#` in either would move a part of the call into the query or cut it off, the
    // connection's own parameters with it.
    if (uri.path().len(), uri.path_and_query().map_or(0, |p| p.as_str().len())) != lengths {
        return Err(RequestError::InvalidUri);
    }
    crate::strip_hop_by_hop(&mut headers);
    headers.remove(AUTHORIZATION);
    apply(prepared, &mut headers, &prepared.headers);
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Whether a segment of `rest` reads as `..` to some backend (see [`segment_climbs`]).
fn climbs(rest: &str) -> bool {
    // Most paths hold none of the bytes that could spell it: one scan settles them.
    if !rest.bytes().any(suspect) {
        return false;
    }
    rest.split('/').any(segment_climbs)
}

/// Bytes without which no spelling of `..` can be made.
fn suspect(b: u8) -> bool {
    b == b'.' || b == b'%' || b >= 0x80
}

/// How many times a segment is decoded before it is judged: a backend, or a proxy in front of
/// it, may decode more than once. A segment still encoded after that is refused.
const DECODINGS: usize = 3;

/// Whether `segment` reads as `..` to a backend that decodes before it normalises: once
/// percent-decoded (up to [`DECODINGS`] times: `%2e%2e`, `%252e%252e`), split at decoded
/// slashes and backslashes (`..%2f..%2f`, `..%5c`), with a `;` path parameter cut off (`..;x`)
/// and trailing spaces trimmed (`.. `), with the other spellings of a dot read as one
/// (overlong UTF-8 `%c0%ae`, `%u002e`, the fullwidth and leader dots), any part that is `..`.
pub(crate) fn segment_climbs(segment: &str) -> bool {
    if !segment.bytes().any(suspect) {
        return false;
    }
    let mut bytes = segment.as_bytes().to_vec();
    let mut settled = false;
    for _ in 0..=DECODINGS {
        let decoded: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
        if decoded == bytes {
            settled = true;
            break;
        }
        bytes = decoded;
    }
    if !settled {
        return true;
    }
    let bytes = dots_read_as_dots(&bytes);
    bytes.split(|b| *b == b'/' || *b == b'\\').any(|part| {
        let part = part.split(|b| *b == b';').next().unwrap_or(part);
        let end = part.iter().rposition(|b| *b != b' ').map_or(0, |i| i + 1);
        let part = &part[..end];
        part == b".."
    })
}

/// `bytes` with every other spelling of a dot that some server decodes as one made a dot.
fn dots_read_as_dots(bytes: &[u8]) -> Vec<u8> {
    const SPELLINGS: [&[u8]; 6] = [
        b"\xc0\xae",     // overlong UTF-8
        b"\xe0\x80\xae", // overlong UTF-8
        b"\xef\xbc\x8e", // U+FF0E FULLWIDTH FULL STOP
        b"\xe2\x80\xa4", // U+2024 ONE DOT LEADER
        b"%u002e",       // IIS
        b"%uff0e",       // IIS
    ];
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    'bytes: while i < bytes.len() {
        for spelling in SPELLINGS {
            let end = i + spelling.len();
            if end <= bytes.len() && bytes[i..end].eq_ignore_ascii_case(spelling) {
                out.push(b'.');
                i = end;
                continue 'bytes;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The caller's `query` without the parameters the connection sets (`set`, encoded): as with
/// headers, the connection's value replaces the caller's rather than being sent beside it.
fn without_parameters<'a>(query: &'a str, set: &str) -> Cow<'a, str> {
    if query.is_empty() || set.is_empty() {
        return Cow::Borrowed(query);
    }
    let names: Vec<Cow<'_, str>> = set.split('&').map(parameter_name).collect();
    let ours = |pair: &&str| names.contains(&parameter_name(pair));
    if !query.split('&').any(|pair| ours(&pair)) {
        return Cow::Borrowed(query);
    }
    Cow::Owned(query.split('&').filter(|pair| !ours(pair)).collect::<Vec<_>>().join("&"))
}

/// The decoded name of a `name=value` pair (`+` read as a space, as forms send it).
fn parameter_name(pair: &str) -> Cow<'_, str> {
    let name = pair.split_once('=').map_or(pair, |(name, _)| name);
    if name.contains(['%', '+']) {
        Cow::Owned(percent_decode_str(&name.replace('+', " ")).decode_utf8_lossy().into_owned())
    } else {
        Cow::Borrowed(name)
    }
}

fn append_query(out: &mut String, query: &str) {
    if query.is_empty() {
        return;
    }
    out.push(if out.contains('?') { '&' } else { '?' });
    out.push_str(query);
}

/// Sets `Host` and the connection's headers (replacing any of the caller's of the same name).
fn apply(prepared: &PreparedConnection, headers: &mut HeaderMap, extra: &[(HeaderName, HeaderValue)]) {
    headers.insert(HOST, prepared.target.host_header.clone());
    for (name, value) in extra {
        headers.insert(name.clone(), value.clone());
    }
}

/// An operation call: parameter values by name and an optional body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationCall {
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub body: Option<Value>,
}

/// The backend request for one of the connector's operations.
pub fn operation_request(
    prepared: &PreparedConnection,
    operation_id: &str,
    call: OperationCall,
) -> Result<Request<OutBody>, RequestError> {
    let operation = prepared
        .connector
        .operation(operation_id)
        .ok_or_else(|| RequestError::UnknownOperation(operation_id.to_owned()))?;
    let mut errors = Vec::new();
    for name in call.parameters.keys() {
        if !operation.parameters.iter().any(|p| &p.name == name) {
            errors.push((name.clone(), "is not a parameter of this operation".to_owned()));
        }
    }
    let mut path = operation.path.clone();
    let mut query: Vec<(String, String)> = Vec::new();
    let mut headers = HeaderMap::new();
    let mut body: Option<(Bytes, &'static str)> = None;
    let mut form: Vec<(String, String)> = Vec::new();
    for parameter in &operation.parameters {
        let given = call.parameters.get(&parameter.name).filter(|v| !v.is_null());
        let value = match (given, &parameter.default) {
            (Some(v), _) => v.clone(),
            (None, Some(default)) if parameter.location != ParameterLocation::Body => default.clone(),
            (None, _) if parameter.location == ParameterLocation::Body && call.body.is_some() => {
                call.body.clone().unwrap_or_default()
            }
            (None, _) => {
                if parameter.required {
                    errors.push((parameter.name.clone(), "is required".to_owned()));
                }
                continue;
            }
        };
        match parameter.location {
            ParameterLocation::Path => {
                let text = scalar(&value);
                let encoded: String = utf8_percent_encode(&text, SEGMENT).collect();
                // `/` and `%` are encoded, but a backend that decodes the path (once or more)
                // before normalising it would still climb with `..`, `%2e%2e` and the like.
                if segment_climbs(&encoded) {
                    errors.push((parameter.name.clone(), "cannot be '..' or another spelling of it".to_owned()));
                    continue;
                }
                path = path.replace(&format!("{{{}}}", parameter.name), &encoded);
            }
            ParameterLocation::Query => match &value {
                Value::Array(items) => query.extend(items.iter().map(|i| (parameter.name.clone(), scalar(i)))),
                other => query.push((parameter.name.clone(), scalar(other))),
            },
            ParameterLocation::Header => {
                match (HeaderName::from_bytes(parameter.name.as_bytes()), HeaderValue::from_str(&scalar(&value))) {
                    _ if portico_model::header_name_problem(&parameter.name).is_some() => errors
                        .push((parameter.name.clone(), "is a header Portico does not let a caller set".to_owned())),
                    (Ok(name), Ok(v)) => {
                        headers.insert(name, v);
                    }
                    _ => errors.push((parameter.name.clone(), "cannot be sent as a header".to_owned())),
                }
            }
            ParameterLocation::Body => {
                body = Some((Bytes::from(serde_json::to_vec(&value).unwrap_or_default()), "application/json"));
            }
            ParameterLocation::FormData => form.push((parameter.name.clone(), scalar(&value))),
            ParameterLocation::Cookie => {
                errors.push((parameter.name.clone(), "cookie parameters are not supported".to_owned()))
            }
        }
    }
    if body.is_none()
        && call.body.is_some()
        && !operation.parameters.iter().any(|p| p.location == ParameterLocation::Body)
    {
        errors.push(("body".to_owned(), "this operation takes no body".to_owned()));
    }
    if !errors.is_empty() {
        return Err(RequestError::Parameters(errors));
    }
    if !form.is_empty() {
        body = Some((Bytes::from(encode_query(&form)), "application/x-www-form-urlencoded"));
    }
    let mut extra_headers = prepared.headers.clone();
    let mut extra_query = prepared.query.clone();
    for extras in prepared.operation_extras.iter().filter(|e| e.operations.iter().any(|o| o == operation_id)) {
        for (name, value) in &extras.headers {
            extra_headers.retain(|(n, _)| n != name);
            extra_headers.push((name.clone(), value.clone()));
        }
        let encoded = encode_query(&extras.query);
        if !encoded.is_empty() {
            if !extra_query.is_empty() {
                extra_query.push('&');
            }
            extra_query.push_str(&encoded);
        }
    }
    let mut path_and_query = format!("{}{}", prepared.target.base_path, ensure_slash(&path));
    append_query(&mut path_and_query, &encode_query(&query));
    append_query(&mut path_and_query, &extra_query);
    let uri = Uri::try_from(path_and_query).map_err(|_| RequestError::InvalidUri)?;
    let method = Method::from_bytes(operation.method.as_bytes()).map_err(|_| RequestError::InvalidUri)?;
    apply(prepared, &mut headers, &extra_headers);
    let (bytes, content_type) = body.unwrap_or((Bytes::new(), ""));
    if !content_type.is_empty() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    let mut request = Request::new(Either::Right(Full::new(bytes)));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

fn ensure_slash(path: &str) -> String {
    if path.starts_with('/') { path.to_owned() } else { format!("/{path}") }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_climbs_in_any_spelling() {
        for rest in
            ["/..", "/a/../b", "/a/%2e%2e/b", "/a/.%2E/b", "/a/%2e./b", "/a/..%2f..%2fx", "/a/..%5Cx", "/a/..\\x"]
        {
            assert!(climbs(rest), "{rest}");
        }
        for rest in [
            "/a/%252e%252e/b",
            "/a/%25252e%25252e/b",
            "/a/%2525252e%2525252e/b",
            "/a/..;jsessionid=1/b",
            "/a/%2e%2e%3bx/b",
            "/a/.. /b",
            "/a/%2e%2e%20/b",
            "/a/%c0%ae%c0%ae/b",
            "/a/%C0%AE./b",
            "/a/%e0%80%ae%e0%80%ae/b",
            "/a/%u002e%u002e/b",
            "/a/%U002E./b",
            "/a/\u{ff0e}\u{ff0e}/b",
            "/a/%ef%bc%8e%ef%bc%8e/b",
            "/a/\u{2024}./b",
            "/a/x%255c..%255cy",
        ] {
            assert!(climbs(rest), "{rest}");
        }
        for rest in ["", "/", "/a..b", "/.well-known/x", "/a/.../b", "/a/./b", "/%2e/b", "/a%2fb", "/v1.2"] {
            assert!(!climbs(rest), "{rest}");
        }
    }

    #[test]
    fn a_path_parameter_cannot_climb_in_any_spelling() {
        for value in ["..", "%2e%2e", ".%2E", "..;x", ".. ", "\u{ff0e}\u{ff0e}", "%c0%ae%c0%ae", "../etc", "..\\x"] {
            let encoded: String = utf8_percent_encode(value, SEGMENT).collect();
            assert!(segment_climbs(&encoded), "{value:?} as {encoded}");
        }
        for value in [".", "...", "a..b", "v1.2", "%", "50%", "a b", "naïve"] {
            let encoded: String = utf8_percent_encode(value, SEGMENT).collect();
            assert!(!segment_climbs(&encoded), "{value:?} as {encoded}");
        }
    }

    fn connection_with_a_key_in_the_query() -> PreparedConnection {
        let connector: portico_model::Connector = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "displayName": "C"},
            "backend": {"host": "api.example.com", "basePath": "/api/v1"},
            "connection": {"mode": "single", "credential":
                {"kind": "apiKey", "keys": [{"parameter": "k", "name": "key", "in": "query"}]}}
        }))
        .unwrap();
        let secret = [("k".to_owned(), portico_secrets::SecretString::from("s3cret"))].into();
        let public = Default::default();
        crate::prepare("t", "c", "k", std::sync::Arc::new(connector), None, &public, &secret, None, Default::default())
            .unwrap()
    }

    fn proxied(prepared: &PreparedConnection, rest: &str, query: Option<&str>) -> Result<String, RequestError> {
        let body = Either::Right(Full::new(Bytes::new()));
        proxy_request(prepared, Method::GET, rest, query, HeaderMap::new(), body).map(|r| r.uri().to_string())
    }

    #[test]
    fn a_question_mark_or_hash_cannot_move_or_cut_off_part_of_a_call() {
        let prepared = connection_with_a_key_in_the_query();
        assert_eq!(proxied(&prepared, "/a/b", Some("x=1")).unwrap(), "/api/v1/a/b?x=1&key=s3cret");
        // Found by fuzzing: the path ended at the `#`, and the connection's key went with the rest.
        assert_eq!(proxied(&prepared, "a/%2#2e%252e/b", None), Err(RequestError::InvalidUri));
        // The caller's own `key` would have reached the backend beside the connection's.
        assert_eq!(proxied(&prepared, "a?key=mine", None), Err(RequestError::InvalidUri));
        assert_eq!(proxied(&prepared, "a", Some("x=1#")), Err(RequestError::InvalidUri));
    }

    #[test]
    fn the_connections_query_parameters_replace_the_callers() {
        assert_eq!(without_parameters("key=c&other=1", "key=s"), "other=1");
        assert_eq!(without_parameters("a=1&k%65y=c&key+x=2", "key=s&key%20x=t"), "a=1");
        assert_eq!(without_parameters("KEY=1&key", "key=s"), "KEY=1", "names are case-sensitive");
        assert!(matches!(without_parameters("a=1", "key=s"), Cow::Borrowed("a=1")));
        assert!(matches!(without_parameters("key=1", ""), Cow::Borrowed("key=1")));
    }
}
