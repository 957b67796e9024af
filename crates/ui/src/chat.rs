//! Chat pages: the agent picker with conversation starters, a thread with its branch of
//! messages, the composer, the read-only shared view, a run's execution log, and usage totals.
//! Messages are rendered here for the first paint (and for readers without scripts); `chat.js`
//! takes over live updates from the WebSocket snapshot.

use crate::layout::{form_error, page, Shell};
use crate::{when, PreEscaped};
use maud::{html, Markup};
use serde_json::Value;
use tale_core::chat::{ChatMessage, MessageRole, MessageStatus, Run, Thread, UsageTotal};

/// An agent in the picker.
pub struct AgentChoice<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub starters: &'a [String],
}

/// One message on screen, with its rendered answer and its place among its versions.
pub struct MessageItem<'a> {
    pub message: &'a ChatMessage,
    pub html: Option<&'a str>,
    pub versions: &'a [String],
}

/// What the thread page shows.
pub struct ThreadPage<'a> {
    pub thread: &'a Thread,
    pub agent_name: &'a str,
    pub messages: &'a [MessageItem<'a>],
    pub shared: bool,
    pub live: bool,
}

fn status_label(s: MessageStatus) -> Option<&'static str> {
    match s {
        MessageStatus::Complete => None,
        MessageStatus::Streaming => Some("writing…"),
        MessageStatus::Stopped => Some("stopped"),
        MessageStatus::Failed => Some("failed"),
        MessageStatus::Interrupted => Some("interrupted"),
        MessageStatus::Waiting => Some("waiting for your input"),
    }
}

fn part(org: &str, thread_id: &str, p: &Value) -> Markup {
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
    match s("type") {
        "tool" => html! { li.part.tool data-status=(s("status")) { "Tool " code { (s("name")) } " — " (s("status")) } },
        "artifact" => html! {
            li.part.artifact {
                "Artifact: " strong { (s("title")) } " (" (s("kind")) ", version " (p["version"]) ") "
                a href=(format!("/api/orgs/{org}/threads/{thread_id}/artifacts/{}", s("id"))) data-artifact=(s("id")) { "Open" }
            }
        },
        "file" => html! { li.part.file { "File: " a href=(format!("/api/orgs/{org}/files/{}", s("id"))) download { (s("name")) } } },
        "todos" => html! {
            li.part.todos {
                "To-do list"
                ul { @for t in p["items"].as_array().into_iter().flatten() { li data-status=(t["status"].as_str().unwrap_or("")) { (t["text"].as_str().unwrap_or("")) " — " (t["status"].as_str().unwrap_or("")) } } }
            }
        },
        "form" => html! {
            li.part.form {
                strong { (s("title")) }
                @if p["answer"].is_null() { " (waiting for your answer)" } @else { " — answered" }
            }
        },
        _ => html! {},
    }
}

/// The passages an answer read: those its text cites first, the others folded away.
fn sources(m: &ChatMessage) -> Markup {
    let all: Vec<&Value> = m.parts.iter().filter(|p| p["type"] == "citation").collect();
    if all.is_empty() {
        return html! {};
    }
    let links = crate::markdown::citations(&m.parts);
    let used = crate::markdown::cited_numbers(&m.content);
    let (cited, other): (Vec<&Value>, Vec<&Value>) = all.into_iter().partition(|p| p["n"].as_u64().is_some_and(|n| used.contains(&n)));
    let entry = |p: &Value| {
        let n = p["n"].as_u64().unwrap_or(0);
        let label = crate::markdown::citation_label(p);
        let text = p["text"].as_str().unwrap_or("");
        let excerpt: String = text.chars().take(240).collect();
        html! {
            li value=(n) data-cite=(n) {
                @if let Some(c) = links.iter().find(|c| c.n == n) { a href=(c.href) target="_blank" rel="noopener" { (label) } } @else { (label) }
                @if let Some(d) = p["document"].as_str().filter(|d| label != *d) { " " span.muted { (d) } }
                @if !excerpt.is_empty() { p.excerpt { (excerpt) @if excerpt.len() < text.len() { "…" } } }
            }
        }
    };
    html! {
        section.sources aria-label="Sources" {
            @if !cited.is_empty() {
                h3 { "Sources" }
                ol { @for p in &cited { (entry(p)) } }
            }
            @if !other.is_empty() {
                details {
                    summary { @if cited.is_empty() { "Passages read" } @else { "Also read" } " (" (other.len()) ")" }
                    ol { @for p in &other { (entry(p)) } }
                }
            }
        }
    }
}

