//! Portico's HTTP API.
//!
//! Handlers only translate between HTTP and the domain: the model checks values, the store
//! keeps records, the secrets crate seals. Every `/v1` route needs a tenant's API key.

mod auth;
pub mod bootstrap;
mod connections;
mod connectors;
mod error;
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
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use url::Url;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, Problem};
use state::AppState;

/// Everything `portico serve` needs, resolved from flags, environment and file.
#[derive(Debug, Clone)]
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
    /// Largest accepted request body.
    pub max_body_bytes: usize,
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
        }
    }
}

/// A server that is listening.
pub struct Running {
    pub addr: SocketAddr,
    /// Set when this start created the `default` tenant: where its API key was written.
    pub admin_key_file: Option<PathBuf>,
    pub public_url: Url,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Serves until the process is asked to stop (Ctrl-C or SIGTERM).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await.context("the server task failed")?.context("the server stopped")
    }
}

/// Opens the store, creates the first tenant if there is none, binds and starts serving.
pub async fn start(config: ServerConfig) -> anyhow::Result<Running> {
    let opened = bootstrap::open(&config.data_dir, config.database.as_deref(), config.master_key.as_ref()).await?;
    let admin_key_file = bootstrap::ensure_default_tenant(opened.store.as_ref(), &config.data_dir).await?;
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url = match config.public_url {
        Some(url) => url,
        None => Url::parse(&format!("http://{addr}")).context("cannot make the public URL")?,
    };
    let state = Arc::new(AppState {
        store: opened.store,
        master_key: opened.master_key,
        api_keys: auth::ApiKeyCache::default(),
        catalog: IdentityProviderCatalog::built_in(),
        public_url: public_url.clone(),
    });
    let app = app(state, config.max_body_bytes);
    let server =
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await });
    Ok(Running { addr, admin_key_file, public_url, server })
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
    tags((name = "connectors", description = "Connector definitions, for connector authors"),
         (name = "connections", description = "Authenticated connections, for users"),
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
        .route(
            "/openapi.json",
            get(move || {
                let api = api.clone();
                async move { Json(api.as_ref().clone()) }
            }),
        )
        .fallback(error::fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
