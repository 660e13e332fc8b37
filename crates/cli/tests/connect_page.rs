//! The hosted connect page in a real headless Chromium (Debian's, over WebDriver): an app's back
//! end makes a connect session with its admin key, and its end user opens the link — no key,
//! no sign-in — chooses a service, fills in the connector author's labelled fields (mistakes
//! beside them) or signs in with OAuth 2.0 at a real provider (oidc-provider, `tests/idp`), and
//! ends on a page that says so or back at the app's `returnUrl`. A link connects one account:
//! used, expired, unknown links and connectors it does not offer each get a clear page.
//!
//! Each test saves screenshots into `docs/screenshots/` (23 onwards).

#[path = "portal/browser.rs"]
mod browser;
mod common;

use std::time::{Duration, Instant};

use browser::{Chrome, DESKTOP, PHONE};
use common::backend::Backend;
use common::idp::{BASIC, Idp, IdpOptions};
use common::{Portico, contains, distinctive};
use fantoccini::key::Key;
use serde_json::{Value, json};

/// At most two browsers at once: the machine has two cores.
static BROWSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// The identity provider's name in the catalog the OAuth test gives Portico.
const PROVIDER: &str = "Example ID";

/// A connector of Portico's own format whose backend is `backend`.
fn connector(name: &str, metadata: Value, backend: &Backend, parameters: Value, credential: Value) -> Value {
    let mut metadata = metadata;
    metadata["name"] = json!(name);
    json!({"definition": {
        "metadata": metadata,
        "backend": {"scheme": "http", "host": backend.authority(), "basePath": "/"},
        "connection": {"mode": "single", "parameters": parameters, "credential": credential},
    }})
}

/// "Weather": an API key (masked, required, with a hint) in a header, and units to choose.
async fn weather(portico: &Portico, backend: &Backend) -> String {
    let body = connector(
        "weather",
        json!({"displayName": "Weather", "description": "Forecasts and observations for your region.",
               "brandColor": "#0b7a75"}),
        backend,
        json!([{"name": "api_key", "type": "securestring", "label": "Weather key", "required": true,
                "description": "Find it under Settings → API in your Weather account."},
               {"name": "units", "type": "string", "label": "Units", "default": "metric",
                "allowedValues": [{"value": "metric", "label": "Metric (°C)"}, {"value": "imperial", "label": "Imperial (°F)"}]}]),
        json!({"kind": "apiKey", "keys": [{"parameter": "api_key", "name": "X-Weather-Key", "in": "header"}]}),
    );
    id_of(&portico.api().create_connector(&body).await)
}

/// "Ticket desk": basic authentication, no brand colour.
async fn desk(portico: &Portico, backend: &Backend) -> String {
    let body = connector(
        "ticket-desk",
        json!({"displayName": "Ticket desk", "description": "Your team's support tickets."}),
        backend,
        json!([{"name": "username", "type": "string", "label": "Desk login", "required": true},
               {"name": "password", "type": "securestring", "label": "Desk password", "required": true}]),
        json!({"kind": "basic", "username": "username", "password": "password"}),
    );
    id_of(&portico.api().create_connector(&body).await)
}

fn id_of(record: &Value) -> String {
    record["id"].as_str().expect("an id").to_owned()
}

/// `POST /v1/connect-sessions` with the admin key: the session made (its token included).
async fn new_session(portico: &Portico, body: Value) -> Value {
    let created = portico.api().post("/v1/connect-sessions", &body).await.expect_json(201);
    let token = created["token"].as_str().expect("a token");
    assert_eq!(created["url"], format!("{}/connect/{token}", portico.base), "the link is the hosted page");
    created
}

fn token_of(session: &Value) -> String {
    session["token"].as_str().expect("a token").to_owned()
}

/// The texts of the elements matching `css`.
async fn texts(chrome: &Chrome, css: &str) -> Vec<String> {
    let script = format!("return [...document.querySelectorAll({css:?})].map(e => e.textContent.trim())");
    serde_json::from_value(chrome.script(&script).await).expect("a list of texts")
}

