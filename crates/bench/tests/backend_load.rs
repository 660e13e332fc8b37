//! The built-in backend and load generator against each other, on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use portico_bench::backend::Backend;
use portico_bench::load::{LoadConfig, run};

/// Reads one response with a Content-Length body; returns (head, body).
fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .expect("a content-length");
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
                return (head, body);
            }
        }
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed after {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A closed loop on `url`, without extra headers.
fn closed_loop(url: String, connections: usize, threads: usize, duration: Duration) -> LoadConfig {
    LoadConfig { url, connections, duration, headers: Vec::new(), threads: Some(threads), rate: None }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn the_backend_answers_ok_on_a_kept_alive_connection() {
    let backend = Backend::start(loopback(), Some(2)).unwrap();
    let mut stream = TcpStream::connect(backend.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for path in ["/", "/anything?x=1", "/ok"] {
        write!(stream, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").unwrap();
        let (head, body) = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("connection: close"), "{head}");
        assert_eq!(body, "ok");
    }
    write!(
        stream,
        "GET /echo-auth?api_key=q1 HTTP/1.1\r\nHost: bench\r\nX-Api-Key: h1\r\nAuthorization: Basic eA==\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_response(&mut stream).1, "h1|Basic eA==|q1");
}

#[test]
fn the_load_generator_measures_the_backend() {
    let backend = Backend::start(loopback(), Some(1)).unwrap();
    let config = LoadConfig {
        headers: vec![("Authorization".to_owned(), "Bearer x".to_owned())],
        ..closed_loop(format!("http://{}/ok", backend.addr()), 4, 2, Duration::from_millis(500))
    };
    let r = run(&config).unwrap();
    assert!(r.requests > 0, "{r:?}");
    assert_eq!((r.errors, r.non_success), (0, 0), "{r:?}");
    assert_eq!((r.threads, r.connections), (2, 4));
    assert!((r.requests_per_sec - r.requests as f64 / 0.5).abs() < 1e-6, "{r:?}");
    assert!(r.p50_ms > 0.0 && r.p50_ms <= r.p75_ms && r.p75_ms <= r.p90_ms, "{r:?}");
    assert!(r.p90_ms <= r.p99_ms && r.p99_ms <= r.max_ms, "{r:?}");
    // Loopback with 4 connections: a millisecond is plenty for half the requests.
    assert!(r.p50_ms < 50.0, "{r:?}");
    assert!(r.mean_ms > 0.0 && r.mean_ms <= r.max_ms, "{r:?}");
}

#[test]
fn a_closed_port_gives_errors_not_requests() {
    // Bind and release a port so that nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = closed_loop(format!("http://127.0.0.1:{port}/"), 2, 1, Duration::from_millis(200));
    let r = run(&config).unwrap();
    assert_eq!(r.requests, 0);
    assert!(r.errors > 0, "{r:?}");
    assert_eq!(r.p99_ms, 0.0);
}

#[test]
fn the_open_loop_sends_at_the_rate_asked() {
    let backend = Backend::start(loopback(), Some(1)).unwrap();
    let config = LoadConfig {
        rate: Some(2_000.0),
        ..closed_loop(format!("http://{}/ok", backend.addr()), 8, 2, Duration::from_secs(1))
    };
    let r = run(&config).unwrap();
    assert_eq!((r.errors, r.non_success), (0, 0), "{r:?}");
    // 2,000 scheduled in the second, every one answered (a loopback backend has time to spare).
    assert!((1_980..=2_000).contains(&r.requests), "{r:?}");
    assert_eq!(r.rate, Some(2_000.0));
    assert!(r.p99_ms <= r.p999_ms && r.p999_ms <= r.max_ms, "{r:?}");
}

/// A backend on one connection that takes 20 ms per answer: at most 50 answers a second.
fn slow_backend() -> SocketAddr {
    let listener = TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        std::thread::sleep(Duration::from_millis(20));
                        if stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn the_open_loop_charges_a_slow_server_for_the_requests_queued_behind_it() {
    let addr = slow_backend();
    let config = |rate| LoadConfig { rate, ..closed_loop(format!("http://{addr}/"), 1, 1, Duration::from_millis(400)) };
    // Closed loop: one request at a time, each one 20 ms.
    let closed = run(&config(None)).unwrap();
    assert!(closed.requests >= 5 && closed.p99_ms < 200.0, "{closed:?}");
    // Open loop at 100/s: 40 requests scheduled in 0.4 s, answered at 50/s, so the last ones
    // wait ~0.4 s behind the others; counted from their scheduled times, that is the latency.
    let open = run(&config(Some(100.0))).unwrap();
    assert_eq!(open.errors, 0, "{open:?}");
    assert!(open.requests >= 35, "{open:?}");
    assert!(open.p99_ms > 300.0 && open.p99_ms > 10.0 * closed.p50_ms, "open {open:?}, closed {closed:?}");
}
