//! Several Portico instances on one PostgreSQL database, as behind a load balancer: real
//! `portico serve` processes with data directories of their own, one fresh database
//! (`common::pg`), one `PORTICO_MASTER_KEY`.
//!
//! - the first instance creates the `default` tenant and its key file, the others do not;
//! - a connection changed or deleted through one instance is not used with its old
//!   credentials by the other after a second, and a key revoked through one is refused by
//!   the other within a second;
//! - a sign-in started on one instance finishes on the other;
//! - 200 calls on an expired token, split across both, renew it once;
//! - PostgreSQL restarted under load (a private cluster, never the shared server): clean 503
//!   problems meanwhile, nothing acknowledged lost, the instances work again afterwards;
//! - `portico migrate` from a populated SQLite store, after which every connection works on
//!   PostgreSQL;
//! - webhook deliveries: each attempt made by one instance, never by both (the receiver,
//!   `tests/webhooks/receiver.py`, verifies each with `standardwebhooks`).
//!
//! PostgreSQL only, whatever `PORTICO_TEST_DATABASE` says: without a reachable server the tests
//! print `SKIPPED: …` and pass, except under `CI=true`. Time-dependent checks poll with a
//! deadline.

mod common;
#[path = "../../../tests/webhooks/receiver.rs"]
mod receiver;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::idp::{BASIC, Browser, Idp, IdpOptions};
use common::pg::{TEST_MASTER_KEY, TestDatabase};
use common::{Api, Portico, Reply, fixture};
use portico_testkit::pg::PrivateCluster;
use receiver::Receiver;
use serde_json::{Value, json};
use url::Url;

/// Backends (the recording one, the IdP) are on loopback.
const PRIVATE: &str = "--allow-private-backends";
/// How soon another instance must stop using what changed.
const PROPAGATION: Duration = Duration::from_secs(1);

/// An instance on `database_url` with the data directory `data_dir` and more `args`.
fn instance(database_url: &str, data_dir: &Path, args: &[&str]) -> Portico {
    let mut all = vec![PRIVATE, "--database", database_url];
    all.extend_from_slice(args);
    Portico::launch(data_dir, &all, &[("PORTICO_MASTER_KEY", TEST_MASTER_KEY)])
}

/// Two instances on one fresh database: A starts first (and creates `default`), then B, whose
/// client uses A's key. Fields drop in order: the instances stop before the database goes.
struct Pair {
    a: Portico,
    b: Portico,
    /// The key of tenant `default`, for both.
    key: String,
    _database: TestDatabase,
    _dirs: tempfile::TempDir,
}

impl Pair {
    fn start(args: &[&str]) -> Option<Pair> {
        let database = TestDatabase::try_create()?;
        let dirs = tempfile::tempdir().expect("a temporary directory");
        let a = instance(&database.url, &dirs.path().join("a"), args);
        let b = instance(&database.url, &dirs.path().join("b"), args);
        let key = a.admin_key.clone();
        Some(Pair { a, b, key, _database: database, _dirs: dirs })
    }

    fn api_a(&self) -> Api {
        self.a.client(Some(&self.key))
    }

    fn api_b(&self) -> Api {
        self.b.client(Some(&self.key))
    }
}

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap_or_else(|| panic!("an id in {value}")).to_owned()
}

/// A definition under `fixtures/calls/` with its backend at `host`.
fn calls_connector(file: &str, host: &str) -> Value {
    let mut definition = fixture::json(&format!("calls/{file}"));
    definition["backend"]["host"] = json!(host);
    json!({"definition": definition})
}

