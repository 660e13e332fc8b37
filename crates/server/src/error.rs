//! Errors as RFC 9457 problem details (`application/problem+json`) with a stable `type`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use portico_model::FieldError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:portico:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// One entry per offending field, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField {
    /// The field, or the file position for import errors.
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    /// A connect token that names no session.
    UnknownToken,
    /// Known, but not allowed: says what it would take.
    Forbidden(String),
    NotFound(&'static str),
    BadRequest(String),
    /// The body is well-formed but its content is not acceptable.
    Invalid {
        detail: String,
        errors: Vec<ProblemField>,
    },
    Conflict(String),
    /// A used or expired connect session.
    Gone(String),
    PayloadTooLarge,
    /// Too many tries: the `Retry-After` to send.
    TooManyRequests(std::time::Duration),
    /// A rate limit is used up: which, and when one more call is allowed.
    RateLimited(portico_app::ratelimit::Limited),
    UnsupportedMediaType(String),
    NotImplemented(String),
    /// The route does not take this method; `allow` lists those it takes (the `Allow` header).
    MethodNotAllowed {
        allow: &'static str,
    },
    /// The connection exists but cannot carry calls now (not connected, or unusable values).
    ConnectionNotReady(String),
    /// The backend is somewhere this server does not send calls.
    BackendNotAllowed(String),
    /// The backend could not be reached, or broke the exchange.
    BadGateway(String),
    /// The backend did not answer in time.
    GatewayTimeout(String),
    Unavailable,
    Internal,
}

impl ApiError {
    pub fn invalid_fields(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        let errors = errors.into_iter().map(|e| ProblemField { field: e.field, message: e.message }).collect();
        ApiError::Invalid { detail: detail.into(), errors }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Missing or invalid API key"),
            ApiError::UnknownToken => (StatusCode::UNAUTHORIZED, "unknown-token", "Unknown connect token"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too-many-requests", "Too many requests"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Rate limit reached"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Malformed request"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Validation failed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::Gone(_) => (StatusCode::GONE, "gone", "Gone"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Request body too large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            ApiError::NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, "not-implemented", "Not implemented"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
            }
            ApiError::ConnectionNotReady(_) => {
                (StatusCode::CONFLICT, "connection-not-ready", "The connection cannot carry calls")
            }
            ApiError::BackendNotAllowed(_) => (StatusCode::FORBIDDEN, "backend-not-allowed", "Backend not allowed"),
            ApiError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "backend-unreachable", "Backend unreachable"),
            ApiError::GatewayTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "backend-timeout", "Backend timeout"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        let retry_after = match &self {
            ApiError::TooManyRequests(wait) => Some(*wait),
            ApiError::RateLimited(limited) => Some(limited.retry_after),
            _ => None,
        };
        // The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers): the policy that
        // refused, and that nothing is left of it until Retry-After.
        let rate_limit = match &self {
            ApiError::RateLimited(limited) => {
                let name = limited.name;
                let reset = whole_seconds(limited.retry_after);
                Some((format!("\"{name}\";q={};w=1", limited.quota), format!("\"{name}\";r=0;t={reset}")))
            }
            _ => None,
        };
        let allow = match &self {
            ApiError::MethodNotAllowed { allow } => Some(*allow),
            _ => None,
        };
        let (detail, errors) = match self {
            ApiError::Unauthorized => ("send 'Authorization: Bearer <api key>'".to_owned(), Vec::new()),
            ApiError::UnknownToken => {
                ("this connect link is not known here; ask the app for a new one".to_owned(), Vec::new())
            }
            ApiError::NotFound(what) => (format!("no such {what}"), Vec::new()),
            ApiError::Invalid { detail, errors } => (detail, errors),
            ApiError::BadRequest(d)
            | ApiError::Forbidden(d)
            | ApiError::Conflict(d)
            | ApiError::Gone(d)
            | ApiError::UnsupportedMediaType(d)
            | ApiError::NotImplemented(d)
            | ApiError::ConnectionNotReady(d)
            | ApiError::BackendNotAllowed(d)
            | ApiError::BadGateway(d)
            | ApiError::GatewayTimeout(d) => (d, Vec::new()),
            ApiError::MethodNotAllowed { allow } => (format!("this route takes {allow}"), Vec::new()),
            ApiError::PayloadTooLarge => ("the request body exceeds the size limit".to_owned(), Vec::new()),
            ApiError::TooManyRequests(_) => (
                "too many failed authentications from this address; try again after Retry-After seconds".to_owned(),
                Vec::new(),
            ),
            ApiError::RateLimited(limited) => (
                format!(
                    "the {}'s limit of {} calls a second is used up; try again after Retry-After seconds",
                    limited.name, limited.quota
                ),
                Vec::new(),
            ),
            ApiError::Unavailable => ("the store is unavailable; try again".to_owned(), Vec::new()),
            ApiError::Internal => ("an internal error occurred; it has been logged".to_owned(), Vec::new()),
        };
        let problem =
            Problem { kind: format!("urn:portico:problem:{kind}"), title, status: status.as_u16(), detail, errors };
        let mut response = (status, axum::Json(problem)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/problem+json"));
        if let Some((policy, state)) = rate_limit {
            for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
                if let Ok(value) = header::HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
        }
        if let Some(wait) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(whole_seconds(wait)));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        response
    }
}

/// A wait in whole seconds, rounded up and at least one: a client that waits as told is not
/// refused again.
fn whole_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl From<portico_app::Error> for ApiError {
    fn from(error: portico_app::Error) -> Self {
        use portico_app::Error;
        match error {
            Error::Unauthenticated => ApiError::Unauthorized,
            Error::Forbidden(d) => ApiError::Forbidden(d),
            Error::NotFound(what) => ApiError::NotFound(what),
            Error::BadRequest(d) => ApiError::BadRequest(d),
            Error::Invalid { detail, errors } => ApiError::invalid_fields(detail, errors),
            Error::Conflict(d) => ApiError::Conflict(d),
            Error::Gone(d) => ApiError::Gone(d),
            Error::PayloadTooLarge => ApiError::PayloadTooLarge,
            Error::TooManyRequests(wait) => ApiError::TooManyRequests(wait),
            Error::RateLimited(limited) => ApiError::RateLimited(limited),
            Error::ConnectionNotReady(d) => ApiError::ConnectionNotReady(d),
            Error::BackendNotAllowed(d) => ApiError::BackendNotAllowed(d),
            Error::BadGateway(d) => ApiError::BadGateway(d),
            Error::GatewayTimeout(d) => ApiError::GatewayTimeout(d),
            Error::Unavailable => ApiError::Unavailable,
            Error::Internal => ApiError::Internal,
        }
    }
}

/// The detail of a body that is not sent as JSON.
pub const NOT_JSON: &str = "send the body as 'Content-Type: application/json'";

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(NOT_JSON.to_owned()),
            JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(format!("malformed JSON: {}", e.body_text())),
            JsonRejection::JsonDataError(e) => ApiError::Invalid { detail: e.body_text(), errors: Vec::new() },
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// A 404 for anything outside the API, in the same problem format.
pub async fn fallback() -> ApiError {
    ApiError::NotFound("route")
}

pub async fn method_not_allowed() -> Response {
    let problem = Problem {
        kind: "urn:portico:problem:method-not-allowed".to_owned(),
        title: "Method not allowed",
        status: 405,
        detail: "this route does not take that method".to_owned(),
        errors: Vec::new(),
    };
    let mut response = (StatusCode::METHOD_NOT_ALLOWED, axum::Json(problem)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/problem+json"));
    response
}
