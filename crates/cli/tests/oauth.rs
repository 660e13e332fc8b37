//! OAuth 2.0 connections end to end: the real `portico` binary against a real authorization
//! server (oidc-provider, `tests/idp`, see `common::idp`), signed in through its real login and
//! consent forms, with the IdP itself as the token-protected backend (`/me`, its userinfo
//! endpoint, and `/__test/resource`, which takes any access token).
//!
//! Every test starts its own Portico (a fresh data directory, `--allow-private-backends`, the
//! public URL being `http://127.0.0.1:<port>`) and then its own IdP, whose clients may redirect
//! to that Portico's `/oauth/callback`. Without Node or `tests/idp/node_modules` the tests are
//! skipped loudly, except under `CI=true`, where they fail.
//!
//! Where a test must see the tokens themselves (to prove they never leak, or that a rotated
//! refresh token is the one used next), Portico reaches the IdP through a [`Tap`]: a relay in
//! this process that records what passes and forwards it unchanged.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use common::idp::{self, BASIC, Browser, CC, Idp, IdpClient, IdpOptions, ODD, POST};
use common::{Api, Portico, Reply, contains, distinctive, fixture, id, string};
use http_body_util::{BodyExt as _, Full};
use reqwest::header::LOCATION;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

/// The IdP is on loopback: it is both the authorization server and the backend.
const PRIVATE: &str = "--allow-private-backends";

// ---------------------------------------------------------------------------------------------
// The world of a test: Portico, the IdP, a browser that lands on Portico's callback.
// ---------------------------------------------------------------------------------------------

struct World {
    portico: Portico,
    idp: Idp,
    /// The key of tenant `default`.
    api: Api,
    /// What the browser got from Portico's callback.
    web: Web,
}

/// IdP options with access tokens living `seconds`.
fn ttl(seconds: u64) -> IdpOptions {
    IdpOptions { access_token_ttl: Duration::from_secs(seconds), ..IdpOptions::default() }
}

/// `<base>/oauth/callback`: the redirect URI of a Portico without `--public-url`.
fn callback_of(portico: &Portico) -> String {
    format!("{}/oauth/callback", portico.base)
}

/// `127.0.0.1:PORT` of `http://127.0.0.1:PORT`.
fn authority(base: &str) -> String {
    base.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

impl World {
    /// Portico (with `args` besides `--allow-private-backends`), then the IdP that redirects to
    /// it; `None` when the IdP cannot run here (the helper has said so).
    fn start(args: &[&str], options: IdpOptions) -> Option<World> {
        let mut all = vec![PRIVATE];
        all.extend_from_slice(args);
        let portico = Portico::start_with(&all);
        let mut options = options;
        options.redirect_uris.push(callback_of(&portico));
        let idp = Idp::try_start(&options)?;
        let api = portico.api();
        Some(World { portico, idp, api, web: Web::new() })
    }

    fn callback(&self) -> String {
        callback_of(&self.portico)
    }

    /// Creates a connector: its id.
    async fn connector(&self, body: &Value) -> String {
        id(&self.api.create_connector(body).await)
    }

    /// Creates a connection of `connector` (with more fields from `extra`), expecting 201.
    async fn create(&self, connector: &str, extra: Value) -> Value {
        let mut body = json!({"connectorId": connector});
        if let Value::Object(extra) = extra {
            body.as_object_mut().expect("an object").extend(extra);
        }
        self.api.create_connection(&body).await
    }

    /// Creates a connection that waits for its sign-in: its id and authorization URL.
    async fn pending(&self, connector: &str) -> (String, String) {
        let created = self.create(connector, json!({})).await;
        assert_eq!(created["status"], "pending", "{created}");
        (id(&created), string(&created, "authorizeUrl"))
    }

    /// Signs in as alice through the IdP's real forms in a fresh browser: the URL the IdP
    /// sends the browser back to (Portico's callback, not yet visited).
    async fn sign_in(&self, authorize_url: &str) -> String {
        Browser::new().sign_in(authorize_url, "alice", &self.callback()).await
    }

    /// Signs in and lets the browser visit Portico's callback: Portico's answer.
    async fn finish(&self, authorize_url: &str) -> Reply {
        let redirect = self.sign_in(authorize_url).await;
        self.web.get(&redirect).await
    }

    /// Creates a connection of `connector` and signs it in: its id, and when it was connected
    /// (just after Portico answered the callback, so after the tokens were obtained).
    async fn connect(&self, connector: &str) -> (String, Instant) {
        let (connection, authorize_url) = self.pending(connector).await;
        let page = self.finish(&authorize_url).await;
        let connected_at = Instant::now();
        assert_eq!(page.status, 200, "the callback: {}", page.text);
        assert!(page.text.contains("Connected"), "the success page: {}", page.text);
        assert_eq!(self.connection(&connection).await["status"], "connected");
        (connection, connected_at)
    }

    /// `GET /v1/connections/{id}`.
    async fn connection(&self, id: &str) -> Value {
        self.api.get(&format!("/v1/connections/{id}")).await.expect_json(200)
    }

    /// A proxied `GET` of `path` on the backend through the connection.
    async fn call(&self, connection: &str, path: &str) -> Reply {
        call(&self.api, connection, path).await
    }

    /// Token-endpoint calls of `grant` the IdP answered so far.
    async fn tokens(&self, grant: &str) -> usize {
        self.idp.token_calls(grant).await
    }
}

async fn call(api: &Api, connection: &str, path: &str) -> Reply {
    api.get(&format!("/v1/connections/{connection}/proxy{path}")).await
}

/// A connector body for the code flow at `idp` with `client`, the IdP as backend.
fn code_connector(idp: &Idp, client: IdpClient) -> Value {
    let mut definition = fixture::json("oauth/code.json");
    definition["backend"]["host"] = json!(authority(idp.issuer()));
    let credential = &mut definition["connection"]["credential"];
    credential["authorizationUrl"] = json!(idp.url("/auth"));
    credential["tokenUrl"] = json!(idp.url("/token"));
    with_client(definition, client)
}

/// A connector body for client credentials at `idp` with `client`.
fn client_credentials_connector(idp: &Idp, client: IdpClient) -> Value {
    let mut definition = fixture::json("oauth/client-credentials.json");
    definition["backend"]["host"] = json!(authority(idp.issuer()));
    definition["connection"]["credential"]["tokenUrl"] = json!(idp.url("/token"));
    with_client(definition, client)
}

/// A connector body for an OpenID Connect provider known by its discovery document only.
fn discovery_connector(idp: &Idp, client: IdpClient) -> Value {
    let mut definition = fixture::json("oauth/discovery.json");
    definition["backend"]["host"] = json!(authority(idp.issuer()));
    definition["connection"]["credential"]["discoveryUrl"] = json!(idp.discovery_url());
    with_client(definition, client)
}

fn with_client(definition: Value, client: IdpClient) -> Value {
    let mut oauth_client = json!({"clientId": client.id});
    if let Some(secret) = client.secret {
        oauth_client["clientSecret"] = json!(secret);
    }
    json!({"definition": definition, "oauthClient": oauth_client})
}

/// The OAuth credential of a connector body.
fn credential(body: &mut Value) -> &mut Value {
    &mut body["definition"]["connection"]["credential"]
}

/// The query parameters of `url`.
fn query(url: &str) -> HashMap<String, String> {
    Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}")).query_pairs().into_owned().collect()
}

/// `url` with its scheme, host and port replaced by `base`'s (what a reverse proxy does).
fn rebased(url: &str, base: &str) -> String {
    let url = Url::parse(url).expect("a URL");
    let mut moved = Url::parse(base).expect("a base URL");
    moved.set_path("/oauth/callback");
    moved.set_query(url.query());
    moved.into()
}

