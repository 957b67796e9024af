//! Providers and agents as configured in `TALE_CONFIG_DIR`, per organisation. Secrets never
//! appear; files that did not load are listed with their reasons for those who manage them.

use crate::auth::Granted;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use tale_core::permission::Permission;
use tale_llm::loader::Skipped;

fn skipped(list: &[Skipped]) -> Value {
    list.iter()
        .map(|s| json!({"file": s.file.file_name().map(|n| n.to_string_lossy().into_owned()), "reasons": s.reasons}))
        .collect()
}

pub async fn providers(State(state): State<AppState>, g: Granted) -> Result<Json<Value>, ApiError> {
    let snap = state.catalog.snapshot(&g.grant.org_slug);
    let providers: Vec<Value> = snap
        .providers
        .providers
        .iter()
        .map(|p| {
            let secrets = snap.providers_dir.join(format!("{}.secrets.json", p.slug)).exists();
            json!({
                "slug": p.slug, "displayName": p.display_name, "description": p.description, "baseUrl": p.base_url,
                "defaults": p.defaults, "hasSecrets": secrets, "warnings": p.warnings,
                "models": p.models.iter().map(|m| json!({
                    "id": m.id, "displayName": m.display_name,
                    "tags": m.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({"providers": providers, "skipped": skipped(&snap.providers.skipped)})))
}

/// Agents the caller may chat with (or, for those who manage agents, all of them).
pub async fn agents(State(state): State<AppState>, g: Granted, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let snap = state.catalog.snapshot(&g.grant.org_slug);
    let manages = Permission::AgentsManage.allows(g.grant.role);
    let lang = crate::api::chat::locale(&headers);
    let agents: Vec<Value> = snap
        .agents
        .agents
        .iter()
        .filter(|a| a.usable_by(g.grant.role))
        .map(|a| {
            json!({
                "slug": a.slug,
                "displayName": a.display_name(&lang),
                "description": a.localized_description(&lang),
                "conversationStarters": a.conversation_starters(&lang),
                "visibleInChat": a.visible_in_chat,
                "models": a.supported_models.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "tools": a.tool_names,
                "imageGeneration": a.image_generation,
                "warnings": if manages { json!(a.warnings) } else { json!([]) },
            })
        })
        .collect();
    let skipped = if manages { skipped(&snap.agents.skipped) } else { json!([]) };
    Ok(Json(json!({"agents": agents, "skipped": skipped})))
}
