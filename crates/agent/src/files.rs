//! Writing the config tree the way the reference does (TALE-COMPAT §1.2): atomic writes through a
//! temporary `.<name>.<epochms>.<8 hex>.tmp` sibling that is synced then renamed, a snapshot of
//! the previous content in `<area>/.history/<slug>/` before every change (at most 100 kept), and
//! first-start seeding of the bundled example agents and providers.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Snapshots kept per agent or provider.
pub const HISTORY_LIMIT: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("no such version")]
    NoSuchVersion,
}

fn io(path: &Path, e: impl std::fmt::Display) -> FileError {
    FileError::Io { path: path.display().to_string(), message: e.to_string() }
}

fn now_ms() -> i64 {
    tale_core::id::now_ms()
}

/// Writes `bytes` to `path` atomically with `mode`; creates the folder if needed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.{:08x}.tmp", now_ms(), rand::random::<u32>()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the folder is synced.
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path, e)
    })
}

fn history_dir(area_dir: &Path, slug: &str) -> PathBuf {
    area_dir.join(".history").join(slug)
}

/// One saved version of a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// Epoch ms when it was replaced; also its name in the history folder.
    pub version: i64,
    pub size: u64,
}

/// Versions of `slug`, newest first.
pub fn history(area_dir: &Path, slug: &str) -> Vec<Version> {
    let Ok(entries) = std::fs::read_dir(history_dir(area_dir, slug)) else { return Vec::new() };
    let mut out: Vec<Version> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name.strip_suffix(".json")?.parse().ok()?;
            Some(Version { version, size: e.metadata().ok()?.len() })
        })
        .collect();
    out.sort_by_key(|v| std::cmp::Reverse(v.version));
    out
}

pub fn read_version(area_dir: &Path, slug: &str, version: i64) -> Result<String, FileError> {
    let path = history_dir(area_dir, slug).join(format!("{version}.json"));
    std::fs::read_to_string(&path).map_err(|e| if e.kind() == std::io::ErrorKind::NotFound { FileError::NoSuchVersion } else { io(&path, e) })
}

/// Saves the current content of `<area_dir>/<slug>.json` (if any) into its history, pruning the
/// oldest beyond [`HISTORY_LIMIT`].
pub fn snapshot(area_dir: &Path, slug: &str) -> Result<(), FileError> {
    let current = area_dir.join(format!("{slug}.json"));
    let Ok(bytes) = std::fs::read(&current) else { return Ok(()) };
    let dir = history_dir(area_dir, slug);
    let mut version = now_ms();
    // Two saves in one millisecond still get two versions.
    while dir.join(format!("{version}.json")).exists() {
        version += 1;
    }
    write_atomic(&dir.join(format!("{version}.json")), &bytes, 0o644)?;
    for old in history(area_dir, slug).into_iter().skip(HISTORY_LIMIT) {
        let _ = std::fs::remove_file(dir.join(format!("{}.json", old.version)));
    }
    Ok(())
}

/// Replaces `<area_dir>/<slug>.json`, keeping the previous content in the history.
pub fn save(area_dir: &Path, slug: &str, text: &str) -> Result<(), FileError> {
    snapshot(area_dir, slug)?;
    write_atomic(&area_dir.join(format!("{slug}.json")), text.as_bytes(), 0o644)
}

/// Deletes `<area_dir>/<slug>.json`, keeping its content in the history (which also stops
/// seeding from bringing a deleted example back).
pub fn remove(area_dir: &Path, slug: &str) -> Result<(), FileError> {
    snapshot(area_dir, slug)?;
    let path = area_dir.join(format!("{slug}.json"));
    std::fs::remove_file(&path).map_err(|e| io(&path, e))
}

