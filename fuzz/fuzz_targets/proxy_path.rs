//! The backend request of a call through a connection: `portico_runtime::proxy_request` for
//! `/proxy/{rest}?{query}`, and `operation_request` for a path parameter's value.
//!
//! Input: one byte of options, then the path (`rest`, or the parameter's value), then
//! optionally `?` and the caller's query. Options: bits 0–1 the connector's base path, bit 2
//! an API key the connection sends in the query (`key=…`), bit 3 an operation call instead of
//! a proxied one.
//!
//! Properties: a path that a backend normalising dot-segments (RFC 3986 §5.2.4) would read
//! above the base path — after percent-decoding it any number of times, before or after
//! normalising, with `\` read as `/` or not, with `;` parameters cut or not — is refused; an
//! accepted request's path is the base path, `/` and the path as given (the operation's path
//! with the value in place); the connection's query parameter is the only one of its name, and
//! the caller's query is otherwise kept as it came; a plain path is never refused.

#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{Either, Full};
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode;
use portico_model::Connector;
use portico_runtime::{OperationCall, PreparedConnection, RequestError, operation_request, prepare, proxy_request};
use portico_secrets::SecretString;
use serde_json::{Value, json};

const BASES: [&str; 4] = ["/api/v1", "/api", "", "/v1.2/x"];
const KEY: &str = "key";
const KEY_VALUE: &str = "s3cret";

fuzz_target!(|data: &[u8]| {
    let Some((&options, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let (rest, query) = match text.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (text, None),
    };
    let base = BASES[usize::from(options & 3)];
    let prepared = &connections()[usize::from(options & 7)];
    if options & 8 == 0 {
        check_proxy(prepared, base, rest, query);
    } else {
        check_operation(prepared, base, rest);
    }
});

fn check_proxy(prepared: &PreparedConnection, base: &str, rest: &str, query: Option<&str>) {
    let body = Either::Right(Full::new(Bytes::new()));
    let result = proxy_request(prepared, Method::GET, rest, query, HeaderMap::new(), body);
    let request = match result {
        Ok(request) => request,
        Err(error) => {
            let plain = |text: &str, extra: &[u8]| {
                text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_~".contains(&b) || extra.contains(&b))
            };
            assert!(
                !(plain(rest, b"/") && query.is_none_or(|q| plain(q, b"=&"))),
                "a plain path was refused ({error}): {rest:?} {query:?}"
            );
            return;
        }
    };
    let uri = request.uri();
    let expected = format!("{base}/{}", rest.trim_start_matches('/'));
    assert_eq!(uri.path(), expected, "the path is not the one asked for");
    assert!(!escapes(uri.path(), base), "{rest:?} climbs above {base:?} as {}", uri.path());
    let caller = query.unwrap_or("");
    let sent = uri.query().unwrap_or("");
    if prepared.query.is_empty() {
        assert_eq!(sent, caller, "the caller's query was changed");
    } else {
        let pairs: Vec<&str> = sent.split('&').collect();
        let ours: Vec<usize> = (0..pairs.len()).filter(|&i| name(pairs[i]) == KEY).collect();
        assert_eq!(ours, [pairs.len() - 1], "the connection's parameter is not the only '{KEY}': {sent:?}");
        assert_eq!(pairs[pairs.len() - 1], prepared.query);
    }
}

fn check_operation(prepared: &PreparedConnection, base: &str, value: &str) {
    let parameters = [("id".to_owned(), Value::String(value.to_owned()))].into_iter().collect();
    let call = OperationCall { parameters, body: None };
    let request = match operation_request(prepared, "GetItem", call) {
        Ok(request) => request,
        Err(RequestError::Parameters(errors)) => {
            assert!(errors.iter().all(|(name, _)| name == "id"), "{errors:?}");
            let plain = value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_~".contains(&b));
            assert!(!plain || value.is_empty(), "a plain value was refused: {value:?}");
            return;
        }
        Err(error) => panic!("{error} for {value:?}"),
    };
    let path = request.uri().path();
    let prefix = format!("{base}/items/");
    assert!(path.starts_with(&prefix) && path.ends_with("/detail"), "{path}");
    assert!(!escapes(path, &format!("{base}/items")), "{value:?} climbs as {path}");
}

/// The decoded name of a query pair, as a form decoder reads it.
fn name(pair: &str) -> String {
    let name = pair.split_once('=').map_or(pair, |(name, _)| name).replace('+', " ");
    percent_decode(name.as_bytes()).decode_utf8_lossy().into_owned()
}

/// Whether some backend would read `path` above `base`.
fn escapes(path: &str, base: &str) -> bool {
    let base: Vec<&[u8]> = base.as_bytes().split(|b| *b == b'/').filter(|s| !s.is_empty()).collect();
    let mut decodings = vec![path.as_bytes().to_vec()];
    while decodings.len() < 16 {
        let last = decodings.last().expect("one");
        let next: Vec<u8> = percent_decode(last).collect();
        if &next == last {
            break;
        }
        decodings.push(next);
    }
    for backslash in [false, true] {
        for semicolon in [false, true] {
            let normalise = |bytes: &[u8]| normalise(bytes, backslash, semicolon);
            let outside = |segments: &[Vec<u8>]| {
                segments.len() < base.len() || segments.iter().zip(&base).any(|(s, b)| s.as_slice() != *b)
            };
            for decoded in &decodings {
                if outside(&normalise(decoded)) {
                    return true;
                }
            }
            // Normalised first, then decoded (any number of times) and normalised again.
            let mut once = join(&normalise(path.as_bytes()));
            for _ in 0..16 {
                let next: Vec<u8> = percent_decode(&once).collect();
                if next == once {
                    break;
                }
                if outside(&normalise(&next)) {
                    return true;
                }
                once = next;
            }
        }
    }
    false
}

/// RFC 3986 §5.2.4 on an absolute path, as segments; `..` at the root stays at the root.
fn normalise(path: &[u8], backslash: bool, semicolon: bool) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let separator = |b: &u8| *b == b'/' || (backslash && *b == b'\\');
    for segment in path.split(separator).skip(1) {
        let segment = if semicolon { segment.split(|b| *b == b';').next().unwrap_or(segment) } else { segment };
        match segment {
            b"." => {}
            b".." => {
                out.pop();
            }
            other => out.push(other.to_vec()),
        }
    }
    out
}

