//! The OpenAI-compatible chat dialect: request bodies, JSON and SSE responses, retries.

use super::sse::SseParser;
use super::{ChatRequest, ChatResponse, Endpoint, LlmError, Message, Part, RetryPolicy, Role, StreamEvent, ToolCall, Usage};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};

pub struct OpenAiClient {
    http: reqwest::Client,
    pub retry: RetryPolicy,
}

fn role(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn message_json(m: &Message) -> Value {
    let text_only = m.parts.iter().all(|p| matches!(p, Part::Text(_)));
    let content = if text_only {
        let text: String = m.parts.iter().map(|p| if let Part::Text(t) = p { t.as_str() } else { "" }).collect();
        if text.is_empty() && !m.tool_calls.is_empty() { Value::Null } else { Value::String(text) }
    } else {
        Value::Array(
            m.parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => json!({"type": "text", "text": t}),
                    Part::Image(url) => json!({"type": "image_url", "image_url": {"url": url}}),
                })
                .collect(),
        )
    };
    let mut out = json!({"role": role(m.role), "content": content});
    if !m.tool_calls.is_empty() {
        out["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        out["tool_call_id"] = json!(id);
    }
    out
}

/// The request body. Provider options go in first so that Tale's own fields always win.
pub fn body(req: &ChatRequest, stream: bool) -> Value {
    let mut b: Map<String, Value> = req.extra.clone();
    b.insert("model".into(), json!(req.model));
    b.insert("messages".into(), req.messages.iter().map(message_json).collect());
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
        b.insert("tools".into(), Value::Array(tools));
    }
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            b.insert(k.into(), v);
        }
    };
    put("tool_choice", req.tool_choice.clone());
    put("max_tokens", req.max_tokens.map(Value::from));
    put("temperature", req.temperature.map(|t| json!(t)));
    put("response_format", req.response_format.clone());
    b.insert("stream".into(), json!(stream));
    if stream {
        b.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(b)
}

fn usage(v: &Value) -> Option<Usage> {
    v.get("usage").filter(|u| u.is_object()).map(usage_of)
}

fn usage_of(u: &Value) -> Usage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n("/prompt_tokens"),
        output_tokens: n("/completion_tokens"),
        cached_input_tokens: n("/prompt_tokens_details/cached_tokens"),
        reasoning_tokens: n("/completion_tokens_details/reasoning_tokens"),
    }
}

/// The provider's own words for an error, shortened.
pub(crate) fn upstream_message(text: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let msg = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.get("message")).or_else(|| v.get("error")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| text.trim().to_owned());
    let msg: String = msg.chars().take(500).collect();
    if msg.is_empty() { "(no message)".into() } else { msg }
}

impl OpenAiClient {
    pub fn new(retry: RetryPolicy) -> Result<Self, LlmError> {
        Ok(OpenAiClient { http: super::http_client()?, retry })
    }

    async fn send(&self, ep: &Endpoint, operation: &str, body: &Value) -> Result<reqwest::Response, LlmError> {
        let model = body["model"].as_str().unwrap_or_default();
        let (url, auth) = super::operation_url(ep, model, operation);
        let headers: Vec<(&str, String)> =
            if auth == "api-key" { vec![("api-key", ep.api_key.clone())] } else { vec![("authorization", format!("Bearer {}", ep.api_key))] };
        super::post_json(&self.http, &self.retry, &url, &headers, body).await
    }

