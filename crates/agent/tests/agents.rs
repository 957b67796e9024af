//! Agent folders: the reference's example agents load unchanged against its example providers;
//! bad files are named with their field; unknown tools warn.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test suite")]

use serde_json::json;
use std::path::PathBuf;
use tale_agent::{load_agents, parse_agent, KnowledgeMode};

fn examples(area: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tale-examples").join(area)
}

#[test]
fn reference_example_agents_load_and_resolve_their_models() {
    let set = load_agents(&examples("agents"));
    assert!(set.skipped.is_empty(), "{:?}", set.skipped);
    assert_eq!(set.agents.len(), 7);
    for a in &set.agents {
        assert!(a.warnings.is_empty(), "{}: {:?}", a.slug, a.warnings);
    }
    let providers = tale_llm::load_providers(&examples("providers"));
    for a in &set.agents {
        for m in &a.supported_models {
            providers.resolve(m).unwrap_or_else(|e| panic!("{}: {e}", a.slug));
        }
    }
    let chat = set.agent("chat-agent").unwrap();
    assert_eq!((chat.knowledge_mode, chat.include_org_knowledge, chat.visible_in_chat), (KnowledgeMode::Tool, true, true));
    assert_eq!(chat.web_search_mode, KnowledgeMode::Tool, "toolNames contains web");
    assert_eq!((chat.max_steps, chat.timeout_ms, chat.output_reserve), (20, 1_200_000, 4096));
    assert!(!chat.system_instructions("de-CH").is_empty(), "falls back to de");
    assert_ne!(chat.system_instructions("de"), chat.system_instructions("en"));
    assert_eq!(chat.system_instructions("ja"), chat.system_instructions("en"), "unknown locale falls back to en");
    assert!(!chat.conversation_starters("fr").is_empty());
    let image = set.agent("image-creator").unwrap();
    assert!(image.image_generation && image.tool_names.is_empty());
    assert_eq!(image.composer_mode.as_ref().unwrap().order, Some(30));
    assert!(set.agent("workflow-assistant").unwrap().admin_developer_only);
    assert_eq!(set.agent("researcher").unwrap().max_integration_calls_per_run, Some(60));
    assert!(!set.agent("crm-assistant").unwrap().visible_in_chat, "absent visibleInChat means hidden");
}

#[test]
fn problems_and_warnings_are_named() {
    let bad = json!({
        "supportedModels": [":bad"],
        "toolNames": ["rag_search", "teleport"],
        "maxSteps": 500,
        "knowledgeMode": "sometimes",
        "conversationStarters": ["a", "b", "c", "d", "e"],
        "i18n": {"english": {"displayName": "X"}}
    });
    let errs = parse_agent("x", &bad.to_string()).unwrap_err().join("\n");
    for needle in [
        "supportedModels[0]: model reference ':bad' may not start or end with ':'",
        "maxSteps: must be an integer from 1 to 100",
        "knowledgeMode: 'sometimes' is not one of off, tool, context, both",
        "conversationStarters: at most 4 starters",
        "i18n.english: locale must look like",
        "displayName: is required",
        "systemInstructions: a chat agent needs system instructions",
    ] {
        assert!(errs.contains(needle), "missing {needle:?} in\n{errs}");
    }
    let ok = json!({"supportedModels": ["m"], "toolNames": ["rag_search", "teleport"], "displayName": "A", "systemInstructions": "Be brief.", "colour": 1});
    let a = parse_agent("a", &ok.to_string()).unwrap();
    assert_eq!(a.warnings, vec!["colour: unknown key, ignored", "toolNames: unknown tool 'teleport' is ignored"]);
    let image = json!({"primaryBehavior": "image-generation", "supportedModels": ["m"], "displayName": "I", "toolNames": ["pdf"]});
    assert!(parse_agent("i", &image.to_string()).unwrap_err().join(" ").contains("toolNames: must be empty for an image-generation agent"));
}
