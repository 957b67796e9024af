//! The vector index: one HNSW graph ([`crate::hnsw`]) per organisation, so one organisation's
//! chunks never compete with another's for a place in the results, and a folder or document
//! scope is a predicate inside the traversal. A scope holding few chunks (under
//! [`EXACT_BELOW`], or under a tenth of the organisation) is ranked exactly instead: a filtered
//! graph walk finds too little when most of the graph is off limits.
//!
//! Each chunk's vector is keyed by its `vkey` in knowledge.db (never reused). The files under
//! `vectors/` are snapshots, written from time to time; knowledge.db stays the truth, and
//! opening reconciles the two (see `Knowledge::set_embedder`).

use crate::bm25::Scope;
use crate::hnsw::{read_array, read_u32, Graph};
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Scopes with at most this many chunks are ranked exactly (a few milliseconds).
pub const EXACT_BELOW: usize = 10_000;
/// Candidates looked at per query up to [`EF_GROWS_FROM`] chunks; multiplied for scoped queries,
/// as fewer of them qualify.
const EF_SEARCH: usize = 96;
/// Beyond this many chunks the candidate list grows with the logarithm of the size: a graph walk
/// with a fixed list finds less of the true top 10 as the graph grows (recall@10 0.98 at 200,000
/// chunks, 0.91 at a million with 96), and the walk is cheap next to the rest of a search.
const EF_GROWS_FROM: usize = 100_000;
/// Added per doubling beyond [`EF_GROWS_FROM`].
const EF_PER_DOUBLING: f64 = 48.0;

/// The candidate list for an unscoped walk over `live` chunks.
fn ef_for(live: usize) -> usize {
    if live <= EF_GROWS_FROM {
        return EF_SEARCH;
    }
    let doublings = (live as f64 / EF_GROWS_FROM as f64).log2();
    EF_SEARCH + (EF_PER_DOUBLING * doublings).round() as usize
}
const MAGIC: &[u8; 8] = b"TALEVEC1";
const END: &[u8; 8] = b"TALEEND!";

/// One chunk's vector going into the index.
#[derive(Debug, Clone, Copy)]
pub struct VectorEntry<'a> {
    pub key: u64,
    pub document_id: &'a str,
    pub folder: &'a str,
    pub vector: &'a [f32],
}

struct DocSlot {
    id: String,
    folder: String,
    /// Its live nodes.
    nodes: Vec<u32>,
}

struct Partition {
    graph: Graph,
    keys: Vec<u64>,
    doc_of: Vec<u32>,
    docs: Vec<DocSlot>,
    doc_index: HashMap<String, u32>,
    by_key: HashMap<u64, u32>,
    dirty: bool,
}

/// `/a/b` is within `/`, `/a` and `/a/b`, not `/ab`.
fn folder_within(folder: &str, scope: &str) -> bool {
    let scope = scope.trim_end_matches('/');
    scope.is_empty() || folder == scope || folder.strip_prefix(scope).is_some_and(|rest| rest.starts_with('/'))
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() { v.iter().map(|x| x / n).collect() } else { v.to_vec() }
}

impl Partition {
    fn new(dims: usize) -> Self {
        Partition { graph: Graph::new(dims), keys: Vec::new(), doc_of: Vec::new(), docs: Vec::new(), doc_index: HashMap::new(), by_key: HashMap::new(), dirty: false }
    }

    fn live(&self) -> usize {
        self.graph.len() - self.graph.deleted_count()
    }

    fn slot(&mut self, document_id: &str, folder: &str) -> u32 {
        if let Some(&s) = self.doc_index.get(document_id) {
            folder.clone_into(&mut self.docs[s as usize].folder);
            return s;
        }
        let s = u32::try_from(self.docs.len()).unwrap_or(u32::MAX);
        self.docs.push(DocSlot { id: document_id.to_owned(), folder: folder.to_owned(), nodes: Vec::new() });
        self.doc_index.insert(document_id.to_owned(), s);
        s
    }

