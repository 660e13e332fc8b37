//! Who may do what, end to end: the roles (`admin`, `author`, `user`), end users' own and
//! shared connections, keys narrowed to some connections, revocation and expiry, and a proxy
//! that checks all of it on every call without asking the store.
//!
//! The rules are `portico_app::access`; [`MATRIX`] states them for every `/v1` route. What a
//! caller may not see answers 404 like a missing thing, what it sees but may not do answers
//! 403, and a missing, revoked or expired key answers 401.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::backend::Backend;
use common::{Api, MISSING_ID, Portico, Reply, contains, distinctive, fixture};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The recording backend is on loopback.
const PRIVATE: &str = "--allow-private-backends";

// ---------------------------------------------------------------------------------------------
// The fixture: one tenant, its keys, a connector and connections of different owners.

/// An API key made for a test: its id, the key itself, and a client that sends it.
struct Key {
    id: String,
    key: String,
    api: Api,
}

/// A connection and the secret its credential carries.
struct Connection {
    id: String,
    secret: String,
}

/// Tenant `default` with an admin, an author and two end users' keys (`ann`, `bob`); a
/// connector that puts an API key in a header, with the recording backend as its backend; one
/// connection of ann's, one of bob's and one of the tenant itself (owned by nobody); a member.
struct Fixture {
    backend: Backend,
    portico: Portico,
    /// The key of `<data dir>/admin-api-key`.
    admin: Api,
    author: Key,
    ann: Key,
    bob: Key,
    /// The body that creates the connector.
    definition: Value,
    connector: String,
    ann_connection: Connection,
    bob_connection: Connection,
    tenant_connection: Connection,
    member: String,
    webhook: String,
    session: String,
}

impl Fixture {
    async fn start() -> Fixture {
        let backend = Backend::start().await;
        let portico = Portico::start_with(&[PRIVATE]);
        let admin = portico.api();
        let mut definition = fixture::json("calls/api-key-header.json");
        definition["backend"]["host"] = json!(backend.authority());
        let definition = json!({ "definition": definition });
        let connector = id(&admin.create_connector(&definition).await);
        let author = new_key(&portico, &admin, json!({"name": "connector author", "role": "author"})).await;
        let ann = new_key(&portico, &admin, user_key("ann")).await;
        let bob = new_key(&portico, &admin, user_key("bob")).await;
        let member = id(&admin
            .post("/v1/members", &json!({"email": "member@example.org", "role": "user"}))
            .await
            .expect_json(201));
        let webhook =
            id(&admin.post("/v1/webhooks", &json!({"url": "http://127.0.0.1:9/hook"})).await.expect_json(201));
        let session = id(&admin.post("/v1/connect-sessions", &json!({"endUserId": "ann"})).await.expect_json(201));
        Fixture {
            webhook,
            session,
            ann_connection: connect(&admin, &connector, Some("ann")).await,
            bob_connection: connect(&admin, &connector, Some("bob")).await,
            tenant_connection: connect(&admin, &connector, None).await,
            backend,
            portico,
            admin,
            author,
            ann,
            bob,
            definition,
            connector,
            member,
        }
    }

    /// Another connection of this connector, owned by `owner` (or by the tenant).
    async fn connect(&self, owner: Option<&str>) -> Connection {
        connect(&self.admin, &self.connector, owner).await
    }

    /// A new key, made by the admin.
    async fn key(&self, body: Value) -> Key {
        new_key(&self.portico, &self.admin, body).await
    }

    /// One client connection to the server with `key`.
    async fn open(&self, key: &Key) -> OneConnection {
        OneConnection::open(&self.portico, &key.key).await
    }
}

/// `POST /v1/api-keys` as `admin`, expecting 201: the key and a client of `portico` with it.
async fn new_key(portico: &Portico, admin: &Api, body: Value) -> Key {
    let created = admin.post("/v1/api-keys", &body).await.expect_json(201);
    let key = created["key"].as_str().expect("the key, shown this once").to_owned();
    Key { id: id(&created), api: portico.client(Some(&key)), key }
}

/// The body of a user key acting as `end_user`.
fn user_key(end_user: &str) -> Value {
    json!({"name": format!("{end_user}'s app"), "role": "user", "endUserId": end_user})
}

/// A connection of `connector` made by `admin` for `owner` (none: the tenant's own), with a
/// distinctive secret.
async fn connect(admin: &Api, connector: &str, owner: Option<&str>) -> Connection {
    let secret = distinctive("secret-");
    let mut body = json!({"connectorId": connector, "parameters": {"api_key": secret}});
    if let Some(owner) = owner {
        body["endUserId"] = json!(owner);
    }
    let created = admin.create_connection(&body).await;
    assert_eq!(created["endUserId"], json!(owner), "{created}");
    Connection { id: id(&created), secret }
}

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap_or_else(|| panic!("an id in {value}")).to_owned()
}

fn connection_path(id: &str) -> String {
    format!("/v1/connections/{id}")
}

/// A proxied `GET` through connection `id` (the backend answers `ok`).
fn call_path(id: &str) -> String {
    format!("/v1/connections/{id}/proxy/ok")
}

/// The ids of the items `api` lists at `path`, sorted.
async fn listed(api: &Api, path: &str) -> Vec<String> {
    let page = api.get(path).await.expect_json(200);
    let mut ids: Vec<String> = page["items"].as_array().expect("items").iter().map(id).collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    ids.sort();
    ids
}

/// A number no other call in this process gets.
fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `at` as RFC 3339 in UTC, to the millisecond.
fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).expect("after 1970");
    let (days, seconds) = (since.as_secs() / 86_400, since.as_secs() % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let (era, day_of_era) = (z / 146_097, z % 146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    let (hour, minute, second) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:03}Z", since.subsec_millis())
}

/// The start of a body, for messages.
fn brief(text: &str) -> String {
    text.chars().take(240).collect()
}

// ---------------------------------------------------------------------------------------------
// One client connection, and never another.

