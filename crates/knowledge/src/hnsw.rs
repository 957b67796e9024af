//! A compact HNSW graph (Malkov & Yashunin 2016) over unit vectors stored as int8 codes with one
//! scale per vector: 384 dimensions take 388 bytes instead of 1,536, so a million chunks fit in
//! about half a gigabyte with their links. Queries stay in f32 against the codes (asymmetric
//! distance), which keeps the ranking close to exact float search.
//!
//! What the crates on offer lacked is here: a predicate checked *inside* the traversal (nodes
//! outside the caller's scope still route the search but never enter the results, so a scope is
//! applied before ranking), tombstones, and a byte format we own (see [`Graph::write`]).
//! Similarity is the dot product (cosine for unit vectors); larger is closer.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};

/// Links per node on the upper layers; layer 0 keeps twice as many (the paper's advice).
const M: usize = 16;
const M0: usize = 2 * M;
/// Candidates kept while linking a new node: higher builds a better graph, slower.
const EF_CONSTRUCTION: usize = 100;
const NONE: u32 = u32::MAX;

#[cfg(test)]
pub static EVALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A similarity with a total order, for the heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored(f32, u32);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// `codes · scale` approximates the vector; the largest component maps to ±127.
pub fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    let codes = v.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8).collect();
    (codes, scale)
}

/// The CPU's widest vector instructions, found once: the release build targets baseline x86-64
/// (SSE2), and the distance loops below run about twice as fast when compiled for AVX2 + FMA
/// where the CPU has them (`pulp` compiles them for each and picks at run time, safely).
static ARCH: std::sync::LazyLock<pulp::Arch> = std::sync::LazyLock::new(pulp::Arch::new);

// One struct per loop rather than a closure: pulp also takes closures, but measured at a million
// vectors the closure form lost the AVX2 code (ef 256: 2.49 ms against 1.65).
struct DotF32I8<'a>(&'a [f32], &'a [i8]);
impl pulp::WithSimd for DotF32I8<'_> {
    type Output = f32;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> f32 {
        dot_f32_i8_loop(self.0, self.1)
    }
}

struct DotI8<'a>(&'a [i8], &'a [i8]);
impl pulp::WithSimd for DotI8<'_> {
    type Output = i32;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> i32 {
        dot_i8_loop(self.0, self.1)
    }
}

/// A query against a stored code.
pub fn dot_f32_i8(a: &[f32], b: &[i8]) -> f32 {
    ARCH.dispatch(DotF32I8(a, b))
}

/// Two stored codes (while linking a new node).
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    ARCH.dispatch(DotI8(a, b))
}

/// Eight independent accumulators so the loop vectorises.
#[inline(always)]
fn dot_f32_i8_loop(a: &[f32], b: &[i8]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * f32::from(y[i]);
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        sum += x * f32::from(*y);
    }
    sum
}

