//! Chat over JSON: threads, turns, stop, versions, forms, share links, uploads and downloads,
//! artifacts, run logs and usage. Each handler builds a [`Caller`] and calls `tale-chat`.

use crate::auth::Granted;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tale_chat::turns::NewMessage;
use tale_chat::Caller;
use tale_core::chat::UsageGroup;
use tale_core::Error;

/// The caller's language: the first tag of `Accept-Language`, else English.
pub fn locale(headers: &HeaderMap) -> String {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|t| t.split(';').next().unwrap_or("").trim().to_owned())
        .filter(|t| !t.is_empty() && t != "*" && t.len() <= 35)
        .unwrap_or_else(|| "en".into())
}

pub fn caller<'a>(g: &'a Granted, locale: &'a str) -> Caller<'a> {
    Caller { principal: &g.principal, grant: &g.grant, meta: &g.meta, locale }
}

type ApiResult = Result<Response, ApiError>;

fn ok<T: serde::Serialize>(v: T) -> ApiResult {
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    limit: Option<u32>,
}

pub async fn list(State(state): State<AppState>, g: Granted, headers: HeaderMap, Query(q): Query<ListQuery>) -> ApiResult {
    let lang = locale(&headers);
    let threads = state.chat.threads(&caller(&g, &lang), q.q.as_deref(), q.limit.unwrap_or(50)).await?;
    ok(json!({"threads": threads}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateThread {
    agent: String,
    title: Option<String>,
    message: Option<String>,
    #[serde(default)]
    attachments: Vec<String>,
}

/// Creates a thread; with `message`, also sends it (the title comes from it).
pub async fn create(State(state): State<AppState>, g: Granted, headers: HeaderMap, ApiJson(body): ApiJson<CreateThread>) -> ApiResult {
    let lang = locale(&headers);
    let c = caller(&g, &lang);
    match body.message {
        Some(content) => {
            let started = state.chat.start_thread(&c, &body.agent, NewMessage { content, attachments: body.attachments }).await?;
            Ok((StatusCode::CREATED, Json(started)).into_response())
        }
        None => {
            let thread = state.chat.create_thread(&c, &body.agent, body.title.as_deref()).await?;
            Ok((StatusCode::CREATED, Json(json!({"thread": thread}))).into_response())
        }
    }
}

pub async fn get(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    ok(state.chat.thread(&caller(&g, &lang), &id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    title: String,
}

pub async fn rename(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>, ApiJson(body): ApiJson<Rename>) -> ApiResult {
    let lang = locale(&headers);
    ok(json!({"thread": state.chat.rename_thread(&caller(&g, &lang), &id, &body.title).await?}))
}

pub async fn delete(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    state.chat.delete_thread(&caller(&g, &lang), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn share(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    ok(json!({"url": state.chat.share_thread(&caller(&g, &lang), &id).await?}))
}

pub async fn unshare(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    state.chat.unshare_thread(&caller(&g, &lang), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    #[serde(default)]
    content: String,
    #[serde(default)]
    attachments: Vec<String>,
}

pub async fn send(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>, ApiJson(body): ApiJson<Send>) -> ApiResult {
    let lang = locale(&headers);
    let started = state.chat.send(&caller(&g, &lang), &id, NewMessage { content: body.content, attachments: body.attachments }).await?;
    Ok((StatusCode::CREATED, Json(started)).into_response())
}

pub async fn stop(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    ok(json!({"stopped": state.chat.stop(&caller(&g, &lang), &id).await?}))
}

pub async fn regenerate(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id, mid)): Path<(String, String, String)>) -> ApiResult {
    let lang = locale(&headers);
    let started = state.chat.regenerate(&caller(&g, &lang), &id, &mid).await?;
    Ok((StatusCode::CREATED, Json(started)).into_response())
}

pub async fn edit(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id, mid)): Path<(String, String, String)>, ApiJson(body): ApiJson<Send>) -> ApiResult {
    let lang = locale(&headers);
    let started = state.chat.edit(&caller(&g, &lang), &id, &mid, NewMessage { content: body.content, attachments: body.attachments }).await?;
    Ok((StatusCode::CREATED, Json(started)).into_response())
}

pub async fn select(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id, mid)): Path<(String, String, String)>) -> ApiResult {
    let lang = locale(&headers);
    ok(state.chat.select(&caller(&g, &lang), &id, &mid).await?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FormAnswer {
    call_id: String,
    values: Value,
}

pub async fn answer_form(
    State(state): State<AppState>,
    g: Granted,
    headers: HeaderMap,
    Path((_, id, mid)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<FormAnswer>,
) -> ApiResult {
    let lang = locale(&headers);
    let started = state.chat.answer_form(&caller(&g, &lang), &id, &mid, &body.call_id, body.values).await?;
    Ok((StatusCode::CREATED, Json(started)).into_response())
}

pub async fn thread_runs(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    ok(json!({"runs": state.chat.thread_runs(&caller(&g, &lang), &id).await?}))
}

pub async fn run(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    ok(json!({"run": state.chat.run(&caller(&g, &lang), &id).await?}))
}

#[derive(Deserialize)]
pub struct RunsQuery {
    limit: Option<u32>,
}

pub async fn recent_runs(State(state): State<AppState>, g: Granted, headers: HeaderMap, Query(q): Query<RunsQuery>) -> ApiResult {
    let lang = locale(&headers);
    ok(json!({"runs": state.chat.recent_runs(&caller(&g, &lang), q.limit.unwrap_or(100)).await?}))
}

#[derive(Deserialize)]
pub struct UsageQuery {
    by: Option<String>,
    days: Option<u32>,
}

pub async fn usage(State(state): State<AppState>, g: Granted, headers: HeaderMap, Query(q): Query<UsageQuery>) -> ApiResult {
    let lang = locale(&headers);
    let by: UsageGroup = q.by.as_deref().unwrap_or("model").parse().map_err(|_| Error::invalid("by must be user, agent or model"))?;
    let days = q.days.unwrap_or(30).clamp(1, 3650);
    let since = tale_core::id::now_ms() - i64::from(days) * 86_400_000;
    ok(json!({"by": by.as_str(), "days": days, "totals": state.chat.usage_totals(&caller(&g, &lang), since, by).await?}))
}

#[derive(Deserialize)]
pub struct VersionQuery {
    version: Option<i64>,
}

pub async fn artifact(
    State(state): State<AppState>,
    g: Granted,
    headers: HeaderMap,
    Path((_, id, aid)): Path<(String, String, String)>,
    Query(q): Query<VersionQuery>,
) -> ApiResult {
    let lang = locale(&headers);
    let a = state.chat.artifact(&caller(&g, &lang), &id, &aid, q.version).await?;
    let html = match a.kind.as_str() {
        "markdown" => Some(tale_ui::markdown::render(&a.content)),
        "code" | "mermaid" => {
            // A fence longer than any backtick run inside, so the content cannot end it.
            let longest = a.content.split(|c| c != '`').map(str::len).max().unwrap_or(0);
            let fence = "`".repeat(longest.max(2) + 1);
            let language = if a.kind == "mermaid" { "text" } else { a.language.as_deref().unwrap_or("") };
            Some(tale_ui::markdown::render(&format!("{fence}{language}\n{}\n{fence}", a.content)))
        }
        _ => None,
    };
    ok(json!({"artifact": a, "html": html}))
}

/// An HTML or SVG artifact as a document of its own: a sandboxed, opaque origin that may run
/// its inline scripts but can reach no network and no cookies; only this site may frame it.
pub async fn artifact_preview(
    State(state): State<AppState>,
    g: Granted,
    headers: HeaderMap,
    Path((_, id, aid)): Path<(String, String, String)>,
    Query(q): Query<VersionQuery>,
) -> ApiResult {
    let lang = locale(&headers);
    let a = state.chat.artifact(&caller(&g, &lang), &id, &aid, q.version).await?;
    let content_type = match a.kind.as_str() {
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        _ => "text/plain; charset=utf-8",
    };
    let mut response = (StatusCode::OK, a.content).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'self'",
        ),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
}

/// `POST /api/orgs/{org}/files?name=…`: the raw file as the body, its type in `Content-Type`.
pub async fn upload(State(state): State<AppState>, g: Granted, headers: HeaderMap, Query(q): Query<UploadQuery>, body: Body) -> ApiResult {
    let lang = locale(&headers);
    let limit = state.chat.config().max_upload_bytes;
    super::refuse_oversized(&headers, limit)?;
    let name = q.name.ok_or_else(|| Error::invalid("name the file: ?name=<file name>"))?;
    let media_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/octet-stream").to_owned();
    let stream = body.into_data_stream().map_err(|e| e.to_string());
    let record = state.chat.upload(&caller(&g, &lang), &name, &media_type, Box::pin(stream)).await?;
    Ok((StatusCode::CREATED, Json(json!({"file": record.as_ref()}))).into_response())
}

/// Downloads one of the caller's files. Always as an attachment, so an uploaded or generated
/// HTML file can never run in this site's origin.
pub async fn download(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, id)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    let (file, bytes) = state.chat.download(&caller(&g, &lang), &id).await?;
    let ascii: String = file.name.chars().map(|c| if c.is_ascii_alphanumeric() || ".-_ ".contains(c) { c } else { '_' }).collect();
    let encoded: String = file
        .name
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b".-_".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let disposition = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}");
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_str(&file.media_type).unwrap_or(HeaderValue::from_static("application/octet-stream")));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    Ok(response)
}

/// A thread shared by link, for a signed-in member of its organisation.
pub async fn shared(State(state): State<AppState>, a: crate::auth::Authed, headers: HeaderMap, Path(token): Path<String>) -> ApiResult {
    ok(shared_view(&state, &a.principal, &token, &locale(&headers)).await?)
}

/// The thread behind a share link, if `principal` may use chat in its organisation.
pub(crate) async fn shared_view(state: &AppState, principal: &tale_core::service::Principal, token: &str, lang: &str) -> Result<tale_chat::ThreadView, Error> {
    let services = state.services.clone();
    let principal = principal.clone();
    state.chat.shared_thread(token, lang, |slug| async move { services.grant(&principal, &slug, tale_core::permission::Permission::ChatUse).await }).await
}
