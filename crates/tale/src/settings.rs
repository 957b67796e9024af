//! Builds the one `Config` from defaults, an optional TOML file, the environment and flags, in
//! that order of precedence (later wins). Unknown file keys and bad values are errors that name
//! their source.

use crate::cli::{CommonArgs, LogFormatArg, ServeArgs};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use tale_core::config::{Config, LogFormat, Secret};

/// The TOML file's shape; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    site_url: Option<String>,
    config_dir: Option<PathBuf>,
    knowledge_dir: Option<PathBuf>,
    embedding_index_url: Option<String>,
    embedding_model: Option<String>,
    secret: Option<String>,
    metrics_bearer_token: Option<String>,
    log_format: Option<String>,
    log_filter: Option<String>,
    max_body_bytes: Option<usize>,
    max_upload_bytes: Option<u64>,
    session_ttl_hours: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
}

/// Reads the environment through a function so tests can supply their own.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn parse_log_format(s: &str, source: &str) -> Result<LogFormat> {
    match s.to_ascii_lowercase().as_str() {
        "human" | "text" | "pretty" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        other => bail!("{source}: log format must be human or json, not '{other}'"),
    }
}

fn parse_listen(s: &str, source: &str) -> Result<SocketAddr> {
    s.parse().with_context(|| format!("{source}: '{s}' is not an address like 127.0.0.1:3000"))
}

fn parse_num<T: std::str::FromStr>(s: &str, source: &str) -> Result<T> {
    s.parse().map_err(|_| anyhow::anyhow!("{source}: '{s}' is not a valid number"))
}

