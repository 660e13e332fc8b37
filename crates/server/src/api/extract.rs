//! The API's extractors: axum's `Json`, `Query` and `Path`, refusing with a problem
//! ([`ApiError`], `application/problem+json`) where axum's own answer in plain text. A handler
//! that takes these cannot forget to convert a refusal.
//!
//! They also refuse text holding NUL, which PostgreSQL cannot keep, so that every engine answers
//! alike: 400 in a path or a query string, 422 in a body (the document says so as a pattern on
//! each string: `api::document`).

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, NOT_JSON, ProblemField};

/// A JSON body (`Content-Type: application/json`), or a JSON answer.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType(NOT_JSON.to_owned()));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(JsonRejection::from)?;
        // serde also reads a struct from an array of its fields, in order; every body of the
        // API is an object.
        if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
            return Err(invalid_body("the body must be a JSON object", "is an array"));
        }
        if holds_escaped_nul(&bytes) {
            return Err(invalid_body("text in the body holds a NUL character (\\u0000)", "holds a NUL character"));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Json(value))
    }
}

/// An optional body: `None` when the request has no `Content-Type`.
impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        if request.headers().contains_key(CONTENT_TYPE) {
            <Json<T> as FromRequest<S>>::from_request(request, state).await.map(Some)
        } else {
            Ok(None)
        }
    }
}

fn invalid_body(detail: &str, message: &str) -> ApiError {
    ApiError::Invalid {
        detail: detail.to_owned(),
        errors: vec![ProblemField { field: "body".to_owned(), message: message.to_owned() }],
    }
}

/// Whether a JSON text has `\u0000` in a string. (A raw control character is not JSON at all.)
/// Backslashes occur only in strings, each starting an escape: skipping the character after
/// each one steps over `\\` too.
fn holds_escaped_nul(json: &[u8]) -> bool {
    let mut at = 0;
    while let Some(offset) = json.get(at..).and_then(|rest| rest.iter().position(|byte| *byte == b'\\')) {
        let escape = at + offset + 1;
        if json.get(escape) == Some(&b'u') && json.get(escape + 1..escape + 5) == Some(b"0000".as_slice()) {
            return true;
        }
        at = escape + 1;
    }
    false
}

/// A NUL character, percent-encoded in a path or a query string.
fn refuse_nul(text: Option<&str>, place: &str) -> Result<(), ApiError> {
    match text {
        Some(text) if text.contains("%00") => {
            Err(ApiError::BadRequest(format!("the {place} holds a NUL character (%00)")))
        }
        _ => Ok(()),
    }
}

/// `application/json`, or `application/…+json`: what axum's `Json` takes.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.strip_prefix("application/").is_some_and(|subtype| subtype == "json" || subtype.ends_with("+json"))
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The query string.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        refuse_nul(parts.uri.query(), "query string")?;
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// The parameters in the path.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        refuse_nul(Some(parts.uri.path()), "path")?;
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

#[cfg(test)]
mod tests {
    use super::holds_escaped_nul;

    #[test]
    fn an_escaped_nul_is_found_in_strings_and_an_escaped_backslash_is_not_one() {
        assert!(holds_escaped_nul(br#"{"a": "x\u0000y"}"#));
        assert!(holds_escaped_nul(br#"{"a\u0000": 1}"#));
        assert!(holds_escaped_nul(br#"{"a": "\\\u0000"}"#));
        assert!(!holds_escaped_nul(br#"{"a": "\\u0000"}"#));
        assert!(holds_escaped_nul(br#"{"a": "\u00001"}"#));
        assert!(!holds_escaped_nul(br#"{"a": "\u0041", "b": "\u0001"}"#));
        assert!(!holds_escaped_nul(br#"{"a": "trailing \"#));
    }
}
