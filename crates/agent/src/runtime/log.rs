//! The execution log of one run: every model call and tool call with its timings, tokens and
//! cost, the hop timings a slow answer is diagnosed from, and warnings. Stored as JSON with the
//! run and shown on the run's page.

use serde::Serialize;
use serde_json::Value;
use tale_core::chat::TokenCounts;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunLog {
    pub agent: String,
    pub steps: Vec<Step>,
    pub timings: Timings,
    pub context: Option<ContextInfo>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Step {
    #[serde(rename_all = "camelCase")]
    Model {
        /// `provider:model`.
        model: String,
        /// Until the response headers (includes the provider's queueing and our retries).
        request_ms: u64,
        /// From sending the request to the first token.
        ttft_ms: Option<u64>,
        /// From the first token to the end of the answer.
        generation_ms: u64,
        tokens: TokenCounts,
        cost_cents: f64,
        finish_reason: Option<String>,
        error: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Tool {
        name: String,
        call_id: String,
        /// The arguments as parsed JSON, or the raw text when they were not valid JSON.
        arguments: Value,
        /// `ok`, `error`, `denied` or `unavailable`.
        status: String,
        /// What the model was told (shortened).
        result: String,
        duration_ms: u64,
    },
    /// `context` knowledge mode: the search whose passages were added to the question.
    #[serde(rename_all = "camelCase")]
    Knowledge {
        query: String,
        passages: usize,
        duration_ms: u64,
        error: Option<String>,
    },
}

/// Where the time went, per hop.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    /// From the run being created to the first request upstream.
    pub queue_ms: u64,
    /// Time to the first token of the first model call.
    pub ttft_ms: Option<u64>,
    /// Sum of generation time over model calls.
    pub generation_ms: u64,
    /// Sum of tool time.
    pub tools_ms: u64,
    pub total_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextInfo {
    pub estimated_tokens: u64,
    pub window: u64,
    pub output_reserve: u64,
    pub dropped_messages: usize,
}

/// Shortens text for the log, at a character boundary.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
}
