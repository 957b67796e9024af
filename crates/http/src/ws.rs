//! Live updates over one WebSocket per tab.
//!
//! The client subscribes to `(org, topic)` pairs; each subscription is checked against the same
//! permission the matching read route needs, answered at once with a `snapshot` of current state,
//! and followed by a `change` message (with fresh data) after every commit that touches it. A
//! client that reconnects simply subscribes again and gets current state. Credentials and
//! permissions are re-checked before every delivery, so signing out or losing a role stops the
//! stream.

use crate::auth::{principal, same_origin};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use tale_core::audit::AuditFilter;
use tale_core::feed::Topic;
use tale_core::permission::Grant;
use tale_core::service::Principal;
use tale_core::Error;
use crate::ws_thread::ThreadWatch;
use std::collections::HashMap;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{StreamExt, StreamMap};

/// Read buffer per socket (see `upgrade`).
const READ_BUFFER: usize = 4096;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Subscribe { org: String, topic: String, id: Option<String> },
    Unsubscribe { org: String, topic: String, id: Option<String> },
    Ping,
}

struct Subscription {
    org_slug: String,
    org_id: String,
    topic: Topic,
}

pub async fn upgrade(State(state): State<AppState>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    // Browsers send cookies on cross-site WebSocket handshakes: refuse other origins.
    if !same_origin(&state, &headers) {
        return ApiError::Domain(Error::CsrfRejected).into_response();
    }
    // Tabs send a few small frames; the library's default 128 KiB read buffer would be zeroed
    // per read and held per socket, which dominates memory with hundreds of open chats.
    upgrade.read_buffer_size(READ_BUFFER).on_upgrade(move |socket| session(state, headers, socket))
}

async fn send(socket: &mut WebSocket, value: Value) -> bool {
    socket.send(Message::Text(value.to_string().into())).await.is_ok()
}

fn error_message(org: &str, topic: &str, e: &Error) -> Value {
    let (status, code, message) = crate::error::domain_parts(e);
    json!({"type": "error", "org": org, "topic": topic, "error": {"code": code, "message": message, "status": status.as_u16()}})
}

/// Current state of a topic, as the matching read route would return it.
async fn snapshot(state: &AppState, principal: &Principal, grant: &Grant, topic: Topic) -> Result<Value, Error> {
    let s = &state.services;
    Ok(match topic {
        Topic::Members => json!({"members": s.members(grant).await?, "invitations": s.invitations(grant).await?}),
        Topic::Audit => json!({"entries": s.audit_entries(grant, &AuditFilter { limit: 50, ..Default::default() }).await?}),
        Topic::ApiKeys => json!({"apiKeys": s.api_keys(principal, grant).await?}),
        Topic::Settings => serde_json::to_value(s.settings(grant).await?).map_err(|e| Error::Internal(e.to_string()))?,
        Topic::Knowledge => crate::api::knowledge::status(state, &grant.org_id).await?,
    })
}

async fn authorize(state: &AppState, headers: &HeaderMap, org_slug: &str, topic: Topic) -> Result<(Principal, Grant), Error> {
    let p = principal(state, headers).await?.ok_or(Error::Unauthenticated)?;
    let grant = state.services.grant(&p, org_slug, topic.permission()).await?;
    Ok((p, grant))
}

/// Sends the topic's state; on a lost permission tells the client and reports `false`.
async fn deliver(state: &AppState, headers: &HeaderMap, socket: &mut WebSocket, sub: &Subscription, kind: &str, action: Option<&str>) -> Result<bool, ()> {
    let topic = sub.topic.as_str();
    let outcome = match authorize(state, headers, &sub.org_slug, sub.topic).await {
        Ok((p, g)) => snapshot(state, &p, &g, sub.topic).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(data) => {
            let msg = json!({"type": kind, "org": sub.org_slug, "topic": topic, "action": action, "data": data});
            if send(socket, msg).await { Ok(true) } else { Err(()) }
        }
        Err(e) => {
            if send(socket, error_message(&sub.org_slug, topic, &e)).await { Ok(false) } else { Err(()) }
        }
    }
}

