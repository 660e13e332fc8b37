//! Where Portico may send a request: one rule for every outbound request — the calls through
//! connections (`portico-runtime`'s upstream), the token, discovery and revocation requests of
//! connections' OAuth 2.0 (`portico-oauth`) and the webhook deliveries (`portico-app`).
//!
//! Unless the operator allows private backends, a request may go only to a public address:
//! none of the IANA special-purpose blocks ([`is_special_purpose`]: loopback, private,
//! link-local, documentation, multicast…) and none of this host's own addresses. The address is
//! checked after the name is resolved and before any connection is attempted, so a refused
//! target looks the same whether something listens there or not; and every address a name
//! resolves to must pass, so a name cannot mix a public answer with a private one.
//!
//! Not under the rule: the OpenID Connect provider people sign in to the portal with
//! (`portico-oidc`), which the operator configures with flags and trusts like the rest of the
//! configuration.

mod local;
mod special;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub use special::is_special_purpose;
use url::Url;

/// The address rule: public addresses only, or (`--allow-private-backends`) any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    allow_private: bool,
}

/// A request refused by the address rule, before any connection. It names no host: a host may
/// come from a template filled with a connection's secret values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the address is loopback, private, this host's own or otherwise not public, and this server sends no request there"
)]
pub struct NotAllowed;

impl AddressPolicy {
    /// Only public addresses. Reads this host's interface addresses now, and keeps them current.
    pub fn public_only() -> AddressPolicy {
        local::watch();
        AddressPolicy { allow_private: false }
    }

    /// Any address: for backends and identity providers on the operator's own network.
    pub fn allow_private() -> AddressPolicy {
        AddressPolicy { allow_private: true }
    }

    /// [`AddressPolicy::allow_private`] or [`AddressPolicy::public_only`].
    pub fn new(allow_private: bool) -> AddressPolicy {
        if allow_private { AddressPolicy::allow_private() } else { AddressPolicy::public_only() }
    }

    pub fn allows_private(self) -> bool {
        self.allow_private
    }

    /// Checks one resolved address.
    pub fn check(self, ip: IpAddr) -> Result<(), NotAllowed> {
        if self.allows(ip, local::is_local) { Ok(()) } else { Err(NotAllowed) }
    }

    fn allows(self, ip: IpAddr, is_local: impl Fn(IpAddr) -> bool) -> bool {
        if self.allow_private {
            return true;
        }
        // A mapped, NAT64 or 6to4 address reaches the IPv4 address it embeds.
        special::reached(ip).is_some_and(|reached| !is_local(reached) && !is_local(ip))
    }

    /// Checks every address a name resolved to: one refused address refuses them all, rather
    /// than leaving the choice to whoever controls the name. No address at all is not refused
    /// here: the connection fails as for any name that does not resolve.
    pub fn check_all(self, addresses: &[SocketAddr]) -> Result<(), NotAllowed> {
        addresses.iter().try_for_each(|address| self.check(address.ip()))
    }

    /// Checks a URL's host without resolving it: an IP literal (which an HTTP client connects to
    /// without asking a resolver) and the `localhost` names (RFC 6761 §6.3), refused by name.
    /// Other names are checked when they are resolved ([`HttpClient`] does).
    pub fn check_url(self, url: &Url) -> Result<(), NotAllowed> {
        match url.host() {
            _ if self.allow_private => Ok(()),
            Some(url::Host::Ipv4(ip)) => self.check(ip.into()),
            Some(url::Host::Ipv6(ip)) => self.check(ip.into()),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") { Err(NotAllowed) } else { Ok(()) }
            }
            None => Err(NotAllowed),
        }
    }

    /// Resolves `host` (a name or an IP literal) and checks every address it resolved to.
    pub async fn resolve(self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((host, port)).await.map_err(|_| ResolveError::Unresolved)?.collect();
        self.check_all(&addresses).map_err(ResolveError::NotAllowed)?;
        Ok(addresses)
    }
}

/// Why [`AddressPolicy::resolve`] gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("the name does not resolve")]
    Unresolved,
    #[error(transparent)]
    NotAllowed(NotAllowed),
}

/// The resolver of every [`HttpClient`]: a name is refused if any of its addresses is.
impl reqwest::dns::Resolve for AddressPolicy {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the client puts the URL's in.
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            policy.check_all(&addresses)?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An HTTP client whose every request passes the address rule: names through its resolver, IP
/// literals and `localhost` before the request is made. It follows no redirect (the target of
/// one would not have been checked, and credentials must not follow one) and uses no proxy from
/// the environment (a proxy resolves names itself, past the rule).
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: AddressPolicy,
}

impl HttpClient {
    /// `builder` (timeouts, TLS, user agent…) with the rule applied.
    pub fn new(builder: reqwest::ClientBuilder, policy: AddressPolicy) -> reqwest::Result<HttpClient> {
        let inner =
            builder.redirect(reqwest::redirect::Policy::none()).no_proxy().dns_resolver(Arc::new(policy)).build()?;
        Ok(HttpClient { inner, policy })
    }

    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, NotAllowed> {
        self.request(reqwest::Method::GET, url)
    }

    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, NotAllowed> {
        self.request(reqwest::Method::POST, url)
    }

    /// A request to `url`, or [`NotAllowed`] when its host is an address the rule refuses. A
    /// URL that does not parse makes a request that fails when sent, as the client's would.
    pub fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, NotAllowed> {
        match Url::parse(url) {
            Ok(url) => {
                self.policy.check_url(&url)?;
                // The URL that was checked is the one requested: not parsed a second time.
                Ok(self.inner.request(method, url))
            }
            Err(_) => Ok(self.inner.request(method, url)),
        }
    }
}

/// Whether a request failed because its host resolved to an address the rule refuses.
pub fn is_refused(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error.is::<NotAllowed>() {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests;