/// The audit events of `action` on `connection`, newest first, once the writer (every 250 ms)
/// has appended events of at least `wanted` uses (an event of calls alike counts them).
async fn audited(api: &Api, connection: &str, action: &str, wanted: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = api.get(&format!("/v1/audit?connectionId={connection}&action={action}")).await.expect_json(200);
        let events = page["items"].as_array().expect("items").clone();
        let uses: i64 = events.iter().map(|e| e["count"].as_i64().expect("a count")).sum();
        if uses >= wanted as i64 || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sleep_until(deadline: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
}

/// A refresh at the IdP by the test itself, authenticated as `client` registered.
async fn refresh_at_idp(idp: &Idp, client: IdpClient, refresh_token: &str) -> (u16, Value) {
    let http = idp::client_builder().build().expect("an HTTP client");
    let response = http
        .post(idp.url("/token"))
        .header("authorization", idp::basic_authorization(client.id, client.secret.expect("a secret")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(idp::form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]))
        .send()
        .await
        .expect("the IdP answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The fields of the IdP's `TOKEN` log lines of `grant`, in order.
async fn token_events(idp: &Idp, grant: &str) -> Vec<(String, String, String)> {
    idp.log_events("TOKEN")
        .await
        .into_iter()
        .filter(|e| e["grant"] == grant)
        .map(|e| (e["client"].clone(), e["auth"].clone(), e["status"].clone()))
        .collect()
}

/// The statuses of the IdP's `RESOURCE` log lines.
async fn resource_statuses(idp: &Idp) -> Vec<String> {
    idp.log_events("RESOURCE").await.into_iter().map(|e| e["status"].clone()).collect()
}

/// A browser's visits to Portico's callback: redirects are not followed, and every page and
/// `Location` is kept for the search for leaked tokens.
#[derive(Clone)]
struct Web {
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Web {
    fn new() -> Web {
        let http = idp::client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
        Web { http, seen: Arc::default() }
    }

    /// `GET url`, with no Portico key: the callback needs none.
    async fn get(&self, url: &str) -> Reply {
        let response = self.http.get(url).send().await.expect("portico answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let mut seen = self.seen.lock().unwrap();
        seen.push(text.clone());
        if let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
            seen.push(location.to_owned());
        }
        Reply { status, headers, text }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Asserts the callback's refusal page: 400, HTML, saying the link is not valid.
#[track_caller]
fn assert_refused(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 400, "{what}: {}", reply.text);
    assert!(reply.content_type().starts_with("text/html"), "{what}: {}", reply.content_type());
    assert!(reply.text.contains("Sign-in link not valid"), "{what}: {}", reply.text);
}

// ---------------------------------------------------------------------------------------------
// The tap: a recording relay between Portico and the IdP.
// ---------------------------------------------------------------------------------------------

/// One request relayed to the IdP, and its answer.
#[derive(Debug, Clone)]
struct Exchange {
    path: String,
    authorization: Option<String>,
    request_body: String,
    status: u16,
    response_body: String,
}

impl Exchange {
    /// A field of the form-encoded request body.
    fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.request_body.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }

    fn response(&self) -> Value {
        serde_json::from_str(&self.response_body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct TapShared {
    exchanges: Mutex<Vec<Exchange>>,
    /// How many of the next bearer calls to answer 401 `invalid_token` itself, as a resource
    /// server does with a token it no longer accepts.
    reject_bearer: AtomicUsize,
    /// When set, the `expires_in` of the token endpoint's successful answers; `Null` removes it.
    expires_in: Mutex<Option<Value>>,
}

/// Listens on a loopback port and relays everything to the IdP unchanged, recording it.
struct Tap {
    addr: std::net::SocketAddr,
    shared: Arc<TapShared>,
    accepting: tokio::task::AbortHandle,
}

impl Tap {
    async fn start(target: &str) -> Tap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let shared = Arc::new(TapShared::default());
        let http = idp::client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
        let target = target.trim_end_matches('/').to_owned();
        let accepting = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let (shared, http, target) = (shared.clone(), http.clone(), target.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            relay(shared.clone(), http.clone(), target.clone(), request)
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Tap { addr, shared, accepting: accepting.abort_handle() }
    }

    fn authority(&self) -> String {
        self.addr.to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The exchanges relayed so far whose path is `path`.
    fn exchanges(&self, path: &str) -> Vec<Exchange> {
        self.shared.exchanges.lock().unwrap().iter().filter(|e| e.path == path).cloned().collect()
    }

    /// The token-endpoint exchanges of `grant`.
    fn token_exchanges(&self, grant: &str) -> Vec<Exchange> {
        self.exchanges("/token").into_iter().filter(|e| e.form("grant_type").as_deref() == Some(grant)).collect()
    }

    fn reject_next_bearer_calls(&self, n: usize) {
        self.shared.reject_bearer.store(n, Ordering::SeqCst);
    }

    /// Rewrites `expires_in` in the token endpoint's successful answers from now on.
    fn rewrite_expires_in(&self, value: Value) {
        *self.shared.expires_in.lock().unwrap() = Some(value);
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn relay(
    shared: Arc<TapShared>,
    http: reqwest::Client,
    target: String,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let authorization = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bearer = authorization.as_deref().is_some_and(|a| a.starts_with("Bearer "));
    let reject =
        bearer && shared.reject_bearer.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let mut builder = hyper::Response::builder();
    let (status, response_body) = if reject {
        builder = builder
            .header("content-type", "application/json")
            .header("www-authenticate", "Bearer realm=\"tap\", error=\"invalid_token\"");
        (401, br#"{"error":"invalid_token"}"#.to_vec())
    } else {
        let url = format!("{target}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        let mut forwarded = http.request(parts.method.clone(), url).body(body.to_vec());
        for (name, value) in &parts.headers {
            if !matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding" | "keep-alive") {
                forwarded = forwarded.header(name.clone(), value.clone());
            }
        }
        match forwarded.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                for (name, value) in response.headers() {
                    if !matches!(name.as_str(), "content-length" | "connection" | "transfer-encoding" | "keep-alive") {
                        builder = builder.header(name.clone(), value.clone());
                    }
                }
                let mut body = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                let rewrite = shared.expires_in.lock().unwrap().clone();
                if let Some(value) = rewrite.filter(|_| parts.uri.path() == "/token" && status == 200) {
                    let mut answer: Value = serde_json::from_slice(&body).expect("a JSON token answer");
                    match value {
                        Value::Null => answer.as_object_mut().expect("an object").remove("expires_in"),
                        value => answer.as_object_mut().expect("an object").insert("expires_in".to_owned(), value),
                    };
                    body = answer.to_string().into_bytes();
                }
                (status, body)
            }
            Err(_) => (502, b"the tap could not reach the IdP".to_vec()),
        }
    };
    shared.exchanges.lock().unwrap().push(Exchange {
        path: parts.uri.path().to_owned(),
        authorization,
        request_body: String::from_utf8_lossy(&body).into_owned(),
        status,
        response_body: String::from_utf8_lossy(&response_body).into_owned(),
    });
    Ok(builder.status(status).body(Full::new(Bytes::from(response_body))).expect("a response"))
}

/// A code-flow connector whose token endpoint and backend are reached through `tap`.
fn tapped_connector(idp: &Idp, tap: &Tap, client: IdpClient) -> Value {
    let mut body = code_connector(idp, client);
    body["definition"]["backend"]["host"] = json!(tap.authority());
    credential(&mut body)["tokenUrl"] = json!(tap.url("/token"));
    body
}

// ---------------------------------------------------------------------------------------------
// 1. Authorization code + PKCE, end to end.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_with_pkce_signs_in_through_the_real_forms_and_calls_carry_the_token() {
    let Some(w) = World::start(&[], ttl(60)) else { return };
    let tap = Tap::start(w.idp.issuer()).await;
    let connector = w.connector(&tapped_connector(&w.idp, &tap, BASIC)).await;

    let created = w.create(&connector, json!({"displayName": "Alice at the IdP"})).await;
    assert_eq!(created["status"], "pending", "{created}");
    assert!(created.get("tokenExpiresAt").is_none(), "no token yet: {created}");
    let connection = id(&created);
    let authorize_url = string(&created, "authorizeUrl");
    assert!(authorize_url.starts_with(&format!("{}?", w.idp.url("/auth"))), "{authorize_url}");
    let params = query(&authorize_url);
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], BASIC.id);
    assert_eq!(params["redirect_uri"], w.callback());
    assert_eq!(params["scope"], "openid offline_access api:read");
    assert_eq!(params["code_challenge_method"], "S256");
    let challenge = params["code_challenge"].clone();
    assert_eq!(challenge.len(), 43, "an S256 challenge: {challenge}");
    let state = params["state"].clone();
    let state_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&state).expect("a base64url state");
    assert!(state_bytes.len() * 8 >= 128, "a state of at least 128 random bits: {state}");
    let (_, other_url) = w.pending(&connector).await;
    let other = query(&other_url);
    assert_ne!(other["state"], state, "each sign-in has its own state");
    assert_ne!(other["code_challenge"], challenge, "each sign-in has its own PKCE verifier");

    // Not signed in yet: no call.
    let early = w.call(&connection, "/me").await.expect_problem(409, "connection-not-ready");
    assert!(early.detail().contains("pending"), "{}", early.detail());

    let redirect = w.sign_in(&authorize_url).await;
    assert_eq!(query(&redirect)["state"], state, "{redirect}");
    let page = w.web.get(&redirect).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.content_type().starts_with("text/html"), "{}", page.content_type());
    assert!(page.text.contains("Connected"), "{}", page.text);

    let connected = w.connection(&connection).await;
    assert_eq!(connected["status"], "connected", "{connected}");
    assert!(connected.get("statusReason").is_none(), "{connected}");
    assert!(connected["tokenExpiresAt"].is_string(), "tokenExpiresAt when connected: {connected}");
    assert!(connected.get("authorizeUrl").is_none(), "{connected}");

    // The code exchange: the registered client authentication, the redirect URI of the
    // sign-in, and the verifier of the challenge the IdP saw.
    let exchanges = tap.token_exchanges("authorization_code");
    assert_eq!(exchanges.len(), 1, "{exchanges:#?}");
    let exchange = &exchanges[0];
    assert_eq!(exchange.status, 200, "{}", exchange.response_body);
    assert_eq!(exchange.authorization.as_deref(), Some(idp::basic_authorization(BASIC.id, "basic-secret").as_str()));
    assert_eq!(exchange.form("redirect_uri").as_deref(), Some(w.callback().as_str()));
    let verifier = exchange.form("code_verifier").expect("a code_verifier");
    let s256 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    assert_eq!(s256, challenge, "the verifier is the one of the challenge");
    assert!(exchange.form("client_secret").is_none(), "basic, not post: {}", exchange.request_body);
    let tokens = exchange.response();
    let access_token = string(&tokens, "access_token");
    let refresh_token = string(&tokens, "refresh_token");
    let id_token = string(&tokens, "id_token");

    // Calls carry the access token to the token-protected endpoints.
    let me = w.call(&connection, "/me").await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["sub"], "alice");
    let resource = w.call(&connection, "/__test/resource/items?x=1").await;
    assert_eq!(resource.status, 200, "{}", resource.text);
    assert_eq!(resource.json()["client_id"], BASIC.id);
    assert!(resource.json()["scope"].as_str().unwrap_or("").contains("api:read"), "{}", resource.text);
    for path in ["/me", "/__test/resource/items"] {
        let relayed = tap.exchanges(path);
        assert_eq!(relayed.len(), 1, "{path}: {relayed:#?}");
        assert_eq!(relayed[0].authorization.as_deref(), Some(format!("Bearer {access_token}").as_str()), "{path}");
    }
    w.idp.settle().await;
    assert_eq!(resource_statuses(&w.idp).await, ["200"], "the IdP's resource saw a valid bearer token");
    assert_eq!(
        token_events(&w.idp, "authorization_code").await,
        [(BASIC.id.to_owned(), "client_secret_basic".to_owned(), "200".to_owned())]
    );
    assert_eq!(w.tokens("refresh_token").await, 0, "a fresh token is not renewed");

    // The tokens never show: not in any answer of the API or of the callback, not in the
    // connection list, not in Portico's (debug) logs.
    w.api.get("/v1/connections").await.expect_json(200);
    w.api.get(&format!("/v1/connectors/{connector}")).await.expect_json(200);
    let mut answers = w.portico.responses();
    answers.extend(w.web.seen());
    let output = w.portico.output_bytes();
    for (name, secret) in [
        ("access token", access_token.as_str()),
        ("refresh token", refresh_token.as_str()),
        ("ID token", id_token.as_str()),
        ("PKCE verifier", verifier.as_str()),
        ("client secret", "basic-secret"),
    ] {
        for answer in &answers {
            assert!(!answer.contains(secret), "the {name} is in an answer: {answer}");
        }
        assert!(!contains(&output, secret), "the {name} is in Portico's output");
    }
    assert!(w.portico.stderr().contains("DEBUG") || w.portico.stdout().contains("DEBUG"), "debug logs were on");
}

// ---------------------------------------------------------------------------------------------
// 2. Client authentication: basic (form-encoded) and post, chosen per connector.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_form_encodes_an_odd_secret_and_client_secret_post_is_chosen_per_connector() {
    let Some(w) = World::start(&[], ttl(2)) else { return };
    // Generic OAuth 2 defaults to client_secret_basic; `p+ss/w%rd:x y` only survives it
    // form-encoded (RFC 6749 §2.3.1).
    let odd = w.connector(&code_connector(&w.idp, ODD)).await;
    let mut post_body = code_connector(&w.idp, POST);
    credential(&mut post_body)["customParameters"] = json!({"clientAuthentication": "client_secret_post"});
    let post = w.connector(&post_body).await;

    let (odd_connection, odd_at) = w.connect(&odd).await;
    let (post_connection, post_at) = w.connect(&post).await;
    for connection in [&odd_connection, &post_connection] {
        assert_eq!(w.call(connection, "/__test/resource").await.status, 200);
    }
    // Renewed with the same client authentication (renewal starts at half the lifetime).
    sleep_until(odd_at.max(post_at) + Duration::from_millis(1300)).await;
    for connection in [&odd_connection, &post_connection] {
        let reply = w.call(connection, "/__test/resource").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let expected = |client: IdpClient| (client.id.to_owned(), client.auth_method.to_owned(), "200".to_owned());
    for grant in ["authorization_code", "refresh_token"] {
        assert_eq!(token_events(&w.idp, grant).await, [expected(ODD), expected(POST)], "{grant}");
    }

    // The IdP accepts only the registered method, so a connector that names the wrong one
    // fails its sign-in: the setting is what decides.
    let mut wrong_body = code_connector(&w.idp, BASIC);
    credential(&mut wrong_body)["customParameters"] = json!({"clientAuthentication": "client_secret_post"});
    let wrong = w.connector(&wrong_body).await;
    let (connection, authorize_url) = w.pending(&wrong).await;
    let page = w.finish(&authorize_url).await;
    assert!(page.text.contains("Sign-in failed"), "{}", page.text);
    let failed = w.connection(&connection).await;
    assert_eq!(failed["status"], "error", "{failed}");
    assert!(string(&failed, "statusReason").contains("invalid_client"), "{failed}");
    assert!(failed.get("tokenExpiresAt").is_none(), "{failed}");
    assert_eq!(
        token_events(&w.idp, "authorization_code").await.last().cloned(),
        Some((BASIC.id.to_owned(), "client_secret_post".to_owned(), "401".to_owned()))
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Expiry, refresh and rotation.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_once_and_the_rotated_refresh_token_is_used_next() {
    let Some(w) = World::start(&[], ttl(4)) else { return };
    let tap = Tap::start(w.idp.issuer()).await;
    let connector = w.connector(&tapped_connector(&w.idp, &tap, BASIC)).await;
    let (connection, connected_at) = w.connect(&connector).await;
    let first_expiry = string(&w.connection(&connection).await, "tokenExpiresAt");

    // Past the token's expiry: the call renews it first, once, and succeeds.
    sleep_until(connected_at + Duration::from_millis(4300)).await;
    for _ in 0..3 {
        let reply = w.call(&connection, "/__test/resource").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let renewed_at = Instant::now();
    assert_eq!(w.tokens("refresh_token").await, 1, "exactly one refresh");
    let second_expiry = string(&w.connection(&connection).await, "tokenExpiresAt");
    assert!(second_expiry > first_expiry, "{first_expiry} then {second_expiry}");

    // Expired again: a second refresh, with the refresh token the first one returned.
    sleep_until(renewed_at + Duration::from_millis(4300)).await;
    let reply = w.call(&connection, "/__test/resource").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(w.tokens("refresh_token").await, 2);
    assert_eq!(resource_statuses(&w.idp).await, ["200"; 4], "no call reached the IdP with an expired token");

    let code = tap.token_exchanges("authorization_code");
    let refreshes = tap.token_exchanges("refresh_token");
    assert_eq!(refreshes.len(), 2, "{refreshes:#?}");
    let issued = [&code[0], &refreshes[0], &refreshes[1]].map(|e| string(&e.response(), "refresh_token"));
    let sent: Vec<String> = refreshes.iter().map(|e| e.form("refresh_token").expect("a refresh_token")).collect();
    assert_eq!(sent, [issued[0].clone(), issued[1].clone()], "each refresh uses the refresh token issued last");
    assert!(issued[0] != issued[1] && issued[1] != issued[2], "the IdP rotates refresh tokens");
    let access: Vec<String> = refreshes.iter().map(|e| string(&e.response(), "access_token")).collect();
    // Both renewals and the sign-in are in the audit trail (which the token check below covers).
    let renewals = audited(&w.api, &connection, "token.refresh", 2).await;
    assert_eq!(renewals.len(), 2, "{renewals:#?}");
    assert!(renewals.iter().all(|e| e["principal"] == "system" && e["outcome"] == "ok" && e["latencyMs"].is_number()));
    assert_eq!(audited(&w.api, &connection, "connection.authorized", 1).await.len(), 1);
    let calls = audited(&w.api, &connection, "call.proxy", 4).await;
    assert_eq!(calls.iter().map(|e| e["count"].as_i64().unwrap()).sum::<i64>(), 4, "{calls:#?}");
    let bearers: Vec<String> =
        tap.exchanges("/__test/resource").iter().map(|e| e.authorization.clone().expect("a bearer")).collect();
    let expected = [&access[0], &access[0], &access[0], &access[1]].map(|token| format!("Bearer {token}"));
    assert_eq!(bearers, expected, "calls carry the newest token");

    // The rotated-out refresh token is dead.
    let (status, body) = refresh_at_idp(&w.idp, BASIC, &issued[0]).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")), "{body}");
    // And nothing of it ever showed.
    let output = w.portico.output_bytes();
    for token in issued.iter().chain(&access) {
        assert!(!contains(&output, token), "a token is in Portico's output");
        assert!(w.portico.responses().iter().all(|r| !r.contains(token.as_str())), "a token is in an answer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_answers_without_a_usable_lifetime_are_renewed_when_the_backend_says_so() {
    let Some(w) = World::start(&[], ttl(4)) else { return };
    let tap = Tap::start(w.idp.issuer()).await;
    let connector = w.connector(&tapped_connector(&w.idp, &tap, BASIC)).await;

    // No expires_in: no expiry shown, no renewal until the backend rejects the token.
    tap.rewrite_expires_in(Value::Null);
    let (connection, connected_at) = w.connect(&connector).await;
    let view = w.connection(&connection).await;
    assert!(view.get("tokenExpiresAt").is_none(), "{view}");
    for _ in 0..3 {
        assert_eq!(w.call(&connection, "/__test/resource").await.status, 200);
    }
    assert_eq!(w.tokens("refresh_token").await, 0);
    sleep_until(connected_at + Duration::from_millis(4300)).await;
    for _ in 0..3 {
        let reply = w.call(&connection, "/__test/resource").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(w.tokens("refresh_token").await, 1, "renewed once, after the backend's 401");
    assert_eq!(resource_statuses(&w.idp).await, ["200", "200", "200", "401", "200", "200", "200"]);

    // 0 and an absurd lifetime say nothing usable either: neither a renewal on every call nor
    // an overflow.
    for odd in [json!(0), json!(100_000_000_000_000_000u64)] {
        tap.rewrite_expires_in(odd.clone());
        let (connection, _) = w.connect(&connector).await;
        let before = w.tokens("refresh_token").await;
        for _ in 0..5 {
            let reply = w.call(&connection, "/__test/resource").await;
            assert_eq!(reply.status, 200, "expires_in {odd}: {}", reply.text);
        }
        assert_eq!(w.tokens("refresh_token").await, before, "expires_in {odd}: no renewal of a working token");
        let view = w.connection(&connection).await;
        assert!(view.get("tokenExpiresAt").is_none(), "expires_in {odd}: {view}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. One refresh at a time.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_calls_on_an_expired_token_make_one_refresh() {
    // Five-second tokens: the renewed one stays fresh (2.5 s) for longer than the calls take.
    let Some(w) = World::start(&[], ttl(5)) else { return };
    let connector = w.connector(&code_connector(&w.idp, BASIC)).await;
    let (connection, connected_at) = w.connect(&connector).await;
    assert_eq!(w.call(&connection, "/__test/resource").await.status, 200);

    sleep_until(connected_at + Duration::from_millis(5300)).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (api, connection) = (w.api.clone(), connection.clone());
        calls.spawn(async move { call(&api, &connection, "/__test/resource").await });
    }
    let mut statuses = Vec::new();
    while let Some(reply) = calls.join_next().await {
        let reply = reply.expect("a call");
        assert_eq!(reply.status, 200, "{}", reply.text);
        statuses.push(reply.status);
    }
    assert_eq!(statuses.len(), 200);
    assert_eq!(token_events(&w.idp, "refresh_token").await.len(), 1, "exactly one refresh at the IdP");
    let resource = resource_statuses(&w.idp).await;
    assert_eq!(resource.len(), 201);
    assert!(resource.iter().all(|s| s == "200"), "every call carried a valid token: {resource:?}");
}

// ---------------------------------------------------------------------------------------------
// 5. A grant the server no longer knows.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_the_server_forgot_needs_a_new_sign_in_and_reauthorize_connects_again() {
    let Some(w) = World::start(&[], ttl(2)) else { return };
    let connector = w.connector(&code_connector(&w.idp, BASIC)).await;
    let (connection, connected_at) = w.connect(&connector).await;
    assert_eq!(w.call(&connection, "/__test/resource").await.status, 200);
    assert_eq!(w.idp.revoke_grants().await, 1);

    sleep_until(connected_at + Duration::from_millis(2300)).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (api, connection) = (w.api.clone(), connection.clone());
        calls.spawn(async move { call(&api, &connection, "/__test/resource").await });
    }
    while let Some(reply) = calls.join_next().await {
        let problem = reply.expect("a call").expect_problem(409, "connection-not-ready");
        assert!(problem.detail().contains("needs_reauth"), "{}", problem.detail());
    }
    let needs = w.connection(&connection).await;
    assert_eq!(needs["status"], "needs_reauth", "{needs}");
    assert!(string(&needs, "statusReason").contains("invalid_grant"), "the reason: {needs}");
    assert!(needs.get("tokenExpiresAt").is_none(), "the dead tokens are dropped: {needs}");
    // Later calls do not try again: one refresh attempt in all.
    for _ in 0..5 {
        w.call(&connection, "/__test/resource").await.expect_problem(409, "connection-not-ready");
    }
    assert_eq!(
        token_events(&w.idp, "refresh_token").await,
        [(BASIC.id.to_owned(), "client_secret_basic".to_owned(), "400".to_owned())]
    );
    assert_eq!(resource_statuses(&w.idp).await, ["200"], "no call went out without a token");
    // The failed renewal and the loss of the grant are in the audit trail, with the reason.
    let renewal = audited(&w.api, &connection, "token.refresh", 1).await;
    assert_eq!(renewal.len(), 1, "{renewal:#?}");
    assert!(
        string(&renewal[0], "outcome").starts_with("error: ")
            && string(&renewal[0], "outcome").contains("invalid_grant")
    );
    let lost = audited(&w.api, &connection, "connection.needs_reauth", 1).await;
    assert!(lost.len() == 1 && string(&lost[0], "outcome").contains("invalid_grant"), "{lost:#?}");

    // A new sign-in for the same connection.
    let reply = w.api.post(&format!("/v1/connections/{connection}/reauthorize"), &json!({})).await;
    let started = reply.expect_json(200);
    assert_eq!(started["id"], connection.as_str());
    assert_eq!(started["status"], "needs_reauth", "until the sign-in completes: {started}");
    let authorize_url = string(&started, "authorizeUrl");
    assert_eq!(query(&authorize_url)["client_id"], BASIC.id);
    let page = w.finish(&authorize_url).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let again = w.connection(&connection).await;
    assert_eq!(again["status"], "connected", "{again}");
    assert!(again.get("statusReason").is_none(), "{again}");
    assert_eq!(w.call(&connection, "/__test/resource").await.status, 200);
    assert_eq!(w.tokens("authorization_code").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_backend_rejects_is_renewed_once_and_the_call_retried() {
    let Some(w) = World::start(&[], ttl(60)) else { return };
    let tap = Tap::start(w.idp.issuer()).await;
    let connector = w.connector(&tapped_connector(&w.idp, &tap, BASIC)).await;
    let (connection, _) = w.connect(&connector).await;

    // The backend says the (unexpired) token is no good: one renewal, one retry, success.
    tap.reject_next_bearer_calls(1);
    let reply = w.call(&connection, "/__test/resource").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(w.tokens("refresh_token").await, 1);
    let bearers: Vec<Option<String>> = tap.exchanges("/__test/resource").into_iter().map(|e| e.authorization).collect();
    let renewed = string(&tap.token_exchanges("refresh_token")[0].response(), "access_token");
    assert_eq!(bearers.len(), 2, "{bearers:?}");
    assert_ne!(bearers[0], bearers[1], "the retry carries the new token");
    assert_eq!(bearers[1].as_deref(), Some(format!("Bearer {renewed}").as_str()));

    // Rejected again right after a renewal: the answer is relayed, no loop of renewals.
    tap.reject_next_bearer_calls(2);
    let reply = w.call(&connection, "/__test/resource").await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(w.tokens("refresh_token").await, 2, "one renewal per call at most");

    // A call with a body is not sent twice: the 401 is relayed.
    tap.reject_next_bearer_calls(1);
    let before = w.tokens("refresh_token").await;
    let request = w
        .api
        .request(reqwest::Method::POST, &format!("/v1/connections/{connection}/proxy/__test/resource"))
        .body("payload");
    assert_eq!(w.api.send(request).await.status, 401);
    assert_eq!(tap.exchanges("/__test/resource").iter().filter(|e| e.request_body == "payload").count(), 1);
    assert_eq!(w.tokens("refresh_token").await, before, "no renewal for a call that cannot be retried");
    assert_eq!(w.call(&connection, "/__test/resource").await.status, 200, "still connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_revoked_before_expiry_is_found_by_the_backends_401() {
    let Some(w) = World::start(&[], ttl(60)) else { return };
    let connector = w.connector(&code_connector(&w.idp, BASIC)).await;
    let (connection, _) = w.connect(&connector).await;
    assert_eq!(w.call(&connection, "/__test/resource").await.status, 200);
    assert_eq!(w.idp.revoke_grants().await, 1);

    // The token has not expired, but the IdP no longer takes it: 401, one renewal attempt,
    // `invalid_grant`, and the connection needs a new sign-in.
    let problem = w.call(&connection, "/__test/resource").await.expect_problem(409, "connection-not-ready");
    assert!(problem.detail().contains("needs_reauth"), "{}", problem.detail());
    assert_eq!(resource_statuses(&w.idp).await, ["200", "401"]);
    assert_eq!(token_events(&w.idp, "refresh_token").await.len(), 1);
    assert_eq!(w.connection(&connection).await["status"], "needs_reauth");
}

// ---------------------------------------------------------------------------------------------
// 6. Client credentials.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_connect_without_a_browser_and_renew_with_a_new_grant() {
    let Some(w) = World::start(&[], ttl(4)) else { return };
    let connector = w.connector(&client_credentials_connector(&w.idp, CC)).await;
    let form = w.api.get(&format!("/v1/connectors/{connector}/connection-form")).await.expect_json(200);
    assert_eq!(form["sets"][0]["oauth"]["grant"], "clientCredentials", "{form}");

    let created = w.create(&connector, json!({})).await;
    let created_at = Instant::now();
    assert_eq!(created["status"], "connected", "{created}");
    assert!(created.get("authorizeUrl").is_none(), "no browser: {created}");
    assert!(created["tokenExpiresAt"].is_string(), "{created}");
    let connection = id(&created);
    let reply = w.call(&connection, "/__test/resource").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["client_id"], CC.id);
    assert_eq!(reply.json()["scope"], "api:read");
    assert_eq!(
        token_events(&w.idp, "client_credentials").await,
        [(CC.id.to_owned(), "client_secret_basic".to_owned(), "200".to_owned())]
    );

    // After expiry: a new client-credentials token, no refresh token involved.
    sleep_until(created_at + Duration::from_millis(4300)).await;
    for _ in 0..3 {
        let reply = w.call(&connection, "/__test/resource").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(w.tokens("client_credentials").await, 2);
    assert_eq!(w.tokens("refresh_token").await, 0);
    assert_eq!(w.tokens("authorization_code").await, 0);

    // Reauthorizing fetches a new token at once.
    let again = w.api.post(&format!("/v1/connections/{connection}/reauthorize"), &json!({})).await.expect_json(200);
    assert_eq!(again["status"], "connected", "{again}");
    assert!(again.get("authorizeUrl").is_none(), "{again}");
    assert_eq!(w.tokens("client_credentials").await, 3);

    // A client the IdP refuses: no connection is left behind.
    let bad = w.connector(&client_credentials_connector(&w.idp, IdpClient { secret: Some("wrong"), ..CC })).await;
    let refused = w.api.post("/v1/connections", &json!({"connectorId": bad})).await;
    assert_eq!(refused.status, 502, "{}", refused.text);
    assert!(refused.text.contains("invalid_client"), "{}", refused.text);
    let listed = w.api.get(&format!("/v1/connections?connectorId={bad}")).await.expect_json(200);
    assert_eq!(listed["items"], json!([]), "{listed}");
}

// ---------------------------------------------------------------------------------------------
// 7. A failing token endpoint.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_keeps_the_valid_token_backs_off_and_recovers() {
    // Four-second tokens: renewed from two seconds on (half the lifetime), expired at four.
    let Some(w) = World::start(&[], ttl(4)) else { return };
    let connector = w.connector(&code_connector(&w.idp, BASIC)).await;
    let (connection, connected_at) = w.connect(&connector).await;
    w.idp.fail_next(2, 503, Duration::ZERO).await;

    // Due for renewal, still valid: the renewal fails, the calls go on with the old token, and
    // the next ones do not try again at once.
    sleep_until(connected_at + Duration::from_millis(2200)).await;
    for _ in 0..3 {
        let reply = w.call(&connection, "/__test/resource").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(token_events(&w.idp, "refresh_token").await.len(), 1, "one attempt, then back-off");
    assert_eq!(w.connection(&connection).await["status"], "connected");

    // Expired, and the endpoint still fails: 502, and again back-off rather than one attempt
    // per call.
    sleep_until(connected_at + Duration::from_millis(4400)).await;
    let problem = w.call(&connection, "/__test/resource").await.expect_problem(502, "backend-unreachable");
    // The back-off (now two seconds) counts from the failure, which is before this point.
    let failed_at = Instant::now();
    assert!(problem.detail().contains("could not be renewed"), "{}", problem.detail());
    for _ in 0..5 {
        w.call(&connection, "/__test/resource").await.expect_problem(502, "backend-unreachable");
    }
    let statuses: Vec<String> = token_events(&w.idp, "refresh_token").await.into_iter().map(|e| e.2).collect();
    assert_eq!(statuses, ["503", "503"]);
    assert_eq!(w.connection(&connection).await["status"], "connected", "a transient failure needs no sign-in");
    assert_eq!(resource_statuses(&w.idp).await, ["200"; 3], "no call went out with an expired token");

    // The endpoint works again: once the back-off has passed, the next call renews and succeeds.
    sleep_until(failed_at + Duration::from_millis(2100)).await;
    let reply = w.call(&connection, "/__test/resource").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let statuses: Vec<String> = token_events(&w.idp, "refresh_token").await.into_iter().map(|e| e.2).collect();
    assert_eq!(statuses, ["503", "503", "200"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_failure_backs_off_from_when_it_failed() {
    let Some(w) = World::start(&[], ttl(2)) else { return };
    let connector = w.connector(&code_connector(&w.idp, BASIC)).await;
    let (connection, connected_at) = w.connect(&connector).await;
    // Each failure takes longer than the first back-off step (one second).
    w.idp.fail_next(4, 503, Duration::from_millis(1500)).await;

    sleep_until(connected_at + Duration::from_millis(2300)).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (api, connection) = (w.api.clone(), connection.clone());
        calls.spawn(async move { call(&api, &connection, "/__test/resource").await });
    }
    while let Some(reply) = calls.join_next().await {
        reply.expect("a call").expect_problem(502, "backend-unreachable");
    }
    let done = Instant::now();
    assert_eq!(
        token_events(&w.idp, "refresh_token").await.len(),
        1,
        "the calls that waited for the failed attempt do not each try again"
    );

    w.idp.fail_next(0, 503, Duration::ZERO).await;
    sleep_until(done + Duration::from_millis(1200)).await;
    let reply = w.call(&connection, "/__test/resource").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(w.tokens("refresh_token").await, 2);
}

// ---------------------------------------------------------------------------------------------
// 8. The state: forged, replayed, from another instance, of another tenant.
// ---------------------------------------------------------------------------------------------

// An expired state cannot be made from outside without waiting ten minutes: the store's test
// `a_sign_in_state_is_taken_once_and_not_after_it_expires` (crates/store/tests/sqlite.rs)
// covers expiry, and the callback treats an expired state like an unknown one (below).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_foreign_states_are_refused_and_change_nothing() {
    // Two Portico instances with their own data directories, one IdP for both.
    let a = Portico::start_with(&[PRIVATE]);
    let b = Portico::start_with(&[PRIVATE]);
    let options = IdpOptions { redirect_uris: vec![callback_of(&a), callback_of(&b)], ..ttl(60) };
    let Some(idp) = Idp::try_start(&options) else { return };
    let w = World { api: a.api(), portico: a, idp, web: Web::new() };
    let connector = w.connector(&code_connector(&w.idp, BASIC)).await;
    let (connection, authorize_url) = w.pending(&connector).await;
    let redirect = w.sign_in(&authorize_url).await;
    assert_eq!(w.web.get(&redirect).await.status, 200);
    let before = w.connection(&connection).await;
    assert_eq!(before["status"], "connected");

    // Replayed: the same callback again.
    assert_refused(&w.web.get(&redirect).await, "a replayed state");
    let replayed_error = format!("{}?state={}&error=access_denied", w.callback(), query(&redirect)["state"]);
    assert_refused(&w.web.get(&replayed_error).await, "a replayed state with an error");

    // Forged, missing, empty, oversized.
    let cb = w.callback();
    let forged = distinctive("forged-");
    let long = "x".repeat(600);
    for (what, url) in [
        ("a forged state", format!("{cb}?state={forged}&code=abc")),
        ("a forged state with an error", format!("{cb}?state={forged}&error=access_denied&error_description=no")),
        ("no state", format!("{cb}?code=abc")),
        ("an empty state", format!("{cb}?state=&code=abc")),
        ("an oversized state", format!("{cb}?state={long}&code=abc")),
        ("nothing", cb.clone()),
    ] {
        assert_refused(&w.web.get(&url).await, what);
    }
    let after = w.connection(&connection).await;
    assert_eq!(after, before, "refused callbacks change nothing");
    assert_eq!(w.call(&connection, "/__test/resource").await.status, 200);
    assert_eq!(w.tokens("authorization_code").await, 1, "no refused callback reached the IdP");

    // A state of another instance (another data directory) means nothing here...
    let b_api = b.api();
    let b_connector = id(&b_api.create_connector(&code_connector(&w.idp, BASIC)).await);
    let b_created = b_api.create_connection(&json!({"connectorId": b_connector})).await;
    let b_connection = id(&b_created);
    let b_redirect = Browser::new().sign_in(&string(&b_created, "authorizeUrl"), "bob", &callback_of(&b)).await;
    assert_refused(&w.web.get(&rebased(&b_redirect, &w.portico.base)).await, "another instance's state");
    let b_view = b_api.get(&format!("/v1/connections/{b_connection}")).await.expect_json(200);
    assert_eq!(b_view["status"], "pending", "{b_view}");
    assert_eq!(w.connection(&connection).await, before);
    assert_eq!(w.tokens("authorization_code").await, 1);
    // ...and is still good at home.
    assert_eq!(w.web.get(&b_redirect).await.status, 200);
    let b_view = b_api.get(&format!("/v1/connections/{b_connection}")).await.expect_json(200);
    assert_eq!(b_view["status"], "connected", "{b_view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_completes_only_the_connection_it_was_made_for_whatever_the_tenant() {
    let Some(w) = World::start(&[], ttl(60)) else { return };
    let b_key = w.portico.tenant_key("create", "tenant-b");
    let b_api = w.portico.client(Some(&b_key));
    let a_connector = w.connector(&code_connector(&w.idp, BASIC)).await;
    let b_connector = id(&b_api.create_connector(&code_connector(&w.idp, BASIC)).await);
    let (a_connection, a_url) = w.pending(&a_connector).await;
    let b_created = b_api.create_connection(&json!({"connectorId": b_connector})).await;
    let b_connection = id(&b_created);
    let b_url = string(&b_created, "authorizeUrl");

    // Tenant A's sign-in, finished: A's connection is connected, B's is untouched.
    let a_redirect = w.sign_in(&a_url).await;
    assert_eq!(w.web.get(&a_redirect).await.status, 200);
    assert_eq!(w.connection(&a_connection).await["status"], "connected");
    let b_path = format!("/v1/connections/{b_connection}");
    assert_eq!(b_api.get(&b_path).await.expect_json(200)["status"], "pending");
    // Neither tenant sees the other's connection, nor can start its sign-in.
    b_api.get(&format!("/v1/connections/{a_connection}")).await.expect_problem(404, "not-found");
    w.api.get(&b_path).await.expect_problem(404, "not-found");
    w.api.post(&format!("{b_path}/reauthorize"), &json!({})).await.expect_problem(404, "not-found");
    w.call(&b_connection, "/__test/resource").await.expect_problem(404, "not-found");

    // A's used state cannot finish B's sign-in either; B's own state does.
    let b_redirect = Browser::new().sign_in(&b_url, "bob", &w.callback()).await;
    let mut crossed = Url::parse(&b_redirect).expect("a URL");
    let pairs: Vec<(String, String)> = crossed
        .query_pairs()
        .into_owned()
        .map(|(k, v)| if k == "state" { (k, query(&a_redirect)["state"].clone()) } else { (k, v) })
        .collect();
    crossed.query_pairs_mut().clear().extend_pairs(pairs);
    assert_refused(&w.web.get(crossed.as_str()).await, "A's used state with B's code");
    assert_eq!(b_api.get(&b_path).await.expect_json(200)["status"], "pending");
    assert_eq!(w.web.get(&b_redirect).await.status, 200);
    assert_eq!(b_api.get(&b_path).await.expect_json(200)["status"], "connected");
    let me = call(&b_api, &b_connection, "/me").await;
    assert_eq!((me.status, &me.json()["sub"]), (200, &json!("bob")), "B's connection is bob's: {}", me.text);
    let me = w.call(&a_connection, "/me").await;
    assert_eq!((me.status, &me.json()["sub"]), (200, &json!("alice")), "A's connection is alice's: {}", me.text);
}

// ---------------------------------------------------------------------------------------------
// 9. PKCE verifier mismatch.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_delivered_with_another_sign_ins_state_fails_the_pkce_check_and_stores_no_token() {
    let Some(w) = World::start(&[], ttl(60)) else { return };
    let connector = w.connector(&code_connector(&w.idp, BASIC)).await;
    let (x, x_url) = w.pending(&connector).await;
    let (y, y_url) = w.pending(&connector).await;

    // X's sign-in at the IdP, its code delivered with Y's state: Portico sends Y's verifier,
    // which does not match the challenge X's code was issued for.
    let redirect = w.sign_in(&x_url).await;
    let mut tampered = Url::parse(&redirect).expect("a URL");
    let y_state = query(&y_url)["state"].clone();
    let pairs: Vec<(String, String)> = tampered
        .query_pairs()
        .into_owned()
        .map(|(k, v)| if k == "state" { (k, y_state.clone()) } else { (k, v) })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let page = w.web.get(tampered.as_str()).await;
    assert!(page.text.contains("Sign-in failed"), "{}", page.text);
    assert!(page.text.contains("invalid_grant"), "the page gives the reason: {}", page.text);

    assert_eq!(
        token_events(&w.idp, "authorization_code").await,
        [(BASIC.id.to_owned(), "client_secret_basic".to_owned(), "400".to_owned())],
        "the IdP refused the exchange"
    );
    let failed = w.connection(&y).await;
    assert_eq!(failed["status"], "error", "{failed}");
    assert!(string(&failed, "statusReason").contains("invalid_grant"), "{failed}");
    assert!(failed.get("tokenExpiresAt").is_none(), "no token stored: {failed}");
    let problem = w.call(&y, "/__test/resource").await.expect_problem(409, "connection-not-ready");
    assert!(problem.detail().contains("error"), "{}", problem.detail());
    assert_eq!(w.connection(&x).await["status"], "pending", "X's state was never used");
    assert_eq!(resource_statuses(&w.idp).await, Vec::<String>::new());
    // Y's state is spent.
    assert_refused(&w.web.get(tampered.as_str()).await, "Y's state again");
}

// ---------------------------------------------------------------------------------------------
// 10. The user refuses.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sign_in_leaves_the_connection_in_error_with_the_reason() {
    let Some(w) = World::start(&[], ttl(60)) else { return };
    let connector = w.connector(&code_connector(&w.idp, BASIC)).await;
    let (connection, authorize_url) = w.pending(&connector).await;
    let redirect = Browser::new().refuse(&authorize_url, &w.callback()).await;
    assert_eq!(query(&redirect)["error"], "access_denied", "{redirect}");
    let page = w.web.get(&redirect).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Sign-in failed") && page.text.contains("access_denied"), "{}", page.text);
    let failed = w.connection(&connection).await;
    assert_eq!(failed["status"], "error", "{failed}");
    assert!(string(&failed, "statusReason").contains("access_denied"), "{failed}");
    let problem = w.call(&connection, "/__test/resource").await.expect_problem(409, "connection-not-ready");
    assert!(problem.detail().contains("access_denied"), "{}", problem.detail());
    assert_eq!(w.idp.stats().await["token"], json!({}), "no token request");

    // With a returnUrl, the browser goes back there with status=error.
    let return_url = format!("{}/app/done?tab=1", w.portico.base);
    let created = w.create(&connector, json!({"returnUrl": return_url})).await;
    let redirect = Browser::new().refuse(&string(&created, "authorizeUrl"), &w.callback()).await;
    let reply = w.web.get(&redirect).await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    assert_eq!(reply.header("location"), Some(format!("{return_url}&status=error").as_str()));
    assert_eq!(w.connection(&id(&created)).await["status"], "error");

    // Signing in again repairs it.
    let again = w.api.post(&format!("/v1/connections/{connection}/reauthorize"), &json!({})).await.expect_json(200);
    assert_eq!(w.finish(&string(&again, "authorizeUrl")).await.status, 200);
    let repaired = w.connection(&connection).await;
    assert_eq!(repaired["status"], "connected", "{repaired}");
    assert!(repaired.get("statusReason").is_none(), "{repaired}");

    // What the redirect says is repeated, but briefly and on one line.
    let (wordy, authorize_url) = w.pending(&connector).await;
    let state = query(&authorize_url)["state"].clone();
    let long = "x".repeat(2_000);
    let forged_line =
        format!("{}?state={state}&error=access_denied&error_description=no%0D%0AERROR%20forged%20{long}", w.callback());
    assert_eq!(w.web.get(&forged_line).await.status, 200);
    let reason = string(&w.connection(&wordy).await, "statusReason");
    assert!(reason.contains("access_denied: no ERROR forged x"), "{reason}");
    assert!(!reason.contains(['\r', '\n']) && reason.chars().count() < 400 && reason.ends_with('…'), "{reason}");
}

/// `url` with its query parameter `name` set to `value`, or left out when `None`.
fn with_iss(url: &str, value: Option<&str>) -> String {
    let mut url = Url::parse(url).expect("a URL");
    let pairs: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| k != "iss").map(|(k, v)| (k.into(), v.into())).collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    if let Some(value) = value {
        url.query_pairs_mut().append_pair("iss", value);
    }
    url.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_response_from_another_issuer_or_without_one_is_refused() {
    // oidc-provider names its issuer in every authorization response and says so in its
    // discovery document (RFC 9207).
    let Some(w) = World::start(&[], ttl(60)) else { return };
    let connector = w.connector(&discovery_connector(&w.idp, BASIC)).await;
    for (forged, reason) in [(Some("https://evil.example"), "another issuer"), (None, "names no issuer")] {
        let (connection, authorize_url) = w.pending(&connector).await;
        let redirect = w.sign_in(&authorize_url).await;
        assert_eq!(query(&redirect).get("iss").map(String::as_str), Some(w.idp.issuer()), "{redirect}");
        let page = w.web.get(&with_iss(&redirect, forged)).await;
        assert!(page.text.contains("Sign-in failed"), "{}", page.text);
        let failed = w.connection(&connection).await;
        assert_eq!(failed["status"], "error", "{failed}");
        assert!(string(&failed, "statusReason").contains(reason), "{failed}");
    }
    assert_eq!(w.idp.stats().await["token"], json!({}), "no code was exchanged");
    // The provider's own response signs in.
    let (connection, authorize_url) = w.pending(&connector).await;
    assert_eq!(w.finish(&authorize_url).await.status, 200);
    assert_eq!(w.connection(&connection).await["status"], "connected");
}

// ---------------------------------------------------------------------------------------------
// 11. Where the browser goes afterwards.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_urls_are_limited_to_the_public_and_the_allowed_origins() {
    let Some(w) = World::start(&["--allowed-return-origin", "https://app.example"], ttl(60)) else { return };
    let connector = w.connector(&code_connector(&w.idp, BASIC)).await;

    for return_url in [format!("{}/after?x=1", w.portico.base), "https://app.example/done".to_owned()] {
        let created = w.create(&connector, json!({"returnUrl": return_url})).await;
        let reply = w.finish(&string(&created, "authorizeUrl")).await;
        assert_eq!(reply.status, 303, "{return_url}: {}", reply.text);
        let separator = if return_url.contains('?') { '&' } else { '?' };
        assert_eq!(reply.header("location"), Some(format!("{return_url}{separator}status=connected").as_str()));
        assert_eq!(w.connection(&id(&created)).await["status"], "connected");
    }

    let count = |list: Value| list["items"].as_array().map_or(0, Vec::len);
    let before = count(w.api.get("/v1/connections").await.expect_json(200));
    for bad in [
        "https://evil.example/after",
        "http://app.example/done",
        "https://app.example.evil.example/",
        "https://app.example:8443/",
        "http://127.0.0.1:1/after",
        "//evil.example/x",
        "/relative",
        "javascript:alert(1)",
    ] {
        let reply = w.api.post("/v1/connections", &json!({"connectorId": connector, "returnUrl": bad})).await;
        let problem = reply.expect_problem(422, "validation");
        assert_eq!(problem.fields(), ["returnUrl"], "{bad}");
    }
    assert_eq!(count(w.api.get("/v1/connections").await.expect_json(200)), before, "nothing created");

    let (connection, _) = w.pending(&connector).await;
    let reply = w
        .api
        .post(&format!("/v1/connections/{connection}/reauthorize"), &json!({"returnUrl": "https://evil.example/"}))
        .await;
    assert_eq!(reply.expect_problem(422, "validation").fields(), ["returnUrl"]);
}

// ---------------------------------------------------------------------------------------------
// 12. Revocation on delete.
// ---------------------------------------------------------------------------------------------

/// Waits until the IdP logged `n` revocation calls: their fields.
async fn revocations(idp: &Idp, n: usize) -> Vec<std::collections::BTreeMap<String, String>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events = idp.log_events("REVOKE").await;
        if events.len() >= n || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_connection_revokes_its_refresh_token() {
    let Some(w) = World::start(&[], ttl(60)) else { return };
    let tap = Tap::start(w.idp.issuer()).await;
    let mut body = tapped_connector(&w.idp, &tap, BASIC);
    credential(&mut body)["customParameters"] = json!({"revocationUrl": w.idp.url("/token/revocation")});
    let connector = w.connector(&body).await;
    let (connection, _) = w.connect(&connector).await;
    let refresh_token = string(&tap.token_exchanges("authorization_code")[0].response(), "refresh_token");

    w.api.delete(&format!("/v1/connections/{connection}")).await.expect_empty(204);
    let revoked = revocations(&w.idp, 1).await;
    assert_eq!(revoked.len(), 1, "one revocation: {revoked:?}");
    assert_eq!(revoked[0]["client"], BASIC.id);
    assert_eq!(revoked[0]["auth"], "client_secret_basic");
    assert_eq!(revoked[0]["status"], "200");
    let (status, refreshed) = refresh_at_idp(&w.idp, BASIC, &refresh_token).await;
    assert_eq!((status, &refreshed["error"]), (400, &json!("invalid_grant")), "dead after revocation: {refreshed}");

    // Without a revocation endpoint nothing is called.
    let plain = w.connector(&code_connector(&w.idp, BASIC)).await;
    let (connection, _) = w.connect(&plain).await;
    w.api.delete(&format!("/v1/connections/{connection}")).await.expect_empty(204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.idp.log_events("REVOKE").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openid_connect_provider_is_used_from_its_discovery_document_revocation_included() {
    let Some(w) = World::start(&[], ttl(2)) else { return };
    // post-client may only use client_secret_post: the connector says so.
    let mut body = discovery_connector(&w.idp, POST);
    credential(&mut body)["customParameters"] = json!({"clientAuthentication": "client_secret_post"});
    let connector = w.connector(&body).await;
    let (connection, authorize_url) = w.pending(&connector).await;
    assert!(authorize_url.starts_with(&format!("{}?", w.idp.url("/auth"))), "{authorize_url}");
    let scope = query(&authorize_url)["scope"].clone();
    assert_eq!(scope, "offline_access api:read openid", "OpenID Connect adds openid");
    let page = w.finish(&authorize_url).await;
    let connected_at = Instant::now();
    assert_eq!(page.status, 200, "{}", page.text);
    let me = w.call(&connection, "/me").await;
    assert_eq!((me.status, &me.json()["sub"]), (200, &json!("alice")), "{}", me.text);
    sleep_until(connected_at + Duration::from_millis(2300)).await;
    assert_eq!(w.call(&connection, "/me").await.status, 200, "renewed at the discovered token endpoint");
    let expected = [(POST.id.to_owned(), "client_secret_post".to_owned(), "200".to_owned())];
    assert_eq!(token_events(&w.idp, "authorization_code").await, expected);
    assert_eq!(token_events(&w.idp, "refresh_token").await, expected);

    w.api.delete(&format!("/v1/connections/{connection}")).await.expect_empty(204);
    let revoked = revocations(&w.idp, 1).await;
    assert_eq!(revoked.len(), 1, "the discovered revocation endpoint is called: {revoked:?}");
    assert_eq!(revoked[0]["status"], "200", "{revoked:?}");
    assert_eq!(revoked[0]["auth"], "client_secret_post", "{revoked:?}");
}

// ---------------------------------------------------------------------------------------------
// 13. The connection form and the redirect URI behind a reverse proxy.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_reverse_proxy_the_redirect_uri_is_the_public_urls() {
    // Browsers reach Portico at the public URL; the test plays the reverse proxy and delivers
    // the callback to Portico's own address.
    let public = "http://localhost:9/portico/";
    let portico = Portico::start_with(&[PRIVATE, "--public-url", public]);
    let redirect_uri = "http://localhost:9/portico/oauth/callback";
    let Some(idp) = Idp::try_start(&IdpOptions { redirect_uris: vec![redirect_uri.to_owned()], ..ttl(60) }) else {
        return;
    };
    let w = World { api: portico.api(), portico, idp, web: Web::new() };
    let connector = w.connector(&code_connector(&w.idp, BASIC)).await;

    let form = w.api.get(&format!("/v1/connectors/{connector}/connection-form")).await.expect_json(200);
    assert_eq!(form["redirectUri"], redirect_uri, "{form}");
    assert_eq!(form["sets"][0]["auth"], "oauth2", "{form}");
    assert_eq!(form["sets"][0]["oauth"]["identityProvider"], "oauth2", "{form}");
    assert_eq!(form["sets"][0]["oauth"]["scopes"], json!(["openid", "offline_access", "api:read"]), "{form}");

    let return_url = "http://localhost:9/portico/app";
    let created = w.create(&connector, json!({"returnUrl": return_url})).await;
    let connection = id(&created);
    let authorize_url = string(&created, "authorizeUrl");
    assert_eq!(query(&authorize_url)["redirect_uri"], redirect_uri);
    let redirect = Browser::new().sign_in(&authorize_url, "alice", redirect_uri).await;
    let reply = w.web.get(&rebased(&redirect, &w.portico.base)).await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    assert_eq!(reply.header("location"), Some("http://localhost:9/portico/app?status=connected"));
    let connected = w.connection(&connection).await;
    assert_eq!(connected["status"], "connected", "{connected}");
    assert!(connected["tokenExpiresAt"].is_string(), "{connected}");
    for key in ["tokens", "accessToken", "refreshToken", "access_token", "refresh_token"] {
        assert!(connected.get(key).is_none(), "{key} in {connected}");
    }
    assert_eq!(w.call(&connection, "/me").await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Without `--allow-private-backends`: identity providers on private addresses.
// ---------------------------------------------------------------------------------------------

/// A loopback port that counts the connections it accepts (and answers none).
struct Watched {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Watched {
    async fn start() -> Watched {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Watched { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// `definition` as a connector body named `name`, with a client.
fn named(mut definition: Value, name: &str) -> Value {
    definition["metadata"]["name"] = json!(name);
    definition["backend"]["host"] = json!("api.example.com");
    with_client(definition, BASIC)
}

#[tokio::test]
async fn an_identity_provider_on_a_private_address_is_refused_before_any_connection() {
    let portico = Portico::start();
    let api = portico.api();
    let watched = Watched::start().await;
    let port = watched.port;
    let closed = portico_testkit::spare_port();

    // Client credentials: the token is fetched as the connection is made.
    let mut details = Vec::new();
    for (i, token_url) in [
        format!("http://127.0.0.1:{port}/token"),
        format!("http://localhost:{port}/token"),
        format!("http://[::ffff:127.0.0.1]:{port}/token"),
        format!("http://127.0.0.1:{closed}/token"),
    ]
    .iter()
    .enumerate()
    {
        let mut definition = fixture::json("oauth/client-credentials.json");
        definition["connection"]["credential"]["tokenUrl"] = json!(token_url);
        let connector = id(&api.create_connector(&named(definition, &format!("app-{i}"))).await);
        let reply = api.post("/v1/connections", &json!({"connectorId": connector})).await;
        let problem = reply.expect_problem(403, "backend-not-allowed");
        assert!(problem.detail().contains("--allow-private-backends"), "{token_url}: {}", problem.detail());
        details.push(problem.detail().to_owned());
    }
    assert!(details.windows(2).all(|pair| pair[0] == pair[1]), "an open port and a closed one look alike: {details:?}");

    // Discovery: read as a connection that signs in is made.
    let mut definition = fixture::json("oauth/discovery.json");
    definition["connection"]["credential"]["discoveryUrl"] =
        json!(format!("http://127.0.0.1:{port}/.well-known/openid-configuration"));
    let connector = id(&api.create_connector(&named(definition, "oidc")).await);
    let reply = api.post("/v1/connections", &json!({"connectorId": connector})).await;
    assert_eq!(reply.expect_problem(403, "backend-not-allowed").detail(), details[0]);
    let listed = api.get("/v1/connections").await.expect_json(200);
    assert_eq!(listed["items"], json!([]), "the refusals left nothing behind");

    // The code exchange, when the browser comes back with a code.
    let mut definition = fixture::json("oauth/code.json");
    definition["connection"]["credential"]["authorizationUrl"] = json!(format!("http://127.0.0.1:{port}/auth"));
    definition["connection"]["credential"]["tokenUrl"] = json!(format!("http://127.0.0.1:{port}/token"));
    let connector = id(&api.create_connector(&named(definition, "code")).await);
    let created = api.create_connection(&json!({"connectorId": connector})).await;
    let state = query(&string(&created, "authorizeUrl"))["state"].clone();
    let callback = format!("{}/oauth/callback?state={state}&code=a-code", portico.base);
    Web::new().get(&callback).await;
    let failed = api.get(&format!("/v1/connections/{}", id(&created))).await.expect_json(200);
    assert_eq!(failed["status"], "error", "{failed}");
    assert!(string(&failed, "statusReason").contains("non-public address"), "{failed}");

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(watched.accepted(), 0, "no request reached the loopback port");
}