pub fn message(org: &str, item: &MessageItem, readonly: bool) -> Markup {
    let m = item.message;
    let index = item.versions.iter().position(|v| *v == m.id).unwrap_or(0);
    let user = m.role == MessageRole::User;
    html! {
        li.msg.(m.role.as_str()) id=(format!("m-{}", m.id)) data-id=(m.id) data-status=(m.status.as_str()) {
            div.meta {
                span.who { @if user { "You" } @else { "Assistant" } }
                @if let Some(model) = &m.model { " · " span.model { (model) } }
                @if let Some(label) = status_label(m.status) { " · " span.status { (label) } }
            }
            div.body {
                @if user { p.plain { (m.content) } }
                @else if let Some(h) = item.html { (PreEscaped(h)) }
            }
            @if !m.attachments.is_empty() {
                ul.attachments {
                    @for a in &m.attachments { li { a href=(format!("/api/orgs/{org}/files/{}", a.id)) download { (a.name) } } }
                }
            }
            @if !user { (sources(m)) }
            @if m.parts.iter().any(|p| p["type"] != "citation") { ul.parts { @for p in &m.parts { (part(org, &m.thread_id, p)) } } }
            @if let Some(e) = &m.error { p.msg-error role="alert" { (e) } }
            @if !readonly {
                div.actions {
                    @if item.versions.len() > 1 {
                        span.versions {
                            @if index > 0 { button.link type="button" data-select=(item.versions[index - 1]) aria-label="Previous version" { "‹" } }
                            (index + 1) " / " (item.versions.len())
                            @if index + 1 < item.versions.len() { button.link type="button" data-select=(item.versions[index + 1]) aria-label="Next version" { "›" } }
                        }
                    }
                    @if user { button.link type="button" data-edit=(m.id) { "Edit" } }
                    // As chat.js: an answer still being written cannot be regenerated yet.
                    @else if m.status != MessageStatus::Streaming {
                        button.link type="button" data-regenerate=(m.id) { "Regenerate" }
                        @if let Some(run) = &m.run_id { a href=(format!("/dashboard/{org}/runs/{run}")) { "Run log" } }
                    }
                }
            }
        }
    }
}

fn sidebar(org: &str, threads: &[Thread], current: Option<&str>, query: &str) -> Markup {
    html! {
        aside.threads aria-label="Chats" {
            a.button href=(format!("/dashboard/{org}/chat")) { "New chat" }
            form.search method="get" action=(format!("/dashboard/{org}/chat")) role="search" {
                label.visually-hidden for="thread-search" { "Search chats by title" }
                input #thread-search type="search" name="q" value=(query) placeholder="Search chats";
            }
            ul #thread-list {
                @for t in threads {
                    li { a href=(format!("/dashboard/{org}/chat/{}", t.id)) aria-current=[(current == Some(t.id.as_str())).then_some("page")] { (t.title) } }
                }
                @if threads.is_empty() { li.muted { @if query.is_empty() { "No chats yet." } @else { "No chat matches." } } }
            }
        }
    }
}

fn composer(org: &str) -> Markup {
    html! {
        form #composer.composer {
            label.visually-hidden for="composer-text" { "Message" }
            textarea #composer-text name="content" rows="3" placeholder="Ask something… (Enter sends, Shift+Enter for a new line)" {}
            ul #composer-files.attachments aria-live="polite" {}
            div.toolbar {
                label.button.secondary for="composer-attach" { "Attach files" }
                input #composer-attach.visually-hidden type="file" multiple data-upload=(format!("/api/orgs/{org}/files"));
                span.spacer {}
                button #composer-stop.secondary type="button" hidden { "Stop" }
                button #composer-send type="submit" { "Send" }
            }
            (form_error())
        }
    }
}

