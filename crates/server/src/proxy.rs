//! Calls through a connection: `/v1/connections/{id}/proxy/{path}`, `…/operations/{op}` and
//! `…/test`. The hot path: the principal, its permission and the prepared connection come
//! from memory (`portico_app::calls`), the request is assembled from pre-built parts, and the
//! backend's answer is streamed back.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::response::IntoResponse;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Response};
use portico_app::Principal;
use portico_app::calls::{Call, CallKind, CallSession, request_error};
use portico_runtime::{OperationCall, PreparedConnection, UpstreamError, UpstreamSlot};

use crate::error::ApiError;
use crate::serving::ResponseBody;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Proxy,
    Operation,
    Test,
}

/// Where the parts of a call's path are, as byte ranges of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    kind: Kind,
    id: (usize, usize),
    rest: (usize, usize),
}

const PREFIX: &str = "/v1/connections/";

/// Recognises the paths of calls through a connection; everything else is the API's.
pub fn route(path: &str) -> Option<Route> {
    let after = path.strip_prefix(PREFIX)?;
    let slash = after.find('/')?;
    let id = (PREFIX.len(), PREFIX.len() + slash);
    let tail = &after[slash..];
    let tail_start = id.1;
    let (kind, rest_start) = if let Some(rest) = tail.strip_prefix("/proxy") {
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        (Kind::Proxy, tail_start + "/proxy".len())
    } else if tail.starts_with("/operations/") {
        (Kind::Operation, tail_start + "/operations/".len())
    } else if tail == "/test" {
        (Kind::Test, path.len())
    } else {
        return None;
    };
    (id.0 < id.1).then_some(Route { kind, id, rest: (rest_start, path.len()) })
}

/// What one client connection keeps between its calls: its backend connection, and its call
/// session (who its last API key named and the connection it called, so that a client
/// repeating the same call costs no key hashing and no shared-map lookup).
pub struct Client {
    pub state: Arc<AppState>,
    pub upstream: UpstreamSlot,
    session: CallSession,
    /// The client's address: failed authentications are throttled by it.
    peer: std::net::IpAddr,
}

impl Client {
    pub fn new(state: Arc<AppState>, peer: std::net::IpAddr) -> Self {
        Client { state, upstream: UpstreamSlot::default(), session: CallSession::default(), peer }
    }

    /// The connection the call names, prepared, if the caller (named by `Authorization`)
    /// may call through it.
    async fn connection(
        &self,
        headers: &hyper::HeaderMap,
        id: &str,
    ) -> Result<(Principal, Arc<PreparedConnection>), ApiError> {
        let app = &*self.state.app;
        let authorization = headers.get(AUTHORIZATION).map(|value| value.as_bytes());
        let principal = self.session.principal(app, authorization, Some(self.peer)).await?;
        let prepared = self.session.connection(app, &principal, id).await?;
        Ok((principal, prepared))
    }

    /// Sends `outgoing` to `prepared`'s backend on this client's upstream connection. Not an
    /// `async fn`: it hands back the slot's own future rather than wrapping it in another.
    fn send<'a>(
        &'a self,
        prepared: &'a PreparedConnection,
        outgoing: Request<portico_runtime::OutBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, UpstreamError>> + Send + 'a {
        self.upstream.send(&prepared.target, outgoing, &self.state.app.upstream)
    }
}

/// Serves one call through a connection. A function returning one async block (as `proxy`),
/// not an `async fn`: the request is not copied into a layer of state of its own.
#[allow(clippy::manual_async_fn, reason = "an async fn would copy its arguments into its state")]
pub fn handle(
    client: Arc<Client>,
    route: Route,
    request: Request<Incoming>,
) -> impl Future<Output = Result<Response<ResponseBody>, Infallible>> + Send {
    async move {
        let result = match route.kind {
            Kind::Proxy => proxy(&client, route, request).await,
            // Boxed: their futures are larger than the proxy's, which would otherwise pay for them.
            Kind::Operation => Box::pin(operation(&client, route, request)).await,
            Kind::Test => Box::pin(test(&client, route, request)).await,
        };
        Ok(result.unwrap_or_else(|error| error.into_response().map(Either::Right)))
    }
}

