//! Helpers of the end-to-end tests: the real `portico` binary on a random port with a fresh
//! data directory, an HTTP client that keeps every response it reads, and the fixtures.
//!
//! The store is the embedded SQLite file, or with `PORTICO_TEST_DATABASE=postgres` a fresh
//! PostgreSQL database per Portico (see [`pg`]).

// Each test binary uses a part of these helpers.
#![allow(dead_code)]

pub mod backend;
pub mod idp;
pub mod pg;

use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The log filter of every test server: debug for Portico, HTTP and SQL, so that the search
/// for leaked secrets covers the most talkative logs.
pub const DEBUG_LOG: &str = "portico=debug,portico_server=debug,tower_http=debug,sqlx=debug";

/// The `--metrics-token` of every test server that is not given one.
pub const METRICS_TOKEN: &str = "metrics-token-of-the-tests";

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The `id` of a JSON record.
#[track_caller]
pub fn id(value: &Value) -> String {
    string(value, "id")
}

/// The string field `name` of a JSON object; the test fails when it is not a string.
#[track_caller]
pub fn string(value: &Value, name: &str) -> String {
    value[name].as_str().unwrap_or_else(|| panic!("{name} in {value}")).to_owned()
}

/// Every route of the API with an id where it takes one, for the tests that try them all.
pub fn every_route(connector: &str, connection: &str) -> Vec<(Method, String)> {
    vec![
        (Method::GET, "/v1/connectors".to_owned()),
        (Method::POST, "/v1/connectors".to_owned()),
        (Method::GET, format!("/v1/connectors/{connector}")),
        (Method::PUT, format!("/v1/connectors/{connector}")),
        (Method::DELETE, format!("/v1/connectors/{connector}")),
        (Method::GET, format!("/v1/connectors/{connector}/connection-form")),
        (Method::GET, "/v1/connections".to_owned()),
        (Method::POST, "/v1/connections".to_owned()),
        (Method::GET, format!("/v1/connections/{connection}")),
        (Method::PATCH, format!("/v1/connections/{connection}")),
        (Method::DELETE, format!("/v1/connections/{connection}")),
        (Method::POST, format!("/v1/connections/{connection}/reauthorize")),
        (Method::GET, format!("/v1/connections/{connection}/shares")),
        (Method::PUT, format!("/v1/connections/{connection}/shares/someone")),
        (Method::DELETE, format!("/v1/connections/{connection}/shares/someone")),
        (Method::GET, "/v1/api-keys".to_owned()),
        (Method::POST, "/v1/api-keys".to_owned()),
        (Method::GET, format!("/v1/api-keys/{MISSING_ID}")),
        (Method::DELETE, format!("/v1/api-keys/{MISSING_ID}")),
        (Method::GET, "/v1/members".to_owned()),
        (Method::POST, "/v1/members".to_owned()),
        (Method::GET, format!("/v1/members/{MISSING_ID}")),
        (Method::PATCH, format!("/v1/members/{MISSING_ID}")),
        (Method::DELETE, format!("/v1/members/{MISSING_ID}")),
        (Method::GET, "/v1/audit".to_owned()),
    ]
}

/// A running `portico serve`, killed when dropped.
pub struct Portico {
    child: Child,
    /// `http://127.0.0.1:PORT`, read from the first line the server prints.
    pub base: String,
    pub data_dir: PathBuf,
    /// The key of tenant `default`, from `<data dir>/admin-api-key`.
    pub admin_key: String,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    pumps: Vec<JoinHandle<()>>,
    /// Every response body read through [`Portico::api`] clients.
    responses: Arc<Mutex<Vec<String>>>,
    /// Owns the data directory of a server started with [`Portico::start`].
    owned_dir: Option<TempDir>,
    /// The `--database` URL: the one the test passed, or the PostgreSQL database made for
    /// this run (`PORTICO_TEST_DATABASE=postgres`); `None` for SQLite in the data directory.
    pub database_url: Option<String>,
    /// The database made for this server, dropped with the last server on it.
    database: Option<Arc<pg::TestDatabase>>,
}

impl Portico {
    /// A server on a fresh data directory.
    pub fn start() -> Portico {
        Portico::start_with(&[])
    }

    /// A server on a fresh data directory, with more `serve` arguments.
    pub fn start_with(args: &[&str]) -> Portico {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let mut portico = Portico::start_in(&temp.path().join("data"), args);
        portico.owned_dir = Some(temp);
        portico
    }

    /// A server on `data_dir` (created by Portico when missing), which outlives it.
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Portico {
        Portico::launch(data_dir, args, &[])
    }

