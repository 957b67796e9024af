//! The page shell: head, skip link, top bar with navigation and organisation switcher, toasts.

use maud::{html, Markup, DOCTYPE};
use tale_core::model::Org;
use tale_core::permission::Permission;
use tale_core::role::Role;

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Chat,
    Knowledge,
    Agents,
    Providers,
    Usage,
    Members,
    ApiKeys,
    Audit,
    Settings,
    Account,
    None,
}

/// What every signed-in page knows about its viewer.
pub struct Shell<'a> {
    pub title: &'a str,
    pub user_name: &'a str,
    pub user_email: &'a str,
    pub csrf_token: &'a str,
    pub orgs: &'a [(Org, Role)],
    /// The organisation the page is about, and the viewer's role in it.
    pub org: Option<(&'a Org, Role)>,
    pub nav: Nav,
    /// Live-update topics this page follows (WebSocket).
    pub topics: &'a [&'a str],
}

fn head(title: &str, csrf: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Tale" }
            @if let Some(token) = csrf { meta name="csrf-token" content=(token); }
            link rel="icon" href="/static/favicon.svg" type="image/svg+xml";
            link rel="stylesheet" href="/static/app.css";
            link rel="stylesheet" href="/static/code.css";
            script src="/static/app.js" defer {}
        }
    }
}

/// A page for people who are not signed in (setup, sign-in, invitation).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, None))
            body.bare {
                main #main.narrow {
                    p.brand { "Tale" }
                    (body)
                }
            }
        }
    }
}

pub fn page(shell: &Shell, body: Markup) -> Markup {
    let org_slug = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    let role = shell.org.map(|(_, r)| r);
    let can = |p: Permission| role.is_some_and(|r| p.allows(r));
    let link = |nav: Nav, href: String, label: &str| {
        html! {
            li { a href=(href) aria-current=[(shell.nav == nav).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(shell.title, Some(shell.csrf_token)))
            body data-org=(org_slug) data-topics=(shell.topics.join(" ")) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Tale" }
                    @if shell.org.is_some() {
                        nav aria-label="Organisation" {
                            ul {
                                (link(Nav::Overview, format!("/dashboard/{org_slug}"), "Overview"))
                                @if can(Permission::ChatUse) { (link(Nav::Chat, format!("/dashboard/{org_slug}/chat"), "Chat")) }
                                @if can(Permission::KnowledgeRead) { (link(Nav::Knowledge, format!("/dashboard/{org_slug}/knowledge"), "Knowledge")) }
                                @if can(Permission::AgentsManage) { (link(Nav::Agents, format!("/dashboard/{org_slug}/agents"), "Agents")) }
                                @if can(Permission::OrgSettings) { (link(Nav::Providers, format!("/dashboard/{org_slug}/providers"), "Providers")) }
                                @if can(Permission::OrgSettings) { (link(Nav::Usage, format!("/dashboard/{org_slug}/usage"), "Usage")) }
                                @if can(Permission::MembersRead) { (link(Nav::Members, format!("/dashboard/{org_slug}/members"), "Members")) }
                                @if can(Permission::ApiKeysManage) { (link(Nav::ApiKeys, format!("/dashboard/{org_slug}/api-keys"), "API keys")) }
                                @if can(Permission::AuditRead) { (link(Nav::Audit, format!("/dashboard/{org_slug}/audit"), "Audit log")) }
                                @if can(Permission::OrgSettings) { (link(Nav::Settings, format!("/dashboard/{org_slug}/settings"), "Settings")) }
                            }
                        }
                    }
                    div.spacer {}
                    @if shell.orgs.len() > 1 {
                        label.switch for="org-switch" { "Organisation" }
                        select #org-switch data-navigate {
                            @for (o, _) in shell.orgs {
                                option value=(format!("/dashboard/{}", o.slug)) selected[o.slug == org_slug] { (o.name) }
                            }
                        }
                    }
                    span.live-status #live-status role="status" aria-live="polite" {}
                    a href="/account" aria-current=[(shell.nav == Nav::Account).then_some("page")] title=(shell.user_email) { (shell.user_name) }
                    button.link type="button" data-action="POST /api/auth/sign-out" data-redirect="/sign-in" { "Sign out" }
                }
                main #main { (body) }
                div #toast role="status" aria-live="polite" {}
            }
        }
    }
}

/// A form's error area, announced to screen readers.
pub fn form_error() -> Markup {
    html! { p.form-error role="alert" hidden {} }
}

pub fn error_page(status: u16, title: &str, message: &str) -> Markup {
    bare(title, html! {
        h1 { (title) }
        p { (message) }
        p.muted { "HTTP " (status) }
        p { a href="/" { "Go to the start page" } }
    })
}
