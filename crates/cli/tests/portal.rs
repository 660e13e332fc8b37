//! The web portal in a real headless Chromium (Debian's, over WebDriver): signing in and out,
//! a connector per authentication type through the Security tab, connections through the
//! "New connection" dialog, an OAuth 2.0 sign-in at the local authorization server, validation
//! errors beside their fields, CSRF refusals, and a phone-sized screen.
//!
//! Each test saves screenshots into `docs/screenshots/`; the README shows them.

#[path = "portal/browser.rs"]
mod browser;
mod common;

use std::time::{Duration, Instant};

use browser::{Chrome, PHONE};
use common::idp::{BASIC, Idp, IdpOptions};
use common::{Portico, backend::Backend, contains, distinctive};
use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::{Value, json};

/// At most two browsers at once: the machine has two cores.
static BROWSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A signed-in browser on a fresh server, or `None` when the browser is missing (see
/// [`Chrome::try_start`]).
async fn signed_in(portico: &Portico) -> Option<Chrome> {
    let chrome = Chrome::try_start().await?;
    sign_in(&chrome, portico, &portico.admin_key).await;
    assert_eq!(chrome.path().await, "/connectors", "signing in lands on the connectors");
    Some(chrome)
}

async fn sign_in(chrome: &Chrome, portico: &Portico, key: &str) {
    chrome.goto(&format!("{}/sign-in", portico.base)).await;
    chrome.fill("#api_key", key).await;
    chrome.click("form[action='/sign-in'] button[type=submit]").await;
}

/// Waits until the page's path starts with `prefix`; the path.
async fn wait_for_path(chrome: &Chrome, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path = chrome.path().await;
        if path.starts_with(prefix) {
            return path;
        }
        assert!(Instant::now() < deadline, "the browser is at {path}, not {prefix}…\n{}", chrome.visible_text().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last path segment before `suffix`: `/connectors/ID/security` → `ID`.
fn id_in(path: &str, prefix: &str) -> String {
    let rest = path.strip_prefix(prefix).unwrap_or_else(|| panic!("{path} starts with {prefix}"));
    rest.split(['/', '?']).next().unwrap_or_default().to_owned()
}

/// Types into the input labelled `label` (its label text starts with it).
async fn fill_labelled(chrome: &Chrome, label: &str, value: &str) {
    let xpath = format!("//label[starts-with(normalize-space(), '{label}')]");
    let label_element = match chrome.client.find(Locator::XPath(&xpath)).await {
        Ok(element) => element,
        Err(e) => panic!("no label '{label}': {e}\n{}", chrome.visible_text().await),
    };
    let id = label_element.attr("for").await.expect("the label's for").expect("a label bound to an input");
    chrome.fill(&format!("#{id}"), value).await;
}

/// "New connector" from scratch: the connector's id, on its Security tab.
async fn new_connector(chrome: &Chrome, portico: &Portico, display_name: &str, backend_url: &str) -> String {
    chrome.goto(&format!("{}/connectors/new", portico.base)).await;
    chrome.fill("#display_name", display_name).await;
    chrome.fill("#backend_url", backend_url).await;
    chrome.click_text("Create and continue to Security").await;
    let path = wait_for_path(chrome, "/connectors/").await;
    assert!(path.ends_with("/security"), "a new connector continues to its Security tab, not {path}");
    id_in(&path, "/connectors/")
}

async fn save_security(chrome: &Chrome) {
    chrome.click(".security-form button[type=submit]").await;
}

async fn connector(portico: &Portico, id: &str) -> Value {
    portico.api().get(&format!("/v1/connectors/{id}")).await.expect_json(200)
}

async fn connection(portico: &Portico, id: &str) -> Value {
    portico.api().get(&format!("/v1/connections/{id}")).await.expect_json(200)
}

/// A connector of Portico's own format whose backend is `backend`.
fn definition(name: &str, backend: &Backend, parameters: Value, credential: Value) -> Value {
    json!({"definition": {
        "metadata": {"name": name, "displayName": name_words(name)},
        "backend": {"scheme": "http", "host": backend.authority(), "basePath": "/"},
        "connection": {"mode": "single", "parameters": parameters, "credential": credential},
    }})
}

fn name_words(name: &str) -> String {
    let mut words = name.replace('-', " ");
    if let Some(first) = words.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    words
}

/// Every visible input and select of the page has a label bound to it.
async fn assert_inputs_labelled(chrome: &Chrome) {
    let unlabelled = chrome
        .script(
            "return [...document.querySelectorAll('input, select, textarea')]
                .filter(e => e.type !== 'hidden' && e.offsetParent !== null)
                .filter(e => !(e.id && document.querySelector(`label[for=\"${e.id}\"]`)) && !e.getAttribute('aria-label'))
                .map(e => e.outerHTML)",
        )
        .await;
    assert_eq!(unlabelled, json!([]), "inputs without a label on {}", chrome.path().await);
}

/// The page fits the window's width: nothing to scroll sideways.
async fn assert_no_sideways_scroll(chrome: &Chrome) {
    let widths = chrome.script("return [document.documentElement.scrollWidth, window.innerWidth]").await;
    let (scroll, inner) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    if scroll > inner {
        let wide = chrome
            .script(
                "return [...document.querySelectorAll('body *')]
                    .filter(e => e.getBoundingClientRect().right > window.innerWidth)
                    .map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))",
            )
            .await;
        panic!("{} scrolls sideways: {scroll} px wide in {inner} px: {wide}", chrome.path().await);
    }
}

#[tokio::test]
async fn signing_in_and_out_with_an_api_key() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let portico = Portico::start();
    let Some(chrome) = Chrome::try_start().await else { return };

    // A page of the portal sends a browser without a session to the sign-in page, and back.
    chrome.goto(&format!("{}/connections", portico.base)).await;
    assert_eq!(chrome.path().await, "/sign-in?next=%2Fconnections");
    assert!(chrome.text("h1").await.contains("Sign in"));
    assert_inputs_labelled(&chrome).await;
    chrome.screenshot("01-sign-in").await;

    // A wrong key: said beside the field, and not written back.
    let wrong = distinctive("pk_wrong");
    chrome.fill("#api_key", &wrong).await;
    chrome.click("form[action='/sign-in'] button[type=submit]").await;
    assert!(chrome.text("#api_key-error").await.contains("not valid"));
    assert!(!chrome.source().await.contains(&wrong), "the typed key is not written back");

    // The right key, typed and sent with the keyboard alone.
    chrome.find("#api_key").await.send_keys(&format!("{}{}", portico.admin_key, Key::Enter)).await.expect("typing");
    wait_for_path(&chrome, "/connections").await;
    assert!(!chrome.source().await.contains(&portico.admin_key), "the key never appears in a page");

    // The session is an opaque HttpOnly, SameSite cookie: not the key, not readable by scripts.
    let cookies = chrome.client.get_all_cookies().await.expect("cookies");
    let session = cookies.iter().find(|c| c.name() == "portico_session").expect("a session cookie");
    assert_ne!(session.value(), portico.admin_key);
    assert!(!session.value().contains(&portico.admin_key));
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Lax)");
    assert_eq!(chrome.script("return document.cookie").await, json!(""), "no cookie is visible to scripts");

    // Signing out ends the session: the portal asks to sign in again.
    chrome.click_text("Sign out").await;
    wait_for_path(&chrome, "/sign-in").await;
    chrome.goto(&format!("{}/connectors", portico.base)).await;
    assert!(chrome.path().await.starts_with("/sign-in"), "signed out");
    chrome.close().await;
    assert!(!contains(&portico.output_bytes(), &portico.admin_key), "the key is never logged");
}

