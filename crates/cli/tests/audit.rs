//! The audit trail, end to end: every use of a credential and every change is recorded with
//! its principal and outcome and never a secret, read back through `GET /v1/audit` (filters and
//! cursors) and `portico audit export`; calls never wait for it; a clean stop loses nothing.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::{Api, Portico, distinctive, fixture};
use serde_json::{Value, json};

const PRIVATE: &str = "--allow-private-backends";

/// A connector with an operation whose path has a parameter, on `backend`.
async fn connector(admin: &Api, backend: &Backend) -> String {
    let mut definition = fixture::json("calls/api-key-header.json");
    definition["backend"]["host"] = json!(backend.authority());
    definition["operations"] = json!([
        { "id": "Ping", "method": "GET", "path": "/ok" },
        { "id": "GetItem", "method": "GET", "path": "/items/{itemId}",
          "parameters": [{ "name": "itemId", "in": "path", "required": true, "type": "string" }] }
    ]);
    common::id(&admin.create_connector(&json!({ "definition": definition })).await)
}

/// A connection (of a new [`connector`]) that `admin` makes.
async fn connection(admin: &Api, backend: &Backend) -> String {
    let connector = connector(admin, backend).await;
    let body = json!({"connectorId": connector, "parameters": {"api_key": "k"}});
    common::id(&admin.post("/v1/connections", &body).await.expect_json(201))
}

/// Every event the admin reads, newest first, through pages of `limit`.
async fn all_events(admin: &Api, query: &str, limit: u32) -> Vec<Value> {
    let separator = if query.is_empty() { "" } else { "&" };
    let mut events = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let cursor = before.as_ref().map(|c| format!("&before={c}")).unwrap_or_default();
        let page = admin.get(&format!("/v1/audit?limit={limit}{separator}{query}{cursor}")).await.expect_json(200);
        events.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => return events,
        }
    }
}

/// Waits (the writer appends every 250 ms) until `wanted` events match `query`.
async fn events_when(admin: &Api, query: &str, wanted: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = all_events(admin, query, 200).await;
        if events.len() >= wanted || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn of_action<'a>(events: &'a [Value], action: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["action"] == action).collect()
}

trait Status {
    fn expect_status(&self, status: u16);
}

impl Status for common::Reply {
    #[track_caller]
    fn expect_status(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.text);
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(-1.0)
}