/// A new chat: pick an agent, start from a conversation starter or type.
pub fn chat_home(shell: &Shell, threads: &[Thread], query: &str, agents: &[AgentChoice], selected: Option<&str>) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    let selected = selected.or(agents.first().map(|a| a.slug));
    page(shell, html! {
        div.chat data-org=(org) {
            (sidebar(org, threads, None, query))
            section.conversation aria-labelledby="chat-title" {
                h1 #chat-title { "New chat" }
                @if agents.is_empty() {
                    p.notice { "No agent is available to you yet. An Editor can create one under Agents." }
                } @else {
                    div.field {
                        label for="agent-picker" { "Agent" }
                        select #agent-picker name="agent" {
                            @for a in agents { option value=(a.slug) selected[Some(a.slug) == selected] { (a.name) } }
                        }
                    }
                    @for a in agents {
                        div.agent-intro data-agent=(a.slug) hidden[Some(a.slug) != selected] {
                            @if !a.description.is_empty() { p.muted { (a.description) } }
                            @if !a.starters.is_empty() {
                                ul.starters aria-label="Conversation starters" {
                                    @for s in a.starters { li { button.secondary type="button" data-starter=(s) { (s) } } }
                                }
                            }
                        }
                    }
                    (composer(org))
                }
            }
        }
        script src="/static/chat.js" defer {}
    })
}

pub fn chat_thread(shell: &Shell, threads: &[Thread], t: &ThreadPage) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    let id = &t.thread.id;
    page(shell, html! {
        div.chat data-org=(org) data-thread=(id) data-live-answer[t.live] {
            (sidebar(org, threads, Some(id), ""))
            section.conversation aria-labelledby="chat-title" {
                header.thread-head {
                    h1 #chat-title { (t.thread.title) }
                    span.muted { "with " (t.agent_name) }
                    span.spacer {}
                    button.link type="button" data-rename { "Rename" }
                    button.link type="button" data-share { @if t.shared { "Shared — new link" } @else { "Share" } }
                    @if t.shared { button.link type="button" data-unshare { "Stop sharing" } }
                    button.link.danger type="button" data-delete-thread { "Delete" }
                }
                div #share-result.result hidden {
                    label for="share-link" { "Read-only link for members of this organisation" }
                    div.copy { input #share-link readonly; button type="button" data-copy="#share-link" { "Copy" } }
                }
                @if let Some(todos) = t.thread.todos.as_array().filter(|a| !a.is_empty()) {
                    details.todos open {
                        summary { "To-do list" }
                        ul { @for item in todos { li data-status=(item["status"].as_str().unwrap_or("")) { (item["text"].as_str().unwrap_or("")) } } }
                    }
                }
                ol #messages aria-live="polite" aria-label="Messages" {
                    @for item in t.messages { (message(org, item, false)) }
                }
                (composer(org))
                dialog #artifact-dialog aria-labelledby="artifact-title" {
                    header.toolbar { h2 #artifact-title {} span.spacer {} button type="button" data-close-dialog { "Close" } }
                    div #artifact-body {}
                }
            }
        }
        script src="/static/chat.js" defer {}
    })
}

/// A shared thread: read-only, no composer, no actions.
pub fn shared(shell: &Shell, org: &str, t: &ThreadPage) -> Markup {
    page(shell, html! {
        h1 { (t.thread.title) }
        p.muted { "A shared chat with " (t.agent_name) ", read-only." }
        ol #messages.readonly aria-label="Messages" {
            @for item in t.messages { (message(org, item, true)) }
        }
    })
}

fn ms(v: &Value) -> String {
    v.as_u64().map_or_else(|| "—".to_owned(), |n| format!("{n} ms"))
}