    /// A server on `data_dir`, with more `serve` arguments and environment variables.
    ///
    /// With `--database` among `args` the test chose the store (several instances on one
    /// database): the data directory then has an admin key file only if this start created
    /// the first tenant, and [`Portico::admin_key`] is empty otherwise.
    pub fn launch(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Portico {
        let engine = Engine::of(data_dir, args);
        let mut command = serve_command(data_dir, &engine, args, env);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("portico starts");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pumps = vec![
            pump(child.stdout.take().expect("piped stdout"), stdout.clone()),
            pump(child.stderr.take().expect("piped stderr"), stderr.clone()),
        ];
        let mut portico = Portico {
            child,
            base: String::new(),
            data_dir: data_dir.to_owned(),
            admin_key: String::new(),
            stdout,
            stderr,
            pumps,
            responses: Arc::default(),
            owned_dir: None,
            database_url: engine.database_url(args),
            database: engine.database,
        };
        portico.wait_for_banner();
        let first_line = portico.stdout().lines().next().unwrap_or_default().to_owned();
        let base = first_line
            .strip_prefix("Portico is listening on ")
            .unwrap_or_else(|| panic!("the first line of standard output names the address, not {first_line:?}"));
        portico.base = base.trim().to_owned();
        let key_file = data_dir.join("admin-api-key");
        portico.admin_key = match std::fs::read_to_string(&key_file) {
            Ok(key) => key.trim().to_owned(),
            Err(_) if engine.chosen_by_test => String::new(),
            Err(e) => panic!("the admin key file {}: {e}", key_file.display()),
        };
        portico
    }

    /// The URL of this server's store: `--database`, or its SQLite file.
    pub fn store_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("portico.db").display()))
    }

    /// The PostgreSQL database made for this server, if any.
    pub fn test_database(&self) -> Option<&pg::TestDatabase> {
        self.database.as_deref()
    }

    /// Everything the server keeps: each file of its data directory and, on PostgreSQL,
    /// every value of its database (see [`pg::TestDatabase::contents`]), each with a name.
    pub fn stored_contents(&self) -> Vec<(String, Vec<u8>)> {
        let mut contents: Vec<(String, Vec<u8>)> =
            files_in(&self.data_dir).into_iter().map(|(path, bytes)| (path.display().to_string(), bytes)).collect();
        if let Some(database) = &self.database {
            contents.extend(
                database.contents().into_iter().map(|(name, bytes)| (format!("{}: {name}", database.name), bytes)),
            );
        }
        contents
    }

    /// Waits until the start-up banner is printed in full (its last line starts with `Try:`).
    fn wait_for_banner(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.stdout().lines().any(|line| line.starts_with("Try:")) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.join_pumps();
                panic!(
                    "portico exited with {status} before listening\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(Instant::now() < deadline, "portico did not start in time\nstderr:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A client with the key of tenant `default`.
    pub fn api(&self) -> Api {
        self.client(Some(&self.admin_key))
    }

    /// `GET /metrics` with the metrics token every test server is started with.
    pub async fn metrics(&self) -> Reply {
        self.client(Some(METRICS_TOKEN)).get("/metrics").await
    }

    /// A client that sends `key` as a bearer token, or nothing.
    pub fn client(&self, key: Option<&str>) -> Api {
        let http = client_builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
        Api { http, base: self.base.clone(), key: key.map(str::to_owned), responses: self.responses.clone() }
    }

    /// Runs `portico tenant <args>` on this server's data directory (and database), while it
    /// runs.
    pub fn tenant_command(&self, args: &[&str]) -> Output {
        self.command("tenant", args)
    }

    /// Runs `portico <command> <args>` on this server's data directory (and database).
    pub fn command(&self, command: &str, args: &[&str]) -> Output {
        let database: Vec<&str> = match &self.database_url {
            Some(url) => vec!["--database", url],
            None => Vec::new(),
        };
        Command::new(env!("CARGO_BIN_EXE_portico"))
            .arg(command)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(database)
            .env_clear()
            .envs(std::env::vars().filter(|(name, _)| !name.starts_with("PORTICO_")))
            .output()
            .expect("portico tenant runs")
    }

    /// `portico tenant create|key NAME`: the printed key.
    pub fn tenant_key(&self, subcommand: &str, name: &str) -> String {
        let output = self.tenant_command(&[subcommand, name]);
        assert!(
            output.status.success(),
            "portico tenant {subcommand} {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed: Value = serde_json::from_slice(&output.stdout).expect("tenant commands print JSON");
        assert_eq!(printed["tenant"], name);
        printed["api_key"].as_str().expect("an api_key").to_owned()
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Everything the process printed, as bytes.
    pub fn output_bytes(&self) -> Vec<u8> {
        let mut all = self.stdout.lock().unwrap().clone();
        all.extend_from_slice(&self.stderr.lock().unwrap());
        all
    }

    /// Every response body the clients of this server read.
    pub fn responses(&self) -> Vec<String> {
        self.responses.lock().unwrap().clone()
    }

    /// Asks the server to stop (SIGTERM) and waits until it exits and its output is read.
    pub fn stop(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success(), "SIGTERM sent to portico");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                break status;
            }
            assert!(Instant::now() < deadline, "portico did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        self.join_pumps();
        status
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until the process is reaped:
    /// its last thread has exited, so nothing of it holds the port or the store any more (a
    /// zombie leader alone does not say that).
    pub fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL sent to portico");
        self.child.wait().expect("portico is reaped");
        self.join_pumps();
    }

    fn join_pumps(&mut self) {
        for pump in self.pumps.drain(..) {
            let _ = pump.join();
        }
    }
}

impl Drop for Portico {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Where a server keeps its store in this run.
struct Engine {
    /// Made for it: `PORTICO_TEST_DATABASE=postgres`, and the test named no database.
    database: Option<Arc<pg::TestDatabase>>,
    /// The test passed `--database` itself.
    chosen_by_test: bool,
}

impl Engine {
    fn of(data_dir: &Path, args: &[&str]) -> Engine {
        let chosen_by_test = args.iter().any(|arg| *arg == "--database" || arg.starts_with("--database="));
        let database = (pg::enabled() && !chosen_by_test).then(|| pg::database_for(data_dir));
        Engine { database, chosen_by_test }
    }

    fn database_url(&self, args: &[&str]) -> Option<String> {
        if let Some(database) = &self.database {
            return Some(database.url.clone());
        }
        let at = args.iter().position(|arg| *arg == "--database")?;
        args.get(at + 1).map(|url| (*url).to_owned())
    }
}

/// `portico serve` on a random loopback port (unless `args` name one) with debug logs (unless
/// `args` name a filter); the tests decide every setting,
/// none comes from the environment of the run. On a database made for the run, with
/// [`pg::TEST_MASTER_KEY`] unless `env` names another key.
fn serve_command(data_dir: &Path, engine: &Engine, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portico"));
    command.arg("serve");
    if !args.contains(&"--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    if !args.contains(&"--metrics-token") {
        command.args(["--metrics-token", METRICS_TOKEN]);
    }
    command.arg("--data-dir").arg(data_dir);
    if !args.contains(&"--log") {
        command.args(["--log", DEBUG_LOG]);
    }
    command.args(args);
    command.env_clear().envs(std::env::vars().filter(|(name, _)| !name.starts_with("PORTICO_")));
    if let Some(database) = &engine.database {
        command.args(["--database", &database.url]).env("PORTICO_MASTER_KEY", pg::TEST_MASTER_KEY);
    }
    command.envs(env.iter().copied());
    command
}

/// Runs `portico serve` that is expected to refuse to start: its output.
pub fn serve_refused(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let engine = Engine::of(data_dir, args);
    let mut child = serve_command(data_dir, &engine, args, env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portico starts");
    let deadline = Instant::now() + START_TIMEOUT;
    while child.try_wait().expect("the child's status").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("portico serve {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("the output");
    assert!(!output.status.success(), "portico serve {args:?} exits with an error");
    output
}

/// Copies a stream into a buffer, line by line, until it ends.
fn pump(stream: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => into.lock().unwrap().extend_from_slice(&line),
            }
        }
    })
}

/// An HTTP client of one server with one key (or none).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    responses: Arc<Mutex<Vec<String>>>,
}

