//! `/v1/connectors` as a connector author uses it: import in each format, read, list, replace,
//! delete, the connection form, and every mistake a body can have.

mod common;

use common::{Api, MISSING_ID, Portico, fixture};
use reqwest::Method;
use serde_json::{Value, json};

fn id(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}

async fn form(api: &Api, connector: &Value) -> Value {
    let form = api.get(&format!("/v1/connectors/{}/connection-form", id(connector))).await.expect_json(200);
    assert_eq!(form["connectorId"], connector["id"]);
    form
}

fn operation_ids(connector: &Value) -> Vec<&str> {
    connector["operations"].as_array().expect("operations").iter().map(|o| o["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_power_platform_basic_connector_keeps_its_labels() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = api.create_connector(&fixture::power_platform("basic-auth")).await;

    assert!(!id(&connector).is_empty());
    assert_eq!(connector["name"], "acme-tickets");
    assert_eq!(connector["displayName"], "Acme Tickets");
    assert_eq!(connector["description"], "Tickets of the Acme help desk.");
    assert_eq!(connector["publisher"], "Portico tests");
    assert_eq!(connector["brandColor"], "#0f6cbd");
    assert_eq!(connector["auth"], json!({"kind": "basic"}));
    assert_eq!(connector["warnings"], json!([]));
    assert_eq!(connector["backend"], json!({"scheme": "https", "host": "tickets.acme.example", "basePath": "/api"}));
    assert_eq!(connector["operationCount"], 2);
    assert_eq!(operation_ids(&connector), ["ListTickets", "GetTicket"]);
    assert_eq!(api.get(&format!("/v1/connectors/{}", id(&connector))).await.expect_json(200), connector);

    let form = form(&api, &connector).await;
    assert!(form.get("choice").is_none() && form.get("redirectUri").is_none(), "{form}");
    assert_eq!(form["sets"].as_array().unwrap().len(), 1);
    assert_eq!(form["sets"][0]["auth"], "basic");
    assert_eq!(
        form["sets"][0]["fields"],
        json!([
            {"name": "username", "label": "Acme account e-mail",
             "description": "The e-mail address you sign in to Acme Tickets with", "tooltip": "Your Acme login",
             "type": "securestring", "secret": true, "masked": false, "required": true, "hidden": false,
             "sentTo": [{"kind": "basicUsername"}]},
            {"name": "password", "label": "Acme password", "description": "The password of that account",
             "type": "securestring", "secret": true, "masked": true, "required": true, "hidden": false,
             "sentTo": [{"kind": "basicPassword"}]}
        ])
    );
}

#[tokio::test]
async fn a_power_platform_api_key_goes_in_the_query() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = api.create_connector(&fixture::power_platform("api-key-query")).await;

    assert_eq!(connector["name"], "open-weather");
    assert_eq!(connector["auth"], json!({"kind": "apiKey", "in": "query", "name": "appid"}));
    assert_eq!(connector["warnings"], json!([]));
    assert_eq!(operation_ids(&connector), ["CurrentWeather"]);
    let form = form(&api, &connector).await;
    assert_eq!(
        form["sets"][0]["fields"],
        json!([{"name": "api_key", "label": "OpenWeather API key",
                "description": "Find it under My API keys on openweather.example",
                "type": "securestring", "secret": true, "masked": true, "required": true, "hidden": false,
                "sentTo": [{"kind": "query", "name": "appid"}]}])
    );
}

#[tokio::test]
async fn a_power_platform_connector_with_parameter_sets_offers_a_choice() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = api.create_connector(&fixture::power_platform("multi-auth")).await;

    assert_eq!(connector["name"], "globex-crm");
    assert_eq!(
        connector["auth"],
        json!({"kind": "multiple", "sets": [
            {"name": "basicAuth", "auth": {"kind": "basic"}},
            {"name": "apiKey", "auth": {"kind": "apiKey", "in": "header", "name": "X-Globex-Key"}}
        ]})
    );
    let form = form(&api, &connector).await;
    assert_eq!(form["choice"], json!({"label": "Authentication type", "description": "How to sign in to Globex CRM"}));
    let sets = form["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0]["name"], "basicAuth");
    assert_eq!(sets[0]["ui"], json!({"label": "User and password", "description": "A Globex user account"}));
    assert_eq!(sets[0]["auth"], "basic");
    assert_eq!(
        sets[0]["fields"],
        json!([
            {"name": "username", "label": "Globex user", "type": "string", "secret": false, "masked": false,
             "required": true, "hidden": false, "sentTo": [{"kind": "basicUsername"}]},
            {"name": "password", "label": "Globex password", "type": "securestring", "secret": true, "masked": true,
             "required": true, "hidden": false, "sentTo": [{"kind": "basicPassword"}]}
        ])
    );
    assert_eq!(sets[1]["name"], "apiKey");
    assert_eq!(sets[1]["auth"], "apiKey");
    assert_eq!(
        sets[1]["fields"],
        json!([{"name": "api_key", "label": "Globex integration key", "type": "securestring", "secret": true,
                "masked": true, "required": true, "hidden": false,
                "sentTo": [{"kind": "header", "name": "X-Globex-Key"}]}])
    );
}

#[tokio::test]
async fn an_openapi_3_1_document_is_a_connector() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = api.create_connector(&fixture::openapi("notes-3.1.json")).await;

    assert_eq!(connector["name"], "notes");
    assert_eq!(connector["displayName"], "Notes");
    assert_eq!(connector["version"], "1.2.0");
    assert_eq!(connector["auth"], json!({"kind": "apiKey", "in": "header", "name": "X-Notes-Key"}));
    assert_eq!(connector["warnings"], json!([]));
    assert_eq!(connector["backend"], json!({"scheme": "https", "host": "notes.example", "basePath": "/api/v1"}));
    assert_eq!(operation_ids(&connector), ["listNotes", "createNote"]);
    let form = form(&api, &connector).await;
    let field = &form["sets"][0]["fields"][0];
    assert_eq!(field["name"], "api_key");
    assert_eq!(field["label"], "Your Notes API key");
    assert_eq!((&field["secret"], &field["masked"], &field["required"]), (&json!(true), &json!(true), &json!(true)));
    assert_eq!(field["sentTo"], json!([{"kind": "header", "name": "X-Notes-Key"}]));
}

