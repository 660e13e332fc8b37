//! People and access in the portal, in a real headless Chromium (Debian's, over WebDriver)
//! against a real OpenID provider (oidc-provider, `tests/idp`): members sign in with OpenID
//! Connect through the provider's own login and consent pages, see what their role and their
//! address let them see, and are refused clearly when no tenant has let them in; admins manage
//! API keys and members; owners share connections; a removed member's session ends.
//!
//! Portico must know the provider's issuer when it starts and the provider Portico's callback:
//! Portico's port is chosen first. Each test saves screenshots into `docs/screenshots/` (13
//! onwards, after those of `portal.rs`); the README shows them.

#[path = "portal/browser.rs"]
mod browser;
mod common;

use browser::{Chrome, PHONE};
use common::idp::{BASIC, Idp, IdpOptions};
use common::{Portico, contains};
use serde_json::{Value, json};

/// Browsers open at once, across the tests: the machine has two cores. A test holds one
/// permit per browser it opens.
static BROWSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// What the sign-in button calls the provider.
const PROVIDER: &str = "Example ID";

/// A Portico whose portal signs people in at a fresh provider, and the provider; `None` when
/// Node or the provider's packages are missing (see [`Idp::try_start`]).
fn start_with_provider() -> Option<(Portico, Idp)> {
    let port = portico_testkit::spare_port();
    let callback = format!("http://127.0.0.1:{port}/sign-in/oidc/callback");
    let idp = Idp::try_start(&IdpOptions::redirecting_to(&callback))?;
    let listen = format!("127.0.0.1:{port}");
    let portico = Portico::start_with(&[
        "--listen",
        &listen,
        "--oidc-issuer",
        idp.issuer(),
        "--oidc-client-id",
        BASIC.id,
        "--oidc-client-secret",
        BASIC.secret.expect("a client secret"),
        "--oidc-name",
        PROVIDER,
    ]);
    assert_eq!(portico.base, format!("http://{listen}"));
    Some((portico, idp))
}

