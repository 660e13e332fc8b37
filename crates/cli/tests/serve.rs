//! `portico serve` as an operator meets it: what it prints, the files it writes, the health and
//! description endpoints, its logs, and a restart on the same data directory.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Portico, contains, fixture};
use serde_json::{Value, json};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn start_up_prints_the_api_and_the_key_file_but_never_the_key() {
    let portico = Portico::start();
    let stdout = portico.stdout();
    let key_file = portico.data_dir.join("admin-api-key");

    assert!(portico.base.starts_with("http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains(&format!("API:      {}/v1", portico.base)), "{stdout}");
    assert!(stdout.contains(&format!("{}/openapi.json", portico.base)), "{stdout}");
    assert!(
        stdout.contains(&format!("API key of tenant 'default' written to {}", key_file.display())),
        "the first start names the key file: {stdout}"
    );
    assert!(portico.admin_key.starts_with("pk_") && portico.admin_key.len() > 20, "a real key in the file");
    assert!(!contains(&portico.output_bytes(), &portico.admin_key), "the key is neither printed nor logged");

    assert_eq!(mode(&key_file), 0o600, "admin-api-key is private");
    if portico.database_url.is_none() {
        assert_eq!(mode(&portico.data_dir.join("master.key")), 0o600, "master.key is private");
    } else {
        // On PostgreSQL the master key comes from PORTICO_MASTER_KEY, shared by every instance.
        assert!(!portico.data_dir.join("master.key").exists(), "no key file when the environment has the key");
    }
    assert_eq!(mode(&portico.data_dir), 0o700, "the data directory Portico creates is private");
}

#[tokio::test]
async fn health_and_readiness_answer_without_a_key() {
    let portico = Portico::start();
    let anonymous = portico.client(None);

    let health = anonymous.get("/healthz").await;
    assert_eq!((health.status, health.text.as_str()), (200, "ok"));
    let ready = anonymous.get("/readyz").await;
    assert_eq!((ready.status, ready.text.as_str()), (200, "ready"));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let portico = Portico::start();
    let document = portico.client(None).get("/openapi.json").await.expect_json(200);

    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1"), "OpenAPI 3.1, not {version}");
    let described: BTreeMap<&str, BTreeSet<&str>> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            (path.as_str(), item.as_object().expect("a path item").keys().map(String::as_str).collect())
        })
        .collect();
    let served: BTreeMap<&str, BTreeSet<&str>> = [
        ("/healthz", vec!["get"]),
        ("/readyz", vec!["get"]),
        ("/v1/connectors", vec!["get", "post"]),
        ("/v1/connectors/{id}", vec!["get", "put", "delete"]),
        ("/v1/connectors/{id}/connection-form", vec!["get"]),
        ("/v1/connections", vec!["get", "post"]),
        ("/v1/connections/{id}", vec!["get", "patch", "delete"]),
        ("/v1/connections/{id}/reauthorize", vec!["post"]),
        ("/v1/connections/{id}/shares", vec!["get"]),
        ("/v1/connections/{id}/shares/{endUserId}", vec!["put", "delete"]),
        ("/v1/api-keys", vec!["get", "post"]),
        ("/v1/api-keys/{id}", vec!["get", "delete"]),
        ("/v1/members", vec!["get", "post"]),
        ("/v1/members/{id}", vec!["get", "patch", "delete"]),
        ("/v1/connect-sessions", vec!["post"]),
        ("/v1/connect-sessions/{id}", vec!["get"]),
        ("/v1/connect/{token}", vec!["get"]),
        ("/v1/connect/{token}/connections", vec!["post"]),
        ("/v1/webhooks", vec!["get", "post"]),
        ("/v1/webhooks/{id}", vec!["get", "patch", "delete"]),
        ("/v1/webhooks/{id}/rotate-secret", vec!["post"]),
        ("/v1/webhooks/{id}/deliveries", vec!["get"]),
        ("/v1/audit", vec!["get"]),
        ("/v1/connections/{id}/proxy/{path}", vec!["get", "post", "put", "patch", "delete"]),
        ("/v1/connections/{id}/operations/{operationId}", vec!["post"]),
        ("/v1/connections/{id}/test", vec!["post"]),
        ("/oauth/callback", vec!["get"]),
    ]
    .into_iter()
    .map(|(path, methods)| (path, methods.into_iter().collect()))
    .collect();
    assert_eq!(described, served, "the document and the routes are the same list");

    assert_eq!(document["components"]["securitySchemes"]["apiKey"]["scheme"], "bearer");
    for (path, item) in document["paths"].as_object().unwrap().iter().filter(|(path, _)| path.starts_with("/v1/")) {
        for (method, operation) in item.as_object().unwrap() {
            if path.starts_with("/v1/connect/{token}") {
                // The token in the path is the credential of an end user who has no key.
                assert!(operation.get("security").is_none(), "{method} {path} takes no key");
            } else {
                assert_eq!(operation["security"], json!([{"apiKey": []}]), "{method} {path} needs the key");
            }
        }
    }
}

