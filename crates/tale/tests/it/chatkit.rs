//! Chat test helpers: a local provider backed by the scripted upstream, an agent that uses it,
//! WebSocket clients subscribed to a thread, and waiting for an answer to finish.

use crate::harness::{TestServer, User};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tale_testkit::ScriptedProvider;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub const UPSTREAM_KEY: &str = "sk-local-upstream-key";

pub fn config_dir(ts: &TestServer) -> PathBuf {
    ts.data_dir().join("config")
}

/// Writes `providers/local.json` (models `llm` with vision and a cost table, `backup`, and
/// `tiny` with a small context window) and its secrets file.
pub fn write_provider(ts: &TestServer, upstream: &ScriptedProvider) {
    write_provider_in(&config_dir(ts), upstream);
}

pub fn write_provider_in(config_dir: &std::path::Path, upstream: &ScriptedProvider) {
    let dir = config_dir.join("providers");
    std::fs::create_dir_all(&dir).unwrap();
    let provider = json!({
        "displayName": "Local",
        "baseUrl": upstream.base_url,
        "models": [
            {"id": "llm", "displayName": "LLM", "tags": ["chat", "vision"], "cost": {"inputCentsPerMillion": 100000, "outputCentsPerMillion": 200000}},
            {"id": "backup", "displayName": "Backup", "tags": ["chat"]},
            {"id": "tiny", "displayName": "Tiny", "tags": ["chat"], "contextWindow": 600}
        ]
    });
    std::fs::write(dir.join("local.json"), serde_json::to_string_pretty(&provider).unwrap()).unwrap();
    let secrets = dir.join("local.secrets.json");
    std::fs::write(&secrets, json!({"apiKey": UPSTREAM_KEY}).to_string()).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Writes `agents/<slug>.json` from a base agent with `fields` on top.
pub fn write_agent(ts: &TestServer, slug: &str, fields: Value) {
    write_agent_in(&config_dir(ts), slug, fields);
    ts.server.as_ref().unwrap().state.catalog.invalidate("default");
}

pub fn write_agent_in(config_dir: &std::path::Path, slug: &str, fields: Value) {
    let mut agent = json!({
        "supportedModels": ["local:llm"],
        "displayName": "Helper",
        "systemInstructions": "You help. Answer in {{user.language}}.",
        "visibleInChat": true,
        "toolNames": ["update_todos", "text", "artifact_create", "artifact_edit", "request_human_input", "rag_search", "document_write"]
    });
    for (k, v) in fields.as_object().unwrap() {
        agent[k] = v.clone();
    }
    let dir = config_dir.join("agents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{slug}.json")), agent.to_string()).unwrap();
}

/// A scripted upstream, the local provider, and the `helper` agent.
pub async fn setup(ts: &TestServer) -> ScriptedProvider {
    let upstream = ScriptedProvider::start().await;
    write_provider(ts, &upstream);
    write_agent(ts, "helper", json!({}));
    upstream
}

/// Starts a thread with `helper` and a first question; returns (thread id, answer id).
pub async fn start(user: &User, question: &str) -> (String, String) {
    let (s, body) = user.json(Method::POST, "/api/orgs/default/threads", Some(json!({"agent": "helper", "message": question}))).await;
    assert_eq!(s, 201, "{body}");
    (body["thread"]["id"].as_str().unwrap().to_owned(), body["answer"]["id"].as_str().unwrap().to_owned())
}

/// Waits until the message is no longer streaming and returns it.
pub async fn finished(user: &User, thread: &str, message: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, view) = user.json(Method::GET, &format!("/api/orgs/default/threads/{thread}"), None).await;
        assert_eq!(s, 200, "{view}");
        let found = view["messages"].as_array().unwrap().iter().find(|m| m["id"] == message).cloned();
        if let Some(m) = found.filter(|m| m["status"] != "streaming")
            && !view["live"].as_bool().unwrap()
        {
            return m;
        }
        assert!(Instant::now() < deadline, "answer {message} did not finish: {view}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

pub async fn connect(ts: &TestServer, user: &User) -> Socket {
    let mut req = format!("{}/api/ws", ts.base.replace("http://", "ws://")).into_client_request().unwrap();
    req.headers_mut().insert("cookie", user.cookie.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.map(|(s, _)| s).unwrap()
}

pub async fn subscribe(ws: &mut Socket, thread: &str) {
    ws.send(Message::Text(json!({"type": "subscribe", "org": "default", "topic": "thread", "id": thread}).to_string().into())).await.unwrap();
}

pub async fn next(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no message within 10 s").unwrap().unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Reads events until `until` says stop; returns them all.
pub async fn read_until(ws: &mut Socket, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let e = next(ws).await;
        let done = until(&e);
        out.push(e);
        if done {
            return out;
        }
    }
}

/// What a tab shows after applying events the way `chat.js` does: the snapshot's content, then
/// each delta whose `seq` follows the last one applied. Panics on a gap.
pub fn apply(events: &[Value], message: &str) -> (String, u64) {
    let mut text = String::new();
    let mut seq = 0;
    for e in events {
        match e["type"].as_str() {
            Some("snapshot") => {
                if let Some(m) = e["data"]["messages"].as_array().unwrap().iter().find(|m| m["id"] == message) {
                    text = m["content"].as_str().unwrap().to_owned();
                    seq = m["seq"].as_u64().unwrap();
                }
            }
            Some("turn") if e["answer"]["id"] == message => {
                text = e["answer"]["content"].as_str().unwrap().to_owned();
                seq = e["answer"]["seq"].as_u64().unwrap();
            }
            Some("delta") if e["message"] == message => {
                let n = e["seq"].as_u64().unwrap();
                if n <= seq {
                    continue;
                }
                assert_eq!(n, seq + 1, "a delta was skipped");
                seq = n;
                text.push_str(e["text"].as_str().unwrap());
            }
            Some("part") if e["message"] == message => {
                let n = e["seq"].as_u64().unwrap();
                if n > seq {
                    assert_eq!(n, seq + 1, "an event was skipped");
                    seq = n;
                }
            }
            _ => {}
        }
    }
    (text, seq)
}
