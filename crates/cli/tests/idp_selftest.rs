//! The authorization server of the OAuth tests (`tests/idp`, oidc-provider) does what those
//! tests rely on, checked without Portico: sign-in through the real forms, code + PKCE, each
//! client authentication and only the registered one, rotation, expiry, and the test hooks.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::distinctive;
use common::idp::{
    BASIC, Browser, CC, Idp, IdpClient, IdpOptions, ODD, POST, PUBLIC, basic_authorization, client_builder, form,
    sign_in,
};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

/// Never contacted: the browser stops at the redirect, as Portico's callback would take over.
const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/callback";

fn http() -> reqwest::Client {
    client_builder().build().expect("an HTTP client")
}

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.2).
fn pkce() -> (String, String) {
    let verifier = format!("{}{}", distinctive("v"), distinctive("w"));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// `/auth?...` for `client` with a PKCE challenge and `state`, plus `extra` parameters.
fn authorize_url(idp: &Idp, client: IdpClient, challenge: &str, state: &str, extra: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&idp.url("/auth")).expect("a URL");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid offline_access profile email api:read")
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    url.into()
}

/// A query parameter of `url`.
fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url).expect("a URL").query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// How a request to the token endpoint authenticates the client.
#[derive(Clone, Copy)]
enum Auth {
    /// The client's registered method.
    Registered(IdpClient),
    /// `client_secret_post`, whatever the client registered.
    Post(IdpClient),
    /// `client_secret_basic` (form-encoded as it must be), whatever the client registered.
    Basic(IdpClient),
    /// `Authorization: Basic` with the id and secret not form-encoded (a common client bug).
    RawBasic(IdpClient),
}

