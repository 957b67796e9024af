//! The knowledge role: documents and their chunks in a store of their own (a directory, by
//! default under the data dir, movable by one setting), structure-aware chunking, a BM25 index
//! with language-aware tokenisation, embeddings (the local model or a provider's) in a vector
//! index of our own, hybrid search fused by reciprocal rank, and a semantic cache. The agent
//! tools build on [`ingest::Knowledge::search`].
//!
//! Architecture invariant: the operational store never reads these files; this crate knows no
//! HTTP and no operational tables.

pub mod bm25;
pub mod cache;
pub mod chunk;
pub mod embedder;
pub mod hnsw;
pub mod ingest;
pub mod search;
pub mod store;
pub mod tokenize;
pub mod vector;

pub use embedder::{Embedder, LocalEmbedder, ProviderEmbedder, VectorStatus};
pub use search::SearchMode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("knowledge index: {0}")]
    Index(String),
    #[error("knowledge store: {0}")]
    Io(String),
    #[error("{0}")]
    TooLarge(String),
    /// Vector search was asked for and cannot run; the words say why.
    #[error("{0}")]
    VectorsUnavailable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
