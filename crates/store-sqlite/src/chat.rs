//! Threads, messages, runs, the usage ledger, files and artifacts.

use crate::audit::append;
use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use tale_core::audit::AuditDraft;
use tale_core::chat::{
    Artifact, ChatMessage, FileRecord, MessageProgress, Run, Thread, TokenCounts, UsageEntry, UsageGroup, UsageTotal,
};
use tale_core::store::ChatStore;
use tale_core::{Error, Result};

const THREAD_COLUMNS: &str = "id, org_id, user_id, agent_slug, title, head_id, todos, share_token_hash, created_at, updated_at";
const MESSAGE_COLUMNS: &str =
    "id, thread_id, parent_id, role, content, parts, attachments, status, error, run_id, model, created_at, updated_at";
const RUN_COLUMNS: &str = "id, org_id, thread_id, message_id, user_id, agent_slug, provider, model, status, created_at,
    finished_at, input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost_cents, error, log";
const FILE_COLUMNS: &str = "id, org_id, user_id, thread_id, name, media_type, size, sha256, origin, created_at";
const ARTIFACT_COLUMNS: &str = "id, version, org_id, thread_id, kind, title, language, content, created_at";

fn json<T: serde::de::DeserializeOwned>(text: String) -> Result<T> {
    serde_json::from_str(&text).map_err(|e| Error::Store(format!("stored JSON unreadable: {e}")))
}

