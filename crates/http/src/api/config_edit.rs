//! Editing agent files (Editors and up) and provider files with their API keys (Admins).

use crate::api::chat::{caller, locale};
use crate::auth::Granted;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

type ApiResult = Result<Response, ApiError>;

pub async fn agent(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, slug)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    Ok(Json(state.chat.agent_detail(&caller(&g, &lang), &slug).await?).into_response())
}

/// The body is the agent file itself.
pub async fn save_agent(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, slug)): Path<(String, String)>, ApiJson(doc): ApiJson<Value>) -> ApiResult {
    let lang = locale(&headers);
    Ok(Json(state.chat.save_agent(&caller(&g, &lang), &slug, &doc).await?).into_response())
}

pub async fn delete_agent(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, slug)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    state.chat.delete_agent(&caller(&g, &lang), &slug).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn agent_version(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, slug, version)): Path<(String, String, i64)>) -> ApiResult {
    let lang = locale(&headers);
    Ok(Json(json!({"version": version, "document": state.chat.agent_version(&caller(&g, &lang), &slug, version).await?})).into_response())
}

pub async fn restore_agent(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, slug, version)): Path<(String, String, i64)>) -> ApiResult {
    let lang = locale(&headers);
    Ok(Json(state.chat.restore_agent(&caller(&g, &lang), &slug, version).await?).into_response())
}

pub async fn provider(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, slug)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    Ok(Json(state.chat.provider_detail(&caller(&g, &lang), &slug).await?).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SaveProvider {
    document: Value,
    /// Set to change the key; absent or empty keeps the current one.
    api_key: Option<String>,
}

pub async fn save_provider(
    State(state): State<AppState>,
    g: Granted,
    headers: HeaderMap,
    Path((_, slug)): Path<(String, String)>,
    ApiJson(body): ApiJson<SaveProvider>,
) -> ApiResult {
    let lang = locale(&headers);
    Ok(Json(state.chat.save_provider(&caller(&g, &lang), &slug, &body.document, body.api_key.as_deref()).await?).into_response())
}

pub async fn delete_provider(State(state): State<AppState>, g: Granted, headers: HeaderMap, Path((_, slug)): Path<(String, String)>) -> ApiResult {
    let lang = locale(&headers);
    state.chat.delete_provider(&caller(&g, &lang), &slug).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
