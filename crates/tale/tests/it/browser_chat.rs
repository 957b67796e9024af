//! The chat end to end in real headless Chromium: pick an agent, send a question, watch the answer
//! stream in token by token, watch it in a second tab of the same session too, then stop a long
//! answer from one tab and see both tabs (and the API) agree that it stopped with its text kept.

use crate::chatkit;
use crate::harness::{TestServer, PASSWORD};
use crate::webdriver::Browser;
use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, Instant};
use tale_testkit::Script;

const WAIT: Duration = Duration::from_secs(10);
/// One delta every 40 ms: slow enough that a poll sees the text between tokens.
const PACE: Duration = Duration::from_millis(40);
/// WebDriver's key codes.
const ENTER: char = '\u{E007}';
const SHIFT: char = '\u{E008}';

/// `count` distinct words (`river1 river2 …`), so a prefix of the answer is easy to recognise and
/// Markdown renders it as one plain paragraph.
fn words(stem: &str, count: usize) -> String {
    (1..=count).map(|i| format!("{stem}{i}")).collect::<Vec<_>>().join(" ")
}

/// The newest assistant message as the current tab shows it.
#[derive(Debug)]
struct Shown {
    /// `data-status` of the `li.msg`.
    status: String,
    /// The meta line ("Assistant · local:llm · writing…").
    meta: String,
    /// The body's rendered text.
    text: String,
}

/// Reads the newest assistant message in one script call, so status and text are from the same
/// moment; `None` while there is none.
async fn last_answer(b: &Browser) -> Option<Shown> {
    let script = "const all = document.querySelectorAll('#messages li.msg.assistant');\
        const li = all[all.length - 1];\
        if (!li) { return null; }\
        return {status: li.dataset.status, meta: li.querySelector('.meta').innerText, text: li.querySelector('.body').innerText};";
    let v = b.execute(script, vec![]).await.unwrap();
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    (!v.is_null()).then(|| Shown { status: s("status"), meta: s("meta"), text: s("text") })
}

