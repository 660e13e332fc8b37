//! Connections to backends.
//!
//! Each inbound HTTP/1 connection owns at most one upstream connection ([`UpstreamSlot`]): its
//! requests are sequential, so the upstream one is free again by the time the next request
//! arrives. No pool is shared between connections or threads, and nothing is locked across an
//! await.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderMap, HeaderName};
use http::uri::{Authority, Scheme};
use http::{Request, Response};
use http_body_util::{Either, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use portico_outbound::{AddressPolicy, ResolveError};

use crate::Target;

/// What goes upstream: a caller's body (size-limited, streamed) or one Portico built.
pub type OutBody = Either<Limited<Incoming>, Full<Bytes>>;

#[derive(Clone)]
pub struct UpstreamOptions {
    /// Where backends may be: the one rule of every outbound request.
    pub addresses: AddressPolicy,
    pub connect_timeout: Duration,
    /// From sending the request to the backend's response head.
    pub response_timeout: Duration,
    pub tls: Arc<rustls::ClientConfig>,
}

impl UpstreamOptions {
    /// Backends' certificates checked against the web's roots (Mozilla's, built in).
    pub fn new(addresses: AddressPolicy) -> Self {
        UpstreamOptions {
            addresses,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
            tls: Arc::new(client_config(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })),
        }
    }

    /// Also trusts `certificates` (a private PKI's roots) for backends, beside the web's roots.
    /// An error names the certificate that is not a usable root (by its position).
    pub fn trusting(mut self, certificates: Vec<CertificateDer<'static>>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for (i, certificate) in certificates.into_iter().enumerate() {
            roots.add(certificate).map_err(|error| format!("certificate {} is not a usable root: {error}", i + 1))?;
        }
        self.tls = Arc::new(client_config(roots));
        Ok(self)
    }
}

/// The certificates of a PEM file; an error says what is wrong with the file, never its
/// contents.
pub fn read_certificates(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|each| each.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("cannot read PEM certificates: {error}"))?;
    if certificates.is_empty() {
        return Err("no PEM certificate in the file".to_owned());
    }
    Ok(certificates)
}

/// TLS 1.2 and 1.3 with `roots`, HTTP/1.1 by ALPN; sessions are resumed (rustls keeps a cache
/// of them in the configuration, shared by every backend connection).
fn client_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"));
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    tls
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(
        "the backend host {0} is on a loopback, private or otherwise non-public address, which this server does not allow"
    )]
    NotAllowed(String),
    #[error("cannot resolve the backend host {0}")]
    Resolve(String),
    #[error("cannot connect to the backend at {0}")]
    Connect(String),
    #[error("the backend at {0} did not accept a connection in time")]
    ConnectTimeout(String),
    /// The backend, and why (rustls's words: e.g. an unknown issuer, an expired certificate).
    #[error("TLS with the backend at {0} failed: {1}")]
    Tls(String, String),
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

/// The upstream connection of one inbound connection, and its response timer.
#[derive(Default)]
pub struct UpstreamSlot {
    current: Mutex<Option<Upstream>>,
    /// Reused by the inbound connection's calls, and re-armed only when its deadline has
    /// fallen more than [`TIMER_SLACK`] of the timeout behind: arming a timer for every call
    /// costs more than much of the call's own work.
    timer: Mutex<Option<Pin<Box<Sleep>>>>,
}

/// A call times out after between (1 − 1/`TIMER_SLACK`) and 1 times the response timeout.
const TIMER_SLACK: u32 = 16;

impl UpstreamSlot {
    fn take(&self) -> Option<Upstream> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, upstream: Upstream) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(upstream);
    }

    /// The timer, due between `timeout` × (1 − 1/TIMER_SLACK) and `timeout` from now.
    fn armed_timer(&self, timeout: Duration) -> Pin<Box<Sleep>> {
        let due = Instant::now() + timeout;
        match self.timer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(timer) if timer.deadline() <= due && timer.deadline() + timeout / TIMER_SLACK >= due => timer,
            Some(mut timer) => {
                timer.as_mut().reset(due);
                timer
            }
            None => Box::pin(tokio::time::sleep_until(due)),
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) to `target`, reusing the slot's connection
    /// when it goes to the same place and is still open.
    ///
    /// One async block, not an `async fn` over helpers: the request is moved once, into the
    /// connection, rather than copied into each layer's state.
    #[allow(clippy::manual_async_fn, reason = "an async fn would copy its arguments into its state")]
    pub fn send<'a>(
        &'a self,
        target: &'a Target,
        request: Request<OutBody>,
        options: &'a UpstreamOptions,
    ) -> impl Future<Output = Result<Response<Incoming>, UpstreamError>> + Send + 'a {
        async move {
            let timeout = options.response_timeout;
            let mut timer = TimerLease { slot: self, timer: Some(self.armed_timer(timeout)), timeout };
            let mut reusable = self
                .take()
                .filter(|u| u.scheme == target.scheme && u.authority == target.authority && !u.sender.is_closed());
            if let Some(upstream) = &mut reusable
                && !matches!(within(timer.get(), upstream.sender.ready()).await, Some(Ok(())))
            {
                reusable = None;
            }
            let reused = reusable.is_some();
            let mut upstream = match reusable {
                Some(upstream) => upstream,
                // Boxed, as the other rare paths: the future of a call stays small.
                None => Box::pin(connect(target, options)).await?,
            };
            let mut outcome = within(timer.get(), upstream.sender.try_send_request(request)).await;
            if reused
                && let Some(Err(error)) = &mut outcome
                && let Some(request) = error.take_message()
            {
                // The backend closed the idle connection just as it was reused: the request was
                // not written, so it goes once more, on a new connection.
                tracing::debug!("the reused backend connection had closed; connecting again");
                upstream = Box::pin(connect(target, options)).await?;
                outcome = within(timer.get(), upstream.sender.try_send_request(request)).await;
            }
            match outcome {
                None => Err(UpstreamError::Timeout),
                Some(Err(error)) => Err(classify(&error.into_error())),
                Some(Ok(response)) => {
                    self.put(upstream);
                    Ok(response)
                }
            }
        }
    }
}

