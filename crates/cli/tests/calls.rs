//! Calls through connections, end to end: the real `portico` binary between a client and a
//! backend in this process that records every request it receives (`common::backend`).
//!
//! Each test asserts what the backend received, exactly, and what the caller got back.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::backend::{self, Backend, Recorded};
use common::{MISSING_ID, Portico, Reply, distinctive, fixture};
use http_body_util::BodyExt as _;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every test server may call backends on loopback (the recording backend is one).
const PRIVATE: &str = "--allow-private-backends";

/// The caller's own headers on a proxied call: one that must reach the backend, and
/// hop-by-hop ones (named by `Connection` or by RFC 9110) that must not.
const CALLER_HEADERS: &[(&str, &str)] = &[
    ("X-Caller", "caller-value"),
    ("Connection", "x-caller-hop"),
    ("X-Caller-Hop", "1"),
    ("Keep-Alive", "timeout=5"),
    ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
    ("TE", "trailers"),
];
/// The caller's query on a proxied call.
const CALLER_QUERY: &str = "x=1&y=two%20words";

/// A client of Portico with one API key that never follows redirects.
struct Caller {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Caller {
    fn new(portico: &Portico, key: &str) -> Caller {
        let http = common::client_builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(15))
            .build()
            .expect("an HTTP client");
        Caller { http, base: portico.base.clone(), key: key.to_owned() }
    }

    fn admin(portico: &Portico) -> Caller {
        Caller::new(portico, &portico.admin_key)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key)
    }

    async fn send(&self, request: RequestBuilder) -> Reply {
        let response = request.send().await.expect("portico answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable body");
        Reply { status, headers, text }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    /// `POST …/operations/{operation}` with `body`.
    async fn operation(&self, connection: &str, operation: &str, body: Value) -> Reply {
        self.send(
            self.request(Method::POST, &format!("/v1/connections/{connection}/operations/{operation}")).json(&body),
        )
        .await
    }

    /// `POST …/test`.
    async fn test(&self, connection: &str) -> Reply {
        self.send(self.request(Method::POST, &format!("/v1/connections/{connection}/test"))).await
    }

    /// A proxied `GET {rest}?x=1&y=two%20words` with the caller's headers.
    async fn proxied_get(&self, connection: &str, rest: &str) -> Reply {
        let mut request = self.request(Method::GET, &format!("{}?{CALLER_QUERY}", proxy(connection, rest)));
        for (name, value) in CALLER_HEADERS {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }
}

fn proxy(connection: &str, rest: &str) -> String {
    format!("/v1/connections/{connection}/proxy{rest}")
}

/// A definition under `fixtures/calls/` with its backend at `host`.
fn definition(file: &str, host: &str) -> Value {
    let mut definition = fixture::json(&format!("calls/{file}"));
    definition["backend"]["host"] = json!(host);
    json!({"definition": definition})
}

/// Creates a connector from `body` and a connection with `parameters`: their ids.
async fn connect(caller: &Caller, body: &Value, parameters: Value) -> (String, String) {
    let connector = caller.send(caller.request(Method::POST, "/v1/connectors").json(body)).await.expect_json(201);
    let connection = caller
        .send(
            caller
                .request(Method::POST, "/v1/connections")
                .json(&json!({"connectorId": connector["id"], "parameters": parameters})),
        )
        .await
        .expect_json(201);
    assert_eq!(connection["status"], "connected", "{connection}");
    (id(&connector), id(&connection))
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// Portico, a recording backend, and a connection of the `file` connector to it.
async fn setup(file: &str, parameters: Value) -> (Portico, Backend, Caller, String) {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE]);
    let caller = Caller::admin(&portico);
    let (_, connection) = connect(&caller, &definition(file, &backend.authority()), parameters).await;
    (portico, backend, caller, connection)
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().expect("the bound address").port()
}

/// What a proxied GET (see [`Caller::proxied_get`]) must deliver: the method, the path under
/// the base path, the caller's query then `credential_query`, `Host` of the backend, the
/// caller's own header, and `credential` headers; no other header, no hop-by-hop header, and
/// never the caller's Portico key.
#[track_caller]
fn assert_proxied_get(
    got: &Recorded,
    backend: &Backend,
    path: &str,
    credential: &[(&str, &str)],
    credential_query: &[(&str, &str)],
) {
    assert_eq!(got.method, "GET");
    assert_eq!(got.path, path);
    let mut expected_query = vec![("x".to_owned(), "1".to_owned()), ("y".to_owned(), "two words".to_owned())];
    expected_query.extend(credential_query.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())));
    assert_eq!(got.query_pairs(), expected_query, "the query: {:?}", got.query);
    assert!(got.query.as_deref().unwrap_or("").starts_with(CALLER_QUERY), "the caller's query as sent: {got:?}");
    let mut expected: Vec<(String, String)> = vec![
        ("accept".to_owned(), "*/*".to_owned()),
        ("host".to_owned(), backend.authority()),
        ("x-caller".to_owned(), "caller-value".to_owned()),
    ];
    expected.extend(credential.iter().map(|(n, v)| (n.to_ascii_lowercase(), (*v).to_owned())));
    expected.sort();
    let mut received = got.headers.clone();
    received.sort();
    assert_eq!(received, expected, "exactly these headers reach the backend");
    assert!(got.body.is_empty());
}