#[tokio::test]
async fn json_log_format_writes_one_json_object_per_line() {
    let mut portico = Portico::start_with(&["--log-format", "json"]);
    portico.api().get("/v1/connectors").await.expect_json(200);
    portico.stop();

    let stderr = portico.stderr();
    let lines: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(lines.len() > 5, "debug logs: {stderr}");
    let events: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect();
    for event in &events {
        assert!(event.is_object() && event["level"].is_string() && event["timestamp"].is_string(), "{event}");
    }
    let messages: Vec<&str> = events.iter().filter_map(|e| e["fields"]["message"].as_str()).collect();
    assert!(messages.contains(&"listening"), "the start is logged: {messages:?}");
    assert!(messages.contains(&"finished processing request"), "requests are logged: {messages:?}");
    assert!(messages.contains(&"shutting down"), "SIGTERM is logged: {messages:?}");
}

#[tokio::test]
async fn text_logs_on_a_pipe_have_no_colour_codes() {
    let mut portico = Portico::start();
    portico.api().get("/v1/connectors").await.expect_json(200);
    portico.stop();

    let stderr = portico.stderr();
    assert!(stderr.contains("DEBUG"), "debug logs: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no ANSI escape codes in logs that are not on a terminal");
}

/// Everything a user can read back, to compare before and after a restart.
async fn snapshot(api: &common::Api, connectors: &[&str], connections: &[&str]) -> Vec<Value> {
    let mut views =
        vec![api.get("/v1/connectors").await.expect_json(200), api.get("/v1/connections").await.expect_json(200)];
    for id in connectors {
        views.push(api.get(&format!("/v1/connectors/{id}")).await.expect_json(200));
        views.push(api.get(&format!("/v1/connectors/{id}/connection-form")).await.expect_json(200));
    }
    for id in connections {
        views.push(api.get(&format!("/v1/connections/{id}")).await.expect_json(200));
    }
    views
}

