//! Personal API keys: `tale_` + 40 random characters, shown once, stored as a SHA-256 hash,
//! bound to the creating user and organisation, revocable.

use super::{Principal, Services};
use crate::audit::{Actor, AuditDraft, Category, RequestMeta};
use crate::id::{new_id, now_ms};
use crate::model::{normalize_email, ApiKey};
use crate::permission::{Grant, Permission};
use crate::secret::{random_alphanumeric, sha256_hex};
use crate::{Error, Result};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The full key. This is the only time it is available.
    pub secret: String,
}

fn mint(user_id: &str, org_id: &str, name: &str) -> Result<(ApiKey, String)> {
    let name = name.trim();
    if name.chars().count() > 100 {
        return Err(Error::invalid("key name must be at most 100 characters"));
    }
    let secret = format!("tale_{}", random_alphanumeric(40));
    let key = ApiKey {
        id: new_id(),
        user_id: user_id.to_owned(),
        org_id: org_id.to_owned(),
        name: if name.is_empty() { "API key".into() } else { name.to_owned() },
        prefix: secret.chars().take(12).collect(),
        key_hash: sha256_hex(secret.as_bytes()),
        created_at: now_ms(),
        last_used_at: None,
        revoked_at: None,
    };
    Ok((key, secret))
}

impl Services {
    pub async fn api_keys(&self, principal: &Principal, grant: &Grant) -> Result<Vec<ApiKey>> {
        grant.require(Permission::ApiKeysManage)?;
        if let Some(list) = self.cache.api_keys(&principal.user.id, &grant.org_id) {
            return Ok(list);
        }
        let generation = self.cache.generation();
        let list = self.store.api_keys(&principal.user.id, &grant.org_id).await?;
        self.cache.put_api_keys(generation, &principal.user.id, &grant.org_id, &list);
        Ok(list)
    }

    pub async fn create_api_key(&self, principal: &Principal, grant: &Grant, name: &str, meta: &RequestMeta) -> Result<CreatedApiKey> {
        grant.require(Permission::ApiKeysManage)?;
        let (key, secret) = mint(&principal.user.id, &grant.org_id, name)?;
        let audit = AuditDraft::new(&grant.org_id, &Self::actor(principal, Some(grant)), meta, Category::Security, "api_key_created", "api_key")
            .resource(&key.id, &key.name)
            .metadata(serde_json::json!({"prefix": key.prefix}));
        self.store.create_api_key(&key, audit).await?;
        self.changed();
        Ok(CreatedApiKey { key, secret })
    }

    pub async fn revoke_api_key(&self, principal: &Principal, grant: &Grant, key_id: &str, meta: &RequestMeta) -> Result<()> {
        grant.require(Permission::ApiKeysManage)?;
        let audit = AuditDraft::new(&grant.org_id, &Self::actor(principal, Some(grant)), meta, Category::Security, "api_key_revoked", "api_key")
            .resource(key_id, "");
        self.store.revoke_api_key(&grant.org_id, &principal.user.id, key_id, now_ms(), audit).await?;
        self.changed();
        Ok(())
    }

    /// Operator command: a key for `email` in `org_slug`.
    pub async fn admin_create_api_key(&self, email: &str, org_slug: &str, name: &str) -> Result<CreatedApiKey> {
        let user = self.store.user_by_email(&normalize_email(email)).await?.ok_or(Error::NotFound("user"))?;
        let org = self.org(org_slug).await?;
        self.store.role_of(&org.id, &user.id).await?.ok_or(Error::NotFound("member"))?;
        let (key, secret) = mint(&user.id, &org.id, name)?;
        let audit = AuditDraft::new(&org.id, &Actor::cli(), &RequestMeta::default(), Category::Security, "api_key_created", "api_key")
            .resource(&key.id, &key.name)
            .metadata(serde_json::json!({"prefix": key.prefix, "user": user.email}));
        self.store.create_api_key(&key, audit).await?;
        self.changed();
        Ok(CreatedApiKey { key, secret })
    }
}