#[inline(always)]
fn dot_i8_loop(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..16 {
            acc[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    acc.iter().sum::<i32>() + ar.iter().zip(br).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum::<i32>()
}

/// Which nodes a search has seen: one bit per node, allocated per search so readers share the
/// graph without locking each other.
struct Visited(Vec<u64>);
impl Visited {
    fn new(n: usize) -> Self {
        Visited(vec![0; n / 64 + 1])
    }
    /// True the first time.
    fn insert(&mut self, i: u32) -> bool {
        let (w, b) = (i as usize / 64, i % 64);
        let fresh = self.0[w] & (1 << b) == 0;
        self.0[w] |= 1 << b;
        fresh
    }
}

pub struct Graph {
    dims: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    levels: Vec<u8>,
    /// Layer-0 links: `M0` slots per node, `len0` of them used.
    links0: Vec<u32>,
    len0: Vec<u8>,
    /// Links on layers 1..=level, for the few nodes that reach them (1 in 16).
    upper: HashMap<u32, Vec<Vec<u32>>>,
    deleted: Vec<bool>,
    deleted_count: usize,
    entry: u32,
    top: u8,
    rng: u64,
}

impl Graph {
    pub fn new(dims: usize) -> Self {
        Graph {
            dims,
            codes: Vec::new(),
            scales: Vec::new(),
            levels: Vec::new(),
            links0: Vec::new(),
            len0: Vec::new(),
            upper: HashMap::new(),
            deleted: Vec::new(),
            deleted_count: 0,
            entry: NONE,
            top: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Nodes, tombstones included.
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == self.deleted_count
    }

    pub fn deleted_count(&self) -> usize {
        self.deleted_count
    }

    pub fn is_deleted(&self, node: u32) -> bool {
        self.deleted[node as usize]
    }

    fn code(&self, node: u32) -> &[i8] {
        let i = node as usize * self.dims;
        &self.codes[i..i + self.dims]
    }

    /// The stored vector, as floats.
    pub fn vector(&self, node: u32) -> Vec<f32> {
        let s = self.scales[node as usize];
        self.code(node).iter().map(|c| f32::from(*c) * s).collect()
    }

    fn sim_query(&self, q: &[f32], node: u32) -> f32 {
        #[cfg(test)]
        EVALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.scales[node as usize] * dot_f32_i8(q, self.code(node))
    }

    fn sim_nodes(&self, a: u32, b: u32) -> f32 {
        self.scales[a as usize] * self.scales[b as usize] * dot_i8(self.code(a), self.code(b)) as f32
    }

    fn links(&self, node: u32, level: u8) -> &[u32] {
        if level == 0 {
            let i = node as usize * M0;
            &self.links0[i..i + self.len0[node as usize] as usize]
        } else {
            self.upper.get(&node).and_then(|l| l.get(level as usize - 1)).map_or(&[], Vec::as_slice)
        }
    }

    fn set_links(&mut self, node: u32, level: u8, to: &[u32]) {
        if level == 0 {
            let i = node as usize * M0;
            let n = to.len().min(M0);
            self.links0[i..i + n].copy_from_slice(&to[..n]);
            self.len0[node as usize] = n as u8;
        } else if let Some(l) = self.upper.get_mut(&node).and_then(|l| l.get_mut(level as usize - 1)) {
            l.clear();
            l.extend_from_slice(to);
        }
    }

    /// Exponentially rarer upper layers: level ⌊-ln(U)·1/ln(M)⌋.
    fn random_level(&mut self) -> u8 {
        // splitmix64: deterministic, so a rebuilt graph is the same graph.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        (-u.ln() / (M as f64).ln()).floor().min(16.0) as u8
    }

    /// Best-first search of one layer from `entry`, keeping the `ef` most similar nodes that
    /// `accept` lets through; the rest only route.
    fn search_layer(&self, q: &[f32], entry: &[Scored], ef: usize, level: u8, accept: &dyn Fn(u32) -> bool, visited: &mut Visited) -> Vec<Scored> {
        let mut candidates: BinaryHeap<Scored> = BinaryHeap::new();
        // Worst kept result on top.
        let mut results: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::new();
        for e in entry {
            if visited.insert(e.1) {
                candidates.push(*e);
                if accept(e.1) {
                    results.push(std::cmp::Reverse(*e));
                }
            }
        }
        while let Some(c) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| c.0 < w.0.0) {
                break;
            }
            for &n in self.links(c.1, level) {
                if !visited.insert(n) {
                    continue;
                }
                let s = self.sim_query(q, n);
                if results.len() < ef || results.peek().is_some_and(|w| s > w.0.0) {
                    candidates.push(Scored(s, n));
                    if accept(n) {
                        results.push(std::cmp::Reverse(Scored(s, n)));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        let mut out: Vec<Scored> = results.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// Greedy descent through the upper layers to the best entry for layer `down_to`.
    fn descend(&self, q: &[f32], down_to: u8) -> Scored {
        let mut best = Scored(self.sim_query(q, self.entry), self.entry);
        let mut level = self.top;
        while level > down_to {
            loop {
                let mut moved = false;
                for &n in self.links(best.1, level) {
                    let s = self.sim_query(q, n);
                    if s > best.0 {
                        best = Scored(s, n);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
            level -= 1;
        }
        best
    }

    /// The paper's neighbour heuristic: keep a candidate only if it is closer to the base than
    /// to every neighbour kept so far, so links spread in all directions instead of into one
    /// cluster. `candidates` are sorted most similar first.
    fn select(&self, candidates: &[Scored], m: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for c in candidates {
            if kept.len() >= m {
                break;
            }
            if kept.iter().all(|&k| self.sim_nodes(c.1, k) < c.0) {
                kept.push(c.1);
            }
        }
        kept
    }

    /// Adds a vector (normalised by the caller); returns its node number.
    pub fn insert(&mut self, v: &[f32]) -> u32 {
        debug_assert_eq!(v.len(), self.dims);
        let node = self.len() as u32;
        let (codes, scale) = quantize(v);
        self.codes.extend_from_slice(&codes);
        self.scales.push(scale);
        let level = self.random_level();
        self.levels.push(level);
        self.links0.extend(std::iter::repeat_n(NONE, M0));
        self.len0.push(0);
        self.deleted.push(false);
        if level > 0 {
            self.upper.insert(node, vec![Vec::new(); level as usize]);
        }
        if self.entry == NONE {
            self.entry = node;
            self.top = level;
            return node;
        }
        let mut entry = vec![self.descend(v, level)];
        for lc in (0..=level.min(self.top)).rev() {
            let mut visited = Visited::new(self.len());
            let found = self.search_layer(v, &entry, EF_CONSTRUCTION, lc, &|n| n != node, &mut visited);
            let neighbours = self.select(&found, M);
            self.set_links(node, lc, &neighbours);
            let cap = if lc == 0 { M0 } else { M };
            for &n in &neighbours {
                let mut links = self.links(n, lc).to_vec();
                if links.len() < cap {
                    links.push(node);
                } else {
                    let mut scored: Vec<Scored> = links.iter().map(|&l| Scored(self.sim_nodes(n, l), l)).collect();
                    scored.push(Scored(self.sim_nodes(n, node), node));
                    scored.sort_by(|a, b| b.cmp(a));
                    links = self.select(&scored, cap);
                }
                self.set_links(n, lc, &links);
            }
            entry = found;
        }
        if level > self.top {
            self.top = level;
            self.entry = node;
        }
        node
    }

    /// Tombstones a node: it keeps routing searches but is never returned.
    pub fn delete(&mut self, node: u32) {
        if let Some(d) = self.deleted.get_mut(node as usize)
            && !*d
        {
            *d = true;
            self.deleted_count += 1;
        }
    }

    /// The `k` most similar live nodes that `accept` lets through, most similar first, looking at
    /// `ef` candidates (more is slower and finds more of the true top `k`).
    pub fn search(&self, q: &[f32], k: usize, ef: usize, accept: &dyn Fn(u32) -> bool) -> Vec<(u32, f32)> {
        if self.entry == NONE || k == 0 {
            return Vec::new();
        }
        let entry = self.descend(q, 0);
        let mut visited = Visited::new(self.len());
        let live = |n: u32| !self.deleted[n as usize] && accept(n);
        let mut found = self.search_layer(q, &[entry], ef.max(k), 0, &live, &mut visited);
        found.truncate(k);
        found.into_iter().map(|s| (s.1, s.0)).collect()
    }

    /// Exact top `k` over the given nodes (a small scope ranks faster and perfectly this way).
    pub fn exact(&self, q: &[f32], k: usize, nodes: impl Iterator<Item = u32>) -> Vec<(u32, f32)> {
        let mut heap: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::new();
        for n in nodes {
            if self.deleted[n as usize] {
                continue;
            }
            let s = self.sim_query(q, n);
            if heap.len() < k {
                heap.push(std::cmp::Reverse(Scored(s, n)));
            } else if heap.peek().is_some_and(|w| s > w.0.0) {
                heap.pop();
                heap.push(std::cmp::Reverse(Scored(s, n)));
            }
        }
        let mut out: Vec<Scored> = heap.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out.into_iter().map(|s| (s.1, s.0)).collect()
    }

    /// Little-endian: dims, node count, entry, top, rng; per node its level, tombstone, scale,
    /// codes and links per layer.
    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let n = u32::try_from(self.len()).map_err(|_| io::Error::other("too many nodes"))?;
        w.write_all(&u32::try_from(self.dims).map_err(|_| io::Error::other("dims"))?.to_le_bytes())?;
        w.write_all(&n.to_le_bytes())?;
        w.write_all(&self.entry.to_le_bytes())?;
        w.write_all(&[self.top])?;
        w.write_all(&self.rng.to_le_bytes())?;
        let mut buf = Vec::with_capacity(self.dims + 256);
        for node in 0..n {
            buf.clear();
            let level = self.levels[node as usize];
            buf.push(level);
            buf.push(u8::from(self.deleted[node as usize]));
            buf.extend_from_slice(&self.scales[node as usize].to_le_bytes());
            buf.extend(self.code(node).iter().map(|c| c.to_le_bytes()[0]));
            for lc in 0..=level {
                let links = self.links(node, lc);
                buf.push(u8::try_from(links.len()).map_err(|_| io::Error::other("links"))?);
                for l in links {
                    buf.extend_from_slice(&l.to_le_bytes());
                }
            }
            w.write_all(&buf)?;
        }
        Ok(())
    }

    pub fn read(r: &mut impl Read) -> io::Result<Self> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("vector index: bad {what}"));
        let dims = read_u32(r)? as usize;
        let n = read_u32(r)?;
        let entry = read_u32(r)?;
        let top = read_u8(r)?;
        let rng = u64::from_le_bytes(read_array(r)?);
        if dims == 0 || dims > 65_536 || (n > 0 && entry >= n) {
            return Err(bad("header"));
        }
        let mut g = Graph::new(dims);
        g.rng = rng;
        g.entry = entry;
        g.top = top;
        let mut codes = vec![0u8; dims];
        for node in 0..n {
            let level = read_u8(r)?;
            let deleted = read_u8(r)? != 0;
            g.scales.push(f32::from_le_bytes(read_array(r)?));
            r.read_exact(&mut codes)?;
            g.codes.extend(codes.iter().map(|c| i8::from_le_bytes([*c])));
            g.levels.push(level);
            g.deleted.push(deleted);
            g.deleted_count += usize::from(deleted);
            g.links0.extend(std::iter::repeat_n(NONE, M0));
            g.len0.push(0);
            if level > top {
                return Err(bad("level"));
            }
            let mut upper = Vec::with_capacity(level as usize);
            for lc in 0..=level {
                let count = read_u8(r)? as usize;
                if count > if lc == 0 { M0 } else { M } {
                    return Err(bad("link count"));
                }
                let mut links = Vec::with_capacity(count);
                for _ in 0..count {
                    let l = read_u32(r)?;
                    if l >= n {
                        return Err(bad("link"));
                    }
                    links.push(l);
                }
                if lc == 0 {
                    g.set_links(node, 0, &links);
                } else {
                    upper.push(links);
                }
            }
            if level > 0 {
                g.upper.insert(node, upper);
            }
        }
        if n == 0 {
            g.entry = NONE;
        }
        Ok(g)
    }
}

pub(crate) fn read_array<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

pub(crate) fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    Ok(u32::from_le_bytes(read_array(r)?))
}

fn read_u8(r: &mut impl Read) -> io::Result<u8> {
    Ok(read_array::<1>(r)?[0])
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A deterministic generator for test vectors.
    pub struct Rng(pub u64);
    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// Roughly normal (sum of uniforms).
        pub fn gauss(&mut self) -> f32 {
            (0..4).map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32).sum::<f32>() - 2.0
        }
    }

    pub fn normalise(mut v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    /// Vectors around `clusters` random centres, the shape sentence embeddings of a corpus take
    /// (topics), unlike uniform noise on the sphere, which no index of this kind serves well.
    pub fn clustered(n: usize, dims: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = Rng(seed);
        let centres: Vec<Vec<f32>> = (0..clusters).map(|_| normalise((0..dims).map(|_| rng.gauss()).collect())).collect();
        (0..n)
            .map(|_| {
                let c = &centres[(rng.next() % clusters as u64) as usize];
                normalise(c.iter().map(|x| x + 0.06 * rng.gauss()).collect())
            })
            .collect()
    }

    pub fn exact_top(data: &[Vec<f32>], q: &[f32], k: usize, keep: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut all: Vec<(f32, usize)> = data.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i)).collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0));
        all.into_iter().take(k).map(|(_, i)| i).collect()
    }

    #[test]
    fn quantised_dot_products_stay_close_to_float() {
        let data = clustered(50, 384, 5, 7);
        for a in &data {
            for b in &data {
                let exact: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let (ca, sa) = quantize(a);
                let (cb, sb) = quantize(b);
                assert!((sa * dot_f32_i8(b, &ca) - exact).abs() < 0.01);
                assert!((sa * sb * dot_i8(&ca, &cb) as f32 - exact).abs() < 0.01);
            }
        }
    }

    #[test]
    fn searches_filter_inside_the_traversal_and_skip_tombstones() {
        let data = clustered(3000, 64, 30, 11);
        let mut g = Graph::new(64);
        for v in &data {
            g.insert(v);
        }
        let q = &data[17];
        assert_eq!(g.search(q, 1, 50, &|_| true)[0].0, 17);
        // Only even nodes: every result even, and the best even node is found.
        let even = g.search(q, 10, 80, &|n| n % 2 == 0);
        assert_eq!(even.len(), 10);
        assert!(even.iter().all(|(n, _)| n % 2 == 0));
        assert_eq!(even[0].0 as usize, exact_top(&data, q, 1, |i| i % 2 == 0)[0]);
        g.delete(17);
        assert!(g.search(q, 10, 50, &|_| true).iter().all(|(n, _)| *n != 17));
        assert!(g.exact(q, 10, 0..3000).iter().all(|(n, _)| *n != 17));
        // The byte format round-trips.
        let mut bytes = Vec::new();
        g.write(&mut bytes).unwrap();
        let h = Graph::read(&mut bytes.as_slice()).unwrap();
        assert_eq!(h.search(&data[5], 10, 50, &|_| true), g.search(&data[5], 10, 50, &|_| true));
        assert!(h.is_deleted(17) && h.deleted_count() == 1);
        assert!(Graph::read(&mut &bytes[..bytes.len() - 3]).is_err(), "a truncated file is refused");
    }
}
