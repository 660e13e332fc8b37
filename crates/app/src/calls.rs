//! Calling through a connection: who is calling, whether they may, and the connection
//! prepared for the call — from memory in the steady state.
//!
//! A [`CallSession`] is what one client connection (or any other long-lived caller) keeps
//! between its calls: the `Authorization` value it last sent with the principal it named, and
//! the prepared connection it last called. A repeated call then hashes nothing and looks
//! nothing up in a shared map, and still has its permission checked — from the prepared
//! connection's ownership, never from the store.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use portico_model::Ownership;
use portico_runtime::{
    OperationCall, OutBody, Outcome, PrepareError, PreparedConnection, RequestError, UpstreamError, UpstreamSlot,
};
use portico_store::{ConnectionRecord, ConnectionStatus};
use serde::Serialize;

use crate::access::{self, Need};
pub use crate::audit::CallKind;
use crate::error::{Error, Result};
use crate::{App, Principal};

/// What a client connection remembers between its calls.
#[derive(Default)]
pub struct CallSession {
    memo: Mutex<Memo>,
}

#[derive(Default)]
struct Memo {
    /// The `Authorization` value, the principal it named, and the key cache's generation then.
    key: Option<(Box<[u8]>, Principal, u64)>,
    /// The connection cache's generation it was read in, and the connection.
    connection: Option<(u64, Arc<PreparedConnection>)>,
}

impl CallSession {
    fn memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The principal named by an `Authorization` header value (`Bearer <api key>`).
    pub async fn principal(
        &self,
        app: &App,
        authorization: Option<&[u8]>,
        source: Option<std::net::IpAddr>,
    ) -> Result<Principal> {
        let generation = app.keys.generation();
        if let Some(value) = authorization
            && let Some((known, principal, seen)) = &self.memo().key
            && *seen == generation
            && portico_secrets::constant_time_eq(known, value)
        {
            if principal.expires_at.is_some() && principal.expired(portico_store::now_millis()) {
                return Err(Error::Unauthenticated);
            }
            return Ok(principal.clone());
        }
        // Boxed, as every rarely taken path here: the future of a call stays small.
        let principal = Box::pin(app.authenticate_bearer(authorization, source)).await?;
        if let Some(value) = authorization {
            // A copy of its own: cloning the cache's would touch what other threads use.
            self.memo().key = Some((value.into(), principal.detached(), generation));
        }
        Ok(principal)
    }

    /// The connection `id` prepared for a call by `principal`, who must be allowed to call
    /// through it; remembered for this session's next call.
    pub async fn connection(&self, app: &App, principal: &Principal, id: &str) -> Result<Arc<PreparedConnection>> {
        principal.limits.take().map_err(Error::RateLimited)?;
        let generation = app.connections.generation();
        let remembered = self
            .memo()
            .connection
            .as_ref()
            .and_then(|(g, p)| (*g == generation && p.connection_id == id).then(|| p.clone()));
        let prepared = match remembered {
            Some(p) => {
                app.authorize_call(principal, &p)?;
                if !p.needs_refresh(portico_store::now_millis()) {
                    return Ok(p);
                }
                Box::pin(app.refresh(&p)).await?
            }
            None => Box::pin(app.prepared(principal, id)).await?,
        };
        self.memo().connection = Some((generation, prepared.clone()));
        Ok(prepared)
    }
}

/// How a connection's test went.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    pub ok: bool,
    /// The backend's status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the backend could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: u128,
    /// The operation called; `None`: a `GET` of the base URL.
    pub operation: Option<String>,
}

/// Why a connection cannot carry calls now.
pub fn not_ready(record: &ConnectionRecord) -> Error {
    Error::ConnectionNotReady(format!(
        "the connection is {}{}",
        record.status.as_str(),
        record.status_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
    ))
}

