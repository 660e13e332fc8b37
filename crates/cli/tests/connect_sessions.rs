//! Connect sessions end to end, as an app uses them with JSON: its back end (an admin key)
//! makes a short-lived link for one of its end users; the end user's page, holding only the
//! token, reads what is offered and makes one connection, owned by that end user.
//!
//! - the token offers exactly the session's connectors, with their forms, and makes one
//!   connection (the session is then completed; the token is spent);
//! - expired, spent and unknown tokens; a token reads nothing else of the API;
//! - only admins make and read sessions; the return URL is limited to the allowed origins;
//! - concurrent requests with one token make one connection;
//! - the token is shown once and never logged or stored.
//!
//! The hosted page and OAuth 2.0 in a browser are tested elsewhere; the webhook event
//! `connect_session.completed` in tests/webhooks.rs.

mod common;
// For its reader of RFC 3339 times only.
#[path = "../../../tests/webhooks/receiver.rs"]
mod receiver;

use std::time::Duration;

use common::{Api, MISSING_ID, Portico, Reply, contains, distinctive, fixture, id, string};
use receiver::{unix_now, unix_seconds};
use serde_json::{Value, json};

/// Where the app sends the end user's browser at the end.
const APP_ORIGIN: &str = "https://app.example";

/// Portico (which lets the browser return to [`APP_ORIGIN`]), its admin client, and two
/// connectors of the tenant.
struct World {
    portico: Portico,
    api: Api,
    /// API key in a header.
    offered: String,
    /// Basic authentication.
    other: String,
}

impl World {
    async fn start() -> World {
        let portico = Portico::start_with(&["--allowed-return-origin", APP_ORIGIN]);
        let api = portico.api();
        let offered = id(&api.create_connector(&connector("api-key-header.json")).await);
        let other = id(&api.create_connector(&connector("basic.json")).await);
        World { portico, api, offered, other }
    }

    /// `POST /v1/connect-sessions` with `body`, expecting 201.
    async fn session(&self, body: Value) -> Value {
        self.api.post("/v1/connect-sessions", &body).await.expect_json(201)
    }

    /// A client with no key at all: what the end user's page has.
    fn page(&self) -> Api {
        self.portico.client(None)
    }

    async fn offer(&self, token: &str) -> Reply {
        self.page().get(&format!("/v1/connect/{token}")).await
    }

    async fn connect(&self, token: &str, body: &Value) -> Reply {
        self.page().post(&format!("/v1/connect/{token}/connections"), body).await
    }

    /// The session as the admin reads it.
    async fn state(&self, session: &Value) -> Value {
        self.api.get(&format!("/v1/connect-sessions/{}", id(session))).await.expect_json(200)
    }

    /// The connections of `end_user`, as the admin lists them.
    async fn connections_of(&self, end_user: &str) -> Vec<Value> {
        let list = self.api.get(&format!("/v1/connections?endUserId={end_user}")).await.expect_json(200);
        list["items"].as_array().expect("items").clone()
    }

    /// A key of `role` (for `user`, acting as `end_user`): a client that sends it.
    async fn key(&self, role: &str, end_user: Option<&str>) -> Api {
        let mut body = json!({"name": format!("a {role}"), "role": role});
        if let Some(end_user) = end_user {
            body["endUserId"] = json!(end_user);
        }
        let created = self.api.post("/v1/api-keys", &body).await.expect_json(201);
        self.portico.client(Some(&string(&created, "key")))
    }
}

/// A connector body from a definition under `fixtures/calls/` (its backend never called).
fn connector(file: &str) -> Value {
    json!({"definition": fixture::json(&format!("calls/{file}"))})
}

/// Seconds from now until an RFC 3339 time of Portico's.
#[track_caller]
fn seconds_until(text: &str) -> f64 {
    unix_seconds(text) - unix_now()
}

/// `POST …/connections` of an API-key connector with `key`.
fn with_key(connector: &str, key: &str) -> Value {
    json!({"connectorId": connector, "displayName": "Ann's account", "parameters": {"api_key": key}})
}

// ---------------------------------------------------------------------------------------------
// The flow.

