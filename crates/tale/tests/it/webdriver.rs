//! Owns the end-to-end tests' W3C WebDriver client: it starts `chromedriver` with Debian's
//! headless Chromium and speaks the protocol over reqwest.
//!
//! Errors are `String`s that start with the WebDriver error code (`no such element: …`), so a failed
//! step in a test reads like the driver's own report. Nothing here is downloaded: the browser and the
//! driver are the Debian packages that `scripts/test.sh` installs.

use reqwest::{Client, Method};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::process::{Child, Command};

/// W3C's key for element references in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const POLL: Duration = Duration::from_millis(50);
const FIND_TIMEOUT: Duration = Duration::from_secs(5);

/// A headless Chromium session behind its own `chromedriver`.
pub struct Browser {
    http: Client,
    port: u16,
    session_id: String,
    profile: PathBuf,
    /// Set once the session is deleted, so that Drop does not ask again.
    closed: bool,
    // Declared last: Drop's body deletes the session before the driver is killed with the fields.
    _driver: Child,
}

/// An element of the current page; it lives as long as the browser that found it.
#[derive(Clone)]
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| format!("no free port: {e}"))?.port())
}

/// A profile directory no earlier run has touched: Chromium refuses a profile that another live
/// instance locks, and a reused one carries state between tests.
fn fresh_profile() -> Result<PathBuf, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Integration tests get a target-local temp dir on disk; /tmp here is RAM (MACHINE-NOTES.md).
    let root = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = root.join(format!("chromium-profile-{}-{n}-{nanos:08x}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// One WebDriver command; a protocol error becomes `"{code}: {message} ({what})"` so callers can
/// match the code and a failed test shows what the driver said about which command.
async fn request(http: &Client, method: Method, url: &str, what: &str, body: Option<Value>) -> Result<Value, String> {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| format!("{what}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("{what}: {e}"))?;
    let mut v: Value = serde_json::from_str(&text).map_err(|_| format!("{what}: HTTP {status}: {text}"))?;
    if let Some(code) = v["value"]["error"].as_str() {
        // chromedriver repeats the code in the message and appends a "(Session info: …)" line.
        let message = v["value"]["message"].as_str().unwrap_or_default();
        let message = message.strip_prefix(code).map_or(message, |m| m.trim_start_matches(':')).trim();
        let message = message.lines().next().unwrap_or_default();
        return Err(format!("{code}: {message} ({what})"));
    }
    Ok(v.get_mut("value").map(Value::take).unwrap_or(Value::Null))
}

fn as_string(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// A CSS string literal, for attribute selectors built from test data.
#[allow(dead_code, reason = "the client offers more than today's tests call")]
fn css_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[allow(dead_code, reason = "the client offers more than today's tests call")]
impl Browser {
    pub async fn launch() -> Result<Browser, String> {
        let port = free_port()?;
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start chromedriver (is chromium-driver installed?): {e}"))?;
        // A proxy from the environment must never see loopback traffic; the timeout turns a hung
        // driver into a failed test instead of a stuck one.
        let http = Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(v) = request(&http, Method::GET, &format!("{base}/status"), "GET /status", None).await
                && v["ready"].as_bool() == Some(true)
            {
                break;
            }
            if let Ok(Some(status)) = driver.try_wait() {
                return Err(format!("chromedriver exited at start: {status}"));
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err("chromedriver did not become ready within 10 s".into());
            }
            tokio::time::sleep(POLL).await;
        }
        let profile = fresh_profile()?;
        // The flags this machine needs (shared/MACHINE-NOTES.md): no sandbox as root, no background
        // networking towards a closed network, a fresh profile.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        // The UI asks window.confirm() before destructive actions; "accept" answers yes the way a
        // user would. accept_alert/dismiss_alert still answer explicitly when called first.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            "unhandledPromptBehavior": "accept"
        }}});
        let created = request(&http, Method::POST, &format!("{base}/session"), "POST /session", Some(caps)).await;
        let session_id = match created.map(|v| v["sessionId"].as_str().map(str::to_owned).ok_or(format!("no sessionId in {v}"))) {
            Ok(Ok(id)) => id,
            Ok(Err(e)) | Err(e) => {
                let _ = std::fs::remove_dir_all(&profile);
                return Err(format!("cannot start Chromium: {e}"));
            }
        };
        Ok(Browser { http, port, session_id, profile, closed: false, _driver: driver })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("http://127.0.0.1:{}/session/{}{path}", self.port, self.session_id);
        let what = format!("{method} {}", if path.is_empty() { "/session" } else { path });
        request(&self.http, method, &url, &what, body).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.call(Method::GET, path, None).await
    }

    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.post("/url", json!({"url": url})).await.map(|_| ())
    }

    pub async fn current_url(&self) -> Result<String, String> {
        Ok(as_string(&self.get("/url").await?))
    }

    fn element(&self, v: &Value) -> Option<Element<'_>> {
        v[ELEMENT_KEY].as_str().map(|id| Element { browser: self, id: id.to_owned() })
    }

    async fn find_now(&self, css: &str) -> Result<Option<Element<'_>>, String> {
        match self.post("/element", json!({"using": "css selector", "value": css})).await {
            Ok(v) => Ok(self.element(&v)),
            Err(e) if e.starts_with("no such element") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits up to 5 s for an element matching `css` to exist, since pages render after load.
    pub async fn find(&self, css: &str) -> Result<Element<'_>, String> {
        let started = Instant::now();
        loop {
            if let Some(e) = self.find_now(css).await? {
                return Ok(e);
            }
            if started.elapsed() > FIND_TIMEOUT {
                return Err(format!("no such element: nothing matched {css} within {FIND_TIMEOUT:?}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every element matching `css` now, without waiting (an empty list is a valid answer).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element<'_>>, String> {
        let v = self.post("/elements", json!({"using": "css selector", "value": css})).await?;
        Ok(v.as_array().map(|a| a.iter().filter_map(|e| self.element(e)).collect()).unwrap_or_default())
    }

    /// Waits until an element matching `css` contains `needle` in its visible text.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        let mut last = None;
        loop {
            if let Some(e) = self.find_now(css).await? {
                // The element can be replaced between finding and reading (live regions): retry.
                if let Ok(t) = e.text().await {
                    if t.contains(needle) {
                        return Ok(());
                    }
                    last = Some(t);
                }
            }
            if started.elapsed() > timeout {
                let seen = last.map_or("no element matched".to_owned(), |t| format!("last text: {t:?}"));
                return Err(format!("timeout: {css} never contained {needle:?} within {timeout:?}; {seen}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until no element matches `css` (a spinner, a dialog, a removed row).
    pub async fn wait_until_gone(&self, css: &str, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        while self.find_now(css).await?.is_some() {
            if started.elapsed() > timeout {
                return Err(format!("timeout: {css} still present after {timeout:?}"));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// Runs a synchronous script; its body may `return` a value and reads `arguments[i]`.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.post("/execute/sync", json!({"script": script, "args": args})).await
    }

    /// Opens a tab and returns its handle; the session stays on the current one until `switch_to`.
    pub async fn new_window(&self) -> Result<String, String> {
        let v = self.post("/window/new", json!({"type": "tab"})).await?;
        v["handle"].as_str().map(str::to_owned).ok_or_else(|| format!("no handle in {v}"))
    }

    /// The handle of the tab the session is on.
    pub async fn window_handle(&self) -> Result<String, String> {
        Ok(as_string(&self.get("/window").await?))
    }

    pub async fn switch_to(&self, handle: &str) -> Result<(), String> {
        self.post("/window", json!({"handle": handle})).await.map(|_| ())
    }

    pub async fn window_handles(&self) -> Result<Vec<String>, String> {
        let v = self.get("/window/handles").await?;
        Ok(v.as_array().map(|a| a.iter().map(as_string).collect()).unwrap_or_default())
    }

    /// SEVERE entries of the browser console since the last call (chromedriver drains its buffer).
    /// The log endpoint is a chromedriver extension, so a driver without it yields no entries.
    pub async fn console_errors(&self) -> Result<Vec<String>, String> {
        let entries = match self.post("/se/log", json!({"type": "browser"})).await {
            Ok(v) => v,
            Err(e) if e.starts_with("unknown command") || e.starts_with("unknown method") || e.contains(": HTTP 404") => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        Ok(entries
            .as_array()
            .map(|a| a.iter().filter(|e| e["level"] == "SEVERE").map(|e| as_string(&e["message"])).collect())
            .unwrap_or_default())
    }

    /// The message of the open alert/confirm/prompt; `None` when none is open.
    pub async fn alert_text(&self) -> Result<Option<String>, String> {
        match self.get("/alert/text").await {
            Ok(v) => Ok(Some(as_string(&v))),
            Err(e) if e.starts_with("no such alert") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Accepts an open alert/confirm/prompt; `Ok(false)` when none is open.
    pub async fn accept_alert(&self) -> Result<bool, String> {
        self.answer_alert("/alert/accept").await
    }

    /// Dismisses an open alert/confirm/prompt; `Ok(false)` when none is open.
    pub async fn dismiss_alert(&self) -> Result<bool, String> {
        self.answer_alert("/alert/dismiss").await
    }

    async fn answer_alert(&self, path: &str) -> Result<bool, String> {
        match self.post(path, json!({})).await {
            Ok(_) => Ok(true),
            Err(e) if e.starts_with("no such alert") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Ends the session and closes Chromium, reporting a failure that Drop would swallow.
    pub async fn quit(mut self) -> Result<(), String> {
        self.call(Method::DELETE, "", None).await?;
        self.closed = true;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Killing chromedriver leaves its Chromium running (seen here: orphans of failed tests kept
        // their profiles busy for hours), so a test that panicked before quit() still deletes the
        // session. Drop cannot await, hence a blocking request with short timeouts.
        if !self.closed {
            delete_session_blocking(self.port, &self.session_id);
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn delete_session_blocking(port: u16, session_id: &str) {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return };
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!("DELETE /session/{session_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return;
    }
    // The reply comes once Chromium has exited, so reading it is how we wait for that. chromedriver
    // keeps the connection open whatever we ask, so stop at the end of the body, not at EOF.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut chunk) {
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return;
            }
        }
    }
}

#[allow(dead_code, reason = "the client offers more than today's tests call")]
impl Element<'_> {
    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    /// This element as an `execute` argument (`arguments[i]` in the script).
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    pub async fn click(&self) -> Result<(), String> {
        self.browser.post(&self.path("/click"), json!({})).await.map(|_| ())
    }

    pub async fn send_keys(&self, text: &str) -> Result<(), String> {
        self.browser.post(&self.path("/value"), json!({"text": text})).await.map(|_| ())
    }

    pub async fn clear(&self) -> Result<(), String> {
        self.browser.post(&self.path("/clear"), json!({})).await.map(|_| ())
    }

    /// The rendered text, as a user sees it (hidden parts excluded).
    pub async fn text(&self) -> Result<String, String> {
        Ok(as_string(&self.browser.get(&self.path("/text")).await?))
    }

    /// Whether a user can see the element (chromedriver's visibility check: `hidden`, `display`,
    /// `visibility`, zero size and hidden ancestors all count).
    pub async fn displayed(&self) -> Result<bool, String> {
        let v = self.browser.get(&self.path("/displayed")).await?;
        v.as_bool().ok_or_else(|| format!("not a boolean: {v} (GET /displayed)"))
    }

    /// The HTML attribute as written in the markup; `None` when absent.
    pub async fn attr(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.browser.get(&self.path(&format!("/attribute/{name}"))).await?.as_str().map(str::to_owned))
    }

    /// The live DOM property (e.g. `value`, `checked`), which differs from the attribute after input.
    pub async fn property(&self, name: &str) -> Result<Value, String> {
        self.browser.get(&self.path(&format!("/property/{name}"))).await
    }

    /// Chooses the option with this value in a `<select>`. Clicking the option (rather than setting
    /// `value` from JS) makes the driver fire `input` and `change` and respect disabled options.
    pub async fn select_by_value(&self, value: &str) -> Result<(), String> {
        let css = format!("option[value={}]", css_string(value));
        let found = self.browser.post(&self.path("/element"), json!({"using": "css selector", "value": css})).await;
        let option = match found.map(|v| self.browser.element(&v)) {
            Ok(Some(o)) => o,
            Ok(None) => return Err(format!("no such element: no option with value {value:?} in this <select>")),
            Err(e) if e.starts_with("no such element") => {
                return Err(format!("no such element: no option with value {value:?} in this <select>"));
            }
            Err(e) => return Err(e),
        };
        option.click().await?;
        // A click on a disabled option succeeds without selecting anything; say so.
        if option.property("selected").await? != json!(true) {
            return Err(format!("option {value:?} was not selected (disabled?)"));
        }
        Ok(())
    }
}
