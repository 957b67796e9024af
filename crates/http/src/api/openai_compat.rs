//! The OpenAI-compatible public API (`/api/v1`), for official SDKs and scripts with a
//! personal API key. Chat completions join this module with the agent runtime.

use crate::auth::Granted;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashSet;
use tale_llm::Tag;

/// `GET /api/v1/models`: the organisation's chat models, each id once (the first provider by
/// file name owns it, as model references resolve).
pub async fn models(State(state): State<AppState>, g: Granted) -> Result<Json<Value>, ApiError> {
    let snap = state.catalog.snapshot(&g.grant.org_slug);
    let mut seen = HashSet::new();
    let data: Vec<Value> = snap
        .providers
        .providers
        .iter()
        .flat_map(|p| p.models.iter().filter(|m| m.has(Tag::Chat)).map(move |m| (p, m)))
        .filter(|(_, m)| seen.insert(m.id.clone()))
        .map(|(p, m)| json!({"id": m.id, "object": "model", "created": 0, "owned_by": p.slug}))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

use crate::auth::Meta;
use crate::json::ApiJson;
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tale_core::Error;
use tale_llm::client::{ChatRequest, LlmError, Message, Part, Role, StreamEvent, ToolCall, ToolSpec, Usage};
use tale_llm::ModelRef;

fn bad(msg: &str) -> ApiError {
    ApiError::Domain(Error::invalid(msg))
}

fn parse_message(v: &Value, i: usize) -> Result<Message, ApiError> {
    let role = match v["role"].as_str() {
        Some("system") | Some("developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        _ => return Err(bad(&format!("messages[{i}].role must be system, user, assistant or tool"))),
    };
    let parts = match &v["content"] {
        Value::String(s) => vec![Part::Text(s.clone())],
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|p| match p["type"].as_str() {
                Some("text") => Ok(Part::Text(p["text"].as_str().unwrap_or_default().to_owned())),
                Some("image_url") => Ok(Part::Image(p.pointer("/image_url/url").and_then(Value::as_str).unwrap_or_default().to_owned())),
                _ => Err(bad(&format!("messages[{i}].content: parts must be text or image_url"))),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad(&format!("messages[{i}].content must be a string or an array of parts"))),
    };
    let tool_calls = v["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: c["id"].as_str().unwrap_or_default().to_owned(),
                    name: c.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    arguments: c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Message { role, parts, tool_calls, tool_call_id: v["tool_call_id"].as_str().map(str::to_owned) })
}

fn parse_request(body: &Value) -> Result<(ChatRequest, bool, bool), ApiError> {
    let model = body["model"].as_str().filter(|m| !m.is_empty()).ok_or_else(|| bad("missing model"))?;
    let messages = body["messages"].as_array().filter(|m| !m.is_empty()).ok_or_else(|| bad("messages must be a non-empty array"))?;
    let messages = messages.iter().enumerate().map(|(i, m)| parse_message(m, i)).collect::<Result<Vec<_>, _>>()?;
    let tools = body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| ToolSpec {
                    name: t.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    description: t.pointer("/function/description").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    parameters: t.pointer("/function/parameters").cloned().unwrap_or_else(|| json!({"type": "object"})),
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(t) = body["temperature"].as_f64()
        && !(0.0..=2.0).contains(&t) {
            return Err(bad("temperature must be between 0 and 2"));
        }
    let mut extra = serde_json::Map::new();
    for key in ["top_p", "frequency_penalty", "presence_penalty", "stop", "seed"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            extra.insert(key.to_owned(), v.clone());
        }
    }
    let req = ChatRequest {
        model: model.to_owned(),
        messages,
        tools,
        tool_choice: body.get("tool_choice").filter(|v| !v.is_null()).cloned(),
        max_tokens: body["max_tokens"].as_u64().map(|n| n.min(u64::from(u32::MAX)) as u32),
        temperature: body["temperature"].as_f64().map(|t| t as f32),
        response_format: body.get("response_format").filter(|v| !v.is_null()).cloned(),
        extra,
    };
    let stream = body["stream"].as_bool().unwrap_or(false);
    let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    Ok((req, stream, include_usage))
}

fn usage_json(u: &Usage) -> Value {
    json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.input_tokens + u.output_tokens,
           "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens}, "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens}})
}

fn tokens(u: &Usage) -> tale_core::chat::TokenCounts {
    tale_core::chat::TokenCounts { input: u.input_tokens, output: u.output_tokens, cached_input: u.cached_input_tokens, reasoning: u.reasoning_tokens }
}

fn upstream(e: LlmError) -> ApiError {
    ApiError::Upstream(e.to_string())
}