/// A request that could not be built for the backend, in the domain's words.
pub fn request_error(error: RequestError) -> Error {
    match error {
        RequestError::PathTraversal | RequestError::InvalidUri => Error::BadRequest(error.to_string()),
        RequestError::UnknownOperation(_) => Error::NotFound("operation"),
        RequestError::Parameters(errors) => Error::invalid_fields(
            "invalid operation parameters",
            errors
                .into_iter()
                .map(|(field, message)| portico_model::FieldError { field: format!("parameters.{field}"), message })
                .collect(),
        ),
    }
}

/// A backend that did not answer, as an outcome for the metrics and an error for the caller.
pub fn upstream_error(error: UpstreamError) -> (Outcome, Error) {
    let message = error.to_string();
    match error {
        UpstreamError::NotAllowed(_) => (Outcome::Refused, Error::BackendNotAllowed(message)),
        UpstreamError::BodyTooLarge => (Outcome::Refused, Error::PayloadTooLarge),
        UpstreamError::Timeout | UpstreamError::ConnectTimeout(_) => (Outcome::Timeout, Error::GatewayTimeout(message)),
        UpstreamError::Resolve(_) | UpstreamError::Connect(_) | UpstreamError::Tls(..) | UpstreamError::Protocol(_) => {
            (Outcome::Unreachable, Error::BadGateway(message))
        }
    }
}

/// One call through a connection, as the metrics and the audit trail count it.
pub struct Call<'a> {
    pub app: &'a App,
    pub principal: &'a Principal,
    pub kind: CallKind<'a>,
    pub started: Instant,
}

impl Call<'_> {
    /// The backend's answer (or its absence), counted; hop-by-hop headers dropped.
    pub fn answered(
        &self,
        prepared: &Arc<PreparedConnection>,
        sent: Result<Response<Incoming>, UpstreamError>,
    ) -> Result<Response<Incoming>> {
        match sent {
            Ok(mut response) => {
                self.record(prepared, Outcome::Status(response.status().as_u16()));
                portico_runtime::strip_hop_by_hop(response.headers_mut());
                Ok(response)
            }
            Err(error) => {
                let (outcome, error) = upstream_error(error);
                self.record(prepared, outcome);
                Err(error)
            }
        }
    }

    /// A call refused before it reached the backend, counted.
    pub fn refused(&self, prepared: &Arc<PreparedConnection>, error: Error) -> Error {
        self.record(prepared, Outcome::Refused);
        error
    }

    fn record(&self, prepared: &Arc<PreparedConnection>, outcome: Outcome) {
        let elapsed = self.started.elapsed();
        prepared.metrics.record(outcome, elapsed);
        self.app.audit_call(self.principal, prepared, self.kind, outcome, elapsed);
    }
}

