//! The relying party against a scripted provider (`crate::test_provider`): what the real IdP
//! of the integration tests cannot be made to do (rotate keys, lie about the subject or the
//! issuer, announce other methods), and the exact requests sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::test_provider::{Reply, Request, ScriptedProvider, SigningKey, http, now};

const CLIENT_ID: &str = "portal";
/// Needs RFC 6749 §2.3.1's form-encoding inside HTTP Basic.
const CLIENT_SECRET: &str = "s3cr+t/x y";
const REDIRECT_URI: &str = "https://portal.example/oidc/callback";
const ACCESS_TOKEN: &str = "access-token-of-alice";

/// What the scripted provider says; tests change it between calls.
struct Script {
    /// Merged into the discovery document; `null` removes a field.
    document: Value,
    /// The JWKS answered at each read, in order; the last one again after that.
    key_sets: Vec<JwkSet>,
    signer: SigningKey,
    /// The ID token's claims; `iss` and `aud` are filled in unless given.
    claims: Value,
    /// Answered by the token endpoint in place of tokens.
    token_reply: Option<(u16, Value)>,
    userinfo: Value,
}

struct Fake {
    provider: ScriptedProvider,
    script: Arc<Mutex<Script>>,
}

impl Fake {
    async fn start() -> Fake {
        let signer = SigningKey::new("k1", 1);
        let script = Arc::new(Mutex::new(Script {
            document: json!({}),
            key_sets: vec![signer.key_set()],
            signer,
            claims: json!({"sub": "alice", "name": "Alice"}),
            token_reply: None,
            userinfo: json!({"sub": "alice", "email": "alice@example.test", "email_verified": true}),
        }));
        let provider = ScriptedProvider::start({
            let script = script.clone();
            let jwks_reads = Mutex::new(0usize);
            move |base, request| answer(base, request, &mut script.lock().unwrap(), &jwks_reads)
        })
        .await;
        Fake { provider, script }
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }

    fn settings(&self) -> Settings {
        Settings::new(
            Url::parse(&self.provider.base).unwrap(),
            CLIENT_ID,
            Some(SecretString::from(CLIENT_SECRET)),
            Url::parse(REDIRECT_URI).unwrap(),
        )
    }

    async fn relying_party(&self) -> RelyingParty {
        RelyingParty::discover(self.settings(), http()).await.expect("discovery")
    }

    /// Starts a sign-in and has the provider put its nonce in the next ID token: the callback
    /// the browser would bring back.
    fn sign_in(&self, rp: &RelyingParty) -> (Pending, String) {
        let (_, pending) = rp.start();
        self.script().claims["nonce"] = json!(pending.nonce.expose());
        let state = pending.state.expose().to_owned();
        (pending, state)
    }

    fn requests_to(&self, path: &str) -> Vec<Request> {
        self.provider.requests_to(path)
    }
}

fn answer(base: &str, request: &Request, script: &mut Script, jwks_reads: &Mutex<usize>) -> Reply {
    match (request.method.as_str(), request.path()) {
        ("GET", "/.well-known/openid-configuration") => {
            let mut document = json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/auth?tenant=t1"),
                "token_endpoint": format!("{base}/token"),
                "userinfo_endpoint": format!("{base}/me"),
                "jwks_uri": format!("{base}/jwks"),
                "id_token_signing_alg_values_supported": ["EdDSA"],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": true,
            });
            for (name, value) in script.document.as_object().unwrap() {
                match value {
                    Value::Null => document.as_object_mut().unwrap().remove(name),
                    value => document.as_object_mut().unwrap().insert(name.clone(), value.clone()),
                };
            }
            Reply::json(200, &document)
        }
        ("GET", "/jwks") => {
            let mut reads = jwks_reads.lock().unwrap();
            let set = &script.key_sets[(*reads).min(script.key_sets.len() - 1)];
            *reads += 1;
            Reply::json(200, &serde_json::to_value(set).unwrap())
        }
        ("POST", "/token") => {
            if let Some((status, body)) = &script.token_reply {
                return Reply::json(*status, body);
            }
            let mut claims = json!({"iss": base, "aud": CLIENT_ID, "iat": now(), "exp": now() + 300});
            for (name, value) in script.claims.as_object().unwrap() {
                claims[name] = value.clone();
            }
            let id_token = script.signer.sign(&claims);
            Reply::json(200, &json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "id_token": id_token}))
        }
        ("GET", "/me") => Reply::json(200, &script.userinfo),
        _ => Reply::json(404, &json!({"error": "not_found"})),
    }
}

