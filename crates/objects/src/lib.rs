//! The objects role on embedded storage: uploads, generated files and exports as files named by
//! the SHA-256 of their bytes (`<root>/ab/cd/abcd…`), so the same bytes are kept once.
//!
//! Writes stream into a temporary file while hashing and counting, and stop as soon as the size
//! limit is passed; only a complete, synced file is renamed into place, so a crash or a refused
//! upload never leaves a half-written object under a real name.
//!
//! Architecture invariant: knows files and bytes only: no store, no HTTP, no permissions.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the upload broke off: {0}")]
    Interrupted(String),
    #[error("object {0} not found")]
    NotFound(String),
    #[error("object store at {path}: {message}")]
    Io { path: String, message: String },
}

/// A stored object: its content address and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub sha256: String,
    pub size: u64,
}

/// Uploads up to this size are written in one blocking step: each `tokio::fs` call is a hop to
/// the blocking pool, and most documents are far smaller than this.
pub const IN_MEMORY_UP_TO: usize = 1 << 20;

/// Puts an object in place: `bytes` written to `tmp` and synced first when given (else `tmp`
/// holds them already, synced), then renamed to `target`; an object already there is kept and
/// the temporary removed.
fn place(tmp: &Path, bytes: Option<&[u8]>, target: &Path) -> Result<(), ObjectError> {
    if target.is_file() {
        if bytes.is_none() {
            let _ = std::fs::remove_file(tmp);
        }
        return Ok(());
    }
    if let Some(bytes) = bytes {
        let written = std::fs::File::create(tmp).and_then(|mut f| {
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(tmp);
            return Err(io(tmp, e));
        }
    }
    let moved = target.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::rename(tmp, target));
    moved.map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        io(target, e)
    })
}

#[derive(Debug, Clone)]
pub struct ObjectStore {
    root: PathBuf,
}

fn io(path: &Path, e: impl std::fmt::Display) -> ObjectError {
    ObjectError::Io { path: path.display().to_string(), message: e.to_string() }
}