#[tokio::test]
async fn a_portico_definition_is_a_connector() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = api.create_connector(&fixture::definition("metrics.json")).await;

    assert_eq!(connector["name"], "metrics");
    assert_eq!(connector["displayName"], "Metrics");
    assert_eq!(connector["auth"], json!({"kind": "apiKey", "in": "header", "name": "X-Metrics-Key"}));
    assert_eq!(connector["warnings"], json!([]));
    assert_eq!(connector["connection"], fixture::json("definitions/metrics.json")["connection"]);
    assert_eq!(connector["operationCount"], 0);
    assert!(connector.get("oauthClient").is_none());
    let form = form(&api, &connector).await;
    assert_eq!(
        form["sets"][0]["fields"],
        json!([
            {"name": "api_key", "label": "Metrics API key", "type": "securestring", "secret": true, "masked": true,
             "required": true, "hidden": false, "sentTo": [{"kind": "header", "name": "X-Metrics-Key"}]},
            {"name": "region", "label": "Region", "type": "string", "secret": false, "masked": false,
             "required": true, "hidden": false,
             "allowedValues": [{"value": "eu", "label": "Europe"}, {"value": "us", "label": "United States"}],
             "sentTo": []},
            {"name": "verbose", "label": "Verbose responses", "type": "bool", "secret": false, "masked": false,
             "required": false, "hidden": false, "sentTo": []},
            {"name": "timeout", "label": "Timeout (seconds)", "type": "int", "secret": false, "masked": false,
             "required": false, "hidden": false, "default": "30", "sentTo": []}
        ])
    );
}

