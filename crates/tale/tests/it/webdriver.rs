//! A minimal W3C WebDriver client over HTTP, enough to drive Debian's headless Chromium through
//! `chromedriver` in end-to-end tests. No browser download, no extra dependency beyond reqwest.

use reqwest::Client;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// W3C's key for element references in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: Client,
    session: String,
    _driver: Child,
    profile: std::path::PathBuf,
}

#[derive(Clone)]
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

impl Browser {
    pub async fn launch() -> Result<Browser, String> {
        let port = free_port()?;
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start chromedriver: {e}"))?;
        let http = Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["value"]["ready"].as_bool()).unwrap_or(false),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err("chromedriver did not become ready within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = crate::harness::test_tmp().join(format!("chromium-profile-{port}"));
        std::fs::create_dir_all(&profile).map_err(|e| e.to_string())?;
        // The flags this machine needs (shared/MACHINE-NOTES.md): no sandbox as root, no
        // background networking towards a closed network, a fresh profile.
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            "unhandledPromptBehavior": "accept"
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let session = r["value"]["sessionId"].as_str().ok_or_else(|| format!("no session: {r}"))?;
        Ok(Browser { http, session: format!("{base}/session/{session}"), _driver: driver, profile })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.map_err(|e| e.to_string())?;
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        if let Some(err) = v["value"]["error"].as_str() {
            return Err(format!("{err}: {}", v["value"]["message"].as_str().unwrap_or("")));
        }
        Ok(v["value"].clone())
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.post("/url", json!({"url": url})).await.map(|_| ())
    }

    pub async fn current_url(&self) -> Result<String, String> {
        Ok(self.get("/url").await?.as_str().unwrap_or_default().to_owned())
    }

    async fn find_now(&self, css: &str) -> Result<Option<Element<'_>>, String> {
        match self.post("/element", json!({"using": "css selector", "value": css})).await {
            Ok(v) => Ok(v[ELEMENT_KEY].as_str().map(|id| Element { browser: self, id: id.to_owned() })),
            Err(e) if e.starts_with("no such element") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits up to 5 s for an element matching `css`.
    pub async fn find(&self, css: &str) -> Result<Element<'_>, String> {
        let started = Instant::now();
        loop {
            if let Some(e) = self.find_now(css).await? {
                return Ok(e);
            }
            if started.elapsed() > Duration::from_secs(5) {
                return Err(format!("no element matches {css}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until an element matching `css` contains `needle` in its visible text.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            if let Some(e) = self.find_now(css).await? {
                // The element can be replaced between finding and reading (live regions).
                if let Ok(t) = e.text().await {
                    if t.contains(needle) {
                        return Ok(());
                    }
                    last = t;
                }
            }
            if started.elapsed() > timeout {
                return Err(format!("{css} never contained {needle:?}; last text: {last:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a synchronous script (its body may `return` a value).
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.post("/execute/sync", json!({"script": script, "args": args})).await
    }

    pub async fn new_window(&self) -> Result<String, String> {
        let v = self.post("/window/new", json!({"type": "tab"})).await?;
        v["handle"].as_str().map(str::to_owned).ok_or_else(|| format!("no handle in {v}"))
    }

    pub async fn switch_to(&self, handle: &str) -> Result<(), String> {
        self.post("/window", json!({"handle": handle})).await.map(|_| ())
    }

    pub async fn window_handles(&self) -> Result<Vec<String>, String> {
        let v = self.get("/window/handles").await?;
        Ok(v.as_array().map(|a| a.iter().filter_map(|h| h.as_str().map(str::to_owned)).collect()).unwrap_or_default())
    }

    /// SEVERE entries of the browser console since the last call.
    pub async fn console_errors(&self) -> Result<Vec<String>, String> {
        let v = self.post("/se/log", json!({"type": "browser"})).await?;
        Ok(v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn quit(self) -> Result<(), String> {
        let r = self.call(reqwest::Method::DELETE, "", None).await.map(|_| ());
        let _ = std::fs::remove_dir_all(&self.profile);
        r
    }
}

impl Element<'_> {
    pub async fn click(&self) -> Result<(), String> {
        self.browser.post(&format!("/element/{}/click", self.id), json!({})).await.map(|_| ())
    }

    pub async fn send_keys(&self, text: &str) -> Result<(), String> {
        self.browser.post(&format!("/element/{}/value", self.id), json!({"text": text})).await.map(|_| ())
    }

    pub async fn clear(&self) -> Result<(), String> {
        self.browser.post(&format!("/element/{}/clear", self.id), json!({})).await.map(|_| ())
    }

    pub async fn text(&self) -> Result<String, String> {
        Ok(self.browser.get(&format!("/element/{}/text", self.id)).await?.as_str().unwrap_or_default().to_owned())
    }
}
