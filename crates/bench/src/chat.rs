//! The browser's side of a chat, through the public API only: a data dir with a provider and an agent, one signed-in session, threads, questions, and WebSocket subscriptions whose deltas are timed against the upstream's stamps.

use crate::server::Tale;
use crate::upstream::{now_ns, Stamp};
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The agent the bench chats with; its own slug so the seeded examples cannot collide with it.
pub const AGENT: &str = "bench";

/// A data dir with the Owner account, provider `bench` (model `llm`) at `base_url` and agent
/// `bench`, written before the first start as an operator would. No tools: the figures are about
/// streaming text, and tool definitions would only lengthen every prompt.
pub async fn prepare_dir(tale: &Tale, dir: &Path, base_url: &str, email: &str, password: &str) -> Result<()> {
    let d = dir.to_string_lossy().into_owned();
    tale.admin(&["create-user", "--data-dir", &d, "--email", email, "--password", password, "--role", "owner"]).await?;
    let providers = dir.join("config/providers");
    let agents = dir.join("config/agents");
    for p in [&providers, &agents] {
        std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
    }
    let provider = json!({"displayName": "Bench upstream", "baseUrl": base_url, "models": [{"id": "llm", "displayName": "LLM", "tags": ["chat"]}]});
    std::fs::write(providers.join("bench.json"), provider.to_string())?;
    let secrets = providers.join("bench.secrets.json");
    std::fs::write(&secrets, json!({"apiKey": "sk-bench"}).to_string())?;
    // Plaintext secrets are refused unless only the owner can read them.
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600))?;
    let agent = json!({"supportedModels": ["bench:llm"], "displayName": "Bench", "systemInstructions": "You help.", "visibleInChat": true});
    std::fs::write(agents.join(format!("{AGENT}.json")), agent.to_string())?;
    Ok(())
}

/// One signed-in browser. Sign-in is limited to 30 per minute per address, so every thread and
/// socket of a phase shares this one session, as one user's many tabs would.
pub struct Session {
    base: String,
    cookie: String,
    csrf: String,
    http: reqwest::Client,
}

impl Session {
    pub async fn sign_in(base: &str, email: &str, password: &str) -> Result<Session> {
        let http = reqwest::Client::builder().build()?;
        let r = http.post(format!("{base}/api/auth/sign-in")).json(&json!({"email": email, "password": password})).send().await.context("sign-in")?;
        if r.status() != 200 {
            bail!("sign-in answered {}: {}", r.status(), r.text().await.unwrap_or_default());
        }
        let cookie = r
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .find(|kv| kv.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
            .ok_or_else(|| anyhow!("sign-in set no session cookie"))?;
        let body: Value = r.json().await?;
        let csrf = body["csrfToken"].as_str().ok_or_else(|| anyhow!("sign-in gave no csrfToken: {body}"))?.to_owned();
        Ok(Session { base: base.to_owned(), cookie, csrf, http })
    }

    /// A cookie-authenticated POST, as the chat page makes it; the status and JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn new_thread(&self) -> Result<String> {
        let (status, body) = self.post("/api/orgs/default/threads", json!({"agent": AGENT})).await?;
        if status != 201 {
            bail!("creating a thread answered {status}: {body}");
        }
        body["thread"]["id"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no thread id in {body}"))
    }

    /// Sends a question; the status (201 when the answer started) and body.
    pub async fn ask(&self, thread: &str, content: &str) -> Result<(u16, Value)> {
        self.post(&format!("/api/orgs/default/threads/{thread}/messages"), json!({"content": content})).await
    }

    /// A socket with the session cookie and no Origin, like a same-origin page's.
    pub async fn socket(&self) -> Result<Socket> {
        let url = format!("{}/api/ws", self.base.replacen("http://", "ws://", 1));
        let mut req = url.as_str().into_client_request()?;
        req.headers_mut().insert("cookie", self.cookie.parse()?);
        // tungstenite zero-fills its whole read buffer (128 KiB by default) before every read; a
        // browser pays nothing like it, and the bench shares the CPUs with the server.
        let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true).await.with_context(|| format!("WebSocket {url}"))?;
        Ok(ws)
    }
}