#[tokio::test]
async fn every_use_of_a_credential_and_every_change_is_recorded_without_a_secret() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE]);
    let admin = portico.api();
    let connector = connector(&admin, &backend).await;
    let created = admin.post("/v1/api-keys", &json!({"name": "ann's app", "role": "user", "endUserId": "ann"})).await;
    let created = created.expect_json(201);
    let (ann_key_id, ann_key) = (common::id(&created), created["key"].as_str().unwrap().to_owned());
    let ann = portico.client(Some(&ann_key));
    let secret = distinctive("secret-");
    let connection = common::id(
        &ann.post("/v1/connections", &json!({"connectorId": connector, "parameters": {"api_key": secret}}))
            .await
            .expect_json(201),
    );

    let started = Instant::now();
    let item = distinctive("item-");
    let private_query = distinctive("query-");
    ann.get(&format!("/v1/connections/{connection}/proxy/items/{item}?q={private_query}")).await.expect_status(200);
    ann.get(&format!("/v1/connections/{connection}/proxy/unknown/{item}")).await.expect_status(200);
    ann.get(&format!("/v1/connections/{connection}/proxy/status/503")).await;
    ann.post(&format!("/v1/connections/{connection}/operations/Ping"), &json!({})).await.expect_status(200);
    ann.post(&format!("/v1/connections/{connection}/test"), &json!({})).await.expect_json(200);
    let webhook =
        common::id(&admin.post("/v1/webhooks", &json!({"url": "http://127.0.0.1:9/hook"})).await.expect_json(201));
    admin.delete(&format!("/v1/webhooks/{webhook}")).await.expect_empty(204);
    admin.delete(&format!("/v1/api-keys/{ann_key_id}")).await.expect_empty(204);

    let events = events_when(&admin, "", 10).await;
    let proxied = of_action(&events, "call.proxy");
    assert_eq!(proxied.len(), 3, "{events:#?}");
    // Newest first: the first proxied call is the last of them.
    let matched = proxied[2];
    assert_eq!(matched["principal"], format!("key:{ann_key_id}"));
    assert_eq!(matched["connectionId"], connection);
    assert_eq!(matched["connectorId"], connector);
    assert_eq!(matched["method"], "GET");
    assert_eq!(matched["operation"], "GetItem");
    assert_eq!(matched["path"], "/items/{itemId}", "the template, never the path");
    assert_eq!(matched["outcome"], "200");
    assert_eq!(matched["count"], 1);
    let latency = matched["latencyMs"].as_f64().expect("a latency");
    assert!(latency > 0.0 && latency < started.elapsed().as_secs_f64() * 1000.0, "{latency}");
    assert!(!matched["instance"].as_str().unwrap().is_empty());
    assert_eq!(proxied[1]["path"], Value::Null, "a path no operation has is not recorded");
    assert_eq!(proxied[1]["method"], "GET");
    assert_eq!(proxied[0]["outcome"], "503");
    let operation = of_action(&events, "call.operation");
    assert_eq!(
        (operation.len(), &operation[0]["operation"], &operation[0]["path"]),
        (1, &json!("Ping"), &json!("/ok"))
    );
    assert_eq!(of_action(&events, "connection.test").len(), 1);
    let created = of_action(&events, "connection.created");
    assert_eq!((created.len(), &created[0]["principal"]), (1, &json!(format!("key:{ann_key_id}"))));
    for action in ["connector.created", "key.created", "key.revoked", "webhook.created", "webhook.deleted"] {
        let found = of_action(&events, action);
        assert_eq!(found.len(), 1, "{action}: {events:#?}");
        assert!(found[0]["principal"].as_str().unwrap().starts_with("key:"), "{action}");
        assert_eq!(found[0]["outcome"], "ok");
    }
    assert_eq!(of_action(&events, "key.revoked")[0]["target"], ann_key_id);

    // Nothing secret, and nothing the caller sent but the method, anywhere in the trail.
    let text = serde_json::to_string(&events).unwrap();
    for never in [&secret, &item, &private_query, &ann_key, &portico.admin_key] {
        assert!(!text.contains(never.as_str()), "{never} in the audit trail");
    }

    // Filters, each alone and together, and pages that meet exactly.
    let by_action = all_events(&admin, "action=call.proxy", 200).await;
    assert_eq!(by_action, proxied.iter().map(|e| (*e).clone()).collect::<Vec<_>>());
    let by_principal = all_events(&admin, &format!("principal=key:{ann_key_id}&connectionId={connection}"), 200).await;
    assert_eq!(by_principal.len(), 6, "three proxied, an operation, a test, the creation: {by_principal:#?}");
    let paged = all_events(&admin, "", 2).await;
    assert_eq!(paged, events, "pages of 2 hold what one page holds");
    let ids: BTreeSet<&str> = paged.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), paged.len());
    let future = all_events(&admin, "since=2100-01-01T00:00:00Z", 200).await;
    assert!(future.is_empty());
    let past = all_events(&admin, "until=2000-01-01T00:00:00Z", 200).await;
    assert!(past.is_empty());
    let first_call = matched["at"].as_str().unwrap();
    let since_first = all_events(&admin, &format!("action=call.proxy&since={first_call}"), 200).await;
    assert_eq!(since_first.len(), 3);
    let until_first = all_events(&admin, &format!("action=call.proxy&until={first_call}"), 200).await;
    assert!(until_first.is_empty());

    // Only admins read it, and a malformed filter is the caller's mistake.
    let author = admin.post("/v1/api-keys", &json!({"name": "author", "role": "author"})).await.expect_json(201);
    portico.client(author["key"].as_str()).get("/v1/audit").await.expect_problem(403, "forbidden");
    admin.get("/v1/audit?since=yesterday").await.expect_problem(400, "bad-request");
    admin.get("/v1/audit?limit=0").await.expect_problem(400, "bad-request");
}