impl App {
    /// The principal named by an `Authorization` header value (`Bearer <api key>`).
    pub async fn authenticate_bearer(
        &self,
        authorization: Option<&[u8]>,
        source: Option<std::net::IpAddr>,
    ) -> Result<Principal> {
        let header = authorization.and_then(|v| std::str::from_utf8(v).ok()).ok_or(Error::Unauthenticated)?;
        let (scheme, key) = header.split_once(' ').ok_or(Error::Unauthenticated)?;
        let key = key.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
            return Err(Error::Unauthenticated);
        }
        self.authenticate(key, source).await
    }

    /// May `principal` call through `prepared`? Checked in memory, on every call.
    pub fn authorize_call(&self, principal: &Principal, prepared: &PreparedConnection) -> Result<()> {
        // Another tenant's connection answers exactly like a missing one.
        if *prepared.tenant_id != *principal.tenant_id {
            return Err(Error::NotFound("connection"));
        }
        access::connection(principal, &prepared.connection_id, &prepared.ownership, Need::Call)
    }

    /// The connection `id` prepared for a call by `principal`: from memory, else loaded,
    /// checked and prepared once; an OAuth 2.0 token due for renewal is renewed first.
    pub async fn prepared(&self, principal: &Principal, id: &str) -> Result<Arc<PreparedConnection>> {
        let prepared = match self.connections.get(id) {
            Some(prepared) => prepared,
            None => {
                let generation = self.connections.generation();
                let record =
                    self.store.connection(&principal.tenant_id, id).await?.ok_or(Error::NotFound("connection"))?;
                let ownership = self.ownership(&record).await?;
                // Checked before anything is prepared: a caller who may not see the connection
                // learns nothing of its state.
                access::connection(principal, id, &ownership, Need::Call)?;
                self.prepare(record, ownership, generation).await?
            }
        };
        self.authorize_call(principal, &prepared)?;
        if prepared.needs_refresh(portico_store::now_millis()) {
            return self.refresh(&prepared).await;
        }
        Ok(prepared)
    }

    /// Reads a connection from the store and prepares it (see [`App::prepare`]).
    pub(crate) async fn load(&self, tenant_id: &str, id: &str) -> Result<Arc<PreparedConnection>> {
        let generation = self.connections.generation();
        let record = self.store.connection(tenant_id, id).await?.ok_or(Error::NotFound("connection"))?;
        let ownership = self.ownership(&record).await?;
        self.prepare(record, ownership, generation).await
    }

    /// Prepares a connection read in the cache's `generation` with its connector, and caches
    /// the result unless something changed meanwhile.
    async fn prepare(
        &self,
        record: ConnectionRecord,
        ownership: Ownership,
        generation: u64,
    ) -> Result<Arc<PreparedConnection>> {
        if record.status != ConnectionStatus::Connected {
            return Err(not_ready(&record));
        }
        let connector = self
            .store
            .connector(&record.tenant_id, &record.connector_id)
            .await?
            .ok_or(Error::NotFound("connection"))?;
        let secrets = self.open_secrets(&record).await?;
        let bearer = self.bearer(&connector, &record).await?;
        let metrics = self.metrics.connector(&connector.id, &connector.connector.metadata.name);
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
            PrepareError::NoAccessToken => Error::ConnectionNotReady(e.to_string()),
            PrepareError::HostNotAllowed(_) => Error::BackendNotAllowed(e.to_string()),
            other => Error::ConnectionNotReady(format!("the connection cannot be used: {other}")),
        })?;
        prepared.token = bearer.map(|(_, times, _)| times);
        prepared.ownership = ownership;
        let prepared = Arc::new(prepared);
        self.connections.insert(prepared.clone(), generation);
        Ok(prepared)
    }

    /// Calls the connector's test operation (or a `GET` of its base URL) through connection
    /// `id` on `upstream`, and reports what happened.
    pub async fn test_connection(
        &self,
        principal: &Principal,
        upstream: &UpstreamSlot,
        id: &str,
    ) -> Result<TestReport> {
        let prepared = self.prepared(principal, id).await?;
        let started = Instant::now();
        let operation = prepared.connector.test_operation.clone();
        let call = Call { app: self, principal, kind: CallKind::Test(operation.as_deref()), started };
        let outgoing: Request<OutBody> = match &operation {
            Some(op) => portico_runtime::operation_request(&prepared, op, OperationCall::default()),
            None => {
                let empty = Either::Right(Full::new(Bytes::new()));
                portico_runtime::proxy_request(&prepared, Method::GET, "", None, Default::default(), empty)
            }
        }
        .map_err(|e| call.refused(&prepared, request_error(e)))?;
        let sent = upstream.send(&prepared.target, outgoing, &self.upstream).await;
        let (status, error) = match call.answered(&prepared, sent) {
            Ok(response) => {
                let status = response.status();
                // Read (and drop) the answer so the backend connection can be reused.
                let _ = Limited::new(response.into_body(), 1 << 20).collect().await;
                (Some(status.as_u16()), None)
            }
            Err(error) => (None, Some(error.to_string())),
        };
        tracing::info!(connection = %id, principal = %principal.reference(), ok = status.is_some_and(|s| (200..300).contains(&s)),
            "connection tested");
        Ok(TestReport {
            ok: status.is_some_and(|s| (200..300).contains(&s)),
            status,
            error,
            latency_ms: started.elapsed().as_millis(),
            operation,
        })
    }
}
