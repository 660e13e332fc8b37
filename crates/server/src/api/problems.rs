//! The API's refusals as its OpenAPI document describes them: each kind once, shared by every
//! route that can answer it, and always a [`Problem`](crate::error::Problem) in
//! `application/problem+json`. A route lists the kinds it can answer beside its own answers,
//! e.g. `responses((status = 200, body = ConnectorView), KeyRequired, Malformed, NotFound)`.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{Content, Ref, RefOr};

/// The media type of every error answer (RFC 9457).
pub const PROBLEM: &str = "application/problem+json";

/// One documented refusal: `status` answered with a problem.
fn problem(status: u16, description: &str) -> (String, RefOr<Response>) {
    let content = Content::new(Some(Ref::from_schema_name("Problem")));
    (status.to_string(), ResponseBuilder::new().description(description).content(PROBLEM, content).build().into())
}

macro_rules! refusals {
    ($($(#[$doc:meta])* $name:ident: $(($status:literal, $description:literal)),+;)+) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$(problem($status, $description)),+])
            }
        }
    )+};
}

refusals! {
    /// Every route behind an API key.
    KeyRequired:
        (401, "No API key, or one that is unknown, revoked or expired"),
        (429, "Too many failed authentications from this address, or a rate limit of calls is used up; \
              `Retry-After` says when to try again"),
        (503, "The store is unavailable; try again");
    /// The routes of a connect token (`/v1/connect/{token}`), which take no API key.
    TokenRequired:
        (401, "The connect token is unknown"),
        (410, "The connect token was used, or has expired"),
        (503, "The store is unavailable; try again");
    /// Routes whose path or query string can be malformed (a query value of the wrong type or
    /// out of its range, a path that is not UTF-8).
    Malformed:
        (400, "Malformed request: the path, the query string or the JSON body");
    /// Routes that read a JSON body.
    JsonBody:
        (400, "Malformed request: the path, the query string or the JSON body"),
        (413, "The body is larger than the server accepts"),
        (415, "The body is not sent as `Content-Type: application/json`"),
        (422, "The body is well-formed but not acceptable; `errors` names each field");
    /// Routes that some principals may not use: the detail says what it would take.
    Forbidden:
        (403, "The principal may not do this");
    /// Routes that name a record by its id.
    NotFound:
        (404, "No such record, or one the principal may not see");
}
