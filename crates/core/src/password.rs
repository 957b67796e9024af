//! Argon2id password hashing. Verification of unknown accounts runs against a fixed dummy hash so
//! a wrong e-mail costs the same time as a wrong password.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;

use crate::{Error, Result};

/// Hashes with argon2id at the crate's default cost (19 MiB, 2 passes, 1 lane: OWASP's minimum).
pub fn hash(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

/// True when `password` matches `phc`. A malformed stored hash never matches.
pub fn verify(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Spends the same work as a real verification, for accounts that do not exist.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("tale-dummy-password").unwrap_or_default());
    let _ = verify(phc, password);
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn hash_verifies_and_rejects() {
        let h = hash("Secret-123").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, "Secret-123"));
        assert!(!verify(&h, "secret-123"));
        assert!(!verify("not-a-hash", "x"));
    }
}
