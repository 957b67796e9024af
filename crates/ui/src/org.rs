//! Organisation pages: overview, members and invitations, API keys, audit log, settings.
//! Regions marked `data-live` are refreshed in place when a subscribed topic changes.

use crate::layout::{form_error, page, Shell};
use crate::when;
use maud::{html, Markup};
use tale_core::audit::{AuditRecord, Category};
use tale_core::model::{ApiKey, Invitation, Member};
use tale_core::role::Role;
use tale_core::settings::OrgSettings;

/// `can_create_orgs`: the viewer owns the default organisation, which governs the instance.
pub fn overview(shell: &Shell, can_create_orgs: bool) -> Markup {
    let (org, role) = match shell.org {
        Some(o) => o,
        None => return page(shell, html! { h1 { "Overview" } }),
    };
    page(shell, html! {
        h1 { (org.name) }
        p { "You are " strong { (role.label()) } " in this organisation." }
        p.muted { "Chat, agents and knowledge arrive here in upcoming releases." }
        @if shell.orgs.len() > 1 {
            section aria-labelledby="orgs-heading" {
                h2 #orgs-heading { "Your organisations" }
                ul {
                    @for (o, r) in shell.orgs {
                        li { a href=(format!("/dashboard/{}", o.slug)) { (o.name) } " — " (r.label()) }
                    }
                }
            }
        }
        @if can_create_orgs {
            section aria-labelledby="new-org-heading" {
                h2 #new-org-heading { "New organisation" }
                form #org-form.inline data-api="/api/orgs" data-method="POST" {
                    div.field { label for="org-name" { "Name" } input #org-name name="name" required maxlength="200"; }
                    div.field {
                        label for="org-slug" { "Slug (used in URLs)" }
                        input #org-slug name="slug" required maxlength="100" aria-describedby="org-slug-hint";
                        small #org-slug-hint { "Lowercase letters, digits, - and _." }
                    }
                    button type="submit" { "Create organisation" }
                    (form_error())
                }
            }
        }
    })
}

fn role_options(current: Role, allow_owner: bool) -> Markup {
    html! {
        @for r in Role::ALL {
            @if r != Role::Owner || allow_owner {
                option value=(r.as_str()) selected[r == current] { (r.label()) }
            }
        }
    }
}

pub struct MembersView<'a> {
    pub members: &'a [Member],
    pub invitations: &'a [Invitation],
    pub viewer_id: &'a str,
    pub can_manage: bool,
    pub viewer_is_owner: bool,
}

