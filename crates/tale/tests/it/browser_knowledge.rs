//! The knowledge base in real headless Chromium, as a user sees it: an Editor picks several files
//! at once (and drops one) into a folder, watches each upload's progress and the rows turn
//! `completed` or `failed` without reloading, filters by folder, searches with the words marked,
//! and deletes a row through the confirm dialog; a Member reads and searches but cannot upload;
//! a chat answer's `[1]` and its Sources list lead to the cited passage, marked on its page.

use crate::browser_chat::sign_in;
use crate::chatkit::{write_agent, write_provider};
use crate::harness::{test_tmp, TestServer, User};
use crate::webdriver::Browser;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tale_core::role::Role;
use tale_testkit::{Script, ScriptedProvider};

const WAIT: Duration = Duration::from_secs(10);

const LIGHTHOUSES: &str = "# Lighthouses\n\nA lighthouse guides ships along rocky coasts at night with a rotating lamp.\n\n## Keepers\n\nKeepers trimmed the wicks every evening and wound the clockwork that turned the lens.";
const KEEPERS_LOG: &str = "The keepers log records the weather, the ships passing and the oil the lamp burned each night.";
const TIDES: &str = "# Tides\n\nThe harbour tide tables list high water twice a day.";
const BREAD: &str = "# Bread\n\nKnead the dough, let it rise, then bake it in a hot oven.";