/// `portico tenant member TENANT --email EMAIL --role ROLE`: the member's id.
fn add_member(portico: &Portico, tenant: &str, email: &str, role: &str) -> String {
    let output = portico.tenant_command(&["member", tenant, "--email", email, "--role", role]);
    assert!(output.status.success(), "tenant member: {}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    printed["member"].as_str().expect("a member id").to_owned()
}

/// `portico tenant key default --role ROLE [--end-user END_USER]`: the key.
fn key_for(portico: &Portico, role: &str, end_user: Option<&str>) -> String {
    let mut args = vec!["key", "default", "--role", role];
    if let Some(end_user) = end_user {
        args.extend(["--end-user", end_user]);
    }
    let output = portico.tenant_command(&args);
    assert!(output.status.success(), "tenant key: {}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    printed["api_key"].as_str().expect("a key").to_owned()
}

/// A connector without authentication: its connections need nothing and call nothing here.
async fn desk_connector(portico: &Portico) -> String {
    let body = json!({"definition": {
        "metadata": {"name": "help-desk", "displayName": "Help desk"},
        "backend": {"host": "desk.example"},
        "connection": {"mode": "single", "parameters": [], "credential": {"kind": "none"}}}});
    portico.api().create_connector(&body).await["id"].as_str().expect("an id").to_owned()
}

/// A connection the admin key makes, for `end_user` (the tenant's own without one).
async fn connection_for(portico: &Portico, connector: &str, name: &str, end_user: Option<&str>) -> String {
    let mut body = json!({"connectorId": connector, "displayName": name});
    if let Some(end_user) = end_user {
        body["endUserId"] = json!(end_user);
    }
    portico.api().create_connection(&body).await["id"].as_str().expect("an id").to_owned()
}

async fn sign_in_with_key(chrome: &Chrome, portico: &Portico, key: &str) {
    chrome.goto(&format!("{}/sign-in", portico.base)).await;
    chrome.fill("#api_key", key).await;
    chrome.click("form[action='/sign-in'] button[type=submit]").await;
}

/// From the sign-in page through the provider's own login and consent pages (as far as the
/// provider shows them) and back to Portico.
async fn sign_in_at_provider(chrome: &Chrome, portico: &Portico, login: &str) {
    chrome.goto(&format!("{}/sign-in", portico.base)).await;
    chrome.click_text(&format!("Sign in with {PROVIDER}")).await;
    for _ in 0..5 {
        let url = chrome.client.current_url().await.expect("a URL");
        if url.as_str().starts_with(&portico.base) {
            return;
        }
        if chrome.exists("input[name=login]").await {
            chrome.fill("input[name=login]", login).await;
            chrome.fill("input[name=password]", "any-password").await;
        }
        chrome.click("button[type=submit]").await;
    }
    panic!("the provider did not send the browser back: {}", chrome.visible_text().await);
}

/// The path of the page shown (a click waits for the page it leads to), under `prefix`.
async fn path_under(chrome: &Chrome, prefix: &str) -> String {
    let path = chrome.path().await;
    assert!(path.starts_with(prefix), "the browser is at {path}, not {prefix}…\n{}", chrome.visible_text().await);
    path
}

/// `/connections/ID?x` → `ID`.
fn last_segment(path: &str) -> String {
    path.rsplit('/').next().unwrap_or_default().split(['?', '#']).next().unwrap_or_default().to_owned()
}

/// The texts of the elements matching `css`.
async fn texts(chrome: &Chrome, css: &str) -> Vec<String> {
    let script = format!("return [...document.querySelectorAll({css:?})].map(e => e.textContent.trim())");
    serde_json::from_value(chrome.script(&script).await).expect("a list of texts")
}

/// The status of a form POST to `path` of `fields` and the page's CSRF token, sent by the page
/// itself (a redirect is status 0).
async fn post_status(chrome: &Chrome, path: &str, fields: &[(&str, &str)]) -> u64 {
    let fields: serde_json::Map<String, Value> = fields.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    let script = format!(
        "const fields = {};
         fields.csrf = document.querySelector('input[name=csrf]').value;
         return fetch({path:?}, {{method: 'POST', redirect: 'manual',
             headers: {{'Content-Type': 'application/x-www-form-urlencoded'}},
             body: new URLSearchParams(fields)}}).then(r => r.status)",
        Value::Object(fields)
    );
    chrome.script(&script).await.as_u64().expect("a status")
}

/// Every visible input and select has a label (its `labels`, or an `aria-label`), and nothing
/// is wider than the window.
async fn assert_usable(chrome: &Chrome) {
    let path = chrome.path().await;
    let found = chrome
        .script(
            "const shown = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => e.getClientRects().length > 0);
             const wide = [...document.querySelectorAll('body *')]
                 .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth);
             return {unlabelled: shown.filter(e => e.labels.length === 0 && !e.ariaLabel).map(e => e.outerHTML),
                     wide: wide.map(e => e.tagName + '.' + e.className)}",
        )
        .await;
    assert_eq!(found["unlabelled"], json!([]), "inputs without a label on {path}");
    assert_eq!(found["wide"], json!([]), "{path} scrolls sideways");
}

#[tokio::test]
async fn a_member_signs_in_with_openid_connect_and_works_as_their_address() {
    let _slots = BROWSERS.acquire_many(2).await.expect("browser slots");
    let Some((portico, _idp)) = start_with_provider() else { return };
    add_member(&portico, "default", "alice@example.test", "user");
    let desk = desk_connector(&portico).await;
    connection_for(&portico, &desk, "Bob's desk", Some("bob@example.test")).await;
    connection_for(&portico, &desk, "Front office", None).await;
    let Some(alice) = Chrome::try_start().await else { return };

    // A page of the portal leads to the sign-in page, which offers the provider first.
    alice.goto(&format!("{}/connections", portico.base)).await;
    assert_eq!(alice.path().await, "/sign-in?next=%2Fconnections");
    let button = alice.find("a.button.primary[href^='/sign-in/oidc']").await;
    assert_eq!(button.text().await.unwrap(), format!("Sign in with {PROVIDER}"));
    assert_eq!(button.attr("href").await.unwrap().as_deref(), Some("/sign-in/oidc?next=%2Fconnections"));
    assert!(alice.exists("#api_key").await, "the API key form stays beside it");
    alice.screenshot("13-sign-in-with-provider").await;

    // Through the provider's real login and consent pages, back to the page asked for.
    alice.click_text(&format!("Sign in with {PROVIDER}")).await;
    assert!(alice.exists("input[name=login]").await, "the provider's login page: {}", alice.visible_text().await);
    let flow = alice.client.get_named_cookie("portico_oidc").await;
    assert!(flow.is_err(), "the flow cookie is for /sign-in only, not sent to the provider's pages");
    alice.fill("input[name=login]", "alice").await;
    alice.fill("input[name=password]", "any-password").await;
    alice.click("button[type=submit]").await;
    assert!(alice.visible_text().await.contains("Authorize"), "the consent page: {}", alice.visible_text().await);
    alice.click("button[type=submit]").await;
    assert_eq!(path_under(&alice, "/connections").await, "/connections");
    assert_eq!(alice.text(".who-name").await, "alice@example.test");
    assert_eq!(alice.text(".role-badge").await, "user");
    assert_eq!(texts(&alice, ".main-nav a").await, ["Connectors", "Connections"], "no keys or members for a user");

    // The session is an opaque HttpOnly cookie; the flow's cookie is gone.
    let cookies = alice.client.get_all_cookies().await.expect("cookies");
    let session = cookies.iter().find(|c| c.name() == "portico_session").expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert!(cookies.iter().all(|c| c.name() != "portico_oidc"), "{cookies:?}");

    // Only their own connections: neither another end user's nor the tenant's.
    assert!(alice.exists("div.empty").await, "{}", alice.visible_text().await);
    alice.click_text("New connection").await;
    alice.click_text("Continue").await;
    alice.fill("#display_name", "Alice's desk").await;
    alice.click_text("Create connection").await;
    let mine = last_segment(&path_under(&alice, "/connections/").await);
    assert!(alice.text(".flash").await.contains("Connection created"));
    assert!(alice.visible_text().await.contains("alice@example.test"), "the owner is shown");
    assert!(alice.exists("#sharing").await, "its owner may share it");
    alice.goto(&format!("{}/connections", portico.base)).await;
    assert_eq!(texts(&alice, "tbody td[data-label=Name] a").await, ["Alice's desk"]);
    assert!(!alice.exists("td[data-label=Owner]").await, "a user sees no owner column");

    // The admin sees it under her address, in the portal and through the API.
    let listed = portico.api().get("/v1/connections?endUserId=alice@example.test").await.expect_json(200);
    let ids: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [mine.as_str()]);
    let Some(admin) = Chrome::try_start().await else { return };
    sign_in_with_key(&admin, &portico, &portico.admin_key).await;
    admin.goto(&format!("{}/connections", portico.base)).await;
    let rows = admin
        .script(
            "return [...document.querySelectorAll('tbody tr')].map(r =>
                [r.querySelector('td[data-label=Name] a').textContent, r.querySelector('td[data-label=Owner]').textContent.trim()])",
        )
        .await;
    let mut rows: Vec<(String, String)> = serde_json::from_value(rows).unwrap();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("Alice's desk".to_owned(), "alice@example.test".to_owned()),
            ("Bob's desk".to_owned(), "bob@example.test".to_owned()),
            ("Front office".to_owned(), "Tenant".to_owned()),
        ]
    );
    admin.screenshot("20-connections-with-owners").await;
    admin.fill("#owner", "alice@example.test").await;
    admin.click_text("Filter").await;
    assert_eq!(admin.path().await, "/connections?owner=alice%40example.test");
    assert_eq!(texts(&admin, "tbody td[data-label=Name] a").await, ["Alice's desk"]);
    assert!(admin.text(".lead").await.contains("Connections of alice@example.test"));
    alice.close().await;
    admin.close().await;
    let output = portico.output_bytes();
    assert!(!contains(&output, BASIC.secret.unwrap()), "the client secret is never logged");
}

