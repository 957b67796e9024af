//! Ingestion: an upload becomes a queued document; workers claim documents, extract their text
//! (`tale-extract`), chunk it, embed the chunks (when an embedding model is available; text
//! embedded before, by the same model, is reused), and write the chunks with their vectors to
//! the metadata store, the BM25 index and the vector index; the document ends `completed`, or
//! `failed` with a reason a user can act on. Re-running a document (a retry, or a job whose
//! worker died) replaces its chunks, so nothing is doubled. Idle workers embed chunks that lack
//! a vector of the current model (stored while no model was available, or after a change of
//! model) and save the vector index's snapshots.

use crate::bm25::{Bm25, IndexedChunk};
use crate::cache::SearchCache;
use crate::chunk::{chunk, SectionText, DEFAULT_OVERLAP, DEFAULT_SIZE};
use crate::embedder::{Embedder, VectorStatus};
use crate::store::{Document, MetaStore, StoredChunk};
use crate::vector::{VectorEntry, VectorIndex};
use crate::{Error, Result};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tale_objects::ObjectStore;
use tokio_util::sync::CancellationToken;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct KnowledgeConfig {
    /// The knowledge directory (`KNOWLEDGE_DATA_DIR`, default `<data-dir>/knowledge`).
    pub dir: PathBuf,
    pub chunk_size: usize,
    pub chunk_overlap: usize,
    /// Documents of one organisation processed at once.
    pub per_org_concurrency: u32,
    /// How long a worker owns a claimed document before the watchdog hands it to another.
    pub lease: Duration,
    /// Largest upload (the reference's 100 MB by default).
    pub max_upload_bytes: u64,
}

impl KnowledgeConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        KnowledgeConfig {
            dir: dir.into(),
            chunk_size: DEFAULT_SIZE,
            chunk_overlap: DEFAULT_OVERLAP,
            per_org_concurrency: 4,
            lease: Duration::from_secs(120),
            max_upload_bytes: 100 * 1024 * 1024,
        }
    }
}

/// One ranked passage with the document it comes from.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Passage {
    pub chunk: StoredChunk,
    pub document: String,
    pub title: Option<String>,
    pub folder: String,
    /// Hybrid: the reciprocal-rank-fusion score; BM25 or vector alone: that ranker's score.
    pub score: f32,
    /// 1-based place in the BM25 ranking, if the passage was in it.
    pub bm25_rank: Option<u32>,
    /// 1-based place in the vector ranking, if the passage was in it.
    pub vector_rank: Option<u32>,
}

/// Chunks embedded per idle step of the background re-embedding.
const REEMBED_BATCH: u32 = 64;
/// How often idle workers write changed vector snapshots.
const SAVE_EVERY: Duration = Duration::from_secs(30);
/// Idle workers merge a fragmented BM25 index once nothing has been committed for this long.
const MERGE_WHEN_QUIET_FOR: Duration = Duration::from_secs(30);
/// Merge attempts are at least this far apart.
const MERGE_RETRY_AFTER: Duration = Duration::from_secs(600);
/// After a failed background embedding step, wait this long before the next.
const REEMBED_BACKOFF: Duration = Duration::from_secs(30);

/// An embedding model and the index of its vectors.
pub struct Vectors {
    pub embedder: Arc<dyn Embedder>,
    pub index: Arc<VectorIndex>,
}

