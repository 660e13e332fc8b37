//! The API's contract: schemathesis, pinned in tests/python/requirements.txt, runs every check it
//! has (`--checks all`) against a real Portico's `/openapi.json` and must find nothing. It
//! generates valid and invalid requests for every operation, then chains them (a record made by
//! one call is read, changed and deleted by the next), and checks that each answer is one the
//! document lists, with its media type and schema; that invalid input is refused and valid input
//! accepted; that methods a path does not list answer 405 with `Allow`; that a deleted record is
//! gone and a created one is there; that a route behind a key refuses a request without one.
//!
//! The Portico has something for the requests to find: a connector whose backend is a recording
//! backend on loopback (hence `--allow-private-backends`), so that calls through its connection
//! get the backend's answers, and a connection. Its settings (`tests/contract/schemathesis.toml`)
//! say where the document cannot say everything, with the reason for each.
//!
//! Without the Python environment (`tests/python/.venv`, made by `scripts/test`) that test prints
//! `SKIPPED: …` and passes, except under `CI=true`, where it fails. The tests after it need no
//! Python: each keeps one thing schemathesis found from coming back.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use common::backend::Backend;
use common::{MISSING_ID, Portico, fixture, id};
use reqwest::Method;
use serde_json::json;

const HOW_TO_INSTALL: &str = "the contract test runs schemathesis from tests/python/.venv: run scripts/test, or at \
     the repository root `python3 -m venv tests/python/.venv && tests/python/.venv/bin/pip install \
     --require-hashes -r tests/python/requirements.txt`";

/// Test cases per operation and phase: enough for every operation's valid and invalid inputs,
/// few enough for a run of about a minute on two cores.
const MAX_EXAMPLES: &str = "100";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_against_the_openapi_document() {
    let Some(schemathesis) = schemathesis() else { return };
    let backend = Backend::start().await;
    let portico = Portico::start_with(&["--allow-private-backends"]);
    let api = portico.api();

    let mut definition = fixture::json("calls/api-key-header.json");
    definition["backend"]["host"] = json!(backend.authority());
    let connector = id(&api.create_connector(&json!({"definition": definition})).await);
    let connection = json!({"connectorId": connector, "parameters": {"api_key": "k-contract"}});
    let connection = id(&api.create_connection(&connection).await);
    // What the run's deletions delete, and the connector it replaces (see
    // tests/contract/schemathesis.toml).
    let spare_key = api.post("/v1/api-keys", &json!({"name": "revoked by the contract run", "role": "author"})).await;
    let spare_key = id(&spare_key.expect_json(201));
    let spare_connector = id(&api.create_connector(&json!({"definition": definition})).await);
    let replaced_connector = id(&api.create_connector(&json!({"definition": definition})).await);
    let spare_connection = json!({"connectorId": connector, "parameters": {"api_key": "k-spare"}});
    let spare_connection = id(&api.create_connection(&spare_connection).await);

    let run = tempfile::tempdir().expect("a directory for the run");
    let mut command = Command::new(&schemathesis);
    command
        .arg("--config-file")
        .arg(repository().join("tests/contract/schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/openapi.json", portico.base))
        .args(["--checks", "all"])
        .args(["--header", &format!("Authorization: Bearer {}", portico.admin_key)])
        .args(["--max-examples", MAX_EXAMPLES])
        // The same requests on every run. (Deterministic generation needs no seed; the seed fixes
        // the run all the same should it be dropped, to look wider.)
        .args(["--generation-deterministic", "--seed", "20240601"])
        .args(["--workers", "1", "--request-timeout", "15", "--no-color"])
        .env("PORTICO_CONTRACT_CONNECTOR_ID", &connector)
        .env("PORTICO_CONTRACT_CONNECTION_ID", &connection)
        .env("PORTICO_CONTRACT_SPARE_KEY_ID", &spare_key)
        .env("PORTICO_CONTRACT_SPARE_CONNECTOR_ID", &spare_connector)
        .env("PORTICO_CONTRACT_REPLACED_CONNECTOR_ID", &replaced_connector)
        .env("PORTICO_CONTRACT_SPARE_CONNECTION_ID", &spare_connection)
        .current_dir(run.path())
        .stdin(Stdio::null());
    let started = Instant::now();
    let output: Output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the run's thread")
        .unwrap_or_else(|e| panic!("{} does not run: {e}", schemathesis.display()));
    let took = started.elapsed();
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "schemathesis found failures ({}) in {took:?}:\n{printed}", output.status);
    eprintln!("schemathesis: no failure in {took:?}\n{}", summary(&printed));

    // The run tested with its key until the end: it revoked only the spare one.
    api.get("/v1/connectors").await.expect_json(200);
    assert!(!backend.requests().is_empty(), "calls through the connection reached the backend");
    // Generated webhook URLs are text that no URL parser takes, or this machine's: a delivery
    // never leaves it. A change that made schemathesis generate others would show here.
    let webhooks = api.get("/v1/webhooks?limit=200").await.expect_json(200);
    for webhook in webhooks["items"].as_array().expect("items") {
        let url = url::Url::parse(webhook["url"].as_str().expect("a URL")).expect("a stored URL parses");
        let local = matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback() || ip.is_unspecified())
            || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback() || ip.is_unspecified())
            || url.host_str() == Some("localhost");
        assert!(local, "a webhook to {url} was made: deliveries would leave this machine");
    }
}