#[tokio::test]
async fn someone_no_tenant_let_in_is_refused_with_a_clear_page() {
    let Some((portico, _idp)) = start_with_provider() else { return };
    let http = common::idp::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let callback = format!("{}/sign-in/oidc/callback", portico.base);

    // The flow: a cookie for /sign-in naming what the server keeps, never the state itself.
    let started = http.get(format!("{}/sign-in/oidc?next=/connections", portico.base)).send().await.unwrap();
    assert_eq!(started.status(), 303);
    let authorize = started.headers()["location"].to_str().unwrap().to_owned();
    let set_cookie = started.headers()["set-cookie"].to_str().unwrap().to_owned();
    let flow = set_cookie.split(';').next().unwrap().strip_prefix("portico_oidc=").expect("the flow cookie").to_owned();
    for attribute in ["Path=/sign-in", "HttpOnly", "SameSite=Lax", "Max-Age=600"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let state = url::Url::parse(&authorize).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    assert_ne!(flow, state);
    let redirect = common::idp::sign_in(&authorize, "mallory", &callback).await;

    // Without the flow's cookie: nothing to finish, a page that says so (not a 500).
    let without = http.get(&redirect).send().await.unwrap();
    assert_eq!(without.status(), 400);
    assert!(without.text().await.unwrap().contains("This sign-in cannot be finished"));

    // A new flow, finished by a person no tenant has let in: 403, naming the address.
    let started = http.get(format!("{}/sign-in/oidc", portico.base)).send().await.unwrap();
    let authorize = started.headers()["location"].to_str().unwrap().to_owned();
    let cookie = started.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let redirect = common::idp::sign_in(&authorize, "mallory", &callback).await;
    let refused = http.get(&redirect).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let cleared =
        refused.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert!(cleared.iter().all(|c| !c.starts_with("portico_session=")), "no session: {cleared:?}");
    assert!(cleared.iter().any(|c| c.starts_with("portico_oidc=;") && c.contains("Max-Age=0")), "{cleared:?}");
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("mallory@example.test is not a member of any tenant here; ask an administrator to add you."),
        "{page}"
    );
    assert!(page.contains("href=\"/sign-in\""), "a way back to sign in with a key");
    // The same callback again: the flow is used.
    let again = http.get(&redirect).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(again.status(), 400);

    // A refusal at the provider: said in words, 403.
    let started = http.get(format!("{}/sign-in/oidc", portico.base)).send().await.unwrap();
    let cookie = started.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let authorize = url::Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    let state = authorize.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let denied = format!(
        "{callback}?error=access_denied&error_description=The+person+said+no&state={state}&iss={}",
        url::form_urlencoded::byte_serialize(_idp.issuer().as_bytes()).collect::<String>()
    );
    let refused = http.get(&denied).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("access_denied: The person said no"));

    // In a browser: the page a person sees.
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let Some(chrome) = Chrome::try_start().await else { return };
    sign_in_at_provider(&chrome, &portico, "mallory").await;
    assert_eq!(chrome.text("h1").await, "Not a member");
    assert!(chrome.visible_text().await.contains("mallory@example.test is not a member of any tenant here"));
    assert!(chrome.exists("a[href='/sign-in']").await);
    chrome.screenshot("14-not-a-member").await;
    chrome.goto(&format!("{}/connectors", portico.base)).await;
    assert!(chrome.path().await.starts_with("/sign-in"), "not signed in");
    chrome.close().await;
    let output = portico.output_bytes();
    let code = url::Url::parse(&redirect).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    assert!(!contains(&output, &code), "the code is never logged");
    assert!(!contains(&output, &state), "nor the state");
}

