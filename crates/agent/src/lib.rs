//! The agent role's configuration half: agent files from `TALE_CONFIG_DIR/agents/` as the
//! reference writes them (TALE-COMPAT §3), and the closed list of tool names (§3.2). The run loop
//! (prompt building, tool calls, execution log) builds on this.
//!
//! Architecture invariant: no network, no store; models are resolved through `tale-llm`.

pub mod catalog;
pub mod config;
pub mod tools;

pub use config::{load_agents, parse_agent, Agent, AgentSet, KnowledgeMode};
