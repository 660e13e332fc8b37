//! A backend that records every request it receives, for the tests of calls through
//! connections: a small hyper server on a random loopback port, in the test process.
//!
//! It answers by the end of the path, whatever comes before it (the connector's base path):
//! - `…/status/{n}`: status `n`, a JSON body, `X-Backend: yes` and a pair of hop-by-hop
//!   headers (`Connection: x-secret-hop` with `X-Secret-Hop: 1`, and `Keep-Alive`);
//! - `…/slow`: 200 after [`SLOW`];
//! - `…/big`: [`BIG_LEN`] bytes streamed in chunks of [`CHUNK`] (see [`big_chunk`]);
//! - `…/redirect`: 302 to `http://example.invalid/elsewhere`;
//! - anything else (`…/ok`): 200 `ok`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

/// How long `…/slow` waits before answering.
pub const SLOW: Duration = Duration::from_secs(3);
/// The size of the `…/big` answer: 50 MiB.
pub const BIG_LEN: usize = 50 * 1024 * 1024;
/// The size of each chunk of the `…/big` answer.
pub const CHUNK: usize = 64 * 1024;
pub const REDIRECT_TO: &str = "http://example.invalid/elsewhere";

/// One request as the backend received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The raw query string, as sent (still percent-encoded).
    pub query: Option<String>,
    /// Every header in the order received; names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The values of a header (any case), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The only value of a header; panics when it was sent more than once.
    #[track_caller]
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.header_all(name);
        assert!(all.len() <= 1, "{name} sent {} times: {all:?}", all.len());
        all.first().copied()
    }

    /// The names of the headers received, sorted, once each.
    pub fn header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.headers.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The query as decoded name/value pairs, in order (`%XX` decoded; `+` stays a plus).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().expect("UTF-8").into_owned();
        self.query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name), decode(value))
            })
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    /// TCP connections accepted so far.
    connections: AtomicUsize,
    /// The accept loop and every connection's task, aborted by [`Backend::stop`].
    tasks: Mutex<Vec<AbortHandle>>,
}

/// A running recording backend; stopped when dropped.
pub struct Backend {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Backend {
    /// Listens on `127.0.0.1:0`. Needs a Tokio runtime.
    pub async fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let shared = Arc::new(Shared::default());
        let accepting = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    shared.connections.fetch_add(1, Ordering::SeqCst);
                    let for_requests = shared.clone();
                    let service = hyper::service::service_fn(move |request| answer(for_requests.clone(), request));
                    let connection = tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                    shared.tasks.lock().unwrap().push(connection.abort_handle());
                }
            })
        };
        shared.tasks.lock().unwrap().push(accepting.abort_handle());
        Backend { addr, shared }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`: what a connector's `backend.host` names and what `Host` must be.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The requests received so far, forgotten.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.shared.requests.lock().unwrap())
    }

    /// The one request received since the last [`Backend::take`]; panics unless exactly one
    /// arrived.
    #[track_caller]
    pub fn take_one(&self) -> Recorded {
        let mut taken = self.take();
        assert_eq!(taken.len(), 1, "exactly one request reaches the backend: {taken:#?}");
        taken.remove(0)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Closes the port and every open connection.
    pub async fn stop(&self) {
        for task in self.shared.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        // Aborted tasks drop their sockets when the runtime next polls them.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        for task in self.shared.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

type Answer = Response<BoxBody<Bytes, Infallible>>;

async fn answer(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Answer, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let path = parts.uri.path().to_owned();
    shared.requests.lock().unwrap().push(Recorded {
        method: parts.method.as_str().to_owned(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body,
    });
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.last().copied().unwrap_or("");
    let status = match segments.as_slice() {
        [.., "status", n] => n.parse::<u16>().ok(),
        _ => None,
    };
    let full = |text: String| Full::new(Bytes::from(text)).boxed();
    let response = if let Some(status) = status {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("x-backend", "yes")
            .header("connection", "x-secret-hop")
            .header("x-secret-hop", "1")
            .header("keep-alive", "timeout=30")
            .body(full(format!("{{\"status\":{status},\"from\":\"backend\"}}")))
    } else {
        match last {
            "slow" => {
                tokio::time::sleep(SLOW).await;
                Response::builder().body(full("slow".to_owned()))
            }
            "big" => {
                Response::builder().header("content-type", "application/octet-stream").body(BigBody { sent: 0 }.boxed())
            }
            "redirect" => Response::builder().status(302).header("location", REDIRECT_TO).body(full(String::new())),
            _ => Response::builder().header("content-type", "text/plain").body(full("ok".to_owned())),
        }
    };
    Ok(response.expect("a valid response"))
}

/// Chunk `index` of the `…/big` answer: [`CHUNK`] bytes that differ from chunk to chunk.
pub fn big_chunk(index: usize) -> Bytes {
    let mut state = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let bytes: Vec<u8> = (0..CHUNK)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    Bytes::from(bytes)
}

/// Streams [`BIG_LEN`] bytes without holding more than one chunk.
struct BigBody {
    sent: usize,
}

impl Body for BigBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent >= BIG_LEN {
            return Poll::Ready(None);
        }
        let chunk = big_chunk(self.sent / CHUNK);
        self.sent += chunk.len();
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= BIG_LEN
    }
}
