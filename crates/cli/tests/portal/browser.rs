//! A real browser for the portal's tests: Debian's Chromium, headless, driven over WebDriver
//! by Debian's chromedriver on a free loopback port. Never a browser a test tool downloads.
//!
//! Without `/usr/bin/chromium` or `chromedriver`, [`Chrome::try_start`] prints `SKIPPED: …`
//! and gives `None`, except under `CI=true`, where it panics: CI installs both (`.ci/run`).
//!
//! chromedriver runs in a process group of its own, Chromium inside it, so that the group —
//! and only it — is ended when the test ends, however it ends.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";
const HOW_TO_INSTALL: &str = "the portal tests need Debian's Chromium and chromedriver: \
     `apt-get install -y --no-install-recommends chromium chromium-driver` (.ci/run does it)";

/// The width the portal is designed for on a desktop, and on a phone.
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

/// A headless Chromium and its chromedriver, both ended when dropped.
pub struct Chrome {
    pub client: Client,
    /// `None` once ended.
    driver: Option<Child>,
    /// The profile (`--user-data-dir`), fresh for each browser.
    _profile: TempDir,
}

impl Chrome {
    /// A new browser at [`DESKTOP`] size, or `None` (after `SKIPPED`) when Chromium or
    /// chromedriver is missing outside CI.
    pub async fn try_start() -> Option<Chrome> {
        if let Err(missing) = prerequisites() {
            portico_testkit::skip_or_fail(&format!(
                "{missing}; CI runs the portal tests in a browser; {HOW_TO_INSTALL}"
            ));
            return None;
        }
        Some(Chrome::start().await)
    }

    async fn start() -> Chrome {
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut last_error = String::new();
        // A free port may be taken between the probe and chromedriver's bind: try again then.
        for _ in 0..3 {
            let port = free_port();
            let mut driver = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("chromedriver starts: {e}"));
            let url = format!("http://127.0.0.1:{port}");
            match connect(&url, profile.path()).await {
                Ok(client) => return Chrome { client, driver: Some(driver), _profile: profile },
                Err(error) => {
                    last_error = error;
                    end_group(&mut driver);
                }
            }
        }
        panic!("no WebDriver session with Chromium: {last_error}");
    }

    /// Ends the WebDriver session (Chromium quits), then chromedriver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        if let Some(mut driver) = self.driver.take() {
            end_group(&mut driver);
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The path (and query) of the page shown.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The element matching `css`, waiting a little for it.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(error) => {
                    if Instant::now() > deadline {
                        let path = self.path().await;
                        panic!("no element {css} on {path}: {error}\n{}", self.visible_text().await);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.map(|all| all.len()).unwrap_or(0)
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// Types `text` into the (cleared) input `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
        input.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap_or_else(|e| panic!("choose {value} in {css}: {e}"));
    }

    /// Clicks the button or link `css` and waits for the page it leads to.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.mark_page().await;
        element.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
        self.wait_for_new_page(css).await;
    }

    /// Clicks the button or link whose text is `text` and waits for the page it leads to.
    pub async fn click_text(&self, text: &str) {
        let xpath = format!(
            "//button[normalize-space()='{text}'] | //a[normalize-space()='{text}'] | //input[@type='submit' and @value='{text}']"
        );
        let element = match self.client.find(Locator::XPath(&xpath)).await {
            Ok(element) => element,
            Err(error) => panic!("no button or link '{text}' on {}: {error}", self.path().await),
        };
        self.mark_page().await;
        element.click().await.unwrap_or_else(|e| panic!("click '{text}': {e}"));
        self.wait_for_new_page(text).await;
    }

    /// Marks the page shown, so that [`Chrome::wait_for_new_page`] sees it replaced.
    async fn mark_page(&self) {
        self.script("window.__porticoOldPage = true").await;
    }

    /// Waits until the marked page is replaced by one that has loaded.
    async fn wait_for_new_page(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let state = self
                .client
                .execute("return [window.__porticoOldPage === true, document.readyState]", vec![])
                .await
                .unwrap_or(Value::Null);
            if state[0] == json!(false) && state[1] == "complete" {
                return;
            }
            assert!(Instant::now() < deadline, "clicking {what} led to no new page (still {})", self.path().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    /// The text a person sees on the page.
    pub async fn visible_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The page's HTML as served and changed since.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("the page source")
    }

    pub async fn script(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.expect("the window resizes");
    }

    /// Saves the whole page (the window grown to its height) as `docs/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let (width, height) = self.client.get_window_size().await.expect("the window size");
        // The window is taller than the page's viewport by the browser's own parts.
        let sizes = self
            .script("return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]")
            .await;
        let page_height = sizes[0].as_u64().unwrap_or(height) + sizes[1].as_u64().unwrap_or(0);
        let shot_height = page_height.clamp(height, 3000) as u32;
        self.resize((width as u32, shot_height)).await;
        let png = self.client.screenshot().await.expect("a screenshot");
        self.resize((width as u32, height as u32)).await;
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("docs/screenshots");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot is saved");
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            end_group(&mut driver);
        }
    }
}

/// `<repository>/docs/screenshots`.
pub fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
}

fn prerequisites() -> Result<(), String> {
    if !Path::new(CHROMIUM).is_file() {
        return Err(format!("{CHROMIUM} is missing"));
    }
    match Command::new(CHROMEDRIVER).arg("--version").stdin(Stdio::null()).output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("`chromedriver --version` failed: {}", String::from_utf8_lossy(&output.stderr))),
        Err(e) => Err(format!("chromedriver is not on PATH ({e})")),
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}

/// A WebDriver session with headless Chromium, once chromedriver answers.
async fn connect(url: &str, profile: &Path) -> Result<Client, String> {
    let (width, height) = DESKTOP;
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--lang=en-US",
                format!("--user-data-dir={}", profile.display()),
                format!("--window-size={width},{height}"),
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else { unreachable!("an object") };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(url).await {
            Ok(client) => return Ok(client),
            Err(error) if Instant::now() > deadline => return Err(error.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Ends chromedriver's process group (chromedriver and the Chromium it started). The leader is
/// reaped last, so that the group id cannot have been reused when it is signalled.
fn end_group(driver: &mut Child) {
    let pid = driver.id();
    let group = format!("-{pid}");
    let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && !exited(pid) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Whatever is left of the group (a Chromium helper that ignored TERM).
    let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
    let _ = driver.wait();
}

/// Whether process `pid` (a child not yet reaped) has exited: a zombie, or gone.
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) == Some("Z"),
        Err(_) => true,
    }
}
