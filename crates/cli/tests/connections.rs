//! `/v1/connections` as a user meets it: values checked against the connection form, secrets
//! shown only as set, parameter sets, changes and deletion.

mod common;

use common::{Api, MISSING_ID, Portico, fixture};
use reqwest::Method;
use serde_json::{Value, json};

fn id(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}

/// The Metrics connector (a definition): a secret key, a region from a list, a bool and an int.
async fn metrics(api: &Api) -> Value {
    api.create_connector(&fixture::definition("metrics.json")).await
}

fn metrics_connection(connector: &Value, parameters: Value) -> Value {
    json!({"connectorId": connector["id"], "parameters": parameters})
}

#[tokio::test]
async fn a_new_connection_is_connected_and_shows_secrets_only_as_set() {
    let portico = Portico::start();
    let api = portico.api();
    let tickets = api.create_connector(&fixture::power_platform("basic-auth")).await;

    let created = api
        .create_connection(&json!({"connectorId": tickets["id"], "displayName": "Help desk",
            "parameters": {"username": "agent@acme.example", "password": "correct horse"}}))
        .await;
    assert!(!id(&created).is_empty());
    assert_eq!(created["connectorId"], tickets["id"]);
    assert_eq!(created["displayName"], "Help desk");
    assert_eq!(created["status"], "connected");
    assert_eq!(created["parameters"], json!({}));
    assert_eq!(created["secrets"], json!({"password": {"set": true}, "username": {"set": true}}));
    assert!(created.get("parameterSet").is_none() && created.get("statusReason").is_none());
    assert!(created["createdBy"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(created["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(api.get(&format!("/v1/connections/{}", id(&created))).await.expect_json(200), created);

    let connector = metrics(&api).await;
    let created = api
        .create_connection(&metrics_connection(
            &connector,
            json!({"api_key": "k-1", "region": "us", "verbose": true, "timeout": 10}),
        ))
        .await;
    assert_eq!(created["displayName"], "Metrics", "the connector's display name by default");
    assert_eq!(created["parameters"], json!({"region": "us", "timeout": 10, "verbose": true}));
    assert_eq!(created["secrets"], json!({"api_key": {"set": true}}));

    for text in portico.responses() {
        assert!(!text.contains("correct horse") && !text.contains("k-1"), "a secret in a response: {text}");
    }
}

#[tokio::test]
async fn parameter_names_match_in_any_case_and_are_stored_as_declared() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = metrics(&api).await;
    let created = api
        .create_connection(&metrics_connection(&connector, json!({"API_KEY": "k", "Region": "eu", "TIMEOUT": 3})))
        .await;
    assert_eq!(created["parameters"], json!({"region": "eu", "timeout": 3}));
    assert_eq!(created["secrets"], json!({"api_key": {"set": true}}));
}

#[tokio::test]
async fn each_bad_parameter_is_named() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = metrics(&api).await;
    let good = json!({"api_key": "k", "region": "eu", "timeout": 10});
    let with = |field: &str, value: Value| {
        let mut parameters = good.clone();
        parameters[field] = value;
        metrics_connection(&connector, parameters)
    };
    let cases = [
        (
            metrics_connection(&connector, json!({"timeout": 10})),
            vec![("parameters.api_key", "is required"), ("parameters.region", "is required")],
        ),
        (with("api_key", json!("   ")), vec![("parameters.api_key", "is required")]),
        (with("colour", json!("red")), vec![("parameters.colour", "is not a parameter of this connector")]),
        (with("api_key", json!(5)), vec![("parameters.api_key", "must be a string")]),
        (with("verbose", json!("yes")), vec![("parameters.verbose", "must be true or false")]),
        (with("timeout", json!("10")), vec![("parameters.timeout", "must be an integer")]),
        (with("timeout", json!(1.5)), vec![("parameters.timeout", "must be an integer")]),
        (with("region", json!("mars")), vec![("parameters.region", "must be one of: eu, us")]),
        (
            metrics_connection(&connector, json!({"region": "mars", "verbose": 1, "timeout": true, "colour": "red"})),
            vec![
                ("parameters.colour", "is not a parameter of this connector"),
                ("parameters.api_key", "is required"),
                ("parameters.region", "must be one of: eu, us"),
                ("parameters.verbose", "must be true or false"),
                ("parameters.timeout", "must be an integer"),
            ],
        ),
    ];
    for (body, expected) in cases {
        let problem = api.post("/v1/connections", &body).await.expect_problem(422, "validation");
        let fields: Vec<&str> = expected.iter().map(|(field, _)| *field).collect();
        assert_eq!(problem.fields(), fields, "one entry per field for {body}");
        for (field, message) in expected {
            assert_eq!(problem.message(field), message, "{body}");
        }
    }
    assert_eq!(api.get("/v1/connections").await.expect_json(200), json!({"items": []}), "nothing was created");
}

/// `default` is text in connector files; an int or bool parameter left out takes it.
#[tokio::test]
async fn an_omitted_int_parameter_takes_its_default() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = metrics(&api).await;
    let created = api.create_connection(&metrics_connection(&connector, json!({"api_key": "k", "region": "eu"}))).await;
    assert_eq!(created["parameters"], json!({"region": "eu", "timeout": 30}));
}

#[tokio::test]
async fn the_connector_must_exist_and_the_body_must_be_a_connection() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = metrics(&api).await;
    let parameters = json!({"api_key": "k", "region": "eu", "timeout": 1});

    let problem = api
        .post("/v1/connections", &json!({"connectorId": MISSING_ID, "parameters": parameters}))
        .await
        .expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["connectorId"]);
    assert_eq!(problem.message("connectorId"), "no such connector");

    let problem =
        api.post("/v1/connections", &json!({"parameters": parameters})).await.expect_problem(422, "validation");
    assert!(problem.detail().contains("connectorId"), "{problem:?}");
    let body = json!({"connectorId": connector["id"], "parameters": parameters, "colour": "red"});
    let problem = api.post("/v1/connections", &body).await.expect_problem(422, "validation");
    assert!(problem.detail().contains("colour"), "{problem:?}");
    let body = json!({"connectorId": connector["id"], "parameters": ["k", "eu"]});
    let problem = api.post("/v1/connections", &body).await.expect_problem(422, "validation");
    assert!(problem.detail().contains("parameters"), "{problem:?}");
    let problem = api.post("/v1/connections", &json!([connector["id"]])).await.expect_problem(422, "validation");
    assert!(!problem.detail().is_empty());

    api.send_raw(Method::POST, "/v1/connections", Some("application/json"), "{\"connectorId\":")
        .await
        .expect_problem(400, "bad-request");
    let body = serde_json::to_vec(&metrics_connection(&connector, parameters.clone())).unwrap();
    api.send_raw(Method::POST, "/v1/connections", None, body).await.expect_problem(415, "unsupported-media-type");

    assert_eq!(api.get("/v1/connections").await.expect_json(200), json!({"items": []}));
}