pub struct Knowledge {
    pub meta: MetaStore,
    pub bm25: Bm25,
    pub objects: ObjectStore,
    pub config: KnowledgeConfig,
    wake: tokio::sync::Notify,
    writable: bool,
    vectors: Mutex<Option<Arc<Vectors>>>,
    /// Why there are no vectors, while there are none.
    unavailable: Mutex<String>,
    /// Serialises "chunks replaced in the store" with "vectors replaced in the index", so a
    /// background re-embedding never files a vector for a chunk that was just replaced.
    vector_write: tokio::sync::Mutex<()>,
    /// Cleared when a new model arrives; set when no chunk lacks a vector.
    reembed_done: AtomicBool,
    /// The highest key the background embedding has dealt with in this pass.
    reembed_cursor: AtomicU64,
    reembed_busy: tokio::sync::Mutex<Option<Instant>>,
    /// When the last BM25 commit and the last merge attempt happened.
    last_commit: Mutex<Option<Instant>>,
    last_merge: Mutex<Option<Instant>>,
    last_save: Mutex<Instant>,
    pub cache: SearchCache,
    /// What each document being indexed is doing, for the knowledge page.
    progress: Mutex<HashMap<String, Progress>>,
    /// Organisations whose documents changed (state or progress), for live pages.
    changes: tokio::sync::broadcast::Sender<String>,
    /// Indexed documents waiting for the next commit.
    staged: tokio::sync::Mutex<StagedBatch>,
}

/// Where a document being indexed is: `extracting`, `embedding` (`done` of `total` chunks) or
/// `indexing`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub stage: &'static str,
    pub done: usize,
    pub total: usize,
}

/// Claims of one document that may end without an outcome (the server stopped or the worker
/// hung past its lease) before the watchdog fails it instead of trying again.
pub const MAX_ATTEMPTS: i64 = 3;

/// Chunks embedded between two progress reports.
const PROGRESS_EVERY: usize = 32;

/// Indexed documents are made searchable and marked completed together (one BM25 commit, one
/// transaction): a tantivy commit per document (a new segment, an fsync) held ingestion at
/// ~40 pages/s. A batch is committed when it reaches this many documents, when its oldest has
/// waited [`COMMIT_WITHIN`], or when the queue is empty.
const COMMIT_EVERY_DOCS: usize = 500;
const COMMIT_WITHIN: Duration = Duration::from_millis(500);

/// A document indexed but not yet committed.
struct Staged {
    id: String,
    org_id: String,
    title: Option<String>,
    chunks: usize,
}

#[derive(Default)]
struct StagedBatch {
    documents: Vec<Staged>,
    since: Option<Instant>,
}

/// What a failure says to the user.
fn reason(e: &tale_extract::ExtractError) -> String {
    e.to_string()
}

