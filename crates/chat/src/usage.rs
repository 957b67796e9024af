//! The usage ledger: totals per user, agent or model for Admins, each run's log for its owner
//! (and Admins), and ledger rows for calls through the OpenAI-compatible API.

use crate::{Caller, ChatService};
use tale_core::chat::{Run, TokenCounts, UsageEntry, UsageGroup, UsageTotal};
use tale_core::id::{new_id, now_ms};
use tale_core::permission::Permission;
use tale_core::{Error, Result};

impl ChatService {
    pub async fn usage_totals(&self, c: &Caller<'_>, since: i64, by: UsageGroup) -> Result<Vec<UsageTotal>> {
        c.grant.require(Permission::OrgSettings)?;
        self.store().usage_totals(&c.grant.org_id, since, by).await
    }

    /// A run's record: its owner's, or any in the organisation for Admins.
    pub async fn run(&self, c: &Caller<'_>, run_id: &str) -> Result<Run> {
        c.grant.require(Permission::ChatUse)?;
        let run = self.store().run(run_id).await?.filter(|r| r.org_id == c.grant.org_id).ok_or(Error::NotFound("run"))?;
        if run.user_id != c.grant.user_id && !Permission::OrgSettings.allows(c.grant.role) {
            return Err(Error::NotFound("run"));
        }
        Ok(run)
    }

    pub async fn thread_runs(&self, c: &Caller<'_>, thread_id: &str) -> Result<Vec<Run>> {
        self.own_thread(c, thread_id).await?;
        self.store().thread_runs(thread_id).await
    }

    pub async fn recent_runs(&self, c: &Caller<'_>, limit: u32) -> Result<Vec<Run>> {
        c.grant.require(Permission::OrgSettings)?;
        self.store().recent_runs(&c.grant.org_id, limit.clamp(1, 500)).await
    }

    /// Records a call made through the OpenAI-compatible API.
    pub async fn record_api_usage(&self, c: &Caller<'_>, provider: &str, model: &tale_llm::Model, tokens: TokenCounts) -> Result<()> {
        let entry = UsageEntry {
            id: new_id(),
            org_id: c.grant.org_id.clone(),
            user_id: c.grant.user_id.clone(),
            agent_slug: None,
            provider: provider.to_owned(),
            model: model.id.clone(),
            run_id: None,
            cost_cents: tale_agent::runtime::cost_cents(model, &tokens),
            tokens,
            at: now_ms(),
        };
        self.store().record_usage(&entry).await
    }
}