#[tokio::test]
async fn a_member_of_several_tenants_chooses_one() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let Some((portico, _idp)) = start_with_provider() else { return };
    let acme_key = portico.tenant_key("create", "acme");
    add_member(&portico, "default", "alice@example.test", "user");
    add_member(&portico, "acme", "alice@example.test", "admin");
    let acme = portico.client(Some(&acme_key));
    let body = json!({"definition": {"metadata": {"name": "anvils", "displayName": "Anvils"},
        "backend": {"host": "anvils.example"}, "connection": {"mode": "single", "credential": {"kind": "none"}}}});
    acme.create_connector(&body).await;
    let Some(chrome) = Chrome::try_start().await else { return };

    sign_in_at_provider(&chrome, &portico, "alice").await;
    assert_eq!(chrome.path().await, "/sign-in/oidc/tenant");
    assert_eq!(texts(&chrome, "ul.choices .strong").await, ["acme", "default"]);
    assert!(chrome.visible_text().await.contains("alice@example.test"));
    chrome.screenshot("15-choose-a-tenant").await;

    // The choice is a form paired with the flow: a forged token is refused, and the flow is spent.
    chrome.script("document.querySelector('form.tenant-choice input[name=csrf]').value = 'forged'").await;
    chrome.click("ul.choices li:first-child button").await;
    assert_eq!(chrome.text("h1").await, "This form was refused");
    chrome.goto(&format!("{}/sign-in/oidc/tenant", portico.base)).await;
    assert_eq!(chrome.text("h1").await, "This sign-in cannot be finished");

    // Again (the provider remembers her: no pages there), and acme it is.
    sign_in_at_provider(&chrome, &portico, "alice").await;
    chrome.click_text("acme as admin").await;
    path_under(&chrome, "/connectors").await;
    assert_eq!(chrome.text(".role-badge").await, "admin");
    assert_eq!(texts(&chrome, "tbody td[data-label=Name] a").await, ["Anvils"], "acme's connectors");
    assert!(texts(&chrome, ".main-nav a").await.contains(&"Members".to_owned()));
    chrome.close().await;
}

