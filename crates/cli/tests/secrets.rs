//! Secrets never leave: not in an API response, not in the logs at debug level, not in the
//! store (the files of the data directory and, on PostgreSQL, every value of the database).
//! Each value is random, so finding it anywhere can only be a leak.

mod common;

use common::{Portico, contains, distinctive, fixture};
use serde_json::json;

/// Every file of the data directory, and every column of the database on PostgreSQL, that
/// holds `needle`, by name.
fn places_holding(portico: &Portico, needle: &str) -> Vec<String> {
    portico.stored_contents().into_iter().filter(|(_, bytes)| contains(bytes, needle)).map(|(name, _)| name).collect()
}

/// Searches the store for every secret and key; the search must find a visible value.
fn search_store(portico: &Portico, secrets: &[&String], keys: [&String; 2], visible: &str, moment: &str) {
    for secret in secrets {
        assert_eq!(places_holding(portico, secret), Vec::<String>::new(), "{secret} {moment}");
    }
    for key in keys {
        let holding = places_holding(portico, key);
        assert!(holding.iter().all(|name| name.ends_with("admin-api-key")), "an API key in {holding:?} {moment}");
    }
    // The search can find what is stored in clear.
    assert!(!places_holding(portico, visible).is_empty(), "the store holds visible values {moment}");
}

#[tokio::test]
async fn secrets_appear_in_no_response_log_or_file() {
    let mut portico = Portico::start();
    let api = portico.api();
    let tenant_key = portico.tenant_key("create", "b");
    let basic_user = distinctive("agent-");
    let basic_password = distinctive("S3cr3t-basic-");
    let api_key = distinctive("k3y-");
    let patched_password = distinctive("S3cr3t-patched-");
    let client_secret = distinctive("cl13nt-");
    let visible_user = distinctive("visible-user-");
    let secrets = [&basic_user, &basic_password, &api_key, &patched_password, &client_secret];

    let tickets = api.create_connector(&fixture::power_platform("basic-auth")).await;
    let mut weather_body = fixture::power_platform("api-key-query");
    weather_body["oauthClient"] = json!({"clientId": "weather-app", "clientSecret": client_secret});
    let weather = api.create_connector(&weather_body).await;
    let crm = api.create_connector(&fixture::power_platform("multi-auth")).await;

    let basic = api
        .create_connection(&json!({"connectorId": tickets["id"],
            "parameters": {"username": basic_user, "password": basic_password}}))
        .await;
    let keyed = api.create_connection(&json!({"connectorId": weather["id"], "parameters": {"api_key": api_key}})).await;
    // A visible value of another connection: the positive control of the file search.
    api.create_connection(&json!({"connectorId": crm["id"], "parameterSet": "basicAuth",
        "parameters": {"username": visible_user, "password": basic_password}}))
        .await;
    let basic_path = format!("/v1/connections/{}", basic["id"].as_str().unwrap());
    let patched = api.patch(&basic_path, &json!({"parameters": {"password": patched_password}})).await.expect_json(200);
    assert_eq!(patched["secrets"], json!({"password": {"set": true}, "username": {"set": true}}));

    // Refused requests that carry secrets do not echo them.
    api.post("/v1/connections", &json!({"connectorId": weather["id"], "parameters": {"api_key": api_key, "x": 1}}))
        .await
        .expect_problem(422, "validation");
    api.patch(&basic_path, &json!({"parameters": {"password": patched_password, "username": 5}}))
        .await
        .expect_problem(422, "validation");
    api.post("/v1/connections", &json!({"connectorId": tickets["id"], "password": basic_password}))
        .await
        .expect_problem(422, "validation");
    // And everything read back.
    for path in ["/v1/connectors", "/v1/connections", &basic_path] {
        api.get(path).await.expect_json(200);
    }
    let keyed_path = format!("/v1/connections/{}", keyed["id"].as_str().unwrap());
    assert_eq!(api.get(&keyed_path).await.expect_json(200)["secrets"], json!({"api_key": {"set": true}}));
    for connector in [&tickets, &weather, &crm] {
        let id = connector["id"].as_str().unwrap();
        api.get(&format!("/v1/connectors/{id}")).await.expect_json(200);
        api.get(&format!("/v1/connectors/{id}/connection-form")).await.expect_json(200);
    }
    assert_eq!(
        api.get(&format!("/v1/connectors/{}", weather["id"].as_str().unwrap())).await.expect_json(200)["oauthClient"],
        json!({"clientId": "weather-app", "clientSecretSet": true})
    );

    let responses = portico.responses();
    assert!(responses.len() > 15);
    for secret in secrets {
        for text in &responses {
            assert!(!text.contains(secret.as_str()), "{secret} in a response: {text}");
        }
    }
    assert!(responses.iter().any(|text| text.contains(&visible_user)), "visible values are shown");

    let admin_key = portico.admin_key.clone();
    search_store(&portico, &secrets, [&admin_key, &tenant_key], &visible_user, "while the server runs");
    let status = portico.stop();
    assert!(status.success(), "{status}");
    let names: Vec<String> = portico.stored_contents().into_iter().map(|(name, _)| name).collect();
    match portico.test_database() {
        // SQLite: the search covers the database file.
        None => assert!(names.iter().any(|name| name.ends_with("/portico.db")), "{names:?}"),
        // PostgreSQL: the search covers the sealed columns, raw and as hex.
        Some(_) => {
            for column in ["connections.secrets", "connections.secrets (hex)", "connectors.oauth_client_secret"] {
                assert!(names.iter().any(|name| name.ends_with(column)), "{column} in {names:?}");
            }
        }
    }
    search_store(&portico, &secrets, [&admin_key, &tenant_key], &visible_user, "after the server stopped");

    let output = portico.output_bytes();
    let stderr = portico.stderr();
    assert!(stderr.lines().count() > 50, "the debug logs are long enough to mean something:\n{stderr}");
    for expected in ["DEBUG", "sqlx::query", "finished processing request", "connection created"] {
        assert!(stderr.contains(expected), "the logs show {expected}:\n{stderr}");
    }
    for secret in secrets.into_iter().chain([&admin_key, &tenant_key]) {
        assert!(!contains(&output, secret), "{secret} in the server's output");
    }
}
