//! `<slug>.secrets.json`: `{"apiKey": "...", "modelKeys"?: {"<modelId>": "..."}}`, plaintext with
//! mode 0600 or SOPS-encrypted (detected by a top-level `"sops"` key).

use crate::keys::AgeKeys;
use crate::sops::{self, SopsError};
use crate::SecretsError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A provider's credentials. `Debug` never shows them.
#[derive(Clone, PartialEq)]
pub struct ProviderSecrets {
    pub api_key: String,
    pub model_keys: BTreeMap<String, String>,
    /// Whether the file on disk was SOPS-encrypted.
    pub encrypted: bool,
}

impl std::fmt::Debug for ProviderSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProviderSecrets(<redacted>, {} model keys, encrypted: {})", self.model_keys.len(), self.encrypted)
    }
}

fn name(path: &Path) -> String {
    path.display().to_string()
}

/// Reads the JSON object in a secrets file (any form), without decrypting.
pub fn read_document(path: &Path) -> Result<Map<String, Value>, SecretsError> {
    let file = name(path);
    let text = std::fs::read_to_string(path).map_err(|e| SecretsError::Io { file: file.clone(), message: e.to_string() })?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(SecretsError::Invalid { file, message: "must hold a JSON object".into() }),
        Err(e) => Err(SecretsError::Json { file, message: format!("line {}, column {}", e.line(), e.column()) }),
    }
}

/// The plaintext object of a secrets file, decrypting SOPS files with `keys`.
pub fn decrypt_document(path: &Path, keys: &AgeKeys) -> Result<(Map<String, Value>, bool), SecretsError> {
    let file = name(path);
    let doc = read_document(path)?;
    if !sops::is_sops(&doc) {
        let mode = std::fs::metadata(path).map_err(|e| SecretsError::Io { file: file.clone(), message: e.to_string() })?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretsError::Permissions { file, mode });
        }
        return Ok((doc, false));
    }
    match sops::decrypt(&doc, &keys.identities) {
        Ok(plain) => Ok((plain, true)),
        Err(SopsError::NoIdentity) => Err(SecretsError::NoKey { file }),
        Err(SopsError::WrongKey(r)) => Err(SecretsError::WrongKey { file, recipients: r.join(", ") }),
        Err(SopsError::Mac) => Err(SecretsError::MacMismatch { file }),
        Err(SopsError::Value(path)) => Err(SecretsError::ValueTampered { file, path }),
        Err(SopsError::NotSops) => Err(SecretsError::Invalid { file, message: "no sops metadata".into() }),
        Err(SopsError::Invalid(message)) => Err(SecretsError::Invalid { file, message }),
    }
}

/// Reads a provider secrets file.
pub fn read_secrets(path: &Path, keys: &AgeKeys) -> Result<ProviderSecrets, SecretsError> {
    let file = name(path);
    let (doc, encrypted) = decrypt_document(path, keys)?;
    let api_key = doc.get("apiKey").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(|| SecretsError::Invalid {
        file: file.clone(),
        message: "apiKey is missing or empty (backends without auth still need a placeholder such as \"none\")".into(),
    })?;
    let mut model_keys = BTreeMap::new();
    match doc.get("modelKeys") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (model, v) in m {
                let key = v.as_str().ok_or_else(|| SecretsError::Invalid { file: file.clone(), message: format!("modelKeys.{model} must be a string") })?;
                if !key.is_empty() {
                    model_keys.insert(model.clone(), key.to_owned());
                }
            }
        }
        Some(_) => return Err(SecretsError::Invalid { file, message: "modelKeys must be an object of model id to key".into() }),
    }
    Ok(ProviderSecrets { api_key: api_key.to_owned(), model_keys, encrypted })
}

/// Writes a JSON object atomically with mode 0600: a temporary sibling, fsync, rename.
pub fn write_document(path: &Path, doc: &Map<String, Value>) -> Result<(), SecretsError> {
    let file = name(path);
    let io = |e: std::io::Error| SecretsError::Io { file: file.clone(), message: e.to_string() };
    let dir = path.parent().unwrap_or(Path::new("."));
    let base = path.file_name().and_then(|n| n.to_str()).unwrap_or("secrets");
    let tmp = dir.join(format!(".{base}.{}.{:08x}.tmp", std::process::id(), rand::random::<u32>()));
    let text = serde_json::to_string_pretty(&Value::Object(doc.clone())).map_err(|e| SecretsError::Invalid { file: file.clone(), message: e.to_string() })?;
    let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Writes provider secrets: SOPS-encrypted to `recipients` when given, else plaintext (0600).
pub fn write_secrets(path: &Path, secrets: &ProviderSecrets, recipients: &[age::x25519::Recipient]) -> Result<(), SecretsError> {
    let mut doc = Map::new();
    doc.insert("apiKey".into(), Value::String(secrets.api_key.clone()));
    if !secrets.model_keys.is_empty() {
        let keys: Map<String, Value> = secrets.model_keys.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        doc.insert("modelKeys".into(), Value::Object(keys));
    }
    let doc = if recipients.is_empty() {
        doc
    } else {
        sops::encrypt(&doc, recipients).map_err(|e| SecretsError::Invalid { file: name(path), message: format!("{e:?}") })?
    };
    write_document(path, &doc)
}
