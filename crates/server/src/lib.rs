//! Portico's HTTP front doors: the API (`/v1`), calls through connections, and the portal
//! (`/`), served on one runtime per core.
//!
//! Handlers only translate between HTTP and the use cases of `portico-app`, which check every
//! permission and do every write. Every `/v1` route needs an API key; the portal signs a
//! browser in with one.

mod api;
mod auth;
mod clients;
mod connect;
mod error;
mod forms;
mod limits;
mod portal;
mod proxy;
mod serving;
mod state;
mod views;

pub use views::AuditEventView;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Json, Router};
use portico_app::{App, AppConfig, bootstrap};
use portico_model::IdentityProviderCatalog;
use portico_secrets::SecretString;
use tower_http::trace::TraceLayer;
use url::Url;

pub use error::{ApiError, Problem};
use state::AppState;

/// Header fields a request's head may have by default (hyper's own limit).
pub const DEFAULT_MAX_HEADER_COUNT: usize = 100;
/// Bytes a request's head may have by default: 64 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The range `--max-header-count` must be in.
pub const MAX_HEADER_COUNT_RANGE: std::ops::RangeInclusive<usize> = 1..=10_000;
/// The range `--max-header-bytes` must be in: a head needs its request line and `Host`; one
/// past 1 MiB serves no client and holds memory.
pub const MAX_HEADER_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024;

/// Everything `portico serve` needs, resolved from flags, environment and file.
#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…`; `None`: `portico.db` inside the data dir.
    pub database: Option<String>,
    /// The base URL users' browsers reach; `http://<listen>` when not given.
    pub public_url: Option<Url>,
    /// Lets every outbound request (backends, connections' identity providers, webhooks) go
    /// to loopback, private and this host's own addresses.
    pub allow_private_backends: bool,
    /// The master key given by `PORTICO_MASTER_KEY` or `PORTICO_MASTER_KEY_FILE` (base64 of 32
    /// bytes); else `<data dir>/master.key`.
    pub master_key: Option<bootstrap::GivenKey>,
    /// The bearer token `/metrics` asks for; `None`: `/metrics` is not served.
    pub metrics_token: Option<SecretString>,
    /// Largest accepted request body (API calls and proxied calls alike).
    pub max_body_bytes: usize,
    /// Worker threads, each with its own runtime and listener; one per core when `None`.
    pub workers: Option<usize>,
    /// How many prepared connections are kept in memory.
    pub cached_connections: usize,
    /// A PEM file of roots (a private PKI's) that backends' certificates may chain to, besides
    /// the web's roots.
    pub backend_ca_file: Option<PathBuf>,
    /// How long to wait for a backend to accept a connection.
    pub backend_connect_timeout: std::time::Duration,
    /// How long to wait for a backend's response head.
    pub backend_timeout: std::time::Duration,
    /// How long a client connection may go without starting a call (slow request heads
    /// included) before it is closed.
    pub client_idle_timeout: std::time::Duration,
    /// Longest a client may take to send a request's head (headers included).
    pub header_read_timeout: std::time::Duration,
    /// Most header fields in a request's head; more are answered 431 and the connection closed.
    pub max_header_count: usize,
    /// Most bytes in a request's head (request line, header fields, the empty line); more are
    /// answered 431 and the connection closed.
    pub max_header_bytes: usize,
    /// Failed authentications a source address may make per second before it is refused
    /// (`portico_app::throttle`); 0: no limit.
    pub auth_failures_per_second: f64,
    /// Calls through connections a key may make per second (and at once), unless it has its
    /// own limit; `None`: no limit.
    pub key_rate_limit: Option<f64>,
    /// Calls through connections all keys of a tenant may make per second; `None`: no limit.
    pub tenant_rate_limit: Option<f64>,
    /// Most client connections this instance holds at once (fewer when the open-file limit
    /// does not allow as many).
    pub max_client_connections: usize,
    /// Origins besides the public URL's that a sign-in's `returnUrl` may point to.
    pub allowed_return_origins: Vec<Url>,
    /// Identity-provider entries that add to or replace the built-in catalog (a JSON file).
    pub idp_catalog: Option<PathBuf>,
    /// Most connections to PostgreSQL; `None`: [`portico_store::PgOptions`]'s default (10).
    pub database_pool_size: Option<u32>,
    /// People sign in to the portal with this OpenID Connect provider (as well as with keys).
    pub people: Option<portico_app::people::PeopleSettings>,
    /// When webhook deliveries are retried and given up.
    pub deliveries: portico_app::webhooks::DeliverySettings,
    /// What the audit trail records, and for how long.
    pub audit: portico_app::audit::AuditSettings,
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            database: None,
            public_url: None,
            allow_private_backends: false,
            master_key: None,
            metrics_token: None,
            max_body_bytes: 16 * 1024 * 1024,
            workers: None,
            cached_connections: 100_000,
            backend_ca_file: None,
            backend_connect_timeout: std::time::Duration::from_secs(10),
            backend_timeout: std::time::Duration::from_secs(60),
            client_idle_timeout: std::time::Duration::from_secs(60),
            header_read_timeout: std::time::Duration::from_secs(10),
            max_header_count: DEFAULT_MAX_HEADER_COUNT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_client_connections: 10_000,
            auth_failures_per_second: portico_app::throttle::DEFAULT_PER_SECOND,
            key_rate_limit: None,
            tenant_rate_limit: None,
            allowed_return_origins: Vec::new(),
            idp_catalog: None,
            database_pool_size: None,
            people: None,
            deliveries: portico_app::webhooks::DeliverySettings::default(),
            audit: portico_app::audit::AuditSettings::default(),
        }
    }
}