/// No request the backend saw carries the caller's Portico key anywhere.
#[track_caller]
fn assert_no_portico_key(requests: &[Recorded], key: &str) {
    for request in requests {
        let text = format!("{} {:?} {:?} {}", request.path, request.query, request.headers, request.body_text());
        assert!(!text.contains(key), "the Portico key reached the backend: {request:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials: each kind reaches the backend exactly as declared, and nothing else of Portico's.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_header_is_sent_verbatim_and_replaces_the_callers() {
    // Typed by the user with a scheme of its own: sent as it is, not prefixed again.
    let key = format!("Bearer {}", distinctive("xyz-"));
    let (portico, backend, caller, connection) = setup("api-key-header.json", json!({"api_key": key})).await;

    let reply = caller.proxied_get(&connection, "/things/1").await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "ok"));
    assert_proxied_get(&backend.take_one(), &backend, "/api/things/1", &[("X-Api-Key", &key)], &[]);

    // The caller cannot send a key of its own under the credential's name.
    let request = caller.request(Method::GET, &proxy(&connection, "/ok")).header("X-Api-Key", "spoofed-by-caller");
    assert_eq!(caller.send(request).await.status, 200);
    assert_eq!(backend.take_one().header_all("x-api-key"), [key.as_str()]);

    // Operation calls carry it too.
    let reply = caller.operation(&connection, "Ping", json!({})).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "ok"));
    let got = backend.take_one();
    assert_eq!((got.method.as_str(), got.path.as_str(), got.query.as_deref()), ("GET", "/api/ok", None));
    assert_eq!(got.header_names(), ["host", "x-api-key"]);
    assert_eq!(got.header("x-api-key"), Some(key.as_str()));

    assert_no_portico_key(&backend.requests(), &portico.admin_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_in_the_query_is_percent_encoded_and_decodes_to_the_value() {
    let key = format!("a&b=c d/e+f?g#h%i é€😀-{}", distinctive(""));
    let (portico, backend, caller, connection) = setup("api-key-query.json", json!({"api_key": key})).await;

    let reply = caller.proxied_get(&connection, "/things/1").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = backend.take_one();
    assert_proxied_get(&got, &backend, "/api/things/1", &[], &[("key", &key)]);
    let raw = got.query.as_deref().unwrap();
    let encoded = raw.strip_prefix(&format!("{CALLER_QUERY}&key=")).expect("the key after the caller's query");
    assert!(
        encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"%-._~".contains(&b)),
        "every reserved and non-ASCII character is percent-encoded: {encoded}"
    );

    // With an operation: its own query parameter first, then the key.
    let reply = caller.operation(&connection, "Ping", json!({"parameters": {"page": 2}})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = backend.take_one();
    assert_eq!(got.path, "/api/ok");
    assert_eq!(got.query_pairs(), [("page".to_owned(), "2".to_owned()), ("key".to_owned(), key.clone())]);
    assert_eq!(got.header_names(), ["host"]);

    assert_no_portico_key(&backend.requests(), &portico.admin_key);
}

/// The credential's query parameter is the connection's, as its header would be: one the
/// caller sends under the same name does not reach the backend beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_cannot_add_a_query_parameter_under_the_keys_name() {
    let key = distinctive("k-");
    let (_portico, backend, caller, connection) = setup("api-key-query.json", json!({"api_key": key})).await;

    for query in ["key=caller&other=1", "other=1&KEY=kept&key=caller", "k%65y=caller&other=1", "key&other=1"] {
        let reply = caller.get(&format!("{}?{query}", proxy(&connection, "/ok"))).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let pairs = backend.take_one().query_pairs();
        let keys: Vec<&str> = pairs.iter().filter(|(n, _)| n == "key").map(|(_, v)| v.as_str()).collect();
        assert_eq!(keys, [key.as_str()], "only the connection's key for ?{query}: {pairs:?}");
        assert!(pairs.contains(&("other".to_owned(), "1".to_owned())), "the rest of the query stays: {pairs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_sends_base64_of_username_colon_password() {
    let password = format!("p:ss w:rd-{}", distinctive(""));
    let (portico, backend, caller, connection) =
        setup("basic.json", json!({"username": "alice@example.com", "password": password})).await;

    let reply = caller.proxied_get(&connection, "/things/1").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("alice@example.com:{password}"));
    let expected = format!("Basic {encoded}");
    let got = backend.take_one();
    assert_proxied_get(&got, &backend, "/api/things/1", &[("Authorization", &expected)], &[]);

    assert_no_portico_key(&backend.requests(), &portico.admin_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_style_key_replaces_the_callers_authorization() {
    let token = distinctive("tok-");
    let (portico, backend, caller, connection) = setup("bearer.json", json!({"token": token})).await;

    let reply = caller.proxied_get(&connection, "/things/1").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let expected = format!("Bearer {token}");
    assert_proxied_get(&backend.take_one(), &backend, "/api/things/1", &[("Authorization", &expected)], &[]);

    assert_no_portico_key(&backend.requests(), &portico.admin_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_authentication_only_the_callers_headers_arrive() {
    let (portico, backend, caller, connection) = setup("none.json", json!({})).await;

    let reply = caller.proxied_get(&connection, "/things/1").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_proxied_get(&backend.take_one(), &backend, "/api/things/1", &[], &[]);

    // The proxy path may be empty: the base path itself.
    assert_eq!(caller.get(&proxy(&connection, "")).await.status, 200);
    assert_eq!(backend.take_one().path, "/api/");

    assert_no_portico_key(&backend.requests(), &portico.admin_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_place_connection_parameters_in_a_header_and_the_query() {
    let secret = distinctive("s-");
    let region = "eu-west/1 &x=y é";
    let (portico, backend, caller, connection) =
        setup("policies.json", json!({"tenant": "acme corp", "region": region, "secret": secret})).await;

    let reply = caller.proxied_get(&connection, "/things/1").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let signature = format!("sig={secret}");
    assert_proxied_get(
        &backend.take_one(),
        &backend,
        "/api/things/1",
        &[("X-Tenant", "acme corp"), ("X-Signature", &signature)],
        &[("region", region)],
    );

    // A policy's header replaces the caller's of the same name.
    let request = caller.request(Method::GET, &proxy(&connection, "/ok")).header("X-Tenant", "spoofed");
    assert_eq!(caller.send(request).await.status, 200);
    assert_eq!(backend.take_one().header_all("x-tenant"), ["acme corp"]);

    assert_no_portico_key(&backend.requests(), &portico.admin_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_template_chooses_the_backend_from_the_connection() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE]);
    let caller = Caller::admin(&portico);
    let body = json!({"definition": fixture::json("calls/host-template.json")});
    let (_, connection) = connect(&caller, &body, json!({"port": backend.port().to_string(), "tenant": "t1"})).await;

    let reply = caller.proxied_get(&connection, "/things/1").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_proxied_get(&backend.take_one(), &backend, "/tenants/t1/things/1", &[], &[]);
    assert_no_portico_key(&backend.requests(), &portico.admin_key);
}

/// A connection parameter fills in a part of the host; it cannot replace the host (or the
/// port) the connector's template fixes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_template_value_cannot_move_the_call_to_another_host() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE]);
    let caller = Caller::admin(&portico);
    let port = backend.port();
    let mut definition = fixture::json("calls/host-template.json");
    definition["backend"]["hostTemplate"] =
        json!(format!("http://@connectionParameters('tenant').example.invalid:{port}/api"));
    let body = json!({"definition": definition});
    for tenant in [
        format!("127.0.0.1:{port}/escape?"),
        format!("127.0.0.1:{port}/escape#"),
        format!("127.0.0.1:{port}\\escape"),
        "user@127.0.0.1".to_owned(),
    ] {
        let (_, connection) = connect(&caller, &body, json!({"port": "0", "tenant": tenant})).await;
        let reply = caller.get(&proxy(&connection, "/ok")).await;
        assert_ne!(reply.status, 200, "{tenant}: {}", reply.text);
        reply.expect_problem(403, "backend-not-allowed");
    }
    assert_eq!(backend.requests().len(), 0, "nothing reached the backend: {:#?}", backend.requests());
    assert_eq!(backend.connections(), 0);
}

// ---------------------------------------------------------------------------------------------
// The proxy: what the caller sends goes through; what the backend answers comes back.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_passes_method_path_query_and_body_through() {
    let (_portico, backend, caller, connection) = setup("api-key-header.json", json!({"api_key": "k-1"})).await;

    let json_body = r#"{"name":"widget","tags":["a","b"],"price":1.5}"#;
    let request = caller
        .request(Method::POST, &format!("{}?dry=1&tag=a%2Fb", proxy(&connection, "/items")))
        .header("content-type", "application/json")
        .body(json_body);
    let reply = caller.send(request).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = backend.take_one();
    assert_eq!((got.method.as_str(), got.path.as_str()), ("POST", "/api/items"));
    assert_eq!(got.query.as_deref(), Some("dry=1&tag=a%2Fb"), "the caller's query as sent");
    assert_eq!(got.body_text(), json_body);
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("content-length"), Some(json_body.len().to_string().as_str()));
    assert_eq!(got.header("x-api-key"), Some("k-1"));
    assert_eq!(got.header_names(), ["accept", "content-length", "content-type", "host", "x-api-key"]);

    let binary: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let request = caller
        .request(Method::PUT, &proxy(&connection, "/items/7/blob"))
        .header("content-type", "application/octet-stream")
        .body(binary.clone());
    assert_eq!(caller.send(request).await.status, 200);
    let got = backend.take_one();
    assert_eq!((got.method.as_str(), got.path.as_str(), got.query.as_deref()), ("PUT", "/api/items/7/blob", None));
    assert!(got.body == binary, "the body arrives byte for byte");

    for method in [Method::DELETE, Method::PATCH, Method::OPTIONS, Method::HEAD] {
        let reply = caller.send(caller.request(method.clone(), &proxy(&connection, "/items/7"))).await;
        assert_eq!(reply.status, 200, "{method}");
        let got = backend.take_one();
        assert_eq!((got.method.as_str(), got.path.as_str()), (method.as_str(), "/api/items/7"));
    }

    // Path characters the caller encoded stay encoded.
    assert_eq!(caller.get(&proxy(&connection, "/a%20b/c%2Fd/%C3%A9")).await.status, 200);
    assert_eq!(backend.take_one().path, "/api/a%20b/c%2Fd/%C3%A9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_relays_the_backends_answer_minus_hop_by_hop_headers() {
    let (_portico, backend, caller, connection) = setup("none.json", json!({})).await;

    for status in [200u16, 201, 400, 404, 409, 500, 503] {
        let reply = caller.get(&proxy(&connection, &format!("/status/{status}"))).await;
        assert_eq!(reply.status, status);
        assert_eq!(reply.text, format!("{{\"status\":{status},\"from\":\"backend\"}}"), "the backend's own body");
        assert_eq!(reply.content_type(), "application/json", "relayed as it is, not as a problem");
        assert_eq!(reply.header("x-backend"), Some("yes"));
        assert_eq!(reply.header("x-secret-hop"), None, "a header named by Connection is hop-by-hop");
        assert_eq!(reply.header("keep-alive"), None);
        assert!(
            !reply.header("connection").unwrap_or("").contains("x-secret-hop"),
            "the backend's Connection header is not relayed: {:?}",
            reply.headers
        );
        assert_eq!(backend.take_one().path, format!("/api/status/{status}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Operations and the test endpoint.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_assemble_the_request_from_their_parameters() {
    let (_portico, backend, caller, connection) = setup("inventory.json", json!({"api_key": "k-ops"})).await;

    let reply = caller
        .operation(
            &connection,
            "GetItem",
            json!({"parameters": {"itemId": "a b/c?d%é#", "fields": "name,price", "X-Trace": "t-1"}}),
        )
        .await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "ok"));
    let got = backend.take_one();
    assert_eq!(got.method, "GET");
    assert_eq!(got.path, "/api/items/a%20b%2Fc%3Fd%25%C3%A9%23", "the path parameter is one encoded segment");
    assert_eq!(got.query.as_deref(), Some("fields=name%2Cprice&limit=10"), "the default of limit is used");
    assert_eq!(got.header_names(), ["host", "x-api-key", "x-trace"]);
    assert_eq!(got.header("x-trace"), Some("t-1"));
    assert_eq!(got.header("x-api-key"), Some("k-ops"));
    assert_eq!(got.header("host"), Some(backend.authority().as_str()));

    // A value given replaces the default; numbers are sent as their text.
    let reply = caller.operation(&connection, "GetItem", json!({"parameters": {"itemId": 42, "limit": 3}})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = backend.take_one();
    assert_eq!((got.path.as_str(), got.query.as_deref()), ("/api/items/42", Some("limit=3")));

    // The body: given as `body`, or as the body parameter by name.
    for call in [
        json!({"parameters": {"dryRun": true}, "body": {"name": "widget", "price": 2}}),
        json!({"parameters": {"dryRun": true, "item": {"name": "widget", "price": 2}}}),
    ] {
        let reply = caller.operation(&connection, "CreateItem", call.clone()).await;
        assert_eq!(reply.status, 200, "{call}: {}", reply.text);
        let got = backend.take_one();
        assert_eq!((got.method.as_str(), got.path.as_str()), ("POST", "/api/items"));
        assert_eq!(got.query.as_deref(), Some("dryRun=true"));
        assert_eq!(got.body_text(), r#"{"name":"widget","price":2}"#);
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert_eq!(got.header_names(), ["content-length", "content-type", "host", "x-api-key"]);
    }

    // A slash in a path parameter is encoded; with '..' beside it, a backend that decodes the
    // slash before normalising would climb, so the value is refused.
    let reply = caller.operation(&connection, "GetItem", json!({"parameters": {"itemId": "x/../status"}})).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(backend.take().is_empty());
    let reply = caller.operation(&connection, "GetItem", json!({"parameters": {"itemId": "x/y"}})).await;
    assert_eq!(reply.status, 200, "a slash alone is encoded: {}", reply.text);
    assert_eq!(backend.take_one().path, "/api/items/x%2Fy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_mistakes_are_named_and_nothing_is_sent() {
    let (portico, backend, caller, connection) = setup("inventory.json", json!({"api_key": "k-ops"})).await;

    let problem = caller.operation(&connection, "GetItem", json!({})).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["parameters.itemId"]);
    assert_eq!(problem.message("parameters.itemId"), "is required");

    let problem = caller
        .operation(&connection, "GetItem", json!({"parameters": {"itemId": "1", "bogus": 1}}))
        .await
        .expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["parameters.bogus"]);

    let problem = caller.operation(&connection, "CreateItem", json!({})).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["parameters.item"]);

    caller.operation(&connection, "DeleteEverything", json!({})).await.expect_problem(404, "not-found");
    caller
        .operation(MISSING_ID, "GetItem", json!({"parameters": {"itemId": "1"}}))
        .await
        .expect_problem(404, "not-found");

    let path = format!("/v1/connections/{connection}/operations/GetItem");
    caller.get(&path).await.expect_problem(405, "method-not-allowed");
    caller.send(caller.request(Method::PUT, &path)).await.expect_problem(405, "method-not-allowed");
    caller.get(&format!("/v1/connections/{connection}/test")).await.expect_problem(405, "method-not-allowed");

    let request =
        caller.request(Method::POST, &path).header("content-type", "application/json").body("{\"parameters\":");
    caller.send(request).await.expect_problem(400, "bad-request");

    let anonymous = Caller::new(&portico, "pk_not_a_key");
    anonymous
        .operation(&connection, "GetItem", json!({"parameters": {"itemId": "1"}}))
        .await
        .expect_problem(401, "unauthorized");
    anonymous.get(&proxy(&connection, "/ok")).await.expect_problem(401, "unauthorized");

    assert_eq!(backend.requests().len(), 0, "nothing reached the backend: {:#?}", backend.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_endpoint_calls_the_test_operation_or_the_base_url() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE]);
    let caller = Caller::admin(&portico);
    let (_, with_operation) =
        connect(&caller, &definition("inventory.json", &backend.authority()), json!({"api_key": "k-test"})).await;
    let (_, base_url) = connect(&caller, &definition("none.json", &backend.authority()), json!({})).await;

    let report = caller.test(&with_operation).await.expect_json(200);
    assert_eq!((&report["ok"], &report["status"], &report["operation"]), (&json!(true), &json!(200), &json!("Ping")));
    let got = backend.take_one();
    assert_eq!((got.method.as_str(), got.path.as_str()), ("GET", "/api/ok"));
    assert_eq!(got.header("x-api-key"), Some("k-test"));

    let report = caller.test(&base_url).await.expect_json(200);
    assert_eq!((&report["ok"], &report["status"]), (&json!(true), &json!(200)), "{report}");
    let got = backend.take_one();
    assert_eq!((got.method.as_str(), got.path.as_str()), ("GET", "/api/"));
    assert_eq!(got.header_names(), ["host"]);

    backend.stop().await;
    for connection in [&with_operation, &base_url] {
        let report = caller.test(connection).await.expect_json(200);
        assert_eq!(report["ok"], false, "{report}");
        assert!(report["error"].as_str().is_some_and(|e| !e.is_empty()), "an error: {report}");
        assert!(report.get("status").is_none(), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_reports_the_backends_error_status() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE]);
    let caller = Caller::admin(&portico);
    let mut definition = definition("inventory.json", &backend.authority());
    definition["definition"]["operations"][2]["path"] = json!("/status/401");
    let (_, connection) = connect(&caller, &definition, json!({"api_key": "wrong"})).await;
    let report = caller.test(&connection).await.expect_json(200);
    assert_eq!((&report["ok"], &report["status"]), (&json!(false), &json!(401)), "{report}");
    assert_eq!(backend.take_one().path, "/api/status/401");
}

// ---------------------------------------------------------------------------------------------
// Failures: Portico's own problems, distinct from the backend's answers.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_is_a_502() {
    let portico = Portico::start_with(&[PRIVATE]);
    let caller = Caller::admin(&portico);
    let host = format!("127.0.0.1:{}", closed_port());
    let key = distinctive("k-");
    let (_, connection) = connect(&caller, &definition("inventory.json", &host), json!({"api_key": key})).await;

    let problem = caller.get(&proxy(&connection, "/ok")).await.expect_problem(502, "backend-unreachable");
    assert!(problem.detail().contains(&host), "{problem:?}");
    let again = caller.operation(&connection, "Ping", json!({})).await.expect_problem(502, "backend-unreachable");
    for problem in [problem, again] {
        assert!(!problem.0.to_string().contains(&key), "no secret in the problem: {problem:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_is_a_504_after_the_timeout() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE, "--backend-timeout", "1"]);
    let caller = Caller::admin(&portico);
    let (_, connection) = connect(&caller, &definition("none.json", &backend.authority()), json!({})).await;

    let started = Instant::now();
    caller.get(&proxy(&connection, "/slow")).await.expect_problem(504, "backend-timeout");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(2500), "took {took:?}");
    assert_eq!(backend.take_one().path, "/api/slow");

    // The same client connection goes on working.
    assert_eq!(caller.get(&proxy(&connection, "/ok")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_client_connections_are_closed_but_calls_are_not_cut() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE, "--client-idle-timeout", "1"]);
    let caller = Caller::admin(&portico);
    let (_, connection) = connect(&caller, &definition("none.json", &backend.authority()), json!({})).await;
    let address = portico.base.strip_prefix("http://").expect("an http base").to_owned();

    // One connection says nothing, another sends half a request head and stops.
    let silent = tokio::net::TcpStream::connect(&address).await.expect("portico accepts");
    let mut trickling = tokio::net::TcpStream::connect(&address).await.expect("portico accepts");
    trickling.write_all(b"GET /v1/connectors HTTP/1.1\r\nHost: x\r\n").await.expect("a partial head");
    let opened = Instant::now();
    for (name, mut stream) in [("silent", silent), ("trickling", trickling)] {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        let took = opened.elapsed();
        assert!(matches!(read, Ok(Ok(0))), "the {name} connection is closed without an answer: {read:?}");
        assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(3000), "{name}: {took:?}");
    }

    // After a call, a second request head that stops halfway.
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("portico accepts");
    let head = format!("GET /v1/connectors HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", portico.admin_key);
    stream.write_all(head.as_bytes()).await.expect("a request");
    let mut answer = vec![0u8; 64 * 1024];
    let n = stream.read(&mut answer).await.expect("an answer");
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    stream.write_all(b"GET /v1/conn").await.expect("a partial head");
    let called = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut answer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    let took = called.elapsed();
    assert!(closed.is_ok() && took >= Duration::from_millis(700) && took < Duration::from_millis(3000), "{took:?}");

    // A connection that keeps calling stays open past the timeout.
    let mut busy = OneConnection::open(&portico).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(busy.send(Method::GET, &proxy(&connection, "/ok"), "").await.0, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A call that outlasts the timeout is answered in full.
    let started = Instant::now();
    let reply = caller.get(&proxy(&connection, "/slow")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(started.elapsed() >= backend::SLOW, "the backend's delay was waited out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_backends_are_refused_unless_the_operator_allows_them() {
    let backend = Backend::start().await;
    let portico = Portico::start();
    let caller = Caller::admin(&portico);
    for host in [backend.authority(), format!("localhost:{}", backend.port()), format!("[::1]:{}", backend.port())] {
        let (_, connection) = connect(&caller, &definition("inventory.json", &host), json!({"api_key": "k"})).await;
        let problem = caller.get(&proxy(&connection, "/ok")).await.expect_problem(403, "backend-not-allowed");
        assert!(!problem.detail().is_empty());
        caller.operation(&connection, "Ping", json!({})).await.expect_problem(403, "backend-not-allowed");
        let report = caller.test(&connection).await.expect_json(200);
        assert_eq!(report["ok"], false, "{report}");
    }
    assert_eq!(backend.requests().len(), 0, "nothing reached the backend");
    assert_eq!(backend.connections(), 0, "not even a connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_hosts_own_addresses_and_other_special_ones_are_refused_as_backends() {
    let backend = Backend::start().await;
    let portico = Portico::start();
    let caller = Caller::admin(&portico);
    let port = backend.port();
    // Each reaches this host itself (no packet leaves it), whatever the block it is in.
    let mut hosts = vec![format!("0.0.0.0:{port}"), format!("127.0.0.2:{port}"), format!("[::ffff:127.0.0.1]:{port}")];
    for interface in if_addrs::get_if_addrs().expect("this host's interfaces") {
        hosts.push(match interface.ip() {
            std::net::IpAddr::V4(ip) => format!("{ip}:{port}"),
            std::net::IpAddr::V6(ip) => format!("[{ip}]:{port}"),
        });
    }
    for host in hosts {
        let (_, connection) = connect(&caller, &definition("inventory.json", &host), json!({"api_key": "k"})).await;
        let problem = caller.get(&proxy(&connection, "/ok")).await.expect_problem(403, "backend-not-allowed");
        assert!(problem.detail().contains("non-public"), "{host}: {}", problem.detail());
    }
    assert_eq!(backend.connections(), 0, "not even a connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_relayed_and_not_followed() {
    let (_portico, backend, caller, connection) = setup("api-key-header.json", json!({"api_key": "k-redirect"})).await;

    let reply = caller.get(&proxy(&connection, "/redirect")).await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), Some(backend::REDIRECT_TO));
    assert_eq!(backend.take_one().path, "/api/redirect", "one request: Portico did not follow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_a_413() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE, "--max-body-bytes", "65536"]);
    let caller = Caller::admin(&portico);
    let (_, connection) =
        connect(&caller, &definition("inventory.json", &backend.authority()), json!({"api_key": "k"})).await;

    let at_limit = vec![b'a'; 65536];
    let reply = caller.send(caller.request(Method::POST, &proxy(&connection, "/upload")).body(at_limit.clone())).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(backend.take_one().body == at_limit, "a body at the limit goes through whole");

    for size in [65537, 200_000] {
        let body = vec![b'b'; size];
        let request = caller.request(Method::POST, &proxy(&connection, "/upload")).body(body);
        caller.send(request).await.expect_problem(413, "payload-too-large");
        assert!(backend.take().iter().all(|r| r.body.len() <= 65536), "the backend never gets more than the limit");
    }
    // Without Content-Length (chunked): the limit holds while streaming.
    let mut chunked = String::new();
    for _ in 0..20 {
        chunked.push_str(&format!("2000\r\n{}\r\n", "c".repeat(0x2000)));
    }
    chunked.push_str("0\r\n\r\n");
    let head = format!("POST {} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", proxy(&connection, "/upload"));
    let (status, text) = raw_request(&portico, &head, chunked.as_bytes()).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("urn:portico:problem:payload-too-large"), "{text}");
    assert!(backend.take().iter().all(|r| r.body.len() <= 65536), "the backend never gets more than the limit");

    let big = json!({"body": "x".repeat(70_000)});
    let path = format!("/v1/connections/{connection}/operations/CreateItem");
    caller.send(caller.request(Method::POST, &path).json(&big)).await.expect_problem(413, "payload-too-large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_segments_are_refused_before_reaching_the_backend() {
    let (portico, backend, _caller, connection) = setup("none.json", json!({})).await;

    for rest in [
        "/a/../../../secret",
        "/..",
        "/../",
        "/a/%2e%2e/b",
        "/a/%2E%2e/b",
        "/a/.%2e/b",
        "/a/%2e./b",
        "/a/..%2f..%2fadmin",
        "/a/..%2F..%2Fadmin",
        "/a/..%5c..%5cadmin",
        "/a/..\\..\\admin",
    ] {
        let (status, body) = raw_get(&portico, &proxy(&connection, rest)).await;
        assert_eq!(status, 400, "{rest}: {body}");
        assert!(body.contains("urn:portico:problem:bad-request"), "{rest}: {body}");
    }
    assert_eq!(backend.requests().len(), 0, "nothing reached the backend: {:#?}", backend.requests());

    // Dots that are not a whole segment are ordinary characters.
    for rest in ["/a..b/c", "/.well-known/x", "/a/.../b", "/v1.2/x"] {
        let (status, body) = raw_get(&portico, &proxy(&connection, rest)).await;
        assert_eq!(status, 200, "{rest}: {body}");
        assert_eq!(backend.take_one().path, format!("/api{rest}"));
    }
}

/// A GET sent byte for byte, so that nothing normalises the path: the status and the answer.
async fn raw_get(portico: &Portico, path: &str) -> (u16, String) {
    raw_request(portico, &format!("GET {path} HTTP/1.1\r\n"), b"").await
}

/// Sends `head` (the request line and any headers, each ending in CRLF) with `Host`,
/// `Authorization` and `Connection: close` added, then `body`, byte for byte: the status and
/// the whole answer.
async fn raw_request(portico: &Portico, head: &str, body: &[u8]) -> (u16, String) {
    let address = portico.base.strip_prefix("http://").expect("an http base");
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("portico accepts");
    let head =
        format!("{head}Host: {address}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", portico.admin_key);
    stream.write_all(head.as_bytes()).await.expect("the request is sent");
    // Portico may answer (and close) before it reads a body it refuses.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let mut buffer = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await.expect("portico answers in time") {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a status: {text}"));
    (status, text)
}

// ---------------------------------------------------------------------------------------------
// Changes take effect on the very next call.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_key_is_used_on_the_very_next_call() {
    let (_portico, backend, caller, connection) = setup("api-key-header.json", json!({"api_key": "first"})).await;
    assert_eq!(caller.get(&proxy(&connection, "/ok")).await.status, 200);
    assert_eq!(backend.take_one().header("x-api-key"), Some("first"));

    for key in ["second", "third", "fourth"] {
        let patch = caller.request(Method::PATCH, &format!("/v1/connections/{connection}"));
        let reply = caller.send(patch.json(&json!({"parameters": {"api_key": key}}))).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(caller.get(&proxy(&connection, "/ok")).await.status, 200);
        assert_eq!(backend.take_one().header("x-api-key"), Some(key));
        caller.operation(&connection, "Ping", json!({})).await;
        assert_eq!(backend.take_one().header("x-api-key"), Some(key));
    }
}

/// A client connection remembers its last key and connection (see `proxy::Client`): changes
/// made elsewhere still apply to its very next call, and another key on it is checked anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_client_connection_remembers_follows_every_change() {
    let (portico, backend, caller, connection) = setup("api-key-header.json", json!({"api_key": "first"})).await;
    let mut one = OneConnection::open(&portico).await;
    let path = proxy(&connection, "/ok");
    for key in ["first", "second", "third"] {
        if key != "first" {
            let patch = caller.request(Method::PATCH, &format!("/v1/connections/{connection}"));
            assert_eq!(caller.send(patch.json(&json!({"parameters": {"api_key": key}}))).await.status, 200);
        }
        for _ in 0..3 {
            assert_eq!(one.send(Method::GET, &path, "").await.0, 200);
            assert_eq!(backend.take_one().header("x-api-key"), Some(key));
        }
    }

    let admin_key = std::mem::replace(&mut one.key, "pk_not-a-key".to_owned());
    let (status, body) = one.send(Method::GET, &path, "").await;
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    let other_tenant = portico.tenant_key("create", "acme");
    one.key = other_tenant;
    assert_eq!(one.send(Method::GET, &path, "").await.0, 404, "another tenant's key on the same connection");
    one.key = admin_key;
    assert_eq!(one.send(Method::GET, &path, "").await.0, 200);
    assert_eq!(backend.take_one().header("x-api-key"), Some("third"));

    let reply = caller.send(caller.request(Method::DELETE, &format!("/v1/connections/{connection}"))).await;
    assert_eq!(reply.status, 204);
    assert_eq!(one.send(Method::GET, &path, "").await.0, 404);
    assert_eq!(backend.requests().len(), 0, "nothing reached the backend after the wrong keys or the deletion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_connection_answers_404_at_once() {
    let (_portico, backend, caller, connection) = setup("api-key-header.json", json!({"api_key": "k"})).await;
    assert_eq!(caller.get(&proxy(&connection, "/ok")).await.status, 200);
    backend.take_one();

    let reply = caller.send(caller.request(Method::DELETE, &format!("/v1/connections/{connection}"))).await;
    assert_eq!(reply.status, 204);
    caller.get(&proxy(&connection, "/ok")).await.expect_problem(404, "not-found");
    caller.operation(&connection, "Ping", json!({})).await.expect_problem(404, "not-found");
    caller.test(&connection).await.expect_problem(404, "not-found");
    assert_eq!(backend.requests().len(), 0, "nothing reached the backend after the deletion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_connector_takes_effect_at_once() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE]);
    let caller = Caller::admin(&portico);
    let body = definition("api-key-header.json", &backend.authority());
    let (connector, connection) = connect(&caller, &body, json!({"api_key": "k-put"})).await;
    assert_eq!(caller.get(&proxy(&connection, "/ok")).await.status, 200);
    assert_eq!(backend.take_one().header("x-api-key"), Some("k-put"));

    let mut replaced = body.clone();
    replaced["definition"]["connection"]["credential"]["keys"][0]["name"] = json!("X-Other-Key");
    replaced["definition"]["backend"]["basePath"] = json!("/v2");
    let reply = caller.send(caller.request(Method::PUT, &format!("/v1/connectors/{connector}")).json(&replaced)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    assert_eq!(caller.get(&proxy(&connection, "/ok")).await.status, 200);
    let got = backend.take_one();
    assert_eq!(got.path, "/v2/ok");
    assert_eq!(got.header("x-other-key"), Some("k-put"));
    assert_eq!(got.header("x-api-key"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_connection_is_a_404_like_a_missing_one() {
    let (portico, backend, caller, connection) = setup("inventory.json", json!({"api_key": "k-default"})).await;
    // Prepared and cached by a call of its owner first.
    assert_eq!(caller.get(&proxy(&connection, "/ok")).await.status, 200);
    backend.take_one();

    let other = Caller::new(&portico, &portico.tenant_key("create", "acme"));
    let calls = |id: &str| {
        vec![
            (Method::GET, proxy(id, "/ok"), None),
            (Method::POST, proxy(id, "/items"), Some(json!({"a": 1}))),
            (Method::POST, format!("/v1/connections/{id}/operations/Ping"), Some(json!({}))),
            (Method::POST, format!("/v1/connections/{id}/test"), None),
        ]
    };
    for ((method, theirs, body), (_, missing, _)) in calls(&connection).into_iter().zip(calls(MISSING_ID)) {
        let send = |path: String| {
            let mut request = other.request(method.clone(), &path);
            if let Some(body) = &body {
                request = request.json(body);
            }
            other.send(request)
        };
        let theirs = send(theirs).await;
        let missing = send(missing).await;
        let problem = theirs.expect_problem(404, "not-found");
        assert_eq!(problem, missing.expect_problem(404, "not-found"), "{method} answers as for a missing id");
    }
    assert_eq!(backend.requests().len(), 0, "nothing reached the backend");
}

// ---------------------------------------------------------------------------------------------
// Streaming, metrics and connection reuse.
// ---------------------------------------------------------------------------------------------

/// The peak resident memory of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    let kb: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_response_streams_through_with_bounded_memory() {
    let (portico, backend, caller, connection) = setup("none.json", json!({})).await;
    // Warm up: the connection prepared and cached, the upstream connection open.
    for _ in 0..3 {
        assert_eq!(caller.get(&proxy(&connection, "/ok")).await.status, 200);
    }
    let before = peak_rss(portico.pid());

    let mut response = caller.request(Method::GET, &proxy(&connection, "/big")).send().await.expect("an answer");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/octet-stream");
    let mut received = 0usize;
    let mut hash = Sha256::new();
    while let Some(chunk) = response.chunk().await.expect("the body streams") {
        received += chunk.len();
        hash.update(&chunk);
    }
    let after = peak_rss(portico.pid());

    let mut expected = Sha256::new();
    for index in 0..backend::BIG_LEN / backend::CHUNK {
        expected.update(backend::big_chunk(index));
    }
    assert_eq!(received, backend::BIG_LEN, "every byte arrives");
    assert!(hash.finalize() == expected.finalize(), "the bytes arrive unaltered");
    let growth = after.saturating_sub(before);
    eprintln!("peak RSS {} KiB before, {} KiB after relaying {} bytes", before / 1024, after / 1024, received);
    assert!(growth < 20 * 1024 * 1024, "peak memory grew by {} MiB while relaying 50 MiB", growth / (1024 * 1024));
    assert_eq!(backend.take().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_by_connector_and_outcome() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE, "--backend-timeout", "1"]);
    let caller = Caller::admin(&portico);
    let (up, up_connection) =
        connect(&caller, &definition("inventory.json", &backend.authority()), json!({"api_key": "k"})).await;
    let down_host = format!("127.0.0.1:{}", closed_port());
    let mut down_definition = definition("none.json", &down_host);
    down_definition["definition"]["metadata"]["name"] = json!("down");
    let (down, down_connection) = connect(&caller, &down_definition, json!({})).await;

    for _ in 0..3 {
        assert_eq!(caller.get(&proxy(&up_connection, "/ok")).await.status, 200);
    }
    assert_eq!(caller.operation(&up_connection, "Ping", json!({})).await.status, 200);
    assert_eq!(caller.get(&proxy(&up_connection, "/status/404")).await.status, 404);
    assert_eq!(caller.get(&proxy(&up_connection, "/status/503")).await.status, 503);
    assert_eq!(caller.get(&proxy(&up_connection, "/status/500")).await.status, 500);
    assert_eq!(caller.get(&proxy(&up_connection, "/slow")).await.status, 504);
    assert_eq!(caller.operation(&up_connection, "GetItem", json!({})).await.status, 422);
    assert_eq!(caller.get(&proxy(&down_connection, "/ok")).await.status, 502);
    assert_eq!(caller.get(&proxy(&down_connection, "/ok")).await.status, 502);

    // They name every tenant's connectors: only the metrics token reads them.
    for key in [None, Some("metrics-token-of-the-test"), Some(portico.admin_key.as_str())] {
        let refused = portico.client(key).get("/metrics").await;
        assert_eq!(refused.status, 401, "{key:?}");
        assert!(!refused.text.contains("inventory"), "{}", refused.text);
    }
    let metrics = portico.metrics().await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.content_type().starts_with("text/plain"), "{}", metrics.content_type());
    let text = metrics.text;
    let up_labels = format!("connector=\"{up}\",connector_name=\"inventory\"");
    let down_labels = format!("connector=\"{down}\",connector_name=\"down\"");
    for line in [
        format!("portico_requests_total{{{up_labels},outcome=\"2xx\"}} 4"),
        format!("portico_requests_total{{{up_labels},outcome=\"4xx\"}} 1"),
        format!("portico_requests_total{{{up_labels},outcome=\"5xx\"}} 2"),
        format!("portico_requests_total{{{up_labels},outcome=\"timeout\"}} 1"),
        format!("portico_requests_total{{{up_labels},outcome=\"refused\"}} 1"),
        format!("portico_request_errors_total{{{up_labels}}} 2"),
        format!("portico_request_duration_seconds_count{{{up_labels}}} 9"),
        format!("portico_requests_total{{{down_labels},outcome=\"unreachable\"}} 2"),
        format!("portico_request_errors_total{{{down_labels}}} 2"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\nin:\n{text}");
    }
    for absent in [format!("{up_labels},outcome=\"unreachable\""), format!("{down_labels},outcome=\"2xx\"")] {
        assert!(!text.contains(&absent), "{absent}\nin:\n{text}");
    }
}

/// One HTTP/1.1 connection to Portico, for calls that must share it (a pooling client may
/// open another whenever its previous connection is not back in the pool yet).
struct OneConnection {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    address: String,
    key: String,
}

impl OneConnection {
    async fn open(portico: &Portico) -> OneConnection {
        let address = portico.base.strip_prefix("http://").expect("an http base").to_owned();
        let stream = tokio::net::TcpStream::connect(&address).await.expect("portico accepts");
        let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("an HTTP/1.1 connection");
        tokio::spawn(connection);
        OneConnection { sender, address, key: portico.admin_key.clone() }
    }

    /// Sends a request and reads the whole answer: the status and the body.
    async fn send(&mut self, method: Method, path: &str, body: &'static str) -> (u16, Vec<u8>) {
        let request = hyper::Request::builder()
            .method(method.as_str())
            .uri(path)
            .header("host", &self.address)
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(body.as_bytes())))
            .expect("a valid request");
        self.sender.ready().await.expect("portico keeps the connection open");
        let response = self.sender.send_request(request).await.expect("portico answers");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.expect("a readable body").to_bytes().to_vec();
        (status, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_calls_on_one_client_connection_reuse_a_backend_connection() {
    let (portico, backend, _caller, connection) = setup("inventory.json", json!({"api_key": "k"})).await;
    let mut one = OneConnection::open(&portico).await;
    let operation = format!("/v1/connections/{connection}/operations/Ping");
    for i in 0..50 {
        let (status, body) = match i % 5 {
            0 => one.send(Method::POST, &operation, "{}").await,
            1 => one.send(Method::GET, &proxy(&connection, "/status/404"), "").await,
            2 => one.send(Method::POST, &proxy(&connection, "/items"), "{\"a\":1}").await,
            3 => one.send(Method::GET, &format!("/v1/connections/{connection}"), "").await,
            _ => one.send(Method::GET, &proxy(&connection, "/ok"), "").await,
        };
        assert!(matches!(status, 200 | 404), "{status}: {}", String::from_utf8_lossy(&body));
    }
    assert_eq!(backend.take().len(), 40, "every call but the API reads reached the backend");
    assert!(backend.connections() <= 2, "{} backend connections for 50 sequential calls", backend.connections());
    assert_eq!(backend.connections(), 1, "one backend connection for one client connection");
}

#[tokio::test]
async fn an_operations_path_parameter_cannot_climb_in_any_spelling() {
    let (_portico, backend, caller, connection) = setup("inventory.json", json!({"api_key": "k"})).await;
    for value in ["..", ".%2e", "%2e%2e", "%252e%252e", "..;x", ".. ", "../admin", "..\\admin", "\u{ff0e}\u{ff0e}"] {
        let problem = caller
            .operation(&connection, "GetItem", json!({"parameters": {"itemId": value}}))
            .await
            .expect_problem(422, "validation");
        assert!(problem.message("parameters.itemId").contains(".."), "{value:?}: {:?}", problem.0);
    }
    assert!(backend.take().is_empty(), "nothing reached the backend");
    // Dots that do not climb are sent, encoded as one segment.
    caller.operation(&connection, "GetItem", json!({"parameters": {"itemId": "v1..2"}})).await;
    assert_eq!(backend.take_one().path, "/api/items/v1..2");
}

#[tokio::test]
async fn a_header_or_cookie_that_would_forge_another_is_refused_when_written() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE]);
    let caller = Caller::admin(&portico);
    for (name, location) in [("Host", "header"), ("content-length", "header"), ("X Key", "header"), ("a=b", "cookie")] {
        let mut body = definition("api-key-header.json", &backend.authority());
        body["definition"]["connection"]["credential"]["keys"][0] =
            json!({"parameter": "api_key", "name": name, "in": location});
        let reply = caller.send(caller.request(Method::POST, "/v1/connectors").json(&body)).await;
        let problem = reply.expect_problem(422, "validation");
        assert!(problem.0.to_string().contains(&name.replace('"', "")), "{name}: {:?}", problem.0);
    }
    let mut body = definition("api-key-header.json", &backend.authority());
    body["definition"]["policies"] = json!([{"policy": "setHeader", "name": "Transfer-Encoding", "value": "chunked"}]);
    let reply = caller.send(caller.request(Method::POST, "/v1/connectors").json(&body)).await;
    assert!(reply.expect_problem(422, "validation").0.to_string().contains("Transfer-Encoding"));

    let mut cookie = definition("api-key-header.json", &backend.authority());
    cookie["definition"]["connection"]["credential"]["keys"][0] =
        json!({"parameter": "api_key", "name": "session", "in": "cookie"});
    let connector = caller.send(caller.request(Method::POST, "/v1/connectors").json(&cookie)).await.expect_json(201);
    let header = caller
        .send(
            caller
                .request(Method::POST, "/v1/connectors")
                .json(&definition("api-key-header.json", &backend.authority())),
        )
        .await
        .expect_json(201);
    for (connector, value) in [(&connector, "v; admin=true"), (&header, "k\r\nX-Admin: 1")] {
        let request = json!({"connectorId": connector["id"], "parameters": {"api_key": value}});
        let reply = caller.send(caller.request(Method::POST, "/v1/connections").json(&request)).await;
        let problem = reply.expect_problem(422, "validation");
        assert_eq!(problem.fields(), ["parameters.api_key"], "{:?}", problem.0);
        assert!(!reply.text.contains("admin"), "the value is not repeated: {}", reply.text);
    }
    assert!(backend.take().is_empty());
}

/// Calls `/ok` through `connection` with `key` `count` times: the statuses.
async fn statuses(portico: &Portico, key: &str, connection: &str, count: usize) -> Vec<u16> {
    let api = portico.client(Some(key));
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(api.get(&proxy(connection, "/ok")).await.status);
    }
    statuses
}

#[tokio::test]
async fn a_key_past_its_rate_limit_gets_429_with_the_rate_limit_fields() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE, "--key-rate-limit", "5"]);
    let caller = Caller::admin(&portico);
    let (_, connection) =
        connect(&caller, &definition("inventory.json", &backend.authority()), json!({"api_key": "k"})).await;
    let own = portico
        .api()
        .post("/v1/api-keys", &json!({"name": "slow flow", "role": "admin", "rateLimit": 2}))
        .await
        .expect_json(201);
    assert_eq!(own["rateLimit"], 2);
    let stored = portico.api().get(&format!("/v1/api-keys/{}", own["id"].as_str().unwrap())).await.expect_json(200);
    assert_eq!(stored["rateLimit"], 2, "kept in the store: {stored}");
    let own_key = own["key"].as_str().unwrap().to_owned();

    // The server's default: five at once; the sixth waits.
    assert_eq!(statuses(&portico, &portico.admin_key, &connection, 5).await, [200; 5]);
    let refused = portico.client(Some(&portico.admin_key)).get(&proxy(&connection, "/ok")).await;
    refused.expect_problem(429, "rate-limited");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.headers["ratelimit-policy"], "\"key\";q=5;w=1");
    assert_eq!(refused.headers["ratelimit"], "\"key\";r=0;t=1");
    assert_eq!(backend.take().len(), 5, "a refused call reaches no backend");

    // A key's own limit wins, and each key has its own bucket.
    assert_eq!(statuses(&portico, &own_key, &connection, 3).await, [200, 200, 429]);
    // The API is not limited; after a second the calls go through again.
    portico.api().get("/v1/connections").await.expect_json(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(statuses(&portico, &portico.admin_key, &connection, 1).await, [200]);

    let zero = portico.api().post("/v1/api-keys", &json!({"name": "none", "role": "admin", "rateLimit": 0})).await;
    assert_eq!(zero.expect_problem(422, "validation").fields(), ["rateLimit"]);
}

#[tokio::test]
async fn the_keys_of_a_tenant_share_its_rate_limit() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE, "--tenant-rate-limit", "4"]);
    let caller = Caller::admin(&portico);
    let (_, connection) =
        connect(&caller, &definition("inventory.json", &backend.authority()), json!({"api_key": "k"})).await;
    let other = portico.api().post("/v1/api-keys", &json!({"name": "second", "role": "admin"})).await.expect_json(201);
    let other_key = other["key"].as_str().unwrap().to_owned();
    assert_eq!(statuses(&portico, &portico.admin_key, &connection, 2).await, [200, 200]);
    assert_eq!(statuses(&portico, &other_key, &connection, 2).await, [200, 200]);
    let refused = portico.client(Some(&other_key)).get(&proxy(&connection, "/ok")).await;
    refused.expect_problem(429, "rate-limited");
    assert_eq!(refused.headers["ratelimit-policy"], "\"tenant\";q=4;w=1");
}
