//! One run, from preparation to the stored answer: resolve the agent and its models (with
//! fallbacks), rebuild the conversation of the branch (attachments inlined or as images), bind
//! the tools the agent lists and the user's role allows, run the loop while streaming into the
//! thread's live channel, then store the answer, the run log and the usage ledger together.

use crate::host::ThreadHost;
use crate::knowledge::OrgKnowledge;
use crate::live::Channel;
use crate::ChatService;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tale_agent::runtime::{Candidate, ContextKnowledge, Ending, RunInput, RunObserver, RunOutcome};
use tale_agent::tools::knowledge::{mode_reason, query_of, requested_tools, KnowledgeSettings};
use tale_agent::tools::{builtin_tools, knowledge_tools, permission_of, unavailable_reason, Citations, KnowledgeHost, PartSink};
use tale_agent::Agent;
use tale_core::chat::{branch, ChatMessage, MessageRole, MessageStatus, Run, RunStatus, Thread, TokenCounts, UsageEntry};
use tale_core::id::{new_id, now_ms};
use tale_core::role::Role;
use tale_llm::client::{Message, Role as LlmRole};
use tale_llm::{ModelRef, Tag};
use tokio_util::sync::CancellationToken;

/// Text attachments larger than this are not inlined into the prompt.
const MAX_INLINE_BYTES: usize = 1024 * 1024;
/// Images larger than this are not sent to vision models.
const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;

pub(crate) struct RunJob {
    pub thread: Thread,
    pub run: Run,
    /// The answer being written (status `streaming`).
    pub message: ChatMessage,
    pub user_name: String,
    pub user_email: String,
    pub role: Role,
    pub org_slug: String,
    pub locale: String,
    /// A paused run's transcript with the user's form answer appended.
    pub resume: Option<Vec<Message>>,
    pub queued_at: Instant,
    pub channel: Arc<Channel>,
    pub cancel: CancellationToken,
}

/// Streams the run into the thread's channel. A resumed answer continues after a blank line.
struct Observer {
    channel: Arc<Channel>,
    separate: std::sync::atomic::AtomicBool,
}

impl PartSink for Observer {
    fn part(&self, part: Value) {
        self.channel.part(part);
    }
}

impl RunObserver for Observer {
    fn text(&self, delta: &str) {
        if self.separate.swap(false, std::sync::atomic::Ordering::Relaxed) {
            self.channel.text("\n\n");
        }
        self.channel.text(delta);
    }
}

fn is_text_like(media_type: &str, name: &str) -> bool {
    media_type.starts_with("text/")
        || ["application/json", "application/yaml", "application/x-yaml", "application/xml", "application/toml", "application/javascript", "application/sql"]
            .contains(&media_type)
        || name.rsplit_once('.').is_some_and(|(_, ext)| {
            ["md", "txt", "csv", "tsv", "json", "yaml", "yml", "xml", "toml", "ini", "log", "rs", "py", "js", "ts", "go", "java", "c", "h", "cpp", "rb", "sh", "sql", "html", "css"]
                .contains(&ext.to_ascii_lowercase().as_str())
        })
}

fn is_image(media_type: &str) -> bool {
    ["image/png", "image/jpeg", "image/gif", "image/webp"].contains(&media_type)
}

/// Fills the reference's placeholders in system instructions.
fn fill_placeholders(text: &str, job: &RunJob, site_url: &str, personal: bool) -> String {
    let profile = if personal { format!("Name: {}\nE-mail: {}", job.user_name, job.user_email) } else { String::new() };
    text.replace("{{user.language}}", &job.locale)
        .replace("{{site_url}}", site_url)
        .replace("{{organization.id}}", &job.thread.org_id)
        .replace("{{user_profile}}", &profile)
}

impl ChatService {
    pub(crate) async fn execute(self: Arc<Self>, job: RunJob) {
        let outcome = match self.prepare(&job).await {
            Ok(input) => {
                let observer = Observer { channel: job.channel.clone(), separate: (job.resume.is_some() && !job.message.content.is_empty()).into() };
                self.runtime.run(input, &observer, &job.cancel).await
            }
            Err(message) => RunOutcome {
                ending: Ending::Failed(message),
                text: String::new(),
                transcript: Vec::new(),
                log: tale_agent::runtime::RunLog { agent: job.thread.agent_slug.clone(), ..Default::default() },
                usage: Vec::new(),
                model: None,
            },
        };
        self.finish(job, outcome).await;
    }

