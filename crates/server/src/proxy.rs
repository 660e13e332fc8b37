//! Calls through a connection: `/v1/connections/{id}/proxy/{path}`, `…/operations/{op}` and
//! `…/test`. The hot path: the API key and the prepared connection come from memory, the
//! request is assembled from pre-built parts, and the backend's answer is streamed back.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::response::IntoResponse;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response};
use portico_runtime::{
    OperationCall, Outcome, PrepareError, PreparedConnection, RequestError, UpstreamError, UpstreamSlot,
};
use portico_store::ConnectionStatus;
use serde_json::json;

use crate::auth::{Caller, authenticate};
use crate::error::{ApiError, ProblemField};
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

/// What one client connection keeps between its calls: its backend connection, and who its
/// last API key named and the connection it called, so that a client repeating the same call
/// costs no key hashing and no shared-map lookup. The remembered connection is used only while
/// the cache's generation is unchanged, i.e. while nothing was invalidated.
pub struct Client {
    pub state: Arc<AppState>,
    pub upstream: UpstreamSlot,
    memo: Mutex<Memo>,
}

#[derive(Default)]
struct Memo {
    /// The `Authorization` value and the caller it named.
    key: Option<(HeaderValue, Caller)>,
    /// The cache generation it was read in, and the connection.
    connection: Option<(u64, Arc<PreparedConnection>)>,
}

impl Client {
    pub fn new(state: Arc<AppState>) -> Self {
        Client { state, upstream: UpstreamSlot::default(), memo: Mutex::default() }
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The caller named by the request's `Authorization` header.
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let value = headers.get(AUTHORIZATION);
        if let Some(value) = value
            && let Some((known, caller)) = &self.memo().key
            && portico_secrets::constant_time_eq(known.as_bytes(), value.as_bytes())
        {
            return Ok(caller.clone());
        }
        // Boxed, as every rarely taken path here: the future of a call stays small.
        let caller = Box::pin(authenticate(headers, &self.state)).await?;
        // Copies of their own: the value would otherwise hold on to the connection's read
        // buffer, and cloning the caller would touch what other threads use.
        if let Some(value) = value.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            let copy = Caller { tenant_id: Arc::from(&*caller.tenant_id), key_id: Arc::from(&*caller.key_id) };
            self.memo().key = Some((value, copy));
        }
        Ok(caller)
    }

    /// Sends `outgoing` to `prepared`'s backend on this client's upstream connection. Not an
    /// `async fn`: it hands back the slot's own future rather than wrapping it in another.
    fn send<'a>(
        &'a self,
        prepared: &'a PreparedConnection,
        outgoing: Request<portico_runtime::OutBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, UpstreamError>> + Send + 'a {
        self.upstream.send(&prepared.target, outgoing, &self.state.upstream)
    }

    /// Like [`prepared`], remembering the answer for this client's next call.
    async fn prepared(&self, caller: &Caller, id: &str) -> Result<Arc<PreparedConnection>, ApiError> {
        let state = &*self.state;
        let generation = state.connections.generation();
        let remembered = self.memo().connection.as_ref().and_then(|(g, p)| {
            (*g == generation && p.connection_id == id && *p.tenant_id == *caller.tenant_id).then(|| p.clone())
        });
        let prepared = match remembered {
            Some(p) if p.needs_refresh(portico_store::now_millis()) => {
                Box::pin(crate::oauth::refresh(state, &p)).await?
            }
            Some(p) => return Ok(p),
            None => Box::pin(prepared(state, caller, id)).await?,
        };
        self.memo().connection = Some((generation, prepared.clone()));
        Ok(prepared)
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

/// The prepared form of the caller's connection: from memory, else loaded, checked and
/// prepared once; an OAuth 2.0 token due for renewal is renewed first.
pub async fn prepared(state: &AppState, caller: &Caller, id: &str) -> Result<Arc<PreparedConnection>, ApiError> {
    let prepared = match state.connections.get(id) {
        // Another tenant's connection answers exactly like a missing one.
        Some(prepared) if *prepared.tenant_id != *caller.tenant_id => return Err(ApiError::NotFound("connection")),
        Some(prepared) => prepared,
        None => load(state, &caller.tenant_id, id).await?,
    };
    if prepared.needs_refresh(portico_store::now_millis()) {
        return crate::oauth::refresh(state, &prepared).await;
    }
    Ok(prepared)
}

pub fn not_ready(record: &portico_store::ConnectionRecord) -> ApiError {
    ApiError::ConnectionNotReady(format!(
        "the connection is {}{}",
        record.status.as_str(),
        record.status_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
    ))
}

/// Reads a connection and its connector from the store and prepares them (and caches the
/// result unless something changed meanwhile).
pub async fn load(state: &AppState, tenant_id: &str, id: &str) -> Result<Arc<PreparedConnection>, ApiError> {
    let generation = state.connections.generation();
    let record = state.store.connection(tenant_id, id).await?.ok_or(ApiError::NotFound("connection"))?;
    if record.status != ConnectionStatus::Connected {
        return Err(not_ready(&record));
    }
    let connector =
        state.store.connector(tenant_id, &record.connector_id).await?.ok_or(ApiError::NotFound("connection"))?;
    let secrets = crate::connections::open(state, &record)?;
    let bearer = crate::oauth::bearer(state, &connector, &record)?;
    let metrics = state.metrics.connector(&connector.id, &connector.connector.metadata.name);
    let mut definition = connector.connector;
    if let Some((_, _, Some(instance_url))) = &bearer {
        // The provider named the instance to call (Salesforce's instance_url).
        let base = definition.backend.base_path.trim_end_matches('/').to_owned();
        definition.backend.host_template =
            Some(portico_model::Template::new(format!("{}{base}", instance_url.trim_end_matches('/'))));
    }
    let mut prepared = portico_runtime::prepare(
        &record.tenant_id,
        &record.id,
        &record.connector_id,
        Arc::new(definition),
        record.parameter_set.as_deref(),
        &record.parameters,
        &secrets,
        bearer.as_ref().map(|(token, _, _)| token),
        metrics,
    )
    .map_err(|e| match e {
        PrepareError::NoAccessToken => ApiError::ConnectionNotReady(e.to_string()),
        PrepareError::HostNotAllowed(_) => ApiError::BackendNotAllowed(e.to_string()),
        other => ApiError::ConnectionNotReady(format!("the connection cannot be used: {other}")),
    })?;
    prepared.token = bearer.map(|(_, times, _)| times);
    let prepared = Arc::new(prepared);
    state.connections.insert(prepared.clone(), generation);
    Ok(prepared)
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
        let caller = client.caller(request.headers()).await?;
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let prepared = client.prepared(&caller, &path[route.id.0..route.id.1]).await?;
        let rest = &path[route.rest.0..route.rest.1];
        // A call without a body can be sent again after renewing a token the backend rejected.
        let retry = prepared.token.is_some() && hyper::body::Body::is_end_stream(&body);
        let retry_headers = retry.then(|| parts.headers.clone());
        let body = Either::Left(Limited::new(body, state.max_body_bytes));
        let query = parts.uri.query();
        let outgoing =
            portico_runtime::proxy_request(&prepared, parts.method.clone(), rest, query, parts.headers, body)
                .map_err(|e| refused(&prepared, started, request_error(e)))?;
        let response = answer(&prepared, started, client.send(&prepared, outgoing).await)?;
        let expired = prepared.token.as_ref().is_some_and(|t| t.expired_statuses.contains(&response.status().as_u16()));
        let Some(headers) = retry_headers.filter(|_| expired) else { return Ok(response) };
        drop(response);
        tracing::debug!(connection = %prepared.connection_id, "the backend rejected the access token; renewing it once");
        let renewed = Box::pin(crate::oauth::refresh(state, &prepared)).await?;
        let empty = Either::Right(Full::new(Bytes::new()));
        let outgoing = portico_runtime::proxy_request(&renewed, parts.method, rest, query, headers, empty)
            .map_err(|e| refused(&renewed, started, request_error(e)))?;
        answer(&renewed, started, client.send(&renewed, outgoing).await)
    }
}

