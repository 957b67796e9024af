//! The knowledge metadata store (SQLite in the knowledge directory): documents with their
//! ingestion state, and chunks. The queue is the `documents` table itself: a worker claims the
//! oldest queued document of an organisation below its concurrency cap by setting a lease; a
//! lease that runs out (the worker died, even by `kill -9`) puts the document back in line.

use crate::{Error, Result};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub id: String,
    pub org_id: String,
    pub folder: String,
    pub name: String,
    pub media_type: String,
    pub size: i64,
    #[serde(skip)]
    pub sha256: String,
    pub title: Option<String>,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    /// Why it failed, in words a user can act on.
    pub error: Option<String>,
    pub chunk_count: i64,
    pub attempts: i64,
    pub uploaded_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub indexed_at: Option<i64>,
}

/// A stored chunk, as search results and `document_retrieve` show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredChunk {
    pub id: String,
    pub document_id: String,
    pub position: i64,
    pub page: Option<i64>,
    pub section: String,
    pub header: String,
    pub text: String,
}

/// A stored vector with what the index files it under.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVector {
    pub key: u64,
    pub org_id: String,
    pub document_id: String,
    pub folder: String,
    pub vector: Vec<f32>,
}

/// A chunk waiting for a vector of the current model.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingChunk {
    pub key: u64,
    pub org_id: String,
    pub document_id: String,
    pub folder: String,
    pub header: String,
    pub text: String,
    pub content_hash: String,
}

/// f32 little-endian, as stored in `chunks.embedding`.
pub fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Values per `IN (…)` lookup: far below SQLite's limit on bound variables.
const IN_GROUP: usize = 500;

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

const DOC_COLUMNS: &str = "id, org_id, folder, name, media_type, size, sha256, title, status, error, chunk_count, attempts, uploaded_by, created_at, updated_at, indexed_at";

fn db(e: sqlx::Error) -> Error {
    Error::Io(e.to_string())
}

fn document(r: &SqliteRow) -> Document {
    Document {
        id: r.get("id"),
        org_id: r.get("org_id"),
        folder: r.get("folder"),
        name: r.get("name"),
        media_type: r.get("media_type"),
        size: r.get("size"),
        sha256: r.get("sha256"),
        title: r.get("title"),
        status: r.get("status"),
        error: r.get("error"),
        chunk_count: r.get("chunk_count"),
        attempts: r.get("attempts"),
        uploaded_by: r.get("uploaded_by"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        indexed_at: r.get("indexed_at"),
    }
}

/// Chunk rows per `INSERT` statement (12 values each, far below SQLite's 32,766 variables): one
/// statement per chunk cost a round trip to sqlx's connection thread each.
const CHUNK_ROWS_PER_INSERT: usize = 64;

/// Uploads waiting for [`MetaStore::insert_document`]'s next transaction, with where to answer.
type PendingInsert = (Document, tokio::sync::oneshot::Sender<Result<()>>);

/// `+embedding_model`: without the `+` SQLite preferred the index on the model, which every
/// embedded chunk shares, and read all of them for each document ingested.
const EMBEDDINGS_BY_HASH: &str = "SELECT content_hash, embedding FROM chunks WHERE +embedding_model = ? AND embedding IS NOT NULL AND content_hash IN ({})";

/// The writer connection's page cache, in KiB.
const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// Documents per insert transaction (16 values each, far below SQLite's 32,766 variables).
const DOCUMENTS_PER_INSERT: usize = 64;

#[derive(Clone)]
pub struct MetaStore {
    /// Reads; in WAL mode they run beside the write in progress.
    pool: SqlitePool,
    /// Every write, on one connection: concurrent writers (uploads, workers, the commit of a
    /// batch) wait their turn here rather than in SQLite's busy handler, which sleeps a
    /// millisecond or more per retry. Other processes on the same file still meet the busy
    /// timeout.
    writer: SqlitePool,
    /// To the task that inserts uploaded documents, those that arrive together in one
    /// transaction: a folder upload sends several files at once, and a commit each wrote the same
    /// table and index pages to the WAL again and again.
    inserts: tokio::sync::mpsc::UnboundedSender<PendingInsert>,
}

/// Inserts what `insert_document` queued: everything waiting, up to [`DOCUMENTS_PER_INSERT`], in
/// one transaction. If that fails, each document is tried on its own, so one bad row fails only
/// its own upload. Ends when every `MetaStore` clone is gone.
async fn insert_queued(writer: SqlitePool, mut queue: tokio::sync::mpsc::UnboundedReceiver<PendingInsert>) {
    let mut batch = Vec::with_capacity(DOCUMENTS_PER_INSERT);
    while queue.recv_many(&mut batch, DOCUMENTS_PER_INSERT).await > 0 {
        let documents: Vec<&Document> = batch.iter().map(|(d, _)| d).collect();
        match insert_documents(&writer, &documents).await {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(())); // the uploader may have gone: nothing to tell
                }
            }
            // A row the database refuses: find it by trying each on its own.
            Err(sqlx::Error::Database(e)) if e.kind() != sqlx::error::ErrorKind::Other => {
                for (document, reply) in batch.drain(..) {
                    let _ = reply.send(insert_documents(&writer, &[&document]).await.map_err(db));
                }
            }
            // The database itself failed (busy past its timeout, disk full): one by one would
            // only meet the same failure once per row.
            Err(e) => {
                let message = e.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(Error::Io(message.clone())));
                }
            }
        }
    }
}