/// `http://127.0.0.1:PORT` → `127.0.0.1:PORT`.
fn authority(base: &str) -> String {
    base.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

/// A code-flow connector at `idp` (also its backend), client [`BASIC`].
fn code_connector(idp: &Idp) -> Value {
    let mut definition = fixture::json("oauth/code.json");
    definition["backend"]["host"] = json!(authority(idp.issuer()));
    definition["connection"]["credential"]["authorizationUrl"] = json!(idp.url("/auth"));
    definition["connection"]["credential"]["tokenUrl"] = json!(idp.url("/token"));
    json!({"definition": definition, "oauthClient": {"clientId": BASIC.id, "clientSecret": BASIC.secret}})
}

fn callback_of(portico: &Portico) -> String {
    format!("{}/oauth/callback", portico.base)
}

/// The callback URL the IdP sent the browser to, delivered to `base`'s callback instead.
fn rebased(url: &str, base: &str) -> String {
    let url = Url::parse(url).expect("a URL");
    let mut moved = Url::parse(base).expect("a base URL");
    moved.set_path("/oauth/callback");
    moved.set_query(url.query());
    moved.into()
}

/// A browser's visit to a callback: no key, redirects not followed.
async fn visit(url: &str) -> Reply {
    let http = common::client_builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("a client");
    let response = http.get(url).send().await.expect("portico answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    Reply { status, headers, text }
}

async fn call(api: &Api, connection: &str, path: &str) -> Reply {
    api.get(&format!("/v1/connections/{connection}/proxy{path}")).await
}

/// Polls `check` until it gives `Some`, or panics with `what` after `deadline`.
async fn within<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < until, "{what}: not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls `/ok` through `connection` until a call is refused with `refusal` (a status and a
/// problem type), within [`PROPAGATION`]; `served` checks each call served before it. How long
/// the refusal took.
async fn until_refused(api: &Api, connection: &str, refusal: (u16, &str), served: impl Fn()) -> Duration {
    let (status, kind) = refusal;
    let since = Instant::now();
    within(PROPAGATION, &format!("a {status} through {connection}"), || async {
        let reply = call(api, connection, "/ok").await;
        if reply.status == status {
            reply.expect_problem(status, kind);
            return Some(());
        }
        assert_eq!(reply.status, 200, "{}", reply.text);
        served();
        None
    })
    .await;
    since.elapsed()
}

// ---------------------------------------------------------------------------------------------
// The first start.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_instance_creates_the_default_tenant_and_the_others_do_not() {
    let Some(database) = TestDatabase::try_create() else { return };
    let dirs = tempfile::tempdir().unwrap();
    let a = instance(&database.url, &dirs.path().join("a"), &[]);
    assert!(a.stdout().contains("API key of tenant 'default' written to"), "{}", a.stdout());
    assert!(a.admin_key.starts_with("pk_"), "A wrote the key file");
    let b = instance(&database.url, &dirs.path().join("b"), &[]);
    assert!(!b.stdout().contains("written to"), "{}", b.stdout());
    assert!(!dirs.path().join("b/admin-api-key").exists(), "B writes no key file");
    assert!(!dirs.path().join("b/master.key").exists(), "the master key comes from the environment");
    assert_eq!(database.strings("SELECT name FROM tenants"), ["default"]);
    // An instance without the shared master key does not make one of its own.
    let refused = common::serve_refused(&dirs.path().join("keyless"), &[PRIVATE, "--database", &database.url], &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("every instance needs the same master key: set PORTICO_MASTER_KEY"), "{stderr}");
    assert!(!dirs.path().join("keyless/master.key").exists());

    // B serves the same tenant: A's key works on B, and a key made for B works on A at once.
    let on_b = b.client(Some(&a.admin_key));
    let connector = a.api().create_connector(&fixture::definition("metrics.json")).await;
    let listed = on_b.get("/v1/connectors").await.expect_json(200);
    assert_eq!(listed["items"][0]["id"], connector["id"], "{listed}");
    let b_key = b.tenant_key("key", "default");
    a.client(Some(&b_key)).get(&format!("/v1/connectors/{}", id(&connector))).await.expect_json(200);
    assert_eq!(database.strings("SELECT name FROM tenants"), ["default"]);
    assert_eq!(database.strings("SELECT COUNT(*)::text FROM api_keys"), ["2"]);
    drop((a, b));

    // Instances starting together on an empty database: exactly one creates the tenant.
    let database = TestDatabase::try_create().expect("the server answered a moment ago");
    let (first, second) = std::thread::scope(|scope| {
        let starts: Vec<_> = ["c", "d"]
            .into_iter()
            .map(|name| {
                let (url, dir) = (database.url.clone(), dirs.path().join(name));
                scope.spawn(move || instance(&url, &dir, &[]))
            })
            .collect();
        let mut started = starts.into_iter().map(|start| start.join().expect("an instance starts"));
        (started.next().unwrap(), started.next().unwrap())
    });
    let key_files = ["c", "d"].iter().filter(|name| dirs.path().join(name).join("admin-api-key").exists()).count();
    assert_eq!(key_files, 1, "one of the two wrote a key file");
    assert_eq!(database.strings("SELECT name FROM tenants"), ["default"]);
    let key = if first.admin_key.is_empty() { second.admin_key.clone() } else { first.admin_key.clone() };
    for portico in [&first, &second] {
        portico.client(Some(&key)).get("/v1/connections").await.expect_json(200);
    }
}

// ---------------------------------------------------------------------------------------------
// Invalidation.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_changed_or_deleted_through_one_instance_is_not_used_by_the_other_after_a_second() {
    let Some(pair) = Pair::start(&[]) else { return };
    let backend = Backend::start().await;
    let (api_a, api_b) = (pair.api_a(), pair.api_b());
    let connector = api_a.create_connector(&calls_connector("api-key-header.json", &backend.authority())).await;
    let first = common::distinctive("first-key-");
    let connection =
        id(&api_a.create_connection(&json!({"connectorId": connector["id"], "parameters": {"api_key": first}})).await);
    let path = format!("/v1/connections/{connection}");

    // B prepares the connection (and keeps it in memory) with the first key.
    for _ in 0..3 {
        assert_eq!(call(&api_b, &connection, "/ok").await.status, 200);
        assert_eq!(backend.take_one().header("x-api-key"), Some(first.as_str()));
    }

    // A new key through A: B uses it within a second, and never the old one again.
    let second = common::distinctive("second-key-");
    api_a.patch(&path, &json!({"parameters": {"api_key": second}})).await.expect_json(200);
    let patched = Instant::now();
    let old_uses = std::cell::Cell::new(0);
    within(PROPAGATION, "B uses the new key", || async {
        let reply = call(&api_b, &connection, "/ok").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let key = backend.take_one().header("x-api-key").map(str::to_owned);
        if key.as_deref() == Some(second.as_str()) {
            return Some(());
        }
        assert_eq!(key.as_deref(), Some(first.as_str()));
        old_uses.set(old_uses.get() + 1);
        None
    })
    .await;
    let seen_after = patched.elapsed();
    for _ in 0..5 {
        assert_eq!(call(&api_b, &connection, "/ok").await.status, 200);
        assert_eq!(backend.take_one().header("x-api-key"), Some(second.as_str()), "never the old key again");
    }
    println!("B used the new key after {seen_after:?} ({} calls with the old one before)", old_uses.get());

    // Deleted through A: B refuses it within a second, and the backend hears nothing more.
    api_a.delete(&path).await.expect_empty(204);
    let refused_after = until_refused(&api_b, &connection, (404, "not-found"), || {
        assert_eq!(backend.take_one().header("x-api-key"), Some(second.as_str()));
    })
    .await;
    for _ in 0..3 {
        call(&api_b, &connection, "/ok").await.expect_problem(404, "not-found");
        api_b.get(&path).await.expect_problem(404, "not-found");
    }
    assert!(backend.take().is_empty(), "nothing reaches the backend after the refusal");
    println!("B refused the deleted connection after {refused_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_through_one_instance_is_refused_by_the_other_within_a_second() {
    let Some(pair) = Pair::start(&[]) else { return };
    let backend = Backend::start().await;
    let api_a = pair.api_a();
    let connector = api_a.create_connector(&calls_connector("api-key-header.json", &backend.authority())).await;
    let body = json!({"connectorId": connector["id"], "endUserId": "ann", "parameters": {"api_key": "ann's"}});
    let connection = id(&api_a.create_connection(&body).await);
    let created = api_a
        .post("/v1/api-keys", &json!({"name": "revoked through A", "role": "user", "endUserId": "ann"}))
        .await
        .expect_json(201);
    let key = created["key"].as_str().expect("the key, shown once");

    // B knows the key: in its key cache, and on its client connection (one client calling in
    // turn keeps one connection alive), which remembers the `Authorization` it last sent.
    let on_b = pair.b.client(Some(key));
    for _ in 0..3 {
        assert_eq!(call(&on_b, &connection, "/ok").await.status, 200);
    }
    on_b.get(&format!("/v1/connections/{connection}")).await.expect_json(200);

    // Revoked through A: B refuses it within a second, on that client connection and any other.
    api_a.delete(&format!("/v1/api-keys/{}", id(&created))).await.expect_empty(204);
    let refused_after = until_refused(&on_b, &connection, (401, "unauthorized"), || {}).await;
    backend.take();
    on_b.get(&format!("/v1/connections/{connection}")).await.expect_problem(401, "unauthorized");
    for portico in [&pair.a, &pair.b] {
        call(&portico.client(Some(key)), &connection, "/ok").await.expect_problem(401, "unauthorized");
    }
    assert!(backend.take().is_empty(), "nothing reaches the backend after the refusal");
    println!("B refused the revoked key after {refused_after:?}");
}

// ---------------------------------------------------------------------------------------------
// OAuth across instances.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_started_on_one_instance_finishes_on_the_other() {
    let Some(pair) = Pair::start(&[]) else { return };
    let options = IdpOptions {
        redirect_uris: vec![callback_of(&pair.a), callback_of(&pair.b)],
        access_token_ttl: Duration::from_secs(300),
        ..IdpOptions::default()
    };
    let Some(idp) = Idp::try_start(&options) else { return };
    let (api_a, api_b) = (pair.api_a(), pair.api_b());
    let connector = id(&api_a.create_connector(&code_connector(&idp)).await);

    // Started on A: the IdP will send the browser to A's redirect URI...
    let created = api_a.create_connection(&json!({"connectorId": connector})).await;
    assert_eq!(created["status"], "pending", "{created}");
    let connection = id(&created);
    let authorize_url = created["authorizeUrl"].as_str().expect("an authorizeUrl").to_owned();
    let redirect = Browser::new().sign_in(&authorize_url, "alice", &callback_of(&pair.a)).await;
    // ...but the load balancer sends the callback to B.
    let page = visit(&rebased(&redirect, &pair.b.base)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Connected"), "{}", page.text);
    assert_eq!(idp.token_calls("authorization_code").await, 1);

    // Connected, as both see it; calls through both carry the token.
    for api in [&api_a, &api_b] {
        let view = api.get(&format!("/v1/connections/{connection}")).await.expect_json(200);
        assert_eq!(view["status"], "connected", "{view}");
        let me = call(api, &connection, "/me").await;
        assert_eq!(me.status, 200, "{}", me.text);
        assert_eq!(me.json()["sub"], "alice");
    }
    // The state was used once, for both instances.
    assert_eq!(visit(&redirect).await.status, 400, "A refuses the state that B used");
    assert_eq!(visit(&rebased(&redirect, &pair.b.base)).await.status, 400, "so does B");
    assert_eq!(idp.token_calls("authorization_code").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_calls_on_an_expired_token_across_two_instances_renew_it_once() {
    const TTL: Duration = Duration::from_secs(8);
    let Some(pair) = Pair::start(&[]) else { return };
    let options =
        IdpOptions { redirect_uris: vec![callback_of(&pair.a)], access_token_ttl: TTL, ..IdpOptions::default() };
    let Some(idp) = Idp::try_start(&options) else { return };
    let (api_a, api_b) = (pair.api_a(), pair.api_b());
    let connector = id(&api_a.create_connector(&code_connector(&idp)).await);
    let created = api_a.create_connection(&json!({"connectorId": connector})).await;
    let connection = id(&created);
    let redirect = Browser::new()
        .sign_in(created["authorizeUrl"].as_str().expect("an authorizeUrl"), "alice", &callback_of(&pair.a))
        .await;
    assert_eq!(visit(&redirect).await.status, 200);
    let connected_at = Instant::now();
    // Both instances prepare the connection with the first token.
    for api in [&api_a, &api_b] {
        assert_eq!(call(api, &connection, "/__test/resource").await.status, 200);
    }

    // Expired (the token was issued before `connected_at`).
    tokio::time::sleep_until((connected_at + TTL + Duration::from_millis(300)).into()).await;
    assert_eq!(idp.token_calls("refresh_token").await, 0);
    // The renewal takes a while, so that every call arrives while it is under way.
    idp.delay_next(1, Duration::from_millis(700)).await;
    let mut calls = tokio::task::JoinSet::new();
    for index in 0..200 {
        let (api, connection) = (if index % 2 == 0 { api_a.clone() } else { api_b.clone() }, connection.clone());
        calls.spawn(async move { (index % 2, call(&api, &connection, "/__test/resource").await) });
    }
    let mut answered = [0, 0];
    while let Some(joined) = calls.join_next().await {
        let (side, reply) = joined.expect("a call");
        assert_eq!(reply.status, 200, "a call through {}: {}", ["A", "B"][side], reply.text);
        answered[side] += 1;
    }
    assert_eq!(answered, [100, 100]);
    assert_eq!(idp.token_calls("refresh_token").await, 1, "one refresh across both instances");
    let statuses: Vec<String> =
        idp.log_events("RESOURCE").await.into_iter().map(|event| event["status"].clone()).collect();
    assert_eq!(statuses.len(), 202);
    assert!(statuses.iter().all(|status| status == "200"), "every call carried a valid token: {statuses:?}");
}

// ---------------------------------------------------------------------------------------------
// Webhooks across instances.

/// A sample of `/metrics`, or 0 when it is missing.
async fn sample(portico: &Portico, name: &str) -> f64 {
    let text = portico.metrics().await.text;
    text.lines().find_map(|line| line.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_of_a_webhook_delivery_is_made_by_one_instance() {
    const CONNECTIONS: usize = 10;
    let Some(mut receiver) = Receiver::try_start(&["--fail-first-attempts"]) else { return };
    // Both instances wake for every change (their own, and the other's by its notice) and for
    // every retry due, so they race for each attempt.
    let Some(pair) = Pair::start(&["--webhook-retry-initial", "0.3"]) else { return };
    let (api_a, api_b) = (pair.api_a(), pair.api_b());
    let connector = id(&api_a.create_connector(&calls_connector("api-key-header.json", "unused.invalid")).await);
    let created = api_a.post("/v1/webhooks", &json!({"url": receiver.url("/hooks")})).await.expect_json(201);
    receiver.add_secret(created["secret"].as_str().expect("the secret")).await;
    let log_path = format!("/v1/webhooks/{}/deliveries?limit=200", id(&created));

    // Two events per connection, through one instance and then the other.
    let mut connections = Vec::new();
    for n in 0..CONNECTIONS {
        let (first, second) = if n % 2 == 0 { (&api_a, &api_b) } else { (&api_b, &api_a) };
        let body = json!({"connectorId": connector, "endUserId": format!("user-{n}"), "parameters": {"api_key": "k"}});
        let connection = id(&first.create_connection(&body).await);
        let renamed = json!({"displayName": format!("renamed {n}")});
        second.patch(&format!("/v1/connections/{connection}"), &renamed).await.expect_json(200);
        connections.push(connection);
    }
    let events = 2 * CONNECTIONS;
    let log = within(receiver::DEADLINE, "every delivery delivered", || async {
        let log = api_b.get(&log_path).await.expect_json(200)["items"].as_array().cloned().unwrap_or_default();
        (log.len() == events && log.iter().all(|d| d["state"] == "delivered")).then_some(log)
    })
    .await;
    let deliveries = receiver.wait_for(2 * events).await;
    // Nothing more arrives: no attempt was made twice.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.deliveries().len(), 2 * events, "one request per attempt");

    let mut per_event: std::collections::BTreeMap<&str, Vec<u16>> = std::collections::BTreeMap::new();
    for delivery in &deliveries {
        assert!(delivery.verified(), "standardwebhooks verifies it: {:?}", delivery.verify_errors);
        per_event.entry(delivery.webhook_id.as_str()).or_default().push(delivery.answered);
    }
    assert_eq!(per_event.len(), events, "every event arrived");
    for entry in &log {
        let event = entry["eventId"].as_str().expect("eventId");
        assert_eq!(per_event.get(event).map(Vec::as_slice), Some(&[500, 200][..]), "{event}: {entry}");
        assert_eq!(entry["attempts"], 2, "the log counts the attempts the receiver got: {entry}");
    }
    // In order per connection: the rename after the creation, which was retried first.
    for connection in &connections {
        let kinds: Vec<(&str, u16)> =
            deliveries.iter().filter(|d| d.connection() == connection).map(|d| (d.kind(), d.answered)).collect();
        assert_eq!(
            kinds,
            [
                ("connection.created", 500),
                ("connection.created", 200),
                ("connection.updated", 500),
                ("connection.updated", 200)
            ],
            "{connection}"
        );
    }
    // Both instances count what they did: together, every attempt once.
    let delivered = r#"portico_webhook_deliveries_total{outcome="delivered"}"#;
    let failed = r#"portico_webhook_deliveries_total{outcome="failed"}"#;
    let (a, b) = (
        (sample(&pair.a, delivered).await, sample(&pair.a, failed).await),
        (sample(&pair.b, delivered).await, sample(&pair.b, failed).await),
    );
    assert_eq!((a.0 + b.0, a.1 + b.1), (events as f64, events as f64), "A {a:?}, B {b:?}");
    println!("attempts by A: {a:?}, by B: {b:?} (delivered, failed)");
}

// ---------------------------------------------------------------------------------------------
// A PostgreSQL restart under load.

/// What the load saw.
#[derive(Default)]
struct Seen {
    statuses: Vec<u16>,
    /// Problems that are not `unavailable`, and 5xx other than 503.
    unexpected: Vec<String>,
    slowest: Duration,
    /// Connections whose creation was acknowledged (201).
    acknowledged: Vec<String>,
}

impl Seen {
    fn record(&mut self, what: &str, started: Instant, reply: &Reply, ok: &[u16]) {
        self.slowest = self.slowest.max(started.elapsed());
        self.statuses.push(reply.status);
        if reply.status == 503 {
            let problem = reply.json();
            if reply.content_type() != "application/problem+json"
                || problem["type"] != "urn:portico:problem:unavailable"
            {
                self.unexpected.push(format!("{what}: 503 {}", reply.text));
            }
        } else if !ok.contains(&reply.status) {
            self.unexpected.push(format!("{what}: {} {}", reply.status, reply.text));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instances_survive_a_postgresql_restart_under_load() {
    /// PgOptions' default acquire timeout: how long a request may wait for the database.
    const POOL_TIMEOUT: Duration = Duration::from_secs(5);
    let Some(cluster) = PrivateCluster::try_start() else { return };
    let database = TestDatabase::create_on(&cluster.admin_url()).expect("a database on the private cluster");
    let dirs = tempfile::tempdir().unwrap();
    let a = instance(&database.url, &dirs.path().join("a"), &["--database-pool-size", "4"]);
    let b = instance(&database.url, &dirs.path().join("b"), &["--database-pool-size", "2"]);
    let backend = Backend::start().await;
    let (api_a, api_b) = (a.client(Some(&a.admin_key)), b.client(Some(&a.admin_key)));
    let connector = id(&api_a.create_connector(&calls_connector("api-key-header.json", &backend.authority())).await);
    let create = |key: &str| json!({"connectorId": connector, "parameters": {"api_key": key}});
    let connection = id(&api_a.create_connection(&create("steady")).await);
    assert_eq!(call(&api_a, &connection, "/ok").await.status, 200);

    // The load on A: calls through the connection, connections created, readiness asked.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(tokio::sync::Mutex::new(Seen::default()));
    let mut load = tokio::task::JoinSet::new();
    for worker in 0..3 {
        let (api, stop, seen, connection, create) =
            (api_a.clone(), stop.clone(), seen.clone(), connection.clone(), create("written under load"));
        load.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match worker {
                    0 => {
                        let reply = call(&api, &connection, "/ok").await;
                        seen.lock().await.record("a call", started, &reply, &[200]);
                    }
                    1 => {
                        let reply = api.post("/v1/connections", &create).await;
                        let mut seen = seen.lock().await;
                        seen.record("a write", started, &reply, &[201]);
                        if reply.status == 201 {
                            seen.acknowledged.push(id(&reply.json()));
                        }
                    }
                    _ => {
                        let reply = api.get("/readyz").await;
                        seen.lock().await.record("readiness", started, &reply, &[200]);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    for mode in ["fast", "immediate"] {
        let acknowledged_before = seen.lock().await.acknowledged.len();
        let refused_before = seen.lock().await.statuses.iter().filter(|status| **status == 503).count();
        cluster.stop(mode).unwrap();
        let down = Instant::now();
        // Refused cleanly while it is down (the writes, at least).
        within(POOL_TIMEOUT * 3, "a 503 while PostgreSQL is down", || async {
            let refused = seen.lock().await.statuses.iter().filter(|status| **status == 503).count();
            (refused > refused_before + 2).then_some(())
        })
        .await;
        tokio::time::sleep_until((down + Duration::from_secs(2)).into()).await;
        cluster.start().unwrap();
        // And working again without a restart of either instance.
        within(Duration::from_secs(30), "a write acknowledged after the restart", || async {
            (seen.lock().await.acknowledged.len() > acknowledged_before + 2).then_some(())
        })
        .await;
        println!("{mode} restart: writes acknowledged again {:?} after the stop", down.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(joined) = load.join_next().await {
        joined.expect("a load worker");
    }

    let seen = seen.lock().await;
    assert!(seen.unexpected.is_empty(), "only 503 problems while PostgreSQL was away: {:#?}", seen.unexpected);
    assert!(seen.slowest < POOL_TIMEOUT + Duration::from_secs(3), "a request hung for {:?}", seen.slowest);
    let refused = seen.statuses.iter().filter(|status| **status == 503).count();
    assert!(refused > 0 && seen.acknowledged.len() > 10, "{refused} refused, {} written", seen.acknowledged.len());

    // Nothing acknowledged is lost; both instances see every write.
    for api in [&api_a, &api_b] {
        let stored: BTreeSet<String> =
            api.all_pages("/v1/connections", 100).await.into_iter().flatten().map(|c| id(&c)).collect();
        let lost: Vec<&String> = seen.acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
        assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    }
    println!(
        "restart under load: {} requests, {refused} refused with 503, {} writes acknowledged and kept, slowest {:?}",
        seen.statuses.len(),
        seen.acknowledged.len(),
        seen.slowest
    );

    // Afterwards: ready, calls work, and a change through A still reaches B (LISTEN again).
    for api in [&api_a, &api_b] {
        let ready = api.get("/readyz").await;
        assert_eq!((ready.status, ready.text.as_str()), (200, "ready"));
    }
    backend.take();
    assert_eq!(call(&api_b, &connection, "/ok").await.status, 200);
    assert_eq!(backend.take_one().header("x-api-key"), Some("steady"));
    api_a
        .patch(&format!("/v1/connections/{connection}"), &json!({"parameters": {"api_key": "after"}}))
        .await
        .expect_json(200);
    within(PROPAGATION, "B uses the key changed through A after the restarts", || async {
        assert_eq!(call(&api_b, &connection, "/ok").await.status, 200);
        (backend.take_one().header("x-api-key") == Some("after")).then_some(())
    })
    .await;
    drop((a, b));
    drop(database);
    cluster.stop("fast").unwrap();
}

// ---------------------------------------------------------------------------------------------
// From SQLite to PostgreSQL.

/// Runs `portico migrate`: its output.
fn migrate(from: &str, to: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["migrate", "--from", from, "--to", to])
        .env_clear()
        .envs(std::env::vars().filter(|(name, _)| !name.starts_with("PORTICO_")))
        .output()
        .expect("portico migrate runs")
}

/// The counts of a kind in `portico migrate`'s table: at the source, copied, already there.
fn counts(stdout: &str, kind: &str) -> [u64; 3] {
    let line = stdout
        .lines()
        .find(|line| line.trim_start().starts_with(kind))
        .unwrap_or_else(|| panic!("a line about {kind}: {stdout}"));
    let numbers: Vec<u64> =
        line[line.find(kind).unwrap() + kind.len()..].split_whitespace().map_while(|word| word.parse().ok()).collect();
    numbers.try_into().unwrap_or_else(|numbers| panic!("three counts for {kind}, not {numbers:?}: {line}"))
}

/// Everything a user of tenant `default` can read back.
async fn snapshot(api: &Api) -> Vec<Value> {
    let mut views = Vec::new();
    for list in ["/v1/connectors", "/v1/connections"] {
        for item in api.all_pages(list, 100).await.into_iter().flatten() {
            views.push(api.get(&format!("{list}/{}", id(&item))).await.expect_json(200));
        }
    }
    views
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_migrated_to_postgresql_serves_every_connection() {
    let Some(database) = TestDatabase::try_create() else { return };
    let dirs = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    // One machine: SQLite (named explicitly, whatever PORTICO_TEST_DATABASE says) and the master
    // key Portico generated into the data directory.
    let sqlite_dir = dirs.path().join("one-machine");
    let sqlite_url = format!("sqlite://{}", sqlite_dir.join("portico.db").display());
    let mut old = Portico::launch(&sqlite_dir, &[PRIVATE, "--database", &sqlite_url], &[]);
    let master_key = std::fs::read_to_string(sqlite_dir.join("master.key")).expect("the generated key file");
    let options = IdpOptions {
        redirect_uris: vec![callback_of(&old)],
        access_token_ttl: Duration::from_secs(600),
        ..IdpOptions::default()
    };
    let Some(idp) = Idp::try_start(&options) else { return };
    let api = old.api();
    let host = backend.authority();

    // Connectors of several kinds, and their connections.
    let header = api.create_connector(&calls_connector("api-key-header.json", &host)).await;
    let query = api.create_connector(&calls_connector("api-key-query.json", &host)).await;
    let basic = api.create_connector(&calls_connector("basic.json", &host)).await;
    let oauth = id(&api.create_connector(&code_connector(&idp)).await);
    let mut plain = Vec::new();
    for (connector, parameters) in [
        (&header, json!({"api_key": "header-key"})),
        (&query, json!({"api_key": "query-key"})),
        (&basic, json!({"username": "agent", "password": "basic-password"})),
    ] {
        let created = api.create_connection(&json!({"connectorId": connector["id"], "parameters": parameters})).await;
        plain.push(id(&created));
    }
    let signed_in = api.create_connection(&json!({"connectorId": oauth})).await;
    let redirect = Browser::new()
        .sign_in(signed_in["authorizeUrl"].as_str().expect("an authorizeUrl"), "alice", &callback_of(&old))
        .await;
    assert_eq!(visit(&redirect).await.status, 200);
    let signed_in = id(&signed_in);
    // A sign-in still in progress when the store moves.
    let pending = api.create_connection(&json!({"connectorId": oauth})).await;
    let pending_url = pending["authorizeUrl"].as_str().expect("an authorizeUrl").to_owned();
    let pending = id(&pending);
    // Another tenant, with a connection of its own.
    let other_key = old.tenant_key("create", "other");
    let other = old.client(Some(&other_key));
    let other_connector = other.create_connector(&calls_connector("api-key-header.json", &host)).await;
    let other_connection = id(&other
        .create_connection(&json!({"connectorId": other_connector["id"], "parameters": {"api_key": "other-key"}}))
        .await);

    // What the backends receive through each connection, before the move.
    let mut received = Vec::new();
    for connection in &plain {
        assert_eq!(call(&api, connection, "/ok").await.status, 200);
        received.push(backend.take_one());
    }
    assert_eq!(call(&other, &other_connection, "/ok").await.status, 200);
    received.push(backend.take_one());
    assert_eq!(call(&api, &signed_in, "/me").await.json()["sub"], "alice");
    let before = snapshot(&api).await;
    let admin_key = old.admin_key.clone();
    assert!(old.stop().success());

    // The move, and a second run that finds everything there.
    let moved = migrate(&sqlite_url, &database.url);
    let stdout = String::from_utf8_lossy(&moved.stdout).into_owned();
    assert!(moved.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&moved.stderr));
    for (kind, expected) in
        [("settings", 1), ("tenants", 2), ("API keys", 2), ("connectors", 5), ("connections", 6), ("sign-ins", 1)]
    {
        assert_eq!(counts(&stdout, kind), [expected, expected, 0], "{kind}: {stdout}");
    }
    assert!(stdout.contains("Checked: both stores hold"), "{stdout}");
    let again = migrate(&sqlite_url, &database.url);
    let stdout = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(again.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(counts(&stdout, "connections"), [6, 0, 6], "{stdout}");

    // Portico on PostgreSQL with that key from the environment, as the deployment guide says
    // (PORTICO_MASTER_KEY="$(cat portico-data/master.key)"): no new tenant, the old keys, every
    // connection.
    let new = Portico::launch(
        &dirs.path().join("shared"),
        &[PRIVATE, "--database", &database.url],
        &[("PORTICO_MASTER_KEY", master_key.trim())],
    );
    assert!(!new.stdout().contains("written to"), "the tenants moved: {}", new.stdout());
    let api = new.client(Some(&admin_key));
    let other = new.client(Some(&other_key));
    assert_eq!(snapshot(&api).await, before, "every connector and connection reads back the same");
    for (index, connection) in plain.iter().enumerate() {
        let reply = call(&api, connection, "/ok").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let got = backend.take_one();
        assert_eq!(
            (got.header("x-api-key"), got.header("authorization")),
            (received[index].header("x-api-key"), received[index].header("authorization"))
        );
        assert_eq!(got.query, received[index].query, "the query key");
    }
    assert_eq!(call(&other, &other_connection, "/ok").await.status, 200);
    assert_eq!(backend.take_one().header("x-api-key"), Some("other-key"));
    let me = call(&api, &signed_in, "/me").await;
    assert_eq!((me.status, me.json()["sub"].clone()), (200, json!("alice")), "the sealed tokens moved: {}", me.text);
    assert_eq!(idp.token_calls("refresh_token").await, 0, "the moved access token was used as it was");

    // The sign-in that was in progress finishes on PostgreSQL (the browser comes back to the
    // old address; the load balancer now sends it to the new instance).
    let redirect = Browser::new().sign_in(&pending_url, "bob", &callback_of(&old)).await;
    let page = visit(&rebased(&redirect, &new.base)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(call(&api, &pending, "/me").await.json()["sub"], "bob");
}
