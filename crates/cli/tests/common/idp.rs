//! A real OAuth 2.0 / OpenID Connect authorization server for the OAuth tests: `tests/idp/idp.mjs`
//! (oidc-provider, pinned by `tests/idp/package-lock.json`) run by Node on a free loopback port,
//! killed when dropped; and [`Browser`], which signs in there as a person would, posting the
//! login and consent forms.
//!
//! Needs `node` and `tests/idp/node_modules` (`npm ci --prefix tests/idp`, which `scripts/test`
//! runs). Without them [`Idp::try_start`] prints `SKIPPED: …` and gives `None`, except under
//! `CI=true`, where it panics.
//!
//! The default clients (see [`BASIC`] and the others) may use every scope of [`SCOPES`], must
//! use PKCE (S256), and must authenticate with their registered method only: any other one is
//! answered 401 `invalid_client`. Userinfo at `/me` wants a token with the `openid` scope;
//! `/__test/resource` takes any access token, client-credentials ones too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde_json::Value;
use url::Url;

use super::pump;

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// What the authorization server must do to be useful to the tests; shown when it cannot start.
const HOW_TO_INSTALL: &str = "the OAuth tests need Node.js (20 or later) on PATH and the packages of tests/idp: \
     run `npm ci --prefix tests/idp --no-audit --no-fund` at the repository root (scripts/test does it)";

/// Every scope the default clients may ask for.
pub const SCOPES: &str = "openid offline_access profile email api:read api:write";

/// A client registered at the server by default.
#[derive(Debug, Clone, Copy)]
pub struct IdpClient {
    pub id: &'static str,
    /// `None` for the public client.
    pub secret: Option<&'static str>,
    /// `client_secret_basic`, `client_secret_post` or `none`: the only method it may use.
    pub auth_method: &'static str,
}

/// Authorization code, refresh, client credentials; `client_secret_basic`.
pub const BASIC: IdpClient =
    IdpClient { id: "basic-client", secret: Some("basic-secret"), auth_method: "client_secret_basic" };
/// Authorization code, refresh, client credentials; `client_secret_post`.
pub const POST: IdpClient =
    IdpClient { id: "post-client", secret: Some("post-secret"), auth_method: "client_secret_post" };
/// Like [`BASIC`], with a secret that only survives RFC 6749 §2.3.1's form-encoding.
pub const ODD: IdpClient =
    IdpClient { id: "odd-client", secret: Some("p+ss/w%rd:x y"), auth_method: "client_secret_basic" };
/// Authorization code and refresh, no secret (`none`).
pub const PUBLIC: IdpClient = IdpClient { id: "public-client", secret: None, auth_method: "none" };
/// Client credentials only; `client_secret_basic`.
pub const CC: IdpClient = IdpClient { id: "cc-client", secret: Some("cc-secret"), auth_method: "client_secret_basic" };

/// How to run the server.
#[derive(Debug, Clone)]
pub struct IdpOptions {
    /// `AT_TTL`: access-token lifetime, client-credentials tokens too.
    pub access_token_ttl: Duration,
    /// `RT_TTL`: refresh-token lifetime.
    pub refresh_token_ttl: Duration,
    /// `REDIRECT_URIS`: where every default client may be sent back, e.g.
    /// `http://127.0.0.1:<portico port>/oauth/callback`.
    pub redirect_uris: Vec<String>,
    /// `AUTO_APPROVE=1`: `/auth` signs in as `login_hint` (or `alice`) and grants every requested
    /// scope with no page (`login_hint=deny` refuses). Otherwise the real forms are shown.
    pub auto_approve: bool,
    /// `CLIENTS_JSON`: more clients (oidc-provider client metadata); one with the id of a
    /// default client replaces it.
    pub extra_clients: Vec<Value>,
}

impl Default for IdpOptions {
    fn default() -> IdpOptions {
        IdpOptions {
            access_token_ttl: Duration::from_secs(5),
            refresh_token_ttl: Duration::from_secs(3600),
            redirect_uris: Vec::new(),
            auto_approve: false,
            extra_clients: Vec::new(),
        }
    }
}

impl IdpOptions {
    /// The defaults with one redirect URI.
    pub fn redirecting_to(redirect_uri: &str) -> IdpOptions {
        IdpOptions { redirect_uris: vec![redirect_uri.to_owned()], ..IdpOptions::default() }
    }
}