async fn insert_documents(writer: &SqlitePool, documents: &[&Document]) -> std::result::Result<(), sqlx::Error> {
    let mut insert = sqlx::QueryBuilder::new(format!("INSERT INTO documents ({DOC_COLUMNS}) "));
    insert.push_values(documents, |mut row, d| {
        row.push_bind(&d.id)
            .push_bind(&d.org_id)
            .push_bind(&d.folder)
            .push_bind(&d.name)
            .push_bind(&d.media_type)
            .push_bind(d.size)
            .push_bind(&d.sha256)
            .push_bind(&d.title)
            .push_bind(&d.status)
            .push_bind(&d.error)
            .push_bind(d.chunk_count)
            .push_bind(d.attempts)
            .push_bind(&d.uploaded_by)
            .push_bind(d.created_at)
            .push_bind(d.updated_at)
            .push_bind(d.indexed_at);
    });
    insert.build().execute(writer).await?;
    Ok(())
}

impl MetaStore {
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let opening = |e: sqlx::Error| Error::Io(format!("{}: {e}", path.display()));
        // The writer touches every index of both tables; SQLite's default cache of 2 MiB made it
        // re-read their pages from the OS for each document.
        let writer_options = options.clone().pragma("cache_size", format!("-{}", WRITER_CACHE_KIB));
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(writer_options).await.map_err(opening)?;
        sqlx::migrate!("./migrations").run(&writer).await.map_err(|e| Error::Io(format!("{}: migration failed: {e}", path.display())))?;
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(opening)?;
        let (inserts, queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(insert_queued(writer.clone(), queue));
        Ok(MetaStore { pool, writer, inserts })
    }

