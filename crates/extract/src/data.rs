//! JSON and YAML. JSON is parsed (serde_json) and flattened into `path: value` lines — readable,
//! searchable by key and cut anywhere without losing what a value belongs to — grouped into one
//! section per top-level key. YAML is already readable text whose comments matter, so it is
//! kept as written (no parser: the serde_yaml crate is unmaintained), cut into sections at
//! top-level keys and documents.

use serde_json::Value;

use crate::sections::SectionBuilder;
use crate::text::{decode, fenced, normalize};
use crate::{ExtractError, Extracted};

/// Array elements (or lines) per section when a top-level array is long.
const ITEMS_PER_SECTION: usize = 100;

pub(crate) fn extract_json(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let text = decode(bytes);
    let value = match serde_json::from_str::<Value>(&text) {
        Ok(value) => value,
        Err(error) => match json_lines(&text) {
            Some(records) => Value::Array(records),
            None => return Err(ExtractError::Corrupt(format!("not valid JSON: {error}"))),
        },
    };
    let mut builder = SectionBuilder::new();
    match &value {
        Value::Object(map) => {
            let mut scalars = Vec::new();
            for (key, value) in map {
                if value.is_object() || value.is_array() {
                    continue;
                }
                flatten(key, value, &mut scalars);
            }
            builder.block(&scalars.join("\n"));
            for (key, value) in map.iter().filter(|(_, v)| v.is_object() || v.is_array()) {
                builder.heading(1, key);
                let mut lines = Vec::new();
                flatten(key, value, &mut lines);
                for chunk in lines.chunks(ITEMS_PER_SECTION * 4) {
                    builder.block(&chunk.join("\n"));
                    builder.flush();
                }
            }
        }
        Value::Array(items) => {
            for (chunk_index, chunk) in items.chunks(ITEMS_PER_SECTION).enumerate() {
                let first = chunk_index * ITEMS_PER_SECTION;
                let mut lines = Vec::new();
                for (offset, item) in chunk.iter().enumerate() {
                    flatten(&format!("[{}]", first + offset), item, &mut lines);
                }
                if items.len() > ITEMS_PER_SECTION {
                    builder.place(
                        None,
                        Some(format!("Items {}–{}", first + 1, first + chunk.len())),
                    );
                }
                builder.block(&lines.join("\n"));
                builder.flush();
            }
        }
        scalar => {
            let mut lines = Vec::new();
            flatten("", scalar, &mut lines);
            builder.block(&lines.join("\n"));
        }
    }
    Ok(Extracted {
        title: None,
        sections: builder.finish(),
    })
}

/// JSON Lines: every non-empty line a JSON value (at least two of them).
fn json_lines(text: &str) -> Option<Vec<Value>> {
    let records: Vec<Value> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str::<Value>)
        .collect::<Result<_, _>>()
        .ok()?;
    (records.len() >= 2).then_some(records)
}

/// Appends `path: value` lines for every scalar under `value`.
fn flatten(path: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(&child_path, child, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            // A list of plain values reads best on one line.
            if items.iter().all(|i| !i.is_object() && !i.is_array()) {
                let joined: Vec<String> = items.iter().map(scalar).collect();
                out.push(format!("{path}: [{}]", joined.join(", ")));
                return;
            }
            for (index, child) in items.iter().enumerate() {
                flatten(&format!("{path}[{index}]"), child, out);
            }
        }
        other if path.is_empty() => out.push(scalar(other)),
        other => out.push(format!("{path}: {}", scalar(other))),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
        other => other.to_string(),
    }
}

pub(crate) fn extract_yaml(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let text = normalize(&decode(bytes));
    let mut builder = SectionBuilder::new();
    // Small files stay whole; large ones are cut where a top-level key or a document starts.
    if text.len() <= 4 * 1024 {
        builder.block(&fenced(&text, "yaml"));
        return Ok(Extracted {
            title: None,
            sections: builder.finish(),
        });
    }
    let mut part: Vec<&str> = Vec::new();
    let mut part_key: Option<String> = None;
    for line in text.lines() {
        let key = top_level_key(line);
        let document_start = line.starts_with("---");
        if (key.is_some() || document_start)
            && part
                .iter()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            yaml_part(&mut builder, part_key.take(), &part);
            part.clear();
        }
        if document_start {
            continue;
        }
        if key.is_some() && part_key.is_none() {
            part_key = key;
        }
        part.push(line);
    }
    yaml_part(&mut builder, part_key, &part);
    Ok(Extracted {
        title: None,
        sections: builder.finish(),
    })
}

fn yaml_part(builder: &mut SectionBuilder, key: Option<String>, lines: &[&str]) {
    builder.reset_headings();
    if let Some(key) = key {
        builder.heading(1, &key);
    }
    builder.block(&fenced(&lines.join("\n"), "yaml"));
    builder.flush();
}

/// `key:` at column 0 (not a comment, list item or document marker).
fn top_level_key(line: &str) -> Option<String> {
    if line.starts_with([' ', '\t', '#', '-', '.']) || line.is_empty() {
        return None;
    }
    let (key, _) = line.split_once(':')?;
    let key = key.trim().trim_matches(['"', '\'']);
    (!key.is_empty()).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn flattens_paths() {
        let value: serde_json::Value =
            serde_json::from_str(r#"{"a":{"b":1,"c":["x","y"]},"d":[{"e":true}]}"#)
                .unwrap_or_default();
        let mut lines = Vec::new();
        super::flatten("", &value, &mut lines);
        assert_eq!(lines, ["a.b: 1", "a.c: [x, y]", "d[0].e: true"]);
    }
}
