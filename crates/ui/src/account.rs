//! Pages about one's own account: first-run setup, sign-in, accepting an invitation, account.

use crate::layout::{bare, form_error, page, Shell};
use maud::{html, Markup};
use tale_core::role::Role;
use tale_core::settings::PasswordPolicy;

fn policy_hint(p: &PasswordPolicy) -> String {
    let mut needs = vec![format!("at least {} characters", p.min_length)];
    if p.require_uppercase { needs.push("an uppercase letter".into()); }
    if p.require_lowercase { needs.push("a lowercase letter".into()); }
    if p.require_digit { needs.push("a digit".into()); }
    if p.require_special { needs.push("a special character".into()); }
    format!("Use {}.", needs.join(", "))
}

fn password_field(id: &str, name: &str, label: &str, autocomplete: &str, hint: Option<&str>) -> Markup {
    let hint_id = format!("{id}-hint");
    html! {
        div.field {
            label for=(id) { (label) }
            input #(id) type="password" name=(name) required autocomplete=(autocomplete) aria-describedby=[hint.map(|_| hint_id.as_str())];
            @if let Some(h) = hint { small #(hint_id) { (h) } }
        }
    }
}

pub fn setup(token: Option<&str>, policy: &PasswordPolicy) -> Markup {
    bare("Set up Tale", html! {
        h1 { "Set up Tale" }
        p { "Create the Owner account. The Owner manages this instance and its organisations." }
        form #setup-form data-api="/api/setup" data-method="POST" {
            @match token {
                Some(t) => { input type="hidden" name="token" value=(t); }
                None => {
                    div.field {
                        label for="setup-token" { "Setup token" }
                        input #setup-token name="token" required autocomplete="off" aria-describedby="setup-token-hint";
                        small #setup-token-hint { "Printed in the server log when Tale starts, and kept in the data dir as setup-token." }
                    }
                }
            }
            div.field { label for="setup-name" { "Your name" } input #setup-name name="name" required autocomplete="name"; }
            div.field { label for="setup-email" { "E-mail" } input #setup-email type="email" name="email" required autocomplete="email"; }
            (password_field("setup-password", "password", "Password", "new-password", Some(&policy_hint(policy))))
            (form_error())
            button type="submit" { "Create Owner account" }
        }
    })
}

pub fn setup_closed() -> Markup {
    bare("Setup complete", html! {
        h1 { "Tale is already set up" }
        p { "An Owner account exists. " a href="/sign-in" { "Sign in" } " instead." }
    })
}

pub fn sign_in(next: &str, notice: Option<&str>) -> Markup {
    bare("Sign in", html! {
        h1 { "Sign in" }
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        form #sign-in-form data-api="/api/auth/sign-in" data-method="POST" data-next=(next) {
            div.field { label for="sign-in-email" { "E-mail" } input #sign-in-email type="email" name="email" required autocomplete="username"; }
            (password_field("sign-in-password", "password", "Password", "current-password", None))
            (form_error())
            button type="submit" { "Sign in" }
        }
    })
}

pub struct InviteView<'a> {
    pub token: &'a str,
    pub email: &'a str,
    pub organization: &'a str,
    pub role: Role,
    pub account_exists: bool,
}

pub fn invite(view: Option<&InviteView>, policy: &PasswordPolicy) -> Markup {
    let Some(v) = view else {
        return bare("Invitation", html! {
            h1 { "This invitation cannot be used" }
            p { "It was already accepted, revoked, or has expired. Ask an Admin for a new link." }
        });
    };
    bare("Join organisation", html! {
        h1 { "Join " (v.organization) }
        p { "You were invited as " strong { (v.role.label()) } " with " strong { (v.email) } "." }
        form #accept-form data-api=(format!("/api/invitations/{}/accept", v.token)) data-method="POST" {
            @if v.account_exists {
                p { "You already have an account: confirm with its password." }
                (password_field("accept-password", "password", "Password", "current-password", None))
            } @else {
                div.field { label for="accept-name" { "Your name" } input #accept-name name="name" required autocomplete="name"; }
                (password_field("accept-password", "password", "Choose a password", "new-password", Some(&policy_hint(policy))))
            }
            (form_error())
            button type="submit" { "Accept invitation" }
        }
    })
}

pub fn account(shell: &Shell, must_change: bool, policy: &PasswordPolicy) -> Markup {
    page(shell, html! {
        h1 { "Your account" }
        @if must_change {
            p.notice role="alert" { "Your password must be changed before you continue." }
        }
        dl.facts {
            dt { "Name" } dd { (shell.user_name) }
            dt { "E-mail" } dd { (shell.user_email) }
        }
        section aria-labelledby="pw-heading" {
            h2 #pw-heading { "Change password" }
            form #password-form data-api="/api/me/password" data-method="POST" data-success="Password changed" data-reset {
                (password_field("current-password", "currentPassword", "Current password", "current-password", None))
                (password_field("new-password", "newPassword", "New password", "new-password", Some(&policy_hint(policy))))
                (form_error())
                button type="submit" { "Change password" }
            }
        }
        section aria-labelledby="sessions-heading" {
            h2 #sessions-heading { "Sessions" }
            p { "Signing out everywhere ends every session of your account, on every device, including this one." }
            button type="button" data-action="POST /api/auth/sign-out-everywhere" data-confirm="Sign out on every device?" data-redirect="/sign-in" { "Sign out everywhere" }
        }
    })
}
