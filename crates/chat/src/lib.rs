//! The chat half of the agent role. Owns threads and their message trees, turns (send,
//! regenerate, edit-and-resend, switch branch, stop, answer a form), the runs that write answers
//! through `tale-agent`'s run loop, live streaming of those answers to every subscribed tab
//! ([`live`]), the tools' access to a thread ([`host`]) and to the organisation's knowledge base
//! ([`knowledge`]), uploads and generated files, the usage ledger, and the audited editing of
//! agent and provider files ([`config`]).
//!
//! Every public operation takes a [`Caller`] whose grant came from the permission matrix and
//! checks ownership of what it touches: a thread is its creator's alone (others get `NotFound`).
//!
//! Architecture invariant: no HTTP and no HTML templates; Markdown is rendered by the function
//! the binary hands in. Storage only through `tale-core`'s store traits and the object store.

pub mod config;
pub mod files;
pub mod host;
pub mod knowledge;
pub mod live;
mod runner;
pub mod threads;
pub mod turns;
pub mod usage;

use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tale_agent::catalog::Catalog;
use tale_agent::runtime::Runtime;
use tale_core::audit::{Actor, RequestMeta};
use tale_core::chat::{ChatMessage, MessageRole, Thread};
use tale_core::permission::{Grant, Permission};
use tale_core::service::{Principal, Services};
use tale_core::store::Store;
use tale_core::{Error, Result};
use tale_objects::ObjectStore;
use tokio_util::sync::CancellationToken;

/// Who is asking, with the proof of permission the route's access check produced.
pub struct Caller<'a> {
    pub principal: &'a Principal,
    pub grant: &'a Grant,
    pub meta: &'a RequestMeta,
    /// The caller's language (`Accept-Language`), for agent texts and `{{user.language}}`.
    pub locale: &'a str,
}

impl Caller<'_> {
    fn actor(&self) -> Actor {
        Services::actor(self.principal, Some(self.grant))
    }
}

/// Limits and wiring the binary decides.
#[derive(Clone)]
pub struct ChatConfig {
    pub site_url: String,
    /// Largest upload accepted (bytes).
    pub max_upload_bytes: u64,
    /// Turns an answer's Markdown into safe HTML (`tale-ui`'s renderer in the binary); its parts
    /// carry the citations whose `[n]` markers become links to their passages.
    pub render_markdown: fn(&str, &[Value]) -> String,
    /// How often streaming answers are persisted.
    pub flush_every: Duration,
}

pub struct ChatService {
    pub services: Arc<Services>,
    pub catalog: Arc<Catalog>,
    pub age_keys: tale_secrets::AgeKeys,
    pub objects: ObjectStore,
    pub hub: Arc<live::Hub>,
    /// The knowledge base the knowledge tools and `context` mode read; `None` when it could not
    /// be opened (the tools then find nothing and say so in the run log).
    pub knowledge: Option<Arc<tale_knowledge::ingest::Knowledge>>,
    runtime: Runtime,
    config: ChatConfig,
    html_cache: Mutex<HashMap<String, (i64, Arc<str>)>>,
    /// Stops the progress flusher (after its last batch) at shutdown.
    flusher_stop: CancellationToken,
}

/// Rendered answers kept for page loads; cleared wholesale when full.
const HTML_CACHE_ENTRIES: usize = 4096;

/// A message as clients see it: with rendered HTML for answers, its place among its siblings
/// (other versions from edits and regenerations), and the live sequence number while streaming.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    #[serde(flatten)]
    pub message: ChatMessage,
    pub html: Option<Arc<str>>,
    /// Ids of this message's versions, oldest first (itself included).
    pub versions: Vec<String>,
    /// Number of the last live event applied to `content`/`parts` (0 when not streaming).
    pub seq: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadView {
    pub thread: Thread,
    pub shared: bool,
    pub agent_name: String,
    /// The branch on screen, oldest first.
    pub messages: Vec<MessageView>,
    /// Whether an answer is being written.
    pub live: bool,
}

