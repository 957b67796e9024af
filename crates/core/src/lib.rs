//! Tale's domain: everything the roles share and nothing that talks to a network or a disk.
//!
//! Owns configuration, identifiers and time, roles and the permission matrix, the audit hash chain,
//! password policy, the store traits (one per bounded context) and the services that every
//! mutation goes through. Storage backends implement [`store`]; the HTTP layer calls [`service`].
//!
//! Architecture invariant: this crate depends on no storage engine, no HTTP framework and no UI.

pub mod audit;
pub mod chat;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod feed;
pub mod id;
pub mod model;
pub mod password;
pub mod permission;
pub mod role;
pub mod rules;
pub mod secret;
pub mod service;
pub mod settings;
pub mod store;

pub use error::{Error, Result};