fn callback<'a>(state: &'a str, base: &'a str) -> CallbackParams<'a> {
    CallbackParams { code: Some("the-code-1"), state: Some(state), iss: Some(base), ..CallbackParams::default() }
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

#[tokio::test]
async fn a_sign_in_gives_the_person_with_the_email_from_userinfo() {
    let fake = Fake::start().await;
    let rp = fake.relying_party().await;
    let (url, pending) = rp.start();
    fake.script().claims["nonce"] = json!(pending.nonce.expose());
    let state = query(&url, "state").unwrap();
    let challenge = query(&url, "code_challenge").unwrap();
    let verifier = pending.verifier.expose().to_owned();

    let person = rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap();
    assert_eq!(
        person,
        Person {
            issuer: fake.provider.base.clone(),
            subject: "alice".into(),
            email: Some("alice@example.test".into()),
            email_verified: Some(true),
            name: Some("Alice".into()),
        }
    );

    let exchange = &fake.requests_to("/token")[0];
    assert_eq!(exchange.form_value("grant_type").as_deref(), Some("authorization_code"));
    assert_eq!(exchange.form_value("code").as_deref(), Some("the-code-1"));
    assert_eq!(exchange.form_value("redirect_uri").as_deref(), Some(REDIRECT_URI));
    assert_eq!(exchange.form_value("code_verifier").as_deref(), Some(verifier.as_str()));
    assert_eq!(Pkce::challenge_of(&verifier), challenge, "the verifier of the challenge sent");
    let basic = base64::engine::general_purpose::STANDARD.encode("portal:s3cr%2Bt%2Fx+y");
    assert_eq!(exchange.header("authorization"), Some(format!("Basic {basic}").as_str()));
    assert_eq!(exchange.form_value("client_secret"), None);

    let userinfo = fake.requests_to("/me");
    assert_eq!(userinfo.len(), 1);
    assert_eq!(userinfo[0].header("authorization"), Some(format!("Bearer {ACCESS_TOKEN}").as_str()));
}

#[tokio::test]
async fn the_email_of_the_id_token_needs_no_userinfo() {
    let fake = Fake::start().await;
    let rp = fake.relying_party().await;
    fake.script().claims["email"] = json!("alice@id.example");
    fake.script().claims["email_verified"] = json!(false);
    let (pending, state) = fake.sign_in(&rp);
    let person = rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap();
    assert_eq!((person.email.as_deref(), person.email_verified), (Some("alice@id.example"), Some(false)));
    assert!(fake.requests_to("/me").is_empty());
}

#[tokio::test]
async fn userinfo_about_another_subject_is_refused() {
    let fake = Fake::start().await;
    let rp = fake.relying_party().await;
    fake.script().userinfo = json!({"sub": "mallory", "email": "mallory@example.test"});
    let (pending, state) = fake.sign_in(&rp);
    let refused = rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap_err();
    assert!(matches!(refused, OidcError::Userinfo(_)), "{refused:?}");
    assert!(refused.to_string().contains("another person"), "{refused}");
}

#[tokio::test]
async fn a_rotated_key_is_found_by_reading_the_keys_again() {
    let fake = Fake::start().await;
    let rotated = SigningKey::new("k2", 2);
    {
        let mut script = fake.script();
        let both = JwkSet { keys: [script.signer.key_set().keys, rotated.key_set().keys].concat() };
        script.key_sets.push(both);
    }
    let rp = fake.relying_party().await;
    assert_eq!(fake.requests_to("/jwks").len(), 1, "read at discovery");
    fake.script().signer = rotated;

    let (pending, state) = fake.sign_in(&rp);
    let person = rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap();
    assert_eq!(person.subject, "alice");
    assert_eq!(fake.requests_to("/jwks").len(), 2, "read again once");

    // The new keys are kept: the next sign-in reads nothing.
    let (pending, state) = fake.sign_in(&rp);
    rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap();
    assert_eq!(fake.requests_to("/jwks").len(), 2);
}

#[tokio::test]
async fn a_key_still_unknown_after_reading_again_is_refused() {
    let fake = Fake::start().await;
    let rp = fake.relying_party().await;
    fake.script().signer = SigningKey::new("k9", 9);
    let (pending, state) = fake.sign_in(&rp);
    let refused = rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap_err();
    assert_eq!(refused, OidcError::InvalidIdToken(IdTokenProblem::UnknownKey { kid: Some("k9".into()) }));
    assert_eq!(fake.requests_to("/jwks").len(), 2, "once at discovery, once again");
}

#[tokio::test]
async fn a_forged_or_foreign_id_token_is_refused() {
    let fake = Fake::start().await;
    let rp = fake.relying_party().await;
    let cases = [
        (json!({"aud": "another-client"}), IdTokenProblem::Audience),
        (json!({"iss": "https://evil.example"}), IdTokenProblem::Issuer { found: "https://evil.example".into() }),
        (json!({"exp": now() - 3600}), IdTokenProblem::Expired),
    ];
    for (changes, problem) in cases {
        let (pending, state) = fake.sign_in(&rp);
        for (name, value) in changes.as_object().unwrap() {
            fake.script().claims[name] = value.clone();
        }
        let refused = rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap_err();
        assert_eq!(refused, OidcError::InvalidIdToken(problem), "{changes}");
        fake.script().claims = json!({"sub": "alice"});
    }
    // Signed by a key that calls itself k1 but is not the provider's.
    fake.script().signer = SigningKey::new("k1", 7);
    let (pending, state) = fake.sign_in(&rp);
    let refused = rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap_err();
    assert_eq!(refused, OidcError::InvalidIdToken(IdTokenProblem::Signature));
}

#[tokio::test]
async fn the_callback_is_checked_before_the_code_is_spent() {
    let fake = Fake::start().await;
    let rp = fake.relying_party().await;
    let base = fake.provider.base.clone();

    let (pending, _) = fake.sign_in(&rp);
    let refused = rp.finish(pending, callback("another-state", &base)).await.unwrap_err();
    assert_eq!(refused, OidcError::StateMismatch);

    let (pending, state) = fake.sign_in(&rp);
    let without_state = CallbackParams { state: None, ..callback(&state, &base) };
    assert_eq!(rp.finish(pending, without_state).await.unwrap_err(), OidcError::StateMismatch);

    let (pending, state) = fake.sign_in(&rp);
    let other_issuer = CallbackParams { iss: Some("https://evil.example"), ..callback(&state, &base) };
    assert_eq!(
        rp.finish(pending, other_issuer).await.unwrap_err(),
        OidcError::IssuerMismatch { expected: base.clone(), found: Some("https://evil.example".into()) }
    );

    // The provider announces `iss` in responses (RFC 9207 §3): a response without it is refused.
    let (pending, state) = fake.sign_in(&rp);
    let without_issuer = CallbackParams { iss: None, ..callback(&state, &base) };
    assert_eq!(
        rp.finish(pending, without_issuer).await.unwrap_err(),
        OidcError::IssuerMismatch { expected: base.clone(), found: None }
    );

    let (pending, state) = fake.sign_in(&rp);
    let without_code = CallbackParams { code: None, ..callback(&state, &base) };
    assert_eq!(rp.finish(pending, without_code).await.unwrap_err(), OidcError::MissingCode);

    let (mut pending, state) = fake.sign_in(&rp);
    pending.started = Instant::now().checked_sub(crate::SIGN_IN_LIFETIME + Duration::from_secs(1)).unwrap();
    assert!(pending.is_expired());
    assert_eq!(rp.finish(pending, callback(&state, &base)).await.unwrap_err(), OidcError::Expired);

    assert!(fake.requests_to("/token").is_empty(), "no code was exchanged");
}

#[tokio::test]
async fn without_the_promise_of_iss_a_callback_may_omit_it() {
    let fake = Fake::start().await;
    fake.script().document = json!({"authorization_response_iss_parameter_supported": null});
    let rp = fake.relying_party().await;
    let (pending, state) = fake.sign_in(&rp);
    let without_issuer = CallbackParams { iss: None, ..callback(&state, &fake.provider.base) };
    assert_eq!(rp.finish(pending, without_issuer).await.unwrap().subject, "alice");
}

#[tokio::test]
async fn a_refusal_by_the_provider_is_repeated_briefly() {
    let fake = Fake::start().await;
    let rp = fake.relying_party().await;
    let (pending, state) = fake.sign_in(&rp);
    let description = format!("the user said no\r\nINFO forged log line {}", "x".repeat(500));
    let refusal = CallbackParams {
        code: None,
        error: Some("access_denied"),
        error_description: Some(&description),
        ..callback(&state, &fake.provider.base)
    };
    let refused = rp.finish(pending, refusal).await.unwrap_err();
    let OidcError::ProviderRefused { error, description: Some(description) } = &refused else { panic!("{refused:?}") };
    assert_eq!(error, "access_denied");
    assert!(description.starts_with("the user said no INFO forged"), "{description}");
    assert!(description.chars().count() <= 301, "{}", description.chars().count());
    assert!(!refused.to_string().contains('\n'), "{refused}");
}

#[tokio::test]
async fn a_refused_code_says_why_without_the_code() {
    let fake = Fake::start().await;
    let rp = fake.relying_party().await;
    fake.script().token_reply =
        Some((400, json!({"error": "invalid_grant", "error_description": "grant request is invalid"})));
    let (pending, state) = fake.sign_in(&rp);
    let refused = rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap_err();
    assert_eq!(refused, OidcError::TokenExchange("invalid_grant: grant request is invalid".into()));
    let shown = format!("{refused} {refused:?}");
    assert!(!shown.contains("the-code-1") && !shown.contains(CLIENT_SECRET), "{shown}");

    fake.script().token_reply = Some((502, json!("bad gateway")));
    let (pending, state) = fake.sign_in(&rp);
    let refused = rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap_err();
    assert_eq!(refused, OidcError::TokenExchange("the token endpoint answered 502".into()));

    fake.script().token_reply = Some((200, json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer"})));
    let (pending, state) = fake.sign_in(&rp);
    let refused = rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap_err();
    assert_eq!(refused, OidcError::TokenExchange("the token response has no ID token".into()));
}

#[tokio::test]
async fn client_secret_post_when_the_provider_takes_only_that() {
    let fake = Fake::start().await;
    fake.script().document =
        json!({"token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post"]});
    let rp = fake.relying_party().await;
    let (pending, state) = fake.sign_in(&rp);
    rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap();
    let exchange = &fake.requests_to("/token")[0];
    assert_eq!(exchange.header("authorization"), None);
    assert_eq!(exchange.form_value("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(exchange.form_value("client_secret").as_deref(), Some(CLIENT_SECRET));
}

#[tokio::test]
async fn a_public_client_sends_its_id_only() {
    let fake = Fake::start().await;
    let settings = Settings { client_secret: None, ..fake.settings() };
    let rp = RelyingParty::discover(settings, http()).await.unwrap();
    let (pending, state) = fake.sign_in(&rp);
    rp.finish(pending, callback(&state, &fake.provider.base)).await.unwrap();
    let exchange = &fake.requests_to("/token")[0];
    assert_eq!(exchange.header("authorization"), None);
    assert_eq!(exchange.form_value("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(exchange.form_value("client_secret"), None);
}

#[tokio::test]
async fn discovery_refuses_another_issuer() {
    let fake = Fake::start().await;
    fake.script().document = json!({"issuer": "https://evil.example"});
    let refused = RelyingParty::discover(fake.settings(), http()).await.unwrap_err();
    assert_eq!(
        refused,
        OidcError::IssuerMismatch { expected: fake.provider.base.clone(), found: Some("https://evil.example".into()) }
    );
    assert!(refused.to_string().contains("https://evil.example"), "{refused}");
}

#[tokio::test]
async fn discovery_refuses_what_the_flow_cannot_use() {
    let fake = Fake::start().await;
    let unusable = [
        (json!({"code_challenge_methods_supported": ["plain"]}), "PKCE"),
        (json!({"id_token_signing_alg_values_supported": ["HS256", "none"]}), "HS256, none"),
        (json!({"token_endpoint": "http://id.example/token"}), "token_endpoint must use https"),
        (json!({"jwks_uri": null}), "no jwks_uri"),
        (json!({"token_endpoint_auth_methods_supported": ["private_key_jwt"]}), "private_key_jwt"),
    ];
    for (document, words) in unusable {
        fake.script().document = document.clone();
        let refused = RelyingParty::discover(fake.settings(), http()).await.unwrap_err();
        assert!(matches!(refused, OidcError::Discovery { .. }), "{document}: {refused:?}");
        assert!(refused.to_string().contains(words), "{document}: {refused}");
    }

    let plain_http = Settings { issuer: Url::parse("http://id.example").unwrap(), ..fake.settings() };
    let refused = RelyingParty::discover(plain_http, http()).await.unwrap_err();
    assert!(refused.to_string().contains("must use https"), "{refused}");
}

#[tokio::test]
async fn start_sends_everything_the_flow_needs() {
    let fake = Fake::start().await;
    let settings = Settings { scopes: vec!["email".into(), "groups openid".into()], ..fake.settings() };
    let rp = RelyingParty::discover(settings, http()).await.unwrap();
    let (url, pending) = rp.start();
    assert_eq!(url.path(), "/auth");
    assert_eq!(query(&url, "tenant").as_deref(), Some("t1"), "the endpoint's own query is kept");
    assert_eq!(query(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(query(&url, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(query(&url, "redirect_uri").as_deref(), Some(REDIRECT_URI));
    assert_eq!(query(&url, "scope").as_deref(), Some("openid email groups"));
    assert_eq!(query(&url, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query(&url, "state").as_deref(), Some(pending.state().expose()));
    assert_eq!(query(&url, "nonce").as_deref(), Some(pending.nonce.expose()));
    assert_eq!(query(&url, "code_challenge"), Some(Pkce::challenge_of(pending.verifier.expose())));
    assert!(!url.as_str().contains(pending.verifier.expose()), "the verifier stays here");
    assert!(!url.as_str().contains("s3cr"), "the secret stays here");

    let (again, other) = rp.start();
    assert_ne!(query(&again, "state"), query(&url, "state"));
    assert_ne!(other.nonce.expose(), pending.nonce.expose());
    assert_ne!(other.verifier.expose(), pending.verifier.expose());
    assert_eq!(pending.state.expose().len(), 43, "256 random bits");
}

#[tokio::test]
async fn debug_output_shows_no_secret() {
    let fake = Fake::start().await;
    let rp = fake.relying_party().await;
    let (_, pending) = rp.start();
    let secrets = [pending.state.expose(), pending.nonce.expose(), pending.verifier.expose(), CLIENT_SECRET];
    for shown in [format!("{pending:?}"), format!("{:?}", fake.settings()), format!("{rp:?}")] {
        for secret in secrets {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
    assert!(format!("{:?}", fake.settings()).contains("[redacted]"));
    assert!(format!("{rp:?}").contains(CLIENT_ID));
}
