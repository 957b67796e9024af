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