/// One client connection to Portico, as a keep-alive client holds it: what the server
/// remembers per client connection (the last `Authorization` and the connection it named) is
/// exercised for sure. A request the server can no longer take on it fails the test, rather
/// than going out on a new connection.
struct OneConnection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
    authorization: String,
    /// Every body read on it.
    bodies: Vec<String>,
}

impl OneConnection {
    async fn open(portico: &Portico, key: &str) -> OneConnection {
        let host = portico.base.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&host).await.expect("portico accepts a connection");
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("an HTTP/1.1 connection");
        tokio::spawn(connection);
        OneConnection { sender, host, authorization: format!("Bearer {key}"), bodies: Vec::new() }
    }

    async fn send(&mut self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("authorization", &self.authorization)
            .header("content-type", "application/json");
        let bytes = body.map(|body| body.to_string()).unwrap_or_default();
        let request = request.body(Full::new(Bytes::from(bytes))).expect("a request");
        self.sender.ready().await.expect("the client connection is still open");
        let response = self.sender.send_request(request).await.expect("portico answers on this client connection");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("a readable body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        self.bodies.push(text.clone());
        Reply { status: parts.status.as_u16(), headers: parts.headers, text }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    /// A proxied `GET` through connection `id`.
    async fn call(&mut self, id: &str) -> Reply {
        self.get(&call_path(id)).await
    }
}

// ---------------------------------------------------------------------------------------------
// The matrix: every `/v1` route, as each role meets it.

/// Who asks, in the order of a row's statuses. Ann and bob are end users with user keys; ann
/// owns `{ann}`, bob owns `{bob}`. The last asker is the admin of another tenant.
const ASKERS: [&str; 5] = ["admin", "author", "ann", "bob", "another tenant's admin"];

/// One route, and the status each of [`ASKERS`] gets from it.
struct Row {
    method: Method,
    /// The path, with names of the fixture's ids (see [`Fixture::resolve`]).
    path: &'static str,
    /// A JSON body, with the same names; `{definition}` is the connector's body.
    body: Option<&'static str>,
    statuses: [u16; 5],
}

const fn row(method: Method, path: &'static str, body: Option<&'static str>, statuses: [u16; 5]) -> Row {
    Row { method, path, body, statuses }
}

const DEFINITION: Option<&str> = Some("{definition}");
const NEW_CONNECTION: Option<&str> = Some(r#"{"connectorId": "{connector}", "parameters": {"api_key": "k"}}"#);
const NEW_MEMBER: Option<&str> = Some(r#"{"email": "m{unique}@example.org", "role": "user"}"#);
const NEW_KEY: Option<&str> = Some(r#"{"name": "matrix", "role": "author"}"#);
const RENAME: Option<&str> = Some(r#"{"displayName": "Renamed"}"#);
const NEW_SESSION: Option<&str> = Some(r#"{"endUserId": "ann"}"#);
const NEW_WEBHOOK: Option<&str> = Some(r#"{"url": "http://127.0.0.1:9/hook"}"#);
const DISABLE: Option<&str> = Some(r#"{"enabled": false}"#);
const SHARE: Option<&str> = Some(r#"{"permission": "use"}"#);
const NO_PARAMETERS: Option<&str> = Some("{}");
const AUTHOR: Option<&str> = Some(r#"{"role": "author"}"#);

/// The access rules for every `/v1` route: the status each asker gets.
///
/// `{connector}`, `{key}` (the author's) and `{member}` are the fixture's; `{ann}`, `{bob}`
/// and `{tenant}` are connections owned by ann, by bob and by the tenant itself. A
/// `{fresh-…}` is a throwaway made for the one request (a connection: ann's; a share: of
/// `{ann}`), so that no row depends on what another row deleted.
#[rustfmt::skip]
const MATRIX: &[Row] = &[
    //                                                                                admin auth ann  bob  other tenant
    // Connectors: every role reads them, admins and authors write them.
    row(Method::GET,    "/v1/connectors",                             None,           [200, 200, 200, 200, 200]),
    row(Method::POST,   "/v1/connectors",                             DEFINITION,     [201, 201, 403, 403, 201]),
    row(Method::GET,    "/v1/connectors/{connector}",                 None,           [200, 200, 200, 200, 404]),
    row(Method::PUT,    "/v1/connectors/{connector}",                 DEFINITION,     [200, 200, 403, 403, 404]),
    row(Method::DELETE, "/v1/connectors/{fresh-connector}",           None,           [204, 204, 403, 403, 404]),
    row(Method::GET,    "/v1/connectors/{connector}/connection-form", None,           [200, 200, 200, 200, 404]),
    // Connections: authors see them; users see, change and delete their own.
    row(Method::GET,    "/v1/connections",                            None,           [200, 200, 200, 200, 200]),
    row(Method::GET,    "/v1/connections?endUserId=ann",              None,           [200, 200, 200, 403, 200]),
    row(Method::POST,   "/v1/connections",                            NEW_CONNECTION, [201, 403, 201, 201, 422]),
    row(Method::GET,    "/v1/connections/{ann}",                      None,           [200, 200, 200, 404, 404]),
    row(Method::GET,    "/v1/connections/{tenant}",                   None,           [200, 200, 404, 404, 404]),
    row(Method::PATCH,  "/v1/connections/{ann}",                      RENAME,         [200, 403, 200, 404, 404]),
    row(Method::DELETE, "/v1/connections/{fresh-connection}",         None,           [204, 403, 204, 404, 404]),
    // Not an OAuth 2.0 connection: who may re-authorize it hears that it cannot be.
    row(Method::POST,   "/v1/connections/{ann}/reauthorize",          None,           [409, 403, 409, 404, 404]),
    // Shares: the owner's and the admins'.
    row(Method::PUT,    "/v1/connections/{ann}/shares/dan",           SHARE,          [200, 403, 200, 404, 404]),
    row(Method::GET,    "/v1/connections/{ann}/shares",               None,           [200, 403, 200, 404, 404]),
    row(Method::DELETE, "/v1/connections/{ann}/shares/{fresh-share}", None,           [204, 403, 204, 404, 404]),
    // Calls: whoever may use the connection; authors only see it.
    row(Method::GET,    "/v1/connections/{ann}/proxy/ok",             None,           [200, 403, 200, 404, 404]),
    row(Method::GET,    "/v1/connections/{tenant}/proxy/ok",          None,           [200, 403, 404, 404, 404]),
    row(Method::POST,   "/v1/connections/{ann}/proxy/ok",             None,           [200, 403, 200, 404, 404]),
    row(Method::PUT,    "/v1/connections/{ann}/proxy/ok",             None,           [200, 403, 200, 404, 404]),
    row(Method::PATCH,  "/v1/connections/{ann}/proxy/ok",             None,           [200, 403, 200, 404, 404]),
    row(Method::DELETE, "/v1/connections/{ann}/proxy/ok",             None,           [200, 403, 200, 404, 404]),
    row(Method::POST,   "/v1/connections/{ann}/operations/Ping",      NO_PARAMETERS,  [200, 403, 200, 404, 404]),
    row(Method::POST,   "/v1/connections/{ann}/test",                 None,           [200, 403, 200, 404, 404]),
    // API keys and members: admins only.
    row(Method::POST,   "/v1/api-keys",                               NEW_KEY,        [201, 403, 403, 403, 201]),
    row(Method::GET,    "/v1/api-keys",                               None,           [200, 403, 403, 403, 200]),
    row(Method::GET,    "/v1/api-keys/{key}",                         None,           [200, 403, 403, 403, 404]),
    row(Method::DELETE, "/v1/api-keys/{fresh-key}",                   None,           [204, 403, 403, 403, 404]),
    row(Method::POST,   "/v1/members",                                NEW_MEMBER,     [201, 403, 403, 403, 201]),
    row(Method::GET,    "/v1/members",                                None,           [200, 403, 403, 403, 200]),
    row(Method::GET,    "/v1/members/{member}",                       None,           [200, 403, 403, 403, 404]),
    row(Method::PATCH,  "/v1/members/{member}",                       AUTHOR,         [200, 403, 403, 403, 404]),
    row(Method::DELETE, "/v1/members/{fresh-member}",                 None,           [204, 403, 403, 403, 404]),
    // Connect sessions and webhooks: admins only (a connect token's own routes need no key).
    row(Method::POST,   "/v1/connect-sessions",                       NEW_SESSION,    [201, 403, 403, 403, 201]),
    row(Method::GET,    "/v1/connect-sessions/{session}",             None,           [200, 403, 403, 403, 404]),
    row(Method::POST,   "/v1/webhooks",                               NEW_WEBHOOK,    [201, 403, 403, 403, 201]),
    row(Method::GET,    "/v1/webhooks",                               None,           [200, 403, 403, 403, 200]),
    row(Method::GET,    "/v1/webhooks/{webhook}",                     None,           [200, 403, 403, 403, 404]),
    row(Method::PATCH,  "/v1/webhooks/{webhook}",                     DISABLE,        [200, 403, 403, 403, 404]),
    row(Method::DELETE, "/v1/webhooks/{fresh-webhook}",               None,           [204, 403, 403, 403, 404]),
    row(Method::POST,   "/v1/webhooks/{webhook}/rotate-secret",       None,           [200, 403, 403, 403, 404]),
    row(Method::GET,    "/v1/webhooks/{webhook}/deliveries",          None,           [200, 403, 403, 403, 404]),
    // The audit trail: admins only, each of its own tenant.
    row(Method::GET,    "/v1/audit",                                  None,           [200, 403, 403, 403, 200]),
];

/// The kinds of `{fresh-…}` names.
const FRESH: [&str; 6] = ["connector", "connection", "key", "member", "share", "webhook"];

impl Row {
    /// Whether the route calls the backend.
    fn calls(&self) -> bool {
        ["/proxy/", "/operations/", "/test"].iter().any(|part| self.path.contains(part))
    }

    /// Whether some role of this tenant is refused the route.
    fn refuses_a_role(&self) -> bool {
        self.statuses[..4].contains(&403)
    }
}

impl Fixture {
    /// A row's path or body with the fixture's ids in place of its names; each `{fresh-…}` is
    /// made for this one request.
    async fn resolve(&self, template: &str) -> String {
        let mut text = template
            .replace("{definition}", &self.definition.to_string())
            .replace("{connector}", &self.connector)
            .replace("{ann}", &self.ann_connection.id)
            .replace("{bob}", &self.bob_connection.id)
            .replace("{tenant}", &self.tenant_connection.id)
            .replace("{key}", &self.author.id)
            .replace("{member}", &self.member)
            .replace("{webhook}", &self.webhook)
            .replace("{session}", &self.session)
            .replace("{unique}", &unique().to_string());
        for kind in FRESH {
            let name = format!("{{fresh-{kind}}}");
            if text.contains(&name) {
                text = text.replace(&name, &self.fresh(kind).await);
            }
        }
        text
    }

    /// A throwaway `kind` of thing, made by the admin: its id (a share: its end user).
    async fn fresh(&self, kind: &str) -> String {
        let n = unique();
        match kind {
            "connector" => id(&self.admin.create_connector(&self.definition).await),
            "connection" => self.connect(Some("ann")).await.id,
            "key" => self.key(json!({"name": "throwaway", "role": "author"})).await.id,
            "member" => id(&self
                .admin
                .post("/v1/members", &json!({"email": format!("throwaway{n}@example.org"), "role": "user"}))
                .await
                .expect_json(201)),
            "webhook" => {
                id(&self.admin.post("/v1/webhooks", &json!({"url": "http://127.0.0.1:9/hook"})).await.expect_json(201))
            }
            "share" => {
                let end_user = format!("sharee-{n}");
                let path = format!("{}/shares/{end_user}", connection_path(&self.ann_connection.id));
                self.admin.put(&path, &json!({"permission": "use"})).await.expect_json(200);
                end_user
            }
            other => panic!("no fresh {other}"),
        }
    }

    /// Sends `row` with `api`: what is wrong with the answer, if `expected` is what it should
    /// be (the status; the problem type of a refusal; whether the backend was called).
    async fn check(&self, api: &Api, row: &Row, expected: u16) -> Option<String> {
        let path = self.resolve(row.path).await;
        let reply = match row.body {
            Some(body) => {
                let body = self.resolve(body).await;
                api.send_raw(row.method.clone(), &path, Some("application/json"), body).await
            }
            None => api.send(api.request(row.method.clone(), &path)).await,
        };
        let reached = self.backend.take().len();
        let should_reach = usize::from(row.calls() && expected == 200);
        if reply.status != expected {
            return Some(format!("expected {expected}, got {}: {}", reply.status, brief(&reply.text)));
        }
        if reached != should_reach {
            return Some(format!("{expected} as expected, but the backend received {reached} requests"));
        }
        let problem = match expected {
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not-found",
            409 => "conflict",
            422 => "validation",
            204 if !reply.text.is_empty() => return Some(format!("204 with a body: {}", brief(&reply.text))),
            _ => return None,
        };
        let kind = serde_json::from_str::<Value>(&reply.text).ok().map(|body| body["type"].clone());
        let expected_kind = json!(format!("urn:portico:problem:{problem}"));
        (reply.content_type() != "application/problem+json" || kind.as_ref() != Some(&expected_kind))
            .then(|| format!("{expected}, but not a {expected_kind} problem: {}", brief(&reply.text)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_the_access_rules_say() {
    let fixture = Fixture::start().await;
    let stranger = fixture.portico.client(Some(&fixture.portico.tenant_key("create", "other")));
    let anonymous = fixture.portico.client(None);
    let apis = [&fixture.admin, &fixture.author.api, &fixture.ann.api, &fixture.bob.api, &stranger, &anonymous];

    let mut mismatches = Vec::new();
    let mut cells = 0;
    for row in MATRIX {
        // And every route refuses a request without a key.
        let statuses = row.statuses.into_iter().chain([401]);
        for ((who, api), expected) in ASKERS.into_iter().chain(["no key"]).zip(apis).zip(statuses) {
            cells += 1;
            if let Some(what) = fixture.check(api, row, expected).await {
                mismatches.push(format!("{} {} as {who}: {what}", row.method, row.path));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells disagree with the access rules:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Whether the documented path template `documented` names the route of the row path
/// `template` (each `{…}` segment of the documented one stands for any one segment).
fn documents(documented: &str, template: &str) -> bool {
    let path = template.split('?').next().unwrap_or_default();
    let (documented, path): (Vec<&str>, Vec<&str>) = (documented.split('/').collect(), path.split('/').collect());
    documented.len() == path.len()
        && documented.iter().zip(&path).all(|(doc, segment)| doc.starts_with('{') || doc == segment)
}

/// The keys of an OpenAPI path item that are operations.
const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

#[tokio::test]
async fn the_openapi_document_has_every_route_of_the_matrix_and_its_refusals() {
    let portico = Portico::start();
    let document = portico.client(None).get("/openapi.json").await.expect_json(200);
    let paths = document["paths"].as_object().expect("paths");
    let documented: Vec<(String, &str, &Value)> = paths
        .iter()
        .filter(|(path, _)| path.starts_with("/v1/"))
        .flat_map(|(path, operations)| {
            let operations = operations.as_object().expect("operations by method");
            // A connect token's routes take the token in the path, not a key: no matrix row.
            let methods = operations
                .iter()
                .filter(|(key, _)| HTTP_METHODS.contains(&key.as_str()))
                .filter(|(_, operation)| operation.get("security").is_some());
            methods.map(move |(method, operation)| (method.to_uppercase(), path.as_str(), operation))
        })
        .collect();
    assert!(documented.len() > 20, "the /v1 routes are documented: {documented:?}");

    let mut problems = Vec::new();
    for (method, path, _) in &documented {
        if !MATRIX.iter().any(|row| row.method.as_str() == method.as_str() && documents(path, row.path)) {
            problems.push(format!("{method} {path} is documented but has no row in the matrix"));
        }
    }
    for row in MATRIX {
        let found = documented
            .iter()
            .find(|(method, path, _)| method.as_str() == row.method.as_str() && documents(path, row.path));
        match found {
            None => problems.push(format!("{} {}: not documented", row.method, row.path)),
            Some((_, path, operation)) if row.refuses_a_role() && operation["responses"].get("403").is_none() => {
                problems.push(format!("{} {path} may answer 403 ({}) but documents no 403", row.method, row.path));
            }
            Some(_) => {}
        }
    }
    problems.dedup();
    assert!(problems.is_empty(), "the OpenAPI document and the matrix disagree:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// End users.

/// Every way to reach a connection by id: method, path after `/v1/connections/{id}`, body.
fn ways_to_reach() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "", None),
        (Method::PATCH, "", Some(json!({"displayName": "taken over"}))),
        (Method::DELETE, "", None),
        (Method::POST, "/reauthorize", None),
        (Method::PUT, "/shares/mallory", Some(json!({"permission": "edit"}))),
        (Method::GET, "/shares", None),
        (Method::DELETE, "/shares/ann", None),
        (Method::GET, "/proxy/ok", None),
        (Method::POST, "/operations/Ping", Some(json!({}))),
        (Method::POST, "/test", None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_user_reaches_only_its_own_connections_and_those_shared_with_it() {
    let fixture = Fixture::start().await;
    let (ann, bob) = (&fixture.ann.api, &fixture.bob.api);
    let theirs = &fixture.ann_connection.id;
    let second = fixture.connect(Some("ann")).await.id;
    let bobs = &fixture.bob_connection.id;
    assert_eq!(listed(ann, "/v1/connections").await, sorted(&[theirs, &second]), "ann's own, not the tenant's");
    assert_eq!(listed(bob, "/v1/connections").await, sorted(&[bobs]));

    // Bob: ann's connection answers every request exactly like one that does not exist.
    let before = fixture.admin.get(&connection_path(theirs)).await.expect_json(200);
    for (method, rest, body) in ways_to_reach() {
        let send = |id: &str| {
            let request = bob.request(method.clone(), &format!("{}{rest}", connection_path(id)));
            bob.send(match &body {
                Some(body) => request.json(body),
                None => request,
            })
        };
        let refused = send(theirs).await;
        let missing = send(MISSING_ID).await;
        refused.expect_problem(404, "not-found");
        assert_eq!(refused.text, missing.text, "{method} …{rest}: ann's connection answers bob like a missing one");
    }
    assert!(fixture.backend.take().is_empty(), "bob's refused calls reached no backend");
    assert_eq!(fixture.admin.get(&connection_path(theirs)).await.expect_json(200), before, "nothing changed");

    // Nor connectors or keys, not even a key of its own.
    bob.post("/v1/connectors", &fixture.definition).await.expect_problem(403, "forbidden");
    bob.post("/v1/api-keys", &user_key("bob")).await.expect_problem(403, "forbidden");
    assert_eq!(listed(&fixture.admin, "/v1/connectors").await, sorted(&[&fixture.connector]));
    assert_eq!(listed(&fixture.admin, "/v1/api-keys").await.len(), 4, "the admin's, the author's, ann's, bob's");

    // Shared with ann: listed with hers, not among those she owns.
    let share = format!("{}/shares/ann", connection_path(bobs));
    bob.put(&share, &json!({"permission": "use"})).await.expect_json(200);
    assert_eq!(listed(ann, "/v1/connections").await, sorted(&[theirs, &second, bobs]));
    assert_eq!(listed(ann, "/v1/connections?endUserId=ann").await, sorted(&[theirs, &second]));
    assert_eq!(listed(bob, "/v1/connections").await, sorted(&[bobs]), "sharing shows bob nothing of ann's");
    bob.delete(&share).await.expect_empty(204);
    assert_eq!(listed(ann, "/v1/connections").await, sorted(&[theirs, &second]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_narrowed_to_one_connection_reaches_no_other() {
    let fixture = Fixture::start().await;
    let (c1, c2) = (&fixture.ann_connection, fixture.connect(Some("ann")).await);
    let narrowed =
        fixture.key(json!({"name": "c1 only", "role": "user", "endUserId": "ann", "connectionIds": [c1.id]})).await;
    let view = fixture.admin.get(&format!("/v1/api-keys/{}", narrowed.id)).await.expect_json(200);
    assert_eq!(view["connectionIds"], json!([c1.id]));

    let api = &narrowed.api;
    assert_eq!(api.get(&call_path(&c1.id)).await.status, 200);
    assert_eq!(fixture.backend.take_one().header("x-api-key"), Some(c1.secret.as_str()));
    api.get(&connection_path(&c1.id)).await.expect_json(200);
    api.get(&call_path(&c2.id)).await.expect_problem(404, "not-found");
    api.get(&connection_path(&c2.id)).await.expect_problem(404, "not-found");
    assert_eq!(listed(api, "/v1/connections").await, sorted(&[&c1.id]));
    assert_eq!(listed(api, "/v1/connections?endUserId=ann").await, sorted(&[&c1.id]));
    let create = json!({"connectorId": fixture.connector, "parameters": {"api_key": "k"}});
    api.post("/v1/connections", &create).await.expect_problem(403, "forbidden");
    assert!(fixture.backend.take().is_empty(), "c2 was not called");
    // Ann's own key reaches both.
    assert_eq!(fixture.ann.api.get(&call_path(&c2.id)).await.status, 200);
    assert_eq!(fixture.backend.take_one().header("x-api-key"), Some(c2.secret.as_str()));
    assert_eq!(listed(&fixture.admin, "/v1/connections?endUserId=ann").await, sorted(&[&c1.id, &c2.id]));

    // A narrowed key names only connections its end user may call through.
    let bobs = &fixture.bob_connection.id;
    let tenants = &fixture.tenant_connection.id;
    for (ids, field) in [
        (json!([bobs]), "connectionIds[0]"),
        (json!([c1.id, tenants]), "connectionIds[1]"),
        (json!([MISSING_ID]), "connectionIds[0]"),
    ] {
        let body = json!({"name": "too wide", "role": "user", "endUserId": "ann", "connectionIds": ids});
        let problem = fixture.admin.post("/v1/api-keys", &body).await.expect_problem(422, "validation");
        assert_eq!(problem.fields(), [field], "{ids}");
    }
    // Once bob shares his with ann, it may be named.
    let share = format!("{}/shares/ann", connection_path(bobs));
    fixture.bob.api.put(&share, &json!({"permission": "use"})).await.expect_json(200);
    let shared =
        fixture.key(json!({"name": "shared", "role": "user", "endUserId": "ann", "connectionIds": [bobs]})).await;
    assert_eq!(shared.api.get(&call_path(bobs)).await.status, 200);
    assert_eq!(fixture.backend.take_one().header("x-api-key"), Some(fixture.bob_connection.secret.as_str()));
}

// ---------------------------------------------------------------------------------------------
// Keys: shown once, revoked, expired.

/// What a listing of keys must never hold: a key, or the SHA-256 of one in hex.
#[track_caller]
fn assert_no_key_or_digest(text: &str, keys: &[&str]) {
    for key in keys {
        let digest = Sha256::digest(key.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect::<String>();
        assert!(!text.contains(key), "a key in {text}");
        assert!(!text.to_lowercase().contains(&digest), "a key's digest in {text}");
    }
    let longest_hex_run = text.split(|c: char| !c.is_ascii_hexdigit()).map(str::len).max().unwrap_or(0);
    assert!(longest_hex_run < 64, "something like a digest in {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_shown_once_and_listed_without_its_secret_or_digest() {
    let fixture = Fixture::start().await;
    let admin = fixture.key(json!({"name": "second admin", "role": "admin"})).await;
    let created = admin.api.post("/v1/api-keys", &user_key("ann")).await.expect_json(201);
    let mut fields: Vec<&String> = created.as_object().expect("an object").keys().collect();
    fields.sort();
    let expected =
        ["connectionIds", "createdAt", "createdBy", "endUserId", "expiresAt", "id", "key", "name", "rateLimit", "role"];
    assert_eq!(fields, expected, "{created}");
    assert_eq!(created["rateLimit"], Value::Null, "the server's default");
    assert_eq!(created["role"], "user");
    assert_eq!(created["endUserId"], "ann");
    assert_eq!((&created["connectionIds"], &created["expiresAt"]), (&Value::Null, &Value::Null));
    assert_eq!(created["createdBy"], format!("key:{}", admin.id));
    let key = created["key"].as_str().expect("the key").to_owned();
    assert!(key.starts_with("pk_"), "{key}");

    // The key from the answer authenticates, as ann.
    let as_ann = fixture.portico.client(Some(&key));
    assert_eq!(listed(&as_ann, "/v1/connections").await, sorted(&[&fixture.ann_connection.id]));

    // Shown once: never again, nor its digest, in any listing.
    fixture.admin.delete(&format!("/v1/api-keys/{}", fixture.bob.id)).await.expect_empty(204);
    let keys = [&fixture.portico.admin_key, &fixture.author.key, &fixture.ann.key, &fixture.bob.key, &admin.key, &key];
    let keys: Vec<&str> = keys.iter().map(|key| key.as_str()).collect();
    let current = fixture.admin.get("/v1/api-keys").await.expect_json(200);
    let all = fixture.admin.get("/v1/api-keys?includeRevoked=true").await.expect_json(200);
    for listing in [&current, &all] {
        assert_no_key_or_digest(&listing.to_string(), &keys);
        for item in listing["items"].as_array().expect("items") {
            assert!(item.get("key").is_none(), "{item}");
            let one = fixture.admin.get(&format!("/v1/api-keys/{}", id(item))).await.expect_json(200);
            assert_no_key_or_digest(&one.to_string(), &keys);
        }
    }
    let ids = |listing: &Value| listing["items"].as_array().expect("items").iter().map(id).collect::<Vec<_>>();
    assert_eq!(ids(&current).len(), 5);
    assert!(!ids(&current).contains(&fixture.bob.id), "a revoked key is not listed by default");
    let revoked: Vec<&Value> = all["items"].as_array().unwrap().iter().filter(|k| k["id"] == *fixture.bob.id).collect();
    assert!(revoked.len() == 1 && revoked[0]["revokedAt"].is_string(), "{all}");
    assert!(ids(&current).iter().all(|id| all["items"].as_array().unwrap().iter().any(|k| k["id"] == *id)));

    // A key's shape is checked field by field.
    let long = "x".repeat(256);
    for (body, field) in [
        (json!({"name": "k", "role": "owner"}), "role"),
        (json!({"name": "k", "role": "user"}), "endUserId"),
        (json!({"name": "k", "role": "user", "endUserId": long}), "endUserId"),
        (json!({"name": "k", "role": "author", "endUserId": "ann"}), "endUserId"),
        (json!({"name": "k", "role": "admin", "connectionIds": [fixture.ann_connection.id]}), "connectionIds"),
        (json!({"name": "k", "role": "user", "endUserId": "ann", "expiresAt": "2001-01-01T00:00:00Z"}), "expiresAt"),
        (json!({"name": "k", "role": "user", "endUserId": "ann", "expiresAt": "tomorrow"}), "expiresAt"),
    ] {
        let problem = fixture.admin.post("/v1/api-keys", &body).await.expect_problem(422, "validation");
        assert_eq!(problem.fields(), [field], "{body}");
    }
    assert_eq!(ids(&fixture.admin.get("/v1/api-keys").await.expect_json(200)), ids(&current), "nothing made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_at_once_on_a_kept_alive_connection_and_on_a_new_one() {
    let fixture = Fixture::start().await;
    let ann = &fixture.ann_connection.id;
    let key = fixture.key(user_key("ann")).await;
    // The client connection remembers the key (and the connection it called).
    let mut kept = fixture.open(&key).await;
    for _ in 0..3 {
        assert_eq!(kept.call(ann).await.status, 200);
    }
    kept.get(&connection_path(ann)).await.expect_json(200);
    assert_eq!(fixture.backend.take().len(), 3);

    let path = format!("/v1/api-keys/{}", key.id);
    fixture.admin.delete(&path).await.expect_empty(204);
    kept.call(ann).await.expect_problem(401, "unauthorized");
    kept.get(&connection_path(ann)).await.expect_problem(401, "unauthorized");
    let mut new = fixture.open(&key).await;
    new.call(ann).await.expect_problem(401, "unauthorized");
    key.api.get("/v1/connections").await.expect_problem(401, "unauthorized");
    assert!(fixture.backend.take().is_empty(), "no call after the revocation reached the backend");
    fixture.admin.delete(&path).await.expect_problem(404, "not-found");
    // Ann's other key is untouched.
    assert_eq!(fixture.ann.api.get(&call_path(ann)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_stops_working_when_it_expires() {
    const LIFETIME: Duration = Duration::from_secs(2);
    let fixture = Fixture::start().await;
    let ann = &fixture.ann_connection.id;
    let expires = Instant::now() + LIFETIME;
    let body = json!({"name": "two seconds", "role": "user", "endUserId": "ann",
        "expiresAt": rfc3339(SystemTime::now() + LIFETIME)});
    let key = fixture.key(body).await;
    let mut kept = fixture.open(&key).await;
    assert_eq!(kept.call(ann).await.status, 200);
    assert_eq!(key.api.get(&call_path(ann)).await.status, 200);
    assert!(Instant::now() < expires, "the calls came before the expiry");

    // Nothing is done on the server: time alone ends the key.
    tokio::time::sleep_until((expires + Duration::from_millis(200)).into()).await;
    kept.call(ann).await.expect_problem(401, "unauthorized");
    kept.get("/v1/connections").await.expect_problem(401, "unauthorized");
    fixture.open(&key).await.call(ann).await.expect_problem(401, "unauthorized");
    key.api.get(&call_path(ann)).await.expect_problem(401, "unauthorized");
    assert_eq!(fixture.backend.take().len(), 2, "only the calls before the expiry reached the backend");
    let view = fixture.admin.get(&format!("/v1/api-keys/{}", key.id)).await.expect_json(200);
    assert!(view["expiresAt"].is_string() && view.get("revokedAt").is_none(), "expired, not revoked: {view}");
}

// ---------------------------------------------------------------------------------------------
// Sharing and ownership.

/// `api` may not delete the connection at `path`, nor share it, nor see or remove its shares.
async fn assert_may_not_manage(api: &Api, path: &str) {
    api.delete(path).await.expect_problem(403, "forbidden");
    api.put(&format!("{path}/shares/cy"), &json!({"permission": "use"})).await.expect_problem(403, "forbidden");
    api.get(&format!("{path}/shares")).await.expect_problem(403, "forbidden");
    api.delete(&format!("{path}/shares/bob")).await.expect_problem(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_lets_another_end_user_use_or_edit_a_connection_and_never_shows_its_secret() {
    let fixture = Fixture::start().await;
    let (ann, bob) = (&fixture.ann.api, &fixture.bob.api);
    let connection = &fixture.ann_connection;
    let path = connection_path(&connection.id);
    let share = format!("{path}/shares/bob");
    let mut kept = fixture.open(&fixture.bob).await;
    kept.call(&connection.id).await.expect_problem(404, "not-found");

    // `use`: bob reads it and calls through it with ann's credential.
    let shared = ann.put(&share, &json!({"permission": "use"})).await.expect_json(200);
    assert_eq!(
        (&shared["connectionId"], &shared["endUserId"], &shared["permission"], &shared["createdBy"]),
        (&json!(connection.id), &json!("bob"), &json!("use"), &json!(format!("key:{}", fixture.ann.id)))
    );
    let seen = bob.get(&path).await.expect_json(200);
    assert_eq!((&seen["endUserId"], &seen["secrets"]), (&json!("ann"), &json!({"api_key": {"set": true}})));
    assert_eq!(kept.call(&connection.id).await.status, 200);
    let operation = kept.send(Method::POST, &format!("{path}/operations/Ping"), Some(&json!({}))).await;
    assert_eq!(operation.status, 200, "{}", operation.text);
    let test = kept.send(Method::POST, &format!("{path}/test"), None).await;
    assert_eq!(test.expect_json(200)["ok"], true);
    let received = fixture.backend.take();
    assert_eq!(received.len(), 3, "the proxied call, the operation and the test reached the backend");
    for request in received {
        assert_eq!(request.header("x-api-key"), Some(connection.secret.as_str()), "ann's credential");
    }
    // But not change, re-authorize, delete or share it.
    let rename = json!({"displayName": "Bob's now"});
    bob.patch(&path, &rename).await.expect_problem(403, "forbidden");
    bob.post(&format!("{path}/reauthorize"), &json!({})).await.expect_problem(403, "forbidden");
    assert_may_not_manage(bob, &path).await;

    // `edit`: bob changes it too, and still may not delete or share it.
    let upgraded = ann.put(&share, &json!({"permission": "edit"})).await.expect_json(200);
    assert_eq!((&upgraded["permission"], &upgraded["createdBy"]), (&json!("edit"), &shared["createdBy"]));
    let changed = bob.patch(&path, &rename).await.expect_json(200);
    assert_eq!(
        (&changed["displayName"], &changed["endUserId"], &changed["updatedBy"]),
        (&json!("Bob's now"), &json!("ann"), &json!(format!("key:{}", fixture.bob.id)))
    );
    bob.post(&format!("{path}/reauthorize"), &json!({})).await.expect_problem(409, "conflict");
    assert_may_not_manage(bob, &path).await;
    let shares = ann.get(&format!("{path}/shares")).await.expect_json(200);
    let items = shares["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{shares}");
    assert_eq!((&items[0]["endUserId"], &items[0]["permission"]), (&json!("bob"), &json!("edit")));
    let problem = ann.put(&format!("{path}/shares/ann"), &json!({"permission": "use"})).await;
    assert_eq!(problem.expect_problem(422, "validation").fields(), ["endUserId"], "not with its owner");

    // Unshared: bob cannot see it any more, also on the client connection that called before.
    ann.delete(&share).await.expect_empty(204);
    ann.delete(&share).await.expect_problem(404, "not-found");
    bob.get(&path).await.expect_problem(404, "not-found");
    kept.call(&connection.id).await.expect_problem(404, "not-found");
    fixture.open(&fixture.bob).await.call(&connection.id).await.expect_problem(404, "not-found");
    assert!(fixture.backend.take().is_empty());
    assert_eq!(ann.get(&call_path(&connection.id)).await.status, 200, "ann still uses it");

    let mut bodies = fixture.portico.responses();
    bodies.extend(kept.bodies);
    for body in bodies {
        assert!(!body.contains(&connection.secret), "the secret in a response: {body}");
    }
    assert!(!contains(&fixture.portico.output_bytes(), &connection.secret), "the secret in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_connections_for_end_users_and_lists_them_by_owner() {
    let fixture = Fixture::start().await;
    let admin = fixture.key(json!({"name": "the app's back end", "role": "admin"})).await;
    let body = json!({"connectorId": fixture.connector, "endUserId": "carol", "parameters": {"api_key": "k"}});
    let made = admin.api.create_connection(&body).await;
    assert_eq!((&made["endUserId"], &made["createdBy"]), (&json!("carol"), &json!(format!("key:{}", admin.id))));
    assert!(made.get("updatedBy").is_none(), "{made}");
    let tenants = fixture.admin.get(&connection_path(&fixture.tenant_connection.id)).await.expect_json(200);
    assert_eq!(tenants.get("endUserId"), Some(&Value::Null), "the tenant's own connection names no owner");

    // Carol's key sees it, calls through it, and what it makes is hers.
    let carol = fixture.key(user_key("carol")).await;
    assert_eq!(carol.api.get(&connection_path(&id(&made))).await.expect_json(200), made);
    assert_eq!(carol.api.get(&call_path(&id(&made))).await.status, 200);
    let own =
        carol.api.create_connection(&json!({"connectorId": fixture.connector, "parameters": {"api_key": "c"}})).await;
    assert_eq!((&own["endUserId"], &own["createdBy"]), (&json!("carol"), &json!(format!("key:{}", carol.id))));
    let carols = sorted(&[&id(&made), &id(&own)]);
    assert_eq!(listed(&carol.api, "/v1/connections").await, carols);

    // Listed by owner: admins and authors ask for anyone's, an end user only for its own.
    for api in [&fixture.admin, &fixture.author.api, &carol.api] {
        assert_eq!(listed(api, "/v1/connections?endUserId=carol").await, carols);
    }
    let filtered = fixture.ann.api.get("/v1/connections?endUserId=carol").await;
    filtered.expect_problem(403, "forbidden");
    fixture.ann.api.get(&connection_path(&id(&made))).await.expect_problem(404, "not-found");
    let for_carol = json!({"connectorId": fixture.connector, "endUserId": "carol", "parameters": {"api_key": "k"}});
    fixture.ann.api.post("/v1/connections", &for_carol).await.expect_problem(403, "forbidden");
    assert_eq!(listed(&fixture.admin, "/v1/connections?endUserId=carol").await, carols, "ann made none for carol");
}

// ---------------------------------------------------------------------------------------------
// The steady state asks the store nothing.

/// Lines the server logged for SQL statements (target `sqlx::query`, at debug level), but for
/// those that run on their own schedule, apart from calls: the webhook sender's look at its
/// outbox and the audit writer's batches ([`audit_batches`]) with their transactions' ends (a
/// transaction on the call path would show its own statements).
fn store_queries(portico: &Portico) -> Vec<String> {
    portico
        .stderr()
        .lines()
        .filter(|line| {
            line.contains("sqlx::query")
                && !line.contains("webhook_deliveries")
                && !line.contains("audit_events")
                && !["BEGIN", "COMMIT", "ROLLBACK"].iter().any(|end| line.contains(&format!("summary=\"{end}")))
        })
        .map(str::to_owned)
        .collect()
}

/// How many batches of audit events the writer has appended so far.
fn audit_batches(portico: &Portico) -> usize {
    portico
        .stderr()
        .lines()
        .filter(|line| line.contains("sqlx::query") && line.contains("INSERT INTO audit_events"))
        .count()
}

/// The store queries logged so far, once the log has caught up.
async fn settled_queries(portico: &Portico) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    store_queries(portico)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_checked_for_permission_ask_the_store_nothing_in_the_steady_state() {
    const CALLS: usize = 200;
    let fixture = Fixture::start().await;
    let ann = &fixture.ann_connection.id;
    let narrowed =
        fixture.key(json!({"name": "narrowed", "role": "user", "endUserId": "ann", "connectionIds": [ann]})).await;
    let user = fixture.key(user_key("ann")).await;
    let admin = fixture.key(json!({"name": "admin", "role": "admin"})).await;
    let tenants = &fixture.tenant_connection.id;
    for (who, key, connection) in
        [("a user key", &user, ann), ("a narrowed key", &narrowed, ann), ("an admin key", &admin, tenants)]
    {
        let mut client = fixture.open(key).await;
        let before = settled_queries(&fixture.portico).await.len();
        assert_eq!(client.call(connection).await.status, 200, "{who}");
        let cold = settled_queries(&fixture.portico).await.len();
        assert!(cold > before, "{who}: the first call looks its new key up in the store, and the log shows it");
        for _ in 0..3 {
            assert_eq!(client.call(connection).await.status, 200, "{who}");
        }
        fixture.backend.take();
        let warm = settled_queries(&fixture.portico).await.len();
        let batches = audit_batches(&fixture.portico);
        for call in 0..CALLS {
            let reply = client.call(connection).await;
            assert_eq!(reply.status, 200, "{who}, call {call}: {}", reply.text);
        }
        let queries = settled_queries(&fixture.portico).await;
        assert!(
            queries.len() == warm,
            "{who}: {} store queries during {CALLS} calls:\n{}",
            queries.len() - warm,
            queries[warm..].join("\n")
        );
        assert_eq!(fixture.backend.take().len(), CALLS, "{who}: every call reached the backend");
        // Each call was audited, off its path: a few batches, not a statement per call.
        let written = audit_batches(&fixture.portico) - batches;
        assert!((1..=CALLS / 10).contains(&written), "{who}: {written} audit batches for {CALLS} calls");
    }
}

// ---------------------------------------------------------------------------------------------
// The command line.

#[tokio::test]
async fn tenant_commands_make_user_keys_and_members() {
    let portico = Portico::start();
    let admin = portico.api();
    let output = portico.tenant_command(&["key", "default", "--role", "user", "--end-user", "zed"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        (&printed["tenant"], &printed["role"], &printed["endUserId"]),
        (&json!("default"), &json!("user"), &json!("zed"))
    );
    let key = printed["api_key"].as_str().expect("the key");
    let key_id = printed["id"].as_str().expect("the key's id");

    // A user key for zed: what it makes is zed's, and it manages nothing.
    let zed = portico.client(Some(key));
    let connector = admin.create_connector(&fixture::definition("metrics.json")).await;
    let parameters = json!({"api_key": "k", "region": "eu", "timeout": 10});
    let made = zed.create_connection(&json!({"connectorId": connector["id"], "parameters": parameters})).await;
    assert_eq!((&made["endUserId"], &made["createdBy"]), (&json!("zed"), &json!(format!("key:{key_id}"))));
    zed.get("/v1/api-keys").await.expect_problem(403, "forbidden");
    zed.post("/v1/connectors", &fixture::definition("metrics.json")).await.expect_problem(403, "forbidden");
    let view = admin.get(&format!("/v1/api-keys/{key_id}")).await.expect_json(200);
    assert_eq!(
        (&view["role"], &view["endUserId"], &view["createdBy"]),
        (&json!("user"), &json!("zed"), &json!("operator"))
    );

    // A user key needs its end user.
    let refused = portico.tenant_command(&["key", "default", "--role", "user"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(refused.stdout.is_empty(), "no key printed");
    assert!(stderr.contains("--end-user"), "the message names the option that is missing: {stderr}");

    let output = portico.tenant_command(&["member", "default", "--email", "Ann@Example.org", "--role", "author"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let members = admin.get("/v1/members").await.expect_json(200);
    let items = members["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{members}");
    assert_eq!(
        (&items[0]["id"], &items[0]["email"], &items[0]["role"]),
        (&printed["member"], &json!("ann@example.org"), &json!("author"))
    );
}
