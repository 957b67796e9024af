//! The run loop: call the model, stream its text out, execute the tools it asks for (each
//! checked against the agent's tool list and the user's role), feed the results back, and stop at
//! the answer, `maxSteps`, `timeoutMs`, a stop request or an error. Every hop is timed into the
//! run's [`RunLog`].
//!
//! The loop knows nothing of threads or storage: the chat role hands it a prompt and tools bound
//! to the thread, and watches it through a [`RunObserver`].

pub mod context;
pub mod log;

use crate::tools::knowledge::{context_block, Citations, KnowledgeHost};
use crate::tools::{PartSink, Tool, ToolOutput};
pub use log::{RunLog, Step};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tale_core::chat::TokenCounts;
use tale_llm::client::{ChatRequest, Endpoint, LlmClient, LlmError, Message, Part, Role, StreamEvent, ToolCall, ToolSpec, Usage};
use tale_llm::Model;
use tokio_util::sync::CancellationToken;

/// One model the run may use, resolved to a callable endpoint.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub provider: String,
    pub model: Model,
    pub endpoint: Endpoint,
    pub options: Map<String, Value>,
}

impl Candidate {
    pub fn label(&self) -> String {
        format!("{}:{}", self.provider, self.model.id)
    }
}

/// Everything one run needs.
pub struct RunInput {
    pub agent_slug: String,
    pub system: String,
    /// Earlier turns and the new question (oldest first), or a paused run's transcript.
    pub history: Vec<Message>,
    /// The agent's model first, then fallbacks in order.
    pub candidates: Vec<Candidate>,
    /// Tools the agent lists that this user may use and that work in this build.
    pub tools: Vec<Arc<dyn Tool>>,
    /// Tools the agent lists but that cannot run for this user, with the reason the model is told.
    pub blocked: Vec<(String, String, &'static str)>,
    pub max_steps: u32,
    pub timeout: Duration,
    pub output_reserve: u32,
    /// When the run was created (queue time is measured from here).
    pub queued_at: Instant,
    /// Problems found while preparing the run (e.g. a model reference that does not resolve).
    pub warnings: Vec<String>,
    /// `context` knowledge mode: passages to add to the question before the first model call.
    pub knowledge: Option<ContextKnowledge>,
}

/// What `context` mode needs: where to search, for what, how many passages, and the run's
/// citation numbers (shared with the knowledge tools in `both` mode).
pub struct ContextKnowledge {
    pub host: Arc<dyn KnowledgeHost>,
    pub query: String,
    pub top_k: usize,
    pub citations: Arc<Citations>,
    /// Why the agent may read nothing, when it may not.
    pub refusal: Option<&'static str>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Completed,
    /// Someone pressed stop.
    Stopped,
    /// Waiting for the user's answer to a form.
    Waiting,
    /// The message says what went wrong, in words for the user.
    Failed(String),
}

/// Tokens and cost one model used in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelUsage {
    pub provider: String,
    pub model: String,
    pub tokens: TokenCounts,
    pub cost_cents: f64,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub ending: Ending,
    /// The answer's prose, all steps together.
    pub text: String,
    /// The conversation as the model saw it, without the system message (to resume a paused run).
    pub transcript: Vec<Message>,
    pub log: RunLog,
    pub usage: Vec<ModelUsage>,
    /// `provider:model` of the model that wrote (most of) the answer.
    pub model: Option<String>,
}

/// Watches a run: text as it streams, parts (tool calls, artifacts, ...) as they change.
pub trait RunObserver: PartSink {
    fn text(&self, delta: &str);
}

fn tokens(u: &Usage) -> TokenCounts {
    TokenCounts { input: u.input_tokens, output: u.output_tokens, cached_input: u.cached_input_tokens, reasoning: u.reasoning_tokens }
}