#[tokio::test]
async fn a_session_offers_its_connectors_and_makes_one_connection_for_its_end_user() {
    let w = World::start().await;
    let return_url = format!("{APP_ORIGIN}/connected?step=2");
    let session = w.session(json!({"endUserId": "ann", "connectorIds": [w.offered], "returnUrl": return_url})).await;
    let token = string(&session, "token");
    assert!(string(&session, "id").starts_with("cs_") && token.starts_with("cst_"), "{session}");
    assert_eq!(string(&session, "url"), format!("{}/connect/{token}", w.portico.base));
    assert_eq!((&session["endUserId"], &session["connectorIds"]), (&json!("ann"), &json!([w.offered])));
    assert_eq!(session["returnUrl"], return_url.as_str());
    let lives = seconds_until(&string(&session, "expiresAt"));
    assert!((1790.0..=1800.5).contains(&lives), "30 minutes by default: {lives}");

    let pending = w.state(&session).await;
    assert_eq!((&pending["state"], &pending["connectionId"]), (&json!("pending"), &Value::Null), "{pending}");
    assert!(string(&pending, "createdBy").starts_with("key:"), "{pending}");
    assert!(!pending.to_string().contains(&token), "the token is shown once: {pending}");

    // The page sees the offered connector only, with its form.
    let offer = w.offer(&token).await.expect_json(200);
    assert_eq!(offer["endUserId"], "ann");
    assert_eq!(offer["expiresAt"], session["expiresAt"]);
    let offered = offer["connectors"].as_array().expect("connectors");
    assert_eq!(offered.len(), 1, "{offer}");
    assert_eq!(offered[0]["id"], w.offered.as_str());
    assert_eq!(offered[0]["displayName"], "Echo (API key in a header)");
    let mut form = w.api.get(&format!("/v1/connectors/{}/connection-form", w.offered)).await.expect_json(200);
    form.as_object_mut().expect("a form").remove("connectorId");
    assert_eq!(offered[0]["form"], form, "the form the connector's own route gives");

    // Not offered, or not valid: refused, and the token is not spent.
    let refused = w.connect(&token, &json!({"connectorId": w.other, "parameters": {}})).await;
    assert_eq!(refused.expect_problem(422, "validation").fields(), ["connectorId"]);
    let invalid = w.connect(&token, &json!({"connectorId": w.offered, "parameters": {}})).await;
    invalid.expect_problem(422, "validation");
    assert!(w.connections_of("ann").await.is_empty(), "nothing made");
    assert_eq!(w.state(&session).await["state"], "pending");
    w.offer(&token).await.expect_json(200);

    // The connection: ann's, made by the session, its secret never shown.
    let key = distinctive("anns-key-");
    let made = w.connect(&token, &with_key(&w.offered, &key)).await.expect_json(201);
    let connection = id(&made);
    assert_eq!((&made["endUserId"], &made["status"]), (&json!("ann"), &json!("connected")), "{made}");
    assert_eq!(made["createdBy"], format!("connect_session:{}", id(&session)));
    assert_eq!(made["displayName"], "Ann's account");
    assert_eq!(made["secrets"], json!({"api_key": {"set": true}}));
    assert!(!made.to_string().contains(&key), "{made}");
    let listed = w.connections_of("ann").await;
    assert_eq!(listed.iter().map(id).collect::<Vec<_>>(), std::slice::from_ref(&connection));
    let ann = w.key("user", Some("ann")).await;
    assert_eq!(ann.get(&format!("/v1/connections/{connection}")).await.expect_json(200)["id"], connection.as_str());

    let completed = w.state(&session).await;
    assert_eq!((&completed["state"], &completed["connectionId"]), (&json!("completed"), &json!(connection)));
    assert!(completed["completedAt"].is_string(), "{completed}");

    // Spent: one connection per token.
    let again = w.connect(&token, &with_key(&w.offered, "another")).await.expect_problem(410, "gone");
    assert!(again.detail().contains("used"), "{}", again.detail());
    w.offer(&token).await.expect_problem(410, "gone");
    assert_eq!(w.connections_of("ann").await.len(), 1);

    // Without connectorIds: every connector of the tenant.
    let everything = w.session(json!({"endUserId": "bob"})).await;
    assert!(everything["connectorIds"].is_null(), "{everything}");
    let offer = w.offer(&string(&everything, "token")).await.expect_json(200);
    let mut ids: Vec<String> = offer["connectors"].as_array().expect("connectors").iter().map(id).collect();
    ids.sort();
    let mut expected = vec![w.offered.clone(), w.other.clone()];
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn two_requests_with_one_token_make_one_connection() {
    let w = World::start().await;
    let token = string(&w.session(json!({"endUserId": "ann", "connectorIds": [w.offered]})).await, "token");
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..8 {
        let (page, path, body) =
            (w.page(), format!("/v1/connect/{token}/connections"), with_key(&w.offered, &format!("key-{n}")));
        requests.spawn(async move { page.post(&path, &body).await });
    }
    let mut statuses = Vec::new();
    while let Some(reply) = requests.join_next().await {
        let reply = reply.expect("a request");
        if reply.status != 201 {
            reply.expect_problem(410, "gone");
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(w.connections_of("ann").await.len(), 1, "one connection");
}

// ---------------------------------------------------------------------------------------------
// Tokens that cannot be used.

#[tokio::test]
async fn an_expired_or_unknown_token_makes_nothing() {
    let w = World::start().await;
    let session = w.session(json!({"endUserId": "ann", "connectorIds": [w.offered], "expiresIn": 1})).await;
    let lives = seconds_until(&string(&session, "expiresAt"));
    assert!((0.0..=1.01).contains(&lives), "{lives}");
    let token = string(&session, "token");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let expired = w.offer(&token).await.expect_problem(410, "gone");
    assert!(expired.detail().contains("expired"), "{}", expired.detail());
    w.connect(&token, &with_key(&w.offered, "late")).await.expect_problem(410, "gone");
    let state = w.state(&session).await;
    assert_eq!((&state["state"], &state["connectionId"]), (&json!("expired"), &Value::Null), "{state}");
    assert!(w.connections_of("ann").await.is_empty());

    // A day at most.
    let longest = w.session(json!({"endUserId": "ann", "expiresIn": 86_400})).await;
    let lives = seconds_until(&string(&longest, "expiresAt"));
    assert!((86_390.0..=86_400.5).contains(&lives), "{lives}");
    for expires_in in [json!(0), json!(86_401)] {
        let reply = w.api.post("/v1/connect-sessions", &json!({"endUserId": "ann", "expiresIn": expires_in})).await;
        assert_eq!(reply.expect_problem(422, "validation").fields(), ["expiresIn"], "{expires_in}");
    }
    for expires_in in [json!(-1), json!("soon")] {
        let reply = w.api.post("/v1/connect-sessions", &json!({"endUserId": "ann", "expiresIn": expires_in})).await;
        assert!(reply.status == 400 || reply.status == 422, "{expires_in}: {}", reply.text);
    }

    // Unknown tokens, well-formed or not.
    let long = format!("cst_{}", "x".repeat(500));
    for unknown in [format!("cst_{}", distinctive("")), "nope".to_owned(), long] {
        w.offer(&unknown).await.expect_problem(401, "unknown-token");
        w.connect(&unknown, &with_key(&w.offered, "k")).await.expect_problem(401, "unknown-token");
    }
    assert!(w.connections_of("ann").await.is_empty());
}

#[tokio::test]
async fn a_connect_token_reads_nothing_else() {
    let w = World::start().await;
    let session = w.session(json!({"endUserId": "ann", "connectorIds": [w.offered]})).await;
    let token = string(&session, "token");
    let connection = id(&w.connect(&token, &with_key(&w.offered, "k")).await.expect_json(201));
    let bearer = w.portico.client(Some(&token));
    for path in [
        "/v1/connections".to_owned(),
        "/v1/connectors".to_owned(),
        format!("/v1/connections/{connection}"),
        format!("/v1/connectors/{}", w.offered),
        format!("/v1/connections/{connection}/proxy/ok"),
        format!("/v1/connect-sessions/{}", id(&session)),
        "/v1/webhooks".to_owned(),
        "/v1/api-keys".to_owned(),
    ] {
        let reply = bearer.get(&path).await;
        reply.expect_problem(401, "unauthorized");
    }
    let made = bearer.post("/v1/connections", &with_key(&w.offered, "k")).await;
    made.expect_problem(401, "unauthorized");
    let session = bearer.post("/v1/connect-sessions", &json!({"endUserId": "ann"})).await;
    session.expect_problem(401, "unauthorized");
    assert_eq!(w.connections_of("ann").await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Who may make sessions, and what they may say.

#[tokio::test]
async fn only_admins_make_and_read_sessions_and_what_they_ask_is_checked() {
    let w = World::start().await;
    let session = w.session(json!({"endUserId": "ann"})).await;
    let path = format!("/v1/connect-sessions/{}", id(&session));
    for role in ["user", "author"] {
        let client = w.key(role, (role == "user").then_some("ann")).await;
        let reply = client.post("/v1/connect-sessions", &json!({"endUserId": "ann"})).await;
        assert!(reply.expect_problem(403, "forbidden").detail().contains("admin"), "{role}: {}", reply.text);
        client.get(&path).await.expect_problem(403, "forbidden");
    }
    w.page().post("/v1/connect-sessions", &json!({"endUserId": "ann"})).await.expect_problem(401, "unauthorized");
    w.page().get(&path).await.expect_problem(401, "unauthorized");
    w.api.get(&format!("/v1/connect-sessions/{MISSING_ID}")).await.expect_problem(404, "not-found");
    // Another tenant's admin does not see it.
    let other = w.portico.client(Some(&w.portico.tenant_key("create", "other")));
    other.get(&path).await.expect_problem(404, "not-found");
    let foreign = other.post("/v1/connect-sessions", &json!({"endUserId": "ann", "connectorIds": [w.offered]})).await;
    assert_eq!(foreign.expect_problem(422, "validation").fields(), ["connectorIds[0]"]);

    for (body, field) in [
        (json!({"endUserId": "ann", "returnUrl": "https://evil.example/done"}), "returnUrl"),
        (json!({"endUserId": "ann", "returnUrl": "http://app.example/done"}), "returnUrl"),
        (json!({"endUserId": "ann", "returnUrl": "javascript:alert(1)"}), "returnUrl"),
        (json!({"endUserId": "ann", "connectorIds": [MISSING_ID]}), "connectorIds[0]"),
        (json!({"endUserId": "ann", "connectorIds": [w.offered, MISSING_ID]}), "connectorIds[1]"),
        (json!({"endUserId": "ann", "connectorIds": []}), "connectorIds"),
        (json!({"endUserId": ""}), "endUserId"),
    ] {
        let reply = w.api.post("/v1/connect-sessions", &body).await;
        assert_eq!(reply.expect_problem(422, "validation").fields(), [field], "{body}");
    }
    for body in [json!({}), json!({"endUserId": "ann", "unknown": true})] {
        let reply = w.api.post("/v1/connect-sessions", &body).await;
        assert!(reply.status == 400 || reply.status == 422, "{body}: {}", reply.text);
    }
    // The public URL's own origin is allowed too.
    let home = format!("{}/after", w.portico.base);
    assert_eq!(w.session(json!({"endUserId": "ann", "returnUrl": home})).await["returnUrl"], home.as_str());
}

// ---------------------------------------------------------------------------------------------
// The token as a secret.

#[tokio::test]
async fn the_token_is_shown_once_and_never_logged_or_stored() {
    let w = World::start().await;
    let session = w.session(json!({"endUserId": "ann", "connectorIds": [w.offered]})).await;
    let token = string(&session, "token");
    w.offer(&token).await.expect_json(200);
    w.connect(&token, &with_key(&w.offered, "k")).await.expect_json(201);
    w.connect(&token, &with_key(&w.offered, "k")).await.expect_problem(410, "gone");
    let listed = w.connections_of("ann").await;
    let state = w.state(&session).await;
    for shown in [Value::Array(listed), state] {
        assert!(!shown.to_string().contains(&token), "{shown}");
    }
    // Stopped: everything it printed has been read.
    let mut w = w;
    assert!(w.portico.stop().success());
    let output = w.portico.output_bytes();
    let logged: Vec<&str> =
        std::str::from_utf8(&output).unwrap_or_default().lines().filter(|line| line.contains(&token)).collect();
    assert!(
        logged.is_empty(),
        "the connect token in {} lines of Portico's log, e.g. {:?}",
        logged.len(),
        logged.first()
    );
    for (name, bytes) in w.portico.stored_contents() {
        assert!(!contains(&bytes, &token), "the connect token stored in plain text in {name}");
    }
}
