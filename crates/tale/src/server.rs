//! `tale serve`: wires every role together in one process and runs until told to stop.
//!
//! This is the only place that knows which implementation backs each trait (DESIGN §2).

use crate::datadir::{self, ServerLock};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tale_core::config::Config;
use tale_core::feed::{Change, Topic};
use tale_core::service::Services;
use tale_core::store::Store;
use tale_http::AppState;
use tale_store_sqlite::SqliteStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the change feed looks for commits made by other processes (e.g. `tale admin`).
const FEED_POLL: Duration = Duration::from_millis(500);
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
    flusher: JoinHandle<()>,
    /// The knowledge store (documents, chunks, BM25 index) and its workers' stop signal.
    pub knowledge: Arc<tale_knowledge::ingest::Knowledge>,
    knowledge_stop: tokio_util::sync::CancellationToken,
    _lock: ServerLock,
}

/// Opens the embedded store with a message that says what to do when it fails.
pub async fn open_store(config: &Config) -> Result<SqliteStore> {
    SqliteStore::open(&config.database_path()).await.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Builds the services over an opened store (shared with the admin commands).
pub fn services(config: &Config, store: Arc<dyn Store>) -> Result<Arc<Services>> {
    let secret = datadir::instance_secret(&config.data_dir, config.secret.as_ref().map(|s| s.expose()))?;
    Ok(Arc::new(Services::new(store, &secret, Duration::from_secs(config.session_ttl_secs), &config.site_url)))
}

pub async fn start(config: Config) -> Result<Server> {
    let started = Instant::now();
    datadir::prepare(&config.data_dir)?;
    let lock = ServerLock::acquire(&config.data_dir)?;
    let store: Arc<dyn Store> = Arc::new(open_store(&config).await?);
    let services = services(&config, store.clone())?;
    let config = Arc::new(config);
    let knowledge = knowledge(&config).await?;
    let chat = chat_service(&config, services.clone(), knowledge.clone()).await?;
    let state = AppState::new(services.clone(), config.clone(), chat.clone(), knowledge.clone()).map_err(|e| anyhow::anyhow!("TALE_TRUSTED_PROXIES: {e}"))?;

    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        format!("cannot listen on {}: is another program using that port? Choose another with --listen", config.listen)
    })?;
    let addr = listener.local_addr()?;

    let (stop, stopped) = watch::channel(false);
    let mut background = vec![
        tokio::spawn(services.feed.clone().run_tailer(store.clone(), FEED_POLL, stopped.clone())),
        tokio::spawn(housekeeping(services.clone(), stopped.clone())),
        tokio::spawn(invalidate_on_change(services.clone(), stopped.clone())),
        tokio::spawn(knowledge_changes(knowledge.clone(), services.clone(), stopped.clone())),
    ];
    let flusher = chat.spawn_flusher();
    let knowledge_stop = tokio_util::sync::CancellationToken::new();
    background.push(tokio::spawn(knowledge.clone().run_workers(KNOWLEDGE_WORKERS, knowledge_stop.clone())));
    // Never blocks start-up: search is BM25-only (and says why) until the model is loaded, and a
    // failed fetch or provider is tried again later (a provider down at start-up, no network).
    let (k, c) = (knowledge.clone(), config.clone());
    background.push(tokio::spawn(async move {
        let again = if c.embedding_model.is_some() { Duration::from_secs(60) } else { Duration::from_secs(600) };
        loop {
            crate::knowledge_cmd::attach_embedder(&k, &c, true).await;
            tracing::info!("knowledge: {}", k.vector_status());
            if k.vector_status().is_ready() || (c.embedding_model.is_none() && c.embedding_index_url.is_none()) {
                return;
            }
            tokio::time::sleep(again).await;
        }
    }));

    match services.prepare_setup().await? {
        Some(token) => {
            datadir::write_setup_token(&config.data_dir, &token)?;
            let base = if config.site_url.contains("://0.0.0.0") { format!("http://{addr}") } else { config.site_url.clone() };
            tracing::info!("no account exists yet: open {base}/setup?token={token} to create the Owner");
            background.push(tokio::spawn(forget_setup_token(services.clone(), config.data_dir.clone(), stopped.clone())));
        }
        None => datadir::remove_setup_token(&config.data_dir),
    }

    let mut shutdown = stopped.clone();
    let task = tokio::spawn(tale_http::serve(listener, state.clone(), async move {
        let _ = shutdown.changed().await;
    }));
    tracing::info!(
        address = %addr,
        data_dir = %config.data_dir.display(),
        millis = started.elapsed().as_millis() as u64,
        "Tale is ready on {}",
        config.site_url
    );
    Ok(Server { addr, state, stop, task, background, flusher, knowledge, knowledge_stop, _lock: lock })
}

/// Documents indexed at once: each spends part of its time waiting on SQLite and the disk, so
/// four keep two cores busy (372 → 477 HTML pages/s with the per-organisation cap raised to match).
pub const KNOWLEDGE_WORKERS: usize = 4;

