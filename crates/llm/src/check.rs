//! Reading a JSON config object field by field, collecting problems with their JSON paths
//! (`models[3].tags[0]: ...`) and warnings for unknown keys. Shared by provider and agent files.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `^[a-z]{2}(-[A-Z]{2})?$`
pub fn valid_locale(s: &str) -> bool {
    let b = s.as_bytes();
    match b.len() {
        2 => b.iter().all(u8::is_ascii_lowercase),
        5 => b[..2].iter().all(u8::is_ascii_lowercase) && b[2] == b'-' && b[3..].iter().all(u8::is_ascii_uppercase),
        _ => false,
    }
}

pub fn valid_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else { return false };
    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.starts_with('/') && !s.contains(char::is_whitespace)
}

/// Collects problems with their paths while reading a JSON object.
pub struct Reader<'a> {
    pub problems: &'a mut Vec<String>,
    pub warnings: &'a mut Vec<String>,
}

impl Reader<'_> {
    pub fn bad(&mut self, path: &str, msg: impl std::fmt::Display) {
        self.problems.push(format!("{path}: {msg}"));
    }

    pub fn unknown_keys(&mut self, obj: &Map<String, Value>, known: &[&str], path: &str) {
        for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
            let at = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            self.warnings.push(format!("{at}: unknown key, ignored"));
        }
    }

    pub fn string(&mut self, obj: &Map<String, Value>, key: &str, path: &str, min: usize, max: usize, required: bool) -> Option<String> {
        let at = if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
        match obj.get(key) {
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                self.bad(&at, "is required");
                None
            }
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n < min || n > max {
                    self.bad(&at, format!("must be {min} to {max} characters (has {n})"));
                    None
                } else {
                    Some(s.clone())
                }
            }
            Some(_) => {
                self.bad(&at, "must be a string");
                None
            }
        }
    }

    pub fn url(&mut self, obj: &Map<String, Value>, key: &str, path: &str, required: bool) -> Option<String> {
        let s = self.string(obj, key, path, 1, 2048, required)?;
        if valid_url(&s) {
            Some(s)
        } else {
            let at = if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
            self.bad(&at, format!("'{s}' is not an http(s) URL"));
            None
        }
    }

    pub fn boolean(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<bool> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.bad(&format!("{path}{}{key}", if path.is_empty() { "" } else { "." }), "must be true or false");
                None
            }
        }
    }

    pub fn positive_int(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<u64> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().filter(|n| *n > 0) {
                Some(n) => Some(n),
                None => {
                    self.bad(&format!("{path}.{key}"), "must be a positive integer");
                    None
                }
            },
        }
    }

    pub fn one_of(&mut self, obj: &Map<String, Value>, key: &str, path: &str, allowed: &[&str]) -> Option<String> {
        let s = self.string(obj, key, path, 1, 100, false)?;
        if allowed.contains(&s.as_str()) {
            Some(s)
        } else {
            self.bad(&format!("{path}.{key}"), format!("'{s}' is not one of {}", allowed.join(", ")));
            None
        }
    }

    pub fn locale_map(&mut self, obj: &Map<String, Value>, key: &str, path: &str, max: usize) -> BTreeMap<String, String> {
        let at = format!("{path}.{key}");
        let mut out = BTreeMap::new();
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (locale, v) in map {
                    if !valid_locale(locale) {
                        self.bad(&format!("{at}.{locale}"), "locale must look like 'de' or 'de-CH'");
                        continue;
                    }
                    match v.as_str().filter(|s| !s.trim().is_empty() && s.chars().count() <= max) {
                        Some(s) => {
                            out.insert(locale.clone(), s.to_owned());
                        }
                        None => self.bad(&format!("{at}.{locale}"), format!("must be a non-blank string of at most {max} characters")),
                    }
                }
            }
            Some(_) => self.bad(&at, "must be an object of locale to text"),
        }
        out
    }

}
