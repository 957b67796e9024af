//! One provider file (`providers/<slug>.json`), validated field by field (TALE-COMPAT §2.2–2.5).
//! Problems carry a JSON path (`models[3].tags[0]`) so an operator can find them.

use crate::check::{valid_locale, Reader};
use crate::options;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The closed list of model tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tag {
    Chat,
    Vision,
    Embedding,
    ImageGeneration,
    ImageEdit,
    Transcription,
    TextToSpeech,
}

impl Tag {
    pub const ALL: [Tag; 7] =
        [Tag::Chat, Tag::Vision, Tag::Embedding, Tag::ImageGeneration, Tag::ImageEdit, Tag::Transcription, Tag::TextToSpeech];

    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Chat => "chat",
            Tag::Vision => "vision",
            Tag::Embedding => "embedding",
            Tag::ImageGeneration => "image-generation",
            Tag::ImageEdit => "image-edit",
            Tag::Transcription => "transcription",
            Tag::TextToSpeech => "text-to-speech",
        }
    }

    pub fn parse(s: &str) -> Option<Tag> {
        Tag::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Prices in US cents (TALE-COMPAT §2.5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    pub input_cents_per_million: Option<f64>,
    pub output_cents_per_million: Option<f64>,
    pub image_cents_per_image: Option<f64>,
    pub cents_per_audio_minute: Option<f64>,
    pub cents_per_million_characters: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub cost: Option<Cost>,
    pub provider_options: Option<Value>,
    pub dimensions: Option<u64>,
    pub max_output_tokens: Option<u64>,
    /// Tokens the model reads at most (Tale extension `contextWindow`; the reference has no such
    /// field and ignores it). Unset: see [`Model::context_window`].
    pub context_window: Option<u64>,
    pub supports_structured_outputs: Option<bool>,
    pub fallback_model_id: Option<String>,
    pub base_url: Option<String>,
    pub image_generation_mode: Option<String>,
    pub default_voice: Option<String>,
    pub voices_by_locale: BTreeMap<String, String>,
    pub audio_format: Option<String>,
    pub default_instructions: Option<String>,
    pub instructions_by_locale: BTreeMap<String, String>,
}

impl Model {
    pub fn has(&self, tag: Tag) -> bool {
        self.tags.contains(&tag)
    }

    /// The context window in tokens: the file's `contextWindow`, else what the model family is
    /// known to take, else a conservative 32,768.
    pub fn context_window(&self) -> u64 {
        if let Some(n) = self.context_window {
            return n;
        }
        let id = self.id.to_ascii_lowercase();
        const KNOWN: &[(&str, u64)] = &[
            ("gemini", 1_000_000),
            ("gpt-4.1", 1_000_000),
            ("claude", 200_000),
            ("o1", 200_000),
            ("o3", 200_000),
            ("o4", 200_000),
            ("gpt-5", 400_000),
            ("gpt-4o", 128_000),
            ("gpt-4-turbo", 128_000),
            ("llama3", 128_000),
            ("llama-3", 128_000),
            ("qwen", 128_000),
            ("mistral", 128_000),
            ("deepseek", 128_000),
            ("gpt-3.5", 16_385),
        ];
        KNOWN.iter().find(|(family, _)| id.contains(family)).map_or(32_768, |(_, n)| *n)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub slug: String,
    pub display_name: String,
    pub description: Option<String>,
    pub base_url: String,
    pub supports_structured_outputs: bool,
    /// Capability (tag name) → model id.
    pub defaults: BTreeMap<String, String>,
    pub provider_options: Option<Value>,
    pub models: Vec<Model>,
    pub i18n: Option<Value>,
    /// Things worth telling the operator that do not stop the file loading (unknown keys).
    pub warnings: Vec<String>,
}

impl Provider {
    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The request-body options for a model: provider block, model block on top, optional pin.
    pub fn options_for(&self, model: &Model, quant: Option<&str>) -> Option<Map<String, Value>> {
        let merged = options::merge(self.provider_options.as_ref(), model.provider_options.as_ref());
        match quant {
            Some(q) => Some(options::pin_quantization(merged, q)),
            None => merged,
        }
    }
}

const PROVIDER_KEYS: &[&str] =
    &["displayName", "description", "baseUrl", "supportsStructuredOutputs", "defaults", "providerOptions", "models", "i18n"];
const MODEL_KEYS: &[&str] = &[
    "id", "displayName", "description", "tags", "cost", "providerOptions", "dimensions", "maxOutputTokens",
    "supportsStructuredOutputs", "fallbackModelId", "baseUrl", "imageGenerationMode", "defaultVoice", "voicesByLocale",
    "audioFormat", "defaultInstructions", "instructionsByLocale", "default", "contextWindow",
];
const COST_KEYS: &[&str] =
    &["inputCentsPerMillion", "outputCentsPerMillion", "imageCentsPerImage", "centsPerAudioMinute", "centsPerMillionCharacters"];
const DEFAULT_KEYS: &[&str] = &["chat", "vision", "embedding", "image-generation", "transcription", "text-to-speech"];
const RESERVED_DEFAULT_KEYS: &[&str] = &["fallbackProviderName", "fallbackModelId"];


/// Provider-specific reading on top of the generic checks.
impl Reader<'_> {
    fn cost(&mut self, v: &Value, path: &str) -> Option<Cost> {
        let Value::Object(obj) = v else {
            self.bad(path, "must be an object");
            return None;
        };
        self.unknown_keys(obj, COST_KEYS, path);
        let mut num = |key: &str| match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64().filter(|n| n.is_finite() && *n >= 0.0) {
                Some(n) => Some(n),
                None => {
                    self.problems.push(format!("{path}.{key}: must be a finite number >= 0 (US cents)"));
                    None
                }
            },
        };
        Some(Cost {
            input_cents_per_million: num("inputCentsPerMillion"),
            output_cents_per_million: num("outputCentsPerMillion"),
            image_cents_per_image: num("imageCentsPerImage"),
            cents_per_audio_minute: num("centsPerAudioMinute"),
            cents_per_million_characters: num("centsPerMillionCharacters"),
        })
    }

    fn provider_options(&mut self, obj: &Map<String, Value>, path: &str) -> Option<Value> {
        let at = if path.is_empty() { "providerOptions".to_owned() } else { format!("{path}.providerOptions") };
        let v = obj.get("providerOptions").filter(|v| !v.is_null())?;
        let problems = options::validate(v, &at);
        if problems.is_empty() {
            Some(v.clone())
        } else {
            self.problems.extend(problems);
            None
        }
    }

    fn model(&mut self, v: &Value, path: &str) -> Option<(Model, bool)> {
        let Value::Object(obj) = v else {
            self.bad(path, "must be an object");
            return None;
        };
        self.unknown_keys(obj, MODEL_KEYS, path);
        let id = self.string(obj, "id", path, 1, 200, true);
        let display_name = self.string(obj, "displayName", path, 1, 200, true);
        let description = self.string(obj, "description", path, 0, 1000, false);
        let mut tags = Vec::new();
        match obj.get("tags") {
            Some(Value::Array(items)) if !items.is_empty() => {
                for (i, t) in items.iter().enumerate() {
                    match t.as_str().and_then(Tag::parse) {
                        Some(tag) if !tags.contains(&tag) => tags.push(tag),
                        Some(_) => {}
                        None => self.bad(
                            &format!("{path}.tags[{i}]"),
                            format!("unknown tag {t}: expected one of {}", Tag::ALL.map(Tag::as_str).join(", ")),
                        ),
                    }
                }
            }
            _ => self.bad(&format!("{path}.tags"), "needs at least one tag"),
        }
        let cost = obj.get("cost").filter(|v| !v.is_null()).and_then(|c| self.cost(c, &format!("{path}.cost")));
        let provider_options = self.provider_options(obj, path);
        let dimensions = self.positive_int(obj, "dimensions", path);
        let max_output_tokens = self.positive_int(obj, "maxOutputTokens", path);
        let context_window = self.positive_int(obj, "contextWindow", path);
        let supports_structured_outputs = self.boolean(obj, "supportsStructuredOutputs", path);
        let fallback_model_id = self.string(obj, "fallbackModelId", path, 1, 200, false);
        let base_url = self.url(obj, "baseUrl", path, false);
        let image_generation_mode = self.one_of(obj, "imageGenerationMode", path, &["images-api", "chat-multimodal"]);
        let default_voice = self.string(obj, "defaultVoice", path, 1, 100, false);
        if default_voice.as_deref().is_some_and(|v| v.trim().is_empty()) {
            self.bad(&format!("{path}.defaultVoice"), "must not be blank");
        }
        let voices_by_locale = self.locale_map(obj, "voicesByLocale", path, 100);
        let audio_format = self.one_of(obj, "audioFormat", path, &["mp3", "opus", "aac", "flac", "wav", "pcm"]);
        let default_instructions = self.string(obj, "defaultInstructions", path, 1, 2000, false);
        let instructions_by_locale = self.locale_map(obj, "instructionsByLocale", path, 2000);
        if tags.contains(&Tag::TextToSpeech) && default_voice.is_none() && voices_by_locale.is_empty() {
            self.bad(path, "a text-to-speech model needs defaultVoice or a non-empty voicesByLocale");
        }
        let legacy_default = self.boolean(obj, "default", path).unwrap_or(false);
        Some((
            Model {
                id: id?,
                display_name: display_name?,
                description,
                tags,
                cost,
                provider_options,
                dimensions,
                max_output_tokens,
                context_window,
                supports_structured_outputs,
                fallback_model_id,
                base_url,
                image_generation_mode,
                default_voice,
                voices_by_locale,
                audio_format,
                default_instructions,
                instructions_by_locale,
            },
            legacy_default,
        ))
    }
}

