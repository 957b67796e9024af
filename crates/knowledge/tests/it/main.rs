//! The one integration-test binary of tale-knowledge.
//!
//! - `ingest`: documents through extraction, chunking, the store and BM25; leases and failures.
//! - `vectors`: embeddings (a scripted provider and the local model), the vector index, hybrid
//!   search, re-embedding after a change of model, the semantic cache.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test suite: a failed step is a panic")]

mod ingest;
mod vectors;
