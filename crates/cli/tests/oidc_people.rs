//! Signing people in with OpenID Connect (`portico-oidc`) against a real OpenID provider
//! (oidc-provider, `tests/idp`, see `common::idp`): discovery, the authorization URL, the
//! provider's own login and consent forms in a cookie-keeping browser, the callback, and each
//! way a callback or an ID token must be refused.
//!
//! The browser stops at the redirect to the callback (nothing listens there) and the test
//! hands its query to `RelyingParty::finish`, as the portal's callback handler will. Without
//! Node or `tests/idp/node_modules` the tests that need the provider are skipped loudly,
//! except under `CI=true`, where they fail.

mod common;

use common::idp::{BASIC, Browser, Idp, IdpOptions, client_builder};
use portico_oidc::{CallbackParams, IdTokenProblem, OidcError, Pending, Person, RelyingParty, Settings};
use portico_secrets::SecretString;
use url::Url;

/// Never contacted: the browser stops at the redirect, where the portal's callback would take
/// over.
const REDIRECT_URI: &str = "http://127.0.0.1:9/oidc/callback";

/// A client as the portal passes in: no redirects followed, a timeout.
fn http() -> reqwest::Client {
    client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("an HTTP client")
}

/// The portal's settings for the IdP's `basic-client` (`client_secret_basic`).
fn settings(issuer: &str) -> Settings {
    Settings::new(
        Url::parse(issuer).expect("an issuer URL"),
        BASIC.id,
        BASIC.secret.map(SecretString::from),
        Url::parse(REDIRECT_URI).expect("a redirect URI"),
    )
}

async fn relying_party(idp: &Idp) -> RelyingParty {
    RelyingParty::discover(settings(idp.issuer()), http()).await.expect("discovery at the IdP")
}

fn start_idp() -> Option<Idp> {
    Idp::try_start(&IdpOptions::redirecting_to(REDIRECT_URI))
}

/// The query of the redirect to the callback, as the portal's handler receives it.
struct Callback {
    pairs: Vec<(String, String)>,
}

impl Callback {
    fn of(redirect: &str) -> Callback {
        let url = Url::parse(redirect).unwrap_or_else(|e| panic!("{redirect}: {e}"));
        assert!(redirect.starts_with(REDIRECT_URI), "{redirect}");
        Callback { pairs: url.query_pairs().into_owned().collect() }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn params(&self) -> CallbackParams<'_> {
        CallbackParams {
            code: self.get("code"),
            state: self.get("state"),
            iss: self.get("iss"),
            error: self.get("error"),
            error_description: self.get("error_description"),
        }
    }
}

/// A new sign-in, through the IdP's login and consent forms as `login` in a fresh browser.
async fn sign_in(rp: &RelyingParty, login: &str) -> (Pending, Callback) {
    let (url, pending) = rp.start();
    let redirect = Browser::new().sign_in(url.as_str(), login, REDIRECT_URI).await;
    (pending, Callback::of(&redirect))
}

/// `url` with its parameter `name` set to `value`, or removed when `value` is `None`.
fn with_param(url: &Url, name: &str, value: Option<&str>) -> Url {
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().filter(|(key, _)| key != name).collect();
    let mut changed = url.clone();
    changed.query_pairs_mut().clear().extend_pairs(&pairs);
    if let Some(value) = value {
        changed.query_pairs_mut().append_pair(name, value);
    }
    changed
}

fn param(url: &Url, name: &str) -> String {
    url.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned()).expect(name)
}