#[tokio::test]
async fn a_connector_per_authentication_type_through_the_security_tab() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let portico = Portico::start();
    let Some(chrome) = signed_in(&portico).await else { return };
    let client_secret = distinctive("client-secret-");

    // No authentication.
    let none = new_connector(&chrome, &portico, "Public holidays", "https://holidays.example/api").await;
    assert!(chrome.text(".flash").await.contains("created"));
    assert_inputs_labelled(&chrome).await;
    chrome.select("#auth", "none").await;
    save_security(&chrome).await;
    assert!(chrome.text(".flash").await.contains("Security saved"));
    assert_eq!(connector(&portico, &none).await["auth"]["kind"], "none");

    // Basic authentication: the two labels users see.
    let basic = new_connector(&chrome, &portico, "Ticket desk", "https://tickets.example/v2").await;
    chrome.select("#auth", "basic").await;
    chrome.fill("#basic_username_label", "Desk login").await;
    chrome.fill("#basic_password_label", "Desk password").await;
    save_security(&chrome).await;
    assert!(chrome.text(".flash").await.contains("Security saved"));
    let saved = connector(&portico, &basic).await;
    assert_eq!(
        saved["connection"]["credential"],
        json!({"kind": "basic", "username": "username", "password": "password"})
    );
    let labels: Vec<&str> =
        saved["connection"]["parameters"].as_array().unwrap().iter().map(|p| p["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["Desk login", "Desk password"]);

    // API key: label, name and location.
    let api_key = new_connector(&chrome, &portico, "Weather", "https://api.weather.example/v1").await;
    chrome.select("#auth", "apiKey").await;
    chrome.fill("#apikey_label", "Weather key").await;
    chrome.fill("#apikey_name", "X-Weather-Key").await;
    chrome.select("#apikey_in", "query").await;
    save_security(&chrome).await;
    assert!(chrome.text(".flash").await.contains("Security saved"));
    let saved = connector(&portico, &api_key).await;
    assert_eq!(saved["auth"], json!({"kind": "apiKey", "in": "query", "name": "X-Weather-Key"}));
    assert_eq!(saved["connection"]["parameters"][0]["label"], "Weather key");
    assert_eq!(saved["connection"]["parameters"][0]["type"], "securestring");

    // OAuth 2.0: the catalog's providers, the client, and the redirect URL to register.
    let oauth = new_connector(&chrome, &portico, "Code hosting", "https://api.github.com").await;
    chrome.select("#auth", "oauth2").await;
    let providers =
        chrome.script("return [...document.querySelectorAll('#oauth_provider option')].map(o => o.text)").await;
    for name in ["Generic OAuth 2", "Microsoft Entra ID", "GitHub", "Google", "Facebook", "Salesforce"] {
        assert!(providers.as_array().unwrap().iter().any(|p| p == name), "{name} is offered: {providers}");
    }
    chrome.select("#oauth_provider", "github").await;
    chrome.fill("#oauth_client_id", "portal-client").await;
    chrome.fill("#oauth_client_secret", &client_secret).await;
    chrome.fill("#oauth_scopes", "repo, read:user").await;
    let redirect = chrome.find("#redirect_url").await.prop("value").await.unwrap().unwrap();
    assert_eq!(redirect, format!("{}/oauth/callback", portico.base));
    assert!(chrome.find("button[data-copy]").await.is_displayed().await.unwrap(), "a copy button");
    save_security(&chrome).await;
    assert!(chrome.text(".flash").await.contains("Security saved"));
    let saved = connector(&portico, &oauth).await;
    assert_eq!(saved["auth"], json!({"kind": "oauth2", "identityProvider": "github"}));
    assert_eq!(saved["connection"]["credential"]["scopes"], json!(["repo", "read:user"]));
    assert_eq!(saved["oauthClient"], json!({"clientId": "portal-client", "clientSecretSet": true}));
    // The secret is write-only: shown as set, never written back.
    assert!(chrome.text("#oauth_client_secret-hint").await.starts_with("Set."));
    assert!(!chrome.source().await.contains(&client_secret));
    assert_eq!(chrome.find("#oauth_client_secret").await.prop("value").await.unwrap().as_deref(), Some(""));
    chrome.screenshot("03-security-oauth").await;

    // Saving again with the secret left blank keeps it.
    chrome.fill("#oauth_scopes", "repo").await;
    save_security(&chrome).await;
    assert_eq!(connector(&portico, &oauth).await["oauthClient"]["clientSecretSet"], true);

    chrome.goto(&format!("{}/connectors", portico.base)).await;
    let list = chrome.visible_text().await;
    for words in ["No authentication", "Basic authentication", "API key (query X-Weather-Key)", "OAuth 2.0 (GitHub)"] {
        assert!(list.contains(words), "the list says {words}: {list}");
    }
    chrome.screenshot("02-connectors").await;
    chrome.close().await;
    assert!(!contains(&portico.output_bytes(), &client_secret), "the client secret is never logged");
}

#[tokio::test]
async fn basic_and_api_key_connections_through_the_dialog_are_connected() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let backend = Backend::start().await;
    let portico = Portico::start_with(&["--allow-private-backends"]);
    let api = portico.api();
    let basic = api
        .create_connector(&definition(
            "ticket-desk",
            &backend,
            json!([{"name": "username", "type": "string", "label": "Desk login", "required": true},
                   {"name": "password", "type": "securestring", "label": "Desk password", "required": true,
                    "description": "The password of your desk account."}]),
            json!({"kind": "basic", "username": "username", "password": "password"}),
        ))
        .await;
    let keyed = api
        .create_connector(&definition(
            "weather",
            &backend,
            json!([{"name": "api_key", "type": "securestring", "label": "Weather key", "required": true},
                   {"name": "units", "type": "string", "label": "Units", "allowedValues": [{"value": "metric"}, {"value": "imperial"}], "default": "metric"}]),
            json!({"kind": "apiKey", "keys": [{"parameter": "api_key", "name": "X-Weather-Key", "in": "header"}]}),
        ))
        .await;
    let Some(chrome) = signed_in(&portico).await else { return };
    let password = distinctive("desk-password-");
    let key = distinctive("weather-key-");

    // Basic: from the connector's page, the dialog shows exactly the labelled fields.
    chrome.goto(&format!("{}/connectors/{}", portico.base, basic["id"].as_str().unwrap())).await;
    chrome.click_text("New connection").await;
    wait_for_path(&chrome, "/connections/new").await;
    assert!(chrome.exists("dialog[open]").await, "a dialog");
    let labels =
        chrome.script("return [...document.querySelectorAll('dialog label')].map(l => l.textContent.trim())").await;
    assert_eq!(labels, json!(["Connection name", "Desk login (required)", "Desk password (required)"]));
    let password_input = chrome.find("dialog input[type=password]").await;
    assert_eq!(password_input.attr("required").await.unwrap().as_deref(), Some("true"));
    assert_inputs_labelled(&chrome).await;
    chrome.screenshot("04-new-connection").await;
    fill_labelled(&chrome, "Connection name", "Support desk").await;
    fill_labelled(&chrome, "Desk login", "agent-7").await;
    fill_labelled(&chrome, "Desk password", &password).await;
    chrome.click_text("Create connection").await;
    let path = wait_for_path(&chrome, "/connections/").await;
    let basic_connection = id_in(&path, "/connections/");
    assert_eq!(chrome.text(".status-line .badge").await, "Connected");
    assert!(chrome.visible_text().await.contains("agent-7"), "the user name is shown");
    assert!(!chrome.source().await.contains(&password), "the password is not");
    assert_eq!(connection(&portico, &basic_connection).await["status"], "connected");

    // Its test reaches the backend with the credential.
    chrome.click_text("Test connection").await;
    assert!(chrome.text(".flash").await.contains("The test passed"), "{}", chrome.visible_text().await);
    let sent = backend.take();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].header("authorization").is_some_and(|h| h.starts_with("Basic ")));

    // API key: a masked key and a choice of allowed values, the default chosen.
    chrome.goto(&format!("{}/connections/new?connector={}", portico.base, keyed["id"].as_str().unwrap())).await;
    let units = chrome.script("return document.querySelector('dialog select').value").await;
    assert_eq!(units, "metric");
    fill_labelled(&chrome, "Weather key", &key).await;
    chrome.click_text("Create connection").await;
    let path = wait_for_path(&chrome, "/connections/").await;
    let key_connection = id_in(&path, "/connections/");
    assert_eq!(chrome.text(".status-line .badge").await, "Connected");
    assert_eq!(chrome.text(".secret-set").await, "set", "a secret shows only that it is set");
    assert!(!chrome.source().await.contains(&key));
    let made = connection(&portico, &key_connection).await;
    assert_eq!((made["status"].as_str(), made["parameters"]["units"].as_str()), (Some("connected"), Some("metric")));

    // The connector's Test tab runs the same test through a chosen connection.
    chrome.goto(&format!("{}/connectors/{}/test", portico.base, keyed["id"].as_str().unwrap())).await;
    chrome.click_text("Run test").await;
    assert!(chrome.text(".outcome").await.contains("The test passed"), "{}", chrome.visible_text().await);
    assert_eq!(backend.take()[0].header("x-weather-key"), Some(key.as_str()));

    // Both are in the list, connected.
    chrome.goto(&format!("{}/connections", portico.base)).await;
    let badges = chrome.script("return [...document.querySelectorAll('td .badge')].map(b => b.textContent)").await;
    assert_eq!(badges, json!(["Connected", "Connected"]));
    chrome.close().await;
    for secret in [&password, &key] {
        assert!(!contains(&portico.output_bytes(), secret), "a connection secret is never logged");
    }
}