impl ChatService {
    pub fn new(
        services: Arc<Services>,
        catalog: Arc<Catalog>,
        age_keys: tale_secrets::AgeKeys,
        objects: ObjectStore,
        knowledge: Option<Arc<tale_knowledge::ingest::Knowledge>>,
        config: ChatConfig,
    ) -> Result<Arc<Self>> {
        let client = tale_llm::client::LlmClient::new(tale_llm::client::RetryPolicy::default()).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Arc::new(ChatService {
            services,
            catalog,
            age_keys,
            objects,
            hub: Arc::new(live::Hub::default()),
            knowledge,
            runtime: Runtime::new(client),
            config,
            html_cache: Mutex::new(HashMap::new()),
            flusher_stop: CancellationToken::new(),
        }))
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.services.store
    }

    /// The shared model client (one connection pool for every call).
    pub fn llm(&self) -> &tale_llm::client::LlmClient {
        self.runtime.client()
    }

    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// After a restart: answers that were streaming when the server stopped are marked
    /// interrupted. Call once before serving.
    pub async fn recover(&self) -> Result<u64> {
        self.store().mark_interrupted(tale_core::id::now_ms()).await
    }

    /// Starts persisting streaming answers in batches (until [`ChatService::shutdown`]).
    pub fn spawn_flusher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let (hub, store, every, stop) = (self.hub.clone(), self.store().clone(), self.config.flush_every, self.flusher_stop.clone());
        tokio::spawn(live::flush_loop(hub, store, every, stop))
    }

    /// Stops every answer being written, waits (up to `grace`) for them to be stored as stopped,
    /// then stops the flusher after its last batch.
    pub async fn shutdown(&self, grace: Duration) {
        self.hub.stop_all();
        let deadline = tokio::time::Instant::now() + grace;
        while self.hub.live_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.flusher_stop.cancel();
    }

    /// The thread if the caller owns it in the grant's organisation; `NotFound` otherwise.
    async fn own_thread(&self, c: &Caller<'_>, thread_id: &str) -> Result<Thread> {
        c.grant.require(Permission::ChatUse)?;
        match self.store().thread(thread_id).await? {
            Some(t) if t.org_id == c.grant.org_id && t.user_id == c.grant.user_id => Ok(t),
            _ => Err(Error::NotFound("thread")),
        }
    }

    pub(crate) fn html(&self, m: &ChatMessage, streaming: bool) -> Option<Arc<str>> {
        if m.role != MessageRole::Assistant {
            return None;
        }
        if streaming {
            return Some(Arc::from((self.config.render_markdown)(&m.content, &m.parts)));
        }
        let mut cache = self.html_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, html)) = cache.get(&m.id)
            && *at == m.updated_at
        {
            return Some(html.clone());
        }
        let html: Arc<str> = Arc::from((self.config.render_markdown)(&m.content, &m.parts));
        if cache.len() >= HTML_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(m.id.clone(), (m.updated_at, html.clone()));
        Some(html)
    }

    /// A message as clients see it; `all` is the thread's messages (for its versions).
    pub(crate) fn view(&self, m: &ChatMessage, all: &[ChatMessage], live: Option<&live::LiveSnapshot>) -> MessageView {
        let mut message = m.clone();
        let mut seq = 0;
        if let Some(l) = live.filter(|l| l.message_id == m.id) {
            message.content = l.content.clone();
            message.parts = l.parts.clone();
            seq = l.seq;
        }
        let versions = tale_core::chat::siblings(all, m).iter().map(|s| s.id.clone()).collect();
        let html = self.html(&message, seq > 0 || live.is_some_and(|l| l.message_id == m.id));
        MessageView { message, html, versions, seq }
    }

    fn agent_name(&self, org_slug: &str, slug: &str, locale: &str) -> String {
        self.catalog.snapshot(org_slug).agents.agent(slug).map_or_else(|| slug.to_owned(), |a| a.display_name(locale).to_owned())
    }

    pub(crate) fn thread_view(&self, thread: Thread, all: &[ChatMessage], live: Option<live::LiveSnapshot>, org_slug: &str, locale: &str) -> ThreadView {
        let messages = tale_core::chat::branch(all, thread.head_id.as_deref()).into_iter().map(|m| self.view(m, all, live.as_ref())).collect();
        ThreadView {
            shared: thread.is_shared(),
            agent_name: self.agent_name(org_slug, &thread.agent_slug, locale),
            live: live.is_some(),
            messages,
            thread,
        }
    }

    /// Tells every tab on the thread to refetch it (its shape changed: a new turn, a branch switch).
    pub(crate) fn publish_changed(&self, thread_id: &str) {
        self.hub.publish(thread_id, &serde_json::json!({"type": "changed", "thread": thread_id}));
    }

    pub(crate) fn publish(&self, thread_id: &str, event: Value) {
        self.hub.publish(thread_id, &event);
    }
}
