//! JSON handlers, thin: read the request, call a service, shape the response.

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod chat;
pub mod config_edit;
pub mod keys;
pub mod knowledge;
pub mod openai_compat;
pub mod orgs;
pub mod settings;
pub mod system;

use serde::Serialize;
use tale_core::model::User;

/// The public view of an account.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView { id: u.id.clone(), email: u.email.clone(), name: u.name.clone() }
    }
}

/// Refuses an upload whose declared size is over `limit` before reading a byte of it (the body
/// is still counted as it streams, for senders that declare nothing or lie).
pub(crate) fn refuse_oversized(headers: &axum::http::HeaderMap, limit: u64) -> Result<(), tale_core::Error> {
    let declared = headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(tale_core::Error::PayloadTooLarge(format!("the file is larger than the upload limit of {limit} bytes"))),
        _ => Ok(()),
    }
}