/// A server that is listening.
pub struct Running {
    pub addr: SocketAddr,
    /// Set when this start created the `default` tenant: where its API key was written.
    pub admin_key_file: Option<PathBuf>,
    pub public_url: Url,
    stop: tokio::sync::watch::Sender<bool>,
    workers: Vec<std::thread::JoinHandle<()>>,
    app: Arc<App>,
}

impl Running {
    /// Serves until the process is asked to stop (Ctrl-C or SIGTERM), then lets in-flight
    /// requests finish and writes the audit events they left.
    pub async fn wait(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        let _ = self.stop.send(true);
        let workers = self.workers;
        let stopped = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await
        .context("the workers did not stop cleanly");
        self.app.close_audit().await;
        stopped
    }
}

/// Opens the store, creates the first tenant if there is none, binds and starts serving on one
/// worker thread per core.
pub async fn start(config: ServerConfig) -> anyhow::Result<Running> {
    let opened = bootstrap::open(
        &config.data_dir,
        config.database.as_deref(),
        config.master_key.as_ref(),
        config.database_pool_size,
    )
    .await?;
    let admin_key_file = bootstrap::ensure_default_tenant(opened.store.as_ref(), &config.data_dir).await?;
    let workers = config.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (addr, listeners) =
        serving::bind(config.listen, workers).with_context(|| format!("cannot listen on {}", config.listen))?;
    let public_url = match config.public_url {
        Some(url) => url,
        None => Url::parse(&format!("http://{addr}")).context("cannot make the public URL")?,
    };
    let mut catalog = IdentityProviderCatalog::built_in();
    if let Some(path) = &config.idp_catalog {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let entries: Vec<portico_model::ProviderEntry> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a list of identity-provider entries", path.display()))?;
        catalog.extend(entries);
    }
    let mut upstream = portico_runtime::UpstreamOptions {
        connect_timeout: config.backend_connect_timeout,
        response_timeout: config.backend_timeout,
        ..portico_runtime::UpstreamOptions::new(portico_outbound::AddressPolicy::new(config.allow_private_backends))
    };
    if let Some(path) = &config.backend_ca_file {
        upstream = portico_runtime::read_certificates(path)
            .and_then(|certificates| upstream.trusting(certificates))
            .map_err(|error| anyhow::anyhow!("--backend-ca-file {}: {error}", path.display()))?;
    }
    let app = Arc::new(App::new(
        opened.store,
        opened.ring,
        AppConfig {
            public_url: public_url.clone(),
            allowed_return_origins: config.allowed_return_origins,
            catalog,
            cached_connections: config.cached_connections,
            upstream,
            people: config.people,
            deliveries: config.deliveries,
            auth_failures_per_second: config.auth_failures_per_second,
            key_rate_limit: config.key_rate_limit,
            tenant_rate_limit: config.tenant_rate_limit,
            audit: config.audit,
        },
    )?);
    // Other instances' writes: drop what was prepared from the old state.
    app.follow_changes().await?;
    app.send_webhooks();
    app.start_audit();
    let state = Arc::new(AppState {
        app: app.clone(),
        max_body_bytes: config.max_body_bytes,
        portal: portal::Sessions::default(),
        metrics_token: config.metrics_token,
        connections: limits::ConnectionLimit::new(config.max_client_connections),
    });
    let router = router(state.clone(), config.max_body_bytes);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let limits = serving::ClientLimits {
        idle: config.client_idle_timeout,
        header_read: config.header_read_timeout,
        max_header_count: config.max_header_count,
        max_header_bytes: config.max_header_bytes,
    };
    let workers =
        serving::spawn_workers(listeners, state, router, limits, stopped).context("cannot start the workers")?;
    Ok(Running { addr, admin_key_file, public_url, stop, workers, app })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
    tracing::info!("shutting down");
}

/// The OpenAPI 3.1 document of Portico's own API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::document(api::routes().split_for_parts().1)
}

fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    let (router, api) = api::routes().split_for_parts();
    let api = Arc::new(api::document(api));
    router
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(move || {
                let api = api.clone();
                async move { Json(api.as_ref().clone()) }
            }),
        )
        .merge(portal::routes())
        .merge(connect::routes())
        .fallback(error::fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Spans name the path, not the query (a callback's query holds the code and state),
        // and not a connect token in the path.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<axum::body::Body>| {
            tracing::debug_span!("request", method = %request.method(), path = %loggable_path(request.uri().path()))
        }))
        .with_state(state)
}

/// A request's path as logs may show it: a connect token (the credential in the path of
/// `/connect/{token}…` and `/v1/connect/{token}…`) is left out.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in ["/connect/", "/v1/connect/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let tail = rest.find('/').map_or("", |at| &rest[at..]);
            return format!("{prefix}[token]{tail}").into();
        }
    }
    path.into()
}

/// Prometheus metrics of calls through connections and of webhook deliveries, for a scraper
/// that presents the metrics token (they name every tenant's connectors).
async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, error::ApiError> {
    use axum::response::IntoResponse;
    let Some(token) = &state.metrics_token else {
        return Err(error::ApiError::NotFound("/metrics is served only with a metrics token (--metrics-token)"));
    };
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !portico_secrets::constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) {
        return Err(error::ApiError::Unauthorized);
    }
    let mut text = state.app.render_metrics();
    text.push_str(&state.connections.render());
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn connect_tokens_are_left_out_of_logged_paths() {
        assert_eq!(loggable_path("/connect/cst_abc/done"), "/connect/[token]/done");
        assert_eq!(loggable_path("/v1/connect/cst_abc"), "/v1/connect/[token]");
        assert_eq!(loggable_path("/v1/connect-sessions/cs_1"), "/v1/connect-sessions/cs_1");
        assert_eq!(loggable_path("/v1/connections/c1"), "/v1/connections/c1");
    }
}
