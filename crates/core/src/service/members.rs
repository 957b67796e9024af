//! Organisations, members, roles and invitations.

use super::{Principal, Services, SignedIn};
use crate::audit::{Actor, ActorType, AuditDraft, Category, RequestMeta};
use crate::id::{new_id, now_ms};
use crate::model::{normalize_email, valid_slug, Invitation, Member, Org, User};
use crate::permission::{Grant, Permission};
use crate::role::Role;
use crate::rules::{Assignment, RoleRequest};
use crate::secret::{hmac_hex, random_token};
use crate::{Error, Result};
use serde::Serialize;
use serde_json::json;

/// Invitations are valid for a week.
const INVITATION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// A new invitation and the link to hand to the invitee (shown once; no mail server needed).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedInvitation {
    pub invitation: Invitation,
    pub link: String,
}

/// What the invitee sees before accepting.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationView {
    pub email: String,
    pub role: Role,
    pub organization: String,
    pub organization_slug: String,
    /// An account with this e-mail exists: accepting asks for its password instead of a new one.
    pub account_exists: bool,
    pub expires_at: i64,
    #[serde(skip)]
    pub invitation: Option<Invitation>,
}

impl Services {
    fn invitation_hash(&self, token: &str) -> String {
        hmac_hex(&self.secret, format!("invitation:{token}").as_bytes())
    }

    pub async fn orgs_for(&self, principal: &Principal) -> Result<Vec<(Org, Role)>> {
        let mut orgs = match self.cache.memberships(&principal.user.id) {
            Some(list) => list,
            None => {
                let generation = self.cache.generation();
                let list = self.store.orgs_for_user(&principal.user.id).await?;
                self.cache.put_memberships(generation, &principal.user.id, &list);
                list
            }
        };
        // Orgs where the user is disabled are left out of their list (TALE-COMPAT §4).
        orgs.retain(|(_, r)| *r != Role::Disabled);
        if let super::AuthVia::ApiKey { org_id, .. } = &principal.via {
            orgs.retain(|(o, _)| &o.id == org_id);
        }
        Ok(orgs)
    }

