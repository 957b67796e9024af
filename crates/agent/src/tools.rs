//! The closed list of built-in tool names an agent file may list (TALE-COMPAT §3.2).

pub const TOOL_NAMES: &[&str] = &[
    "rag_search", "web", "document_find", "document_retrieve", "document_write", "artifact_create", "artifact_edit",
    "pdf", "docx", "excel", "text", "image", "request_human_input", "request_user_location", "update_todos",
    "customer_read", "product_read", "conversation_read", "integration", "integration_batch", "integration_introspect",
    "database_schema", "workflow_read", "workflow_syntax", "create_workflow", "save_workflow_definition",
    "update_workflow_step", "run_workflow", "propose_memory",
];

pub fn is_known(name: &str) -> bool {
    TOOL_NAMES.contains(&name)
}
