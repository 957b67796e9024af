//! Tools: the closed list of built-in tool names an agent file may list (TALE-COMPAT §3.2), the
//! permission each needs, the [`Tool`] trait the run loop calls them through, and the tools that
//! work today (`builtin`, and `knowledge` over the [`KnowledgeHost`]). The others are listed with
//! the reason they are unavailable, which the run log and the agent editor show, until the issue
//! that builds them lands.

mod builtin;
pub mod knowledge;

pub use builtin::builtin_tools;
pub use knowledge::{knowledge_tools, Citations, KnowledgeHost};

use async_trait::async_trait;
use serde_json::Value;
use tale_core::permission::Permission;

/// Every tool name the reference knows, with the permission a user needs for an agent to call it
/// on their behalf (the same matrix that guards routes).
pub const TOOLS: &[(&str, Permission)] = &[
    ("rag_search", Permission::KnowledgeRead),
    ("web", Permission::ChatUse),
    ("document_find", Permission::KnowledgeRead),
    ("document_retrieve", Permission::KnowledgeRead),
    ("document_write", Permission::KnowledgeWrite),
    ("artifact_create", Permission::ChatUse),
    ("artifact_edit", Permission::ChatUse),
    ("pdf", Permission::ChatUse),
    ("docx", Permission::ChatUse),
    ("excel", Permission::ChatUse),
    ("text", Permission::ChatUse),
    ("image", Permission::ChatUse),
    ("request_human_input", Permission::ChatUse),
    ("request_user_location", Permission::ChatUse),
    ("update_todos", Permission::ChatUse),
    ("customer_read", Permission::ConversationsRead),
    ("product_read", Permission::KnowledgeRead),
    ("conversation_read", Permission::ConversationsRead),
    ("integration", Permission::IntegrationsManage),
    ("integration_batch", Permission::IntegrationsManage),
    ("integration_introspect", Permission::IntegrationsManage),
    ("database_schema", Permission::KnowledgeRead),
    ("workflow_read", Permission::AutomationsManage),
    ("workflow_syntax", Permission::AutomationsManage),
    ("create_workflow", Permission::AutomationsManage),
    ("save_workflow_definition", Permission::AutomationsManage),
    ("update_workflow_step", Permission::AutomationsManage),
    ("run_workflow", Permission::AutomationsManage),
    ("propose_memory", Permission::ChatUse),
];

pub fn is_known(name: &str) -> bool {
    TOOLS.iter().any(|(n, _)| *n == name)
}

pub fn permission_of(name: &str) -> Option<Permission> {
    TOOLS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// Why a known tool cannot run in this build, in words for the run log and the agent editor.
pub fn unavailable_reason(name: &str) -> Option<&'static str> {
    if builtin::NAMES.contains(&name) || knowledge::NAMES.contains(&name) {
        return None;
    }
    Some(match name {
        "document_write" => "needs saving generated files into the knowledge base, which this version of Tale does not have yet",
        "database_schema" | "product_read" => "needs the product and customer records, which this version of Tale does not have yet",
        "web" => "needs web fetching and crawling, which this version of Tale does not have yet",
        "pdf" | "docx" | "excel" | "image" => "needs document generation in the sandbox, which this version of Tale does not have yet",
        "integration" | "integration_batch" | "integration_introspect" => "needs integrations, which this version of Tale does not have yet",
        "workflow_read" | "workflow_syntax" | "create_workflow" | "save_workflow_definition" | "update_workflow_step" | "run_workflow" => {
            "needs automations, which this version of Tale does not have yet"
        }
        "customer_read" | "conversation_read" => "needs the customer inbox, which this version of Tale does not have yet",
        "request_user_location" => "needs the browser location prompt, which this version of Tale does not have yet",
        "propose_memory" => "needs user memory, which this version of Tale does not have yet",
        _ => "is not a Tale tool",
    })
}

/// What a tool gives back: text for the model, whether the run waits for the user, and what the
/// run log should warn about although the call itself worked (e.g. a store that did not answer).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub content: String,
    /// The run pauses until the user answers (`request_human_input`).
    pub pause: bool,
    pub warning: Option<String>,
}

impl ToolOutput {
    pub fn text(content: impl Into<String>) -> Self {
        ToolOutput { content: content.into(), pause: false, warning: None }
    }
}

/// Where a tool's call is shown while it runs: the answer's parts (tool calls, artifacts, files,
/// to-dos, forms), replaced by `id` when one with the same id exists.
pub trait PartSink: Send + Sync {
    fn part(&self, part: Value);
}

/// The thread a tool works in: the chat role implements this over its store.
#[async_trait]
pub trait ToolHost: Send + Sync {
    async fn todos(&self) -> Result<Value, String>;
    async fn save_todos(&self, todos: &Value) -> Result<(), String>;
    /// Creates an artifact; returns its id (version 1).
    async fn create_artifact(&self, kind: &str, title: &str, language: Option<&str>, content: &str) -> Result<String, String>;
    /// The newest version: (kind, title, language, content, version).
    async fn artifact(&self, id: &str) -> Result<Option<ArtifactView>, String>;
    /// Adds a version with new content; returns the version number.
    async fn update_artifact(&self, id: &str, content: &str) -> Result<i64, String>;
    /// Stores a generated file; returns its id.
    async fn save_file(&self, name: &str, media_type: &str, bytes: Vec<u8>) -> Result<String, String>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactView {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub language: Option<String>,
    pub content: String,
    pub version: i64,
}

/// A tool the model can call.
#[async_trait]
pub trait Tool: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// JSON Schema of the arguments.
    fn parameters(&self) -> Value;
    /// Runs the call. `Err` is a message the model reads (and may correct itself from).
    async fn call(&self, call_id: &str, args: Value, parts: &dyn PartSink) -> Result<ToolOutput, String>;
}
