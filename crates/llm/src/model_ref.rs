//! `[<provider>:]<model-id>[@<quant>]` (TALE-COMPAT §2.8).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub provider: Option<String>,
    pub model: String,
    pub quant: Option<String>,
}

fn is_provider_slug(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_quant(s: &str) -> bool {
    (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl ModelRef {
    /// Parses a reference. Text before the first `:` that is not a valid provider slug makes the
    /// whole string an unqualified id, so ids such as `bedrock:anthropic...:0` stay usable.
    pub fn parse(s: &str) -> Result<ModelRef, String> {
        if s.is_empty() {
            return Err("model reference is empty".into());
        }
        if s.starts_with(':') || s.ends_with(':') {
            return Err(format!("model reference '{s}' may not start or end with ':'"));
        }
        let (provider, rest) = match s.split_once(':') {
            Some((p, rest)) if is_provider_slug(p) => (Some(p.to_owned()), rest),
            _ => (None, s),
        };
        let (model, quant) = match rest.rsplit_once('@') {
            Some((m, q)) if is_quant(q) && !m.is_empty() => (m, Some(q.to_owned())),
            _ => (rest, None),
        };
        if model.is_empty() || model.chars().count() > 200 {
            return Err(format!("model id in '{s}' must be 1 to 200 characters"));
        }
        Ok(ModelRef { provider, model: model.to_owned(), quant })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.provider {
            write!(f, "{p}:")?;
        }
        f.write_str(&self.model)?;
        if let Some(q) = &self.quant {
            write!(f, "@{q}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: Option<&str>, m: &str, q: Option<&str>) -> ModelRef {
        ModelRef { provider: p.map(Into::into), model: m.into(), quant: q.map(Into::into) }
    }

    #[test]
    fn grammar() {
        assert_eq!(ModelRef::parse("llama3.3").unwrap(), r(None, "llama3.3", None));
        assert_eq!(ModelRef::parse("openrouter:deepseek/deepseek-v4-flash@fp8").unwrap(), r(Some("openrouter"), "deepseek/deepseek-v4-flash", Some("fp8")));
        assert_eq!(ModelRef::parse("bedrock:anthropic.claude:0").unwrap(), r(Some("bedrock"), "anthropic.claude:0", None));
        assert_eq!(ModelRef::parse("Bedrock:x").unwrap(), r(None, "Bedrock:x", None), "an invalid slug keeps the whole id");
        assert_eq!(ModelRef::parse("user@example").unwrap(), r(None, "user", Some("example")));
        assert_eq!(ModelRef::parse("a@B-1").unwrap(), r(None, "a@B-1", None), "not a quant: part of the id");
        assert!(ModelRef::parse(":x").is_err());
        assert!(ModelRef::parse("x:").is_err());
        assert!(ModelRef::parse("").is_err());
        assert_eq!(ModelRef::parse("openrouter:qwen/qwen3@fp8").unwrap().to_string(), "openrouter:qwen/qwen3@fp8");
    }
}