#[tokio::test]
async fn lists_are_paginated_without_duplicates_or_gaps() {
    let portico = Portico::start();
    let api = portico.api();
    let mut created = Vec::new();
    for body in [
        fixture::power_platform("basic-auth"),
        fixture::power_platform("api-key-query"),
        fixture::power_platform("multi-auth"),
        fixture::openapi("notes-3.1.json"),
        fixture::definition("metrics.json"),
    ] {
        created.push(id(&api.create_connector(&body).await).to_owned());
    }

    let pages = api.all_pages("/v1/connectors", 2).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1], "5 connectors, 2 a page");
    let listed: Vec<&str> = pages.iter().flatten().map(id).collect();
    assert_eq!(listed, created, "every connector once, in the order of creation");
    for item in pages.iter().flatten() {
        assert!(item.get("operations").is_none(), "lists leave the operations out");
        assert!(item["operationCount"].is_u64() && item["auth"].is_object() && item["warnings"].is_array());
    }

    // A last page that is full has no cursor: 4 items make exactly 2 pages.
    api.delete(&format!("/v1/connectors/{}", created[4])).await.expect_empty(204);
    let pages = api.all_pages("/v1/connectors", 2).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);

    let everything = api.get("/v1/connectors").await.expect_json(200);
    assert_eq!(everything["items"].as_array().unwrap().len(), 4, "the default page holds them all");
    assert!(everything.get("next").is_none());

    let problem = api.get("/v1/connectors?limit=many").await.expect_problem(400, "bad-request");
    assert!(problem.detail().contains("limit"), "{problem:?}");
}

#[tokio::test]
async fn replacing_a_connector_rechecks_its_connections() {
    let portico = Portico::start();
    let api = portico.api();
    let metrics = api.create_connector(&fixture::definition("metrics.json")).await;
    let path = format!("/v1/connectors/{}", id(&metrics));
    let connection = api
        .create_connection(&json!({"connectorId": metrics["id"],
            "parameters": {"api_key": "k-1", "region": "eu", "timeout": 10}}))
        .await;
    let connection_path = format!("/v1/connections/{}", id(&connection));
    let other = api.create_connector(&fixture::power_platform("api-key-query")).await;
    let bystander = api.create_connection(&json!({"connectorId": other["id"], "parameters": {"api_key": "k-2"}})).await;

    // The same definition again: nothing to re-check.
    let replaced = api.put(&path, &fixture::definition("metrics.json")).await.expect_json(200);
    assert_eq!((&replaced["id"], &replaced["createdAt"]), (&metrics["id"], &metrics["createdAt"]));
    assert_eq!(api.get(&connection_path).await.expect_json(200)["status"], "connected");

    // A new optional parameter: the stored values still fit.
    let mut definition = fixture::definition("metrics.json");
    let parameters = definition["definition"]["connection"]["parameters"].as_array_mut().unwrap();
    parameters.push(json!({"name": "team", "type": "string", "label": "Team"}));
    let replaced = api.put(&path, &definition).await.expect_json(200);
    assert_eq!(replaced["connection"]["parameters"][4]["name"], "team");
    let unchanged = api.get(&connection_path).await.expect_json(200);
    assert_eq!(unchanged["status"], "connected");
    assert!(unchanged.get("statusReason").is_none(), "{unchanged}");

    // A new required parameter: the connection needs the user again, and says why.
    let parameters = definition["definition"]["connection"]["parameters"].as_array_mut().unwrap();
    parameters.push(json!({"name": "workspace", "type": "string", "label": "Workspace", "required": true}));
    let replaced = api.put(&path, &definition).await.expect_json(200);
    assert_eq!(api.get(&path).await.expect_json(200), replaced, "GET shows the replacement");
    let stale = api.get(&connection_path).await.expect_json(200);
    assert_eq!(stale["status"], "needs_reauth");
    let reason = stale["statusReason"].as_str().expect("a reason");
    assert!(reason.contains("workspace") && reason.contains("is required"), "{reason}");
    assert_eq!(stale["secrets"], json!({"api_key": {"set": true}}), "the secret is kept");
    let fields = form(&api, &replaced).await["sets"][0]["fields"].clone();
    assert_eq!(fields[5]["name"], "workspace");
    assert_eq!(api.get(&format!("/v1/connections/{}", id(&bystander))).await.expect_json(200), bystander);

    // Giving the missing value reconnects it.
    let fixed = api.patch(&connection_path, &json!({"parameters": {"workspace": "ops"}})).await.expect_json(200);
    assert_eq!(fixed["status"], "connected");
    assert!(fixed.get("statusReason").is_none());
    assert_eq!(fixed["parameters"]["workspace"], "ops");
}