#[tokio::test]
async fn an_oauth_sign_in_goes_to_the_provider_and_comes_back_connected() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    // The provider is on loopback.
    let portico = Portico::start_with(&["--allow-private-backends"]);
    let callback = format!("{}/oauth/callback", portico.base);
    let options = IdpOptions { auto_approve: true, ..IdpOptions::redirecting_to(&callback) };
    let Some(idp) = Idp::try_start(&options) else { return };
    let Some(chrome) = signed_in(&portico).await else { return };

    // The connector, through the Security tab: Generic OAuth 2 at the local server.
    let id = new_connector(&chrome, &portico, "Local identity", "https://api.example.com").await;
    chrome.select("#auth", "oauth2").await;
    chrome.select("#oauth_provider", "oauth2").await;
    chrome.fill("#oauth_client_id", BASIC.id).await;
    chrome.fill("#oauth_client_secret", BASIC.secret.unwrap()).await;
    chrome.fill("#oauth_authorization_url", &idp.url("/auth")).await;
    chrome.fill("#oauth_token_url", &idp.url("/token")).await;
    chrome.fill("#oauth_scopes", "openid offline_access api:read").await;
    save_security(&chrome).await;
    assert!(chrome.text(".flash").await.contains("Security saved"), "{}", chrome.visible_text().await);

    // The dialog's button signs in at the provider; the browser comes back to the connection.
    chrome.goto(&format!("{}/connections/new?connector={id}", portico.base)).await;
    assert!(chrome.visible_text().await.contains("You will sign in at Generic OAuth 2"));
    fill_labelled(&chrome, "Connection name", "My identity").await;
    chrome.click_text("Sign in").await;
    let path = wait_for_path(&chrome, "/connections/").await;
    assert!(path.ends_with("?status=connected"), "back at the connection: {path}");
    let connection_id = id_in(&path, "/connections/");
    assert_eq!(chrome.text(".status-line .badge").await, "Connected");
    assert!(chrome.text(".flash").await.contains("Signed in"));
    assert!(chrome.visible_text().await.contains("Access token expires"));
    chrome.screenshot("05-oauth-connected").await;
    let made = connection(&portico, &connection_id).await;
    assert_eq!((made["status"].as_str(), made["displayName"].as_str()), (Some("connected"), Some("My identity")));
    assert_eq!(idp.token_calls("authorization_code").await, 1);

    // Re-authorize goes through the provider again and comes back to the same page.
    chrome.click_text("Re-authorize").await;
    let path = wait_for_path(&chrome, &format!("/connections/{connection_id}?status=")).await;
    assert!(path.ends_with("status=connected"), "{path}");
    assert_eq!(idp.token_calls("authorization_code").await, 2);
    chrome.close().await;
    assert!(!contains(&portico.output_bytes(), BASIC.secret.unwrap()), "the client secret is never logged");
}

