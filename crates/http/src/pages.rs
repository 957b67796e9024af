//! Page handlers: gather what a page shows through the services, then render it with `tale-ui`.

use crate::api::audit::AuditQuery;
use crate::auth::{Authed, Granted, MaybeAuthed};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tale_core::model::Org;
use tale_core::permission::{Grant, Permission};
use tale_core::role::Role;
use tale_core::service::{AuthVia, Principal};
use tale_ui::{account, org as org_ui, Nav, Shell};

pub(crate) type PageResult = Result<Response, ApiError>;

/// A same-site path: `/x`, but not `//host` or `/\host`, which browsers treat as another site.
pub fn is_local_path(p: &str) -> bool {
    // Browsers drop tabs and newlines and read `\` as `/` before parsing a URL, so any of them
    // could turn `/x` into `//host`.
    p.starts_with('/') && !p.starts_with("//") && !p.chars().any(|c| c.is_control() || c == '\\')
}

/// Percent-encodes a path for a `next=` parameter.
pub fn encode_next(target: &str) -> String {
    target
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn html(markup: tale_ui::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// Failures on pages render as pages, not JSON.
pub fn error_response(e: &ApiError) -> Response {
    let (status, _, message) = e.parts();
    let title = match status {
        StatusCode::FORBIDDEN => "Access denied",
        StatusCode::NOT_FOUND => "Not found",
        _ => "Something went wrong",
    };
    (status, Html(tale_ui::layout::error_page(status.as_u16(), title, &message).into_string())).into_response()
}

pub fn not_found_page() -> Response {
    error_response(&ApiError::Domain(tale_core::Error::NotFound("page")))
}

/// Data every signed-in page needs for its shell.
pub(crate) struct Viewer {
    principal: Principal,
    orgs: Vec<(Org, Role)>,
    csrf: String,
}

impl Viewer {
    pub(crate) async fn load(state: &AppState, principal: Principal) -> Result<Self, ApiError> {
        let orgs = state.services.orgs_for(&principal).await?;
        let csrf = match &principal.via {
            AuthVia::Session { csrf_token, .. } => csrf_token.clone(),
            AuthVia::ApiKey { .. } => String::new(),
        };
        Ok(Viewer { principal, orgs, csrf })
    }

    pub(crate) fn shell<'a>(&'a self, title: &'a str, org: Option<(&'a Org, Role)>, nav: Nav, topics: &'a [&'a str]) -> Shell<'a> {
        Shell {
            title,
            user_name: &self.principal.user.name,
            user_email: &self.principal.user.email,
            csrf_token: &self.csrf,
            orgs: &self.orgs,
            org,
            nav,
            topics,
        }
    }
}

pub(crate) async fn org_of(state: &AppState, grant: &Grant) -> Result<Org, ApiError> {
    Ok(state.services.org(&grant.org_slug).await?)
}

pub async fn home(State(state): State<AppState>, MaybeAuthed(p): MaybeAuthed) -> PageResult {
    let target = match p {
        Some(p) => match state.services.orgs_for(&p).await?.first() {
            Some((o, _)) => format!("/dashboard/{}", o.slug),
            None => "/account".into(),
        },
        None if state.services.store.count_users().await? == 0 => "/setup".into(),
        None => "/sign-in".into(),
    };
    Ok(Redirect::to(&target).into_response())
}

#[derive(Deserialize)]
pub struct SetupQuery {
    token: Option<String>,
}

