//! Search: the BM25 and vector rankings of the caller's organisation and scope (each filtered
//! before ranking), fused by reciprocal rank fusion, with the passages' chunks and documents
//! read in one query per ranking. Repeated questions come from the semantic cache
//! ([`crate::cache`]).

use crate::bm25::{Hit, Scope};
use crate::cache::{normalise, CacheKey};
use crate::ingest::{Knowledge, Passage};
use crate::store::{Document, StoredChunk};
use crate::{Error, Result};
use std::collections::HashMap;

/// The reciprocal-rank-fusion constant: a passage at rank r in a list adds 1 / (60 + r).
pub const RRF_K: f32 = 60.0;
/// Each ranker's list for fusion is this many times `k` long (at least [`MIN_CANDIDATES`]): a
/// passage ranked modestly by both often deserves the top.
const CANDIDATE_FACTOR: usize = 3;
const MIN_CANDIDATES: usize = 30;
const MAX_CANDIDATES: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    Bm25,
    Vector,
    Hybrid,
}

/// What the vector half produced.
enum VectorPart {
    None,
    /// A near-identical question was answered already.
    Cached(Vec<Passage>),
    Ranked { embedding: Vec<f32>, hits: Vec<(u64, f32)> },
}

/// A candidate's (rank, score) in each ranking it appears in.
#[derive(Default, Clone, Copy)]
struct Ranks {
    bm25: Option<(u32, f32)>,
    vector: Option<(u32, f32)>,
}

fn scope_key(scope: &Scope) -> String {
    let sorted = |v: &Option<Vec<String>>| {
        v.as_ref().map_or_else(|| "*".to_owned(), |v| {
            let mut v = v.clone();
            v.sort();
            v.join("\u{1f}")
        })
    };
    format!("{}\u{1e}{}", sorted(&scope.folders), sorted(&scope.documents))
}

fn rank(i: usize) -> u32 {
    u32::try_from(i + 1).unwrap_or(u32::MAX)
}

impl Knowledge {
    /// The best `k` passages for `query` in the organisation's scope: hybrid when an embedding
    /// model is available, BM25-only otherwise (see [`Knowledge::vector_status`]).
    pub async fn search(&self, org_id: &str, scope: &Scope, query: &str, k: usize) -> Result<Vec<Passage>> {
        self.search_mode(org_id, scope, query, k, SearchMode::Hybrid).await
    }

