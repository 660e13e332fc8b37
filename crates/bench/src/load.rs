//! The built-in load generator: N keep-alive HTTP/1 connections, latencies in an HDR histogram
//! (nanoseconds, 3 significant digits). Two ways to pace them:
//!
//! - **Closed loop** (what wrk does; used when wrk is not installed): each connection sends its
//!   next request as soon as the previous response has been read. It measures throughput; its
//!   latencies at saturation are set by the throughput itself (64 connections ÷ req/s).
//! - **Open loop at a fixed rate** (`rate`, what wrk cannot do): a pacer thread issues requests
//!   on a schedule, whatever the answers, and the first free connection sends each one. A
//!   request's latency counts from its *scheduled* time, so a server that holds a connection up
//!   is charged for the requests queued behind it (no coordinated omission). It measures the
//!   latency a server adds at a load it can carry.
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
use tokio::sync::mpsc;

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
    /// Open loop: requests per second in all, on a fixed schedule. `None`: closed loop.
    pub rate: Option<f64>,
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
    #[serde(default)]
    pub p999_ms: f64,
    pub max_ms: f64,
    pub threads: usize,
    pub connections: usize,
    /// The open loop's scheduled rate; `None` for a closed loop.
    #[serde(default)]
    pub rate: Option<f64>,
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
    if let Some(rate) = config.rate
        && !(rate.is_finite() && rate >= 1.0)
    {
        bail!("--rate must be at least 1 request per second");
    }
    let target = Arc::new(Target::parse(&config.url, &config.headers)?);
    let threads = config.threads.unwrap_or_else(crate::backend::cores).clamp(1, config.connections);
    let start = Instant::now();
    let deadline = start + config.duration;
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        // Connection j goes to thread j % threads; so does every `threads`-th scheduled request.
        let count = config.connections / threads + usize::from(i < config.connections % threads);
        let schedule = config.rate.map(|rate| {
            let interval = Duration::from_secs_f64(threads as f64 / rate);
            Schedule { first: start + interval.mul_f64(i as f64 / threads as f64), interval, deadline }
        });
        let target = Arc::clone(&target);
        let handle = std::thread::Builder::new()
            .name(format!("load-{i}"))
            .spawn(move || load_thread(target, count, deadline, schedule))
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
        p999_ms: at(0.999),
        max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
        threads,
        connections: config.connections,
        rate: config.rate,
    })
}

/// One load thread's share of an open loop's requests: `first`, then every `interval`, until
/// `deadline`.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    first: Instant,
    interval: Duration,
    deadline: Instant,
}

impl Schedule {
    /// Sends each scheduled time into `due` when it comes (or, if this thread was kept from
    /// running, as soon as it runs again). A plain thread sleeping, not tokio's timer: that one
    /// counts in milliseconds and would send the requests in bursts.
    fn pace(self, due: mpsc::UnboundedSender<Instant>) {
        let mut next = self.first;
        while next < self.deadline {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
                continue;
            }
            // Stamped with when they are released, not when they were due: a pacer that woke late
            // (its CPU busy with the servers) is the generator's delay, not the server's.
            while next <= now && next < self.deadline {
                if due.send(now).is_err() {
                    return;
                }
                next += self.interval;
            }
        }
    }
}

/// When each connection sends its next request.
#[derive(Clone)]
enum Pace {
    /// As soon as the last response has been read.
    Closed,
    /// At the next scheduled time that no other connection has taken.
    Open(Rc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Instant>>>),
}

impl Pace {
    /// The time the next request counts from, once it is due; `None` when the run is over.
    async fn next(&self, deadline: Instant) -> Option<Instant> {
        let start = match self {
            Pace::Closed => Instant::now(),
            Pace::Open(due) => due.lock().await.recv().await?,
        };
        (start < deadline).then_some(start)
    }

    /// Whether a response that completes at `done` is counted: in a closed loop only within
    /// the duration (the rate is what is measured); in an open loop every scheduled request.
    fn counts(&self, done: Instant, deadline: Instant) -> bool {
        matches!(self, Pace::Open(_)) || done <= deadline
    }
}

fn load_thread(
    target: Arc<Target>,
    connections: usize,
    deadline: Instant,
    schedule: Option<Schedule>,
) -> anyhow::Result<Counts> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let counts = Rc::new(RefCell::new(Counts::new()));
    let (pace, pacer) = match schedule {
        None => (Pace::Closed, None),
        Some(schedule) => {
            let (send, due) = mpsc::unbounded_channel();
            let pacer = std::thread::Builder::new()
                .name("load-pacer".to_owned())
                .spawn(move || schedule.pace(send))
                .context("cannot start a pacer thread")?;
            (Pace::Open(Rc::new(tokio::sync::Mutex::new(due))), Some(pacer))
        }
    };
    local.block_on(&runtime, async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let connection = connection(Arc::clone(&target), Rc::clone(&counts), pace.clone(), deadline);
                tokio::task::spawn_local(connection)
            })
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
    drop(pace);
    if let Some(pacer) = pacer {
        pacer.join().map_err(|_| anyhow::anyhow!("the pacer thread panicked"))?;
    }
    Rc::try_unwrap(counts)
        .map(RefCell::into_inner)
        .map_err(|_| anyhow::anyhow!("a connection task outlived its runtime"))
}

/// One connection: sends a request whenever `pace` says, reconnects when the server closes it,
/// until the deadline.
async fn connection(target: Arc<Target>, counts: Rc<RefCell<Counts>>, pace: Pace, deadline: Instant) {
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
            let Some(sent) = pace.next(deadline).await else {
                return;
            };
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
            if !pace.counts(done, deadline) {
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
        let pacing = match self.rate {
            Some(rate) => format!("open loop at {rate:.0} req/s scheduled, latency from each scheduled time"),
            None => "closed loop".to_owned(),
        };
        format!(
            "{} connections, {} thread(s), {:.1} s, {pacing}\n\
             requests:      {} ({} non-2xx/3xx, {} errors)\n\
             requests/s:    {:.0}\n\
             latency (ms):  mean {:.3}  p50 {:.3}  p75 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
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
            self.p999_ms,
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