/// `POST <issuer><path>` with the client authentication and `pairs`: the status and the JSON.
async fn post(idp: &Idp, path: &str, auth: Auth, pairs: &[(&str, &str)]) -> (u16, Value) {
    let mut pairs = pairs.to_vec();
    let mut request = http().post(idp.url(path)).header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    let auth = match auth {
        Auth::Registered(client) if client.auth_method == "client_secret_post" => Auth::Post(client),
        Auth::Registered(client) if client.auth_method == "client_secret_basic" => Auth::Basic(client),
        other => other,
    };
    match auth {
        Auth::Registered(client) => pairs.push(("client_id", client.id)),
        Auth::Post(client) => {
            pairs.push(("client_id", client.id));
            pairs.push(("client_secret", client.secret.expect("a secret")));
        }
        Auth::Basic(client) => {
            request = request.header(AUTHORIZATION, basic_authorization(client.id, client.secret.expect("a secret")));
        }
        Auth::RawBasic(client) => {
            let raw = format!("{}:{}", client.id, client.secret.expect("a secret"));
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
            request = request.header(AUTHORIZATION, format!("Basic {encoded}"));
        }
    }
    let response = request.body(form(&pairs)).send().await.expect("the IdP answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("a JSON body") };
    (status, body)
}

/// Signs in through the real forms as alice with `client` and exchanges the code: the tokens.
async fn code_flow(idp: &Idp, client: IdpClient) -> Value {
    let (verifier, challenge) = pkce();
    let state = distinctive("state-");
    let redirect = sign_in(&authorize_url(idp, client, &challenge, &state, &[]), "alice", REDIRECT_URI).await;
    assert_eq!(param(&redirect, "state").as_deref(), Some(state.as_str()), "{redirect}");
    assert_eq!(param(&redirect, "iss").as_deref(), Some(idp.issuer()), "{redirect}");
    let code = param(&redirect, "code").unwrap_or_else(|| panic!("a code in {redirect}"));
    let (status, tokens) = post(
        idp,
        "/token",
        Auth::Registered(client),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "code exchange for {}: {tokens}", client.id);
    tokens
}

async fn refresh(idp: &Idp, client: IdpClient, refresh_token: &str) -> (u16, Value) {
    post(idp, "/token", Auth::Registered(client), &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
        .await
}

async fn userinfo(idp: &Idp, access_token: &str) -> (u16, Value) {
    let response = http().get(idp.url("/me")).bearer_auth(access_token).send().await.expect("the IdP answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn string(value: &Value, name: &str) -> String {
    value[name].as_str().unwrap_or_else(|| panic!("{name} in {value}")).to_owned()
}

#[tokio::test]
async fn the_discovery_document_names_every_endpoint() {
    let Some(idp) = Idp::try_start(&IdpOptions::redirecting_to(REDIRECT_URI)) else { return };
    let response = http().get(idp.discovery_url()).send().await.expect("the IdP answers");
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.expect("JSON");
    assert_eq!(document["issuer"], idp.issuer());
    for (name, path) in [
        ("authorization_endpoint", "/auth"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/me"),
        ("introspection_endpoint", "/token/introspection"),
        ("revocation_endpoint", "/token/revocation"),
        ("jwks_uri", "/jwks"),
    ] {
        assert_eq!(document[name], idp.url(path), "{name}");
    }
    assert_eq!(document["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    let grants = document["grant_types_supported"].as_array().expect("grant types");
    for grant in ["authorization_code", "refresh_token", "client_credentials"] {
        assert!(grants.iter().any(|g| g == grant), "{grant} in {grants:?}");
    }
    assert!(idp.issuer().starts_with("http://127.0.0.1:"), "loopback: {}", idp.issuer());
}

#[tokio::test]
async fn client_credentials_give_an_access_token_the_resource_accepts() {
    let Some(idp) = Idp::try_start(&IdpOptions::default()) else { return };
    let (status, tokens) =
        post(&idp, "/token", Auth::Registered(CC), &[("grant_type", "client_credentials"), ("scope", "api:read")])
            .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 5);
    assert_eq!(tokens["scope"], "api:read");
    assert!(tokens.get("refresh_token").is_none(), "no refresh token for client credentials: {tokens}");

    let access_token = string(&tokens, "access_token");
    let response =
        http().get(idp.url("/__test/resource/anything")).bearer_auth(&access_token).send().await.expect("answers");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["client_id"], CC.id);
    let response = http().get(idp.url("/__test/resource")).bearer_auth("not-a-token").send().await.expect("answers");
    assert_eq!(response.status(), 401);

    assert_eq!(idp.token_calls("client_credentials").await, 1);
    assert_eq!(idp.token_calls("authorization_code").await, 0);
}

#[tokio::test]
async fn concurrent_token_calls_are_counted_exactly() {
    let Some(idp) = Idp::try_start(&IdpOptions::default()) else { return };
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let request = http()
            .post(idp.url("/token"))
            .header(AUTHORIZATION, basic_authorization(CC.id, CC.secret.expect("a secret")))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&[("grant_type", "client_credentials")]));
        calls.spawn(async move { request.send().await.expect("the IdP answers").status().as_u16() });
    }
    while let Some(status) = calls.join_next().await {
        assert_eq!(status.expect("a call"), 200);
    }
    assert_eq!(idp.token_calls("client_credentials").await, 100);
    assert_eq!(idp.stats().await["token"]["client_credentials"], 100);
}

#[tokio::test]
async fn code_with_pkce_through_the_real_forms_then_refresh_rotates() {
    let Some(idp) = Idp::try_start(&IdpOptions::redirecting_to(REDIRECT_URI)) else { return };
    let tokens = code_flow(&idp, BASIC).await;
    assert_eq!(tokens["expires_in"], 5);
    assert!(tokens["id_token"].is_string(), "{tokens}");
    let first_refresh = string(&tokens, "refresh_token");

    let (status, me) = userinfo(&idp, &string(&tokens, "access_token")).await;
    assert_eq!((status, &me["sub"]), (200, &Value::from("alice")), "{me}");

    let (status, rotated) = refresh(&idp, BASIC, &first_refresh).await;
    assert_eq!(status, 200, "{rotated}");
    let second_refresh = string(&rotated, "refresh_token");
    assert_ne!(second_refresh, first_refresh, "the refresh token rotates");
    assert_ne!(rotated["access_token"], tokens["access_token"]);
    let (status, me) = userinfo(&idp, &string(&rotated, "access_token")).await;
    assert_eq!((status, &me["sub"]), (200, &Value::from("alice")), "{me}");

    // The rotated-out token is dead, and presenting it revokes the whole grant (reuse detection).
    let (status, reused) = refresh(&idp, BASIC, &first_refresh).await;
    assert_eq!((status, &reused["error"]), (400, &Value::from("invalid_grant")), "{reused}");
    let (status, after_reuse) = refresh(&idp, BASIC, &second_refresh).await;
    assert_eq!((status, &after_reuse["error"]), (400, &Value::from("invalid_grant")), "{after_reuse}");

    assert_eq!(idp.token_calls("refresh_token").await, 3);
    assert_eq!(idp.token_calls("authorization_code").await, 1);
    let refreshes = idp.log_events("TOKEN").await;
    let statuses: Vec<&str> =
        refreshes.iter().filter(|e| e["grant"] == "refresh_token").map(|e| e["status"].as_str()).collect();
    assert_eq!(statuses, ["200", "400", "400"]);
    assert!(refreshes.iter().all(|e| e["client"] == BASIC.id && e["auth"] == "client_secret_basic"), "{refreshes:?}");
}

#[tokio::test]
async fn every_client_authentication_signs_in() {
    let Some(idp) = Idp::try_start(&IdpOptions::redirecting_to(REDIRECT_URI)) else { return };
    for client in [POST, PUBLIC] {
        let tokens = code_flow(&idp, client).await;
        let (status, rotated) = refresh(&idp, client, &string(&tokens, "refresh_token")).await;
        assert_eq!(status, 200, "{}: {rotated}", client.id);
    }
    let events = idp.log_events("TOKEN").await;
    let methods: Vec<(&str, &str)> = events.iter().map(|e| (e["client"].as_str(), e["auth"].as_str())).collect();
    assert_eq!(
        methods,
        [
            ("post-client", "client_secret_post"),
            ("post-client", "client_secret_post"),
            ("public-client", "none"),
            ("public-client", "none"),
        ]
    );
}

#[tokio::test]
async fn a_secret_with_odd_characters_works_only_form_encoded() {
    let Some(idp) = Idp::try_start(&IdpOptions::redirecting_to(REDIRECT_URI)) else { return };
    let (verifier, challenge) = pkce();
    let redirect = sign_in(&authorize_url(&idp, ODD, &challenge, "s", &[]), "bob", REDIRECT_URI).await;
    let code = param(&redirect, "code").expect("a code");
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];

    // `p+ss/w%rd:x y` sent as is: the server form-decodes it and refuses (the code survives).
    let (status, refused) = post(&idp, "/token", Auth::RawBasic(ODD), &exchange).await;
    assert!(status == 400 || status == 401, "{status} {refused}");
    let (status, tokens) = post(&idp, "/token", Auth::Registered(ODD), &exchange).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, me) = userinfo(&idp, &string(&tokens, "access_token")).await;
    assert_eq!((status, &me["sub"]), (200, &Value::from("bob")), "{me}");
}

