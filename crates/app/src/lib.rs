//! Portico's use cases: every action a principal can take — register a connector, create,
//! share, authorize and call through a connection, create and revoke a key — with its
//! permission check ([`access`]) and what it writes. Front doors (the HTTP API, the portal, the
//! command line, and later connect pages and MCP) only translate their requests into calls on
//! [`App`] and its answers back; none of them checks a permission or touches the store itself.
//!
//! Architecture invariant: this crate knows nothing of HTTP servers (no status codes, no
//! routers, no pages). Its errors ([`Error`]) say what went wrong in the domain's words.

pub mod access;
pub mod audit;
pub mod bootstrap;
pub mod calls;
pub mod connect;
pub mod connections;
pub mod connectors;
pub mod data_keys;
mod error;
pub mod events;
pub mod keys;
pub mod members;
pub mod oauth;
pub mod people;
mod principal;
pub mod ratelimit;
mod sealing;
pub mod shares;
pub mod throttle;
pub mod webhooks;

use std::sync::Arc;

use portico_model::IdentityProviderCatalog;
use portico_runtime::{ConnectionCache, Metrics, UpstreamOptions};
use portico_secrets::KeyRing;
use portico_store::{Change, Store};
use url::Url;

pub use error::{Error, Result};
pub use principal::{Actor, KeyCache, Principal};

/// What the use cases need beside the store and the master key.
pub struct AppConfig {
    /// The base URL users' browsers reach (OAuth redirect URIs are made from it).
    pub public_url: Url,
    /// Origins besides the public URL's that a sign-in may return to.
    pub allowed_return_origins: Vec<Url>,
    pub catalog: IdentityProviderCatalog,
    /// How many prepared connections are kept in memory.
    pub cached_connections: usize,
    /// How backends are reached. Its `addresses` is the rule of every outbound request: the
    /// calls through connections, their identity providers' token, discovery and revocation
    /// requests, and webhook deliveries.
    pub upstream: UpstreamOptions,
    /// How people sign in to the portal, besides with an API key.
    pub people: Option<people::PeopleSettings>,
    /// When webhook deliveries are retried and given up.
    pub deliveries: webhooks::DeliverySettings,
    /// Failed authentications a source address may make per second (ten times as many at
    /// once) before it is refused without a store query; 0: no limit.
    pub auth_failures_per_second: f64,
    /// Calls through connections per second (and at once) a key may make, unless it has a
    /// limit of its own; `None`: no limit.
    pub key_rate_limit: Option<f64>,
    /// Calls through connections per second (and at once) all keys of a tenant together may
    /// make; `None`: no limit.
    pub tenant_rate_limit: Option<f64>,
    /// What the audit trail records, and for how long.
    pub audit: audit::AuditSettings,
}

/// The use cases and what they share. One per process; every front door holds it.
pub struct App {
    pub store: Arc<dyn Store>,
    /// The master key and the data keys: what seals and opens stored values.
    ring: Arc<KeyRing>,
    /// API keys seen before, as principals.
    pub keys: KeyCache,
    /// Failed authentications by source address.
    pub auth_failures: throttle::AuthFailures,
    /// Rate limits of calls through connections, by key and tenant.
    pub limits: ratelimit::ServerLimits,
    pub catalog: IdentityProviderCatalog,
    pub public_url: Url,
    /// Prepared connections, so that a call makes no store query.
    pub connections: ConnectionCache,
    pub metrics: Metrics,
    pub upstream: UpstreamOptions,
    oauth: oauth::OAuthSupport,
    people: Option<people::People>,
    webhooks: webhooks::WebhookSupport,
    audit: audit::AuditLog,
}

