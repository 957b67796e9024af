//! Talking to model providers. One request shape for every provider, one event stream back.
//! `openai.rs` speaks the OpenAI-compatible `/chat/completions` dialect (OpenAI, OpenRouter, vLLM,
//! llama.cpp, Ollama's `/v1`, Azure OpenAI through [`operation_url`]); `anthropic.rs` speaks the
//! Messages dialect. [`LlmClient`] picks the dialect an endpoint speaks.

pub mod anthropic;
pub mod openai;
pub mod sse;

use anthropic::AnthropicClient;
use openai::OpenAiClient;

use serde_json::{Map, Value};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// A piece of message content: text, or an image for vision models.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Text(String),
    /// An `https:` or `data:` URL.
    Image(String),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text exactly as the model produced it (it may be invalid; the runtime checks).
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
    pub tool_calls: Vec<ToolCall>,
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn text(role: Role, text: &str) -> Message {
        Message { role, parts: vec![Part::Text(text.to_owned())], tool_calls: Vec::new(), tool_call_id: None }
    }
}

/// A tool the model may call: a name, a description and JSON-Schema parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: Option<Value>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// e.g. `{"type":"json_schema",...}` where the provider supports structured output.
    pub response_format: Option<Value>,
    /// The merged `providerOptions` (already validated: they cannot overwrite fields above).
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
}

/// What a streaming answer yields, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Text(String),
    /// A piece of a tool call; `index` groups the pieces of one call (parallel calls interleave).
    ToolCallDelta { index: usize, id: Option<String>, name: Option<String>, arguments: String },
    Usage(Usage),
    Finish(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatResponse {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
}

/// Where and how to call a provider.
#[derive(Clone)]
pub struct Endpoint {
    pub base_url: String,
    pub api_key: String,
}

/// The URL and auth header an endpoint uses for an OpenAI-dialect operation (`chat/completions`,
/// `embeddings`). Azure OpenAI resource URLs (`*.openai.azure.com`, `*.cognitiveservices.azure.com`)
/// address a deployment named like the model, carry `api-version` (from the base URL's query, else
/// a current GA version) and authenticate with `api-key`; Azure's `/openai/v1` URLs are plain
/// OpenAI-style paths with `api-key`.
pub fn operation_url(ep: &Endpoint, model: &str, operation: &str) -> (String, &'static str) {
    const AZURE_API_VERSION: &str = "2024-10-21";
    let (base, query) = match ep.base_url.split_once('?') {
        Some((b, q)) => (b.trim_end_matches('/'), Some(q)),
        None => (ep.base_url.trim_end_matches('/'), None),
    };
    let host = base.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or("");
    let azure = host.ends_with(".openai.azure.com") || host.ends_with(".cognitiveservices.azure.com");
    if !azure {
        return (format!("{base}/{operation}"), "authorization");
    }
    if base.ends_with("/openai/v1") {
        return (format!("{base}/{operation}"), "api-key");
    }
    let version = query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("api-version=")))
        .unwrap_or(AZURE_API_VERSION);
    let root = base.strip_suffix("/openai").unwrap_or(base);
    (format!("{root}/openai/deployments/{model}/{operation}?api-version={version}"), "api-key")
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({}, key redacted)", self.base_url)
    }
}

/// Failures a user can read: the provider's status and text, or what broke on the way.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("the provider answered {status}: {message}")]
    Upstream { status: u16, message: String },
    #[error("the provider did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the provider: {0}")]
    Connect(String),
    #[error("the provider's stream ended before the answer was complete")]
    StreamCut,
    #[error("the provider sent something unexpected: {0}")]
    Protocol(String),
}

pub(crate) fn http_client() -> Result<reqwest::Client, LlmError> {
    reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build().map_err(|e| LlmError::Connect(e.to_string()))
}