    fn insert(&mut self, e: &VectorEntry) {
        if let Some(old) = self.by_key.remove(&e.key) {
            self.graph.delete(old);
            let slot = &mut self.docs[self.doc_of[old as usize] as usize];
            slot.nodes.retain(|n| *n != old);
        }
        let slot = self.slot(e.document_id, e.folder);
        let node = self.graph.insert(&normalised(e.vector));
        self.keys.push(e.key);
        self.doc_of.push(slot);
        self.docs[slot as usize].nodes.push(node);
        self.by_key.insert(e.key, node);
        self.dirty = true;
    }

    fn remove_document(&mut self, document_id: &str) {
        let Some(slot) = self.doc_index.remove(document_id) else { return };
        for node in std::mem::take(&mut self.docs[slot as usize].nodes) {
            self.graph.delete(node);
            self.by_key.remove(&self.keys[node as usize]);
        }
        self.dirty = true;
    }

    fn remove_key(&mut self, key: u64) {
        if let Some(node) = self.by_key.remove(&key) {
            self.graph.delete(node);
            self.docs[self.doc_of[node as usize] as usize].nodes.retain(|n| *n != node);
            self.dirty = true;
        }
    }

    fn search(&self, q: &[f32], scope: &Scope, k: usize, exact_below: usize, ef_override: usize) -> Vec<(u64, f32)> {
        let live = self.live();
        if live == 0 || k == 0 {
            return Vec::new();
        }
        let documents: Option<HashSet<&str>> = scope.documents.as_ref().map(|d| d.iter().map(String::as_str).collect());
        let in_scope = |d: &DocSlot| {
            documents.as_ref().is_none_or(|set| set.contains(d.id.as_str()))
                && scope.folders.as_ref().is_none_or(|fs| fs.iter().any(|f| folder_within(&d.folder, f)))
        };
        let allowed: Option<Vec<bool>> = (scope.documents.is_some() || scope.folders.is_some()).then(|| self.docs.iter().map(|d| !d.nodes.is_empty() && in_scope(d)).collect());
        let allowed_count = match &allowed {
            Some(a) => self.docs.iter().zip(a).filter(|(_, ok)| **ok).map(|(d, _)| d.nodes.len()).sum(),
            None => live,
        };
        if allowed_count == 0 {
            return Vec::new();
        }
        let found = if allowed_count <= exact_below || allowed_count * 10 < live {
            match &allowed {
                Some(a) => self.graph.exact(q, k, self.docs.iter().zip(a).filter(|(_, ok)| **ok).flat_map(|(d, _)| d.nodes.iter().copied())),
                None => self.graph.exact(q, k, 0..u32::try_from(self.graph.len()).unwrap_or(u32::MAX)),
            }
        } else {
            let boost = (live / allowed_count).clamp(1, 10);
            // A scoped walk widens its list by how much of the graph is off limits instead: at a
            // fifth of a million chunks, 96 five times over already finds 0.99 of the true top 10.
            let base = match (ef_override, &allowed) {
                (0, None) => ef_for(live),
                (0, Some(_)) => EF_SEARCH,
                (fixed, _) => fixed,
            };
            let ef = base.max(2 * k) * boost;
            match &allowed {
                Some(a) => self.graph.search(q, k, ef, &|n| a[self.doc_of[n as usize] as usize]),
                None => self.graph.search(q, k, ef, &|_| true),
            }
        };
        found.into_iter().map(|(n, s)| (self.keys[n as usize], s)).collect()
    }

    /// The same live vectors in a fresh graph, without the tombstones.
    fn compacted(&self) -> Partition {
        let mut p = Partition::new(self.graph.dims());
        for slot in &self.docs {
            for &n in &slot.nodes {
                let v = self.graph.vector(n);
                p.insert(&VectorEntry { key: self.keys[n as usize], document_id: &slot.id, folder: &slot.folder, vector: &v });
            }
        }
        p
    }