/// A call's use of its slot's timer, handed back to the slot however the call ends.
struct TimerLease<'a> {
    slot: &'a UpstreamSlot,
    /// `Some` until dropped.
    timer: Option<Pin<Box<Sleep>>>,
    timeout: Duration,
}

impl TimerLease<'_> {
    fn get(&mut self) -> Pin<&mut Sleep> {
        let timeout = self.timeout;
        self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout))).as_mut()
    }
}

impl Drop for TimerLease<'_> {
    fn drop(&mut self) {
        *self.slot.timer.lock().unwrap_or_else(|e| e.into_inner()) = self.timer.take();
    }
}

/// `future`'s output, or `None` if `timer` fires first.
fn within<F: Future>(timer: Pin<&mut Sleep>, future: F) -> Within<'_, F> {
    Within { timer, future }
}

pin_project_lite::pin_project! {
    /// A future and a deadline. A struct rather than an `async fn`, which would copy the
    /// future (the backend call's is large) into a state of its own.
    struct Within<'a, F> {
        timer: Pin<&'a mut Sleep>,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.future.poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending => this.timer.as_mut().poll(cx).map(|()| None),
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
        let server_name = ServerName::try_from(target.host.clone())
            .map_err(|_| UpstreamError::Tls(name.clone(), "the host is not a valid server name".to_owned()))?;
        let connector = tokio_rustls::TlsConnector::from(options.tls.clone());
        let tls = tokio::time::timeout(options.connect_timeout, connector.connect(server_name, tcp))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout(name.clone()))?
            .map_err(|error| UpstreamError::Tls(name.clone(), error.to_string()))?;
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
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .writev(false)
        .handshake(io)
        .await
        .map_err(|_| UpstreamError::Connect(name.to_owned()))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "backend connection ended");
        }
    });
    Ok(sender)
}

/// The first address of the target, once every address it resolves to has passed the address
/// rule. Connecting to the address that was checked (not resolving again) keeps a DNS answer
/// from changing between check and use.
async fn resolve(target: &Target, options: &UpstreamOptions) -> Result<SocketAddr, UpstreamError> {
    let name = target.authority.to_string();
    let lookup = options.addresses.resolve(target.host.as_str(), target.port);
    match tokio::time::timeout(options.connect_timeout, lookup).await {
        Ok(Ok(addrs)) => addrs.first().copied().ok_or(UpstreamError::Resolve(name)),
        Ok(Err(ResolveError::NotAllowed(_))) => Err(UpstreamError::NotAllowed(name)),
        Ok(Err(ResolveError::Unresolved)) | Err(_) => Err(UpstreamError::Resolve(name)),
    }
}

/// Removes the hop-by-hop headers of RFC 9110 §7.6.1 and those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the headers finds the few present (most messages carry none, answers
    // often only `Connection: keep-alive`); only those are removed. Names are compared as
    // strings, which mostly differ in length: cheaper than comparing `HeaderName`s.
    let mut present = 0u16;
    let mut names_others = false;
    for (name, value) in headers.iter() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| *h == name.as_str()) {
            present |= 1 << i;
            names_others |= i == 0 && !is_plain_option(value.as_bytes());
        }
    }
    if present == 0 {
        return;
    }
    if names_others {
        // `Connection` options that name other headers (rare).
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
    }
    for (i, name) in HOP_BY_HOP_NAMES.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded, `connection` first: as strings, which
/// a header's name is compared with, and as names, which remove it without parsing again.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

static HOP_BY_HOP_NAMES: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

/// `Connection: keep-alive` or `close`, which name no other header.
fn is_plain_option(value: &[u8]) -> bool {
    value.eq_ignore_ascii_case(b"keep-alive") || value.eq_ignore_ascii_case(b"close")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// The names left after stripping `headers`.
    fn stripped(headers: &[(&'static str, &'static str)]) -> Vec<String> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut map);
        map.keys().map(|k| k.as_str().to_owned()).collect()
    }

    #[test]
    fn hop_by_hop_names_agree_with_the_list() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(HOP_BY_HOP_NAMES[i].as_str(), *name);
        }
        let named = [
            ("x-kept", "1"),
            ("connection", "x-named, Keep-Alive"),
            ("keep-alive", "timeout=5"),
            ("x-named", "1"),
            ("transfer-encoding", "chunked"),
        ];
        assert_eq!(stripped(&named), ["x-kept"]);
        assert_eq!(stripped(&[("x-kept", "1")]), ["x-kept"]);
        let answer = [
            ("content-length", "2"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("connection", "x-second"),
            ("x-second", "1"),
        ];
        assert_eq!(stripped(&answer), ["content-length"]);
    }
}