/// The next text frame and when it arrived, by `deadline`.
async fn next_text(ws: &mut Socket, deadline: Instant) -> Result<(u64, Utf8Bytes)> {
    loop {
        let msg = tokio::time::timeout_at(deadline.into(), ws.next()).await.map_err(|_| anyhow!("timed out waiting for a WebSocket message"))?;
        let arrived = now_ns();
        match msg {
            Some(Ok(Message::Text(t))) => return Ok((arrived, t)),
            Some(Ok(Message::Close(c))) => bail!("the server closed the WebSocket: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("WebSocket error: {e}"),
            None => bail!("the WebSocket ended"),
        }
    }
}

fn thread_message(kind: &str, thread: &str) -> Message {
    Message::Text(json!({"type": kind, "org": "default", "topic": "thread", "id": thread}).to_string().into())
}

/// Subscribes and waits for the thread's first snapshot (events of a thread left earlier may
/// still be in flight and are skipped).
pub async fn subscribe(ws: &mut Socket, thread: &str) -> Result<()> {
    ws.send(thread_message("subscribe", thread)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = next_text(ws, deadline).await?;
        if text.starts_with(r#"{"type":"delta""#) {
            continue;
        }
        let v: Value = serde_json::from_str(&text)?;
        match v["type"].as_str() {
            Some("snapshot") if v["id"] == thread => return Ok(()),
            Some("error") => bail!("subscribing to {thread} failed: {v}"),
            _ => {}
        }
    }
}

pub async fn unsubscribe(ws: &mut Socket, thread: &str) -> Result<()> {
    Ok(ws.send(thread_message("unsubscribe", thread)).await?)
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    thread: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// One answer as a tab saw it.
#[derive(Debug, Default)]
pub struct Followed {
    /// Upstream write → WebSocket arrival of every delta, in ms.
    pub delays_ms: Vec<f64>,
    /// Arrival and stamp of the first delta.
    pub first: Option<(u64, Stamp)>,
    pub last_arrival_ns: u64,
    pub deltas: u32,
    /// Deltas skipped in `seq`, repeated, or whose stamp does not match their place.
    pub gaps: u64,
    pub duplicates: u64,
    pub misnumbered: u64,
    /// Snapshots that moved the answer forward: the server found the tab too far behind and
    /// resent the answer so far instead of the deltas it had missed.
    pub resyncs: u64,
    /// Arrival of the `turn` event that announces the answer (question and empty answer).
    pub turn_ns: Option<u64>,
    /// The final message's status, and whether its content is exactly the deltas received.
    pub status: Option<String>,
    pub content_matches: bool,
    /// Why following stopped early: timeout, socket error, an `error` event.
    pub failure: Option<String>,
}

impl Followed {
    /// Every way this answer fell short of `expected` clean deltas ending in `complete`.
    pub fn problems(&self, expected: u32) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(f) = &self.failure {
            out.push(f.clone());
        }
        // A snapshot that moves the answer forward is normal (the one after a new turn may
        // already hold a few deltas); it is a fault only when deltas then never arrived.
        if self.deltas < expected {
            out.push(format!("{} of {expected} deltas missing ({} resyncs by snapshot)", expected - self.deltas, self.resyncs));
        }
        for (n, what) in [(self.gaps, "seq gaps"), (self.duplicates, "repeated deltas"), (self.misnumbered, "misnumbered deltas")] {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        }
        match self.status.as_deref() {
            Some("complete") if !self.content_matches => out.push("final content differs from the deltas".into()),
            Some("complete") => {}
            Some(s) => out.push(format!("final status {s}")),
            None if self.failure.is_none() => out.push("no final message".into()),
            None => {}
        }
        out
    }
}

/// Reads the thread's events until its final `message` (or `limit` passes), timing each delta.
/// `mark(n)` runs right after the n-th delta arrives, for probes that must be taken on the spot.
pub async fn follow(ws: &mut Socket, thread: &str, expected: u32, limit: Duration, mut mark: impl FnMut(u32)) -> Followed {
    let mut f = Followed::default();
    let deadline = Instant::now() + limit;
    let (mut seq, mut text, mut message) = (0u64, String::with_capacity(expected as usize * 24), None::<String>);
    loop {
        let (arrived, frame) = match next_text(ws, deadline).await {
            Ok(x) => x,
            Err(e) => {
                f.failure = Some(format!("{e:#}"));
                return f;
            }
        };
        // Deltas are the hot path: parsed into borrowed fields, nothing else allocated.
        if frame.starts_with(r#"{"type":"delta""#) {
            let Ok(d) = serde_json::from_str::<Delta>(&frame) else {
                f.misnumbered += 1;
                continue;
            };
            if d.thread != thread {
                continue;
            }
            f.deltas += 1;
            mark(f.deltas);
            // Applied as chat.js applies them: each seq once, in order, after any snapshot.
            match d.seq {
                // Already in a snapshot the tab applied: expected after a resync, a fault otherwise.
                n if n <= seq => f.duplicates += u64::from(f.resyncs == 0),
                n => {
                    f.gaps += n - seq - 1;
                    seq = n;
                    text.push_str(&d.text);
                }
            }
            message.get_or_insert_with(|| d.message.clone().into_owned());
            match Stamp::parse(&d.text) {
                Some(s) => {
                    f.delays_ms.push(arrived.saturating_sub(s.written_ns) as f64 / 1e6);
                    if u64::from(s.index) + 1 != d.seq {
                        f.misnumbered += 1;
                    }
                    f.first.get_or_insert((arrived, s));
                }
                None => f.misnumbered += 1,
            }
            f.last_arrival_ns = arrived;
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&frame) else { continue };
        match v["type"].as_str() {
            Some("turn") if v["thread"] == thread => {
                f.turn_ns.get_or_insert(arrived);
                message.get_or_insert_with(|| v["answer"]["id"].as_str().unwrap_or_default().to_owned());
            }
            Some("snapshot") if v["id"] == thread => {
                let messages = v["data"]["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
                let ours = messages.iter().find(|m| match &message {
                    Some(id) => m["id"] == id.as_str(),
                    None => m["status"] == "streaming",
                });
                if let Some(m) = ours.filter(|m| m["seq"].as_u64().is_some_and(|n| n > seq)) {
                    f.resyncs += 1;
                    seq = m["seq"].as_u64().unwrap_or(seq);
                    text = m["content"].as_str().unwrap_or_default().to_owned();
                    message.get_or_insert_with(|| m["id"].as_str().unwrap_or_default().to_owned());
                }
            }
            Some("message") if v["thread"] == thread && v["final"] == true => {
                let m = &v["message"];
                if message.as_deref().is_some_and(|id| m["id"] != id) {
                    continue;
                }
                f.status = m["status"].as_str().map(str::to_owned);
                f.content_matches = m["content"].as_str() == Some(text.as_str());
                return f;
            }
            Some("error") if v["id"] == thread => {
                f.failure = Some(format!("error event: {}", v["error"]));
                return f;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_every_shortfall() {
        let clean = Followed { deltas: 3, status: Some("complete".into()), content_matches: true, ..Default::default() };
        assert!(clean.problems(3).is_empty());
        let bad = Followed { deltas: 1, gaps: 2, status: Some("failed".into()), ..Default::default() };
        assert_eq!(bad.problems(3), vec!["2 of 3 deltas missing (0 resyncs by snapshot)", "2 seq gaps", "final status failed"]);
        assert_eq!(Followed::default().problems(1), vec!["1 of 1 deltas missing (0 resyncs by snapshot)", "no final message"]);
        let resynced = Followed { deltas: 3, resyncs: 1, status: Some("complete".into()), content_matches: true, ..Default::default() };
        assert!(resynced.problems(3).is_empty(), "a snapshot that moves the answer on is normal");
    }
}
