//! The services every mutation goes through: they check the caller's [`Grant`], mint ids and
//! timestamps, build the audit entry, call the store (which commits change + audit together) and
//! wake the change feed. Handlers stay thin; the CLI calls the same functions.

mod accounts;
mod api_keys;
mod audit_log;
mod cache;
mod members;
mod rate_limit;
mod settings;

pub use accounts::{AuthVia, Principal, SignedIn};
pub use api_keys::CreatedApiKey;
pub use members::{CreatedInvitation, InvitationView};
pub use rate_limit::RateLimiter;

use crate::audit::{Actor, ActorType};
use crate::feed::ChangeFeed;
use crate::model::Org;
use crate::permission::{Access, Grant, Permission};
use crate::role::Role;
use crate::settings::OrgSettings;
use crate::store::Store;
use crate::{Error, Result};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shared state of the domain, cheap to clone behind an `Arc`.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub feed: Arc<ChangeFeed>,
    secret: Vec<u8>,
    session_ttl_ms: i64,
    site_url: String,
    setup_token: Mutex<Option<String>>,
    sign_in_limiter: RateLimiter,
    cache: cache::AuthCache,
}

impl Services {
    /// `secret` keys session-token hashes: changing it ends every session.
    pub fn new(store: Arc<dyn Store>, secret: &[u8], session_ttl: Duration, site_url: &str) -> Self {
        Services {
            store,
            feed: Arc::new(ChangeFeed::new()),
            secret: secret.to_vec(),
            session_ttl_ms: i64::try_from(session_ttl.as_millis()).unwrap_or(i64::MAX),
            site_url: site_url.trim_end_matches('/').to_owned(),
            setup_token: Mutex::new(None),
            // TALE-COMPAT §5.1: `security:login-ip`, 30 per minute per client IP.
            sign_in_limiter: RateLimiter::new(30, Duration::from_secs(60)),
            cache: cache::AuthCache::new(),
        }
    }

    pub fn site_url(&self) -> &str {
        &self.site_url
    }

    /// Whether first-run setup is still open, and if so a fresh one-time token for it.
    pub async fn prepare_setup(&self) -> Result<Option<String>> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let mut slot = self.setup_token.lock().map_err(|_| Error::Internal("setup token lock".into()))?;
        let token = slot.get_or_insert_with(crate::secret::random_token).clone();
        Ok(Some(token))
    }

    pub(crate) fn take_setup_token(&self, offered: &str) -> Result<()> {
        let mut slot = self.setup_token.lock().map_err(|_| Error::Internal("setup token lock".into()))?;
        match slot.as_deref() {
            Some(t) if crate::secret::constant_time_eq(t.as_bytes(), offered.as_bytes()) => {
                *slot = None;
                Ok(())
            }
            _ => Err(Error::invalid("the setup token is missing or wrong: use the setup link printed in the server log")),
        }
    }

    /// Called after every commit: drops cached identities and roles, wakes the change feed.
    pub(crate) fn changed(&self) {
        self.cache.clear();
        self.feed.wake();
    }

    /// For commits seen on the change feed that another process made.
    pub fn invalidate_caches(&self) {
        self.cache.clear();
    }

    /// Changes whenever any commit is seen: a response computed at one generation is current for
    /// as long as the generation stays the same.
    pub fn cache_generation(&self) -> u64 {
        self.cache.generation()
    }

    pub async fn org(&self, slug: &str) -> Result<Org> {
        if let Some(org) = self.cache.org(slug) {
            return Ok(org);
        }
        let generation = self.cache.generation();
        let org = self.store.org_by_slug(slug).await?.ok_or(Error::NotFound("organization"))?;
        self.cache.put_org(generation, &org);
        Ok(org)
    }

    async fn role_of(&self, org_id: &str, user_id: &str) -> Result<Option<Role>> {
        if let Some(role) = self.cache.role(org_id, user_id) {
            return Ok(role);
        }
        let generation = self.cache.generation();
        let role = self.store.role_of(org_id, user_id).await?;
        self.cache.put_role(generation, org_id, user_id, role);
        Ok(role)
    }

    pub async fn default_org(&self) -> Result<Org> {
        self.org(Org::DEFAULT_SLUG).await
    }

    /// The instance-wide security policy: the default organisation's settings.
    pub async fn security_policy(&self) -> Result<OrgSettings> {
        match self.store.org_by_slug(Org::DEFAULT_SLUG).await? {
            Some(org) => self.org_settings_of(&org.id).await,
            None => Ok(OrgSettings::default()),
        }
    }

    /// Checks `access` for `principal`; for organisation access `org_slug` names the org.
    /// Returns the grant for org-scoped access. Unknown orgs and orgs the caller is not in are
    /// both `NotFound`, so probing cannot tell them apart.
    pub async fn authorize(&self, principal: Option<&Principal>, access: Access, org_slug: Option<&str>) -> Result<Option<Grant>> {
        let (permission, slug) = match access {
            Access::Public => return Ok(None),
            Access::SignedIn => {
                principal.ok_or(Error::Unauthenticated)?;
                return Ok(None);
            }
            Access::Org(p) => (p, org_slug.ok_or(Error::NotFound("organization"))?),
            Access::Instance(p) => (p, Org::DEFAULT_SLUG),
            Access::Caller(p) => {
                let principal = principal.ok_or(Error::Unauthenticated)?;
                let slug = match org_slug {
                    Some(s) => s.to_owned(),
                    None => self.caller_org(principal).await?,
                };
                return self.grant(principal, &slug, p).await.map(Some);
            }
        };
        let principal = principal.ok_or(Error::Unauthenticated)?;
        self.grant(principal, slug, permission).await.map(Some)
    }

    /// The organisation a request means when it names none: the API key's, else the only one.
    async fn caller_org(&self, principal: &Principal) -> Result<String> {
        if let AuthVia::ApiKey { org_id, .. } = &principal.via {
            let org = self.store.org_by_id(org_id).await?.ok_or(Error::NotFound("organization"))?;
            return Ok(org.slug);
        }
        let all = self.store.orgs_for_user(&principal.user.id).await?;
        let active: Vec<&(Org, Role)> = all.iter().filter(|(_, r)| *r != Role::Disabled).collect();
        match (active.as_slice(), all.as_slice()) {
            ([(org, _)], _) => Ok(org.slug.clone()),
            // Only a disabled membership: name it, so the caller is told the role is refused.
            ([], [(org, _)]) => Ok(org.slug.clone()),
            _ => Err(Error::invalid("Failed to resolve organization: send X-Organization-Slug")),
        }
    }

    pub async fn grant(&self, principal: &Principal, org_slug: &str, permission: Permission) -> Result<Grant> {
        let org = self.org(org_slug).await?;
        if let AuthVia::ApiKey { org_id, .. } = &principal.via
            && *org_id != org.id
        {
            return Err(Error::NotFound("organization"));
        }
        let role = self.role_of(&org.id, &principal.user.id).await?.ok_or(Error::NotFound("organization"))?;
        Grant::check(permission, &org.id, &org.slug, &principal.user.id, role)
    }

    /// Who is acting, as the audit log records it.
    pub fn actor(principal: &Principal, grant: Option<&Grant>) -> Actor {
        Actor {
            id: principal.user.id.clone(),
            email: Some(principal.user.email.clone()),
            role: grant.map(|g| g.role),
            kind: match principal.via {
                AuthVia::ApiKey { .. } => ActorType::Api,
                AuthVia::Session { .. } => ActorType::User,
            },
        }
    }
}
