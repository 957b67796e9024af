//! Page handlers for chat, agents, providers, run logs and usage: gather through `tale-chat`
//! and the catalog, render with `tale-ui`.

use crate::api::chat::{caller, locale};
use crate::auth::{Authed, Granted};
use crate::pages::{html, org_of, PageResult, Viewer};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use tale_chat::ThreadView;
use tale_core::chat::UsageGroup;
use tale_core::Error;
use tale_ui::chat::{self as chat_ui, AgentChoice, MessageItem, ThreadPage};
use tale_ui::config::{self as config_ui, AgentRow, ProviderRow, SkippedFile};
use tale_ui::Nav;

fn items(view: &ThreadView) -> Vec<MessageItem<'_>> {
    view.messages.iter().map(|m| MessageItem { message: &m.message, html: m.html.as_deref(), versions: &m.versions }).collect()
}

fn skipped(list: &[tale_llm::Skipped]) -> Vec<SkippedFile<'_>> {
    list.iter().map(|s| SkippedFile { file: s.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), reasons: &s.reasons }).collect()
}

#[derive(Deserialize)]
pub struct ChatQuery {
    q: Option<String>,
    agent: Option<String>,
}

pub async fn chat_home(State(state): State<AppState>, g: Granted, headers: HeaderMap, Query(q): Query<ChatQuery>) -> PageResult {
    let lang = locale(&headers);
    let org = org_of(&state, &g.grant).await?;
    let query = q.q.unwrap_or_default();
    let threads = state.chat.threads(&caller(&g, &lang), Some(&query), 100).await?;
    let snap = state.catalog.snapshot(&g.grant.org_slug);
    let agents: Vec<AgentChoice> = snap
        .agents
        .agents
        .iter()
        .filter(|a| a.visible_in_chat && a.usable_by(g.grant.role))
        .map(|a| AgentChoice { slug: &a.slug, name: a.display_name(&lang), description: a.localized_description(&lang), starters: a.conversation_starters(&lang) })
        .collect();
    let role = g.grant.role;
    let viewer = Viewer::load(&state, g.principal).await?;
    Ok(html(chat_ui::chat_home(&viewer.shell("Chat", Some((&org, role)), Nav::Chat, &[]), &threads, &query, &agents, q.agent.as_deref())))
}

pub async fn chat_thread(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>) -> PageResult {
    let lang = locale(&headers);
    let org = org_of(&state, &g.grant).await?;
    let c = caller(&g, &lang);
    let view = state.chat.thread(&c, &id).await?;
    let threads = state.chat.threads(&c, None, 100).await?;
    let messages = items(&view);
    let page = ThreadPage { thread: &view.thread, agent_name: &view.agent_name, messages: &messages, shared: view.shared, live: view.live };
    let role = g.grant.role;
    let viewer = Viewer::load(&state, g.principal.clone()).await?;
    Ok(html(chat_ui::chat_thread(&viewer.shell(&view.thread.title, Some((&org, role)), Nav::Chat, &[]), &threads, &page)))
}

pub async fn shared(State(state): State<AppState>, a: Authed, headers: HeaderMap, Path(token): Path<String>) -> PageResult {
    let view = crate::api::chat::shared_view(&state, &a.principal, &token, &locale(&headers)).await?;
    let org = state.services.store.org_by_id(&view.thread.org_id).await?.ok_or(Error::NotFound("shared chat"))?;
    let messages = items(&view);
    let page = ThreadPage { thread: &view.thread, agent_name: &view.agent_name, messages: &messages, shared: true, live: false };
    let viewer = Viewer::load(&state, a.principal).await?;
    Ok(html(chat_ui::shared(&viewer.shell(&view.thread.title, None, Nav::None, &[]), &org.slug, &page)))
}

pub async fn agents(State(state): State<AppState>, g: Granted, headers: HeaderMap) -> PageResult {
    let lang = locale(&headers);
    let org = org_of(&state, &g.grant).await?;
    let snap = state.catalog.snapshot(&g.grant.org_slug);
    let rows: Vec<AgentRow> = snap
        .agents
        .agents
        .iter()
        .map(|a| AgentRow {
            slug: &a.slug,
            name: a.display_name(&lang),
            visible: a.visible_in_chat,
            model: a.supported_models.first().map(ToString::to_string),
            tools: a.tool_names.len(),
            warnings: &a.warnings,
        })
        .collect();
    let role = g.grant.role;
    let viewer = Viewer::load(&state, g.principal).await?;
    Ok(html(config_ui::agents(&viewer.shell("Agents", Some((&org, role)), Nav::Agents, &[]), &rows, &skipped(&snap.agents.skipped))))
}

