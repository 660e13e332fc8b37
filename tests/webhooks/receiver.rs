//! The Rust side of `tests/webhooks/receiver.py`: starts the receiver with the Python of the
//! test environment (`tests/python/.venv`, made by `scripts/test`), gives it the secrets to
//! verify with and the way to answer, and reads what it received. Every delivery is verified
//! by Standard Webhooks' own Python library, never by code of ours.
//!
//! Included with `#[path]` by the end-to-end tests that need it (crates/cli/tests/webhooks.rs,
//! instances.rs; connect_sessions.rs for [`unix_seconds`] only); it depends on nothing of
//! theirs, and belongs in their `common` module. Without the environment
//! [`Receiver::try_start`] prints `SKIPPED: …` and gives `None`, except under `CI=true`, where
//! it panics.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a test waits for deliveries (and the receiver for its start) before it fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

const HOW_TO_INSTALL: &str = "the webhook tests verify deliveries with Standard Webhooks' Python library from \
     tests/python/.venv: run scripts/test, or at the repository root `python3 -m venv tests/python/.venv && \
     tests/python/.venv/bin/pip install --require-hashes -r tests/python/requirements.txt`";

/// One request the receiver got, as it recorded it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// 1, 2, … in the order of arrival.
    pub seq: u64,
    /// When it arrived, in Unix seconds.
    pub at: f64,
    pub method: String,
    pub path: String,
    /// Names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// The body as JSON (`Null` if it is not).
    pub payload: Value,
    /// The `webhook-id` header.
    pub webhook_id: String,
    /// How many requests with this `webhook-id` arrived so far, this one included.
    pub attempt: u32,
    /// The indices (in the order given) of the secrets `standardwebhooks` verified it with.
    pub verified_by: Vec<usize>,
    /// What the library said for each secret that did not verify it.
    pub verify_errors: Vec<String>,
    /// The status the receiver answered.
    pub answered: u16,
}

impl Delivery {
    fn parse(record: &Value) -> Delivery {
        let text = |name: &str| record[name].as_str().unwrap_or_default().to_owned();
        Delivery {
            seq: record["seq"].as_u64().expect("seq"),
            at: record["time"].as_f64().expect("time"),
            method: text("method"),
            path: text("path"),
            headers: serde_json::from_value(record["headers"].clone()).expect("headers"),
            body: text("body"),
            payload: record["payload"].clone(),
            webhook_id: text("webhookId"),
            attempt: record["attempt"].as_u64().expect("attempt") as u32,
            verified_by: serde_json::from_value(record["verifiedBy"].clone()).expect("verifiedBy"),
            verify_errors: serde_json::from_value(record["verifyErrors"].clone()).expect("verifyErrors"),
            answered: record["answered"].as_u64().expect("answered") as u16,
        }
    }

    /// Whether at least one of the receiver's secrets verified it.
    pub fn verified(&self) -> bool {
        !self.verified_by.is_empty()
    }

    /// The event type (`type` of the payload).
    pub fn kind(&self) -> &str {
        self.payload["type"].as_str().unwrap_or_default()
    }

    /// The connection the event is about (`data.connectionId`).
    pub fn connection(&self) -> &str {
        self.payload["data"]["connectionId"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The signatures of `webhook-signature`, each `v1,<base64>`.
    pub fn signatures(&self) -> Vec<&str> {
        self.header("webhook-signature").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).collect()
    }

    /// The body and every header, for searches for what must not be sent.
    pub fn everything(&self) -> String {
        let headers: Vec<String> = self.headers.iter().map(|(name, value)| format!("{name}: {value}")).collect();
        format!("{}\n{}", headers.join("\n"), self.body)
    }
}

/// A running receiver; it exits when its standard input closes (when this is dropped, or when
/// the test process dies however it dies).
pub struct Receiver {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    pumps: Vec<JoinHandle<()>>,
    secrets: Vec<String>,
    commands: u64,
}

impl Receiver {
    /// A receiver on a port the system picks, answering as `plan` says (see receiver.py); on
    /// `None` (the environment is missing) the test returns: the skip has been reported.
    pub fn try_start(plan: &[&str]) -> Option<Receiver> {
        match python() {
            Ok(_) => Some(Receiver::start_on(0, &[], plan)),
            Err(missing) => {
                portico_testkit::skip_or_fail(&format!("{missing}; {HOW_TO_INSTALL}"));
                None
            }
        }
    }

    /// A receiver on `port` (0: any) that verifies with `secrets`; panics without the
    /// environment (for a test that has already started one).
    pub fn start_on(port: u16, secrets: &[&str], plan: &[&str]) -> Receiver {
        let python = python().unwrap_or_else(|missing| panic!("{missing}; {HOW_TO_INSTALL}"));
        let mut command = Command::new(python);
        command.arg(repository().join("tests/webhooks/receiver.py")).args(["--port", &port.to_string()]);
        for secret in secrets {
            command.args(["--secret", secret]);
        }
        command.args(plan).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("the receiver starts: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pumps = vec![
            pump_lines(child.stdout.take().expect("piped stdout"), lines.clone()),
            pump_bytes(child.stderr.take().expect("piped stderr"), stderr.clone()),
        ];
        let stdin = child.stdin.take();
        let mut receiver = Receiver {
            child,
            stdin,
            port: 0,
            lines,
            stderr,
            pumps,
            secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
            commands: 0,
        };
        receiver.port = receiver.wait_until_ready();
        receiver
    }