    /// The models the agent may use, in order: its `supportedModels`, each followed by its
    /// provider's `fallbackModelId` when set. References that do not resolve become warnings.
    fn candidates(&self, agent: &Agent, org_slug: &str, warnings: &mut Vec<String>) -> Vec<Candidate> {
        let snap = self.catalog.snapshot(org_slug);
        let mut refs: Vec<ModelRef> = Vec::new();
        for r in &agent.supported_models {
            refs.push(r.clone());
            if let Ok((p, m)) = snap.providers.resolve(r)
                && let Some(fallback) = &m.fallback_model_id
            {
                refs.push(ModelRef { provider: Some(p.slug.clone()), model: fallback.clone(), quant: None });
            }
        }
        let mut out: Vec<Candidate> = Vec::new();
        for r in refs {
            match snap.providers.endpoint(&snap.providers_dir, &r, &self.age_keys) {
                Ok(resolved) => {
                    if !out.iter().any(|c| c.provider == resolved.provider && c.model.id == resolved.model.id) {
                        out.push(Candidate { provider: resolved.provider, model: resolved.model, endpoint: resolved.endpoint, options: resolved.options });
                    }
                }
                Err(e) => warnings.push(format!("model '{r}' cannot be used: {e}")),
            }
        }
        out
    }

    /// The question as the model sees it: attachments inlined (text) or attached (images, for
    /// vision models); anything else is named so the model can say it cannot read it.
    async fn question(&self, m: &ChatMessage, vision: bool, warnings: &mut Vec<String>) -> Message {
        let mut inlined = Vec::new();
        let mut images = Vec::new();
        let mut notes = Vec::new();
        for a in &m.attachments {
            let record = self.store().file(&a.id).await.ok().flatten();
            let bytes = match &record {
                Some(f) => self.objects.read(&f.sha256).await.ok(),
                None => None,
            };
            let Some(bytes) = bytes else {
                warnings.push(format!("attachment '{}' could not be read", a.name));
                continue;
            };
            if is_image(&a.media_type) {
                if !vision {
                    warnings.push(format!("image '{}' was not sent: the model has no vision tag", a.name));
                    notes.push(format!("[The user attached the image '{}', but this model cannot see images.]", a.name));
                } else if bytes.len() > MAX_IMAGE_BYTES {
                    notes.push(format!("[The image '{}' is too large to send.]", a.name));
                } else {
                    images.push(format!("data:{};base64,{}", a.media_type, base64::engine::general_purpose::STANDARD.encode(&bytes)));
                }
            } else if is_text_like(&a.media_type, &a.name) && bytes.len() <= MAX_INLINE_BYTES {
                inlined.push((a.name.clone(), String::from_utf8_lossy(&bytes).into_owned()));
            } else {
                notes.push(format!("[The user attached '{}' ({}), which cannot be read in chat.]", a.name, a.media_type));
            }
        }
        let mut text = m.content.clone();
        for n in notes {
            text.push_str("\n\n");
            text.push_str(&n);
        }
        tale_agent::runtime::question(&text, &inlined, &images)
    }

    async fn prepare(&self, job: &RunJob) -> Result<RunInput, String> {
        let snap = self.catalog.snapshot(&job.org_slug);
        let agent = snap.agents.agent(&job.thread.agent_slug).cloned().ok_or_else(|| {
            format!("The agent '{}' no longer exists or its file has an error; ask an editor to check it.", job.thread.agent_slug)
        })?;
        if !agent.usable_by(job.role) {
            return Err(format!("You may no longer chat with the agent '{}'.", agent.display_name(&job.locale)));
        }
        if agent.image_generation {
            return Err("Image-generation agents need image models, which this version of Tale does not support yet.".into());
        }
        let mut warnings = Vec::new();
        let candidates = self.candidates(&agent, &job.org_slug, &mut warnings);
        if candidates.is_empty() {
            return Err(format!("No model of this agent can be used: {}", warnings.join("; ")));
        }
        let mut question = None;
        let history = match &job.resume {
            Some(transcript) => transcript.clone(),
            None => {
                let vision = candidates[0].model.has(Tag::Vision);
                let all = self.store().messages(&job.thread.id).await.map_err(|e| e.to_string())?;
                let parent = job.message.parent_id.as_deref();
                question = all.iter().find(|m| Some(m.id.as_str()) == parent).map(|m| m.content.clone());
                let mut history = Vec::new();
                for m in branch(&all, parent) {
                    match m.role {
                        MessageRole::User => history.push(self.question(m, vision, &mut warnings).await),
                        // Failed answers with nothing written are left out; partial ones stay.
                        MessageRole::Assistant if !m.content.trim().is_empty() => history.push(Message::text(LlmRole::Assistant, &m.content)),
                        MessageRole::Assistant => {}
                    }
                }
                history
            }
        };
        let host = Arc::new(ThreadHost::new(self.store().clone(), self.objects.clone(), &job.thread, &job.thread.user_id));
        let settings = KnowledgeSettings::of(&agent);
        // Search quality depends on it, so the run log says when search has no vectors.
        if (settings.mode.tools() || settings.mode.context())
            && let Some(status) = self.knowledge.as_ref().map(|k| k.vector_status()).filter(|s| !s.is_ready())
        {
            warnings.push(format!("knowledge: {status}"));
        }
        let knowledge: Arc<dyn KnowledgeHost> = Arc::new(OrgKnowledge::new(self.knowledge.clone(), &job.thread.org_id, &job.org_slug));
        // One numbering for the answer, shared by the tools and `context` mode.
        let citations = Arc::new(Citations::from_parts(&job.message.parts));
        let mut available = builtin_tools(host);
        available.extend(knowledge_tools(knowledge.clone(), citations.clone(), &settings));
        let mut tools = Vec::new();
        let mut blocked = Vec::new();
        for name in &requested_tools(&agent) {
            let Some(permission) = permission_of(name) else { continue };
            if !permission.allows(job.role) {
                blocked.push((name.clone(), "denied".to_owned(), "is not allowed for your role"));
            } else if let Some(reason) = unavailable_reason(name).or_else(|| mode_reason(&agent, name)) {
                blocked.push((name.clone(), "unavailable".to_owned(), reason));
            } else if let Some(t) = available.iter().find(|t| t.name() == name) {
                tools.push(t.clone());
            }
        }
        let system = fill_placeholders(agent.system_instructions(&job.locale), job, &self.config.site_url, agent.personalization);
        // A resumed run's transcript already holds the passages of its turn.
        let read_knowledge = tale_core::permission::Permission::KnowledgeRead.allows(job.role);
        let context = match question.filter(|_| settings.mode.context()) {
            Some(_) if !read_knowledge => {
                warnings.push("knowledge context: not added, as your role may not read the knowledge base".into());
                None
            }
            Some(q) => Some(ContextKnowledge { host: knowledge, query: query_of(&q), top_k: settings.context_top_k, citations, refusal: settings.refusal }),
            None => None,
        };
        Ok(RunInput {
            agent_slug: agent.slug.clone(),
            system,
            history,
            candidates,
            tools,
            blocked,
            max_steps: agent.max_steps,
            timeout: Duration::from_millis(agent.timeout_ms),
            output_reserve: agent.output_reserve,
            queued_at: job.queued_at,
            warnings,
            knowledge: context,
        })
    }