impl Api {
    /// A request to `path`, with the key if this client has one.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    pub async fn send(&self, request: RequestBuilder) -> Reply {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable body");
        self.responses.lock().unwrap().push(text.clone());
        Reply { status, headers, text }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(self.request(Method::PATCH, path).json(body)).await
    }

    /// A raw body with the given content type (none when `None`).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> Reply {
        let mut request = self.request(method, path).body(body.into());
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        self.send(request).await
    }

    /// `POST /v1/connectors`, expecting 201: the connector.
    pub async fn create_connector(&self, body: &Value) -> Value {
        self.post("/v1/connectors", body).await.expect_json(201)
    }

    /// `POST /v1/connections`, expecting 201: the connection.
    pub async fn create_connection(&self, body: &Value) -> Value {
        self.post("/v1/connections", body).await.expect_json(201)
    }

    /// Follows `next` from the first page of `path` (which has no query yet) with `limit`.
    pub async fn all_pages(&self, path: &str, limit: u32) -> Vec<Vec<Value>> {
        let mut pages = Vec::new();
        let mut url = format!("{path}?limit={limit}");
        loop {
            let page = self.get(&url).await.expect_json(200);
            pages.push(page["items"].as_array().expect("items").clone());
            match page.get("next") {
                None => return pages,
                Some(next) => url = format!("{path}?limit={limit}&after={}", next.as_str().expect("a string cursor")),
            }
            assert!(pages.len() < 100, "pagination does not end");
        }
    }
}