/// What the caller gets for the backend's answer (or its absence), counted in the metrics.
fn answer(
    prepared: &PreparedConnection,
    started: Instant,
    sent: Result<Response<Incoming>, UpstreamError>,
) -> Result<Response<ResponseBody>, ApiError> {
    match sent {
        Ok(mut response) => {
            prepared.metrics.record(Outcome::Status(response.status().as_u16()), started.elapsed());
            portico_runtime::strip_hop_by_hop(response.headers_mut());
            Ok(response.map(Either::Left))
        }
        Err(error) => {
            let (outcome, api_error) = upstream_error(error);
            prepared.metrics.record(outcome, started.elapsed());
            Err(api_error)
        }
    }
}

fn refused(prepared: &PreparedConnection, started: Instant, error: ApiError) -> ApiError {
    prepared.metrics.record(Outcome::Refused, started.elapsed());
    error
}

fn request_error(error: RequestError) -> ApiError {
    match error {
        RequestError::PathTraversal | RequestError::InvalidUri => ApiError::BadRequest(error.to_string()),
        RequestError::UnknownOperation(_) => ApiError::NotFound("operation"),
        RequestError::Parameters(errors) => ApiError::Invalid {
            detail: "invalid operation parameters".to_owned(),
            errors: errors
                .into_iter()
                .map(|(field, message)| ProblemField { field: format!("parameters.{field}"), message })
                .collect(),
        },
    }
}

