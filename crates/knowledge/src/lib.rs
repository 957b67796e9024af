//! The knowledge role: documents and their chunks in a store of their own (a directory, by
//! default under the data dir, movable by one setting), structure-aware chunking, and a BM25
//! index with language-aware tokenisation. Vector search, ingestion jobs and the agent tools
//! build on this.
//!
//! Architecture invariant: the operational store never reads these files; this crate knows no
//! HTTP and no operational tables.

pub mod bm25;
pub mod store;
pub mod chunk;
pub mod ingest;
pub mod tokenize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("knowledge index: {0}")]
    Index(String),
    #[error("knowledge store: {0}")]
    Io(String),
    #[error("{0}")]
    TooLarge(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