#[tokio::test]
async fn admins_add_members_change_their_role_and_remove_them() {
    let _slots = BROWSERS.acquire_many(2).await.expect("browser slots");
    let Some((portico, _idp)) = start_with_provider() else { return };
    let desk = desk_connector(&portico).await;
    let Some(admin) = Chrome::try_start().await else { return };
    sign_in_with_key(&admin, &portico, &portico.admin_key).await;
    assert_eq!(admin.text(".who-name").await, "API key");
    assert_eq!(texts(&admin, ".main-nav a").await, ["Connectors", "Connections", "API keys", "Members"]);

    // Added through the Members page; a mistake is said beside its field.
    admin.click_text("Members").await;
    assert!(admin.visible_text().await.contains(&format!("With {PROVIDER}")), "how members sign in");
    admin.fill("#email", "carol").await;
    admin.click_text("Add member").await;
    assert!(admin.text("#email-error").await.contains("not an e-mail address"), "{}", admin.visible_text().await);
    admin.fill("#email", "Carol@Example.test").await;
    admin.select("#role", "user").await;
    admin.click_text("Add member").await;
    assert!(admin.text(".flash").await.contains("carol@example.test is a member, as user"));
    admin.fill("#email", "carol@example.test").await;
    admin.click_text("Add member").await;
    assert!(admin.text("#email-error").await.contains("already"), "a second time: {}", admin.visible_text().await);
    let members = portico.api().get("/v1/members").await.expect_json(200);
    let carol = members["items"].as_array().unwrap().iter().find(|m| m["email"] == "carol@example.test").unwrap();
    let carol_id = carol["id"].as_str().unwrap().to_owned();
    assert_eq!(carol["role"], "user");
    admin.goto(&format!("{}/members", portico.base)).await;
    let row = admin.find(&format!("select#role-{carol_id}")).await;
    assert_eq!(row.prop("value").await.unwrap().as_deref(), Some("user"));
    assert_eq!(texts(&admin, "td[data-label='Added by']").await, ["API key “admin”"]);
    admin.screenshot("18-members").await;

    // Carol signs in: a user.
    let Some(carol) = Chrome::try_start().await else { return };
    sign_in_at_provider(&carol, &portico, "carol").await;
    assert_eq!(carol.text(".role-badge").await, "user");
    carol.goto(&format!("{}/connections", portico.base)).await;
    assert!(carol.exists("a[href='/connections/new']").await, "a user creates connections");

    // Her role changes: her next page shows it.
    admin.select(&format!("select#role-{carol_id}"), "author").await;
    admin.click(&format!("form[action='/members/{carol_id}/role'] button")).await;
    assert!(admin.text(".flash").await.contains("carol@example.test is now an author"));
    assert_eq!(portico.api().get(&format!("/v1/members/{carol_id}")).await.expect_json(200)["role"], "author");
    carol.goto(&format!("{}/connections", portico.base)).await;
    assert_eq!(carol.text(".role-badge").await, "author");
    assert!(!carol.exists("a[href='/connections/new']").await, "an author creates none");
    carol.goto(&format!("{}/connectors/{desk}", portico.base)).await;
    assert!(carol.exists(&format!("form[action='/connectors/{desk}']")).await, "an author edits connectors");

    // Removed (after a confirmation): her open session ends at her next page.
    admin.click(&format!("a[href='/members/{carol_id}/remove']")).await;
    assert!(admin.text("dialog h1").await.contains("Remove carol@example.test?"));
    admin.click_text("Remove member").await;
    assert!(admin.text(".flash").await.contains("carol@example.test is no longer a member"));
    carol.goto(&format!("{}/connections", portico.base)).await;
    assert!(carol.path().await.starts_with("/sign-in"), "signed out: {}", carol.path().await);
    // And she cannot sign in again.
    sign_in_at_provider(&carol, &portico, "carol").await;
    assert_eq!(carol.text("h1").await, "Not a member");
    admin.close().await;
    carol.close().await;
}