/// A response, read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts the status and a JSON body, and gives the body.
    #[track_caller]
    pub fn expect_json(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "status; body: {}", self.text);
        assert!(self.content_type().starts_with("application/json"), "content type {:?}", self.content_type());
        self.json()
    }

    /// Asserts the status and that the body is empty.
    #[track_caller]
    pub fn expect_empty(&self, status: u16) {
        assert_eq!(self.status, status, "status; body: {}", self.text);
        assert_eq!(self.text, "", "an empty body");
    }

    /// Asserts an RFC 9457 problem with the status and the type `urn:portico:problem:<kind>`,
    /// and gives the problem.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, kind: &str) -> Problem {
        assert_eq!(self.status, status, "status; body: {}", self.text);
        assert_eq!(self.content_type(), "application/problem+json", "content type; body: {}", self.text);
        let body = self.json();
        assert_eq!(body["type"], format!("urn:portico:problem:{kind}"), "problem type: {body}");
        assert_eq!(body["status"], status, "the problem repeats the status: {body}");
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()), "a title: {body}");
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "a detail: {body}");
        Problem(body)
    }
}

/// A problem+json body.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem(pub Value);

impl Problem {
    pub fn detail(&self) -> &str {
        self.0["detail"].as_str().unwrap_or_default()
    }

    /// The `field` of each entry of `errors`, in order.
    pub fn fields(&self) -> Vec<&str> {
        self.0["errors"].as_array().into_iter().flatten().filter_map(|e| e["field"].as_str()).collect()
    }

    /// The message about `field`; panics when the problem does not name it.
    #[track_caller]
    pub fn message(&self, field: &str) -> &str {
        self.0["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["field"] == field)
            .and_then(|e| e["message"].as_str())
            .unwrap_or_else(|| panic!("the problem names {field}: {}", self.0))
    }
}

/// Fixture files under `tests/fixtures`.
pub mod fixture {
    use super::*;

    fn path(relative: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(relative)
    }

    pub fn json(relative: &str) -> Value {
        let text = std::fs::read_to_string(path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
    }

    /// `{"powerPlatform": {...}}` from the two files of a folder under `power-platform/`.
    pub fn power_platform(folder: &str) -> Value {
        json!({"powerPlatform": {
            "apiProperties": json(&format!("power-platform/{folder}/apiProperties.json")),
            "apiDefinition": json(&format!("power-platform/{folder}/apiDefinition.swagger.json")),
        }})
    }

    /// `{"openapi": {...}}` from a document under `openapi/`.
    pub fn openapi(file: &str) -> Value {
        json!({"openapi": json(&format!("openapi/{file}"))})
    }

    /// `{"definition": {...}}` from a file under `definitions/`.
    pub fn definition(file: &str) -> Value {
        json!({"definition": json(&format!("definitions/{file}"))})
    }
}

/// A value that appears nowhere unless the code under test copies it: `prefix` and 128
/// random bits.
pub fn distinctive(prefix: &str) -> String {
    format!("{prefix}{:016x}{:016x}", random(), random())
}

/// 64 random bits.
pub fn random() -> u64 {
    // Each `RandomState` has fresh random keys, so the hash of nothing is a random number.
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// Whether `needle` occurs in `haystack`, as bytes.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

/// Every file under `dir`, with its contents.
pub fn files_in(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(files_in(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            files.push((path, bytes));
        }
    }
    files
}

/// A well-formed id that names nothing.
pub const MISSING_ID: &str = "01890000-0000-7000-8000-000000000000";

/// A reqwest client builder. Portico's reqwest uses rustls without a built-in crypto
/// provider, so the tests install `ring` as the process default first.
pub fn client_builder() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}
