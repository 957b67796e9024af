//! The OpenAI-compatible client against the scripted provider: JSON and SSE answers, parallel
//! tool calls, usage with cached and reasoning tokens, retries honouring Retry-After, errors that
//! carry the provider's status and text, a stream cut mid-way, a slow upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test suite")]

use serde_json::json;
use std::time::{Duration, Instant};
use tale_llm::client::openai::OpenAiClient;
use tale_llm::client::{ChatRequest, Endpoint, LlmError, Message, Part, RetryPolicy, Role, StreamEvent, ToolSpec, Usage};
use tale_testkit::{Script, ScriptedProvider};

fn fast_retry() -> RetryPolicy {
    RetryPolicy { attempts: 3, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(5), request_timeout: Duration::from_secs(5) }
}

fn request() -> ChatRequest {
    let mut extra = serde_json::Map::new();
    extra.insert("provider".into(), json!({"quantizations": ["fp8"]}));
    ChatRequest {
        model: "deepseek/deepseek-v4-flash".into(),
        messages: vec![
            Message::text(Role::System, "Be brief."),
            Message { role: Role::User, parts: vec![Part::Text("What is this?".into()), Part::Image("data:image/png;base64,AAAA".into())], tool_calls: vec![], tool_call_id: None },
        ],
        extra,
        ..Default::default()
    }
}

fn endpoint(p: &ScriptedProvider) -> Endpoint {
    Endpoint { base_url: p.base_url.clone(), api_key: "sk-test-key".into() }
}

#[tokio::test]
async fn json_answer_with_usage_and_the_request_on_the_wire() {
    let p = ScriptedProvider::start().await;
    p.push(Script::text("Hello there"));
    let client = OpenAiClient::new(fast_retry()).unwrap();
    let r = client.chat(&endpoint(&p), &request()).await.unwrap();
    assert_eq!(r.text, "Hello there");
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert_eq!(r.usage, Some(Usage { input_tokens: 12, output_tokens: 3, cached_input_tokens: 2, reasoning_tokens: 1 }));
    let (headers, body) = &p.requests()[0];
    assert_eq!(headers["authorization"], "Bearer sk-test-key");
    assert_eq!(body["model"], "deepseek/deepseek-v4-flash");
    assert_eq!(body["provider"], json!({"quantizations": ["fp8"]}), "providerOptions reach the body");
    assert_eq!(body["messages"][0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(body["messages"][1]["content"][1], json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}));
    assert_eq!(body["stream"], false);
}

