//! Chat end to end over HTTP and WebSocket against the scripted provider: streaming to every
//! tab, stop, regenerate, edit-and-resend, reconnecting mid-answer, tools, forms, attachments,
//! upstream failures and fallbacks, run logs and the usage ledger.

use crate::chatkit::{self, apply, connect, finished, next, read_until, setup, start, subscribe, write_agent, UPSTREAM_KEY};
use crate::harness::{error_code, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use tale_core::role::Role;
use tale_testkit::Script;

const STORY: &str = "Once upon a time, a small crab built a lighthouse out of driftwood and sea glass.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_streams_to_every_tab_and_is_stored_with_its_run_log() {
    let ts = TestServer::boot().await;
    let upstream = setup(&ts).await;
    let owner = ts.owner().await;
    // The thread exists before the question so both tabs can watch the whole answer.
    let (s, t) = owner.json(Method::POST, "/api/orgs/default/threads", Some(json!({"agent": "helper"}))).await;
    assert_eq!(s, 201, "{t}");
    let thread = t["thread"]["id"].as_str().unwrap().to_owned();
    let mut tab1 = connect(&ts, &owner).await;
    let mut tab2 = connect(&ts, &owner).await;
    for tab in [&mut tab1, &mut tab2] {
        subscribe(tab, &thread).await;
        let snap = next(tab).await;
        assert_eq!((snap["type"].as_str(), snap["data"]["messages"].as_array().unwrap().len()), (Some("snapshot"), 0));
    }

    upstream.push(Script::paced(STORY, Duration::from_millis(5)));
    let (s, turn) = owner.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/messages"), Some(json!({"content": "Tell me a story"}))).await;
    assert_eq!(s, 201, "{turn}");
    let answer = turn["answer"]["id"].as_str().unwrap().to_owned();
    assert_eq!(turn["answer"]["status"], "streaming");

    for tab in [&mut tab1, &mut tab2] {
        let events = read_until(tab, |e| e["type"] == "message" && e["final"] == true).await;
        // The turn comes first, whole, so the tab can show the question and the empty answer
        // before the first token without refetching the thread.
        let first = &events[0];
        assert_eq!(first["type"], "turn", "{first}");
        assert_eq!((first["question"]["content"].as_str(), first["question"]["parentId"].as_str()), (Some("Tell me a story"), None));
        assert_eq!((first["answer"]["id"].as_str(), first["answer"]["parentId"].as_str()), (Some(answer.as_str()), first["question"]["id"].as_str()));
        assert!(events.iter().all(|e| e["type"] != "snapshot"), "no refetch for a new turn");
        let (text, seq) = apply(&events, &answer);
        assert_eq!(text, STORY, "every tab sees the same tokens");
        assert!(seq >= 20, "streamed in many deltas, got {seq}");
        let last = events.last().unwrap();
        assert_eq!(last["message"]["status"], "complete");
        assert!(last["message"]["html"].as_str().unwrap().contains("<p>Once upon a time"), "{last}");
    }

    let done = finished(&owner, &thread, &answer).await;
    assert_eq!(done["content"], STORY);
    assert_eq!(done["model"], "local:llm");
    // The provider got the agent's instructions with placeholders filled, then the question.
    let (_, request) = &upstream.requests()[0];
    assert_eq!(request["messages"][0]["role"], "system");
    assert_eq!(request["messages"][0]["content"], "You help. Answer in en.");
    assert_eq!(request["messages"][1], json!({"role": "user", "content": "Tell me a story"}));
    assert_eq!(request["stream"], true);

    let run_id = done["runId"].as_str().unwrap();
    let (s, run) = owner.json(Method::GET, &format!("/api/orgs/default/runs/{run_id}"), None).await;
    assert_eq!(s, 200);
    let run = &run["run"];
    assert_eq!((run["status"].as_str(), run["provider"].as_str(), run["model"].as_str()), (Some("completed"), Some("local"), Some("llm")));
    assert_eq!(run["tokens"]["input"], 12);
    let steps = run["log"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["kind"], "model");
    assert!(steps[0]["ttftMs"].as_u64().is_some());
    assert!(run["log"]["timings"]["totalMs"].as_u64().unwrap() >= run["log"]["timings"]["generationMs"].as_u64().unwrap());
    // 12 input tokens at 100,000 ¢/M and the output at 200,000 ¢/M.
    let output = run["tokens"]["output"].as_f64().unwrap();
    assert!((run["costCents"].as_f64().unwrap() - (12.0 * 0.1 + output * 0.2)).abs() < 1e-9, "{run}");

    let (_, usage) = owner.json(Method::GET, "/api/orgs/default/usage?by=agent", None).await;
    assert_eq!(usage["totals"][0]["key"], "helper");
    assert_eq!(usage["totals"][0]["calls"], 1);
    let (_, by_model) = owner.json(Method::GET, "/api/orgs/default/usage?by=model", None).await;
    assert_eq!(by_model["totals"][0]["key"], "local:llm");
    let page = owner.get(&format!("/dashboard/default/runs/{run_id}")).await.text().await.unwrap();
    assert!(page.contains("Time to first token") && page.contains("local:llm"), "run page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_keeps_what_was_written_and_closes_the_upstream_stream() {
    let ts = TestServer::boot().await;
    let upstream = setup(&ts).await;
    let owner = ts.owner().await;
    upstream.push(Script::paced(&"word ".repeat(200), Duration::from_millis(20)));
    let (thread, answer) = start(&owner, "Write a lot").await;
    let mut tab = connect(&ts, &owner).await;
    subscribe(&mut tab, &thread).await;
    let events = read_until(&mut tab, |e| e["type"] == "delta" && e["seq"].as_u64() >= Some(5)).await;
    assert!(apply(&events, &answer).0.starts_with("word"));

    let (s, r) = owner.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/stop"), None).await;
    assert_eq!((s, r["stopped"].as_bool()), (StatusCode::OK, Some(true)));
    let stopped = finished(&owner, &thread, &answer).await;
    assert_eq!(stopped["status"], "stopped");
    let kept = stopped["content"].as_str().unwrap();
    assert!(kept.starts_with("word") && kept.len() < 1000, "partial answer kept: {} chars", kept.len());
    // The upstream notices the closed connection on its next write.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(upstream.abandoned_streams(), 1, "stopping closed the upstream connection");
    let (_, r) = owner.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/stop"), None).await;
    assert_eq!(r["stopped"], false, "nothing left to stop");

    // The run log says so, and the next question goes through.
    let (_, run) = owner.json(Method::GET, &format!("/api/orgs/default/runs/{}", stopped["runId"].as_str().unwrap()), None).await;
    assert_eq!(run["run"]["status"], "stopped");
    upstream.push(Script::text("Fine."));
    let (s, next_turn) = owner.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/messages"), Some(json!({"content": "Shorter please"}))).await;
    assert_eq!(s, 201);
    let done = finished(&owner, &thread, next_turn["answer"]["id"].as_str().unwrap()).await;
    assert_eq!(done["content"], "Fine.");
    // The stopped partial answer is part of the history the model sees.
    let last = upstream.requests().last().unwrap().1.clone();
    assert_eq!(last["messages"][2]["role"], "assistant");
    assert!(last["messages"][2]["content"].as_str().unwrap().starts_with("word"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_edit_and_switching_versions() {
    let ts = TestServer::boot().await;
    let upstream = setup(&ts).await;
    let owner = ts.owner().await;
    upstream.push(Script::text("First answer."));
    let (thread, a1) = start(&owner, "Question one").await;
    finished(&owner, &thread, &a1).await;

    upstream.push(Script::text("Second answer."));
    let (s, regen) = owner.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/messages/{a1}/regenerate"), None).await;
    assert_eq!(s, 201, "{regen}");
    let a2 = regen["answer"]["id"].as_str().unwrap().to_owned();
    finished(&owner, &thread, &a2).await;
    let (_, view) = owner.json(Method::GET, &format!("/api/orgs/default/threads/{thread}"), None).await;
    let msgs = view["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["content"], "Second answer.");
    assert_eq!(msgs[1]["versions"], json!([a1, a2]));
    // The regenerated request did not include the first answer.
    assert_eq!(upstream.requests()[1].1["messages"].as_array().unwrap().len(), 2);

    // Back to the first version.
    let (s, view) = owner.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/messages/{a1}/select"), None).await;
    assert_eq!(s, 200);
    assert_eq!(view["messages"][1]["content"], "First answer.");

    // Edit the question: a new branch with its own answer; the old question is a version.
    let q1 = view["messages"][0]["id"].as_str().unwrap().to_owned();
    upstream.push(Script::text("Answer to the edit."));
    let (s, edit) = owner.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/messages/{q1}/edit"), Some(json!({"content": "Question one, rephrased"}))).await;
    assert_eq!(s, 201, "{edit}");
    let a3 = edit["answer"]["id"].as_str().unwrap().to_owned();
    finished(&owner, &thread, &a3).await;
    let (_, view) = owner.json(Method::GET, &format!("/api/orgs/default/threads/{thread}"), None).await;
    let msgs = view["messages"].as_array().unwrap();
    assert_eq!((msgs[0]["content"].as_str(), msgs[1]["content"].as_str()), (Some("Question one, rephrased"), Some("Answer to the edit.")));
    assert_eq!(msgs[0]["versions"].as_array().unwrap().len(), 2);
    assert_eq!(upstream.requests()[2].1["messages"][1]["content"], "Question one, rephrased");
    // Selecting the old question brings back its newest answer.
    let (_, view) = owner.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/messages/{q1}/select"), None).await;
    assert_eq!(view["messages"][1]["content"], "Second answer.");

    // Someone else cannot touch the thread at all.
    let other = ts.member("other@example.com", Role::Member).await;
    let (s, body) = other.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/messages/{a1}/regenerate"), None).await;
    assert_eq!((s, error_code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _) = other.json(Method::GET, &format!("/api/orgs/default/threads/{thread}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_that_reconnects_mid_answer_gets_what_it_missed() {
    let ts = TestServer::boot().await;
    let upstream = setup(&ts).await;
    let owner = ts.owner().await;
    let text: String = (0..120).map(|i| format!("t{i} ")).collect();
    upstream.push(Script::paced(&text, Duration::from_millis(10)));
    let (thread, answer) = start(&owner, "Count").await;

    let mut first = connect(&ts, &owner).await;
    subscribe(&mut first, &thread).await;
    let seen = read_until(&mut first, |e| e["type"] == "delta" && e["seq"].as_u64() >= Some(10)).await;
    let (before, _) = apply(&seen, &answer);
    drop(first);
    tokio::time::sleep(Duration::from_millis(150)).await;

    let mut again = connect(&ts, &owner).await;
    subscribe(&mut again, &thread).await;
    let events = read_until(&mut again, |e| e["type"] == "message" && e["final"] == true).await;
    let snapshot = &events[0];
    assert_eq!(snapshot["type"], "snapshot");
    let live = snapshot["data"]["messages"].as_array().unwrap().iter().find(|m| m["id"] == answer).unwrap().clone();
    assert!(live["seq"].as_u64().unwrap() > 10, "the snapshot carries the answer so far");
    assert!(live["content"].as_str().unwrap().starts_with(&before), "what the first tab saw is part of it");
    let (after, _) = apply(&events, &answer);
    assert_eq!(after, text, "the resubscribed tab ends with the whole answer, nothing doubled or missed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_run_with_permission_checks_and_their_results_go_back_to_the_model() {
    let ts = TestServer::boot().await;
    let upstream = setup(&ts).await;
    let owner = ts.owner().await;
    upstream.push(Script::calls(&[
        ("c1", "update_todos", r#"{"action":"add","items":[{"text":"Gather facts"},{"text":"Write summary"}]}"#),
        ("c2", "artifact_create", r##"{"type":"markdown","title":"Plan","content":"# Plan\n- step"}"##),
        ("c3", "text", r#"{"filename":"notes.md","content":"hello file"}"#),
    ]));
    upstream.push(Script::calls(&[
        ("c4", "update_todos", r#"{"action":"update","items":[{"id":"1","status":"done"}]}"#),
        ("c5", "rag_search", r#"{"query":"x"}"#),
        ("c6", "document_write", r#"{}"#),
        ("c7", "web", r#"{}"#),
        ("c8", "artifact_edit", r#"{"artifact_id": "nope", "mode": "rewrite", "content": "x"}"#),
        ("c9", "update_todos", r#"{"action": "add", "items": ["#),
    ]));
    upstream.push(Script::text("All done."));
    let (thread, answer) = start(&owner, "Plan my week").await;
    let done = finished(&owner, &thread, &answer).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["content"], "All done.");

    let parts = done["parts"].as_array().unwrap();
    let todos = parts.iter().find(|p| p["type"] == "todos").unwrap();
    assert_eq!(todos["items"][0]["status"], "done");
    assert_eq!(todos["items"][1]["text"], "Write summary");
    let artifact = parts.iter().find(|p| p["type"] == "artifact").unwrap();
    let file = parts.iter().find(|p| p["type"] == "file").unwrap();
    let tool_status = |id: &str| parts.iter().find(|p| p["type"] == "tool" && p["id"] == id).unwrap()["status"].as_str().unwrap().to_owned();
    assert_eq!(tool_status("c1"), "ok");
    assert_eq!(tool_status("c5"), "unavailable", "knowledge is not built yet");
    assert_eq!(tool_status("c6"), "unavailable", "the Owner may write documents, but the tool does not exist yet");
    assert_eq!(tool_status("c7"), "denied", "web is not in this agent's toolNames");
    assert_eq!(tool_status("c8"), "error");
    assert_eq!(tool_status("c9"), "error", "invalid JSON arguments");

    // What the model was told in the third request, call by call.
    let third = &upstream.requests()[2].1;
    let results: Vec<(String, String)> = third["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| (m["tool_call_id"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap().to_owned()))
        .collect();
    let said = |id: &str| results.iter().find(|(i, _)| i == id).unwrap().1.clone();
    assert!(said("c5").contains("knowledge base"), "{}", said("c5"));
    assert!(said("c7").contains("not in the agent's toolNames"), "{}", said("c7"));
    assert!(said("c8").contains("no artifact 'nope'"), "{}", said("c8"));
    assert!(said("c9").contains("not valid JSON"), "{}", said("c9"));
    // The tools offered are the working ones the agent lists, nothing else.
    let first = upstream.requests()[0].1.clone();
    let offered: Vec<&str> = first["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(offered, ["update_todos", "text", "artifact_create", "artifact_edit", "request_human_input"]);

    // The artifact and the file can be fetched by their owner only.
    let aid = artifact["id"].as_str().unwrap();
    let (s, a) = owner.json(Method::GET, &format!("/api/orgs/default/threads/{thread}/artifacts/{aid}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(a["artifact"]["content"], "# Plan\n- step");
    assert!(a["html"].as_str().unwrap().contains("<h1>Plan</h1>"));
    // Previews run in a sandboxed origin that only this site may frame.
    let preview = owner.get(&format!("/api/orgs/default/threads/{thread}/artifacts/{aid}/preview")).await;
    let csp = preview.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("sandbox allow-scripts;") && csp.contains("frame-ancestors 'self'"), "{csp}");
    assert!(preview.headers().get("x-frame-options").is_none());
    let download = owner.get(&format!("/api/orgs/default/files/{}", file["id"].as_str().unwrap())).await;
    assert_eq!(download.status(), 200);
    assert!(download.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"notes.md\""));
    assert_eq!(download.text().await.unwrap(), "hello file");
    let other = ts.member("m@example.com", Role::Member).await;
    assert_eq!(other.get(&format!("/api/orgs/default/files/{}", file["id"].as_str().unwrap())).await.status(), 404);

    let (_, run) = owner.json(Method::GET, &format!("/api/orgs/default/runs/{}", done["runId"].as_str().unwrap()), None).await;
    let steps = run["run"]["log"]["steps"].as_array().unwrap();
    assert_eq!(steps.iter().filter(|s| s["kind"] == "model").count(), 3);
    assert_eq!(steps.iter().filter(|s| s["kind"] == "tool").count(), 9);
    let bad_json = steps.iter().find(|s| s["callId"] == "c9").unwrap();
    assert_eq!(bad_json["arguments"], r#"{"action": "add", "items": ["#, "the raw arguments are logged");
    let warnings = run["run"]["log"]["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("rag_search")), "{warnings:?}");

    // The thread keeps the to-do list for later turns.
    let (_, view) = owner.json(Method::GET, &format!("/api/orgs/default/threads/{thread}"), None).await;
    assert_eq!(view["thread"]["todos"][0]["status"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_agent_may_not_use_tools_above_their_role() {
    let ts = TestServer::boot().await;
    let upstream = setup(&ts).await;
    ts.owner().await;
    let member = ts.member("m@example.com", Role::Member).await;
    upstream.push(Script::calls(&[("c1", "document_write", r#"{"title":"x"}"#)]));
    upstream.push(Script::text("Could not save."));
    let (thread, answer) = start(&member, "Save this to the documents").await;
    let done = finished(&member, &thread, &answer).await;
    let tool = done["parts"].as_array().unwrap().iter().find(|p| p["id"] == "c1").unwrap().clone();
    assert_eq!(tool["status"], "denied");
    let told = upstream.requests()[1].1["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").unwrap()["content"].clone();
    assert!(told.as_str().unwrap().contains("not allowed for your role"), "{told}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_pauses_the_run_until_the_user_answers() {
    let ts = TestServer::boot().await;
    let upstream = setup(&ts).await;
    let owner = ts.owner().await;
    upstream.push(Script::calls(&[(
        "form1",
        "request_human_input",
        r#"{"title":"Trip details","fields":[{"name":"city","label":"City","type":"text","required":true},{"name":"pets","label":"Pets?","type":"yes_no"}]}"#,
    )]));
    let (thread, answer) = start(&owner, "Plan a trip").await;
    let waiting = finished(&owner, &thread, &answer).await;
    assert_eq!(waiting["status"], "waiting");
    let form = waiting["parts"].as_array().unwrap().iter().find(|p| p["type"] == "form").unwrap().clone();
    assert_eq!(form["fields"][0]["name"], "city");

    let url = format!("/api/orgs/default/threads/{thread}/messages/{answer}/input");
    let (s, body) = owner.json(Method::POST, &url, Some(json!({"callId": "form1", "values": {"pets": true}}))).await;
    assert_eq!((s, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_input"), "City is required");
    upstream.push(Script::text("Bern it is, with your dog."));
    let (s, body) = owner.json(Method::POST, &url, Some(json!({"callId": "form1", "values": {"city": "Bern", "pets": true}}))).await;
    assert_eq!(s, 201, "{body}");
    let done = finished(&owner, &thread, &answer).await;
    assert_eq!(done["status"], "complete");
    assert_eq!(done["content"], "Bern it is, with your dog.");
    let form = done["parts"].as_array().unwrap().iter().find(|p| p["type"] == "form").unwrap().clone();
    assert_eq!(form["answer"]["city"], "Bern");
    let call = done["parts"].as_array().unwrap().iter().find(|p| p["type"] == "tool" && p["id"] == "form1").unwrap().clone();
    assert_eq!(call["status"], "ok", "the form's tool call no longer reads as waiting");
    // The model got its own call back with the answer as the tool result.
    let resumed = &upstream.requests()[1].1["messages"];
    let msgs = resumed.as_array().unwrap();
    assert_eq!(msgs[msgs.len() - 2]["tool_calls"][0]["id"], "form1");
    assert_eq!(msgs[msgs.len() - 1]["tool_call_id"], "form1");
    assert_eq!(serde_json::from_str::<Value>(msgs[msgs.len() - 1]["content"].as_str().unwrap()).unwrap(), json!({"city": "Bern", "pets": true}));
    let (s, body) = owner.json(Method::POST, &url, Some(json!({"callId": "form1", "values": {"city": "Rome"}}))).await;
    assert_eq!((s, error_code(&body)), (StatusCode::CONFLICT, "conflict"), "answered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_reach_the_thread_and_fallbacks_take_over() {
    let ts = TestServer::boot().await;
    let upstream = setup(&ts).await;
    let owner = ts.owner().await;

    // 401: no retry, a readable error with the provider's status and words.
    upstream.push(Script::Status { code: 401, retry_after: None, body: r#"{"error":{"message":"Invalid API key provided"}}"#.into() });
    let (thread, answer) = start(&owner, "Hello").await;
    let failed = finished(&owner, &thread, &answer).await;
    assert_eq!(failed["status"], "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("401") && error.contains("Invalid API key provided"), "{error}");
    assert!(!error.contains(UPSTREAM_KEY));
    let (_, run) = owner.json(Method::GET, &format!("/api/orgs/default/runs/{}", failed["runId"].as_str().unwrap()), None).await;
    assert!(run["run"]["log"]["steps"][0]["error"].as_str().unwrap().contains("401"), "the run log has it too");

    // A stream cut mid-answer: what arrived is kept, the message says the stream broke.
    upstream.push(Script::Cut { deltas: vec!["Half of".into(), " an answ".into()] });
    let (s, turn) = owner.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/messages"), Some(json!({"content": "Again"}))).await;
    assert_eq!(s, 201);
    let cut = finished(&owner, &thread, turn["answer"]["id"].as_str().unwrap()).await;
    assert_eq!((cut["status"].as_str(), cut["content"].as_str()), (Some("failed"), Some("Half of an answ")));
    assert!(cut["error"].as_str().unwrap().contains("ended before the answer was complete"));

    // 500s on the agent's model (after the client's retries) hand over to the next model.
    write_agent(&ts, "helper", json!({"supportedModels": ["local:llm", "local:backup"]}));
    for _ in 0..3 {
        upstream.push(Script::Status { code: 500, retry_after: Some(0), body: "overloaded".into() });
    }
    upstream.push(Script::text("From the backup."));
    let (thread, answer) = start(&owner, "Hello again").await;
    let done = finished(&owner, &thread, &answer).await;
    assert_eq!((done["status"].as_str(), done["content"].as_str(), done["model"].as_str()), (Some("complete"), Some("From the backup."), Some("local:backup")));
    assert_eq!(upstream.requests().last().unwrap().1["model"], "backup");
    let (_, run) = owner.json(Method::GET, &format!("/api/orgs/default/runs/{}", done["runId"].as_str().unwrap()), None).await;
    let warnings = run["run"]["log"]["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("local:llm failed (the provider answered 500: overloaded); falling back to local:backup")), "{warnings:?}");

    // A first token slower than the agent's timeout.
    write_agent(&ts, "helper", json!({"timeoutMs": 1000}));
    upstream.push(Script::Reply { deltas: vec!["late".into()], tool_calls: vec![], usage: (1, 1), first_token_delay: Duration::from_secs(3), delta_delay: Duration::ZERO });
    let (thread, answer) = start(&owner, "Quick").await;
    let slow = finished(&owner, &thread, &answer).await;
    assert_eq!(slow["status"], "failed");
    assert!(slow["error"].as_str().unwrap().contains("limit of 1 s"), "{}", slow["error"]);

    // A secrets file others can read is refused, with the fix in the message (never the key).
    write_agent(&ts, "helper", json!({}));
    let secrets = chatkit::config_dir(&ts).join("providers/local.secrets.json");
    std::fs::set_permissions(&secrets, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (thread, answer) = start(&owner, "Key?").await;
    let refused = finished(&owner, &thread, &answer).await;
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("chmod 600") && !error.contains(UPSTREAM_KEY), "{error}");
    std::fs::set_permissions(&secrets, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    // At maxSteps the run ends even if the model still wants tools, and says so.
    write_agent(&ts, "helper", json!({"maxSteps": 2}));
    upstream.push(Script::calls(&[("s1", "update_todos", r#"{"action":"add","items":[{"text":"a"}]}"#)]));
    upstream.push(Script::calls(&[("s2", "update_todos", r#"{"action":"add","items":[{"text":"b"}]}"#)]));
    let (thread, answer) = start(&owner, "Loop").await;
    let capped = finished(&owner, &thread, &answer).await;
    assert_eq!(capped["status"], "complete");
    let (_, run) = owner.json(Method::GET, &format!("/api/orgs/default/runs/{}", capped["runId"].as_str().unwrap()), None).await;
    assert!(run["run"]["log"]["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("maxSteps (2)")), "{}", run["run"]["log"]);
    assert_eq!(run["run"]["log"]["steps"].as_array().unwrap().iter().filter(|s| s["kind"] == "model").count(), 2);

    // A model reference that resolves nowhere.
    write_agent(&ts, "helper", json!({"supportedModels": ["local:no-such-model"]}));
    let (thread, answer) = start(&owner, "Anyone?").await;
    let nothing = finished(&owner, &thread, &answer).await;
    assert!(nothing["error"].as_str().unwrap().contains("has no model 'no-such-model'"), "{}", nothing["error"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly() {
    let ts = TestServer::boot_with(|c| c.max_upload_bytes = 64 * 1024).await;
    let upstream = setup(&ts).await;
    let owner = ts.owner().await;
    let member = ts.member("m@example.com", Role::Member).await;

    let (s, body) = owner.json(Method::POST, "/api/orgs/default/threads", Some(json!({"agent": "no-such-agent", "message": "hi"}))).await;
    assert_eq!((s, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_input"));
    let (s, body) = owner.json(Method::POST, "/api/orgs/default/threads", Some(json!({"agent": "helper", "message": "   "}))).await;
    assert_eq!((s, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_input"));
    let (s, _) = owner.json(Method::POST, "/api/orgs/default/threads", Some(json!({"agent": "helper", "message": "hi", "colour": "red"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields are refused");

    // An attachment over the limit is refused before anything is stored.
    let big = vec![b'x'; 64 * 1024 + 1];
    let r = owner.client.post(ts.url("/api/orgs/default/files?name=big.txt")).header("x-csrf-token", owner.csrf.as_deref().unwrap()).header("content-type", "text/plain").body(big).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&r.json::<Value>().await.unwrap()), "payload_too_large");
    let objects: Vec<_> = walk(&ts.data_dir().join("objects"));
    assert!(objects.iter().all(|p| p.contains("/objects/tmp/")), "nothing stored: {objects:?}");
    let r = owner.client.post(ts.url("/api/orgs/default/files?name=empty.txt")).header("x-csrf-token", owner.csrf.as_deref().unwrap()).body(Vec::new()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "empty files are refused");
    let (s, body) = owner.json(Method::POST, "/api/orgs/default/threads", Some(json!({"agent": "helper", "message": "see", "attachments": ["not-mine"]}))).await;
    assert_eq!((s, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_input"));

    // A prompt longer than the model's context window.
    write_agent(&ts, "helper", json!({"supportedModels": ["local:tiny"], "outputReserve": 100}));
    let (thread, answer) = start(&owner, &"long words ".repeat(400)).await;
    let failed = finished(&owner, &thread, &answer).await;
    assert!(failed["error"].as_str().unwrap().contains("too long for local:tiny"), "{}", failed["error"]);
    assert!(upstream.requests().is_empty(), "nothing was sent upstream");

    // One answer at a time per thread.
    write_agent(&ts, "helper", json!({}));
    upstream.push(Script::paced(&"slow ".repeat(40), Duration::from_millis(20)));
    let (thread, answer) = start(&owner, "Slow").await;
    let (s, body) = owner.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/messages"), Some(json!({"content": "and another"}))).await;
    assert_eq!((s, error_code(&body)), (StatusCode::CONFLICT, "conflict"));
    finished(&owner, &thread, &answer).await;

    // A Member cannot edit agents or providers; an Editor cannot edit providers.
    let agent = json!({"supportedModels": ["local:llm"], "displayName": "X", "systemInstructions": "x"});
    let (s, body) = member.json(Method::PUT, "/api/orgs/default/agents/helper", Some(agent.clone())).await;
    assert_eq!((s, error_code(&body)), (StatusCode::FORBIDDEN, "insufficient_role"));
    let editor = ts.member("e@example.com", Role::Editor).await;
    let (s, body) = editor.json(Method::PUT, "/api/orgs/default/providers/local", Some(json!({"document": {}}))).await;
    assert_eq!((s, error_code(&body)), (StatusCode::FORBIDDEN, "insufficient_role"));

    // Files that would not load are refused with the field named.
    let (s, body) = owner.json(Method::PUT, "/api/orgs/default/agents/helper", Some(json!({"supportedModels": [], "displayName": "X"}))).await;
    assert_eq!((s, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_input"));
    assert!(body["error"]["message"].as_str().unwrap().contains("supportedModels"));
    let rejected = json!({"displayName": "Bad", "baseUrl": "http://localhost:1/v1", "providerOptions": {"temperature": 2}, "models": [{"id": "m", "displayName": "M", "tags": ["chat"]}]});
    let (s, body) = owner.json(Method::PUT, "/api/orgs/default/providers/bad", Some(json!({"document": rejected}))).await;
    assert_eq!((s, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_input"));
    assert!(body["error"]["message"].as_str().unwrap().contains("providerOptions.temperature"), "{body}");
    assert!(!chatkit::config_dir(&ts).join("providers/bad.json").exists(), "nothing written");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_reach_the_model_inline_or_as_images() {
    let ts = TestServer::boot().await;
    let upstream = setup(&ts).await;
    let owner = ts.owner().await;
    let upload = |name: &'static str, kind: &'static str, bytes: Vec<u8>| {
        let owner = owner.clone();
        let url = ts.url(&format!("/api/orgs/default/files?name={name}"));
        async move {
            let r = owner.client.post(url).header("x-csrf-token", owner.csrf.as_deref().unwrap()).header("content-type", kind).body(bytes).send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["file"]["id"].as_str().unwrap().to_owned()
        }
    };
    let notes = upload("notes.csv", "text/csv", b"city,people\nBern,140000\n".to_vec()).await;
    let png = upload("dot.png", "image/png", vec![0x89, b'P', b'N', b'G', 1, 2, 3]).await;
    let pdf = upload("report.pdf", "application/pdf", b"%PDF-1.4 not really".to_vec()).await;
    upstream.push(Script::text("Seen."));
    let (s, turn) = owner
        .json(Method::POST, "/api/orgs/default/threads", Some(json!({"agent": "helper", "message": "What is in these?", "attachments": [notes, png, pdf]})))
        .await;
    assert_eq!(s, 201, "{turn}");
    let thread = turn["thread"]["id"].as_str().unwrap();
    finished(&owner, thread, turn["answer"]["id"].as_str().unwrap()).await;
    assert_eq!(turn["question"]["attachments"].as_array().unwrap().len(), 3);
    let question = &upstream.requests()[0].1["messages"][1];
    let parts = question["content"].as_array().unwrap();
    let text = parts[0]["text"].as_str().unwrap();
    assert!(text.contains("<attachment name=\"notes.csv\">\ncity,people\nBern,140000"), "{text}");
    assert!(text.contains("'report.pdf' (application/pdf), which cannot be read in chat"), "{text}");
    assert_eq!(parts[1]["type"], "image_url");
    assert!(parts[1]["image_url"]["url"].as_str().unwrap().starts_with("data:image/png;base64,iVBORw"));

    // Uploads are not held to the JSON body limit (2 MiB), only to the upload limit.
    let big = upload("big.txt", "text/plain", vec![b'a'; 3 * 1024 * 1024]).await;
    assert!(!big.is_empty());

    // The same bytes are stored once.
    let again = upload("copy.csv", "text/csv", b"city,people\nBern,140000\n".to_vec()).await;
    assert_ne!(again, notes);
    let stored = walk(&ts.data_dir().join("objects")).into_iter().filter(|p| !p.contains("/objects/tmp/")).count();
    assert_eq!(stored, 4);
    // Someone else's upload cannot be attached.
    let other = ts.member("m@example.com", Role::Member).await;
    let (s, _) = other.json(Method::POST, "/api/orgs/default/threads", Some(json!({"agent": "helper", "message": "mine?", "attachments": [again]}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_are_listed_searched_renamed_shared_and_deleted() {
    let ts = TestServer::boot().await;
    let upstream = setup(&ts).await;
    let owner = ts.owner().await;
    for q in ["Quarterly report numbers", "Holiday plans"] {
        upstream.push(Script::text("ok"));
        let (t, a) = start(&owner, q).await;
        finished(&owner, &t, &a).await;
    }
    let (_, list) = owner.json(Method::GET, "/api/orgs/default/threads", None).await;
    let titles: Vec<&str> = list["threads"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Holiday plans", "Quarterly report numbers"]);
    let (_, found) = owner.json(Method::GET, "/api/orgs/default/threads?q=REPORT", None).await;
    assert_eq!(found["threads"].as_array().unwrap().len(), 1);
    let thread = found["threads"][0]["id"].as_str().unwrap().to_owned();

    let (s, renamed) = owner.json(Method::PATCH, &format!("/api/orgs/default/threads/{thread}"), Some(json!({"title": "  Q3\nreport "}))).await;
    assert_eq!((s, renamed["thread"]["title"].as_str()), (StatusCode::OK, Some("Q3 report")));
    let (s, _) = owner.json(Method::PATCH, &format!("/api/orgs/default/threads/{thread}"), Some(json!({"title": "  "}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Shared read-only with members of the organisation; not with anyone else.
    let (s, shared) = owner.json(Method::POST, &format!("/api/orgs/default/threads/{thread}/share"), None).await;
    assert_eq!(s, 200);
    let url = shared["url"].as_str().unwrap().to_owned();
    let token = url.rsplit('/').next().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/share/", ts.base)));
    let member = ts.member("m@example.com", Role::Member).await;
    let (s, view) = member.json(Method::GET, &format!("/api/shared/{token}"), None).await;
    assert_eq!(s, 200, "{view}");
    assert_eq!(view["messages"][0]["content"], "Quarterly report numbers");
    let page = member.get(&format!("/share/{token}")).await.text().await.unwrap();
    assert!(page.contains("read-only") && page.contains("Quarterly report numbers") && !page.contains("id=\"composer\""));
    let (s, _) = owner.json(Method::POST, "/api/orgs", Some(json!({"name": "Other", "slug": "other"}))).await;
    assert_eq!(s, 201);
    ts.services().admin_create_user("outsider@example.com", None, crate::harness::PASSWORD, Role::Member, "other").await.unwrap();
    let outsider = ts.sign_in("outsider@example.com", crate::harness::PASSWORD).await;
    let (s, _) = outsider.json(Method::GET, &format!("/api/shared/{token}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "other organisations cannot read it");
    assert_eq!(ts.anonymous().get(&format!("/api/shared/{token}")).await.status(), StatusCode::UNAUTHORIZED);
    owner.json(Method::DELETE, &format!("/api/orgs/default/threads/{thread}/share"), None).await;
    let (s, _) = member.json(Method::GET, &format!("/api/shared/{token}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "unsharing ends the link");

    // Deleting tells watching tabs and removes the thread.
    let mut tab = connect(&ts, &owner).await;
    subscribe(&mut tab, &thread).await;
    assert_eq!(next(&mut tab).await["type"], "snapshot");
    let (s, _) = owner.json(Method::DELETE, &format!("/api/orgs/default/threads/{thread}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(next(&mut tab).await["type"], "deleted");
    let (s, _) = owner.json(Method::GET, &format!("/api/orgs/default/threads/{thread}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, audit) = owner.json(Method::GET, "/api/orgs/default/audit?category=data", None).await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in ["thread_created", "thread_renamed", "thread_shared", "thread_unshared", "thread_deleted"] {
        assert!(actions.contains(&a), "{a} audited: {actions:?}");
    }
    // Someone else's thread id is simply not found over the WebSocket either.
    let (t2, _) = start(&owner, "private").await;
    let mut snoop = connect(&ts, &member).await;
    subscribe(&mut snoop, &t2).await;
    let e = next(&mut snoop).await;
    assert_eq!((e["type"].as_str(), e["error"]["code"].as_str()), (Some("error"), Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_and_providers_are_edited_with_history_audit_and_an_encrypted_key() {
    let ts = TestServer::boot().await;
    let upstream = setup(&ts).await;
    let owner = ts.owner().await;
    let editor = ts.member("e@example.com", Role::Editor).await;

    // The examples were seeded on first start, unchanged.
    let (_, agents) = owner.json(Method::GET, "/api/orgs/default/agents", None).await;
    let slugs: Vec<&str> = agents["agents"].as_array().unwrap().iter().map(|a| a["slug"].as_str().unwrap()).collect();
    assert!(slugs.contains(&"chat-agent") && slugs.contains(&"translator"), "{slugs:?}");
    assert_eq!(agents["skipped"], json!([]));

    // An Editor changes an agent twice; both earlier versions are kept; restoring works.
    let (s, detail) = editor.json(Method::GET, "/api/orgs/default/agents/helper", None).await;
    assert_eq!(s, 200);
    let mut doc = detail["document"].clone();
    doc["systemInstructions"] = json!("Be terse.");
    let (s, saved) = editor.json(Method::PUT, "/api/orgs/default/agents/helper", Some(doc.clone())).await;
    assert_eq!(s, 200, "{saved}");
    doc["systemInstructions"] = json!("Be very terse.");
    let (_, saved) = editor.json(Method::PUT, "/api/orgs/default/agents/helper", Some(doc.clone())).await;
    let history = saved["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    let unavailable: Vec<&str> = saved["unavailableTools"].as_array().unwrap().iter().map(|t| t[0].as_str().unwrap()).collect();
    assert_eq!(unavailable, ["rag_search", "document_write"]);
    // The change applies to the next answer at once.
    upstream.push(Script::text("ok"));
    let (t, a) = start(&owner, "hi").await;
    finished(&owner, &t, &a).await;
    assert_eq!(upstream.requests()[0].1["messages"][0]["content"], "Be very terse.");
    let oldest = history[1]["version"].as_i64().unwrap();
    let (s, restored) = editor.json(Method::POST, &format!("/api/orgs/default/agents/helper/versions/{oldest}/restore"), None).await;
    assert_eq!(s, 200, "{restored}");
    assert_eq!(restored["document"]["systemInstructions"], "You help. Answer in {{user.language}}.");
    assert!(chatkit::config_dir(&ts).join("agents/.history/helper").read_dir().unwrap().count() >= 3);
    let (_, audit) = owner.json(Method::GET, "/api/orgs/default/audit?category=ai", None).await;
    let first = &audit["entries"][0];
    assert_eq!(first["action"], "agent_updated");
    assert_eq!(first["actorEmail"], "e@example.com");
    assert_eq!(first["newState"]["systemInstructions"], "You help. Answer in {{user.language}}.");
    assert_eq!(first["previousState"]["systemInstructions"], "Be very terse.");

    // An Admin sets a provider's key: encrypted at rest, never shown, and used upstream.
    let (s, p) = owner.json(Method::GET, "/api/orgs/default/providers/local", None).await;
    assert_eq!(s, 200);
    assert_eq!(p["secrets"], json!({"present": true, "encrypted": false, "problem": null}));
    let new_key = "sk-rotated-key-1234567890";
    let (s, p) = owner.json(Method::PUT, "/api/orgs/default/providers/local", Some(json!({"document": p["document"], "apiKey": new_key}))).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["secrets"]["encrypted"], true);
    assert!(!p.to_string().contains(new_key));
    let on_disk = std::fs::read_to_string(chatkit::config_dir(&ts).join("providers/local.secrets.json")).unwrap();
    assert!(on_disk.contains("\"sops\"") && on_disk.contains("ENC[AES256_GCM") && !on_disk.contains(new_key), "{on_disk}");
    upstream.push(Script::text("with the new key"));
    let (t, a) = start(&owner, "again").await;
    finished(&owner, &t, &a).await;
    assert_eq!(upstream.requests().last().unwrap().0["authorization"], format!("Bearer {new_key}"));
    let (_, audit) = owner.json(Method::GET, "/api/orgs/default/audit?category=admin", None).await;
    let entry = &audit["entries"][0];
    assert_eq!((entry["action"].as_str(), entry["metadata"]["apiKey"].as_str()), (Some("provider_updated"), Some("changed")));
    assert!(!audit.to_string().contains(new_key), "the key never reaches the audit log");

    // A new provider from the UI's form, then deleted with its key.
    let doc = json!({"displayName": "Ollama", "baseUrl": "http://localhost:11434/v1", "models": [{"id": "llama3.3", "displayName": "Llama", "tags": ["chat"]}]});
    let (s, _) = owner.json(Method::PUT, "/api/orgs/default/providers/ollama", Some(json!({"document": doc, "apiKey": "none"}))).await;
    assert_eq!(s, 200);
    let (_, list) = owner.json(Method::GET, "/api/orgs/default/providers", None).await;
    assert!(list["providers"].as_array().unwrap().iter().any(|p| p["slug"] == "ollama" && p["hasSecrets"] == true));
    let (s, _) = owner.json(Method::DELETE, "/api/orgs/default/providers/ollama", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(!chatkit::config_dir(&ts).join("providers/ollama.secrets.json").exists());

    // The editor pages render for their roles.
    let page = editor.get("/dashboard/default/agents/helper").await.text().await.unwrap();
    assert!(page.contains("Earlier versions") && page.contains("not available yet"));
    let page = owner.get("/dashboard/default/providers/local").await.text().await.unwrap();
    assert!(page.contains("encrypted with SOPS + age") && !page.contains(new_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_provider_streams_and_calls_tools_in_its_own_dialect() {
    let ts = TestServer::boot().await;
    let upstream = tale_testkit::ScriptedProvider::start().await;
    let dir = chatkit::config_dir(&ts).join("providers");
    std::fs::create_dir_all(&dir).unwrap();
    let provider = json!({"displayName": "Claude", "baseUrl": upstream.anthropic_base_url(),
        "models": [{"id": "claude-test", "displayName": "Claude", "tags": ["chat"], "maxOutputTokens": 1024}]});
    std::fs::write(dir.join("claude.json"), provider.to_string()).unwrap();
    let secrets = dir.join("claude.secrets.json");
    std::fs::write(&secrets, r#"{"apiKey": "sk-ant-test"}"#).unwrap();
    std::fs::set_permissions(&secrets, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    write_agent(&ts, "helper", json!({"supportedModels": ["claude:claude-test"]}));
    let owner = ts.owner().await;
    upstream.push(Script::calls(&[("toolu_1", "update_todos", r#"{"action":"add","items":[{"text":"Read"}]}"#)]));
    upstream.push(Script::text("Done, in Messages format."));
    let (thread, answer) = start(&owner, "Go").await;
    let done = finished(&owner, &thread, &answer).await;
    assert_eq!((done["status"].as_str(), done["content"].as_str()), (Some("complete"), Some("Done, in Messages format.")), "{done}");
    let requests = upstream.requests();
    assert_eq!(requests[0].0["x-api-key"], "sk-ant-test");
    assert_eq!(requests[0].1["system"], "You help. Answer in en.");
    assert_eq!(requests[0].1["max_tokens"], 1024);
    // The tool result went back as a tool_result block for the tool_use id.
    let last_user = requests[1].1["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last_user["content"][0]["type"], "tool_result");
    assert_eq!(last_user["content"][0]["tool_use_id"], "toolu_1");
    let (_, run) = owner.json(Method::GET, &format!("/api/orgs/default/runs/{}", done["runId"].as_str().unwrap()), None).await;
    assert_eq!(run["run"]["tokens"]["cachedInput"], 6, "cache reads from both calls are counted");
}
