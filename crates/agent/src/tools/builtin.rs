//! The tools that need nothing beyond the thread itself: `request_human_input`, `update_todos`,
//! `text`, `artifact_create` and `artifact_edit`. Each checks its arguments and answers the model
//! in words it can correct itself from.

use super::{ArtifactView, PartSink, Tool, ToolHost, ToolOutput};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) const NAMES: &[&str] = &["request_human_input", "update_todos", "text", "artifact_create", "artifact_edit"];

/// Generated text files and artifacts are capped so one answer cannot fill the disk.
const MAX_TEXT_BYTES: usize = 5 * 1024 * 1024;
const MAX_ARTIFACT_BYTES: usize = 1024 * 1024;
const ARTIFACT_KINDS: &[&str] = &["html", "svg", "mermaid", "markdown", "code"];
const TODO_STATUSES: &[&str] = &["pending", "in_progress", "done", "failed", "cancelled"];

/// The working tools, bound to one thread.
pub fn builtin_tools(host: Arc<dyn ToolHost>) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(RequestHumanInput),
        Arc::new(UpdateTodos(host.clone())),
        Arc::new(TextFile(host.clone())),
        Arc::new(ArtifactCreate(host.clone())),
        Arc::new(ArtifactEdit(host)),
    ]
}

fn str_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, String> {
    args.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty()).ok_or_else(|| format!("'{key}' is required and must be a non-empty string"))
}

struct RequestHumanInput;

#[async_trait]
impl Tool for RequestHumanInput {
    fn name(&self) -> &'static str {
        "request_human_input"
    }
    fn description(&self) -> &'static str {
        "Show the user a short form in the chat and wait for their answer. Use it when you need a decision or details only the user has."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["fields"], "properties": {
            "title": {"type": "string"},
            "description": {"type": "string"},
            "fields": {"type": "array", "minItems": 1, "maxItems": 10, "items": {"type": "object", "required": ["name", "label", "type"], "properties": {
                "name": {"type": "string"}, "label": {"type": "string"},
                "type": {"type": "string", "enum": ["text", "textarea", "yes_no", "select", "number"]},
                "options": {"type": "array", "items": {"type": "string"}},
                "required": {"type": "boolean"}}}}}})
    }
    async fn call(&self, call_id: &str, args: Value, parts: &dyn PartSink) -> Result<ToolOutput, String> {
        let fields = args.get("fields").and_then(Value::as_array).filter(|f| !f.is_empty() && f.len() <= 10).ok_or("'fields' must list 1 to 10 fields")?;
        let mut clean = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            let name = f.get("name").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(format!("fields[{i}].name is required"))?;
            let label = f.get("label").and_then(Value::as_str).unwrap_or(name);
            let kind = f.get("type").and_then(Value::as_str).unwrap_or("text");
            if !["text", "textarea", "yes_no", "select", "number"].contains(&kind) {
                return Err(format!("fields[{i}].type must be text, textarea, yes_no, select or number"));
            }
            let options: Vec<String> = f.get("options").and_then(Value::as_array).map(|o| o.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default();
            if kind == "select" && options.is_empty() {
                return Err(format!("fields[{i}] is a select and needs options"));
            }
            clean.push(json!({"name": name, "label": label, "type": kind, "options": options, "required": f.get("required").and_then(Value::as_bool).unwrap_or(false)}));
        }
        parts.part(json!({"type": "form", "id": call_id, "title": args.get("title").and_then(Value::as_str).unwrap_or("Your input is needed"),
            "description": args.get("description").and_then(Value::as_str).unwrap_or(""), "fields": clean, "answer": null}));
        Ok(ToolOutput { content: "The form is shown; waiting for the user's answer.".into(), pause: true, warning: None })
    }
}

struct UpdateTodos(Arc<dyn ToolHost>);