#[tokio::test]
async fn only_the_registered_client_authentication_is_accepted() {
    let Some(idp) = Idp::try_start(&IdpOptions::default()) else { return };
    let cc = [("grant_type", "client_credentials")];
    let (status, body) = post(&idp, "/token", Auth::Post(BASIC), &cc).await;
    assert_eq!((status, &body["error"]), (401, &Value::from("invalid_client")), "{body}");
    let (status, body) = post(&idp, "/token", Auth::Basic(POST), &cc).await;
    assert_eq!((status, &body["error"]), (401, &Value::from("invalid_client")), "{body}");
    let wrong = IdpClient { secret: Some("wrong"), ..BASIC };
    let (status, body) = post(&idp, "/token", Auth::Basic(wrong), &cc).await;
    assert_eq!((status, &body["error"]), (401, &Value::from("invalid_client")), "{body}");
    for client in [BASIC, POST] {
        let (status, body) = post(&idp, "/token", Auth::Registered(client), &cc).await;
        assert_eq!(status, 200, "{}: {body}", client.id);
    }
    let statuses: Vec<String> = idp.log_events("TOKEN").await.iter().map(|e| e["status"].clone()).collect();
    assert_eq!(statuses, ["401", "401", "401", "200", "200"]);
}

#[tokio::test]
async fn injected_failures_and_delays_then_recovery() {
    let Some(idp) = Idp::try_start(&IdpOptions::default()) else { return };
    let cc = [("grant_type", "client_credentials")];
    idp.fail_next(1, 503, Duration::ZERO).await;
    let (status, body) = post(&idp, "/token", Auth::Registered(CC), &cc).await;
    assert_eq!((status, &body["error"]), (503, &Value::from("temporarily_unavailable")), "{body}");
    let (status, body) = post(&idp, "/token", Auth::Registered(CC), &cc).await;
    assert_eq!(status, 200, "{body}");

    idp.fail_next_with(1, 400, "invalid_grant").await;
    let (status, body) = post(&idp, "/token", Auth::Registered(CC), &cc).await;
    assert_eq!((status, &body["error"]), (400, &Value::from("invalid_grant")), "{body}");

    idp.delay_next(1, Duration::from_millis(700)).await;
    let started = Instant::now();
    let (status, body) = post(&idp, "/token", Auth::Registered(CC), &cc).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(700), "delayed: {:?}", started.elapsed());

    assert_eq!(idp.token_calls("client_credentials").await, 4);
    let statuses: Vec<String> = idp.log_events("TOKEN").await.iter().map(|e| e["status"].clone()).collect();
    assert_eq!(statuses, ["503", "200", "400", "200"]);
}

