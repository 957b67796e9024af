//! A scripted model provider for tests: a real HTTP server on 127.0.0.1 that answers
//! `POST /v1/chat/completions` exactly as scripted, in the OpenAI wire format (JSON or SSE
//! streaming with realistic chunking, tool calls, usage), or with faults: an HTTP status with
//! `Retry-After`, a slow first token, a stream cut mid-way. It records every request it receives.
//!
//! This is test infrastructure, never linked into the `tale` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test infrastructure")]

pub mod model_index;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Script {
    /// A reply: text split into these deltas, optional tool calls `(id, name, arguments)`, with a
    /// pause before the first token and between deltas (streaming only).
    Reply { deltas: Vec<String>, tool_calls: Vec<(String, String, String)>, usage: (u64, u64), first_token_delay: Duration, delta_delay: Duration },
    /// An HTTP error with an optional `Retry-After` (seconds) and body.
    Status { code: u16, retry_after: Option<u64>, body: String },
    /// A stream that sends these deltas, then drops the connection without finishing.
    Cut { deltas: Vec<String> },
}

impl Script {
    pub fn text(text: &str) -> Script {
        // Realistic chunking: a few characters per delta, as tokenisers produce.
        let chars: Vec<char> = text.chars().collect();
        let deltas = chars.chunks(4).map(|c| c.iter().collect()).collect();
        Script::Reply { deltas, tool_calls: Vec::new(), usage: (12, chars.len() as u64 / 4 + 1), first_token_delay: Duration::ZERO, delta_delay: Duration::ZERO }
    }

    /// Text streamed at a pace: one delta every `every`.
    pub fn paced(text: &str, every: Duration) -> Script {
        match Script::text(text) {
            Script::Reply { deltas, tool_calls, usage, first_token_delay, .. } => Script::Reply { deltas, tool_calls, usage, first_token_delay, delta_delay: every },
            other => other,
        }
    }

    /// Tool calls `(id, name, arguments)` and no text.
    pub fn calls(calls: &[(&str, &str, &str)]) -> Script {
        let tool_calls = calls.iter().map(|(i, n, a)| ((*i).to_owned(), (*n).to_owned(), (*a).to_owned())).collect();
        Script::Reply { deltas: Vec::new(), tool_calls, usage: (20, 5), first_token_delay: Duration::ZERO, delta_delay: Duration::ZERO }
    }
}

#[derive(Default)]
struct Inner {
    scripts: VecDeque<Script>,
    requests: Vec<(HeaderMap, Value)>,
    /// Streams whose client went away before the end.
    abandoned: usize,
}

/// A running scripted provider; dropping it stops the server.
pub struct ScriptedProvider {
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
    _server: tokio::task::JoinHandle<()>,
}

impl ScriptedProvider {
    pub async fn start() -> ScriptedProvider {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/messages", post(messages))
            .route("/anthropic/v1/messages", post(messages))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ScriptedProvider { base_url: format!("http://{addr}/v1"), inner, _server: server }
    }

    /// A base URL whose path names Anthropic, so Tale speaks the Messages dialect to it.
    pub fn anthropic_base_url(&self) -> String {
        self.base_url.replace("/v1", "/anthropic/v1")
    }

    pub fn push(&self, script: Script) {
        self.inner.lock().unwrap().scripts.push_back(script);
    }

    /// How many streams the client closed before they ended (a stopped answer closes its stream).
    pub fn abandoned_streams(&self) -> usize {
        self.inner.lock().unwrap().abandoned
    }

    /// Every request body received so far, with its headers.
    pub fn requests(&self) -> Vec<(HeaderMap, Value)> {
        self.inner.lock().unwrap().requests.clone()
    }
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let body = json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {body}\n\n")
}

async fn chat(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: String) -> Response {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let script = {
        let mut g = inner.lock().unwrap();
        g.requests.push((headers, request.clone()));
        g.scripts.pop_front()
    };
    let model = request["model"].as_str().unwrap_or("unknown").to_owned();
    let stream = request["stream"].as_bool().unwrap_or(false);
    let Some(script) = script else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no script left").into_response();
    };
    match script {
        Script::Status { code, retry_after, body } => {
            let mut r = (StatusCode::from_u16(code).unwrap(), body).into_response();
            if let Some(s) = retry_after {
                r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
            }
            r
        }
        Script::Reply { deltas, tool_calls, usage, first_token_delay, .. } if !stream => {
            tokio::time::sleep(first_token_delay).await;
            let calls: Vec<Value> = tool_calls
                .iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
            let message = if calls.is_empty() {
                json!({"role": "assistant", "content": deltas.concat()})
            } else {
                json!({"role": "assistant", "content": null, "tool_calls": calls})
            };
            let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
            axum::Json(json!({"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1,
                          "prompt_tokens_details": {"cached_tokens": 2}, "completion_tokens_details": {"reasoning_tokens": 1}}}))
            .into_response()
        }
        Script::Reply { deltas, tool_calls, usage, first_token_delay, delta_delay } => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
            let include_usage = request["stream_options"]["include_usage"].as_bool().unwrap_or(false);
            let watcher = inner.clone();
            tokio::spawn(async move {
                tokio::time::sleep(first_token_delay).await;
                let _ = tx.send(Ok(chunk(&model, json!({"role": "assistant", "content": ""}), None))).await;
                for d in deltas {
                    if !delta_delay.is_zero() {
                        tokio::time::sleep(delta_delay).await;
                    }
                    if tx.send(Ok(chunk(&model, json!({"content": d}), None))).await.is_err() {
                        watcher.lock().unwrap().abandoned += 1;
                        return;
                    }
                }
                for (i, (id, name, args)) in tool_calls.iter().enumerate() {
                    // Arguments arrive in pieces, after a first chunk naming the call.
                    let first = json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]});
                    let _ = tx.send(Ok(chunk(&model, first, None))).await;
                    let parts: Vec<char> = args.chars().collect();
                    for piece in parts.chunks(5) {
                        let d = json!({"tool_calls": [{"index": i, "function": {"arguments": piece.iter().collect::<String>()}}]});
                        let _ = tx.send(Ok(chunk(&model, d, None))).await;
                    }
                }
                let finish = if tool_calls.is_empty() { "stop" } else { "tool_calls" };
                let _ = tx.send(Ok(chunk(&model, json!({}), Some(finish)))).await;
                if include_usage {
                    let u = json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
                        "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1,
                                  "prompt_tokens_details": {"cached_tokens": 2}, "completion_tokens_details": {"reasoning_tokens": 1}}});
                    let _ = tx.send(Ok(format!("data: {u}\n\n"))).await;
                }
                let _ = tx.send(Ok("data: [DONE]\n\n".into())).await;
            });
            sse(rx)
        }
        Script::Cut { deltas } => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
            tokio::spawn(async move {
                for d in deltas {
                    let _ = tx.send(Ok(chunk(&model, json!({"content": d}), None))).await;
                }
                // Let what was sent reach the client before the connection breaks, as in real
                // mid-answer failures.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = tx.send(Err(std::io::Error::other("connection cut"))).await;
            });
            sse(rx)
        }
    }
}

