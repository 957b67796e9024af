//! Organisation settings.

use crate::auth::Granted;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use tale_core::settings::OrgSettings;

pub async fn get(State(state): State<AppState>, g: Granted) -> Result<Json<OrgSettings>, ApiError> {
    Ok(Json(state.services.settings(&g.grant).await?))
}

pub async fn put(State(state): State<AppState>, g: Granted, ApiJson(body): ApiJson<OrgSettings>) -> Result<Json<OrgSettings>, ApiError> {
    Ok(Json(state.services.update_settings(&g.principal, &g.grant, body, &g.meta).await?))
}
