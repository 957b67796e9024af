//! Tale's integration tests: one binary, each module a subject. The server runs for real
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test suite: a failed step is a panic")]
//! in-process (or as the built `tale` binary for CLI tests) on 127.0.0.1 with a temp data dir.

/// Test harness: boot, sign in, JSON helpers.
mod harness;

/// Setup, sign-in, lockout, sessions, CSRF, API keys, bad input.
mod accounts;
/// Audit recording, filters, export, tamper detection.
mod audit;
/// The real Chromium end-to-end test.
mod browser;
/// The chat in real Chromium: streaming, a second tab, stop.
mod browser_chat;
/// The knowledge page and citations in real Chromium: uploads, live status, filter, search, delete.
mod browser_knowledge;
/// Providers and agents from the config directory.
mod catalog;
/// Chat: streaming, stop, versions, reconnecting, tools, forms, attachments, failures, editing.
mod chat;
/// Chat helpers: the local provider, agents, WebSocket thread clients.
mod chatkit;
/// The CLI in its exact scripted forms.
mod cli;
/// The knowledge base over HTTP.
mod knowledge;
/// The knowledge base in chat: tools, context mode, citations and the passage page.
mod knowledge_tools;
/// WebSocket live updates.
mod live;
/// Every route × every role.
mod matrix;
/// Invitations, roles and membership rules.
mod members;
/// `tale secrets` with real age keys.
mod secrets;
/// Health, metrics, headers.
mod system;
/// A minimal WebDriver client for the browser test.
mod webdriver;