async fn session(state: AppState, headers: HeaderMap, mut socket: WebSocket) {
    state.metrics.websocket_clients.inc();
    let mut changes = state.services.feed.subscribe();
    let mut subs: Vec<Subscription> = Vec::new();
    let mut closing = state.closing();
    // Thread subscriptions: their broadcasts are received right here, by id.
    let mut threads: StreamMap<String, BroadcastStream<tale_chat::live::Event>> = StreamMap::new();
    let mut watches: HashMap<String, ThreadWatch> = HashMap::new();
    loop {
        tokio::select! {
            _ = closing.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
            Some((id, event)) = threads.next(), if !threads.is_empty() => {
                let Some(watch) = watches.get(&id) else { continue };
                let Some(out) = watch.relay(event).await else { continue };
                if socket.send(Message::Text(out.frame)).await.is_err() { break }
                if out.last {
                    threads.remove(&id);
                    watches.remove(&id);
                }
            }
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { break };
                let text = match message {
                    Message::Text(t) => t,
                    Message::Close(_) => break,
                    _ => continue,
                };
                let parsed: Result<ClientMessage, _> = serde_json::from_str(text.as_str());
                match parsed {
                    Ok(ClientMessage::Ping) => { if !send(&mut socket, json!({"type": "pong"})).await { break } }
                    Ok(ClientMessage::Subscribe { org, topic, id }) if topic == "thread" => {
                        let id = id.unwrap_or_default();
                        threads.remove(&id);
                        watches.remove(&id);
                        match ThreadWatch::open(state.clone(), headers.clone(), org.clone(), id.clone()).await {
                            Ok((watch, events, first)) => {
                                if socket.send(Message::Text(first)).await.is_err() { break }
                                threads.insert(id.clone(), events);
                                watches.insert(id, watch);
                            }
                            Err(e) => {
                                let mut msg = error_message(&org, "thread", &e);
                                msg["id"] = json!(id);
                                if !send(&mut socket, msg).await { break }
                            }
                        }
                    }
                    Ok(ClientMessage::Unsubscribe { topic, id, .. }) if topic == "thread" => {
                        if let Some(id) = id {
                            threads.remove(&id);
                            watches.remove(&id);
                        }
                    }
                    Ok(ClientMessage::Subscribe { org, topic, .. }) => {
                        let Some(t) = Topic::parse(&topic) else {
                            let e = Error::invalid(format!("unknown topic '{topic}'"));
                            if !send(&mut socket, json!({"type": "error", "org": org, "topic": topic, "error": {"code": "invalid_input", "message": e.to_string(), "status": 400}})).await { break }
                            continue;
                        };
                        let org_id = match state.services.org(&org).await { Ok(o) => o.id, Err(_) => String::new() };
                        let sub = Subscription { org_slug: org, org_id, topic: t };
                        match deliver(&state, &headers, &mut socket, &sub, "snapshot", None).await {
                            Ok(true) => {
                                subs.retain(|s| !(s.org_slug == sub.org_slug && s.topic == sub.topic));
                                subs.push(sub);
                            }
                            Ok(false) => {}
                            Err(()) => break,
                        }
                    }
                    Ok(ClientMessage::Unsubscribe { org, topic, .. }) => {
                        subs.retain(|s| !(s.org_slug == org && s.topic.as_str() == topic));
                    }
                    Err(e) => {
                        if !send(&mut socket, json!({"type": "error", "error": {"code": "malformed_json", "message": e.to_string(), "status": 400}})).await { break }
                    }
                }
            }
            change = changes.recv() => {
                let (targets, action): (Vec<usize>, Option<String>) = match change {
                    Ok(change) => (
                        subs.iter().enumerate()
                            .filter(|(_, s)| s.org_id == change.org_id && change.topics.contains(&s.topic))
                            .map(|(i, _)| i).collect(),
                        Some(change.action.clone()),
                    ),
                    // Fell behind: resend everything this client watches.
                    Err(RecvError::Lagged(_)) => ((0..subs.len()).collect(), None),
                    Err(RecvError::Closed) => break,
                };
                let mut lost = Vec::new();
                let mut closed = false;
                for i in targets {
                    match deliver(&state, &headers, &mut socket, &subs[i], "change", action.as_deref()).await {
                        Ok(true) => {}
                        Ok(false) => lost.push(i),
                        Err(()) => { closed = true; break }
                    }
                }
                if closed { break }
                for i in lost.into_iter().rev() { subs.remove(i); }
            }
        }
    }
    state.metrics.websocket_clients.dec();
}