    fn write(&self, w: &mut impl Write, model: &str, org_id: &str) -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        write_str(w, model)?;
        write_str(w, org_id)?;
        self.graph.write(w)?;
        for k in &self.keys {
            w.write_all(&k.to_le_bytes())?;
        }
        for d in &self.doc_of {
            w.write_all(&d.to_le_bytes())?;
        }
        w.write_all(&u32::try_from(self.docs.len()).map_err(std::io::Error::other)?.to_le_bytes())?;
        for d in &self.docs {
            write_str(w, &d.id)?;
            write_str(w, &d.folder)?;
        }
        w.write_all(END)
    }

    /// Reads a snapshot; `None` when it belongs to another model.
    fn read(r: &mut impl Read, model: &str, dims: usize) -> std::io::Result<Option<(String, Partition)>> {
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("vector index: bad {what}"));
        if &read_array::<8>(r)? != MAGIC {
            return Err(bad("magic"));
        }
        if read_str(r)? != model {
            return Ok(None);
        }
        let org_id = read_str(r)?;
        let graph = Graph::read(r)?;
        if graph.dims() != dims {
            return Ok(None);
        }
        let n = graph.len();
        let keys = (0..n).map(|_| Ok(u64::from_le_bytes(read_array(r)?))).collect::<std::io::Result<Vec<u64>>>()?;
        let doc_of = (0..n).map(|_| read_u32(r)).collect::<std::io::Result<Vec<u32>>>()?;
        let count = read_u32(r)? as usize;
        let mut docs = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            docs.push(DocSlot { id: read_str(r)?, folder: read_str(r)?, nodes: Vec::new() });
        }
        if &read_array::<8>(r)? != END {
            return Err(bad("end"));
        }
        let mut by_key = HashMap::with_capacity(n);
        for (node, (&key, &d)) in keys.iter().zip(&doc_of).enumerate() {
            let slot = docs.get_mut(d as usize).ok_or_else(|| bad("document slot"))?;
            let node = u32::try_from(node).map_err(|_| bad("node"))?;
            if !graph.is_deleted(node) {
                slot.nodes.push(node);
                by_key.insert(key, node);
            }
        }
        let doc_index = docs.iter().enumerate().filter(|(_, d)| !d.nodes.is_empty()).map(|(i, d)| (d.id.clone(), u32::try_from(i).unwrap_or(u32::MAX))).collect();
        Ok(Some((org_id, Partition { graph, keys, doc_of, docs, doc_index, by_key, dirty: false })))
    }
}

fn write_str(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    w.write_all(&u32::try_from(s.len()).map_err(std::io::Error::other)?.to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn read_str(r: &mut impl Read) -> std::io::Result<String> {
    let len = read_u32(r)? as usize;
    if len > 1 << 20 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "vector index: bad string"));
    }
    let mut b = vec![0u8; len];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "vector index: bad string"))
}

