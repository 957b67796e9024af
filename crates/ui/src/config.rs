//! Agent and provider pages: lists with files that failed to load, and editors. The agent
//! editor offers the common fields as a form (written into the file's English texts, or the
//! top level when it has no `i18n`), the whole file as JSON, and its version history.
//! `config.js` turns the forms into the JSON the API takes.

use crate::layout::{form_error, page, Shell};
use crate::when;
use maud::{html, Markup};
use serde_json::Value;

pub struct AgentRow<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub visible: bool,
    pub model: Option<String>,
    pub tools: usize,
    pub warnings: &'a [String],
}

/// A file that did not load, with its reasons.
pub struct SkippedFile<'a> {
    pub file: String,
    pub reasons: &'a [String],
}

fn skipped_list(skipped: &[SkippedFile]) -> Markup {
    html! {
        @if !skipped.is_empty() {
            section #skipped aria-labelledby="skipped-heading" {
                h2 #skipped-heading { "Files that did not load" }
                ul { @for s in skipped { li { code { (s.file) } ": " (s.reasons.join("; ")) } } }
            }
        }
    }
}

pub fn agents(shell: &Shell, rows: &[AgentRow], skipped: &[SkippedFile]) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    page(shell, html! {
        h1 { "Agents" }
        p { "Agents are the files in the configuration folder's " code { "agents/" } "; changes here are written there, with every earlier version kept." }
        table #agents {
            thead { tr { th scope="col" { "Agent" } th scope="col" { "Model" } th scope="col" { "Tools" } th scope="col" { "In chat" } th scope="col" { "Warnings" } } }
            tbody {
                @for a in rows {
                    tr {
                        td { a href=(format!("/dashboard/{org}/agents/{}", a.slug)) { (a.name) } br; code.muted { (a.slug) } }
                        td { (a.model.clone().unwrap_or_default()) }
                        td { (a.tools) }
                        td { @if a.visible { "yes" } @else { "hidden" } }
                        td { @for w in a.warnings { div.muted { (w) } } }
                    }
                }
            }
        }
        (skipped_list(skipped))
        section aria-labelledby="new-agent-heading" {
            h2 #new-agent-heading { "New agent" }
            form #new-agent.inline data-new-config="agent" data-api-base=(format!("/api/orgs/{org}/agents/")) data-page-base=(format!("/dashboard/{org}/agents/")) {
                div.field { label for="new-agent-name" { "Name" } input #new-agent-name name="displayName" required maxlength="200"; }
                div.field {
                    label for="new-agent-slug" { "Slug (file name)" }
                    input #new-agent-slug name="slug" required maxlength="100" pattern="[a-z0-9][a-z0-9_\\-]*" aria-describedby="new-agent-slug-hint";
                    small #new-agent-slug-hint { "Lowercase letters, digits, - and _." }
                }
                div.field { label for="new-agent-model" { "Model" } input #new-agent-model name="model" required placeholder="provider:model-id"; }
                button type="submit" { "Create agent" }
                (form_error())
            }
        }
        script src="/static/config.js" defer {}
    })
}

/// The agent editor's inputs, read from the file.
pub struct AgentEditor<'a> {
    pub slug: &'a str,
    pub document: &'a Value,
    pub warnings: &'a [String],
    pub unavailable: &'a [(String, String)],
    pub history: &'a [(i64, u64)],
    /// Every tool name, with whether it works in this build.
    pub tools: &'a [(&'a str, bool)],
}

