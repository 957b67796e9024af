//! Reads a providers folder the way the reference lays it out (TALE-COMPAT §1.2, §2.1): one
//! `<slug>.json` per provider, sorted by file name; a bad file is reported and skipped while the
//! others load.

use crate::model_ref::ModelRef;
use crate::provider::{parse_provider, Model, Provider};
use std::path::{Path, PathBuf};

/// Provider and agent files are at most 256 KB.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

/// A file that was not loaded, and why (each reason names the field).
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub file: PathBuf,
    pub reasons: Vec<String>,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reasons.join("; "))
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProviderSet {
    pub providers: Vec<Provider>,
    pub skipped: Vec<Skipped>,
}

/// `^[a-z0-9][a-z0-9_-]{0,99}$`
pub fn valid_provider_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 100
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// The folder holding an organisation's provider files: the root for `default`, else a subfolder
/// named after the organisation.
pub fn providers_dir(config_dir: &Path, org_slug: &str) -> PathBuf {
    let root = config_dir.join("providers");
    if org_slug == "default" { root } else { root.join(org_slug) }
}

/// The JSON files of one config folder (providers, agents): sorted by name; hidden files,
/// `.history`, atomic-write temporaries and `*.secrets.json` ignored; symlinks, bad slugs and
/// oversized files reported. A missing folder has no files.
pub fn read_config_folder(dir: &Path, valid_slug: fn(&str) -> bool) -> (Vec<(String, PathBuf, String)>, Vec<Skipped>) {
    let (mut files, mut skipped) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(dir) else { return (files, skipped) };
    let mut names: Vec<String> = entries.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    for name in names {
        if name.starts_with('.') || !name.ends_with(".json") || name.ends_with(".secrets.json") {
            continue;
        }
        let path = dir.join(&name);
        let skip = |reason: String| Skipped { file: path.clone(), reasons: vec![reason] };
        let slug = name.trim_end_matches(".json");
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                skipped.push(skip(format!("cannot read: {e}")));
                continue;
            }
        };
        if meta.file_type().is_symlink() {
            skipped.push(skip("symbolic links are refused; copy the file instead".into()));
        } else if !meta.is_file() {
            continue;
        } else if !valid_slug(slug) {
            skipped.push(skip(format!("file name '{slug}' is not a valid slug (lowercase letters, digits, - and _)")));
        } else if meta.len() > MAX_FILE_BYTES {
            skipped.push(skip(format!("file is {} bytes; the limit is {MAX_FILE_BYTES}", meta.len())));
        } else {
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push((slug.to_owned(), path, text)),
                Err(e) => skipped.push(skip(format!("cannot read: {e}"))),
            }
        }
    }
    (files, skipped)
}

/// Loads every provider file in `dir`. A missing folder is an empty set, not an error.
pub fn load_providers(dir: &Path) -> ProviderSet {
    let (files, skipped) = read_config_folder(dir, valid_provider_slug);
    let mut set = ProviderSet { providers: Vec::new(), skipped };
    for (slug, path, text) in files {
        match parse_provider(&slug, &text) {
            Ok(p) => set.providers.push(p),
            Err(reasons) => set.skipped.push(Skipped { file: path, reasons }),
        }
    }
    set.skipped.sort_by(|a, b| a.file.cmp(&b.file));
    set
}

impl ProviderSet {
    pub fn provider(&self, slug: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.slug == slug)
    }

    /// Finds the model a reference names: pinned to its provider, or the first provider (by file
    /// name) that defines the id.
    pub fn resolve(&self, r: &ModelRef) -> Result<(&Provider, &Model), String> {
        match &r.provider {
            Some(slug) => {
                let p = self.provider(slug).ok_or_else(|| format!("unknown provider '{slug}' in '{r}'"))?;
                let m = p.model(&r.model).ok_or_else(|| format!("provider '{slug}' has no model '{}'", r.model))?;
                Ok((p, m))
            }
            None => self
                .providers
                .iter()
                .find_map(|p| p.model(&r.model).map(|m| (p, m)))
                .ok_or_else(|| format!("no provider defines model '{}'", r.model)),
        }
    }

    /// Providers that define an unqualified id, for the "ambiguous reference" warning.
    pub fn defining(&self, model_id: &str) -> Vec<&str> {
        self.providers.iter().filter(|p| p.model(model_id).is_some()).map(|p| p.slug.as_str()).collect()
    }
}

/// Everything needed to call one model: where, with which key, with which extra body fields.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub provider: String,
    pub model: crate::provider::Model,
    pub endpoint: crate::client::Endpoint,
    pub options: serde_json::Map<String, serde_json::Value>,
}

impl ProviderSet {
    /// Resolves a reference to a callable endpoint: the model's own `baseUrl` if set, the key
    /// from `<slug>.secrets.json` in `dir` (a `modelKeys` entry wins), merged `providerOptions`
    /// with any `@quant` pin.
    pub fn endpoint(&self, dir: &Path, r: &ModelRef, keys: &tale_secrets::AgeKeys) -> Result<ResolvedModel, String> {
        let (p, m) = self.resolve(r)?;
        let secrets_path = dir.join(format!("{}.secrets.json", p.slug));
        if !secrets_path.exists() {
            return Err(format!(
                "{} is missing: create it with {{\"apiKey\": \"...\"}} (mode 0600), or encrypt it with `tale secrets encrypt`",
                secrets_path.display()
            ));
        }
        let secrets = tale_secrets::read_secrets(&secrets_path, keys).map_err(|e| e.to_string())?;
        let api_key = secrets.model_keys.get(&m.id).cloned().unwrap_or(secrets.api_key);
        Ok(ResolvedModel {
            provider: p.slug.clone(),
            model: m.clone(),
            endpoint: crate::client::Endpoint { base_url: m.base_url.clone().unwrap_or_else(|| p.base_url.clone()), api_key },
            options: p.options_for(m, r.quant.as_deref()).unwrap_or_default(),
        })
    }
}
