//! Personal API keys.

use crate::auth::Granted;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKeyBody {
    #[serde(default)]
    pub name: String,
}

pub async fn list(State(state): State<AppState>, g: Granted) -> Result<Json<Value>, ApiError> {
    let keys = state.services.api_keys(&g.principal, &g.grant).await?;
    Ok(Json(json!({"apiKeys": keys})))
}

pub async fn create(State(state): State<AppState>, g: Granted, ApiJson(body): ApiJson<CreateKeyBody>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = state.services.create_api_key(&g.principal, &g.grant, &body.name, &g.meta).await?;
    let value = serde_json::to_value(&created).map_err(|e| tale_core::Error::Internal(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(value)))
}

pub async fn revoke(State(state): State<AppState>, g: Granted, Path((_org, id)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    state.services.revoke_api_key(&g.principal, &g.grant, &id, &g.meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