/// The reference's example agents and providers, compiled in.
const EXAMPLES: &[(&str, &str, &str)] = &[
    ("agents", "chat-agent", include_str!("../../../fixtures/tale-examples/agents/chat-agent.json")),
    ("agents", "crm-assistant", include_str!("../../../fixtures/tale-examples/agents/crm-assistant.json")),
    ("agents", "image-creator", include_str!("../../../fixtures/tale-examples/agents/image-creator.json")),
    ("agents", "integration-assistant", include_str!("../../../fixtures/tale-examples/agents/integration-assistant.json")),
    ("agents", "researcher", include_str!("../../../fixtures/tale-examples/agents/researcher.json")),
    ("agents", "translator", include_str!("../../../fixtures/tale-examples/agents/translator.json")),
    ("agents", "workflow-assistant", include_str!("../../../fixtures/tale-examples/agents/workflow-assistant.json")),
    ("providers", "openai", include_str!("../../../fixtures/tale-examples/providers/openai.json")),
    ("providers", "openrouter", include_str!("../../../fixtures/tale-examples/providers/openrouter.json")),
    ("providers", "vercel-gateway", include_str!("../../../fixtures/tale-examples/providers/vercel-gateway.json")),
];

/// Copies the bundled examples into the default organisation's folders on the first start of
/// `version` (marker `.seeded-<version>`). Never overwrites a file, and skips a slug whose history
/// is non-empty (it was edited and then deleted). `force` (`FORCE_SEED=true`) ignores the marker
/// and the history. Returns the files written.
pub fn seed_examples(config_dir: &Path, version: &str, force: bool) -> Result<Vec<PathBuf>, FileError> {
    let marker = config_dir.join(format!(".seeded-{version}"));
    if marker.exists() && !force {
        return Ok(Vec::new());
    }
    let mut written = Vec::new();
    for (area, slug, text) in EXAMPLES {
        let area_dir = config_dir.join(area);
        let target = area_dir.join(format!("{slug}.json"));
        if target.exists() || (!force && !history(&area_dir, slug).is_empty()) {
            continue;
        }
        write_atomic(&target, text.as_bytes(), 0o644)?;
        written.push(target);
    }
    write_atomic(&marker, b"", 0o644)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn saves_keep_history_and_writes_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let agents = dir.path().join("agents");
        save(&agents, "helper", "{\"v\":1}").unwrap();
        assert!(history(&agents, "helper").is_empty(), "nothing to keep the first time");
        save(&agents, "helper", "{\"v\":2}").unwrap();
        save(&agents, "helper", "{\"v\":3}").unwrap();
        let versions = history(&agents, "helper");
        assert_eq!(versions.len(), 2);
        assert_eq!(read_version(&agents, "helper", versions[0].version).unwrap(), "{\"v\":2}", "newest first");
        assert_eq!(read_version(&agents, "helper", versions[1].version).unwrap(), "{\"v\":1}");
        assert_eq!(std::fs::read_to_string(agents.join("helper.json")).unwrap(), "{\"v\":3}");
        let names: Vec<String> = std::fs::read_dir(&agents).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        remove(&agents, "helper").unwrap();
        assert!(!agents.join("helper.json").exists());
        assert_eq!(history(&agents, "helper").len(), 3);
        assert!(matches!(read_version(&agents, "helper", 1).unwrap_err(), FileError::NoSuchVersion));
    }

    #[test]
    fn history_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..(HISTORY_LIMIT + 5) {
            save(dir.path(), "a", &i.to_string()).unwrap();
        }
        assert_eq!(history(dir.path(), "a").len(), HISTORY_LIMIT);
    }

    #[test]
    fn seeding_once_never_overwrites_and_respects_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path();
        std::fs::create_dir_all(config.join("agents")).unwrap();
        std::fs::write(config.join("agents/translator.json"), "{\"mine\":true}").unwrap();
        let written = seed_examples(config, "1.0", false).unwrap();
        assert_eq!(written.len(), EXAMPLES.len() - 1);
        assert_eq!(std::fs::read_to_string(config.join("agents/translator.json")).unwrap(), "{\"mine\":true}");
        let agents = crate::config::load_agents(&config.join("agents"));
        assert!(agents.skipped.iter().all(|s| s.file.ends_with("translator.json")), "examples load: {:?}", agents.skipped);
        assert!(seed_examples(config, "1.0", false).unwrap().is_empty(), "marker present");
        remove(&config.join("agents"), "researcher").unwrap();
        assert!(seed_examples(config, "1.1", false).unwrap().is_empty(), "deleted examples stay deleted");
        assert_eq!(seed_examples(config, "1.1", true).unwrap().len(), 1, "FORCE_SEED brings it back");
    }
}
