//! One agent file (`agents/<slug>.json`), validated field by field. Unknown tool names and
//! unknown keys are reported as warnings, not failures (TALE-COMPAT §3).

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use tale_llm::check::{valid_locale, valid_url, Reader};
use tale_llm::loader::{read_config_folder, Skipped};
use tale_llm::ModelRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnowledgeMode {
    Off,
    Tool,
    Context,
    Both,
}

impl KnowledgeMode {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "tool" => Some(Self::Tool),
            "context" => Some(Self::Context),
            "both" => Some(Self::Both),
            _ => None,
        }
    }

    /// The model searches when it decides to (`tool`, `both`).
    pub fn tools(self) -> bool {
        matches!(self, Self::Tool | Self::Both)
    }

    /// Passages for the question are added to every turn (`context`, `both`).
    pub fn context(self) -> bool {
        matches!(self, Self::Context | Self::Both)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComposerMode {
    pub label: String,
    pub icon: Option<String>,
    pub tooltip: Option<String>,
    pub order: Option<i64>,
}

/// Texts that can be translated: from the top level (legacy) or `i18n.<locale>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Texts {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub conversation_starters: Vec<String>,
    pub system_instructions: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub slug: String,
    /// The first is the agent's model; the rest are fallbacks in order.
    pub supported_models: Vec<ModelRef>,
    pub tool_names: Vec<String>,
    pub integration_bindings: Vec<String>,
    pub delegates: Vec<String>,
    pub workflows: Vec<String>,
    pub knowledge_mode: KnowledgeMode,
    pub web_search_mode: KnowledgeMode,
    pub include_org_knowledge: bool,
    pub include_team_knowledge: bool,
    pub knowledge_top_k: Option<u32>,
    pub structured_responses_enabled: bool,
    pub max_steps: u32,
    pub timeout_ms: u64,
    pub output_reserve: u32,
    pub max_integration_calls_per_run: Option<u32>,
    pub visible_in_chat: bool,
    pub image_generation: bool,
    pub composer_mode: Option<ComposerMode>,
    /// Only Admins and Developers may use the agent.
    pub admin_developer_only: bool,
    pub personalization: bool,
    pub provider: Option<String>,
    pub avatar_url: Option<String>,
    pub texts: Texts,
    pub i18n: BTreeMap<String, Texts>,
    pub warnings: Vec<String>,
}

impl Agent {
    /// Whether someone with `role` may chat with this agent: it is visible in chat (or the role
    /// manages agents), and a role restriction, if any, admits the role.
    pub fn usable_by(&self, role: tale_core::role::Role) -> bool {
        use tale_core::role::Role;
        let manages = tale_core::permission::Permission::AgentsManage.allows(role);
        let admin_or_dev = matches!(role, Role::Owner | Role::Admin | Role::Developer);
        role != Role::Disabled && (self.visible_in_chat || manages) && (!self.admin_developer_only || admin_or_dev)
    }

    /// `i18n[locale]`, then the base language, then `en`, then the top level (TALE-COMPAT §3.1).
    fn localized<'a, T>(&'a self, locale: &str, pick: impl Fn(&'a Texts) -> Option<T>) -> Option<T> {
        let base = locale.split('-').next().unwrap_or(locale);
        [locale, base, "en"]
            .iter()
            .find_map(|l| self.i18n.get(*l).and_then(&pick))
            .or_else(|| pick(&self.texts))
    }

    pub fn system_instructions(&self, locale: &str) -> &str {
        self.localized(locale, |t| t.system_instructions.as_deref()).unwrap_or("")
    }

    pub fn display_name(&self, locale: &str) -> &str {
        self.localized(locale, |t| t.display_name.as_deref()).unwrap_or(&self.slug)
    }

    pub fn localized_description(&self, locale: &str) -> &str {
        self.localized(locale, |t| t.description.as_deref()).unwrap_or("")
    }

    pub fn conversation_starters(&self, locale: &str) -> &[String] {
        self.localized(locale, |t| (!t.conversation_starters.is_empty()).then_some(t.conversation_starters.as_slice())).unwrap_or(&[])
    }
}

const AGENT_KEYS: &[&str] = &[
    "supportedModels", "toolNames", "integrationBindings", "delegates", "workflows", "knowledgeMode", "webSearchMode",
    "includeOrgKnowledge", "includeTeamKnowledge", "knowledgeTopK", "structuredResponsesEnabled", "maxSteps",
    "timeoutMs", "outputReserve", "maxIntegrationCallsPerRun", "visibleInChat", "primaryBehavior", "composerMode",
    "roleRestriction", "personalizationMode", "provider", "avatarUrl", "displayName", "description",
    "systemInstructions", "conversationStarters", "i18n",
];

/// `^[a-z0-9][a-z0-9_-]*$`, at most 100 characters.
pub fn valid_agent_slug(s: &str) -> bool {
    tale_llm::loader::valid_provider_slug(s)
}

