//! The `tale` binary's library half: CLI parsing, configuration loading, and the wiring of every
//! role (the only place that picks implementations for the core traits). `main.rs` stays tiny so
//! integration tests can boot the same server in-process.

pub mod admin;
pub mod cli;
pub mod datadir;
pub mod doctor;
pub mod knowledge_cmd;
pub mod logging;
pub mod secrets_cmd;
pub mod server;
pub mod settings;
