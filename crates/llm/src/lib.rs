//! The `llm` role's configuration half: provider files from `TALE_CONFIG_DIR/providers/`, exactly
//! as the reference writes them (TALE-COMPAT §2): validation with messages that name file, field
//! and problem, the `providerOptions` merge and rejection rules, and `[provider:]model[@quant]`
//! references. Provider clients (OpenAI-compatible, Anthropic, Azure) build on this.
//!
//! Architecture invariant: reads files, never the network; knows nothing of HTTP handlers or stores.

pub mod check;
pub mod client;
pub mod loader;
pub mod model_ref;
pub mod options;
pub mod provider;

pub use loader::{load_providers, ProviderSet, Skipped};
pub use model_ref::ModelRef;
pub use provider::{Model, Provider, Tag};
