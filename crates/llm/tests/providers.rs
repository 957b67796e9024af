//! Provider folders end to end: the reference's example files load unchanged, bad files are
//! reported by name and skipped, references resolve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test suite")]

use std::path::PathBuf;
use tale_llm::{load_providers, ModelRef, Tag};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tale-examples/providers")
}

#[test]
fn reference_examples_load_unchanged() {
    let set = load_providers(&examples());
    assert!(set.skipped.is_empty(), "skipped: {:?}", set.skipped);
    let slugs: Vec<&str> = set.providers.iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(slugs, ["openai", "openrouter", "vercel-gateway"], "sorted by file name");
    for p in &set.providers {
        assert!(p.warnings.is_empty(), "{}: {:?}", p.slug, p.warnings);
    }
    let openrouter = set.provider("openrouter").unwrap();
    assert!(openrouter.supports_structured_outputs);
    assert_eq!(openrouter.defaults["embedding"], "qwen/qwen3-embedding-8b");
    let embed = openrouter.model("qwen/qwen3-embedding-8b").unwrap();
    assert_eq!((embed.dimensions, embed.has(Tag::Embedding)), (Some(1536), true));
    let tts = set.provider("openai").unwrap().model("gpt-4o-mini-tts").unwrap();
    assert_eq!(tts.voices_by_locale["de-CH"], "nova");
    assert_eq!(tts.cost.as_ref().unwrap().cents_per_million_characters, Some(1500.0));

    // References: pinned, unqualified, quantisation pin over the file's list.
    let r = ModelRef::parse("openrouter:deepseek/deepseek-v4-flash@fp4").unwrap();
    let (p, m) = set.resolve(&r).unwrap();
    let opts = p.options_for(m, r.quant.as_deref()).unwrap();
    assert_eq!(serde_json::Value::Object(opts), serde_json::json!({"provider": {"quantizations": ["fp4"]}}));
    let (p, _) = set.resolve(&ModelRef::parse("google/gemini-2.5-flash-image").unwrap()).unwrap();
    assert_eq!(p.slug, "openrouter", "first provider by file name");
    assert_eq!(set.defining("google/gemini-2.5-flash-image"), ["openrouter", "vercel-gateway"]);
    assert!(set.resolve(&ModelRef::parse("nope:x").unwrap()).unwrap_err().contains("unknown provider 'nope'"));
    assert!(set.resolve(&ModelRef::parse("gpt-9").unwrap()).unwrap_err().contains("no provider defines model 'gpt-9'"));
}

#[test]
fn bad_files_are_skipped_with_reasons_and_others_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(examples().join("openai.json"), d.join("openai.json")).unwrap();
    std::fs::write(d.join("broken.json"), "{ not json").unwrap();
    std::fs::write(
        d.join("sneaky.json"),
        r#"{"displayName":"S","baseUrl":"https://x.example/v1","providerOptions":{"model":"gpt-4"},"models":[{"id":"m","displayName":"M","tags":["chat"]}]}"#,
    )
    .unwrap();
    std::fs::write(d.join("Bad Name.json"), "{}").unwrap();
    std::fs::write(d.join("big.json"), vec![b' '; 300 * 1024]).unwrap();
    std::fs::write(d.join("openai.secrets.json"), r#"{"apiKey":"sk-test"}"#).unwrap();
    std::fs::write(d.join(".openai.json.123.abcd1234.tmp"), "x").unwrap();
    std::os::unix::fs::symlink(d.join("openai.json"), d.join("linked.json")).unwrap();
    std::fs::create_dir(d.join(".history")).unwrap();

    let set = load_providers(d);
    assert_eq!(set.providers.iter().map(|p| p.slug.as_str()).collect::<Vec<_>>(), ["openai"]);
    let reasons: Vec<String> = set.skipped.iter().map(ToString::to_string).collect();
    let find = |file: &str| reasons.iter().find(|r| r.contains(file)).unwrap_or_else(|| panic!("{file} not reported: {reasons:?}")).clone();
    assert!(find("broken.json").contains("invalid JSON"));
    assert!(find("sneaky.json").contains("providerOptions.model: key 'model' would overwrite the request body"));
    assert!(find("Bad Name.json").contains("not a valid slug"));
    assert!(find("big.json").contains("limit is 262144"));
    assert!(find("linked.json").contains("symbolic links are refused"));
    assert_eq!(set.skipped.len(), 5, "secrets, temporaries and .history are not provider files: {reasons:?}");
    assert!(!reasons.join(" ").contains("sk-test"), "secrets never appear in reports");
}

#[test]
fn organisations_have_their_own_folder() {
    let root = PathBuf::from("/etc/tale");
    assert_eq!(tale_llm::loader::providers_dir(&root, "default"), root.join("providers"));
    assert_eq!(tale_llm::loader::providers_dir(&root, "research"), root.join("providers/research"));
}

#[test]
fn references_resolve_to_endpoints_with_keys_from_secrets_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(examples().join("openrouter.json"), d.join("openrouter.json")).unwrap();
    let set = load_providers(d);
    let keys = tale_secrets::AgeKeys::default();
    let r = ModelRef::parse("openrouter:deepseek/deepseek-v4-flash@fp8").unwrap();
    let missing = set.endpoint(d, &r, &keys).unwrap_err();
    assert!(missing.contains("openrouter.secrets.json is missing"), "{missing}");

    let secrets = d.join("openrouter.secrets.json");
    std::fs::write(&secrets, r#"{"apiKey": "sk-or-main", "modelKeys": {"qwen/qwen3-coder": "sk-or-coder"}}"#).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = set.endpoint(d, &r, &keys).unwrap_err();
    assert!(err.contains("can be read by other users") && !err.contains("sk-or"), "{err}");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();

    let resolved = set.endpoint(d, &r, &keys).unwrap();
    assert_eq!(resolved.endpoint.base_url, "https://openrouter.ai/api/v1");
    assert_eq!(resolved.endpoint.api_key, "sk-or-main");
    assert_eq!(serde_json::Value::Object(resolved.options), serde_json::json!({"provider": {"quantizations": ["fp8"]}}));
    let coder = set.endpoint(d, &ModelRef::parse("qwen/qwen3-coder").unwrap(), &keys).unwrap();
    assert_eq!(coder.endpoint.api_key, "sk-or-coder", "a per-model key wins");

    // The same file SOPS-encrypted opens with the configured age key.
    let id = age_identity();
    let doc = tale_secrets::file::read_document(&secrets).unwrap();
    let enc = tale_secrets::sops::encrypt(&doc, &[id.to_public()]).unwrap();
    tale_secrets::file::write_document(&secrets, &enc).unwrap();
    let err = set.endpoint(d, &r, &keys).unwrap_err();
    assert!(err.contains("no age key is configured"), "{err}");
    let keys = tale_secrets::AgeKeys { identities: vec![id] };
    assert_eq!(set.endpoint(d, &r, &keys).unwrap().endpoint.api_key, "sk-or-main");
}

fn age_identity() -> tale_secrets::keys::AgeIdentity {
    tale_secrets::keys::AgeIdentity::generate()
}
