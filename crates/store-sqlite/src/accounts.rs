//! Users, sessions, sign-in attempts and API keys.

use crate::audit::append;
use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use tale_core::audit::AuditDraft;
use tale_core::model::{ApiKey, LoginAttempts, Session, User};
use tale_core::role::Role;
use tale_core::settings::LoginPolicy;
use tale_core::store::{AccountStore, EndSessions};
use tale_core::{Error, Result};

pub(crate) const USER_COLUMNS: &str =
    "u.id AS u_id, u.email AS u_email, u.name AS u_name, u.password_hash AS u_password_hash,
     u.must_change_password AS u_must_change, u.created_at AS u_created_at, u.password_changed_at AS u_pw_at";

pub(crate) fn user(row: &SqliteRow) -> User {
    User {
        id: row.get("u_id"),
        email: row.get("u_email"),
        name: row.get("u_name"),
        password_hash: row.get("u_password_hash"),
        must_change_password: row.get::<i64, _>("u_must_change") != 0,
        created_at: row.get("u_created_at"),
        password_changed_at: row.get("u_pw_at"),
    }
}

fn session(row: &SqliteRow) -> Session {
    Session {
        id: row.get("s_id"),
        user_id: row.get("s_user_id"),
        token_hash: row.get("s_token_hash"),
        csrf_token: row.get("s_csrf"),
        created_at: row.get("s_created_at"),
        expires_at: row.get("s_expires_at"),
        last_seen_at: row.get("s_last_seen_at"),
        ip: row.get("s_ip"),
        user_agent: row.get("s_ua"),
    }
}

const KEY_COLUMNS: &str = "k.id AS k_id, k.user_id AS k_user_id, k.org_id AS k_org_id, k.name AS k_name,
    k.prefix AS k_prefix, k.key_hash AS k_hash, k.created_at AS k_created_at, k.last_used_at AS k_last_used,
    k.revoked_at AS k_revoked_at";

fn api_key(row: &SqliteRow) -> ApiKey {
    ApiKey {
        id: row.get("k_id"),
        user_id: row.get("k_user_id"),
        org_id: row.get("k_org_id"),
        name: row.get("k_name"),
        prefix: row.get("k_prefix"),
        key_hash: row.get("k_hash"),
        created_at: row.get("k_created_at"),
        last_used_at: row.get("k_last_used"),
        revoked_at: row.get("k_revoked_at"),
    }
}

pub(crate) async fn insert_user(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>, user: &User) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, must_change_password, created_at, password_changed_at)
         VALUES (?,?,?,?,?,?,?)",
    )
    .bind(&user.id)
    .bind(&user.email)
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(i64::from(user.must_change_password))
    .bind(user.created_at)
    .bind(user.password_changed_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| match db_err(e) {
        Error::Conflict(_) => Error::Conflict(format!("an account with {} already exists", user.email)),
        other => other,
    })?;
    Ok(())
}