#[tokio::test]
async fn a_connector_with_parameter_sets_needs_a_choice() {
    let portico = Portico::start();
    let api = portico.api();
    let crm = api.create_connector(&fixture::power_platform("multi-auth")).await;
    let body = |set: Option<&str>, parameters: Value| {
        let mut body = json!({"connectorId": crm["id"], "parameters": parameters});
        if let Some(set) = set {
            body["parameterSet"] = json!(set);
        }
        body
    };

    let problem =
        api.post("/v1/connections", &body(None, json!({"api_key": "k"}))).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["parameterSet"]);
    assert_eq!(problem.message("parameterSet"), "is required: choose one of basicAuth, apiKey");
    let problem = api
        .post("/v1/connections", &body(Some("oauth"), json!({"api_key": "k"})))
        .await
        .expect_problem(422, "validation");
    assert_eq!(problem.message("parameterSet"), "no parameter set 'oauth': choose one of basicAuth, apiKey");
    let problem = api
        .post("/v1/connections", &body(Some("apiKey"), json!({"username": "u"})))
        .await
        .expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["parameters.username", "parameters.api_key"]);

    let by_key = api.create_connection(&body(Some("apiKey"), json!({"api_key": "k"}))).await;
    assert_eq!(by_key["parameterSet"], "apiKey");
    assert_eq!(by_key["secrets"], json!({"api_key": {"set": true}}));
    let by_user = api
        .create_connection(&body(Some("basicAuth"), json!({"username": "ops@globex.example", "password": "pw"})))
        .await;
    assert_eq!(by_user["parameterSet"], "basicAuth");
    assert_eq!(by_user["parameters"], json!({"username": "ops@globex.example"}));
    assert_eq!(by_user["secrets"], json!({"password": {"set": true}}));

    // A connector with one set takes no choice.
    let weather = api.create_connector(&fixture::power_platform("api-key-query")).await;
    let body = json!({"connectorId": weather["id"], "parameterSet": "apiKey", "parameters": {"api_key": "k"}});
    let problem = api.post("/v1/connections", &body).await.expect_problem(422, "validation");
    assert_eq!(problem.message("parameterSet"), "this connector has a single parameter set: leave it out");
}