/// A running authorization server, killed when dropped.
pub struct Idp {
    child: Child,
    issuer: String,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    pumps: Vec<JoinHandle<()>>,
    http: reqwest::Client,
}

impl Idp {
    /// Starts the server, or panics when Node or its packages are missing (whether or not CI).
    pub fn start(options: &IdpOptions) -> Idp {
        if let Err(missing) = prerequisites() {
            panic!("{missing}: {HOW_TO_INSTALL}");
        }
        Idp::launch(options)
    }

    /// Starts the server; without Node or its packages, prints `SKIPPED: …` (to the real
    /// standard error, past the test harness's capture) and gives `None`, or panics under
    /// `CI=true`. A test returns early on `None`:
    /// `let Some(idp) = Idp::try_start(&options) else { return };`
    pub fn try_start(options: &IdpOptions) -> Option<Idp> {
        if let Err(missing) = prerequisites() {
            portico_testkit::skip_or_fail(&format!("{missing}; CI runs the OAuth tests; {HOW_TO_INSTALL}"));
            return None;
        }
        Some(Idp::launch(options))
    }

    fn launch(options: &IdpOptions) -> Idp {
        // Built first: nothing may panic between the spawn and the `Idp` that kills the child.
        let http = client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("an HTTP client");
        let dir = idp_dir();
        let mut command = Command::new("node");
        command.arg(dir.join("idp.mjs")).current_dir(&dir);
        // Port 0: the server binds a free port itself and prints it, so no other process can
        // take it between a probe and the bind.
        command
            .env("PORT", "0")
            .env("AT_TTL", options.access_token_ttl.as_secs().max(1).to_string())
            .env("RT_TTL", options.refresh_token_ttl.as_secs().max(1).to_string())
            .env("REDIRECT_URIS", options.redirect_uris.join(","))
            .env("AUTO_APPROVE", if options.auto_approve { "1" } else { "0" })
            .env("CLIENTS_JSON", Value::Array(options.extra_clients.clone()).to_string())
            // Our end of its standard input closes when this process dies, however it dies.
            .env("EXIT_WITH_STDIN", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("node starts: {e}; {HOW_TO_INSTALL}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pumps = vec![
            pump(child.stdout.take().expect("piped stdout"), stdout.clone()),
            pump(child.stderr.take().expect("piped stderr"), stderr.clone()),
        ];
        let mut idp = Idp { child, issuer: String::new(), stdout, stderr, pumps, http };
        idp.issuer = idp.wait_until_ready();
        idp
    }

    /// The issuer from `READY <issuer>`.
    fn wait_until_ready(&mut self) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(issuer) = self.log().lines().find_map(|line| line.strip_prefix("READY ")) {
                return issuer.trim().to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                for pump in self.pumps.drain(..) {
                    let _ = pump.join();
                }
                panic!(
                    "the IdP exited with {status} before READY\nstdout:\n{}\nstderr:\n{}",
                    self.log(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the IdP printed no READY in {READY_TIMEOUT:?}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `http://127.0.0.1:PORT`, also the base of every endpoint.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `<issuer><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        self.url("/.well-known/openid-configuration")
    }

    /// Everything the server printed on standard output so far: `READY`, then one line per
    /// call of the token, introspection and revocation endpoints and of `/__test/resource`.
    /// The last lines may still be on their way: [`Idp::settle`] waits for them.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Warnings and errors (oidc-provider warns about Node 20 and its development forms).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until every log line of the calls the server has answered is read here: a line
    /// is printed before its response is sent, but read by another thread.
    pub async fn settle(&self) {
        let stats = self.stats().await;
        let printed = stats["events"].as_u64().expect("stats.events") as usize;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            let read = EVENT_TAGS.iter().map(|tag| events_in(&log, tag).len()).sum::<usize>();
            if read >= printed {
                return;
            }
            assert!(Instant::now() < deadline, "the IdP printed {printed} events, {read} were read");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The fields of every log line that starts with `tag` (`TOKEN`, `INTROSPECT`, `REVOKE`,
    /// `RESOURCE`), the calls answered so far included, values percent-decoded (`-` stands for
    /// none).
    pub async fn log_events(&self, tag: &str) -> Vec<BTreeMap<String, String>> {
        self.settle().await;
        events_in(&self.log(), tag)
    }

    /// How many token-endpoint calls with this `grant_type` the server has answered, counted
    /// in its log (failed and injected ones included), the calls answered so far included.
    pub async fn token_calls(&self, grant_type: &str) -> usize {
        self.log_events("TOKEN").await.iter().filter(|event| event["grant"] == grant_type).count()
    }

    /// `GET /__test/stats`: `{"token": {<grant_type>: calls}, "introspect", "revoke",
    /// "resource", "events"}`.
    pub async fn stats(&self) -> Value {
        let response = self.http.get(self.url("/__test/stats")).send().await.expect("the IdP answers");
        assert_eq!(response.status(), StatusCode::OK, "GET /__test/stats");
        response.json().await.expect("stats are JSON")
    }

    /// The next `n` token-endpoint calls wait `delay`, then fail with `status` and an OAuth
    /// error body (`temporarily_unavailable`, or `server_error` for 500).
    pub async fn fail_next(&self, n: usize, status: u16, delay: Duration) {
        self.inject("token", n, status, delay, None).await;
    }

    /// The next `n` token-endpoint calls answer `status` with `{"error": error}`, e.g. 400
    /// `invalid_grant`.
    pub async fn fail_next_with(&self, n: usize, status: u16, error: &str) {
        self.inject("token", n, status, Duration::ZERO, Some(error)).await;
    }

    /// The next `n` token-endpoint calls wait `delay`, then are answered as usual.
    pub async fn delay_next(&self, n: usize, delay: Duration) {
        self.inject("token", n, 0, delay, None).await;
    }

    /// `POST /__test/fail` for `endpoint`: `token`, `introspection` or `revocation`;
    /// `status` 0 lets the calls through after the delay.
    pub async fn inject(&self, endpoint: &str, n: usize, status: u16, delay: Duration, error: Option<&str>) {
        let mut url = Url::parse(&self.url("/__test/fail")).expect("a URL");
        url.query_pairs_mut()
            .append_pair("endpoint", endpoint)
            .append_pair("count", &n.to_string())
            .append_pair("status", &status.to_string())
            .append_pair("delay_ms", &delay.as_millis().to_string());
        if let Some(error) = error {
            url.query_pairs_mut().append_pair("error", error);
        }
        let response = self.http.post(url).send().await.expect("the IdP answers");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "POST /__test/fail: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Forgets every grant and its tokens, as when a user withdraws consent: a refresh then
    /// gets `invalid_grant`. Gives how many grants were forgotten.
    pub async fn revoke_grants(&self) -> usize {
        let response = self.http.post(self.url("/__test/revoke-grants")).send().await.expect("the IdP answers");
        assert_eq!(response.status(), StatusCode::OK, "POST /__test/revoke-grants");
        let body: Value = response.json().await.expect("JSON");
        body["forgotten"].as_u64().expect("forgotten") as usize
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The tags of the log lines of calls.
const EVENT_TAGS: [&str; 4] = ["TOKEN", "INTROSPECT", "REVOKE", "RESOURCE"];

/// The fields of the lines of `log` tagged `tag`.
fn events_in(log: &str, tag: &str) -> Vec<BTreeMap<String, String>> {
    log.lines()
        .filter_map(|line| line.strip_prefix(tag)?.strip_prefix(' '))
        .map(|fields| {
            fields
                .split(' ')
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| {
                    let value = url::form_urlencoded::parse(format!("v={value}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    (key.to_owned(), value)
                })
                .collect()
        })
        .collect()
}

/// `<repository>/tests/idp`.
fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp")
}

/// Whether Node and the server's packages are there; what is missing otherwise.
fn prerequisites() -> Result<(), String> {
    let installed = idp_dir().join("node_modules/oidc-provider/package.json");
    if !installed.is_file() {
        return Err(format!("{} is missing", installed.display()));
    }
    match Command::new("node").arg("--version").stdin(Stdio::null()).output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("`node --version` failed: {}", String::from_utf8_lossy(&output.stderr))),
        Err(e) => Err(format!("node is not on PATH ({e})")),
    }
}

/// A loopback HTTP client: no proxy, a 10-second timeout, the crypto provider installed.
pub fn client_builder() -> reqwest::ClientBuilder {
    super::client_builder().no_proxy().timeout(Duration::from_secs(10))
}

/// `Authorization: Basic` for a client as RFC 6749 §2.3.1 wants it: the id and the secret each
/// form-urlencoded, then joined by `:` and base64-encoded.
pub fn basic_authorization(client_id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials))
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// Signs in at `authorize_url` as `login` in a fresh browser and consents: the URL the server
/// finally sends the browser to, which starts with `redirect_prefix` (with `code` and `state`,
/// or `error`).
pub async fn sign_in(authorize_url: &str, login: &str, redirect_prefix: &str) -> String {
    Browser::new().sign_in(authorize_url, login, redirect_prefix).await
}

/// A browser: a cookie jar, redirects followed by hand, forms posted as a person would.
pub struct Browser {
    http: reqwest::Client,
}

/// What the person does at the server's pages.
#[derive(Debug, Clone, Copy)]
enum Choice<'a> {
    SignIn(&'a str),
    Refuse,
}

impl Default for Browser {
    fn default() -> Browser {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        let http = client_builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Browser { http }
    }

    /// Signs in as `login` (any password) and consents, unless this browser's session makes
    /// the forms unnecessary: the redirect that starts with `redirect_prefix`. Under
    /// `auto_approve` there is no form and `login` is unused (the user is `login_hint`, or
    /// `alice`).
    pub async fn sign_in(&self, authorize_url: &str, login: &str, redirect_prefix: &str) -> String {
        self.drive(authorize_url, Choice::SignIn(login), redirect_prefix).await
    }

    /// Refuses at the first form ("Cancel"): the redirect, with `error=access_denied`.
    pub async fn refuse(&self, authorize_url: &str, redirect_prefix: &str) -> String {
        self.drive(authorize_url, Choice::Refuse, redirect_prefix).await
    }

    async fn drive(&self, authorize_url: &str, choice: Choice<'_>, redirect_prefix: &str) -> String {
        let mut url = Url::parse(authorize_url).unwrap_or_else(|e| panic!("{authorize_url}: {e}"));
        let mut request = self.http.get(url.clone());
        let mut trail = Vec::new();
        for _ in 0..20 {
            trail.push(url.to_string());
            let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            let status = response.status();
            if status.is_redirection() {
                let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
                let next = url.join(location).unwrap_or_else(|e| panic!("Location {location:?}: {e}"));
                if next.as_str().starts_with(redirect_prefix) {
                    return next.into();
                }
                url = next;
                request = self.http.get(url.clone());
                continue;
            }
            let page = response.text().await.unwrap_or_default();
            assert_eq!(status, StatusCode::OK, "{url} answered {status}: {}\nvisited: {trail:#?}", text_of(&page));
            let prompt = hidden_value(&page, "prompt")
                .unwrap_or_else(|| panic!("{url} shows no login or consent form: {}", text_of(&page)));
            let action = attribute_after(&page, "<form", "action")
                .unwrap_or_else(|| panic!("the {prompt} form of {url} has no action"));
            let action = url.join(&action).expect("a form action");
            request = match (choice, prompt.as_str()) {
                (Choice::Refuse, _) => {
                    let abort = attribute_after(&page, "class=\"login-help\"", "href")
                        .unwrap_or_else(|| panic!("{url} has no cancel link: {}", text_of(&page)));
                    self.http.get(url.join(&abort).expect("a cancel link"))
                }
                (Choice::SignIn(login), "login") => self
                    .post_form(action.clone(), &[("prompt", "login"), ("login", login), ("password", "any-password")]),
                (Choice::SignIn(_), "consent") => self.post_form(action.clone(), &[("prompt", "consent")]),
                (_, other) => panic!("{url} shows an unknown form {other:?}"),
            };
            url = action;
        }
        panic!("no redirect to {redirect_prefix} after 20 steps: {trail:#?}");
    }

    fn post_form(&self, url: Url, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.http.post(url).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(form(pairs))
    }
}

/// The value of `<input type="hidden" name="NAME" value="...">`.
fn hidden_value(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\""))?;
    let tag_start = page[..at].rfind('<')?;
    attribute_after(&page[tag_start..], "<input", "value")
}

/// The value of the attribute `name` of the first tag after `marker`, unescaped.
fn attribute_after(page: &str, marker: &str, name: &str) -> Option<String> {
    let from = page.find(marker)?;
    let rest = &page[from..];
    let start = rest.find(&format!("{name}=\""))? + name.len() + 2;
    let end = rest[start..].find('"')?;
    Some(unescape(&rest[start..start + end]))
}

fn unescape(text: &str) -> String {
    text.replace("&#x2F;", "/")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A page without its tags, shortened, for messages.
fn text_of(page: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in page.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(600).collect()
}
