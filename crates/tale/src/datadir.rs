//! The data dir: creating it, proving it is writable, the single-server lock, the instance secret
//! and the one-time setup token file.

use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "tale.lock";
pub const SECRET_FILE: &str = "secret.key";
pub const SETUP_TOKEN_FILE: &str = "setup-token";
pub const AGE_KEY_FILE: &str = "age.key";

/// The age identity provider secrets are encrypted to when the operator configured none
/// (`SOPS_AGE_KEY` / `SOPS_AGE_KEY_FILE`), as `tale init` generates one for the reference. Kept
/// in the data dir with mode 0600; backups of the data dir carry it.
pub fn data_dir_age_key(dir: &Path) -> Result<tale_secrets::AgeKeys> {
    let path = dir.join(AGE_KEY_FILE);
    if !path.exists() {
        let text = tale_secrets::AgeKeys::new_key_file("created by tale serve: provider API keys are encrypted to this key");
        let mut f = OpenOptions::new().create_new(true).write(true).mode(0o600).open(&path).with_context(|| format!("cannot create {}", path.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    tale_secrets::AgeKeys::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Creates the data dir if needed and checks it can be written.
pub fn prepare(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("data dir {} exists but is not a directory", dir.display());
    }
    if !dir.exists() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    }
    let probe = dir.join(".write-test");
    fs::write(&probe, b"ok").with_context(|| format!("data dir {} is not writable (check its owner, permissions and free space)", dir.display()))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Held for the life of `tale serve`: a second server on the same data dir is refused.
pub struct ServerLock {
    _file: File,
    path: PathBuf,
}

impl ServerLock {
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        if file.try_lock().is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            bail!(
                "another `tale serve` is already running on data dir {}{}; stop it first, or use a different --data-dir",
                dir.display(),
                if holder.is_empty() { String::new() } else { format!(" (pid {holder})") }
            );
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(ServerLock { _file: file, path })
    }

    /// Whether some process holds the lock right now (for `tale doctor`).
    pub fn held_by_other(dir: &Path) -> Option<String> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new().read(true).write(true).open(path).ok()?;
        if file.try_lock().is_ok() {
            let _ = file.unlock();
            return None;
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        Some(holder.trim().to_owned())
    }
}

impl Drop for ServerLock {
    fn drop(&mut self) {
        let _ = fs::write(&self.path, b"");
    }
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// The configured secret, else the one kept in the data dir, else a new one saved there.
pub fn instance_secret(dir: &Path, configured: Option<&str>) -> Result<Vec<u8>> {
    if let Some(s) = configured {
        if s.len() < 16 {
            bail!("TALE_SECRET is too short: use at least 16 characters (e.g. `openssl rand -base64 32`)");
        }
        return Ok(s.as_bytes().to_vec());
    }
    let path = dir.join(SECRET_FILE);
    match fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => bail!("{} is damaged (too short); delete it to generate a new one (this signs everyone out)", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = tale_core::secret::random_token();
            write_private(&path, &secret)?;
            Ok(secret.into_bytes())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn write_setup_token(dir: &Path, token: &str) -> Result<()> {
    write_private(&dir.join(SETUP_TOKEN_FILE), token)
}

pub fn remove_setup_token(dir: &Path) {
    let _ = fs::remove_file(dir.join(SETUP_TOKEN_FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServerLock::acquire(dir.path()).unwrap();
        let err = ServerLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(err.contains("already running"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        assert!(ServerLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn secret_is_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = instance_secret(dir.path(), None).unwrap();
        let b = instance_secret(dir.path(), None).unwrap();
        assert_eq!(a, b);
        let mode = fs::metadata(dir.path().join(SECRET_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(instance_secret(dir.path(), Some("short")).is_err());
    }
}
