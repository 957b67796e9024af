//! Threads: list and search by title, open, rename, delete, share read-only by link, and
//! subscribe to live changes.

use crate::{Caller, ChatService, ThreadView};
use serde_json::json;
use tale_core::audit::{AuditDraft, Category};
use tale_core::chat::{clean_title, Thread};
use tale_core::id::{new_id, now_ms};
use tale_core::permission::Permission;
use tale_core::{Error, Result};

const NEW_CHAT: &str = "New chat";

impl ChatService {
    fn thread_audit(&self, c: &Caller<'_>, action: &str, t: &Thread) -> AuditDraft {
        AuditDraft::new(&c.grant.org_id, &c.actor(), c.meta, Category::Data, action, "thread").resource(&t.id, &t.title)
    }

    /// The caller's threads in this organisation, most recently active first.
    pub async fn threads(&self, c: &Caller<'_>, title_query: Option<&str>, limit: u32) -> Result<Vec<Thread>> {
        c.grant.require(Permission::ChatUse)?;
        let q = title_query.map(str::trim).filter(|q| !q.is_empty());
        if q.is_some_and(|q| q.chars().count() > 200) {
            return Err(Error::invalid("the search text is longer than 200 characters"));
        }
        self.store().threads(&c.grant.org_id, &c.grant.user_id, q, limit.clamp(1, 200)).await
    }

    /// A new, empty thread with an agent the caller may use.
    pub async fn create_thread(&self, c: &Caller<'_>, agent_slug: &str, title: Option<&str>) -> Result<Thread> {
        c.grant.require(Permission::ChatUse)?;
        let snap = self.catalog.snapshot(&c.grant.org_slug);
        match snap.agents.agent(agent_slug) {
            Some(a) if a.usable_by(c.grant.role) => {}
            _ => return Err(Error::invalid(format!("there is no agent '{agent_slug}' you can chat with"))),
        }
        let now = now_ms();
        let thread = Thread {
            id: new_id(),
            org_id: c.grant.org_id.clone(),
            user_id: c.grant.user_id.clone(),
            agent_slug: agent_slug.to_owned(),
            title: title.map(clean_title).transpose()?.unwrap_or_else(|| NEW_CHAT.to_owned()),
            head_id: None,
            todos: json!([]),
            share_token_hash: None,
            created_at: now,
            updated_at: now,
        };
        let audit = self.thread_audit(c, "thread_created", &thread).states(None, Some(json!({"agent": agent_slug})));
        self.store().create_thread(&thread, audit).await?;
        self.services.feed.wake();
        Ok(thread)
    }

    /// The thread with the branch on screen (and the live answer, if one is being written).
    pub async fn thread(&self, c: &Caller<'_>, thread_id: &str) -> Result<ThreadView> {
        let thread = self.own_thread(c, thread_id).await?;
        let live = self.hub.live(thread_id);
        let all = self.store().messages(thread_id).await?;
        Ok(self.thread_view(thread, &all, live, &c.grant.org_slug, c.locale))
    }

    pub async fn rename_thread(&self, c: &Caller<'_>, thread_id: &str, title: &str) -> Result<Thread> {
        let mut thread = self.own_thread(c, thread_id).await?;
        let title = clean_title(title)?;
        let audit = self.thread_audit(c, "thread_renamed", &thread).states(Some(json!({"title": thread.title})), Some(json!({"title": title})));
        let now = now_ms();
        self.store().rename_thread(thread_id, &title, now, audit).await?;
        self.services.feed.wake();
        thread.title = title;
        thread.updated_at = now;
        self.publish(thread_id, json!({"type": "renamed", "thread": thread_id, "title": thread.title}));
        Ok(thread)
    }

    /// Deletes the thread, stopping its answer if one is being written.
    pub async fn delete_thread(&self, c: &Caller<'_>, thread_id: &str) -> Result<()> {
        let thread = self.own_thread(c, thread_id).await?;
        self.hub.stop(thread_id);
        self.store().delete_thread(thread_id, self.thread_audit(c, "thread_deleted", &thread)).await?;
        self.services.feed.wake();
        self.publish(thread_id, json!({"type": "deleted", "thread": thread_id}));
        Ok(())
    }

    /// Shares the thread read-only with members of its organisation; returns the link. Sharing
    /// again makes a new link (the old one stops working).
    pub async fn share_thread(&self, c: &Caller<'_>, thread_id: &str) -> Result<String> {
        let thread = self.own_thread(c, thread_id).await?;
        let token = tale_core::secret::random_token();
        let hash = tale_core::secret::sha256_hex(token.as_bytes());
        self.store().set_thread_share(thread_id, Some(&hash), now_ms(), self.thread_audit(c, "thread_shared", &thread)).await?;
        self.services.feed.wake();
        Ok(format!("{}/share/{token}", self.config.site_url))
    }

    pub async fn unshare_thread(&self, c: &Caller<'_>, thread_id: &str) -> Result<()> {
        let thread = self.own_thread(c, thread_id).await?;
        self.store().set_thread_share(thread_id, None, now_ms(), self.thread_audit(c, "thread_unshared", &thread)).await?;
        self.services.feed.wake();
        Ok(())
    }

    /// The thread a share link names, for someone in its organisation. The link is checked
    /// first; `authorize` then checks the reader's membership of the thread's organisation.
    pub async fn shared_thread<F, Fut>(&self, token: &str, locale: &str, authorize: F) -> Result<ThreadView>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<tale_core::permission::Grant>>,
    {
        let hash = tale_core::secret::sha256_hex(token.as_bytes());
        let thread = self.store().thread_by_share_hash(&hash).await?.ok_or(Error::NotFound("shared chat"))?;
        let org = self.store().org_by_id(&thread.org_id).await?.ok_or(Error::NotFound("shared chat"))?;
        let grant = authorize(org.slug.clone()).await.map_err(|_| Error::NotFound("shared chat"))?;
        grant.require(Permission::ChatUse)?;
        let all = self.store().messages(&thread.id).await?;
        Ok(self.thread_view(thread, &all, None, &org.slug, locale))
    }

    /// Subscribes the caller to live events of one of their threads; returns the receiver and the
    /// thread as of the subscription (events received afterwards are newer).
    pub async fn subscribe(&self, c: &Caller<'_>, thread_id: &str) -> Result<(tokio::sync::broadcast::Receiver<crate::live::Event>, ThreadView)> {
        let thread = self.own_thread(c, thread_id).await?;
        let (receiver, live) = self.hub.subscribe(thread_id);
        let all = self.store().messages(thread_id).await?;
        Ok((receiver, self.thread_view(thread, &all, live, &c.grant.org_slug, c.locale)))
    }

    /// Re-checks that the caller still owns the thread (before each live delivery).
    pub async fn still_owns(&self, c: &Caller<'_>, thread_id: &str) -> Result<()> {
        self.own_thread(c, thread_id).await.map(|_| ())
    }
}