#[tokio::test]
async fn the_connection_list_says_each_status_in_words() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let portico = Portico::start();
    let api = portico.api();
    let backend = Backend::start().await;
    let basic_body = definition(
        "ticket-desk",
        &backend,
        json!([{"name": "username", "type": "string", "label": "Login", "required": true},
               {"name": "password", "type": "securestring", "label": "Password", "required": true}]),
        json!({"kind": "basic", "username": "username", "password": "password"}),
    );
    let desk = api.create_connector(&basic_body).await;
    let desk_id = desk["id"].as_str().unwrap();
    let values = json!({"username": "agent", "password": "pw"});
    api.create_connection(&json!({"connectorId": desk_id, "displayName": "Front desk", "parameters": values})).await;
    api.create_connection(&json!({"connectorId": desk_id, "displayName": "Back office", "parameters": values})).await;
    let sign_in = json!({"definition": {
        "metadata": {"name": "crm", "displayName": "CRM"},
        "backend": {"host": "crm.example"},
        "connection": {"mode": "single", "credential": {"kind": "oauth2", "identityProvider": "oauth2",
            "authorizationUrl": "https://login.example/authorize", "tokenUrl": "https://login.example/token"}}},
        "oauthClient": {"clientId": "crm-app", "clientSecret": "crm-secret"}});
    let crm = api.create_connector(&sign_in).await;
    let crm_id = crm["id"].as_str().unwrap();
    api.create_connection(&json!({"connectorId": crm_id, "displayName": "Sales pipeline"})).await;
    let refused = api.create_connection(&json!({"connectorId": crm_id, "displayName": "Marketing"})).await;
    // The provider sends the browser back with an error: the connection is in error.
    let authorize = url::Url::parse(refused["authorizeUrl"].as_str().unwrap()).unwrap();
    let state = authorize.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let callback =
        format!("/oauth/callback?state={state}&error=access_denied&error_description=The%20user%20said%20no");
    assert_eq!(portico.client(None).get(&callback).await.status, 200);
    // The connector gains a required parameter: its connections need signing in again.
    let mut changed = basic_body.clone();
    changed["definition"]["connection"]["parameters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "region", "type": "string", "label": "Region", "required": true}));
    api.put(&format!("/v1/connectors/{desk_id}"), &changed).await.expect_json(200);
    api.create_connection(&json!({"connectorId": desk_id, "displayName": "Help line",
        "parameters": {"username": "agent", "password": "pw", "region": "eu"}}))
        .await;

    let Some(chrome) = signed_in(&portico).await else { return };
    chrome.goto(&format!("{}/connections", portico.base)).await;
    let rows = chrome
        .script(
            "return [...document.querySelectorAll('tbody tr')].map(r =>
                [r.querySelector('td a').textContent, r.querySelector('.badge').textContent])",
        )
        .await;
    let rows: Vec<(String, String)> = serde_json::from_value(rows).unwrap();
    let status = |name: &str| rows.iter().find(|(n, _)| n == name).map(|(_, s)| s.as_str()).unwrap_or("missing");
    assert_eq!(status("Front desk"), "Needs sign-in again");
    assert_eq!(status("Back office"), "Needs sign-in again");
    assert_eq!(status("Sales pipeline"), "Waiting for sign-in");
    assert_eq!(status("Marketing"), "Error");
    assert_eq!(status("Help line"), "Connected");
    let text = chrome.visible_text().await;
    assert!(text.contains("access_denied: The user said no"), "the reason of the error is shown: {text}");
    assert!(text.contains("the connector's parameters changed"), "and why a sign-in is needed again: {text}");
    chrome.screenshot("06-connections-statuses").await;

    // The connection in error offers to sign in again; deleting asks first.
    chrome.click_text("Marketing").await;
    wait_for_path(&chrome, "/connections/").await;
    assert!(chrome.exists("form[action$='/reauthorize'] button").await);
    assert_eq!(chrome.text("form[action$='/reauthorize'] button").await, "Sign in again");
    let marketing = id_in(&chrome.path().await, "/connections/");
    chrome.click_text("Delete…").await;
    assert!(chrome.text("dialog h1").await.contains("Delete “Marketing”?"));
    assert_eq!(connection(&portico, &marketing).await["status"], "error", "nothing is deleted before the confirmation");
    chrome.click_text("Delete connection").await;
    wait_for_path(&chrome, "/connections").await;
    assert!(chrome.text(".flash").await.contains("Connection deleted"));
    portico.api().get(&format!("/v1/connections/{marketing}")).await.expect_problem(404, "not-found");
    chrome.close().await;
}