    /// Creates an organisation with the caller as its Owner (instance Owners only).
    pub async fn create_org(&self, principal: &Principal, grant: &Grant, slug: &str, name: &str, meta: &RequestMeta) -> Result<Org> {
        grant.require(Permission::OrgOwnership)?;
        let slug = slug.trim().to_lowercase();
        if !valid_slug(&slug) {
            return Err(Error::invalid("slug must match ^[a-z0-9][a-z0-9_-]*$ (at most 100 characters)"));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Error::invalid("name must be 1 to 200 characters"));
        }
        let org = Org { id: new_id(), slug, name: name.to_owned(), created_at: now_ms() };
        let audit = AuditDraft::new(&org.id, &Self::actor(principal, Some(grant)), meta, Category::Admin, "organization_created", "organization")
            .resource(&org.id, &org.slug)
            .states(None, Some(json!({"slug": org.slug, "name": org.name})));
        self.store.create_org(&org, &principal.user.id, audit).await?;
        self.changed();
        Ok(org)
    }

    pub async fn members(&self, grant: &Grant) -> Result<Vec<Member>> {
        grant.require(Permission::MembersRead)?;
        if let Some(list) = self.cache.members(&grant.org_id) {
            return Ok(list);
        }
        let generation = self.cache.generation();
        let list = self.store.members(&grant.org_id).await?;
        self.cache.put_members(generation, &grant.org_id, &list);
        Ok(list)
    }

    async fn member_name(&self, org_id: &str, user_id: &str) -> Result<String> {
        Ok(self
            .store
            .members(org_id)
            .await?
            .into_iter()
            .find(|m| m.user_id == user_id)
            .map(|m| m.email)
            .unwrap_or_default())
    }

    async fn apply(&self, principal: &Principal, grant: &Grant, request: RoleRequest, action: &str, target: &str, meta: &RequestMeta) -> Result<Vec<Assignment>> {
        let name = self.member_name(&grant.org_id, target).await?;
        let audit = AuditDraft::new(&grant.org_id, &Self::actor(principal, Some(grant)), meta, Category::Member, action, "member")
            .resource(target, &name);
        let changes = self.store.change_roles(&grant.org_id, &request, audit).await?;
        self.changed();
        Ok(changes)
    }

    pub async fn change_role(&self, principal: &Principal, grant: &Grant, target: &str, role: Role, meta: &RequestMeta) -> Result<Vec<Assignment>> {
        grant.require(Permission::MembersManage)?;
        let request = RoleRequest::Set { actor: Some(principal.user.id.clone()), target: target.to_owned(), role };
        self.apply(principal, grant, request, "role_changed", target, meta).await
    }

    pub async fn remove_member(&self, principal: &Principal, grant: &Grant, target: &str, meta: &RequestMeta) -> Result<Vec<Assignment>> {
        grant.require(Permission::MembersManage)?;
        let request = RoleRequest::Remove { actor: Some(principal.user.id.clone()), target: target.to_owned() };
        self.apply(principal, grant, request, "member_removed", target, meta).await
    }

    pub async fn transfer_ownership(&self, principal: &Principal, grant: &Grant, target: &str, meta: &RequestMeta) -> Result<Vec<Assignment>> {
        grant.require(Permission::OrgOwnership)?;
        let request = RoleRequest::Transfer { actor: Some(principal.user.id.clone()), target: target.to_owned() };
        self.apply(principal, grant, request, "ownership_transferred", target, meta).await
    }

    pub async fn invite(&self, principal: &Principal, grant: &Grant, email: &str, role: Role, meta: &RequestMeta) -> Result<CreatedInvitation> {
        grant.require(Permission::MembersManage)?;
        let email = normalize_email(email);
        if !crate::model::valid_email(&email) {
            return Err(Error::invalid(format!("'{email}' is not a valid e-mail address")));
        }
        if matches!(role, Role::Owner | Role::Disabled) {
            return Err(Error::invalid("invite with admin, developer, editor or member; ownership is transferred later"));
        }
        if self.store.members(&grant.org_id).await?.iter().any(|m| m.email == email) {
            return Err(Error::Conflict(format!("{email} is already a member")));
        }
        let token = random_token();
        let now = now_ms();
        let invitation = Invitation {
            id: new_id(),
            org_id: grant.org_id.clone(),
            email: email.clone(),
            role,
            token_hash: self.invitation_hash(&token),
            invited_by: principal.user.id.clone(),
            created_at: now,
            expires_at: now + INVITATION_TTL_MS,
            accepted_at: None,
            revoked_at: None,
        };
        let audit = AuditDraft::new(&grant.org_id, &Self::actor(principal, Some(grant)), meta, Category::Member, "member_invited", "invitation")
            .resource(&invitation.id, &email)
            .states(None, Some(json!({"email": email, "role": role.as_str()})));
        self.store.create_invitation(&invitation, audit).await?;
        self.changed();
        Ok(CreatedInvitation { invitation, link: format!("{}/invite/{token}", self.site_url) })
    }

    pub async fn invitations(&self, grant: &Grant) -> Result<Vec<Invitation>> {
        grant.require(Permission::MembersRead)?;
        self.store.pending_invitations(&grant.org_id, now_ms()).await
    }

    pub async fn revoke_invitation(&self, principal: &Principal, grant: &Grant, id: &str, meta: &RequestMeta) -> Result<()> {
        grant.require(Permission::MembersManage)?;
        let audit = AuditDraft::new(&grant.org_id, &Self::actor(principal, Some(grant)), meta, Category::Member, "invitation_revoked", "invitation")
            .resource(id, "");
        self.store.revoke_invitation(&grant.org_id, id, now_ms(), audit).await?;
        self.changed();
        Ok(())
    }

    /// The pending invitation behind a link, or `NotFound` (also when used, revoked or expired).
    pub async fn invitation_view(&self, token: &str) -> Result<InvitationView> {
        let inv = self
            .store
            .invitation_by_token_hash(&self.invitation_hash(token))
            .await?
            .filter(|i| i.accepted_at.is_none() && i.revoked_at.is_none() && i.expires_at > now_ms())
            .ok_or(Error::NotFound("invitation"))?;
        let org = self.store.org_by_id(&inv.org_id).await?.ok_or(Error::NotFound("invitation"))?;
        let account_exists = self.store.user_by_email(&inv.email).await?.is_some();
        Ok(InvitationView {
            email: inv.email.clone(),
            role: inv.role,
            organization: org.name,
            organization_slug: org.slug,
            account_exists,
            expires_at: inv.expires_at,
            invitation: Some(inv),
        })
    }

    /// Accepts an invitation: a new account (name + password) or, when the e-mail already has an
    /// account, that account's password. Signs the invitee in.
    pub async fn accept_invitation(&self, token: &str, name: Option<&str>, password: &str, meta: &RequestMeta) -> Result<SignedIn> {
        // Accepting checks a password, so it shares the sign-in limit per client address.
        if let Err(retry_after_secs) = self.sign_in_limiter.hit(meta.ip.as_deref().unwrap_or("unknown")) {
            return Err(Error::RateLimited { retry_after_secs });
        }
        let view = self.invitation_view(token).await?;
        let inv = view.invitation.ok_or(Error::NotFound("invitation"))?;
        let existing = self.store.user_by_email(&inv.email).await?;
        let (user, new_user): (User, Option<User>) = match existing {
            Some(user) => {
                self.guarded_verify(&user.email, Some(user.password_hash.clone()), password, "invitation_accept_failed", meta).await?;
                (user, None)
            }
            None => {
                let fallback = inv.email.split('@').next().unwrap_or("").to_owned();
                let user = self.new_user(&inv.email, name.unwrap_or(&fallback), password, false).await?;
                (user.clone(), Some(user))
            }
        };
        let actor = Actor { id: user.id.clone(), email: Some(user.email.clone()), role: Some(inv.role), kind: ActorType::User };
        let audit = AuditDraft::new(&inv.org_id, &actor, meta, Category::Member, "invitation_accepted", "member")
            .resource(&user.id, &user.email)
            .states(None, Some(json!({"role": inv.role.as_str()})));
        self.store.accept_invitation(&inv, &user.id, new_user.as_ref(), now_ms(), audit).await?;
        self.changed();
        let org = self.default_org().await?;
        self.start_session(user, &org.id, meta).await
    }
}
