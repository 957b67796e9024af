//! The semantic cache: a question asked again (same organisation, scope, mode and `k`, same
//! words after normalising case, spacing and trailing punctuation, or a query embedding at
//! cosine ≥ [`NEAR_DUPLICATE`] to a cached one) gets the earlier passages without searching.
//!
//! Every entry carries its organisation's generation; any change to that organisation's
//! documents (upload, indexing finished or failed, delete, new vectors) bumps the generation,
//! so older entries are never served again and age out.

use crate::ingest::Passage;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Cosine similarity above which two questions are the same question.
pub const NEAR_DUPLICATE: f32 = 0.97;
const CAPACITY: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub org_id: String,
    /// The scope and mode, in a canonical form.
    pub context: String,
    pub k: usize,
    pub query: String,
}

struct Entry {
    generation: u64,
    embedding: Option<Vec<f32>>,
    passages: Vec<Passage>,
}

#[derive(Default)]
struct Inner {
    generations: HashMap<String, u64>,
    /// Bumped for every organisation at once (a new embedding model).
    epoch: u64,
    entries: HashMap<CacheKey, Entry>,
    order: VecDeque<CacheKey>,
}

impl Inner {
    fn generation(&self, org_id: &str) -> u64 {
        self.epoch.wrapping_mul(1 << 32).wrapping_add(self.generations.get(org_id).copied().unwrap_or(0))
    }
}

#[derive(Default)]
pub struct SearchCache {
    inner: Mutex<Inner>,
}

/// Lower case, one space between words, no punctuation at either end: "What is RRF?" and
/// "what  is rrf" are one question.
pub fn normalise(query: &str) -> String {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    words.join(" ").trim_matches(|c: char| "?!.,;:\"'¿¡ ".contains(c)).to_owned()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) }
}

impl SearchCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The organisation's documents changed: its cached results are stale.
    pub fn invalidate(&self, org_id: &str) {
        let mut g = self.lock();
        *g.generations.entry(org_id.to_owned()).or_insert(0) += 1;
    }

    /// Every organisation's results are stale (vectors appeared or changed model).
    pub fn invalidate_all(&self) {
        let mut g = self.lock();
        g.epoch += 1;
        g.entries.clear();
        g.order.clear();
    }

    /// The current generation of an organisation, taken before searching: results computed
    /// while a document changed are stored under the old generation and never served.
    pub fn generation(&self, org_id: &str) -> u64 {
        self.lock().generation(org_id)
    }

    pub fn get(&self, key: &CacheKey) -> Option<Vec<Passage>> {
        let g = self.lock();
        let current = g.generation(&key.org_id);
        g.entries.get(key).filter(|e| e.generation == current).map(|e| e.passages.clone())
    }

    /// A cached result for a question whose embedding is nearly the same as `embedding`.
    pub fn get_similar(&self, key: &CacheKey, embedding: &[f32]) -> Option<Vec<Passage>> {
        let g = self.lock();
        let current = g.generation(&key.org_id);
        g.entries
            .iter()
            .filter(|(k, e)| e.generation == current && k.org_id == key.org_id && k.context == key.context && k.k == key.k)
            .filter_map(|(_, e)| e.embedding.as_ref().map(|v| (cosine(v, embedding), e)))
            .filter(|(s, _)| *s >= NEAR_DUPLICATE)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, e)| e.passages.clone())
    }

    pub fn put(&self, key: CacheKey, generation: u64, embedding: Option<Vec<f32>>, passages: Vec<Passage>) {
        let mut g = self.lock();
        if g.generation(&key.org_id) != generation {
            return;
        }
        if g.entries.insert(key.clone(), Entry { generation, embedding, passages }).is_none() {
            g.order.push_back(key);
        }
        while g.order.len() > CAPACITY {
            if let Some(old) = g.order.pop_front() {
                g.entries.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_keeps_words_and_drops_case_spacing_and_end_punctuation() {
        assert_eq!(normalise("  What is   RRF? "), "what is rrf");
        assert_eq!(normalise("what is rrf"), "what is rrf");
        assert_eq!(normalise("C++ vs. C#"), "c++ vs. c#");
        assert_eq!(normalise("?!"), "");
    }
}