#[tokio::test]
async fn validation_errors_appear_beside_their_fields() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let portico = Portico::start();
    let Some(chrome) = signed_in(&portico).await else { return };

    // The model's finding about the token URL lands beside the token URL.
    let id = new_connector(&chrome, &portico, "Identity", "https://api.example.com").await;
    chrome.select("#auth", "oauth2").await;
    chrome.select("#oauth_provider", "oauth2").await;
    chrome.fill("#oauth_authorization_url", "https://login.example.com/authorize").await;
    chrome.fill("#oauth_token_url", "login.example.com/token").await;
    chrome.fill("#oauth_client_secret", "typed-but-refused").await;
    save_security(&chrome).await;
    let error = chrome.text("#oauth_token_url-error").await;
    assert!(error.contains("is not a valid absolute URL"), "{error}");
    let beside = chrome
        .script(
            "const e = document.getElementById('oauth_token_url-error');
             const input = document.getElementById('oauth_token_url');
             return e.closest('.field').contains(input) && input.getAttribute('aria-invalid') === 'true'
                 && input.getAttribute('aria-describedby').includes('oauth_token_url-error')",
        )
        .await;
    assert_eq!(beside, json!(true), "the error is in the token URL's field and announced with it");
    assert!(chrome.exists(".error-summary a[href='#oauth_token_url']").await, "and linked from the summary");
    assert_eq!(
        chrome.find("#oauth_token_url").await.prop("value").await.unwrap().as_deref(),
        Some("login.example.com/token")
    );
    assert!(!chrome.source().await.contains("typed-but-refused"), "a refused secret is not written back");
    assert_eq!(connector(&portico, &id).await["auth"]["kind"], "none", "nothing was saved");
    chrome.screenshot("07-validation-error").await;

    // A parameter label the model requires: beside the label field.
    chrome.select("#auth", "apiKey").await;
    chrome.fill("#apikey_label", " ").await;
    chrome.fill("#apikey_name", "X-Key").await;
    save_security(&chrome).await;
    assert!(chrome.text("#apikey_label-error").await.contains("has no label"));

    // A broken file: file, line and column beside the file's field.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("apiProperties.json");
    std::fs::write(
        &broken,
        "{\n  \"properties\": {\n    \"connectionParameters\": {}\n    \"iconBrandColor\": \"#007ee5\"\n  }\n}\n",
    )
    .unwrap();
    let swagger = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/power-platform/basic-auth/apiDefinition.swagger.json");
    chrome.goto(&format!("{}/connectors/new", portico.base)).await;
    chrome.find("#api_properties").await.send_keys(broken.to_str().unwrap()).await.unwrap();
    chrome.find("#api_definition").await.send_keys(swagger.to_str().unwrap()).await.unwrap();
    chrome.click("form[action='/connectors/import'] input[value=powerPlatform] ~ div.actions button").await;
    let error = chrome.text("#api_properties-error").await;
    assert!(error.starts_with("apiProperties.json:4:5:"), "file:line:col beside the file: {error}");
    chrome.screenshot("08-import-error").await;
    chrome.close().await;
}