    /// [`Knowledge::search`] with the rankers chosen: BM25 alone, vectors alone (an error when
    /// there is no embedding model), or both fused.
    pub async fn search_mode(&self, org_id: &str, scope: &Scope, query: &str, k: usize, mode: SearchMode) -> Result<Vec<Passage>> {
        let normal = normalise(query);
        if k == 0 || !normal.chars().any(char::is_alphanumeric) || scope.folders.as_ref().is_some_and(Vec::is_empty) || scope.documents.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let vectors = if mode == SearchMode::Bm25 { None } else { self.vectors() };
        if mode == SearchMode::Vector && vectors.is_none() {
            return Err(Error::VectorsUnavailable(self.vector_status().to_string()));
        }
        let model = vectors.as_ref().map_or_else(String::new, |v| v.embedder.model_id());
        let key = CacheKey { org_id: org_id.to_owned(), context: format!("{mode:?}\u{1e}{model}\u{1e}{}", scope_key(scope)), k, query: normal };
        let generation = self.cache.generation(org_id);
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit);
        }
        let n = if mode == SearchMode::Hybrid { (k * CANDIDATE_FACTOR).clamp(MIN_CANDIDATES, MAX_CANDIDATES).max(k) } else { k };

        // A local model embeds the question on every core it can: BM25 beside it only fought it
        // for them (hybrid 16 ms p50 on two cores, against 10 ms one after the other), so the
        // question is embedded first and the two rankers then run side by side. A remote model is
        // waited for, and BM25 runs meanwhile.
        let embedded_first = match &vectors {
            Some(v) if v.embedder.is_local() => Some(v.embedder.embed_query(query).await),
            _ => None,
        };
        let vector_part = async {
            let Some(v) = &vectors else { return Ok(VectorPart::None) };
            let embedding = match embedded_first {
                Some(embedded) => embedded?,
                None => v.embedder.embed_query(query).await?,
            };
            if let Some(hit) = self.cache.get_similar(&key, &embedding) {
                return Ok(VectorPart::Cached(hit));
            }
            let (index, org, scope, q) = (v.index.clone(), org_id.to_owned(), scope.clone(), embedding.clone());
            let hits = tokio::task::spawn_blocking(move || index.search(&org, &scope, &q, n)).await.map_err(|e| format!("the vector search crashed: {e}"))?;
            Ok(VectorPart::Ranked { embedding, hits })
        };
        let bm25_part = async {
            if mode == SearchMode::Vector { Ok(Vec::new()) } else { self.bm25.search(org_id, scope, query, n) }
        };
        // The vector half first: it embeds or searches on a blocking thread, so the BM25 query
        // (synchronous) runs meanwhile.
        let (vector_part, bm25_hits): (std::result::Result<VectorPart, String>, Result<Vec<Hit>>) = tokio::join!(vector_part, bm25_part);
        let bm25_hits = bm25_hits?;
        let (embedding, vector_hits) = match vector_part {
            Ok(VectorPart::Cached(hit)) => return Ok(hit),
            Ok(VectorPart::Ranked { embedding, hits }) => (Some(embedding), hits),
            Ok(VectorPart::None) => (None, Vec::new()),
            Err(reason) if mode == SearchMode::Vector => return Err(Error::VectorsUnavailable(reason)),
            Err(reason) => {
                tracing::warn!(%reason, "query embedding failed; this search is BM25-only");
                (None, Vec::new())
            }
        };

        // Fused on chunk ids first, so only the `k` winners' passages are read (fusion ranks up
        // to six times as many candidates).
        let keys: Vec<u64> = vector_hits.iter().map(|(key, _)| *key).collect();
        let id_of_key = self.meta.chunk_ids_by_vkeys(&keys).await?;
        let mut ranks: HashMap<&str, Ranks> = HashMap::new();
        for (i, h) in bm25_hits.iter().enumerate() {
            ranks.entry(h.chunk_id.as_str()).or_default().bm25 = Some((rank(i), h.score));
        }
        for (i, (key, sim)) in vector_hits.iter().enumerate() {
            if let Some(id) = id_of_key.get(key) {
                ranks.entry(id.as_str()).or_default().vector = Some((rank(i), *sim));
            }
        }
        let mut ranked: Vec<(&str, Ranks, f32)> = ranks
            .into_iter()
            .map(|(id, r)| {
                let score = match mode {
                    SearchMode::Bm25 => r.bm25.map_or(0.0, |(_, s)| s),
                    SearchMode::Vector => r.vector.map_or(0.0, |(_, s)| s),
                    SearchMode::Hybrid => [r.bm25, r.vector].iter().flatten().map(|(r, _)| 1.0 / (RRF_K + *r as f32)).sum(),
                };
                (id, r, score)
            })
            .collect();
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(b.0)));
        ranked.truncate(k);
        let ids: Vec<String> = ranked.iter().map(|(id, _, _)| (*id).to_owned()).collect();
        let mut rows: HashMap<String, (StoredChunk, Document)> = self.meta.passages_by_ids(&ids).await?.into_iter().map(|(c, d)| (c.id.clone(), (c, d))).collect();
        let passages: Vec<Passage> = ranked
            .iter()
            .filter_map(|(id, r, score)| {
                let (chunk, doc) = rows.remove(*id)?;
                // The rankers filter by organisation already; a row of another is never shown.
                (doc.org_id == org_id).then(|| Passage {
                    chunk,
                    document: doc.name,
                    title: doc.title,
                    folder: doc.folder,
                    score: *score,
                    bm25_rank: r.bm25.map(|(r, _)| r),
                    vector_rank: r.vector.map(|(r, _)| r),
                })
            })
            .collect();
        self.cache.put(key, generation, embedding, passages.clone());
        Ok(passages)
    }
}
