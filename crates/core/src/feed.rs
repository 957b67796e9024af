//! Live updates: every committed change reaches subscribers as a [`Change`].
//!
//! The audit log is the change feed: every mutation appends to it in its own transaction, so
//! tailing it by global position sees each commit once, in order, including commits made by
//! another process on the same data dir (`tale admin ...` while the server runs).

use crate::audit::{AuditRecord, Category};
use crate::permission::Permission;
use crate::store::Store;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, Notify};

/// A subject a page or client can subscribe to within one organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    Members,
    Audit,
    ApiKeys,
    Settings,
    /// Knowledge documents: their indexing state and progress (not audited per step).
    Knowledge,
}

impl Topic {
    pub const ALL: [Topic; 5] = [Topic::Members, Topic::Audit, Topic::ApiKeys, Topic::Settings, Topic::Knowledge];

    /// The permission a subscriber needs: the same one the matching read route needs.
    pub fn permission(self) -> Permission {
        match self {
            Topic::Members => Permission::MembersRead,
            Topic::Audit => Permission::AuditRead,
            Topic::ApiKeys => Permission::ApiKeysManage,
            Topic::Settings => Permission::OrgSettings,
            Topic::Knowledge => Permission::KnowledgeRead,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Members => "members",
            Topic::Audit => "audit",
            Topic::ApiKeys => "api_keys",
            Topic::Settings => "settings",
            Topic::Knowledge => "knowledge",
        }
    }

    pub fn parse(s: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One committed change: which organisation and which topics it touches.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub org_id: String,
    pub topics: Vec<Topic>,
    pub gid: i64,
    pub action: String,
}

/// Which topics an audit row invalidates.
pub fn topics_for(record: &AuditRecord) -> Vec<Topic> {
    let mut topics = vec![Topic::Audit];
    match (record.category, record.resource_type.as_str()) {
        (_, "api_key") => topics.push(Topic::ApiKeys),
        (_, "settings") => topics.push(Topic::Settings),
        (Category::Member, _) | (_, "invitation") | (_, "organization") => topics.push(Topic::Members),
        _ => {}
    }
    topics
}

/// Fan-out of committed changes to in-process subscribers.
pub struct ChangeFeed {
    sender: broadcast::Sender<Arc<Change>>,
    wake: Notify,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeFeed {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        ChangeFeed { sender, wake: Notify::new() }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.sender.subscribe()
    }

    /// Publishes a change that is not an audited commit (e.g. a document's indexing progress).
    pub fn publish(&self, change: Change) {
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send(Arc::new(change));
    }

    /// Called after a commit in this process so the tailer publishes at once instead of at its
    /// next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Publishes every audit row committed after the current head until `shutdown` resolves.
    /// Polls as a fallback for commits from other processes.
    pub async fn run_tailer(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        poll: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut last = store.audit_head_gid().await.unwrap_or(0);
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => return,
            }
            loop {
                let rows = match store.audit_since(last, 500).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, "change feed could not read the audit log");
                        break;
                    }
                };
                let done = rows.len() < 500;
                for row in rows {
                    last = last.max(row.gid);
                    let change = Change {
                        org_id: row.organization_id.clone(),
                        topics: topics_for(&row),
                        gid: row.gid,
                        action: row.action.clone(),
                    };
                    // No receivers is fine: nobody is watching.
                    let _ = self.sender.send(Arc::new(change));
                }
                if done {
                    break;
                }
            }
        }
    }
}
