//! Providers and agents from the config directory, through the API: what each role sees, the
//! reference's example files, reported problems, and edits picked up without a restart.

use crate::harness::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use tale_core::role::Role;

fn copy_examples(config_dir: &Path) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tale-examples");
    for area in ["providers", "agents"] {
        let to = config_dir.join(area);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(examples.join(area)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn slugs(v: &Value, key: &str) -> Vec<String> {
    v[key].as_array().unwrap().iter().map(|a| a["slug"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn each_role_sees_what_it_may_and_edits_apply_live() {
    let ts = TestServer::boot().await;
    let config_dir = ts.data_dir().join("config");
    copy_examples(&config_dir);
    let owner = ts.owner().await;
    let member = ts.member("m@example.com", Role::Member).await;
    let editor = ts.member("e@example.com", Role::Editor).await;

    let (s, p) = owner.json(Method::GET, "/api/orgs/default/providers", None).await;
    assert_eq!(s, 200);
    assert_eq!(slugs(&p, "providers"), ["openai", "openrouter", "vercel-gateway"]);
    assert_eq!(p["providers"][1]["hasSecrets"], false);
    assert_eq!(member.get("/api/orgs/default/providers").await.status(), StatusCode::FORBIDDEN);

    let (_, a) = member.json(Method::GET, "/api/orgs/default/agents", None).await;
    assert_eq!(slugs(&a, "agents"), ["chat-agent", "image-creator", "researcher", "translator"], "visible, not admin/developer-only");
    let (_, a) = editor.json(Method::GET, "/api/orgs/default/agents", None).await;
    assert_eq!(slugs(&a, "agents"), ["chat-agent", "crm-assistant", "image-creator", "researcher", "translator"], "editors manage agents but role-restricted ones stay hidden");
    let (_, a) = owner.json(Method::GET, "/api/orgs/default/agents", None).await;
    assert_eq!(a["agents"].as_array().unwrap().len(), 7);

    let german = member.client.get(ts.url("/api/orgs/default/agents")).header("accept-language", "de-CH,de;q=0.9").send().await.unwrap();
    let german: Value = german.json().await.unwrap();
    let english: Value = member.json(Method::GET, "/api/orgs/default/agents", None).await.1;
    assert_ne!(german["agents"][0]["displayName"], english["agents"][0]["displayName"], "localised names");

    // A broken file is reported to those who manage it; the rest keep working. Edits apply live.
    std::fs::write(config_dir.join("agents/broken.json"), r#"{"supportedModels": []}"#).unwrap();
    std::fs::write(
        config_dir.join("agents/helper.json"),
        r#"{"supportedModels": ["openrouter:qwen/qwen3-coder"], "displayName": "Helper", "systemInstructions": "Help.", "visibleInChat": true}"#,
    )
    .unwrap();
    let started = Instant::now();
    let a = loop {
        let (_, a) = owner.json(Method::GET, "/api/orgs/default/agents", None).await;
        if slugs(&a, "agents").contains(&"helper".to_owned()) {
            break a;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "new agent file not picked up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(a["skipped"][0]["file"], "broken.json");
    assert!(a["skipped"][0]["reasons"].to_string().contains("supportedModels: needs at least one model reference"));
    let (_, m) = member.json(Method::GET, "/api/orgs/default/agents", None).await;
    assert!(slugs(&m, "agents").contains(&"helper".to_owned()));
    assert_eq!(m["skipped"], serde_json::json!([]), "members do not see file problems");
}

/// The official `openai` Python SDK lists models with a personal API key.
#[tokio::test]
async fn the_openai_python_sdk_lists_models() {
    let ts = TestServer::boot().await;
    copy_examples(&ts.data_dir().join("config"));
    let owner = ts.owner().await;
    let (_, key) = owner.json(Method::POST, "/api/orgs/default/api-keys", Some(serde_json::json!({"name": "sdk"}))).await;
    let key = key["secret"].as_str().unwrap().to_owned();
    let script = "import os, json\nfrom openai import OpenAI\nc = OpenAI(base_url=os.environ['BASE'], api_key=os.environ['KEY'])\nprint(json.dumps([[m.id, m.owned_by] for m in c.models.list()]))";
    let base = format!("{}/api/v1", ts.base);
    let out = tokio::process::Command::new("python3").arg("-c").arg(script).env("BASE", &base).env("KEY", &key).output().await.unwrap();
    assert!(out.status.success(), "openai SDK failed (scripts/test.sh installs it): {}", String::from_utf8_lossy(&out.stderr));
    let models: Vec<(String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(models.contains(&("deepseek/deepseek-v4-flash".into(), "openrouter".into())), "{models:?}");
    assert!(models.iter().all(|(id, _)| !id.contains("embedding") && id != "whisper-1"), "chat models only: {models:?}");
    let out = tokio::process::Command::new("python3").arg("-c").arg(script).env("BASE", &base).env("KEY", "tale_wrong").output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Chat completions through Tale to a scripted upstream, driven by the official Python SDK:
/// plain, streamed (with usage), with tools, and an upstream failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_chats_through_tale() {
    use std::os::unix::fs::PermissionsExt;
    use tale_testkit::{Script, ScriptedProvider};
    let upstream = ScriptedProvider::start().await;
    let ts = TestServer::boot().await;
    let providers = ts.data_dir().join("config/providers");
    std::fs::create_dir_all(&providers).unwrap();
    std::fs::write(
        providers.join("local.json"),
        serde_json::json!({"displayName": "Local", "baseUrl": upstream.base_url, "providerOptions": {"provider": {"sort": "price"}},
            "models": [{"id": "test-model", "displayName": "Test", "tags": ["chat"]}]}).to_string(),
    )
    .unwrap();
    let secrets = providers.join("local.secrets.json");
    std::fs::write(&secrets, r#"{"apiKey": "sk-upstream-secret"}"#).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let owner = ts.owner().await;
    let (_, key) = owner.json(Method::POST, "/api/orgs/default/api-keys", Some(serde_json::json!({"name": "sdk"}))).await;
    let key = key["secret"].as_str().unwrap().to_owned();

    upstream.push(Script::text("Plain answer."));
    upstream.push(Script::text("Streamed answer, in pieces."));
    upstream.push(Script::Reply {
        deltas: vec![],
        tool_calls: vec![("call_9".into(), "get_weather".into(), r#"{"city":"Bern"}"#.into())],
        usage: (20, 5),
        first_token_delay: Duration::ZERO,
        delta_delay: Duration::ZERO,
    });
    upstream.push(Script::Status { code: 401, retry_after: None, body: r#"{"error":{"message":"bad upstream key"}}"#.into() });
    let script = r#"
import os, json, openai
from openai import OpenAI
c = OpenAI(base_url=os.environ['BASE'], api_key=os.environ['KEY'], max_retries=0)
msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
out = {}
r = c.chat.completions.create(model="test-model", messages=msgs)
out["plain"] = [r.choices[0].message.content, r.choices[0].finish_reason, r.usage.prompt_tokens]
text, usage = "", None
for ch in c.chat.completions.create(model="test-model", messages=msgs, stream=True, stream_options={"include_usage": True}):
    if ch.choices and ch.choices[0].delta.content:
        text += ch.choices[0].delta.content
    if ch.usage:
        usage = ch.usage.total_tokens
out["stream"] = [text, usage]
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
r = c.chat.completions.create(model="test-model", messages=msgs, tools=tools)
call = r.choices[0].message.tool_calls[0]
out["tools"] = [call.id, call.function.name, call.function.arguments, r.choices[0].finish_reason]
try:
    c.chat.completions.create(model="test-model", messages=msgs)
except openai.APIStatusError as e:
    out["error"] = [e.status_code, str(e)]
try:
    c.chat.completions.create(model="no-such-model", messages=msgs)
except openai.APIStatusError as e:
    out["unknown"] = [e.status_code, str(e)]
print(json.dumps(out))
"#;
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("BASE", format!("{}/api/v1", ts.base))
        .env("KEY", &key)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["plain"], serde_json::json!(["Plain answer.", "stop", 12]));
    assert_eq!(r["stream"][0], "Streamed answer, in pieces.");
    assert_eq!(r["stream"][1], 12 + 7, "usage chunk passed on");
    assert_eq!(r["tools"], serde_json::json!(["call_9", "get_weather", "{\"city\":\"Bern\"}", "tool_calls"]));
    assert_eq!(r["error"][0], 502);
    assert!(r["error"][1].as_str().unwrap().contains("bad upstream key"), "{}", r["error"]);
    assert_eq!(r["unknown"][0], 400);
    assert!(r["unknown"][1].as_str().unwrap().contains("no provider defines model 'no-such-model'"));

    // Every answer with usage went into the ledger, as API calls.
    let (_, usage) = owner.json(Method::GET, "/api/orgs/default/usage?by=agent", None).await;
    assert_eq!(usage["totals"][0]["key"], "api");
    assert_eq!(usage["totals"][0]["calls"], 3, "{usage}");

    // What reached the upstream: its own key (never the caller's), the merged provider options.
    let (headers, body) = &upstream.requests()[0];
    assert_eq!(headers["authorization"], "Bearer sk-upstream-secret");
    assert_eq!(body["provider"], serde_json::json!({"sort": "price"}));
    assert_eq!(body["messages"][1], serde_json::json!({"role": "user", "content": "Hi"}));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sk-upstream-secret"));
}