#[allow(clippy::manual_async_fn, reason = "an async fn would copy its arguments into its state")]
fn proxy(
    client: &Client,
    route: Route,
    request: Request<Incoming>,
) -> impl Future<Output = Result<Response<ResponseBody>, ApiError>> + Send + '_ {
    async move {
        let started = Instant::now();
        let state = &*client.state;
        proxied_method(request.method())?;
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let (principal, prepared) = client.connection(&parts.headers, &path[route.id.0..route.id.1]).await?;
        let rest = &path[route.rest.0..route.rest.1];
        let call = Call {
            app: &state.app,
            principal: &principal,
            kind: CallKind::Proxy { method: &parts.method, path: rest },
            started,
        };
        // A call without a body can be sent again after renewing a token the backend rejected.
        let retry = prepared.token.is_some() && hyper::body::Body::is_end_stream(&body);
        let retry_headers = retry.then(|| parts.headers.clone());
        let body = Either::Left(Limited::new(body, state.max_body_bytes));
        let query = parts.uri.query();
        let outgoing =
            portico_runtime::proxy_request(&prepared, parts.method.clone(), rest, query, parts.headers, body)
                .map_err(|e| call.refused(&prepared, request_error(e)))?;
        let response = answer(&call, &prepared, client.send(&prepared, outgoing).await)?;
        let expired = prepared.token.as_ref().is_some_and(|t| t.expired_statuses.contains(&response.status().as_u16()));
        let Some(headers) = retry_headers.filter(|_| expired) else { return Ok(response) };
        drop(response);
        tracing::debug!(connection = %prepared.connection_id, "the backend rejected the access token; renewing it once");
        let renewed = Box::pin(state.app.refresh(&prepared)).await?;
        let empty = Either::Right(Full::new(Bytes::new()));
        let outgoing = portico_runtime::proxy_request(&renewed, parts.method.clone(), rest, query, headers, empty)
            .map_err(|e| call.refused(&renewed, request_error(e)))?;
        answer(&call, &renewed, client.send(&renewed, outgoing).await)
    }
}

/// What the caller gets for the backend's answer (or its absence), counted in the metrics and
/// the audit trail.
fn answer(
    call: &Call<'_>,
    prepared: &Arc<PreparedConnection>,
    sent: Result<Response<Incoming>, UpstreamError>,
) -> Result<Response<ResponseBody>, ApiError> {
    Ok(call.answered(prepared, sent)?.map(Either::Left))
}

async fn read_json_body<T: serde::de::DeserializeOwned + Default>(
    state: &AppState,
    body: Incoming,
) -> Result<T, ApiError> {
    let bytes = Limited::new(body, state.max_body_bytes).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest("the request body could not be read".to_owned())
        }
    })?;
    let bytes = bytes.to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        if e.is_data() {
            ApiError::Invalid { detail: e.to_string(), errors: Vec::new() }
        } else {
            ApiError::BadRequest(format!("malformed JSON: {e}"))
        }
    })
}

fn post_only(method: &Method) -> Result<(), ApiError> {
    if method == Method::POST { Ok(()) } else { Err(ApiError::MethodNotAllowed { allow: "POST" }) }
}