fn event(kind: &str, data: Value) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

/// The same scripts in the Anthropic Messages wire format.
async fn messages(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: String) -> Response {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let script = {
        let mut g = inner.lock().unwrap();
        g.requests.push((headers, request.clone()));
        g.scripts.pop_front()
    };
    let stream = request["stream"].as_bool().unwrap_or(false);
    let Some(script) = script else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no script left").into_response();
    };
    let (deltas, tool_calls, usage, delay) = match script {
        Script::Status { code, retry_after, body } => {
            let mut r = (StatusCode::from_u16(code).unwrap(), body).into_response();
            if let Some(s) = retry_after {
                r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
            }
            return r;
        }
        Script::Cut { deltas } => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
            tokio::spawn(async move {
                let _ = tx.send(Ok(event("message_start", json!({"type": "message_start", "message": {"usage": {"input_tokens": 1}}})))).await;
                for d in deltas {
                    let _ = tx.send(Ok(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}})))).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = tx.send(Err(std::io::Error::other("connection cut"))).await;
            });
            return sse(rx);
        }
        Script::Reply { deltas, tool_calls, usage, first_token_delay, .. } => (deltas, tool_calls, usage, first_token_delay),
    };
    let stop = if tool_calls.is_empty() { "end_turn" } else { "tool_use" };
    if !stream {
        tokio::time::sleep(delay).await;
        let mut content = vec![json!({"type": "text", "text": deltas.concat()})];
        for (id, name, args) in &tool_calls {
            content.push(json!({"type": "tool_use", "id": id, "name": name, "input": serde_json::from_str::<Value>(args).unwrap_or(Value::Null)}));
        }
        return axum::Json(json!({"id": "msg_test", "type": "message", "role": "assistant", "content": content, "stop_reason": stop,
            "usage": {"input_tokens": usage.0, "output_tokens": usage.1, "cache_read_input_tokens": 3}}))
        .into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = tx.send(Ok(event("message_start", json!({"type": "message_start", "message": {"usage": {"input_tokens": usage.0, "output_tokens": 1, "cache_read_input_tokens": 3}}})))).await;
        let _ = tx.send(Ok(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})))).await;
        for d in &deltas {
            let _ = tx.send(Ok(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}})))).await;
        }
        let _ = tx.send(Ok(event("content_block_stop", json!({"type": "content_block_stop", "index": 0})))).await;
        for (i, (id, name, args)) in tool_calls.iter().enumerate() {
            let index = i + 1;
            let _ = tx.send(Ok(event("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})))).await;
            let chars: Vec<char> = args.chars().collect();
            for piece in chars.chunks(6) {
                let d = json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece.iter().collect::<String>()}});
                let _ = tx.send(Ok(event("content_block_delta", d))).await;
            }
            let _ = tx.send(Ok(event("content_block_stop", json!({"type": "content_block_stop", "index": index})))).await;
        }
        let _ = tx.send(Ok(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": usage.1}})))).await;
        let _ = tx.send(Ok(event("message_stop", json!({"type": "message_stop"})))).await;
    });
    sse(rx)
}

/// Deterministic 4-dimensional vectors derived from each input (length, first byte, byte sum,
/// 1.0), returned in reverse order with their indices, as providers may reorder. A queued
/// `Script::Status` at the head of the script is answered instead (an embedding failure).
async fn embeddings(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: String) -> Response {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let failure = {
        let mut g = inner.lock().unwrap();
        g.requests.push((headers, request.clone()));
        if matches!(g.scripts.front(), Some(Script::Status { .. })) { g.scripts.pop_front() } else { None }
    };
    if let Some(Script::Status { code, retry_after, body }) = failure {
        let mut r = (StatusCode::from_u16(code).unwrap(), body).into_response();
        if let Some(s) = retry_after {
            r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
        }
        return r;
    }
    let inputs: Vec<String> = request["input"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let b = t.as_bytes();
            let v = [b.len() as f64, f64::from(b.first().copied().unwrap_or(0)), b.iter().map(|x| f64::from(*x)).sum::<f64>(), 1.0];
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    data.reverse();
    axum::Json(json!({"object": "list", "data": data, "model": request["model"], "usage": {"prompt_tokens": inputs.len() * 3, "total_tokens": inputs.len() * 3}})).into_response()
}

fn sse(rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}