#[tokio::test]
async fn admins_make_a_key_that_is_shown_once_and_revoke_it() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let portico = Portico::start();
    let desk = desk_connector(&portico).await;
    let bobs = connection_for(&portico, &desk, "Bob's desk", Some("bob@example.test")).await;
    connection_for(&portico, &desk, "Bob's other desk", Some("bob@example.test")).await;
    let Some(chrome) = Chrome::try_start().await else { return };
    sign_in_with_key(&chrome, &portico, &portico.admin_key).await;

    chrome.click_text("API keys").await;
    assert_eq!(chrome.count("tbody tr").await, 1);
    assert_eq!(texts(&chrome, "tbody td[data-label=Name] .strong").await, ["admin"]);
    assert!(chrome.exists("tbody .tag").await, "the key of this session is marked");
    chrome.click_text("New key").await;
    assert!(chrome.exists("dialog[open]").await, "a dialog");
    assert_usable(&chrome).await;

    // A user key needs its end user: said beside the field.
    chrome.fill("#name", "Billing").await;
    chrome.select("#role", "user").await;
    chrome.click_text("Create key").await;
    assert!(
        chrome.text("#end_user-error").await.contains("required for a user key"),
        "{}",
        chrome.visible_text().await
    );
    assert_eq!(chrome.find("#name").await.prop("value").await.unwrap().as_deref(), Some("Billing"));

    // Narrowed to one of its end user's connections, expiring next year.
    chrome.fill("#end_user", "bob@example.test").await;
    let ticked = format!("input[name=connections][value='{bobs}']");
    chrome.find(&ticked).await.click().await.unwrap();
    let next_year = chrome.script("return new Date().getUTCFullYear() + 1").await.as_u64().expect("a year");
    chrome.script(&format!("document.getElementById('expires').value = '{next_year}-06-30'")).await;
    chrome.click_text("Create key").await;
    assert_eq!(chrome.text("h1").await, "API key created");
    let key = chrome.find("#new_key").await.prop("value").await.unwrap().expect("the key");
    assert!(key.starts_with("pk_"), "{key}");
    assert!(chrome.text(".notice-warn").await.contains("it will not be shown again"));
    assert!(chrome.find("button[data-copy=new_key]").await.is_displayed().await.unwrap(), "a copy button");
    chrome.screenshot("16-api-key-created").await;

    // It works, as bob, for that connection only.
    let listed = portico.client(Some(&key)).get("/v1/connections").await.expect_json(200);
    let ids: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [bobs.as_str()]);

    // Listed without the key.
    chrome.click_text("Done").await;
    assert!(!chrome.source().await.contains(&key), "the key is not shown again");
    let row = chrome
        .script(
            "const row = [...document.querySelectorAll('tbody tr')].find(r => r.textContent.includes('Billing'));
             return [...row.querySelectorAll('td')].map(td => td.textContent.trim())",
        )
        .await;
    let row: Vec<String> = serde_json::from_value(row).unwrap();
    assert_eq!(&row[1..4], ["user", "bob@example.test", "Narrowed to 1 connection"]);
    assert_eq!(row[5], "API key “admin”");
    assert!(row[6].starts_with(&format!("{next_year}-07-01 00:00")), "{row:?}");
    chrome.screenshot("17-api-keys").await;

    // Revoked after a confirmation: 401 from then on.
    let keys = portico.api().get("/v1/api-keys").await.expect_json(200);
    let id = keys["items"].as_array().unwrap().iter().find(|k| k["name"] == "Billing").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    chrome.click(&format!("a[href='/keys/{id}/revoke']")).await;
    assert!(chrome.text("dialog h1").await.contains("Revoke “Billing”?"));
    portico.client(Some(&key)).get("/v1/connections").await.expect_json(200);
    chrome.click_text("Revoke key").await;
    assert!(chrome.text(".flash").await.contains("The key “Billing” is revoked"));
    portico.client(Some(&key)).get("/v1/connections").await.expect_problem(401, "unauthorized");
    assert!(!chrome.exists(&format!("a[href='/keys/{id}/revoke']")).await, "no longer listed");
    chrome.close().await;
    assert!(!contains(&portico.output_bytes(), &key), "the key is never logged");
}