pub async fn agent(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, slug)): Path<(String, String)>) -> PageResult {
    let lang = locale(&headers);
    let org = org_of(&state, &g.grant).await?;
    let detail = state.chat.agent_detail(&caller(&g, &lang), &slug).await?;
    let history: Vec<(i64, u64)> = detail.history.iter().map(|v| (v.version, v.size)).collect();
    let tools: Vec<(&str, bool)> = tale_agent::tools::TOOLS.iter().map(|(n, _)| (*n, tale_agent::tools::unavailable_reason(n).is_none())).collect();
    let editor = config_ui::AgentEditor {
        slug: &detail.slug,
        document: &detail.document,
        warnings: &detail.warnings,
        unavailable: &detail.unavailable_tools,
        history: &history,
        tools: &tools,
    };
    let role = g.grant.role;
    let viewer = Viewer::load(&state, g.principal).await?;
    Ok(html(config_ui::agent(&viewer.shell(&slug, Some((&org, role)), Nav::Agents, &[]), &editor)))
}

pub async fn providers(State(state): State<AppState>, g: Granted) -> PageResult {
    let org = org_of(&state, &g.grant).await?;
    let snap = state.catalog.snapshot(&g.grant.org_slug);
    let rows: Vec<ProviderRow> = snap
        .providers
        .providers
        .iter()
        .map(|p| ProviderRow {
            slug: &p.slug,
            name: &p.display_name,
            base_url: &p.base_url,
            models: p.models.len(),
            has_key: snap.providers_dir.join(format!("{}.secrets.json", p.slug)).exists(),
        })
        .collect();
    let encrypts = !state.age_keys.is_empty();
    let role = g.grant.role;
    let viewer = Viewer::load(&state, g.principal).await?;
    Ok(html(config_ui::providers(&viewer.shell("Providers", Some((&org, role)), Nav::Providers, &[]), &rows, &skipped(&snap.providers.skipped), encrypts)))
}

pub async fn provider(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, slug)): Path<(String, String)>) -> PageResult {
    let lang = locale(&headers);
    let org = org_of(&state, &g.grant).await?;
    let d = state.chat.provider_detail(&caller(&g, &lang), &slug).await?;
    let history: Vec<(i64, u64)> = d.history.iter().map(|v| (v.version, v.size)).collect();
    let editor = config_ui::ProviderEditor {
        slug: &d.slug,
        document: &d.document,
        warnings: &d.warnings,
        key_present: d.secrets.present,
        key_encrypted: d.secrets.encrypted,
        key_problem: d.secrets.problem.as_deref(),
        history: &history,
        encrypts: !state.age_keys.is_empty(),
    };
    let role = g.grant.role;
    let viewer = Viewer::load(&state, g.principal).await?;
    Ok(html(config_ui::provider(&viewer.shell(&slug, Some((&org, role)), Nav::Providers, &[]), &editor)))
}

pub async fn run(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>) -> PageResult {
    let lang = locale(&headers);
    let org = org_of(&state, &g.grant).await?;
    let run = state.chat.run(&caller(&g, &lang), &id).await?;
    let role = g.grant.role;
    let viewer = Viewer::load(&state, g.principal).await?;
    Ok(html(chat_ui::run(&viewer.shell("Run log", Some((&org, role)), Nav::Chat, &[]), &run)))
}

#[derive(Deserialize)]
pub struct UsageQuery {
    by: Option<String>,
    days: Option<u32>,
}

