use std::fmt;

/// Why a sign-in failed. The messages are for a person (an administrator reading a log, or the
/// one signing in); none holds a secret, and what the provider said is made brief.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// The discovery document or the signing keys could not be read or are not usable.
    #[error("the sign-in provider's configuration at {url} cannot be used: {reason}")]
    Discovery { url: String, reason: String },
    /// The discovery document, or the `iss` of a callback (RFC 9207), names another issuer
    /// than the configured one; `found` is `None` when a provider that promises `iss` sent none.
    #[error("{}", issuer_mismatch(expected, found.as_deref()))]
    IssuerMismatch { expected: String, found: Option<String> },
    /// The provider sent the person back with an error (`access_denied` when they refused).
    #[error("the sign-in provider refused the sign-in: {}", refusal(error, description.as_deref()))]
    ProviderRefused { error: String, description: Option<String> },
    /// The callback's `state` is not this sign-in's: another browser's callback, a forged
    /// one, or a sign-in started again in another tab.
    #[error("this sign-in response does not belong to the sign-in in progress; please start again")]
    StateMismatch,
    /// More than [`crate::SIGN_IN_LIFETIME`] passed since the sign-in started.
    #[error("the sign-in took too long; please start again")]
    Expired,
    /// The callback has neither a code nor an error.
    #[error("the sign-in provider sent back no authorization code")]
    MissingCode,
    /// The token endpoint refused the code (used already, expired, wrong PKCE verifier, wrong
    /// client credentials), could not be reached, or answered without an ID token.
    #[error("the sign-in provider did not accept the sign-in: {0}")]
    TokenExchange(String),
    /// The ID token fails a check; the sign-in must not be trusted.
    #[error("the sign-in provider's ID token is not valid: {0}")]
    InvalidIdToken(IdTokenProblem),
    /// The provider's signing keys could not be read again (after an unknown key id).
    #[error("the sign-in provider's signing keys cannot be read: {0}")]
    Keys(String),
    /// The userinfo endpoint, asked for the email, failed or named another subject.
    #[error("the sign-in provider's user information cannot be used: {0}")]
    Userinfo(String),
}

/// What is wrong with an ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdTokenProblem {
    /// Not a signed JWT, or a claim missing or of the wrong type; says which, in our words.
    Malformed(&'static str),
    /// Signed with an algorithm the provider does not announce, or one Portico refuses
    /// (`none`, shared-secret HMAC).
    Algorithm(String),
    /// No key of the provider's JWKS fits the token's `kid` and algorithm, even after
    /// reading the JWKS again.
    UnknownKey { kid: Option<String> },
    /// The signature does not verify.
    Signature,
    /// `iss` names another issuer.
    Issuer { found: String },
    /// `aud` does not name this client.
    Audience,
    /// `azp` names another client, or is missing while `aud` names several.
    AuthorizedParty,
    /// `exp` has passed (beyond the allowed clock skew).
    Expired,
    /// `iat` is in the future (beyond the allowed clock skew).
    IssuedInFuture,
    /// `nonce` is missing or is not this sign-in's: the token belongs to another sign-in.
    Nonce,
}

impl fmt::Display for IdTokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdTokenProblem::Malformed(what) => write!(f, "it is malformed ({what})"),
            IdTokenProblem::Algorithm(alg) => {
                write!(f, "it is signed with {alg}, which the provider does not announce or Portico does not accept")
            }
            IdTokenProblem::UnknownKey { kid: Some(kid) } => {
                write!(f, "no signing key of the provider has the id {kid}")
            }
            IdTokenProblem::UnknownKey { kid: None } => f.write_str("no single signing key of the provider fits it"),
            IdTokenProblem::Signature => f.write_str("its signature does not verify"),
            IdTokenProblem::Issuer { found } => write!(f, "it was issued by {found}"),
            IdTokenProblem::Audience => f.write_str("it is not meant for this client"),
            IdTokenProblem::AuthorizedParty => f.write_str("it was issued to another client (azp)"),
            IdTokenProblem::Expired => f.write_str("it has expired"),
            IdTokenProblem::IssuedInFuture => f.write_str("it was issued in the future (is a clock wrong?)"),
            IdTokenProblem::Nonce => f.write_str("its nonce is not this sign-in's"),
        }
    }
}

fn issuer_mismatch(expected: &str, found: Option<&str>) -> String {
    match found {
        Some(found) => format!("the sign-in provider names itself {found}, but the configured issuer is {expected}"),
        None => format!("the sign-in response names no issuer, though {expected} promises to name itself (RFC 9207)"),
    }
}

fn refusal(error: &str, description: Option<&str>) -> String {
    match description {
        Some(description) if !description.is_empty() => format!("{error}: {description}"),
        _ => error.to_owned(),
    }
}
