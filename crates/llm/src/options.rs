//! `providerOptions`: extra request-body fields, checked and merged as the reference does
//! (TALE-COMPAT §2.6).

use serde_json::{Map, Value};

/// Keys the SDK owns.
const SDK_RESERVED: &[&str] = &["user", "reasoningEffort", "textVerbosity", "strictJsonSchema"];
/// Keys that would overwrite the request body Tale builds.
const BODY_OVERWRITE: &[&str] = &[
    "model", "messages", "tools", "tool_choice", "stream", "temperature", "max_tokens", "max_completion_tokens",
    "top_p", "frequency_penalty", "presence_penalty", "response_format", "stop", "seed", "n", "logit_bias",
    "logprobs", "top_logprobs", "stream_options", "store", "metadata", "prompt", "size", "reasoning_effort",
    "verbosity",
];
/// Refused at any depth.
const PROTOTYPE_KEYS: &[&str] = &["__proto__", "constructor", "prototype"];

fn walk_prototype_keys(value: &Value, path: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                if PROTOTYPE_KEYS.contains(&k.as_str()) {
                    problems.push(format!("{here}: key '{k}' is not allowed"));
                }
                walk_prototype_keys(v, &here, problems);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk_prototype_keys(v, &format!("{path}[{i}]"), problems);
            }
        }
        _ => {}
    }
}

fn reserved_reason(key: &str) -> Option<&'static str> {
    if SDK_RESERVED.contains(&key) {
        Some("is reserved for the SDK")
    } else if BODY_OVERWRITE.contains(&key) {
        Some("would overwrite the request body Tale builds")
    } else {
        None
    }
}

/// Problems with a `providerOptions` value at `path` (empty when it is acceptable).
pub fn validate(options: &Value, path: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let Value::Object(top) = options else {
        return vec![format!("{path}: must be an object")];
    };
    for (key, value) in top {
        let here = format!("{path}.{key}");
        if let Some(why) = reserved_reason(key) {
            problems.push(format!("{here}: key '{key}' {why}"));
        }
        if value.is_array() {
            problems.push(format!("{here}: must not be an array at the top level (write the inner body shape, e.g. {{\"provider\": {{...}}}})"));
        }
        // Reserved keys are also caught one level down, e.g. {"openrouter": {"model": ...}}.
        if let Value::Object(inner) = value {
            for k in inner.keys() {
                if let Some(why) = reserved_reason(k) {
                    problems.push(format!("{here}.{k}: key '{k}' {why}"));
                }
            }
        }
    }
    walk_prototype_keys(options, path, &mut problems);
    problems
}

/// Provider-level options with the model's on top: objects under the same top-level key merge
/// (model wins per sub-key); anything deeper, arrays and scalars are replaced; an explicit `null`
/// replaces; empty objects are dropped; nothing left is `None`.
pub fn merge(provider: Option<&Value>, model: Option<&Value>) -> Option<Map<String, Value>> {
    let mut out: Map<String, Value> = provider.and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(Value::Object(m)) = model {
        for (k, v) in m {
            match (out.get_mut(k), v) {
                (Some(Value::Object(base)), Value::Object(over)) => {
                    for (sk, sv) in over {
                        base.insert(sk.clone(), sv.clone());
                    }
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    out.retain(|_, v| !matches!(v, Value::Object(o) if o.is_empty()));
    (!out.is_empty()).then_some(out)
}

/// A `@quant` suffix pins `provider.quantizations` to exactly that quantisation.
pub fn pin_quantization(options: Option<Map<String, Value>>, quant: &str) -> Map<String, Value> {
    let mut out = options.unwrap_or_default();
    let provider = out.entry("provider").or_insert_with(|| Value::Object(Map::new()));
    if !provider.is_object() {
        *provider = Value::Object(Map::new());
    }
    if let Value::Object(p) = provider {
        p.insert("quantizations".into(), Value::Array(vec![Value::String(quant.to_owned())]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_reserved_overwrite_prototype_and_array_keys() {
        assert!(validate(&json!({"provider": {"quantizations": ["fp8"]}}), "providerOptions").is_empty());
        let p = validate(&json!({"temperature": 1}), "providerOptions");
        assert_eq!(p, vec!["providerOptions.temperature: key 'temperature' would overwrite the request body Tale builds"]);
        assert_eq!(validate(&json!({"openrouter": {"model": "x"}}), "o").len(), 1, "one level down");
        assert_eq!(validate(&json!({"user": "x"}), "o")[0], "o.user: key 'user' is reserved for the SDK");
        assert!(validate(&json!({"a": {"b": {"__proto__": 1}}}), "o")[0].contains("o.a.b.__proto__"));
        assert!(validate(&json!({"provider": ["fp8"]}), "o")[0].contains("must not be an array"));
        assert!(validate(&json!({"a": {"b": {"model": 1}}}), "o").is_empty(), "two levels down is allowed");
    }

    #[test]
    fn merge_rules() {
        let provider = json!({"provider": {"order": ["a"], "sort": "price"}, "transforms": ["x"], "keep": 1, "gone": {"x": 1}});
        let model = json!({"provider": {"order": ["b"]}, "transforms": ["y"], "keep": null, "gone": {}, "extra": {}});
        let m = merge(Some(&provider), Some(&model)).unwrap();
        assert_eq!(Value::Object(m), json!({"provider": {"order": ["b"], "sort": "price"}, "transforms": ["y"], "keep": null, "gone": {"x": 1}}));
        assert_eq!(merge(Some(&json!({"a": {}})), None), None);
        assert_eq!(merge(None, None), None);
        let deep = merge(Some(&json!({"p": {"q": {"r": 1, "s": 2}}})), Some(&json!({"p": {"q": {"r": 3}}}))).unwrap();
        assert_eq!(Value::Object(deep), json!({"p": {"q": {"r": 3}}}), "deeper than one level is replaced");
    }

    #[test]
    fn quantization_pin_overrides() {
        let m = merge(Some(&json!({"provider": {"quantizations": ["fp8", "fp4"], "sort": "price"}})), None);
        let pinned = pin_quantization(m, "fp4");
        assert_eq!(Value::Object(pinned), json!({"provider": {"quantizations": ["fp4"], "sort": "price"}}));
        assert_eq!(Value::Object(pin_quantization(None, "bf16")), json!({"provider": {"quantizations": ["bf16"]}}));
    }
}