#[tokio::test]
async fn short_access_tokens_expire_as_introspection_shows() {
    let options = IdpOptions {
        access_token_ttl: Duration::from_secs(2),
        auto_approve: true,
        ..IdpOptions::redirecting_to(REDIRECT_URI)
    };
    let Some(idp) = Idp::try_start(&options) else { return };
    // AUTO_APPROVE: no form; the cookie-keeping browser goes from /auth to the redirect URI.
    let (verifier, challenge) = pkce();
    let redirect = Browser::new().sign_in(&authorize_url(&idp, BASIC, &challenge, "s", &[]), "-", REDIRECT_URI).await;
    let code = param(&redirect, "code").unwrap_or_else(|| panic!("a code in {redirect}"));
    let (status, tokens) = post(
        &idp,
        "/token",
        Auth::Registered(BASIC),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!((status, &tokens["expires_in"]), (200, &Value::from(2)), "{tokens}");
    let access_token = string(&tokens, "access_token");

    let introspect = [("token", access_token.as_str())];
    let (status, active) = post(&idp, "/token/introspection", Auth::Registered(BASIC), &introspect).await;
    assert_eq!((status, &active["active"]), (200, &Value::Bool(true)), "{active}");
    assert_eq!(active["sub"], "alice", "auto-approve signs in as alice: {active}");
    assert_eq!(userinfo(&idp, &access_token).await.0, 200);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, expired) = post(&idp, "/token/introspection", Auth::Registered(BASIC), &introspect).await;
    assert_eq!((status, &expired["active"]), (200, &Value::Bool(false)), "{expired}");
    assert_eq!(userinfo(&idp, &access_token).await.0, 401);
    let (status, refreshed) = refresh(&idp, BASIC, &string(&tokens, "refresh_token")).await;
    assert_eq!(status, 200, "the refresh token outlives the access token: {refreshed}");
    assert_eq!(idp.log_events("INTROSPECT").await.len(), 2);
}

#[tokio::test]
async fn forgotten_grants_make_refresh_fail_with_invalid_grant() {
    let Some(idp) = Idp::try_start(&IdpOptions::redirecting_to(REDIRECT_URI)) else { return };
    let tokens = code_flow(&idp, BASIC).await;
    assert_eq!(idp.revoke_grants().await, 1);
    let (status, body) = refresh(&idp, BASIC, &string(&tokens, "refresh_token")).await;
    assert_eq!((status, &body["error"]), (400, &Value::from("invalid_grant")), "{body}");
    assert_eq!(userinfo(&idp, &string(&tokens, "access_token")).await.0, 401);
}

#[tokio::test]
async fn refusing_sends_access_denied() {
    let Some(idp) = Idp::try_start(&IdpOptions::redirecting_to(REDIRECT_URI)) else { return };
    let (_, challenge) = pkce();
    let redirect = Browser::new().refuse(&authorize_url(&idp, BASIC, &challenge, "s1", &[]), REDIRECT_URI).await;
    assert_eq!(param(&redirect, "error").as_deref(), Some("access_denied"), "{redirect}");
    assert_eq!(param(&redirect, "state").as_deref(), Some("s1"));

    let options = IdpOptions { auto_approve: true, ..IdpOptions::redirecting_to(REDIRECT_URI) };
    let Some(auto) = Idp::try_start(&options) else { return };
    let url = authorize_url(&auto, BASIC, &challenge, "s2", &[("login_hint", "deny")]);
    let redirect = Browser::new().sign_in(&url, "-", REDIRECT_URI).await;
    assert_eq!(param(&redirect, "error").as_deref(), Some("access_denied"), "{redirect}");
}

#[tokio::test]
async fn pkce_is_required_and_checked() {
    let Some(idp) = Idp::try_start(&IdpOptions::redirecting_to(REDIRECT_URI)) else { return };
    let mut url = Url::parse(&idp.url("/auth")).expect("a URL");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", BASIC.id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid")
        .append_pair("state", "s");
    let redirect = sign_in(url.as_str(), "alice", REDIRECT_URI).await;
    assert_eq!(param(&redirect, "error").as_deref(), Some("invalid_request"), "{redirect}");

    let (_, challenge) = pkce();
    let (other_verifier, _) = pkce();
    let redirect = sign_in(&authorize_url(&idp, BASIC, &challenge, "s", &[]), "alice", REDIRECT_URI).await;
    let code = param(&redirect, "code").expect("a code");
    let (status, body) = post(
        &idp,
        "/token",
        Auth::Registered(BASIC),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &other_verifier),
        ],
    )
    .await;
    assert_eq!((status, &body["error"]), (400, &Value::from("invalid_grant")), "{body}");
}
