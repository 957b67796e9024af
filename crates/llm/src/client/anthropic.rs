//! The Anthropic Messages dialect (`/v1/messages`): system prompt apart, content blocks,
//! `tool_use` / `tool_result`, and its typed SSE events. Results use the same types as the
//! OpenAI dialect; stop reasons are mapped to OpenAI's names (`stop`, `tool_calls`, `length`).

use super::sse::SseParser;
use super::{ChatRequest, ChatResponse, Endpoint, LlmError, Part, RetryPolicy, Role, StreamEvent, ToolCall, Usage};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};

const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`.
const DEFAULT_MAX_TOKENS: u32 = 4096;

pub struct AnthropicClient {
    http: reqwest::Client,
    pub retry: RetryPolicy,
}

fn image_block(url: &str) -> Value {
    // data:<media type>;base64,<data> becomes an inline source; anything else a URL source.
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((media, data)) = rest.split_once(";base64,") {
            return json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}});
        }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

pub fn body(req: &ChatRequest, stream: bool) -> Value {
    let system: Vec<String> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .flat_map(|m| m.parts.iter().filter_map(|p| if let Part::Text(t) = p { Some(t.clone()) } else { None }))
        .collect();
    let mut messages: Vec<Value> = Vec::new();
    for m in req.messages.iter().filter(|m| m.role != Role::System) {
        let mut blocks: Vec<Value> = m
            .parts
            .iter()
            .filter(|p| !matches!(p, Part::Text(t) if t.is_empty()))
            .map(|p| match p {
                Part::Text(t) => json!({"type": "text", "text": t}),
                Part::Image(url) => image_block(url),
            })
            .collect();
        let role = match m.role {
            Role::Assistant => "assistant",
            _ => "user",
        };
        if m.role == Role::Tool {
            let text: String = m.parts.iter().map(|p| if let Part::Text(t) = p { t.as_str() } else { "" }).collect();
            blocks = vec![json!({"type": "tool_result", "tool_use_id": m.tool_call_id, "content": text})];
        }
        for c in &m.tool_calls {
            let input: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
            blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
        }
        // Consecutive messages of one role merge: the API wants them alternating.
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(arr) = last["content"].as_array_mut() {
                    arr.extend(blocks);
                }
            }
            _ => messages.push(json!({"role": role, "content": blocks})),
        }
    }
    let mut b = req.extra.clone();
    b.insert("model".into(), json!(req.model));
    b.insert("messages".into(), Value::Array(messages));
    b.insert("max_tokens".into(), json!(req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    if !system.is_empty() {
        b.insert("system".into(), json!(system.join("\n\n")));
    }
    if !req.tools.is_empty() {
        b.insert(
            "tools".into(),
            req.tools.iter().map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters})).collect(),
        );
    }
    if let Some(choice) = &req.tool_choice {
        let mapped = match choice.as_str() {
            Some("auto") => json!({"type": "auto"}),
            Some("required") => json!({"type": "any"}),
            Some("none") => json!({"type": "none"}),
            _ => choice.pointer("/function/name").map_or_else(|| json!({"type": "auto"}), |n| json!({"type": "tool", "name": n})),
        };
        b.insert("tool_choice".into(), mapped);
    }
    if let Some(t) = req.temperature {
        b.insert("temperature".into(), json!(t));
    }
    b.insert("stream".into(), json!(stream));
    Value::Object(b)
}

fn stop_reason(r: &str) -> String {
    match r {
        "end_turn" | "stop_sequence" => "stop",
        "tool_use" => "tool_calls",
        "max_tokens" => "length",
        other => other,
    }
    .to_owned()
}

fn usage(u: &Value) -> Usage {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    Usage { input_tokens: n("input_tokens") + n("cache_read_input_tokens") + n("cache_creation_input_tokens"), output_tokens: n("output_tokens"), cached_input_tokens: n("cache_read_input_tokens"), reasoning_tokens: 0 }
}

impl AnthropicClient {
    pub fn new(retry: RetryPolicy) -> Result<Self, LlmError> {
        Ok(AnthropicClient { http: super::http_client()?, retry })
    }

    async fn send(&self, ep: &Endpoint, body: &Value) -> Result<reqwest::Response, LlmError> {
        let url = format!("{}/messages", ep.base_url.trim_end_matches('/'));
        let headers = [("x-api-key", ep.api_key.clone()), ("anthropic-version", API_VERSION.to_owned())];
        super::post_json(&self.http, &self.retry, &url, &headers, body).await
    }

    pub async fn chat(&self, ep: &Endpoint, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let v: Value = self.send(ep, &body(req, false)).await?.json().await.map_err(|e| LlmError::Protocol(e.to_string()))?;
        let mut out = ChatResponse { usage: Some(usage(&v["usage"])), finish_reason: v["stop_reason"].as_str().map(stop_reason), ..Default::default() };
        for block in v["content"].as_array().into_iter().flatten() {
            match block["type"].as_str() {
                Some("text") => out.text.push_str(block["text"].as_str().unwrap_or_default()),
                Some("tool_use") => out.tool_calls.push(ToolCall {
                    id: block["id"].as_str().unwrap_or_default().to_owned(),
                    name: block["name"].as_str().unwrap_or_default().to_owned(),
                    arguments: block["input"].to_string(),
                }),
                _ => {}
            }
        }
        Ok(out)
    }

    pub async fn chat_stream(&self, ep: &Endpoint, req: &ChatRequest) -> Result<MessageStream, LlmError> {
        let response = self.send(ep, &body(req, true)).await?;
        Ok(MessageStream { response, parser: SseParser::default(), pending: VecDeque::new(), done: false, usage: Usage::default(), tool_blocks: BTreeMap::new() })
    }
}

pub struct MessageStream {
    response: reqwest::Response,
    parser: SseParser,
    pending: VecDeque<StreamEvent>,
    done: bool,
    usage: Usage,
    /// Content-block index → tool-call index, so tool calls number from 0 like OpenAI's.
    tool_blocks: BTreeMap<u64, usize>,
}

impl MessageStream {
    fn decode(&mut self, data: &str) -> Result<(), LlmError> {
        let v: Value = serde_json::from_str(data).map_err(|e| LlmError::Protocol(format!("bad stream event: {e}")))?;
        match v["type"].as_str().unwrap_or_default() {
            "message_start" => self.usage = usage(&v["message"]["usage"]),
            "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                let index = self.tool_blocks.len();
                self.tool_blocks.insert(v["index"].as_u64().unwrap_or(0), index);
                self.pending.push_back(StreamEvent::ToolCallDelta {
                    index,
                    id: v["content_block"]["id"].as_str().map(str::to_owned),
                    name: v["content_block"]["name"].as_str().map(str::to_owned),
                    arguments: String::new(),
                });
            }
            "content_block_delta" => match v["delta"]["type"].as_str() {
                Some("text_delta") => {
                    let t = v["delta"]["text"].as_str().unwrap_or_default();
                    if !t.is_empty() {
                        self.pending.push_back(StreamEvent::Text(t.to_owned()));
                    }
                }
                Some("input_json_delta") => {
                    let index = self.tool_blocks.get(&v["index"].as_u64().unwrap_or(0)).copied().unwrap_or(0);
                    let piece = v["delta"]["partial_json"].as_str().unwrap_or_default().to_owned();
                    self.pending.push_back(StreamEvent::ToolCallDelta { index, id: None, name: None, arguments: piece });
                }
                _ => {}
            },
            "message_delta" => {
                if let Some(out) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = out;
                }
                if let Some(r) = v["delta"]["stop_reason"].as_str() {
                    self.pending.push_back(StreamEvent::Finish(stop_reason(r)));
                }
            }
            "message_stop" => {
                self.pending.push_back(StreamEvent::Usage(self.usage));
                self.done = true;
            }
            "error" => return Err(LlmError::Upstream { status: 200, message: super::openai::upstream_message(&v.to_string()) }),
            _ => {}
        }
        Ok(())
    }

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
                Ok(None) | Err(_) => {
                    self.done = true;
                    return Some(Err(LlmError::StreamCut));
                }
            }
        }
    }

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
                        call.name = name;
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