#[tokio::test]
async fn a_failed_replacement_changes_nothing() {
    let portico = Portico::start();
    let api = portico.api();
    let metrics = api.create_connector(&fixture::definition("metrics.json")).await;
    let path = format!("/v1/connectors/{}", id(&metrics));

    let mut broken = fixture::definition("metrics.json");
    broken["definition"]["connection"]["credential"]["kind"] = json!("magic");
    let problem = api.put(&path, &broken).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["definition.connection.credential.kind"]);
    assert_eq!(api.get(&path).await.expect_json(200), metrics);

    api.put(&format!("/v1/connectors/{MISSING_ID}"), &fixture::definition("metrics.json"))
        .await
        .expect_problem(404, "not-found");
}

#[tokio::test]
async fn the_oauth_client_is_kept_replaced_and_removed() {
    let portico = Portico::start();
    let api = portico.api();
    let mut body = fixture::definition("metrics.json");
    body["oauthClient"] = json!({"clientId": "portico-app", "clientSecret": "client-secret-1"});
    let connector = api.create_connector(&body).await;
    assert_eq!(connector["oauthClient"], json!({"clientId": "portico-app", "clientSecretSet": true}));
    let path = format!("/v1/connectors/{}", id(&connector));

    let kept = api.put(&path, &fixture::definition("metrics.json")).await.expect_json(200);
    assert_eq!(kept["oauthClient"], connector["oauthClient"], "absent keeps the client");

    body["oauthClient"] = json!({"clientId": "public-app"});
    let replaced = api.put(&path, &body).await.expect_json(200);
    assert_eq!(replaced["oauthClient"], json!({"clientId": "public-app", "clientSecretSet": false}));

    body["oauthClient"] = Value::Null;
    let removed = api.put(&path, &body).await.expect_json(200);
    assert!(removed.get("oauthClient").is_none(), "null removes the client: {removed}");
}

#[tokio::test]
async fn a_connector_in_use_is_deleted_only_with_cascade() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = api.create_connector(&fixture::power_platform("api-key-query")).await;
    let path = format!("/v1/connectors/{}", id(&connector));
    let mut connections = Vec::new();
    for key in ["k-1", "k-2"] {
        let body = json!({"connectorId": connector["id"], "parameters": {"api_key": key}});
        connections.push(api.create_connection(&body).await);
    }

    let refused = api.delete(&path).await.expect_problem(409, "conflict");
    assert!(refused.detail().contains("2 connections") && refused.detail().contains("?cascade=true"), "{refused:?}");
    assert_eq!(api.get(&path).await.expect_json(200), connector);
    for connection in &connections {
        api.get(&format!("/v1/connections/{}", id(connection))).await.expect_json(200);
    }

    api.delete(&format!("{path}?cascade=true")).await.expect_empty(204);
    api.get(&path).await.expect_problem(404, "not-found");
    api.get(&format!("{path}/connection-form")).await.expect_problem(404, "not-found");
    for connection in &connections {
        api.get(&format!("/v1/connections/{}", id(connection))).await.expect_problem(404, "not-found");
    }
    assert_eq!(api.get("/v1/connections").await.expect_json(200), json!({"items": []}));
    assert_eq!(api.get("/v1/connectors").await.expect_json(200), json!({"items": []}));
    api.delete(&path).await.expect_problem(404, "not-found");

    // Without connections, no cascade is needed.
    let unused = api.create_connector(&fixture::openapi("notes-3.1.json")).await;
    api.delete(&format!("/v1/connectors/{}", id(&unused))).await.expect_empty(204);
    api.get(&format!("/v1/connectors/{}", id(&unused))).await.expect_problem(404, "not-found");
}

#[tokio::test]
async fn bodies_that_are_not_json_objects() {
    let portico = Portico::start();
    let api = portico.api();

    let problem = api
        .send_raw(Method::POST, "/v1/connectors", Some("application/json"), r#"{"definition": {"#)
        .await
        .expect_problem(400, "bad-request");
    assert!(problem.detail().contains("malformed JSON"), "{problem:?}");

    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let body = serde_json::to_vec(&fixture::definition("metrics.json")).unwrap();
        api.send_raw(Method::POST, "/v1/connectors", content_type, body)
            .await
            .expect_problem(415, "unsupported-media-type");
    }

    for body in ["[1, 2]", r#""a connector""#, "null", "42"] {
        let problem = api
            .send_raw(Method::POST, "/v1/connectors", Some("application/json"), body)
            .await
            .expect_problem(422, "validation");
        assert_eq!(problem.fields(), ["body"], "{body}");
    }
    assert_eq!(api.get("/v1/connectors").await.expect_json(200), json!({"items": []}));
}

