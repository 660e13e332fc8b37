//! Connections to backends.
//!
//! Each inbound HTTP/1 connection owns at most one upstream connection ([`UpstreamSlot`]): its
//! requests are sequential, so the upstream one is free again by the time the next request
//! arrives. No pool is shared between connections or threads, and nothing is locked across an
//! await.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderMap, HeaderName};
use http::uri::{Authority, Scheme};
use http::{Request, Response};
use http_body_util::{Either, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::{Target, is_private};

/// What goes upstream: a caller's body (size-limited, streamed) or one Portico built.
pub type OutBody = Either<Limited<Incoming>, Full<Bytes>>;

#[derive(Clone)]
pub struct UpstreamOptions {
    /// Allow backends on loopback and private addresses.
    pub allow_private: bool,
    pub connect_timeout: Duration,
    /// From sending the request to the backend's response head.
    pub response_timeout: Duration,
    pub tls: Arc<rustls::ClientConfig>,
}

impl UpstreamOptions {
    pub fn new(allow_private: bool) -> Self {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"));
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        UpstreamOptions {
            allow_private,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
            tls: Arc::new(tls),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the backend host {0} is on a private or loopback address, which this server does not allow")]
    NotAllowed(String),
    #[error("cannot resolve the backend host {0}")]
    Resolve(String),
    #[error("cannot connect to the backend at {0}")]
    Connect(String),
    #[error("the backend at {0} did not accept a connection in time")]
    ConnectTimeout(String),
    #[error("TLS with the backend at {0} failed")]
    Tls(String),
    #[error("the backend did not answer in time")]
    Timeout,
    #[error("the request body exceeds the size limit")]
    BodyTooLarge,
    #[error("the backend closed the connection: {0}")]
    Protocol(String),
}

pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    sender: SendRequest<OutBody>,
}

/// The upstream connection of one inbound connection.
#[derive(Default)]
pub struct UpstreamSlot {
    current: Mutex<Option<Upstream>>,
}

impl UpstreamSlot {
    fn take(&self) -> Option<Upstream> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, upstream: Upstream) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(upstream);
    }

    /// Sends `request` (origin-form URI, `Host` set) to `target`, reusing the slot's connection
    /// when it goes to the same place and is still open.
    pub async fn send(
        &self,
        target: &Target,
        request: Request<OutBody>,
        options: &UpstreamOptions,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let reusable = self
            .take()
            .filter(|u| u.scheme == target.scheme && u.authority == target.authority && !u.sender.is_closed());
        let mut upstream = match reusable {
            Some(mut u) => match u.sender.ready().await {
                Ok(()) => u,
                Err(_) => connect(target, options).await?,
            },
            None => connect(target, options).await?,
        };
        let response = tokio::time::timeout(options.response_timeout, upstream.sender.send_request(request)).await;
        match response {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Err(error)) => Err(classify(&error)),
            Ok(Ok(response)) => {
                self.put(upstream);
                Ok(response)
            }
        }
    }
}

fn classify(error: &hyper::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return UpstreamError::BodyTooLarge;
        }
        source = e.source();
    }
    UpstreamError::Protocol(error.to_string())
}

async fn connect(target: &Target, options: &UpstreamOptions) -> Result<Upstream, UpstreamError> {
    let name = target.authority.to_string();
    let addr = resolve(target, options).await?;
    let tcp = match tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(UpstreamError::ConnectTimeout(name)),
        Ok(Err(_)) => return Err(UpstreamError::Connect(name)),
        Ok(Ok(tcp)) => tcp,
    };
    let _ = tcp.set_nodelay(true);
    let sender = if target.scheme == Scheme::HTTPS {
        let server_name = ServerName::try_from(target.host.clone()).map_err(|_| UpstreamError::Tls(name.clone()))?;
        let connector = tokio_rustls::TlsConnector::from(options.tls.clone());
        let tls = tokio::time::timeout(options.connect_timeout, connector.connect(server_name, tcp))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout(name.clone()))?
            .map_err(|_| UpstreamError::Tls(name.clone()))?;
        handshake(TokioIo::new(tls), &name).await?
    } else {
        handshake(TokioIo::new(tcp), &name).await?
    };
    Ok(Upstream { scheme: target.scheme.clone(), authority: target.authority.clone(), sender })
}

async fn handshake<T>(io: T, name: &str) -> Result<SendRequest<OutBody>, UpstreamError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(io).await.map_err(|_| UpstreamError::Connect(name.to_owned()))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "backend connection ended");
        }
    });
    Ok(sender)
}

/// The first acceptable address of the target. Connecting to the address that was checked
/// (not resolving again) keeps a DNS answer from changing between check and use.
async fn resolve(target: &Target, options: &UpstreamOptions) -> Result<SocketAddr, UpstreamError> {
    let name = target.authority.to_string();
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(options.connect_timeout, lookup).await {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => return Err(UpstreamError::Resolve(name)),
    };
    if options.allow_private {
        return addrs.first().copied().ok_or(UpstreamError::Resolve(name));
    }
    match addrs.iter().find(|a| !is_private(a.ip())) {
        // Any private answer makes the host suspect: refuse rather than pick the public one.
        Some(addr) if !addrs.iter().any(|a| is_private(a.ip())) => Ok(*addr),
        _ if addrs.is_empty() => Err(UpstreamError::Resolve(name)),
        _ => Err(UpstreamError::NotAllowed(name)),
    }
}

/// Removes the hop-by-hop headers of RFC 9110 §7.6.1 and those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names is cheaper than a removal per name.
    if !headers.keys().any(|name| is_hop_by_hop(name.as_str())) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in crate::HOP_BY_HOP {
        headers.remove(*name);
    }
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_names_agree_with_the_list() {
        for name in crate::HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-kept", "1".parse().unwrap());
        headers.insert("connection", "x-named".parse().unwrap());
        headers.insert("x-named", "1".parse().unwrap());
        headers.insert("transfer-encoding", "chunked".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(), vec!["x-kept"]);
        let mut plain = HeaderMap::new();
        plain.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain.len(), 1);
    }
}