pub async fn usage(State(state): State<AppState>, g: Granted, headers: HeaderMap, Query(q): Query<UsageQuery>) -> PageResult {
    let lang = locale(&headers);
    let org = org_of(&state, &g.grant).await?;
    let by: UsageGroup = q.by.as_deref().unwrap_or("model").parse()?;
    let days = q.days.unwrap_or(30).clamp(1, 3650);
    let since = tale_core::id::now_ms() - i64::from(days) * 86_400_000;
    let totals = state.chat.usage_totals(&caller(&g, &lang), since, by).await?;
    let members = state.services.members(&g.grant).await?;
    let names = |key: &str| match by {
        UsageGroup::User => members.iter().find(|m| m.user_id == key).map_or_else(|| key.to_owned(), |m| m.email.clone()),
        _ => key.to_owned(),
    };
    let role = g.grant.role;
    let viewer = Viewer::load(&state, g.principal).await?;
    Ok(html(chat_ui::usage(&viewer.shell("Usage", Some((&org, role)), Nav::Usage, &[]), by.as_str(), days, &totals, &names)))
}

pub async fn knowledge(State(state): State<AppState>, g: Granted) -> PageResult {
    let org = org_of(&state, &g.grant).await?;
    let docs = state.knowledge.meta.documents(&g.grant.org_id, "/", 1000).await.map_err(|e| Error::Internal(e.to_string()))?;
    let rows: Vec<tale_ui::knowledge::DocumentRow> = docs
        .iter()
        .map(|d| tale_ui::knowledge::DocumentRow {
            id: &d.id,
            folder: &d.folder,
            name: &d.name,
            title: d.title.as_deref(),
            status: &d.status,
            error: d.error.as_deref(),
            chunks: d.chunk_count,
            size: d.size,
            updated_at: d.updated_at,
        })
        .collect();
    let can_write = tale_core::permission::Permission::KnowledgeWrite.allows(g.grant.role);
    let role = g.grant.role;
    let viewer = Viewer::load(&state, g.principal).await?;
    Ok(html(tale_ui::knowledge::knowledge(&viewer.shell("Knowledge", Some((&org, role)), Nav::Knowledge, &[]), &rows, can_write)))
}

#[derive(Deserialize)]
pub struct DocumentQuery {
    /// The cited chunk to mark.
    chunk: Option<String>,
    /// The first passage shown (from 0); by default a little before the marked one.
    from: Option<i64>,
}

/// Passages shown per page of a document.
const DOCUMENT_PAGE: u32 = 10;

/// A document's passages with the cited one marked: where a citation's link leads.
pub async fn knowledge_document(State(state): State<AppState>, g: Granted, Path((_, id)): Path<(String, String)>, Query(q): Query<DocumentQuery>) -> PageResult {
    let internal = |e: tale_knowledge::Error| Error::Internal(e.to_string());
    let org = org_of(&state, &g.grant).await?;
    let meta = &state.knowledge.meta;
    let doc = meta.document(&id).await.map_err(internal)?.filter(|d| d.org_id == g.grant.org_id).ok_or(Error::NotFound("document"))?;
    let marked = match &q.chunk {
        Some(c) => meta.chunks(std::slice::from_ref(c)).await.map_err(internal)?.into_iter().find(|c| c.document_id == doc.id),
        None => None,
    };
    let from = q.from.or(marked.as_ref().map(|c| c.position - 2)).unwrap_or(0).max(0);
    let chunks = meta.chunk_range(&doc.id, from, DOCUMENT_PAGE).await.map_err(internal)?;
    let rows: Vec<tale_ui::knowledge::ChunkRow> =
        chunks.iter().map(|c| tale_ui::knowledge::ChunkRow { id: &c.id, position: c.position, page: c.page, section: &c.section, text: &c.text }).collect();
    let view = tale_ui::knowledge::DocumentPage {
        id: &doc.id,
        name: &doc.name,
        title: doc.title.as_deref(),
        folder: &doc.folder,
        status: &doc.status,
        chunk_count: doc.chunk_count,
        chunks: &rows,
        marked: marked.as_ref().map(|c| c.id.as_str()),
        missing: q.chunk.is_some() && marked.is_none(),
        from,
        page_size: i64::from(DOCUMENT_PAGE),
    };
    let role = g.grant.role;
    let viewer = Viewer::load(&state, g.principal).await?;
    Ok(html(tale_ui::knowledge::document(&viewer.shell(doc.title.as_deref().unwrap_or(&doc.name), Some((&org, role)), Nav::Knowledge, &[]), &view)))
}
