//! The built-in load generator, used when wrk is not installed: closed loop, N keep-alive
//! HTTP/1 connections, each sending its next request as soon as the previous response has been
//! read; latencies in an HDR histogram (nanoseconds, 3 significant digits).
//!
//! Connections are spread over one current-thread runtime per thread (by default one per CPU
//! the process may use, so `taskset -c 1` makes it one thread on CPU 1).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

/// What to measure.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `http://host:port/path?query`.
    pub url: String,
    pub connections: usize,
    pub duration: Duration,
    /// Extra request headers, as `("Name", "value")`.
    pub headers: Vec<(String, String)>,
    /// Runtimes to spread the connections over; default: one per usable CPU.
    pub threads: Option<usize>,
}

/// What was measured. Latencies in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    /// Responses completed within the duration (any status).
    pub requests: u64,
    /// Responses whose status was not 2xx or 3xx.
    pub non_success: u64,
    /// Connect failures and requests that failed without a response.
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p75_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub threads: usize,
    pub connections: usize,
}

/// A request prepared once and copied for every send.
struct Target {
    connect_to: String,
    path: Uri,
    headers: HeaderMap,
}

impl Target {
    fn parse(url: &str, headers: &[(String, String)]) -> anyhow::Result<Target> {
        let uri: Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("only http:// URLs can be measured: {url}");
        }
        let authority = uri.authority().context("the URL has no host")?.clone();
        let connect_to =
            if authority.port().is_some() { authority.as_str().to_owned() } else { format!("{}:80", authority.host()) };
        let path: Uri = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").parse()?;
        let mut map = HeaderMap::new();
        map.insert(HOST, HeaderValue::from_str(authority.as_str())?);
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.trim().as_bytes()).with_context(|| format!("bad header {name}"))?;
            map.append(name, HeaderValue::from_str(value.trim())?);
        }
        Ok(Target { connect_to, path, headers: map })
    }

    fn request(&self) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = self.path.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Parses `Name: value`.
pub fn parse_header(text: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = text.split_once(':').with_context(|| format!("a header is 'Name: value', not {text:?}"))?;
    if name.trim().is_empty() {
        bail!("a header is 'Name: value', not {text:?}");
    }
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

struct Counts {
    histogram: Histogram<u64>,
    requests: u64,
    non_success: u64,
    errors: u64,
}

impl Counts {
    fn new() -> Counts {
        Counts {
            // 1 ns to 60 s: anything slower saturates at the top.
            histogram: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds"),
            requests: 0,
            non_success: 0,
            errors: 0,
        }
    }
}

/// Runs the load and blocks until it is over (duration plus at most 2 s for stuck requests).
/// Must not be called from inside a tokio runtime.
pub fn run(config: &LoadConfig) -> anyhow::Result<LoadResult> {
    if config.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let target = Arc::new(Target::parse(&config.url, &config.headers)?);
    let threads = config.threads.unwrap_or_else(crate::backend::cores).clamp(1, config.connections);
    let start = Instant::now();
    let deadline = start + config.duration;
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        // Connection j goes to thread j % threads.
        let count = config.connections / threads + usize::from(i < config.connections % threads);
        let target = Arc::clone(&target);
        let handle = std::thread::Builder::new()
            .name(format!("load-{i}"))
            .spawn(move || load_thread(target, count, deadline))
            .context("cannot start a load thread")?;
        handles.push(handle);
    }
    let mut total = Counts::new();
    for handle in handles {
        let counts = handle.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        total.histogram.add(&counts.histogram).context("cannot merge histograms")?;
        total.requests += counts.requests;
        total.non_success += counts.non_success;
        total.errors += counts.errors;
    }
    let seconds = config.duration.as_secs_f64();
    let h = &total.histogram;
    let ms = |ns: u64| ns as f64 / 1e6;
    let at = |q: f64| if h.is_empty() { 0.0 } else { ms(h.value_at_quantile(q)) };
    Ok(LoadResult {
        requests: total.requests,
        non_success: total.non_success,
        errors: total.errors,
        seconds,
        requests_per_sec: total.requests as f64 / seconds,
        mean_ms: if h.is_empty() { 0.0 } else { h.mean() / 1e6 },
        p50_ms: at(0.50),
        p75_ms: at(0.75),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
        threads,
        connections: config.connections,
    })
}

