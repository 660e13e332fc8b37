//! API keys and tenants: every `/v1` call needs a key, and a tenant sees only its own
//! connectors and connections; another tenant's id answers exactly like a missing one.

mod common;

use common::{MISSING_ID, Portico, every_route, fixture};
use reqwest::Method;
use serde_json::{Value, json};

/// A body each route would accept, so that only the key decides the answer.
fn body_for(method: &Method, path: &str, connector: &str) -> Option<Value> {
    match (method.as_str(), path) {
        ("POST", "/v1/connectors") => Some(fixture::definition("metrics.json")),
        ("PUT", _) => Some(fixture::definition("metrics.json")),
        ("POST", "/v1/connections") => Some(json!({"connectorId": connector,
            "parameters": {"api_key": "k", "region": "eu", "timeout": 10}})),
        ("PATCH", _) => Some(json!({"displayName": "taken over"})),
        _ => None,
    }
}

#[tokio::test]
async fn every_endpoint_and_method_needs_a_valid_key() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = api.create_connector(&fixture::definition("metrics.json")).await;
    let connector_id = connector["id"].as_str().unwrap();
    let connection = api.create_connection(&body_for(&Method::POST, "/v1/connections", connector_id).unwrap()).await;
    let connection_id = connection["id"].as_str().unwrap();

    let wrong_authorizations = [
        None,
        Some("Basic YWRtaW46YWRtaW4=".to_owned()),
        Some(format!("Token {}", portico.admin_key)),
        Some(portico.admin_key.clone()),
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
        Some("Bearer pk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()),
        Some(format!("Bearer {}x", portico.admin_key)),
    ];
    let anonymous = portico.client(None);
    for (method, path) in every_route(connector_id, connection_id) {
        for authorization in &wrong_authorizations {
            let mut request = anonymous.request(method.clone(), &path);
            if let Some(body) = body_for(&method, &path, connector_id) {
                request = request.json(&body);
            }
            if let Some(authorization) = authorization {
                request = request.header("Authorization", authorization);
            }
            let reply = anonymous.send(request).await;
            reply.expect_problem(401, "unauthorized");
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{method} {path} with {authorization:?}");
        }
    }

    // Nothing was changed by the refused calls.
    assert_eq!(api.get(&format!("/v1/connectors/{connector_id}")).await.expect_json(200), connector);
    assert_eq!(api.get(&format!("/v1/connections/{connection_id}")).await.expect_json(200), connection);
    assert_eq!(api.get("/v1/connectors").await.expect_json(200)["items"].as_array().unwrap().len(), 1);
    assert_eq!(api.get("/v1/connections").await.expect_json(200)["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let portico = Portico::start();
    let anonymous = portico.client(None);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let request = anonymous
            .request(Method::GET, "/v1/connectors")
            .header("Authorization", format!("{scheme} {}", portico.admin_key));
        assert_eq!(anonymous.send(request).await.expect_json(200), json!({"items": []}), "{scheme}");
    }
}

#[tokio::test]
async fn another_tenants_ids_answer_like_missing_ones() {
    let portico = Portico::start();
    let a = portico.api();
    let connector = a.create_connector(&fixture::definition("metrics.json")).await;
    let connector_id = connector["id"].as_str().unwrap();
    let connection = a.create_connection(&body_for(&Method::POST, "/v1/connections", connector_id).unwrap()).await;
    let connection_id = connection["id"].as_str().unwrap();

    // Created while the server runs: the key works at once.
    let b = portico.client(Some(&portico.tenant_key("create", "b")));
    assert_eq!(b.get("/v1/connectors").await.expect_json(200), json!({"items": []}));
    assert_eq!(b.get("/v1/connections").await.expect_json(200), json!({"items": []}));
    let filtered = b.get(&format!("/v1/connections?connectorId={connector_id}")).await.expect_json(200);
    assert_eq!(filtered, json!({"items": []}));

    let by_id = |path: &str, connector: &str, connection: &str| {
        path.replace("{connector}", connector).replace("{connection}", connection)
    };
    let routes = [
        (Method::GET, "/v1/connectors/{connector}"),
        (Method::PUT, "/v1/connectors/{connector}"),
        (Method::DELETE, "/v1/connectors/{connector}"),
        (Method::DELETE, "/v1/connectors/{connector}?cascade=true"),
        (Method::GET, "/v1/connectors/{connector}/connection-form"),
        (Method::GET, "/v1/connections/{connection}"),
        (Method::PATCH, "/v1/connections/{connection}"),
        (Method::DELETE, "/v1/connections/{connection}"),
    ];
    for (method, path) in routes {
        let send = |path: String| {
            let mut request = b.request(method.clone(), &path);
            if let Some(body) = body_for(&method, &path, connector_id) {
                request = request.json(&body);
            }
            b.send(request)
        };
        let theirs = send(by_id(path, connector_id, connection_id)).await;
        let missing = send(by_id(path, MISSING_ID, MISSING_ID)).await;
        theirs.expect_problem(404, "not-found");
        assert_eq!(theirs.text, missing.text, "{method} {path}: another tenant's id answers like a missing one");
        assert_eq!(theirs.content_type(), missing.content_type());
    }

    // Connecting to tenant A's connector: as unknown as a connector that does not exist.
    let theirs = b.post("/v1/connections", &body_for(&Method::POST, "/v1/connections", connector_id).unwrap()).await;
    let missing = b.post("/v1/connections", &body_for(&Method::POST, "/v1/connections", MISSING_ID).unwrap()).await;
    assert_eq!(theirs.expect_problem(422, "validation").fields(), ["connectorId"]);
    assert_eq!(theirs.text, missing.text);

    // Tenant A's records are untouched, and B's own connector is invisible to A.
    assert_eq!(a.get(&format!("/v1/connectors/{connector_id}")).await.expect_json(200), connector);
    assert_eq!(a.get(&format!("/v1/connections/{connection_id}")).await.expect_json(200), connection);
    let own = b.create_connector(&fixture::definition("metrics.json")).await;
    let listed = b.get("/v1/connectors").await.expect_json(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["id"], own["id"]);
    let a_list = a.get("/v1/connectors").await.expect_json(200);
    let a_ids: Vec<&Value> = a_list["items"].as_array().unwrap().iter().map(|c| &c["id"]).collect();
    assert_eq!(a_ids, [&connector["id"]]);
    a.get(&format!("/v1/connectors/{}", own["id"].as_str().unwrap())).await.expect_problem(404, "not-found");
}

#[tokio::test]
async fn tenant_key_adds_a_key_that_works_at_once_and_keeps_the_old_one() {
    let portico = Portico::start();
    let old = portico.api();
    let connector = old.create_connector(&fixture::definition("metrics.json")).await;
    let by_old = old
        .create_connection(&body_for(&Method::POST, "/v1/connections", connector["id"].as_str().unwrap()).unwrap())
        .await;

    let new_key = portico.tenant_key("key", "default");
    assert_ne!(new_key, portico.admin_key);
    let new = portico.client(Some(&new_key));
    let seen = new.get("/v1/connectors").await.expect_json(200);
    assert_eq!(seen["items"][0]["id"], connector["id"], "the new key is the same tenant's");
    let by_new = new
        .create_connection(&body_for(&Method::POST, "/v1/connections", connector["id"].as_str().unwrap()).unwrap())
        .await;
    assert_ne!(by_new["createdBy"], by_old["createdBy"], "each connection records the key that created it");
    assert!(by_new["createdBy"].as_str().is_some_and(|id| !id.is_empty() && !id.contains(&new_key)));

    let listed = old.get("/v1/connections").await.expect_json(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "the old key still works and sees both");
}

#[tokio::test]
async fn tenant_commands_refuse_duplicates_and_unknown_tenants() {
    let portico = Portico::start();

    let again = portico.tenant_command(&["create", "default"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("tenant 'default' already exists"));
    assert!(again.stdout.is_empty(), "no key is printed");

    let unknown = portico.tenant_command(&["key", "nobody"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no tenant named 'nobody'"));
    assert!(unknown.stdout.is_empty());

    let b = portico.tenant_key("create", "b");
    let b2 = portico.tenant_key("key", "b");
    for key in [&b, &b2] {
        portico.client(Some(key)).get("/v1/connectors").await.expect_json(200);
    }
}