#[tokio::test]
async fn people_sign_in_through_the_providers_own_forms() {
    let Some(idp) = start_idp() else { return };
    let rp = relying_party(&idp).await;
    assert_eq!(rp.issuer(), idp.issuer());

    for login in ["alice", "bob"] {
        let (pending, callback) = sign_in(&rp, login).await;
        assert_eq!(callback.get("iss"), Some(idp.issuer()), "RFC 9207: the IdP names itself");
        let person = rp.finish(pending, callback.params()).await.unwrap_or_else(|e| panic!("{login}: {e}"));
        let mut name = login.to_owned();
        name[..1].make_ascii_uppercase();
        assert_eq!(
            person,
            Person {
                issuer: idp.issuer().to_owned(),
                subject: login.to_owned(),
                email: Some(format!("{login}@example.test")),
                email_verified: Some(true),
                name: Some(name),
            }
        );
    }
    let exchanges = idp.log_events("TOKEN").await;
    assert_eq!(exchanges.len(), 2, "{exchanges:?}");
    for exchange in &exchanges {
        assert_eq!(
            (exchange["grant"].as_str(), exchange["client"].as_str(), exchange["auth"].as_str()),
            ("authorization_code", BASIC.id, "client_secret_basic")
        );
        assert_eq!(exchange["status"], "200");
    }
}

#[tokio::test]
async fn a_wrong_state_is_refused_before_the_code_is_spent() {
    let Some(idp) = start_idp() else { return };
    let rp = relying_party(&idp).await;
    let (pending, callback) = sign_in(&rp, "alice").await;

    let forged = CallbackParams { state: Some("forged-state"), ..callback.params() };
    assert_eq!(rp.finish(pending.clone(), forged).await.unwrap_err(), OidcError::StateMismatch);
    let without = CallbackParams { state: None, ..callback.params() };
    assert_eq!(rp.finish(pending.clone(), without).await.unwrap_err(), OidcError::StateMismatch);
    assert_eq!(idp.token_calls("authorization_code").await, 0, "the code was not sent anywhere");

    // The code is still good: only the state was wrong.
    let person = rp.finish(pending, callback.params()).await.expect("the real callback");
    assert_eq!(person.subject, "alice");
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let Some(idp) = start_idp() else { return };
    let rp = relying_party(&idp).await;
    let (pending, callback) = sign_in(&rp, "alice").await;
    let replay = pending.clone();
    rp.finish(pending, callback.params()).await.expect("the first use of the code");

    let refused = rp.finish(replay, callback.params()).await.unwrap_err();
    let OidcError::TokenExchange(reason) = &refused else { panic!("{refused:?}") };
    assert!(reason.starts_with("invalid_grant"), "{reason}");
    let code = callback.get("code").expect("a code");
    let shown = format!("{refused} {refused:?}");
    assert!(!shown.contains(code), "the code is not repeated: {shown}");
    assert!(!shown.contains(BASIC.secret.expect("a secret")), "{shown}");

    let statuses: Vec<String> = idp.log_events("TOKEN").await.iter().map(|e| e["status"].clone()).collect();
    assert_eq!(statuses, ["200", "400"]);
}

#[tokio::test]
async fn a_callback_naming_another_issuer_is_refused() {
    let Some(idp) = start_idp() else { return };
    let rp = relying_party(&idp).await;
    let (pending, callback) = sign_in(&rp, "alice").await;
    let impostor = format!("http://127.0.0.1:{}", portico_testkit::spare_port());

    let mix_up = CallbackParams { iss: Some(&impostor), ..callback.params() };
    assert_eq!(
        rp.finish(pending.clone(), mix_up).await.unwrap_err(),
        OidcError::IssuerMismatch { expected: idp.issuer().to_owned(), found: Some(impostor.clone()) }
    );
    // The IdP announces `authorization_response_iss_parameter_supported`: no `iss`, no sign-in.
    let stripped = CallbackParams { iss: None, ..callback.params() };
    assert_eq!(
        rp.finish(pending, stripped).await.unwrap_err(),
        OidcError::IssuerMismatch { expected: idp.issuer().to_owned(), found: None }
    );
    assert_eq!(idp.token_calls("authorization_code").await, 0);
}