#[tokio::test]
async fn connectors_import_from_power_platform_and_openapi_files() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let portico = Portico::start();
    let Some(chrome) = signed_in(&portico).await else { return };
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");

    chrome.goto(&format!("{}/connectors/new", portico.base)).await;
    let folder = fixtures.join("power-platform/api-key-query");
    chrome.find("#api_properties").await.send_keys(folder.join("apiProperties.json").to_str().unwrap()).await.unwrap();
    chrome
        .find("#api_definition")
        .await
        .send_keys(folder.join("apiDefinition.swagger.json").to_str().unwrap())
        .await
        .unwrap();
    chrome.click("form[action='/connectors/import'] input[value=powerPlatform] ~ div.actions button").await;
    let path = wait_for_path(&chrome, "/connectors/").await;
    assert!(chrome.text(".flash").await.starts_with("Imported"), "{}", chrome.visible_text().await);
    let imported = connector(&portico, &id_in(&path, "/connectors/")).await;
    assert_eq!(imported["auth"]["kind"], "apiKey");
    chrome.screenshot("12-connector-imported").await;

    // The Definition tab lists the operations and the definition itself.
    chrome.click_text("Definition").await;
    wait_for_path(&chrome, "/connectors/").await;
    assert_eq!(chrome.count("table.list tbody tr").await, imported["operationCount"].as_u64().unwrap() as usize);
    assert!(chrome.text("pre.code").await.contains("\"metadata\""));

    chrome.goto(&format!("{}/connectors/new", portico.base)).await;
    chrome.find("#openapi").await.send_keys(fixtures.join("openapi/notes-3.1.json").to_str().unwrap()).await.unwrap();
    chrome.click("form[action='/connectors/import'] input[value=openapi] ~ div.actions button").await;
    let path = wait_for_path(&chrome, "/connectors/").await;
    assert!(chrome.text(".flash").await.starts_with("Imported"), "{}", chrome.visible_text().await);
    assert!(connector(&portico, &id_in(&path, "/connectors/")).await["operationCount"].as_u64().unwrap() > 0);
    chrome.close().await;
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let portico = Portico::start();
    let Some(chrome) = signed_in(&portico).await else { return };

    for tamper in ["input.remove()", "input.value = 'forged'"] {
        chrome.goto(&format!("{}/connectors/new", portico.base)).await;
        chrome
            .script(&format!(
                "const input = document.querySelector('form[action=\"/connectors/new\"] input[name=csrf]'); {tamper};"
            ))
            .await;
        chrome.fill("#display_name", "Forged").await;
        chrome.fill("#backend_url", "https://forged.example").await;
        chrome.click_text("Create and continue to Security").await;
        assert_eq!(chrome.text("h1").await, "This form was refused", "{tamper}");
        let listed = portico.api().get("/v1/connectors").await.expect_json(200);
        assert_eq!(listed["items"], json!([]), "nothing was created ({tamper})");
    }

    // Sign-out is a form too: without its token the session stays.
    chrome.goto(&format!("{}/connectors", portico.base)).await;
    chrome.script("document.querySelector('form.sign-out input[name=csrf]').remove()").await;
    chrome.click_text("Sign out").await;
    assert_eq!(chrome.text("h1").await, "This form was refused");
    chrome.goto(&format!("{}/connectors", portico.base)).await;
    assert_eq!(chrome.path().await, "/connectors", "still signed in");
    chrome.close().await;
}