#[tokio::test]
async fn a_restart_on_the_same_data_directory_keeps_everything() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut first = Portico::start_in(&data_dir, &[]);
    let api = first.api();
    let basic = api.create_connector(&fixture::power_platform("basic-auth")).await;
    let metrics = api.create_connector(&fixture::definition("metrics.json")).await;
    let multi = api.create_connector(&fixture::power_platform("multi-auth")).await;
    let help_desk = api
        .create_connection(&json!({"connectorId": basic["id"], "displayName": "Help desk",
            "parameters": {"username": "agent@acme.example", "password": "restart-password"}}))
        .await;
    let eu_metrics = api
        .create_connection(&json!({"connectorId": metrics["id"],
            "parameters": {"api_key": "restart-key", "region": "eu", "timeout": 10}}))
        .await;
    let crm = api
        .create_connection(&json!({"connectorId": multi["id"], "parameterSet": "apiKey",
            "parameters": {"api_key": "restart-crm-key"}}))
        .await;
    let connector_ids = [basic["id"].as_str().unwrap(), metrics["id"].as_str().unwrap(), multi["id"].as_str().unwrap()];
    let connection_ids =
        [help_desk["id"].as_str().unwrap(), eu_metrics["id"].as_str().unwrap(), crm["id"].as_str().unwrap()];
    let before = snapshot(&api, &connector_ids, &connection_ids).await;
    let key_file_before = std::fs::read(data_dir.join("admin-api-key")).unwrap();
    let status = first.stop();
    assert!(status.success(), "SIGTERM stops the server cleanly: {status}\n{}", first.stderr());

    let second = Portico::start_in(&data_dir, &[]);
    let stdout = second.stdout();
    assert!(!stdout.contains("written to"), "no new admin key on a restart: {stdout}");
    assert!(
        stdout.contains(&format!("API key of tenant 'default': see {}", data_dir.join("admin-api-key").display())),
        "{stdout}"
    );
    assert_eq!(std::fs::read(data_dir.join("admin-api-key")).unwrap(), key_file_before, "the key file is untouched");
    let api = second.api();
    let after = snapshot(&api, &connector_ids, &connection_ids).await;
    assert_eq!(after, before, "every connector and connection reads back the same");

    // Changing a value re-seals the secrets, so it needs them to open with the reloaded key.
    let changed = api
        .patch(&format!("/v1/connections/{}", connection_ids[1]), &json!({"parameters": {"region": "us"}}))
        .await
        .expect_json(200);
    assert_eq!(changed["parameters"]["region"], "us");
    assert_eq!(changed["secrets"], json!({"api_key": {"set": true}}));
    assert_eq!(changed["status"], "connected");
    let read_back = api.get(&format!("/v1/connections/{}", connection_ids[1])).await.expect_json(200);
    assert_eq!(read_back, changed);
    // New records still come after the old ones.
    let another = api
        .create_connection(&json!({"connectorId": metrics["id"],
            "parameters": {"api_key": "after-restart", "region": "us", "timeout": 5}}))
        .await;
    let listed = api.get("/v1/connections").await.expect_json(200);
    let ids: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [connection_ids[0], connection_ids[1], connection_ids[2], another["id"].as_str().unwrap()]);
}

#[tokio::test]
async fn settings_come_from_the_file_the_environment_and_flags() {
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("portico.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:1\"\npublic_url = \"https://from-file.example/\"\nmax_body_bytes = 1000\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    // The file alone: its public URL and body limit; the --listen flag wins over its address.
    let portico = Portico::launch(&temp.path().join("a"), &["--config", config], &[]);
    assert!(portico.stdout().contains("API:      https://from-file.example/v1"), "{}", portico.stdout());
    let mut large = fixture::definition("metrics.json");
    large["definition"]["metadata"]["description"] = json!("x".repeat(5000));
    portico.api().post("/v1/connectors", &large).await.expect_problem(413, "payload-too-large");

    // The environment wins over the file, and a flag over both.
    let env = [("PORTICO_PUBLIC_URL", "https://from-env.example/"), ("PORTICO_MAX_BODY_BYTES", "100000")];
    let portico = Portico::launch(&temp.path().join("b"), &["--config", config], &env);
    assert!(portico.stdout().contains("API:      https://from-env.example/v1"), "{}", portico.stdout());
    portico.api().create_connector(&large).await;
    let portico = Portico::launch(
        &temp.path().join("c"),
        &["--config", config, "--public-url", "https://from-flag.example/"],
        &[("PORTICO_CONFIG", "/nonexistent.toml")],
    );
    assert!(portico.stdout().contains("API:      https://from-flag.example/v1"), "{}", portico.stdout());
}

#[tokio::test]
async fn a_bad_configuration_stops_the_start_with_a_reason() {
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("portico.toml");
    std::fs::write(&config, "max_body_bytes = 1000\ncolour = \"red\"\n").unwrap();
    let refused = common::serve_refused(&temp.path().join("data"), &["--config", config.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("invalid configuration file") && stderr.contains("colour"), "{stderr}");

    let refused = common::serve_refused(&temp.path().join("data"), &[], &[("PORTICO_MASTER_KEY", "too-short")]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("PORTICO_MASTER_KEY"), "{stderr}");
    assert!(!stderr.contains("too-short"), "the key's value is not repeated: {stderr}");
}

#[tokio::test]
async fn a_second_server_on_a_taken_address_is_refused() {
    let first = Portico::start();
    let address = first.base.trim_start_matches("http://").to_owned();
    let temp = tempfile::tempdir().unwrap();
    let refused = common::serve_refused(&temp.path().join("data"), &["--listen", &address], &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("cannot listen on {address}")), "{stderr}");
    // Every call still reaches the first server (it alone holds the port).
    for _ in 0..20 {
        first.api().get("/v1/connectors").await.expect_json(200);
    }
}

#[tokio::test]
async fn a_stopped_server_gets_its_port_back_at_once() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut first = Portico::start_in(&data_dir, &[]);
    let address = first.base.trim_start_matches("http://").to_owned();
    // Connections the server closes stay in TIME_WAIT on its side for a minute.
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let response = client
            .get(format!("{}/v1/connectors", first.base))
            .bearer_auth(&first.admin_key)
            .header("connection", "close")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(first.stop().success());
    let second = Portico::start_in(&data_dir, &["--listen", &address]);
    assert_eq!(second.base, first.base);
    second.api().get("/v1/connectors").await.expect_json(200);
}