    fn wait_until_ready(&mut self) -> u16 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let ready = self.lines.lock().unwrap().iter().find_map(|line| line.strip_prefix("READY ")?.parse().ok());
            if let Some(port) = ready {
                return port;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                for pump in self.pumps.drain(..) {
                    let _ = pump.join();
                }
                panic!("the receiver exited with {status} before READY\nstderr:\n{}", self.stderr());
            }
            assert!(Instant::now() < deadline, "the receiver printed no READY\nstderr:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Verifies with `secret` too from now on (its index is the number of secrets before it).
    pub async fn add_secret(&mut self, secret: &str) {
        self.secrets.push(secret.to_owned());
        let line = format!("secrets {}", self.secrets.join(" "));
        self.command(&line).await;
    }

    /// Answers as `plan` says from now on (no flags: 200 to everything).
    pub async fn plan(&mut self, plan: &[&str]) {
        self.command(&format!("plan {}", plan.join(" "))).await;
    }

    /// Sends a command and waits for its acknowledgement.
    async fn command(&mut self, line: &str) {
        self.commands += 1;
        let stdin = self.stdin.as_mut().expect("the receiver runs");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("the receiver reads its commands");
        let deadline = Instant::now() + DEADLINE;
        loop {
            let ack = self.records().into_iter().find(|record| record["ack"] == self.commands);
            if let Some(ack) = ack {
                assert!(ack.get("error").is_none(), "the receiver refused {:?}: {ack}", line.split(' ').next());
                return;
            }
            assert!(Instant::now() < deadline, "the receiver did not acknowledge a command\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn records(&self) -> Vec<Value> {
        self.lines.lock().unwrap().iter().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }

    /// Everything received so far, in order of arrival.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.records().iter().filter(|record| record.get("seq").is_some()).map(Delivery::parse).collect()
    }

    /// Waits until at least `n` requests arrived: all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Delivery> {
        self.wait_until(&format!("{n} deliveries"), |deliveries| deliveries.len() >= n).await
    }

    /// Waits until what arrived passes `check`: all of it.
    pub async fn wait_until(&self, what: &str, check: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let deliveries = self.deliveries();
            if check(&deliveries) {
                return deliveries;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver on port {} did not get {what} within {DEADLINE:?}; it got: {:#?}\nstderr:\n{}",
                self.port,
                deliveries.iter().map(|d| (d.kind(), d.webhook_id.as_str(), d.answered)).collect::<Vec<_>>(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Closes its standard input and waits until it has exited: its port is closed.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().expect("the receiver's status").is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for pump in self.pumps.drain(..) {
            let _ = pump.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Now, in Unix seconds (as the receiver's `at`).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs_f64()
}

/// An RFC 3339 time in UTC, `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (the times of payloads and of
/// Portico's views), in Unix seconds; panics on anything else.
#[track_caller]
pub fn unix_seconds(text: &str) -> f64 {
    let bad = || -> ! { panic!("not an RFC 3339 time in UTC: {text:?}") };
    let (whole, fraction) = match text.strip_suffix('Z').map(|rest| rest.split_once('.')) {
        Some(Some((whole, fraction))) if !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()) => {
            (whole, format!("0.{fraction}").parse::<f64>().unwrap_or_else(|_| bad()))
        }
        Some(None) => (&text[..text.len() - 1], 0.0),
        _ => bad(),
    };
    let bytes = whole.as_bytes();
    let shape = bytes.len() == 19
        && [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')].iter().all(|(at, c)| bytes[*at] == *c);
    if !shape {
        bad();
    }
    let number = |range: std::ops::Range<usize>| -> i64 { whole[range].parse().unwrap_or_else(|_| bad()) };
    let (month, day) = (number(5..7), number(8..10));
    // Days from 1970-01-01 (H. Hinnant's `days_from_civil`).
    let year = number(0..4) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + number(11..13) * 3600 + number(14..16) * 60 + number(17..19);
    seconds as f64 + fraction
}

/// `<repository>`.
fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the test environment, once it has shown that it has `standardwebhooks`;
/// what is missing otherwise.
fn python() -> Result<PathBuf, String> {
    static CHECKED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let python = repository().join("tests/python/.venv/bin/python");
            if !python.is_file() {
                return Err(format!("{} is missing", python.display()));
            }
            let output = Command::new(&python)
                .args(["-c", "import standardwebhooks"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("{} does not run: {e}", python.display()))?;
            if !output.status.success() {
                return Err(format!(
                    "{} has no standardwebhooks: {}",
                    python.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            Ok(python)
        })
        .clone()
}

fn pump_lines(stream: impl Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            into.lock().unwrap().push(line);
        }
    })
}

fn pump_bytes(mut stream: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buffer) {
            into.lock().unwrap().extend_from_slice(&buffer[..n]);
        }
    })
}