/// POSTs JSON with retries on 429/5xx and connection failures; returns a success response.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    retry: &RetryPolicy,
    url: &str,
    headers: &[(&str, String)],
    body: &Value,
) -> Result<reqwest::Response, LlmError> {
    let mut attempt = 0;
    loop {
        let mut request = http.post(url).json(body);
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let outcome = match tokio::time::timeout(retry.request_timeout, request.send()).await {
            Err(_) => Err((LlmError::Timeout(retry.request_timeout), None)),
            Ok(Err(e)) => Err((LlmError::Connect(e.without_url().to_string()), None)),
            Ok(Ok(r)) if r.status().is_success() => Ok(r),
            Ok(Ok(r)) => {
                let status = r.status().as_u16();
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = r.text().await.unwrap_or_default();
                Err((LlmError::Upstream { status, message: openai::upstream_message(&text) }, retry_after))
            }
        };
        match outcome {
            Ok(r) => return Ok(r),
            Err((e, retry_after)) => {
                attempt += 1;
                if !e.retryable() || attempt >= retry.attempts {
                    return Err(e);
                }
                let wait = retry.delay(attempt - 1, retry_after);
                tracing::warn!(error = %e, attempt, wait_ms = wait.as_millis() as u64, "provider request failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(base: &str) -> Endpoint {
        Endpoint { base_url: base.into(), api_key: "k".into() }
    }

    #[test]
    fn dialect_follows_the_host_or_an_anthropic_path() {
        assert_eq!(Dialect::of(&ep("https://api.anthropic.com/v1")), Dialect::Anthropic);
        assert_eq!(Dialect::of(&ep("https://gateway.example/anthropic/v1")), Dialect::Anthropic);
        assert_eq!(Dialect::of(&ep("https://openrouter.ai/api/v1")), Dialect::OpenAi);
        assert_eq!(Dialect::of(&ep("http://localhost:11434/v1")), Dialect::OpenAi);
        assert_eq!(Dialect::of(&ep("https://anthropic-proxy.example/v1")), Dialect::OpenAi);
    }

    #[test]
    fn openai_and_azure_urls() {
        assert_eq!(operation_url(&ep("http://localhost:11434/v1/"), "llama3.3", "chat/completions"), ("http://localhost:11434/v1/chat/completions".into(), "authorization"));
        assert_eq!(
            operation_url(&ep("https://acme.openai.azure.com"), "gpt-4o", "chat/completions"),
            ("https://acme.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21".into(), "api-key")
        );
        assert_eq!(
            operation_url(&ep("https://acme.openai.azure.com/openai?api-version=2025-01-01-preview"), "emb", "embeddings").0,
            "https://acme.openai.azure.com/openai/deployments/emb/embeddings?api-version=2025-01-01-preview"
        );
        assert_eq!(operation_url(&ep("https://acme.openai.azure.com/openai/v1"), "gpt-4o", "chat/completions").0, "https://acme.openai.azure.com/openai/v1/chat/completions");
    }
}

impl LlmError {
    /// Worth another attempt: rate limits, server errors, timeouts, connection failures.
    pub fn retryable(&self) -> bool {
        match self {
            LlmError::Upstream { status, .. } => *status == 429 || *status >= 500,
            LlmError::Timeout(_) | LlmError::Connect(_) => true,
            LlmError::StreamCut | LlmError::Protocol(_) => false,
        }
    }
}

/// Retries on 429/5xx and connection failures, with exponential backoff that honours
/// `Retry-After` (capped).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Until the response headers arrive.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.base_delay.saturating_mul(2u32.saturating_pow(attempt));
        retry_after.unwrap_or(backoff).min(self.max_delay)
    }
}

/// Which wire format an endpoint speaks. The reference assumes the OpenAI dialect everywhere;
/// Anthropic's own API, and gateways that serve it under an `/anthropic` path segment (as
/// several do), speak Messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
}

impl Dialect {
    pub fn of(ep: &Endpoint) -> Dialect {
        let base = ep.base_url.split('?').next().unwrap_or("").trim_end_matches('/');
        let mut parts = base.split("://").nth(1).unwrap_or("").split('/');
        let host = parts.next().unwrap_or("");
        if host.ends_with("anthropic.com") || parts.any(|segment| segment == "anthropic") { Dialect::Anthropic } else { Dialect::OpenAi }
    }
}

/// Either dialect's stream behind one `next()`. Dropping it closes the upstream connection.
pub enum ChatEvents {
    OpenAi(openai::ChatStream),
    Anthropic(anthropic::MessageStream),
}

impl ChatEvents {
    pub async fn next(&mut self) -> Option<Result<StreamEvent, LlmError>> {
        match self {
            ChatEvents::OpenAi(s) => s.next().await,
            ChatEvents::Anthropic(s) => s.next().await,
        }
    }
}

/// One client for every provider: chat (whole or streamed) in the endpoint's dialect.
pub struct LlmClient {
    openai: OpenAiClient,
    anthropic: AnthropicClient,
}

impl LlmClient {
    pub fn new(retry: RetryPolicy) -> Result<Self, LlmError> {
        Ok(LlmClient { openai: OpenAiClient::new(retry)?, anthropic: AnthropicClient::new(retry)? })
    }

    pub async fn chat(&self, ep: &Endpoint, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        match Dialect::of(ep) {
            Dialect::OpenAi => self.openai.chat(ep, req).await,
            Dialect::Anthropic => self.anthropic.chat(ep, req).await,
        }
    }

    pub async fn chat_stream(&self, ep: &Endpoint, req: &ChatRequest) -> Result<ChatEvents, LlmError> {
        Ok(match Dialect::of(ep) {
            Dialect::OpenAi => ChatEvents::OpenAi(self.openai.chat_stream(ep, req).await?),
            Dialect::Anthropic => ChatEvents::Anthropic(self.anthropic.chat_stream(ep, req).await?),
        })
    }

    /// Embeddings (OpenAI dialect; Anthropic has no embeddings endpoint).
    pub async fn embed(&self, ep: &Endpoint, model: &str, inputs: &[String], dimensions: Option<u64>) -> Result<openai::Embeddings, LlmError> {
        self.openai.embed(ep, model, inputs, dimensions).await
    }
}
