//! Organisations, members, roles and invitations.

use crate::auth::{Authed, Granted};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tale_core::role::Role;
use tale_core::rules::Assignment;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrgBody {
    pub slug: String,
    pub name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteBody {
    pub email: String,
    pub role: Role,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleBody {
    pub role: Role,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferBody {
    pub user_id: String,
}

fn changes(list: &[Assignment]) -> Value {
    Value::Array(list.iter().map(|c| json!({"userId": c.user_id, "from": c.from, "to": c.to})).collect())
}

pub async fn list(State(state): State<AppState>, a: Authed) -> Result<Json<Value>, ApiError> {
    let orgs = state.services.orgs_for(&a.principal).await?;
    Ok(Json(json!({"organizations": orgs.iter().map(|(o, r)| json!({"id": o.id, "slug": o.slug, "name": o.name, "role": r})).collect::<Vec<_>>()})))
}

pub async fn create(State(state): State<AppState>, g: Granted, ApiJson(body): ApiJson<CreateOrgBody>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let org = state.services.create_org(&g.principal, &g.grant, &body.slug, &body.name, &g.meta).await?;
    let redirect = format!("/dashboard/{}", org.slug);
    Ok((StatusCode::CREATED, Json(json!({"id": org.id, "slug": org.slug, "name": org.name, "redirect": redirect}))))
}

pub async fn get(State(state): State<AppState>, g: Granted) -> Result<Json<Value>, ApiError> {
    let org = state.services.org(&g.grant.org_slug).await?;
    Ok(Json(json!({"id": org.id, "slug": org.slug, "name": org.name, "role": g.grant.role})))
}

pub async fn members(State(state): State<AppState>, g: Granted) -> Result<Json<Value>, ApiError> {
    Ok(Json(members_value(&state, &g.grant).await?))
}

pub(crate) async fn members_value(state: &AppState, grant: &tale_core::permission::Grant) -> Result<Value, ApiError> {
    let members = state.services.members(grant).await?;
    Ok(json!({"members": members}))
}

pub async fn invitations(State(state): State<AppState>, g: Granted) -> Result<Json<Value>, ApiError> {
    let list = state.services.invitations(&g.grant).await?;
    Ok(Json(json!({"invitations": list})))
}

pub async fn invite(State(state): State<AppState>, g: Granted, ApiJson(body): ApiJson<InviteBody>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = state.services.invite(&g.principal, &g.grant, &body.email, body.role, &g.meta).await?;
    Ok((StatusCode::CREATED, Json(json!({"invitation": created.invitation, "link": created.link}))))
}

pub async fn revoke_invitation(State(state): State<AppState>, g: Granted, Path((_org, id)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    state.services.revoke_invitation(&g.principal, &g.grant, &id, &g.meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn change_role(
    State(state): State<AppState>,
    g: Granted,
    Path((_org, user_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<Value>, ApiError> {
    let list = state.services.change_role(&g.principal, &g.grant, &user_id, body.role, &g.meta).await?;
    Ok(Json(json!({"changes": changes(&list)})))
}

pub async fn remove(State(state): State<AppState>, g: Granted, Path((_org, user_id)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let list = state.services.remove_member(&g.principal, &g.grant, &user_id, &g.meta).await?;
    Ok(Json(json!({"changes": changes(&list)})))
}

pub async fn transfer(State(state): State<AppState>, g: Granted, ApiJson(body): ApiJson<TransferBody>) -> Result<Json<Value>, ApiError> {
    let list = state.services.transfer_ownership(&g.principal, &g.grant, &body.user_id, &g.meta).await?;
    Ok(Json(json!({"changes": changes(&list)})))
}