/// Polls the current tab until the newest answer has shown `want` different partial texts while
/// streaming. Every observation is checked: the text only grows, is a prefix of `full`, the meta
/// line says "writing…" and the Stop button is visible. Returns the partial lengths seen.
async fn watch_growth(b: &Browser, full: &str, want: usize) -> Vec<usize> {
    let started = Instant::now();
    let mut lengths: Vec<usize> = Vec::new();
    loop {
        let now = last_answer(b).await;
        if let Some(a) = now.as_ref().filter(|a| a.status == "streaming") {
            let text = a.text.trim_end();
            assert!(full.starts_with(text), "the tab shows text that was not streamed: {text:?}");
            assert!(a.meta.contains("writing…"), "meta while streaming: {:?}", a.meta);
            if let Some(&last) = lengths.last() {
                assert!(text.len() >= last, "the text shrank from {last} to {} characters", text.len());
            }
            if !text.is_empty() && lengths.last() != Some(&text.len()) {
                lengths.push(text.len());
                let stop = b.find("#composer-stop").await.unwrap();
                assert!(stop.displayed().await.unwrap(), "Stop is visible while the answer is written");
            }
            if lengths.len() >= want {
                return lengths;
            }
        }
        assert!(started.elapsed() < WAIT, "saw only {lengths:?} while streaming within {WAIT:?}; now: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the newest answer in the current tab has `status`, and returns it.
async fn wait_for_status(b: &Browser, status: &str, timeout: Duration) -> Shown {
    let started = Instant::now();
    loop {
        match last_answer(b).await {
            Some(a) if a.status == status => return a,
            now => assert!(started.elapsed() < timeout, "the answer never became {status} within {timeout:?}: {now:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the tab to be on a thread's page and returns the thread id from its URL.
async fn wait_for_thread_url(b: &Browser) -> String {
    let started = Instant::now();
    loop {
        let url = b.current_url().await.unwrap();
        if let Some((_, id)) = url.split_once("/dashboard/default/chat/")
            && !id.is_empty()
        {
            return id.to_owned();
        }
        assert!(started.elapsed() < WAIT, "sending did not open the new chat; still at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs in through the page, as a person would.
pub(crate) async fn sign_in(b: &Browser, ts: &TestServer, email: &str) {
    b.goto(&ts.url("/sign-in")).await.unwrap();
    b.find("#sign-in-email").await.unwrap().send_keys(email).await.unwrap();
    b.find("#sign-in-password").await.unwrap().send_keys(PASSWORD).await.unwrap();
    b.find("#sign-in-form button[type=submit]").await.unwrap().click().await.unwrap();
    b.wait_for_text("main h1", "Default", WAIT).await.unwrap();
}

fn no_console_errors(errors: &[String], tab: &str) {
    assert!(errors.is_empty(), "console errors in {tab}: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_answer_in_two_tabs_and_stop_in_chromium() {
    let ts = TestServer::boot().await;
    let upstream = chatkit::setup(&ts).await;
    let owner = ts.owner().await;
    let b = Browser::launch().await.expect("chromium and chromedriver must be installed (scripts/test.sh does it)");
    sign_in(&b, &ts, &owner.email).await;

    // A new chat: pick the agent, type, send. The page moves to the new thread.
    let first = words("river", 60); // ≈ 120 deltas of 4 characters: about 5 s of streaming
    upstream.push(Script::paced(&first, PACE));
    b.goto(&ts.url("/dashboard/default/chat")).await.unwrap();
    let stop = b.find("#composer-stop").await.unwrap();
    assert!(!stop.displayed().await.unwrap(), "no Stop button before anything is written");
    b.find("#agent-picker").await.unwrap().select_by_value("helper").await.unwrap();
    b.find("#composer-text").await.unwrap().send_keys("Tell me about rivers").await.unwrap();
    b.find("#composer-send").await.unwrap().click().await.unwrap();
    let thread = wait_for_thread_url(&b).await;
    let tab_a = b.window_handle().await.unwrap();
    b.wait_for_text("#messages li.msg.user", "Tell me about rivers", WAIT).await.unwrap();
    b.wait_for_text("#thread-list a[aria-current='page']", "Tell me about rivers", WAIT).await.unwrap();
    b.wait_for_text("#chat-title", "Tell me about rivers", WAIT).await.unwrap();

    // The answer grows in front of the user, token by token.
    let seen_a = watch_growth(&b, &first, 2).await;

    // A second tab of the same session opens the thread mid-answer and sees it grow as well.
    let tab_b = b.new_window().await.unwrap();
    b.switch_to(&tab_b).await.unwrap();
    b.goto(&ts.url(&format!("/dashboard/default/chat/{thread}"))).await.unwrap();
    let seen_b = watch_growth(&b, &first, 2).await;
    assert!(seen_b[0] > seen_a[0], "the second tab starts from what was already written: {seen_a:?} then {seen_b:?}");
    assert!(seen_b[1] < first.len(), "the second tab saw the answer while it was written: {seen_b:?}");

    // Both end with the whole answer, the same in each tab, and no Stop button.
    let done_b = wait_for_status(&b, "complete", WAIT).await;
    assert_eq!(done_b.text.trim(), first);
    assert!(!done_b.meta.contains("writing"), "{:?}", done_b.meta);
    assert!(!b.find("#composer-stop").await.unwrap().displayed().await.unwrap(), "Stop is hidden once the answer is complete");
    b.switch_to(&tab_a).await.unwrap();
    let done_a = wait_for_status(&b, "complete", WAIT).await;
    assert_eq!(done_a.text.trim(), done_b.text.trim(), "both tabs show the same answer");
    assert!(!b.find("#composer-stop").await.unwrap().displayed().await.unwrap(), "Stop is hidden once the answer is complete");
    assert_eq!(b.find("#composer-send").await.unwrap().property("disabled").await.unwrap(), Value::Bool(false), "Send works again");
    no_console_errors(&b.console_errors().await.unwrap(), "the first part");

    // A long follow-up, sent from the second tab's composer; the first tab follows it live.
    let second = words("ocean", 2000); // minutes at this pace: only Stop ends it
    upstream.push(Script::paced(&second, PACE));
    b.switch_to(&tab_b).await.unwrap();
    b.find("#composer-text").await.unwrap().send_keys("Now the ocean, at length").await.unwrap();
    b.find("#composer-send").await.unwrap().click().await.unwrap();
    b.wait_for_text("#messages", "Now the ocean, at length", WAIT).await.unwrap();
    watch_growth(&b, &second, 2).await;
    assert_eq!(b.find_all("#messages li.msg").await.unwrap().len(), 4, "two questions, two answers");
    b.switch_to(&tab_a).await.unwrap();
    b.wait_for_text("#messages", "Now the ocean, at length", WAIT).await.unwrap();
    watch_growth(&b, &second, 2).await;

    // Stop in the first tab: the partial answer stays, marked stopped, in both tabs.
    b.find("#composer-stop").await.unwrap().click().await.unwrap();
    let stopped_a = wait_for_status(&b, "stopped", WAIT).await;
    let kept = stopped_a.text.trim().to_owned();
    assert!(!kept.is_empty() && second.starts_with(&kept) && kept.len() < second.len(), "partial text kept: {kept:?}");
    assert!(stopped_a.meta.contains("stopped"), "meta: {:?}", stopped_a.meta);
    b.wait_for_text("#messages li.msg.assistant[data-status='stopped'] .meta .status", "stopped", WAIT).await.unwrap();
    assert!(!b.find("#composer-stop").await.unwrap().displayed().await.unwrap(), "Stop is hidden after stopping");
    assert_eq!(b.find("#composer-send").await.unwrap().property("disabled").await.unwrap(), Value::Bool(false), "Send works again");
    b.switch_to(&tab_b).await.unwrap();
    let stopped_b = wait_for_status(&b, "stopped", WAIT).await;
    assert_eq!(stopped_b.text.trim(), kept, "both tabs keep the same partial text");
    assert!(stopped_b.meta.contains("stopped"), "meta: {:?}", stopped_b.meta);
    assert!(!b.find("#composer-stop").await.unwrap().displayed().await.unwrap(), "Stop is hidden in the other tab too");
    // The first answer is untouched.
    let first_body = b.find("#messages li.msg.assistant[data-status='complete'] .body").await.unwrap();
    assert_eq!(first_body.text().await.unwrap().trim(), first);

    // The API agrees with what the tabs show.
    let (s, view) = owner.json(Method::GET, &format!("/api/orgs/default/threads/{thread}"), None).await;
    assert_eq!(s, 200, "{view}");
    assert_eq!(view["live"], false, "{view}");
    let messages = view["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "{view}");
    let last = &messages[3];
    assert_eq!((last["role"].as_str(), last["status"].as_str()), (Some("assistant"), Some("stopped")), "{last}");
    assert_eq!(last["content"].as_str().unwrap().trim(), kept);
    assert_eq!(messages[1]["status"], "complete");
    assert_eq!(messages[1]["content"], first);

    no_console_errors(&b.console_errors().await.unwrap(), "the second tab");
    b.switch_to(&tab_a).await.unwrap();
    no_console_errors(&b.console_errors().await.unwrap(), "the first tab");
    b.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_sends_a_question_once_in_chromium() {
    let ts = TestServer::boot().await;
    let upstream = chatkit::setup(&ts).await;
    let owner = ts.owner().await;
    let b = Browser::launch().await.expect("chromium and chromedriver must be installed (scripts/test.sh does it)");
    sign_in(&b, &ts, &owner.email).await;

    // Enter sends; a second Enter while the request is out must not start a second chat.
    upstream.push(Script::text("Hello back."));
    b.goto(&ts.url("/dashboard/default/chat")).await.unwrap();
    b.find("#agent-picker").await.unwrap().select_by_value("helper").await.unwrap();
    b.find("#composer-text").await.unwrap().send_keys(&format!("Hello{ENTER}{ENTER}")).await.unwrap();
    let thread = wait_for_thread_url(&b).await;
    let done = wait_for_status(&b, "complete", WAIT).await;
    assert_eq!(done.text.trim(), "Hello back.");
    let (_, threads) = owner.json(Method::GET, "/api/orgs/default/threads", None).await;
    assert_eq!(threads["threads"].as_array().unwrap().len(), 1, "one chat started: {threads}");

    // On the thread page too: Shift+Enter is a new line, Enter sends once.
    upstream.push(Script::text("Two lines received."));
    let composer = b.find("#composer-text").await.unwrap();
    composer.send_keys(&format!("Line one{SHIFT}{ENTER}{SHIFT}line two{ENTER}{ENTER}")).await.unwrap();
    b.wait_for_text("#messages", "Two lines received.", WAIT).await.unwrap();
    wait_for_status(&b, "complete", WAIT).await;
    let (_, view) = owner.json(Method::GET, &format!("/api/orgs/default/threads/{thread}"), None).await;
    let messages = view["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "one more question and answer: {view}");
    assert_eq!(messages[2]["content"], "Line one\nline two");
    let error = b.find("#composer .form-error").await.unwrap();
    assert!(!error.displayed().await.unwrap(), "no error under the composer: {:?}", error.text().await);
    assert!(!b.find("#composer-stop").await.unwrap().displayed().await.unwrap());
    assert_eq!(b.find("#composer-text").await.unwrap().property("value").await.unwrap(), Value::String(String::new()));

    no_console_errors(&b.console_errors().await.unwrap(), "the chat");
    b.quit().await.unwrap();
}