impl App {
    /// Token requests and change notices run on the runtime current here, not on the threads
    /// that serve calls.
    pub fn new(store: Arc<dyn Store>, ring: Arc<KeyRing>, config: AppConfig) -> anyhow::Result<App> {
        let return_origins = config.allowed_return_origins.iter().map(Url::origin).collect();
        let people = config.people.map(|settings| people::People::new(settings, &config.public_url)).transpose()?;
        let addresses = config.upstream.addresses;
        Ok(App {
            store,
            ring,
            keys: KeyCache::default(),
            auth_failures: throttle::AuthFailures::new(config.auth_failures_per_second),
            limits: ratelimit::ServerLimits::new(config.key_rate_limit, config.tenant_rate_limit),
            catalog: config.catalog,
            public_url: config.public_url,
            connections: ConnectionCache::new(config.cached_connections),
            metrics: Metrics::default(),
            upstream: config.upstream,
            oauth: oauth::OAuthSupport::new(tokio::runtime::Handle::current(), return_origins, addresses),
            people,
            webhooks: webhooks::WebhookSupport::new(config.deliveries, addresses),
            audit: audit::AuditLog::new(config.audit),
        })
    }

    /// Applies another process's change notices as they come, for as long as the process
    /// runs (a store used by one process has none), and reads the data keys again every
    /// [`data_keys::POLL_INTERVAL`]: a rotation run by `portico keys rotate` (which may not
    /// reach this process with a notice) is seen within that time.
    pub async fn follow_changes(self: &Arc<App>) -> Result<()> {
        let (store, ring) = (self.store.clone(), self.ring.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(data_keys::POLL_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(error) = data_keys::load(store.as_ref(), &ring).await {
                    tracing::error!("cannot read the data keys again: {error:#}");
                }
            }
        });
        if let Some(mut changes) = self.store.subscribe_changes().await? {
            let app = self.clone();
            tokio::spawn(async move {
                while let Some(change) = changes.recv().await {
                    app.apply_change(&change);
                }
            });
        }
        Ok(())
    }

    /// After a write: what this process prepared or remembered from the old state is dropped
    /// here, and every other process on the store is told to drop its own.
    pub(crate) fn changed(&self, change: Change) {
        self.apply_change(&change);
        let store = self.store.clone();
        self.oauth.background.spawn(async move {
            if let Err(error) = store.publish_change(&change).await {
                tracing::warn!(%error, "cannot tell other instances about a change");
            }
        });
    }

    /// Drops what was prepared or remembered from the state a change replaced.
    pub fn apply_change(&self, change: &Change) {
        match change {
            Change::Connection(id) => {
                self.connections.invalidate(id);
                // Its events (if any) are in the outbox: this instance's sender may take them.
                self.deliveries_due();
            }
            Change::Connector(id) => {
                self.connections.invalidate_connector(id);
                self.deliveries_due();
            }
            Change::ApiKey(id) => self.keys.forget_key(id),
            Change::Member(_) => self.keys.bump(),
            Change::DataKeys => self.reload_data_keys(),
            Change::Everything => {
                self.connections.clear();
                self.keys.forget_all();
                self.reload_data_keys();
            }
        }
    }

    /// Reads the data keys again, in the background: a rotation began or ended.
    fn reload_data_keys(&self) {
        let (store, ring) = (self.store.clone(), self.ring.clone());
        self.oauth.background.spawn(async move {
            if let Err(error) = data_keys::load(store.as_ref(), &ring).await {
                tracing::error!("cannot read the data keys again: {error:#}");
            }
        });
    }

    /// `<public url>/oauth/callback`: the redirect URI to register with identity providers.
    pub fn redirect_uri(&self) -> String {
        format!("{}/oauth/callback", self.public_url.as_str().trim_end_matches('/'))
    }

    /// The Prometheus text of calls through connections and of webhook deliveries.
    pub fn render_metrics(&self) -> String {
        let mut text = self.metrics.render();
        text.push_str(&self.webhooks.metrics.render(portico_store::now_millis()));
        text.push_str(&self.audit.render());
        text
    }

    /// Is the store reachable?
    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }
}
