//! The Anthropic Messages client against the scripted provider's Anthropic dialect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test suite")]

use serde_json::json;
use std::time::Duration;
use tale_llm::client::anthropic::AnthropicClient;
use tale_llm::client::{ChatRequest, Endpoint, LlmError, Message, Part, RetryPolicy, Role, StreamEvent, ToolCall, ToolSpec};
use tale_testkit::{Script, ScriptedProvider};

fn retry() -> RetryPolicy {
    RetryPolicy { attempts: 2, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(2), request_timeout: Duration::from_secs(5) }
}

fn endpoint(p: &ScriptedProvider) -> Endpoint {
    Endpoint { base_url: p.base_url.clone(), api_key: "sk-ant-test".into() }
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "claude-sonnet-4.6".into(),
        messages: vec![
            Message::text(Role::System, "Be brief."),
            Message { role: Role::User, parts: vec![Part::Text("Look".into()), Part::Image("data:image/png;base64,QUJD".into())], tool_calls: vec![], tool_call_id: None },
            Message { role: Role::Assistant, parts: vec![], tool_calls: vec![ToolCall { id: "toolu_1".into(), name: "rag_search".into(), arguments: r#"{"query":"x"}"#.into() }], tool_call_id: None },
            Message { role: Role::Tool, parts: vec![Part::Text("3 passages".into())], tool_calls: vec![], tool_call_id: Some("toolu_1".into()) },
        ],
        tools: vec![ToolSpec { name: "rag_search".into(), description: "Search".into(), parameters: json!({"type": "object"}) }],
        tool_choice: Some(json!("required")),
        ..Default::default()
    }
}

#[tokio::test]
async fn request_shape_and_json_answer() {
    let p = ScriptedProvider::start().await;
    p.push(Script::text("Here you go"));
    let r = AnthropicClient::new(retry()).unwrap().chat(&endpoint(&p), &request()).await.unwrap();
    assert_eq!((r.text.as_str(), r.finish_reason.as_deref()), ("Here you go", Some("stop")));
    let u = r.usage.unwrap();
    assert_eq!((u.input_tokens, u.cached_input_tokens), (15, 3), "cache reads count as input and are reported");
    let (headers, body) = &p.requests()[0];
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["messages"][0]["content"][1], json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}}));
    assert_eq!(body["messages"][1]["content"][0], json!({"type": "tool_use", "id": "toolu_1", "name": "rag_search", "input": {"query": "x"}}));
    assert_eq!(body["messages"][2], json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "3 passages"}]}));
    assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(body["tool_choice"], json!({"type": "any"}));
}

#[tokio::test]
async fn streamed_text_and_tool_calls() {
    let p = ScriptedProvider::start().await;
    p.push(Script::Reply {
        deltas: vec!["Let me ".into(), "check.".into()],
        tool_calls: vec![("toolu_a".into(), "rag_search".into(), r#"{"query":"leave policy"}"#.into()), ("toolu_b".into(), "update_todos".into(), r#"{"add":["x"]}"#.into())],
        usage: (40, 12),
        first_token_delay: Duration::ZERO,
        delta_delay: Duration::ZERO,
    });
    let client = AnthropicClient::new(retry()).unwrap();
    let mut s = client.chat_stream(&endpoint(&p), &request()).await.unwrap();
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(first, StreamEvent::Text("Let me ".into()));
    let r = s.collect().await.unwrap();
    assert_eq!(r.text, "check.", "collect continues from where next() stopped");
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.tool_calls.len(), 2);
    assert_eq!(r.tool_calls[0], ToolCall { id: "toolu_a".into(), name: "rag_search".into(), arguments: r#"{"query":"leave policy"}"#.into() });
    assert_eq!(r.tool_calls[1].name, "update_todos");
    assert_eq!(r.usage.unwrap().output_tokens, 12);
}

#[tokio::test]
async fn errors_and_cuts() {
    let p = ScriptedProvider::start().await;
    p.push(Script::Status { code: 529, retry_after: None, body: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into() });
    p.push(Script::Status { code: 529, retry_after: None, body: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into() });
    let client = AnthropicClient::new(retry()).unwrap();
    let e = client.chat(&endpoint(&p), &request()).await.unwrap_err();
    assert_eq!(e, LlmError::Upstream { status: 529, message: "Overloaded".into() });
    p.push(Script::Cut { deltas: vec!["partial".into()] });
    let e = client.chat_stream(&endpoint(&p), &request()).await.unwrap().collect().await.unwrap_err();
    assert_eq!(e, LlmError::StreamCut);
}