fn valid_sha(sha: &str) -> bool {
    sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl ObjectStore {
    /// Opens (creating) the store at `root`, clearing temporaries a crash left behind.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ObjectError> {
        let root = root.into();
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(ObjectStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where an object lives (whether or not it exists). `None` for a malformed address.
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        valid_sha(sha256).then(|| self.root.join(&sha256[0..2]).join(&sha256[2..4]).join(sha256))
    }

    pub fn contains(&self, sha256: &str) -> bool {
        self.path(sha256).is_some_and(|p| p.is_file())
    }

    /// Streams `body` in, refusing more than `limit` bytes. Up to [`IN_MEMORY_UP_TO`] bytes are
    /// gathered in memory and written, synced and renamed in one blocking step; a larger body
    /// goes to a temporary file as it arrives.
    pub async fn put_stream<S, E>(&self, mut body: S, limit: u64) -> Result<StoredObject, ObjectError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let tmp = self.root.join("tmp").join(uuid::Uuid::now_v7().to_string());
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut head: Vec<u8> = Vec::new();
        let mut file: Option<tokio::fs::File> = None;
        let outcome = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ObjectError::Interrupted(e.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(ObjectError::TooLarge { limit });
                }
                hasher.update(&chunk);
                match &mut file {
                    Some(f) => f.write_all(&chunk).await.map_err(|e| io(&tmp, e))?,
                    None if head.len() + chunk.len() <= IN_MEMORY_UP_TO => head.extend_from_slice(&chunk),
                    None => {
                        let mut f = tokio::fs::File::create(&tmp).await.map_err(|e| io(&tmp, e))?;
                        f.write_all(&std::mem::take(&mut head)).await.map_err(|e| io(&tmp, e))?;
                        f.write_all(&chunk).await.map_err(|e| io(&tmp, e))?;
                        file = Some(f);
                    }
                }
            }
            if let Some(f) = &mut file {
                f.sync_all().await.map_err(|e| io(&tmp, e))?;
            }
            Ok(())
        }
        .await;
        let streamed = file.take().is_some();
        if let Err(e) = outcome {
            if streamed {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            return Err(e);
        }
        let stored = StoredObject { sha256: hex::encode(hasher.finalize()), size };
        let Some(target) = self.path(&stored.sha256) else {
            return Err(io(&tmp, "hash is not hex"));
        };
        tokio::task::spawn_blocking(move || place(&tmp, (!streamed).then_some(head.as_slice()), &target))
            .await
            .map_err(|e| io(&self.root, format!("the object write crashed: {e}")))??;
        Ok(stored)
    }

    pub async fn put_bytes(&self, bytes: Bytes, limit: u64) -> Result<StoredObject, ObjectError> {
        let stream = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
        self.put_stream(stream, limit).await
    }

    pub async fn read(&self, sha256: &str) -> Result<Vec<u8>, ObjectError> {
        let path = self.path(sha256).ok_or_else(|| ObjectError::NotFound(sha256.to_owned()))?;
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ObjectError::NotFound(sha256.to_owned())),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Removes an object (callers first make sure nothing refers to it any more).
    pub async fn remove(&self, sha256: &str) -> Result<(), ObjectError> {
        let path = self.path(sha256).ok_or_else(|| ObjectError::NotFound(sha256.to_owned()))?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        futures_util::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p.as_bytes()))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn stores_by_content_and_deduplicates() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let a = store.put_stream(chunks(&["hello ", "world"]), 100).await.unwrap();
        assert_eq!(a.sha256, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(a.size, 11);
        let b = store.put_bytes(Bytes::from_static(b"hello world"), 100).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(store.read(&a.sha256).await.unwrap(), b"hello world");
        assert!(store.path(&a.sha256).unwrap().ends_with(format!("b9/4d/{}", a.sha256)));
        assert!(store.path("../../etc/passwd").is_none(), "addresses are hex only");
    }

    #[tokio::test]
    async fn too_large_or_broken_uploads_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let err = store.put_stream(chunks(&["12345", "67890", "x"]), 10).await.unwrap_err();
        assert!(matches!(err, ObjectError::TooLarge { limit: 10 }), "{err}");
        let broken = futures_util::stream::iter(vec![Ok(Bytes::from_static(b"part")), Err(std::io::Error::other("reset"))]);
        let err = store.put_stream(broken, 100).await.unwrap_err();
        assert!(err.to_string().contains("broke off"), "{err}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
        assert!(leftovers.is_empty(), "temporaries removed");
        let dirs: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(dirs, ["tmp"], "no object written");
        assert!(matches!(store.read(&"0".repeat(64)).await.unwrap_err(), ObjectError::NotFound(_)));
    }

    #[tokio::test]
    async fn uploads_past_the_in_memory_size_stream_through_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let part = Bytes::from(vec![b'a'; IN_MEMORY_UP_TO / 2 + 1]);
        let body = || futures_util::stream::iter((0..3).map(|_| Ok::<_, std::io::Error>(part.clone())).collect::<Vec<_>>());
        let stored = store.put_stream(body(), 10 * IN_MEMORY_UP_TO as u64).await.unwrap();
        let whole = [part.as_ref(), part.as_ref(), part.as_ref()].concat();
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&whole)));
        assert_eq!(store.read(&stored.sha256).await.unwrap(), whole);
        assert_eq!(store.put_stream(body(), 10 * IN_MEMORY_UP_TO as u64).await.unwrap(), stored, "the same bytes again are kept once");
        // Past the limit after the body went to disk: refused, and the temporary is gone.
        let err = store.put_stream(body(), (IN_MEMORY_UP_TO + IN_MEMORY_UP_TO / 4) as u64).await.unwrap_err();
        assert!(matches!(err, ObjectError::TooLarge { .. }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "temporaries removed");
    }
}
