//! Ingestion: an upload becomes a queued document; workers claim documents, extract their text
//! (`tale-extract`), chunk it, and write the chunks to the metadata store and the BM25 index;
//! the document ends `completed`, or `failed` with a reason a user can act on. Re-running a
//! document (a retry, or a job whose worker died) replaces its chunks, so nothing is doubled.

use crate::bm25::{Bm25, IndexedChunk, Scope};
use crate::chunk::{chunk, SectionText, DEFAULT_OVERLAP, DEFAULT_SIZE};
use crate::store::{Document, MetaStore, StoredChunk};
use crate::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
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
            per_org_concurrency: 2,
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
    pub score: f32,
}

pub struct Knowledge {
    pub meta: MetaStore,
    pub bm25: Bm25,
    pub objects: ObjectStore,
    pub config: KnowledgeConfig,
    wake: tokio::sync::Notify,
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
        Ok(Arc::new(Knowledge { meta, bm25, objects, config, wake: tokio::sync::Notify::new() }))
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
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
        self.wake.notify_waiters();
        Ok(d)
    }

    /// Claims and ingests one document. False when nothing is waiting.
    pub async fn process_one(&self) -> Result<bool> {
        let now = now_ms();
        let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let Some(doc) = self.meta.claim(now, now + lease, self.config.per_org_concurrency).await? else { return Ok(false) };
        match self.ingest(&doc).await {
            Ok((title, n)) => self.meta.finish(&doc.id, title.as_deref(), n, now_ms()).await?,
            Err(message) => {
                tracing::info!(document = %doc.id, name = %doc.name, reason = %message, "document failed to index");
                self.meta.fail(&doc.id, &message, now_ms()).await?;
            }
        }
        Ok(true)
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
        self.meta.put_chunks(&doc.id, &doc.org_id, &ids).await.map_err(|e| e.to_string())?;
        let indexed: Vec<IndexedChunk> = ids
            .iter()
            .map(|(id, c)| IndexedChunk { chunk_id: id, document_id: &doc.id, org_id: &doc.org_id, folder: &doc.folder, header: &c.header, text: &c.text, page: c.page, section: &c.section })
            .collect();
        self.bm25.put_document(&doc.id, &indexed).map_err(|e| e.to_string())?;
        self.bm25.commit().map_err(|e| e.to_string())?;
        Ok((title, ids.len()))
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
                    if worked {
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
    }

    /// Removes a document from every index at once, and its original if no other document
    /// shares it.
    pub async fn delete(&self, document_id: &str) -> Result<()> {
        let orphan = self.meta.delete_document(document_id).await?;
        self.bm25.delete_document(document_id)?;
        self.bm25.commit()?;
        if let Some(sha) = orphan {
            let _ = self.objects.remove(&sha).await;
        }
        Ok(())
    }

    /// The best `k` passages for `query` in the organisation's scope.
    pub async fn search(&self, org_id: &str, scope: &Scope, query: &str, k: usize) -> Result<Vec<Passage>> {
        let hits = self.bm25.search(org_id, scope, query, k)?;
        let ids: Vec<String> = hits.iter().map(|h| h.chunk_id.clone()).collect();
        let chunks = self.meta.chunks(&ids).await?;
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            let Some(chunk) = chunks.iter().find(|c| c.id == h.chunk_id).cloned() else { continue };
            let Some(doc) = self.meta.document(&h.document_id).await? else { continue };
            out.push(Passage { chunk, document: doc.name, title: doc.title, folder: doc.folder, score: h.score });
        }
        Ok(out)
    }
}

/// `/`-separated, leading slash, no empty or `.`/`..` segments.
pub fn clean_folder(folder: &str) -> String {
    let parts: Vec<&str> = folder.split('/').map(str::trim).filter(|p| !p.is_empty() && *p != "." && *p != "..").collect();
    format!("/{}", parts.join("/"))
}