fn upstream_error(error: UpstreamError) -> (Outcome, ApiError) {
    let message = error.to_string();
    match error {
        UpstreamError::NotAllowed(_) => (Outcome::Refused, ApiError::BackendNotAllowed(message)),
        UpstreamError::BodyTooLarge => (Outcome::Refused, ApiError::PayloadTooLarge),
        UpstreamError::Timeout | UpstreamError::ConnectTimeout(_) => {
            (Outcome::Timeout, ApiError::GatewayTimeout(message))
        }
        UpstreamError::Resolve(_) | UpstreamError::Connect(_) | UpstreamError::Tls(_) | UpstreamError::Protocol(_) => {
            (Outcome::Unreachable, ApiError::BadGateway(message))
        }
    }
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
    if method == Method::POST { Ok(()) } else { Err(ApiError::MethodNotAllowed) }
}

async fn operation(
    client: &Client,
    route: Route,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    let started = Instant::now();
    let state = &*client.state;
    post_only(request.method())?;
    let caller = client.caller(request.headers()).await?;
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let prepared = client.prepared(&caller, &path[route.id.0..route.id.1]).await?;
    let call: OperationCall = read_json_body(state, body).await?;
    let operation_id = percent_decode(&path[route.rest.0..route.rest.1]);
    let outgoing = portico_runtime::operation_request(&prepared, &operation_id, call)
        .map_err(|e| refused(&prepared, started, request_error(e)))?;
    answer(&prepared, started, client.send(&prepared, outgoing).await)
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Calls the connector's test operation (or its base URL) and reports what happened.
async fn test(client: &Client, route: Route, request: Request<Incoming>) -> Result<Response<ResponseBody>, ApiError> {
    post_only(request.method())?;
    let caller = client.caller(request.headers()).await?;
    let path = request.uri().path();
    let report = run_test(&client.state, &client.upstream, &caller, &path[route.id.0..route.id.1]).await?;
    Ok(axum::Json(report).into_response().map(Either::Right))
}

/// The test of the caller's connection `id`: `{"ok", "status", "latencyMs", "operation"}`, or
/// `"error"` instead of `"status"` when the backend could not be asked.
pub(crate) async fn run_test(
    state: &AppState,
    upstream: &UpstreamSlot,
    caller: &Caller,
    id: &str,
) -> Result<serde_json::Value, ApiError> {
    let prepared = prepared(state, caller, id).await?;
    let started = Instant::now();
    let operation = prepared.connector.test_operation.clone();
    let outgoing = match &operation {
        Some(op) => {
            portico_runtime::operation_request(&prepared, op, OperationCall::default()).map_err(request_error)?
        }
        None => {
            let empty = Either::Right(Full::new(Bytes::new()));
            portico_runtime::proxy_request(&prepared, Method::GET, "", None, Default::default(), empty)
                .map_err(request_error)?
        }
    };
    let sent = upstream.send(&prepared.target, outgoing, &state.upstream).await;
    let report = match answer(&prepared, started, sent) {
        Ok(response) => {
            let status = response.status();
            // Read (and drop) the answer so the backend connection can be reused.
            let _ = Limited::new(response.into_body(), 1 << 20).collect().await;
            json!({
                "ok": status.is_success(),
                "status": status.as_u16(),
                "latencyMs": started.elapsed().as_millis(),
                "operation": operation,
            })
        }
        Err(error) => {
            let problem = error.into_response();
            json!({
                "ok": false,
                "error": problem_detail(problem).await,
                "latencyMs": started.elapsed().as_millis(),
                "operation": operation,
            })
        }
    };
    Ok(report)
}

async fn problem_detail(response: axum::response::Response) -> String {
    let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
        .unwrap_or_default()
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

    use crate::error::Problem;

    /// Forwards the call to the connector's backend (base URL + `path`) with the
    /// connection's credential; the caller's `Authorization` is not forwarded. Any method.
    #[utoipa::path(get, path = "/v1/connections/{id}/proxy/{path}", tag = "calls",
        params(("id" = String, Path), ("path" = String, Path, description = "Under the connector's base URL")),
        responses((status = 200, description = "The backend's answer, relayed"),
            (status = 403, body = Problem, description = "Backend on a private address"),
            (status = 409, body = Problem, description = "The connection cannot carry calls"),
            (status = 502, body = Problem, description = "Backend unreachable"),
            (status = 504, body = Problem, description = "Backend too slow")),
        security(("apiKey" = [])))]
    pub async fn proxy() {}

    /// Calls one of the connector's operations: `{"parameters": {...}, "body": ...}`.
    #[utoipa::path(post, path = "/v1/connections/{id}/operations/{operationId}", tag = "calls",
        params(("id" = String, Path), ("operationId" = String, Path)),
        responses((status = 200, description = "The backend's answer, relayed"),
            (status = 404, body = Problem, description = "No such operation"),
            (status = 422, body = Problem, description = "Missing or unknown parameters")),
        security(("apiKey" = [])))]
    pub async fn operation() {}

    /// Calls the connector's test operation (or its base URL) and reports the outcome:
    /// `{"ok", "status", "latencyMs", "error"}`.
    #[utoipa::path(post, path = "/v1/connections/{id}/test", tag = "calls", params(("id" = String, Path)),
        responses((status = 200, description = "The outcome")), security(("apiKey" = [])))]
    pub async fn test() {}
}
