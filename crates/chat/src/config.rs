//! Editing agents (Editors and up) and providers (Admins) from the UI: the same JSON files the
//! reference reads, validated by the same parsers, written atomically with the previous version
//! kept in `.history/`, audited with before and after, and picked up by the catalog at once.
//! Provider API keys go to `<slug>.secrets.json`, SOPS-encrypted to the configured age keys;
//! they are never read back out.

use crate::{Caller, ChatService};
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tale_agent::config::{agents_dir, parse_agent, valid_agent_slug};
use tale_agent::files::{self, FileError, Version};
use tale_core::audit::{AuditDraft, Category};
use tale_core::permission::Permission;
use tale_core::{Error, Result};
use tale_llm::loader::{providers_dir, valid_provider_slug};
use tale_llm::provider::parse_provider;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentDetail {
    pub slug: String,
    /// The file as JSON (what the editor shows).
    pub document: Value,
    pub warnings: Vec<String>,
    /// Tools the file lists that cannot run in this version, and why.
    pub unavailable_tools: Vec<(String, String)>,
    pub history: Vec<Version>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretsStatus {
    pub present: bool,
    pub encrypted: bool,
    /// Why the file cannot be read, when it cannot (never its content).
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderDetail {
    pub slug: String,
    pub document: Value,
    pub warnings: Vec<String>,
    pub secrets: SecretsStatus,
    pub history: Vec<Version>,
}

fn file_error(e: FileError) -> Error {
    match e {
        FileError::NoSuchVersion => Error::NotFound("version"),
        FileError::Io { .. } => Error::Internal(e.to_string()),
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).unwrap_or(Value::String(text)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Internal(format!("{}: {e}", path.display()))),
    }
}

fn pretty(doc: &Value) -> Result<String> {
    if !doc.is_object() {
        return Err(Error::invalid("the file must hold a JSON object"));
    }
    let mut text = serde_json::to_string_pretty(doc).map_err(|e| Error::Internal(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

fn problems(list: Vec<String>) -> Error {
    Error::invalid(list.join("; "))
}

impl ChatService {
    fn agents_dir(&self, org_slug: &str) -> PathBuf {
        agents_dir(self.catalog.config_dir(), org_slug)
    }

    fn providers_dir(&self, org_slug: &str) -> PathBuf {
        providers_dir(self.catalog.config_dir(), org_slug)
    }

    fn config_audit(&self, c: &Caller<'_>, category: Category, action: &str, kind: &str, slug: &str) -> AuditDraft {
        AuditDraft::new(&c.grant.org_id, &c.actor(), c.meta, category, action, kind).resource(slug, slug)
    }

    fn changed_config(&self, c: &Caller<'_>) {
        self.catalog.invalidate(&c.grant.org_slug);
        self.services.feed.wake();
    }

    pub async fn agent_detail(&self, c: &Caller<'_>, slug: &str) -> Result<AgentDetail> {
        c.grant.require(Permission::AgentsManage)?;
        let dir = self.agents_dir(&c.grant.org_slug);
        let document = read_json(&dir.join(format!("{slug}.json")))?.ok_or(Error::NotFound("agent"))?;
        let (warnings, unavailable_tools) = match parse_agent(slug, &document.to_string()) {
            Ok(a) => {
                let reason = |t: &str| tale_agent::tools::unavailable_reason(t).or_else(|| tale_agent::tools::knowledge::mode_reason(&a, t));
                let unavailable = a.tool_names.iter().filter_map(|t| reason(t).map(|r| (t.clone(), r.to_owned()))).collect();
                (a.warnings, unavailable)
            }
            Err(problems) => (problems, Vec::new()),
        };
        Ok(AgentDetail { slug: slug.to_owned(), document, warnings, unavailable_tools, history: files::history(&dir, slug) })
    }

    /// Creates or replaces an agent file after validating it.
    pub async fn save_agent(&self, c: &Caller<'_>, slug: &str, document: &Value) -> Result<AgentDetail> {
        c.grant.require(Permission::AgentsManage)?;
        if !valid_agent_slug(slug) {
            return Err(Error::invalid("the agent's slug must be lowercase letters, digits, - and _ (at most 100)"));
        }
        let text = pretty(document)?;
        parse_agent(slug, &text).map_err(problems)?;
        let dir = self.agents_dir(&c.grant.org_slug);
        let before = read_json(&dir.join(format!("{slug}.json")))?;
        let action = if before.is_some() { "agent_updated" } else { "agent_created" };
        files::save(&dir, slug, &text).map_err(file_error)?;
        let audit = self.config_audit(c, Category::Ai, action, "agent", slug).states(before, Some(document.clone()));
        self.store().append_audit(audit).await?;
        self.changed_config(c);
        self.agent_detail(c, slug).await
    }

    pub async fn delete_agent(&self, c: &Caller<'_>, slug: &str) -> Result<()> {
        c.grant.require(Permission::AgentsManage)?;
        let dir = self.agents_dir(&c.grant.org_slug);
        let before = read_json(&dir.join(format!("{slug}.json")))?.ok_or(Error::NotFound("agent"))?;
        files::remove(&dir, slug).map_err(file_error)?;
        self.store().append_audit(self.config_audit(c, Category::Ai, "agent_deleted", "agent", slug).states(Some(before), None)).await?;
        self.changed_config(c);
        Ok(())
    }

    pub async fn agent_version(&self, c: &Caller<'_>, slug: &str, version: i64) -> Result<Value> {
        c.grant.require(Permission::AgentsManage)?;
        let text = files::read_version(&self.agents_dir(&c.grant.org_slug), slug, version).map_err(file_error)?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Makes an earlier version current again (the current one joins the history).
    pub async fn restore_agent(&self, c: &Caller<'_>, slug: &str, version: i64) -> Result<AgentDetail> {
        let document = self.agent_version(c, slug, version).await?;
        self.save_agent(c, slug, &document).await
    }

    fn secrets_status(&self, path: &Path) -> SecretsStatus {
        if !path.exists() {
            return SecretsStatus { present: false, encrypted: false, problem: None };
        }
        let encrypted = tale_secrets::file::read_document(path).map(|d| tale_secrets::sops::is_sops(&d)).unwrap_or(false);
        let problem = tale_secrets::read_secrets(path, &self.age_keys).err().map(|e| e.to_string());
        SecretsStatus { present: true, encrypted, problem }
    }

    pub async fn provider_detail(&self, c: &Caller<'_>, slug: &str) -> Result<ProviderDetail> {
        c.grant.require(Permission::OrgSettings)?;
        let dir = self.providers_dir(&c.grant.org_slug);
        let document = read_json(&dir.join(format!("{slug}.json")))?.ok_or(Error::NotFound("provider"))?;
        let warnings = match parse_provider(slug, &document.to_string()) {
            Ok(p) => p.warnings,
            Err(problems) => problems,
        };
        Ok(ProviderDetail {
            slug: slug.to_owned(),
            document,
            warnings,
            secrets: self.secrets_status(&dir.join(format!("{slug}.secrets.json"))),
            history: files::history(&dir, slug),
        })
    }

    /// Creates or replaces a provider file; with `api_key`, also its secrets file (encrypted to
    /// the age keys when there are any, else plaintext with mode 0600 as the reference does).
    pub async fn save_provider(&self, c: &Caller<'_>, slug: &str, document: &Value, api_key: Option<&str>) -> Result<ProviderDetail> {
        c.grant.require(Permission::OrgSettings)?;
        if !valid_provider_slug(slug) {
            return Err(Error::invalid("the provider's slug must be lowercase letters, digits, - and _ (at most 100)"));
        }
        let text = pretty(document)?;
        parse_provider(slug, &text).map_err(problems)?;
        let dir = self.providers_dir(&c.grant.org_slug);
        let secrets_path = dir.join(format!("{slug}.secrets.json"));
        let api_key = api_key.map(str::trim).filter(|k| !k.is_empty());
        let recipients = self.age_keys.recipients();
        if let Some(key) = api_key {
            // Keep per-model keys from a readable existing file; refuse to overwrite one that
            // cannot be read (its keys would be lost silently).
            let model_keys = if secrets_path.exists() {
                tale_secrets::read_secrets(&secrets_path, &self.age_keys)
                    .map_err(|e| Error::Conflict(format!("the existing secrets file cannot be read, so it is not overwritten: {e}")))?
                    .model_keys
            } else {
                Default::default()
            };
            let secrets = tale_secrets::ProviderSecrets { api_key: key.to_owned(), model_keys, encrypted: !recipients.is_empty() };
            std::fs::create_dir_all(&dir).map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?;
            tale_secrets::write_secrets(&secrets_path, &secrets, &recipients).map_err(|e| Error::Internal(e.to_string()))?;
        }
        let before = read_json(&dir.join(format!("{slug}.json")))?;
        let action = if before.is_some() { "provider_updated" } else { "provider_created" };
        files::save(&dir, slug, &text).map_err(file_error)?;
        let audit = self
            .config_audit(c, Category::Admin, action, "provider", slug)
            .states(before, Some(document.clone()))
            .metadata(json!({"apiKey": if api_key.is_some() { "changed" } else { "unchanged" }, "encrypted": !recipients.is_empty()}));
        self.store().append_audit(audit).await?;
        self.changed_config(c);
        self.provider_detail(c, slug).await
    }

    pub async fn delete_provider(&self, c: &Caller<'_>, slug: &str) -> Result<()> {
        c.grant.require(Permission::OrgSettings)?;
        let dir = self.providers_dir(&c.grant.org_slug);
        let before = read_json(&dir.join(format!("{slug}.json")))?.ok_or(Error::NotFound("provider"))?;
        files::remove(&dir, slug).map_err(file_error)?;
        let secrets = dir.join(format!("{slug}.secrets.json"));
        if secrets.exists() {
            std::fs::remove_file(&secrets).map_err(|e| Error::Internal(format!("{}: {e}", secrets.display())))?;
        }
        self.store().append_audit(self.config_audit(c, Category::Admin, "provider_deleted", "provider", slug).states(Some(before), None)).await?;
        self.changed_config(c);
        Ok(())
    }
}
