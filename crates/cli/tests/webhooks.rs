//! Webhooks end to end: the real `portico` binary delivers events to a real receiver
//! (`tests/webhooks/receiver.py`), which verifies every delivery with Standard Webhooks' own
//! Python library, `standardwebhooks`, and answers as each test scripts it.
//!
//! - every event kind arrives signed, with its exact payload, and no secret in any delivery,
//!   delivery log, log line or stored byte;
//! - a failing receiver gets the event again with doubling gaps, at most the maximum interval
//!   apart, until it answers or the retry period is over;
//! - the events of one connection arrive in order, even while one of them is retried, and
//!   without holding back other connections';
//! - deliveries pending when Portico is killed (`kill -9`) go out after a restart;
//! - a rotated secret signs alongside the new one; event filters; disabled and deleted
//!   webhooks; private URLs; the delivery log and `/metrics`.
//!
//! Every Portico runs with `--allow-private-backends` (the receiver is on loopback) unless the
//! test is about that rule, and with short retry settings. Without the Python environment
//! (`tests/python/.venv`, made by `scripts/test`) the tests print `SKIPPED: …` and pass, except
//! under `CI=true`, where they fail; the OAuth test needs Node (tests/idp) likewise.

mod common;
#[path = "../../../tests/webhooks/receiver.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::idp::{BASIC, Browser, Idp, IdpOptions};
use common::{Api, Portico, Reply, contains, distinctive, fixture, id, string};
use receiver::{DEADLINE, Delivery, Receiver, unix_now, unix_seconds};
use serde_json::{Value, json};

/// The receiver is on loopback.
const PRIVATE: &str = "--allow-private-backends";
/// How long a test waits to be sure that nothing more arrives.
const QUIET: Duration = Duration::from_millis(600);

/// Portico, its admin client, and a connector that takes an API key (never called: no backend).
struct World {
    portico: Portico,
    api: Api,
    connector: String,
    /// When the test started, in Unix seconds.
    started: f64,
}

/// A webhook and the secret it was created with.
struct Hook {
    id: String,
    secret: String,
}

impl World {
    /// Portico with `--allow-private-backends` and `args`.
    async fn start(args: &[&str]) -> World {
        let mut all = vec![PRIVATE];
        all.extend_from_slice(args);
        World::start_exactly(&all).await
    }

    async fn start_exactly(args: &[&str]) -> World {
        let started = unix_now();
        let portico = Portico::start_with(args);
        let api = portico.api();
        let connector = id(&api.create_connector(&key_connector()).await);
        World { portico, api, connector, started }
    }

    /// A webhook to `receiver` (at `/hooks`) for `events` (all when `None`), whose secret the
    /// receiver then verifies with.
    async fn hook(&self, receiver: &mut Receiver, events: Option<&[&str]>) -> Hook {
        let hook = self.hook_at(&receiver.url("/hooks"), events).await;
        receiver.add_secret(&hook.secret).await;
        hook
    }

    /// A webhook to `url`, checked as created.
    async fn hook_at(&self, url: &str, events: Option<&[&str]>) -> Hook {
        let mut body = json!({"url": url});
        if let Some(events) = events {
            body["events"] = json!(events);
        }
        let created = self.api.post("/v1/webhooks", &body).await.expect_json(201);
        let secret = string(&created, "secret");
        assert!(secret.starts_with("whsec_") && secret.len() > 40, "a Standard Webhooks secret: {created}");
        assert_eq!((&created["url"], created["enabled"].as_bool()), (&json!(url), Some(true)), "{created}");
        assert_eq!(created["events"], events.map_or(Value::Null, |events| json!(events)), "{created}");
        let hook = Hook { id: id(&created), secret };
        let shown = self.api.get(&format!("/v1/webhooks/{}", hook.id)).await.expect_json(200);
        assert!(shown.get("secret").is_none() && !shown.to_string().contains(&hook.secret), "shown once: {shown}");
        hook
    }

    /// A connection of the test's connector owned by `end_user`, with a secret of its own: its
    /// id and the secret.
    async fn connection(&self, end_user: &str) -> (String, String) {
        let key = distinctive("connection-secret-");
        let body = json!({"connectorId": self.connector, "endUserId": end_user, "parameters": {"api_key": key}});
        (id(&self.api.create_connection(&body).await), key)
    }

    /// `PATCH /v1/connections/{id}` with a new display name.
    async fn rename(&self, connection: &str, name: &str) {
        let path = format!("/v1/connections/{connection}");
        self.api.patch(&path, &json!({"displayName": name})).await.expect_json(200);
    }

    async fn delete(&self, connection: &str) {
        self.api.delete(&format!("/v1/connections/{connection}")).await.expect_empty(204);
    }

    /// The delivery log of `hook`, newest first.
    async fn log(&self, hook: &Hook) -> Vec<Value> {
        self.log_reply(hook).await.expect_json(200)["items"].as_array().expect("items").clone()
    }

    async fn log_reply(&self, hook: &Hook) -> Reply {
        self.api.get(&format!("/v1/webhooks/{}/deliveries", hook.id)).await
    }

