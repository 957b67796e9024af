//! Secrets at rest: provider `<slug>.secrets.json` files, either plaintext (accepted only with
//! mode 0600) or SOPS-encrypted JSON (TALE-COMPAT §2.7), read and written in-process.
//!
//! SOPS format, as the real tool writes it: every leaf value is AES-256-GCM encrypted under one
//! random 32-byte data key with a 32-byte IV, the leaf's key path (`a:b:`) as additional data, and
//! stored as `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`; a SHA-512 MAC over all plaintext values
//! is encrypted the same way with `lastmodified` as additional data; the data key is wrapped for
//! each age recipient in ASCII armour under `sops.age[].enc`.
//!
//! Architecture invariant: error messages name files, key paths and recipients, never a value.

pub mod file;
pub mod keys;
pub mod sops;

pub use file::{read_secrets, write_secrets, ProviderSecrets};
pub use keys::AgeKeys;

/// Everything that can go wrong with a secrets file. No variant carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{file}: cannot read or write: {message}")]
    Io { file: String, message: String },
    #[error("{file}: not valid JSON: {message}")]
    Json { file: String, message: String },
    #[error("{file}: can be read by other users (mode {mode:o}); run `chmod 600 {file}`")]
    Permissions { file: String, mode: u32 },
    #[error("{file}: is SOPS-encrypted but no age key is configured: set SOPS_AGE_KEY or SOPS_AGE_KEY_FILE")]
    NoKey { file: String },
    #[error("{file}: none of the configured age keys can decrypt it (it is encrypted to {recipients})")]
    WrongKey { file: String, recipients: String },
    #[error("{file}: MAC mismatch: the file was changed after it was encrypted")]
    MacMismatch { file: String },
    #[error("{file}: the value at '{path}' cannot be decrypted: the file was tampered with or damaged")]
    ValueTampered { file: String, path: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("age key: {0}")]
    Key(String),
}