#[tokio::test]
async fn owners_share_a_connection_and_take_it_back() {
    let _slots = BROWSERS.acquire_many(2).await.expect("browser slots");
    let portico = Portico::start();
    let desk = desk_connector(&portico).await;
    let alice_key = key_for(&portico, "user", Some("alice@example.test"));
    let bob_key = key_for(&portico, "user", Some("bob@example.test"));
    let Some(alice) = Chrome::try_start().await else { return };
    let Some(bob) = Chrome::try_start().await else { return };
    sign_in_with_key(&alice, &portico, &alice_key).await;
    sign_in_with_key(&bob, &portico, &bob_key).await;

    alice.goto(&format!("{}/connections/new?connector={desk}", portico.base)).await;
    alice.fill("#display_name", "Team desk").await;
    alice.click_text("Create connection").await;
    let id = last_segment(&path_under(&alice, "/connections/").await);
    assert!(alice.text("#sharing").await.contains("Not shared with anyone"));

    // Shared with bob, who can use it.
    alice.fill("#end_user", "bob@example.test").await;
    alice.select("#permission", "use").await;
    alice.click_text("Share").await;
    assert!(alice.text(".flash").await.contains("Shared with bob@example.test: they can use."));
    assert_eq!(texts(&alice, "#sharing td[data-label='End user']").await, ["bob@example.test"]);
    alice.screenshot("19-sharing").await;
    let shares = portico.api().get(&format!("/v1/connections/{id}/shares")).await.expect_json(200);
    assert_eq!(
        (shares["items"][0]["endUserId"].as_str(), shares["items"][0]["permission"].as_str()),
        (Some("bob@example.test"), Some("use"))
    );

    // A share for its owner is refused beside the field.
    alice.fill("#end_user", "alice@example.test").await;
    alice.click_text("Share").await;
    assert!(alice.text("#end_user-error").await.contains("Owns this connection"), "{}", alice.visible_text().await);

    // Bob sees it in his list, may use it, and may neither delete nor share it.
    bob.goto(&format!("{}/connections", portico.base)).await;
    assert_eq!(texts(&bob, "tbody td[data-label=Name] a").await, ["Team desk"]);
    assert!(bob.text("tbody td[data-label=Name]").await.contains("Shared by alice@example.test"));
    bob.click_text("Team desk").await;
    assert!(bob.exists("form[action$='/test'] button").await, "he may test it");
    assert!(!bob.exists("a[href$='/delete']").await, "not delete it");
    assert!(!bob.exists("#sharing").await, "nor see or change its shares");
    assert_eq!(post_status(&bob, &format!("/connections/{id}/delete"), &[]).await, 403, "a hand-made delete");

    // Can edit, then no longer shared: gone from his list.
    alice.goto(&format!("{}/connections/{id}", portico.base)).await;
    alice.select("#share-permission-0", "edit").await;
    alice.click("#sharing form.inline-form button").await;
    assert!(alice.text(".flash").await.contains("bob@example.test now can edit"));
    let shares = portico.api().get(&format!("/v1/connections/{id}/shares")).await.expect_json(200);
    assert_eq!(shares["items"][0]["permission"], "edit");
    alice.click("form[action$='/shares/remove'] button").await;
    assert!(alice.text(".flash").await.contains("No longer shared with bob@example.test"));
    assert!(alice.text("#sharing").await.contains("Not shared with anyone"));
    bob.goto(&format!("{}/connections", portico.base)).await;
    assert!(bob.exists("div.empty").await, "{}", bob.visible_text().await);
    bob.goto(&format!("{}/connections/{id}", portico.base)).await;
    assert_eq!(bob.text("h1").await, "Not found");
    alice.close().await;
    bob.close().await;
}