pub fn load(common: &CommonArgs, serve: Option<&ServeArgs>, env: Env) -> Result<Config> {
    let file_path = common.config.clone().or_else(|| env("TALE_CONFIG_FILE").map(PathBuf::from));
    let file: FileConfig = match &file_path {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("config file {} is invalid", path.display()))?
        }
        None => FileConfig::default(),
    };
    let src = file_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();

    let data_dir = common
        .data_dir
        .clone()
        .or_else(|| env("TALE_DATA_DIR").map(PathBuf::from))
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(Config::DEFAULT_DATA_DIR));
    let mut config = Config::for_data_dir(&data_dir);

    if let Some(v) = &file.listen { config.listen = parse_listen(v, &src)?; }
    if let Some(v) = env("TALE_LISTEN") { config.listen = parse_listen(&v, "TALE_LISTEN")?; }
    if let Some(v) = serve.and_then(|s| s.listen.as_deref()) { config.listen = parse_listen(v, "--listen")?; }

    config.site_url = serve
        .and_then(|s| s.site_url.clone())
        .or_else(|| env("SITE_URL"))
        .or(file.site_url)
        .unwrap_or_else(|| format!("http://{}", config.listen));
    if !(config.site_url.starts_with("http://") || config.site_url.starts_with("https://")) {
        bail!("SITE_URL must start with http:// or https://, got '{}'", config.site_url);
    }
    config.site_url = config.site_url.trim_end_matches('/').to_owned();

    config.knowledge_dir = env("KNOWLEDGE_DATA_DIR").map(PathBuf::from).or(file.knowledge_dir).unwrap_or_else(|| data_dir.join("knowledge"));
    config.embedding_index_url = match env("TALE_EMBEDDING_INDEX_URL").or(file.embedding_index_url) {
        None => Some(tale_embed::DEFAULT_INDEX_URL.to_owned()),
        Some(v) if ["off", "none", "false"].contains(&v.trim().to_ascii_lowercase().as_str()) => None,
        Some(v) if v.starts_with("http://") || v.starts_with("https://") => Some(v.trim_end_matches('/').to_owned()),
        Some(v) => bail!("TALE_EMBEDDING_INDEX_URL must be an http(s) URL or 'off', got '{v}'"),
    };
    config.embedding_model = env("TALE_EMBEDDING_MODEL").or(file.embedding_model).filter(|m| !m.trim().is_empty());
    config.config_dir = env("TALE_CONFIG_DIR").map(PathBuf::from).or(file.config_dir).unwrap_or_else(|| data_dir.join("config"));
    config.secret = env("TALE_SECRET").or_else(|| env("BETTER_AUTH_SECRET")).or(file.secret).map(Secret::new);
    config.metrics_bearer_token = env("METRICS_BEARER_TOKEN").or(file.metrics_bearer_token).map(Secret::new);

    if let Some(v) = &file.log_format { config.log_format = parse_log_format(v, &src)?; }
    if let Some(v) = env("TALE_LOG_FORMAT") { config.log_format = parse_log_format(&v, "TALE_LOG_FORMAT")?; }
    if let Some(v) = common.log_format {
        config.log_format = match v { LogFormatArg::Human => LogFormat::Human, LogFormatArg::Json => LogFormat::Json };
    }
    if let Some(v) = env("TALE_LOG").or_else(|| env("RUST_LOG")).or(file.log_filter) { config.log_filter = v; }

    if let Some(v) = file.max_body_bytes { config.max_body_bytes = v; }
    if let Some(v) = env("TALE_MAX_BODY_BYTES") { config.max_body_bytes = parse_num(&v, "TALE_MAX_BODY_BYTES")?; }
    if config.max_body_bytes < 1024 {
        bail!("max body size must be at least 1024 bytes");
    }
    if let Some(v) = file.max_upload_bytes { config.max_upload_bytes = v; }
    if let Some(v) = env("TALE_MAX_UPLOAD_BYTES") { config.max_upload_bytes = parse_num(&v, "TALE_MAX_UPLOAD_BYTES")?; }
    if config.max_upload_bytes == 0 {
        bail!("the upload limit must be at least one byte");
    }
    if let Some(v) = file.session_ttl_hours { config.session_ttl_secs = v * 3600; }
    if let Some(v) = env("TALE_SESSION_TTL_HOURS") { config.session_ttl_secs = parse_num::<u64>(&v, "TALE_SESSION_TTL_HOURS")? * 3600; }
    if config.session_ttl_secs == 0 {
        bail!("session lifetime must be at least one hour");
    }
    if let Some(v) = file.trusted_proxies { config.trusted_proxies = v; }
    if let Some(v) = env("TALE_TRUSTED_PROXIES") {
        config.trusted_proxies = v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_then_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tale.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:4000\"\nlog_format = \"json\"\nmax_body_bytes = 4096\n").unwrap();
        let common = CommonArgs { config: Some(file.clone()), ..Default::default() };
        let c = load(&common, None, &env_of(&[])).unwrap();
        assert_eq!(c.listen.port(), 4000);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.data_dir, PathBuf::from("./tale-data"));
        assert_eq!(c.site_url, "http://127.0.0.1:4000");

        let env = env_of(&[("TALE_LISTEN", "127.0.0.1:5000"), ("BETTER_AUTH_SECRET", "s3cret"), ("SITE_URL", "https://tale.example.com/")]);
        let serve = ServeArgs { common: common.clone(), listen: Some("127.0.0.1:6000".into()), site_url: None };
        let c = load(&common, Some(&serve), &env).unwrap();
        assert_eq!(c.listen.port(), 6000, "flags win over env");
        assert_eq!(c.secret.as_ref().map(|s| s.expose()), Some("s3cret"));
        assert_eq!(c.site_url, "https://tale.example.com");
        assert!(c.is_https());
    }

    #[test]
    fn bad_values_name_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "lissten = \"x\"\n").unwrap();
        let err = load(&CommonArgs { config: Some(file), ..Default::default() }, None, &env_of(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        let err = load(&CommonArgs::default(), None, &env_of(&[("TALE_LISTEN", "nope")])).unwrap_err();
        assert!(err.to_string().contains("TALE_LISTEN"), "{err}");
    }

    #[test]
    fn the_embedding_model_is_fetched_from_pypi_unless_told_otherwise() {
        let common = CommonArgs::default();
        let c = load(&common, None, &env_of(&[])).unwrap();
        assert_eq!(c.embedding_index_url.as_deref(), Some("https://pypi.org/pypi"));
        assert_eq!(c.embedding_model, None);
        let c = load(&common, None, &env_of(&[("TALE_EMBEDDING_INDEX_URL", "off"), ("TALE_EMBEDDING_MODEL", "openai:text-embedding-3-small")])).unwrap();
        assert_eq!(c.embedding_index_url, None);
        assert_eq!(c.embedding_model.as_deref(), Some("openai:text-embedding-3-small"));
        let c = load(&common, None, &env_of(&[("TALE_EMBEDDING_INDEX_URL", "https://mirror.example/pypi/")])).unwrap();
        assert_eq!(c.embedding_index_url.as_deref(), Some("https://mirror.example/pypi"));
        let e = load(&common, None, &env_of(&[("TALE_EMBEDDING_INDEX_URL", "ftp://x")])).unwrap_err();
        assert!(e.to_string().contains("TALE_EMBEDDING_INDEX_URL"), "{e}");
    }
}