/// What a person sees and uses: every shown input has a label, nothing is wider than the
/// window, and the link's token is nowhere in the text.
async fn assert_fit_for_people(chrome: &Chrome, token: &str) {
    let path = chrome.path().await;
    let found = chrome
        .script(
            "const shown = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => e.getClientRects().length > 0);
             return {unlabelled: shown.filter(e => e.labels.length === 0).map(e => e.outerHTML),
                     scroll: document.documentElement.scrollWidth, width: window.innerWidth}",
        )
        .await;
    assert_eq!(found["unlabelled"], json!([]), "inputs without a label on {path}");
    assert!(found["scroll"].as_u64().unwrap() <= found["width"].as_u64().unwrap(), "{path} scrolls sideways: {found}");
    assert!(!chrome.visible_text().await.contains(token), "the token is not written on {path}");
}

/// A connect page fetched without a browser: its status and HTML, with the security headers
/// every page has, and the link's token only where links to the page's own paths hold it.
async fn fetch(portico: &Portico, path: &str) -> (u16, String) {
    let reply = portico.client(None).get(path).await;
    let token = path.trim_start_matches("/connect/").split('/').next().unwrap_or_default();
    let own_paths = reply.text.matches(&format!("\"/connect/{token}")).count();
    assert_eq!(reply.text.matches(token).count(), own_paths, "{path}: the token stands only in links");
    assert!(reply.content_type().starts_with("text/html"), "{path}: {}", reply.content_type());
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"), "{path}");
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{path}");
    assert!(reply.header("content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")), "{path}");
    (reply.status, reply.text)
}

/// `POST path` of a form as a browser sends it, without one: the status.
async fn post_form(portico: &Portico, path: &str, body: &str) -> u16 {
    let form = Some("application/x-www-form-urlencoded");
    portico.client(None).send_raw(reqwest::Method::POST, path, form, body.to_owned()).await.status
}