#[tokio::test]
async fn each_role_is_offered_only_what_it_may_do_and_the_server_refuses_the_rest() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let portico = Portico::start();
    let desk = desk_connector(&portico).await;
    let theirs = connection_for(&portico, &desk, "Shared desk", Some("ann@example.test")).await;
    let author_key = key_for(&portico, "author", None);
    let user_key = key_for(&portico, "user", Some("ann@example.test"));
    let Some(chrome) = Chrome::try_start().await else { return };

    // An author: connectors yes, connection actions no.
    sign_in_with_key(&chrome, &portico, &author_key).await;
    assert_eq!(chrome.text(".role-badge").await, "author");
    assert!(chrome.exists("a[href='/connectors/new']").await);
    chrome.goto(&format!("{}/connections", portico.base)).await;
    assert!(!chrome.exists("a[href^='/connections/new']").await, "no New connection");
    assert!(chrome.exists("td[data-label=Owner]").await, "an author sees whose each is");
    chrome.goto(&format!("{}/connections/{theirs}", portico.base)).await;
    for action in ["form[action$='/test']", "form[action$='/reauthorize']", "a[href$='/delete']", "#sharing"] {
        assert!(!chrome.exists(action).await, "an author is not offered {action}");
    }
    assert!(
        chrome.visible_text().await.contains("Your role (author) sees this connection but does not use or change it")
    );
    chrome.goto(&format!("{}/connectors/{desk}", portico.base)).await;
    assert!(!chrome.exists("a[href^='/connections/new']").await);
    assert_eq!(post_status(&chrome, &format!("/connections/{theirs}/test"), &[]).await, 403);
    assert_eq!(
        post_status(&chrome, "/connections/new", &[("connector", &desk), ("display_name", "Forged")]).await,
        403
    );
    chrome.goto(&format!("{}/keys", portico.base)).await;
    assert_eq!(chrome.text("h1").await, "Not allowed");
    chrome.click_text("Sign out").await;

    // A user: connectors to read, none to change.
    sign_in_with_key(&chrome, &portico, &user_key).await;
    assert!(!chrome.exists("a[href='/connectors/new']").await, "no New connector");
    chrome.goto(&format!("{}/connectors/{desk}", portico.base)).await;
    assert!(!chrome.exists(&format!("form[action='/connectors/{desk}']")).await, "no edit form");
    assert!(!chrome.exists("a[href$='/delete']").await, "no delete");
    assert!(chrome.exists("a[href^='/connections/new']").await, "but a new connection");
    chrome.goto(&format!("{}/connectors/{desk}/security", portico.base)).await;
    assert!(!chrome.exists(".security-form").await, "no Security form to save");
    assert!(chrome.visible_text().await.contains("No authentication"));
    chrome.goto(&format!("{}/connectors/new", portico.base)).await;
    assert_eq!(chrome.text("h1").await, "Not allowed");

    // A hand-made delete of the connector, with a valid token: the 403 page, nothing deleted.
    chrome.goto(&format!("{}/connectors/{desk}", portico.base)).await;
    assert_eq!(post_status(&chrome, &format!("/connectors/{desk}/delete"), &[]).await, 403);
    let security = [("auth", "none")];
    assert_eq!(post_status(&chrome, &format!("/connectors/{desk}/security"), &security).await, 403);
    let scratch = [("display_name", "Forged"), ("backend_url", "https://forged.example")];
    assert_eq!(post_status(&chrome, "/connectors/new", &scratch).await, 403);
    let listed = portico.api().get("/v1/connectors").await.expect_json(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "nothing was created");
    chrome
        .script(&format!(
            "const form = document.createElement('form');
             form.method = 'post'; form.action = '/connectors/{desk}/delete'; form.id = 'forged';
             const csrf = document.querySelector('input[name=csrf]').cloneNode();
             const button = document.createElement('button'); button.type = 'submit'; button.textContent = 'Delete';
             form.append(csrf, button); document.body.append(form);"
        ))
        .await;
    chrome.click("#forged button").await;
    assert_eq!(chrome.text("h1").await, "Not allowed");
    assert!(chrome.visible_text().await.contains("admin or author role"), "{}", chrome.visible_text().await);
    portico.api().get(&format!("/v1/connectors/{desk}")).await.expect_json(200);
    chrome.close().await;
}

#[tokio::test]
async fn the_new_pages_are_labelled_and_fit_a_phone() {
    let _slot = BROWSERS.acquire().await.expect("a browser slot");
    let Some((portico, _idp)) = start_with_provider() else { return };
    let desk = desk_connector(&portico).await;
    let member = add_member(&portico, "default", "alice.with.a.long.address@example.test", "user");
    let id = connection_for(&portico, &desk, "Alice's desk", Some("alice.with.a.long.address@example.test")).await;
    let share = json!({"permission": "edit"});
    portico.api().put(&format!("/v1/connections/{id}/shares/bob@example.test"), &share).await.expect_json(200);
    let Some(chrome) = Chrome::try_start().await else { return };
    chrome.resize(PHONE).await;

    chrome.goto(&format!("{}/sign-in", portico.base)).await;
    assert_usable(&chrome).await;
    sign_in_with_key(&chrome, &portico, &portico.admin_key).await;
    for page in [
        "/connections".to_owned(),
        format!("/connections/{id}"),
        "/keys".to_owned(),
        "/keys/new".to_owned(),
        "/members".to_owned(),
        format!("/members/{member}/remove"),
    ] {
        chrome.goto(&format!("{}{page}", portico.base)).await;
        assert_eq!(chrome.path().await, page);
        assert_usable(&chrome).await;
        assert!(chrome.find(".who-name").await.is_displayed().await.unwrap(), "who is signed in shows on {page}");
    }
    chrome.goto(&format!("{}/connections/{id}#sharing", portico.base)).await;
    chrome.screenshot("21-phone-sharing").await;

    // A member with a long address: who is signed in still fits.
    chrome.click_text("Sign out").await;
    sign_in_at_provider(&chrome, &portico, "alice.with.a.long.address").await;
    assert_eq!(chrome.text(".who-name").await, "alice.with.a.long.address@example.test");
    for page in ["/connections".to_owned(), format!("/connections/{id}"), format!("/connectors/{desk}/security")] {
        chrome.goto(&format!("{}{page}", portico.base)).await;
        assert_usable(&chrome).await;
    }
    chrome.goto(&format!("{}/connections", portico.base)).await;
    chrome.screenshot("22-phone-member-connections").await;
    chrome.close().await;
}
