//! Who is calling: session cookie or `Authorization: Bearer tale_...`, the CSRF rule for cookie
//! requests, the client IP (through trusted proxies only), and the per-route access check that
//! turns the permission matrix into a [`Grant`] handlers receive.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::net::{IpAddr, SocketAddr};
use tale_core::audit::RequestMeta;
use tale_core::permission::{Access, Grant};
use tale_core::service::{AuthVia, Principal};
use tale_core::Error;

/// What the access check established for this request; handlers take it through [`Authed`] or
/// [`Granted`].
#[derive(Clone)]
pub struct RequestCtx {
    pub principal: Option<Principal>,
    pub grant: Option<Grant>,
    pub meta: RequestMeta,
}

/// Whether a route serves JSON or a page: failures render differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Api,
    Page,
}

pub fn cookie_name(https: bool) -> &'static str {
    if https { "__Secure-tale_session" } else { "tale_session" }
}

pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn session_cookie(https: bool, token: &str, max_age_secs: i64) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}", cookie_name(https))
}

pub fn clear_cookie(https: bool) -> String {
    session_cookie(https, "", 0)
}

/// The client address: the peer, or the last untrusted hop of `X-Forwarded-For` when the peer is
/// a trusted proxy.
pub fn client_ip(state: &AppState, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?;
    if !state.trusts(peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    Some(hops.into_iter().rev().find(|ip| !state.trusts(*ip)).unwrap_or(peer))
}

fn request_meta(state: &AppState, parts: &Parts) -> RequestMeta {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    RequestMeta {
        ip: client_ip(state, peer, &parts.headers).map(|ip| ip.to_string()),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
        request_id: parts.extensions.get::<crate::middleware::RequestId>().map(|r| r.0.clone()),
        session_id: None,
    }
}

/// Resolves the caller. A bad bearer key is an error; a bad or expired cookie is just no session.
pub async fn principal(state: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, Error> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        // Only `Bearer tale_…` is ours; other schemes (a proxy's Basic auth) and other bearer
        // tokens (the metrics token) are left alone.
        if let Some((scheme, key)) = value.trim().split_once(' ') {
            let key = key.trim();
            if scheme.eq_ignore_ascii_case("bearer") && key.starts_with("tale_") {
                return state.services.authenticate_api_key(key).await.map(Some);
            }
        }
    }
    match read_cookie(headers, cookie_name(state.config.is_https())) {
        Some(token) => match state.services.authenticate_session(token).await {
            Ok(p) => Ok(Some(p)),
            Err(Error::Unauthenticated) => Ok(None),
            Err(e) => Err(e),
        },
        None => Ok(None),
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Cookie-authenticated changes need the session's CSRF token in `X-CSRF-Token`. Requests
/// without a session (sign-in, setup) must at least not come from another origin.
fn check_csrf(state: &AppState, parts: &Parts, principal: Option<&Principal>, access: Access) -> Result<(), Error> {
    if is_safe(&parts.method) {
        return Ok(());
    }
    // Public routes act on no session (setup, sign-in, accepting an invitation): the origin rule
    // applies even when the browser happens to hold a session cookie.
    let principal = if access == Access::Public { None } else { principal };
    match principal.map(|p| &p.via) {
        Some(AuthVia::ApiKey { .. }) => Ok(()),
        Some(AuthVia::Session { csrf_token, .. }) => {
            let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            if tale_core::secret::constant_time_eq(sent.as_bytes(), csrf_token.as_bytes()) {
                Ok(())
            } else {
                Err(Error::CsrfRejected)
            }
        }
        None => {
            if same_origin(state, &parts.headers) { Ok(()) } else { Err(Error::CsrfRejected) }
        }
    }
}

/// True when the request has no `Origin`, or one naming this server (its `Host` or `SITE_URL`).
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if origin == state.services.site_url() {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").is_some_and(|(_, rest)| rest == host)
}

/// Per-route middleware: authenticate, check CSRF, check the route's access rule, and hand the
/// result to the handler. Pages redirect to sign-in instead of answering 401.
/// Routes a session whose password must be changed may still use.
const WHILE_PASSWORD_CHANGE_REQUIRED: &[&str] =
    &["/api/me", "/api/me/password", "/api/auth/sign-out", "/api/auth/sign-out-everywhere", "/account", "/static/{file}"];

fn check_password_change(principal: Option<&Principal>, route: &str) -> Result<(), Error> {
    match principal {
        Some(p)
            if p.user.must_change_password
                && matches!(p.via, AuthVia::Session { .. })
                && !WHILE_PASSWORD_CHANGE_REQUIRED.contains(&route) =>
        {
            Err(Error::PasswordChangeRequired)
        }
        _ => Ok(()),
    }
}

pub async fn enforce(
    State((state, access, kind, route)): State<(AppState, Access, Kind, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut meta = request_meta(&state, &parts);
    let outcome = async {
        let principal = principal(&state, &parts.headers).await?;
        check_csrf(&state, &parts, principal.as_ref(), access)?;
        check_password_change(principal.as_ref(), route)?;
        let org = match access {
            Access::Caller(_) => parts.headers.get("x-organization-slug").and_then(|v| v.to_str().ok()).map(|s| s.trim().to_owned()),
            _ => match RawPathParams::from_request_parts(&mut parts, &state).await {
                Ok(params) => params.iter().find(|(k, _)| *k == "org").map(|(_, v)| v.to_owned()),
                Err(_) => None,
            },
        };
        let grant = state.services.authorize(principal.as_ref(), access, org.as_deref()).await?;
        Ok::<_, Error>((principal, grant))
    }
    .await;
    match outcome {
        Ok((principal, grant)) => {
            meta.session_id = principal.as_ref().and_then(|p| p.session_id().map(str::to_owned));
            parts.extensions.insert(RequestCtx { principal, grant, meta });
            let token = match (kind, principal_is_session(&parts)) {
                (Kind::Page, true) => read_cookie(&parts.headers, cookie_name(state.config.is_https())).map(str::to_owned),
                _ => None,
            };
            let mut response = next.run(Request::from_parts(parts, body)).await;
            // Page views slide the browser's cookie along with the server-side session.
            if let Some(token) = token {
                let max_age = i64::try_from(state.config.session_ttl_secs).unwrap_or(i64::MAX);
                if let Ok(v) = axum::http::HeaderValue::from_str(&session_cookie(state.config.is_https(), &token, max_age)) {
                    response.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            response
        }
        Err(e) => match (kind, &e) {
            (Kind::Page, Error::PasswordChangeRequired) => Redirect::to("/account").into_response(),
            (Kind::Page, Error::Unauthenticated) => {
                let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let next = crate::pages::encode_next(target);
                Redirect::to(&format!("/sign-in?next={next}")).into_response()
            }
            (Kind::Page, _) => crate::pages::error_response(&ApiError::Domain(e)),
            (Kind::Api, _) => ApiError::Domain(e).into_response(),
        },
    }
}

fn principal_is_session(parts: &Parts) -> bool {
    parts.extensions.get::<RequestCtx>().and_then(|c| c.principal.as_ref()).is_some_and(|p| matches!(p.via, AuthVia::Session { .. }))
}

fn ctx(parts: &Parts) -> Result<RequestCtx, ApiError> {
    parts.extensions.get::<RequestCtx>().cloned().ok_or(ApiError::MissingAccessCheck)
}

/// Request metadata for any route (public ones too).
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Meta(ctx(parts)?.meta))
    }
}

/// A signed-in caller.
pub struct Authed {
    pub principal: Principal,
    pub meta: RequestMeta,
}

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let c = ctx(parts)?;
        let principal = c.principal.ok_or(ApiError::Domain(Error::Unauthenticated))?;
        Ok(Authed { principal, meta: c.meta })
    }
}

/// A signed-in caller holding the route's permission in the route's organisation.
pub struct Granted {
    pub principal: Principal,
    pub grant: Grant,
    pub meta: RequestMeta,
}

impl<S: Send + Sync> FromRequestParts<S> for Granted {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let c = ctx(parts)?;
        match (c.principal, c.grant) {
            (Some(principal), Some(grant)) => Ok(Granted { principal, grant, meta: c.meta }),
            _ => Err(ApiError::MissingAccessCheck),
        }
    }
}

/// The signed-in caller if any, for public pages that adapt (e.g. sign-in redirects onward).
pub struct MaybeAuthed(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeAuthed {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeAuthed(ctx(parts)?.principal))
    }
}
