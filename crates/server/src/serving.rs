//! How requests are served: one single-threaded runtime per core, each with its own
//! `SO_REUSEPORT` listener, so that the kernel spreads connections and no task ever moves
//! between threads. Calls through connections take a hand-written path (see `proxy`);
//! everything else goes to the axum router.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::clients::{Activity, Clients};
use crate::proxy;
use crate::state::AppState;

pub type ResponseBody = Either<Incoming, Body>;

/// How long in-flight requests may take to finish after a stop was asked for.
const GRACE: Duration = Duration::from_secs(10);

/// Binds `workers` listeners on `addr` (the first picks the port when it is 0).
pub fn bind(addr: SocketAddr, workers: usize) -> std::io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    if addr.port() != 0 {
        // `SO_REUSEPORT` would let this start share a port another server (say, a Portico
        // already running on other data) listens on, each taking some of the connections:
        // a bind without it first fails as it should when a listener holds the address. With
        // `SO_REUSEADDR` (and only that), connections of a stopped Portico that linger in
        // TIME_WAIT do not keep a restart from the port.
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
    }
    let first = listener(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(listener(bound)?);
    }
    Ok((bound, listeners))
}

fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// What a client connection may do: stay without a call, take to send a request's head, and
/// put in that head.
#[derive(Clone, Copy)]
pub struct ClientLimits {
    pub idle: Duration,
    pub header_read: Duration,
    /// Most header fields in a request's head; more are answered 431.
    pub max_header_count: usize,
    /// Most bytes in a request's head (request line, header fields, the empty line); more are
    /// answered 431.
    pub max_header_bytes: usize,
}

/// hyper's own limit of header fields, kept on the stack; any other number makes hyper allocate
/// the fields' slots for every request (about 5 % of its parsing, by its documentation).
const HYPER_MAX_HEADERS: usize = 100;
/// hyper's default largest read buffer (`8192 + 4096 * 100`): a head never grows past it.
const HYPER_MAX_BUF_SIZE: usize = 8192 + 4096 * 100;

/// Starts one thread per listener; each ends when `stop` turns true and its connections are
/// done (or the grace period is over).
pub fn spawn_workers(
    listeners: Vec<std::net::TcpListener>,
    state: Arc<AppState>,
    router: Router,
    limits: ClientLimits,
    stop: watch::Receiver<bool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut handles = Vec::new();
    for (i, std_listener) in listeners.into_iter().enumerate() {
        let (state, router, mut stop) = (state.clone(), router.clone(), stop.clone());
        let handle = std::thread::Builder::new().name(format!("portico-worker-{i}")).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "cannot start a worker runtime");
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::error!(%error, "cannot use a listener");
                        return;
                    }
                };
                let clients = Clients::default();
                let mut sweeps = tokio::time::interval(Clients::sweep_period(limits.idle));
                sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut builder = hyper::server::conn::http1::Builder::new();
                // One buffer per write: a small answer's head and body go out in one `write`
                // rather than a `writev` of two pieces, which costs more on both sides.
                builder.writev(false);
                // A client that sends its request's head slowly (slowloris) is closed.
                builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_read);
                // A head with too many fields, or too many bytes (complete or still arriving),
                // is answered 431 and the connection closed (hyper's `on_parse_error`).
                if limits.max_header_count != HYPER_MAX_HEADERS {
                    builder.max_headers(limits.max_header_count);
                }
                builder.max_header_size(limits.max_header_bytes);
                if limits.max_header_bytes > HYPER_MAX_BUF_SIZE {
                    // The read buffer must be able to hold the largest head allowed.
                    builder.max_buf_size(limits.max_header_bytes);
                }
                loop {
                    tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((stream, peer)) => {
                                // Over the limit: closed at once (dropped), and counted.
                                let Some(admitted) = state.connections.admit() else { continue };
                                let _ = stream.set_nodelay(true);
                                let registration = clients.open();
                                let service =
                                    Dispatcher::new(state.clone(), router.clone(), registration.activity(), peer.ip());
                                let connection = registration.serve(builder.serve_connection(TokioIo::new(stream), service));
                                tokio::spawn(async move {
                                    if let Err(error) = connection.await {
                                        tracing::debug!(%error, "client connection ended with an error");
                                    }
                                    drop(admitted);
                                });
                            }
                            Err(error) => {
                                // Out of file descriptors and the like: wait instead of spinning.
                                tracing::warn!(%error, "accept failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        },
                        _ = sweeps.tick() => clients.sweep(),
                        _ = stop.wait_for(|stop| *stop) => break,
                    }
                }
                drop(listener);
                clients.stop(GRACE).await;
            });
        })?;
        handles.push(handle);
    }
    Ok(handles)
}

/// The service of one client connection.
#[derive(Clone)]
struct Dispatcher {
    /// What the connection's calls share; one per connection, so that a call clones nothing
    /// that other threads touch.
    client: Arc<proxy::Client>,
    router: Router,
    activity: Arc<Activity>,
    peer: std::net::IpAddr,
}

impl Dispatcher {
    fn new(state: Arc<AppState>, router: Router, activity: Arc<Activity>, peer: std::net::IpAddr) -> Self {
        Dispatcher { client: Arc::new(proxy::Client::new(state, peer)), router, activity, peer }
    }
}

impl hyper::service::Service<Request<Incoming>> for Dispatcher {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.activity.call_started();
        match proxy::route(request.uri().path()) {
            Some(route) => Box::pin(proxy::handle(self.client.clone(), route, request)),
            None => {
                let router = self.router.clone();
                let mut request = request;
                request.extensions_mut().insert(crate::state::ClientAddr(self.peer));
                Box::pin(async move {
                    let response = router.oneshot(request.map(Body::new)).await.unwrap_or_else(|e| match e {});
                    Ok(response.map(Either::Right))
                })
            }
        }
    }
}