    /// Polls the delivery log of `hook` until `check` passes: the log.
    async fn log_until(&self, hook: &Hook, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let log = self.log(hook).await;
            if check(&log) {
                return log;
            }
            assert!(Instant::now() < deadline, "the delivery log shows no {what} within {DEADLINE:?}: {log:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `portico_webhook_*` samples of `/metrics`.
    async fn metrics(&self) -> BTreeMap<String, f64> {
        let reply = self.portico.metrics().await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply
            .text
            .lines()
            .filter(|line| line.starts_with("portico_webhook_"))
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// Polls `/metrics` until `check` passes: the samples.
    async fn metrics_until(&self, what: &str, check: impl Fn(&Metrics) -> bool) -> BTreeMap<String, f64> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let metrics = self.metrics().await;
            if check(&Metrics(&metrics)) {
                return metrics;
            }
            assert!(Instant::now() < deadline, "/metrics shows no {what} within {DEADLINE:?}: {metrics:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The webhook samples of `/metrics`, by meaning.
struct Metrics<'a>(&'a BTreeMap<String, f64>);

impl Metrics<'_> {
    fn outcome(&self, outcome: &str) -> f64 {
        self.sample(&format!("portico_webhook_deliveries_total{{outcome=\"{outcome}\"}}"))
    }

    fn queue_depth(&self) -> f64 {
        self.sample("portico_webhook_queue_depth")
    }

    fn oldest_pending(&self) -> f64 {
        self.sample("portico_webhook_oldest_pending_seconds")
    }

    fn sample(&self, name: &str) -> f64 {
        *self.0.get(name).unwrap_or_else(|| panic!("/metrics has {name}: {:#?}", self.0))
    }
}

/// The connector of every test: an API key in a header, its backend never called.
fn key_connector() -> Value {
    json!({"definition": fixture::json("calls/api-key-header.json")})
}

/// Asserts what every delivery must be: a POST of JSON, verified by `standardwebhooks` with
/// one of the receiver's secrets, signed when it was sent.
#[track_caller]
fn assert_signed(delivery: &Delivery) {
    assert!(
        delivery.verified(),
        "standardwebhooks verifies the delivery: {:?}\n{}",
        delivery.verify_errors,
        delivery.everything()
    );
    assert_eq!(delivery.method, "POST");
    assert_eq!(delivery.header("content-type"), Some("application/json"), "{}", delivery.everything());
    assert!(!delivery.webhook_id.is_empty(), "a webhook-id");
    let signed_at: f64 = delivery.header("webhook-timestamp").and_then(|t| t.parse().ok()).expect("webhook-timestamp");
    assert!((delivery.at - signed_at).abs() < 5.0, "signed when sent: {signed_at} for {}", delivery.at);
    for signature in delivery.signatures() {
        assert!(signature.starts_with("v1,"), "{signature}");
    }
}

/// The `data` of an event about a connection (without `reason`).
fn event_data(connection: &str, connector: &str, end_user: &str, status: &str) -> Value {
    json!({"connectionId": connection, "connectorId": connector, "endUserId": end_user, "status": status})
}

/// Asserts the payload: exactly `type`, `timestamp` (RFC 3339, after `since`, not after the
/// delivery) and `data`.
#[track_caller]
fn assert_payload(delivery: &Delivery, kind: &str, data: Value, since: f64) {
    let payload = &delivery.payload;
    let mut keys: Vec<&String> = payload.as_object().expect("a JSON object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["data", "timestamp", "type"], "{payload}");
    assert_eq!(payload["type"], kind, "{payload}");
    assert_eq!(payload["data"], data, "{kind}");
    let at = unix_seconds(payload["timestamp"].as_str().expect("a timestamp"));
    assert!(since - 0.01 <= at && at <= delivery.at + 0.01, "the event's time {at}: after {since}, by {}", delivery.at);
}

/// The deliveries about `connection`, in order of arrival.
fn of_connection<'a>(deliveries: &'a [Delivery], connection: &str) -> Vec<&'a Delivery> {
    deliveries.iter().filter(|d| d.connection() == connection).collect()
}

fn kinds(deliveries: &[&Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.kind().to_owned()).collect()
}

/// The gaps between consecutive deliveries, in seconds.
fn gaps(deliveries: &[Delivery]) -> Vec<f64> {
    deliveries.windows(2).map(|pair| pair[1].at - pair[0].at).collect()
}

/// Waits `QUIET`, then asserts that the receiver got nothing more than `seen`.
async fn assert_nothing_more(receiver: &Receiver, seen: usize, why: &str) {
    tokio::time::sleep(QUIET).await;
    let deliveries = receiver.deliveries();
    let more: Vec<(&str, &str, u32)> =
        deliveries[seen.min(deliveries.len())..].iter().map(|d| (d.kind(), d.webhook_id.as_str(), d.attempt)).collect();
    assert!(more.is_empty(), "{why}: {more:?}");
}

// ---------------------------------------------------------------------------------------------
// Every event, signed, with its exact payload and no secret.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_of_a_connection_is_delivered_signed_with_its_exact_payload_and_no_secret() {
    let Some(mut receiver) = Receiver::try_start(&[]) else { return };
    let w = World::start(&[]).await;
    let hook = w.hook(&mut receiver, None).await;
    let (connection, key) = w.connection("ann").await;
    let path = format!("/v1/connections/{connection}");

    w.rename(&connection, "Ann's account").await;
    // The connector now requires a value the connection lacks: it needs its user again.
    let mut definition = fixture::json("calls/api-key-header.json");
    definition["connection"]["parameters"].as_array_mut().expect("parameters").push(json!(
        {"name": "workspace", "type": "string", "label": "Workspace", "required": true}));
    let connector_path = format!("/v1/connectors/{}", w.connector);
    w.api.put(&connector_path, &json!({"definition": definition})).await.expect_json(200);
    let stale = w.api.get(&path).await.expect_json(200);
    assert_eq!(stale["status"], "needs_reauth", "{stale}");
    let reason = string(&stale, "statusReason");
    // The user gives it: connected again.
    let fixed = w.api.patch(&path, &json!({"parameters": {"workspace": "ops"}})).await.expect_json(200);
    assert_eq!(fixed["status"], "connected", "{fixed}");
    w.delete(&connection).await;

    // An end user's connection made through a connect session.
    let session = w
        .api
        .post("/v1/connect-sessions", &json!({"endUserId": "bob", "connectorIds": [w.connector]}))
        .await
        .expect_json(201);
    let token = string(&session, "token");
    let bobs_key = distinctive("bobs-secret-");
    let made = w
        .portico
        .client(None)
        .post(
            &format!("/v1/connect/{token}/connections"),
            &json!({"connectorId": w.connector, "parameters": {"api_key": bobs_key, "workspace": "bob's"}}),
        )
        .await
        .expect_json(201);
    let bobs = id(&made);

    let deliveries = receiver.wait_for(7).await;
    assert_nothing_more(&receiver, 7, "one delivery per event").await;
    for delivery in &deliveries {
        assert_signed(delivery);
        assert_eq!(delivery.attempt, 1, "each event once: {}", delivery.webhook_id);
        assert_eq!(delivery.path, "/hooks");
    }
    let data = |connection: &str, end_user: &str, status: &str| event_data(connection, &w.connector, end_user, status);
    let anns = of_connection(&deliveries, &connection);
    assert_eq!(
        kinds(&anns),
        [
            "connection.created",
            "connection.updated",
            "connection.needs_reauth",
            "connection.updated",
            "connection.deleted"
        ]
    );
    let mut needs = data(&connection, "ann", "needs_reauth");
    needs["reason"] = json!(reason);
    assert!(reason.contains("workspace") && reason.contains("required"), "the reason says why: {reason}");
    for (delivery, data) in anns.iter().zip([
        data(&connection, "ann", "connected"),
        data(&connection, "ann", "connected"),
        needs,
        data(&connection, "ann", "connected"),
        data(&connection, "ann", "connected"),
    ]) {
        assert_payload(delivery, delivery.kind(), data, w.started);
    }
    let bobs_deliveries = of_connection(&deliveries, &bobs);
    assert_eq!(kinds(&bobs_deliveries), ["connection.created", "connect_session.completed"]);
    assert_payload(bobs_deliveries[0], "connection.created", data(&bobs, "bob", "connected"), w.started);
    let mut completed = data(&bobs, "bob", "connected");
    completed["connectSessionId"] = session["id"].clone();
    assert_payload(bobs_deliveries[1], "connect_session.completed", completed, w.started);

    // The log lists each event once, delivered at the first attempt; webhook-id is its event id.
    let log = w.log(&hook).await;
    assert_eq!(log.len(), 7, "{log:#?}");
    let received: BTreeMap<&str, &str> = deliveries.iter().map(|d| (d.webhook_id.as_str(), d.kind())).collect();
    assert_eq!(received.len(), 7, "a webhook-id per event");
    for item in &log {
        assert_eq!(
            (&item["state"], &item["attempts"], &item["lastStatus"]),
            (&json!("delivered"), &json!(1), &json!(200))
        );
        assert_eq!(received.get(item["eventId"].as_str().unwrap_or_default()), Some(&item["event"].as_str().unwrap()));
    }

    // No secret anywhere: not the connections' values, the webhook's secret, the admin key or
    // the connect token in a delivery; not the first three in the delivery log, Portico's logs
    // or its store (the token's own rules are tests/connect_sessions.rs's).
    let secrets = [&key, &bobs_key, &hook.secret, &w.portico.admin_key, &token];
    for delivery in &deliveries {
        for secret in secrets {
            assert!(!delivery.everything().contains(secret.as_str()), "a secret in {}", delivery.everything());
        }
    }
    let log_text = w.log_reply(&hook).await.text;
    let output = w.portico.output_bytes();
    let stored = w.portico.stored_contents();
    let named = [("ann's API key", &key), ("bob's API key", &bobs_key), ("the webhook's secret", &hook.secret)];
    for (what, secret) in named {
        assert!(!log_text.contains(secret.as_str()), "{what} in the delivery log");
        let lines: Vec<&str> = std::str::from_utf8(&output)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(secret.as_str()))
            .collect();
        assert!(lines.is_empty(), "{what} in Portico's output: {lines:#?}");
        for (name, bytes) in &stored {
            assert!(!contains(bytes, secret), "{what} stored in plain text in {name}");
        }
    }
}