#[tokio::test]
async fn an_end_user_connects_an_api_key_account_through_the_link() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let backend = Backend::start().await;
    let portico = Portico::start_with(&["--allow-private-backends"]);
    let weather = weather(&portico, &backend).await;
    let desk = desk(&portico, &backend).await;
    let session = new_session(&portico, json!({"endUserId": "ann", "connectorIds": [weather, desk]})).await;
    let token = token_of(&session);
    let link = session["url"].as_str().unwrap().to_owned();
    let key = distinctive("weather-key-");

    let (status, html) = fetch(&portico, &format!("/connect/{token}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("href=\"/connect/{token}/{weather}\"")), "links to the page's own paths");

    let Some(chrome) = Chrome::try_start().await else { return };
    // The offer: each connector with its name, description and brand tile.
    chrome.goto(&link).await;
    assert_eq!(chrome.text("h1").await, "Connect an account");
    assert_eq!(texts(&chrome, ".connectors .name").await, ["Weather", "Ticket desk"]);
    assert_eq!(
        texts(&chrome, ".connectors .description").await,
        ["Forecasts and observations for your region.", "Your team's support tickets."]
    );
    assert_eq!(chrome.count(".connectors img.tile").await, 2);
    assert!(!chrome.exists("header nav").await && !chrome.exists("form.sign-out").await, "no portal navigation");
    assert_fit_for_people(&chrome, &token).await;
    chrome.screenshot("23-connect-choose-a-service").await;

    // The form: exactly the author's labels, the key masked and required, the hint shown.
    chrome.click(&format!(".connectors a[href$='/{weather}']")).await;
    assert_eq!(chrome.path().await, format!("/connect/{token}/{weather}"));
    assert_eq!(chrome.text("h1").await, "Connect Weather");
    assert_eq!(texts(&chrome, "form label").await, ["Weather key (required)", "Units"]);
    let key_input = chrome.find("#p0_0").await;
    assert_eq!(key_input.attr("type").await.unwrap().as_deref(), Some("password"));
    assert_eq!(key_input.attr("required").await.unwrap().as_deref(), Some("true"));
    assert!(chrome.text("#p0_0-hint").await.contains("Settings → API"));
    assert_eq!(chrome.script("return document.querySelector('#p0_1').value").await, "metric");
    assert_eq!(chrome.text("form button[type=submit]").await, "Connect");
    assert_fit_for_people(&chrome, &token).await;

    // The keyboard reaches the key from the top of the page, with a visible focus ring.
    chrome.find("body").await.send_keys(&Key::Tab.to_string()).await.unwrap();
    assert_eq!(chrome.client.active_element().await.unwrap().text().await.unwrap(), "Skip to content");
    let mut steps = 0;
    loop {
        let active = chrome.client.active_element().await.unwrap();
        if active.attr("id").await.unwrap().as_deref() == Some("p0_0") {
            assert_ne!(active.css_value("outline-style").await.unwrap(), "none", "a visible focus ring");
            break;
        }
        active.send_keys(&Key::Tab.to_string()).await.unwrap();
        steps += 1;
        assert!(steps < 10, "the key's input is reachable with Tab");
    }

    // Nothing typed: the mistake beside the key's input, announced with it; the choice kept.
    chrome.select("#p0_1", "imperial").await;
    chrome.click("form.connection-form button[type=submit]").await;
    assert!(chrome.text("#p0_0-error").await.to_lowercase().contains("required"), "{}", chrome.visible_text().await);
    let beside = chrome
        .script(
            "const input = document.getElementById('p0_0');
             return document.getElementById('p0_0-error').closest('.field').contains(input)
                 && input.getAttribute('aria-invalid') === 'true'
                 && input.getAttribute('aria-describedby').includes('p0_0-error')",
        )
        .await;
    assert_eq!(beside, json!(true), "the error is in the key's field and announced with it");
    assert!(chrome.exists(".error-summary a[href='#p0_0']").await, "and linked from the summary");
    assert_eq!(chrome.script("return document.querySelector('#p0_1').value").await, "imperial");
    assert_fit_for_people(&chrome, &token).await;
    chrome.screenshot("24-connect-validation-error").await;

    // On a phone: the same form fits.
    chrome.resize(PHONE).await;
    assert_fit_for_people(&chrome, &token).await;
    chrome.screenshot("29-connect-phone").await;
    chrome.resize(DESKTOP).await;

    // A key, sent with Enter: connected, and the page says so.
    chrome.find("#p0_0").await.send_keys(&format!("{key}{}", Key::Enter)).await.unwrap();
    chrome.find(".outcome-ok").await;
    assert_eq!(chrome.path().await, format!("/connect/{token}/done"));
    assert_eq!(chrome.text("h1").await, "Account connected");
    assert!(chrome.visible_text().await.contains("Connected. You can close this window."));
    assert!(!chrome.source().await.contains(&key), "the key is never written into a page");
    assert_fit_for_people(&chrome, &token).await;
    chrome.screenshot("25-connect-connected").await;

    // The connection is ann's, connected; the session completed with it.
    let api = portico.api();
    let owned = api.get("/v1/connections?endUserId=ann").await.expect_json(200);
    let items = owned["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{owned}");
    let connection = &items[0];
    assert_eq!(connection["endUserId"], "ann");
    assert_eq!(connection["connectorId"], weather.as_str());
    assert_eq!(connection["status"], "connected");
    assert_eq!(connection["parameters"]["units"], "imperial");
    assert_eq!(connection["secrets"]["api_key"]["set"], true);
    let connection_id = connection["id"].as_str().unwrap();
    let made = api.get(&format!("/v1/connect-sessions/{}", session["id"].as_str().unwrap())).await.expect_json(200);
    assert_eq!((made["state"].as_str(), made["connectionId"].as_str()), (Some("completed"), Some(connection_id)));
    // The key reaches the backend only as the credential.
    let tested = api.post(&format!("/v1/connections/{connection_id}/test"), &json!({})).await;
    assert_eq!(tested.status, 200, "{}", tested.text);
    let calls = backend.take();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].header("x-weather-key"), Some(key.as_str()));

    // The link again: used, said plainly; nothing more can be made with it.
    chrome.goto(&link).await;
    assert_eq!(chrome.text("h1").await, "This link was already used");
    assert!(chrome.visible_text().await.contains("already used to connect an account"));
    assert!(!chrome.exists("form.connection-form").await);
    assert_fit_for_people(&chrome, &token).await;
    chrome.screenshot("28-connect-link-used").await;
    chrome.close().await;
    for path in [format!("/connect/{token}"), format!("/connect/{token}/{weather}"), format!("/connect/{token}/{desk}")]
    {
        let (status, html) = fetch(&portico, &path).await;
        assert_eq!(status, 410, "{path}");
        assert!(html.contains("already used to connect an account"), "{path}");
    }
    let again = post_form(&portico, &format!("/connect/{token}/{desk}"), "p0_0=someone&p0_1=pw").await;
    assert_eq!(again, 410);
    let all = api.get("/v1/connections").await.expect_json(200);
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "one link, one connection");

    assert!(!contains(&portico.output_bytes(), &key), "the key is never logged");
    assert_not_logged(&portico, &token);
}