pub async fn setup(State(state): State<AppState>, Query(q): Query<SetupQuery>) -> PageResult {
    if state.services.store.count_users().await? > 0 {
        return Ok(html(account::setup_closed()));
    }
    let policy = state.services.security_policy().await?.password_policy;
    Ok(html(account::setup(q.token.as_deref(), &policy)))
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

pub async fn sign_in(State(state): State<AppState>, MaybeAuthed(p): MaybeAuthed, Query(q): Query<SignInQuery>) -> PageResult {
    // Only local paths are honoured, so the parameter cannot send people elsewhere.
    let next = q.next.filter(|n| is_local_path(n)).unwrap_or_default();
    if p.is_some() {
        return Ok(Redirect::to(if next.is_empty() { "/" } else { &next }).into_response());
    }
    if state.services.store.count_users().await? == 0 {
        return Ok(Redirect::to("/setup").into_response());
    }
    Ok(html(account::sign_in(&next, None)))
}

pub async fn invite(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    let policy = state.services.security_policy().await?.password_policy;
    let view = state.services.invitation_view(&token).await.ok();
    let ui_view = view.as_ref().map(|v| account::InviteView {
        token: &token,
        email: &v.email,
        organization: &v.organization,
        role: v.role,
        account_exists: v.account_exists,
    });
    Ok(html(account::invite(ui_view.as_ref(), &policy)))
}

pub async fn account(State(state): State<AppState>, a: Authed) -> PageResult {
    let must_change = a.principal.user.must_change_password;
    let viewer = Viewer::load(&state, a.principal).await?;
    let policy = state.services.security_policy().await?.password_policy;
    Ok(html(account::account(&viewer.shell("Account", None, Nav::Account, &[]), must_change, &policy)))
}

pub async fn overview(State(state): State<AppState>, g: Granted) -> PageResult {
    let org = org_of(&state, &g.grant).await?;
    let viewer = Viewer::load(&state, g.principal).await?;
    let can_create_orgs = viewer.orgs.iter().any(|(o, r)| o.slug == Org::DEFAULT_SLUG && Permission::OrgOwnership.allows(*r));
    Ok(html(org_ui::overview(&viewer.shell(&org.name, Some((&org, g.grant.role)), Nav::Overview, &[]), can_create_orgs)))
}

pub async fn members(State(state): State<AppState>, g: Granted) -> PageResult {
    let org = org_of(&state, &g.grant).await?;
    let members = state.services.members(&g.grant).await?;
    let invitations = state.services.invitations(&g.grant).await?;
    let viewer_id = g.principal.user.id.clone();
    let viewer = Viewer::load(&state, g.principal).await?;
    let view = org_ui::MembersView {
        members: &members,
        invitations: &invitations,
        viewer_id: &viewer_id,
        can_manage: Permission::MembersManage.allows(g.grant.role),
        viewer_is_owner: g.grant.role == Role::Owner,
    };
    Ok(html(org_ui::members(&viewer.shell("Members", Some((&org, g.grant.role)), Nav::Members, &["members"]), &view)))
}

pub async fn api_keys(State(state): State<AppState>, g: Granted) -> PageResult {
    let org = org_of(&state, &g.grant).await?;
    let keys = state.services.api_keys(&g.principal, &g.grant).await?;
    let viewer = Viewer::load(&state, g.principal).await?;
    Ok(html(org_ui::api_keys(&viewer.shell("API keys", Some((&org, g.grant.role)), Nav::ApiKeys, &["api_keys"]), &keys)))
}

pub async fn audit(State(state): State<AppState>, g: Granted, Query(q): Query<AuditQuery>, RawQuery(raw): RawQuery) -> PageResult {
    let org = org_of(&state, &g.grant).await?;
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return Ok(error_response(&ApiError::Domain(e))),
    };
    let rows = state.services.audit_entries(&g.grant, &tale_core::audit::AuditFilter { limit: 100, ..filter }).await?;
    let next_before = if rows.len() == 100 { rows.last().map(|r| r.seq) } else { None };
    let query_string = raw
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("before=") && !p.starts_with("format="))
        .collect::<Vec<_>>()
        .join("&");
    let view = org_ui::AuditFilterView {
        category: q.category.unwrap_or_default(),
        actor: q.actor.unwrap_or_default(),
        from: q.from.unwrap_or_default(),
        to: q.to.unwrap_or_default(),
        query_string,
    };
    let viewer = Viewer::load(&state, g.principal).await?;
    Ok(html(org_ui::audit(&viewer.shell("Audit log", Some((&org, g.grant.role)), Nav::Audit, &["audit"]), &rows, &view, next_before)))
}

pub async fn settings(State(state): State<AppState>, g: Granted) -> PageResult {
    let org = org_of(&state, &g.grant).await?;
    let settings = state.services.settings(&g.grant).await?;
    let viewer = Viewer::load(&state, g.principal).await?;
    let governs = org.slug == Org::DEFAULT_SLUG;
    Ok(html(org_ui::settings(&viewer.shell("Settings", Some((&org, g.grant.role)), Nav::Settings, &["settings"]), &settings, governs)))
}

pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = tale_ui::assets::find(&file) else { return not_found_page() };
    let etag = format!("\"{}\"", &tale_core::secret::sha256_hex(asset.body.as_bytes())[..16]);
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, asset.content_type.to_owned()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::ETAG, etag),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn only_same_site_paths_are_followed() {
        assert!(is_local_path("/dashboard/default/members?x=1"));
        for bad in ["//evil.example", "/\\evil.example", "/\t/evil.example", "/x/\\y", "https://evil.example", "evil", "", "/a\r\nSet-Cookie: x"] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }
}