fn to_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn thread(row: &SqliteRow) -> Result<Thread> {
    Ok(Thread {
        id: row.get("id"),
        org_id: row.get("org_id"),
        user_id: row.get("user_id"),
        agent_slug: row.get("agent_slug"),
        title: row.get("title"),
        head_id: row.get("head_id"),
        todos: json(row.get("todos"))?,
        share_token_hash: row.get("share_token_hash"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn message(row: &SqliteRow) -> Result<ChatMessage> {
    Ok(ChatMessage {
        id: row.get("id"),
        thread_id: row.get("thread_id"),
        parent_id: row.get("parent_id"),
        role: row.get::<String, _>("role").parse()?,
        content: row.get("content"),
        parts: json(row.get("parts"))?,
        attachments: json(row.get("attachments"))?,
        status: row.get::<String, _>("status").parse()?,
        error: row.get("error"),
        run_id: row.get("run_id"),
        model: row.get("model"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn run(row: &SqliteRow) -> Result<Run> {
    Ok(Run {
        id: row.get("id"),
        org_id: row.get("org_id"),
        thread_id: row.get("thread_id"),
        message_id: row.get("message_id"),
        user_id: row.get("user_id"),
        agent_slug: row.get("agent_slug"),
        provider: row.get("provider"),
        model: row.get("model"),
        status: row.get::<String, _>("status").parse()?,
        created_at: row.get("created_at"),
        finished_at: row.get("finished_at"),
        tokens: TokenCounts {
            input: count(row.get("input_tokens")),
            output: count(row.get("output_tokens")),
            cached_input: count(row.get("cached_tokens")),
            reasoning: count(row.get("reasoning_tokens")),
        },
        cost_cents: row.get("cost_cents"),
        error: row.get("error"),
        log: json(row.get("log"))?,
    })
}

fn file(row: &SqliteRow) -> Result<FileRecord> {
    Ok(FileRecord {
        id: row.get("id"),
        org_id: row.get("org_id"),
        user_id: row.get("user_id"),
        thread_id: row.get("thread_id"),
        name: row.get("name"),
        media_type: row.get("media_type"),
        size: row.get("size"),
        sha256: row.get("sha256"),
        origin: row.get::<String, _>("origin").parse()?,
        created_at: row.get("created_at"),
    })
}

fn artifact(row: &SqliteRow) -> Artifact {
    Artifact {
        id: row.get("id"),
        version: row.get("version"),
        org_id: row.get("org_id"),
        thread_id: row.get("thread_id"),
        kind: row.get("kind"),
        title: row.get("title"),
        language: row.get("language"),
        content: row.get("content"),
        created_at: row.get("created_at"),
    }
}

async fn upsert_message(tx: &mut Transaction<'static, Sqlite>, m: &ChatMessage) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
         ON CONFLICT(id) DO UPDATE SET content = excluded.content, parts = excluded.parts,
            attachments = excluded.attachments, status = excluded.status, error = excluded.error,
            run_id = excluded.run_id, model = excluded.model, updated_at = excluded.updated_at"
    ))
    .bind(&m.id)
    .bind(&m.thread_id)
    .bind(&m.parent_id)
    .bind(m.role.as_str())
    .bind(&m.content)
    .bind(to_text(&m.parts)?)
    .bind(to_text(&m.attachments)?)
    .bind(m.status.as_str())
    .bind(&m.error)
    .bind(&m.run_id)
    .bind(&m.model)
    .bind(m.created_at)
    .bind(m.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    // Uploads join the thread they are sent in, so deleting the thread removes them.
    for a in &m.attachments {
        sqlx::query("UPDATE files SET thread_id = ? WHERE id = ? AND thread_id IS NULL")
            .bind(&m.thread_id)
            .bind(&a.id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

async fn upsert_run(tx: &mut Transaction<'static, Sqlite>, r: &Run) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO runs ({RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
         ON CONFLICT(id) DO UPDATE SET provider = excluded.provider, model = excluded.model, status = excluded.status,
            finished_at = excluded.finished_at, input_tokens = excluded.input_tokens,
            output_tokens = excluded.output_tokens, cached_tokens = excluded.cached_tokens,
            reasoning_tokens = excluded.reasoning_tokens, cost_cents = excluded.cost_cents,
            error = excluded.error, log = excluded.log"
    ))
    .bind(&r.id)
    .bind(&r.org_id)
    .bind(&r.thread_id)
    .bind(&r.message_id)
    .bind(&r.user_id)
    .bind(&r.agent_slug)
    .bind(&r.provider)
    .bind(&r.model)
    .bind(r.status.as_str())
    .bind(r.created_at)
    .bind(r.finished_at)
    .bind(signed(r.tokens.input))
    .bind(signed(r.tokens.output))
    .bind(signed(r.tokens.cached_input))
    .bind(signed(r.tokens.reasoning))
    .bind(r.cost_cents)
    .bind(&r.error)
    .bind(r.log.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn insert_usage(tx: &mut Transaction<'static, Sqlite>, u: &UsageEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO usage_ledger (id, org_id, user_id, agent_slug, provider, model, run_id, input_tokens, output_tokens,
            cached_tokens, reasoning_tokens, cost_cents, at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
    )
    .bind(&u.id)
    .bind(&u.org_id)
    .bind(&u.user_id)
    .bind(&u.agent_slug)
    .bind(&u.provider)
    .bind(&u.model)
    .bind(&u.run_id)
    .bind(signed(u.tokens.input))
    .bind(signed(u.tokens.output))
    .bind(signed(u.tokens.cached_input))
    .bind(signed(u.tokens.reasoning))
    .bind(u.cost_cents)
    .bind(u.at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Fails with `NotFound` when an update touched no row.
fn touched(result: sqlx::sqlite::SqliteQueryResult, what: &'static str) -> Result<()> {
    if result.rows_affected() == 0 { Err(Error::NotFound(what)) } else { Ok(()) }
}

#[async_trait]
impl ChatStore for SqliteStore {
    async fn create_thread(&self, t: &Thread, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(&format!("INSERT INTO threads ({THREAD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"))
            .bind(&t.id)
            .bind(&t.org_id)
            .bind(&t.user_id)
            .bind(&t.agent_slug)
            .bind(&t.title)
            .bind(&t.head_id)
            .bind(t.todos.to_string())
            .bind(&t.share_token_hash)
            .bind(t.created_at)
            .bind(t.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn thread(&self, id: &str) -> Result<Option<Thread>> {
        let row = sqlx::query(&format!("SELECT {THREAD_COLUMNS} FROM threads WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(thread).transpose()
    }

    async fn thread_by_share_hash(&self, token_hash: &str) -> Result<Option<Thread>> {
        let row = sqlx::query(&format!("SELECT {THREAD_COLUMNS} FROM threads WHERE share_token_hash = ?"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(thread).transpose()
    }

    async fn threads(&self, org_id: &str, user_id: &str, title_query: Option<&str>, limit: u32) -> Result<Vec<Thread>> {
        // instr() on lowercased text: a plain substring match, no LIKE wildcards to escape.
        let rows = sqlx::query(&format!(
            "SELECT {THREAD_COLUMNS} FROM threads WHERE org_id = ? AND user_id = ?
               AND (? IS NULL OR instr(lower(title), lower(?)) > 0)
             ORDER BY updated_at DESC, id DESC LIMIT ?"
        ))
        .bind(org_id)
        .bind(user_id)
        .bind(title_query)
        .bind(title_query)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(thread).collect()
    }

    async fn rename_thread(&self, id: &str, title: &str, at: i64, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query("UPDATE threads SET title = ?, updated_at = ? WHERE id = ?")
            .bind(title)
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        touched(r, "thread")?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn set_thread_share(&self, id: &str, token_hash: Option<&str>, at: i64, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query("UPDATE threads SET share_token_hash = ?, updated_at = ? WHERE id = ?")
            .bind(token_hash)
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        touched(r, "thread")?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn set_thread_head(&self, id: &str, head_id: &str, at: i64) -> Result<()> {
        let r = sqlx::query("UPDATE threads SET head_id = ?, updated_at = ? WHERE id = ?")
            .bind(head_id)
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        touched(r, "thread")
    }

    async fn set_thread_todos(&self, id: &str, todos: &Value, at: i64) -> Result<()> {
        let r = sqlx::query("UPDATE threads SET todos = ?, updated_at = ? WHERE id = ?")
            .bind(todos.to_string())
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        touched(r, "thread")
    }

    async fn delete_thread(&self, id: &str, audit: AuditDraft) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query("DELETE FROM threads WHERE id = ?").bind(id).execute(&mut *tx).await.map_err(db_err)?;
        touched(r, "thread")?;
        append(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn start_turn(&self, messages: &[ChatMessage], run: &Run, head_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for m in messages {
            upsert_message(&mut tx, m).await?;
        }
        upsert_run(&mut tx, run).await?;
        let r = sqlx::query("UPDATE threads SET head_id = ?, updated_at = ? WHERE id = ?")
            .bind(head_id)
            .bind(run.created_at)
            .bind(&run.thread_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        touched(r, "thread")?;
        tx.commit().await.map_err(db_err)
    }

    async fn messages(&self, thread_id: &str) -> Result<Vec<ChatMessage>> {
        let rows = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? ORDER BY created_at, id"))
            .bind(thread_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(message).collect()
    }

    async fn message(&self, id: &str) -> Result<Option<ChatMessage>> {
        let row = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(message).transpose()
    }

    async fn save_progress(&self, updates: &[MessageProgress]) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for u in updates {
            // Only answers still streaming: a finished answer is never rolled back by a late batch.
            sqlx::query("UPDATE messages SET content = ?, parts = ?, updated_at = ? WHERE id = ? AND status = 'streaming'")
                .bind(&u.content)
                .bind(to_text(&u.parts)?)
                .bind(u.updated_at)
                .bind(&u.id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn finish_turn(&self, m: &ChatMessage, r: &Run, usage: &[UsageEntry]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        upsert_message(&mut tx, m).await?;
        upsert_run(&mut tx, r).await?;
        for u in usage {
            insert_usage(&mut tx, u).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn run(&self, id: &str) -> Result<Option<Run>> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(run).transpose()
    }

    async fn thread_runs(&self, thread_id: &str) -> Result<Vec<Run>> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE thread_id = ? ORDER BY created_at, id"))
            .bind(thread_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(run).collect()
    }

    async fn recent_runs(&self, org_id: &str, limit: u32) -> Result<Vec<Run>> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE org_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"))
            .bind(org_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(run).collect()
    }

    async fn mark_interrupted(&self, at: i64) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE messages SET status = 'interrupted', updated_at = ?,
                error = 'The server stopped while this answer was being written; regenerate it to try again.'
             WHERE status = 'streaming'",
        )
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        sqlx::query("UPDATE runs SET status = 'interrupted', finished_at = ?, error = 'interrupted by a server restart' WHERE status = 'running'")
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(n)
    }

    async fn record_usage(&self, entry: &UsageEntry) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_usage(&mut tx, entry).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn usage_totals(&self, org_id: &str, since: i64, by: UsageGroup) -> Result<Vec<UsageTotal>> {
        let key = match by {
            UsageGroup::User => "user_id",
            UsageGroup::Agent => "COALESCE(agent_slug, 'api')",
            UsageGroup::Model => "provider || ':' || model",
        };
        let rows = sqlx::query(&format!(
            "SELECT {key} AS k, COUNT(*) AS calls, SUM(input_tokens) AS i, SUM(output_tokens) AS o,
                    SUM(cached_tokens) AS c, SUM(reasoning_tokens) AS r, SUM(cost_cents) AS cost
             FROM usage_ledger WHERE org_id = ? AND at >= ? GROUP BY k ORDER BY cost DESC, k"
        ))
        .bind(org_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|row| UsageTotal {
                key: row.get("k"),
                calls: count(row.get("calls")),
                tokens: TokenCounts {
                    input: count(row.get("i")),
                    output: count(row.get("o")),
                    cached_input: count(row.get("c")),
                    reasoning: count(row.get("r")),
                },
                cost_cents: row.get("cost"),
            })
            .collect())
    }

    async fn put_file(&self, f: &FileRecord) -> Result<()> {
        sqlx::query(&format!("INSERT INTO files ({FILE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"))
            .bind(&f.id)
            .bind(&f.org_id)
            .bind(&f.user_id)
            .bind(&f.thread_id)
            .bind(&f.name)
            .bind(&f.media_type)
            .bind(f.size)
            .bind(&f.sha256)
            .bind(f.origin.as_str())
            .bind(f.created_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn file(&self, id: &str) -> Result<Option<FileRecord>> {
        let row = sqlx::query(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(file).transpose()
    }

    async fn put_artifact(&self, a: &Artifact) -> Result<()> {
        sqlx::query(&format!("INSERT INTO artifacts ({ARTIFACT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)"))
            .bind(&a.id)
            .bind(a.version)
            .bind(&a.org_id)
            .bind(&a.thread_id)
            .bind(&a.kind)
            .bind(&a.title)
            .bind(&a.language)
            .bind(&a.content)
            .bind(a.created_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn artifact(&self, id: &str, version: Option<i64>) -> Result<Option<Artifact>> {
        let row = sqlx::query(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id = ? AND (? IS NULL OR version = ?) ORDER BY version DESC LIMIT 1"
        ))
        .bind(id)
        .bind(version)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.as_ref().map(artifact))
    }
}
