//! Ingestion through search with real files, the real object store, SQLite and tantivy.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tale_knowledge::bm25::Scope;
use tale_knowledge::ingest::{Knowledge, KnowledgeConfig};

async fn open(dir: &std::path::Path) -> Arc<Knowledge> {
    let objects = tale_objects::ObjectStore::open(dir.join("objects")).unwrap();
    Knowledge::open(KnowledgeConfig::new(dir.join("knowledge")), objects, true).await.unwrap()
}

fn body(text: &str) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    futures_util::stream::iter(vec![Ok(Bytes::from(text.to_owned()))])
}

async fn drain(k: &Knowledge) {
    while k.process_one().await.unwrap() {}
}

#[tokio::test]
async fn documents_are_indexed_searched_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let k = open(dir.path()).await;
    let md = "# Ownership\n\nEach value in Rust has a variable that is its owner.\n\n## Borrowing\n\nReferences borrow values without taking ownership.";
    let a = k.add("org1", "/book", "ownership.md", "text/markdown", body(md), "u1").await.unwrap();
    assert_eq!(a.status, "queued");
    let html = "<html><head><title>Async</title></head><body><nav>menu menu</nav><main><h1>Futures</h1><p>A future is polled by an executor until it is ready.</p></main></body></html>";
    let b = k.add("org1", "/book/async", "async.html", "text/html", body(html), "u1").await.unwrap();
    let other = k.add("org2", "/", "secret.md", "text/markdown", body("# Ownership\n\nThe other organisation's ownership notes."), "u2").await.unwrap();
    let bad = k.add("org1", "/", "tool.exe", "application/octet-stream", body("MZ\u{0}\u{1}binary"), "u1").await.unwrap();
    drain(&k).await;

    let a = k.meta.document(&a.id).await.unwrap().unwrap();
    assert_eq!((a.status.as_str(), a.title.as_deref()), ("completed", Some("Ownership")));
    assert!(a.chunk_count >= 1);
    let bad = k.meta.document(&bad.id).await.unwrap().unwrap();
    assert_eq!(bad.status, "failed");
    assert!(bad.error.as_deref().unwrap().contains("not a supported file type"), "{:?}", bad.error);

    let hits = k.search("org1", &Scope::default(), "who owns a value", 5).await.unwrap();
    assert_eq!(hits[0].document, "ownership.md");
    assert!(hits[0].chunk.header.starts_with("Ownership"), "{:?}", hits[0].chunk);
    assert!(hits.iter().all(|h| h.document != "secret.md"), "other organisations never appear");
    let hits = k.search("org1", &Scope::default(), "executor polls futures", 5).await.unwrap();
    assert_eq!(hits[0].document, "async.html");
    assert!(!hits[0].chunk.text.contains("menu"), "navigation is not indexed");
    let scoped = k.search("org1", &Scope { folders: Some(vec!["/book/async".into()]), documents: None }, "ownership owner", 5).await.unwrap();
    assert!(scoped.iter().all(|h| h.folder.starts_with("/book/async")));

    k.delete(&b.id).await.unwrap();
    assert!(k.search("org1", &Scope::default(), "executor polls futures", 5).await.unwrap().iter().all(|h| h.document != "async.html"));
    assert!(k.meta.document(&b.id).await.unwrap().is_none());
    assert_eq!(k.search("org2", &Scope::default(), "ownership", 5).await.unwrap()[0].document, "secret.md");
    assert_eq!(other.folder, "/");
}

#[tokio::test]
async fn a_job_whose_worker_died_is_picked_up_again_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = KnowledgeConfig::new(dir.path().join("knowledge"));
    config.lease = Duration::from_millis(200);
    let objects = tale_objects::ObjectStore::open(dir.path().join("objects")).unwrap();
    let k = Knowledge::open(config, objects, true).await.unwrap();
    let d = k.add("org1", "/", "notes.txt", "text/plain", body("Lighthouses guide ships along rocky coasts at night."), "u1").await.unwrap();
    // A worker claims it and dies before finishing.
    let now = 1_000_000_000_000_i64.max(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64);
    let claimed = k.meta.claim(now, now + 200, 2).await.unwrap().unwrap();
    assert_eq!(claimed.id, d.id);
    assert!(!k.process_one().await.unwrap(), "leased to the dead worker for now");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(k.process_one().await.unwrap(), "the watchdog hands it on once the lease ran out");
    assert!(k.process_one().await.is_ok());
    // Indexing twice (a retry) replaces, never doubles; a retry starts counting attempts anew.
    let mut changes = k.subscribe_changes();
    assert!(k.requeue(&d.id).await.unwrap());
    assert_eq!(changes.try_recv().unwrap(), "org1", "live pages hear of the retry");
    assert!(!k.requeue(&d.id).await.unwrap(), "already queued");
    drain(&k).await;
    let doc = k.meta.document(&d.id).await.unwrap().unwrap();
    assert_eq!((doc.status.as_str(), doc.attempts), ("completed", 1));
    assert!(k.progress().is_empty(), "nothing is in progress once indexed");
    assert_eq!(k.search("org1", &Scope::default(), "lighthouses", 10).await.unwrap().len(), 1);
    assert_eq!(k.bm25.chunk_count(), 1);
}

