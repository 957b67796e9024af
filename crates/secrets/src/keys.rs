//! Age identities from `SOPS_AGE_KEY` (one inline key) or `SOPS_AGE_KEY_FILE` (one key per
//! line, `#` comments allowed), as SOPS reads them.

use crate::SecretsError;
use std::str::FromStr;

/// An age X25519 identity (`AGE-SECRET-KEY-1…`).
pub type AgeIdentity = age::x25519::Identity;

#[derive(Clone, Default)]
pub struct AgeKeys {
    pub identities: Vec<age::x25519::Identity>,
}

impl std::fmt::Debug for AgeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgeKeys({} identities, redacted)", self.identities.len())
    }
}

impl AgeKeys {
    /// Parses every non-comment line of a key file.
    pub fn parse(text: &str) -> Result<AgeKeys, SecretsError> {
        let mut identities = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = age::x25519::Identity::from_str(line)
                .map_err(|_| SecretsError::Key(format!("line {} is not an AGE-SECRET-KEY-1… key", i + 1)))?;
            identities.push(id);
        }
        Ok(AgeKeys { identities })
    }

    /// `SOPS_AGE_KEY` and `SOPS_AGE_KEY_FILE` together (both may be set during key rotation).
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<AgeKeys, SecretsError> {
        let mut keys = AgeKeys::default();
        if let Some(inline) = get("SOPS_AGE_KEY") {
            keys.identities.extend(AgeKeys::parse(&inline)?.identities);
        }
        if let Some(path) = get("SOPS_AGE_KEY_FILE") {
            let text = std::fs::read_to_string(&path).map_err(|e| SecretsError::Key(format!("SOPS_AGE_KEY_FILE {path}: {e}")))?;
            keys.identities.extend(AgeKeys::parse(&text)?.identities);
        }
        Ok(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// A new identity, as the text of an age key file with its public key in a comment.
    pub fn new_key_file(comment: &str) -> String {
        use age::secrecy::ExposeSecret;
        let identity = age::x25519::Identity::generate();
        format!("# {comment}\n# public key: {}\n{}\n", identity.to_public(), identity.to_string().expose_secret())
    }

    /// The public recipients matching these identities.
    pub fn recipients(&self) -> Vec<age::x25519::Recipient> {
        self.identities.iter().map(age::x25519::Identity::to_public).collect()
    }
}
