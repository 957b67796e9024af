//! Organisation settings an Admin edits: the name, and (in the default organisation, which
//! governs every account) the password and sign-in policies of TALE-COMPAT §5.1.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordPolicy {
    pub min_length: u32,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_digit: bool,
    pub require_special: bool,
    /// Days after which a password must be changed at sign-in; 0 turns rotation off.
    pub rotation_days: u32,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            require_uppercase: true,
            require_lowercase: true,
            require_digit: true,
            require_special: false,
            rotation_days: 0,
        }
    }
}

impl PasswordPolicy {
    /// Why a password is refused, or `Ok`.
    pub fn check(&self, password: &str) -> Result<()> {
        let mut missing = Vec::new();
        if (password.chars().count() as u32) < self.min_length {
            missing.push(format!("at least {} characters", self.min_length));
        }
        if self.require_uppercase && !password.chars().any(char::is_uppercase) {
            missing.push("an uppercase letter".into());
        }
        if self.require_lowercase && !password.chars().any(char::is_lowercase) {
            missing.push("a lowercase letter".into());
        }
        if self.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
            missing.push("a digit".into());
        }
        if self.require_special && !password.chars().any(|c| !c.is_alphanumeric()) {
            missing.push("a special character".into());
        }
        if password.len() > 1024 {
            return Err(Error::WeakPassword("password must be at most 1024 bytes".into()));
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::WeakPassword(format!("password needs {}", missing.join(", "))))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginPolicy {
    /// Failed sign-ins tolerated before the account is locked.
    pub max_failures: u32,
    /// Lock durations in seconds for each further failure (the last one repeats).
    pub backoff_secs: Vec<u64>,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy { max_failures: 5, backoff_secs: vec![1, 10, 60, 600] }
    }
}

impl LoginPolicy {
    /// How long to lock after the `failures`-th consecutive failure (0 = not locked).
    pub fn lock_secs(&self, failures: u32) -> u64 {
        if failures < self.max_failures.max(1) {
            return 0;
        }
        let step = (failures - self.max_failures.max(1)) as usize;
        self.backoff_secs
            .get(step)
            .or(self.backoff_secs.last())
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgSettings {
    #[serde(default)]
    pub password_policy: PasswordPolicy,
    #[serde(default)]
    pub login_policy: LoginPolicy,
}

impl OrgSettings {
    pub fn validate(&self) -> Result<()> {
        let p = &self.password_policy;
        if !(6..=128).contains(&p.min_length) {
            return Err(Error::invalid("passwordPolicy.minLength must be between 6 and 128"));
        }
        if p.rotation_days > 3650 {
            return Err(Error::invalid("passwordPolicy.rotationDays must be at most 3650"));
        }
        let l = &self.login_policy;
        if !(1..=100).contains(&l.max_failures) {
            return Err(Error::invalid("loginPolicy.maxFailures must be between 1 and 100"));
        }
        if l.backoff_secs.is_empty() || l.backoff_secs.len() > 20 {
            return Err(Error::invalid("loginPolicy.backoffSecs needs 1 to 20 entries"));
        }
        if l.backoff_secs.iter().any(|s| *s == 0 || *s > 86_400) {
            return Err(Error::invalid("loginPolicy.backoffSecs entries must be 1..=86400 seconds"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_names_what_is_missing() {
        let p = PasswordPolicy::default();
        let err = p.check("short").unwrap_err().to_string();
        assert!(err.contains("at least 8 characters"), "{err}");
        assert!(err.contains("uppercase"), "{err}");
        assert!(err.contains("digit"), "{err}");
        assert!(p.check("Correct-horse-7").is_ok());
    }

    #[test]
    fn lockout_follows_backoff_schedule() {
        let l = LoginPolicy::default();
        assert_eq!(l.lock_secs(4), 0);
        assert_eq!(l.lock_secs(5), 1);
        assert_eq!(l.lock_secs(6), 10);
        assert_eq!(l.lock_secs(8), 600);
        assert_eq!(l.lock_secs(50), 600);
    }
}