#[tokio::test]
async fn connections_are_listed_by_connector_and_page() {
    let portico = Portico::start();
    let api = portico.api();
    let weather = api.create_connector(&fixture::power_platform("api-key-query")).await;
    let metrics = metrics(&api).await;
    let mut created = Vec::new();
    for (connector, parameters) in [
        (&weather, json!({"api_key": "w-1"})),
        (&metrics, json!({"api_key": "m-1", "region": "eu", "timeout": 1})),
        (&weather, json!({"api_key": "w-2"})),
        (&metrics, json!({"api_key": "m-2", "region": "us", "timeout": 2})),
    ] {
        created.push(api.create_connection(&json!({"connectorId": connector["id"], "parameters": parameters})).await);
    }
    let ids = |items: &Value| -> Vec<String> {
        items["items"].as_array().unwrap().iter().map(|c| id(c).to_owned()).collect()
    };

    let all = api.get("/v1/connections").await.expect_json(200);
    assert_eq!(all["items"].as_array().unwrap(), &created, "list items are the same views as GET");
    let of_weather = api.get(&format!("/v1/connections?connectorId={}", id(&weather))).await.expect_json(200);
    assert_eq!(ids(&of_weather), [id(&created[0]), id(&created[2])]);
    let of_metrics = api.get(&format!("/v1/connections?connectorId={}", id(&metrics))).await.expect_json(200);
    assert_eq!(ids(&of_metrics), [id(&created[1]), id(&created[3])]);
    let of_none = api.get(&format!("/v1/connections?connectorId={MISSING_ID}")).await.expect_json(200);
    assert_eq!(of_none, json!({"items": []}));

    let pages = api.all_pages("/v1/connections", 3).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1]);
    let paged: Vec<&Value> = pages.iter().flatten().collect();
    assert_eq!(paged, created.iter().collect::<Vec<_>>());
    let pages = api.all_pages("/v1/connections", 2).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);

    let page = api.get(&format!("/v1/connections?connectorId={}&limit=1", id(&metrics))).await.expect_json(200);
    assert_eq!(ids(&page), [id(&created[1])]);
    let next = page["next"].as_str().expect("a cursor");
    let page =
        api.get(&format!("/v1/connections?connectorId={}&limit=1&after={next}", id(&metrics))).await.expect_json(200);
    assert_eq!(ids(&page), [id(&created[3])]);
    assert!(page.get("next").is_none());
}

#[tokio::test]
async fn patch_changes_the_name_and_values_and_keeps_secrets_hidden() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = metrics(&api).await;
    let created = api
        .create_connection(&metrics_connection(
            &connector,
            json!({"api_key": "old-key", "region": "eu", "verbose": true, "timeout": 10}),
        ))
        .await;
    let path = format!("/v1/connections/{}", id(&created));

    let renamed = api.patch(&path, &json!({"displayName": "Production metrics"})).await.expect_json(200);
    assert_eq!(renamed["displayName"], "Production metrics");
    assert_eq!((&renamed["parameters"], &renamed["secrets"]), (&created["parameters"], &created["secrets"]));
    assert_eq!((&renamed["id"], &renamed["createdAt"]), (&created["id"], &created["createdAt"]));

    let rekeyed = api.patch(&path, &json!({"parameters": {"api_key": "new-key"}})).await.expect_json(200);
    assert_eq!(rekeyed["secrets"], json!({"api_key": {"set": true}}));
    assert_eq!(rekeyed["parameters"], created["parameters"], "other values stay as they are");
    let read = api.get(&path).await.expect_json(200);
    assert_eq!(read, rekeyed);
    assert!(!read.to_string().contains("new-key") && !read.to_string().contains("old-key"));

    let moved = api
        .patch(&path, &json!({"displayName": "US metrics", "parameters": {"region": "us", "verbose": null}}))
        .await
        .expect_json(200);
    assert_eq!(moved["displayName"], "US metrics");
    assert_eq!(moved["parameters"], json!({"region": "us", "timeout": 10}), "null removes an optional value");
    assert_eq!(api.get(&path).await.expect_json(200), moved);
}

