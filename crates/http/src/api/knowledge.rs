//! The knowledge base over HTTP: upload (raw body, streamed into the object store), list with
//! statuses, delete, retry, and search (`/api/knowledge/search` for people and scripts).
//! Editors and up write; every member reads (TALE-COMPAT §4).

use crate::auth::Granted;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tale_core::audit::{AuditDraft, Category};
use tale_core::permission::Permission;
use tale_core::Error;
use tale_knowledge::bm25::Scope;

type ApiResult = Result<Response, ApiError>;

fn knowledge_error(e: tale_knowledge::Error) -> ApiError {
    match e {
        tale_knowledge::Error::TooLarge(m) => Error::PayloadTooLarge(m).into(),
        other => Error::Internal(other.to_string()).into(),
    }
}

async fn audit(state: &AppState, g: &Granted, action: &str, id: &str, name: &str, after: Option<Value>) -> Result<(), ApiError> {
    let actor = tale_core::service::Services::actor(&g.principal, Some(&g.grant));
    let draft = AuditDraft::new(&g.grant.org_id, &actor, &g.meta, Category::Data, action, "document").resource(id, name).states(None, after);
    state.services.store.append_audit(draft).await?;
    state.services.feed.wake();
    Ok(())
}

#[derive(Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
    folder: Option<String>,
}

