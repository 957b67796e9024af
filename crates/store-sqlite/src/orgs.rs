//! Organisations, memberships, invitations and settings.

use crate::accounts::{insert_membership, insert_user};
use crate::audit::append;
use crate::{db_err, parse_json, SqliteStore};
use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use tale_core::audit::AuditDraft;
use tale_core::model::{Invitation, Member, Org, User};
use tale_core::role::Role;
use tale_core::rules::{self, Assignment, RoleRequest};
use tale_core::store::OrgStore;
use tale_core::{Error, Result};

fn org(row: &SqliteRow) -> Org {
    Org { id: row.get("id"), slug: row.get("slug"), name: row.get("name"), created_at: row.get("created_at") }
}

fn role(text: &str) -> Result<Role> {
    text.parse().map_err(|_| Error::Store(format!("unknown role '{text}' in store")))
}

fn invitation(row: &SqliteRow) -> Result<Invitation> {
    Ok(Invitation {
        id: row.get("id"),
        org_id: row.get("org_id"),
        email: row.get("email"),
        role: role(row.get("role"))?,
        token_hash: row.get("token_hash"),
        invited_by: row.get("invited_by"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        accepted_at: row.get("accepted_at"),
        revoked_at: row.get("revoked_at"),
    })
}

async fn insert_org(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>, o: &Org) -> Result<()> {
    sqlx::query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?,?,?,?)")
        .bind(&o.id)
        .bind(&o.slug)
        .bind(&o.name)
        .bind(o.created_at)
        .execute(&mut **tx)
        .await
        .map_err(|e| match db_err(e) {
            Error::Conflict(_) => Error::Conflict(format!("an organisation with slug '{}' already exists", o.slug)),
            other => other,
        })?;
    Ok(())
}

const INVITATION_COLUMNS: &str =
    "id, org_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at, revoked_at";

