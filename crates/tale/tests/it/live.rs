//! WebSocket live updates: snapshots on subscribe, changes as they commit (also from another
//! process), permission checks per topic, and state on reconnect.

use crate::harness::{TestServer, User};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tale_core::role::Role;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(ts: &TestServer, user: &User, origin: Option<&str>) -> Result<Socket, String> {
    let mut req = format!("{}/api/ws", ts.base.replace("http://", "ws://")).into_client_request().unwrap();
    req.headers_mut().insert("cookie", user.cookie.parse().unwrap());
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.map(|(s, _)| s).map_err(|e| e.to_string())
}

async fn send(ws: &mut Socket, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn next(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("no message within 5 s").unwrap().unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn subscribers_get_a_snapshot_then_every_change() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let mut ws = connect(&ts, &owner, None).await.unwrap();
    send(&mut ws, json!({"type": "subscribe", "org": "default", "topic": "members"})).await;
    let snap = next(&mut ws).await;
    assert_eq!((snap["type"].as_str(), snap["topic"].as_str()), (Some("snapshot"), Some("members")));
    assert_eq!(snap["data"]["members"].as_array().unwrap().len(), 1);

    owner.post("/api/orgs/default/invitations", json!({"email": "new@example.com", "role": "member"})).await;
    let change = next(&mut ws).await;
    assert_eq!((change["type"].as_str(), change["action"].as_str()), (Some("change"), Some("member_invited")));
    assert_eq!(change["data"]["invitations"][0]["email"], "new@example.com");

    // A change made by another process on the same data dir arrives too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tale"))
        .args(["admin", "create-user", "--email", "cli@example.com", "--password", crate::harness::PASSWORD, "--role", "editor", "--data-dir"])
        .arg(ts.data_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let change = next(&mut ws).await;
    assert_eq!(change["action"], "member_added");
    assert!(change["data"]["members"].as_array().unwrap().iter().any(|m| m["email"] == "cli@example.com"));
}

#[tokio::test]
async fn topics_need_the_same_permission_as_their_routes() {
    let ts = TestServer::boot().await;
    ts.owner().await;
    let editor = ts.member("ed@example.com", Role::Editor).await;
    let mut ws = connect(&ts, &editor, None).await.unwrap();
    for topic in ["members", "audit", "settings", "api_keys"] {
        send(&mut ws, json!({"type": "subscribe", "org": "default", "topic": topic})).await;
        let m = next(&mut ws).await;
        assert_eq!(m["type"], "error", "{topic}: {m}");
        assert_eq!(m["error"]["code"], "insufficient_role");
    }
    send(&mut ws, json!({"type": "subscribe", "org": "default", "topic": "bogus"})).await;
    assert_eq!(next(&mut ws).await["error"]["code"], "invalid_input");
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await["type"], "pong");
}

#[tokio::test]
async fn reconnecting_client_gets_current_state_and_losing_the_role_stops_the_stream() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let admin = ts.member("admin@example.com", Role::Admin).await;
    let mut ws = connect(&ts, &admin, None).await.unwrap();
    send(&mut ws, json!({"type": "subscribe", "org": "default", "topic": "audit"})).await;
    next(&mut ws).await;
    drop(ws);
    // Changes while disconnected...
    owner.post("/api/orgs/default/api-keys", json!({"name": "while-away"})).await;
    let mut ws = connect(&ts, &admin, None).await.unwrap();
    send(&mut ws, json!({"type": "subscribe", "org": "default", "topic": "audit"})).await;
    let snap = next(&mut ws).await;
    assert_eq!(snap["data"]["entries"][0]["action"], "api_key_created", "...are in the new snapshot");

    // Demote the subscriber (another Admin exists: the Owner plus this one is the minimum, so add one).
    ts.member("admin2@example.com", Role::Admin).await;
    ts.services().admin_set_role("admin@example.com", Role::Member, "default").await.unwrap();
    let mut seen = Vec::new();
    let m = loop {
        let m = next(&mut ws).await;
        if m["type"] == "error" {
            break m;
        }
        seen.push(m["action"].clone());
        assert!(seen.len() < 10, "no error after {seen:?}");
    };
    assert_eq!(m["error"]["code"], "insufficient_role", "{m}");
}

#[tokio::test]
async fn cross_origin_handshake_is_refused() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let err = connect(&ts, &owner, Some("https://evil.example")).await.err().unwrap();
    assert!(err.contains("403"), "{err}");
    assert!(connect(&ts, &owner, Some(&ts.base)).await.is_ok());
}
