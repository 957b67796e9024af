//! What tools may touch of a thread: its to-do list, its artifacts and its generated files.

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;
use tale_agent::tools::{ArtifactView, ToolHost};
use tale_core::chat::{Artifact, FileOrigin, FileRecord, Thread};
use tale_core::id::{new_id, now_ms};
use tale_core::store::Store;
use tale_objects::ObjectStore;

/// Generated files share the upload limit's order of magnitude but are capped tighter.
const MAX_GENERATED_BYTES: u64 = 20 * 1024 * 1024;

pub struct ThreadHost {
    store: Arc<dyn Store>,
    objects: ObjectStore,
    thread_id: String,
    org_id: String,
    user_id: String,
}

impl ThreadHost {
    pub fn new(store: Arc<dyn Store>, objects: ObjectStore, thread: &Thread, user_id: &str) -> Self {
        ThreadHost { store, objects, thread_id: thread.id.clone(), org_id: thread.org_id.clone(), user_id: user_id.to_owned() }
    }

    async fn current(&self, id: &str) -> Result<Option<Artifact>, String> {
        let a = self.store.artifact(id, None).await.map_err(|e| e.to_string())?;
        // Artifacts of other threads do not exist from here.
        Ok(a.filter(|a| a.thread_id == self.thread_id))
    }
}

#[async_trait]
impl ToolHost for ThreadHost {
    async fn todos(&self) -> Result<Value, String> {
        let t = self.store.thread(&self.thread_id).await.map_err(|e| e.to_string())?;
        Ok(t.map_or(Value::Array(Vec::new()), |t| t.todos))
    }

    async fn save_todos(&self, todos: &Value) -> Result<(), String> {
        self.store.set_thread_todos(&self.thread_id, todos, now_ms()).await.map_err(|e| e.to_string())
    }

    async fn create_artifact(&self, kind: &str, title: &str, language: Option<&str>, content: &str) -> Result<String, String> {
        let a = Artifact {
            id: new_id(),
            version: 1,
            org_id: self.org_id.clone(),
            thread_id: self.thread_id.clone(),
            kind: kind.to_owned(),
            title: title.to_owned(),
            language: language.map(str::to_owned),
            content: content.to_owned(),
            created_at: now_ms(),
        };
        self.store.put_artifact(&a).await.map_err(|e| e.to_string())?;
        Ok(a.id)
    }

    async fn artifact(&self, id: &str) -> Result<Option<ArtifactView>, String> {
        Ok(self.current(id).await?.map(|a| ArtifactView { id: a.id, kind: a.kind, title: a.title, language: a.language, content: a.content, version: a.version }))
    }

    async fn update_artifact(&self, id: &str, content: &str) -> Result<i64, String> {
        let current = self.current(id).await?.ok_or_else(|| format!("there is no artifact '{id}' in this chat"))?;
        let next = Artifact { version: current.version + 1, content: content.to_owned(), created_at: now_ms(), ..current };
        self.store.put_artifact(&next).await.map_err(|e| e.to_string())?;
        Ok(next.version)
    }

    async fn save_file(&self, name: &str, media_type: &str, bytes: Vec<u8>) -> Result<String, String> {
        let stored = self.objects.put_bytes(Bytes::from(bytes), MAX_GENERATED_BYTES).await.map_err(|e| e.to_string())?;
        let record = FileRecord {
            id: new_id(),
            org_id: self.org_id.clone(),
            user_id: self.user_id.clone(),
            thread_id: Some(self.thread_id.clone()),
            name: name.to_owned(),
            media_type: media_type.to_owned(),
            size: i64::try_from(stored.size).unwrap_or(i64::MAX),
            sha256: stored.sha256,
            origin: FileOrigin::Generated,
            created_at: now_ms(),
        };
        self.store.put_file(&record).await.map_err(|e| e.to_string())?;
        Ok(record.id)
    }
}