#[tokio::test]
async fn a_body_gives_exactly_one_connector_in_a_known_field() {
    let portico = Portico::start();
    let api = portico.api();
    let definition = fixture::definition("metrics.json")["definition"].clone();
    let openapi = fixture::openapi("notes-3.1.json")["openapi"].clone();

    let none = api.post("/v1/connectors", &json!({})).await.expect_problem(422, "validation");
    assert_eq!(none.fields(), ["body"]);
    assert!(none.detail().contains("exactly one of powerPlatform, openapi and definition"));

    let two = api
        .post("/v1/connectors", &json!({"definition": definition, "openapi": openapi}))
        .await
        .expect_problem(422, "validation");
    assert_eq!(two.fields(), ["openapi", "definition"]);

    let unknown = api
        .post("/v1/connectors", &json!({"definition": definition, "colour": "red"}))
        .await
        .expect_problem(422, "validation");
    assert_eq!(unknown.fields(), ["colour"]);
    assert_eq!(unknown.message("colour"), "is not a field of a connector body");

    let mut half = fixture::power_platform("basic-auth");
    half["powerPlatform"].as_object_mut().unwrap().remove("apiDefinition");
    let problem = api.post("/v1/connectors", &half).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["powerPlatform.apiDefinition"]);
    assert_eq!(problem.message("powerPlatform.apiDefinition"), "is required");

    let problem =
        api.post("/v1/connectors", &json!({"powerPlatform": "files"})).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["powerPlatform"]);

    assert_eq!(api.get("/v1/connectors").await.expect_json(200), json!({"items": []}));
}

#[tokio::test]
async fn definition_errors_name_the_path_in_the_body() {
    let portico = Portico::start();
    let api = portico.api();

    let mut unknown_kind = fixture::definition("metrics.json");
    unknown_kind["definition"]["connection"]["credential"]["kind"] = json!("magic");
    let problem = api.post("/v1/connectors", &unknown_kind).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["definition.connection.credential.kind"]);
    assert!(problem.message("definition.connection.credential.kind").contains("magic"));

    let mut in_body = fixture::definition("metrics.json");
    in_body["definition"]["connection"]["credential"]["keys"][0]["in"] = json!("body");
    let problem = api.post("/v1/connectors", &in_body).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["definition.connection.credential.keys[0].in"]);
    assert!(problem.message("definition.connection.credential.keys[0].in").contains("body"));

    let problem = api.post("/v1/connectors", &json!({"definition": 5})).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["definition"]);

    let mut no_host = fixture::definition("metrics.json");
    no_host["definition"]["backend"]["host"] = json!("");
    let problem = api.post("/v1/connectors", &no_host).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["definition.backend.host"]);

    // The other formats name the file and the JSON pointer in it.
    let mut swagger = fixture::power_platform("api-key-query");
    swagger["powerPlatform"]["apiDefinition"]["securityDefinitions"]["api_key"]["in"] = json!("body");
    let problem = api.post("/v1/connectors", &swagger).await.expect_problem(422, "validation");
    assert!(problem.fields().contains(&"apiDefinition.swagger.json#/securityDefinitions/api_key/in"), "{problem:?}");

    let mut openapi = fixture::openapi("notes-3.1.json");
    openapi["openapi"]["components"]["securitySchemes"]["notesKey"]["in"] = json!("body");
    let problem = api.post("/v1/connectors", &openapi).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["openapi#/components/securitySchemes/notesKey/in"]);

    assert_eq!(api.get("/v1/connectors").await.expect_json(200), json!({"items": []}));
}