#[tokio::test]
async fn the_watchdog_gives_up_on_a_document_whose_workers_keep_dying() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = KnowledgeConfig::new(dir.path().join("knowledge"));
    config.lease = Duration::from_millis(50);
    let objects = tale_objects::ObjectStore::open(dir.path().join("objects")).unwrap();
    let k = Knowledge::open(config, objects, true).await.unwrap();
    let d = k.add("org1", "/", "poison.txt", "text/plain", body("A file that takes its worker down every time."), "u1").await.unwrap();
    let mut changes = k.subscribe_changes();
    // Every claim ends without an outcome: the server was killed while indexing it.
    for _ in 0..tale_knowledge::ingest::MAX_ATTEMPTS {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        assert_eq!(k.meta.claim(now, now + 50, 2).await.unwrap().unwrap().id, d.id);
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    assert!(k.process_one().await.unwrap());
    let doc = k.meta.document(&d.id).await.unwrap().unwrap();
    assert_eq!(doc.status, "failed", "not claimed a fourth time");
    assert!(doc.error.as_deref().unwrap().contains("interrupted 3 times"), "{:?}", doc.error);
    assert_eq!(changes.try_recv().unwrap(), "org1");
    // A retry from the UI gets a fresh set of attempts and, the cause gone, indexes it.
    assert!(k.requeue(&d.id).await.unwrap());
    drain(&k).await;
    assert_eq!(k.meta.document(&d.id).await.unwrap().unwrap().status, "completed");
}

#[tokio::test]
async fn per_organisation_caps_leave_room_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let k = open(dir.path()).await;
    for i in 0..3 {
        k.add("big", "/", &format!("{i}.txt"), "text/plain", body("some text to index here"), "u").await.unwrap();
    }
    k.add("small", "/", "s.txt", "text/plain", body("small organisation text"), "u").await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let first = k.meta.claim(now, now + 60_000, 2).await.unwrap().unwrap();
    let second = k.meta.claim(now, now + 60_000, 2).await.unwrap().unwrap();
    let third = k.meta.claim(now, now + 60_000, 2).await.unwrap().unwrap();
    assert_eq!((first.org_id.as_str(), second.org_id.as_str()), ("big", "big"));
    assert_eq!(third.org_id, "small", "the busy organisation is at its cap of 2");
    assert!(k.meta.claim(now, now + 60_000, 2).await.unwrap().is_none());
}

#[tokio::test]
async fn documents_whose_index_commit_fails_are_failed_with_the_reason_not_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let k = open(dir.path()).await;
    let d = k.add("org1", "/", "notes.md", "text/markdown", body("# Notes\n\nThe lighthouse keeper logs every ship."), "u1").await.unwrap();
    // Indexed and staged: the batch commits when the queue is next found empty.
    assert!(k.process_one().await.unwrap());
    assert_eq!(k.meta.document(&d.id).await.unwrap().unwrap().status, "running");
    // The index's directory vanishes (a disk swapped out, an operator's mistake): its commit
    // fails. Moved rather than deleted: the index's own threads may be writing into it, and a
    // rename is atomic where removing a directory being written to is not.
    std::fs::rename(dir.path().join("knowledge/bm25"), dir.path().join("bm25-gone")).unwrap();
    assert!(k.process_one().await.is_err());
    let failed = k.meta.document(&d.id).await.unwrap().unwrap();
    assert_eq!(failed.status, "failed", "not left running until its lease runs out");
    assert!(failed.error.as_deref().unwrap().contains("search index could not be written"), "{:?}", failed.error);
    // The user can retry it from the page (the index itself is rebuilt by re-indexing).
    assert!(k.requeue(&d.id).await.unwrap());
    assert_eq!(k.meta.document(&d.id).await.unwrap().unwrap().status, "queued");
}

/// Uploads arriving together share one insert transaction; a row the database refuses fails its
/// own upload only, and every other document of the group is queued and indexed.
#[tokio::test]
async fn uploads_arriving_together_are_all_kept_and_one_bad_row_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let k = open(dir.path()).await;
    let first = k.add("org1", "/", "first.md", "text/markdown", body("# First\n\nThe first document."), "u1").await.unwrap();
    // Forty more rows for the same original (content-addressed: stored once), and among them
    // the first document's id again, which the database refuses (primary key). On this
    // single-threaded runtime all of them are queued before the inserting task runs, so they
    // meet in one transaction.
    let rows: Vec<_> = (0..41)
        .map(|i| {
            let mut d = first.clone();
            if i != 20 {
                d.id = uuid::Uuid::now_v7().to_string();
                d.name = format!("copy-{i}.md");
            }
            d
        })
        .collect();
    let results = futures_util::future::join_all(rows.iter().map(|d| k.meta.insert_document(d))).await;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_ok(), i != 20, "row {i}: {r:?}");
    }
    drain(&k).await;
    let documents = k.meta.documents("org1", "/", 100).await.unwrap();
    assert_eq!(documents.len(), 41);
    assert!(documents.iter().all(|d| d.status == "completed"), "{documents:?}");
}

/// Idle workers merge a fragmented index only once uploads have stopped for a while, and only in
/// the process that writes the index.
#[tokio::test]
async fn the_index_is_not_merged_while_uploads_go_on_nor_by_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let k = open(dir.path()).await;
    for i in 0..12 {
        k.add("org1", "/", &format!("n{i}.md"), "text/markdown", body(&format!("# Note {i}\n\nThe harbour note number {i}.")), "u1").await.unwrap();
        drain(&k).await; // a commit, and so a segment, each
    }
    let segments = k.bm25.segment_count();
    assert!(!k.merge_if_fragmented().await.unwrap(), "the last commit was just now: not merged");
    let objects = tale_objects::ObjectStore::open(dir.path().join("objects")).unwrap();
    let reader = Knowledge::open(KnowledgeConfig::new(dir.path().join("knowledge")), objects, false).await.unwrap();
    assert!(!reader.merge_if_fragmented().await.unwrap(), "a read-only process never merges");
    assert!(k.bm25.segment_count() <= segments);
    assert_eq!(k.search("org1", &Scope::default(), "harbour note", 20).await.unwrap().len(), 12);
}