fn join(segments: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for segment in segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    out
}

/// The connections the option bits 0–2 choose, prepared once.
fn connections() -> &'static [PreparedConnection] {
    static CONNECTIONS: OnceLock<Vec<PreparedConnection>> = OnceLock::new();
    CONNECTIONS.get_or_init(|| (0..8).map(|i| prepared(BASES[i & 3], i & 4 != 0)).collect())
}

/// A connection to `https://api.example.com{base}`, with an API key in the query or none, and
/// one operation `GET /items/{id}/detail`.
fn prepared(base: &str, key_in_query: bool) -> PreparedConnection {
    let credential = if key_in_query {
        json!({"kind": "apiKey", "keys": [{"parameter": "k", "name": KEY, "in": "query"}]})
    } else {
        json!({"kind": "none"})
    };
    let connector: Connector = serde_json::from_value(json!({
        "metadata": {"name": "fuzz", "displayName": "Fuzz"},
        "backend": {"scheme": "https", "host": "api.example.com", "basePath": if base.is_empty() { "/" } else { base }},
        "operations": [{
            "id": "GetItem", "method": "GET", "path": "/items/{id}/detail",
            "parameters": [{"name": "id", "in": "path", "required": true, "type": "string"}]
        }],
        "connection": {"mode": "single", "parameters": [], "credential": credential}
    }))
    .expect("a connector");
    let secret: BTreeMap<String, SecretString> = [("k".to_owned(), SecretString::from(KEY_VALUE))].into();
    let prepared = prepare("t", "c", "k", Arc::new(connector), None, &BTreeMap::new(), &secret, None, Arc::default())
        .expect("a prepared connection");
    assert_eq!(prepared.target.base_path, base);
    prepared
}