    /// Inserts a newly uploaded document, in one transaction with any others arriving at the
    /// same time; returns once it is committed.
    pub async fn insert_document(&self, d: &Document) -> Result<()> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || Error::Io("the knowledge store is shutting down".into());
        self.inserts.send((d.clone(), reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub async fn document(&self, id: &str) -> Result<Option<Document>> {
        let row = sqlx::query(&format!("SELECT {DOC_COLUMNS} FROM documents WHERE id = ?")).bind(id).fetch_optional(&self.pool).await.map_err(db)?;
        Ok(row.as_ref().map(document))
    }

    /// An organisation's documents under `folder` (and below), by folder and name.
    pub async fn documents(&self, org_id: &str, folder: &str, limit: u32) -> Result<Vec<Document>> {
        let prefix = if folder == "/" { "/".to_owned() } else { format!("{}/", folder.trim_end_matches('/')) };
        let rows = sqlx::query(&format!(
            "SELECT {DOC_COLUMNS} FROM documents WHERE org_id = ? AND (folder = ? OR substr(folder, 1, length(?)) = ?) ORDER BY folder, name LIMIT ?"
        ))
        .bind(org_id)
        .bind(folder)
        .bind(&prefix)
        .bind(&prefix)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows.iter().map(document).collect())
    }

    /// Claims the oldest queued document (or one whose lease ran out) of an organisation that
    /// has fewer than `per_org` running, leasing it until `lease_until`.
    pub async fn claim(&self, now: i64, lease_until: i64, per_org: u32) -> Result<Option<Document>> {
        // Expired leases first (a dead worker's document), then the oldest queued document; each
        // lookup walks an index in order and stops at the first organisation below its cap.
        let row = sqlx::query(&format!(
            "UPDATE documents SET status = 'running', staged = 0, lease_until = ?, attempts = attempts + 1, updated_at = ?
             WHERE id = COALESCE(
                (SELECT d.id FROM documents d
                 WHERE d.status = 'running' AND d.lease_until < ?
                   AND (SELECT COUNT(*) FROM documents r WHERE r.org_id = d.org_id AND r.status = 'running' AND r.staged = 0 AND r.lease_until >= ?) < ?
                 ORDER BY d.lease_until LIMIT 1),
                (SELECT d.id FROM documents d
                 WHERE d.status = 'queued'
                   AND (SELECT COUNT(*) FROM documents r WHERE r.org_id = d.org_id AND r.status = 'running' AND r.staged = 0 AND r.lease_until >= ?) < ?
                 ORDER BY d.created_at LIMIT 1))
             RETURNING {DOC_COLUMNS}"
        ))
        .bind(lease_until)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(i64::from(per_org))
        .bind(now)
        .bind(i64::from(per_org))
        .fetch_optional(&self.writer)
        .await
        .map_err(db)?;
        Ok(row.as_ref().map(document))
    }

    /// Extends a running job's lease (a worker still busy with a large document).
    pub async fn renew(&self, id: &str, lease_until: i64) -> Result<()> {
        sqlx::query("UPDATE documents SET lease_until = ? WHERE id = ? AND status = 'running'").bind(lease_until).bind(id).execute(&self.writer).await.map_err(db)?;
        Ok(())
    }

    /// Replaces a document's chunks, each with its embedding when given (`model`, one vector per
    /// chunk), and stages the running document with its lease renewed to `lease_until`, all in one
    /// transaction (a write less per document). Returns the chunks' new vector keys, in order.
    pub async fn put_chunks(&self, document_id: &str, org_id: &str, chunks: &[(String, crate::chunk::Chunk)], embeddings: Option<(&str, &[Vec<f32>])>, lease_until: i64) -> Result<Vec<u64>> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM chunks WHERE document_id = ?").bind(document_id).execute(&mut *tx).await.map_err(db)?;
        let n = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
        let last: i64 = sqlx::query("UPDATE counters SET value = value + ? WHERE name = 'vkey' RETURNING value").bind(n).fetch_one(&mut *tx).await.map_err(db)?.get(0);
        let first = last - n + 1;
        let vkeys: Vec<i64> = (first..).take(chunks.len()).collect();
        for (rows, offset) in chunks.chunks(CHUNK_ROWS_PER_INSERT).zip((0..).step_by(CHUNK_ROWS_PER_INSERT)) {
            let mut insert = sqlx::QueryBuilder::new("INSERT INTO chunks (id, document_id, org_id, position, page, section, header, text, content_hash, vkey, embedding_model, embedding) ");
            insert.push_values(rows.iter().enumerate(), |mut row, (i, (id, c))| {
                let blob = embeddings.and_then(|(_, vectors)| vectors.get(offset + i)).map(|v| to_blob(v));
                let model = embeddings.map(|(m, _)| m).filter(|_| blob.is_some());
                row.push_bind(id)
                    .push_bind(document_id)
                    .push_bind(org_id)
                    .push_bind(i64::from(c.position))
                    .push_bind(c.page.map(i64::from))
                    .push_bind(&c.section)
                    .push_bind(&c.header)
                    .push_bind(&c.text)
                    .push_bind(&c.content_hash)
                    .push_bind(vkeys[offset + i])
                    .push_bind(model)
                    .push_bind(blob);
            });
            insert.build().execute(&mut *tx).await.map_err(db)?;
        }
        // Staged: indexed and waiting for the next commit, still `running` but no longer counted
        // against its organisation's concurrency cap; if the commit never comes (the process
        // died), the lease runs out and the document is indexed again.
        sqlx::query("UPDATE documents SET staged = 1, lease_until = ? WHERE id = ? AND status = 'running'").bind(lease_until).bind(document_id).execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(vkeys.into_iter().map(|k| u64::try_from(k).unwrap_or(0)).collect())
    }

