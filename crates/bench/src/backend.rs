//! The built-in backend: `200 ok` over HTTP/1 keep-alive, used when nginx is not installed.
//!
//! One current-thread runtime per thread, each with its own `SO_REUSEPORT` listener on the same
//! port: the kernel spreads connections over them and no work crosses threads.
//!
//! Besides `ok` it answers `GET /echo-auth` with `<X-Api-Key>|<Authorization>|<api_key query>`,
//! the same check as the nginx backend, so the harness can verify that a proxy applied the
//! credential and dropped the caller's `Authorization`.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::thread::JoinHandle;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

/// The body every request but `/echo-auth` gets.
pub const OK_BODY: &[u8] = b"ok";

/// A running backend; dropping it stops every thread.
pub struct Backend {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl Backend {
    /// Listens on `addr` (port 0 picks one) with `threads` listeners, or one per core.
    pub fn start(addr: SocketAddr, threads: Option<usize>) -> anyhow::Result<Backend> {
        let threads = threads.unwrap_or_else(cores).max(1);
        // The first listener fixes the port (when 0 was asked for); the others join it.
        let first = listener(addr)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..threads {
            listeners.push(listener(addr)?);
        }
        let (shutdown, stop) = watch::channel(false);
        let mut handles = Vec::with_capacity(threads);
        for (i, listener) in listeners.into_iter().enumerate() {
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("backend-{i}"))
                .spawn(move || serve_thread(listener, stop))
                .context("cannot start a backend thread")?;
            handles.push(handle);
        }
        Ok(Backend { addr, shutdown, threads: handles })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until every thread has stopped (they stop only when the backend is dropped
    /// elsewhere, so this is for the `backend` command, which runs until it is killed).
    pub fn wait(mut self) {
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

/// The number of CPUs this process may run on (what `nproc` prints).
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn listener(addr: SocketAddr) -> anyhow::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into()).with_context(|| format!("cannot listen on {addr}"))?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn serve_thread(listener: StdListener, mut stop: watch::Receiver<bool>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("portico-bench backend: cannot start a runtime: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("portico-bench backend: {e}");
                return;
            }
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.keep_alive(true);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let connection = http.serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer));
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
                _ = stop.changed() => break,
            }
        }
    });
    // Dropping the runtime drops the connections still open.
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = if request.uri().path() == "/echo-auth" {
        Bytes::from(echo_auth(&request))
    } else {
        Bytes::from_static(OK_BODY)
    };
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// `<X-Api-Key>|<Authorization>|<api_key query parameter, as sent>`: what nginx's
/// `"$http_x_api_key|$http_authorization|$arg_api_key"` prints.
fn echo_auth<B>(request: &Request<B>) -> String {
    let header = |name: &str| {
        request.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
    };
    let query_key = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("api_key="))
        .unwrap_or("")
        .to_owned();
    format!("{}|{}|{}", header("x-api-key"), header("authorization"), query_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_auth_prints_the_three_places() {
        let request = Request::builder()
            .uri("/echo-auth?x=1&api_key=k%2B1")
            .header("X-Api-Key", "abc")
            .header("Authorization", "Basic Zm9v")
            .body(())
            .unwrap();
        assert_eq!(echo_auth(&request), "abc|Basic Zm9v|k%2B1");
        let bare = Request::builder().uri("/echo-auth").body(()).unwrap();
        assert_eq!(echo_auth(&bare), "||");
    }
}
