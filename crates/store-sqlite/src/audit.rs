//! The audit log table: sealing drafts into each organisation's chain, and reading it back.

use crate::{db_err, json_text, parse_json, SqliteStore};
use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use tale_core::audit::{seal, AuditDraft, AuditFilter, AuditRecord};
use tale_core::store::AuditStore;
use tale_core::{Error, Result};

/// Appends `draft` as the next row of its organisation's chain, inside the caller's transaction.
pub(crate) async fn append(tx: &mut Transaction<'static, Sqlite>, draft: AuditDraft) -> Result<AuditRecord> {
    let head = sqlx::query("SELECT id, seq, integrity_hash FROM audit_log WHERE org_id = ? ORDER BY seq DESC LIMIT 1")
        .bind(&draft.org_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    let (prev_id, seq, prev_hash) = match head {
        Some(row) => (Some(row.get::<String, _>(0)), row.get::<i64, _>(1), row.get::<String, _>(2)),
        None => (None, 0, String::new()),
    };
    let mut record = seal(draft, tale_core::id::new_id(), 0, seq + 1, &prev_hash);
    let changed = record.changed_fields.as_ref().map(|f| serde_json::Value::from(f.clone()));
    let gid: i64 = sqlx::query(
        "INSERT INTO audit_log (id, org_id, seq, actor_id, actor_email, actor_role, actor_type, action, category,
            resource_type, resource_id, resource_name, previous_state, new_state, changed_fields, session_id,
            ip_address, user_agent, request_id, timestamp, status, error_message, metadata, integrity_hash,
            previous_hash)
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING gid",
    )
    .bind(&record.id)
    .bind(&record.organization_id)
    .bind(record.seq)
    .bind(&record.actor_id)
    .bind(&record.actor_email)
    .bind(&record.actor_role)
    .bind(record.actor_type.as_str())
    .bind(&record.action)
    .bind(record.category.as_str())
    .bind(&record.resource_type)
    .bind(&record.resource_id)
    .bind(&record.resource_name)
    .bind(json_text(&record.previous_state))
    .bind(json_text(&record.new_state))
    .bind(json_text(&changed))
    .bind(&record.session_id)
    .bind(&record.ip_address)
    .bind(&record.user_agent)
    .bind(&record.request_id)
    .bind(record.timestamp)
    .bind(record.status.as_str())
    .bind(&record.error_message)
    .bind(json_text(&record.metadata))
    .bind(&record.integrity_hash)
    .bind(&record.previous_hash)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?
    .get(0);
    record.gid = gid;
    if let Some(prev_id) = prev_id {
        sqlx::query("UPDATE audit_log SET chain_successor = ? WHERE id = ?")
            .bind(&record.id)
            .bind(prev_id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(record)
}

const COLUMNS: &str = "gid, id, org_id, seq, actor_id, actor_email, actor_role, actor_type, action, category,
    resource_type, resource_id, resource_name, previous_state, new_state, changed_fields, session_id, ip_address,
    user_agent, request_id, timestamp, status, error_message, metadata, integrity_hash, previous_hash, chain_successor";

fn record(row: &SqliteRow) -> Result<AuditRecord> {
    let changed: Option<serde_json::Value> = parse_json(row.get("changed_fields"))?;
    let changed_fields = changed
        .map(|v| serde_json::from_value::<Vec<String>>(v).map_err(|e| Error::Store(e.to_string())))
        .transpose()?;
    Ok(AuditRecord {
        gid: row.get("gid"),
        id: row.get("id"),
        seq: row.get("seq"),
        organization_id: row.get("org_id"),
        actor_id: row.get("actor_id"),
        actor_email: row.get("actor_email"),
        actor_role: row.get("actor_role"),
        actor_type: row.get::<String, _>("actor_type").parse()?,
        action: row.get("action"),
        category: row.get::<String, _>("category").parse()?,
        resource_type: row.get("resource_type"),
        resource_id: row.get("resource_id"),
        resource_name: row.get("resource_name"),
        previous_state: parse_json(row.get("previous_state"))?,
        new_state: parse_json(row.get("new_state"))?,
        changed_fields,
        session_id: row.get("session_id"),
        ip_address: row.get("ip_address"),
        user_agent: row.get("user_agent"),
        request_id: row.get("request_id"),
        timestamp: row.get("timestamp"),
        status: row.get::<String, _>("status").parse()?,
        error_message: row.get("error_message"),
        metadata: parse_json(row.get("metadata"))?,
        integrity_hash: row.get("integrity_hash"),
        previous_hash: row.get("previous_hash"),
        chain_successor: row.get("chain_successor"),
    })
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, audit: AuditDraft) -> Result<AuditRecord> {
        let mut tx = self.write_tx().await?;
        let record = append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(record)
    }

    async fn audit_query(&self, org_id: &str, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_log WHERE org_id = "));
        q.push_bind(org_id);
        if let Some(c) = filter.category {
            q.push(" AND category = ").push_bind(c.as_str());
        }
        if let Some(actor) = filter.actor.as_deref().filter(|a| !a.is_empty()) {
            let like = format!("%{}%", actor.to_lowercase().replace(['%', '_'], ""));
            q.push(" AND (actor_id = ").push_bind(actor.to_owned());
            q.push(" OR lower(actor_email) LIKE ").push_bind(like).push(")");
        }
        if let Some(from) = filter.from_ms {
            q.push(" AND timestamp >= ").push_bind(from);
        }
        if let Some(to) = filter.to_ms {
            q.push(" AND timestamp <= ").push_bind(to);
        }
        if let Some(before) = filter.before_seq {
            q.push(" AND seq < ").push_bind(before);
        }
        q.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(filter.limit.max(1)));
        let rows = q.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(record).collect()
    }

    async fn audit_chain(&self, org_id: &str) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log WHERE org_id = ? ORDER BY seq"))
            .bind(org_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(record).collect()
    }

    async fn audit_since(&self, gid: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log WHERE gid > ? ORDER BY gid LIMIT ?"))
            .bind(gid)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(record).collect()
    }

    async fn audit_head_gid(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(gid), 0) FROM audit_log")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.get(0))
    }
}
