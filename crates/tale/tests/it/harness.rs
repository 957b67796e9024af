//! Boots the real server in-process on 127.0.0.1:0 against a temporary data dir, and gives tests
//! signed-in HTTP clients. Nothing is mocked: real SQLite, real argon2, real HTTP.

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use tale::server::{self, Server};
use tale_core::config::{Config, Secret};
use tale_core::role::Role;

pub const PASSWORD: &str = "Correct-Horse-9";

pub struct TestServer {
    pub base: String,
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn boot() -> TestServer {
        Self::boot_with(|_| {}).await
    }

    pub async fn boot_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir_in(test_tmp()).unwrap();
        let mut config = Config::for_data_dir(dir.path().join("data"));
        // A fixed port lets SITE_URL (used in invitation links) name the real address.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        config.listen = format!("127.0.0.1:{port}").parse().unwrap();
        config.site_url = format!("http://127.0.0.1:{port}");
        config.secret = Some(Secret::new("test-secret-that-is-long-enough"));
        config.log_filter = "warn".into();
        adjust(&mut config);
        let server = server::start(config).await.unwrap();
        let base = format!("http://{}", server.addr);
        TestServer { base, server: Some(server), dir }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn services(&self) -> &tale_core::service::Services {
        &self.server.as_ref().unwrap().state.services
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A browser-like client with its own cookie jar, not signed in.
    pub fn anonymous(&self) -> User {
        User { client: client(), base: self.base.clone(), csrf: None, email: String::new(), id: String::new(), cookie: String::new() }
    }

    pub fn setup_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("setup-token")).unwrap()
    }

    /// Completes first-run setup through the API and returns the signed-in Owner.
    pub async fn owner(&self) -> User {
        let mut u = self.anonymous();
        let r = u
            .post("/api/setup", json!({"token": self.setup_token(), "email": "owner@example.com", "name": "Olive Owner", "password": PASSWORD}))
            .await;
        assert_eq!(r.status(), 200, "setup failed");
        u.cookie = session_cookie(&r);
        let body: Value = r.json().await.unwrap();
        u.csrf = body["csrfToken"].as_str().map(str::to_owned);
        u.email = "owner@example.com".into();
        u.id = body["user"]["id"].as_str().unwrap().to_owned();
        u
    }

    /// Creates an account with `role` in the default org (operator path) and signs it in.
    pub async fn member(&self, email: &str, role: Role) -> User {
        let s = self.services();
        if role == Role::Owner {
            panic!("use owner()");
        }
        s.admin_create_user(email, None, PASSWORD, role, "default").await.unwrap();
        self.sign_in(email, PASSWORD).await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> User {
        let mut u = self.anonymous();
        let r = u.post("/api/auth/sign-in", json!({"email": email, "password": password})).await;
        assert_eq!(r.status(), 200, "sign-in of {email} failed");
        u.cookie = session_cookie(&r);
        let body: Value = r.json().await.unwrap();
        u.csrf = body["csrfToken"].as_str().map(str::to_owned);
        u.email = email.into();
        u.id = body["user"]["id"].as_str().unwrap().to_owned();
        u
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop(Duration::from_secs(5)).await.unwrap();
        }
    }
}

/// Test data goes on disk, not in the RAM-backed /tmp.
pub fn test_tmp() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn client() -> Client {
    Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A client with its identity: cookie jar, CSRF token, e-mail and user id.
#[derive(Clone)]
pub struct User {
    pub client: Client,
    pub base: String,
    pub csrf: Option<String>,
    pub email: String,
    pub id: String,
    /// `tale_session=...`, for clients that are not reqwest (WebSocket).
    pub cookie: String,
}

fn session_cookie(r: &Response) -> String {
    r.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned()
}

impl User {
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.csrf {
            req = req.header("x-csrf-token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }
    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.send(Method::POST, path, Some(body)).await
    }
    pub async fn json(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let r = self.send(method, path, body).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

/// Asserts the error envelope and returns the code.
pub fn error_code(body: &Value) -> &str {
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error body: {body}"));
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {body}");
    code
}