pub fn agent(shell: &Shell, e: &AgentEditor) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    let doc = e.document;
    // The form edits English texts where the file keeps them.
    let (text_root, texts) = match doc.pointer("/i18n/en") {
        Some(t) => ("i18n.en", t),
        None => ("", doc),
    };
    let text = |k: &str| texts.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let lines = |v: Option<&Value>| v.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n")).unwrap_or_default();
    let listed: Vec<&str> = doc["toolNames"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let num = |k: &str| doc.get(k).and_then(Value::as_i64).map(|n| n.to_string()).unwrap_or_default();
    let api = format!("/api/orgs/{org}/agents/{}", e.slug);
    page(shell, html! {
        h1 { "Agent " code { (e.slug) } }
        p { a href=(format!("/dashboard/{org}/agents")) { "All agents" } }
        @if !e.warnings.is_empty() {
            div.notice role="status" { strong { "Problems in this file" } ul #agent-warnings { @for w in e.warnings { li { (w) } } } }
        }
        @if !e.unavailable.is_empty() {
            div.notice { strong { "Tools this agent lists that cannot run yet" } ul { @for (t, why) in e.unavailable { li { code { (t) } " " (why) } } } }
        }
        textarea #agent-original hidden { (serde_json::to_string(doc).unwrap_or_default()) }
        form #agent-form data-agent-form data-api=(api) data-text-root=(text_root) {
            fieldset {
                legend { "Shown to people" }
                div.field { label for="a-name" { "Name" } input #a-name name="displayName" value=(text("displayName")) required maxlength="200"; }
                div.field { label for="a-desc" { "Description" } input #a-desc name="description" value=(text("description")) maxlength="1000"; }
                div.field {
                    label for="a-starters" { "Conversation starters (one per line, at most 4)" }
                    textarea #a-starters name="conversationStarters" rows="4" { (lines(texts.get("conversationStarters"))) }
                }
                div.check { input #a-visible type="checkbox" name="visibleInChat" checked[doc["visibleInChat"] == true]; label for="a-visible" { "Show in the chat's agent picker" } }
            }
            fieldset {
                legend { "Behaviour" }
                div.field { label for="a-instructions" { "System instructions" } textarea #a-instructions name="systemInstructions" rows="10" { (text("systemInstructions")) } }
                div.field {
                    label for="a-models" { "Models (one per line: the first is used, the others are fallbacks)" }
                    textarea #a-models name="supportedModels" rows="3" required { (lines(doc.get("supportedModels"))) }
                }
                div.field { label for="a-steps" { "Maximum steps" } input #a-steps type="number" name="maxSteps" min="1" max="100" value=(num("maxSteps")) placeholder="20"; }
                div.field { label for="a-timeout" { "Timeout (ms)" } input #a-timeout type="number" name="timeoutMs" min="1000" value=(num("timeoutMs")) placeholder="1200000"; }
                div.field { label for="a-reserve" { "Output reserve (tokens)" } input #a-reserve type="number" name="outputReserve" min="0" value=(num("outputReserve")) placeholder="4096"; }
                div.field {
                    label for="a-knowledge" { "Knowledge" }
                    select #a-knowledge name="knowledgeMode" {
                        @for m in ["off", "tool", "context", "both"] { option value=(m) selected[doc["knowledgeMode"].as_str().unwrap_or("off") == m] { (m) } }
                    }
                }
            }
            fieldset {
                legend { "Tools" }
                @for (name, works) in e.tools {
                    div.check {
                        input id=(format!("tool-{name}")) type="checkbox" name="toolNames" value=(name) checked[listed.contains(name)];
                        label for=(format!("tool-{name}")) { code { (name) } @if !works { span.muted { " (not available yet)" } } }
                    }
                }
            }
            (form_error())
            button type="submit" { "Save agent" }
        }
        details #agent-json-editor {
            summary { "Edit the whole file as JSON" }
            form #agent-json data-json-form data-api=(api) {
                label for="agent-json-text" { "agents/" (e.slug) ".json" }
                textarea #agent-json-text rows="24" spellcheck="false" { (serde_json::to_string_pretty(doc).unwrap_or_default()) }
                (form_error())
                button type="submit" { "Save file" }
            }
        }
        section aria-labelledby="history-heading" {
            h2 #history-heading { "Earlier versions" }
            @if e.history.is_empty() { p.muted { "None yet: each save keeps the version it replaces." } } @else {
                table #agent-history {
                    thead { tr { th scope="col" { "Replaced" } th scope="col" { "Size" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for (v, size) in e.history {
                            tr {
                                td { (when(*v)) } td { (size) " bytes" }
                                td.actions {
                                    a href=(format!("{api}/versions/{v}")) target="_blank" { "View" }
                                    " "
                                    button.link type="button" data-action=(format!("POST {api}/versions/{v}/restore")) data-confirm="Restore this version? The current one is kept in the history." data-redirect=(format!("/dashboard/{org}/agents/{}", e.slug)) { "Restore" }
                                }
                            }
                        }
                    }
                }
            }
        }
        p { button.danger type="button" data-action=(format!("DELETE {api}")) data-confirm="Delete this agent? Its file moves to the history." data-redirect=(format!("/dashboard/{org}/agents")) { "Delete agent" } }
        script src="/static/config.js" defer {}
    })
}

pub struct ProviderRow<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub base_url: &'a str,
    pub models: usize,
    pub has_key: bool,
}

pub fn providers(shell: &Shell, rows: &[ProviderRow], skipped: &[SkippedFile], encrypts: bool) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    page(shell, html! {
        h1 { "Model providers" }
        p {
            "Providers are the files in the configuration folder's " code { "providers/" } ". API keys are kept in "
            code { "<slug>.secrets.json" }
            @if encrypts { ", encrypted with SOPS and age." } @else { " as plaintext readable only by Tale (no age key is configured)." }
        }
        table #providers {
            thead { tr { th scope="col" { "Provider" } th scope="col" { "Base URL" } th scope="col" { "Models" } th scope="col" { "API key" } } }
            tbody {
                @for p in rows {
                    tr {
                        td { a href=(format!("/dashboard/{org}/providers/{}", p.slug)) { (p.name) } br; code.muted { (p.slug) } }
                        td { code { (p.base_url) } } td { (p.models) } td { @if p.has_key { "set" } @else { strong { "missing" } } }
                    }
                }
            }
        }
        (skipped_list(skipped))
        section aria-labelledby="new-provider-heading" {
            h2 #new-provider-heading { "New provider" }
            form #new-provider.inline data-new-config="provider" data-api-base=(format!("/api/orgs/{org}/providers/")) data-page-base=(format!("/dashboard/{org}/providers/")) {
                div.field { label for="new-provider-name" { "Name" } input #new-provider-name name="displayName" required maxlength="200"; }
                div.field { label for="new-provider-slug" { "Slug (file name)" } input #new-provider-slug name="slug" required maxlength="100" pattern="[a-z0-9][a-z0-9_\\-]*"; }
                div.field { label for="new-provider-url" { "Base URL" } input #new-provider-url name="baseUrl" type="url" required placeholder="http://localhost:11434/v1"; }
                div.field { label for="new-provider-model" { "First chat model id" } input #new-provider-model name="model" required placeholder="llama3.3"; }
                div.field { label for="new-provider-key" { "API key" } input #new-provider-key name="apiKey" type="password" autocomplete="off" placeholder="none"; }
                button type="submit" { "Create provider" }
                (form_error())
            }
        }
        script src="/static/config.js" defer {}
    })
}

pub struct ProviderEditor<'a> {
    pub slug: &'a str,
    pub document: &'a Value,
    pub warnings: &'a [String],
    pub key_present: bool,
    pub key_encrypted: bool,
    pub key_problem: Option<&'a str>,
    pub history: &'a [(i64, u64)],
    pub encrypts: bool,
}

pub fn provider(shell: &Shell, e: &ProviderEditor) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    let api = format!("/api/orgs/{org}/providers/{}", e.slug);
    page(shell, html! {
        h1 { "Provider " code { (e.slug) } }
        p { a href=(format!("/dashboard/{org}/providers")) { "All providers" } }
        @if !e.warnings.is_empty() { div.notice role="status" { ul #provider-warnings { @for w in e.warnings { li { (w) } } } } }
        p #key-status {
            "API key: "
            @if !e.key_present { strong { "not set" } }
            @else if let Some(p) = e.key_problem { strong.msg-error { "cannot be read — " (p) } }
            @else if e.key_encrypted { "set, encrypted with SOPS + age" }
            @else { "set, plaintext (mode 0600)" }
        }
        form #provider-form data-provider-form data-api=(api) {
            div.field {
                label for="provider-key" { "New API key" }
                input #provider-key type="password" name="apiKey" autocomplete="off" aria-describedby="provider-key-hint";
                small #provider-key-hint {
                    "Leave empty to keep the current key. "
                    @if e.encrypts { "It is stored encrypted." } @else { "No age key is configured, so it is stored as plaintext readable only by Tale." }
                }
            }
            div.field {
                label for="provider-json" { "providers/" (e.slug) ".json" }
                textarea #provider-json rows="24" spellcheck="false" { (serde_json::to_string_pretty(e.document).unwrap_or_default()) }
            }
            (form_error())
            button type="submit" { "Save provider" }
        }
        section aria-labelledby="history-heading" {
            h2 #history-heading { "Earlier versions" }
            @if e.history.is_empty() { p.muted { "None yet." } } @else {
                ul { @for (v, size) in e.history { li { (when(*v)) " — " (size) " bytes" } } }
            }
        }
        p { button.danger type="button" data-action=(format!("DELETE {api}")) data-confirm="Delete this provider and its API key?" data-redirect=(format!("/dashboard/{org}/providers")) { "Delete provider" } }
        script src="/static/config.js" defer {}
    })
}