/// Parses and validates one provider file. `Err` holds every problem found (the file is skipped);
/// `Ok` may still carry warnings.
pub fn parse_provider(slug: &str, text: &str) -> Result<Provider, Vec<String>> {
    let root: Value = serde_json::from_str(text).map_err(|e| vec![format!("invalid JSON: {e}")])?;
    let Value::Object(obj) = root else {
        return Err(vec!["the file must hold a JSON object".into()]);
    };
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    let mut r = Reader { problems: &mut problems, warnings: &mut warnings };
    r.unknown_keys(&obj, PROVIDER_KEYS, "");
    let display_name = r.string(&obj, "displayName", "", 1, 200, true);
    let description = r.string(&obj, "description", "", 0, 1000, false);
    let base_url = r.url(&obj, "baseUrl", "", true);
    let supports_structured_outputs = r.boolean(&obj, "supportsStructuredOutputs", "").unwrap_or(false);
    let provider_options = r.provider_options(&obj, "");

    let mut models: Vec<Model> = Vec::new();
    let mut legacy_defaults = Vec::new();
    match obj.get("models") {
        Some(Value::Array(items)) if !items.is_empty() => {
            for (i, m) in items.iter().enumerate() {
                let path = format!("models[{i}]");
                if let Some((model, legacy)) = r.model(m, &path) {
                    if models.iter().any(|x| x.id == model.id) {
                        r.bad(&format!("{path}.id"), format!("'{}' is used by an earlier model", model.id));
                        continue;
                    }
                    if legacy {
                        legacy_defaults.push(models.len());
                    }
                    models.push(model);
                }
            }
        }
        _ => r.bad("models", "needs at least one model"),
    }

    let mut defaults = BTreeMap::new();
    match obj.get("defaults") {
        None | Some(Value::Null) => {
            // Legacy files mark `"default": true` on models: the first per tag wins.
            for &i in &legacy_defaults {
                for tag in &models[i].tags {
                    if DEFAULT_KEYS.contains(&tag.as_str()) {
                        defaults.entry(tag.as_str().to_owned()).or_insert_with(|| models[i].id.clone());
                    }
                }
            }
        }
        Some(Value::Object(map)) => {
            for (key, v) in map {
                let at = format!("defaults.{key}");
                if RESERVED_DEFAULT_KEYS.contains(&key.as_str()) {
                    r.bad(&at, "is reserved and not supported");
                    continue;
                }
                if !DEFAULT_KEYS.contains(&key.as_str()) {
                    r.bad(&at, format!("unknown capability: expected one of {}", DEFAULT_KEYS.join(", ")));
                    continue;
                }
                let Some(id) = v.as_str().filter(|s| (1..=200).contains(&s.chars().count())) else {
                    r.bad(&at, "must be a model id of 1 to 200 characters");
                    continue;
                };
                match models.iter().find(|m| m.id == id) {
                    None => r.bad(&at, format!("names '{id}', which is not a model in this file")),
                    Some(m) if !m.tags.iter().any(|t| t.as_str() == key) => {
                        r.bad(&at, format!("names '{id}', which is not tagged '{key}'"));
                    }
                    Some(_) => {
                        defaults.insert(key.clone(), id.to_owned());
                    }
                }
            }
        }
        Some(_) => r.bad("defaults", "must be an object of capability to model id"),
    }

    let i18n = match obj.get("i18n") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => {
            for locale in map.keys().filter(|l| !valid_locale(l)) {
                r.bad(&format!("i18n.{locale}"), "locale must look like 'de' or 'de-CH'");
            }
            Some(Value::Object(map.clone()))
        }
        Some(_) => {
            r.bad("i18n", "must be an object keyed by locale");
            None
        }
    };

    match (display_name, base_url) {
        (Some(display_name), Some(base_url)) if problems.is_empty() => Ok(Provider {
            slug: slug.to_owned(),
            display_name,
            description,
            base_url,
            supports_structured_outputs,
            defaults,
            provider_options,
            models,
            i18n,
            warnings,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Provider, Vec<String>> {
        parse_provider("p", &v.to_string())
    }

    fn minimal() -> Value {
        json!({"displayName": "Local", "baseUrl": "http://localhost:11434/v1",
               "models": [{"id": "llama3.3", "displayName": "Llama", "tags": ["chat"]}]})
    }

    #[test]
    fn minimal_file_loads() {
        let p = parse(minimal()).unwrap();
        assert_eq!(p.models[0].tags, vec![Tag::Chat]);
        assert!(!p.supports_structured_outputs);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn every_problem_is_named_with_its_path() {
        let mut v = minimal();
        v["baseUrl"] = json!("ftp://x");
        v["models"][0]["tags"] = json!(["chatt"]);
        v["models"][0]["cost"] = json!({"inputCentsPerMillion": -1});
        v["defaults"] = json!({"chat": "nope", "fallbackModelId": "x"});
        v["providerOptions"] = json!({"stream": true});
        let errs = parse(v).unwrap_err();
        let joined = errs.join("\n");
        for needle in [
            "baseUrl: 'ftp://x' is not an http(s) URL",
            "models[0].tags[0]: unknown tag \"chatt\"",
            "models[0].cost.inputCentsPerMillion: must be a finite number >= 0",
            "defaults.chat: names 'nope', which is not a model in this file",
            "defaults.fallbackModelId: is reserved",
            "providerOptions.stream: key 'stream' would overwrite",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
        }
    }

    #[test]
    fn duplicate_ids_tts_voice_and_default_tag_rules() {
        let mut v = minimal();
        v["models"] = json!([
            {"id": "a", "displayName": "A", "tags": ["chat"]},
            {"id": "a", "displayName": "A2", "tags": ["chat"]},
            {"id": "tts", "displayName": "T", "tags": ["text-to-speech"]}
        ]);
        v["defaults"] = json!({"embedding": "a"});
        let joined = parse(v).unwrap_err().join("\n");
        assert!(joined.contains("models[1].id: 'a' is used by an earlier model"), "{joined}");
        assert!(joined.contains("models[2]: a text-to-speech model needs defaultVoice"), "{joined}");
        assert!(joined.contains("defaults.embedding: names 'a', which is not tagged 'embedding'"), "{joined}");
    }

    #[test]
    fn legacy_default_flags_become_defaults_and_unknown_keys_warn() {
        let mut v = minimal();
        v["models"] = json!([
            {"id": "a", "displayName": "A", "tags": ["chat"], "default": true},
            {"id": "b", "displayName": "B", "tags": ["chat", "vision"], "default": true}
        ]);
        v["colour"] = json!("blue");
        let p = parse(v).unwrap();
        assert_eq!(p.defaults.get("chat").map(String::as_str), Some("a"), "first per tag wins");
        assert_eq!(p.defaults.get("vision").map(String::as_str), Some("b"));
        assert_eq!(p.warnings, vec!["colour: unknown key, ignored"]);
    }

    #[test]
    fn malformed_json_is_reported() {
        let e = parse_provider("p", "{ nope").unwrap_err();
        assert!(e[0].starts_with("invalid JSON"), "{e:?}");
    }
}