/// US cents from the model's cost table (TALE-COMPAT §2.5); no table costs nothing.
pub fn cost_cents(model: &Model, t: &TokenCounts) -> f64 {
    let Some(cost) = &model.cost else { return 0.0 };
    let input = cost.input_cents_per_million.unwrap_or(0.0) * t.input as f64 / 1e6;
    let output = cost.output_cents_per_million.unwrap_or(0.0) * t.output as f64 / 1e6;
    input + output
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What one model call produced.
struct StepResult {
    text: String,
    calls: Vec<ToolCall>,
}

enum StepError {
    Stopped,
    TimedOut,
    Failed(String),
}

/// The run loop, sharing one HTTP client (and its connection pool) across runs.
pub struct Runtime {
    client: LlmClient,
}

impl Runtime {
    pub fn new(client: LlmClient) -> Self {
        Runtime { client }
    }

    /// The shared client, for calls outside a run (the OpenAI-compatible API).
    pub fn client(&self) -> &LlmClient {
        &self.client
    }

    pub async fn run(&self, input: RunInput, observer: &dyn RunObserver, cancel: &CancellationToken) -> RunOutcome {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + input.timeout;
        let mut log = RunLog { agent: input.agent_slug.clone(), warnings: input.warnings.clone(), ..RunLog::default() };
        let mut run = Loop { rt: self, input: &input, observer, cancel, deadline, log: &mut log, usage: Vec::new(), candidate: 0, first_request: None };
        let (ending, text, transcript) = run.drive().await;
        let usage = std::mem::take(&mut run.usage);
        let model = input.candidates.get(run.candidate).map(Candidate::label);
        let queue = run.first_request.map_or(started.duration_since(input.queued_at), |t| t.duration_since(input.queued_at));
        log.timings.queue_ms = ms(queue);
        log.timings.total_ms = ms(input.queued_at.elapsed());
        RunOutcome { ending, text, transcript, log, usage, model }
    }
}

struct Loop<'a> {
    rt: &'a Runtime,
    input: &'a RunInput,
    observer: &'a dyn RunObserver,
    cancel: &'a CancellationToken,
    deadline: tokio::time::Instant,
    log: &'a mut RunLog,
    usage: Vec<ModelUsage>,
    /// Index of the candidate in use: fallbacks move it forward for the rest of the run.
    candidate: usize,
    first_request: Option<Instant>,
}

