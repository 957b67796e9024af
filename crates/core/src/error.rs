//! The domain error: every failure a caller can see, each with a stable code.
//!
//! HTTP maps these to statuses in exactly one place (`tale-http`'s `error` module).

/// The one error type of the domain and the store traits.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something malformed or out of range; the message says what.
    #[error("{0}")]
    InvalidInput(String),
    /// A password that the password policy refuses; the message says which rule.
    #[error("{0}")]
    WeakPassword(String),
    /// E-mail/password pair did not match. Deliberately the same for unknown users.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// No (valid) session or API key.
    #[error("sign-in required")]
    Unauthenticated,
    /// A cookie-authenticated state change without the session's CSRF token.
    #[error("missing or invalid CSRF token")]
    CsrfRejected,
    /// The caller's role in this organisation does not allow the action.
    #[error("insufficient role")]
    InsufficientRole,
    /// The password was reset by an operator: only changing it (or signing out) is allowed.
    #[error("you must change your password before continuing")]
    PasswordChangeRequired,
    /// Too many failed sign-ins for this account; try again later.
    #[error("too many failed sign-ins; try again in {retry_after_secs} s")]
    AccountLocked { retry_after_secs: u64 },
    /// Too many requests from this client.
    #[error("too many requests; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The thing does not exist (or the caller may not know it exists).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Would break one of the membership rules (one Owner, two Admins, ...).
    #[error("{0}")]
    RuleViolation(String),
    /// Clashes with existing state (e.g. the e-mail is taken).
    #[error("{0}")]
    Conflict(String),
    /// An upload or body over a configured size limit; the message names the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// First-run setup was already completed.
    #[error("setup is already complete")]
    SetupClosed,
    /// The store failed; the message is for logs and never contains secrets.
    #[error("storage error: {0}")]
    Store(String),
    /// A bug or an unexpected environment failure.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidInput(msg.into())
    }
    pub fn rule(msg: impl Into<String>) -> Self {
        Self::RuleViolation(msg.into())
    }
}