/// The methods a call through a connection may use, as `/openapi.json` lists them (and HEAD and
/// OPTIONS). Others are refused: TRACE above all, whose answer would show the caller the
/// credential added to the request.
fn proxied_method(method: &Method) -> Result<(), ApiError> {
    match *method {
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::OPTIONS => {
            Ok(())
        }
        _ => Err(ApiError::MethodNotAllowed { allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" }),
    }
}

async fn operation(
    client: &Client,
    route: Route,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    let started = Instant::now();
    let state = &*client.state;
    post_only(request.method())?;
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let (principal, prepared) = client.connection(&parts.headers, &path[route.id.0..route.id.1]).await?;
    let arguments: OperationCall = read_json_body(state, body).await?;
    let operation_id = percent_decode(&path[route.rest.0..route.rest.1]);
    let call = Call { app: &state.app, principal: &principal, kind: CallKind::Operation(&operation_id), started };
    let outgoing = portico_runtime::operation_request(&prepared, &operation_id, arguments)
        .map_err(|e| call.refused(&prepared, request_error(e)))?;
    answer(&call, &prepared, client.send(&prepared, outgoing).await)
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Calls the connector's test operation (or its base URL) and reports what happened.
async fn test(client: &Client, route: Route, request: Request<Incoming>) -> Result<Response<ResponseBody>, ApiError> {
    post_only(request.method())?;
    let app = &*client.state.app;
    let authorization = request.headers().get(AUTHORIZATION).map(|value| value.as_bytes());
    let principal = client.session.principal(app, authorization, Some(client.peer)).await?;
    let path = request.uri().path();
    let report = app.test_connection(&principal, &client.upstream, &path[route.id.0..route.id.1]).await?;
    Ok(axum::Json(report).into_response().map(Either::Right))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> Option<(Kind, &str, &str)> {
        route(path).map(|r| (r.kind, &path[r.id.0..r.id.1], &path[r.rest.0..r.rest.1]))
    }

    #[test]
    fn recognises_calls_through_connections() {
        assert_eq!(parts("/v1/connections/abc/proxy/x/y"), Some((Kind::Proxy, "abc", "/x/y")));
        assert_eq!(parts("/v1/connections/abc/proxy"), Some((Kind::Proxy, "abc", "")));
        assert_eq!(parts("/v1/connections/abc/operations/GetItem"), Some((Kind::Operation, "abc", "GetItem")));
        assert_eq!(parts("/v1/connections/abc/test"), Some((Kind::Test, "abc", "")));
        for api in [
            "/v1/connections",
            "/v1/connections/abc",
            "/v1/connections/abc/proxyx",
            "/v1/connections//proxy/x",
            "/v1/connectors/abc/proxy/x",
            "/v1/connections/abc/tests",
        ] {
            assert_eq!(route(api), None, "{api}");
        }
    }
}

/// The data-path routes, described for `/openapi.json`. They are served by the dispatcher in
/// `serving`, not by the router, so these functions only carry the description.
pub mod described {
    #![allow(dead_code)]

    use crate::api::problems::{Forbidden, KeyRequired, Malformed, NotFound, PROBLEM};
    use crate::error::Problem;

    /// One description of the proxy route per method it documents, each with its own
    /// operation id.
    macro_rules! proxy {
        ($($method:ident $name:ident),+) => {$(
            /// Forwards the call to the connector's backend (base URL + `path`) with the
            /// connection's credential; the caller's `Authorization` is not forwarded. The
            /// backend's answer is relayed as it is: its status, headers and body. HEAD and
            /// OPTIONS are forwarded too; other methods answer 405.
            #[utoipa::path($method, path = "/v1/connections/{id}/proxy/{path}", tag = "calls",
                operation_id = concat!("proxy_", stringify!($method)),
                params(("id" = String, Path), ("path" = String, Path, description = "Under the connector's base URL")),
                responses((status = "default", description = "The backend's answer, relayed"),
                    KeyRequired, Malformed,
                    (status = 403, body = Problem, content_type = PROBLEM, description = "Backend on a private \
                        address, or the caller may not call through this connection"),
                    (status = 404, body = Problem, content_type = PROBLEM,
                        description = "No such connection, or one the caller may not see"),
                    (status = 409, body = Problem, content_type = PROBLEM,
                        description = "The connection cannot carry calls"),
                    (status = 413, body = Problem, content_type = PROBLEM,
                        description = "The body is larger than the server accepts"),
                    (status = 502, body = Problem, content_type = PROBLEM, description = "Backend unreachable"),
                    (status = 504, body = Problem, content_type = PROBLEM, description = "Backend too slow")),
                security(("apiKey" = [])))]
            pub async fn $name() {}
        )+};
    }

    proxy!(get proxy_get, post proxy_post, put proxy_put, patch proxy_patch, delete proxy_delete);

    /// Calls one of the connector's operations: `{"parameters": {...}, "body": ...}`.
    #[utoipa::path(post, path = "/v1/connections/{id}/operations/{operationId}", tag = "calls",
        params(("id" = String, Path), ("operationId" = String, Path)),
        responses((status = "default", description = "The backend's answer, relayed"),
            KeyRequired, Forbidden, Malformed,
            (status = 404, body = Problem, content_type = PROBLEM, description = "No such connection or operation"),
            (status = 413, body = Problem, content_type = PROBLEM,
                description = "The body is larger than the server accepts"),
            (status = 422, body = Problem, content_type = PROBLEM, description = "Missing or unknown parameters"),
            (status = 409, body = Problem, content_type = PROBLEM, description = "The connection cannot carry calls"),
            (status = 502, body = Problem, content_type = PROBLEM, description = "Backend unreachable"),
            (status = 504, body = Problem, content_type = PROBLEM, description = "Backend too slow")),
        security(("apiKey" = [])))]
    pub async fn operation() {}

    /// Calls the connector's test operation (or its base URL) and reports the outcome:
    /// `{"ok", "status", "latencyMs", "error"}`.
    #[utoipa::path(post, path = "/v1/connections/{id}/test", tag = "calls", params(("id" = String, Path)),
        responses((status = 200, description = "The outcome"), KeyRequired, Forbidden, Malformed, NotFound,
            (status = 409, body = Problem, content_type = PROBLEM, description = "The connection cannot carry calls")),
        security(("apiKey" = [])))]
    pub async fn test() {}
}
