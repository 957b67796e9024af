//! Accounts: first-run setup, sign-in with lockout, sessions, passwords, operator commands.

use super::Services;
use crate::audit::{Actor, AuditDraft, Category, RequestMeta, Status};
use crate::id::{new_id, now_ms};
use crate::model::{normalize_email, valid_email, Org, Session, User};
use crate::store::EndSessions;
use crate::role::Role;
use crate::rules::{Assignment, RoleRequest};
use crate::secret::{hmac_hex, random_alphanumeric, random_token, sha256_hex};
use crate::{password, Error, Result};
use serde_json::json;

/// How a request proved who it is.
#[derive(Debug, Clone)]
pub enum AuthVia {
    Session { session_id: String, csrf_token: String },
    ApiKey { key_id: String, org_id: String },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub via: AuthVia,
}

impl Principal {
    pub fn session_id(&self) -> Option<&str> {
        match &self.via {
            AuthVia::Session { session_id, .. } => Some(session_id),
            AuthVia::ApiKey { .. } => None,
        }
    }
}

/// A new session: the cookie value is shown to the client once and stored only as a hash.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token: String,
    pub csrf_token: String,
    pub user: User,
    pub expires_at: i64,
    /// The password must be changed before anything else (set by an operator reset or rotation).
    pub must_change_password: bool,
}

/// Session and sign-in housekeeping keeps failed-attempt records for 30 days (TALE-COMPAT §5.1).
const ATTEMPT_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;
/// Sessions are extended at most this often, to keep reads from turning into writes.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid("name must be 1 to 200 characters"));
    }
    Ok(name.to_owned())
}

fn check_email(email: &str) -> Result<String> {
    let email = normalize_email(email);
    if !valid_email(&email) {
        return Err(Error::invalid(format!("'{email}' is not a valid e-mail address")));
    }
    Ok(email)
}

async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