/// Every organisation's graph for one embedding model.
pub struct VectorIndex {
    dir: PathBuf,
    model: String,
    dims: usize,
    parts: RwLock<HashMap<String, Arc<RwLock<Partition>>>>,
    /// [`EXACT_BELOW`]; lowered by tests to exercise the graph on small data.
    exact_below: usize,
    /// A fixed candidate list instead of [`ef_for`]'s (0: automatic); for measuring.
    ef_override: std::sync::atomic::AtomicUsize,
    /// One save at a time: two would write the same temporary file.
    saving: std::sync::Mutex<()>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("{}: {e}", path.display()))
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl VectorIndex {
    /// Loads the snapshots in `dir` made for `model`. A snapshot of another model is ignored
    /// (and removed when `writable`); an unreadable one is skipped with a warning — the caller
    /// reconciles with knowledge.db, which restores whatever is missing. Blocking.
    pub fn open(dir: &Path, model: &str, dims: usize, writable: bool) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut parts = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))?.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "vec") {
                if writable && path.extension().is_some_and(|e| e == "tmp") {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let read = std::fs::File::open(&path).and_then(|f| Partition::read(&mut BufReader::with_capacity(1 << 20, f), model, dims));
            match read {
                Ok(Some((org, p))) => {
                    parts.insert(org, Arc::new(RwLock::new(p)));
                }
                Ok(None) => {
                    if writable {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "unreadable vector snapshot; rebuilding it from knowledge.db"),
            }
        }
        Ok(VectorIndex { dir: dir.to_owned(), model: model.to_owned(), dims, parts: RwLock::new(parts), exact_below: EXACT_BELOW, ef_override: 0.into(), saving: std::sync::Mutex::new(()) })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    fn part(&self, org_id: &str) -> Option<Arc<RwLock<Partition>>> {
        read_lock(&self.parts).get(org_id).cloned()
    }

    fn part_or_new(&self, org_id: &str) -> Arc<RwLock<Partition>> {
        if let Some(p) = self.part(org_id) {
            return p;
        }
        write_lock(&self.parts).entry(org_id.to_owned()).or_insert_with(|| Arc::new(RwLock::new(Partition::new(self.dims)))).clone()
    }

    /// Adds vectors (a key already present is replaced). Blocking: each insert walks the graph.
    pub fn insert(&self, org_id: &str, entries: &[VectorEntry]) -> Result<()> {
        if let Some(e) = entries.iter().find(|e| e.vector.len() != self.dims) {
            return Err(Error::Index(format!("the embedding model returned {} dimensions where {} were expected", e.vector.len(), self.dims)));
        }
        if entries.is_empty() {
            return Ok(());
        }
        let part = self.part_or_new(org_id);
        // A few dozen at a time: a long document must not hold the organisation's searches off.
        for group in entries.chunks(32) {
            let mut p = write_lock(&part);
            for e in group {
                p.insert(e);
            }
        }
        Ok(())
    }

    /// Takes a document's vectors out of search at once (tombstones).
    pub fn remove_document(&self, org_id: &str, document_id: &str) {
        if let Some(part) = self.part(org_id) {
            write_lock(&part).remove_document(document_id);
        }
    }

    pub fn remove_keys(&self, org_id: &str, keys: &[u64]) {
        if let Some(part) = self.part(org_id) {
            let mut p = write_lock(&part);
            for k in keys {
                p.remove_key(*k);
            }
        }
    }

    /// Every live key, by organisation (to reconcile with knowledge.db).
    pub fn keys(&self) -> HashMap<String, HashSet<u64>> {
        read_lock(&self.parts).iter().map(|(org, p)| (org.clone(), read_lock(p).by_key.keys().copied().collect())).collect()
    }

    /// Live vectors in all organisations.
    pub fn len(&self) -> usize {
        read_lock(&self.parts).values().map(|p| read_lock(p).live()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` keys most similar to `query` among the organisation's chunks in `scope`, with
    /// their cosine similarity, best first. Blocking (a millisecond or two at a million chunks).
    pub fn search(&self, org_id: &str, scope: &Scope, query: &[f32], k: usize) -> Vec<(u64, f32)> {
        if query.len() != self.dims || scope.folders.as_ref().is_some_and(Vec::is_empty) || scope.documents.as_ref().is_some_and(Vec::is_empty) {
            return Vec::new();
        }
        let Some(part) = self.part(org_id) else { return Vec::new() };
        let q = normalised(query);
        read_lock(&part).search(&q, scope, k, self.exact_below, self.ef_override.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Walks with a fixed candidate list of `ef` (`None`: sized to the graph, the default).
    /// For benchmarks that trade recall against time.
    pub fn set_ef_search(&self, ef: Option<usize>) {
        self.ef_override.store(ef.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes the snapshots of organisations that changed since the last save, each to a
    /// temporary file that is synced and renamed over the old one; a graph that is mostly
    /// tombstones is rebuilt first. Blocking. Returns how many files were written.
    pub fn save(&self) -> Result<usize> {
        let _one = self.saving.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let parts: Vec<(String, Arc<RwLock<Partition>>)> = read_lock(&self.parts).iter().map(|(o, p)| (o.clone(), p.clone())).collect();
        let mut written = 0;
        for (org, part) in parts {
            if !read_lock(&part).dirty {
                continue;
            }
            {
                let mut p = write_lock(&part);
                let dead = p.graph.deleted_count();
                if dead > 1000 && dead > p.live() {
                    *p = p.compacted();
                }
            }
            let p = read_lock(&part);
            let path = self.dir.join(format!("{}.vec", hex::encode(org.as_bytes())));
            let tmp = path.with_extension("tmp");
            let write = || -> std::io::Result<()> {
                let f = std::fs::File::create(&tmp)?;
                let mut w = BufWriter::with_capacity(1 << 20, f);
                p.write(&mut w, &self.model, &org)?;
                let f = w.into_inner().map_err(std::io::IntoInnerError::into_error)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)
            };
            write().map_err(|e| io(&path, e))?;
            drop(p);
            write_lock(&part).dirty = false;
            written += 1;
        }
        Ok(written)
    }

    pub fn is_dirty(&self) -> bool {
        read_lock(&self.parts).values().any(|p| read_lock(p).dirty)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_candidate_list_grows_with_the_graph() {
        assert_eq!(ef_for(0), EF_SEARCH);
        assert_eq!(ef_for(EF_GROWS_FROM), EF_SEARCH);
        assert_eq!(ef_for(2 * EF_GROWS_FROM), EF_SEARCH + 48);
        assert!(ef_for(1_000_000) > ef_for(500_000) && ef_for(1_000_000) < 4 * EF_SEARCH);
    }
    use crate::hnsw::tests::{clustered, exact_top};
    use std::time::Instant;

    fn entries<'a>(data: &'a [Vec<f32>], doc_of: impl Fn(usize) -> (&'a str, &'a str)) -> Vec<VectorEntry<'a>> {
        data.iter().enumerate().map(|(i, v)| VectorEntry { key: i as u64, document_id: doc_of(i).0, folder: doc_of(i).1, vector: v }).collect()
    }

    fn recall(found: &[(u64, f32)], truth: &[usize]) -> usize {
        found.iter().filter(|(key, _)| truth.contains(&(*key as usize))).count()
    }

    /// 20,000 vectors of 384 dimensions; recall@10 of the graph (no scope, so no exact
    /// fallback) against exact float search over 200 queries that are not in the index.
    #[test]
    fn recall_at_10_against_exact_search_on_20k_vectors() {
        let dims = 384;
        let mut data = clustered(20_200, dims, 200, 42);
        let queries = data.split_off(20_000);
        let dir = tempfile::tempdir().unwrap();
        let index = VectorIndex::open(dir.path(), "m", dims, true).unwrap();
        let started = Instant::now();
        let docs: Vec<String> = (0..200).map(|d| format!("d{d}")).collect();
        index.insert("o", &entries(&data, |i| (&docs[i % 200], "/"))).unwrap();
        let build = started.elapsed();
        let truths: Vec<Vec<usize>> = queries.iter().map(|q| exact_top(&data, q, 10, |_| true)).collect();
        crate::hnsw::EVALS.store(0, std::sync::atomic::Ordering::SeqCst);
        let started = Instant::now();
        let found: Vec<Vec<(u64, f32)>> = queries.iter().map(|q| index.search("o", &Scope::default(), q, 10)).collect();
        let per_query = started.elapsed() / queries.len() as u32;
        let hits: usize = found.iter().zip(&truths).map(|(f, t)| {
            assert_eq!(f.len(), 10);
            recall(f, t)
        }).sum();
        let r = hits as f64 / (10 * queries.len()) as f64;
        println!("recall@10 {r:.3}; build {build:?} for 20k; {per_query:?} per query; {} distances per query", crate::hnsw::EVALS.load(std::sync::atomic::Ordering::SeqCst) / queries.len());
        assert!(r >= 0.95, "recall@10 {r}");
    }

    #[test]
    fn scopes_filter_before_ranking_deletions_apply_at_once_and_snapshots_reopen() {
        let dims = 384;
        let data = clustered(15_000, dims, 150, 3);
        let dir = tempfile::tempdir().unwrap();
        let mut index = VectorIndex::open(dir.path(), "m", dims, true).unwrap();
        index.exact_below = 1000;
        let docs: Vec<String> = (0..100).map(|d| format!("d{d}")).collect();
        // Documents 0..10 in /small (1,200 chunks, a tenth: exact), 10..60 in /big/a (6,000
        // chunks: a filtered graph walk), the rest at the root.
        let folder = |d: usize| if d < 10 { "/small" } else if d < 60 { "/big/a" } else { "/" };
        let split = 12_000;
        index.insert("o1", &entries(&data[..split], |i| (&docs[i % 100], folder(i % 100)))).unwrap();
        // Another organisation holds the exact query vectors: it must never show up.
        let other: Vec<VectorEntry> = data[..split].iter().enumerate().map(|(i, v)| VectorEntry { key: 1_000_000 + i as u64, document_id: "x", folder: "/", vector: v }).collect();
        index.insert("o2", &other).unwrap();

        let in_folder = |prefix: &'static str| move |i: usize| i < split && folder(i % 100).starts_with(prefix);
        let mut hits = [0usize; 3];
        for q in &data[split..split + 100] {
            for (j, (scope, keep)) in [
                (Scope { folders: Some(vec!["/small".into()]), documents: None }, Box::new(in_folder("/small")) as Box<dyn Fn(usize) -> bool>),
                (Scope { folders: Some(vec!["/big".into()]), documents: None }, Box::new(in_folder("/big"))),
                (Scope { folders: None, documents: Some(vec!["d7".into(), "d70".into()]) }, Box::new(move |i: usize| i < split && (i % 100 == 7 || i % 100 == 70))),
            ]
            .into_iter()
            .enumerate()
            {
                let found = index.search("o1", &scope, q, 10);
                assert!(found.iter().all(|(k, _)| *k < 1_000_000 && keep(*k as usize)), "only the scope, only the organisation");
                hits[j] += recall(&found, &exact_top(&data, q, 10, &keep));
            }
        }
        assert!(hits.iter().all(|h| *h >= 950), "recall@10 per scope {hits:?} of 1000");
        assert!(index.search("o1", &Scope { folders: Some(vec!["/sma".into()]), documents: None }, &data[0], 10).is_empty(), "folder names match whole segments");
        assert!(index.search("o3", &Scope::default(), &data[0], 10).is_empty());

        // Deleting a document removes its vectors from the next search.
        let q = &data[5];
        assert_eq!(index.search("o1", &Scope::default(), q, 1)[0].0, 5);
        index.remove_document("o1", "d5");
        assert!(index.search("o1", &Scope::default(), q, 50).iter().all(|(k, _)| k % 100 != 5));
        index.remove_keys("o1", &[6]);
        assert!(index.search("o1", &Scope::default(), &data[6], 50).iter().all(|(k, _)| *k != 6));

        // Reopen: same results, deletions included; another model's snapshot is not used.
        let before: Vec<Vec<(u64, f32)>> = data[split..split + 20].iter().map(|q| index.search("o1", &Scope::default(), q, 10)).collect();
        assert_eq!(index.save().unwrap(), 2);
        assert_eq!(index.save().unwrap(), 0, "nothing changed since");
        let reopened = VectorIndex::open(dir.path(), "m", dims, true).unwrap();
        let after: Vec<Vec<(u64, f32)>> = data[split..split + 20].iter().map(|q| reopened.search("o1", &Scope::default(), q, 10)).collect();
        assert_eq!(before, after);
        assert_eq!(reopened.len(), index.len());
        assert!(reopened.keys()["o1"].contains(&7) && !reopened.keys()["o1"].contains(&5));
        let other_model = VectorIndex::open(dir.path(), "another-model", dims, true).unwrap();
        assert!(other_model.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a snapshot of another model is removed");
    }

    #[test]
    fn mostly_deleted_graphs_are_compacted_on_save() {
        let dims = 16;
        let data = clustered(3000, dims, 10, 9);
        let dir = tempfile::tempdir().unwrap();
        let index = VectorIndex::open(dir.path(), "m", dims, true).unwrap();
        let docs = ["a", "b", "c"];
        index.insert("o", &entries(&data, |i| (docs[i % 3], "/"))).unwrap();
        index.remove_document("o", "a");
        index.remove_document("o", "b");
        index.save().unwrap();
        let p = index.part("o").unwrap();
        assert_eq!((read_lock(&p).graph.len(), read_lock(&p).graph.deleted_count()), (1000, 0));
        let found = index.search("o", &Scope::default(), &data[2], 5);
        assert_eq!(found[0].0, 2);
        assert!(found.iter().all(|(k, _)| k % 3 == 2));
    }
}