#[tokio::test]
async fn metrics_are_not_served_without_a_metrics_token() {
    let portico = Portico::start_with(&["--metrics-token", ""]);
    let reply = portico.client(Some(common::METRICS_TOKEN)).get("/metrics").await;
    assert_eq!(reply.status, 404);
    assert!(reply.text.contains("--metrics-token"), "{}", reply.text);
    assert_eq!(portico.api().get("/metrics").await.status, 404, "not even to an admin key");
}

#[tokio::test]
async fn the_master_key_can_come_from_the_environment() {
    // base64 of 32 bytes.
    let master_key = "cG9ydGljby10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXM=";
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let env = [("PORTICO_MASTER_KEY", master_key)];
    let mut first = Portico::launch(&data_dir, &[], &env);
    assert!(!data_dir.join("master.key").exists(), "no key file when the environment has the key");
    let api = first.api();
    let metrics = api.create_connector(&fixture::definition("metrics.json")).await;
    let connection = api
        .create_connection(&json!({"connectorId": metrics["id"],
            "parameters": {"api_key": "env-sealed", "region": "eu", "timeout": 1}}))
        .await;
    first.stop();
    assert!(!contains(&first.output_bytes(), master_key), "the master key is not logged");

    let second = Portico::launch(&data_dir, &[], &env);
    let path = format!("/v1/connections/{}", connection["id"].as_str().unwrap());
    let changed = second.api().patch(&path, &json!({"parameters": {"region": "us"}})).await.expect_json(200);
    assert_eq!(changed["secrets"], json!({"api_key": {"set": true}}), "the secret opens with the same key");
}

#[tokio::test]
async fn a_start_with_another_master_key_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut first =
        Portico::launch(&data_dir, &[], &[("PORTICO_MASTER_KEY", "cG9ydGljby10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXM=")]);
    first.stop();
    let other = "b3RoZXItdGVzdC1tYXN0ZXIta2V5LW9mLTMyLWJ5dGU=";
    let refused = common::serve_refused(&data_dir, &[], &[("PORTICO_MASTER_KEY", other)]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is not the one this store's secrets are sealed with"), "{stderr}");
    assert!(!stderr.contains(other), "the key is not repeated: {stderr}");
    // Nothing was written by the refused start: the right key still works.
    let again =
        Portico::launch(&data_dir, &[], &[("PORTICO_MASTER_KEY", "cG9ydGljby10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXM=")]);
    again.api().get("/v1/connectors").await.expect_json(200);
}