#[async_trait]
impl Tool for UpdateTodos {
    fn name(&self) -> &'static str {
        "update_todos"
    }
    fn description(&self) -> &'static str {
        "Keep a to-do list the user sees in the chat. action 'add' appends items; 'update' changes items by id (status: pending, in_progress, done, failed, cancelled)."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["action", "items"], "properties": {
            "action": {"type": "string", "enum": ["add", "update"]},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "text": {"type": "string"},
                "status": {"type": "string", "enum": TODO_STATUSES}}}}}})
    }
    async fn call(&self, _call_id: &str, args: Value, parts: &dyn PartSink) -> Result<ToolOutput, String> {
        let action = str_arg(&args, "action")?;
        let items = args.get("items").and_then(Value::as_array).ok_or("'items' must be an array")?;
        let mut todos = match self.0.todos().await? {
            Value::Array(a) => a,
            _ => Vec::new(),
        };
        for (i, item) in items.iter().enumerate() {
            let status = item.get("status").and_then(Value::as_str);
            if let Some(s) = status.filter(|s| !TODO_STATUSES.contains(s)) {
                return Err(format!("items[{i}].status '{s}' is not one of {}", TODO_STATUSES.join(", ")));
            }
            match action {
                "add" => {
                    let text = item.get("text").and_then(Value::as_str).filter(|t| !t.trim().is_empty()).ok_or(format!("items[{i}].text is required to add"))?;
                    let next = todos.iter().filter_map(|t| t["id"].as_str()?.parse::<u64>().ok()).max().unwrap_or(0) + 1;
                    todos.push(json!({"id": next.to_string(), "text": text, "status": status.unwrap_or("pending")}));
                }
                "update" => {
                    let id = item.get("id").and_then(Value::as_str).ok_or(format!("items[{i}].id is required to update"))?;
                    let todo = todos.iter_mut().find(|t| t["id"] == id).ok_or(format!("there is no to-do with id '{id}'"))?;
                    if let Some(s) = status {
                        todo["status"] = json!(s);
                    }
                    if let Some(t) = item.get("text").and_then(Value::as_str).filter(|t| !t.trim().is_empty()) {
                        todo["text"] = json!(t);
                    }
                }
                other => return Err(format!("action must be 'add' or 'update', not '{other}'")),
            }
        }
        let list = Value::Array(todos);
        self.0.save_todos(&list).await?;
        parts.part(json!({"type": "todos", "id": "todos", "items": list}));
        Ok(ToolOutput::text(list.to_string()))
    }
}

/// The media type of a text file by extension, or `None` for extensions this tool refuses.
fn text_media_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" | "log" | "ini" | "cfg" | "conf" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "json" => "application/json",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        "html" | "htm" => "text/html",
        "sql" | "py" | "js" | "ts" | "rs" | "go" | "java" | "sh" | "rb" | "c" | "cpp" | "h" | "css" => "text/plain",
        _ => return None,
    })
}

struct TextFile(Arc<dyn ToolHost>);

#[async_trait]
impl Tool for TextFile {
    fn name(&self) -> &'static str {
        "text"
    }
    fn description(&self) -> &'static str {
        "Create a downloadable text-format file (.txt, .md, .json, .csv, .yaml, .xml, .html, source code) for the user."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["filename", "content"], "properties": {
            "filename": {"type": "string", "description": "e.g. report.md"}, "content": {"type": "string"}}})
    }
    async fn call(&self, _call_id: &str, args: Value, parts: &dyn PartSink) -> Result<ToolOutput, String> {
        let name = str_arg(&args, "filename")?.trim();
        if name.contains(['/', '\\']) || name.starts_with('.') || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err("filename must be a plain file name (no folders, not hidden, at most 200 characters)".into());
        }
        let media_type = text_media_type(name).ok_or("filename needs a text extension such as .txt, .md, .json, .csv, .yaml or .html")?;
        let content = args.get("content").and_then(Value::as_str).ok_or("'content' must be a string")?;
        if content.len() > MAX_TEXT_BYTES {
            return Err(format!("content is {} bytes; the limit is {MAX_TEXT_BYTES}", content.len()));
        }
        let id = self.0.save_file(name, media_type, content.as_bytes().to_vec()).await?;
        parts.part(json!({"type": "file", "id": id, "name": name, "mediaType": media_type, "size": content.len()}));
        Ok(ToolOutput::text(format!("Saved '{name}' ({} bytes); the user sees a download link.", content.len())))
    }
}

fn artifact_part(a: &ArtifactView) -> Value {
    json!({"type": "artifact", "id": a.id, "version": a.version, "title": a.title, "kind": a.kind, "language": a.language})
}

struct ArtifactCreate(Arc<dyn ToolHost>);