#[tokio::test]
async fn oauth_client_mistakes_are_named() {
    let portico = Portico::start();
    let api = portico.api();
    let cases = [
        (json!({"clientSecret": "s"}), "oauthClient.clientId", "is required"),
        (json!({"clientId": "  "}), "oauthClient.clientId", "must be a non-empty string"),
        (json!({"clientId": 7}), "oauthClient.clientId", "must be a non-empty string"),
        (json!({"clientId": "app", "clientSecret": 7}), "oauthClient.clientSecret", "must be a string"),
        (json!({"clientId": "app", "scope": "all"}), "oauthClient.scope", "is not a field of oauthClient"),
        (json!("app"), "oauthClient", "must be an object"),
    ];
    for (client, field, message) in cases {
        let mut body = fixture::definition("metrics.json");
        body["oauthClient"] = client.clone();
        let problem = api.post("/v1/connectors", &body).await.expect_problem(422, "validation");
        assert_eq!(problem.fields(), [field], "{client}");
        assert_eq!(problem.message(field), message, "{client}");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let portico = Portico::start_with(&["--max-body-bytes", "1000"]);
    let api = portico.api();
    let small = fixture::definition("metrics.json");
    assert!(serde_json::to_vec(&small).unwrap().len() < 1000);
    let connector = api.create_connector(&small).await;

    let mut large = small.clone();
    large["definition"]["metadata"]["description"] = json!("x".repeat(5000));
    api.post("/v1/connectors", &large).await.expect_problem(413, "payload-too-large");
    api.put(&format!("/v1/connectors/{}", id(&connector)), &large).await.expect_problem(413, "payload-too-large");
    let connection = json!({"connectorId": connector["id"], "displayName": "x".repeat(5000),
        "parameters": {"api_key": "k", "region": "eu", "timeout": 1}});
    api.post("/v1/connections", &connection).await.expect_problem(413, "payload-too-large");

    assert_eq!(api.get(&format!("/v1/connectors/{}", id(&connector))).await.expect_json(200), connector);
    assert_eq!(api.get("/v1/connections").await.expect_json(200), json!({"items": []}));
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let portico = Portico::start();
    let api = portico.api();
    for path in ["/v2/connectors", "/v1/connector", "/v1/connectors/x/y", "/nowhere"] {
        api.get(path).await.expect_problem(404, "not-found");
        portico.client(None).get(path).await.expect_problem(404, "not-found");
    }
    let cases = [
        (Method::PATCH, "/v1/connectors", "GET,HEAD,POST"),
        (Method::DELETE, "/v1/connectors", "GET,HEAD,POST"),
        (Method::PATCH, "/v1/connectors/x", "DELETE,GET,HEAD,PUT"),
        (Method::POST, "/v1/connectors/x/connection-form", "GET,HEAD"),
        (Method::PUT, "/v1/connections/x", "DELETE,GET,HEAD,PATCH"),
        (Method::POST, "/healthz", "GET,HEAD"),
    ];
    for (method, path, allowed) in cases {
        let reply = api.send(api.request(method.clone(), path)).await;
        reply.expect_problem(405, "method-not-allowed");
        let mut allow: Vec<&str> = reply.header("allow").unwrap_or_default().split(',').map(str::trim).collect();
        allow.sort_unstable();
        assert_eq!(allow.join(","), allowed, "{method} {path}");
    }
}

#[tokio::test]
async fn an_oauth_form_names_the_provider_and_the_redirect_uri() {
    let portico = Portico::start_with(&["--public-url", "https://portico.example/base/"]);
    assert!(portico.stdout().contains("API:      https://portico.example/base/v1"), "{}", portico.stdout());
    let api = portico.api();
    let mut body = fixture::definition("github-issues.json");
    body["oauthClient"] = json!({"clientId": "Iv1.portico", "clientSecret": "gh-secret"});
    let connector = api.create_connector(&body).await;
    assert_eq!(connector["auth"], json!({"kind": "oauth2", "identityProvider": "github"}));

    let form = form(&api, &connector).await;
    assert_eq!(form["redirectUri"], "https://portico.example/base/oauth/callback");
    assert_eq!(
        form["sets"][0]["oauth"],
        json!({"label": "Sign in with GitHub", "identityProvider": "github", "grant": "authorizationCode",
               "scopes": ["repo", "read:user"]})
    );
    assert_eq!(form["sets"][0]["auth"], "oauth2");

    // Creating a connection starts the sign-in at GitHub, with PKCE and a single-use state.
    let created = api.post("/v1/connections", &json!({"connectorId": connector["id"]})).await.expect_json(201);
    assert_eq!(created["status"], "pending");
    let authorize = url::Url::parse(created["authorizeUrl"].as_str().unwrap()).unwrap();
    assert_eq!(authorize.host_str(), Some("github.com"));
    let query: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "Iv1.portico");
    assert_eq!(query["redirect_uri"], "https://portico.example/base/oauth/callback");
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["state"].len() >= 43, "a state of at least 256 random bits");
    assert!(!created.to_string().contains("gh-secret"));
}