async fn verify_password(phc: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => password::verify(&phc, &password),
        None => {
            password::verify_dummy(&password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

impl Services {
    pub(crate) fn session_hash(&self, token: &str) -> String {
        hmac_hex(&self.secret, token.as_bytes())
    }

    /// Builds a user record with a hashed password after checking the password policy.
    pub(crate) async fn new_user(&self, email: &str, name: &str, password: &str, must_change: bool) -> Result<User> {
        let email = check_email(email)?;
        let name = check_name(name)?;
        self.security_policy().await?.password_policy.check(password)?;
        let now = now_ms();
        Ok(User {
            id: new_id(),
            email,
            name,
            password_hash: hash_password(password.to_owned()).await?,
            must_change_password: must_change,
            created_at: now,
            password_changed_at: now,
        })
    }

    /// First-run setup: creates the `default` organisation and its Owner, and signs them in.
    pub async fn setup(
        &self,
        token: &str,
        email: &str,
        name: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<SignedIn> {
        if self.store.count_users().await? > 0 {
            return Err(Error::SetupClosed);
        }
        let user = self.new_user(email, name, password, false).await?;
        self.take_setup_token(token)?;
        let org = self.bootstrap(&user, meta).await?;
        self.start_session(user, &org.id, meta).await
    }

    async fn bootstrap(&self, user: &User, meta: &RequestMeta) -> Result<Org> {
        let org = Org { id: new_id(), slug: Org::DEFAULT_SLUG.into(), name: "Default".into(), created_at: now_ms() };
        let actor = Actor { id: user.id.clone(), email: Some(user.email.clone()), role: Some(Role::Owner), kind: crate::audit::ActorType::User };
        let audit = AuditDraft::new(&org.id, &actor, meta, Category::Admin, "setup_completed", "organization")
            .resource(&org.id, &org.slug)
            .states(None, Some(json!({"owner": user.email, "organization": org.slug})));
        self.store.bootstrap(&org, user, audit).await?;
        self.changed();
        Ok(org)
    }

    pub(crate) async fn start_session(&self, user: User, audit_org: &str, meta: &RequestMeta) -> Result<SignedIn> {
        let token = random_token();
        let now = now_ms();
        let session = Session {
            id: new_id(),
            user_id: user.id.clone(),
            token_hash: self.session_hash(&token),
            csrf_token: random_token(),
            created_at: now,
            expires_at: now + self.session_ttl_ms,
            last_seen_at: now,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
        };
        let actor = Actor { id: user.id.clone(), email: Some(user.email.clone()), role: None, kind: crate::audit::ActorType::User };
        let mut meta = meta.clone();
        meta.session_id = Some(session.id.clone());
        let audit = AuditDraft::new(audit_org, &actor, &meta, Category::Auth, "sign_in", "session")
            .resource(&session.id, &user.email);
        self.store.create_session(&session, &user.email, audit).await?;
        self.changed();
        let rotation_days = i64::from(self.security_policy().await?.password_policy.rotation_days);
        let rotation_due = rotation_days > 0 && now - user.password_changed_at > rotation_days * 86_400_000;
        if rotation_due && !user.must_change_password {
            // Recorded on the account, so every route enforces it until the password changes.
            let audit = AuditDraft::new(audit_org, &actor, &meta, Category::Security, "password_expired", "user").resource(&user.id, &user.email);
            self.store.set_password(&user.id, &user.password_hash, true, EndSessions::None, audit).await?;
            self.changed();
        }
        Ok(SignedIn {
            token,
            csrf_token: session.csrf_token,
            must_change_password: user.must_change_password || rotation_due,
            expires_at: session.expires_at,
            user,
        })
    }

    /// Checks a password for an e-mail address under the lockout policy: a locked address is
    /// refused before any work; a wrong password (or an unknown address, which costs the same
    /// argon2 work) counts a failure and is audited as `action`. Sign-in, accepting an invitation
    /// for an existing account and changing a password all go through here.
    pub(crate) async fn guarded_verify(&self, email: &str, phc: Option<String>, password: &str, action: &str, meta: &RequestMeta) -> Result<()> {
        let email_key = normalize_email(email);
        let now = now_ms();
        let default_org = self.store.org_by_slug(Org::DEFAULT_SLUG).await?;
        let audit = |message: &str, status: Status| {
            default_org.as_ref().map(|org| {
                let actor = Actor { id: "anonymous".into(), email: Some(email_key.clone()), role: None, kind: crate::audit::ActorType::User };
                AuditDraft::new(&org.id, &actor, meta, Category::Auth, action, "session").failed(status, message)
            })
        };
        if let Some(attempts) = self.store.login_attempts(&email_key).await?
            && attempts.locked_until > now {
                let retry_after_secs = u64::try_from((attempts.locked_until - now + 999) / 1000).unwrap_or(1);
                if let Some(a) = audit("account locked", Status::Denied) {
                    self.store.append_audit(a).await?;
                    self.changed();
                }
                return Err(Error::AccountLocked { retry_after_secs });
            }
        if verify_password(phc, password.to_owned()).await {
            return Ok(());
        }
        if let Some(a) = audit("invalid email or password", Status::Failure) {
            let policy = self.security_policy().await?.login_policy;
            self.store.record_login_failure(&email_key, now, &policy, a).await?;
            self.changed();
        }
        Err(Error::InvalidCredentials)
    }

    /// Password sign-in. Unknown e-mail and wrong password give the same error after the same work.
    pub async fn sign_in(&self, email: &str, password: &str, meta: &RequestMeta) -> Result<SignedIn> {
        if let Err(retry_after_secs) = self.sign_in_limiter.hit(meta.ip.as_deref().unwrap_or("unknown")) {
            return Err(Error::RateLimited { retry_after_secs });
        }
        let user = self.store.user_by_email(&normalize_email(email)).await?;
        self.guarded_verify(email, user.as_ref().map(|u| u.password_hash.clone()), password, "sign_in_failed", meta).await?;
        let (Some(user), Some(org)) = (user, self.store.org_by_slug(Org::DEFAULT_SLUG).await?) else {
            return Err(Error::InvalidCredentials);
        };
        self.start_session(user, &org.id, meta).await
    }

    /// Resolves a session cookie value; slides the expiry forward on use.
    pub async fn authenticate_session(&self, token: &str) -> Result<Principal> {
        if token.is_empty() || token.len() > 200 {
            return Err(Error::Unauthenticated);
        }
        let hash = self.session_hash(token);
        let now = now_ms();
        if let Some(p) = self.cache.principal(&hash, now) {
            return Ok(p);
        }
        let generation = self.cache.generation();
        let (session, user) = self.store.session_by_token_hash(&hash).await?.ok_or(Error::Unauthenticated)?;
        if session.expires_at <= now {
            return Err(Error::Unauthenticated);
        }
        let mut expires_at = session.expires_at;
        if now - session.last_seen_at > TOUCH_EVERY_MS {
            expires_at = expires_at.max(now + self.session_ttl_ms);
            self.store.touch_session(&session.id, now, expires_at).await?;
        }
        let principal = Principal { user, via: AuthVia::Session { session_id: session.id, csrf_token: session.csrf_token } };
        self.cache.put_principal(generation, &hash, &principal, expires_at);
        Ok(principal)
    }

    /// Resolves `Authorization: Bearer tale_...`.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal> {
        if !key.starts_with("tale_") || key.len() > 200 {
            return Err(Error::Unauthenticated);
        }
        let hash = sha256_hex(key.as_bytes());
        let now = now_ms();
        if let Some(p) = self.cache.principal(&hash, now) {
            return Ok(p);
        }
        let generation = self.cache.generation();
        let (api_key, user) = self.store.api_key_by_hash(&hash).await?.ok_or(Error::Unauthenticated)?;
        if api_key.revoked_at.is_some() {
            return Err(Error::Unauthenticated);
        }
        if api_key.last_used_at.is_none_or(|t| now - t > TOUCH_EVERY_MS) {
            self.store.touch_api_key(&api_key.id, now).await?;
        }
        let principal = Principal { user, via: AuthVia::ApiKey { key_id: api_key.id, org_id: api_key.org_id } };
        self.cache.put_principal(generation, &hash, &principal, i64::MAX);
        Ok(principal)
    }

    async fn auth_audit(&self, principal: &Principal, action: &str, meta: &RequestMeta) -> Result<AuditDraft> {
        let org = self.default_org().await?;
        Ok(AuditDraft::new(&org.id, &Self::actor(principal, None), meta, Category::Auth, action, "session")
            .resource(principal.session_id().unwrap_or(""), &principal.user.email))
    }

    pub async fn sign_out(&self, principal: &Principal, meta: &RequestMeta) -> Result<()> {
        let Some(session_id) = principal.session_id() else { return Ok(()) };
        let audit = self.auth_audit(principal, "sign_out", meta).await?;
        self.store.delete_session(session_id, audit).await?;
        self.changed();
        Ok(())
    }

    /// Ends every session of the caller, on every device.
    pub async fn sign_out_everywhere(&self, principal: &Principal, meta: &RequestMeta) -> Result<u64> {
        let audit = self.auth_audit(principal, "sign_out_everywhere", meta).await?;
        let n = self.store.delete_user_sessions(&principal.user.id, audit).await?;
        self.changed();
        Ok(n)
    }

    pub async fn change_password(&self, principal: &Principal, current: &str, new: &str, meta: &RequestMeta) -> Result<()> {
        self.guarded_verify(&principal.user.email, Some(principal.user.password_hash.clone()), current, "password_change_failed", meta).await?;
        if current == new {
            return Err(Error::WeakPassword("the new password must differ from the current one".into()));
        }
        self.security_policy().await?.password_policy.check(new)?;
        let hash = hash_password(new.to_owned()).await?;
        let org = self.default_org().await?;
        let audit = AuditDraft::new(&org.id, &Self::actor(principal, None), meta, Category::Auth, "password_changed", "user")
            .resource(&principal.user.id, &principal.user.email);
        // Other sessions end: a password change is how people lock out a stolen session.
        let end = match principal.session_id() {
            Some(id) => EndSessions::AllBut(id.to_owned()),
            None => EndSessions::All,
        };
        self.store.set_password(&principal.user.id, &hash, false, end, audit).await?;
        self.changed();
        Ok(())
    }

    /// Removes expired sessions and old sign-in attempt records.
    pub async fn purge_expired(&self) -> Result<u64> {
        let now = now_ms();
        self.store.purge_expired(now, now - ATTEMPT_RETENTION_MS).await
    }

    // ----- operator commands (`tale admin ...`): no grant, recorded as the `cli` actor -----

    async fn user_by_email_or_404(&self, email: &str) -> Result<User> {
        self.store.user_by_email(&normalize_email(email)).await?.ok_or(Error::NotFound("user"))
    }

    /// Creates an account in `org_slug`. The very first account must be the Owner and creates
    /// the default organisation.
    pub async fn admin_create_user(&self, email: &str, name: Option<&str>, password: &str, role: Role, org_slug: &str) -> Result<User> {
        let email_n = check_email(email)?;
        let name = name.map(str::to_owned).unwrap_or_else(|| email_n.split('@').next().unwrap_or("").to_owned());
        let user = self.new_user(&email_n, &name, password, false).await?;
        if self.store.count_users().await? == 0 {
            if role != Role::Owner {
                return Err(Error::rule("the first account must be the Owner: pass --role owner"));
            }
            self.bootstrap(&user, &RequestMeta::default()).await?;
            return Ok(user);
        }
        if role == Role::Owner {
            return Err(Error::rule(
                "an organisation has exactly one Owner: create the account with another role, then transfer ownership with `tale admin set-role --role owner`",
            ));
        }
        let org = self.org(org_slug).await?;
        let audit = AuditDraft::new(&org.id, &Actor::cli(), &RequestMeta::default(), Category::Member, "member_added", "member")
            .resource(&user.id, &user.email)
            .states(None, Some(json!({"role": role.as_str()})));
        self.store.create_user(&user, &org.id, role, audit).await?;
        self.changed();
        Ok(user)
    }

    /// Sets a member's role; `owner` transfers ownership (the previous Owner becomes Admin).
    pub async fn admin_set_role(&self, email: &str, role: Role, org_slug: &str) -> Result<Vec<Assignment>> {
        let user = self.user_by_email_or_404(email).await?;
        let org = self.org(org_slug).await?;
        let audit = AuditDraft::new(&org.id, &Actor::cli(), &RequestMeta::default(), Category::Member, "role_changed", "member")
            .resource(&user.id, &user.email);
        let changes = self
            .store
            .change_roles(&org.id, &RoleRequest::Set { actor: None, target: user.id.clone(), role }, audit)
            .await?;
        self.changed();
        Ok(changes)
    }

    /// Sets a new password (generated when `password` is `None`, and returned), ends the user's
    /// sessions, clears any lockout and requires a change at next sign-in.
    pub async fn admin_reset_password(&self, email: &str, password: Option<&str>) -> Result<String> {
        let user = self.user_by_email_or_404(email).await?;
        let password = match password {
            Some(p) => {
                self.security_policy().await?.password_policy.check(p)?;
                p.to_owned()
            }
            None => generated_password(),
        };
        let hash = hash_password(password.clone()).await?;
        let org = self.default_org().await?;
        let audit = AuditDraft::new(&org.id, &Actor::cli(), &RequestMeta::default(), Category::Security, "password_reset", "user")
            .resource(&user.id, &user.email);
        self.store.set_password(&user.id, &hash, true, EndSessions::All, audit).await?;
        self.changed();
        Ok(password)
    }
}

/// A random password that satisfies any policy the settings allow (mixed classes, 20 chars).
fn generated_password() -> String {
    format!("{}-Aa7!", random_alphanumeric(16))
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_password_meets_strict_policy() {
        let p = super::generated_password();
        let strict = crate::settings::PasswordPolicy { require_special: true, min_length: 20, ..Default::default() };
        assert!(strict.check(&p).is_ok(), "{p}");
    }
}