#[async_trait]
impl Tool for ArtifactCreate {
    fn name(&self) -> &'static str {
        "artifact_create"
    }
    fn description(&self) -> &'static str {
        "Create a Canvas artifact shown beside the chat: html, svg, mermaid, markdown or code. Returns its id for artifact_edit."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["type", "title", "content"], "properties": {
            "type": {"type": "string", "enum": ARTIFACT_KINDS}, "title": {"type": "string"},
            "content": {"type": "string"}, "language": {"type": "string", "description": "for code: the language"}}})
    }
    async fn call(&self, _call_id: &str, args: Value, parts: &dyn PartSink) -> Result<ToolOutput, String> {
        let kind = str_arg(&args, "type")?;
        if !ARTIFACT_KINDS.contains(&kind) {
            return Err(format!("type must be one of {}", ARTIFACT_KINDS.join(", ")));
        }
        let title: String = str_arg(&args, "title")?.chars().take(200).collect();
        let content = args.get("content").and_then(Value::as_str).ok_or("'content' must be a string")?;
        if content.len() > MAX_ARTIFACT_BYTES {
            return Err(format!("content is {} bytes; the limit is {MAX_ARTIFACT_BYTES}", content.len()));
        }
        let language = args.get("language").and_then(Value::as_str).filter(|l| !l.is_empty());
        let id = self.0.create_artifact(kind, &title, language, content).await?;
        let view = ArtifactView { id: id.clone(), kind: kind.into(), title, language: language.map(str::to_owned), content: String::new(), version: 1 };
        parts.part(artifact_part(&view));
        Ok(ToolOutput::text(format!("Created artifact {id} (version 1).")))
    }
}

struct ArtifactEdit(Arc<dyn ToolHost>);

/// Applies search/replace edits; each search text must occur exactly once.
fn apply_patches(content: &str, edits: &[Value]) -> Result<String, String> {
    let mut out = content.to_owned();
    for (i, e) in edits.iter().enumerate() {
        let search = e.get("search").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(format!("edits[{i}].search is required"))?;
        let replace = e.get("replace").and_then(Value::as_str).ok_or(format!("edits[{i}].replace is required"))?;
        match out.matches(search).count() {
            1 => out = out.replacen(search, replace, 1),
            0 => return Err(format!("edits[{i}].search does not occur in the artifact")),
            n => return Err(format!("edits[{i}].search occurs {n} times; make it unique")),
        }
    }
    Ok(out)
}

#[async_trait]
impl Tool for ArtifactEdit {
    fn name(&self) -> &'static str {
        "artifact_edit"
    }
    fn description(&self) -> &'static str {
        "Change an artifact: mode 'patch' applies search/replace edits (each search must occur exactly once); mode 'rewrite' replaces the whole content."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["artifact_id", "mode"], "properties": {
            "artifact_id": {"type": "string"}, "mode": {"type": "string", "enum": ["patch", "rewrite"]},
            "content": {"type": "string"},
            "edits": {"type": "array", "items": {"type": "object", "required": ["search", "replace"], "properties": {
                "search": {"type": "string"}, "replace": {"type": "string"}}}}}})
    }
    async fn call(&self, _call_id: &str, args: Value, parts: &dyn PartSink) -> Result<ToolOutput, String> {
        let id = str_arg(&args, "artifact_id")?;
        let current = self.0.artifact(id).await?.ok_or(format!("there is no artifact '{id}' in this chat"))?;
        let content = match str_arg(&args, "mode")? {
            "rewrite" => args.get("content").and_then(Value::as_str).ok_or("mode 'rewrite' needs 'content'")?.to_owned(),
            "patch" => apply_patches(&current.content, args.get("edits").and_then(Value::as_array).ok_or("mode 'patch' needs 'edits'")?)?,
            other => return Err(format!("mode must be 'patch' or 'rewrite', not '{other}'")),
        };
        if content.len() > MAX_ARTIFACT_BYTES {
            return Err(format!("content would be {} bytes; the limit is {MAX_ARTIFACT_BYTES}", content.len()));
        }
        let version = self.0.update_artifact(id, &content).await?;
        parts.part(artifact_part(&ArtifactView { version, ..current }));
        Ok(ToolOutput::text(format!("Artifact {id} is now at version {version}.")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn patches_need_unique_matches() {
        let edits = |s: &str, r: &str| vec![json!({"search": s, "replace": r})];
        assert_eq!(apply_patches("a b c", &edits("b", "B")).unwrap(), "a B c");
        assert!(apply_patches("a b b", &edits("b", "B")).unwrap_err().contains("2 times"));
        assert!(apply_patches("a b c", &edits("x", "B")).unwrap_err().contains("does not occur"));
    }

    #[test]
    fn text_files_need_text_extensions() {
        assert_eq!(text_media_type("report.MD"), Some("text/markdown"));
        assert_eq!(text_media_type("data.csv"), Some("text/csv"));
        assert_eq!(text_media_type("tool.exe"), None);
        assert_eq!(text_media_type("noext"), None);
    }
}
