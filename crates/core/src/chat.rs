//! Chat records: threads, their messages (a tree: editing a question or regenerating an answer
//! starts a sibling branch, and the thread's head names the branch on screen), the runs that
//! produce answers with their execution logs, the usage ledger, artifacts and files.
//!
//! The run log's inner shape (steps, timings, warnings) belongs to the agent runtime; the store
//! keeps it as JSON next to the columns it filters and sums on.

use crate::audit::string_enum;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr;

string_enum!(MessageRole { User => "user", Assistant => "assistant" });
string_enum!(MessageStatus {
    Complete => "complete", Streaming => "streaming", Stopped => "stopped", Failed => "failed",
    Interrupted => "interrupted", Waiting => "waiting",
});
string_enum!(RunStatus {
    Running => "running", Completed => "completed", Failed => "failed", Stopped => "stopped",
    Interrupted => "interrupted", Waiting => "waiting",
});
string_enum!(FileOrigin { Upload => "upload", Generated => "generated" });

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Thread {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub agent_slug: String,
    pub title: String,
    /// The newest message of the branch on screen.
    pub head_id: Option<String>,
    /// The live to-do list the `update_todos` tool keeps (a JSON array).
    pub todos: Value,
    /// Keyed hash of the read-only share token, when the thread is shared.
    #[serde(skip)]
    pub share_token_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Thread {
    pub fn is_shared(&self) -> bool {
        self.share_token_hash.is_some()
    }
}

/// A file a message carries (an upload on a question, a generated file on an answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRef {
    pub id: String,
    pub name: String,
    pub media_type: String,
    pub size: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    pub thread_id: String,
    pub parent_id: Option<String>,
    pub role: MessageRole,
    /// The text: the question, or the answer's prose (Markdown).
    pub content: String,
    /// What happened besides prose, in order: tool calls, artifacts, files, to-dos, forms.
    pub parts: Vec<Value>,
    pub attachments: Vec<FileRef>,
    pub status: MessageStatus,
    /// Why the answer failed, in words a user can act on (the provider's status and text).
    pub error: Option<String>,
    pub run_id: Option<String>,
    /// `provider:model` that wrote the answer.
    pub model: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An answer's state while it streams, persisted in batches.
#[derive(Debug, Clone)]
pub struct MessageProgress {
    pub id: String,
    pub content: String,
    pub parts: Vec<Value>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub reasoning: u64,
}

impl TokenCounts {
    pub fn add(&mut self, other: TokenCounts) {
        self.input += other.input;
        self.output += other.output;
        self.cached_input += other.cached_input;
        self.reasoning += other.reasoning;
    }
}

/// One agent run: what produced (or is producing) one answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub id: String,
    pub org_id: String,
    pub thread_id: String,
    pub message_id: String,
    pub user_id: String,
    pub agent_slug: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub status: RunStatus,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub tokens: TokenCounts,
    /// US cents, from the provider's cost table (0 when it has none).
    pub cost_cents: f64,
    pub error: Option<String>,
    /// The execution log: steps, tool calls, timings per hop, warnings.
    pub log: Value,
}

/// One row of the usage ledger: a model's work for a user, an agent or an API call.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageEntry {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    /// `None` for calls through the OpenAI-compatible API.
    pub agent_slug: Option<String>,
    pub provider: String,
    pub model: String,
    pub run_id: Option<String>,
    pub tokens: TokenCounts,
    pub cost_cents: f64,
    pub at: i64,
}

string_enum!(UsageGroup { User => "user", Agent => "agent", Model => "model" });

/// Usage summed over one user, agent or model.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotal {
    /// User id, agent slug (`api` for API calls) or `provider:model`.
    pub key: String,
    pub calls: u64,
    pub tokens: TokenCounts,
    pub cost_cents: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRecord {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub thread_id: Option<String>,
    pub name: String,
    pub media_type: String,
    pub size: i64,
    /// Content address in the object store.
    #[serde(skip)]
    pub sha256: String,
    pub origin: FileOrigin,
    pub created_at: i64,
}

impl FileRecord {
    pub fn as_ref(&self) -> FileRef {
        FileRef { id: self.id.clone(), name: self.name.clone(), media_type: self.media_type.clone(), size: self.size }
    }
}