pub(crate) async fn insert_membership(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    org_id: &str,
    user_id: &str,
    role: Role,
) -> Result<()> {
    sqlx::query("INSERT INTO memberships (org_id, user_id, role, joined_at) VALUES (?,?,?,?)")
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(tale_core::id::now_ms())
        .execute(&mut **tx)
        .await
        .map_err(|e| match db_err(e) {
            Error::Conflict(_) => Error::Conflict("the account is already a member of this organisation".into()),
            other => other,
        })?;
    Ok(())
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn count_users(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await.map_err(db_err)?.get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.email = ?"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.as_ref().map(user))
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.as_ref().map(user))
    }

    async fn create_user(&self, user: &User, org_id: &str, role: Role, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_user(&mut tx, user).await?;
        insert_membership(&mut tx, org_id, &user.id, role).await?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        must_change: bool,
        end: EndSessions,
        audit: AuditDraft,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let email: Option<String> = sqlx::query(
            "UPDATE users SET password_hash = ?, must_change_password = ?, password_changed_at = ? WHERE id = ? RETURNING email",
        )
        .bind(password_hash)
        .bind(i64::from(must_change))
        .bind(tale_core::id::now_ms())
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .map(|r| r.get(0));
        let email = email.ok_or(Error::NotFound("user"))?;
        sqlx::query("DELETE FROM login_attempts WHERE email_key = ?")
            .bind(&email)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        match &end {
            EndSessions::None => {}
            EndSessions::All => {
                sqlx::query("DELETE FROM sessions WHERE user_id = ?").bind(user_id).execute(&mut *tx).await.map_err(db_err)?;
            }
            EndSessions::AllBut(keep) => {
                sqlx::query("DELETE FROM sessions WHERE user_id = ? AND id <> ?")
                    .bind(user_id)
                    .bind(keep)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn login_attempts(&self, email_key: &str) -> Result<Option<LoginAttempts>> {
        let row = sqlx::query("SELECT failures, locked_until, updated_at FROM login_attempts WHERE email_key = ?")
            .bind(email_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| LoginAttempts {
            email_key: email_key.to_owned(),
            failures: u32::try_from(r.get::<i64, _>(0)).unwrap_or(u32::MAX),
            locked_until: r.get(1),
            updated_at: r.get(2),
        }))
    }

    async fn record_login_failure(&self, email_key: &str, now: i64, policy: &LoginPolicy, audit: AuditDraft) -> Result<LoginAttempts> {
        let mut tx = self.write_tx().await?;
        let failures: i64 = sqlx::query(
            "INSERT INTO login_attempts (email_key, failures, locked_until, updated_at) VALUES (?, 1, 0, ?)
             ON CONFLICT(email_key) DO UPDATE SET failures = login_attempts.failures + 1, updated_at = excluded.updated_at
             RETURNING failures",
        )
        .bind(email_key)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?
        .get(0);
        let failures = u32::try_from(failures).unwrap_or(u32::MAX);
        let lock_ms = i64::try_from(policy.lock_secs(failures)).unwrap_or(0) * 1000;
        let locked_until = if lock_ms > 0 { now + lock_ms } else { 0 };
        sqlx::query("UPDATE login_attempts SET locked_until = ? WHERE email_key = ?")
            .bind(locked_until)
            .bind(email_key)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let audit = audit.metadata(serde_json::json!({"failures": failures, "lockedForSecs": lock_ms / 1000}));
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(LoginAttempts { email_key: email_key.to_owned(), failures, locked_until, updated_at: now })
    }

    async fn create_session(&self, session: &Session, email_key: &str, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, token_hash, csrf_token, created_at, expires_at, last_seen_at, ip, user_agent)
             VALUES (?,?,?,?,?,?,?,?,?)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(&session.token_hash)
        .bind(&session.csrf_token)
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.last_seen_at)
        .bind(&session.ip)
        .bind(&session.user_agent)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM login_attempts WHERE email_key = ?")
            .bind(email_key)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn session_by_token_hash(&self, token_hash: &str) -> Result<Option<(Session, User)>> {
        let row = sqlx::query(&format!(
            "SELECT s.id AS s_id, s.user_id AS s_user_id, s.token_hash AS s_token_hash, s.csrf_token AS s_csrf,
                    s.created_at AS s_created_at, s.expires_at AS s_expires_at, s.last_seen_at AS s_last_seen_at,
                    s.ip AS s_ip, s.user_agent AS s_ua, {USER_COLUMNS}
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| (session(&r), user(&r))))
    }

    async fn touch_session(&self, session_id: &str, last_seen_at: i64, expires_at: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = ?, expires_at = MAX(expires_at, ?) WHERE id = ?")
            .bind(last_seen_at)
            .bind(expires_at)
            .bind(session_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_session(&self, session_id: &str, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM sessions WHERE id = ?").bind(session_id).execute(&mut *tx).await.map_err(db_err)?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_user_sessions(&self, user_id: &str, audit: AuditDraft) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(n)
    }

    async fn purge_expired(&self, now: i64, attempts_older_than: i64) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let a = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        let b = sqlx::query("DELETE FROM login_attempts WHERE updated_at < ? AND locked_until < ?")
            .bind(attempts_older_than)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(a + b)
    }

    async fn create_api_key(&self, key: &ApiKey, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, org_id, name, prefix, key_hash, created_at) VALUES (?,?,?,?,?,?,?)",
        )
        .bind(&key.id)
        .bind(&key.user_id)
        .bind(&key.org_id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.key_hash)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn api_keys(&self, user_id: &str, org_id: &str) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.user_id = ? AND k.org_id = ? ORDER BY k.created_at DESC"
        ))
        .bind(user_id)
        .bind(org_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.iter().map(api_key).collect())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<(ApiKey, User)>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS}, {USER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?"
        ))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| (api_key(&r), user(&r))))
    }

    async fn revoke_api_key(&self, org_id: &str, user_id: &str, key_id: &str, at: i64, mut audit: AuditDraft) -> Result<ApiKey> {
        let mut tx = self.write_tx().await?;
        let returning = KEY_COLUMNS.replace("k.", "");
        let row = sqlx::query(&format!(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND org_id = ? AND user_id = ? AND revoked_at IS NULL
             RETURNING {returning}"
        ))
        .bind(at)
        .bind(key_id)
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or(Error::NotFound("api key"))?;
        let key = api_key(&row);
        audit.resource_name = Some(key.name.clone());
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(key)
    }

    async fn touch_api_key(&self, key_id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(at)
            .bind(key_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