    /// A complete answer in one response.
    pub async fn chat(&self, ep: &Endpoint, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let r = self.send(ep, "chat/completions", &body(req, false)).await?;
        let v: Value = r.json().await.map_err(|e| LlmError::Protocol(e.to_string()))?;
        let choice = v.pointer("/choices/0").ok_or_else(|| LlmError::Protocol("no choices in the response".into()))?;
        let msg = &choice["message"];
        let tool_calls = msg["tool_calls"]
            .as_array()
            .map(|calls| {
                calls
                    .iter()
                    .map(|c| ToolCall {
                        id: c["id"].as_str().unwrap_or_default().to_owned(),
                        name: c.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        arguments: c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ChatResponse {
            text: msg["content"].as_str().unwrap_or_default().to_owned(),
            tool_calls,
            usage: usage(&v),
            finish_reason: choice["finish_reason"].as_str().map(str::to_owned),
        })
    }

    /// Embeddings for `inputs`, in input order.
    pub async fn embed(&self, ep: &Endpoint, model: &str, inputs: &[String], dimensions: Option<u64>) -> Result<Embeddings, LlmError> {
        let mut b = json!({"model": model, "input": inputs});
        if let Some(d) = dimensions {
            b["dimensions"] = json!(d);
        }
        let r = self.send(ep, "embeddings", &b).await?;
        let v: Value = r.json().await.map_err(|e| LlmError::Protocol(e.to_string()))?;
        let mut rows: Vec<(usize, Vec<f32>)> = v["data"]
            .as_array()
            .ok_or_else(|| LlmError::Protocol("no data in the embeddings response".into()))?
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let index = row["index"].as_u64().map_or(i, |n| n as usize);
                let vector = row["embedding"].as_array().map(|a| a.iter().filter_map(Value::as_f64).map(|f| f as f32).collect()).unwrap_or_default();
                (index, vector)
            })
            .collect();
        rows.sort_by_key(|(i, _)| *i);
        if rows.len() != inputs.len() {
            return Err(LlmError::Protocol(format!("asked for {} embeddings, got {}", inputs.len(), rows.len())));
        }
        Ok(Embeddings { vectors: rows.into_iter().map(|(_, v)| v).collect(), input_tokens: v.pointer("/usage/prompt_tokens").and_then(Value::as_u64).unwrap_or(0) })
    }

    /// A streamed answer. Dropping the stream closes the upstream connection.
    pub async fn chat_stream(&self, ep: &Endpoint, req: &ChatRequest) -> Result<ChatStream, LlmError> {
        let response = self.send(ep, "chat/completions", &body(req, true)).await?;
        Ok(ChatStream { response, parser: SseParser::default(), pending: VecDeque::new(), done: false, finished: false })
    }
}

/// Vectors in input order, and the tokens the provider counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub input_tokens: u64,
}

pub struct ChatStream {
    response: reqwest::Response,
    parser: SseParser,
    pending: VecDeque<StreamEvent>,
    done: bool,
    finished: bool,
}

/// One streamed chunk, decoded into just the fields a chat stream uses: this runs once per token
/// of every answer, so it avoids building a `serde_json::Value` tree.
#[derive(serde::Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<ChoiceChunk>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(serde::Deserialize)]
struct ChoiceChunk {
    #[serde(default)]
    delta: Option<DeltaChunk>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(serde::Deserialize)]
struct DeltaChunk {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallChunk>,
}

#[derive(serde::Deserialize)]
struct ToolCallChunk {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionChunk>,
}

#[derive(serde::Deserialize)]
struct FunctionChunk {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

impl ChatStream {
    fn decode(&mut self, data: &str) -> Result<(), LlmError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: StreamChunk = serde_json::from_str(data).map_err(|e| LlmError::Protocol(format!("bad stream chunk: {e}")))?;
        if let Some(err) = chunk.error.filter(|e| !e.is_null()) {
            return Err(LlmError::Upstream { status: 200, message: upstream_message(&err.to_string()) });
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    self.pending.push_back(StreamEvent::Text(text));
                }
                for call in delta.tool_calls {
                    let (name, arguments) = call.function.map(|f| (f.name, f.arguments.unwrap_or_default())).unwrap_or_default();
                    self.pending.push_back(StreamEvent::ToolCallDelta { index: call.index, id: call.id, name, arguments });
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finished = true;
                self.pending.push_back(StreamEvent::Finish(reason));
            }
        }
        if let Some(u) = chunk.usage.filter(Value::is_object) {
            self.pending.push_back(StreamEvent::Usage(usage_of(&u)));
        }
        Ok(())
    }

    /// The next event; `None` once the answer is complete.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, LlmError>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => {
                    for data in self.parser.push(&bytes) {
                        if let Err(e) = self.decode(&data) {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
                // Some servers end after the finish chunk without `[DONE]`: that is complete.
                Ok(None) if self.finished => self.done = true,
                Ok(None) | Err(_) => {
                    self.done = true;
                    return Some(Err(LlmError::StreamCut));
                }
            }
        }
    }

    /// Drains the stream into one response.
    pub async fn collect(mut self) -> Result<ChatResponse, LlmError> {
        let mut out = ChatResponse::default();
        let mut calls: BTreeMap<usize, ToolCall> = BTreeMap::new();
        while let Some(event) = self.next().await {
            match event? {
                StreamEvent::Text(t) => out.text.push_str(&t),
                StreamEvent::ToolCallDelta { index, id, name, arguments } => {
                    let call = calls.entry(index).or_insert_with(|| ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
                    if let Some(id) = id {
                        call.id = id;
                    }
                    if let Some(name) = name {
                        call.name.push_str(&name);
                    }
                    call.arguments.push_str(&arguments);
                }
                StreamEvent::Usage(u) => out.usage = Some(u),
                StreamEvent::Finish(r) => out.finish_reason = Some(r),
            }
        }
        out.tool_calls = calls.into_values().collect();
        Ok(out)
    }
}
