//! The knowledge base in chat: the `rag_search`, `document_find` and `document_retrieve` tools,
//! `context` mode, citations on the answer and the passage page they link to, and a knowledge
//! store that stops answering.

use crate::chatkit::{finished, write_agent, write_provider};
use crate::harness::{TestServer, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tale_core::role::Role;
use tale_testkit::{Script, ScriptedProvider};

const LIGHTHOUSES: &str = "# Lighthouses\n\nA lighthouse guides ships along rocky coasts at night with a rotating lamp.\n\n## Keepers\n\nKeepers trimmed the wicks every evening and wound the clockwork that turned the lens.";

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Uploads a document and returns its id.
async fn upload(ts: &TestServer, user: &User, name: &str, folder: &str, kind: &str, body: &str) -> String {
    let url = ts.url(&format!("/api/orgs/default/knowledge/documents?name={}&folder={}", urlencode(name), urlencode(folder)));
    let r = user.client.post(url).header("x-csrf-token", user.csrf.as_deref().unwrap_or("")).header("content-type", kind).body(body.to_owned()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    v["document"]["id"].as_str().unwrap().to_owned()
}

/// Waits until no document is queued or being indexed.
async fn indexed(user: &User) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, list) = user.json(Method::GET, "/api/orgs/default/knowledge/documents", None).await;
        let docs = list["documents"].as_array().unwrap();
        if docs.iter().all(|d| d["status"] == "completed") {
            return;
        }
        assert!(Instant::now() < deadline, "documents never indexed: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The scripted upstream, the local provider, and the `librarian` agent with `fields` on top.
async fn librarian(ts: &TestServer, fields: Value) -> ScriptedProvider {
    let upstream = ScriptedProvider::start().await;
    write_provider(ts, &upstream);
    let mut agent = json!({"knowledgeMode": "tool", "includeOrgKnowledge": true, "toolNames": ["document_find", "document_retrieve"]});
    for (k, v) in fields.as_object().unwrap() {
        agent[k] = v.clone();
    }
    write_agent(ts, "librarian", agent);
    upstream
}

/// Starts a thread with `librarian`; waits for the answer and returns (thread id, answer).
async fn ask(user: &User, question: &str) -> (String, Value) {
    let (s, body) = user.json(Method::POST, "/api/orgs/default/threads", Some(json!({"agent": "librarian", "message": question}))).await;
    assert_eq!(s, 201, "{body}");
    let thread = body["thread"]["id"].as_str().unwrap().to_owned();
    let answer = finished(user, &thread, body["answer"]["id"].as_str().unwrap()).await;
    assert_eq!(answer["status"], "complete", "{answer}");
    (thread, answer)
}

fn citations(answer: &Value) -> Vec<Value> {
    answer["parts"].as_array().unwrap().iter().filter(|p| p["type"] == "citation").cloned().collect()
}

/// What the model was told for a tool call, from the request after it.
fn told(request: &Value, call: &str) -> String {
    let m = request["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool" && m["tool_call_id"] == call);
    m.unwrap_or_else(|| panic!("no result for {call}: {request}"))["content"].as_str().unwrap().to_owned()
}

fn offered(request: &Value) -> Vec<String> {
    request["tools"].as_array().map(|t| t.iter().map(|t| t["function"]["name"].as_str().unwrap().to_owned()).collect()).unwrap_or_default()
}

async fn run_log(user: &User, answer: &Value) -> Value {
    let (s, run) = user.json(Method::GET, &format!("/api/orgs/default/runs/{}", answer["runId"].as_str().unwrap()), None).await;
    assert_eq!(s, 200, "{run}");
    run["run"]["log"].clone()
}

fn warnings(log: &Value) -> Vec<String> {
    log["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_answer_cites_the_passages_rag_search_found_and_links_to_them() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let member = ts.member("m@example.com", Role::Member).await;
    let doc = upload(&ts, &owner, "lighthouses.md", "/maritime", "text/markdown", LIGHTHOUSES).await;
    upload(&ts, &owner, "recipes.txt", "/", "text/plain", "Bake bread at two hundred degrees for forty minutes.").await;
    indexed(&owner).await;
    let upstream = librarian(&ts, json!({})).await;
    upstream.push(Script::calls(&[("s1", "rag_search", r#"{"query":"who trimmed the wicks"}"#)]));
    upstream.push(Script::text("Keepers trimmed the wicks every evening [1]."));

    let (thread, answer) = ask(&member, "Who trimmed the wicks?").await;

    let requests = upstream.requests();
    assert_eq!(offered(&requests[0].1), ["document_find", "document_retrieve", "rag_search"], "the mode adds rag_search to the listed tools");
    let result = told(&requests[1].1, "s1");
    assert!(result.contains("Cite a passage by its marker, e.g. [1]"), "{result}");
    assert!(result.contains("[1] Lighthouses") && result.contains("file lighthouses.md, folder /maritime"), "{result}");
    assert!(result.contains("Keepers trimmed the wicks every evening"), "{result}");

    let cited = citations(&answer);
    let first = cited.iter().find(|c| c["n"] == 1).unwrap_or_else(|| panic!("no citation 1: {answer}"));
    assert_eq!(first["documentId"], doc.as_str());
    assert_eq!(first["document"], "lighthouses.md");
    assert_eq!(first["title"], "Lighthouses");
    assert_eq!(first["folder"], "/maritime");
    assert!(first["text"].as_str().unwrap().contains("Keepers trimmed the wicks"), "{first}");
    let chunk = first["chunkId"].as_str().unwrap();
    let href = first["href"].as_str().unwrap();
    assert!(href.starts_with(&format!("/dashboard/default/knowledge/documents/{doc}?chunk=")) && href.ends_with("#passage"), "{href}");
    assert!(cited.iter().all(|c| c["documentId"] == doc.as_str()), "the bread recipe does not answer: {cited:?}");

    // The marker is a link to the passage, in the answer as stored and on the page.
    let html = answer["html"].as_str().unwrap();
    assert!(html.contains(&format!("<a class=\"cite\" href=\"{}\"", href.replace('&', "&amp;"))), "{html}");
    let page = member.get(&format!("/dashboard/default/chat/{thread}")).await.text().await.unwrap();
    assert!(page.contains("class=\"cite\"") && page.contains("aria-label=\"Sources\""), "the thread page shows the sources");

    // The passage page shows the document with the cited chunk marked.
    let r = member.get(href.trim_end_matches("#passage")).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let marked = page.find("id=\"passage\"").unwrap_or_else(|| panic!("no marked passage: {page}"));
    assert!(page[marked..].contains("Keepers trimmed the wicks"), "{page}");
    assert!(page.contains(&format!("data-chunk=\"{chunk}\"")), "{page}");
    // Another organisation's member cannot open it.
    let (s, _) = owner.json(Method::POST, "/api/orgs", Some(json!({"name": "Other", "slug": "other"}))).await;
    assert_eq!(s, 201);
    let r = owner.get(&format!("/dashboard/other/knowledge/documents/{doc}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let log = run_log(&member, &answer).await;
    let step = log["steps"].as_array().unwrap().iter().find(|s| s["callId"] == "s1").unwrap().clone();
    assert_eq!(step["status"], "ok", "{step}");
    // No embedding model in tests: the run log says search had keywords only.
    let w = warnings(&log);
    assert_eq!(w.len(), 1, "{log}");
    assert!(w[0].starts_with("knowledge: search runs BM25-only: "), "{w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_find_filters_and_document_retrieve_pages_through_a_document() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    // About 25 chunks of 2,048 characters: more than two pages of ten.
    let mut long = String::from("# Handbook\n\n");
    for i in 1..=40 {
        long.push_str(&format!("## Rule {i}\n\n{}\n\n", format!("Rule {i} says the lamp must be lit and the log kept. ").repeat(24)));
    }
    let handbook = upload(&ts, &owner, "keepers-handbook.md", "/maritime/rules", "text/markdown", &long).await;
    upload(&ts, &owner, "lighthouses.md", "/maritime", "text/markdown", LIGHTHOUSES).await;
    upload(&ts, &owner, "prices.csv", "/finance", "text/csv", "item,price\nlamp oil,12\nwick,3\n").await;
    indexed(&owner).await;
    let (_, list) = owner.json(Method::GET, "/api/orgs/default/knowledge/documents", None).await;
    let chunks = list["documents"].as_array().unwrap().iter().find(|d| d["id"] == handbook.as_str()).unwrap()["chunkCount"].as_i64().unwrap();
    assert!(chunks > 20, "{list}");

    let upstream = librarian(&ts, json!({"knowledgeMode": "off"})).await;
    upstream.push(Script::calls(&[
        ("f1", "document_find", r#"{"name": "keeper handbok"}"#),
        ("f2", "document_find", r#"{"type": "csv"}"#),
        ("f3", "document_find", r#"{"folder": "/maritime", "uploaded_after": "2000-01-01"}"#),
        ("f4", "document_find", r#"{"uploaded_before": "2000-01-01"}"#),
        ("f5", "document_find", r#"{"uploaded_after": "last week"}"#),
    ]));
    let retrieve = |id: &str, args: &str| (id.to_owned(), "document_retrieve".to_owned(), args.to_owned());
    let calls = [
        retrieve("r1", &format!(r#"{{"document_id": "{handbook}"}}"#)),
        retrieve("r2", &format!(r#"{{"document_id": "{handbook}", "from": 11}}"#)),
        retrieve("r3", &format!(r#"{{"document_id": "{handbook}", "from": {chunks}}}"#)),
        retrieve("r4", r#"{"document_id": "no-such-document"}"#),
    ];
    upstream.push(Script::Reply { deltas: Vec::new(), tool_calls: calls.to_vec(), usage: (20, 5), first_token_delay: Duration::ZERO, delta_delay: Duration::ZERO });
    upstream.push(Script::text("Rule 12 says to keep the log [12]."));

    let (_, answer) = ask(&owner, "What does the handbook say?").await;
    let requests = upstream.requests();
    assert_eq!(offered(&requests[0].1), ["document_find", "document_retrieve"], "knowledgeMode off: no rag_search");

    let found = told(&requests[1].1, "f1");
    assert!(found.starts_with("1 documents match") && found.contains("keepers-handbook.md") && found.contains(&format!("document_id {handbook}")), "{found}");
    let csv = told(&requests[1].1, "f2");
    assert!(csv.contains("prices.csv") && !csv.contains("lighthouses.md"), "{csv}");
    let maritime = told(&requests[1].1, "f3");
    assert!(maritime.starts_with("2 documents match") && !maritime.contains("prices.csv"), "{maritime}");
    assert!(told(&requests[1].1, "f4").starts_with("No document matches"));
    assert!(told(&requests[1].1, "f5").contains("YYYY-MM-DD"), "a bad date is explained");

    let first = told(&requests[2].1, "r1");
    assert!(first.starts_with(&format!("keepers-handbook.md: chunks 1–10 of {chunks}.")), "{first}");
    assert!(first.contains("[1] Handbook") && first.contains("[10] Handbook"), "{first}");
    assert!(first.contains(&format!("call document_retrieve with document_id {handbook} and from 11")), "{first}");
    let second = told(&requests[2].1, "r2");
    assert!(second.starts_with(&format!("keepers-handbook.md: chunks 11–20 of {chunks}.")), "{second}");
    assert!(second.contains("[11] Handbook") && second.contains("chunk 11)"), "numbering continues across calls: {second}");
    let last = told(&requests[2].1, "r3");
    assert!(last.contains(&format!("chunks {chunks}–{chunks} of {chunks}")) && last.ends_with("That is the end of the document."), "{last}");
    assert!(told(&requests[2].1, "r4").contains("there is no document 'no-such-document'"));

    let cited = citations(&answer);
    assert_eq!(cited.len(), 21, "every chunk the model read is recorded once");
    let twelfth = cited.iter().find(|c| c["n"] == 12).unwrap();
    assert_eq!((twelfth["documentId"].as_str(), twelfth["position"].as_i64()), (Some(handbook.as_str()), Some(11)));
    assert!(answer["html"].as_str().unwrap().contains(&format!("?chunk={}", urlencode(twelfth["chunkId"].as_str().unwrap()))));

    // The passage page opens near the cited chunk and pages onwards from there.
    let page = owner.get(twelfth["href"].as_str().unwrap().trim_end_matches("#passage")).await.text().await.unwrap();
    assert!(page.contains("Passages 10–19 of"), "{page}");
    assert!(page.contains("Later passages"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_mode_adds_numbered_passages_to_the_question_each_turn() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let member = ts.member("m@example.com", Role::Member).await;
    let doc = upload(&ts, &owner, "lighthouses.md", "/maritime", "text/markdown", LIGHTHOUSES).await;
    indexed(&owner).await;
    let upstream = librarian(&ts, json!({"knowledgeMode": "context", "toolNames": [], "knowledgeTopK": 3})).await;
    upstream.push(Script::text("The keepers did [1]."));
    let question = "Who trimmed the wicks of the lighthouse?";
    let (thread, answer) = ask(&member, question).await;

    let sent = &upstream.requests()[0].1;
    assert!(offered(sent).is_empty(), "context mode offers no search tool: {sent}");
    let user = sent["messages"].as_array().unwrap().iter().rfind(|m| m["role"] == "user").unwrap()["content"].as_str().unwrap().to_owned();
    assert!(user.starts_with(question), "{user}");
    assert!(user.contains("<knowledge_base>") && user.contains("[1] Lighthouses") && user.contains("Keepers trimmed the wicks"), "{user}");
    let cited = citations(&answer);
    assert_eq!(cited[0]["documentId"], doc.as_str());
    assert!(answer["html"].as_str().unwrap().contains("class=\"cite\""));
    let (_, view) = member.json(Method::GET, &format!("/api/orgs/default/threads/{thread}"), None).await;
    assert_eq!(view["messages"][0]["content"], question, "the stored question is what the user wrote");
    let log = run_log(&member, &answer).await;
    let step = log["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "knowledge").unwrap().clone();
    assert!(step["passages"].as_u64().unwrap() >= 1 && step["error"].is_null(), "{step}");

    // `both`: the search tool too, and a passage found again keeps its number.
    write_agent(&ts, "librarian", json!({"knowledgeMode": "both", "includeOrgKnowledge": true, "toolNames": [], "knowledgeTopK": 1}));
    upstream.push(Script::calls(&[("s1", "rag_search", r#"{"query":"keepers wicks"}"#)]));
    upstream.push(Script::text("Keepers [1]."));
    let (_, answer) = ask(&member, "Tell me about lighthouse keepers").await;
    let requests = upstream.requests();
    assert_eq!(offered(&requests[1].1), ["rag_search"]);
    assert!(requests[1].1["messages"].to_string().contains("<knowledge_base>"));
    assert!(told(&requests[2].1, "s1").contains("[1] Lighthouses"), "the same chunk, the same number");
    assert_eq!(citations(&answer).len(), 1);

    // Without organisation-wide knowledge the agent reads nothing, and the log says why.
    write_agent(&ts, "librarian", json!({"knowledgeMode": "context", "toolNames": []}));
    upstream.push(Script::text("I cannot see any documents."));
    let (_, answer) = ask(&member, "Who trimmed the wicks?").await;
    assert!(!upstream.requests()[3].1["messages"].to_string().contains("<knowledge_base>"));
    assert!(citations(&answer).is_empty());
    let w = warnings(&run_log(&member, &answer).await);
    assert!(w.iter().any(|w| w.contains("includeOrgKnowledge is false")), "{w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_knowledge_store_fails_the_tools_find_nothing_and_the_run_log_warns() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    upload(&ts, &owner, "lighthouses.md", "/maritime", "text/markdown", LIGHTHOUSES).await;
    indexed(&owner).await;
    // The store breaks under the running server: its chunks are gone from where it reads them.
    let db = ts.server.as_ref().unwrap().knowledge.dir().join("knowledge.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
    let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
    sqlx::query("ALTER TABLE chunks RENAME TO chunks_elsewhere").execute(&mut conn).await.unwrap();

    let upstream = librarian(&ts, json!({"knowledgeMode": "both"})).await;
    upstream.push(Script::calls(&[("s1", "rag_search", r#"{"query":"wicks"}"#)]));
    upstream.push(Script::text("The knowledge base is unavailable right now."));
    let (_, answer) = ask(&owner, "Who trimmed the wicks?").await;
    assert_eq!(answer["content"], "The knowledge base is unavailable right now.");
    assert!(citations(&answer).is_empty());
    let requests = upstream.requests();
    assert!(!requests[0].1["messages"].to_string().contains("<knowledge_base>"));
    assert!(told(&requests[1].1, "s1").contains("cannot be searched right now"));
    let tool = answer["parts"].as_array().unwrap().iter().find(|p| p["id"] == "s1").unwrap().clone();
    assert_eq!(tool["status"], "ok", "an empty result, not a failed call");
    let log = run_log(&owner, &answer).await;
    let w = warnings(&log);
    assert!(w.iter().any(|w| w.starts_with("knowledge context: the knowledge base is unavailable")), "{w:?}");
    assert!(w.iter().any(|w| w.starts_with("tool call 'rag_search': the knowledge base is unavailable")), "{w:?}");

    // Chats without knowledge are untouched.
    write_agent(&ts, "librarian", json!({"knowledgeMode": "off", "toolNames": []}));
    upstream.push(Script::text("Hello."));
    let (_, answer) = ask(&owner, "Hi").await;
    assert_eq!(answer["content"], "Hello.");
    assert!(warnings(&run_log(&owner, &answer).await).is_empty());
}