#[tokio::test]
async fn streamed_text_arrives_in_order_and_usage_is_requested() {
    let p = ScriptedProvider::start().await;
    p.push(Script::text("Streaming works, token by token."));
    let client = OpenAiClient::new(fast_retry()).unwrap();
    let mut stream = client.chat_stream(&endpoint(&p), &request()).await.unwrap();
    let mut text = String::new();
    let mut deltas = 0;
    let mut saw_usage = false;
    let mut finish = None;
    while let Some(e) = stream.next().await {
        match e.unwrap() {
            StreamEvent::Text(t) => {
                deltas += 1;
                text.push_str(&t);
            }
            StreamEvent::Usage(u) => saw_usage = u.input_tokens == 12,
            StreamEvent::Finish(r) => finish = Some(r),
            StreamEvent::ToolCallDelta { .. } => panic!("no tools here"),
        }
    }
    assert_eq!(text, "Streaming works, token by token.");
    assert!(deltas > 5, "arrived in pieces: {deltas}");
    assert!(saw_usage && finish.as_deref() == Some("stop"));
    assert_eq!(p.requests()[0].1["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn parallel_tool_calls_are_reassembled() {
    let p = ScriptedProvider::start().await;
    p.push(Script::Reply {
        deltas: vec![],
        tool_calls: vec![
            ("call_1".into(), "rag_search".into(), r#"{"query":"vacation policy","topK":5}"#.into()),
            ("call_2".into(), "update_todos".into(), r#"{"add":["read the policy"]}"#.into()),
        ],
        usage: (30, 10),
        first_token_delay: Duration::ZERO,
        delta_delay: Duration::ZERO,
    });
    let mut req = request();
    req.tools = vec![ToolSpec { name: "rag_search".into(), description: "Search".into(), parameters: json!({"type": "object"}) }];
    let client = OpenAiClient::new(fast_retry()).unwrap();
    let r = client.chat_stream(&endpoint(&p), &req).await.unwrap().collect().await.unwrap();
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.tool_calls.len(), 2);
    assert_eq!((r.tool_calls[0].id.as_str(), r.tool_calls[0].name.as_str()), ("call_1", "rag_search"));
    assert_eq!(r.tool_calls[0].arguments, r#"{"query":"vacation policy","topK":5}"#);
    assert_eq!(r.tool_calls[1].arguments, r#"{"add":["read the policy"]}"#);
    assert_eq!(p.requests()[0].1["tools"][0]["function"]["name"], "rag_search");
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_time_the_provider_asks() {
    let p = ScriptedProvider::start().await;
    p.push(Script::Status { code: 429, retry_after: Some(1), body: r#"{"error":{"message":"slow down"}}"#.into() });
    p.push(Script::text("ok"));
    let client = OpenAiClient::new(fast_retry()).unwrap();
    let started = Instant::now();
    let r = client.chat(&endpoint(&p), &request()).await.unwrap();
    assert_eq!(r.text, "ok");
    assert!(started.elapsed() >= Duration::from_millis(950), "waited for Retry-After: {:?}", started.elapsed());
    assert_eq!(p.requests().len(), 2);
}

#[tokio::test]
async fn errors_carry_the_providers_status_and_words() {
    let p = ScriptedProvider::start().await;
    for _ in 0..3 {
        p.push(Script::Status { code: 500, retry_after: None, body: "upstream exploded".into() });
    }
    let client = OpenAiClient::new(fast_retry()).unwrap();
    let e = client.chat(&endpoint(&p), &request()).await.unwrap_err();
    assert_eq!(e, LlmError::Upstream { status: 500, message: "upstream exploded".into() });
    assert_eq!(p.requests().len(), 3, "retried up to the attempt limit");

    p.push(Script::Status { code: 401, retry_after: None, body: r#"{"error":{"message":"Incorrect API key provided"}}"#.into() });
    let e = client.chat_stream(&endpoint(&p), &request()).await.err().unwrap();
    assert_eq!(e.to_string(), "the provider answered 401: Incorrect API key provided");
    assert_eq!(p.requests().len(), 4, "401 is not retried");
    assert!(!format!("{e} {e:?} {:?}", endpoint(&p)).contains("sk-test-key"), "the key never shows");
}

#[tokio::test]
async fn a_stream_cut_mid_way_is_reported_after_the_text_that_arrived() {
    let p = ScriptedProvider::start().await;
    p.push(Script::Cut { deltas: vec!["Half an ".into(), "ans".into()] });
    let client = OpenAiClient::new(fast_retry()).unwrap();
    let mut s = client.chat_stream(&endpoint(&p), &request()).await.unwrap();
    let mut text = String::new();
    let err = loop {
        match s.next().await {
            Some(Ok(StreamEvent::Text(t))) => text.push_str(&t),
            Some(Ok(_)) => {}
            Some(Err(e)) => break e,
            None => panic!("a cut stream must not end cleanly"),
        }
    };
    assert_eq!(text, "Half an ans");
    assert_eq!(err, LlmError::StreamCut);
}

#[tokio::test]
async fn a_slow_upstream_times_out() {
    let p = ScriptedProvider::start().await;
    for _ in 0..2 {
        p.push(Script::Reply { deltas: vec!["late".into()], tool_calls: vec![], usage: (1, 1), first_token_delay: Duration::from_secs(2), delta_delay: Duration::ZERO });
    }
    let policy = RetryPolicy { attempts: 2, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(1), request_timeout: Duration::from_millis(300) };
    let client = OpenAiClient::new(policy).unwrap();
    let e = client.chat(&endpoint(&p), &request()).await.unwrap_err();
    assert_eq!(e, LlmError::Timeout(Duration::from_millis(300)));
}

#[tokio::test]
async fn embeddings_come_back_in_input_order() {
    let p = ScriptedProvider::start().await;
    let client = OpenAiClient::new(fast_retry()).unwrap();
    let inputs = vec!["alpha".to_string(), "be".to_string(), "c".to_string()];
    let e = client.embed(&endpoint(&p), "qwen/qwen3-embedding-8b", &inputs, Some(4)).await.unwrap();
    assert_eq!(e.vectors.iter().map(|v| v[0]).collect::<Vec<_>>(), vec![5.0, 2.0, 1.0], "reordered by index");
    assert_eq!(e.input_tokens, 9);
    assert_eq!(p.requests()[0].1["dimensions"], 4);
}