fn strings(r: &mut Reader, obj: &Map<String, Value>, key: &str, max_items: Option<usize>, max_len: usize) -> Vec<String> {
    let mut out = Vec::new();
    match obj.get(key) {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if let Some(max) = max_items.filter(|m| items.len() > *m) {
                r.bad(key, format!("at most {max} entries (has {})", items.len()));
            }
            for (i, v) in items.iter().enumerate() {
                match v.as_str().filter(|s| !s.is_empty() && s.chars().count() <= max_len) {
                    Some(s) => out.push(s.to_owned()),
                    None => r.bad(&format!("{key}[{i}]"), format!("must be a string of 1 to {max_len} characters")),
                }
            }
        }
        Some(_) => r.bad(key, "must be an array of strings"),
    }
    out
}

fn int_in(r: &mut Reader, obj: &Map<String, Value>, key: &str, min: i64, max: i64) -> Option<i64> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().filter(|n| (min..=max).contains(n)) {
            Some(n) => Some(n),
            None => {
                r.bad(key, format!("must be an integer from {min} to {max}"));
                None
            }
        },
    }
}

fn texts(r: &mut Reader, obj: &Map<String, Value>, path: &str) -> Texts {
    let at = |k: &str| if path.is_empty() { k.to_owned() } else { format!("{path}.{k}") };
    let starters = match obj.get("conversationStarters") {
        Some(Value::Array(items)) => {
            if items.len() > 4 {
                r.bad(&at("conversationStarters"), format!("at most 4 starters (has {})", items.len()));
            }
            items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v.as_str().filter(|s| s.chars().count() <= 200) {
                    Some(s) => Some(s.to_owned()),
                    None => {
                        r.bad(&format!("{}[{i}]", at("conversationStarters")), "must be a string of at most 200 characters");
                        None
                    }
                })
                .collect()
        }
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            r.bad(&at("conversationStarters"), "must be an array of strings");
            Vec::new()
        }
    };
    Texts {
        display_name: r.string(obj, "displayName", path, 1, 200, false),
        description: r.string(obj, "description", path, 0, 1000, false),
        conversation_starters: starters,
        system_instructions: r.string(obj, "systemInstructions", path, 0, 20_000, false),
    }
}