#[tokio::test]
async fn an_id_token_for_another_sign_in_is_refused() {
    let Some(idp) = start_idp() else { return };
    let rp = relying_party(&idp).await;
    let (first_url, _first) = rp.start();
    let (second_url, second) = rp.start();

    // The second sign-in's URL carrying the first one's nonce: its code and state are the
    // second's, its ID token the first's.
    let crossed = with_param(&second_url, "nonce", Some(&param(&first_url, "nonce")));
    let redirect = Browser::new().sign_in(crossed.as_str(), "alice", REDIRECT_URI).await;
    let refused = rp.finish(second, Callback::of(&redirect).params()).await.unwrap_err();
    assert_eq!(refused, OidcError::InvalidIdToken(IdTokenProblem::Nonce));

    // And with no nonce at all.
    let (url, pending) = rp.start();
    let without = with_param(&url, "nonce", None);
    let redirect = Browser::new().sign_in(without.as_str(), "alice", REDIRECT_URI).await;
    let refused = rp.finish(pending, Callback::of(&redirect).params()).await.unwrap_err();
    assert_eq!(refused, OidcError::InvalidIdToken(IdTokenProblem::Nonce));

    // Both codes were exchanged (the ID token comes from the exchange) and both refused after.
    assert_eq!(idp.token_calls("authorization_code").await, 2);
}

#[tokio::test]
async fn a_refusal_at_the_provider_is_reported() {
    let options = IdpOptions { auto_approve: true, ..IdpOptions::redirecting_to(REDIRECT_URI) };
    let Some(idp) = Idp::try_start(&options) else { return };
    let rp = relying_party(&idp).await;
    let (url, pending) = rp.start();
    // AUTO_APPROVE: `login_hint=deny` makes the person refuse.
    let denied = with_param(&url, "login_hint", Some("deny"));
    let redirect = Browser::new().sign_in(denied.as_str(), "-", REDIRECT_URI).await;

    let refused = rp.finish(pending, Callback::of(&redirect).params()).await.unwrap_err();
    let OidcError::ProviderRefused { error, description } = &refused else { panic!("{refused:?}") };
    assert_eq!(error, "access_denied");
    assert!(description.as_deref().is_some_and(|d| d.contains("login_hint=deny")), "{description:?}");
    assert!(refused.to_string().contains("access_denied"), "{refused}");
    assert_eq!(idp.token_calls("authorization_code").await, 0);

    // The same IdP signs in whoever does not refuse.
    let (url, pending) = rp.start();
    let carol = with_param(&url, "login_hint", Some("carol"));
    let redirect = Browser::new().sign_in(carol.as_str(), "-", REDIRECT_URI).await;
    let person = rp.finish(pending, Callback::of(&redirect).params()).await.expect("carol signs in");
    assert_eq!(person.email.as_deref(), Some("carol@example.test"));
}

#[tokio::test]
async fn discovery_at_an_unreachable_issuer_fails() {
    let issuer = format!("http://127.0.0.1:{}", portico_testkit::spare_port());
    let refused = RelyingParty::discover(settings(&issuer), http()).await.unwrap_err();
    let OidcError::Discovery { url, reason } = &refused else { panic!("{refused:?}") };
    assert_eq!(url, &format!("{issuer}/.well-known/openid-configuration"));
    assert_eq!(reason, "cannot connect");
    assert!(!refused.to_string().contains(BASIC.secret.expect("a secret")), "{refused}");
}

#[tokio::test]
async fn discovery_under_another_name_of_the_issuer_fails() {
    let Some(idp) = start_idp() else { return };
    // The same server as `localhost`: its document names it 127.0.0.1, the configured issuer
    // is not the provider's.
    let port = Url::parse(idp.issuer()).expect("a URL").port().expect("a port");
    let alias = format!("http://localhost:{port}");
    let refused = RelyingParty::discover(settings(&alias), http()).await.unwrap_err();
    assert_eq!(refused, OidcError::IssuerMismatch { expected: alias, found: Some(idp.issuer().to_owned()) });
}