#[tokio::test]
async fn the_portal_reads_well_on_a_phone() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let portico = Portico::start();
    let api = portico.api();
    let backend = Backend::start().await;
    let desk = api
        .create_connector(&definition(
            "ticket-desk",
            &backend,
            json!([{"name": "username", "type": "string", "label": "Desk login", "required": true},
                   {"name": "password", "type": "securestring", "label": "Desk password", "required": true}]),
            json!({"kind": "basic", "username": "username", "password": "password"}),
        ))
        .await;
    let desk_id = desk["id"].as_str().unwrap();
    api.create_connection(&json!({"connectorId": desk_id, "displayName": "Front desk",
        "parameters": {"username": "agent", "password": "pw"}}))
        .await;
    let Some(chrome) = signed_in(&portico).await else { return };
    chrome.resize(PHONE).await;

    chrome.goto(&format!("{}/connections", portico.base)).await;
    assert_no_sideways_scroll(&chrome).await;
    assert!(chrome.find("td .badge").await.is_displayed().await.unwrap());
    chrome.screenshot("09-phone-connections").await;

    chrome.goto(&format!("{}/connectors/{desk_id}/security", portico.base)).await;
    chrome.select("#auth", "oauth2").await;
    assert_no_sideways_scroll(&chrome).await;
    chrome.screenshot("10-phone-security").await;

    chrome.goto(&format!("{}/connections/new?connector={desk_id}", portico.base)).await;
    assert_no_sideways_scroll(&chrome).await;
    chrome.screenshot("11-phone-new-connection").await;
    for page in [
        "/connectors",
        "/connectors/new",
        &format!("/connectors/{desk_id}"),
        &format!("/connectors/{desk_id}/definition"),
    ] {
        chrome.goto(&format!("{}{page}", portico.base)).await;
        assert_no_sideways_scroll(&chrome).await;
        assert_inputs_labelled(&chrome).await;
    }
    chrome.close().await;
}

