//! The query of `GET /oauth/callback`, read as the server reads it (`serde_urlencoded`, the
//! decoder of axum's `Query`, into the shape of `portico_server`'s `CallbackQuery`), then the
//! pure steps `portico_app`'s `oauth_callback` takes with it before the store: the state's
//! length rule and hash, the identity provider's words made brief, and the issuer check.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portico_model::{IdentityProvider, IdentityProviderCatalog, OAuth2};
use portico_oauth::{ClientCredentials, Flow, brief};
use serde::{Deserialize, Serialize};

/// The fields of the server's `CallbackQuery`.
#[derive(Debug, PartialEq, Deserialize, Serialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

/// What the app accepts as a state before it hashes it.
const STATE_MAX_BYTES: usize = 512;
/// `portico_oauth::brief`'s limit, in characters, before its ellipsis.
const BRIEF_CHARS: usize = 300;
const ISSUER: &str = "https://idp.example";

fuzz_target!(|data: &[u8]| {
    // The identity provider's words may hold anything once decoded: brief them as they are too.
    check_brief(&String::from_utf8_lossy(data));

    let Ok(query) = serde_urlencoded::from_bytes::<CallbackQuery>(data) else { return };
    let encoded = serde_urlencoded::to_string(&query).expect("a query encodes");
    let again: CallbackQuery = serde_urlencoded::from_str(&encoded).expect("an encoded query decodes");
    assert_eq!(again, query, "{encoded}");

    if let Some(state) = query.state.as_deref().filter(|s| !s.is_empty() && s.len() <= STATE_MAX_BYTES) {
        let hash = portico_secrets::api_key_hash(state);
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{hash}");
    }
    if let Some(error) = query.error.as_deref() {
        let reason = match query.error_description.as_deref() {
            Some(d) => format!("{}: {}", check_brief(error), check_brief(d)),
            None => check_brief(error),
        };
        assert_one_line(&reason);
    }

    let flow = flow();
    let checked = flow.check_issuer(query.iss.as_deref());
    match query.iss.as_deref() {
        Some(ISSUER) | None => assert_eq!(checked, Ok(())),
        Some(_) => assert_one_line(&checked.expect_err("another issuer is refused")),
    }
});

/// `brief(text)`, checked: one line, no control character, no space at either end or twice in
/// a row, at most [`BRIEF_CHARS`] characters and an ellipsis, and unchanged when briefed again.
fn check_brief(text: &str) -> String {
    let out = brief(text);
    assert_one_line(&out);
    assert_eq!(out, out.trim(), "{out:?}");
    assert!(!out.contains("  "), "{out:?}");
    let chars = out.chars().count();
    assert!(chars <= BRIEF_CHARS + 1, "{chars} characters");
    if chars == BRIEF_CHARS + 1 {
        assert!(out.ends_with('…'), "{out:?}");
    } else {
        assert_eq!(brief(&out), out, "briefed twice");
    }
    out
}

/// No control character and no line or paragraph separator: what a log line or a status
/// reason may hold.
fn assert_one_line(text: &str) {
    assert!(!text.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')), "not one line: {text:?}");
}

/// A flow whose provider's discovery document named [`ISSUER`].
fn flow() -> &'static Flow {
    static FLOW: OnceLock<Flow> = OnceLock::new();
    FLOW.get_or_init(|| {
        let mut oauth = OAuth2::new(IdentityProvider::new("oauth2"));
        oauth.token_url = Some(format!("{ISSUER}/token"));
        oauth.authorization_url = Some(format!("{ISSUER}/auth"));
        let client = ClientCredentials { id: "c".to_owned(), secret: None };
        let mut flow =
            portico_oauth::resolve(&oauth, &IdentityProviderCatalog::built_in(), Some(client), vec![]).expect("a flow");
        flow.issuer = Some(ISSUER.to_owned());
        flow
    })
}