/// The knowledge store, writable: this process runs the ingestion workers.
async fn knowledge(config: &Config) -> Result<Arc<tale_knowledge::ingest::Knowledge>> {
    let objects = tale_objects::ObjectStore::open(config.objects_dir()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut kc = tale_knowledge::ingest::KnowledgeConfig::new(&config.knowledge_dir);
    kc.max_upload_bytes = config.max_upload_bytes;
    tale_knowledge::ingest::Knowledge::open(kc, objects, true)
        .await
        .with_context(|| format!("cannot open the knowledge store in {} (KNOWLEDGE_DATA_DIR)", config.knowledge_dir.display()))
}

/// The chat role: seeded example agents and providers, the age keys provider secrets are
/// encrypted to, the object store, and answers left streaming by a crash marked interrupted.
async fn chat_service(config: &Config, services: Arc<Services>, knowledge: Arc<tale_knowledge::ingest::Knowledge>) -> Result<Arc<tale_chat::ChatService>> {
    let force = crate::settings::process_env("FORCE_SEED").is_some_and(|v| v == "true" || v == "1");
    let seeded = tale_agent::files::seed_examples(&config.config_dir, env!("CARGO_PKG_VERSION"), force)
        .with_context(|| format!("cannot write the example agents into {}", config.config_dir.display()))?;
    if !seeded.is_empty() {
        tracing::info!(files = seeded.len(), dir = %config.config_dir.display(), "seeded the example agents and providers");
    }
    let mut age_keys = tale_secrets::AgeKeys::from_env(&crate::settings::process_env)?;
    if age_keys.is_empty() {
        age_keys = datadir::data_dir_age_key(&config.data_dir)?;
    }
    let objects = tale_objects::ObjectStore::open(config.objects_dir()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let chat = tale_chat::ChatService::new(
        services,
        Arc::new(tale_agent::catalog::Catalog::new(config.config_dir.clone())),
        age_keys,
        objects,
        Some(knowledge),
        tale_chat::ChatConfig {
            site_url: config.site_url.clone(),
            max_upload_bytes: config.max_upload_bytes,
            render_markdown: tale_ui::markdown::render_answer,
            flush_every: Duration::from_millis(500),
        },
    )?;
    let interrupted = chat.recover().await?;
    if interrupted > 0 {
        tracing::warn!(answers = interrupted, "answers that were being written when the server stopped are marked interrupted");
    }
    Ok(chat)
}

impl Server {
    /// Stops accepting, lets in-flight requests finish (up to `grace`), stops background work.
    pub async fn stop(self, grace: Duration) -> Result<()> {
        let _ = self.stop.send(true);
        self.state.start_draining();
        // Answers being written are stopped and stored before the store goes away.
        self.state.chat.shutdown(grace.min(Duration::from_secs(5))).await;
        self.knowledge_stop.cancel();
        // The workers save on their way out too; this covers a worker still busy with a document.
        if let Err(e) = self.knowledge.save_vectors().await {
            tracing::warn!(error = %e, "saving the vector index failed; it is rebuilt from knowledge.db at the next start");
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.flusher).await;
        let result = tokio::time::timeout(grace, self.task).await;
        for t in self.background {
            t.abort();
        }
        match result {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e).context("server failed"),
            Ok(Err(e)) => Err(anyhow::anyhow!("server task failed: {e}")),
            Err(_) => {
                tracing::warn!("some connections did not finish within {grace:?}; closing them");
                Ok(())
            }
        }
    }
}

async fn housekeeping(services: Arc<Services>, mut stopped: watch::Receiver<bool>) {
    loop {
        match services.purge_expired().await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "removed expired sessions and sign-in records"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Commits by other processes (seen on the feed) drop cached identities and roles too.
async fn invalidate_on_change(services: Arc<Services>, mut stopped: watch::Receiver<bool>) {
    let mut changes = services.feed.subscribe();
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                // Indexing progress is not a commit that could change who someone is.
                Ok(c) if c.topics == [Topic::Knowledge] => {}
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => services.invalidate_caches(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = stopped.changed() => return,
        }
    }
}

/// How often an organisation's knowledge page hears of indexing progress at most: a folder of
/// hundreds of documents would otherwise send one update per document per step.
const KNOWLEDGE_PUSH_EVERY: Duration = Duration::from_millis(250);

/// Forwards the knowledge store's changes to the live feed, at most one per organisation per
/// [`KNOWLEDGE_PUSH_EVERY`] (the last one always goes out).
async fn knowledge_changes(knowledge: Arc<tale_knowledge::ingest::Knowledge>, services: Arc<Services>, mut stopped: watch::Receiver<bool>) {
    let mut changes = knowledge.subscribe_changes();
    let (mut pending, mut seen) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    let mut tick = tokio::time::interval(KNOWLEDGE_PUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(org) => {
                    seen.insert(org.clone());
                    pending.insert(org);
                }
                // Too many to tell apart: every organisation heard of so far reloads.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => pending.extend(seen.iter().cloned()),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick(), if !pending.is_empty() => {
                for org_id in std::mem::take(&mut pending) {
                    services.feed.publish(Change { org_id, topics: vec![Topic::Knowledge], gid: 0, action: "knowledge_changed".into() });
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

/// Deletes the setup-token file once an Owner exists.
async fn forget_setup_token(services: Arc<Services>, dir: std::path::PathBuf, mut stopped: watch::Receiver<bool>) {
    let mut changes = services.feed.subscribe();
    loop {
        tokio::select! {
            change = changes.recv() => {
                let done = match change {
                    Ok(c) => c.action == "setup_completed",
                    Err(_) => services.store.count_users().await.unwrap_or(0) > 0,
                };
                if done {
                    datadir::remove_setup_token(&dir);
                    return;
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