    async fn finish(&self, job: RunJob, outcome: RunOutcome) {
        // The final answer is stored before the live slot is released: a tab that subscribes in
        // between then reads it from the store, never an older batch.
        let live = job.channel.snapshot();
        let now = now_ms();
        let mut message = job.message.clone();
        message.content = match &live {
            Some(a) => a.content.clone(),
            None => outcome.text.clone(),
        };
        if let Some(a) = &live {
            message.parts = a.parts.clone();
        }
        let (status, run_status, error) = match &outcome.ending {
            Ending::Completed => (MessageStatus::Complete, RunStatus::Completed, None),
            Ending::Stopped => (MessageStatus::Stopped, RunStatus::Stopped, None),
            Ending::Waiting => (MessageStatus::Waiting, RunStatus::Waiting, None),
            Ending::Failed(m) => (MessageStatus::Failed, RunStatus::Failed, Some(m.clone())),
        };
        message.status = status;
        message.error = error.clone();
        message.model = outcome.model.clone();
        message.updated_at = now;

        let mut log = serde_json::to_value(&outcome.log).unwrap_or_else(|_| json!({}));
        if outcome.ending == Ending::Waiting {
            log["transcript"] = serde_json::to_value(&outcome.transcript).unwrap_or(Value::Null);
        }
        let mut tokens = TokenCounts::default();
        let mut cost = 0.0;
        let usage: Vec<UsageEntry> = outcome
            .usage
            .iter()
            .map(|u| {
                tokens.add(u.tokens);
                cost += u.cost_cents;
                UsageEntry {
                    id: new_id(),
                    org_id: job.thread.org_id.clone(),
                    user_id: job.run.user_id.clone(),
                    agent_slug: Some(job.thread.agent_slug.clone()),
                    provider: u.provider.clone(),
                    model: u.model.clone(),
                    run_id: Some(job.run.id.clone()),
                    tokens: u.tokens,
                    cost_cents: u.cost_cents,
                    at: now,
                }
            })
            .collect();
        let (provider, model) = match outcome.model.as_deref().and_then(|m| m.split_once(':')) {
            Some((p, m)) => (Some(p.to_owned()), Some(m.to_owned())),
            None => (None, None),
        };
        let run = Run { provider, model, status: run_status, finished_at: Some(now), tokens, cost_cents: cost, error, log, ..job.run.clone() };
        // A failed write is retried once: the answer is in memory and should not be lost to a
        // momentary lock.
        let mut saved = self.store().finish_turn(&message, &run, &usage).await;
        if let Err(e) = &saved {
            tracing::warn!(error = %e, run = %run.id, "could not store the finished answer; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            saved = self.store().finish_turn(&message, &run, &usage).await;
        }
        if let Err(e) = saved {
            tracing::error!(error = %e, run = %run.id, "the finished answer could not be stored");
        }
        job.channel.end();
        if let Some(e) = &run.error {
            tracing::info!(run = %run.id, agent = %run.agent_slug, error = %e, "run failed");
        }
        let all = self.store().messages(&job.thread.id).await.unwrap_or_default();
        let view = self.view(&message, &all, None);
        self.publish(&job.thread.id, json!({"type": "message", "thread": job.thread.id, "message": view, "final": true}));
    }
}