#[async_trait]
impl OrgStore for SqliteStore {
    async fn bootstrap(&self, o: &Org, owner: &User, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let users: i64 = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await.map_err(db_err)?.get(0);
        if users > 0 {
            return Err(Error::SetupClosed);
        }
        insert_org(&mut tx, o).await?;
        insert_user(&mut tx, owner).await?;
        insert_membership(&mut tx, &o.id, &owner.id, Role::Owner).await?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn create_org(&self, o: &Org, owner_id: &str, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_org(&mut tx, o).await?;
        insert_membership(&mut tx, &o.id, owner_id, Role::Owner).await?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn org_by_slug(&self, slug: &str) -> Result<Option<Org>> {
        let row = sqlx::query("SELECT id, slug, name, created_at FROM organizations WHERE slug = ?")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.as_ref().map(org))
    }

    async fn org_by_id(&self, id: &str) -> Result<Option<Org>> {
        let row = sqlx::query("SELECT id, slug, name, created_at FROM organizations WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.as_ref().map(org))
    }

    async fn all_orgs(&self) -> Result<Vec<Org>> {
        let rows = sqlx::query("SELECT id, slug, name, created_at FROM organizations ORDER BY created_at, slug")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(org).collect())
    }

    async fn orgs_for_user(&self, user_id: &str) -> Result<Vec<(Org, Role)>> {
        let rows = sqlx::query(
            "SELECT o.id, o.slug, o.name, o.created_at, m.role FROM memberships m
             JOIN organizations o ON o.id = m.org_id WHERE m.user_id = ? ORDER BY o.created_at, o.slug",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(|r| Ok((org(r), role(r.get("role"))?))).collect()
    }

    async fn role_of(&self, org_id: &str, user_id: &str) -> Result<Option<Role>> {
        let row = sqlx::query("SELECT role FROM memberships WHERE org_id = ? AND user_id = ?")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| role(r.get(0))).transpose()
    }

    async fn members(&self, org_id: &str) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.name, m.role, m.joined_at FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.org_id = ? ORDER BY m.joined_at, u.email",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    user_id: r.get(0),
                    email: r.get(1),
                    name: r.get(2),
                    role: role(r.get(3))?,
                    joined_at: r.get(4),
                })
            })
            .collect()
    }

    async fn add_member(&self, org_id: &str, user_id: &str, r: Role, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_membership(&mut tx, org_id, user_id, r).await?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn change_roles(&self, org_id: &str, request: &RoleRequest, audit: AuditDraft) -> Result<Vec<Assignment>> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query("SELECT user_id, role FROM memberships WHERE org_id = ?")
            .bind(org_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let current: Vec<(String, Role)> =
            rows.iter().map(|r| Ok((r.get::<String, _>(0), role(r.get(1))?))).collect::<Result<_>>()?;
        let changes = rules::plan(&current, request)?;
        if changes.is_empty() {
            return Ok(changes);
        }
        // Demotions first, so the one-Owner index never sees two Owners mid-transfer.
        let mut ordered = changes.clone();
        ordered.sort_by_key(|c| c.to == Some(Role::Owner));
        for c in &ordered {
            match c.to {
                Some(to) => {
                    sqlx::query("UPDATE memberships SET role = ? WHERE org_id = ? AND user_id = ?")
                        .bind(to.as_str())
                        .bind(org_id)
                        .bind(&c.user_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
                None => {
                    sqlx::query("DELETE FROM memberships WHERE org_id = ? AND user_id = ?")
                        .bind(org_id)
                        .bind(&c.user_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    // A removed member's keys for this organisation stop working with the membership.
                    sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE org_id = ? AND user_id = ? AND revoked_at IS NULL")
                        .bind(tale_core::id::now_ms())
                        .bind(org_id)
                        .bind(&c.user_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
            }
        }
        let (before, after) = rules::audit_states(&changes);
        append(&mut tx, audit.states(Some(before), Some(after))).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(changes)
    }

    async fn create_invitation(&self, inv: &Invitation, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(&format!("INSERT INTO invitations ({INVITATION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"))
            .bind(&inv.id)
            .bind(&inv.org_id)
            .bind(&inv.email)
            .bind(inv.role.as_str())
            .bind(&inv.token_hash)
            .bind(&inv.invited_by)
            .bind(inv.created_at)
            .bind(inv.expires_at)
            .bind(inv.accepted_at)
            .bind(inv.revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn pending_invitations(&self, org_id: &str, now: i64) -> Result<Vec<Invitation>> {
        let rows = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE org_id = ? AND accepted_at IS NULL
             AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC"
        ))
        .bind(org_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(invitation).collect()
    }

    async fn invitation_by_token_hash(&self, token_hash: &str) -> Result<Option<Invitation>> {
        let row = sqlx::query(&format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = ?"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(invitation).transpose()
    }

    async fn revoke_invitation(&self, org_id: &str, id: &str, at: i64, mut audit: AuditDraft) -> Result<Invitation> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "UPDATE invitations SET revoked_at = ? WHERE id = ? AND org_id = ? AND accepted_at IS NULL AND revoked_at IS NULL
             RETURNING {INVITATION_COLUMNS}"
        ))
        .bind(at)
        .bind(id)
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or(Error::NotFound("invitation"))?;
        let inv = invitation(&row)?;
        audit.resource_name = Some(inv.email.clone());
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(inv)
    }

    async fn accept_invitation(
        &self,
        inv: &Invitation,
        user_id: &str,
        new_user: Option<&User>,
        at: i64,
        audit: AuditDraft,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let claimed = sqlx::query(
            "UPDATE invitations SET accepted_at = ? WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(at)
        .bind(&inv.id)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if claimed == 0 {
            return Err(Error::Conflict("the invitation was already used, revoked or has expired".into()));
        }
        if let Some(u) = new_user {
            insert_user(&mut tx, u).await?;
        }
        insert_membership(&mut tx, &inv.org_id, user_id, inv.role).await?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn settings(&self, org_id: &str) -> Result<Option<serde_json::Value>> {
        let row = sqlx::query("SELECT settings FROM organizations WHERE id = ?")
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or(Error::NotFound("organization"))?;
        parse_json(row.get(0))
    }

    async fn put_settings(&self, org_id: &str, settings: &serde_json::Value, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let before: Option<String> = sqlx::query("SELECT settings FROM organizations WHERE id = ?")
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or(Error::NotFound("organization"))?
            .get(0);
        sqlx::query("UPDATE organizations SET settings = ? WHERE id = ?")
            .bind(settings.to_string())
            .bind(org_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        // Never-saved settings: the caller's draft carries the effective defaults as the before state.
        let before = parse_json(before)?.or_else(|| audit.previous_state.clone());
        append(&mut tx, audit.states(before, Some(settings.clone()))).await?;
        tx.commit().await.map_err(db_err)
    }
}