/// Waits for the delivery of `kind` (the first): how long after `since` it arrived.
async fn arrival(receiver: &Receiver, kind: &str, since: f64) -> (String, f64) {
    let deliveries = receiver.wait_until(kind, |d| d.iter().any(|d| d.kind() == kind)).await;
    let delivery = deliveries.iter().find(|d| d.kind() == kind).expect("the delivery");
    (kind.to_owned(), delivery.at - since)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_is_delivered_at_once() {
    /// Far less than the sender's poll interval (5 s): the change itself wakes it.
    const AT_ONCE: f64 = 1.0;
    let Some(mut receiver) = Receiver::try_start(&[]) else { return };
    let w = World::start(&[]).await;
    w.hook(&mut receiver, None).await;
    let mut latencies = Vec::new();

    let before = unix_now();
    let (connection, _) = w.connection("ann").await;
    latencies.push(arrival(&receiver, "connection.created", before).await);
    let before = unix_now();
    w.rename(&connection, "renamed").await;
    latencies.push(arrival(&receiver, "connection.updated", before).await);
    let before = unix_now();
    let session = w.api.post("/v1/connect-sessions", &json!({"endUserId": "bob"})).await.expect_json(201);
    let path = format!("/v1/connect/{}/connections", string(&session, "token"));
    let body = json!({"connectorId": w.connector, "parameters": {"api_key": "k"}});
    w.portico.client(None).post(&path, &body).await.expect_json(201);
    latencies.push(arrival(&receiver, "connect_session.completed", before).await);
    let before = unix_now();
    w.delete(&connection).await;
    latencies.push(arrival(&receiver, "connection.deleted", before).await);

    println!("from the request to the delivery: {latencies:.3?}");
    let late: Vec<_> = latencies.iter().filter(|(_, latency)| *latency > AT_ONCE).collect();
    assert!(late.is_empty(), "delivered more than {AT_ONCE} s after the change: {late:.3?}");
}

/// A code-flow connector at `idp` (also its backend), client [`BASIC`].
fn code_connector(idp: &Idp) -> Value {
    let mut definition = fixture::json("oauth/code.json");
    definition["backend"]["host"] = json!(idp.issuer().trim_start_matches("http://"));
    definition["connection"]["credential"]["authorizationUrl"] = json!(idp.url("/auth"));
    definition["connection"]["credential"]["tokenUrl"] = json!(idp.url("/token"));
    json!({"definition": definition, "oauthClient": {"clientId": BASIC.id, "clientSecret": BASIC.secret}})
}

/// Signs in at `authorize_url` as alice and lets the browser visit Portico's callback: its
/// status.
async fn sign_in(portico: &Portico, authorize_url: &str) -> u16 {
    let callback = format!("{}/oauth/callback", portico.base);
    let redirect = Browser::new().sign_in(authorize_url, "alice", &callback).await;
    let http =
        common::client_builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
    http.get(&redirect).send().await.expect("portico answers").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_sign_ins_a_grant_the_provider_revoked_and_a_connect_session_are_delivered() {
    let Some(mut receiver) = Receiver::try_start(&[]) else { return };
    let w = World::start(&[]).await;
    let options = IdpOptions {
        access_token_ttl: Duration::from_secs(2),
        ..IdpOptions::redirecting_to(&format!("{}/oauth/callback", w.portico.base))
    };
    let Some(idp) = Idp::try_start(&options) else { return };
    let hook = w.hook(&mut receiver, None).await;
    let connector = id(&w.api.create_connector(&code_connector(&idp)).await);
    let data = |connection: &str, end_user: &str, status: &str| event_data(connection, &connector, end_user, status);

    // Created (waiting for its sign-in), then connected by it.
    let created = w.api.create_connection(&json!({"connectorId": connector, "endUserId": "ann"})).await;
    let connection = id(&created);
    assert_eq!(sign_in(&w.portico, &string(&created, "authorizeUrl")).await, 200);
    let connected_at = Instant::now();
    let first = receiver.wait_for(2).await;
    assert_payload(&first[0], "connection.created", data(&connection, "ann", "pending"), w.started);
    assert_payload(&first[1], "connection.updated", data(&connection, "ann", "connected"), w.started);

    // The provider forgets the grant: the refresh after the token expired is refused for good.
    assert_eq!(idp.revoke_grants().await, 1);
    tokio::time::sleep_until((connected_at + Duration::from_millis(2300)).into()).await;
    let call = w.api.get(&format!("/v1/connections/{connection}/proxy/__test/resource")).await;
    call.expect_problem(409, "connection-not-ready");
    let lost = receiver.wait_for(3).await;
    let reason = string(&w.api.get(&format!("/v1/connections/{connection}")).await.expect_json(200), "statusReason");
    assert!(reason.contains("invalid_grant"), "{reason}");
    let mut needs = data(&connection, "ann", "needs_reauth");
    needs["reason"] = json!(reason);
    assert_payload(&lost[2], "connection.needs_reauth", needs, w.started);

    // A new sign-in: reauthorized.
    let again = w.api.post(&format!("/v1/connections/{connection}/reauthorize"), &json!({})).await.expect_json(200);
    assert_eq!(sign_in(&w.portico, &string(&again, "authorizeUrl")).await, 200);
    let reauthorized = receiver.wait_for(4).await;
    assert_payload(&reauthorized[3], "connection.reauthorized", data(&connection, "ann", "connected"), w.started);

    // A connect session whose connection signs in: completed when the sign-in is.
    let session = w
        .api
        .post("/v1/connect-sessions", &json!({"endUserId": "bob", "connectorIds": [connector]}))
        .await
        .expect_json(201);
    let session_path = format!("/v1/connect-sessions/{}", id(&session));
    let token = string(&session, "token");
    let made = w
        .portico
        .client(None)
        .post(&format!("/v1/connect/{token}/connections"), &json!({"connectorId": connector}))
        .await
        .expect_json(201);
    let bobs = id(&made);
    assert_eq!(made["status"], "pending", "{made}");
    let waiting = w.api.get(&session_path).await.expect_json(200);
    assert_eq!((&waiting["state"], &waiting["connectionId"]), (&json!("pending"), &json!(bobs)), "{waiting}");
    let status = sign_in(&w.portico, &string(&made, "authorizeUrl")).await;
    assert!(status == 200 || status == 303, "the callback answers the sign-in: {status}");
    let all = receiver.wait_for(7).await;
    assert_nothing_more(&receiver, 7, "one delivery per event").await;
    let bobs_deliveries = of_connection(&all, &bobs);
    assert_eq!(kinds(&bobs_deliveries), ["connection.created", "connection.updated", "connect_session.completed"]);
    assert_payload(bobs_deliveries[0], "connection.created", data(&bobs, "bob", "pending"), w.started);
    assert_payload(bobs_deliveries[1], "connection.updated", data(&bobs, "bob", "connected"), w.started);
    let mut completed = data(&bobs, "bob", "connected");
    completed["connectSessionId"] = session["id"].clone();
    assert_payload(bobs_deliveries[2], "connect_session.completed", completed, w.started);
    let done = w.api.get(&session_path).await.expect_json(200);
    assert_eq!((&done["state"], &done["connectionId"]), (&json!("completed"), &json!(bobs)), "{done}");

    for delivery in &all {
        assert_signed(delivery);
        for secret in [BASIC.secret.expect("a secret"), hook.secret.as_str(), token.as_str()] {
            assert!(!delivery.everything().contains(secret), "a secret in {}", delivery.everything());
        }
    }
    let log = w.log(&hook).await;
    assert_eq!(log.len(), 7, "{log:#?}");
    assert!(log.iter().all(|item| item["state"] == "delivered"), "{log:#?}");
}

// ---------------------------------------------------------------------------------------------
// Retries.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_event_again_with_doubling_gaps_until_it_answers() {
    let Some(mut receiver) = Receiver::try_start(&["--fail", "3"]) else { return };
    let w = World::start(&["--webhook-retry-initial", "0.3"]).await;
    let hook = w.hook(&mut receiver, None).await;
    let (connection, _) = w.connection("ann").await;

    let deliveries = receiver.wait_for(4).await;
    let log =
        w.log_until(&hook, "a delivered delivery", |log| log.first().is_some_and(|d| d["state"] == "delivered")).await;
    assert_nothing_more(&receiver, 4, "nothing after the receiver answered 200").await;
    for (attempt, delivery) in deliveries.iter().enumerate() {
        assert_signed(delivery);
        assert_eq!(delivery.attempt as usize, attempt + 1);
        assert_eq!((delivery.kind(), delivery.connection()), ("connection.created", connection.as_str()));
        assert_eq!(
            (&delivery.webhook_id, &delivery.body),
            (&deliveries[0].webhook_id, &deliveries[0].body),
            "the same event"
        );
    }
    let answered: Vec<u16> = deliveries.iter().map(|d| d.answered).collect();
    assert_eq!(answered, [500, 500, 500, 200]);
    // 0.3 s, 0.6 s, 1.2 s after each failed attempt: never sooner, and not much later.
    let gaps = gaps(&deliveries);
    for (n, gap) in gaps.iter().enumerate() {
        let due = 0.3 * f64::from(1 << n);
        assert!(*gap >= due - 0.01 && *gap <= due + 0.5, "gap {n} is {gap:.3} s, due {due} s: {gaps:?}");
    }
    println!("gaps between attempts: {gaps:.3?}");

    assert_eq!(log.len(), 1, "{log:#?}");
    let entry = &log[0];
    assert_eq!(entry["eventId"], deliveries[0].webhook_id.as_str());
    assert_eq!(entry["event"], "connection.created");
    assert_eq!((&entry["attempts"], &entry["lastStatus"]), (&json!(4), &json!(200)), "{entry}");
    assert!(entry["lastError"].is_null() && entry["nextAttemptAt"].is_null(), "{entry}");
    let last_attempt = unix_seconds(entry["lastAttemptAt"].as_str().expect("lastAttemptAt"));
    assert!((last_attempt - deliveries[3].at).abs() < 1.0, "{entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_wait_at_most_the_maximum_interval_and_stop_after_the_retry_period() {
    let Some(mut receiver) = Receiver::try_start(&["--status", "503"]) else { return };
    let retries = ["--webhook-retry-initial", "0.2", "--webhook-retry-max-interval", "0.5", "--webhook-retry-for", "2"];
    let w = World::start(&retries).await;
    // The event is a change of a connection made before the webhook (see
    // `each_change_is_delivered_at_once` for the first delivery of a new one).
    let (connection, _) = w.connection("ann").await;
    let hook = w.hook(&mut receiver, None).await;
    let created_at = unix_now();
    w.rename(&connection, "renamed").await;

    let log =
        w.log_until(&hook, "a delivery given up", |log| log.first().is_some_and(|d| d["state"] == "failed")).await;
    let deliveries = receiver.deliveries();
    assert_nothing_more(&receiver, deliveries.len(), "nothing after it was given up").await;
    assert!(deliveries.iter().all(|d| d.answered == 503 && d.webhook_id == deliveries[0].webhook_id));
    deliveries.iter().for_each(assert_signed);
    let gaps = gaps(&deliveries);
    println!("gaps between attempts: {gaps:.3?}");
    for (n, gap) in gaps.iter().enumerate() {
        let due = (0.2 * f64::from(1 << n.min(10))).min(0.5);
        assert!(*gap >= due - 0.01 && *gap <= due + 0.4, "gap {n} is {gap:.3} s, due {due} s: {gaps:?}");
    }
    // Tried for the whole period, and given up at the first failure after it.
    let last = deliveries.last().expect("attempts").at;
    assert!(last - created_at >= 2.0 - 0.05, "given up {:.3} s after the event", last - created_at);
    assert!(last - created_at <= 2.0 + 0.5 + 0.5, "given up {:.3} s after the event", last - created_at);

    assert_eq!(log.len(), 1);
    let entry = &log[0];
    assert_eq!(entry["attempts"], deliveries.len(), "{entry}");
    assert_eq!(entry["lastStatus"], 503, "{entry}");
    assert!(entry["lastError"].as_str().is_some_and(|e| e.contains("503")), "{entry}");
    assert!(entry["nextAttemptAt"].is_null(), "nothing more is planned: {entry}");
    let attempts = deliveries.len() as f64;
    let metrics =
        w.metrics_until("the given-up delivery", |m| m.outcome("given_up") == 1.0 && m.queue_depth() == 0.0).await;
    let metrics = Metrics(&metrics);
    assert_eq!((metrics.outcome("failed"), metrics.outcome("delivered")), (attempts - 1.0, 0.0), "{:#?}", metrics.0);
    assert_eq!(metrics.oldest_pending(), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_log_and_the_metrics_show_attempts_statuses_and_what_waits() {
    let Some(mut ok) = Receiver::try_start(&[]) else { return };
    let mut failing = Receiver::try_start(&["--status", "503"]).expect("a second receiver");
    let w = World::start(&["--webhook-retry-initial", "60"]).await;
    let ok_hook = w.hook(&mut ok, None).await;
    let failing_hook = w.hook(&mut failing, None).await;
    // Nobody listens there.
    let unreachable = w.hook_at(&format!("http://127.0.0.1:{}/gone", portico_testkit::spare_port()), None).await;
    let (connection, _) = w.connection("ann").await;
    w.rename(&connection, "renamed").await;

    let received = ok.wait_for(2).await;
    let ok_log = w
        .log_until(&ok_hook, "two deliveries", |log| log.len() == 2 && log.iter().all(|d| d["state"] == "delivered"))
        .await;
    let attempted = |log: &[Value]| log.len() == 2 && log[1]["attempts"] == 1;
    let failing_log = w.log_until(&failing_hook, "a failed attempt", attempted).await;
    let unreachable_log = w.log_until(&unreachable, "a failed attempt", attempted).await;

    // Newest first; each names the event the receiver got as webhook-id.
    let received_ids: Vec<&str> = received.iter().rev().map(|d| d.webhook_id.as_str()).collect();
    let logged_ids: Vec<&str> = ok_log.iter().map(|d| d["eventId"].as_str().unwrap_or_default()).collect();
    assert_eq!(logged_ids, received_ids);
    assert_eq!(ok_log[0]["event"], "connection.updated");
    assert_eq!(ok_log[1]["event"], "connection.created");
    for entry in &ok_log {
        assert_eq!(
            (&entry["attempts"], &entry["lastStatus"], &entry["lastError"]),
            (&json!(1), &json!(200), &Value::Null)
        );
        assert!(entry["nextAttemptAt"].is_null() && entry["lastAttemptAt"].is_string(), "{entry}");
    }
    // The failed first event waits 60 s; the second waits behind it, not yet attempted.
    for (log, status, error) in
        [(&failing_log, json!(503), "503"), (&unreachable_log, Value::Null, "could not be reached")]
    {
        let (second, first) = (&log[0], &log[1]);
        assert_eq!((&first["event"], &first["state"]), (&json!("connection.created"), &json!("pending")), "{first}");
        assert_eq!(first["lastStatus"], status, "{first}");
        assert!(first["lastError"].as_str().is_some_and(|e| e.contains(error)), "{first}");
        let next = unix_seconds(first["nextAttemptAt"].as_str().expect("nextAttemptAt"));
        let last = unix_seconds(first["lastAttemptAt"].as_str().expect("lastAttemptAt"));
        assert!((next - last - 60.0).abs() < 1.0, "the next attempt in 60 s: {first}");
        assert_eq!(
            (&second["event"], &second["state"], &second["attempts"]),
            (&json!("connection.updated"), &json!("pending"), &json!(0)),
            "{second}"
        );
        assert!(second["lastStatus"].is_null() && second["lastAttemptAt"].is_null(), "{second}");
    }
    assert_eq!(failing.deliveries().len(), 1, "the second event waits for the first");

    // Pages, newest first.
    let path = format!("/v1/webhooks/{}/deliveries", failing_hook.id);
    let first_page = w.api.get(&format!("{path}?limit=1")).await.expect_json(200);
    assert_eq!(first_page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(first_page["items"][0]["id"], failing_log[0]["id"]);
    let next = string(&first_page, "next");
    let second_page = w.api.get(&format!("{path}?limit=1&before={next}")).await.expect_json(200);
    assert_eq!(second_page["items"][0]["id"], failing_log[1]["id"]);
    assert!(second_page.get("next").is_none_or(Value::is_null), "{second_page}");

    // Two delivered, two failed attempts, four waiting since the first event.
    let metrics = w
        .metrics_until("the attempts", |m| {
            m.outcome("delivered") == 2.0 && m.outcome("failed") == 2.0 && m.queue_depth() == 4.0
        })
        .await;
    let metrics = Metrics(&metrics);
    assert_eq!(metrics.outcome("given_up"), 0.0);
    let waited = metrics.oldest_pending();
    let since_first = unix_now() - w.started;
    assert!(waited > 0.0 && waited <= since_first, "the oldest waits {waited} s, at most {since_first} s");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = w.metrics().await;
    assert!(Metrics(&later).oldest_pending() >= waited + 0.25, "it keeps growing: {later:#?}");
}

// ---------------------------------------------------------------------------------------------
// Order.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_of_a_connection_arrive_in_order_while_one_is_retried_and_others_do_not_wait() {
    let Some(mut receiver) = Receiver::try_start(&["--fail", "1"]) else { return };
    let w = World::start(&["--webhook-retry-initial", "1"]).await;
    let (other, _) = w.connection("bob").await;
    let hook = w.hook(&mut receiver, None).await;
    let (first, _) = w.connection("ann").await;
    receiver.wait_for(1).await;
    // While its first event waits for a retry: three more changes, and one of another
    // connection.
    w.rename(&first, "second name").await;
    w.rename(&first, "third name").await;
    w.delete(&first).await;
    let changed_other = unix_now();
    w.rename(&other, "bob's").await;

    let deliveries = receiver.wait_for(6).await;
    assert_nothing_more(&receiver, 6, "each event once after the retry").await;
    deliveries.iter().for_each(assert_signed);
    let firsts = of_connection(&deliveries, &first);
    let attempts: Vec<(String, u16)> = firsts.iter().map(|d| (d.kind().to_owned(), d.answered)).collect();
    let expected = [
        ("connection.created", 500),
        ("connection.created", 200),
        ("connection.updated", 200),
        ("connection.updated", 200),
        ("connection.deleted", 200),
    ];
    assert_eq!(attempts, expected.map(|(kind, status)| (kind.to_owned(), status)));
    // In the order of the changes, which is the order of the log (newest first there).
    let log = w
        .log_until(&hook, "every delivery", |log| log.len() == 5 && log.iter().all(|d| d["state"] == "delivered"))
        .await;
    let changes: Vec<&str> = log
        .iter()
        .rev()
        .filter(|d| d["eventId"] != of_connection(&deliveries, &other)[0].webhook_id.as_str())
        .map(|d| d["eventId"].as_str().unwrap_or_default())
        .collect();
    let arrived: Vec<&str> = firsts[1..].iter().map(|d| d.webhook_id.as_str()).collect();
    assert_eq!(arrived, changes);
    // The other connection's event did not wait for the retry.
    let others = of_connection(&deliveries, &other);
    assert_eq!(kinds(&others), ["connection.updated"]);
    let waited = others[0].at - changed_other;
    assert!(waited < 0.5 && others[0].at < firsts[1].at, "bob's event waited {waited:.3} s, for ann's retry");
}

// ---------------------------------------------------------------------------------------------
// A crash.

/// Sends SIGKILL to `portico` and waits until the process is gone (a zombie holds nothing).
fn kill_9(portico: &Portico) {
    let pid = portico.pid().to_string();
    let killed = std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill runs");
    assert!(killed.success(), "SIGKILL sent");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(stat) if stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) => return,
            Ok(_) => {}
        }
        assert!(Instant::now() < deadline, "portico survived SIGKILL");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_pending_when_portico_is_killed_go_out_after_a_restart() {
    let Some(mut receiver) = Receiver::try_start(&[]) else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    let args = [PRIVATE, "--webhook-retry-initial", "2"];
    let first = Portico::start_in(&data_dir, &args);
    let api = first.api();
    let connector = id(&api.create_connector(&key_connector()).await);
    let created = api.post("/v1/webhooks", &json!({"url": receiver.url("/hooks")})).await.expect_json(201);
    let hook = Hook { id: id(&created), secret: string(&created, "secret") };
    let port = receiver.port();
    // The receiver goes away; three events wait for it.
    receiver.stop();
    let create = |user: &str| json!({"connectorId": connector, "endUserId": user, "parameters": {"api_key": "k"}});
    let ann = id(&api.create_connection(&create("ann")).await);
    api.patch(&format!("/v1/connections/{ann}"), &json!({"displayName": "renamed"})).await.expect_json(200);
    let bob = id(&api.create_connection(&create("bob")).await);
    let log_path = format!("/v1/webhooks/{}/deliveries", hook.id);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log = api.get(&log_path).await.expect_json(200)["items"].as_array().cloned().unwrap_or_default();
        let attempted = log.iter().filter(|d| d["attempts"].as_u64() >= Some(1) && d["state"] == "pending").count();
        if log.len() == 3 && attempted == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "two attempts failed: {log:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Killed between attempts; the receiver back on its port; Portico again on the same store.
    kill_9(&first);
    let mut receiver = Receiver::start_on(port, &[&hook.secret], &[]);
    let second = Portico::start_in(&data_dir, &args);
    let deliveries = receiver.wait_for(3).await;
    assert_nothing_more(&receiver, 3, "each event once").await;
    deliveries.iter().for_each(assert_signed);
    assert_eq!(kinds(&of_connection(&deliveries, &ann)), ["connection.created", "connection.updated"]);
    assert_eq!(kinds(&of_connection(&deliveries, &bob)), ["connection.created"]);
    let api = second.client(Some(&first.admin_key));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log = api.get(&log_path).await.expect_json(200)["items"].as_array().cloned().unwrap_or_default();
        if log.len() == 3 && log.iter().all(|d| d["state"] == "delivered") {
            // Newest first: bob's, ann's second (which waited behind her first), ann's first.
            let attempts: Vec<u64> = log.iter().map(|d| d["attempts"].as_u64().unwrap_or_default()).collect();
            assert!(attempts[0] >= 2 && attempts[1] == 1 && attempts[2] >= 2, "{log:#?}");
            break;
        }
        assert!(Instant::now() < deadline, "every delivery delivered after the restart: {log:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.stop();
    drop(second);
    drop(first);
}

// ---------------------------------------------------------------------------------------------
// Secrets, filters, and the webhook's life.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_deliveries_carry_a_signature_of_the_old_and_of_the_new_secret() {
    let Some(mut receiver) = Receiver::try_start(&[]) else { return };
    let w = World::start(&[]).await;
    let hook = w.hook(&mut receiver, None).await;
    // A secret the receiver also tries, which nothing signs with: the check is real.
    receiver.add_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").await;
    let (connection, _) = w.connection("ann").await;
    let before = receiver.wait_for(1).await;
    assert_eq!(before[0].signatures().len(), 1, "one secret, one signature");
    assert_eq!(before[0].verified_by, [0]);
    assert_eq!(before[0].verify_errors.len(), 1, "the other secret does not verify it");

    let rotate = format!("/v1/webhooks/{}/rotate-secret", hook.id);
    let rotated = w.api.post(&rotate, &json!({})).await.expect_json(200);
    let second = string(&rotated, "secret");
    assert!(second.starts_with("whsec_") && second != hook.secret, "a new secret");
    assert_eq!(rotated["id"], hook.id.as_str());
    receiver.add_secret(&second).await;
    w.rename(&connection, "after one rotation").await;
    let after = receiver.wait_for(2).await;
    assert_signed(&after[1]);
    assert_eq!(after[1].signatures().len(), 2, "{}", after[1].everything());
    assert_eq!(after[1].verified_by, [0, 2], "verified by the old and by the new secret alone");

    // Rotated again within the day: the three sign.
    let third = string(&w.api.post(&rotate, &json!({})).await.expect_json(200), "secret");
    receiver.add_secret(&third).await;
    w.rename(&connection, "after two rotations").await;
    let latest = receiver.wait_for(3).await;
    assert_eq!(latest[2].signatures().len(), 3);
    assert_eq!(latest[2].verified_by, [0, 2, 3]);

    let shown = w.api.get(&format!("/v1/webhooks/{}", hook.id)).await.expect_json(200).to_string();
    let listed = w.api.get("/v1/webhooks").await.expect_json(200).to_string();
    for secret in [&hook.secret, &second, &third] {
        assert!(!shown.contains(secret.as_str()) && !listed.contains(secret.as_str()), "secrets are shown once");
        assert!(!contains(&w.portico.output_bytes(), secret), "no secret in Portico's output");
    }
    let missing = format!("/v1/webhooks/{}/rotate-secret", common::MISSING_ID);
    w.api.post(&missing, &json!({})).await.expect_problem(404, "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_only_the_events_it_subscribed_to() {
    let Some(mut all) = Receiver::try_start(&[]) else { return };
    let mut deletions = Receiver::try_start(&[]).expect("a second receiver");
    let w = World::start(&[]).await;
    w.hook(&mut all, None).await;
    let deleted_only = w.hook(&mut deletions, Some(&["connection.deleted"])).await;
    let listed = w.api.get("/v1/webhooks").await.expect_json(200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2), "{listed}");

    let (connection, _) = w.connection("ann").await;
    w.rename(&connection, "renamed").await;
    w.delete(&connection).await;
    // A connector deleted with its connections: one deletion each.
    let (doomed, _) = w.connection("bob").await;
    let connector_path = format!("/v1/connectors/{}?cascade=true", w.connector);
    w.api.delete(&connector_path).await.expect_empty(204);
    let everything = all.wait_for(5).await;
    let created_updated_deleted = ["connection.created", "connection.updated", "connection.deleted"];
    assert_eq!(kinds(&of_connection(&everything, &connection)), created_updated_deleted);
    assert_eq!(kinds(&of_connection(&everything, &doomed)), ["connection.created", "connection.deleted"]);
    let only = deletions.wait_for(2).await;
    assert_nothing_more(&deletions, 2, "only deletions").await;
    only.iter().for_each(assert_signed);
    assert_eq!(kinds(&only.iter().collect::<Vec<_>>()), ["connection.deleted", "connection.deleted"]);
    let mut deleted = [only[0].connection(), only[1].connection()];
    deleted.sort_by_key(|id| *id != connection.as_str());
    assert_eq!(deleted, [connection.as_str(), doomed.as_str()], "one per connection, in any order");

    // Refused event names; `null` subscribes to every kind again.
    let path = format!("/v1/webhooks/{}", deleted_only.id);
    for (events, field) in [(json!(["connection.*"]), "events[0]"), (json!([]), "events"), (json!(["x"]), "events[0]")]
    {
        let reply = w.api.post("/v1/webhooks", &json!({"url": all.url("/x"), "events": events})).await;
        assert_eq!(reply.expect_problem(422, "validation").fields(), [field], "{events}");
        assert_eq!(
            w.api.patch(&path, &json!({"events": events})).await.expect_problem(422, "validation").fields(),
            [field]
        );
    }
    let everything_again = w.api.patch(&path, &json!({"events": null})).await.expect_json(200);
    assert!(everything_again["events"].is_null(), "{everything_again}");
    let connector = id(&w.api.create_connector(&key_connector()).await);
    w.api.create_connection(&json!({"connectorId": connector, "parameters": {"api_key": "k"}})).await;
    assert_eq!(deletions.wait_for(3).await[2].kind(), "connection.created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_or_deleted_webhook_gets_no_new_deliveries() {
    let Some(mut disabled) = Receiver::try_start(&[]) else { return };
    let mut deleted = Receiver::try_start(&[]).expect("a second receiver");
    let mut control = Receiver::try_start(&[]).expect("a third receiver");
    let w = World::start(&[]).await;
    let disabled_hook = w.hook(&mut disabled, None).await;
    let deleted_hook = w.hook(&mut deleted, None).await;
    w.hook(&mut control, None).await;
    let path = format!("/v1/webhooks/{}", disabled_hook.id);
    let off = w.api.patch(&path, &json!({"enabled": false})).await.expect_json(200);
    assert_eq!(off["enabled"], false);
    assert_eq!(w.api.get(&path).await.expect_json(200)["enabled"], false);
    let deleted_path = format!("/v1/webhooks/{}", deleted_hook.id);
    w.api.delete(&deleted_path).await.expect_empty(204);
    w.api.get(&deleted_path).await.expect_problem(404, "not-found");
    w.log_reply(&deleted_hook).await.expect_problem(404, "not-found");
    w.api.delete(&deleted_path).await.expect_problem(404, "not-found");

    let (connection, _) = w.connection("ann").await;
    control.wait_for(1).await;
    assert_nothing_more(&disabled, 0, "a disabled webhook gets nothing").await;
    assert_nothing_more(&deleted, 0, "a deleted webhook gets nothing").await;
    assert!(w.log(&disabled_hook).await.is_empty(), "nothing waits for it either");

    // Enabled again: what happens from now on, not what happened meanwhile.
    w.api.patch(&path, &json!({"enabled": true})).await.expect_json(200);
    w.rename(&connection, "renamed").await;
    let after = disabled.wait_for(1).await;
    assert_nothing_more(&disabled, 1, "only the event after it was enabled").await;
    assert_signed(&after[0]);
    assert_eq!(after[0].kind(), "connection.updated");
}

/// A webhook whose receiver answers 503, retried every 0.2 s (and more), once its first retry
/// arrived.
async fn retried_webhook() -> Option<(Receiver, World, Hook)> {
    let mut receiver = Receiver::try_start(&["--status", "503"])?;
    let w = World::start(&["--webhook-retry-initial", "0.2"]).await;
    let hook = w.hook(&mut receiver, None).await;
    w.connection("ann").await;
    receiver.wait_for(2).await;
    Some((receiver, w, hook))
}

/// Asserts that no attempt starts from now on (one already under way may still arrive).
async fn assert_no_more_attempts(receiver: &Receiver, why: &str) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_nothing_more(receiver, receiver.deliveries().len(), why).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_webhook_stops_the_retries_of_what_waited_for_it() {
    let Some((receiver, w, hook)) = retried_webhook().await else { return };
    w.api.delete(&format!("/v1/webhooks/{}", hook.id)).await.expect_empty(204);
    assert_no_more_attempts(&receiver, "no retry after the webhook was deleted").await;
    let metrics = w.metrics_until("an empty queue", |m| m.queue_depth() == 0.0).await;
    assert_eq!(Metrics(&metrics).oldest_pending(), 0.0);
}

/// What a demanding user expects of `enabled: false` (the API says "gets no new deliveries"):
/// no more requests to that URL, retries included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_webhook_stops_the_retries_of_what_waited_for_it() {
    let Some((receiver, w, hook)) = retried_webhook().await else { return };
    w.api.patch(&format!("/v1/webhooks/{}", hook.id), &json!({"enabled": false})).await.expect_json(200);
    assert_no_more_attempts(&receiver, "no attempt to a disabled webhook").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_on_private_addresses_are_refused_unless_private_backends_are_allowed() {
    let w = World::start_exactly(&[]).await;
    let port = portico_testkit::spare_port();
    for url in [
        format!("http://127.0.0.1:{port}/hooks"),
        "http://localhost:8080/hooks".to_owned(),
        "http://10.1.2.3/hooks".to_owned(),
        "http://192.168.0.10/hooks".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::1]/hooks".to_owned(),
        "http://[::ffff:127.0.0.1]/hooks".to_owned(),
        "http://0.0.0.0/hooks".to_owned(),
        "http://2130706433/hooks".to_owned(),
    ] {
        let reply = w.api.post("/v1/webhooks", &json!({"url": url})).await;
        let problem = reply.expect_problem(422, "validation");
        assert_eq!(problem.fields(), ["url"], "{url}");
        assert!(problem.message("url").contains("private"), "{url}: {}", problem.message("url"));
    }
    for (url, why) in [
        ("ftp://hooks.example.com/", "not http"),
        ("/hooks", "relative"),
        ("https://user:password@hooks.example.com/", "credentials"),
    ] {
        let reply = w.api.post("/v1/webhooks", &json!({"url": url})).await;
        assert_eq!(reply.expect_problem(422, "validation").fields(), ["url"], "{why}");
    }
    let reply = w.api.post("/v1/webhooks", &json!({"url": "https://hooks.example.com/portico", "extra": 1})).await;
    assert!(reply.status == 400 || reply.status == 422, "an unknown field is refused: {}", reply.text);
    // A public one is taken; it cannot be moved to a private address either.
    let hook = w.hook_at("https://hooks.example.com/portico", None).await;
    let reply =
        w.api.patch(&format!("/v1/webhooks/{}", hook.id), &json!({"url": format!("http://127.0.0.1:{port}/")})).await;
    assert_eq!(reply.expect_problem(422, "validation").fields(), ["url"]);
    let listed = w.api.get("/v1/webhooks").await.expect_json(200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "nothing else was made: {listed}");

    // Only admins manage webhooks.
    let user = w
        .api
        .post("/v1/api-keys", &json!({"name": "a user", "role": "user", "endUserId": "ann"}))
        .await
        .expect_json(201);
    let user = w.portico.client(Some(&string(&user, "key")));
    user.get("/v1/webhooks").await.expect_problem(403, "forbidden");
    user.post("/v1/webhooks", &json!({"url": "https://hooks.example.com/x"})).await.expect_problem(403, "forbidden");
    user.get(&format!("/v1/webhooks/{}/deliveries", hook.id)).await.expect_problem(403, "forbidden");
    w.portico.client(None).get("/v1/webhooks").await.expect_problem(401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_to_a_private_address_gets_no_delivery() {
    // A name of this machine's hosts file for a loopback address, other than `localhost`
    // (which is refused by name): the address is checked when the name is resolved.
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let name = hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().split_whitespace().collect::<Vec<_>>())
        .filter(|words| words.first().is_some_and(|address| address.starts_with("127.")))
        .flat_map(|words| words[1..].iter().map(|name| (*name).to_owned()).collect::<Vec<_>>())
        .find(|name| !name.eq_ignore_ascii_case("localhost") && name.contains(|c: char| c.is_ascii_alphabetic()));
    let Some(name) = name else {
        portico_testkit::skip_or_fail("/etc/hosts names no loopback address but `localhost`, which this test needs");
        return;
    };
    let Some(mut receiver) = Receiver::try_start(&[]) else { return };
    let w = World::start_exactly(&[]).await;
    let url = format!("http://{name}:{}/hooks", receiver.port());
    let hook = w.hook_at(&url, None).await;
    receiver.add_secret(&hook.secret).await;
    w.connection("ann").await;
    let log = w.log_until(&hook, "a refused attempt", |log| log.first().is_some_and(|d| d["attempts"] == 1)).await;
    assert_nothing_more(&receiver, 0, &format!("nothing reaches {name}, a loopback address")).await;
    assert!(log[0]["lastStatus"].is_null() && log[0]["state"] == "pending", "{:#}", log[0]);
    let error = log[0]["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("non-public address"), "refused by the address rule, not unreachable: {error}");
}

#[tokio::test]
async fn retry_settings_must_be_positive_numbers_of_seconds() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for args in [
        ["--webhook-retry-initial", "0"],
        ["--webhook-retry-initial", "-1"],
        ["--webhook-retry-max-interval", "soon"],
        ["--webhook-retry-for", "0"],
    ] {
        // `=`: a value may start with a minus sign.
        let flag = format!("{}={}", args[0], args[1]);
        let refused = common::serve_refused(&dir.path().join("data"), &[&flag], &[]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        let says_why = stderr.contains("positive numbers of seconds") || stderr.contains("invalid value");
        assert!(says_why, "{flag}: {stderr}");
    }
}