impl Knowledge {
    /// Opens the knowledge store. Only one process writes the index (`writable`); others search.
    pub async fn open(config: KnowledgeConfig, objects: ObjectStore, writable: bool) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.dir).map_err(|e| Error::Io(format!("{}: {e}", config.dir.display())))?;
        let meta = MetaStore::open(&config.dir.join("knowledge.db")).await?;
        let bm25 = Bm25::open(&config.dir.join("bm25"), writable)?;
        Ok(Arc::new(Knowledge {
            meta,
            bm25,
            objects,
            config,
            wake: tokio::sync::Notify::new(),
            writable,
            vectors: Mutex::new(None),
            unavailable: Mutex::new("no embedding model is configured".into()),
            vector_write: tokio::sync::Mutex::new(()),
            reembed_done: AtomicBool::new(false),
            reembed_cursor: AtomicU64::new(0),
            reembed_busy: tokio::sync::Mutex::new(None),
            last_commit: Mutex::new(None),
            last_merge: Mutex::new(None),
            last_save: Mutex::new(Instant::now()),
            cache: SearchCache::default(),
            progress: Mutex::new(HashMap::new()),
            changes: tokio::sync::broadcast::channel(256).0,
            staged: tokio::sync::Mutex::new(StagedBatch::default()),
        }))
    }

    /// Starts using an embedding model: loads its vector snapshots, reconciles them with
    /// knowledge.db (vectors missing from the snapshots are added, deleted ones dropped), and
    /// from then on ingestion embeds chunks and search is hybrid. Chunks without a vector of
    /// this model are embedded by idle workers (see [`Knowledge::embedding_progress`]).
    pub async fn set_embedder(&self, embedder: Arc<dyn Embedder>) -> Result<()> {
        let model = embedder.model_id();
        let dims = embedder.dimensions();
        let dir = self.config.dir.join("vectors");
        let writable = self.writable;
        let open_model = model.clone();
        let index = tokio::task::spawn_blocking(move || VectorIndex::open(&dir, &open_model, dims, writable))
            .await
            .map_err(|e| Error::Index(format!("opening the vector index crashed: {e}")))??;
        let index = Arc::new(index);
        let _w = self.vector_write.lock().await;
        let stored = self.meta.embedded_keys(&model).await?;
        let mut indexed = index.keys();
        let mut missing = Vec::new();
        for (org, key) in stored {
            if !indexed.get_mut(&org).is_some_and(|keys| keys.remove(&key)) {
                missing.push(key);
            }
        }
        // What is left in `indexed` is no longer in knowledge.db.
        for (org, stale) in indexed {
            let stale: Vec<u64> = stale.into_iter().collect();
            index.remove_keys(&org, &stale);
        }
        let added = missing.len();
        for group in missing.chunks(2000) {
            let rows = self.meta.vectors(group).await?;
            let ix = index.clone();
            tokio::task::spawn_blocking(move || {
                let mut by_org: HashMap<&str, Vec<VectorEntry>> = HashMap::new();
                for r in &rows {
                    by_org.entry(&r.org_id).or_default().push(VectorEntry { key: r.key, document_id: &r.document_id, folder: &r.folder, vector: &r.vector });
                }
                by_org.into_iter().try_for_each(|(org, entries)| ix.insert(org, &entries))
            })
            .await
            .map_err(|e| Error::Index(format!("rebuilding the vector index crashed: {e}")))??;
        }
        tracing::info!(model = %model, vectors = index.len(), restored = added, "vector search ready");
        *lock(&self.vectors) = Some(Arc::new(Vectors { embedder, index }));
        self.reembed_done.store(false, Ordering::SeqCst);
        self.reembed_cursor.store(0, Ordering::SeqCst);
        self.cache.invalidate_all();
        self.wake.notify_waiters();
        Ok(())
    }

    /// Search runs BM25-only, for this reason (e.g. the model could not be fetched).
    pub fn set_vectors_unavailable(&self, reason: &str) {
        reason.clone_into(&mut lock(&self.unavailable));
    }

    pub fn vector_status(&self) -> VectorStatus {
        match &*lock(&self.vectors) {
            Some(v) => VectorStatus::Ready { model: v.embedder.model_id() },
            None => VectorStatus::Unavailable { reason: lock(&self.unavailable).clone() },
        }
    }

    pub fn vectors(&self) -> Option<Arc<Vectors>> {
        lock(&self.vectors).clone()
    }

    /// Whether background embedding may still have chunks to do: counting them
    /// ([`Knowledge::embedding_progress`]) is a pass over every chunk, so live pages ask only then.
    pub fn embedding_pending(&self) -> bool {
        self.vectors().is_some() && !self.reembed_done.load(Ordering::SeqCst)
    }

    /// Chunks of completed documents that have a vector of the current model, and all of them:
    /// the progress of embedding after a change of model (or after running without one).
    /// `None` while there is no model.
    pub async fn embedding_progress(&self) -> Result<Option<(u64, u64)>> {
        match self.vectors() {
            Some(v) => Ok(Some(self.meta.embedding_progress(&v.embedder.model_id()).await?)),
            None => Ok(None),
        }
    }

    /// Vectors for `chunks`: stored ones of the same model for identical text (same content
    /// hash) are reused; only the rest go to the model, once per distinct text.
    async fn embed_chunks(&self, v: &Vectors, texts: &[(String, String)], progress: &(dyn Fn(usize, usize) + Sync)) -> std::result::Result<Vec<Vec<f32>>, String> {
        let model = v.embedder.model_id();
        let hashes: Vec<String> = texts.iter().map(|(h, _)| h.clone()).collect::<HashSet<_>>().into_iter().collect();
        let mut known = self.meta.embeddings_by_hash(&hashes, &model).await.map_err(|e| e.to_string())?;
        let mut seen = HashSet::new();
        let todo: Vec<(String, String)> = texts.iter().filter(|(h, _)| !known.contains_key(h) && seen.insert(h.clone())).cloned().collect();
        // Reused vectors count as done: progress is over the document's chunks.
        let total = texts.len();
        let mut done = total - todo.len();
        progress(done, total);
        for part in todo.chunks(PROGRESS_EVERY) {
            let inputs: Vec<String> = part.iter().map(|(_, t)| t.clone()).collect();
            let vectors = v.embedder.embed(&inputs).await?;
            if vectors.len() != inputs.len() {
                return Err(format!("the embedding model returned {} vectors for {} chunks", vectors.len(), inputs.len()));
            }
            if let Some(bad) = vectors.iter().find(|x| x.len() != v.index.dims()) {
                return Err(format!("the embedding model returned {} dimensions where {} were expected", bad.len(), v.index.dims()));
            }
            known.extend(part.iter().map(|(h, _)| h.clone()).zip(vectors));
            done += part.len();
            progress(done, total);
        }
        texts.iter().map(|(h, _)| known.get(h).cloned().ok_or_else(|| "an embedding went missing".to_owned())).collect()
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Names the organisation each time one of its documents changes state or makes progress
    /// (a lagging receiver should simply reload).
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// What the documents being indexed are doing, by document id.
    pub fn progress(&self) -> HashMap<String, Progress> {
        lock(&self.progress).clone()
    }

    /// Search results and live pages of the organisation are out of date.
    fn changed(&self, org_id: &str) {
        self.cache.invalidate(org_id);
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(org_id.to_owned());
    }

    fn set_progress(&self, doc: &Document, stage: &'static str, done: usize, total: usize) {
        lock(&self.progress).insert(doc.id.clone(), Progress { stage, done, total });
        let _ = self.changes.send(doc.org_id.clone());
    }

    /// Queues a completed or failed document to be indexed again. False when it is already
    /// queued or being indexed.
    pub async fn requeue(&self, document_id: &str) -> Result<bool> {
        let Some(doc) = self.meta.document(document_id).await? else { return Ok(false) };
        let queued = self.meta.requeue(document_id, now_ms()).await?;
        if queued {
            self.changed(&doc.org_id);
            self.wake.notify_waiters();
        }
        Ok(queued)
    }

    /// Stores an upload and queues it. `folder` is a path like `/guides/async`.
    pub async fn add<S, E>(&self, org_id: &str, folder: &str, name: &str, media_type: &str, body: S, uploaded_by: &str) -> Result<Document>
    where
        S: futures_util::Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let stored = self.objects.put_stream(body, self.config.max_upload_bytes).await.map_err(|e| match e {
            tale_objects::ObjectError::TooLarge { limit } => Error::TooLarge(format!("'{name}' is larger than the upload limit of {limit} bytes")),
            other => Error::Io(other.to_string()),
        })?;
        let now = now_ms();
        let d = Document {
            id: uuid::Uuid::now_v7().to_string(),
            org_id: org_id.to_owned(),
            folder: clean_folder(folder),
            name: name.to_owned(),
            media_type: media_type.to_owned(),
            size: i64::try_from(stored.size).unwrap_or(i64::MAX),
            sha256: stored.sha256,
            title: None,
            status: "queued".into(),
            error: None,
            chunk_count: 0,
            attempts: 0,
            uploaded_by: uploaded_by.to_owned(),
            created_at: now,
            updated_at: now,
            indexed_at: None,
        };
        self.meta.insert_document(&d).await?;
        self.changed(org_id);
        self.wake.notify_waiters();
        Ok(d)
    }

    /// Claims and ingests one document. False when nothing is waiting.
    pub async fn process_one(&self) -> Result<bool> {
        let now = now_ms();
        let lease = self.lease_ms();
        let Some(doc) = self.meta.claim(now, now + lease, self.config.per_org_concurrency).await? else {
            // Nothing to start: finish what is staged (true if that was anything).
            return self.commit_staged().await;
        };
        if doc.attempts > MAX_ATTEMPTS {
            let message = format!(
                "indexing was interrupted {MAX_ATTEMPTS} times without finishing (the server stopped or a worker hung on this file); retry it once the cause is fixed"
            );
            tracing::warn!(document = %doc.id, name = %doc.name, attempts = doc.attempts, "document given up by the watchdog");
            self.meta.fail(&doc.id, &message, now_ms()).await?;
            self.changed(&doc.org_id);
            return Ok(true);
        }
        self.set_progress(&doc, "extracting", 0, 0);
        // Embedding a long document on the CPU can outlast the lease: renew it while working,
        // so the watchdog does not hand the document to a second worker.
        let ingest = self.ingest(&doc);
        tokio::pin!(ingest);
        let mut renew = tokio::time::interval((self.config.lease / 3).max(Duration::from_millis(100)));
        renew.tick().await;
        let outcome = loop {
            tokio::select! {
                r = &mut ingest => break r,
                _ = renew.tick() => {
                    if let Err(e) = self.meta.renew(&doc.id, now_ms() + lease).await {
                        tracing::warn!(document = %doc.id, error = %e, "could not renew the lease");
                    }
                    // Documents staged before this long one must not outwait their leases.
                    if let Err(e) = self.commit_if_due().await {
                        tracing::warn!(error = %e, "could not commit indexed documents; retrying");
                    }
                }
            }
        };
        match outcome {
            Ok((title, chunks)) => {
                // `ingest` staged it with its chunks.
                let mut staged = self.staged.lock().await;
                staged.since.get_or_insert_with(Instant::now);
                staged.documents.push(Staged { id: doc.id.clone(), org_id: doc.org_id.clone(), title, chunks });
                drop(staged);
                self.commit_if_due().await?;
            }
            Err(message) => {
                tracing::info!(document = %doc.id, name = %doc.name, reason = %message, "document failed to index");
                self.meta.fail(&doc.id, &message, now_ms()).await?;
                lock(&self.progress).remove(&doc.id);
                self.changed(&doc.org_id);
            }
        }
        Ok(true)
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX)
    }

    async fn commit_if_due(&self) -> Result<()> {
        let due = {
            let staged = self.staged.lock().await;
            staged.documents.len() >= COMMIT_EVERY_DOCS || staged.since.is_some_and(|t| t.elapsed() >= COMMIT_WITHIN)
        };
        if due {
            self.commit_staged().await?;
        }
        Ok(())
    }

    /// Makes the staged documents searchable (one BM25 commit) and marks them completed (one
    /// transaction). When the index cannot be written they fail with the reason, so a user sees
    /// it and can retry; if marking them fails instead, they stay `running` and are picked up
    /// again when their lease runs out. Indexing a document again replaces its chunks, so
    /// nothing doubles.
    pub async fn commit_staged(&self) -> Result<bool> {
        let mut staged = self.staged.lock().await;
        if staged.documents.is_empty() {
            return Ok(false);
        }
        let batch = std::mem::take(&mut *staged);
        *lock(&self.last_commit) = Some(Instant::now());
        if let Err(e) = self.bm25.commit() {
            let message = format!("the search index could not be written ({e}); retry once the cause is fixed");
            tracing::warn!(error = %e, documents = batch.documents.len(), "the search index commit failed; the batch's documents are marked failed");
            for d in &batch.documents {
                self.meta.fail(&d.id, &message, now_ms()).await?;
            }
            drop(staged);
            self.forget_progress(&batch.documents);
            return Err(e);
        }
        let done: Vec<(&str, Option<&str>, usize)> = batch.documents.iter().map(|d| (d.id.as_str(), d.title.as_deref(), d.chunks)).collect();
        self.meta.finish_many(&done, now_ms()).await?;
        drop(staged);
        self.forget_progress(&batch.documents);
        Ok(true)
    }

    /// Drops the progress of documents that are done and tells their organisations' pages.
    fn forget_progress(&self, documents: &[Staged]) {
        let mut orgs = HashSet::new();
        {
            let mut progress = lock(&self.progress);
            for d in documents {
                progress.remove(&d.id);
                orgs.insert(d.org_id.as_str());
            }
        }
        for org in orgs {
            self.changed(org);
        }
    }

    async fn ingest(&self, doc: &Document) -> std::result::Result<(Option<String>, usize), String> {
        if doc.size == 0 {
            return Err("the file is empty".into());
        }
        let bytes = self.objects.read(&doc.sha256).await.map_err(|e| format!("the original file is missing from the object store: {e}"))?;
        let head = &bytes[..bytes.len().min(1024)];
        let format = tale_extract::detect(&doc.name, Some(&doc.media_type), head)
            .ok_or_else(|| format!("'{}' is not a supported file type (PDF, DOCX, PPTX, XLSX, CSV, HTML, Markdown, text, JSON, YAML or source code)", doc.name))?;
        let (size, overlap) = (self.config.chunk_size, self.config.chunk_overlap);
        let name = doc.name.clone();
        // Extraction and chunking are CPU work: off the async threads.
        let (title, chunks) = tokio::task::spawn_blocking(move || {
            let extracted = tale_extract::extract(&format, &bytes, &tale_extract::Limits::default()).map_err(|e| reason(&e))?;
            let title = extracted.title.clone().filter(|t| !t.trim().is_empty()).unwrap_or_else(|| name.clone());
            let sections: Vec<SectionText> = extracted
                .sections
                .iter()
                .map(|s| SectionText { heading_path: &s.heading_path, page: s.page, label: s.label.as_deref(), text: &s.text })
                .collect();
            Ok::<_, String>((extracted.title.clone(), chunk(&title, &sections, size, overlap)))
        })
        .await
        .map_err(|e| format!("extraction crashed: {e}"))??;
        if chunks.is_empty() {
            return Err("no text was found in the document".into());
        }
        let ids: Vec<(String, crate::chunk::Chunk)> = chunks.into_iter().map(|c| (format!("{}:{}", doc.id, c.position), c)).collect();
        let vectors = self.vectors();
        let embeddings = match &vectors {
            Some(v) => {
                let texts: Vec<(String, String)> = ids.iter().map(|(_, c)| (c.content_hash.clone(), embedding_text(&c.header, &c.text))).collect();
                Some(self.embed_chunks(v, &texts, &|done, total| self.set_progress(doc, "embedding", done, total)).await?)
            }
            None => None,
        };
        let model = vectors.as_ref().map(|v| v.embedder.model_id());
        self.set_progress(doc, "indexing", ids.len(), ids.len());
        let _w = self.vector_write.lock().await;
        let keys = self
            .meta
            .put_chunks(&doc.id, &doc.org_id, &ids, model.as_deref().zip(embeddings.as_deref()), now_ms() + self.lease_ms())
            .await
            .map_err(|e| e.to_string())?;
        let indexed: Vec<IndexedChunk> = ids
            .iter()
            .map(|(id, c)| IndexedChunk { chunk_id: id, document_id: &doc.id, org_id: &doc.org_id, folder: &doc.folder, header: &c.header, text: &c.text, page: c.page, section: &c.section })
            .collect();
        // Committed with the batch it joins (`commit_staged`).
        self.bm25.put_document(&doc.id, &indexed).map_err(|e| e.to_string())?;
        if let (Some(v), Some(embeddings)) = (vectors, embeddings) {
            let (index, org, id, folder) = (v.index.clone(), doc.org_id.clone(), doc.id.clone(), doc.folder.clone());
            tokio::task::spawn_blocking(move || {
                index.remove_document(&org, &id);
                let entries: Vec<VectorEntry> = keys.iter().zip(&embeddings).map(|(k, e)| VectorEntry { key: *k, document_id: &id, folder: &folder, vector: e }).collect();
                index.insert(&org, &entries)
            })
            .await
            .map_err(|e| format!("the vector index crashed: {e}"))?
            .map_err(|e| e.to_string())?;
        }
        Ok((title, ids.len()))
    }

    /// One step of the background embedding: up to [`REEMBED_BATCH`] chunks that lack a vector
    /// of the current model. Returns how many were embedded (0: nothing left, or no model).
    pub async fn reembed_step(&self) -> Result<usize> {
        let Some(v) = self.vectors() else { return Ok(0) };
        if self.reembed_done.load(Ordering::SeqCst) {
            return Ok(0);
        }
        let mut busy = self.reembed_busy.lock().await;
        if busy.is_some_and(|until| Instant::now() < until) {
            return Ok(0);
        }
        let model = v.embedder.model_id();
        let cursor = self.reembed_cursor.load(Ordering::SeqCst);
        let pending = self.meta.chunks_to_embed(&model, cursor, REEMBED_BATCH).await?;
        if pending.is_empty() {
            // One more pass from the start catches what a failed step skipped; a pass that finds
            // nothing ends the work.
            if cursor == 0 {
                self.reembed_done.store(true, Ordering::SeqCst);
            }
            self.reembed_cursor.store(0, Ordering::SeqCst);
            return Ok(0);
        }
        let texts: Vec<(String, String)> = pending.iter().map(|c| (c.content_hash.clone(), embedding_text(&c.header, &c.text))).collect();
        let vectors = match self.embed_chunks(&v, &texts, &|_, _| {}).await {
            Ok(vs) => vs,
            Err(reason) => {
                tracing::warn!(%reason, "embedding stored chunks failed; trying again later");
                *busy = Some(Instant::now() + REEMBED_BACKOFF);
                return Ok(0);
            }
        };
        self.reembed_cursor.store(pending.iter().map(|c| c.key).max().unwrap_or(cursor), Ordering::SeqCst);
        let _w = self.vector_write.lock().await;
        let rows: Vec<(u64, Vec<f32>)> = pending.iter().map(|c| c.key).zip(vectors).collect();
        let kept: HashSet<u64> = self.meta.set_embeddings(&model, &rows).await?.into_iter().collect();
        let index = v.index.clone();
        let orgs: HashSet<String> = pending.iter().map(|c| c.org_id.clone()).collect();
        let embedded = rows.len();
        tokio::task::spawn_blocking(move || {
            let mut by_org: HashMap<&str, Vec<VectorEntry>> = HashMap::new();
            for (c, (_, vector)) in pending.iter().zip(&rows).filter(|(c, _)| kept.contains(&c.key)) {
                by_org.entry(&c.org_id).or_default().push(VectorEntry { key: c.key, document_id: &c.document_id, folder: &c.folder, vector });
            }
            by_org.into_iter().try_for_each(|(org, entries)| index.insert(org, &entries))
        })
        .await
        .map_err(|e| Error::Index(format!("the vector index crashed: {e}")))??;
        for org in &orgs {
            self.changed(org);
        }
        Ok(embedded)
    }

    /// Writes the vector snapshots that changed (the server does so when idle and at shutdown).
    pub async fn save_vectors(&self) -> Result<()> {
        let Some(v) = self.vectors().filter(|_| self.writable) else { return Ok(()) };
        *lock(&self.last_save) = Instant::now();
        if !v.index.is_dirty() {
            return Ok(());
        }
        let index = v.index.clone();
        let written = tokio::task::spawn_blocking(move || index.save()).await.map_err(|e| Error::Index(format!("saving the vector index crashed: {e}")))??;
        tracing::debug!(files = written, "vector snapshots saved");
        Ok(())
    }

    /// What an idle worker does: embed chunks that lack vectors, else save snapshots that are
    /// due and merge a fragmented BM25 index (given up when `stop` comes: shutdown must not wait
    /// for it). True when it did some embedding (so the worker looks again at once).
    async fn idle_work(self: &Arc<Self>, stop: &CancellationToken) -> bool {
        match self.reembed_step().await {
            Ok(n) if n > 0 => return true,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "background embedding failed"),
        }
        let due = lock(&self.last_save).elapsed() >= SAVE_EVERY;
        if due && let Err(e) = self.save_vectors().await {
            tracing::warn!(error = %e, "saving the vector index failed");
        }
        let merged = tokio::select! {
            _ = stop.cancelled() => Ok(false),
            merged = self.merge_if_fragmented() => merged,
        };
        if let Err(e) = merged {
            tracing::warn!(error = %e, "merging the search index failed; it stays searchable as it is, and the merge is tried again later");
        }
        false
    }

    /// Merges the BM25 index's segments (see [`crate::bm25::Bm25::merge_segments`]) when it holds more than
    /// [`crate::bm25::IDLE_MERGE_ABOVE`] and uploads have stopped (no commit for
    /// [`MERGE_WHEN_QUIET_FOR`]). At most one attempt per [`MERGE_RETRY_AFTER`] (a merge takes
    /// seconds), so one at a time, and a failed one (tantivy's own merge policy may have taken
    /// some of the segments) is not retried at once. True when this call merged.
    pub async fn merge_if_fragmented(self: &Arc<Self>) -> Result<bool> {
        let quiet = lock(&self.last_commit).is_none_or(|t| t.elapsed() >= MERGE_WHEN_QUIET_FOR);
        if !self.writable || !quiet || self.bm25.segment_count() <= crate::bm25::IDLE_MERGE_ABOVE {
            return Ok(false);
        }
        {
            let mut last = lock(&self.last_merge);
            if last.is_some_and(|t| t.elapsed() < MERGE_RETRY_AFTER) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        let started = Instant::now();
        let segments = self.bm25.segment_count();
        let k = self.clone();
        let merged = tokio::task::spawn_blocking(move || k.bm25.merge_segments()).await;
        let merged = merged.map_err(|e| Error::Index(format!("merging the search index crashed: {e}")))??;
        if merged {
            tracing::info!(segments, now = self.bm25.segment_count(), seconds = started.elapsed().as_secs_f64(), "search index segments merged");
        }
        Ok(merged)
    }

    /// Runs `workers` ingestion loops until `stop`: each takes the next document, or waits for
    /// a new upload (or, at most, a second — the watchdog's look at expired leases).
    pub async fn run_workers(self: Arc<Self>, workers: usize, stop: CancellationToken) {
        let mut tasks = Vec::new();
        for _ in 0..workers.max(1) {
            let k = self.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let worked = match k.process_one().await {
                        Ok(w) => w,
                        Err(e) => {
                            tracing::warn!(error = %e, "ingestion worker failed; retrying");
                            false
                        }
                    };
                    if worked || k.idle_work(&stop).await {
                        continue;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = k.wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        if let Err(e) = self.save_vectors().await {
            tracing::warn!(error = %e, "saving the vector index failed");
        }
    }

    /// Removes a document from every index at once, and its original if no other document
    /// shares it.
    pub async fn delete(&self, document_id: &str) -> Result<()> {
        let doc = self.meta.document(document_id).await?;
        let _w = self.vector_write.lock().await;
        let orphan = self.meta.delete_document(document_id).await?;
        self.bm25.delete_document(document_id)?;
        self.bm25.commit()?;
        if let (Some(d), Some(v)) = (&doc, self.vectors()) {
            v.index.remove_document(&d.org_id, document_id);
        }
        if let Some(d) = &doc {
            self.changed(&d.org_id);
        }
        if let Some(sha) = orphan {
            let _ = self.objects.remove(&sha).await;
        }
        Ok(())
    }
}

/// What a chunk's vector is computed from: its context header, then its text.
pub(crate) fn embedding_text(header: &str, text: &str) -> String {
    format!("{header}\n{text}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `/`-separated, leading slash, no empty or `.`/`..` segments.
pub fn clean_folder(folder: &str) -> String {
    let parts: Vec<&str> = folder.split('/').map(str::trim).filter(|p| !p.is_empty() && *p != "." && *p != "..").collect();
    format!("/{}", parts.join("/"))
}
