//! OpenID Connect sign-in for people (OpenID Connect Core 1.0, Discovery 1.0): the portal's
//! relying party. One provider per [`RelyingParty`], found by discovery from its issuer; the
//! authorization code flow with PKCE S256 (RFC 7636), `state` and `nonce`; the RFC 9207 `iss`
//! response parameter; the ID token verified against the provider's JWKS; the email from
//! userinfo when the ID token has none.
//!
//! ```text
//! RelyingParty::discover(settings, http)   once, at start-up
//! rp.start()  -> (authorization URL, Pending)   keep Pending server side, send the browser away
//! rp.finish(pending, callback) -> Person        on the redirect back
//! ```
//!
//! Why written here, on `jsonwebtoken`, rather than with the `openidconnect` crate: discovery,
//! PKCE and the code exchange are a few plain HTTP requests (and `portico-oauth` already has
//! PKCE and the brief form of a provider's words), while the part that must not be hand-made,
//! the JWS signature over the provider's keys, comes from `jsonwebtoken` 12 with its RustCrypto
//! backend. `openidconnect` 4.1 (on `oauth2` 5, without reqwest) would have added about 60
//! crates, `chrono` and `serde_with` among them, and two versions each of `rand`, `rand_core`,
//! `hmac`, `signature`, `der`, `spki`, `pkcs8`, `const-oid` and `pem-rfc7468`;
//! `jsonwebtoken` adds 29 and a second version of none (no aws-lc, no OpenSSL: TLS stays
//! rustls with ring). And the checks are ours to see in one place: which algorithms
//! (asymmetric ones the provider announces, never `none` or a shared-secret HMAC), which key
//! (the JWKS read again once on an unknown `kid`, as after a rotation), and each claim, on a
//! clock the tests can set.
//!
//! Architecture invariant: no secret (client secret, code, token, PKCE verifier, `state`,
//! `nonce`) appears in an error, a log line or a `Debug` output; what the provider says is
//! repeated only through [`portico_oauth::brief`].

mod discovery;
mod error;
mod id_token;
mod relying_party;
#[cfg(test)]
mod test_provider;

use std::fmt;
use std::time::{Duration, Instant};

use portico_secrets::SecretString;
use url::Url;

pub use error::{IdTokenProblem, OidcError};
pub use relying_party::RelyingParty;

/// How long a sign-in may take between [`RelyingParty::start`] and [`RelyingParty::finish`].
pub const SIGN_IN_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// The scopes asked for unless configured otherwise; `openid` is always sent.
pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// What the portal is configured with. `Debug` shows no secret.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The provider's issuer identifier, e.g. `https://accounts.example.com`; discovery reads
    /// `<issuer>/.well-known/openid-configuration`. `https`, or `http` on a loopback host only.
    pub issuer: Url,
    pub client_id: String,
    /// `None` for a public client (`token_endpoint_auth_method` `none`).
    pub client_secret: Option<SecretString>,
    /// The portal's callback, exactly as registered at the provider.
    pub redirect_uri: Url,
    pub scopes: Vec<String>,
}

impl Settings {
    /// Settings with the [`DEFAULT_SCOPES`].
    pub fn new(
        issuer: Url,
        client_id: impl Into<String>,
        client_secret: Option<SecretString>,
        redirect_uri: Url,
    ) -> Self {
        Settings {
            issuer,
            client_id: client_id.into(),
            client_secret,
            redirect_uri,
            scopes: DEFAULT_SCOPES.map(str::to_owned).to_vec(),
        }
    }
}

/// A sign-in in progress: what [`RelyingParty::finish`] needs back. Keep it on the server (never
/// in a cookie or the page), for one callback, at most [`SIGN_IN_LIFETIME`]. `Debug` shows no
/// secret.
#[derive(Clone)]
pub struct Pending {
    state: SecretString,
    nonce: SecretString,
    verifier: SecretString,
    started: Instant,
}

impl Pending {
    /// The `state` sent in the authorization URL, to find this sign-in again when the callback
    /// arrives. It is a secret of the browser's sign-in: store it hashed if it is stored.
    pub fn state(&self) -> &SecretString {
        &self.state
    }

    /// Whether it is older than [`SIGN_IN_LIFETIME`] and can only fail.
    pub fn is_expired(&self) -> bool {
        self.started.elapsed() > SIGN_IN_LIFETIME
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending").field("started", &self.started).finish_non_exhaustive()
    }
}

/// The query parameters of the callback, as the browser brought them.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallbackParams<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    /// RFC 9207: the issuer of the response.
    pub iss: Option<&'a str>,
    pub error: Option<&'a str>,
    pub error_description: Option<&'a str>,
}

/// Who signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// The provider's issuer identifier: a `subject` is unique only within its issuer.
    pub issuer: String,
    /// `sub`: the provider's stable identifier of the person.
    pub subject: String,
    pub email: Option<String>,
    /// Whether the provider says it has verified `email` (from the same source as `email`).
    pub email_verified: Option<bool>,
    pub name: Option<String>,
}
