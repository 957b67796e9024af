//! The route table: every route with the access rule the permission matrix requires of it.
//!
//! The router is built from this table and nothing else, so a route cannot exist without an
//! access rule, and the route × role test walks exactly what is served.

use crate::auth::{enforce, Kind};
use crate::state::AppState;
use crate::{api, chat_pages, pages, ws};
use axum::http::Method;
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use tale_core::permission::{Access, Permission as P};

/// One served route.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub kind: Kind,
}

type Entry = (RouteSpec, MethodRouter<AppState>);

fn r(method: &'static str, path: &'static str, access: Access, kind: Kind, handler: MethodRouter<AppState>) -> Entry {
    (RouteSpec { method, path, access, kind }, handler)
}

fn table() -> Vec<Entry> {
    use Access::{Caller, Instance, Org, Public, SignedIn};
    use Kind::{Api, Page};
    vec![
        r("GET", "/healthz", Public, Api, get(api::system::healthz)),
        r("GET", "/readyz", Public, Api, get(api::system::readyz)),
        r("GET", "/metrics", Public, Api, get(api::system::metrics)),
        // Accounts
        r("GET", "/api/setup", Public, Api, get(api::auth::setup_status)),
        r("POST", "/api/setup", Public, Api, post(api::auth::setup)),
        r("POST", "/api/auth/sign-in", Public, Api, post(api::auth::sign_in)),
        r("POST", "/api/auth/sign-out", SignedIn, Api, post(api::auth::sign_out)),
        r("POST", "/api/auth/sign-out-everywhere", SignedIn, Api, post(api::auth::sign_out_everywhere)),
        r("GET", "/api/me", SignedIn, Api, get(api::auth::me)),
        r("POST", "/api/me/password", SignedIn, Api, post(api::auth::change_password)),
        r("GET", "/api/invitations/{token}", Public, Api, get(api::auth::invitation)),
        r("POST", "/api/invitations/{token}/accept", Public, Api, post(api::auth::accept_invitation)),
        r("GET", "/api/ws", SignedIn, Api, get(ws::upgrade)),
        // Organisations and members
        r("GET", "/api/orgs", SignedIn, Api, get(api::orgs::list)),
        r("POST", "/api/orgs", Instance(P::OrgOwnership), Api, post(api::orgs::create)),
        r("GET", "/api/orgs/{org}", Org(P::OrgView), Api, get(api::orgs::get)),
        r("GET", "/api/orgs/{org}/members", Org(P::MembersRead), Api, get(api::orgs::members)),
        r("PATCH", "/api/orgs/{org}/members/{user_id}", Org(P::MembersManage), Api, patch(api::orgs::change_role)),
        r("DELETE", "/api/orgs/{org}/members/{user_id}", Org(P::MembersManage), Api, delete(api::orgs::remove)),
        r("POST", "/api/orgs/{org}/transfer-ownership", Org(P::OrgOwnership), Api, post(api::orgs::transfer)),
        r("GET", "/api/orgs/{org}/invitations", Org(P::MembersRead), Api, get(api::orgs::invitations)),
        r("POST", "/api/orgs/{org}/invitations", Org(P::MembersManage), Api, post(api::orgs::invite)),
        r("DELETE", "/api/orgs/{org}/invitations/{id}", Org(P::MembersManage), Api, delete(api::orgs::revoke_invitation)),
        // API keys
        r("GET", "/api/orgs/{org}/api-keys", Org(P::ApiKeysManage), Api, get(api::keys::list)),
        r("POST", "/api/orgs/{org}/api-keys", Org(P::ApiKeysManage), Api, post(api::keys::create)),
        r("DELETE", "/api/orgs/{org}/api-keys/{id}", Org(P::ApiKeysManage), Api, delete(api::keys::revoke)),
        // Audit log
        r("GET", "/api/orgs/{org}/audit", Org(P::AuditRead), Api, get(api::audit::list)),
        r("GET", "/api/orgs/{org}/audit/export", Org(P::AuditRead), Api, get(api::audit::export)),
        r("POST", "/api/orgs/{org}/audit/verify", Org(P::AuditRead), Api, post(api::audit::verify)),
        // Providers and agents (from the config directory)
        r("GET", "/api/orgs/{org}/providers", Org(P::OrgSettings), Api, get(api::catalog::providers)),
        r("GET", "/api/orgs/{org}/agents", Org(P::ChatUse), Api, get(api::catalog::agents)),
        // Agent and provider files, edited (with version history for agents)
        r("GET", "/api/orgs/{org}/agents/{slug}", Org(P::AgentsManage), Api, get(api::config_edit::agent)),
        r("PUT", "/api/orgs/{org}/agents/{slug}", Org(P::AgentsManage), Api, put(api::config_edit::save_agent)),
        r("DELETE", "/api/orgs/{org}/agents/{slug}", Org(P::AgentsManage), Api, delete(api::config_edit::delete_agent)),
        r("GET", "/api/orgs/{org}/agents/{slug}/versions/{version}", Org(P::AgentsManage), Api, get(api::config_edit::agent_version)),
        r("POST", "/api/orgs/{org}/agents/{slug}/versions/{version}/restore", Org(P::AgentsManage), Api, post(api::config_edit::restore_agent)),
        r("GET", "/api/orgs/{org}/providers/{slug}", Org(P::OrgSettings), Api, get(api::config_edit::provider)),
        r("PUT", "/api/orgs/{org}/providers/{slug}", Org(P::OrgSettings), Api, put(api::config_edit::save_provider)),
        r("DELETE", "/api/orgs/{org}/providers/{slug}", Org(P::OrgSettings), Api, delete(api::config_edit::delete_provider)),
        // Chat: threads, turns, files, runs, usage
        r("GET", "/api/orgs/{org}/threads", Org(P::ChatUse), Api, get(api::chat::list)),
        r("POST", "/api/orgs/{org}/threads", Org(P::ChatUse), Api, post(api::chat::create)),
        r("GET", "/api/orgs/{org}/threads/{id}", Org(P::ChatUse), Api, get(api::chat::get)),
        r("PATCH", "/api/orgs/{org}/threads/{id}", Org(P::ChatUse), Api, patch(api::chat::rename)),
        r("DELETE", "/api/orgs/{org}/threads/{id}", Org(P::ChatUse), Api, delete(api::chat::delete)),
        r("POST", "/api/orgs/{org}/threads/{id}/share", Org(P::ChatUse), Api, post(api::chat::share)),
        r("DELETE", "/api/orgs/{org}/threads/{id}/share", Org(P::ChatUse), Api, delete(api::chat::unshare)),
        r("POST", "/api/orgs/{org}/threads/{id}/messages", Org(P::ChatUse), Api, post(api::chat::send)),
        r("POST", "/api/orgs/{org}/threads/{id}/stop", Org(P::ChatUse), Api, post(api::chat::stop)),
        r("POST", "/api/orgs/{org}/threads/{id}/messages/{mid}/regenerate", Org(P::ChatUse), Api, post(api::chat::regenerate)),
        r("POST", "/api/orgs/{org}/threads/{id}/messages/{mid}/edit", Org(P::ChatUse), Api, post(api::chat::edit)),
        r("POST", "/api/orgs/{org}/threads/{id}/messages/{mid}/select", Org(P::ChatUse), Api, post(api::chat::select)),
        r("POST", "/api/orgs/{org}/threads/{id}/messages/{mid}/input", Org(P::ChatUse), Api, post(api::chat::answer_form)),
        r("GET", "/api/orgs/{org}/threads/{id}/runs", Org(P::ChatUse), Api, get(api::chat::thread_runs)),
        r("GET", "/api/orgs/{org}/threads/{id}/artifacts/{aid}", Org(P::ChatUse), Api, get(api::chat::artifact)),
        r("GET", "/api/orgs/{org}/threads/{id}/artifacts/{aid}/preview", Org(P::ChatUse), Api, get(api::chat::artifact_preview)),
        r("POST", "/api/orgs/{org}/files", Org(P::ChatUse), Api, post(api::chat::upload)),
        r("GET", "/api/orgs/{org}/files/{id}", Org(P::ChatUse), Api, get(api::chat::download)),
        r("GET", "/api/orgs/{org}/runs", Org(P::OrgSettings), Api, get(api::chat::recent_runs)),
        r("GET", "/api/orgs/{org}/runs/{id}", Org(P::ChatUse), Api, get(api::chat::run)),
        r("GET", "/api/orgs/{org}/usage", Org(P::OrgSettings), Api, get(api::chat::usage)),
        r("GET", "/api/shared/{token}", SignedIn, Api, get(api::chat::shared)),
        // Knowledge
        r("GET", "/api/orgs/{org}/knowledge/documents", Org(P::KnowledgeRead), Api, get(api::knowledge::list)),
        r("POST", "/api/orgs/{org}/knowledge/documents", Org(P::KnowledgeWrite), Api, post(api::knowledge::upload)),
        r("DELETE", "/api/orgs/{org}/knowledge/documents/{id}", Org(P::KnowledgeWrite), Api, delete(api::knowledge::delete)),
        r("POST", "/api/orgs/{org}/knowledge/documents/{id}/retry", Org(P::KnowledgeWrite), Api, post(api::knowledge::retry)),
        r("GET", "/api/knowledge/search", Caller(P::KnowledgeRead), Api, get(api::knowledge::search_get)),
        r("POST", "/api/knowledge/search", Caller(P::KnowledgeRead), Api, post(api::knowledge::search_post)),
        // OpenAI-compatible API (TALE-COMPAT §9.2)
        r("GET", "/api/v1/models", Caller(P::ChatUse), Api, get(api::openai_compat::models)),
        r("POST", "/api/v1/chat/completions", Caller(P::ChatUse), Api, post(api::openai_compat::chat_completions)),
        // Settings
        r("GET", "/api/orgs/{org}/settings", Org(P::OrgSettings), Api, get(api::settings::get)),
        r("PUT", "/api/orgs/{org}/settings", Org(P::OrgSettings), Api, put(api::settings::put)),
        // Pages
        r("GET", "/", Public, Page, get(pages::home)),
        r("GET", "/setup", Public, Page, get(pages::setup)),
        r("GET", "/sign-in", Public, Page, get(pages::sign_in)),
        r("GET", "/invite/{token}", Public, Page, get(pages::invite)),
        r("GET", "/account", SignedIn, Page, get(pages::account)),
        r("GET", "/dashboard/{org}", Org(P::OrgView), Page, get(pages::overview)),
        r("GET", "/dashboard/{org}/members", Org(P::MembersRead), Page, get(pages::members)),
        r("GET", "/dashboard/{org}/api-keys", Org(P::ApiKeysManage), Page, get(pages::api_keys)),
        r("GET", "/dashboard/{org}/audit", Org(P::AuditRead), Page, get(pages::audit)),
        r("GET", "/dashboard/{org}/settings", Org(P::OrgSettings), Page, get(pages::settings)),
        r("GET", "/dashboard/{org}/chat", Org(P::ChatUse), Page, get(chat_pages::chat_home)),
        r("GET", "/dashboard/{org}/chat/{id}", Org(P::ChatUse), Page, get(chat_pages::chat_thread)),
        r("GET", "/share/{token}", SignedIn, Page, get(chat_pages::shared)),
        r("GET", "/dashboard/{org}/agents", Org(P::AgentsManage), Page, get(chat_pages::agents)),
        r("GET", "/dashboard/{org}/agents/{slug}", Org(P::AgentsManage), Page, get(chat_pages::agent)),
        r("GET", "/dashboard/{org}/providers", Org(P::OrgSettings), Page, get(chat_pages::providers)),
        r("GET", "/dashboard/{org}/providers/{slug}", Org(P::OrgSettings), Page, get(chat_pages::provider)),
        r("GET", "/dashboard/{org}/runs/{id}", Org(P::ChatUse), Page, get(chat_pages::run)),
        r("GET", "/dashboard/{org}/usage", Org(P::OrgSettings), Page, get(chat_pages::usage)),
        r("GET", "/dashboard/{org}/knowledge", Org(P::KnowledgeRead), Page, get(chat_pages::knowledge)),
        r("GET", "/dashboard/{org}/knowledge/documents/{id}", Org(P::KnowledgeRead), Page, get(chat_pages::knowledge_document)),
        r("GET", "/static/{file}", Public, Page, get(pages::asset)),
    ]
}

/// Every route served, for tests and documentation.
pub fn specs() -> Vec<RouteSpec> {
    table().into_iter().map(|(spec, _)| spec).collect()
}

/// The router: each handler wrapped in its route's access check.
pub fn router(state: &AppState) -> axum::Router<AppState> {
    let mut router = axum::Router::new();
    for (spec, handler) in table() {
        debug_assert!(Method::from_bytes(spec.method.as_bytes()).is_ok());
        let layer = axum::middleware::from_fn_with_state((state.clone(), spec.access, spec.kind, spec.path), enforce);
        router = router.route(spec.path, handler.layer(layer));
    }
    router
}