#[tokio::test]
async fn keyboard_focus_is_visible_and_starts_with_a_skip_link() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let portico = Portico::start();
    let Some(chrome) = signed_in(&portico).await else { return };
    chrome.goto(&format!("{}/connectors/new", portico.base)).await;
    chrome.find("body").await.send_keys(&Key::Tab.to_string()).await.unwrap();
    let focused = chrome.client.active_element().await.unwrap();
    assert_eq!(focused.text().await.unwrap(), "Skip to content");
    // Tab on to the first field; its focus ring is drawn.
    let mut steps = 0;
    loop {
        let active = chrome.client.active_element().await.unwrap();
        if active.attr("id").await.unwrap().as_deref() == Some("display_name") {
            let outline = active.css_value("outline-style").await.unwrap();
            assert_ne!(outline, "none", "a visible focus ring");
            break;
        }
        active.send_keys(&Key::Tab.to_string()).await.unwrap();
        steps += 1;
        assert!(steps < 20, "the first field is reachable with Tab");
    }
    chrome.close().await;
}

#[tokio::test]
async fn another_tenants_connector_is_not_found() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let portico = Portico::start();
    let backend = Backend::start().await;
    let theirs =
        portico.api().create_connector(&definition("ticket-desk", &backend, json!([]), json!({"kind": "none"}))).await;
    let acme = portico.tenant_key("create", "acme");
    let Some(chrome) = Chrome::try_start().await else { return };
    sign_in(&chrome, &portico, &acme).await;
    assert!(chrome.exists("div.empty").await, "acme has no connectors");
    let id = theirs["id"].as_str().unwrap();
    for page in
        [format!("/connectors/{id}"), format!("/connectors/{id}/security"), format!("/connections/new?connector={id}")]
    {
        chrome.goto(&format!("{}{page}", portico.base)).await;
        assert_eq!(chrome.text("h1").await, "Not found", "{page}");
    }
    chrome.close().await;
}

/// The value of the hidden field `name` in a page.
fn hidden_field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).unwrap_or_else(|| panic!("a hidden field {name} in {page}")) + marker.len();
    page[start..].split('"').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn signing_in_never_sends_the_browser_to_another_site() {
    let portico = Portico::start();
    let portal = url::Url::parse(&portico.base).unwrap();
    for next in [
        "/\t/evil.example/",
        "/\n/evil.example/",
        "/\r\n/evil.example/",
        "\t//evil.example/",
        "/\\evil.example/",
        "/\\/evil.example/",
        "//evil.example/",
        " //evil.example/",
        "https://evil.example/",
        "/%09/evil.example/",
    ] {
        let http =
            common::client_builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut sign_in = portal.join("/sign-in").unwrap();
        sign_in.query_pairs_mut().append_pair("next", next);
        let page = http.get(sign_in).send().await.unwrap();
        let page = page.text().await.unwrap();
        let form =
            [("csrf", hidden_field(&page, "csrf")), ("next", next.to_owned()), ("api_key", portico.admin_key.clone())];
        let posted = http.post(format!("{}/sign-in", portico.base)).form(&form).send().await.unwrap();
        assert_eq!(posted.status(), 303, "{next:?}");
        let location = posted.headers()["location"].to_str().unwrap();
        // Where a browser goes: the Location read by the URL rules browsers follow.
        let landed = portal.join(location).unwrap();
        assert_eq!(landed.origin(), portal.origin(), "{next:?} sent the browser to {location}");
    }
}