/// Parses and validates one agent file; `Err` lists every problem (the file is skipped).
pub fn parse_agent(slug: &str, text: &str) -> Result<Agent, Vec<String>> {
    let root: Value = serde_json::from_str(text).map_err(|e| vec![format!("invalid JSON: {e}")])?;
    let Value::Object(obj) = root else {
        return Err(vec!["the file must hold a JSON object".into()]);
    };
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    let mut r = Reader { problems: &mut problems, warnings: &mut warnings };
    r.unknown_keys(&obj, AGENT_KEYS, "");

    let models = strings(&mut r, &obj, "supportedModels", None, 300);
    if models.is_empty() && obj.get("supportedModels").is_none_or(Value::is_array) {
        r.bad("supportedModels", "needs at least one model reference");
    }
    let mut supported_models = Vec::new();
    for (i, m) in models.iter().enumerate() {
        match ModelRef::parse(m) {
            Ok(parsed) => supported_models.push(parsed),
            Err(e) => r.bad(&format!("supportedModels[{i}]"), e),
        }
    }
    let tool_names = strings(&mut r, &obj, "toolNames", None, 100);
    for name in tool_names.iter().filter(|n| !crate::tools::is_known(n)) {
        r.warnings.push(format!("toolNames: unknown tool '{name}' is ignored"));
    }
    let integration_bindings = strings(&mut r, &obj, "integrationBindings", None, 100);
    let delegates = strings(&mut r, &obj, "delegates", None, 100);
    let workflows = strings(&mut r, &obj, "workflows", None, 128);

    let mode = |r: &mut Reader, key: &str, default: KnowledgeMode| match r.one_of(&obj, key, "", &["off", "tool", "context", "both"]) {
        Some(s) => KnowledgeMode::parse(&s).unwrap_or(default),
        None => default,
    };
    let knowledge_mode = mode(&mut r, "knowledgeMode", KnowledgeMode::Off);
    let web_default = if tool_names.iter().any(|t| t == "web") { KnowledgeMode::Tool } else { KnowledgeMode::Off };
    let web_search_mode = mode(&mut r, "webSearchMode", web_default);
    let include_org_knowledge = r.boolean(&obj, "includeOrgKnowledge", "").unwrap_or(false);
    let include_team_knowledge = r.boolean(&obj, "includeTeamKnowledge", "").unwrap_or(true);
    let knowledge_top_k = int_in(&mut r, &obj, "knowledgeTopK", 1, 50).map(|n| n as u32);
    let structured_responses_enabled = r.boolean(&obj, "structuredResponsesEnabled", "").unwrap_or(false);
    let max_steps = int_in(&mut r, &obj, "maxSteps", 1, 100).unwrap_or(20) as u32;
    let output_reserve = int_in(&mut r, &obj, "outputReserve", 0, 1_000_000).unwrap_or(4096) as u32;
    let max_integration_calls_per_run = int_in(&mut r, &obj, "maxIntegrationCallsPerRun", 1, 500).map(|n| n as u32);
    let visible_in_chat = obj.get("visibleInChat") == Some(&Value::Bool(true));
    let image_generation = r.one_of(&obj, "primaryBehavior", "", &["chat", "image-generation"]).as_deref() == Some("image-generation");
    // Chat agents get 20 minutes by default, other agent types 7 (TALE-COMPAT §3.1).
    let default_timeout = if image_generation { 420_000 } else { 1_200_000 };
    let timeout_ms = int_in(&mut r, &obj, "timeoutMs", 1000, i64::MAX).map_or(default_timeout, |n| n as u64);
    let composer_mode = match obj.get("composerMode") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => {
            let label = r.string(c, "label", "composerMode", 1, 80, true);
            let icon = r.string(c, "icon", "composerMode", 0, 80, false);
            let tooltip = r.string(c, "tooltip", "composerMode", 0, 300, false);
            let order = c.get("order").and_then(Value::as_i64);
            label.map(|label| ComposerMode { label, icon, tooltip, order })
        }
        Some(_) => {
            r.bad("composerMode", "must be an object with a label");
            None
        }
    };
    let admin_developer_only = r.one_of(&obj, "roleRestriction", "", &["admin_developer"]).is_some();
    let personalization = r.one_of(&obj, "personalizationMode", "", &["on", "off"]).as_deref() != Some("off");
    let provider = r.string(&obj, "provider", "", 1, 100, false);
    if provider.as_deref().is_some_and(|p| !valid_agent_slug(p)) {
        r.bad("provider", "must be a provider slug");
    }
    let avatar_url = r.string(&obj, "avatarUrl", "", 1, 2048, false);
    if avatar_url.as_deref().is_some_and(|u| !valid_url(u)) {
        r.bad("avatarUrl", "must be an http(s) URL");
    }
    let top_texts = texts(&mut r, &obj, "");
    let mut i18n = BTreeMap::new();
    match obj.get("i18n") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (locale, v) in map {
                let path = format!("i18n.{locale}");
                if !valid_locale(locale) {
                    r.bad(&path, "locale must look like 'de' or 'de-CH'");
                    continue;
                }
                match v {
                    Value::Object(t) => {
                        r.unknown_keys(t, &["displayName", "description", "conversationStarters", "systemInstructions"], &path);
                        i18n.insert(locale.clone(), texts(&mut r, t, &path));
                    }
                    _ => r.bad(&path, "must be an object"),
                }
            }
        }
        Some(_) => r.bad("i18n", "must be an object keyed by locale"),
    }

    let all_texts = || std::iter::once(&top_texts).chain(i18n.values());
    if !all_texts().any(|t| t.display_name.is_some()) {
        r.bad("displayName", "is required at the top level or in at least one i18n locale");
    }
    if image_generation {
        for (key, list) in [("toolNames", &tool_names), ("integrationBindings", &integration_bindings), ("workflows", &workflows), ("delegates", &delegates)] {
            if !list.is_empty() {
                r.bad(key, "must be empty for an image-generation agent");
            }
        }
    } else if !all_texts().any(|t| t.system_instructions.as_deref().is_some_and(|s| !s.trim().is_empty())) {
        r.bad("systemInstructions", "a chat agent needs system instructions (top level or in an i18n locale)");
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Agent {
        slug: slug.to_owned(),
        supported_models,
        tool_names,
        integration_bindings,
        delegates,
        workflows,
        knowledge_mode,
        web_search_mode,
        include_org_knowledge,
        include_team_knowledge,
        knowledge_top_k,
        structured_responses_enabled,
        max_steps,
        timeout_ms,
        output_reserve,
        max_integration_calls_per_run,
        visible_in_chat,
        image_generation,
        composer_mode,
        admin_developer_only,
        personalization,
        provider,
        avatar_url,
        texts: top_texts,
        i18n,
        warnings,
    })
}

#[derive(Debug, Clone, Default)]
pub struct AgentSet {
    pub agents: Vec<Agent>,
    pub skipped: Vec<Skipped>,
}

impl AgentSet {
    pub fn agent(&self, slug: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.slug == slug)
    }
}

/// The folder holding an organisation's agents: the root for `default`, else a subfolder.
pub fn agents_dir(config_dir: &Path, org_slug: &str) -> std::path::PathBuf {
    let root = config_dir.join("agents");
    if org_slug == "default" { root } else { root.join(org_slug) }
}

/// Loads every agent file in `dir`; bad files are reported and skipped.
pub fn load_agents(dir: &Path) -> AgentSet {
    let (files, skipped) = read_config_folder(dir, valid_agent_slug);
    let mut set = AgentSet { agents: Vec::new(), skipped };
    for (slug, path, text) in files {
        match parse_agent(&slug, &text) {
            Ok(a) => set.agents.push(a),
            Err(reasons) => set.skipped.push(Skipped { file: path, reasons }),
        }
    }
    set
}
