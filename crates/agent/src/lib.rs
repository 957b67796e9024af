//! The agent role: agent files from `TALE_CONFIG_DIR/agents/` as the reference writes them
//! (TALE-COMPAT §3), their editing with version history and first-start seeding (`files`), the
//! tools (§3.2) and the run loop that calls models and tools (`runtime`).
//!
//! Architecture invariant: no store and no HTTP server. Models are reached through `tale-llm`;
//! tools reach the thread through the `ToolHost` trait the chat role implements; permissions come
//! from `tale-core`'s matrix.

pub mod catalog;
pub mod config;
pub mod files;
pub mod runtime;
pub mod tools;

pub use config::{load_agents, parse_agent, Agent, AgentSet, KnowledgeMode};