#[tokio::test]
async fn the_master_key_can_come_from_a_file_and_a_missing_one_is_named() {
    let master_key = "cG9ydGljby10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXM=";
    let temp = tempfile::tempdir().unwrap();
    let key_file = temp.path().join("portico-master.key");
    std::fs::write(&key_file, format!("{master_key}\n")).unwrap();
    let key_path = key_file.to_str().unwrap();
    let data_dir = temp.path().join("data");
    // The embedded store, named: what is tried here is the data directory's part.
    let database = format!("sqlite://{}?mode=rwc", data_dir.join("portico.db").display());
    let store = ["--database", database.as_str()];
    let env = [("PORTICO_MASTER_KEY_FILE", key_path)];
    let mut first = Portico::launch(&data_dir, &store, &env);
    let api = first.api();
    let metrics = api.create_connector(&fixture::definition("metrics.json")).await;
    let connection = api
        .create_connection(&json!({"connectorId": metrics["id"],
            "parameters": {"api_key": "file-sealed", "region": "eu", "timeout": 1}}))
        .await;
    first.stop();
    assert!(!data_dir.join("master.key").exists(), "no key in the data directory when a file is given");
    assert!(!contains(&first.output_bytes(), master_key), "the master key is not logged");

    // Started without it, the server names what is missing, and makes no key of its own.
    let refused = common::serve_refused(&data_dir, &store, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("the master key is missing") && stderr.contains("PORTICO_MASTER_KEY_FILE"), "{stderr}");
    assert!(!data_dir.join("master.key").exists(), "a refused start writes no key");

    // A file that cannot be read, or a key given twice, is named too.
    let absent = temp.path().join("absent.key");
    let refused = common::serve_refused(&data_dir, &store, &[("PORTICO_MASTER_KEY_FILE", absent.to_str().unwrap())]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("cannot read the master key file {}", absent.display())), "{stderr}");
    let refused = common::serve_refused(&data_dir, &store, &[env[0], ("PORTICO_MASTER_KEY", master_key)]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("given twice"), "{stderr}");
    let short = temp.path().join("short.key");
    std::fs::write(&short, "c2hvcnQ=").unwrap();
    let refused = common::serve_refused(&data_dir, &store, &[("PORTICO_MASTER_KEY_FILE", short.to_str().unwrap())]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(short.to_str().unwrap()) && stderr.contains("5 bytes"), "{stderr}");
    assert!(!stderr.contains("c2hvcnQ"), "the key is not repeated: {stderr}");

    let second = Portico::launch(&data_dir, &store, &env);
    let path = format!("/v1/connections/{}", connection["id"].as_str().unwrap());
    let changed = second.api().patch(&path, &json!({"parameters": {"region": "us"}})).await.expect_json(200);
    assert_eq!(changed["secrets"], json!({"api_key": {"set": true}}), "the secret opens with the key of the file");
}

/// A connection that sends a request's head a line at a time, never ending it (slowloris).
async fn slow_client(address: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("a connection");
    stream.write_all(b"GET /v1/connectors HTTP/1.1\r\nHost: portico\r\n").await.expect("a first line");
    stream
}