/// `POST /api/v1/chat/completions`: passed through to the model named by `model`, in the
/// OpenAI shape whatever the provider speaks. With `tools`, the model's calls come back for the
/// client to run (TALE-COMPAT §9.2).
pub async fn chat_completions(State(state): State<AppState>, g: Granted, Meta(meta): Meta, headers: axum::http::HeaderMap, ApiJson(body): ApiJson<Value>) -> Result<Response, ApiError> {
    if let Err(retry_after_secs) = state.chat_limiter.hit(meta.ip.as_deref().unwrap_or("unknown")) {
        return Err(ApiError::Domain(Error::RateLimited { retry_after_secs }));
    }
    let (mut req, stream, include_usage) = parse_request(&body)?;
    let reference = ModelRef::parse(&req.model).map_err(|e| bad(&e))?;
    let snap = state.catalog.snapshot(&g.grant.org_slug);
    let resolved = snap.providers.endpoint(&snap.providers_dir, &reference, &state.age_keys).map_err(|e| ApiError::Domain(Error::invalid(e)))?;
    let model_name = body["model"].as_str().unwrap_or_default().to_owned();
    req.model = resolved.model.id.clone();
    for (k, v) in resolved.options {
        req.extra.entry(k).or_insert(v);
    }
    let id = format!("chatcmpl-{}", tale_core::id::new_id());
    let created = tale_core::id::now_ms() / 1000;
    let lang = crate::api::chat::locale(&headers);
    if !stream {
        let r = state.chat.llm().chat(&resolved.endpoint, &req).await.map_err(upstream)?;
        if let Some(u) = &r.usage {
            let c = crate::api::chat::caller(&g, &lang);
            if let Err(e) = state.chat.record_api_usage(&c, &resolved.provider, &resolved.model, tokens(u)).await {
                tracing::warn!(error = %e, "could not record API usage");
            }
        }
        let mut message = json!({"role": "assistant", "content": if r.tool_calls.is_empty() { json!(r.text) } else if r.text.is_empty() { Value::Null } else { json!(r.text) }});
        if !r.tool_calls.is_empty() {
            message["tool_calls"] = r.tool_calls.iter().map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})).collect();
        }
        let mut out = json!({"id": id, "object": "chat.completion", "created": created, "model": model_name,
            "choices": [{"index": 0, "message": message, "finish_reason": r.finish_reason.unwrap_or_else(|| "stop".into())}]});
        if let Some(u) = r.usage {
            out["usage"] = usage_json(&u);
        }
        return Ok(Json(out).into_response());
    }
    let upstream_stream = state.chat.llm().chat_stream(&resolved.endpoint, &req).await.map_err(upstream)?;
    // Usage arrives at the end of the stream; it is recorded from there, outside the request.
    let recorder = {
        let (chat, principal, grant, meta, provider, model) =
            (state.chat.clone(), g.principal.clone(), g.grant.clone(), g.meta.clone(), resolved.provider.clone(), resolved.model.clone());
        move |u: Usage| {
            let (chat, principal, grant, meta, provider, model, lang) =
                (chat.clone(), principal.clone(), grant.clone(), meta.clone(), provider.clone(), model.clone(), lang.clone());
            tokio::spawn(async move {
                let c = tale_chat::Caller { principal: &principal, grant: &grant, meta: &meta, locale: &lang };
                if let Err(e) = chat.record_api_usage(&c, &provider, &model, tokens(&u)).await {
                    tracing::warn!(error = %e, "could not record API usage");
                }
            });
        }
    };
    let chunk = move |delta: Value, finish: Option<String>| -> String {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model_name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    // State: the upstream stream, whether the role chunk went out, whether we are done.
    let events = futures_util::stream::unfold((upstream_stream, false, false), move |(mut s, started, done)| {
        let chunk = chunk.clone();
        let recorder = recorder.clone();
        async move {
            if done {
                return None;
            }
            if !started {
                let first = chunk(json!({"role": "assistant", "content": ""}), None);
                return Some((Ok::<_, std::io::Error>(first), (s, true, false)));
            }
            let text = match s.next().await {
                None => return Some((Ok("data: [DONE]\n\n".to_owned()), (s, true, true))),
                Some(Err(e)) => {
                    // Mid-stream failures reach the client as an error event, then the stream ends.
                    let err = json!({"error": {"code": "upstream_error", "message": e.to_string()}});
                    return Some((Ok(format!("data: {err}\n\n")), (s, true, true)));
                }
                Some(Ok(StreamEvent::Text(t))) => chunk(json!({"content": t}), None),
                Some(Ok(StreamEvent::ToolCallDelta { index, id, name, arguments })) => {
                    let mut call = json!({"index": index, "function": {"arguments": arguments}});
                    if let Some(id) = id {
                        call["id"] = json!(id);
                        call["type"] = json!("function");
                    }
                    if let Some(name) = name {
                        call["function"]["name"] = json!(name);
                    }
                    chunk(json!({"tool_calls": [call]}), None)
                }
                Some(Ok(StreamEvent::Finish(reason))) => chunk(json!({}), Some(reason)),
                Some(Ok(StreamEvent::Usage(u))) => {
                    recorder(u);
                    if include_usage {
                        let c = json!({"object": "chat.completion.chunk", "choices": [], "usage": usage_json(&u)});
                        format!("data: {c}\n\n")
                    } else {
                        String::new()
                    }
                }
            };
            Some((Ok(text), (s, true, false)))
        }
    });
    Ok(([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], Body::from_stream(events)).into_response())
}
