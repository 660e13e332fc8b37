use std::sync::Arc;

use portico_app::App;

/// What every handler shares: the use cases, and what only HTTP needs.
pub struct AppState {
    pub app: Arc<App>,
    /// Largest accepted request body (API calls and proxied calls alike).
    pub max_body_bytes: usize,
    /// The portal's signed-in browsers.
    pub portal: crate::portal::Sessions,
    /// The bearer token `/metrics` asks for; `None`: `/metrics` is not served.
    pub metrics_token: Option<portico_secrets::SecretString>,
    /// The client connections held, and their limit.
    pub connections: std::sync::Arc<crate::limits::ConnectionLimit>,
}

/// The address a request came from (its TCP peer), in the extensions of every request the
/// router serves.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::IpAddr);