/// Whether the server closed `stream` within `deadline`, while the client keeps sending header
/// lines.
async fn closed_by_server(stream: &mut tokio::net::TcpStream, deadline: std::time::Duration) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let until = tokio::time::Instant::now() + deadline;
    let mut buffer = [0u8; 512];
    while tokio::time::Instant::now() < until {
        if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
            return true;
        }
        match tokio::time::timeout(std::time::Duration::from_millis(200), stream.read(&mut buffer)).await {
            // The end, a reset, or the answer to a request head that took too long.
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_and_others_are_served_meanwhile() {
    let portico = Portico::start_with(&["--header-read-timeout", "2"]);
    let address = portico.base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..500 {
        slow.push(slow_client(&address).await);
    }
    // While 500 clients trickle their heads, calls are served.
    let api = portico.api();
    for _ in 0..20 {
        api.get("/v1/connectors").await.expect_json(200);
    }
    // And the slow ones are closed once their head takes longer than the limit.
    let started = std::time::Instant::now();
    for stream in &mut slow {
        assert!(closed_by_server(stream, std::time::Duration::from_secs(10)).await, "a slow client was closed");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "closed after {:?}", started.elapsed());
    api.get("/v1/connectors").await.expect_json(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_at_once_and_counted() {
    use tokio::io::AsyncReadExt as _;
    let portico = Portico::start_with(&["--max-client-connections", "50"]);
    let address = portico.base.trim_start_matches("http://").to_owned();
    // Fifty kept-alive connections, each known to be admitted (it got an answer): each worker
    // accepts from its own queue, so a connection merely opened may not be counted yet.
    let mut held = Vec::new();
    for _ in 0..50 {
        use tokio::io::AsyncWriteExt as _;
        let mut stream = tokio::net::TcpStream::connect(&address).await.expect("a connection");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: portico\r\n\r\n").await.expect("a request");
        let mut buffer = [0u8; 512];
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buffer)).await;
        assert!(matches!(read, Ok(Ok(n)) if buffer[..n].starts_with(b"HTTP/1.1 200")), "admitted and answered");
        held.push(stream);
    }
    // The 51st and later are closed without an answer, at once (an admitted one would wait for
    // its request).
    let mut refused = 0;
    for _ in 0..20 {
        let mut extra = tokio::net::TcpStream::connect(&address).await.expect("accepted by the kernel");
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), extra.read(&mut buffer)).await;
        if matches!(read, Ok(Ok(0) | Err(_))) {
            refused += 1;
        }
    }
    assert_eq!(refused, 20, "every connection over the limit is closed");
    // Once the held ones are closed by their clients, calls are served again, and the metrics
    // tell what happened.
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics = loop {
        let reply = portico.metrics().await;
        if reply.status == 200 {
            break reply.text;
        }
        assert!(std::time::Instant::now() < deadline, "metrics served again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let sample = |name: &str| -> f64 {
        metrics.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(-1.0)
    };
    assert_eq!(sample("portico_client_connections_limit"), 50.0, "{metrics}");
    assert!(sample("portico_client_connections_refused_total") >= 20.0, "{metrics}");
}

#[tokio::test]
async fn an_address_that_keeps_failing_to_authenticate_is_refused_for_a_while() {
    let portico = Portico::start_with(&["--auth-failure-limit", "1"]);
    // The admin key is known (in memory) before the guessing starts.
    portico.api().get("/v1/connectors").await.expect_json(200);
    for i in 0..10 {
        let reply = portico.client(Some(&format!("pk_guess_{i}"))).get("/v1/connectors").await;
        reply.expect_problem(401, "unauthorized");
    }
    for path in ["/v1/connectors", "/v1/connections/c1/proxy/x"] {
        let refused = portico.client(Some("pk_guess_more")).get(path).await;
        refused.expect_problem(429, "too-many-requests");
        let retry_after: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    }
    // A known key is not refused, and the address may try again once it has waited.
    portico.api().get("/v1/connectors").await.expect_json(200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    portico.client(Some("pk_guess_late")).get("/v1/connectors").await.expect_problem(401, "unauthorized");
}

/// Sends `head` on a new connection and reads what comes back until the server closes the
/// connection (or 10 s pass). A reset after the answer ends the read like a close.
async fn exchange(address: &str, head: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("a connection");
    stream.write_all(head).await.expect("the head is sent");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => {
                panic!("the connection is still open after 10 s; received {:?}", String::from_utf8_lossy(&received))
            }
        }
    }
}