fn load_thread(target: Arc<Target>, connections: usize, deadline: Instant) -> anyhow::Result<Counts> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let counts = Rc::new(RefCell::new(Counts::new()));
    local.block_on(&runtime, async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::task::spawn_local(connection(Arc::clone(&target), Rc::clone(&counts), deadline)))
            .collect();
        // Requests still unanswered 2 s after the end are abandoned.
        let _ = tokio::time::timeout_at((deadline + Duration::from_secs(2)).into(), async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
    });
    drop(local);
    drop(runtime);
    Rc::try_unwrap(counts)
        .map(RefCell::into_inner)
        .map_err(|_| anyhow::anyhow!("a connection task outlived its runtime"))
}

/// One closed-loop connection: reconnects when the server closes it, until the deadline.
async fn connection(target: Arc<Target>, counts: Rc<RefCell<Counts>>, deadline: Instant) {
    while Instant::now() < deadline {
        let stream = match TcpStream::connect(&target.connect_to).await {
            Ok(stream) => stream,
            Err(_) => {
                counts.borrow_mut().errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, driver) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(_) => {
                counts.borrow_mut().errors += 1;
                continue;
            }
        };
        tokio::task::spawn_local(async move {
            let _ = driver.await;
        });
        loop {
            // A closed connection (the server ended keep-alive) is reopened, not an error.
            if sender.ready().await.is_err() {
                break;
            }
            let sent = Instant::now();
            if sent >= deadline {
                return;
            }
            let response = match sender.send_request(target.request()).await {
                Ok(response) => response,
                Err(_) => {
                    counts.borrow_mut().errors += 1;
                    break;
                }
            };
            let status = response.status();
            if response.into_body().collect().await.is_err() {
                counts.borrow_mut().errors += 1;
                break;
            }
            let done = Instant::now();
            if done > deadline {
                return;
            }
            let mut counts = counts.borrow_mut();
            counts.requests += 1;
            if !(status.is_success() || status.is_redirection()) {
                counts.non_success += 1;
            }
            let nanos = u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX);
            counts.histogram.saturating_record(nanos.max(1));
        }
    }
}

impl LoadResult {
    /// The human-readable summary the `load` command prints.
    pub fn summary(&self) -> String {
        format!(
            "{} connections, {} thread(s), {:.1} s\n\
             requests:      {} ({} non-2xx/3xx, {} errors)\n\
             requests/s:    {:.0}\n\
             latency (ms):  mean {:.3}  p50 {:.3}  p75 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            self.connections,
            self.threads,
            self.seconds,
            self.requests,
            self.non_success,
            self.errors,
            self.requests_per_sec,
            self.mean_ms,
            self.p50_ms,
            self.p75_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        assert_eq!(parse_header("X-Api-Key: abc").unwrap(), ("X-Api-Key".to_owned(), "abc".to_owned()));
        assert_eq!(parse_header("Authorization:Bearer a:b").unwrap().1, "Bearer a:b");
        assert!(parse_header("nocolon").is_err());
        assert!(parse_header(": v").is_err());
    }

    #[test]
    fn targets_parse() {
        let t = Target::parse("http://127.0.0.1:8081/a/b?x=1", &[("X-K".into(), "v".into())]).unwrap();
        assert_eq!(t.connect_to, "127.0.0.1:8081");
        assert_eq!(t.path, "/a/b?x=1");
        assert_eq!(t.headers[HOST], "127.0.0.1:8081");
        assert_eq!(t.headers["x-k"], "v");
        assert_eq!(Target::parse("http://localhost", &[]).unwrap().connect_to, "localhost:80");
        assert!(Target::parse("https://example.com/", &[]).is_err());
    }
}
