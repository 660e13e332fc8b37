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
    /// The portal's signed-in browsers.
    pub portal: crate::portal::Sessions,
}

impl AppState {
    /// After a write to a connection: its prepared form is dropped here, and every other
    /// process on the store is told to drop its own.
    pub fn changed_connection(&self, id: &str) {
        self.connections.invalidate(id);
        self.publish(portico_store::Change::Connection(id.to_owned()));
    }

    /// After a write to a connector: the prepared forms of all its connections are dropped.
    pub fn changed_connector(&self, id: &str) {
        self.connections.invalidate_connector(id);
        self.publish(portico_store::Change::Connector(id.to_owned()));
    }

    fn publish(&self, change: portico_store::Change) {
        let store = self.store.clone();
        self.oauth.background.spawn(async move {
            if let Err(error) = store.publish_change(&change).await {
                tracing::warn!(%error, "cannot tell other instances about a change");
            }
        });
    }

    /// Applies a change another process published.
    pub fn apply_change(&self, change: portico_store::Change) {
        match change {
            portico_store::Change::Connection(id) => self.connections.invalidate(&id),
            portico_store::Change::Connector(id) => self.connections.invalidate_connector(&id),
            portico_store::Change::Everything => self.connections.clear(),
        }
    }

    /// `<public url>/oauth/callback`: the redirect URI to register with identity providers.
    pub fn redirect_uri(&self) -> String {
        format!("{}/oauth/callback", self.public_url.as_str().trim_end_matches('/'))
    }
}