/// A request head for `path` with `fields` (after `Host`), and `Connection: close`, ended by the
/// empty line when `complete`.
fn request_head(path: &str, fields: &[(String, String)], complete: bool) -> Vec<u8> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: portico\r\nConnection: close\r\n");
    for (name, value) in fields {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if complete {
        head.push_str("\r\n");
    }
    head.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_heads_over_the_header_limits_are_refused_and_others_served() {
    const COUNT: usize = 20;
    const BYTES: usize = 4096;
    let backend = common::backend::Backend::start().await;
    let (count, bytes) = (COUNT.to_string(), BYTES.to_string());
    let portico =
        Portico::start_with(&["--allow-private-backends", "--max-header-count", &count, "--max-header-bytes", &bytes]);
    let api = portico.api();
    let mut definition = fixture::json("calls/none.json");
    definition["backend"]["host"] = json!(backend.authority());
    let connector = api.create_connector(&json!({"definition": definition})).await;
    let connection = api.create_connection(&json!({"connectorId": connector["id"], "parameters": {}})).await;
    let path = format!("/v1/connections/{}/proxy/ok", connection["id"].as_str().unwrap());
    let address = portico.base.trim_start_matches("http://").to_owned();
    let authorization = ("Authorization".to_owned(), format!("Bearer {}", portico.admin_key));

    // Exactly at both limits: 20 fields (Host, Connection, Authorization and 17 of the
    // caller's), the last padded so that the head is 4096 bytes. Served, every field intact.
    let mut fields = vec![authorization.clone()];
    fields.extend((1..=COUNT - 3).map(|n| (format!("X-Field-{n}"), format!("value {n}"))));
    let size = request_head(&path, &fields, true).len();
    fields.last_mut().unwrap().1.push_str(&"p".repeat(BYTES - size));
    let head = request_head(&path, &fields, true);
    assert_eq!(head.len(), BYTES);
    let answer = String::from_utf8_lossy(&exchange(&address, &head).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 ") && answer.ends_with("ok"), "{answer}");
    let received = backend.take_one();
    for (name, value) in &fields[1..] {
        assert_eq!(received.header(name), Some(value.as_str()), "{name} reached the backend as sent");
    }

    // One field more: 431, and the connection closed.
    let mut over = fields.clone();
    over.last_mut().unwrap().1 = "short".to_owned();
    over.push(("X-One-Too-Many".to_owned(), "1".to_owned()));
    let answer = String::from_utf8_lossy(&exchange(&address, &request_head(&path, &over, true)).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"), "{answer}");

    // One byte more: 431, and the connection closed; so for a head still arriving that has
    // passed the limit, answered at once rather than at the header-read timeout.
    let mut long = fields.clone();
    long.last_mut().unwrap().1.push('p');
    let head = request_head(&path, &long, true);
    assert_eq!(head.len(), BYTES + 1);
    let answer = String::from_utf8_lossy(&exchange(&address, &head).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"), "{answer}");
    let endless = request_head(&path, &[("X-Big".to_owned(), "b".repeat(BYTES))], false);
    let started = std::time::Instant::now();
    let answer = String::from_utf8_lossy(&exchange(&address, &endless).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "answered after {:?}", started.elapsed());
    assert!(backend.take().is_empty(), "no refused request reached the backend");

    // The server keeps serving.
    api.get("/v1/connectors").await.expect_json(200);
    let answer = String::from_utf8_lossy(&exchange(&address, &request_head(&path, &fields, true)).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

#[tokio::test]
async fn header_limits_out_of_range_stop_the_start_with_a_reason() {
    let temp = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (["--max-header-count", "0"], "--max-header-count must be from 1 to 10000, not 0"),
        (["--max-header-bytes", "100"], "--max-header-bytes must be from 1024 to 1048576, not 100"),
        (["--max-header-bytes", "2000000"], "--max-header-bytes must be from 1024 to 1048576, not 2000000"),
    ] {
        let refused = common::serve_refused(&temp.path().join("data"), &args, &[]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    let config = temp.path().join("portico.toml");
    std::fs::write(&config, "max_header_count = 20000\n").unwrap();
    let refused = common::serve_refused(&temp.path().join("data"), &["--config", config.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--max-header-count must be from 1 to 10000, not 20000"), "{stderr}");
}
