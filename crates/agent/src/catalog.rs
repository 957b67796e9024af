//! The configuration an organisation's chats run on: its providers and agents, read from
//! `TALE_CONFIG_DIR` and re-read when the files change, without a restart.
//!
//! Reads are cheap: a snapshot is reused until a fingerprint of the folders (names, sizes and
//! modification times) changes; the fingerprint is taken at most once per `RECHECK` per
//! organisation, so an edit shows up within that interval.

use crate::config::{agents_dir, load_agents, AgentSet};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tale_llm::loader::providers_dir;
use tale_llm::{load_providers, ProviderSet};

const RECHECK: Duration = Duration::from_millis(500);

/// Providers and agents of one organisation at one moment.
#[derive(Debug)]
pub struct Snapshot {
    pub providers: ProviderSet,
    pub agents: AgentSet,
    pub providers_dir: PathBuf,
}

type Fingerprint = Vec<(String, u64, Option<SystemTime>)>;

fn fingerprint(dirs: &[&Path]) -> Fingerprint {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.filter_map(Result::ok) {
            let meta = e.metadata().ok();
            out.push((
                format!("{}/{}", dir.display(), e.file_name().to_string_lossy()),
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            ));
        }
    }
    out.sort();
    out
}

struct Entry {
    snapshot: Arc<Snapshot>,
    print: Fingerprint,
    checked: Instant,
}

pub struct Catalog {
    config_dir: PathBuf,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Catalog {
    pub fn new(config_dir: impl Into<PathBuf>) -> Self {
        Catalog { config_dir: config_dir.into(), entries: Mutex::new(HashMap::new()) }
    }

    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// Forgets what was read for `org_slug`, so the next snapshot reads the files again (after
    /// Tale itself wrote them).
    pub fn invalidate(&self, org_slug: &str) {
        let mut entries = match self.entries.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries.remove(org_slug);
    }

    /// The current configuration of `org_slug`, reloaded if its files changed.
    pub fn snapshot(&self, org_slug: &str) -> Arc<Snapshot> {
        let pdir = providers_dir(&self.config_dir, org_slug);
        let adir = agents_dir(&self.config_dir, org_slug);
        let mut entries = match self.entries.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(e) = entries.get_mut(org_slug) {
            if e.checked.elapsed() < RECHECK {
                return e.snapshot.clone();
            }
            let print = fingerprint(&[&pdir, &adir]);
            e.checked = Instant::now();
            if print == e.print {
                return e.snapshot.clone();
            }
        }
        let print = fingerprint(&[&pdir, &adir]);
        let snapshot = Arc::new(Snapshot { providers: load_providers(&pdir), agents: load_agents(&adir), providers_dir: pdir });
        for s in snapshot.providers.skipped.iter().chain(&snapshot.agents.skipped) {
            tracing::warn!("config file skipped: {s}");
        }
        entries.insert(org_slug.to_owned(), Entry { snapshot: snapshot.clone(), print, checked: Instant::now() });
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_picked_up_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("providers");
        std::fs::create_dir_all(&providers).unwrap();
        let catalog = Catalog::new(dir.path());
        assert!(catalog.snapshot("default").providers.providers.is_empty());
        std::fs::write(
            providers.join("local.json"),
            r#"{"displayName":"Local","baseUrl":"http://localhost:11434/v1","models":[{"id":"llama3.3","displayName":"Llama","tags":["chat"]}]}"#,
        )
        .unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        let snap = catalog.snapshot("default");
        assert_eq!(snap.providers.providers.len(), 1);
        assert!(Arc::ptr_eq(&snap, &catalog.snapshot("default")), "unchanged files reuse the snapshot");
        // Another organisation reads its own folder.
        assert!(catalog.snapshot("research").providers.providers.is_empty());
    }
}
