use std::sync::Arc;

use portico_model::IdentityProviderCatalog;
use portico_secrets::MasterKey;
use portico_store::Store;
use url::Url;

use crate::auth::ApiKeyCache;

/// What every handler shares.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub master_key: MasterKey,
    pub api_keys: ApiKeyCache,
    pub catalog: IdentityProviderCatalog,
    /// The base URL users' browsers reach (OAuth redirect URIs are made from it).
    pub public_url: Url,
    /// Prepared connections, so that a call makes no store query.
    pub connections: portico_runtime::ConnectionCache,
    pub metrics: portico_runtime::Metrics,
    pub upstream: portico_runtime::UpstreamOptions,
    pub max_body_bytes: usize,
    pub oauth: crate::oauth::OAuthSupport,
}

impl AppState {
    /// `<public url>/oauth/callback`: the redirect URI to register with identity providers.
    pub fn redirect_uri(&self) -> String {
        format!("{}/oauth/callback", self.public_url.as_str().trim_end_matches('/'))
    }
}
