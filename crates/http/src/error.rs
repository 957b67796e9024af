//! The one place where errors become HTTP: every domain error and every HTTP-level failure maps
//! to a status and a stable code, with an exhaustive match so a new variant forces a decision.
//!
//! | code | status | when |
//! |---|---|---|
//! | `invalid_input` | 400 | a field is missing, malformed or out of range |
//! | `malformed_json` | 400 | the body is not JSON |
//! | `invalid_credentials` | 401 | wrong e-mail or password (same for unknown users) |
//! | `unauthenticated` | 401 | no valid session or API key |
//! | `csrf_rejected` | 403 | cookie-authenticated change without the CSRF token |
//! | `insufficient_role` | 403 | the role does not allow it (permission matrix) |
//! | `password_change_required` | 403 | an operator reset the password: change it first |
//! | `not_found` | 404 | unknown route or resource |
//! | `method_not_allowed` | 405 | known route, other method |
//! | `rule_violation` | 409 | a membership rule (one Owner, two Admins, ...) |
//! | `conflict` | 409 | clashes with existing state |
//! | `setup_closed` | 410 | first-run setup was already done |
//! | `payload_too_large` | 413 | body over the configured limit |
//! | `unsupported_media_type` | 415 | body is not `application/json` |
//! | `weak_password` | 422 | password policy |
//! | `account_locked` | 429 | too many failed sign-ins (with `Retry-After`) |
//! | `rate_limited` | 429 | too many requests (with `Retry-After`) |
//! | `internal` | 500 | a bug |
//! | `upstream_error` | 502 | the model provider failed (its status and text in the message) |
//! | `store_unavailable` | 503 | the store failed |

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tale_core::Error as Domain;

#[derive(Debug)]
pub enum ApiError {
    Domain(Domain),
    MalformedJson(String),
    UnsupportedMediaType,
    PayloadTooLarge,
    RouteNotFound,
    MethodNotAllowed,
    /// The model provider failed; the message carries its status and words.
    Upstream(String),
    /// A handler asked for a grant its route's access rule did not produce: a wiring bug.
    MissingAccessCheck,
}

impl From<Domain> for ApiError {
    fn from(e: Domain) -> Self {
        ApiError::Domain(e)
    }
}

impl ApiError {
    /// Status, code and the message a client may see.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Domain(e) => domain_parts(e),
            ApiError::MalformedJson(m) => (StatusCode::BAD_REQUEST, "malformed_json", format!("request body is not valid JSON: {m}")),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json".to_owned(),
            ),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body is larger than the configured limit".to_owned()),
            ApiError::RouteNotFound => (StatusCode::NOT_FOUND, "not_found", "no such API route".to_owned()),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not accept that method".to_owned()),
            ApiError::Upstream(m) => (StatusCode::BAD_GATEWAY, "upstream_error", m.clone()),
            ApiError::MissingAccessCheck => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the server log has details".to_owned()),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Domain(Domain::AccountLocked { retry_after_secs } | Domain::RateLimited { retry_after_secs }) => Some(*retry_after_secs),
            _ => None,
        }
    }
}

/// Status, code and client-visible message of a domain error.
pub fn domain_parts(e: &Domain) -> (StatusCode, &'static str, String) {
    let (status, code) = match e {
        Domain::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
        Domain::WeakPassword(_) => (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"),
        Domain::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        Domain::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Domain::CsrfRejected => (StatusCode::FORBIDDEN, "csrf_rejected"),
        Domain::InsufficientRole => (StatusCode::FORBIDDEN, "insufficient_role"),
        Domain::PasswordChangeRequired => (StatusCode::FORBIDDEN, "password_change_required"),
        Domain::AccountLocked { .. } => (StatusCode::TOO_MANY_REQUESTS, "account_locked"),
        Domain::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Domain::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        Domain::RuleViolation(_) => (StatusCode::CONFLICT, "rule_violation"),
        Domain::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        Domain::SetupClosed => (StatusCode::GONE, "setup_closed"),
        Domain::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        Domain::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        Domain::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    let message = match e {
        // Details of these go to the log only.
        Domain::Store(_) => "the store is unavailable; the server log has details".to_owned(),
        Domain::Internal(_) => "internal error; the server log has details".to_owned(),
        other => other.to_string(),
    };
    (status, code, message)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        match &self {
            ApiError::Domain(Domain::Store(detail) | Domain::Internal(detail)) => {
                tracing::error!(code, detail = %detail, "request failed");
            }
            ApiError::Upstream(m) => tracing::warn!(message = %m, "model provider failed"),
            ApiError::MissingAccessCheck => tracing::error!("handler needs a grant its route does not produce"),
            _ => {}
        }
        let mut response = (status, axum::Json(json!({"error": {"code": code, "message": message}}))).into_response();
        if let Some(secs) = self.retry_after()
            && let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        // A body refused for its size may be left partly unread: the connection cannot carry
        // another request, and the client must know not to reuse it.
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
