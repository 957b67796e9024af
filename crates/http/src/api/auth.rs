//! Setup, sign-in, sign-out, the current account and password changes.

use super::UserView;
use crate::auth::{clear_cookie, session_cookie, Authed, Meta};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tale_core::service::{AuthVia, SignedIn};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupBody {
    pub token: String,
    pub email: String,
    pub name: String,
    pub password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignInBody {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordBody {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptBody {
    pub name: Option<String>,
    pub password: String,
}

/// The response to every successful sign-in: the cookie, plus what the UI needs next.
pub(crate) async fn signed_in_response(state: &AppState, signed_in: SignedIn) -> Result<Response, ApiError> {
    let orgs = state.services.store.orgs_for_user(&signed_in.user.id).await?;
    let home = orgs
        .iter()
        .find(|(_, r)| *r != tale_core::role::Role::Disabled)
        .map(|(o, _)| format!("/dashboard/{}", o.slug))
        .unwrap_or_else(|| "/account".into());
    let redirect = if signed_in.must_change_password { "/account".to_owned() } else { home };
    let max_age = (signed_in.expires_at - tale_core::id::now_ms() + 999) / 1000;
    let cookie = session_cookie(state.config.is_https(), &signed_in.token, max_age);
    let body = json!({
        "user": UserView::from(&signed_in.user),
        "csrfToken": signed_in.csrf_token,
        "mustChangePassword": signed_in.must_change_password,
        "redirect": redirect,
    });
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

pub async fn setup_status(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let needed = state.services.store.count_users().await? == 0;
    Ok(Json(json!({"setupNeeded": needed})))
}

pub async fn setup(State(state): State<AppState>, Meta(meta): Meta, ApiJson(body): ApiJson<SetupBody>) -> Result<Response, ApiError> {
    let signed_in = state.services.setup(&body.token, &body.email, &body.name, &body.password, &meta).await?;
    signed_in_response(&state, signed_in).await
}

pub async fn sign_in(State(state): State<AppState>, Meta(meta): Meta, ApiJson(body): ApiJson<SignInBody>) -> Result<Response, ApiError> {
    let signed_in = state.services.sign_in(&body.email, &body.password, &meta).await?;
    signed_in_response(&state, signed_in).await
}

pub async fn sign_out(State(state): State<AppState>, a: Authed) -> Result<Response, ApiError> {
    state.services.sign_out(&a.principal, &a.meta).await?;
    Ok(([(header::SET_COOKIE, clear_cookie(state.config.is_https()))], StatusCode::NO_CONTENT).into_response())
}

pub async fn sign_out_everywhere(State(state): State<AppState>, a: Authed) -> Result<Response, ApiError> {
    let ended = state.services.sign_out_everywhere(&a.principal, &a.meta).await?;
    Ok(([(header::SET_COOKIE, clear_cookie(state.config.is_https()))], Json(json!({"sessionsEnded": ended}))).into_response())
}

pub async fn me(State(state): State<AppState>, a: Authed) -> Result<Json<serde_json::Value>, ApiError> {
    let orgs = state.services.orgs_for(&a.principal).await?;
    let orgs: Vec<_> = orgs.iter().map(|(o, r)| json!({"slug": o.slug, "name": o.name, "role": r})).collect();
    let csrf = match &a.principal.via {
        AuthVia::Session { csrf_token, .. } => Some(csrf_token.clone()),
        AuthVia::ApiKey { .. } => None,
    };
    Ok(Json(json!({
        "user": UserView::from(&a.principal.user),
        "orgs": orgs,
        "csrfToken": csrf,
        "mustChangePassword": a.principal.user.must_change_password,
    })))
}

pub async fn change_password(State(state): State<AppState>, a: Authed, ApiJson(body): ApiJson<PasswordBody>) -> Result<StatusCode, ApiError> {
    state.services.change_password(&a.principal, &body.current_password, &body.new_password, &a.meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn invitation(State(state): State<AppState>, axum::extract::Path(token): axum::extract::Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let view = state.services.invitation_view(&token).await?;
    Ok(Json(serde_json::to_value(&view).map_err(|e| tale_core::Error::Internal(e.to_string()))?))
}

pub async fn accept_invitation(
    State(state): State<AppState>,
    Meta(meta): Meta,
    axum::extract::Path(token): axum::extract::Path<String>,
    ApiJson(body): ApiJson<AcceptBody>,
) -> Result<Response, ApiError> {
    let signed_in = state.services.accept_invitation(&token, body.name.as_deref(), &body.password, &meta).await?;
    signed_in_response(&state, signed_in).await
}