impl Loop<'_> {
    fn timeout_message(&self) -> String {
        format!("The answer took longer than this agent's limit of {} s and was stopped.", self.input.timeout.as_secs())
    }

    async fn drive(&mut self) -> (Ending, String, Vec<Message>) {
        let Some(first) = self.input.candidates.first() else {
            let why = self.log.warnings.last().cloned().unwrap_or_else(|| "the agent has no usable model".into());
            return (Ending::Failed(format!("No model is available for this agent: {why}")), String::new(), self.input.history.clone());
        };
        let system = Message::text(Role::System, &self.input.system);
        let window = first.model.context_window();
        let reserve = u64::from(self.input.output_reserve);
        let mut history = self.input.history.clone();
        if let Some(k) = &self.input.knowledge {
            let (input, cancel, deadline, timed_out) = (self.input, self.cancel, self.deadline, self.timeout_message());
            tokio::select! {
                () = self.add_knowledge(k, &mut history) => {}
                _ = cancel.cancelled() => return (Ending::Stopped, String::new(), input.history.clone()),
                _ = tokio::time::sleep_until(deadline) => return (Ending::Failed(timed_out), String::new(), input.history.clone()),
            }
        }
        let fitted = match context::fit(&system, history, window, reserve) {
            Ok(f) => f,
            Err(e) => {
                let message = format!(
                    "The message is too long for {}: about {} tokens, but the model reads at most {} with {} kept free for the answer. Shorten it or attach less.",
                    first.label(),
                    e.needed,
                    window,
                    reserve
                );
                return (Ending::Failed(message), String::new(), self.input.history.clone());
            }
        };
        if fitted.dropped > 0 {
            self.log.warnings.push(format!("{} earlier messages were left out to fit the model's context window", fitted.dropped));
        }
        self.log.context = Some(log::ContextInfo {
            estimated_tokens: fitted.estimated_tokens,
            window,
            output_reserve: reserve,
            dropped_messages: fitted.dropped,
        });
        for (name, _, reason) in &self.input.blocked {
            self.log.warnings.push(format!("tool '{name}' {reason}"));
        }
        let mut messages = fitted.messages;
        let specs: Vec<ToolSpec> = self
            .input
            .tools
            .iter()
            .map(|t| ToolSpec { name: t.name().to_owned(), description: t.description().to_owned(), parameters: t.parameters() })
            .collect();
        let mut text = String::new();
        for _ in 0..self.input.max_steps {
            let step = match self.model_step(&messages, &specs, &mut text).await {
                Ok(s) => s,
                Err(StepError::Stopped) => return (Ending::Stopped, text, transcript(&messages)),
                Err(StepError::TimedOut) => return (Ending::Failed(self.timeout_message()), text, transcript(&messages)),
                Err(StepError::Failed(m)) => return (Ending::Failed(m), text, transcript(&messages)),
            };
            let mut assistant = Message::text(Role::Assistant, &step.text);
            assistant.tool_calls = step.calls.clone();
            messages.push(assistant);
            if step.calls.is_empty() {
                return (Ending::Completed, text, transcript(&messages));
            }
            let mut paused = false;
            for call in &step.calls {
                if paused {
                    // Every call needs a result; calls after a form wait for the next turn.
                    messages.push(tool_result(&call.id, "Not run: the user is answering a form first. Call it again if still needed."));
                    continue;
                }
                let (cancel, deadline, timed_out) = (self.cancel, self.deadline, self.timeout_message());
                let outcome = tokio::select! {
                    o = self.tool_step(call) => o,
                    _ = cancel.cancelled() => return (Ending::Stopped, text, transcript(&messages)),
                    _ = tokio::time::sleep_until(deadline) => return (Ending::Failed(timed_out), text, transcript(&messages)),
                };
                // A paused call's result is the user's answer, added when they give it.
                if outcome.pause {
                    paused = true;
                } else {
                    messages.push(tool_result(&call.id, &outcome.content));
                }
            }
            if paused {
                return (Ending::Waiting, text, transcript(&messages));
            }
        }
        self.log.warnings.push(format!("stopped after maxSteps ({}) model calls while the model still wanted tools", self.input.max_steps));
        (Ending::Completed, text, transcript(&messages))
    }

    /// `context` mode: the best passages for the question, numbered for citing, appended to the
    /// question as the model sees it (the stored question stays as the user wrote it). A store
    /// that does not answer costs the turn its passages, not the answer.
    async fn add_knowledge(&mut self, k: &ContextKnowledge, history: &mut [Message]) {
        let started = Instant::now();
        let (found, error) = match k.refusal {
            Some(r) => (Vec::new(), Some(format!("no knowledge: {r}"))),
            None if k.query.trim().is_empty() => (Vec::new(), None),
            None => match k.host.search(&k.query, None, k.top_k).await {
                Ok(p) => (p, None),
                Err(e) => (Vec::new(), Some(format!("the knowledge base is unavailable: {e}"))),
            },
        };
        if let Some(e) = &error {
            self.log.warnings.push(format!("knowledge context: {e}"));
        }
        let passages = found.len();
        if !found.is_empty()
            && let Some(question) = history.iter_mut().rev().find(|m| m.role == Role::User)
        {
            let block = context_block(&found, k.host.as_ref(), &k.citations, self.observer);
            match question.parts.iter_mut().find_map(|p| match p {
                Part::Text(t) => Some(t),
                _ => None,
            }) {
                Some(text) => {
                    text.push_str("\n\n");
                    text.push_str(&block);
                }
                None => question.parts.insert(0, Part::Text(block)),
            }
        }
        self.log.steps.push(Step::Knowledge { query: log::excerpt(&k.query, 500), passages, duration_ms: ms(started.elapsed()), error });
    }

    /// One model call, with fallback to the next candidate when the call fails before any output.
    async fn model_step(&mut self, messages: &[Message], specs: &[ToolSpec], text: &mut String) -> Result<StepResult, StepError> {
        loop {
            let c = &self.input.candidates[self.candidate];
            let label = c.label();
            let request = ChatRequest {
                model: c.model.id.clone(),
                messages: messages.to_vec(),
                tools: specs.to_vec(),
                tool_choice: None,
                max_tokens: Some(c.model.max_output_tokens.map_or(self.input.output_reserve, |n| u32::try_from(n).unwrap_or(u32::MAX))),
                temperature: None,
                response_format: None,
                extra: c.options.clone(),
            };
            let sent = Instant::now();
            self.first_request.get_or_insert(sent);
            let stream = tokio::select! {
                s = self.rt.client.chat_stream(&c.endpoint, &request) => s,
                _ = self.cancel.cancelled() => return Err(StepError::Stopped),
                _ = tokio::time::sleep_until(self.deadline) => return Err(StepError::TimedOut),
            };
            let request_ms = ms(sent.elapsed());
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    self.log_model_error(&label, request_ms, &e);
                    if self.fall_back(&label, &e) {
                        continue;
                    }
                    return Err(StepError::Failed(format!("{label}: {e}")));
                }
            };
            let separator = if text.is_empty() { "" } else { "\n\n" };
            let mut step = StepResult { text: String::new(), calls: Vec::new() };
            let mut calls: BTreeMap<usize, ToolCall> = BTreeMap::new();
            let mut usage = None;
            let mut finish = None;
            let mut first_token: Option<Instant> = None;
            let failure = loop {
                let event = tokio::select! {
                    e = stream.next() => e,
                    _ = self.cancel.cancelled() => break Some(StepError::Stopped),
                    _ = tokio::time::sleep_until(self.deadline) => break Some(StepError::TimedOut),
                };
                match event {
                    None => break None,
                    Some(Ok(StreamEvent::Text(t))) => {
                        if first_token.is_none() {
                            first_token = Some(Instant::now());
                            if !separator.is_empty() {
                                text.push_str(separator);
                                self.observer.text(separator);
                            }
                        }
                        text.push_str(&t);
                        step.text.push_str(&t);
                        self.observer.text(&t);
                    }
                    Some(Ok(StreamEvent::ToolCallDelta { index, id, name, arguments })) => {
                        first_token.get_or_insert_with(Instant::now);
                        let call = calls.entry(index).or_insert_with(|| ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
                        if let Some(id) = id {
                            call.id = id;
                        }
                        if let Some(name) = name {
                            call.name.push_str(&name);
                        }
                        call.arguments.push_str(&arguments);
                    }
                    Some(Ok(StreamEvent::Usage(u))) => usage = Some(u),
                    Some(Ok(StreamEvent::Finish(r))) => finish = Some(r),
                    Some(Err(e)) => {
                        let nothing_shown = first_token.is_none();
                        if nothing_shown && self.fall_back(&label, &e) {
                            self.log_model_error(&label, request_ms, &e);
                            break Some(StepError::Failed(String::new()));
                        }
                        break Some(StepError::Failed(format!("{label}: {e}")));
                    }
                }
            };
            let counts = usage.as_ref().map(tokens).unwrap_or_default();
            let cost = cost_cents(&c.model, &counts);
            let generation_ms = first_token.map_or(0, |t| ms(t.elapsed()));
            let ttft_ms = first_token.map(|t| ms(t.duration_since(sent)));
            if usage.is_some() {
                self.record_usage(c, counts, cost);
            }
            match failure {
                // A fallback was chosen: the failed attempt is already logged.
                Some(StepError::Failed(m)) if m.is_empty() => continue,
                other => {
                    self.log.timings.ttft_ms = self.log.timings.ttft_ms.or(ttft_ms);
                    self.log.timings.generation_ms += generation_ms;
                    let error = match &other {
                        Some(StepError::Failed(m)) => Some(m.clone()),
                        Some(StepError::Stopped) => Some("stopped by the user".into()),
                        Some(StepError::TimedOut) => Some("timed out".into()),
                        None => None,
                    };
                    self.log.steps.push(Step::Model { model: label, request_ms, ttft_ms, generation_ms, tokens: counts, cost_cents: cost, finish_reason: finish, error });
                    if let Some(e) = other {
                        return Err(e);
                    }
                }
            }
            step.calls = calls.into_values().collect();
            for (i, call) in step.calls.iter_mut().enumerate() {
                // Some servers omit ids; the transcript needs one to pair results with calls.
                if call.id.is_empty() {
                    call.id = format!("call_{}_{i}", self.log.steps.len());
                }
            }
            return Ok(step);
        }
    }

    fn record_usage(&mut self, c: &Candidate, counts: TokenCounts, cost: f64) {
        match self.usage.iter_mut().find(|u| u.provider == c.provider && u.model == c.model.id) {
            Some(u) => {
                u.tokens.add(counts);
                u.cost_cents += cost;
            }
            None => self.usage.push(ModelUsage { provider: c.provider.clone(), model: c.model.id.clone(), tokens: counts, cost_cents: cost }),
        }
    }

    fn log_model_error(&mut self, label: &str, request_ms: u64, e: &LlmError) {
        self.log.steps.push(Step::Model {
            model: label.to_owned(),
            request_ms,
            ttft_ms: None,
            generation_ms: 0,
            tokens: TokenCounts::default(),
            cost_cents: 0.0,
            finish_reason: None,
            error: Some(e.to_string()),
        });
    }

    /// Moves to the next candidate if there is one; says so in the log.
    fn fall_back(&mut self, label: &str, e: &LlmError) -> bool {
        let Some(next) = self.input.candidates.get(self.candidate + 1) else { return false };
        self.log.warnings.push(format!("{label} failed ({e}); falling back to {}", next.label()));
        self.candidate += 1;
        true
    }

    async fn tool_step(&mut self, call: &ToolCall) -> ToolOutput {
        let started = Instant::now();
        let parsed: Result<Value, String> = if call.arguments.trim().is_empty() {
            Ok(json!({}))
        } else {
            serde_json::from_str(&call.arguments).map_err(|e| format!("the arguments are not valid JSON ({e}); send a JSON object"))
        };
        let arguments_for_log = parsed.clone().unwrap_or_else(|_| Value::String(log::excerpt(&call.arguments, 2000)));
        self.observer.part(json!({"type": "tool", "id": call.id, "name": call.name, "status": "running"}));
        let tool = self.input.tools.iter().find(|t| t.name() == call.name);
        let blocked = self.input.blocked.iter().find(|(n, _, _)| *n == call.name);
        let (status, result): (&str, Result<ToolOutput, String>) = match (tool, blocked, parsed) {
            (_, Some((_, status, reason)), _) => (if status == "denied" { "denied" } else { "unavailable" }, Err(format!("the tool '{}' {reason}", call.name))),
            (None, None, _) => ("denied", Err(format!("this agent may not call '{}': it is not in the agent's toolNames", call.name))),
            (Some(_), None, Err(e)) => ("error", Err(e)),
            (Some(t), None, Ok(args)) => match t.call(&call.id, args, self.observer).await {
                Ok(out) => ("ok", Ok(out)),
                Err(e) => ("error", Err(e)),
            },
        };
        let duration_ms = ms(started.elapsed());
        self.log.timings.tools_ms += duration_ms;
        let output = result.unwrap_or_else(|e| ToolOutput::text(format!("Error: {e}")));
        if status != "ok" {
            self.log.warnings.push(format!("tool call '{}' {status}: {}", call.name, log::excerpt(&output.content, 300)));
        }
        if let Some(w) = &output.warning {
            self.log.warnings.push(format!("tool call '{}': {w}", call.name));
        }
        self.observer.part(json!({"type": "tool", "id": call.id, "name": call.name, "status": if output.pause { "waiting" } else { status }, "durationMs": duration_ms}));
        self.log.steps.push(Step::Tool {
            name: call.name.clone(),
            call_id: call.id.clone(),
            arguments: arguments_for_log,
            status: status.into(),
            result: log::excerpt(&output.content, 2000),
            duration_ms,
        });
        output
    }
}

fn tool_result(call_id: &str, content: &str) -> Message {
    let mut m = Message::text(Role::Tool, content);
    m.tool_call_id = Some(call_id.to_owned());
    m
}

/// The messages after the system message.
fn transcript(messages: &[Message]) -> Vec<Message> {
    messages.iter().filter(|m| m.role != Role::System).cloned().collect()
}

/// The user's question as the model sees it: text, text-like attachments inlined, images as parts.
pub fn question(text: &str, inlined: &[(String, String)], images: &[String]) -> Message {
    let mut body = text.to_owned();
    for (name, content) in inlined {
        body.push_str(&format!("\n\n<attachment name=\"{name}\">\n{content}\n</attachment>"));
    }
    let mut parts = vec![Part::Text(body)];
    parts.extend(images.iter().map(|url| Part::Image(url.clone())));
    Message { role: Role::User, parts, tool_calls: Vec::new(), tool_call_id: None }
}