#[tokio::test]
async fn a_clean_stop_writes_every_queued_event_and_export_prints_them_as_json_lines() {
    let backend = Backend::start().await;
    let mut portico = Portico::start_with(&[PRIVATE]);
    let admin = portico.api();
    let connection = connection(&admin, &backend).await;
    for i in 0..60 {
        admin.get(&format!("/v1/connections/{connection}/proxy/items/{i}")).await.expect_status(200);
    }
    // Stopped at once: the last calls are still in the queue, and the stop writes them.
    assert!(portico.stop().success());

    let output = portico.command("audit", &["export", "--since", "1h", "--format", "jsonl"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a JSON object"))
        .collect();
    let calls: Vec<&Value> = lines.iter().filter(|line| line["action"] == "call.proxy").collect();
    let counted: i64 = calls.iter().map(|line| line["count"].as_i64().unwrap()).sum();
    assert_eq!(counted, 60, "every call, none lost at the stop");
    assert!(calls.len() < 60, "calls alike are rolled up: {} events", calls.len());
    assert!(calls.iter().all(|line| line["tenant"] == "default" && line["path"] == "/items/{itemId}"));
    let ids: Vec<&str> = lines.iter().map(|line| line["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: ids sort as times do");
    assert_eq!(lines[0]["action"], "connector.created");

    let none = portico.command("audit", &["export", "--since", "2100-01-01T00:00:00Z"]);
    assert!(none.status.success() && none.stdout.is_empty());
    let wrong = portico.command("audit", &["export", "--since", "last week"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("neither an RFC 3339 time nor an age"));
    let unknown = portico.command("audit", &["export", "--tenant", "nobody"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("there is no tenant 'nobody'"));
}

#[tokio::test]
async fn a_full_queue_drops_events_of_calls_and_counts_them_but_never_fails_a_call() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&[PRIVATE, "--audit-queue", "1"]);
    let admin = portico.api();
    let connection = connection(&admin, &backend).await;
    let calls = 300;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let api = portico.api();
        let path = format!("/v1/connections/{connection}/proxy/ok");
        tasks.spawn(async move {
            for _ in 0..calls / 8 {
                api.get(&path).await.expect_status(200);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("every call succeeds");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let recorded: i64 =
        all_events(&admin, "action=call.proxy", 200).await.iter().map(|e| e["count"].as_i64().unwrap()).sum();
    let recorded = recorded as f64;
    let metrics = portico.metrics().await.text;
    let dropped = metric(&metrics, "portico_audit_events_dropped_total");
    assert!(dropped >= 1.0, "{metrics}");
    assert_eq!(recorded + dropped, f64::from(calls / 8 * 8), "each call recorded or counted as dropped");
    assert_eq!(metric(&metrics, "portico_audit_queue_capacity"), 1.0);
    // Changes are never dropped.
    assert_eq!(all_events(&admin, "action=connection.created", 200).await.len(), 1);
}

#[tokio::test]
async fn calls_can_be_left_out_and_old_events_are_deleted_after_the_retention() {
    let backend = Backend::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut portico = Portico::start_in(data_dir.path(), &[PRIVATE, "--audit-calls", "false"]);
    let admin = portico.api();
    let connection = connection(&admin, &backend).await;
    admin.get(&format!("/v1/connections/{connection}/proxy/ok")).await.expect_status(200);
    let events = events_when(&admin, "", 2).await;
    assert_eq!(events.len(), 2, "the two changes and no call: {events:#?}");
    assert!(portico.stop().success());

    // Restarted with a retention of about a second: what is older goes at start-up.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let portico = Portico::start_in(data_dir.path(), &[PRIVATE, "--audit-retention", "0.00001"]);
    let admin = portico.api();
    admin.get(&format!("/v1/connections/{connection}/proxy/ok")).await.expect_status(200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = all_events(&admin, "", 200).await;
        let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
        if actions == ["call.proxy"] {
            break;
        }
        assert!(Instant::now() < deadline, "only the new call is left: {actions:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
