//! The OpenAI-compatible public API (`/api/v1`), for official SDKs and scripts with a
//! personal API key. Chat completions join this module with the agent runtime.

use crate::auth::Granted;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashSet;
use tale_llm::Tag;

/// `GET /api/v1/models`: the organisation's chat models, each id once (the first provider by
/// file name owns it, as model references resolve).
pub async fn models(State(state): State<AppState>, g: Granted) -> Result<Json<Value>, ApiError> {
    let snap = state.catalog.snapshot(&g.grant.org_slug);
    let mut seen = HashSet::new();
    let data: Vec<Value> = snap
        .providers
        .providers
        .iter()
        .flat_map(|p| p.models.iter().filter(|m| m.has(Tag::Chat)).map(move |m| (p, m)))
        .filter(|(_, m)| seen.insert(m.id.clone()))
        .map(|(p, m)| json!({"id": m.id, "object": "model", "created": 0, "owned_by": p.slug}))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}