/// `POST /api/orgs/{org}/knowledge/documents?name=…&folder=…`: the file as the body.
pub async fn upload(State(state): State<AppState>, g: Granted, headers: HeaderMap, Query(q): Query<UploadQuery>, body: Body) -> ApiResult {
    g.grant.require(Permission::KnowledgeWrite)?;
    let limit = state.knowledge.config.max_upload_bytes;
    super::refuse_oversized(&headers, limit)?;
    let name = tale_chat::files::clean_file_name(q.name.as_deref().ok_or_else(|| Error::invalid("name the file: ?name=<file name>"))?)?;
    let media_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/octet-stream").split(';').next().unwrap_or("").trim().to_owned();
    let folder = q.folder.unwrap_or_else(|| "/".into());
    let stream = body.into_data_stream().map_err(|e| e.to_string());
    let doc = state.knowledge.add(&g.grant.org_id, &folder, &name, &media_type, Box::pin(stream), &g.grant.user_id).await.map_err(knowledge_error)?;
    audit(&state, &g, "document_uploaded", &doc.id, &doc.name, Some(json!({"folder": doc.folder, "size": doc.size}))).await?;
    Ok((StatusCode::CREATED, Json(json!({"document": doc}))).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    folder: Option<String>,
    limit: Option<u32>,
}

pub async fn list(State(state): State<AppState>, g: Granted, Query(q): Query<ListQuery>) -> ApiResult {
    g.grant.require(Permission::KnowledgeRead)?;
    let folder = tale_knowledge::ingest::clean_folder(q.folder.as_deref().unwrap_or("/"));
    let docs = state.knowledge.meta.documents(&g.grant.org_id, &folder, q.limit.unwrap_or(1000).clamp(1, 10_000)).await.map_err(knowledge_error)?;
    let progress = state.knowledge.progress();
    let progress: serde_json::Map<String, Value> = docs.iter().filter_map(|d| progress.get(&d.id).map(|p| (d.id.clone(), json!(p)))).collect();
    let mut out = status(&state, &g.grant.org_id).await?;
    out["folder"] = json!(folder);
    out["documents"] = json!(docs);
    out["progress"] = Value::Object(progress);
    Ok(Json(out).into_response())
}

/// The organisation's documents by status, and how search runs (hybrid, or BM25-only and why,
/// with the background embedding's progress): what the knowledge page's live updates carry.
pub async fn status(state: &AppState, org_id: &str) -> Result<Value, Error> {
    let internal = |e: tale_knowledge::Error| Error::Internal(e.to_string());
    let counts: serde_json::Map<String, Value> =
        state.knowledge.meta.status_counts(org_id).await.map_err(internal)?.into_iter().map(|(s, n)| (s, json!(n))).collect();
    Ok(json!({"counts": counts, "search": search_status(state).await?}))
}

async fn search_status(state: &AppState) -> Result<Value, Error> {
    let vectors = state.knowledge.vector_status();
    // Asked on every change a live page hears of: count only while embedding may be under way.
    let embedded = if state.knowledge.embedding_pending() { state.knowledge.embedding_progress().await.map_err(|e| Error::Internal(e.to_string()))? } else { None };
    Ok(json!({
        "mode": if vectors.is_ready() { "hybrid" } else { "bm25" },
        "note": vectors.to_string(),
        "embedded": embedded.map(|(done, total)| json!({"done": done, "total": total})),
    }))
}

async fn own_document(state: &AppState, g: &Granted, id: &str) -> Result<tale_knowledge::store::Document, ApiError> {
    match state.knowledge.meta.document(id).await.map_err(knowledge_error)? {
        Some(d) if d.org_id == g.grant.org_id => Ok(d),
        _ => Err(Error::NotFound("document").into()),
    }
}

pub async fn delete(State(state): State<AppState>, g: Granted, Path((_, id)): Path<(String, String)>) -> ApiResult {
    g.grant.require(Permission::KnowledgeWrite)?;
    let doc = own_document(&state, &g, &id).await?;
    state.knowledge.delete(&id).await.map_err(knowledge_error)?;
    audit(&state, &g, "document_deleted", &doc.id, &doc.name, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Indexes a document again (after a failure, or to re-index).
pub async fn retry(State(state): State<AppState>, g: Granted, Path((_, id)): Path<(String, String)>) -> ApiResult {
    g.grant.require(Permission::KnowledgeWrite)?;
    let doc = own_document(&state, &g, &id).await?;
    if !state.knowledge.requeue(&id).await.map_err(knowledge_error)? {
        return Err(Error::Conflict("the document is already queued or being indexed".into()).into());
    }
    audit(&state, &g, "document_reindexed", &doc.id, &doc.name, None).await?;
    Ok(Json(json!({"queued": true})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[serde(alias = "q")]
    query: Option<String>,
    limit: Option<usize>,
    /// Only documents in these folders (and below).
    folder: Option<String>,
}

/// The longest query read; the rest of a longer one is ignored, not an error.
const MAX_QUERY_CHARS: usize = 10_000;

async fn run_search(state: &AppState, g: &Granted, r: SearchRequest) -> ApiResult {
    g.grant.require(Permission::KnowledgeRead)?;
    let query: String = r.query.unwrap_or_default().chars().take(MAX_QUERY_CHARS).collect();
    if query.trim().is_empty() {
        return Err(Error::invalid("query must not be empty").into());
    }
    let scope = Scope { folders: r.folder.map(|f| vec![tale_knowledge::ingest::clean_folder(&f)]), documents: None };
    let passages = state.knowledge.search(&g.grant.org_id, &scope, &query, r.limit.unwrap_or(10).clamp(1, 50)).await.map_err(knowledge_error)?;
    let vectors = state.knowledge.vector_status();
    let mode = if vectors.is_ready() { "hybrid" } else { "bm25" };
    Ok(Json(json!({"query": query, "mode": mode, "note": vectors.to_string(), "passages": passages})).into_response())
}

/// `GET /api/knowledge/search?q=…&limit=…&folder=…`
pub async fn search_get(State(state): State<AppState>, g: Granted, Query(r): Query<SearchRequest>) -> ApiResult {
    run_search(&state, &g, r).await
}

/// `POST /api/knowledge/search {"query", "limit"?, "folder"?}`
pub async fn search_post(State(state): State<AppState>, g: Granted, crate::json::ApiJson(r): crate::json::ApiJson<SearchRequest>) -> ApiResult {
    run_search(&state, &g, r).await
}