/// A Canvas artifact; each edit adds a version.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub id: String,
    pub version: i64,
    pub org_id: String,
    pub thread_id: String,
    /// `html`, `svg`, `mermaid`, `markdown` or `code`.
    pub kind: String,
    pub title: String,
    pub language: Option<String>,
    pub content: String,
    pub created_at: i64,
}

/// Titles are one line of at most 200 characters.
pub fn clean_title(title: &str) -> Result<String> {
    let t: String = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() {
        return Err(Error::invalid("title must not be empty"));
    }
    Ok(t.chars().take(200).collect())
}

/// A title from the first question: its first line, shortened at a word boundary.
pub fn title_from(question: &str) -> String {
    let line = question.lines().find(|l| !l.trim().is_empty()).unwrap_or("New chat").trim();
    if line.chars().count() <= 60 {
        return line.to_owned();
    }
    let cut: String = line.chars().take(60).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head).trim_end();
    format!("{cut}…")
}

/// The messages of the branch ending at `head`, oldest first.
pub fn branch<'a>(messages: &'a [ChatMessage], head: Option<&str>) -> Vec<&'a ChatMessage> {
    let by_id: std::collections::HashMap<&str, &ChatMessage> = messages.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut path = Vec::new();
    let mut cursor = head.and_then(|h| by_id.get(h).copied());
    while let Some(m) = cursor {
        path.push(m);
        // A cycle cannot be written through the services; guard anyway.
        if path.len() > messages.len() {
            break;
        }
        cursor = m.parent_id.as_deref().and_then(|p| by_id.get(p).copied());
    }
    path.reverse();
    path
}

/// The newest message in the subtree under `id` (following the newest child at each step): the
/// head to show when someone switches to that branch.
pub fn newest_leaf(messages: &[ChatMessage], id: &str) -> String {
    let mut current = id.to_owned();
    loop {
        let newest_child = messages.iter().filter(|m| m.parent_id.as_deref() == Some(current.as_str())).max_by_key(|m| (m.created_at, m.id.clone()));
        match newest_child {
            Some(c) => current = c.id.clone(),
            None => return current,
        }
    }
}

/// Messages sharing `m`'s parent and role (its alternative versions), oldest first.
pub fn siblings<'a>(messages: &'a [ChatMessage], m: &ChatMessage) -> Vec<&'a ChatMessage> {
    let mut out: Vec<&ChatMessage> = messages.iter().filter(|o| o.parent_id == m.parent_id && o.role == m.role).collect();
    out.sort_by_key(|o| (o.created_at, o.id.clone()));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn msg(id: &str, parent: Option<&str>, role: MessageRole, at: i64) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            thread_id: "t".into(),
            parent_id: parent.map(str::to_owned),
            role,
            content: id.into(),
            parts: Vec::new(),
            attachments: Vec::new(),
            status: MessageStatus::Complete,
            error: None,
            run_id: None,
            model: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn branches_follow_the_head_and_switching_picks_the_newest_leaf() {
        use MessageRole::{Assistant as A, User as U};
        // q1 → a1 → q2 → a2, with a1 regenerated as a1b and q2 edited into q2b → a2b.
        let all = vec![
            msg("q1", None, U, 1),
            msg("a1", Some("q1"), A, 2),
            msg("q2", Some("a1"), U, 3),
            msg("a2", Some("q2"), A, 4),
            msg("q2b", Some("a1"), U, 5),
            msg("a2b", Some("q2b"), A, 6),
            msg("a1b", Some("q1"), A, 7),
        ];
        let ids = |head| branch(&all, Some(head)).iter().map(|m| m.id.as_str()).collect::<Vec<_>>();
        assert_eq!(ids("a2"), ["q1", "a1", "q2", "a2"]);
        assert_eq!(ids("a2b"), ["q1", "a1", "q2b", "a2b"]);
        assert_eq!(newest_leaf(&all, "q2"), "a2");
        assert_eq!(newest_leaf(&all, "a1"), "a2b");
        assert_eq!(siblings(&all, &all[2]).iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["q2", "q2b"]);
        assert_eq!(siblings(&all, &all[1]).len(), 2);
        assert!(branch(&all, None).is_empty());
    }

    #[test]
    fn titles() {
        assert_eq!(title_from("\n  Hello there \nsecond"), "Hello there");
        let long = title_from(&"word ".repeat(30));
        assert!(long.ends_with('…') && long.chars().count() <= 61, "{long}");
        assert!(clean_title("   ").is_err());
        assert_eq!(clean_title(" a\n b ").unwrap(), "a b");
    }
}