#[tokio::test]
async fn the_browser_ends_at_the_apps_return_url_with_the_connection() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let backend = Backend::start().await;
    let app = Backend::start().await;
    let app_origin = format!("http://{}", app.authority());
    let portico = Portico::start_with(&["--allow-private-backends", "--allowed-return-origin", &app_origin]);
    let weather = weather(&portico, &backend).await;
    let return_url = format!("{app_origin}/accounts/connected?from=portico");
    let session =
        new_session(&portico, json!({"endUserId": "ann", "connectorIds": [weather], "returnUrl": return_url})).await;
    let token = token_of(&session);
    let Some(chrome) = Chrome::try_start().await else { return };

    // One connector offered: straight to its form.
    chrome.goto(session["url"].as_str().unwrap()).await;
    assert_eq!(chrome.path().await, format!("/connect/{token}/{weather}"));
    assert!(!chrome.exists(".back").await, "no way back to a choice of one");
    chrome.fill("#p0_0", &distinctive("weather-key-")).await;
    chrome.click("form.connection-form button[type=submit]").await;

    // The app's page, told which connection and how it went; no Referer carries the token.
    let deadline = Instant::now() + Duration::from_secs(10);
    let arrived = loop {
        // The browser may ask the app for its icon too.
        if let Some(arrived) = app.requests().into_iter().find(|r| r.path != "/favicon.ico") {
            break arrived;
        }
        assert!(Instant::now() < deadline, "the browser did not reach the app: {}", chrome.path().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(arrived.path, "/accounts/connected");
    let connection = portico.api().get("/v1/connections?endUserId=ann").await.expect_json(200)["items"][0].clone();
    assert_eq!(
        arrived.query_pairs(),
        [
            ("from".to_owned(), "portico".to_owned()),
            ("connectionId".to_owned(), connection["id"].as_str().unwrap().to_owned()),
            ("status".to_owned(), "connected".to_owned()),
        ]
    );
    assert_eq!(arrived.header("referer"), None, "no Referer");
    let url = chrome.client.current_url().await.unwrap();
    assert_eq!(url.origin().ascii_serialization(), app_origin, "the browser ends at the app");
    assert_eq!(connection["status"], "connected");
    chrome.close().await;
    assert_not_logged(&portico, &token);
}

#[tokio::test]
async fn used_expired_unknown_and_unoffered_links_each_get_a_clear_page() {
    let backend = Backend::start().await;
    let portico = Portico::start_with(&["--allow-private-backends"]);
    let weather = weather(&portico, &backend).await;
    let desk = desk(&portico, &backend).await;

    // A connector the session does not offer: not found, its form not shown, nothing made.
    let session = new_session(&portico, json!({"endUserId": "ann", "connectorIds": [weather]})).await;
    let token = token_of(&session);
    let (status, html) = fetch(&portico, &format!("/connect/{token}/{desk}")).await;
    assert_eq!(status, 404);
    assert!(html.contains("does not offer that service"), "{html}");
    assert!(!html.contains("Desk login") && !html.contains("connection-form"), "the form is not shown: {html}");
    assert_eq!(post_form(&portico, &format!("/connect/{token}/{desk}"), "p0_0=someone&p0_1=pw").await, 404);
    assert_eq!(portico.api().get("/v1/connections").await.expect_json(200)["items"], json!([]));
    // The offered one is still there to connect.
    assert_eq!(fetch(&portico, &format!("/connect/{token}/{weather}")).await.0, 200);

    // An unknown link: not valid.
    for unknown in ["cst_unknown", &format!("{token}x"), "anything"] {
        let (status, html) = fetch(&portico, &format!("/connect/{unknown}")).await;
        assert_eq!(status, 401, "{unknown}");
        assert!(html.contains("This link is not valid"), "{unknown}");
    }

    // An expired link: gone, and whom to ask (the host of the app's returnUrl).
    let expiring = new_session(
        &portico,
        json!({"endUserId": "ann", "connectorIds": [weather], "expiresIn": 1,
               "returnUrl": format!("{}/back", portico.base)}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let expired_token = token_of(&expiring);
    for path in [
        format!("/connect/{expired_token}"),
        format!("/connect/{expired_token}/{weather}"),
        format!("/connect/{expired_token}/done"),
    ] {
        let (status, html) = fetch(&portico, &path).await;
        assert_eq!(status, 410, "{path}");
        assert!(html.contains("This link has expired; ask 127.0.0.1 for a new one."), "{path}: {html}");
    }

    // A link whose connectors were all removed since: nothing to connect.
    let lonely = api_connector_then_removed(&portico, &backend).await;
    let empty = new_session(&portico, json!({"endUserId": "ann", "connectorIds": [lonely]})).await;
    portico.api().delete(&format!("/v1/connectors/{lonely}")).await.expect_empty(204);
    let (status, html) = fetch(&portico, &format!("/connect/{}", token_of(&empty))).await;
    assert_eq!(status, 200);
    assert!(html.contains("Nothing to connect"), "{html}");

    for token in [&token, &expired_token] {
        assert_not_logged(&portico, token);
    }
}

/// No log line of the server holds `token`, the HTTP request span aside: it names the path,
/// which is `/connect/<token>` (the server's request tracing, not these pages, should mask it).
#[track_caller]
fn assert_not_logged(portico: &Portico, token: &str) {
    let output = String::from_utf8_lossy(&portico.output_bytes()).into_owned();
    let leaks: Vec<&str> = output
        .lines()
        .filter(|line| {
            let past_span = match line.find("request{") {
                Some(at) => line[at..].split_once("}: ").map_or("", |(_, rest)| rest),
                None => line,
            };
            past_span.contains(token)
        })
        .collect();
    assert_eq!(leaks, Vec::<&str>::new(), "a connect token is never logged");
}

/// A connector made only to be removed.
async fn api_connector_then_removed(portico: &Portico, backend: &Backend) -> String {
    let body =
        connector("short-lived", json!({"displayName": "Short lived"}), backend, json!([]), json!({"kind": "none"}));
    id_of(&portico.api().create_connector(&body).await)
}

#[tokio::test]
async fn an_oauth_account_connects_and_a_refused_sign_in_can_be_tried_again() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    // Portico's port first: the provider must know its callback, and Portico the provider.
    let port = portico_testkit::spare_port();
    let callback = format!("http://127.0.0.1:{port}/oauth/callback");
    let Some(idp) = Idp::try_start(&IdpOptions::redirecting_to(&callback)) else { return };
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("providers.json");
    let entry = json!([{"id": "example-id", "displayName": PROVIDER,
        "authorizationUrl": idp.url("/auth"), "tokenUrl": idp.url("/token")}]);
    std::fs::write(&catalog, entry.to_string()).unwrap();
    let listen = format!("127.0.0.1:{port}");
    // The provider is on loopback.
    let portico = Portico::start_with(&[
        "--allow-private-backends",
        "--listen",
        &listen,
        "--idp-catalog",
        catalog.to_str().unwrap(),
    ]);
    let body = json!({"definition": {
            "metadata": {"name": "example-files", "displayName": "Example Files",
                         "description": "Your files at Example.", "brandColor": "#5b3cc4"},
            "backend": {"host": "files.example"},
            "connection": {"mode": "single", "credential": {"kind": "oauth2", "identityProvider": "example-id",
                "scopes": ["openid", "offline_access", "api:read"]}}},
        "oauthClient": {"clientId": BASIC.id, "clientSecret": BASIC.secret.unwrap()}});
    let files = id_of(&portico.api().create_connector(&body).await);
    let session = new_session(&portico, json!({"endUserId": "bob", "connectorIds": [files]})).await;
    let token = token_of(&session);
    let session_path = format!("/v1/connect-sessions/{}", session["id"].as_str().unwrap());
    let Some(chrome) = Chrome::try_start().await else { return };

    // The form of an OAuth connector is its sign-in button, naming the provider.
    chrome.goto(session["url"].as_str().unwrap()).await;
    assert_eq!(chrome.path().await, format!("/connect/{token}/{files}"));
    assert_eq!(chrome.text("form button[type=submit]").await, format!("Sign in with {PROVIDER}"));
    assert!(chrome.visible_text().await.contains(&format!("You will sign in at {PROVIDER} and come back here.")));
    assert_fit_for_people(&chrome, &token).await;
    chrome.screenshot("26-connect-oauth-sign-in").await;

    // At the provider, the person cancels: the page says so and offers to try again.
    chrome.click_text(&format!("Sign in with {PROVIDER}")).await;
    assert!(chrome.client.current_url().await.unwrap().as_str().starts_with(idp.issuer()), "at the provider");
    chrome.click(".login-help a").await;
    chrome.find(".outcome-bad").await;
    assert_eq!(chrome.path().await, format!("/connect/{token}/done?status=error"));
    assert_eq!(chrome.text("h1").await, "The sign-in did not complete");
    assert!(chrome.exists("form[action$='/retry'] button").await);
    assert_fit_for_people(&chrome, &token).await;
    chrome.screenshot("27-connect-sign-in-failed").await;
    let pending = portico.api().get(&session_path).await.expect_json(200);
    assert_eq!(pending["state"], "pending");
    let connection_id = pending["connectionId"].as_str().expect("the connection waits for its sign-in").to_owned();
    let refused = portico.api().get(&format!("/v1/connections/{connection_id}")).await.expect_json(200);
    assert_eq!((refused["status"].as_str(), refused["endUserId"].as_str()), (Some("error"), Some("bob")));
    // The link itself now leads to the same page, not to a second connection.
    let (status, html) = fetch(&portico, &format!("/connect/{token}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("The sign-in did not complete"));

    // Try again: the provider's login and consent forms, then back, connected.
    chrome.click_text("Try again").await;
    for _ in 0..5 {
        if chrome.client.current_url().await.unwrap().as_str().starts_with(&portico.base) {
            break;
        }
        if chrome.exists("input[name=login]").await {
            chrome.fill("input[name=login]", "bob").await;
            chrome.fill("input[name=password]", "any-password").await;
        }
        chrome.click("button[type=submit]").await;
    }
    chrome.find(".outcome-ok").await;
    assert_eq!(chrome.path().await, format!("/connect/{token}/done?status=connected"));
    assert!(chrome.visible_text().await.contains("Connected. You can close this window."));
    let connected = portico.api().get(&format!("/v1/connections/{connection_id}")).await.expect_json(200);
    assert_eq!((connected["status"].as_str(), connected["endUserId"].as_str()), (Some("connected"), Some("bob")));
    let completed = portico.api().get(&session_path).await.expect_json(200);
    assert_eq!(
        (completed["state"].as_str(), completed["connectionId"].as_str()),
        (Some("completed"), Some(connection_id.as_str()))
    );
    assert_eq!(idp.token_calls("authorization_code").await, 1);
    let owned = portico.api().get("/v1/connections?endUserId=bob").await.expect_json(200);
    assert_eq!(owned["items"].as_array().unwrap().len(), 1, "one connection, signed in on the second try");

    // Used now: trying again is over too.
    let (status, _) = fetch(&portico, &format!("/connect/{token}")).await;
    assert_eq!(status, 410);
    assert_eq!(post_form(&portico, &format!("/connect/{token}/retry"), "").await, 410);
    chrome.close().await;
    assert!(!contains(&portico.output_bytes(), BASIC.secret.unwrap()), "the client secret is never logged");
    assert_not_logged(&portico, &token);
}