    pub async fn finish(&self, id: &str, title: Option<&str>, chunk_count: usize, now: i64) -> Result<()> {
        self.finish_many(&[(id, title, chunk_count)], now).await
    }

    /// Marks documents completed in one transaction: `(id, title, chunks)` each, after the
    /// index commit that made their chunks searchable.
    pub async fn finish_many(&self, done: &[(&str, Option<&str>, usize)], now: i64) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        for (id, title, chunk_count) in done {
            sqlx::query("UPDATE documents SET status = 'completed', staged = 0, error = NULL, title = COALESCE(?, title), chunk_count = ?, lease_until = NULL, indexed_at = ?, updated_at = ? WHERE id = ?")
                .bind(*title)
                .bind(i64::try_from(*chunk_count).unwrap_or(i64::MAX))
                .bind(now)
                .bind(now)
                .bind(*id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    pub async fn fail(&self, id: &str, error: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE documents SET status = 'failed', staged = 0, error = ?, lease_until = NULL, updated_at = ? WHERE id = ?")
            .bind(error)
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Puts a document back in line (retry from the UI, re-index).
    pub async fn requeue(&self, id: &str, now: i64) -> Result<bool> {
        let r = sqlx::query("UPDATE documents SET status = 'queued', error = NULL, lease_until = NULL, attempts = 0, updated_at = ? WHERE id = ? AND status IN ('completed', 'failed')")
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(r.rows_affected() > 0)
    }

    /// Deletes a document and its chunks; returns its content address if no other document
    /// shares it (so the object can go too).
    pub async fn delete_document(&self, id: &str) -> Result<Option<String>> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        let sha: Option<String> = sqlx::query("DELETE FROM documents WHERE id = ? RETURNING sha256").bind(id).fetch_optional(&mut *tx).await.map_err(db)?.map(|r| r.get(0));
        let orphan = match &sha {
            Some(s) => sqlx::query("SELECT COUNT(*) FROM documents WHERE sha256 = ?").bind(s).fetch_one(&mut *tx).await.map_err(db)?.get::<i64, _>(0) == 0,
            None => false,
        };
        tx.commit().await.map_err(db)?;
        Ok(sha.filter(|_| orphan))
    }

    /// Chunks by id, in one query per [`IN_GROUP`] ids; unknown ids are left out.
    pub async fn chunks(&self, ids: &[String]) -> Result<Vec<StoredChunk>> {
        Ok(self.passages(ids).await?.into_iter().map(|(c, _)| c).collect())
    }

    /// Chunks with their documents, by chunk id, for search results.
    pub async fn passages_by_ids(&self, ids: &[String]) -> Result<Vec<(StoredChunk, Document)>> {
        self.passages(ids).await
    }

    /// The chunk ids of these vector keys (keys whose chunks are gone are left out).
    pub async fn chunk_ids_by_vkeys(&self, keys: &[u64]) -> Result<HashMap<u64, String>> {
        let keys: Vec<i64> = keys.iter().filter_map(|k| i64::try_from(*k).ok()).collect();
        let rows = self.select_in("SELECT vkey, id FROM chunks WHERE vkey IN ({})", None, &keys, |r| (u64::try_from(r.get::<i64, _>(0)).unwrap_or(0), r.get::<String, _>(1))).await?;
        Ok(rows.into_iter().collect())
    }

    /// Runs `select`, whose `IN ({})` gets one placeholder per value, over `values` in groups of
    /// [`IN_GROUP`], with `first` bound before them when given; maps every row.
    async fn select_in<T, R>(&self, select: &str, first: Option<&str>, values: &[T], map: impl Fn(&SqliteRow) -> R) -> Result<Vec<R>>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Sync,
    {
        let mut out = Vec::with_capacity(values.len());
        for group in values.chunks(IN_GROUP) {
            // Only placeholders are formatted into the statement; the values are bound.
            let sql = select.replace("{}", &placeholders(group.len()));
            let mut q = sqlx::query(&sql);
            if let Some(first) = first {
                q = q.bind(first);
            }
            for v in group {
                q = q.bind(v);
            }
            out.extend(q.fetch_all(&self.pool).await.map_err(db)?.iter().map(&map));
        }
        Ok(out)
    }

    async fn passages(&self, ids: &[String]) -> Result<Vec<(StoredChunk, Document)>> {
        let columns: String = DOC_COLUMNS.split(", ").map(|c| format!("d.{c}")).collect::<Vec<_>>().join(", ");
        let select = format!(
            "SELECT c.id AS chunk_id, c.position, c.page, c.section, c.header, c.text, {columns} FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({{}})"
        );
        self.select_in(&select, None, ids, |r| {
            let doc = document(r);
            let chunk = StoredChunk {
                id: r.get("chunk_id"),
                document_id: doc.id.clone(),
                position: r.get("position"),
                page: r.get("page"),
                section: r.get("section"),
                header: r.get("header"),
                text: r.get("text"),
            };
            (chunk, doc)
        })
        .await
    }

    /// Stored embeddings of `model` for these content hashes (identical text, so reusable).
    pub async fn embeddings_by_hash(&self, hashes: &[String], model: &str) -> Result<HashMap<String, Vec<f32>>> {
        let rows = self.select_in(EMBEDDINGS_BY_HASH, Some(model), hashes, |r| (r.get::<String, _>(0), from_blob(&r.get::<Vec<u8>, _>(1)))).await?;
        Ok(rows.into_iter().collect())
    }

    /// Every chunk that has a vector of `model`: (organisation, vector key).
    pub async fn embedded_keys(&self, model: &str) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query("SELECT org_id, vkey FROM chunks WHERE embedding_model = ? AND embedding IS NOT NULL").bind(model).fetch_all(&self.pool).await.map_err(db)?;
        Ok(rows.iter().map(|r| (r.get::<String, _>(0), u64::try_from(r.get::<i64, _>(1)).unwrap_or(0))).collect())
    }

    /// The vectors of these keys, with what the index files them under.
    pub async fn vectors(&self, keys: &[u64]) -> Result<Vec<StoredVector>> {
        let keys: Vec<i64> = keys.iter().map(|k| i64::try_from(*k).unwrap_or(-1)).collect();
        let select = "SELECT c.vkey, c.org_id, c.document_id, d.folder, c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.embedding IS NOT NULL AND c.vkey IN ({})";
        self.select_in(select, None, &keys, |r| StoredVector {
            key: u64::try_from(r.get::<i64, _>(0)).unwrap_or(0),
            org_id: r.get(1),
            document_id: r.get(2),
            folder: r.get(3),
            vector: from_blob(&r.get::<Vec<u8>, _>(4)),
        })
        .await
    }

    /// Chunks of completed documents without a vector of `model` (ingested while no model was
    /// available, or embedded by another model) with keys above `after`, in key order (a
    /// caller walking forward never rescans what it has done).
    pub async fn chunks_to_embed(&self, model: &str, after: u64, limit: u32) -> Result<Vec<PendingChunk>> {
        let rows = sqlx::query(
            "SELECT c.vkey, c.org_id, c.document_id, d.folder, c.header, c.text, c.content_hash FROM chunks c JOIN documents d ON d.id = c.document_id
             WHERE c.vkey > ? AND d.status = 'completed' AND (c.embedding_model IS NULL OR c.embedding_model <> ?) ORDER BY c.vkey LIMIT ?",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(model)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| PendingChunk {
                key: u64::try_from(r.get::<i64, _>(0)).unwrap_or(0),
                org_id: r.get(1),
                document_id: r.get(2),
                folder: r.get(3),
                header: r.get(4),
                text: r.get(5),
                content_hash: r.get(6),
            })
            .collect())
    }

    /// Stores vectors for existing chunks; returns the keys that still existed (a document
    /// re-indexed meanwhile has new chunks, and these vectors are stale).
    pub async fn set_embeddings(&self, model: &str, vectors: &[(u64, Vec<f32>)]) -> Result<Vec<u64>> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        let mut kept = Vec::with_capacity(vectors.len());
        for (key, v) in vectors {
            let r = sqlx::query("UPDATE chunks SET embedding = ?, embedding_model = ? WHERE vkey = ?")
                .bind(to_blob(v))
                .bind(model)
                .bind(i64::try_from(*key).unwrap_or(-1))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if r.rows_affected() > 0 {
                kept.push(*key);
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(kept)
    }

    /// Chunks of completed documents with a vector of `model`, and all chunks of completed
    /// documents: the progress of a re-embedding.
    pub async fn embedding_progress(&self, model: &str) -> Result<(u64, u64)> {
        let r = sqlx::query(
            "SELECT COALESCE(SUM(c.embedding_model = ?), 0), COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.status = 'completed'",
        )
        .bind(model)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok((u64::try_from(r.get::<i64, _>(0)).unwrap_or(0), u64::try_from(r.get::<i64, _>(1)).unwrap_or(0)))
    }

    /// Counts by status for an organisation (progress of a batch, the UI's summary).
    pub async fn status_counts(&self, org_id: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM documents WHERE org_id = ? GROUP BY status").bind(org_id).fetch_all(&self.pool).await.map_err(db)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

// Reading a document in order (the `document_retrieve` tool and the passage page of a citation).
impl MetaStore {
    /// Up to `limit` chunks of a document from position `from`, in order.
    pub async fn chunk_range(&self, document_id: &str, from: i64, limit: u32) -> Result<Vec<StoredChunk>> {
        let rows = sqlx::query("SELECT id, document_id, position, page, section, header, text FROM chunks WHERE document_id = ? AND position >= ? ORDER BY position LIMIT ?")
            .bind(document_id)
            .bind(from)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| StoredChunk {
                id: r.get("id"),
                document_id: r.get("document_id"),
                position: r.get("position"),
                page: r.get("page"),
                section: r.get("section"),
                header: r.get("header"),
                text: r.get("text"),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Reusing vectors by content hash must go through the hash index: the model's index would
    /// read every chunk embedded by that model, for each document ingested.
    #[tokio::test]
    async fn vectors_are_found_by_hash_through_the_hash_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open(&dir.path().join("knowledge.db")).await.unwrap();
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {}", EMBEDDINGS_BY_HASH.replace("{}", "?, ?")))
            .bind("local:model")
            .bind("a")
            .bind("b")
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect();
        assert!(plan.iter().any(|step| step.contains("USING INDEX chunks_by_hash")), "{plan:?}");
    }
}