pub fn members(shell: &Shell, v: &MembersView) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    page(shell, html! {
        h1 { "Members" }
        @if v.can_manage {
            section aria-labelledby="invite-heading" {
                h2 #invite-heading { "Invite someone" }
                form #invite-form.inline data-api=(format!("/api/orgs/{org}/invitations")) data-method="POST" data-result="#invite-result" data-reset {
                    div.field { label for="invite-email" { "E-mail" } input #invite-email type="email" name="email" required; }
                    div.field {
                        label for="invite-role" { "Role" }
                        select #invite-role name="role" { (role_options(Role::Member, false)) }
                    }
                    button type="submit" { "Create invitation" }
                    (form_error())
                }
                div #invite-result.result hidden {
                    label for="invite-link" { "Invitation link (share it with the invitee; valid for 7 days)" }
                    div.copy { input #invite-link readonly data-field="link"; button type="button" data-copy="#invite-link" { "Copy" } }
                }
            }
        }
        section aria-labelledby="members-heading" {
            h2 #members-heading { "People" }
            table #members data-live {
                caption.visually-hidden { "Members and their roles" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "E-mail" } th scope="col" { "Role" } th scope="col" { "Joined" } th scope="col" { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for m in v.members {
                        tr data-email=(m.email) {
                            td { (m.name) }
                            td { (m.email) }
                            td {
                                @if v.can_manage && m.user_id != v.viewer_id && m.role != Role::Owner {
                                    label.visually-hidden for=(format!("role-{}", m.user_id)) { "Role of " (m.email) }
                                    select id=(format!("role-{}", m.user_id)) data-role-url=(format!("/api/orgs/{org}/members/{}", m.user_id)) {
                                        (role_options(m.role, false))
                                    }
                                } @else {
                                    span.role data-role=(m.role.as_str()) { (m.role.label()) }
                                }
                            }
                            td { (when(m.joined_at)) }
                            td.actions {
                                @if v.viewer_is_owner && m.user_id != v.viewer_id && m.role != Role::Disabled {
                                    button.link type="button" data-action=(format!("POST /api/orgs/{org}/transfer-ownership")) data-body=(format!(r#"{{"userId":"{}"}}"#, m.user_id))
                                        data-confirm=(format!("Make {} the Owner? You will become an Admin.", m.email)) { "Make Owner" }
                                }
                                @if v.can_manage && m.user_id != v.viewer_id && m.role != Role::Owner {
                                    button.link.danger type="button" data-action=(format!("DELETE /api/orgs/{org}/members/{}", m.user_id))
                                        data-confirm=(format!("Remove {} from this organisation? The account itself is kept.", m.email)) { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="inv-heading" {
            h2 #inv-heading { "Pending invitations" }
            div #invitations data-live {
                @if v.invitations.is_empty() {
                    p.muted { "No pending invitations." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "E-mail" } th scope="col" { "Role" } th scope="col" { "Expires" } th scope="col" { span.visually-hidden { "Actions" } } } }
                        tbody {
                            @for i in v.invitations {
                                tr data-email=(i.email) {
                                    td { (i.email) } td { (i.role.label()) } td { (when(i.expires_at)) }
                                    td.actions {
                                        @if v.can_manage {
                                            button.link.danger type="button" data-action=(format!("DELETE /api/orgs/{org}/invitations/{}", i.id)) { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

pub fn api_keys(shell: &Shell, keys: &[ApiKey]) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    page(shell, html! {
        h1 { "API keys" }
        p { "Personal keys for scripts: send " code { "Authorization: Bearer tale_…" } ". A key acts as you, in this organisation only." }
        form #key-form.inline data-api=(format!("/api/orgs/{org}/api-keys")) data-method="POST" data-result="#new-key" data-reset {
            div.field { label for="key-name" { "Name" } input #key-name name="name" placeholder="e.g. nightly export" maxlength="100"; }
            button type="submit" { "Create key" }
            (form_error())
        }
        div #new-key.result hidden {
            label for="new-key-secret" { "Your new key. Copy it now: it is shown only once." }
            div.copy { input #new-key-secret readonly data-field="secret"; button type="button" data-copy="#new-key-secret" { "Copy" } }
        }
        table #api-keys data-live {
            caption.visually-hidden { "Your API keys" }
            thead { tr { th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "Status" } th scope="col" { span.visually-hidden { "Actions" } } } }
            tbody {
                @for k in keys {
                    tr {
                        td { (k.name) } td { code { (k.prefix) "…" } } td { (when(k.created_at)) }
                        td { @if let Some(t) = k.last_used_at { (when(t)) } @else { "never" } }
                        td { @if k.revoked_at.is_some() { "revoked" } @else { "active" } }
                        td.actions {
                            @if k.revoked_at.is_none() {
                                button.link.danger type="button" data-action=(format!("DELETE /api/orgs/{org}/api-keys/{}", k.id)) data-confirm=(format!("Revoke key {}? Scripts using it stop working.", k.name)) { "Revoke" }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The audit page's current filter, echoed into its form and export links.
#[derive(Default)]
pub struct AuditFilterView {
    pub category: String,
    pub actor: String,
    pub from: String,
    pub to: String,
    pub query_string: String,
}

fn json_block(v: &Option<serde_json::Value>) -> Markup {
    match v {
        Some(v) => html! { pre { (serde_json::to_string_pretty(v).unwrap_or_default()) } },
        None => html! { span.muted { "—" } },
    }
}

pub fn audit(shell: &Shell, rows: &[AuditRecord], f: &AuditFilterView, next_before: Option<i64>) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    let qs = if f.query_string.is_empty() { String::new() } else { format!("&{}", f.query_string) };
    page(shell, html! {
        h1 { "Audit log" }
        form #audit-filter.inline method="get" {
            div.field {
                label for="f-category" { "Category" }
                select #f-category name="category" {
                    option value="" { "All" }
                    @for c in Category::ALL { option value=(c.as_str()) selected[f.category == c.as_str()] { (c.as_str()) } }
                }
            }
            div.field { label for="f-actor" { "Actor" } input #f-actor name="actor" value=(f.actor) placeholder="e-mail or id"; }
            div.field { label for="f-from" { "From" } input #f-from type="datetime-local" name="from" value=(f.from); }
            div.field { label for="f-to" { "To" } input #f-to type="datetime-local" name="to" value=(f.to); }
            button type="submit" { "Filter" }
        }
        p.toolbar {
            a.button href=(format!("/api/orgs/{org}/audit/export?format=csv{qs}")) download { "Export CSV" }
            a.button href=(format!("/api/orgs/{org}/audit/export?format=json{qs}")) download { "Export JSON" }
            button #verify-audit type="button" data-verify=(format!("/api/orgs/{org}/audit/verify")) { "Verify integrity" }
            span #verify-result role="status" aria-live="polite" {}
        }
        div #audit-entries data-live {
            @if rows.is_empty() { p.muted { "No entries match." } } @else {
                table.audit {
                    caption.visually-hidden { "Audit entries, newest first" }
                    thead { tr { th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Category" } th scope="col" { "Target" } th scope="col" { "Status" } th scope="col" { "Details" } } }
                    tbody {
                        @for r in rows {
                            tr data-action=(r.action) {
                                td { (r.seq) }
                                td { (when(r.timestamp)) }
                                td { (r.actor_email.clone().unwrap_or_else(|| r.actor_id.clone())) @if let Some(role) = &r.actor_role { " (" (role) ")" } }
                                td { code { (r.action) } }
                                td { (r.category.as_str()) }
                                td { (r.resource_type) @if let Some(n) = r.resource_name.as_deref().filter(|n| !n.is_empty()) { ": " (n) } }
                                td { (r.status.as_str()) @if let Some(m) = &r.error_message { " — " (m) } }
                                td {
                                    details {
                                        summary { "More" }
                                        dl.facts {
                                            dt { "IP" } dd { (r.ip_address.clone().unwrap_or_default()) }
                                            dt { "User agent" } dd { (r.user_agent.clone().unwrap_or_default()) }
                                            @if let Some(fields) = &r.changed_fields { dt { "Changed" } dd { (fields.join(", ")) } }
                                            dt { "Before" } dd { (json_block(&r.previous_state)) }
                                            dt { "After" } dd { (json_block(&r.new_state)) }
                                            @if r.metadata.is_some() { dt { "Metadata" } dd { (json_block(&r.metadata)) } }
                                            dt { "Hash" } dd { code.hash { (r.integrity_hash) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if let Some(before) = next_before {
                    p { a href=(format!("?before={before}{qs}")) { "Older entries" } }
                }
            }
        }
    })
}

pub fn settings(shell: &Shell, s: &OrgSettings, governs_accounts: bool) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    let p = &s.password_policy;
    let l = &s.login_policy;
    let check = |id: &str, name: &str, label: &str, on: bool| html! {
        div.check { input id=(id) type="checkbox" name=(name) checked[on]; label for=(id) { (label) } }
    };
    let backoff = l.backoff_secs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    page(shell, html! {
        h1 { "Settings" }
        @if !governs_accounts {
            p.notice { "Password and sign-in policies apply to every account and are set in the default organisation." }
        }
        form #settings-form data-api=(format!("/api/orgs/{org}/settings")) data-method="PUT" data-success="Settings saved" {
            fieldset {
                legend { "Password policy" }
                div.field { label for="s-min" { "Minimum length" } input #s-min type="number" min="6" max="128" name="passwordPolicy.minLength" value=(p.min_length) required; }
                (check("s-upper", "passwordPolicy.requireUppercase", "Require an uppercase letter", p.require_uppercase))
                (check("s-lower", "passwordPolicy.requireLowercase", "Require a lowercase letter", p.require_lowercase))
                (check("s-digit", "passwordPolicy.requireDigit", "Require a digit", p.require_digit))
                (check("s-special", "passwordPolicy.requireSpecial", "Require a special character", p.require_special))
                div.field { label for="s-rotation" { "Rotation (days, 0 = off)" } input #s-rotation type="number" min="0" max="3650" name="passwordPolicy.rotationDays" value=(p.rotation_days) required; }
            }
            fieldset {
                legend { "Sign-in lockout" }
                div.field { label for="s-failures" { "Failures before lockout" } input #s-failures type="number" min="1" max="100" name="loginPolicy.maxFailures" value=(l.max_failures) required; }
                div.field {
                    label for="s-backoff" { "Lock durations in seconds (comma-separated)" }
                    input #s-backoff name="loginPolicy.backoffSecs" data-type="int-list" value=(backoff) required aria-describedby="s-backoff-hint";
                    small #s-backoff-hint { "Each further failure locks for the next duration; the last repeats." }
                }
            }
            (form_error())
            button type="submit" { "Save settings" }
        }
    })
}
