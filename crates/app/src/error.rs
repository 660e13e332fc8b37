//! What a use case answers when it cannot do what was asked. Front doors translate these into
//! their own terms (a problem+json status, a page, a tool error); none is worded for HTTP.

use portico_model::{Diagnostic, FieldError};
use portico_store::StoreError;

#[derive(Debug)]
pub enum Error {
    /// No principal: a missing, unknown, revoked or expired key, or an ended session.
    Unauthenticated,
    /// The principal is known but may not do this; the text says what it would take.
    Forbidden(String),
    /// No such thing — or one the principal may not see: another tenant's or another end
    /// user's answers exactly like a missing one.
    NotFound(&'static str),
    /// The request itself is malformed (not its content).
    BadRequest(String),
    /// Well-formed but not acceptable: each finding names its field.
    Invalid {
        detail: String,
        errors: Vec<FieldError>,
    },
    Conflict(String),
    /// It was there and is not any more: a used or expired connect session.
    Gone(String),
    PayloadTooLarge,
    /// The connection exists but cannot carry calls now (not connected, or unusable values).
    ConnectionNotReady(String),
    /// The backend is somewhere this server does not send calls.
    BackendNotAllowed(String),
    /// The backend (or identity provider) could not be reached, or broke the exchange.
    BadGateway(String),
    /// The backend did not answer in time.
    GatewayTimeout(String),
    /// Too many tries (failed authentications from one address); trying again after the
    /// wait may work.
    TooManyRequests(std::time::Duration),
    /// A rate limit of calls through connections (the key's or the tenant's) is used up.
    RateLimited(crate::ratelimit::Limited),
    /// The store is unavailable; trying again may work.
    Unavailable,
    /// A bug or corrupt data: logged where it happened, never detailed to the caller.
    Internal,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A validation problem with one named field.
    pub fn invalid_field(detail: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            detail: detail.into(),
            errors: vec![FieldError { field: field.into(), message: message.into() }],
        }
    }

    pub fn invalid_fields(detail: impl Into<String>, errors: Vec<FieldError>) -> Error {
        Error::Invalid { detail: detail.into(), errors }
    }

    /// The errors among an import's findings, each at its position.
    pub fn invalid_definition<'a>(
        detail: impl Into<String>,
        diagnostics: impl IntoIterator<Item = &'a Diagnostic>,
    ) -> Error {
        let errors = diagnostics
            .into_iter()
            .filter(|d| d.is_error())
            .map(|d| FieldError { field: d.at.clone(), message: d.message.clone() })
            .collect();
        Error::Invalid { detail: detail.into(), errors }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => Error::Conflict(format!("{what} already exists")),
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "store unavailable");
                Error::Unavailable
            }
            StoreError::Corrupt(reason) => {
                tracing::error!(%reason, "corrupt data in the store");
                Error::Internal
            }
            StoreError::Unstorable(reason) => {
                tracing::debug!(%reason, "a value the store cannot keep");
                Error::BadRequest("the request holds text the store cannot keep (a NUL character)".to_owned())
            }
        }
    }
}

/// The words a caller is told: never a secret, never a stored value.
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unauthenticated => f.write_str("send 'Authorization: Bearer <api key>' with a valid key"),
            Error::NotFound(what) => write!(f, "no such {what}"),
            Error::Invalid { detail, .. } => f.write_str(detail),
            Error::Forbidden(d)
            | Error::BadRequest(d)
            | Error::Conflict(d)
            | Error::Gone(d)
            | Error::ConnectionNotReady(d)
            | Error::BackendNotAllowed(d)
            | Error::BadGateway(d)
            | Error::GatewayTimeout(d) => f.write_str(d),
            Error::PayloadTooLarge => f.write_str("the request body exceeds the size limit"),
            Error::RateLimited(limited) => {
                write!(
                    f,
                    "the {}'s limit of {} calls a second is used up; try again later",
                    limited.name, limited.quota
                )
            }
            Error::TooManyRequests(_) => {
                f.write_str("too many failed authentications from this address; try again later")
            }
            Error::Unavailable => f.write_str("the store is unavailable; try again"),
            Error::Internal => f.write_str("an internal error occurred; it has been logged"),
        }
    }
}

impl std::error::Error for Error {}