/// The rows of `#k-documents` as the page shows them.
const ROWS: &str = "return Array.from(document.querySelectorAll('#k-documents tbody tr[data-id]')).map(function (tr) {\
    var e = tr.querySelector('.msg-error');\
    return {id: tr.dataset.id, status: tr.dataset.status, name: tr.cells[0].innerText, folder: tr.cells[1].innerText, error: e ? e.innerText : null,\
            actions: tr.querySelectorAll('td.actions button').length};\
  });";

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Uploads a document over the API (someone else, elsewhere) and returns its id.
async fn upload(ts: &TestServer, user: &User, name: &str, folder: &str, body: &str) -> String {
    let url = ts.url(&format!("/api/orgs/default/knowledge/documents?name={}&folder={}", urlencode(name), urlencode(folder)));
    let r = user.client.post(url).header("x-csrf-token", user.csrf.as_deref().unwrap_or("")).header("content-type", "text/markdown").body(body.to_owned()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    v["document"]["id"].as_str().unwrap().to_owned()
}

/// Waits until no document is queued or being indexed.
async fn indexed(user: &User) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, list) = user.json(reqwest::Method::GET, "/api/orgs/default/knowledge/documents", None).await;
        if list["documents"].as_array().unwrap().iter().all(|d| d["status"] == "completed") {
            return;
        }
        assert!(Instant::now() < deadline, "documents never indexed: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `script` until `done` accepts its value, and returns that value.
async fn wait_until(b: &Browser, script: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let v = b.execute(script, vec![]).await.unwrap();
        if done(&v) {
            return v;
        }
        assert!(started.elapsed() < WAIT, "{what} did not happen within {WAIT:?}; last: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn row<'a>(rows: &'a Value, name: &str) -> Option<&'a Value> {
    rows.as_array().unwrap().iter().find(|r| r["name"].as_str().unwrap().contains(name))
}

/// Submits a search from the page and returns the passages shown: the meta line, the text, and
/// the words inside `<mark>`.
async fn search(b: &Browser, query: &str) -> Vec<Value> {
    b.execute("document.getElementById('k-results').textContent = ''; return true;", vec![]).await.unwrap();
    let q = b.find("#k-query").await.unwrap();
    q.clear().await.unwrap();
    q.send_keys(query).await.unwrap();
    b.find("#knowledge-search button[type=submit]").await.unwrap().click().await.unwrap();
    let shown = wait_until(b, "return document.querySelectorAll('#k-results li').length;", "showing search results", |v| v != &json!(0)).await;
    assert!(shown.as_u64().unwrap() > 0);
    let script = "return Array.from(document.querySelectorAll('#k-results li')).map(function (li) {\
        var meta = li.querySelector('.meta');\
        return {cls: li.className, meta: meta ? meta.innerText : '', text: li.innerText,\
                marks: Array.from(li.querySelectorAll('mark')).map(function (m) { return m.textContent; })};\
      });";
    b.execute(script, vec![]).await.unwrap().as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_uploads_several_files_and_watches_them_indexed_live_in_chromium() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let editor = ts.member("e@example.com", Role::Editor).await;
    upload(&ts, &owner, "bread.md", "/recipes", BREAD).await;
    indexed(&owner).await;

    let files = tempfile::tempdir_in(test_tmp()).unwrap();
    let mut paths = Vec::new();
    for (name, body) in [("lighthouses.md", LIGHTHOUSES), ("keepers-log.txt", KEEPERS_LOG), ("empty.txt", "")] {
        let p = files.path().join(name);
        std::fs::write(&p, body).unwrap();
        paths.push(p.display().to_string());
    }

    let b = Browser::launch().await.expect("chromium and chromedriver must be installed (scripts/test.sh does it)");
    sign_in(&b, &ts, &editor.email).await;
    b.goto(&ts.url("/dashboard/default/knowledge")).await.unwrap();
    b.wait_for_text("#k-counts", "1 indexed, 0 indexing, 0 queued, 0 failed", WAIT).await.unwrap();
    b.wait_for_text("#k-mode", "search runs BM25-only: ", WAIT).await.unwrap();
    assert_eq!(b.find("#k-mode").await.unwrap().attr("data-mode").await.unwrap().as_deref(), Some("bm25"));

    // Every text an upload line shows is recorded, a marker tells whether the page reloads, and
    // the page's fallback (re-reading the list every second while it has no live connection) is
    // counted: the rows must change because the server pushed the changes.
    let watch = "window.__firstLoad = true; window.__uploads = []; window.__polls = 0;\
        var later = window.setTimeout;\
        window.setTimeout = function (f) { if (f && (f.name === 'reload' || f.name === 'refresh')) { window.__polls++; } return later.apply(window, arguments); };\
        var list = document.getElementById('k-uploads');\
        new MutationObserver(function () {\
          list.querySelectorAll('li').forEach(function (li, i) {\
            var seen = window.__uploads[i] || (window.__uploads[i] = []);\
            if (seen[seen.length - 1] !== li.textContent) { seen.push(li.textContent); }\
          });\
        }).observe(list, {childList: true, subtree: true, characterData: true});\
        return true;";
    b.execute(watch, vec![]).await.unwrap();

    // Into /guides: three files picked at once, then one dropped on the drop zone.
    let into = b.find("#k-folder").await.unwrap();
    into.clear().await.unwrap();
    into.send_keys("/guides").await.unwrap();
    b.find("#k-files").await.unwrap().send_keys(&paths.join("\n")).await.unwrap();
    let drop = "var dt = new DataTransfer();\
        dt.items.add(new File([arguments[0]], 'tides.md', {type: 'text/markdown'}));\
        var zone = document.getElementById('k-drop');\
        zone.dispatchEvent(new DragEvent('dragover', {bubbles: true, cancelable: true, dataTransfer: dt}));\
        var over = zone.classList.contains('over');\
        zone.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: dt}));\
        return [over, zone.classList.contains('over')];";
    let highlighted = b.execute(drop, vec![json!(TIDES)]).await.unwrap();
    assert_eq!(highlighted, json!([true, false]), "the drop zone lights up while a file is dragged over it");

    // Each upload shows its progress, then "uploaded, queued".
    let uploads = wait_until(&b, "return window.__uploads;", "four uploads finishing", |v| {
        v.as_array().is_some_and(|a| a.len() == 4 && a.iter().all(|h| h.as_array().unwrap().last().unwrap().as_str().unwrap().ends_with("— uploaded, queued")))
    })
    .await;
    for (history, name) in uploads.as_array().unwrap().iter().zip(["lighthouses.md", "keepers-log.txt", "empty.txt", "tides.md"]) {
        let history: Vec<&str> = history.as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(history[0], format!("{name} — 0%"), "{history:?}");
        assert_eq!(*history.last().unwrap(), format!("{name} — uploaded, queued"), "{history:?}");
        if name != "empty.txt" {
            assert!(history.contains(&format!("{name} — 100%").as_str()), "the upload's progress is shown: {history:?}");
        }
    }

    // The rows follow the indexing without a reload: three indexed, the empty file failed.
    let rows = wait_until(&b, ROWS, "the rows settling", |rows| {
        let settled = |n: &str, s: &str| row(rows, n).is_some_and(|r| r["status"] == s);
        settled("lighthouses.md", "completed") && settled("keepers-log.txt", "completed") && settled("tides.md", "completed") && settled("empty.txt", "failed")
    })
    .await;
    assert_eq!(rows.as_array().unwrap().len(), 5, "{rows}");
    let empty = row(&rows, "empty.txt").unwrap();
    assert_eq!((empty["folder"].as_str(), empty["error"].as_str()), (Some("/guides"), Some("the file is empty")), "{rows}");
    assert!(row(&rows, "lighthouses.md").unwrap()["name"].as_str().unwrap().starts_with("Lighthouses"), "the title is shown: {rows}");
    b.wait_for_text("#k-counts", "4 indexed, 0 indexing, 0 queued, 1 failed", WAIT).await.unwrap();
    b.wait_for_text("#k-documents tr[data-status='failed'] .msg-error", "the file is empty", WAIT).await.unwrap();
    assert_eq!(b.execute("return window.__firstLoad === true;", vec![]).await.unwrap(), json!(true), "the page was never reloaded");
    assert_eq!(b.execute("return window.__polls;", vec![]).await.unwrap(), json!(0), "the changes were pushed, not polled for");

    // The folder filter knows /guides, and choosing it hides the other folders' documents.
    let options = b.execute("return Array.from(document.querySelectorAll('#k-folder-filter option')).map(function (o) { return o.value; });", vec![]).await.unwrap();
    assert_eq!(options, json!(["", "/guides", "/recipes"]));
    b.find("#k-folder-filter").await.unwrap().select_by_value("/guides").await.unwrap();
    let rows = wait_until(&b, ROWS, "the filter applying", |rows| row(rows, "bread.md").is_none()).await;
    assert_eq!(rows.as_array().unwrap().len(), 4, "{rows}");
    assert!(rows.as_array().unwrap().iter().all(|r| r["folder"] == "/guides"), "{rows}");

    // Searches run within the chosen folder and mark the query's words in each passage.
    let found = search(&b, "keepers wicks").await;
    assert!(found.iter().all(|p| p["cls"] == "passage"), "{found:?}");
    assert!(found[0]["meta"].as_str().unwrap().starts_with("lighthouses.md"), "{found:?}");
    assert!(found[0]["text"].as_str().unwrap().contains("Keepers trimmed the wicks"), "{found:?}");
    for p in &found {
        let marks: Vec<String> = p["marks"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_lowercase()).collect();
        assert!(!marks.is_empty() && marks.iter().all(|m| m == "keepers" || m == "wicks"), "{p}");
    }
    let marks = found[0]["marks"].as_array().unwrap();
    assert!(marks.contains(&json!("Keepers")) && marks.contains(&json!("wicks")), "{found:?}");
    assert!(found.iter().any(|p| p["meta"].as_str().unwrap().starts_with("keepers-log.txt")), "{found:?}");
    let none = search(&b, "dough").await;
    assert_eq!((none.len(), none[0]["text"].as_str()), (1, Some("No passage matches.")), "bread.md is in /recipes: {none:?}");
    b.find("#k-folder-filter").await.unwrap().select_by_value("").await.unwrap();
    wait_until(&b, ROWS, "the filter clearing", |rows| row(rows, "bread.md").is_some()).await;
    let bread = search(&b, "dough").await;
    assert!(bread[0]["meta"].as_str().unwrap().starts_with("bread.md") && bread[0]["marks"] == json!(["dough"]), "{bread:?}");

    // Delete asks first: dismissed, the row stays; accepted, it goes, and the counts follow.
    let id = row(&rows, "keepers-log.txt").unwrap()["id"].as_str().unwrap().to_owned();
    let delete = format!("#k-documents tr[data-id='{id}'] button.danger");
    b.find(&delete).await.unwrap().click().await.unwrap();
    assert_eq!(b.alert_text().await.unwrap().as_deref(), Some("Delete keepers-log.txt? Its passages leave every search at once."));
    assert!(b.dismiss_alert().await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.find(&format!("#k-documents tr[data-id='{id}']")).await.unwrap();
    let (_, list) = editor.json(reqwest::Method::GET, "/api/orgs/default/knowledge/documents", None).await;
    assert_eq!(list["documents"].as_array().unwrap().len(), 5, "nothing deleted: {list}");
    b.find(&delete).await.unwrap().click().await.unwrap();
    assert!(b.accept_alert().await.unwrap());
    b.wait_until_gone(&format!("#k-documents tr[data-id='{id}']"), WAIT).await.unwrap();
    b.wait_for_text("#k-counts", "3 indexed, 0 indexing, 0 queued, 1 failed", WAIT).await.unwrap();
    let (_, list) = editor.json(reqwest::Method::GET, "/api/orgs/default/knowledge/documents", None).await;
    assert!(list["documents"].as_array().unwrap().iter().all(|d| d["id"] != id.as_str()), "{list}");
    let after = search(&b, "keepers").await;
    assert!(after.iter().all(|p| !p["meta"].as_str().unwrap().starts_with("keepers-log.txt")), "{after:?}");
    assert_eq!(b.execute("return window.__firstLoad === true;", vec![]).await.unwrap(), json!(true), "the page was never reloaded");
    assert_eq!(b.execute("return window.__polls;", vec![]).await.unwrap(), json!(0), "the changes were pushed, not polled for");

    let errors = b.console_errors().await.unwrap();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reads_and_searches_but_cannot_upload_in_chromium() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let member = ts.member("m@example.com", Role::Member).await;
    upload(&ts, &owner, "lighthouses.md", "/guides", LIGHTHOUSES).await;
    indexed(&owner).await;

    let b = Browser::launch().await.expect("chromium and chromedriver must be installed (scripts/test.sh does it)");
    sign_in(&b, &ts, &member.email).await;
    b.goto(&ts.url("/dashboard/default/knowledge")).await.unwrap();
    b.wait_for_text("#k-counts", "1 indexed, 0 indexing, 0 queued, 0 failed", WAIT).await.unwrap();
    for absent in ["#upload-heading", "#k-drop", "#k-files", "#k-folder", "#k-uploads"] {
        assert!(b.find_all(absent).await.unwrap().is_empty(), "a Member sees no {absent}");
    }
    let rows = b.execute(ROWS, vec![]).await.unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!((rows[0]["status"].as_str(), rows[0]["actions"].as_u64()), (Some("completed"), Some(0)), "no Re-index or Delete: {rows}");

    // A document someone else adds appears on its own.
    upload(&ts, &owner, "tides.md", "/harbour", TIDES).await;
    wait_until(&b, ROWS, "the new document appearing", |rows| row(rows, "tides.md").is_some_and(|r| r["status"] == "completed" && r["actions"] == 0)).await;
    b.wait_for_text("#k-counts", "2 indexed", WAIT).await.unwrap();

    let found = search(&b, "who trimmed the wicks").await;
    assert!(found[0]["meta"].as_str().unwrap().starts_with("lighthouses.md"), "{found:?}");
    let marks: Vec<&str> = found[0]["marks"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!(marks.contains(&"wicks") && marks.contains(&"trimmed"), "{found:?}");
    assert!(marks.iter().all(|m| ["who", "trimmed", "the", "wicks"].contains(m)), "only the query's words are marked: {marks:?}");

    let errors = b.console_errors().await.unwrap();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.quit().await.unwrap();
}

/// Checks the current tab is the document page with the cited passage marked and in view.
async fn shows_the_cited_passage(b: &Browser, doc: &str, chunk: &str) {
    let started = Instant::now();
    loop {
        let url = b.current_url().await.unwrap();
        if url.contains(&format!("/dashboard/default/knowledge/documents/{doc}?chunk=")) && url.ends_with("#passage") {
            break;
        }
        assert!(started.elapsed() < WAIT, "the citation did not open the document; at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.wait_for_text("main h1", "Lighthouses", WAIT).await.unwrap();
    let passage = b.find("#passage").await.unwrap();
    assert!(passage.displayed().await.unwrap());
    assert_eq!(passage.attr("class").await.unwrap().as_deref(), Some("passage"));
    assert_eq!(passage.attr("aria-current").await.unwrap().as_deref(), Some("true"));
    assert_eq!(passage.attr("data-chunk").await.unwrap().as_deref(), Some(chunk));
    let text = passage.text().await.unwrap();
    assert!(text.contains("Keepers trimmed the wicks") && text.contains("cited"), "{text}");
    assert_eq!(b.find_all("ol.chunks li.passage").await.unwrap().len(), 1, "one passage is marked");
    let in_view = "var r = document.getElementById('passage').getBoundingClientRect(); return r.top >= 0 && r.top < window.innerHeight;";
    assert_eq!(b.execute(in_view, vec![]).await.unwrap(), json!(true), "the marked passage is in view");
    // It stands out from its neighbours.
    let look = "var s = getComputedStyle(document.getElementById('passage')); return s.backgroundColor !== 'rgba(0, 0, 0, 0)' && s.borderLeftColor !== 'rgba(0, 0, 0, 0)';";
    assert_eq!(b.execute(look, vec![]).await.unwrap(), json!(true), "the marked passage is highlighted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cited_answer_lists_its_sources_and_links_to_the_marked_passage_in_chromium() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let member = ts.member("m@example.com", Role::Member).await;
    let doc = upload(&ts, &owner, "lighthouses.md", "/maritime", LIGHTHOUSES).await;
    upload(&ts, &owner, "bread.md", "/recipes", BREAD).await;
    indexed(&owner).await;
    let upstream = ScriptedProvider::start().await;
    write_provider(&ts, &upstream);
    write_agent(&ts, "librarian", json!({"displayName": "Librarian", "knowledgeMode": "tool", "includeOrgKnowledge": true, "toolNames": []}));
    upstream.push(Script::calls(&[("s1", "rag_search", r#"{"query":"who trimmed the wicks"}"#)]));
    upstream.push(Script::text("Keepers trimmed the wicks every evening [1]."));

    let b = Browser::launch().await.expect("chromium and chromedriver must be installed (scripts/test.sh does it)");
    sign_in(&b, &ts, &member.email).await;
    b.goto(&ts.url("/dashboard/default/chat")).await.unwrap();
    b.find("#agent-picker").await.unwrap().select_by_value("librarian").await.unwrap();
    b.find("#composer-text").await.unwrap().send_keys("Who trimmed the wicks?").await.unwrap();
    b.find("#composer-send").await.unwrap().click().await.unwrap();
    let answer = "#messages li.msg.assistant[data-status='complete']";
    b.wait_for_text(&format!("{answer} .body"), "Keepers trimmed the wicks every evening", WAIT).await.unwrap();
    let thread_url = b.current_url().await.unwrap();
    assert!(thread_url.contains("/dashboard/default/chat/"), "{thread_url}");

    // What the API recorded is what the page links to.
    let thread = thread_url.rsplit('/').next().unwrap();
    let (_, view) = member.json(reqwest::Method::GET, &format!("/api/orgs/default/threads/{thread}"), None).await;
    let cite = view["messages"][1]["parts"].as_array().unwrap().iter().find(|p| p["type"] == "citation" && p["n"] == 1).unwrap_or_else(|| panic!("no citation 1: {view}")).clone();
    let href = cite["href"].as_str().unwrap().to_owned();
    let chunk = cite["chunkId"].as_str().unwrap().to_owned();

    // Live (chat.js) and server-rendered (after a reload) the answer shows the same thing.
    for rendered in ["live", "reloaded"] {
        if rendered == "reloaded" {
            b.goto(&thread_url).await.unwrap();
        }
        b.wait_for_text(&format!("{answer} section.sources h3"), "Sources", WAIT).await.unwrap();
        let source = b.find(&format!("{answer} section.sources li[data-cite='1'] a")).await.unwrap();
        assert_eq!(source.attr("href").await.unwrap().as_deref(), Some(href.as_str()), "{rendered}");
        assert!(source.text().await.unwrap().starts_with("Lighthouses"), "{rendered}");
        let excerpt = b.find(&format!("{answer} section.sources li[data-cite='1'] .excerpt")).await.unwrap();
        assert!(excerpt.text().await.unwrap().contains("Keepers trimmed the wicks"), "{rendered}");
        let marker = b.find(&format!("{answer} .body a.cite")).await.unwrap();
        assert_eq!(marker.text().await.unwrap(), "[1]", "{rendered}");
        assert_eq!(marker.attr("href").await.unwrap().as_deref(), Some(href.as_str()), "{rendered}");
        let cited = b.find_all(&format!("{answer} section.sources > ol > li")).await.unwrap();
        assert_eq!(cited.len(), 1, "{rendered}: the answer cites one passage");
    }

    // [1] opens the document in a new tab with the passage marked; so does the Sources entry.
    let chat_tab = b.window_handle().await.unwrap();
    for link in [format!("{answer} .body a.cite"), format!("{answer} section.sources li[data-cite='1'] a")] {
        let before = b.window_handles().await.unwrap();
        b.find(&link).await.unwrap().click().await.unwrap();
        let started = Instant::now();
        let opened = loop {
            let now = b.window_handles().await.unwrap();
            if let Some(h) = now.iter().find(|h| !before.contains(h)) {
                break h.clone();
            }
            assert!(started.elapsed() < WAIT, "{link} opened no tab");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        b.switch_to(&opened).await.unwrap();
        shows_the_cited_passage(&b, &doc, &chunk).await;
        let errors = b.console_errors().await.unwrap();
        assert!(errors.is_empty(), "console errors on the document page: {errors:?}");
        b.switch_to(&chat_tab).await.unwrap();
    }

    let errors = b.console_errors().await.unwrap();
    assert!(errors.is_empty(), "console errors in the chat: {errors:?}");
    b.quit().await.unwrap();
}
