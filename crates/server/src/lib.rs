//! Portico's HTTP API.
//!
//! Handlers only translate between HTTP and the domain: the model checks values, the store
//! keeps records, the secrets crate seals. Every `/v1` route needs a tenant's API key; the
//! portal (`/`) signs a browser in with one.

mod auth;
pub mod bootstrap;
mod clients;
mod connections;
mod connectors;
mod error;
mod oauth;
mod portal;
mod proxy;
mod serving;
mod state;
mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Json, Router};
use portico_model::IdentityProviderCatalog;
use portico_secrets::SecretString;
use tower_http::trace::TraceLayer;
use url::Url;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, Problem};
use state::AppState;

/// Everything `portico serve` needs, resolved from flags, environment and file.
#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…`; `None`: `portico.db` inside the data dir.
    pub database: Option<String>,
    /// The base URL users' browsers reach; `http://<listen>` when not given.
    pub public_url: Option<Url>,
    pub allow_private_backends: bool,
    /// `PORTICO_MASTER_KEY` (base64 of 32 bytes); else `<data dir>/master.key`.
    pub master_key: Option<SecretString>,
    /// Largest accepted request body (API calls and proxied calls alike).
    pub max_body_bytes: usize,
    /// Worker threads, each with its own runtime and listener; one per core when `None`.
    pub workers: Option<usize>,
    /// How many prepared connections are kept in memory.
    pub cached_connections: usize,
    /// How long to wait for a backend to accept a connection.
    pub backend_connect_timeout: std::time::Duration,
    /// How long to wait for a backend's response head.
    pub backend_timeout: std::time::Duration,
    /// How long a client connection may go without starting a call (slow request heads
    /// included) before it is closed.
    pub client_idle_timeout: std::time::Duration,
    /// Origins besides the public URL's that a sign-in's `returnUrl` may point to.
    pub allowed_return_origins: Vec<Url>,
    /// Identity-provider entries that add to or replace the built-in catalog (a JSON file).
    pub idp_catalog: Option<PathBuf>,
    /// Most connections to PostgreSQL; `None`: [`portico_store::PgOptions`]'s default (10).
    pub database_pool_size: Option<u32>,
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
            max_body_bytes: 16 * 1024 * 1024,
            workers: None,
            cached_connections: 100_000,
            backend_connect_timeout: std::time::Duration::from_secs(10),
            backend_timeout: std::time::Duration::from_secs(60),
            client_idle_timeout: std::time::Duration::from_secs(60),
            allowed_return_origins: Vec::new(),
            idp_catalog: None,
            database_pool_size: None,
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
}

impl Running {
    /// Serves until the process is asked to stop (Ctrl-C or SIGTERM), then lets in-flight
    /// requests finish.
    pub async fn wait(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        let _ = self.stop.send(true);
        let workers = self.workers;
        tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await
        .context("the workers did not stop cleanly")
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
    let return_origins = config.allowed_return_origins.iter().map(Url::origin).collect();
    let state = Arc::new(AppState {
        store: opened.store,
        master_key: opened.master_key,
        api_keys: auth::ApiKeyCache::default(),
        catalog,
        public_url: public_url.clone(),
        oauth: oauth::OAuthSupport::new(tokio::runtime::Handle::current(), return_origins),
        connections: portico_runtime::ConnectionCache::new(config.cached_connections),
        metrics: portico_runtime::Metrics::default(),
        upstream: portico_runtime::UpstreamOptions {
            connect_timeout: config.backend_connect_timeout,
            response_timeout: config.backend_timeout,
            ..portico_runtime::UpstreamOptions::new(config.allow_private_backends)
        },
        max_body_bytes: config.max_body_bytes,
        portal: portal::Sessions::default(),
    });
    if let Some(mut changes) = state.store.subscribe_changes().await? {
        // Other instances' writes: drop what was prepared from the old state.
        let state = state.clone();
        tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                state.apply_change(change);
            }
        });
    }
    let router = app(state.clone(), config.max_body_bytes);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = serving::spawn_workers(listeners, state, router, config.client_idle_timeout, stopped)
        .context("cannot start the workers")?;
    Ok(Running { addr, admin_key_file, public_url, stop, workers })
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

#[derive(OpenApi)]
#[openapi(
    info(title = "Portico", description = "Custom connectors and their connections."),
    modifiers(&ApiKeyScheme),
    paths(proxy::described::proxy, proxy::described::operation, proxy::described::test),
    tags((name = "connectors", description = "Connector definitions, for connector authors"),
         (name = "connections", description = "Authenticated connections, for users"),
         (name = "calls", description = "Calls to backends through connections"),
         (name = "health", description = "Liveness and readiness")),
)]
struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("apiKey", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The routes and their OpenAPI description, from one list so that they cannot drift apart.
fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(connectors::create, connectors::list))
        .routes(routes!(connectors::get, connectors::replace, connectors::delete))
        .routes(routes!(connectors::connection_form))
        .routes(routes!(connections::create, connections::list))
        .routes(routes!(connections::get, connections::update, connections::delete))
        .routes(routes!(connections::reauthorize))
        .routes(routes!(connections::oauth_callback))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The OpenAPI 3.1 document of Portico's own API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

fn app(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    let (router, api) = routes().split_for_parts();
    let api = Arc::new(api);
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
        .fallback(error::fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Spans name the path, not the query: a callback's query holds the code and state.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<axum::body::Body>| {
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}

/// Prometheus metrics of calls through connections.
async fn metrics(State(state): State<Arc<AppState>>) -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "The process is up")))]
async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "The store answers"), (status = 503, body = Problem)))]
async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state.store.ping().await?;
    Ok("ready")
}