/// A run's execution log.
pub fn run(shell: &Shell, r: &Run) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    let log = &r.log;
    let t = &log["timings"];
    page(shell, html! {
        h1 { "Run log" }
        p { a href=(format!("/dashboard/{org}/chat/{}", r.thread_id)) { "Back to the chat" } }
        dl.facts #run-facts {
            dt { "Agent" } dd { (r.agent_slug) }
            dt { "Model" } dd { (r.provider.clone().unwrap_or_default()) ":" (r.model.clone().unwrap_or_default()) }
            dt { "Status" } dd data-status=(r.status.as_str()) { (r.status.as_str()) }
            dt { "Started" } dd { (when(r.created_at)) }
            dt { "Tokens" } dd { (r.tokens.input) " in (" (r.tokens.cached_input) " cached) · " (r.tokens.output) " out (" (r.tokens.reasoning) " reasoning)" }
            dt { "Cost" } dd { (format!("{:.4}", r.cost_cents)) " ¢" }
            dt { "Queue" } dd { (ms(&t["queueMs"])) }
            dt { "Time to first token" } dd { (ms(&t["ttftMs"])) }
            dt { "Generation" } dd { (ms(&t["generationMs"])) }
            dt { "Tools" } dd { (ms(&t["toolsMs"])) }
            dt { "Total" } dd { (ms(&t["totalMs"])) }
            @if let Some(e) = &r.error { dt { "Error" } dd.msg-error { (e) } }
        }
        @if let Some(w) = log["warnings"].as_array().filter(|w| !w.is_empty()) {
            h2 { "Warnings" }
            ul #run-warnings { @for x in w { li { (x.as_str().unwrap_or("")) } } }
        }
        h2 { "Steps" }
        ol #run-steps {
            @for s in log["steps"].as_array().into_iter().flatten() {
                @if s["kind"] == "model" {
                    li.step.model {
                        "Model " code { (s["model"].as_str().unwrap_or("")) }
                        " — request " (ms(&s["requestMs"])) ", first token " (ms(&s["ttftMs"])) ", generation " (ms(&s["generationMs"]))
                        @if let Some(f) = s["finishReason"].as_str() { ", finished: " (f) }
                        @if let Some(e) = s["error"].as_str() { p.msg-error { (e) } }
                    }
                } @else if s["kind"] == "knowledge" {
                    li.step.knowledge {
                        "Knowledge context — " (s["passages"]) " passages for “" (s["query"].as_str().unwrap_or("")) "”, " (ms(&s["durationMs"]))
                        @if let Some(e) = s["error"].as_str() { p.msg-error { (e) } }
                    }
                } @else {
                    li.step.tool data-status=(s["status"].as_str().unwrap_or("")) {
                        "Tool " code { (s["name"].as_str().unwrap_or("")) } " — " (s["status"].as_str().unwrap_or("")) ", " (ms(&s["durationMs"]))
                        details {
                            summary { "Arguments and result" }
                            pre { (serde_json::to_string_pretty(&s["arguments"]).unwrap_or_default()) }
                            pre { (s["result"].as_str().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    })
}

/// Usage totals over a period, by user, agent or model.
pub fn usage(shell: &Shell, by: &str, days: u32, totals: &[UsageTotal], names: &dyn Fn(&str) -> String) -> Markup {
    page(shell, html! {
        h1 { "Usage" }
        form.inline method="get" {
            div.field {
                label for="u-by" { "Group by" }
                select #u-by name="by" { @for (v, l) in [("model", "Model"), ("agent", "Agent"), ("user", "User")] { option value=(v) selected[v == by] { (l) } } }
            }
            div.field { label for="u-days" { "Last days" } input #u-days type="number" name="days" min="1" max="3650" value=(days); }
            button type="submit" { "Show" }
        }
        @if totals.is_empty() { p.muted { "No usage in this period." } } @else {
            table #usage {
                thead { tr { th scope="col" { "Who / what" } th scope="col" { "Calls" } th scope="col" { "Input tokens" } th scope="col" { "Output tokens" } th scope="col" { "Cost (¢)" } } }
                tbody {
                    @for t in totals {
                        tr { td { (names(&t.key)) } td { (t.calls) } td { (t.tokens.input) } td { (t.tokens.output) } td { (format!("{:.4}", t.cost_cents)) } }
                    }
                }
            }
        }
    })
}