/// The last lines schemathesis printed: its summary.
fn summary(printed: &str) -> String {
    let lines: Vec<&str> = printed.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `<repository>`.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The schemathesis of the test environment, once it has shown its version; `None` after
/// saying why it is missing (a failure under CI).
fn schemathesis() -> Option<PathBuf> {
    let path = repository().join("tests/python/.venv/bin/schemathesis");
    let missing = if path.is_file() {
        match Command::new(&path).arg("--version").stdin(Stdio::null()).output() {
            Ok(output) if output.status.success() => return Some(path),
            Ok(output) => {
                format!("{} --version failed: {}", path.display(), String::from_utf8_lossy(&output.stderr).trim())
            }
            Err(e) => format!("{} does not run: {e}", path.display()),
        }
    } else {
        format!("{} is missing", path.display())
    };
    portico_testkit::skip_or_fail(&format!("{missing}; {HOW_TO_INSTALL}"));
    None
}

// ---------------------------------------------------------------------------------------------
// What schemathesis found, one test each.

#[tokio::test]
async fn every_error_the_document_lists_is_a_problem() {
    let portico = Portico::start();
    let document = portico.client(None).get("/openapi.json").await.expect_json(200);
    let mut wrong = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let media: Vec<&String> =
                    response["content"].as_object().map(|c| c.keys().collect()).unwrap_or_default();
                // The OAuth callback answers a browser: its refusal is a page.
                let page = path == "/oauth/callback" && status == "400";
                let problem = media == ["application/problem+json"]
                    && response["content"]["application/problem+json"]["schema"]["$ref"]
                        == "#/components/schemas/Problem";
                if status.starts_with(['4', '5']) && !page && !problem {
                    wrong.push(format!("{method} {path} {status}: {media:?}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "errors documented as something else than a problem:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn what_axum_refuses_is_a_problem_too() {
    let portico = Portico::start();
    let api = portico.api();
    // A path that is not UTF-8 once decoded.
    api.get("/v1/connectors/%FF").await.expect_problem(400, "bad-request");
    // The optional body of a re-authorization, when it is not JSON.
    let path = format!("/v1/connections/{MISSING_ID}/reauthorize");
    api.send_raw(Method::POST, &path, Some("application/json"), "{").await.expect_problem(400, "bad-request");
    api.send_raw(Method::POST, &path, Some("text/plain"), "x").await.expect_problem(415, "unsupported-media-type");
    // `null` is no body, as an absent one.
    api.send_raw(Method::POST, &path, Some("application/json"), "null").await.expect_problem(404, "not-found");
}

#[tokio::test]
async fn a_page_size_outside_its_documented_range_is_refused() {
    let portico = Portico::start();
    let api = portico.api();
    for list in ["/v1/connectors", "/v1/connections", "/v1/api-keys", "/v1/members", "/v1/webhooks"] {
        for limit in ["0", "201", "2147483648", "-1", "ten"] {
            let problem = api.get(&format!("{list}?limit={limit}")).await.expect_problem(400, "bad-request");
            assert!(problem.detail().contains("limit"), "{list}?limit={limit}: {}", problem.detail());
        }
        api.get(&format!("{list}?limit=200")).await.expect_json(200);
        api.get(&format!("{list}?limit=1")).await.expect_json(200);
    }
    let deliveries = format!("/v1/webhooks/{MISSING_ID}/deliveries?limit=201");
    api.get(&deliveries).await.expect_problem(400, "bad-request");
}

#[tokio::test]
async fn a_body_is_an_object_never_an_array_of_its_fields() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = id(&api.create_connector(&json!({"definition": fixture::json("calls/api-key-header.json")})).await);
    let connection = json!({"connectorId": connector, "parameters": {"api_key": "k"}});
    let connection = id(&api.create_connection(&connection).await);
    // serde reads a struct from the list of its fields too: `[displayName, parameters]`.
    let path = format!("/v1/connections/{connection}");
    let problem = api.patch(&path, &json!(["Renamed", null])).await.expect_problem(422, "validation");
    assert_eq!(problem.fields(), ["body"]);
    assert_eq!(api.get(&path).await.expect_json(200)["displayName"], "Echo (API key in a header)");
    for (path, body) in [
        ("/v1/connections", json!([connector])),
        ("/v1/members", json!(["ann@example.org", "user"])),
        ("/v1/api-keys", json!(["a key", "admin"])),
    ] {
        api.post(path, &body).await.expect_problem(422, "validation");
    }
}

/// PostgreSQL cannot keep a NUL character, and it answered "the store is unavailable" (503) to a
/// cursor holding one; every engine now refuses NUL at the door, as the document says.
#[tokio::test]
async fn text_holding_a_nul_character_is_refused_on_every_engine() {
    let portico = Portico::start();
    let api = portico.api();
    let connector = id(&api.create_connector(&json!({"definition": fixture::json("calls/api-key-header.json")})).await);
    let connection = json!({"connectorId": connector, "parameters": {"api_key": "k"}});
    let connection = id(&api.create_connection(&connection).await);

    api.get("/v1/connections?after=a%00b").await.expect_problem(400, "bad-request");
    api.get("/v1/connections?connectorId=%00").await.expect_problem(400, "bad-request");
    api.get("/v1/connectors/a%00b").await.expect_problem(400, "bad-request");
    let renamed = api.patch(&format!("/v1/connections/{connection}"), &json!({"displayName": "a\u{0}b"})).await;
    assert_eq!(renamed.expect_problem(422, "validation").fields(), ["body"]);
    let key = api.post("/v1/api-keys", &json!({"name": "\u{0}", "role": "admin"})).await;
    key.expect_problem(422, "validation");
    // An escaped backslash before `u0000` is no NUL.
    let renamed = api.patch(&format!("/v1/connections/{connection}"), &json!({"displayName": "a\\u0000b"})).await;
    assert_eq!(renamed.expect_json(200)["displayName"], "a\\u0000b");

    let document = portico.client(None).get("/openapi.json").await.expect_json(200);
    let name = &document["components"]["schemas"]["UpdateConnection"]["properties"]["displayName"];
    assert_eq!(name["pattern"], "^[^\\u0000]*$", "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_a_connection_takes_the_documented_methods_and_says_which() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&["--allow-private-backends"]);
    let api = portico.api();
    let mut definition = fixture::json("calls/api-key-header.json");
    definition["backend"]["host"] = json!(backend.authority());
    let connector = id(&api.create_connector(&json!({"definition": definition})).await);
    let connection = json!({"connectorId": connector, "parameters": {"api_key": "k"}});
    let connection = id(&api.create_connection(&connection).await);

    // TRACE would show the caller the credential added to the request.
    let proxy = format!("/v1/connections/{connection}/proxy/ok");
    for method in ["TRACE", "QUERY", "PROPFIND"] {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let reply = api.send(api.request(method.clone(), &proxy)).await;
        reply.expect_problem(405, "method-not-allowed");
        assert_eq!(reply.header("allow"), Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"), "{method}");
    }
    assert!(backend.requests().is_empty(), "nothing reached the backend: {:?}", backend.requests());
    for method in [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS]
    {
        let reply = api.send(api.request(method.clone(), &proxy)).await;
        assert_eq!(reply.status, 200, "{method}: {}", reply.text);
    }

    for path in [format!("/v1/connections/{connection}/operations/Ping"), format!("/v1/connections/{connection}/test")]
    {
        let reply = api.get(&path).await;
        reply.expect_problem(405, "method-not-allowed");
        assert_eq!(reply.header("allow"), Some("POST"), "{path}");
    }
}