#[tokio::test]
async fn a_secret_stays_sealed_when_its_parameter_is_redeclared_plain() {
    let portico = Portico::start();
    let api = portico.api();
    let mut body = fixture::definition("metrics.json");
    let signing = json!({"name": "signing_secret", "type": "securestring", "label": "Signing secret"});
    body["definition"]["connection"]["parameters"].as_array_mut().unwrap().push(signing);
    let connector = api.create_connector(&body).await;
    let created = api
        .create_connection(&metrics_connection(
            &connector,
            json!({"api_key": "k", "region": "eu", "signing_secret": "sig-sealed-7d1"}),
        ))
        .await;
    assert_eq!(created["secrets"], json!({"api_key": {"set": true}, "signing_secret": {"set": true}}));
    let path = format!("/v1/connections/{}", id(&created));

    // The author now declares it a plain string.
    body["definition"]["connection"]["parameters"][4]["type"] = json!("string");
    api.put(&format!("/v1/connectors/{}", id(&connector)), &body).await.expect_json(200);

    // Another value changes: the stored secret is carried over, still sealed, never shown.
    let moved = api.patch(&path, &json!({"parameters": {"region": "us"}})).await.expect_json(200);
    assert_eq!(moved["parameters"], json!({"region": "us", "timeout": 30}));
    assert_eq!(moved["secrets"], json!({"api_key": {"set": true}, "signing_secret": {"set": true}}));
    assert_eq!(api.get(&path).await.expect_json(200), moved);

    // A value given anew is stored as the connector now declares it.
    let plain = api.patch(&path, &json!({"parameters": {"signing_secret": "now-plain"}})).await.expect_json(200);
    assert_eq!(plain["parameters"]["signing_secret"], "now-plain");
    assert_eq!(plain["secrets"], json!({"api_key": {"set": true}}));

    for text in portico.responses() {
        assert!(!text.contains("sig-sealed-7d1"), "a secret in a response: {text}");
    }
}

#[tokio::test]
async fn a_refused_patch_changes_nothing() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = metrics(&api).await;
    let created = api
        .create_connection(&metrics_connection(&connector, json!({"api_key": "k", "region": "eu", "timeout": 10})))
        .await;
    let path = format!("/v1/connections/{}", id(&created));

    let cases = [
        (
            json!({"displayName": "Renamed", "parameters": {"verbose": "yes"}}),
            "parameters.verbose",
            "must be true or false",
        ),
        (json!({"parameters": {"timeout": "ten"}}), "parameters.timeout", "must be an integer"),
        (json!({"parameters": {"region": "mars"}}), "parameters.region", "must be one of: eu, us"),
        (json!({"parameters": {"api_key": null}}), "parameters.api_key", "is required"),
        (json!({"parameters": {"colour": "red"}}), "parameters.colour", "is not a parameter of this connector"),
    ];
    for (body, field, message) in cases {
        let problem = api.patch(&path, &body).await.expect_problem(422, "validation");
        assert_eq!(problem.fields(), [field], "{body}");
        assert_eq!(problem.message(field), message);
        assert_eq!(api.get(&path).await.expect_json(200), created, "unchanged after {body}");
    }

    let problem = api.patch(&path, &json!({"colour": "red"})).await.expect_problem(422, "validation");
    assert!(problem.detail().contains("colour"), "{problem:?}");
    let problem = api.patch(&path, &json!({"connectorId": MISSING_ID})).await.expect_problem(422, "validation");
    assert!(problem.detail().contains("connectorId"), "the connector of a connection does not change: {problem:?}");
    let body = r#"{"displayName": "Renamed"}"#;
    for content_type in [None, Some("text/plain")] {
        api.send_raw(Method::PATCH, &path, content_type, body).await.expect_problem(415, "unsupported-media-type");
    }
    api.send_raw(Method::PATCH, &path, Some("application/json"), "{\"displayName\"")
        .await
        .expect_problem(400, "bad-request");
    assert_eq!(api.get(&path).await.expect_json(200), created);
}

#[tokio::test]
async fn a_deleted_connection_is_gone() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = metrics(&api).await;
    let keep = api
        .create_connection(&metrics_connection(&connector, json!({"api_key": "k", "region": "eu", "timeout": 1})))
        .await;
    let gone = api
        .create_connection(&metrics_connection(&connector, json!({"api_key": "k", "region": "us", "timeout": 1})))
        .await;
    let path = format!("/v1/connections/{}", id(&gone));

    api.delete(&path).await.expect_empty(204);
    api.get(&path).await.expect_problem(404, "not-found");
    api.patch(&path, &json!({"displayName": "back"})).await.expect_problem(404, "not-found");
    api.delete(&path).await.expect_problem(404, "not-found");
    let listed = api.get("/v1/connections").await.expect_json(200);
    assert_eq!(listed["items"].as_array().unwrap(), &[keep]);
    // The connector has no hold on deleted connections.
    let refused = api.delete(&format!("/v1/connectors/{}", id(&connector))).await.expect_problem(409, "conflict");
    assert!(refused.detail().contains("1 connection still uses"), "{refused:?}");
}
