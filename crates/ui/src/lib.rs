//! The `ui` role's markup: server-rendered pages (maud, escaped by construction) and the small
//! hand-written script and stylesheet embedded in the binary. No Node at build or run time.
//!
//! Architecture invariant: pure rendering. This crate receives plain data and returns HTML; it
//! never reads a store, checks a permission or performs a request. Which links a page shows
//! follows the matrix for convenience only: the server enforces it on every route.

pub mod account;
pub mod assets;
pub mod chat;
pub mod config;
pub mod knowledge;
pub mod layout;
pub mod markdown;
pub mod org;

pub use layout::{Nav, Shell};
pub use maud::{Markup, PreEscaped};

/// Renders an epoch-ms time for people: `2026-11-22 23:04 UTC`.
pub fn when(ms: i64) -> String {
    let iso = tale_core::id::iso8601(ms);
    match (iso.get(0..10), iso.get(11..16)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => iso,
    }
}
